/*
 * sgx.h — Intel SGX DCAP quotes (v3, v4), Open Enclave remote reports, Intel TDX quotes (v4, v5):
 * parsing, cryptographic verification up to the pinned Intel SGX Root CA key, Intel collateral
 * (TCB info, QE identity, CRLs) evaluation, and the MAA claims (spec/evidence-formats.md §1-§4,
 * attestation-api.md §3.6 and §5.4, attestation-policy.md §6).
 *
 * Ownership:
 *  - cl_sgx_quote is a VIEW: every pointer in it points into the caller's buffer given to
 *    cl_sgx_quote_parse (or cl_oe_report_unwrap), which must outlive the view. Nothing to free.
 *  - cl_intel_collateral is allocated by cl_intel_collateral_parse (it copies what it needs from
 *    the JSON text) and released with cl_intel_collateral_free (NULL is a no-op). It is read-only
 *    afterwards and may be shared by concurrent verifications.
 *  - cl_sgx_result is filled by cl_sgx_quote_verify (which first zeroes it); after success the
 *    caller releases it with cl_sgx_result_free (it owns two jansson references). After a failure
 *    it holds nothing (cl_sgx_result_free is still safe to call).
 *  - cl_sgx_claims / cl_sgx_legacy_claims add new members to a caller-owned JSON object.
 *  - Every function writes a precise, NUL-terminated message into err (errlen > 0) on failure;
 *    err may be NULL.
 *
 * Trust anchor: the Intel SGX Root CA public key (cl_root_intel_sgx_pem in roots.h). Chains may
 * embed either issuance of the root (2033 or 2049): the embedded root must carry the pinned key
 * and a valid self-signature; the path itself is validated against the pinned certificate.
 */
#ifndef CLEDGER_ATTEST_SGX_H
#define CLEDGER_ATTEST_SGX_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define CL_SGX_TEE_SGX 0x00000000u
#define CL_SGX_TEE_TDX 0x00000081u

#define CL_SGX_REPORT_BODY_LEN 384 /* SGX enclave report body (ISV and QE) */
#define CL_TDX_TD10_BODY_LEN 584   /* TD report, TDX 1.0 */
#define CL_TDX_TD15_BODY_LEN 648   /* TD report, TDX 1.5 (v5 body type 3) */

