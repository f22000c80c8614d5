/*
 * test_crypto.c — EC keys, X.509 parsing/issuance, AES-256-GCM (src/crypto/{ec,x509,aead}.c).
 *
 * Real receipt vectors come from shared/receipt-vectors (CLEDGER_SOURCE_DIR/../shared, falling back
 * to /work/shared). Temporary files go to a mkdtemp directory removed at the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/hmac.h>

#include <dirent.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/codec.h"
#include "base/json.h"
#include "crypto/aead.h"
#include "crypto/ec.h"
#include "crypto/hash.h"
#include "crypto/x509.h"

/* ---- helpers ----------------------------------------------------------------------------------
 */

static char vectors_dir[4096];
static char tmp_dir[64];

static void find_vectors_dir(void)
{
    const char *src = getenv("CLEDGER_SOURCE_DIR");
    struct stat st;
    if (src != NULL) {
        snprintf(vectors_dir, sizeof vectors_dir, "%s/../shared/receipt-vectors", src);
        if (stat(vectors_dir, &st) == 0 && S_ISDIR(st.st_mode))
            return;
    }
    snprintf(vectors_dir, sizeof vectors_dir, "/work/shared/receipt-vectors");
}

/* Whole file, NUL-terminated, plain malloc (free with free). Fails the test when missing. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    assert_true(n >= 0);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    if (len)
        *len = (size_t)n;
    return buf;
}

static char *read_vector(const char *name, size_t *len)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", vectors_dir, name);
    return read_file(path, len);
}

static void tmp_path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", tmp_dir, name);
}

static cl_cert *load_vector_cert(const char *name)
{
    size_t len;
    char *pem = read_vector(name, &len);
    cl_cert *c = NULL;
    assert_int_equal(cl_cert_from_pem(pem, len, &c), CL_OK);
    free(pem);
    return c;
}

typedef struct {
    cl_cert *cert;
    uint8_t *sig;
    size_t siglen;
    uint8_t node_id[32];
} receipt;

static void load_receipt(const char *name, receipt *r)
{
    size_t len;
    char *text = read_vector(name, &len);
    json_t *j = NULL;
    assert_int_equal(cl_json_parse(text, len, 1 << 20, &j, NULL, 0), CL_OK);
    const char *s;
    size_t sl;
    assert_int_equal(cl_json_get_str(j, "cert", &s, &sl), CL_OK);
    assert_int_equal(cl_cert_from_pem(s, sl, &r->cert), CL_OK);
    assert_int_equal(cl_json_get_str(j, "signature", &s, &sl), CL_OK);
    assert_int_equal(cl_b64_decode_alloc(s, sl, &r->sig, &r->siglen, CL_B64_STD), CL_OK);
    assert_int_equal(cl_json_get_hex(j, "nodeId", r->node_id, 32), CL_OK);
    json_decref(j);
    free(text);
}

static void free_receipt(receipt *r)
{
    cl_cert_free(r->cert);
    cl_free(r->sig);
}

static void hex(const char *s, uint8_t *out, size_t n)
{
    assert_int_equal(cl_hex_decode(s, strlen(s), out, n), CL_OK);
}

static char *cert_pem(const cl_cert *c, size_t *len)
{
    char *pem = NULL;
    assert_int_equal(cl_cert_to_pem(c, &pem, len), CL_OK);
    return pem;
}

/* A self-signed certificate for an arbitrary OpenSSL key, built without our code. */
static char *foreign_cert_pem(EVP_PKEY *pkey, const EVP_MD *md)
{
    X509 *x = X509_new();
    assert_non_null(x);
    assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"foreign", -1, -1, 0);
    X509_set_issuer_name(x, n);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    assert_int_equal(X509_set_pubkey(x, pkey), 1);
    assert_true(X509_sign(x, pkey, md) > 0);
    BIO *b = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_X509(b, x), 1);
    char *data;
    long len = BIO_get_mem_data(b, &data);
    char *s = malloc((size_t)len + 1);
    memcpy(s, data, (size_t)len);
    s[len] = '\0';
    BIO_free(b);
    X509_free(x);
    return s;
}

static const char ROOT_1[] = "283afa446263bcc3be31a980957fe3d0196494bf100df6774249f09d10755101";
static const char ROOT_2[] = "b27c68aaafa33f67bdfe0854f8460f03d16caef750ba1927946bfbe1d9720a47";
static const char ROOT_P384[] = "f7b9072e3235ea1f5fe150f7153527bd670009ebbc48a37e4fd6c4428f6fa148";
static const char NODE_ID_1[] = "708c2e71b2533e5eb38e05cc344390d133c8fb336cb80481ab4e5e902e6131a5";

/* ---- EC keys ----------------------------------------------------------------------------------
 */

static void sign_verify_curve(cl_curve curve)
{
    cl_key *k = NULL, *other = NULL;
    assert_int_equal(cl_key_generate(curve, &k), CL_OK);
    assert_int_equal(cl_key_generate(curve, &other), CL_OK);
    assert_int_equal(k->curve, curve);
    assert_true(k->has_private);

    uint8_t d32[32], d48[48], sig[CL_ECDSA_MAX_DER];
    size_t siglen = 0;
    assert_int_equal(cl_random(d32, sizeof d32), CL_OK);
    assert_int_equal(cl_random(d48, sizeof d48), CL_OK);

    assert_int_equal(cl_key_sign_prehashed(k, d32, 32, sig, &siglen), CL_OK);
    assert_true(siglen > 8 && siglen <= (curve == CL_CURVE_P256 ? 72u : 104u));
    assert_int_equal(sig[0], 0x30); /* DER SEQUENCE */
    assert_int_equal(cl_key_verify_prehashed(k, d32, 32, sig, siglen), CL_OK);
    assert_int_equal(cl_key_verify_prehashed(other, d32, 32, sig, siglen), CL_ESIG);

    uint8_t bad[32];
    memcpy(bad, d32, 32);
    bad[31] ^= 1;
    assert_int_equal(cl_key_verify_prehashed(k, bad, 32, sig, siglen), CL_ESIG);

    uint8_t mut[CL_ECDSA_MAX_DER + 1];
    memcpy(mut, sig, siglen);
    mut[siglen - 1] ^= 0x40;
    assert_int_equal(cl_key_verify_prehashed(k, d32, 32, mut, siglen), CL_ESIG);
    /* malformed DER: truncated, trailing byte, garbage, empty */
    assert_int_equal(cl_key_verify_prehashed(k, d32, 32, sig, siglen - 1), CL_ESIG);
    memcpy(mut, sig, siglen);
    mut[siglen] = 0;
    assert_int_equal(cl_key_verify_prehashed(k, d32, 32, mut, siglen + 1), CL_ESIG);
    memset(mut, 0xff, 40);
    assert_int_equal(cl_key_verify_prehashed(k, d32, 32, mut, 40), CL_ESIG);
    assert_int_equal(cl_key_verify_prehashed(k, d32, 32, sig, 0), CL_ESIG);
    assert_int_equal(cl_key_verify_prehashed(k, d32, 32, NULL, 0), CL_ESIG);

    /* 48-byte digests (SHA-384 size) on either curve */
    assert_int_equal(cl_key_sign_prehashed(k, d48, 48, sig, &siglen), CL_OK);
    assert_int_equal(cl_key_verify_prehashed(k, d48, 48, sig, siglen), CL_OK);
    d48[0] ^= 1;
    assert_int_equal(cl_key_verify_prehashed(k, d48, 48, sig, siglen), CL_ESIG);

    /* digest lengths other than 32/48 are a caller error */
    assert_int_equal(cl_key_sign_prehashed(k, d32, 20, sig, &siglen), CL_EINVAL);
    assert_int_equal(cl_key_verify_prehashed(k, d32, 20, sig, siglen), CL_EINVAL);

    /* public-only key cannot sign */
    cl_key *pub = NULL;
    cl_buf spki = CL_BUF_INIT;
    assert_int_equal(cl_key_spki_der(k, &spki), CL_OK);
    const unsigned char *p = spki.data;
    EVP_PKEY *pk = d2i_PUBKEY(NULL, &p, (long)spki.len);
    assert_non_null(pk);
    assert_int_equal(cl_key_from_pkey(pk, &pub), CL_OK);
    EVP_PKEY_free(pk); /* cl_key_from_pkey took its own reference */
    assert_false(pub->has_private);
    assert_int_equal(cl_key_sign_prehashed(pub, d32, 32, sig, &siglen), CL_EINVAL);
    assert_int_equal(cl_key_sign_prehashed(k, d32, 32, sig, &siglen), CL_OK);
    assert_int_equal(cl_key_verify_prehashed(pub, d32, 32, sig, siglen), CL_OK);
    cl_buf_free(&spki);
    cl_key_free(pub);
    cl_key_free(k);
    cl_key_free(other);
    assert_int_equal(ERR_peek_error(), 0);
}

