/*
 * http.c — the HTTPS/1.1 server of http.h: libuv TCP, OpenSSL through memory BIOs, http-parser.
 *
 * Layers, bottom up:
 *  - cl_http_parser: http-parser driven over plaintext. It builds one message at a time into an
 *    http_msg (header strings in one arena buffer, body in another), counting header bytes and
 *    body bytes against the limits before anything is appended, and pauses itself after every
 *    complete message. The standalone API (fuzzing) and the server share it: the server's
 *    connection parser is a cl_http_parser fed with decrypted bytes.
 *  - http_conn: one accepted TCP connection. Ciphertext from uv_read goes into the SSL's read BIO;
 *    everything OpenSSL writes into the write BIO is drained into uv_write requests (flush_tls).
 *    Plaintext from SSL_read is kept in `in` and fed to the parser. While a request is being
 *    handled (c->x != NULL) the connection neither reads from the socket nor parses, so requests
 *    are answered strictly in order and buffered input is bounded by one read.
 *  - cl_http_server: listener, connection list, counters and the graceful stop.
 *
 * Lifetimes: a connection is freed only from the close callback of the last of its two handles
 * (tcp, timer), never synchronously, so a conn pointer stays valid for the rest of the current
 * callback even after conn_close. An exchange outlives its connection: conn_close detaches it
 * (x->conn = NULL) and cl_http_reply then only frees it. The server is freed after stop once the
 * listener is closed, no connection is left and no exchange is outstanding.
 *
 * Timers (one uv_timer per connection, re-armed only when its purpose changes): TLS handshake and
 * a partially received request share request_timeout_ms (a total, not reset by each byte);
 * waiting for the next request uses idle_timeout_ms; none while the handler runs; after the last
 * reply a short linger bounds the wait for the peer to read it and go away.
 *
 * Buffers: OpenSSL's record buffers (~34 KiB) and `in` (16 KiB) are kept while a connection is
 * busy and given back once it has been idle for KEEP_BUFFERS_MS (the idle timer's first step). With
 * SSL_MODE_RELEASE_BUFFERS OpenSSL gave its read buffer back after every record, and
 * SSL_OP_CLEANSE_PLAINTEXT (tls.c) then wiped all 18 KiB of it each time: 4.5% of the process's
 * CPU under write load. Wiped once per idle spell instead.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4 */
#endif
#include "net/http.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <http_parser.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/codec.h"
#include "base/cursor.h"
#include "base/json.h"
#include "base/log.h"
#include "base/waker.h"
#include "net/framing.h"

#define DEFAULT_MAX_HEADER_BYTES (16 * 1024)
#define DEFAULT_MAX_BODY_BYTES (1024 * 1024)
#define DEFAULT_BODY_POOL_BYTES (64 * 1024 * 1024)
#define DEFAULT_BODY_POOL_MIN_BYTES (64 * 1024)
#define DEFAULT_MAX_CONNECTIONS 1024
#define DEFAULT_IDLE_TIMEOUT_MS 30000
#define DEFAULT_REQUEST_TIMEOUT_MS 10000
#define LINGER_MAX_MS 2000
/* Idle this long, a connection's TLS and input buffers are freed. */
#define KEEP_BUFFERS_MS 1000
#define READ_CHUNK 16384
/* The largest write request: the send timer (TM_SEND), the write-wait request timer and the idle
 * timer of a connection whose reply is still going out count a completed write as progress (so a
 * reader must take at least this much per timeout; test_http test_slow_reply_idle). The kernel
 * reports a full socket writable again only once about a third of its send buffer has drained, so a
 * reader of a large reply must take that much (up to ~1.4 MB with Linux's default 4 MB tcp_wmem
 * maximum) per request timeout (10 s by default), like nginx's send_timeout. */
#define WRITE_CHUNK (64 * 1024)
/* Replies written at once, without a uv_write request: one whole TLS record (16 KiB of plaintext
 * and its header, tag and padding), so a reply sent a record at a time (tls_write_all) takes the
 * direct path too while the socket has room. */
#define TRY_WRITE_MAX (16 * 1024 + 256)
/* Ciphertext buffered from a connection while its request is being handled. Reading goes on
 * during a request (stopping and restarting it costs two epoll_ctl calls per request); a peer
 * that sends this much ahead of its reply is paused until the reply is out. */
#define AHEAD_CAP (64 * 1024)
/* Reply bytes a connection may have waiting for the peer to read before its next pipelined
 * requests wait too: a client that sends and never reads cannot make the server queue replies
 * without bound. */
#define REPLY_BACKLOG (256 * 1024)
#define LISTEN_BACKLOG 511
#define ACCEPT_PAUSE_MS 50 /* no descriptor for the spare either: the listener rests this long */

/* ---- the plaintext request parser ------------------------------------------------------------ */

/* The request-body bytes a server holds at once, over all its connections (atomic: charged on
 * the connections' threads, given back wherever a request is freed). */
typedef struct {
    size_t used, max;
    size_t min; /* bodies up to this size are not counted (max_connections x min is bounded) */
} body_pool;

/* One request under construction: the header arena holds "target\0name\0value\0...path\0query\0"
 * (offsets while parsing, since the arena may move; pointers are set when the message is done). */
typedef struct {
    cl_http_request req;
    cl_buf raw;
    cl_buf body;
    body_pool *pool; /* what `charged` was taken from; NULL: none */
    size_t charged;  /* body bytes counted against the pool */
    size_t name_off[CL_HTTP_MAX_HEADERS];
    size_t value_off[CL_HTTP_MAX_HEADERS];
    size_t nhdr;
    int keep_alive;
    int http_minor;
    int head;
} http_msg;

enum { PIECE_NONE, PIECE_URL, PIECE_FIELD, PIECE_VALUE, PIECE_END };

struct cl_http_parser {
    http_parser hp;
    size_t max_header, max_body;
    cl_http_parsed_cb cb;
    void *cb_arg;
    http_msg *msg;       /* the message being built; NULL after the owner took it */
    size_t header_bytes; /* request line and header bytes of the current message so far */
    int piece;           /* which string the last header callback was appending to */
    int headers_done;    /* header callbacks after this are chunked trailers (counted, dropped) */
    int in_message;      /* between on_message_begin and on_message_complete */
    int hold;            /* the owner took the message: stop parsing until fed again */
    int upgraded;        /* an Upgrade/CONNECT request ended the HTTP stream: ignore the rest */
    int expect_continue; /* "Expect: 100-continue" seen and the body has not started */
    int status;          /* 0 while healthy, else the status to answer before closing */
    int err;             /* the cl_err matching status */
    const char *why;     /* static message for the error body */
    uint64_t next_id;
    cl_http_framing fr;
    const uint8_t *scan_from; /* the first byte of the current input not yet scanned */
    body_pool *pool;          /* the server's, or NULL (a parser on its own) */
};

static void body_uncharge(http_msg *m)
{
    if (m->pool != NULL && m->charged > 0)
        __atomic_sub_fetch(&m->pool->used, m->charged, __ATOMIC_RELAXED);
    m->charged = 0;
}

static void msg_free(http_msg *m)
{
    if (m == NULL)
        return;
    body_uncharge(m);
    cl_buf_free(&m->raw);
    cl_buf_free(&m->body);
    cl_free(m);
}

static int parser_error(cl_http_parser *p, int status, const char *why)
{
    if (p->status == 0) {
        p->status = status;
        p->why = why;
        p->err = status == 500                    ? CL_ENOMEM
                 : status == 505 || status == 501 ? CL_EUNSUPPORTED
                 : status == 400                  ? CL_EINVAL
                                                  : CL_EOVERFLOW;
    }
    return -1;
}

static cl_http_parser *parser_of(http_parser *hp) { return hp->data; }

/* Counts the body against the server's pool once it is `total` bytes (declared, or received so
 * far when chunked), before those bytes are stored: a large body the pool has no room for is
 * refused (503, Retry-After) rather than held, so many connections sending large bodies slowly
 * cannot hold max_connections x max_body_bytes of memory. Bodies up to the pool's `min` are not
 * counted: the usual small requests never meet a pool that large uploads have filled. */
static int body_charge(cl_http_parser *p, size_t total)
{
    body_pool *bp = p->pool;
    if (bp == NULL || total <= bp->min || total <= p->msg->charged)
        return 0;
    size_t n = total - p->msg->charged;
    if (__atomic_add_fetch(&bp->used, n, __ATOMIC_RELAXED) > bp->max) {
        __atomic_sub_fetch(&bp->used, n, __ATOMIC_RELAXED);
        return parser_error(p, 503, "The server holds too many request bodies now; retry later.");
    }
    p->msg->pool = bp;
    p->msg->charged += n;
    return 0;
}

/* Counts n more header bytes against the limit before they are stored. */
static int count_header(cl_http_parser *p, size_t n)
{
    if (n > p->max_header - p->header_bytes)
        return parser_error(p, 431, "The request headers exceed the size limit.");
    p->header_bytes += n;
    return 0;
}

static int raw_add(cl_http_parser *p, const void *d, size_t n)
{
    if (cl_buf_append(&p->msg->raw, d, n) < 0)
        return parser_error(p, 500, "Out of memory.");
    return 0;
}

/* Ends the string being accumulated (URL, header name or value) when `next` starts another. */
static int switch_piece(cl_http_parser *p, int next)
{
    http_msg *m = p->msg;
    int prev = p->piece;
    if (prev == next)
        return 0; /* http-parser continues the same string across reads */
    if (next == PIECE_VALUE && prev != PIECE_FIELD)
        return parser_error(p, 400, "Malformed request header.");
    switch (prev) {
    case PIECE_NONE:
    case PIECE_URL:
        if (raw_add(p, "", 1))
            return -1;
        break;
    case PIECE_FIELD:
        if (raw_add(p, "", 1))
            return -1;
        m->value_off[m->nhdr] = m->raw.len;
        if (next != PIECE_VALUE) { /* a header with no value callback: empty value */
            if (raw_add(p, "", 1))
                return -1;
            m->nhdr++;
        }
        break;
    case PIECE_VALUE:
        if (raw_add(p, "", 1))
            return -1;
        m->nhdr++;
        break;
    default:
        return parser_error(p, 400, "Malformed request.");
    }
    if (next == PIECE_FIELD) {
        if (m->nhdr >= CL_HTTP_MAX_HEADERS)
            return parser_error(p, 431, "The request has too many header fields.");
        if (count_header(p, 4)) /* ": " and CRLF */
            return -1;
        m->name_off[m->nhdr] = m->raw.len;
    }
    p->piece = next;
    return 0;
}

