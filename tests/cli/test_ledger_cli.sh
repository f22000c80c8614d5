#!/usr/bin/env bash
# End-to-end test of the cledger CLI on a real ledger directory: init, append, get, receipt,
# verify-receipt, verify-ledger (valid, tampered, wrong certificate), rotations, private ledgers.
# Usage: test_ledger_cli.sh BIN_DIR
set -uo pipefail
BIN=${1:?bin dir}
CL="$BIN/cledger"
work=$(mktemp -d /tmp/cl-cli-XXXXXX)
trap 'rm -rf "$work"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
expect() { # expect CODE DESCRIPTION -- command...
    local want=$1 what=$2; shift 3
    "$@" >"$work/out" 2>"$work/err"; local got=$?
    if [ "$got" -eq "$want" ]; then ok; else bad "$what: exit $got, wanted $want: $(cat "$work/out" "$work/err" | head -5)"; fi
}

D="$work/pub"
expect 0 "init" -- "$CL" ledger init "$D" --chunk-size 4096
expect 2 "init twice" -- "$CL" ledger init "$D"
expect 2 "a directory that does not exist" -- "$CL" ledger status "$work/none"
grep -q "$work/none: No such file or directory" "$work/err" && ok || bad "missing directory: $(cat "$work/err")"
txids=()
for i in $(seq 1 60); do
    t=$("$CL" ledger append "$D" --collection "c$((i % 3))" "payment $i") || bad "append $i"
    txids+=("$t")
done
expect 0 "get" -- "$CL" ledger get "$D" "${txids[7]}"
grep -q '"payment 8"' "$work/out" && ok || bad "get returned the wrong contents"
expect 1 "get unknown seqno" -- "$CL" ledger get "$D" "2.99999"
expect 2 "get malformed txid" -- "$CL" ledger get "$D" "2.x"
# a transaction id in its one canonical form: no leading zeros (a receipt names the id given)
expect 2 "get txid with a leading zero" -- "$CL" ledger get "$D" "2.0${txids[7]#2.}"
expect 2 "receipt txid with a leading zero" -- "$CL" ledger receipt "$D" "02.${txids[7]#2.}"
# what the service would refuse is refused: contents or collection not UTF-8, control characters
expect 2 "append contents not UTF-8" -- "$CL" ledger append "$D" --collection c0 $'\xff\xfe'
grep -q "not valid UTF-8" "$work/err" && ok || bad "append non-UTF-8 message: $(cat "$work/err")"
expect 2 "append collection not UTF-8" -- "$CL" ledger append "$D" --collection $'c\xff' x
expect 2 "append collection with a control character" -- "$CL" ledger append "$D" --collection $'c\x01' x
# a signature transaction has no receipt of its own: said so
"$CL" ledger status "$D" >"$work/status" || bad "status"
st=$(sed -n 's/^view: //p' "$work/status").$(sed -n 's/^last signature: //p' "$work/status")
if [[ "$st" =~ ^[0-9]+\.[0-9]+$ ]]; then
    expect 1 "receipt of a signature transaction" -- "$CL" ledger receipt "$D" "$st"
    grep -q "is a signature transaction" "$work/err" && ok || bad "signature receipt message: $(cat "$work/err")"
else
    bad "ledger status names no last signature: $("$CL" ledger status "$D")"
fi
for t in "${txids[0]}" "${txids[30]}" "${txids[59]}"; do
    "$CL" ledger receipt "$D" "$t" >"$work/r.json" || bad "receipt $t"
    expect 0 "verify-receipt $t" -- "$CL" verify-receipt "$work/r.json" --service-cert "$D/service_cert.pem"
done
# the envelope's application claims are checked: change the contents and it must fail
sed 's/"payment 60"/"payment 61"/' "$work/r.json" >"$work/r2.json"
expect 1 "verify-receipt with altered claims" -- "$CL" verify-receipt "$work/r2.json" --service-cert "$D/service_cert.pem"
ls "$D/ledger" | grep -q '\.committed$' && ok || bad "no committed chunk after rollover"
expect 0 "verify-ledger" -- "$CL" verify-ledger "$D" --service-cert "$D/service_cert.pem"
grep -q "ledger valid: " "$work/out" && ok || bad "verify-ledger output"
expect 0 "verify-ledger --json" -- "$CL" verify-ledger "$D" --service-cert "$D/service_cert.pem" --json
grep -q '"valid":true' "$work/out" && ok || bad "verify-ledger --json output"
grep -q '"merkleStore":"valid"' "$work/out" && ok || bad "verify-ledger did not audit the Merkle store: $(cat "$work/out")"
# the derived Merkle store is audited too: a damaged record is reported (the ledger itself is
# valid), exit 1, with the fix; removing merkle/ makes the next open rebuild it
cp "$D/merkle/level_01" "$work/level_01.bak"
printf '\xff' | dd of="$D/merkle/level_01" bs=1 seek=$((32 * 5 + 9)) count=1 conv=notrunc 2>/dev/null
expect 1 "verify-ledger with a damaged Merkle store" -- "$CL" verify-ledger "$D" --service-cert "$D/service_cert.pem"
grep -q "ledger valid: " "$work/out" && grep -q "Merkle store is DAMAGED: merkle/level_01 record 5 is not the hash of its two children" "$work/err" && ok ||
    bad "damaged Merkle store report: $(cat "$work/out" "$work/err")"
