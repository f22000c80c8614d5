/*
 * cmd_client.c — the network client of `cledger`: talks to cledgerd (or any ACL-compatible
 * ledger) over HTTPS with a client certificate, using libcurl.
 *
 *   cledger [GLOBAL OPTIONS] put|get|list|status|wait|receipt|user|identity ... [GLOBAL OPTIONS]
 *
 * Global options may come before or after the subcommand; flags override the profile file
 * (--profile, $CLEDGER_PROFILE, else ./data/cledger-profile.json when it exists). One curl handle
 * (one keep-alive connection) serves every request of an invocation. The server certificate chain
 * is verified against --service-cert (the ledger's service identity) with the host name checked.
 *
 * Exit status: 0 success, 1 the server answered with an error (or a receipt does not verify, or a
 * wait timed out / the transaction is invalid), 2 usage error or unreadable local file, 3 no
 * answer (network, TLS or timeout). See docs/client.md.
 */
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "base/alloc.h"
#include "base/codec.h"
#include "base/json.h"
#include "commands.h"
#include "ledger/receipt.h"
#include "net/tls.h"
#include "node/url.h"
#include "reply.h"

#ifndef CLEDGER_VERSION
#define CLEDGER_VERSION "0.1.0-dev"
#endif

#define API_GA "2022-05-13"
#define API_RECEIPT                                                                                \
    "2023-01-18-preview"               /* first version whose receipts carry applicationClaims     \
                                        */
#define API_USERS "2024-08-22-preview" /* /app/ledgerUsers (multi-role) */
#define DEFAULT_PROFILE "./data/cledger-profile.json"
#define DEFAULT_LEDGER_ID "cledger"
#define DEFAULT_TIMEOUT 30.0
#define MAX_BODY (64u << 20) /* bytes of one response body */
#define MAX_FILE (64u << 20) /* bytes of a local input file (batch, stdin) */
#define MAX_PROFILE (64u * 1024)
#define MAX_UNORDERED_PAGES 100000 /* pages whose nextLink has no fromTransactionId */

/* ---- options ------------------------------------------------------------------------------- */

enum {
    O_COLLECTION = 1 << 0,
    O_FROM = 1 << 1,
    O_TO = 1 << 2,
    O_WAIT = 1 << 3,
    O_VERIFY = 1 << 4,
    O_OUT = 1 << 5,
    O_ROLE = 1 << 6,
    O_LEDGER_ID = 1 << 7,
    O_SAVE = 1 << 8,
    O_INSECURE = 1 << 9,
    O_BATCH = 1 << 10,
};

typedef struct {
    const char *name;
    int opts;     /* command-specific options it accepts */
    int min_args; /* positional arguments after the command name */
    int max_args;
    const char *usage;
} client_cmd;

static const client_cmd CMDS[] = {
    {"put", O_COLLECTION | O_WAIT | O_BATCH, 0, 1,
     "put [--collection C] [--wait] CONTENTS|-  |  put --batch FILE|- [--collection C] [--wait]"},
    {"get", O_COLLECTION, 1, 1, "get TXID [--collection C]"},
    {"list", O_COLLECTION | O_FROM | O_TO, 0, 0, "list [--collection C] [--from TXID] [--to TXID]"},
    {"status", 0, 1, 1, "status TXID"},
    {"wait", 0, 1, 1, "wait TXID [--timeout SECONDS]"},
    {"receipt", O_VERIFY | O_OUT, 1, 1, "receipt TXID [--verify] [--out FILE]"},
    {"user", O_ROLE, 1, 2,
     "user add ID|CERT.pem --role ROLE [--role ROLE...] | user get ID | user rm ID | user list"},
    {"identity", O_LEDGER_ID | O_SAVE | O_INSECURE, 0, 0,
     "identity [--ledger-id ID] [--save FILE] [--insecure-first-contact]"},
};

typedef struct {
    const client_cmd *cmd;
    const char *pos[4];
    int npos;
    /* connection (flag values borrow argv; profile values are owned copies in prof_*) */
    const char *endpoint, *service_cert, *cert, *key, *profile, *api_version, *ledger_id;
    char *prof_endpoint, *prof_service_cert, *prof_cert, *prof_key, *prof_ledger_id;
    double timeout;
    int json;
    /* command options */
    int given; /* O_* bits seen */
    const char *collection, *from, *to, *out, *save, *batch;
    const char *roles[8];
    int nroles;
    int wait, verify, insecure;
} client_opts;

static const client_cmd *find_cmd(const char *name)
{
    for (size_t i = 0; i < sizeof CMDS / sizeof CMDS[0]; i++)
        if (strcmp(CMDS[i].name, name) == 0)
            return &CMDS[i];
    return NULL;
}

static void client_usage(FILE *f)
{
    fprintf(f, "usage: cledger [GLOBAL OPTIONS] <command> [ARGS] [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof CMDS / sizeof CMDS[0]; i++)
        fprintf(f, "  cledger %s\n", CMDS[i].usage);
    fprintf(f,
            "\nglobal options (flags override the profile file):\n"
            "  --endpoint URL        ledger endpoint, e.g. https://127.0.0.1:8443\n"
            "  --service-cert PEM    service identity certificate: the TLS trust anchor\n"
            "  --cert PEM --key PEM  client certificate and its private key\n"
            "  --profile FILE        JSON "
            "{\"endpoint\",\"serviceCert\",\"cert\",\"key\"[,\"ledgerId\"]}\n"
            "                        (default: $CLEDGER_PROFILE, else %s if it exists)\n"
            "  --api-version V       api-version to send (default %s; %s for receipts,\n"
            "                        %s for multi-role user routes)\n"
            "  --timeout SECONDS     limit for each request and for waiting (default %.0f)\n"
            "  --json                print JSON (the server's body) instead of text\n"
            "\nexit status: 0 success, 1 error answered by the server / invalid receipt / wait\n"
            "failed, 2 usage or local file error, 3 network, TLS or timeout failure\n",
            DEFAULT_PROFILE, API_GA, API_RECEIPT, API_USERS, DEFAULT_TIMEOUT);
}

static const char *current_cmd = "put"; /* for the usage hint */

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "cledger: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(run `cledger %s --help` for the client's usage)\n", current_cmd);
    va_end(ap);
    return CLEDGER_EXIT_USAGE;
}

static int fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "cledger: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return status;
}

typedef struct {
    const char *name;
    int bit; /* 0: global option */
    int has_arg;
} opt_def;

static const opt_def OPTS[] = {
    {"--endpoint", 0, 1},
    {"--service-cert", 0, 1},
    {"--cert", 0, 1},
    {"--key", 0, 1},
    {"--profile", 0, 1},
    {"--api-version", 0, 1},
    {"--timeout", 0, 1},
    {"--json", 0, 0},
    {"--collection", O_COLLECTION, 1},
    {"--from", O_FROM, 1},
    {"--to", O_TO, 1},
    {"--wait", O_WAIT, 0},
    {"--verify", O_VERIFY, 0},
    {"--out", O_OUT, 1},
    {"--role", O_ROLE, 1},
    {"--ledger-id", O_LEDGER_ID, 1},
    {"--save", O_SAVE, 1},
    {"--insecure-first-contact", O_INSECURE, 0},
    {"--batch", O_BATCH, 1},
};