/* The random pool hands out distinct bytes, refills when empty, wipes what it gave away. */
static void test_random_pool(void **state)
{
    (void)state;
    cl_random_pool *p = malloc(sizeof *p);
    assert_non_null(p);
    cl_random_pool_init(p);
    uint8_t prev[32] = {0}, k[32];
    size_t takes = 3 * CL_RANDOM_POOL_BYTES / 32 + 7; /* crosses several refills */
    for (size_t i = 0; i < takes; i++) {
        assert_int_equal(cl_random_pool_take(p, k, sizeof k), CL_OK);
        assert_true(memcmp(k, prev, sizeof k) != 0);
        memcpy(prev, k, sizeof k);
        for (size_t j = 0; j < p->off; j++) /* everything handed out is zero in the pool */
            assert_int_equal(p->buf[j], 0);
    }
    uint8_t odd[CL_RANDOM_POOL_BYTES - 1];
    assert_int_equal(cl_random_pool_take(p, odd, sizeof odd), CL_OK); /* forces a refill */
    assert_int_equal(p->off, sizeof odd);
    uint8_t big[CL_RANDOM_POOL_BYTES + 1];
    assert_int_equal(cl_random_pool_take(p, big, sizeof big), CL_EINVAL);
    cl_random_pool_wipe(p);
    for (size_t j = 0; j < sizeof p->buf; j++)
        assert_int_equal(p->buf[j], 0);
    free(p);
}

static void test_sign_verify_p256(void **state)
{
    (void)state;
    sign_verify_curve(CL_CURVE_P256);
}

static void test_sign_verify_p384(void **state)
{
    (void)state;
    sign_verify_curve(CL_CURVE_P384);
}

/* The digest is signed as is: ECDSA(SHA256(d)) (what EVP_DigestSign(d) makes) is different. */
static void test_prehashed_is_not_rehashed(void **state)
{
    (void)state;
    cl_key *k = NULL;
    assert_int_equal(cl_key_generate(CL_CURVE_P256, &k), CL_OK);
    uint8_t d[32], hd[32], sig[CL_ECDSA_MAX_DER];
    size_t siglen = 0;
    assert_int_equal(cl_random(d, sizeof d), CL_OK);
    cl_sha256(d, sizeof d, hd);

    assert_int_equal(cl_key_sign_prehashed(k, d, 32, sig, &siglen), CL_OK);
    assert_int_equal(cl_key_verify_prehashed(k, hd, 32, sig, siglen), CL_ESIG);
    /* OpenSSL's hash-then-sign verify of message d must reject our prehashed signature */
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(mctx, NULL, EVP_sha256(), NULL, k->pkey), 1);
    assert_int_not_equal(EVP_DigestVerify(mctx, sig, siglen, d, sizeof d), 1);
    EVP_MD_CTX_free(mctx);
    ERR_clear_error();

    /* and a hash-then-sign signature over message d verifies prehashed only with SHA256(d) */
    uint8_t dsig[CL_ECDSA_MAX_DER];
    size_t dsiglen = sizeof dsig;
    mctx = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(mctx, NULL, EVP_sha256(), NULL, k->pkey), 1);
    assert_int_equal(EVP_DigestSign(mctx, dsig, &dsiglen, d, sizeof d), 1);
    EVP_MD_CTX_free(mctx);
    assert_int_equal(cl_key_verify_prehashed(k, hd, 32, dsig, dsiglen), CL_OK);
    assert_int_equal(cl_key_verify_prehashed(k, d, 32, dsig, dsiglen), CL_ESIG);
    cl_key_free(k);
}

static void test_key_types(void **state)
{
    (void)state;
    cl_key *k = NULL;
    assert_int_equal(cl_key_generate((cl_curve)521, &k), CL_EKEYTYPE);
    assert_null(k);

    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    EVP_PKEY *k1 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "secp256k1");
    EVP_PKEY *p521 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    assert_non_null(rsa);
    assert_non_null(k1);
    assert_non_null(p521);
    assert_non_null(ed);
    assert_non_null(p384);
    assert_int_equal(cl_key_from_pkey(rsa, &k), CL_EKEYTYPE);
    assert_int_equal(cl_key_from_pkey(k1, &k), CL_EKEYTYPE);
    assert_int_equal(cl_key_from_pkey(p521, &k), CL_EKEYTYPE);
    assert_int_equal(cl_key_from_pkey(ed, &k), CL_EKEYTYPE);
    assert_int_equal(cl_key_from_pkey(p384, &k), CL_OK);
    assert_int_equal(k->curve, CL_CURVE_P384);
    assert_true(k->has_private);
    cl_key_free(k);

    /* certificates carrying those keys are rejected at parse time */
    char *pem = foreign_cert_pem(rsa, EVP_sha256());
    cl_cert *c = NULL;
    assert_int_equal(cl_cert_from_pem(pem, strlen(pem), &c), CL_EKEYTYPE);
    assert_null(c);
    free(pem);
    pem = foreign_cert_pem(k1, EVP_sha256());
    assert_int_equal(cl_cert_from_pem(pem, strlen(pem), &c), CL_EKEYTYPE);
    free(pem);
    pem = foreign_cert_pem(ed, NULL);
    assert_int_equal(cl_cert_from_pem(pem, strlen(pem), &c), CL_EKEYTYPE);
    free(pem);
    pem = foreign_cert_pem(p384, EVP_sha384());
    assert_int_equal(cl_cert_from_pem(pem, strlen(pem), &c), CL_OK);
    assert_int_equal(c->pub->curve, CL_CURVE_P384);
    assert_false(c->pub->has_private);
    cl_cert_free(c);
    free(pem);

    /* a private PEM of an RSA key is a key type error too */
    BIO *b = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(b, rsa, NULL, NULL, 0, NULL, NULL), 1);
    char *data;
    long n = BIO_get_mem_data(b, &data);
    assert_int_equal(cl_key_from_private_pem(data, (size_t)n, &k), CL_EKEYTYPE);
    BIO_free(b);

    EVP_PKEY_free(rsa);
    EVP_PKEY_free(k1);
    EVP_PKEY_free(p521);
    EVP_PKEY_free(ed);
    EVP_PKEY_free(p384);
    assert_int_equal(ERR_peek_error(), 0);
}

