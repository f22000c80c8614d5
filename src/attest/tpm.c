/*
 * tpm.c — TPM 2.0 wire structures (TPMS_ATTEST, TPMT_SIGNATURE, TPMT_PUBLIC), PCR values, quote
 * verification and the TPM claims. Credential activation and certificates are in tpm_cred.c.
 *
 * Every TPM structure is big-endian and read through one cl_cursor wrapped in a small reader that
 * turns a short read into "… truncated at offset N: FIELD needs K bytes, L left". Sizes announced
 * by TPM2B fields are checked against the TPM 2.0 Part 2 maximum of the field before the bytes are
 * taken, so nothing is copied into a fixed array without a bound.
 */
#include "attest/tpm.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/codec.h"
#include "base/json.h"
#include "crypto/hash.h"
#include "crypto/ossl.h"

/* ---- errors and the reader
 * ----------------------------------------------------------------------- */

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

typedef struct {
    cl_cursor c;
    const char *what; /* "quote", "public area", "signature" */
    char *err;
    size_t errlen;
} rd;

static void rd_init(rd *r, const uint8_t *p, size_t n, const char *what, char *err, size_t errlen)
{
    cl_cursor_init(&r->c, p, n);
    r->what = what;
    r->err = err;
    r->errlen = errlen;
}

static int rd_trunc(rd *r, const char *field, size_t need)
{
    return fail(r->err, r->errlen, CL_ETRUNC,
                "%s truncated at offset %zu: %s needs %zu bytes, %zu left", r->what, r->c.pos,
                field, need, cl_cursor_left(&r->c));
}

static int rd_u8(rd *r, uint8_t *v, const char *field)
{
    return cl_cursor_u8(&r->c, v) < 0 ? rd_trunc(r, field, 1) : CL_OK;
}
static int rd_u16(rd *r, uint16_t *v, const char *field)
{
    return cl_cursor_u16_be(&r->c, v) < 0 ? rd_trunc(r, field, 2) : CL_OK;
}
static int rd_u32(rd *r, uint32_t *v, const char *field)
{
    return cl_cursor_u32_be(&r->c, v) < 0 ? rd_trunc(r, field, 4) : CL_OK;
}
static int rd_u64(rd *r, uint64_t *v, const char *field)
{
    return cl_cursor_u64_be(&r->c, v) < 0 ? rd_trunc(r, field, 8) : CL_OK;
}

/* TPM2B: u16 size (at most max), then the bytes, borrowed in place. */
static int rd_tpm2b(rd *r, const char *field, size_t max, const uint8_t **p, size_t *n)
{
    size_t off = r->c.pos;
    uint16_t sz;
    if (cl_cursor_u16_be(&r->c, &sz) < 0)
        return fail(r->err, r->errlen, CL_ETRUNC,
                    "%s truncated at offset %zu: size of %s needs 2 bytes, %zu left", r->what, off,
                    field, cl_cursor_left(&r->c));
    if (sz > max) {
        r->c.pos = off;
        return fail(r->err, r->errlen, CL_EFORMAT,
                    "%s: %s at offset %zu announces %u bytes, more than the maximum %zu", r->what,
                    field, off, (unsigned)sz, max);
    }
    if (cl_cursor_view(&r->c, p, sz) < 0)
        return rd_trunc(r, field, sz);
    *n = sz;
    return CL_OK;
}

static int rd_tpm2b_copy(rd *r, const char *field, size_t max, uint8_t *out, size_t *n)
{
    const uint8_t *p;
    CL_TRY(rd_tpm2b(r, field, max, &p, n));
    if (*n > 0)
        memcpy(out, p, *n);
    return CL_OK;
}

static int rd_end(rd *r, const char *after)
{
    if (cl_cursor_left(&r->c) != 0)
        return fail(r->err, r->errlen, CL_EFORMAT,
                    "%s has %zu trailing bytes after %s at offset %zu", r->what,
                    cl_cursor_left(&r->c), after, r->c.pos);
    return CL_OK;
}

/* ---- algorithms ----------------------------------------------------------------------------- */

static const struct {
    uint16_t alg;
    const char *name;
} ALG_NAMES[] = {
    {CL_TPM_ALG_RSA, "rsa"},
    {CL_TPM_ALG_SHA1, "sha1"},
    {CL_TPM_ALG_AES, "aes"},
    {CL_TPM_ALG_SHA256, "sha256"},
    {CL_TPM_ALG_SHA384, "sha384"},
    {CL_TPM_ALG_SHA512, "sha512"},
    {CL_TPM_ALG_NULL, "null"},
    {CL_TPM_ALG_RSASSA, "rsassa"},
    {CL_TPM_ALG_RSAES, "rsaes"},
    {CL_TPM_ALG_RSAPSS, "rsapss"},
    {CL_TPM_ALG_OAEP, "oaep"},
    {CL_TPM_ALG_ECDSA, "ecdsa"},
    {0x0019, "ecdh"},
    {0x001A, "ecdaa"},
    {0x001B, "sm2"},
    {0x001C, "ecschnorr"},
    {0x001D, "ecmqv"},
    {CL_TPM_ALG_ECC, "ecc"},
    {CL_TPM_ALG_CFB, "cfb"},
    {0x0012, "sm3_256"},
    {0x0013, "sm4"},
    {0x0026, "camellia"},
    {0x0005, "hmac"},
    {0x000A, "xor"},
    {0x0008, "keyedhash"},
    {0x0025, "symcipher"},
};

const char *cl_tpm_alg_name(uint16_t alg)
{
    for (size_t i = 0; i < sizeof ALG_NAMES / sizeof ALG_NAMES[0]; i++)
        if (ALG_NAMES[i].alg == alg)
            return ALG_NAMES[i].name;
    return "unknown";
}

const EVP_MD *cl_tpm_hash_md(uint16_t alg)
{
    switch (alg) {
    case CL_TPM_ALG_SHA1:
        return EVP_sha1();
    case CL_TPM_ALG_SHA256:
        return EVP_sha256();
    case CL_TPM_ALG_SHA384:
        return EVP_sha384();
    case CL_TPM_ALG_SHA512:
        return EVP_sha512();
    default:
        return NULL;
    }
}

