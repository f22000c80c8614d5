/*
 * aead.h — AES-256-GCM with caller-supplied 12-byte IV and 16-byte tag.
 *
 * The ledger derives IVs deterministically from (seqno, view) (docs/ledger-format.md), so the same
 * (key, IV) pair is never used for two different plaintexts. Buffers are caller-owned; in-place
 * operation (out == in) is allowed. Decryption failure (bad tag) returns CL_EDECRYPT and leaves
 * `out` zeroed.
 */
#ifndef CLEDGER_CRYPTO_AEAD_H
#define CLEDGER_CRYPTO_AEAD_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define CL_AEAD_KEY_LEN 32
#define CL_AEAD_IV_LEN 12
#define CL_AEAD_TAG_LEN 16

CL_MUST_CHECK int cl_aead_encrypt(const uint8_t key[CL_AEAD_KEY_LEN],
                                  const uint8_t iv[CL_AEAD_IV_LEN], const uint8_t *aad,
                                  size_t aadlen, const uint8_t *in, size_t len, uint8_t *out,
                                  uint8_t tag[CL_AEAD_TAG_LEN]);
CL_MUST_CHECK int cl_aead_decrypt(const uint8_t key[CL_AEAD_KEY_LEN],
                                  const uint8_t iv[CL_AEAD_IV_LEN], const uint8_t *aad,
                                  size_t aadlen, const uint8_t *in, size_t len,
                                  const uint8_t tag[CL_AEAD_TAG_LEN], uint8_t *out);

#endif