static int on_message_begin(http_parser *hp)
{
    cl_http_parser *p = parser_of(hp);
    if (p->msg == NULL) {
        p->msg = cl_calloc(1, sizeof *p->msg);
        if (p->msg == NULL)
            return parser_error(p, 500, "Out of memory.");
        cl_buf_init_secret(&p->msg->raw); /* bodies, bearer tokens */
        cl_buf_init_secret(&p->msg->body);
    } else {
        cl_buf_reset(&p->msg->raw);
        cl_buf_reset(&p->msg->body);
        body_uncharge(p->msg);
        p->msg->nhdr = 0;
    }
    p->header_bytes = 0;
    p->piece = PIECE_NONE;
    p->headers_done = 0;
    p->expect_continue = 0;
    p->in_message = 1;
    return 0;
}

static int on_url(http_parser *hp, const char *at, size_t len)
{
    cl_http_parser *p = parser_of(hp);
    if (count_header(p, len))
        return -1;
    p->piece = PIECE_URL;
    return raw_add(p, at, len);
}

/* RFC 9110 §5.6.2 token characters. */
static int is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int on_header_field(http_parser *hp, const char *at, size_t len)
{
    cl_http_parser *p = parser_of(hp);
    if (p->headers_done) /* chunked trailer: bounded, not kept */
        return count_header(p, len);
    /* The distribution's http-parser is built non-strict and lets spaces into field names;
     * RFC 9112 §5.1 requires a 400 for whitespace before the colon, so check tchar here. */
    for (size_t i = 0; i < len; i++)
        if (!is_tchar((unsigned char)at[i]))
            return parser_error(p, 400, "Invalid character in a header field name.");
    if (switch_piece(p, PIECE_FIELD) || count_header(p, len) || raw_add(p, at, len))
        return -1;
    uint8_t *s = p->msg->raw.data + p->msg->raw.len - len;
    for (size_t i = 0; i < len; i++)
        if (s[i] >= 'A' && s[i] <= 'Z')
            s[i] = (uint8_t)(s[i] + ('a' - 'A'));
    return 0;
}

static int on_header_value(http_parser *hp, const char *at, size_t len)
{
    cl_http_parser *p = parser_of(hp);
    if (p->headers_done)
        return count_header(p, len);
    if (switch_piece(p, PIECE_VALUE) || count_header(p, len) || raw_add(p, at, len))
        return -1;
    return 0;
}

/* Whether `v`, without the spaces and tabs around it, equals `want` (case-insensitive). */
static int ows_equal(const char *v, const char *want)
{
    while (*v == ' ' || *v == '\t')
        v++;
    size_t n = strlen(want);
    if (strncasecmp(v, want, n) != 0)
        return 0;
    for (v += n; *v == ' ' || *v == '\t'; v++)
        ;
    return *v == '\0';
}

/* Whether a Host value (optional whitespace around it) is uri-host [":" port]: a reg-name or
 * IPv4 address of RFC 3986 characters, or a bracketed IPv6 literal (with an RFC 6874 zone); empty
 * is allowed (§3.2.2). */
static int host_valid(const char *v)
{
    while (*v == ' ' || *v == '\t')
        v++;
    size_t n = strlen(v);
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    size_t i = 0;
    if (n > 0 && v[0] == '[') {
        while (i < n && v[i] != ']')
            i++;
        if (i == n || i < 3)
            return 0;
        int zone = 0; /* after "%25" (RFC 6874) */
        for (size_t k = 1; k < i; k++) {
            unsigned char c = (unsigned char)v[k];
            zone |= c == '%';
            if (zone ? !isalnum(c) && strchr("%-._~", c) == NULL
                     : !isxdigit(c) && c != ':' && c != '.')
                return 0;
        }
        i++;
    } else {
        for (; i < n && v[i] != ':'; i++)
            if (!isalnum((unsigned char)v[i]) && strchr("-._~!$&'()*+,;=%", v[i]) == NULL)
                return 0;
    }
    if (i < n) {
        if (v[i] != ':')
            return 0;
        for (i++; i < n; i++)
            if (!isdigit((unsigned char)v[i]))
                return 0;
    }
    return 1;
}

/* Header value by lower-case name while the message is still in offset form. */
static const char *msg_header(const http_msg *m, const char *name)
{
    for (size_t i = 0; i < m->nhdr; i++)
        if (strcmp((const char *)m->raw.data + m->name_off[i], name) == 0)
            return (const char *)m->raw.data + m->value_off[i];
    return NULL;
}

static int on_headers_complete(http_parser *hp)
{
    cl_http_parser *p = parser_of(hp);
    if (switch_piece(p, PIECE_END))
        return -1;
    p->headers_done = 1;
    if (hp->http_major != 1)
        return parser_error(p, 505, "Only HTTP/1.0 and HTTP/1.1 are supported.");
    /* RFC 9112 §6.1: a transfer coding the server does not understand gets 501, and the only one
     * understood here is chunked, alone. Debian's non-strict http-parser takes any list ending in
     * chunked ("gzip, chunked") for chunked and would hand the still-encoded body on. */
    size_t nte = 0, nhost = 0;
    const char *te = NULL, *host = NULL, *expect = NULL;
    for (size_t i = 0; i < p->msg->nhdr; i++) {
        const char *name = (const char *)p->msg->raw.data + p->msg->name_off[i];
        const char *value = (const char *)p->msg->raw.data + p->msg->value_off[i];
        if (strcmp(name, "transfer-encoding") == 0) {
            nte++;
            te = value;
        } else if (strcmp(name, "host") == 0) {
            nhost++;
            host = value;
        } else if (expect == NULL && strcmp(name, "expect") == 0) {
            expect = value;
        }
    }
    if (nte > 1 || (te != NULL && !ows_equal(te, "chunked")))
        return parser_error(p, 501, "Only the chunked transfer coding is supported.");
    /* RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing (an HTTP/1.0
     * hop in front would not have read it as chunked): refused, and the connection closed. */
    if (te != NULL && hp->http_minor == 0)
        return parser_error(p, 400, "An HTTP/1.0 request cannot use Transfer-Encoding.");
    /* RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host, and for any request with more
     * than one Host or a Host that is not an authority (RFC 3986 §3.2: host and optional port). */
    if (nhost > 1)
        return parser_error(p, 400, "The request has more than one Host header.");
    if (host == NULL && hp->http_minor >= 1)
        return parser_error(p, 400, "An HTTP/1.1 request needs a Host header.");
    if (host != NULL && !host_valid(host))
        return parser_error(p, 400, "The Host header is not a valid host and port.");
    int has_body = (hp->flags & F_CHUNKED) != 0;
    if (hp->flags & F_CONTENTLENGTH) {
        /* Declared length checked before any of the body is stored (RFC 9110 §15.5.14). */
        if (hp->content_length > p->max_body)
            return parser_error(p, 413, "The request body exceeds the size limit.");
        if (body_charge(p, (size_t)hp->content_length))
            return -1;
        if (cl_buf_reserve(&p->msg->body, (size_t)hp->content_length + 1) < 0)
            return parser_error(p, 500, "Out of memory.");
        has_body = hp->content_length > 0;
    }
    /* RFC 9110 §10.1.1: an HTTP/1.0 request's expectation is ignored, and it gets no 1xx. The
     * value may carry optional whitespace on either side. */
    int v11 = hp->http_major > 1 || (hp->http_major == 1 && hp->http_minor >= 1);
    p->expect_continue = has_body && v11 && expect != NULL && ows_equal(expect, "100-continue");
    return 0;
}

static int on_chunk_header(http_parser *hp)
{
    cl_http_parser *p = parser_of(hp);
    /* The announced chunk size counts before its bytes arrive. */
    if (hp->content_length > p->max_body - p->msg->body.len)
        return parser_error(p, 413, "The request body exceeds the size limit.");
    return 0;
}

/* Passes the framing bytes from p->scan_from up to `end` through cl_http_framing_scan
 * (net/framing.h: the RFC 9112 rules Debian's non-strict http-parser does not hold). */
static int scan_framing(cl_http_parser *p, const uint8_t *end)
{
    const char *why = cl_http_framing_scan(&p->fr, p->scan_from, (size_t)(end - p->scan_from));
    p->scan_from = end;
    return why != NULL ? parser_error(p, 400, why) : 0;
}

static int on_body(http_parser *hp, const char *at, size_t len)
{
    cl_http_parser *p = parser_of(hp);
    /* The framing before these body bytes is checked, the bytes themselves are not; the end of
     * a chunk's data (the parser counts content_length down to 0) expects its CRLF. */
    if (scan_framing(p, (const uint8_t *)at))
        return -1;
    p->scan_from = (const uint8_t *)at + len;
    p->fr.after_data = (hp->flags & F_CHUNKED) && hp->content_length == 0;
    p->expect_continue = 0;
    if (len > p->max_body - p->msg->body.len)
        return parser_error(p, 413, "The request body exceeds the size limit.");
    if (body_charge(p, p->msg->body.len + len)) /* a declared length was counted whole */
        return -1;
    if (cl_buf_append(&p->msg->body, at, len) < 0)
        return parser_error(p, 500, "Out of memory.");
    return 0;
}

