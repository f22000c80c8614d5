/*
 * test_sgx.c — SGX/TDX quotes, Open Enclave reports, Intel collateral and TCB evaluation, MAA
 * claims (src/attest/sgx*.c, intel_*.c).
 *
 * Vectors: $CLEDGER_SOURCE_DIR/tests/data/attestation-vectors (fallback /work/main/...). Expected
 * values are those tabulated in that directory's README and spec/evidence-formats.md §2.8, §4.4;
 * the MAA claim values are read from the real tokens in maa/. All times are pinned.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "attest/intel_pki.h"
#include "attest/sgx.h"
#include "base/alloc.h"
#include "base/codec.h"
#include "base/cursor.h"
#include "base/json.h"
#include "crypto/hash.h"

#define T_COLLATERAL 1750377600 /* 2025-06-20T00:00:00Z */
#define T_AFTER_NEXT 1752969600 /* 2025-07-20T00:00:00Z, after every nextUpdate */
#define T_BEFORE 1748736000     /* 2025-06-01T00:00:00Z, before the collateral was issued */
#define T_NOW 1780272000        /* 2026-06-01T00:00:00Z: every vector's PCK chain is valid */
#define T_LATE 2208988800       /* 2040-01-01T00:00:00Z: every PCK certificate has expired */

/* ---- helpers --------------------------------------------------------------------------------
 */

static char vec_dir[4096];

static void find_vectors(void)
{
    const char *src = getenv("CLEDGER_SOURCE_DIR");
    struct stat st;
    if (src != NULL) {
        snprintf(vec_dir, sizeof vec_dir, "%s/tests/data/attestation-vectors", src);
        if (stat(vec_dir, &st) == 0 && S_ISDIR(st.st_mode))
            return;
    }
    snprintf(vec_dir, sizeof vec_dir, "/work/main/tests/data/attestation-vectors");
}

static uint8_t *load(const char *name, size_t *len)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", vec_dir, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    assert_true(n >= 0);
    uint8_t *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void assert_hex(const uint8_t *p, size_t n, const char *want)
{
    char buf[2 * 700 + 1];
    assert_true(n <= 700);
    cl_hex_encode(p, n, buf);
    assert_string_equal(buf, want);
}

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return 0;
    return 1;
}

static void assert_sha256(const uint8_t *p, size_t n, const char *want)
{
    uint8_t d[32];
    cl_sha256(p, n, d);
    assert_hex(d, 32, want);
}

static void assert_date(int64_t t, const char *want)
{
    time_t tt = (time_t)t;
    struct tm tm;
    char buf[32];
    assert_non_null(gmtime_r(&tt, &tm));
    strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
    assert_string_equal(buf, want);
}

static cl_intel_collateral *load_collateral(const char *name)
{
    size_t n;
    uint8_t *j = load(name, &n);
    cl_intel_collateral *c = NULL;
    char err[256];
    int rc = cl_intel_collateral_parse((const char *)j, n, &c, err, sizeof err);
    if (rc != CL_OK)
        fail_msg("collateral %s: %s", name, err);
    free(j);
    return c;
}

static void parse_ok(const uint8_t *p, size_t n, cl_sgx_quote *q)
{
    char err[256];
    int rc = cl_sgx_quote_parse(p, n, q, err, sizeof err);
    if (rc != CL_OK)
        fail_msg("parse: %s (%s)", err, cl_errname(rc));
}

static void verify_ok(const cl_sgx_quote *q, const cl_intel_collateral *c, int64_t t,
                      cl_sgx_result *res)
{
    char err[256];
    int rc = cl_sgx_quote_verify(q, c, t, res, err, sizeof err);
    if (rc != CL_OK)
        fail_msg("verify: %s (%s)", err, cl_errname(rc));
    assert_non_null(res->collateral_hashes);
}

static int verify_rc(const cl_sgx_quote *q, const cl_intel_collateral *c, int64_t t, char *err,
                     size_t errlen)
{
    cl_sgx_result res;
    int rc = cl_sgx_quote_verify(q, c, t, &res, err, errlen);
    if (rc == CL_OK)
        cl_sgx_result_free(&res);
    else
        assert_null(res.collateral_hashes);
    return rc;
}

static const char *const quote_files[] = {
    "sgx/azure-sdk_sgx_quote_v3.bin", "sgx/phala_sgx_quote_v3.bin", "tdx/go-tdx-guest_quote_v4.bin",
    "tdx/go-tdx-guest_quote_v5.bin",  "tdx/phala_tdx_quote_v4.bin",
};
#define NQUOTES (sizeof quote_files / sizeof quote_files[0])

/* ---- SGX vectors ---------------------------------------------------------------------------
 */

static void test_azure_quote(void **state)
{
    (void)state;
    size_t n;
    uint8_t *b = load("sgx/azure-sdk_sgx_quote_v3.bin", &n);
    assert_int_equal(n, 4580);
    assert_sha256(b, n, "af0e05631c145d7dc1a33b214d43c6aa34a7859622a0ac7d880ab7b24e2f18d2");
    cl_sgx_quote q;
    parse_ok(b, n, &q);
    assert_int_equal(q.version, 3);
    assert_int_equal(q.att_key_type, 2);
    assert_int_equal(q.tee_type, 0);
    assert_int_equal(q.qe_svn, 5);
    assert_int_equal(q.pce_svn, 10);
    assert_hex(q.qe_vendor_id, 16, "939a7233f79c4ca9940a0db3957f0607");
    assert_hex(q.user_data, 20, "38d8c3f31a8ee13d64bf87eded13126b00000000");
    assert_ptr_equal(q.enclave_report, b + 48);
    assert_null(q.td_report);
    assert_hex(q.cpu_svn, 16, "11110305ff8006000000000000000000");
    assert_hex(q.attributes, 16, "05000000000000000700000000000000");
    assert_int_equal(q.debug, 0);
    assert_int_equal(q.kss, 0);
    assert_hex(q.mr_enclave, 32,
               "b779202618becb636768e5d902f28d524222735fafb539ea9ba07c3fc171a1c2");
    assert_hex(q.mr_signer, 32, "2c1a44952ae8207135c6c29b75b8c029372ee94b677e15c20bd42340f10d41aa");
    assert_int_equal(q.isv_prod_id, 1);
    assert_int_equal(q.isv_svn, 1);
    assert_int_equal(q.config_svn, 0);
    assert_int_equal(q.misc_select, 0);
    assert_true(all_zero(q.config_id, 64) && all_zero(q.isv_ext_prod_id, 16) &&
                all_zero(q.isv_family_id, 16));
    assert_ptr_equal(q.report_data, b + 368);
    assert_hex(q.report_data, 64,
               "ed11a9eb97dfc17053a32a6992e71d04f7ec996e45519ab710936afb48f9041d"
               "0000000000000000000000000000000000000000000000000000000000000000");
    size_t rn;
    uint8_t *rt = load("sgx/azure-sdk_runtime_data.bin", &rn);
    uint8_t d[32];
    cl_sha256(rt, rn, d);
    assert_true(cl_ct_equal(d, q.report_data, 32));
    free(rt);
    assert_int_equal(q.signed_len, 432);
    assert_int_equal(q.sig_data_len, 4144);
    assert_int_equal(q.quote_len, n);
    assert_hex(q.attest_key, 64,
               "e62a2f80f872ebe420f09424a9ef17248e81e59956b1fab713bbbd12f1fb659df7322853eda33eb1"
               "771ae2ef762fc38886933671f260b8e4804b7438a51e0d75");
    assert_ptr_equal(q.qe_report, b + 564);
    assert_hex(q.qe_report + 64, 32,
               "3fb0ace0869d2e30f28e86d70c766403a54fbbcd658eece0e1b948a915591740");
    assert_hex(q.qe_report + 128, 32,
               "8c4f5775d796503e96137f77c68a829a0056ac8ded70140b081b094490c57bff");
    assert_int_equal(q.qe_report[256] | q.qe_report[257] << 8, 1);
    assert_int_equal(q.qe_report[258] | q.qe_report[259] << 8, 5);
    assert_hex(q.qe_report + 48, 16, "15000000000000000700000000000000");
    assert_hex(q.qe_report + 320, 64,
               "0fdace980bbe8d249fd41023fdc0b49aeed80a7c78428b03efcca3dec417f352"
               "0000000000000000000000000000000000000000000000000000000000000000");
    assert_int_equal(q.qe_auth_len, 32);
    for (int i = 0; i < 32; i++)
        assert_int_equal(q.qe_auth_data[i], i);
    assert_int_equal(q.cert_type, 5);
    assert_int_equal((const uint8_t *)q.pck_chain - b, 1046 + 6); /* type at 1046, data at 1052 */
    assert_int_equal(q.pck_chain_len, 3528);
    assert_int_equal(q.pck_chain[3527], '\0');

    cl_sgx_result res;
    verify_ok(&q, NULL, T_NOW, &res);
    assert_int_equal(res.tcb_evaluated, 0);
    assert_int_equal(res.crl_checked, 0);
    assert_int_equal(json_object_size(res.collateral_hashes), 0);
    assert_null(res.advisory_ids);
    assert_hex(res.fmspc, 6, "00906ed50000");
    assert_hex(res.pce_id, 2, "0000");
    static const uint8_t comps[16] = {17, 17, 2, 4, 1, 128, 6, 0};
    assert_memory_equal(res.tcb_comp, comps, 16);
    assert_int_equal(res.pce_svn, 10);
    assert_hex(res.cpu_svn, 16, "11110204018006000000000000000000");
    assert_date(res.pck_not_before, "2021-04-21");
    assert_date(res.pck_not_after, "2028-04-21");
    assert_int_equal(res.trailing_bytes, 0);
    cl_sgx_result_free(&res);

    /* The PCK certificate has expired by 2040, and was not valid in 2020. */
    char err[256];
    assert_int_equal(verify_rc(&q, NULL, T_LATE, err, sizeof err), CL_EEXPIRED);
    assert_non_null(strstr(err, "PCK certificate chain"));
    assert_int_equal(verify_rc(&q, NULL, 1577836800 /* 2020-01-01 */, err, sizeof err),
                     CL_EEXPIRED);
    free(b);
}

