#include "crypto/hash.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdlib.h>

/* Per-thread reusable digest context. EVP_MD_fetch once; EVP_DigestInit_ex2 on a live context is
 * far cheaper than the one-shot EVP_Digest, which fetches and allocates on every call. */
static __thread EVP_MD_CTX *tls_ctx;
static EVP_MD *sha256_md;

static EVP_MD_CTX *ctx_get(void)
{
    if (tls_ctx == NULL) {
        if (__atomic_load_n(&sha256_md, __ATOMIC_ACQUIRE) == NULL) {
            EVP_MD *md = EVP_MD_fetch(NULL, "SHA256", NULL);
            EVP_MD *expected = NULL;
            if (md == NULL)
                abort(); /* the default provider is unusable: nothing can work */
            if (!__atomic_compare_exchange_n(&sha256_md, &expected, md, 0, __ATOMIC_ACQ_REL,
                                             __ATOMIC_ACQUIRE))
                EVP_MD_free(md);
        }
        tls_ctx = EVP_MD_CTX_new();
        if (tls_ctx == NULL)
            abort();
    }
    return tls_ctx;
}

void cl_sha256_v(const cl_iov *v, size_t count, uint8_t out[CL_SHA256_LEN])
{
    EVP_MD_CTX *c = ctx_get();
    unsigned int n = 0;
    /* These calls cannot fail for SHA-256 with a valid context and in-memory input. */
    if (EVP_DigestInit_ex2(c, sha256_md, NULL) != 1)
        abort();
    for (size_t i = 0; i < count; i++)
        if (v[i].n > 0 && EVP_DigestUpdate(c, v[i].p, v[i].n) != 1)
            abort();
    if (EVP_DigestFinal_ex(c, out, &n) != 1)
        abort();
}

void cl_sha256(const void *data, size_t len, uint8_t out[CL_SHA256_LEN])
{
    cl_iov v = {data, len};
    cl_sha256_v(&v, 1, out);
}

void cl_sha256_2(const void *a, size_t alen, const void *b, size_t blen,
                 uint8_t out[CL_SHA256_LEN])
{
    cl_iov v[2] = {{a, alen}, {b, blen}};
    cl_sha256_v(v, 2, out);
}

int cl_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t len,
                   uint8_t out[CL_SHA256_LEN])
{
    unsigned int n = 0;
    if (HMAC(EVP_sha256(), key, (int)keylen, msg, len, out, &n) == NULL || n != CL_SHA256_LEN)
        return CL_ECRYPTO;
    return CL_OK;
}

int cl_random(void *out, size_t n)
{
    CL_ENSURE(n <= INT32_MAX, CL_EINVAL);
    return RAND_bytes(out, (int)n) == 1 ? CL_OK : CL_ECRYPTO;
}

int cl_ct_equal(const void *a, const void *b, size_t n) { return CRYPTO_memcmp(a, b, n) == 0; }

void *cl_secret_alloc(size_t n) { return OPENSSL_secure_zalloc(n); }

void cl_secret_free(void *p, size_t n)
{
    if (p != NULL)
        OPENSSL_secure_clear_free(p, n);
}

void cl_wipe(void *p, size_t n) { OPENSSL_cleanse(p, n); }
