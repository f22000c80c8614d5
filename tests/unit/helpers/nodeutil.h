/* Requests to a cl_node below HTTP, shared by test_node and fuzz_node: a cl_http_request built as
 * the HTTP layer builds it (net/http.c), handed to cl_node_handle, and the reply captured. */
#ifndef CLEDGER_NODEUTIL_H
#define CLEDGER_NODEUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "node/node.h"

#define NU_MAX_HEADERS 10

typedef struct {
    int calls; /* how many times the node replied (must be 1) */
    int status;
    char *body; /* NUL-terminated copy (free with nu_reply_free) */
    size_t len;
    size_t nh;
    char hname[NU_MAX_HEADERS][64];
    char hval[NU_MAX_HEADERS][512];
} nu_reply;

typedef struct {
    const char *method;            /* a static string, as http-parser's method names are */
    const char *target;            /* path and query */
    const char *fp;                /* client certificate fingerprint, NULL: no certificate */
    const char *ctype;             /* content-type header, NULL: none */
    const char *body;              /* NULL: none */
    size_t body_len;               /* 0: strlen(body) */
    const char *hname, *hvalue;    /* one more header (lower-case name), NULL: none */
    const char *hname2, *hvalue2;  /* and another */
    int64_t not_before, not_after; /* the certificate's validity; both 0: always valid */
} nu_req;

/* cl_node_reply_fn capturing into a nu_reply (ctx); aborts when out of memory or when the node
 * sends more than NU_MAX_HEADERS headers. */
void nu_capture(void *ctx, int status, const char *const *h, size_t nh, const void *body,
                size_t len);
/* The value of a captured header (exact name), NULL when absent. */
const char *nu_header(const nu_reply *r, const char *name);
void nu_reply_free(nu_reply *r);
/* Builds the request, hands it to the node with request id `request_id`, returns the reply
 * captured (calls is 0 when the node has not answered yet). Aborts when out of memory. */
nu_reply nu_run(cl_node *n, const nu_req *s, uint64_t request_id);
/* The same, capturing into *out, which must stay valid until the node has answered (a writer
 * that answers later, as cl_consensus does at the end of a batch). */
void nu_start(cl_node *n, const nu_req *s, uint64_t request_id, nu_reply *out);

#endif
