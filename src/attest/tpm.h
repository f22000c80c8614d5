/*
 * tpm.h — TPM 2.0 evidence of the cledger Linux TPM profile (spec/attestation-api.md §4.3,
 * spec/evidence-formats.md §6): quote parsing and verification, AK public areas and Names, PCR
 * values, credential activation (the verifier's half: TPM2_MakeCredential done in software), EK
 * and AK certificate chains, and the TPM claims (attestation-api.md §5.4).
 *
 * Ownership. Every parser reads big-endian TPM wire structures through cl_cursor and copies what
 * it keeps into the caller's struct (fixed-size arrays; nothing points into the input afterwards),
 * except cl_tpm_public, which owns one OpenSSL EVP_PKEY: release it with cl_tpm_public_free (safe
 * on a zeroed or already freed struct; a failed cl_tpm_public_parse leaves nothing to free but
 * calling free is harmless). cl_tpm_attest, cl_tpm_signature and cl_tpm_pcrs own no heap memory.
 * cl_buf outputs are caller-owned and are appended to, only on success (on failure they are left
 * as they were). Every input pointer is borrowed for the duration of the call only. The EK private
 * key passed to cl_tpm_activate_credential_soft is borrowed (test support; a verifier never has
 * it).
 *
 * Errors. Functions return 0 or a negative cl_err code and, on failure, write a precise
 * NUL-terminated message into err (errlen bytes, may be NULL/0): CL_ETRUNC for input that ends
 * early ("quote truncated at offset 87: pcrDigest needs 32 bytes, 12 left"), CL_EFORMAT for
 * malformed values, CL_EUNSUPPORTED for algorithms and key types outside the profile, CL_ESIG for
 * a signature or integrity check that fails, CL_EBINDING when the quote does not bind the nonce
 * or PCR values supplied, CL_ECHAIN / CL_EEXPIRED / CL_EPEM for certificate problems.
 */
#ifndef CLEDGER_ATTEST_TPM_H
#define CLEDGER_ATTEST_TPM_H

#include <jansson.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "base/cursor.h"
#include "base/err.h"

/* TPM_ALG_ID values used here (TPM 2.0 Part 2 §6.3). */
#define CL_TPM_ALG_RSA 0x0001
#define CL_TPM_ALG_SHA1 0x0004
#define CL_TPM_ALG_AES 0x0006
#define CL_TPM_ALG_SHA256 0x000B
#define CL_TPM_ALG_SHA384 0x000C
#define CL_TPM_ALG_SHA512 0x000D
#define CL_TPM_ALG_NULL 0x0010
#define CL_TPM_ALG_RSASSA 0x0014
#define CL_TPM_ALG_RSAES 0x0015
#define CL_TPM_ALG_RSAPSS 0x0016
#define CL_TPM_ALG_OAEP 0x0017
#define CL_TPM_ALG_ECDSA 0x0018
#define CL_TPM_ALG_ECC 0x0023
#define CL_TPM_ALG_CFB 0x0043

#define CL_TPM_ECC_NIST_P256 0x0003
#define CL_TPM_ECC_NIST_P384 0x0004
#define CL_TPM_ECC_NIST_P521 0x0005

#define CL_TPM_GENERATED_VALUE 0xff544347u
#define CL_TPM_ST_ATTEST_QUOTE 0x8018

/* TPMA_OBJECT bits (Part 2 §8.3). */
#define CL_TPMA_FIXED_TPM 0x00000002u
#define CL_TPMA_FIXED_PARENT 0x00000010u
#define CL_TPMA_SENSITIVE_DATA_ORIGIN 0x00000020u
#define CL_TPMA_RESTRICTED 0x00010000u
#define CL_TPMA_DECRYPT 0x00020000u
#define CL_TPMA_SIGN 0x00040000u

#define CL_TPM_MAX_DIGEST 64    /* SHA-512 */
#define CL_TPM_MAX_NAME 66      /* TPM2B_NAME / TPM2B_DATA payload: u16 alg + digest */
#define CL_TPM_MAX_BANKS 16     /* TPML_PCR_SELECTION entries accepted */
#define CL_TPM_PCR_SELECT_MAX 4 /* bitmap bytes: PCRs 0..31 */
#define CL_TPM_NUM_PCRS 32
#define CL_TPM_PCR_BANKS 4 /* SHA-1, SHA-256, SHA-384, SHA-512 */
#define CL_TPM_MAX_RSA_BYTES 512
#define CL_TPM_MAX_ECC_BYTES 66 /* P-521 coordinate */

