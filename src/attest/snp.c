/*
 * snp.c — AMD SEV-SNP report parsing, the SevSnpVm JSON wrapper, VCEK -> ASK -> ARK chain and
 * report-signature verification, and the x-ms-sevsnpvm-* claims (see snp.h).
 *
 * The binary report is read only through cl_cursor. Certificate work is OpenSSL's: PEM blocks
 * are decoded by PEM_read_bio, the chain is checked by X509_verify_cert against a store holding
 * only the pinned ARK, with a fixed verification time; the report signature by EVP_DigestVerify.
 * This file adds what OpenSSL cannot know: which ARK is pinned, and that the VCEK's AMD
 * extensions (TCB SPLs, hwID) describe the platform that produced the report.
 */
#include "attest/snp.h"

#include <limits.h>
#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "attest/roots.h"
#include "attest/vcache.h"
#include "base/alloc.h"
#include "base/codec.h"
#include "base/cursor.h"
#include "base/json.h"
#include "crypto/hash.h"

/* Largest wrapper we accept: a report, three PEM certificates and UVM endorsements fit easily. */
#define SNP_WRAPPER_MAX (1u << 20)
#define SNP_MAX_CERTS 3

struct cl_snp_evidence {
    uint8_t raw[CL_SNP_REPORT_LEN];
    cl_snp_report report;
    char *chain; /* decoded VcekCertChain, NUL-terminated, or NULL */
    size_t chain_len;
    char *endorsements; /* decoded Endorsements JSON text, NUL-terminated, or NULL */
};

__attribute__((format(printf, 4, 5))) static int fail(char *err, size_t errlen, int code,
                                                      const char *fmt, ...);
/* Writes the message (when a buffer was given), clears OpenSSL's error queue, returns code. */
static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    ERR_clear_error();
    return code;
}

/* ---- report ------------------------------------------------------------------------------ */

static cl_snp_tcb tcb_from_u64(uint64_t v)
{
    cl_snp_tcb t;
    t.raw = v;
    t.bootloader = (uint8_t)v;
    t.tee = (uint8_t)(v >> 8);
    t.snp = (uint8_t)(v >> 48);
    t.microcode = (uint8_t)(v >> 56);
    return t;
}

/* Reads n bytes that must all be zero (a reserved range starting at the cursor). */
static int read_zero(cl_cursor *c, size_t n, char *err, size_t errlen)
{
    size_t start = c->pos;
    const uint8_t *p;
    if (cl_cursor_view(c, &p, n) != CL_OK)
        return fail(err, errlen, CL_EFORMAT, "SEV-SNP report truncated at offset 0x%03zx", start);
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0)
            return fail(err, errlen, CL_EFORMAT,
                        "SEV-SNP report: reserved byte at offset 0x%03zx is 0x%02x, must be zero",
                        start + i, p[i]);
    }
    return CL_OK;
}

#define RD(expr)                                                                                   \
    do {                                                                                           \
        if ((expr) != CL_OK)                                                                       \
            return fail(err, errlen, CL_EFORMAT, "SEV-SNP report truncated at offset 0x%03zx",     \
                        c.pos);                                                                    \
    } while (0)
#define RD_ZERO(n)                                                                                 \
    do {                                                                                           \
        int rz_ = read_zero(&c, (n), err, errlen);                                                 \
        if (rz_ != CL_OK)                                                                          \
            return rz_;                                                                            \
    } while (0)

