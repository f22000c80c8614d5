# tests/cli/lib/swtpm.sh — sourced by TPM tests: a software TPM manufactured with EK certificates
# signed by a private swtpm_localca CA, served on a unix socket (evidence-formats.md §6.7).
#   swtpm_available             0 when every tool is installed (else prints why)
#   swtpm_manufacture DIR       TPM state in DIR/state, CA in DIR/ca, CA bundle DIR/ca.pem
#   swtpm_start DIR             starts swtpm (SWTPM_PID), exports TPM2TOOLS_TCTI
#   swtpm_stop                  stops it
#   tpm_flush                   flushes transient objects and sessions
swtpm_available() {
    local t
    for t in swtpm swtpm_setup swtpm_localca certtool tpm2_createek tpm2_createak tpm2_readpublic \
        tpm2_pcrextend tpm2_quote tpm2_nvread tpm2_startauthsession tpm2_policysecret \
        tpm2_activatecredential tpm2_flushcontext openssl; do
        command -v "$t" >/dev/null 2>&1 || { echo "$t is not installed (apt-get install swtpm swtpm-tools tpm2-tools)"; return 1; }
    done
    ldconfig -p 2>/dev/null | grep -q 'libtss2-tcti-swtpm\.so' ||
        { echo "libtss2-tcti-swtpm is not installed (apt-get install libtss2-tcti-swtpm0)"; return 1; }
    return 0
}

swtpm_manufacture() {
    local d=$1
    mkdir -p "$d/ca" "$d/state"
    cat >"$d/localca.conf" <<CONF
statedir = $d/ca
signingkey = $d/ca/signkey.pem
issuercert = $d/ca/issuercert.pem
certserial = $d/ca/certserial
CONF
    printf '%s\n' '--platform-manufacturer cledger' '--platform-version 2.1' '--platform-model test' \
        >"$d/localca.options"
    cat >"$d/setup.conf" <<CONF
create_certs_tool = $(command -v swtpm_localca)
create_certs_tool_config = $d/localca.conf
create_certs_tool_options = $d/localca.options
active_pcr_banks = sha256
CONF
    timeout 60 swtpm_setup --tpm2 --tpmstate "$d/state" --config "$d/setup.conf" --create-ek-cert \
        --create-platform-cert --ecc --overwrite >"$d/setup.log" 2>&1 || { cat "$d/setup.log"; return 1; }
    cat "$d/ca/swtpm-localca-rootca-cert.pem" "$d/ca/issuercert.pem" >"$d/ca.pem"
}

swtpm_start() {
    local d=$1
    swtpm socket --tpm2 --tpmstate dir="$d/state" \
        --server type=unixio,path="$d/tpm.sock" --ctrl type=unixio,path="$d/tpm.sock.ctrl" \
        --flags not-need-init,startup-clear >"$d/swtpm.log" 2>&1 &
    SWTPM_PID=$!
    local i
    for i in $(seq 1 50); do
        [ -S "$d/tpm.sock" ] && [ -S "$d/tpm.sock.ctrl" ] && break
        sleep 0.1
    done
    [ -S "$d/tpm.sock" ] || { cat "$d/swtpm.log"; return 1; }
    export TPM2TOOLS_TCTI="swtpm:path=$d/tpm.sock"
}

swtpm_stop() {
    if [ -n "${SWTPM_PID:-}" ]; then
        kill "$SWTPM_PID" 2>/dev/null
        wait "$SWTPM_PID" 2>/dev/null
        SWTPM_PID=
    fi
}

tpm_flush() {
    timeout 10 tpm2_flushcontext -t >/dev/null 2>&1
    timeout 10 tpm2_flushcontext -s >/dev/null 2>&1
}
