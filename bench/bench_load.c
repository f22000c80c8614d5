/*
 * bench_load — HTTPS load generator for cledgerd (and for the nginx ceiling it is compared with).
 *
 *   bench_load --url https://HOST:PORT --cacert PEM [--cert PEM --key PEM] [--connections 32]
 *              [--threads 2] [--duration 10] [--mode write|read|get|mixed] [--rate R]
 *              [--requests N] [--path PATH] [--body-bytes 100] [--collection C] [--txids FILE]
 *              [--write-ratio 0.5] [--receipt-latency N] [--collections N]
 *
 * N TLS 1.3 keep-alive connections (server verified against --cacert, host name or IP checked
 * against the URL host, SNI for names; client certificate when given) spread over T threads, each
 * with its own epoll loop; one request in flight per connection. All connections finish their
 * handshake before the clock starts; requests still in flight at the end are not counted.
 *
 * Modes:
 *   write  POST /app/transactions?api-version=2022-05-13[&collectionId=C] with
 *          {"contents":"<body-bytes characters>"}; with --txids FILE every x-ms-ccf-transaction-id
 *          received is written to FILE, one a line. With --collections N the writes go round
 *          robin to the N collections C0 .. C(N-1) (C: --collection, default "c"), so N writes
 *          make N collections.
 *   read   GET /app/transactions/{id}?api-version=2022-05-13[&collectionId=C] for random ids
 *          taken from --txids FILE. 2xx answers whose body says "state":"Loading" are counted
 *          apart (load.read.loading), not as reads (they were counted as both until 2026-11-25).
 *   get    GET --path (default /): the nginx ceiling.
 *   mixed  writes with probability --write-ratio, reads otherwise (ids from --txids when given,
 *          else the last id this thread wrote).
 *
 * --rate R (requests/s, all connections together; 0 = as fast as possible, closed loop) paces each
 * connection open-loop at R/N per second; latency is then measured from the intended send time,
 * so a server that falls behind is charged for the queueing it causes (no coordinated omission).
 * The schedule survives a reconnect (an outage's sends go out late, charged from their intended
 * time), and every request scheduled before the deadline that has no answer by then (in flight,
 * or not sent yet) enters the latencies with what it had waited at the deadline
 * (load.<mode>.cut_off counts them; they are not successes): a stall at the end of a run shows.
 * At --rate 0 latency is measured from the send of each request. --requests N stops after N
 * requests have been issued (the duration then defaults to one hour).
 *
 * --receipt-latency N: after the run, on one connection, N times: POST one entry, take the time of
 * its 200, then GET /app/transactions/{id}/receipt every 2 ms until the body says "state":"Ready";
 * reports p50/p99/max of that delay (10 s timeout per transaction; each blocking call gives up
 * after 10 s, and three failed writes or three receipts never ready in a row end the phase).
 *
 * Latencies are kept in a log-linear histogram (fixed memory; percentiles at most 0.2% high).
 *
 * Output: one metric a line on stdout, "name value unit" (load.<mode>.per_s, .ok, .p50_ms,
 * .p90_ms, .p99_ms, .p999_ms, .max_ms, .mean_ms, .errors, .errors.<status>, .errors.io; paced
 * runs add .svc_p50_ms/.svc_p99_ms timed from the actual send; .reconnects and .handshake_errors
 * when not zero; mixed mode reports load.mixed.write.* and load.mixed.read.* too; --receipt-latency
 * adds load.receipt.*); a human summary on stderr. Exit status 0 when the
 * run completed (errors are reported, not fatal), 1 on a setup failure, 2 on usage errors.
 *
 * Standalone on purpose: depends only on OpenSSL, pthreads and libc.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE 1
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define API_VERSION "2022-05-13"
#define RBUF_MAX (16u << 20) /* largest response accepted */
#define TXID_MAX 64
#define NSTATUS 600
/* paced sends due within this much of now go out together (one wake-up for several) */
#define PACE_SLACK_NS 200000u
/* the receipt phase's blocking calls give up after this long */
#define SYNC_TIMEOUT_S 10

enum { MODE_WRITE, MODE_READ, MODE_GET, MODE_MIXED };
enum { OP_WRITE, OP_READ, OP_GET, NOPS };
static const char *const op_names[NOPS] = {"write", "read", "get"};
static const char *const mode_names[] = {"write", "read", "get", "mixed"};

/* ---- configuration ------------------------------------------------------------------------ */

typedef struct {
    char host[256]; /* without brackets for IPv6 */
    char port[16];
    char hosthdr[300]; /* Host header value */
    int host_is_ip;
    const char *cacert, *cert, *key;
    int conns, threads;
    double duration;
    int duration_set;
    int mode;
    double rate;
    uint64_t requests;
    const char *path;
    int body_bytes;
    char *post_body; /* --post-file: body of the POST sent in --mode get */
    size_t post_len;
    const char *collection;
    const char *txids;
    double write_ratio;
    int receipt_n;
    uint64_t spread; /* --collections */
} cfg_t;

static cfg_t cfg = {
    .conns = 32,
    .threads = 2,
    .duration = 10,
    .mode = MODE_WRITE,
    .path = "/",
    .body_bytes = 100,
    .write_ratio = 0.5,
};

static SSL_CTX *g_ctx;
static struct sockaddr_storage g_addr;
static socklen_t g_addrlen;
static char **g_ids; /* ids read from --txids (read and mixed modes) */
static size_t g_nids;
static pthread_barrier_t g_barrier;
static uint64_t g_t0, g_deadline; /* set by main between the two barriers */
static atomic_uint_fast64_t g_issued;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_load: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (q == NULL)
        die("out of memory");
    return q;
}

/* xorshift64 */
static uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* ---- statistics --------------------------------------------------------------------------- */

/* Latencies in a log-linear histogram (HdrHistogram's layout): exact below 1,024 ns, then 512
 * buckets per power of two, so a percentile is reported as its bucket's upper edge, at most 0.2%
 * above the true value, and memory stays fixed however long the run (an array of every sample
 * grew by 8-16 bytes a request: gigabytes for an hour at full rate). Values from 2^44 ns (4.9 h)
 * up share the last bucket; the maximum is kept exactly. */
#define H_LINEAR 1024u
#define H_SUB 512u
#define H_MAXEXP 44
#define H_BUCKETS (H_LINEAR + (H_MAXEXP - 10) * H_SUB)

typedef struct {
    uint64_t *b; /* H_BUCKETS counts (NULL until the first value) */
    uint64_t n, max;
    double sum;
} hist_t;

static size_t h_index(uint64_t v)
{
    if (v < H_LINEAR)
        return (size_t)v;
    int m = 63 - __builtin_clzll(v); /* 2^m <= v < 2^(m+1), m >= 10 */
    if (m >= H_MAXEXP)
        return H_BUCKETS - 1;
    return H_LINEAR + (size_t)(m - 10) * H_SUB + (size_t)((v >> (m - 9)) & (H_SUB - 1));
}

/* the largest value of bucket i */
static uint64_t h_upper(size_t i)
{
    if (i < H_LINEAR)
        return i;
    size_t k = i - H_LINEAR;
    int m = (int)(k / H_SUB) + 10;
    uint64_t sub = k % H_SUB;
    return ((H_SUB + sub + 1) << (m - 9)) - 1;
}

