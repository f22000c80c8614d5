#include "base/json.h"

#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "base/alloc.h"
#include "base/codec.h"

static void *json_alloc(size_t n) { return cl_malloc(n); }

/* Everything jansson and this parser free is wiped first, all of its usable size (jansson's free
 * hook is given no length): the strings a request body becomes hold a private ledger's contents
 * and bearer tokens, and jansson's string buffers grow by copying. */
void cl_json_free(void *p)
{
    if (p != NULL) {
        OPENSSL_cleanse(p, malloc_usable_size(p));
        cl_free(p);
    }
}

/* A decoded string's buffer (jp_string), wiped over the n bytes written: it is sized to the rest
 * of the input, so wiping all of it for each escaped string made a body of many short escaped
 * strings quadratic (1 MB: 3.9 s against 0.04 s). */
static void jp_free_owned(unsigned char *p, size_t n)
{
    if (p != NULL) {
        OPENSSL_cleanse(p, n);
        cl_free(p);
    }
}

void cl_json_init(void)
{
    static int done;
    if (!done) {
        json_set_alloc_funcs(json_alloc, cl_json_free);
        done = 1;
    }
}

/* ---- the parser ------------------------------------------------------------------------------
 *
 * A strict RFC 8259 parser that builds jansson values, accepting exactly what
 * json_loadb(JSON_REJECT_DUPLICATES) accepts. jansson's own lexer reads through a stream callback
 * one byte at a time, with a one-byte memcpy for every string character: 150 µs for the 6.5 KB SGX
 * attestation request (23 ns per byte), 10% of an attestation's CPU. Here a string with no escape
 * is scanned in place and copied once. tests/fuzz/fuzz_json.c checks the two against each other
 * (same accept/reject, json_equal trees). */

#define CL_STR_(x) #x
#define CL_STR(x) CL_STR_(x)

typedef struct {
    const unsigned char *start, *p, *end;
    const unsigned char *err_at; /* where the first error was found */
    const char *err;             /* its description (static) */
    int nomem;
} jparse;

static json_t *jp_value(jparse *j, int depth);

static json_t *jp_fail(jparse *j, const unsigned char *at, const char *msg)
{
    if (j->err == NULL && !j->nomem) {
        j->err = msg;
        j->err_at = at;
    }
    return NULL;
}

static json_t *jp_nomem(jparse *j)
{
    j->nomem = 1;
    return NULL;
}

static void jp_ws(jparse *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
        j->p++;
}

/* The value of the four hex digits at p, or -1. */
static long hex4(const unsigned char *p, const unsigned char *end)
{
    if (end - p < 4)
        return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int d = cl_hex_digit(p[i]);
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    return v;
}

/* Writes code point u (< 0x110000, not a surrogate) as UTF-8; returns the byte count. */
static size_t put_utf8(unsigned char *d, unsigned long u)
{
    if (u < 0x80) {
        d[0] = (unsigned char)u;
        return 1;
    }
    if (u < 0x800) {
        d[0] = (unsigned char)(0xC0 | u >> 6);
        d[1] = (unsigned char)(0x80 | (u & 0x3F));
        return 2;
    }
    if (u < 0x10000) {
        d[0] = (unsigned char)(0xE0 | u >> 12);
        d[1] = (unsigned char)(0x80 | (u >> 6 & 0x3F));
        d[2] = (unsigned char)(0x80 | (u & 0x3F));
        return 3;
    }
    d[0] = (unsigned char)(0xF0 | u >> 18);
    d[1] = (unsigned char)(0x80 | (u >> 12 & 0x3F));
    d[2] = (unsigned char)(0x80 | (u >> 6 & 0x3F));
    d[3] = (unsigned char)(0x80 | (u & 0x3F));
    return 4;
}

/* The escape at q (q[0] == '\\') decoded into d: returns the bytes written and moves *q past it,
 * or 0 (error recorded). */
