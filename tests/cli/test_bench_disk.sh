#!/usr/bin/env bash
# bench_disk, the device reference of bench/load.sh: it writes and times, reports its figures, never
# overwrites an existing file, rejects bad options, and leaves nothing behind. Usage: BIN_DIR
set -uo pipefail
BIN=$(cd "${1:?bin dir}" && pwd)
[ -x "$BIN/bench_disk" ] || { echo "bench_disk not built"; exit 1; }
work=$(mktemp -d /tmp/cl-bdisk-XXXXXX)
trap 'rm -rf "$work"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
metric() { awk -v k="$1" '$1 == k { print $2 }' "$work/out"; }

# paced: 1 s at one write per 10 ms is about 100 writes, each timed
if "$BIN/bench_disk" --file "$work/p.dat" --duration 1 --interval-ms 10 >"$work/out" 2>"$work/err"; then
    n=$(metric disk.writes)
    if [ -n "$n" ] && [ "$n" -ge 50 ] && [ "$n" -le 110 ]; then ok; else bad "paced: $n writes in 1 s at 10 ms"; fi
    for k in disk.p50_ms disk.p99_ms disk.max_ms disk.over10 disk.over100; do
        [ -n "$(metric $k)" ] && ok || bad "no $k in: $(cat "$work/out")"
    done
    awk '$1 == "disk.p50_ms" { p50 = $2 } $1 == "disk.max_ms" { mx = $2 }
         END { exit !(p50 > 0 && mx >= p50) }' "$work/out" && ok || bad "p50 <= max > 0: $(cat "$work/out")"
else
    bad "paced run failed: $(cat "$work/err")"
fi
[ ! -e "$work/p.dat" ] && ok || bad "probe file left behind"

# back to back, 8 KiB writes
if "$BIN/bench_disk" --file "$work/b.dat" --duration 0.5 --interval-ms 0 --bytes 8192 >"$work/out" 2>"$work/err"; then
    n=$(metric disk.writes)
    [ -n "$n" ] && [ "$n" -gt 50 ] && ok || bad "back to back: $n writes in 0.5 s"
else
    bad "back-to-back run failed: $(cat "$work/err")"
fi

# an existing file is refused and left as it was
echo keep >"$work/exists"
"$BIN/bench_disk" --file "$work/exists" --duration 0.2 >/dev/null 2>"$work/err"
rc=$?
[ $rc -ne 0 ] && grep -q "File exists" "$work/err" && ok || bad "existing file: rc $rc, $(cat "$work/err")"
[ "$(cat "$work/exists")" = keep ] && ok || bad "existing file changed"

# a write that fails (the file size limit: 1 MiB, in the first MiB of the prefill) is reported
# with exit 1, and the file it created is removed
(
    trap '' XFSZ # EFBIG from pwrite instead of the signal
    ulimit -f 1024
    exec "$BIN/bench_disk" --file "$work/f.dat" --duration 1
) >/dev/null 2>"$work/err"
rc=$?
[ $rc -eq 1 ] && grep -q "f.dat: File too large" "$work/err" && ok || bad "failed write: rc $rc, $(cat "$work/err")"
[ ! -e "$work/f.dat" ] && ok || bad "a failed run left its file behind"

# bad options: exit 2 with a message, nothing created
for args in "--bytes 100" "--bytes 4097" "--bytes 4096.5" "--duration 0" "--duration x" "--interval-ms -1" "--nope 1" ""; do
    # shellcheck disable=SC2086 # the options are words
    "$BIN/bench_disk" ${args:+--file "$work/o.dat"} $args >/dev/null 2>"$work/err"
    rc=$?
    [ $rc -eq 2 ] && [ -s "$work/err" ] && ok || bad "'$args': rc $rc, $(cat "$work/err")"
    [ ! -e "$work/o.dat" ] && ok || bad "'$args' created the file"
done

echo "bench_disk: $pass passed, $fail failed"
[ $fail -eq 0 ]
