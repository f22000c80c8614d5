/*
 * jws.h — the JOSE layer of cledger-attestd (spec/attestation-api.md §1.5, §5, §6.1-§6.5, §7.2,
 * §8).
 *
 * Three jobs:
 *  1. accept the policy / policy-certificate JWS exactly as the official MAA clients send them
 *     (cl_jws_parse + cl_jws_verify): compact form, lenient base64url, the non-standard `RSA256`
 *     alias, ES256 with any curve, signer in header `x5c`, `jwk.x5c` or a bare `jwk`, signature
 *     checked over the signing input bytes as received;
 *  2. sign the service's own tokens (cl_jwt_sign, cl_jwt_unsigned) with the canonical header
 *     {"alg":"RS256","jku":…,"kid":…,"typ":"JWT"}, and produce the signing key, its certificate,
 *     kid and /certs entry;
 *  3. validate administrators' bearer JWTs against a JWKS (cl_jwks_parse, cl_jwt_validate) — a
 *     strict, standard profile: no `none`, no HMAC, the key comes only from the JWKS.
 *
 * Ownership. cl_jws_parse allocates a cl_jws (free with cl_jws_free); every accessor borrows from
 * it and its results live until cl_jws_free (json_t, X509, EVP_PKEY included: take your own
 * reference with json_incref / X509_up_ref / EVP_PKEY_up_ref to keep them longer). The signer
 * accessors return non-NULL only after cl_jws_verify succeeded on a signed JWS: an unverified
 * signer is never handed out. Strings and buffers returned through `char **out` / `uint8_t **out`
 * are cl_malloc'd (free with cl_free). json_t results returned through `json_t **out` carry one
 * reference owned by the caller (json_decref). EVP_PKEY / X509 arguments are borrowed; objects
 * returned through EVP_PKEY ** / X509 ** are owned by the caller (EVP_PKEY_free / X509_free).
 * A cl_jwks is immutable after parsing and may be shared by threads for cl_jwt_validate.
 *
 * Errors: 0 or a negative code from base/err.h; where an `err` buffer is taken it receives a
 * precise message (may be NULL / 0 length).
 */
#ifndef CLEDGER_ATTEST_JWS_H
#define CLEDGER_ATTEST_JWS_H

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* Largest JWS text accepted (a policy JWS is the whole request body, limited to 1 MiB). */
#define CL_JWS_MAX_LEN ((size_t)1 << 20)
/* Validity of the certificate made by cl_jws_signing_key_generate. */
#define CL_JWS_SIGNING_CERT_DAYS 3650
/* kid: standard base64 of SHA-256 = 44 characters + NUL. */
#define CL_JWS_KID_LEN 44

/* ---- base64url (§1.5): input is decoded with cl_b64_decode_lenient_alloc (base/codec.h) ---- */

/* Unpadded base64url of n bytes, NUL-terminated, cl_malloc'd; NULL on allocation failure. */
char *cl_b64url_encode_alloc(const uint8_t *in, size_t n);

/* ---- incoming JWS (policies, policy certificates) ------------------------------------------- */

typedef struct cl_jws cl_jws;

/* Compact serialisation: exactly three '.'-separated segments; the first non-empty, decoding to
 * a JSON object (duplicate keys rejected) with a string "alg"; the payload may be empty (reset) or
 * anything (JSON or not); the signature may be empty. At most CL_JWS_MAX_LEN bytes. Keeps a copy of
 * the exact signing input `seg1.seg2`. Does not verify anything cryptographic.
 * CL_EFORMAT for shape / base64 errors, CL_EJSON for a header that is not a JSON object,
 * CL_EOVERFLOW for oversize input, CL_ENOMEM. */
CL_MUST_CHECK int cl_jws_parse(const char *text, size_t len, cl_jws **out, char *err,
                               size_t errlen);
void cl_jws_free(cl_jws *j);