size_t cl_tpm_hash_size(uint16_t alg)
{
    switch (alg) {
    case CL_TPM_ALG_SHA1:
        return 20;
    case CL_TPM_ALG_SHA256:
        return 32;
    case CL_TPM_ALG_SHA384:
        return 48;
    case CL_TPM_ALG_SHA512:
        return 64;
    default:
        return 0;
    }
}

uint16_t cl_tpm_hash_from_name(const char *name)
{
    static const uint16_t hashes[] = {CL_TPM_ALG_SHA1, CL_TPM_ALG_SHA256, CL_TPM_ALG_SHA384,
                                      CL_TPM_ALG_SHA512};
    for (size_t i = 0; i < sizeof hashes / sizeof hashes[0]; i++)
        if (name != NULL && strcmp(name, cl_tpm_alg_name(hashes[i])) == 0)
            return hashes[i];
    return 0;
}

/* "SHA256" for the pcrs claim. */
static const char *hash_claim_name(uint16_t alg)
{
    switch (alg) {
    case CL_TPM_ALG_SHA1:
        return "SHA1";
    case CL_TPM_ALG_SHA256:
        return "SHA256";
    case CL_TPM_ALG_SHA384:
        return "SHA384";
    default:
        return "SHA512";
    }
}

/* ---- TPMS_ATTEST
 * --------------------------------------------------------------------------------- */

static uint32_t selection_mask(const cl_tpm_pcr_selection *s)
{
    uint32_t m = 0;
    for (size_t j = 0; j < s->size_of_select; j++)
        m |= (uint32_t)s->select[j] << (8 * j);
    return m;
}

int cl_tpm_attest_selected(const cl_tpm_attest *a, size_t bank, unsigned index)
{
    if (bank >= a->nbanks || index >= CL_TPM_NUM_PCRS)
        return 0;
    return (selection_mask(&a->banks[bank]) >> index) & 1u;
}

int cl_tpm_attest_parse(const uint8_t *p, size_t n, cl_tpm_attest *a, char *err, size_t errlen)
{
    rd r;
    rd_init(&r, p, n, "quote", err, errlen);
    memset(a, 0, sizeof *a);

    CL_TRY(rd_u32(&r, &a->magic, "magic"));
    if (a->magic != CL_TPM_GENERATED_VALUE)
        return fail(err, errlen, CL_EFORMAT,
                    "quote magic 0x%08x is not TPM_GENERATED_VALUE (0xff544347)", a->magic);
    CL_TRY(rd_u16(&r, &a->type, "type"));
    if (a->type != CL_TPM_ST_ATTEST_QUOTE)
        return fail(err, errlen, CL_EUNSUPPORTED,
                    "TPMS_ATTEST type 0x%04x is not TPM_ST_ATTEST_QUOTE (0x8018)", a->type);
    CL_TRY(rd_tpm2b_copy(&r, "qualifiedSigner", CL_TPM_MAX_NAME, a->qualified_signer,
                         &a->qualified_signer_len));
    CL_TRY(rd_tpm2b_copy(&r, "extraData", CL_TPM_MAX_NAME, a->extra_data, &a->extra_data_len));
    CL_TRY(rd_u64(&r, &a->clock, "clockInfo.clock"));
    CL_TRY(rd_u32(&r, &a->reset_count, "clockInfo.resetCount"));
    CL_TRY(rd_u32(&r, &a->restart_count, "clockInfo.restartCount"));
    size_t off = r.c.pos;
    CL_TRY(rd_u8(&r, &a->safe, "clockInfo.safe"));
    if (a->safe > 1)
        return fail(err, errlen, CL_EFORMAT,
                    "quote: clockInfo.safe at offset %zu is %u, not 0 or 1", off, a->safe);
    CL_TRY(rd_u64(&r, &a->firmware_version, "firmwareVersion"));

    off = r.c.pos;
    CL_TRY(rd_u32(&r, &a->nbanks, "pcrSelect.count"));
    if (a->nbanks > CL_TPM_MAX_BANKS) {
        uint32_t nb = a->nbanks;
        a->nbanks = 0;
        return fail(err, errlen, CL_EFORMAT,
                    "quote: pcrSelect at offset %zu has %u banks, more than %d", off, nb,
                    CL_TPM_MAX_BANKS);
    }
    for (uint32_t i = 0; i < a->nbanks; i++) {
        cl_tpm_pcr_selection *s = &a->banks[i];
        off = r.c.pos;
        CL_TRY(rd_u16(&r, &s->hash_alg, "pcrSelect.hash"));
        if (cl_tpm_hash_md(s->hash_alg) == NULL)
            return fail(
                err, errlen, CL_EUNSUPPORTED,
                "quote: PCR bank %u at offset %zu uses hash 0x%04x (%s), not SHA-1/256/384/512", i,
                off, s->hash_alg, cl_tpm_alg_name(s->hash_alg));
        for (uint32_t k = 0; k < i; k++)
            if (a->banks[k].hash_alg == s->hash_alg)
                return fail(err, errlen, CL_EFORMAT, "quote: PCR bank %s is selected twice",
                            cl_tpm_alg_name(s->hash_alg));
        off = r.c.pos;
        CL_TRY(rd_u8(&r, &s->size_of_select, "pcrSelect.sizeofSelect"));
        if (s->size_of_select > CL_TPM_PCR_SELECT_MAX)
            return fail(err, errlen, CL_EUNSUPPORTED,
                        "quote: sizeofSelect %u at offset %zu exceeds %d (PCRs 0-31)",
                        s->size_of_select, off, CL_TPM_PCR_SELECT_MAX);
        if (cl_cursor_read(&r.c, s->select, s->size_of_select) < 0)
            return rd_trunc(&r, "pcrSelect bitmap", s->size_of_select);
    }
    CL_TRY(rd_tpm2b_copy(&r, "pcrDigest", CL_TPM_MAX_DIGEST, a->pcr_digest, &a->pcr_digest_len));
    return rd_end(&r, "pcrDigest");
}

/* ---- TPMT_SIGNATURE
 * ------------------------------------------------------------------------------ */

