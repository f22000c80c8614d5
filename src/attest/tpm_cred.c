/*
 * tpm_cred.c — AK trust for the TPM profile: credential activation (the verifier's half of
 * TPM2_MakeCredential, TPM 2.0 Part 1 §24 and Part 3 §12.6, done in software) and EK / AK
 * certificate chains (OpenSSL X509_verify_cert).
 *
 * MakeCredential, as the TPM reference implementation computes it for a storage key `ek` and the
 * Name of the credentialed object:
 *   seed            RSA: random, digest-size of ek.nameAlg, sent as OAEP(ek, seed, label
 *                   "IDENTITY\0", hash ek.nameAlg); ECC: KDFe(ek.nameAlg, Z, "IDENTITY",
 *                   ephemeral.x, ek.x) with Z the x-coordinate of ECDH(ephemeral, ek), sent as
 *                   the ephemeral point
 *   symKey          KDFa(ek.nameAlg, seed, "STORAGE", name, -, ek.symmetric.keyBits)
 *   encIdentity     AES-CFB(symKey, IV 0, TPM2B_DIGEST(secret))
 *   hmacKey         KDFa(ek.nameAlg, seed, "INTEGRITY", -, -, digest size)
 *   outerHMAC       HMAC(ek.nameAlg, hmacKey, encIdentity || name)
 *   TPM2B_ID_OBJECT u16 size || TPM2B_DIGEST(outerHMAC) || encIdentity
 * KDFa is SP 800-108 counter-mode HMAC (OpenSSL "KBKDF": u32 counter || label || 00 || context ||
 * u32 bits); KDFe is the SP 800-56A single-step KDF (OpenSSL "SSKDF": H(u32 counter || Z || info)).
 * Secrets (seed, keys, the credential) live in stack buffers wiped before return.
 */
#include "attest/tpm.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "crypto/hash.h"
#include "crypto/ossl.h"

__attribute__((format(printf, 4, 5))) static int fail(char *err, size_t errlen, int code,
                                                      const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

static void put_u16(uint8_t *p, size_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static const char *ek_curve(uint16_t curve, size_t *coord)
{
    switch (curve) {
    case CL_TPM_ECC_NIST_P256:
        *coord = 32;
        return "P-256";
    case CL_TPM_ECC_NIST_P384:
        *coord = 48;
        return "P-384";
    case CL_TPM_ECC_NIST_P521:
        *coord = 66;
        return "P-521";
    default:
        *coord = 0;
        return NULL;
    }
}

/* ---- KDFs ----------------------------------------------------------------------------------- */

/* KDFa (Part 1 §11.4.10.2): label without its NUL (OpenSSL inserts the 00 separator). */
static int kdfa(uint16_t hash, const uint8_t *key, size_t keylen, const char *label,
                const uint8_t *context_u, size_t ulen, uint8_t *out, size_t outlen)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "KBKDF", NULL);
    EVP_KDF_CTX *kctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM params[7];
    size_t i = 0;
    params[i++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_MODE, (char *)"counter", 0);
    params[i++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_MAC, (char *)"HMAC", 0);
    params[i++] = OSSL_PARAM_construct_utf8_string(
        OSSL_KDF_PARAM_DIGEST, (char *)EVP_MD_get0_name(cl_tpm_hash_md(hash)), 0);
    params[i++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)key, keylen);
    params[i++] =
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)label, strlen(label));
    if (ulen > 0)
        params[i++] =
            OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)context_u, ulen);
    params[i] = OSSL_PARAM_construct_end();
    int ok = kctx != NULL && EVP_KDF_derive(kctx, out, outlen, params) == 1;
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    return ok ? CL_OK : cl_ossl_fail(CL_ECRYPTO);
}

