/*
 * ecdsa_det.c — deterministic ECDSA (RFC 6979) for the ledger's signature entries.
 *
 * Why: a signature entry is made when the SIGN command is applied, and a restart re-applies the
 * raft log's commands after the ledger's last durable signature. With a random nonce, an entry
 * that was signed, lost (a power cut before the ledger reached the disk) and applied again came
 * back with other signature bytes: its leaf, every later root and every receipt issued before the
 * loss no longer matched the ledger, while both histories carried valid signatures by the same
 * node. With the nonce derived from the key and the digest, the same state signs to the same
 * bytes, so a replay rebuilds the ledger byte for byte (docs/ledger-format.md §4 "Deterministic
 * signatures").
 *
 * OpenSSL 3.2 offers this as the "nonce-type" parameter of EVP_PKEY_sign; the 3.0 of Debian 12
 * does not. So the nonce k is derived here (RFC 6979 §3.2 with HMAC-SHA256, the hash that made the
 * digest: the ledger signs 32-byte SHA-256 Merkle roots, on P-256 or P-384; a digest of another
 * length is refused, since RFC 6979 would derive its nonce with its own hash), and OpenSSL does the
 * curve arithmetic: k·G through EC_POINT_mul (its constant-time ladder for a secret scalar),
 * 1/k through BN_mod_exp_mont_consttime (Fermat), and s = (z + r·x)/k through ECDSA_do_sign_ex,
 * which takes a precomputed (1/k, r) and computes s with OpenSSL's constant-time code. Those two
 * EC_KEY-era functions are deprecated in 3.0 but present; this file alone uses them. Every
 * signature is verified before it is returned: with a deterministic nonce, a fault during signing
 * must not publish a wrong signature next to a right one for the same digest.
 *
 * Secrets (x, k, 1/k, the HMAC state and buffers) are wiped on every path.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <string.h>

#include "base/alloc.h"
#include "crypto/ec.h"
#include "crypto/hash.h"
#include "crypto/ossl.h"

#define QMAX 48 /* bytes of the largest group order (P-384) */

/* HMAC-SHA256 over a || b || c || d (any may be empty). */
static int hmac4(const uint8_t key[32], const uint8_t *a, size_t al, const uint8_t *b, size_t bl,
                 const uint8_t *c, size_t cl, const uint8_t *d, size_t dl, uint8_t out[32])
{
    uint8_t msg[32 + 1 + QMAX + QMAX];
    CL_ENSURE(al + bl + cl + dl <= sizeof msg, CL_EINVAL);
    size_t n = 0;
    memcpy(msg + n, a, al), n += al;
    if (bl)
        memcpy(msg + n, b, bl), n += bl;
    if (cl)
        memcpy(msg + n, c, cl), n += cl;
    if (dl)
        memcpy(msg + n, d, dl), n += dl;
    int rc = cl_hmac_sha256(key, 32, msg, n, out);
    cl_wipe(msg, sizeof msg);
    return rc;
}

/* bits2int (RFC 6979 §2.3.2) into a big-endian qlen-byte buffer, without reduction: the leftmost
 * qlen bytes of a longer input, a shorter one right-aligned. P-256 and P-384 orders have a whole
 * number of bytes, so no bit shift is needed. */
static void bits2int(const uint8_t *b, size_t blen, uint8_t *out, size_t qlen)
{
    memset(out, 0, qlen);
    if (blen <= qlen)
        memcpy(out + qlen - blen, b, blen);
    else
        memcpy(out, b, qlen);
}

