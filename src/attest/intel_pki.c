/*
 * intel_pki.c — strict PEM chains, path validation to the pinned Intel SGX Root CA key, raw
 * ECDSA, and the PCK certificate's SGX Extensions (see intel_pki.h).
 */
#include "attest/intel_pki.h"

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "attest/roots.h"
#include "base/alloc.h"
#include "base/codec.h"
#include "base/cursor.h"
#include "crypto/hash.h"
#include "crypto/ossl.h"

void cl_intel_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- PEM ---------------------------------------------------------------------------------- */

static const char pem_begin[] = "-----BEGIN CERTIFICATE-----";
static const char pem_end[] = "-----END CERTIFICATE-----";

static int is_b64(uint8_t ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '+' || ch == '/' || ch == '=';
}

/* Consumes one line break (\n or \r\n). */
static int eat_eol(cl_cursor *c)
{
    uint8_t ch;
    if (cl_cursor_u8(c, &ch) != CL_OK)
        return CL_ETRUNC;
    if (ch == '\r' && cl_cursor_u8(c, &ch) != CL_OK)
        return CL_ETRUNC;
    return ch == '\n' ? CL_OK : CL_EPEM;
}

static int eat_literal(cl_cursor *c, const char *lit)
{
    size_t n = strlen(lit);
    const uint8_t *p = NULL;
    if (cl_cursor_view(c, &p, n) != CL_OK)
        return CL_ETRUNC;
    return memcmp(p, lit, n) == 0 ? CL_OK : CL_EPEM; /* lint:public */
}

void cl_intel_certs_free(cl_intel_certs *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n; i++)
        X509_free(c->v[i]);
    c->n = 0;
}

int cl_intel_pem_chain(const char *pem, size_t len, const char *what, cl_intel_certs *out,
                       char *err, size_t errlen)
{
    int rc = CL_OK;
    cl_buf b64 = CL_BUF_INIT;
    uint8_t *der = NULL;
    memset(out, 0, sizeof *out);
    if (pem == NULL || len == 0) {
        cl_intel_err(err, errlen, "%s: empty", what);
        return CL_EPEM;
    }
    if (pem[len - 1] == '\0')
        len--; /* the NUL that ends certification data type 5 */
    cl_cursor c;
    cl_cursor_init(&c, pem, len);
    for (;;) {
        /* Line breaks between and after certificates. */
        while (cl_cursor_left(&c) > 0 && (*cl_cursor_ptr(&c) == '\n' || *cl_cursor_ptr(&c) == '\r'))
            if (eat_eol(&c) != CL_OK) {
                cl_intel_err(err, errlen, "%s: stray carriage return at offset %zu", what, c.pos);
                CL_GUARD_IF(1, CL_EPEM);
            }
        if (cl_cursor_left(&c) == 0)
            break;
        size_t start = c.pos;
        if (eat_literal(&c, pem_begin) != CL_OK || eat_eol(&c) != CL_OK) {
            cl_intel_err(err, errlen, "%s: expected \"%s\" and a line break at offset %zu", what,
                         pem_begin, start);
            CL_GUARD_IF(1, CL_EPEM);
        }
        cl_buf_reset(&b64);
        for (;;) {
            if (cl_cursor_left(&c) > 0 && *cl_cursor_ptr(&c) == '-')
                break;
            size_t run = 0;
            const uint8_t *text = cl_cursor_ptr(&c);
            while (run < cl_cursor_left(&c) && is_b64(text[run]))
                run++;
            CL_GUARD(cl_cursor_view(&c, &text, run));
            CL_GUARD(cl_buf_append(&b64, text, run));
            if (run == 0 || eat_eol(&c) != CL_OK) {
                cl_intel_err(err, errlen, "%s: invalid character in certificate %zu at offset %zu",
                             what, out->n + 1, c.pos);
                CL_GUARD_IF(1, CL_EPEM);
            }
        }
        size_t endpos = c.pos;
        if (eat_literal(&c, pem_end) != CL_OK) {
            cl_intel_err(err, errlen, "%s: expected \"%s\" at offset %zu", what, pem_end, endpos);
            CL_GUARD_IF(1, CL_EPEM);
        }
        if (cl_cursor_left(&c) > 0 && eat_eol(&c) != CL_OK) {
            cl_intel_err(err, errlen, "%s: expected a line break after \"%s\" at offset %zu", what,
                         pem_end, c.pos);
            CL_GUARD_IF(1, CL_EPEM);
        }
        if (out->n == CL_INTEL_MAX_CERTS) {
            cl_intel_err(err, errlen, "%s: more than %d certificates", what, CL_INTEL_MAX_CERTS);
            CL_GUARD_IF(1, CL_EPEM);
        }
        size_t derlen = 0;
        if (b64.len == 0 || cl_b64_decode_alloc((const char *)b64.data, b64.len, &der, &derlen,
                                                CL_B64_STD) != CL_OK) {
            cl_intel_err(err, errlen, "%s: certificate %zu (offset %zu) is not canonical base64",
                         what, out->n + 1, start);
            CL_GUARD_IF(1, CL_EPEM);
        }
        const unsigned char *p = der;
        X509 *x = derlen <= 0x7fffffff ? d2i_X509(NULL, &p, (long)derlen) : NULL;
        if (x == NULL || p != der + derlen) {
            X509_free(x);
            cl_intel_err(err, errlen, "%s: certificate %zu (offset %zu) is not valid DER X.509",
                         what, out->n + 1, start);
            CL_GUARD_IF(1, cl_ossl_fail(CL_EPEM));
        }
        out->v[out->n++] = x;
        cl_free(der);
        der = NULL;
    }
    if (out->n == 0) {
        cl_intel_err(err, errlen, "%s: no certificate", what);
        rc = CL_EPEM;
    }
out:
    cl_free(der);
    cl_buf_free(&b64);
    if (rc < 0)
        cl_intel_certs_free(out);
    return rc;
}