int cl_tpm_signature_parse(const uint8_t *p, size_t n, cl_tpm_signature *sig, char *err,
                           size_t errlen)
{
    rd r;
    rd_init(&r, p, n, "signature", err, errlen);
    memset(sig, 0, sizeof *sig);
    CL_TRY(rd_u16(&r, &sig->sig_alg, "sigAlg"));
    switch (sig->sig_alg) {
    case CL_TPM_ALG_RSASSA:
    case CL_TPM_ALG_RSAPSS:
        CL_TRY(rd_u16(&r, &sig->hash_alg, "hash"));
        CL_TRY(rd_tpm2b_copy(&r, "RSA signature", CL_TPM_MAX_RSA_BYTES, sig->sig, &sig->sig_len));
        break;
    case CL_TPM_ALG_ECDSA:
        CL_TRY(rd_u16(&r, &sig->hash_alg, "hash"));
        CL_TRY(rd_tpm2b_copy(&r, "signatureR", CL_TPM_MAX_ECC_BYTES, sig->r, &sig->r_len));
        CL_TRY(rd_tpm2b_copy(&r, "signatureS", CL_TPM_MAX_ECC_BYTES, sig->s, &sig->s_len));
        break;
    default:
        return fail(err, errlen, CL_EUNSUPPORTED,
                    "signature algorithm 0x%04x (%s) is not supported (RSASSA, RSAPSS or ECDSA)",
                    sig->sig_alg, cl_tpm_alg_name(sig->sig_alg));
    }
    return rd_end(&r, "the signature");
}

/* ---- TPMT_PUBLIC
 * --------------------------------------------------------------------------------- */

static int parse_hash_param(rd *r, uint16_t *h, const char *field)
{
    size_t off = r->c.pos;
    CL_TRY(rd_u16(r, h, field));
    if (*h != CL_TPM_ALG_NULL && cl_tpm_hash_md(*h) == NULL)
        return fail(r->err, r->errlen, CL_EUNSUPPORTED,
                    "public area: %s 0x%04x at offset %zu is not SHA-1/256/384/512", field, *h,
                    off);
    return CL_OK;
}

/* TPMT_SYM_DEF_OBJECT */
static int parse_symmetric(rd *r, cl_tpm_public *pub)
{
    size_t off = r->c.pos;
    CL_TRY(rd_u16(r, &pub->sym_alg, "symmetric.algorithm"));
    if (pub->sym_alg == CL_TPM_ALG_NULL)
        return CL_OK;
    if (pub->sym_alg != CL_TPM_ALG_AES && pub->sym_alg != 0x0013 && pub->sym_alg != 0x0026)
        return fail(r->err, r->errlen, CL_EUNSUPPORTED,
                    "public area: symmetric algorithm 0x%04x at offset %zu is not supported",
                    pub->sym_alg, off);
    CL_TRY(rd_u16(r, &pub->sym_key_bits, "symmetric.keyBits"));
    CL_TRY(rd_u16(r, &pub->sym_mode, "symmetric.mode"));
    return CL_OK;
}

/* TPMT_RSA_SCHEME / TPMT_ECC_SCHEME */
static int parse_scheme(rd *r, cl_tpm_public *pub)
{
    size_t off = r->c.pos;
    CL_TRY(rd_u16(r, &pub->scheme, "scheme"));
    int rsa = pub->type == CL_TPM_ALG_RSA;
    switch (pub->scheme) {
    case CL_TPM_ALG_NULL:
        return CL_OK;
    case CL_TPM_ALG_RSAES:
        if (rsa)
            return CL_OK;
        break;
    case CL_TPM_ALG_RSASSA:
    case CL_TPM_ALG_RSAPSS:
    case CL_TPM_ALG_OAEP:
        if (rsa)
            return parse_hash_param(r, &pub->scheme_hash, "scheme hash");
        break;
    case CL_TPM_ALG_ECDSA:
    case 0x0019: /* ECDH */
    case 0x001B: /* SM2 */
    case 0x001C: /* ECSCHNORR */
    case 0x001D: /* ECMQV */
        if (!rsa)
            return parse_hash_param(r, &pub->scheme_hash, "scheme hash");
        break;
    case 0x001A: /* ECDAA: hashAlg, count */
        if (!rsa) {
            uint16_t count;
            CL_TRY(parse_hash_param(r, &pub->scheme_hash, "scheme hash"));
            return rd_u16(r, &count, "ECDAA count");
        }
        break;
    default:
        break;
    }
    return fail(r->err, r->errlen, CL_EUNSUPPORTED,
                "public area: scheme 0x%04x (%s) at offset %zu is not valid for a%s key",
                pub->scheme, cl_tpm_alg_name(pub->scheme), off, rsa ? "n RSA" : " ECC");
}

static int build_rsa_key(const uint8_t *mod, size_t modlen, uint32_t exponent, EVP_PKEY **out)
{
    int rc = CL_ECRYPTO;
    BIGNUM *n = BN_bin2bn(mod, (int)modlen, NULL);
    BIGNUM *e = BN_new();
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    if (n == NULL || e == NULL || bld == NULL || !BN_set_word(e, exponent ? exponent : 65537u))
        goto out;
    if (!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) ||
        (params = OSSL_PARAM_BLD_to_param(bld)) == NULL)
        goto out;
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        goto out;
    rc = CL_OK;
out:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return rc == CL_OK ? rc : cl_ossl_fail(rc);
}

static const char *curve_group(uint16_t curve, size_t *coord)
{
    switch (curve) {
    case CL_TPM_ECC_NIST_P256:
        *coord = 32;
        return "prime256v1";
    case CL_TPM_ECC_NIST_P384:
        *coord = 48;
        return "secp384r1";
    case CL_TPM_ECC_NIST_P521:
        *coord = 66;
        return "secp521r1";
    default:
        *coord = 0;
        return NULL;
    }
}

/* Uncompressed point 04 || x || y, coordinates left-padded to the field size. */
static int build_ec_key(const char *group, size_t coord, const uint8_t *x, size_t xl,
                        const uint8_t *y, size_t yl, EVP_PKEY **out)
{
    uint8_t pt[1 + 2 * CL_TPM_MAX_ECC_BYTES];
    memset(pt, 0, sizeof pt);
    pt[0] = 0x04;
    memcpy(pt + 1 + coord - xl, x, xl);
    memcpy(pt + 1 + 2 * coord - yl, y, yl);
    OSSL_PARAM params[3];
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)group, 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt, 1 + 2 * coord);
    params[2] = OSSL_PARAM_construct_end();
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY_CTX *chk = NULL;
    int rc = CL_ECRYPTO;
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        goto out;
    chk = EVP_PKEY_CTX_new_from_pkey(NULL, *out, NULL);
    if (chk == NULL || EVP_PKEY_public_check(chk) != 1) {
        EVP_PKEY_free(*out);
        *out = NULL;
        goto out;
    }
    rc = CL_OK;
