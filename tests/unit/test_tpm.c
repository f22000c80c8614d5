/*
 * test_tpm.c — TPM 2.0 profile (src/attest/tpm.c, tpm_cred.c): the swtpm vectors of
 * tests/data/attestation-vectors/tpm (evidence-formats.md §6), quotes made in the test with
 * software keys (RSASSA, RSAPSS, ECDSA P-384), credential activation against tpm2-tools'
 * `tpm2_makecredential -T none` output (fixtures below), and EK / AK certificate chains.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attest/tpm.h"
#include "base/alloc.h"
#include "base/codec.h"
#include "base/json.h"
#include "crypto/hash.h"
#include "testutil.h"

/* ---- fixtures ------------------------------------------------------------------------------- */

#define T_VALID 1796083200  /* 2026-12-01T00:00:00Z, after the vectors' notBefore */
#define T_BEFORE 1795374536 /* one second before 2026-11-22T19:08:57Z */

static const char PCR16_HEX[] = "5c52980c99ec28269be96cb022b3ec4dd2617bb48ee7568a006b1eed9bcc2c5a";
static const char PCR_DIGEST_HEX[] =
    "cfe9df671146e58f86290864eea73dd17edb74dff91b9debfb3b0963b201ef6c";

/* TCG EK template policy (PolicySecret(TPM_RH_ENDORSEMENT), SHA-256). */
static const char EK_POLICY_HEX[] =
    "837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa";

/* Test EK private keys and the files `tpm2_makecredential -T none -G rsa|ecc -u <pub> -s secret
 * -n <tpm/ak.name> -o cred` (tpm2-tools 5.4) produced for them with SECRET below. */
static const char SECRET[] = "cledger tpm credential test 0001";

