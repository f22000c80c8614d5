/*
 * test_jws.c — the JOSE layer of cledger-attestd (src/attest/jws.c).
 *
 * The client-side JWS forms of spec/attestation-api.md §6.1 / §7.2 are produced here with plain
 * OpenSSL (EVP_DigestSign, our own DER -> r||s conversion), never with the code under test, so a
 * symmetric bug in signing and verifying cannot hide. Our tokens are checked the other way round:
 * with OpenSSL directly and through the JWKS entry.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attest/jws.h"
#include "base/alloc.h"
#include "base/codec.h"
#include "base/json.h"
#include "crypto/hash.h"

/* ---- fixtures ---------------------------------------------------------------------------------
 */

static EVP_PKEY *rsa_a, *rsa_b, *rsa_small, *ec256, *ec384, *ec256_b;
static X509 *cert_rsa_a, *cert_rsa_b, *cert_ec256, *cert_ec384, *cert_small, *cert_leaf;

static const char POLICY[] = "version=1.0; authorizationrules{=> permit();}; issuancerules{};";

/* §6.1 table */
static const char JS_UNSIGNED[] =
    "eyJhbGciOiJub25lIn0."
    "eyJBdHRlc3RhdGlvblBvbGljeSI6ImRtVnljMmx2YmoweExqQTdJR0YxZEdodmNtbDZZWFJwYjI1eWRXeGxjM3M5UGlCd1"
    "pYSnRhWFFvS1R0OU95QnBjM04xWVc1alpYSjFiR1Z6ZTMwNyJ9.";
static const char PY_UNSIGNED[] =
    "eyJhbGciOiJub25lIn0."
    "eyJBdHRlc3RhdGlvblBvbGljeSI6ICJkbVZ5YzJsdmJqMHhMakE3SUdGMWRHaHZjbWw2WVhScGIyNXlkV3hsYzNzOVBpQn"
    "daWEp0YVhRb0tUdDlPeUJwYzNOMVlXNWpaWEoxYkdWemUzMDcifQ.";

__attribute__((format(printf, 1, 2))) static char *fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(NULL, 0, f, ap);
    va_end(ap);
    assert_true(n >= 0);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    va_start(ap, f);
    vsnprintf(s, (size_t)n + 1, f, ap);
    va_end(ap);
    return s;
}

static char *b64u(const void *p, size_t n)
{
    char *s = cl_b64url_encode_alloc(p, n);
    assert_non_null(s);
    return s;
}

static char *b64u_str(const char *s) { return b64u(s, strlen(s)); }

/* Standard base64 with padding of the DER certificate (what the clients put in x5c). */
static char *std64_der(X509 *x)
{
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    assert_true(n > 0);
    char *s = cl_b64_encode_alloc(der, (size_t)n, CL_B64_STD);
    OPENSSL_free(der);
    assert_non_null(s);
    return s;
}

static EVP_PKEY *gen_rsa(unsigned bits)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
    assert_non_null(k);
    return k;
}

static EVP_PKEY *gen_ec(const char *curve)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
    assert_non_null(k);
    return k;
}

/* A certificate for `subj` issued by (issuer, ikey), or self-signed when issuer is NULL. */
static X509 *mk_cert(EVP_PKEY *subj, const char *cn, X509 *issuer, EVP_PKEY *ikey)
{
    X509 *x = X509_new();
    assert_non_null(x);
    assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 4711);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    assert_int_equal(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    assert_int_equal(X509_set_pubkey(x, subj), 1);
    assert_true(X509_sign(x, issuer ? ikey : subj, EVP_sha256()) > 0);
    return x;
}

enum sigmode { SIG_PKCS1, SIG_PSS, SIG_EC_RAW, SIG_EC_DER };

/* The signature of `input` exactly as a JOSE producer would make it, with plain OpenSSL. */
static uint8_t *ossl_sign(EVP_PKEY *k, const EVP_MD *md, enum sigmode mode, const char *input,
                          size_t *siglen)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    assert_int_equal(EVP_DigestSignInit(ctx, &pctx, md, NULL, k), 1);
    if (mode == SIG_PSS) {
        assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
        assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST), 1);
    }
    size_t n = 0;
    assert_int_equal(EVP_DigestSign(ctx, NULL, &n, (const unsigned char *)input, strlen(input)), 1);
    uint8_t *sig = malloc(n);
    assert_int_equal(EVP_DigestSign(ctx, sig, &n, (const unsigned char *)input, strlen(input)), 1);
    EVP_MD_CTX_free(ctx);
    if (mode == SIG_EC_RAW) {
        int half = (EVP_PKEY_get_bits(k) + 7) / 8;
        const unsigned char *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)n);
        assert_non_null(es);
        uint8_t *raw = malloc((size_t)(2 * half));
        assert_true(BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, half) == half);
        assert_true(BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + half, half) == half);
        ECDSA_SIG_free(es);
        free(sig);
        sig = raw;
        n = (size_t)(2 * half);
    }
    *siglen = n;
    return sig;
}

/* header_text and payload_text are the exact JSON bytes; the result is malloc'd. */
static char *mk_jws(const char *header_text, const char *payload_text, EVP_PKEY *k,
                    const EVP_MD *md, enum sigmode mode)
{
    char *h = b64u_str(header_text), *p = b64u_str(payload_text);
    char *input = fmt("%s.%s", h, p);
    char *s = NULL;
    if (k == NULL) {
        s = fmt("%s.", input);
    } else {
        size_t n = 0;
        uint8_t *sig = ossl_sign(k, md, mode, input, &n);
        char *s64 = b64u(sig, n);
        s = fmt("%s.%s", input, s64);
        cl_free(s64);
        free(sig);
    }
    cl_free(h);
    cl_free(p);
    free(input);
    return s;
}

static char *policy_payload(int python_style)
{
    char *t = b64u_str(POLICY);
    char *s = python_style ? fmt("{\"AttestationPolicy\": \"%s\"}", t)
                           : fmt("{\"AttestationPolicy\":\"%s\"}", t);
    cl_free(t);
    return s;
}

static int group_setup(void **state)
{
    rsa_a = gen_rsa(2048);
    rsa_b = gen_rsa(2048);
    rsa_small = gen_rsa(1024);
    ec256 = gen_ec("P-256");
    ec256_b = gen_ec("P-256");
    ec384 = gen_ec("P-384");
    cert_rsa_a = mk_cert(rsa_a, "policy signer A", NULL, NULL);
    cert_rsa_b = mk_cert(rsa_b, "test CA", NULL, NULL);
    cert_ec256 = mk_cert(ec256, "ec256", NULL, NULL);
    cert_ec384 = mk_cert(ec384, "ec384", NULL, NULL);
    cert_small = mk_cert(rsa_small, "small", NULL, NULL);
    cert_leaf = mk_cert(rsa_a, "leaf", cert_rsa_b, rsa_b); /* rsa_a certified by the CA rsa_b */
    return 0;
}

static int group_teardown(void **state)
{
    EVP_PKEY *keys[] = {rsa_a, rsa_b, rsa_small, ec256, ec256_b, ec384};
    X509 *certs[] = {cert_rsa_a, cert_rsa_b, cert_ec256, cert_ec384, cert_small, cert_leaf};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        EVP_PKEY_free(keys[i]);
    for (size_t i = 0; i < sizeof certs / sizeof certs[0]; i++)
        X509_free(certs[i]);
    return 0;
}

/* Parses and verifies; returns the verify result and leaves the object in *out (or NULL). */
static int parse_verify(const char *text, cl_jws **out, char *err, size_t errlen)
{
    cl_jws *j = NULL;
    int rc = cl_jws_parse(text, strlen(text), &j, err, errlen);
    if (rc < 0) {
        if (out)
            *out = NULL;
        return rc;
    }
    rc = cl_jws_verify(j, err, errlen);
    if (out)
        *out = j;
    else
        cl_jws_free(j);
    return rc;
}

static void expect_fail(const char *text, int code, const char *msg_part)
{
    char err[256] = "";
    int rc = parse_verify(text, NULL, err, sizeof err);
    if (rc != code || strstr(err, msg_part) == NULL)
        fail_msg("expected %s containing \"%s\", got %s: \"%s\"", cl_errname(code), msg_part,
                 cl_errname(rc), err);
}

/* ---- base64 -----------------------------------------------------------------------------------
 */

static void expect_b64(const char *in, const char *want)
{
    uint8_t *out = NULL;
    size_t n = 0;
    int rc = cl_b64_decode_lenient_alloc(in, strlen(in), &out, &n);
    if (want == NULL) {
        if (rc != CL_EBASE64)
            fail_msg("\"%s\" should be rejected, got %s", in, cl_errname(rc));
        return;
    }
    if (rc != CL_OK)
        fail_msg("\"%s\" should decode, got %s", in, cl_errname(rc));
    assert_int_equal(n, strlen(want));
    assert_memory_equal(out, want, n);
    cl_free(out);
}