static void test_key_pem_files(void **state)
{
    (void)state;
    char path[256], tmp[300];
    tmp_path(path, sizeof path, "node.key");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    for (int i = 0; i < 2; i++) {
        cl_key *k = NULL, *back = NULL;
        assert_int_equal(cl_key_generate(i == 0 ? CL_CURVE_P256 : CL_CURVE_P384, &k), CL_OK);

        char *pem = NULL;
        size_t len = 0;
        assert_int_equal(cl_key_private_pem(k, &pem, &len), CL_OK);
        assert_int_equal(strlen(pem), len);
        assert_non_null(strstr(pem, "-----BEGIN PRIVATE KEY-----")); /* PKCS#8 */
        assert_int_equal(cl_key_from_private_pem(pem, len, &back), CL_OK);
        assert_int_equal(back->curve, k->curve);
        uint8_t a[32], b[32];
        assert_int_equal(cl_key_spki_sha256(k, a), CL_OK);
        assert_int_equal(cl_key_spki_sha256(back, b), CL_OK);
        assert_memory_equal(a, b, 32);
        cl_key_free(back);
        back = NULL;
        /* truncated and NUL-carrying PEM text */
        assert_int_equal(cl_key_from_private_pem(pem, len / 2, &back), CL_EPEM);
        pem[10] = '\0';
        assert_int_equal(cl_key_from_private_pem(pem, len, &back), CL_EPEM);
        cl_secret_free(pem, len + 1);

        /* a stale temporary file from an earlier crash is replaced, not an obstacle */
        FILE *f = fopen(tmp, "w");
        assert_non_null(f);
        fputs("stale", f);
        fclose(f);
        assert_int_equal(cl_key_save_private_pem(k, path), CL_OK);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        assert_int_not_equal(stat(tmp, &st), 0);

        assert_int_equal(cl_key_load_private_pem(path, &back), CL_OK);
        assert_true(back->has_private);
        assert_int_equal(cl_key_spki_sha256(back, b), CL_OK);
        assert_memory_equal(a, b, 32);
        uint8_t d[32] = {1, 2, 3}, sig[CL_ECDSA_MAX_DER];
        size_t siglen;
        assert_int_equal(cl_key_sign_prehashed(back, d, 32, sig, &siglen), CL_OK);
        assert_int_equal(cl_key_verify_prehashed(k, d, 32, sig, siglen), CL_OK);
        cl_key_free(back);
        cl_key_free(k);
    }
    cl_key *k = NULL;
    char missing[256];
    tmp_path(missing, sizeof missing, "nope.key");
    assert_int_equal(cl_key_load_private_pem(missing, &k), CL_ENOENT);
    /* a certificate file is not a private key */
    char cpath[4200];
    snprintf(cpath, sizeof cpath, "%s/service_cert_1.pem", vectors_dir);
    assert_int_equal(cl_key_load_private_pem(cpath, &k), CL_EPEM);
    /* saving into a missing directory fails cleanly */
    cl_key *g = NULL;
    assert_int_equal(cl_key_generate(CL_CURVE_P256, &g), CL_OK);
    tmp_path(missing, sizeof missing, "no/such/dir.key");
    assert_int_equal(cl_key_save_private_pem(g, missing), CL_ENOENT);
    cl_key_free(g);
}

/* ---- receipt vectors --------------------------------------------------------------------------
 */

static void test_receipt_signatures(void **state)
{
    (void)state;
    receipt r1, r2, r3;
    load_receipt("receipt_1.json", &r1);
    load_receipt("receipt_2.json", &r2);
    load_receipt("receipt_p384_claims.json", &r3);
    uint8_t root1[32], root2[32], root3[32], h[32];
    hex(ROOT_1, root1, 32);
    hex(ROOT_2, root2, 32);
    hex(ROOT_P384, root3, 32);

    assert_int_equal(r1.cert->pub->curve, CL_CURVE_P256);
    assert_int_equal(cl_key_verify_prehashed(r1.cert->pub, root1, 32, r1.sig, r1.siglen), CL_OK);
    cl_sha256(root1, 32, h);
    assert_int_equal(cl_key_verify_prehashed(r1.cert->pub, h, 32, r1.sig, r1.siglen), CL_ESIG);
    assert_int_equal(cl_key_verify_prehashed(r1.cert->pub, root2, 32, r1.sig, r1.siglen), CL_ESIG);
    assert_int_equal(cl_key_verify_prehashed(r2.cert->pub, root1, 32, r1.sig, r1.siglen), CL_ESIG);

    assert_int_equal(cl_key_verify_prehashed(r2.cert->pub, root2, 32, r2.sig, r2.siglen), CL_OK);
    assert_int_equal(cl_key_verify_prehashed(r1.cert->pub, root1, 32, r2.sig, r2.siglen), CL_ESIG);

    /* P-384 node key, 32-byte root used as is */
    assert_int_equal(r3.cert->pub->curve, CL_CURVE_P384);
    assert_int_equal(cl_key_verify_prehashed(r3.cert->pub, root3, 32, r3.sig, r3.siglen), CL_OK);
    cl_sha256(root3, 32, h);
    assert_int_equal(cl_key_verify_prehashed(r3.cert->pub, h, 32, r3.sig, r3.siglen), CL_ESIG);

    /* node ids = SHA-256 of the SPKI DER */
    uint8_t id[32], want[32];
    hex(NODE_ID_1, want, 32);
    assert_int_equal(cl_cert_spki_sha256(r1.cert, id), CL_OK);
    assert_memory_equal(id, want, 32);
    assert_memory_equal(id, r1.node_id, 32);
    assert_int_equal(cl_cert_spki_sha256(r2.cert, id), CL_OK);
    assert_memory_equal(id, r2.node_id, 32);
    assert_int_equal(cl_cert_spki_sha256(r3.cert, id), CL_OK);
    assert_memory_equal(id, r3.node_id, 32);
    assert_memory_not_equal(r1.node_id, r2.node_id, 32);

    free_receipt(&r1);
    free_receipt(&r2);
    free_receipt(&r3);
}

static void test_receipt_endorsements(void **state)
{
    (void)state;
    receipt r1, r2, r3;
    load_receipt("receipt_1.json", &r1);
    load_receipt("receipt_2.json", &r2);
    load_receipt("receipt_p384_claims.json", &r3);
    cl_cert *s1 = load_vector_cert("service_cert_1.pem");
    cl_cert *s2 = load_vector_cert("service_cert_2.pem");
    cl_cert *s3 = load_vector_cert("service_cert_p384.pem");

    assert_int_equal(cl_cert_verify_signed_by(r1.cert, s1->pub), CL_OK);
    assert_int_equal(cl_cert_verify_signed_by(r1.cert, s2->pub), CL_EENDORSE);
    assert_int_equal(cl_cert_verify_signed_by(r2.cert, s2->pub), CL_OK);
    assert_int_equal(cl_cert_verify_signed_by(r2.cert, s1->pub), CL_EENDORSE);
    /* ecdsa-with-SHA384 link with P-384 keys */
    assert_int_equal(s3->pub->curve, CL_CURVE_P384);
    assert_int_equal(X509_get_signature_nid(r3.cert->x509), NID_ecdsa_with_SHA384);
    assert_int_equal(cl_cert_verify_signed_by(r3.cert, s3->pub), CL_OK);
    assert_int_equal(cl_cert_verify_signed_by(r3.cert, s1->pub), CL_EENDORSE);
    assert_int_equal(cl_cert_verify_signed_by(r1.cert, s3->pub), CL_EENDORSE);
    /* the node key did not sign the service certificate */
    assert_int_equal(cl_cert_verify_signed_by(s1, r1.cert->pub), CL_EENDORSE);
    assert_int_equal(ERR_peek_error(), 0); /* failures leave no stale OpenSSL errors */

    assert_int_equal(cl_cert_same_key(r1.cert, r1.cert->pub), 1);
    assert_int_equal(cl_cert_same_key(r1.cert, s1->pub), 0);

    cl_cert_free(s1);
    cl_cert_free(s2);
    cl_cert_free(s3);
    free_receipt(&r1);
    free_receipt(&r2);
    free_receipt(&r3);
}

/* ---- PEM / DER --------------------------------------------------------------------------------
 */