/* KDFe (Part 1 §11.4.10.3): H(counter || Z || "IDENTITY\0" || partyU || partyV). */
static int kdfe_identity(uint16_t hash, const uint8_t *z, size_t zlen, const uint8_t *party_u,
                         size_t ulen, const uint8_t *party_v, size_t vlen, uint8_t *out,
                         size_t outlen)
{
    static const char use[] = "IDENTITY"; /* sizeof includes the NUL, as KDFe requires */
    uint8_t info[sizeof use + 2 * CL_TPM_MAX_ECC_BYTES];
    if (ulen > CL_TPM_MAX_ECC_BYTES || vlen > CL_TPM_MAX_ECC_BYTES)
        return CL_EINVAL;
    memcpy(info, use, sizeof use);
    memcpy(info + sizeof use, party_u, ulen);
    memcpy(info + sizeof use + ulen, party_v, vlen);
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "SSKDF", NULL);
    EVP_KDF_CTX *kctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM params[4];
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                                 (char *)EVP_MD_get0_name(cl_tpm_hash_md(hash)), 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)z, zlen);
    params[2] =
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, sizeof use + ulen + vlen);
    params[3] = OSSL_PARAM_construct_end();
    int ok = kctx != NULL && EVP_KDF_derive(kctx, out, outlen, params) == 1;
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    return ok ? CL_OK : cl_ossl_fail(CL_ECRYPTO);
}

static const EVP_CIPHER *aes_cfb(uint16_t bits)
{
    switch (bits) {
    case 128:
        return EVP_aes_128_cfb128();
    case 192:
        return EVP_aes_192_cfb128();
    case 256:
        return EVP_aes_256_cfb128();
    default:
        return NULL;
    }
}

static int cfb(const EVP_CIPHER *c, const uint8_t *key, int enc, const uint8_t *in, size_t n,
               uint8_t *out)
{
    static const uint8_t iv[16];
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int l1 = 0, l2 = 0;
    int ok = ctx != NULL && EVP_CipherInit_ex(ctx, c, NULL, key, iv, enc) == 1 &&
             EVP_CipherUpdate(ctx, out, &l1, in, (int)n) == 1 &&
             EVP_CipherFinal_ex(ctx, out + l1, &l2) == 1 && (size_t)(l1 + l2) == n;
    EVP_CIPHER_CTX_free(ctx);
    return ok ? CL_OK : cl_ossl_fail(CL_ECRYPTO);
}

static int hmac(uint16_t hash, const uint8_t *key, size_t keylen, const uint8_t *a, size_t alen,
                const uint8_t *b, size_t blen, uint8_t *out)
{
    uint8_t msg[2 * CL_TPM_MAX_NAME + 2];
    size_t outlen = 0, dsz = cl_tpm_hash_size(hash);
    if (alen + blen > sizeof msg)
        return CL_EINVAL;
    memcpy(msg, a, alen);
    memcpy(msg + alen, b, blen);
    int ok = EVP_Q_mac(NULL, "HMAC", NULL, EVP_MD_get0_name(cl_tpm_hash_md(hash)), NULL, key,
                       keylen, msg, alen + blen, out, dsz, &outlen) != NULL &&
             outlen == dsz;
    return ok ? CL_OK : cl_ossl_fail(CL_ECRYPTO);
}

/* ---- make-credential ------------------------------------------------------------------------ */

static int check_ek(const cl_tpm_public *ek, char *err, size_t errlen)
{
    if (ek == NULL || ek->pkey == NULL)
        return fail(err, errlen, CL_EINVAL, "no EK public area");
    if ((ek->attributes & (CL_TPMA_RESTRICTED | CL_TPMA_DECRYPT)) !=
            (CL_TPMA_RESTRICTED | CL_TPMA_DECRYPT) ||
        (ek->attributes & CL_TPMA_SIGN))
        return fail(err, errlen, CL_EUNSUPPORTED,
                    "EK objectAttributes 0x%08x: credential activation needs a restricted "
                    "decryption (storage) key",
                    ek->attributes);
    if (ek->sym_alg != CL_TPM_ALG_AES || ek->sym_mode != CL_TPM_ALG_CFB ||
        aes_cfb(ek->sym_key_bits) == NULL)
        return fail(err, errlen, CL_EUNSUPPORTED,
                    "EK symmetric protection %s-%u-%s is not AES-CFB (128/192/256)",
                    cl_tpm_alg_name(ek->sym_alg), ek->sym_key_bits, cl_tpm_alg_name(ek->sym_mode));
    return CL_OK;
}

static int check_name(const uint8_t *name, size_t n, char *err, size_t errlen)
{
    if (name == NULL || n < 2 || n > CL_TPM_MAX_NAME)
        return fail(err, errlen, CL_EFORMAT, "AK Name of %zu bytes is not nameAlg || digest", n);
    uint16_t alg = (uint16_t)(name[0] << 8 | name[1]);
    size_t dsz = cl_tpm_hash_size(alg);
    if (dsz == 0 || n != 2 + dsz)
        return fail(err, errlen, CL_EFORMAT,
                    "AK Name of %zu bytes does not fit its nameAlg 0x%04x (needs 2 + digest size)",
                    n, alg);
    return CL_OK;
}

