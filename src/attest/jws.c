/*
 * jws.c — JOSE for cledger-attestd: incoming policy / certificate JWS, outgoing tokens, signing key
 * material, administrators' bearer JWTs (spec/attestation-api.md §1.5, §5, §6, §7.2, §8).
 *
 * Invariants:
 *  - a signature is always checked over the signing input bytes exactly as received (the copy kept
 *    by cl_jws_parse), never over a re-encoding;
 *  - a signer key / certificate is exposed only after cl_jws_verify succeeded with it;
 *  - bearer tokens (cl_jwt_validate) take their key only from the configured JWKS, never from the
 *    token, and never accept `none` or HMAC.
 * All cryptography is OpenSSL 3 EVP (EVP_DigestVerify / EVP_DigestSign, EVP_PKEY_fromdata);
 * ECDSA_SIG is used only to convert between JOSE raw r||s and DER.
 */
#include "attest/jws.h"

#include <limits.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/codec.h"
#include "base/cursor.h"
#include "base/json.h"
#include "crypto/hash.h"

#define MIN_RSA_BITS 2048
/* Bounds the cost an attacker-chosen key can impose (public-key checks, verification). */
#define MAX_RSA_BITS 8192
#define MAX_RSA_E_BYTES 8

/* ---- helpers ----------------------------------------------------------------------------------
 */

__attribute__((format(printf, 4, 5))) static int failf(char *err, size_t errlen, int rc,
                                                       const char *fmt, ...)
{
    ERR_clear_error();
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static int ossl_fail(int rc)
{
    ERR_clear_error();
    return rc;
}

/* ---- base64 -----------------------------------------------------------------------------------
 */

char *cl_b64url_encode_alloc(const uint8_t *in, size_t n)
{
    return cl_b64_encode_alloc(in, n, CL_B64_URL);
}

/* ---- algorithms -------------------------------------------------------------------------------
 */

typedef enum { KIND_RSA, KIND_PSS, KIND_EC } alg_kind;

typedef struct {
    const char *name;
    alg_kind kind;
    const EVP_MD *(*md)(void);
    int curve_bits; /* for ES*: the curve the standard pairs with the alg (strict mode) */
    int bearer_ok;  /* accepted for administrators' bearer tokens */
} alg_def;

static const alg_def ALGS[] = {
    {"RS256", KIND_RSA, EVP_sha256, 0, 1},  {"RSA256", KIND_RSA, EVP_sha256, 0, 0},
    {"RS384", KIND_RSA, EVP_sha384, 0, 1},  {"RS512", KIND_RSA, EVP_sha512, 0, 1},
    {"PS256", KIND_PSS, EVP_sha256, 0, 1},  {"ES256", KIND_EC, EVP_sha256, 256, 1},
    {"ES384", KIND_EC, EVP_sha384, 384, 1}, {"ES512", KIND_EC, EVP_sha512, 521, 0},
};

static const alg_def *find_alg(const char *name)
{
    for (size_t i = 0; i < sizeof ALGS / sizeof ALGS[0]; i++)
        if (strcmp(ALGS[i].name, name) == 0)
            return &ALGS[i];
    return NULL;
}

/* "P-256" etc. for a supported EC key, NULL otherwise. */
static const char *ec_jose_curve(EVP_PKEY *k)
{
    char group[64];
    size_t glen = 0;
    if (!EVP_PKEY_is_a(k, "EC") ||
        EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &glen) !=
            1) {
        ERR_clear_error();
        return NULL;
    }
    if (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0)
        return "P-256";
    if (strcmp(group, "secp384r1") == 0 || strcmp(group, "P-384") == 0)
        return "P-384";
    if (strcmp(group, "secp521r1") == 0 || strcmp(group, "P-521") == 0)
        return "P-521";
    return NULL;
}

/* Can `k` sign/verify under `a`? strict: ES* only on their own curve (RFC 7518 §3.4). */
static int key_fits(const alg_def *a, EVP_PKEY *k, int strict, char *err, size_t errlen)
{
    if (a->kind == KIND_EC) {
        const char *crv = ec_jose_curve(k);
        if (crv == NULL)
            return failf(err, errlen, CL_EUNSUPPORTED,
                         "alg %s needs an EC key on P-256, P-384 or P-521", a->name);
        if (strict && EVP_PKEY_get_bits(k) != a->curve_bits)
            return failf(err, errlen, CL_EUNSUPPORTED, "alg %s does not match the key's curve %s",
                         a->name, crv);
        return CL_OK;
    }
    int rsa = EVP_PKEY_is_a(k, "RSA") || (a->kind == KIND_PSS && EVP_PKEY_is_a(k, "RSA-PSS"));
    if (!rsa)
        return failf(err, errlen, CL_EUNSUPPORTED, "alg %s needs an RSA key", a->name);
    if (EVP_PKEY_get_bits(k) < MIN_RSA_BITS)
        return failf(err, errlen, CL_EUNSUPPORTED, "RSA key of %d bits is too small (minimum %d)",
                     EVP_PKEY_get_bits(k), MIN_RSA_BITS);
    if (EVP_PKEY_get_bits(k) > MAX_RSA_BITS)
        return failf(err, errlen, CL_EUNSUPPORTED, "RSA key of %d bits is too large (maximum %d)",
                     EVP_PKEY_get_bits(k), MAX_RSA_BITS);
    return CL_OK;
}

static int ec_order_bytes(EVP_PKEY *k) { return (EVP_PKEY_get_bits(k) + 7) / 8; }

/* One EVP_DigestVerify with the alg's hash and padding. 1 valid, 0 not. */
static int evp_verify(const alg_def *a, EVP_PKEY *k, const char *in, size_t inlen,
                      const uint8_t *sig, size_t siglen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    int ok = 0;
    if (ctx == NULL)
        goto out;
    if (EVP_DigestVerifyInit(ctx, &pctx, a->md(), NULL, k) != 1)
        goto out;
    if (a->kind == KIND_PSS &&
        (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1 ||
         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, a->md()) != 1))
        goto out;
    ok = EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)in, inlen) == 1;
out:
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

/* JOSE raw r||s (two halves of `half` bytes) to a DER ECDSA-Sig-Value. */
static int ec_raw_to_der(const uint8_t *raw, size_t half, uint8_t **der, size_t *derlen)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, (int)half, NULL), *s = BN_bin2bn(raw + half, (int)half, NULL);
    int rc = CL_ENOMEM;
    if (es == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        goto out;
    }
    unsigned char *p = NULL;
    int n = i2d_ECDSA_SIG(es, &p);
    if (n <= 0)
        goto out;
    *der = cl_malloc((size_t)n);
    if (*der != NULL) {
        memcpy(*der, p, (size_t)n);
        *derlen = (size_t)n;
        rc = CL_OK;
    }
    OPENSSL_free(p);
