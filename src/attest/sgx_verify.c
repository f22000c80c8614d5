/*
 * sgx_verify.c — cryptographic verification of a parsed SGX/TDX quote (spec/evidence-formats.md
 * §2.5, §4.3): PCK chain to the pinned Intel root key, QE report signature, QE-to-attestation-key
 * binding, QE identity, ISV/TD signature, and, with collateral, revocation and TCB evaluation.
 */
#include <stdint.h>
#include <string.h>

#include "attest/intel_pki.h"
#include "attest/intel_tcb.h"
#include "attest/sgx.h"
#include "attest/vcache.h"
#include "crypto/hash.h"

/* Intel's quoting enclaves (§2.5 step 5): used when no QE identity collateral is given, so the
 * QE report is still known to come from Intel's QE, not from any enclave the PCE certified. */
static const uint8_t intel_qe_mrsigner[32] = {
    0x8c, 0x4f, 0x57, 0x75, 0xd7, 0x96, 0x50, 0x3e, 0x96, 0x13, 0x7f, 0x77, 0xc6, 0x8a, 0x82, 0x9a,
    0x00, 0x56, 0xac, 0x8d, 0xed, 0x70, 0x14, 0x0b, 0x08, 0x1b, 0x09, 0x44, 0x90, 0xc5, 0x7b, 0xff};
static const uint8_t intel_td_qe_mrsigner[32] = {
    0xdc, 0x9e, 0x2a, 0x7c, 0x6f, 0x94, 0x8f, 0x17, 0x47, 0x4e, 0x34, 0xa7, 0xfc, 0x43, 0xed, 0x03,
    0x0f, 0x7c, 0x15, 0x63, 0xf1, 0xba, 0xbd, 0xdf, 0x63, 0x40, 0xc8, 0x2e, 0x0e, 0x54, 0xa8, 0xc5};

static int builtin_qe_identity(const cl_sgx_quote *q, char *err, size_t errlen)
{
    const int tdx = q->tee_type == CL_SGX_TEE_TDX;
    const uint8_t *r = q->qe_report;
    uint16_t prod = (uint16_t)(r[256] | r[257] << 8);
    if (!cl_ct_equal(r + 128, tdx ? intel_td_qe_mrsigner : intel_qe_mrsigner, 32) ||
        prod != (tdx ? 2 : 1)) {
        cl_intel_err(err, errlen,
                     "QE identity: the QE report is not from Intel's %s (mr_signer/isv_prod_id)",
                     tdx ? "TD quoting enclave" : "quoting enclave");
        return CL_ECHAIN;
    }
    if (r[48] & 0x2) {
        cl_intel_err(err, errlen, "QE identity: the quoting enclave is in debug mode");
        return CL_ECHAIN;
    }
    return CL_OK;
}

/* What a cached PCK-chain verification hands to the later steps. */
typedef struct {
    cl_intel_pck_ext ext;
    int64_t pck_not_before, pck_not_after;
    uint8_t attest_key[64]; /* the key the stored EVP_PKEY is made of */
} pck_memo;

/* Cache key: every input of steps 1-3 (the chain text, the QE report and its signature) and the
 * collateral object whose CRLs were applied (collateral is immutable and outlives the cache). */
static void pck_key(const cl_sgx_quote *q, const cl_intel_collateral *coll, uint8_t key[32])
{
    static const char tag[] = "cledger sgx pck chain + qe report v1";
    uintptr_t cp = (uintptr_t)coll;
    cl_iov v[5] = {{tag, sizeof tag},
                   {&cp, sizeof cp},
                   {q->pck_chain, q->pck_chain_len},
                   {q->qe_report, CL_SGX_REPORT_BODY_LEN},
                   {q->qe_report_sig, 64}};
    cl_sha256_v(v, 5, key);
}

/* The window in which a verified chain stays verified: every certificate valid, every CRL
 * current. */
