/*
 * cledger-attestd — an attestation service compatible with Microsoft Azure Attestation.
 *
 *   cledger-attestd --data-dir DIR --listen HOST:PORT [--mode aad|isolated]
 *                   [--admin-jwks FILE_OR_URL] [--admin-issuer ISS] [--admin-audience AUD]
 *                   [--admin-cert PEM] [--policy-signer-cert PEM ...] [--config FILE]
 *                   [--collateral-dir DIR] [--collateral required|if-available]
 *                   [--tpm-roots PEM] [--base-url URL] [--verification-time UNIX]
 *                   [--log-level LEVEL]
 *   cledger-attestd export --data-dir DIR [--out FILE]      backup of policies and certificates
 *   cledger-attestd import --data-dir DIR FILE              restore (while the service is stopped)
 *
 * A fresh DIR creates an instance: mode (fixed from then on), RSA-2048 token signing key and
 * certificate (DIR/signing_key.pem 0600, DIR/signing_cert.pem), a TLS key and certificate chain
 * with SANs for the listen host, localhost and 127.0.0.1 (DIR/tls_key.pem 0600, DIR/tls_cert.pem:
 * leaf then its issuing root — give this file to clients as their CA bundle), the TPM
 * service-context key (DIR/context.key 0600), and for Isolated mode the initial policy
 * management certificates (at least one --policy-signer-cert). The config file is JSON with the
 * same settings in camelCase ("dataDir", "listen", "mode", "adminJwks", "adminIssuer",
 * "adminAudience", "adminCert", "policySignerCerts" (array), "collateralDir", "collateral",
 * "tpmRoots", "baseUrl", "verificationTime", "nbfBackdateSeconds", "tpmRequiresBearer",
 * "httpThreads", "logLevel"); flags win. SIGTERM/SIGINT: stop accepting, finish in-flight
 * attestations, exit 0.
 */
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <openssl/pem.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "attest/jws.h"
#include "attest/service.h"
#include "attest/sgx.h"
#include "attest/store.h"
#include "base/alloc.h"
#include "base/file.h"
#include "base/json.h"
#include "base/log.h"
#include "crypto/cpu.h"
#include "crypto/ec.h"
#include "crypto/hash.h"
#include "crypto/x509.h"
#include "net/http.h"
#include "net/tls.h"

#ifndef CLEDGER_VERSION
#define CLEDGER_VERSION "0.1.0-dev"
#endif

#define MAX_SIGNERS 16

typedef struct {
    const char *data_dir, *listen, *mode, *admin_jwks, *admin_issuer, *admin_audience, *admin_cert,
        *config, *log_level, *collateral_dir, *collateral, *tpm_roots, *base_url;
    const char *signers[MAX_SIGNERS];
    size_t nsigners;
    int64_t verification_time, nbf_backdate;
    int tpm_requires_bearer; /* -1: default (yes) */
    int http_threads;        /* -1: default (number of CPUs) */
} settings;

typedef struct {
    uv_loop_t *loop;
    settings s;
    cl_astore *store;
    cl_attestd *svc;
    cl_tls_ctx *tls;
    cl_http_server *http;
    cl_jwks *jwks;
    EVP_PKEY *sign_key;
    X509 *sign_cert;
    cl_intel_collateral **coll;
    char **coll_fmspc;
    size_t ncoll;
    char *tpm_roots;
    size_t tpm_roots_len;
    uv_signal_t sigterm, sigint;
    uv_timer_t drain;
    int stopping, exit_code;
    char host[256];
    int port;
    char admin_fp[96];
    char base_url[512];
} daemon_t;

static void usage(FILE *f)
{
    fprintf(f, "usage: cledger-attestd --data-dir DIR --listen HOST:PORT [--mode aad|isolated]\n"
               "         [--admin-jwks FILE_OR_URL] [--admin-issuer ISS] [--admin-audience AUD]\n"
               "         [--admin-cert PEM] [--policy-signer-cert PEM ...] [--config FILE]\n"
               "         [--collateral-dir DIR] [--collateral required|if-available]\n"
               "         [--tpm-roots PEM] [--base-url URL] [--verification-time UNIX]\n"
               "         [--log-level LEVEL] [--version]\n"
               "       cledger-attestd export --data-dir DIR [--out FILE]\n"
               "       cledger-attestd import --data-dir DIR FILE\n");
}