/* Parses argv[first..]; when o->cmd is NULL the first positional names the command. */
static int parse_args(int argc, char **argv, int first, client_opts *o)
{
    int only_pos = 0;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (only_pos || a[0] != '-' || a[1] == '\0') { /* positional ("-" is stdin) */
            if (o->cmd == NULL) {
                o->cmd = find_cmd(a);
                if (o->cmd == NULL)
                    return usage_error("unknown command '%s'", a);
                current_cmd = o->cmd->name;
            } else if (o->npos < (int)(sizeof o->pos / sizeof o->pos[0])) {
                o->pos[o->npos++] = a;
            } else {
                return usage_error("too many arguments");
            }
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            client_usage(stdout);
            return -1; /* handled: exit 0 */
        }
        const opt_def *d = NULL;
        const char *val = NULL;
        for (size_t k = 0; k < sizeof OPTS / sizeof OPTS[0]; k++) {
            size_t n = strlen(OPTS[k].name);
            if (strncmp(a, OPTS[k].name, n) == 0 &&
                (a[n] == '\0' || (a[n] == '=' && OPTS[k].has_arg))) {
                d = &OPTS[k];
                if (a[n] == '=')
                    val = a + n + 1;
                break;
            }
        }
        if (d == NULL)
            return usage_error("unknown option '%s'", a);
        if (d->has_arg && val == NULL) {
            if (i + 1 >= argc)
                return usage_error("%s needs a value", a);
            val = argv[++i];
        }
        o->given |= d->bit;
        const char *n = d->name;
        if (strcmp(n, "--endpoint") == 0)
            o->endpoint = val;
        else if (strcmp(n, "--service-cert") == 0)
            o->service_cert = val;
        else if (strcmp(n, "--cert") == 0)
            o->cert = val;
        else if (strcmp(n, "--key") == 0)
            o->key = val;
        else if (strcmp(n, "--profile") == 0)
            o->profile = val;
        else if (strcmp(n, "--api-version") == 0)
            o->api_version = val;
        else if (strcmp(n, "--timeout") == 0) {
            char *end;
            errno = 0;
            double t = strtod(val, &end);
            if (errno != 0 || end == val || *end != '\0' || !(t > 0) || t > 86400)
                return usage_error("--timeout needs a number of seconds in (0, 86400], got '%s'",
                                   val);
            o->timeout = t;
        } else if (strcmp(n, "--json") == 0)
            o->json = 1;
        else if (strcmp(n, "--collection") == 0)
            o->collection = val;
        else if (strcmp(n, "--from") == 0)
            o->from = val;
        else if (strcmp(n, "--to") == 0)
            o->to = val;
        else if (strcmp(n, "--wait") == 0)
            o->wait = 1;
        else if (strcmp(n, "--verify") == 0)
            o->verify = 1;
        else if (strcmp(n, "--out") == 0)
            o->out = val;
        else if (strcmp(n, "--role") == 0) {
            if (o->nroles == (int)(sizeof o->roles / sizeof o->roles[0]))
                return usage_error("too many --role options");
            o->roles[o->nroles++] = val;
        } else if (strcmp(n, "--ledger-id") == 0)
            o->ledger_id = val;
        else if (strcmp(n, "--save") == 0)
            o->save = val;
        else if (strcmp(n, "--insecure-first-contact") == 0)
            o->insecure = 1;
        else if (strcmp(n, "--batch") == 0)
            o->batch = val;
    }
    return 0;
}

/* ---- small utilities ----------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* Whole stream into a NUL-terminated heap buffer (at most max bytes). */
static int read_stream(FILE *f, size_t max, char **out, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = cl_malloc(cap + 1);
    if (buf == NULL)
        return -1;
    for (;;) {
        if (n == cap) {
            if (cap >= max) {
                cl_free(buf);
                errno = EFBIG;
                return -1;
            }
            size_t ncap = cap * 2 > max ? max : cap * 2;
            char *p = cl_realloc(buf, ncap + 1);
            if (p == NULL) {
                cl_free(buf);
                errno = ENOMEM;
                return -1;
            }
            buf = p;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        if (got == 0) {
            if (ferror(f)) {
                cl_free(buf);
                errno = EIO;
                return -1;
            }
            break;
        }
        n += got;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* A file ("-": stdin). Prints the error and returns CLEDGER_EXIT_USAGE on failure. */
static int read_input(const char *path, size_t max, char **out, size_t *len)
{
    if (strcmp(path, "-") == 0) {
        if (read_stream(stdin, max, out, len) < 0)
            return fail(CLEDGER_EXIT_USAGE, "cannot read standard input: %s", strerror(errno));
        return CLEDGER_EXIT_OK;
    }
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return fail(CLEDGER_EXIT_USAGE, "cannot open %s: %s", path, strerror(errno));
    int rc = read_stream(f, max, out, len);
    int e = errno;
    fclose(f);
    if (rc < 0)
        return fail(CLEDGER_EXIT_USAGE, "cannot read %s: %s", path, strerror(e));
    return CLEDGER_EXIT_OK;
}

static int write_output(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return fail(CLEDGER_EXIT_USAGE, "cannot create %s: %s", path, strerror(errno));
    int ok = fwrite(data, 1, len, f) == len;
    ok = (fclose(f) == 0) && ok;
    if (!ok)
        return fail(CLEDGER_EXIT_USAGE, "cannot write %s: %s", path, strerror(errno));
    return CLEDGER_EXIT_OK;
}

static int file_readable(const char *what, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return fail(CLEDGER_EXIT_USAGE, "cannot open %s %s: %s", what, path, strerror(errno));
    fclose(f);
    return CLEDGER_EXIT_OK;
}

/* ACL user id (upper-case colon-separated SHA-256 of the DER) of one PEM certificate. */
static int pem_fingerprint(const char *pem, size_t len, char out[96])
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL)
        return -1;
    X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (x == NULL)
        return -1;
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    X509_free(x);
    if (n <= 0)
        return -1;
    cl_tls_fingerprint(der, (size_t)n, out);
    OPENSSL_free(der);
    return 0;
}

/* Prints server text as one line (reply_escape_next). */
static void print_escaped(const char *s, size_t n)
{
    char e[REPLY_ESCAPE_MAX];
    for (size_t i = 0, used; i < n; i += used) {
        size_t k = reply_escape_next(s + i, n - i, &used, e);
        fwrite(e, 1, k, stdout);
    }
}

/* Prints a JSON value compactly with sorted keys and a newline. */
static int print_json(const json_t *j)
{
    char *s = cl_json_dump(j);
    if (s == NULL)
        return fail(CLEDGER_EXIT_USAGE, "out of memory");
    printf("%s\n", s);
    cl_free(s);
    return CLEDGER_EXIT_OK;
}

/* ---- profile ------------------------------------------------------------------------------- */

/* Relative paths in a profile are relative to the profile file's directory. */
static char *profile_path(const char *profile, const char *value)
{
    if (value[0] == '/')
        return cl_strdup(value);
    const char *slash = strrchr(profile, '/');
    if (slash == NULL)
        return cl_strdup(value);
    size_t dl = (size_t)(slash - profile), vl = strlen(value);
    char *p = cl_malloc(dl + 1 + vl + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, profile, dl);
    p[dl] = '/';
    memcpy(p + dl + 1, value, vl + 1);
    return p;
}

static int load_profile(client_opts *o)
{
    const char *path = o->profile;
    if (path == NULL) {
        const char *env = getenv("CLEDGER_PROFILE");
        if (env != NULL && *env != '\0')
            path = env;
    }
    if (path == NULL) {
        struct stat st;
        if (stat(DEFAULT_PROFILE, &st) != 0)
            return CLEDGER_EXIT_OK; /* no profile: flags only */
        path = DEFAULT_PROFILE;
    }
    char *text = NULL;
    size_t len = 0;
    int st = read_input(path, MAX_PROFILE, &text, &len);
    if (st != CLEDGER_EXIT_OK)
        return st;
    json_t *j = NULL;
    char err[256];
    int rc = cl_json_parse(text, len, MAX_PROFILE, &j, err, sizeof err);
    cl_free(text);
    if (rc < 0)
        return fail(CLEDGER_EXIT_USAGE, "profile %s is not valid JSON: %s", path, err);
    if (!json_is_object(j)) {
        json_decref(j);
        return fail(CLEDGER_EXIT_USAGE, "profile %s must be a JSON object", path);
    }
    static const char *const keys[] = {"endpoint", "serviceCert", "cert", "key", "ledgerId"};
    char **dst[] = {&o->prof_endpoint, &o->prof_service_cert, &o->prof_cert, &o->prof_key,
                    &o->prof_ledger_id};
    st = CLEDGER_EXIT_OK;
    for (size_t k = 0; k < sizeof keys / sizeof keys[0] && st == CLEDGER_EXIT_OK; k++) {
        const char *v;
        size_t vl;
        rc = cl_json_opt_str(j, keys[k], &v, &vl);
        if (rc == CL_ENOENT)
            continue;
        if (rc < 0 || vl == 0 || strlen(v) != vl) {
            st = fail(CLEDGER_EXIT_USAGE, "profile %s: \"%s\" must be a non-empty string", path,
                      keys[k]);
            break;
        }
        int is_path = k >= 1 && k <= 3;
        *dst[k] = is_path ? profile_path(path, v) : cl_strdup(v);
        if (*dst[k] == NULL)
            st = fail(CLEDGER_EXIT_USAGE, "out of memory");
    }
    json_decref(j);
    if (st != CLEDGER_EXIT_OK)
        return st;
    if (o->endpoint == NULL)
        o->endpoint = o->prof_endpoint;
    if (o->service_cert == NULL)
        o->service_cert = o->prof_service_cert;
    if (o->cert == NULL)
        o->cert = o->prof_cert;
    if (o->key == NULL)
        o->key = o->prof_key;
    if (o->ledger_id == NULL)
        o->ledger_id = o->prof_ledger_id;
    return CLEDGER_EXIT_OK;
}

/* ---- HTTP ---------------------------------------------------------------------------------- */

typedef struct {
    CURL *h;
    struct curl_slist *hdr_get, *hdr_json, *hdr_patch;
    char *endpoint; /* "https://host[:port][/base]" without a trailing slash */
    double timeout;
    int json; /* print a JSON error body on stdout (--json; cleared once a listing has begun its
               * document there, see json_stream) */
    int ca_given;
    char errbuf[CURL_ERROR_SIZE];
    /* last response */
    long status;
    char *body;
    size_t len, cap;
    int body_overflow;
    char txid[80];
    int txid_long; /* the header was longer than txid holds */
    double retry_after;
} client;

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    client *c = ud;
    size_t n = size * nmemb;
    if (c->len + n > MAX_BODY) {
        c->body_overflow = 1;
        return 0;
    }
    if (c->len + n + 1 > c->cap) {
        size_t ncap = c->cap ? c->cap : 4096;
        while (ncap < c->len + n + 1)
            ncap *= 2;
        char *q = cl_realloc(c->body, ncap);
        if (q == NULL)
            return 0;
        c->body = q;
        c->cap = ncap;
    }
    memcpy(c->body + c->len, p, n);
    c->len += n;
    c->body[c->len] = '\0';
    return n;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    client *c = ud;
    size_t n = size * nmemb;
    static const char tx[] = "x-ms-ccf-transaction-id:", ra[] = "retry-after:";
    if (n > sizeof tx - 1 && strncasecmp(p, tx, sizeof tx - 1) == 0) {
        const char *v = p + sizeof tx - 1;
        size_t vl = n - (sizeof tx - 1);
        while (vl > 0 && (*v == ' ' || *v == '\t'))
            v++, vl--;
        while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
            vl--;
        c->txid_long = vl >= sizeof c->txid;
        if (!c->txid_long) {
            memcpy(c->txid, v, vl);
            c->txid[vl] = '\0';
        }
    } else if (n > sizeof ra - 1 && strncasecmp(p, ra, sizeof ra - 1) == 0) {
        char tmp[32];
        size_t vl = n - (sizeof ra - 1);
        if (vl >= sizeof tmp)
            vl = sizeof tmp - 1;
        memcpy(tmp, p + sizeof ra - 1, vl);
        tmp[vl] = '\0';
        double v = strtod(tmp, NULL);
        if (v > 0)
            c->retry_after = v;
    }
    return n;
}

