/*
 * fuzz_claims.c — application claims (spec/receipts.md §4).
 *
 * The input is tried two ways: as a JSON claims list (cl_claims_digest_json must never crash), and
 * as raw material for the ledger engine's entry points, split as
 *   u8 keylen | key | u8 collection length | collection | contents
 * where the JSON form built by cl_claims_ledger_entry_json must hash to the same claims digest as
 * cl_claims_ledger_entry_digest.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/codec.h"
#include "base/json.h"
#include "ledger/claims.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t d1[32], d2[32];
    json_t *j = NULL;
    int rc_text = cl_claims_digest_json((const char *)data, size, d1);
    if (cl_json_parse((const char *)data, size, 1u << 20, &j, NULL, 0) == CL_OK) {
        int rc_json = cl_claims_digest(j, d2, NULL);
        if (rc_json != rc_text || (rc_json == CL_OK && memcmp(d1, d2, 32) != 0))
            abort();
        json_decref(j);
    }

    if (size < 2)
        return 0;
    size_t keylen = data[0];
    if (1 + keylen + 1 > size)
        return 0;
    const uint8_t *key = data + 1;
    size_t clen = data[1 + keylen];
    if (2 + keylen + clen > size)
        return 0;
    const char *coll = (const char *)data + 2 + keylen;
    const char *contents = coll + clen;
    size_t len = size - 2 - keylen - clen;

    if (cl_claims_ledger_entry_digest(key, keylen, coll, clen, contents, len, d1) != CL_OK)
        abort();
    json_t *arr = NULL;
    int rc = cl_claims_ledger_entry_json(key, keylen, coll, clen, contents, len, &arr);
    if (rc == CL_OK) {
        if (cl_claims_digest(arr, d2, NULL) != CL_OK || memcmp(d1, d2, 32) != 0)
            abort();
        /* And through text, as a client would see it. */
        char *text = json_dumps(arr, JSON_COMPACT);
        if (text == NULL || cl_claims_digest_json(text, strlen(text), d2) != CL_OK ||
            memcmp(d1, d2, 32) != 0)
            abort();
        cl_free(text);
        json_decref(arr);
    } else if (rc != CL_EINVAL || (cl_utf8_valid(coll, clen) && cl_utf8_valid(contents, len))) {
        abort();
    }
    return 0;
}