out:
    ECDSA_SIG_free(es);
    if (rc < 0)
        ERR_clear_error();
    return rc;
}

/* 1 when sig is a strict DER ECDSA-Sig-Value occupying all its bytes. */
static int ec_is_der(const uint8_t *sig, size_t siglen)
{
    const unsigned char *p = sig;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)siglen);
    int ok = 0;
    if (es != NULL && (size_t)(p - sig) == siglen) {
        unsigned char *re = NULL;
        int n = i2d_ECDSA_SIG(es, &re);
        ok = n > 0 && (size_t)n == siglen &&
             memcmp(re, sig, siglen) == 0; /* public bytes, lint:public */
        OPENSSL_free(re);
    }
    ECDSA_SIG_free(es);
    ERR_clear_error();
    return ok;
}

/* CL_OK when `sig` is a valid signature of `in` under alg `a` with key `k`; CL_ESIG otherwise.
 * ECDSA: JOSE raw r||s; with allow_der also a strict DER signature. */
static int verify_sig(const alg_def *a, EVP_PKEY *k, const char *in, size_t inlen,
                      const uint8_t *sig, size_t siglen, int allow_der)
{
    if (a->kind != KIND_EC)
        return evp_verify(a, k, in, inlen, sig, siglen) ? CL_OK : CL_ESIG;
    size_t half = (size_t)ec_order_bytes(k);
    if (siglen == 2 * half) {
        uint8_t *der = NULL;
        size_t derlen = 0;
        CL_TRY(ec_raw_to_der(sig, half, &der, &derlen));
        int ok = evp_verify(a, k, in, inlen, der, derlen);
        cl_free(der);
        if (ok)
            return CL_OK;
    }
    /* A 64-byte P-256 DER signature is also a plausible raw one: try DER after raw fails. */
    if (allow_der && ec_is_der(sig, siglen) && evp_verify(a, k, in, inlen, sig, siglen))
        return CL_OK;
    return CL_ESIG;
}

/* ---- keys from JSON ---------------------------------------------------------------------------
 */

/* Decodes x5c (a non-empty array of base64 DER certificates); returns x5c[0] in *leaf (caller
 * frees). Every entry must be a certificate. */
static int x5c_load(const json_t *x5c, const char *where, X509 **leaf, char *err, size_t errlen)
{
    if (!json_is_array(x5c) || json_array_size(x5c) == 0)
        return failf(err, errlen, CL_EFORMAT, "%s is not a non-empty array", where);
    X509 *first = NULL;
    size_t i;
    json_t *v;
    json_array_foreach(x5c, i, v)
    {
        if (!json_is_string(v)) {
            X509_free(first);
            return failf(err, errlen, CL_EFORMAT, "%s[%zu] is not a string", where, i);
        }
        uint8_t *der = NULL;
        size_t derlen = 0;
        int rc =
            cl_b64_decode_lenient_alloc(json_string_value(v), json_string_length(v), &der, &derlen);
        if (rc < 0) {
            X509_free(first);
            if (rc == CL_ENOMEM)
                return failf(err, errlen, rc, "out of memory");
            return failf(err, errlen, CL_EFORMAT, "%s[%zu] is not valid base64", where, i);
        }
        const unsigned char *p = der;
        X509 *x = derlen <= LONG_MAX ? d2i_X509(NULL, &p, (long)derlen) : NULL;
        int whole = x != NULL && (size_t)(p - der) == derlen;
        cl_free(der);
        if (!whole) {
            X509_free(x);
            X509_free(first);
            return failf(err, errlen, CL_EPEM, "%s[%zu] is not a DER X.509 certificate", where, i);
        }
        if (i == 0)
            first = x;
        else
            X509_free(x);
    }
    *leaf = first;
    return CL_OK;
}

/* A base64url member decoded to a BIGNUM-ready buffer. */
static int jwk_bytes(const json_t *jwk, const char *name, const char *where, uint8_t **out,
                     size_t *len, char *err, size_t errlen)
{
    json_t *v = json_object_get(jwk, name);
    if (!json_is_string(v))
        return failf(err, errlen, CL_EFORMAT, "%s has no \"%s\" string", where, name);
    int rc = cl_b64_decode_lenient_alloc(json_string_value(v), json_string_length(v), out, len);
    if (rc == CL_ENOMEM)
        return failf(err, errlen, rc, "out of memory");
    if (rc < 0 || *len == 0) {
        if (rc == CL_OK) { /* empty: the caller's cleanup must not see the buffer again */
            cl_free(*out);
            *out = NULL;
        }
        return failf(err, errlen, CL_EFORMAT, "%s \"%s\" is not non-empty base64url", where, name);
    }
    return CL_OK;
}

static int pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld, EVP_PKEY **out)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *k = NULL;
    int rc = CL_EFORMAT;
    if (params != NULL && ctx != NULL && EVP_PKEY_fromdata_init(ctx) == 1 &&
        EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_PUBLIC_KEY, params) == 1) {
        /* fromdata does not check everything (e.g. an even RSA modulus): ask for the public-key
         * checks explicitly (EC: on the curve, not infinity, right order). */
        EVP_PKEY_CTX *chk = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
        if (chk != NULL && EVP_PKEY_public_check(chk) == 1) {
            *out = k;
            k = NULL;
            rc = CL_OK;
        }
        EVP_PKEY_CTX_free(chk);
    }
    EVP_PKEY_free(k);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    ERR_clear_error();
    return rc;
}

