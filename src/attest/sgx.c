/*
 * sgx.c — SGX/TDX quote and Open Enclave report parsing, and the MAA claim mapping (see sgx.h).
 * Verification lives in sgx_verify.c, PKI helpers in intel_pki.c, collateral in intel_tcb.c.
 *
 * Every read goes through a cl_cursor. Offsets in messages are absolute offsets in the input.
 */
#include "attest/sgx.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "attest/intel_pki.h"
#include "base/codec.h"
#include "base/cursor.h"

static const uint8_t intel_qe_vendor[16] = {0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9,
                                            0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07};

/* A cursor plus the absolute offset of its first byte. `inner`: the cursor is bounded by a length
 * field of the quote (not by the end of the input), so running out is a format error. */
typedef struct {
    cl_cursor c;
    size_t base;
    int inner;
    const char *region;
    char *err;
    size_t errlen;
} rd;

static int rd_short(rd *r, size_t n, const char *what)
{
    size_t off = r->base + r->c.pos, left = cl_cursor_left(&r->c);
    if (r->inner) {
        cl_intel_err(
            r->err, r->errlen,
            "quote malformed at offset %zu: %s needs %zu bytes but the %s has only %zu left", off,
            what, n, r->region, left);
        return CL_EFORMAT;
    }
    cl_intel_err(r->err, r->errlen, "quote truncated at offset %zu: %s needs %zu bytes, %zu left",
                 off, what, n, left);
    return CL_ETRUNC;
}

static int rd_view(rd *r, size_t n, const uint8_t **out, const char *what)
{
    if (cl_cursor_view(&r->c, out, n) != CL_OK)
        return rd_short(r, n, what);
    return CL_OK;
}

static int rd_u16(rd *r, uint16_t *v, const char *what)
{
    if (cl_cursor_u16(&r->c, v) != CL_OK)
        return rd_short(r, 2, what);
    return CL_OK;
}

static int rd_u32(rd *r, uint32_t *v, const char *what)
{
    if (cl_cursor_u32(&r->c, v) != CL_OK)
        return rd_short(r, 4, what);
    return CL_OK;
}

static uint16_t ld16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static void parse_sgx_body(cl_sgx_quote *q, const uint8_t *b)
{
    q->enclave_report = b;
    q->cpu_svn = b + 0;
    q->misc_select = cl_load_u32(b + 16);
    q->isv_ext_prod_id = b + 32;
    q->attributes = b + 48;
    q->attr_flags = cl_load_u64(b + 48);
    q->mr_enclave = b + 64;
    q->mr_signer = b + 128;
    q->config_id = b + 192;
    q->isv_prod_id = ld16(b + 256);
    q->isv_svn = ld16(b + 258);
    q->config_svn = ld16(b + 260);
    q->isv_family_id = b + 304;
    q->report_data = b + 320;
    q->debug = (q->attr_flags & 0x2) != 0;
    q->kss = (q->attr_flags & 0x80) != 0;
}

static void parse_td_body(cl_sgx_quote *q, const uint8_t *b, size_t len)
{
    q->td_report = b;
    q->tee_tcb_svn = b + 0;
    q->mr_seam = b + 16;
    q->mr_signer_seam = b + 64;
    q->seam_attributes = b + 112;
    q->td_attributes = b + 120;
    q->td_attr = cl_load_u64(b + 120);
    q->xfam = b + 128;
    q->mr_td = b + 136;
    q->mr_config_id = b + 184;
    q->mr_owner = b + 232;
    q->mr_owner_config = b + 280;
    for (int i = 0; i < 4; i++)
        q->rtmr[i] = b + 328 + 48 * i;
    q->report_data = b + 520;
    if (len == CL_TDX_TD15_BODY_LEN) {
        q->tee_tcb_svn2 = b + 584;
        q->mr_servicetd = b + 600;
    }
    q->debug = (q->td_attr & 0x1) != 0;
}

static const char *cert_type_name(uint16_t t)
{
    switch (t) {
    case 1:
        return "PPID in clear text";
    case 2:
        return "PPID encrypted with RSA-2048-OAEP";
    case 3:
        return "PPID encrypted with RSA-3072-OAEP";
    case 4:
        return "PCK leaf certificate only";
    case 5:
        return "PCK certificate chain";
    case 6:
        return "QE report certification data";
    case 7:
        return "platform manifest";
    default:
        return "unknown";
    }
}