static void h_add_n(hist_t *h, uint64_t v, uint64_t count)
{
    if (h->b == NULL && (h->b = calloc(H_BUCKETS, sizeof *h->b)) == NULL)
        die("out of memory");
    h->b[h_index(v)] += count;
    h->n += count;
    h->sum += (double)v * (double)count;
    if (v > h->max)
        h->max = v;
}

static void h_merge(hist_t *dst, const hist_t *src)
{
    if (src->n == 0)
        return;
    if (dst->b == NULL && (dst->b = calloc(H_BUCKETS, sizeof *dst->b)) == NULL)
        die("out of memory");
    for (size_t i = 0; i < H_BUCKETS; i++)
        dst->b[i] += src->b[i];
    dst->n += src->n;
    dst->sum += src->sum;
    if (src->max > dst->max)
        dst->max = src->max;
}

/* nearest-rank percentile, in ms: the upper edge of the bucket that holds that rank (the exact
 * maximum for the top one) */
static double h_pct_ms(const hist_t *h, double p)
{
    if (h->n == 0)
        return 0;
    uint64_t rank = (uint64_t)(p / 100.0 * (double)h->n + 0.999999), seen = 0;
    if (rank < 1)
        rank = 1;
    if (rank > h->n)
        rank = h->n;
    for (size_t i = 0; i < H_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t v = h_upper(i);
            return (double)(v < h->max ? v : h->max) / 1e6;
        }
    }
    return (double)h->max / 1e6;
}

typedef struct {
    hist_t lat; /* ns, successes (and, paced, the requests cut off by the end: below) */
    hist_t svc; /* paced runs: ns from the actual send, one per success */
    uint64_t ok, io_err, loading;
    /* paced runs: requests scheduled before the deadline that had no answer by then (in flight,
     * or never sent because the connection was still busy or down): each enters lat with the
     * time it had waited at the deadline, a lower bound, so a stall at the end of a run shows in
     * the percentiles (it vanished from them until 2026-11-25). Not successes. */
    uint64_t cut_off;
    uint64_t status_err[NSTATUS]; /* non-2xx answers by status (0: out of range) */
} opstats_t;

static void stats_add(opstats_t *s, uint64_t lat) { h_add_n(&s->lat, lat, 1); }
static void stats_add_svc(opstats_t *s, uint64_t lat) { h_add_n(&s->svc, lat, 1); }