static void chain_window(const cl_intel_certs *pck, const cl_intel_collateral *coll, int64_t *nb,
                         int64_t *na)
{
    *nb = INT64_MIN;
    *na = INT64_MAX;
    for (size_t k = 0; k < pck->n; k++) {
        int64_t b, a;
        if (cl_intel_asn1_time(X509_get0_notBefore(pck->v[k]), &b) != CL_OK ||
            cl_intel_asn1_time(X509_get0_notAfter(pck->v[k]), &a) != CL_OK) {
            *na = INT64_MIN; /* unreadable: never reuse */
            return;
        }
        *nb = b > *nb ? b : *nb;
        *na = a < *na ? a : *na;
    }
    X509_CRL *crls[2] = {coll ? coll->root_ca_crl : NULL, coll ? coll->pck_crl : NULL};
    for (size_t k = 0; k < 2; k++) {
        if (crls[k] == NULL)
            continue;
        int64_t b, a;
        const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crls[k]);
        if (cl_intel_asn1_time(X509_CRL_get0_lastUpdate(crls[k]), &b) != CL_OK || next == NULL ||
            cl_intel_asn1_time(next, &a) != CL_OK) {
            *na = INT64_MIN;
            return;
        }
        *nb = b > *nb ? b : *nb;
        *na = a < *na ? a : *na;
    }
}

int cl_sgx_quote_verify(const cl_sgx_quote *q, const cl_intel_collateral *coll, int64_t now_unix,
                        cl_sgx_result *res, char *err, size_t errlen)
{
    return cl_sgx_quote_verify_cached(q, coll, now_unix, NULL, res, err, errlen);
}