static const char EK_RSA_KEY[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCqIgMxlX1TH5cl\n"
    "iAFlOv8Pi7ufYf6Cfx6EyS/ugkw21Iz51I+YkNjMOD5DssypT5xUcdAWIHZySxBF\n"
    "fvWHA1bQDhz4pDBy561iYxlurzvAvhtUmJnX6PAxr7YbyTzL4ZdEa9/JWZ3jUeGQ\n"
    "mxL/W8H+NwYyw1Znf+isRR47y+ilaD00PCvo2nilgWG+5sviH5HQcz7c1efUs4CM\n"
    "iXjfDz0mQbNqyRj3Y19LyFS6b6OsYLuyKXjibw++YNu5GpFMXQ9Cr37BBEREgRt4\n"
    "GZLIG5ctvPrR0tMULWZvt420TJJEhpiOGuMdHHFCMOeIBZadwbqmAXzKgu/GteCh\n"
    "GznpWaWHAgMBAAECggEAGhTyxmQzfU3HfyJ1jE5aEckLL2j3eowAYrzxEzB4fKNj\n"
    "JV230dzKz6wDp58+juo8fhmgm/PIFMd7LBxFibgyU90GBfwtzT/FLeMhX/2PPIIo\n"
    "cHSgiSAVypg0Y9ga8OqZpQyglx6c/N9tpByR8gHgIJfQ5HFbyqwqQFasRuCAvvKW\n"
    "5GsclKAfbkj1vJo2vBlooxA2NkhkXjB799dC8fk9uv9lFqyTBsOmyNe6hiwl9T8Z\n"
    "83mJfRtJHf7bZlCY0AzVqwG01pKbrwrt1vJ9mfd+Po0+BOIpQeIlLeV3D9xSAovD\n"
    "jLvGUNPTkU9CwnKQ70HC5zcqy6wL02hn5Fmy0HVhAQKBgQDfZ68IKLWGAe0pqyyg\n"
    "vB6mNIF5Lr5CcPySszHFf4Qz9clNsWrBQBunUxLiAQWYVpzc3a3sJQfSATJ6hy6L\n"
    "QEk24IuCtHxWsgHBf1oxNI/LtnCqk0YPdf2+97x0JgpUoKGVeWw7xGwvuBw3/ahK\n"
    "8LHshgC+j9Yg05HLzVXVGfqMBwKBgQDC9JSoBnOuKcYBw6toKmh0CzhyhoGTidy8\n"
    "3iCEE23KyDo5LtDIM9x72d1XQlPzF99BtENd5Al+YA0xvxUlPnYAmGDi5JELHN1z\n"
    "9vSe8lSF083xQDOUZuI+XJK720aZ6FccMQ8YXIhK/TR1MrrF27lLsTaIFni9VNOH\n"
    "2ewYFcS6gQKBgEp7rRWRTQQCvGl6EoT8c1OCifA3L2PDe9IFQIDSROd1+MmYbzlD\n"
    "AHVG8zK6mHzz05SnrAbhSbwwff3v+AqhQkezkY/gUNwuuPskVJO3LIIEr4ePVnpt\n"
    "Ik57Fi+7RxJ0A6tsMjOzB0bZoT7hqSxjF07+Vl0yY3fKUf+a1BUadjgdAoGARBX2\n"
    "9NeL/v9Hz8XuTurAoAZrKFQhXM2A8dUBth6y8WcMLnxTHhg+oGJuEtNvTi7AIco6\n"
    "3MePKTuSYBVD5UXzIDIXZCY/IYprLNzKgdhP/I0EF4U8fk+QJAdgl4r1FTs3cPkR\n"
    "NIjccJQNhgC5ifA6vlydltmCQV0mowNQmPjBRAECgYEAjd/VtwI5kFqTnQ6+O0nd\n"
    "Z+fJPcC2YVeAtvjQYqp2YHpeyobj9yB3RjS70PzuAsktFDZ6IAPY6BP2HkmS/eZy\n"
    "nRuGYC7l26hj4TrW8YUN0mrW1NhFsv7iJUuBf4tc62rqkZZXB90lo6drTexlXLlp\n"
    "G/3o30sadhyEzuSQTRK3pJc=\n"
    "-----END PRIVATE KEY-----\n";

static const char EK_RSA_CRED_HEX[] =
    "badcc0de0000000100440020e05110a2dfa3a32385e47f034a3d8983aa2d360a93c2d8f7a7e515adf39bbf49a8"
    "1cdb6d577c054eab89fc171a48bbef97453bc1b7aee8eb10b265ccb67e864ba9590100750d8ff657318b849a52"
    "d11522552d8eee8546ee4555ddb0c1728affe6cf519ed486d088897764cdb3de67ebaa4f294ce54e5f8d9a1ea6"
    "49842598354a015fe07cc156d0fb70207bac75b4a77d831d0adb23f84c73616ff6e89dfe2b731e4de41f247b7a"
    "ebdba1c2825bdf716c6424c95a4170ccc0e2684814c3db092b604cbcd9344e6a022d1e98953d4d66638b4e6980"
    "d1dc15e97f0e6933039541bc875dcd734864557cf1afb1644d40a1b48c9fc04d85d91d42df4972d65d79c4c1e4"
    "d90170ebcbf86959beb6a6b26e14763ed639f9830a7f79047ebd904a7a183db04e396a9f0ba95eb674b72fc196"
    "757bcd8cae2ca4d8b6fe6a1f40fd6945be53602529";

static const char EK_EC_KEY[] = "-----BEGIN PRIVATE KEY-----\n"
                                "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgx+k1lje9A3cY+/o+\n"
                                "ah/YXec3rEK721B+/CP/HQDV7jihRANCAAQqUyCgNz/J3jXCEo9G6qD4EoLxJZlW\n"
                                "bEE2UROBcKQVbN1r1VkcnljaOWwH1TCdoIhWeyxBNObQ0/4C9g2MWzGw\n"
                                "-----END PRIVATE KEY-----\n";

static const char EK_EC_CRED_HEX[] =
    "badcc0de000000010044002015e893c6573ec35308e128e362cc4dcea06b7f020bffee25dff6af4d7ff2105dcc"
    "ec07a6caa21a39b444cd6573af33c2e8860835696cbcb03cd3d1c393bb0af89dc50044002034e5974a622a4301"
    "4e20022ef258ba68309fe1499d5d2af4ef4263950ab635920020c6874968ab99e91229ff36abb448c201f95d4e"
    "7f2efdfbd7f1f8ea1e5a269821";

/* ---- helpers -------------------------------------------------------------------------------- */

static char vdir[2048];

static void find_vectors(void)
{
    const char *src = getenv("CLEDGER_SOURCE_DIR");
    snprintf(vdir, sizeof vdir, "%s/tests/data/attestation-vectors/tpm",
             src != NULL && *src ? src : "/work/main");
    char probe[2200];
    snprintf(probe, sizeof probe, "%s/quote.msg", vdir);
    FILE *f = fopen(probe, "rb");
    if (f == NULL)
        snprintf(vdir, sizeof vdir, "/work/main/tests/data/attestation-vectors/tpm");
    else
        fclose(f);
}

/* A vector file (malloc'd, NUL after the data); fails the test when missing. */
static uint8_t *vec(const char *name, size_t *n)
{
    char path[2200];
    snprintf(path, sizeof path, "%s/%s", vdir, name);
    char *p = tu_read_file(path, n);
    if (p == NULL)
        fail_msg("missing vector %s", path);
    return (uint8_t *)p;
}

static uint8_t *unhex(const char *hex, size_t *n)
{
    uint8_t *out = NULL;
    assert_int_equal(cl_hex_decode_alloc(hex, strlen(hex), &out, n), CL_OK);
    return out;
}

static void be16(cl_buf *b, unsigned v)
{
    uint8_t p[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    assert_int_equal(cl_buf_append(b, p, 2), CL_OK);
}
static void be32(cl_buf *b, uint32_t v)
{
    be16(b, v >> 16);
    be16(b, v & 0xffff);
}
static void be64(cl_buf *b, uint64_t v)
{
    be32(b, (uint32_t)(v >> 32));
    be32(b, (uint32_t)v);
}
static void raw(cl_buf *b, const void *p, size_t n)
{
    if (n > 0)
        assert_int_equal(cl_buf_append(b, p, n), CL_OK);
}
static void tpm2b(cl_buf *b, const void *p, size_t n)
{
    be16(b, (unsigned)n);
    raw(b, p, n);
}

static EVP_PKEY *pem_key(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    assert_non_null(k);
    return k;
}

static void bn_out(const EVP_PKEY *k, const char *name, uint8_t *out, size_t len)
{
    BIGNUM *bn = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(k, name, &bn), 1);
    assert_int_equal(BN_bn2binpad(bn, out, (int)len), (int)len);
    BN_free(bn);
}

typedef struct {
    uint16_t name_alg;
    uint32_t attrs;
    const char *policy_hex; /* NULL: empty */
    uint16_t sym, sym_bits;
    uint16_t scheme, scheme_hash;
    uint16_t curve; /* ECC only */
} tmpl;

/* TPM2B_PUBLIC for the public part of `key` with the given template. */
static void build_public(cl_buf *out, const tmpl *t, const EVP_PKEY *key)
{
    cl_buf body = CL_BUF_INIT;
    int rsa = EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA;
    be16(&body, rsa ? CL_TPM_ALG_RSA : CL_TPM_ALG_ECC);
    be16(&body, t->name_alg);
    be32(&body, t->attrs);
    if (t->policy_hex != NULL) {
        size_t pl;
        uint8_t *pol = unhex(t->policy_hex, &pl);
        tpm2b(&body, pol, pl);
        cl_free(pol);
    } else {
        be16(&body, 0);
    }
    be16(&body, t->sym);
    if (t->sym != CL_TPM_ALG_NULL) {
        be16(&body, t->sym_bits);
        be16(&body, CL_TPM_ALG_CFB);
    }
    be16(&body, t->scheme);
    if (t->scheme != CL_TPM_ALG_NULL)
        be16(&body, t->scheme_hash);
    if (rsa) {
        int bits = EVP_PKEY_get_bits(key);
        uint8_t n[512];
        be16(&body, (unsigned)bits);
        be32(&body, 0);
        bn_out(key, OSSL_PKEY_PARAM_RSA_N, n, (size_t)bits / 8);
        tpm2b(&body, n, (size_t)bits / 8);
    } else {
        size_t coord = t->curve == CL_TPM_ECC_NIST_P256   ? 32
                       : t->curve == CL_TPM_ECC_NIST_P384 ? 48
                                                          : 66;
        uint8_t x[66], y[66];
        be16(&body, t->curve);
        be16(&body, CL_TPM_ALG_NULL);
        bn_out(key, OSSL_PKEY_PARAM_EC_PUB_X, x, coord);
        bn_out(key, OSSL_PKEY_PARAM_EC_PUB_Y, y, coord);
        tpm2b(&body, x, coord);
        tpm2b(&body, y, coord);
    }
    tpm2b(out, body.data, body.len);
    cl_buf_free(&body);
}

static void parse_public_ok(const cl_buf *b, cl_tpm_public *pub)
{
    char err[256] = "";
    int rc = cl_tpm_public_parse(b->data, b->len, pub, err, sizeof err);
    if (rc != CL_OK)
        fail_msg("public parse: %s", err);
}

static const tmpl EK_RSA_TMPL = {
    CL_TPM_ALG_SHA256, 0x000300b2, EK_POLICY_HEX, CL_TPM_ALG_AES, 128, CL_TPM_ALG_NULL, 0, 0};
static const tmpl EK_EC_TMPL = {
    CL_TPM_ALG_SHA256, 0x000300b2, EK_POLICY_HEX,       CL_TPM_ALG_AES, 128,
    CL_TPM_ALG_NULL,   0,          CL_TPM_ECC_NIST_P256};

/* The vector's PCR values as a cl_tpm_pcrs. */
static void vector_pcrs(cl_tpm_pcrs *p)
{
    uint8_t zero[32] = {0}, v16[32];
    char err[128];
    cl_tpm_pcrs_init(p);
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(cl_tpm_pcrs_set(p, CL_TPM_ALG_SHA256, i, zero, 32, err, sizeof err),
                         CL_OK);
    assert_int_equal(cl_hex_decode(PCR16_HEX, 64, v16, 32), CL_OK);
    assert_int_equal(cl_tpm_pcrs_set(p, CL_TPM_ALG_SHA256, 16, v16, 32, err, sizeof err), CL_OK);
}

typedef struct {
    uint8_t *msg, *sig, *akpub, *akname, *nonce_hex;
    size_t msg_n, sig_n, akpub_n, akname_n, nonce_hex_n;
    uint8_t nonce[8];
    cl_tpm_public ak;
    cl_tpm_pcrs pcrs;
} vectors;

static vectors *load_vectors(void)
{
    vectors *v = calloc(1, sizeof *v);
    assert_non_null(v);
    v->msg = vec("quote.msg", &v->msg_n);
    v->sig = vec("quote.sig", &v->sig_n);
    v->akpub = vec("ak_tpmt.pub", &v->akpub_n);
    v->akname = vec("ak.name", &v->akname_n);
    v->nonce_hex = vec("nonce.hex", &v->nonce_hex_n);
    assert_int_equal(v->msg_n, 121);
    assert_int_equal(v->sig_n, 72);
    assert_int_equal(cl_hex_decode((const char *)v->nonce_hex, v->nonce_hex_n, v->nonce, 8), CL_OK);
    char err[256] = "";
    if (cl_tpm_public_parse(v->akpub, v->akpub_n, &v->ak, err, sizeof err) != CL_OK)
        fail_msg("AK: %s", err);
    vector_pcrs(&v->pcrs);
    return v;
}

static void free_vectors(vectors *v)
{
    cl_tpm_public_free(&v->ak);
    free(v->msg);
    free(v->sig);
    free(v->akpub);
    free(v->akname);
    free(v->nonce_hex);
    free(v);
}

static void expect_err(int rc, int want, const char *err, const char *needle)
{
    if (rc != want)
        fail_msg("rc %s (%s), expected %s", cl_errname(rc), err, cl_errname(want));
    if (needle != NULL && strstr(err, needle) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", err, needle);
}

/* ---- parsing the vectors
 * ------------------------------------------------------------------------- */

static void test_attest_vector(void **state)
{
    (void)state;
    vectors *v = load_vectors();
    cl_tpm_attest a;
    char err[256] = "";
    assert_int_equal(cl_tpm_attest_parse(v->msg, v->msg_n, &a, err, sizeof err), CL_OK);
    assert_int_equal(a.magic, 0xff544347u);
    assert_int_equal(a.type, 0x8018);
    assert_int_equal(a.qualified_signer_len, 34);
    char hex[200];
    cl_hex_encode(a.qualified_signer, a.qualified_signer_len, hex);
    assert_string_equal(hex,
                        "000bf1e725a4250b39c83affb08c279a69e3b081f75bfbfefe370d49590d33035fd6");
    assert_int_equal(a.extra_data_len, 8);
    assert_memory_equal(a.extra_data, v->nonce, 8);
    assert_int_equal(a.clock, 10185);
    assert_int_equal(a.reset_count, 2);
    assert_int_equal(a.restart_count, 0);
    assert_int_equal(a.safe, 1);
    assert_true(a.firmware_version == 0x2019102300163636ull);
    assert_int_equal(a.nbanks, 1);
    assert_int_equal(a.banks[0].hash_alg, CL_TPM_ALG_SHA256);
    assert_int_equal(a.banks[0].size_of_select, 3);
    unsigned selected[CL_TPM_NUM_PCRS], ns = 0;
    for (unsigned k = 0; k < CL_TPM_NUM_PCRS; k++)
        if (cl_tpm_attest_selected(&a, 0, k))
            selected[ns++] = k;
    assert_int_equal(ns, 5);
    assert_int_equal(selected[0], 0);
    assert_int_equal(selected[3], 3);
    assert_int_equal(selected[4], 16);
    cl_hex_encode(a.pcr_digest, a.pcr_digest_len, hex);
    assert_string_equal(hex, PCR_DIGEST_HEX);

    /* The pcrDigest is SHA-256 over the five values in selection order (spec §6.1). */
    uint8_t cat[160] = {0}, d[32];
    assert_int_equal(cl_hex_decode(PCR16_HEX, 64, cat + 128, 32), CL_OK);
    cl_sha256(cat, sizeof cat, d);
    assert_memory_equal(d, a.pcr_digest, 32);
    free_vectors(v);
}

static void test_public_vector(void **state)
{
    (void)state;
    vectors *v = load_vectors();
    cl_tpm_public *ak = &v->ak;
    assert_int_equal(ak->type, CL_TPM_ALG_ECC);
    assert_int_equal(ak->name_alg, CL_TPM_ALG_SHA256);
    assert_int_equal(ak->attributes, 0x00050072);
    assert_int_equal(ak->sym_alg, CL_TPM_ALG_NULL);
    assert_int_equal(ak->scheme, CL_TPM_ALG_ECDSA);
    assert_int_equal(ak->scheme_hash, CL_TPM_ALG_SHA256);
    assert_int_equal(ak->ecc_curve, CL_TPM_ECC_NIST_P256);
    assert_int_equal(ak->kdf, CL_TPM_ALG_NULL);
    assert_int_equal(ak->name_len, 34);
    assert_memory_equal(ak->name, v->akname, 34);
    char err[256] = "";
    assert_int_equal(cl_tpm_ak_check(ak, err, sizeof err), CL_OK);

    /* The key is the one in ak.pem. */
    size_t pn;
    uint8_t *pem = vec("ak.pem", &pn);
    BIO *bio = BIO_new_mem_buf(pem, (int)pn);
    EVP_PKEY *k = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    assert_non_null(k);
    assert_int_equal(EVP_PKEY_eq(k, ak->pkey), 1);
    /* aikPubHash input: SHA-256 of that SPKI DER. */
    unsigned char *der = NULL;
    int dl = i2d_PUBKEY(k, &der);
    uint8_t want[32], got[32];
    cl_sha256(der, (size_t)dl, want);
    assert_int_equal(cl_tpm_public_spki_sha256(ak, got), CL_OK);
    assert_memory_equal(want, got, 32);
    OPENSSL_free(der);
    EVP_PKEY_free(k);
    BIO_free(bio);
    free(pem);

    /* A bare TPMT_PUBLIC (without the TPM2B size) gives the same Name. */
    cl_tpm_public bare;
    assert_int_equal(cl_tpm_public_parse(v->akpub + 2, v->akpub_n - 2, &bare, err, sizeof err),
                     CL_OK);
    assert_memory_equal(bare.name, v->akname, 34);
    cl_tpm_public_free(&bare);
    cl_tpm_public_free(&bare); /* idempotent */

    /* A point not on the curve is refused. */
    uint8_t *bad = malloc(v->akpub_n);
    memcpy(bad, v->akpub, v->akpub_n);
    bad[v->akpub_n - 1] ^= 1;
    expect_err(cl_tpm_public_parse(bad, v->akpub_n, &bare, err, sizeof err), CL_EFORMAT, err,
               "not on curve");
    /* An unknown curve. */
    memcpy(bad, v->akpub, v->akpub_n);
    bad[19] = 0x09;
    expect_err(cl_tpm_public_parse(bad, v->akpub_n, &bare, err, sizeof err), CL_EUNSUPPORTED, err,
               "curve 0x0009 at offset 18");
    /* A keyedhash object is not a key we verify with. */
    memcpy(bad, v->akpub, v->akpub_n);
    bad[3] = 0x08;
    expect_err(cl_tpm_public_parse(bad, v->akpub_n, &bare, err, sizeof err), CL_EUNSUPPORTED, err,
               "key type 0x0008");
    free(bad);
    free_vectors(v);
}

static void test_signature_vector(void **state)
{
    (void)state;
    vectors *v = load_vectors();
    cl_tpm_signature s;
    char err[256] = "", hex[200];
    assert_int_equal(cl_tpm_signature_parse(v->sig, v->sig_n, &s, err, sizeof err), CL_OK);
    assert_int_equal(s.sig_alg, CL_TPM_ALG_ECDSA);
    assert_int_equal(s.hash_alg, CL_TPM_ALG_SHA256);
    cl_hex_encode(s.r, s.r_len, hex);
    assert_string_equal(hex, "1586ee4bd6133a144192ceaf5c346421fe27bcafb5365cff715d53efaeb34f88");
    cl_hex_encode(s.s, s.s_len, hex);
    assert_string_equal(hex, "fd432fea9373f9b42bfa07b4190c04ccd44e56563ad20ca855127edec08d2751");
    uint8_t hmac_sig[4] = {0x00, 0x05, 0x00, 0x0b};
    expect_err(cl_tpm_signature_parse(hmac_sig, 4, &s, err, sizeof err), CL_EUNSUPPORTED, err,
               "0x0005 (hmac)");
    free_vectors(v);
}

static void test_pcrs_files(void **state)
{
    (void)state;
    size_t n;
    uint8_t *f = vec("quote.pcrs", &n);
    assert_int_equal(n, 668);
    cl_tpm_pcrs *p = malloc(sizeof *p), *want = malloc(sizeof *want), *j = malloc(sizeof *j);
    char err[256] = "";
    assert_int_equal(cl_tpm_pcrs_parse_tpm2tools(f, n, p, err, sizeof err), CL_OK);
    vector_pcrs(want);
    assert_int_equal(p->nbanks, 1);
    assert_int_equal(p->banks[0].alg, CL_TPM_ALG_SHA256);
    assert_int_equal(p->banks[0].present, want->banks[0].present);
    assert_memory_equal(p->banks[0].value, want->banks[0].value, sizeof p->banks[0].value);

    /* The same values as attestation-api.md §4.3 JSON. */
    char json[512];
    snprintf(json, sizeof json,
             "{\"sha256\":{\"0\":\"%064d\",\"1\":\"%064d\",\"2\":\"%064d\",\"3\":\"%064d\","
             "\"16\":\"%s\"}}",
             0, 0, 0, 0, PCR16_HEX);
    assert_int_equal(cl_tpm_pcrs_parse_json(json, strlen(json), j, err, sizeof err), CL_OK);
    assert_int_equal(j->banks[0].present, want->banks[0].present);
    assert_memory_equal(j->banks[0].value, want->banks[0].value, sizeof j->banks[0].value);

    static const struct {
        const char *json;
        const char *needle;
    } BAD[] = {
        {"{\"sha257\":{}}", "bank \"sha257\""},
        {"{\"sha256\":{\"01\":\"00\"}}", "\"01\" is not a PCR index"},
        {"{\"sha256\":{\"32\":\"00\"}}", "\"32\" is not a PCR index"},
        {"{\"sha256\":{\"-1\":\"00\"}}", "\"-1\" is not a PCR index"},
        {"{\"sha256\":{\"7\":\"00\"}}", "64 hex digits"},
        {"{\"sha1\":{\"7\":\"zz00000000000000000000000000000000000000\"}}", "not hexadecimal"},
        {"{\"sha256\":[]}", "not an object"},
        {"[]", "expected an object"},
        {"{\"sha256\":{}} x", "malformed JSON"},
        {"{\"sha256\":{},\"sha256\":{}}", "malformed JSON"},
    };
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        int rc = cl_tpm_pcrs_parse_json(BAD[i].json, strlen(BAD[i].json), j, err, sizeof err);
        if (rc >= 0 || strstr(err, BAD[i].needle) == NULL)
            fail_msg("%s: rc %d err \"%s\"", BAD[i].json, rc, err);
    }

    /* Truncated and extended dumps. */
    for (size_t k = 0; k < n; k++)
        assert_true(cl_tpm_pcrs_parse_tpm2tools(f, k, p, err, sizeof err) < 0);
    uint8_t *big = malloc(n + 1);
    memcpy(big, f, n);
    big[n] = 0;
    expect_err(cl_tpm_pcrs_parse_tpm2tools(big, n + 1, p, err, sizeof err), CL_EFORMAT, err,
               "1 digest lists need 532 bytes after offset 136, 533 present");
    /* One digest fewer than selected. */
    memcpy(big, f, n);
    big[136] = 4;
    expect_err(cl_tpm_pcrs_parse_tpm2tools(big, n, p, err, sizeof err), CL_EFORMAT, err,
               "4 digests for 5 selected PCRs");
    free(big);
    free(f);
    free(p);
    free(want);
    free(j);
}

/* ---- quote verification
 * -------------------------------------------------------------------------- */

static void test_quote_vector_ok(void **state)
{
    (void)state;
    vectors *v = load_vectors();
    char err[256] = "";
    int rc = cl_tpm_quote_verify(v->msg, v->msg_n, v->sig, v->sig_n, &v->ak, v->nonce, 8, &v->pcrs,
                                 err, sizeof err);
    if (rc != CL_OK)
        fail_msg("vector quote: %s", err);
    /* With the values from tpm2_quote's own pcrs file. */
    size_t n;
    uint8_t *f = vec("quote.pcrs", &n);
    cl_tpm_pcrs *p = malloc(sizeof *p);
    assert_int_equal(cl_tpm_pcrs_parse_tpm2tools(f, n, p, err, sizeof err), CL_OK);
    assert_int_equal(cl_tpm_quote_verify(v->msg, v->msg_n, v->sig, v->sig_n, &v->ak, v->nonce, 8, p,
                                         err, sizeof err),
                     CL_OK);
    free(p);
    free(f);
    free_vectors(v);
}

static void test_quote_wrong_nonce(void **state)
{
    (void)state;
    vectors *v = load_vectors();
    char err[256] = "";
    uint8_t nonce[8];
    memcpy(nonce, v->nonce, 8);
    nonce[7] ^= 1;
    expect_err(cl_tpm_quote_verify(v->msg, v->msg_n, v->sig, v->sig_n, &v->ak, nonce, 8, &v->pcrs,
                                   err, sizeof err),
               CL_EBINDING, err, "extraData does not equal the expected nonce");
    expect_err(cl_tpm_quote_verify(v->msg, v->msg_n, v->sig, v->sig_n, &v->ak, v->nonce, 7,
                                   &v->pcrs, err, sizeof err),
               CL_EBINDING, err, "extraData is 8 bytes, the expected nonce 7 bytes");
    expect_err(cl_tpm_quote_verify(v->msg, v->msg_n, v->sig, v->sig_n, &v->ak, NULL, 0, &v->pcrs,
                                   err, sizeof err),
               CL_EBINDING, err, "the expected nonce 0 bytes");
    free_vectors(v);
}

static void test_quote_pcr_mismatch(void **state)
{
    (void)state;
    vectors *v = load_vectors();
    char err[256] = "";
    cl_tpm_pcrs *p = malloc(sizeof *p);

    /* Each selected PCR changed in turn. */
    static const unsigned SEL[] = {0, 1, 2, 3, 16};
    for (size_t i = 0; i < 5; i++) {
        *p = v->pcrs;
        p->banks[0].value[SEL[i]][31] ^= 0x01;
        expect_err(
            cl_tpm_quote_verify(v->msg, v->msg_n, v->sig, v->sig_n, &v->ak, v->nonce, 8, p, err,
                                sizeof err),
            CL_EBINDING, err,
            "quote pcrDigest cfe9df671146e58f86290864eea73dd17edb74dff91b9debfb3b0963b201ef6c "
            "does not match the supplied PCR values");
    }
    /* Missing PCR 16. */
    *p = v->pcrs;
    p->banks[0].present &= ~(1u << 16);
    expect_err(cl_tpm_quote_verify(v->msg, v->msg_n, v->sig, v->sig_n, &v->ak, v->nonce, 8, p, err,
                                   sizeof err),
               CL_EBINDING, err,
               "PCR 16 of bank sha256 is selected by the quote but no value was supplied");
    /* An extra PCR 7 that the quote does not cover. */
    *p = v->pcrs;
    uint8_t z[32] = {0};
    assert_int_equal(cl_tpm_pcrs_set(p, CL_TPM_ALG_SHA256, 7, z, 32, err, sizeof err), CL_OK);
    expect_err(cl_tpm_quote_verify(v->msg, v->msg_n, v->sig, v->sig_n, &v->ak, v->nonce, 8, p, err,
                                   sizeof err),
               CL_EBINDING, err,
               "PCR 7 of bank sha256 was supplied but is not selected by the quote");
    /* An extra bank. */
    *p = v->pcrs;
    assert_int_equal(cl_tpm_pcrs_set(p, CL_TPM_ALG_SHA1, 0, z, 20, err, sizeof err), CL_OK);
    expect_err(cl_tpm_quote_verify(v->msg, v->msg_n, v->sig, v->sig_n, &v->ak, v->nonce, 8, p, err,
                                   sizeof err),
               CL_EBINDING, err, "bank sha1 were supplied but the quote does not select that bank");
    /* No values at all. */
    cl_tpm_pcrs_init(p);
    expect_err(cl_tpm_quote_verify(v->msg, v->msg_n, v->sig, v->sig_n, &v->ak, v->nonce, 8, p, err,
                                   sizeof err),
               CL_EBINDING, err, "PCR 0 of bank sha256 is selected");
    /* Setting a value twice or of the wrong size. */
    *p = v->pcrs;
    expect_err(cl_tpm_pcrs_set(p, CL_TPM_ALG_SHA256, 0, z, 32, err, sizeof err), CL_EFORMAT, err,
               "given twice");
    expect_err(cl_tpm_pcrs_set(p, CL_TPM_ALG_SHA256, 5, z, 20, err, sizeof err), CL_EFORMAT, err,
               "20 bytes, expected 32");
    free(p);
    free_vectors(v);
}

static int in_range(size_t i, size_t lo, size_t hi) { return i >= lo && i < hi; }

static void test_quote_flip_every_attest_byte(void **state)
{
    (void)state;
    vectors *v = load_vectors();
    uint8_t *m = malloc(v->msg_n);
    char err[256];
    for (size_t i = 0; i < v->msg_n; i++) {
        for (int bit = 0; bit < 8; bit += 7) {
            memcpy(m, v->msg, v->msg_n);
            m[i] ^= (uint8_t)(1u << bit);
            err[0] = '\0';
            int rc = cl_tpm_quote_verify(m, v->msg_n, v->sig, v->sig_n, &v->ak, v->nonce, 8,
                                         &v->pcrs, err, sizeof err);
            if (rc >= 0 || err[0] == '\0')
                fail_msg("flip of bit %d in byte %zu accepted", bit, i);
            /* Bytes that do not change the structure must be caught by the signature. */
            if (in_range(i, 8, 42) || in_range(i, 44, 52) || in_range(i, 52, 68) ||
                in_range(i, 69, 77) || in_range(i, 89, 121))
                if (rc != CL_ESIG)
                    fail_msg("byte %zu: %s (%s), expected CL_ESIG", i, cl_errname(rc), err);
        }
    }
    /* The magic and type. */
    memcpy(m, v->msg, v->msg_n);
    m[0] = 0;
    expect_err(cl_tpm_quote_verify(m, v->msg_n, v->sig, v->sig_n, &v->ak, v->nonce, 8, &v->pcrs,
                                   err, sizeof err),
               CL_EFORMAT, err, "quote magic 0x00544347 is not TPM_GENERATED_VALUE");
    memcpy(m, v->msg, v->msg_n);
    m[5] = 0x17;
    expect_err(cl_tpm_quote_verify(m, v->msg_n, v->sig, v->sig_n, &v->ak, v->nonce, 8, &v->pcrs,
                                   err, sizeof err),
               CL_EUNSUPPORTED, err, "TPMS_ATTEST type 0x8017 is not TPM_ST_ATTEST_QUOTE");
    free(m);
    free_vectors(v);
}

static void test_quote_flip_every_sig_byte(void **state)
{
    (void)state;
    vectors *v = load_vectors();
    uint8_t *s = malloc(v->sig_n);
    char err[256];
    for (size_t i = 0; i < v->sig_n; i++) {
        memcpy(s, v->sig, v->sig_n);
        s[i] ^= 0x01;
        err[0] = '\0';
        int rc = cl_tpm_quote_verify(v->msg, v->msg_n, s, v->sig_n, &v->ak, v->nonce, 8, &v->pcrs,
                                     err, sizeof err);
        if (rc >= 0 || err[0] == '\0')
            fail_msg("signature flip at %zu accepted", i);
        if ((in_range(i, 6, 38) || in_range(i, 40, 72)) && rc != CL_ESIG)
            fail_msg("byte %zu: %s (%s)", i, cl_errname(rc), err);
    }
    memcpy(s, v->sig, v->sig_n);
    s[3] = 0x0c; /* SHA-384 instead of the AK's fixed SHA-256 */
    expect_err(cl_tpm_quote_verify(v->msg, v->msg_n, s, v->sig_n, &v->ak, v->nonce, 8, &v->pcrs,
                                   err, sizeof err),
               CL_ESIG, err,
               "signature scheme ecdsa/sha384 differs from the AK's fixed scheme ecdsa/sha256");
    free(s);
    free_vectors(v);
}

static void test_quote_truncations(void **state)
{
    (void)state;
    vectors *v = load_vectors();
    char err[256];
    cl_tpm_attest a;
    cl_tpm_signature s;
    cl_tpm_public pub;
    for (size_t n = 0; n < v->msg_n; n++) {
        int rc = cl_tpm_attest_parse(v->msg, n, &a, err, sizeof err);
        if (rc != CL_ETRUNC || strstr(err, "quote truncated at offset") == NULL)
            fail_msg("quote prefix %zu: %s %s", n, cl_errname(rc), err);
        assert_true(cl_tpm_quote_verify(v->msg, n, v->sig, v->sig_n, &v->ak, v->nonce, 8, &v->pcrs,
                                        err, sizeof err) < 0);
    }
    expect_err(cl_tpm_attest_parse(v->msg, 100, &a, err, sizeof err), CL_ETRUNC, err,
               "quote truncated at offset 89: pcrDigest needs 32 bytes, 11 left");
    expect_err(cl_tpm_attest_parse(v->msg, 41, &a, err, sizeof err), CL_ETRUNC, err,
               "quote truncated at offset 8: qualifiedSigner needs 34 bytes, 33 left");
    expect_err(cl_tpm_attest_parse(v->msg, 3, &a, err, sizeof err), CL_ETRUNC, err,
               "quote truncated at offset 0: magic needs 4 bytes, 3 left");
    for (size_t n = 0; n < v->sig_n; n++) {
        int rc = cl_tpm_signature_parse(v->sig, n, &s, err, sizeof err);
        if (rc != CL_ETRUNC)
            fail_msg("signature prefix %zu: %s %s", n, cl_errname(rc), err);
    }
    expect_err(cl_tpm_signature_parse(v->sig, 50, &s, err, sizeof err), CL_ETRUNC, err,
               "signature truncated at offset 40: signatureS needs 32 bytes, 10 left");
    for (size_t n = 0; n < v->akpub_n; n++) {
        int rc = cl_tpm_public_parse(v->akpub, n, &pub, err, sizeof err);
        if (rc >= 0)
            fail_msg("public prefix %zu accepted", n);
        cl_tpm_public_free(&pub);
    }
    /* A trailing byte anywhere. */
    uint8_t *m = malloc(v->msg_n + 1);
    memcpy(m, v->msg, v->msg_n);
    m[v->msg_n] = 0;
    expect_err(cl_tpm_attest_parse(m, v->msg_n + 1, &a, err, sizeof err), CL_EFORMAT, err,
               "quote has 1 trailing bytes after pcrDigest at offset 121");
    free(m);
    m = malloc(v->sig_n + 1);
    memcpy(m, v->sig, v->sig_n);
    m[v->sig_n] = 0;
    expect_err(cl_tpm_signature_parse(m, v->sig_n + 1, &s, err, sizeof err), CL_EFORMAT, err,
               "trailing");
    free(m);
    /* An oversized TPM2B is refused before its bytes are read. */
    m = malloc(v->msg_n);
    memcpy(m, v->msg, v->msg_n);
    m[87] = 0x00;
    m[88] = 0x41;
    expect_err(cl_tpm_attest_parse(m, v->msg_n, &a, err, sizeof err), CL_EFORMAT, err,
               "pcrDigest at offset 87 announces 65 bytes, more than the maximum 64");
    memcpy(m, v->msg, v->msg_n);
    m[83] = 0x05; /* sizeofSelect 5 */
    expect_err(cl_tpm_attest_parse(m, v->msg_n, &a, err, sizeof err), CL_EUNSUPPORTED, err,
               "sizeofSelect 5 at offset 83");
    free(m);
    free_vectors(v);
}

/* An ECC AK public area like the vector's, for another key. */
static void other_ecc_ak(const vectors *v, cl_tpm_public *out)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    tmpl t = {CL_TPM_ALG_SHA256, 0x00050072,          NULL, CL_TPM_ALG_NULL, 0, CL_TPM_ALG_ECDSA,
              CL_TPM_ALG_SHA256, CL_TPM_ECC_NIST_P256};
    cl_buf b = CL_BUF_INIT;
    build_public(&b, &t, k);
    parse_public_ok(&b, out);
    assert_memory_not_equal(out->name, v->akname, 34);
    cl_buf_free(&b);
    EVP_PKEY_free(k);
}