int cl_snp_report_parse(const uint8_t *p, size_t n, cl_snp_report *out, char *err, size_t errlen)
{
    if (p == NULL || out == NULL)
        return fail(err, errlen, CL_EINVAL, "SEV-SNP report: NULL argument");
    if (n != CL_SNP_REPORT_LEN)
        return fail(err, errlen, CL_EFORMAT, "SEV-SNP report is %zu bytes, expected %d", n,
                    CL_SNP_REPORT_LEN);

    cl_snp_report r;
    memset(&r, 0, sizeof r);
    cl_cursor c;
    cl_cursor_init(&c, p, n);
    uint64_t u64;

    RD(cl_cursor_u32(&c, &r.version)); /* 0x000 */
    if (r.version != 1 && r.version != 2 && r.version != 3 && r.version != 5)
        return fail(err, errlen, CL_EUNSUPPORTED,
                    "SEV-SNP report version %u is not supported (1, 2, 3 or 5)", r.version);
    RD(cl_cursor_u32(&c, &r.guest_svn)); /* 0x004 */
    RD(cl_cursor_u64(&c, &r.policy));    /* 0x008 */
    if (!(r.policy & CL_SNP_POLICY_RESERVED_ONE))
        return fail(err, errlen, CL_EFORMAT,
                    "SEV-SNP report: policy 0x%llx has reserved bit 17 clear (must be 1)",
                    (unsigned long long)r.policy);
    RD(cl_cursor_read(&c, r.family_id, 16));  /* 0x010 */
    RD(cl_cursor_read(&c, r.image_id, 16));   /* 0x020 */
    RD(cl_cursor_u32(&c, &r.vmpl));           /* 0x030 */
    RD(cl_cursor_u32(&c, &r.signature_algo)); /* 0x034 */
    if (r.signature_algo != 1)
        return fail(err, errlen, CL_EUNSUPPORTED,
                    "SEV-SNP report: signature algorithm %u is not supported (1 = ECDSA P-384 "
                    "with SHA-384)",
                    r.signature_algo);
    RD(cl_cursor_u64(&c, &u64)); /* 0x038 */
    r.current_tcb = tcb_from_u64(u64);
    RD(cl_cursor_u64(&c, &r.platform_info)); /* 0x040 */
    RD(cl_cursor_u32(&c, &r.signer_info));   /* 0x048 */
    r.author_key_en = (r.signer_info & CL_SNP_SIGNER_AUTHOR_KEY_EN) != 0;
    r.mask_chip_key = (r.signer_info & CL_SNP_SIGNER_MASK_CHIP_KEY) != 0;
    r.signing_key = (r.signer_info >> 2) & 7u;
    RD_ZERO(4);                                      /* 0x04C */
    RD(cl_cursor_read(&c, r.report_data, 64));       /* 0x050 */
    RD(cl_cursor_read(&c, r.measurement, 48));       /* 0x090 */
    RD(cl_cursor_read(&c, r.host_data, 32));         /* 0x0C0 */
    RD(cl_cursor_read(&c, r.id_key_digest, 48));     /* 0x0E0 */
    RD(cl_cursor_read(&c, r.author_key_digest, 48)); /* 0x110 */
    RD(cl_cursor_read(&c, r.report_id, 32));         /* 0x140 */
    RD(cl_cursor_read(&c, r.report_id_ma, 32));      /* 0x160 */
    RD(cl_cursor_u64(&c, &u64));                     /* 0x180 */
    r.reported_tcb = tcb_from_u64(u64);
    if (r.version >= 3) { /* 0x188: CPUID family, model, stepping */
        RD(cl_cursor_u8(&c, &r.cpuid_fam_id));
        RD(cl_cursor_u8(&c, &r.cpuid_mod_id));
        RD(cl_cursor_u8(&c, &r.cpuid_step));
        RD_ZERO(21); /* 0x18B */
    } else {
        RD_ZERO(24); /* 0x188 */
    }
    RD(cl_cursor_read(&c, r.chip_id, 64)); /* 0x1A0 */
    RD(cl_cursor_u64(&c, &u64));           /* 0x1E0 */
    r.committed_tcb = tcb_from_u64(u64);
    RD(cl_cursor_u8(&c, &r.current_build)); /* 0x1E8 */
    RD(cl_cursor_u8(&c, &r.current_minor));
    RD(cl_cursor_u8(&c, &r.current_major));
    RD(cl_cursor_skip(&c, 1));
    RD(cl_cursor_u8(&c, &r.committed_build)); /* 0x1EC */
    RD(cl_cursor_u8(&c, &r.committed_minor));
    RD(cl_cursor_u8(&c, &r.committed_major));
    RD(cl_cursor_skip(&c, 1));
    RD(cl_cursor_u64(&c, &u64)); /* 0x1F0 */
    r.launch_tcb = tcb_from_u64(u64);
    if (r.version >= 5) { /* 0x1F8 */
        RD(cl_cursor_u64(&c, &r.launch_mit_vector));
        RD(cl_cursor_u64(&c, &r.current_mit_vector));
    } else {
        RD_ZERO(16);
    }
    RD_ZERO(0x2A0 - 0x208);                                    /* 0x208 */
    RD(cl_cursor_read(&c, r.sig_r, CL_SNP_SIG_COMPONENT_LEN)); /* 0x2A0 */
    RD(cl_cursor_read(&c, r.sig_s, CL_SNP_SIG_COMPONENT_LEN)); /* 0x2E8 */
    RD_ZERO(CL_SNP_REPORT_LEN - 0x330);                        /* 0x330 */
    if (cl_cursor_left(&c) != 0)
        return fail(err, errlen, CL_EFORMAT, "SEV-SNP report: %zu unparsed bytes",
                    cl_cursor_left(&c));
    *out = r;
    return CL_OK;
}

#undef RD
#undef RD_ZERO

static int tcb_same(const cl_snp_tcb *a, const cl_snp_tcb *b) { return a->raw == b->raw; }

/* Every field of two parsed reports equal (explicit, so struct padding never matters). */
static int report_same(const cl_snp_report *a, const cl_snp_report *b)
{
    return a->version == b->version && a->guest_svn == b->guest_svn && a->policy == b->policy &&
           cl_ct_equal(a->family_id, b->family_id, 16) &&
           cl_ct_equal(a->image_id, b->image_id, 16) && a->vmpl == b->vmpl &&
           a->signature_algo == b->signature_algo && tcb_same(&a->current_tcb, &b->current_tcb) &&
           a->platform_info == b->platform_info && a->signer_info == b->signer_info &&
           a->author_key_en == b->author_key_en && a->mask_chip_key == b->mask_chip_key &&
           a->signing_key == b->signing_key && cl_ct_equal(a->report_data, b->report_data, 64) &&
           cl_ct_equal(a->measurement, b->measurement, 48) &&
           cl_ct_equal(a->host_data, b->host_data, 32) &&
           cl_ct_equal(a->id_key_digest, b->id_key_digest, 48) &&
           cl_ct_equal(a->author_key_digest, b->author_key_digest, 48) &&
           cl_ct_equal(a->report_id, b->report_id, 32) &&
           cl_ct_equal(a->report_id_ma, b->report_id_ma, 32) &&
           tcb_same(&a->reported_tcb, &b->reported_tcb) && a->cpuid_fam_id == b->cpuid_fam_id &&
           a->cpuid_mod_id == b->cpuid_mod_id && a->cpuid_step == b->cpuid_step &&
           cl_ct_equal(a->chip_id, b->chip_id, 64) &&
           tcb_same(&a->committed_tcb, &b->committed_tcb) && a->current_build == b->current_build &&
           a->current_minor == b->current_minor && a->current_major == b->current_major &&
           a->committed_build == b->committed_build && a->committed_minor == b->committed_minor &&
           a->committed_major == b->committed_major && tcb_same(&a->launch_tcb, &b->launch_tcb) &&
           a->launch_mit_vector == b->launch_mit_vector &&
           a->current_mit_vector == b->current_mit_vector &&
           cl_ct_equal(a->sig_r, b->sig_r, CL_SNP_SIG_COMPONENT_LEN) &&
           cl_ct_equal(a->sig_s, b->sig_s, CL_SNP_SIG_COMPONENT_LEN);
}

/* ---- wrapper ----------------------------------------------------------------------------- */

/* A string member decoded with cl_b64_decode_lenient_alloc (NUL-terminated). CL_ENOENT when absent.
 */