static int path_in(const daemon_t *d, const char *name, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s", d->s.data_dir, name);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* ---- settings ------------------------------------------------------------------------------ */

static int load_config(settings *s)
{
    size_t len = 0;
    char *text = cl_read_file(s->config, &len);
    if (text == NULL) {
        fprintf(stderr, "cledger-attestd: cannot read config file %s: %s\n", s->config,
                strerror(errno));
        return -1;
    }
    json_t *j = NULL;
    char err[200];
    int rc = cl_json_parse(text, len, 1u << 20, &j, err, sizeof err);
    free(text);
    if (rc < 0 || !json_is_object(j)) {
        fprintf(stderr, "cledger-attestd: config file %s: %s\n", s->config,
                rc < 0 ? err : "not a JSON object");
        json_decref(j);
        return -1;
    }
    static const struct {
        const char *key;
        size_t off;
    } strs[] = {
        {"dataDir", offsetof(settings, data_dir)},
        {"listen", offsetof(settings, listen)},
        {"mode", offsetof(settings, mode)},
        {"adminJwks", offsetof(settings, admin_jwks)},
        {"adminIssuer", offsetof(settings, admin_issuer)},
        {"adminAudience", offsetof(settings, admin_audience)},
        {"adminCert", offsetof(settings, admin_cert)},
        {"logLevel", offsetof(settings, log_level)},
        {"collateralDir", offsetof(settings, collateral_dir)},
        {"collateral", offsetof(settings, collateral)},
        {"tpmRoots", offsetof(settings, tpm_roots)},
        {"baseUrl", offsetof(settings, base_url)},
    };
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v)
    {
        int done = 0;
        for (size_t i = 0; i < sizeof strs / sizeof strs[0] && !done; i++) {
            if (strcmp(k, strs[i].key) != 0)
                continue;
            done = 1;
            const char **slot = (const char **)((char *)s + strs[i].off);
            if (!json_is_string(v)) {
                fprintf(stderr, "cledger-attestd: config %s: \"%s\" must be a string\n", s->config,
                        k);
                json_decref(j);
                return -1;
            }
            if (*slot == NULL) /* flags win */
                *slot = strdup(json_string_value(v));
        }
        if (done)
            continue;
        if (strcmp(k, "policySignerCerts") == 0 && json_is_array(v)) {
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e)
            {
                if (!json_is_string(e) || s->nsigners >= MAX_SIGNERS) {
                    fprintf(stderr,
                            "cledger-attestd: config %s: policySignerCerts must be at "
                            "most 16 paths\n",
                            s->config);
                    json_decref(j);
                    return -1;
                }
                s->signers[s->nsigners++] = strdup(json_string_value(e));
            }
        } else if ((strcmp(k, "verificationTime") == 0 || strcmp(k, "nbfBackdateSeconds") == 0 ||
                    strcmp(k, "httpThreads") == 0) &&
                   json_is_integer(v) && json_integer_value(v) >= 0) {
            if (k[0] == 'v' && s->verification_time == 0)
                s->verification_time = json_integer_value(v);
            else if (k[0] == 'n')
                s->nbf_backdate = json_integer_value(v);
            else if (k[0] == 'h' && s->http_threads < 0)
                s->http_threads = (int)(json_integer_value(v) > 64 ? 64 : json_integer_value(v));
        } else if (strcmp(k, "tpmRequiresBearer") == 0 && json_is_boolean(v)) {
            if (s->tpm_requires_bearer < 0)
                s->tpm_requires_bearer = json_is_true(v);
        } else {
            fprintf(stderr, "cledger-attestd: config %s: unknown or mistyped setting \"%s\"\n",
                    s->config, k);
            json_decref(j);
            return -1;
        }
    }
    json_decref(j);
    return 0;
}

/* ---- key material -------------------------------------------------------------------------- */

static int save_pkey(EVP_PKEY *k, const char *path)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL || PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) != 1) {
        BIO_free(b);
        return CL_ECRYPTO;
    }
    char *data;
    long n = BIO_get_mem_data(b, &data);
    int rc = cl_write_file_atomic(path, data, (size_t)n, 0600);
    OPENSSL_cleanse(data, (size_t)n); /* BIO_s_mem frees its buffer without wiping it */
    BIO_free_all(b);
    return rc;
}

static int save_x509(X509 *c, const char *path)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL || PEM_write_bio_X509(b, c) != 1) {
        BIO_free(b);
        return CL_ECRYPTO;
    }
    char *data;
    long n = BIO_get_mem_data(b, &data);
    int rc = cl_write_file_atomic(path, data, (size_t)n, 0644);
    BIO_free(b);
    return rc;
}

static int load_signing_key(daemon_t *d, int fresh)
{
    char kp[1100], cp[1100];
    if (path_in(d, "signing_key.pem", kp, sizeof kp) < 0 ||
        path_in(d, "signing_cert.pem", cp, sizeof cp) < 0)
        return -1;
    if (fresh) {
        int rc = cl_jws_signing_key_generate(&d->sign_key, &d->sign_cert,
                                             "cledger-attestd token signing", (int64_t)time(NULL));
        if (rc == CL_OK)
            rc = save_pkey(d->sign_key, kp);
        if (rc == CL_OK)
            rc = save_x509(d->sign_cert, cp);
        if (rc < 0) {
            fprintf(stderr, "cledger-attestd: cannot create the token signing key: %s\n",
                    cl_strerror(rc));
            return -1;
        }
        return 0;
    }
    FILE *f = fopen(kp, "rb");
    if (f != NULL) {
        d->sign_key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        fclose(f);
    }
    f = fopen(cp, "rb");
    if (f != NULL) {
        d->sign_cert = PEM_read_X509(f, NULL, NULL, NULL);
        fclose(f);
    }
    if (d->sign_key == NULL || d->sign_cert == NULL ||
        EVP_PKEY_eq(X509_get0_pubkey(d->sign_cert), d->sign_key) != 1) {
        fprintf(stderr, "cledger-attestd: %s / %s missing, unreadable or not a pair\n", kp, cp);
        return -1;
    }
    return 0;
}