static void test_quote_other_ak(void **state)
{
    (void)state;
    vectors *v = load_vectors();
    char err[256] = "";
    cl_tpm_public other;
    other_ecc_ak(v, &other);
    expect_err(cl_tpm_quote_verify(v->msg, v->msg_n, v->sig, v->sig_n, &other, v->nonce, 8,
                                   &v->pcrs, err, sizeof err),
               CL_ESIG, err, "quote signature (ecdsa/sha256) does not verify with the AK");
    cl_tpm_public_free(&other);

    /* An RSA AK cannot have made an ECDSA signature. */
    EVP_PKEY *rk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    tmpl t = {CL_TPM_ALG_SHA256, 0x00050072, NULL, CL_TPM_ALG_NULL, 0, CL_TPM_ALG_NULL, 0, 0};
    cl_buf b = CL_BUF_INIT;
    build_public(&b, &t, rk);
    cl_tpm_public rsa;
    parse_public_ok(&b, &rsa);
    expect_err(cl_tpm_quote_verify(v->msg, v->msg_n, v->sig, v->sig_n, &rsa, v->nonce, 8, &v->pcrs,
                                   err, sizeof err),
               CL_ESIG, err, "ecdsa signature cannot come from the RSA AK");
    cl_tpm_public_free(&rsa);
    cl_buf_free(&b);
    EVP_PKEY_free(rk);

    /* The vector AK with its attributes weakened: no longer an AK. */
    uint8_t *pub = malloc(v->akpub_n);
    static const struct {
        uint32_t attrs;
        const char *needle;
    } WEAK[] = {
        {0x00040072, "lack restricted"},
        {0x00010072, "lack sign"},
        {0x00050070, "lack fixedTPM"},
        {0x00070072, "have decrypt set"},
    };
    for (size_t i = 0; i < sizeof WEAK / sizeof WEAK[0]; i++) {
        memcpy(pub, v->akpub, v->akpub_n);
        pub[6] = (uint8_t)(WEAK[i].attrs >> 24);
        pub[7] = (uint8_t)(WEAK[i].attrs >> 16);
        pub[8] = (uint8_t)(WEAK[i].attrs >> 8);
        pub[9] = (uint8_t)WEAK[i].attrs;
        cl_tpm_public weak;
        assert_int_equal(cl_tpm_public_parse(pub, v->akpub_n, &weak, err, sizeof err), CL_OK);
        expect_err(cl_tpm_quote_verify(v->msg, v->msg_n, v->sig, v->sig_n, &weak, v->nonce, 8,
                                       &v->pcrs, err, sizeof err),
                   CL_EUNSUPPORTED, err, WEAK[i].needle);
        cl_tpm_public_free(&weak);
    }
    free(pub);
    free_vectors(v);
}

