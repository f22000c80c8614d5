/*
 * snp.h — AMD SEV-SNP attestation reports as /attest/SevSnpVm receives them
 * (spec/evidence-formats.md §5, spec/attestation-api.md §3.4 and §5.4).
 *
 * Ownership. cl_snp_report is a plain value: every field is copied out of the report bytes, it
 * holds no pointers, and the caller allocates it (stack is fine). cl_snp_wrapper_parse allocates
 * a cl_snp_evidence (cl_malloc) that owns its decoded report, certificate-chain text and
 * endorsement text; cl_snp_evidence_free releases everything. The accessors borrow: their
 * results live as long as the evidence object. Input buffers (json, raw report, chain PEM) are
 * borrowed for the duration of the call only. cl_snp_claims adds members to a caller-owned
 * jansson object and keeps no reference to the report.
 *
 * Trust. The only trust anchors are the ARKs pinned in roots.h (cl_amd_roots). A supplied ARK
 * selects the product line and must be byte- or key-identical to a pinned ARK; a chain that omits
 * the ARK (or the ASK and the ARK) is completed from roots.h using the VCEK's issuer name.
 *
 * Errors. Every function returns CL_OK or a negative cl_err and, on failure, writes a precise
 * NUL-terminated message into err (if err != NULL and errlen > 0). Codes used:
 *   CL_EFORMAT      malformed report, wrapper, PEM, or a VCEK lacking a required AMD extension
 *   CL_EBASE64      a wrapper member is not base64/base64url
 *   CL_EUNSUPPORTED report version / signature algorithm / signing key (VLEK) / product (Turin)
 *                   that cledger does not verify
 *   CL_ECHAIN       chain does not lead to a pinned ARK, is missing, or the VCEK does not endorse
 *                   this report (TCB or hwID mismatch, wrong key type)
 *   CL_EEXPIRED     a certificate is outside its validity period at now_unix
 *   CL_ESIG         the report signature does not verify with the VCEK
 *   CL_ENOMEM, CL_EINVAL
 */
#ifndef CLEDGER_ATTEST_SNP_H
#define CLEDGER_ATTEST_SNP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define CL_SNP_REPORT_LEN 1184  /* 0x4A0 */
#define CL_SNP_SIGNED_LEN 0x2A0 /* the signature covers bytes 0x000..0x29F */
#define CL_SNP_SIG_COMPONENT_LEN 72

/* Policy bits (evidence-formats.md §5.1). */
#define CL_SNP_POLICY_SMT (1ull << 16)
#define CL_SNP_POLICY_RESERVED_ONE (1ull << 17)
#define CL_SNP_POLICY_MIGRATE_MA (1ull << 18)
#define CL_SNP_POLICY_DEBUG (1ull << 19)

/* signer_info (0x048) bits. */
#define CL_SNP_SIGNER_AUTHOR_KEY_EN 0x1u
#define CL_SNP_SIGNER_MASK_CHIP_KEY 0x2u
#define CL_SNP_SIGNER_KEY_VCEK 0u
#define CL_SNP_SIGNER_KEY_VLEK 1u
#define CL_SNP_SIGNER_KEY_NONE 7u

/* A TCB_VERSION (Milan/Genoa layout): the raw u64 and its SPL bytes. */
typedef struct {
    uint64_t raw;
    uint8_t bootloader; /* byte 0 */
    uint8_t tee;        /* byte 1 */
    uint8_t snp;        /* byte 6 */
    uint8_t microcode;  /* byte 7 */
} cl_snp_tcb;

typedef struct cl_snp_report {
    uint32_t version;
    uint32_t guest_svn;
    uint64_t policy;
    uint8_t family_id[16];
    uint8_t image_id[16];
    uint32_t vmpl;
    uint32_t signature_algo; /* 1 = ECDSA P-384 with SHA-384 */
    cl_snp_tcb current_tcb;
    uint64_t platform_info;
    uint32_t signer_info; /* raw 0x048 */
    int author_key_en;    /* signer_info bit 0 */
    int mask_chip_key;    /* signer_info bit 1 */
    unsigned signing_key; /* signer_info bits 2..4: 0 VCEK, 1 VLEK, 7 none */
    uint8_t report_data[64];
    uint8_t measurement[48];
    uint8_t host_data[32];
    uint8_t id_key_digest[48];
    uint8_t author_key_digest[48];
    uint8_t report_id[32];
    uint8_t report_id_ma[32];
    cl_snp_tcb reported_tcb;
    uint8_t cpuid_fam_id; /* version >= 3; zero otherwise */
    uint8_t cpuid_mod_id;
    uint8_t cpuid_step;
    uint8_t chip_id[64];
    cl_snp_tcb committed_tcb;
    uint8_t current_build, current_minor, current_major;
    uint8_t committed_build, committed_minor, committed_major;
    cl_snp_tcb launch_tcb;
    uint64_t launch_mit_vector;              /* version >= 5; zero otherwise */
    uint64_t current_mit_vector;             /* version >= 5; zero otherwise */
    uint8_t sig_r[CL_SNP_SIG_COMPONENT_LEN]; /* little-endian, as in the report */
    uint8_t sig_s[CL_SNP_SIG_COMPONENT_LEN]; /* little-endian, as in the report */
} cl_snp_report;

/* Parse exactly CL_SNP_REPORT_LEN bytes (§5.1, §5.2 step 1): version 1, 2, 3 or 5
 * (CL_EUNSUPPORTED otherwise), signature_algo 1 (CL_EUNSUPPORTED otherwise), policy bit 17 set,
 * reserved ranges zero (0x04C..0x04F; 0x188..0x19F, or 0x18B..0x19F from version 3;
 * 0x1F8..0x207 before version 5; 0x208..0x29F) and the unused signature tail 0x330..0x49F zero.
 * r is written only on success. */
