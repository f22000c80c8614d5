/*
 * service.c — MAA-compatible attestation service (see service.h; spec/attestation-api.md).
 *
 * A request passes through one admission function (route lookup, method, identity and right)
 * before any handler runs. Attestations are decoded on the main loop, then verified, evaluated
 * and signed on the thread pool; their inputs are owned by the job and the policy they use is a
 * reference-counted snapshot, so a policy change during an attestation cannot affect it.
 */
#include "attest/service.h"

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "attest/claimset.h"
#include "attest/jws.h"
#include "attest/policy.h"
#include "attest/sgx.h"
#include "attest/snp.h"
#include "attest/tpm.h"
#include "attest/vcache.h"
#include "base/alloc.h"
#include "base/codec.h"
#include "base/json.h"
#include "base/log.h"
#include "crypto/hash.h"

#define MAX_BODY (1u << 20)
#define TOKEN_LIFETIME 28800
#define ADMIN_TOKEN_LIFETIME 3600
#define MAX_VALIDITY_MIN 525600

enum { T_SGX = 0, T_OE, T_SNP, T_TDX, T_TPM, T_VIRTUAL };

static const char SGX_DEFAULT[] =
    "version= 1.0;authorizationrules{c:[type==\"$is-debuggable\"] => "
    "permit();};issuancerules{c:[type==\"$is-debuggable\"] => issue(type=\"is-debuggable\", "
    "value=c.value);c:[type==\"$sgx-mrsigner\"] => issue(type=\"sgx-mrsigner\", "
    "value=c.value);c:[type==\"$sgx-mrenclave\"] => issue(type=\"sgx-mrenclave\", "
    "value=c.value);c:[type==\"$product-id\"] => issue(type=\"product-id\", "
    "value=c.value);c:[type==\"$svn\"] => issue(type=\"svn\", value=c.value);c:[type==\"$tee\"] "
    "=> issue(type=\"tee\", value=c.value);};";
static const char PERMIT_ALL[] = "version=1.0; authorizationrules{=> permit();}; issuancerules{};";

const char *cl_attestd_default_policy(int type)
{
    switch (type) {
    case T_SGX:
    case T_OE:
        return SGX_DEFAULT;
    case T_SNP:
    case T_TDX:
    case T_VIRTUAL:
        return PERMIT_ALL;
    default:
        return NULL;
    }
}

void cl_attestd_policy_hash(const char *text, size_t len, char out[44])
{
    char *b = cl_b64url_encode_alloc((const uint8_t *)text, len);
    uint8_t d[32];
    if (b == NULL) {
        out[0] = '\0';
        return;
    }
    cl_sha256(b, strlen(b), d);
    cl_free(b);
    cl_b64_encode(d, sizeof d, out, CL_B64_URL);
}

/* ---- policy snapshots ---------------------------------------------------------------------- */

typedef struct pol {
    int refs; /* atomic: jobs on HTTPS workers and the thread pool release theirs */
    char *text;
    size_t len;
    cl_policy *parsed;
    char *signer; /* x-ms-policy-signer JSON text, or NULL */
    char hash[44];
} pol;

static void pol_release(pol *p)
{
    if (p == NULL || __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    cl_policy_free(p->parsed);
    cl_free(p->text);
    cl_free(p->signer);
    cl_free(p);
}

static pol *pol_new(const char *text, size_t len, const char *signer, char *err, size_t errlen)
{
    pol *p = cl_calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->refs = 1;
    p->text = cl_strndup(text, len);
    p->len = len;
    p->signer = signer ? cl_strdup(signer) : NULL;
    if (p->text == NULL || (signer != NULL && p->signer == NULL) ||
        cl_policy_parse(text, len, &p->parsed, err, errlen) < 0) {
        p->refs = 1;
        pol_release(p);
        return NULL;
    }
    cl_attestd_policy_hash(text, len, p->hash);
    return p;
}

/* ---- the service --------------------------------------------------------------------------- */

struct cl_attestd {
    cl_attestd_opts o;
    char kid[64];
    char jku[512];
    pol *cache[CL_ATYPE_COUNT]; /* the policy in force per type (NULL: none, Tpm only) */
    uv_mutex_t cache_mu;        /* replacing an entry vs. taking a reference on a worker */
    size_t pending;
    int quiesced;  /* atomic */
    cl_vcache *vc; /* verified certificate chains (shared by the thread pool) */
};

typedef struct {
    int status;
    const char *code;
    char msg[512];
} failure;

static void failf(failure *f, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void failf(failure *f, int status, const char *code, const char *fmt, ...)
{
    f->status = status;
    f->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->msg, sizeof f->msg, fmt, ap);
    va_end(ap);
}

static int64_t now_of(const cl_attestd *a)
{
    return a->o.fixed_time ? a->o.fixed_time : (int64_t)time(NULL);
}

/* Sends `status` with the service's headers (request id, version), x-ms-error-code `err_code`
 * and `hname: hvalue` where they are not NULL, and `body` (NULL: none) as JSON. */
static void reply_send(cl_attestd *a, cl_http_exchange *x, int status, const char *body,
                       const char *err_code, const char *hname, const char *hvalue)
{
    const cl_http_request *r = cl_http_request_of(x);
    char reqid[40];
    uint64_t id = r->request_id;
    snprintf(reqid, sizeof reqid, "00000000-0000-4000-8000-%012llx",
             (unsigned long long)(id & 0xffffffffffffULL));
    const char *h[10];
    size_t n = 0;
    if (body != NULL) {
        h[n++] = "Content-Type";
        h[n++] = "application/json; charset=utf-8";
    }
    h[n++] = "x-ms-request-id";
    h[n++] = reqid;
    h[n++] = "x-ms-maa-service-version";
    h[n++] = a->o.version ? a->o.version : "cledger";
    if (err_code != NULL) {
        h[n++] = "x-ms-error-code";
        h[n++] = err_code;
    }
    if (hname != NULL) {
        h[n++] = hname;
        h[n++] = hvalue;
    }
    cl_http_reply(x, status, h, n / 2, body, body ? strlen(body) : 0);
}

/* Sends `text` (consumed; NULL with a 2xx or an error code: 500) as a JSON body, with
 * `hname: hvalue` unless hname is NULL. */
static void reply_text_hdr(cl_attestd *a, cl_http_exchange *x, int status, char *text,
                           const char *err_code, const char *hname, const char *hvalue)
{
    if (text == NULL && (status < 400 || err_code != NULL)) {
        /* the body could not be built: a fixed 500 (the request's own error is lost) */
        static const char oom[] =
            "{\"error\":{\"code\":\"InternalError\",\"message\":\"out of memory\"}}";
        reply_send(a, x, 500, oom, "InternalError", NULL, NULL);
        return;
    }
    reply_send(a, x, status, text, err_code, hname, hvalue);
    cl_free(text);
}

static void reply_text(cl_attestd *a, cl_http_exchange *x, int status, char *text,
                       const char *err_code)
{
    reply_text_hdr(a, x, status, text, err_code, NULL, NULL);
}

static void reply_json(cl_attestd *a, cl_http_exchange *x, int status, json_t *body,
                       const char *err_code)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(body);
    reply_text(a, x, status, text, err_code);
}

/* {"token":"<token>"}: tokens are base64url segments and dots, nothing to escape. */
static void reply_token_body(cl_attestd *a, cl_http_exchange *x, const char *token)
{
    size_t n = strlen(token);
    char *text = cl_malloc(n + 13);
    if (text != NULL) {
        memcpy(text, "{\"token\":\"", 10);
        memcpy(text + 10, token, n);
        memcpy(text + 10 + n, "\"}", 3);
    }
    reply_text(a, x, 200, text, NULL);
}