/* ---- chains ------------------------------------------------------------------------------- */

/* The pinned root is decoded once (OpenSSL 3.0 key decoding is slow) and then only read; each
 * caller gets its own reference. */
static X509 *pinned_root_cert;
static pthread_once_t pinned_root_once = PTHREAD_ONCE_INIT;

static void pinned_root_init(void)
{
    BIO *bio = BIO_new_mem_buf(cl_root_intel_sgx_pem, -1);
    if (bio == NULL)
        return;
    pinned_root_cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
}

static X509 *pinned_root(void)
{
    if (pthread_once(&pinned_root_once, pinned_root_init) != 0 || pinned_root_cert == NULL ||
        X509_up_ref(pinned_root_cert) != 1)
        return NULL;
    return pinned_root_cert;
}

/* SubjectPublicKeyInfo equality (public data). */
static int same_spki(X509 *a, X509 *b)
{
    unsigned char *da = NULL, *db = NULL;
    int la = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(a), &da);
    int lb = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(b), &db);
    int eq = la > 0 && la == lb && cl_ct_equal(da, db, (size_t)la);
    OPENSSL_free(da);
    OPENSSL_free(db);
    return eq;
}

static void subject_cn(X509 *x, char *buf, size_t n)
{
    buf[0] = '\0';
    if (x == NULL ||
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, (int)n) < 0)
        snprintf(buf, n, "?");
}

int cl_intel_cert_cn_is(X509 *x, const char *cn)
{
    char buf[128];
    int len =
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, (int)sizeof buf);
    return len >= 0 && (size_t)len == strlen(cn) && strcmp(buf, cn) == 0;
}

static int map_x509_error(int e)
{
    switch (e) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
    case X509_V_ERR_CRL_HAS_EXPIRED:
    case X509_V_ERR_CRL_NOT_YET_VALID:
        return CL_EEXPIRED;
    case X509_V_ERR_CERT_REVOKED:
        return CL_EREVOKED;
    default:
        return CL_ECHAIN;
    }
}

int cl_intel_chain_verify(const cl_intel_certs *certs, X509_CRL *const *crls, size_t ncrls,
                          int64_t now, const char *what, char *err, size_t errlen)
{
    X509 *root = pinned_root();
    if (root == NULL) {
        cl_intel_err(err, errlen, "%s: cannot load the pinned Intel root", what);
        return cl_ossl_fail(CL_ECRYPTO);
    }
    int rc = cl_intel_chain_verify_anchor(certs, root, crls, ncrls, now, what, err, errlen);
    X509_free(root);
    return rc;
}