out:
    EVP_PKEY_CTX_free(chk);
    EVP_PKEY_CTX_free(ctx);
    return rc == CL_OK ? rc : cl_ossl_fail(rc);
}

void cl_tpm_public_free(cl_tpm_public *pub)
{
    if (pub == NULL)
        return;
    EVP_PKEY_free(pub->pkey);
    pub->pkey = NULL;
}

int cl_tpm_public_parse(const uint8_t *p, size_t n, cl_tpm_public *pub, char *err, size_t errlen)
{
    memset(pub, 0, sizeof *pub);
    rd r;
    /* A TPM2B_PUBLIC announces exactly the rest of the input; anything else is a bare TPMT_PUBLIC
     * (its first field, the key type, is 0x0001 or 0x0023 and never equals n - 2 for a real key).
     */
    size_t start = 0;
    if (n >= 2 && (((size_t)p[0] << 8) | p[1]) == n - 2)
        start = 2;
    rd_init(&r, p, n, "public area", err, errlen);
    r.c.pos = start;

    size_t off = r.c.pos;
    CL_TRY(rd_u16(&r, &pub->type, "type"));
    if (pub->type != CL_TPM_ALG_RSA && pub->type != CL_TPM_ALG_ECC)
        return fail(err, errlen, CL_EUNSUPPORTED,
                    "public area: key type 0x%04x (%s) at offset %zu is not RSA or ECC", pub->type,
                    cl_tpm_alg_name(pub->type), off);
    off = r.c.pos;
    CL_TRY(rd_u16(&r, &pub->name_alg, "nameAlg"));
    if (cl_tpm_hash_md(pub->name_alg) == NULL)
        return fail(err, errlen, CL_EUNSUPPORTED,
                    "public area: nameAlg 0x%04x at offset %zu is not SHA-1/256/384/512",
                    pub->name_alg, off);
    CL_TRY(rd_u32(&r, &pub->attributes, "objectAttributes"));
    CL_TRY(rd_tpm2b_copy(&r, "authPolicy", CL_TPM_MAX_DIGEST, pub->auth_policy,
                         &pub->auth_policy_len));
    CL_TRY(parse_symmetric(&r, pub));
    CL_TRY(parse_scheme(&r, pub));

    const uint8_t *u1 = NULL, *u2 = NULL;
    size_t l1 = 0, l2 = 0;
    if (pub->type == CL_TPM_ALG_RSA) {
        CL_TRY(rd_u16(&r, &pub->rsa_key_bits, "keyBits"));
        CL_TRY(rd_u32(&r, &pub->rsa_exponent, "exponent"));
        CL_TRY(rd_tpm2b(&r, "RSA modulus", CL_TPM_MAX_RSA_BYTES, &u1, &l1));
        CL_TRY(rd_end(&r, "the RSA modulus"));
        if (pub->rsa_key_bits < 1024 || pub->rsa_key_bits > 4096 || pub->rsa_key_bits % 8 != 0)
            return fail(err, errlen, CL_EUNSUPPORTED,
                        "public area: RSA keyBits %u is not supported (1024-4096)",
                        pub->rsa_key_bits);
        if (l1 != (size_t)pub->rsa_key_bits / 8 || u1[0] == 0)
            return fail(err, errlen, CL_EFORMAT,
                        "public area: RSA modulus is %zu bytes, keyBits says %u bits", l1,
                        pub->rsa_key_bits);
        if (pub->rsa_exponent != 0 && (pub->rsa_exponent < 3 || pub->rsa_exponent % 2 == 0))
            return fail(err, errlen, CL_EFORMAT, "public area: RSA exponent %u is invalid",
                        pub->rsa_exponent);
        if (build_rsa_key(u1, l1, pub->rsa_exponent, &pub->pkey) < 0)
            return fail(err, errlen, CL_ECRYPTO, "public area: RSA key is not usable by OpenSSL");
    } else {
        off = r.c.pos;
        CL_TRY(rd_u16(&r, &pub->ecc_curve, "curveID"));
        size_t coord;
        const char *group = curve_group(pub->ecc_curve, &coord);
        if (group == NULL)
            return fail(err, errlen, CL_EUNSUPPORTED,
                        "public area: curve 0x%04x at offset %zu is not NIST P-256/384/521",
                        pub->ecc_curve, off);
        off = r.c.pos;
        CL_TRY(rd_u16(&r, &pub->kdf, "kdf.scheme"));
        if (pub->kdf != CL_TPM_ALG_NULL) {
            if (pub->kdf != 0x0007 && pub->kdf != 0x0020 && pub->kdf != 0x0021 &&
                pub->kdf != 0x0022)
                return fail(err, errlen, CL_EUNSUPPORTED,
                            "public area: KDF scheme 0x%04x at offset %zu is not supported",
                            pub->kdf, off);
            CL_TRY(parse_hash_param(&r, &pub->kdf_hash, "kdf hash"));
        }
        CL_TRY(rd_tpm2b(&r, "ECC x", CL_TPM_MAX_ECC_BYTES, &u1, &l1));
        CL_TRY(rd_tpm2b(&r, "ECC y", CL_TPM_MAX_ECC_BYTES, &u2, &l2));
        CL_TRY(rd_end(&r, "the ECC point"));
        if (l1 == 0 || l2 == 0 || l1 > coord || l2 > coord)
            return fail(err, errlen, CL_EFORMAT,
                        "public area: ECC point coordinates are %zu and %zu bytes, curve needs %zu",
                        l1, l2, coord);
        memcpy(pub->ecc_x, u1, l1);
        memcpy(pub->ecc_y, u2, l2);
        pub->ecc_x_len = l1;
        pub->ecc_y_len = l2;
        if (build_ec_key(group, coord, u1, l1, u2, l2, &pub->pkey) < 0)
            return fail(err, errlen, CL_EFORMAT, "public area: ECC point is not on curve %s",
                        group);
    }

    /* Name = nameAlg || H_nameAlg(TPMT_PUBLIC) (Part 1 §16). */
    unsigned int dlen = 0;
    pub->name[0] = (uint8_t)(pub->name_alg >> 8);
    pub->name[1] = (uint8_t)pub->name_alg;
    if (EVP_Digest(p + start, n - start, pub->name + 2, &dlen, cl_tpm_hash_md(pub->name_alg),
                   NULL) != 1) {
        cl_tpm_public_free(pub);
        return fail(err, errlen, cl_ossl_fail(CL_ECRYPTO), "public area: hashing the Name failed");
    }
    pub->name_len = 2 + dlen;
    return CL_OK;
}

