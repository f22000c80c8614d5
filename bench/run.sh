#!/bin/sh
# bench/run.sh — the `make bench` driver. Builds nothing: pass the directory holding the built
# programs (a Release build is what the numbers are meant for).
#
#   sh bench/run.sh [BIN_DIR=build/bin]
#
# Environment:
#   BENCH_DIR   parent of the scratch directory (default /tmp); the ledgers go to
#               $BENCH_DIR/cledger-bench, which is removed at the start and at the end
#   BENCH_OUT   markdown summary (default bench/results.md)
#   BENCH_10M=1 also append 10M entries and time open at 10M (~2.5 GB, a few minutes)
#   BENCH_KEEP=1 keep the scratch directory
#
# Runs, on the same disk: openssl speed sha256; appends at BATCH=1 (one fdatasync per entry, the
# baseline) and BATCH=1000 (group commit) of 100-byte entries; cledger verify-ledger on the
# 1M-entry ledger; open, open after an OS crash (index rebuild) and receipts at 1M; RSS while
# appending; bench_merkle and bench_index when built. Prints a summary table and writes it as
# markdown.
set -eu

BIN=${1:-build/bin}
BIN=$(cd "$BIN" && pwd)   # absolute: some steps run from the work directory
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${BENCH_DIR:-/tmp}/cledger-bench
OUT=${BENCH_OUT:-$ROOT/bench/results.md}
N_BASE=${BENCH_N_BASE:-2000}
N_GROUP=${BENCH_N_GROUP:-1000000}
N_RSS=${BENCH_N_RSS:-500000}
K_RECEIPTS=${BENCH_RECEIPTS:-10000}

for p in bench_ledger cledger; do
    [ -x "$BIN/$p" ] || { echo "run.sh: $BIN/$p not found (build first: Release)" >&2; exit 2; }
done
command -v openssl >/dev/null || { echo "run.sh: openssl not found" >&2; exit 2; }