/* TLS: an EC root and a leaf with SANs; DIR/tls_cert.pem = leaf + root (the client CA bundle). */
static int make_tls(daemon_t *d, int fresh)
{
    char kp[1100], cp[1100];
    if (path_in(d, "tls_key.pem", kp, sizeof kp) < 0 ||
        path_in(d, "tls_cert.pem", cp, sizeof cp) < 0)
        return -1;
    struct stat st;
    int rc = CL_OK;
    cl_key *root_key = NULL, *leaf_key = NULL;
    cl_cert *root = NULL, *leaf = NULL;
    char *leaf_pem = NULL, *root_pem = NULL, *chain = NULL;
    if (fresh || stat(cp, &st) != 0) {
        const char *sans[3] = {"localhost", "127.0.0.1", d->host};
        size_t nsans = (strcmp(d->host, "localhost") == 0 || strcmp(d->host, "127.0.0.1") == 0 ||
                        d->host[0] == '\0')
                           ? 2
                           : 3;
        size_t ll, rl;
        CL_GUARD(cl_key_generate(CL_CURVE_P256, &root_key));
        CL_GUARD(cl_cert_self_signed_ca(root_key, "cledger-attestd TLS root", 3650, &root));
        CL_GUARD(cl_key_generate(CL_CURVE_P256, &leaf_key));
        CL_GUARD(
            cl_cert_issue(leaf_key, "cledger-attestd", root, root_key, 825, sans, nsans, &leaf));
        CL_GUARD(cl_cert_to_pem(leaf, &leaf_pem, &ll));
        CL_GUARD(cl_cert_to_pem(root, &root_pem, &rl));
        chain = cl_malloc(ll + rl + 1);
        CL_GUARD_IF(chain == NULL, CL_ENOMEM);
        memcpy(chain, leaf_pem, ll);
        memcpy(chain + ll, root_pem, rl + 1);
        CL_GUARD(cl_key_save_private_pem(leaf_key, kp));
        CL_GUARD(cl_write_file_atomic(cp, chain, ll + rl, 0644));
    }
out:
    cl_free(chain);
    cl_free(leaf_pem);
    cl_free(root_pem);
    cl_cert_free(root);
    cl_cert_free(leaf);
    cl_key_free(root_key);
    cl_key_free(leaf_key);
    if (rc < 0) {
        fprintf(stderr, "cledger-attestd: cannot create the TLS certificate: %s\n",
                cl_strerror(rc));
        return -1;
    }
    size_t cl_len = 0, kl_len = 0;
    char *cert_pem = cl_read_file(cp, &cl_len), *key_pem = cl_read_file(kp, &kl_len);
    rc = cert_pem && key_pem ? cl_tls_server_ctx(cert_pem, cl_len, key_pem, kl_len, 1, &d->tls)
                             : CL_EIO;
    if (key_pem != NULL)
        cl_wipe(key_pem, kl_len);
    free(cert_pem);
    free(key_pem);
    if (rc < 0) {
        fprintf(stderr, "cledger-attestd: TLS set-up from %s / %s failed: %s\n", cp, kp,
                cl_strerror(rc));
        return -1;
    }
    return 0;
}

static int load_context_key(daemon_t *d, int fresh, uint8_t key[32])
{
    char p[1100];
    if (path_in(d, "context.key", p, sizeof p) < 0)
        return -1;
    if (fresh) {
        if (cl_random(key, 32) < 0 || cl_write_file_atomic(p, key, 32, 0600) < 0) {
            fprintf(stderr, "cledger-attestd: cannot create %s\n", p);
            return -1;
        }
        return 0;
    }
    size_t n = 0;
    char *t = cl_read_file(p, &n);
    if (t == NULL || n != 32) {
        fprintf(stderr, "cledger-attestd: %s is missing or not 32 bytes\n", p);
        free(t);
        return -1;
    }
    memcpy(key, t, 32);
    cl_wipe(t, n);
    free(t);
    return 0;
}

/* ---- administrators ------------------------------------------------------------------------ */

static size_t curl_sink(char *p, size_t sz, size_t n, void *arg)
{
    cl_buf *b = arg;
    if (b->len + sz * n > (1u << 20) || cl_buf_append(b, p, sz * n) < 0)
        return 0;
    return sz * n;
}

