/*
 * store.c — durable policies, management certificates and change history (see store.h).
 */
#include "attest/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/codec.h"
#include "base/file.h"
#include "base/json.h"
#include "base/log.h"
#include "crypto/hash.h"

const char *const cl_atype_names[CL_ATYPE_COUNT] = {"SgxEnclave", "OpenEnclave", "SevSnpVm",
                                                    "TdxVm",      "Tpm",         "Virtual"};

#define MAX_STATE_FILE (8u << 20)
#define MAX_CERTS 100

int cl_atype_find(const char *name, size_t len)
{
    for (int k = 0; k < CL_ATYPE_COUNT; k++)
        if (strlen(cl_atype_names[k]) == len && strncasecmp(cl_atype_names[k], name, len) == 0)
            return k;
    return -1;
}

typedef struct {
    uint8_t *der;
    size_t len;
} cert_t;

struct cl_astore {
    char *dir;
    char *policy[CL_ATYPE_COUNT];
    cert_t *certs;
    size_t ncerts;
    int history_fd;
    uint64_t history_len;
};

static void errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int path_of(const cl_astore *s, const char *rel, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s", s->dir, rel);
    return n > 0 && (size_t)n < cap ? CL_OK : CL_EOVERFLOW;
}

/* Whole small state file (NUL-terminated, malloc-allocated: cl_free frees it); CL_ENOENT when
 * absent. */
static int read_small(const char *path, char **out, size_t *len)
{
    *out = cl_read_file(path, len);
    if (*out != NULL)
        return CL_OK;
    return errno == ENOENT ? CL_ENOENT : errno == ENOMEM ? CL_ENOMEM : CL_EIO;
}

static void free_certs(cert_t *c, size_t n)
{
    for (size_t k = 0; k < n; k++)
        cl_free(c[k].der);
    cl_free(c);
}

/* Parses {"certificates":[b64...]} or a bare array into a fresh vector. */
static int parse_cert_list(const json_t *arr, cert_t **out, size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    if (!json_is_array(arr) || json_array_size(arr) > MAX_CERTS) {
        errf(err, errlen, "%s%s", "certificates must be an array of at most 100 entries", "");
        return CL_EJSON;
    }
    size_t cnt = json_array_size(arr);
    cert_t *v = cl_calloc(cnt ? cnt : 1, sizeof *v);
    CL_ENSURE(v != NULL, CL_ENOMEM);
    for (size_t k = 0; k < cnt; k++) {
        const json_t *e = json_array_get(arr, k);
        int rc = json_is_string(e)
                     ? cl_b64_decode_alloc(json_string_value(e), json_string_length(e), &v[k].der,
                                           &v[k].len, CL_B64_STD)
                     : CL_EJSON;
        if (rc < 0 || v[k].len == 0) {
            errf(err, errlen, "%s%s", "certificate entry is not standard base64 DER", "");
            free_certs(v, cnt);
            return rc < 0 ? rc : CL_EJSON;
        }
    }
    *out = v;
    *n = cnt;
    return CL_OK;
}

static json_t *cert_list_json(const cert_t *c, size_t n)
{
    json_t *arr = json_array();
    for (size_t k = 0; arr != NULL && k < n; k++) {
        char *b = cl_b64_encode_alloc(c[k].der, c[k].len, CL_B64_STD);
        if (b == NULL || json_array_append_new(arr, json_string(b)) != 0) {
            cl_free(b);
            json_decref(arr);
            return NULL;
        }
        cl_free(b);
    }
    return arr;
}

static int save_certs(const cl_astore *s, const cert_t *c, size_t n)
{
    char path[4096];
    CL_TRY(path_of(s, "certificates.json", path, sizeof path));
    json_t *arr = cert_list_json(c, n);
    CL_ENSURE(arr != NULL, CL_ENOMEM);
    json_t *doc = json_pack("{s:o}", "certificates", arr);
    CL_ENSURE(doc != NULL, CL_ENOMEM);
    char *text = json_dumps(doc, JSON_INDENT(1) | JSON_SORT_KEYS);
    json_decref(doc);
    CL_ENSURE(text != NULL, CL_ENOMEM);
    int rc = cl_write_file_atomic(path, text, strlen(text), 0644);
    cl_free(text);
    return rc;
}

static int save_policy(const cl_astore *s, int type, const char *jws)
{
    char rel[64], path[4096];
    snprintf(rel, sizeof rel, "policies/%s.jws", cl_atype_names[type]);
    CL_TRY(path_of(s, rel, path, sizeof path));
    if (jws == NULL) {
        if (unlink(path) != 0 && errno != ENOENT)
            return CL_EIO;
        char dir[4096];
        CL_TRY(path_of(s, "policies", dir, sizeof dir));
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            return CL_EIO;
        int ok = fsync(fd) == 0;
        close(fd);
        return ok ? CL_OK : CL_EIO;
    }
    return cl_write_file_atomic(path, jws, strlen(jws), 0644);
}