static void test_oe_report(void **state)
{
    (void)state;
    size_t n, qn;
    uint8_t *b = load("sgx/azure-sdk_oe_report.bin", &n);
    uint8_t *quote = load("sgx/azure-sdk_sgx_quote_v3.bin", &qn);
    assert_int_equal(n, 4596);
    assert_sha256(b, n, "949b189c928f25c0a8090ae57d9f481b3435f26fb9a4d7e86e2619770d29c13f");
    assert_hex(b, 16, "0100000002000000e411000000000000");
    const uint8_t *qp = NULL;
    size_t ql = 0;
    char err[256];
    assert_int_equal(cl_oe_report_unwrap(b, n, &qp, &ql, err, sizeof err), CL_OK);
    assert_ptr_equal(qp, b + 16);
    assert_int_equal(ql, qn);
    assert_memory_equal(qp, quote, qn);
    cl_sgx_quote q;
    parse_ok(qp, ql, &q);
    assert_ptr_equal(q.report_data, b + 384); /* §1: offset 384 in the OE report */
    cl_sgx_result res;
    verify_ok(&q, NULL, T_NOW, &res);
    cl_sgx_result_free(&res);

    /* Header checks. */
    uint8_t *m = malloc(n);
    memcpy(m, b, n);
    m[0] = 2;
    assert_int_equal(cl_oe_report_unwrap(m, n, &qp, &ql, err, sizeof err), CL_EUNSUPPORTED);
    assert_non_null(strstr(err, "version 2"));
    memcpy(m, b, n);
    m[4] = 1;
    assert_int_equal(cl_oe_report_unwrap(m, n, &qp, &ql, err, sizeof err), CL_EUNSUPPORTED);
    assert_non_null(strstr(err, "type 1"));
    memcpy(m, b, n);
    m[8] = 0xe3; /* size one less than the data: trailing byte */
    assert_int_equal(cl_oe_report_unwrap(m, n, &qp, &ql, err, sizeof err), CL_EFORMAT);
    m[8] = 0xe5;
    assert_int_equal(cl_oe_report_unwrap(m, n, &qp, &ql, err, sizeof err), CL_ETRUNC);
    memcpy(m, b, n);
    m[15] = 0x80; /* absurd u64 size */
    assert_int_equal(cl_oe_report_unwrap(m, n, &qp, &ql, err, sizeof err), CL_ETRUNC);
    for (size_t len = 0; len < n; len++)
        assert_true(cl_oe_report_unwrap(b, len, &qp, &ql, err, sizeof err) < 0);
    free(m);
    free(quote);
    free(b);
}

static void test_phala_sgx_quote(void **state)
{
    (void)state;
    size_t n;
    uint8_t *b = load("sgx/phala_sgx_quote_v3.bin", &n);
    assert_int_equal(n, 4600);
    assert_sha256(b, n, "f8b81014b6e443609746822194910f5dc1c92c322fa0584298d1e33e505ca3b5");
    cl_sgx_quote q;
    parse_ok(b, n, &q);
    assert_int_equal(q.version, 3);
    assert_int_equal(q.qe_svn, 10);
    assert_int_equal(q.pce_svn, 15);
    assert_hex(q.attributes, 16, "0500000000000000e700000000000000");
    assert_int_equal(q.debug, 0);
    assert_hex(q.mr_enclave, 32,
               "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb");
    assert_hex(q.mr_signer, 32, "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6");
    assert_int_equal(q.isv_prod_id, 0);
    assert_int_equal(q.isv_svn, 0);
    assert_memory_equal(q.report_data, "Hello, world!", 13);
    assert_true(all_zero(q.report_data + 13, 51));
    assert_int_equal(q.sig_data_len, 4164);
    assert_hex(q.qe_report + 64, 32,
               "96b347a64e5a045e27369c26e6dcda51fd7c850e9b3a3a79e718f43261dee1e4");
    assert_hex(q.qe_report + 128, 32,
               "8c4f5775d796503e96137f77c68a829a0056ac8ded70140b081b094490c57bff");
    assert_int_equal(q.qe_report[258], 10);
    assert_int_equal((const uint8_t *)q.pck_chain - b, 1052);
    assert_int_equal(q.pck_chain_len, 3548);

    cl_sgx_result res;
    verify_ok(&q, NULL, T_NOW, &res);
    assert_hex(res.fmspc, 6, "00a067110000");
    static const uint8_t comps[16] = {11, 11, 2, 2, 255, 1};
    assert_memory_equal(res.tcb_comp, comps, 16);
    assert_int_equal(res.pce_svn, 13);
    assert_hex(res.cpu_svn, 16, "0b0b0202ff0100000000000000000000");
    assert_date(res.pck_not_before, "2023-09-20");
    assert_date(res.pck_not_after, "2030-09-20");
    cl_sgx_result_free(&res);
    free(b);
}

/* SHA-256 of a member of the collateral file, decoded as the verifier must hash it. */
static void coll_member_hash(const json_t *j, const char *key, int hexder, char out[65])
{
    const json_t *v = json_object_get(j, key);
    assert_true(json_is_string(v));
    uint8_t d[32];
    if (hexder) {
        uint8_t *der = NULL;
        size_t dl = 0;
        assert_int_equal(
            cl_hex_decode_alloc(json_string_value(v), json_string_length(v), &der, &dl), CL_OK);
        cl_sha256(der, dl, d);
        cl_free(der);
    } else {
        cl_sha256(json_string_value(v), json_string_length(v), d);
    }
    cl_hex_encode(d, 32, out);
}

static void check_hashes(const cl_sgx_result *res, const char *collfile)
{
    size_t n;
    uint8_t *t = load(collfile, &n);
    json_t *j = NULL;
    assert_int_equal(cl_json_parse((const char *)t, n, 1 << 24, &j, NULL, 0), CL_OK);
    struct {
        const char *claim, *member;
        int der;
    } map[] = {{"tcbinfohash", "tcb_info", 0},
               {"tcbinfocertshash", "tcb_info_issuer_chain", 0},
               {"tcbinfocrlhash", "root_ca_crl", 1},
               {"qeidhash", "qe_identity", 0},
               {"qeidcertshash", "qe_identity_issuer_chain", 0},
               {"qeidcrlhash", "root_ca_crl", 1}};
    assert_int_equal(json_object_size(res->collateral_hashes), 6);
    for (size_t i = 0; i < 6; i++) {
        char want[65];
        coll_member_hash(j, map[i].member, map[i].der, want);
        const json_t *v = json_object_get(res->collateral_hashes, map[i].claim);
        assert_true(json_is_string(v));
        assert_string_equal(json_string_value(v), want);
    }
    json_decref(j);
    free(t);
}

