/*
 * claims.c — application claims digest (spec/receipts.md §4). The only format here is the claims
 * list of the receipt envelope; the digest layout is fixed by the spec and by the official
 * verifier, so nothing in this file may change the bytes that are hashed.
 */
#include "ledger/claims.h"

#include <string.h>

#include "base/alloc.h"
#include "base/codec.h"
#include "base/cursor.h"
#include "base/json.h"
#include "crypto/hash.h"

#define CLAIMS_MAX_JSON (1u << 20)

/* RFC 3629 UTF-8 (no overlongs, no surrogates, at most U+10FFFF) without NUL bytes. */
int cl_claims_ledger_entry_v1(const uint8_t *key, size_t keylen, const char *collection,
                              size_t clen, const char *contents, size_t len,
                              cl_ledger_entry_v1_digests *out)
{
    static const uint8_t empty_key[1];
    CL_ENSURE(out != NULL && (key != NULL || keylen == 0), CL_EINVAL);
    CL_ENSURE((collection != NULL || clen == 0) && (contents != NULL || len == 0), CL_EINVAL);
    CL_ENSURE(keylen <= CL_CLAIMS_MAX_KEY, CL_EOVERFLOW);
    if (keylen == 0)
        key = empty_key; /* HMAC with an empty key is well defined; OpenSSL wants a pointer */
    if (clen == 0)
        collection = "";
    if (len == 0)
        contents = "";
    cl_hmac_key hk; /* one key expansion for both MACs */
    cl_hmac_key_init(&hk, key, keylen);
    cl_hmac_key_mac(&hk, collection, clen, out->hmac_collection);
    cl_hmac_key_mac(&hk, contents, len, out->hmac_contents);
    cl_hmac_key_wipe(&hk);
    cl_sha256_2(out->hmac_collection, 32, out->hmac_contents, 32, out->inner);
    cl_sha256_2(CL_CLAIMS_PROTOCOL_V1, strlen(CL_CLAIMS_PROTOCOL_V1), out->inner, 32, out->claim);
    return CL_OK;
}

/* SHA256(u32le(n) || claims) over n consecutive 32-byte claim digests (§4.3). */
static void digest_of_claims(const uint8_t (*claims)[32], size_t n, uint8_t out[32])
{
    uint8_t count[4];
    cl_store_u32(count, (uint32_t)n);
    cl_sha256_2(count, sizeof count, claims, 32 * n, out);
}

int cl_claims_ledger_entry_digest(const uint8_t *key, size_t keylen, const char *collection,
                                  size_t clen, const char *contents, size_t len,
                                  uint8_t out_claims_digest[32])
{
    cl_ledger_entry_v1_digests d;
    CL_TRY(cl_claims_ledger_entry_v1(key, keylen, collection, clen, contents, len, &d));
    digest_of_claims((const uint8_t(*)[32])d.claim, 1, out_claims_digest);
    cl_wipe(&d, sizeof d);
    return CL_OK;
}

int cl_claims_ledger_entry_json(const uint8_t *key, size_t keylen, const char *collection,
                                size_t clen, const char *contents, size_t len, json_t **out)
{
    CL_ENSURE(out != NULL && (key != NULL || keylen == 0), CL_EINVAL);
    CL_ENSURE((collection != NULL || clen == 0) && (contents != NULL || len == 0), CL_EINVAL);
    CL_ENSURE(keylen <= CL_CLAIMS_MAX_KEY, CL_EOVERFLOW);
    CL_ENSURE(cl_utf8_valid(collection, clen) && cl_utf8_valid(contents, len), CL_EINVAL);
    cl_json_init();
    int rc = CL_ENOMEM;
    json_t *arr = NULL;
    char *b64 = cl_b64_encode_alloc(key, keylen, CL_B64_STD);
    if (b64 == NULL)
        goto out;
    json_t *entry =
        json_pack("{s:s%,s:s%,s:s,s:s}", "collectionId", clen ? collection : "", clen, "contents",
                  len ? contents : "", len, "protocol", CL_CLAIMS_PROTOCOL_V1, "secretKey", b64);
    if (entry == NULL)
        goto out;
    arr = json_pack("[{s:s,s:o}]", "kind", "LedgerEntry", "ledgerEntry", entry);
    if (arr == NULL)
        goto out;
    *out = arr;
    rc = CL_OK;
out:
    if (b64 != NULL) {
        cl_wipe(b64, strlen(b64));
        cl_free(b64);
    }
    return rc;
}