/* RSA (n, e) or EC (crv, x, y) public key from a JWK object (RFC 7518 §6). */
static int jwk_to_pkey(const json_t *jwk, const char *where, EVP_PKEY **out, char *err,
                       size_t errlen)
{
    json_t *kty = json_object_get(jwk, "kty");
    if (!json_is_string(kty))
        return failf(err, errlen, CL_EFORMAT, "%s has no \"kty\" string", where);
    const char *t = json_string_value(kty);
    uint8_t *a = NULL, *b = NULL, *point = NULL;
    size_t alen = 0, blen = 0;
    BIGNUM *bn_a = NULL, *bn_b = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    int rc;
    if (strcmp(t, "RSA") == 0) {
        CL_GUARD(jwk_bytes(jwk, "n", where, &a, &alen, err, errlen));
        CL_GUARD(jwk_bytes(jwk, "e", where, &b, &blen, err, errlen));
        CL_GUARD_IF(alen > MAX_RSA_BITS / 8 + 1 || blen > MAX_RSA_E_BYTES,
                    failf(err, errlen, CL_EUNSUPPORTED,
                          "%s RSA key is too large (n of %zu bytes, e of %zu bytes)", where, alen,
                          blen));
        bn_a = BN_bin2bn(a, (int)alen, NULL);
        bn_b = BN_bin2bn(b, (int)blen, NULL);
        bld = OSSL_PARAM_BLD_new();
        CL_GUARD_IF(bn_a == NULL || bn_b == NULL || bld == NULL ||
                        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_a) != 1 ||
                        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_b) != 1,
                    failf(err, errlen, CL_ENOMEM, "out of memory"));
        rc = pkey_fromdata("RSA", bld, out);
        if (rc < 0)
            rc = failf(err, errlen, rc, "%s is not a valid RSA public key", where);
    } else if (strcmp(t, "EC") == 0) {
        json_t *crv = json_object_get(jwk, "crv");
        const char *c = json_is_string(crv) ? json_string_value(crv) : "";
        const char *group = NULL;
        size_t flen = 0;
        if (strcmp(c, "P-256") == 0) {
            group = "prime256v1";
            flen = 32;
        } else if (strcmp(c, "P-384") == 0) {
            group = "secp384r1";
            flen = 48;
        } else if (strcmp(c, "P-521") == 0) {
            group = "secp521r1";
            flen = 66;
        }
        CL_GUARD_IF(group == NULL, failf(err, errlen, CL_EUNSUPPORTED,
                                         "%s \"crv\" must be P-256, P-384 or P-521", where));
        CL_GUARD(jwk_bytes(jwk, "x", where, &a, &alen, err, errlen));
        CL_GUARD(jwk_bytes(jwk, "y", where, &b, &blen, err, errlen));
        CL_GUARD_IF(alen != flen || blen != flen,
                    failf(err, errlen, CL_EFORMAT, "%s x and y must be %zu bytes each for %s",
                          where, flen, c));
        point = cl_malloc(1 + 2 * flen);
        CL_GUARD_IF(point == NULL, failf(err, errlen, CL_ENOMEM, "out of memory"));
        point[0] = 0x04; /* uncompressed (SEC 1 §2.3.3) */
        memcpy(point + 1, a, flen);
        memcpy(point + 1 + flen, b, flen);
        bld = OSSL_PARAM_BLD_new();
        CL_GUARD_IF(
            bld == NULL ||
                OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) != 1 ||
                OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point,
                                                 1 + 2 * flen) != 1,
            failf(err, errlen, CL_ENOMEM, "out of memory"));
        rc = pkey_fromdata("EC", bld, out);
        if (rc < 0)
            rc = failf(err, errlen, rc, "%s is not a valid %s public key (point not on the curve?)",
                       where, c);
    } else {
        rc = failf(err, errlen, CL_EUNSUPPORTED, "%s \"kty\" \"%.20s\" is not supported", where, t);
    }
out:
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_a);
    BN_free(bn_b);
    cl_free(a);
    cl_free(b);
    cl_free(point);
    return rc;
}

/* Key of a JWK that may carry x5c and/or inline key material; both must agree when present. */
static int jwk_key_and_cert(const json_t *jwk, const char *where, EVP_PKEY **key, X509 **cert,
                            char *err, size_t errlen)
{
    char w[96];
    json_t *x5c = json_object_get(jwk, "x5c");
    int inline_key = json_object_get(jwk, "n") != NULL || json_object_get(jwk, "x") != NULL;
    X509 *c = NULL;
    EVP_PKEY *k = NULL;
    int rc = CL_OK;
    if (x5c != NULL) {
        snprintf(w, sizeof w, "%s.x5c", where);
        CL_GUARD(x5c_load(x5c, w, &c, err, errlen));
        k = X509_get_pubkey(c);
        CL_GUARD_IF(k == NULL,
                    failf(err, errlen, CL_EPEM, "%s[0] has a public key OpenSSL cannot decode", w));
    }
    if (inline_key || x5c == NULL) {
        EVP_PKEY *ik = NULL;
        CL_GUARD(jwk_to_pkey(jwk, where, &ik, err, errlen));
        if (k != NULL) {
            int same = EVP_PKEY_eq(k, ik) == 1;
            EVP_PKEY_free(ik);
            CL_GUARD_IF(!same,
                        failf(err, errlen, CL_EFORMAT,
                              "%s key material does not match its x5c[0] certificate", where));
        } else {
            k = ik;
        }
    }
    *key = k;
    *cert = c;
    return CL_OK;
out:
    EVP_PKEY_free(k);
    X509_free(c);
    ERR_clear_error();
    return rc;
}

/* ---- incoming JWS -----------------------------------------------------------------------------
 */

struct cl_jws {
    char *text;         /* copy of the received text (NUL-terminated) */
    size_t signing_len; /* length of `seg1.seg2` at the start of text */
    json_t *header;
    const char *alg; /* borrowed from header */
    uint8_t *payload;
    size_t payload_len;
    json_t *payload_json; /* NULL when empty or not JSON */
    uint8_t *sig;
    size_t sig_len;
    int verified;
    int is_signed;
    EVP_PKEY *signer_key;
    X509 *signer_cert;
};

void cl_jws_free(cl_jws *j)
{
    if (j == NULL)
        return;
    cl_free(j->text);
    json_decref(j->header);
    cl_free(j->payload);
    json_decref(j->payload_json);
    cl_free(j->sig);
    EVP_PKEY_free(j->signer_key);
    X509_free(j->signer_cert);
    cl_free(j);
}

static int decode_segment(const char *s, size_t n, const char *what, uint8_t **out, size_t *len,
                          char *err, size_t errlen)
{
    int rc = cl_b64_decode_lenient_alloc(s, n, out, len);
    if (rc == CL_ENOMEM)
        return failf(err, errlen, rc, "out of memory");
    if (rc < 0)
        return failf(err, errlen, CL_EFORMAT,
                     "JWS %s segment (%zu characters) is not valid base64url", what, n);
    return CL_OK;
}