/* Turns the offsets into the request's pointers; adds the path and query strings. */
static int msg_finish(cl_http_parser *p, http_msg *m)
{
    const char *t = (const char *)m->raw.data; /* the target is at offset 0 */
    size_t tlen = strlen(t);
    /* RFC 9112 §3.2 and RFC 3986: a target is printable ASCII without spaces or a fragment.
     * Debian's non-strict http-parser lets tabs, form feeds, bytes over 0x7F and '#' through. */
    for (size_t i = 0; i < tlen; i++) {
        unsigned char ch = (unsigned char)t[i];
        if (ch <= 0x20 || ch >= 0x7f || ch == '#')
            return parser_error(p, 400,
                                "The request target holds a character a URI cannot hold "
                                "(a control character, a space, a non-ASCII byte or '#').");
    }
    /* RFC 9112 §3.2: the path and query of the request target, as offsets into it. */
    size_t poff = 0, plen = tlen, qoff = 0, qlen = 0;
    if (t[0] == '/') { /* origin-form */
        const char *q = memchr(t, '?', tlen);
        if (q != NULL) {
            plen = (size_t)(q - t);
            qoff = plen + 1;
            qlen = tlen - qoff;
        }
    } else if (strcmp(t, "*") == 0) { /* asterisk-form: the path "*" */
        if (p->hp.method != HTTP_OPTIONS)
            return parser_error(p, 400, "The request target * is only for OPTIONS.");
    } else if (p->hp.method == HTTP_CONNECT) { /* authority-form */
        return parser_error(p, 501, "The CONNECT method is not supported.");
    } else { /* absolute-form: accepted, and its authority stands in for Host (§3.2.2) */
        struct http_parser_url u;
        http_parser_url_init(&u);
        unsigned need = 1u << UF_SCHEMA | 1u << UF_HOST;
        if (http_parser_parse_url(t, tlen, 0, &u) != 0 || (u.field_set & need) != need ||
            (u.field_set & (1u << UF_USERINFO)) != 0 ||
            !((u.field_data[UF_SCHEMA].len == 4 && strncasecmp(t, "http", 4) == 0) ||
              (u.field_data[UF_SCHEMA].len == 5 && strncasecmp(t, "https", 5) == 0)))
            return parser_error(p, 400,
                                "The request target must be an absolute path or an http or "
                                "https URI without user information.");
        plen = 0; /* no path: "/" */
        if (u.field_set & (1u << UF_PATH)) {
            poff = u.field_data[UF_PATH].off;
            plen = u.field_data[UF_PATH].len;
        }
        if (u.field_set & (1u << UF_QUERY)) {
            qoff = u.field_data[UF_QUERY].off;
            qlen = u.field_data[UF_QUERY].len;
        }
    }
    /* Reserved up front: the copies below read from the arena they append to. */
    if (cl_buf_reserve(&m->raw, tlen + 3) < 0 || cl_buf_append(&m->body, "", 1) < 0)
        return parser_error(p, 500, "Out of memory.");
    size_t path_off = m->raw.len;
    if ((plen > 0 ? raw_add(p, m->raw.data + poff, plen) : raw_add(p, "/", 1)) || raw_add(p, "", 1))
        return -1;
    size_t query_off = m->raw.len;
    if (raw_add(p, m->raw.data + qoff, qlen) || raw_add(p, "", 1))
        return -1;

    cl_http_request *r = &m->req;
    char *base = (char *)m->raw.data;
    r->method = http_method_str((enum http_method)p->hp.method);
    r->target = base;
    r->path = base + path_off;
    r->query = base + query_off;
    for (size_t i = 0; i < m->nhdr; i++) {
        char *v = base + m->value_off[i];
        size_t vl = strlen(v);
        while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
            v[--vl] = '\0';
        r->headers[i].name = base + m->name_off[i];
        r->headers[i].value = v;
    }
    r->nheaders = m->nhdr;
    r->body = m->body.data;
    r->body_len = m->body.len - 1;
    r->client_fingerprint[0] = '\0';
    r->client_not_before = r->client_not_after = 0;
    r->peer[0] = '\0';
    r->request_id = ++p->next_id;
    r->start_ns = uv_hrtime();
    m->keep_alive = http_should_keep_alive(&p->hp) && !p->hp.upgrade;
    m->http_minor = p->hp.http_minor;
    m->head = p->hp.method == HTTP_HEAD;
    return 0;
}

static int on_message_complete(http_parser *hp)
{
    cl_http_parser *p = parser_of(hp);
    http_msg *m = p->msg;
    if (msg_finish(p, m))
        return -1;
    p->in_message = 0;
    p->expect_continue = 0;
    if (hp->upgrade)
        p->upgraded = 1; /* no protocol switch here: the rest of the stream is ignored */
    /* Stop after each message (the only pause): parser_exec delivers it once the rest of its
     * framing passed. */
    http_parser_pause(hp, 1);
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_chunk_header = on_chunk_header,
};

/* For the server's callback: takes ownership of the message just completed and holds the
 * parser (parser_exec returns after this message). */
static http_msg *parser_take(cl_http_parser *p)
{
    http_msg *m = p->msg;
    p->msg = NULL;
    p->hold = 1;
    return m;
}

/* Parses data[0..len): *used = bytes consumed. Stops early only when the owner took a message.
 * Returns CL_OK or the parser's error (then p->status says what to answer). */
static int parser_exec(cl_http_parser *p, const uint8_t *data, size_t len, size_t *used)
{
    *used = 0;
    p->hold = 0;
    while (p->status == 0 && *used < len) {
        if (p->upgraded) {
            *used = len;
            break;
        }
        size_t left = len - *used;
        p->scan_from = data + *used;
        size_t n = http_parser_execute(&p->hp, &parser_settings, (const char *)data + *used, left);
        *used += n;
        enum http_errno e = HTTP_PARSER_ERRNO(&p->hp);
        if ((e == HPE_OK || e == HPE_PAUSED) && scan_framing(p, data + *used))
            break;
        if (e == HPE_PAUSED) { /* a message is complete */
            http_parser_pause(&p->hp, 0);
            p->fr.state = CL_FR_IDLE;
            p->cb(p->cb_arg, &p->msg->req);
            if (p->hold)
                return CL_OK;
            continue;
        }
        if (e != HPE_OK) {
            if (e == HPE_HEADER_OVERFLOW)
                parser_error(p, 431, "The request headers exceed the size limit.");
            else
                parser_error(p, 400, http_errno_description(e));
            break;
        }
        if (n == 0) {
            parser_error(p, 400, "Malformed request.");
            break;
        }
    }
    return p->status ? p->err : CL_OK;
}

int cl_http_parser_new(size_t max_header_bytes, size_t max_body_bytes, cl_http_parsed_cb cb,
                       void *arg, cl_http_parser **out)
{
    *out = NULL;
    if (cb == NULL)
        return CL_EINVAL;
    cl_http_parser *p = cl_calloc(1, sizeof *p);
    if (p == NULL)
        return CL_ENOMEM;
    http_parser_init(&p->hp, HTTP_REQUEST);
    p->hp.data = p;
    p->max_header = max_header_bytes ? max_header_bytes : DEFAULT_MAX_HEADER_BYTES;
    p->max_body = max_body_bytes ? max_body_bytes : DEFAULT_MAX_BODY_BYTES;
    p->cb = cb;
    p->cb_arg = arg;
    *out = p;
    return CL_OK;
}

int cl_http_parser_feed(cl_http_parser *p, const void *data, size_t len, int *status_out)
{
    size_t used = 0;
    int rc = parser_exec(p, data, len, &used);
    *status_out = p->status;
    return rc;
}

void cl_http_parser_free(cl_http_parser *p)
{
    if (p == NULL)
        return;
    msg_free(p->msg);
    cl_free(p);
}

const char *cl_http_header_get(const cl_http_request *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

/* ---- server ---------------------------------------------------------------------------------- */

typedef struct http_conn http_conn;
typedef struct http_worker http_worker;

struct cl_http_exchange {
    http_msg *msg;
    http_conn *conn; /* NULL once the connection is gone (touched only by the owning worker) */
    cl_http_server *srv;
    http_worker *w;             /* the loop that owns the connection */
    cl_http_exchange *next;     /* queue link (request queue, then reply queue) */
    cl_buf out;                 /* threaded mode: the serialised reply */
    size_t counted;             /* bytes of `out` added to srv->queued until the worker sends it */
    int status, keep_alive, ok; /* threaded mode: reply outcome for the worker */
    int local;                  /* taken by local_handler: answered on the owning worker */
    int in_local, built;        /* inside local_handler; reply serialised into `out` meanwhile */
};

/* TM_SEND: a closing connection still has replies to write; re-armed by every completed write.
 * TM_LINGER: everything is written and FIN sent; the peer's last bytes are read and dropped. */
enum { TM_NONE, TM_IDLE, TM_REQUEST, TM_SEND, TM_LINGER };

struct http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shutdown;
    cl_http_server *srv;
    http_worker *w;
    http_conn *prev, *next;
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
    cl_http_parser *parser;
    http_msg *taken; /* message completed by the last parser_exec, not yet dispatched */
    cl_buf in;       /* decrypted bytes; in.data[inpos..len) not parsed yet */
    size_t inpos;
    cl_http_exchange *x; /* request being handled */
    int open_handles;
    int tmode;
    int handshake_done, reading, in_pump, closing, draining, shut;
    int idle_step;  /* the idle timer is on its first step: free the buffers, then wait the rest */
    int write_wait; /* requests wait until the peer reads our replies (REPLY_BACKLOG) */
    int peer_eof;   /* the peer half-closed while its request was being handled */
    unsigned pending_writes;
    char fingerprint[96];
    int64_t not_before, not_after; /* the client certificate's validity (tls.h) */
    char peer[64];
};

/* One event loop serving connections. Single-loop mode: one worker whose loop is the server's
 * loop (no thread). Threaded mode: each worker runs its own loop on its own thread; the fields
 * under "inbox" are shared with the main loop under mu, everything else is the worker's own. */
struct http_worker {
    cl_http_server *srv;
    uv_loop_t *loop;
    uv_loop_t own_loop;
    uv_thread_t thread;
    cl_waker wake; /* replies, sockets and the stop request from the main loop */
    uv_mutex_t mu;
    int threaded;
    int wake_due; /* main loop's: a reply marked a wake-up while the server was corked */
    /* inbox (under mu) */
    int *fds;
    size_t nfds, capfds;
    cl_http_exchange *rep_head, *rep_tail;
    int stop_req;
    int finished; /* under srv->mu: the thread left its loop */
    /* the worker's own state */
    http_conn *conns;
    size_t nconns;
    size_t outstanding; /* exchanges handed to the main loop and not yet answered back */
    int started, stopping, wake_closing, joined;
    char readbuf[65536]; /* uv_read target; consumed synchronously by on_read */
};

struct cl_http_server {
    uv_loop_t *loop;
    cl_http_server_opts o;
    http_worker *workers;
    size_t nworkers, next_worker;
    size_t inflight;
    body_pool bodies;  /* request bodies held, over all connections */
    uint64_t next_id;  /* atomic */
    size_t live_conns; /* atomic: connections accepted and not yet freed */
    int threaded, wake_inited, lpoll_inited;
    int stopping, listener_closed, finished;
    int free_buffers_ok; /* cl_http_idle_frees_tls_buffers() */
    unsigned corked;     /* main loop: cl_http_server_cork depth */
    void (*done)(void *arg);
    void *done_arg;
    /* The listening socket, polled on the main loop in both modes: libuv's own listener (uv_listen)
     * calls back with UV_EMFILE in a loop that never returns to the event loop once its reserve
     * descriptor is gone, so accepting is ours (on_accept_ready, accept_out_of_fds). */
    int lfd;
    int spare_fd;           /* held open to be given up when accept runs out of descriptors */
    uint64_t emfile_log_ms; /* the last "out of descriptors" line (at most one a second) */
    uv_poll_t lpoll;
    /* No descriptor even for the spare: the listener is not polled until this fires (it stays
     * readable, and a level-triggered poll would call back at once, for ever). */
    uv_timer_t accept_pause;
    int listen_handles; /* lpoll and accept_pause not yet closed */
    /* threaded mode: the request queue */
    cl_waker wake; /* requests and "finished" from the workers */
    uv_mutex_t mu;
    cl_http_exchange *req_head, *req_tail; /* under mu */
    size_t queued; /* atomic: reply bytes handed to uv_write and not yet written (or dropped),
                    * and replies made on the main loop not yet taken by their worker */
};

typedef struct {
    uv_write_t req;
    http_conn *c;
    size_t len;
    char data[];
} write_req;

static void conn_pump(http_conn *c);
static void set_reading(http_conn *c, int on);
static void worker_deliver(http_worker *w, cl_http_exchange *x);
static void conn_finish(http_conn *c, int close_notify);