static int member_b64(const json_t *obj, const char *name, uint8_t **out, size_t *outlen, char *err,
                      size_t errlen)
{
    const json_t *v = json_object_get(obj, name);
    if (v == NULL)
        return CL_ENOENT;
    if (!json_is_string(v))
        return fail(err, errlen, CL_EFORMAT, "SEV-SNP evidence: member %s is not a string", name);
    int rc = cl_b64_decode_lenient_alloc(json_string_value(v), json_string_length(v), out, outlen);
    if (rc == CL_ENOMEM)
        return fail(err, errlen, rc, "out of memory decoding %s", name);
    if (rc != CL_OK)
        return fail(err, errlen, CL_EBASE64,
                    "SEV-SNP evidence: member %s is not base64url or base64 (%zu characters)", name,
                    json_string_length(v));
    return CL_OK;
}

void cl_snp_evidence_free(cl_snp_evidence *e)
{
    if (e == NULL)
        return;
    cl_free(e->chain);
    cl_free(e->endorsements);
    cl_free(e);
}

int cl_snp_wrapper_parse(const uint8_t *json, size_t n, cl_snp_evidence **out, char *err,
                         size_t errlen)
{
    if (out == NULL || json == NULL)
        return fail(err, errlen, CL_EINVAL, "SEV-SNP evidence: NULL argument");
    *out = NULL;
    char jerr[160];
    json_t *root = NULL;
    cl_snp_evidence *e = NULL;
    uint8_t *rep = NULL, *chain = NULL, *end = NULL;
    size_t replen = 0, chain_len = 0, end_len = 0;
    int rc = cl_json_parse((const char *)json, n, SNP_WRAPPER_MAX, &root, jerr, sizeof jerr);
    if (rc == CL_ENOMEM)
        return fail(err, errlen, rc, "out of memory parsing the SEV-SNP evidence wrapper");
    if (rc != CL_OK)
        return fail(err, errlen, CL_EFORMAT, "SEV-SNP evidence wrapper is not valid JSON: %s",
                    jerr);
    if (!json_is_object(root)) {
        rc = fail(err, errlen, CL_EFORMAT, "SEV-SNP evidence wrapper is not a JSON object");
        goto out;
    }
    e = cl_calloc(1, sizeof *e);
    if (e == NULL) {
        rc = fail(err, errlen, CL_ENOMEM, "out of memory");
        goto out;
    }

    rc = member_b64(root, "SnpReport", &rep, &replen, err, errlen);
    if (rc == CL_ENOENT)
        rc = fail(err, errlen, CL_EFORMAT, "SEV-SNP evidence: member SnpReport is missing");
    if (rc != CL_OK)
        goto out;
    rc = cl_snp_report_parse(rep, replen, &e->report, err, errlen);
    if (rc != CL_OK)
        goto out;
    memcpy(e->raw, rep, CL_SNP_REPORT_LEN);

    rc = member_b64(root, "VcekCertChain", &chain, &chain_len, err, errlen);
    if (rc == CL_ENOENT) {
        rc = CL_OK;
    } else if (rc != CL_OK) {
        goto out;
    } else if (chain_len == 0) {
        cl_free(chain); /* empty: treated as absent (attestation-api.md §3.4) */
    } else {
        e->chain = (char *)chain;
        e->chain_len = chain_len;
        if (memchr(chain, 0, chain_len) != NULL) {
            rc = fail(err, errlen, CL_EFORMAT,
                      "SEV-SNP evidence: VcekCertChain contains a NUL byte (PEM text expected)");
            goto out;
        }
    }

    rc = member_b64(root, "Endorsements", &end, &end_len, err, errlen);
    if (rc == CL_ENOENT) {
        rc = CL_OK;
    } else if (rc != CL_OK) {
        goto out;
    } else {
        e->endorsements = (char *)end;
        json_t *ej = NULL;
        rc = cl_json_parse((const char *)end, end_len, SNP_WRAPPER_MAX, &ej, jerr, sizeof jerr);
        if (rc == CL_ENOMEM) {
            rc = fail(err, errlen, rc, "out of memory parsing Endorsements");
            goto out;
        }
        if (rc != CL_OK) {
            rc = fail(err, errlen, CL_EFORMAT,
                      "SEV-SNP evidence: Endorsements is not valid JSON: %s", jerr);
            goto out;
        }
        int is_obj = json_is_object(ej);
        json_decref(ej);
        if (!is_obj) {
            rc = fail(err, errlen, CL_EFORMAT,
                      "SEV-SNP evidence: Endorsements is not a JSON object");
            goto out;
        }
    }
    *out = e;
    e = NULL;
    rc = CL_OK;
out:
    cl_free(rep);
    cl_snp_evidence_free(e);
    json_decref(root);
    return rc;
}

const cl_snp_report *cl_snp_evidence_report(const cl_snp_evidence *e)
{
    return e ? &e->report : NULL;
}

const uint8_t *cl_snp_evidence_raw(const cl_snp_evidence *e) { return e ? e->raw : NULL; }

const char *cl_snp_evidence_chain(const cl_snp_evidence *e, size_t *len)
{
    if (len)
        *len = e && e->chain ? e->chain_len : 0;
    return e ? e->chain : NULL;
}

const char *cl_snp_evidence_endorsements(const cl_snp_evidence *e)
{
    return e ? e->endorsements : NULL;
}

/* ---- certificates ------------------------------------------------------------------------ */

static const char pem_begin[] = "-----BEGIN CERTIFICATE-----";
static const char pem_end[] = "-----END CERTIFICATE-----";

/* First occurrence of needle (nl bytes) in hay (hl bytes), or NULL. */
static const char *find_bytes(const char *hay, size_t hl, const char *needle, size_t nl)
{
    for (size_t i = 0; nl <= hl && i <= hl - nl; i++) {
        if (hay[i] == needle[0] && memcmp(hay + i, needle, nl) == 0) /* lint:public */
            return hay + i;
    }
    return NULL;
}