int cl_key_sign_deterministic(const cl_key *k, const uint8_t *digest, size_t dlen, uint8_t *sig,
                              size_t *siglen)
{
    CL_ENSURE(k != NULL && k->has_private && digest != NULL && sig != NULL && siglen != NULL,
              CL_EINVAL);
    CL_ENSURE(dlen == CL_SHA256_LEN, CL_EINVAL); /* the nonce's HMAC is SHA-256 (see above) */
    int nid = k->curve == CL_CURVE_P256 ? NID_X9_62_prime256v1 : NID_secp384r1;
    int rc = CL_ECRYPTO;
    BN_CTX *ctx = BN_CTX_secure_new();
    EC_GROUP *group = EC_GROUP_new_by_curve_name(nid);
    EC_POINT *R = NULL;
    EC_KEY *eck = NULL;
    ECDSA_SIG *es = NULL;
    BIGNUM *x = NULL, *kk = NULL, *kinv = NULL, *r = NULL, *qm2 = NULL, *rx = NULL, *z = NULL;
    uint8_t xo[QMAX], h1o[QMAX], t[QMAX], K[32], V[32], T[64];
    const uint8_t zero = 0x00, one = 0x01;
    const BIGNUM *q = NULL;
    int qbits = 0, started = 0;
    size_t qlen = 0;
    memset(xo, 0, sizeof xo);
    if (ctx == NULL || group == NULL)
        goto out;
    q = EC_GROUP_get0_order(group);
    qbits = BN_num_bits(q);
    qlen = (size_t)qbits / 8;
    if (qbits % 8 != 0 || qlen > QMAX)
        goto out;
    BN_CTX_start(ctx);
    started = 1;
    kk = BN_CTX_get(ctx);
    kinv = BN_CTX_get(ctx);
    r = BN_CTX_get(ctx);
    qm2 = BN_CTX_get(ctx);
    rx = BN_CTX_get(ctx);
    z = BN_CTX_get(ctx);
    if (z == NULL || (R = EC_POINT_new(group)) == NULL)
        goto out;
    BN_set_flags(kk, BN_FLG_CONSTTIME);
    if (EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_PRIV_KEY, &x) != 1 ||
        BN_bn2binpad(x, xo, (int)qlen) != (int)qlen)
        goto out;
    /* bits2octets(h1): bits2int, then reduced mod q once (the value is below 2q) */
    bits2int(digest, dlen, t, qlen);
    if (BN_bin2bn(t, (int)qlen, z) == NULL)
        goto out;
    if (BN_cmp(z, q) >= 0 && BN_sub(z, z, q) != 1)
        goto out;
    if (BN_bn2binpad(z, h1o, (int)qlen) != (int)qlen)
        goto out;
    /* §3.2 b-g */
    memset(V, 0x01, sizeof V);
    memset(K, 0x00, sizeof K);
    if (hmac4(K, V, 32, &zero, 1, xo, qlen, h1o, qlen, K) < 0 ||
        hmac4(K, V, 32, 0, 0, 0, 0, 0, 0, V) < 0 ||
        hmac4(K, V, 32, &one, 1, xo, qlen, h1o, qlen, K) < 0 ||
        hmac4(K, V, 32, 0, 0, 0, 0, 0, 0, V) < 0)
        goto out;
    if (BN_copy(qm2, q) == NULL || BN_sub_word(qm2, 2) != 1)
        goto out;
    if ((eck = EVP_PKEY_get1_EC_KEY(k->pkey)) == NULL)
        goto out;
    for (int attempt = 0; attempt < 64; attempt++) {
        /* §3.2 h: T from V until it has qlen bytes, k = bits2int(T) */
        size_t tl = 0;
        while (tl < qlen) {
            if (hmac4(K, V, 32, 0, 0, 0, 0, 0, 0, V) < 0)
                goto out;
            memcpy(T + tl, V, 32);
            tl += 32;
        }
        bits2int(T, tl, t, qlen);
        if (BN_bin2bn(t, (int)qlen, kk) == NULL)
            goto out;
        int usable = !BN_is_zero(kk) && BN_cmp(kk, q) < 0;
        if (usable) {
            /* r = x(k·G) mod q; 1/k = k^(q-2) mod q */
            if (EC_POINT_mul(group, R, kk, NULL, NULL, ctx) != 1 ||
                EC_POINT_get_affine_coordinates(group, R, rx, NULL, ctx) != 1 ||
                BN_nnmod(r, rx, q, ctx) != 1 ||
                BN_mod_exp_mont_consttime(kinv, kk, qm2, q, ctx, NULL) != 1)
                goto out;
            usable = !BN_is_zero(r);
        }
        if (usable) {
            ERR_set_mark();
            es = ECDSA_do_sign_ex(digest, (int)dlen, kinv, r, eck);
            ERR_pop_to_mark(); /* s == 0 fails with "need new setup values": the next k */
            if (es != NULL)
                break;
        }
        /* §3.2 h.3: K = HMAC_K(V || 0x00), V = HMAC_K(V) */
        if (hmac4(K, V, 32, &zero, 1, 0, 0, 0, 0, K) < 0 ||
            hmac4(K, V, 32, 0, 0, 0, 0, 0, 0, V) < 0)
            goto out;
    }
    if (es == NULL)
        goto out;
    int n = i2d_ECDSA_SIG(es, NULL);
    if (n <= 0 || n > CL_ECDSA_MAX_DER)
        goto out;
    uint8_t *p = sig;
    if (i2d_ECDSA_SIG(es, &p) != n)
        goto out;
    *siglen = (size_t)n;
    rc = cl_key_verify_prehashed(k, digest, dlen, sig, *siglen) == CL_OK ? CL_OK : CL_ECRYPTO;
out:
    if (rc < 0 && rc != CL_EINVAL)
        ERR_clear_error();
    cl_wipe(xo, sizeof xo);
    cl_wipe(t, sizeof t);
    cl_wipe(K, sizeof K);
    cl_wipe(V, sizeof V);
    cl_wipe(T, sizeof T);
    cl_wipe(h1o, sizeof h1o);
    BN_clear_free(x);
    ECDSA_SIG_free(es);
    EC_KEY_free(eck);
    EC_POINT_free(R);
    if (started)
        BN_CTX_end(ctx); /* BN_CTX_secure_new: its numbers are cleared when freed */
    BN_CTX_free(ctx);
    EC_GROUP_free(group);
    return rc;
}
