/*
 * test_snp.c — AMD SEV-SNP reports, the SevSnpVm wrapper, chain and signature verification, claims
 * (src/attest/snp.c; spec/evidence-formats.md §5, spec/attestation-api.md §3.4, §5.4, §12 A16-A18).
 *
 * Vectors: tests/data/attestation-vectors/{snp,roots} under CLEDGER_SOURCE_DIR (fallback
 * /work/main). Verification time is pinned to 2025-06-20T00:00:00Z, inside every certificate's
 * validity (go-sev-guest VCEK 2022-09-24..2029-09-24, virtee VCEK 2023-04-03..2030-04-03, Milan
 * ASK/ARK 2020..2045). Forged certificates are made here with OpenSSL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "attest/roots.h"
#include "attest/snp.h"
#include "base/alloc.h"
#include "base/codec.h"
#include "base/cursor.h"
#include "base/json.h"
#include "crypto/hash.h"

#define T_2025_06_20 INT64_C(1750377600)

/* ---- helpers ----------------------------------------------------------------------------- */

static char vdir[4096];

static void find_vectors(void)
{
    const char *src = getenv("CLEDGER_SOURCE_DIR");
    struct stat st;
    if (src != NULL && *src) {
        snprintf(vdir, sizeof vdir, "%s/tests/data/attestation-vectors", src);
        if (stat(vdir, &st) == 0 && S_ISDIR(st.st_mode))
            return;
    }
    snprintf(vdir, sizeof vdir, "/work/main/tests/data/attestation-vectors");
}

/* Whole vector file, NUL-terminated, malloc'd. */
static uint8_t *vec(const char *name, size_t *len)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/%s", vdir, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    assert_true(n >= 0);
    uint8_t *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static char *x509_pem(X509 *x)
{
    BIO *b = BIO_new(BIO_s_mem());
    assert_non_null(b);
    assert_int_equal(PEM_write_bio_X509(b, x), 1);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *s = malloc((size_t)n + 1);
    memcpy(s, p, (size_t)n);
    s[n] = 0;
    BIO_free(b);
    return s;
}

static X509 *der_x509(const uint8_t *der, size_t n)
{
    const unsigned char *q = der;
    X509 *x = d2i_X509(NULL, &q, (long)n);
    assert_non_null(x);
    return x;
}

static X509 *pem_x509(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    assert_non_null(x);
    return x;
}

static char *vcek_pem(const char *name)
{
    size_t n;
    uint8_t *der = vec(name, &n);
    X509 *x = der_x509(der, n);
    char *pem = x509_pem(x);
    X509_free(x);
    free(der);
    return pem;
}

/* Concatenation of up to four strings (NULLs skipped), malloc'd. */
static char *cat(const char *a, const char *b, const char *c, const char *d)
{
    const char *v[4] = {a, b, c, d};
    size_t n = 1;
    for (int i = 0; i < 4; i++)
        n += v[i] ? strlen(v[i]) : 0;
    char *s = malloc(n);
    s[0] = 0;
    size_t o = 0;
    for (int i = 0; i < 4; i++) {
        if (v[i] == NULL)
            continue;
        size_t l = strlen(v[i]);
        memcpy(s + o, v[i], l);
        o += l;
    }
    s[o] = 0;
    return s;
}

typedef struct {
    uint8_t *report;
    size_t report_len;
    char *vcek; /* PEM */
} vector;

static void load(vector *v, const char *report, const char *vcek)
{
    v->report = vec(report, &v->report_len);
    assert_int_equal(v->report_len, CL_SNP_REPORT_LEN);
    v->vcek = vcek_pem(vcek);
}

static void unload(vector *v)
{
    free(v->report);
    free(v->vcek);
}

static void gosev(vector *v)
{
    load(v, "snp/go-sev-guest_report.bin", "snp/go-sev-guest_vcek.der");
}
static void virtee(vector *v)
{
    load(v, "snp/virtee_report_milan.bin", "snp/virtee_vcek_milan.der");
}

static char *roots_pem(const char *file)
{
    char path[64];
    snprintf(path, sizeof path, "roots/%s", file);
    size_t n;
    return (char *)vec(path, &n);
}

static char *b64(const void *p, size_t n, cl_b64_variant v)
{
    char *s = cl_b64_encode_alloc(p, n, v);
    assert_non_null(s);
    return s;
}

/* {"SnpReport": ..., "VcekCertChain": ...} with base64url (or standard padded) members. */
static char *wrapper(const uint8_t *rep, size_t replen, const char *chain, cl_b64_variant v,
                     const char *extra)
{
    char *r = b64(rep, replen, v);
    char *c = chain ? b64(chain, strlen(chain), v) : NULL;
    size_t cap = strlen(r) + (c ? strlen(c) : 0) + (extra ? strlen(extra) : 0) + 200;
    char *s = malloc(cap);
    if (c)
        snprintf(s, cap, "{\"SnpReport\":\"%s\",\"VcekCertChain\":\"%s\"%s}", r, c,
                 extra ? extra : "");
    else
        snprintf(s, cap, "{\"SnpReport\":\"%s\"%s}", r, extra ? extra : "");
    cl_free(r);
    cl_free(c);
    return s;
}

/* The same text with every LF turned into CRLF (takes ownership of s). */
static char *crlf(char *s)
{
    size_t n = strlen(s), lf = 0;
    for (size_t i = 0; i < n; i++)
        lf += s[i] == '\n';
    char *o = malloc(n + lf + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n')
            o[k++] = '\r';
        o[k++] = s[i];
    }
    o[k] = 0;
    free(s);
    return o;
}

static int verify_raw(const uint8_t *rep, const char *chain, int64_t t, char *err, size_t errlen)
{
    return cl_snp_verify_report(NULL, rep, CL_SNP_REPORT_LEN, chain, strlen(chain), t, err, errlen);
}

static void hexeq(const uint8_t *p, size_t n, const char *want)
{
    char buf[2 * 128 + 1];
    assert_true(n <= 128);
    cl_hex_encode(p, n, buf);
    assert_string_equal(buf, want);
}

static int all(const uint8_t *p, size_t n, uint8_t b)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != b)
            return 0;
    return 1;
}

/* ---- parsing ----------------------------------------------------------------------------- */

static void check_common(const cl_snp_report *r)
{
    assert_int_equal(r->version, 2);
    assert_int_equal(r->guest_svn, 0);
    assert_int_equal(r->vmpl, 0);
    assert_int_equal(r->signature_algo, 1);
    assert_true(all(r->family_id, 16, 0) && all(r->image_id, 16, 0));
    assert_true(all(r->host_data, 32, 0) && all(r->id_key_digest, 48, 0));
    assert_true(all(r->author_key_digest, 48, 0));
    assert_int_equal(r->platform_info, 1);
    assert_int_equal(r->signer_info, 0);
    assert_int_equal(r->signing_key, CL_SNP_SIGNER_KEY_VCEK);
    assert_false(r->author_key_en);
    assert_false(r->mask_chip_key);
    assert_true(all(r->report_id_ma, 32, 0xff));
    /* R and S are P-384 values: the top 24 bytes of each 72-byte little-endian field are 0. */
    assert_true(all(r->sig_r + 48, 24, 0) && all(r->sig_s + 48, 24, 0));
}