static void test_cert_roundtrip(void **state)
{
    (void)state;
    size_t len;
    char *pem = read_vector("service_cert_1.pem", &len);
    cl_cert *c = NULL, *back = NULL;
    assert_int_equal(cl_cert_from_pem(pem, len, &c), CL_OK);

    cl_buf der = CL_BUF_INIT, der2 = CL_BUF_INIT;
    assert_int_equal(cl_cert_to_der(c, &der), CL_OK);
    assert_int_equal(cl_cert_from_der(der.data, der.len, &back), CL_OK);
    assert_int_equal(cl_cert_to_der(back, &der2), CL_OK);
    assert_int_equal(der.len, der2.len);
    assert_memory_equal(der.data, der2.data, der.len);

    uint8_t fp[32], h[32];
    assert_int_equal(cl_cert_fingerprint_sha256(c, fp), CL_OK);
    cl_sha256(der.data, der.len, h);
    assert_memory_equal(fp, h, 32);

    /* strict DER: one trailing byte, or one byte short, is rejected */
    cl_cert *bad = NULL;
    assert_int_equal(cl_buf_u8(&der, 0), CL_OK);
    assert_int_equal(cl_cert_from_der(der.data, der.len, &bad), CL_EPEM);
    assert_int_equal(cl_cert_from_der(der.data, der.len - 2, &bad), CL_EPEM);
    assert_int_equal(cl_cert_from_der(der.data, 0, &bad), CL_EPEM);
    assert_null(bad);

    /* PEM out and back in; the text equals the input certificate text */
    char *out = NULL;
    size_t outlen = 0;
    assert_int_equal(cl_cert_to_pem(back, &out, &outlen), CL_OK);
    assert_int_equal(strlen(out), outlen);
    assert_int_equal(outlen, len);
    assert_memory_equal(out, pem, len);
    cl_free(out);

    char path[256];
    tmp_path(path, sizeof path, "service.pem");
    assert_int_equal(cl_cert_save_pem(c, path), CL_OK);
    assert_int_equal(cl_cert_save_pem(c, path), CL_OK); /* atomic replace of an existing file */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    cl_cert *loaded = NULL;
    assert_int_equal(cl_cert_load_pem_file(path, &loaded), CL_OK);
    uint8_t fp2[32];
    assert_int_equal(cl_cert_fingerprint_sha256(loaded, fp2), CL_OK);
    assert_memory_equal(fp, fp2, 32);
    tmp_path(path, sizeof path, "missing.pem");
    cl_cert *none = NULL;
    assert_int_equal(cl_cert_load_pem_file(path, &none), CL_ENOENT);

    cl_cert_free(loaded);
    cl_buf_free(&der);
    cl_buf_free(&der2);
    cl_cert_free(back);
    cl_cert_free(c);
    free(pem);
}

static int pem_rc(const char *s, size_t len)
{
    cl_cert *c = NULL;
    int rc = cl_cert_from_pem(s, len, &c);
    if (rc == CL_OK)
        cl_cert_free(c);
    else
        assert_null(c);
    return rc;
}

static void test_pem_strict(void **state)
{
    (void)state;
    size_t len, len2;
    char *a = read_vector("service_cert_1.pem", &len);
    char *b = read_vector("service_cert_2.pem", &len2);
    char buf[8192];
    assert_true(len + len2 + 64 < sizeof buf);

    assert_int_equal(pem_rc(a, len), CL_OK);
    /* whitespace around the block is fine, with or without the final newline */
    int n = snprintf(buf, sizeof buf, " \n\t\r\n%s\n\n  \n", a);
    assert_int_equal(pem_rc(buf, (size_t)n), CL_OK);
    assert_int_equal(pem_rc(a, len - 1), CL_OK);

    /* two certificates */
    n = snprintf(buf, sizeof buf, "%s%s", a, b);
    assert_int_equal(pem_rc(buf, (size_t)n), CL_EPEM);
    n = snprintf(buf, sizeof buf, "%s%s", a, a);
    assert_int_equal(pem_rc(buf, (size_t)n), CL_EPEM);
    /* trailing garbage, on its own line or on the END line */
    n = snprintf(buf, sizeof buf, "%sjunk\n", a);
    assert_int_equal(pem_rc(buf, (size_t)n), CL_EPEM);
    n = snprintf(buf, sizeof buf, "%.*sjunk\n", (int)len - 1, a);
    assert_int_equal(pem_rc(buf, (size_t)n), CL_EPEM);
    /* leading garbage (OpenSSL alone would skip it) */
    n = snprintf(buf, sizeof buf, "hello\n%s", a);
    assert_int_equal(pem_rc(buf, (size_t)n), CL_EPEM);
    /* a NUL byte: inside, and right after the block */
    memcpy(buf, a, len);
    buf[100] = '\0';
    assert_int_equal(pem_rc(buf, len), CL_EPEM);
    memcpy(buf, a, len);
    buf[len] = '\0';
    assert_int_equal(pem_rc(buf, len + 1), CL_EPEM);
    /* truncated: no END line, cut inside the base64, nothing at all */
    assert_int_equal(pem_rc(a, len / 2), CL_EPEM);
    assert_int_equal(pem_rc(a, len - 27), CL_EPEM);
    assert_int_equal(pem_rc(a, 28), CL_EPEM);
    assert_int_equal(pem_rc(a, 0), CL_EPEM);
    assert_int_equal(pem_rc("   \n", 4), CL_EPEM);
    /* corrupted base64 body: the DER no longer parses */
    memcpy(buf, a, len);
    memset(buf + 40, 'A', 20);
    assert_int_equal(pem_rc(buf, len), CL_EPEM);
    /* other labels */
    const char *body = a + strlen("-----BEGIN CERTIFICATE-----");
    n = snprintf(buf, sizeof buf, "-----BEGIN X509 CERTIFICATE-----%.*s",
                 (int)(strstr(a, "-----END") - body), body);
    n += snprintf(buf + n, sizeof buf - (size_t)n, "-----END X509 CERTIFICATE-----\n");
    assert_int_equal(pem_rc(buf, (size_t)n), CL_EPEM);
    /* PEM headers inside the block */
    n = snprintf(buf, sizeof buf, "-----BEGIN CERTIFICATE-----\nComment: hi\n\n%s", body + 1);
    assert_int_equal(pem_rc(buf, (size_t)n), CL_EPEM);
    /* a private key is not a certificate */
    cl_key *k = NULL;
    char *kp = NULL;
    size_t kl = 0;
    assert_int_equal(cl_key_generate(CL_CURVE_P256, &k), CL_OK);
    assert_int_equal(cl_key_private_pem(k, &kp, &kl), CL_OK);
    assert_int_equal(pem_rc(kp, kl), CL_EPEM);
    cl_secret_free(kp, kl + 1);
    cl_key_free(k);
    /* DER handed to the PEM parser */
    cl_cert *c = NULL;
    cl_buf der = CL_BUF_INIT;
    assert_int_equal(cl_cert_from_pem(a, len, &c), CL_OK);
    assert_int_equal(cl_cert_to_der(c, &der), CL_OK);
    assert_int_equal(pem_rc((const char *)der.data, der.len), CL_EPEM);
    cl_buf_free(&der);
    cl_cert_free(c);

    assert_int_equal(ERR_peek_error(), 0);
    free(a);
    free(b);
}

/* ---- issuance ---------------------------------------------------------------------------------
 */

/* cert's authorityKeyIdentifier names issuer's subjectKeyIdentifier */
static int akid_matches(X509 *issuer, X509 *cert)
{
    const ASN1_OCTET_STRING *akid = X509_get0_authority_key_id(cert);
    const ASN1_OCTET_STRING *skid = X509_get0_subject_key_id(issuer);
    return akid != NULL && skid != NULL && ASN1_OCTET_STRING_cmp(akid, skid) == 0;
}

static int name_eq(const X509_NAME *a, const X509_NAME *b) { return X509_NAME_cmp(a, b) == 0; }