static void test_phala_sgx_collateral(void **state)
{
    (void)state;
    size_t n;
    uint8_t *b = load("sgx/phala_sgx_quote_v3.bin", &n);
    cl_intel_collateral *c = load_collateral("sgx/phala_sgx_quote_collateral.json");
    cl_sgx_quote q;
    parse_ok(b, n, &q);
    cl_sgx_result res;
    verify_ok(&q, c, T_COLLATERAL, &res);
    assert_int_equal(res.tcb_evaluated, 1);
    assert_int_equal(res.crl_checked, 1);
    assert_string_equal(res.platform_tcb_status, "ConfigurationAndSWHardeningNeeded");
    assert_string_equal(res.qe_tcb_status, "UpToDate");
    assert_string_equal(res.tcb_status, "ConfigurationAndSWHardeningNeeded");
    assert_string_equal(res.tdx_module_tcb_status, "");
    assert_string_equal(res.tcb_date, "2024-03-13T00:00:00Z");
    assert_int_equal(res.tcb_eval_data_number, 17);
    assert_true(json_is_array(res.advisory_ids));
    assert_int_equal(json_array_size(res.advisory_ids), 2);
    assert_string_equal(json_string_value(json_array_get(res.advisory_ids, 0)), "INTEL-SA-00289");
    assert_string_equal(json_string_value(json_array_get(res.advisory_ids, 1)), "INTEL-SA-00615");
    check_hashes(&res, "sgx/phala_sgx_quote_collateral.json");

    json_t *claims = json_object();
    uint8_t qh[32];
    cl_sha256(b, n, qh);
    assert_int_equal(cl_sgx_claims(&q, &res, qh, claims), CL_OK);
    assert_string_equal(json_string_value(json_object_get(claims, "x-ms-sgx-tcb-status")),
                        "ConfigurationAndSWHardeningNeeded");
    json_t *coll = json_object_get(claims, "x-ms-sgx-collateral");
    assert_int_equal(json_object_size(coll), 7);
    assert_string_equal(json_string_value(json_object_get(coll, "quotehash")),
                        "f8b81014b6e443609746822194910f5dc1c92c322fa0584298d1e33e505ca3b5");
    assert_true(json_equal(coll, json_object_get(claims, "maa-attestationcollateral")));
    json_decref(claims);
    cl_sgx_result_free(&res);

    /* Expired (after nextUpdate) and not yet issued. */
    char err[256];
    assert_int_equal(verify_rc(&q, c, T_AFTER_NEXT, err, sizeof err), CL_EEXPIRED);
    assert_int_equal(verify_rc(&q, c, T_BEFORE, err, sizeof err), CL_EEXPIRED);
    /* The collateral of another platform (TDX, FMSPC b0c06f000000, TD_QE identity). */
    cl_intel_collateral *tc = load_collateral("tdx/phala_tdx_quote_collateral.json");
    assert_int_equal(verify_rc(&q, tc, T_COLLATERAL, err, sizeof err), CL_ECHAIN);
    cl_intel_collateral_free(tc);
    /* Azure's 2021 platform (Processor CA, FMSPC 00906ed50000) with this collateral: the PCK
     * CRL is the Processor CA's and lists nothing of it, the FMSPC differs. */
    size_t an;
    uint8_t *ab = load("sgx/azure-sdk_sgx_quote_v3.bin", &an);
    cl_sgx_quote aq;
    parse_ok(ab, an, &aq);
    assert_int_equal(verify_rc(&aq, c, T_COLLATERAL, err, sizeof err), CL_ECHAIN);
    assert_non_null(strstr(err, "FMSPC"));
    free(ab);
    cl_intel_collateral_free(c);
    free(b);
}

/* Collateral whose member `key` is replaced by `value` (string) or removed (value NULL). */
static cl_intel_collateral *edited_collateral(const char *file, const char *key, const char *value,
                                              int *rc, char *err, size_t errlen)
{
    size_t n;
    uint8_t *t = load(file, &n);
    json_t *j = NULL;
    assert_int_equal(cl_json_parse((const char *)t, n, 1 << 24, &j, NULL, 0), CL_OK);
    if (value != NULL)
        json_object_set_new(j, key, json_string(value));
    else
        json_object_del(j, key);
    char *text = json_dumps(j, JSON_COMPACT);
    cl_intel_collateral *c = NULL;
    *rc = cl_intel_collateral_parse(text, strlen(text), &c, err, errlen);
    cl_free(text); /* jansson allocates through the base seam */
    json_decref(j);
    free(t);
    return c;
}

static char *member_copy(const char *file, const char *key)
{
    size_t n;
    uint8_t *t = load(file, &n);
    json_t *j = NULL;
    assert_int_equal(cl_json_parse((const char *)t, n, 1 << 24, &j, NULL, 0), CL_OK);
    char *s = strdup(json_string_value(json_object_get(j, key)));
    json_decref(j);
    free(t);
    return s;
}

static void test_collateral_tamper(void **state)
{
    (void)state;
    const char *file = "sgx/phala_sgx_quote_collateral.json";
    size_t n;
    uint8_t *b = load("sgx/phala_sgx_quote_v3.bin", &n);
    cl_sgx_quote q;
    parse_ok(b, n, &q);
    char err[256];
    int rc;

    /* A one-character change in the signed TCB info (a level's status) breaks its signature. */
    char *tcb = member_copy(file, "tcb_info");
    char *p = strstr(tcb, "\"SWHardeningNeeded\"");
    assert_non_null(p);
    memcpy(p + 1, "SWHardeningNeedeD", 17);
    cl_intel_collateral *c = edited_collateral(file, "tcb_info", tcb, &rc, err, sizeof err);
    assert_int_equal(rc, CL_OK);
    assert_int_equal(verify_rc(&q, c, T_COLLATERAL, err, sizeof err), CL_ESIG);
    assert_string_equal(err, "TCB info signature does not verify");
    cl_intel_collateral_free(c);
    free(tcb);

    /* Same for the QE identity (whitespace is significant: the text is signed verbatim). */
    char *qe = member_copy(file, "qe_identity");
    size_t ql = strlen(qe);
    char *qe2 = malloc(ql + 2);
    memcpy(qe2, qe, ql - 1);
    qe2[ql - 1] = ' ';
    qe2[ql] = '}';
    qe2[ql + 1] = '\0';
    c = edited_collateral(file, "qe_identity", qe2, &rc, err, sizeof err);
    assert_int_equal(rc, CL_OK);
    assert_int_equal(verify_rc(&q, c, T_COLLATERAL, err, sizeof err), CL_ESIG);
    assert_string_equal(err, "QE identity signature does not verify");
    cl_intel_collateral_free(c);
    free(qe2);
    free(qe);

    /* A signature of the wrong document. */
    char *qsig = member_copy(file, "qe_identity_signature");
    c = edited_collateral(file, "tcb_info_signature", qsig, &rc, err, sizeof err);
    assert_int_equal(rc, CL_OK);
    assert_int_equal(verify_rc(&q, c, T_COLLATERAL, err, sizeof err), CL_ESIG);
    cl_intel_collateral_free(c);
    free(qsig);

    /* The TCB info signed by a PCK chain instead of the TCB signing chain. */
    char *pck = strndup(q.pck_chain, q.pck_chain_len - 1);
    c = edited_collateral(file, "tcb_info_issuer_chain", pck, &rc, err, sizeof err);
    assert_int_equal(rc, CL_OK);
    assert_int_equal(verify_rc(&q, c, T_COLLATERAL, err, sizeof err), CL_ECHAIN);
    assert_non_null(strstr(err, "TCB info issuer chain"));
    cl_intel_collateral_free(c);
    free(pck);

    /* The PCK CRL replaced by the root CA CRL: no CRL for the leaf's issuer. */
    char *root_crl = member_copy(file, "root_ca_crl");
    c = edited_collateral(file, "pck_crl", root_crl, &rc, err, sizeof err);
    assert_int_equal(rc, CL_OK);
    assert_int_equal(verify_rc(&q, c, T_COLLATERAL, err, sizeof err), CL_ECHAIN);
    assert_non_null(strstr(err, "CRL"));
    cl_intel_collateral_free(c);
    free(root_crl);

    /* Malformed collateral is rejected at parse time with the member's name. */
    static const char *const required[] = {"tcb_info",
                                           "tcb_info_signature",
                                           "tcb_info_issuer_chain",
                                           "qe_identity",
                                           "qe_identity_signature",
                                           "qe_identity_issuer_chain",
                                           "root_ca_crl",
                                           "pck_crl"};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        c = edited_collateral(file, required[i], NULL, &rc, err, sizeof err);
        assert_null(c);
        assert_int_equal(rc, CL_EJSON);
        assert_non_null(strstr(err, required[i]));
        c = edited_collateral(file, required[i], "00zz", &rc, err, sizeof err);
        assert_null(c);
        assert_true(rc < 0);
        assert_non_null(strstr(err, required[i]));
    }
    c = edited_collateral(file, "pck_crl_issuer_chain", NULL, &rc, err, sizeof err);
    assert_int_equal(rc, CL_OK); /* optional */
    cl_intel_collateral_free(c);
    assert_int_equal(cl_intel_collateral_parse("[]", 2, &c, err, sizeof err), CL_EJSON);
    assert_int_equal(cl_intel_collateral_parse("{", 1, &c, err, sizeof err), CL_EJSON);
    free(b);
}

/* ---- TDX vectors ---------------------------------------------------------------------------
 */

typedef struct {
    const char *file;
    size_t size;
    const char *sha256;
    uint16_t version, body_type;
    size_t body_len;
    const char *tee_tcb_svn, *mr_seam, *td_attributes, *xfam, *mr_td, *rtmr0, *rtmr1, *rtmr2,
        *report_data;
    uint32_t sig_data_len;
    size_t trailing;
    const char *ak8, *qe_mre_head, *qe_mre_tail;
    uint16_t qe_svn;
    const char *pck_from, *pck_to, *fmspc;
    uint8_t comps[8];
    uint16_t pcesvn;
    const char *tee_tcb_svn2;
} tdx_vec;