/* The big-endian hex of a little-endian 72-byte signature component, without leading zeros. */
static void sig_be_hex(const uint8_t le[72], char out[97])
{
    uint8_t be[48];
    for (int i = 0; i < 48; i++)
        be[i] = le[47 - i];
    cl_hex_encode(be, 48, out);
}

static void test_parse_gosev(void **state)
{
    (void)state;
    vector v;
    gosev(&v);
    uint8_t d[32];
    cl_sha256(v.report, v.report_len, d);
    hexeq(d, 32, "377e6241d3b373ab1df80c0f96978594e7e21f4797dd6ea95e2957e1c1e26060");
    cl_snp_report r;
    char err[256];
    assert_int_equal(cl_snp_report_parse(v.report, v.report_len, &r, err, sizeof err), CL_OK);
    check_common(&r);
    assert_int_equal(r.policy, 0xb0000);
    assert_true(r.policy & CL_SNP_POLICY_DEBUG);
    const cl_snp_tcb *tcbs[] = {&r.current_tcb, &r.reported_tcb, &r.committed_tcb, &r.launch_tcb};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(tcbs[i]->raw, 0x4405000000000002ull);
        assert_int_equal(tcbs[i]->bootloader, 2);
        assert_int_equal(tcbs[i]->tee, 0);
        assert_int_equal(tcbs[i]->snp, 5);
        assert_int_equal(tcbs[i]->microcode, 68);
    }
    assert_int_equal(r.current_major, 1);
    assert_int_equal(r.current_minor, 49);
    assert_int_equal(r.current_build, 3);
    uint8_t rd[64] = {1, 2, 3, 4, 5};
    assert_memory_equal(r.report_data, rd, 64);
    hexeq(r.measurement, 48,
          "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2"
          "e4872b01");
    hexeq(r.report_id, 32, "8edc638e1857c555d21f6b11bda3c8b1b5a09dba4852b4c8ee7aa2f16f22cc0a");
    hexeq(r.chip_id, 64,
          "3ac3fe21e13fb0990eb28a802e3fb6a29483a6b0753590c951bdd3b8e53786184ca39e359669a2b76a193677"
          "6b564ea464cdce40c05f63c9b610c5068b006b5d");
    char be[97];
    sig_be_hex(r.sig_r, be);
    assert_memory_equal(be, "21c89c9932a2504b", 16);
    assert_string_equal(be + 96 - 8, "5a8b8e4f");
    assert_int_equal(r.launch_mit_vector, 0);
    assert_int_equal(r.cpuid_fam_id, 0);
    unload(&v);
}

static void test_parse_virtee(void **state)
{
    (void)state;
    vector v;
    virtee(&v);
    uint8_t d[32];
    cl_sha256(v.report, v.report_len, d);
    hexeq(d, 32, "120d77b213c8868dd42f160ccb0114f05336ec715f6d51070f534b33c7e03f3b");
    cl_snp_report r;
    assert_int_equal(cl_snp_report_parse(v.report, v.report_len, &r, NULL, 0), CL_OK);
    check_common(&r);
    assert_int_equal(r.policy, 0x30000);
    const cl_snp_tcb *tcbs[] = {&r.current_tcb, &r.reported_tcb, &r.committed_tcb, &r.launch_tcb};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(tcbs[i]->raw, 0x7308000000000003ull);
        assert_int_equal(tcbs[i]->bootloader, 3);
        assert_int_equal(tcbs[i]->snp, 8);
        assert_int_equal(tcbs[i]->microcode, 115);
    }
    assert_int_equal(r.current_major, 1);
    assert_int_equal(r.current_minor, 52);
    assert_int_equal(r.current_build, 4);
    hexeq(r.report_data, 64,
          "d447b55d197491bfe15cf298f9de9986b7a7c4be2468b4f6e2d53b71d7c645810b0f2cdfca0040433be063fc"
          "1a8293f0f3f8dae7b79fecb3d1cd82bd6a93ebfd");
    hexeq(r.measurement, 48,
          "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480"
          "cd81841f");
    hexeq(r.report_id, 32, "92b3b47d59f0a2a10a74c5678868a80238cf593c01a82f3cffb878e904c28d5b");
    hexeq(r.chip_id, 64,
          "d49554ec717f4e5b0fe6b143bcf0405bd7ae304727edf46603f2a76aef6a3abc15d7af38db757039029f0efa"
          "cfd08e244324884738c72b082e2f87a44d541eb6");
    char be[97];
    sig_be_hex(r.sig_r, be);
    assert_memory_equal(be, "72827fd0029b56ee", 16);
    assert_string_equal(be + 96 - 8, "114fab61");
    unload(&v);
}

static void test_parse_truncation(void **state)
{
    (void)state;
    vector v;
    gosev(&v);
    uint8_t *big = malloc(CL_SNP_REPORT_LEN + 1);
    memcpy(big, v.report, CL_SNP_REPORT_LEN);
    big[CL_SNP_REPORT_LEN] = 0;
    char err[256];
    cl_snp_report r;
    for (size_t n = 0; n < CL_SNP_REPORT_LEN; n++) {
        /* A heap copy of exactly n bytes so ASan catches any read past the end. */
        uint8_t *p = malloc(n ? n : 1);
        memcpy(p, v.report, n);
        assert_int_equal(cl_snp_report_parse(p, n, &r, err, sizeof err), CL_EFORMAT);
        assert_non_null(strstr(err, "expected 1184"));
        assert_int_equal(
            cl_snp_verify_report(NULL, p, n, v.vcek, strlen(v.vcek), T_2025_06_20, err, sizeof err),
            CL_EFORMAT);
        free(p);
    }
    assert_int_equal(cl_snp_report_parse(big, CL_SNP_REPORT_LEN + 1, &r, err, sizeof err),
                     CL_EFORMAT);
    assert_string_equal(err, "SEV-SNP report is 1185 bytes, expected 1184");
    free(big);
    unload(&v);
}

