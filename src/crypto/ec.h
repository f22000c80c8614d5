/*
 * ec.h — EC keys (P-256, P-384): generate, load/save PEM, SPKI, prehashed ECDSA sign/verify.
 *
 * A cl_key wraps an OpenSSL EVP_PKEY and owns it; cl_key_free releases it (OpenSSL wipes private
 * key material on free). Functions that take a `const cl_key *` borrow it. Private-key PEM files
 * are created with mode 0600 (O_CREAT|O_EXCL on a temporary name, fsync, rename, fsync of the
 * directory).
 *
 * Signatures here are over a digest the caller already computed ("prehashed"): the Merkle root is
 * signed as a 32-byte SHA-256 value, as CCF and ACL do (spec/receipts.md §3 step 6). Signatures are
 * DER ECDSA-Sig-Value.
 */
#ifndef CLEDGER_CRYPTO_EC_H
#define CLEDGER_CRYPTO_EC_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "base/cursor.h"
#include "base/err.h"

typedef enum { CL_CURVE_P256 = 256, CL_CURVE_P384 = 384 } cl_curve;

typedef struct cl_key {
    EVP_PKEY *pkey;
    cl_curve curve;
    int has_private;
} cl_key;

#define CL_ECDSA_MAX_DER 104 /* P-384 DER signature is at most 104 bytes */

CL_MUST_CHECK int cl_key_generate(cl_curve curve, cl_key **out);
/* Takes a new reference to pkey; CL_EKEYTYPE unless it is EC P-256 or P-384. */
CL_MUST_CHECK int cl_key_from_pkey(EVP_PKEY *pkey, cl_key **out);
void cl_key_free(cl_key *k);

CL_MUST_CHECK int cl_key_load_private_pem(const char *path, cl_key **out);
CL_MUST_CHECK int cl_key_save_private_pem(const cl_key *k, const char *path); /* 0600 */
/* PKCS#8 PEM of the private key into a new NUL-terminated heap string (caller: cl_secret_free
 * with *len+1, since it holds a secret). */
CL_MUST_CHECK int cl_key_private_pem(const cl_key *k, char **pem, size_t *len);
CL_MUST_CHECK int cl_key_from_private_pem(const char *pem, size_t len, cl_key **out);

/* DER SubjectPublicKeyInfo appended to out. */
CL_MUST_CHECK int cl_key_spki_der(const cl_key *k, cl_buf *out);
/* SHA-256 of the DER SPKI: the node id of spec/receipts.md §1. */
CL_MUST_CHECK int cl_key_spki_sha256(const cl_key *k, uint8_t out[32]);

/* The same with the nonce derived from the key and the digest (RFC 6979, HMAC-SHA256): one key
 * and one digest always give the same signature bytes (ecdsa_det.c says why the ledger needs
 * that). Verified before it is returned. A SHA-256 digest (32 bytes) only: CL_EINVAL otherwise. */
CL_MUST_CHECK int cl_key_sign_deterministic(const cl_key *k, const uint8_t *digest, size_t dlen,
                                            uint8_t *sig, size_t *siglen);
/* ECDSA over `digest` used as-is (no further hashing); DER signature into sig (cap >= 104). */
CL_MUST_CHECK int cl_key_sign_prehashed(const cl_key *k, const uint8_t *digest, size_t dlen,
                                        uint8_t *sig, size_t *siglen);
/* 0 when valid, CL_ESIG when not (including malformed DER). */
CL_MUST_CHECK int cl_key_verify_prehashed(const cl_key *k, const uint8_t *digest, size_t dlen,
                                          const uint8_t *sig, size_t siglen);

#endif
