/*
 * framing.c — see framing.h. The bytes between line ends are passed over with memchr, and only
 * the bytes around a line end are looked at one by one: every request's request line and header
 * section go through here on an HTTPS worker, and a byte-by-byte state machine cost as much as
 * http-parser itself (bench/bench_http.c).
 */
#include "net/framing.h"

#include <string.h>

static const char E_CRLF[] = "A CR in the request framing must be followed by LF.";
static const char E_CHUNK[] = "Chunk data must be followed by CRLF.";
static const char E_VERSION[] = "The request line must end with the protocol version HTTP/1.1.";
static const char E_FOLD[] = "Obsolete line folding is not accepted: send each field on one line.";

/* Keeps the last sizeof f->tail bytes of the request line seen so far. */
static void tail_add(cl_http_framing *f, const uint8_t *d, size_t n)
{
    size_t cap = sizeof f->tail;
    if (n >= cap) {
        memcpy(f->tail, d + n - cap, cap);
        f->tail_len = (uint8_t)cap;
        return;
    }
    size_t keep = f->tail_len + n > cap ? cap - n : f->tail_len;
    memmove(f->tail, f->tail + f->tail_len - keep, keep);
    memcpy(f->tail + keep, d, n);
    f->tail_len = (uint8_t)(keep + n);
}

static int version_ok(const cl_http_framing *f)
{
    const char *t = f->tail;
    return f->tail_len == sizeof f->tail && memcmp(t, " HTTP/", 6) == 0 && t[6] >= '0' &&
           t[6] <= '9' && t[7] == '.' && t[8] >= '0' && t[8] <= '9';
}

/* The first CR or LF in d[0..n), or NULL. */
static const uint8_t *line_end(const uint8_t *d, size_t n)
{
    const uint8_t *lf = memchr(d, '\n', n);
    const uint8_t *cr = memchr(d, '\r', lf != NULL ? (size_t)(lf - d) : n);
    return cr != NULL ? cr : lf;
}

const char *cl_http_framing_scan(cl_http_framing *f, const uint8_t *d, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = d[i];
        /* what the last byte asked of this one */
        if (f->after_data && c != '\r')
            return E_CHUNK;
        f->after_data = 0;
        if (f->cr) {
            if (c != '\n')
                return E_CRLF;
            f->cr = 0;
            f->line_start = f->state == CL_FR_LINES;
            i++;
            continue;
        }
        switch (f->state) {
        case CL_FR_IDLE: /* empty lines may precede a request line (RFC 9112 §2.2) */
            if (c == '\r' || c == '\n') {
                f->cr = c == '\r';
                i++;
                continue;
            }
            f->state = CL_FR_REQUEST_LINE;
            f->tail_len = 0;
            continue;
        case CL_FR_REQUEST_LINE: {
            const uint8_t *e = line_end(d + i, n - i);
            size_t stop = e != NULL ? (size_t)(e - d) : n;
            tail_add(f, d + i, stop - i);
            i = stop;
            if (e == NULL)
                return NULL;
            if (!version_ok(f))
                return E_VERSION;
            f->state = CL_FR_LINES;
            f->cr = *e == '\r';
            f->line_start = *e == '\n';
            i++;
            continue;
        }
        default: {
            if (f->line_start && (c == ' ' || c == '\t'))
                return E_FOLD;
            /* to the end of this line: a CR inside it must be its last byte, before the LF */
            const uint8_t *lf = memchr(d + i, '\n', n - i);
            size_t stop = lf != NULL ? (size_t)(lf - d) : n;
            const uint8_t *cr = memchr(d + i, '\r', stop - i);
            if (cr != NULL && (size_t)(cr - d) + 1 != stop)
                return E_CRLF;
            if (lf == NULL) {
                f->cr = cr != NULL; /* a CR as the last byte: the LF comes in the next call */
                f->line_start = 0;
                return NULL;
            }
            f->line_start = 1;
            i = stop + 1;
            continue;
        }
        }
    }
    return NULL;
}
