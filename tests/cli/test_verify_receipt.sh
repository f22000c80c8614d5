#!/bin/sh
# End-to-end test of `cledger verify-receipt` on the receipt test vectors.
# Usage: tests/cli/test_verify_receipt.sh BIN_DIR   (BIN_DIR holds the `cledger` program)
# Exit status 0 when every case gives the expected exit status and output.
set -u

BIN=${1:?usage: $0 BIN_DIR}
CLEDGER="$BIN/cledger"
HERE=$(cd "$(dirname "$0")" && pwd)
V="$HERE/../data/receipt-vectors"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cledger-vr.XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM

[ -x "$CLEDGER" ] || { echo "FAIL: $CLEDGER not found or not executable"; exit 1; }
[ -f "$V/receipt_1.json" ] || { echo "FAIL: vectors not found in $V"; exit 1; }

pass=0
fail=0

# expect STATUS PATTERN ARGS... : run cledger with ARGS, check exit status and that stdout+stderr
# contains PATTERN (a fixed string; empty to skip).
expect() {
    want=$1
    pattern=$2
    shift 2
    "$CLEDGER" "$@" >"$TMP/out" 2>&1
    got=$?
    if [ "$got" -ne "$want" ]; then
        echo "FAIL: cledger $* -> exit $got, want $want"
        sed 's/^/    /' "$TMP/out"
        fail=$((fail + 1))
        return
    fi
    if [ -n "$pattern" ] && ! grep -qF -- "$pattern" "$TMP/out"; then
        echo "FAIL: cledger $* -> output lacks '$pattern'"
        sed 's/^/    /' "$TMP/out"
        fail=$((fail + 1))
        return
    fi
    pass=$((pass + 1))
}

# Builds a JSON file from a Python-free template: envelope = {"state":"Ready","transactionId":ID,
# "receipt":<file>[,"applicationClaims":<file>]}.
envelope() {
    out=$1 id=$2 receipt=$3 claims=${4:-}
    {
        printf '{"state":"Ready","transactionId":"%s","receipt":' "$id"
        cat "$receipt"
        if [ -n "$claims" ]; then
            printf ',"applicationClaims":'
            cat "$claims"
        fi
        printf '}\n'
    } >"$out"
}

# --- valid vectors (expected.json "valid") ---
expect 0 "receipt valid: transaction 2.35, root 283afa446263bcc3be31a980957fe3d0196494bf100df6774249f09d10755101, node 708c2e71b2533e5eb38e05cc344390d133c8fb336cb80481ab4e5e902e6131a5" \
    verify-receipt "$V/receipt_1.json" --service-cert "$V/service_cert_1.pem"
expect 0 "root 283afa446263bcc3be31a980957fe3d0196494bf100df6774249f09d10755101" \
    verify-receipt "$V/receipt_1_snake_case.json" --service-cert "$V/service_cert_1.pem"
expect 0 "receipt valid: transaction 16.7415, root b27c68aaafa33f67bdfe0854f8460f03d16caef750ba1927946bfbe1d9720a47, node a16d14661618d220365594fc4986f4401ff74785b70818b00e6590bb3c1a1a5d" \
    verify-receipt "$V/receipt_2.json" --service-cert "$V/service_cert_2.pem"
expect 0 "receipt valid: transaction 2.13, root f7b9072e3235ea1f5fe150f7153527bd670009ebbc48a37e4fd6c4428f6fa148, node 0db9a22e9301d1167a2a81596fa234642ad24bc742451a415b8d653af056795c" \
    verify-receipt "$V/receipt_p384_claims.json" --service-cert "$V/service_cert_p384.pem" \
    --claims "$V/claims_1.json"
expect 0 "root f7b9072e3235ea1f5fe150f7153527bd670009ebbc48a37e4fd6c4428f6fa148" \
    verify-receipt --claims "$V/claims_2.json" --service-cert="$V/service_cert_p384.pem" \
    "$V/receipt_p384_claims.json"
expect 0 "receipt valid" \
    verify-receipt "$V/receipt_p384_claims.json" --service-cert "$V/service_cert_p384.pem"

# envelopes: claims inside are checked
envelope "$TMP/env_ok.json" 2.13 "$V/receipt_p384_claims.json" "$V/claims_1.json"
envelope "$TMP/env_bad.json" 2.13 "$V/receipt_p384_claims.json" "$V/claims_3.json"
envelope "$TMP/env_r1.json" 2.35 "$V/receipt_1.json"
expect 0 "receipt valid: transaction 2.13," \
    verify-receipt "$TMP/env_ok.json" --service-cert "$V/service_cert_p384.pem"
expect 1 "receipt INVALID: claims: claims digest 101badd9" \
    verify-receipt "$TMP/env_bad.json" --service-cert "$V/service_cert_p384.pem"
expect 1 "receipt INVALID: claims:" \
    verify-receipt "$TMP/env_ok.json" --service-cert "$V/service_cert_p384.pem" \
    --claims "$V/claims_3.json"
expect 0 "receipt valid: transaction 2.35," \
    verify-receipt "$TMP/env_r1.json" --service-cert "$V/service_cert_1.pem"
# an envelope's transactionId is not signed: one the commit evidence does not name is refused
envelope "$TMP/env_relabel.json" 9.999 "$V/receipt_1.json"
expect 1 "receipt INVALID: shape: transactionId is not the transaction the commit evidence names" \
    verify-receipt "$TMP/env_relabel.json" --service-cert "$V/service_cert_1.pem"