static int is_space(char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n'; }

/* One PEM certificate block (exactly the text from BEGIN to END) into an X509, with the DER
 * required to fill the decoded body exactly. */
static int pem_block_to_x509(const char *p, size_t n, X509 **out)
{
    if (n > INT_MAX)
        return CL_EFORMAT;
    BIO *bio = BIO_new_mem_buf(p, (int)n);
    if (bio == NULL)
        return CL_ENOMEM;
    char *name = NULL, *header = NULL;
    unsigned char *data = NULL;
    long dlen = 0;
    int rc = CL_EFORMAT;
    if (PEM_read_bio(bio, &name, &header, &data, &dlen) == 1 && strcmp(name, "CERTIFICATE") == 0 &&
        header[0] == '\0' && dlen > 0) {
        const unsigned char *q = data;
        X509 *x = d2i_X509(NULL, &q, dlen);
        if (x != NULL && q == data + dlen) {
            *out = x;
            rc = CL_OK;
        } else {
            X509_free(x);
        }
    }
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
    BIO_free(bio);
    return rc;
}

typedef struct {
    X509 *c[SNP_MAX_CERTS];
    size_t n;
} snp_certs;

static void certs_free(snp_certs *cs)
{
    for (size_t i = 0; i < cs->n; i++)
        X509_free(cs->c[i]);
    cs->n = 0;
}

/* Concatenated PEM certificates, whitespace between them, nothing else. */
static int split_pem(const char *pem, size_t len, snp_certs *cs, char *err, size_t errlen)
{
    static const char *const what[SNP_MAX_CERTS] = {"VCEK", "ASK", "ARK"};
    size_t pos = 0;
    cs->n = 0;
    for (;;) {
        while (pos < len && is_space(pem[pos]))
            pos++;
        if (pos == len)
            break;
        size_t bl = sizeof pem_begin - 1, el = sizeof pem_end - 1;
        if (len - pos < bl || memcmp(pem + pos, pem_begin, bl) != 0) /* lint:public */
            return fail(err, errlen, CL_EFORMAT,
                        "VcekCertChain: unexpected text at offset %zu (expected %s)", pos,
                        pem_begin);
        const char *e = find_bytes(pem + pos + bl, len - pos - bl, pem_end, el);
        if (e == NULL)
            return fail(err, errlen, CL_EFORMAT,
                        "VcekCertChain: certificate %zu at offset %zu has no %s line", cs->n + 1,
                        pos, pem_end);
        if (cs->n == SNP_MAX_CERTS)
            return fail(err, errlen, CL_EFORMAT,
                        "VcekCertChain holds more than %d certificates (VCEK, ASK, ARK)",
                        SNP_MAX_CERTS);
        size_t stop = (size_t)(e - pem) + el;
        X509 *x = NULL;
        int rc = pem_block_to_x509(pem + pos, stop - pos, &x);
        if (rc == CL_ENOMEM)
            return fail(err, errlen, rc, "out of memory");
        if (rc != CL_OK)
            return fail(err, errlen, CL_EFORMAT,
                        "VcekCertChain: certificate %zu (%s) at offset %zu is not a valid PEM "
                        "X.509 certificate",
                        cs->n + 1, what[cs->n], pos);
        cs->c[cs->n++] = x;
        pos = stop;
    }
    if (cs->n == 0)
        return fail(err, errlen, CL_ECHAIN, "VcekCertChain holds no certificate");
    return CL_OK;
}

static X509 *x509_from_pem_string(const char *pem)
{
    X509 *x = NULL;
    if (pem_block_to_x509(pem, strlen(pem), &x) != CL_OK)
        return NULL;
    return x;
}

/* The subject or issuer CN as text into buf ("" when absent). */
static void name_cn(const X509_NAME *nm, char *buf, size_t cap)
{
    buf[0] = '\0';
    int i = X509_NAME_get_index_by_NID(nm, NID_commonName, -1);
    if (i < 0)
        return;
    const ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(nm, i));
    int n = ASN1_STRING_length(s);
    const unsigned char *d = ASN1_STRING_get0_data(s);
    size_t k = 0;
    for (int j = 0; j < n && k + 1 < cap; j++)
        buf[k++] = (d[j] >= 0x20 && d[j] < 0x7f) ? (char)d[j] : '?';
    buf[k] = '\0';
}

static int x509_der_equal(X509 *a, X509 *b)
{
    unsigned char *da = NULL, *db = NULL;
    int la = i2d_X509(a, &da), lb = i2d_X509(b, &db);
    int eq = la > 0 && la == lb && cl_ct_equal(da, db, (size_t)la);
    OPENSSL_free(da);
    OPENSSL_free(db);
    return eq;
}

static int self_issued(X509 *x)
{
    return X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)) == 0;
}

/* Index into cl_amd_roots of the line whose ARK is byte-identical to ark; -1 if none. The ARK
 * is the root: one that only carries a pinned key (re-signed, re-dated) is not the pinned one
 * (attestation-api.md §3.4: it MUST equal the pinned ARK). */
static int pinned_line_by_ark(X509 *ark, int *oom)
{
    *oom = 0;
    for (size_t i = 0; i < cl_amd_nroots; i++) {
        X509 *pin = x509_from_pem_string(cl_amd_roots[i].ark_pem);
        if (pin == NULL) {
            *oom = 1;
            return -1;
        }
        int same = x509_der_equal(ark, pin);
        X509_free(pin);
        if (same)
            return (int)i;
    }
    return -1;
}

/* Index of the line whose ASK subject CN ("SEV-<product>") is cn; -1 if none. */
static int pinned_line_by_ask_cn(const char *cn)
{
    for (size_t i = 0; i < cl_amd_nroots; i++) {
        char want[32];
        snprintf(want, sizeof want, "SEV-%s", cl_amd_roots[i].product);
        if (strcmp(cn, want) == 0)
            return (int)i;
    }
    return -1;
}

