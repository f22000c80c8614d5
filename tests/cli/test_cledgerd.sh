#!/usr/bin/env bash
# End-to-end tests of cledgerd: real processes on loopback, real TLS with client certificates,
# curl and the official JS and Python SDKs. Usage: test_cledgerd.sh BIN_DIR
set -uo pipefail
BIN=$(cd "${1:?bin dir}" && pwd)
SRC=${CLEDGER_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
[ -x "$BIN/cledgerd" ] || { echo "cledgerd not built"; exit 1; }
work=$(mktemp -d /tmp/cl-e2e-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$work"; }
trap cleanup EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; echo "  (cledgerd log tail: $(tail -3 "$work/cledgerd.log" 2>/dev/null | tr '\n' ' '))" >&2; }
tu_sum() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

D="$work/node"; PORT=$(free_port); URL="https://127.0.0.1:$PORT"
start() { # start [extra args]
    "$BIN/cledgerd" --data-dir "$D" --listen "127.0.0.1:$PORT" --log-level warn "$@" 2>>"$work/cledgerd.log" &
    PID=$!; pids+=("$PID")
    for _ in $(seq 1 300); do # up to 30 s: generous for a loaded CI box
        [ -f "$D/service_cert.pem" ] && curl -s --cacert "$D/service_cert.pem" "$URL/node/ready" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "cledgerd did not become ready"; tail -20 "$work/cledgerd.log"; return 1
}
C() { curl -s --cacert "$D/service_cert.pem" "$@"; }
ADM=(--cert "$D/admin_cert.pem" --key "$D/admin_key.pem")
code() { curl -s -o "$work/body" -w '%{http_code}' --cacert "$D/service_cert.pem" "$@"; }
wait_committed() { # txid [cert args...]
    local t=$1; shift
    for _ in $(seq 1 400); do # up to 20 s
        C "$@" "$URL/app/transactions/$t/status?api-version=2022-05-13" | grep -q Committed && return 0
        sleep 0.05
    done; return 1
}

# Debian's default soft descriptor limit: cledgerd raises its own to the hard limit (<= 65,536)
hard=$(ulimit -Hn)
ulimit -Sn 1024 2>/dev/null
start || exit 1
[ "$(stat -c %a "$D/admin_key.pem")" = 600 ] && ok || bad "admin key mode"
want=$hard
[ "$hard" = unlimited ] || [ "$hard" -gt 65536 ] && want=65536
got=$(awk '/^Max open files/ { print $4 }' "/proc/$PID/limits")
[ "$got" = "$want" ] && ok || bad "descriptor limit: soft $got, expected $want (hard $hard)"
# write, commit, read, receipt
r=$(code "${ADM[@]}" -H 'content-type: application/json' -D "$work/h" \
    -d '{"contents":"hello e2e"}' "$URL/app/transactions?api-version=2022-05-13&collectionId=e2e")
[ "$r" = 200 ] && ok || bad "POST: $r $(cat "$work/body")"
tx=$(grep -i '^x-ms-ccf-transaction-id:' "$work/h" | tr -d '\r' | awk '{print $2}')
[[ "$tx" =~ ^[0-9]+\.[0-9]+$ ]] && ok || bad "transaction id header: '$tx'"
wait_committed "$tx" "${ADM[@]}" && ok || bad "not committed"
C "${ADM[@]}" "$URL/app/transactions/$tx?api-version=2022-05-13&collectionId=e2e" | grep -q '"contents":"hello e2e"' && ok || bad "read back"
C "${ADM[@]}" "$URL/app/transactions/$tx/receipt?api-version=2023-01-18-preview" >"$work/receipt.json"
"$BIN/cledger" verify-receipt "$work/receipt.json" --service-cert "$D/service_cert.pem" >/dev/null && ok || bad "receipt does not verify: $(head -c 300 "$work/receipt.json")"

# identities and roles
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/r.key" -out "$work/r.pem" -subj /CN=reader -days 2 2>/dev/null
fp=$(openssl x509 -in "$work/r.pem" -noout -fingerprint -sha256 | cut -d= -f2)
RD=(--cert "$work/r.pem" --key "$work/r.key")
[ "$(code "${RD[@]}" "$URL/app/transactions/$tx/status?api-version=2022-05-13")" = 401 ] && ok || bad "unknown cert not 401"
[ "$(code "$URL/app/transactions/$tx/status?api-version=2022-05-13")" = 401 ] && ok || bad "no cert not 401"
[ "$(code "${ADM[@]}" -X PATCH -H 'content-type: application/merge-patch+json' -d '{"assignedRole":"Reader"}' "$URL/app/users/$fp?api-version=2022-05-13")" = 200 ] && ok || bad "add reader"
[ "$(code "${RD[@]}" "$URL/app/transactions/$tx/status?api-version=2022-05-13")" = 200 ] && ok || bad "reader read"
[ "$(code "${RD[@]}" -H 'content-type: application/json' -d '{"contents":"x"}' "$URL/app/transactions?api-version=2022-05-13")" = 403 ] && ok || bad "reader write not 403"
# a registered certificate outside its validity period (expired five days ago): 401, saying why
python3 - "$work/x.pem" "$work/x.key" <<'PY'
import datetime, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
k = ec.generate_private_key(ec.SECP256R1())
n = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "expired")])
now = datetime.datetime.now(datetime.timezone.utc)
c = (x509.CertificateBuilder().subject_name(n).issuer_name(n).public_key(k.public_key())
     .serial_number(x509.random_serial_number())
     .not_valid_before(now - datetime.timedelta(days=10))
     .not_valid_after(now - datetime.timedelta(days=5)).sign(k, hashes.SHA256()))