/* TPMS_ATTEST with one bank selecting `sel` (3 bytes) and the given pcrDigest. */
static void build_attest(cl_buf *b, const uint8_t *nonce, size_t nn, uint16_t bank,
                         const uint8_t sel[3], const uint8_t *digest, size_t dl)
{
    static const uint8_t qs[34] = {0x00, 0x0b, 1, 2, 3};
    be32(b, 0xff544347u);
    be16(b, 0x8018);
    tpm2b(b, qs, sizeof qs);
    tpm2b(b, nonce, nn);
    be64(b, 12345);
    be32(b, 1);
    be32(b, 0);
    raw(b, "\x01", 1);
    be64(b, 0x2019102300163636ull);
    be32(b, 1);
    be16(b, bank);
    raw(b, "\x03", 1);
    raw(b, sel, 3);
    tpm2b(b, digest, dl);
}

/* TPMT_SIGNATURE by a software key. */
static void sign_tpmt(cl_buf *out, EVP_PKEY *key, uint16_t alg, uint16_t hash, const cl_buf *msg)
{
    const EVP_MD *md = cl_tpm_hash_md(hash);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    assert_int_equal(EVP_DigestSignInit(ctx, &pctx, md, NULL, key), 1);
    if (alg == CL_TPM_ALG_RSAPSS) {
        assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
        assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST), 1);
    }
    uint8_t sig[600];
    size_t sl = sizeof sig;
    assert_int_equal(EVP_DigestSign(ctx, sig, &sl, msg->data, msg->len), 1);
    EVP_MD_CTX_free(ctx);
    be16(out, alg);
    be16(out, hash);
    if (alg != CL_TPM_ALG_ECDSA) {
        tpm2b(out, sig, sl);
        return;
    }
    const unsigned char *q = sig;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &q, (long)sl);
    assert_non_null(es);
    size_t coord = (size_t)(EVP_PKEY_get_bits(key) + 7) / 8;
    uint8_t r[66], s[66];
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(es), r, (int)coord), (int)coord);
    assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(es), s, (int)coord), (int)coord);
    tpm2b(out, r, coord);
    tpm2b(out, s, coord);
    ECDSA_SIG_free(es);
}