/* X509_verify_cert with only `ark` trusted, `ask` untrusted, at time now. */
static int verify_chain(X509 *vcek, X509 *ask, X509 *ark, int64_t now, const char *product,
                        char *err, size_t errlen)
{
    static const char *const what[] = {"VCEK", "ASK", "ARK"};
    int rc = CL_ENOMEM;
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    if (store == NULL || ctx == NULL || untrusted == NULL || X509_STORE_add_cert(store, ark) != 1 ||
        sk_X509_push(untrusted, ask) <= 0 ||
        X509_STORE_CTX_init(ctx, store, vcek, untrusted) != 1) {
        rc = fail(err, errlen, CL_ENOMEM, "out of memory setting up chain verification");
        goto out;
    }
    X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);
    X509_VERIFY_PARAM_set_time(param, (time_t)now);
    /* The ARK is pinned, but check its self-signature anyway (§5.2 step 3). */
    X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_CHECK_SS_SIGNATURE);
    X509_VERIFY_PARAM_set_depth(param, 2);
    int ok = X509_verify_cert(ctx);
    if (ok != 1) {
        int e = X509_STORE_CTX_get_error(ctx);
        int depth = X509_STORE_CTX_get_error_depth(ctx);
        const char *who = depth >= 0 && depth < 3 ? what[depth] : "certificate";
        X509 *bad = X509_STORE_CTX_get_current_cert(ctx);
        char cn[64] = "", icn[64] = "";
        if (bad != NULL) {
            name_cn(X509_get_subject_name(bad), cn, sizeof cn);
            name_cn(X509_get_issuer_name(bad), icn, sizeof icn);
        }
        if (e == X509_V_ERR_CERT_HAS_EXPIRED || e == X509_V_ERR_CERT_NOT_YET_VALID) {
            char when[32] = "?";
            time_t tt = (time_t)now;
            struct tm tmv;
            if (gmtime_r(&tt, &tmv) != NULL)
                strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tmv);
            rc = fail(err, errlen, CL_EEXPIRED, "AMD %s chain: %s (CN=%s) %s at %s", product, who,
                      cn, e == X509_V_ERR_CERT_HAS_EXPIRED ? "has expired" : "is not yet valid",
                      when);
        } else {
            rc = fail(err, errlen, CL_ECHAIN,
                      "%s (CN=%s, issuer CN=%s) does not chain to the pinned ARK-%s: %s", who, cn,
                      icn, product, X509_verify_cert_error_string(e));
        }
        goto out;
    }
    STACK_OF(X509) *built = X509_STORE_CTX_get0_chain(ctx);
    if (built == NULL || sk_X509_num(built) != 3) {
        rc = fail(err, errlen, CL_ECHAIN,
                  "AMD %s chain has %d certificates, expected VCEK, ASK, ARK", product,
                  built ? sk_X509_num(built) : 0);
        goto out;
    }
    rc = CL_OK;
out:
    sk_X509_free(untrusted); /* does not free ask: the caller owns it */
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return rc;
}

/* extnValue of the only extension with the given dotted OID: NULL when absent; *dup when the
 * extension occurs more than once. */
static const ASN1_OCTET_STRING *amd_ext(X509 *x, const char *oid, int *dup)
{
    *dup = 0;
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
    if (obj == NULL)
        return NULL;
    int i = X509_get_ext_by_OBJ(x, obj, -1);
    if (i >= 0 && X509_get_ext_by_OBJ(x, obj, i) >= 0)
        *dup = 1;
    ASN1_OBJECT_free(obj);
    if (i < 0)
        return NULL;
    return X509_EXTENSION_get_data(X509_get_ext(x, i));
}

#define AMD_OID "1.3.6.1.4.1.3704.1"

/* An SPL extension: DER INTEGER 0..255. 1 found, 0 absent, <0 error. */
static int amd_spl(X509 *x, const char *oid, const char *label, uint8_t *v, char *err,
                   size_t errlen)
{
    int dup;
    const ASN1_OCTET_STRING *os = amd_ext(x, oid, &dup);
    if (dup)
        return fail(err, errlen, CL_EFORMAT, "VCEK carries the %s extension (%s) twice", label,
                    oid);
    if (os == NULL)
        return 0;
    const unsigned char *p = ASN1_STRING_get0_data(os);
    long n = ASN1_STRING_length(os);
    const unsigned char *q = p;
    ASN1_INTEGER *ai = d2i_ASN1_INTEGER(NULL, &q, n);
    int64_t val = -1;
    int ok =
        ai != NULL && q == p + n && ASN1_INTEGER_get_int64(&val, ai) == 1 && val >= 0 && val <= 255;
    ASN1_INTEGER_free(ai);
    if (!ok)
        return fail(err, errlen, CL_EFORMAT,
                    "VCEK %s extension (%s) is not a DER INTEGER in 0..255", label, oid);
    *v = (uint8_t)val;
    return 1;
}