CL_MUST_CHECK int cl_snp_report_parse(const uint8_t *p, size_t n, cl_snp_report *r, char *err,
                                      size_t errlen);

/* The decoded `report` member of a SevSnpVm request (attestation-api.md §3.4). */
typedef struct cl_snp_evidence cl_snp_evidence;

/* UTF-8 JSON object {"SnpReport": b64url, "VcekCertChain": b64url(PEM...), "Endorsements":
 * b64url(JSON)}; base64 in either alphabet, padding optional, whitespace around tokens allowed,
 * unknown members ignored, member names case-sensitive. SnpReport is required and is parsed
 * with cl_snp_report_parse. VcekCertChain may be absent or empty (then cl_snp_verify fails with
 * CL_ECHAIN and a caller may fetch the VCEK itself and use cl_snp_verify_report). Endorsements,
 * when present, must decode to a JSON object; its text is kept verbatim. */
CL_MUST_CHECK int cl_snp_wrapper_parse(const uint8_t *json, size_t n, cl_snp_evidence **out,
                                       char *err, size_t errlen);
void cl_snp_evidence_free(cl_snp_evidence *e);
const cl_snp_report *cl_snp_evidence_report(const cl_snp_evidence *e);
/* The 1184 raw report bytes. */
const uint8_t *cl_snp_evidence_raw(const cl_snp_evidence *e);
/* Decoded VcekCertChain PEM text (NUL-terminated) and its length, or NULL when absent. */
const char *cl_snp_evidence_chain(const cl_snp_evidence *e, size_t *len);
/* JSON text of the decoded Endorsements member (NUL-terminated), or NULL when absent. */
const char *cl_snp_evidence_endorsements(const cl_snp_evidence *e);

/* Full verification of a parsed wrapper at time now_unix (seconds since the epoch): see
 * cl_snp_verify_report, with the wrapper's report and chain. */
CL_MUST_CHECK int cl_snp_verify(const cl_snp_evidence *e, int64_t now_unix, char *err,
                                size_t errlen);
/* The same with a memo of chain verifications (attest/vcache.h): when these exact chain bytes
 * were verified before (VCEK -> ASK -> pinned ARK, VCEK shape) and every certificate is valid at
 * now_unix, only the report signature and the VCEK TCB/hwID match are checked. cache may be NULL.
 */
struct cl_vcache;
CL_MUST_CHECK int cl_snp_verify_cached(const cl_snp_evidence *e, int64_t now_unix,
                                       struct cl_vcache *cache, char *err, size_t errlen);

/* Verify a raw report against a PEM chain (VCEK, then optionally ASK, then optionally ARK;
 * whitespace between certificates allowed, nothing else). `r` may be NULL; when given it must be
 * what cl_snp_report_parse returns for raw_report (CL_EINVAL otherwise). Steps, in order:
 *  1. parse raw_report; the signing key must be the VCEK (VLEK: CL_EUNSUPPORTED);
 *  2. product line: the supplied ARK must equal a pinned ARK (DER or public key), else the
 *     product comes from the VCEK's issuer CN (SEV-Milan / SEV-Genoa / SEV-Turin) and the
 *     missing ASK/ARK come from roots.h;
 *  3. OpenSSL chain verification at now_unix: ARK self-signature (checked), ASK by ARK, VCEK by
 *     ASK (RSASSA-PSS SHA-384), validity of all three;
 *  4. Turin: CL_EUNSUPPORTED (different TCB layout, no vector yet);
 *  5. VCEK: subject CN=SEV-VCEK, EC P-384 key, product-name extension names the product line;
 *  6. report signature: ECDSA P-384 / SHA-384 over bytes 0x000..0x29F with the VCEK key;
 *  7. VCEK TCB extensions equal reported_tcb and hwID equals chip_id (cl_snp_vcek_matches). */
CL_MUST_CHECK int cl_snp_verify_report(const cl_snp_report *r, const uint8_t *raw_report,
                                       size_t raw_len, const char *chain_pem, size_t chain_len,
                                       int64_t now_unix, char *err, size_t errlen);

/* Step 6 alone, on a DER VCEK: blSPL (.3.1), teeSPL (.3.2), snpSPL (.3.3), ucodeSPL (.3.8) must
 * be present and equal reported_tcb bytes 0, 1, 6, 7; reserved SPLs .3.4-.3.7, when present,
 * equal bytes 2-5; hwID (.4, 64 bytes) must equal chip_id unless mask_chip_key is set.
 * CL_EFORMAT for a missing/malformed extension, CL_ECHAIN for a mismatch. */
CL_MUST_CHECK int cl_snp_vcek_matches(const uint8_t *vcek_der, size_t n, const cl_snp_report *r,
                                      char *err, size_t errlen);

/* Adds every x-ms-sevsnpvm-* claim of attestation-api.md §5.4 derived from the report to the
 * JSON object `claims` (existing members of the same name are replaced). */
CL_MUST_CHECK int cl_snp_claims(const cl_snp_report *r, json_t *claims);
/* cl_snp_claims into `claims`; and, when the wrapper has Endorsements and `unverified` is not
 * NULL, x-ms-sevsnpvm-endorsements (their JSON text) into `unverified`. Nothing verifies the
 * Endorsements: they are policy input (an incoming claim) only, never a claim of the token. */
CL_MUST_CHECK int cl_snp_evidence_claims(const cl_snp_evidence *e, json_t *claims,
                                         json_t *unverified);

#endif