static void check_soft_quote(EVP_PKEY *key, const tmpl *t, uint16_t sig_alg, uint16_t hash)
{
    char err[256] = "";
    cl_buf pubb = CL_BUF_INIT, msg = CL_BUF_INIT, sig = CL_BUF_INIT;
    build_public(&pubb, t, key);
    cl_tpm_public ak;
    parse_public_ok(&pubb, &ak);

    /* PCRs 0 and 7 of the SHA-1 bank; pcrDigest with the signature's hash. */
    cl_tpm_pcrs pcrs;
    cl_tpm_pcrs_init(&pcrs);
    uint8_t v0[20], v7[20], cat[40], d[64];
    memset(v0, 0xa5, 20);
    memset(v7, 0x5a, 20);
    assert_int_equal(cl_tpm_pcrs_set(&pcrs, CL_TPM_ALG_SHA1, 0, v0, 20, err, sizeof err), CL_OK);
    assert_int_equal(cl_tpm_pcrs_set(&pcrs, CL_TPM_ALG_SHA1, 7, v7, 20, err, sizeof err), CL_OK);
    memcpy(cat, v0, 20);
    memcpy(cat + 20, v7, 20);
    unsigned dl = 0;
    assert_int_equal(EVP_Digest(cat, 40, d, &dl, cl_tpm_hash_md(hash), NULL), 1);
    static const uint8_t sel[3] = {0x81, 0, 0};
    static const uint8_t nonce[32] = {9, 8, 7};
    build_attest(&msg, nonce, sizeof nonce, CL_TPM_ALG_SHA1, sel, d, dl);
    sign_tpmt(&sig, key, sig_alg, hash, &msg);
    int rc = cl_tpm_quote_verify(msg.data, msg.len, sig.data, sig.len, &ak, nonce, sizeof nonce,
                                 &pcrs, err, sizeof err);
    if (rc != CL_OK)
        fail_msg("%s/%s quote: %s", cl_tpm_alg_name(sig_alg), cl_tpm_alg_name(hash), err);
    /* Claims carry the SHA-1 digests under "SHA1". */
    cl_tpm_attest a;
    assert_int_equal(cl_tpm_attest_parse(msg.data, msg.len, &a, err, sizeof err), CL_OK);
    json_t *c = json_object();
    assert_int_equal(cl_tpm_claims(&a, &pcrs, &ak, 1, c), CL_OK);
    char want[256], b0[40], b7[40];
    cl_b64_encode(v0, 20, b0, CL_B64_STD);
    cl_b64_encode(v7, 20, b7, CL_B64_STD);
    snprintf(want, sizeof want,
             "{\"PCRs\":[{\"Index\":0,\"Digests\":{\"SHA1\":\"%s\"}},{\"Index\":7,\"Digests\":{"
             "\"SHA1\":\"%s\"}}]}",
             b0, b7);
    assert_string_equal(json_string_value(json_object_get(c, "pcrs")), want);
    assert_true(json_is_true(json_object_get(c, "aikValidated")));
    json_decref(c);

    /* The same signature on a changed message. */
    msg.data[60] ^= 1;
    expect_err(cl_tpm_quote_verify(msg.data, msg.len, sig.data, sig.len, &ak, nonce, sizeof nonce,
                                   &pcrs, err, sizeof err),
               CL_ESIG, err, "does not verify with the AK");
    cl_tpm_public_free(&ak);
    cl_buf_free(&pubb);
    cl_buf_free(&msg);
    cl_buf_free(&sig);
}