int cl_tpm_public_spki_sha256(const cl_tpm_public *pub, uint8_t out[32])
{
    CL_ENSURE(pub != NULL && pub->pkey != NULL, CL_EINVAL);
    unsigned char *der = NULL;
    int len = i2d_PUBKEY(pub->pkey, &der);
    CL_ENSURE(len > 0, cl_ossl_fail(CL_ECRYPTO));
    cl_sha256(der, (size_t)len, out);
    OPENSSL_free(der);
    return CL_OK;
}

int cl_tpm_ak_check(const cl_tpm_public *ak, char *err, size_t errlen)
{
    if (ak == NULL || ak->pkey == NULL)
        return fail(err, errlen, CL_EINVAL, "no AK public area");
    const char *missing = NULL;
    if (!(ak->attributes & CL_TPMA_RESTRICTED))
        missing = "restricted";
    else if (!(ak->attributes & CL_TPMA_SIGN))
        missing = "sign";
    else if (!(ak->attributes & CL_TPMA_FIXED_TPM))
        missing = "fixedTPM";
    if (missing != NULL)
        return fail(err, errlen, CL_EUNSUPPORTED,
                    "AK objectAttributes 0x%08x lack %s: an AK must be a restricted signing key "
                    "bound to its TPM",
                    ak->attributes, missing);
    if (ak->attributes & CL_TPMA_DECRYPT)
        return fail(err, errlen, CL_EUNSUPPORTED,
                    "AK objectAttributes 0x%08x have decrypt set: an AK must be signing-only",
                    ak->attributes);
    return CL_OK;
}

/* ---- PCR values ----------------------------------------------------------------------------- */

void cl_tpm_pcrs_init(cl_tpm_pcrs *pcrs) { memset(pcrs, 0, sizeof *pcrs); }

const cl_tpm_pcr_bank *cl_tpm_pcrs_bank(const cl_tpm_pcrs *pcrs, uint16_t alg)
{
    for (size_t i = 0; i < pcrs->nbanks; i++)
        if (pcrs->banks[i].alg == alg)
            return &pcrs->banks[i];
    return NULL;
}

int cl_tpm_pcrs_set(cl_tpm_pcrs *pcrs, uint16_t alg, unsigned index, const uint8_t *v, size_t n,
                    char *err, size_t errlen)
{
    size_t dsz = cl_tpm_hash_size(alg);
    if (dsz == 0)
        return fail(err, errlen, CL_EUNSUPPORTED, "PCR bank 0x%04x is not SHA-1/256/384/512", alg);
    if (index >= CL_TPM_NUM_PCRS)
        return fail(err, errlen, CL_EFORMAT, "PCR index %u is out of range (0-%d)", index,
                    CL_TPM_NUM_PCRS - 1);
    if (n != dsz)
        return fail(err, errlen, CL_EFORMAT, "PCR %u of bank %s is %zu bytes, expected %zu", index,
                    cl_tpm_alg_name(alg), n, dsz);
    cl_tpm_pcr_bank *b = (cl_tpm_pcr_bank *)cl_tpm_pcrs_bank(pcrs, alg);
    if (b == NULL) {
        if (pcrs->nbanks == CL_TPM_PCR_BANKS)
            return fail(err, errlen, CL_EFORMAT, "too many PCR banks");
        b = &pcrs->banks[pcrs->nbanks++];
        memset(b, 0, sizeof *b);
        b->alg = alg;
    }
    if (b->present & (1u << index))
        return fail(err, errlen, CL_EFORMAT, "PCR %u of bank %s is given twice", index,
                    cl_tpm_alg_name(alg));
    memcpy(b->value[index], v, n);
    b->present |= 1u << index;
    return CL_OK;
}

/* Canonical decimal 0..31: no sign, no leading zero, no spaces. */
static int parse_pcr_index(const char *s, unsigned *out)
{
    size_t len = strlen(s);
    if (len == 0 || len > 2 || (len == 2 && s[0] == '0'))
        return -1;
    unsigned v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v >= CL_TPM_NUM_PCRS)
        return -1;
    *out = v;
    return 0;
}

int cl_tpm_pcrs_from_json(const json_t *obj, cl_tpm_pcrs *pcrs, char *err, size_t errlen)
{
    cl_tpm_pcrs_init(pcrs);
    if (!json_is_object(obj))
        return fail(err, errlen, CL_EJSON, "pcrs: expected an object of banks");
    const char *bank_name;
    json_t *bank;
    json_object_foreach((json_t *)obj, bank_name, bank)
    {
        uint16_t alg = cl_tpm_hash_from_name(bank_name);
        if (alg == 0)
            return fail(err, errlen, CL_EJSON,
                        "pcrs: bank \"%.32s\" is not sha1, sha256, sha384 or sha512", bank_name);
        if (!json_is_object(bank))
            return fail(err, errlen, CL_EJSON, "pcrs: bank %s is not an object", bank_name);
        size_t dsz = cl_tpm_hash_size(alg);
        const char *key;
        json_t *val;
        json_object_foreach(bank, key, val)
        {
            unsigned idx;
            if (parse_pcr_index(key, &idx) < 0)
                return fail(err, errlen, CL_EJSON,
                            "pcrs: bank %s: \"%.32s\" is not a PCR index (decimal 0-31)", bank_name,
                            key);
            if (!json_is_string(val) || json_string_length(val) != 2 * dsz)
                return fail(err, errlen, CL_EJSON,
                            "pcrs: %s PCR %u must be a string of %zu hex digits", bank_name, idx,
                            2 * dsz);
            uint8_t v[CL_TPM_MAX_DIGEST];
            if (cl_hex_decode(json_string_value(val), 2 * dsz, v, dsz) < 0)
                return fail(err, errlen, CL_EJSON, "pcrs: %s PCR %u is not hexadecimal", bank_name,
                            idx);
            CL_TRY(cl_tpm_pcrs_set(pcrs, alg, idx, v, dsz, err, errlen));
        }
        if (cl_tpm_pcrs_bank(pcrs, alg) == NULL) {
            /* An empty bank is recorded so that "supplied but not selected" can be reported. */
            if (pcrs->nbanks == CL_TPM_PCR_BANKS)
                return fail(err, errlen, CL_EFORMAT, "too many PCR banks");
            memset(&pcrs->banks[pcrs->nbanks], 0, sizeof pcrs->banks[0]);
            pcrs->banks[pcrs->nbanks++].alg = alg;
        }
    }
    return CL_OK;
}

