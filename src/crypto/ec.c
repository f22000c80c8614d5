/*
 * ec.c — EC P-256/P-384 keys over OpenSSL 3 EVP.
 *
 * Ownership: a cl_key and its EVP_PKEY are owned by the caller of cl_key_generate /
 * cl_key_from_pkey / cl_key_*_pem and released with cl_key_free. The struct itself comes from
 * cl_malloc (allocation seam); OpenSSL's own allocations do not go through the seam.
 *
 * Private-key PEM text is a secret: cl_key_private_pem returns it in cl_secret_alloc memory (wiped
 * on cl_secret_free), it is built in a secure-heap memory BIO, and files holding it are read into
 * secret memory as well. Key files are written 0600 through a temporary file created with O_EXCL.
 *
 * Signing is "prehashed" (spec/receipts.md §3 step 6): the digest is handed to EVP_PKEY_sign as is,
 * with the signature md set only to tell OpenSSL how long the digest is. A 32-byte digest is a
 * SHA-256 value and a 48-byte one a SHA-384 value, on either curve.
 */
#include "crypto/ec.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/file.h"
#include "crypto/hash.h"
#include "crypto/ossl.h"

#define KEY_FILE_MAX (64 * 1024) /* a PEM EC private key is well under 1 KiB */

/* Every failure path that may have left entries on OpenSSL's per-thread error queue clears it, so a
 * later, unrelated ERR_get_error() does not report a stale cause. */
static const EVP_MD *md_for_digest_len(size_t dlen)
{
    if (dlen == CL_SHA256_LEN)
        return EVP_sha256();
    if (dlen == CL_SHA384_LEN)
        return EVP_sha384();
    return NULL;
}

/* The curve of an EC key, or 0 when the key is not EC on a supported named curve. */
static cl_curve pkey_curve(EVP_PKEY *pkey)
{
    char name[64];
    size_t n = 0;
    if (!EVP_PKEY_is_a(pkey, "EC"))
        return 0;
    if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof name, &n) !=
        1) {
        ERR_clear_error();
        return 0; /* explicit parameters or no group at all */
    }
    int nid = OBJ_txt2nid(name);
    if (nid == NID_undef)
        nid = EC_curve_nist2nid(name);
    if (nid == NID_X9_62_prime256v1)
        return CL_CURVE_P256;
    if (nid == NID_secp384r1)
        return CL_CURVE_P384;
    return 0;
}

static int pkey_has_private(EVP_PKEY *pkey)
{
    BIGNUM *priv = NULL;
    int has = EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_PRIV_KEY, &priv) == 1 && priv != NULL;
    BN_clear_free(priv);
    ERR_clear_error();
    return has;
}

/* Wraps pkey, taking over the caller's reference on success only. */
static int wrap_pkey(EVP_PKEY *pkey, cl_key **out)
{
    cl_curve curve = pkey_curve(pkey);
    CL_ENSURE(curve != 0, CL_EKEYTYPE);
    cl_key *k = cl_malloc(sizeof *k);
    CL_ENSURE(k != NULL, CL_ENOMEM);
    k->pkey = pkey;
    k->curve = curve;
    k->has_private = pkey_has_private(pkey);
    *out = k;
    return CL_OK;
}

int cl_key_generate(cl_curve curve, cl_key **out)
{
    const char *group;
    if (curve == CL_CURVE_P256)
        group = "P-256";
    else if (curve == CL_CURVE_P384)
        group = "P-384";
    else
        return CL_EKEYTYPE;
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", group);
    if (pkey == NULL)
        return cl_ossl_fail(CL_ECRYPTO);
    int rc = wrap_pkey(pkey, out);
    if (rc < 0)
        EVP_PKEY_free(pkey);
    return rc;
}