static void test_quote_software_keys(void **state)
{
    (void)state;
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    tmpl rsa_any = {CL_TPM_ALG_SHA256, 0x00050072, NULL, CL_TPM_ALG_NULL, 0, CL_TPM_ALG_NULL, 0, 0};
    tmpl rsa_pss = {CL_TPM_ALG_SHA256, 0x00050072,        NULL, CL_TPM_ALG_NULL, 0,
                    CL_TPM_ALG_RSAPSS, CL_TPM_ALG_SHA256, 0};
    tmpl ec384 = {
        CL_TPM_ALG_SHA384, 0x00050072,          NULL, CL_TPM_ALG_NULL, 0, CL_TPM_ALG_ECDSA,
        CL_TPM_ALG_SHA384, CL_TPM_ECC_NIST_P384};
    check_soft_quote(rsa, &rsa_any, CL_TPM_ALG_RSASSA, CL_TPM_ALG_SHA256);
    check_soft_quote(rsa, &rsa_any, CL_TPM_ALG_RSAPSS, CL_TPM_ALG_SHA384);
    check_soft_quote(rsa, &rsa_pss, CL_TPM_ALG_RSAPSS, CL_TPM_ALG_SHA256);
    check_soft_quote(p384, &ec384, CL_TPM_ALG_ECDSA, CL_TPM_ALG_SHA384);

    /* SHA-1 signatures are refused even when otherwise valid. */
    char err[256] = "";
    cl_buf pubb = CL_BUF_INIT, msg = CL_BUF_INIT, sig = CL_BUF_INIT;
    build_public(&pubb, &rsa_any, rsa);
    cl_tpm_public ak;
    parse_public_ok(&pubb, &ak);
    uint8_t d[20] = {0};
    static const uint8_t sel[3] = {0, 0, 0};
    build_attest(&msg, (const uint8_t *)"n", 1, CL_TPM_ALG_SHA256, sel, d, 20);
    sign_tpmt(&sig, rsa, CL_TPM_ALG_RSASSA, CL_TPM_ALG_SHA1, &msg);
    cl_tpm_pcrs pcrs;
    cl_tpm_pcrs_init(&pcrs);
    expect_err(cl_tpm_quote_verify(msg.data, msg.len, sig.data, sig.len, &ak, (const uint8_t *)"n",
                                   1, &pcrs, err, sizeof err),
               CL_EUNSUPPORTED, err, "SHA-1 quote signatures are not accepted");
    /* The RSAPSS-only AK refuses an RSASSA signature. */
    cl_tpm_public pss;
    cl_buf pb2 = CL_BUF_INIT, sig2 = CL_BUF_INIT;
    build_public(&pb2, &rsa_pss, rsa);
    parse_public_ok(&pb2, &pss);
    sign_tpmt(&sig2, rsa, CL_TPM_ALG_RSASSA, CL_TPM_ALG_SHA256, &msg);
    expect_err(cl_tpm_quote_verify(msg.data, msg.len, sig2.data, sig2.len, &pss,
                                   (const uint8_t *)"n", 1, &pcrs, err, sizeof err),
               CL_ESIG, err, "differs from the AK's fixed scheme rsapss/sha256");
    /* An empty selection: pcrDigest = H(""). */
    uint8_t h[32];
    cl_sha256("", 0, h);
    cl_buf msg3 = CL_BUF_INIT, sig3 = CL_BUF_INIT;
    build_attest(&msg3, (const uint8_t *)"n", 1, CL_TPM_ALG_SHA256, sel, h, 32);
    sign_tpmt(&sig3, rsa, CL_TPM_ALG_RSASSA, CL_TPM_ALG_SHA256, &msg3);
    assert_int_equal(cl_tpm_quote_verify(msg3.data, msg3.len, sig3.data, sig3.len, &ak,
                                         (const uint8_t *)"n", 1, &pcrs, err, sizeof err),
                     CL_OK);
    cl_tpm_public_free(&ak);
    cl_tpm_public_free(&pss);
    cl_buf_free(&pubb);
    cl_buf_free(&pb2);
    cl_buf_free(&msg);
    cl_buf_free(&sig);
    cl_buf_free(&sig2);
    cl_buf_free(&msg3);
    cl_buf_free(&sig3);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(p384);
}

/* ---- claims
 * -------------------------------------------------------------------------------------- */

static void test_claims_vector(void **state)
{
    (void)state;
    vectors *v = load_vectors();
    cl_tpm_attest a;
    char err[256] = "";
    assert_int_equal(cl_tpm_attest_parse(v->msg, v->msg_n, &a, err, sizeof err), CL_OK);
    json_t *c = json_object();
    assert_int_equal(cl_tpm_claims(&a, &v->pcrs, &v->ak, 0, c), CL_OK);
    assert_true(json_is_false(json_object_get(c, "aikValidated")));
    assert_int_equal(json_integer_value(json_object_get(c, "tpmVersion")), 2);
    /* aikPubHash: standard base64 of SHA-256(SPKI DER of ak.pem), computed by openssl. */
    assert_string_equal(json_string_value(json_object_get(c, "aikPubHash")),
                        "pP9ODH8VmBd3UQC2kPJI2ClgzAl1BXREZYhe06+NAF0=");
    const char *zero = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    char want[600];
    snprintf(want, sizeof want,
             "{\"PCRs\":[{\"Index\":0,\"Digests\":{\"SHA256\":\"%s\"}},"
             "{\"Index\":1,\"Digests\":{\"SHA256\":\"%s\"}},"
             "{\"Index\":2,\"Digests\":{\"SHA256\":\"%s\"}},"
             "{\"Index\":3,\"Digests\":{\"SHA256\":\"%s\"}},"
             "{\"Index\":16,\"Digests\":{\"SHA256\":\"XFKYDJnsKCab6WywIrPsTdJhe7SO51aKAGse7ZvMLFo="
             "\"}}]}",
             zero, zero, zero, zero);
    assert_string_equal(json_string_value(json_object_get(c, "pcrs")), want);
    json_decref(c);

    /* A missing value is refused. */
    cl_tpm_pcrs *p = malloc(sizeof *p);
    *p = v->pcrs;
    p->banks[0].present &= ~1u;
    c = json_object();
    assert_int_equal(cl_tpm_claims(&a, p, &v->ak, 0, c), CL_EINVAL);
    json_decref(c);
    free(p);

    /* Allocation failures surface as CL_ENOMEM without leaks. */
    long failed = 0;
    for (long n = 0; n < 200; n++) {
        long before = cl_alloc_failures();
        c = json_object();
        assert_non_null(c);
        cl_alloc_fail_after(n);
        int rc = cl_tpm_claims(&a, &v->pcrs, &v->ak, 1, c);
        cl_alloc_fail_after(-1);
        json_decref(c);
        if (cl_alloc_failures() == before) {
            assert_int_equal(rc, CL_OK);
            break;
        }
        failed++;
        assert_int_equal(rc, CL_ENOMEM);
    }
    assert_true(failed > 0);
    free_vectors(v);
}

/* ---- credential activation
 * ----------------------------------------------------------------------- */

static void cred_file_parts(const uint8_t *f, size_t n, const uint8_t **id, size_t *idn,
                            const uint8_t **es, size_t *esn)
{
    assert_true(n > 12);
    assert_memory_equal(f, "\xba\xdc\xc0\xde\x00\x00\x00\x01", 8);
    *id = f + 8;
    *idn = 2 + ((size_t)f[8] << 8 | f[9]);
    *es = f + 8 + *idn;
    *esn = n - 8 - *idn;
    assert_int_equal(*esn, 2 + ((size_t)(*es)[0] << 8 | (*es)[1]));
}

/* tpm2_makecredential's output decrypts with our ActivateCredential, and our blob construction
 * from the recovered seed reproduces its TPM2B_ID_OBJECT byte for byte. */
static void check_tpm2tools_kat(const char *key_pem, const tmpl *t, const char *cred_hex)
{
    vectors *v = load_vectors();
    EVP_PKEY *k = pem_key(key_pem);
    cl_buf pubb = CL_BUF_INIT, secret = CL_BUF_INIT, blob = CL_BUF_INIT, file = CL_BUF_INIT;
    build_public(&pubb, t, k);
    cl_tpm_public ek;
    parse_public_ok(&pubb, &ek);
    size_t fn, idn, esn, seedn = 0;
    uint8_t *f = unhex(cred_hex, &fn);
    const uint8_t *id, *es;
    cred_file_parts(f, fn, &id, &idn, &es, &esn);
    uint8_t seed[64];
    char err[256] = "";
    int rc = cl_tpm_activate_credential_soft(k, &ek, v->akname, v->akname_n, id, idn, es, esn,
                                             &secret, seed, sizeof seed, &seedn, err, sizeof err);
    if (rc != CL_OK)
        fail_msg("activate tpm2-tools credential: %s", err);
    assert_int_equal(secret.len, strlen(SECRET));
    assert_memory_equal(secret.data, SECRET, secret.len);
    assert_int_equal(seedn, 32);
    assert_int_equal(cl_tpm_credential_blob(&ek, v->akname, v->akname_n, (const uint8_t *)SECRET,
                                            strlen(SECRET), seed, seedn, &blob, err, sizeof err),
                     CL_OK);
    assert_int_equal(blob.len, idn);
    assert_memory_equal(blob.data, id, idn);
    /* And the tpm2-tools file format round-trips. */
    assert_int_equal(cl_tpm_credential_file(blob.data, blob.len, es, esn, &file), CL_OK);
    assert_int_equal(file.len, fn);
    assert_memory_equal(file.data, f, fn);
    /* Under another Name the integrity check fails. */
    uint8_t name[34];
    memcpy(name, v->akname, 34);
    name[33] ^= 1;
    expect_err(cl_tpm_activate_credential_soft(k, &ek, name, 34, id, idn, es, esn, &secret, NULL, 0,
                                               NULL, err, sizeof err),
               CL_ESIG, err, "integrity HMAC does not verify");
    cl_free(f);
    cl_tpm_public_free(&ek);
    cl_buf_free(&pubb);
    cl_buf_free(&secret);
    cl_buf_free(&blob);
    cl_buf_free(&file);
    EVP_PKEY_free(k);
    free_vectors(v);
}