static void test_b64_lenient(void **state)
{
    expect_b64("", "");
    expect_b64("YQ", "a");
    expect_b64("YQ==", "a");
    expect_b64("YWI", "ab");
    expect_b64("YWI=", "ab");
    expect_b64("YWJj", "abc");
    expect_b64("-_-_", "\xfb\xff\xbf");
    expect_b64("+/+/", "\xfb\xff\xbf");
    expect_b64("-/+_", "\xfb\xff\xbf"); /* mixed alphabets */
    expect_b64("YQ=", NULL);            /* incomplete padding */
    expect_b64("YQ===", NULL);
    expect_b64("YWJj====", NULL);
    expect_b64("==", NULL);
    expect_b64("Y", NULL);   /* lone symbol */
    expect_b64("YR", NULL);  /* non-zero unused bits */
    expect_b64("Y Q", NULL); /* whitespace */
    expect_b64("YQ\n", NULL);
    expect_b64("Y=Q=", NULL);
    expect_b64("YW*j", NULL);
    uint8_t *out = NULL;
    size_t n = 0;
    assert_int_equal(cl_b64_decode_lenient_alloc(NULL, 0, &out, &n), CL_OK);
    assert_non_null(out);
    assert_int_equal(n, 0);
    cl_free(out);
}

/* ---- unsigned policies (§6.1, §6.5) -----------------------------------------------------------
 */

static void check_unsigned_policy(const char *jws, const char *want_hash)
{
    char err[256];
    cl_jws *j = NULL;
    assert_int_equal(parse_verify(jws, &j, err, sizeof err), CL_OK);
    assert_string_equal(cl_jws_alg(j), "none");
    assert_int_equal(cl_jws_is_signed(j), 0);
    assert_null(cl_jws_signer_cert(j));
    assert_null(cl_jws_signer_key(j));
    json_t *sj = NULL;
    assert_int_equal(cl_jws_signer_jwk(j, &sj), CL_ESTATE);
    json_t *p = cl_jws_payload_json(j);
    assert_non_null(p);
    const char *ap = NULL;
    size_t aplen = 0;
    assert_int_equal(cl_json_get_str(p, "AttestationPolicy", &ap, &aplen), CL_OK);
    uint8_t *text = NULL;
    size_t tlen = 0;
    assert_int_equal(cl_b64_decode_lenient_alloc(ap, aplen, &text, &tlen), CL_OK);
    assert_int_equal(tlen, strlen(POLICY));
    assert_memory_equal(text, POLICY, tlen);
    cl_free(text);
    /* signing input = everything before the second dot, as received */
    size_t silen = 0;
    const char *si = cl_jws_signing_input(j, &silen);
    assert_int_equal(silen, strlen(jws) - 1);
    assert_memory_equal(si, jws, silen);
    /* x-ms-policy-token-hash (§6.6) over the exact JWS text */
    uint8_t d[32];
    cl_sha256(jws, strlen(jws), d);
    char *h = b64u(d, sizeof d);
    assert_string_equal(h, want_hash);
    cl_free(h);
    cl_jws_free(j);
}

static void test_unsigned_policies(void **state)
{
    check_unsigned_policy(JS_UNSIGNED, "c6sEJQItV50OeP9IrP_bzywAMOVvj5uDPbklA_bwdYQ");
    check_unsigned_policy(PY_UNSIGNED, "pyhI2FKMjRkvpvwS07hLclAyvsi5O4TrnzL5OPsIxzM");
}

static void test_reset_body(void **state)
{
    const char *reset = "eyJhbGciOiJub25lIn0..";
    char err[256];
    cl_jws *j = NULL;
    assert_int_equal(parse_verify(reset, &j, err, sizeof err), CL_OK);
    size_t n = 99;
    assert_non_null(cl_jws_payload(j, &n));
    assert_int_equal(n, 0);
    assert_null(cl_jws_payload_json(j));
    assert_int_equal(cl_jws_is_signed(j), 0);
    assert_string_equal(json_string_value(json_object_get(cl_jws_header(j), "alg")), "none");
    cl_jws_free(j);
    /* unsigned with a signature segment */
    expect_fail("eyJhbGciOiJub25lIn0..AAAA", CL_ESIG, "empty signature");
    /* a payload that is not JSON parses; the caller sees NULL */
    char *np = mk_jws("{\"alg\":\"none\"}", "not json", NULL, NULL, 0);
    assert_int_equal(parse_verify(np, &j, err, sizeof err), CL_OK);
    assert_null(cl_jws_payload_json(j));
    cl_jws_free(j);
    free(np);
}

/* ---- signed policies in every client form (§6.1, §6.2) ----------------------------------------
 */

/* Verifies `jws`, checks the signer and the x-ms-policy-signer claim against `cert` (or, for a
 * bare jwk, against `key` with no certificate). */
static void check_signed(const char *jws, X509 *cert, EVP_PKEY *key, const char *kty)
{
    char err[256] = "";
    cl_jws *j = NULL;
    int rc = parse_verify(jws, &j, err, sizeof err);
    if (rc != CL_OK)
        fail_msg("verify failed: %s: %s", cl_errname(rc), err);
    assert_int_equal(cl_jws_is_signed(j), 1);
    assert_non_null(cl_jws_signer_key(j));
    assert_int_equal(EVP_PKEY_eq(cl_jws_signer_key(j), key), 1);
    json_t *sj = NULL;
    if (cert != NULL) {
        assert_non_null(cl_jws_signer_cert(j));
        assert_int_equal(X509_cmp(cl_jws_signer_cert(j), cert), 0);
        assert_int_equal(cl_jws_signer_jwk(j, &sj), CL_OK);
        char *want = std64_der(cert);
        char *got = cl_json_dump(sj);
        char *exp = fmt("{\"kty\":\"%s\",\"x5c\":[\"%s\"]}", kty, want);
        assert_string_equal(got, exp);
        free(exp);
        cl_free(got);
        cl_free(want);
        json_decref(sj);
    } else {
        assert_null(cl_jws_signer_cert(j));
        assert_int_equal(cl_jws_signer_jwk(j, &sj), CL_ENOENT);
    }
    /* a second verify gives the same answer */
    assert_int_equal(cl_jws_verify(j, err, sizeof err), CL_OK);
    assert_int_equal(cl_jws_is_signed(j), 1);
    cl_jws_free(j);
}

static void test_js_rs256_x5c(void **state)
{
    char *x = std64_der(cert_rsa_a), *pl = policy_payload(0);
    char *hdr = fmt("{\"alg\":\"RS256\",\"x5c\":[\"%s\"]}", x);
    char *jws = mk_jws(hdr, pl, rsa_a, EVP_sha256(), SIG_PKCS1);
    check_signed(jws, cert_rsa_a, rsa_a, "RSA");
    free(jws);
    free(hdr);
    free(pl);
    cl_free(x);
}

static void test_js_es256_any_curve(void **state)
{
    char *pl = policy_payload(0);
    struct {
        X509 *c;
        EVP_PKEY *k;
        size_t siglen;
    } cases[] = {{cert_ec256, ec256, 64}, {cert_ec384, ec384, 96}};
    for (size_t i = 0; i < 2; i++) {
        char *x = std64_der(cases[i].c);
        char *hdr = fmt("{\"alg\":\"ES256\",\"x5c\":[\"%s\"]}", x);
        /* JS hashes with SHA-256 even for a P-384 key */
        char *jws = mk_jws(hdr, pl, cases[i].k, EVP_sha256(), SIG_EC_RAW);
        const char *sig = strrchr(jws, '.') + 1;
        uint8_t *raw = NULL;
        size_t n = 0;
        assert_int_equal(cl_b64_decode_lenient_alloc(sig, strlen(sig), &raw, &n), CL_OK);
        assert_int_equal(n, cases[i].siglen);
        cl_free(raw);
        check_signed(jws, cases[i].c, cases[i].k, "EC");
        free(jws);
        /* hashing with SHA-384 for the P-384 key under alg ES256 must not verify */
        if (i == 1) {
            jws = mk_jws(hdr, pl, cases[i].k, EVP_sha384(), SIG_EC_RAW);
            expect_fail(jws, CL_ESIG, "does not verify");
            free(jws);
        }
        free(hdr);
        cl_free(x);
    }
    /* ES384 with a P-384 key (standard pairing) */
    char *x = std64_der(cert_ec384);
    char *hdr = fmt("{\"alg\":\"ES384\",\"x5c\":[\"%s\"]}", x);
    char *jws = mk_jws(hdr, pl, ec384, EVP_sha384(), SIG_EC_RAW);
    check_signed(jws, cert_ec384, ec384, "EC");
    free(jws);
    free(hdr);
    cl_free(x);
    free(pl);
}

static void test_python_rsa256_jwk_x5c(void **state)
{
    char *x = std64_der(cert_rsa_a), *pl = policy_payload(1);
    char *hdr = fmt("{\"alg\": \"RSA256\", \"jwk\": {\"x5c\": [\"%s\"]}}", x);
    char *jws = mk_jws(hdr, pl, rsa_a, EVP_sha256(), SIG_PKCS1);
    check_signed(jws, cert_rsa_a, rsa_a, "RSA");
    free(jws);
    /* Python's certificate add body (§7.2): payload with spaces, cert to add inside */
    char *y = std64_der(cert_ec256);
    char *cpl = fmt("{\"policyCertificate\": {\"kty\": \"RSA\", \"x5c\": [\"%s\"]}}", y);
    jws = mk_jws(hdr, cpl, rsa_a, EVP_sha256(), SIG_PKCS1);
    cl_jws *j = NULL;
    char err[256];
    assert_int_equal(parse_verify(jws, &j, err, sizeof err), CL_OK);
    json_t *pc = json_object_get(cl_jws_payload_json(j), "policyCertificate");
    assert_string_equal(json_string_value(json_array_get(json_object_get(pc, "x5c"), 0)), y);
    cl_jws_free(j);
    free(jws);
    free(cpl);
    cl_free(y);
    free(hdr);
    free(pl);
    cl_free(x);
}

