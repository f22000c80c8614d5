/*
 * ossl.h — helpers shared by the crypto layer's OpenSSL code (internal to src/crypto/).
 */
#ifndef CLEDGER_CRYPTO_OSSL_H
#define CLEDGER_CRYPTO_OSSL_H

#include <openssl/bio.h>
#include <stddef.h>

#include "base/err.h"

/* Clears OpenSSL's error queue (so no stale error leaks into a later call) and returns err. */
int cl_ossl_fail(int err);
/* Copies a memory BIO's contents into a new NUL-terminated string: from the secure heap when
 * `secret` (free with cl_secret_free(*out, *len + 1)), else cl_malloc (free with cl_free). The BIO
 * is not freed. */
CL_MUST_CHECK int cl_ossl_bio_string(BIO *bio, int secret, char **out, size_t *len);

#endif
