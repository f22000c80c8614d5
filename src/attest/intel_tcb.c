/*
 * intel_tcb.c — Intel collateral parsing and TCB evaluation (spec/evidence-formats.md §2.5 steps
 * 5 and 7, §2.6; the level-selection rules follow Intel's published QVL algorithm).
 */
#include "attest/intel_tcb.h"

#include <openssl/evp.h>
#include <string.h>
#include <strings.h>

#include "base/alloc.h"
#include "base/codec.h"
#include "base/cursor.h"
#include "base/json.h"
#include "crypto/hash.h"

#define COLLATERAL_MAX (8u << 20)

/* ---- parse -------------------------------------------------------------------------------- */

void cl_intel_collateral_free(cl_intel_collateral *c)
{
    if (c == NULL)
        return;
    cl_free(c->tcb_info);
    cl_free(c->qe_identity);
    json_decref(c->tcb_info_json);
    json_decref(c->qe_identity_json);
    cl_intel_certs_free(&c->tcb_info_chain);
    cl_intel_certs_free(&c->qe_identity_chain);
    cl_intel_certs_free(&c->pck_crl_chain);
    X509_CRL_free(c->root_ca_crl);
    X509_CRL_free(c->pck_crl);
    cl_free(c);
}

static int member_str(const json_t *o, const char *key, const char **s, size_t *n, char *err,
                      size_t errlen)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_string(v)) {
        cl_intel_err(err, errlen, "collateral: member \"%s\" is %s", key,
                     v == NULL ? "missing" : "not a string");
        return CL_EJSON;
    }
    *s = json_string_value(v);
    *n = json_string_length(v);
    return CL_OK;
}

/* A signed JSON document: kept verbatim, and parsed (it must be an object). */
static int signed_doc(const json_t *o, const char *key, char **text, size_t *len, json_t **parsed,
                      uint8_t digest[32], char *err, size_t errlen)
{
    const char *s;
    size_t n;
    CL_TRY(member_str(o, key, &s, &n, err, errlen));
    char jerr[160];
    if (cl_json_parse(s, n, COLLATERAL_MAX, parsed, jerr, sizeof jerr) != CL_OK ||
        !json_is_object(*parsed)) {
        cl_intel_err(err, errlen, "collateral: \"%s\" is not a JSON object%s%s", key,
                     *parsed == NULL ? ": " : "", *parsed == NULL ? jerr : "");
        return CL_EJSON;
    }
    *text = cl_strndup(s, n);
    if (*text == NULL)
        return CL_ENOMEM;
    *len = n;
    cl_sha256(s, n, digest);
    return CL_OK;
}

static int sig_hex(const json_t *o, const char *key, uint8_t sig[64], char *err, size_t errlen)
{
    const char *s;
    size_t n;
    CL_TRY(member_str(o, key, &s, &n, err, errlen));
    if (n != 128 || cl_hex_decode(s, n, sig, 64) != CL_OK) {
        cl_intel_err(err, errlen, "collateral: \"%s\" is not 128 hex digits (ECDSA r||s)", key);
        return CL_EFORMAT;
    }
    return CL_OK;
}

static int chain_pem(const json_t *o, const char *key, cl_intel_certs *out, uint8_t *digest,
                     char *err, size_t errlen)
{
    const char *s;
    size_t n;
    CL_TRY(member_str(o, key, &s, &n, err, errlen));
    char what[64];
    snprintf(what, sizeof what, "collateral %s", key);
    CL_TRY(cl_intel_pem_chain(s, n, what, out, err, errlen));
    if (digest != NULL)
        cl_sha256(s, n, digest);
    return CL_OK;
}

