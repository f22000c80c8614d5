/*
 * test_vcache.c — the chain-verification memo (src/attest/vcache.c) and the cached verification
 * paths of SGX and SEV-SNP: a warm cache never turns a bad quote or report into a good one,
 * only identical chain bytes hit, and time windows are honoured.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <openssl/pem.h>

#include "attest/sgx.h"
#include "attest/snp.h"
#include "attest/vcache.h"
#include "base/codec.h"
#include "base/json.h"

static char vec[4096];

static void find_vectors(void)
{
    const char *src = getenv("CLEDGER_SOURCE_DIR");
    snprintf(vec, sizeof vec, "%s/tests/data/attestation-vectors", src ? src : "/work/main");
}

static uint8_t *slurp(const char *rel, size_t *n)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", vec, rel);
    FILE *f = fopen(p, "rb");
    if (f == NULL)
        fail_msg("cannot open %s", p);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)len + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    b[len] = 0;
    *n = (size_t)len;
    return b;
}

#define T_2026 1780000000 /* 2026-05-28: inside the Azure SDK PCK chain's validity */

static void test_basics(void **state)
{
    (void)state;
    cl_vcache *c = NULL;
    assert_int_equal(cl_vcache_new(0, 60, &c), CL_EINVAL);
    assert_int_equal(cl_vcache_new(8, 60, &c), CL_OK);
    uint8_t k1[32] = {1}, k2[32] = {2}, blob[CL_VCACHE_BLOB];
    size_t bl = 0;
    X509 *cert = NULL;
    assert_int_equal(cl_vcache_lookup(c, k1, 100, blob, &bl, &cert, NULL), 0);
    cl_vcache_insert(c, k1, 50, 150, "abc", 3, NULL, NULL);
    assert_int_equal(cl_vcache_lookup(c, k1, 100, blob, &bl, &cert, NULL), 1);
    assert_int_equal(bl, 3);
    assert_memory_equal(blob, "abc", 3);
    assert_null(cert);
    assert_int_equal(cl_vcache_lookup(c, k1, 49, blob, &bl, NULL, NULL), 0); /* before the window */
    assert_int_equal(cl_vcache_lookup(c, k1, 151, blob, &bl, NULL, NULL), 0); /* after it */
    assert_int_equal(cl_vcache_lookup(c, k2, 100, blob, &bl, NULL, NULL), 0); /* other key */
    cl_vcache_insert(c, k2, 0, 10, NULL, CL_VCACHE_BLOB + 1, NULL, NULL);     /* too big: ignored */
    assert_int_equal(cl_vcache_lookup(c, k2, 5, blob, &bl, NULL, NULL), 0);
    /* keys sharing a slot replace each other; the certificate reference is managed */
    uint8_t k3[32] = {1, 0, 0, 9};
    size_t cn;
    uint8_t *der = slurp("snp/go-sev-guest_vcek.der", &cn);
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)cn);
    assert_non_null(x);
    cl_vcache_insert(c, k3, 0, 1000, NULL, 0, x, X509_get0_pubkey(x));
    X509_free(x); /* the cache holds its own reference */
    assert_int_equal(cl_vcache_lookup(c, k1, 100, NULL, NULL, NULL, NULL), 0);
    assert_int_equal(cl_vcache_lookup(c, k3, 100, NULL, NULL, &cert, NULL), 1);
    assert_non_null(cert);
    assert_non_null(X509_get0_pubkey(cert));
    X509_free(cert);
    uint64_t hits, misses;
    cl_vcache_stats(c, &hits, &misses);
    assert_int_equal(hits, 2);
    assert_true(misses >= 6);
    cl_vcache_free(c);
    free(der);
    assert_int_equal(cl_vcache_lookup(NULL, k1, 0, NULL, NULL, NULL, NULL), 0);
}