static void client_free(client *c)
{
    if (c->h != NULL)
        curl_easy_cleanup(c->h);
    curl_slist_free_all(c->hdr_get);
    curl_slist_free_all(c->hdr_json);
    curl_slist_free_all(c->hdr_patch);
    cl_free(c->endpoint);
    cl_free(c->body);
    memset(c, 0, sizeof *c);
}

/* insecure: skip server verification (identity first contact only). ca may be NULL: system
 * trust store. */
static int client_init(client *c, const client_opts *o, const char *ca, int insecure)
{
    memset(c, 0, sizeof *c);
    c->timeout = o->timeout;
    c->json = o->json;
    const char *ep = o->endpoint;
    size_t el = strlen(ep);
    while (el > 0 && ep[el - 1] == '/')
        el--;
    int has_scheme = strncmp(ep, "https://", 8) == 0;
    if (!has_scheme && strstr(ep, "://") != NULL)
        return fail(CLEDGER_EXIT_USAGE, "--endpoint must be an https:// URL, got '%s'", ep);
    size_t pre = has_scheme ? 0 : 8;
    c->endpoint = cl_malloc(pre + el + 1);
    if (c->endpoint == NULL)
        return fail(CLEDGER_EXIT_USAGE, "out of memory");
    memcpy(c->endpoint, "https://", pre);
    memcpy(c->endpoint + pre, ep, el);
    c->endpoint[pre + el] = '\0';
    if (strlen(c->endpoint) <= 8)
        return fail(CLEDGER_EXIT_USAGE, "--endpoint has no host");

    c->h = curl_easy_init();
    struct curl_slist *t;
    c->hdr_get = curl_slist_append(NULL, "Accept: application/json");
    c->hdr_json = curl_slist_append(NULL, "Accept: application/json");
    t = c->hdr_json ? curl_slist_append(c->hdr_json, "Content-Type: application/json") : NULL;
    c->hdr_json = t ? curl_slist_append(t, "Expect:") : NULL;
    c->hdr_patch = curl_slist_append(NULL, "Accept: application/json");
    t = c->hdr_patch ? curl_slist_append(c->hdr_patch, "Content-Type: application/merge-patch+json")
                     : NULL;
    c->hdr_patch = t ? curl_slist_append(t, "Expect:") : NULL;
    if (c->h == NULL || c->hdr_get == NULL || c->hdr_json == NULL || c->hdr_patch == NULL)
        return fail(CLEDGER_EXIT_USAGE, "cannot initialise libcurl");
    CURL *h = c->h;
    long ms = (long)(o->timeout * 1000);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, ms < 10000 ? ms : 10000L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "cledger/" CLEDGER_VERSION);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    } else {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
        if (ca != NULL) {
            c->ca_given = 1;
            curl_easy_setopt(h, CURLOPT_CAINFO, ca);
            curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
        }
    }
    if (o->cert != NULL) {
        curl_easy_setopt(h, CURLOPT_SSLCERT, o->cert);
        curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
        curl_easy_setopt(h, CURLOPT_SSLKEY, o->key);
        curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
    }
    return CLEDGER_EXIT_OK;
}

/* Percent-encoded copy (RFC 3986 unreserved characters kept); free with curl_free. */
static char *enc(client *c, const char *s) { return curl_easy_escape(c->h, s, (int)strlen(s)); }

/* Sends one request; path_query is "/..." relative to the endpoint. Returns CLEDGER_EXIT_OK when
 * an HTTP response arrived (c->status set; 503/429 are retried within the timeout), otherwise
 * prints the failure and returns the exit status (3 network/TLS/timeout, 2 local files). */
static int http(client *c, const char *method, const char *path_query, const char *body,
                size_t blen, int patch)
{
    size_t ul = strlen(c->endpoint) + strlen(path_query) + 1;
    char *url = cl_malloc(ul);
    if (url == NULL)
        return fail(CLEDGER_EXIT_USAGE, "out of memory");
    snprintf(url, ul, "%s%s", c->endpoint, path_query);
    CURL *h = c->h;
    curl_easy_setopt(h, CURLOPT_URL, url);
    if (strcmp(method, "GET") == 0 || strcmp(method, "DELETE") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->hdr_get);
    } else {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, patch ? c->hdr_patch : c->hdr_json);
    }
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST,
                     strcmp(method, "GET") == 0 || strcmp(method, "POST") == 0 ? NULL : method);
    double deadline = now_s() + c->timeout;
    int status = CLEDGER_EXIT_OK;
    for (int attempt = 0;; attempt++) {
        c->len = 0;
        if (c->body != NULL)
            c->body[0] = '\0';
        c->body_overflow = 0;
        c->txid[0] = '\0';
        c->txid_long = 0;
        c->retry_after = 0;
        c->errbuf[0] = '\0';
        CURLcode rc = curl_easy_perform(h);
        if (rc != CURLE_OK) {
            const char *why = c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);
            if (c->body_overflow) {
                status = fail(CLEDGER_EXIT_NETWORK, "%s %s: response larger than %u bytes", method,
                              url, MAX_BODY);
            } else if (rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_SSL_CACERT_BADFILE) {
                status = fail(CLEDGER_EXIT_USAGE, "%s: cannot use the local certificate files: %s",
                              url, why);
            } else if (rc == CURLE_PEER_FAILED_VERIFICATION) {
                status = fail(CLEDGER_EXIT_NETWORK,
                              "%s: TLS verification of the server failed: %s\n%s", url, why,
                              c->ca_given ? "  (is --service-cert the service certificate of "
                                            "this ledger?)"
                                          : "  (no --service-cert: the system trust store was "
                                            "used; see --insecure-first-contact)");
            } else {
                status = fail(CLEDGER_EXIT_NETWORK, "%s %s: %s", method, url, why);
            }
            break;
        }
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->status);
        if ((c->status == 503 || c->status == 429) && attempt < 20) {
            double wait = c->retry_after > 0 ? c->retry_after : 0.2;
            if (wait > 5)
                wait = 5;
            if (now_s() + wait < deadline) {
                sleep_s(wait);
                continue;
            }
        }
        break;
    }
    cl_free(url);
    return status;
}