static void server_free(cl_http_server *s)
{
    void (*done)(void *) = s->done;
    void *arg = s->done_arg;
    if (s->spare_fd >= 0)
        close(s->spare_fd);
    cl_free(s->workers);
    cl_free(s);
    if (done != NULL)
        done(arg);
}

static void on_server_wake_closed(uv_handle_t *h)
{
    cl_http_server *s = h->data;
    cl_waker_close_fd(&s->wake); /* every worker has been joined */
    server_free(s);
}

static void maybe_finish_stop(cl_http_server *s)
{
    if (!s->stopping || !s->listener_closed || s->inflight > 0 || s->finished)
        return;
    if (!s->threaded) {
        if (s->workers[0].nconns > 0)
            return;
        s->finished = 1;
        server_free(s);
        return;
    }
    for (size_t i = 0; i < s->nworkers; i++)
        if (s->workers[i].started && !s->workers[i].joined)
            return;
    s->finished = 1;
    uv_mutex_destroy(&s->mu);
    uv_close((uv_handle_t *)&s->wake.poll, on_server_wake_closed);
}

static void worker_maybe_finish(http_worker *w)
{
    if (!w->threaded || !w->stopping || w->nconns > 0 || w->outstanding > 0 || w->wake_closing)
        return;
    w->wake_closing = 1;
    /* The worker's loop then runs out of handles; the descriptor is closed after the join. */
    uv_close((uv_handle_t *)&w->wake.poll, NULL);
}

static void conn_free(http_conn *c)
{
    cl_http_server *s = c->srv;
    http_worker *w = c->w;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    w->nconns--;
    SSL_free(c->ssl);
    cl_http_parser_free(c->parser);
    msg_free(c->taken);
    cl_buf_free(&c->in);
    cl_free(c);
    __atomic_sub_fetch(&s->live_conns, 1, __ATOMIC_RELAXED);
    if (w->threaded)
        worker_maybe_finish(w);
    else
        maybe_finish_stop(s);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    http_conn *c = h->data;
    if (--c->open_handles == 0)
        conn_free(c);
}

/* Immediate close. Safe to call more than once; the conn is freed by the close callbacks. */
static void conn_close(http_conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (c->x != NULL) {
        c->x->conn = NULL;
        c->x = NULL;
    }
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
}

/* Before OpenSSL 3.0.14, 3.1.6, 3.2.2 and 3.3.1, SSL_free_buffers freed a read buffer that held
 * part of a record (CVE-2024-4741): a client that sent a record's first bytes and waited made the
 * rest land in freed memory. With those libraries OpenSSL releases the buffers itself after every
 * record (SSL_MODE_RELEASE_BUFFERS, set per connection; not the bug), paying the wipe per record.
 * A distribution's backport keeps the old number: it is treated as unfixed. Exported for tests. */
int cl_http_idle_frees_tls_buffers(void)
{
    unsigned long v = OpenSSL_version_num(); /* 0xMNN00PP0 */
    unsigned major = (unsigned)(v >> 28), minor = (unsigned)(v >> 20) & 0xff,
             patch = (unsigned)(v >> 4) & 0xff;
    static const unsigned first_fixed[4] = {14, 6, 2, 1}; /* 3.0 .. 3.3 */
    return major > 3 || (major == 3 && (minor > 3 || patch >= first_fixed[minor]));
}

/* An idle connection gives back what it holds for traffic (wiped: secret buffers, and
 * SSL_OP_CLEANSE_PLAINTEXT for OpenSSL's). Nothing is freed that holds unread or unsent bytes. */
static void release_buffers(http_conn *c)
{
    if (c->inpos == c->in.len) {
        cl_buf_free(&c->in);
        c->inpos = 0;
    }
    /* SSL_free_buffers itself refuses (0) while a record is pending in a fixed library */
    if (c->srv->free_buffers_ok && !SSL_has_pending(c->ssl))
        (void)SSL_free_buffers(c->ssl);
}

static void on_timer(uv_timer_t *t)
{
    http_conn *c = t->data;
    if (c->tmode == TM_IDLE && c->idle_step) {
        c->idle_step = 0;
        release_buffers(c);
        uv_timer_start(&c->timer, on_timer, c->srv->o.idle_timeout_ms - KEEP_BUFFERS_MS, 0);
        return;
    }
    if (c->tmode != TM_LINGER)
        cl_logf(CL_LOG_DEBUG, "http: closing %s: %s timeout", c->peer,
                c->tmode == TM_IDLE   ? "idle"
                : c->tmode == TM_SEND ? "send"
                                      : "request");
    conn_close(c);
}

static void set_timer(http_conn *c, int mode)
{
    if (c->tmode == mode || c->closing)
        return;
    c->tmode = mode;
    const cl_http_server_opts *o = &c->srv->o;
    uint64_t ms = o->idle_timeout_ms;
    if (mode == TM_REQUEST || mode == TM_SEND)
        ms = o->request_timeout_ms;
    else if (mode == TM_LINGER)
        ms = o->idle_timeout_ms < LINGER_MAX_MS ? o->idle_timeout_ms : LINGER_MAX_MS;
    c->idle_step = mode == TM_IDLE && ms > KEEP_BUFFERS_MS;
    if (c->idle_step)
        ms = KEEP_BUFFERS_MS;
    if (mode == TM_NONE)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_timer, ms, 0);
}

static int write_blocked(http_conn *c) { return c->tcp.write_queue_size > REPLY_BACKLOG; }

static void on_write(uv_write_t *req, int status)
{
    write_req *w = (write_req *)req;
    http_conn *c = w->c;
    __atomic_sub_fetch(&c->srv->queued, w->len, __ATOMIC_RELAXED);
    cl_free(w);
    c->pending_writes--;
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->draining && c->pending_writes == 0) {
        conn_finish(c, 0);
    } else if (c->tmode == TM_SEND || c->tmode == TM_IDLE) {
        /* Progress: the send timer, or the idle timer of a connection whose reply is still
         * going out, counts from here. */
        int mode = c->tmode;
        set_timer(c, TM_NONE);
        set_timer(c, mode);
    } else if (c->write_wait) {
        /* The peer read something: its request timeout counts from here; pump_body takes the
         * next requests once the backlog is under REPLY_BACKLOG, or starts the timer again. */
        set_timer(c, TM_NONE);
        conn_pump(c);
    }
}

/* Queues w (len bytes of data) behind whatever is being written; frees w on failure. */
static int submit_write(http_conn *c, write_req *w, size_t len)
{
    w->c = c;
    w->len = len;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
        cl_free(w);
        return CL_EIO;
    }
    __atomic_add_fetch(&c->srv->queued, len, __ATOMIC_RELAXED);
    c->pending_writes++;
    return CL_OK;
}

/* Moves everything OpenSSL wrote into the write BIO onto the socket. While nothing is queued, a
 * reply of up to TRY_WRITE_MAX bytes is written at once with uv_try_write and only a remainder
 * the socket did not take is queued: a uv_write request that completes makes libuv re-arm the
 * socket's epoll entry (one epoll_ctl per reply, on every keep-alive request). */
static int flush_tls(http_conn *c)
{
    size_t n;
    while (!c->closing && (n = BIO_ctrl_pending(c->wbio)) > 0) {
        if (c->pending_writes == 0 && n <= TRY_WRITE_MAX) {
            char buf[TRY_WRITE_MAX];
            int got = BIO_read(c->wbio, buf, (int)n);
            if (got <= 0)
                return CL_EIO;
            uv_buf_t b = uv_buf_init(buf, (unsigned)got);
            int put = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
            if (put == UV_EAGAIN)
                put = 0;
            else if (put < 0)
                return CL_EIO;
            if (put < got) {
                write_req *w = cl_malloc(sizeof *w + (size_t)(got - put));
                if (w == NULL)
                    return CL_ENOMEM;
                memcpy(w->data, buf + put, (size_t)(got - put));
                CL_TRY(submit_write(c, w, (size_t)(got - put)));
            }
            continue;
        }
        if (n > WRITE_CHUNK)
            n = WRITE_CHUNK;
        write_req *w = cl_malloc(sizeof *w + n);
        if (w == NULL)
            return CL_ENOMEM;
        int got = BIO_read(c->wbio, w->data, (int)n);
        if (got <= 0) {
            cl_free(w);
            return CL_EIO;
        }
        CL_TRY(submit_write(c, w, (size_t)got));
    }
    return CL_OK;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    http_conn *c = h->data;
    (void)suggested;
    buf->base = c->w->readbuf;
    buf->len = sizeof c->w->readbuf;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    http_conn *c = st->data;
    if (nread == 0 || c->closing)
        return;
    if (nread == UV_EOF && c->x != NULL && !c->draining) {
        /* Half-closed after sending a request (a client may shut its write side and wait for
         * the answer): the reply is still sent, then the connection is finished. */
        c->peer_eof = 1;
        set_reading(c, 0);
        return;
    }
    if (nread == UV_EOF && c->x == NULL && c->pending_writes > 0) {
        conn_finish(c, 0); /* half-closed with replies still queued: write them, then close */
        return;
    }
    if (nread < 0) { /* EOF or error; a pending exchange is detached and freed on reply */
        conn_close(c);
        return;
    }
    if (c->draining) /* lingering after the last reply: input is discarded */
        return;
    if (BIO_write(c->rbio, buf->base, (int)nread) != (int)nread) {
        conn_close(c);
        return;
    }
    conn_pump(c);
}

static void set_reading(http_conn *c, int on)
{
    if (c->closing || c->reading == on)
        return;
    if (on) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
            conn_close(c);
            return;
        }
    } else {
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
    c->reading = on;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    http_conn *c = req->data;
    if (status < 0 && !c->closing)
        conn_close(c);
}

/* Graceful close: queue TLS close_notify (when asked), let the writes finish, send FIN, then
 * read and discard until the peer closes or the linger timer fires, so that the peer is not
 * reset while our last reply is still unread (RFC 9112 §9.6). */
static void conn_finish(http_conn *c, int close_notify)
{
    if (c->closing)
        return;
    if (!c->draining) {
        c->draining = 1;
        if (close_notify && c->handshake_done) {
            ERR_clear_error();
            (void)SSL_shutdown(c->ssl);
            ERR_clear_error();
        }
        if (flush_tls(c) < 0) {
            conn_close(c);
            return;
        }
    }
    if (c->pending_writes > 0) {
        set_timer(c, TM_SEND);
        return; /* on_write calls back */
    }
    set_timer(c, TM_LINGER);
    if (c->w->stopping) {
        conn_close(c);
        return;
    }
    if (c->shut)
        return;
    c->shut = 1;
    c->shutdown.data = c;
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        conn_close(c);
        return;
    }
    set_reading(c, 1);
}

static void http_date_format(time_t t, char out[40]);