static int sgx_verify(const uint8_t *q, size_t n, cl_vcache *c, int64_t now, cl_sgx_result *res)
{
    cl_sgx_quote quote;
    char err[512];
    memset(res, 0, sizeof *res);
    int rc = cl_sgx_quote_parse(q, n, &quote, err, sizeof err);
    if (rc < 0)
        return rc;
    return cl_sgx_quote_verify_cached(&quote, NULL, now, c, res, err, sizeof err);
}

static void test_sgx_cached(void **state)
{
    (void)state;
    size_t n;
    uint8_t *q = slurp("sgx/azure-sdk_sgx_quote_v3.bin", &n);
    cl_vcache *c = NULL;
    assert_int_equal(cl_vcache_new(64, 600, &c), CL_OK);
    cl_sgx_result cold, warm;
    assert_int_equal(sgx_verify(q, n, c, T_2026, &cold), CL_OK);
    assert_int_equal(sgx_verify(q, n, c, T_2026, &warm), CL_OK);
    uint64_t hits, misses;
    cl_vcache_stats(c, &hits, &misses);
    assert_int_equal(hits, 1);
    assert_memory_equal(cold.fmspc, warm.fmspc, 6);
    assert_memory_equal(cold.cpu_svn, warm.cpu_svn, 16);
    assert_int_equal(cold.pce_svn, warm.pce_svn);
    assert_int_equal(cold.pck_not_after, warm.pck_not_after);
    cl_sgx_result_free(&cold);
    cl_sgx_result_free(&warm);
    /* With a warm cache, every byte of the ISV signature and of the signed header/body still
     * matters (same chain and QE report: the memo is hit, the signature is not skipped). */
    cl_sgx_quote pq;
    char err[256];
    assert_int_equal(cl_sgx_quote_parse(q, n, &pq, err, sizeof err), CL_OK);
    size_t sig_off = (size_t)(pq.isv_signature - q);
    for (size_t off = 0; off < 432 + 64; off += 5) {
        size_t at = off < 432 ? off : sig_off + (off - 432);
        q[at] ^= 0x04;
        cl_sgx_result r;
        int rc = sgx_verify(q, n, c, T_2026, &r);
        q[at] ^= 0x04;
        if (rc == CL_OK)
            fail_msg("a warm cache accepted a quote with byte %zu flipped", at);
    }
    /* a changed QE report byte is another key: a miss, and the QE signature fails */
    size_t qe_off = (size_t)(pq.qe_report - q);
    q[qe_off + 100] ^= 1;
    cl_sgx_result r;
    assert_int_equal(sgx_verify(q, n, c, T_2026, &r), CL_ESIG);
    q[qe_off + 100] ^= 1;
    /* outside the chain's validity the memo does not apply (and the chain check fails) */
    assert_int_equal(sgx_verify(q, n, c, 4102444800 /* 2100 */, &r), CL_EEXPIRED);
    cl_vcache_free(c);
    free(q);
}