static void test_rs256_chain_and_spaces(void **state)
{
    char *leaf = std64_der(cert_leaf), *ca = std64_der(cert_rsa_b), *pl = policy_payload(1);
    char *hdr = fmt("{ \"alg\" : \"RS256\", \"x5c\" : [ \"%s\", \"%s\" ] }", leaf, ca);
    char *jws = mk_jws(hdr, pl, rsa_a, EVP_sha256(), SIG_PKCS1);
    check_signed(jws, cert_leaf, rsa_a, "RSA");
    free(jws);
    free(hdr);
    /* a chain entry that is not a certificate */
    hdr = fmt("{\"alg\":\"RS256\",\"x5c\":[\"%s\",\"AAAA\"]}", leaf);
    jws = mk_jws(hdr, pl, rsa_a, EVP_sha256(), SIG_PKCS1);
    expect_fail(jws, CL_EPEM, "x5c[1] is not a DER X.509 certificate");
    free(jws);
    free(hdr);
    free(pl);
    cl_free(leaf);
    cl_free(ca);
}

static void test_ps256_rs384_rs512(void **state)
{
    char *x = std64_der(cert_rsa_a), *pl = policy_payload(0);
    struct {
        const char *alg;
        const EVP_MD *md;
        enum sigmode mode;
    } cases[] = {{"PS256", EVP_sha256(), SIG_PSS},
                 {"RS384", EVP_sha384(), SIG_PKCS1},
                 {"RS512", EVP_sha512(), SIG_PKCS1}};
    for (size_t i = 0; i < 3; i++) {
        char *hdr = fmt("{\"alg\":\"%s\",\"x5c\":[\"%s\"]}", cases[i].alg, x);
        char *jws = mk_jws(hdr, pl, rsa_a, cases[i].md, cases[i].mode);
        check_signed(jws, cert_rsa_a, rsa_a, "RSA");
        free(jws);
        free(hdr);
    }
    /* PSS with a salt length other than the hash length (RFC 7518 §3.5) */
    {
        char *h = fmt("{\"alg\":\"PS256\",\"x5c\":[\"%s\"]}", x);
        char *h64 = b64u_str(h), *p64 = b64u_str(pl);
        char *input = fmt("%s.%s", h64, p64);
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        EVP_PKEY_CTX *pctx = NULL;
        assert_int_equal(EVP_DigestSignInit(ctx, &pctx, EVP_sha256(), NULL, rsa_a), 1);
        assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
        assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 20), 1);
        uint8_t sig[256];
        size_t n = sizeof sig;
        assert_int_equal(EVP_DigestSign(ctx, sig, &n, (const unsigned char *)input, strlen(input)),
                         1);
        EVP_MD_CTX_free(ctx);
        char *s64 = b64u(sig, n);
        char *jws = fmt("%s.%s", input, s64);
        expect_fail(jws, CL_ESIG, "does not verify");
        free(jws);
        cl_free(s64);
        free(input);
        cl_free(h64);
        cl_free(p64);
        free(h);
    }
    /* PKCS#1 v1.5 signature presented as PS256 and vice versa */
    char *hdr = fmt("{\"alg\":\"PS256\",\"x5c\":[\"%s\"]}", x);
    char *jws = mk_jws(hdr, pl, rsa_a, EVP_sha256(), SIG_PKCS1);
    expect_fail(jws, CL_ESIG, "does not verify");
    free(jws);
    free(hdr);
    hdr = fmt("{\"alg\":\"RS256\",\"x5c\":[\"%s\"]}", x);
    jws = mk_jws(hdr, pl, rsa_a, EVP_sha256(), SIG_PSS);
    expect_fail(jws, CL_ESIG, "does not verify");
    free(jws);
    free(hdr);
    free(pl);
    cl_free(x);
}

static void test_es256_der_signature(void **state)
{
    char *x = std64_der(cert_ec256), *pl = policy_payload(0);
    char *hdr = fmt("{\"alg\":\"ES256\",\"x5c\":[\"%s\"]}", x);
    /* several signatures: some DER encodings are exactly 64 bytes, like raw ones */
    for (int i = 0; i < 8; i++) {
        char *jws = mk_jws(hdr, pl, ec256, EVP_sha256(), SIG_EC_DER);
        check_signed(jws, cert_ec256, ec256, "EC");
        free(jws);
    }
    /* DER with trailing garbage */
    size_t n = 0;
    char *h64 = b64u_str(hdr), *p64 = b64u_str(pl);
    char *input = fmt("%s.%s", h64, p64);
    uint8_t *sig = ossl_sign(ec256, EVP_sha256(), SIG_EC_DER, input, &n);
    uint8_t *longer = malloc(n + 1);
    memcpy(longer, sig, n);
    longer[n] = 0;
    char *s64 = b64u(longer, n + 1);
    char *jws = fmt("%s.%s", input, s64);
    expect_fail(jws, CL_ESIG, "does not verify");
    free(jws);
    cl_free(s64);
    free(longer);
    free(sig);
    free(input);
    cl_free(h64);
    cl_free(p64);
    free(hdr);
    free(pl);
    cl_free(x);
}

/* n/e or x/y of a public key as base64url. */
static char *bn_b64u(EVP_PKEY *k, const char *param)
{
    BIGNUM *bn = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(k, param, &bn), 1);
    int n = BN_num_bytes(bn);
    uint8_t *buf = malloc((size_t)n + 1);
    BN_bn2bin(bn, buf);
    char *s = b64u(buf, (size_t)n);
    free(buf);
    BN_free(bn);
    return s;
}

static char *rsa_jwk(EVP_PKEY *k, const char *extra)
{
    char *n = bn_b64u(k, OSSL_PKEY_PARAM_RSA_N), *e = bn_b64u(k, OSSL_PKEY_PARAM_RSA_E);
    char *s = fmt("{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\"%s}", n, e, extra);
    cl_free(n);
    cl_free(e);
    return s;
}

static char *ec_jwk(EVP_PKEY *k, const char *crv, const char *extra)
{
    int flen = (EVP_PKEY_get_bits(k) + 7) / 8;
    BIGNUM *x = NULL, *y = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, &x), 1);
    assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, &y), 1);
    uint8_t bx[66], by[66];
    assert_int_equal(BN_bn2binpad(x, bx, flen), flen);
    assert_int_equal(BN_bn2binpad(y, by, flen), flen);
    char *sx = b64u(bx, (size_t)flen), *sy = b64u(by, (size_t)flen);
    char *s =
        fmt("{\"kty\":\"EC\",\"crv\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"%s}", crv, sx, sy, extra);
    cl_free(sx);
    cl_free(sy);
    BN_free(x);
    BN_free(y);
    return s;
}

