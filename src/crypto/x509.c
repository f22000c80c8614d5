/*
 * x509.c — strict certificate parsing, endorsement checks and certificate issuance.
 *
 * Ownership: a cl_cert (cl_malloc'd) owns its X509 and its public cl_key; cl_cert_free releases
 * all three. Every certificate this file creates is re-parsed from its own DER before it is
 * returned, so issued and loaded certificates behave identically.
 *
 * Strictness (spec/receipts.md §3 step 0): PEM input is exactly one "CERTIFICATE" block with
 * nothing but whitespace around it, no PEM headers and no NUL bytes; the DER inside must be one
 * certificate that uses every byte. Anything else is CL_EPEM. Keys other than EC P-256/P-384 are
 * CL_EKEYTYPE.
 */
#include "crypto/x509.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/file.h"
#include "crypto/hash.h"
#include "crypto/ossl.h"

#define CERT_FILE_MAX (1024 * 1024)
#define PEM_BEGIN_CERT "-----BEGIN CERTIFICATE-----"

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static int all_space(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_space(p[i]))
            return 0;
    return 1;
}

int cl_cert_from_der(const uint8_t *der, size_t len, cl_cert **out)
{
    CL_ENSURE(der != NULL && out != NULL, CL_EINVAL);
    CL_ENSURE(len > 0 && len <= INT_MAX, CL_EPEM);
    int rc = CL_OK;
    const unsigned char *p = der;
    cl_cert *c = NULL;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    CL_GUARD_IF(x == NULL, cl_ossl_fail(CL_EPEM));
    CL_GUARD_IF(p != der + len, CL_EPEM); /* trailing bytes after the certificate */
    EVP_PKEY *pkey = X509_get0_pubkey(x);
    CL_GUARD_IF(pkey == NULL, cl_ossl_fail(CL_EKEYTYPE)); /* unknown key algorithm */
    c = cl_malloc(sizeof *c);
    CL_GUARD_IF(c == NULL, CL_ENOMEM);
    c->x509 = x;
    c->pub = NULL;
    CL_GUARD(cl_key_from_pkey(pkey, &c->pub));
    *out = c;
    return CL_OK;
out:
    if (c != NULL)
        cl_free(c);
    X509_free(x);
    return rc;
}

int cl_cert_from_pem(const char *pem, size_t len, cl_cert **out)
{
    CL_ENSURE(pem != NULL && out != NULL, CL_EINVAL);
    CL_ENSURE(len <= INT_MAX, CL_EPEM);
    CL_ENSURE(memchr(pem, '\0', len) == NULL, CL_EPEM);
    /* PEM_read_bio_ex skips any text before "-----BEGIN"; we allow whitespace only. */
    size_t lead = 0;
    while (lead < len && is_space(pem[lead]))
        lead++;
    size_t blen = sizeof PEM_BEGIN_CERT - 1;
    CL_ENSURE(len - lead >= blen, CL_EPEM);
    CL_ENSURE(memcmp(pem + lead, PEM_BEGIN_CERT, blen) == 0, CL_EPEM); /* lint:public */

    int rc = CL_OK;
    char *name = NULL, *header = NULL, *rest = NULL;
    unsigned char *der = NULL;
    long derlen = 0, restlen;
    BIO *bio = BIO_new_mem_buf(pem + lead, (int)(len - lead));
    CL_ENSURE(bio != NULL, cl_ossl_fail(CL_ENOMEM));
    CL_GUARD_IF(PEM_read_bio_ex(bio, &name, &header, &der, &derlen, 0) != 1, cl_ossl_fail(CL_EPEM));
    CL_GUARD_IF(strcmp(name, "CERTIFICATE") != 0 || header[0] != '\0', CL_EPEM);
    /* The read-only memory BIO advances past what PEM_read_bio_ex consumed (up to and including
     * the END line); what remains must be whitespace: no second certificate, no trailing junk. */
    restlen = BIO_get_mem_data(bio, &rest);
    CL_GUARD_IF(restlen < 0 || (restlen > 0 && !all_space(rest, (size_t)restlen)), CL_EPEM);
    CL_GUARD_IF(derlen <= 0, CL_EPEM);
    rc = cl_cert_from_der(der, (size_t)derlen, out);
out:
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(der);
    BIO_free(bio);
    return rc;
}