expect 1 "verify-ledger --json with a damaged Merkle store" -- "$CL" verify-ledger "$D" --service-cert "$D/service_cert.pem" --json
grep -q '"merkleStore":"damaged"' "$work/out" && ok || bad "damaged store --json: $(cat "$work/out")"
cp "$work/level_01.bak" "$D/merkle/level_01"
expect 0 "verify-ledger with the store restored" -- "$CL" verify-ledger "$D" --service-cert "$D/service_cert.pem"

# another ledger's certificate is not this ledger's identity
E="$work/other"
"$CL" ledger init "$E" >/dev/null || bad "init other"
expect 1 "verify-ledger with a foreign certificate" -- "$CL" verify-ledger "$D" --service-cert "$E/service_cert.pem"
expect 1 "verify-receipt with a foreign certificate" -- "$CL" verify-receipt "$work/r.json" --service-cert "$E/service_cert.pem"
expect 2 "verify-ledger without certificate" -- "$CL" verify-ledger "$D"

# tamper: flip one byte in the middle of the first committed chunk; the seqno must be named
chunk=$(ls "$D/ledger" | grep '\.committed$' | head -1)
cp "$D/ledger/$chunk" "$work/chunk.bak"
size=$(stat -c %s "$D/ledger/$chunk")
off=$((size / 2))
orig=$(dd if="$D/ledger/$chunk" bs=1 skip=$off count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
printf "$(printf '\\%03o' $(((orig ^ 1) & 255)))" | dd of="$D/ledger/$chunk" bs=1 seek=$off count=1 conv=notrunc 2>/dev/null
expect 1 "verify-ledger after a flipped byte" -- "$CL" verify-ledger "$D" --service-cert "$D/service_cert.pem"
grep -q "INVALID at seqno [0-9]" "$work/out" && grep -q "$chunk" "$work/out" && ok || bad "tamper report: $(cat "$work/out")"
cp "$work/chunk.bak" "$D/ledger/$chunk"
expect 0 "verify-ledger after restoring" -- "$CL" verify-ledger "$D" --service-cert "$D/service_cert.pem"
# a removed chunk is a gap
mv "$D/ledger/$chunk" "$work/"
expect 1 "verify-ledger with a missing chunk" -- "$CL" verify-ledger "$D" --service-cert "$D/service_cert.pem"
mv "$work/$chunk" "$D/ledger/"

# rotations: old receipts still verify against the new identity; the old one is no longer it
cp "$D/service_cert.pem" "$work/old_cert.pem"
expect 0 "rotate-secret" -- "$CL" ledger rotate-secret "$D"
expect 0 "rotate-identity" -- "$CL" ledger rotate-identity "$D"
cmp -s "$D/service_cert.pem" "$work/old_cert.pem" && bad "identity unchanged" || ok
"$CL" ledger receipt "$D" "${txids[3]}" >"$work/r3.json" || bad "receipt after rotation"
expect 0 "old entry's receipt after rotation" -- "$CL" verify-receipt "$work/r3.json" --service-cert "$D/service_cert.pem"
expect 0 "verify-ledger after rotations" -- "$CL" verify-ledger "$D" --service-cert "$D/service_cert.pem"
expect 1 "verify-ledger with the previous identity" -- "$CL" verify-ledger "$D" --service-cert "$work/old_cert.pem"

# private ledger: contents never stored in plaintext, still readable and verifiable
P="$work/priv"
expect 0 "init private" -- "$CL" ledger init "$P" --private --curve p384
t=$("$CL" ledger append "$P" --collection secret "CONFIDENTIAL-MARKER-9f3a") || bad "append private"
grep -rq "CONFIDENTIAL-MARKER-9f3a" "$P" && bad "plaintext found in private ledger" || ok
expect 0 "get private" -- "$CL" ledger get "$P" "$t"
grep -q "CONFIDENTIAL-MARKER-9f3a" "$work/out" && ok || bad "private contents not decrypted"
"$CL" ledger receipt "$P" "$t" >"$work/rp.json" || bad "receipt private"
expect 0 "verify-receipt P-384" -- "$CL" verify-receipt "$work/rp.json" --service-cert "$P/service_cert.pem"
expect 0 "verify-ledger private" -- "$CL" verify-ledger "$P" --service-cert "$P/service_cert.pem"
expect 2 "usage" -- "$CL" ledger
expect 2 "unknown command" -- "$CL" frobnicate

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