const char *cl_jws_alg(const cl_jws *j);
const json_t *cl_jws_header(const cl_jws *j);
/* Decoded payload bytes (never NULL; *len may be 0). */
const uint8_t *cl_jws_payload(const cl_jws *j, size_t *len);
/* Payload parsed as JSON (an object or array), NULL when empty or not valid JSON (duplicate keys
 * count as invalid). Borrowed. */
json_t *cl_jws_payload_json(const cl_jws *j);
/* The exact ASCII bytes `segment1 "." segment2` as received (not NUL-terminated). */
const char *cl_jws_signing_input(const cl_jws *j, size_t *len);
/* 1 after cl_jws_verify succeeded for a JWS whose alg is not "none", else 0. */
int cl_jws_is_signed(const cl_jws *j);

/* §6.2 steps 3-5.
 *  alg "none": the signature segment must be empty -> CL_OK (unsigned).
 *  RS256, RSA256 (Python alias), RS384, RS512: RSASSA-PKCS1-v1_5; PS256: RSASSA-PSS, MGF1 with the
 *  same hash, salt = hash length. RSA keys must have 2048..8192 bits.
 *  ES256, ES384, ES512: ECDSA with the hash named by alg whatever the key's curve (P-256, P-384,
 *  P-521); signature raw r||s with halves of the curve order's byte length, or DER.
 *  Signer: header x5c[0], else header jwk.x5c[0], else a bare header jwk (RSA n/e, EC crv/x/y);
 *  every further x5c entry must also be a certificate (the chain is not evaluated here). A jwk that
 *  carries both x5c and n/e (or x/y) must describe the same key.
 *  A "crit" header member is rejected (no extensions are understood).
 * Returns CL_OK, CL_EUNSUPPORTED (unknown alg such as ECDH256 or HS256, key type/size unusable for
 * the alg, "crit"), CL_EFORMAT (malformed x5c/jwk, no signer for a signed alg), CL_EPEM (x5c entry
 * is not a DER certificate), CL_ESIG (signature does not verify, or non-empty with alg none). May
 * be called again; the result is the same. */
CL_MUST_CHECK int cl_jws_verify(cl_jws *j, char *err, size_t errlen);

/* Signer certificate (x5c[0] of the header or of the header jwk); NULL for a bare jwk, before a
 * successful verify, or when unsigned. Borrowed. */
X509 *cl_jws_signer_cert(const cl_jws *j);
/* Signer public key; NULL before a successful verify or when unsigned. Borrowed. */
EVP_PKEY *cl_jws_signer_key(const cl_jws *j);
/* The x-ms-policy-signer claim {"kty":"RSA"|"EC","x5c":["<std b64 DER of x5c[0]>"]}.
 * CL_ESTATE when not verified or unsigned, CL_ENOENT when the signer was a bare jwk without a
 * certificate (the claim requires x5c, §5.3), CL_ENOMEM. */
CL_MUST_CHECK int cl_jws_signer_jwk(const cl_jws *j, json_t **out);

/* The JOSE signature of `input` with `key` under `alg` (RS256/RSA256/RS384/RS512/PS256: RSA key;
 * ES256/ES384/ES512: EC key, raw r||s output). *sig is cl_malloc'd. Used for the service's tokens
 * and by tests to play the clients. CL_EUNSUPPORTED for an unknown alg or a key that does not fit.
 */
CL_MUST_CHECK int cl_jws_sign_input(EVP_PKEY *key, const char *alg, const char *input, size_t len,
                                    uint8_t **sig, size_t *siglen);

/* ---- outgoing tokens (§5.1, §5.5) ---------------------------------------------------------- */

/* header_b64 "." payload_b64 "." sig_b64 with header exactly
 * {"alg":"RS256","jku":"<jku>","kid":"<kid>","typ":"JWT"} and payload serialised with
 * JSON_COMPACT|JSON_SORT_KEYS|JSON_ENSURE_ASCII; unpadded base64url. rsa_key: RSA private key of
 * at least 2048 bits. payload must be a JSON object. *out NUL-terminated, cl_malloc'd. */
CL_MUST_CHECK int cl_jwt_sign(EVP_PKEY *rsa_key, const char *kid, const char *jku,
                              const json_t *payload, char **out);