int cl_cert_load_pem_file(const char *path, cl_cert **out)
{
    CL_ENSURE(path != NULL, CL_EINVAL);
    int rc = CL_OK;
    char *buf = NULL;
    size_t n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? CL_ENOENT : CL_EIO;
    struct stat st;
    CL_GUARD_IF(fstat(fd, &st) != 0, CL_EIO);
    CL_GUARD_IF(!S_ISREG(st.st_mode), CL_EINVAL);
    CL_GUARD_IF(st.st_size > CERT_FILE_MAX, CL_EOVERFLOW);
    buf = cl_malloc((size_t)st.st_size + 1);
    CL_GUARD_IF(buf == NULL, CL_ENOMEM);
    while (n < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
        if (r < 0 && errno == EINTR)
            continue;
        CL_GUARD_IF(r < 0, CL_EIO);
        if (r == 0)
            break;
        n += (size_t)r;
    }
    rc = cl_cert_from_pem(buf, n, out);
out:
    cl_free(buf);
    close(fd);
    return rc;
}

void cl_cert_free(cl_cert *c)
{
    if (c == NULL)
        return;
    cl_key_free(c->pub);
    X509_free(c->x509);
    cl_free(c);
}

int cl_cert_to_der(const cl_cert *c, cl_buf *out)
{
    CL_ENSURE(c != NULL && out != NULL, CL_EINVAL);
    int n = i2d_X509(c->x509, NULL);
    CL_ENSURE(n > 0, cl_ossl_fail(CL_ECRYPTO));
    CL_TRY(cl_buf_reserve(out, (size_t)n));
    unsigned char *p = out->data + out->len;
    CL_ENSURE(i2d_X509(c->x509, &p) == n, cl_ossl_fail(CL_ECRYPTO));
    out->len += (size_t)n;
    return CL_OK;
}

/* The PEM string is not secret: ordinary cl_malloc memory, released with cl_free. */
int cl_cert_to_pem(const cl_cert *c, char **pem, size_t *len)
{
    CL_ENSURE(c != NULL && pem != NULL && len != NULL, CL_EINVAL);
    int rc = CL_OK;
    BIO *bio = BIO_new(BIO_s_mem());
    CL_ENSURE(bio != NULL, cl_ossl_fail(CL_ENOMEM));
    CL_GUARD_IF(PEM_write_bio_X509(bio, c->x509) != 1, cl_ossl_fail(CL_ECRYPTO));
    CL_GUARD(cl_ossl_bio_string(bio, 0, pem, len));
out:
    BIO_free(bio);
    return rc;
}

int cl_cert_save_pem(const cl_cert *c, const char *path)
{
    CL_ENSURE(path != NULL, CL_EINVAL);
    char *pem = NULL;
    size_t len = 0;
    CL_TRY(cl_cert_to_pem(c, &pem, &len));
    int rc = cl_write_file_atomic(path, pem, len, 0644);
    cl_free(pem);
    return rc;
}

int cl_cert_verify_signed_by(const cl_cert *c, const cl_key *issuer)
{
    CL_ENSURE(c != NULL && issuer != NULL, CL_EINVAL);
    /* One link only: signature over the TBS bytes, nothing about dates or names (receipts §3.2). */
    if (X509_verify(c->x509, issuer->pkey) != 1)
        return cl_ossl_fail(CL_EENDORSE);
    return CL_OK;
}

int cl_cert_spki_sha256(const cl_cert *c, uint8_t out[32])
{
    CL_ENSURE(c != NULL, CL_EINVAL);
    return cl_key_spki_sha256(c->pub, out);
}

int cl_cert_fingerprint_sha256(const cl_cert *c, uint8_t out[32])
{
    cl_buf b = CL_BUF_INIT;
    int rc = cl_cert_to_der(c, &b);
    if (rc == CL_OK)
        cl_sha256(b.data, b.len, out);
    cl_buf_free(&b);
    return rc;
}

/* SPKI DER equality; an allocation failure is reported, not mistaken for "different keys". */
static int key_equal(const cl_key *a, const cl_key *b, int *eq)
{
    cl_buf x = CL_BUF_INIT, y = CL_BUF_INIT;
    int rc = cl_key_spki_der(a, &x);
    if (rc == CL_OK)
        rc = cl_key_spki_der(b, &y);
    if (rc == CL_OK)
        *eq = x.len == y.len && cl_ct_equal(x.data, y.data, x.len);
    cl_buf_free(&x);
    cl_buf_free(&y);
    return rc;
}