/* IMF-fixdate (RFC 9110 §5.6.7) of now, formatted once per second per thread. */
static void http_date(char out[40])
{
    static _Thread_local time_t cached_t = -1;
    static _Thread_local char cached[40];
    time_t t = time(NULL);
    if (t != cached_t) {
        http_date_format(t, cached);
        cached_t = t;
    }
    memcpy(out, cached, sizeof cached);
}

static void http_date_format(time_t t, char out[40])
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL) {
        snprintf(out, 40, "Thu, 01 Jan 1970 00:00:00 GMT");
        return;
    }
    snprintf(out, 40, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7], tm.tm_mday,
             months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static int buf_str(cl_buf *b, const char *s) { return cl_buf_append(b, s, strlen(s)); }

/* Decimal v, without printf (build_reply runs for every response). */
static int buf_u64(cl_buf *b, uint64_t v)
{
    char tmp[CL_U64_DEC_MAX + 1];
    return cl_buf_append(b, tmp, cl_u64_dec(v, tmp));
}

/* Names the server writes itself; a caller's copy would corrupt the framing. */
static int reserved_header(const char *name)
{
    return strcasecmp(name, "content-length") == 0 || strcasecmp(name, "transfer-encoding") == 0 ||
           strcasecmp(name, "connection") == 0 || strcasecmp(name, "date") == 0;
}

/* A client request id is echoed only when it is 1..256 visible ASCII characters (spec §4.2). */
static int echoable_client_id(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n > 256)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (v[i] < 0x21 || v[i] > 0x7e)
            return 0;
    return 1;
}

typedef struct {
    int status;
    const char *const *headers;
    size_t n;
    const void *body;
    size_t len;
    int keep_alive;
    int http_minor;
    int head;
    uint64_t request_id;
    const char *client_request_id; /* NULL: none to echo */
} reply_spec;

static int build_reply(const reply_spec *r, cl_buf *b)
{
    int rc = CL_OK;
    const char *reason = http_status_str((enum http_status)r->status);
    if (reason[0] == '<')
        reason = "Status";
    CL_TRY(cl_buf_reserve(b, 256 + r->len));
    CL_TRY(cl_buf_append(b, CL_LIT("HTTP/1.1 ")));
    CL_TRY(buf_u64(b, (uint64_t)r->status));
    CL_TRY(cl_buf_append(b, CL_LIT(" ")));
    CL_TRY(buf_str(b, reason));
    CL_TRY(cl_buf_append(b, CL_LIT("\r\n")));
    int has_type = 0, has_id = 0, has_client_id = 0;
    for (size_t i = 0; i < r->n; i++) {
        const char *name = r->headers[2 * i], *value = r->headers[2 * i + 1];
        if (name == NULL || value == NULL || name[0] == '\0' || reserved_header(name))
            continue;
        /* No header splitting through a caller's value. */
        if (strpbrk(name, "\r\n: \t") != NULL || strpbrk(value, "\r\n") != NULL)
            continue;
        has_type |= strcasecmp(name, "content-type") == 0;
        has_id |= strcasecmp(name, "x-ms-request-id") == 0;
        has_client_id |= strcasecmp(name, "x-ms-client-request-id") == 0;
        CL_TRY(buf_str(b, name));
        CL_TRY(cl_buf_append(b, ": ", 2));
        CL_TRY(buf_str(b, value));
        CL_TRY(cl_buf_append(b, "\r\n", 2));
    }
    if (!has_id) {
        CL_TRY(cl_buf_append(b, CL_LIT("x-ms-request-id: ")));
        CL_TRY(buf_u64(b, r->request_id));
        CL_TRY(cl_buf_append(b, CL_LIT("\r\n")));
    }
    if (!has_client_id && r->client_request_id != NULL) {
        CL_TRY(buf_str(b, "x-ms-client-request-id: "));
        CL_TRY(buf_str(b, r->client_request_id));
        CL_TRY(cl_buf_append(b, "\r\n", 2));
    }
    char date[40];
    http_date(date);
    CL_TRY(cl_buf_append(b, CL_LIT("Date: ")));
    CL_TRY(buf_str(b, date));
    CL_TRY(cl_buf_append(b, CL_LIT("\r\n")));
    if (r->status != 204 && r->status >= 200) { /* RFC 9110 §8.6: none on 1xx and 204 */
        CL_TRY(cl_buf_append(b, CL_LIT("Content-Length: ")));
        CL_TRY(buf_u64(b, r->len));
        CL_TRY(cl_buf_append(b, CL_LIT("\r\n")));
    }
    if (r->len > 0 && !has_type)
        CL_TRY(buf_str(b, "Content-Type: application/json\r\n"));
    if (!r->keep_alive)
        CL_TRY(buf_str(b, "Connection: close\r\n"));
    else if (r->http_minor == 0)
        CL_TRY(buf_str(b, "Connection: keep-alive\r\n"));
    CL_TRY(cl_buf_append(b, "\r\n", 2));
    if (!r->head && r->len > 0)
        rc = cl_buf_append(b, r->body, r->len);
    return rc;
}

/* Empties this thread's OpenSSL error queue, which SSL_get_error needs empty before each TLS
 * call. ERR_clear_error walks all 16 slots of the queue even when it is empty (2% of a read's
 * CPU, called around every SSL_read and SSL_write); peeking first costs one thread-local
 * lookup. */
static inline void tls_clear_errors(void)
{
    if (ERR_peek_error() != 0)
        ERR_clear_error();
}

/* Encrypts and queues a reply a TLS record at a time, each moved out of the write BIO before the
 * next: a memory BIO keeps the largest size it ever held for the connection's life, so a 1 MiB
 * list page encrypted at once left ~1 MiB behind in every connection that ever read one (300 such
 * connections: ~300 MB; bench/slow_readers.py). Flushing only every WRITE_CHUNK would make a
 * quarter of the write requests for large replies, but leave ~80 KiB in every such connection
 * (300 of them: +33 MiB against +20 MiB measured), idle or not; the memory bound wins. */
#define TLS_PIECE (16 * 1024) /* the largest TLS record's plaintext */
static int tls_write_all(http_conn *c, const uint8_t *p, size_t n)
{
    while (n > 0) {
        int chunk = n > TLS_PIECE ? TLS_PIECE : (int)n;
        tls_clear_errors();
        int w = SSL_write(c->ssl, p, chunk);
        if (w <= 0) {
            ERR_clear_error();
            return CL_EIO;
        }
        p += w;
        n -= (size_t)w;
        CL_TRY(flush_tls(c));
    }
    return CL_OK;
}

static int send_reply(http_conn *c, const reply_spec *r)
{
    cl_buf b = CL_BUF_SECRET; /* error bodies may quote the request */
    int rc = build_reply(r, &b);
    if (rc == CL_OK)
        rc = tls_write_all(c, b.data, b.len);
    cl_buf_free(&b);
    return rc;
}

/* Path for the access log: printable ASCII kept, everything else %XX, bounded. */
static void log_safe(const char *in, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *s = (const unsigned char *)in; *s != '\0' && o + 4 < cap; s++) {
        if (*s > 0x20 && *s < 0x7f && *s != '%') {
            out[o++] = (char)*s;
        } else {
            out[o++] = '%';
            out[o++] = hex[*s >> 4];
            out[o++] = hex[*s & 15];
        }
    }
    out[o] = '\0';
}

static void access_log(cl_http_server *s, const char *method, const char *path, int status,
                       uint64_t start_ns, const char *fingerprint, const char *peer,
                       uint64_t request_id)
{
    if (!s->o.access_log || cl_log_get_level() > CL_LOG_INFO)
        return;
    char safe[512];
    log_safe(path, safe, sizeof safe);
    uint64_t now = uv_hrtime();
    json_t *f = json_object();
    if (f == NULL)
        return;
    json_object_set_new(f, "method", json_string(method));
    json_object_set_new(f, "path", json_string(safe));
    json_object_set_new(f, "status", json_integer(status));
    json_object_set_new(f, "us",
                        json_integer(now > start_ns ? (json_int_t)((now - start_ns) / 1000) : 0));
    json_object_set_new(f, "caller", json_string(fingerprint[0] ? fingerprint : "-"));
    json_object_set_new(f, "peer", json_string(peer));
    json_object_set_new(f, "request_id", json_integer((json_int_t)request_id));
    cl_log(CL_LOG_INFO, "http request", f);
    json_decref(f);
}

static const char *error_code(const cl_http_error_style *st, int status)
{
    switch (status) {
    case 400:
        return st != NULL && st->bad_request_code != NULL ? st->bad_request_code : "InvalidInput";
    case 413:
        return "RequestBodyTooLarge";
    case 431:
        return "RequestHeaderFieldsTooLarge";
    case 501:
        return "NotImplemented";
    case 503:
        return "ServiceUnavailable";
    case 505:
        return "HttpVersionNotSupported";
    default:
        return "InternalError";
    }
}

/* The client request id of a message the parser gave up on, when its headers were complete
 * (a 413 on the declared or received body, a malformed chunk): copied into `out` with the
 * trailing whitespace the parser has not trimmed yet; "" when there is none to echo. */
static void failed_client_request_id(const cl_http_parser *p, char *out, size_t cap)
{
    out[0] = '\0';
    if (!p->headers_done || p->msg == NULL)
        return;
    const char *v = msg_header(p->msg, "x-ms-client-request-id");
    if (v == NULL)
        return;
    size_t n = strlen(v);
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n >= cap)
        return;
    memcpy(out, v, n);
    out[n] = '\0';
    if (!echoable_client_id(out))
        out[0] = '\0';
}

/* Answers a request that could not be parsed (or accepted), then closes. */
static void reply_error_and_close(http_conn *c, int status, const char *message)
{
    cl_http_server *s = c->srv;
    uint64_t id = __atomic_add_fetch(&s->next_id, 1, __ATOMIC_RELAXED);
    char cid[257];
    failed_client_request_id(c->parser, cid, sizeof cid);
    const cl_http_error_style *st = s->o.error_style;
    const char *code = error_code(st, status);
    json_t *j = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message",
                          message != NULL ? message : "Malformed request.");
    char *body = j != NULL ? cl_json_dump(j) : NULL;
    json_decref(j);
    /* RFC 9110 §9.3.2: no body to a HEAD, once the request line said HEAD (its target is the
     * first thing the message holds; http-parser knows the method before the target starts). */
    const cl_http_parser *p = c->parser;
    int head = p->msg != NULL && p->msg->raw.len > 0 && p->hp.method == HTTP_HEAD;
    /* The service's look (cl_http_error_style), when it has one. */
    const char *h[8];
    size_t n = 0;
    char uuid[40];
    if (st != NULL && st->content_type != NULL) {
        h[n++] = "Content-Type";
        h[n++] = st->content_type;
    }
    if (st != NULL && st->uuid_request_id) {
        snprintf(uuid, sizeof uuid, "00000000-0000-4000-8000-%012llx",
                 (unsigned long long)(id & 0xffffffffffffULL));
        h[n++] = "x-ms-request-id";
        h[n++] = uuid;
    }
    if (st != NULL && st->error_code_header) {
        h[n++] = "x-ms-error-code";
        h[n++] = code;
    }
    if (st != NULL && st->extra_name != NULL && st->extra_value != NULL) {
        h[n++] = st->extra_name;
        h[n++] = st->extra_value;
    }
    if (status == 503) { /* the body pool is full for now */
        h[n++] = "Retry-After";
        h[n++] = "1";
    }
    reply_spec r = {.status = status,
                    .headers = h,
                    .n = n / 2,
                    .body = body,
                    .len = body != NULL ? strlen(body) : 0,
                    .keep_alive = 0,
                    .http_minor = 1,
                    .head = head,
                    .request_id = id,
                    .client_request_id = cid[0] != '\0' ? cid : NULL};
    int rc = send_reply(c, &r);
    cl_free(body);
    access_log(s, "-", "-", status, uv_hrtime(), c->fingerprint, c->peer, id);
    if (rc < 0)
        conn_close(c);
    else
        conn_finish(c, 1);
}