int cl_jws_parse(const char *text, size_t len, cl_jws **out, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if ((text == NULL && len > 0) || out == NULL)
        return failf(err, errlen, CL_EINVAL, "no JWS given");
    if (len > CL_JWS_MAX_LEN)
        return failf(err, errlen, CL_EOVERFLOW, "JWS of %zu bytes exceeds the limit of %zu", len,
                     CL_JWS_MAX_LEN);
    size_t dots[2] = {0, 0}, ndots = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '.') {
            if (ndots < 2)
                dots[ndots] = i;
            ndots++;
        }
    }
    if (ndots != 2)
        return failf(err, errlen, CL_EFORMAT,
                     "JWS compact serialisation needs exactly 3 '.'-separated segments, found %zu",
                     ndots + 1);
    if (dots[0] == 0)
        return failf(err, errlen, CL_EFORMAT, "JWS header segment is empty");

    cl_json_init();
    int rc;
    uint8_t *hdr = NULL;
    size_t hdr_len = 0;
    cl_jws *j = cl_calloc(1, sizeof *j);
    CL_GUARD_IF(j == NULL, failf(err, errlen, CL_ENOMEM, "out of memory"));
    j->text = cl_strndup(text, len);
    CL_GUARD_IF(j->text == NULL, failf(err, errlen, CL_ENOMEM, "out of memory"));
    j->signing_len = dots[1];

    CL_GUARD(decode_segment(text, dots[0], "header", &hdr, &hdr_len, err, errlen));
    char jerr[160];
    rc = cl_json_parse((const char *)hdr, hdr_len, CL_JWS_MAX_LEN, &j->header, jerr, sizeof jerr);
    if (rc == CL_ENOMEM)
        CL_GUARD(failf(err, errlen, rc, "out of memory"));
    CL_GUARD_IF(rc < 0, failf(err, errlen, CL_EJSON, "JWS header is not valid JSON: %s", jerr));
    CL_GUARD_IF(!json_is_object(j->header),
                failf(err, errlen, CL_EJSON, "JWS header is not a JSON object"));
    json_t *alg = json_object_get(j->header, "alg");
    CL_GUARD_IF(alg == NULL, failf(err, errlen, CL_EJSON, "JWS header has no \"alg\" member"));
    CL_GUARD_IF(!json_is_string(alg),
                failf(err, errlen, CL_EJSON, "JWS header \"alg\" is not a string"));
    j->alg = json_string_value(alg);

    CL_GUARD(decode_segment(text + dots[0] + 1, dots[1] - dots[0] - 1, "payload", &j->payload,
                            &j->payload_len, err, errlen));
    if (j->payload_len > 0) {
        rc = cl_json_parse((const char *)j->payload, j->payload_len, CL_JWS_MAX_LEN,
                           &j->payload_json, NULL, 0);
        if (rc == CL_ENOMEM)
            CL_GUARD(failf(err, errlen, rc, "out of memory"));
        if (rc < 0)
            j->payload_json = NULL; /* not JSON: the caller decides whether that matters */
    }
    CL_GUARD(decode_segment(text + dots[1] + 1, len - dots[1] - 1, "signature", &j->sig,
                            &j->sig_len, err, errlen));
    rc = CL_OK;
out:
    cl_free(hdr);
    if (rc < 0)
        cl_jws_free(j);
    else
        *out = j;
    return rc;
}

const char *cl_jws_alg(const cl_jws *j) { return j->alg; }
const json_t *cl_jws_header(const cl_jws *j) { return j->header; }
const uint8_t *cl_jws_payload(const cl_jws *j, size_t *len)
{
    if (len != NULL)
        *len = j->payload_len;
    return j->payload;
}
json_t *cl_jws_payload_json(const cl_jws *j) { return j->payload_json; }
const char *cl_jws_signing_input(const cl_jws *j, size_t *len)
{
    if (len != NULL)
        *len = j->signing_len;
    return j->text;
}
int cl_jws_is_signed(const cl_jws *j) { return j->verified && j->is_signed; }
X509 *cl_jws_signer_cert(const cl_jws *j) { return j->verified ? j->signer_cert : NULL; }
EVP_PKEY *cl_jws_signer_key(const cl_jws *j) { return j->verified ? j->signer_key : NULL; }

/* §6.2 step 4: header x5c[0], else jwk.x5c[0], else the bare jwk. */
static int find_signer(const cl_jws *j, EVP_PKEY **key, X509 **cert, char *err, size_t errlen)
{
    json_t *x5c = json_object_get(j->header, "x5c");
    json_t *jwk = json_object_get(j->header, "jwk");
    *cert = NULL;
    if (x5c != NULL) {
        CL_TRY(x5c_load(x5c, "JWS header x5c", cert, err, errlen));
        *key = X509_get_pubkey(*cert);
        if (*key == NULL) {
            X509_free(*cert);
            *cert = NULL;
            return failf(err, errlen, CL_EPEM,
                         "JWS header x5c[0] has a public key OpenSSL cannot decode");
        }
        return CL_OK;
    }
    if (jwk != NULL) {
        if (!json_is_object(jwk))
            return failf(err, errlen, CL_EFORMAT, "JWS header jwk is not an object");
        return jwk_key_and_cert(jwk, "JWS header jwk", key, cert, err, errlen);
    }
    return failf(err, errlen, CL_EFORMAT,
                 "JWS alg %.40s needs a signer, but the header has neither x5c nor jwk", j->alg);
}

int cl_jws_verify(cl_jws *j, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    CL_ENSURE(j != NULL, CL_EINVAL);
    EVP_PKEY_free(j->signer_key);
    X509_free(j->signer_cert);
    j->signer_key = NULL;
    j->signer_cert = NULL;
    j->verified = j->is_signed = 0;

    if (json_object_get(j->header, "crit") != NULL)
        return failf(err, errlen, CL_EUNSUPPORTED,
                     "JWS header carries \"crit\"; no header extensions are supported");
    if (strcmp(j->alg, "none") == 0) {
        if (j->sig_len != 0)
            return failf(err, errlen, CL_ESIG,
                         "JWS alg none requires an empty signature segment, found %zu bytes",
                         j->sig_len);
        j->verified = 1;
        return CL_OK;
    }
    const alg_def *a = find_alg(j->alg);
    if (a == NULL)
        return failf(err, errlen, CL_EUNSUPPORTED,
                     "JWS alg \"%.40s\" is not supported (accepted: none, RS256, RSA256, RS384, "
                     "RS512, PS256, ES256, ES384, ES512)",
                     j->alg);
    if (j->sig_len == 0)
        return failf(err, errlen, CL_ESIG, "JWS alg %s has an empty signature segment", a->name);

    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    CL_TRY(find_signer(j, &key, &cert, err, errlen));
    int rc = key_fits(a, key, 0, err, errlen);
    if (rc == CL_OK)
        rc = verify_sig(a, key, j->text, j->signing_len, j->sig, j->sig_len, 1);
    if (rc == CL_ENOMEM)
        rc = failf(err, errlen, rc, "out of memory");
    else if (rc == CL_ESIG)
        rc = failf(err, errlen, CL_ESIG, "JWS signature (%s) does not verify with the %s key",
                   a->name, cert != NULL ? "signer certificate's" : "header jwk");
    if (rc < 0) {
        EVP_PKEY_free(key);
        X509_free(cert);
        return rc;
    }
    j->signer_key = key;
    j->signer_cert = cert;
    j->verified = j->is_signed = 1;
    return CL_OK;
}

