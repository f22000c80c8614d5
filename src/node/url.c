/*
 * url.c — percent-decoding, query splitting, transaction ids (spec/ledger-api.md §2.1, §4.1).
 * Every function reads its input through explicit lengths; nothing here trusts a NUL terminator
 * of untrusted data except cl_url_path_parse / cl_url_query_parse, whose inputs are the
 * NUL-terminated strings of the HTTP parser.
 */
#include "node/url.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/codec.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes in[0..n) into d (room for n + 1 bytes: decoding never lengthens); the length in *len. */
static int decode_into(const char *in, size_t n, int form, char *d, size_t *len)
{
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '%') {
            if (n - i < 3 || hexval(in[i + 1]) < 0 || hexval(in[i + 2]) < 0)
                return CL_EINVAL;
            c = (char)(hexval(in[i + 1]) << 4 | hexval(in[i + 2]));
            i += 2;
        } else if (c == '+' && form) {
            c = ' ';
        }
        if (c == '\0')
            return CL_EINVAL;
        d[j++] = c;
    }
    d[j] = '\0';
    *len = j;
    return CL_OK;
}

int cl_url_decode(const char *in, size_t n, int form, char **out, size_t *outlen)
{
    *out = NULL;
    char *d = cl_malloc(n + 1);
    CL_ENSURE(d != NULL, CL_ENOMEM);
    size_t j;
    int rc = decode_into(in, n, form, d, &j);
    if (rc < 0) {
        cl_free(d);
        return rc;
    }
    *out = d;
    if (outlen)
        *outlen = j;
    return CL_OK;
}

void cl_url_path_free(cl_url_path *p)
{
    cl_free(p->arena);
    memset(p, 0, sizeof *p);
}

int cl_url_path_parse(const char *raw, cl_url_path *out)
{
    memset(out, 0, sizeof *out);
    CL_ENSURE(raw != NULL && raw[0] == '/', CL_EINVAL);
    /* One allocation for every segment: a segment of k raw bytes decodes to at most k bytes, and
     * the '/' before it pays for its NUL. */
    out->arena = cl_malloc(strlen(raw) + 1);
    CL_ENSURE(out->arena != NULL, CL_ENOMEM);
    char *d = out->arena;
    const char *p = raw + 1;
    for (;;) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p), dlen;
        /* Past CL_URL_MAX_SEGMENTS the escapes are still checked, so a malformed path stays a
         * 400; the decoded bytes are not kept. */
        int rc = decode_into(p, len, 0, d, &dlen);
        if (rc < 0) {
            cl_url_path_free(out);
            return rc;
        }
        if (out->n == CL_URL_MAX_SEGMENTS) {
            out->too_many = 1;
        } else {
            out->seg[out->n] = d;
            out->len[out->n] = dlen;
            out->n++;
            d += dlen + 1;
        }
        if (e == NULL)
            break;
        p = e + 1;
    }
    return CL_OK;
}

void cl_url_query_free(cl_url_query *q)
{
    cl_free(q->arena);
    memset(q, 0, sizeof *q);
}

int cl_url_query_parse(const char *raw, cl_url_query *out)
{
    memset(out, 0, sizeof *out);
    if (raw == NULL || raw[0] == '\0')
        return CL_OK;
    /* One allocation for every name and value: an item of k raw bytes takes at most k + 1 bytes
     * decoded with its NULs ("name=value": the '=' pays for one NUL; "name" alone: its value is
     * the name's own NUL). */
    out->arena = cl_malloc(strlen(raw) + 1);
    CL_ENSURE(out->arena != NULL, CL_ENOMEM);
    char *d = out->arena;
    const char *p = raw;
    while (*p != '\0') {
        const char *e = strchr(p, '&');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len > 0) {
            if (out->n == CL_URL_MAX_PARAMS) {
                cl_url_query_free(out);
                return CL_EOVERFLOW;
            }
            const char *eq = memchr(p, '=', len);
            size_t nlen = eq ? (size_t)(eq - p) : len;
            const char *v = eq ? eq + 1 : p + len;
            size_t vlen = eq ? len - nlen - 1 : 0;
            size_t dn, dv = 0;
            int rc = decode_into(p, nlen, 1, d, &dn);
            if (rc == CL_OK && eq != NULL)
                rc = decode_into(v, vlen, 1, d + dn + 1, &dv);
            if (rc < 0) {
                cl_url_query_free(out);
                return rc;
            }
            out->name[out->n] = d;
            out->value[out->n] = eq != NULL ? d + dn + 1 : d + dn; /* no '=': "" */
            out->value_len[out->n] = dv;
            out->n++;
            d += dn + 1 + (eq != NULL ? dv + 1 : 0);
        }
        if (e == NULL)
            break;
        p = e + 1;
    }
    return CL_OK;
}

const char *cl_url_query_get(const cl_url_query *q, const char *name, size_t *len)
{
    for (size_t i = q->n; i-- > 0;) {
        if (strcmp(q->name[i], name) == 0) {
            if (len)
                *len = q->value_len[i];
            return q->value[i];
        }
    }
    return NULL;
}

int cl_url_encode(cl_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            CL_TRY(cl_buf_u8(b, c));
        } else {
            uint8_t e[3] = {'%', (uint8_t)hex[c >> 4], (uint8_t)hex[c & 15]};
            CL_TRY(cl_buf_append(b, e, 3));
        }
    }
    return CL_OK;
}

/* One decimal u64 >= 1 without leading zeros. */
static int parse_u64(const char *s, size_t n, uint64_t *v)
{
    CL_ENSURE(n >= 1 && n <= 20 && s[0] >= '1' && s[0] <= '9', CL_EINVAL);
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        CL_ENSURE(s[i] >= '0' && s[i] <= '9', CL_EINVAL);
        unsigned d = (unsigned)(s[i] - '0');
        CL_ENSURE(x <= (UINT64_MAX - d) / 10, CL_EINVAL);
        x = x * 10 + d;
    }
    *v = x;
    return CL_OK;
}

int cl_collection_chars_ok(const char *s, size_t n)
{
    if (!cl_utf8_valid(s, n))
        return 0;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    }
    return 1;
}

int cl_txid_parse(const char *s, size_t n, uint64_t *view, uint64_t *seqno)
{
    CL_ENSURE(s != NULL && n <= CL_TXID_MAX, CL_EINVAL);
    const char *dot = memchr(s, '.', n);
    CL_ENSURE(dot != NULL, CL_EINVAL);
    size_t vl = (size_t)(dot - s);
    CL_TRY(parse_u64(s, vl, view));
    CL_TRY(parse_u64(dot + 1, n - vl - 1, seqno));
    return CL_OK;
}

void cl_txid_format(uint64_t view, uint64_t seqno, char *out, size_t cap)
{
    _Static_assert(CL_TXID_MAX == CL_U64_PAIR_DEC_MAX, "txid length");
    char t[CL_TXID_MAX + 1];
    size_t n = cl_u64_pair_dec(view, seqno, t);
    if (cap == 0)
        return;
    if (n >= cap) /* truncated like snprintf (callers pass CL_TXID_MAX + 1) */
        n = cap - 1;
    memcpy(out, t, n);
    out[n] = '\0';
}