static int vcek_matches_x509(X509 *x, const cl_snp_report *r, char *err, size_t errlen)
{
    static const struct {
        const char *oid;
        const char *label;
        int byte; /* byte of reported_tcb */
        int required;
    } spl[] = {
        {AMD_OID ".3.1", "blSPL", 0, 1},  {AMD_OID ".3.2", "teeSPL", 1, 1},
        {AMD_OID ".3.3", "snpSPL", 6, 1}, {AMD_OID ".3.8", "ucodeSPL", 7, 1},
        {AMD_OID ".3.4", "spl_4", 2, 0},  {AMD_OID ".3.5", "spl_5", 3, 0},
        {AMD_OID ".3.6", "spl_6", 4, 0},  {AMD_OID ".3.7", "spl_7", 5, 0},
    };
    for (size_t i = 0; i < sizeof spl / sizeof spl[0]; i++) {
        uint8_t v = 0;
        int found = amd_spl(x, spl[i].oid, spl[i].label, &v, err, errlen);
        if (found < 0)
            return found;
        if (!found) {
            if (spl[i].required)
                return fail(err, errlen, CL_EFORMAT, "VCEK lacks the %s extension (%s)",
                            spl[i].label, spl[i].oid);
            continue;
        }
        uint8_t want = (uint8_t)(r->reported_tcb.raw >> (8 * spl[i].byte));
        if (v != want)
            return fail(err, errlen, CL_ECHAIN,
                        "VCEK %s is %u but the report's reported_tcb (0x%016llx) byte %d is %u: "
                        "the VCEK was issued for another TCB",
                        spl[i].label, v, (unsigned long long)r->reported_tcb.raw, spl[i].byte,
                        want);
    }
    if (!r->mask_chip_key) {
        int dup;
        const ASN1_OCTET_STRING *hw = amd_ext(x, AMD_OID ".4", &dup);
        if (dup)
            return fail(err, errlen, CL_EFORMAT, "VCEK carries the hwID extension twice");
        if (hw == NULL)
            return fail(err, errlen, CL_EFORMAT, "VCEK lacks the hwID extension (" AMD_OID ".4)");
        if (ASN1_STRING_length(hw) != 64)
            return fail(err, errlen, CL_EFORMAT, "VCEK hwID extension is %d bytes, expected 64",
                        ASN1_STRING_length(hw));
        if (!cl_ct_equal(ASN1_STRING_get0_data(hw), r->chip_id, 64))
            return fail(err, errlen, CL_ECHAIN,
                        "VCEK hwID does not equal the report's chip_id: the VCEK belongs to "
                        "another processor");
    }
    return CL_OK;
}

int cl_snp_vcek_matches(const uint8_t *vcek_der, size_t n, const cl_snp_report *r, char *err,
                        size_t errlen)
{
    if (vcek_der == NULL || r == NULL || n > LONG_MAX)
        return fail(err, errlen, CL_EINVAL, "VCEK check: invalid argument");
    const unsigned char *q = vcek_der;
    X509 *x = d2i_X509(NULL, &q, (long)n);
    if (x == NULL || q != vcek_der + n) {
        X509_free(x);
        return fail(err, errlen, CL_EFORMAT, "VCEK is not a DER X.509 certificate of %zu bytes", n);
    }
    int rc = vcek_matches_x509(x, r, err, errlen);
    X509_free(x);
    return rc;
}

/* The VCEK itself: subject CN=SEV-VCEK, EC P-384 key, product name naming `product`. */
static int vcek_shape(X509 *vcek, const char *product, char *err, size_t errlen)
{
    char cn[64];
    name_cn(X509_get_subject_name(vcek), cn, sizeof cn);
    if (strcmp(cn, "SEV-VCEK") != 0)
        return fail(err, errlen, CL_ECHAIN,
                    "first certificate of the chain has subject CN=%s, expected SEV-VCEK", cn);
    EVP_PKEY *pk = X509_get0_pubkey(vcek);
    char group[32] = "";
    size_t glen = 0;
    if (pk == NULL || EVP_PKEY_get_base_id(pk) != EVP_PKEY_EC ||
        EVP_PKEY_get_utf8_string_param(pk, "group", group, sizeof group, &glen) != 1 ||
        strcmp(group, "secp384r1") != 0)
        return fail(err, errlen, CL_ECHAIN, "VCEK public key is not EC P-384");
    int dup;
    const ASN1_OCTET_STRING *pn = amd_ext(vcek, AMD_OID ".2", &dup);
    if (dup)
        return fail(err, errlen, CL_EFORMAT, "VCEK carries the product-name extension twice");
    if (pn != NULL) {
        const unsigned char *p = ASN1_STRING_get0_data(pn), *q = p;
        long n = ASN1_STRING_length(pn);
        ASN1_IA5STRING *s = d2i_ASN1_IA5STRING(NULL, &q, n);
        int ok = s != NULL && q == p + n;
        size_t pl = strlen(product);
        int match = ok && (size_t)ASN1_STRING_length(s) >= pl &&
                    memcmp(ASN1_STRING_get0_data(s), product, pl) == 0 && /* lint:public */
                    ((size_t)ASN1_STRING_length(s) == pl || ASN1_STRING_get0_data(s)[pl] == '-');
        ASN1_IA5STRING_free(s);
        if (!ok)
            return fail(err, errlen, CL_EFORMAT,
                        "VCEK product-name extension (" AMD_OID ".2) is not an IA5String");
        if (!match)
            return fail(err, errlen, CL_ECHAIN,
                        "VCEK product-name extension does not name the %s product line", product);
    }
    return CL_OK;
}

/* ECDSA P-384 / SHA-384 over bytes 0x000..0x29F; R and S little-endian (§5.2 step 2). */
static int report_signature(EVP_PKEY *pk, const uint8_t *raw, const cl_snp_report *r, char *err,
                            size_t errlen)
{
    int rc;
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *br = BN_lebin2bn(r->sig_r, CL_SNP_SIG_COMPONENT_LEN, NULL);
    BIGNUM *bs = BN_lebin2bn(r->sig_s, CL_SNP_SIG_COMPONENT_LEN, NULL);
    unsigned char *der = NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (sig == NULL || br == NULL || bs == NULL || md == NULL || ECDSA_SIG_set0(sig, br, bs) != 1) {
        BN_free(br);
        BN_free(bs);
        rc = fail(err, errlen, CL_ENOMEM, "out of memory verifying the report signature");
        goto out;
    }
    /* sig owns br and bs now */
    int dlen = i2d_ECDSA_SIG(sig, &der);
    if (dlen <= 0) {
        rc = fail(err, errlen, CL_ENOMEM, "cannot encode the report signature");
        goto out;
    }
    if (EVP_DigestVerifyInit(md, NULL, EVP_sha384(), NULL, pk) != 1) {
        rc = fail(err, errlen, CL_ECRYPTO, "cannot initialise ECDSA P-384 verification");
        goto out;
    }
    if (EVP_DigestVerify(md, der, (size_t)dlen, raw, CL_SNP_SIGNED_LEN) != 1) {
        rc = fail(err, errlen, CL_ESIG,
                  "SEV-SNP report signature does not verify with the VCEK (ECDSA P-384 over "
                  "bytes 0x000..0x29F)");
        goto out;
    }
    rc = CL_OK;
out:
    EVP_MD_CTX_free(md);
    OPENSSL_free(der);
    ECDSA_SIG_free(sig);
    return rc;
}