static void test_parse_fields_rules(void **state)
{
    (void)state;
    vector v;
    gosev(&v);
    uint8_t m[CL_SNP_REPORT_LEN];
    cl_snp_report r;
    char err[256];

    static const uint32_t bad_versions[] = {0, 4, 6, 0x100};
    for (size_t i = 0; i < 4; i++) {
        memcpy(m, v.report, sizeof m);
        cl_store_u32(m, bad_versions[i]);
        assert_int_equal(cl_snp_report_parse(m, sizeof m, &r, err, sizeof err), CL_EUNSUPPORTED);
        assert_non_null(strstr(err, "version"));
    }
    memcpy(m, v.report, sizeof m);
    cl_store_u32(m + 0x34, 2);
    assert_int_equal(cl_snp_report_parse(m, sizeof m, &r, err, sizeof err), CL_EUNSUPPORTED);
    assert_non_null(strstr(err, "signature algorithm 2"));

    memcpy(m, v.report, sizeof m);
    m[0x0a] &= (uint8_t)~0x02; /* policy bit 17 */
    assert_int_equal(cl_snp_report_parse(m, sizeof m, &r, err, sizeof err), CL_EFORMAT);
    assert_non_null(strstr(err, "bit 17"));

    /* Reserved ranges for version 2. */
    static const size_t reserved[] = {0x04c, 0x04f, 0x188, 0x18a, 0x19f, 0x1f8,
                                      0x207, 0x208, 0x29f, 0x330, 0x49f};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
        memcpy(m, v.report, sizeof m);
        m[reserved[i]] = 0x5a;
        assert_int_equal(cl_snp_report_parse(m, sizeof m, &r, err, sizeof err), CL_EFORMAT);
        char want[64];
        snprintf(want, sizeof want, "offset 0x%03zx is 0x5a", reserved[i]);
        assert_non_null(strstr(err, want));
    }

    /* Version 3: 0x188..0x18A are CPUID family/model/stepping; the rest stays reserved. */
    memcpy(m, v.report, sizeof m);
    cl_store_u32(m, 3);
    m[0x188] = 0x19;
    m[0x189] = 0x01;
    m[0x18a] = 0x01;
    assert_int_equal(cl_snp_report_parse(m, sizeof m, &r, err, sizeof err), CL_OK);
    assert_int_equal(r.version, 3);
    assert_int_equal(r.cpuid_fam_id, 0x19);
    assert_int_equal(r.cpuid_mod_id, 1);
    assert_int_equal(r.cpuid_step, 1);
    m[0x18b] = 1;
    assert_int_equal(cl_snp_report_parse(m, sizeof m, &r, err, sizeof err), CL_EFORMAT);

    /* Version 5: mitigation vectors at 0x1F8 / 0x200. */
    memcpy(m, v.report, sizeof m);
    cl_store_u32(m, 5);
    cl_store_u64(m + 0x1f8, 0x11);
    cl_store_u64(m + 0x200, 0x22);
    assert_int_equal(cl_snp_report_parse(m, sizeof m, &r, err, sizeof err), CL_OK);
    assert_int_equal(r.launch_mit_vector, 0x11);
    assert_int_equal(r.current_mit_vector, 0x22);

    /* signer_info bits. */
    memcpy(m, v.report, sizeof m);
    cl_store_u32(m + 0x48, 0x1u | 0x2u | (1u << 2));
    assert_int_equal(cl_snp_report_parse(m, sizeof m, &r, err, sizeof err), CL_OK);
    assert_true(r.author_key_en);
    assert_true(r.mask_chip_key);
    assert_int_equal(r.signing_key, CL_SNP_SIGNER_KEY_VLEK);

    assert_int_equal(cl_snp_report_parse(NULL, 0, &r, err, sizeof err), CL_EINVAL);
    unload(&v);
}

/* ---- verification ------------------------------------------------------------------------ */

static void test_verify_vectors(void **state)
{
    (void)state;
    char *milan = roots_pem("ask_ark_milan.pem");
    const cl_amd_root *pm = NULL;
    for (size_t i = 0; i < cl_amd_nroots; i++)
        if (strcmp(cl_amd_roots[i].product, "Milan") == 0)
            pm = &cl_amd_roots[i];
    assert_non_null(pm);
    for (int k = 0; k < 2; k++) {
        vector v;
        if (k == 0)
            gosev(&v);
        else
            virtee(&v);
        char err[512] = "";
        /* Full chain as the client sends it (VCEK, ASK, ARK). */
        char *chain = cat(v.vcek, milan, NULL, NULL);
        int rc = verify_raw(v.report, chain, T_2025_06_20, err, sizeof err);
        if (rc != CL_OK)
            fail_msg("vector %d: %s", k, err);
        /* Through the wrapper. */
        char *w = wrapper(v.report, v.report_len, chain, CL_B64_URL, NULL);
        cl_snp_evidence *e = NULL;
        assert_int_equal(cl_snp_wrapper_parse((uint8_t *)w, strlen(w), &e, err, sizeof err), CL_OK);
        assert_int_equal(cl_snp_verify(e, T_2025_06_20, err, sizeof err), CL_OK);
        cl_snp_report r;
        assert_int_equal(cl_snp_report_parse(v.report, v.report_len, &r, NULL, 0), CL_OK);
        /* The parsed struct handed in must match the raw bytes. */
        assert_int_equal(cl_snp_verify_report(&r, v.report, v.report_len, chain, strlen(chain),
                                              T_2025_06_20, err, sizeof err),
                         CL_OK);
        r.vmpl = 1;
        assert_int_equal(cl_snp_verify_report(&r, v.report, v.report_len, chain, strlen(chain),
                                              T_2025_06_20, err, sizeof err),
                         CL_EINVAL);
        cl_snp_evidence_free(e);
        free(w);
        free(chain);

        /* Chains completed from roots.h: VCEK only; VCEK + ASK; VCEK + ARK. */
        assert_int_equal(verify_raw(v.report, v.vcek, T_2025_06_20, err, sizeof err), CL_OK);
        chain = cat(v.vcek, "\n", pm->ask_pem, NULL);
        assert_int_equal(verify_raw(v.report, chain, T_2025_06_20, err, sizeof err), CL_OK);
        free(chain);
        chain = cat(v.vcek, pm->ark_pem, NULL, NULL);
        assert_int_equal(verify_raw(v.report, chain, T_2025_06_20, err, sizeof err), CL_OK);
        free(chain);
        /* CRLF line endings and surrounding whitespace. */
        chain = crlf(cat("\n  ", v.vcek, milan, "\n\n"));
        assert_int_equal(verify_raw(v.report, chain, T_2025_06_20, err, sizeof err), CL_OK);
        free(chain);
        unload(&v);
    }
    free(milan);
}

static void test_verify_time(void **state)
{
    (void)state;
    vector v;
    gosev(&v);
    char *milan = roots_pem("ask_ark_milan.pem");
    char *chain = cat(v.vcek, milan, NULL, NULL);
    char err[512];
    /* 2022-09-24 00:55:28 is the VCEK's notBefore; 2029-09-24 00:55:28 its notAfter. */
    assert_int_equal(verify_raw(v.report, chain, INT64_C(1663980928) - 1, err, sizeof err),
                     CL_EEXPIRED);
    assert_non_null(strstr(err, "VCEK"));
    assert_int_equal(verify_raw(v.report, chain, INT64_C(1663980928) + 1, err, sizeof err), CL_OK);
    assert_int_equal(verify_raw(v.report, chain, INT64_C(1884905728) - 1, err, sizeof err), CL_OK);
    assert_int_equal(verify_raw(v.report, chain, INT64_C(1884905728) + 1, err, sizeof err),
                     CL_EEXPIRED);
    /* 2019: before the ASK and ARK too. */
    assert_int_equal(verify_raw(v.report, chain, INT64_C(1546300800), err, sizeof err),
                     CL_EEXPIRED);
    free(chain);
    free(milan);
    unload(&v);
}

/* Flip one bit at every offset (signed region and signature): the report either fails to parse
 * (a reserved/version/algorithm field) or its signature no longer verifies. */