static void stats_merge(opstats_t *dst, const opstats_t *src)
{
    h_merge(&dst->lat, &src->lat);
    h_merge(&dst->svc, &src->svc);
    dst->ok += src->ok;
    dst->io_err += src->io_err;
    dst->loading += src->loading;
    dst->cut_off += src->cut_off;
    for (int i = 0; i < NSTATUS; i++)
        dst->status_err[i] += src->status_err[i];
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* nearest-rank percentile of a sorted array, in ms */
static double pct_ms(const uint64_t *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return (double)v[rank - 1] / 1e6;
}

/* ---- HTTP/1.1 response parsing -------------------------------------------------------------- */

typedef struct {
    int hdr_done;
    int status;
    long long clen; /* -1: none */
    int chunked;
    int until_close; /* no length: the body ends when the connection does */
    int conn_close;
    size_t body_start;
    size_t chunk_pos; /* chunked: next chunk-size line */
    char txid[TXID_MAX];
} resp_t;

static const char *find(const char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    if (m == 0 || n < m)
        return NULL;
    for (size_t i = 0; i + m <= n; i++)
        if (hay[i] == needle[0] && memcmp(hay + i, needle, m) == 0)
            return hay + i;
    return NULL;
}

static int icontains(const char *s, size_t n, const char *word)
{
    size_t m = strlen(word);
    for (size_t i = 0; i + m <= n; i++)
        if (strncasecmp(s + i, word, m) == 0)
            return 1;
    return 0;
}

/* Parse the response in buf[0..len). Returns 1 when complete, 0 when more bytes are needed, -1
 * when malformed. */
static int resp_parse(resp_t *r, const char *buf, size_t len)
{
    if (!r->hdr_done) {
        const char *end = find(buf, len, "\r\n\r\n");
        if (end == NULL)
            return len > (64u << 10) ? -1 : 0;
        if (len < 12 || strncmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ')
            return -1;
        r->status = 0;
        for (int i = 9; i < 12; i++) {
            if (buf[i] < '0' || buf[i] > '9')
                return -1;
            r->status = r->status * 10 + (buf[i] - '0');
        }
        r->clen = -1;
        r->chunked = r->until_close = r->conn_close = 0;
        r->txid[0] = 0;
        const char *line = (const char *)memchr(buf, '\n', (size_t)(end - buf) + 2) + 1;
        while (line < end + 2) {
            const char *eol = find(line, (size_t)(end + 2 - line), "\r\n");
            if (eol == NULL)
                break;
            const char *colon = memchr(line, ':', (size_t)(eol - line));
            if (colon != NULL) {
                size_t nlen = (size_t)(colon - line);
                const char *v = colon + 1;
                while (v < eol && (*v == ' ' || *v == '\t'))
                    v++;
                const char *ve = eol;
                while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                    ve--;
                size_t vlen = (size_t)(ve - v);
                if (nlen == 14 && strncasecmp(line, "content-length", 14) == 0) {
                    long long n = 0;
                    for (size_t i = 0; i < vlen; i++) {
                        if (v[i] < '0' || v[i] > '9' || n > (1LL << 40))
                            return -1;
                        n = n * 10 + (v[i] - '0');
                    }
                    r->clen = n;
                } else if (nlen == 17 && strncasecmp(line, "transfer-encoding", 17) == 0) {
                    r->chunked = icontains(v, vlen, "chunked");
                } else if (nlen == 10 && strncasecmp(line, "connection", 10) == 0) {
                    r->conn_close = icontains(v, vlen, "close");
                } else if (nlen == 23 && strncasecmp(line, "x-ms-ccf-transaction-id", 23) == 0) {
                    if (vlen >= TXID_MAX)
                        vlen = TXID_MAX - 1;
                    memcpy(r->txid, v, vlen);
                    r->txid[vlen] = 0;
                }
            }
            line = eol + 2;
        }
        r->hdr_done = 1;
        r->body_start = r->chunk_pos = (size_t)(end - buf) + 4;
        if (r->status == 204 || r->status == 304)
            return 1;
        if (!r->chunked && r->clen < 0) {
            r->until_close = 1;
            r->conn_close = 1;
        }
    }
    if (r->chunked) {
        for (;;) {
            const char *l = buf + r->chunk_pos;
            const char *eol = find(l, len - r->chunk_pos, "\r\n");
            if (eol == NULL)
                return len - r->chunk_pos > 1024 ? -1 : 0;
            unsigned long long size = 0;
            const char *p = l;
            int digits = 0;
            for (; p < eol; p++) {
                int d;
                if (*p >= '0' && *p <= '9')
                    d = *p - '0';
                else if (*p >= 'a' && *p <= 'f')
                    d = *p - 'a' + 10;
                else if (*p >= 'A' && *p <= 'F')
                    d = *p - 'A' + 10;
                else
                    break;
                if (size > (1ULL << 40))
                    return -1;
                size = size * 16 + (unsigned)d;
                digits++;
            }
            if (digits == 0)
                return -1;
            size_t data = (size_t)(eol - buf) + 2;
            if (size == 0) {
                /* last chunk: an empty line, or trailers ending with one */
                if (len - data >= 2 && buf[data] == '\r' && buf[data + 1] == '\n')
                    return 1;
                return find(buf + data, len - data, "\r\n\r\n") != NULL ? 1 : 0;
            }
            if (len < data + size + 2)
                return 0;
            r->chunk_pos = data + size + 2;
        }
    }
    if (r->clen >= 0)
        return len - r->body_start >= (size_t)r->clen ? 1 : 0;
    return 0; /* until close */
}

/* does the body say "state": "<word>"? (whitespace-tolerant) */
static int body_state_is(const char *body, size_t n, const char *word)
{
    const char *end = body + n;
    const char *p = body;
    size_t wl = strlen(word);
    while ((p = find(p, (size_t)(end - p), "\"state\"")) != NULL) {
        p += 7;
        const char *q = p;
        while (q < end && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n'))
            q++;
        if (q >= end || *q != ':')
            continue;
        q++;
        while (q < end && (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n'))
            q++;
        if ((size_t)(end - q) >= wl + 2 && q[0] == '"' && memcmp(q + 1, word, wl) == 0 &&
            q[wl + 1] == '"')
            return 1;
    }
    return 0;
}

/* ---- connections -------------------------------------------------------------------------- */

enum { ST_HANDSHAKE, ST_IDLE, ST_SEND, ST_RECV, ST_DOWN, ST_DONE };

struct thread;

typedef struct {
    struct thread *t;
    int fd;
    SSL *ssl;
    int state;
    char *req;
    size_t req_len, req_off, req_cap;
    char *rbuf;
    size_t rlen, rcap;
    resp_t resp;
    int op;
    uint64_t t_start;  /* latency origin: intended (paced) or actual send time */
    uint64_t t_sent;   /* actual send time */
    uint64_t due;      /* next wake-up: sched when idle and paced, or the retry time when down */
    uint64_t sched;    /* paced: the intended time of the next send (of the one in flight while a
                        * request is out); kept across reconnects, so an outage's sends are late,
                        * not forgotten */
    uint64_t interval; /* ns between sends when paced */
    int want_out;      /* EPOLLOUT in the interest set (only while a write would block) */
} conn_t;

typedef struct thread {
    int id;
    int ep, tfd;
    conn_t *conns;
    int nconns, first;
    opstats_t st[NOPS];
    char *txbuf; /* ids written, '\n'-separated */
    size_t txlen, txcap;
    char last_txid[TXID_MAX];
    uint64_t rng, seq;
    uint64_t end;   /* when the loop ended */
    uint64_t armed; /* timer expiry set */
    int setup_failures;
    uint64_t handshake_failures; /* after the start */
    uint64_t reconnects;         /* after the start */
    char why[200];               /* first handshake failure */
    pthread_t th;
} thread_t;

static void conn_close(conn_t *c)
{
    if (c->ssl != NULL) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
}

/* TCP connect (blocking: loopback or LAN, a few at the start) and a fresh SSL object.
 * nonblock: switch the socket to non-blocking afterwards. */
static int conn_open(conn_t *c, int nonblock)
{
    c->fd = socket(g_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    if (!nonblock) {
        /* blocking I/O (the receipt phase): a server that stops answering makes a call fail
         * after this, instead of hanging the benchmark (connect obeys the send timeout too) */
        struct timeval tv = {.tv_sec = SYNC_TIMEOUT_S};
        setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    if (connect(c->fd, (struct sockaddr *)&g_addr, g_addrlen) != 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (nonblock)
        fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    c->ssl = SSL_new(g_ctx);
    if (c->ssl == NULL)
        goto fail;
    if (cfg.host_is_ip) {
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), cfg.host) != 1)
            goto fail;
    } else {
        if (SSL_set_tlsext_host_name(c->ssl, cfg.host) != 1 || SSL_set1_host(c->ssl, cfg.host) != 1)
            goto fail;
    }
    if (SSL_set_fd(c->ssl, c->fd) != 1)
        goto fail;
    SSL_set_connect_state(c->ssl);
    c->rlen = 0;
    memset(&c->resp, 0, sizeof c->resp);
    c->state = ST_HANDSHAKE;
    return 0;
fail:
    conn_close(c);
    return -1;
}

/* Register a fresh connection: edge-triggered input only; output is watched only while a write
 * would block (watching it always would wake the loop on every ACK). */
static int conn_register(conn_t *c)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = c};
    c->want_out = 0;
    return epoll_ctl(c->t->ep, EPOLL_CTL_ADD, c->fd, &ev);
}

/* The SSL call would block with error e: watch output only when it waits for it. */
static void conn_block(conn_t *c, int e)
{
    int out = e == SSL_ERROR_WANT_WRITE;
    if (out == c->want_out || c->fd < 0)
        return;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET | (out ? EPOLLOUT : 0),
                             .data.ptr = c};
    epoll_ctl(c->t->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = out;
}

static void req_reserve(conn_t *c, size_t n)
{
    if (c->req_cap < n) {
        c->req_cap = n;
        c->req = xrealloc(c->req, n);
    }
}

static void append_txid(thread_t *t, const char *id)
{
    size_t n = strlen(id);
    if (n == 0)
        return;
    snprintf(t->last_txid, sizeof t->last_txid, "%s", id);
    if (cfg.txids == NULL || cfg.mode != MODE_WRITE)
        return;
    if (t->txlen + n + 1 > t->txcap) {
        t->txcap = t->txcap ? t->txcap * 2 : 65536;
        while (t->txcap < t->txlen + n + 1)
            t->txcap *= 2;
        t->txbuf = xrealloc(t->txbuf, t->txcap);
    }
    memcpy(t->txbuf + t->txlen, id, n);
    t->txlen += n;
    t->txbuf[t->txlen++] = '\n';
}

static const char *coll_param(char *buf, size_t n)
{
    if (cfg.collection == NULL || cfg.collection[0] == 0)
        return "";
    snprintf(buf, n, "&collectionId=%s", cfg.collection);
    return buf;
}

static atomic_uint_fast64_t g_spread_next;

/* A write's collection: --collection, or with --collections the next of the N in turn. */
static const char *write_coll_param(char *buf, size_t n)
{
    if (cfg.spread == 0)
        return coll_param(buf, n);
    uint64_t k = atomic_fetch_add(&g_spread_next, 1) % cfg.spread;
    snprintf(buf, n, "&collectionId=%s%" PRIu64, cfg.collection ? cfg.collection : "c", k);
    return buf;
}

static void build_write(conn_t *c, thread_t *t)
{
    char cp[800];
    size_t need = (size_t)cfg.body_bytes + 2048;
    req_reserve(c, need);
    int bl = cfg.body_bytes + 15; /* {"contents":""} */
    int h = snprintf(c->req, need,
                     "POST /app/transactions?api-version=" API_VERSION "%s HTTP/1.1\r\n"
                     "Host: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                     "{\"contents\":\"",
                     write_coll_param(cp, sizeof cp), cfg.hosthdr, bl);
    char *p = c->req + h;
    /* contents: a unique prefix, padded with letters to body_bytes characters */
    char tag[64];
    int tl = snprintf(tag, sizeof tag, "load-%d-%" PRIu64 "-", t->id, t->seq++);
    for (int i = 0; i < cfg.body_bytes; i++)
        p[i] = i < tl ? tag[i] : (char)('a' + i % 26);
    p += cfg.body_bytes;
    memcpy(p, "\"}", 2);
    c->req_len = (size_t)h + (size_t)cfg.body_bytes + 2;
}

static void build_get(conn_t *c, const char *target)
{
    if (cfg.post_body != NULL && c->op == OP_GET) { /* --post-file: the same POST every time */
        size_t need = strlen(target) + cfg.post_len + 512;
        req_reserve(c, need);
        int h = snprintf(c->req, need,
                         "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\n\r\n",
                         target, cfg.hosthdr, cfg.post_len);
        memcpy(c->req + h, cfg.post_body, cfg.post_len);
        c->req_len = (size_t)h + cfg.post_len;
        return;
    }
    size_t need = strlen(target) + 512;
    req_reserve(c, need);
    int h = snprintf(c->req, need, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, cfg.hosthdr);
    c->req_len = (size_t)h;
}

static void build_read(conn_t *c, const char *id)
{
    char cp[800], target[1024];
    snprintf(target, sizeof target, "/app/transactions/%s?api-version=" API_VERSION "%s", id,
             coll_param(cp, sizeof cp));
    build_get(c, target);
}

/* choose and build the next request; 0 when nothing is to be sent any more */
static int next_request(conn_t *c)
{
    thread_t *t = c->t;
    if (cfg.requests > 0 && atomic_fetch_add(&g_issued, 1) >= cfg.requests)
        return 0;
    int op;
    switch (cfg.mode) {
    case MODE_WRITE:
        op = OP_WRITE;
        break;
    case MODE_READ:
        op = OP_READ;
        break;
    case MODE_GET:
        op = OP_GET;
        break;
    default:
        op = (double)(rnd(&t->rng) >> 11) / 9007199254740992.0 < cfg.write_ratio ? OP_WRITE
                                                                                 : OP_READ;
        if (op == OP_READ && g_nids == 0 && t->last_txid[0] == 0)
            op = OP_WRITE;
    }
    c->op = op;
    if (op == OP_WRITE)
        build_write(c, t);
    else if (op == OP_READ)
        build_read(c, g_nids > 0 ? g_ids[rnd(&t->rng) % g_nids] : t->last_txid);
    else
        build_get(c, cfg.path);
    c->req_off = 0;
    c->rlen = 0;
    memset(&c->resp, 0, sizeof c->resp);
    return 1;
}

static int running(uint64_t now) { return now < g_deadline; }

/* The connection failed: count the request in flight, reconnect (or retry later). */
static void conn_fail(conn_t *c, uint64_t now)
{
    thread_t *t = c->t;
    if ((c->state == ST_SEND || c->state == ST_RECV) && running(now))
        t->st[c->op].io_err++;
    if (c->state == ST_SEND || c->state == ST_RECV)
        c->sched += c->interval; /* that slot was used */
    conn_close(c);
    if (!running(now)) {
        c->state = ST_DONE;
        return;
    }
    t->reconnects++;
    if (conn_open(c, 1) == 0) {
        if (conn_register(c) == 0)
            return;
        conn_close(c);
    }
    c->state = ST_DOWN;
    c->due = now + 100000000u; /* retry in 100 ms */
}

static void complete(conn_t *c, uint64_t now)
{
    thread_t *t = c->t;
    resp_t *r = &c->resp;
    if (running(now)) {
        opstats_t *s = &t->st[c->op];
        if (r->status >= 200 && r->status < 300 && c->op == OP_READ &&
            body_state_is(c->rbuf + r->body_start, c->rlen - r->body_start, "Loading")) {
            s->loading++; /* answered, but the entry was not served: not a read */
        } else if (r->status >= 200 && r->status < 300) {
            s->ok++;
            stats_add(s, now - c->t_start);
            if (cfg.rate > 0)
                stats_add_svc(s, now - c->t_sent);
            if (c->op == OP_WRITE)
                append_txid(t, r->txid);
        } else {
            s->status_err[r->status < NSTATUS ? r->status : 0]++;
        }
    }
    if (cfg.rate > 0) {
        c->sched += c->interval;
        c->due = c->sched;
    }
    c->state = ST_IDLE;
}

/* Advance the connection as far as it goes without blocking. */
static void drive(conn_t *c)
{
    for (;;) {
        uint64_t now = now_ns();
        switch (c->state) {
        case ST_HANDSHAKE: {
            int rc = SSL_do_handshake(c->ssl);
            if (rc == 1) {
                conn_block(c, SSL_ERROR_WANT_READ);
                c->state = ST_IDLE;
                c->due = c->sched;   /* paced: back on the schedule (late sends go out at once) */
                if (g_deadline == 0) /* before the start: wait for the barrier */
                    return;
                continue;
            }
            int e = SSL_get_error(c->ssl, rc);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                conn_block(c, e);
                return;
            }
            c->state = ST_DOWN; /* setup: reported by the caller */
            if (c->t->why[0] == 0) {
                long v = SSL_get_verify_result(c->ssl);
                unsigned long err = ERR_peek_last_error();
                if (v != X509_V_OK)
                    snprintf(c->t->why, sizeof c->t->why, "certificate verification: %s",
                             X509_verify_cert_error_string(v));
                else if (err != 0)
                    snprintf(c->t->why, sizeof c->t->why, "TLS: %s", ERR_reason_error_string(err));
                else
                    snprintf(c->t->why, sizeof c->t->why, "TLS handshake: %s",
                             e == SSL_ERROR_SYSCALL && errno != 0 ? strerror(errno)
                                                                  : "connection closed");
            }
            ERR_clear_error();
            if (g_deadline == 0)
                return;
            /* refused handshake: count it and retry in 100 ms, not in a tight loop */
            c->t->handshake_failures++;
            conn_close(c);
            c->due = now + 100000000u;
            return;
        }
        case ST_IDLE:
            if (g_deadline == 0)
                return; /* not started yet (e.g. session tickets arriving after the handshake) */
            if (!running(now)) {
                c->state = ST_DONE;
                return;
            }
            if (cfg.rate > 0 && now + PACE_SLACK_NS < c->sched)
                return; /* the timer brings it back */
            if (!next_request(c)) {
                c->state = ST_DONE;
                return;
            }
            /* paced: from the intended time when late, from now when (slightly) early */
            c->t_start = cfg.rate > 0 && c->sched < now ? c->sched : now;
            c->t_sent = now;
            c->state = ST_SEND;
            continue;
        case ST_SEND: {
            int rc = SSL_write(c->ssl, c->req + c->req_off, (int)(c->req_len - c->req_off));
            if (rc > 0) {
                c->req_off += (size_t)rc;
                if (c->req_off < c->req_len)
                    continue;
                /* sent: wait for the answer (every arrival of data raises an edge; reading now
                 * would nearly always find nothing, one wasted syscall per request) */
                c->state = ST_RECV;
                conn_block(c, SSL_ERROR_WANT_READ);
                if (SSL_has_pending(c->ssl))
                    continue;
                return;
            }
            int e = SSL_get_error(c->ssl, rc);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                conn_block(c, e);
                return;
            }
            conn_fail(c, now);
            if (c->state != ST_HANDSHAKE)
                return;
            continue;
        }
        case ST_RECV: {
            if (c->rcap - c->rlen < 4096) {
                if (c->rcap >= RBUF_MAX) {
                    conn_fail(c, now);
                    return;
                }
                c->rcap = c->rcap ? c->rcap * 2 : 16384;
                c->rbuf = xrealloc(c->rbuf, c->rcap);
            }
            int rc = SSL_read(c->ssl, c->rbuf + c->rlen, (int)(c->rcap - c->rlen));
            if (rc > 0) {
                c->rlen += (size_t)rc;
                int p = resp_parse(&c->resp, c->rbuf, c->rlen);
                if (p < 0) {
                    conn_fail(c, now);
                    return;
                }
                if (p == 1) {
                    now = now_ns();
                    complete(c, now);
                    if (c->resp.conn_close) {
                        conn_close(c);
                        c->state = ST_IDLE;
                        conn_fail(c, now);
                        if (c->state != ST_HANDSHAKE)
                            return;
                    }
                }
                continue;
            }
            int e = SSL_get_error(c->ssl, rc);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                conn_block(c, e);
                return;
            }
            if (c->resp.hdr_done && c->resp.until_close) { /* the body ended with the stream */
                complete(c, now);
                c->state = ST_IDLE;
            }
            conn_fail(c, now);
            if (c->state != ST_HANDSHAKE)
                return;
            continue;
        }
        case ST_DOWN:
            if (g_deadline == 0)
                return;
            if (!running(now)) {
                c->state = ST_DONE;
                return;
            }
            if (now < c->due)
                return;
            conn_fail(c, now);
            if (c->state != ST_HANDSHAKE)
                return;
            continue;
        default:
            return;
        }
    }
}

static void arm_timer(thread_t *t, uint64_t when)
{
    if (when == t->armed)
        return;
    t->armed = when;
    struct itimerspec its = {0};
    its.it_value.tv_sec = (time_t)(when / 1000000000u);
    its.it_value.tv_nsec = (long)(when % 1000000000u);
    if (when == 0)
        its.it_value.tv_nsec = 1;
    timerfd_settime(t->tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void *thread_main(void *arg)
{
    thread_t *t = arg;
    struct epoll_event evs[64];

    /* connect and handshake every connection before the clock starts */
    for (int i = 0; i < t->nconns; i++) {
        conn_t *c = &t->conns[i];
        c->t = t;
        c->fd = -1;
        if (conn_open(c, 1) != 0) {
            if (t->why[0] == 0)
                snprintf(t->why, sizeof t->why, "connect: %s", strerror(errno));
            c->state = ST_DOWN;
            t->setup_failures++;
            continue;
        }
        if (conn_register(c) != 0) {
            conn_close(c);
            c->state = ST_DOWN;
            t->setup_failures++;
            continue;
        }
        drive(c); /* sends the ClientHello */
    }
    uint64_t setup_end = now_ns() + 10000000000u;
    for (;;) {
        int pending = 0;
        for (int i = 0; i < t->nconns; i++)
            pending += t->conns[i].state == ST_HANDSHAKE;
        if (pending == 0 || now_ns() > setup_end)
            break;
        int n = epoll_wait(t->ep, evs, 64, 100);
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (c != NULL)
                drive(c);
        }
    }
    for (int i = 0; i < t->nconns; i++) {
        if (t->conns[i].state != ST_IDLE) {
            if (t->conns[i].state == ST_HANDSHAKE)
                t->setup_failures++;
            else if (t->conns[i].state == ST_DOWN && t->conns[i].fd >= 0)
                t->setup_failures++;
            conn_close(&t->conns[i]);
            t->conns[i].state = ST_DOWN;
        }
    }
    pthread_barrier_wait(&g_barrier); /* handshakes done */
    pthread_barrier_wait(&g_barrier); /* g_t0, g_deadline set */

    double total_rate = cfg.rate;
    for (int i = 0; i < t->nconns; i++) {
        conn_t *c = &t->conns[i];
        if (total_rate > 0) {
            c->interval = (uint64_t)(1e9 * cfg.conns / total_rate);
            /* spread the connections' first sends over one interval */
            c->sched = c->due = g_t0 + (uint64_t)(1e9 * (t->first + i) / total_rate);
        } else {
            c->sched = c->due = g_t0;
        }
        if (c->state == ST_DOWN)
            c->due = g_t0;
    }
    for (int i = 0; i < t->nconns; i++)
        drive(&t->conns[i]);

    for (;;) {
        uint64_t now = now_ns();
        if (now >= g_deadline)
            break;
        /* next timer: the earliest paced send or reconnect; the deadline at the latest */
        uint64_t next = g_deadline;
        int live = 0;
        for (int i = 0; i < t->nconns; i++) {
            conn_t *c = &t->conns[i];
            if (c->state != ST_DONE)
                live++;
            if ((c->state == ST_IDLE && cfg.rate > 0) || c->state == ST_DOWN)
                if (c->due < next)
                    next = c->due;
        }
        if (live == 0)
            break;
        arm_timer(t, next);
        int n = epoll_wait(t->ep, evs, 64, 1000);
        if (n < 0 && errno != EINTR)
            break;
        int timer = 0;
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (c == NULL) {
                uint64_t exp;
                if (read(t->tfd, &exp, sizeof exp) < 0) {
                    /* spurious wake-up: nothing to do */
                }
                t->armed = 0; /* expired: re-arm even for the same time */
                timer = 1;
            } else {
                drive(c);
            }
        }
        if (timer || n == 0) {
            now = now_ns();
            for (int i = 0; i < t->nconns; i++) {
                conn_t *c = &t->conns[i];
                if ((c->state == ST_IDLE && c->due <= now + PACE_SLACK_NS) ||
                    (c->state == ST_DOWN && c->due <= now))
                    drive(c);
            }
        }
    }
    t->end = now_ns();
    if (t->end > g_deadline)
        t->end = g_deadline;
    if (cfg.rate > 0 && (cfg.requests == 0 || atomic_load(&g_issued) < cfg.requests)) {
        /* Paced: every request scheduled before the deadline and not answered by then enters the
         * latencies with what it had waited at the deadline (see opstats_t.cut_off). */
        for (int i = 0; i < t->nconns; i++) {
            conn_t *c = &t->conns[i];
            uint64_t due = c->sched;
            int op = cfg.mode == MODE_READ ? OP_READ : cfg.mode == MODE_GET ? OP_GET : OP_WRITE;
            if (c->state == ST_SEND || c->state == ST_RECV) {
                op = c->op;
                t->st[op].cut_off++;
                stats_add(&t->st[op], g_deadline > c->t_start ? g_deadline - c->t_start : 0);
                due = c->sched + c->interval;
            }
            for (; due < g_deadline && c->interval > 0; due += c->interval) {
                t->st[op].cut_off++;
                stats_add(&t->st[op], g_deadline - due);
            }
        }
    }
    for (int i = 0; i < t->nconns; i++)
        conn_close(&t->conns[i]);
    return NULL;
}

/* ---- receipt latency (sequential, blocking I/O on one connection) -------------------------- */

static int sync_request(conn_t *c)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (c->ssl == NULL) {
            if (conn_open(c, 0) != 0 || SSL_connect(c->ssl) != 1) {
                conn_close(c);
                continue;
            }
        }
        size_t off = 0;
        int ok = 1;
        while (off < c->req_len) {
            int rc = SSL_write(c->ssl, c->req + off, (int)(c->req_len - off));
            if (rc <= 0) {
                ok = 0;
                break;
            }
            off += (size_t)rc;
        }
        c->rlen = 0;
        memset(&c->resp, 0, sizeof c->resp);
        while (ok) {
            if (c->rcap - c->rlen < 4096) {
                if (c->rcap >= RBUF_MAX) {
                    ok = 0;
                    break;
                }
                c->rcap = c->rcap ? c->rcap * 2 : 16384;
                c->rbuf = xrealloc(c->rbuf, c->rcap);
            }
            int rc = SSL_read(c->ssl, c->rbuf + c->rlen, (int)(c->rcap - c->rlen));
            if (rc <= 0) {
                if (c->resp.hdr_done && c->resp.until_close) {
                    conn_close(c);
                    return 0;
                }
                ok = 0;
                break;
            }
            c->rlen += (size_t)rc;
            int p = resp_parse(&c->resp, c->rbuf, c->rlen);
            if (p < 0)
                ok = 0;
            else if (p == 1)
                break;
        }
        if (ok) {
            if (c->resp.conn_close)
                conn_close(c);
            return 0;
        }
        conn_close(c);
        /* retry once only if nothing was answered (e.g. an idle keep-alive connection closed) */
        if (c->rlen > 0)
            return -1;
    }
    return -1;
}