static const tdx_vec tdx_vectors[] = {
    {"tdx/go-tdx-guest_quote_v4.bin",
     4974,
     "6dde5548bec99147fef832643301f113df99931547be26df8ac376c4eaa5b5a7",
     4,
     2,
     584,
     "03000400000000000000000000000000",
     "2fd279c16164a93dd5bf373d834328d46008c2b693af9ebb865b08b2ced320c9a89b4869a9fab60fbe9d0c5a5363c"
     "656",
     "0000004000000000",
     "e71a060000000000",
     "6363b8043668a3ad953278e10389574d326c6749fb78aa810ecd9336923db86f22fc00b8dcd404bc10d5e119d7215"
     "cbb",
     "2927da70461cd63266f43230cc1849c03ef25ebe490062a801d8fcc80af42976823adf08f833c1e50b51779c6593f"
     "32a",
     "2c700b8ba9b85783f8be9fb9443647bdc0bb3c50747f06297cc6538c25a5f589c4b56d035c59107c6bc5800db2cac"
     "b61",
     "8652f0caaba7e215ea442dc36a4499d8fec3362f3a0b2ca151cbe4b3e6466fe59c7368b3c2287fc7c3bf5c924eb44"
     "24e",
     "6c62dec1b8191749a31dab490be532a35944dea47caef1f980863993d9899545eb7406a38d1eed313b987a467dace"
     "ad6f0c87a6d766c66f6f29f8acb281f1113",
     4299,
     39,
     "36f301ff1db5c282",
     "853e298f",
     "150f",
     4,
     "2022-09-20",
     "2029-09-20",
     "50806f000000",
     {3, 3, 2, 2, 2, 1, 0, 2},
     11,
     NULL},
    {"tdx/go-tdx-guest_quote_v5.bin",
     5006,
     "cf77a6e91e48291d5d338c5f3b5d0674225a4d13e7d83ff5e537a4914bf22e1d",
     5,
     3,
     648,
     "0b010400000000000000000000000000",
     "7bf063280e94fb051f5dd7b1fc59ce9aac42bb961df8d44b709c9b0ff87a7b4df648657ba6d1189589feab1d5a3c9"
     "a9d",
     "0000001000000000",
     "e702060000000000",
     "7348651a34b2d2d3462822e3a750ec6110125f36757c78480bbfc69cc0d21fb001a1ced3ee19747dda8f750c3bc8f"
     "876",
     "5c8daf76063a71ac8fcef4067564661fc682ed7944c7a5d21dbbced02f61ceff4ba0678c6aef3bdae8cbc614cec24"
     "619",
     "463acaace1b6e97c76e92e41fe312aa66f3fd4dad60ec7acf169859db0343e3d1e591646795cdc80fbc0ca5f7041d"
     "253",
     "6369b9c9a3b791ebcbdc5a0bb9536cfb57f50df2b393b33c8b29616d3568baa61f4b59dc6092e31ea8764bcbdfc69"
     "f20",
     "945eaacf5abc1f719d8666a942fda03d1edcb4490277396093dc5a5289ab9f1e094aed63060cd4a4933a4dd537ed1"
     "255c9c79ecb3ed82cd1b486233e31c25c3a",
     4300,
     0,
     "4763cf2f3848919f",
     "b7ae9ab6",
     "30f8",
     7,
     "2026-01-27",
     "2033-01-27",
     "90c06f000000",
     {4, 4, 2, 2, 4, 1, 0, 5},
     13,
     "0d010400000000000000000000000000"},
    {"tdx/phala_tdx_quote_v4.bin",
     5006,
     "c42f9164325024bca2757bc8819b11879a0a369132ea4e2b7c85df4805ea72db",
     4,
     2,
     584,
     "06010300000000000000000000000000",
     "5b38e33a6487958b72c3c12a938eaa5e3fd4510c51aeeab58c7d5ecee41d7c436489d6c8e4f92f160b7cad34207b0"
     "0c1",
     "0000001000000000",
     "e702060000000000",
     "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b253887311"
     "8b7",
     "44c0197b39157fdd7a4dcc44767f9d6b0bb3977c7a8e347b8492f827fe9d9e5c48aca29b220b80b6a540cf994b9bc"
     "9c0",
     "0084452c01668329d4bc06acdf58a7205c26743304509973949e5619bf81a6a7aea8c323c173019b3093d54e579e9"
     "378",
     "d833feef2cd945148aa38ead2c53e9b7f138190aaaebfc551dccd829fc207aa3ba80b70870d7330733642e01d48c3"
     "132",
     "9a9d48e7f6799642d3d1b34e1e5e1742d4bb02dd6ddd551862c1211d35c304f9eca3efdbb481601c163cf52493d6e"
     "44aed55d51ec39b7e518fadb92c2b523f20",
     4300,
     70,
     "c78ac5859b9f5672",
     "e5a3a7b5",
     "6bca",
     6,
     "2025-02-06",
     "2032-02-06",
     "b0c06f000000",
     {3, 3, 2, 2, 4, 1, 0, 5},
     11,
     NULL},
};

static void test_tdx_quotes(void **state)
{
    (void)state;
    for (size_t v = 0; v < sizeof tdx_vectors / sizeof tdx_vectors[0]; v++) {
        const tdx_vec *e = &tdx_vectors[v];
        size_t n;
        uint8_t *b = load(e->file, &n);
        assert_int_equal(n, e->size);
        assert_sha256(b, n, e->sha256);
        cl_sgx_quote q;
        parse_ok(b, n, &q);
        assert_int_equal(q.version, e->version);
        assert_int_equal(q.tee_type, 0x81);
        assert_int_equal(q.att_key_type, 2);
        assert_int_equal(q.body_type, e->body_type);
        assert_int_equal(q.body_len, e->body_len);
        assert_null(q.enclave_report);
        assert_ptr_equal(q.td_report, b + (e->version == 5 ? 54 : 48));
        assert_ptr_equal(q.report_data, b + (e->version == 5 ? 574 : 568));
        assert_int_equal(q.signed_len, (e->version == 5 ? 54 : 48) + e->body_len);
        assert_hex(q.tee_tcb_svn, 16, e->tee_tcb_svn);
        assert_hex(q.mr_seam, 48, e->mr_seam);
        assert_true(all_zero(q.mr_signer_seam, 48) && all_zero(q.seam_attributes, 8));
        assert_hex(q.td_attributes, 8, e->td_attributes);
        assert_int_equal(q.debug, 0);
        assert_hex(q.xfam, 8, e->xfam);
        assert_hex(q.mr_td, 48, e->mr_td);
        assert_true(all_zero(q.mr_config_id, 48) && all_zero(q.mr_owner, 48) &&
                    all_zero(q.mr_owner_config, 48) && all_zero(q.rtmr[3], 48));
        assert_hex(q.rtmr[0], 48, e->rtmr0);
        assert_hex(q.rtmr[1], 48, e->rtmr1);
        assert_hex(q.rtmr[2], 48, e->rtmr2);
        assert_hex(q.report_data, 64, e->report_data);
        if (e->tee_tcb_svn2 != NULL) {
            assert_hex(q.tee_tcb_svn2, 16, e->tee_tcb_svn2);
            assert_true(all_zero(q.mr_servicetd, 48));
        } else {
            assert_null(q.tee_tcb_svn2);
            assert_null(q.mr_servicetd);
        }
        assert_int_equal(q.sig_data_len, e->sig_data_len);
        assert_int_equal(n - q.quote_len, e->trailing);
        assert_hex(q.attest_key, 8, e->ak8);
        assert_int_equal(q.cert_type, 6);
        char mre[65];
        cl_hex_encode(q.qe_report + 64, 32, mre);
        assert_memory_equal(mre, e->qe_mre_head, 8);
        assert_string_equal(mre + 60, e->qe_mre_tail);
        assert_hex(q.qe_report + 128, 32,
                   "dc9e2a7c6f948f17474e34a7fc43ed030f7c1563f1babddf6340c82e0e54a8c5");
        assert_int_equal(q.qe_report[256] | q.qe_report[257] << 8, 2);
        assert_int_equal(q.qe_report[258] | q.qe_report[259] << 8, e->qe_svn);
        assert_int_equal(q.qe_auth_len, 32);
        if (e->version == 5) /* §4.2 offsets for body type 3 */
            assert_int_equal((const uint8_t *)q.pck_chain - b, 1328);
        else
            assert_int_equal((const uint8_t *)q.pck_chain - b, 1258);

        cl_sgx_result res;
        verify_ok(&q, NULL, T_NOW, &res);
        assert_int_equal(res.tcb_evaluated, 0);
        assert_hex(res.fmspc, 6, e->fmspc);
        assert_memory_equal(res.tcb_comp, e->comps, 8);
        assert_true(all_zero(res.tcb_comp + 8, 8));
        assert_int_equal(res.pce_svn, e->pcesvn);
        assert_date(res.pck_not_before, e->pck_from);
        assert_date(res.pck_not_after, e->pck_to);
        assert_int_equal(res.trailing_bytes, e->trailing);
        cl_sgx_result_free(&res);
        free(b);
    }
}