static void test_verify_mutations(void **state)
{
    (void)state;
    vector v;
    gosev(&v);
    char *milan = roots_pem("ask_ark_milan.pem");
    char *chain = cat(v.vcek, milan, NULL, NULL);
    uint8_t m[CL_SNP_REPORT_LEN];
    char err[512];
    int sig_fail = 0, parse_fail = 0;
    for (size_t off = 0; off < CL_SNP_REPORT_LEN; off++) {
        memcpy(m, v.report, sizeof m);
        m[off] ^= (off & 1) ? 0x80 : 0x01;
        cl_snp_report r;
        int prc = cl_snp_report_parse(m, sizeof m, &r, NULL, 0);
        int rc = verify_raw(m, chain, T_2025_06_20, err, sizeof err);
        if (prc != CL_OK) {
            assert_true(prc == CL_EFORMAT || prc == CL_EUNSUPPORTED);
            assert_int_equal(rc, prc);
            parse_fail++;
        } else if (off >= 0x48 && off < 0x4c && r.signing_key != CL_SNP_SIGNER_KEY_VCEK) {
            assert_true(rc == CL_ESIG || rc == CL_EUNSUPPORTED);
        } else {
            if (rc != CL_ESIG)
                fail_msg("mutation at 0x%03zx: rc %d (%s)", off, rc, err);
            sig_fail++;
        }
    }
    /* Every report field outside reserved space is covered by the signature check. */
    assert_true(sig_fail > 500);
    assert_true(parse_fail > 400);
    /* A18: corrupted signature byte 0x2A0. */
    memcpy(m, v.report, sizeof m);
    m[0x2a0] ^= 0xff;
    assert_int_equal(verify_raw(m, chain, T_2025_06_20, err, sizeof err), CL_ESIG);
    assert_non_null(strstr(err, "signature does not verify"));
    free(chain);
    free(milan);
    unload(&v);
}

static void test_verify_wrong_vcek(void **state)
{
    (void)state;
    vector a, b;
    gosev(&a);
    virtee(&b);
    char *milan = roots_pem("ask_ark_milan.pem");
    char err[512];
    char *chain = cat(b.vcek, milan, NULL, NULL);
    assert_int_equal(verify_raw(a.report, chain, T_2025_06_20, err, sizeof err), CL_ESIG);
    free(chain);
    chain = cat(a.vcek, milan, NULL, NULL);
    assert_int_equal(verify_raw(b.report, chain, T_2025_06_20, err, sizeof err), CL_ESIG);
    free(chain);
    free(milan);
    unload(&a);
    unload(&b);
}

static void test_verify_other_product_chain(void **state)
{
    (void)state;
    vector v;
    gosev(&v);
    char err[512];
    static const char *files[] = {"ask_ark_genoa.pem", "ask_ark_turin_vcek.pem"};
    for (int i = 0; i < 2; i++) {
        char *roots = roots_pem(files[i]);
        char *chain = cat(v.vcek, roots, NULL, NULL);
        assert_int_equal(verify_raw(v.report, chain, T_2025_06_20, err, sizeof err), CL_ECHAIN);
        assert_non_null(strstr(err, i == 0 ? "ARK-Genoa" : "ARK-Turin"));
        free(chain);
        free(roots);
    }
    /* Milan ASK with the Genoa ARK: the ARK selects Genoa and the ASK does not chain to it. */
    char *genoa = roots_pem("ask_ark_genoa.pem");
    const char *gark = strstr(genoa + 1, "-----BEGIN CERTIFICATE-----");
    assert_non_null(gark);
    const cl_amd_root *pm = &cl_amd_roots[0];
    assert_string_equal(pm->product, "Milan");
    char *chain = cat(v.vcek, pm->ask_pem, gark, NULL);
    assert_int_equal(verify_raw(v.report, chain, T_2025_06_20, err, sizeof err), CL_ECHAIN);
    free(chain);
    free(genoa);
    unload(&v);
}

static EVP_PKEY *p384_key(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-384");
    assert_non_null(k);
    return k;
}