int cl_tpm_credential_blob(const cl_tpm_public *ek, const uint8_t *ak_name, size_t ak_name_len,
                           const uint8_t *secret, size_t secret_len, const uint8_t *seed,
                           size_t seed_len, cl_buf *id_object, char *err, size_t errlen)
{
    CL_TRY(check_ek(ek, err, errlen));
    CL_TRY(check_name(ak_name, ak_name_len, err, errlen));
    size_t dsz = cl_tpm_hash_size(ek->name_alg);
    if (secret == NULL || secret_len == 0 || secret_len > dsz)
        return fail(err, errlen, CL_EINVAL,
                    "credential secret of %zu bytes: must be 1 to %zu bytes (EK nameAlg %s)",
                    secret_len, dsz, cl_tpm_alg_name(ek->name_alg));
    if (seed == NULL || seed_len == 0 || seed_len > CL_TPM_MAX_DIGEST)
        return fail(err, errlen, CL_EINVAL, "seed of %zu bytes", seed_len);

    uint8_t cv[2 + CL_TPM_MAX_DIGEST], enc[2 + CL_TPM_MAX_DIGEST];
    uint8_t symkey[32], hkey[CL_TPM_MAX_DIGEST], mac[CL_TPM_MAX_DIGEST];
    size_t keybytes = ek->sym_key_bits / 8u, cvlen = 2 + secret_len;
    int rc;
    put_u16(cv, secret_len);
    memcpy(cv + 2, secret, secret_len);
    CL_GUARD(kdfa(ek->name_alg, seed, seed_len, "STORAGE", ak_name, ak_name_len, symkey, keybytes));
    CL_GUARD(cfb(aes_cfb(ek->sym_key_bits), symkey, 1, cv, cvlen, enc));
    CL_GUARD(kdfa(ek->name_alg, seed, seed_len, "INTEGRITY", NULL, 0, hkey, dsz));
    CL_GUARD(hmac(ek->name_alg, hkey, dsz, enc, cvlen, ak_name, ak_name_len, mac));

    uint8_t hdr[4];
    put_u16(hdr, 2 + dsz + cvlen);
    put_u16(hdr + 2, dsz);
    size_t old = id_object->len;
    if ((rc = cl_buf_append(id_object, hdr, 4)) < 0 ||
        (rc = cl_buf_append(id_object, mac, dsz)) < 0 ||
        (rc = cl_buf_append(id_object, enc, cvlen)) < 0)
        id_object->len = old;
out:
    cl_wipe(cv, sizeof cv);
    cl_wipe(symkey, sizeof symkey);
    cl_wipe(hkey, sizeof hkey);
    if (rc < 0 && rc != CL_ENOMEM)
        return fail(err, errlen, rc, "credential blob: OpenSSL failure");
    if (rc < 0)
        return fail(err, errlen, rc, "credential blob: out of memory");
    return CL_OK;
}

/* RSA EK: seed sent with OAEP, label "IDENTITY\0", hash = EK nameAlg (Part 1 annex B.10.3). */
static int rsa_seed(const cl_tpm_public *ek, const uint8_t *seed, size_t seed_len, uint8_t *out,
                    size_t *outlen)
{
    const EVP_MD *md = cl_tpm_hash_md(ek->name_alg);
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, ek->pkey, NULL);
    unsigned char *label = OPENSSL_memdup("IDENTITY", 9);
    int ok = c != NULL && label != NULL && EVP_PKEY_encrypt_init(c) == 1 &&
             EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_oaep_md(c, md) == 1 && EVP_PKEY_CTX_set_rsa_mgf1_md(c, md) == 1;
    if (ok && EVP_PKEY_CTX_set0_rsa_oaep_label(c, label, 9) == 1)
        label = NULL; /* owned by the context now */
    else
        ok = 0;
    ok = ok && EVP_PKEY_encrypt(c, out, outlen, seed, seed_len) == 1;
    OPENSSL_free(label);
    EVP_PKEY_CTX_free(c);
    return ok ? CL_OK : cl_ossl_fail(CL_ECRYPTO);
}