static void test_phala_tdx_collateral(void **state)
{
    (void)state;
    size_t n;
    uint8_t *b = load("tdx/phala_tdx_quote_v4.bin", &n);
    cl_intel_collateral *c = load_collateral("tdx/phala_tdx_quote_collateral.json");
    cl_sgx_quote q;
    parse_ok(b, n, &q);
    cl_sgx_result res;
    verify_ok(&q, c, T_COLLATERAL, &res);
    assert_int_equal(res.tcb_evaluated, 1);
    assert_string_equal(res.platform_tcb_status, "UpToDate");
    assert_string_equal(res.tdx_module_id, "TDX_01");
    assert_string_equal(res.tdx_module_tcb_status, "UpToDate");
    assert_string_equal(res.qe_tcb_status, "UpToDate");
    assert_string_equal(res.tcb_status, "UpToDate");
    assert_string_equal(res.tcb_date, "2024-03-13T00:00:00Z");
    assert_int_equal(json_array_size(res.advisory_ids), 0);
    check_hashes(&res, "tdx/phala_tdx_quote_collateral.json");

    json_t *claims = json_object();
    uint8_t qh[32];
    cl_sha256(b, n, qh);
    assert_int_equal(cl_sgx_claims(&q, &res, qh, claims), CL_OK);
    assert_string_equal(json_string_value(json_object_get(claims, "attester_tcb_status")),
                        "UpToDate");
    assert_int_equal(json_integer_value(json_object_get(claims, "tdx_seamsvn")), 6);
    json_decref(claims);
    cl_sgx_result_free(&res);

    char err[256];
    assert_int_equal(verify_rc(&q, c, T_AFTER_NEXT, err, sizeof err), CL_EEXPIRED);
    /* SGX collateral for a TDX quote. */
    cl_intel_collateral *sc = load_collateral("sgx/phala_sgx_quote_collateral.json");
    assert_int_equal(verify_rc(&q, sc, T_COLLATERAL, err, sizeof err), CL_ECHAIN);
    cl_intel_collateral_free(sc);
    /* Another TDX platform (go-tdx-guest v4, FMSPC 50806f000000) with this collateral. */
    size_t gn;
    uint8_t *gb = load("tdx/go-tdx-guest_quote_v4.bin", &gn);
    cl_sgx_quote gq;
    parse_ok(gb, gn, &gq);
    assert_int_equal(verify_rc(&gq, c, T_COLLATERAL, err, sizeof err), CL_ECHAIN);
    free(gb);
    cl_intel_collateral_free(c);
    free(b);
}

/* ---- tamper, truncation, unsupported -------------------------------------------------------
 */

static size_t cert_offset(const char *pem, size_t len, int k);

static const char b64alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static uint8_t mutate(uint8_t v, int pem)
{
    const char *p = pem && v != 0 ? strchr(b64alpha, v) : NULL;
    if (p != NULL)
        return (uint8_t)b64alpha[(p - b64alpha + 1) % 64]; /* another base64 digit */
    return v ^ 0x01;
}

static void test_mutations(void **state)
{
    (void)state;
    size_t total = 0;
    for (size_t v = 0; v < NQUOTES; v++) {
        size_t n;
        uint8_t *b = load(quote_files[v], &n);
        cl_sgx_quote q;
        parse_ok(b, n, &q);
        struct {
            const char *name;
            size_t off, len;
            int pem;
        } reg[] = {
            {"header+body", 0, q.signed_len, 0},
            {"ISV signature", (size_t)(q.isv_signature - b), 64, 0},
            {"attestation key", (size_t)(q.attest_key - b), 64, 0},
            {"QE report", (size_t)(q.qe_report - b), 384, 0},
            {"QE report signature", (size_t)(q.qe_report_sig - b), 64, 0},
            {"QE auth data", (size_t)(q.qe_auth_data - b), q.qe_auth_len, 0},
            {"PCK chain", (size_t)((const uint8_t *)q.pck_chain - b), q.pck_chain_len, 1},
        };
        /* Every 7th byte of the binary regions, every 11th of the PCK leaf certificate's PEM
         * and every 37th of the CA certificates' PEM (also covered by the chain tests); each
         * certificate decode costs ~0.3 ms in OpenSSL 3.0. */
        size_t ca_pem = cert_offset(q.pck_chain, q.pck_chain_len, 1);
        uint8_t *m = malloc(n);
        memcpy(m, b, n);
        for (size_t r = 0; r < sizeof reg / sizeof reg[0]; r++) {
            for (size_t i = 0; i < reg[r].len; i++) {
                int boundary = i == 0 || i + 1 == reg[r].len || (reg[r].pem == 0 && i % 16 == 0);
                size_t stride = !reg[r].pem ? 7 : i >= ca_pem ? 37 : 11;
                if (!boundary && i % stride != 0)
                    continue;
                size_t off = reg[r].off + i;
                m[off] = mutate(b[off], reg[r].pem);
                cl_sgx_quote mq;
                char err[256];
                int rc = cl_sgx_quote_parse(m, n, &mq, err, sizeof err);
                if (rc == CL_OK)
                    rc = verify_rc(&mq, NULL, T_NOW, err, sizeof err);
                if (rc == CL_OK)
                    fail_msg("%s: mutation of %s byte %zu (offset %zu) still verifies",
                             quote_files[v], reg[r].name, i, off);
                assert_true(strlen(err) > 0);
                m[off] = b[off];
                total++;
            }
        }
        /* Specific steps name themselves. */
        char err[256];
        cl_sgx_quote mq;
        m[q.isv_signature - b + 5] ^= 0x80;
        parse_ok(m, n, &mq);
        assert_int_equal(verify_rc(&mq, NULL, T_NOW, err, sizeof err), CL_ESIG);
        assert_non_null(strstr(err, "signature does not verify with the attestation key"));
        memcpy(m, b, n);
        m[q.qe_report_sig - b + 40] ^= 0x80;
        parse_ok(m, n, &mq);
        assert_int_equal(verify_rc(&mq, NULL, T_NOW, err, sizeof err), CL_ESIG);
        assert_string_equal(err, "QE report signature does not verify with the PCK key");
        memcpy(m, b, n);
        m[q.qe_auth_data - b] ^= 0x80;
        parse_ok(m, n, &mq);
        assert_int_equal(verify_rc(&mq, NULL, T_NOW, err, sizeof err), CL_ESIG);
        assert_non_null(strstr(err, "QE binding"));
        memcpy(m, b, n);
        m[q.report_data - b] ^= 0x80;
        parse_ok(m, n, &mq);
        assert_int_equal(verify_rc(&mq, NULL, T_NOW, err, sizeof err), CL_ESIG);
        free(m);
        free(b);
    }
    print_message("%zu single-byte mutations rejected\n", total);
    assert_true(total > 1500);
}

