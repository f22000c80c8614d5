/*
 * intel_pki.h — X.509 and ECDSA helpers for Intel SGX/TDX attestation (internal to src/attest/:
 * used by sgx_verify.c and intel_tcb.c).
 *
 * Ownership: cl_intel_certs owns the X509 objects it holds (cl_intel_certs_free releases them).
 * Functions taking EVP_PKEY / X509 borrow them. Output keys and CRLs are new references the caller
 * frees with EVP_PKEY_free / X509_CRL_free. Every failure writes a message into err.
 *
 * Trust anchor: the Intel SGX Root CA public key of roots.h (spec/evidence-formats.md §2.5 step 1,
 * §2.7). A chain may carry either issuance of the root certificate: it must have the pinned key
 * and a valid self-signature; path validation itself runs against the pinned certificate.
 */
#ifndef CLEDGER_ATTEST_INTEL_PKI_H
#define CLEDGER_ATTEST_INTEL_PKI_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* snprintf into err (no-op when err is NULL or errlen is 0). */
void cl_intel_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define CL_INTEL_MAX_CERTS 8

typedef struct {
    X509 *v[CL_INTEL_MAX_CERTS];
    size_t n;
} cl_intel_certs;

/* Strict PEM chain: only "-----BEGIN CERTIFICATE-----" blocks of canonical base64 separated by
 * line breaks, optionally followed by one NUL byte (PCK chains in quotes). Any other byte, a
 * non-canonical base64 body or trailing DER data is rejected (CL_EPEM), so every byte of the text
 * is significant. `what` names the chain in messages. */
CL_MUST_CHECK int cl_intel_pem_chain(const char *pem, size_t len, const char *what,
                                     cl_intel_certs *out, char *err, size_t errlen);
void cl_intel_certs_free(cl_intel_certs *c);

/* Validates certs (leaf first; the last one may be the self-signed root) up to the pinned Intel
 * root at time `now`, with CRL checking of every certificate when ncrls > 0. Every supplied
 * certificate must be part of the validated path. CL_ECHAIN, CL_EEXPIRED (certificate or CRL out
 * of its validity), CL_EREVOKED. */
CL_MUST_CHECK int cl_intel_chain_verify(const cl_intel_certs *certs, X509_CRL *const *crls,
                                        size_t ncrls, int64_t now, const char *what, char *err,
                                        size_t errlen);

/* The same with an explicit trust anchor (tests use their own hierarchy). */
CL_MUST_CHECK int cl_intel_chain_verify_anchor(const cl_intel_certs *certs, X509 *anchor,
                                               X509_CRL *const *crls, size_t ncrls, int64_t now,
                                               const char *what, char *err, size_t errlen);

/* 1 when the certificate's subject CN equals cn exactly. */
int cl_intel_cert_cn_is(X509 *x, const char *cn);

/* ECDSA-SHA256 over msg with a raw big-endian r||s signature (64 bytes). CL_ESIG or CL_OK. */
CL_MUST_CHECK int cl_intel_ecdsa_verify(EVP_PKEY *key, const uint8_t *msg, size_t n,
                                        const uint8_t sig[64]);
/* EC P-256 public key from x||y (64 bytes); CL_ESIG when the point is not on the curve. */
CL_MUST_CHECK int cl_intel_p256_key(const uint8_t xy[64], EVP_PKEY **out);

/* DER CRL occupying all n bytes. */
CL_MUST_CHECK int cl_intel_crl_from_der(const uint8_t *der, size_t n, X509_CRL **out);

/* The PCK certificate's SGX Extensions (OID 1.2.840.113741.1.13.1, §2.6). */
typedef struct {
    uint8_t ppid[16];
    uint8_t comp[16];    /* .2.1 … .2.16 */
    uint16_t pce_svn;    /* .2.17 */
    uint8_t cpu_svn[16]; /* .2.18 */
    uint8_t pce_id[2];   /* .3 */
    uint8_t fmspc[6];    /* .4 */
    int sgx_type;        /* .5 */
} cl_intel_pck_ext;
CL_MUST_CHECK int cl_intel_pck_extensions(X509 *leaf, cl_intel_pck_ext *out, char *err,
                                          size_t errlen);

/* Unix time of an ASN1_TIME; CL_EFORMAT when it cannot be converted. */
CL_MUST_CHECK int cl_intel_asn1_time(const ASN1_TIME *t, int64_t *out);
/* Strict "YYYY-MM-DDTHH:MM:SSZ" (Intel collateral dates) to unix time. */
CL_MUST_CHECK int cl_intel_parse_date(const char *s, int64_t *out);

#endif