static void test_make_credential_tpm2tools_rsa(void **state)
{
    (void)state;
    check_tpm2tools_kat(EK_RSA_KEY, &EK_RSA_TMPL, EK_RSA_CRED_HEX);
}

static void test_make_credential_tpm2tools_ecc(void **state)
{
    (void)state;
    check_tpm2tools_kat(EK_EC_KEY, &EK_EC_TMPL, EK_EC_CRED_HEX);
}

static void roundtrip(EVP_PKEY *k, const tmpl *t, size_t secret_len, size_t want_es)
{
    vectors *v = load_vectors();
    cl_buf pubb = CL_BUF_INIT, id = CL_BUF_INIT, es = CL_BUF_INIT, out = CL_BUF_INIT;
    build_public(&pubb, t, k);
    cl_tpm_public ek;
    parse_public_ok(&pubb, &ek);
    uint8_t secret[64];
    assert_int_equal(cl_random(secret, sizeof secret), CL_OK);
    char err[256] = "";
    int rc =
        cl_tpm_make_credential(&ek, v->akname, 34, secret, secret_len, &id, &es, err, sizeof err);
    if (rc != CL_OK)
        fail_msg("make-credential: %s", err);
    size_t dsz = cl_tpm_hash_size(t->name_alg);
    /* TPM2B_ID_OBJECT = size || TPM2B_DIGEST(hmac) || AES-CFB(u16 len || secret). */
    assert_int_equal(id.len, 2 + 2 + dsz + 2 + secret_len);
    assert_int_equal((size_t)id.data[0] << 8 | id.data[1], id.len - 2);
    assert_int_equal((size_t)id.data[2] << 8 | id.data[3], dsz);
    assert_int_equal(es.len, want_es);
    assert_int_equal((size_t)es.data[0] << 8 | es.data[1], es.len - 2);
    rc = cl_tpm_activate_credential_soft(k, &ek, v->akname, 34, id.data, id.len, es.data, es.len,
                                         &out, NULL, 0, NULL, err, sizeof err);
    if (rc != CL_OK)
        fail_msg("activate: %s", err);
    assert_int_equal(out.len, secret_len);
    assert_memory_equal(out.data, secret, secret_len);
    /* Any flipped byte of the blob or the encrypted secret is detected. */
    for (size_t i = 0; i < id.len; i++) {
        id.data[i] ^= 0x04;
        out.len = 0;
        assert_true(cl_tpm_activate_credential_soft(k, &ek, v->akname, 34, id.data, id.len, es.data,
                                                    es.len, &out, NULL, 0, NULL, err,
                                                    sizeof err) < 0);
        id.data[i] ^= 0x04;
    }
    for (size_t i = 0; i < es.len; i += 7) {
        es.data[i] ^= 0x04;
        out.len = 0;
        assert_true(cl_tpm_activate_credential_soft(k, &ek, v->akname, 34, id.data, id.len, es.data,
                                                    es.len, &out, NULL, 0, NULL, err,
                                                    sizeof err) < 0);
        es.data[i] ^= 0x04;
    }
    cl_tpm_public_free(&ek);
    cl_buf_free(&pubb);
    cl_buf_free(&id);
    cl_buf_free(&es);
    cl_buf_free(&out);
    free_vectors(v);
}

static void test_make_credential_roundtrip(void **state)
{
    (void)state;
    EVP_PKEY *rsa = pem_key(EK_RSA_KEY), *ec = pem_key(EK_EC_KEY);
    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    roundtrip(rsa, &EK_RSA_TMPL, 32, 2 + 256);
    roundtrip(rsa, &EK_RSA_TMPL, 1, 2 + 256);
    roundtrip(ec, &EK_EC_TMPL, 16, 2 + 4 + 64);
    /* The swtpm high-range P-384 EK shape: SHA-384 nameAlg, AES-256-CFB. */
    tmpl t384 = {CL_TPM_ALG_SHA384,   0x000300b2, NULL, CL_TPM_ALG_AES, 256, CL_TPM_ALG_NULL, 0,
                 CL_TPM_ECC_NIST_P384};
    roundtrip(p384, &t384, 48, 2 + 4 + 96);
    EVP_PKEY_free(p384);

    /* Refusals. */
    vectors *v = load_vectors();
    cl_buf pubb = CL_BUF_INIT, id = CL_BUF_INIT, es = CL_BUF_INIT;
    build_public(&pubb, &EK_RSA_TMPL, rsa);
    cl_tpm_public ek;
    parse_public_ok(&pubb, &ek);
    uint8_t secret[33] = {1};
    char err[256] = "";
    expect_err(cl_tpm_make_credential(&ek, v->akname, 34, secret, 33, &id, &es, err, sizeof err),
               CL_EINVAL, err, "credential secret of 33 bytes: must be 1 to 32 bytes");
    expect_err(cl_tpm_make_credential(&ek, v->akname, 33, secret, 32, &id, &es, err, sizeof err),
               CL_EFORMAT, err, "AK Name of 33 bytes does not fit its nameAlg 0x000b");
    expect_err(cl_tpm_make_credential(&v->ak, v->akname, 34, secret, 32, &id, &es, err, sizeof err),
               CL_EUNSUPPORTED, err, "needs a restricted decryption (storage) key");
    assert_int_equal(id.len, 0);
    assert_int_equal(es.len, 0);
    /* The wrong private key cannot recover the seed. */
    assert_int_equal(
        cl_tpm_make_credential(&ek, v->akname, 34, secret, 32, &id, &es, err, sizeof err), CL_OK);
    EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    cl_buf out = CL_BUF_INIT;
    expect_err(cl_tpm_activate_credential_soft(other, &ek, v->akname, 34, id.data, id.len, es.data,
                                               es.len, &out, NULL, 0, NULL, err, sizeof err),
               CL_EDECRYPT, err, "does not decrypt with the EK private key");
    EVP_PKEY_free(other);
    cl_buf_free(&out);
    cl_tpm_public_free(&ek);
    cl_buf_free(&pubb);
    cl_buf_free(&id);
    cl_buf_free(&es);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    free_vectors(v);
}

/* ---- certificates --------------------------------------------------------------------------- */

static char *roots(const char *a, const char *b, size_t *n)
{
    size_t an = 0, bn = 0;
    uint8_t *pa = a ? vec(a, &an) : NULL, *pb = b ? vec(b, &bn) : NULL;
    char *out = malloc(an + bn + 2);
    memcpy(out, pa ? (char *)pa : "", an);
    memcpy(out + an, pb ? (char *)pb : "", bn);
    out[an + bn] = '\0';
    *n = an + bn;
    free(pa);
    free(pb);
    return out;
}

/* An EK public area (TCG RSA template) for the key inside a DER certificate. */
static void ek_public_from_cert(const uint8_t *der, size_t n, const tmpl *t, cl_tpm_public *out)
{
    const unsigned char *q = der;
    X509 *x = d2i_X509(NULL, &q, (long)n);
    assert_non_null(x);
    cl_buf b = CL_BUF_INIT;
    build_public(&b, t, X509_get0_pubkey(x));
    parse_public_ok(&b, out);
    cl_buf_free(&b);
    X509_free(x);
}