static size_t jp_escape(jparse *j, const unsigned char **q, unsigned char *d)
{
    const unsigned char *esc = *q, *end = j->end;
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *k = esc + 1 < end ? memchr(from, esc[1], sizeof from - 1) : NULL;
    if (k != NULL) {
        *d = (unsigned char)to[k - from];
        *q = esc + 2;
        return 1;
    }
    if (esc + 1 >= end || esc[1] != 'u') {
        jp_fail(j, esc, "invalid escape in a string");
        return 0;
    }
    long u = hex4(esc + 2, end), lo;
    const unsigned char *next = esc + 6;
    if (u < 0) {
        jp_fail(j, esc, "invalid \\u escape");
        return 0;
    }
    if (u >= 0xDC00 && u <= 0xDFFF) {
        jp_fail(j, esc, "invalid Unicode escape (lone low surrogate)");
        return 0;
    }
    if (u >= 0xD800 && u <= 0xDBFF) {
        if (end - next < 6 || next[0] != '\\' || next[1] != 'u' ||
            (lo = hex4(next + 2, end)) < 0xDC00 || lo > 0xDFFF) {
            jp_fail(j, esc, "invalid Unicode escape (high surrogate without low)");
            return 0;
        }
        u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
        next += 6;
    }
    if (u == 0) {
        jp_fail(j, esc, "\\u0000 is not allowed in a string");
        return 0;
    }
    *q = next;
    return put_utf8(d, (unsigned long)u);
}

/* j->p is just past the opening quote. On success *out and *len hold the string's bytes and j->p
 * is past the closing quote. A string without escapes is returned in place (*owned NULL); one
 * with escapes is decoded into a new buffer, *owned, which the caller frees. */
static int jp_string(jparse *j, const unsigned char **out, size_t *len, unsigned char **owned)
{
    const unsigned char *s = j->p, *q = s, *end = j->end;
    unsigned char *d = NULL; /* the decoded copy, from the first escape on */
    size_t o = 0;
    *owned = NULL;
    while (q < end) {
        /* a run of plain ASCII, the bulk of any string: only its end is looked for */
        const unsigned char *r = q;
        while (r < end && *r >= 0x20 && *r < 0x80 && *r != '"' && *r != '\\')
            r++;
        if (d != NULL) {
            memcpy(d + o, q, (size_t)(r - q));
            o += (size_t)(r - q);
        }
        if ((q = r) >= end)
            break;
        unsigned c = *q;
        if (c == '"') {
            *out = d != NULL ? d : s;
            *len = d != NULL ? o : (size_t)(q - s);
            *owned = d;
            j->p = q + 1;
            return 0;
        }
        if (c < 0x20) {
            jp_fail(j, q, "control character in a string");
            break;
        }
        if (c >= 0x80) {
            size_t n = cl_utf8_seq_len(q, (size_t)(end - q));
            if (n == 0) {
                jp_fail(j, q, "invalid UTF-8 in a string");
                break;
            }
            if (d != NULL) {
                memcpy(d + o, q, n);
                o += n;
            }
            q += n;
            continue;
        }
        if (d == NULL) { /* the first escape: decoded text is never longer than its encoding */
            if ((d = cl_malloc((size_t)(end - s))) == NULL) {
                jp_nomem(j);
                return -1;
            }
            o = (size_t)(q - s);
            memcpy(d, s, o);
        }
        size_t n = jp_escape(j, &q, d + o);
        if (n == 0)
            break;
        o += n;
    }
    if (q >= end)
        jp_fail(j, q, "premature end of input in a string");
    jp_free_owned(d, o); /* a failed escape writes nothing */
    return -1;
}

static int jp_digit(const jparse *j, const unsigned char *p)
{
    return p < j->end && *p >= '0' && *p <= '9';
}