int cl_tpm_pcrs_parse_json(const char *text, size_t n, cl_tpm_pcrs *pcrs, char *err, size_t errlen)
{
    json_t *j = NULL;
    char jerr[160];
    cl_tpm_pcrs_init(pcrs);
    if (cl_json_parse(text, n, 1u << 20, &j, jerr, sizeof jerr) < 0)
        return fail(err, errlen, CL_EJSON, "pcrs: malformed JSON: %s", jerr);
    int rc = cl_tpm_pcrs_from_json(j, pcrs, err, errlen);
    json_decref(j);
    return rc;
}

/* tpm2-tools 5.x (lib/pcr.c): fwrite of TPML_PCR_SELECTION, then a u32 list count, then the
 * TPML_DIGEST lists, all in host (little-endian) byte order with C struct padding. */
#define T2_SEL_SLOTS 16
#define T2_SEL_SLOT 8
#define T2_DIGESTS_PER_LIST 8
#define T2_DIGEST_SLOT 66
#define T2_MAX_LISTS 32

int cl_tpm_pcrs_parse_tpm2tools(const uint8_t *p, size_t n, cl_tpm_pcrs *pcrs, char *err,
                                size_t errlen)
{
    cl_tpm_pcrs_init(pcrs);
    cl_cursor c;
    cl_cursor_init(&c, p, n);
    uint32_t count;
    cl_tpm_pcr_selection sel[T2_SEL_SLOTS];
    memset(sel, 0, sizeof sel);
    if (cl_cursor_u32(&c, &count) < 0 || cl_cursor_left(&c) < T2_SEL_SLOTS * T2_SEL_SLOT)
        return fail(err, errlen, CL_ETRUNC,
                    "pcrs file truncated: the PCR selection needs 132 bytes, file has %zu", n);
    if (count > T2_SEL_SLOTS)
        return fail(err, errlen, CL_EFORMAT, "pcrs file: selection count %u exceeds %d", count,
                    T2_SEL_SLOTS);
    for (uint32_t i = 0; i < T2_SEL_SLOTS; i++) {
        uint8_t slot[T2_SEL_SLOT];
        if (cl_cursor_read(&c, slot, sizeof slot) < 0)
            return fail(err, errlen, CL_ETRUNC, "pcrs file truncated in the selection");
        if (i >= count)
            continue;
        sel[i].hash_alg = (uint16_t)(slot[0] | slot[1] << 8);
        sel[i].size_of_select = slot[2];
        memcpy(sel[i].select, slot + 3, CL_TPM_PCR_SELECT_MAX);
        if (cl_tpm_hash_size(sel[i].hash_alg) == 0)
            return fail(err, errlen, CL_EUNSUPPORTED,
                        "pcrs file: bank %u uses hash 0x%04x, not SHA-1/256/384/512", i,
                        sel[i].hash_alg);
        if (sel[i].size_of_select > CL_TPM_PCR_SELECT_MAX)
            return fail(err, errlen, CL_EFORMAT, "pcrs file: sizeofSelect %u exceeds %d",
                        sel[i].size_of_select, CL_TPM_PCR_SELECT_MAX);
        for (uint32_t k = 0; k < i; k++)
            if (sel[k].hash_alg == sel[i].hash_alg)
                return fail(err, errlen, CL_EFORMAT, "pcrs file: bank %s is selected twice",
                            cl_tpm_alg_name(sel[i].hash_alg));
    }
    uint32_t nlists;
    if (cl_cursor_u32(&c, &nlists) < 0)
        return fail(err, errlen, CL_ETRUNC, "pcrs file truncated at offset %zu: list count", c.pos);
    if (nlists > T2_MAX_LISTS)
        return fail(err, errlen, CL_EFORMAT, "pcrs file: %u digest lists, more than %d", nlists,
                    T2_MAX_LISTS);
    size_t need = (size_t)nlists * (4 + T2_DIGESTS_PER_LIST * T2_DIGEST_SLOT);
    if (cl_cursor_left(&c) != need)
        return fail(err, errlen, cl_cursor_left(&c) < need ? CL_ETRUNC : CL_EFORMAT,
                    "pcrs file: %u digest lists need %zu bytes after offset %zu, %zu present",
                    nlists, need, c.pos, cl_cursor_left(&c));

    /* Walk the selection in order (banks in list order, PCRs ascending) alongside the digests. */
    uint32_t bank = 0;
    unsigned pcr = 0;
    size_t assigned = 0;
    for (uint32_t l = 0; l < nlists; l++) {
        uint32_t dcount;
        if (cl_cursor_u32(&c, &dcount) < 0)
            return fail(err, errlen, CL_ETRUNC, "pcrs file truncated in list %u", l);
        if (dcount > T2_DIGESTS_PER_LIST)
            return fail(err, errlen, CL_EFORMAT, "pcrs file: list %u holds %u digests, more than 8",
                        l, dcount);
        for (uint32_t d = 0; d < T2_DIGESTS_PER_LIST; d++) {
            uint16_t size;
            const uint8_t *buf;
            if (cl_cursor_u16(&c, &size) < 0 || cl_cursor_view(&c, &buf, 64) < 0)
                return fail(err, errlen, CL_ETRUNC, "pcrs file truncated in list %u", l);
            if (d >= dcount)
                continue;
            /* Next selected PCR. */
            for (;;) {
                if (bank >= count)
                    return fail(err, errlen, CL_EFORMAT,
                                "pcrs file holds more digests than the %zu selected PCRs",
                                assigned);
                uint32_t mask = selection_mask(&sel[bank]);
                while (pcr < CL_TPM_NUM_PCRS && !((mask >> pcr) & 1u))
                    pcr++;
                if (pcr < CL_TPM_NUM_PCRS)
                    break;
                bank++;
                pcr = 0;
            }
            if (size > 64)
                return fail(err, errlen, CL_EFORMAT, "pcrs file: digest size %u exceeds 64", size);
            CL_TRY(cl_tpm_pcrs_set(pcrs, sel[bank].hash_alg, pcr, buf, size, err, errlen));
            assigned++;
            pcr++;
        }
    }
    size_t selected = 0;
    for (uint32_t i = 0; i < count; i++)
        for (unsigned k = 0; k < CL_TPM_NUM_PCRS; k++)
            selected += (selection_mask(&sel[i]) >> k) & 1u;
    if (assigned != selected)
        return fail(err, errlen, CL_EFORMAT, "pcrs file holds %zu digests for %zu selected PCRs",
                    assigned, selected);
    return CL_OK;
}

