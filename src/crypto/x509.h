/*
 * x509.h — certificates: strict PEM/DER parsing, endorsement checks, and issuing the service
 * identity, node and endorsement certificates.
 *
 * A cl_cert owns an OpenSSL X509 and its public key (as a cl_key without private part).
 * cl_cert_free releases both. Getters borrow.
 *
 * Endorsement = ordinary X.509 signature verification of one link (X509_verify with the issuer's
 * public key), nothing else: no validity dates, names or extensions (spec/receipts.md §3 step 2).
 */
#ifndef CLEDGER_CRYPTO_X509_H
#define CLEDGER_CRYPTO_X509_H

#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>

#include "base/cursor.h"
#include "base/err.h"
#include "crypto/ec.h"

typedef struct cl_cert {
    X509 *x509;
    cl_key *pub; /* public key; CL_EKEYTYPE at parse time if not EC P-256/P-384 */
} cl_cert;

/* Exactly one PEM certificate (leading/trailing whitespace allowed, nothing else; no NUL bytes).
 * CL_EPEM when malformed, CL_EKEYTYPE when the key is not EC P-256/P-384. */
CL_MUST_CHECK int cl_cert_from_pem(const char *pem, size_t len, cl_cert **out);
/* Exactly one DER certificate occupying all `len` bytes. */
CL_MUST_CHECK int cl_cert_from_der(const uint8_t *der, size_t len, cl_cert **out);
CL_MUST_CHECK int cl_cert_load_pem_file(const char *path, cl_cert **out);
void cl_cert_free(cl_cert *c);

CL_MUST_CHECK int cl_cert_to_der(const cl_cert *c, cl_buf *out);             /* appended */
CL_MUST_CHECK int cl_cert_to_pem(const cl_cert *c, char **pem, size_t *len); /* heap, NUL-term */
CL_MUST_CHECK int cl_cert_save_pem(const cl_cert *c, const char *path);      /* 0644, fsync'd */

/* CL_OK when `c` carries a valid signature by `issuer`'s key, CL_EENDORSE otherwise. */
CL_MUST_CHECK int cl_cert_verify_signed_by(const cl_cert *c, const cl_key *issuer);
/* SHA-256 of the certificate's SPKI DER (node id). */
CL_MUST_CHECK int cl_cert_spki_sha256(const cl_cert *c, uint8_t out[32]);
/* SHA-256 of the whole DER certificate (client identity fingerprint). */
CL_MUST_CHECK int cl_cert_fingerprint_sha256(const cl_cert *c, uint8_t out[32]);
/* Subject public key equality (constant time over the SPKI DER). 1 equal, 0 not. */
int cl_cert_same_key(const cl_cert *a, const cl_key *k);

/* A self-signed CA certificate (basicConstraints CA:TRUE critical, keyCertSign) for the service
 * identity: subject CN=<cn>, random 128-bit serial, validity `days`, ecdsa-with-SHA256 for P-256
 * and ecdsa-with-SHA384 for P-384. */
CL_MUST_CHECK int cl_cert_self_signed_ca(const cl_key *key, const char *cn, int days,
                                         cl_cert **out);
/* A leaf certificate for `subject_key` (CA:FALSE) issued by issuer_cert/issuer_key, with SANs:
 * each entry of `sans` is either an IPv4/IPv6 literal (iPAddress) or a DNS name. nsans may be 0. */
CL_MUST_CHECK int cl_cert_issue(const cl_key *subject_key, const char *cn,
                                const cl_cert *issuer_cert, const cl_key *issuer_key, int days,
                                const char *const *sans, size_t nsans, cl_cert **out);
/* Endorsement of a previous service identity by a new one: a CA certificate carrying the previous
 * certificate's subject and public key, issued (signed) by the new identity. Node certificates
 * signed by the previous key then verify with the endorsement's key, and the endorsement verifies
 * with the new identity's key (spec/receipts.md §3 step 2, serviceEndorsements). */
CL_MUST_CHECK int cl_cert_endorse_previous(const cl_cert *previous, const cl_cert *new_cert,
                                           const cl_key *new_key, int days, cl_cert **out);

#endif
