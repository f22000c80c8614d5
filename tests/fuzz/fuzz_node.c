/*
 * fuzz_node.c — the data-plane service below HTTP (src/node): the one admission function, the
 * route table, every handler's query and body parsing, the state machine and the ledger behind
 * it, on hostile requests from callers of every role.
 *
 * One node runs per process, as in test_node: a real ledger in /tmp/cledger-fuzz-node-<pid> (no
 * syncs), the direct writer (a write is applied and answered inside cl_node_handle), the libuv
 * loop turned once per input so that signatures are written on their 20 ms cadence. The ledger
 * starts with an Administrator, a Contributor and a Reader; state carries over from one input to
 * the next (users, roles, collections, entries), and every RESET_EVERY inputs the ledger is
 * checked end to end (cl_ledger_check) and replaced by a fresh one.
 *
 * Input: byte 0 picks the caller (low 3 bits: Administrator, Contributor, Reader, an unknown
 * certificate, no certificate, an expired Administrator certificate) and the method (next 4
 * bits); byte 1 the content type and whether an x-ms-client-request-id header is sent; then the
 * request target up to the first '\n', an optional header line ("name: value\n", taken when the
 * line has a colon), and the body (the rest).
 *
 * Properties checked (abort on violation):
 *   - exactly one reply per request, with a status the API documents (never 5xx: the node is up
 *     and nothing fails underneath);
 *   - every JSON reply body parses; every error reply is {"error":{"code","message"}} with
 *     non-empty strings;
 *   - a 200 to POST /app/transactions carries x-ms-ccf-transaction-id;
 *   - the node still answers /node/ready after each input, and the ledger passes cl_ledger_check
 *     before each reset.
 *
 * CLEDGER_FUZZ_VERBOSE prints every request and its reply.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "base/log.h"
#include "fuzz.h"
#include "ledgerutil.h"
#include "node/node.h"
#include "nodeutil.h"
#include "testutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RESET_EVERY 2000

static struct {
    char dir[300];
    cl_ledger *l;
    cl_node *n;
    uv_loop_t loop;
    uint64_t reqid;
    unsigned inputs;
    int ready;
    int verbose; /* CLEDGER_FUZZ_VERBOSE: print every request and its reply */
} g;

/* The body is JSON unless the node labelled it otherwise (the HTTP layer sends an unlabelled
 * body as application/json). */
static int is_json(const nu_reply *r)
{
    const char *ct = nu_header(r, "content-type");
    return ct == NULL || strncmp(ct, "application/json", 16) == 0;
}

static nu_reply run(const nu_req *s) { return nu_run(g.n, s, ++g.reqid); }

/* CHECK with the request and the reply printed first. */
#define EXPECT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fprintf(stderr, "%s %s -> %d %.*s\n", s->method, s->target, r->status, (int)r->len,    \
                    r->body);                                                                      \
        CHECK(cond);                                                                               \
    } while (0)

static void check_reply(const nu_req *s, const nu_reply *r)
{
    static const int documented[] = {200, 201, 204, 400, 401, 403, 404,
                                     405, 409, 411, 413, 415, 501};
    CHECK(r->calls == 1);
    int known = 0;
    for (size_t i = 0; i < sizeof documented / sizeof documented[0]; i++)
        known |= r->status == documented[i];
    EXPECT(known);
    if (is_json(r) && r->len > 0) {
        json_t *j = json_loadb(r->body, r->len, 0, NULL);
        EXPECT(j != NULL);
        if (r->status >= 400) {
            json_t *e = json_object_get(j, "error");
            json_t *code = json_object_get(e, "code"), *msg = json_object_get(e, "message");
            EXPECT(json_is_string(code) && json_string_length(code) > 0);
            EXPECT(json_is_string(msg) && json_string_length(msg) > 0);
        }
        json_decref(j);
    }
    if (r->status >= 400 && strcmp(s->method, "HEAD") != 0)
        EXPECT(is_json(r) && r->len > 0);
    if (r->status == 200 && strcmp(s->method, "POST") == 0 &&
        strncmp(s->target, "/app/transactions", 17) == 0 &&
        (s->target[17] == '\0' || s->target[17] == '?'))
        EXPECT(nu_header(r, "x-ms-ccf-transaction-id") != NULL);
}

static nu_reply simple(const char *method, const char *target, const char *who, const char *body)
{
    nu_req s = {method, target, who, body ? "application/json" : NULL, body, 0, NULL, NULL, NULL,
                NULL,   0,      0};
    return run(&s);
}

static void boot_done(void *arg, int status, uint64_t term, uint64_t index, void *result)
{
    (void)term;
    (void)index;
    *(int *)arg = status;
    free(result);
}

static void add_user(char c, const char *role)
{
    char t[200], b[64];
    snprintf(t, sizeof t, "/app/users/%s?api-version=2022-05-13", tu_fp(c));
    snprintf(b, sizeof b, "{\"assignedRole\":\"%s\"}", role);
    nu_reply r = simple("PATCH", t, tu_fp('A'), b);
    CHECK(r.status == 200);
    free(r.body);
}