static json_t *jp_number(jparse *j)
{
    const unsigned char *s = j->p, *p = s;
    int real = 0;
    if (*p == '-')
        p++;
    if (!jp_digit(j, p))
        return jp_fail(j, s, "invalid number");
    if (*p == '0') {
        if (jp_digit(j, ++p))
            return jp_fail(j, s, "invalid number (leading zero)");
    } else
        while (jp_digit(j, p))
            p++;
    if (p < j->end && *p == '.') {
        real = 1;
        if (!jp_digit(j, ++p))
            return jp_fail(j, s, "invalid number (no digit after '.')");
        while (jp_digit(j, p))
            p++;
    }
    if (p < j->end && (*p == 'e' || *p == 'E')) {
        real = 1;
        p++;
        if (p < j->end && (*p == '+' || *p == '-'))
            p++;
        if (!jp_digit(j, p))
            return jp_fail(j, s, "invalid number (no digit in the exponent)");
        while (jp_digit(j, p))
            p++;
    }
    size_t n = (size_t)(p - s);
    char small[64], *text = small;
    if (n >= sizeof small && (text = cl_malloc(n + 1)) == NULL)
        return jp_nomem(j);
    memcpy(text, s, n);
    text[n] = '\0';
    json_t *v;
    errno = 0;
    if (!real) {
        long long i = strtoll(text, NULL, 10);
        if (errno == ERANGE)
            v = jp_fail(j, s, "integer out of range");
        else if ((v = json_integer(i)) == NULL)
            jp_nomem(j);
    } else {
        double d = strtod(text, NULL);
        if ((d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE)
            v = jp_fail(j, s, "real number overflow");
        else if ((v = json_real(d)) == NULL)
            jp_nomem(j);
    }
    if (text != small)
        cl_free(text);
    j->p = p;
    return v;
}

static json_t *jp_literal(jparse *j, const char *word, json_t *value)
{
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return jp_fail(j, j->p, "invalid token");
    j->p += n;
    return value;
}

static json_t *jp_object(jparse *j, int depth)
{
    json_t *o = json_object();
    if (o == NULL)
        return jp_nomem(j);
    j->p++; /* '{' */
    jp_ws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        return o;
    }
    for (;;) {
        if (j->p >= j->end || *j->p != '"') {
            jp_fail(j, j->p, "string or '}' expected");
            break;
        }
        const unsigned char *kat = j->p++, *k;
        unsigned char *kown;
        size_t kl;
        if (jp_string(j, &k, &kl, &kown) < 0)
            break;
        json_t *v = NULL;
        if (json_object_getn(o, (const char *)k, kl) != NULL)
            jp_fail(j, kat, "duplicate object key");
        else {
            jp_ws(j);
            if (j->p >= j->end || *j->p != ':')
                jp_fail(j, j->p, "':' expected");
            else {
                j->p++;
                v = jp_value(j, depth + 1);
            }
        }
        int set = v != NULL ? json_object_setn_new_nocheck(o, (const char *)k, kl, v) : -1;
        jp_free_owned(kown, kl);
        if (v == NULL)
            break;
        if (set < 0) {
            jp_nomem(j);
            break;
        }
        jp_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            jp_ws(j);
            continue;
        }
        if (j->p < j->end && *j->p == '}') {
            j->p++;
            return o;
        }
        jp_fail(j, j->p, "',' or '}' expected");
        break;
    }
    json_decref(o);
    return NULL;
}

static json_t *jp_array(jparse *j, int depth)
{
    json_t *a = json_array();
    if (a == NULL)
        return jp_nomem(j);
    j->p++; /* '[' */
    jp_ws(j);
    if (j->p < j->end && *j->p == ']') {
        j->p++;
        return a;
    }
    for (;;) {
        json_t *v = jp_value(j, depth + 1);
        if (v == NULL)
            break;
        if (json_array_append_new(a, v) < 0) {
            jp_nomem(j);
            break;
        }
        jp_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == ']') {
            j->p++;
            return a;
        }
        jp_fail(j, j->p, "',' or ']' expected");
        break;
    }
    json_decref(a);
    return NULL;
}

static json_t *jp_value(jparse *j, int depth)
{
    jp_ws(j);
    if (depth > CL_JSON_MAX_DEPTH)
        return jp_fail(j, j->p, "nesting deeper than " CL_STR(CL_JSON_MAX_DEPTH) " levels");
    if (j->p >= j->end)
        return jp_fail(j, j->p, "premature end of input");
    switch (*j->p) {
    case '{':
        return jp_object(j, depth);
    case '[':
        return jp_array(j, depth);
    case '"': {
        const unsigned char *s;
        unsigned char *own;
        size_t n;
        j->p++;
        if (jp_string(j, &s, &n, &own) < 0)
            return NULL;
        json_t *v = json_stringn_nocheck((const char *)s, n);
        jp_free_owned(own, n);
        return v != NULL ? v : jp_nomem(j);
    }
    case 't':
        return jp_literal(j, "true", json_true());
    case 'f':
        return jp_literal(j, "false", json_false());
    case 'n':
        return jp_literal(j, "null", json_null());
    default:
        if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'))
            return jp_number(j);
        return jp_fail(j, j->p, "invalid token");
    }
}