static void on_parsed(void *arg, cl_http_request *req)
{
    http_conn *c = arg;
    (void)req;
    c->taken = parser_take(c->parser);
}

static void dispatch(http_conn *c)
{
    cl_http_server *s = c->srv;
    http_msg *m = c->taken;
    c->taken = NULL;
    cl_http_exchange *x = cl_calloc(1, sizeof *x);
    if (x == NULL) {
        msg_free(m);
        reply_error_and_close(c, 500, "Out of memory.");
        return;
    }
    x->msg = m;
    x->conn = c;
    cl_buf_init_secret(&x->out); /* a private ledger's contents */
    x->srv = s;
    x->w = c->w;
    cl_http_request *r = &m->req;
    r->request_id = __atomic_add_fetch(&s->next_id, 1, __ATOMIC_RELAXED);
    memcpy(r->client_fingerprint, c->fingerprint, sizeof r->client_fingerprint);
    r->client_not_before = c->not_before;
    r->client_not_after = c->not_after;
    memcpy(r->peer, c->peer, sizeof r->peer);
    c->x = x;
    set_timer(c, TM_NONE);
    if (!c->w->threaded) {
        s->inflight++;
        s->o.handler(s->o.handler_arg, x);
        return;
    }
    /* Threaded: the worker-side handler may take it (and answer on this thread); otherwise the
     * handler runs on the main loop and the reply comes back through the inbox. */
    if (s->o.local_handler != NULL) {
        x->local = x->in_local = 1;
        int took = s->o.local_handler(s->o.handler_arg, x);
        x->in_local = 0;
        if (!took) {
            x->local = 0;
        } else {
            /* A reply given during the call was only serialised (the handler may hold a lock
             * of its caller's): it is sent now, outside. */
            if (x->built)
                worker_deliver(c->w, x);
            return;
        }
    }
    c->w->outstanding++;
    uv_mutex_lock(&s->mu);
    if (s->req_tail != NULL)
        s->req_tail->next = x;
    else
        s->req_head = x;
    s->req_tail = x;
    cl_waker_unlock_send(&s->wake, &s->mu);
}

/* Parses buffered plaintext; dispatches a completed request or answers a malformed one. */
static void process_input(http_conn *c)
{
    size_t used = 0;
    int rc = parser_exec(c->parser, c->in.data + c->inpos, c->in.len - c->inpos, &used);
    c->inpos += used;
    if (rc < 0) {
        reply_error_and_close(c, c->parser->status, c->parser->why);
        return;
    }
    if (c->taken != NULL) {
        dispatch(c);
        return;
    }
    if (c->parser->expect_continue) { /* RFC 9110 §10.1.1: ask for the body */
        c->parser->expect_continue = 0;
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (tls_write_all(c, (const uint8_t *)cont, sizeof cont - 1) < 0)
            conn_close(c);
    }
}

static void pump_body(http_conn *c)
{
    if (!c->handshake_done) {
        ERR_clear_error();
        int r = SSL_do_handshake(c->ssl);
        if (r != 1) {
            int e = SSL_get_error(c->ssl, r);
            if (flush_tls(c) < 0) {
                conn_close(c);
                return;
            }
            if (e == SSL_ERROR_WANT_READ)
                return;
            unsigned long why = ERR_peek_error();
            cl_logf(CL_LOG_DEBUG, "http: TLS handshake with %s failed: %s", c->peer,
                    why ? ERR_reason_error_string(why) : "peer closed");
            ERR_clear_error();
            conn_finish(c, 0); /* the alert, if any, is already queued */
            return;
        }
        c->handshake_done = 1;
        if (cl_tls_peer_identity(c->ssl, c->fingerprint, &c->not_before, &c->not_after) < 0) {
            conn_close(c);
            return;
        }
        set_timer(c, TM_IDLE);
    }
    c->write_wait = 0;
    while (!c->closing && !c->draining && c->x == NULL && !write_blocked(c)) {
        if (c->inpos < c->in.len) {
            process_input(c);
            continue;
        }
        cl_buf_reset(&c->in); /* secret: what was read is wiped */
        c->inpos = 0;
        if (cl_buf_reserve(&c->in, READ_CHUNK) < 0) {
            conn_close(c);
            return;
        }
        tls_clear_errors();
        int n = SSL_read(c->ssl, c->in.data, READ_CHUNK);
        if (n > 0) {
            c->in.len = (size_t)n;
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        tls_clear_errors();
        if (e == SSL_ERROR_ZERO_RETURN)
            conn_finish(c, 1); /* close_notify: the replies already queued still go out */
        else if (e != SSL_ERROR_WANT_READ)
            conn_close(c); /* a TLS error */
        break;
    }
    if (c->closing)
        return;
    if (flush_tls(c) < 0) { /* e.g. session tickets, alerts */
        conn_close(c);
        return;
    }
    if (c->draining)
        return;
    if (c->x != NULL) { /* handler running: no timer until the reply; reads go on (bounded) */
        set_timer(c, TM_NONE);
        if (BIO_ctrl_pending(c->rbio) > AHEAD_CAP)
            set_reading(c, 0);
    } else if (write_blocked(c)) { /* on_write resumes; a peer that never reads times out */
        c->write_wait = 1;
        set_timer(c, TM_REQUEST);
        set_reading(c, 0);
    } else if (c->peer_eof) {
        conn_finish(c, 1);
    } else {
        set_timer(c, c->parser->in_message || c->inpos < c->in.len ? TM_REQUEST : TM_IDLE);
        set_reading(c, 1);
    }
}

static void conn_pump(http_conn *c)
{
    if (c->in_pump || c->closing)
        return;
    c->in_pump = 1;
    pump_body(c);
    c->in_pump = 0;
}

const cl_http_request *cl_http_request_of(const cl_http_exchange *x) { return &x->msg->req; }

/* Threaded mode, on the worker: sends the reply built by cl_http_reply, logs, frees. */
static void worker_deliver(http_worker *w, cl_http_exchange *x)
{
    cl_http_server *s = w->srv;
    http_conn *c = x->conn;
    http_msg *m = x->msg;
    const cl_http_request *rq = &m->req;
    if (!x->local)
        w->outstanding--;
    int rc = CL_OK;
    if (c != NULL) {
        c->x = NULL;
        rc = x->ok ? tls_write_all(c, x->out.data, x->out.len) : CL_EIO;
    }
    /* after the write: what the socket did not take is counted by submit_write by now */
    if (x->counted > 0)
        __atomic_sub_fetch(&s->queued, x->counted, __ATOMIC_RELAXED);
    access_log(s, rq->method, rq->path, x->status, rq->start_ns, rq->client_fingerprint, rq->peer,
               rq->request_id);
    int keep_alive = x->keep_alive;
    msg_free(m);
    cl_buf_free(&x->out);
    cl_free(x);
    if (c != NULL) {
        if (rc < 0)
            conn_close(c);
        else if (!keep_alive || w->stopping)
            conn_finish(c, 1);
        else
            conn_pump(c);
    }
}

void cl_http_reply(cl_http_exchange *x, int status, const char *const *headers, size_t n,
                   const void *body, size_t len)
{
    cl_http_server *s = x->srv;
    http_msg *m = x->msg;
    const cl_http_request *rq = &m->req;
    if (!x->local)
        s->inflight--; /* main-loop exchanges only */
    if (status < 100 || status > 999)
        status = 500;
    const char *cid = cl_http_header_get(rq, "x-ms-client-request-id");
    reply_spec r = {.status = status,
                    .headers = headers,
                    .n = headers != NULL ? n : 0,
                    .body = body,
                    .len = body != NULL ? len : 0,
                    .keep_alive = m->keep_alive && !(x->local ? x->w->stopping : s->stopping),
                    .http_minor = m->http_minor,
                    .head = m->head,
                    .request_id = rq->request_id,
                    .client_request_id = cid != NULL && echoable_client_id(cid) ? cid : NULL};
    if ((x->w->threaded && !x->local) || x->in_local) {
        /* On the main loop: serialise (the caller's buffers live only during this call) and hand
         * the reply to the worker that owns the connection; it sends, logs and frees. Inside
         * local_handler: serialise only; dispatch sends it once the handler returned. */
        http_worker *w = x->w;
        x->status = status;
        x->keep_alive = r.keep_alive;
        x->ok = build_reply(&r, &x->out) == CL_OK;
        if (x->in_local) {
            x->built = 1;
            return;
        }
        /* counted from here, not from the worker's write: pages the main loop builds faster
         * than the workers send them are held too (cl_http_server_queued_bytes) */
        x->counted = x->out.len;
        __atomic_add_fetch(&s->queued, x->counted, __ATOMIC_RELAXED);
        x->next = NULL;
        uv_mutex_lock(&w->mu);
        if (w->rep_tail != NULL)
            w->rep_tail->next = x;
        else
            w->rep_head = x;
        w->rep_tail = x;
        if (s->corked == 0)
            cl_waker_unlock_send(&w->wake, &w->mu);
        else if (cl_waker_unlock_mark(&w->wake, &w->mu))
            w->wake_due = 1; /* written by cl_http_server_uncork */
        return;
    }
    http_conn *c = x->conn; /* single-loop mode or on the owning worker: ours to read */
    if (c == NULL) {        /* the peer went away: nothing to send */
        access_log(s, rq->method, rq->path, status, rq->start_ns, rq->client_fingerprint, rq->peer,
                   rq->request_id);
        int local = x->local;
        http_worker *w = x->w;
        msg_free(m);
        cl_free(x);
        if (local)
            worker_maybe_finish(w);
        else
            maybe_finish_stop(s);
        return;
    }
    c->x = NULL;
    int rc = send_reply(c, &r);
    access_log(s, rq->method, rq->path, status, rq->start_ns, rq->client_fingerprint, rq->peer,
               rq->request_id);
    msg_free(m);
    cl_free(x);
    if (rc < 0)
        conn_close(c);
    else if (!r.keep_alive)
        conn_finish(c, 1);
    else
        conn_pump(c); /* no-op when called from inside the handler: the pump loop goes on */
}

/* Links a new connection into its worker (handles initialised, not yet connected). */
static int conn_register(http_worker *w, http_conn *c)
{
    if (uv_tcp_init(w->loop, &c->tcp) != 0)
        return -1;
    c->srv = w->srv;
    c->w = w;
    c->tcp.data = c;
    c->timer.data = c;
    uv_timer_init(w->loop, &c->timer);
    c->open_handles = 2;
    cl_buf_init_secret(&c->in); /* decrypted request bytes */
    c->next = w->conns;
    if (w->conns != NULL)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    snprintf(c->peer, sizeof c->peer, "-");
    return 0;
}

/* A connected socket: peer name, TLS, parser, first timer, reading. */
static void conn_setup(http_conn *c)
{
    cl_http_server *s = c->srv;
    uv_tcp_nodelay(&c->tcp, 1);
    if (s->o.send_buffer_bytes > 0) {
        int v = s->o.send_buffer_bytes;
        (void)uv_send_buffer_size((uv_handle_t *)&c->tcp, &v); /* a hint: the default stays */
    }
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        char ip[64] = "";
        if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, ip, sizeof ip);
            snprintf(c->peer, sizeof c->peer, "[%.46s]:%u", ip, (unsigned)ntohs(a->sin6_port));
        } else {
            const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
            uv_ip4_name(a, ip, sizeof ip);
            snprintf(c->peer, sizeof c->peer, "%.46s:%u", ip, (unsigned)ntohs(a->sin_port));
        }
    }
    c->ssl = SSL_new(s->o.tls->ssl);
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (c->ssl != NULL && !s->free_buffers_ok) /* the buffers' release is OpenSSL's, per record */
        SSL_set_mode(c->ssl, SSL_MODE_RELEASE_BUFFERS);
    if (c->ssl == NULL || c->rbio == NULL || c->wbio == NULL) {
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        c->rbio = c->wbio = NULL;
        ERR_clear_error();
        conn_close(c);
        return;
    }
    /* An empty read BIO means "wait for more", not end of file. */
    BIO_set_mem_eof_return(c->rbio, -1);
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    SSL_set_accept_state(c->ssl);
    if (cl_http_parser_new(s->o.max_header_bytes, s->o.max_body_bytes, on_parsed, c, &c->parser) <
        0) {
        conn_close(c);
        return;
    }
    c->parser->pool = &s->bodies;
    set_timer(c, TM_REQUEST); /* the handshake counts as receiving the first request */
    set_reading(c, 1);
}

