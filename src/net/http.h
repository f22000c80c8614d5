/*
 * http.h — HTTPS/1.1 server on libuv: TLS through OpenSSL memory BIOs (tls.h), requests parsed by
 * http-parser, keep-alive, bounded sizes and idle time, asynchronous replies.
 *
 * Flow: for every complete request the server calls the handler with a cl_http_exchange. The
 * handler (now or later, from the loop thread) calls cl_http_reply exactly once. Requests on one
 * connection are answered in order: the next request of a keep-alive connection is parsed only
 * after the previous reply was queued (no pipelining ambiguity). If the peer goes away before the
 * reply, the exchange stays valid until cl_http_reply, which then only frees it; handlers never see
 * a dangling pointer.
 *
 * Ownership: the request (all strings, headers, body) belongs to the exchange and lives until
 * cl_http_reply returns. cl_http_reply copies what it needs. The handler, cl_http_reply and
 * cl_http_server_stop run on the loop thread (the loop given to cl_http_server_start), also when
 * worker_threads moves the connections to other threads: a request is handed to the loop thread
 * whole, and its reply is handed back to the connection's worker, which owns it from then on.
 *
 * Limits (cl_http_server_opts): header bytes (default 16 KiB: 431 on excess), body bytes (default
 * 1 MiB: 413), idle time between requests and total time to receive one request (default 30 s /
 * 10 s: the connection is closed; a slow partial request cannot hold a slot forever), maximum
 * connections (default 1024: further accepts are closed at once), request-body bytes held over
 * all connections by bodies over 64 KiB (default 64 MiB: 503 and Retry-After). Malformed requests
 * get 400 and the connection is closed. Chunked request bodies are accepted within the body limit.
 */
#ifndef CLEDGER_NET_HTTP_H
#define CLEDGER_NET_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/err.h"
#include "net/tls.h"

#define CL_HTTP_MAX_HEADERS 64

typedef struct {
    char *name; /* lower-cased */
    char *value;
} cl_http_header;

typedef struct {
    const char *method; /* "GET", "POST", ... (static string) */
    char *target;       /* raw request target: path and query, as received */
    char *path;         /* raw path (before '?'), not percent-decoded */
    char *query;        /* raw query after '?', or "" */
    cl_http_header headers[CL_HTTP_MAX_HEADERS];
    size_t nheaders;
    uint8_t *body; /* NUL-terminated for convenience; body_len excludes the NUL */
    size_t body_len;
    /* Client identity from TLS: SHA-256 of the client certificate DER in ACL's upper-case
     * colon form (95 chars), or "" when no certificate was presented. */
    char client_fingerprint[96];
    /* That certificate's validity period, seconds since the epoch (both 0 without one; not_before
     * > not_after when the certificate's validity could not be read). */
    int64_t client_not_before, client_not_after;
    char peer[64];       /* "ip:port" */
    uint64_t request_id; /* unique per server, for x-ms-request-id and logs */
    uint64_t start_ns;   /* monotonic time the request was complete */
} cl_http_request;

/* Whether the request's client certificate is within its validity period at `now` (seconds since
 * the epoch; both bounds inclusive, as RFC 5280 §4.1.2.5 has them). 0 when there is none. */
static inline int cl_http_client_cert_current(const cl_http_request *r, int64_t now)
{
    return r->client_fingerprint[0] != '\0' && now >= r->client_not_before &&
           now <= r->client_not_after;
}

/* Whether the request's client certificate has a validity period that is empty or could not be
 * read (net/tls.c records unreadable dates as not_before > not_after, which no clock makes
 * current): the services tell this apart from "not valid now". 0 when there is none. */
static inline int cl_http_client_cert_unreadable(const cl_http_request *r)
{
    return r->client_fingerprint[0] != '\0' && r->client_not_before > r->client_not_after;
}

typedef struct cl_http_exchange cl_http_exchange;
typedef struct cl_http_server cl_http_server;

/* Handler: must eventually call cl_http_reply(x, ...) exactly once. */
typedef void (*cl_http_handler)(void *arg, cl_http_exchange *x);
/* Worker-side handler (threaded mode only): runs on the worker thread that owns the connection.
 * Returns 1 when it took the exchange (it has called, or will call on that same worker thread,
 * cl_http_reply exactly once), 0 to pass it on unanswered to `handler` on the main loop. */