int cl_intel_chain_verify_anchor(const cl_intel_certs *certs, X509 *root, X509_CRL *const *crls,
                                 size_t ncrls, int64_t now, const char *what, char *err,
                                 size_t errlen)
{
    int rc = CL_OK;
    X509_STORE *store = NULL;
    X509_STORE_CTX *ctx = NULL;
    STACK_OF(X509) *untrusted = NULL;
    char cn[128];

    CL_GUARD_IF(certs == NULL || certs->n == 0 || root == NULL, CL_EINVAL);

    /* An embedded self-signed root must be the pinned key with a valid self-signature (either
     * issuance); it is then left out of path building, which ends at the pinned certificate. */
    size_t n = certs->n;
    X509 *last = certs->v[n - 1];
    int embedded_root = n >= 2 && X509_check_issued(last, last) == X509_V_OK;
    if (n == 1 && X509_check_issued(last, last) == X509_V_OK) {
        cl_intel_err(err, errlen, "%s: a lone self-signed certificate is not a chain", what);
        CL_GUARD_IF(1, CL_ECHAIN);
    }
    if (embedded_root) {
        if (!same_spki(last, root)) {
            subject_cn(last, cn, sizeof cn);
            cl_intel_err(err, errlen,
                         "%s: root certificate \"%s\" does not carry the pinned root public key",
                         what, cn);
            CL_GUARD_IF(1, CL_ECHAIN);
        }
        if (X509_verify(last, X509_get0_pubkey(root)) != 1) {
            cl_intel_err(err, errlen, "%s: root certificate self-signature does not verify", what);
            CL_GUARD_IF(1, cl_ossl_fail(CL_ECHAIN));
        }
        n--;
    }

    store = X509_STORE_new();
    untrusted = sk_X509_new_null();
    ctx = X509_STORE_CTX_new();
    CL_GUARD_IF(store == NULL || untrusted == NULL || ctx == NULL, cl_ossl_fail(CL_ENOMEM));
    CL_GUARD_IF(X509_STORE_add_cert(store, root) != 1, cl_ossl_fail(CL_ECRYPTO));
    for (size_t i = 0; i < ncrls; i++)
        CL_GUARD_IF(X509_STORE_add_crl(store, crls[i]) != 1, cl_ossl_fail(CL_ECRYPTO));
    for (size_t i = 1; i < n; i++)
        CL_GUARD_IF(!sk_X509_push(untrusted, certs->v[i]), cl_ossl_fail(CL_ENOMEM));
    CL_GUARD_IF(X509_STORE_CTX_init(ctx, store, certs->v[0], untrusted) != 1,
                cl_ossl_fail(CL_ENOMEM));
    X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_time(param, (time_t)now);
    X509_VERIFY_PARAM_set_depth(param, CL_INTEL_MAX_CERTS);
    if (ncrls > 0)
        X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);

    if (X509_verify_cert(ctx) != 1) {
        int e = X509_STORE_CTX_get_error(ctx);
        int depth = X509_STORE_CTX_get_error_depth(ctx);
        subject_cn(X509_STORE_CTX_get_current_cert(ctx), cn, sizeof cn);
        rc = map_x509_error(e);
        cl_intel_err(err, errlen, "%s: %s (certificate \"%s\" at depth %d)", what,
                     X509_verify_cert_error_string(e), cn, depth);
        cl_ossl_fail(rc);
        goto out;
    }
    /* The validated path must be exactly the supplied certificates plus the pinned root. */
    STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(ctx);
    size_t clen = chain != NULL ? (size_t)sk_X509_num(chain) : 0;
    if (clen != n + 1) {
        cl_intel_err(err, errlen,
                     "%s: %zu certificates supplied but the validated path uses %zu besides the "
                     "root",
                     what, certs->n, clen > 0 ? clen - 1 : 0);
        CL_GUARD_IF(1, CL_ECHAIN);
    }
    for (size_t i = 0; i < n; i++)
        if (X509_cmp(sk_X509_value(chain, (int)i), certs->v[i]) != 0) {
            cl_intel_err(err, errlen, "%s: certificate %zu is not the issuer of certificate %zu",
                         what, i + 1, i);
            CL_GUARD_IF(1, CL_ECHAIN);
        }
    if (!same_spki(sk_X509_value(chain, (int)n), root)) {
        cl_intel_err(err, errlen, "%s: the path does not end in the pinned Intel root key", what);
        CL_GUARD_IF(1, CL_ECHAIN);
    }