static void test_truncation(void **state)
{
    (void)state;
    for (size_t v = 0; v < NQUOTES; v++) {
        size_t n;
        uint8_t *b = load(quote_files[v], &n);
        cl_sgx_quote full;
        parse_ok(b, n, &full);
        for (size_t len = 0; len < n; len++) {
            uint8_t *t = malloc(len ? len : 1); /* exact size: ASan catches over-reads */
            memcpy(t, b, len);
            cl_sgx_quote q;
            char err[256] = "";
            int rc = cl_sgx_quote_parse(t, len, &q, err, sizeof err);
            if (len < full.quote_len) {
                if (rc != CL_ETRUNC)
                    fail_msg("%s cut at %zu: rc %s (%s)", quote_files[v], len, cl_errname(rc), err);
                assert_non_null(strstr(err, "truncated at offset"));
            } else {
                /* Only ignored trailing bytes were cut (go-tdx-guest v4, Phala TDX). */
                assert_int_equal(rc, CL_OK);
                assert_int_equal(q.quote_len, full.quote_len);
            }
            free(t);
        }
        /* The documented message for the Azure quote cut inside its certification data. */
        if (v == 0) {
            cl_sgx_quote q;
            char err[256];
            assert_int_equal(cl_sgx_quote_parse(b, 2000, &q, err, sizeof err), CL_ETRUNC);
            assert_string_equal(err, "quote truncated at offset 436: signature data needs 4144 "
                                     "bytes, 1564 left");
        }
        free(b);
    }
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void test_unsupported(void **state)
{
    (void)state;
    size_t n, tn;
    uint8_t *b = load("sgx/azure-sdk_sgx_quote_v3.bin", &n);
    uint8_t *tb = load("tdx/go-tdx-guest_quote_v5.bin", &tn);
    uint8_t *m = malloc(n > tn ? n : tn);
    cl_sgx_quote q;
    char err[256];
    static const uint16_t bad_versions[] = {0, 1, 2, 6, 0xffff};
    for (size_t i = 0; i < sizeof bad_versions / sizeof bad_versions[0]; i++) {
        memcpy(m, b, n);
        put16(m, bad_versions[i]);
        assert_int_equal(cl_sgx_quote_parse(m, n, &q, err, sizeof err), CL_EUNSUPPORTED);
        assert_non_null(strstr(err, "version"));
    }
    memcpy(m, b, n);
    put16(m + 2, 3); /* ECDSA-384: defined, not produced */
    assert_int_equal(cl_sgx_quote_parse(m, n, &q, err, sizeof err), CL_EUNSUPPORTED);
    memcpy(m, b, n);
    m[12] ^= 1; /* QE vendor */
    assert_int_equal(cl_sgx_quote_parse(m, n, &q, err, sizeof err), CL_EUNSUPPORTED);
    for (uint16_t t = 1; t <= 7; t++) { /* v3 certification data types other than 5 */
        if (t == 5)
            continue;
        memcpy(m, b, n);
        put16(m + 1046, t);
        assert_int_equal(cl_sgx_quote_parse(m, n, &q, err, sizeof err), CL_EUNSUPPORTED);
        assert_non_null(strstr(err, "certification data type"));
    }
    memcpy(m, b, n);
    m[432] -= 1; /* sig_data_len one less: the certification data overruns it */
    assert_int_equal(cl_sgx_quote_parse(m, n, &q, err, sizeof err), CL_EFORMAT);

    /* v5: tee type, body type, body size, outer and inner certification types. */
    memcpy(m, tb, tn);
    m[4] = 0x82;
    assert_int_equal(cl_sgx_quote_parse(m, tn, &q, err, sizeof err), CL_EUNSUPPORTED);
    memcpy(m, tb, tn);
    put16(m + 48, 1);
    assert_int_equal(cl_sgx_quote_parse(m, tn, &q, err, sizeof err), CL_EUNSUPPORTED);
    memcpy(m, tb, tn);
    put16(m + 48, 2); /* type 2 with 648 bytes */
    assert_int_equal(cl_sgx_quote_parse(m, tn, &q, err, sizeof err), CL_EFORMAT);
    memcpy(m, tb, tn);
    put16(m + 834, 5);
    assert_int_equal(cl_sgx_quote_parse(m, tn, &q, err, sizeof err), CL_EUNSUPPORTED);
    memcpy(m, tb, tn);
    put16(m + 1322, 4);
    assert_int_equal(cl_sgx_quote_parse(m, tn, &q, err, sizeof err), CL_EUNSUPPORTED);
    memcpy(m, tb, tn);
    m[4] = 0; /* v5 with SGX tee type */
    assert_int_equal(cl_sgx_quote_parse(m, tn, &q, err, sizeof err), CL_EUNSUPPORTED);

    /* Arguments. */
    assert_int_equal(cl_sgx_quote_parse(NULL, 10, &q, err, sizeof err), CL_EINVAL);
    assert_int_equal(cl_sgx_quote_parse(b, n, NULL, err, sizeof err), CL_EINVAL);
    cl_sgx_result res;
    memset(&q, 0, sizeof q);
    assert_int_equal(cl_sgx_quote_verify(&q, NULL, T_NOW, &res, err, sizeof err), CL_EINVAL);
    free(m);
    free(tb);
    free(b);
}

/* An SGX quote in v4 framing, built from the Azure v3 quote: parses as SGX with type-6
 * certification data; everything but the ISV signature (whose header changed) verifies. */
static void test_sgx_v4_framing(void **state)
{
    (void)state;
    size_t n;
    uint8_t *b = load("sgx/azure-sdk_sgx_quote_v3.bin", &n);
    cl_sgx_quote q3;
    parse_ok(b, n, &q3);
    size_t qe_part = n - 564; /* QE report .. end of the PEM chain */
    size_t len = 432 + 4 + 128 + 6 + qe_part;
    uint8_t *v4 = malloc(len);
    memcpy(v4, b, 432);
    put16(v4, 4);
    cl_store_u32(v4 + 4, 0); /* tee_type SGX */
    memset(v4 + 8, 0, 4);
    cl_store_u32(v4 + 432, (uint32_t)(len - 436));
    memcpy(v4 + 436, b + 436, 128);
    put16(v4 + 564, 6);
    cl_store_u32(v4 + 566, (uint32_t)qe_part);
    memcpy(v4 + 570, b + 564, qe_part);
    cl_sgx_quote q;
    parse_ok(v4, len, &q);
    assert_int_equal(q.version, 4);
    assert_int_equal(q.tee_type, 0);
    assert_int_equal(q.cert_type, 6);
    assert_ptr_equal(q.enclave_report, v4 + 48);
    assert_memory_equal(q.mr_enclave, q3.mr_enclave, 32);
    assert_int_equal(q.pck_chain_len, q3.pck_chain_len);
    char err[256];
    assert_int_equal(verify_rc(&q, NULL, T_NOW, err, sizeof err), CL_ESIG);
    assert_string_equal(err,
                        "ISV enclave report signature does not verify with the attestation key");
    /* Claims follow the SGX table. */
    json_t *c = json_object();
    uint8_t h[32] = {0};
    assert_int_equal(cl_sgx_claims(&q, NULL, h, c), CL_OK);
    assert_non_null(json_object_get(c, "x-ms-sgx-mrenclave"));
    json_decref(c);
    free(v4);
    free(b);
}

/* ---- chains --------------------------------------------------------------------------------
 */

/* The quote with its PCK chain replaced (lengths fixed up, trailing bytes dropped). */
static uint8_t *with_chain(const cl_sgx_quote *q, const char *pem, size_t pemlen, size_t *outlen)
{
    size_t pem_off = (size_t)((const uint8_t *)q->pck_chain - q->raw);
    size_t len = pem_off + pemlen + 1;
    uint8_t *o = malloc(len);
    memcpy(o, q->raw, pem_off);
    memcpy(o + pem_off, pem, pemlen);
    o[len - 1] = '\0';
    cl_store_u32(o + pem_off - 4, (uint32_t)(pemlen + 1));
    if (q->cert_type == 6) {
        size_t outer = (size_t)(q->qe_report - q->raw);
        cl_store_u32(o + outer - 4, (uint32_t)(len - outer));
    }
    cl_store_u32(o + q->signed_len, (uint32_t)(len - q->signed_len - 4));
    *outlen = len;
    return o;
}

/* Offset of the k-th (0-based) certificate in a PEM chain. */
static size_t cert_offset(const char *pem, size_t len, int k)
{
    const char *p = pem;
    for (int i = 0; i <= k; i++) {
        const char *f = strstr(i == 0 ? p : p + 1, "-----BEGIN CERTIFICATE-----");
        assert_non_null(f);
        assert_true((size_t)(f - pem) < len);
        p = f;
    }
    return (size_t)(p - pem);
}

static EVP_PKEY *p256(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    assert_non_null(k);
    return k;
}

static X509 *make_cert(const X509_NAME *subject, const X509_NAME *issuer, EVP_PKEY *key,
                       EVP_PKEY *signer, int ca, long serial, int64_t from, int64_t to)
{
    X509 *x = X509_new();
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_set_subject_name(x, subject);
    X509_set_issuer_name(x, issuer);
    ASN1_TIME_set(X509_getm_notBefore(x), (time_t)from);
    ASN1_TIME_set(X509_getm_notAfter(x), (time_t)to);
    X509_set_pubkey(x, key);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
                                            ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    assert_non_null(e);
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    if (ca) {
        e = X509V3_EXT_conf_nid(NULL, &v3, NID_key_usage, "critical,keyCertSign,cRLSign");
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    assert_true(X509_sign(x, signer, EVP_sha256()) > 0);
    return x;
}

static char *to_pem(X509 *const *certs, size_t n, size_t *len)
{
    BIO *bio = BIO_new(BIO_s_mem());
    for (size_t i = 0; i < n; i++)
        assert_int_equal(PEM_write_bio_X509(bio, certs[i]), 1);
    char *data = NULL;
    long l = BIO_get_mem_data(bio, &data);
    char *out = malloc((size_t)l + 1);
    memcpy(out, data, (size_t)l);
    out[l] = '\0';
    *len = (size_t)l;
    BIO_free(bio);
    return out;
}

static X509 *load_root(const char *file)
{
    size_t n;
    uint8_t *t = load(file, &n);
    BIO *bio = BIO_new_mem_buf(t, (int)n);
    X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    assert_non_null(x);
    BIO_free(bio);
    free(t);
    return x;
}

static void test_chain_roots(void **state)
{
    (void)state;
    char err[256];
    const char *files[2] = {"sgx/azure-sdk_sgx_quote_v3.bin", "tdx/phala_tdx_quote_v4.bin"};
    X509 *r2033 = load_root("roots/intel_sgx_root_ca_2033.pem");
    X509 *r2049 = load_root("roots/intel_sgx_root_ca_2049.pem");
    size_t l33, l49;
    char *p33 = to_pem(&r2033, 1, &l33), *p49 = to_pem(&r2049, 1, &l49);
    for (int f = 0; f < 2; f++) {
        size_t n;
        uint8_t *b = load(files[f], &n);
        cl_sgx_quote q;
        parse_ok(b, n, &q);
        size_t root_off = cert_offset(q.pck_chain, q.pck_chain_len, 2);
        size_t head = root_off; /* leaf + intermediate */

        /* Either issuance of the root works, and so does a chain without its root. */
        const char *roots[3] = {p33, p49, ""};
        size_t rlens[3] = {l33, l49, 0};
        for (int r = 0; r < 3; r++) {
            size_t plen = head + rlens[r];
            char *pem = malloc(plen + 1);
            memcpy(pem, q.pck_chain, head);
            memcpy(pem + head, roots[r], rlens[r]);
            size_t ml;
            uint8_t *mq = with_chain(&q, pem, plen, &ml);
            cl_sgx_quote q2;
            parse_ok(mq, ml, &q2);
            cl_sgx_result res;
            verify_ok(&q2, NULL, T_NOW, &res);
            cl_sgx_result_free(&res);
            free(mq);
            free(pem);
        }

        /* A self-signed EC root with the same subject: CL_ECHAIN. */
        EVP_PKEY *k = p256();
        X509 *fake = make_cert(X509_get_subject_name(r2049), X509_get_subject_name(r2049), k, k, 1,
                               7, 1526900000, 2208988800);
        size_t fl;
        char *fp = to_pem(&fake, 1, &fl);
        char *pem = malloc(head + fl + 1);
        memcpy(pem, q.pck_chain, head);
        memcpy(pem + head, fp, fl);
        size_t ml;
        uint8_t *mq = with_chain(&q, pem, head + fl, &ml);
        cl_sgx_quote q2;
        parse_ok(mq, ml, &q2);
        assert_int_equal(verify_rc(&q2, NULL, T_NOW, err, sizeof err), CL_ECHAIN);
        assert_non_null(strstr(err, "pinned root public key"));
        free(mq);

        /* The intermediate re-signed by that fake root (a complete foreign path): CL_ECHAIN. */
        size_t ioff = cert_offset(q.pck_chain, q.pck_chain_len, 1);
        cl_intel_certs certs;
        assert_int_equal(
            cl_intel_pem_chain(q.pck_chain, q.pck_chain_len, "t", &certs, err, sizeof err), CL_OK);
        assert_int_equal(certs.n, 3);
        X509 *inter = X509_dup(certs.v[1]);
        assert_true(X509_sign(inter, k, EVP_sha256()) > 0);
        size_t il;
        char *ip = to_pem(&inter, 1, &il);
        char *pem2 = malloc(ioff + il + fl + 1);
        memcpy(pem2, q.pck_chain, ioff);
        memcpy(pem2 + ioff, ip, il);
        memcpy(pem2 + ioff + il, fp, fl);
        mq = with_chain(&q, pem2, ioff + il + fl, &ml);
        parse_ok(mq, ml, &q2);
        assert_int_equal(verify_rc(&q2, NULL, T_NOW, err, sizeof err), CL_ECHAIN);
        free(mq);
        /* ... and without the fake root in the quote. */
        mq = with_chain(&q, pem2, ioff + il, &ml);
        parse_ok(mq, ml, &q2);
        assert_int_equal(verify_rc(&q2, NULL, T_NOW, err, sizeof err), CL_ECHAIN);
        free(mq);
        /* An extra, unrelated certificate in the chain is not tolerated. */
        char *pem3 = malloc(q.pck_chain_len + fl + 1);
        memcpy(pem3, q.pck_chain, q.pck_chain_len - 1);
        memcpy(pem3 + q.pck_chain_len - 1, fp, fl);
        mq = with_chain(&q, pem3, q.pck_chain_len - 1 + fl, &ml);
        parse_ok(mq, ml, &q2);
        assert_true(verify_rc(&q2, NULL, T_NOW, err, sizeof err) < 0);
        free(mq);
        /* Leaf only. */
        mq = with_chain(&q, q.pck_chain, ioff, &ml);
        parse_ok(mq, ml, &q2);
        assert_int_equal(verify_rc(&q2, NULL, T_NOW, err, sizeof err), CL_ECHAIN);
        free(mq);
        free(pem3);
        free(pem2);
        free(ip);
        X509_free(inter);
        cl_intel_certs_free(&certs);
        free(pem);
        free(fp);
        X509_free(fake);
        EVP_PKEY_free(k);
        free(b);
    }
    free(p33);
    free(p49);
    X509_free(r2033);
    X509_free(r2049);
}

static X509_CRL *make_crl(X509 *issuer, EVP_PKEY *key, long revoked_serial, int64_t last,
                          int64_t next)
{
    X509_CRL *crl = X509_CRL_new();
    X509_CRL_set_version(crl, 1);
    X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer));
    ASN1_TIME *t = ASN1_TIME_new();
    ASN1_TIME_set(t, (time_t)last);
    X509_CRL_set1_lastUpdate(crl, t);
    ASN1_TIME_set(t, (time_t)next);
    X509_CRL_set1_nextUpdate(crl, t);
    if (revoked_serial > 0) {
        X509_REVOKED *r = X509_REVOKED_new();
        ASN1_INTEGER *s = ASN1_INTEGER_new();
        ASN1_INTEGER_set(s, revoked_serial);
        X509_REVOKED_set_serialNumber(r, s);
        ASN1_TIME_set(t, (time_t)last);
        X509_REVOKED_set_revocationDate(r, t);
        X509_CRL_add0_revoked(crl, r);
        ASN1_INTEGER_free(s);
    }
    ASN1_TIME_free(t);
    X509_CRL_sort(crl);
    assert_true(X509_CRL_sign(crl, key, EVP_sha256()) > 0);
    return crl;
}