int cl_cert_same_key(const cl_cert *a, const cl_key *k)
{
    int eq = 0;
    if (a == NULL || k == NULL || key_equal(a->pub, k, &eq) < 0)
        return 0;
    return eq;
}

/* ---- issuance -------------------------------------------------------------------------------- */

static const EVP_MD *sig_md(const cl_key *signer)
{
    return signer->curve == CL_CURVE_P384 ? EVP_sha384() : EVP_sha256();
}

/* RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING contents. */
static int key_identifier(EVP_PKEY *pkey, ASN1_OCTET_STRING **out)
{
    int rc = CL_OK;
    X509_PUBKEY *xpk = NULL;
    const unsigned char *bits = NULL;
    int nbits = 0;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    ASN1_OCTET_STRING *os = NULL;
    CL_GUARD_IF(X509_PUBKEY_set(&xpk, pkey) != 1, cl_ossl_fail(CL_ECRYPTO));
    CL_GUARD_IF(X509_PUBKEY_get0_param(NULL, &bits, &nbits, NULL, xpk) != 1,
                cl_ossl_fail(CL_ECRYPTO));
    CL_GUARD_IF(EVP_Digest(bits, (size_t)nbits, md, &mdlen, EVP_sha1(), NULL) != 1,
                cl_ossl_fail(CL_ECRYPTO));
    os = ASN1_OCTET_STRING_new();
    CL_GUARD_IF(os == NULL || ASN1_OCTET_STRING_set(os, md, (int)mdlen) != 1,
                cl_ossl_fail(CL_ENOMEM));
    *out = os;
    os = NULL;
out:
    ASN1_OCTET_STRING_free(os);
    X509_PUBKEY_free(xpk);
    return rc;
}

static int add_conf_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, NULL, x, NULL, NULL, 0);
    X509V3_set_ctx_nodb(&ctx);
    X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
    CL_ENSURE(ext != NULL, cl_ossl_fail(CL_ECRYPTO));
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    CL_ENSURE(ok == 1, cl_ossl_fail(CL_ECRYPTO));
    return CL_OK;
}

/* subjectKeyIdentifier of the certified key and authorityKeyIdentifier of the signer: the issuer
 * certificate's own SKID when it has one, so the two match, else the hash of the signer's key. */
static int add_key_ids(X509 *x, EVP_PKEY *subject, const X509 *issuer_cert, EVP_PKEY *signer)
{
    int rc = CL_OK;
    ASN1_OCTET_STRING *skid = NULL;
    AUTHORITY_KEYID *akid = NULL;
    CL_GUARD(key_identifier(subject, &skid));
    CL_GUARD_IF(X509_add1_ext_i2d(x, NID_subject_key_identifier, skid, 0, X509V3_ADD_DEFAULT) != 1,
                cl_ossl_fail(CL_ECRYPTO));
    akid = AUTHORITY_KEYID_new();
    CL_GUARD_IF(akid == NULL, cl_ossl_fail(CL_ENOMEM));
    const ASN1_OCTET_STRING *issuer_skid =
        issuer_cert != NULL ? X509_get0_subject_key_id((X509 *)issuer_cert) : NULL;
    if (issuer_skid != NULL) {
        akid->keyid = ASN1_OCTET_STRING_dup(issuer_skid);
        CL_GUARD_IF(akid->keyid == NULL, cl_ossl_fail(CL_ENOMEM));
    } else if (signer == subject) {
        akid->keyid = skid;
        skid = NULL;
    } else {
        CL_GUARD(key_identifier(signer, &akid->keyid));
    }
    CL_GUARD_IF(X509_add1_ext_i2d(x, NID_authority_key_identifier, akid, 0, X509V3_ADD_DEFAULT) !=
                    1,
                cl_ossl_fail(CL_ECRYPTO));
out:
    ASN1_OCTET_STRING_free(skid);
    AUTHORITY_KEYID_free(akid);
    return rc;
}

/* A DNS name we are willing to put in a SAN: non-empty printable ASCII without spaces. */
static int dns_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 253)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '.' || ch == '_' || ch == '*'))
            return 0;
    }
    return 1;
}

