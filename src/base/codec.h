/*
 * codec.h — strict hex and base64 (standard RFC 4648 §4 with padding, and url-safe §5 without),
 * and UTF-8 sequence validation.
 *
 * Decoders reject anything that is not exactly the canonical alphabet: no whitespace, no stray
 * padding, no non-zero bits after the last symbol. OpenSSL's EVP_DecodeBlock is not used because it
 * skips whitespace and accepts non-canonical input, which would let two different receipts mean the
 * same thing. Output buffers are caller-owned; *_len() helpers give the sizes to allocate.
 */
#ifndef CLEDGER_BASE_CODEC_H
#define CLEDGER_BASE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* Writes v in decimal and a NUL into out (size >= CL_U64_DEC_MAX + 1); returns the length. For the
 * request path (transaction ids, request ids, commit evidence): printf costs ten times more. */
#define CL_U64_DEC_MAX 20
size_t cl_u64_dec(uint64_t v, char *out);
/* Writes "<a>.<b>" (a transaction id: view.seqno) and a NUL into out (size >= CL_U64_PAIR_DEC_MAX +
 * 1); returns the length. */
#define CL_U64_PAIR_DEC_MAX (2 * CL_U64_DEC_MAX + 1)
size_t cl_u64_pair_dec(uint64_t a, uint64_t b, char *out);

/* The value of one hex digit (either case), or -1. */
int cl_hex_digit(int c);
/* Writes 2*n lower-case hex characters and a NUL into out (size >= 2*n+1). */
void cl_hex_encode(const uint8_t *in, size_t n, char *out);
/* Decodes exactly `outlen` bytes from a hex string of length 2*outlen (either case). */
CL_MUST_CHECK int cl_hex_decode(const char *in, size_t inlen, uint8_t *out, size_t outlen);
/* Decodes a hex string of any even length into a new heap buffer (*out, *outlen). */
CL_MUST_CHECK int cl_hex_decode_alloc(const char *in, size_t inlen, uint8_t **out, size_t *outlen);

typedef enum { CL_B64_STD, CL_B64_URL } cl_b64_variant;

/* Encoded length (without NUL). */
size_t cl_b64_encoded_len(size_t n, cl_b64_variant v);
/* Writes the encoding and a NUL into out (size >= cl_b64_encoded_len + 1). */
void cl_b64_encode(const uint8_t *in, size_t n, char *out, cl_b64_variant v);
/* Upper bound of the decoded size. */
size_t cl_b64_decoded_max(size_t inlen);
/* Strict decode into out (capacity outcap); *outlen receives the decoded size. */
CL_MUST_CHECK int cl_b64_decode(const char *in, size_t inlen, uint8_t *out, size_t outcap,
                                size_t *outlen, cl_b64_variant v);
CL_MUST_CHECK int cl_b64_decode_alloc(const char *in, size_t inlen, uint8_t **out, size_t *outlen,
                                      cl_b64_variant v);
/* Lenient decode (attestation-api.md §1.5): either alphabet ('+/' or '-_'), '=' padding optional
 * but complete when present, nothing else (no whitespace). *out is heap-allocated with one extra
 * NUL byte after the *outlen decoded bytes (for text members); free with cl_free. */
CL_MUST_CHECK int cl_b64_decode_lenient_alloc(const char *in, size_t inlen, uint8_t **out,
                                              size_t *outlen);
/* Length of the well-formed UTF-8 sequence starting at p (p[0] >= 0x80, avail bytes readable), or
 * 0 when it is not one (RFC 3629 §4: no overlong forms, no surrogates, nothing above U+10FFFF). */
size_t cl_utf8_seq_len(const uint8_t *p, size_t avail);
/* 1 when s[0..n) is RFC 3629 UTF-8 without NUL bytes (what a JSON string may carry), 0 otherwise.
 */
int cl_utf8_valid(const char *s, size_t n);
/* Heap-allocated, NUL-terminated encoding; NULL on allocation failure. */
char *cl_b64_encode_alloc(const uint8_t *in, size_t n, cl_b64_variant v);

#endif