static void test_snp_cached(void **state)
{
    (void)state;
    size_t rn, vn, an, rn2;
    uint8_t *rep = slurp("snp/go-sev-guest_report.bin", &rn);
    uint8_t *rep2 = slurp("snp/virtee_report_milan.bin", &rn2);
    uint8_t *vcek = slurp("snp/go-sev-guest_vcek.der", &vn);
    uint8_t *askark = slurp("roots/ask_ark_milan.pem", &an);
    const unsigned char *p = vcek;
    X509 *x = d2i_X509(NULL, &p, (long)vn);
    BIO *b = BIO_new(BIO_s_mem());
    assert_true(PEM_write_bio_X509(b, x) == 1);
    char *pem;
    long pl = BIO_get_mem_data(b, &pem);
    char *chain = malloc((size_t)pl + an + 1);
    memcpy(chain, pem, (size_t)pl);
    memcpy(chain + pl, askark, an + 1);
    size_t chain_len = (size_t)pl + an;
    cl_vcache *c = NULL;
    assert_int_equal(cl_vcache_new(64, 600, &c), CL_OK);
    char err[512];
    cl_snp_report r;
    assert_int_equal(cl_snp_report_parse(rep, rn, &r, err, sizeof err), CL_OK);
    for (int round = 0; round < 2; round++)
        assert_int_equal(
            cl_snp_verify_report(&r, rep, rn, chain, chain_len, T_2026, err, sizeof err), CL_OK);
    /* the cached path, through the wrapper */
    char *rb = cl_b64_encode_alloc(rep, rn, CL_B64_URL);
    char *cb = cl_b64_encode_alloc((const uint8_t *)chain, chain_len, CL_B64_URL);
    json_t *w = json_pack("{s:s,s:s}", "SnpReport", rb, "VcekCertChain", cb);
    char *wt = json_dumps(w, JSON_COMPACT);
    cl_snp_evidence *e = NULL;
    assert_int_equal(cl_snp_wrapper_parse((const uint8_t *)wt, strlen(wt), &e, err, sizeof err),
                     CL_OK);
    assert_int_equal(cl_snp_verify_cached(e, T_2026, c, err, sizeof err), CL_OK);
    assert_int_equal(cl_snp_verify_cached(e, T_2026, c, err, sizeof err), CL_OK);
    uint64_t hits, misses;
    cl_vcache_stats(c, &hits, &misses);
    assert_int_equal(hits, 1);
    cl_snp_evidence_free(e);
    /* warm cache, same chain: a flipped signed byte or the other chip's report still fails */
    const size_t offs[] = {0x00, 0x50, 0x90, 0x1A0, 0x29F, 0x2A0, 0x2F0};
    for (size_t k = 0; k < sizeof offs / sizeof offs[0]; k++) {
        rep[offs[k]] ^= 0x10;
        char *rb2 = cl_b64_encode_alloc(rep, rn, CL_B64_URL);
        json_t *w2 = json_pack("{s:s,s:s}", "SnpReport", rb2, "VcekCertChain", cb);
        char *wt2 = json_dumps(w2, JSON_COMPACT);
        e = NULL;
        int rc = cl_snp_wrapper_parse((const uint8_t *)wt2, strlen(wt2), &e, err, sizeof err);
        if (rc == CL_OK)
            rc = cl_snp_verify_cached(e, T_2026, c, err, sizeof err);
        if (rc == CL_OK)
            fail_msg("a warm cache accepted a report with byte %#zx flipped", offs[k]);
        cl_snp_evidence_free(e);
        free(wt2);
        json_decref(w2);
        free(rb2);
        rep[offs[k]] ^= 0x10;
    }
    char *ob = cl_b64_encode_alloc(rep2, rn2, CL_B64_URL);
    json_t *w3 = json_pack("{s:s,s:s}", "SnpReport", ob, "VcekCertChain", cb);
    char *wt3 = json_dumps(w3, JSON_COMPACT);
    e = NULL;
    assert_int_equal(cl_snp_wrapper_parse((const uint8_t *)wt3, strlen(wt3), &e, err, sizeof err),
                     CL_OK);
    assert_true(cl_snp_verify_cached(e, T_2026, c, err, sizeof err) < 0);
    /* outside every certificate's validity the memo is not used */
    assert_true(cl_snp_verify_cached(e, 4102444800, c, err, sizeof err) < 0);
    cl_snp_evidence_free(e);
    free(wt3);
    json_decref(w3);
    free(ob);
    free(wt);
    json_decref(w);
    free(rb);
    free(cb);
    cl_vcache_free(c);
    BIO_free(b);
    X509_free(x);
    free(chain);
    free(rep);
    free(rep2);
    free(vcek);
    free(askark);
}

int main(void)
{
    find_vectors();
    cl_json_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basics),
        cmocka_unit_test(test_sgx_cached),
        cmocka_unit_test(test_snp_cached),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