static void node_up(void)
{
    snprintf(g.dir, sizeof g.dir, "/tmp/cledger-fuzz-node-%d", (int)getpid());
    tu_rmrf(g.dir);
    CHECK(lu_create(g.dir, 0, 0, lu_fs_nosync(), &g.l) == CL_OK);
    cl_node_opts o;
    memset(&o, 0, sizeof o);
    o.ledger = g.l;
    o.writer = cl_node_direct_writer(&g.n);
    o.loop = &g.loop;
    o.ledger_id = "fuzzledger";
    CHECK(cl_node_new(&o, &g.n) == CL_OK);
    int st = 1;
    CHECK(cl_node_bootstrap_admin(g.n, tu_fp('A'), boot_done, &st) == CL_OK && st == CL_OK);
    CHECK(cl_node_start(g.n) == CL_OK);
    add_user('C', "Contributor");
    add_user('B', "Reader");
}

static void node_down(void)
{
    CHECK(cl_ledger_check(g.l) == CL_OK);
    cl_node_free(g.n);
    g.n = NULL;
    uv_run(&g.loop, UV_RUN_NOWAIT);
    CHECK(cl_ledger_close(g.l) == CL_OK);
    g.l = NULL;
    tu_rmrf(g.dir);
}

static void at_exit(void)
{
    if (g.ready)
        node_down();
}

static void setup(void)
{
    g.verbose = getenv("CLEDGER_FUZZ_VERBOSE") != NULL;
    cl_log_set_level(CL_LOG_OFF); /* the node logs refusals: keep the fuzzer's output readable */
    CHECK(uv_loop_init(&g.loop) == 0);
    node_up();
    g.ready = 1;
    atexit(at_exit);
}

/* Static strings, as http-parser's method names are. */
static const char *const methods[16] = {"GET",     "POST",  "PATCH", "PUT",    "DELETE", "HEAD",
                                        "OPTIONS", "GET",   "POST",  "GET",    "PATCH",  "PUT",
                                        "DELETE",  "TRACE", "GET",   "CONNECT"};
static const char *const ctypes[8] = {NULL,
                                      "application/json",
                                      "application/json; charset=utf-8",
                                      "text/plain",
                                      "application/merge-patch+json",
                                      "APPLICATION/JSON ;Charset=UTF-8",
                                      "",
                                      "application/json"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g.ready)
        setup();
    if (size < 2)
        return 0;
    if (++g.inputs % RESET_EVERY == 0) {
        node_down();
        node_up();
    }
    nu_req s;
    memset(&s, 0, sizeof s);
    static const char who[8] = {'A', 'C', 'B', 'E', 0, 'A', 'A', 'C'};
    unsigned caller = data[0] & 7;
    s.fp = who[caller] ? tu_fp(who[caller]) : NULL;
    if (caller == 5) { /* a certificate that expired long ago */
        s.not_before = 1000000000;
        s.not_after = 1000000001;
    }
    s.method = methods[(data[0] >> 3) & 15];
    s.ctype = ctypes[data[1] & 7];
    if (data[1] & 8) {
        s.hname2 = "x-ms-client-request-id";
        s.hvalue2 = "fuzz-request-1";
    }
    const uint8_t *p = data + 2, *end = data + size;

    /* The target: the HTTP layer hands over NUL-free text of at most its header limit. */
    const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
    size_t tlen = (size_t)((nl ? nl : end) - p);
    if (tlen == 0 || memchr(p, '\0', tlen) != NULL)
        return 0;
    char *target = strndup((const char *)p, tlen);
    CHECK(target != NULL);
    s.target = target;
    p = nl ? nl + 1 : end;

    /* An optional header line. */
    char *hline = NULL;
    nl = memchr(p, '\n', (size_t)(end - p));
    if (nl != NULL && memchr(p, ':', (size_t)(nl - p)) != NULL &&
        memchr(p, '\0', (size_t)(nl - p)) == NULL) {
        hline = strndup((const char *)p, (size_t)(nl - p));
        CHECK(hline != NULL);
        char *colon = strchr(hline, ':');
        *colon = '\0';
        for (char *c = hline; *c; c++)
            *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
        s.hname = hline;
        s.hvalue = colon + 1 + (colon[1] == ' ');
        p = nl + 1;
    }
    s.body = p < end ? (const char *)p : NULL; /* a body with NUL bytes: body_len says */
    s.body_len = (size_t)(end - p);

    nu_reply r = run(&s);
    if (g.verbose)
        fprintf(stderr, "%s %s -> %d %.*s\n", s.method, s.target, r.status, (int)r.len, r.body);
    check_reply(&s, &r);
    free(r.body);
    free(hline);
    free(target);

    uv_run(&g.loop, UV_RUN_NOWAIT); /* signatures */
    nu_reply ready = simple("GET", "/node/ready", NULL, NULL);
    CHECK(ready.calls == 1 && ready.status == 200);
    free(ready.body);
    return 0;
}
