/*
 * claims.h — application claims and the claims digest (spec/receipts.md §4).
 *
 * A claims list is a JSON array (the `applicationClaims` of the receipt envelope, camelCase keys)
 * of LedgerEntry claims (LedgerEntryV1 only) and ClaimDigest claims. The claims digest is
 * SHA256(u32le(n) || claim_1 || ... || claim_n); an empty list is an error (a transaction without
 * claims uses 32 zero bytes, which is not the digest of any list).
 *
 * Ownership: every function borrows its inputs. cl_claims_ledger_entry_json returns a new jansson
 * reference that the caller releases with json_decref; it holds the secret key in base64 (the
 * receipt envelope reveals it by design), so callers should not log it.
 */
#ifndef CLEDGER_LEDGER_CLAIMS_H
#define CLEDGER_LEDGER_CLAIMS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define CL_CLAIMS_MAX 256             /* claims per list */
#define CL_CLAIMS_MAX_KEY 1024        /* decoded secretKey bytes */
#define CL_CLAIMS_MAX_DIGEST_HEX 4096 /* hex characters of a ClaimDigest value */
#define CL_CLAIMS_PROTOCOL_V1 "LedgerEntryV1"

/* The intermediate values of one LedgerEntryV1 claim (§4.2). */
typedef struct {
    uint8_t hmac_collection[32]; /* HMAC-SHA256(key, collectionId) */
    uint8_t hmac_contents[32];   /* HMAC-SHA256(key, contents) */
    uint8_t inner[32];           /* SHA256(hmac_collection || hmac_contents) */
    uint8_t claim[32];           /* SHA256("LedgerEntryV1" || inner) */
} cl_ledger_entry_v1_digests;

/* All LedgerEntryV1 intermediate values from raw inputs. */
CL_MUST_CHECK int cl_claims_ledger_entry_v1(const uint8_t *key, size_t keylen,
                                            const char *collection, size_t clen,
                                            const char *contents, size_t len,
                                            cl_ledger_entry_v1_digests *out);

/* The claims digest of a list holding exactly one LedgerEntryV1 claim (what the ledger engine
 * stores in the leaf of a write). */
CL_MUST_CHECK int cl_claims_ledger_entry_digest(const uint8_t *key, size_t keylen,
                                                const char *collection, size_t clen,
                                                const char *contents, size_t len,
                                                uint8_t out_claims_digest[32]);

/* The `applicationClaims` array for that write:
 * [{"kind":"LedgerEntry","ledgerEntry":{"collectionId","contents","protocol":"LedgerEntryV1",
 *   "secretKey": standard base64}}]. collection and contents must be valid UTF-8 without NUL
 * (CL_EINVAL otherwise). */
CL_MUST_CHECK int cl_claims_ledger_entry_json(const uint8_t *key, size_t keylen,
                                              const char *collection, size_t clen,
                                              const char *contents, size_t len, json_t **out);

/* Per-claim digest of one claim object (camelCase). CL_EJSON for a wrong shape, CL_EBASE64 /
 * CL_EHEX for bad encodings, CL_EUNSUPPORTED for an unknown kind or LedgerEntry protocol. */
CL_MUST_CHECK int cl_claim_digest(const json_t *claim, uint8_t out[32]);

/* Claims digest of a JSON array of claims. CL_EJSON when not an array or empty, CL_EOVERFLOW when
 * longer than CL_CLAIMS_MAX; otherwise the errors of cl_claim_digest. When perclaim is not NULL it
 * receives the per-claim digests (room for json_array_size(claims) entries). */
CL_MUST_CHECK int cl_claims_digest(const json_t *claims, uint8_t out[32], uint8_t (*perclaim)[32]);

/* Parses `len` bytes of JSON (an array of claims) and computes its claims digest. */
CL_MUST_CHECK int cl_claims_digest_json(const char *json, size_t len, uint8_t out[32]);

#endif