/* Parsed view of a quote (spec/evidence-formats.md §2.1-§2.4, §4.1-§4.2). */
typedef struct cl_sgx_quote {
    const uint8_t *raw; /* start of the quote (header) */
    size_t raw_len;     /* bytes given to the parser */
    size_t quote_len;   /* header .. end of signature data (the rest is ignored trailing data) */

    /* header */
    uint16_t version;            /* 3, 4 or 5 */
    uint16_t att_key_type;       /* 2 = ECDSA P-256 */
    uint32_t tee_type;           /* 0 SGX, 0x81 TDX (v3: always 0) */
    uint16_t qe_svn;             /* v3 only, else 0 */
    uint16_t pce_svn;            /* v3 only, else 0 */
    const uint8_t *qe_vendor_id; /* 16 */
    const uint8_t *user_data;    /* 20 */

    /* body */
    uint16_t body_type; /* v5 body type; v3/v4: 1 (SGX) or 2 (TDX 1.0) */
    const uint8_t *body;
    size_t body_len;
    size_t signed_len; /* the ISV/TD signature covers raw[0 .. signed_len) */

    /* SGX enclave report (tee_type 0); NULL for TDX */
    const uint8_t *enclave_report; /* 384 */
    const uint8_t *cpu_svn;        /* 16 */
    uint32_t misc_select;
    const uint8_t *isv_ext_prod_id; /* 16 (KSS) */
    const uint8_t *attributes;      /* 16: flags u64 || xfrm u64 */
    uint64_t attr_flags;
    const uint8_t *mr_enclave; /* 32 */
    const uint8_t *mr_signer;  /* 32 */
    const uint8_t *config_id;  /* 64 (KSS) */
    uint16_t isv_prod_id, isv_svn, config_svn;
    const uint8_t *isv_family_id; /* 16 (KSS) */
    int debug;                    /* SGX: flags bit 1; TDX: td_attributes bit 0 */
    int kss;                      /* SGX: flags bit 7 */

    /* TDX TD report (tee_type 0x81); NULL for SGX */
    const uint8_t *td_report;       /* 584 or 648 */
    const uint8_t *tee_tcb_svn;     /* 16 */
    const uint8_t *mr_seam;         /* 48 */
    const uint8_t *mr_signer_seam;  /* 48 */
    const uint8_t *seam_attributes; /* 8 */
    const uint8_t *td_attributes;   /* 8 */
    uint64_t td_attr;               /* td_attributes as a little-endian u64 */
    const uint8_t *xfam;            /* 8 */
    const uint8_t *mr_td;           /* 48 */
    const uint8_t *mr_config_id;    /* 48 */
    const uint8_t *mr_owner;        /* 48 */
    const uint8_t *mr_owner_config; /* 48 */
    const uint8_t *rtmr[4];         /* 48 each */
    const uint8_t *tee_tcb_svn2;    /* 16, TDX 1.5 only, else NULL */
    const uint8_t *mr_servicetd;    /* 48, TDX 1.5 only, else NULL */

    /* both */
    const uint8_t *report_data; /* 64 */

    /* signature data */
    uint32_t sig_data_len;
    const uint8_t *isv_signature; /* 64: r || s (big-endian) */
    const uint8_t *attest_key;    /* 64: x || y */
    uint16_t cert_type;           /* outer certification data type: 5 (v3) or 6 (v4/v5) */
    const uint8_t *qe_report;     /* 384 */
    const uint8_t *qe_report_sig; /* 64 */
    const uint8_t *qe_auth_data;
    size_t qe_auth_len;
    const char *pck_chain; /* PEM text of the PCK chain (type 5 data, trailing NUL included) */
    size_t pck_chain_len;
} cl_sgx_quote;

/* Parses a quote. Bytes after the signature data are tolerated (q->quote_len < n).
 * CL_ETRUNC: the input ends before a field it announces; CL_EFORMAT: inconsistent lengths or
 * values; CL_EUNSUPPORTED: other versions, key types, TEE types, body types, certification types
 * or a non-Intel QE vendor. */
CL_MUST_CHECK int cl_sgx_quote_parse(const uint8_t *p, size_t n, cl_sgx_quote *q, char *err,
                                     size_t errlen);

/* Open Enclave remote report: 16-byte header (u32 version 1, u32 type 2 = SGX remote, u64 size)
 * followed by exactly `size` bytes of SGX quote; *quote points into p. */
CL_MUST_CHECK int cl_oe_report_unwrap(const uint8_t *p, size_t n, const uint8_t **quote,
                                      size_t *qlen, char *err, size_t errlen);

/* Intel collateral in the JSON form of the vector files: members tcb_info, qe_identity (the exact
 * signed JSON texts, as strings), tcb_info_signature, qe_identity_signature (hex r||s),
 * tcb_info_issuer_chain, qe_identity_issuer_chain, pck_crl_issuer_chain (PEM), root_ca_crl,
 * pck_crl (hex DER). pck_crl_issuer_chain is optional; other members are ignored. The signed
 * documents are only checked to be JSON objects here; signatures are checked by verify. */
typedef struct cl_intel_collateral cl_intel_collateral;
CL_MUST_CHECK int cl_intel_collateral_parse(const char *json, size_t len, cl_intel_collateral **out,
                                            char *err, size_t errlen);
void cl_intel_collateral_free(cl_intel_collateral *c);

#define CL_SGX_STATUS_LEN 48