out:
    X509_STORE_CTX_free(ctx);
    sk_X509_free(untrusted);
    X509_STORE_free(store);
    return rc;
}

/* ---- ECDSA -------------------------------------------------------------------------------- */

int cl_intel_ecdsa_verify(EVP_PKEY *key, const uint8_t *msg, size_t n, const uint8_t sig[64])
{
    int rc = CL_ESIG;
    ECDSA_SIG *s = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, 32, NULL);
    BIGNUM *ss = BN_bin2bn(sig + 32, 32, NULL);
    unsigned char *der = NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (s == NULL || r == NULL || ss == NULL || md == NULL) {
        rc = CL_ENOMEM;
        goto fail;
    }
    if (ECDSA_SIG_set0(s, r, ss) != 1)
        goto fail;
    r = ss = NULL; /* owned by s */
    int dlen = i2d_ECDSA_SIG(s, &der);
    if (dlen <= 0)
        goto fail;
    if (EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) != 1)
        goto fail;
    if (EVP_DigestVerify(md, der, (size_t)dlen, msg, n) == 1)
        rc = CL_OK;
fail:
    EVP_MD_CTX_free(md);
    OPENSSL_free(der);
    BN_free(r);
    BN_free(ss);
    ECDSA_SIG_free(s);
    if (rc != CL_OK)
        cl_ossl_fail(rc);
    return rc;
}

int cl_intel_p256_key(const uint8_t xy[64], EVP_PKEY **out)
{
    uint8_t pt[65];
    pt[0] = 0x04;
    memcpy(pt + 1, xy, 64);
    int rc = CL_ESIG;
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    OSSL_PARAM params[3];
    params[0] =
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"prime256v1", 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof pt);
    params[2] = OSSL_PARAM_construct_end();
    if (pctx == NULL) {
        rc = CL_ENOMEM;
        goto out;
    }
    if (EVP_PKEY_fromdata_init(pctx) != 1 ||
        EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1 || pkey == NULL)
        goto out;
    *out = pkey;
    pkey = NULL;
    rc = CL_OK;
out:
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(pctx);
    if (rc != CL_OK)
        cl_ossl_fail(rc);
    return rc;
}

int cl_intel_crl_from_der(const uint8_t *der, size_t n, X509_CRL **out)
{
    CL_ENSURE(der != NULL && n > 0 && n <= 0x7fffffff, CL_EPEM);
    const unsigned char *p = der;
    X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)n);
    if (crl == NULL || p != der + n) {
        X509_CRL_free(crl);
        return cl_ossl_fail(CL_EPEM);
    }
    *out = crl;
    return CL_OK;
}

/* ---- SGX Extensions ----------------------------------------------------------------------- */

#define SGX_EXT_OID "1.2.840.113741.1.13.1"

static STACK_OF(ASN1_TYPE) * seq_any(const unsigned char *der, long len)
{
    const unsigned char *p = der;
    STACK_OF(ASN1_TYPE) *sk = d2i_ASN1_SEQUENCE_ANY(NULL, &p, len);
    if (sk != NULL && p != der + len) {
        sk_ASN1_TYPE_pop_free(sk, ASN1_TYPE_free);
        sk = NULL;
    }
    return sk;
}