/* Appends one history record and makes it durable. `rec` is consumed. */
static int history_append(cl_astore *s, json_t *rec)
{
    CL_ENSURE(rec != NULL, CL_ENOMEM);
    json_object_set_new(rec, "seq", json_integer((json_int_t)(s->history_len + 1)));
    json_object_set_new(rec, "time", json_integer((json_int_t)time(NULL)));
    char *line = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    json_decref(rec);
    CL_ENSURE(line != NULL, CL_ENOMEM);
    size_t len = strlen(line);
    int rc = CL_OK;
    char *buf = cl_malloc(len + 1);
    CL_GUARD_IF(buf == NULL, CL_ENOMEM);
    memcpy(buf, line, len);
    buf[len] = '\n';
    for (size_t off = 0; off < len + 1;) {
        ssize_t w = write(s->history_fd, buf + off, len + 1 - off);
        if (w < 0 && errno == EINTR)
            continue;
        CL_GUARD_IF(w <= 0, CL_EIO);
        off += (size_t)w;
    }
    CL_GUARD_IF(fdatasync(s->history_fd) != 0, CL_EIO);
    s->history_len++;
out:
    cl_free(buf);
    cl_free(line);
    return rc;
}

static void sha256_b64url(const void *p, size_t n, char out[44])
{
    uint8_t d[32];
    cl_sha256(p, n, d);
    cl_b64_encode(d, sizeof d, out, CL_B64_URL);
}

static void thumbprint_hex(const uint8_t *der, size_t len, char out[65])
{
    uint8_t d[32];
    cl_sha256(der, len, d);
    cl_hex_encode(d, sizeof d, out);
}

int cl_astore_open(const char *dir, cl_astore **out, char *err, size_t errlen)
{
    CL_ENSURE(dir != NULL && out != NULL, CL_EINVAL);
    *out = NULL;
    int rc = CL_OK;
    char path[4096];
    char *text = NULL;
    json_t *doc = NULL;
    cl_astore *s = cl_calloc(1, sizeof *s);
    CL_ENSURE(s != NULL, CL_ENOMEM);
    s->history_fd = -1;
    s->dir = cl_strdup(dir);
    CL_GUARD_IF(s->dir == NULL, CL_ENOMEM);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        errf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
        CL_GUARD(CL_EIO);
    }
    CL_GUARD(path_of(s, "policies", path, sizeof path));
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        errf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        CL_GUARD(CL_EIO);
    }
    for (int k = 0; k < CL_ATYPE_COUNT; k++) {
        char rel[64];
        size_t len;
        snprintf(rel, sizeof rel, "policies/%s.jws", cl_atype_names[k]);
        CL_GUARD(path_of(s, rel, path, sizeof path));
        int r = read_small(path, &s->policy[k], &len);
        if (r == CL_ENOENT)
            continue;
        if (r < 0 || strlen(s->policy[k]) != len) {
            errf(err, errlen, "cannot read stored policy %s%s", path,
                 r < 0 ? "" : " (contains a NUL byte)");
            CL_GUARD(r < 0 ? r : CL_EFORMAT);
        }
    }
    CL_GUARD(path_of(s, "certificates.json", path, sizeof path));
    size_t len;
    int r = read_small(path, &text, &len);
    if (r == CL_OK) {
        char jerr[160];
        if (cl_json_parse(text, len, MAX_STATE_FILE, &doc, jerr, sizeof jerr) < 0 ||
            parse_cert_list(json_object_get(doc, "certificates"), &s->certs, &s->ncerts, NULL, 0) <
                0) {
            errf(err, errlen, "%s is not a valid certificate list%s", path, "");
            CL_GUARD(CL_EFORMAT);
        }
    } else if (r != CL_ENOENT) {
        errf(err, errlen, "cannot read %s%s", path, "");
        CL_GUARD(r);
    }
    CL_GUARD(path_of(s, "history.jsonl", path, sizeof path));
    s->history_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (s->history_fd < 0) {
        errf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        CL_GUARD(CL_EIO);
    }
    /* Count existing records (one line each) for the sequence numbers. */
    cl_free(text);
    text = NULL;
    r = read_small(path, &text, &len);
    if (r == CL_OK) {
        for (size_t k = 0; k < len; k++)
            if (text[k] == '\n')
                s->history_len++;
    } else if (r != CL_ENOENT && r != CL_EIO) {
        CL_GUARD(r);
    }
    *out = s;
    s = NULL;