static int bn_param(const EVP_PKEY *k, const char *name, uint8_t *out, size_t len)
{
    BIGNUM *bn = NULL;
    int ok =
        EVP_PKEY_get_bn_param(k, name, &bn) == 1 && BN_bn2binpad(bn, out, (int)len) == (int)len;
    BN_free(bn);
    return ok ? CL_OK : cl_ossl_fail(CL_ECRYPTO);
}

/* ECDH x-coordinate, fixed length (the field size). */
static int ecdh(EVP_PKEY *priv, EVP_PKEY *peer, uint8_t *z, size_t cap, size_t *zlen)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, priv, NULL);
    *zlen = cap;
    int ok = c != NULL && EVP_PKEY_derive_init(c) == 1 && EVP_PKEY_derive_set_peer(c, peer) == 1 &&
             EVP_PKEY_derive(c, z, zlen) == 1;
    EVP_PKEY_CTX_free(c);
    return ok ? CL_OK : cl_ossl_fail(CL_ECRYPTO);
}

/* ECC EK: ephemeral key on the EK's curve; seed = KDFe(Z, "IDENTITY", eph.x, ek.x); the secret
 * sent is the TPMS_ECC_POINT of the ephemeral key. */
static int ecc_seed(const cl_tpm_public *ek, uint8_t *seed, size_t dsz, uint8_t *point,
                    size_t *point_len)
{
    size_t coord;
    const char *group = ek_curve(ek->ecc_curve, &coord);
    if (group == NULL)
        return CL_EUNSUPPORTED;
    EVP_PKEY *eph = EVP_PKEY_Q_keygen(NULL, NULL, "EC", group);
    uint8_t x[CL_TPM_MAX_ECC_BYTES], y[CL_TPM_MAX_ECC_BYTES], z[CL_TPM_MAX_ECC_BYTES];
    size_t zlen = 0;
    int rc = eph != NULL ? CL_OK : cl_ossl_fail(CL_ECRYPTO);
    if (rc == CL_OK)
        rc = bn_param(eph, OSSL_PKEY_PARAM_EC_PUB_X, x, coord);
    if (rc == CL_OK)
        rc = bn_param(eph, OSSL_PKEY_PARAM_EC_PUB_Y, y, coord);
    if (rc == CL_OK)
        rc = ecdh(eph, ek->pkey, z, sizeof z, &zlen);
    if (rc == CL_OK)
        rc = kdfe_identity(ek->name_alg, z, zlen, x, coord, ek->ecc_x, ek->ecc_x_len, seed, dsz);
    if (rc == CL_OK) {
        put_u16(point, coord);
        memcpy(point + 2, x, coord);
        put_u16(point + 2 + coord, coord);
        memcpy(point + 4 + coord, y, coord);
        *point_len = 4 + 2 * coord;
    }
    cl_wipe(z, sizeof z);
    EVP_PKEY_free(eph);
    return rc;
}

int cl_tpm_make_credential(const cl_tpm_public *ek, const uint8_t *ak_name, size_t ak_name_len,
                           const uint8_t *secret, size_t secret_len, cl_buf *id_object,
                           cl_buf *encrypted_secret, char *err, size_t errlen)
{
    CL_TRY(check_ek(ek, err, errlen));
    size_t dsz = cl_tpm_hash_size(ek->name_alg);
    uint8_t seed[CL_TPM_MAX_DIGEST];
    uint8_t es[2 + CL_TPM_MAX_RSA_BYTES];
    size_t eslen = sizeof es - 2;
    cl_buf blob = CL_BUF_INIT;
    int rc;
    if (ek->type == CL_TPM_ALG_RSA) {
        rc = cl_random(seed, dsz);
        if (rc < 0) {
            fail(err, errlen, rc, "make-credential: no random seed");
            goto out;
        }
        rc = rsa_seed(ek, seed, dsz, es + 2, &eslen);
        if (rc < 0) {
            fail(err, errlen, rc, "make-credential: RSA-OAEP encryption of the seed failed");
            goto out;
        }
    } else {
        rc = ecc_seed(ek, seed, dsz, es + 2, &eslen);
        if (rc < 0) {
            fail(err, errlen, rc, "make-credential: ECDH with the EK failed");
            goto out;
        }
    }
    put_u16(es, eslen);
    CL_GUARD(cl_tpm_credential_blob(ek, ak_name, ak_name_len, secret, secret_len, seed, dsz, &blob,
                                    err, errlen));
    size_t old = encrypted_secret->len;
    if ((rc = cl_buf_append(encrypted_secret, es, 2 + eslen)) < 0 ||
        (rc = cl_buf_append(id_object, blob.data, blob.len)) < 0) {
        encrypted_secret->len = old;
        fail(err, errlen, rc, "make-credential: out of memory");
    }
out:
    cl_wipe(seed, sizeof seed);
    cl_buf_free(&blob);
    return rc;
}