/* Parses the last response body as JSON (NULL and a message on failure). */
static json_t *body_json(client *c)
{
    json_t *j = NULL;
    char err[256];
    if (cl_json_parse(c->body ? c->body : "", c->len, MAX_BODY, &j, err, sizeof err) < 0) {
        fprintf(stderr, "cledger: the server's answer (HTTP %ld) is not valid JSON: %s\n",
                c->status, err);
        return NULL;
    }
    return j;
}

/* Reports an HTTP error status: "cledger: <status> <code>: <message>"; returns exit status 1. */
static int http_error(client *c)
{
    json_t *j = NULL;
    const char *code = NULL, *msg = NULL;
    char err[64];
    if (c->len > 0 && cl_json_parse(c->body, c->len, MAX_BODY, &j, err, sizeof err) == CL_OK) {
        json_t *e = json_object_get(j, "error");
        if (json_is_object(e)) {
            code = json_string_value(json_object_get(e, "code"));
            msg = json_string_value(json_object_get(e, "message"));
        }
    }
    char ec[200], em[600];
    if (code != NULL || msg != NULL) {
        fprintf(stderr, "cledger: %ld %s: %s\n", c->status, code ? REPLY_ESC(code, ec) : "Error",
                msg ? REPLY_ESC(msg, em) : "");
    } else {
        fprintf(stderr, "cledger: %ld HTTP error: %s\n", c->status,
                c->len > 0 ? reply_esc(c->body, c->len, em, 260) : "(no body)");
    }
    if (c->status == 401)
        fprintf(stderr, "  (is --cert a registered user of this ledger?)\n");
    if (c->json && j != NULL) /* JSON only: raw control bytes cannot be in a body that parsed */
        printf("%s\n", c->body);
    json_decref(j);
    return CLEDGER_EXIT_INVALID;
}

/* The api-version to send: --api-version, else the route's default. */
static const char *api(const client_opts *o, const char *dflt)
{
    return o->api_version ? o->api_version : dflt;
}

/* Builds "/prefix<enc(id)>suffix?api-version=..." into a heap string. */
static char *route(client *c, const char *prefix, const char *id, const char *suffix,
                   const char *apiv, const char *query_extra)
{
    char *eid = id ? enc(c, id) : NULL;
    char *eapi = enc(c, apiv);
    if ((id && eid == NULL) || eapi == NULL) {
        curl_free(eid);
        curl_free(eapi);
        return NULL;
    }
    size_t n = strlen(prefix) + (eid ? strlen(eid) : 0) + strlen(suffix) + strlen(eapi) +
               (query_extra ? strlen(query_extra) : 0) + 32;
    char *p = cl_malloc(n);
    if (p != NULL)
        snprintf(p, n, "%s%s%s?api-version=%s%s", prefix, eid ? eid : "", suffix, eapi,
                 query_extra ? query_extra : "");
    curl_free(eid);
    curl_free(eapi);
    return p;
}

/* "&collectionId=<enc>" or "" (heap). */
static char *collection_query(client *c, const char *coll)
{
    if (coll == NULL)
        return cl_strdup("");
    char *e = enc(c, coll);
    if (e == NULL)
        return NULL;
    size_t n = strlen(e) + 16;
    char *q = cl_malloc(n);
    if (q != NULL)
        snprintf(q, n, "&collectionId=%s", e);
    curl_free(e);
    return q;
}

/* GET a route and parse the JSON answer; *out NULL on error. Returns the exit status. */
static int get_json(client *c, const char *path, json_t **out)
{
    *out = NULL;
    int st = http(c, "GET", path, NULL, 0, 0);
    if (st != CLEDGER_EXIT_OK)
        return st;
    if (c->status != 200)
        return http_error(c);
    *out = body_json(c);
    return *out ? CLEDGER_EXIT_OK : CLEDGER_EXIT_INVALID;
}

static const char *jstr(const json_t *j, const char *key)
{
    return json_string_value(json_object_get(j, key));
}

/* ---- commands ------------------------------------------------------------------------------ */

/* Polls /status until Committed. Returns exit status; *final (may be NULL) gets the last body. */
static int wait_committed(client *c, const client_opts *o, const char *txid, json_t **final)
{
    char *path = route(c, "/app/transactions/", txid, "/status", api(o, API_GA), NULL);
    if (path == NULL)
        return fail(CLEDGER_EXIT_USAGE, "out of memory");
    double deadline = now_s() + o->timeout, delay = 0.02;
    int not_found = 0, st;
    char last[64] = "unknown"; /* the last state seen, escaped: it outlives the answer */
    json_t *j = NULL;
    for (;;) {
        json_decref(j);
        j = NULL;
        st = http(c, "GET", path, NULL, 0, 0);
        if (st != CLEDGER_EXIT_OK)
            break;
        if (c->status == 404 && not_found < 3 && c->body != NULL &&
            strstr(c->body, "TransactionNotFound") != NULL) {
            not_found++; /* lost stickiness on a multi-node ledger: tolerated like the SDK */
            snprintf(last, sizeof last, "TransactionNotFound");
        } else if (c->status != 200) {
            st = http_error(c);
            break;
        } else {
            j = body_json(c);
            if (j == NULL) {
                st = CLEDGER_EXIT_INVALID;
                break;
            }
            const char *s = jstr(j, "state");
            REPLY_ESC(s ? s : "unknown", last);
            if (s != NULL && strcmp(s, "Committed") == 0)
                break;
            if (s == NULL || strcmp(s, "Pending") != 0) {
                st = fail(CLEDGER_EXIT_INVALID, "unexpected transaction state '%s'", last);
                break;
            }
        }
        if (now_s() + delay > deadline) {
            st = fail(CLEDGER_EXIT_INVALID,
                      "timed out after %.0f s waiting for %s to commit "
                      "(last state: %s)",
                      o->timeout, txid, last);
            break;
        }
        sleep_s(delay);
        delay = delay * 2 > 0.5 ? 0.5 : delay * 2;
    }
    cl_free(path);
    if (st == CLEDGER_EXIT_OK && final != NULL)
        *final = j;
    else
        json_decref(j);
    return st;
}

/* POST one entry; the transaction id goes to txid_out. */
static int post_entry(client *c, const client_opts *o, const char *path, const char *contents,
                      size_t len, char *txid_out, size_t txcap, json_t **result)
{
    json_t *s = json_stringn(contents, len);
    if (s == NULL)
        return fail(CLEDGER_EXIT_USAGE, "contents must be valid UTF-8 text");
    json_t *b = json_object();
    if (b == NULL || json_object_set_new(b, "contents", s) < 0) {
        json_decref(b);
        return fail(CLEDGER_EXIT_USAGE, "out of memory");
    }
    char *body = cl_json_dump(b);
    json_decref(b);
    if (body == NULL)
        return fail(CLEDGER_EXIT_USAGE, "out of memory");
    int st = http(c, "POST", path, body, strlen(body), 0);
    cl_free(body);
    if (st != CLEDGER_EXIT_OK)
        return st;
    if (c->status != 200)
        return http_error(c);
    if (c->txid[0] == '\0' && !c->txid_long)
        return fail(CLEDGER_EXIT_INVALID, "the server did not return x-ms-ccf-transaction-id");
    uint64_t view, seqno;
    char e[200];
    if (c->txid_long || cl_txid_parse(c->txid, strlen(c->txid), &view, &seqno) < 0)
        return fail(CLEDGER_EXIT_INVALID,
                    "the server returned an invalid transaction id '%s' (x-ms-ccf-transaction-id)",
                    c->txid_long ? "(too long)" : REPLY_ESC(c->txid, e));
    snprintf(txid_out, txcap, "%s", c->txid);
    if (result != NULL) {
        *result = body_json(c);
        if (*result == NULL)
            return CLEDGER_EXIT_INVALID;
    }
    (void)o;
    return CLEDGER_EXIT_OK;
}