static int add_sans(X509 *x, const char *const *sans, size_t nsans)
{
    int rc = CL_OK;
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    GENERAL_NAME *gen = NULL;
    CL_ENSURE(gens != NULL, cl_ossl_fail(CL_ENOMEM));
    for (size_t i = 0; i < nsans; i++) {
        CL_GUARD_IF(sans[i] == NULL, CL_EINVAL);
        unsigned char addr[16];
        int family = strchr(sans[i], ':') != NULL ? AF_INET6 : AF_INET;
        gen = GENERAL_NAME_new();
        CL_GUARD_IF(gen == NULL, cl_ossl_fail(CL_ENOMEM));
        /* Only full literals count as IP addresses (inet_pton is strict: no "1.2.3"). */
        if (inet_pton(family, sans[i], addr) == 1) {
            ASN1_OCTET_STRING *ip = ASN1_OCTET_STRING_new();
            CL_GUARD_IF(ip == NULL, cl_ossl_fail(CL_ENOMEM));
            GENERAL_NAME_set0_value(gen, GEN_IPADD, ip);
            CL_GUARD_IF(ASN1_OCTET_STRING_set(ip, addr, family == AF_INET6 ? 16 : 4) != 1,
                        cl_ossl_fail(CL_ENOMEM));
        } else {
            CL_GUARD_IF(!dns_name_ok(sans[i]), CL_EINVAL);
            ASN1_IA5STRING *dns = ASN1_IA5STRING_new();
            CL_GUARD_IF(dns == NULL, cl_ossl_fail(CL_ENOMEM));
            GENERAL_NAME_set0_value(gen, GEN_DNS, dns);
            CL_GUARD_IF(ASN1_STRING_set(dns, sans[i], -1) != 1, cl_ossl_fail(CL_ENOMEM));
        }
        CL_GUARD_IF(sk_GENERAL_NAME_push(gens, gen) <= 0, cl_ossl_fail(CL_ENOMEM));
        gen = NULL;
    }
    CL_GUARD_IF(X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) != 1,
                cl_ossl_fail(CL_ECRYPTO));
out:
    GENERAL_NAME_free(gen);
    GENERAL_NAMES_free(gens);
    return rc;
}

static int random_serial(X509 *x)
{
    uint8_t raw[16];
    CL_TRY(cl_random(raw, sizeof raw));
    raw[15] |= 1; /* never zero; a BIGNUM from bytes is never negative */
    BIGNUM *bn = BN_bin2bn(raw, sizeof raw, NULL);
    CL_ENSURE(bn != NULL, cl_ossl_fail(CL_ENOMEM));
    ASN1_INTEGER *serial = BN_to_ASN1_INTEGER(bn, NULL);
    BN_free(bn);
    CL_ENSURE(serial != NULL, cl_ossl_fail(CL_ENOMEM));
    int ok = X509_set_serialNumber(x, serial);
    ASN1_INTEGER_free(serial);
    CL_ENSURE(ok == 1, cl_ossl_fail(CL_ENOMEM));
    return CL_OK;
}

typedef struct {
    EVP_PKEY *subject_key;    /* key being certified (public part used) */
    const X509_NAME *subject; /* subject name */
    const X509_NAME *issuer;  /* issuer name */
    const X509 *issuer_cert;  /* for the AKID; NULL when self-signed */
    const cl_key *signer;     /* private key that signs */
    int days;
    int ca;
    const char *const *sans;
    size_t nsans;
} cert_template;