int cl_tpm_credential_file(const uint8_t *id_object, size_t id_len, const uint8_t *encrypted_secret,
                           size_t enc_len, cl_buf *out)
{
    static const uint8_t hdr[8] = {0xba, 0xdc, 0xc0, 0xde, 0, 0, 0, 1};
    size_t old = out->len;
    int rc;
    if ((rc = cl_buf_append(out, hdr, sizeof hdr)) < 0 ||
        (rc = cl_buf_append(out, id_object, id_len)) < 0 ||
        (rc = cl_buf_append(out, encrypted_secret, enc_len)) < 0)
        out->len = old;
    return rc;
}

/* ---- activate-credential in software -------------------------------------------------------- */

/* TPM2B occupying exactly the input. */
static int whole_tpm2b(const uint8_t *p, size_t n, const uint8_t **body, size_t *blen)
{
    cl_cursor c;
    uint16_t sz;
    cl_cursor_init(&c, p, n);
    if (cl_cursor_u16_be(&c, &sz) < 0 || cl_cursor_view(&c, body, sz) < 0 ||
        cl_cursor_left(&c) != 0)
        return CL_EFORMAT;
    *blen = sz;
    return CL_OK;
}

static int recover_seed(EVP_PKEY *ek_priv, const cl_tpm_public *ek, const uint8_t *enc,
                        size_t enc_len, uint8_t *seed, size_t dsz, char *err, size_t errlen)
{
    const uint8_t *body;
    size_t blen;
    if (whole_tpm2b(enc, enc_len, &body, &blen) < 0)
        return fail(err, errlen, CL_EFORMAT, "encrypted secret is not one TPM2B (%zu bytes)",
                    enc_len);
    if (ek->type == CL_TPM_ALG_RSA) {
        const EVP_MD *md = cl_tpm_hash_md(ek->name_alg);
        EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, ek_priv, NULL);
        unsigned char *label = OPENSSL_memdup("IDENTITY", 9);
        uint8_t out[CL_TPM_MAX_RSA_BYTES];
        size_t outlen = sizeof out;
        int ok = c != NULL && label != NULL && EVP_PKEY_decrypt_init(c) == 1 &&
                 EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING) == 1 &&
                 EVP_PKEY_CTX_set_rsa_oaep_md(c, md) == 1 &&
                 EVP_PKEY_CTX_set_rsa_mgf1_md(c, md) == 1;
        if (ok && EVP_PKEY_CTX_set0_rsa_oaep_label(c, label, 9) == 1)
            label = NULL;
        else
            ok = 0;
        ok = ok && EVP_PKEY_decrypt(c, out, &outlen, body, blen) == 1;
        OPENSSL_free(label);
        EVP_PKEY_CTX_free(c);
        if (!ok || outlen != dsz) {
            cl_wipe(out, sizeof out);
            return fail(err, errlen, cl_ossl_fail(CL_EDECRYPT),
                        "encrypted secret does not decrypt with the EK private key");
        }
        memcpy(seed, out, dsz);
        cl_wipe(out, sizeof out);
        return CL_OK;
    }
    /* ECC: TPMS_ECC_POINT of the ephemeral key. */
    size_t coord;
    const char *group = ek_curve(ek->ecc_curve, &coord);
    cl_cursor c;
    uint16_t xl, yl;
    const uint8_t *x, *y;
    cl_cursor_init(&c, body, blen);
    if (group == NULL || cl_cursor_u16_be(&c, &xl) < 0 || xl > coord ||
        cl_cursor_view(&c, &x, xl) < 0 || cl_cursor_u16_be(&c, &yl) < 0 || yl > coord ||
        cl_cursor_view(&c, &y, yl) < 0 || cl_cursor_left(&c) != 0 || xl == 0 || yl == 0)
        return fail(err, errlen, CL_EFORMAT,
                    "encrypted secret is not an ECC point on the EK curve");
    uint8_t pt[1 + 2 * CL_TPM_MAX_ECC_BYTES], z[CL_TPM_MAX_ECC_BYTES];
    memset(pt, 0, sizeof pt);
    pt[0] = 4;
    memcpy(pt + 1 + coord - xl, x, xl);
    memcpy(pt + 1 + 2 * coord - yl, y, yl);
    OSSL_PARAM params[3];
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)group, 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt, 1 + 2 * coord);
    params[2] = OSSL_PARAM_construct_end();
    EVP_PKEY *peer = NULL;
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    size_t zlen = 0;
    int rc = CL_EFORMAT;
    if (pc != NULL && EVP_PKEY_fromdata_init(pc) == 1 &&
        EVP_PKEY_fromdata(pc, &peer, EVP_PKEY_PUBLIC_KEY, params) == 1 &&
        ecdh(ek_priv, peer, z, sizeof z, &zlen) == CL_OK)
        rc = kdfe_identity(ek->name_alg, z, zlen, x, xl, ek->ecc_x, ek->ecc_x_len, seed, dsz);
    cl_wipe(z, sizeof z);
    EVP_PKEY_free(peer);
    EVP_PKEY_CTX_free(pc);
    if (rc < 0)
        return fail(err, errlen, cl_ossl_fail(rc),
                    "encrypted secret: ECDH with the EK private key failed");
    return CL_OK;
}

