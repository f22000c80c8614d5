#!/bin/sh
# bench/collections.sh — what GET /app/collections costs as the number of collections grows.
#
#   sh bench/collections.sh [BIN_DIR=build-bench/bin]
#
# Starts cledgerd on a fresh data directory, then for each N in COLL_STEPS: writes entries into
# new collections (bench_load --collections) until the ledger has N, waits for a signature to
# commit them, and times for COLL_DURATION s each, at COLL_CONNS connections:
#   page     GET /app/collections?api-version=2022-05-13 (the first page: 1,000 at most)
#   after    the same, after the second-to-last collection (a page of one)
#   preview  GET /app/collections?api-version=2022-04-20-preview (all of them in one reply)
#   ready    GET /node/ready: the reference, a request of the same connections that does no work
# Prints one line per step and measure: N, requests/s, p50 and p99 latency.
#
# Environment: COLL_STEPS ("10 1000 5000"), COLL_CONNS (8), COLL_DURATION (4), COLL_DIR (/tmp).
set -eu

BIN=${1:-build-bench/bin}
BIN=$(cd "$BIN" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STEPS=${COLL_STEPS:-"10 1000 5000"}
CONNS=${COLL_CONNS:-8}
DUR=${COLL_DURATION:-4}
LOADGEN=$BIN/bench_load
CLEDGERD=$BIN/cledgerd
for b in "$LOADGEN" "$CLEDGERD"; do
    [ -x "$b" ] || { echo "collections.sh: $b not found" >&2; exit 2; }
done
command -v curl >/dev/null || { echo "collections.sh: curl not found" >&2; exit 2; }

WORK=$(mktemp -d "${COLL_DIR:-/tmp}/cledger-coll.XXXXXX")
PID=
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DATA=$WORK/data
"$CLEDGERD" --data-dir "$DATA" --listen "127.0.0.1:$PORT" --log-level warn >"$WORK/log" 2>&1 &
PID=$!
URL=https://127.0.0.1:$PORT
i=0
until [ -s "$DATA/service_cert.pem" ] &&
    curl -sf -o /dev/null --cacert "$DATA/service_cert.pem" "$URL/node/ready"; do
    i=$((i + 1))
    if [ $i -gt 300 ] || ! kill -0 "$PID" 2>/dev/null; then
        echo "collections.sh: cledgerd did not become ready" >&2
        cat "$WORK/log" >&2
        exit 1
    fi
    sleep 0.1
done
AUTH="--cacert $DATA/service_cert.pem --cert $DATA/admin_cert.pem --key $DATA/admin_key.pem"
CURL="curl -sf --cacert $DATA/service_cert.pem --cert $DATA/admin_cert.pem --key $DATA/admin_key.pem"

# field NAME FILE: the value of metric NAME in bench_load's output
field() { awk -v k="$1" '$1 == k { print $2 }' "$2"; }

have=0
echo "collections  measure   req/s      p50_ms   p99_ms"
for n in $STEPS; do
    # n - have new collections s<n>_0 ..: one write each (the default collection is one more)
    [ "$n" -gt "$have" ] || { echo "collections.sh: COLL_STEPS must grow" >&2; exit 2; }
    new=$((n - have))
    "$LOADGEN" --url "$URL" $AUTH --mode write --connections 8 --threads 1 \
        --requests "$new" --collections "$new" --collection "s${n}_" >"$WORK/w" 2>/dev/null
    [ "$(field load.write.ok "$WORK/w")" = "$new" ] ||
        { echo "collections.sh: writes failed" >&2; cat "$WORK/w" >&2; exit 1; }
    have=$n
    # committed: the preview form lists them all
    i=0
    until [ "$($CURL "$URL/app/collections?api-version=2022-04-20-preview" |
        python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" -ge "$n" ]; do
        i=$((i + 1))
        [ $i -lt 100 ] || { echo "collections.sh: collections not committed" >&2; exit 1; }
        sleep 0.1
    done
    last2=s${n}_$((new - 2))
    for m in page after preview ready; do
        case $m in
        page) path="/app/collections?api-version=2022-05-13" ;;
        after) path="/app/collections?api-version=2022-05-13&after=$last2" ;;
        preview) path="/app/collections?api-version=2022-04-20-preview" ;;
        ready) path="/node/ready" ;;
        esac
        "$LOADGEN" --url "$URL" $AUTH --mode get --path "$path" --connections "$CONNS" \
            --threads 1 --duration "$DUR" >"$WORK/g" 2>/dev/null
        errs=$(field load.get.errors "$WORK/g")
        [ "${errs:-0}" = 0 ] || { echo "collections.sh: $m: errors" >&2; cat "$WORK/g" >&2; exit 1; }
        printf '%-12s %-9s %-10s %-8s %s\n' "$n" "$m" "$(field load.get.per_s "$WORK/g")" \
            "$(field load.get.p50_ms "$WORK/g")" "$(field load.get.p99_ms "$WORK/g")"
    done
done