static void check_chain_validates(const cl_cert *ca, const cl_cert *leaf, int purpose)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    assert_int_equal(X509_STORE_add_cert(store, ca->x509), 1);
    assert_int_equal(X509_STORE_CTX_init(ctx, store, leaf->x509, NULL), 1);
    X509_STORE_CTX_set_purpose(ctx, purpose);
    int ok = X509_verify_cert(ctx);
    if (ok != 1)
        fail_msg("chain: %s", X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
}

static void test_issue_ca_and_node(void **state)
{
    (void)state;
    for (int v = 0; v < 2; v++) {
        cl_curve ca_curve = v == 0 ? CL_CURVE_P256 : CL_CURVE_P384;
        cl_key *ca_key = NULL, *node_key = NULL, *other = NULL;
        cl_cert *ca = NULL, *node = NULL;
        assert_int_equal(cl_key_generate(ca_curve, &ca_key), CL_OK);
        assert_int_equal(cl_key_generate(CL_CURVE_P256, &node_key), CL_OK);
        assert_int_equal(cl_key_generate(ca_curve, &other), CL_OK);
        time_t before = time(NULL);
        assert_int_equal(cl_cert_self_signed_ca(ca_key, "cledger service", 365, &ca), CL_OK);

        assert_int_equal(X509_get_version(ca->x509), X509_VERSION_3);
        assert_int_equal(X509_get_signature_nid(ca->x509),
                         v == 0 ? NID_ecdsa_with_SHA256 : NID_ecdsa_with_SHA384);
        assert_int_equal(cl_cert_verify_signed_by(ca, ca_key), CL_OK);
        assert_int_equal(cl_cert_verify_signed_by(ca, other), CL_EENDORSE);
        assert_int_equal(cl_cert_same_key(ca, ca_key), 1);
        assert_true(name_eq(X509_get_subject_name(ca->x509), X509_get_issuer_name(ca->x509)));
        assert_int_equal(X509_check_ca(ca->x509), 1);
        uint32_t ku = X509_get_key_usage(ca->x509);
        assert_true(ku & KU_KEY_CERT_SIGN);
        assert_true(ku & KU_CRL_SIGN);
        assert_true(ku & KU_DIGITAL_SIGNATURE);
        assert_non_null(X509_get0_subject_key_id(ca->x509));
        assert_true(akid_matches(ca->x509, ca->x509));
        int crit = 0;
        BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(ca->x509, NID_basic_constraints, &crit, NULL);
        assert_non_null(bc);
        assert_true(bc->ca);
        assert_int_equal(crit, 1);
        BASIC_CONSTRAINTS_free(bc);

        /* serial: positive, non-zero, at most 128 bits */
        BIGNUM *sn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(ca->x509), NULL);
        assert_false(BN_is_negative(sn));
        assert_false(BN_is_zero(sn));
        assert_true(BN_num_bits(sn) <= 128);
        BN_free(sn);
        /* validity: back-dated one hour, `days` ahead */
        assert_true(X509_cmp_time(X509_get0_notBefore(ca->x509), &before) < 0);
        time_t t = before - 3600 - 120;
        assert_true(X509_cmp_time(X509_get0_notBefore(ca->x509), &t) > 0);
        t = before + 364 * 86400;
        assert_true(X509_cmp_time(X509_get0_notAfter(ca->x509), &t) > 0);
        t = before + 366 * 86400;
        assert_true(X509_cmp_time(X509_get0_notAfter(ca->x509), &t) < 0);

        const char *sans[] = {"127.0.0.1", "::1", "node-0.example.com"};
        assert_int_equal(cl_cert_issue(node_key, "node 0", ca, ca_key, 30, sans, 3, &node), CL_OK);
        assert_int_equal(cl_cert_verify_signed_by(node, ca_key), CL_OK);
        assert_int_equal(cl_cert_verify_signed_by(node, node_key), CL_EENDORSE);
        assert_int_equal(cl_cert_verify_signed_by(node, other), CL_EENDORSE);
        assert_int_equal(cl_cert_same_key(node, node_key), 1);
        assert_int_equal(cl_cert_same_key(node, ca_key), 0);
        assert_int_equal(X509_get_signature_nid(node->x509),
                         v == 0 ? NID_ecdsa_with_SHA256 : NID_ecdsa_with_SHA384);
        assert_true(name_eq(X509_get_issuer_name(node->x509), X509_get_subject_name(ca->x509)));
        assert_false(name_eq(X509_get_subject_name(node->x509), X509_get_subject_name(ca->x509)));
        assert_int_equal(X509_check_ca(node->x509), 0);
        assert_true(akid_matches(ca->x509, node->x509));
        assert_true(X509_get_extended_key_usage(node->x509) & XKU_SSL_SERVER);
        assert_true(X509_get_extended_key_usage(node->x509) & XKU_SSL_CLIENT);
        assert_true(X509_get_key_usage(node->x509) & KU_DIGITAL_SIGNATURE);
        assert_false(X509_get_key_usage(node->x509) & KU_KEY_CERT_SIGN);
        GENERAL_NAMES *gens = X509_get_ext_d2i(node->x509, NID_subject_alt_name, NULL, NULL);
        assert_non_null(gens);
        assert_int_equal(sk_GENERAL_NAME_num(gens), 3);
        const GENERAL_NAME *g0 = sk_GENERAL_NAME_value(gens, 0);
        const GENERAL_NAME *g1 = sk_GENERAL_NAME_value(gens, 1);
        const GENERAL_NAME *g2 = sk_GENERAL_NAME_value(gens, 2);
        assert_int_equal(g0->type, GEN_IPADD);
        assert_int_equal(ASN1_STRING_length(g0->d.iPAddress), 4);
        assert_memory_equal(ASN1_STRING_get0_data(g0->d.iPAddress), "\x7f\0\0\x01", 4);
        assert_int_equal(g1->type, GEN_IPADD);
        assert_int_equal(ASN1_STRING_length(g1->d.iPAddress), 16);
        assert_int_equal(g2->type, GEN_DNS);
        assert_string_equal((const char *)ASN1_STRING_get0_data(g2->d.dNSName),
                            "node-0.example.com");
        GENERAL_NAMES_free(gens);
        /* OpenSSL's full path validation accepts the pair as a TLS server and client chain */
        assert_int_equal(X509_check_host(node->x509, "node-0.example.com", 0, 0, NULL), 1);
        assert_int_equal(X509_check_ip_asc(node->x509, "127.0.0.1", 0), 1);
        check_chain_validates(ca, node, X509_PURPOSE_SSL_SERVER);
        check_chain_validates(ca, node, X509_PURPOSE_SSL_CLIENT);

        /* round trip of an issued certificate keeps the link */
        size_t plen;
        char *pem = cert_pem(node, &plen);
        cl_cert *again = NULL;
        assert_int_equal(cl_cert_from_pem(pem, plen, &again), CL_OK);
        assert_int_equal(cl_cert_verify_signed_by(again, ca->pub), CL_OK);
        cl_cert_free(again);
        cl_free(pem);

        /* argument errors */
        cl_cert *x = NULL;
        const char *bad_sans[] = {"has space.example"};
        assert_int_equal(cl_cert_issue(node_key, "n", ca, ca_key, 30, bad_sans, 1, &x), CL_EINVAL);
        const char *bad_sans2[] = {""};
        assert_int_equal(cl_cert_issue(node_key, "n", ca, ca_key, 30, bad_sans2, 1, &x), CL_EINVAL);
        assert_int_equal(cl_cert_issue(node_key, "n", ca, other, 30, NULL, 0, &x), CL_EINVAL);
        assert_int_equal(cl_cert_issue(node_key, "n", ca, ca->pub, 30, NULL, 0, &x), CL_EINVAL);
        assert_int_equal(cl_cert_self_signed_ca(ca_key, "x", 0, &x), CL_EINVAL);
        assert_null(x);
        /* no SANs at all is allowed */
        assert_int_equal(cl_cert_issue(node_key, "n", ca, ca_key, 30, NULL, 0, &x), CL_OK);
        assert_null(X509_get_ext_d2i(x->x509, NID_subject_alt_name, NULL, NULL));
        assert_int_equal(cl_cert_verify_signed_by(x, ca_key), CL_OK);
        cl_cert_free(x);

        cl_cert_free(node);
        cl_cert_free(ca);
        cl_key_free(ca_key);
        cl_key_free(node_key);
        cl_key_free(other);
    }
    ERR_clear_error();
}

