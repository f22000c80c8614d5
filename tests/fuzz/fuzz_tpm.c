/*
 * fuzz_tpm.c — the TPM 2.0 decoders (src/attest/tpm.c) and quote verification.
 *
 * Every input goes through each parser whole: TPMS_ATTEST, TPMT_SIGNATURE, TPM2B/TPMT_PUBLIC
 * (and, for a parsed storage key, make-credential), the tpm2-tools PCR dump and the PCR JSON.
 * Then it is split as  u16 BE attest length | TPMS_ATTEST | TPMT_SIGNATURE  and verified with the
 * fixed AK, nonce and PCR values of tests/data/attestation-vectors/tpm; a success must come with
 * a quote whose extraData is the nonce and whose claims can be built.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attest/tpm.h"
#include "base/codec.h"
#include "base/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* tpm/ak_tpmt.pub and tpm/nonce.hex */
static const char AK_HEX[] =
    "00580023000b00050072000000100018000b00030010002026"
    "25403a6d2ec17339881978a92d0802624cb74320318c1aba982f59acb3d9eb0020b3273d391f75a10439da0d3b37"
    "49d9aff5fe170c9ef35ea13507db44b6e77746";
static const uint8_t NONCE[8] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77};
static const char PCR16_HEX[] = "5c52980c99ec28269be96cb022b3ec4dd2617bb48ee7568a006b1eed9bcc2c5a";

static cl_tpm_public ak;
static cl_tpm_pcrs pcrs;
static int ready;

static void setup(void)
{
    uint8_t buf[90], v[32] = {0};
    char err[128];
    if (cl_hex_decode(AK_HEX, strlen(AK_HEX), buf, sizeof buf) != CL_OK ||
        cl_tpm_public_parse(buf, sizeof buf, &ak, err, sizeof err) != CL_OK)
        abort();
    cl_tpm_pcrs_init(&pcrs);
    for (unsigned i = 0; i < 4; i++)
        if (cl_tpm_pcrs_set(&pcrs, CL_TPM_ALG_SHA256, i, v, 32, err, sizeof err) != CL_OK)
            abort();
    if (cl_hex_decode(PCR16_HEX, 64, v, 32) != CL_OK ||
        cl_tpm_pcrs_set(&pcrs, CL_TPM_ALG_SHA256, 16, v, 32, err, sizeof err) != CL_OK)
        abort();
    cl_json_init();
    ready = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cl_tpm_pcrs parsed;
    char err[256];
    cl_tpm_attest a;
    cl_tpm_signature s;
    cl_tpm_public pub;
    if (!ready)
        setup();

    if (cl_tpm_attest_parse(data, size, &a, err, sizeof err) == CL_OK &&
        (a.nbanks > CL_TPM_MAX_BANKS || a.pcr_digest_len > CL_TPM_MAX_DIGEST))
        abort();
    if (cl_tpm_signature_parse(data, size, &s, err, sizeof err) == CL_OK &&
        (s.sig_len > sizeof s.sig || s.r_len > sizeof s.r))
        abort();
    if (cl_tpm_public_parse(data, size, &pub, err, sizeof err) == CL_OK) {
        if (pub.pkey == NULL || pub.name_len != 2 + cl_tpm_hash_size(pub.name_alg))
            abort();
        /* A storage key: the verifier's make-credential must not misbehave on it. */
        if ((pub.attributes & CL_TPMA_RESTRICTED) && (pub.attributes & CL_TPMA_DECRYPT)) {
            cl_buf id = CL_BUF_INIT, es = CL_BUF_INIT;
            static const uint8_t secret[16] = {1, 2, 3};
            int rc = cl_tpm_make_credential(&pub, pub.name, pub.name_len, secret, sizeof secret,
                                            &id, &es, err, sizeof err);
            if ((rc == CL_OK) != (id.len > 0 && es.len > 0))
                abort(); /* outputs appear exactly on success */
            cl_buf_free(&id);
            cl_buf_free(&es);
        }
        cl_tpm_public_free(&pub);
    }
    if (cl_tpm_pcrs_parse_tpm2tools(data, size, &parsed, err, sizeof err) == CL_OK &&
        parsed.nbanks > CL_TPM_PCR_BANKS)
        abort();
    if (cl_tpm_pcrs_parse_json((const char *)data, size, &parsed, err, sizeof err) == CL_OK &&
        parsed.nbanks > CL_TPM_PCR_BANKS)
        abort();

    if (size < 2)
        return 0;
    size_t alen = (size_t)data[0] << 8 | data[1];
    if (alen > size - 2)
        return 0;
    const uint8_t *att = data + 2, *sig = att + alen;
    size_t slen = size - 2 - alen;
    err[0] = '\0';
    int rc =
        cl_tpm_quote_verify(att, alen, sig, slen, &ak, NONCE, sizeof NONCE, &pcrs, err, sizeof err);
    if (rc == CL_OK) {
        if (cl_tpm_attest_parse(att, alen, &a, err, sizeof err) != CL_OK ||
            a.extra_data_len != sizeof NONCE || memcmp(a.extra_data, NONCE, sizeof NONCE) != 0)
            abort();
        json_t *claims = json_object();
        if (claims == NULL || cl_tpm_claims(&a, &pcrs, &ak, 0, claims) != CL_OK)
            abort();
        json_decref(claims);
    } else if (err[0] == '\0') {
        abort(); /* every failure carries a message */
    }
    return 0;
}