int cl_json_parse(const char *data, size_t len, size_t maxlen, json_t **out, char *errbuf,
                  size_t errbuflen)
{
    cl_json_init();
    if (errbuf && errbuflen)
        errbuf[0] = '\0';
    if (len > maxlen) {
        if (errbuf)
            snprintf(errbuf, errbuflen, "JSON document of %zu bytes exceeds the limit of %zu", len,
                     maxlen);
        return CL_EOVERFLOW;
    }
    jparse j = {.start = (const unsigned char *)data, .p = (const unsigned char *)data};
    j.end = j.p + len;
    json_t *v = NULL;
    jp_ws(&j);
    if (j.p < j.end && (*j.p == '{' || *j.p == '[')) {
        v = jp_value(&j, 0);
        jp_ws(&j);
        if (v != NULL && j.p != j.end) {
            json_decref(v);
            v = jp_fail(&j, j.p, "end of input expected");
        }
    } else
        jp_fail(&j, j.p, "'[' or '{' expected");
    if (v != NULL) {
        *out = v;
        return CL_OK;
    }
    if (j.nomem) {
        if (errbuf)
            snprintf(errbuf, errbuflen, "out of memory while parsing JSON");
        return CL_ENOMEM;
    }
    if (errbuf) {
        int line = 1, col = 1;
        for (const unsigned char *p = j.start; p < j.err_at; p++) {
            if (*p == '\n') {
                line++;
                col = 1;
            } else if ((*p & 0xC0) != 0x80) /* columns count characters */
                col++;
        }
        snprintf(errbuf, errbuflen, "line %d column %d: %s", line, col, j.err);
    }
    return CL_EJSON;
}

int cl_json_opt_str(const json_t *obj, const char *key, const char **out, size_t *len)
{
    CL_ENSURE(json_is_object(obj), CL_EJSON);
    json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return CL_ENOENT;
    CL_ENSURE(json_is_string(v), CL_EJSON);
    *out = json_string_value(v);
    if (len)
        *len = json_string_length(v);
    return CL_OK;
}

int cl_json_get_str(const json_t *obj, const char *key, const char **out, size_t *len)
{
    int rc = cl_json_opt_str(obj, key, out, len);
    return rc == CL_ENOENT ? CL_EJSON : rc;
}

int cl_json_get_hex(const json_t *obj, const char *key, uint8_t *out, size_t n)
{
    const char *s;
    size_t sl;
    CL_TRY(cl_json_get_str(obj, key, &s, &sl));
    return cl_hex_decode(s, sl, out, n);
}

int cl_json_put_string(cl_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    CL_TRY(cl_buf_append(b, "\"", 1));
    size_t run = 0; /* bytes before i that need no escape, not yet appended */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            run++;
            continue;
        }
        CL_TRY(cl_buf_append(b, s + i - run, run));
        run = 0;
        char e[6] = {'\\', 0, 0, 0, 0, 0};
        size_t el = 2;
        switch (c) {
        case '"':
        case '\\':
            e[1] = (char)c;
            break;
        case '\b':
            e[1] = 'b';
            break;
        case '\f':
            e[1] = 'f';
            break;
        case '\n':
            e[1] = 'n';
            break;
        case '\r':
            e[1] = 'r';
            break;
        case '\t':
            e[1] = 't';
            break;
        default:
            memcpy(e + 1, "u00", 3);
            e[4] = hex[c >> 4];
            e[5] = hex[c & 15];
            el = 6;
        }
        CL_TRY(cl_buf_append(b, e, el));
    }
    CL_TRY(cl_buf_append(b, s + n - run, run));
    return cl_buf_append(b, "\"", 1);
}

char *cl_json_dump(const json_t *j)
{
    cl_json_init();
    return json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
}
