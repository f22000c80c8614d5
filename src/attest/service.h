/*
 * service.h — the MAA-compatible attestation service behind cledger-attestd
 * (spec/attestation-api.md): routes, admission, evidence verification, policy evaluation and
 * token issuance, on top of an HTTPS server (net/http.h) whose handler is cl_attestd_handle.
 *
 * Threads: cl_attestd_handle runs on the server's main loop. With HTTPS worker threads, the
 * daemon also installs cl_attestd_handle_local, which parses, verifies, evaluates and signs an
 * SGX, Open Enclave, TDX or Virtual attestation on the worker that owns the connection, with no
 * hand-off.
 * Otherwise attestation requests are admitted on the main loop and then parsed, verified,
 * evaluated and signed on libuv's thread pool (uv_queue_work), so the main loop stays
 * responsive and both cores sign; the reply is sent from the main loop.
 * The request body is read by the pool thread in place (the exchange keeps it until the reply).
 * Every administrative request runs on the main loop (they are rare and must be serialised).
 *
 * Ownership: the service borrows the store, the signing key and certificate, and the JWKS for
 * the lifetime of the service (the caller frees them after cl_attestd_free). Pending
 * attestations hold their own references; cl_attestd_free must only be called after the HTTP
 * server has stopped and the loop has run the pending work to completion (the daemon's shutdown
 * order guarantees it).
 */
#ifndef CLEDGER_ATTEST_SERVICE_H
#define CLEDGER_ATTEST_SERVICE_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <uv.h>

#include "attest/store.h"
#include "base/err.h"
#include "net/http.h"

struct cl_jwks;
struct cl_intel_collateral;

typedef struct {
    uv_loop_t *loop;
    cl_astore *store;
    const char *base_url; /* "https://host:port": iss, jku and jwks_uri prefix */
    int isolated;         /* mode: 0 AAD, 1 Isolated (policy writes need a management signer) */
    /* Administrators: a bearer JWT valid for (jwks, issuer, audience), or a TLS client
     * certificate with this fingerprint (ACL form, "" for none). Neither configured: no caller is
     * an administrator and administrative routes answer 401. */
    const struct cl_jwks *admin_jwks;
    const char *admin_issuer, *admin_audience;
    const char *admin_cert_fp;
    int tpm_requires_bearer; /* /attest/Tpm needs an administrator's bearer (MAA: yes) */
    EVP_PKEY *sign_key;      /* RSA-2048 token key */
    X509 *sign_cert;         /* its certificate, published at /certs */
    /* Intel collateral by FMSPC (lower-case hex, 12 chars); may be empty. required: attestation
     * without collateral for the platform fails; otherwise TCB evaluation is skipped and the
     * token says so (x-ms-sgx-collateral holds only quotehash; no TCB status claims). */
    struct cl_intel_collateral *const *collateral;
    const char *const *collateral_fmspc;
    size_t ncollateral;
    int collateral_required;
    /* TPM: PEM bundle of trusted EK/AK CA certificates (may be NULL: no TPM trust anchors). */
    const char *tpm_roots_pem;
    size_t tpm_roots_len;
    int64_t fixed_time;      /* tests: evaluate certificates/collateral at this time (0: now) */
    int64_t nbf_backdate;    /* seconds subtracted from iat/nbf (attestation-api.md §5.2) */
    uint8_t context_key[32]; /* HMAC key of TPM service_context values */
    const char *version;     /* x-ms-maa-service-version */
} cl_attestd_opts;

typedef struct cl_attestd cl_attestd;

CL_MUST_CHECK int cl_attestd_new(const cl_attestd_opts *o, cl_attestd **out);
/* Stops accepting new work (new attestations answer 503); pending ones still complete. */
void cl_attestd_quiesce(cl_attestd *a);
/* Number of attestations queued or running. */
size_t cl_attestd_pending(const cl_attestd *a);
void cl_attestd_free(cl_attestd *a);

/* The cl_http_handler of the service (arg = the cl_attestd). */
void cl_attestd_handle(void *arg, cl_http_exchange *x);
/* The worker-side handler (net/http.h local_handler): takes SGX, Open Enclave, TDX and Virtual
 * attestations and answers them on the calling HTTPS worker thread; 0 for anything else. */
int cl_attestd_handle_local(void *arg, cl_http_exchange *x);

/* x-ms-policy-hash of a policy text: b64url(SHA-256(b64url(text))) (spec §6.6); out >= 44. */
void cl_attestd_policy_hash(const char *text, size_t len, char out[44]);

/* Default policy text of a type, or NULL (Tpm has none). */
const char *cl_attestd_default_policy(int type);

#endif