static int crl_hex(const json_t *o, const char *key, X509_CRL **out, uint8_t *digest, char *err,
                   size_t errlen)
{
    const char *s;
    size_t n;
    uint8_t *der = NULL;
    size_t dlen = 0;
    CL_TRY(member_str(o, key, &s, &n, err, errlen));
    if (n == 0 || cl_hex_decode_alloc(s, n, &der, &dlen) != CL_OK) {
        cl_intel_err(err, errlen, "collateral: \"%s\" is not hex", key);
        return CL_EFORMAT;
    }
    int rc = cl_intel_crl_from_der(der, dlen, out);
    if (rc < 0)
        cl_intel_err(err, errlen, "collateral: \"%s\" is not a DER X.509 CRL", key);
    else if (digest != NULL)
        cl_sha256(der, dlen, digest);
    cl_free(der);
    return rc;
}

int cl_intel_collateral_parse(const char *json, size_t len, cl_intel_collateral **out, char *err,
                              size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (out == NULL || (json == NULL && len > 0)) {
        cl_intel_err(err, errlen, "invalid argument");
        return CL_EINVAL;
    }
    *out = NULL;
    int rc = CL_OK;
    json_t *root = NULL;
    cl_intel_collateral *c = NULL;
    char jerr[160];
    if (cl_json_parse(json, len, COLLATERAL_MAX, &root, jerr, sizeof jerr) != CL_OK) {
        cl_intel_err(err, errlen, "collateral: %s", jerr);
        return CL_EJSON;
    }
    if (!json_is_object(root)) {
        cl_intel_err(err, errlen, "collateral: top-level value is not an object");
        CL_GUARD_IF(1, CL_EJSON);
    }
    c = cl_calloc(1, sizeof *c);
    CL_GUARD_IF(c == NULL, CL_ENOMEM);
    CL_GUARD(signed_doc(root, "tcb_info", &c->tcb_info, &c->tcb_info_len, &c->tcb_info_json,
                        c->tcbinfohash, err, errlen));
    CL_GUARD(sig_hex(root, "tcb_info_signature", c->tcb_info_sig, err, errlen));
    CL_GUARD(chain_pem(root, "tcb_info_issuer_chain", &c->tcb_info_chain, c->tcbinfocertshash, err,
                       errlen));
    CL_GUARD(signed_doc(root, "qe_identity", &c->qe_identity, &c->qe_identity_len,
                        &c->qe_identity_json, c->qeidhash, err, errlen));
    CL_GUARD(sig_hex(root, "qe_identity_signature", c->qe_identity_sig, err, errlen));
    CL_GUARD(chain_pem(root, "qe_identity_issuer_chain", &c->qe_identity_chain, c->qeidcertshash,
                       err, errlen));
    CL_GUARD(crl_hex(root, "root_ca_crl", &c->root_ca_crl, c->rootcrlhash, err, errlen));
    CL_GUARD(crl_hex(root, "pck_crl", &c->pck_crl, NULL, err, errlen));
    if (json_object_get(root, "pck_crl_issuer_chain") != NULL)
        CL_GUARD(chain_pem(root, "pck_crl_issuer_chain", &c->pck_crl_chain, NULL, err, errlen));
    *out = c;
    c = NULL;
out:
    if (rc < 0 && err != NULL && errlen > 0 && err[0] == '\0')
        cl_intel_err(err, errlen, "collateral: %s", cl_strerror(rc));
    cl_intel_collateral_free(c);
    json_decref(root);
    return rc;
}

/* ---- JSON field access with messages ------------------------------------------------------ */

typedef struct {
    const char *doc; /* "TCB info", "QE identity" */
    char *err;
    size_t errlen;
} jctx;

static int jfail(const jctx *j, const char *path, const char *what)
{
    cl_intel_err(j->err, j->errlen, "%s: \"%s\" %s", j->doc, path, what);
    return CL_EFORMAT;
}

static int jstr(const jctx *j, const json_t *o, const char *key, const char **out)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        return jfail(j, key, v == NULL ? "is missing" : "is not a string");
    *out = json_string_value(v);
    return CL_OK;
}