int cl_tpm_activate_credential_soft(EVP_PKEY *ek_priv, const cl_tpm_public *ek,
                                    const uint8_t *ak_name, size_t ak_name_len,
                                    const uint8_t *id_object, size_t id_len,
                                    const uint8_t *encrypted_secret, size_t enc_len, cl_buf *secret,
                                    uint8_t *seed_out, size_t seed_cap, size_t *seed_len, char *err,
                                    size_t errlen)
{
    CL_TRY(check_ek(ek, err, errlen));
    CL_TRY(check_name(ak_name, ak_name_len, err, errlen));
    if (ek_priv == NULL || id_object == NULL || encrypted_secret == NULL)
        return fail(err, errlen, CL_EINVAL, "activate-credential needs the EK key and both blobs");
    size_t dsz = cl_tpm_hash_size(ek->name_alg);
    uint8_t seed[CL_TPM_MAX_DIGEST], hkey[CL_TPM_MAX_DIGEST], mac[CL_TPM_MAX_DIGEST];
    uint8_t symkey[32], cv[2 + CL_TPM_MAX_DIGEST];
    int rc;
    CL_GUARD(recover_seed(ek_priv, ek, encrypted_secret, enc_len, seed, dsz, err, errlen));

    const uint8_t *body, *hm, *enc;
    size_t blen;
    uint16_t hlen;
    cl_cursor c;
    CL_GUARD_IF(
        whole_tpm2b(id_object, id_len, &body, &blen) < 0,
        fail(err, errlen, CL_EFORMAT, "credential blob is not one TPM2B (%zu bytes)", id_len));
    cl_cursor_init(&c, body, blen);
    CL_GUARD_IF(
        cl_cursor_u16_be(&c, &hlen) < 0 || hlen != dsz || cl_cursor_view(&c, &hm, hlen) < 0,
        fail(err, errlen, CL_EFORMAT, "credential blob: integrity HMAC is not %zu bytes", dsz));
    size_t enclen = cl_cursor_left(&c);
    CL_GUARD_IF(enclen < 2 || enclen > sizeof cv,
                fail(err, errlen, CL_EFORMAT, "credential blob: encrypted credential of %zu bytes",
                     enclen));
    CL_GUARD_IF(cl_cursor_view(&c, &enc, enclen) < 0, CL_EFORMAT);
    CL_GUARD(kdfa(ek->name_alg, seed, dsz, "INTEGRITY", NULL, 0, hkey, dsz));
    CL_GUARD(hmac(ek->name_alg, hkey, dsz, enc, enclen, ak_name, ak_name_len, mac));
    CL_GUARD_IF(!cl_ct_equal(mac, hm, dsz),
                fail(err, errlen, CL_ESIG,
                     "credential blob integrity HMAC does not verify (other EK, AK Name or seed)"));
    CL_GUARD(kdfa(ek->name_alg, seed, dsz, "STORAGE", ak_name, ak_name_len, symkey,
                  ek->sym_key_bits / 8u));
    CL_GUARD(cfb(aes_cfb(ek->sym_key_bits), symkey, 0, enc, enclen, cv));
    size_t slen = (size_t)cv[0] << 8 | cv[1];
    CL_GUARD_IF(slen != enclen - 2,
                fail(err, errlen, CL_EFORMAT,
                     "credential: size %zu does not match the %zu bytes decrypted", slen,
                     enclen - 2));
    CL_GUARD(cl_buf_append(secret, cv + 2, slen));
    if (seed_out != NULL && seed_cap >= dsz) {
        memcpy(seed_out, seed, dsz);
        if (seed_len != NULL)
            *seed_len = dsz;
    }
    rc = CL_OK;
out:
    cl_wipe(seed, sizeof seed);
    cl_wipe(hkey, sizeof hkey);
    cl_wipe(symkey, sizeof symkey);
    cl_wipe(cv, sizeof cv);
    return rc;
}