static void test_bare_jwk(void **state)
{
    char *pl = policy_payload(0);
    char *jwk = rsa_jwk(rsa_a, "");
    char *hdr = fmt("{\"alg\":\"RS256\",\"jwk\":%s}", jwk);
    char *jws = mk_jws(hdr, pl, rsa_a, EVP_sha256(), SIG_PKCS1);
    check_signed(jws, NULL, rsa_a, "RSA");
    free(jws);
    /* signed by another key */
    jws = mk_jws(hdr, pl, rsa_b, EVP_sha256(), SIG_PKCS1);
    expect_fail(jws, CL_ESIG, "header jwk");
    free(jws);
    free(hdr);
    free(jwk);

    jwk = ec_jwk(ec384, "P-384", "");
    hdr = fmt("{\"alg\":\"ES384\",\"jwk\":%s}", jwk);
    jws = mk_jws(hdr, pl, ec384, EVP_sha384(), SIG_EC_RAW);
    check_signed(jws, NULL, ec384, "EC");
    free(jws);
    free(hdr);
    free(jwk);

    /* jwk with both x5c and n/e: they must agree */
    char *x = std64_der(cert_rsa_a);
    char *extra = fmt(",\"x5c\":[\"%s\"]", x);
    jwk = rsa_jwk(rsa_a, extra);
    hdr = fmt("{\"alg\":\"RS256\",\"jwk\":%s}", jwk);
    jws = mk_jws(hdr, pl, rsa_a, EVP_sha256(), SIG_PKCS1);
    check_signed(jws, cert_rsa_a, rsa_a, "RSA");
    free(jws);
    free(hdr);
    free(jwk);
    jwk = rsa_jwk(rsa_b, extra);
    hdr = fmt("{\"alg\":\"RS256\",\"jwk\":%s}", jwk);
    jws = mk_jws(hdr, pl, rsa_a, EVP_sha256(), SIG_PKCS1);
    expect_fail(jws, CL_EFORMAT, "does not match its x5c[0]");
    free(jws);
    free(hdr);
    free(jwk);
    free(extra);

    /* EC point off the curve */
    jwk = ec_jwk(ec256, "P-256", "");
    char *p = strstr(jwk, "\"y\":\"") + 5;
    p[3] = p[3] == 'A' ? 'B' : 'A';
    hdr = fmt("{\"alg\":\"ES256\",\"jwk\":%s}", jwk);
    jws = mk_jws(hdr, pl, ec256, EVP_sha256(), SIG_EC_RAW);
    expect_fail(jws, CL_EFORMAT, "not a valid P-256 public key");
    free(jws);
    free(hdr);
    free(jwk);
    /* unknown kty, wrong curve name */
    jws = mk_jws("{\"alg\":\"RS256\",\"jwk\":{\"kty\":\"oct\",\"k\":\"AAAA\"}}", pl, rsa_a,
                 EVP_sha256(), SIG_PKCS1);
    expect_fail(jws, CL_EUNSUPPORTED, "\"kty\" \"oct\" is not supported");
    free(jws);
    jws = mk_jws("{\"alg\":\"ES256\",\"jwk\":{\"kty\":\"EC\",\"crv\":\"secp256k1\",\"x\":\"AA\","
                 "\"y\":\"AA\"}}",
                 pl, ec256, EVP_sha256(), SIG_EC_RAW);
    expect_fail(jws, CL_EUNSUPPORTED, "P-256, P-384 or P-521");
    free(jws);
    /* an empty coordinate: refused, nothing freed twice */
    jws = mk_jws("{\"alg\":\"ES256\",\"jwk\":{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":"
                 "\"VHtjDvTVFK5C-CGtMoWg7HSOHzeINgdVkmFlS_IoJDY\",\"y\":\"\"}}",
                 pl, ec256, EVP_sha256(), SIG_EC_RAW);
    expect_fail(jws, CL_EFORMAT, "\"y\" is not non-empty base64url");
    free(jws);
    cl_free(x);
    free(pl);
}

static void test_tampering(void **state)
{
    char *x = std64_der(cert_rsa_a), *pl = policy_payload(0);
    char *hdr = fmt("{\"alg\":\"RS256\",\"x5c\":[\"%s\"]}", x);
    char *good = mk_jws(hdr, pl, rsa_a, EVP_sha256(), SIG_PKCS1);
    char *d1 = strchr(good, '.'), *d2 = strchr(d1 + 1, '.');
    expect_fail(good, CL_OK, "");

    /* payload byte: change one character of the payload segment (stays valid base64url) */
    char *t = strdup(good);
    size_t off = (size_t)(d1 - good) + 10;
    t[off] = t[off] == 'A' ? 'B' : 'A';
    expect_fail(t, CL_ESIG, "does not verify");
    /* header byte: a different header that still names the same signer */
    free(t);
    char *hdr2 = fmt("{\"alg\":\"RS256\",\"x5c\":[\"%s\"] }", x);
    char *other = mk_jws(hdr2, pl, rsa_a, EVP_sha256(), SIG_PKCS1);
    char *o1 = strchr(other, '.');
    t = fmt("%.*s%s", (int)(o1 - other), other, d1); /* header of `other`, rest of `good` */
    expect_fail(t, CL_ESIG, "does not verify");
    free(t);
    free(other);
    free(hdr2);
    /* signature byte */
    t = strdup(good);
    off = (size_t)(d2 - good) + 5;
    t[off] = t[off] == 'A' ? 'B' : 'A';
    expect_fail(t, CL_ESIG, "does not verify");
    free(t);
    /* truncated signature (one byte short, re-encoded) */
    uint8_t *sig = NULL;
    size_t siglen = 0;
    assert_int_equal(cl_b64_decode_lenient_alloc(d2 + 1, strlen(d2 + 1), &sig, &siglen), CL_OK);
    char *s64 = b64u(sig, siglen - 1);
    t = fmt("%.*s%s", (int)(d2 - good) + 1, good, s64);
    expect_fail(t, CL_ESIG, "does not verify");
    free(t);
    cl_free(s64);
    cl_free(sig);
    /* empty signature for a signed alg */
    t = fmt("%.*s", (int)(d2 - good) + 1, good);
    expect_fail(t, CL_ESIG, "empty signature segment");
    free(t);
    /* alg swapped to none: the signature must then be empty */
    char *nh = b64u_str("{\"alg\":\"none\"}");
    t = fmt("%s%s", nh, d1);
    expect_fail(t, CL_ESIG, "requires an empty signature");
    free(t);
    cl_free(nh);
    /* signed by a key other than the x5c certificate's */
    t = mk_jws(hdr, pl, rsa_b, EVP_sha256(), SIG_PKCS1);
    expect_fail(t, CL_ESIG, "signer certificate");
    free(t);
    free(good);
    free(hdr);
    free(pl);
    cl_free(x);
}

/* The signature covers the received bytes: a padded header segment verifies when it was signed
 * padded, and stripping the padding (same decoded bytes) breaks it. */
static void test_received_bytes(void **state)
{
    char *x = std64_der(cert_rsa_a), *pl = policy_payload(0);
    char *hdr = NULL;
    char *h64 = NULL;
    /* find a header whose base64 needs padding */
    for (int pad = 0; pad < 3; pad++) {
        free(hdr);
        hdr = fmt("{\"alg\":\"RS256\",\"x5c\":[\"%s\"]%.*s}", x, pad, "   ");
        if (strlen(hdr) % 3 != 0)
            break;
    }
    h64 = b64u_str(hdr);
    char *padded = fmt("%s%s", h64, strlen(hdr) % 3 == 1 ? "==" : "=");
    /* standard alphabet too, as Python's base64.b64encode would give */
    for (char *c = padded; *c; c++)
        *c = *c == '-' ? '+' : *c == '_' ? '/' : *c;
    char *p64 = b64u_str(pl);
    char *input = fmt("%s.%s", padded, p64);
    size_t n = 0;
    uint8_t *sig = ossl_sign(rsa_a, EVP_sha256(), SIG_PKCS1, input, &n);
    char *s64 = b64u(sig, n);
    char *jws = fmt("%s.%s", input, s64);
    check_signed(jws, cert_rsa_a, rsa_a, "RSA");
    char *stripped = fmt("%s.%s.%s", h64, p64, s64);
    expect_fail(stripped, CL_ESIG, "does not verify");
    free(stripped);
    free(jws);
    cl_free(s64);
    free(sig);
    free(input);
    cl_free(p64);
    free(padded);
    cl_free(h64);
    free(hdr);
    free(pl);
    cl_free(x);
}

static void test_algs_and_signers_rejected(void **state)
{
    char *x = std64_der(cert_rsa_a), *pl = policy_payload(0);
    /* Python's EC alg name, HMAC, unknown, lower case */
    const char *bad[] = {"ECDH256", "HS256", "EdDSA", "rs256", "RS256 ", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *hdr = fmt("{\"alg\":\"%s\",\"x5c\":[\"%s\"]}", bad[i], x);
        char *jws = mk_jws(hdr, pl, rsa_a, EVP_sha256(), SIG_PKCS1);
        expect_fail(jws, CL_EUNSUPPORTED, "is not supported");
        free(jws);
        free(hdr);
    }
    /* no signer */
    char *jws = mk_jws("{\"alg\":\"RS256\"}", pl, rsa_a, EVP_sha256(), SIG_PKCS1);
    expect_fail(jws, CL_EFORMAT, "neither x5c nor jwk");
    free(jws);
    /* malformed x5c */
    const char *bad_x5c[][2] = {{"[]", "non-empty array"},
                                {"\"abc\"", "non-empty array"},
                                {"[1]", "is not a string"},
                                {"[\"!!!\"]", "not valid base64"},
                                {"[\"AAAA\"]", "not a DER X.509 certificate"}};
    for (size_t i = 0; i < 5; i++) {
        char *hdr = fmt("{\"alg\":\"RS256\",\"x5c\":%s}", bad_x5c[i][0]);
        jws = mk_jws(hdr, pl, rsa_a, EVP_sha256(), SIG_PKCS1);
        char err[256] = "";
        int rc = parse_verify(jws, NULL, err, sizeof err);
        assert_true(rc == CL_EFORMAT || rc == CL_EPEM);
        if (strstr(err, bad_x5c[i][1]) == NULL)
            fail_msg("x5c %s: \"%s\"", bad_x5c[i][0], err);
        free(jws);
        free(hdr);
    }
    jws = mk_jws("{\"alg\":\"RS256\",\"jwk\":\"x\"}", pl, rsa_a, EVP_sha256(), SIG_PKCS1);
    expect_fail(jws, CL_EFORMAT, "jwk is not an object");
    free(jws);
    /* key type does not fit the alg */
    char *y = std64_der(cert_ec256);
    char *hdr = fmt("{\"alg\":\"RS256\",\"x5c\":[\"%s\"]}", y);
    jws = mk_jws(hdr, pl, ec256, EVP_sha256(), SIG_EC_RAW);
    expect_fail(jws, CL_EUNSUPPORTED, "needs an RSA key");
    free(jws);
    free(hdr);
    hdr = fmt("{\"alg\":\"ES256\",\"x5c\":[\"%s\"]}", x);
    jws = mk_jws(hdr, pl, rsa_a, EVP_sha256(), SIG_PKCS1);
    expect_fail(jws, CL_EUNSUPPORTED, "needs an EC key");
    free(jws);
    free(hdr);
    /* RSA-1024 */
    char *s = std64_der(cert_small);
    hdr = fmt("{\"alg\":\"RS256\",\"x5c\":[\"%s\"]}", s);
    jws = mk_jws(hdr, pl, rsa_small, EVP_sha256(), SIG_PKCS1);
    expect_fail(jws, CL_EUNSUPPORTED, "1024 bits is too small");
    free(jws);
    free(hdr);
    /* a huge inline RSA key is refused before any expensive check */
    uint8_t bign[1100];
    memset(bign, 0xff, sizeof bign);
    char *bn64 = b64u(bign, sizeof bign);
    hdr = fmt("{\"alg\":\"RS256\",\"jwk\":{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\"}}", bn64);
    jws = mk_jws(hdr, pl, rsa_a, EVP_sha256(), SIG_PKCS1);
    expect_fail(jws, CL_EUNSUPPORTED, "RSA key is too large (n of 1100 bytes");
    free(jws);
    free(hdr);
    cl_free(bn64);
    /* crit */
    hdr = fmt("{\"alg\":\"RS256\",\"crit\":[\"exp\"],\"exp\":1,\"x5c\":[\"%s\"]}", x);
    jws = mk_jws(hdr, pl, rsa_a, EVP_sha256(), SIG_PKCS1);
    expect_fail(jws, CL_EUNSUPPORTED, "crit");
    free(jws);
    free(hdr);
    /* ES256 raw signature of the wrong length */
    hdr = fmt("{\"alg\":\"ES256\",\"x5c\":[\"%s\"]}", y);
    char *h64 = b64u_str(hdr), *p64 = b64u_str(pl);
    uint8_t junk[63] = {1};
    char *j64 = b64u(junk, sizeof junk);
    jws = fmt("%s.%s.%s", h64, p64, j64);
    expect_fail(jws, CL_ESIG, "does not verify");
    free(jws);
    cl_free(j64);
    cl_free(h64);
    cl_free(p64);
    free(hdr);
    cl_free(s);
    cl_free(y);
    cl_free(x);
    free(pl);
}