int cl_sgx_quote_verify_cached(const cl_sgx_quote *q, const cl_intel_collateral *coll,
                               int64_t now_unix, cl_vcache *cache, cl_sgx_result *res, char *err,
                               size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (res == NULL)
        return CL_EINVAL;
    memset(res, 0, sizeof *res);
    if (q == NULL || q->raw == NULL || q->pck_chain == NULL || q->qe_report == NULL ||
        q->attest_key == NULL || q->isv_signature == NULL) {
        cl_intel_err(err, errlen, "invalid argument: quote not parsed");
        return CL_EINVAL;
    }
    int rc = CL_OK;
    cl_intel_certs pck = {{NULL}, 0};
    EVP_PKEY *akey = NULL;
    cl_intel_pck_ext ext;
    uint8_t d[32];

    res->collateral_hashes = json_object();
    CL_GUARD_IF(res->collateral_hashes == NULL, CL_ENOMEM);
    res->trailing_bytes = q->raw_len - q->quote_len;

    uint8_t key[32];
    pck_memo memo;
    size_t memo_len = 0;
    int fresh = 0; /* steps 1-3 were run now (not taken from the memo) */
    if (cache != NULL) {
        pck_key(q, coll, key);
        if (cl_vcache_lookup(cache, key, now_unix, &memo, &memo_len, NULL, &akey) &&
            memo_len == sizeof memo) {
            /* the QE report (in the key) binds the attestation key; reuse its EVP_PKEY only for
             * the very same key bytes */
            if (akey != NULL && !cl_ct_equal(memo.attest_key, q->attest_key, 64)) {
                EVP_PKEY_free(akey);
                akey = NULL;
            }
            ext = memo.ext;
            res->pck_not_before = memo.pck_not_before;
            res->pck_not_after = memo.pck_not_after;
            res->crl_checked = coll != NULL;
            goto pck_done; /* steps 1-3 hold for these exact bytes at this time */
        }
    }

    /* 1-2. PCK chain to the pinned root, with both CRLs when collateral is given. */
    CL_GUARD(cl_intel_pem_chain(q->pck_chain, q->pck_chain_len, "PCK certificate chain", &pck, err,
                                errlen));
    X509_CRL *crls[2] = {coll != NULL ? coll->root_ca_crl : NULL,
                         coll != NULL ? coll->pck_crl : NULL};
    CL_GUARD(cl_intel_chain_verify(&pck, crls, coll != NULL ? 2 : 0, now_unix,
                                   "PCK certificate chain", err, errlen));
    res->crl_checked = coll != NULL;
    if (pck.n < 2 || !cl_intel_cert_cn_is(pck.v[0], "Intel SGX PCK Certificate") ||
        !(cl_intel_cert_cn_is(pck.v[1], "Intel SGX PCK Processor CA") ||
          cl_intel_cert_cn_is(pck.v[1], "Intel SGX PCK Platform CA"))) {
        cl_intel_err(err, errlen,
                     "PCK certificate chain: leaf is not \"Intel SGX PCK Certificate\" issued by "
                     "an \"Intel SGX PCK Processor/Platform CA\"");
        CL_GUARD_IF(1, CL_ECHAIN);
    }
    CL_GUARD(cl_intel_pck_extensions(pck.v[0], &ext, err, errlen));
    if (cl_intel_asn1_time(X509_get0_notBefore(pck.v[0]), &res->pck_not_before) != CL_OK ||
        cl_intel_asn1_time(X509_get0_notAfter(pck.v[0]), &res->pck_not_after) != CL_OK) {
        cl_intel_err(err, errlen, "PCK certificate: unreadable validity dates");
        CL_GUARD_IF(1, CL_EPEM);
    }

    /* 3. QE report signed by the PCK key. */
    if (cl_intel_ecdsa_verify(X509_get0_pubkey(pck.v[0]), q->qe_report, CL_SGX_REPORT_BODY_LEN,
                              q->qe_report_sig) != CL_OK) {
        cl_intel_err(err, errlen, "QE report signature does not verify with the PCK key");
        CL_GUARD_IF(1, CL_ESIG);
    }

    fresh = 1;
pck_done:
    memcpy(res->fmspc, ext.fmspc, 6);
    memcpy(res->pce_id, ext.pce_id, 2);
    memcpy(res->cpu_svn, ext.cpu_svn, 16);
    memcpy(res->tcb_comp, ext.comp, 16);
    res->pce_svn = ext.pce_svn;

    /* 4. QE report_data = SHA-256(attestation key || QE auth data) || 32 zero bytes. */
    cl_sha256_2(q->attest_key, 64, q->qe_auth_data, q->qe_auth_len, d);
    static const uint8_t zero[32] = {0};
    if (!cl_ct_equal(q->qe_report + 320, d, 32) || !cl_ct_equal(q->qe_report + 352, zero, 32)) {
        cl_intel_err(err, errlen,
                     "QE binding: QE report_data is not SHA-256(attestation key || QE auth data)");
        CL_GUARD_IF(1, CL_ESIG);
    }

    /* 5 (without collateral). Intel's QE; with collateral the signed QE identity decides. */
    if (coll == NULL)
        CL_GUARD(builtin_qe_identity(q, err, errlen));

    /* 6. ISV enclave report / TD report signed by the attestation key. */
    if (akey == NULL && cl_intel_p256_key(q->attest_key, &akey) != CL_OK) {
        cl_intel_err(err, errlen, "attestation key is not a valid P-256 point");
        CL_GUARD_IF(1, CL_ESIG);
    }
    if (cl_intel_ecdsa_verify(akey, q->raw, q->signed_len, q->isv_signature) != CL_OK) {
        cl_intel_err(err, errlen, "%s signature does not verify with the attestation key",
                     q->tee_type == CL_SGX_TEE_TDX ? "TD report" : "ISV enclave report");
        CL_GUARD_IF(1, CL_ESIG);
    }
    /* Steps 1-4 and the QE identity hold for these bytes: remember them (and the key). */
    if (cache != NULL && fresh) {
        memo.ext = ext;
        memo.pck_not_before = res->pck_not_before;
        memo.pck_not_after = res->pck_not_after;
        memcpy(memo.attest_key, q->attest_key, 64);
        int64_t nb, na;
        chain_window(&pck, coll, &nb, &na);
        cl_vcache_insert(cache, key, nb, na, &memo, sizeof memo, NULL, akey);
    }

    /* 5 and 7 with collateral. */
    if (coll != NULL)
        CL_GUARD(cl_intel_tcb_evaluate(coll, q, &ext, now_unix, res, err, errlen));
out:
    EVP_PKEY_free(akey);
    cl_intel_certs_free(&pck);
    if (rc < 0) {
        if (err != NULL && errlen > 0 && err[0] == '\0')
            cl_intel_err(err, errlen, "quote verification: %s", cl_strerror(rc));
        cl_sgx_result_free(res);
        memset(res, 0, sizeof *res);
    }
    return rc;
}