static int ledger_entry_claim(const json_t *le, uint8_t out[32])
{
    const char *protocol, *collection, *contents, *secret;
    size_t plen, clen, len, slen;
    CL_ENSURE(json_is_object(le), CL_EJSON);
    CL_TRY(cl_json_get_str(le, "protocol", &protocol, &plen));
    CL_TRY(cl_json_get_str(le, "collectionId", &collection, &clen));
    CL_TRY(cl_json_get_str(le, "contents", &contents, &len));
    CL_TRY(cl_json_get_str(le, "secretKey", &secret, &slen));
    CL_ENSURE(plen == strlen(CL_CLAIMS_PROTOCOL_V1) &&
                  memcmp(protocol, CL_CLAIMS_PROTOCOL_V1, plen) == 0, /* lint:public */
              CL_EUNSUPPORTED);
    CL_ENSURE(slen <= cl_b64_encoded_len(CL_CLAIMS_MAX_KEY, CL_B64_STD), CL_EOVERFLOW);
    uint8_t key[CL_CLAIMS_MAX_KEY];
    size_t keylen = 0;
    int rc = cl_b64_decode(secret, slen, key, sizeof key, &keylen, CL_B64_STD);
    if (rc == CL_OK) {
        cl_ledger_entry_v1_digests d;
        rc = cl_claims_ledger_entry_v1(key, keylen, collection, clen, contents, len, &d);
        if (rc == CL_OK)
            memcpy(out, d.claim, 32);
        cl_wipe(&d, sizeof d);
    }
    cl_wipe(key, sizeof key);
    return rc;
}

static int claim_digest_claim(const json_t *dg, uint8_t out[32])
{
    const char *protocol, *value;
    size_t plen, vlen;
    CL_ENSURE(json_is_object(dg), CL_EJSON);
    CL_TRY(cl_json_get_str(dg, "protocol", &protocol, &plen));
    CL_TRY(cl_json_get_str(dg, "value", &value, &vlen));
    CL_ENSURE(vlen <= CL_CLAIMS_MAX_DIGEST_HEX, CL_EOVERFLOW);
    CL_ENSURE(vlen % 2 == 0, CL_EHEX);
    uint8_t bin[CL_CLAIMS_MAX_DIGEST_HEX / 2];
    CL_TRY(cl_hex_decode(value, vlen, bin, vlen / 2));
    cl_sha256_2(protocol, plen, bin, vlen / 2, out);
    return CL_OK;
}

int cl_claim_digest(const json_t *claim, uint8_t out[32])
{
    const char *kind;
    size_t klen;
    CL_ENSURE(json_is_object(claim) && out != NULL, CL_EJSON);
    CL_TRY(cl_json_get_str(claim, "kind", &kind, &klen));
    if (klen == strlen("LedgerEntry") && memcmp(kind, "LedgerEntry", klen) == 0) /* lint:public */
        return ledger_entry_claim(json_object_get(claim, "ledgerEntry"), out);
    if (klen == strlen("ClaimDigest") && memcmp(kind, "ClaimDigest", klen) == 0) /* lint:public */
        return claim_digest_claim(json_object_get(claim, "digest"), out);
    return CL_EUNSUPPORTED;
}

int cl_claims_digest(const json_t *claims, uint8_t out[32], uint8_t (*perclaim)[32])
{
    CL_ENSURE(json_is_array(claims) && out != NULL, CL_EJSON);
    size_t n = json_array_size(claims);
    CL_ENSURE(n > 0, CL_EJSON);
    CL_ENSURE(n <= CL_CLAIMS_MAX, CL_EOVERFLOW);
    uint8_t(*d)[32] = cl_malloc(n * 32);
    CL_ENSURE(d != NULL, CL_ENOMEM);
    int rc = CL_OK;
    for (size_t i = 0; i < n; i++)
        CL_GUARD(cl_claim_digest(json_array_get(claims, i), d[i]));
    digest_of_claims((const uint8_t(*)[32])d, n, out);
    if (perclaim != NULL)
        memcpy(perclaim, d, n * 32);
out:
    cl_free(d);
    return rc;
}

int cl_claims_digest_json(const char *json, size_t len, uint8_t out[32])
{
    json_t *j = NULL;
    CL_TRY(cl_json_parse(json, len, CLAIMS_MAX_JSON, &j, NULL, 0));
    int rc = cl_claims_digest(j, out, NULL);
    json_decref(j);
    return rc;
}