/* ---- algorithms ----------------------------------------------------------------------------- */

/* OpenSSL digest of a TPM hash algorithm (SHA-1/256/384/512), NULL for anything else. */
const EVP_MD *cl_tpm_hash_md(uint16_t alg);
/* Digest size in bytes, 0 when not a supported hash. */
size_t cl_tpm_hash_size(uint16_t alg);
/* "sha256", "ecc", "rsassa", ...; "unknown" for others (static string). */
const char *cl_tpm_alg_name(uint16_t alg);
/* Inverse of cl_tpm_alg_name for the four hash names; 0 when unknown. */
uint16_t cl_tpm_hash_from_name(const char *name);

/* ---- TPMS_ATTEST (quote) -------------------------------------------------------------------- */

typedef struct {
    uint16_t hash_alg;
    uint8_t size_of_select;
    uint8_t select[CL_TPM_PCR_SELECT_MAX]; /* bit i of byte j = PCR 8j+i */
} cl_tpm_pcr_selection;

typedef struct {
    uint32_t magic;
    uint16_t type;
    uint8_t qualified_signer[CL_TPM_MAX_NAME];
    size_t qualified_signer_len;
    uint8_t extra_data[CL_TPM_MAX_NAME]; /* qualifying data: the verifier's nonce */
    size_t extra_data_len;
    uint64_t clock;
    uint32_t reset_count;
    uint32_t restart_count;
    uint8_t safe;
    uint64_t firmware_version;
    uint32_t nbanks;
    cl_tpm_pcr_selection banks[CL_TPM_MAX_BANKS];
    uint8_t pcr_digest[CL_TPM_MAX_DIGEST];
    size_t pcr_digest_len;
} cl_tpm_attest;

/* Parses a TPMS_ATTEST of type TPM_ST_ATTEST_QUOTE occupying exactly n bytes; checks magic and
 * type, bitmap sizes, duplicate banks and supported bank hashes. */
CL_MUST_CHECK int cl_tpm_attest_parse(const uint8_t *p, size_t n, cl_tpm_attest *a, char *err,
                                      size_t errlen);
/* 1 when PCR `index` of the bank at a->banks[bank] is selected. */
int cl_tpm_attest_selected(const cl_tpm_attest *a, size_t bank, unsigned index);

/* ---- TPMT_SIGNATURE ------------------------------------------------------------------------- */

typedef struct {
    uint16_t sig_alg; /* RSASSA, RSAPSS or ECDSA */
    uint16_t hash_alg;
    uint8_t sig[CL_TPM_MAX_RSA_BYTES]; /* RSA schemes */
    size_t sig_len;
    uint8_t r[CL_TPM_MAX_ECC_BYTES], s[CL_TPM_MAX_ECC_BYTES]; /* ECDSA, big-endian */
    size_t r_len, s_len;
} cl_tpm_signature;

CL_MUST_CHECK int cl_tpm_signature_parse(const uint8_t *p, size_t n, cl_tpm_signature *sig,
                                         char *err, size_t errlen);

/* ---- TPMT_PUBLIC / TPM2B_PUBLIC ------------------------------------------------------------- */

typedef struct {
    uint16_t type; /* CL_TPM_ALG_RSA or CL_TPM_ALG_ECC */
    uint16_t name_alg;
    uint32_t attributes;
    uint8_t auth_policy[CL_TPM_MAX_DIGEST];
    size_t auth_policy_len;
    uint16_t sym_alg, sym_key_bits, sym_mode; /* symmetric protection (NULL for signing keys) */
    uint16_t scheme, scheme_hash;             /* NULL scheme: scheme_hash 0 */
    uint16_t rsa_key_bits;
    uint32_t rsa_exponent; /* 0 means 65537, as on the wire */
    uint16_t ecc_curve, kdf, kdf_hash;
    uint8_t ecc_x[CL_TPM_MAX_ECC_BYTES], ecc_y[CL_TPM_MAX_ECC_BYTES]; /* unique, as on the wire */
    size_t ecc_x_len, ecc_y_len;
    uint8_t name[CL_TPM_MAX_NAME]; /* nameAlg || H_nameAlg(TPMT_PUBLIC) */
    size_t name_len;
    EVP_PKEY *pkey; /* owned */
} cl_tpm_public;

