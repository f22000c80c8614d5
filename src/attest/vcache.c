/*
 * vcache.c — bounded memo of chain verifications (see vcache.h).
 */
#include "attest/vcache.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "crypto/hash.h"

typedef struct {
    int used;
    uint8_t key[32];
    int64_t not_before, not_after, inserted;
    uint8_t blob[CL_VCACHE_BLOB];
    size_t blob_len;
    X509 *cert;
    EVP_PKEY *pkey;
} slot_t;

struct cl_vcache {
    pthread_mutex_t mu;
    slot_t *slots;
    size_t mask;
    int64_t max_age;
    uint64_t hits, misses;
};

int cl_vcache_new(size_t slots, int64_t max_age_s, cl_vcache **out)
{
    CL_ENSURE(out != NULL && slots > 0 && slots <= 65536 && max_age_s > 0, CL_EINVAL);
    size_t n = 1;
    while (n < slots)
        n <<= 1;
    cl_vcache *c = cl_calloc(1, sizeof *c);
    CL_ENSURE(c != NULL, CL_ENOMEM);
    c->slots = cl_calloc(n, sizeof *c->slots);
    if (c->slots == NULL || pthread_mutex_init(&c->mu, NULL) != 0) {
        cl_free(c->slots);
        cl_free(c);
        return CL_ENOMEM;
    }
    c->mask = n - 1;
    c->max_age = max_age_s;
    *out = c;
    return CL_OK;
}

void cl_vcache_free(cl_vcache *c)
{
    if (c == NULL)
        return;
    for (size_t k = 0; k <= c->mask; k++) {
        X509_free(c->slots[k].cert);
        EVP_PKEY_free(c->slots[k].pkey);
    }
    pthread_mutex_destroy(&c->mu);
    cl_free(c->slots);
    cl_free(c);
}

static size_t index_of(const cl_vcache *c, const uint8_t key[32])
{
    size_t i = (size_t)key[0] | (size_t)key[1] << 8 | (size_t)key[2] << 16;
    return i & c->mask;
}

int cl_vcache_lookup(cl_vcache *c, const uint8_t key[32], int64_t now, void *blob, size_t *blob_len,
                     X509 **cert, EVP_PKEY **pkey)
{
    if (cert != NULL)
        *cert = NULL;
    if (pkey != NULL)
        *pkey = NULL;
    if (c == NULL)
        return 0;
    int64_t wall = (int64_t)time(NULL);
    int hit = 0;
    pthread_mutex_lock(&c->mu);
    slot_t *s = &c->slots[index_of(c, key)];
    if (s->used && cl_ct_equal(s->key, key, 32) && now >= s->not_before && now <= s->not_after &&
        wall - s->inserted <= c->max_age && wall >= s->inserted) {
        hit = 1;
        if (blob != NULL)
            memcpy(blob, s->blob, s->blob_len);
        if (blob_len != NULL)
            *blob_len = s->blob_len;
        if (cert != NULL && s->cert != NULL) {
            if (X509_up_ref(s->cert) == 1)
                *cert = s->cert;
            else
                hit = 0; /* could not take a reference: treat as a miss */
        }
        if (hit && pkey != NULL && s->pkey != NULL) {
            if (EVP_PKEY_up_ref(s->pkey) == 1) {
                *pkey = s->pkey;
            } else {
                hit = 0;
                if (cert != NULL) {
                    X509_free(*cert);
                    *cert = NULL;
                }
            }
        }
        c->hits += (uint64_t)hit;
    }
    if (!hit)
        c->misses++;
    pthread_mutex_unlock(&c->mu);
    return hit;
}

void cl_vcache_insert(cl_vcache *c, const uint8_t key[32], int64_t not_before, int64_t not_after,
                      const void *blob, size_t blob_len, X509 *cert, EVP_PKEY *pkey)
{
    if (c == NULL || blob_len > CL_VCACHE_BLOB || not_after < not_before)
        return;
    if (cert != NULL && X509_up_ref(cert) != 1)
        return;
    if (pkey != NULL && EVP_PKEY_up_ref(pkey) != 1) {
        X509_free(cert);
        return;
    }
    pthread_mutex_lock(&c->mu);
    slot_t *s = &c->slots[index_of(c, key)];
    X509 *old = s->cert;
    EVP_PKEY *oldk = s->pkey;
    s->used = 1;
    memcpy(s->key, key, 32);
    s->not_before = not_before;
    s->not_after = not_after;
    s->inserted = (int64_t)time(NULL);
    if (blob_len > 0)
        memcpy(s->blob, blob, blob_len);
    s->blob_len = blob_len;
    s->cert = cert;
    s->pkey = pkey;
    pthread_mutex_unlock(&c->mu);
    X509_free(old);
    EVP_PKEY_free(oldk);
}

void cl_vcache_stats(cl_vcache *c, uint64_t *hits, uint64_t *misses)
{
    if (c == NULL) {
        *hits = *misses = 0;
        return;
    }
    pthread_mutex_lock(&c->mu);
    *hits = c->hits;
    *misses = c->misses;
    pthread_mutex_unlock(&c->mu);
}
