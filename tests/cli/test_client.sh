#!/usr/bin/env bash
# End-to-end tests of the `cledger` network client against a real cledgerd on loopback: every
# command, human and --json output, profile handling, exit codes (1 server error, 2 usage/local,
# 3 network/TLS), roles, receipts, paging past 1,000 seqnos. Usage: test_client.sh BIN_DIR
set -uo pipefail
BIN=$(cd "${1:?bin dir}" && pwd)
CL="$BIN/cledger"
[ -x "$BIN/cledgerd" ] && [ -x "$CL" ] || { echo "cledgerd or cledger not built"; exit 1; }
work=$(mktemp -d /tmp/cl-client-XXXXXX)
PID=""
PID2=""
cleanup() { [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; [ -n "$PID2" ] && kill -9 "$PID2" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
# expect STATUS DESCRIPTION -- command...: runs it, output in $work/out and $work/err
expect() {
    local want=$1 what=$2; shift 3
    "$@" >"$work/out" 2>"$work/err"
    local got=$?
    if [ "$got" -eq "$want" ]; then ok; else bad "$what: exit $got, wanted $want: $(head -c 400 "$work/err")"; fi
}
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

D="$work/data"; PORT=$(free_port); URL="https://127.0.0.1:$PORT"
"$BIN/cledgerd" --data-dir "$D" --listen "127.0.0.1:$PORT" --log-level warn 2>>"$work/cledgerd.log" &
PID=$!
for _ in $(seq 1 150); do
    [ -f "$D/service_cert.pem" ] && curl -s --cacert "$D/service_cert.pem" "$URL/node/ready" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -s --cacert "$D/service_cert.pem" "$URL/node/ready" | grep -q true || { echo "cledgerd did not become ready"; tail -20 "$work/cledgerd.log"; exit 1; }

# profile (relative paths are relative to the profile's directory)
cat >"$work/profile.json" <<JSON
{"endpoint":"$URL","serviceCert":"data/service_cert.pem","cert":"data/admin_cert.pem","key":"data/admin_key.pem"}
JSON
export CLEDGER_PROFILE="$work/profile.json"

# put / get / status / wait
expect 0 "put --wait" -- "$CL" put 'hello client' --wait
tx=$(cat "$work/out")
[[ "$tx" =~ ^[0-9]+\.[0-9]+$ ]] && ok || bad "put printed '$tx'"
expect 0 "get" -- "$CL" get "$tx"
[ "$(cat "$work/out")" = "hello client" ] && ok || bad "get printed '$(cat "$work/out")'"
expect 0 "get --json" -- "$CL" get "$tx" --json
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["state"]=="Ready" and d["entry"]["contents"]=="hello client"' "$work/out" && ok || bad "get --json body"
expect 0 "status" -- "$CL" status "$tx"
[ "$(cat "$work/out")" = Committed ] && ok || bad "status printed '$(cat "$work/out")'"
expect 0 "wait" -- "$CL" wait "$tx" --json
grep -q '"state":"Committed"' "$work/out" && ok || bad "wait --json"
# global options before the command, flags overriding the profile, --opt=value
expect 0 "options first" -- "$CL" --json --endpoint="$URL" put --collection 'c/ol:1 x' 'tab	and
newline'
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["collectionId"]=="c/ol:1 x" and d["transactionId"]' "$work/out" && ok || bad "put --json: $(cat "$work/out")"
tx2=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["transactionId"])' "$work/out")
expect 0 "wait 2" -- "$CL" wait "$tx2"
expect 0 "list escaped" -- "$CL" list --collection 'c/ol:1 x'
[ "$(cat "$work/out")" = "$tx2	tab\tand\nnewline" ] && ok || bad "list line: $(cat "$work/out")"
printf 'from stdin' | "$CL" put - --collection stdin --wait >"$work/out" 2>"$work/err" && ok || bad "put - : $(cat "$work/err")"
[ "$("$CL" get "$(cat "$work/out")" --collection stdin)" = "from stdin" ] && ok || bad "put - contents"
# without a profile, flags only
expect 0 "flags only" -- env CLEDGER_PROFILE= "$CL" status "$tx" --endpoint "$URL" --service-cert "$D/service_cert.pem" --cert "$D/admin_cert.pem" --key "$D/admin_key.pem"

# receipts: --verify in process, a tampered copy fails verify-receipt
expect 0 "receipt --verify" -- "$CL" receipt "$tx" --verify --out "$work/receipt.json"
grep -q 'receipt valid' "$work/err" && grep -q 'application claims checked' "$work/err" && ok || bad "receipt --verify message: $(cat "$work/err")"
grep -q '"applicationClaims"' "$work/receipt.json" && ok || bad "receipt has no applicationClaims"
expect 0 "verify-receipt of the saved receipt" -- "$CL" verify-receipt "$work/receipt.json" --service-cert "$D/service_cert.pem"
sed 's/"contents":"hello client"/"contents":"hello CLIENT"/' "$work/receipt.json" >"$work/tampered.json"
cmp -s "$work/receipt.json" "$work/tampered.json" && bad "tampering changed nothing"
expect 1 "tampered receipt" -- "$CL" verify-receipt "$work/tampered.json" --service-cert "$D/service_cert.pem"
expect 0 "receipt to stdout" -- "$CL" receipt "$tx"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["state"]=="Ready" and d["receipt"]["signature"]' "$work/out" && ok || bad "receipt stdout"

# identity
expect 0 "identity" -- "$CL" identity --save "$work/id.pem"
cmp -s "$work/id.pem" "$D/service_cert.pem" && ok || bad "identity --save differs from service_cert.pem"
expect 0 "identity first contact" -- env CLEDGER_PROFILE= "$CL" identity --endpoint "$URL" --insecure-first-contact
grep -q 'BEGIN CERTIFICATE' "$work/out" && grep -q 'NOT authenticated' "$work/err" && ok || bad "first contact output"
fp=$(openssl x509 -in "$D/service_cert.pem" -noout -fingerprint -sha256 | cut -d= -f2)
grep -q "$fp" "$work/err" && ok || bad "first contact warning lacks the SHA-256 fingerprint $fp"
expect 0 "identity --json" -- "$CL" identity --json
grep -q '"ledgerId":"cledger"' "$work/out" && ok || bad "identity --json"
expect 1 "identity unknown ledger" -- "$CL" identity --ledger-id nope

# users and roles
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/r.key" -out "$work/r.pem" -subj /CN=reader -days 2 2>/dev/null
rfp=$(openssl x509 -in "$work/r.pem" -noout -fingerprint -sha256 | cut -d= -f2)
RD=(--cert "$work/r.pem" --key "$work/r.key")
expect 1 "unknown cert" -- "$CL" "${RD[@]}" status "$tx"
grep -q '401 InvalidAuthenticationInfo' "$work/err" && ok || bad "401 message: $(cat "$work/err")"
expect 0 "user add (PEM path)" -- "$CL" user add "$work/r.pem" --role Reader
[ "$(cat "$work/out")" = "$rfp	Reader" ] && ok || bad "user add output: $(cat "$work/out")"
expect 0 "user get" -- "$CL" user get "$rfp" --json
grep -q '"assignedRoles":\["Reader"\]' "$work/out" && ok || bad "user get: $(cat "$work/out")"
expect 0 "user list" -- "$CL" user list
grep -q "^$rfp	Reader$" "$work/out" && [ "$(wc -l <"$work/out")" -eq 2 ] && ok || bad "user list: $(cat "$work/out")"
expect 0 "reader reads" -- "$CL" "${RD[@]}" get "$tx"
expect 1 "reader put" -- "$CL" "${RD[@]}" put 'not allowed'
grep -q '^cledger: 403 AuthorizationFailed: ' "$work/err" && ok || bad "403 message: $(cat "$work/err")"
expect 1 "reader user list" -- "$CL" "${RD[@]}" user list
expect 0 "user add multi-role" -- "$CL" user add "$rfp" --role contributor --role Reader
[ "$(cat "$work/out")" = "$rfp	Contributor,Reader" ] && ok || bad "multi-role: $(cat "$work/out")"
expect 0 "contributor put" -- "$CL" "${RD[@]}" put 'now allowed'
expect 0 "user rm" -- "$CL" user rm "$work/r.pem" --json
grep -q '"removed":true' "$work/out" && ok || bad "user rm --json"
expect 1 "user get removed" -- "$CL" user get "$rfp"
grep -q '404 ResourceNotFound' "$work/err" && ok || bad "404 message: $(cat "$work/err")"
# user list across pages (1,000 users a page): 1,050 users named p+NNNN (the '+' makes the
# nextLink carry afterHex), written over one keep-alive connection, then listed once each in order
python3 - "$PORT" "$D" <<'PY' && ok || bad "adding 1,050 users"
import http.client, ssl, sys
port, d = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=f"{d}/service_cert.pem")
ctx.load_cert_chain(f"{d}/admin_cert.pem", f"{d}/admin_key.pem")
c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
for i in range(1050):
    c.request("PATCH", f"/app/users/p%2B{i:04d}?api-version=2022-05-13", body='{"assignedRole":"Reader"}',
              headers={"content-type": "application/merge-patch+json"})
    r = c.getresponse(); r.read()
    assert r.status == 200, (i, r.status)
