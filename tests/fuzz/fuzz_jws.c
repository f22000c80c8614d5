/*
 * fuzz_jws.c — the JOSE layer (src/attest/jws.c): every input is tried as
 *   1. a policy / certificate JWS: cl_jws_parse, then cl_jws_verify and the signer claim; the
 *      signing input must be the input's prefix up to the second '.';
 *   2. a lenient base64url string: a successful decode must re-encode to the same text once the
 *      alphabet is normalised to `-_` and padding is stripped (one decoding per text);
 *   3. a JWKS document (cl_jwks_parse);
 *   4. an administrator's bearer token validated against a fixed JWKS whose EC key signed the
 *      bearer_* seeds of corpus/jws (so the signature and claim checks are reached).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attest/jws.h"
#include "base/alloc.h"
#include "base/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char FIXED_JWKS[] =
    "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"fuzz-ec\",\"use\":\"sig\","
    "\"x\":\"VHtjDvTVFK5C-CGtMoWg7HSOHzeINgdVkmFlS_IoJDY\","
    "\"y\":\"Nhu0Twf76kFrlp-mUcH1tva7cdm7_C8xc0ySFcjjJUk\"}]}";

static void try_jws(const char *text, size_t size)
{
    cl_jws *j = NULL;
    char err[256];
    if (cl_jws_parse(text, size, &j, err, sizeof err) != CL_OK)
        return;
    size_t silen = 0, plen = 0;
    const char *si = cl_jws_signing_input(j, &silen);
    if (silen >= size || memcmp(si, text, silen) != 0 || text[silen] != '.')
        abort();
    if (cl_jws_alg(j) == NULL || !json_is_object(cl_jws_header(j)) ||
        cl_jws_payload(j, &plen) == NULL)
        abort();
    int rc = cl_jws_verify(j, err, sizeof err);
    json_t *claim = NULL;
    int crc = cl_jws_signer_jwk(j, &claim);
    if (rc == CL_OK && cl_jws_is_signed(j)) {
        if (cl_jws_signer_key(j) == NULL)
            abort();
        if (crc == CL_OK)
            json_decref(claim);
        else if (crc != CL_ENOENT || cl_jws_signer_cert(j) != NULL)
            abort();
    } else {
        if (crc != CL_ESTATE || cl_jws_signer_key(j) != NULL || cl_jws_signer_cert(j) != NULL)
            abort();
    }
    cl_jws_free(j);
}

static void try_b64(const char *text, size_t size)
{
    uint8_t *out = NULL;
    size_t n = 0;
    if (cl_b64_decode_lenient_alloc(text, size, &out, &n) != CL_OK)
        return;
    char *enc = cl_b64url_encode_alloc(out, n);
    if (enc == NULL)
        abort();
    size_t body = size;
    while (body > 0 && text[body - 1] == '=')
        body--;
    if (strlen(enc) != body)
        abort();
    for (size_t i = 0; i < body; i++) {
        char c = text[i] == '+' ? '-' : text[i] == '/' ? '_' : text[i];
        if (enc[i] != c)
            abort();
    }
    cl_free(enc);
    cl_free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cl_jwks *fixed;
    if (fixed == NULL && cl_jwks_parse(FIXED_JWKS, sizeof FIXED_JWKS - 1, &fixed, NULL, 0) != CL_OK)
        abort();
    const char *text = (const char *)data;
    try_jws(text, size);
    try_b64(text, size);

    cl_jwks *ks = NULL;
    char err[256];
    if (cl_jwks_parse(text, size, &ks, err, sizeof err) == CL_OK) {
        if (cl_jwks_count(ks) == 0)
            abort();
        cl_jwks_free(ks);
    }

    json_t *claims = NULL;
    int rc = cl_jwt_validate(text, size, fixed, "https://login.example/v2.0",
                             "https://attest.azure.net", 1750000100, 0, &claims, err, sizeof err);
    if (rc == CL_OK) {
        if (!json_is_object(claims))
            abort();
        json_decref(claims);
    } else if (claims != NULL) {
        abort();
    }
    return 0;
}