static void sleep_until(uint64_t t)
{
    struct timespec ts = {.tv_sec = (time_t)(t / 1000000000u), .tv_nsec = (long)(t % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static void receipt_latency(int n)
{
    thread_t t = {.id = 999, .rng = 88172645463325252u};
    conn_t c = {.t = &t, .fd = -1};
    uint64_t *lat = calloc((size_t)n, sizeof *lat);
    if (lat == NULL)
        die("out of memory");
    size_t nl = 0;
    int timeouts = 0, write_err = 0, write_fail_run = 0;
    uint64_t polls = 0, not_ready = 0;
    for (int i = 0; i < n; i++) {
        build_write(&c, &t);
        if (sync_request(&c) != 0 || c.resp.status < 200 || c.resp.status >= 300 ||
            c.resp.txid[0] == 0) {
            write_err++;
            if (++write_fail_run >= 3 || (write_err > 10 && write_err > n / 2)) {
                fprintf(stderr,
                        "bench_load: receipt latency: too many failed writes (last "
                        "status %d)\n",
                        c.resp.status);
                break;
            }
            continue;
        }
        write_fail_run = 0;
        uint64_t t200 = now_ns();
        char txid[TXID_MAX];
        snprintf(txid, sizeof txid, "%s", c.resp.txid);
        char target[256];
        snprintf(target, sizeof target, "/app/transactions/%s/receipt?api-version=" API_VERSION,
                 txid);
        int ready = 0;
        uint64_t poll_at = t200;
        while (now_ns() - t200 < 10000000000u) {
            build_get(&c, target);
            polls++;
            if (sync_request(&c) == 0 && c.resp.status >= 200 && c.resp.status < 300 &&
                body_state_is(c.rbuf + c.resp.body_start, c.rlen - c.resp.body_start, "Ready")) {
                lat[nl++] = now_ns() - t200;
                ready = 1;
                break;
            }
            not_ready++;
            poll_at += 2000000u;
            uint64_t nw = now_ns();
            if (poll_at < nw)
                poll_at = nw;
            sleep_until(poll_at);
        }
        if (!ready && ++timeouts >= 3 && nl == 0) {
            fprintf(stderr, "bench_load: receipt latency: no receipt ready in 10 s, three times; "
                            "stopped\n");
            break;
        }
    }
    conn_close(&c);
    if (nl > 0)
        qsort(lat, nl, sizeof *lat, cmp_u64);
    printf("load.receipt.n %zu receipts\n", nl);
    printf("load.receipt.p50_ms %.3f ms\n", pct_ms(lat, nl, 50));
    printf("load.receipt.p99_ms %.3f ms\n", pct_ms(lat, nl, 99));
    printf("load.receipt.max_ms %.3f ms\n", nl ? (double)lat[nl - 1] / 1e6 : 0.0);
    printf("load.receipt.timeouts %d count\n", timeouts);
    printf("load.receipt.write_errors %d count\n", write_err);
    printf("load.receipt.polls %" PRIu64 " count\n", polls);
    fprintf(stderr,
            "receipts: %zu ready, p50 %.2f ms, p99 %.2f ms, max %.2f ms; %d timeouts (10 s), "
            "%d failed writes, %" PRIu64 " polls (%" PRIu64 " not ready)\n",
            nl, pct_ms(lat, nl, 50), pct_ms(lat, nl, 99), nl ? (double)lat[nl - 1] / 1e6 : 0.0,
            timeouts, write_err, polls, not_ready);
    free(lat);
    free(c.req);
    free(c.rbuf);
}

/* ---- setup and report ----------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_load --url https://HOST:PORT --cacert PEM [--cert PEM --key PEM]\n"
            "                  [--connections 32] [--threads 2] [--duration 10]\n"
            "                  [--mode write|read|get|mixed] [--rate R] [--requests N]\n"
            "                  [--post-file F] (with --mode get: POST F's bytes to --path)\n"
            "                  [--path PATH] [--body-bytes 100] [--collection C] [--txids FILE]\n"
            "                  [--write-ratio 0.5] [--receipt-latency N] [--collections N]\n");
}

static void parse_url(const char *url)
{
    if (strncmp(url, "https://", 8) != 0) {
        fprintf(stderr, "bench_load: --url must start with https://\n");
        exit(2);
    }
    const char *h = url + 8;
    const char *hend, *rest;
    if (*h == '[') {
        hend = strchr(h, ']');
        if (hend == NULL) {
            fprintf(stderr, "bench_load: bad --url\n");
            exit(2);
        }
        snprintf(cfg.host, sizeof cfg.host, "%.*s", (int)(hend - h - 1), h + 1);
        rest = hend + 1;
    } else {
        hend = h + strcspn(h, ":/");
        snprintf(cfg.host, sizeof cfg.host, "%.*s", (int)(hend - h), h);
        rest = hend;
    }
    if (*rest == ':') {
        size_t pl = strcspn(rest + 1, "/");
        snprintf(cfg.port, sizeof cfg.port, "%.*s", (int)pl, rest + 1);
    } else {
        snprintf(cfg.port, sizeof cfg.port, "443");
    }
    if (cfg.host[0] == 0 || cfg.port[0] == 0) {
        fprintf(stderr, "bench_load: bad --url\n");
        exit(2);
    }
    unsigned char tmp[16];
    cfg.host_is_ip =
        inet_pton(AF_INET, cfg.host, tmp) == 1 || inet_pton(AF_INET6, cfg.host, tmp) == 1;
    if (strchr(cfg.host, ':') != NULL)
        snprintf(cfg.hosthdr, sizeof cfg.hosthdr, "[%s]:%s", cfg.host, cfg.port);
    else
        snprintf(cfg.hosthdr, sizeof cfg.hosthdr, "%s:%s", cfg.host, cfg.port);
}

static void load_ids(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        perror(path);
        exit(1);
    }
    size_t cap = 0;
    char line[256];
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\r\n")] = 0;
        if (line[0] == 0)
            continue;
        if (g_nids == cap) {
            cap = cap ? cap * 2 : 4096;
            g_ids = xrealloc(g_ids, cap * sizeof *g_ids);
        }
        g_ids[g_nids] = strdup(line);
        if (g_ids[g_nids] == NULL)
            die("out of memory");
        g_nids++;
    }
    fclose(f);
}

static void setup_tls(void)
{
    g_ctx = SSL_CTX_new(TLS_client_method());
    if (g_ctx == NULL)
        die("SSL_CTX_new failed");
    SSL_CTX_set_min_proto_version(g_ctx, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(g_ctx, TLS1_3_VERSION);
    if (SSL_CTX_load_verify_locations(g_ctx, cfg.cacert, NULL) != 1)
        die("cannot load --cacert");
    SSL_CTX_set_verify(g_ctx, SSL_VERIFY_PEER, NULL);
    if (cfg.cert != NULL) {
        if (SSL_CTX_use_certificate_chain_file(g_ctx, cfg.cert) != 1)
            die("cannot load --cert");
        if (SSL_CTX_use_PrivateKey_file(g_ctx, cfg.key, SSL_FILETYPE_PEM) != 1)
            die("cannot load --key");
        if (SSL_CTX_check_private_key(g_ctx) != 1)
            die("--key does not match --cert");
    }
    SSL_CTX_set_mode(g_ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* read whole socket buffers, not record header then record body (one read per response) */
    SSL_CTX_set_read_ahead(g_ctx, 1);
}

static void resolve(void)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(cfg.host, cfg.port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "bench_load: %s: %s\n", cfg.host, gai_strerror(rc));
        exit(1);
    }
    memcpy(&g_addr, res->ai_addr, res->ai_addrlen);
    g_addrlen = res->ai_addrlen;
    freeaddrinfo(res);
}