static int jint(const jctx *j, const json_t *o, const char *key, json_int_t lo, json_int_t hi,
                json_int_t *out)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        return jfail(j, key, v == NULL ? "is missing" : "is not an integer");
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return jfail(j, key, "is out of range");
    *out = x;
    return CL_OK;
}

static int jhex(const jctx *j, const json_t *o, const char *key, uint8_t *out, size_t n)
{
    const char *s;
    CL_TRY(jstr(j, o, key, &s));
    if (strlen(s) != 2 * n || cl_hex_decode(s, 2 * n, out, n) != CL_OK)
        return jfail(j, key, "is not hex of the expected length");
    return CL_OK;
}

static int jarr(const jctx *j, const json_t *o, const char *key, const json_t **out)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_array(v))
        return jfail(j, key, v == NULL ? "is missing" : "is not an array");
    *out = v;
    return CL_OK;
}

/* ---- statuses ----------------------------------------------------------------------------- */

static const char *const known_status[] = {"UpToDate",
                                           "SWHardeningNeeded",
                                           "ConfigurationNeeded",
                                           "ConfigurationAndSWHardeningNeeded",
                                           "OutOfDate",
                                           "OutOfDateConfigurationNeeded",
                                           "Revoked",
                                           "TDRelaunchAdvised",
                                           "TDRelaunchAdvisedConfigurationNeeded"};

static int status_of(const jctx *j, const json_t *level, const char **out)
{
    const char *s;
    CL_TRY(jstr(j, level, "tcbStatus", &s));
    for (size_t i = 0; i < sizeof known_status / sizeof known_status[0]; i++)
        if (strcmp(s, known_status[i]) == 0) {
            *out = known_status[i];
            return CL_OK;
        }
    return jfail(j, "tcbStatus", "holds an unknown status");
}

/* §2.6 step 5: a platform status combined with the QE (or TDX module) status. */
static const char *combine(const char *platform, const char *other)
{
    if (strcmp(other, "Revoked") == 0)
        return "Revoked";
    if (strcmp(other, "OutOfDate") != 0 && strcmp(other, "OutOfDateConfigurationNeeded") != 0)
        return platform;
    if (strcmp(platform, "UpToDate") == 0 || strcmp(platform, "SWHardeningNeeded") == 0 ||
        strcmp(platform, "TDRelaunchAdvised") == 0)
        return "OutOfDate";
    if (strcmp(platform, "ConfigurationNeeded") == 0 ||
        strcmp(platform, "ConfigurationAndSWHardeningNeeded") == 0 ||
        strcmp(platform, "TDRelaunchAdvisedConfigurationNeeded") == 0)
        return "OutOfDateConfigurationNeeded";
    return platform;
}

static void copy_status(char *dst, const char *s) { snprintf(dst, CL_SGX_STATUS_LEN, "%s", s); }

/* Appends the level's advisoryIDs (strings) to arr, skipping duplicates. */
static int add_ids(const jctx *j, const json_t *ids, json_t *arr)
{
    if (ids == NULL)
        return CL_OK;
    if (!json_is_array(ids))
        return jfail(j, "advisoryIDs", "is not an array");
    size_t i, k;
    const json_t *id, *have;
    json_array_foreach(ids, i, id)
    {
        if (!json_is_string(id))
            return jfail(j, "advisoryIDs", "holds a non-string");
        int dup = 0;
        json_array_foreach(arr, k, have) dup |= json_equal(have, id);
        if (!dup && json_array_append_new(arr, json_string(json_string_value(id))) != 0)
            return CL_ENOMEM;
    }
    return CL_OK;
}

static int add_advisories(const jctx *j, const json_t *level, json_t *arr)
{
    return add_ids(j, json_object_get(level, "advisoryIDs"), arr);
}

/* ---- signed documents --------------------------------------------------------------------- */