/* Validity window of a verified chain: every certificate valid. */
static void cert_window(X509 *const *v, size_t n, int64_t *nb, int64_t *na)
{
    *nb = INT64_MIN;
    *na = INT64_MAX;
    for (size_t k = 0; k < n; k++) {
        if (v[k] == NULL)
            continue;
        struct tm t;
        int64_t b, a;
        if (ASN1_TIME_to_tm(X509_get0_notBefore(v[k]), &t) != 1) {
            *na = INT64_MIN;
            return;
        }
        b = (int64_t)timegm(&t);
        if (ASN1_TIME_to_tm(X509_get0_notAfter(v[k]), &t) != 1) {
            *na = INT64_MIN;
            return;
        }
        a = (int64_t)timegm(&t);
        *nb = b > *nb ? b : *nb;
        *na = a < *na ? a : *na;
    }
}

static void chain_key(const char *chain_pem, size_t chain_len, uint8_t key[32])
{
    static const char tag[] = "cledger snp vcek chain v1";
    cl_iov v[2] = {{tag, sizeof tag}, {chain_pem, chain_len}};
    cl_sha256_v(v, 2, key);
}

static int verify_report_impl(const cl_snp_report *given, const uint8_t *raw, size_t raw_len,
                              const char *chain_pem, size_t chain_len, int64_t now_unix,
                              cl_vcache *cache, char *err, size_t errlen);

int cl_snp_verify_report(const cl_snp_report *given, const uint8_t *raw, size_t raw_len,
                         const char *chain_pem, size_t chain_len, int64_t now_unix, char *err,
                         size_t errlen)
{
    return verify_report_impl(given, raw, raw_len, chain_pem, chain_len, now_unix, NULL, err,
                              errlen);
}

static int verify_report_impl(const cl_snp_report *given, const uint8_t *raw, size_t raw_len,
                              const char *chain_pem, size_t chain_len, int64_t now_unix,
                              cl_vcache *cache, char *err, size_t errlen)
{
    if (raw == NULL)
        return fail(err, errlen, CL_EINVAL, "SEV-SNP verify: NULL report");
    cl_snp_report r;
    int rc = cl_snp_report_parse(raw, raw_len, &r, err, errlen);
    if (rc != CL_OK)
        return rc;
    if (given != NULL && !report_same(given, &r))
        return fail(err, errlen, CL_EINVAL,
                    "SEV-SNP verify: the parsed report does not match the raw report bytes");
    if (r.signing_key == CL_SNP_SIGNER_KEY_VLEK)
        return fail(err, errlen, CL_EUNSUPPORTED,
                    "SEV-SNP report is signed by a VLEK; only VCEK-signed reports are verified");
    if (r.signing_key != CL_SNP_SIGNER_KEY_VCEK)
        return fail(err, errlen, CL_ESIG,
                    "SEV-SNP report signer_info names signing key %u (not VCEK): no signature "
                    "to verify",
                    r.signing_key);
    if (chain_pem == NULL || chain_len == 0)
        return fail(err, errlen, CL_ECHAIN, "no VCEK certificate chain supplied");

    snp_certs cs = {{NULL}, 0};
    X509 *pin_ask = NULL, *pin_ark = NULL, *cached = NULL;
    uint8_t key[32];
    if (cache != NULL) {
        /* The chain (VCEK -> ASK -> pinned ARK, and the VCEK's shape) was verified before for
         * these exact bytes and still holds at now_unix: only the report is left to check. */
        chain_key(chain_pem, chain_len, key);
        size_t bl = 0;
        if (cl_vcache_lookup(cache, key, now_unix, NULL, &bl, &cached, NULL) && cached != NULL) {
            rc = report_signature(X509_get0_pubkey(cached), raw, &r, err, errlen);
            if (rc == CL_OK)
                rc = vcek_matches_x509(cached, &r, err, errlen);
            X509_free(cached);
            return rc;
        }
    }
    rc = split_pem(chain_pem, chain_len, &cs, err, errlen);
    if (rc != CL_OK)
        goto out;

    /* Which cert plays which role: [VCEK, ASK?, ARK?]; a 2-cert chain whose second cert is
     * self-issued is VCEK + ARK. */
    X509 *vcek = cs.c[0], *ask = NULL, *ark = NULL;
    if (cs.n == 3) {
        ask = cs.c[1];
        ark = cs.c[2];
    } else if (cs.n == 2) {
        if (self_issued(cs.c[1]))
            ark = cs.c[1];
        else
            ask = cs.c[1];
    }

    int line = -1;
    if (ark != NULL) {
        int oom;
        line = pinned_line_by_ark(ark, &oom);
        if (oom) {
            rc = fail(err, errlen, CL_ENOMEM, "out of memory loading the pinned ARKs");
            goto out;
        }
        if (line < 0) {
            char cn[64];
            name_cn(X509_get_subject_name(ark), cn, sizeof cn);
            rc = fail(err, errlen, CL_ECHAIN,
                      "the supplied ARK (CN=%s) is not a pinned AMD root (not byte-identical "
                      "to ARK-Milan, ARK-Genoa or ARK-Turin)",
                      cn);
            goto out;
        }
    } else {
        char cn[64];
        name_cn(X509_get_issuer_name(vcek), cn, sizeof cn);
        line = pinned_line_by_ask_cn(cn);
        if (line < 0) {
            rc = fail(err, errlen, CL_ECHAIN,
                      "VCEK issuer CN=%s names no pinned AMD product line, and no ARK was "
                      "supplied",
                      cn);
            goto out;
        }
    }
    const char *product = cl_amd_roots[line].product;
    pin_ark = x509_from_pem_string(cl_amd_roots[line].ark_pem);
    if (ask == NULL)
        pin_ask = x509_from_pem_string(cl_amd_roots[line].ask_pem);
    if (pin_ark == NULL || (ask == NULL && pin_ask == NULL)) {
        rc = fail(err, errlen, CL_ENOMEM, "out of memory loading the pinned %s roots", product);
        goto out;
    }
    rc = verify_chain(vcek, ask ? ask : pin_ask, pin_ark, now_unix, product, err, errlen);
    if (rc != CL_OK)
        goto out;
    /* Turin's TCB_VERSION has another layout (with an FMC field): no vector yet, so refuse
     * rather than compare the wrong bytes (evidence-formats.md §5.1). */
    if (strcmp(product, "Turin") == 0) {
        rc = fail(err, errlen, CL_EUNSUPPORTED,
                  "Turin SEV-SNP reports use a different TCB layout and are not supported yet");
        goto out;
    }
    rc = vcek_shape(vcek, product, err, errlen);
    if (rc != CL_OK)
        goto out;
    if (cache != NULL) {
        X509 *used[3] = {vcek, ask ? ask : pin_ask, pin_ark};
        int64_t nb, na;
        cert_window(used, 3, &nb, &na);
        cl_vcache_insert(cache, key, nb, na, NULL, 0, vcek, NULL);
    }
    rc = report_signature(X509_get0_pubkey(vcek), raw, &r, err, errlen);
    if (rc != CL_OK)
        goto out;
    rc = vcek_matches_x509(vcek, &r, err, errlen);
    if (rc != CL_OK)
        goto out;
    rc = CL_OK;
out:
    X509_free(pin_ask);
    X509_free(pin_ark);
    certs_free(&cs);
    return rc;
}