out:
    json_decref(doc);
    cl_free(text);
    cl_astore_close(s);
    return rc;
}

void cl_astore_close(cl_astore *s)
{
    if (s == NULL)
        return;
    for (int k = 0; k < CL_ATYPE_COUNT; k++)
        cl_free(s->policy[k]);
    free_certs(s->certs, s->ncerts);
    if (s->history_fd >= 0)
        close(s->history_fd);
    cl_free(s->dir);
    cl_free(s);
}

const char *cl_astore_policy(const cl_astore *s, int type)
{
    return type >= 0 && type < CL_ATYPE_COUNT ? s->policy[type] : NULL;
}

int cl_astore_policy_set(cl_astore *s, int type, const char *jws, const char *who)
{
    CL_ENSURE(type >= 0 && type < CL_ATYPE_COUNT && jws != NULL, CL_EINVAL);
    char *copy = cl_strdup(jws);
    CL_ENSURE(copy != NULL, CL_ENOMEM);
    char hash[44];
    sha256_b64url(jws, strlen(jws), hash);
    int rc = history_append(s, json_pack("{s:s,s:s,s:s,s:s,s:s}", "action", "policy-set", "type",
                                         cl_atype_names[type], "who", who ? who : "-", "tokenHash",
                                         hash, "jws", jws));
    if (rc == CL_OK)
        rc = save_policy(s, type, jws);
    if (rc < 0) {
        cl_free(copy);
        return rc;
    }
    cl_free(s->policy[type]);
    s->policy[type] = copy;
    cl_logf(CL_LOG_INFO, "attestd: policy %s set by %s (token hash %s)", cl_atype_names[type],
            who ? who : "-", hash);
    return CL_OK;
}

int cl_astore_policy_reset(cl_astore *s, int type, const char *who)
{
    CL_ENSURE(type >= 0 && type < CL_ATYPE_COUNT, CL_EINVAL);
    CL_TRY(history_append(s, json_pack("{s:s,s:s,s:s}", "action", "policy-reset", "type",
                                       cl_atype_names[type], "who", who ? who : "-")));
    CL_TRY(save_policy(s, type, NULL));
    cl_free(s->policy[type]);
    s->policy[type] = NULL;
    cl_logf(CL_LOG_INFO, "attestd: policy %s reset to the default by %s", cl_atype_names[type],
            who ? who : "-");
    return CL_OK;
}

size_t cl_astore_cert_count(const cl_astore *s) { return s->ncerts; }

const uint8_t *cl_astore_cert(const cl_astore *s, size_t i, size_t *len)
{
    if (i >= s->ncerts)
        return NULL;
    *len = s->certs[i].len;
    return s->certs[i].der;
}

long cl_astore_cert_find(const cl_astore *s, const uint8_t *der, size_t len)
{
    for (size_t k = 0; k < s->ncerts; k++)
        if (s->certs[k].len == len &&
            memcmp(s->certs[k].der, der, len) == 0) /* public data, lint:public */
            return (long)k;
    return -1;
}

static int cert_change(cl_astore *s, const uint8_t *der, size_t len, const char *who, int add,
                       int *changed)
{
    *changed = 0;
    long at = cl_astore_cert_find(s, der, len);
    if ((add && at >= 0) || (!add && at < 0))
        return CL_OK;
    CL_ENSURE(!add || s->ncerts < MAX_CERTS, CL_EOVERFLOW);
    size_t n = add ? s->ncerts + 1 : s->ncerts - 1;
    cert_t *v = cl_calloc(n ? n : 1, sizeof *v);
    CL_ENSURE(v != NULL, CL_ENOMEM);
    size_t j = 0;
    int rc = CL_OK;
    for (size_t k = 0; k < s->ncerts; k++)
        if (add || (long)k != at)
            v[j++] = s->certs[k]; /* shallow: the DER stays owned by s->certs until commit */
    uint8_t *copy = NULL;
    if (add) {
        copy = cl_malloc(len);
        CL_GUARD_IF(copy == NULL, CL_ENOMEM);
        memcpy(copy, der, len);
        v[j].der = copy;
        v[j].len = len;
    }
    char thumb[65];
    thumbprint_hex(der, len, thumb);
    char *b64 = cl_b64_encode_alloc(der, len, CL_B64_STD);
    CL_GUARD_IF(b64 == NULL, CL_ENOMEM);
    rc = history_append(s, json_pack("{s:s,s:s,s:s,s:s}", "action",
                                     add ? "certificate-add" : "certificate-remove", "who",
                                     who ? who : "-", "sha256", thumb, "certificate", b64));
    cl_free(b64);
    CL_GUARD(rc);
    CL_GUARD(save_certs(s, v, n));
    if (!add)
        cl_free(s->certs[at].der);
    cl_free(s->certs);
    s->certs = v;
    s->ncerts = n;
    v = NULL;
    copy = NULL;
    *changed = 1;
    cl_logf(CL_LOG_INFO, "attestd: policy-management certificate %s %s by %s", thumb,
            add ? "added" : "removed", who ? who : "-");
out:
    cl_free(copy);
    cl_free(v);
    return rc;
}