/* One SEQUENCE { OID, value } element: its OID as dotted text and its value. */
static int pair(const ASN1_TYPE *t, char *oid, size_t oidlen, STACK_OF(ASN1_TYPE) * *sk,
                const ASN1_TYPE **value)
{
    if (t->type != V_ASN1_SEQUENCE)
        return CL_EFORMAT;
    *sk = seq_any(t->value.sequence->data, t->value.sequence->length);
    if (*sk == NULL || sk_ASN1_TYPE_num(*sk) != 2)
        return CL_EFORMAT;
    const ASN1_TYPE *o = sk_ASN1_TYPE_value(*sk, 0);
    if (o->type != V_ASN1_OBJECT || OBJ_obj2txt(oid, (int)oidlen, o->value.object, 1) <= 0)
        return CL_EFORMAT;
    *value = sk_ASN1_TYPE_value(*sk, 1);
    return CL_OK;
}

static int octets(const ASN1_TYPE *v, uint8_t *out, size_t n)
{
    if (v->type != V_ASN1_OCTET_STRING || (size_t)v->value.octet_string->length != n)
        return CL_EFORMAT;
    memcpy(out, v->value.octet_string->data, n);
    return CL_OK;
}

static int small_int(const ASN1_TYPE *v, int64_t max, int64_t *out)
{
    int64_t x;
    if (v->type == V_ASN1_INTEGER) {
        if (ASN1_INTEGER_get_int64(&x, v->value.integer) != 1)
            return CL_EFORMAT;
    } else if (v->type == V_ASN1_ENUMERATED) {
        if (ASN1_ENUMERATED_get_int64(&x, v->value.enumerated) != 1)
            return CL_EFORMAT;
    } else {
        return CL_EFORMAT;
    }
    if (x < 0 || x > max)
        return CL_EFORMAT;
    *out = x;
    return CL_OK;
}

static int parse_tcb(const ASN1_TYPE *v, cl_intel_pck_ext *e, unsigned *seen)
{
    if (v->type != V_ASN1_SEQUENCE)
        return CL_EFORMAT;
    STACK_OF(ASN1_TYPE) *sk = seq_any(v->value.sequence->data, v->value.sequence->length);
    if (sk == NULL)
        return CL_EFORMAT;
    int rc = CL_OK;
    char oid[96];
    const size_t plen = strlen(SGX_EXT_OID ".2.");
    for (int i = 0; i < sk_ASN1_TYPE_num(sk) && rc == CL_OK; i++) {
        STACK_OF(ASN1_TYPE) *p = NULL;
        const ASN1_TYPE *val = NULL;
        rc = pair(sk_ASN1_TYPE_value(sk, i), oid, sizeof oid, &p, &val);
        if (rc == CL_OK && strncmp(oid, SGX_EXT_OID ".2.", plen) == 0) {
            const char *tail = oid + plen;
            int idx = 0;
            for (; *tail >= '0' && *tail <= '9' && idx < 100; tail++)
                idx = idx * 10 + (*tail - '0');
            int64_t x = 0;
            if (*tail != '\0' || idx < 1 || idx > 18) {
                /* unknown component: ignore */
            } else if (idx <= 16) {
                rc = small_int(val, 255, &x);
                e->comp[idx - 1] = (uint8_t)x;
                *seen |= 1u << idx;
            } else if (idx == 17) {
                rc = small_int(val, 65535, &x);
                e->pce_svn = (uint16_t)x;
                *seen |= 1u << idx;
            } else {
                rc = octets(val, e->cpu_svn, 16);
                *seen |= 1u << idx;
            }
        }
        sk_ASN1_TYPE_pop_free(p, ASN1_TYPE_free);
    }
    sk_ASN1_TYPE_pop_free(sk, ASN1_TYPE_free);
    return rc;
}