/* QE report, its signature, the auth data, then certification data of type 5 (§2.3, §2.4). */
static int parse_qe_part(rd *r, cl_sgx_quote *q, const char *ctx)
{
    int rc;
    const uint8_t *auth = NULL;
    uint16_t auth_len, type;
    uint32_t size;
    if ((rc = rd_view(r, CL_SGX_REPORT_BODY_LEN, &q->qe_report, "QE report")) < 0 ||
        (rc = rd_view(r, 64, &q->qe_report_sig, "QE report signature")) < 0 ||
        (rc = rd_u16(r, &auth_len, "QE authentication data size")) < 0 ||
        (rc = rd_view(r, auth_len, &auth, "QE authentication data")) < 0)
        return rc;
    q->qe_auth_data = auth;
    q->qe_auth_len = auth_len;
    size_t type_off = r->base + r->c.pos;
    if ((rc = rd_u16(r, &type, "certification data type")) < 0 ||
        (rc = rd_u32(r, &size, "certification data size")) < 0)
        return rc;
    if (type != 5) {
        cl_intel_err(r->err, r->errlen,
                     "%s certification data type %u (%s) at offset %zu is not supported "
                     "(only type 5, the PCK certificate chain)",
                     ctx, type, cert_type_name(type), type_off);
        return CL_EUNSUPPORTED;
    }
    const uint8_t *pem = NULL;
    if ((rc = rd_view(r, size, &pem, "certification data")) < 0)
        return rc;
    if (size == 0) {
        cl_intel_err(r->err, r->errlen, "certification data at offset %zu is empty", type_off);
        return CL_EFORMAT;
    }
    q->pck_chain = (const char *)pem;
    q->pck_chain_len = size;
    return CL_OK;
}