static const char *kty_of(EVP_PKEY *k)
{
    if (EVP_PKEY_is_a(k, "RSA") || EVP_PKEY_is_a(k, "RSA-PSS"))
        return "RSA";
    if (EVP_PKEY_is_a(k, "EC"))
        return "EC";
    return NULL;
}

/* Standard base64 (with padding) of the DER certificate, cl_malloc'd. */
static int cert_b64(X509 *cert, char **out)
{
    unsigned char *der = NULL;
    int n = i2d_X509(cert, &der);
    CL_ENSURE(n > 0, ossl_fail(CL_EPEM));
    *out = cl_b64_encode_alloc(der, (size_t)n, CL_B64_STD);
    OPENSSL_free(der);
    return *out != NULL ? CL_OK : CL_ENOMEM;
}

int cl_jws_signer_jwk(const cl_jws *j, json_t **out)
{
    CL_ENSURE(j != NULL && out != NULL, CL_EINVAL);
    CL_ENSURE(j->verified && j->is_signed, CL_ESTATE);
    CL_ENSURE(j->signer_cert != NULL, CL_ENOENT);
    const char *kty = kty_of(j->signer_key);
    CL_ENSURE(kty != NULL, CL_EKEYTYPE);
    char *b64 = NULL;
    CL_TRY(cert_b64(j->signer_cert, &b64));
    cl_json_init();
    json_t *o = json_pack("{s:s,s:[s]}", "kty", kty, "x5c", b64);
    cl_free(b64);
    CL_ENSURE(o != NULL, CL_ENOMEM);
    *out = o;
    return CL_OK;
}

/* ---- signing ----------------------------------------------------------------------------------
 */

int cl_jws_sign_input(EVP_PKEY *key, const char *alg, const char *input, size_t len, uint8_t **sig,
                      size_t *siglen)
{
    CL_ENSURE(key != NULL && alg != NULL && (input != NULL || len == 0) && sig != NULL &&
                  siglen != NULL,
              CL_EINVAL);
    const alg_def *a = find_alg(alg);
    CL_ENSURE(a != NULL, CL_EUNSUPPORTED);
    CL_TRY(key_fits(a, key, 0, NULL, 0));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    uint8_t *buf = NULL, *raw = NULL;
    ECDSA_SIG *es = NULL;
    size_t n = 0;
    int rc;
    CL_GUARD_IF(ctx == NULL, CL_ENOMEM);
    CL_GUARD_IF(EVP_DigestSignInit(ctx, &pctx, a->md(), NULL, key) != 1, CL_ECRYPTO);
    if (a->kind == KIND_PSS)
        CL_GUARD_IF(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
                        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1 ||
                        EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, a->md()) != 1,
                    CL_ECRYPTO);
    CL_GUARD_IF(EVP_DigestSign(ctx, NULL, &n, (const unsigned char *)input, len) != 1, CL_ECRYPTO);
    buf = cl_malloc(n);
    CL_GUARD_IF(buf == NULL, CL_ENOMEM);
    CL_GUARD_IF(EVP_DigestSign(ctx, buf, &n, (const unsigned char *)input, len) != 1, CL_ECRYPTO);
    if (a->kind == KIND_EC) {
        /* DER -> JOSE raw r||s, each half the byte length of the curve order (RFC 7518 §3.4) */
        size_t half = (size_t)ec_order_bytes(key);
        const unsigned char *p = buf;
        es = d2i_ECDSA_SIG(NULL, &p, (long)n);
        CL_GUARD_IF(es == NULL, CL_ECRYPTO);
        raw = cl_malloc(2 * half);
        CL_GUARD_IF(raw == NULL, CL_ENOMEM);
        const BIGNUM *r = NULL, *s = NULL;
        ECDSA_SIG_get0(es, &r, &s);
        CL_GUARD_IF(BN_bn2binpad(r, raw, (int)half) < 0 ||
                        BN_bn2binpad(s, raw + half, (int)half) < 0,
                    CL_ECRYPTO);
        cl_free(buf);
        buf = raw;
        raw = NULL;
        n = 2 * half;
    }
    *sig = buf;
    *siglen = n;
    buf = NULL;
    rc = CL_OK;
out:
    ECDSA_SIG_free(es);
    cl_free(raw);
    cl_free(buf);
    EVP_MD_CTX_free(ctx);
    if (rc < 0)
        ERR_clear_error();
    return rc;
}

#define TOKEN_JSON_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII)

/* Appends the unpadded base64url of `text` (NUL-terminated) to buf. */
static int append_b64(cl_buf *b, const char *text)
{
    char *e = cl_b64url_encode_alloc((const uint8_t *)text, strlen(text));
    CL_ENSURE(e != NULL, CL_ENOMEM);
    int rc = cl_buf_append(b, e, strlen(e));
    cl_free(e);
    return rc;
}

static int jwt_build(EVP_PKEY *key, const char *alg, const char *kid, const char *jku,
                     const json_t *payload, char **out)
{
    CL_ENSURE(kid != NULL && jku != NULL && json_is_object(payload) && out != NULL, CL_EINVAL);
    cl_json_init();
    cl_buf b = CL_BUF_INIT;
    char *htext = NULL, *ptext = NULL, *s64 = NULL;
    uint8_t *sig = NULL;
    size_t siglen = 0;
    int rc;
    json_t *h = json_pack("{s:s,s:s,s:s,s:s}", "alg", alg, "jku", jku, "kid", kid, "typ", "JWT");
    CL_GUARD_IF(h == NULL, CL_ENOMEM);
    htext = json_dumps(h, TOKEN_JSON_FLAGS);
    ptext = json_dumps(payload, TOKEN_JSON_FLAGS);
    CL_GUARD_IF(htext == NULL || ptext == NULL, CL_ENOMEM);
    CL_GUARD(append_b64(&b, htext));
    CL_GUARD(cl_buf_u8(&b, '.'));
    CL_GUARD(append_b64(&b, ptext));
    if (key != NULL) {
        CL_GUARD(cl_jws_sign_input(key, alg, (const char *)b.data, b.len, &sig, &siglen));
        s64 = cl_b64url_encode_alloc(sig, siglen);
        CL_GUARD_IF(s64 == NULL, CL_ENOMEM);
    }
    CL_GUARD(cl_buf_u8(&b, '.'));
    if (s64 != NULL)
        CL_GUARD(cl_buf_append(&b, s64, strlen(s64)));
    CL_GUARD(cl_buf_u8(&b, '\0'));
    *out = (char *)b.data;
    b.data = NULL;
    rc = CL_OK;
out:
    json_decref(h);
    cl_free(htext);
    cl_free(ptext);
    cl_free(s64);
    cl_free(sig);
    cl_buf_free(&b);
    return rc;
}