/* On the connection's loop (a worker's; the main loop in single-loop mode): adopts a socket
 * accepted by on_accept_ready. */
static void worker_adopt(http_worker *w, int fd)
{
    http_conn *c = cl_calloc(1, sizeof *c);
    if (c == NULL || conn_register(w, c) != 0) {
        cl_free(c);
        close(fd);
        __atomic_sub_fetch(&w->srv->live_conns, 1, __ATOMIC_RELAXED);
        return;
    }
    if (uv_tcp_open(&c->tcp, (uv_os_sock_t)fd) != 0) {
        close(fd);
        conn_close(c);
        return;
    }
    conn_setup(c);
}

static void worker_stop(http_worker *w)
{
    w->stopping = 1;
    for (http_conn *c = w->conns; c != NULL; c = c->next) {
        if (c->x != NULL || c->closing)
            continue; /* in flight: closed after its reply */
        if (c->pending_writes > 0)
            conn_finish(c, 1); /* let a reply already queued reach the peer */
        else
            conn_close(c);
    }
}

/* ---- threaded mode --------------------------------------------------------------------------- */

static void on_worker_wake(uv_poll_t *p, int status, int events)
{
    http_worker *w = p->data;
    (void)status;
    (void)events;
    cl_waker_drain(&w->wake);
    uv_mutex_lock(&w->mu);
    w->wake.signaled = 0;
    int *fds = w->fds;
    size_t nfds = w->nfds;
    cl_http_exchange *reps = w->rep_head;
    int stop = w->stop_req;
    w->fds = NULL;
    w->nfds = w->capfds = 0;
    w->rep_head = w->rep_tail = NULL;
    uv_mutex_unlock(&w->mu);
    for (size_t i = 0; i < nfds; i++) {
        if (stop || w->stopping) {
            close(fds[i]);
            __atomic_sub_fetch(&w->srv->live_conns, 1, __ATOMIC_RELAXED);
        } else {
            worker_adopt(w, fds[i]);
        }
    }
    cl_free(fds);
    while (reps != NULL) {
        cl_http_exchange *x = reps;
        reps = x->next;
        worker_deliver(w, x);
    }
    if (stop && !w->stopping)
        worker_stop(w);
    worker_maybe_finish(w);
}

static void worker_main(void *arg)
{
    http_worker *w = arg;
    cl_http_server *s = w->srv;
    char name[16]; /* what ps, top and perf show for the thread */
    snprintf(name, sizeof name, "cl-https-%u", (unsigned)(w - s->workers) % 100u);
    (void)pthread_setname_np(pthread_self(), name);
    uv_run(w->loop, UV_RUN_DEFAULT);
    uv_mutex_lock(&s->mu);
    w->finished = 1;
    /* the main loop closes the eventfd only after joining this thread */
    cl_waker_unlock_send(&s->wake, &s->mu);
}

void cl_http_server_cork(cl_http_server *s) { s->corked++; }

void cl_http_server_uncork(cl_http_server *s)
{
    if (s->corked == 0 || --s->corked > 0)
        return;
    for (size_t i = 0; i < s->nworkers; i++) {
        http_worker *w = &s->workers[i];
        if (w->wake_due) {
            w->wake_due = 0;
            cl_waker_send(&w->wake);
        }
    }
}

/* On the main loop: runs the handler for every queued request; joins workers that finished. */
static void on_server_wake(uv_poll_t *p, int status, int events)
{
    cl_http_server *s = p->data;
    (void)status;
    (void)events;
    cl_waker_drain(&s->wake);
    uv_mutex_lock(&s->mu);
    s->wake.signaled = 0;
    cl_http_exchange *reqs = s->req_head;
    s->req_head = s->req_tail = NULL;
    int fin[64] = {0};
    int any_fin = 0;
    for (size_t i = 0; i < s->nworkers; i++)
        if (s->workers[i].finished && !s->workers[i].joined)
            fin[i] = any_fin = 1;
    uv_mutex_unlock(&s->mu);
    while (reqs != NULL) {
        cl_http_exchange *x = reqs;
        reqs = x->next;
        x->next = NULL;
        s->inflight++;
        s->o.handler(s->o.handler_arg, x);
    }
    if (!any_fin)
        return;
    for (size_t i = 0; i < s->nworkers; i++) {
        if (!fin[i])
            continue;
        http_worker *w = &s->workers[i];
        uv_thread_join(&w->thread);
        cl_waker_close_fd(&w->wake);
        uv_loop_close(w->loop);
        uv_mutex_destroy(&w->mu);
        w->joined = 1;
    }
    maybe_finish_stop(s);
}

static void on_lpoll_closed(uv_handle_t *h)
{
    cl_http_server *s = h->data;
    if (--s->listen_handles > 0)
        return;
    close(s->lfd);
    s->lfd = -1;
    s->listener_closed = 1;
    maybe_finish_stop(s);
}

/* accept failed for want of a descriptor: the pending connection is taken with the spare one and
 * closed at once, so the listener does not stay readable (a level-triggered poll would call back
 * at once, for ever) and the peer is told instead of waiting. Logged at most once a second. */
static int accept_out_of_fds(cl_http_server *s, int err)
{
    uint64_t now = uv_now(s->loop);
    if (s->emfile_log_ms == 0 || now - s->emfile_log_ms >= 1000) {
        s->emfile_log_ms = now;
        cl_logf(CL_LOG_WARN, "http: out of file descriptors (%s): closing new connections",
                strerror(err));
    }
    if (s->spare_fd < 0) /* another thread took the one given up last time: retried later */
        s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (s->spare_fd < 0)
        return 0;
    close(s->spare_fd);
    int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0)
        close(fd);
    s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return fd >= 0;
}

static void on_accept_ready(uv_poll_t *p, int status, int events);

static void on_accept_resume(uv_timer_t *t)
{
    cl_http_server *s = t->data;
    if (!s->stopping)
        (void)uv_poll_start(&s->lpoll, UV_READABLE, on_accept_ready);
}

/* On the main loop: accepts, and hands sockets to the workers in turn (threaded mode) or adopts
 * them on the main loop itself. */
static void on_accept_ready(uv_poll_t *p, int status, int events)
{
    cl_http_server *s = p->data;
    (void)events;
    if (status < 0)
        return;
    for (int i = 0; i < 64 && !s->stopping; i++) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE) {
                if (accept_out_of_fds(s, errno))
                    continue; /* until the backlog is empty (EAGAIN) */
                /* not even the spare (another thread holds its descriptor): wait a little */
                uv_poll_stop(&s->lpoll);
                uv_timer_start(&s->accept_pause, on_accept_resume, ACCEPT_PAUSE_MS, 0);
                return;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                cl_logf(CL_LOG_WARN, "http: accept failed: %s", strerror(errno));
            return;
        }
        if (__atomic_load_n(&s->live_conns, __ATOMIC_RELAXED) >= s->o.max_connections) {
            close(fd); /* over the limit: closed at once, so the backlog drains */
            continue;
        }
        __atomic_add_fetch(&s->live_conns, 1, __ATOMIC_RELAXED);
        if (!s->threaded) {
            worker_adopt(&s->workers[0], fd);
            continue;
        }
        http_worker *w = &s->workers[s->next_worker++ % s->nworkers];
        uv_mutex_lock(&w->mu);
        if (w->nfds == w->capfds) {
            size_t cap = w->capfds ? 2 * w->capfds : 16;
            int *n = cl_realloc(w->fds, cap * sizeof *n);
            if (n == NULL) {
                uv_mutex_unlock(&w->mu);
                close(fd);
                __atomic_sub_fetch(&s->live_conns, 1, __ATOMIC_RELAXED);
                continue;
            }
            w->fds = n;
            w->capfds = cap;
        }
        w->fds[w->nfds++] = fd;
        cl_waker_unlock_send(&w->wake, &w->mu);
    }
}