/* The same with header {"alg":"none","jku":…,"kid":…,"typ":"JWT"} and an empty signature
 * segment: the token ends with '.'. */
CL_MUST_CHECK int cl_jwt_unsigned(const char *kid, const char *jku, const json_t *payload,
                                  char **out);

/* ---- token signing key material (§5.1, §5.6) ----------------------------------------------- */

/* A fresh RSA-2048 key and a self-signed X.509v3 certificate for it: subject = issuer =
 * CN=<subject_cn>, positive random 127-bit serial, valid from now_unix for
 * CL_JWS_SIGNING_CERT_DAYS, basicConstraints CA:FALSE, keyUsage digitalSignature, subject key
 * identifier, sha256WithRSAEncryption. */
CL_MUST_CHECK int cl_jws_signing_key_generate(EVP_PKEY **key, X509 **cert, const char *subject_cn,
                                              int64_t now_unix);
/* kid = standard base64 (with padding) of SHA-256 over the DER certificate: 44 chars + NUL. */
CL_MUST_CHECK int cl_jws_kid(X509 *cert, char out[64]);
/* /certs entry {"kid","kty":"RSA","x5c":["<std b64 DER>"],"alg":"RS256","use":"sig","n","e"}
 * (members in this order). key may be NULL (the certificate's key is used); when given it must be
 * the certificate's key (CL_EINVAL otherwise). CL_EKEYTYPE unless RSA. */
CL_MUST_CHECK int cl_jwks_entry(X509 *cert, EVP_PKEY *key, json_t **out);

/* ---- administrators' bearer JWTs (§8, mode `jwt`) ------------------------------------------ */

typedef struct cl_jwks cl_jwks;

/* {"keys":[…]} (RFC 7517 §5). Usable members: kty "RSA" (n, e; 2048..8192 bits) or "EC" (crv
 * P-256/P-384/P-521, x, y, point on the curve); kid (string, optional); alg (optional: when present
 * the key is used only with that alg); x5c (optional: x5c[0] must be a certificate for the same
 * key; when it is the only key material, its key is used). Keys with "use" other than "sig" and
 * keys of other types (oct, OKP) are skipped; a malformed RSA/EC key is an error. At least one
 * usable key is required. CL_EJSON / CL_EFORMAT / CL_EPEM / CL_ENOENT (no usable key). */
CL_MUST_CHECK int cl_jwks_parse(const char *json, size_t len, cl_jwks **out, char *err,
                                size_t errlen);
void cl_jwks_free(cl_jwks *k);
/* Number of usable keys. */
size_t cl_jwks_count(const cl_jwks *k);

/* Validates a bearer token:
 *  alg in RS256 RS384 RS512 PS256 ES256 ES384 (ESxxx: key on the matching curve, raw r||s only);
 *  never none, never HMAC -> CL_EUNSUPPORTED; "crit" -> CL_EUNSUPPORTED;
 *  key: the JWKS key(s) whose kid equals the header kid; without a kid, the only key of a
 *  one-key JWKS -> CL_ENOENT when none is selected; header x5c/jwk/jku are ignored;
 *  signature -> CL_ESIG;
 *  payload a JSON object -> CL_EJSON;
 *  iss a string equal to `issuer` byte for byte -> CL_EINVAL;
 *  aud a string equal to `audience`, or an array containing it -> CL_EINVAL;
 *  exp required, numeric, now < exp + leeway -> CL_EEXPIRED;
 *  nbf optional, numeric, nbf <= now + leeway -> CL_EEXPIRED;
 *  iat optional, numeric, iat <= now + leeway -> CL_EINVAL.
 * leeway_s in [0, 86400]. On success *claims (may be NULL) receives the payload (one reference). */
CL_MUST_CHECK int cl_jwt_validate(const char *token, size_t len, const cl_jwks *keys,
                                  const char *issuer, const char *audience, int64_t now_unix,
                                  int64_t leeway_s, json_t **claims, char *err, size_t errlen);

#endif