static int check_signed(const char *doc, const cl_intel_certs *chain, X509_CRL *root_crl,
                        const char *text, size_t len, const uint8_t sig[64], int64_t now, char *err,
                        size_t errlen)
{
    char what[64];
    snprintf(what, sizeof what, "%s issuer chain", doc);
    X509_CRL *crls[1] = {root_crl};
    CL_TRY(cl_intel_chain_verify(chain, crls, 1, now, what, err, errlen));
    if (!cl_intel_cert_cn_is(chain->v[0], "Intel SGX TCB Signing")) {
        cl_intel_err(err, errlen, "%s: signer is not \"Intel SGX TCB Signing\"", what);
        return CL_ECHAIN;
    }
    int rc = cl_intel_ecdsa_verify(X509_get0_pubkey(chain->v[0]), (const uint8_t *)text, len, sig);
    if (rc < 0)
        cl_intel_err(err, errlen, "%s signature does not verify", doc);
    return rc;
}

static int check_window(const jctx *j, const json_t *o, int64_t now)
{
    const char *is, *nu;
    int64_t ti, tn;
    CL_TRY(jstr(j, o, "issueDate", &is));
    CL_TRY(jstr(j, o, "nextUpdate", &nu));
    if (cl_intel_parse_date(is, &ti) != CL_OK)
        return jfail(j, "issueDate", "is not YYYY-MM-DDTHH:MM:SSZ");
    if (cl_intel_parse_date(nu, &tn) != CL_OK)
        return jfail(j, "nextUpdate", "is not YYYY-MM-DDTHH:MM:SSZ");
    if (now < ti) {
        cl_intel_err(j->err, j->errlen, "%s is not yet valid (issueDate %s)", j->doc, is);
        return CL_EEXPIRED;
    }
    if (now > tn) {
        cl_intel_err(j->err, j->errlen, "%s has expired (nextUpdate %s)", j->doc, nu);
        return CL_EEXPIRED;
    }
    return CL_OK;
}

/* ---- QE identity (§2.5 step 5) ------------------------------------------------------------ */