/* ---- certificates --------------------------------------------------------------------------- */

#define OID_TCG_KP_EK "2.23.133.8.1" /* tcg-kp-EKCertificate */
#define OID_TCG_KP_AK "2.23.133.8.3" /* tcg-kp-AIKCertificate */

/* Whether the leaf's extended key usage lists oid: 1 yes, 0 no, -1 out of memory. */
static int eku_has(X509 *leaf, const char *oid)
{
    EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(leaf, NID_ext_key_usage, NULL, NULL);
    ASN1_OBJECT *want = OBJ_txt2obj(oid, 1);
    int found = want != NULL ? 0 : -1;
    for (int i = 0; want != NULL && eku != NULL && i < sk_ASN1_OBJECT_num(eku); i++) {
        if (OBJ_cmp(sk_ASN1_OBJECT_value(eku, i), want) == 0)
            found = 1;
    }
    ASN1_OBJECT_free(want);
    EXTENDED_KEY_USAGE_free(eku);
    return found;
}

/* What the leaf may be used for (chain building alone does not look at the leaf's extensions):
 * not a CA; keyUsage, when present, allows the key's use (an AK signs; an EK decrypts, RSA
 * keyEncipherment or ECC keyAgreement); extendedKeyUsage, when present, names the TCG purpose
 * (tcg-kp-AIKCertificate, tcg-kp-EKCertificate). So a TLS certificate, an EK certificate used as
 * an AK's or the issuing CA itself is refused even when the public key matches. */
static int leaf_purpose(X509 *leaf, int ak, char *err, size_t errlen)
{
    const char *what = ak ? "AK" : "EK";
    uint32_t flags = X509_get_extension_flags(leaf);
    if (flags & EXFLAG_INVALID)
        return fail(err, errlen, CL_EPEM, "%s certificate has malformed extensions", what);
    if (X509_check_ca(leaf) != 0)
        return fail(err, errlen, CL_ECHAIN, "%s certificate is a CA certificate, not an %s's", what,
                    what);
    if (flags & EXFLAG_KUSAGE) {
        uint32_t ku = X509_get_key_usage(leaf);
        uint32_t need = ak ? KU_DIGITAL_SIGNATURE : KU_KEY_ENCIPHERMENT | KU_KEY_AGREEMENT;
        if ((ku & need) == 0)
            return fail(err, errlen, CL_ECHAIN, "%s certificate key usage does not allow %s", what,
                        ak ? "digitalSignature" : "keyEncipherment or keyAgreement");
    }
    if (flags & EXFLAG_XKUSAGE) {
        int has = eku_has(leaf, ak ? OID_TCG_KP_AK : OID_TCG_KP_EK);
        if (has < 0)
            return CL_ENOMEM;
        if (!has)
            return fail(err, errlen, CL_ECHAIN,
                        "%s certificate extended key usage does not list %s (%s)", what,
                        ak ? "tcg-kp-AIKCertificate" : "tcg-kp-EKCertificate",
                        ak ? OID_TCG_KP_AK : OID_TCG_KP_EK);
    }
    return CL_OK;
}

