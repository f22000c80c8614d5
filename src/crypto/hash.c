#include "crypto/hash.h"

/* The low-level SHA256_* functions are deprecated in OpenSSL 3.0 but remain supported in every
 * 3.x release. They are used on purpose: in 3.0, EVP_DigestInit_ex2 re-allocates and re-checks its
 * provider state on every call, which made 64- and 96-byte hashes (the Merkle tree, leaves, HMAC)
 * ~1.8x slower and dominated append and verify-ledger profiles (docs/dependencies.md). The
 * low-level API runs the same SHA-NI/AVX2 assembly without the per-call setup. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <string.h>

_Static_assert(sizeof(SHA256_CTX) * 2 <= sizeof(((cl_hmac_key *)0)->state),
               "cl_hmac_key too small for two SHA256_CTX");

void cl_sha256_v(const cl_iov *v, size_t count, uint8_t out[CL_SHA256_LEN])
{
    SHA256_CTX c;
    SHA256_Init(&c);
    for (size_t i = 0; i < count; i++)
        if (v[i].n > 0)
            SHA256_Update(&c, v[i].p, v[i].n);
    SHA256_Final(out, &c);
}

void cl_sha256(const void *data, size_t len, uint8_t out[CL_SHA256_LEN])
{
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, data, len);
    SHA256_Final(out, &c);
}

void cl_sha256_2(const void *a, size_t alen, const void *b, size_t blen, uint8_t out[CL_SHA256_LEN])
{
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, a, alen);
    SHA256_Update(&c, b, blen);
    SHA256_Final(out, &c);
}

/* HMAC-SHA256 (RFC 2104) with the two keyed states precomputed: H((K0^ipad) || m) and
 * H((K0^opad) || inner) continue from SHA-256 states that have already absorbed the padded key,
 * so a MAC over a short message costs two compressions instead of four plus context set-up. */
#define SHA256_BLOCK 64

void cl_hmac_key_init(cl_hmac_key *k, const void *key, size_t keylen)
{
    SHA256_CTX *in = (SHA256_CTX *)(void *)k->state, *out = in + 1;
    uint8_t k0[SHA256_BLOCK], pad[SHA256_BLOCK];
    memset(k0, 0, sizeof k0);
    if (keylen > SHA256_BLOCK)
        cl_sha256(key, keylen, k0);
    else if (keylen > 0)
        memcpy(k0, key, keylen);
    for (size_t i = 0; i < SHA256_BLOCK; i++)
        pad[i] = k0[i] ^ 0x36;
    SHA256_Init(in);
    SHA256_Update(in, pad, SHA256_BLOCK);
    for (size_t i = 0; i < SHA256_BLOCK; i++)
        pad[i] = k0[i] ^ 0x5c;
    SHA256_Init(out);
    SHA256_Update(out, pad, SHA256_BLOCK);
    OPENSSL_cleanse(k0, sizeof k0);
    OPENSSL_cleanse(pad, sizeof pad);
}

void cl_hmac_key_mac(const cl_hmac_key *k, const void *msg, size_t len, uint8_t out[CL_SHA256_LEN])
{
    SHA256_CTX c = ((const SHA256_CTX *)(const void *)k->state)[0];
    uint8_t inner[CL_SHA256_LEN];
    SHA256_Update(&c, msg, len);
    SHA256_Final(inner, &c);
    c = ((const SHA256_CTX *)(const void *)k->state)[1];
    SHA256_Update(&c, inner, sizeof inner);
    SHA256_Final(out, &c);
    OPENSSL_cleanse(&c, sizeof c);
    OPENSSL_cleanse(inner, sizeof inner);
}

void cl_hmac_key_wipe(cl_hmac_key *k) { OPENSSL_cleanse(k, sizeof *k); }

int cl_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t len,
                   uint8_t out[CL_SHA256_LEN])
{
    cl_hmac_key k;
    cl_hmac_key_init(&k, key, keylen);
    cl_hmac_key_mac(&k, msg, len, out);
    cl_hmac_key_wipe(&k);
    return CL_OK;
}

int cl_random(void *out, size_t n)
{
    CL_ENSURE(n <= INT32_MAX, CL_EINVAL);
    return RAND_bytes(out, (int)n) == 1 ? CL_OK : CL_ECRYPTO;
}

void cl_random_pool_init(cl_random_pool *p)
{
    cl_wipe(p->buf, sizeof p->buf);
    p->off = sizeof p->buf;
}

int cl_random_pool_take(cl_random_pool *p, void *out, size_t n)
{
    CL_ENSURE(n <= sizeof p->buf, CL_EINVAL);
    if (sizeof p->buf - p->off < n) {
        CL_TRY(cl_random(p->buf, sizeof p->buf));
        p->off = 0;
    }
    memcpy(out, p->buf + p->off, n);
    cl_wipe(p->buf + p->off, n);
    p->off += n;
    return CL_OK;
}

void cl_random_pool_wipe(cl_random_pool *p) { cl_random_pool_init(p); }

int cl_ct_equal(const void *a, const void *b, size_t n) { return CRYPTO_memcmp(a, b, n) == 0; }

void *cl_secret_alloc(size_t n) { return OPENSSL_secure_zalloc(n); }

void cl_secret_free(void *p, size_t n)
{
    if (p != NULL)
        OPENSSL_secure_clear_free(p, n);
}

void cl_wipe(void *p, size_t n) { OPENSSL_cleanse(p, n); }