static int qe_identity(const struct cl_intel_collateral *c, const cl_sgx_quote *q, int64_t now,
                       const char **status, json_t *adv, char *err, size_t errlen)
{
    const jctx j = {"QE identity", err, errlen};
    const json_t *o = c->qe_identity_json;
    const char *id;
    json_int_t version, prodid;
    const int tdx = q->tee_type == CL_SGX_TEE_TDX;
    CL_TRY(jstr(&j, o, "id", &id));
    CL_TRY(jint(&j, o, "version", 0, 1000, &version));
    if (version != 2) {
        cl_intel_err(err, errlen, "QE identity version %d is not supported (2)", (int)version);
        return CL_EUNSUPPORTED;
    }
    if (strcmp(id, tdx ? "TD_QE" : "QE") != 0) {
        cl_intel_err(err, errlen, "QE identity id \"%s\" does not fit a %s quote (\"%s\")", id,
                     tdx ? "TDX" : "SGX", tdx ? "TD_QE" : "QE");
        return CL_ECHAIN;
    }
    CL_TRY(check_window(&j, o, now));
    uint8_t misc[4], misc_mask[4], attr[16], attr_mask[16], mrsigner[32];
    CL_TRY(jhex(&j, o, "miscselect", misc, 4));
    CL_TRY(jhex(&j, o, "miscselectMask", misc_mask, 4));
    CL_TRY(jhex(&j, o, "attributes", attr, 16));
    CL_TRY(jhex(&j, o, "attributesMask", attr_mask, 16));
    CL_TRY(jhex(&j, o, "mrsigner", mrsigner, 32));
    CL_TRY(jint(&j, o, "isvprodid", 0, 65535, &prodid));

    const uint8_t *r = q->qe_report;
    /* miscselect values are written as big-endian hex numbers; the report holds a LE u32. */
    uint32_t want_misc =
        (uint32_t)misc[0] << 24 | (uint32_t)misc[1] << 16 | (uint32_t)misc[2] << 8 | misc[3];
    uint32_t mask = (uint32_t)misc_mask[0] << 24 | (uint32_t)misc_mask[1] << 16 |
                    (uint32_t)misc_mask[2] << 8 | misc_mask[3];
    if ((cl_load_u32(r + 16) & mask) != (want_misc & mask)) {
        cl_intel_err(err, errlen, "QE identity: QE report miscselect does not match");
        return CL_ECHAIN;
    }
    for (int i = 0; i < 16; i++)
        if ((r[48 + i] & attr_mask[i]) != (attr[i] & attr_mask[i])) {
            cl_intel_err(err, errlen, "QE identity: QE report attributes do not match");
            return CL_ECHAIN;
        }
    if (r[48] & 0x2) {
        cl_intel_err(err, errlen, "QE identity: the quoting enclave is in debug mode");
        return CL_ECHAIN;
    }
    if (!cl_ct_equal(r + 128, mrsigner, 32)) {
        cl_intel_err(err, errlen,
                     "QE identity: QE report mr_signer is not the identity's mrsigner");
        return CL_ECHAIN;
    }
    uint16_t qe_prod = (uint16_t)(r[256] | r[257] << 8), qe_svn = (uint16_t)(r[258] | r[259] << 8);
    if (qe_prod != prodid) {
        cl_intel_err(err, errlen, "QE identity: QE isv_prod_id %u is not %d", qe_prod, (int)prodid);
        return CL_ECHAIN;
    }
    const json_t *levels, *lv;
    size_t i;
    CL_TRY(jarr(&j, o, "tcbLevels", &levels));
    json_array_foreach(levels, i, lv)
    {
        const json_t *tcb = json_object_get(lv, "tcb");
        json_int_t svn;
        if (!json_is_object(tcb))
            return jfail(&j, "tcbLevels[].tcb", "is not an object");
        CL_TRY(jint(&j, tcb, "isvsvn", 0, 65535, &svn));
        if (qe_svn >= svn) {
            CL_TRY(status_of(&j, lv, status));
            return add_advisories(&j, lv, adv);
        }
    }
    cl_intel_err(err, errlen, "QE identity: no TCB level for QE isv_svn %u (TCB not supported)",
                 qe_svn);
    return CL_EUNSUPPORTED;
}

/* ---- TCB info (§2.6) ---------------------------------------------------------------------- */

/* The 16 SGX (or TDX) component SVNs of a level's "tcb" object. v3: arrays of {"svn": n};
 * v2 (SGX only): members sgxtcbcomp01svn … sgxtcbcomp16svn. */
static int components(const jctx *j, const json_t *tcb, int version, const char *arrname,
                      uint8_t out[16])
{
    if (version == 2) {
        for (int i = 0; i < 16; i++) {
            char key[32];
            json_int_t v;
            snprintf(key, sizeof key, "sgxtcbcomp%02dsvn", i + 1);
            CL_TRY(jint(j, tcb, key, 0, 255, &v));
            out[i] = (uint8_t)v;
        }
        return CL_OK;
    }
    const json_t *arr, *e;
    size_t i;
    CL_TRY(jarr(j, tcb, arrname, &arr));
    if (json_array_size(arr) != 16)
        return jfail(j, arrname, "does not have 16 entries");
    json_array_foreach(arr, i, e)
    {
        json_int_t v;
        if (!json_is_object(e))
            return jfail(j, arrname, "holds a non-object");
        CL_TRY(jint(j, e, "svn", 0, 255, &v));
        out[i] = (uint8_t)v;
    }
    return CL_OK;
}