static void test_parse_errors(void **state)
{
    expect_fail("eyJhbGciOiJub25lIn0.e30", CL_EFORMAT, "exactly 3 '.'-separated segments, found 2");
    expect_fail("eyJhbGciOiJub25lIn0", CL_EFORMAT, "found 1");
    expect_fail("eyJhbGciOiJub25lIn0.e30..", CL_EFORMAT, "found 4");
    expect_fail("", CL_EFORMAT, "found 1");
    expect_fail("..", CL_EFORMAT, "header segment is empty");
    expect_fail("eyJhbGciOiJub25lIn0!.e30.", CL_EFORMAT,
                "header segment (20 characters) is not valid base64url");
    expect_fail("eyJhbGciOiJub25lIn0.e30*.", CL_EFORMAT, "payload segment");
    expect_fail("eyJhbGciOiJub25lIn0.e30.A", CL_EFORMAT, "signature segment");
    expect_fail("eyJhbGciOiJub25lIn0.e 30.", CL_EFORMAT, "payload segment");
    /* header not JSON / not an object / no alg / alg not a string / duplicate keys */
    char *h;
    char *t;
    struct {
        const char *hdr;
        const char *msg;
    } cases[] = {{"[1]", "not a JSON object"},
                 {"{\"alg\":\"none\"", "not valid JSON"},
                 {"{}", "no \"alg\" member"},
                 {"{\"alg\":1}", "\"alg\" is not a string"},
                 {"{\"alg\":\"none\",\"alg\":\"RS256\"}", "duplicate"},
                 {"{\"alg\":\"none\"} x", "not valid JSON"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        h = b64u_str(cases[i].hdr);
        t = fmt("%s.e30.", h);
        expect_fail(t, CL_EJSON, cases[i].msg);
        free(t);
        cl_free(h);
    }
    /* oversize */
    size_t big = CL_JWS_MAX_LEN + 1;
    char *b = malloc(big + 1);
    memset(b, 'A', big);
    b[big] = 0;
    b[10] = '.';
    b[20] = '.';
    expect_fail(b, CL_EOVERFLOW, "exceeds the limit");
    free(b);
    /* NUL inside the text */
    cl_jws *j = NULL;
    char err[200];
    assert_int_equal(cl_jws_parse("eyJhbGciOiJub25lIn0.e30\0.", 25, &j, err, sizeof err),
                     CL_EFORMAT);
}

/* ---- our tokens (§5.1, §5.5, §5.6) ------------------------------------------------------------
 */

static char *seg_decode(const char *s, size_t n)
{
    uint8_t *out = NULL;
    size_t len = 0;
    assert_int_equal(cl_b64_decode_lenient_alloc(s, n, &out, &len), CL_OK);
    char *z = malloc(len + 1);
    memcpy(z, out, len);
    z[len] = 0;
    cl_free(out);
    return z;
}

static void test_signing_key_and_kid(void **state)
{
    EVP_PKEY *k = NULL;
    X509 *c = NULL;
    int64_t now = 1750000000;
    assert_int_equal(cl_jws_signing_key_generate(&k, &c, "cledger attestation", now), CL_OK);
    assert_true(EVP_PKEY_is_a(k, "RSA"));
    assert_int_equal(EVP_PKEY_get_bits(k), 2048);
    assert_int_equal(X509_get_version(c), X509_VERSION_3);
    /* positive serial */
    BIGNUM *sn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(c), NULL);
    assert_false(BN_is_negative(sn));
    assert_false(BN_is_zero(sn));
    BN_free(sn);
    /* self-signed by its key, validity from now */
    assert_int_equal(X509_verify(c, k), 1);
    assert_int_equal(X509_NAME_cmp(X509_get_subject_name(c), X509_get_issuer_name(c)), 0);
    assert_int_equal(EVP_PKEY_eq(X509_get0_pubkey(c), k), 1);
    int day = 0, sec = 0;
    ASN1_TIME *t0 = ASN1_TIME_set(NULL, (time_t)now);
    assert_int_equal(ASN1_TIME_diff(&day, &sec, t0, X509_get0_notBefore(c)), 1);
    assert_int_equal(day, 0);
    assert_int_equal(sec, 0);
    assert_int_equal(ASN1_TIME_diff(&day, &sec, t0, X509_get0_notAfter(c)), 1);
    assert_int_equal(day, CL_JWS_SIGNING_CERT_DAYS);
    ASN1_TIME_free(t0);
    assert_true(X509_get_extension_flags(c) & EXFLAG_BCONS);
    assert_false(X509_check_ca(c));
    /* two keys get different serials */
    EVP_PKEY *k2 = NULL;
    X509 *c2 = NULL;
    assert_int_equal(cl_jws_signing_key_generate(&k2, &c2, "x", now), CL_OK);
    assert_int_not_equal(ASN1_INTEGER_cmp(X509_get0_serialNumber(c), X509_get0_serialNumber(c2)),
                         0);
    /* kid: base64(SHA-256(DER)), computed independently with X509_digest + EVP_EncodeBlock */
    char kid[64];
    assert_int_equal(cl_jws_kid(c, kid), CL_OK);
    assert_int_equal(strlen(kid), CL_JWS_KID_LEN);
    unsigned char md[32];
    unsigned int mdlen = 0;
    assert_int_equal(X509_digest(c, EVP_sha256(), md, &mdlen), 1);
    unsigned char enc[64];
    assert_int_equal(EVP_EncodeBlock(enc, md, 32), 44);
    assert_string_equal(kid, (char *)enc);
    /* bad arguments */
    EVP_PKEY *k3 = NULL;
    X509 *c3 = NULL;
    assert_int_equal(cl_jws_signing_key_generate(&k3, &c3, "", now), CL_EINVAL);
    assert_int_equal(cl_jws_signing_key_generate(&k3, &c3, "x", -1), CL_EINVAL);
    char longcn[80];
    memset(longcn, 'a', sizeof longcn - 1);
    longcn[sizeof longcn - 1] = 0;
    assert_int_equal(cl_jws_signing_key_generate(&k3, &c3, longcn, now), CL_EINVAL);
    EVP_PKEY_free(k2);
    X509_free(c2);
    EVP_PKEY_free(k);
    X509_free(c);
}