static int cmd_put(client *c, const client_opts *o)
{
    if ((o->batch != NULL) == (o->npos == 1))
        return usage_error(o->batch
                               ? "put --batch takes no CONTENTS argument"
                               : "put needs CONTENTS (or - for standard input, or --batch FILE)");
    char *cq = collection_query(c, o->collection);
    char *path = cq ? route(c, "/app/transactions", NULL, "", api(o, API_GA), cq) : NULL;
    cl_free(cq);
    if (path == NULL)
        return fail(CLEDGER_EXIT_USAGE, "out of memory");
    char txid[80] = "";
    int st;
    json_t *res = NULL, *ids = NULL;
    char *data = NULL;
    size_t dlen = 0;
    if (o->batch == NULL) {
        const char *contents = o->pos[0];
        size_t clen = strlen(contents);
        if (strcmp(contents, "-") == 0) {
            st = read_input("-", MAX_FILE, &data, &dlen);
            if (st != CLEDGER_EXIT_OK)
                goto out;
            if (strlen(data) != dlen) {
                st = fail(CLEDGER_EXIT_USAGE, "contents must be text (NUL byte in input)");
                goto out;
            }
            contents = data;
            clen = dlen;
        }
        st = post_entry(c, o, path, contents, clen, txid, sizeof txid, &res);
        if (st != CLEDGER_EXIT_OK)
            goto out;
    } else {
        st = read_input(o->batch, MAX_FILE, &data, &dlen);
        if (st != CLEDGER_EXIT_OK)
            goto out;
        ids = json_array();
        if (ids == NULL) {
            st = fail(CLEDGER_EXIT_USAGE, "out of memory");
            goto out;
        }
        size_t lineno = 0;
        for (char *p = data; p < data + dlen;) {
            char *nl = memchr(p, '\n', (size_t)(data + dlen - p));
            size_t n = nl ? (size_t)(nl - p) : (size_t)(data + dlen - p);
            lineno++;
            if (n > 0) {
                if (memchr(p, '\0', n) != NULL) {
                    st = fail(CLEDGER_EXIT_USAGE, "%s:%zu: NUL byte in line", o->batch, lineno);
                    goto out;
                }
                json_t *one = NULL;
                st = post_entry(c, o, path, p, n, txid, sizeof txid, &one);
                if (st != CLEDGER_EXIT_OK) {
                    fprintf(stderr, "cledger: stopped at %s line %zu (%zu entries written)\n",
                            o->batch, lineno, json_array_size(ids));
                    goto out;
                }
                if (res == NULL)
                    res = one;
                else
                    json_decref(one);
                if (json_array_append_new(ids, json_string(txid)) < 0) {
                    st = fail(CLEDGER_EXIT_USAGE, "out of memory");
                    goto out;
                }
                if (!o->json)
                    printf("%s\n", txid);
            }
            p += n + 1;
        }
        if (json_array_size(ids) == 0) {
            st = fail(CLEDGER_EXIT_USAGE, "%s contains no entries", o->batch);
            goto out;
        }
    }
    if (o->wait) {
        /* A later transaction commits only after every earlier one: waiting for the last is
         * enough. */
        st = wait_committed(c, o, txid, NULL);
        if (st != CLEDGER_EXIT_OK)
            goto out;
    }
    if (o->json) {
        if (ids != NULL) {
            json_object_set(res, "transactionIds", ids);
        } else {
            json_object_set_new(res, "transactionId", json_string(txid));
        }
        if (o->wait)
            json_object_set_new(res, "state", json_string("Committed"));
        st = print_json(res);
    } else if (ids == NULL) {
        printf("%s\n", txid);
    }
out:
    json_decref(res);
    json_decref(ids);
    cl_free(data);
    cl_free(path);
    return st;
}

/* GET a transaction route until state == Ready. */
static int poll_ready(client *c, const client_opts *o, const char *path, json_t **out)
{
    double deadline = now_s() + o->timeout, delay = 0.02;
    for (;;) {
        json_t *j;
        int st = get_json(c, path, &j);
        if (st != CLEDGER_EXIT_OK)
            return st;
        const char *s = jstr(j, "state");
        if (s != NULL && strcmp(s, "Ready") == 0) {
            *out = j;
            return CLEDGER_EXIT_OK;
        }
        if (s == NULL || strcmp(s, "Loading") != 0) {
            char e[200];
            st = fail(CLEDGER_EXIT_INVALID, "unexpected state '%s' in the answer", REPLY_ESC(s, e));
            json_decref(j); /* after the message: s is one of its strings */
            return st;
        }
        json_decref(j);
        if (now_s() + delay > deadline)
            return fail(CLEDGER_EXIT_INVALID,
                        "timed out after %.0f s: the server still answers Loading (is the "
                        "transaction committed?)",
                        o->timeout);
        sleep_s(delay);
        delay = delay * 2 > 0.5 ? 0.5 : delay * 2;
    }
}

static int cmd_get(client *c, const client_opts *o)
{
    char *cq = collection_query(c, o->collection);
    char *path = cq ? route(c, "/app/transactions/", o->pos[0], "", api(o, API_GA), cq) : NULL;
    cl_free(cq);
    if (path == NULL)
        return fail(CLEDGER_EXIT_USAGE, "out of memory");
    json_t *j = NULL;
    int st = poll_ready(c, o, path, &j);
    cl_free(path);
    if (st != CLEDGER_EXIT_OK)
        return st;
    if (o->json) {
        printf("%s\n", c->body);
    } else {
        json_t *e = json_object_get(j, "entry");
        json_t *cont = json_object_get(e, "contents");
        if (!json_is_string(cont)) {
            json_decref(j);
            return fail(CLEDGER_EXIT_INVALID, "the answer has no entry.contents");
        }
        fwrite(json_string_value(cont), 1, json_string_length(cont), stdout);
        putchar('\n');
    }
    json_decref(j);
    return CLEDGER_EXIT_OK;
}

/* Whether p is a path and query as RFC 3986 writes them: printable ASCII other than space,
 * '"', '#', '<', '>', '\\', '^', '`', '{', '|', '}', and '%' only before two hex digits. */
static int path_chars_ok(const char *p)
{
    for (; *p != '\0'; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch <= 0x20 || ch >= 0x7F || strchr("\"#<>\\^`{|}", ch) != NULL)
            return 0;
        if (ch == '%' && !(isxdigit((unsigned char)p[1]) && isxdigit((unsigned char)p[2])))
            return 0;
    }
    return 1;
}

/* The next page's path from a nextLink: relative ("/app/...") or absolute on the same endpoint,
 * of URL characters only. NULL otherwise (*bad set when it is the characters). */
static char *next_path(client *c, const char *link, int *bad)
{
    const char *p = NULL;
    size_t el = strlen(c->endpoint);
    if (link[0] == '/')
        p = link;
    else if (strncmp(link, c->endpoint, el) == 0 && link[el] == '/')
        p = link + el;
    *bad = p != NULL && !path_chars_ok(p);
    return p != NULL && !*bad ? cl_strdup(p) : NULL;
}

/* Paging through nextLink (list, user list). A page that does not move on (state Loading, the
 * same link again, or the same fromTransactionId) is asked for again every 0.1 s for at most
 * --timeout: cledgerd answers so while the end of a range waits for its commit. A link whose
 * fromTransactionId goes back is refused, and links without one are followed MAX_UNORDERED_PAGES
 * times at most, so no server can keep the client in a cycle. */
typedef struct {
    char *path;         /* the page to fetch (heap) */
    uint64_t from;      /* the seqno of its fromTransactionId, 0: none */
    long unordered;     /* pages followed without a fromTransactionId */
    double stuck_since; /* when the pages stopped moving on, 0: they move */
} pager;

/* After a page: link is its nextLink (NULL or "" at the end), loading whether it said Loading.
 * *more is 1 when p->path is to be fetched next. Returns the exit status (a message printed). */