/* Revocation and validity mapping of the chain validator, on a hierarchy of our own. */
static void test_chain_validator(void **state)
{
    (void)state;
    const int64_t t0 = 1700000000, t1 = 1900000000, now = 1750000000;
    X509_NAME *rn = X509_NAME_new(), *in = X509_NAME_new(), *ln = X509_NAME_new();
    X509_NAME_add_entry_by_txt(rn, "CN", MBSTRING_ASC, (const unsigned char *)"Test Root", -1, -1,
                               0);
    X509_NAME_add_entry_by_txt(in, "CN", MBSTRING_ASC, (const unsigned char *)"Test CA", -1, -1, 0);
    X509_NAME_add_entry_by_txt(ln, "CN", MBSTRING_ASC, (const unsigned char *)"Test Leaf", -1, -1,
                               0);
    EVP_PKEY *rk = p256(), *ik = p256(), *lk = p256(), *ok = p256();
    X509 *root = make_cert(rn, rn, rk, rk, 1, 1, t0, t1);
    X509 *inter = make_cert(in, rn, ik, rk, 1, 2, t0, t1);
    X509 *leaf = make_cert(ln, in, lk, ik, 0, 3, t0, t1);
    X509 *other_root = make_cert(rn, rn, ok, ok, 1, 1, t0, t1);
    X509_CRL *root_crl = make_crl(root, rk, 0, t0, t1);
    X509_CRL *crl_ok = make_crl(inter, ik, 99, t0, t1);
    X509_CRL *crl_revoked = make_crl(inter, ik, 3, t0, t1);
    X509_CRL *crl_stale = make_crl(inter, ik, 0, t0, now - 10);

    cl_intel_certs c = {{X509_dup(leaf), X509_dup(inter), X509_dup(root)}, 3};
    char err[256];
    assert_int_equal(cl_intel_chain_verify_anchor(&c, root, NULL, 0, now, "t", err, sizeof err),
                     CL_OK);
    X509_CRL *crls[2] = {root_crl, crl_ok};
    assert_int_equal(cl_intel_chain_verify_anchor(&c, root, crls, 2, now, "t", err, sizeof err),
                     CL_OK);
    crls[1] = crl_revoked;
    assert_int_equal(cl_intel_chain_verify_anchor(&c, root, crls, 2, now, "t", err, sizeof err),
                     CL_EREVOKED);
    assert_non_null(strstr(err, "revoked"));
    crls[1] = crl_stale;
    assert_int_equal(cl_intel_chain_verify_anchor(&c, root, crls, 2, now, "t", err, sizeof err),
                     CL_EEXPIRED);
    crls[1] = crl_ok; /* the leaf is outside its validity */
    assert_int_equal(cl_intel_chain_verify_anchor(&c, root, crls, 2, t1 + 10, "t", err, sizeof err),
                     CL_EEXPIRED);
    assert_int_equal(cl_intel_chain_verify_anchor(&c, root, crls, 1, now, "t", err, sizeof err),
                     CL_ECHAIN); /* no CRL for the leaf's issuer */
    assert_int_equal(
        cl_intel_chain_verify_anchor(&c, other_root, NULL, 0, now, "t", err, sizeof err),
        CL_ECHAIN);
    cl_intel_certs_free(&c);

    X509_CRL_free(root_crl);
    X509_CRL_free(crl_ok);
    X509_CRL_free(crl_revoked);
    X509_CRL_free(crl_stale);
    X509_free(root);
    X509_free(inter);
    X509_free(leaf);
    X509_free(other_root);
    EVP_PKEY_free(rk);
    EVP_PKEY_free(ik);
    EVP_PKEY_free(lk);
    EVP_PKEY_free(ok);
    X509_NAME_free(rn);
    X509_NAME_free(in);
    X509_NAME_free(ln);
}

/* ---- claims --------------------------------------------------------------------------------
 */

static json_t *load_token(const char *file)
{
    size_t n;
    uint8_t *t = load(file, &n);
    json_t *j = NULL;
    assert_int_equal(cl_json_parse((const char *)t, n, 1 << 20, &j, NULL, 0), CL_OK);
    free(t);
    json_t *p = json_incref(json_object_get(j, "payload"));
    json_decref(j);
    assert_true(json_is_object(p));
    return p;
}

static void claim_equals(const json_t *ours, const json_t *token, const char *ours_key,
                         const char *token_key)
{
    const json_t *a = json_object_get(ours, ours_key), *b = json_object_get(token, token_key);
    assert_non_null(a);
    assert_non_null(b);
    if (!json_equal(a, b))
        fail_msg("claim %s differs from the MAA token's %s", ours_key, token_key);
}