static int load_jwks(daemon_t *d)
{
    const char *src = d->s.admin_jwks;
    if (src == NULL)
        return 0;
    if (d->s.admin_issuer == NULL || d->s.admin_audience == NULL) {
        fprintf(stderr, "cledger-attestd: --admin-jwks needs --admin-issuer and "
                        "--admin-audience\n");
        return -1;
    }
    char *text = NULL;
    size_t len = 0;
    cl_buf b;
    cl_buf_init(&b);
    /* Keys that decide who administers the instance come over TLS; plain http only from this
     * machine (a local identity provider or a test). */
    if (strncmp(src, "http://", 7) == 0 && strncmp(src + 7, "127.0.0.1", 9) != 0 &&
        strncmp(src + 7, "localhost", 9) != 0 && strncmp(src + 7, "[::1]", 5) != 0) {
        fprintf(stderr,
                "cledger-attestd: --admin-jwks %s: use https (plain http only for "
                "127.0.0.1, localhost or [::1])\n",
                src);
        return -1;
    }
    if (strncmp(src, "https://", 8) == 0 || strncmp(src, "http://", 7) == 0) {
        CURL *c = curl_easy_init();
        CURLcode cc = CURLE_FAILED_INIT;
        long code = 0;
        if (c != NULL) {
            curl_easy_setopt(c, CURLOPT_URL, src);
            curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_sink);
            curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
            curl_easy_setopt(c, CURLOPT_TIMEOUT, 15L);
            curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
            cc = curl_easy_perform(c);
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
            curl_easy_cleanup(c);
        }
        if (cc != CURLE_OK || code != 200) {
            fprintf(stderr, "cledger-attestd: cannot fetch the JWKS %s: %s (HTTP %ld)\n", src,
                    curl_easy_strerror(cc), code);
            cl_buf_free(&b);
            return -1;
        }
    } else {
        text = cl_read_file(src, &len);
        if (text == NULL) {
            fprintf(stderr, "cledger-attestd: cannot read the JWKS %s: %s\n", src, strerror(errno));
            return -1;
        }
    }
    char err[256];
    int rc = cl_jwks_parse(text ? text : (const char *)b.data, text ? len : b.len, &d->jwks, err,
                           sizeof err);
    free(text);
    cl_buf_free(&b);
    if (rc < 0) {
        fprintf(stderr, "cledger-attestd: JWKS %s: %s\n", src, err);
        return -1;
    }
    return 0;
}

static int load_admin_cert(daemon_t *d)
{
    if (d->s.admin_cert == NULL)
        return 0;
    cl_cert *c = NULL;
    cl_buf der;
    cl_buf_init(&der);
    int rc = cl_cert_load_pem_file(d->s.admin_cert, &c);
    if (rc == CL_OK)
        rc = cl_cert_to_der(c, &der);
    if (rc == CL_OK)
        cl_tls_fingerprint(der.data, der.len, d->admin_fp);
    cl_cert_free(c);
    cl_buf_free(&der);
    if (rc < 0) {
        fprintf(stderr, "cledger-attestd: --admin-cert %s: %s\n", d->s.admin_cert, cl_strerror(rc));
        return -1;
    }
    return 0;
}

/* DER of the first certificate of a PEM file. */
static int pem_file_der(const char *path, uint8_t **der, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return CL_EIO;
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (x == NULL)
        return CL_EPEM;
    unsigned char *p = NULL;
    int n = i2d_X509(x, &p);
    X509_free(x);
    if (n <= 0)
        return CL_EPEM;
    *der = cl_malloc((size_t)n);
    if (*der != NULL)
        memcpy(*der, p, (size_t)n);
    OPENSSL_free(p);
    *len = (size_t)n;
    return *der ? CL_OK : CL_ENOMEM;
}

/* ---- Intel collateral ---------------------------------------------------------------------- */

static int load_collateral(daemon_t *d)
{
    if (d->s.collateral_dir == NULL)
        return 0;
    DIR *dir = opendir(d->s.collateral_dir);
    if (dir == NULL) {
        fprintf(stderr, "cledger-attestd: --collateral-dir %s: %s\n", d->s.collateral_dir,
                strerror(errno));
        return -1;
    }
    struct dirent *e;
    int bad = 0;
    while ((e = readdir(dir)) != NULL && !bad) {
        size_t nl = strlen(e->d_name);
        if (nl < 6 || strcmp(e->d_name + nl - 5, ".json") != 0)
            continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", d->s.collateral_dir, e->d_name);
        size_t len;
        char *text = cl_read_file(path, &len);
        json_t *j = NULL;
        char err[300];
        cl_intel_collateral *c = NULL;
        const char *fmspc = NULL;
        /* The FMSPC the collateral is for: tcb_info's tcbInfo.fmspc. */
        json_t *ti = NULL;
        if (text != NULL && cl_json_parse(text, len, 4u << 20, &j, err, sizeof err) == CL_OK &&
            json_is_string(json_object_get(j, "tcb_info")) &&
            cl_json_parse(json_string_value(json_object_get(j, "tcb_info")),
                          json_string_length(json_object_get(j, "tcb_info")), 4u << 20, &ti, err,
                          sizeof err) == CL_OK) {
            /* the signed TCB-info body itself, or (PCS API form) wrapped in "tcbInfo" */
            const json_t *body =
                json_object_get(ti, "tcbInfo") ? json_object_get(ti, "tcbInfo") : ti;
            fmspc = json_string_value(json_object_get(body, "fmspc"));
        }
        if (text == NULL || fmspc == NULL ||
            cl_intel_collateral_parse(text, len, &c, err, sizeof err) < 0) {
            fprintf(stderr, "cledger-attestd: collateral %s is not usable%s%s\n", path,
                    fmspc == NULL ? " (no fmspc in tcb_info)" : ": ", fmspc == NULL ? "" : err);
            bad = 1;
        } else {
            cl_intel_collateral **nc = realloc(d->coll, (d->ncoll + 1) * sizeof *nc);
            char **nf = realloc(d->coll_fmspc, (d->ncoll + 1) * sizeof *nf);
            if (nc != NULL)
                d->coll = nc;
            if (nf != NULL)
                d->coll_fmspc = nf;
            if (nc == NULL || nf == NULL) {
                bad = 1;
                cl_intel_collateral_free(c);
            } else {
                d->coll[d->ncoll] = c;
                d->coll_fmspc[d->ncoll] = strdup(fmspc);
                d->ncoll++;
                cl_logf(CL_LOG_INFO, "attestd: Intel collateral for FMSPC %s from %s", fmspc, path);
            }
        }
        json_decref(ti);
        json_decref(j);
        free(text);
    }
    closedir(dir);
    return bad ? -1 : 0;
}