static int pager_next(client *c, const client_opts *o, pager *p, const char *link, int loading,
                      int *more)
{
    *more = 0;
    if (link == NULL || *link == '\0')
        return CLEDGER_EXIT_OK;
    int bad;
    char *np = next_path(c, link, &bad);
    if (np == NULL && bad)
        return fail(CLEDGER_EXIT_INVALID, "nextLink is not a URL path; not followed");
    if (np == NULL)
        return fail(CLEDGER_EXIT_INVALID, "nextLink leaves the endpoint; not followed");
    uint64_t from = reply_link_from(np);
    if (from != 0 && p->from != 0 && from < p->from) {
        cl_free(np);
        return fail(CLEDGER_EXIT_INVALID,
                    "nextLink goes back (fromTransactionId seqno %" PRIu64 " after %" PRIu64
                    "); not followed",
                    from, p->from);
    }
    if (from == 0 && ++p->unordered > MAX_UNORDERED_PAGES) {
        cl_free(np);
        return fail(CLEDGER_EXIT_INVALID,
                    "over %d pages whose nextLink has no fromTransactionId; not followed",
                    MAX_UNORDERED_PAGES);
    }
    int stuck = loading || strcmp(np, p->path) == 0 || (from != 0 && from == p->from);
    cl_free(p->path);
    p->path = np;
    p->from = from;
    if (!stuck) {
        p->stuck_since = 0;
        *more = 1;
        return CLEDGER_EXIT_OK;
    }
    if (p->stuck_since == 0) {
        p->stuck_since = now_s();
    } else if (now_s() - p->stuck_since > o->timeout) {
        return fail(CLEDGER_EXIT_INVALID, "timed out after %.0f s: %s", o->timeout,
                    loading ? "the listing stays Loading"
                            : "the listing makes no progress (nextLink repeats the page)");
    }
    sleep_s(0.1);
    *more = 1;
    return CLEDGER_EXIT_OK;
}

/* A listing's check of element i of a page's array (a list entry, a user): returns the exit
 * status (a message printed when it is not OK). */
typedef int (*page_check_fn)(size_t i, const json_t *item);

/* A listing's human output for one checked element: its line. */
typedef void (*page_print_fn)(const json_t *item);

/* The --json document of a listing, printed as the pages arrive so that at most one page is held
 * in memory: `open`, then the elements of each page once the whole page (its array, every element
 * and its nextLink) has been checked, each dumped as cl_json_dump does and separated by ",", then
 * `close` when the listing is complete. The bytes are those of print_json on the whole document.
 * The opening waits for the first checked page, so a failure on the first page prints what any
 * failed command prints (nothing, or the server's JSON error body). After it, a failure leaves
 * the document unterminated: no closing, no newline and no error body, so standard output is a
 * strict prefix of the document (never valid JSON) and the exit status tells the failure. */
typedef struct {
    const char *open;  /* up to the array's "[" */
    const char *close; /* from the array's "]", newline included */
    int opened;
    size_t printed; /* elements printed */
} json_stream;

/* Standard output written out now; a write that failed (a full disk, a closed pipe) is exit 2. */
static int stdout_flush(void)
{
    if (fflush(stdout) != 0 || ferror(stdout))
        return fail(CLEDGER_EXIT_USAGE, "cannot write to standard output: %s", strerror(errno));
    return CLEDGER_EXIT_OK;
}

static void json_stream_open(client *c, json_stream *js)
{
    if (js->opened)
        return;
    fputs(js->open, stdout);
    js->opened = 1;
    c->json = 0; /* a later error body would land inside the document */
}

/* Prints the elements of a checked page (walk_pages flushes). */
static int json_stream_page(client *c, json_stream *js, const json_t *items)
{
    json_stream_open(c, js);
    for (size_t i = 0; i < json_array_size(items); i++) {
        char *s = cl_json_dump(json_array_get(items, i));
        if (s == NULL)
            return fail(CLEDGER_EXIT_USAGE, "out of memory");
        if (js->printed++ > 0)
            putchar(',');
        fputs(s, stdout);
        cl_free(s);
    }
    return CLEDGER_EXIT_OK;
}

static void json_stream_close(client *c, json_stream *js)
{
    json_stream_open(c, js);
    fputs(js->close, stdout);
}

/* Fetches path (taken) and every page its nextLinks lead to (pager_next). A page is printed once
 * the whole of it has been checked (its array `field`, every element by check, its nextLink): with
 * js (--json) as part of the document (json_stream, closed at the end), else a line per element
 * (print). Standard output is flushed after every page, so what a page printed is out and an
 * output that cannot be written stops the listing there. Returns the exit status. */
static int walk_pages(client *c, const client_opts *o, char *path, const char *field,
                      page_check_fn check, page_print_fn print, json_stream *js)
{
    pager pg = {path, reply_link_from(path), 0, 0};
    int st = CLEDGER_EXIT_OK;
    for (int more = 1; more && st == CLEDGER_EXIT_OK;) {
        json_t *j;
        st = get_json(c, pg.path, &j);
        if (st != CLEDGER_EXIT_OK)
            break;
        json_t *items = json_object_get(j, field);
        if (!json_is_array(items))
            st = fail(CLEDGER_EXIT_INVALID, "the page has no \"%s\" array", field);
        for (size_t i = 0; st == CLEDGER_EXIT_OK && i < json_array_size(items); i++)
            st = check(i, json_array_get(items, i));
        if (st == CLEDGER_EXIT_OK) {
            const char *state = jstr(j, "state");
            st = pager_next(c, o, &pg, jstr(j, "nextLink"),
                            state != NULL && strcmp(state, "Loading") == 0, &more);
        }
        if (st == CLEDGER_EXIT_OK && js != NULL)
            st = json_stream_page(c, js, items);
        else if (st == CLEDGER_EXIT_OK)
            for (size_t i = 0; i < json_array_size(items); i++)
                print(json_array_get(items, i));
        if (st == CLEDGER_EXIT_OK)
            st = stdout_flush();
        json_decref(j);
    }
    cl_free(pg.path);
    if (st == CLEDGER_EXIT_OK && js != NULL) {
        json_stream_close(c, js);
        st = stdout_flush();
    }
    return st;
}

/* A list entry: it must have a transactionId. */
static int list_check(size_t i, const json_t *e)
{
    if (!json_is_string(json_object_get(e, "transactionId")))
        return fail(CLEDGER_EXIT_INVALID, "entry %zu of the page has no transactionId", i);
    return CLEDGER_EXIT_OK;
}

/* A checked list entry as "txid<TAB>contents", escaped. */
static void list_print(const json_t *e)
{
    json_t *tx = json_object_get(e, "transactionId");
    json_t *cont = json_object_get(e, "contents");
    print_escaped(json_string_value(tx), json_string_length(tx));
    putchar('\t');
    if (json_is_string(cont))
        print_escaped(json_string_value(cont), json_string_length(cont));
    putchar('\n');
}

static int cmd_list(client *c, const client_opts *o)
{
    char *q = collection_query(c, o->collection);
    const char *names[2] = {"&fromTransactionId=", "&toTransactionId="};
    const char *vals[2] = {o->from, o->to};
    for (int k = 0; k < 2 && q != NULL; k++) {
        if (vals[k] == NULL)
            continue;
        char *e = enc(c, vals[k]);
        size_t n = strlen(q) + strlen(names[k]) + (e ? strlen(e) : 0) + 1;
        char *nq = e ? cl_malloc(n) : NULL;
        if (nq != NULL)
            snprintf(nq, n, "%s%s%s", q, names[k], e);
        curl_free(e);
        cl_free(q);
        q = nq;
    }
    char *path = q ? route(c, "/app/transactions", NULL, "", api(o, API_GA), q) : NULL;
    cl_free(q);
    if (path == NULL)
        return fail(CLEDGER_EXIT_USAGE, "out of memory");
    /* --json: {"entries":[...every page...],"state":"Ready"} (keys sorted, as print_json) */
    json_stream js = {"{\"entries\":[", "],\"state\":\"Ready\"}\n", 0, 0};
    return walk_pages(c, o, path, "entries", list_check, list_print, o->json ? &js : NULL);
}

static int cmd_status(client *c, const client_opts *o)
{
    char *path = route(c, "/app/transactions/", o->pos[0], "/status", api(o, API_GA), NULL);
    if (path == NULL)
        return fail(CLEDGER_EXIT_USAGE, "out of memory");
    json_t *j;
    int st = get_json(c, path, &j);
    cl_free(path);
    if (st != CLEDGER_EXIT_OK)
        return st;
    if (o->json) {
        printf("%s\n", c->body);
    } else {
        json_t *sv = json_object_get(j, "state");
        if (json_is_string(sv))
            print_escaped(json_string_value(sv), json_string_length(sv));
        else
            fputs("unknown", stdout);
        putchar('\n');
    }
    json_decref(j);
    return CLEDGER_EXIT_OK;
}

static int cmd_wait(client *c, const client_opts *o)
{
    json_t *j = NULL;
    int st = wait_committed(c, o, o->pos[0], &j);
    if (st == CLEDGER_EXIT_OK) {
        if (o->json)
            st = print_json(j);
        else
            printf("Committed\n");
    }
    json_decref(j);
    return st;
}