int cl_jwt_sign(EVP_PKEY *rsa_key, const char *kid, const char *jku, const json_t *payload,
                char **out)
{
    CL_ENSURE(rsa_key != NULL, CL_EINVAL);
    CL_ENSURE(EVP_PKEY_is_a(rsa_key, "RSA") && EVP_PKEY_get_bits(rsa_key) >= MIN_RSA_BITS,
              CL_EKEYTYPE);
    return jwt_build(rsa_key, "RS256", kid, jku, payload, out);
}

int cl_jwt_unsigned(const char *kid, const char *jku, const json_t *payload, char **out)
{
    return jwt_build(NULL, "none", kid, jku, payload, out);
}

/* ---- signing key material ---------------------------------------------------------------------
 */

static int add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
    CL_ENSURE(ext != NULL, ossl_fail(CL_ECRYPTO));
    int ok = X509_add_ext(x, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok ? CL_OK : ossl_fail(CL_ECRYPTO);
}

int cl_jws_signing_key_generate(EVP_PKEY **key, X509 **cert, const char *subject_cn,
                                int64_t now_unix)
{
    CL_ENSURE(key != NULL && cert != NULL && subject_cn != NULL && subject_cn[0] != '\0',
              CL_EINVAL);
    /* time_t range and X.509 GeneralizedTime (year <= 9999) */
    CL_ENSURE(now_unix >= 0 &&
                  now_unix <= INT64_C(253402300799) - 86400LL * CL_JWS_SIGNING_CERT_DAYS,
              CL_EINVAL);
    EVP_PKEY *k = NULL;
    X509 *x = NULL;
    X509_NAME *name = NULL;
    BIGNUM *bn = NULL;
    ASN1_INTEGER *serial = NULL;
    uint8_t rnd[16];
    int rc;
    k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    CL_GUARD_IF(k == NULL, CL_ECRYPTO);
    x = X509_new();
    CL_GUARD_IF(x == NULL, CL_ENOMEM);
    CL_GUARD_IF(X509_set_version(x, X509_VERSION_3) != 1, CL_ECRYPTO);
    /* Positive, non-zero, 16 bytes in DER (RFC 5280 §4.1.2.2). */
    CL_GUARD(cl_random(rnd, sizeof rnd));
    rnd[0] = (uint8_t)((rnd[0] & 0x7f) | 0x40);
    bn = BN_bin2bn(rnd, sizeof rnd, NULL);
    CL_GUARD_IF(bn == NULL, CL_ENOMEM);
    serial = BN_to_ASN1_INTEGER(bn, NULL);
    CL_GUARD_IF(serial == NULL || X509_set_serialNumber(x, serial) != 1, CL_ECRYPTO);
    name = X509_NAME_new();
    CL_GUARD_IF(name == NULL, CL_ENOMEM);
    CL_GUARD_IF(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                           (const unsigned char *)subject_cn, -1, -1, 0) != 1,
                CL_EINVAL);
    CL_GUARD_IF(X509_set_subject_name(x, name) != 1 || X509_set_issuer_name(x, name) != 1,
                CL_ECRYPTO);
    CL_GUARD_IF(ASN1_TIME_set(X509_getm_notBefore(x), (time_t)now_unix) == NULL ||
                    ASN1_TIME_adj(X509_getm_notAfter(x), (time_t)now_unix, CL_JWS_SIGNING_CERT_DAYS,
                                  0) == NULL,
                CL_ECRYPTO);
    CL_GUARD_IF(X509_set_pubkey(x, k) != 1, CL_ECRYPTO);
    CL_GUARD(add_ext(x, NID_basic_constraints, "critical,CA:FALSE"));
    CL_GUARD(add_ext(x, NID_key_usage, "critical,digitalSignature"));
    CL_GUARD(add_ext(x, NID_subject_key_identifier, "hash"));
    CL_GUARD_IF(X509_sign(x, k, EVP_sha256()) <= 0, CL_ECRYPTO);
    *key = k;
    *cert = x;
    k = NULL;
    x = NULL;
    rc = CL_OK;
out:
    cl_wipe(rnd, sizeof rnd);
    ASN1_INTEGER_free(serial);
    BN_free(bn);
    X509_NAME_free(name);
    X509_free(x);
    EVP_PKEY_free(k);
    if (rc < 0)
        ERR_clear_error();
    return rc;
}

int cl_jws_kid(X509 *cert, char out[64])
{
    CL_ENSURE(cert != NULL && out != NULL, CL_EINVAL);
    unsigned char *der = NULL;
    int n = i2d_X509(cert, &der);
    CL_ENSURE(n > 0, ossl_fail(CL_EPEM));
    uint8_t d[CL_SHA256_LEN];
    cl_sha256(der, (size_t)n, d);
    OPENSSL_free(der);
    cl_b64_encode(d, sizeof d, out, CL_B64_STD);
    return CL_OK;
}

static int bn_param_b64url(EVP_PKEY *k, const char *param, char **out)
{
    BIGNUM *bn = NULL;
    CL_ENSURE(EVP_PKEY_get_bn_param(k, param, &bn) == 1, ossl_fail(CL_ECRYPTO));
    int n = BN_num_bytes(bn);
    uint8_t *buf = cl_malloc(n > 0 ? (size_t)n : 1);
    if (buf == NULL) {
        BN_free(bn);
        return CL_ENOMEM;
    }
    BN_bn2bin(bn, buf);
    BN_free(bn);
    *out = cl_b64url_encode_alloc(buf, (size_t)n);
    cl_free(buf);
    return *out != NULL ? CL_OK : CL_ENOMEM;
}

int cl_jwks_entry(X509 *cert, EVP_PKEY *key, json_t **out)
{
    CL_ENSURE(cert != NULL && out != NULL, CL_EINVAL);
    EVP_PKEY *pub = X509_get0_pubkey(cert);
    CL_ENSURE(pub != NULL, ossl_fail(CL_EPEM));
    CL_ENSURE(EVP_PKEY_is_a(pub, "RSA"), CL_EKEYTYPE);
    if (key != NULL && EVP_PKEY_eq(key, pub) != 1)
        return ossl_fail(CL_EINVAL);
    cl_json_init();
    char kid[64];
    char *x5c = NULL, *n = NULL, *e = NULL;
    json_t *o = NULL;
    int rc;
    CL_GUARD(cl_jws_kid(cert, kid));
    CL_GUARD(cert_b64(cert, &x5c));
    CL_GUARD(bn_param_b64url(pub, OSSL_PKEY_PARAM_RSA_N, &n));
    CL_GUARD(bn_param_b64url(pub, OSSL_PKEY_PARAM_RSA_E, &e));
    /* json_pack keeps insertion order, which is the order of spec §5.6 */
    o = json_pack("{s:s,s:s,s:[s],s:s,s:s,s:s,s:s}", "kid", kid, "kty", "RSA", "x5c", x5c, "alg",
                  "RS256", "use", "sig", "n", n, "e", e);
    CL_GUARD_IF(o == NULL, CL_ENOMEM);
    *out = o;
    rc = CL_OK;
out:
    cl_free(x5c);
    cl_free(n);
    cl_free(e);
    return rc;
}