static void test_jwt_sign(void **state)
{
    EVP_PKEY *k = NULL;
    X509 *c = NULL;
    assert_int_equal(cl_jws_signing_key_generate(&k, &c, "attest", 1750000000), CL_OK);
    char kid[64];
    assert_int_equal(cl_jws_kid(c, kid), CL_OK);
    json_t *payload = json_pack("{s:s,s:i,s:s,s:[i,i],s:{s:b,s:s}}", "x-ms-ver", "1.0", "iat",
                                1750000000, "iss", "https://127.0.0.1:8443", "b", 2, 1, "a", "z", 0,
                                "y", "caf\xc3\xa9 \xf0\x9f\x98\x80 </>");
    char *tok = NULL;
    assert_int_equal(cl_jwt_sign(k, kid, "https://127.0.0.1:8443/certs", payload, &tok), CL_OK);
    /* three segments, unpadded base64url only */
    char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
    assert_non_null(d2);
    assert_null(strchr(d2 + 1, '.'));
    assert_int_equal(
        strspn(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."),
        strlen(tok));
    char *hdr = seg_decode(tok, (size_t)(d1 - tok));
    char *want = fmt("{\"alg\":\"RS256\",\"jku\":\"https://127.0.0.1:8443/certs\",\"kid\":\"%s\","
                     "\"typ\":\"JWT\"}",
                     kid);
    assert_string_equal(hdr, want);
    free(want);
    free(hdr);
    char *body = seg_decode(d1 + 1, (size_t)(d2 - d1 - 1));
    assert_string_equal(body, "{\"a\":{\"y\":\"caf\\u00E9 \\uD83D\\uDE00 </>\",\"z\":false},"
                              "\"b\":[2,1],\"iat\":1750000000,\"iss\":\"https://127.0.0.1:8443\","
                              "\"x-ms-ver\":\"1.0\"}");
    free(body);
    /* verify with OpenSSL directly: RSASSA-PKCS1-v1_5 SHA-256 over seg1.seg2 */
    uint8_t *sig = NULL;
    size_t siglen = 0;
    assert_int_equal(cl_b64_decode_lenient_alloc(d2 + 1, strlen(d2 + 1), &sig, &siglen), CL_OK);
    assert_int_equal(siglen, 256);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, X509_get0_pubkey(c)), 1);
    assert_int_equal(
        EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)tok, (size_t)(d2 - tok)), 1);
    EVP_MD_CTX_free(ctx);
    cl_free(sig);

    /* and through the /certs entry, as a client would (cl_jwt_validate with a JWKS of it) */
    json_t *entry = NULL;
    assert_int_equal(cl_jwks_entry(c, k, &entry), CL_OK);
    char *et = json_dumps(entry, JSON_COMPACT);
    assert_non_null(strstr(et, "{\"kid\":\""));
    assert_non_null(strstr(et, "\",\"kty\":\"RSA\",\"x5c\":[\""));
    assert_non_null(strstr(et, "\"],\"alg\":\"RS256\",\"use\":\"sig\",\"n\":\""));
    assert_non_null(strstr(et, "\",\"e\":\"AQAB\"}"));
    cl_free(et);
    assert_string_equal(json_string_value(json_object_get(entry, "kid")), kid);
    char *x = std64_der(c);
    assert_string_equal(json_string_value(json_array_get(json_object_get(entry, "x5c"), 0)), x);
    cl_free(x);
    char *n = bn_b64u(k, OSSL_PKEY_PARAM_RSA_N);
    assert_string_equal(json_string_value(json_object_get(entry, "n")), n);
    cl_free(n);
    json_t *set = json_pack("{s:[O]}", "keys", entry);
    char *st = json_dumps(set, JSON_COMPACT);
    cl_jwks *ks = NULL;
    char err[256];
    assert_int_equal(cl_jwks_parse(st, strlen(st), &ks, err, sizeof err), CL_OK);
    json_t *claims = NULL;
    json_object_set_new(payload, "aud", json_string("me"));
    json_object_set_new(payload, "exp", json_integer(1750003600));
    char *tok2 = NULL;
    assert_int_equal(cl_jwt_sign(k, kid, "https://127.0.0.1:8443/certs", payload, &tok2), CL_OK);
    assert_int_equal(cl_jwt_validate(tok2, strlen(tok2), ks, "https://127.0.0.1:8443", "me",
                                     1750000100, 0, &claims, err, sizeof err),
                     CL_OK);
    assert_true(json_equal(claims, payload));
    json_decref(claims);
    /* and as a JWS with the key given in the header x5c (the JS client's fallback) */
    cl_jws *j = NULL;
    assert_int_equal(cl_jws_parse(tok, strlen(tok), &j, err, sizeof err), CL_OK);
    assert_int_equal(cl_jws_verify(j, err, sizeof err), CL_EFORMAT); /* no x5c in our header */
    cl_jws_free(j);
    /* entry for a key that is not the certificate's */
    json_t *e2 = NULL;
    assert_int_equal(cl_jwks_entry(c, rsa_a, &e2), CL_EINVAL);
    assert_int_equal(cl_jwks_entry(cert_ec256, NULL, &e2), CL_EKEYTYPE);
    /* signing with an EC or small key is refused */
    char *t3 = NULL;
    assert_int_equal(cl_jwt_sign(ec256, kid, "j", payload, &t3), CL_EKEYTYPE);
    assert_int_equal(cl_jwt_sign(rsa_small, kid, "j", payload, &t3), CL_EKEYTYPE);
    assert_int_equal(cl_jwt_sign(k, NULL, "j", payload, &t3), CL_EINVAL);

    cl_free(tok2);
    cl_free(st);
    json_decref(set);
    cl_jwks_free(ks);
    json_decref(entry);
    cl_free(tok);
    json_decref(payload);
    EVP_PKEY_free(k);
    X509_free(c);
}

static void test_jwt_unsigned(void **state)
{
    json_t *payload =
        json_pack("{s:s}", "x-ms-policy-hash", "z0FRjKS0ssQTNur1V6BV8WIrh9M3fzgTo0EfHRvapWU");
    char *tok = NULL;
    assert_int_equal(cl_jwt_unsigned("KID", "https://h/certs", payload, &tok), CL_OK);
    size_t n = strlen(tok);
    assert_true(n > 0 && tok[n - 1] == '.');
    char *d1 = strchr(tok, '.');
    char *hdr = seg_decode(tok, (size_t)(d1 - tok));
    assert_string_equal(hdr, "{\"alg\":\"none\",\"jku\":\"https://h/certs\",\"kid\":\"KID\","
                             "\"typ\":\"JWT\"}");
    free(hdr);
    cl_jws *j = NULL;
    char err[200];
    assert_int_equal(parse_verify(tok, &j, err, sizeof err), CL_OK);
    assert_int_equal(cl_jws_is_signed(j), 0);
    assert_true(json_equal(cl_jws_payload_json(j), payload));
    cl_jws_free(j);
    /* payload must be an object */
    json_t *arr = json_array();
    char *t2 = NULL;
    assert_int_equal(cl_jwt_unsigned("KID", "j", arr, &t2), CL_EINVAL);
    json_decref(arr);
    cl_free(tok);
    json_decref(payload);
}

static void test_sign_input_roundtrip(void **state)
{
    /* cl_jws_sign_input produces what the verifier (and OpenSSL) accepts, raw r||s for EC */
    struct {
        EVP_PKEY *k;
        X509 *c;
        const char *alg;
        size_t siglen;
    } cases[] = {{rsa_a, cert_rsa_a, "RS256", 256}, {rsa_a, cert_rsa_a, "RSA256", 256},
                 {rsa_a, cert_rsa_a, "PS256", 256}, {rsa_a, cert_rsa_a, "RS512", 256},
                 {ec256, cert_ec256, "ES256", 64},  {ec384, cert_ec384, "ES256", 96},
                 {ec384, cert_ec384, "ES384", 96}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *x = std64_der(cases[i].c);
        char *hdr = fmt("{\"alg\":\"%s\",\"x5c\":[\"%s\"]}", cases[i].alg, x);
        char *h64 = b64u_str(hdr), *p64 = b64u_str("{}");
        char *input = fmt("%s.%s", h64, p64);
        uint8_t *sig = NULL;
        size_t siglen = 0;
        assert_int_equal(
            cl_jws_sign_input(cases[i].k, cases[i].alg, input, strlen(input), &sig, &siglen),
            CL_OK);
        assert_int_equal(siglen, cases[i].siglen);
        char *s64 = b64u(sig, siglen);
        char *jws = fmt("%s.%s", input, s64);
        check_signed(jws, cases[i].c, cases[i].k, EVP_PKEY_is_a(cases[i].k, "EC") ? "EC" : "RSA");
        free(jws);
        cl_free(s64);
        cl_free(sig);
        free(input);
        cl_free(h64);
        cl_free(p64);
        free(hdr);
        cl_free(x);
    }
    uint8_t *sig = NULL;
    size_t siglen = 0;
    assert_int_equal(cl_jws_sign_input(rsa_a, "ES256", "a.b", 3, &sig, &siglen), CL_EUNSUPPORTED);
    assert_int_equal(cl_jws_sign_input(rsa_a, "HS256", "a.b", 3, &sig, &siglen), CL_EUNSUPPORTED);
    assert_int_equal(cl_jws_sign_input(ec256, "RS256", "a.b", 3, &sig, &siglen), CL_EUNSUPPORTED);
}

/* ---- administrators' bearer JWTs (§8) ---------------------------------------------------------
 */

#define NOW 1750000000
#define ISS "https://login.example/tenant/v2.0"
#define AUD "https://attest.azure.net"