/* Verifies a Ready receipt envelope (same checks as `cledger verify-receipt`). */
static int verify_envelope(const client_opts *o, const char *txid, const char *text, size_t len)
{
    char *pem = NULL;
    size_t pem_len = 0;
    int st = read_input(o->service_cert, CL_RECEIPT_MAX_PEM, &pem, &pem_len);
    if (st != CLEDGER_EXIT_OK)
        return st;
    cl_receipt r = CL_RECEIPT_INIT;
    json_t *claims = NULL;
    cl_receipt_verdict v;
    char err[256];
    int rc = cl_receipt_parse(text, len, &r, &claims, err, sizeof err);
    if (rc < 0) {
        st = fail(CLEDGER_EXIT_INVALID, "receipt INVALID: shape: %s", err);
        goto out;
    }
    rc = cl_receipt_verify_pem(&r, pem, pem_len, claims, &v);
    if (rc < 0) {
        st = fail(CLEDGER_EXIT_INVALID, "receipt INVALID: %s: %s", cl_receipt_step_name(v.step),
                  v.message);
        goto out;
    }
    /* The receipt must be about the transaction asked for: "ce:<txid>:<secret>". */
    size_t tl = strlen(txid);
    if ((r.transaction_id != NULL && strcmp(r.transaction_id, txid) != 0) ||
        r.commit_evidence == NULL || strncmp(r.commit_evidence, "ce:", 3) != 0 ||
        strncmp(r.commit_evidence + 3, txid, tl) != 0 || r.commit_evidence[3 + tl] != ':') {
        st = fail(CLEDGER_EXIT_INVALID, "receipt INVALID: it is not a receipt of transaction %s",
                  txid);
        goto out;
    }
    char root[65], node[65];
    cl_hex_encode(v.root, 32, root);
    cl_hex_encode(v.node_id, 32, node);
    fprintf(stderr, "receipt valid: transaction %s, root %s, node %s%s\n", txid, root, node,
            claims ? ", application claims checked" : "");
    st = CLEDGER_EXIT_OK;
out:
    cl_receipt_clear(&r);
    json_decref(claims);
    cl_free(pem);
    return st;
}

static int cmd_receipt(client *c, const client_opts *o)
{
    char *path = route(c, "/app/transactions/", o->pos[0], "/receipt", api(o, API_RECEIPT), NULL);
    if (path == NULL)
        return fail(CLEDGER_EXIT_USAGE, "out of memory");
    json_t *j = NULL;
    int st = poll_ready(c, o, path, &j);
    cl_free(path);
    if (st != CLEDGER_EXIT_OK)
        return st;
    json_decref(j);
    /* c->body still holds the Ready envelope exactly as served. With --verify it is checked
     * first: an invalid receipt is neither printed nor written (a file left behind would be
     * taken for a verified one). */
    if (o->verify && (st = verify_envelope(o, o->pos[0], c->body, c->len)) != CLEDGER_EXIT_OK)
        return st;
    if (o->out != NULL)
        return write_output(o->out, c->body, c->len);
    printf("%s\n", c->body);
    fflush(stdout);
    return CLEDGER_EXIT_OK;
}

static const char *const ROLES[] = {"Administrator", "Contributor", "Reader"};

/* Prints a user (reply_is_user) as "id<TAB>Role[,Role...]", escaped. */
static void print_user(const json_t *u)
{
    json_t *id = json_object_get(u, "userId");
    print_escaped(json_string_value(id), json_string_length(id));
    putchar('\t');
    json_t *roles = json_object_get(u, "assignedRoles");
    size_t i;
    json_t *r;
    if (roles == NULL) {
        r = json_object_get(u, "assignedRole");
        print_escaped(json_string_value(r), json_string_length(r));
    }
    json_array_foreach(roles, i, r)
    {
        if (i > 0)
            putchar(',');
        print_escaped(json_string_value(r), json_string_length(r));
    }
    putchar('\n');
}

/* A user id argument: an existing file is read as a PEM certificate (its fingerprint). */
static int user_id(const char *arg, char *out, size_t cap)
{
    struct stat sb;
    size_t al = strlen(arg);
    if (stat(arg, &sb) == 0 && S_ISREG(sb.st_mode)) {
        char *pem = NULL;
        size_t len = 0;
        int st = read_input(arg, CL_RECEIPT_MAX_PEM, &pem, &len);
        if (st != CLEDGER_EXIT_OK)
            return st;
        char fp[96];
        int rc = pem_fingerprint(pem, len, fp);
        cl_free(pem);
        if (rc < 0)
            return fail(CLEDGER_EXIT_USAGE, "%s is not a PEM certificate", arg);
        snprintf(out, cap, "%s", fp);
        return CLEDGER_EXIT_OK;
    }
    if (al > 4 && (strcmp(arg + al - 4, ".pem") == 0 || strcmp(arg + al - 4, ".crt") == 0))
        return fail(CLEDGER_EXIT_USAGE, "cannot read certificate %s: %s", arg, strerror(ENOENT));
    if (al == 0 || al >= cap)
        return usage_error("user id must be 1-256 bytes");
    snprintf(out, cap, "%s", arg);
    return CLEDGER_EXIT_OK;
}

/* A user of a ledgerUsers page (reply_is_user). */
static int user_check(size_t i, const json_t *u)
{
    if (!reply_is_user(u))
        return fail(CLEDGER_EXIT_INVALID, "ledgerUsers[%zu] of the page is not a user", i);
    return CLEDGER_EXIT_OK;
}

static int cmd_user(client *c, const client_opts *o)
{
    const char *sub = o->pos[0];
    int is_add = strcmp(sub, "add") == 0, is_get = strcmp(sub, "get") == 0,
        is_rm = strcmp(sub, "rm") == 0 || strcmp(sub, "remove") == 0,
        is_list = strcmp(sub, "list") == 0;
    if (!is_add && !is_get && !is_rm && !is_list)
        return usage_error("unknown user command '%s' (add, get, rm, list)", sub);
    if (is_list != (o->npos == 1))
        return usage_error(is_list ? "user list takes no argument" : "user %s needs an ID", sub);
    if (is_add != (o->nroles > 0))
        return usage_error(is_add ? "user add needs --role Reader|Contributor|Administrator"
                                  : "--role is only for user add");
    if (is_list) {
        char *path = route(c, "/app/ledgerUsers", NULL, "", api(o, API_USERS), NULL);
        if (path == NULL)
            return fail(CLEDGER_EXIT_USAGE, "out of memory");
        json_stream js = {"{\"ledgerUsers\":[", "]}\n", 0, 0}; /* ...every page... */
        return walk_pages(c, o, path, "ledgerUsers", user_check, print_user, o->json ? &js : NULL);
    }

    char id[300];
    int st = user_id(o->pos[1], id, sizeof id);
    if (st != CLEDGER_EXIT_OK)
        return st;
    char *path = NULL;
    json_t *j = NULL;
    if (is_add) {
        const char *roles[8];
        for (int k = 0; k < o->nroles; k++) {
            roles[k] = NULL;
            for (size_t r = 0; r < sizeof ROLES / sizeof ROLES[0]; r++)
                if (strcasecmp(o->roles[k], ROLES[r]) == 0)
                    roles[k] = ROLES[r];
            if (roles[k] == NULL)
                return usage_error("unknown role '%s' (Reader, Contributor, Administrator)",
                                   o->roles[k]);
        }
        json_t *b;
        if (o->nroles == 1) {
            path = route(c, "/app/users/", id, "", api(o, API_GA), NULL);
            b = json_pack("{s:s}", "assignedRole", roles[0]);
        } else {
            path = route(c, "/app/ledgerUsers/", id, "", api(o, API_USERS), NULL);
            json_t *arr = json_array();
            for (int k = 0; arr != NULL && k < o->nroles; k++)
                json_array_append_new(arr, json_string(roles[k]));
            b = arr ? json_pack("{s:o}", "assignedRoles", arr) : NULL;
        }
        char *body = b ? cl_json_dump(b) : NULL;
        json_decref(b);
        if (path == NULL || body == NULL) {
            cl_free(path);
            cl_free(body);
            return fail(CLEDGER_EXIT_USAGE, "out of memory");
        }
        st = http(c, "PATCH", path, body, strlen(body), 1);
        cl_free(body);
    } else if (is_get) {
        path = route(c, "/app/ledgerUsers/", id, "", api(o, API_USERS), NULL);
        st = path ? http(c, "GET", path, NULL, 0, 0) : fail(CLEDGER_EXIT_USAGE, "out of memory");
    } else {
        path = route(c, "/app/users/", id, "", api(o, API_GA), NULL);
        st = path ? http(c, "DELETE", path, NULL, 0, 0) : fail(CLEDGER_EXIT_USAGE, "out of memory");
    }
    cl_free(path);
    if (st != CLEDGER_EXIT_OK)
        return st;
    if (c->status != (is_rm ? 204 : 200))
        return http_error(c);
    if (is_rm) {
        if (o->json) {
            json_t *w =
                json_pack("{s:s,s:b,s:s}", "userId", id, "removed", 1, "transactionId", c->txid);
            st = w ? print_json(w) : fail(CLEDGER_EXIT_USAGE, "out of memory");
            json_decref(w);
        } else {
            printf("removed %s\n", id);
        }
        return st;
    }
    j = body_json(c);
    if (j == NULL)
        return CLEDGER_EXIT_INVALID;
    if (!reply_is_user(j)) {
        json_decref(j);
        return fail(CLEDGER_EXIT_INVALID, "the answer is not a user (userId and assignedRole[s])");
    }
    if (o->json) {
        if (is_add)
            json_object_set_new(j, "transactionId", json_string(c->txid));
        st = print_json(j);
    } else {
        print_user(j);
    }
    json_decref(j);
    return st;
}

