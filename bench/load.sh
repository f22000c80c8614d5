#!/bin/sh
# bench/load.sh — the HTTPS load benchmark (issue 3): cledgerd against an nginx ceiling measured in
# the same session on the same box, with the same load generator (bench_load).
#
#   sh bench/load.sh [BIN_DIR=build/bin]
#
# BIN_DIR holds bench_load and cledgerd (a Release build is what the numbers are meant for).
# Without cledgerd only the nginx part runs (and the cledgerd rows say "not run").
#
#  (a) nginx ceiling: bench/nginx_ceiling.sh (nginx-light, TLS 1.3, ECDSA P-256, client
#      certificates requested, `return 200`), bench_load --mode get for LOAD_DURATION s at
#      LOAD_CONNS connections with a client certificate.
#  (b) cledgerd on a fresh data directory, the generated administrator certificate as client
#      certificate: writes at full rate and reads of the ids written.
#      (a) and (b) run interleaved, LOAD_ROUNDS times (nginx GET, cledgerd writes at full rate,
#      cledgerd writes paced at half of that round's full rate, cledgerd reads, next round), both
#      servers up: on a shared VM the capacity of the box drifts by tens of percent within
#      minutes, so each ratio and each half-rate run is taken within its round and the table
#      reports the median round (and every round below it). During each half-rate run
#      bench_disk (when built) times a durable 4 KiB write every 20 ms on the same file system,
#      and the round table sets its maximum next to the stalls cledgerd itself logged in those
#      seconds (slowest raft log write, longest main-loop iteration): a latency spike that all
#      three show is the device's or the host's.
#      Then, once: nginx GET at half its median rate and POSTs of 100-byte entries (information);
#      receipt latency (time from the 200 of a POST until its receipt is Ready) for
#      LOAD_RECEIPTS writes.
#  (c) cledgerd's resident memory (VmRSS, RssAnon, RssFile) after the runs; with LOAD_1M=1 also
#      while a second cledgerd, on a fresh data directory, is written up to 1,000,000 entries
#      (at 250k, 500k, 750k, 1M; the rounds alone write more than 1M on a fast box).
#  (d) a markdown table: every figure with its target and met / not met, machine information.
#
# Environment:
#   LOAD_OUT        markdown summary (default bench/load-results.md)
#   LOAD_CONNS      connections (32)       LOAD_THREADS   load generator threads (2)
#   LOAD_DURATION   seconds per run (10)   LOAD_RECEIPTS  receipts timed (200)
#   LOAD_ROUNDS     interleaved rounds (3)
#   LOAD_1M=1       the 1M-entry memory run (a few minutes)
#   LOAD_DIR        parent of the scratch directory (default /tmp)
#   LOAD_KEEP=1     keep the scratch directory (raw metrics, logs, cledgerd's data)
set -eu