import json
c.request("GET", "/app/users?api-version=2024-08-22-preview")
r = c.getresponse(); page = json.loads(r.read())
assert len(page["ledgerUsers"]) == 1000 and "&afterHex=702b" in page["nextLink"], page.get("nextLink")
PY
expect 0 "user list, two pages" -- "$CL" user list
python3 - "$work/out" <<'PY' && ok || bad "user list pages: $(head -c 300 "$work/out")"
import sys
ids = [l.split("\t")[0] for l in open(sys.argv[1]).read().splitlines()]
p = [i for i in ids if i.startswith("p+")]
assert p == [f"p+{i:04d}" for i in range(1050)], p[:3]
assert len(ids) == 1051 and len(set(ids)) == 1051, len(ids)
PY
expect 1 "removed user" -- "$CL" "${RD[@]}" status "$tx"
expect 2 "bad role" -- "$CL" user add "$rfp" --role Owner
expect 2 "missing cert file" -- "$CL" user add "$work/nope.pem" --role Reader

# error paths: server errors (1), usage (2), network/TLS (3)
expect 1 "unknown txid" -- "$CL" status 2.999999
grep -q '404 TransactionNotFound' "$work/err" && ok || bad "unknown txid message: $(cat "$work/err")"
expect 1 "malformed txid" -- "$CL" get x.y
grep -q '400 InvalidTransactionId' "$work/err" && ok || bad "malformed txid message: $(cat "$work/err")"
expect 1 "invalid view" -- "$CL" wait 1.2 --timeout 5
grep -q 'InvalidTransactionId' "$work/err" && ok || bad "wait invalid view: $(cat "$work/err")"
expect 1 "get --json error body" -- "$CL" get 2.999999 --json
grep -q '"code":"TransactionNotFound"' "$work/out" && ok || bad "--json error body: $(cat "$work/out")"
expect 2 "get without txid" -- "$CL" get
expect 2 "unknown option" -- "$CL" put --frobnicate x
expect 2 "option of another command" -- "$CL" get "$tx" --role Reader
expect 2 "put without contents" -- "$CL" put
expect 2 "bad timeout" -- "$CL" wait "$tx" --timeout abc
expect 2 "missing profile" -- "$CL" status "$tx" --profile "$work/none.json"
expect 2 "no endpoint" -- env CLEDGER_PROFILE= "$CL" status "$tx"
expect 2 "unreadable batch" -- "$CL" put --batch "$work/none.txt"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/o.key" -out "$work/o.pem" -subj /CN=other -days 2 2>/dev/null
expect 3 "wrong service cert" -- "$CL" status "$tx" --service-cert "$work/o.pem"
grep -q 'TLS verification' "$work/err" && ok || bad "TLS message: $(cat "$work/err")"
expect 0 "host name localhost (in the node certificate)" -- "$CL" status "$tx" --endpoint "https://localhost:$PORT"
expect 3 "nothing listening" -- "$CL" status "$tx" --endpoint "https://127.0.0.1:$(free_port)"
expect 3 "identity without trust anchor" -- env CLEDGER_PROFILE= "$CL" identity --endpoint "$URL"