static void test_claims_maa(void **state)
{
    (void)state;
    size_t n, on;
    uint8_t *b = load("sgx/azure-sdk_sgx_quote_v3.bin", &n);
    uint8_t *ob = load("sgx/azure-sdk_oe_report.bin", &on);
    json_t *sgx_tok = load_token("maa/sharedwus_2021-05-05_SgxEnclave_binary-runtimedata.json");
    json_t *oe_tok = load_token("maa/sharedwus_2022-10-07_OpenEnclave_json-runtimedata.json");

    /* SgxEnclave: quotehash over the quote. */
    cl_sgx_quote q;
    parse_ok(b, n, &q);
    cl_sgx_result res;
    verify_ok(&q, NULL, T_NOW, &res);
    uint8_t h[32];
    cl_sha256(b, n, h);
    json_t *c = json_object();
    assert_int_equal(cl_sgx_claims(&q, &res, h, c), CL_OK);
    static const char *const same[] = {"x-ms-sgx-is-debuggable", "x-ms-sgx-mrenclave",
                                       "x-ms-sgx-mrsigner", "x-ms-sgx-product-id", "x-ms-sgx-svn"};
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        claim_equals(c, sgx_tok, same[i], same[i]);
        claim_equals(c, oe_tok, same[i], same[i]);
    }
    assert_int_equal(json_integer_value(json_object_get(c, "x-ms-sgx-product-id")), 1);
    assert_int_equal(json_integer_value(json_object_get(c, "x-ms-sgx-svn")), 1);
    assert_true(json_is_false(json_object_get(c, "x-ms-sgx-is-debuggable")));
    claim_equals(c, oe_tok, "x-ms-sgx-report-data", "x-ms-sgx-report-data");
    json_t *coll = json_object_get(c, "x-ms-sgx-collateral");
    assert_int_equal(json_object_size(coll), 1); /* no collateral used: quotehash only */
    claim_equals(coll, json_object_get(sgx_tok, "x-ms-sgx-collateral"), "quotehash", "quotehash");
    assert_string_equal(json_string_value(json_object_get(coll, "quotehash")),
                        "af0e05631c145d7dc1a33b214d43c6aa34a7859622a0ac7d880ab7b24e2f18d2");
    assert_true(json_equal(coll, json_object_get(c, "maa-attestationcollateral")));
    static const char *const absent[] = {"x-ms-attestation-type",
                                         "x-ms-sgx-ehd",
                                         "maa-ehd",
                                         "x-ms-sgx-tcb-status",
                                         "x-ms-sgx-config-id",
                                         "x-ms-sgx-config-svn",
                                         "x-ms-sgx-isv-family-id",
                                         "tee"};
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++)
        assert_null(json_object_get(c, absent[i]));
    assert_int_equal(json_object_size(c), 8);

    /* Legacy claims = the policy-issued values of the real tokens. */
    json_t *l = json_object();
    assert_int_equal(cl_sgx_legacy_claims(&q, l), CL_OK);
    static const char *const legacy[] = {"is-debuggable", "sgx-mrsigner", "sgx-mrenclave",
                                         "product-id",    "svn",          "tee"};
    for (size_t i = 0; i < sizeof legacy / sizeof legacy[0]; i++)
        claim_equals(l, sgx_tok, legacy[i], legacy[i]);
    assert_int_equal(json_object_size(l), 6);
    json_decref(l);
    json_decref(c);
    cl_sgx_result_free(&res);

    /* OpenEnclave: quotehash over the whole report. */
    const uint8_t *qp;
    size_t ql;
    assert_int_equal(cl_oe_report_unwrap(ob, on, &qp, &ql, NULL, 0), CL_OK);
    parse_ok(qp, ql, &q);
    cl_sha256(ob, on, h);
    c = json_object();
    assert_int_equal(cl_sgx_claims(&q, NULL, h, c), CL_OK);
    claim_equals(json_object_get(c, "x-ms-sgx-collateral"),
                 json_object_get(oe_tok, "x-ms-sgx-collateral"), "quotehash", "quotehash");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(c, "x-ms-sgx-collateral"), "quotehash")),
        "949b189c928f25c0a8090ae57d9f481b3435f26fb9a4d7e86e2619770d29c13f");
    json_decref(c);

    /* KSS claims appear when flags bit 7 is set (parsed view edited in memory). */
    uint8_t *kb = malloc(n);
    memcpy(kb, b, n);
    kb[96] |= 0x80;
    kb[308] = 9; /* config_svn: body offset 260 */
    parse_ok(kb, n, &q);
    assert_int_equal(q.kss, 1);
    c = json_object();
    assert_int_equal(cl_sgx_claims(&q, NULL, h, c), CL_OK);
    assert_int_equal(json_integer_value(json_object_get(c, "x-ms-sgx-config-svn")), 9);
    assert_int_equal(strlen(json_string_value(json_object_get(c, "x-ms-sgx-config-id"))), 128);
    assert_int_equal(
        strlen(json_string_value(json_object_get(c, "x-ms-sgx-isv-extended-product-id"))), 32);
    assert_int_equal(strlen(json_string_value(json_object_get(c, "x-ms-sgx-isv-family-id"))), 32);
    json_decref(c);
    free(kb);

    json_decref(sgx_tok);
    json_decref(oe_tok);
    free(ob);
    free(b);
}

static void test_claims_tdx(void **state)
{
    (void)state;
    for (size_t v = 0; v < sizeof tdx_vectors / sizeof tdx_vectors[0]; v++) {
        const tdx_vec *e = &tdx_vectors[v];
        size_t n;
        uint8_t *b = load(e->file, &n);
        cl_sgx_quote q;
        parse_ok(b, n, &q);
        uint8_t h[32];
        cl_sha256(b, n, h);
        json_t *c = json_object();
        assert_int_equal(cl_sgx_claims(&q, NULL, h, c), CL_OK);
        assert_string_equal(json_string_value(json_object_get(c, "tdx_mrtd")), e->mr_td);
        assert_string_equal(json_string_value(json_object_get(c, "tdx_mrseam")), e->mr_seam);
        assert_string_equal(json_string_value(json_object_get(c, "tdx_rtmr0")), e->rtmr0);
        assert_string_equal(json_string_value(json_object_get(c, "tdx_rtmr1")), e->rtmr1);
        assert_string_equal(json_string_value(json_object_get(c, "tdx_rtmr2")), e->rtmr2);
        assert_string_equal(json_string_value(json_object_get(c, "tdx_report_data")),
                            e->report_data);
        assert_string_equal(json_string_value(json_object_get(c, "tdx_td_attributes")),
                            e->td_attributes);
        assert_string_equal(json_string_value(json_object_get(c, "tdx_xfam")), e->xfam);
        assert_string_equal(json_string_value(json_object_get(c, "tdx_tee_tcb_svn")),
                            e->tee_tcb_svn);
        static const char zero96[] = "000000000000000000000000000000000000000000000000"
                                     "000000000000000000000000000000000000000000000000";
        static const char *const zeros[] = {"tdx_mrsignerseam", "tdx_mrconfigid", "tdx_mrowner",
                                            "tdx_mrownerconfig", "tdx_rtmr3"};
        for (size_t i = 0; i < 5; i++)
            assert_string_equal(json_string_value(json_object_get(c, zeros[i])), zero96);
        assert_string_equal(json_string_value(json_object_get(c, "tdx_seam_attributes")),
                            "0000000000000000");
        uint8_t svn0;
        assert_int_equal(cl_hex_decode(e->tee_tcb_svn, 2, &svn0, 1), CL_OK);
        assert_int_equal(json_integer_value(json_object_get(c, "tdx_seamsvn")), svn0);
        int pks = v == 0; /* go v4: 0x40000000; others: 0x10000000 */
        assert_true(json_is_false(json_object_get(c, "tdx_td_attributes_debug")));
        assert_true(json_boolean_value(json_object_get(c, "tdx_td_attributes_protection_keys")) ==
                    pks);
        assert_true(json_boolean_value(json_object_get(c, "tdx_td_attributes_septve_disable")) ==
                    !pks);
        assert_true(json_is_false(json_object_get(c, "tdx_td_attributes_key_locker")));
        assert_true(json_is_false(json_object_get(c, "tdx_td_attributes_perfmon")));
        assert_string_equal(json_string_value(json_object_get(c, "dbgstat")), "disabled");
        assert_string_equal(json_string_value(json_object_get(c, "eat_profile")),
                            "https://aka.ms/maa-eat-profile-tdxvm");
        assert_string_equal(json_string_value(json_object_get(c, "intuse")), "generic");
        assert_null(json_object_get(c, "attester_tcb_status"));
        assert_null(json_object_get(c, "x-ms-attestation-type"));
        assert_null(json_object_get(c, "x-ms-sgx-mrenclave"));
        if (e->tee_tcb_svn2 != NULL) {
            assert_string_equal(json_string_value(json_object_get(c, "tdx_tee_tcb_svn2")),
                                e->tee_tcb_svn2);
            assert_string_equal(json_string_value(json_object_get(c, "tdx_mrservicetd")), zero96);
            assert_int_equal(json_object_size(c), 26);
        } else {
            assert_null(json_object_get(c, "tdx_tee_tcb_svn2"));
            assert_int_equal(json_object_size(c), 24);
        }
        json_t *l = json_object();
        assert_int_equal(cl_sgx_legacy_claims(&q, l), CL_EINVAL);
        json_decref(l);
        json_decref(c);
        free(b);
    }
}

int main(void)
{
    find_vectors();
    if (getenv("TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_azure_quote),          cmocka_unit_test(test_oe_report),
        cmocka_unit_test(test_phala_sgx_quote),      cmocka_unit_test(test_phala_sgx_collateral),
        cmocka_unit_test(test_collateral_tamper),    cmocka_unit_test(test_tdx_quotes),
        cmocka_unit_test(test_phala_tdx_collateral), cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_truncation),           cmocka_unit_test(test_unsupported),
        cmocka_unit_test(test_sgx_v4_framing),       cmocka_unit_test(test_chain_roots),
        cmocka_unit_test(test_chain_validator),      cmocka_unit_test(test_claims_maa),
        cmocka_unit_test(test_claims_tdx),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