BIN=${1:-build/bin}
BIN=$(cd "$BIN" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${LOAD_OUT:-$ROOT/bench/load-results.md}
CONNS=${LOAD_CONNS:-32}
THREADS=${LOAD_THREADS:-2}
DUR=${LOAD_DURATION:-10}
RECEIPTS=${LOAD_RECEIPTS:-200}
ROUNDS=${LOAD_ROUNDS:-3}
LOADGEN=$BIN/bench_load
CLEDGERD=$BIN/cledgerd

[ -x "$LOADGEN" ] || { echo "load.sh: $LOADGEN not found (build bench_load first)" >&2; exit 2; }
command -v curl >/dev/null || { echo "load.sh: curl not found" >&2; exit 2; }

WORK=$(mktemp -d "${LOAD_DIR:-/tmp}/cledger-load.XXXXXX")
RAW=$WORK/raw.txt
: >"$RAW"
NGX_DIR=
CLD_PID=

stop_cledgerd() {
    [ -n "$CLD_PID" ] || return 0
    if kill -TERM "$CLD_PID" 2>/dev/null; then
        i=0
        while kill -0 "$CLD_PID" 2>/dev/null && [ $i -lt 100 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        kill -KILL "$CLD_PID" 2>/dev/null || true
    fi
    wait "$CLD_PID" 2>/dev/null || true
    CLD_PID=
}
stop_nginx() {
    [ -n "$NGX_DIR" ] || return 0
    sh "$ROOT/bench/nginx_ceiling.sh" stop "$NGX_DIR" || true
    NGX_DIR=
}
cleanup() {
    stop_cledgerd
    stop_nginx
    if [ "${LOAD_KEEP:-0}" = 1 ]; then
        echo "load.sh: kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '== %s\n' "$*" >&2; }
# metric NAME: the value of a "name value unit" line in RAW (empty if absent)
metric() { awk -v n="$1" '$1 == n { v = $2 } END { if (v != "") print v }' "$RAW"; }
# cpu_ticks: "steal total" jiffies of all CPUs so far (/proc/stat; "0 0" where there is none)
cpu_ticks() {
    awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print $9 + 0, t; found = 1 }
         END { if (!found) print 0, 0 }' /proc/stat 2>/dev/null || echo 0 0
}
# run PREFIX ARGS...: bench_load with ARGS; its load.<mode>. metrics renamed PREFIX. into RAW,
# with PREFIX.steal_pct
run() {
    prefix=$1
    shift
    ticks0=$(cpu_ticks)
    "$LOADGEN" --connections "$CONNS" --threads "$THREADS" "$@" >"$WORK/step.txt" \
        2>"$WORK/step.err" || {
        cat "$WORK/step.err" >&2
        echo "load.sh: bench_load failed: $*" >&2
        exit 1
    }
    ticks1=$(cpu_ticks)
    grep -v '^bench_load:' "$WORK/step.err" >&2 || true
    sed -e "s/^load\.[a-z]*\./$prefix./" "$WORK/step.txt" >>"$RAW"
    # the share of CPU time the hypervisor gave to others during the run (a noisy neighbour)
    # shellcheck disable=SC2086 # two numbers each
    echo "$prefix.steal_pct $(echo $ticks0 $ticks1 | awk '{ d = $4 - $2; printf "%.0f", (d > 0 ? 100 * ($3 - $1) / d : 0) }') %" >>"$RAW"
}
# disk_probe_start / disk_probe_end PREFIX: bench_disk in the background for one run (when built);
# its figures go to RAW as PREFIX.disk_*
disk_probe_start() {
    PROBE_PID=
    [ -x "$BIN/bench_disk" ] || return 0
    rm -f "$WORK/probe.dat"
    "$BIN/bench_disk" --file "$WORK/probe.dat" --duration "$DUR" --interval-ms 20 \
        >"$WORK/probe.txt" 2>"$WORK/probe.err" &
    PROBE_PID=$!
}
disk_probe_end() {
    [ -n "$PROBE_PID" ] || return 0
    wait "$PROBE_PID" || { cat "$WORK/probe.err" >&2; echo "load.sh: bench_disk failed" >&2; exit 1; }
    sed -e "s/^disk\./$1.disk_/" "$WORK/probe.txt" >>"$RAW"
}
# utc_now SECONDS: the time SECONDS from now in the format of cledgerd's log ("ts"), which sorts
# as text
utc_now() {
    date -u -d "@$(awk -v s="$(date +%s.%N)" -v d="$1" 'BEGIN { printf "%.6f", s + d }')" \
        '+%Y-%m-%dT%H:%M:%S.%6NZ'
}
# stalls_between PREFIX T0 T1: from cledgerd's log lines stamped in [T0, T1], the slowest raft log
# write it reported (writes over 10 ms are reported once a second) and the longest busy main-loop
# iteration (over 10 ms, also once a second), 0 when none, into RAW as PREFIX.log_slowest_ms and
# PREFIX.loop_longest_ms. Taken at the end (the log is complete by then), with T1 a second after
# the run: a report can come up to a second late.
stalls_between() {
    awk -v a="$2" -v b="$3" -v p="$1" '
        { if (!match($0, /"ts":"[^"]*"/)) next; ts = substr($0, RSTART + 6, RLENGTH - 7) }
        ts < a || ts > b { next }
        /"raft log: [0-9]+ write\(s\) slower than/ && match($0, /the slowest [0-9.]+ ms/) {
            v = substr($0, RSTART + 12, RLENGTH - 15) + 0; if (v > w) w = v }
        /"main loop: / && match($0, /the longest [0-9.]+ ms/) {
            v = substr($0, RSTART + 12, RLENGTH - 15) + 0; if (v > l) l = v }
        END { printf "%s.log_slowest_ms %.1f ms\n%s.loop_longest_ms %.1f ms\n", p, w, p, l }
    ' "$WORK/cledgerd.log" >>"$RAW"
}
# calc EXPR with awk (variables as -v a=.. b=..): calc 'a / b' a=1 b=2 (EXPR is parenthesized:
# a bare > in awk's printf would be an output redirection)
calc() {
    expr=$1
    shift
    vars=
    for kv in "$@"; do
        vars="$vars -v $kv"
    done
    # shellcheck disable=SC2086 # word splitting of the -v options is intended
    awk $vars "BEGIN { printf \"%.10g\", ($expr) }"
}
free_port() {
    while :; do
        r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
        p=$((20000 + r % 40000))
        if command -v ss >/dev/null 2>&1 && [ -n "$(ss -Hltn "sport = :$p" 2>/dev/null)" ]; then
            continue
        fi
        echo "$p"
        return
    done
}
# rss LABEL: cledgerd's VmRSS/RssAnon/RssFile (KiB) into RAW as rss.LABEL.*
rss() {
    for f in VmRSS RssAnon RssFile; do
        v=$(awk -v f="$f:" '$1 == f { print $2 }' "/proc/$CLD_PID/status")
        echo "rss.$1.$f $v KiB" >>"$RAW"
    done
    log "cledgerd RSS ($1): $(metric "rss.$1.VmRSS") KiB (anon $(metric "rss.$1.RssAnon"), file $(metric "rss.$1.RssFile"))"
}

# ---- machine ------------------------------------------------------------------------------
DATE=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
UNAME=$(uname -a)
CPU=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
CORES=$(nproc)
MEM=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
OSSL=$(openssl version 2>/dev/null || echo unknown)
NGXV=$(/usr/sbin/nginx -v 2>&1 | sed 's/^nginx version: //' || echo unknown)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
log "$CPU, $CORES cores, $MEM; load average $LOAD0"

# ---- (a) + (b): nginx and cledgerd, interleaved rounds -----------------------------------------
# median_round PREFIX: the round (1..ROUNDS) whose PREFIX.rN.per_s is the median; its metrics are
# copied to PREFIX.* (the names the table uses)
median_round() {
    k=1
    while [ $k -le "$ROUNDS" ]; do
        echo "$(metric "$1.r$k.per_s") $k"
        k=$((k + 1))
    done | sort -n | awk -v m=$(((ROUNDS + 1) / 2)) 'NR == m { print $2 }' >"$WORK/med"
    mr=$(cat "$WORK/med")
    grep "^$1\.r$mr\." "$RAW" | sed "s/^$1\.r$mr\./$1./" >"$WORK/med.txt"
    cat "$WORK/med.txt" >>"$RAW"
}
# median_by PREFIX KEY: like median_round, the round picked by the median of PREFIX.rN.KEY
median_by() {
    k=1
    while [ $k -le "$ROUNDS" ]; do
        v=$(metric "$1.r$k.$2")
        [ -n "$v" ] && echo "$v $k"
        k=$((k + 1))
    done | sort -n | awk '{ r[NR] = $2 } END { if (NR) print r[int((NR + 1) / 2)] }' >"$WORK/med"
    mr=$(cat "$WORK/med")
    [ -n "$mr" ] || return 0
    grep "^$1\.r$mr\." "$RAW" | sed "s/^$1\.r$mr\./$1./" >"$WORK/med.txt"
    cat "$WORK/med.txt" >>"$RAW"
}
# rounds_of PREFIX KEY: every round's PREFIX.rN.KEY, "a / b / c"
rounds_of() {
    k=1
    out=
    while [ $k -le "$ROUNDS" ]; do
        v=$(metric "$1.r$k.$2")
        out="$out${out:+ / }${v:-n/a}"
        k=$((k + 1))
    done
    echo "$out"
}
# median_ratio A B: the median over the rounds of A.rN.per_s / B.rN.per_s
median_ratio() {
    k=1
    while [ $k -le "$ROUNDS" ]; do
        a=$(metric "$1.r$k.per_s")
        b=$(metric "$2.r$k.per_s")
        [ -n "$a" ] && [ -n "$b" ] && calc 'a / b' a="$a" b="$b" && echo
        k=$((k + 1))
    done | sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else if (NR) print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# worst_of PREFIX KEY: the largest PREFIX.rN.KEY over the rounds (n/a when none)
worst_of() {
    k=1
    while [ $k -le "$ROUNDS" ]; do
        metric "$1.r$k.$2"
        k=$((k + 1))
    done | sort -g | tail -1
}
# troubled PREFIX: the rounds whose PREFIX.rN run had errors, reconnects or failed handshakes
# (a ceiling or target measured with any of them is not a measurement of the same thing), as
# "round N: E errors, R reconnects, H handshake errors; ..." (empty when all were clean)
troubled() {
    k=1
    out=
    while [ $k -le "$ROUNDS" ]; do
        e=$(metric "$1.r$k.errors")
        c=$(metric "$1.r$k.reconnects")
        h=$(metric "$1.r$k.handshake_errors")
        if [ "${e:-0}" != 0 ] || [ "${c:-0}" != 0 ] || [ "${h:-0}" != 0 ]; then
            out="$out${out:+; }$1 round $k: ${e:-0} errors, ${c:-0} reconnects, ${h:-0} handshake errors"
        fi
        k=$((k + 1))
    done
    echo "$out"
}

log "nginx ceiling (bench/nginx_ceiling.sh)"
# nginx must outlive every run before it is stopped (four per round, two after, set-up between):
# its watchdog gets that with a margin, not a fixed 600 s that longer runs outlast
export NGINX_MAX_SECONDS=$(calc 'int(r * 4 * d + 2 * d + 600)' r="$ROUNDS" d="$DUR")
eval "$(sh "$ROOT/bench/nginx_ceiling.sh" start "$WORK/nginx")"
NGX_DIR=$NGINX_DIR
NGX_URL=https://127.0.0.1:$NGINX_PORT
# the nginx leaf doubles as a client certificate (extendedKeyUsage clientAuth): same handshakes
NGX_AUTH="--cacert $NGINX_CACERT --cert $NGX_DIR/leaf.pem --key $NGX_DIR/leaf.key"

# start_cledgerd DIR: cledgerd on a fresh data directory DIR and a free port; sets CLD_PID, URL, DATA
start_cledgerd() {
    DATA=$1
    PORT=$(free_port)
    log "cledgerd on 127.0.0.1:$PORT ($DATA)"
    "$CLEDGERD" --data-dir "$DATA" --listen "127.0.0.1:$PORT" --log-level warn \
        >>"$WORK/cledgerd.log" 2>&1 &
    CLD_PID=$!
    URL=https://127.0.0.1:$PORT
    ready=0
    i=0
    while [ $i -lt 300 ]; do
        kill -0 "$CLD_PID" 2>/dev/null || break
        if [ -s "$DATA/service_cert.pem" ] &&
            curl -sf -o /dev/null --cacert "$DATA/service_cert.pem" "$URL/node/ready"; then
            ready=1
            break
        fi
        sleep 0.1
        i=$((i + 1))
    done
    if [ $ready != 1 ]; then
        echo "load.sh: cledgerd did not become ready:" >&2
        cat "$WORK/cledgerd.log" >&2
        exit 1
    fi
    AUTH="--cacert $DATA/service_cert.pem --cert $DATA/admin_cert.pem --key $DATA/admin_key.pem"
}

HAVE_CLD=0
if [ -x "$CLEDGERD" ]; then
    HAVE_CLD=1
    start_cledgerd "$WORK/data"
    rss start
fi

r=1
while [ $r -le "$ROUNDS" ]; do
    log "round $r/$ROUNDS: nginx GET, $CONNS connections, $DUR s"
    # shellcheck disable=SC2086 # NGX_AUTH and AUTH hold options (mktemp paths have no spaces)
    run "nginx.get.r$r" --url "$NGX_URL" $NGX_AUTH --mode get --duration "$DUR"
    if [ $HAVE_CLD = 1 ]; then
        log "round $r/$ROUNDS: cledgerd writes, $CONNS connections, $DUR s, full rate"
        # shellcheck disable=SC2086
        run "cledgerd.write.r$r" --url "$URL" $AUTH --mode write --body-bytes 100 \
            --duration "$DUR" --txids "$WORK/txids.r$r.txt"
        [ -s "$WORK/txids.txt" ] || cp "$WORK/txids.r$r.txt" "$WORK/txids.txt"
        # half of this round's own full rate: the box's capacity drifts between rounds, and a
        # rate taken from another round can be more than half (or less) of what the box does now
        HALF=$(calc 'w / 2' w="$(metric "cledgerd.write.r$r.per_s")")
        if [ "$(calc 'h >= 1' h="$HALF")" = 1 ]; then
            log "round $r/$ROUNDS: cledgerd writes paced at half this round's rate ($HALF/s), $DUR s"
            # beside it, the device's own latency (bench_disk: a durable 4 KiB write every 20 ms
            # on the data directory's file system): a device stall shows in both at once
            disk_probe_start
            T0=$(utc_now 0)
            # shellcheck disable=SC2086
            run "cledgerd.write_half.r$r" --url "$URL" $AUTH --mode write --body-bytes 100 \
                --duration "$DUR" --rate "$HALF"
            disk_probe_end "cledgerd.write_half.r$r"
            echo "cledgerd.write_half.r$r $T0 $(utc_now 1)" >>"$WORK/windows"
        fi
        if [ -s "$WORK/txids.txt" ]; then
            log "round $r/$ROUNDS: cledgerd reads of $(wc -l <"$WORK/txids.txt") ids, $DUR s"
            # shellcheck disable=SC2086
            run "cledgerd.read.r$r" --url "$URL" $AUTH --mode read --txids "$WORK/txids.txt" \
                --duration "$DUR"
        fi
    fi
    r=$((r + 1))
done
median_round nginx.get
if [ $HAVE_CLD = 1 ]; then
    median_round cledgerd.write
    median_round cledgerd.read
    median_by cledgerd.write_half p99_ms
    echo "ratio.write $(median_ratio cledgerd.write nginx.get) x" >>"$RAW"
    echo "ratio.read $(median_ratio cledgerd.read nginx.get) x" >>"$RAW"
fi

NGHALF=$(calc 'g / 2' g="$(metric nginx.get.per_s)")
log "nginx: GET paced at half its median rate ($NGHALF/s, information: the latency floor of this box)"
# shellcheck disable=SC2086
run nginx.get_half --url "$NGX_URL" $NGX_AUTH --mode get --duration "$DUR" --rate "$NGHALF"
log "nginx: POST of 100-byte entries (information), $CONNS connections, $DUR s"
# shellcheck disable=SC2086
run nginx.post --url "$NGX_URL" $NGX_AUTH --mode write --body-bytes 100 --duration "$DUR"
stop_nginx

if [ $HAVE_CLD = 1 ]; then
    log "cledgerd: receipt latency, $RECEIPTS writes"
    # shellcheck disable=SC2086
    "$LOADGEN" --url "$URL" $AUTH --mode write --connections 1 --threads 1 --duration 0 \
        --receipt-latency "$RECEIPTS" >"$WORK/step.txt" 2>"$WORK/step.err" ||
        { cat "$WORK/step.err" >&2; exit 1; }
    grep '^receipts:' "$WORK/step.err" >&2 || true
    grep '^load\.receipt\.' "$WORK/step.txt" | sed 's/^load\./cledgerd./' >>"$RAW"
    rss after_runs

    # ---- (c) 1M entries ----------------------------------------------------------------------
    # On a fresh data directory: on a fast box the rounds above write more than 1M entries.
    if [ "${LOAD_1M:-0}" = 1 ]; then
        stop_cledgerd
        start_cledgerd "$WORK/data1m"
        written=0
        for target in 250000 500000 750000 1000000; do
            need=$(calc 't - w' t=$target w="$written")
            if [ "$(calc 'n > 0' n="$need")" = 1 ]; then
                log "cledgerd: writing $need more entries (to $target)"
                # shellcheck disable=SC2086
                run "cledgerd.fill$target" --url "$URL" $AUTH --mode write --body-bytes 100 \
                    --requests "$need" --duration 3600
                written=$(calc 'w + n' w="$written" n="$(metric "cledgerd.fill$target.ok")")
            fi
            echo "rss.at$target.entries $written entries" >>"$RAW"
            rss "at$target"
        done
    fi
    stop_cledgerd
    # what cledgerd itself saw of stalls: main-loop iterations over 10 ms, log writes over 10 ms
    grep -E '"main loop:|raft log:' "$WORK/cledgerd.log" >"$WORK/stalls.log" || true
    if [ -s "$WORK/windows" ]; then
        while read -r wp w0 w1; do
            stalls_between "$wp" "$w0" "$w1"
        done <"$WORK/windows"
    fi
else
    log "cledgerd not built ($CLEDGERD): nginx ceiling only"
fi

# ---- (d) summary ------------------------------------------------------------------------------
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
m() { v=$(metric "$1"); [ -n "$v" ] && echo "$v" || echo "n/a"; }
yn() { if [ "$1" = 1 ]; then echo met; elif [ "$1" = 0 ]; then echo "**not met**"; else echo "n/a"; fi; }
# ynv RESULT TROUBLE: yn, or "invalid" with the reason when a run it rests on had errors
ynv() { if [ -n "$2" ]; then echo "**invalid** ($2)"; else yn "$1"; fi; }
# test EXPR on values that may be n/a
chk() {
    expr=$1
    shift
    for kv in "$@"; do
        case $kv in *=n/a | *=) echo n/a; return ;; esac
    done
    calc "($expr) ? 1 : 0" "$@"
}
fmt() { case $1 in n/a) echo n/a ;; *) calc "$2" v="$1" ;; esac; }
pct() { case $1$2 in *n/a*) echo n/a ;; *) calc 'int(a / b * 1000 + 0.5) / 10' a="$1" b="$2" ;; esac; }