/* TDX module identity (§2.6 step 3) for a quote whose tee_tcb_svn[1] > 0. */
static int tdx_module_identity(const jctx *j, const json_t *o, const cl_sgx_quote *q,
                               cl_sgx_result *res, const char **mstatus, json_t *adv)
{
    const json_t *ids, *idn;
    size_t i;
    char want[16];
    snprintf(want, sizeof want, "TDX_%02X", q->tee_tcb_svn[1]);
    CL_TRY(jarr(j, o, "tdxModuleIdentities", &ids));
    json_array_foreach(ids, i, idn)
    {
        const char *id;
        if (!json_is_object(idn))
            return jfail(j, "tdxModuleIdentities", "holds a non-object");
        CL_TRY(jstr(j, idn, "id", &id));
        if (strcasecmp(id, want) != 0)
            continue;
        uint8_t mrsigner[48], attr[8], mask[8];
        CL_TRY(jhex(j, idn, "mrsigner", mrsigner, 48));
        CL_TRY(jhex(j, idn, "attributes", attr, 8));
        CL_TRY(jhex(j, idn, "attributesMask", mask, 8));
        if (!cl_ct_equal(mrsigner, q->mr_signer_seam, 48)) {
            cl_intel_err(j->err, j->errlen,
                         "TCB info: TDX module identity %s mrsigner is not the quote's "
                         "mr_signer_seam",
                         id);
            return CL_ECHAIN;
        }
        for (int k = 0; k < 8; k++)
            if ((q->seam_attributes[k] & mask[k]) != (attr[k] & mask[k])) {
                cl_intel_err(j->err, j->errlen,
                             "TCB info: TDX module identity %s attributes do not match", id);
                return CL_ECHAIN;
            }
        snprintf(res->tdx_module_id, sizeof res->tdx_module_id, "%s", id);
        const json_t *levels, *lv;
        size_t k;
        CL_TRY(jarr(j, idn, "tcbLevels", &levels));
        json_array_foreach(levels, k, lv)
        {
            const json_t *tcb = json_object_get(lv, "tcb");
            json_int_t svn;
            if (!json_is_object(tcb))
                return jfail(j, "tdxModuleIdentities[].tcbLevels[].tcb", "is not an object");
            CL_TRY(jint(j, tcb, "isvsvn", 0, 255, &svn));
            if (q->tee_tcb_svn[0] >= svn) {
                CL_TRY(status_of(j, lv, mstatus));
                return add_advisories(j, lv, adv);
            }
        }
        cl_intel_err(j->err, j->errlen,
                     "TCB info: TDX module %s has no TCB level for SVN %u (TCB not supported)", id,
                     q->tee_tcb_svn[0]);
        return CL_EUNSUPPORTED;
    }
    cl_intel_err(j->err, j->errlen, "TCB info has no TDX module identity %s", want);
    return CL_EUNSUPPORTED;
}