typedef int (*cl_http_local_handler)(void *arg, cl_http_exchange *x);

/* How the server's own error replies (malformed requests, size limits; answered before any
 * handler sees the request) look, so they match the service's other errors. */
typedef struct {
    const char *bad_request_code; /* error.code of a 400 (default "InvalidInput", ACL's) */
    int error_code_header;        /* also send it as x-ms-error-code (MAA) */
    int uuid_request_id;      /* x-ms-request-id as "00000000-0000-4000-8000-<48-bit id in hex>" */
    const char *content_type; /* default "application/json" */
    const char *extra_name, *extra_value; /* one more header (e.g. a service version), or NULL */
} cl_http_error_style;

typedef struct {
    const char *host; /* listen address, e.g. "127.0.0.1" or "::1" */
    int port;         /* 0: pick a free port (see cl_http_server_port) */
    cl_tls_ctx *tls;  /* borrowed; must outlive the server */
    size_t max_header_bytes, max_body_bytes, max_connections;
    /* Request-body bytes held at once over all connections (default 64 MiB, at least
     * max_body_bytes): a request whose body would go over is answered 503 with Retry-After.
     * Bodies under body_pool_min_bytes (0: up to 64 KiB; 1: none) are not counted, so small
     * requests are never refused for it. */
    size_t max_body_pool_bytes, body_pool_min_bytes;
    uint64_t idle_timeout_ms, request_timeout_ms;
    /* SO_SNDBUF of every connection (0: the kernel's autotuning), as nginx's `listen ...
     * sndbuf=`: a small one keeps a slow reader's reply in the server, not in the kernel. */
    int send_buffer_bytes;
    cl_http_handler handler;
    void *handler_arg;
    int access_log; /* one JSON line per request on stderr: method, path, status, us, caller */
    /* 0: everything on `loop` (single loop). N > 0 (at most 64): connections (TLS, parsing,
     * serialising, sending, timers, access log) run on N worker threads with their own loops;
     * the main loop accepts and hands sockets out in turn, and the handler still runs only on
     * the main loop thread. cl_http_reply must then be called on the main loop thread too,
     * except for exchanges taken by local_handler, which are answered on their worker. */
    unsigned worker_threads;
    /* Optional, threaded mode: offered every request first, on its worker (see above). What it
     * touches must be safe from several worker threads at once; the caller's lock does that. */
    cl_http_local_handler local_handler;
    /* Optional (borrowed; must outlive the server): the look of the server's own error replies.
     * NULL: ACL's. */
    const cl_http_error_style *error_style;
} cl_http_server_opts;

CL_MUST_CHECK int cl_http_server_start(uv_loop_t *loop, const cl_http_server_opts *o,
                                       cl_http_server **out);
int cl_http_server_port(const cl_http_server *s);
/* Routing helpers shared by the services' routers (RFC 9110 §9.3.2, §9.3.7, §15.5.6).
 * cl_http_method_serves: whether a route declared for `route_method` serves a request's `method`
 * (HEAD is GET without the body; this layer drops the body of a HEAD reply).
 * cl_http_allow_add: appends `method` to the Allow value `allow` (cap bytes, NUL-terminated)
 * unless it is listed already, and HEAD after GET; a value that would not fit is not added. */
int cl_http_method_serves(const char *route_method, const char *method);
void cl_http_allow_add(char *allow, size_t cap, const char *method);

/* What a router answers once it has matched a request against its routes. */
typedef enum {
    CL_HTTP_ROUTE_SERVE,       /* a route serves the method: run it (Allow untouched) */
    CL_HTTP_ROUTE_OPTIONS,     /* 200, Allow: the methods and OPTIONS, no body */
    CL_HTTP_ROUTE_NOT_ALLOWED, /* 405 with Allow: the path's methods */
    CL_HTTP_ROUTE_NOT_FOUND,   /* 404: no route has this path */
} cl_http_route_verdict;