/* ak: an AK certificate (else an EK certificate). */
static int verify_cert(int ak, const uint8_t *der, size_t n, const char *roots_pem,
                       size_t roots_len, EVP_PKEY *match, int64_t now_unix, char *err,
                       size_t errlen)
{
    const char *what = ak ? "AK" : "EK";
    int rc = CL_OK;
    X509 *leaf = NULL;
    X509_STORE *store = NULL;
    X509_STORE_CTX *ctx = NULL;
    BIO *bio = NULL;
    const unsigned char *q = der;
    if (der == NULL || n == 0 || n > 1u << 20 || roots_pem == NULL || roots_len > (size_t)1 << 24)
        return fail(err, errlen, CL_EINVAL, "%s certificate or roots missing", what);
    leaf = d2i_X509(NULL, &q, (long)n);
    CL_GUARD_IF(leaf == NULL || q != der + n,
                fail(err, errlen, CL_EPEM, "%s certificate is not one DER certificate (%zu bytes)",
                     what, n));

    store = X509_STORE_new();
    bio = BIO_new_mem_buf(roots_pem, (int)roots_len);
    CL_GUARD_IF(store == NULL || bio == NULL, CL_ENOMEM);
    int count = 0;
    X509 *ca;
    ERR_clear_error();
    while ((ca = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        int ok = X509_STORE_add_cert(store, ca) == 1;
        X509_free(ca);
        CL_GUARD_IF(!ok, fail(err, errlen, CL_ECRYPTO, "cannot add root %d to the store", count));
        count++;
    }
    unsigned long e = ERR_peek_last_error();
    CL_GUARD_IF(
        e != 0 && !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE),
        fail(err, errlen, CL_EPEM, "configured roots: PEM certificate %d is malformed", count + 1));
    CL_GUARD_IF(count == 0, fail(err, errlen, CL_EPEM, "configured roots hold no PEM certificate"));
    /* Every configured certificate is an anchor: a deployment may pin a vendor's issuing CA. */
    X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN);

    ctx = X509_STORE_CTX_new();
    CL_GUARD_IF(ctx == NULL || X509_STORE_CTX_init(ctx, store, leaf, NULL) != 1, CL_ENOMEM);
    X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), (time_t)now_unix);
    if (X509_verify_cert(ctx) != 1) {
        int v = X509_STORE_CTX_get_error(ctx);
        int depth = X509_STORE_CTX_get_error_depth(ctx);
        if (v == X509_V_ERR_CERT_NOT_YET_VALID || v == X509_V_ERR_CERT_HAS_EXPIRED)
            rc = fail(err, errlen, CL_EEXPIRED, "%s certificate chain (depth %d): %s", what, depth,
                      X509_verify_cert_error_string(v));
        else
            rc = fail(err, errlen, CL_ECHAIN,
                      "%s certificate does not chain to a configured root: %s (depth %d)", what,
                      X509_verify_cert_error_string(v), depth);
        goto out;
    }
    rc = leaf_purpose(leaf, ak, err, errlen);
    if (rc == CL_OK && match != NULL && EVP_PKEY_eq(X509_get0_pubkey(leaf), match) != 1)
        rc = fail(err, errlen, CL_EBINDING,
                  "%s certificate public key differs from the %s public area", what, what);
out:
    ERR_clear_error();
    X509_STORE_CTX_free(ctx);
    BIO_free(bio);
    X509_STORE_free(store);
    X509_free(leaf);
    if (rc == CL_ENOMEM)
        return fail(err, errlen, rc, "%s certificate check: out of memory", what);
    return rc;
}

int cl_tpm_ek_cert_verify(const uint8_t *der, size_t n, const char *roots_pem, size_t roots_len,
                          const cl_tpm_public *ek, int64_t now_unix, char *err, size_t errlen)
{
    if (ek != NULL && ek->pkey == NULL)
        return fail(err, errlen, CL_EINVAL, "EK public area has no key");
    return verify_cert(0, der, n, roots_pem, roots_len, ek != NULL ? ek->pkey : NULL, now_unix, err,
                       errlen);
}

int cl_tpm_ak_cert_verify(const uint8_t *der, size_t n, const char *roots_pem, size_t roots_len,
                          const cl_tpm_public *ak, int64_t now_unix, char *err, size_t errlen)
{
    if (ak == NULL || ak->pkey == NULL)
        return fail(err, errlen, CL_EINVAL, "AK certificate check needs the AK public area");
    return verify_cert(1, der, n, roots_pem, roots_len, ak->pkey, now_unix, err, errlen);
}