typedef struct {
    int tcb_evaluated; /* 1 when collateral was given and TCB evaluation ran */
    /* Final status (platform combined with the QE identity and, for TDX, the module identity). */
    char tcb_status[CL_SGX_STATUS_LEN];
    char platform_tcb_status[CL_SGX_STATUS_LEN]; /* the selected TCB level's own status */
    char qe_tcb_status[CL_SGX_STATUS_LEN];
    char tdx_module_tcb_status[CL_SGX_STATUS_LEN]; /* TDX with module identity, else "" */
    char tdx_module_id[16];                        /* "TDX_01", else "" */
    char tcb_date[32];                             /* tcbDate of the selected platform level */
    int64_t tcb_eval_data_number;
    json_t *advisory_ids; /* array of strings (platform, QE, module; no duplicates) or NULL */
    json_t
        *collateral_hashes; /* object of lowercase-hex SHA-256 values; never NULL after success */
    int crl_checked;        /* PCK chain checked against the collateral's CRLs */

    /* From the PCK leaf certificate (SGX Extensions, OID 1.2.840.113741.1.13.1). */
    uint8_t fmspc[6];
    uint8_t pce_id[2];
    uint8_t cpu_svn[16];
    uint8_t tcb_comp[16];
    uint16_t pce_svn;
    int64_t pck_not_before, pck_not_after; /* unix time */
    size_t trailing_bytes;                 /* ignored bytes after the signature data */
} cl_sgx_result;

void cl_sgx_result_free(cl_sgx_result *r);

/* Full verification at time now_unix (spec/evidence-formats.md §2.5, §4.3). Without collateral
 * (coll == NULL): PCK chain, QE report signature, QE binding, ISV/TD signature; no revocation, no
 * TCB evaluation (res->tcb_evaluated = 0). With collateral additionally: TCB-info and QE-identity
 * signatures and chains, both CRLs, validity windows, FMSPC/PCE-ID, platform/TDX-module/QE TCB
 * levels. Errors: CL_ECHAIN (chain, root key, issuer names, FMSPC/QE identity mismatch),
 * CL_EEXPIRED (certificate, CRL or collateral outside its validity at now_unix), CL_EREVOKED
 * (revoked certificate or TCB status Revoked), CL_ESIG (a signature or the QE binding), CL_EPEM
 * (malformed certificate), CL_EFORMAT/CL_EJSON (malformed collateral), CL_EUNSUPPORTED (no matching
 * TCB level, unsupported collateral version). err names the failed step. */
CL_MUST_CHECK int cl_sgx_quote_verify(const cl_sgx_quote *q, const cl_intel_collateral *coll,
                                      int64_t now_unix, cl_sgx_result *res, char *err,
                                      size_t errlen);
/* The same with a memo of PCK-chain verifications (attest/vcache.h): steps 1-3 (PCK chain and
 * CRLs, PCK extensions, QE report signature) are skipped when these exact chain, QE report,
 * signature and collateral were verified before and `now_unix` is inside the window where that
 * result still holds; the QE binding, QE identity, ISV/TD signature and TCB evaluation always
 * run. cache may be NULL. */
struct cl_vcache;
CL_MUST_CHECK int cl_sgx_quote_verify_cached(const cl_sgx_quote *q, const cl_intel_collateral *coll,
                                             int64_t now_unix, struct cl_vcache *cache,
                                             cl_sgx_result *res, char *err, size_t errlen);

/* Adds the evidence-specific claims of attestation-api.md §5.4 for the quote's TEE to `claims`.
 * res may be NULL (nothing verified with collateral: only quotehash in x-ms-sgx-collateral, no
 * TCB status claims). evidence_sha256 = SHA-256 of the evidence as submitted (used by SGX for
 * quotehash). Does not add x-ms-attestation-type, ehd/runtime claims or legacy `$` claims. */
CL_MUST_CHECK int cl_sgx_claims(const cl_sgx_quote *q, const cl_sgx_result *res,
                                const uint8_t evidence_sha256[32], json_t *claims);

/* The legacy SGX claims (attestation-policy.md §6) without their `$`: is-debuggable,
 * sgx-mrsigner, sgx-mrenclave, product-id, svn, tee ("sgx"). CL_EINVAL for TDX quotes. */
CL_MUST_CHECK int cl_sgx_legacy_claims(const cl_sgx_quote *q, json_t *claims);

#endif
