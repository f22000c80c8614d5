#!/usr/bin/env bash
# End-to-end tests of cledger-attestd (spec/attestation-api.md §12): real processes on loopback,
# real TLS, the real evidence vectors; then the official SDK flows. Usage: test_attestd.sh BIN_DIR
set -uo pipefail
BIN=$(cd "${1:?bin dir}" && pwd)
SRC=${CLEDGER_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export CLEDGER_SOURCE_DIR=$SRC
[ -x "$BIN/cledger-attestd" ] || { echo "cledger-attestd not built"; exit 1; }
work=$(mktemp -d /tmp/cl-attestd-XXXXXX)
cleanup() { pkill -9 -f "cledger-attestd --data-dir $work" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
status=0
if ! /usr/bin/python3 "$SRC/tests/cli/attestd_e2e.py" "$BIN" "$work"; then
    status=1
    for l in "$work"/*.log; do echo "--- $l"; tail -5 "$l"; done
fi
exit $status