static void test_endorse_previous(void **state)
{
    (void)state;
    cl_key *old_key = NULL, *new_key = NULL, *node_key = NULL;
    cl_cert *old_ca = NULL, *new_ca = NULL, *node = NULL, *endorsement = NULL;
    assert_int_equal(cl_key_generate(CL_CURVE_P256, &old_key), CL_OK);
    assert_int_equal(cl_key_generate(CL_CURVE_P384, &new_key), CL_OK);
    assert_int_equal(cl_key_generate(CL_CURVE_P256, &node_key), CL_OK);
    assert_int_equal(cl_cert_self_signed_ca(old_key, "service v1", 30, &old_ca), CL_OK);
    assert_int_equal(cl_cert_self_signed_ca(new_key, "service v2", 30, &new_ca), CL_OK);
    const char *sans[] = {"10.0.0.1"};
    assert_int_equal(cl_cert_issue(node_key, "node", old_ca, old_key, 30, sans, 1, &node), CL_OK);

    /* the node certificate is not signed by the new identity */
    assert_int_equal(cl_cert_verify_signed_by(node, new_key), CL_EENDORSE);

    assert_int_equal(cl_cert_endorse_previous(old_ca, new_ca, new_key, 30, &endorsement), CL_OK);
    /* chain: node -> endorsement -> new identity */
    assert_int_equal(cl_cert_verify_signed_by(node, endorsement->pub), CL_OK);
    assert_int_equal(cl_cert_verify_signed_by(endorsement, new_key), CL_OK);
    assert_int_equal(cl_cert_verify_signed_by(endorsement, new_ca->pub), CL_OK);
    assert_int_equal(cl_cert_verify_signed_by(endorsement, old_key), CL_EENDORSE);
    assert_int_equal(cl_cert_same_key(endorsement, old_key), 1);
    assert_int_equal(X509_get_signature_nid(endorsement->x509), NID_ecdsa_with_SHA384);
    assert_true(
        name_eq(X509_get_subject_name(endorsement->x509), X509_get_subject_name(old_ca->x509)));
    assert_true(
        name_eq(X509_get_issuer_name(endorsement->x509), X509_get_subject_name(new_ca->x509)));
    assert_int_equal(X509_check_ca(endorsement->x509), 1);
    assert_true(akid_matches(new_ca->x509, endorsement->x509));
    uint8_t a[32], b[32];
    assert_int_equal(cl_cert_spki_sha256(endorsement, a), CL_OK);
    assert_int_equal(cl_cert_spki_sha256(old_ca, b), CL_OK);
    assert_memory_equal(a, b, 32);

    /* the new identity must sign with its own key */
    cl_cert *x = NULL;
    assert_int_equal(cl_cert_endorse_previous(old_ca, new_ca, old_key, 30, &x), CL_EINVAL);
    assert_null(x);

    /* endorsing a real CCF service certificate works the same way */
    cl_cert *s1 = load_vector_cert("service_cert_1.pem");
    receipt r1;
    load_receipt("receipt_1.json", &r1);
    assert_int_equal(cl_cert_endorse_previous(s1, new_ca, new_key, 30, &x), CL_OK);
    assert_int_equal(cl_cert_verify_signed_by(r1.cert, x->pub), CL_OK);
    assert_int_equal(cl_cert_verify_signed_by(x, new_key), CL_OK);
    cl_cert_free(x);
    free_receipt(&r1);
    cl_cert_free(s1);

    cl_cert_free(endorsement);
    cl_cert_free(node);
    cl_cert_free(old_ca);
    cl_cert_free(new_ca);
    cl_key_free(old_key);
    cl_key_free(new_key);
    cl_key_free(node_key);
}

/* ---- AES-256-GCM ------------------------------------------------------------------------------
 */

typedef struct {
    const char *key, *iv, *pt, *aad, *ct, *tag;
} gcm_vector;

/* McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", test cases 13-16. */
static const gcm_vector GCM[] = {
    {"0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000",
     "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"},
    {"0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000",
     "00000000000000000000000000000000", "", "cea7403d4d606b6e074ec5d3baf39d18",
     "d0d1c8a799996bf0265b98b5d48ab919"},
    {"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6"
     "b525b16aedf5aa0de657ba637b391aafd255",
     "",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056"
     "828838c5f61e6393ba7a0abcc9f662898015ad",
     "b094dac5d93471bdec1a502270e3cc6c"},
    {"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6"
     "b525b16aedf5aa0de657ba637b39",
     "feedfacedeadbeeffeedfacedeadbeefabaddad2",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056"
     "828838c5f61e6393ba7a0abcc9f662",
     "76fc6ece0f4e1768cddf8853bb2d551b"},
};

static size_t unhex(const char *s, uint8_t *out)
{
    size_t n = strlen(s) / 2;
    assert_int_equal(cl_hex_decode(s, strlen(s), out, n), CL_OK);
    return n;
}