/* ---- instance ------------------------------------------------------------------------------ */

/* instance.json: {"mode": "aad"|"isolated"}; fixed at creation. Returns isolated (0/1) or -1. */
static int instance_mode(daemon_t *d, int fresh)
{
    char p[1100];
    if (path_in(d, "instance.json", p, sizeof p) < 0)
        return -1;
    const char *want = d->s.mode;
    if (want != NULL && strcmp(want, "aad") != 0 && strcmp(want, "isolated") != 0) {
        fprintf(stderr, "cledger-attestd: --mode must be aad or isolated (got '%s')\n", want);
        return -1;
    }
    if (fresh) {
        const char *m = want ? want : "aad";
        char doc[128];
        int n = snprintf(doc, sizeof doc, "{\"format\":1,\"mode\":\"%s\",\"created\":%lld}\n", m,
                         (long long)time(NULL));
        if (cl_write_file_atomic(p, doc, (size_t)n, 0644) < 0) {
            fprintf(stderr, "cledger-attestd: cannot write %s\n", p);
            return -1;
        }
        return strcmp(m, "isolated") == 0;
    }
    size_t len;
    char *t = cl_read_file(p, &len);
    json_t *j = NULL;
    char err[160];
    const char *m = NULL;
    if (t != NULL && cl_json_parse(t, len, 4096, &j, err, sizeof err) == CL_OK)
        m = json_string_value(json_object_get(j, "mode"));
    free(t);
    int iso = m ? strcmp(m, "isolated") == 0 : -1;
    if (m == NULL || (strcmp(m, "aad") != 0 && strcmp(m, "isolated") != 0)) {
        fprintf(stderr, "cledger-attestd: %s is missing or damaged\n", p);
        iso = -1;
    } else if (want != NULL && strcmp(want, m) != 0) {
        fprintf(stderr,
                "cledger-attestd: %s is a%s %s instance; the mode is fixed at creation and "
                "cannot become %s\n",
                d->s.data_dir, iso ? "n" : "n", m, want);
        iso = -1;
    }
    json_decref(j);
    return iso;
}

/* ---- shutdown ------------------------------------------------------------------------------ */

static void on_drain(uv_timer_t *t)
{
    daemon_t *d = t->data;
    if (cl_attestd_pending(d->svc) > 0)
        return;
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, NULL);
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    uv_close((uv_handle_t *)&d->sigint, NULL);
}

static void http_stopped(void *arg)
{
    daemon_t *d = arg;
    d->http = NULL;
    uv_timer_init(d->loop, &d->drain);
    d->drain.data = d;
    uv_timer_start(&d->drain, on_drain, 0, 20);
}

static void on_signal(uv_signal_t *h, int signum)
{
    daemon_t *d = h->data;
    if (d->stopping)
        return;
    d->stopping = 1;
    cl_logf(CL_LOG_INFO, "signal %d: stopping (finishing in-flight requests)", signum);
    cl_attestd_quiesce(d->svc);
    cl_http_server_stop(d->http, http_stopped, d);
}

/* ---- backup / restore ---------------------------------------------------------------------- */