static void report(const char *prefix, opstats_t *s, double secs, int reads)
{
    uint64_t errs = s->io_err;
    for (int i = 0; i < NSTATUS; i++)
        errs += s->status_err[i];
    double per_s = secs > 0 ? (double)s->ok / secs : 0;
    const hist_t *h = &s->lat;
    double mean = h->n ? h->sum / (double)h->n / 1e6 : 0;
    printf("%s.per_s %.1f req/s\n", prefix, per_s);
    printf("%s.ok %" PRIu64 " count\n", prefix, s->ok);
    printf("%s.p50_ms %.3f ms\n", prefix, h_pct_ms(h, 50));
    printf("%s.p90_ms %.3f ms\n", prefix, h_pct_ms(h, 90));
    printf("%s.p99_ms %.3f ms\n", prefix, h_pct_ms(h, 99));
    printf("%s.p999_ms %.3f ms\n", prefix, h_pct_ms(h, 99.9));
    printf("%s.max_ms %.3f ms\n", prefix, (double)h->max / 1e6);
    printf("%s.mean_ms %.3f ms\n", prefix, mean);
    if (s->svc.n > 0) {
        /* paced runs: the same answers timed from their actual send (without the queueing
         * behind a late connection that the figures above charge to the server) */
        printf("%s.svc_p50_ms %.3f ms\n", prefix, h_pct_ms(&s->svc, 50));
        printf("%s.svc_p99_ms %.3f ms\n", prefix, h_pct_ms(&s->svc, 99));
    }
    if (cfg.rate > 0)
        printf("%s.cut_off %" PRIu64 " count\n", prefix, s->cut_off);
    printf("%s.errors %" PRIu64 " count\n", prefix, errs);
    if (s->io_err)
        printf("%s.errors.io %" PRIu64 " count\n", prefix, s->io_err);
    for (int i = 0; i < NSTATUS; i++)
        if (s->status_err[i])
            printf("%s.errors.%d %" PRIu64 " count\n", prefix, i, s->status_err[i]);
    if (reads)
        printf("%s.loading %" PRIu64 " count\n", prefix, s->loading);
    fprintf(stderr,
            "%-18s %10.1f req/s  %8" PRIu64 " ok  p50 %.3f  p90 %.3f  p99 %.3f  max %.3f ms  "
            "%" PRIu64 " errors",
            prefix, per_s, s->ok, h_pct_ms(h, 50), h_pct_ms(h, 90), h_pct_ms(h, 99),
            (double)h->max / 1e6, errs);
    if (s->io_err)
        fprintf(stderr, " (io %" PRIu64 ")", s->io_err);
    for (int i = 0; i < NSTATUS; i++)
        if (s->status_err[i])
            fprintf(stderr, " (%d: %" PRIu64 ")", i, s->status_err[i]);
    if (s->loading)
        fprintf(stderr, " [%" PRIu64 " Loading]", s->loading);
    if (s->cut_off)
        fprintf(stderr, " [%" PRIu64 " cut off by the end]", s->cut_off);
    if (s->svc.n > 0)
        fprintf(stderr, " [from send: p50 %.3f p99 %.3f ms]", h_pct_ms(&s->svc, 50),
                h_pct_ms(&s->svc, 99));
    fputc('\n', stderr);
}