static int listen_socket(const struct sockaddr_storage *ss, int *out)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int on = 1, off = 0;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (ss->ss_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
    socklen_t len =
        ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (bind(fd, (const struct sockaddr *)ss, len) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    *out = fd;
    return 0;
}

/* Binds and listens (the spare descriptor first); nothing is polled yet. */
static int listen_open(cl_http_server *s, const struct sockaddr_storage *ss)
{
    s->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int rc = listen_socket(ss, &s->lfd);
    if (rc != 0) {
        cl_logf(CL_LOG_ERROR, "http: cannot listen on %s port %d: %s", s->o.host, s->o.port,
                uv_strerror(rc));
        return CL_EIO;
    }
    s->lpoll.data = s;
    return CL_OK;
}

/* Starts polling the listening socket. Once lpoll_inited is set, the handles are closed by
 * cl_http_server_stop (on_lpoll_closed closes the socket). */
static int listen_start(cl_http_server *s)
{
    if (uv_poll_init(s->loop, &s->lpoll, s->lfd) != 0)
        return CL_EIO;
    uv_timer_init(s->loop, &s->accept_pause);
    s->accept_pause.data = s;
    s->lpoll_inited = 1;
    s->listen_handles = 2;
    if (uv_poll_start(&s->lpoll, UV_READABLE, on_accept_ready) != 0)
        return CL_EIO;
    return CL_OK;
}

static int start_threaded(cl_http_server *s, const struct sockaddr_storage *ss)
{
    if (listen_open(s, ss) != CL_OK)
        return CL_EIO;
    if (uv_mutex_init(&s->mu) != 0) {
        close(s->lfd);
        s->lfd = -1;
        return CL_EIO;
    }
    if (cl_waker_init(&s->wake, s->loop, on_server_wake, s) != CL_OK) {
        uv_mutex_destroy(&s->mu);
        close(s->lfd);
        s->lfd = -1;
        return CL_EIO;
    }
    s->wake_inited = 1; /* from here on, failures go through cl_http_server_stop */
    for (size_t i = 0; i < s->nworkers; i++) {
        http_worker *w = &s->workers[i];
        w->srv = s;
        w->threaded = 1;
        w->loop = &w->own_loop;
        if (uv_loop_init(w->loop) != 0)
            return CL_EIO;
        if (uv_mutex_init(&w->mu) != 0) {
            uv_loop_close(w->loop);
            return CL_EIO;
        }
        if (cl_waker_init(&w->wake, w->loop, on_worker_wake, w) != CL_OK) {
            uv_mutex_destroy(&w->mu);
            uv_loop_close(w->loop);
            return CL_EIO;
        }
        if (uv_thread_create(&w->thread, worker_main, w) != 0) {
            uv_close((uv_handle_t *)&w->wake.poll, NULL);
            uv_run(w->loop, UV_RUN_DEFAULT);
            cl_waker_close_fd(&w->wake);
            uv_mutex_destroy(&w->mu);
            uv_loop_close(w->loop);
            return CL_EIO;
        }
        w->started = 1;
    }
    return listen_start(s);
}

/* host (an IPv4 or IPv6 literal) and port as a socket address; -1 when host is not one. */
static int listen_addr(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    int v6 = strchr(host, ':') != NULL;
    *len = v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    return v6 ? uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss)
              : uv_ip4_addr(host, port, (struct sockaddr_in *)ss);
}

int cl_http_server_start(uv_loop_t *loop, const cl_http_server_opts *o, cl_http_server **out)
{
    *out = NULL;
    if (loop == NULL || o == NULL || o->tls == NULL || o->handler == NULL || o->host == NULL ||
        o->port < 0 || o->port > 65535 || o->worker_threads > 64)
        return CL_EINVAL;
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (listen_addr(o->host, o->port, &ss, &sslen) != 0)
        return CL_EINVAL;
    int rc;
    cl_json_init(); /* the access log and error bodies use jansson through the alloc seam */
    cl_http_server *s = cl_calloc(1, sizeof *s);
    if (s == NULL)
        return CL_ENOMEM;
    s->nworkers = o->worker_threads > 0 ? o->worker_threads : 1;
    s->threaded = o->worker_threads > 0;
    s->free_buffers_ok = cl_http_idle_frees_tls_buffers();
    s->workers = cl_calloc(s->nworkers, sizeof *s->workers);
    if (s->workers == NULL) {
        cl_free(s);
        return CL_ENOMEM;
    }
    s->loop = loop;
    s->lfd = s->spare_fd = -1;
    s->o = *o;
    if (s->o.max_header_bytes == 0)
        s->o.max_header_bytes = DEFAULT_MAX_HEADER_BYTES;
    if (s->o.max_body_bytes == 0)
        s->o.max_body_bytes = DEFAULT_MAX_BODY_BYTES;
    s->bodies.max = s->o.max_body_pool_bytes ? s->o.max_body_pool_bytes : DEFAULT_BODY_POOL_BYTES;
    if (s->bodies.max < s->o.max_body_bytes) /* one request of the largest size always fits */
        s->bodies.max = s->o.max_body_bytes;
    s->bodies.min =
        s->o.body_pool_min_bytes ? s->o.body_pool_min_bytes - 1 : DEFAULT_BODY_POOL_MIN_BYTES;
    if (s->o.max_connections == 0)
        s->o.max_connections = DEFAULT_MAX_CONNECTIONS;
    if (s->o.idle_timeout_ms == 0)
        s->o.idle_timeout_ms = DEFAULT_IDLE_TIMEOUT_MS;
    if (s->o.request_timeout_ms == 0)
        s->o.request_timeout_ms = DEFAULT_REQUEST_TIMEOUT_MS;
    if (s->threaded) {
        rc = start_threaded(s, &ss);
        if (rc == CL_OK) {
            *out = s;
            return CL_OK;
        }
        if (s->wake_inited) {
            /* threads may be running: stop through the ordinary path (frees the server) */
            cl_logf(CL_LOG_ERROR, "http: cannot start the worker threads");
            cl_http_server_stop(s, NULL, NULL);
            return CL_EIO;
        }
        if (s->spare_fd >= 0)
            close(s->spare_fd);
        cl_free(s->workers);
        cl_free(s);
        return CL_EIO;
    }
    s->workers[0].srv = s;
    s->workers[0].loop = loop;
    if (listen_open(s, &ss) == CL_OK) {
        if (listen_start(s) == CL_OK) {
            *out = s;
            return CL_OK;
        }
        if (s->lpoll_inited) {
            cl_http_server_stop(s, NULL, NULL); /* freed once the handles are closed */
            return CL_EIO;
        }
        close(s->lfd);
    }
    if (s->spare_fd >= 0)
        close(s->spare_fd);
    cl_free(s->workers);
    cl_free(s);
    return CL_EIO;
}

int cl_http_method_serves(const char *route_method, const char *method)
{
    return strcmp(route_method, method) == 0 ||
           (strcmp(method, "HEAD") == 0 && strcmp(route_method, "GET") == 0);
}

/* Whether `method` is one of the comma-separated names in `allow`. */
static int allow_has(const char *allow, const char *method)
{
    size_t ml = strlen(method);
    for (const char *p = allow; *p != '\0';) {
        size_t n = strcspn(p, ",");
        if (n == ml && memcmp(p, method, ml) == 0)
            return 1;
        p += n;
        while (*p == ',' || *p == ' ')
            p++;
    }
    return 0;
}

static void allow_put(char *allow, size_t cap, const char *method)
{
    size_t al = strlen(allow), ml = strlen(method);
    if (allow_has(allow, method) || al + (al ? 2 : 0) + ml + 1 > cap)
        return;
    snprintf(allow + al, cap - al, "%s%s", al ? ", " : "", method);
}

void cl_http_allow_add(char *allow, size_t cap, const char *method)
{
    allow_put(allow, cap, method);
    if (strcmp(method, "GET") == 0)
        allow_put(allow, cap, "HEAD");
}

cl_http_route_verdict cl_http_route_decide(const char *method, int asterisk, int path_known,
                                           int served, char *allow, size_t cap)
{
    int options = strcmp(method, "OPTIONS") == 0;
    if (asterisk) { /* "*" is a resource for OPTIONS only, and none of the routes' */
        path_known = options;
        served = 0;
    }
    if (served)
        return CL_HTTP_ROUTE_SERVE;
    if (!path_known)
        return CL_HTTP_ROUTE_NOT_FOUND;
    if (!options)
        return CL_HTTP_ROUTE_NOT_ALLOWED;
    cl_http_allow_add(allow, cap, "OPTIONS");
    return CL_HTTP_ROUTE_OPTIONS;
}

size_t cl_http_server_queued_bytes(const cl_http_server *s)
{
    return __atomic_load_n(&s->queued, __ATOMIC_RELAXED);
}

int cl_http_server_port(const cl_http_server *s)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (s->lfd < 0 || getsockname(s->lfd, (struct sockaddr *)&ss, &sl) != 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((const struct sockaddr_in *)&ss)->sin_port);
}

void cl_http_server_stop(cl_http_server *s, void (*done)(void *arg), void *arg)
{
    if (s->stopping)
        return;
    s->stopping = 1;
    s->done = done;
    s->done_arg = arg;
    if (s->lpoll_inited) {
        uv_poll_stop(&s->lpoll);
        uv_close((uv_handle_t *)&s->lpoll, on_lpoll_closed);
        uv_close((uv_handle_t *)&s->accept_pause, on_lpoll_closed);
    } else { /* threaded mode only: single-loop mode starts its listener or frees the server */
        close(s->lfd);
        s->lfd = -1;
        s->listener_closed = 1;
    }
    if (s->threaded) {
        for (size_t i = 0; i < s->nworkers; i++) {
            http_worker *w = &s->workers[i];
            if (!w->started)
                continue;
            uv_mutex_lock(&w->mu);
            w->stop_req = 1;
            cl_waker_unlock_send(&w->wake, &w->mu);
        }
        return;
    }
    worker_stop(&s->workers[0]); /* the server is freed once the listener and the conns close */
}

void cl_http_server_set_handler_arg(cl_http_server *s, void *arg) { s->o.handler_arg = arg; }

int cl_http_listen_check(const char *host, int port, char *why, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (listen_addr(host, port, &ss, &sslen) != 0) {
        snprintf(why, cap, "'%s' is not an IP address", host);
        return CL_EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), on = 1;
    if (fd < 0) {
        snprintf(why, cap, "socket: %s", strerror(errno));
        return CL_EIO;
    }
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    int rc = bind(fd, (const struct sockaddr *)&ss, sslen);
    int err = errno;
    close(fd);
    if (rc != 0) {
        snprintf(why, cap, "%s", strerror(err));
        return CL_EIO;
    }
    return CL_OK;
}

int cl_parse_hostport(const char *l, char *host, size_t hostcap, int *port)
{
    const char *colon = strrchr(l, ':');
    if (colon == NULL || colon == l)
        return -1;
    size_t hl = (size_t)(colon - l);
    if (l[0] == '[' && hl >= 2 && l[hl - 1] == ']') { /* [::1]:8443 */
        l++;
        hl -= 2;
    }
    if (hl >= hostcap)
        return -1;
    memcpy(host, l, hl);
    host[hl] = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || p < 0 || p > 65535)
        return -1;
    *port = (int)p;
    return 0;
}