static void test_aead_known_answers(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof GCM / sizeof GCM[0]; i++) {
        uint8_t key[32], iv[12], pt[64], aad[32], ct[64], tag[16], out[64], got_tag[16];
        assert_int_equal(unhex(GCM[i].key, key), 32);
        assert_int_equal(unhex(GCM[i].iv, iv), 12);
        size_t ptlen = unhex(GCM[i].pt, pt), aadlen = unhex(GCM[i].aad, aad);
        assert_int_equal(unhex(GCM[i].ct, ct), ptlen);
        assert_int_equal(unhex(GCM[i].tag, tag), 16);

        assert_int_equal(cl_aead_encrypt(key, iv, aadlen ? aad : NULL, aadlen, ptlen ? pt : NULL,
                                         ptlen, ptlen ? out : NULL, got_tag),
                         CL_OK);
        assert_memory_equal(out, ct, ptlen);
        assert_memory_equal(got_tag, tag, 16);
        memset(out, 0xaa, sizeof out);
        assert_int_equal(cl_aead_decrypt(key, iv, aadlen ? aad : NULL, aadlen, ptlen ? ct : NULL,
                                         ptlen, tag, ptlen ? out : NULL),
                         CL_OK);
        assert_memory_equal(out, pt, ptlen);
        /* a flipped tag bit fails even for empty plaintext */
        tag[15] ^= 0x80;
        assert_int_equal(cl_aead_decrypt(key, iv, aadlen ? aad : NULL, aadlen, ptlen ? ct : NULL,
                                         ptlen, tag, ptlen ? out : NULL),
                         CL_EDECRYPT);
    }
    assert_int_equal(ERR_peek_error(), 0);
}

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static void test_aead_tamper(void **state)
{
    (void)state;
    uint8_t key[32], iv[12], aad[21] = "ledger entry 42 / v1", msg[100], ct[100], tag[16], out[100];
    assert_int_equal(cl_random(key, sizeof key), CL_OK);
    assert_int_equal(cl_random(iv, sizeof iv), CL_OK);
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)(i * 7 + 1);
    assert_int_equal(cl_aead_encrypt(key, iv, aad, sizeof aad, msg, sizeof msg, ct, tag), CL_OK);
    assert_memory_not_equal(ct, msg, sizeof msg);
    assert_int_equal(cl_aead_decrypt(key, iv, aad, sizeof aad, ct, sizeof ct, tag, out), CL_OK);
    assert_memory_equal(out, msg, sizeof msg);

    /* ciphertext, tag, aad, key, iv: each change fails and leaves out zeroed */
    for (int what = 0; what < 6; what++) {
        uint8_t c2[100], t2[16], a2[21], k2[32], i2[12];
        memcpy(c2, ct, sizeof ct);
        memcpy(t2, tag, sizeof tag);
        memcpy(a2, aad, sizeof aad);
        memcpy(k2, key, sizeof key);
        memcpy(i2, iv, sizeof iv);
        size_t alen = sizeof aad;
        switch (what) {
        case 0:
            c2[57] ^= 1;
            break;
        case 1:
            t2[0] ^= 1;
            break;
        case 2:
            a2[3] ^= 1;
            break;
        case 3:
            k2[31] ^= 1;
            break;
        case 4:
            i2[0] ^= 1;
            break;
        case 5:
            alen--;
            break;
        }
        memset(out, 0x55, sizeof out);
        assert_int_equal(cl_aead_decrypt(k2, i2, a2, alen, c2, sizeof c2, t2, out), CL_EDECRYPT);
        assert_true(all_zero(out, sizeof out));
    }
    /* AAD dropped entirely */
    assert_int_equal(cl_aead_decrypt(key, iv, NULL, 0, ct, sizeof ct, tag, out), CL_EDECRYPT);

    /* in place, both directions */
    uint8_t buf[100];
    memcpy(buf, msg, sizeof msg);
    assert_int_equal(cl_aead_encrypt(key, iv, aad, sizeof aad, buf, sizeof buf, buf, tag), CL_OK);
    assert_memory_equal(buf, ct, sizeof ct);
    assert_int_equal(cl_aead_decrypt(key, iv, aad, sizeof aad, buf, sizeof buf, tag, buf), CL_OK);
    assert_memory_equal(buf, msg, sizeof msg);
    buf[0] ^= 1;
    assert_int_equal(cl_aead_encrypt(key, iv, NULL, 0, buf, sizeof buf, buf, tag), CL_OK);
    buf[99] ^= 1;
    assert_int_equal(cl_aead_decrypt(key, iv, NULL, 0, buf, sizeof buf, tag, buf), CL_EDECRYPT);
    assert_true(all_zero(buf, sizeof buf));

    /* empty plaintext with AAD only: the tag still authenticates the AAD */
    assert_int_equal(cl_aead_encrypt(key, iv, aad, sizeof aad, NULL, 0, NULL, tag), CL_OK);
    assert_int_equal(cl_aead_decrypt(key, iv, aad, sizeof aad, NULL, 0, tag, NULL), CL_OK);
    aad[0] ^= 1;
    assert_int_equal(cl_aead_decrypt(key, iv, aad, sizeof aad, NULL, 0, tag, NULL), CL_EDECRYPT);

    assert_int_equal(cl_aead_encrypt(key, iv, NULL, 5, msg, 1, out, tag), CL_EINVAL);
    assert_int_equal(ERR_peek_error(), 0);
}

/* ---- allocation seam --------------------------------------------------------------------------
 */

typedef int (*seam_fn)(void *arg);

/* Fails the 1st, 2nd, ... cl_malloc of fn until it succeeds; every failure must be CL_ENOMEM. */
static void fail_every_allocation(seam_fn fn, void *arg)
{
    long failed = 0;
    for (long n = 0; n < 1000; n++) {
        long before = cl_alloc_failures();
        cl_alloc_fail_after(n);
        int rc = fn(arg);
        cl_alloc_fail_after(-1);
        if (cl_alloc_failures() == before) {
            assert_int_equal(rc, CL_OK);
            assert_true(failed > 0); /* fn did allocate through the seam */
            return;
        }
        failed++;
        if (rc != CL_ENOMEM)
            fail_msg("allocation %ld failed but rc = %s", n, cl_errname(rc));
    }
    fail_msg("fn never succeeded");
}

static int seam_parse_cert(void *arg)
{
    const char *pem = arg;
    cl_cert *c = NULL;
    uint8_t fp[32];
    int rc = cl_cert_from_pem(pem, strlen(pem), &c);
    if (rc == CL_OK)
        rc = cl_cert_fingerprint_sha256(c, fp);
    if (rc == CL_OK)
        rc = cl_cert_spki_sha256(c, fp);
    cl_cert_free(c);
    return rc;
}

typedef struct {
    cl_cert *ca;
    cl_key *ca_key, *node_key;
    const char *path;
} seam_issue_arg;

static int seam_issue(void *arg)
{
    seam_issue_arg *a = arg;
    const char *sans[] = {"::1", "localhost"};
    cl_cert *node = NULL, *self = NULL;
    int rc = cl_cert_issue(a->node_key, "node", a->ca, a->ca_key, 1, sans, 2, &node);
    if (rc == CL_OK)
        rc = cl_cert_self_signed_ca(a->ca_key, "ca", 1, &self);
    if (rc == CL_OK)
        rc = cl_cert_save_pem(node, a->path);
    if (rc == CL_OK)
        rc = cl_key_save_private_pem(a->node_key, a->path);
    cl_cert_free(node);
    cl_cert_free(self);
    return rc;
}

static int seam_keygen(void *arg)
{
    (void)arg;
    cl_key *k = NULL;
    uint8_t id[32];
    int rc = cl_key_generate(CL_CURVE_P384, &k);
    if (rc == CL_OK)
        rc = cl_key_spki_sha256(k, id);
    cl_key_free(k);
    return rc;
}

static void test_alloc_seam(void **state)
{
    (void)state;
    char *pem = read_vector("service_cert_p384.pem", NULL);
    fail_every_allocation(seam_parse_cert, pem);
    free(pem);
    fail_every_allocation(seam_keygen, NULL);

    seam_issue_arg a = {NULL, NULL, NULL, NULL};
    char path[256];
    tmp_path(path, sizeof path, "seam.pem");
    a.path = path;
    assert_int_equal(cl_key_generate(CL_CURVE_P256, &a.ca_key), CL_OK);
    assert_int_equal(cl_key_generate(CL_CURVE_P256, &a.node_key), CL_OK);
    assert_int_equal(cl_cert_self_signed_ca(a.ca_key, "ca", 1, &a.ca), CL_OK);
    fail_every_allocation(seam_issue, &a);
    cl_cert_free(a.ca);
    cl_key_free(a.ca_key);
    cl_key_free(a.node_key);
    ERR_clear_error();
}

/* ---- main -------------------------------------------------------------------------------------
 */

static void remove_tmp_dir(void)
{
    DIR *d = opendir(tmp_dir);
    if (d == NULL)
        return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", tmp_dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(tmp_dir);
}

/* HMAC-SHA256 is composed from SHA-256 states in hash.c: RFC 4231 known answers (including a key
 * longer than the block and an empty message) and agreement with OpenSSL's HMAC() on many sizes. */
/* RFC 6979 A.2.5 (P-256) and A.2.6 (P-384), the SHA-256 signatures: the published key signs the
 * published SHA-256 digest of "sample" / "test" to exactly the published r and s, every time.
 * Random-nonce signing (cl_key_sign_prehashed) does not repeat itself. */
static cl_key *rfc6979_key(const char *group, const char *x_hex, const char *ux_hex,
                           const char *uy_hex)
{
    uint8_t x[48], pub[97];
    size_t xl = unhex(x_hex, x);
    pub[0] = 0x04;
    size_t cl = unhex(ux_hex, pub + 1);
    assert_int_equal(unhex(uy_hex, pub + 1 + cl), cl);
    OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
    BIGNUM *xb = BN_bin2bn(x, (int)xl, NULL);
    assert_true(b != NULL && xb != NULL);
    assert_int_equal(OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, group, 0), 1);
    assert_int_equal(OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_PRIV_KEY, xb), 1);
    assert_int_equal(OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, pub, 1 + 2 * cl),
                     1);
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(b);
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY *pkey = NULL;
    assert_true(params != NULL && pc != NULL);
    assert_int_equal(EVP_PKEY_fromdata_init(pc), 1);
    assert_int_equal(EVP_PKEY_fromdata(pc, &pkey, EVP_PKEY_KEYPAIR, params), 1);
    cl_key *k = NULL;
    assert_int_equal(cl_key_from_pkey(pkey, &k), CL_OK); /* takes its own reference */
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(pc);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(b);
    BN_free(xb);
    return k;
}