static int cmd_identity(client *c, const client_opts *o)
{
    const char *lid = o->ledger_id ? o->ledger_id : DEFAULT_LEDGER_ID;
    char *path = route(c, "/ledgerIdentity/", lid, "", api(o, API_GA), NULL);
    if (path == NULL)
        return fail(CLEDGER_EXIT_USAGE, "out of memory");
    int st = http(c, "GET", path, NULL, 0, 0);
    cl_free(path);
    if (st != CLEDGER_EXIT_OK)
        return st;
    if (c->status != 200)
        return http_error(c);
    /* The spec's examples end the PEM with "\n\u0000", which the strict parser refuses: such
     * an answer is read again without NUL escapes that end a string. */
    json_t *j = NULL;
    if (cl_json_parse(c->body ? c->body : "", c->len, MAX_BODY, &j, NULL, 0) < 0) {
        c->len = reply_drop_final_nul_escapes(c->body, c->len);
        if ((j = body_json(c)) == NULL)
            return CLEDGER_EXIT_INVALID;
    }
    const char *pem = jstr(j, "ledgerTlsCertificate");
    char fp[96];
    size_t pl = pem ? strlen(pem) : 0;
    if (!reply_is_certificate(pem, pl) || pem_fingerprint(pem, pl, fp) < 0) {
        json_decref(j);
        return fail(CLEDGER_EXIT_INVALID, "the answer has no usable ledgerTlsCertificate");
    }
    if (o->insecure && o->service_cert == NULL)
        fprintf(stderr,
                "cledger: WARNING: the server was NOT authenticated (--insecure-first-contact).\n"
                "  Check this SHA-256 fingerprint of the service certificate out of band before "
                "trusting it:\n  %s\n",
                fp);
    if (o->service_cert != NULL) {
        char *known = NULL;
        size_t kl = 0;
        char kfp[96];
        if (read_input(o->service_cert, CL_RECEIPT_MAX_PEM, &known, &kl) == CLEDGER_EXIT_OK &&
            pem_fingerprint(known, kl, kfp) == 0 && strcmp(kfp, fp) != 0)
            fprintf(stderr,
                    "cledger: note: the ledger's identity (%s) differs from --service-cert %s\n",
                    fp, o->service_cert);
        cl_free(known);
    }
    if (o->save != NULL) {
        st = write_output(o->save, pem, pl);
        if (st == CLEDGER_EXIT_OK && !o->json)
            printf("saved the service certificate of ledger %s to %s\nSHA-256 %s\n", lid, o->save,
                   fp);
    } else if (!o->json) {
        fwrite(pem, 1, pl, stdout);
        if (pl == 0 || pem[pl - 1] != '\n')
            putchar('\n');
    }
    if (st == CLEDGER_EXIT_OK && o->json)
        printf("%s\n", c->body);
    json_decref(j);
    return st;
}

/* ---- entry points -------------------------------------------------------------------------- */

static int run(int argc, char **argv, int first, const client_cmd *cmd)
{
    client_opts o;
    memset(&o, 0, sizeof o);
    o.cmd = cmd;
    o.timeout = DEFAULT_TIMEOUT;
    cl_json_init();
    int st = parse_args(argc, argv, first, &o);
    if (st < 0)
        return CLEDGER_EXIT_OK; /* --help */
    if (st != CLEDGER_EXIT_OK)
        return st;
    client c;
    memset(&c, 0, sizeof c);
    if (o.cmd == NULL) {
        st = usage_error("no command given");
        goto out;
    }
    int extra = o.given & ~o.cmd->opts;
    if (extra) {
        for (size_t k = 0; k < sizeof OPTS / sizeof OPTS[0]; k++)
            if (OPTS[k].bit & extra) {
                st = usage_error("%s does not apply to `cledger %s`", OPTS[k].name, o.cmd->name);
                goto out;
            }
    }
    if (o.npos < o.cmd->min_args || o.npos > o.cmd->max_args) {
        st = usage_error("usage: cledger %s", o.cmd->usage);
        goto out;
    }
    st = load_profile(&o);
    if (st != CLEDGER_EXIT_OK)
        goto out;
    if (o.endpoint == NULL) {
        st = usage_error("no endpoint: give --endpoint URL or a profile (--profile FILE)");
        goto out;
    }
    int is_identity = strcmp(o.cmd->name, "identity") == 0;
    if ((o.cert == NULL) != (o.key == NULL)) {
        st = usage_error("--cert and --key go together");
        goto out;
    }
    if (!is_identity && o.cert == NULL) {
        st = usage_error("no client certificate: give --cert PEM --key PEM or a profile");
        goto out;
    }
    if (!is_identity && o.service_cert == NULL) {
        st = usage_error("no service certificate: give --service-cert PEM or a profile "
                         "(`cledger identity --insecure-first-contact --save FILE` fetches it)");
        goto out;
    }
    const char *files[3][2] = {
        {"service certificate", o.service_cert}, {"client certificate", o.cert}, {"key", o.key}};
    for (int k = 0; k < 3; k++) {
        if (files[k][1] != NULL && (st = file_readable(files[k][0], files[k][1])) != 0)
            goto out;
    }
    int insecure = is_identity && o.insecure && o.service_cert == NULL;
    st = client_init(&c, &o, o.service_cert, insecure);
    if (st != CLEDGER_EXIT_OK)
        goto out;
    const char *n = o.cmd->name;
    if (strcmp(n, "put") == 0)
        st = cmd_put(&c, &o);
    else if (strcmp(n, "get") == 0)
        st = cmd_get(&c, &o);
    else if (strcmp(n, "list") == 0)
        st = cmd_list(&c, &o);
    else if (strcmp(n, "status") == 0)
        st = cmd_status(&c, &o);
    else if (strcmp(n, "wait") == 0)
        st = cmd_wait(&c, &o);
    else if (strcmp(n, "receipt") == 0)
        st = cmd_receipt(&c, &o);
    else if (strcmp(n, "user") == 0)
        st = cmd_user(&c, &o);
    else
        st = cmd_identity(&c, &o);
out:
    client_free(&c);
    cl_free(o.prof_endpoint);
    cl_free(o.prof_service_cert);
    cl_free(o.prof_cert);
    cl_free(o.prof_key);
    cl_free(o.prof_ledger_id);
    if (st == CLEDGER_EXIT_OK)
        st = stdout_flush();
    else
        (void)fflush(stdout);
    return st;
}

int cmd_client(int argc, char **argv)
{
    const client_cmd *cmd = find_cmd(argv[0]);
    if (cmd == NULL)
        return usage_error("unknown command '%s'", argv[0]);
    current_cmd = cmd->name;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return fail(CLEDGER_EXIT_USAGE, "cannot initialise libcurl");
    int st = run(argc, argv, 1, cmd);
    curl_global_cleanup();
    return st;
}

int cmd_client_global(int argc, char **argv)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return fail(CLEDGER_EXIT_USAGE, "cannot initialise libcurl");
    int st = run(argc, argv, 1, NULL);
    curl_global_cleanup();
    return st;
}