rm -rf "$WORK"
mkdir -p "$WORK"
RAW="$WORK/raw.txt"
: >"$RAW"
cleanup() { [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$WORK"; }
trap cleanup EXIT INT TERM

log() { printf '== %s\n' "$*" >&2; }
# metric NAME: the value of a "name value unit" line in RAW (empty if absent)
metric() { awk -v n="$1" '$1 == n { v = $2 } END { if (v != "") print v }' "$RAW"; }
# step PREFIX_SED CMD...: run CMD, fail the run if it fails, rename metrics with the sed
# expression, show them and append them to RAW
step() {
    sedx=$1
    shift
    "$@" >"$WORK/step.txt" || { echo "run.sh: failed: $*" >&2; exit 1; }
    sed "$sedx" "$WORK/step.txt" | tee -a "$RAW"
}

# ---- machine --------------------------------------------------------------------------------
DATE=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
UNAME=$(uname -a)
CPU=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
CORES=$(nproc)
FSTYPE=$(df -T "$WORK" | awk 'NR == 2 { print $2 " (" $1 ")" }')
MEM=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
OSSL=$(openssl version)
log "$CPU, $CORES cores, $MEM; $WORK on $FSTYPE"

# ---- openssl speed sha256 -------------------------------------------------------------------
log "openssl speed -seconds 3 sha256"
openssl speed -seconds 3 sha256 >"$WORK/openssl.txt" 2>/dev/null
# "sha256  16B 64B 256B 1024B 8192B 16384B" in kB/s (1000 bytes), e.g. 237162.71k
SHA64=$(awk '$1 == "sha256" { sub(/k$/, "", $3); print $3 }' "$WORK/openssl.txt")
SHA256B=$(awk '$1 == "sha256" { sub(/k$/, "", $4); print $4 }' "$WORK/openssl.txt")
SHA64_PER_S=$(awk -v k="$SHA64" 'BEGIN { printf "%.0f", k * 1000 / 64 }')
SHA256_PER_S=$(awk -v k="$SHA256B" 'BEGIN { printf "%.0f", k * 1000 / 256 }')
echo "openssl.sha256.64B.per_s $SHA64_PER_S hashes/s" >>"$RAW"
echo "openssl.sha256.256B.per_s $SHA256_PER_S hashes/s" >>"$RAW"

# ---- appends --------------------------------------------------------------------------------
log "append $N_BASE entries, one fdatasync per entry (baseline)"
step '' "$BIN/bench_ledger" append "$WORK/base" "$N_BASE" 1
rm -rf "$WORK/base"
log "append $N_GROUP entries, group commit of 1000"
step '' "$BIN/bench_ledger" append "$WORK/l1m" "$N_GROUP" 1000

# ---- verify-ledger ------------------------------------------------------------------------
log "cledger verify-ledger on $N_GROUP entries"
"$BIN/cledger" verify-ledger "$WORK/l1m" --service-cert "$WORK/l1m/service_cert.pem" --json \
    >"$WORK/verify.json"
VJSON=$(cat "$WORK/verify.json")
VENT=$(printf '%s' "$VJSON" | sed -n 's/.*"entries":\([0-9]*\).*/\1/p')
VSEC=$(printf '%s' "$VJSON" | sed -n 's/.*"seconds":\([0-9.]*\).*/\1/p')
VVALID=$(printf '%s' "$VJSON" | sed -n 's/.*"valid":\([a-z]*\).*/\1/p')
[ "$VVALID" = true ] || { echo "run.sh: verify-ledger failed: $VJSON" >&2; exit 1; }
VPS=$(awk -v e="$VENT" -v s="$VSEC" 'BEGIN { r = 0; if (s > 0) r = e / s; printf "%.0f", r }')
VBYTES=$(du -sb "$WORK/l1m/ledger" | awk '{ print $1 }')
{
    echo "verify.entries $VENT entries"
    echo "verify.seconds $VSEC s"
    echo "verify.per_s $VPS entries/s"
    echo "verify.ledger_bytes $VBYTES bytes"
} | tee -a "$RAW"

# ---- open, receipts -----------------------------------------------------------------------
log "open/close at $N_GROUP entries (warm page cache; 3 runs, the median is reported)"
: >"$WORK/open.txt"
for i in 1 2 3; do
    step "s/^ledger\.open\./ledger.open.run$i./" "$BIN/bench_ledger" open "$WORK/l1m" >/dev/null
    sed "s/^ledger\.open\./ledger.open.run$i./" "$WORK/step.txt" >>"$WORK/open.txt"
done
cat "$WORK/open.txt" >&2
for m in ms close_ms total_ms peak_rss; do
    v=$(awk -v m="$m" '$1 ~ "^ledger\\.open\\.run[0-9]+\\." m "$" { print $2 }' "$WORK/open.txt" |
        sort -n | sed -n 2p)
    unit=$([ "$m" = peak_rss ] && echo KiB || echo ms)
    echo "ledger.open.$m $v $unit"
done | tee -a "$RAW"

log "open at $N_GROUP entries after an operating-system crash (the index rebuilt from the chunks)"
step '' "$BIN/bench_ledger" rebuild "$WORK/l1m"

log "$K_RECEIPTS receipts at $N_GROUP entries"
step '' "$BIN/bench_ledger" receipt "$WORK/l1m" "$K_RECEIPTS"
[ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$WORK/l1m"

# ---- memory while appending -----------------------------------------------------------------
log "RSS while appending $N_RSS entries"
step '' "$BIN/bench_ledger" rss "$WORK/rss" "$N_RSS"
rm -rf "$WORK/rss"

# ---- other benches --------------------------------------------------------------------------
if [ -x "$BIN/bench_merkle" ]; then
    log "bench_merkle (defaults)"
    (cd "$WORK" && "$BIN/bench_merkle") | tee -a "$RAW" || echo "run.sh: bench_merkle failed" >&2
fi
if [ -x "$BIN/bench_index" ]; then
    log "bench_index (defaults)"
    "$BIN/bench_index" | tee -a "$RAW" || echo "run.sh: bench_index failed" >&2
fi

# ---- 10M (optional) -------------------------------------------------------------------------
if [ "${BENCH_10M:-0}" = 1 ]; then
    log "append 10,000,000 entries, group commit of 1000"
    step 's/^ledger\.append\./ledger.append10m./' "$BIN/bench_ledger" append "$WORK/l10m" 10000000 1000
    log "open/close at 10M entries"
    step 's/^ledger\.open\./ledger.open10m./' "$BIN/bench_ledger" open "$WORK/l10m"
    step 's/^ledger\.open\./ledger.open10m.run2./' "$BIN/bench_ledger" open "$WORK/l10m"
    if [ -w /proc/sys/vm/drop_caches ]; then
        sync
        if echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
            log "open/close at 10M entries, cold page cache"
            step 's/^ledger\.open\./ledger.open10m.cold./' "$BIN/bench_ledger" open "$WORK/l10m"
        fi
    fi
    rm -rf "$WORK/l10m"
fi

# ---- summary ----------------------------------------------------------------------------------
# Anonymous RSS (heap) must stay flat; the file-backed part is the LMDB index map (page cache,
# grows with the index and is reclaimable).
rss_series() { awk -v p="^ledger\\.$1\\.after_" '$1 ~ p { printf "%s%s", s, $2; s = " " }' "$RAW"; }
RSS_FIRST=$(awk '$1 ~ /^ledger\.rss_anon\.after_/ && $1 != "ledger.rss_anon.after_0" { print $2; exit }' "$RAW")
RSS_LAST=$(awk '$1 ~ /^ledger\.rss_anon\.after_/ { v = $2 } END { print v }' "$RAW")
RSS_SERIES=$(rss_series rss)
ANON_SERIES=$(rss_series rss_anon)
FILE_SERIES=$(rss_series rss_file)

# verdict VALUE OP TARGET -> "yes"/"no"
verdict() {
    awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
        if (v == "") { print "n/a"; exit }
        ok = (op == ">=") ? (v + 0 >= t + 0) : (v + 0 <= t + 0); print ok ? "yes" : "**no**" }'
}
fmt() { [ -n "$1" ] && printf '%s' "$1" || printf 'n/a'; }

APS1=$(metric ledger.append.batch1.per_s)
APS1K=$(metric ledger.append.batch1000.per_s)
RECEIPT=$(metric ledger.receipt.mean_us)
PROOF=$(metric ledger.proof.mean_us)
OPEN1M=$(metric ledger.open.ms)
OPEN10M=$(metric ledger.open10m.ms)
SPEEDUP=$(awk -v a="$APS1K" -v b="$APS1" 'BEGIN { if (b > 0) printf "%.0fx", a / b }')
VS_SHA=$(awk -v v="$VPS" -v s="$SHA64_PER_S" 'BEGIN { if (s > 0) printf "%.3f", v / s }')
RSS_GROWTH=$(awk -v a="$RSS_FIRST" -v b="$RSS_LAST" 'BEGIN { if (a != "") printf "%+d KiB", b - a }')
RSS_OK=$(awk -v a="$RSS_FIRST" -v b="$RSS_LAST" 'BEGIN {
    r = "n/a"; if (a != "") { r = "**no**"; if (b - a <= 4096) r = "yes" }; print r }')

{
    echo "# cledger benchmark results"
    echo
    echo "- date: $DATE"
    echo "- uname: \`$UNAME\`"
    echo "- CPU: $CPU; cores: $CORES; memory: $MEM"
    echo "- bench dir: \`$WORK\` on $FSTYPE"
    echo "- $OSSL"
    echo
    echo "| metric | value | target | met |"
    echo "|---|---|---|---|"
    echo "| appends/s, one fdatasync per entry (baseline, N=$N_BASE) | $(fmt "$APS1") (µs/sync $(fmt "$(metric ledger.append.batch1.us_per_sync)")) | | |"
    echo "| appends/s, group commit 1000 (N=$N_GROUP) | $(fmt "$APS1K") (µs/sync $(fmt "$(metric ledger.append.batch1000.us_per_sync)"); ${SPEEDUP} baseline) | ≥ 100000 | $(verdict "$APS1K" ">=" 100000) |"
    echo "| CPU µs per appended entry (group commit) | $(fmt "$(metric ledger.append.batch1000.cpu_us_per_entry)") | | |"
    echo "| verify-ledger entries/s ($VENT entries, $VBYTES bytes) | $(fmt "$VPS") | ≥ 500000 | $(verdict "$VPS" ">=" 500000) |"
    echo "| openssl speed sha256, 64-byte hashes/s | $(fmt "$SHA64_PER_S") (verify = $(fmt "$VS_SHA") of it) | | |"
    echo "| openssl speed sha256, 256-byte hashes/s | $(fmt "$SHA256_PER_S") | | |"
    echo "| inclusion proof (cl_merkle_path) at 1M, mean µs | $(fmt "$PROOF") | ≤ 20 | $(verdict "$PROOF" "<=" 20) |"
    echo "| full receipt (cl_ledger_receipt, JSON) at 1M, mean µs | $(fmt "$RECEIPT") (max $(fmt "$(metric ledger.receipt.max_us)")) | | |"
    echo "| receipts at 1M: peak RSS / anonymous / file-backed (KiB) | $(fmt "$(metric ledger.receipt.peak_rss)") / $(fmt "$(metric ledger.receipt.rss_anon)") / $(fmt "$(metric ledger.receipt.rss_file)") | | |"
    echo "| open at 1M (warm cache), ms | $(fmt "$OPEN1M") (close $(fmt "$(metric ledger.open.close_ms)") ms) | | |"
    echo "| open at 1M, peak RSS | $(fmt "$(metric ledger.open.peak_rss)") KiB | | |"
    echo "| open at 1M after an OS crash (index rebuilt), ms | $(fmt "$(metric ledger.rebuild.ms)") ($(fmt "$(metric ledger.rebuild.per_s)") entries/s, peak RSS $(fmt "$(metric ledger.rebuild.peak_rss)") KiB) | | |"
    if [ -n "$OPEN10M" ]; then
        echo "| appends/s, group commit 1000 (N=10M) | $(fmt "$(metric ledger.append10m.batch1000.per_s)") | ≥ 100000 | $(verdict "$(metric ledger.append10m.batch1000.per_s)" ">=" 100000) |"
        echo "| open at 10M (warm cache), ms | $OPEN10M (second run $(fmt "$(metric ledger.open10m.run2.ms)")) | ≤ 1000 | $(verdict "$OPEN10M" "<=" 1000) |"
        COLD=$(metric ledger.open10m.cold.ms)
        [ -z "$COLD" ] || echo "| open at 10M (cold cache), ms | $COLD | ≤ 1000 | $(verdict "$COLD" "<=" 1000) |"
        echo "| open at 10M, peak RSS | $(fmt "$(metric ledger.open10m.peak_rss)") KiB | | |"
    else
        echo "| open at 10M | not run (BENCH_10M=1) | ≤ 1000 ms | n/a |"
    fi
    echo "| anonymous RSS while appending $N_RSS, every $((N_RSS / 10)) (KiB) | $ANON_SERIES | bounded | $RSS_OK ($RSS_GROWTH first→last) |"
    echo "| file-backed RSS (LMDB index map) at the same points (KiB) | $FILE_SERIES | | |"
    echo "| total RSS at the same points (KiB) | $RSS_SERIES | | |"
    for m in $(awk '$1 ~ /^(merkle|index)\./ { print $1 }' "$RAW"); do
        echo "| $m | $(awk -v n="$m" '$1 == n { print $2 " " $3 }' "$RAW") | | |"
    done
    echo
    echo "<details><summary>raw metrics</summary>"
    echo
    echo '```'
    cat "$RAW"
    echo '```'
    echo
    echo "</details>"
} >"$WORK/results.md"

mkdir -p "$(dirname "$OUT")"
cp "$WORK/results.md" "$OUT"
echo
cat "$OUT"
log "written to $OUT"