# paging: 1,100 entries over one keep-alive connection, then list across > 1,000 seqnos
seq 1 1100 | sed 's/^/bulk entry /' >"$work/batch.txt"
expect 0 "put --batch" -- "$CL" put --batch "$work/batch.txt" --collection bulk --wait
[ "$(wc -l <"$work/out")" -eq 1100 ] && ok || bad "put --batch printed $(wc -l <"$work/out") ids"
first=$(head -1 "$work/out"); last=$(tail -1 "$work/out")
[ $((${last#*.} - ${first#*.})) -ge 1000 ] && ok || bad "batch spans fewer than 1,000 seqnos ($first..$last)"
expect 0 "list bulk" -- "$CL" list --collection bulk
[ "$(wc -l <"$work/out")" -eq 1100 ] && [ "$(cut -f2 "$work/out")" = "$(cat "$work/batch.txt")" ] && ok || bad "list bulk: $(wc -l <"$work/out") lines"
expect 0 "list bulk --json" -- "$CL" list --collection bulk --json
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d["entries"])==1100 and "nextLink" not in d' "$work/out" && ok || bad "list --json"
expect 0 "list --from --to" -- "$CL" list --collection bulk --from "$first" --to "$first"
[ "$(cat "$work/out")" = "$first	bulk entry 1" ] && ok || bad "list range: $(cat "$work/out")"
expect 0 "list unknown collection" -- "$CL" list --collection never-written
[ ! -s "$work/out" ] && ok || bad "unknown collection not empty"

# A range ending at an entry written but not yet committed: cledgerd sends the client back to the
# same page (the same nextLink) until the next signature commits the entry, and the client asks
# again within --timeout instead of giving up or spinning. A second node with a slow signature
# timer makes the wait long enough to see.
D2="$work/slow"; PORT2=$(free_port); URL2="https://127.0.0.1:$PORT2"
echo '{"sigIntervalMs": 1500, "sigMaxEntries": 100000}' >"$work/slow.json"
"$BIN/cledgerd" --data-dir "$D2" --listen "127.0.0.1:$PORT2" --config "$work/slow.json" 2>"$work/slow.log" &
PID2=$!
for _ in $(seq 1 150); do
    [ -f "$D2/service_cert.pem" ] && curl -s --cacert "$D2/service_cert.pem" "$URL2/node/ready" >/dev/null 2>&1 && break
    sleep 0.1
done
S2=(--endpoint "$URL2" --service-cert "$D2/service_cert.pem" --cert "$D2/admin_cert.pem" --key "$D2/admin_key.pem")
txs=$("$CL" put "slow entry" --collection slow "${S2[@]}" 2>"$work/err") || bad "put on the slow node: $(cat "$work/err")"
expect 0 "list --to an uncommitted entry" -- "$CL" list --collection slow --to "$txs" --timeout 10 "${S2[@]}"
[ "$(cat "$work/out")" = "$txs	slow entry" ] && ok || bad "list --to $txs: $(cat "$work/out" "$work/err")"
pages=$(grep -c '"method":"GET","path":"/app/transactions"' "$work/slow.log")
[ "$pages" -ge 2 ] && ok || bad "the listing was not sent back to wait for the commit ($pages page requests)"
[ "$pages" -le 40 ] && ok || bad "the client spun on the repeated page: $pages requests in ~1.5 s"
echo "slow node: $pages page requests" >&2; kill -9 "$PID2" 2>/dev/null; wait "$PID2" 2>/dev/null

# graceful stop
kill -TERM "$PID"; wait "$PID"; st=$?; PID=""
[ "$st" -eq 0 ] && ok || bad "cledgerd exit status $st after SIGTERM"
expect 3 "server stopped" -- "$CL" status "$tx" --timeout 2

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
