#!/usr/bin/env bash
# Installs the pinned JS SDKs (package-lock.json) into tests/sdk/node_modules once; concurrent
# callers (parallel ctest) wait on a lock instead of racing npm. Exit 0 when both SDKs load.
set -u
dir=$(cd "$(dirname "$0")" && pwd)
exec 9>"$dir/.npm.lock"
flock 9
if [ ! -d "$dir/node_modules/@azure/attestation" ] || [ ! -d "$dir/node_modules/@azure-rest/confidential-ledger" ]; then
    (cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts >/dev/null 2>&1) || exit 1
fi
exit 0