static void test_sign_deterministic_rfc6979(void **state)
{
    (void)state;
    static const char *p256x = "C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721",
                      *p256ux = "60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6",
                      *p256uy = "7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299";
    static const char *p384x = "6B9D3DAD2E1B8C1C05B19875B6659F4DE23C3B667BF297BA9AA47740787137D8"
                               "96D5724E4C70A825F872C9EA60D2EDF5",
                      *p384ux = "EC3A4E415B4E19A4568618029F427FA5DA9A8BC4AE92E02E06AAE5286B300C64"
                                "DEF8F0EA9055866064A254515480BC13",
                      *p384uy = "8015D9B72D7D57244EA8EF9AC0C621896708A59367F9DFB9F54CA84B3F1C9DB1"
                                "288B231C3AE0D4FE7344FD2533264720";
    static const struct {
        int p384;
        const char *msg, *r, *s;
    } v[] = {
        {0, "sample", "EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716",
         "F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8"},
        {0, "test", "F1ABB023518351CD71D881567B1EA663ED3EFCF6C5132B354F28D3B0B7D38367",
         "019F4113742A2B14BD25926B49C649155F267E60D3814B4C0CC84250E46F0083"},
        {1, "sample",
         "21B13D1E013C7FA1392D03C5F99AF8B30C570C6F98D4EA8E354B63A21D3DAA33BDE1E888E63355D92FA2B3C3"
         "6D8FB2CD",
         "F3AA443FB107745BF4BD77CB3891674632068A10CA67E3D45DB2266FA7D1FEEBEFDC63ECCD1AC42EC0CB8668"
         "A4FA0AB0"},
    };
    cl_key *k256 = rfc6979_key("P-256", p256x, p256ux, p256uy);
    cl_key *k384 = rfc6979_key("P-384", p384x, p384ux, p384uy);
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        cl_key *k = v[i].p384 ? k384 : k256;
        uint8_t d[32], sig[CL_ECDSA_MAX_DER], sig2[CL_ECDSA_MAX_DER], want_r[48], want_s[48];
        cl_sha256(v[i].msg, strlen(v[i].msg), d);
        size_t n = 0, n2 = 0;
        assert_int_equal(cl_key_sign_deterministic(k, d, 32, sig, &n), CL_OK);
        assert_int_equal(cl_key_sign_deterministic(k, d, 32, sig2, &n2), CL_OK);
        assert_int_equal(n, n2);
        assert_memory_equal(sig, sig2, n);
        assert_int_equal(cl_key_verify_prehashed(k, d, 32, sig, n), CL_OK);
        const uint8_t *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)n);
        assert_non_null(es);
        size_t qlen = unhex(v[i].r, want_r);
        assert_int_equal(unhex(v[i].s, want_s), qlen);
        uint8_t got_r[48], got_s[48];
        assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(es), got_r, (int)qlen), (int)qlen);
        assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(es), got_s, (int)qlen), (int)qlen);
        assert_memory_equal(got_r, want_r, qlen);
        assert_memory_equal(got_s, want_s, qlen);
        ECDSA_SIG_free(es);
        /* the random-nonce signer does not repeat itself */
        assert_int_equal(cl_key_sign_prehashed(k, d, 32, sig2, &n2), CL_OK);
        assert_false(n2 == n && memcmp(sig, sig2, n) == 0);
        uint8_t d48[48];
        unsigned int l48 = 0;
        assert_int_equal(EVP_Digest(v[i].msg, strlen(v[i].msg), d48, &l48, EVP_sha384(), NULL), 1);
        /* a SHA-384 digest would need HMAC-SHA384 nonces (RFC 6979 §3.2): refused, not
         * signed with the wrong construction (the ledger signs SHA-256 roots only) */
        assert_int_equal(cl_key_sign_deterministic(k, d48, 48, sig, &n), CL_EINVAL);
    }
    /* a public key alone cannot sign; a digest of another length is refused */
    uint8_t d[32] = {1}, sig[CL_ECDSA_MAX_DER];
    size_t n = 0;
    assert_int_equal(cl_key_sign_deterministic(k256, d, 31, sig, &n), CL_EINVAL);
    cl_cert *c = NULL;
    assert_int_equal(cl_cert_self_signed_ca(k256, "rfc6979", 1, &c), CL_OK);
    assert_int_equal(cl_key_sign_deterministic(c->pub, d, 32, sig, &n), CL_EINVAL);
    cl_cert_free(c);
    cl_key_free(k256);
    cl_key_free(k384);
}

static void test_hmac_sha256(void **state)
{
    (void)state;
    static const struct {
        const char *key_hex, *msg, *mac_hex;
    } kat[] = {
        {"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "Hi There",
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
        {"4a656665", "what do ya want for nothing?",
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "a"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "a"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
         "Test Using Larger Than Block-Size Key - Hash Key First",
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
    };
    for (size_t i = 0; i < sizeof kat / sizeof kat[0]; i++) {
        uint8_t key[200], want[32], got[32];
        size_t klen = strlen(kat[i].key_hex) / 2;
        assert_int_equal(cl_hex_decode(kat[i].key_hex, 2 * klen, key, klen), CL_OK);
        assert_int_equal(cl_hex_decode(kat[i].mac_hex, 64, want, 32), CL_OK);
        assert_int_equal(cl_hmac_sha256(key, klen, kat[i].msg, strlen(kat[i].msg), got), CL_OK);
        assert_memory_equal(got, want, 32);
        cl_hmac_key hk;
        cl_hmac_key_init(&hk, key, klen);
        memset(got, 0, 32);
        cl_hmac_key_mac(&hk, kat[i].msg, strlen(kat[i].msg), got);
        cl_hmac_key_wipe(&hk);
        assert_memory_equal(got, want, 32);
    }
    uint8_t key[150], msg[300], a[32], b[32];
    for (size_t kl = 0; kl <= sizeof key; kl += 7) {
        for (size_t ml = 0; ml <= sizeof msg; ml += 13) {
            assert_int_equal(cl_random(key, sizeof key), CL_OK);
            assert_int_equal(cl_random(msg, sizeof msg), CL_OK);
            unsigned int n = 0;
            assert_non_null(HMAC(EVP_sha256(), key, (int)kl, msg, ml, a, &n));
            assert_int_equal(cl_hmac_sha256(key, kl, msg, ml, b), CL_OK);
            assert_memory_equal(a, b, 32);
        }
    }
}

int main(void)
{
    find_vectors_dir();
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/cl_test_crypto_XXXXXX");
    if (mkdtemp(tmp_dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_pool),
        cmocka_unit_test(test_sign_verify_p256),
        cmocka_unit_test(test_sign_verify_p384),
        cmocka_unit_test(test_prehashed_is_not_rehashed),
        cmocka_unit_test(test_key_types),
        cmocka_unit_test(test_key_pem_files),
        cmocka_unit_test(test_receipt_signatures),
        cmocka_unit_test(test_receipt_endorsements),
        cmocka_unit_test(test_cert_roundtrip),
        cmocka_unit_test(test_pem_strict),
        cmocka_unit_test(test_issue_ca_and_node),
        cmocka_unit_test(test_endorse_previous),
        cmocka_unit_test(test_aead_known_answers),
        cmocka_unit_test(test_aead_tamper),
        cmocka_unit_test(test_alloc_seam),
        cmocka_unit_test(test_hmac_sha256),
        cmocka_unit_test(test_sign_deterministic_rfc6979),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    remove_tmp_dir();
    return failed;
}