NG=$(m nginx.get.per_s)
NGP=$(m nginx.post.per_s)
W=$(m cledgerd.write.per_s)
R=$(m cledgerd.read.per_s)
# ratios: the median over the rounds of each round's own ratio
RW=$(m ratio.write)
RRD=$(m ratio.read)
WR=$(fmt "$RW" 'int(v * 1000 + 0.5) / 10')
RR=$(fmt "$RRD" 'int(v * 1000 + 0.5) / 10')
WH=$(m cledgerd.write_half.per_s)
WHP99=$(m cledgerd.write_half.p99_ms)
# the half-rate target is judged on its worst round, not the median one
WHW=$(worst_of cledgerd.write_half p99_ms)
WHW=${WHW:-n/a}
RCP99=$(m cledgerd.receipt.p99_ms)
RCMAX=$(m cledgerd.receipt.max_ms)
T_NGX=$(troubled nginx.get)
T_W=$(troubled cledgerd.write)
T_R=$(troubled cledgerd.read)
T_H=$(troubled cledgerd.write_half)
# a paced run that did not keep up with its offered rate measured a lighter load
k=1
while [ $k -le "$ROUNDS" ]; do
    o=$(metric "cledgerd.write_half.r$k.target_rate")
    d=$(metric "cledgerd.write_half.r$k.per_s")
    if [ -n "$o" ] && [ -n "$d" ] && [ "$(calc 'd < 0.99 * o ? 1 : 0' d="$d" o="$o")" = 1 ]; then
        T_H="$T_H${T_H:+; }round $k did $d/s of $o/s offered"
    fi
    k=$((k + 1))