/* ---- administrators' bearer JWTs --------------------------------------------------------------
 */

typedef struct {
    char *kid; /* NULL when the JWK has none */
    char *alg; /* NULL when the JWK does not restrict it */
    EVP_PKEY *pkey;
} jwks_key;

struct cl_jwks {
    jwks_key *keys;
    size_t n;
};

void cl_jwks_free(cl_jwks *k)
{
    if (k == NULL)
        return;
    for (size_t i = 0; i < k->n; i++) {
        cl_free(k->keys[i].kid);
        cl_free(k->keys[i].alg);
        EVP_PKEY_free(k->keys[i].pkey);
    }
    cl_free(k->keys);
    cl_free(k);
}

size_t cl_jwks_count(const cl_jwks *k) { return k != NULL ? k->n : 0; }

/* Optional string member: CL_ENOENT absent, CL_EJSON other type. */
static int opt_str(const json_t *o, const char *name, const char **out)
{
    json_t *v = json_object_get(o, name);
    if (v == NULL)
        return CL_ENOENT;
    CL_ENSURE(json_is_string(v), CL_EJSON);
    *out = json_string_value(v);
    return CL_OK;
}

int cl_jwks_parse(const char *json, size_t len, cl_jwks **out, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if ((json == NULL && len > 0) || out == NULL)
        return failf(err, errlen, CL_EINVAL, "no JWKS given");
    json_t *doc = NULL;
    cl_jwks *ks = NULL;
    char jerr[160];
    int rc = cl_json_parse(json, len, CL_JWS_MAX_LEN, &doc, jerr, sizeof jerr);
    if (rc == CL_ENOMEM)
        return failf(err, errlen, rc, "out of memory");
    if (rc < 0)
        return failf(err, errlen, CL_EJSON, "JWKS is not valid JSON: %s", jerr);
    json_t *arr = json_object_get(doc, "keys");
    CL_GUARD_IF(!json_is_array(arr), failf(err, errlen, CL_EJSON, "JWKS has no \"keys\" array"));
    ks = cl_calloc(1, sizeof *ks);
    CL_GUARD_IF(ks == NULL, failf(err, errlen, CL_ENOMEM, "out of memory"));
    ks->keys = cl_calloc(json_array_size(arr) ? json_array_size(arr) : 1, sizeof *ks->keys);
    CL_GUARD_IF(ks->keys == NULL, failf(err, errlen, CL_ENOMEM, "out of memory"));
    size_t i;
    json_t *jwk;
    json_array_foreach(arr, i, jwk)
    {
        char where[48];
        snprintf(where, sizeof where, "JWKS keys[%zu]", i);
        CL_GUARD_IF(!json_is_object(jwk),
                    failf(err, errlen, CL_EJSON, "%s is not an object", where));
        const char *use = NULL, *kty = NULL, *kid = NULL, *alg = NULL;
        int r = opt_str(jwk, "use", &use);
        CL_GUARD_IF(r == CL_EJSON, failf(err, errlen, r, "%s \"use\" is not a string", where));
        if (r == CL_OK && strcmp(use, "sig") != 0)
            continue;
        CL_GUARD_IF(opt_str(jwk, "kty", &kty) != CL_OK,
                    failf(err, errlen, CL_EJSON, "%s has no \"kty\" string", where));
        if (strcmp(kty, "RSA") != 0 && strcmp(kty, "EC") != 0)
            continue; /* oct, OKP, …: not usable for the accepted algs */
        r = opt_str(jwk, "kid", &kid);
        CL_GUARD_IF(r == CL_EJSON, failf(err, errlen, r, "%s \"kid\" is not a string", where));
        r = opt_str(jwk, "alg", &alg);
        CL_GUARD_IF(r == CL_EJSON, failf(err, errlen, r, "%s \"alg\" is not a string", where));
        if (alg != NULL && (find_alg(alg) == NULL || !find_alg(alg)->bearer_ok))
            continue; /* e.g. RSA-OAEP: an encryption key */
        EVP_PKEY *k = NULL;
        X509 *c = NULL;
        CL_GUARD(jwk_key_and_cert(jwk, where, &k, &c, err, errlen));
        X509_free(c);
        const char *actual = kty_of(k);
        if (actual == NULL || strcmp(actual, kty) != 0) {
            EVP_PKEY_free(k);
            CL_GUARD(
                failf(err, errlen, CL_EFORMAT, "%s kty %s does not match its x5c key", where, kty));
        }
        int bits = EVP_PKEY_get_bits(k);
        if (strcmp(kty, "RSA") == 0 && (bits < MIN_RSA_BITS || bits > MAX_RSA_BITS)) {
            EVP_PKEY_free(k);
            CL_GUARD(failf(
                err, errlen, CL_EUNSUPPORTED, "%s RSA key of %d bits is %s (%d to %d bits)", where,
                bits, bits < MIN_RSA_BITS ? "too small" : "too large", MIN_RSA_BITS, MAX_RSA_BITS));
        }
        jwks_key *dst = &ks->keys[ks->n++];
        dst->pkey = k;
        dst->kid = kid != NULL ? cl_strdup(kid) : NULL;
        dst->alg = alg != NULL ? cl_strdup(alg) : NULL;
        CL_GUARD_IF((kid != NULL && dst->kid == NULL) || (alg != NULL && dst->alg == NULL),
                    failf(err, errlen, CL_ENOMEM, "out of memory"));
    }
    CL_GUARD_IF(ks->n == 0,
                failf(err, errlen, CL_ENOENT, "JWKS holds no usable signature key (RSA or EC)"));
    *out = ks;
    ks = NULL;
    rc = CL_OK;
out:
    cl_jwks_free(ks);
    json_decref(doc);
    return rc;
}

/* A NumericDate claim (RFC 7519 §2): CL_ENOENT absent, CL_EINVAL not a number. */
static int numeric_date(const json_t *claims, const char *name, double *out)
{
    json_t *v = json_object_get(claims, name);
    if (v == NULL)
        return CL_ENOENT;
    CL_ENSURE(json_is_number(v), CL_EINVAL);
    *out = json_number_value(v);
    return CL_OK;
}