/* The error as {"error":{"code","message"}}, with `hname: hvalue` unless hname is NULL. */
static void reply_error_hdr(cl_attestd *a, cl_http_exchange *x, const failure *f, const char *hname,
                            const char *hvalue)
{
    json_t *b = json_pack("{s:{s:s,s:s}}", "error", "code", f->code, "message", f->msg);
    char *text = b ? json_dumps(b, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(b);
    reply_text_hdr(a, x, f->status, text, f->code, hname, hvalue);
}

static void reply_error(cl_attestd *a, cl_http_exchange *x, const failure *f)
{
    reply_error_hdr(a, x, f, NULL, NULL);
}

static void reply_err(cl_attestd *a, cl_http_exchange *x, int status, const char *code,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void reply_err(cl_attestd *a, cl_http_exchange *x, int status, const char *code,
                      const char *fmt, ...)
{
    failure f = {status, code, ""};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f.msg, sizeof f.msg, fmt, ap);
    va_end(ap);
    reply_error(a, x, &f);
}

/* Base claims of every token: iat, nbf, exp, jti, iss. */
static int time_claims(const cl_attestd *a, json_t *p, int64_t lifetime)
{
    int64_t now = (int64_t)time(NULL) - a->o.nbf_backdate;
    uint8_t r[32];
    char jti[65];
    CL_TRY(cl_random(r, sizeof r));
    cl_hex_encode(r, sizeof r, jti);
    int bad = json_object_set_new(p, "iat", json_integer(now)) |
              json_object_set_new(p, "nbf", json_integer(now)) |
              json_object_set_new(p, "exp", json_integer(now + a->o.nbf_backdate + lifetime)) |
              json_object_set_new(p, "jti", json_string(jti)) |
              json_object_set_new(p, "iss", json_string(a->o.base_url));
    return bad ? CL_ENOMEM : CL_OK;
}

static void reply_token(cl_attestd *a, cl_http_exchange *x, json_t *payload)
{
    char *tok = NULL;
    if (payload == NULL || time_claims(a, payload, ADMIN_TOKEN_LIFETIME) < 0 ||
        cl_jwt_sign(a->o.sign_key, a->kid, a->jku, payload, &tok) < 0) {
        json_decref(payload);
        reply_err(a, x, 500, "InternalError", "could not sign the result token");
        return;
    }
    json_decref(payload);
    reply_json(a, x, 200, json_pack("{s:s}", "token", tok), NULL);
    cl_free(tok);
}

/* ---- policy texts and JWS acceptance (spec §6.2) ------------------------------------------- */

/* The policy text carried by a policy JWS: base64url of the AttestationPolicy member, or the
 * member itself when it is not base64url (signed samples carry raw text). */
static int policy_text_of(const cl_jws *j, char **text, size_t *len, failure *f)
{
    json_t *pl = cl_jws_payload_json(j);
    const json_t *ap = pl ? json_object_get(pl, "AttestationPolicy") : NULL;
    if (!json_is_string(ap)) {
        failf(f, 400, "InvalidOperation",
              "the policy JWS payload has no \"AttestationPolicy\" string member");
        return CL_EFORMAT;
    }
    const char *s = json_string_value(ap);
    size_t sl = json_string_length(ap);
    uint8_t *dec = NULL;
    size_t dl = 0;
    if (sl > 0 && cl_b64_decode_lenient_alloc(s, sl, &dec, &dl) == CL_OK) {
        *text = (char *)dec;
        *len = dl;
        char *t = cl_realloc(dec, dl + 1);
        if (t == NULL) {
            cl_free(dec);
            failf(f, 500, "InternalError", "out of memory");
            return CL_ENOMEM;
        }
        t[dl] = '\0';
        *text = t;
    } else {
        *text = cl_strndup(s, sl);
        *len = sl;
        if (*text == NULL) {
            failf(f, 500, "InternalError", "out of memory");
            return CL_ENOMEM;
        }
    }
    if (memchr(*text, '\0', *len) != NULL) {
        cl_free(*text);
        *text = NULL;
        failf(f, 400, "PolicyParsingError", "the policy text contains a NUL character");
        return CL_EPOLICY;
    }
    return CL_OK;
}

/* Body of PUT/reset: trimmed text, JSON-decoded when it starts with a quote. */
static char *jws_text_of_body(const uint8_t *body, size_t n, failure *f)
{
    size_t b = 0, e = n;
    while (b < e && (body[b] == ' ' || body[b] == '\t' || body[b] == '\r' || body[b] == '\n'))
        b++;
    while (e > b && (body[e - 1] == ' ' || body[e - 1] == '\t' || body[e - 1] == '\r' ||
                     body[e - 1] == '\n'))
        e--;
    if (e > b && body[b] == '"') {
        json_error_t je;
        json_t *j = json_loadb((const char *)body + b, e - b, JSON_DECODE_ANY, &je);
        if (j == NULL || !json_is_string(j)) {
            json_decref(j);
            failf(f, 400, "InvalidOperation", "the body starts with '\"' but is not a JSON string");
            return NULL;
        }
        char *s = cl_strndup(json_string_value(j), json_string_length(j));
        json_decref(j);
        return s;
    }
    return cl_strndup((const char *)body + b, e - b);
}

static int looks_like_jws(const char *s)
{
    const char *d1 = strchr(s, '.');
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (d1 == NULL || d2 == NULL || strchr(d2 + 1, '.') != NULL || d1 == s)
        return 0;
    for (const char *p = s; *p; p++)
        if (!(*p == '.' || *p == '-' || *p == '_' || *p == '+' || *p == '/' || *p == '=' ||
              (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            return 0;
    return 1;
}

/* An unsigned policy JWS around `text` (spec §6.4). */
static char *unsigned_policy_jws(const char *text, size_t len)
{
    char *b = cl_b64url_encode_alloc((const uint8_t *)text, len);
    if (b == NULL)
        return NULL;
    json_t *pl = json_pack("{s:s}", "AttestationPolicy", b);
    cl_free(b);
    char *pls = pl ? json_dumps(pl, JSON_COMPACT) : NULL;
    json_decref(pl);
    if (pls == NULL)
        return NULL;
    char *seg = cl_b64url_encode_alloc((const uint8_t *)pls, strlen(pls));
    cl_free(pls);
    if (seg == NULL)
        return NULL;
    static const char hdr[] = "eyJhbGciOiJub25lIn0.";
    size_t n = sizeof hdr - 1 + strlen(seg) + 2;
    char *out = cl_malloc(n);
    if (out != NULL)
        snprintf(out, n, "%s%s.", hdr, seg);
    cl_free(seg);
    return out;
}

/* 1 when key equals the public key of a current management certificate. */
static int is_management_key(const cl_attestd *a, EVP_PKEY *key)
{
    if (key == NULL)
        return 0;
    for (size_t k = 0; k < cl_astore_cert_count(a->o.store); k++) {
        size_t len;
        const uint8_t *der = cl_astore_cert(a->o.store, k, &len);
        const unsigned char *p = der;
        X509 *c = d2i_X509(NULL, &p, (long)len);
        EVP_PKEY *pk = c ? X509_get0_pubkey(c) : NULL;
        int eq = pk != NULL && EVP_PKEY_eq(pk, key) == 1;
        X509_free(c);
        if (eq)
            return 1;
    }
    return 0;
}

/* Parses and verifies a JWS received on an administrative route; applies the mode rule. */
static cl_jws *accept_jws(cl_attestd *a, const char *text, int need_signed, failure *f)
{
    cl_jws *j = NULL;
    char err[256];
    if (cl_jws_parse(text, strlen(text), &j, err, sizeof err) < 0) {
        failf(f, 400, "InvalidOperation", "malformed JWS: %s", err);
        return NULL;
    }
    if (cl_jws_verify(j, err, sizeof err) < 0) {
        failf(f, 400, "InvalidOperation", "JWS rejected: %s", err);
        cl_jws_free(j);
        return NULL;
    }
    if ((need_signed || a->o.isolated) && !cl_jws_is_signed(j)) {
        failf(f, 400, "InvalidOperation",
              "this instance only accepts JWS signed by a policy management certificate");
        cl_jws_free(j);
        return NULL;
    }
    if ((need_signed || a->o.isolated) && !is_management_key(a, cl_jws_signer_key(j))) {
        failf(f, 400, "InvalidOperation",
              "the JWS signer is not a current policy management certificate");
        cl_jws_free(j);
        return NULL;
    }
    /* Signed by a management key but given as a bare jwk: the tokens of the policy could not
     * name their signer (x-ms-policy-signer requires x5c, spec §5.3) and would look like those
     * of an unsigned policy. Both SDKs send the certificate. */
    if ((need_signed || a->o.isolated) && cl_jws_signer_cert(j) == NULL) {
        failf(f, 400, "InvalidOperation",
              "the JWS must carry its signer's certificate (x5c in the header or in its jwk)");
        cl_jws_free(j);
        return NULL;
    }
    return j;
}

static json_t *signer_claim(const cl_jws *j)
{
    json_t *s = NULL;
    if (!cl_jws_is_signed(j) || cl_jws_signer_jwk(j, &s) < 0)
        return NULL;
    return s;
}

/* Builds the snapshot for a stored JWS (or the default when jws is NULL). */
static pol *pol_from_store(int type, const char *jws, char *err, size_t errlen)
{
    if (jws == NULL) {
        const char *d = cl_attestd_default_policy(type);
        return d ? pol_new(d, strlen(d), NULL, err, errlen) : NULL;
    }
    cl_jws *j = NULL;
    failure f = {0, NULL, ""};
    char *text = NULL, *signer = NULL;
    size_t len = 0;
    pol *p = NULL;
    if (cl_jws_parse(jws, strlen(jws), &j, err, errlen) < 0 || cl_jws_verify(j, err, errlen) < 0)
        goto out;
    if (policy_text_of(j, &text, &len, &f) < 0) {
        snprintf(err, errlen, "%s", f.msg);
        goto out;
    }
    json_t *s = signer_claim(j);
    signer = s ? json_dumps(s, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(s);
    p = pol_new(text, len, signer, err, errlen);
out:
    cl_free(signer);
    cl_free(text);
    cl_jws_free(j);
    return p;
}

static int refresh_policy(cl_attestd *a, int type, char *err, size_t errlen)
{
    const char *jws = cl_astore_policy(a->o.store, type);
    pol *p = pol_from_store(type, jws, err, errlen);
    if (p == NULL && (jws != NULL || cl_attestd_default_policy(type) != NULL))
        return CL_EPOLICY;
    uv_mutex_lock(&a->cache_mu);
    pol *old = a->cache[type];
    a->cache[type] = p;
    uv_mutex_unlock(&a->cache_mu);
    pol_release(old); /* freed when the last job that uses it is done */
    return CL_OK;
}

/* ---- admission ----------------------------------------------------------------------------- */

typedef enum { R_ANON, R_ADMIN_READ, R_ADMIN_WRITE, R_TPM } right_t;

typedef struct {
    int admin;      /* authenticated administrator */
    char who[128];  /* for the change log */
    int had_bearer; /* an Authorization: Bearer header was present */
    char why[256];  /* why a presented credential was refused */
} identity;

static void identify(const cl_attestd *a, const cl_http_request *r, identity *id)
{
    memset(id, 0, sizeof *id);
    if (a->o.admin_cert_fp != NULL && a->o.admin_cert_fp[0] != '\0' &&
        r->client_fingerprint[0] != '\0' &&
        cl_ct_equal(r->client_fingerprint, a->o.admin_cert_fp, 95)) {
        if (cl_http_client_cert_current(r, (int64_t)time(NULL))) {
            id->admin = 1;
            snprintf(id->who, sizeof id->who, "cert:%.64s", r->client_fingerprint);
            return;
        }
        /* a bearer token, if any, may still identify an administrator */
        snprintf(id->why, sizeof id->why, "%s",
                 cl_http_client_cert_unreadable(r)
                     ? "the administrator certificate's validity period is empty or cannot be read"
                     : "the administrator certificate is outside its validity period");
    }
    const char *auth = cl_http_header_get(r, "authorization");
    if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0)
        return;
    id->had_bearer = 1;
    const char *tok = auth + 7;
    while (*tok == ' ')
        tok++;
    if (a->o.admin_jwks == NULL) {
        snprintf(id->why, sizeof id->why, "no administrator JWKS is configured");
        return;
    }
    json_t *claims = NULL;
    if (cl_jwt_validate(tok, strlen(tok), a->o.admin_jwks, a->o.admin_issuer, a->o.admin_audience,
                        (int64_t)time(NULL), 60, &claims, id->why, sizeof id->why) < 0)
        return;
    const char *sub = NULL;
    static const char *const names[] = {"oid", "sub", "appid", "azp"};
    for (size_t k = 0; k < 4 && sub == NULL; k++)
        if (json_is_string(json_object_get(claims, names[k])))
            sub = json_string_value(json_object_get(claims, names[k]));
    snprintf(id->who, sizeof id->who, "jwt:%.100s", sub ? sub : "?");
    id->admin = 1;
    json_decref(claims);
}

/* ---- attestation jobs ---------------------------------------------------------------------- */

typedef struct {
    int present, is_json;
    uint8_t *data;
    size_t len;
    json_t *json; /* parsed object when is_json */
} tdata;

typedef struct job {
    uv_work_t work;
    cl_attestd *a;
    cl_http_exchange *x;
    int type;
    uint8_t *evidence;
    size_t evlen;
    tdata rt, it;
    char *nonce;
    int draft;           /* the request carries a draft policy: unsigned token */
    pol *policy;         /* the stored (or default) policy in force at admission, or NULL */
    pol *draft_policy;   /* parsed draftPolicyForAttestation (made on the thread pool) */
    const uint8_t *body; /* the request body: the exchange keeps it until the reply */
    size_t body_len;
    int64_t now;
    /* results */
    failure f;
    char *token;
} job;

static void tdata_free(tdata *t)
{
    cl_free(t->data);
    json_decref(t->json);
    memset(t, 0, sizeof *t);
}

static void job_free(job *j)
{
    if (j == NULL)
        return;
    cl_free(j->evidence);
    tdata_free(&j->rt);
    tdata_free(&j->it);
    cl_free(j->nonce);
    cl_free(j->token);
    pol_release(j->policy);
    pol_release(j->draft_policy);
    cl_free(j);
}

/* runtimeData / initTimeData member (spec §3.1). */
static int parse_tdata(const json_t *body, const char *name, tdata *t, failure *f)
{
    memset(t, 0, sizeof *t);
    const json_t *o = json_object_get(body, name);
    if (o == NULL || json_is_null(o))
        return CL_OK;
    if (!json_is_object(o)) {
        failf(f, 400, "InvalidParameter", "%s must be an object {data, dataType}", name);
        return CL_EJSON;
    }
    const json_t *d = json_object_get(o, "data");
    const json_t *ty = json_object_get(o, "dataType");
    if (ty != NULL && !json_is_string(ty)) {
        failf(f, 400, "InvalidParameter", "%s.dataType must be a string", name);
        return CL_EJSON;
    }
    int is_json = 0;
    if (ty != NULL) {
        if (strcasecmp(json_string_value(ty), "JSON") == 0)
            is_json = 1;
        else if (strcasecmp(json_string_value(ty), "Binary") != 0) {
            failf(f, 400, "InvalidParameter", "%s.dataType \"%.40s\" is neither Binary nor JSON",
                  name, json_string_value(ty));
            return CL_EJSON;
        }
    }
    if (d == NULL || json_is_null(d) || (json_is_string(d) && json_string_length(d) == 0))
        return CL_OK; /* absent (Python 1.0.1 sends dataType without data) */
    if (!json_is_string(d) ||
        cl_b64_decode_lenient_alloc(json_string_value(d), json_string_length(d), &t->data,
                                    &t->len) < 0) {
        failf(f, 400, "InvalidParameter", "%s.data is not base64url", name);
        return CL_EBASE64;
    }
    t->present = 1;
    t->is_json = is_json;
    if (is_json) {
        char jerr[160];
        if (cl_json_parse((const char *)t->data, t->len, MAX_BODY, &t->json, jerr, sizeof jerr) <
                0 ||
            !json_is_object(t->json)) {
            failf(f, 400, "InvalidParameter", "%s with dataType JSON must hold a JSON object",
                  name);
            return CL_EJSON;
        }
    }
    return CL_OK;
}

static int check_binding(const tdata *t, const char *what, const uint8_t *field, size_t flen,
                         failure *f)
{
    if (!t->present)
        return CL_OK;
    uint8_t d[32];
    cl_sha256(t->data, t->len, d);
    if (field == NULL || flen < 32 || !cl_ct_equal(d, field, 32)) {
        failf(f, 400, "InvalidParameter",
              "%s does not match the evidence: SHA-256 of the data differs from the bound field",
              what);
        return CL_EBINDING;
    }
    return CL_OK;
}

static const char *attestation_type_name(int type)
{
    switch (type) {
    case T_SGX:
    case T_OE:
        return "sgx";
    case T_SNP:
        return "sevsnpvm";
    case T_TDX:
        return "tdxvm";
    case T_VIRTUAL:
        return "virtual";
    default:
        return "tpm";
    }
}

static const cl_intel_collateral *collateral_for(const cl_attestd *a, const uint8_t fmspc[6])
{
    char hex[13];
    cl_hex_encode(fmspc, 6, hex);
    for (size_t k = 0; k < a->o.ncollateral; k++)
        if (strcasecmp(a->o.collateral_fmspc[k], hex) == 0)
            return a->o.collateral[k];
    return NULL;
}

/* SGX, OpenEnclave and TDX: verify and describe. */
static int do_intel(job *j, json_t *claims, json_t *legacy, failure *f)
{
    const uint8_t *q = j->evidence;
    size_t qn = j->evlen;
    char err[512];
    if (j->type == T_OE &&
        cl_oe_report_unwrap(j->evidence, j->evlen, &q, &qn, err, sizeof err) < 0) {
        failf(f, 400, "InvalidParameter", "Open Enclave report: %s", err);
        return CL_EFORMAT;
    }
    cl_sgx_quote quote;
    if (cl_sgx_quote_parse(q, qn, &quote, err, sizeof err) < 0) {
        failf(f, 400, "InvalidParameter", "quote: %s", err);
        return CL_EFORMAT;
    }
    int want_tdx = j->type == T_TDX;
    if ((quote.tee_type == CL_SGX_TEE_TDX) != want_tdx) {
        failf(f, 400, "InvalidParameter", "the quote is a%s quote; this endpoint takes %s quotes",
              quote.tee_type == CL_SGX_TEE_TDX ? " TDX" : "n SGX", want_tdx ? "TDX" : "SGX");
        return CL_EUNSUPPORTED;
    }
    cl_sgx_result res;
    memset(&res, 0, sizeof res);
    /* First pass without collateral learns the FMSPC from the PCK certificate; the collateral
     * for that platform (if configured) drives the full evaluation. */
    int rc = cl_sgx_quote_verify_cached(&quote, NULL, j->now, j->a->vc, &res, err, sizeof err);
    const cl_intel_collateral *coll = rc == CL_OK ? collateral_for(j->a, res.fmspc) : NULL;
    if (rc == CL_OK && coll != NULL) {
        cl_sgx_result_free(&res);
        memset(&res, 0, sizeof res);
        rc = cl_sgx_quote_verify_cached(&quote, coll, j->now, j->a->vc, &res, err, sizeof err);
    } else if (rc == CL_OK && j->a->o.collateral_required) {
        char hex[13];
        cl_hex_encode(res.fmspc, 6, hex);
        failf(f, 400, "InvalidParameter",
              "no Intel collateral is configured for FMSPC %s and this instance requires it", hex);
        cl_sgx_result_free(&res);
        return CL_ENOENT;
    }
    if (rc < 0) {
        failf(f, 400, "InvalidParameter", "evidence verification failed: %s", err);
        cl_sgx_result_free(&res);
        return rc;
    }
    uint8_t h[32];
    cl_sha256(j->evidence, j->evlen, h);
    rc = cl_sgx_claims(&quote, res.tcb_evaluated ? &res : NULL, h, claims);
    /* The token says whether Intel's TCB evaluation ran (no collateral for this platform: no). */
    if (rc == CL_OK && json_object_set_new(claims, "x-cledger-tcb-evaluated",
                                           json_boolean(res.tcb_evaluated)) != 0)
        rc = CL_ENOMEM;
    if (rc == CL_OK && !want_tdx)
        rc = cl_sgx_legacy_claims(&quote, legacy);
    cl_sgx_result_free(&res);
    if (rc < 0) {
        failf(f, 500, "InternalError", "could not build the claims");
        return rc;
    }
    if (want_tdx) {
        CL_TRY(check_binding(&j->rt, "runtimeData", quote.report_data, 64, f));
        CL_TRY(check_binding(&j->it, "initTimeData", quote.mr_config_id, 48, f));
    } else {
        CL_TRY(check_binding(&j->rt, "runtimeData", quote.report_data, 64, f));
        if (j->it.present && !quote.kss) {
            failf(f, 400, "InvalidParameter",
                  "initTimeData needs an enclave with KSS (attributes bit 7); this one has none");
            return CL_EBINDING;
        }
        CL_TRY(check_binding(&j->it, "initTimeData", quote.config_id, 64, f));
    }
    return CL_OK;
}

static int do_snp(job *j, json_t *claims, json_t *unverified, failure *f)
{
    cl_snp_evidence *e = NULL;
    char err[512];
    int rc = cl_snp_wrapper_parse(j->evidence, j->evlen, &e, err, sizeof err);
    if (rc < 0) {
        failf(f, 400, "InvalidParameter", "SEV-SNP report: %s", err);
        return rc;
    }
    rc = cl_snp_verify_cached(e, j->now, j->a->vc, err, sizeof err);
    if (rc < 0) {
        failf(f, 400, "InvalidParameter", "evidence verification failed: %s", err);
        goto out;
    }
    const cl_snp_report *r = cl_snp_evidence_report(e);
    rc = cl_snp_evidence_claims(e, claims, unverified);
    if (rc < 0) {
        failf(f, 500, "InternalError", "could not build the claims");
        goto out;
    }
    rc = check_binding(&j->rt, "runtimeData", r->report_data, 64, f);
    if (rc == CL_OK)
        rc = check_binding(&j->it, "initTimeData", r->host_data, 32, f);
out:
    cl_snp_evidence_free(e);
    return rc;
}

/* The virtual quote of development nodes (docs/api.md "Enclave quotes"): the compact JSON
 * {"measurement":"cledger virtual v1","report_data":"<64 hex>"}. It is not signed and proves
 * nothing about a platform; its claims say so. */
static int do_virtual(job *j, json_t *claims, failure *f)
{
    json_t *v = NULL;
    char jerr[160];
    uint8_t rd[32];
    int rc = cl_json_parse((const char *)j->evidence, j->evlen, 4096, &v, jerr, sizeof jerr);
    const json_t *m = rc == CL_OK ? json_object_get(v, "measurement") : NULL;
    const json_t *d = rc == CL_OK ? json_object_get(v, "report_data") : NULL;
    if (rc < 0 || !json_is_object(v) || json_object_size(v) != 2 || !json_is_string(m) ||
        strcmp(json_string_value(m), "cledger virtual v1") != 0 || !json_is_string(d) ||
        json_string_length(d) != 64 || cl_hex_decode(json_string_value(d), 64, rd, 32) < 0) {
        failf(f, 400, "InvalidParameter",
              "virtual quote: expected {\"measurement\":\"cledger virtual v1\","
              "\"report_data\":\"<64 hex digits>\"}");
        json_decref(v);
        return CL_EFORMAT;
    }
    uint8_t mh[32];
    char mhex[65], rdhex[65];
    cl_sha256("cledger virtual v1", strlen("cledger virtual v1"), mh);
    cl_hex_encode(mh, 32, mhex);
    cl_hex_encode(rd, 32, rdhex);
    json_decref(v);
    if (json_object_set_new(claims, "x-cledger-virtual-measurement", json_string(mhex)) != 0 ||
        json_object_set_new(claims, "x-cledger-virtual-report-data", json_string(rdhex)) != 0 ||
        json_object_set_new(claims, "x-cledger-virtual-hardware-backed", json_false()) != 0) {
        failf(f, 500, "InternalError", "out of memory");
        return CL_ENOMEM;
    }
    if (j->it.present) {
        failf(f, 400, "InvalidParameter", "virtual quotes have no init-time binding");
        return CL_EBINDING;
    }
    return check_binding(&j->rt, "runtimeData", rd, 32, f);
}

/* Built-in claim names that policies cannot overwrite at top level (spec policy §7). */
static int reserved(const char *name, const json_t *builtin)
{
    static const char *const fixed[] = {"iss",
                                        "iat",
                                        "nbf",
                                        "exp",
                                        "jti",
                                        "nonce",
                                        "cnf",
                                        "x-ms-ver",
                                        "x-ms-attestation-type",
                                        "x-ms-policy-hash",
                                        "x-ms-policy-signer",
                                        "x-ms-policy",
                                        "x-ms-runtime",
                                        "x-ms-inittime"};
    for (size_t k = 0; k < sizeof fixed / sizeof fixed[0]; k++)
        if (strcmp(name, fixed[k]) == 0)
            return 1;
    return json_object_get(builtin, name) != NULL;
}

/* Outgoing claims grouped by type: one -> scalar, several -> array, in issue order. Claim values
 * are scalars, so an array member is always a group. */
static json_t *group_claims(const cl_claimset *cs)
{
    json_t *o = json_object();
    for (size_t k = 0; o != NULL && k < cs->n; k++) {
        json_t *v = cl_claim_value_json(&cs->v[k]);
        json_t *cur = json_object_get(o, cs->v[k].type);
        int bad = v == NULL;
        if (!bad && cur == NULL) {
            bad = json_object_set_new(o, cs->v[k].type, v) != 0;
        } else if (!bad && json_is_array(cur)) {
            bad = json_array_append_new(cur, v) != 0;
        } else if (!bad) {
            json_t *arr = json_pack("[Oo]", cur, v);
            bad = arr == NULL || json_object_set_new(o, cs->v[k].type, arr) != 0;
        } else {
            json_decref(v);
        }
        if (bad) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

/* What an attestation hands to the policy and the token besides the evidence claims. */
typedef struct {
    const char *atype;           /* x-ms-attestation-type */
    const json_t *claims;        /* evidence claims (token top level and incoming) */
    const json_t *legacy;        /* incoming only, with a "$" prefix (SGX), or NULL */
    const json_t *unverified;    /* incoming only, as named (SNP Endorsements), or NULL */
    const json_t *runtime;       /* parsed JSON runtime data or NULL */
    const json_t *inittime;      /* parsed JSON init-time data or NULL */
    const cl_claimset *extra_in; /* more incoming claims (TPM custom claims) or NULL */
    const char *nonce;
    int draft;
    int (*settings_check)(void *arg, const cl_policy_settings *s, failure *f); /* or NULL */
    void *settings_arg;
} evaluation;

/* Incoming claims, policy evaluation, token payload and signature (spec §5, policy §6, §7). */
static int evaluate_and_sign(cl_attestd *a, const pol *policy, const evaluation *e, char **token,
                             failure *f)
{
    json_t *payload = NULL;
    cl_claimset in;
    cl_policy_result pr;
    cl_claimset_init(&in);
    memset(&pr, 0, sizeof pr);
    int rc = cl_claimset_add_string(&in, "x-ms-ver", "1.0", CL_CI_SERVICE, 0);
    if (rc == CL_OK)
        rc = cl_claimset_add_string(&in, "x-ms-attestation-type", e->atype, CL_CI_SERVICE, 0);
    if (rc == CL_OK)
        rc = cl_claimset_add_string(&in, "x-ms-policy-hash", policy->hash, CL_CI_SERVICE, 0);
    if (rc == CL_OK)
        rc = cl_claimset_add_json(&in, e->claims, NULL, CL_CI_SERVICE);
    if (rc == CL_OK && e->legacy != NULL)
        rc = cl_claimset_add_json(&in, e->legacy, "$", CL_CI_SERVICE);
    if (rc == CL_OK && e->unverified != NULL)
        rc = cl_claimset_add_json(&in, e->unverified, NULL, CL_CI_SERVICE);
    for (int k = 0; k < 2 && rc == CL_OK; k++) {
        const json_t *d = k == 0 ? e->runtime : e->inittime;
        if (d == NULL)
            continue;
        char *t = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
        rc = t ? cl_claimset_add_string(&in, k == 0 ? "x-ms-runtime" : "x-ms-inittime", t,
                                        CL_CI_SERVICE, 0)
               : CL_ENOMEM;
        cl_free(t);
    }
    for (size_t k = 0; e->extra_in != NULL && k < e->extra_in->n && rc == CL_OK; k++)
        rc = cl_claimset_add_copy(&in, &e->extra_in->v[k]);
    if (rc < 0) {
        failf(f, 500, "InternalError", "out of memory");
        goto out;
    }
    char perr[512];
    rc = cl_policy_evaluate(policy->parsed, &in, &pr, perr, sizeof perr);
    if (rc < 0) {
        failf(f, 400, "PolicyEvaluationError", "%s", perr);
        goto out;
    }
    cl_policy_settings set;
    cl_policy_settings_get(&pr, &set);
    if (e->settings_check != NULL && (rc = e->settings_check(e->settings_arg, &set, f)) < 0)
        goto out;
    int64_t minutes =
        set.report_validity_in_minutes > 0 && set.report_validity_in_minutes <= MAX_VALIDITY_MIN
            ? set.report_validity_in_minutes
            : TOKEN_LIFETIME / 60;
    payload = json_deep_copy(e->claims);
    rc = payload ? time_claims(a, payload, 60 * minutes) : CL_ENOMEM;
    if (rc == CL_OK &&
        (json_object_set_new(payload, "x-ms-ver", json_string("1.0")) != 0 ||
         json_object_set_new(payload, "x-ms-attestation-type", json_string(e->atype)) != 0 ||
         json_object_set_new(payload, "x-ms-policy-hash", json_string(policy->hash)) != 0))
        rc = CL_ENOMEM;
    if (rc == CL_OK && e->nonce != NULL &&
        json_object_set_new(payload, "nonce", json_string(e->nonce)) != 0)
        rc = CL_ENOMEM;
    if (rc == CL_OK && policy->signer != NULL && !e->draft) {
        json_t *sj = json_loads(policy->signer, 0, NULL);
        rc = sj && json_object_set_new(payload, "x-ms-policy-signer", sj) == 0 ? CL_OK : CL_ENOMEM;
    }
    if (rc == CL_OK && e->runtime != NULL &&
        json_object_set_new(payload, "x-ms-runtime", json_deep_copy(e->runtime)) != 0)
        rc = CL_ENOMEM;
    if (rc == CL_OK && e->inittime != NULL &&
        json_object_set_new(payload, "x-ms-inittime", json_deep_copy(e->inittime)) != 0)
        rc = CL_ENOMEM;
    if (rc == CL_OK && pr.outgoing.n > 0) {
        json_t *g = group_claims(&pr.outgoing);
        rc = g ? CL_OK : CL_ENOMEM;
        const char *k;
        json_t *v;
        if (rc == CL_OK)
            json_object_foreach(g, k, v)
            {
                if (!reserved(k, e->claims) && json_object_set(payload, k, v) != 0)
                    rc = CL_ENOMEM;
            }
        if (rc == CL_OK)
            rc = json_object_set_new(payload, "x-ms-policy", g) == 0 ? CL_OK : CL_ENOMEM;
        else
            json_decref(g);
    }
    if (rc < 0) {
        failf(f, 500, "InternalError", "out of memory");
        goto out;
    }
    rc = e->draft ? cl_jwt_unsigned(a->kid, a->jku, payload, token)
                  : cl_jwt_sign(a->o.sign_key, a->kid, a->jku, payload, token);
    if (rc < 0)
        failf(f, 500, "InternalError", "could not sign the token");
out:
    cl_policy_result_free(&pr);
    cl_claimset_free(&in);
    json_decref(payload);
    return rc;
}

/* The request body (spec §3.1-§3.5), on the thread pool. */
static int parse_request(job *j, failure *f)
{
    json_t *body = NULL;
    char jerr[160];
    int rc = CL_EJSON;
    if (cl_json_parse((const char *)j->body, j->body_len, MAX_BODY, &body, jerr, sizeof jerr) < 0 ||
        !json_is_object(body)) {
        failf(f, 400, "InvalidParameter", "the body must be a JSON object%s%s",
              jerr[0] && body == NULL ? ": " : "", body == NULL ? jerr : "");
        goto out;
    }
    const char *field = (j->type == T_OE || j->type == T_SNP) ? "report" : "quote";
    const json_t *ev = json_object_get(body, field);
    if (!json_is_string(ev) || json_string_length(ev) == 0) {
        failf(f, 400, "InvalidParameter", "\"%s\" (base64url evidence) is required", field);
        goto out;
    }
    if (cl_b64_decode_lenient_alloc(json_string_value(ev), json_string_length(ev), &j->evidence,
                                    &j->evlen) < 0) {
        failf(f, 400, "InvalidParameter", "\"%s\" is not base64url", field);
        goto out;
    }
    if (parse_tdata(body, "runtimeData", &j->rt, f) < 0 ||
        parse_tdata(body, "initTimeData", &j->it, f) < 0)
        goto out;
    const json_t *nonce = json_object_get(body, "nonce");
    if (json_is_string(nonce)) {
        j->nonce = cl_strndup(json_string_value(nonce), json_string_length(nonce));
    } else if (json_is_integer(nonce)) {
        char b[32];
        snprintf(b, sizeof b, "%lld", (long long)json_integer_value(nonce));
        j->nonce = cl_strdup(b);
    } else if (json_is_real(nonce)) {
        /* the shortest decimal that reads back as the same double (1.5 -> "1.5") */
        char b[40];
        double v = json_real_value(nonce);
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(b, sizeof b, "%.*g", prec, v);
            if (strtod(b, NULL) == v)
                break;
        }
        j->nonce = cl_strdup(b);
    } else if (nonce != NULL && !json_is_null(nonce)) {
        failf(f, 400, "InvalidParameter", "nonce must be a string");
        goto out;
    }
    const json_t *draft = json_object_get(body, "draftPolicyForAttestation");
    if (draft != NULL && !json_is_null(draft)) {
        char perr[512];
        if (!json_is_string(draft)) {
            failf(f, 400, "InvalidParameter", "draftPolicyForAttestation must be a string");
            goto out;
        }
        j->draft_policy =
            pol_new(json_string_value(draft), json_string_length(draft), NULL, perr, sizeof perr);
        if (j->draft_policy == NULL) {
            failf(f, 400, "PolicyParsingError", "%s", perr);
            goto out;
        }
        j->draft = 1;
    } else if (j->policy == NULL) {
        failf(f, 400, "InvalidOperation", "no attestation policy is set for %s",
              cl_atype_names[j->type]);
        goto out;
    }
    rc = CL_OK;
out:
    json_decref(body);
    return rc;
}

static void work_attest(uv_work_t *w)
{
    job *j = w->data;
    failure *f = &j->f;
    json_t *claims = json_object(), *legacy = json_object(), *unverified = json_object();
    int rc = claims && legacy && unverified ? CL_OK : CL_ENOMEM;
    if (rc < 0) {
        failf(f, 500, "InternalError", "out of memory");
        goto out;
    }
    if (parse_request(j, f) < 0)
        goto out;
    switch (j->type) {
    case T_SGX:
    case T_OE:
    case T_TDX:
        rc = do_intel(j, claims, legacy, f);
        break;
    case T_SNP:
        rc = do_snp(j, claims, unverified, f);
        break;
    case T_VIRTUAL:
        rc = do_virtual(j, claims, f);
        break;
    default:
        failf(f, 400, "InvalidParameter", "unsupported attestation type");
        rc = CL_EUNSUPPORTED;
    }
    if (rc < 0)
        goto out;
    /* Binary runtime data on SGX: x-ms-sgx-ehd and its legacy copies (spec §3.1). */
    if (j->rt.present && !j->rt.is_json && (j->type == T_SGX || j->type == T_OE)) {
        char *e = cl_b64url_encode_alloc(j->rt.data, j->rt.len);
        rc = e == NULL ? CL_ENOMEM : CL_OK;
        if (rc == CL_OK && (json_object_set_new(claims, "x-ms-sgx-ehd", json_string(e)) != 0 ||
                            json_object_set_new(claims, "maa-ehd", json_string(e)) != 0 ||
                            json_object_set_new(claims, "aas-ehd", json_string(e)) != 0))
            rc = CL_ENOMEM;
        cl_free(e);
        if (rc < 0) {
            failf(f, 500, "InternalError", "out of memory");
            goto out;
        }
    }
    evaluation e = {attestation_type_name(j->type),
                    claims,
                    j->type == T_SGX || j->type == T_OE ? legacy : NULL,
                    unverified,
                    j->rt.is_json ? j->rt.json : NULL,
                    j->it.is_json ? j->it.json : NULL,
                    NULL,
                    j->nonce,
                    j->draft,
                    NULL,
                    NULL};
    evaluate_and_sign(j->a, j->draft ? j->draft_policy : j->policy, &e, &j->token, f);
out:
    json_decref(claims);
    json_decref(legacy);
    json_decref(unverified);
}

/* The answer of a finished job (its failure or its token), then the job is freed. */
static void job_reply(job *j)
{
    if (j->f.status != 0)
        reply_error(j->a, j->x, &j->f);
    else
        reply_token_body(j->a, j->x, j->token);
    job_free(j);
}

static void after_attest(uv_work_t *w, int status)
{
    job *j = w->data;
    j->a->pending--;
    if (status != 0 && j->f.status == 0)
        failf(&j->f, 503, "ServiceUnavailable", "the attestation was cancelled");
    job_reply(j);
}

/* A job for an attestation of `type`, holding a reference to the policy in force (a later
 * policy change cannot affect it). Any thread: the reference is taken under cache_mu. */
static job *job_new(cl_attestd *a, cl_http_exchange *x, int type)
{
    const cl_http_request *r = cl_http_request_of(x);
    job *j = cl_calloc(1, sizeof *j);
    if (j == NULL)
        return NULL;
    j->a = a;
    j->x = x;
    j->type = type;
    j->now = now_of(a);
    j->body = r->body;
    j->body_len = r->body_len;
    j->work.data = j;
    uv_mutex_lock(&a->cache_mu);
    j->policy = a->cache[type];
    if (j->policy != NULL)
        __atomic_add_fetch(&j->policy->refs, 1, __ATOMIC_RELAXED);
    uv_mutex_unlock(&a->cache_mu);
    return j;
}

/* Admission of an attestation on the main loop: the policy in force is referenced here (a
 * later policy change cannot affect this request); parsing, verification, evaluation and
 * signing all run on the thread pool, so a large body never stalls the loop. */
static void attest(cl_attestd *a, cl_http_exchange *x, int type)
{
    failure f = {0, NULL, ""};
    job *j = job_new(a, x, type);
    if (j == NULL) {
        reply_err(a, x, 500, "InternalError", "out of memory");
        return;
    }
    if (__atomic_load_n(&a->quiesced, __ATOMIC_ACQUIRE)) {
        failf(&f, 503, "ServiceUnavailable", "the service is shutting down");
        goto fail;
    }
    if (uv_queue_work(a->o.loop, &j->work, work_attest, after_attest) != 0) {
        failf(&f, 503, "ServiceUnavailable", "could not queue the attestation");
        goto fail;
    }
    a->pending++;
    return;
fail:
    reply_error(a, x, &f);
    job_free(j);
}

/* ---- policies ------------------------------------------------------------------------------ */

static void get_policy(cl_attestd *a, cl_http_exchange *x, int type)
{
    const char *jws = cl_astore_policy(a->o.store, type);
    char *made = NULL;
    if (jws == NULL) {
        const char *d = cl_attestd_default_policy(type);
        made = unsigned_policy_jws(d ? d : "", d ? strlen(d) : 0);
        if (made == NULL) {
            reply_err(a, x, 500, "InternalError", "out of memory");
            return;
        }
        jws = made;
    }
    reply_token(a, x, json_pack("{s:s}", "x-ms-policy", jws));
    cl_free(made);
}

static void set_policy(cl_attestd *a, cl_http_exchange *x, int type, const identity *id, int reset)
{
    const cl_http_request *r = cl_http_request_of(x);
    failure f = {0, NULL, ""};
    char *jws = jws_text_of_body(r->body, r->body_len, &f), *text = NULL, *wrapped = NULL;
    cl_jws *j = NULL;
    json_t *signer = NULL;
    if (jws == NULL) {
        if (f.status == 0)
            failf(&f, 500, "InternalError", "out of memory");
        goto fail;
    }
    if (!reset && !looks_like_jws(jws)) {
        if (a->o.isolated) {
            failf(&f, 400, "InvalidOperation",
                  "the body is not a JWS; this instance only accepts signed policies");
            goto fail;
        }
        wrapped = unsigned_policy_jws(jws, strlen(jws)); /* raw policy text (AAD mode) */
        if (wrapped == NULL) {
            failf(&f, 500, "InternalError", "out of memory");
            goto fail;
        }
        cl_free(jws);
        jws = wrapped;
        wrapped = NULL;
    }
    j = accept_jws(a, jws, 0, &f);
    if (j == NULL)
        goto fail;
    size_t plen = 0;
    cl_jws_payload(j, &plen);
    if (reset && plen != 0) {
        failf(&f, 400, "InvalidOperation", "a reset JWS must have an empty payload");
        goto fail;
    }
    if (!reset) {
        size_t tl;
        char perr[512];
        if (policy_text_of(j, &text, &tl, &f) < 0)
            goto fail;
        pol *p = pol_new(text, tl, NULL, perr, sizeof perr);
        if (p == NULL) {
            failf(&f, 400, "PolicyParsingError", "%s", perr);
            goto fail;
        }
        pol_release(p);
    }
    int rc = reset ? cl_astore_policy_reset(a->o.store, type, id->who)
                   : cl_astore_policy_set(a->o.store, type, jws, id->who);
    if (rc < 0) {
        failf(&f, 500, "InternalError", "the policy could not be stored durably: %s",
              cl_strerror(rc));
        goto fail;
    }
    char perr[256];
    if (refresh_policy(a, type, perr, sizeof perr) < 0)
        cl_logf(CL_LOG_ERROR, "attestd: stored policy for %s no longer loads: %s",
                cl_atype_names[type], perr);
    json_t *pl = json_pack("{s:s}", "x-ms-policy-result", reset ? "Removed" : "Updated");
    if (pl != NULL && !reset) {
        char h[44];
        uint8_t d[32];
        cl_sha256(jws, strlen(jws), d);
        cl_b64_encode(d, sizeof d, h, CL_B64_URL);
        json_object_set_new(pl, "x-ms-policy-token-hash", json_string(h));
    }
    signer = signer_claim(j);
    if (pl != NULL && signer != NULL)
        json_object_set(pl, "x-ms-policy-signer", signer);
    reply_token(a, x, pl);
    goto done;
fail:
    reply_error(a, x, &f);
done:
    json_decref(signer);
    cl_jws_free(j);
    cl_free(text);
    cl_free(wrapped);
    cl_free(jws);
}

/* ---- policy management certificates (spec §7) ---------------------------------------------- */

static json_t *cert_jwk(const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    X509 *c = d2i_X509(NULL, &p, (long)len);
    const char *kty = "RSA";
    if (c != NULL && EVP_PKEY_base_id(X509_get0_pubkey(c)) == EVP_PKEY_EC)
        kty = "EC";
    X509_free(c);
    char *b = cl_b64_encode_alloc(der, len, CL_B64_STD);
    json_t *o = b ? json_pack("{s:s,s:[s]}", "kty", kty, "x5c", b) : NULL;
    cl_free(b);
    return o;
}

static void get_certs(cl_attestd *a, cl_http_exchange *x)
{
    json_t *keys = json_array();
    for (size_t k = 0; keys != NULL && k < cl_astore_cert_count(a->o.store); k++) {
        size_t len;
        const uint8_t *der = cl_astore_cert(a->o.store, k, &len);
        if (json_array_append_new(keys, cert_jwk(der, len)) != 0) {
            json_decref(keys);
            keys = NULL;
        }
    }
    reply_token(a, x,
                keys ? json_pack("{s:{s:o}}", "x-ms-policy-certificates", "keys", keys) : NULL);
}

static void change_cert(cl_attestd *a, cl_http_exchange *x, const identity *id, int add)
{
    const cl_http_request *r = cl_http_request_of(x);
    failure f = {0, NULL, ""};
    cl_jws *j = NULL;
    uint8_t *der = NULL;
    size_t dlen = 0;
    char *jws = NULL;
    if (!a->o.isolated) {
        failf(&f, 400, "InvalidOperation",
              "policy management certificates can only be changed on an Isolated instance");
        goto fail;
    }
    jws = jws_text_of_body(r->body, r->body_len, &f);
    if (jws == NULL) {
        if (f.status == 0)
            failf(&f, 500, "InternalError", "out of memory");
        goto fail;
    }
    j = accept_jws(a, jws, 1, &f);
    if (j == NULL)
        goto fail;
    json_t *pl = cl_jws_payload_json(j);
    const json_t *pc = NULL;
    static const char *const names[] = {"policyCertificate", "x-ms-policyCertificate",
                                        "maa-policyCertificate"};
    for (size_t k = 0; k < 3 && pc == NULL; k++)
        pc = pl ? json_object_get(pl, names[k]) : NULL;
    const json_t *x5c = json_is_object(pc) ? json_object_get(pc, "x5c") : NULL;
    const json_t *c0 = json_is_array(x5c) ? json_array_get(x5c, 0) : NULL;
    const unsigned char *p;
    X509 *cert = NULL;
    if (!json_is_string(c0) ||
        cl_b64_decode_alloc(json_string_value(c0), json_string_length(c0), &der, &dlen,
                            CL_B64_STD) < 0 ||
        (p = der, cert = d2i_X509(NULL, &p, (long)dlen)) == NULL || p != der + dlen) {
        X509_free(cert);
        failf(&f, 400, "InvalidOperation",
              "the payload must be {\"policyCertificate\":{\"x5c\":[\"<base64 DER "
              "certificate>\"]}}");
        goto fail;
    }
    X509_free(cert);
    if (!add && cl_astore_cert_find(a->o.store, der, dlen) >= 0 &&
        cl_astore_cert_count(a->o.store) == 1) {
        failf(&f, 400, "InvalidOperation",
              "the last policy management certificate cannot be removed");
        goto fail;
    }
    int changed;
    int rc = add ? cl_astore_cert_add(a->o.store, der, dlen, id->who, &changed)
                 : cl_astore_cert_remove(a->o.store, der, dlen, id->who, &changed);
    if (rc < 0) {
        failf(&f, rc == CL_EOVERFLOW ? 400 : 500,
              rc == CL_EOVERFLOW ? "InvalidOperation" : "InternalError",
              "the certificate set could not be changed: %s", cl_strerror(rc));
        goto fail;
    }
    uint8_t sha1[20];
    char thumb[41];
    unsigned int sl = 0;
    EVP_Digest(der, dlen, sha1, &sl, EVP_sha1(), NULL);
    cl_hex_encode(sha1, sizeof sha1, thumb);
    for (char *t = thumb; *t; t++)
        if (*t >= 'a' && *t <= 'f')
            *t = (char)(*t - 'a' + 'A');
    reply_token(a, x,
                json_pack("{s:s,s:s}", "x-ms-certificate-thumbprint", thumb,
                          "x-ms-policycertificates-result", add ? "IsPresent" : "IsAbsent"));
    goto done;
fail:
    reply_error(a, x, &f);
done:
    cl_jws_free(j);
    cl_free(der);
    cl_free(jws);
}

/* ---- discovery ----------------------------------------------------------------------------- */

static void get_jwks(cl_attestd *a, cl_http_exchange *x)
{
    json_t *e = NULL;
    if (cl_jwks_entry(a->o.sign_cert, NULL, &e) < 0) {
        reply_err(a, x, 500, "InternalError", "the signing certificate cannot be published");
        return;
    }
    reply_json(a, x, 200, json_pack("{s:[o]}", "keys", e), NULL);
}

static void get_openid(cl_attestd *a, cl_http_exchange *x)
{
    char rev[600];
    snprintf(rev, sizeof rev, "%s/revoke", a->o.base_url);
    json_t *o = json_pack(
        "{s:[s,s],s:[s],s:s,s:s,s:s,s:[s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s]}",
        "response_types_supported", "token", "none", "id_token_signing_alg_values_supported",
        "RS256", "revocation_endpoint", rev, "issuer", a->o.base_url, "jwks_uri", a->jku,
        "claims_supported", "cnf", "nonce", "x-ms-ver", "x-ms-attestation-type", "x-ms-policy-hash",
        "x-ms-policy-signer", "x-ms-sgx-is-debuggable", "x-ms-sgx-mrenclave", "x-ms-sgx-mrsigner",
        "x-ms-sgx-svn", "x-ms-sgx-ehd", "x-ms-sgx-collateral", "is-debuggable", "sgx-mrsigner",
        "sgx-mrenclave", "product-id", "svn", "tee");
    /* MAA's member order (spec §5.7): jansson keeps insertion order with JSON_PRESERVE_ORDER,
     * which reply_json does not use; clients do not depend on the order. */
    reply_json(a, x, 200, o, NULL);
}

/* ---- TPM (spec §4; cledger Linux TPM 2.0 profile, docs/evidence-tpm.md) -------------------- */

#define CTX_VERSION 2
#define CHALLENGE_LIFETIME 300
#define CTX_LEN (1 + 8 + 32 + 1 + 32 + 32 + 32)

/* service_context = version(1) || expiry(u64 BE) || challenge(32) || activation flag(1) ||
 * SHA-256(AK Name)(32) || SHA-256(credential secret)(32) || HMAC-SHA-256(key, all preceding):
 * the service stays stateless between the protocol steps, and a credential-activation secret is
 * only ever held by the TPM that owns the EK. */
typedef struct {
    int64_t expiry;
    uint8_t challenge[32];
    int activation;
    uint8_t ak_name_hash[32], secret_hash[32];
} tpm_ctx;

static char *ctx_encode(const cl_attestd *a, const tpm_ctx *c)
{
    uint8_t b[CTX_LEN];
    b[0] = CTX_VERSION;
    for (int k = 0; k < 8; k++)
        b[1 + k] = (uint8_t)((uint64_t)c->expiry >> (56 - 8 * k));
    memcpy(b + 9, c->challenge, 32);
    b[41] = (uint8_t)(c->activation != 0);
    memcpy(b + 42, c->ak_name_hash, 32);
    memcpy(b + 74, c->secret_hash, 32);
    if (cl_hmac_sha256(a->o.context_key, sizeof a->o.context_key, b, 106, b + 106) < 0)
        return NULL;
    return cl_b64url_encode_alloc(b, sizeof b);
}

static int ctx_decode(const cl_attestd *a, const char *s, size_t n, tpm_ctx *c, failure *f)
{
    uint8_t *b = NULL, mac[32];
    size_t len = 0;
    int rc = CL_OK;
    if (cl_b64_decode_lenient_alloc(s, n, &b, &len) < 0 || len != CTX_LEN || b[0] != CTX_VERSION ||
        cl_hmac_sha256(a->o.context_key, sizeof a->o.context_key, b, 106, mac) < 0 ||
        !cl_ct_equal(mac, b + 106, 32)) {
        failf(f, 400, "InvalidParameter", "service_context is not one this service issued");
        rc = CL_ESIG;
        goto out;
    }
    uint64_t e = 0;
    for (int k = 0; k < 8; k++)
        e = e << 8 | b[1 + k];
    c->expiry = (int64_t)e;
    memcpy(c->challenge, b + 9, 32);
    c->activation = b[41];
    memcpy(c->ak_name_hash, b + 42, 32);
    memcpy(c->secret_hash, b + 74, 32);
    if (c->expiry < (int64_t)time(NULL)) {
        failf(f, 400, "InvalidParameter", "the challenge has expired; start again with aikcert");
        rc = CL_EEXPIRED;
    }
out:
    cl_free(b);
    return rc;
}

static void tpm_reply(cl_attestd *a, cl_http_exchange *x, json_t *payload)
{
    json_t *env = json_pack("{s:o}", "payload", payload);
    char *text = env ? json_dumps(env, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(env);
    char *d = text ? cl_b64url_encode_alloc((const uint8_t *)text, strlen(text)) : NULL;
    cl_free(text);
    if (d == NULL) {
        reply_err(a, x, 500, "InternalError", "out of memory");
        return;
    }
    reply_json(a, x, 200, json_pack("{s:s}", "data", d), NULL);
    cl_free(d);
}

/* A base64url member of `o` decoded into *out (cl_free); CL_ENOENT when absent. */
static int b64_member(const json_t *o, const char *name, uint8_t **out, size_t *len, failure *f)
{
    const json_t *v = json_object_get(o, name);
    *out = NULL;
    *len = 0;
    if (v == NULL)
        return CL_ENOENT;
    if (!json_is_string(v) ||
        cl_b64_decode_lenient_alloc(json_string_value(v), json_string_length(v), out, len) < 0) {
        failf(f, 400, "InvalidParameter", "\"%s\" must be base64url", name);
        return CL_EBASE64;
    }
    return CL_OK;
}

/* Step 1: a challenge; with the cledger "tpm2" member also a credential for activation. */
static void tpm_step1(cl_attestd *a, cl_http_exchange *x, const json_t *pl)
{
    failure f = {0, NULL, ""};
    tpm_ctx c;
    memset(&c, 0, sizeof c);
    uint8_t secret[32];
    uint8_t *ekb = NULL, *ekc = NULL, *akb = NULL;
    size_t ekl = 0, ekcl = 0, akl = 0;
    cl_tpm_public ek, ak;
    memset(&ek, 0, sizeof ek);
    memset(&ak, 0, sizeof ak);
    cl_buf idobj, encsec;
    cl_buf_init(&idobj);
    cl_buf_init(&encsec);
    char *cs = NULL, *ctx = NULL, *ids = NULL, *ess = NULL;
    char err[512];
    if (cl_random(c.challenge, sizeof c.challenge) < 0 || cl_random(secret, sizeof secret) < 0) {
        failf(&f, 500, "InternalError", "no randomness");
        goto fail;
    }
    c.expiry = (int64_t)time(NULL) + CHALLENGE_LIFETIME;
    const json_t *t2 = json_object_get(pl, "tpm2");
    if (t2 != NULL) {
        if (!json_is_object(t2) || b64_member(t2, "ek_pub", &ekb, &ekl, &f) < 0 ||
            b64_member(t2, "ek_cert", &ekc, &ekcl, &f) < 0 ||
            b64_member(t2, "ak_pub", &akb, &akl, &f) < 0) {
            if (f.status == 0)
                failf(&f, 400, "InvalidParameter",
                      "tpm2 needs ek_pub, ek_cert and ak_pub (base64url)");
            goto fail;
        }
        if (cl_tpm_public_parse(ekb, ekl, &ek, err, sizeof err) < 0) {
            failf(&f, 400, "InvalidParameter", "ek_pub: %s", err);
            goto fail;
        }
        if (cl_tpm_public_parse(akb, akl, &ak, err, sizeof err) < 0 ||
            cl_tpm_ak_check(&ak, err, sizeof err) < 0) {
            failf(&f, 400, "InvalidParameter", "ak_pub: %s", err);
            goto fail;
        }
        if (a->o.tpm_roots_pem == NULL) {
            failf(&f, 400, "InvalidOperation",
                  "no TPM endorsement roots are configured (--tpm-roots): EK certificates "
                  "cannot be checked");
            goto fail;
        }
        if (cl_tpm_ek_cert_verify(ekc, ekcl, a->o.tpm_roots_pem, a->o.tpm_roots_len, &ek, now_of(a),
                                  err, sizeof err) < 0) {
            failf(&f, 400, "InvalidParameter", "ek_cert: %s", err);
            goto fail;
        }
        if (cl_tpm_make_credential(&ek, ak.name, ak.name_len, secret, sizeof secret, &idobj,
                                   &encsec, err, sizeof err) < 0) {
            failf(&f, 400, "InvalidParameter", "credential for this EK: %s", err);
            goto fail;
        }
        c.activation = 1;
        cl_sha256(ak.name, ak.name_len, c.ak_name_hash);
        cl_sha256(secret, sizeof secret, c.secret_hash);
        ids = cl_b64url_encode_alloc(idobj.data, idobj.len);
        ess = cl_b64url_encode_alloc(encsec.data, encsec.len);
    }
    cs = cl_b64url_encode_alloc(c.challenge, sizeof c.challenge);
    ctx = ctx_encode(a, &c);
    if (cs == NULL || ctx == NULL || (c.activation && (ids == NULL || ess == NULL))) {
        failf(&f, 500, "InternalError", "out of memory");
        goto fail;
    }
    json_t *out = json_pack("{s:s,s:s}", "challenge", cs, "service_context", ctx);
    if (out != NULL && c.activation) {
        json_object_set_new(out, "credential_blob", json_string(ids));
        json_object_set_new(out, "encrypted_secret", json_string(ess));
    }
    tpm_reply(a, x, out);
    goto done;
fail:
    reply_error(a, x, &f);
done:
    cl_wipe(secret, sizeof secret);
    cl_tpm_public_free(&ek);
    cl_tpm_public_free(&ak);
    cl_buf_free(&idobj);
    cl_buf_free(&encsec);
    cl_free(ekb);
    cl_free(ekc);
    cl_free(akb);
    cl_free(cs);
    cl_free(ctx);
    cl_free(ids);
    cl_free(ess);
}

typedef struct {
    int ak_validated;
    uint32_t selected_sha256; /* PCR bitmap of the quote's SHA-256 bank (PCRs 0..23) */
} tpm_check;

/* configurationrules settings (policy §5.5): require_valid_aik_cert, required_pcr_mask. */
static int tpm_settings(void *arg, const cl_policy_settings *s, failure *f)
{
    const tpm_check *t = arg;
    if (s->require_valid_aik_cert && !t->ak_validated) {
        failf(f, 400, "PolicyEvaluationError",
              "the policy requires a validated AIK (require_valid_aik_cert) and this AK is not "
              "bound to a trusted EK or AK certificate");
        return CL_EDENIED;
    }
    uint32_t need = (uint32_t)s->required_pcr_mask & 0xFFFFFFu;
    if ((need & t->selected_sha256) != need) {
        failf(f, 400, "PolicyEvaluationError",
              "the quote does not cover every PCR of required_pcr_mask 0x%06X (covered: "
              "0x%06X)",
              need, t->selected_sha256 & 0xFFFFFFu);
        return CL_EDENIED;
    }
    return CL_OK;
}

/* Step 3: {"request": JWS} whose payload is {"att_type":"tpm2-quote","att_data":{...}}. */
static void tpm_step3(cl_attestd *a, cl_http_exchange *x, const json_t *pl)
{
    failure f = {0, NULL, ""};
    char err[512];
    cl_jws *j = NULL;
    json_t *claims = NULL;
    uint8_t *qb = NULL, *sb = NULL, *akb = NULL, *akc = NULL, *ch = NULL, *act = NULL, *rpd = NULL;
    size_t ql = 0, sl = 0, akl = 0, akcl = 0, chl = 0, actl = 0, rpdl = 0;
    cl_tpm_public ak;
    memset(&ak, 0, sizeof ak);
    cl_tpm_pcrs pcrs;
    cl_tpm_pcrs_init(&pcrs);
    cl_tpm_attest at;
    cl_claimset custom;
    cl_claimset_init(&custom);
    char *token = NULL;
    const json_t *req = json_object_get(pl, "request");
    if (!json_is_string(req) ||
        cl_jws_parse(json_string_value(req), json_string_length(req), &j, err, sizeof err) < 0) {
        failf(&f, 400, "InvalidParameter", "request: not a JWS (%s)",
              json_is_string(req) ? err : "not a string");
        goto fail;
    }
    json_t *body = cl_jws_payload_json(j);
    const json_t *ty = body ? json_object_get(body, "att_type") : NULL;
    const json_t *ad = body ? json_object_get(body, "att_data") : NULL;
    if (!json_is_string(ty) || strcmp(json_string_value(ty), "tpm2-quote") != 0) {
        failf(&f, 400, "InvalidParameter",
              "att_type \"%.40s\" is not supported (this service verifies \"tpm2-quote\"; "
              "Windows platform claims need Windows)",
              json_is_string(ty) ? json_string_value(ty) : "?");
        goto fail;
    }
    const json_t *t2 = json_is_object(ad) ? json_object_get(ad, "tpm2") : NULL;
    const json_t *sc = json_is_object(ad) ? json_object_get(ad, "service_context") : NULL;
    tpm_ctx c;
    if (!json_is_object(t2) || !json_is_string(sc)) {
        failf(&f, 400, "InvalidParameter", "att_data needs tpm2 and service_context");
        goto fail;
    }
    if (ctx_decode(a, json_string_value(sc), json_string_length(sc), &c, &f) < 0)
        goto fail;
    if (b64_member(ad, "challenge", &ch, &chl, &f) < 0 || chl != 32 ||
        !cl_ct_equal(ch, c.challenge, 32)) {
        if (f.status == 0)
            failf(&f, 400, "InvalidParameter", "challenge does not match the service_context");
        goto fail;
    }
    if (b64_member(t2, "quote", &qb, &ql, &f) < 0 ||
        b64_member(t2, "signature", &sb, &sl, &f) < 0 ||
        b64_member(t2, "ak_pub", &akb, &akl, &f) < 0) {
        if (f.status == 0)
            failf(&f, 400, "InvalidParameter", "tpm2 needs quote, signature and ak_pub");
        goto fail;
    }
    if (b64_member(t2, "ak_cert", &akc, &akcl, &f) == CL_EBASE64 ||
        b64_member(ad, "activated_secret", &act, &actl, &f) == CL_EBASE64 ||
        b64_member(ad, "rp_data", &rpd, &rpdl, &f) == CL_EBASE64)
        goto fail;
    if (cl_tpm_public_parse(akb, akl, &ak, err, sizeof err) < 0) {
        failf(&f, 400, "InvalidParameter", "ak_pub: %s", err);
        goto fail;
    }
    /* A signed request must be signed by the AK itself. */
    if (strcmp(cl_jws_alg(j), "none") != 0) {
        if (cl_jws_verify(j, err, sizeof err) < 0 ||
            EVP_PKEY_eq(cl_jws_signer_key(j), ak.pkey) != 1) {
            failf(&f, 400, "InvalidParameter", "the request JWS is not signed by the AK%s%s",
                  err[0] ? ": " : "", err);
            goto fail;
        }
    }
    if (cl_tpm_pcrs_from_json(json_object_get(t2, "pcrs"), &pcrs, err, sizeof err) < 0) {
        failf(&f, 400, "InvalidParameter", "pcrs: %s", err);
        goto fail;
    }
    if (cl_tpm_quote_verify(qb, ql, sb, sl, &ak, c.challenge, 32, &pcrs, err, sizeof err) < 0) {
        failf(&f, 400, "InvalidParameter", "TPM quote verification failed: %s", err);
        goto fail;
    }
    if (cl_tpm_attest_parse(qb, ql, &at, err, sizeof err) < 0) {
        failf(&f, 400, "InvalidParameter", "quote: %s", err);
        goto fail;
    }
    tpm_check chk = {0, 0};
    for (uint32_t b = 0; b < at.nbanks; b++)
        if (at.banks[b].hash_alg == CL_TPM_ALG_SHA256)
            for (unsigned i = 0; i < 24; i++)
                if (cl_tpm_attest_selected(&at, b, i))
                    chk.selected_sha256 |= 1u << i;
    /* AK trust: credential activation (the secret only the EK's TPM could recover, for this AK
     * Name), or an AK certificate chaining to a configured root. */
    if (c.activation && act != NULL) {
        uint8_t h[32], nh[32];
        cl_sha256(act, actl, h);
        cl_sha256(ak.name, ak.name_len, nh);
        if (!cl_ct_equal(h, c.secret_hash, 32) || !cl_ct_equal(nh, c.ak_name_hash, 32)) {
            failf(&f, 400, "InvalidParameter",
                  "activated_secret does not match the credential issued for this AK");
            goto fail;
        }
        chk.ak_validated = 1;
    } else if (akc != NULL) {
        if (a->o.tpm_roots_pem == NULL ||
            cl_tpm_ak_cert_verify(akc, akcl, a->o.tpm_roots_pem, a->o.tpm_roots_len, &ak, now_of(a),
                                  err, sizeof err) < 0) {
            failf(&f, 400, "InvalidParameter", "ak_cert: %s",
                  a->o.tpm_roots_pem ? err : "no TPM roots are configured");
            goto fail;
        }
        chk.ak_validated = 1;
    }
    claims = json_object();
    if (claims == NULL || cl_tpm_claims(&at, &pcrs, &ak, chk.ak_validated, claims) < 0) {
        failf(&f, 500, "InternalError", "could not build the claims");
        goto fail;
    }
    if (rpd != NULL) {
        char *r = cl_b64url_encode_alloc(rpd, rpdl);
        json_object_set_new(claims, "rp_data", json_string(r ? r : ""));
        cl_free(r);
    }
    /* custom_claims: [{name, value, value_type}] as CustomClaim incoming claims. */
    const json_t *cc = json_object_get(ad, "custom_claims");
    size_t i;
    const json_t *e;
    if (cc != NULL && !json_is_array(cc)) {
        failf(&f, 400, "InvalidParameter", "custom_claims must be an array");
        goto fail;
    }
    json_array_foreach(cc, i, e)
    {
        const char *n = json_string_value(json_object_get(e, "name"));
        const json_t *v = json_object_get(e, "value");
        const char *vt = json_string_value(json_object_get(e, "value_type"));
        int rc = CL_EINVAL;
        if (n != NULL && json_is_string(v) && (vt == NULL || strcmp(vt, "String") == 0))
            rc = cl_claimset_add_string(&custom, n, json_string_value(v), CL_CI_CUSTOM, 0);
        else if (n != NULL && json_is_integer(v) && vt != NULL && strcmp(vt, "Integer") == 0)
            rc = cl_claimset_add_int(&custom, n, json_integer_value(v), CL_CI_CUSTOM);
        else if (n != NULL && json_is_boolean(v) && vt != NULL && strcmp(vt, "Boolean") == 0)
            rc = cl_claimset_add_bool(&custom, n, json_is_true(v), CL_CI_CUSTOM);
        if (rc < 0 || i >= 64) {
            failf(&f, 400, "InvalidParameter",
                  "custom_claims[%zu] must be {name, value, value_type String|Integer|Boolean} "
                  "(at most 64)",
                  i);
            goto fail;
        }
    }
    const pol *p = a->cache[T_TPM];
    if (p == NULL) {
        failf(&f, 400, "InvalidOperation",
              "TPM attestation needs a policy: none is set for Tpm (there is no default)");
        goto fail;
    }
    evaluation ev = {"tpm", claims, NULL, NULL, NULL, NULL, &custom, NULL, 0, tpm_settings, &chk};
    if (evaluate_and_sign(a, p, &ev, &token, &f) < 0)
        goto fail;
    tpm_reply(a, x, json_pack("{s:s}", "report", token));
    goto done;
fail:
    reply_error(a, x, &f);
done:
    cl_free(token);
    cl_claimset_free(&custom);
    json_decref(claims);
    cl_tpm_public_free(&ak);
    cl_jws_free(j);
    cl_free(qb);
    cl_free(sb);
    cl_free(akb);
    cl_free(akc);
    cl_free(ch);
    if (act != NULL)
        cl_wipe(act, actl);
    cl_free(act);
    cl_free(rpd);
}

static void tpm_attest(cl_attestd *a, cl_http_exchange *x)
{
    const cl_http_request *r = cl_http_request_of(x);
    json_t *body = NULL, *inner = NULL;
    uint8_t *raw = NULL;
    size_t rawlen = 0;
    char jerr[160];
    if (cl_json_parse((const char *)r->body, r->body_len, MAX_BODY, &body, jerr, sizeof jerr) < 0 ||
        !json_is_string(json_object_get(body, "data")) ||
        cl_b64_decode_lenient_alloc(json_string_value(json_object_get(body, "data")),
                                    json_string_length(json_object_get(body, "data")), &raw,
                                    &rawlen) < 0 ||
        cl_json_parse((const char *)raw, rawlen, MAX_BODY, &inner, jerr, sizeof jerr) < 0 ||
        !json_is_object(json_object_get(inner, "payload"))) {
        reply_err(a, x, 400, "InvalidParameter",
                  "the body must be {\"data\": base64url of {\"payload\": {...}}}");
        goto out;
    }
    const json_t *pl = json_object_get(inner, "payload");
    const json_t *ty = json_object_get(pl, "type");
    if (json_is_string(ty) && strcmp(json_string_value(ty), "aikcert") == 0)
        tpm_step1(a, x, pl);
    else if (json_object_get(pl, "request") != NULL)
        tpm_step3(a, x, pl);
    else
        reply_err(a, x, 400, "InvalidParameter",
                  "unknown TPM protocol message (expected type \"aikcert\" or a \"request\")");
out:
    cl_free(raw);
    json_decref(inner);
    json_decref(body);
}

/* ---- routing and admission ----------------------------------------------------------------- */

typedef enum {
    A_ATTEST,
    A_TPM,
    A_GET_POLICY,
    A_SET_POLICY,
    A_RESET_POLICY,
    A_GET_CERTS,
    A_ADD_CERT,
    A_REMOVE_CERT,
    A_JWKS,
    A_OPENID
} action_t;

enum { UNTYPED = -2, ANY_TYPE = -1 };

/* One route: a path and a method (attestation-api.md §2). Where `type` is UNTYPED the path is
 * `path` exactly; otherwise it is `path`, an attestation type name (any case; ANY_TYPE: every
 * type, else that one) and `suffix`. The first route of a path and method wins; the table's order
 * is the order Allow lists methods in. */
typedef struct {
    const char *path;
    int type;
    const char *suffix;
    const char *method;
    action_t act;
    right_t right;
} route;

static const route routes[] = {
    {"/certs", UNTYPED, "", "GET", A_JWKS, R_ANON},
    {"/certs/", UNTYPED, "", "GET", A_JWKS, R_ANON},
    {"/.well-known/openid-configuration", UNTYPED, "", "GET", A_OPENID, R_ANON},
    {"/certificates", UNTYPED, "", "GET", A_GET_CERTS, R_ADMIN_READ},
    {"/certificates:add", UNTYPED, "", "POST", A_ADD_CERT, R_ADMIN_WRITE},
    {"/certificates:remove", UNTYPED, "", "POST", A_REMOVE_CERT, R_ADMIN_WRITE},
    {"/attest/", T_TPM, "", "POST", A_TPM, R_TPM}, /* MAA's TPM protocol, before every type */
    {"/attest/", ANY_TYPE, "", "POST", A_ATTEST, R_ANON},
    {"/policies/", ANY_TYPE, "", "GET", A_GET_POLICY, R_ADMIN_READ},
    {"/policies/", ANY_TYPE, "", "PUT", A_SET_POLICY, R_ADMIN_WRITE},
    {"/policies/", ANY_TYPE, ":reset", "POST", A_RESET_POLICY, R_ADMIN_WRITE},
};
#define NROUTES (sizeof routes / sizeof routes[0])

/* Whether `path` is the path of route `rt`: 1 (*type: its attestation type, -1 for none), 0, or
 * -1 when it would be but for a type name that is not known. */
static int route_path(const route *rt, const char *path, int *type)
{
    *type = -1;
    if (rt->type == UNTYPED)
        return strcmp(path, rt->path) == 0;
    size_t n = strlen(path), pl = strlen(rt->path), sl = strlen(rt->suffix);
    if (n < pl + sl || strncmp(path, rt->path, pl) != 0 || strcmp(path + n - sl, rt->suffix) != 0)
        return 0;
    const char *name = path + pl;
    size_t nl = n - pl - sl;
    if (memchr(name, '/', nl) != NULL)
        return 0; /* deeper paths do not exist */
    int t = cl_atype_find(name, nl);
    if (t < 0) /* AzureGuest: a 2025-06-01 route cledger does not have (spec §2: 404) */
        return nl == 10 && memcmp(name, "AzureGuest", 10) == 0 ? 0 : -1; /* lint:public */
    if (rt->type != ANY_TYPE && rt->type != t)
        return 0;
    *type = t;
    return 1;
}

/* Resolves `path` and `method` to a route: *out (NULL: the path has none for this method) and
 * *type. With `allow` (cap bytes; may be NULL), the path's methods for Allow. Returns 1 for a
 * known path, 0 for an unknown one, -1 for an unknown attestation type in it. "*" (asterisk-form:
 * net/http.c lets it through for OPTIONS only) is the whole service: every route's path, and no
 * route serves it. */
static int resolve(const char *path, const char *method, const route **out, int *type, char *allow,
                   size_t cap)
{
    int known = 0, bad_type = 0, asterisk = strcmp(path, "*") == 0;
    *out = NULL;
    *type = -1;
    if (allow != NULL)
        allow[0] = '\0';
    for (size_t i = 0; i < NROUTES; i++) {
        int t = -1;
        int m = asterisk ? 1 : route_path(&routes[i], path, &t);
        bad_type |= m < 0;
        if (m <= 0)
            continue;
        known = 1;
        if (allow != NULL)
            cl_http_allow_add(allow, cap, routes[i].method);
        if (*out == NULL && !asterisk && cl_http_method_serves(routes[i].method, method)) {
            *out = &routes[i];
            *type = t;
        }
    }
    return known ? 1 : bad_type ? -1 : 0;
}

/* On an HTTPS worker (net/http.h local_handler): an SGX, Open Enclave, TDX or Virtual attestation
 * is parsed, verified, evaluated and signed right here, on the thread that owns the connection,
 * instead of going worker -> main loop -> thread pool -> main loop -> worker: four wake-ups fewer
 * per attestation, and each worker is a thread that signs. The work is what the thread pool runs
 * (work_attest), which is thread-safe; the policy reference is taken under cache_mu. Tpm keeps
 * its protocol state on the main loop. SevSnpVm stays on the pool: it costs about twice an SGX
 * attestation (P-384), and run in place it holds up the worker's other connections for that long
 * (SNP p99 +2.5 ms in A/B pairs, where SGX gained 4-19% throughput and a lower p99). Everything
 * else goes on to cl_attestd_handle. */
int cl_attestd_handle_local(void *arg, cl_http_exchange *x)
{
    cl_attestd *a = arg;
    const cl_http_request *r = cl_http_request_of(x);
    const route *rt;
    int type;
    if (r->method == NULL || r->path == NULL || strcmp(r->method, "POST") != 0 ||
        resolve(r->path, r->method, &rt, &type, NULL, 0) != 1 || rt == NULL ||
        rt->act != A_ATTEST || type == T_SNP || __atomic_load_n(&a->quiesced, __ATOMIC_ACQUIRE))
        return 0;
    job *j = job_new(a, x, type);
    if (j == NULL)
        return 0; /* the main loop answers (or fails the same way) */
    work_attest(&j->work);
    job_reply(j);
    return 1;
}

void cl_attestd_handle(void *arg, cl_http_exchange *x)
{
    cl_attestd *a = arg;
    const cl_http_request *r = cl_http_request_of(x);
    const char *method = r->method != NULL ? r->method : "";
    const char *path = r->path != NULL ? r->path : "";
    char allow[64] = "";
    const route *rt;
    int type;
    int found = resolve(path, method, &rt, &type, allow, sizeof allow);
    if (found < 0) {
        reply_err(a, x, 400, "InvalidParameter",
                  "unknown attestation type in %.200s (SgxEnclave, OpenEnclave, SevSnpVm, TdxVm, "
                  "Tpm, Virtual)",
                  path);
        return;
    }
    failure f;
    switch (cl_http_route_decide(method, strcmp(path, "*") == 0, found == 1, rt != NULL, allow,
                                 sizeof allow)) {
    case CL_HTTP_ROUTE_SERVE:
        break;
    case CL_HTTP_ROUTE_OPTIONS: /* no identity needed: it tells nothing the 405s do not */
        reply_send(a, x, 200, NULL, NULL, "Allow", allow);
        return;
    case CL_HTTP_ROUTE_NOT_ALLOWED:
        failf(&f, 405, "MethodNotAllowed", "%s is not allowed here (allowed: %s)", method, allow);
        reply_error_hdr(a, x, &f, "Allow", allow); /* RFC 9110 §15.5.6 */
        return;
    case CL_HTTP_ROUTE_NOT_FOUND:
        reply_err(a, x, 404, "NotFound", "no such route: %.200s %.200s", method, path);
        return;
    }
    identity id;
    memset(&id, 0, sizeof id);
    if (rt->right != R_ANON) {
        identify(a, r, &id);
        int need = rt->right == R_ADMIN_READ || rt->right == R_ADMIN_WRITE ||
                   (rt->right == R_TPM && a->o.tpm_requires_bearer);
        if (need && !id.admin) {
            reply_err(a, x, 401, "Unauthorized", "%s",
                      id.why[0]       ? id.why
                      : id.had_bearer ? "the bearer token is not valid"
                                      : "an administrator's bearer token or client certificate is "
                                        "required");
            return;
        }
    }
    switch (rt->act) {
    case A_ATTEST:
        attest(a, x, type);
        break;
    case A_TPM:
        tpm_attest(a, x);
        break;
    case A_GET_POLICY:
        get_policy(a, x, type);
        break;
    case A_SET_POLICY:
        set_policy(a, x, type, &id, 0);
        break;
    case A_RESET_POLICY:
        set_policy(a, x, type, &id, 1);
        break;
    case A_GET_CERTS:
        get_certs(a, x);
        break;
    case A_ADD_CERT:
        change_cert(a, x, &id, 1);
        break;
    case A_REMOVE_CERT:
        change_cert(a, x, &id, 0);
        break;
    case A_JWKS:
        get_jwks(a, x);
        break;
    case A_OPENID:
        get_openid(a, x);
        break;
    }
}

/* ---- lifecycle ----------------------------------------------------------------------------- */

int cl_attestd_new(const cl_attestd_opts *o, cl_attestd **out)
{
    CL_ENSURE(o != NULL && out != NULL && o->loop != NULL && o->store != NULL &&
                  o->base_url != NULL && o->sign_key != NULL && o->sign_cert != NULL,
              CL_EINVAL);
    cl_attestd *a = cl_calloc(1, sizeof *a);
    CL_ENSURE(a != NULL, CL_ENOMEM);
    if (uv_mutex_init(&a->cache_mu) != 0) {
        cl_free(a);
        return CL_ENOMEM;
    }
    a->o = *o;
    int rc = cl_jws_kid(o->sign_cert, a->kid);
    if (rc == CL_OK)
        rc = cl_vcache_new(4096, 600, &a->vc);
    if (rc == CL_OK) {
        int n = snprintf(a->jku, sizeof a->jku, "%s/certs", o->base_url);
        rc = n > 0 && (size_t)n < sizeof a->jku ? CL_OK : CL_EOVERFLOW;
    }
    for (int t = 0; rc == CL_OK && t < CL_ATYPE_COUNT; t++) {
        char err[512];
        rc = refresh_policy(a, t, err, sizeof err);
        if (rc < 0)
            cl_logf(CL_LOG_ERROR, "attestd: the stored %s policy does not load: %s",
                    cl_atype_names[t], err);
    }
    if (rc < 0) {
        cl_attestd_free(a);
        return rc;
    }
    *out = a;
    return CL_OK;
}

void cl_attestd_quiesce(cl_attestd *a) { __atomic_store_n(&a->quiesced, 1, __ATOMIC_RELEASE); }

size_t cl_attestd_pending(const cl_attestd *a) { return a->pending; }

void cl_attestd_free(cl_attestd *a)
{
    if (a == NULL)
        return;
    for (int t = 0; t < CL_ATYPE_COUNT; t++)
        pol_release(a->cache[t]);
    uv_mutex_destroy(&a->cache_mu);
    cl_vcache_free(a->vc);
    cl_wipe(a->o.context_key, sizeof a->o.context_key);
    cl_free(a);
}