static int cmd_export_import(int argc, char **argv)
{
    int is_import = strcmp(argv[1], "import") == 0;
    const char *dir = NULL, *out = NULL, *in = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--data-dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (!is_import && strcmp(argv[i], "--out") == 0 && i + 1 < argc)
            out = argv[++i];
        else if (is_import && in == NULL && argv[i][0] != '-')
            in = argv[i];
        else {
            usage(stderr);
            return 2;
        }
    }
    if (dir == NULL || (is_import && in == NULL)) {
        usage(stderr);
        return 2;
    }
    char probe[1100];
    struct stat st;
    snprintf(probe, sizeof probe, "%s/instance.json", dir);
    if (stat(probe, &st) != 0) {
        fprintf(stderr, "cledger-attestd: %s is not an attestation instance (no instance.json)\n",
                dir);
        return 1;
    }
    cl_astore *s = NULL;
    char err[300] = "";
    if (cl_astore_open(dir, &s, err, sizeof err) < 0) {
        fprintf(stderr, "cledger-attestd: cannot open the store in %s: %s\n", dir, err);
        return 1;
    }
    int code = 0;
    if (!is_import) {
        json_t *doc = NULL;
        char *text = NULL;
        if (cl_astore_export(s, &doc) < 0 ||
            (text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS)) == NULL) {
            fprintf(stderr, "cledger-attestd: export failed\n");
            code = 1;
        } else if (out != NULL) {
            if (cl_write_file_atomic(out, text, strlen(text), 0600) < 0) {
                fprintf(stderr, "cledger-attestd: cannot write %s\n", out);
                code = 1;
            }
        } else {
            fputs(text, stdout);
            fputc('\n', stdout);
        }
        cl_free(text);
        json_decref(doc);
    } else {
        size_t len;
        char *text = cl_read_file(in, &len);
        json_t *doc = NULL;
        if (text == NULL) {
            fprintf(stderr, "cledger-attestd: cannot read %s: %s\n", in, strerror(errno));
            code = 1;
        } else if (cl_json_parse(text, len, 64u << 20, &doc, err, sizeof err) < 0) {
            fprintf(stderr, "cledger-attestd: %s: %s\n", in, err);
            code = 1;
        } else if (cl_astore_import(s, doc, "import", err, sizeof err) < 0) {
            fprintf(stderr, "cledger-attestd: %s cannot be imported: %s\n", in, err);
            code = 1;
        } else {
            printf("imported %s into %s\n", in, dir);
        }
        json_decref(doc);
        free(text);
    }
    cl_astore_close(s);
    return code;
}