static int tcb_info(const struct cl_intel_collateral *c, const cl_sgx_quote *q,
                    const cl_intel_pck_ext *pck, int64_t now, cl_sgx_result *res,
                    const char **pstatus, const char **mstatus, json_t *adv, char *err,
                    size_t errlen)
{
    const jctx j = {"TCB info", err, errlen};
    const json_t *o = c->tcb_info_json;
    const int tdx = q->tee_type == CL_SGX_TEE_TDX;
    json_int_t version, tcb_type, evalnum;
    CL_TRY(jint(&j, o, "version", 0, 1000, &version));
    const json_t *idv = json_object_get(o, "id");
    const char *id = json_is_string(idv) ? json_string_value(idv) : NULL;
    if (version == 3) {
        if (id == NULL)
            return jfail(&j, "id", "is missing");
    } else if (!(version == 2 && id == NULL && !tdx)) {
        cl_intel_err(err, errlen, "TCB info version %d is not supported for %s quotes",
                     (int)version, tdx ? "TDX" : "SGX");
        return CL_EUNSUPPORTED;
    }
    if (id != NULL && strcmp(id, tdx ? "TDX" : "SGX") != 0) {
        cl_intel_err(err, errlen, "TCB info id \"%s\" does not fit a %s quote", id,
                     tdx ? "TDX" : "SGX");
        return CL_ECHAIN;
    }
    CL_TRY(check_window(&j, o, now));
    uint8_t fmspc[6], pceid[2];
    CL_TRY(jhex(&j, o, "fmspc", fmspc, 6));
    CL_TRY(jhex(&j, o, "pceId", pceid, 2));
    CL_TRY(jint(&j, o, "tcbType", 0, 1000, &tcb_type));
    CL_TRY(jint(&j, o, "tcbEvaluationDataNumber", 0, INT32_MAX, &evalnum));
    if (tcb_type != 0) {
        cl_intel_err(err, errlen, "TCB info tcbType %d is not supported (0)", (int)tcb_type);
        return CL_EUNSUPPORTED;
    }
    if (!cl_ct_equal(fmspc, pck->fmspc, 6)) {
        char a[13], b[13];
        cl_hex_encode(fmspc, 6, a);
        cl_hex_encode(pck->fmspc, 6, b);
        cl_intel_err(err, errlen, "TCB info is for FMSPC %s, the PCK certificate has FMSPC %s", a,
                     b);
        return CL_ECHAIN;
    }
    if (!cl_ct_equal(pceid, pck->pce_id, 2)) {
        cl_intel_err(err, errlen, "TCB info PCE-ID does not match the PCK certificate's");
        return CL_ECHAIN;
    }
    res->tcb_eval_data_number = evalnum;

    int start = 0;
    if (tdx) {
        const json_t *mod = json_object_get(o, "tdxModule");
        if (mod != NULL) {
            uint8_t mrsigner[48], attr[8], mask[8];
            const jctx jm = {"TCB info tdxModule", err, errlen};
            if (!json_is_object(mod))
                return jfail(&j, "tdxModule", "is not an object");
            CL_TRY(jhex(&jm, mod, "mrsigner", mrsigner, 48));
            CL_TRY(jhex(&jm, mod, "attributes", attr, 8));
            CL_TRY(jhex(&jm, mod, "attributesMask", mask, 8));
            int ok = cl_ct_equal(mrsigner, q->mr_signer_seam, 48);
            for (int k = 0; k < 8; k++)
                ok &= (q->seam_attributes[k] & mask[k]) == (attr[k] & mask[k]);
            if (!ok) {
                cl_intel_err(err, errlen,
                             "TCB info: the TDX module (mr_signer_seam, seam_attributes) does not "
                             "match tdxModule");
                return CL_ECHAIN;
            }
        }
        if (q->tee_tcb_svn[1] > 0) {
            CL_TRY(tdx_module_identity(&j, o, q, res, mstatus, adv));
            start = 2;
        }
    }

    const json_t *levels, *lv;
    size_t i;
    CL_TRY(jarr(&j, o, "tcbLevels", &levels));
    json_array_foreach(levels, i, lv)
    {
        const json_t *tcb = json_object_get(lv, "tcb");
        uint8_t comp[16];
        json_int_t pcesvn;
        if (!json_is_object(tcb))
            return jfail(&j, "tcbLevels[].tcb", "is not an object");
        CL_TRY(components(&j, tcb, (int)version, "sgxtcbcomponents", comp));
        CL_TRY(jint(&j, tcb, "pcesvn", 0, 65535, &pcesvn));
        int ok = pck->pce_svn >= pcesvn;
        for (int k = 0; k < 16; k++)
            ok &= pck->comp[k] >= comp[k];
        if (ok && tdx) {
            uint8_t tcomp[16];
            CL_TRY(components(&j, tcb, (int)version, "tdxtcbcomponents", tcomp));
            for (int k = start; k < 16; k++)
                ok &= tcomp[k] <= q->tee_tcb_svn[k];
        }
        if (!ok)
            continue;
        CL_TRY(status_of(&j, lv, pstatus));
        const char *date = NULL;
        if (jstr(&j, lv, "tcbDate", &date) == CL_OK)
            snprintf(res->tcb_date, sizeof res->tcb_date, "%s", date);
        return add_advisories(&j, lv, adv);
    }
    cl_intel_err(err, errlen,
                 "TCB info: no TCB level matches the platform (PCK PCESVN %u%s); TCB not "
                 "supported",
                 pck->pce_svn, tdx ? " and the TD's tee_tcb_svn" : "");
    return CL_EUNSUPPORTED;
}