/* A certificate with the given subject/issuer names and public key, signed by signer. */
static X509 *make_cert(const X509_NAME *subject, const X509_NAME *issuer, EVP_PKEY *pub,
                       EVP_PKEY *signer, int ca)
{
    X509 *x = X509_new();
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_set_subject_name(x, subject);
    X509_set_issuer_name(x, issuer);
    X509_gmtime_adj(X509_getm_notBefore(x), -(long)10 * 365 * 86400);
    X509_gmtime_adj(X509_getm_notAfter(x), (long)20 * 365 * 86400);
    X509_set_pubkey(x, pub);
    if (ca) {
        X509V3_CTX ctx;
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
        X509_EXTENSION *e =
            X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
        assert_non_null(e);
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    assert_true(X509_sign(x, signer, EVP_sha384()) > 0);
    return x;
}

static void test_verify_forged_roots(void **state)
{
    (void)state;
    vector v;
    gosev(&v);
    const cl_amd_root *pm = &cl_amd_roots[0];
    X509 *ark = pem_x509(pm->ark_pem), *ask = pem_x509(pm->ask_pem);
    EVP_PKEY *k = p384_key();
    char err[512];

    /* A self-made ARK with the pinned ARK's subject. */
    X509 *fark = make_cert(X509_get_subject_name(ark), X509_get_subject_name(ark), k, k, 1);
    char *fark_pem = x509_pem(fark);
    char *chain = cat(v.vcek, pm->ask_pem, fark_pem, NULL);
    assert_int_equal(verify_raw(v.report, chain, T_2025_06_20, err, sizeof err), CL_ECHAIN);
    assert_non_null(strstr(err, "not a pinned AMD root"));
    free(chain);
    /* Also as a 2-certificate chain (VCEK + self-issued ARK). */
    chain = cat(v.vcek, fark_pem, NULL, NULL);
    assert_int_equal(verify_raw(v.report, chain, T_2025_06_20, err, sizeof err), CL_ECHAIN);
    free(chain);

    /* A self-made ASK (subject SEV-Milan, issuer ARK-Milan) signed by the forged key. */
    X509 *fask = make_cert(X509_get_subject_name(ask), X509_get_subject_name(ark), k, k, 1);
    char *fask_pem = x509_pem(fask);
    chain = cat(v.vcek, fask_pem, pm->ark_pem, NULL);
    assert_int_equal(verify_raw(v.report, chain, T_2025_06_20, err, sizeof err), CL_ECHAIN);
    assert_non_null(strstr(err, "pinned ARK-Milan"));
    free(chain);
    chain = cat(v.vcek, fask_pem, NULL, NULL);
    assert_int_equal(verify_raw(v.report, chain, T_2025_06_20, err, sizeof err), CL_ECHAIN);
    free(chain);

    /* An ARK certificate carrying the pinned ARK's key but signed by someone else is not the
     * pinned ARK (spec §3.4: the supplied ARK MUST equal it): refused, though the pinned ARK
     * would have been the anchor anyway. */
    X509 *kark = make_cert(X509_get_subject_name(ark), X509_get_subject_name(ark),
                           X509_get0_pubkey(ark), k, 1);
    char *kark_pem = x509_pem(kark);
    chain = cat(v.vcek, pm->ask_pem, kark_pem, NULL);
    assert_int_equal(verify_raw(v.report, chain, T_2025_06_20, err, sizeof err), CL_ECHAIN);
    assert_non_null(strstr(err, "not byte-identical"));
    free(chain);

    free(kark_pem);
    X509_free(kark);
    free(fask_pem);
    X509_free(fask);
    free(fark_pem);
    X509_free(fark);
    EVP_PKEY_free(k);
    X509_free(ark);
    X509_free(ask);
    unload(&v);
}

static void test_verify_signer_and_chain_shape(void **state)
{
    (void)state;
    vector v;
    gosev(&v);
    char *milan = roots_pem("ask_ark_milan.pem");
    char *chain = cat(v.vcek, milan, NULL, NULL);
    uint8_t m[CL_SNP_REPORT_LEN];
    char err[512];

    memcpy(m, v.report, sizeof m);
    cl_store_u32(m + 0x48, 1u << 2); /* VLEK */
    assert_int_equal(verify_raw(m, chain, T_2025_06_20, err, sizeof err), CL_EUNSUPPORTED);
    assert_non_null(strstr(err, "VLEK"));
    cl_store_u32(m + 0x48, 7u << 2); /* no signature */
    assert_int_equal(verify_raw(m, chain, T_2025_06_20, err, sizeof err), CL_ESIG);

    /* Chain text problems. */
    assert_int_equal(verify_raw(v.report, "", T_2025_06_20, err, sizeof err), CL_ECHAIN);
    assert_int_equal(verify_raw(v.report, "  \n", T_2025_06_20, err, sizeof err), CL_ECHAIN);
    char *junk = cat(v.vcek, "junk\n", milan, NULL);
    assert_int_equal(verify_raw(v.report, junk, T_2025_06_20, err, sizeof err), CL_EFORMAT);
    assert_non_null(strstr(err, "unexpected text"));
    free(junk);
    char *four = cat(v.vcek, milan, milan + 0, NULL);
    assert_int_equal(verify_raw(v.report, four, T_2025_06_20, err, sizeof err), CL_EFORMAT);
    assert_non_null(strstr(err, "more than 3"));
    free(four);
    char *noend = strdup(v.vcek);
    *strstr(noend, "-----END") = 0;
    assert_int_equal(verify_raw(v.report, noend, T_2025_06_20, err, sizeof err), CL_EFORMAT);
    free(noend);
    char *badb64 = strdup(v.vcek);
    badb64[40] = '*';
    assert_int_equal(verify_raw(v.report, badb64, T_2025_06_20, err, sizeof err), CL_EFORMAT);
    assert_non_null(strstr(err, "certificate 1 (VCEK)"));
    free(badb64);
    /* The ASK in the VCEK's place. */
    const cl_amd_root *pm = &cl_amd_roots[0];
    char *swapped = cat(pm->ask_pem, pm->ark_pem, NULL, NULL);
    assert_int_equal(verify_raw(v.report, swapped, T_2025_06_20, err, sizeof err), CL_ECHAIN);
    free(swapped);

    /* Wrapper without a chain. */
    char *w = wrapper(v.report, v.report_len, NULL, CL_B64_URL, NULL);
    cl_snp_evidence *e = NULL;
    assert_int_equal(cl_snp_wrapper_parse((uint8_t *)w, strlen(w), &e, err, sizeof err), CL_OK);
    size_t cl = 99;
    assert_null(cl_snp_evidence_chain(e, &cl));
    assert_int_equal(cl, 0);
    assert_int_equal(cl_snp_verify(e, T_2025_06_20, err, sizeof err), CL_ECHAIN);
    assert_non_null(strstr(err, "VcekCertChain"));
    cl_snp_evidence_free(e);
    free(w);
    free(chain);
    free(milan);
    unload(&v);
}

/* ---- VCEK extensions --------------------------------------------------------------------- */

static void add_raw_ext(X509 *x, const char *oid, const uint8_t *val, size_t n)
{
    ASN1_OBJECT *o = OBJ_txt2obj(oid, 1);
    ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
    assert_true(o && os && ASN1_OCTET_STRING_set(os, val, (int)n) == 1);
    X509_EXTENSION *e = X509_EXTENSION_create_by_OBJ(NULL, o, 0, os);
    assert_non_null(e);
    assert_int_equal(X509_add_ext(x, e, -1), 1);
    X509_EXTENSION_free(e);
    ASN1_OCTET_STRING_free(os);
    ASN1_OBJECT_free(o);
}

/* A test VCEK carrying AMD extensions built from spl[8] (blSPL, tee, snp, ucode, 4..7) and hwid;
 * entries < 0 are omitted; hwlen 0 omits hwID. Returns DER (malloc'd). */
static uint8_t *test_vcek(const int spl[5], const uint8_t *hwid, size_t hwlen, size_t *dlen)
{
    EVP_PKEY *k = p384_key();
    X509_NAME *nm = X509_NAME_new();
    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)"SEV-VCEK", -1, -1,
                               0);
    X509 *x = X509_new();
    X509_set_version(x, 2);
    X509_set_subject_name(x, nm);
    X509_set_issuer_name(x, nm);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, k);
    static const char *oids[] = {"1.3.6.1.4.1.3704.1.3.1", "1.3.6.1.4.1.3704.1.3.2",
                                 "1.3.6.1.4.1.3704.1.3.3", "1.3.6.1.4.1.3704.1.3.8",
                                 "1.3.6.1.4.1.3704.1.3.4"};
    for (int i = 0; i < 5; i++) {
        if (spl[i] < 0)
            continue;
        if (spl[i] > 255) { /* a malformed value: OCTET STRING instead of INTEGER */
            uint8_t bad[] = {0x04, 0x01, 0x02};
            add_raw_ext(x, oids[i], bad, sizeof bad);
        } else if (spl[i] >= 128) {
            uint8_t v[] = {0x02, 0x02, 0x00, (uint8_t)spl[i]};
            add_raw_ext(x, oids[i], v, sizeof v);
        } else {
            uint8_t v[] = {0x02, 0x01, (uint8_t)spl[i]};
            add_raw_ext(x, oids[i], v, sizeof v);
        }
    }
    if (hwlen)
        add_raw_ext(x, "1.3.6.1.4.1.3704.1.4", hwid, hwlen);
    assert_true(X509_sign(x, k, EVP_sha384()) > 0);
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    assert_true(n > 0);
    uint8_t *out = malloc((size_t)n);
    memcpy(out, der, (size_t)n);
    OPENSSL_free(der);
    X509_free(x);
    X509_NAME_free(nm);
    EVP_PKEY_free(k);
    *dlen = (size_t)n;
    return out;
}