int cl_sgx_quote_parse(const uint8_t *p, size_t n, cl_sgx_quote *q, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (q == NULL || (p == NULL && n > 0)) {
        cl_intel_err(err, errlen, "invalid argument");
        return CL_EINVAL;
    }
    memset(q, 0, sizeof *q);
    int rc;
    rd r = {.base = 0, .inner = 0, .region = "quote", .err = err, .errlen = errlen};
    cl_cursor_init(&r.c, p, n);

    const uint8_t *hdr = NULL;
    if ((rc = rd_view(&r, 48, &hdr, "quote header")) < 0)
        return rc;
    q->raw = p;
    q->raw_len = n;
    q->version = ld16(hdr);
    q->att_key_type = ld16(hdr + 2);
    q->qe_vendor_id = hdr + 12;
    q->user_data = hdr + 28;
    if (q->version == 3) {
        q->tee_type = CL_SGX_TEE_SGX;
        q->qe_svn = ld16(hdr + 8);
        q->pce_svn = ld16(hdr + 10);
    } else if (q->version == 4 || q->version == 5) {
        q->tee_type = cl_load_u32(hdr + 4);
        if (q->tee_type != CL_SGX_TEE_SGX && q->tee_type != CL_SGX_TEE_TDX) {
            cl_intel_err(err, errlen, "quote tee_type 0x%08x is not supported (0 SGX, 0x81 TDX)",
                         (unsigned)q->tee_type);
            return CL_EUNSUPPORTED;
        }
    } else {
        cl_intel_err(err, errlen, "quote version %u is not supported (3, 4 or 5)", q->version);
        return CL_EUNSUPPORTED;
    }
    if (q->att_key_type != 2) {
        cl_intel_err(err, errlen, "attestation key type %u is not supported (2 = ECDSA P-256 only)",
                     q->att_key_type);
        return CL_EUNSUPPORTED;
    }
    if (memcmp(q->qe_vendor_id, intel_qe_vendor, 16) != 0) { /* public constant, lint:public */
        cl_intel_err(err, errlen, "QE vendor id is not Intel's (939a7233f79c4ca9940a0db3957f0607)");
        return CL_EUNSUPPORTED;
    }

    /* Body. */
    size_t body_len;
    if (q->version == 5) {
        uint16_t bt;
        uint32_t bs;
        if ((rc = rd_u16(&r, &bt, "v5 body type")) < 0 ||
            (rc = rd_u32(&r, &bs, "v5 body size")) < 0)
            return rc;
        if (q->tee_type != CL_SGX_TEE_TDX || (bt != 2 && bt != 3)) {
            cl_intel_err(err, errlen,
                         "quote v5 body type %u with tee_type 0x%x is not supported "
                         "(TDX body types 2 and 3 only)",
                         bt, (unsigned)q->tee_type);
            return CL_EUNSUPPORTED;
        }
        size_t want = bt == 2 ? CL_TDX_TD10_BODY_LEN : CL_TDX_TD15_BODY_LEN;
        if (bs != want) {
            cl_intel_err(err, errlen, "quote v5 body type %u must be %zu bytes, header says %u", bt,
                         want, (unsigned)bs);
            return CL_EFORMAT;
        }
        q->body_type = bt;
        body_len = want;
    } else if (q->tee_type == CL_SGX_TEE_TDX) {
        q->body_type = 2;
        body_len = CL_TDX_TD10_BODY_LEN;
    } else {
        q->body_type = 1;
        body_len = CL_SGX_REPORT_BODY_LEN;
    }
    if ((rc = rd_view(&r, body_len, &q->body,
                      q->tee_type == CL_SGX_TEE_TDX ? "TD report body" : "enclave report body")) <
        0)
        return rc;
    q->body_len = body_len;
    q->signed_len = r.c.pos;
    if (q->tee_type == CL_SGX_TEE_TDX)
        parse_td_body(q, q->body, body_len);
    else
        parse_sgx_body(q, q->body);

    /* Signature data. */
    const uint8_t *sig = NULL;
    if ((rc = rd_u32(&r, &q->sig_data_len, "signature data length")) < 0 ||
        (rc = rd_view(&r, q->sig_data_len, &sig, "signature data")) < 0)
        return rc;
    q->quote_len = r.c.pos;

    rd s = {.base = q->signed_len + 4,
            .inner = 1,
            .region = "signature data",
            .err = err,
            .errlen = errlen};
    cl_cursor_init(&s.c, sig, q->sig_data_len);
    if ((rc = rd_view(&s, 64, &q->isv_signature, "ISV signature")) < 0 ||
        (rc = rd_view(&s, 64, &q->attest_key, "attestation key")) < 0)
        return rc;
    if (q->version == 3) {
        q->cert_type = 5;
        if ((rc = parse_qe_part(&s, q, "quote v3")) < 0)
            return rc;
    } else {
        uint16_t type;
        uint32_t size;
        size_t type_off = s.base + s.c.pos;
        if ((rc = rd_u16(&s, &type, "certification data type")) < 0 ||
            (rc = rd_u32(&s, &size, "certification data size")) < 0)
            return rc;
        if (type != 6) {
            cl_intel_err(err, errlen,
                         "quote v%u certification data type %u (%s) at offset %zu is not supported "
                         "(type 6, QE report certification data, expected)",
                         q->version, type, cert_type_name(type), type_off);
            return CL_EUNSUPPORTED;
        }
        q->cert_type = 6;
        const uint8_t *cd = NULL;
        if ((rc = rd_view(&s, size, &cd, "QE report certification data")) < 0)
            return rc;
        rd in = {.base = s.base + s.c.pos - size,
                 .inner = 1,
                 .region = "QE report certification data",
                 .err = err,
                 .errlen = errlen};
        cl_cursor_init(&in.c, cd, size);
        if ((rc = parse_qe_part(&in, q, "inner")) < 0)
            return rc;
        if (cl_cursor_left(&in.c) != 0) {
            cl_intel_err(err, errlen,
                         "QE report certification data has %zu unused bytes at offset %zu",
                         cl_cursor_left(&in.c), in.base + in.c.pos);
            return CL_EFORMAT;
        }
    }
    if (cl_cursor_left(&s.c) != 0) {
        cl_intel_err(err, errlen, "signature data has %zu unused bytes at offset %zu",
                     cl_cursor_left(&s.c), s.base + s.c.pos);
        return CL_EFORMAT;
    }
    return CL_OK;
}