int cl_key_from_pkey(EVP_PKEY *pkey, cl_key **out)
{
    CL_ENSURE(pkey != NULL, CL_EINVAL);
    CL_ENSURE(pkey_curve(pkey) != 0, CL_EKEYTYPE);
    if (EVP_PKEY_up_ref(pkey) != 1)
        return cl_ossl_fail(CL_ECRYPTO);
    int rc = wrap_pkey(pkey, out);
    if (rc < 0)
        EVP_PKEY_free(pkey);
    return rc;
}

void cl_key_free(cl_key *k)
{
    if (k == NULL)
        return;
    EVP_PKEY_free(k->pkey);
    cl_free(k);
}

/* Never prompt on a terminal for an encrypted key: encrypted keys are simply not supported. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

int cl_key_from_private_pem(const char *pem, size_t len, cl_key **out)
{
    CL_ENSURE(pem != NULL && len > 0 && len <= INT_MAX, CL_EINVAL);
    CL_ENSURE(memchr(pem, '\0', len) == NULL, CL_EPEM);
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL)
        return cl_ossl_fail(CL_ENOMEM);
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL);
    BIO_free(bio);
    if (pkey == NULL)
        return cl_ossl_fail(CL_EPEM);
    int rc = wrap_pkey(pkey, out);
    if (rc == CL_OK && !(*out)->has_private) {
        cl_key_free(*out);
        *out = NULL;
        return CL_EPEM;
    }
    if (rc < 0)
        EVP_PKEY_free(pkey);
    return rc;
}

/* Reads a whole small file into secret memory (NUL-terminated); *cap is the allocation size. */
static int read_secret_file(const char *path, char **out, size_t *len, size_t *cap)
{
    int rc = CL_OK;
    char *buf = NULL;
    size_t n = 0, bufcap = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? CL_ENOENT : CL_EIO;
    struct stat st;
    CL_GUARD_IF(fstat(fd, &st) != 0, CL_EIO);
    CL_GUARD_IF(!S_ISREG(st.st_mode), CL_EINVAL);
    CL_GUARD_IF(st.st_size > KEY_FILE_MAX, CL_EOVERFLOW);
    bufcap = (size_t)st.st_size + 1;
    buf = cl_secret_alloc(bufcap);
    CL_GUARD_IF(buf == NULL, CL_ENOMEM);
    while (n < bufcap - 1) {
        ssize_t r = read(fd, buf + n, bufcap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        CL_GUARD_IF(r < 0, CL_EIO);
        if (r == 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    *cap = bufcap;
    buf = NULL;
out:
    cl_secret_free(buf, bufcap);
    close(fd);
    return rc;
}

int cl_key_load_private_pem(const char *path, cl_key **out)
{
    char *pem = NULL;
    size_t len = 0, cap = 0;
    CL_TRY(read_secret_file(path, &pem, &len, &cap));
    int rc = len == 0 ? CL_EPEM : cl_key_from_private_pem(pem, len, out);
    cl_secret_free(pem, cap);
    return rc;
}

int cl_key_private_pem(const cl_key *k, char **pem, size_t *len)
{
    CL_ENSURE(k != NULL && k->has_private, CL_EINVAL);
    int rc = CL_OK;
    /* Secure-heap BIO: the PEM text never sits in ordinary heap memory. */
    BIO *bio = BIO_new(BIO_s_secmem());
    CL_ENSURE(bio != NULL, cl_ossl_fail(CL_ENOMEM));
    CL_GUARD_IF(PEM_write_bio_PrivateKey(bio, k->pkey, NULL, NULL, 0, NULL, NULL) != 1,
                cl_ossl_fail(CL_ECRYPTO));
    CL_GUARD(cl_ossl_bio_string(bio, 1, pem, len));
out:
    BIO_free(bio);
    return rc;
}

/* Atomic replace of `path` (spec'd in ec.h): a stale path.tmp is removed, the new content is
 * written to path.tmp created with O_EXCL (so a planted symlink is never followed), fsync'd,
 * renamed over path, and the directory is fsync'd so the rename itself is durable. */
int cl_key_save_private_pem(const cl_key *k, const char *path)
{
    CL_ENSURE(path != NULL, CL_EINVAL);
    char *pem = NULL;
    size_t len = 0;
    CL_TRY(cl_key_private_pem(k, &pem, &len));
    int rc = cl_write_file_atomic(path, pem, len, 0600);
    cl_secret_free(pem, len + 1);
    return rc;
}

int cl_key_spki_der(const cl_key *k, cl_buf *out)
{
    CL_ENSURE(k != NULL && out != NULL, CL_EINVAL);
    int n = i2d_PUBKEY(k->pkey, NULL);
    if (n <= 0)
        return cl_ossl_fail(CL_ECRYPTO);
    CL_TRY(cl_buf_reserve(out, (size_t)n));
    unsigned char *p = out->data + out->len;
    if (i2d_PUBKEY(k->pkey, &p) != n)
        return cl_ossl_fail(CL_ECRYPTO);
    out->len += (size_t)n;
    return CL_OK;
}

int cl_key_spki_sha256(const cl_key *k, uint8_t out[32])
{
    cl_buf b = CL_BUF_INIT;
    int rc = cl_key_spki_der(k, &b);
    if (rc == CL_OK)
        cl_sha256(b.data, b.len, out);
    cl_buf_free(&b);
    return rc;
}

/* A context set up for sign or verify over a digest of length dlen. */
static int prehashed_ctx(const cl_key *k, size_t dlen, int sign, EVP_PKEY_CTX **out)
{
    const EVP_MD *md = md_for_digest_len(dlen);
    CL_ENSURE(md != NULL, CL_EINVAL);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
    CL_ENSURE(ctx != NULL, cl_ossl_fail(CL_ENOMEM));
    int ok = sign ? EVP_PKEY_sign_init(ctx) : EVP_PKEY_verify_init(ctx);
    /* The md only fixes the expected digest length and the OID: the digest is not hashed again. */
    if (ok != 1 || EVP_PKEY_CTX_set_signature_md(ctx, md) != 1) {
        EVP_PKEY_CTX_free(ctx);
        return cl_ossl_fail(CL_ECRYPTO);
    }
    *out = ctx;
    return CL_OK;
}

int cl_key_sign_prehashed(const cl_key *k, const uint8_t *digest, size_t dlen, uint8_t *sig,
                          size_t *siglen)
{
    CL_ENSURE(k != NULL && digest != NULL && sig != NULL && siglen != NULL, CL_EINVAL);
    CL_ENSURE(k->has_private, CL_EINVAL);
    EVP_PKEY_CTX *ctx = NULL;
    CL_TRY(prehashed_ctx(k, dlen, 1, &ctx));
    /* *siglen is output only: the caller's buffer holds CL_ECDSA_MAX_DER bytes (ec.h). */
    size_t n = CL_ECDSA_MAX_DER;
    int ok = EVP_PKEY_sign(ctx, sig, &n, digest, dlen);
    EVP_PKEY_CTX_free(ctx);
    if (ok != 1)
        return cl_ossl_fail(CL_ECRYPTO);
    *siglen = n;
    return CL_OK;
}

int cl_key_verify_prehashed(const cl_key *k, const uint8_t *digest, size_t dlen, const uint8_t *sig,
                            size_t siglen)
{
    CL_ENSURE(k != NULL && digest != NULL, CL_EINVAL);
    if (sig == NULL || siglen == 0 || siglen > CL_ECDSA_MAX_DER)
        return CL_ESIG;
    EVP_PKEY_CTX *ctx = NULL;
    CL_TRY(prehashed_ctx(k, dlen, 0, &ctx));
    /* 1 valid, 0 wrong signature, <0 malformed DER (OpenSSL also rejects non-canonical DER). */
    int ok = EVP_PKEY_verify(ctx, sig, siglen, digest, dlen);
    EVP_PKEY_CTX_free(ctx);
    if (ok != 1)
        return cl_ossl_fail(CL_ESIG);
    return CL_OK;
}