static int add_hash(json_t *obj, const char *key, const uint8_t d[32])
{
    char hex[65];
    cl_hex_encode(d, 32, hex);
    json_t *s = json_string(hex);
    if (s == NULL || json_object_set_new(obj, key, s) != 0)
        return CL_ENOMEM;
    return CL_OK;
}

int cl_intel_tcb_evaluate(const struct cl_intel_collateral *c, const cl_sgx_quote *q,
                          const cl_intel_pck_ext *pck, int64_t now, cl_sgx_result *res, char *err,
                          size_t errlen)
{
    CL_ENSURE(c != NULL && q != NULL && pck != NULL && res != NULL &&
                  json_is_object(res->collateral_hashes),
              CL_EINVAL);
    int rc = CL_OK;
    json_t *adv = json_array();
    json_t *qe_adv = json_array();
    CL_GUARD_IF(adv == NULL || qe_adv == NULL, CL_ENOMEM);

    CL_GUARD(check_signed("TCB info", &c->tcb_info_chain, c->root_ca_crl, c->tcb_info,
                          c->tcb_info_len, c->tcb_info_sig, now, err, errlen));
    CL_GUARD(check_signed("QE identity", &c->qe_identity_chain, c->root_ca_crl, c->qe_identity,
                          c->qe_identity_len, c->qe_identity_sig, now, err, errlen));

    const char *qstatus = NULL, *pstatus = NULL, *mstatus = NULL;
    CL_GUARD(qe_identity(c, q, now, &qstatus, qe_adv, err, errlen));
    CL_GUARD(tcb_info(c, q, pck, now, res, &pstatus, &mstatus, adv, err, errlen));
    /* QE advisories after the platform's and the module's. */
    const jctx j = {"QE identity", err, errlen};
    CL_GUARD(add_ids(&j, qe_adv, adv));

    const char *final = combine(pstatus, qstatus);
    if (mstatus != NULL)
        final = combine(final, mstatus);
    copy_status(res->platform_tcb_status, pstatus);
    copy_status(res->qe_tcb_status, qstatus);
    if (mstatus != NULL)
        copy_status(res->tdx_module_tcb_status, mstatus);
    copy_status(res->tcb_status, final);

    json_t *h = res->collateral_hashes;
    CL_GUARD(add_hash(h, "tcbinfohash", c->tcbinfohash));
    CL_GUARD(add_hash(h, "tcbinfocertshash", c->tcbinfocertshash));
    CL_GUARD(add_hash(h, "tcbinfocrlhash", c->rootcrlhash));
    CL_GUARD(add_hash(h, "qeidhash", c->qeidhash));
    CL_GUARD(add_hash(h, "qeidcertshash", c->qeidcertshash));
    CL_GUARD(add_hash(h, "qeidcrlhash", c->rootcrlhash));

    if (strcmp(final, "Revoked") == 0) {
        cl_intel_err(err, errlen, "TCB evaluation: status Revoked (platform %s, QE %s%s%s)",
                     pstatus, qstatus, mstatus != NULL ? ", TDX module " : "",
                     mstatus != NULL ? mstatus : "");
        CL_GUARD_IF(1, CL_EREVOKED);
    }
    res->advisory_ids = adv;
    adv = NULL;
    res->tcb_evaluated = 1;
out:
    json_decref(adv);
    json_decref(qe_adv);
    return rc;
}