/* Accepts a TPM2B_PUBLIC (u16 size == n - 2 followed by the TPMT_PUBLIC) or a bare TPMT_PUBLIC,
 * RSA or ECC (NIST P-256/384/521), occupying exactly n bytes. Computes the Name and the public key
 * (the RSA modulus must be keyBits long; the ECC point must be on the curve). */
CL_MUST_CHECK int cl_tpm_public_parse(const uint8_t *p, size_t n, cl_tpm_public *pub, char *err,
                                      size_t errlen);
void cl_tpm_public_free(cl_tpm_public *pub);
/* SHA-256 of the key's SubjectPublicKeyInfo DER. */
CL_MUST_CHECK int cl_tpm_public_spki_sha256(const cl_tpm_public *pub, uint8_t out[32]);
/* The AK profile: restricted, sign, fixedTPM, not decrypt; RSA or ECC. */
CL_MUST_CHECK int cl_tpm_ak_check(const cl_tpm_public *ak, char *err, size_t errlen);

/* ---- PCR values
 * ----------------------------------------------------------------------------------- */

typedef struct {
    uint16_t alg;     /* hash of the bank */
    uint32_t present; /* bit i: PCR i has a value */
    uint8_t value[CL_TPM_NUM_PCRS][CL_TPM_MAX_DIGEST];
} cl_tpm_pcr_bank;

typedef struct {
    size_t nbanks;
    cl_tpm_pcr_bank banks[CL_TPM_PCR_BANKS];
} cl_tpm_pcrs;

void cl_tpm_pcrs_init(cl_tpm_pcrs *pcrs);
/* Sets PCR `index` of bank `alg` (added on first use); CL_EFORMAT when n is not the digest size,
 * the index is >= CL_TPM_NUM_PCRS, or the value is already set. */
CL_MUST_CHECK int cl_tpm_pcrs_set(cl_tpm_pcrs *pcrs, uint16_t alg, unsigned index, const uint8_t *v,
                                  size_t n, char *err, size_t errlen);
/* The bank for alg, or NULL. */
const cl_tpm_pcr_bank *cl_tpm_pcrs_bank(const cl_tpm_pcrs *pcrs, uint16_t alg);
/* {"sha256":{"0":"<hex>","16":"<hex>"},...}: bank names sha1/sha256/sha384/sha512, indices in
 * canonical decimal, values of exactly the bank's digest size in hex. */
CL_MUST_CHECK int cl_tpm_pcrs_from_json(const json_t *obj, cl_tpm_pcrs *pcrs, char *err,
                                        size_t errlen);
CL_MUST_CHECK int cl_tpm_pcrs_parse_json(const char *text, size_t n, cl_tpm_pcrs *pcrs, char *err,
                                         size_t errlen);
/* The `tpm2_quote -o` file of tpm2-tools 5.x (host-endian dump, evidence-formats.md §6.6):
 * TPML_PCR_SELECTION as a C struct (132 bytes), u32 number of TPML_DIGEST lists, the lists
 * (532 bytes each); digests are assigned to the selected PCRs in selection order. */
CL_MUST_CHECK int cl_tpm_pcrs_parse_tpm2tools(const uint8_t *p, size_t n, cl_tpm_pcrs *pcrs,
                                              char *err, size_t errlen);

/* ---- quote verification
 * ----------------------------------------------------------------------------- */

/* evidence-formats.md §6.4 steps 1-4: parses the TPMS_ATTEST and the TPMT_SIGNATURE; checks the AK
 * profile (cl_tpm_ak_check), that the signature scheme fits the AK (and its fixed scheme, if any;
 * SHA-1 is refused), the signature over the attest bytes with the AK key, extraData == nonce
 * (constant time), that `pcrs` has values for exactly the selected PCRs of each selected bank and
 * no others, and pcrDigest == H_sig(selected values in selection order). AK trust (step 6) is
 * separate: cl_tpm_ak_cert_verify or credential activation. */
CL_MUST_CHECK int cl_tpm_quote_verify(const uint8_t *attest, size_t attest_len, const uint8_t *sig,
                                      size_t sig_len, const cl_tpm_public *ak, const uint8_t *nonce,
                                      size_t nonce_len, const cl_tpm_pcrs *pcrs, char *err,
                                      size_t errlen);

/* ---- credential activation (TPM 2.0 Part 1 §24, Part 3 §12.6)
 * ------------------------------------- */

