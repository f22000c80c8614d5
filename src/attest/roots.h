/*
 * roots.h — trust anchors pinned into the attestation service (spec/evidence-formats.md §2.7,
 * §5.4).
 *
 * Intel: the SGX Root CA is pinned by its public key (the 2033 and 2049 issuances share one key;
 * a chain may end in either). AMD: the ARK of each product line (Milan, Genoa, Turin), with the
 * matching ASK for callers whose evidence omits it. These are AMD's and Intel's public
 * certificates, as published by them (copies: tests/data/attestation-vectors/roots/).
 */
#ifndef CLEDGER_ATTEST_ROOTS_H
#define CLEDGER_ATTEST_ROOTS_H

#include <stddef.h>

/* PEM of the Intel SGX Root CA certificate (2049 issuance). */
extern const char cl_root_intel_sgx_pem[];

typedef struct {
    const char *product; /* "Milan", "Genoa", "Turin" */
    const char *ask_pem; /* ASK (VCEK signing key) certificate */
    const char *ark_pem; /* ARK (root) certificate, self-signed */
} cl_amd_root;

extern const cl_amd_root cl_amd_roots[];
extern const size_t cl_amd_nroots;

#endif