static void test_vcek_extensions(void **state)
{
    (void)state;
    vector v;
    gosev(&v);
    size_t dn;
    uint8_t *der = vec("snp/go-sev-guest_vcek.der", &dn);
    cl_snp_report r, r2;
    char err[512];
    assert_int_equal(cl_snp_report_parse(v.report, v.report_len, &r, NULL, 0), CL_OK);
    assert_int_equal(cl_snp_vcek_matches(der, dn, &r, err, sizeof err), CL_OK);

    /* Each SPL byte of reported_tcb is compared. */
    static const int bytes[] = {0, 1, 2, 6, 7};
    for (int i = 0; i < 5; i++) {
        r2 = r;
        r2.reported_tcb.raw ^= (uint64_t)1 << (8 * bytes[i]);
        assert_int_equal(cl_snp_vcek_matches(der, dn, &r2, err, sizeof err), CL_ECHAIN);
        assert_non_null(strstr(err, "another TCB"));
    }
    /* current_tcb is not what the VCEK certifies. */
    r2 = r;
    r2.current_tcb.raw = 0;
    assert_int_equal(cl_snp_vcek_matches(der, dn, &r2, err, sizeof err), CL_OK);
    /* hwID vs chip_id, skipped with mask_chip_key. */
    r2 = r;
    r2.chip_id[63] ^= 1;
    assert_int_equal(cl_snp_vcek_matches(der, dn, &r2, err, sizeof err), CL_ECHAIN);
    assert_non_null(strstr(err, "chip_id"));
    r2.mask_chip_key = 1;
    assert_int_equal(cl_snp_vcek_matches(der, dn, &r2, err, sizeof err), CL_OK);
    /* The other vector's VCEK. */
    size_t dn2;
    uint8_t *der2 = vec("snp/virtee_vcek_milan.der", &dn2);
    assert_int_equal(cl_snp_vcek_matches(der2, dn2, &r, err, sizeof err), CL_ECHAIN);
    free(der2);
    /* Not DER / trailing bytes. */
    assert_int_equal(cl_snp_vcek_matches(der, dn - 1, &r, err, sizeof err), CL_EFORMAT);

    /* Test-made certificates. */
    const int good[5] = {2, 0, 5, 68, 0};
    size_t n;
    uint8_t *t = test_vcek(good, r.chip_id, 64, &n);
    assert_int_equal(cl_snp_vcek_matches(t, n, &r, err, sizeof err), CL_OK);
    free(t);
    const int no_ucode[5] = {2, 0, 5, -1, -1};
    t = test_vcek(no_ucode, r.chip_id, 64, &n);
    assert_int_equal(cl_snp_vcek_matches(t, n, &r, err, sizeof err), CL_EFORMAT);
    assert_non_null(strstr(err, "ucodeSPL"));
    free(t);
    const int bad_bl[5] = {256, 0, 5, 68, -1};
    t = test_vcek(bad_bl, r.chip_id, 64, &n);
    assert_int_equal(cl_snp_vcek_matches(t, n, &r, err, sizeof err), CL_EFORMAT);
    assert_non_null(strstr(err, "blSPL"));
    free(t);
    const int big_ucode[5] = {2, 0, 5, 200, -1};
    t = test_vcek(big_ucode, r.chip_id, 64, &n);
    assert_int_equal(cl_snp_vcek_matches(t, n, &r, err, sizeof err), CL_ECHAIN);
    r2 = r;
    r2.reported_tcb.raw = (r.reported_tcb.raw & ~(0xffull << 56)) | (200ull << 56);
    assert_int_equal(cl_snp_vcek_matches(t, n, &r2, err, sizeof err), CL_OK);
    free(t);
    const int spl4[5] = {2, 0, 5, 68, 9}; /* reserved SPL 4 must equal reported_tcb byte 2 */
    t = test_vcek(spl4, r.chip_id, 64, &n);
    assert_int_equal(cl_snp_vcek_matches(t, n, &r, err, sizeof err), CL_ECHAIN);
    free(t);
    t = test_vcek(good, r.chip_id, 63, &n);
    assert_int_equal(cl_snp_vcek_matches(t, n, &r, err, sizeof err), CL_EFORMAT);
    assert_non_null(strstr(err, "63 bytes"));
    free(t);
    t = test_vcek(good, r.chip_id, 0, &n);
    assert_int_equal(cl_snp_vcek_matches(t, n, &r, err, sizeof err), CL_EFORMAT);
    assert_non_null(strstr(err, "hwID"));
    free(t);
    free(der);
    unload(&v);
}

/* ---- wrapper ----------------------------------------------------------------------------- */

static int parse_w(const char *w, cl_snp_evidence **e, char *err, size_t errlen)
{
    return cl_snp_wrapper_parse((const uint8_t *)w, strlen(w), e, err, errlen);
}

