/*
 * tls.c — the server SSL_CTX (tls.h) and ACL's certificate fingerprint form.
 *
 * Policy: TLS 1.2 minimum and 1.3 preferred (OpenSSL negotiates the highest common version);
 * TLS 1.2 cipher suites restricted to ECDHE key exchange with AEAD ciphers; no renegotiation, no
 * compression. Client certificates are requested with SSL_VERIFY_PEER but never required, and the
 * verify callback accepts any certificate, self-signed included: possession of the key is proved by
 * the handshake's CertificateVerify, and the identity (the SHA-256 fingerprint) is judged later by
 * admission, as ACL does.
 *
 * The PEM inputs are read through read-only memory BIOs over the caller's buffers (no copy of the
 * private key is made here; OpenSSL keeps its own in the SSL_CTX and wipes it on free).
 */
#include "net/tls.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "crypto/hash.h"

/* TLS 1.2 suites: ECDHE (ECDSA or RSA certificates) with AES-GCM or ChaCha20-Poly1305 only. */
#define CL_TLS12_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL"

static int tls_fail(int err)
{
    ERR_clear_error();
    return err;
}

/* Accepts whatever certificate the client presented (or none): see the file comment. */
static int accept_any_client_cert(int preverify_ok, X509_STORE_CTX *store)
{
    (void)preverify_ok;
    (void)store;
    return 1;
}

static int load_chain(SSL_CTX *ctx, const char *pem, size_t len)
{
    if (len > (size_t)INT32_MAX)
        return CL_EOVERFLOW;
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL)
        return CL_ENOMEM;
    int rc = CL_OK;
    X509 *leaf = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    CL_GUARD_IF(leaf == NULL, CL_EPEM);
    CL_GUARD_IF(SSL_CTX_use_certificate(ctx, leaf) != 1, CL_EPEM);
    for (;;) {
        X509 *ca = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (ca == NULL) {
            /* The end of the input reads as "no start line"; anything else is malformed. */
            unsigned long e = ERR_peek_last_error();
            CL_GUARD_IF(ERR_GET_REASON(e) != PEM_R_NO_START_LINE, CL_EPEM);
            ERR_clear_error();
            break;
        }
        int ok = SSL_CTX_add0_chain_cert(ctx, ca);
        if (ok != 1)
            X509_free(ca);
        CL_GUARD_IF(ok != 1, CL_EPEM);
    }
out:
    X509_free(leaf);
    BIO_free(bio);
    return rc;
}

static int load_key(SSL_CTX *ctx, const char *pem, size_t len)
{
    if (len > (size_t)INT32_MAX)
        return CL_EOVERFLOW;
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL)
        return CL_ENOMEM;
    int rc = CL_OK;
    EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    CL_GUARD_IF(key == NULL, CL_EPEM);
    CL_GUARD_IF(SSL_CTX_use_PrivateKey(ctx, key) != 1, CL_EKEYTYPE);
    /* The key must belong to the leaf certificate. */
    CL_GUARD_IF(SSL_CTX_check_private_key(ctx) != 1, CL_EKEYTYPE);
out:
    EVP_PKEY_free(key);
    BIO_free(bio);
    return rc;
}

int cl_tls_server_ctx(const char *cert_chain_pem, size_t cert_len, const char *key_pem,
                      size_t key_len, int request_client_cert, cl_tls_ctx **out)
{
    *out = NULL;
    if (cert_chain_pem == NULL || key_pem == NULL)
        return CL_EINVAL;
    int rc = CL_OK;
    cl_tls_ctx *c = cl_calloc(1, sizeof *c);
    if (c == NULL)
        return CL_ENOMEM;
    c->ssl = SSL_CTX_new(TLS_server_method());
    CL_GUARD_IF(c->ssl == NULL, CL_ENOMEM);
    SSL_CTX *ctx = c->ssl;

    CL_GUARD_IF(SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1, CL_ECRYPTO);
    CL_GUARD_IF(SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1, CL_ECRYPTO);
    CL_GUARD_IF(SSL_CTX_set_cipher_list(ctx, CL_TLS12_CIPHERS) != 1, CL_ECRYPTO);
    /* CLEANSE_PLAINTEXT: a record's decrypted bytes are wiped once SSL_read has copied them out
     * (OpenSSL otherwise leaves them in its read buffer, freed unwiped): request bodies hold a
     * private ledger's contents and bearer tokens. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_CLEANSE_PLAINTEXT);
    /* No SSL_MODE_RELEASE_BUFFERS: the HTTP layer frees a connection's record buffers once it is
     * idle (SSL_free_buffers), not after every record, which CLEANSE_PLAINTEXT makes costly. */
    /* Resumption with client certificates needs a session id context (SSL_CTX_set_verify(3)). */
    static const unsigned char sid_ctx[] = "cledger";
    CL_GUARD_IF(SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1) != 1, CL_ECRYPTO);

    CL_GUARD(load_chain(ctx, cert_chain_pem, cert_len));
    CL_GUARD(load_key(ctx, key_pem, key_len));

    if (request_client_cert)
        /* Optional: no SSL_VERIFY_FAIL_IF_NO_PEER_CERT, so clients without one still connect. */
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, accept_any_client_cert);
    else
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);

    *out = c;
    c = NULL;
out:
    if (c != NULL) {
        SSL_CTX_free(c->ssl);
        cl_free(c);
        return tls_fail(rc);
    }
    return rc;
}

void cl_tls_ctx_free(cl_tls_ctx *c)
{
    if (c == NULL)
        return;
    SSL_CTX_free(c->ssl);
    cl_free(c);
}

void cl_tls_fingerprint(const unsigned char *der, size_t len, char out[96])
{
    static const char hex[] = "0123456789ABCDEF";
    uint8_t d[CL_SHA256_LEN];
    cl_sha256(der, len, d);
    for (size_t i = 0; i < CL_SHA256_LEN; i++) {
        out[3 * i] = hex[d[i] >> 4];
        out[3 * i + 1] = hex[d[i] & 15];
        out[3 * i + 2] = i + 1 < CL_SHA256_LEN ? ':' : '\0';
    }
}

/* An X.509 time (UTCTime or GeneralizedTime) as seconds since the epoch. */
static int asn1_time_secs(const ASN1_TIME *t, int64_t *out)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return CL_ECRYPTO;
    *out = (int64_t)timegm(&tm);
    return CL_OK;
}

int cl_tls_peer_identity(SSL *ssl, char out[96], int64_t *not_before, int64_t *not_after)
{
    out[0] = '\0';
    *not_before = *not_after = 0;
    X509 *peer = SSL_get0_peer_certificate(ssl);
    if (peer == NULL)
        return 0;
    /* A validity OpenSSL cannot read (a month 13, say) still leaves a certificate whose key the
     * peer proved: the identity stands, with an empty period that is never current. */
    if (asn1_time_secs(X509_get0_notBefore(peer), not_before) < 0 ||
        asn1_time_secs(X509_get0_notAfter(peer), not_after) < 0) {
        ERR_clear_error();
        *not_before = INT64_MAX;
        *not_after = INT64_MIN;
    }
    unsigned char *der = NULL;
    int n = i2d_X509(peer, &der);
    if (n <= 0)
        return tls_fail(CL_ECRYPTO);
    cl_tls_fingerprint(der, (size_t)n, out);
    OPENSSL_free(der);
    return 1;
}
