#include "nodeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *must(void *p)
{
    if (p == NULL) {
        fprintf(stderr, "nodeutil: out of memory\n");
        abort();
    }
    return p;
}

void nu_capture(void *ctx, int status, const char *const *h, size_t nh, const void *body,
                size_t len)
{
    nu_reply *r = ctx;
    r->calls++;
    r->status = status;
    free(r->body);
    r->body = must(malloc(len + 1));
    if (len > 0)
        memcpy(r->body, body, len);
    r->body[len] = '\0';
    r->len = len;
    if (nh > NU_MAX_HEADERS) {
        fprintf(stderr, "nodeutil: %zu reply headers (at most %d captured)\n", nh, NU_MAX_HEADERS);
        abort();
    }
    r->nh = nh;
    for (size_t i = 0; i < nh; i++) {
        snprintf(r->hname[i], sizeof r->hname[i], "%s", h[2 * i]);
        snprintf(r->hval[i], sizeof r->hval[i], "%s", h[2 * i + 1]);
    }
}

const char *nu_header(const nu_reply *r, const char *name)
{
    for (size_t i = 0; i < r->nh; i++) {
        if (strcmp(r->hname[i], name) == 0)
            return r->hval[i];
    }
    return NULL;
}

void nu_reply_free(nu_reply *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

nu_reply nu_run(cl_node *n, const nu_req *s, uint64_t request_id)
{
    nu_reply r;
    nu_start(n, s, request_id, &r);
    return r;
}

void nu_start(cl_node *n, const nu_req *s, uint64_t request_id, nu_reply *out)
{
    cl_http_request q;
    memset(&q, 0, sizeof q);
    q.method = s->method;
    q.target = must(strdup(s->target));
    const char *qm = strchr(s->target, '?');
    q.path = must(qm ? strndup(s->target, (size_t)(qm - s->target)) : strdup(s->target));
    q.query = must(strdup(qm ? qm + 1 : ""));
    const char *names[3] = {"content-type", s->hname, s->hname2};
    const char *values[3] = {s->ctype, s->hvalue, s->hvalue2};
    for (size_t i = 0; i < 3; i++) {
        if (names[i] != NULL && values[i] != NULL) {
            q.headers[q.nheaders].name = (char *)names[i];
            q.headers[q.nheaders++].value = (char *)values[i];
        }
    }
    size_t bl = s->body ? (s->body_len ? s->body_len : strlen(s->body)) : 0;
    q.body = must(malloc(bl + 1));
    if (bl > 0)
        memcpy(q.body, s->body, bl);
    q.body[bl] = '\0';
    q.body_len = bl;
    snprintf(q.client_fingerprint, sizeof q.client_fingerprint, "%s", s->fp ? s->fp : "");
    if (s->fp != NULL) {
        int always = s->not_before == 0 && s->not_after == 0;
        q.client_not_before = always ? 0 : s->not_before;
        q.client_not_after = always ? INT64_MAX : s->not_after;
    }
    snprintf(q.peer, sizeof q.peer, "127.0.0.1:1");
    q.request_id = request_id;
    memset(out, 0, sizeof *out);
    cl_node_handle(n, &q, nu_capture, out);
    free(q.target);
    free(q.path);
    free(q.query);
    free(q.body);
}