static void test_ek_certs(void **state)
{
    (void)state;
    vectors *v = load_vectors();
    size_t rn, dn, en, rootn, issn;
    char *both = roots("swtpm-localca-root.pem", "swtpm-localca-issuer.pem", &rn);
    char *root = roots("swtpm-localca-root.pem", NULL, &rootn);
    char *issuer = roots("swtpm-localca-issuer.pem", NULL, &issn);
    uint8_t *rsa = vec("ek_rsa_cert.der", &dn), *ecc = vec("ek_ecc_cert.der", &en);
    char err[256] = "";
    int rc = cl_tpm_ek_cert_verify(rsa, dn, both, rn, NULL, T_VALID, err, sizeof err);
    if (rc != CL_OK)
        fail_msg("RSA EK cert: %s", err);
    assert_int_equal(cl_tpm_ek_cert_verify(ecc, en, both, rn, NULL, T_VALID, err, sizeof err),
                     CL_OK);
    /* The issuing CA alone is a configured anchor too. */
    assert_int_equal(cl_tpm_ek_cert_verify(rsa, dn, issuer, issn, NULL, T_VALID, err, sizeof err),
                     CL_OK);
    /* The root without the issuer: no path. */
    expect_err(cl_tpm_ek_cert_verify(rsa, dn, root, rootn, NULL, T_VALID, err, sizeof err),
               CL_ECHAIN, err,
               "EK certificate does not chain to a configured root: unable to get local issuer");
    /* The issuing CA's own certificate chains to the root, but it is no EK certificate. */
    BIO *ib = BIO_new_mem_buf(issuer, (int)issn);
    X509 *ix = PEM_read_bio_X509(ib, NULL, NULL, NULL);
    assert_non_null(ix);
    unsigned char *ider = NULL;
    int idl = i2d_X509(ix, &ider);
    expect_err(
        cl_tpm_ek_cert_verify(ider, (size_t)idl, root, rootn, NULL, T_VALID, err, sizeof err),
        CL_ECHAIN, err, "EK certificate is a CA certificate");
    OPENSSL_free(ider);
    X509_free(ix);
    BIO_free(ib);
    /* Before notBefore. */
    expect_err(cl_tpm_ek_cert_verify(rsa, dn, both, rn, NULL, T_BEFORE, err, sizeof err),
               CL_EEXPIRED, err, "certificate is not yet valid");
    /* Key match: the RSA EK public area built from the certificate's key, and the AK. */
    cl_tpm_public ek;
    ek_public_from_cert(rsa, dn, &EK_RSA_TMPL, &ek);
    assert_int_equal(cl_tpm_ek_cert_verify(rsa, dn, both, rn, &ek, T_VALID, err, sizeof err),
                     CL_OK);
    expect_err(cl_tpm_ek_cert_verify(rsa, dn, both, rn, &v->ak, T_VALID, err, sizeof err),
               CL_EBINDING, err, "EK certificate public key differs from the EK public area");
    expect_err(cl_tpm_ek_cert_verify(ecc, en, both, rn, &ek, T_VALID, err, sizeof err), CL_EBINDING,
               err, "differs");
    cl_tpm_public_free(&ek);
    /* Malformed inputs. */
    expect_err(cl_tpm_ek_cert_verify(rsa, dn - 1, both, rn, NULL, T_VALID, err, sizeof err),
               CL_EPEM, err, "not one DER certificate");
    uint8_t *longer = malloc(dn + 1);
    memcpy(longer, rsa, dn);
    longer[dn] = 0;
    expect_err(cl_tpm_ek_cert_verify(longer, dn + 1, both, rn, NULL, T_VALID, err, sizeof err),
               CL_EPEM, err, "not one DER certificate (1017 bytes)");
    free(longer);
    rsa[dn - 5] ^= 1; /* inside the signature */
    expect_err(cl_tpm_ek_cert_verify(rsa, dn, both, rn, NULL, T_VALID, err, sizeof err), CL_ECHAIN,
               err, "signature failure");
    rsa[dn - 5] ^= 1;
    expect_err(cl_tpm_ek_cert_verify(rsa, dn, "", 0, NULL, T_VALID, err, sizeof err), CL_EPEM, err,
               "hold no PEM certificate");
    const char *garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    expect_err(
        cl_tpm_ek_cert_verify(rsa, dn, garbage, strlen(garbage), NULL, T_VALID, err, sizeof err),
        CL_EPEM, err, "PEM certificate 1 is malformed");
    free(both);
    free(root);
    free(issuer);
    free(rsa);
    free(ecc);
    free_vectors(v);
}

static void add_ext(X509 *x, int nid, const char *value)
{
    if (value == NULL)
        return;
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, NULL, nid, value);
    assert_non_null(e);
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
}

/* A certificate for `subject` signed by issuer_key, with basicConstraints CA:TRUE when ca, and
 * keyUsage ku and extendedKeyUsage eku when not NULL (the AK-certificate path). */
static X509 *make_cert_ext(EVP_PKEY *subject, EVP_PKEY *issuer_key, X509 *issuer, const char *cn,
                           int ca, const char *ku, const char *eku);

/* A CA and a certificate for `subject` signed by it (the AK-certificate path). */
static X509 *make_cert(EVP_PKEY *subject, EVP_PKEY *issuer_key, X509 *issuer, const char *cn,
                       int ca)
{
    return make_cert_ext(subject, issuer_key, issuer, cn, ca, NULL, NULL);
}

static X509 *make_cert_ext(EVP_PKEY *subject, EVP_PKEY *issuer_key, X509 *issuer, const char *cn,
                           int ca, const char *ku, const char *eku)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), ca ? 1 : 2);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME *name = X509_NAME_new();
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_subject_name(x, name);
    X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
    X509_NAME_free(name);
    X509_set_pubkey(x, subject);
    add_ext(x, NID_basic_constraints, ca ? "critical,CA:TRUE" : NULL);
    add_ext(x, NID_key_usage, ku);
    add_ext(x, NID_ext_key_usage, eku);
    assert_true(X509_sign(x, issuer_key, EVP_sha256()) > 0);
    return x;
}

static void test_ak_cert(void **state)
{
    (void)state;
    vectors *v = load_vectors();
    EVP_PKEY *cak = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *cak2 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *ca = make_cert(cak, cak, NULL, "cledger test AK CA", 1);
    X509 *ca2 = make_cert(cak2, cak2, NULL, "other CA", 1);
    X509 *leaf = make_cert(v->ak.pkey, cak, ca, "AK", 0);
    BIO *bio = BIO_new(BIO_s_mem()), *bio2 = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, ca);
    PEM_write_bio_X509(bio2, ca2);
    char *pem, *pem2;
    long pn = BIO_get_mem_data(bio, &pem), pn2 = BIO_get_mem_data(bio2, &pem2);
    unsigned char *der = NULL;
    int dl = i2d_X509(leaf, &der);
    int64_t now = (int64_t)time(NULL);
    char err[256] = "";
    int rc = cl_tpm_ak_cert_verify(der, (size_t)dl, pem, (size_t)pn, &v->ak, now, err, sizeof err);
    if (rc != CL_OK)
        fail_msg("AK cert: %s", err);
    cl_tpm_public other;
    other_ecc_ak(v, &other);
    expect_err(
        cl_tpm_ak_cert_verify(der, (size_t)dl, pem, (size_t)pn, &other, now, err, sizeof err),
        CL_EBINDING, err, "AK certificate public key differs from the AK public area");
    expect_err(
        cl_tpm_ak_cert_verify(der, (size_t)dl, pem2, (size_t)pn2, &v->ak, now, err, sizeof err),
        CL_ECHAIN, err, "AK certificate does not chain");
    expect_err(cl_tpm_ak_cert_verify(der, (size_t)dl, pem, (size_t)pn, &v->ak, now + 7200, err,
                                     sizeof err),
               CL_EEXPIRED, err, "expired");
    expect_err(cl_tpm_ak_cert_verify(der, (size_t)dl, pem, (size_t)pn, NULL, now, err, sizeof err),
               CL_EINVAL, err, "needs the AK public area");
    /* A certificate of the AK's key that is not for an AK: refused though it chains and the key
     * matches. An AK certificate with the TCG purpose and digitalSignature: accepted. */
    static const struct {
        int ca;
        const char *ku, *eku, *want;
    } purpose[] = {
        {1, "critical,keyCertSign", "serverAuth", "AK certificate is a CA certificate"},
        {0, NULL, "serverAuth", "does not list tcg-kp-AIKCertificate (2.23.133.8.3)"},
        {0, NULL, "2.23.133.8.1", "does not list tcg-kp-AIKCertificate"},
        {0, "critical,keyEncipherment", NULL, "key usage does not allow digitalSignature"},
        {0, "critical,digitalSignature", "2.23.133.8.3", NULL},
        {0, "digitalSignature,keyEncipherment", "serverAuth,2.23.133.8.3", NULL},
    };
    for (size_t i = 0; i < sizeof purpose / sizeof purpose[0]; i++) {
        X509 *x =
            make_cert_ext(v->ak.pkey, cak, ca, "AK", purpose[i].ca, purpose[i].ku, purpose[i].eku);
        unsigned char *xd = NULL;
        int xl = i2d_X509(x, &xd);
        rc = cl_tpm_ak_cert_verify(xd, (size_t)xl, pem, (size_t)pn, &v->ak, now, err, sizeof err);
        if (purpose[i].want == NULL ? rc != CL_OK
                                    : rc != CL_ECHAIN || strstr(err, purpose[i].want) == NULL)
            fail_msg("AK certificate %zu: %d %s", i, rc, err);
        OPENSSL_free(xd);
        X509_free(x);
    }
    cl_tpm_public_free(&other);
    OPENSSL_free(der);
    BIO_free(bio);
    BIO_free(bio2);
    X509_free(ca);
    X509_free(ca2);
    X509_free(leaf);
    EVP_PKEY_free(cak);
    EVP_PKEY_free(cak2);
    free_vectors(v);
}

static void test_alg_names(void **state)
{
    (void)state;
    assert_string_equal(cl_tpm_alg_name(CL_TPM_ALG_SHA256), "sha256");
    assert_string_equal(cl_tpm_alg_name(0x7777), "unknown");
    assert_int_equal(cl_tpm_hash_from_name("sha384"), CL_TPM_ALG_SHA384);
    assert_int_equal(cl_tpm_hash_from_name("rsa"), 0);
    assert_int_equal(cl_tpm_hash_size(CL_TPM_ALG_SHA512), 64);
    assert_null(cl_tpm_hash_md(CL_TPM_ALG_RSA));
}

int main(void)
{
    find_vectors();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attest_vector),
        cmocka_unit_test(test_public_vector),
        cmocka_unit_test(test_signature_vector),
        cmocka_unit_test(test_pcrs_files),
        cmocka_unit_test(test_quote_vector_ok),
        cmocka_unit_test(test_quote_wrong_nonce),
        cmocka_unit_test(test_quote_pcr_mismatch),
        cmocka_unit_test(test_quote_flip_every_attest_byte),
        cmocka_unit_test(test_quote_flip_every_sig_byte),
        cmocka_unit_test(test_quote_truncations),
        cmocka_unit_test(test_quote_other_ak),
        cmocka_unit_test(test_quote_software_keys),
        cmocka_unit_test(test_claims_vector),
        cmocka_unit_test(test_make_credential_tpm2tools_rsa),
        cmocka_unit_test(test_make_credential_tpm2tools_ecc),
        cmocka_unit_test(test_make_credential_roundtrip),
        cmocka_unit_test(test_ek_certs),
        cmocka_unit_test(test_ak_cert),
        cmocka_unit_test(test_alg_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