int cl_oe_report_unwrap(const uint8_t *p, size_t n, const uint8_t **quote, size_t *qlen, char *err,
                        size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (quote == NULL || qlen == NULL || (p == NULL && n > 0)) {
        cl_intel_err(err, errlen, "invalid argument");
        return CL_EINVAL;
    }
    cl_cursor c;
    cl_cursor_init(&c, p, n);
    uint32_t version, type;
    uint64_t size;
    if (cl_cursor_u32(&c, &version) != CL_OK || cl_cursor_u32(&c, &type) != CL_OK ||
        cl_cursor_u64(&c, &size) != CL_OK) {
        cl_intel_err(err, errlen,
                     "Open Enclave report truncated: the header needs 16 bytes, got %zu", n);
        return CL_ETRUNC;
    }
    if (version != 1) {
        cl_intel_err(err, errlen, "Open Enclave report version %u is not supported (1)",
                     (unsigned)version);
        return CL_EUNSUPPORTED;
    }
    if (type != 2) {
        cl_intel_err(err, errlen,
                     "Open Enclave report type %u is not supported (2 = SGX remote report)",
                     (unsigned)type);
        return CL_EUNSUPPORTED;
    }
    size_t left = cl_cursor_left(&c);
    if (size > left) {
        cl_intel_err(err, errlen,
                     "Open Enclave report truncated at offset 16: the quote needs %llu bytes, "
                     "%zu left",
                     (unsigned long long)size, left);
        return CL_ETRUNC;
    }
    if (size < left) {
        cl_intel_err(err, errlen,
                     "Open Enclave report has %zu bytes after its %llu-byte quote (size mismatch)",
                     left - (size_t)size, (unsigned long long)size);
        return CL_EFORMAT;
    }
    const uint8_t *qp = NULL;
    if (cl_cursor_view(&c, &qp, (size_t)size) != CL_OK) { /* cannot fail after the checks */
        cl_intel_err(err, errlen, "Open Enclave report truncated");
        return CL_ETRUNC;
    }
    *quote = qp;
    *qlen = (size_t)size;
    return CL_OK;
}

void cl_sgx_result_free(cl_sgx_result *r)
{
    if (r == NULL)
        return;
    json_decref(r->advisory_ids);
    json_decref(r->collateral_hashes);
    r->advisory_ids = NULL;
    r->collateral_hashes = NULL;
}

/* ---- claims ------------------------------------------------------------------------------- */

static int set_new(json_t *obj, const char *key, json_t *v)
{
    if (v == NULL)
        return CL_ENOMEM;
    if (json_object_set_new(obj, key, v) != 0)
        return CL_ENOMEM;
    return CL_OK;
}

static int set_hex(json_t *obj, const char *key, const uint8_t *b, size_t n)
{
    char buf[2 * 64 + 1];
    if (n > 64)
        return CL_EINVAL;
    cl_hex_encode(b, n, buf);
    return set_new(obj, key, json_string(buf));
}

static int sgx_claims(const cl_sgx_quote *q, const cl_sgx_result *res,
                      const uint8_t evidence_sha256[32], json_t *claims)
{
    CL_TRY(set_new(claims, "x-ms-sgx-is-debuggable", json_boolean(q->debug)));
    CL_TRY(set_hex(claims, "x-ms-sgx-mrenclave", q->mr_enclave, 32));
    CL_TRY(set_hex(claims, "x-ms-sgx-mrsigner", q->mr_signer, 32));
    CL_TRY(set_new(claims, "x-ms-sgx-product-id", json_integer(q->isv_prod_id)));
    CL_TRY(set_new(claims, "x-ms-sgx-svn", json_integer(q->isv_svn)));
    CL_TRY(set_hex(claims, "x-ms-sgx-report-data", q->report_data, 64));

    json_t *coll = NULL;
    if (res != NULL && res->collateral_hashes != NULL)
        coll = json_deep_copy(res->collateral_hashes);
    else
        coll = json_object();
    if (coll == NULL)
        return CL_ENOMEM;
    if (!json_is_object(coll)) {
        json_decref(coll);
        return CL_EINVAL;
    }
    int rc = set_hex(coll, "quotehash", evidence_sha256, 32);
    if (rc < 0) {
        json_decref(coll);
        return rc;
    }
    CL_TRY(set_new(claims, "x-ms-sgx-collateral", coll)); /* steals coll, also on failure */
    CL_TRY(set_new(claims, "maa-attestationcollateral", json_deep_copy(coll)));

    if (q->kss) {
        CL_TRY(set_hex(claims, "x-ms-sgx-config-id", q->config_id, 64));
        CL_TRY(set_new(claims, "x-ms-sgx-config-svn", json_integer(q->config_svn)));
        CL_TRY(set_hex(claims, "x-ms-sgx-isv-extended-product-id", q->isv_ext_prod_id, 16));
        CL_TRY(set_hex(claims, "x-ms-sgx-isv-family-id", q->isv_family_id, 16));
    }
    if (res != NULL && res->tcb_evaluated)
        CL_TRY(set_new(claims, "x-ms-sgx-tcb-status", json_string(res->tcb_status)));
    return CL_OK;
}