int cl_intel_pck_extensions(X509 *leaf, cl_intel_pck_ext *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    ASN1_OBJECT *obj = OBJ_txt2obj(SGX_EXT_OID, 1);
    if (obj == NULL)
        return cl_ossl_fail(CL_ENOMEM);
    int idx = X509_get_ext_by_OBJ(leaf, obj, -1);
    int dup = idx >= 0 ? X509_get_ext_by_OBJ(leaf, obj, idx) : -1;
    ASN1_OBJECT_free(obj);
    if (idx < 0 || dup >= 0) {
        cl_intel_err(err, errlen, "PCK certificate has %s SGX Extensions (OID " SGX_EXT_OID ")",
                     idx < 0 ? "no" : "duplicate");
        return CL_ECHAIN;
    }
    ASN1_OCTET_STRING *data = X509_EXTENSION_get_data(X509_get_ext(leaf, idx));
    STACK_OF(ASN1_TYPE) *sk = data != NULL ? seq_any(data->data, data->length) : NULL;
    if (sk == NULL) {
        cl_intel_err(err, errlen, "PCK certificate SGX Extensions are not a DER SEQUENCE");
        return cl_ossl_fail(CL_EFORMAT);
    }
    int rc = CL_OK;
    unsigned seen = 0, tcb_seen = 0;
    char oid[96];
    for (int i = 0; i < sk_ASN1_TYPE_num(sk) && rc == CL_OK; i++) {
        STACK_OF(ASN1_TYPE) *p = NULL;
        const ASN1_TYPE *val = NULL;
        int64_t x = 0;
        rc = pair(sk_ASN1_TYPE_value(sk, i), oid, sizeof oid, &p, &val);
        if (rc == CL_OK) {
            if (strcmp(oid, SGX_EXT_OID ".1") == 0) {
                rc = octets(val, out->ppid, 16);
                seen |= 1u << 1;
            } else if (strcmp(oid, SGX_EXT_OID ".2") == 0) {
                rc = parse_tcb(val, out, &tcb_seen);
                seen |= 1u << 2;
            } else if (strcmp(oid, SGX_EXT_OID ".3") == 0) {
                rc = octets(val, out->pce_id, 2);
                seen |= 1u << 3;
            } else if (strcmp(oid, SGX_EXT_OID ".4") == 0) {
                rc = octets(val, out->fmspc, 6);
                seen |= 1u << 4;
            } else if (strcmp(oid, SGX_EXT_OID ".5") == 0) {
                rc = small_int(val, 255, &x);
                out->sgx_type = (int)x;
                seen |= 1u << 5;
            }
        }
        sk_ASN1_TYPE_pop_free(p, ASN1_TYPE_free);
    }
    sk_ASN1_TYPE_pop_free(sk, ASN1_TYPE_free);
    if (rc != CL_OK) {
        cl_intel_err(err, errlen, "PCK certificate SGX Extensions: malformed element %s", oid);
        return cl_ossl_fail(CL_EFORMAT);
    }
    unsigned need = 1u << 2 | 1u << 3 | 1u << 4, tcb_need = 0x7fffeu; /* .2.1 … .2.18 */
    if ((seen & need) != need || tcb_seen != tcb_need) {
        cl_intel_err(err, errlen,
                     "PCK certificate SGX Extensions lack the TCB, PCE-ID or FMSPC element");
        return CL_EFORMAT;
    }
    return CL_OK;
}

/* ---- time --------------------------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int64_t unix_of(int64_t y, unsigned mo, unsigned d, unsigned h, unsigned mi, unsigned s)
{
    return days_from_civil(y, mo, d) * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + s;
}

int cl_intel_asn1_time(const ASN1_TIME *t, int64_t *out)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return CL_EFORMAT;
    *out = unix_of((int64_t)tm.tm_year + 1900, (unsigned)tm.tm_mon + 1, (unsigned)tm.tm_mday,
                   (unsigned)tm.tm_hour, (unsigned)tm.tm_min, (unsigned)tm.tm_sec);
    return CL_OK;
}

static int digits(const char *s, int n, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return 1;
}

int cl_intel_parse_date(const char *s, int64_t *out)
{
    static const unsigned mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    unsigned y, mo, d, h, mi, se;
    if (s == NULL || strlen(s) != 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
        s[13] != ':' || s[16] != ':' || s[19] != 'Z' || !digits(s, 4, &y) ||
        !digits(s + 5, 2, &mo) || !digits(s + 8, 2, &d) || !digits(s + 11, 2, &h) ||
        !digits(s + 14, 2, &mi) || !digits(s + 17, 2, &se))
        return CL_EFORMAT;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || se > 60)
        return CL_EFORMAT;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap)
        return CL_EFORMAT;
    *out = unix_of(y, mo, d, h, mi, se);
    return CL_OK;
}