/* ---- main ---------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "export") == 0 || strcmp(argv[1], "import") == 0)) {
        cl_json_init();
        return cmd_export_import(argc, argv);
    }
    /* Every token is an RS256 signature, which bounds attestations/s: on AMD CPUs, re-exec with
     * libcrypto's faster RSA code path for them (crypto/cpu.h; OPENSSL_ia32cap set = no change). */
    cl_cpu_tune_rsa(argv);
    /* static: what a start-up failure returns without freeing (the store, keys, the TLS context)
     * stays reachable until exit instead of being reported as leaked by the ASan/LSan build */
    static daemon_t d;
    memset(&d, 0, sizeof d);
    d.s.tpm_requires_bearer = -1;
    d.s.http_threads = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = NULL;
        if (strcmp(a, "--data-dir") == 0)
            slot = &d.s.data_dir;
        else if (strcmp(a, "--listen") == 0)
            slot = &d.s.listen;
        else if (strcmp(a, "--mode") == 0)
            slot = &d.s.mode;
        else if (strcmp(a, "--admin-jwks") == 0)
            slot = &d.s.admin_jwks;
        else if (strcmp(a, "--admin-issuer") == 0)
            slot = &d.s.admin_issuer;
        else if (strcmp(a, "--admin-audience") == 0)
            slot = &d.s.admin_audience;
        else if (strcmp(a, "--admin-cert") == 0)
            slot = &d.s.admin_cert;
        else if (strcmp(a, "--config") == 0)
            slot = &d.s.config;
        else if (strcmp(a, "--log-level") == 0)
            slot = &d.s.log_level;
        else if (strcmp(a, "--collateral-dir") == 0)
            slot = &d.s.collateral_dir;
        else if (strcmp(a, "--collateral") == 0)
            slot = &d.s.collateral;
        else if (strcmp(a, "--tpm-roots") == 0)
            slot = &d.s.tpm_roots;
        else if (strcmp(a, "--base-url") == 0)
            slot = &d.s.base_url;
        else if (strcmp(a, "--policy-signer-cert") == 0 && i + 1 < argc &&
                 d.s.nsigners < MAX_SIGNERS) {
            d.s.signers[d.s.nsigners++] = argv[++i];
            continue;
        } else if (strcmp(a, "--verification-time") == 0 && i + 1 < argc) {
            char *end;
            long long t = strtoll(argv[++i], &end, 10);
            if (*end != '\0' || t <= 0) {
                fprintf(stderr, "cledger-attestd: --verification-time takes unix seconds\n");
                return 2;
            }
            d.s.verification_time = t;
            continue;
        } else if (strcmp(a, "--version") == 0) {
            printf("cledger-attestd %s\n", CLEDGER_VERSION);
            return 0;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "cledger-attestd: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "cledger-attestd: %s needs a value\n", a);
            return 2;
        }
        *slot = argv[++i];
    }
    cl_json_init();
    if (d.s.config != NULL && load_config(&d.s) < 0)
        return 2;
    if (d.s.data_dir == NULL || d.s.listen == NULL) {
        usage(stderr);
        return 2;
    }
    if (d.s.log_level != NULL) {
        int lvl = cl_log_level_parse(d.s.log_level);
        if (lvl < 0) {
            fprintf(stderr, "cledger-attestd: unknown log level '%s'\n", d.s.log_level);
            return 2;
        }
        cl_log_set_level((cl_log_level)lvl);
    }
    if (cl_parse_hostport(d.s.listen, d.host, sizeof d.host, &d.port) < 0) {
        fprintf(stderr, "cledger-attestd: --listen must be HOST:PORT (got '%s')\n", d.s.listen);
        return 2;
    }
    if (strcmp(d.host, "localhost") == 0)
        snprintf(d.host, sizeof d.host, "127.0.0.1");
    char why[256];
    int lc = cl_http_listen_check(d.host, d.port, why, sizeof why);
    if (lc == CL_EINVAL) {
        fprintf(stderr,
                "cledger-attestd: --listen: %s (HOST is an IPv4 or IPv6 address, or localhost)\n",
                why);
        return 2;
    }
    if (lc < 0) {
        fprintf(stderr, "cledger-attestd: cannot listen on %s: %s\n", d.s.listen, why);
        return 1;
    }
    if (d.s.collateral != NULL && strcmp(d.s.collateral, "required") != 0 &&
        strcmp(d.s.collateral, "if-available") != 0) {
        fprintf(stderr, "cledger-attestd: --collateral must be required or if-available\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    if (mkdir(d.s.data_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "cledger-attestd: cannot create %s: %s\n", d.s.data_dir, strerror(errno));
        return 1;
    }
    /* One instance per data directory (as cledgerd): the lock goes with the process. */
    int dir_lock = -1;
    int lrc = cl_dir_lock(d.s.data_dir, &dir_lock);
    if (lrc < 0) {
        fprintf(stderr, "cledger-attestd: %s%s\n", d.s.data_dir,
                lrc == CL_ELOCKED ? " is in use by another cledger-attestd process; stop it first"
                                  : ": cannot open the data directory");
        return 1;
    }
    char probe[1100];
    struct stat st;
    path_in(&d, "instance.json", probe, sizeof probe);
    int fresh = stat(probe, &st) != 0;
    int want_isolated = d.s.mode != NULL && strcmp(d.s.mode, "isolated") == 0;
    if (fresh && want_isolated && d.s.nsigners == 0) {
        fprintf(stderr, "cledger-attestd: an Isolated instance needs at least one "
                        "--policy-signer-cert at creation\n");
        return 2;
    }
    /* An AAD instance has no management certificates (spec §7.1: GET /certificates lists none);
     * storing them would list keys that authorise nothing. */
    if (fresh && !want_isolated && d.s.nsigners > 0) {
        fprintf(stderr, "cledger-attestd: --policy-signer-cert is for Isolated instances "
                        "(--mode isolated); an AAD instance has no policy management "
                        "certificates\n");
        return 2;
    }
    /* Keys first, instance.json last: an interrupted creation is redone from scratch. */
    uint8_t ctx_key[32];
    if (load_signing_key(&d, fresh) < 0 || load_context_key(&d, fresh, ctx_key) < 0)
        return 1;
    char err[300] = "";
    if (cl_astore_open(d.s.data_dir, &d.store, err, sizeof err) < 0) {
        fprintf(stderr, "cledger-attestd: cannot open the store: %s\n", err);
        return 1;
    }
    if (fresh) {
        for (size_t k = 0; k < d.s.nsigners; k++) {
            uint8_t *der = NULL;
            size_t len = 0;
            int added, rc = pem_file_der(d.s.signers[k], &der, &len);
            if (rc == CL_OK)
                rc = cl_astore_cert_add(d.store, der, len, "creation", &added);
            cl_free(der);
            if (rc < 0) {
                fprintf(stderr, "cledger-attestd: --policy-signer-cert %s: %s\n", d.s.signers[k],
                        cl_strerror(rc));
                return 1;
            }
        }
    } else if (d.s.nsigners > 0) {
        cl_logf(CL_LOG_WARN, "attestd: --policy-signer-cert is only used when an instance is "
                             "created; use POST /certificates:add to change the set");
    }
    int isolated = instance_mode(&d, fresh);
    if (isolated < 0)
        return 2;
    if (make_tls(&d, fresh) < 0 || load_jwks(&d) < 0 || load_admin_cert(&d) < 0 ||
        load_collateral(&d) < 0)
        return 1;
    if (d.s.tpm_roots != NULL) {
        d.tpm_roots = cl_read_file(d.s.tpm_roots, &d.tpm_roots_len);
        if (d.tpm_roots == NULL) {
            fprintf(stderr, "cledger-attestd: cannot read --tpm-roots %s\n", d.s.tpm_roots);
            return 1;
        }
    }
    if (d.jwks == NULL && d.admin_fp[0] == '\0')
        cl_logf(CL_LOG_WARN, "attestd: no administrator is configured (--admin-jwks or "
                             "--admin-cert): policy and certificate changes are refused");

    /* libuv's thread pool (SevSnpVm attestations, see cl_attestd_handle_local) gets one thread
     * per CPU instead of libuv's default 4: the work is pure CPU, and with more threads than cores
     * every attestation is time-sliced with the others, which raised the SNP p99 by 3-4 ms (A/B
     * on two cores: 21.4/21.5/20.0 ms with 4 threads, 18.0/17.0/16.8 ms with 2). An explicit
     * UV_THREADPOOL_SIZE in the environment wins. Set before the pool's first use. */
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned cpus = ncpu < 1 ? 1 : ncpu > 64 ? 64 : (unsigned)ncpu;
    if (getenv("UV_THREADPOOL_SIZE") == NULL) {
        char nb[16];
        snprintf(nb, sizeof nb, "%u", cpus);
        setenv("UV_THREADPOOL_SIZE", nb, 0);
    }
    d.loop = uv_default_loop();
    cl_http_server_opts ho = {0};
    ho.host = d.host;
    ho.port = d.port;
    ho.tls = d.tls;
    ho.handler = cl_attestd_handle;
    ho.local_handler = cl_attestd_handle_local; /* attestations on the HTTPS workers */
    ho.max_body_bytes = 1u << 20;
    ho.access_log = 1;
    /* The HTTP layer's own refusals (malformed requests, size limits) look like the service's
     * other errors (spec §1.7, §10). */
    static const cl_http_error_style maa_errors = {"InvalidParameter",
                                                   1,
                                                   1,
                                                   "application/json; charset=utf-8",
                                                   "x-ms-maa-service-version",
                                                   "cledger-attestd " CLEDGER_VERSION};
    ho.error_style = &maa_errors;
    if (d.s.http_threads >= 0) {
        ho.worker_threads = (unsigned)d.s.http_threads;
    } else {
        ho.worker_threads = cpus;
    }
    /* The service needs the base URL before the server starts; with port 0 the real port is
     * only known afterwards, so the handler argument is set once both exist. */
    int rc = cl_http_server_start(d.loop, &ho, &d.http);
    if (rc < 0) {
        fprintf(stderr, "cledger-attestd: cannot listen on %s: %s\n", d.s.listen, cl_strerror(rc));
        return 1;
    }
    if (d.s.base_url != NULL)
        snprintf(d.base_url, sizeof d.base_url, "%s", d.s.base_url);
    else if (strchr(d.host, ':') != NULL)
        snprintf(d.base_url, sizeof d.base_url, "https://[%s]:%d", d.host,
                 cl_http_server_port(d.http));
    else
        snprintf(d.base_url, sizeof d.base_url, "https://%s:%d", d.host,
                 cl_http_server_port(d.http));
    cl_attestd_opts ao = {0};
    ao.loop = d.loop;
    ao.store = d.store;
    ao.base_url = d.base_url;
    ao.isolated = isolated;
    ao.admin_jwks = d.jwks;
    ao.admin_issuer = d.s.admin_issuer;
    ao.admin_audience = d.s.admin_audience;
    ao.admin_cert_fp = d.admin_fp;
    ao.tpm_requires_bearer = d.s.tpm_requires_bearer != 0;
    ao.sign_key = d.sign_key;
    ao.sign_cert = d.sign_cert;
    ao.collateral = d.coll;
    ao.collateral_fmspc = (const char *const *)d.coll_fmspc;
    ao.ncollateral = d.ncoll;
    ao.collateral_required = d.s.collateral != NULL && strcmp(d.s.collateral, "required") == 0;
    ao.tpm_roots_pem = d.tpm_roots;
    ao.tpm_roots_len = d.tpm_roots_len;
    ao.fixed_time = d.s.verification_time;
    ao.nbf_backdate = d.s.nbf_backdate;
    memcpy(ao.context_key, ctx_key, sizeof ctx_key);
    cl_wipe(ctx_key, sizeof ctx_key);
    ao.version = "cledger-attestd " CLEDGER_VERSION;
    rc = cl_attestd_new(&ao, &d.svc);
    cl_wipe(ao.context_key, sizeof ao.context_key);
    if (rc < 0) {
        fprintf(stderr, "cledger-attestd: start-up failed: %s\n", cl_strerror(rc));
        return 1;
    }
    cl_http_server_set_handler_arg(d.http, d.svc);
    uv_signal_init(d.loop, &d.sigterm);
    uv_signal_init(d.loop, &d.sigint);
    d.sigterm.data = d.sigint.data = &d;
    uv_signal_start(&d.sigterm, on_signal, SIGTERM);
    uv_signal_start(&d.sigint, on_signal, SIGINT);
    char tls_path[1100];
    path_in(&d, "tls_cert.pem", tls_path, sizeof tls_path);
    json_t *f =
        json_pack("{s:s,s:i,s:s,s:s,s:s,s:s,s:b,s:i}", "host", d.host, "port",
                  cl_http_server_port(d.http), "baseUrl", d.base_url, "dataDir", d.s.data_dir,
                  "mode", isolated ? "isolated" : "aad", "tlsCert", tls_path, "adminConfigured",
                  d.jwks != NULL || d.admin_fp[0] != '\0', "collateralPlatforms", (int)d.ncoll);
    cl_log(CL_LOG_INFO, "cledger-attestd listening", f);
    json_decref(f);
    uv_run(d.loop, UV_RUN_DEFAULT);
    cl_attestd_free(d.svc);
    cl_astore_close(d.store);
    cl_tls_ctx_free(d.tls);
    cl_jwks_free(d.jwks);
    for (size_t k = 0; k < d.ncoll; k++) {
        cl_intel_collateral_free(d.coll[k]);
        free(d.coll_fmspc[k]);
    }
    free(d.coll);
    free(d.coll_fmspc);
    free(d.tpm_roots);
    EVP_PKEY_free(d.sign_key);
    X509_free(d.sign_cert);
    uv_loop_close(d.loop);
    curl_global_cleanup();
    cl_logf(CL_LOG_INFO, "cledger-attestd stopped");
    return d.exit_code;
}