/* ---- quote verification --------------------------------------------------------------------- */

static int verify_signature(const cl_tpm_signature *s, const EVP_MD *md, EVP_PKEY *key,
                            const uint8_t *msg, size_t len, char *err, size_t errlen)
{
    int rc = CL_ECRYPTO;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    ECDSA_SIG *es = NULL;
    unsigned char *der = NULL;
    const unsigned char *sig = s->sig;
    size_t siglen = s->sig_len;
    if (ctx == NULL || EVP_DigestVerifyInit(ctx, &pctx, md, NULL, key) != 1)
        goto out;
    if (s->sig_alg == CL_TPM_ALG_RSAPSS) {
        /* TPMs differ in the salt length they use (digest size or maximum): let OpenSSL read it
         * from the signature. */
        if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
            EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_AUTO) != 1)
            goto out;
    } else if (s->sig_alg == CL_TPM_ALG_RSASSA) {
        if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)
            goto out;
    } else {
        BIGNUM *r = BN_bin2bn(s->r, (int)s->r_len, NULL);
        BIGNUM *sv = BN_bin2bn(s->s, (int)s->s_len, NULL);
        es = ECDSA_SIG_new();
        if (r == NULL || sv == NULL || es == NULL || ECDSA_SIG_set0(es, r, sv) != 1) {
            BN_free(r);
            BN_free(sv);
            goto out;
        }
        int dl = i2d_ECDSA_SIG(es, &der);
        if (dl <= 0)
            goto out;
        sig = der;
        siglen = (size_t)dl;
    }
    int ok = EVP_DigestVerify(ctx, sig, siglen, msg, len);
    rc = ok == 1 ? CL_OK : CL_ESIG;
out:
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    EVP_MD_CTX_free(ctx);
    if (rc == CL_OK)
        return CL_OK;
    cl_ossl_fail(rc);
    if (rc == CL_ESIG)
        return fail(err, errlen, CL_ESIG, "quote signature (%s/%s) does not verify with the AK",
                    cl_tpm_alg_name(s->sig_alg), cl_tpm_alg_name(s->hash_alg));
    return fail(err, errlen, rc, "quote signature: OpenSSL could not set up the verification");
}

/* Every selected PCR has a value and every value is selected; then pcrDigest. */
static int check_pcrs(const cl_tpm_attest *a, const cl_tpm_pcrs *pcrs, uint16_t hash, char *err,
                      size_t errlen)
{
    for (uint32_t i = 0; i < a->nbanks; i++) {
        uint16_t alg = a->banks[i].hash_alg;
        const cl_tpm_pcr_bank *b = cl_tpm_pcrs_bank(pcrs, alg);
        uint32_t sel = selection_mask(&a->banks[i]);
        uint32_t have = b != NULL ? b->present : 0;
        for (unsigned k = 0; k < CL_TPM_NUM_PCRS; k++) {
            if (((sel >> k) & 1u) && !((have >> k) & 1u))
                return fail(err, errlen, CL_EBINDING,
                            "PCR %u of bank %s is selected by the quote but no value was supplied",
                            k, cl_tpm_alg_name(alg));
            if (!((sel >> k) & 1u) && ((have >> k) & 1u))
                return fail(err, errlen, CL_EBINDING,
                            "PCR %u of bank %s was supplied but is not selected by the quote", k,
                            cl_tpm_alg_name(alg));
        }
    }
    for (size_t i = 0; i < pcrs->nbanks; i++) {
        int found = 0;
        for (uint32_t k = 0; k < a->nbanks; k++)
            found |= a->banks[k].hash_alg == pcrs->banks[i].alg;
        if (!found)
            return fail(
                err, errlen, CL_EBINDING,
                "PCR values for bank %s were supplied but the quote does not select that bank",
                cl_tpm_alg_name(pcrs->banks[i].alg));
    }

    const EVP_MD *md = cl_tpm_hash_md(hash);
    size_t dsz = cl_tpm_hash_size(hash);
    if (a->pcr_digest_len != dsz)
        return fail(err, errlen, CL_EFORMAT, "quote pcrDigest is %zu bytes, %s needs %zu",
                    a->pcr_digest_len, cl_tpm_alg_name(hash), dsz);
    uint8_t d[CL_TPM_MAX_DIGEST];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestInit_ex(ctx, md, NULL) == 1;
    for (uint32_t i = 0; ok && i < a->nbanks; i++) {
        const cl_tpm_pcr_bank *b = cl_tpm_pcrs_bank(pcrs, a->banks[i].hash_alg);
        size_t vsz = cl_tpm_hash_size(a->banks[i].hash_alg);
        uint32_t sel = selection_mask(&a->banks[i]);
        for (unsigned k = 0; ok && k < CL_TPM_NUM_PCRS; k++)
            if ((sel >> k) & 1u)
                ok = EVP_DigestUpdate(ctx, b->value[k], vsz) == 1;
    }
    ok = ok && EVP_DigestFinal_ex(ctx, d, NULL) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return fail(err, errlen, cl_ossl_fail(CL_ECRYPTO), "hashing the PCR values failed");
    if (!cl_ct_equal(d, a->pcr_digest, dsz)) {
        char q[2 * CL_TPM_MAX_DIGEST + 1], cmp[2 * CL_TPM_MAX_DIGEST + 1];
        cl_hex_encode(a->pcr_digest, dsz, q);
        cl_hex_encode(d, dsz, cmp);
        return fail(err, errlen, CL_EBINDING,
                    "quote pcrDigest %s does not match the supplied PCR values (digest %s)", q,
                    cmp);
    }
    return CL_OK;
}