int cl_snp_verify(const cl_snp_evidence *e, int64_t now_unix, char *err, size_t errlen)
{
    return cl_snp_verify_cached(e, now_unix, NULL, err, errlen);
}

int cl_snp_verify_cached(const cl_snp_evidence *e, int64_t now_unix, cl_vcache *cache, char *err,
                         size_t errlen)
{
    if (e == NULL)
        return fail(err, errlen, CL_EINVAL, "SEV-SNP verify: NULL evidence");
    if (e->chain == NULL)
        return fail(err, errlen, CL_ECHAIN,
                    "SEV-SNP evidence has no VcekCertChain: no VCEK to verify the report with");
    return verify_report_impl(&e->report, e->raw, sizeof e->raw, e->chain, e->chain_len, now_unix,
                              cache, err, errlen);
}

/* ---- claims ------------------------------------------------------------------------------ */

static int set_new(json_t *obj, const char *name, json_t *v)
{
    if (v == NULL)
        return CL_ENOMEM;
    return json_object_set_new(obj, name, v) == 0 ? CL_OK : CL_ENOMEM;
}

static int set_hex(json_t *obj, const char *name, const uint8_t *p, size_t n)
{
    char buf[2 * 64 + 1];
    if (n > 64)
        return CL_EINVAL;
    cl_hex_encode(p, n, buf);
    return set_new(obj, name, json_string(buf));
}

int cl_snp_claims(const cl_snp_report *r, json_t *claims)
{
    if (r == NULL || !json_is_object(claims))
        return CL_EINVAL;
    const cl_snp_tcb *t = &r->reported_tcb;
    CL_TRY(set_hex(claims, "x-ms-sevsnpvm-authorkeydigest", r->author_key_digest, 48));
    CL_TRY(set_new(claims, "x-ms-sevsnpvm-bootloader-svn", json_integer(t->bootloader)));
    CL_TRY(set_hex(claims, "x-ms-sevsnpvm-familyId", r->family_id, 16));
    CL_TRY(set_new(claims, "x-ms-sevsnpvm-guestsvn", json_integer(r->guest_svn)));
    CL_TRY(set_hex(claims, "x-ms-sevsnpvm-hostdata", r->host_data, 32));
    CL_TRY(set_hex(claims, "x-ms-sevsnpvm-idkeydigest", r->id_key_digest, 48));
    CL_TRY(set_hex(claims, "x-ms-sevsnpvm-imageId", r->image_id, 16));
    CL_TRY(set_new(claims, "x-ms-sevsnpvm-is-debuggable",
                   json_boolean((r->policy & CL_SNP_POLICY_DEBUG) != 0)));
    CL_TRY(set_hex(claims, "x-ms-sevsnpvm-launchmeasurement", r->measurement, 48));
    CL_TRY(set_new(claims, "x-ms-sevsnpvm-microcode-svn", json_integer(t->microcode)));
    CL_TRY(set_new(claims, "x-ms-sevsnpvm-migration-allowed",
                   json_boolean((r->policy & CL_SNP_POLICY_MIGRATE_MA) != 0)));
    CL_TRY(set_hex(claims, "x-ms-sevsnpvm-reportdata", r->report_data, 64));
    CL_TRY(set_hex(claims, "x-ms-sevsnpvm-reportid", r->report_id, 32));
    CL_TRY(set_new(claims, "x-ms-sevsnpvm-smt-allowed",
                   json_boolean((r->policy & CL_SNP_POLICY_SMT) != 0)));
    CL_TRY(set_new(claims, "x-ms-sevsnpvm-snpfw-svn", json_integer(t->snp)));
    CL_TRY(set_new(claims, "x-ms-sevsnpvm-tee-svn", json_integer(t->tee)));
    CL_TRY(set_new(claims, "x-ms-sevsnpvm-vmpl", json_integer(r->vmpl)));
    return CL_OK;
}

int cl_snp_evidence_claims(const cl_snp_evidence *e, json_t *claims, json_t *unverified)
{
    if (e == NULL)
        return CL_EINVAL;
    CL_TRY(cl_snp_claims(&e->report, claims));
    if (e->endorsements != NULL && unverified != NULL)
        CL_TRY(set_new(unverified, "x-ms-sevsnpvm-endorsements", json_string(e->endorsements)));
    return CL_OK;
}
