/*
 * hash.h — SHA-256 / SHA-384, HMAC-SHA256, random bytes, and wiped secret memory.
 *
 * The SHA-256 fast path uses OpenSSL's low-level SHA256_* functions (hash.c says why), so the
 * Merkle tree and the verifier (millions of 64- and 96-byte hashes) pay no per-call set-up.
 * HMAC keys can be expanded once (cl_hmac_key) and reused for many messages.
 * cl_secret_* memory comes from OpenSSL's secure heap when one is initialised and is always
 * cleansed before it is released. Compare digests, tags and MACs with cl_ct_equal (CRYPTO_memcmp).
 */
#ifndef CLEDGER_CRYPTO_HASH_H
#define CLEDGER_CRYPTO_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define CL_SHA256_LEN 32
#define CL_SHA384_LEN 48

void cl_sha256(const void *data, size_t len, uint8_t out[CL_SHA256_LEN]);
/* SHA256(a || b) without copying. */
void cl_sha256_2(const void *a, size_t alen, const void *b, size_t blen,
                 uint8_t out[CL_SHA256_LEN]);
/* SHA256 over several pieces. */
typedef struct {
    const void *p;
    size_t n;
} cl_iov;
void cl_sha256_v(const cl_iov *v, size_t count, uint8_t out[CL_SHA256_LEN]);

/* HMAC-SHA256 with a key expanded once: holds two SHA-256 states (secret; wipe when done). */
typedef struct {
    uint64_t state[32];
} cl_hmac_key;
void cl_hmac_key_init(cl_hmac_key *k, const void *key, size_t keylen);
void cl_hmac_key_mac(const cl_hmac_key *k, const void *msg, size_t len, uint8_t out[CL_SHA256_LEN]);
void cl_hmac_key_wipe(cl_hmac_key *k);

CL_MUST_CHECK int cl_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t len,
                                 uint8_t out[CL_SHA256_LEN]);

CL_MUST_CHECK int cl_random(void *out, size_t n);

/*
 * A pool of CSPRNG bytes for hot paths that need many small secrets (a 32-byte commit-evidence
 * key per write): one RAND_bytes call refills CL_RANDOM_POOL_BYTES, each take copies and wipes
 * what it hands out. Not thread-safe: one pool per thread. Wipe it before freeing its owner.
 */
#define CL_RANDOM_POOL_BYTES 4096
typedef struct {
    uint8_t buf[CL_RANDOM_POOL_BYTES];
    size_t off; /* bytes already handed out (wiped); CL_RANDOM_POOL_BYTES: empty */
} cl_random_pool;
void cl_random_pool_init(cl_random_pool *p); /* empty; the first take fills it */
CL_MUST_CHECK int cl_random_pool_take(cl_random_pool *p, void *out, size_t n);
void cl_random_pool_wipe(cl_random_pool *p);

/* Constant-time equality of two n-byte buffers: 1 equal, 0 different. */
int cl_ct_equal(const void *a, const void *b, size_t n);

void *cl_secret_alloc(size_t n); /* zeroed; NULL on failure */
void cl_secret_free(void *p, size_t n);
void cl_wipe(void *p, size_t n);

#endif