static int aud_contains(const json_t *aud, const char *audience)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), audience) == 0;
    if (json_is_array(aud)) {
        size_t i;
        json_t *v;
        json_array_foreach(aud, i, v)
        {
            if (json_is_string(v) && strcmp(json_string_value(v), audience) == 0)
                return 1;
        }
    }
    return 0;
}

static int check_claims(const json_t *c, const char *issuer, const char *audience, int64_t now,
                        int64_t leeway, char *err, size_t errlen)
{
    if (!json_is_object(c))
        return failf(err, errlen, CL_EJSON, "bearer token payload is not a JSON object");
    const char *iss = NULL;
    int r = opt_str(c, "iss", &iss);
    if (r == CL_ENOENT)
        return failf(err, errlen, CL_EINVAL, "bearer token has no iss claim");
    if (r < 0)
        return failf(err, errlen, CL_EINVAL, "bearer token iss claim is not a string");
    if (strcmp(iss, issuer) != 0)
        return failf(err, errlen, CL_EINVAL,
                     "bearer token issuer \"%.120s\" is not the configured issuer \"%.120s\"", iss,
                     issuer);
    json_t *aud = json_object_get(c, "aud");
    if (aud == NULL)
        return failf(err, errlen, CL_EINVAL, "bearer token has no aud claim");
    if (!aud_contains(aud, audience))
        return failf(err, errlen, CL_EINVAL, "bearer token audience does not include \"%.120s\"",
                     audience);
    double exp = 0, nbf = 0, iat = 0;
    r = numeric_date(c, "exp", &exp);
    if (r == CL_ENOENT)
        return failf(err, errlen, CL_EINVAL, "bearer token has no exp claim");
    if (r < 0)
        return failf(err, errlen, CL_EINVAL, "bearer token exp claim is not a number");
    if (!((double)now < exp + (double)leeway))
        return failf(err, errlen, CL_EEXPIRED,
                     "bearer token expired at %.0f (now %lld, leeway %lld s)", exp, (long long)now,
                     (long long)leeway);
    r = numeric_date(c, "nbf", &nbf);
    if (r == CL_EINVAL)
        return failf(err, errlen, CL_EINVAL, "bearer token nbf claim is not a number");
    if (r == CL_OK && !(nbf <= (double)now + (double)leeway))
        return failf(err, errlen, CL_EEXPIRED,
                     "bearer token is not valid before %.0f (now %lld, leeway %lld s)", nbf,
                     (long long)now, (long long)leeway);
    r = numeric_date(c, "iat", &iat);
    if (r == CL_EINVAL)
        return failf(err, errlen, CL_EINVAL, "bearer token iat claim is not a number");
    if (r == CL_OK && !(iat <= (double)now + (double)leeway))
        return failf(err, errlen, CL_EINVAL,
                     "bearer token was issued in the future (iat %.0f, now %lld, leeway %lld s)",
                     iat, (long long)now, (long long)leeway);
    return CL_OK;
}

int cl_jwt_validate(const char *token, size_t len, const cl_jwks *keys, const char *issuer,
                    const char *audience, int64_t now_unix, int64_t leeway_s, json_t **claims,
                    char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (keys == NULL || issuer == NULL || audience == NULL || leeway_s < 0 || leeway_s > 86400 ||
        now_unix < 0 || now_unix > INT64_C(253402300799))
        return failf(err, errlen, CL_EINVAL, "bearer token validation is misconfigured");
    cl_jws *j = NULL;
    char perr[200];
    int rc = cl_jws_parse(token, len, &j, perr, sizeof perr);
    if (rc < 0)
        return failf(err, errlen, rc, "bearer token: %s", perr);
    const char *alg = cl_jws_alg(j);
    const alg_def *a = find_alg(alg);
    CL_GUARD_IF(a == NULL || !a->bearer_ok,
                failf(err, errlen, CL_EUNSUPPORTED,
                      "bearer token alg \"%.40s\" is not accepted (RS256, RS384, RS512, PS256, "
                      "ES256, ES384)",
                      alg));
    CL_GUARD_IF(json_object_get(j->header, "crit") != NULL,
                failf(err, errlen, CL_EUNSUPPORTED, "bearer token header carries \"crit\""));
    const char *kid = NULL;
    int r = opt_str(j->header, "kid", &kid);
    CL_GUARD_IF(r == CL_EJSON, failf(err, errlen, CL_EJSON, "bearer token kid is not a string"));
    CL_GUARD_IF(kid == NULL && keys->n != 1,
                failf(err, errlen, CL_ENOENT, "bearer token has no kid and the JWKS holds %zu keys",
                      keys->n));
    size_t candidates = 0, usable = 0;
    int ok = 0;
    char kerr[160] = "";
    for (size_t i = 0; i < keys->n && !ok; i++) {
        const jwks_key *k = &keys->keys[i];
        if (kid != NULL && (k->kid == NULL || strcmp(k->kid, kid) != 0))
            continue;
        candidates++;
        if (k->alg != NULL && strcmp(k->alg, alg) != 0) {
            snprintf(kerr, sizeof kerr, "the key is restricted to alg %s", k->alg);
            continue;
        }
        if (key_fits(a, k->pkey, 1, kerr, sizeof kerr) < 0)
            continue;
        usable++;
        r = verify_sig(a, k->pkey, j->text, j->signing_len, j->sig, j->sig_len, 0);
        CL_GUARD_IF(r == CL_ENOMEM, failf(err, errlen, r, "out of memory"));
        ok = r == CL_OK;
    }
    CL_GUARD_IF(candidates == 0, failf(err, errlen, CL_ENOENT,
                                       "no JWKS key has the bearer token's kid \"%.80s\"", kid));
    if (usable == 0 && kid == NULL)
        CL_GUARD(failf(err, errlen, CL_EUNSUPPORTED, "the JWKS key cannot verify alg %s: %s",
                       a->name, kerr));
    CL_GUARD_IF(usable == 0,
                failf(err, errlen, CL_EUNSUPPORTED,
                      "no JWKS key for kid \"%.80s\" can verify alg %s: %s", kid, a->name, kerr));
    CL_GUARD_IF(
        !ok, failf(err, errlen, CL_ESIG, "bearer token signature (%s) does not verify", a->name));
    CL_GUARD(check_claims(j->payload_json, issuer, audience, now_unix, leeway_s, err, errlen));
    if (claims != NULL) {
        json_incref(j->payload_json);
        *claims = j->payload_json;
    }
    rc = CL_OK;
out:
    cl_jws_free(j);
    return rc;
}
