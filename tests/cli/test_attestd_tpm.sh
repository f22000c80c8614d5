#!/usr/bin/env bash
# test_attestd_tpm.sh BIN_DIR — cledger-attestd's TPM protocol end to end on a software TPM:
# credential activation (EK certificate from the TPM's NV, MakeCredential by the service,
# TPM2_ActivateCredential on the TPM), a fresh quote over the service's challenge, step 3, the
# token; and the failures: wrong secret, forged service_context, stale nonce, PCR not covered,
# EK certificate from another CA. Skips (exit 0) only when swtpm or tpm2-tools are missing.
set -u
BIN=$(cd "${1:?bin dir}" && pwd)
SRC=${CLEDGER_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export CLEDGER_SOURCE_DIR=$SRC
# shellcheck source=lib/swtpm.sh
. "$SRC/tests/cli/lib/swtpm.sh"
if ! why=$(swtpm_available); then echo "SKIP: $why"; exit 0; fi
[ -x "$BIN/cledger-attestd" ] || { echo "FAIL: cledger-attestd not built"; exit 1; }
T=$(mktemp -d /tmp/clatpm.XXXXXX)
cleanup() { swtpm_stop; pkill -9 -f "cledger-attestd --data-dir $T" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
swtpm_manufacture "$T" || { echo "FAIL: swtpm_setup"; exit 1; }
swtpm_start "$T" || { echo "FAIL: swtpm did not start"; exit 1; }
cd "$T" || exit 1
set -e
timeout 20 tpm2_createek -c ek.ctx -G rsa -u ek.pub >/dev/null 2>&1; tpm_flush
timeout 20 tpm2_createak -C ek.ctx -c ak.ctx -G ecc -g sha256 -s ecdsa -u ak.pub -n ak.name -r ak.priv >/dev/null 2>&1; tpm_flush
timeout 20 tpm2_nvread 0x1c00002 -o ek_rsa.der >/dev/null 2>&1
timeout 20 tpm2_pcrextend "16:sha256=$(printf 'cledger attestd tpm' | openssl dgst -sha256 -r | cut -d' ' -f1)" >/dev/null
set +e
/usr/bin/python3 "$SRC/tests/cli/attestd_tpm.py" "$BIN" "$T"
