/*
 * aead.c — AES-256-GCM (NIST SP 800-38D) with a 96-bit IV and a 128-bit tag, over OpenSSL EVP.
 *
 * Buffers are caller-owned; nothing is allocated except OpenSSL's cipher context. GCM is a stream
 * mode, so out == in is fine. On a failed decryption the plaintext produced so far is cleansed
 * before returning CL_EDECRYPT: unauthenticated plaintext must never be used.
 */
#include "crypto/aead.h"

#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#define CHUNK ((size_t)1 << 30) /* EVP update lengths are int */

/* Feeds AAD (out == NULL) or data through the cipher in int-sized pieces. */
static int update(EVP_CIPHER_CTX *ctx, int enc, uint8_t *out, const uint8_t *in, size_t len)
{
    while (len > 0) {
        int n = (int)(len < CHUNK ? len : CHUNK), got = 0;
        int ok = enc ? EVP_EncryptUpdate(ctx, out, &got, in, n)
                     : EVP_DecryptUpdate(ctx, out, &got, in, n);
        if (ok != 1 || (out != NULL && got != n))
            return 0;
        in += n;
        if (out != NULL)
            out += n;
        len -= (size_t)n;
    }
    return 1;
}

static int init(EVP_CIPHER_CTX *ctx, int enc, const uint8_t *key, const uint8_t *iv)
{
    /* Set the IV length explicitly rather than relying on the 12-byte default. */
    return EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) == 1 &&
           EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, CL_AEAD_IV_LEN, NULL) == 1 &&
           EVP_CipherInit_ex(ctx, NULL, NULL, key, iv, enc) == 1;
}

int cl_aead_encrypt(const uint8_t key[CL_AEAD_KEY_LEN], const uint8_t iv[CL_AEAD_IV_LEN],
                    const uint8_t *aad, size_t aadlen, const uint8_t *in, size_t len, uint8_t *out,
                    uint8_t tag[CL_AEAD_TAG_LEN])
{
    CL_ENSURE(key != NULL && iv != NULL && tag != NULL, CL_EINVAL);
    CL_ENSURE(aadlen == 0 || aad != NULL, CL_EINVAL);
    CL_ENSURE(len == 0 || (in != NULL && out != NULL), CL_EINVAL);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) {
        ERR_clear_error();
        return CL_ENOMEM;
    }
    int fin = 0;
    int ok = init(ctx, 1, key, iv) && update(ctx, 1, NULL, aad, aadlen) &&
             update(ctx, 1, out, in, len) && EVP_EncryptFinal_ex(ctx, out, &fin) == 1 && fin == 0 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CL_AEAD_TAG_LEN, tag) == 1;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        ERR_clear_error();
        if (len > 0)
            OPENSSL_cleanse(out, len);
        return CL_ECRYPTO;
    }
    return CL_OK;
}

int cl_aead_decrypt(const uint8_t key[CL_AEAD_KEY_LEN], const uint8_t iv[CL_AEAD_IV_LEN],
                    const uint8_t *aad, size_t aadlen, const uint8_t *in, size_t len,
                    const uint8_t tag[CL_AEAD_TAG_LEN], uint8_t *out)
{
    CL_ENSURE(key != NULL && iv != NULL && tag != NULL, CL_EINVAL);
    CL_ENSURE(aadlen == 0 || aad != NULL, CL_EINVAL);
    CL_ENSURE(len == 0 || (in != NULL && out != NULL), CL_EINVAL);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) {
        ERR_clear_error();
        return CL_ENOMEM;
    }
    int fin = 0;
    /* The ctrl takes a non-const pointer but only copies the tag. */
    int ok = init(ctx, 0, key, iv) && update(ctx, 0, NULL, aad, aadlen) &&
             update(ctx, 0, out, in, len) &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CL_AEAD_TAG_LEN, (void *)tag) == 1 &&
             EVP_DecryptFinal_ex(ctx, out, &fin) == 1 && fin == 0;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok) {
        ERR_clear_error();
        if (len > 0)
            OPENSSL_cleanse(out, len);
        return CL_EDECRYPT;
    }
    return CL_OK;
}
