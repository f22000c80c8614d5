#!/bin/sh
# Installs exactly the Debian packages cledger's build, tests and benchmarks need.
# Idempotent: when everything is present it only runs dpkg-query and exits (well under a second).
# Usage: scripts/install-deps.sh [--check]   (--check: exit 1 listing what is missing, install nothing)
set -eu

# Build: compiler, CMake, and the libraries the code links against.
BUILD="build-essential cmake pkg-config clang libclang-rt-14-dev llvm \
libssl-dev libuv1-dev libhttp-parser-dev libraft-dev liblmdb-dev libjansson-dev \
libcurl4-openssl-dev libcjose-dev libgfshare-dev libcmocka-dev liburing-dev libbsd-dev"
# Tests and benchmarks: openssl CLI for known answers and `openssl speed`, lmdb-utils to inspect
# the index, nginx as the benchmark ceiling, swtpm/tpm2-tools (+ the swtpm TCTI and certtool)
# for the TPM tests, python3-azure (+ python3-cryptography for the harnesses)
# for the official Python SDK, nodejs/npm for the official JS SDKs, curl for smoke tests.
TEST="openssl lmdb-utils nginx-light swtpm swtpm-tools tpm2-tools libtss2-tcti-swtpm0 gnutls-bin python3 python3-azure python3-cryptography curl"

missing=""
for p in $BUILD $TEST; do
    if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing="$missing $p"
    fi
done
# node and npm may come from outside Debian's packages on developer machines; accept any install.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    missing="$missing nodejs npm"
fi

if [ -z "$missing" ]; then
    exit 0
fi
if [ "${1:-}" = "--check" ]; then
    echo "missing packages:$missing" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "install-deps: done" >&2
