/*
 * intel_tcb.h — Intel collateral (TCB info, QE identity, CRLs) and TCB evaluation (internal to
 * src/attest/; public entry points are cl_intel_collateral_parse/free in sgx.h).
 *
 * Ownership: struct cl_intel_collateral owns copies of the signed texts, parsed JSON, certificate
 * chains and CRLs; it is immutable after cl_intel_collateral_parse and is borrowed by the
 * functions below. cl_intel_tcb_evaluate writes into a cl_sgx_result owned by the caller.
 */
#ifndef CLEDGER_ATTEST_INTEL_TCB_H
#define CLEDGER_ATTEST_INTEL_TCB_H

#include <jansson.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>

#include "attest/intel_pki.h"
#include "attest/sgx.h"
#include "base/err.h"

struct cl_intel_collateral {
    char *tcb_info; /* exact signed text */
    size_t tcb_info_len;
    json_t *tcb_info_json;
    uint8_t tcb_info_sig[64];
    cl_intel_certs tcb_info_chain;
    char *qe_identity; /* exact signed text */
    size_t qe_identity_len;
    json_t *qe_identity_json;
    uint8_t qe_identity_sig[64];
    cl_intel_certs qe_identity_chain;
    X509_CRL *root_ca_crl;
    X509_CRL *pck_crl;
    cl_intel_certs pck_crl_chain; /* n == 0 when absent */
    /* SHA-256 of the items as obtained (attestation-api.md §5.4 x-ms-sgx-collateral). */
    uint8_t tcbinfohash[32], tcbinfocertshash[32], qeidhash[32], qeidcertshash[32], rootcrlhash[32];
};

/* Steps 5 and 7 of evidence-formats.md §2.5 and the whole of §2.6 for a quote whose PCK chain,
 * QE report and signatures were already verified: collateral signatures and chains (with the root
 * CA CRL), validity windows at `now`, FMSPC / PCE-ID, QE identity, platform / TDX module / QE TCB
 * levels and their combination. Fills the TCB members of res (advisory_ids, collateral hashes
 * into res->collateral_hashes, which must be an object). */
CL_MUST_CHECK int cl_intel_tcb_evaluate(const struct cl_intel_collateral *c, const cl_sgx_quote *q,
                                        const cl_intel_pck_ext *pck, int64_t now,
                                        cl_sgx_result *res, char *err, size_t errlen);

#endif
