#!/bin/sh
# bench/attest.sh — attestation throughput of cledger-attestd (issue 4 §7), next to
# `openssl speed rsa2048 ecdsap256 ecdsap384` measured in the same run on the same box.
#
#   sh bench/attest.sh [BIN_DIR=build/bin]
#
# Runs cledger-attestd on a fresh instance (default policies, no collateral: the chain and
# signature checks run, TCB evaluation does not), then bench_load POSTing the same request for
# ATTEST_DURATION seconds at ATTEST_CONNS keep-alive TLS connections:
#   SGX: /attest/SgxEnclave with the Azure SDK sample quote and its runtime data (Binary)
#   SNP: /attest/SevSnpVm with the go-sev-guest report, its VCEK and the Milan ASK/ARK
# Every answer must be 200 with a signed token (errors are counted and reported).
# Output: bench/attest-results.md (ATTEST_OUT) with the targets and met / not met.
set -eu
BIN=${1:-build/bin}
BIN=$(cd "$BIN" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${ATTEST_OUT:-$ROOT/bench/attest-results.md}
CONNS=${ATTEST_CONNS:-8}
DUR=${ATTEST_DURATION:-10}
VEC=$ROOT/tests/data/attestation-vectors
[ -x "$BIN/cledger-attestd" ] && [ -x "$BIN/bench_load" ] || {
    echo "attest.sh: build cledger-attestd and bench_load first ($BIN)" >&2
    exit 2
}
WORK=$(mktemp -d /tmp/cledger-attest-bench.XXXXXX)
PID=
cleanup() {
    # (set -e: a failed kill of a server that has already exited must not end the cleanup)
    if [ -n "$PID" ]; then
        kill -TERM "$PID" 2>/dev/null && sleep 0.5
        kill -KILL "$PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
PORT=$(/usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
"$BIN/cledger-attestd" --data-dir "$WORK/d" --listen "127.0.0.1:$PORT" --log-level warn \
    >"$WORK/attestd.log" 2>&1 &
PID=$!
i=0
until [ -s "$WORK/d/tls_cert.pem" ] &&
    curl -sf -o /dev/null --cacert "$WORK/d/tls_cert.pem" "https://127.0.0.1:$PORT/certs"; do
    i=$((i + 1))
    [ $i -lt 300 ] || { echo "attest.sh: cledger-attestd did not start" >&2; cat "$WORK/attestd.log" >&2; exit 1; }
    sleep 0.1
done
/usr/bin/python3 - "$VEC" "$WORK" <<'EOF'
import base64, json, sys
vec, work = sys.argv[1], sys.argv[2]
u = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
rd = lambda p: open(vec + "/" + p, "rb").read()
json.dump({"quote": u(rd("sgx/azure-sdk_sgx_quote_v3.bin")),
           "runtimeData": {"data": u(rd("sgx/azure-sdk_runtime_data.bin")), "dataType": "Binary"}},
          open(work + "/sgx.json", "w"))
from cryptography import x509
from cryptography.hazmat.primitives import serialization
vcek = x509.load_der_x509_certificate(rd("snp/go-sev-guest_vcek.der")).public_bytes(serialization.Encoding.PEM)
w = {"SnpReport": u(rd("snp/go-sev-guest_report.bin")), "VcekCertChain": u(vcek + rd("roots/ask_ark_milan.pem"))}
json.dump({"report": u(json.dumps(w).encode())}, open(work + "/snp.json", "w"))
EOF
run() { # name path body
    "$BIN/bench_load" --url "https://127.0.0.1:$PORT" --cacert "$WORK/d/tls_cert.pem" --mode get \
        --path "$2?api-version=2020-10-01" --post-file "$3" --connections "$CONNS" --threads 2 \
        --duration "$DUR" >"$WORK/$1.out" 2>"$WORK/$1.err" || { cat "$WORK/$1.err" >&2; exit 1; }
}
m() { awk -v k="$2" '$1 == k {print $2}' "$WORK/$1.out"; }
echo "attest.sh: SGX, $CONNS connections, $DUR s" >&2
run sgx /attest/SgxEnclave "$WORK/sgx.json"
echo "attest.sh: SNP, $CONNS connections, $DUR s" >&2
run snp /attest/SevSnpVm "$WORK/snp.json"
echo "attest.sh: openssl speed" >&2
SPEED=$(openssl speed -seconds 3 rsa2048 ecdsap256 ecdsap384 2>/dev/null | grep -E '^(rsa 2048|[ ]*256 bits ecdsa|[ ]*384 bits ecdsa)' || true)
# what attestd itself runs on AMD CPUs (crypto/cpu.h: libcrypto's ADX code masked, its AVX2 RSA code)
IA32=$(tr '\0' '\n' <"/proc/$PID/environ" 2>/dev/null | sed -n 's/^OPENSSL_ia32cap=//p' || true)
SPEED_ATTESTD=
if [ -n "$IA32" ]; then
    SPEED_ATTESTD=$(OPENSSL_ia32cap=$IA32 openssl speed -seconds 3 rsa2048 2>/dev/null | grep -E '^rsa 2048' || true)
fi
yn() { if [ "$1" = 1 ]; then echo met; else echo "**not met**"; fi; }
chk() { awk -v a="$1" -v b="$2" -v op="$3" 'BEGIN { if (op == ">=") print (a + 0 >= b + 0) ? 1 : 0; else print (a + 0 <= b + 0) ? 1 : 0 }'; }
SG=$(m sgx load.get.per_s); SP=$(m sgx load.get.p99_ms); SE=$(m sgx load.get.errors)
NG=$(m snp load.get.per_s); NP=$(m snp load.get.p99_ms); NE=$(m snp load.get.errors)
{
    echo "# cledger-attestd attestation throughput (bench/attest.sh)"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "- machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo); load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- $(openssl version); bench_load: $CONNS TLS keep-alive connections, 2 threads, $DUR s, one request in flight per connection; generator and server share the cores"
    echo "- default policies, no Intel collateral (chains and signatures verified, TCB evaluation skipped); every token RS256-signed (RSA-2048)"
    echo
    echo "| measure | value | target | status |"
    echo "|---|---|---|---|"
    echo "| SGX attestations/s (Azure SDK quote + Binary runtime data) | $SG/s, p50 $(m sgx load.get.p50_ms) ms, p99 $SP ms, $SE errors | ≥ 1,500/s | $(yn "$(chk "$SG" 1500 '>=')") |"
    echo "| SGX p99 latency | $SP ms | ≤ 20 ms | $(yn "$(chk "$SP" 20 '<=')") |"
    echo "| SNP attestations/s (go-sev-guest report + VCEK chain) | $NG/s, p50 $(m snp load.get.p50_ms) ms, p99 $NP ms, $NE errors | ≥ 500/s | $(yn "$(chk "$NG" 500 '>=')") |"
    echo "| SNP p99 latency | $NP ms | ≤ 20 ms | $(yn "$(chk "$NP" 20 '<=')") |"
    echo
    echo "Reference, same run (\`openssl speed -seconds 3 rsa2048 ecdsap256 ecdsap384\`, one core):"
    echo
    echo '```'
    echo "$SPEED"
    echo '```'
    if [ -n "$SPEED_ATTESTD" ]; then
        echo
        echo "cledger-attestd ran with \`OPENSSL_ia32cap=$IA32\` (crypto/cpu.h); the RSA-2048 signature as it runs there:"
        echo
        echo '```'
        echo "$SPEED_ATTESTD"
        echo '```'
    fi
} >"$OUT"
cat "$OUT"
