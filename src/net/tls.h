/*
 * tls.h — server-side TLS context for cledgerd and cledger-attestd (OpenSSL 3).
 *
 * TLS 1.3 preferred, 1.2 minimum, ECDHE with AEAD ciphers only for 1.2. The server presents a
 * certificate chain (leaf first; for cledgerd the node's TLS certificate issued by the service
 * identity, with SANs for the listen host, localhost and 127.0.0.1). Client certificates are
 * requested but optional, and self-signed ones are accepted: the handshake proves possession of
 * the key; identity is the SHA-256 fingerprint of the certificate (ACL semantics), decided later
 * by admission. A cl_tls_ctx owns its SSL_CTX; free it after every server using it has stopped.
 */
#ifndef CLEDGER_NET_TLS_H
#define CLEDGER_NET_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

#include "base/err.h"

typedef struct cl_tls_ctx {
    SSL_CTX *ssl;
} cl_tls_ctx;

/* cert_chain_pem: leaf certificate then intermediates; key_pem: the leaf's private key. */
CL_MUST_CHECK int cl_tls_server_ctx(const char *cert_chain_pem, size_t cert_len,
                                    const char *key_pem, size_t key_len, int request_client_cert,
                                    cl_tls_ctx **out);
void cl_tls_ctx_free(cl_tls_ctx *c);
/* ACL's user id form of a certificate: SHA-256 of the DER, upper-case hex bytes joined by ':'. */
void cl_tls_fingerprint(const unsigned char *der, size_t len, char out[96]);
/* The certificate the peer of a finished handshake presented: its fingerprint (as above) and its
 * validity period (notBefore, notAfter) in seconds since the epoch. 1 and the outputs filled when
 * there is one (dates that cannot be read give not_before = INT64_MAX, not_after = INT64_MIN: a
 * period that is never current); 0, out = "" and both times 0 when none; CL_ECRYPTO when it
 * cannot be encoded. */
CL_MUST_CHECK int cl_tls_peer_identity(SSL *ssl, char out[96], int64_t *not_before,
                                       int64_t *not_after);

#endif