printf '{"state":"Loading","transactionId":"2.35"}' >"$TMP/loading.json"
expect 1 "receipt INVALID: shape: receipt is not ready" \
    verify-receipt "$TMP/loading.json" --service-cert "$V/service_cert_1.pem"

# --json output
expect 0 '"valid": true' \
    verify-receipt "$V/receipt_1.json" --service-cert "$V/service_cert_1.pem" --json
expect 1 '"step": "endorsement"' \
    verify-receipt "$V/receipt_1.json" --service-cert "$V/service_cert_2.pem" --json

# --- invalid combinations (expected.json "invalid" without mutation) ---
expect 1 "receipt INVALID: endorsement:" \
    verify-receipt "$V/receipt_1.json" --service-cert "$V/service_cert_2.pem"
expect 1 "receipt INVALID: endorsement:" \
    verify-receipt "$V/receipt_2.json" --service-cert "$V/service_cert_1.pem"
expect 1 "receipt INVALID: endorsement:" \
    verify-receipt "$V/receipt_p384_claims.json" --service-cert "$V/service_cert_1.pem"
expect 1 "receipt INVALID: claims:" \
    verify-receipt "$V/receipt_1.json" --service-cert "$V/service_cert_1.pem" \
    --claims "$V/claims_2.json"
expect 1 "receipt INVALID: claims:" \
    verify-receipt "$V/receipt_2.json" --service-cert "$V/service_cert_2.pem" \
    --claims "$V/claims_1.json"
expect 1 "receipt INVALID: claims:" \
    verify-receipt "$V/receipt_p384_claims.json" --service-cert "$V/service_cert_p384.pem" \
    --claims "$V/claims_3.json"

# a few mutations done with sed (the files keep one field per line)
sed 's/"left": "5e949d6d/"right": "5e949d6d/' "$V/receipt_1.json" >"$TMP/side.json"
expect 1 "receipt INVALID: signature:" \
    verify-receipt "$TMP/side.json" --service-cert "$V/service_cert_1.pem"
sed 's/708c2e71b2533e5e/708c2e71b2533e5f/' "$V/receipt_1.json" >"$TMP/nodeid.json"
expect 1 "receipt INVALID: nodeId:" \
    verify-receipt "$TMP/nodeid.json" --service-cert "$V/service_cert_1.pem"
grep -v '"nodeId"' "$V/receipt_1.json" >"$TMP/no_nodeid.json"
expect 0 "receipt valid" \
    verify-receipt "$TMP/no_nodeid.json" --service-cert "$V/service_cert_1.pem"
sed 's/ce:2.35:fa08/ce:2.35:fa09/' "$V/receipt_1.json" >"$TMP/ce.json"
expect 1 "receipt INVALID: signature:" \
    verify-receipt "$TMP/ce.json" --service-cert "$V/service_cert_1.pem"
grep -v '"writeSetDigest"' "$V/receipt_1.json" | sed 's/"commitEvidence": \(".*"\),/"commitEvidence": \1/' \
    >"$TMP/no_wsd.json"
expect 1 "receipt INVALID: shape: writeSetDigest is missing" \
    verify-receipt "$TMP/no_wsd.json" --service-cert "$V/service_cert_1.pem"
printf '{"cert": 1}' >"$TMP/garbage.json"
expect 1 "receipt INVALID: shape:" \
    verify-receipt "$TMP/garbage.json" --service-cert "$V/service_cert_1.pem"
printf 'not json' >"$TMP/notjson.json"
expect 1 "receipt INVALID: shape:" \
    verify-receipt "$TMP/notjson.json" --service-cert "$V/service_cert_1.pem"

# --- usage errors and unreadable inputs: exit 2 ---
expect 2 "usage:" verify-receipt
expect 2 "--service-cert" verify-receipt "$V/receipt_1.json"
expect 2 "RECEIPT.json" verify-receipt --service-cert "$V/service_cert_1.pem"
expect 2 "unknown option" verify-receipt "$V/receipt_1.json" --service-cert "$V/service_cert_1.pem" --bogus
expect 2 "needs a file" verify-receipt "$V/receipt_1.json" --service-cert
expect 2 "more than one receipt" verify-receipt "$V/receipt_1.json" "$V/receipt_2.json" \
    --service-cert "$V/service_cert_1.pem"
expect 2 "cannot open" verify-receipt "$TMP/missing.json" --service-cert "$V/service_cert_1.pem"
expect 2 "cannot open" verify-receipt "$V/receipt_1.json" --service-cert "$TMP/missing.pem"
expect 2 "not a usable service certificate" verify-receipt "$V/receipt_1.json" \
    --service-cert "$V/receipt_1.json"
expect 2 "cannot open" verify-receipt "$V/receipt_1.json" --service-cert "$V/service_cert_1.pem" \
    --claims "$TMP/missing.json"
expect 2 "not valid JSON" verify-receipt "$V/receipt_1.json" --service-cert "$V/service_cert_1.pem" \
    --claims "$TMP/notjson.json"
expect 0 "usage:" verify-receipt --help
expect 2 "unknown command" no-such-command
expect 2 "usage:"
expect 0 "verify-receipt" help
expect 0 "cledger " version

echo "verify-receipt CLI: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