/* The verifier's TPM2_MakeCredential: `ek` must be a restricted decryption key (RSA: OAEP with
 * label "IDENTITY\0" and the EK's nameAlg; ECC: ephemeral ECDH + KDFe) with AES-CFB symmetric
 * protection; `ak_name` is the Name of the key that must be resident with the EK; `secret` is at
 * most the digest size of the EK's nameAlg. Appends the marshalled TPM2B_ID_OBJECT (credential
 * blob) to id_object and the marshalled TPM2B_ENCRYPTED_SECRET to encrypted_secret. Only a TPM
 * holding the EK private key, with an object of that Name loaded, can recover the secret
 * (TPM2_ActivateCredential). */
CL_MUST_CHECK int cl_tpm_make_credential(const cl_tpm_public *ek, const uint8_t *ak_name,
                                         size_t ak_name_len, const uint8_t *secret,
                                         size_t secret_len, cl_buf *id_object,
                                         cl_buf *encrypted_secret, char *err, size_t errlen);
/* The deterministic half of make-credential: the TPM2B_ID_OBJECT for a given seed (its size is the
 * EK nameAlg's digest size). Exposed for known-answer tests. */
CL_MUST_CHECK int cl_tpm_credential_blob(const cl_tpm_public *ek, const uint8_t *ak_name,
                                         size_t ak_name_len, const uint8_t *secret,
                                         size_t secret_len, const uint8_t *seed, size_t seed_len,
                                         cl_buf *id_object, char *err, size_t errlen);
/* TPM2_ActivateCredential in software, given the EK private key (test support and diagnostics):
 * recovers the seed from encrypted_secret, checks the integrity HMAC over the blob and ak_name,
 * decrypts, and appends the credential to `secret`. When seed_out is not NULL the recovered seed
 * (seed_cap >= digest size) and its length are returned too. */
CL_MUST_CHECK int cl_tpm_activate_credential_soft(
    EVP_PKEY *ek_priv, const cl_tpm_public *ek, const uint8_t *ak_name, size_t ak_name_len,
    const uint8_t *id_object, size_t id_len, const uint8_t *encrypted_secret, size_t enc_len,
    cl_buf *secret, uint8_t *seed_out, size_t seed_cap, size_t *seed_len, char *err, size_t errlen);
/* tpm2-tools' credential file (tpm2_makecredential -o / tpm2_activatecredential -i):
 * u32 0xBADCC0DE, u32 version 1 (big-endian), TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET. Appended. */
CL_MUST_CHECK int cl_tpm_credential_file(const uint8_t *id_object, size_t id_len,
                                         const uint8_t *encrypted_secret, size_t enc_len,
                                         cl_buf *out);

/* ---- EK and AK certificates
 * -------------------------------------------------------------------------- */

/* Verifies one DER certificate (exactly n bytes) against the PEM certificates in roots_pem (one or
 * more; every one is a trust anchor, so a configured intermediate CA anchors too) at time now_unix
 * with OpenSSL's X509_verify_cert. When ek is not NULL the certificate's public key must equal the
 * EK public area's key (CL_EBINDING otherwise). */
CL_MUST_CHECK int cl_tpm_ek_cert_verify(const uint8_t *der, size_t n, const char *roots_pem,
                                        size_t roots_len, const cl_tpm_public *ek, int64_t now_unix,
                                        char *err, size_t errlen);
/* The AK-certificate alternative (attestation-api.md §4.3 ak_cert): the same chain check, and the
 * certificate's key must equal the AK's (ak is required). */
CL_MUST_CHECK int cl_tpm_ak_cert_verify(const uint8_t *der, size_t n, const char *roots_pem,
                                        size_t roots_len, const cl_tpm_public *ak, int64_t now_unix,
                                        char *err, size_t errlen);

/* ---- claims
 * ------------------------------------------------------------------------------------------ */

/* Sets on the JSON object `claims`: aikValidated (bool), aikPubHash (standard base64 of SHA-256 of
 * the AK SPKI DER), tpmVersion (2) and pcrs (a string holding the compact JSON text
 * {"PCRs":[{"Index":0,"Digests":{"SHA256":"<std base64>"}},...]} for every PCR selected by the
 * quote, ascending by index, one digest per selected bank). The quote must have been verified
 * against `pcrs` (CL_EINVAL when a selected value is missing). */
CL_MUST_CHECK int cl_tpm_claims(const cl_tpm_attest *a, const cl_tpm_pcrs *pcrs,
                                const cl_tpm_public *ak, int ak_validated, json_t *claims);

#endif