int cl_tpm_quote_verify(const uint8_t *attest, size_t attest_len, const uint8_t *sig,
                        size_t sig_len, const cl_tpm_public *ak, const uint8_t *nonce,
                        size_t nonce_len, const cl_tpm_pcrs *pcrs, char *err, size_t errlen)
{
    cl_tpm_attest a;
    cl_tpm_signature s;
    if (attest == NULL || sig == NULL || pcrs == NULL || (nonce == NULL && nonce_len > 0))
        return fail(err, errlen, CL_EINVAL,
                    "quote verification needs a quote, a signature and PCRs");
    CL_TRY(cl_tpm_attest_parse(attest, attest_len, &a, err, errlen));
    CL_TRY(cl_tpm_signature_parse(sig, sig_len, &s, err, errlen));
    CL_TRY(cl_tpm_ak_check(ak, err, errlen));

    int rsa = EVP_PKEY_get_base_id(ak->pkey) == EVP_PKEY_RSA;
    int sig_rsa = s.sig_alg != CL_TPM_ALG_ECDSA;
    if (rsa != sig_rsa)
        return fail(err, errlen, CL_ESIG, "%s signature cannot come from the %s AK",
                    cl_tpm_alg_name(s.sig_alg), rsa ? "RSA" : "ECC");
    if (ak->scheme != CL_TPM_ALG_NULL && (ak->scheme != s.sig_alg || ak->scheme_hash != s.hash_alg))
        return fail(err, errlen, CL_ESIG,
                    "signature scheme %s/%s differs from the AK's fixed scheme %s/%s",
                    cl_tpm_alg_name(s.sig_alg), cl_tpm_alg_name(s.hash_alg),
                    cl_tpm_alg_name(ak->scheme), cl_tpm_alg_name(ak->scheme_hash));
    const EVP_MD *md = cl_tpm_hash_md(s.hash_alg);
    if (md == NULL)
        return fail(err, errlen, CL_EUNSUPPORTED, "signature hash 0x%04x is not supported",
                    s.hash_alg);
    if (s.hash_alg == CL_TPM_ALG_SHA1)
        return fail(err, errlen, CL_EUNSUPPORTED, "SHA-1 quote signatures are not accepted");
    if (s.sig_alg == CL_TPM_ALG_ECDSA && (s.r_len == 0 || s.s_len == 0))
        return fail(err, errlen, CL_ESIG, "ECDSA signature has an empty r or s");
    CL_TRY(verify_signature(&s, md, ak->pkey, attest, attest_len, err, errlen));

    if (a.extra_data_len != nonce_len)
        return fail(err, errlen, CL_EBINDING,
                    "quote extraData is %zu bytes, the expected nonce %zu bytes", a.extra_data_len,
                    nonce_len);
    if (nonce_len > 0 && !cl_ct_equal(a.extra_data, nonce, nonce_len))
        return fail(err, errlen, CL_EBINDING, "quote extraData does not equal the expected nonce");

    return check_pcrs(&a, pcrs, s.hash_alg, err, errlen);
}

/* ---- claims --------------------------------------------------------------------------------- */

static int set_new(json_t *obj, const char *key, json_t *v)
{
    return v != NULL && json_object_set_new(obj, key, v) == 0 ? CL_OK : CL_ENOMEM;
}

int cl_tpm_claims(const cl_tpm_attest *a, const cl_tpm_pcrs *pcrs, const cl_tpm_public *ak,
                  int ak_validated, json_t *claims)
{
    CL_ENSURE(a != NULL && pcrs != NULL && ak != NULL && json_is_object(claims), CL_EINVAL);
    uint8_t h[32];
    CL_TRY(cl_tpm_public_spki_sha256(ak, h));
    char hb64[48];
    cl_b64_encode(h, sizeof h, hb64, CL_B64_STD);

    cl_json_init();
    int rc = CL_ENOMEM;
    char *text = NULL;
    json_t *root = json_object();
    json_t *list = json_array();
    if (root == NULL || list == NULL || json_object_set(root, "PCRs", list) != 0)
        goto out;
    for (unsigned k = 0; k < CL_TPM_NUM_PCRS; k++) {
        json_t *digests = NULL;
        for (uint32_t i = 0; i < a->nbanks; i++) {
            if (!cl_tpm_attest_selected(a, i, k))
                continue;
            const cl_tpm_pcr_bank *b = cl_tpm_pcrs_bank(pcrs, a->banks[i].hash_alg);
            if (b == NULL || !((b->present >> k) & 1u)) {
                json_decref(digests);
                rc = CL_EINVAL;
                goto out;
            }
            char v64[2 * CL_TPM_MAX_DIGEST];
            cl_b64_encode(b->value[k], cl_tpm_hash_size(b->alg), v64, CL_B64_STD);
            if (digests == NULL && (digests = json_object()) == NULL)
                goto out;
            if (set_new(digests, hash_claim_name(b->alg), json_string(v64)) < 0) {
                json_decref(digests);
                goto out;
            }
        }
        if (digests == NULL)
            continue;
        /* The _new setters consume their value even when they fail. */
        json_t *entry = json_object();
        if (entry == NULL || set_new(entry, "Index", json_integer(k)) < 0) {
            json_decref(digests);
            json_decref(entry);
            goto out;
        }
        if (set_new(entry, "Digests", digests) < 0) {
            json_decref(entry);
            goto out;
        }
        if (json_array_append_new(list, entry) != 0)
            goto out;
    }
    /* Key order as in the spec ("Index" before "Digests"): preserve insertion order. */
    text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (text == NULL)
        goto out;
    if (set_new(claims, "aikValidated", json_boolean(ak_validated)) < 0 ||
        set_new(claims, "aikPubHash", json_string(hb64)) < 0 ||
        set_new(claims, "tpmVersion", json_integer(2)) < 0 ||
        set_new(claims, "pcrs", json_string(text)) < 0)
        goto out;
    rc = CL_OK;
out:
    cl_free(text);
    json_decref(list);
    json_decref(root);
    return rc;
}