static cl_jwks *admin_jwks(void)
{
    char *r = rsa_jwk(rsa_a, ",\"kid\":\"rsa-1\",\"use\":\"sig\"");
    char *e = ec_jwk(ec256, "P-256", ",\"kid\":\"ec-1\"");
    char *e3 = ec_jwk(ec384, "P-384", ",\"kid\":\"ec-384\"");
    char *x = std64_der(cert_rsa_b);
    char *doc =
        fmt("{\"keys\":[%s,%s,%s,"
            "{\"kty\":\"RSA\",\"kid\":\"x5c-only\",\"x5c\":[\"%s\"]},"
            "{\"kty\":\"RSA\",\"kid\":\"enc\",\"use\":\"enc\",\"n\":\"AQAB\",\"e\":\"AQAB\"},"
            "{\"kty\":\"oct\",\"kid\":\"hmac\",\"k\":\"c2VjcmV0\"}]}",
            r, e, e3, x);
    cl_jwks *ks = NULL;
    char err[256] = "";
    int rc = cl_jwks_parse(doc, strlen(doc), &ks, err, sizeof err);
    if (rc != CL_OK)
        fail_msg("jwks: %s", err);
    assert_int_equal(cl_jwks_count(ks), 4);
    free(doc);
    cl_free(x);
    free(r);
    free(e);
    free(e3);
    return ks;
}

static char *claims_text(const char *iss, const char *aud_json, long long exp, long long nbf)
{
    return fmt("{\"aud\":%s,\"exp\":%lld,\"iat\":%lld,\"iss\":\"%s\",\"nbf\":%lld,"
               "\"roles\":[\"Attestation.Write\"]}",
               aud_json, exp, nbf, iss, nbf);
}

static void expect_jwt(const cl_jwks *ks, const char *tok, int code, const char *msg_part)
{
    char err[256] = "";
    json_t *claims = NULL;
    int rc = cl_jwt_validate(tok, strlen(tok), ks, ISS, AUD, NOW, 0, &claims, err, sizeof err);
    if (rc != code || strstr(err, msg_part) == NULL)
        fail_msg("expected %s containing \"%s\", got %s: \"%s\"", cl_errname(code), msg_part,
                 cl_errname(rc), err);
    if (rc == CL_OK) {
        assert_non_null(claims);
        assert_string_equal(json_string_value(json_object_get(claims, "iss")), ISS);
        json_decref(claims);
    } else {
        assert_null(claims);
    }
}

static void test_admin_jwt(void **state)
{
    cl_jwks *ks = admin_jwks();
    char *good = claims_text(ISS, "\"" AUD "\"", NOW + 3600, NOW - 10);
    char *t;
#define TOK(hdr, claims, key, md, mode) (t = mk_jws(hdr, claims, key, md, mode))
    TOK("{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"typ\":\"JWT\"}", good, rsa_a, EVP_sha256(),
        SIG_PKCS1);
    expect_jwt(ks, t, CL_OK, "");
    free(t);
    TOK("{\"alg\":\"RS384\",\"kid\":\"rsa-1\"}", good, rsa_a, EVP_sha384(), SIG_PKCS1);
    expect_jwt(ks, t, CL_OK, "");
    free(t);
    TOK("{\"alg\":\"PS256\",\"kid\":\"rsa-1\"}", good, rsa_a, EVP_sha256(), SIG_PSS);
    expect_jwt(ks, t, CL_OK, "");
    free(t);
    TOK("{\"alg\":\"ES256\",\"kid\":\"ec-1\"}", good, ec256, EVP_sha256(), SIG_EC_RAW);
    expect_jwt(ks, t, CL_OK, "");
    free(t);
    TOK("{\"alg\":\"ES384\",\"kid\":\"ec-384\"}", good, ec384, EVP_sha384(), SIG_EC_RAW);
    expect_jwt(ks, t, CL_OK, "");
    free(t);
    TOK("{\"alg\":\"RS256\",\"kid\":\"x5c-only\"}", good, rsa_b, EVP_sha256(), SIG_PKCS1);
    expect_jwt(ks, t, CL_OK, "");
    free(t);
    /* aud as an array */
    char *c2 = claims_text(ISS, "[\"other\",\"" AUD "\"]", NOW + 3600, NOW);
    TOK("{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}", c2, rsa_a, EVP_sha256(), SIG_PKCS1);
    expect_jwt(ks, t, CL_OK, "");
    free(t);
    free(c2);

    /* wrong iss, wrong aud, expired, not yet valid */
    c2 = claims_text("https://evil.example/", "\"" AUD "\"", NOW + 3600, NOW);
    TOK("{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}", c2, rsa_a, EVP_sha256(), SIG_PKCS1);
    expect_jwt(ks, t, CL_EINVAL, "is not the configured issuer");
    free(t);
    free(c2);
    c2 = claims_text(ISS "/", "\"" AUD "\"", NOW + 3600, NOW); /* exact match only */
    TOK("{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}", c2, rsa_a, EVP_sha256(), SIG_PKCS1);
    expect_jwt(ks, t, CL_EINVAL, "is not the configured issuer");
    free(t);
    free(c2);
    c2 = claims_text(ISS, "[\"other\"]", NOW + 3600, NOW);
    TOK("{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}", c2, rsa_a, EVP_sha256(), SIG_PKCS1);
    expect_jwt(ks, t, CL_EINVAL, "audience does not include");
    free(t);
    free(c2);
    c2 = claims_text(ISS, "\"" AUD "\"", NOW, NOW - 3600); /* exp == now: expired */
    TOK("{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}", c2, rsa_a, EVP_sha256(), SIG_PKCS1);
    expect_jwt(ks, t, CL_EEXPIRED, "expired at 1750000000");
    /* ... but accepted with leeway */
    char err[256];
    assert_int_equal(cl_jwt_validate(t, strlen(t), ks, ISS, AUD, NOW, 30, NULL, err, sizeof err),
                     CL_OK);
    free(t);
    free(c2);
    c2 = claims_text(ISS, "\"" AUD "\"", NOW + 7200, NOW + 60);
    TOK("{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}", c2, rsa_a, EVP_sha256(), SIG_PKCS1);
    expect_jwt(ks, t, CL_EEXPIRED, "not valid before");
    assert_int_equal(cl_jwt_validate(t, strlen(t), ks, ISS, AUD, NOW, 60, NULL, err, sizeof err),
                     CL_OK);
    free(t);
    free(c2);
    TOK("{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}",
        "{\"aud\":\"" AUD "\",\"exp\":1750003600,\"iat\":1750000500,\"iss\":\"" ISS "\"}", rsa_a,
        EVP_sha256(), SIG_PKCS1);
    expect_jwt(ks, t, CL_EINVAL, "issued in the future");
    free(t);
    TOK("{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}", "{\"aud\":\"" AUD "\",\"iss\":\"" ISS "\"}", rsa_a,
        EVP_sha256(), SIG_PKCS1);
    expect_jwt(ks, t, CL_EINVAL, "no exp claim");
    free(t);
    TOK("{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}",
        "{\"aud\":\"" AUD "\",\"exp\":\"soon\",\"iss\":\"" ISS "\"}", rsa_a, EVP_sha256(),
        SIG_PKCS1);
    expect_jwt(ks, t, CL_EINVAL, "exp claim is not a number");
    free(t);
    TOK("{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}", "[1]", rsa_a, EVP_sha256(), SIG_PKCS1);
    expect_jwt(ks, t, CL_EJSON, "not a JSON object");
    free(t);

    /* key selection */
    TOK("{\"alg\":\"RS256\",\"kid\":\"nope\"}", good, rsa_a, EVP_sha256(), SIG_PKCS1);
    expect_jwt(ks, t, CL_ENOENT, "no JWKS key has the bearer token's kid \"nope\"");
    free(t);
    TOK("{\"alg\":\"RS256\",\"kid\":\"enc\"}", good, rsa_a, EVP_sha256(), SIG_PKCS1);
    expect_jwt(ks, t, CL_ENOENT, "no JWKS key"); /* the encryption key was skipped */
    free(t);
    TOK("{\"alg\":\"RS256\"}", good, rsa_a, EVP_sha256(), SIG_PKCS1);
    expect_jwt(ks, t, CL_ENOENT, "has no kid and the JWKS holds 4 keys");
    free(t);
    /* signature by another key under a known kid, and a key smuggled into the header */
    char *x = std64_der(cert_rsa_b);
    char *hdr = fmt("{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"x5c\":[\"%s\"]}", x);
    TOK(hdr, good, rsa_b, EVP_sha256(), SIG_PKCS1);
    expect_jwt(ks, t, CL_ESIG, "does not verify");
    free(t);
    free(hdr);
    cl_free(x);
    /* alg none, HS256 (with the RSA modulus as "secret" or anything), Python alias, ES512 */
    char *h64 = b64u_str("{\"alg\":\"none\",\"kid\":\"rsa-1\"}"), *p64 = b64u_str(good);
    t = fmt("%s.%s.", h64, p64);
    expect_jwt(ks, t, CL_EUNSUPPORTED, "alg \"none\" is not accepted");
    free(t);
    cl_free(h64);
    h64 = b64u_str("{\"alg\":\"HS256\",\"kid\":\"hmac\"}");
    t = fmt("%s.%s.c2lnbmF0dXJl", h64, p64);
    expect_jwt(ks, t, CL_EUNSUPPORTED, "alg \"HS256\" is not accepted");
    free(t);
    cl_free(h64);
    cl_free(p64);
    TOK("{\"alg\":\"RSA256\",\"kid\":\"rsa-1\"}", good, rsa_a, EVP_sha256(), SIG_PKCS1);
    expect_jwt(ks, t, CL_EUNSUPPORTED, "not accepted");
    free(t);
    /* alg / key mismatches: ES256 on the P-384 key (lenient for policies, not here), RS256 on EC */
    TOK("{\"alg\":\"ES256\",\"kid\":\"ec-384\"}", good, ec384, EVP_sha256(), SIG_EC_RAW);
    expect_jwt(ks, t, CL_EUNSUPPORTED, "does not match the key's curve");
    free(t);
    TOK("{\"alg\":\"RS256\",\"kid\":\"ec-1\"}", good, rsa_a, EVP_sha256(), SIG_PKCS1);
    expect_jwt(ks, t, CL_EUNSUPPORTED, "needs an RSA key");
    free(t);
    /* DER ECDSA is not JOSE: rejected for bearer tokens */
    TOK("{\"alg\":\"ES256\",\"kid\":\"ec-1\"}", good, ec256, EVP_sha256(), SIG_EC_DER);
    expect_jwt(ks, t, CL_ESIG, "does not verify");
    free(t);
    /* malformed token */
    expect_jwt(ks, "abc", CL_EFORMAT, "bearer token: JWS compact serialisation");
    cl_jwks_free(ks);

    /* one-key JWKS: a token without kid uses it; a key restricted to another alg is not used */
    char *r = rsa_jwk(rsa_a, ",\"alg\":\"RS256\"");
    char *doc = fmt("{\"keys\":[%s]}", r);
    assert_int_equal(cl_jwks_parse(doc, strlen(doc), &ks, err, sizeof err), CL_OK);
    TOK("{\"alg\":\"RS256\"}", good, rsa_a, EVP_sha256(), SIG_PKCS1);
    expect_jwt(ks, t, CL_OK, "");
    free(t);
    TOK("{\"alg\":\"PS256\"}", good, rsa_a, EVP_sha256(), SIG_PSS);
    expect_jwt(ks, t, CL_EUNSUPPORTED, "restricted to alg RS256");
    free(t);
    cl_jwks_free(ks);
    free(doc);
    free(r);
    free(good);
#undef TOK
}