static int tdx_claims(const cl_sgx_quote *q, const cl_sgx_result *res, json_t *claims)
{
    CL_TRY(set_hex(claims, "tdx_mrseam", q->mr_seam, 48));
    CL_TRY(set_hex(claims, "tdx_mrsignerseam", q->mr_signer_seam, 48));
    CL_TRY(set_hex(claims, "tdx_mrtd", q->mr_td, 48));
    CL_TRY(set_hex(claims, "tdx_mrconfigid", q->mr_config_id, 48));
    CL_TRY(set_hex(claims, "tdx_mrowner", q->mr_owner, 48));
    CL_TRY(set_hex(claims, "tdx_mrownerconfig", q->mr_owner_config, 48));
    static const char *const rtmr_names[4] = {"tdx_rtmr0", "tdx_rtmr1", "tdx_rtmr2", "tdx_rtmr3"};
    for (int i = 0; i < 4; i++)
        CL_TRY(set_hex(claims, rtmr_names[i], q->rtmr[i], 48));
    CL_TRY(set_hex(claims, "tdx_report_data", q->report_data, 64));
    CL_TRY(set_hex(claims, "tdx_seam_attributes", q->seam_attributes, 8));
    CL_TRY(set_hex(claims, "tdx_td_attributes", q->td_attributes, 8));
    CL_TRY(set_hex(claims, "tdx_xfam", q->xfam, 8));
    CL_TRY(set_hex(claims, "tdx_tee_tcb_svn", q->tee_tcb_svn, 16));
    CL_TRY(set_new(claims, "tdx_seamsvn", json_integer(q->tee_tcb_svn[0])));
    uint64_t a = q->td_attr;
    CL_TRY(set_new(claims, "tdx_td_attributes_debug", json_boolean(a & 1)));
    CL_TRY(set_new(claims, "tdx_td_attributes_septve_disable", json_boolean((a >> 28) & 1)));
    CL_TRY(set_new(claims, "tdx_td_attributes_protection_keys", json_boolean((a >> 30) & 1)));
    CL_TRY(set_new(claims, "tdx_td_attributes_key_locker", json_boolean((a >> 31) & 1)));
    CL_TRY(set_new(claims, "tdx_td_attributes_perfmon", json_boolean((a >> 63) & 1)));
    if (q->tee_tcb_svn2 != NULL) {
        CL_TRY(set_hex(claims, "tdx_tee_tcb_svn2", q->tee_tcb_svn2, 16));
        CL_TRY(set_hex(claims, "tdx_mrservicetd", q->mr_servicetd, 48));
    }
    if (res != NULL && res->tcb_evaluated)
        CL_TRY(set_new(claims, "attester_tcb_status", json_string(res->tcb_status)));
    CL_TRY(set_new(claims, "dbgstat", json_string((a & 1) ? "enabled" : "disabled")));
    CL_TRY(set_new(claims, "eat_profile", json_string("https://aka.ms/maa-eat-profile-tdxvm")));
    CL_TRY(set_new(claims, "intuse", json_string("generic")));
    return CL_OK;
}

int cl_sgx_claims(const cl_sgx_quote *q, const cl_sgx_result *res,
                  const uint8_t evidence_sha256[32], json_t *claims)
{
    CL_ENSURE(q != NULL && json_is_object(claims), CL_EINVAL);
    if (q->tee_type == CL_SGX_TEE_TDX) {
        CL_ENSURE(q->td_report != NULL, CL_EINVAL);
        return tdx_claims(q, res, claims);
    }
    CL_ENSURE(q->enclave_report != NULL && evidence_sha256 != NULL, CL_EINVAL);
    return sgx_claims(q, res, evidence_sha256, claims);
}

int cl_sgx_legacy_claims(const cl_sgx_quote *q, json_t *claims)
{
    CL_ENSURE(q != NULL && json_is_object(claims), CL_EINVAL);
    CL_ENSURE(q->tee_type == CL_SGX_TEE_SGX && q->enclave_report != NULL, CL_EINVAL);
    CL_TRY(set_new(claims, "is-debuggable", json_boolean(q->debug)));
    CL_TRY(set_hex(claims, "sgx-mrsigner", q->mr_signer, 32));
    CL_TRY(set_hex(claims, "sgx-mrenclave", q->mr_enclave, 32));
    CL_TRY(set_new(claims, "product-id", json_integer(q->isv_prod_id)));
    CL_TRY(set_new(claims, "svn", json_integer(q->isv_svn)));
    CL_TRY(set_new(claims, "tee", json_string("sgx")));
    return CL_OK;
}