static void test_wrapper(void **state)
{
    (void)state;
    vector v;
    gosev(&v);
    char *milan = roots_pem("ask_ark_milan.pem");
    char *chain = cat(v.vcek, milan, NULL, NULL);
    char err[512];
    cl_snp_evidence *e = NULL;

    /* Standard alphabet with padding, and Endorsements. */
    const char *endors = "{\"Uvm\": [\"abc\"]}";
    char *eb = b64(endors, strlen(endors), CL_B64_STD);
    char extra[256];
    snprintf(extra, sizeof extra, ",\"Endorsements\":\"%s\",\"Other\":1", eb);
    char *w = wrapper(v.report, v.report_len, chain, CL_B64_STD, extra);
    assert_non_null(strchr(w, '='));
    assert_int_equal(parse_w(w, &e, err, sizeof err), CL_OK);
    assert_memory_equal(cl_snp_evidence_raw(e), v.report, CL_SNP_REPORT_LEN);
    assert_string_equal(cl_snp_evidence_endorsements(e), endors);
    size_t clen;
    assert_string_equal(cl_snp_evidence_chain(e, &clen), chain);
    assert_int_equal(clen, strlen(chain));
    assert_int_equal(cl_snp_verify(e, T_2025_06_20, err, sizeof err), CL_OK);
    json_t *claims = json_object(), *unverified = json_object();
    assert_int_equal(cl_snp_evidence_claims(e, claims, unverified), CL_OK);
    /* unverified input: for the policy only, never with the report's claims */
    assert_null(json_object_get(claims, "x-ms-sevsnpvm-endorsements"));
    assert_int_equal(json_object_size(unverified), 1);
    assert_string_equal(
        json_string_value(json_object_get(unverified, "x-ms-sevsnpvm-endorsements")), endors);
    json_decref(claims);
    json_decref(unverified);
    cl_snp_evidence_free(e);
    free(w);

    /* Whitespace and newlines around every token, as in Microsoft's example. */
    char *r64 = b64(v.report, v.report_len, CL_B64_URL);
    char *c64 = b64(chain, strlen(chain), CL_B64_URL);
    size_t cap = strlen(r64) + strlen(c64) + 200;
    w = malloc(cap);
    snprintf(w, cap,
             "\n        {\r\n \"SnpReport\" :\t\"%s\" ,\n  \"VcekCertChain\"\n:\n\"%s\"\n}\n  ",
             r64, c64);
    assert_int_equal(parse_w(w, &e, err, sizeof err), CL_OK);
    assert_null(cl_snp_evidence_endorsements(e));
    assert_int_equal(cl_snp_verify(e, T_2025_06_20, err, sizeof err), CL_OK);
    cl_snp_evidence_free(e);
    free(w);

    /* Padding added to the unpadded form (1184 = 3*394 + 2 -> one '=' missing). */
    size_t rl = strlen(r64);
    char *rpad = malloc(rl + 3);
    memcpy(rpad, r64, rl);
    size_t pl = rl;
    while (pl % 4)
        rpad[pl++] = '=';
    rpad[pl] = 0;
    assert_true(pl > rl);
    w = malloc(cap + 8);
    snprintf(w, cap + 8, "{\"SnpReport\":\"%s\"}", rpad);
    assert_int_equal(parse_w(w, &e, err, sizeof err), CL_OK);
    cl_snp_evidence_free(e);
    /* Too much padding is rejected. */
    snprintf(w, cap + 8, "{\"SnpReport\":\"%s=\"}", rpad);
    assert_int_equal(parse_w(w, &e, err, sizeof err), CL_EBASE64);
    assert_null(e);
    free(w);
    free(rpad);

    /* Bad base64 (a space, a '*', whitespace inside the value). */
    static const char *bad64[] = {"{\"SnpReport\":\"AAAA AAAA\"}", "{\"SnpReport\":\"AA*A\"}",
                                  "{\"SnpReport\":\"A\"}", "{\"SnpReport\":\"AA\\nAA\"}"};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(parse_w(bad64[i], &e, err, sizeof err), CL_EBASE64);
        assert_non_null(strstr(err, "SnpReport"));
    }
    snprintf(extra, sizeof extra, ",\"VcekCertChain\":\"!!\"");
    w = wrapper(v.report, v.report_len, NULL, CL_B64_URL, extra);
    assert_int_equal(parse_w(w, &e, err, sizeof err), CL_EBASE64);
    assert_non_null(strstr(err, "VcekCertChain"));
    free(w);

    /* Missing / wrongly typed members, non-object JSON, invalid JSON. */
    static const struct {
        const char *json;
        const char *msg;
    } bad[] = {
        {"{}", "SnpReport is missing"},
        {"{\"snpreport\":\"AAAA\"}", "SnpReport is missing"},
        {"{\"SnpReport\":1}", "not a string"},
        {"{\"SnpReport\":null}", "not a string"},
        {"[]", "not a JSON object"},
        {"\"x\"", "'[' or '{' expected"},
        {"42", "'[' or '{' expected"},
        {"", "not valid JSON"},
        {"{\"SnpReport\":\"AAAA\"", "not valid JSON"},
        {"{\"SnpReport\":\"AAAA\"} x", "not valid JSON"},
        {"{\"SnpReport\":\"AAAA\",\"SnpReport\":\"AAAA\"}", "not valid JSON"},
        {"{\"SnpReport\":\"AAAA\"}", "is 3 bytes, expected 1184"},
        {"{\"SnpReport\":\"\"}", "is 0 bytes, expected 1184"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        e = (cl_snp_evidence *)1;
        assert_int_equal(parse_w(bad[i].json, &e, err, sizeof err), CL_EFORMAT);
        assert_null(e);
        if (strstr(err, bad[i].msg) == NULL)
            fail_msg("case %zu: message \"%s\" lacks \"%s\"", i, err, bad[i].msg);
    }
    /* Invalid UTF-8 in the wrapper. */
    assert_int_equal(
        cl_snp_wrapper_parse((const uint8_t *)"{\"a\":\"\xff\"}", 9, &e, err, sizeof err),
        CL_EFORMAT);

    /* Endorsements that are not a JSON object / not JSON. */
    static const char *bad_end[] = {"[1]", "{", "\"x\""};
    for (size_t i = 0; i < 3; i++) {
        char *b = b64(bad_end[i], strlen(bad_end[i]), CL_B64_URL);
        snprintf(extra, sizeof extra, ",\"Endorsements\":\"%s\"", b);
        cl_free(b);
        w = wrapper(v.report, v.report_len, NULL, CL_B64_URL, extra);
        assert_int_equal(parse_w(w, &e, err, sizeof err), CL_EFORMAT);
        assert_non_null(strstr(err, "Endorsements"));
        free(w);
    }
    /* Empty VcekCertChain = absent; a chain with a NUL byte is refused. */
    w = wrapper(v.report, v.report_len, NULL, CL_B64_URL, ",\"VcekCertChain\":\"\"");
    assert_int_equal(parse_w(w, &e, err, sizeof err), CL_OK);
    assert_null(cl_snp_evidence_chain(e, NULL));
    cl_snp_evidence_free(e);
    free(w);
    w = wrapper(v.report, v.report_len, NULL, CL_B64_URL, ",\"VcekCertChain\":\"AAA\"");
    assert_int_equal(parse_w(w, &e, err, sizeof err), CL_EFORMAT);
    assert_non_null(strstr(err, "NUL"));
    free(w);
    /* A report that fails its own checks is reported through the wrapper. */
    uint8_t m[CL_SNP_REPORT_LEN];
    memcpy(m, v.report, sizeof m);
    m[0x20f] = 1;
    w = wrapper(m, sizeof m, chain, CL_B64_URL, NULL);
    assert_int_equal(parse_w(w, &e, err, sizeof err), CL_EFORMAT);
    assert_non_null(strstr(err, "0x20f"));
    free(w);

    assert_int_equal(cl_snp_wrapper_parse(NULL, 0, &e, err, sizeof err), CL_EINVAL);
    cl_snp_evidence_free(NULL);
    cl_free(eb);
    cl_free(r64);
    cl_free(c64);
    free(chain);
    free(milan);
    unload(&v);
}

/* Allocation failures anywhere in wrapper parsing, verification and claims: a clean error. */
static void test_alloc_failures(void **state)
{
    (void)state;
    vector v;
    gosev(&v);
    char *milan = roots_pem("ask_ark_milan.pem");
    char *chain = cat(v.vcek, milan, NULL, NULL);
    char *w = wrapper(v.report, v.report_len, chain, CL_B64_URL, ",\"Endorsements\":\"e30\"");
    char err[512];
    int ok = 0;
    for (long k = 0; k < 200 && !ok; k++) {
        cl_snp_evidence *e = NULL;
        json_t *claims = NULL;
        cl_alloc_fail_after(k);
        int rc = parse_w(w, &e, err, sizeof err);
        if (rc == CL_OK)
            rc = cl_snp_verify(e, T_2025_06_20, err, sizeof err);
        if (rc == CL_OK) {
            claims = json_object();
            rc = claims ? cl_snp_evidence_claims(e, claims, claims) : CL_ENOMEM;
        }
        cl_alloc_fail_after(-1);
        if (rc == CL_OK)
            ok = 1;
        else
            assert_int_equal(rc, CL_ENOMEM);
        json_decref(claims);
        cl_snp_evidence_free(e);
    }
    assert_true(ok);
    free(w);
    free(chain);
    free(milan);
    unload(&v);
}

/* ---- claims ------------------------------------------------------------------------------ */

static void claims_of(const char *report, json_t **out)
{
    size_t n;
    uint8_t *p = vec(report, &n);
    cl_snp_report r;
    assert_int_equal(cl_snp_report_parse(p, n, &r, NULL, 0), CL_OK);
    json_t *c = json_object();
    assert_int_equal(cl_snp_claims(&r, c), CL_OK);
    free(p);
    *out = c;
}

static void claim_str(json_t *c, const char *name, const char *want)
{
    json_t *v = json_object_get(c, name);
    if (v == NULL || !json_is_string(v))
        fail_msg("claim %s missing or not a string", name);
    assert_string_equal(json_string_value(v), want);
}

static void claim_int(json_t *c, const char *name, json_int_t want)
{
    json_t *v = json_object_get(c, name);
    if (v == NULL || !json_is_integer(v))
        fail_msg("claim %s missing or not an integer", name);
    assert_int_equal(json_integer_value(v), want);
}

static void claim_bool(json_t *c, const char *name, int want)
{
    json_t *v = json_object_get(c, name);
    if (v == NULL || !json_is_boolean(v))
        fail_msg("claim %s missing or not a boolean", name);
    assert_int_equal(json_is_true(v), want);
}