done
RSSK=$(m rss.after_runs.VmRSS)
RSSMB=$(fmt "$RSSK" 'int(v / 1024 * 10 + 0.5) / 10')

{
    echo "# cledgerd HTTPS load (bench/load.sh)"
    echo
    echo "- date: $DATE"
    echo "- machine: $CPU, $CORES cores (nproc), $MEM; \`$UNAME\`"
    echo "- load average at start / end: $LOAD0 / $LOAD1 (other work on the box skews both sides)"
    echo "- $OSSL; $NGXV (nginx-light, ${NGINX_WORKERS:-2} workers)"
    echo "- load generator: bench_load, $CONNS TLS 1.3 keep-alive connections, $THREADS threads," \
        "one request in flight per connection, $DUR s per run, 100-byte entries," \
        "client certificate on every connection; generator and server share the same cores"
    echo
    echo "| measure | value | target | status |"
    echo "|---|---|---|---|"
    echo "| nginx ceiling: GET \`return 200\` (median round) | $NG req/s (p50 $(m nginx.get.p50_ms) ms, p99 $(m nginx.get.p99_ms) ms; errors in the rounds: $(rounds_of nginx.get errors)) | (reference) | $([ -n "$T_NGX" ] && echo "**invalid** ($T_NGX)" || echo —) |"
    echo "| nginx: GET at half its rate (information) | $(m nginx.get_half.per_s) req/s: p50 $(m nginx.get_half.p50_ms) ms, p99 $(m nginx.get_half.p99_ms) ms (from send: p99 $(m nginx.get_half.svc_p99_ms) ms) | — | — |"
    echo "| nginx: POST 100 B \`return 200\` (information) | $NGP req/s (p99 $(m nginx.post.p99_ms) ms) | — | — |"
    echo "| cledgerd durable writes, full rate (median round) | $W writes/s; median ratio to nginx in the same round $WR % (p50 $(m cledgerd.write.p50_ms) ms, p99 $(m cledgerd.write.p99_ms) ms, $(m cledgerd.write.errors) errors) | ≥ 50 % of nginx | $(ynv "$(chk 'r >= 0.5' r="$RW")" "$T_NGX${T_NGX:+${T_W:+; }}$T_W") |"
    echo "| cledgerd writes/s, absolute | $W writes/s | ≥ 20,000/s on a 2-core box | $(ynv "$(chk 'w >= 20000' w="$W")" "$T_W") |"
    echo "| cledgerd reads (GET /app/transactions/{id}, median round) | $R reads/s; median ratio to nginx in the same round $RR % (p50 $(m cledgerd.read.p50_ms) ms, p99 $(m cledgerd.read.p99_ms) ms, $(m cledgerd.read.errors) errors, $(m cledgerd.read.loading) Loading) | ≥ 70 % of nginx | $(ynv "$(chk 'r >= 0.7' r="$RRD")" "$T_NGX${T_NGX:+${T_R:+; }}$T_R") |"
    echo "| write latency at half rate (judged on the worst round: p99 $WHW ms; the median round by p99: $(m cledgerd.write_half.target_rate)/s offered, $WH/s done) | p50 $(m cledgerd.write_half.p50_ms) ms, p99 $WHP99 ms (from send: p99 $(m cledgerd.write_half.svc_p99_ms) ms); p99 in the rounds: $(rounds_of cledgerd.write_half p99_ms) ms, requests cut off by the end: $(rounds_of cledgerd.write_half cut_off); the device alone in the same $DUR s (bench_disk): p50 $(m cledgerd.write_half.disk_p50_ms) ms, max $(m cledgerd.write_half.disk_max_ms) ms, $(m cledgerd.write_half.disk_over10) of $(m cledgerd.write_half.disk_writes) writes over 10 ms | p99 ≤ 10 ms in every round | $(ynv "$(chk 'p <= 10' p="$WHW")" "$T_H") |"
    echo "| receipt Ready after the 200 ($(m cledgerd.receipt.n) writes, polled every 2 ms) | p50 $(m cledgerd.receipt.p50_ms) ms, p99 $RCP99 ms, max $RCMAX ms, $(m cledgerd.receipt.timeouts) timeouts, $(m cledgerd.receipt.write_errors) failed writes | every receipt ≤ 100 ms (max) | $(yn "$(chk 'x <= 100 && t == 0 && e == 0' x="$RCMAX" t="$(m cledgerd.receipt.timeouts)" e="$(m cledgerd.receipt.write_errors)")") |"
    echo "| cledgerd RSS after the runs | $RSSMB MB (VmRSS $RSSK KiB: anon $(m rss.after_runs.RssAnon), file $(m rss.after_runs.RssFile) KiB) | ≤ 100 MB | $(yn "$(chk 'k <= 102400' k="$RSSK")") |"
    if [ "${LOAD_1M:-0}" = 1 ] && [ $HAVE_CLD = 1 ]; then
        prev=
        for target in 250000 500000 750000 1000000; do
            k=$(m "rss.at$target.VmRSS")
            # a milestone already passed by the rounds is the same measurement as the one before
            [ "$(m "rss.at$target.entries")" = "$prev" ] && continue
            prev=$(m "rss.at$target.entries")
            echo "| cledgerd RSS at $(m "rss.at$target.entries") entries | $(fmt "$k" 'int(v / 1024 * 10 + 0.5) / 10') MB (anon $(m "rss.at$target.RssAnon"), file $(m "rss.at$target.RssFile") KiB) | ≤ 100 MB | $(yn "$(chk 'k <= 102400' k="$k")") |"
        done
        # growth judged on anonymous memory (heap: what would grow with the entry count);
        # file-backed resident pages (mapped ledger/index files) are reclaimable page cache and
        # shown for information
        a=$(m rss.at250000.RssAnon)
        b=$(m rss.at1000000.RssAnon)
        g=$(case "$a$b" in *n/a*) echo n/a ;; *) calc 'int((b - a) / 1024 * 10 + 0.5) / 10' a="$a" b="$b" ;; esac)
        a=$(m rss.at250000.VmRSS)
        b=$(m rss.at1000000.VmRSS)
        gv=$(case "$a$b" in *n/a*) echo n/a ;; *) calc 'int((b - a) / 1024 * 10 + 0.5) / 10' a="$a" b="$b" ;; esac)
        echo "| RSS growth $(m rss.at250000.entries) → $(m rss.at1000000.entries) entries (fresh data directory) | VmRSS $gv MB (anonymous $g MB) | not growing (VmRSS, file-backed pages included, ≤ 10 MB) | $(yn "$(chk 'g <= 10' g="$gv")") |"
    else
        echo "| RSS at 250k … 1M entries | not run (LOAD_1M=1) | ≤ 100 MB, flat | n/a |"
    fi
    if [ $HAVE_CLD = 0 ]; then
        echo
        echo "cledgerd was not built ($CLEDGERD): its rows are n/a."
    fi
    echo
    echo "Every round (nginx GET, cledgerd writes at full rate, cledgerd writes at half that" \
        "rate, cledgerd reads, $DUR s each):"
    echo
    echo "| round | nginx GET/s | cledgerd writes/s | writes / nginx | half rate: offered/s, p99 (from send) | device during the half-rate run: max, writes > 10 ms | cledgerd during it: slowest raft log write, longest loop iteration (> 10 ms; 0: none) | cledgerd reads/s | reads / nginx | steal: nginx / writes / half / reads |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    k=1
    while [ $k -le "$ROUNDS" ]; do
        g=$(m "nginx.get.r$k.per_s")
        w=$(m "cledgerd.write.r$k.per_s")
        rd=$(m "cledgerd.read.r$k.per_s")
        h="$(m "cledgerd.write_half.r$k.target_rate"), $(m "cledgerd.write_half.r$k.p99_ms") ms ($(m "cledgerd.write_half.r$k.svc_p99_ms") ms)"
        st="$(m "nginx.get.r$k.steal_pct") / $(m "cledgerd.write.r$k.steal_pct") / $(m "cledgerd.write_half.r$k.steal_pct") / $(m "cledgerd.read.r$k.steal_pct") %"
        dk="$(m "cledgerd.write_half.r$k.disk_max_ms") ms, $(m "cledgerd.write_half.r$k.disk_over10")"
        cs="$(m "cledgerd.write_half.r$k.log_slowest_ms") ms, $(m "cledgerd.write_half.r$k.loop_longest_ms") ms"
        echo "| $k | $g | $w | $(pct "$w" "$g") % | $h | $dk | $cs | $rd | $(pct "$rd" "$g") % | $st |"
        k=$((k + 1))
    done
    echo
    echo "Latencies of paced runs are measured from the intended send time (no coordinated"
    echo "omission); \"from send\" is the same answers timed from the actual send. Steal is the share"
    echo "of the box's CPU time the hypervisor gave to other guests during each run (/proc/stat)."
    echo "The device column is bench_disk during the half-rate run: one durable 4 KiB write"
    echo "(O_DIRECT|O_DSYNC) every 20 ms on the data directory's file system, timed alone; a stall"
    echo "there is the device's (or the host's), not cledgerd's."
    if [ -s "$WORK/stalls.log" ]; then
        echo
        echo "Stalls cledgerd logged during the whole run (main-loop iterations busy for more than 10 ms,"
        echo "raft log writes slower than 10 ms; docs/architecture.md §11):"
        echo
        echo '```'
        sed -e 's/.*"ts":"\([^"]*\)".*"msg":"\([^"]*\)".*/\1 \2/' "$WORK/stalls.log"
        echo '```'
    fi
} >"$WORK/table.md"
cp "$WORK/table.md" "$OUT"
cat "$WORK/table.md"
log "raw metrics:"
cat "$RAW" >&2
log "written to $OUT"