static void test_jwks_errors(void **state)
{
    struct {
        const char *doc;
        int code;
        const char *msg;
    } cases[] = {
        {"{", CL_EJSON, "not valid JSON"},
        {"{\"keys\":{}}", CL_EJSON, "no \"keys\" array"},
        {"{\"keys\":[]}", CL_ENOENT, "no usable signature key"},
        {"{\"keys\":[{\"kty\":\"oct\",\"k\":\"AA\"}]}", CL_ENOENT, "no usable"},
        {"{\"keys\":[1]}", CL_EJSON, "keys[0] is not an object"},
        {"{\"keys\":[{\"n\":\"AQAB\"}]}", CL_EJSON, "keys[0] has no \"kty\""},
        {"{\"keys\":[{\"kty\":\"RSA\",\"e\":\"AQAB\"}]}", CL_EFORMAT, "keys[0] has no \"n\""},
        {"{\"keys\":[{\"kty\":\"RSA\",\"n\":\"!\",\"e\":\"AQAB\"}]}", CL_EFORMAT,
         "\"n\" is not non-empty base64url"},
        /* empty members (once freed twice: found by fuzz_jws) */
        {"{\"keys\":[{\"kty\":\"RSA\",\"n\":\"\",\"e\":\"AQAB\"}]}", CL_EFORMAT,
         "\"n\" is not non-empty base64url"},
        {"{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"\"}]}", CL_EFORMAT,
         "\"e\" is not non-empty base64url"},
        {"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"\",\"y\":\"AQAB\"}]}", CL_EFORMAT,
         "\"x\" is not non-empty base64url"},
        {"{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}", CL_EFORMAT,
         "not a valid RSA public key"},
        {"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AQAB\",\"y\":\"AQAB\"}]}",
         CL_EFORMAT, "must be 32 bytes"},
        {"{\"keys\":[{\"kty\":\"RSA\",\"kid\":7,\"n\":\"AQAB\",\"e\":\"AQAB\"}]}", CL_EJSON,
         "\"kid\" is not a string"},
        {"{\"keys\":[{\"kty\":\"RSA\",\"x5c\":[\"AAAA\"]}]}", CL_EPEM,
         "keys[0].x5c[0] is not a DER X.509 certificate"},
        {"{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"a\",\"kid\":\"b\"}]}", CL_EJSON, "duplicate"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cl_jwks *ks = NULL;
        char err[256] = "";
        int rc = cl_jwks_parse(cases[i].doc, strlen(cases[i].doc), &ks, err, sizeof err);
        if (rc != cases[i].code || strstr(err, cases[i].msg) == NULL)
            fail_msg("%s: expected %s \"%s\", got %s \"%s\"", cases[i].doc,
                     cl_errname(cases[i].code), cases[i].msg, cl_errname(rc), err);
        assert_null(ks);
    }
    /* kty that contradicts the x5c certificate; RSA key below 2048 bits */
    char *x = std64_der(cert_ec256);
    char *doc = fmt("{\"keys\":[{\"kty\":\"RSA\",\"x5c\":[\"%s\"]}]}", x);
    cl_jwks *ks = NULL;
    char err[256];
    assert_int_equal(cl_jwks_parse(doc, strlen(doc), &ks, err, sizeof err), CL_EFORMAT);
    assert_non_null(strstr(err, "does not match its x5c key"));
    free(doc);
    cl_free(x);
    char *r = rsa_jwk(rsa_small, "");
    doc = fmt("{\"keys\":[%s]}", r);
    assert_int_equal(cl_jwks_parse(doc, strlen(doc), &ks, err, sizeof err), CL_EUNSUPPORTED);
    assert_non_null(strstr(err, "1024 bits is too small"));
    free(doc);
    free(r);
}

/* Every allocation failure in parse + verify + signer claim and in token signing is reported
 * as CL_ENOMEM without a leak or crash (ASan build). */
static void test_alloc_failures(void **state)
{
    char *x = std64_der(cert_ec256), *pl = policy_payload(0);
    char *hdr = fmt("{\"alg\":\"ES256\",\"x5c\":[\"%s\"]}", x);
    char *jws = mk_jws(hdr, pl, ec256, EVP_sha256(), SIG_EC_RAW);
    int saw_ok = 0;
    for (long n = 0; n < 200 && !saw_ok; n++) {
        cl_alloc_fail_after(n);
        cl_jws *j = NULL;
        char err[200];
        int rc = cl_jws_parse(jws, strlen(jws), &j, err, sizeof err);
        if (rc == CL_OK)
            rc = cl_jws_verify(j, err, sizeof err);
        json_t *sj = NULL;
        if (rc == CL_OK)
            rc = cl_jws_signer_jwk(j, &sj);
        cl_alloc_fail_after(-1);
        if (rc == CL_OK) {
            saw_ok = 1;
            json_decref(sj);
        } else if (rc != CL_ENOMEM) {
            fail_msg("allocation failure %ld gave %s: %s", n, cl_errname(rc), err);
        }
        cl_jws_free(j);
    }
    assert_true(saw_ok);
    json_t *payload = json_pack("{s:s}", "a", "b");
    saw_ok = 0;
    for (long n = 0; n < 200 && !saw_ok; n++) {
        char *tok = NULL;
        cl_alloc_fail_after(n);
        int rc = cl_jwt_sign(rsa_a, "kid", "jku", payload, &tok);
        cl_alloc_fail_after(-1);
        if (rc == CL_OK) {
            saw_ok = 1;
            cl_free(tok);
        } else {
            assert_int_equal(rc, CL_ENOMEM);
        }
    }
    assert_true(saw_ok);
    json_decref(payload);
    free(jws);
    free(hdr);
    free(pl);
    cl_free(x);
}

int main(void)
{
    cl_json_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64_lenient),
        cmocka_unit_test(test_unsigned_policies),
        cmocka_unit_test(test_reset_body),
        cmocka_unit_test(test_js_rs256_x5c),
        cmocka_unit_test(test_js_es256_any_curve),
        cmocka_unit_test(test_python_rsa256_jwk_x5c),
        cmocka_unit_test(test_rs256_chain_and_spaces),
        cmocka_unit_test(test_ps256_rs384_rs512),
        cmocka_unit_test(test_es256_der_signature),
        cmocka_unit_test(test_bare_jwk),
        cmocka_unit_test(test_tampering),
        cmocka_unit_test(test_received_bytes),
        cmocka_unit_test(test_algs_and_signers_rejected),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_signing_key_and_kid),
        cmocka_unit_test(test_jwt_sign),
        cmocka_unit_test(test_jwt_unsigned),
        cmocka_unit_test(test_sign_input_roundtrip),
        cmocka_unit_test(test_admin_jwt),
        cmocka_unit_test(test_jwks_errors),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