open(sys.argv[1], "wb").write(c.public_bytes(serialization.Encoding.PEM))
open(sys.argv[2], "wb").write(k.private_bytes(serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
PY
xfp=$(openssl x509 -in "$work/x.pem" -noout -fingerprint -sha256 | cut -d= -f2)
[ "$(code "${ADM[@]}" -X PATCH -H 'content-type: application/merge-patch+json' -d '{"assignedRole":"Reader"}' "$URL/app/users/$xfp?api-version=2022-05-13")" = 200 ] && ok || bad "add expired reader"
[ "$(code --cert "$work/x.pem" --key "$work/x.key" "$URL/app/transactions/$tx/status?api-version=2022-05-13")" = 401 ] && grep -q 'not valid now' "$work/body" && ok || bad "expired cert not 401: $(cat "$work/body")"
# hostile input
[ "$(code "${ADM[@]}" -H 'content-type: application/json' -d '{"contents":' "$URL/app/transactions?api-version=2022-05-13")" = 400 ] && ok || bad "bad json"
[ "$(code "${ADM[@]}" -H 'content-type: text/plain' -d '{"contents":"x"}' "$URL/app/transactions?api-version=2022-05-13")" = 415 ] && ok || bad "content type"
[ "$(code "${ADM[@]}" "$URL/app/transactions/2.x/status?api-version=2022-05-13")" = 400 ] && ok || bad "bad txid"
head -c 2000000 /dev/zero | tr '\0' 'a' >"$work/big"
[ "$(code "${ADM[@]}" -H 'content-type: application/json' --data-binary @"$work/big" "$URL/app/transactions?api-version=2022-05-13")" = 413 ] && ok || bad "huge body"
[ "$(code "${ADM[@]}" "$URL/app/nope?api-version=2022-05-13")" = 404 ] && ok || bad "unknown route"

# over 1,000 malformed or hostile requests on the wire: exact 4xx each, node keeps serving,
# nothing written
if /usr/bin/python3 "$SRC/tests/cli/hostile.py" "$URL" "$D/service_cert.pem" "$D/admin_cert.pem" "$D/admin_key.pem" >"$work/hostile.out" 2>&1; then ok; else bad "hostile requests: $(tail -5 "$work/hostile.out")"; fi

# official SDKs
export CLEDGER_ENDPOINT=$URL CLEDGER_SERVICE_CERT=$D/service_cert.pem CLEDGER_CERT=$D/admin_cert.pem CLEDGER_KEY=$D/admin_key.pem CLEDGER_OUT=$work
if bash "$SRC/tests/sdk/ensure-node-modules.sh"; then
    if NODE_EXTRA_CA_CERTS="$D/service_cert.pem" node "$SRC/tests/sdk/js_flow.js" >"$work/js.out" 2>&1; then ok; else bad "JS SDK flow: $(tail -5 "$work/js.out")"; fi
    "$BIN/cledger" verify-receipt "$work/js_receipt.json" --service-cert "$D/service_cert.pem" >/dev/null && ok || bad "JS receipt"
else
    bad "npm ci failed: the JS SDK could not be installed"
fi
if /usr/bin/python3 "$SRC/tests/sdk/py_flow.py" >"$work/py.out" 2>&1; then ok; else bad "Python SDK flow: $(tail -8 "$work/py.out")"; fi
[ -f "$work/py_receipt.json" ] && "$BIN/cledger" verify-receipt "$work/py_receipt.json" --service-cert "$D/service_cert.pem" >/dev/null && ok || bad "Python receipt"

# graceful restart keeps identity, entries, users, receipts
cp "$D/service_cert.pem" "$work/svc.pem"
kill -TERM "$PID"; wait "$PID"; [ $? -eq 0 ] && ok || bad "SIGTERM exit status"
# and the Merkle store (no checksums: derived from the chunks) lost a bit in the root of its
# largest subtree, which every later root uses: the start finds it and rebuilds the store
/usr/bin/python3 - "$D/merkle" <<'PY' || bad "no Merkle level file to damage"
import os, sys
d = sys.argv[1]
top = max(n for n in os.listdir(d) if n.startswith("level_") and os.path.getsize(os.path.join(d, n)) >= 32)
with open(os.path.join(d, top), "r+b") as f:
    b = bytearray(f.read(32)); b[5] ^= 0x40; f.seek(0); f.write(b)
PY
start || exit 1
grep -q 'rebuilding the Merkle store' "$work/cledgerd.log" && ok || bad "damaged Merkle store not noticed at start"
C "${ADM[@]}" "$URL/app/transactions/$tx/receipt?api-version=2023-01-18-preview" >"$work/receipt2.json"
"$BIN/cledger" verify-receipt "$work/receipt2.json" --service-cert "$D/service_cert.pem" >/dev/null && ok || bad "receipt after the Merkle store was rebuilt: $(head -c 300 "$work/receipt2.json")"
cmp -s "$D/service_cert.pem" "$work/svc.pem" && ok || bad "identity changed on restart"
[ "$(code "${RD[@]}" "$URL/app/transactions/$tx?api-version=2022-05-13&collectionId=e2e")" = 200 ] && grep -q 'hello e2e' "$work/body" && ok || bad "entry or user lost on restart"
"$BIN/cledger" verify-receipt "$work/receipt.json" --service-cert "$D/service_cert.pem" >/dev/null && ok || bad "old receipt after restart"

# SIGKILL under write load: every acknowledged write survives (3 rounds; the node killed in
# round 3 writes its raft log from writer threads, the others through io_uring where the kernel
# has it)
echo '{"raftLogIo":"threads"}' >"$work/threads.json"
for round in 1 2 3; do
    : >"$work/acked"
    ( for i in $(seq 1 400); do
        h=$(curl -s -o /dev/null -D - --cacert "$D/service_cert.pem" "${ADM[@]}" -H 'content-type: application/json' \
            -d "{\"contents\":\"kill $round $i\"}" "$URL/app/transactions?api-version=2022-05-13&collectionId=kill" | tr -d '\r')
        echo "$h" | grep -q '^HTTP/1.1 200' && echo "$(echo "$h" | grep -i '^x-ms-ccf-transaction-id' | awk '{print $2}') kill $round $i" >>"$work/acked"
      done ) &
    wl=$!
    sleep 0.$((3 + RANDOM % 6))
    kill -9 "$PID"; wait "$PID" 2>/dev/null; kill "$wl" 2>/dev/null; wait "$wl" 2>/dev/null
    if [ "$round" = 2 ]; then start --config "$work/threads.json" || exit 1; else start || exit 1; fi
    lost=0
    while read -r t c1 c2 c3; do
        [ -n "$t" ] || continue
        wait_committed "$t" "${ADM[@]}" || { lost=$((lost + 1)); continue; }
        C "${ADM[@]}" "$URL/app/transactions/$t?api-version=2022-05-13&collectionId=kill" | grep -q "\"contents\":\"$c1 $c2 $c3\"" || lost=$((lost + 1))
    done <"$work/acked"
    [ "$lost" -eq 0 ] && ok || bad "round $round: $lost of $(wc -l <"$work/acked") acknowledged writes lost"
done
# one cledgerd per data directory (the kill -9 rounds above show the lock goes with the process):
# a second one is refused at once, and the first goes on serving
P2=$(free_port)
timeout 20 "$BIN/cledgerd" --data-dir "$D" --listen "127.0.0.1:$P2" >"$work/second.out" 2>&1
[ $? -eq 1 ] && grep -q "in use by another cledgerd process" "$work/second.out" && ok || bad "second cledgerd on the same data directory: $(tail -2 "$work/second.out")"
[ "$(code "${ADM[@]}" -H 'content-type: application/json' -d '{"contents":"after the second"}' "$URL/app/transactions?api-version=2022-05-13")" = 200 ] && ok || bad "first cledgerd after the second was refused"
kill -TERM "$PID"; wait "$PID"
"$BIN/cledger" verify-ledger "$D" --service-cert "$D/service_cert.pem" >/dev/null && ok || bad "verify-ledger after crashes"
# the ledger type is fixed
"$BIN/cledgerd" --data-dir "$D" --listen "127.0.0.1:$PORT" --ledger-type private >/dev/null 2>&1; [ $? -eq 2 ] && ok || bad "ledger type change not refused"
# a directory that lost its node files is not taken for a new one (a new genesis would overwrite
# the old ledger), and a ledger that lost its files is not resumed (raft would replay its log
# into it at shifted seqnos): both refused with exit 1, nothing written
cp -a "$D" "$work/nonode"; rm -r "$work/nonode/node"
cp -a "$D" "$work/noledger"; rm "$work/noledger"/ledger/*
# and one flipped byte in the middle of the raft log segment being written is damage, not a torn
# write: refused, nothing changed (it was zeroed from there on, acknowledged entries with it)
cp -a "$D" "$work/raftflip"
/usr/bin/python3 - "$work/raftflip/raft" <<'PY' || bad "raftflip: no raft log segment with data"
import glob, struct, sys
# the newest segment with entries; its records (32-byte header: magic, crc, index, term, length,
# type, 3 zero bytes; payload padded to 8), batch marks ("CLRB") skipped, zero padding to the
# next 4 KiB block skipped
p = sorted(glob.glob(sys.argv[1] + "/log-*"))[-1]
b = open(p, "rb").read()
if not b.strip(b"\0"):
    p = sorted(glob.glob(sys.argv[1] + "/log-*"))[-2]
    b = open(p, "rb").read()
recs, pos = [], 0
while pos + 32 <= len(b):
    magic, _, _, _, n = struct.unpack_from("<IIQQI", b, pos)
    if magic == 0x31524C43:
        recs.append((pos, n))
        pos += 32 + (n + 7) // 8 * 8
    elif magic == 0x42524C43:
        pos += 32
    elif pos % 4096 and not b[pos:(pos | 4095) + 1].strip(b"\0"):
        pos = (pos | 4095) + 1
    else:
        break
if len(recs) < 20:
    sys.exit(1)
off, n = recs[len(recs) // 2]
with open(p, "r+b") as f:
    f.seek(off + 32 + n // 2)
    f.write(bytes([b[off + 32 + n // 2] ^ 0x10]))
PY
# and a raft log that lost its segments ends before the ledger's last signature: refused too
cp -a "$D" "$work/noraftlog"; rm "$work/noraftlog"/raft/log-*
# and another ledger's secrets file: no signature covers node/ledger_secrets, so the ledger's
# secret records are decrypted with it at start (it was taken, and new entries went under keys
# the history does not know)
cp -a "$D" "$work/foreignsecrets"
"$BIN/cledger" ledger init "$work/otherledger" >/dev/null 2>&1 || bad "cledger ledger init"
cp "$work/otherledger/node/ledger_secrets" "$work/foreignsecrets/node/ledger_secrets"
# a first start that stopped before its service was created (node/ written, no node/ledger_type,
# nothing in ledger/ or raft/): refused, saying so and what to do (it said only "already exists")
cp -a "$D" "$work/halfstart"; rm "$work/halfstart/node/ledger_type" "$work/halfstart"/ledger/* "$work/halfstart"/raft/*
# one flipped byte in the middle of the open ledger chunk of a node stopped cleanly: damage, not a
# torn write (a clean stop synced the chunk; a process that dies leaves a prefix of its writes):
# refused, nothing changed. It used to be cut there with every whole frame after it.
cp -a "$D" "$work/ledgerflip"
chunk=$(ls "$work/ledgerflip/ledger" | grep -v '\.committed$' | sort -t_ -k2 -n | tail -1)
size=$(stat -c %s "$work/ledgerflip/ledger/$chunk")
/usr/bin/python3 - "$work/ledgerflip/ledger/$chunk" $((size / 2)) <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2]))
    b = f.read(1)
    f.seek(int(sys.argv[2]))
    f.write(bytes([b[0] ^ 0x10]))
PY
# a node file lost: the message names it (it said only "not found")
cp -a "$D" "$work/nonodekey"; rm "$work/nonodekey/node/node_key.pem"
for c in nonode noledger raftflip ledgerflip noraftlog foreignsecrets halfstart nonodekey; do
    # (raftflip and noraftlog are refused once the node's files are open: the TLS certificate, issued at each
    # start, the index's lock file and the Merkle store's sync marker may change (the open hashes the
    # leaves after the last signature again, to the same records); the raft log, ledger, index and
    # the Merkle records may not)
    (cd "$work/$c" && find . -type f ! -name tls_cert.pem ! -name lock.mdb ! -name synced_size -exec sha256sum {} + | sort) >"$work/$c.before"
    timeout 20 "$BIN/cledgerd" --data-dir "$work/$c" --listen "127.0.0.1:$PORT" >"$work/$c.out" 2>&1; st=$?
    (cd "$work/$c" && find . -type f ! -name tls_cert.pem ! -name lock.mdb ! -name synced_size -exec sha256sum {} + | sort) >"$work/$c.after"
    before=$(cat "$work/$c.before"); after=$(cat "$work/$c.after")
    [ "$before" = "$after" ] || echo "changed by the refused start: $(diff "$work/$c.before" "$work/$c.after" | tr '\n' ' ')"
    case $c in nonode) want="no node/ledger_type";; noledger) want="not even its genesis";; raftflip) want="raft log in .* is damaged: .* is damaged at offset";;
        ledgerflip) want="is damaged at offset .*no torn write can explain it";;
        noraftlog) want="raft log in .* does not match the ledger: it ends at raft index 0";;
        foreignsecrets) want="ledger_secrets does not belong to this ledger: the record of secret 1 (seqno 3) does not decrypt with it";;
        halfstart) want="the first start of this directory stopped before its service was created";;
        nonodekey) want="node/node_key.pem: not found";; esac
    [ $st -eq 1 ] && grep -q "$want" "$work/$c.out" && [ "$before" = "$after" ] && ok || bad "$c: exit $st, $(tail -1 "$work/$c.out")"
done

# an older committed chunk cut at a frame boundary (every frame left whole): refused at start,
# naming it, nothing changed but the Merkle store's sync marker and the index's boot marker
# (derived state, written before the chunks' ends are checked against the index). Start reads the
# chunks only from the last signature on; it used to serve, and only the reads that reached the
# missing frames failed. 3,000 entries of 4,000 bytes fill more than two 5 MiB chunks.
if [ -x "$BIN/bench_load" ]; then
    cp -a "$D" "$work/oldcut"
    P2=$(free_port)
    "$BIN/cledgerd" --data-dir "$work/oldcut" --listen "127.0.0.1:$P2" --log-level warn 2>>"$work/cledgerd.log" &
    P2PID=$!; pids+=("$P2PID")
    for _ in $(seq 1 300); do curl -sf -o /dev/null --cacert "$D/service_cert.pem" "https://127.0.0.1:$P2/node/ready" && break; sleep 0.1; done
    "$BIN/bench_load" --url "https://127.0.0.1:$P2" --cacert "$D/service_cert.pem" --cert "$D/admin_cert.pem" \
        --key "$D/admin_key.pem" --connections 8 --threads 1 --duration 60 --requests 3000 --body-bytes 4000 \
        --mode write >/dev/null 2>&1 || bad "oldcut: bench_load"
    kill -TERM "$P2PID"; wait "$P2PID"
    first=$(ls "$work/oldcut/ledger" | grep '^ledger_1-[0-9]*\.committed$')
    n=$(ls "$work/oldcut/ledger" | grep -c '\.committed$')
    # the offset of its last frame: frames follow the 32-byte header, each a u32 (little-endian) of
    # the bytes after it, then those bytes
    cut=$(/usr/bin/python3 -c '
import struct, sys
b = open(sys.argv[1], "rb").read()
pos = last = 32
while pos + 4 <= len(b):
    last = pos
    pos += 4 + struct.unpack_from("<I", b, pos)[0]
print(last if pos == len(b) else -1)' "$work/oldcut/ledger/$first")
    if [ -n "$first" ] && [ "$n" -ge 2 ] && [ "$cut" -gt 32 ]; then
        truncate -s "$cut" "$work/oldcut/ledger/$first"
        (cd "$work/oldcut" && find . -type f ! -name tls_cert.pem ! -name lock.mdb ! -name synced_size ! -name dirty -exec sha256sum {} + | sort) >"$work/oldcut.before"
        timeout 20 "$BIN/cledgerd" --data-dir "$work/oldcut" --listen "127.0.0.1:$P2" >"$work/oldcut.out" 2>&1; st=$?
        (cd "$work/oldcut" && find . -type f ! -name tls_cert.pem ! -name lock.mdb ! -name synced_size ! -name dirty -exec sha256sum {} + | sort) >"$work/oldcut.after"
        [ $st -eq 1 ] && grep -q "$first ends at seqno [0-9]*, but its name says" "$work/oldcut.out" &&
            cmp -s "$work/oldcut.before" "$work/oldcut.after" && ok || bad "oldcut: exit $st, $(grep -c "but its name says" "$work/oldcut.out") lines naming it, changed: $(diff "$work/oldcut.before" "$work/oldcut.after" | tr '\n' ' ')"
    else
        bad "oldcut: no committed chunk to cut (first '$first', $n committed, last frame at $cut)"
    fi
fi

# the administrator certificate deleted: a resumed service generates nothing (the key stays, the
# users in the ledger stand); --initial-admin-cert on a service that has users is reported unused
cp -a "$D" "$work/noadmincert"; rm "$work/noadmincert/admin_cert.pem"
keysum=$(sha256sum <"$work/noadmincert/admin_key.pem")
P2=$(free_port)
"$BIN/cledgerd" --data-dir "$work/noadmincert" --listen "127.0.0.1:$P2" --initial-admin-cert "$work/otherledger/service_cert.pem" >"$work/noadmincert.out" 2>&1 &
P2PID=$!; pids+=("$P2PID")
for _ in $(seq 1 100); do grep -q 'was not used' "$work/noadmincert.out" && break; sleep 0.1; done
st=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$D/service_cert.pem" "${ADM[@]}" "https://127.0.0.1:$P2/app/users?api-version=2024-08-22-preview")
kill -TERM "$P2PID"; wait "$P2PID"
[ "$st" = 200 ] && [ ! -e "$work/noadmincert/admin_cert.pem" ] && [ "$(sha256sum <"$work/noadmincert/admin_key.pem")" = "$keysum" ] &&
    grep -q 'initial-admin-cert .* was not used: .* already has users' "$work/noadmincert.out" && ok ||
    bad "noadmincert: users $st, $(ls "$work/noadmincert"), $(grep -c 'was not used' "$work/noadmincert.out") warnings"

# raft/meta lost (the node's term and vote): a service of one voter starts with the last entry's
# term and no vote, every entry there, and says what was lost (it said "an interrupted bootstrap")
cp -a "$D" "$work/nometa"; rm "$work/nometa/raft/meta"
n0=$("$BIN/cledger" verify-ledger "$work/nometa" --service-cert "$D/service_cert.pem" --json 2>/dev/null | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["entries"])' 2>/dev/null || echo x)
P2=$(free_port)
"$BIN/cledgerd" --data-dir "$work/nometa" --listen "127.0.0.1:$P2" >"$work/nometa.out" 2>&1 &
P2PID=$!; pids+=("$P2PID")
for _ in $(seq 1 100); do curl -sf -o /dev/null --cacert "$D/service_cert.pem" "https://127.0.0.1:$P2/node/ready" && break; sleep 0.1; done
st=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$D/service_cert.pem" "${ADM[@]}" -H 'content-type: application/json' -d '{"contents":"after meta was lost"}' "https://127.0.0.1:$P2/app/transactions?api-version=2024-08-22-preview")
kill -TERM "$P2PID"; wait "$P2PID"
n1=$("$BIN/cledger" verify-ledger "$work/nometa" --service-cert "$D/service_cert.pem" --json 2>/dev/null | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["entries"])' 2>/dev/null || echo y)
[ "$st" = 200 ] && [ -s "$work/nometa/raft/meta" ] && [ "$n0" != x ] && [ "$n1" -gt "$n0" ] &&
    grep -q 'raft/meta is missing, but the log holds entries 1\.\.[0-9]*: the node.s term and vote were lost' "$work/nometa.out" && ok ||
    bad "nometa: write $st, entries $n0 -> $n1, $(grep -c 'meta is missing' "$work/nometa.out") messages"

# a ledger that lost its tail (a power cut before the ledger's pages reached the disk; the raft
# log is the durability point) is rebuilt from the raft log byte for byte, signature entries too
# (RFC 6979 nonces): receipts handed out before the loss stay part of the history. With random
# nonces every replayed signature differed.
cp -a "$D" "$work/replay"
chunk=$(ls "$work/replay/ledger" | grep -v '\.committed$' | sort -t_ -k2 -n | tail -1)
cp "$work/replay/ledger/$chunk" "$work/replay.orig"
size=$(stat -c %s "$work/replay.orig")
nsig=$("$BIN/cledger" verify-ledger "$D" --service-cert "$D/service_cert.pem" --json 2>/dev/null | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin).get("signatures", 0))' 2>/dev/null || echo 0)
truncate -s $((size / 2)) "$work/replay/ledger/$chunk"
P3=$(free_port)
"$BIN/cledgerd" --data-dir "$work/replay" --listen "127.0.0.1:$P3" --log-level warn 2>"$work/replay.out" & rp=$!; pids+=("$rp")
for _ in $(seq 1 300); do curl -s --cacert "$D/service_cert.pem" "https://127.0.0.1:$P3/node/ready" >/dev/null 2>&1 && break; sleep 0.1; done
kill -TERM "$rp"; wait "$rp"
[ "$(stat -c %s "$work/replay/ledger/$chunk")" -ge "$size" ] && cmp -s -n "$size" "$work/replay.orig" "$work/replay/ledger/$chunk" && ok ||
    bad "the ledger rebuilt from the raft log differs from the one it lost ($(cmp -n "$size" "$work/replay.orig" "$work/replay/ledger/$chunk" 2>&1 | head -1); $nsig signatures in the ledger)"

# SIGTERM in the middle of write load: graceful stop, exit 0 (regression: libraft crashed when
# closed with a signature command still being appended)
if [ -x "$BIN/bench_load" ]; then
    for round in 1 2 3; do
        start || exit 1
        "$BIN/bench_load" --url "$URL" --cacert "$D/service_cert.pem" --cert "$D/admin_cert.pem" \
            --key "$D/admin_key.pem" --connections 16 --threads 1 --duration 5 --mode write >/dev/null 2>&1 &
        lp=$!
        sleep 0.$((5 + RANDOM % 5))
        kill -TERM "$PID"; wait "$PID"; rc=$?
        kill "$lp" 2>/dev/null; wait "$lp" 2>/dev/null
        [ "$rc" -eq 0 ] && ok || bad "SIGTERM under write load, round $round: exit $rc"
    done
    "$BIN/cledger" verify-ledger "$D" --service-cert "$D/service_cert.pem" >/dev/null && ok || bad "verify-ledger after stops under load"
fi

# bad command lines and config files: a clear message and exit 2, nothing started
badcli() { # description -- args...
    local what=$1; shift 2
    "$BIN/cledgerd" "$@" >"$work/bad.out" 2>&1; local rc=$?
    [ "$rc" -eq 2 ] && [ -s "$work/bad.out" ] && ok || bad "$what: exit $rc: $(head -2 "$work/bad.out")"
}
badcli "no arguments" --
badcli "unknown flag" -- --frobnicate
badcli "flag without value" -- --data-dir
badcli "bad listen" -- --data-dir "$work/x" --listen nonsense
badcli "bad port" -- --data-dir "$work/x" --listen 127.0.0.1:99999
badcli "bad ledger type" -- --data-dir "$work/x" --listen 127.0.0.1:1 --ledger-type secret
badcli "bad log level" -- --data-dir "$work/x" --listen 127.0.0.1:1 --log-level loud
echo '{"listen":' >"$work/c1.json"; badcli "config not JSON" -- --config "$work/c1.json"
echo '{"colour":"blue"}' >"$work/c2.json"; badcli "config unknown key" -- --config "$work/c2.json"
printf '{"x\\u001b[31mRED":1}' >"$work/c2e.json"; badcli "config key with an escape" -- --config "$work/c2e.json"
grep -q 'unknown setting "x?\[31mRED"' "$work/bad.out" && ! grep -q $'\x1b' "$work/bad.out" && ok || bad "escape echoed: $(cat -v "$work/bad.out")"
badcli "config is a directory" -- --config "$work"
grep -q 'is not a regular file' "$work/bad.out" && ok || bad "config directory message: $(head -1 "$work/bad.out")"
echo '{"sigIntervalMs":"fast"}' >"$work/c3.json"; badcli "config wrong type" -- --config "$work/c3.json"
badcli "config missing" -- --config "$work/none.json"
echo '{"raftLogIo":"aio"}' >"$work/c4.json"; badcli "config bad raftLogIo" -- --config "$work/c4.json"
echo '{"maxBodyBytes":"big"}' >"$work/c5.json"; badcli "config bad maxBodyBytes" -- --config "$work/c5.json"
# a flag wins over the config file, but a broken value in the file is refused all the same
echo '{"dataDir":5}' >"$work/c6.json"
badcli "config wrong type under a flag" -- --data-dir "$work/x" --listen 127.0.0.1:99999 --config "$work/c6.json"
grep -q '"dataDir" must be a string' "$work/bad.out" && ok || bad "config wrong type under a flag: $(head -2 "$work/bad.out")"
[ ! -e "$work/x" ] && ok || bad "a refused start created a data directory"
# --listen is checked before the data directory is touched (until 2026-11-25 a host name or a busy
# port failed with "start-up failed: invalid argument" / "input/output error" after the service
# was created, or after a resumed one's view was raised)
badcli "listen on a host name" -- --data-dir "$work/x" --listen example.invalid:1
grep -q "'example.invalid' is not an IP address" "$work/bad.out" && ok || bad "host name message: $(head -2 "$work/bad.out")"
badcli "data dir too long" -- --data-dir "$work/$(printf 'a%.0s' $(seq 1 950))" --listen 127.0.0.1:0
busy=$(free_port)
python3 -c 'import socket,sys,time; s=socket.socket(); s.bind(("127.0.0.1",int(sys.argv[1]))); s.listen(); time.sleep(30)' "$busy" &
hold=$!; pids+=("$hold")
for _ in $(seq 1 50); do python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),1)' "$busy" 2>/dev/null && break; sleep 0.1; done
"$BIN/cledgerd" --data-dir "$work/x" --listen "127.0.0.1:$busy" >"$work/bad.out" 2>&1; rc=$?
[ "$rc" = 1 ] && grep -q "cannot listen on 127.0.0.1:$busy: Address already in use" "$work/bad.out" && [ ! -e "$work/x" ] && ok ||
    bad "busy port, new service: exit $rc, $(head -2 "$work/bad.out"), dir $(ls "$work/x" 2>&1 | head -1)"
before=$(tu_sum "$work/node")
"$BIN/cledgerd" --data-dir "$work/node" --listen "127.0.0.1:$busy" >"$work/bad.out" 2>&1; rc=$?
[ "$rc" = 1 ] && [ "$(tu_sum "$work/node")" = "$before" ] && ok || bad "busy port, existing service: exit $rc, changed: $([ "$(tu_sum "$work/node")" = "$before" ] || echo yes)"
kill "$hold" 2>/dev/null; wait "$hold" 2>/dev/null
# first starts: one given --initial-admin-cert keeps a copy as admin_cert.pem before its ledger is
# created, so a first start cut short (kill -9 once its raft log exists) resumes with that
# administrator without the flag (until 2026-11-25 it came back with no users: nobody could use
# it); an admin_key.pem left without its certificate in a new directory gets one issued from it
# (it was refused); node/ledger_type
# without any entry is named as an interrupted first start
sD=$D sPORT=$PORT sURL=$URL
D="$work/iadm"; PORT=$(free_port); URL="https://127.0.0.1:$PORT"
"$BIN/cledgerd" --data-dir "$D" --listen "127.0.0.1:$PORT" --initial-admin-cert "$work/r.pem" 2>>"$work/cledgerd.log" &
p=$!; pids+=("$p")
for _ in $(seq 1 500); do [ -n "$(ls "$D/raft" 2>/dev/null)" ] && break; sleep 0.01; done
kill -9 "$p"; wait "$p" 2>/dev/null
fp() { openssl x509 -in "$1" -noout -fingerprint -sha256; }
[ "$(fp "$D/admin_cert.pem")" = "$(fp "$work/r.pem")" ] && ok || bad "initial admin certificate not kept as admin_cert.pem"
start || exit 1
[ "$(code --cert "$work/r.pem" --key "$work/r.key" "$URL/app/users?api-version=2024-01-26-preview")" = 200 ] && ok ||
    bad "initial administrator after a first start cut short: $(cat "$work/body")"
kill -TERM "$PID"; wait "$PID"
D="$work/keyleft"; PORT=$(free_port); URL="https://127.0.0.1:$PORT"
mkdir -p "$D" && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$D/admin_key.pem" 2>/dev/null
start || exit 1
[ "$(code --cert "$D/admin_cert.pem" --key "$D/admin_key.pem" "$URL/app/users?api-version=2024-01-26-preview")" = 200 ] && ok ||
    bad "administrator from a key left by a first start: $(cat "$work/body")"
kill -TERM "$PID"; wait "$PID"
D=$sD PORT=$sPORT URL=$sURL
mkdir -p "$work/typeonly/node" && printf 'public\nchunk_size 4194304\n' >"$work/typeonly/node/ledger_type"
"$BIN/cledgerd" --data-dir "$work/typeonly" --listen 127.0.0.1:0 >"$work/bad.out" 2>&1; rc=$?
[ "$rc" = 1 ] && grep -q "Remove $work/typeonly/node, ledger, merkle and index and start again" "$work/bad.out" && ok || bad "ledger_type without genesis: exit $rc, $(head -2 "$work/bad.out")"

# private ledger: no plaintext contents anywhere under the data directory
D="$work/priv"; PORT=$(free_port); URL="https://127.0.0.1:$PORT"; ADM=(--cert "$D/admin_cert.pem" --key "$D/admin_key.pem")
start --ledger-type private || exit 1
r=$(code "${ADM[@]}" -H 'content-type: application/json' -D "$work/h" -d '{"contents":"PRIVATE-MARKER-7731"}' "$URL/app/transactions?api-version=2022-05-13")
ptx=$(grep -i '^x-ms-ccf-transaction-id:' "$work/h" | tr -d '\r' | awk '{print $2}')
wait_committed "$ptx" "${ADM[@]}" && ok || bad "private write"
kill -TERM "$PID"; wait "$PID"
grep -rq 'PRIVATE-MARKER-7731' "$D" && bad "plaintext found under the private data directory" || ok
# cledger ledger writes nothing to a node's directory: not while the node runs (the directory is
# locked), and not after (its entries come from the raft log: an offline one was cut at the next
# start, or, signed, made the node apply its whole raft log a second time)
start --ledger-type private || exit 1
"$BIN/cledger" ledger status "$D" >/dev/null 2>"$work/lk.err"; lk=$?
kill -TERM "$PID"; wait "$PID"
[ "$lk" = 2 ] && grep -q 'is in use by another process' "$work/lk.err" && ok || bad "cledger ledger on a running node's directory: exit $lk, $(cat "$work/lk.err")"
before=$(tu_sum "$D")
for w in "append $D --collection c x" "append $D --collection c --no-sign x" "rotate-secret $D" "rotate-identity $D"; do
    # shellcheck disable=SC2086
    "$BIN/cledger" ledger $w >/dev/null 2>"$work/ow.err"; rc=$?
    [ "$rc" = 2 ] && grep -q "is a cledgerd node's data directory" "$work/ow.err" && ok || bad "cledger ledger $w on a node's directory: exit $rc, $(cat "$work/ow.err")"
done
[ "$(tu_sum "$D")" = "$before" ] && ok || bad "refused offline writes changed the directory"
"$BIN/cledger" ledger status "$D" >/dev/null && ok || bad "cledger ledger status on a stopped node's directory"

# a cut entry that the raft log does not re-create gives its IV to nobody: a raft log restored
# from an older copy that still reaches the last signature lacks the unsigned entries after it;
# they are cut at the start, and the write that takes their seqno goes to a new view (IV = seqno
# || view). Until 2026-11-25 it was written in the same view: another plaintext under the cut
# entry's key and IV, which a copy of ledger/ taken before still holds.
cp -a "$D/raft" "$work/raft-older"
echo '{"sigIntervalMs": 3600000, "sigMaxEntries": 1000000}' >"$work/nosig.json"
start --config "$work/nosig.json" || exit 1
code "${ADM[@]}" -H 'content-type: application/json' -D "$work/h" -d '{"contents":"UNSIGNED-IV-ENTRY"}' "$URL/app/transactions?api-version=2022-05-13&collectionId=ivcut" >/dev/null
otx=$(grep -i '^x-ms-ccf-transaction-id:' "$work/h" | tr -d '\r' | awk '{print $2}')
kill -9 "$PID"; wait "$PID" 2>/dev/null
rm -rf "$D/raft"; cp -a "$work/raft-older" "$D/raft"
cp -a "$D/ledger" "$work/ivcut-before"
start || exit 1
code "${ADM[@]}" -H 'content-type: application/json' -D "$work/h" -d '{"contents":"ONLINE-IV-ENTRY"}' "$URL/app/transactions?api-version=2022-05-13&collectionId=ivcut" >/dev/null
ntx=$(grep -i '^x-ms-ccf-transaction-id:' "$work/h" | tr -d '\r' | awk '{print $2}')
wait_committed "$ntx" "${ADM[@]}" && ok || bad "ivcut: write $ntx not committed"
ost=$(C "${ADM[@]}" "$URL/app/transactions/$otx/status?api-version=2022-05-13")
kill -TERM "$PID"; wait "$PID"
[[ "$otx" =~ ^[0-9]+\.[0-9]+$ ]] && [ "${ntx#*.}" = "${otx#*.}" ] && [ "${ntx%.*}" -gt "${otx%.*}" ] &&
    echo "$ost" | grep -q 'Invalid' && ok ||
    bad "ivcut: the cut entry $otx ($ost), the write at its seqno $ntx: not in a higher view"
# every (IV, ciphertext) pair in the ledger before and after: one ciphertext per IV
/usr/bin/python3 - "$work/ivcut-before" "$D/ledger" >"$work/ivcut.out" 2>&1 <<'PY' && ok || bad "ivcut: $(tail -3 "$work/ivcut.out")"
import glob, hashlib, os, struct, sys
seen, frames = {}, 0
for d in sys.argv[1:]:
    for f in glob.glob(os.path.join(d, "ledger_*")):
        b = open(f, "rb").read()
        off = 32
        while off + 4 <= len(b):
            n = struct.unpack_from("<I", b, off)[0]
            fr = b[off + 4:off + 4 + n]
            if n < 124 or len(fr) < n:
                break
            flags = struct.unpack_from("<H", fr, 2)[0]
            p, q = struct.unpack_from("<II", fr, 84)
            if flags & 1:
                iv, ct = fr[92:104], fr[120 + p:120 + p + q] + fr[104:120]
                h = hashlib.sha256(ct).hexdigest()
                if seen.setdefault(iv, h) != h:
                    sys.exit("IV %s encrypts two different plaintexts (%s)" % (iv.hex(), f))
                frames += 1
            off += 4 + n
if frames < 4:
    sys.exit("only %d encrypted frames found" % frames)
print(frames, "encrypted frames,", len(seen), "IVs")
PY
# ... nor in cledgerd's memory once the requests that carried it are done: the process's writable
# mappings are searched for the contents of entries written, read, listed and quoted in a 400
/usr/bin/python3 "$SRC/tests/cli/private_memory.py" "$BIN" "$work" >"$work/pm.out" 2>&1 && ok || bad "plaintext in memory: $(tail -6 "$work/pm.out")"

# a low descriptor limit and more connections than it allows: cledgerd caps its connections to fit
# (the ledger keeps its descriptors), cledger-attestd's accept runs out and closes the excess; no
# spinning on the listener, no flood of log lines, and both serve again afterwards
if [ -x "$BIN/cledger-attestd" ]; then
    /usr/bin/python3 "$SRC/tests/cli/fd_limit.py" "$BIN" "$work" >"$work/fdl.out" 2>&1 && ok || bad "descriptor limit: $(tail -4 "$work/fdl.out")"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