/* 1 when idle connections free OpenSSL's record buffers (after 1 s; this OpenSSL's SSL_free_buffers
 * refuses a half-read record, CVE-2024-4741); 0: OpenSSL releases them after every record. */
int cl_http_idle_frees_tls_buffers(void);

/* cl_http_route_decide: the verdict on a request for `method`. `asterisk`: the request target is
 * "*" (the whole server; it names a resource for OPTIONS only, RFC 9110 §9.3.7, and no route
 * serves it); `path_known`: some route has the request's path; `served`: one of them serves the
 * method. The caller has put in `allow` (cap bytes, NUL-terminated) the methods, with
 * cl_http_allow_add, of the routes that have the path, or of every route for "*"; for
 * CL_HTTP_ROUTE_OPTIONS this adds OPTIONS. The caller sends the reply, in its own error format. */
cl_http_route_verdict cl_http_route_decide(const char *method, int asterisk, int path_known,
                                           int served, char *allow, size_t cap);

/* Reply bytes held for readers over all connections: TLS records handed to the socket's write
 * queue and not yet taken by the kernel, and (threaded mode) replies made on the main loop that
 * their worker has not sent yet. What slow readers hold. Any thread. */
size_t cl_http_server_queued_bytes(const cl_http_server *s);
/* "HOST:PORT" or "[V6]:PORT" -> host (without brackets) and port 0..65535. 0 or -1. */
int cl_parse_hostport(const char *s, char *host, size_t hostcap, int *port);
/* Whether a server could listen on host:port, checked before a program changes anything: host
 * must be an IP address literal (cl_http_server_start takes nothing else; "localhost" is for the
 * caller to map), and the address must bind (SO_REUSEADDR, as the server sets). CL_EINVAL for a
 * host that is not a literal, CL_EIO when the bind fails (why: strerror). The probe socket is
 * closed; another process may still take the port before the server binds it. */
CL_MUST_CHECK int cl_http_listen_check(const char *host, int port, char *why, size_t cap);
/* Replaces the handler argument (for handlers whose state needs the bound port first). Call on
 * the main loop thread before the loop runs. */
void cl_http_server_set_handler_arg(cl_http_server *s, void *arg);
/* Graceful stop: close the listener, let in-flight exchanges reply (connections are closed after
 * their current reply), then call done(arg) and free the server. */
void cl_http_server_stop(cl_http_server *s, void (*done)(void *arg), void *arg);

const cl_http_request *cl_http_request_of(const cl_http_exchange *x);
/* Value of a request header (name lower-case), or NULL. */
const char *cl_http_header_get(const cl_http_request *r, const char *name);

/* Main loop, threaded mode: between cork and uncork (nestable), replies are queued to their
 * workers without waking them; uncork wakes each worker that got one, once. For a burst of
 * replies (a group commit's): the workers take it in one go instead of one wake-up per reply.
 * No effect in single-loop mode. */
void cl_http_server_cork(cl_http_server *s);
void cl_http_server_uncork(cl_http_server *s);

/* Sends the reply and releases the exchange. headers: `n` pairs (name, value) copied; the server
 * adds Content-Length, Content-Type: application/json when a body is given (unless the caller
 * sets one), Date, and Connection handling. body may be NULL with len 0 (e.g. 204). */
void cl_http_reply(cl_http_exchange *x, int status, const char *const *headers, size_t n,
                   const void *body, size_t len);

/* ---- for fuzzing and unit tests: the plaintext request parser on its own -------------------- */

typedef struct cl_http_parser cl_http_parser;
/* Called for each complete request; the request is valid only during the call. */
typedef void (*cl_http_parsed_cb)(void *arg, cl_http_request *req);
CL_MUST_CHECK int cl_http_parser_new(size_t max_header_bytes, size_t max_body_bytes,
                                     cl_http_parsed_cb cb, void *arg, cl_http_parser **out);
/* Feeds bytes. Returns CL_OK, or a negative code with *status_out set to the HTTP status the
 * server would answer before closing (400, 413, 431, 505). */
CL_MUST_CHECK int cl_http_parser_feed(cl_http_parser *p, const void *data, size_t len,
                                      int *status_out);
void cl_http_parser_free(cl_http_parser *p);

#endif