int cl_astore_cert_add(cl_astore *s, const uint8_t *der, size_t len, const char *who, int *added)
{
    CL_ENSURE(der != NULL && len > 0 && added != NULL, CL_EINVAL);
    return cert_change(s, der, len, who, 1, added);
}

int cl_astore_cert_remove(cl_astore *s, const uint8_t *der, size_t len, const char *who,
                          int *removed)
{
    CL_ENSURE(der != NULL && len > 0 && removed != NULL, CL_EINVAL);
    return cert_change(s, der, len, who, 0, removed);
}

uint64_t cl_astore_history_len(const cl_astore *s) { return s->history_len; }

int cl_astore_export(const cl_astore *s, json_t **out)
{
    json_t *pol = json_object();
    json_t *certs = cert_list_json(s->certs, s->ncerts);
    json_t *doc = json_pack("{s:s,s:o*,s:o*}", "format", "cledger-attestd-backup-v1", "policies",
                            pol, "certificates", certs);
    CL_ENSURE(doc != NULL && pol != NULL && certs != NULL, CL_ENOMEM);
    for (int k = 0; k < CL_ATYPE_COUNT; k++)
        if (s->policy[k] != NULL &&
            json_object_set_new(pol, cl_atype_names[k], json_string(s->policy[k])) != 0) {
            json_decref(doc);
            return CL_ENOMEM;
        }
    *out = doc;
    return CL_OK;
}

int cl_astore_import(cl_astore *s, const json_t *backup, const char *who, char *err, size_t errlen)
{
    const json_t *fmt = json_object_get(backup, "format");
    if (!json_is_string(fmt) || strcmp(json_string_value(fmt), "cledger-attestd-backup-v1") != 0) {
        errf(err, errlen, "%s%s", "not a cledger-attestd-backup-v1 document", "");
        return CL_EFORMAT;
    }
    const json_t *pol = json_object_get(backup, "policies");
    if (!json_is_object(pol)) {
        errf(err, errlen, "%s%s", "\"policies\" must be an object", "");
        return CL_EFORMAT;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)pol, k, v)
    {
        if (cl_atype_find(k, strlen(k)) < 0 || !json_is_string(v) ||
            strlen(json_string_value(v)) != json_string_length(v)) {
            errf(err, errlen, "policy \"%s\" is not a known type with a JWS string%s", k, "");
            return CL_EFORMAT;
        }
    }
    cert_t *certs = NULL;
    size_t ncerts = 0;
    CL_TRY(parse_cert_list(json_object_get(backup, "certificates"), &certs, &ncerts, err, errlen));
    int rc = CL_OK;
    const char *by = who ? who : "import";
    for (int t = 0; t < CL_ATYPE_COUNT; t++) {
        const json_t *p = json_object_get(pol, cl_atype_names[t]);
        if (p != NULL)
            CL_GUARD(cl_astore_policy_set(s, t, json_string_value(p), by));
        else if (s->policy[t] != NULL)
            CL_GUARD(cl_astore_policy_reset(s, t, by));
    }
    /* Certificates: remove what the backup lacks, add what it has. */
    for (size_t i = s->ncerts; i-- > 0;) {
        int found = 0;
        for (size_t j = 0; j < ncerts && !found; j++)
            found =
                certs[j].len == s->certs[i].len &&
                memcmp(certs[j].der, s->certs[i].der, certs[j].len) == 0; /* public, lint:public */
        if (!found) {
            int removed;
            size_t len = s->certs[i].len;
            uint8_t *der = cl_malloc(len);
            CL_GUARD_IF(der == NULL, CL_ENOMEM);
            memcpy(der, s->certs[i].der, len);
            rc = cl_astore_cert_remove(s, der, len, by, &removed);
            cl_free(der);
            CL_GUARD(rc);
        }
    }
    for (size_t j = 0; j < ncerts; j++) {
        int added;
        CL_GUARD(cl_astore_cert_add(s, certs[j].der, certs[j].len, by, &added));
    }
out:
    free_certs(certs, ncerts);
    return rc;
}