/* Builds, signs and re-parses one certificate. */
static int build_cert(const cert_template *t, cl_cert **out)
{
    CL_ENSURE(t->days > 0 && t->days <= 36500, CL_EINVAL);
    CL_ENSURE(t->signer->has_private, CL_EINVAL);
    int rc = CL_OK;
    cl_buf der = CL_BUF_INIT;
    X509 *x = X509_new();
    CL_ENSURE(x != NULL, cl_ossl_fail(CL_ENOMEM));
    CL_GUARD_IF(X509_set_version(x, X509_VERSION_3) != 1, cl_ossl_fail(CL_ECRYPTO));
    CL_GUARD(random_serial(x));
    CL_GUARD_IF(X509_set_subject_name(x, t->subject) != 1 ||
                    X509_set_issuer_name(x, t->issuer) != 1,
                cl_ossl_fail(CL_ENOMEM));
    /* One hour of back-dating absorbs clock skew between the issuer and relying parties. */
    CL_GUARD_IF(X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
                    X509_time_adj_ex(X509_getm_notAfter(x), t->days, 0, NULL) == NULL,
                cl_ossl_fail(CL_ECRYPTO));
    CL_GUARD_IF(X509_set_pubkey(x, t->subject_key) != 1, cl_ossl_fail(CL_ECRYPTO));
    if (t->ca) {
        CL_GUARD(add_conf_ext(x, NID_basic_constraints, "critical,CA:TRUE"));
        CL_GUARD(add_conf_ext(x, NID_key_usage, "critical,digitalSignature,keyCertSign,cRLSign"));
    } else {
        CL_GUARD(add_conf_ext(x, NID_basic_constraints, "critical,CA:FALSE"));
        CL_GUARD(add_conf_ext(x, NID_key_usage, "critical,digitalSignature"));
        CL_GUARD(add_conf_ext(x, NID_ext_key_usage, "serverAuth,clientAuth"));
    }
    CL_GUARD(add_key_ids(x, t->subject_key, t->issuer_cert, t->signer->pkey));
    if (t->nsans > 0)
        CL_GUARD(add_sans(x, t->sans, t->nsans));
    CL_GUARD_IF(X509_sign(x, t->signer->pkey, sig_md(t->signer)) <= 0, cl_ossl_fail(CL_ECRYPTO));
    {
        cl_cert tmp = {x, NULL};
        CL_GUARD(cl_cert_to_der(&tmp, &der));
    }
    rc = cl_cert_from_der(der.data, der.len, out);
out:
    X509_free(x);
    cl_buf_free(&der);
    return rc;
}

int cl_cert_self_signed_ca(const cl_key *key, const char *cn, int days, cl_cert **out)
{
    CL_ENSURE(key != NULL && cn != NULL && cn[0] != '\0' && out != NULL, CL_EINVAL);
    X509_NAME *name = X509_NAME_new();
    CL_ENSURE(name != NULL, cl_ossl_fail(CL_ENOMEM));
    int rc = CL_OK;
    CL_GUARD_IF(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
                                           -1, 0) != 1,
                cl_ossl_fail(CL_EINVAL));
    cert_template t = {key->pkey, name, name, NULL, key, days, 1, NULL, 0};
    rc = build_cert(&t, out);
out:
    X509_NAME_free(name);
    return rc;
}

int cl_cert_issue(const cl_key *subject_key, const char *cn, const cl_cert *issuer_cert,
                  const cl_key *issuer_key, int days, const char *const *sans, size_t nsans,
                  cl_cert **out)
{
    CL_ENSURE(subject_key != NULL && cn != NULL && cn[0] != '\0' && issuer_cert != NULL &&
                  issuer_key != NULL && out != NULL && (nsans == 0 || sans != NULL),
              CL_EINVAL);
    /* Signing with a key that is not the issuer certificate's would produce a dangling link. */
    int eq = 0;
    CL_TRY(key_equal(issuer_cert->pub, issuer_key, &eq));
    CL_ENSURE(eq, CL_EINVAL);
    X509_NAME *name = X509_NAME_new();
    CL_ENSURE(name != NULL, cl_ossl_fail(CL_ENOMEM));
    int rc = CL_OK;
    CL_GUARD_IF(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
                                           -1, 0) != 1,
                cl_ossl_fail(CL_EINVAL));
    cert_template t = {subject_key->pkey,
                       name,
                       X509_get_subject_name(issuer_cert->x509),
                       issuer_cert->x509,
                       issuer_key,
                       days,
                       0,
                       sans,
                       nsans};
    rc = build_cert(&t, out);
out:
    X509_NAME_free(name);
    return rc;
}

int cl_cert_endorse_previous(const cl_cert *previous, const cl_cert *new_cert,
                             const cl_key *new_key, int days, cl_cert **out)
{
    CL_ENSURE(previous != NULL && new_cert != NULL && new_key != NULL && out != NULL, CL_EINVAL);
    int eq = 0;
    CL_TRY(key_equal(new_cert->pub, new_key, &eq));
    CL_ENSURE(eq, CL_EINVAL);
    cert_template t = {previous->pub->pkey,
                       X509_get_subject_name(previous->x509),
                       X509_get_subject_name(new_cert->x509),
                       new_cert->x509,
                       new_key,
                       days,
                       1,
                       NULL,
                       0};
    return build_cert(&t, out);
}