static const char zeros96[] = "00000000000000000000000000000000000000000000000000000000000000000000"
                              "0000000000000000000000000000";

static void test_claims_a16(void **state)
{
    (void)state;
    json_t *c;
    claims_of("snp/go-sev-guest_report.bin", &c);
    assert_int_equal(json_object_size(c), 17);
    claim_str(c, "x-ms-sevsnpvm-launchmeasurement",
              "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb"
              "0cf2e4872b01");
    claim_bool(c, "x-ms-sevsnpvm-is-debuggable", 1);
    claim_bool(c, "x-ms-sevsnpvm-smt-allowed", 1);
    claim_bool(c, "x-ms-sevsnpvm-migration-allowed", 0);
    claim_int(c, "x-ms-sevsnpvm-bootloader-svn", 2);
    claim_int(c, "x-ms-sevsnpvm-tee-svn", 0);
    claim_int(c, "x-ms-sevsnpvm-snpfw-svn", 5);
    claim_int(c, "x-ms-sevsnpvm-microcode-svn", 68);
    char rd[129];
    memset(rd, '0', 128);
    memcpy(rd, "0102030405", 10);
    rd[128] = 0;
    claim_str(c, "x-ms-sevsnpvm-reportdata", rd);
    claim_str(c, "x-ms-sevsnpvm-reportid",
              "8edc638e1857c555d21f6b11bda3c8b1b5a09dba4852b4c8ee7aa2f16f22cc0a");
    claim_str(c, "x-ms-sevsnpvm-authorkeydigest", zeros96);
    claim_str(c, "x-ms-sevsnpvm-idkeydigest", zeros96);
    claim_str(c, "x-ms-sevsnpvm-familyId", "00000000000000000000000000000000");
    claim_str(c, "x-ms-sevsnpvm-imageId", "00000000000000000000000000000000");
    claim_str(c, "x-ms-sevsnpvm-hostdata",
              "0000000000000000000000000000000000000000000000000000000000000000");
    claim_int(c, "x-ms-sevsnpvm-guestsvn", 0);
    claim_int(c, "x-ms-sevsnpvm-vmpl", 0);
    assert_null(json_object_get(c, "x-ms-attestation-type"));
    assert_null(json_object_get(c, "x-ms-sevsnpvm-familyid"));
    json_decref(c);
}

static void test_claims_a17(void **state)
{
    (void)state;
    json_t *c;
    claims_of("snp/virtee_report_milan.bin", &c);
    assert_int_equal(json_object_size(c), 17);
    claim_bool(c, "x-ms-sevsnpvm-is-debuggable", 0);
    claim_bool(c, "x-ms-sevsnpvm-smt-allowed", 1);
    claim_bool(c, "x-ms-sevsnpvm-migration-allowed", 0);
    claim_int(c, "x-ms-sevsnpvm-bootloader-svn", 3);
    claim_int(c, "x-ms-sevsnpvm-tee-svn", 0);
    claim_int(c, "x-ms-sevsnpvm-snpfw-svn", 8);
    claim_int(c, "x-ms-sevsnpvm-microcode-svn", 115);
    claim_str(c, "x-ms-sevsnpvm-launchmeasurement",
              "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9"
              "c480cd81841f");
    claim_str(c, "x-ms-sevsnpvm-reportdata",
              "d447b55d197491bfe15cf298f9de9986b7a7c4be2468b4f6e2d53b71d7c645810b0f2cdfca0040433be0"
              "63fc1a8293f0f3f8dae7b79fecb3d1cd82bd6a93ebfd");
    json_decref(c);
}

/* Policy bits and field placement on a synthetic report shaped like Microsoft's 2022 example
 * (version 1, policy 0x3001f, family_id 01.., image_id 02.., reported_tcb microcode 40). */
static void test_claims_synthetic(void **state)
{
    (void)state;
    vector v;
    gosev(&v);
    uint8_t m[CL_SNP_REPORT_LEN];
    memcpy(m, v.report, sizeof m);
    cl_store_u32(m, 1);
    cl_store_u32(m + 4, 1);
    cl_store_u64(m + 8, 0x3001f);
    m[0x10] = 1;
    m[0x20] = 2;
    cl_store_u32(m + 0x30, 2);
    cl_store_u64(m + 0x180, 0x2800000000000000ull);
    memset(m + 0xc0, 0xab, 32);
    cl_snp_report r;
    assert_int_equal(cl_snp_report_parse(m, sizeof m, &r, NULL, 0), CL_OK);
    json_t *c = json_object();
    assert_int_equal(cl_snp_claims(&r, c), CL_OK);
    claim_bool(c, "x-ms-sevsnpvm-smt-allowed", 1);
    claim_bool(c, "x-ms-sevsnpvm-migration-allowed", 0);
    claim_bool(c, "x-ms-sevsnpvm-is-debuggable", 0);
    claim_int(c, "x-ms-sevsnpvm-microcode-svn", 40);
    claim_int(c, "x-ms-sevsnpvm-bootloader-svn", 0);
    claim_int(c, "x-ms-sevsnpvm-guestsvn", 1);
    claim_int(c, "x-ms-sevsnpvm-vmpl", 2);
    claim_str(c, "x-ms-sevsnpvm-familyId", "01000000000000000000000000000000");
    claim_str(c, "x-ms-sevsnpvm-imageId", "02000000000000000000000000000000");
    claim_str(c, "x-ms-sevsnpvm-hostdata",
              "abababababababababababababababababababababababababababababababab");
    /* Only bit 18 toggles migration-allowed; bit 16 smt. */
    cl_store_u64(m + 8, 0x60000);
    assert_int_equal(cl_snp_report_parse(m, sizeof m, &r, NULL, 0), CL_OK);
    assert_int_equal(cl_snp_claims(&r, c), CL_OK);
    claim_bool(c, "x-ms-sevsnpvm-smt-allowed", 0);
    claim_bool(c, "x-ms-sevsnpvm-migration-allowed", 1);
    assert_int_equal(json_object_size(c), 17);
    assert_int_equal(cl_snp_claims(&r, NULL), CL_EINVAL);
    json_t *arr = json_array();
    assert_int_equal(cl_snp_claims(&r, arr), CL_EINVAL);
    json_decref(arr);
    json_decref(c);
    unload(&v);
}

int main(void)
{
    find_vectors();
    cl_json_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_gosev),
        cmocka_unit_test(test_parse_virtee),
        cmocka_unit_test(test_parse_truncation),
        cmocka_unit_test(test_parse_fields_rules),
        cmocka_unit_test(test_verify_vectors),
        cmocka_unit_test(test_verify_time),
        cmocka_unit_test(test_verify_mutations),
        cmocka_unit_test(test_verify_wrong_vcek),
        cmocka_unit_test(test_verify_other_product_chain),
        cmocka_unit_test(test_verify_forged_roots),
        cmocka_unit_test(test_verify_signer_and_chain_shape),
        cmocka_unit_test(test_vcek_extensions),
        cmocka_unit_test(test_wrapper),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_claims_a16),
        cmocka_unit_test(test_claims_a17),
        cmocka_unit_test(test_claims_synthetic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