int main(int argc, char **argv)
{
    const char *url = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--url") == 0)
            url = v;
        else if (strcmp(a, "--cacert") == 0)
            cfg.cacert = v;
        else if (strcmp(a, "--cert") == 0)
            cfg.cert = v;
        else if (strcmp(a, "--key") == 0)
            cfg.key = v;
        else if (strcmp(a, "--connections") == 0)
            cfg.conns = atoi(v);
        else if (strcmp(a, "--threads") == 0)
            cfg.threads = atoi(v);
        else if (strcmp(a, "--duration") == 0) {
            cfg.duration = atof(v);
            cfg.duration_set = 1;
        } else if (strcmp(a, "--mode") == 0) {
            int m = -1;
            for (int k = 0; k < 4; k++)
                if (strcmp(v, mode_names[k]) == 0)
                    m = k;
            if (m < 0) {
                usage(stderr);
                return 2;
            }
            cfg.mode = m;
        } else if (strcmp(a, "--rate") == 0)
            cfg.rate = atof(v);
        else if (strcmp(a, "--requests") == 0)
            cfg.requests = strtoull(v, NULL, 10);
        else if (strcmp(a, "--path") == 0)
            cfg.path = v;
        else if (strcmp(a, "--post-file") == 0) {
            FILE *pf = fopen(v, "rb");
            if (pf == NULL) {
                fprintf(stderr, "bench_load: cannot read %s\n", v);
                return 2;
            }
            cfg.post_body = xrealloc(NULL, 1u << 24);
            cfg.post_len = fread(cfg.post_body, 1, 1u << 24, pf);
            fclose(pf);
        } else if (strcmp(a, "--body-bytes") == 0)
            cfg.body_bytes = atoi(v);
        else if (strcmp(a, "--collection") == 0)
            cfg.collection = v;
        else if (strcmp(a, "--txids") == 0)
            cfg.txids = v;
        else if (strcmp(a, "--write-ratio") == 0)
            cfg.write_ratio = atof(v);
        else if (strcmp(a, "--receipt-latency") == 0)
            cfg.receipt_n = atoi(v);
        else if (strcmp(a, "--collections") == 0)
            cfg.spread = strtoull(v, NULL, 10);
        else {
            fprintf(stderr, "bench_load: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (url == NULL || cfg.cacert == NULL || (cfg.cert == NULL) != (cfg.key == NULL) ||
        cfg.conns < 1 || cfg.threads < 1 || cfg.duration < 0 || cfg.rate < 0 ||
        cfg.body_bytes < 0 || cfg.body_bytes > (1 << 24) || cfg.receipt_n < 0) {
        usage(stderr);
        return 2;
    }
    if (cfg.collection != NULL) {
        /* percent-encode the collection id for the query string */
        static char enc[3 * 256 + 1];
        const char *hex = "0123456789ABCDEF";
        size_t o = 0;
        if (strlen(cfg.collection) > 256) {
            fprintf(stderr, "bench_load: --collection too long\n");
            return 2;
        }
        for (const unsigned char *p = (const unsigned char *)cfg.collection; *p; p++) {
            if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                strchr("-_.~:@", *p) != NULL) {
                enc[o++] = (char)*p;
            } else {
                enc[o++] = '%';
                enc[o++] = hex[*p >> 4];
                enc[o++] = hex[*p & 15];
            }
        }
        enc[o] = 0;
        cfg.collection = enc;
    }
    if (cfg.requests > 0 && !cfg.duration_set)
        cfg.duration = 3600;
    if (cfg.threads > cfg.conns)
        cfg.threads = cfg.conns;
    parse_url(url);
    if (cfg.mode == MODE_READ) {
        if (cfg.txids == NULL) {
            fprintf(stderr, "bench_load: --mode read needs --txids FILE\n");
            return 2;
        }
        load_ids(cfg.txids);
        if (g_nids == 0) {
            fprintf(stderr, "bench_load: no transaction ids in %s\n", cfg.txids);
            return 1;
        }
    } else if (cfg.mode == MODE_MIXED && cfg.txids != NULL) {
        load_ids(cfg.txids);
    }
    signal(SIGPIPE, SIG_IGN);
    setup_tls();
    resolve();

    int nt = cfg.threads;
    thread_t *ts = calloc((size_t)nt, sizeof *ts);
    conn_t *cs = calloc((size_t)cfg.conns, sizeof *cs);
    if (ts == NULL || cs == NULL)
        die("out of memory");
    pthread_barrier_init(&g_barrier, NULL, (unsigned)nt + 1);
    int first = 0;
    for (int i = 0; i < nt; i++) {
        thread_t *t = &ts[i];
        t->id = i;
        t->first = first;
        t->nconns = cfg.conns / nt + (i < cfg.conns % nt);
        t->conns = cs + first;
        first += t->nconns;
        t->rng = 0x9E3779B97F4A7C15u * (uint64_t)(i + 1) ^ (uint64_t)now_ns();
        if (t->rng == 0)
            t->rng = 1;
        t->ep = epoll_create1(EPOLL_CLOEXEC);
        t->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (t->ep < 0 || t->tfd < 0)
            die("epoll/timerfd");
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        epoll_ctl(t->ep, EPOLL_CTL_ADD, t->tfd, &ev);
        if (pthread_create(&t->th, NULL, thread_main, t) != 0)
            die("pthread_create");
    }
    pthread_barrier_wait(&g_barrier);
    int failures = 0;
    for (int i = 0; i < nt; i++)
        failures += ts[i].setup_failures;
    uint64_t t0 = now_ns();
    g_t0 = t0;
    g_deadline = t0 + (uint64_t)(cfg.duration * 1e9);
    if (failures == cfg.conns)
        g_deadline = t0; /* nothing connected: end at once */
    pthread_barrier_wait(&g_barrier);
    uint64_t end = t0;
    for (int i = 0; i < nt; i++) {
        pthread_join(ts[i].th, NULL);
        if (ts[i].end > end)
            end = ts[i].end;
    }
    const char *why = NULL;
    for (int i = 0; i < nt && why == NULL; i++)
        if (ts[i].why[0] != 0)
            why = ts[i].why;
    if (failures == cfg.conns) {
        fprintf(stderr, "bench_load: no connection could be established to %s%s%s\n", url,
                why ? ": " : "", why ? why : "");
        return 1;
    }
    if (failures > 0)
        fprintf(stderr, "bench_load: %d of %d connections failed to connect at the start%s%s\n",
                failures, cfg.conns, why ? ": " : "", why ? why : "");
    double secs = (double)(end - t0) / 1e9;

    opstats_t *tot = calloc(NOPS, sizeof *tot);
    if (tot == NULL)
        die("out of memory");
    for (int i = 0; i < nt; i++)
        for (int k = 0; k < NOPS; k++)
            stats_merge(&tot[k], &ts[i].st[k]);

    uint64_t hs_fail = 0, reconnects = 0;
    for (int i = 0; i < nt; i++) {
        hs_fail += ts[i].handshake_failures;
        reconnects += ts[i].reconnects;
    }
    fprintf(stderr,
            "bench_load: %s %s, %d connections, %d threads, %.1f s, rate %s, body %d bytes\n",
            mode_names[cfg.mode], url, cfg.conns, nt, secs, cfg.rate > 0 ? "paced" : "max",
            cfg.body_bytes);
    char prefix[64];
    if (cfg.mode == MODE_MIXED) {
        opstats_t all = {0};
        stats_merge(&all, &tot[OP_WRITE]);
        stats_merge(&all, &tot[OP_READ]);
        report("load.mixed", &all, secs, 1);
        report("load.mixed.write", &tot[OP_WRITE], secs, 0);
        report("load.mixed.read", &tot[OP_READ], secs, 1);
        free(all.lat.b);
        free(all.svc.b);
    } else {
        int op = cfg.mode == MODE_WRITE ? OP_WRITE : cfg.mode == MODE_READ ? OP_READ : OP_GET;
        snprintf(prefix, sizeof prefix, "load.%s", op_names[op]);
        report(prefix, &tot[op], secs, op == OP_READ);
    }
    snprintf(prefix, sizeof prefix, "load.%s", mode_names[cfg.mode]);
    printf("%s.seconds %.3f s\n", prefix, secs);
    printf("%s.connections %d count\n", prefix, cfg.conns);
    if (reconnects > 0)
        printf("%s.reconnects %" PRIu64 " count\n", prefix, reconnects);
    if (hs_fail > 0)
        printf("%s.handshake_errors %" PRIu64 " count\n", prefix, hs_fail);
    if (cfg.rate > 0)
        printf("%s.target_rate %.1f req/s\n", prefix, cfg.rate);

    if (cfg.mode == MODE_WRITE && cfg.txids != NULL) {
        FILE *f = fopen(cfg.txids, "w");
        if (f == NULL) {
            perror(cfg.txids);
            return 1;
        }
        for (int i = 0; i < nt; i++)
            if (ts[i].txlen > 0 && fwrite(ts[i].txbuf, 1, ts[i].txlen, f) != ts[i].txlen) {
                perror(cfg.txids);
                return 1;
            }
        if (fclose(f) != 0) {
            perror(cfg.txids);
            return 1;
        }
    }
    fflush(stdout);
    if (cfg.receipt_n > 0)
        receipt_latency(cfg.receipt_n);

    for (int i = 0; i < nt; i++) {
        for (int k = 0; k < NOPS; k++) {
            free(ts[i].st[k].lat.b);
            free(ts[i].st[k].svc.b);
        }
        free(ts[i].txbuf);
        for (int j = 0; j < ts[i].nconns; j++) {
            free(ts[i].conns[j].req);
            free(ts[i].conns[j].rbuf);
        }
        close(ts[i].ep);
        close(ts[i].tfd);
    }
    for (int k = 0; k < NOPS; k++) {
        free(tot[k].lat.b);
        free(tot[k].svc.b);
    }
    free(tot);
    free(ts);
    free(cs);
    for (size_t i = 0; i < g_nids; i++)
        free(g_ids[i]);
    free(g_ids);
    SSL_CTX_free(g_ctx);
    pthread_barrier_destroy(&g_barrier);
    return 0;
}
