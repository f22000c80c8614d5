/*
 * test_node.c — the data-plane service (src/node) end to end below HTTP: a real ledger in a temp
 * directory, a node with the direct writer, a libuv loop for the signature timer, hand-built
 * cl_http_request structs and captured replies. Covers the write/read/status/receipt flow with
 * receipt verification, paging with nextLink round trips, collections, every reachable error code
 * of spec §5.2, the role × route matrix, both user APIs, restart, and 1,000+ hostile inputs that
 * must each get the right 4xx and write nothing. Also the command codec, the URL helpers and the
 * state machine's refusal of malformed commands.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "base/json.h"
#include "ledger/claims.h"
#include "ledger/entry.h"
#include "ledger/ledger.h"
#include "ledger/receipt.h"
#include "ledgerutil.h"
#include "node/command.h"
#include "node/node.h"
#include "node/roles.h"
#include "node/url.h"
#include "node/users.h"
#include "nodeutil.h"
#include "storage/fs.h"
#include "testutil.h"

/* ---- fixture ------------------------------------------------------------------------------- */

#define FP_ADMIN 'A'
#define FP_CONTRIB 'C'
#define FP_READER 'B'
#define FP_UNKNOWN 'E'

typedef nu_reply reply_t;

typedef struct {
    char dir[4096];
    cl_ledger *l;
    cl_node *n;
    uv_loop_t loop;
    cl_node_opts o;
    uint64_t next_reqid;
} env_t;

typedef struct {
    const char *method, *target, *fp, *ctype, *body;
    size_t body_len; /* 0: strlen(body) */
    const char *hname, *hvalue;
} req_spec;

/* The validity period run_spec gives a request's certificate; both 0: always valid. */
static int64_t g_not_before, g_not_after;

/* Builds a cl_http_request like the HTTP layer does and hands it to the node. */
static reply_t run_spec(env_t *e, const req_spec *s)
{
    nu_req t = {s->method, s->target, s->fp, s->ctype, s->body,      s->body_len,
                s->hname,  s->hvalue, NULL,  NULL,     g_not_before, g_not_after};
    reply_t r = nu_run(e->n, &t, ++e->next_reqid);
    assert_int_equal(r.calls, 1);
    return r;
}

static reply_t rq(env_t *e, const char *method, const char *target, const char *who,
                  const char *body)
{
    req_spec s = {method, target, who, body ? "application/json" : NULL, body, 0, NULL, NULL};
    return run_spec(e, &s);
}

/* Error code of an error body ("" when none). */
static const char *err_code(const reply_t *r)
{
    static char code[64];
    code[0] = 0;
    json_t *j = json_loads(r->body, 0, NULL);
    json_t *c = json_object_get(json_object_get(j, "error"), "code");
    if (json_is_string(c))
        snprintf(code, sizeof code, "%s", json_string_value(c));
    json_decref(j);
    return code;
}

#define EXPECT(r, st, code)                                                                        \
    do {                                                                                           \
        if ((r).status != (st) || strcmp(err_code(&(r)), (code)) != 0)                             \
            fail_msg("line %d: got %d %s, want %d %s", __LINE__, (r).status, (r).body, (st),       \
                     (code));                                                                      \
    } while (0)

static uv_loop_t *g_loop;

static void admin_done(void *arg, int status, uint64_t term, uint64_t index, void *result)
{
    *(int *)arg = status;
    free(result);
}

static void env_open_node(env_t *e)
{
    e->o.ledger = e->l;
    e->o.writer = cl_node_direct_writer(&e->n);
    e->o.loop = &e->loop;
    e->o.ledger_id = "testledger";
    assert_int_equal(cl_node_new(&e->o, &e->n), CL_OK);
    int st = 1;
    assert_int_equal(cl_node_bootstrap_admin(e->n, tu_fp(FP_ADMIN), admin_done, &st), CL_OK);
    assert_int_equal(st, CL_OK);
    assert_int_equal(cl_node_start(e->n), CL_OK);
}

static env_t *env_new_opts(const cl_node_opts *extra)
{
    env_t *e = calloc(1, sizeof *e);
    assert_non_null(e);
    snprintf(e->dir, sizeof e->dir, "%s/l", tu_tempdir("node"));
    assert_int_equal(lu_create(e->dir, 0, 0, lu_fs_nosync(), &e->l), CL_OK);
    assert_int_equal(uv_loop_init(&e->loop), 0);
    g_loop = &e->loop;
    if (extra)
        e->o = *extra;
    /* A page's main-loop time budget (2 ms) cuts pages by the clock: under ASan on a busy box
     * the first entry alone can take that long. Tests that are not about the budget get 10 s,
     * so their pages are cut only by window and size. */
    if (e->o.list_budget_us == 0)
        e->o.list_budget_us = 10u * 1000u * 1000u;
    env_open_node(e);
    return e;
}

static env_t *env_new(void) { return env_new_opts(NULL); }

/* A node that signs only when told (cl_node_submit_signature): entries stay uncommitted. */
static env_t *env_new_unsigned(void)
{
    cl_node_opts o = {0};
    o.sig_interval_ms = 1000000;
    o.sig_max_entries = 1000000;
    return env_new_opts(&o);
}

static void env_close_node(env_t *e)
{
    cl_node_free(e->n);
    e->n = NULL;
    uv_run(&e->loop, UV_RUN_NOWAIT);
}

static void env_free(env_t *e)
{
    env_close_node(e);
    assert_int_equal(cl_ledger_close(e->l), CL_OK);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    tu_rmrf(e->dir);
    free(e);
}

/* Lets the signature timer fire (20 ms cadence). */
static void on_stop(uv_timer_t *t) { uv_stop(t->loop); }
static void run_loop_ms(env_t *e, unsigned ms)
{
    uv_timer_t t;
    uv_timer_init(&e->loop, &t);
    uv_timer_start(&t, on_stop, ms, 0);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&e->loop, UV_RUN_NOWAIT);
}

static void add_user(env_t *e, char c, const char *role)
{
    char t[200], b[100];
    snprintf(t, sizeof t, "/app/users/%s?api-version=2022-05-13", tu_fp(c));
    snprintf(b, sizeof b, "{\"assignedRole\":\"%s\"}", role);
    reply_t r = rq(e, "PATCH", t, tu_fp(FP_ADMIN), b);
    if (r.status != 200)
        fail_msg("PATCH %s: %d %s", t, r.status, r.body);
    nu_reply_free(&r);
}

/* POST an entry; returns the transaction id (static buffer). */
static const char *post(env_t *e, const char *coll_q, const char *contents)
{
    static char txid[64];
    char t[2048];
    snprintf(t, sizeof t, "/app/transactions?api-version=2022-05-13%s%s", coll_q ? "&" : "",
             coll_q ? coll_q : "");
    json_t *b = json_pack("{s:s}", "contents", contents);
    char *bs = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    reply_t r = rq(e, "POST", t, tu_fp(FP_ADMIN), bs);
    free(bs);
    if (r.status != 200)
        fail_msg("POST %s: %d %s", t, r.status, r.body);
    assert_non_null(nu_header(&r, "x-ms-ccf-transaction-id"));
    snprintf(txid, sizeof txid, "%s", nu_header(&r, "x-ms-ccf-transaction-id"));
    nu_reply_free(&r);
    return txid;
}

static json_t *body_json(const reply_t *r)
{
    json_t *j = json_loads(r->body, 0, NULL);
    if (j == NULL)
        fail_msg("not JSON: %s", r->body);
    return j;
}

static const char *jstr(json_t *j, const char *k)
{
    json_t *v = json_object_get(j, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static uint64_t txid_seqno(const char *txid)
{
    uint64_t v, s;
    assert_int_equal(cl_txid_parse(txid, strlen(txid), &v, &s), CL_OK);
    return s;
}

/* ---- write → read → status → receipt ------------------------------------------------------- */

static void test_write_read_receipt(void **state)
{
    env_t *e = env_new();
    req_spec s = {"POST",
                  "/app/transactions?api-version=2022-05-13",
                  tu_fp(FP_ADMIN),
                  "application/json; charset=UTF-8",
                  "{\"contents\":\"hello ledger\",\"collectionId\":\"ignored\"}",
                  0,
                  "x-ms-client-request-id",
                  "req-123"};
    reply_t r = run_spec(e, &s);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"collectionId\":\"subledger:0\"}");
    assert_string_equal(nu_header(&r, "x-ms-client-request-id"), "req-123");
    assert_non_null(nu_header(&r, "x-ms-request-id"));
    char txid[64], url[256];
    snprintf(txid, sizeof txid, "%s", nu_header(&r, "x-ms-ccf-transaction-id"));
    assert_true(strncmp(txid, "2.", 2) == 0);
    nu_reply_free(&r);

    /* Not yet signed: Pending / Loading. */
    snprintf(url, sizeof url, "/app/transactions/%s/status?api-version=2022-05-13", txid);
    r = rq(e, "GET", url, tu_fp(FP_ADMIN), NULL);
    assert_int_equal(r.status, 200);
    char want[200];
    snprintf(want, sizeof want, "{\"state\":\"Pending\",\"transactionId\":\"%s\"}", txid);
    assert_string_equal(r.body, want);
    assert_non_null(nu_header(&r, "x-ms-ccf-transaction-id"));
    nu_reply_free(&r);
    snprintf(url, sizeof url, "/app/transactions/%s?api-version=2022-05-13", txid);
    r = rq(e, "GET", url, tu_fp(FP_ADMIN), NULL);
    assert_string_equal(r.body, "{\"state\":\"Loading\"}");
    nu_reply_free(&r);
    snprintf(url, sizeof url, "/app/transactions/%s/receipt?api-version=2022-05-13", txid);
    r = rq(e, "GET", url, tu_fp(FP_ADMIN), NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"receipt\":null,\"state\":\"Loading\",\"transactionId\":\"\"}");
    nu_reply_free(&r);

    /* /current sees the write before it commits, transactionId = read point. */
    r = rq(e, "GET", "/app/transactions/current?api-version=2022-05-13", tu_fp(FP_ADMIN), NULL);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_string_equal(jstr(j, "contents"), "hello ledger");
    assert_string_equal(jstr(j, "collectionId"), "subledger:0");
    assert_string_equal(jstr(j, "transactionId"), nu_header(&r, "x-ms-ccf-transaction-id"));
    json_decref(j);
    nu_reply_free(&r);

    /* The signature timer commits it. */
    run_loop_ms(e, 60);
    assert_true(cl_ledger_signed_seqno(e->l) > txid_seqno(txid));
    snprintf(url, sizeof url, "/app/transactions/%s/status", txid); /* no api-version */
    r = rq(e, "GET", url, tu_fp(FP_ADMIN), NULL);
    snprintf(want, sizeof want, "{\"state\":\"Committed\",\"transactionId\":\"%s\"}", txid);
    assert_string_equal(r.body, want);
    nu_reply_free(&r);
    snprintf(url, sizeof url, "/app/transactions/%s?api-version=2022-05-13", txid);
    r = rq(e, "GET", url, tu_fp(FP_ADMIN), NULL);
    snprintf(want, sizeof want,
             "{\"entry\":{\"collectionId\":\"subledger:0\",\"contents\":\"hello ledger\","
             "\"transactionId\":\"%s\"},\"state\":\"Ready\"}",
             txid);
    assert_string_equal(r.body, want);
    nu_reply_free(&r);
    /* Same id, another collection: 404 ResourceNotFound. */
    snprintf(url, sizeof url, "/app/transactions/%s?collectionId=other", txid);
    r = rq(e, "GET", url, tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 404, "ResourceNotFound");
    nu_reply_free(&r);

    /* Receipt, GA version: no applicationClaims; verifies against the service cert. */
    const char *svc = cl_ledger_service_cert_pem(e->l);
    for (int v = 0; v < 2; v++) {
        snprintf(url, sizeof url, "/app/transactions/%s/receipt?api-version=%s", txid,
                 v ? "2023-01-18-preview" : "2022-05-13");
        r = rq(e, "GET", url, tu_fp(FP_READER == 0 ? FP_ADMIN : FP_ADMIN), NULL);
        assert_int_equal(r.status, 200);
        j = body_json(&r);
        assert_string_equal(jstr(j, "state"), "Ready");
        assert_string_equal(jstr(j, "transactionId"), txid);
        json_t *claims_in = json_object_get(j, "applicationClaims");
        assert_true(v ? claims_in != NULL : claims_in == NULL);
        cl_receipt rec;
        cl_receipt_init(&rec);
        json_t *claims = NULL;
        char err[256];
        assert_int_equal(cl_receipt_parse(r.body, r.len, &rec, &claims, err, sizeof err), CL_OK);
        cl_receipt_verdict vd;
        int vrc = cl_receipt_verify_pem(&rec, svc, strlen(svc), claims, &vd);
        if (vrc != CL_OK)
            fail_msg("receipt: %s", vd.message);
        if (v) {
            /* The claims are the entry's, and tampering with them fails verification. */
            json_t *le = json_object_get(json_array_get(claims, 0), "ledgerEntry");
            assert_string_equal(jstr(le, "contents"), "hello ledger");
            assert_string_equal(jstr(le, "collectionId"), "subledger:0");
            json_object_set_new(le, "contents", json_string("tampered"));
            assert_int_not_equal(cl_receipt_verify_pem(&rec, svc, strlen(svc), claims, &vd), CL_OK);
        }
        json_decref(claims);
        cl_receipt_clear(&rec);
        json_decref(j);
        nu_reply_free(&r);
    }

    /* Signature transactions have no receipt. */
    char sig[64];
    snprintf(sig, sizeof sig, "2.%llu", (unsigned long long)cl_ledger_signed_seqno(e->l));
    snprintf(url, sizeof url, "/app/transactions/%s/receipt", sig);
    r = rq(e, "GET", url, tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 404, "ResourceNotFound");
    assert_null(nu_header(&r, "x-ms-ccf-transaction-id"));
    nu_reply_free(&r);
    /* Receipts of user changes are served (the bootstrap admin write at seqno 5). */
    r = rq(e, "GET", "/app/transactions/2.5/receipt", tu_fp(FP_ADMIN), NULL);
    assert_int_equal(r.status, 200);
    nu_reply_free(&r);
    /* Ids: unknown / invalid / malformed. */
    r = rq(e, "GET", "/app/transactions/2.999999/status", tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 404, "TransactionNotFound");
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/transactions/3.1/status", tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 404, "InvalidTransactionId");
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/transactions/1.999999/receipt", tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 404, "InvalidTransactionId");
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/transactions/02.1", tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 400, "InvalidTransactionId");
    nu_reply_free(&r);
    /* Internal entry (seqno 1): not an entry of any collection. */
    r = rq(e, "GET", "/app/transactions/2.1", tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 404, "ResourceNotFound");
    nu_reply_free(&r);
    /* Enough writes trigger a signature without the timer (sig_max_entries). */
    env_free(e);
}

static void test_sig_max_entries(void **state)
{
    cl_node_opts o = {0};
    o.sig_interval_ms = 100000;
    o.sig_max_entries = 5;
    env_t *e = env_new_opts(&o);
    uint64_t before = cl_ledger_signed_seqno(e->l);
    for (int i = 0; i < 4; i++)
        post(e, NULL, "x");
    assert_int_equal(cl_ledger_signed_seqno(e->l), before);
    const char *t = post(e, NULL, "x");
    assert_int_equal(cl_ledger_signed_seqno(e->l), txid_seqno(t) + 1);
    /* Nothing new: an explicit signature request does nothing. */
    uint64_t last = cl_ledger_last_seqno(e->l);
    assert_int_equal(cl_node_submit_signature(e->n), CL_OK);
    assert_int_equal(cl_ledger_last_seqno(e->l), last);
    post(e, NULL, "y");
    assert_int_equal(cl_node_submit_signature(e->n), CL_OK);
    assert_int_equal(cl_ledger_signed_seqno(e->l), last + 2);
    env_free(e);
}

/* ---- paging -------------------------------------------------------------------------------- */

/* Follows nextLink from `first`; js: append api-version again (npm 1.0.0) else replace it. */
static size_t list_all(env_t *e, const char *first, int js, char (*contents)[32], size_t cap,
                       int *pages)
{
    char url[4096];
    snprintf(url, sizeof url, "%s", first);
    size_t n = 0;
    *pages = 0;
    for (;;) {
        reply_t r = rq(e, "GET", url, tu_fp(FP_READER), NULL);
        if (r.status != 200)
            fail_msg("GET %s: %d %s", url, r.status, r.body);
        (*pages)++;
        json_t *j = body_json(&r);
        assert_string_equal(jstr(j, "state"), "Ready");
        json_t *arr = json_object_get(j, "entries");
        assert_true(json_is_array(arr));
        uint64_t lo = UINT64_MAX, hi = 0;
        size_t i;
        json_t *v;
        json_array_foreach(arr, i, v)
        {
            assert_true(n < cap);
            snprintf(contents[n++], 32, "%s", jstr(v, "contents"));
            uint64_t s = txid_seqno(jstr(v, "transactionId"));
            lo = s < lo ? s : lo;
            hi = s > hi ? s : hi;
        }
        if (json_array_size(arr) > 0)
            assert_true(hi - lo < 1000); /* one window */
        const char *next = jstr(j, "nextLink");
        if (next == NULL) {
            assert_null(json_object_get(j, "nextLink"));
            json_decref(j);
            nu_reply_free(&r);
            break;
        }
        assert_true(next[0] == '/');
        assert_non_null(strstr(next, "api-version="));
        if (js)
            snprintf(url, sizeof url, "%s&api-version=2022-05-13", next);
        else
            snprintf(url, sizeof url, "%s", next);
        json_decref(j);
        nu_reply_free(&r);
        assert_true(*pages < 100);
    }
    return n;
}

/* A range whose upper bound is written but not yet committed is not reported complete: the page
 * carries a nextLink, which lists the entries once a signature has committed them. */
static void test_range_past_commit(void **state)
{
    (void)state;
    env_t *e = env_new_unsigned();
    char a[64], b[64], t[512];
    post(e, "collectionId=ot", "old");
    assert_int_equal(cl_node_submit_signature(e->n), CL_OK);
    snprintf(a, sizeof a, "%s", post(e, "collectionId=rg", "first"));
    snprintf(b, sizeof b, "%s", post(e, "collectionId=rg", "second"));
    /* Collections with no entry past the commit point are complete: no nextLink (§8.3 for the
     * unknown one). */
    const char *done[2] = {"ot", "never"};
    for (int i = 0; i < 2; i++) {
        snprintf(t, sizeof t,
                 "/app/transactions?api-version=2022-05-13&collectionId=%s&toTransactionId=%s",
                 done[i], b);
        reply_t d = rq(e, "GET", t, tu_fp(FP_ADMIN), NULL);
        assert_int_equal(d.status, 200);
        json_t *dj = body_json(&d);
        assert_int_equal(json_array_size(json_object_get(dj, "entries")), i == 0 ? 1 : 0);
        assert_null(json_object_get(dj, "nextLink"));
        assert_string_equal(jstr(dj, "state"), "Ready");
        json_decref(dj);
        nu_reply_free(&d);
    }
    snprintf(t, sizeof t,
             "/app/transactions?api-version=2022-05-13&collectionId=rg&fromTransactionId=%s"
             "&toTransactionId=%s",
             a, b);
    reply_t r = rq(e, "GET", t, tu_fp(FP_ADMIN), NULL);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "entries")), 0);
    const char *link = json_string_value(json_object_get(j, "nextLink"));
    assert_non_null(link);
    char next[512];
    snprintf(next, sizeof next, "%s", link);
    json_decref(j);
    nu_reply_free(&r);
    assert_int_equal(cl_node_submit_signature(e->n), CL_OK);
    r = rq(e, "GET", next, tu_fp(FP_ADMIN), NULL);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    json_t *en = json_object_get(j, "entries");
    assert_int_equal(json_array_size(en), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(en, 0), "contents")),
                        "first");
    assert_string_equal(json_string_value(json_object_get(json_array_get(en, 1), "contents")),
                        "second");
    assert_null(json_object_get(j, "nextLink"));
    json_decref(j);
    nu_reply_free(&r);
    /* a bound past the last written entry is still cut at the commit point: paging ends */
    snprintf(t, sizeof t,
             "/app/transactions?api-version=2022-05-13&collectionId=rg&fromTransactionId=%s"
             "&toTransactionId=2.999999",
             a);
    r = rq(e, "GET", t, tu_fp(FP_ADMIN), NULL);
    j = body_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "entries")), 2);
    assert_null(json_object_get(j, "nextLink"));
    json_decref(j);
    nu_reply_free(&r);
    env_free(e);
}

static void test_paging(void **state)
{
    env_t *e = env_new_unsigned();
    add_user(e, FP_READER, "Reader");
    char c[32];
    /* 2,500 seqnos: entries of "pg:1" interleaved with another collection. */
    int want = 0;
    for (int i = 0; i < 2500; i++) {
        snprintf(c, sizeof c, "e%d", i);
        if (i % 5 == 4) {
            post(e, "collectionId=other", c);
        } else {
            post(e, "collectionId=pg%3A1", c);
            want++;
        }
    }
    /* Not yet committed: nothing listed. */
    char(*got)[32] = calloc(4000, 32);
    int pages;
    size_t n = list_all(e, "/app/transactions?api-version=2022-05-13&collectionId=pg:1", 1, got,
                        4000, &pages);
    assert_int_equal(n, 0);
    assert_int_equal(cl_node_submit_signature(e->n), CL_OK);
    for (int js = 0; js < 2; js++) {
        n = list_all(e, "/app/transactions?api-version=2022-05-13&collectionId=pg%3A1", js, got,
                     4000, &pages);
        assert_int_equal(n, (size_t)want);
        assert_true(pages >= 3);
        for (int i = 0, k = 0; i < 2500; i++) {
            if (i % 5 == 4)
                continue;
            snprintf(c, sizeof c, "e%d", i);
            assert_string_equal(got[k++], c);
        }
    }
    /* The upper bound is pinned by the first page: later writes are not listed. */
    reply_t r = rq(e, "GET", "/app/transactions?collectionId=pg%3A1", tu_fp(FP_READER), NULL);
    json_t *j = body_json(&r);
    char next[1024];
    const char *nl = jstr(j, "nextLink");
    assert_non_null(nl);
    snprintf(next, sizeof next, "%s", nl);
    assert_non_null(strstr(next, "toTransactionId="));
    assert_non_null(strstr(next, "collectionId=pg%3A1"));
    assert_non_null(strstr(next, "api-version=2022-05-13")); /* default when absent */
    json_decref(j);
    nu_reply_free(&r);
    post(e, "collectionId=pg%3A1", "late");
    assert_int_equal(cl_node_submit_signature(e->n), CL_OK);
    int p2;
    n = list_all(e, next, 1, got, 4000, &p2);
    size_t first_page = 0;
    (void)first_page;
    for (size_t i = 0; i < n; i++)
        assert_string_not_equal(got[i], "late");
    /* Range, explicit to, from > to, bad ids, unknown collection. */
    r = rq(e, "GET",
           "/app/transactions?collectionId=pg%3A1&fromTransactionId=2.20&toTransactionId=2.30",
           tu_fp(FP_READER), NULL);
    j = body_json(&r);
    assert_null(json_object_get(j, "nextLink"));
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(j, "entries"), i, v)
    {
        uint64_t s = txid_seqno(jstr(v, "transactionId"));
        assert_true(s >= 20 && s <= 30);
    }
    json_decref(j);
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/transactions?fromTransactionId=2.30&toTransactionId=2.20",
           tu_fp(FP_READER), NULL);
    EXPECT(r, 400, "InvalidTransactionId");
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/transactions?fromTransactionId=x", tu_fp(FP_READER), NULL);
    EXPECT(r, 400, "InvalidTransactionId");
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/transactions?collectionId=nope", tu_fp(FP_READER), NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"entries\":[],\"state\":\"Ready\"}");
    nu_reply_free(&r);
    /* /current of a collection and of an empty one. */
    r = rq(e, "GET", "/app/transactions/current?collectionId=pg%3A1", tu_fp(FP_READER), NULL);
    j = body_json(&r);
    assert_string_equal(jstr(j, "contents"), "late");
    json_decref(j);
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/transactions/current?collectionId=empty", tu_fp(FP_READER), NULL);
    EXPECT(r, 404, "ResourceNotFound");
    nu_reply_free(&r);
    free(got);
    env_free(e);
}

/* Pages are written directly, not through jansson: each must be exactly the bytes cl_json_dump
 * gives for its own parsed value (escapes of quotes, backslashes, control characters and
 * non-ASCII text included), stay under 1 MiB, and together list every entry once, in order.
 * 8,000-byte contents make the size cut the limit (about 130 entries a page, not the window's
 * 1,000). */
static void test_paging_big_pages(void **state)
{
    env_t *e = env_new_unsigned();
    add_user(e, FP_READER, "Reader");
    char *big = malloc(8001);
    assert_non_null(big);
    static const char pat[] = "a\"b\\c\n\t\x01/\xc3\xa9\xe2\x82\xac z";
    for (size_t i = 0; i < 8000;) {
        size_t k = sizeof pat - 1 < 8000 - i ? sizeof pat - 1 : 8000 - i;
        if (k < sizeof pat - 1) { /* pad the tail with ASCII: no split character */
            memset(big + i, 'p', k);
        } else {
            memcpy(big + i, pat, k);
        }
        i += k;
    }
    big[8000] = '\0';
    for (int i = 0; i < 300; i++) {
        memcpy(big, &"0123456789"[i % 10], 1);
        post(e, "collectionId=big", big);
    }
    assert_int_equal(cl_node_submit_signature(e->n), CL_OK);
    char url[4096] = "/app/transactions?api-version=2022-05-13&collectionId=big";
    int pages = 0, seen = 0;
    uint64_t last = 0;
    for (;;) {
        reply_t r = rq(e, "GET", url, tu_fp(FP_READER), NULL);
        assert_int_equal(r.status, 200);
        assert_true(strlen(r.body) <= (1u << 20));
        json_t *j = body_json(&r);
        char *again = cl_json_dump(j);
        assert_non_null(again);
        assert_string_equal(again, r.body);
        cl_free(again);
        pages++;
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(j, "entries"), i, v)
        {
            uint64_t s = txid_seqno(jstr(v, "transactionId"));
            assert_true(s > last);
            last = s;
            const char *c = jstr(v, "contents");
            assert_int_equal(strlen(c), 8000);
            assert_int_equal(c[0], "0123456789"[seen % 10]);
            assert_memory_equal(c + 1, big + 1, 7999);
            seen++;
        }
        const char *next = jstr(j, "nextLink");
        if (next == NULL) {
            json_decref(j);
            nu_reply_free(&r);
            break;
        }
        snprintf(url, sizeof url, "%s", next);
        json_decref(j);
        nu_reply_free(&r);
    }
    assert_int_equal(seen, 300);
    assert_true(pages >= 3);
    free(big);
    env_free(e);
}

/* A page also ends when its time on the main loop is spent, whatever its size: with a budget of
 * 1 µs a page holds an entry or a few (without it, one page holds all 40), and the listing is
 * still complete and in order. */
static void test_paging_time_budget(void **state)
{
    cl_node_opts o = {0};
    o.sig_interval_ms = 1000000;
    o.sig_max_entries = 1000000;
    o.list_budget_us = 1;
    env_t *e = env_new_opts(&o);
    add_user(e, FP_READER, "Reader");
    char c[32];
    for (int i = 0; i < 40; i++) {
        snprintf(c, sizeof c, "e%d", i);
        post(e, "collectionId=t", c);
    }
    assert_int_equal(cl_node_submit_signature(e->n), CL_OK);
    char(*got)[32] = calloc(64, 32);
    int pages;
    size_t n =
        list_all(e, "/app/transactions?api-version=2022-05-13&collectionId=t", 0, got, 64, &pages);
    assert_int_equal(n, 40);
    assert_true(pages >= 5);
    for (int i = 0; i < 40; i++) {
        snprintf(c, sizeof c, "e%d", i);
        assert_string_equal(got[i], c);
    }
    free(got);
    env_free(e);
}

static size_t g_backlog; /* what the HTTP layer reports queued for slow readers */
static size_t backlog_stub(void *arg)
{
    (void)arg;
    return g_backlog;
}

/* Past the cap on reply bytes waiting for slow readers, list pages get 503 + Retry-After (the
 * SDKs retry it) while every other route serves; below it, pages are served again. */
static void test_paging_backlog_cap(void **state)
{
    (void)state;
    cl_node_opts o = {0};
    o.reply_backlog = backlog_stub;
    o.list_backlog_max = 1000;
    env_t *e = env_new_opts(&o);
    post(e, "collectionId=t", "x");
    assert_int_equal(cl_node_submit_signature(e->n), CL_OK);
    static const char list[] = "/app/transactions?api-version=2022-05-13&collectionId=t";
    g_backlog = 1000;
    reply_t r = rq(e, "GET", list, tu_fp(FP_ADMIN), NULL);
    assert_int_equal(r.status, 200);
    nu_reply_free(&r);
    g_backlog = 1001;
    r = rq(e, "GET", list, tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 503, "ServiceUnavailable");
    assert_string_equal(nu_header(&r, "Retry-After"), "1");
    nu_reply_free(&r);
    r = rq(e, "GET", list, NULL, NULL); /* identity first */
    EXPECT(r, 401, "InvalidAuthenticationInfo");
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/transactions/current?collectionId=t", tu_fp(FP_ADMIN), NULL);
    assert_int_equal(r.status, 200);
    nu_reply_free(&r);
    /* every route whose reply grows with the ledger: collections (the preview version answers
     * all of them at once) and the user lists */
    static const char *const big[] = {"/app/collections?api-version=2022-05-13",
                                      "/app/collections?api-version=2022-04-20-preview",
                                      "/app/users?api-version=2022-05-13",
                                      "/app/ledgerUsers?api-version=2024-08-22-preview"};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
        g_backlog = 1001;
        r = rq(e, "GET", big[i], tu_fp(FP_ADMIN), NULL);
        if (r.status != 503)
            fail_msg("%s: %d %s", big[i], r.status, r.body);
        nu_reply_free(&r);
        g_backlog = 0;
        r = rq(e, "GET", big[i], tu_fp(FP_ADMIN), NULL);
        if (r.status != 200)
            fail_msg("%s: %d %s", big[i], r.status, r.body);
        nu_reply_free(&r);
    }
    g_backlog = 0;
    r = rq(e, "GET", list, tu_fp(FP_ADMIN), NULL);
    assert_int_equal(r.status, 200);
    nu_reply_free(&r);
    env_free(e);
}

/* ---- collections --------------------------------------------------------------------------- */

static void test_collections(void **state)
{
    env_t *e = env_new();
    post(e, "collectionId=b%20c", "1");
    post(e, NULL, "2");
    post(e, "collectionId=a+b", "3"); /* '+' is a space: "a b" */
    post(e, "collectionId=%E2%82%AC", "4");
    reply_t r = rq(e, "GET", "/app/collections?api-version=2022-05-13", tu_fp(FP_ADMIN), NULL);
    assert_string_equal(r.body, "{\"collections\":[]}"); /* none committed yet */
    nu_reply_free(&r);
    assert_int_equal(cl_node_submit_signature(e->n), CL_OK);
    r = rq(e, "GET", "/app/collections?api-version=2022-05-13", tu_fp(FP_ADMIN), NULL);
    assert_string_equal(r.body, "{\"collections\":[{\"collectionId\":\"b c\"},{\"collectionId\":"
                                "\"subledger:0\"},{\"collectionId\":\"a b\"},{\"collectionId\":"
                                "\"\xE2\x82\xAC\"}]}");
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/collections?api-version=2022-04-20-preview", tu_fp(FP_ADMIN), NULL);
    assert_string_equal(r.body, "[{\"id\":\"b c\"},{\"id\":\"subledger:0\"},{\"id\":\"a b\"},"
                                "{\"id\":\"\xE2\x82\xAC\"}]");
    nu_reply_free(&r);
    /* A node opened on the ledger lists them in the same order (first entry, not byte order),
     * a collection whose first entry is not committed yet still not at all, and a page after a
     * collection starts past it; after an unknown collection (or an internal name) the listing
     * starts over. */
    post(e, "collectionId=0", "5");
    env_close_node(e);
    env_open_node(e);
    post(e, "collectionId=00", "6");
    const char *four = "{\"collections\":[{\"collectionId\":\"b c\"},{\"collectionId\":"
                       "\"subledger:0\"},{\"collectionId\":\"a b\"},{\"collectionId\":"
                       "\"\xE2\x82\xAC\"}";
    char all4[512], all6[512];
    snprintf(all4, sizeof all4, "%s]}", four);
    snprintf(all6, sizeof all6, "%s,{\"collectionId\":\"0\"},{\"collectionId\":\"00\"}]}", four);
    static const char *const qs[] = {"", "&after=nope", "&afterHex=01", "&after=a+b"};
    for (int signed_ = 0; signed_ < 2; signed_++) {
        for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
            char u[128];
            snprintf(u, sizeof u, "/app/collections?api-version=2022-05-13%s", qs[i]);
            r = rq(e, "GET", u, tu_fp(FP_ADMIN), NULL);
            const char *w = i < 3     ? (signed_ ? all6 : all4)
                            : signed_ ? "{\"collections\":[{\"collectionId\":\"\xE2\x82\xAC\"},{"
                                        "\"collectionId\":\"0\"},{\"collectionId\":\"00\"}]}"
                                      : "{\"collections\":[{\"collectionId\":\"\xE2\x82\xAC\"}]}";
            if (r.status != 200 || strcmp(r.body, w) != 0)
                fail_msg("%s: %d %s", u, r.status, r.body);
            nu_reply_free(&r);
        }
        assert_int_equal(cl_node_submit_signature(e->n), CL_OK);
    }
    /* Opening a node on the ledger when an allocation fails anywhere (the collections' list
     * among them): CL_ENOMEM, nothing leaked, and the ledger opens a node after. */
    env_close_node(e);
    for (int k = 0;; k++) {
        cl_alloc_fail_after(k);
        int rc = cl_node_new(&e->o, &e->n);
        cl_alloc_fail_after(-1);
        if (rc == CL_OK)
            break;
        assert_int_equal(rc, CL_ENOMEM);
        assert_null(e->n);
        assert_true(k < 100000);
    }
    env_close_node(e);
    env_open_node(e);
    r = rq(e, "GET", "/app/collections?api-version=2022-05-13", tu_fp(FP_ADMIN), NULL);
    assert_string_equal(r.body, all6);
    nu_reply_free(&r);
    /* More than one page (1,000 per page), followed through nextLink. */
    char q[64], url[2048];
    for (int i = 0; i < 1001; i++) {
        snprintf(q, sizeof q, "collectionId=c%04d", i);
        post(e, q, "x");
    }
    assert_int_equal(cl_node_submit_signature(e->n), CL_OK);
    snprintf(url, sizeof url, "/app/collections?api-version=2022-05-13");
    size_t total = 0;
    int pages = 0;
    for (;;) {
        r = rq(e, "GET", url, tu_fp(FP_ADMIN), NULL);
        assert_int_equal(r.status, 200);
        json_t *j = body_json(&r);
        total += json_array_size(json_object_get(j, "collections"));
        pages++;
        const char *next = jstr(j, "nextLink");
        if (next)
            snprintf(url, sizeof url, "%s&api-version=2022-05-13", next);
        json_decref(j);
        nu_reply_free(&r);
        if (!next)
            break;
    }
    assert_int_equal(total, 1007);
    assert_int_equal(pages, 2);
    env_free(e);
}

/* Collection ids with '+', '&', '#' or '%': the Python SDK follows a nextLink by decoding its
 * query and sending the values raw, so such an id goes into the link as collectionIdHex (afterHex)
 * alone, which every client gives back as it was. */
static void test_paging_hex_ids(void **state)
{
    (void)state;
    env_t *e = env_new_unsigned();
    add_user(e, FP_READER, "Reader");
    /* "a+b &#%41" in collection "a+b &#%41": two entries 1,100 seqnos apart */
    const char *odd_q = "collectionId=a%2Bb%20%26%23%2541", *odd_hex = "612b62202623253431";
    post(e, odd_q, "first");
    char q[64];
    for (int i = 0; i < 1100; i++) {
        snprintf(q, sizeof q, "collectionId=f%%2B%04d", i); /* "f+0000".. : new collections */
        post(e, q, "x");
    }
    post(e, odd_q, "last");
    assert_int_equal(cl_node_submit_signature(e->n), CL_OK);
    char url[2048];
    snprintf(url, sizeof url, "/app/transactions?api-version=2022-05-13&%s", odd_q);
    reply_t r = rq(e, "GET", url, tu_fp(FP_READER), NULL);
    json_t *j = body_json(&r);
    const char *nl = jstr(j, "nextLink");
    assert_non_null(nl);
    char want[128];
    snprintf(want, sizeof want, "&collectionIdHex=%s&", odd_hex);
    if (strstr(nl, want) == NULL || strstr(nl, "collectionId=") != NULL)
        fail_msg("nextLink %s: wanted collectionIdHex only", nl);
    json_decref(j);
    nu_reply_free(&r);
    /* an unknown api-version: the link names the effective one, the newest (§3.2 rule 5) */
    char url2[2048];
    snprintf(url2, sizeof url2, "/app/transactions?api-version=foo&%s", odd_q);
    r = rq(e, "GET", url2, tu_fp(FP_READER), NULL);
    j = body_json(&r);
    snprintf(want, sizeof want, "?api-version=%s&", "2026-02-23"); /* CL_API_NEWEST */
    nl = jstr(j, "nextLink");
    if (nl == NULL || strstr(nl, want) == NULL)
        fail_msg("nextLink %s: wanted %s", nl ? nl : "(none)", want);
    json_decref(j);
    nu_reply_free(&r);
    char(*got)[32] = calloc(16, 32);
    int pages;
    for (int js = 0; js < 2; js++) {
        size_t n = list_all(e, url, js, got, 16, &pages);
        assert_int_equal(n, 2);
        assert_string_equal(got[0], "first");
        assert_string_equal(got[1], "last");
        assert_true(pages >= 2);
    }
    free(got);
    /* the hex form wins over collectionId; reads and writes take it too */
    snprintf(url, sizeof url,
             "/app/transactions/current?api-version=2022-05-13&collectionId=no&"
             "collectionIdHex=%s",
             odd_hex);
    r = rq(e, "GET", url, tu_fp(FP_READER), NULL);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    assert_string_equal(jstr(j, "contents"), "last");
    assert_string_equal(jstr(j, "collectionId"), "a+b &#%41");
    json_decref(j);
    nu_reply_free(&r);
    /* a hex form that is not the hex of 1..256 bytes: 400 InvalidInput */
    char big[600];
    memset(big, 'a', 514);
    big[514] = '\0';
    const char *bad[] = {"", "6", "6g", "zz", big};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        for (int after = 0; after < 2; after++) {
            snprintf(url, sizeof url, "%s?api-version=2022-05-13&%s=%s",
                     after ? "/app/collections" : "/app/transactions",
                     after ? "afterHex" : "collectionIdHex", bad[i]);
            r = rq(e, "GET", url, tu_fp(FP_ADMIN), NULL);
            if (r.status != 400 || strstr(r.body, "\"InvalidInput\"") == NULL)
                fail_msg("GET %.80s: %d %s", url, r.status, r.body);
            nu_reply_free(&r);
        }
    }
    /* collections: "a+b &#%41" then 1,100 of "f+NNNN", so the first page ends at one of those
     * and its nextLink says afterHex; every collection is listed once */
    snprintf(url, sizeof url, "/app/collections?api-version=2022-05-13");
    size_t total = 0, nf = 0;
    pages = 0;
    for (;;) {
        r = rq(e, "GET", url, tu_fp(FP_ADMIN), NULL);
        assert_int_equal(r.status, 200);
        j = body_json(&r);
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(j, "collections"), i, v)
        {
            const char *id = jstr(v, "collectionId");
            nf += strncmp(id, "f+", 2) == 0 && (size_t)atoi(id + 2) == nf;
            total++;
        }
        pages++;
        const char *next = jstr(j, "nextLink");
        if (next != NULL) {
            if (strstr(next, "&afterHex=662b") == NULL || strstr(next, "after=") != NULL)
                fail_msg("collections nextLink %s", next);
            snprintf(url, sizeof url, "%s", next);
        }
        json_decref(j);
        nu_reply_free(&r);
        if (next == NULL)
            break;
        assert_true(pages < 10);
    }
    assert_int_equal(nf, 1100);    /* each once, in order */
    assert_int_equal(total, 1101); /* and "a+b &#%41" */
    assert_int_equal(pages, 2);
    env_free(e);
}

static void test_collection_limits(void **state)
{
    cl_node_opts o = {0};
    o.max_collections = 3;
    env_t *e = env_new_opts(&o);
    post(e, "collectionId=one", "x");
    post(e, "collectionId=two", "x");
    post(e, "collectionId=three", "x");
    post(e, NULL, "default is not counted");
    uint64_t last = cl_ledger_last_seqno(e->l);
    reply_t r = rq(e, "POST", "/app/transactions?collectionId=four", tu_fp(FP_ADMIN),
                   "{\"contents\":\"x\"}");
    EXPECT(r, 400, "CollectionCapacityExceeded");
    nu_reply_free(&r);
    assert_int_equal(cl_ledger_last_seqno(e->l), last);
    post(e, "collectionId=two", "existing collections still take writes");
    /* Collection id length: 256 bytes allowed, 257 refused (after decoding). */
    env_free(e);
    e = env_new();
    char q[1200] = "collectionId=";
    for (int i = 0; i < 256; i++)
        strcat(q, "%41");
    post(e, q, "x");
    strcat(q, "B");
    char t[1400];
    snprintf(t, sizeof t, "/app/transactions?%s", q);
    r = rq(e, "POST", t, tu_fp(FP_ADMIN), "{\"contents\":\"x\"}");
    EXPECT(r, 400, "CollectionIdTooLong");
    nu_reply_free(&r);
    /* Contents: exactly 8192 bytes allowed, 8193 refused; multi-byte characters count bytes. */
    char *big = malloc(8200);
    memset(big, 'z', 8192);
    big[8192] = 0;
    post(e, NULL, big);
    char *body = malloc(9000);
    snprintf(body, 9000, "{\"contents\":\"%sz\"}", big);
    r = rq(e, "POST", "/app/transactions", tu_fp(FP_ADMIN), body);
    EXPECT(r, 400, "EntrySizeCapacityExceeded");
    assert_non_null(strstr(r.body, "Entry contents of 8193 bytes exceed the limit of 8192 bytes."));
    nu_reply_free(&r);
    memset(big, 0, 8200);
    for (int i = 0; i < 2731; i++)
        strcat(big, "\xE2\x82\xAC"); /* 8193 bytes */
    snprintf(body, 9000, "{\"contents\":\"%s\"}", big);
    r = rq(e, "POST", "/app/transactions", tu_fp(FP_ADMIN), body);
    EXPECT(r, 400, "EntrySizeCapacityExceeded");
    nu_reply_free(&r);
    free(big);
    free(body);
    env_free(e);
}

/* ---- error codes of §5.2 ------------------------------------------------------------------- */

static void test_error_codes(void **state)
{
    env_t *e = env_new();
    add_user(e, FP_READER, "Reader");
    reply_t r;
    r = rq(e, "POST", "/app/transactions", tu_fp(FP_ADMIN), "{\"contents\":");
    EXPECT(r, 400, "InvalidInput");
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/transactions/abc", tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 400, "InvalidTransactionId");
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/transactions/9.1", tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 404, "InvalidTransactionId");
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/transactions/2.100", tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 404, "TransactionNotFound");
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/nothing", tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 404, "ResourceNotFound");
    nu_reply_free(&r);
    r = rq(e, "PUT", "/app/transactions", tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 405, "MethodNotAllowed");
    assert_string_equal(nu_header(&r, "Allow"), "GET, HEAD, POST");
    nu_reply_free(&r);
    r = rq(e, "DELETE", "/app/transactions/current", tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 405, "MethodNotAllowed");
    assert_string_equal(nu_header(&r, "Allow"), "GET, HEAD");
    nu_reply_free(&r);
    r = rq(e, "POST", "/app/users/x", tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 405, "MethodNotAllowed");
    assert_string_equal(nu_header(&r, "Allow"), "GET, HEAD, PATCH, DELETE");
    nu_reply_free(&r);
    /* HEAD is GET (the HTTP layer drops the body): same admission, same status. */
    r = rq(e, "HEAD", "/app/collections", tu_fp(FP_ADMIN), NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(nu_header(&r, "x-ms-ccf-transaction-id"));
    nu_reply_free(&r);
    r = rq(e, "HEAD", "/app/collections", NULL, NULL);
    EXPECT(r, 401, "InvalidAuthenticationInfo");
    nu_reply_free(&r);
    r = rq(e, "HEAD", "/app/transactions/2.100", tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 404, "TransactionNotFound");
    nu_reply_free(&r);
    r = rq(e, "HEAD", "/app/transactions", tu_fp(FP_READER), NULL);
    assert_int_equal(r.status, 200); /* the list (a Reader may not write) */
    assert_non_null(strstr(r.body, "\"entries\""));
    nu_reply_free(&r);
    /* OPTIONS on a known path or on "*" (RFC 9110 §9.3.7): 200, Allow, no body, no identity. */
    r = rq(e, "OPTIONS", "/app/transactions", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(nu_header(&r, "Allow"), "GET, HEAD, POST, OPTIONS");
    assert_int_equal(r.len, 0);
    nu_reply_free(&r);
    r = rq(e, "OPTIONS", "/node/ready", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(nu_header(&r, "Allow"), "GET, HEAD, OPTIONS");
    nu_reply_free(&r);
    r = rq(e, "OPTIONS", "*", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(nu_header(&r, "Allow"), "GET, HEAD, POST, PATCH, DELETE, PUT, OPTIONS");
    assert_int_equal(r.len, 0);
    nu_reply_free(&r);
    r = rq(e, "OPTIONS", "/app/nothing", NULL, NULL);
    EXPECT(r, 404, "ResourceNotFound");
    nu_reply_free(&r);
    size_t bl = (1u << 20) + 1;
    char *big = malloc(bl + 1);
    memset(big, ' ', bl);
    big[bl] = 0;
    r = rq(e, "POST", "/app/transactions", tu_fp(FP_ADMIN), big);
    EXPECT(r, 413, "RequestBodyTooLarge");
    nu_reply_free(&r);
    free(big);
    req_spec s = {
        "POST", "/app/transactions", tu_fp(FP_ADMIN), "text/plain", "{\"contents\":\"x\"}", 0, NULL,
        NULL};
    r = run_spec(e, &s);
    EXPECT(r, 415, "UnsupportedContentType");
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/transactions", NULL, NULL);
    EXPECT(r, 401, "InvalidAuthenticationInfo");
    nu_reply_free(&r);
    assert_null(nu_header(&r, "WWW-Authenticate"));
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/transactions", tu_fp(FP_UNKNOWN), NULL);
    EXPECT(r, 401, "InvalidAuthenticationInfo");
    assert_null(nu_header(&r, "WWW-Authenticate"));
    nu_reply_free(&r);
    /* A caller that sent a token (not supported) is told so, with the RFC 6750 challenge; so is
     * one whose certificate is unknown. A registered certificate wins over a token. */
    req_spec bearer = {"GET",
                       "/app/collections",
                       NULL,
                       NULL,
                       NULL,
                       0,
                       "authorization",
                       "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln"};
    r = run_spec(e, &bearer);
    EXPECT(r, 401, "InvalidAuthenticationInfo");
    assert_non_null(strstr(r.body, "Bearer tokens are not supported"));
    assert_string_equal(nu_header(&r, "WWW-Authenticate"),
                        "Bearer realm=\"cledger\", error=\"invalid_token\"");
    nu_reply_free(&r);
    bearer.fp = tu_fp(FP_UNKNOWN);
    r = run_spec(e, &bearer);
    EXPECT(r, 401, "InvalidAuthenticationInfo");
    assert_non_null(strstr(r.body, "not registered"));
    assert_non_null(nu_header(&r, "WWW-Authenticate"));
    nu_reply_free(&r);
    bearer.fp = tu_fp(FP_ADMIN);
    r = run_spec(e, &bearer);
    assert_int_equal(r.status, 200);
    nu_reply_free(&r);
    /* A registered certificate outside its validity period (the node's clock): 401 naming the
     * period; inside it (bounds inclusive), admitted. */
    int64_t now = (int64_t)time(NULL);
    g_not_before = now - 86400;
    g_not_after = now - 60;
    r = rq(e, "GET", "/app/collections", tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 401, "InvalidAuthenticationInfo");
    assert_non_null(strstr(r.body, "not valid now"));
    nu_reply_free(&r);
    g_not_before = now + 3600;
    g_not_after = now + 86400;
    r = rq(e, "GET", "/app/collections", tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 401, "InvalidAuthenticationInfo");
    nu_reply_free(&r);
    g_not_before = now - 10;
    g_not_after = now + 600;
    r = rq(e, "GET", "/app/collections", tu_fp(FP_ADMIN), NULL);
    assert_int_equal(r.status, 200);
    nu_reply_free(&r);
    /* A certificate whose dates could not be read (the HTTP layer's empty period): 401 saying so;
     * anonymous routes still serve it. */
    g_not_before = INT64_MAX;
    g_not_after = INT64_MIN;
    r = rq(e, "GET", "/app/collections", tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 401, "InvalidAuthenticationInfo");
    assert_non_null(strstr(r.body, "cannot be read"));
    nu_reply_free(&r);
    r = rq(e, "GET", "/node/version", tu_fp(FP_ADMIN), NULL);
    assert_int_equal(r.status, 200);
    nu_reply_free(&r);
    g_not_before = g_not_after = 0;
    r = rq(e, "POST", "/app/transactions", tu_fp(FP_READER), "{\"contents\":\"x\"}");
    EXPECT(r, 403, "AuthorizationFailed");
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/userDefinedFunctions", tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 501, "NotImplemented");
    nu_reply_free(&r);
    r = rq(e, "POST", "/app/transactions?tags=a,b", tu_fp(FP_ADMIN), "{\"contents\":\"x\"}");
    EXPECT(r, 501, "NotImplemented");
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/transactions/%ZZ", tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 400, "InvalidInput");
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/transactions?collectionId=a%00b", tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 400, "InvalidInput");
    nu_reply_free(&r);
    /* Lower-case fingerprints are normalised. */
    char lower[96];
    snprintf(lower, sizeof lower, "%s", tu_fp('d'));
    add_user(e, 'D', "Reader");
    r = rq(e, "GET", "/app/transactions", lower, NULL);
    assert_int_equal(r.status, 200);
    nu_reply_free(&r);
    /* api-version: unknown accepted (newest); strict mode refuses; duplicates: last wins. */
    r = rq(e, "GET", "/app/collections?api-version=2099-01-01", tu_fp(FP_ADMIN), NULL);
    assert_int_equal(r.status, 200);
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/collections?api-version=2022-05-13&api-version=2022-04-20-preview",
           tu_fp(FP_ADMIN), NULL);
    assert_string_equal(r.body, "[]");
    nu_reply_free(&r);
    /* Not started / not the leader: 503. */
    env_close_node(e);
    cl_node_opts o = e->o;
    assert_int_equal(cl_node_new(&o, &e->n), CL_OK);
    r = rq(e, "GET", "/app/transactions", tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 503, "ServiceUnavailable");
    assert_non_null(nu_header(&r, "Retry-After"));
    nu_reply_free(&r);
    r = rq(e, "GET", "/node/ready", NULL, NULL);
    EXPECT(r, 503, "ServiceUnavailable");
    nu_reply_free(&r);
    r = rq(e, "GET", "/node/state", NULL, NULL);
    assert_int_equal(r.status, 200);
    nu_reply_free(&r);
    env_close_node(e);
    e->o.strict_api_version = 1;
    env_open_node(e);
    e->o.strict_api_version = 0;
    r = rq(e, "GET", "/app/collections?api-version=2099-01-01", tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 400, "UnsupportedApiVersion");
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/collections?api-version=2024-12-09-preview", tu_fp(FP_ADMIN), NULL);
    assert_int_equal(r.status, 200);
    nu_reply_free(&r);
    /* Strict mode is about the /app API's versions: the unversioned routes ignore the value. */
    r = rq(e, "GET", "/ledgerIdentity/testledger?api-version=2099-01-01", NULL, NULL);
    assert_int_equal(r.status, 200);
    nu_reply_free(&r);
    r = rq(e, "GET", "/node/state?api-version=bogus", NULL, NULL);
    assert_int_equal(r.status, 200);
    nu_reply_free(&r);
    env_free(e);
}

static cl_node *g_nonleader;
static int nl_submit(void *impl, const void *cmd, size_t len, cl_consensus_done cb, void *arg)
{
    return CL_ESTATE;
}
static int nl_is_leader(void *impl) { return 0; }
static uint64_t nl_term(void *impl) { return 2; }

static void test_not_leader(void **state)
{
    env_t *e = env_new();
    cl_node_writer w = {nl_submit, nl_is_leader, nl_term, NULL, NULL};
    assert_int_equal(cl_node_set_writer(e->n, &w), CL_OK);
    g_nonleader = e->n;
    uint64_t last = cl_ledger_last_seqno(e->l);
    reply_t r = rq(e, "POST", "/app/transactions", tu_fp(FP_ADMIN), "{\"contents\":\"x\"}");
    EXPECT(r, 503, "ServiceUnavailable");
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/transactions/current", tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 404, "ResourceNotFound");
    nu_reply_free(&r);
    /* every write, before a handler answers from this node's state: a DELETE of a user it does
     * not know said 204, of the last Administrator 400, with nothing written */
    char url[200];
    snprintf(url, sizeof url, "/app/users/%s", tu_fp(FP_UNKNOWN));
    r = rq(e, "DELETE", url, tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 503, "ServiceUnavailable");
    nu_reply_free(&r);
    snprintf(url, sizeof url, "/app/users/%s", tu_fp(FP_ADMIN));
    r = rq(e, "DELETE", url, tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 503, "ServiceUnavailable");
    nu_reply_free(&r);
    r = rq(e, "PATCH", url, tu_fp(FP_ADMIN), "{\"assignedRole\":\"Reader\"}");
    EXPECT(r, 503, "ServiceUnavailable");
    nu_reply_free(&r);
    r = rq(e, "DELETE", "/app/roles?roleName=nosuchrole", tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 503, "ServiceUnavailable");
    nu_reply_free(&r);
    r = rq(e, "GET", url, tu_fp(FP_ADMIN), NULL); /* reads are served */
    assert_int_equal(r.status, 200);
    nu_reply_free(&r);
    assert_int_equal(cl_node_bootstrap_admin(e->n, tu_fp(FP_ADMIN), NULL, NULL), CL_OK);
    assert_int_equal(cl_node_submit_signature(e->n), CL_OK);
    assert_int_equal(cl_ledger_last_seqno(e->l), last);
    env_free(e);
}

/* A writer whose log failed for good (cledgerd: consensus stopped after a fatal error): the node
 * says so on /node/ready (503) and /node/state ("Failed"), and refuses what needs the log. */
static int g_writer_error;
static cl_node *g_failing_node;
static int fw_submit(void *impl, const void *cmd, size_t len, cl_consensus_done cb, void *arg)
{
    return g_writer_error != 0
               ? CL_ECLOSED
               : cl_node_direct_writer(&g_failing_node).submit(&g_failing_node, cmd, len, cb, arg);
}
static int fw_is_leader(void *impl) { return 1; }
static uint64_t fw_term(void *impl) { return 2; }
static int fw_error(void *impl) { return g_writer_error; }

static void test_writer_failed(void **state)
{
    env_t *e = env_new();
    g_failing_node = e->n;
    g_writer_error = 0;
    cl_node_writer w = {fw_submit, fw_is_leader, fw_term, NULL, fw_error};
    assert_int_equal(cl_node_set_writer(e->n, &w), CL_OK);
    const char *tx = post(e, NULL, "before");
    char t[128];
    snprintf(t, sizeof t, "/app/transactions/%s?api-version=2022-05-13", tx);
    reply_t r = rq(e, "GET", "/node/ready", NULL, NULL);
    assert_int_equal(r.status, 200);
    nu_reply_free(&r);
    g_writer_error = CL_EIO;
    r = rq(e, "GET", "/node/ready", NULL, NULL);
    EXPECT(r, 503, "ServiceUnavailable");
    assert_non_null(nu_header(&r, "Retry-After"));
    nu_reply_free(&r);
    r = rq(e, "GET", "/node/state", NULL, NULL);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_string_equal(jstr(j, "state"), "Failed");
    json_decref(j);
    nu_reply_free(&r);
    r = rq(e, "POST", "/app/transactions?api-version=2022-05-13", tu_fp(FP_ADMIN),
           "{\"contents\":\"after\"}");
    EXPECT(r, 503, "ServiceUnavailable");
    assert_non_null(strstr(r.body, "must be restarted"));
    nu_reply_free(&r);
    g_writer_error = 0; /* (not what a real log does: only to show the refusal was the error's) */
    r = rq(e, "GET", t, tu_fp(FP_ADMIN), NULL);
    assert_int_equal(r.status, 200);
    nu_reply_free(&r);
    env_free(e);
}

/* A write taken by the log whose outcome the node never learns (consensus stopped: CL_ECLOSED):
 * 503 without Retry-After, saying it may still be committed. It was "could not be committed" with
 * Retry-After: 1, an invitation to write it twice (the raft log replays it at the next start). */
static cl_consensus_done g_held_cb;
static void *g_held_arg;
static int hw_submit(void *impl, const void *cmd, size_t len, cl_consensus_done cb, void *arg)
{
    (void)impl;
    (void)cmd;
    (void)len;
    g_held_cb = cb;
    g_held_arg = arg;
    return CL_OK;
}

static void test_write_outcome_unknown(void **state)
{
    env_t *e = env_new();
    cl_node_writer w = {hw_submit, fw_is_leader, fw_term, NULL, NULL};
    assert_int_equal(cl_node_set_writer(e->n, &w), CL_OK);
    nu_req q = {.method = "POST",
                .target = "/app/transactions?api-version=2022-05-13",
                .fp = tu_fp(FP_ADMIN),
                .ctype = "application/json",
                .body = "{\"contents\":\"x\"}"};
    int statuses[2] = {CL_ECLOSED, CL_ESTATE};
    for (int i = 0; i < 2; i++) {
        nu_reply r;
        g_held_cb = NULL;
        nu_start(e->n, &q, ++e->next_reqid, &r);
        assert_int_equal(r.calls, 0);
        assert_non_null(g_held_cb);
        g_held_cb(g_held_arg, statuses[i], 0, 0, NULL);
        assert_int_equal(r.calls, 1);
        EXPECT(r, 503, "ServiceUnavailable");
        assert_null(nu_header(&r, "Retry-After"));
        assert_non_null(strstr(r.body, "may still be committed"));
        nu_reply_free(&r);
    }
    env_free(e);
}

/* The ledger's sync fails while a write is applied (a full disk): that write is answered (500; it
 * used to wait for a later sync that never came, and held up a graceful stop for ever), the node
 * reports it failed, and later writes are refused with 503. */
static void test_ledger_sync_fails(void **state)
{
    env_t *e = calloc(1, sizeof *e);
    assert_non_null(e);
    snprintf(e->dir, sizeof e->dir, "%s/l", tu_tempdir("node"));
    cl_fs_fault *ff;
    assert_int_equal(cl_fs_fault_new(lu_fs_nosync(), &ff), CL_OK);
    assert_int_equal(lu_create(e->dir, 0, 0, cl_fs_fault_fs(ff), &e->l), CL_OK);
    assert_int_equal(uv_loop_init(&e->loop), 0);
    g_loop = &e->loop;
    env_open_node(e);
    post(e, NULL, "before");
    cl_fs_fault_arm(ff, CL_FAULT_WRITE | CL_FAULT_SYNC, 0, 1);
    reply_t r = rq(e, "POST", "/app/transactions?api-version=2022-05-13", tu_fp(FP_ADMIN),
                   "{\"contents\":\"during\"}"); /* run_spec: answered exactly once */
    EXPECT(r, 500, "InternalError");
    assert_non_null(strstr(r.body, "committed in the raft log")); /* not lost: replayed */
    assert_true(cl_fs_fault_fired(ff));
    nu_reply_free(&r);
    r = rq(e, "GET", "/node/ready", NULL, NULL);
    EXPECT(r, 503, "ServiceUnavailable");
    nu_reply_free(&r);
    r = rq(e, "POST", "/app/transactions?api-version=2022-05-13", tu_fp(FP_ADMIN),
           "{\"contents\":\"after\"}");
    EXPECT(r, 503, "ServiceUnavailable");
    nu_reply_free(&r);
    env_close_node(e);
    (void)cl_ledger_close(e->l); /* failed: its close may report it */
    assert_int_equal(uv_loop_close(&e->loop), 0);
    cl_fs_fault_free(ff);
    tu_rmrf(e->dir);
    free(e);
}

/* ---- role × route matrix ------------------------------------------------------------------- */

typedef struct {
    const char *method, *target, *body;
    unsigned need; /* 0 anonymous, else minimum role: 1 Reader, 2 Contributor, 3 Administrator */
} route_case;

static void test_role_matrix(void **state)
{
    env_t *e = env_new();
    add_user(e, FP_READER, "Reader");
    add_user(e, FP_CONTRIB, "Contributor");
    const char *t = post(e, NULL, "m");
    char tx[64], u1[200], u2[200], u3[200], u4[200];
    snprintf(tx, sizeof tx, "%s", t);
    assert_int_equal(cl_node_submit_signature(e->n), CL_OK);
    snprintf(u1, sizeof u1, "/app/transactions/%s", tx);
    snprintf(u2, sizeof u2, "/app/transactions/%s/receipt", tx);
    snprintf(u3, sizeof u3, "/app/transactions/%s/status", tx);
    snprintf(u4, sizeof u4, "/app/users/%s", "11:22");
    const route_case cases[] = {
        {"GET", "/app/governance/constitution", NULL, 1},
        {"GET", "/app/governance/members", NULL, 1},
        {"GET", "/app/enclaveQuotes", NULL, 1},
        {"GET", "/app/collections", NULL, 1},
        {"GET", "/app/transactions", NULL, 1},
        {"POST", "/app/transactions", "{\"contents\":\"r\"}", 2},
        {"GET", u1, NULL, 1},
        {"GET", u2, NULL, 1},
        {"GET", u3, NULL, 1},
        {"GET", "/app/transactions/current", NULL, 1},
        {"GET", "/app/users", NULL, 3},
        {"GET", "/app/ledgerUsers", NULL, 3},
        {"GET", u4, NULL, 3},
        {"PATCH", "/app/users/mx", "{\"assignedRole\":\"Reader\"}", 3},
        {"DELETE", "/app/users/mx", NULL, 3},
        {"GET", "/app/ledgerUsers/mx", NULL, 3},
        {"PATCH", "/app/ledgerUsers/mx", "{\"assignedRoles\":[\"Reader\"]}", 3},
        {"DELETE", "/app/ledgerUsers/mx", NULL, 3},
        {"GET", "/app/userDefinedEndpoints", NULL, 3},
        {"PUT", "/app/userDefinedEndpoints", "{}", 3},
        {"GET", "/app/userDefinedEndpoints/runtimeOptions", NULL, 3},
        {"PATCH", "/app/userDefinedEndpoints/runtimeOptions", "{}", 3},
        {"GET", "/app/userDefinedEndpoints/modules?module_name=x", NULL, 3},
        {"GET", "/app/userDefinedFunctions", NULL, 3},
        {"GET", "/app/userDefinedFunctions/f", NULL, 3},
        {"PUT", "/app/userDefinedFunctions/f", "{\"code\":\"x\"}", 3},
        {"DELETE", "/app/userDefinedFunctions/f", NULL, 3},
        {"POST", "/app/userDefinedFunctions/f:execute", "{}", 2},
        {"POST", "/app/userDefinedFunctions/f%3Aexecute", NULL, 2},
        {"GET", "/app/roles?roleName=x", NULL, 3},
        {"PUT", "/app/roles",
         "[{\"roleName\":\"mr\",\"roleActions\":[\"Microsoft.ConfidentialLedger/ledger/read\"]}]",
         3},
        {"PATCH", "/app/roles",
         "[{\"roleName\":\"mr\",\"roleActions\":[\"Microsoft.ConfidentialLedger/ledger/write\"]}]",
         3},
        {"DELETE", "/app/roles?roleName=mr", NULL, 3},
        {"GET", "/ledgerIdentity/testledger", NULL, 0},
        {"GET", "/node/ready", NULL, 0},
        {"GET", "/node/state", NULL, 0},
        {"GET", "/node/version", NULL, 0},
    };
    const struct {
        const char *who;
        int level; /* -1 no cert, -2 unknown */
    } callers[] = {{NULL, -1}, {"E", -2}, {"B", 1}, {"C", 2}, {"A", 3}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (size_t k = 0; k < sizeof callers / sizeof callers[0]; k++) {
            const char *who = callers[k].who ? tu_fp(callers[k].who[0]) : NULL;
            reply_t r = rq(e, cases[i].method, cases[i].target, who, cases[i].body);
            int lvl = callers[k].level;
            if (cases[i].need == 0) {
                if (r.status != 200)
                    fail_msg("%s %s: %d", cases[i].method, cases[i].target, r.status);
            } else if (lvl < 0) {
                EXPECT(r, 401, "InvalidAuthenticationInfo");
            } else if ((unsigned)lvl < cases[i].need) {
                EXPECT(r, 403, "AuthorizationFailed");
            } else if (r.status == 401 || r.status == 403 || r.status >= 500 + 2 ||
                       (r.status >= 400 && r.status != 404 && r.status != 501)) {
                fail_msg("%s %s as %d: %d %s", cases[i].method, cases[i].target, lvl, r.status,
                         r.body);
            }
            if (r.status / 100 == 2 && strncmp(cases[i].target, "/app/", 5) == 0)
                assert_non_null(nu_header(&r, "x-ms-ccf-transaction-id"));
            if (r.status / 100 != 2)
                assert_null(nu_header(&r, "x-ms-ccf-transaction-id"));
            nu_reply_free(&r);
        }
    }
    /* Identity, enclave quotes, constitution and node reads: shapes. */
    reply_t r = rq(e, "GET", "/ledgerIdentity/testledger", NULL, NULL);
    json_t *j = body_json(&r);
    assert_string_equal(jstr(j, "ledgerId"), "testledger");
    assert_string_equal(jstr(j, "ledgerTlsCertificate"), cl_ledger_service_cert_pem(e->l));
    assert_null(nu_header(&r, "x-ms-ccf-transaction-id"));
    json_decref(j);
    nu_reply_free(&r);
    r = rq(e, "GET", "/ledgerIdentity/other", NULL, NULL);
    EXPECT(r, 404, "ResourceNotFound");
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/enclaveQuotes", tu_fp(FP_READER), NULL);
    j = body_json(&r);
    char node[65];
    assert_non_null(jstr(j, "currentNodeId"));
    snprintf(node, sizeof node, "%s", jstr(j, "currentNodeId"));
    assert_int_equal(strlen(node), 64);
    json_t *q = json_object_get(json_object_get(j, "enclaveQuotes"), node);
    assert_string_equal(jstr(q, "quoteVersion"), "CLEDGER_VIRTUAL_v1");
    assert_string_equal(jstr(q, "nodeId"), node);
    char want[400];
    char ev[200];
    snprintf(ev, sizeof ev, "{\"measurement\":\"cledger virtual v1\",\"report_data\":\"%s\"}",
             node);
    for (size_t i = 0; i < strlen(ev); i++)
        snprintf(want + 2 * i, 3, "%02x", (unsigned char)ev[i]);
    assert_string_equal(jstr(q, "raw"), want);
    json_decref(j);
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/governance/constitution", tu_fp(FP_READER), NULL);
    j = body_json(&r);
    assert_non_null(strstr(jstr(j, "script"), "cledger constitution"));
    assert_int_equal(strlen(jstr(j, "digest")), 64);
    json_decref(j);
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/governance/members", tu_fp(FP_READER), NULL);
    assert_string_equal(r.body, "{\"members\":[]}");
    nu_reply_free(&r);
    r = rq(e, "GET", "/node/state", NULL, NULL);
    j = body_json(&r);
    assert_string_equal(jstr(j, "state"), "PartOfNetwork");
    assert_string_equal(jstr(j, "nodeId"), node);
    json_decref(j);
    nu_reply_free(&r);
    env_free(e);
}

/* ---- users --------------------------------------------------------------------------------- */

static void test_users(void **state)
{
    env_t *e = env_new();
    const char *id = "7F:75:58:60:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:"
                     "55:66:77:88:99:30:1F";
    char enc[300], url[400];
    size_t k = 0;
    for (const char *p = id; *p; p++)
        k += (size_t)snprintf(enc + k, sizeof enc - k, *p == ':' ? "%%3A" : "%c", *p);
    /* JS: percent-encoded; merge-patch content type. */
    snprintf(url, sizeof url, "/app/users/%s?api-version=2022-05-13", enc);
    req_spec s = {"PATCH",
                  url,
                  tu_fp(FP_ADMIN),
                  "application/merge-patch+json",
                  "{\"assignedRole\":\"Contributor\",\"userId\":\"ignored\"}",
                  0,
                  NULL,
                  NULL};
    reply_t r = run_spec(e, &s);
    assert_int_equal(r.status, 200);
    char want[400];
    snprintf(want, sizeof want, "{\"assignedRole\":\"Contributor\",\"userId\":\"%s\"}", id);
    assert_string_equal(r.body, want);
    const char *tx = nu_header(&r, "x-ms-ccf-transaction-id");
    assert_non_null(tx);
    assert_int_equal(txid_seqno(tx), cl_ledger_last_seqno(e->l));
    nu_reply_free(&r);
    /* Python: raw ':'; lower-case form finds the same user. */
    snprintf(url, sizeof url, "/app/users/%s", id);
    r = rq(e, "GET", url, tu_fp(FP_ADMIN), NULL);
    assert_string_equal(r.body, want);
    nu_reply_free(&r);
    char lower[200];
    snprintf(lower, sizeof lower, "/app/users/%s", id);
    for (char *p = lower; *p; p++)
        if (*p >= 'A' && *p <= 'F')
            *p = (char)(*p - 'A' + 'a');
    r = rq(e, "GET", lower, tu_fp(FP_ADMIN), NULL);
    assert_string_equal(r.body, want);
    nu_reply_free(&r);
    /* Multi-role API on the same store. */
    snprintf(url, sizeof url, "/app/ledgerUsers/%s", enc);
    r = rq(e, "PATCH", url, tu_fp(FP_ADMIN),
           "{\"assignedRoles\":[\"Reader\",\"Contributor\",\"Reader\"]}");
    assert_int_equal(r.status, 200);
    snprintf(want, sizeof want,
             "{\"assignedRoles\":[\"Contributor\",\"Reader\"],\"userId\":\"%s\"}", id);
    assert_string_equal(r.body, want);
    nu_reply_free(&r);
    snprintf(url, sizeof url, "/app/users/%s", id);
    r = rq(e, "GET", url, tu_fp(FP_ADMIN), NULL);
    snprintf(want, sizeof want, "{\"assignedRole\":\"Contributor\",\"userId\":\"%s\"}", id);
    assert_string_equal(r.body, want);
    nu_reply_free(&r);
    /* GUID ids: case-insensitive, echoed as first stored. */
    r = rq(e, "PATCH", "/app/ledgerUsers/7D3C9A5E-0B8E-4A6F-9F7A-1A2B3C4D5E6F", tu_fp(FP_ADMIN),
           "{\"assignedRoles\":[\"Reader\"]}");
    assert_int_equal(r.status, 200);
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/ledgerUsers/7d3c9a5e-0b8e-4a6f-9f7a-1a2b3c4d5e6f", tu_fp(FP_ADMIN),
           NULL);
    assert_string_equal(r.body, "{\"assignedRoles\":[\"Reader\"],\"userId\":"
                                "\"7D3C9A5E-0B8E-4A6F-9F7A-1A2B3C4D5E6F\"}");
    nu_reply_free(&r);
    /* An id with an encoded slash stays one segment. */
    r = rq(e, "PATCH", "/app/users/a%2Fb", tu_fp(FP_ADMIN), "{\"assignedRole\":\"Reader\"}");
    assert_string_equal(r.body, "{\"assignedRole\":\"Reader\",\"userId\":\"a/b\"}");
    nu_reply_free(&r);
    /* Lists. */
    r = rq(e, "GET", "/app/users", tu_fp(FP_ADMIN), NULL);
    json_t *j = body_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "ledgerUsers")), 4);
    json_decref(j);
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/ledgerUsers", tu_fp(FP_ADMIN), NULL);
    j = body_json(&r);
    json_t *first = json_array_get(json_object_get(j, "ledgerUsers"), 0);
    assert_true(json_is_array(json_object_get(first, "assignedRoles")));
    json_decref(j);
    nu_reply_free(&r);
    /* Errors: bad role, bare string body, empty array, unknown user. */
    r = rq(e, "PATCH", "/app/users/x1", tu_fp(FP_ADMIN), "{\"assignedRole\":\"Owner\"}");
    EXPECT(r, 400, "InvalidInput");
    nu_reply_free(&r);
    r = rq(e, "PATCH", "/app/users/x1", tu_fp(FP_ADMIN), "\"Contributor\"");
    EXPECT(r, 400, "InvalidInput");
    assert_non_null(strstr(r.body, "Expected object"));
    nu_reply_free(&r);
    r = rq(e, "PATCH", "/app/ledgerUsers/x1", tu_fp(FP_ADMIN), "{\"assignedRoles\":[]}");
    EXPECT(r, 400, "InvalidInput");
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/users/x1", tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 404, "ResourceNotFound");
    nu_reply_free(&r);
    /* Delete: 204 with the write's id; unknown: 204 too; then 404. */
    uint64_t last = cl_ledger_last_seqno(e->l);
    r = rq(e, "DELETE", "/app/users/nobody", tu_fp(FP_ADMIN), NULL);
    assert_int_equal(r.status, 204);
    assert_int_equal(r.len, 0);
    nu_reply_free(&r);
    assert_int_equal(cl_ledger_last_seqno(e->l), last);
    snprintf(url, sizeof url, "/app/ledgerUsers/%s", enc);
    r = rq(e, "DELETE", url, tu_fp(FP_ADMIN), NULL);
    assert_int_equal(r.status, 204);
    assert_int_equal(txid_seqno(nu_header(&r, "x-ms-ccf-transaction-id")), last + 1);
    nu_reply_free(&r);
    r = rq(e, "GET", url, tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 404, "ResourceNotFound");
    nu_reply_free(&r);
    /* Last Administrator: cannot be demoted or deleted; can once there is a second one. */
    snprintf(url, sizeof url, "/app/users/%s", tu_fp(FP_ADMIN));
    last = cl_ledger_last_seqno(e->l);
    r = rq(e, "PATCH", url, tu_fp(FP_ADMIN), "{\"assignedRole\":\"Reader\"}");
    EXPECT(r, 400, "InvalidInput");
    nu_reply_free(&r);
    r = rq(e, "DELETE", url, tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 400, "InvalidInput");
    nu_reply_free(&r);
    snprintf(url, sizeof url, "/app/ledgerUsers/%s", tu_fp(FP_ADMIN));
    r = rq(e, "PATCH", url, tu_fp(FP_ADMIN), "{\"assignedRoles\":[\"Reader\"]}");
    EXPECT(r, 400, "InvalidInput");
    nu_reply_free(&r);
    assert_int_equal(cl_ledger_last_seqno(e->l), last);
    add_user(e, FP_CONTRIB, "Administrator");
    snprintf(url, sizeof url, "/app/users/%s", tu_fp(FP_ADMIN));
    r = rq(e, "DELETE", url, tu_fp(FP_ADMIN), NULL);
    assert_int_equal(r.status, 204);
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/users", tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 401, "InvalidAuthenticationInfo");
    nu_reply_free(&r);
    /* The state machine itself refuses to remove the last admin (a race the handler missed). */
    cl_buf b = CL_BUF_INIT;
    const char *c = tu_fp(FP_CONTRIB);
    assert_int_equal(
        cl_cmd_encode_internal(&b, CL_TABLE_USERS, CL_OP_REMOVE, 0, c, strlen(c), "", 0), CL_OK);
    void *res = NULL;
    last = cl_ledger_last_seqno(e->l);
    assert_int_equal(cl_node_apply(e->n, 2, 1000, b.data, b.len, &res), CL_OK);
    assert_int_equal(((cl_node_result *)res)->status, CL_ESTATE);
    free(res);
    assert_int_equal(cl_ledger_last_seqno(e->l), last);
    cl_buf_free(&b);
    /* Bootstrap again: users exist, nothing submitted. */
    int st = 1;
    assert_int_equal(cl_node_bootstrap_admin(e->n, tu_fp('9'), admin_done, &st), CL_OK);
    assert_int_equal(st, CL_OK);
    assert_int_equal(cl_ledger_last_seqno(e->l), last);
    env_free(e);
}

/* ---- restart ------------------------------------------------------------------------------- */

/* The admission lookup (cl_users_find_fingerprint) answers exactly as cl_users_find. */
static void test_users_find_fingerprint(void **state)
{
    (void)state;
    cl_users u;
    cl_users_init(&u);
    char up[96], low[96], bad[96];
    for (int i = 0; i < 32; i++)
        snprintf(up + 3 * i, sizeof up - 3 * (size_t)i, "%02X%s", (i * 37 + 11) & 0xff,
                 i < 31 ? ":" : "");
    assert_int_equal(strlen(up), 95);
    for (size_t i = 0; i < sizeof low; i++)
        low[i] = (char)(up[i] >= 'A' && up[i] <= 'F' ? up[i] - 'A' + 'a' : up[i]);
    memcpy(bad, up, sizeof bad);
    bad[0] = 'G';
    cl_roleset rs = {.builtin = CL_ROLE_READER};
    assert_int_equal(cl_users_put(&u, low, strlen(low), &rs), CL_OK); /* stored upper-case */
    assert_int_equal(cl_users_put(&u, "alice", 5, &rs), CL_OK);
    assert_int_equal(cl_users_put(&u, bad, strlen(bad), &rs), CL_OK); /* a plain name */
    const cl_user *x = cl_users_find(&u, up, strlen(up));
    assert_non_null(x);
    assert_ptr_equal(cl_users_find_fingerprint(&u, up), x);
    assert_ptr_equal(cl_users_find_fingerprint(&u, low), x); /* full path: same answer */
    assert_ptr_equal(cl_users_find_fingerprint(&u, bad), cl_users_find(&u, bad, strlen(bad)));
    assert_non_null(cl_users_find_fingerprint(&u, bad));
    assert_ptr_equal(cl_users_find_fingerprint(&u, "alice"), cl_users_find(&u, "alice", 5));
    up[94] = up[94] == '0' ? '1' : '0'; /* another fingerprint: no such user */
    assert_null(cl_users_find_fingerprint(&u, up));
    assert_null(cl_users_find_fingerprint(&u, ""));
    cl_users_free(&u);
}

/* The store against a plain model: random puts and removes over ids of the three kinds
 * (fingerprints in either case, GUIDs in either case, plain names), then the order, the count, the
 * Administrator count and cl_users_after checked against the model after every step. */
#define MODEL_IDS 300
static void model_key(int i, int upper, char *out, size_t cap)
{
    if (i % 3 == 0) { /* a fingerprint: 32 bytes */
        size_t k = 0;
        for (int b = 0; b < 32; b++)
            k += (size_t)snprintf(out + k, cap - k, upper ? "%02X%s" : "%02x%s",
                                  (unsigned)((i * 131 + b * 7) & 0xff), b < 31 ? ":" : "");
    } else if (i % 3 == 1) {
        snprintf(out, cap,
                 upper ? "%08X-0B8E-4A6F-9F7A-1A2B3C4D5E6F" : "%08x-0b8e-4a6f-9f7a-1a2b3c4d5e6f",
                 (unsigned)i * 2654435761u);
    } else {
        snprintf(out, cap, "name+%d", i); /* compared exactly: one form */
    }
}

static void test_users_store(void **state)
{
    (void)state;
    cl_users u;
    cl_users_init(&u);
    unsigned have[MODEL_IDS] = {0}; /* 0: absent, else builtin bits */
    char *key[MODEL_IDS];
    for (int i = 0; i < MODEL_IDS; i++) {
        char id[128], *k = NULL, *st = NULL;
        model_key(i, 1, id, sizeof id);
        assert_int_equal(cl_user_id_normalise(id, strlen(id), &k, &st), CL_OK);
        key[i] = k;
        cl_free(st);
    }
    uint32_t seed = 12345;
    for (int step = 0; step < 4000; step++) {
        seed = seed * 1103515245u + 12345u;
        int i = (int)((seed >> 8) % MODEL_IDS);
        char id[128];
        model_key(i, (seed >> 20) & 1, id, sizeof id);
        if ((seed >> 24) % 4 == 0) {
            assert_int_equal(cl_users_remove(&u, id, strlen(id)), CL_OK);
            have[i] = 0;
        } else {
            cl_roleset rs = {.builtin = 1u << ((seed >> 26) % 3)};
            assert_int_equal(cl_users_put(&u, id, strlen(id), &rs), CL_OK);
            have[i] = rs.builtin;
        }
        if (step % 97 != 0 && step != 3999)
            continue;
        size_t n = 0, admins = 0;
        for (int m = 0; m < MODEL_IDS; m++) {
            n += have[m] != 0;
            admins += (have[m] & CL_ROLE_ADMINISTRATOR) != 0;
        }
        assert_int_equal(u.n, n);
        assert_int_equal(cl_users_admins(&u), admins);
        size_t seen = 0;
        const char *prev = NULL;
        for (const cl_user *x = cl_users_first(&u); x != NULL; x = cl_users_next(&u, x)) {
            if (prev != NULL && strcmp(prev, x->key) >= 0)
                fail_msg("out of order: %s then %s", prev, x->key);
            prev = x->key;
            seen++;
        }
        assert_int_equal(seen, n);
        /* cl_users_after(id): the model's smallest present key greater than id's key */
        for (int m = 0; m < MODEL_IDS; m += 7) {
            model_key(m, 0, id, sizeof id);
            const char *want = NULL;
            for (int o = 0; o < MODEL_IDS; o++)
                if (have[o] && strcmp(key[o], key[m]) > 0 &&
                    (want == NULL || strcmp(key[o], want) < 0))
                    want = key[o];
            const cl_user *a = cl_users_after(&u, id, strlen(id));
            if (want == NULL)
                assert_null(a);
            else
                assert_string_equal(a->key, want);
        }
    }
    /* an id that is not valid starts from the first user */
    assert_ptr_equal(cl_users_after(&u, "a\x01", 2), cl_users_first(&u));
    assert_ptr_equal(cl_users_after(&u, "", 0), cl_users_first(&u));
    assert_int_equal(cl_users_remove(&u, "", 0), CL_EINVAL);
    for (int i = 0; i < MODEL_IDS; i++)
        cl_free(key[i]);
    cl_users_free(&u);
    assert_null(cl_users_first(&u));
    assert_int_equal(cl_users_admins(&u), 0);
}

#define USERS_PAGE 1000 /* CL_NODE_USERS_PAGE (node/internal.h) */

/* The page of users at url starts with the user `want`. */
static void page_starts_at(env_t *e, const char *url, const char *want)
{
    reply_t r = rq(e, "GET", url, tu_fp(FP_ADMIN), NULL);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_string_equal(jstr(json_array_get(json_object_get(j, "ledgerUsers"), 0), "userId"), want);
    json_decref(j);
    nu_reply_free(&r);
}

/* GET /app/users and /app/ledgerUsers page by CL_NODE_USERS_PAGE in key order; a nextLink resumes
 * after the last user shown (afterHex for an id with '+'), so changes between pages neither
 * repeat nor skip the users that stay. */
static void test_users_paging(void **state)
{
    (void)state;
    env_t *e = env_new();
    char url[512];
    for (int i = 0; i < 2100; i++) {
        snprintf(url, sizeof url, "/app/users/u%%2B%04d", i);
        reply_t r = rq(e, "PATCH", url, tu_fp(FP_ADMIN), "{\"assignedRole\":\"Reader\"}");
        assert_int_equal(r.status, 200);
        nu_reply_free(&r);
    }
    for (int multi = 0; multi < 2; multi++) {
        const char *path = multi ? "/app/ledgerUsers" : "/app/users";
        snprintf(url, sizeof url, "%s?api-version=2024-08-22-preview", path);
        int pages = 0, next_u = 0, admin_seen = 0;
        for (;;) {
            reply_t r = rq(e, "GET", url, tu_fp(FP_ADMIN), NULL);
            assert_int_equal(r.status, 200);
            json_t *j = body_json(&r);
            json_t *arr = json_object_get(j, "ledgerUsers");
            size_t i;
            json_t *v;
            json_array_foreach(arr, i, v)
            {
                const char *id = jstr(v, "userId");
                assert_true(multi ? json_is_array(json_object_get(v, "assignedRoles"))
                                  : json_is_string(json_object_get(v, "assignedRole")));
                if (strcmp(id, tu_fp(FP_ADMIN)) == 0) {
                    admin_seen++;
                    continue;
                }
                char want[16];
                snprintf(want, sizeof want, "u+%04d", next_u);
                if (strcmp(id, want) != 0)
                    fail_msg("page %d: %s where %s was due", pages, id, want);
                next_u++;
            }
            pages++;
            const char *next = jstr(j, "nextLink");
            if (pages < 3) {
                assert_int_equal(json_array_size(arr), USERS_PAGE);
                assert_non_null(next);
                char pre[128];
                snprintf(pre, sizeof pre, "%s?api-version=2024-08-22-preview&afterHex=752b", path);
                if (strncmp(next, pre, strlen(pre)) != 0)
                    fail_msg("nextLink %s", next);
                snprintf(url, sizeof url, "%s", next);
            } else {
                assert_null(next); /* the last page has no nextLink at all */
            }
            json_decref(j);
            nu_reply_free(&r);
            if (pages == 3)
                break;
        }
        assert_int_equal(next_u, 2100);
        assert_int_equal(admin_seen, 1);
    }
    /* Changes between pages: after the first page (ends at u+0998: the admin's fingerprint sorts
     * first), u+0999 is removed and u+0000a added before the cursor; the second page starts at
     * u+1000 and nothing is listed twice. */
    reply_t r = rq(e, "GET", "/app/users", tu_fp(FP_ADMIN), NULL);
    json_t *j = body_json(&r);
    snprintf(url, sizeof url, "%s", jstr(j, "nextLink"));
    json_t *lastu = json_array_get(json_object_get(j, "ledgerUsers"), USERS_PAGE - 1);
    assert_string_equal(jstr(lastu, "userId"), "u+0998");
    json_decref(j);
    nu_reply_free(&r);
    r = rq(e, "DELETE", "/app/users/u%2B0999", tu_fp(FP_ADMIN), NULL);
    assert_int_equal(r.status, 204);
    nu_reply_free(&r);
    r = rq(e, "PATCH", "/app/users/u%2B0000a", tu_fp(FP_ADMIN), "{\"assignedRole\":\"Reader\"}");
    assert_int_equal(r.status, 200);
    nu_reply_free(&r);
    page_starts_at(e, url, "u+1000");
    /* A continuation id of no user resumes at the next one; a bad hex form is 400. */
    page_starts_at(e, "/app/users?after=u%2B0999", "u+1000");
    r = rq(e, "GET", "/app/users?afterHex=7", tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 400, "InvalidInput");
    nu_reply_free(&r);
    env_free(e);
}

/* A writer like cl_consensus: each command is applied when submitted, but every callback runs
 * only at the end of the batch, after the ledger's sync (bw_flush). */
typedef struct {
    cl_consensus_done cb;
    void *arg;
    int rc;
    uint64_t index;
    void *res;
} bw_held;
static struct {
    cl_node *n;
    uint64_t index;
    bw_held h[8];
    size_t nh;
} g_bw;
static int bw_submit(void *impl, const void *cmd, size_t len, cl_consensus_done cb, void *arg)
{
    (void)impl;
    assert_true(g_bw.nh < 8);
    bw_held *h = &g_bw.h[g_bw.nh++];
    *h = (bw_held){cb, arg, 0, ++g_bw.index, NULL};
    h->rc = cl_node_apply(g_bw.n, 2, h->index, cmd, len, &h->res);
    return CL_OK;
}
static int bw_is_leader(void *impl) { return 1; }
static uint64_t bw_term(void *impl) { return 2; }
static void bw_flush(void)
{
    cl_node_applied_batch(g_bw.n, g_bw.index);
    for (size_t i = 0; i < g_bw.nh; i++) {
        bw_held *h = &g_bw.h[i];
        if (h->cb != NULL)
            h->cb(h->arg, h->rc, 2, h->index, h->res);
        else
            free(h->res);
    }
    g_bw.nh = 0;
}

/* User writes of one batch are answered with what each wrote, not with the users table as the
 * batch left it: two PATCHes of one user answer their own roles, and a PATCH followed by a
 * DELETE in the same batch is still a 200 with its transaction id (it was written). */
static void test_user_writes_in_one_batch(void **state)
{
    env_t *e = env_new();
    g_bw.n = e->n;
    g_bw.index = 1000;
    g_bw.nh = 0;
    cl_node_writer w = {bw_submit, bw_is_leader, bw_term, NULL, NULL};
    assert_int_equal(cl_node_set_writer(e->n, &w), CL_OK);
    char single[200], multi[200], want[300];
    snprintf(single, sizeof single, "/app/users/%s?api-version=2022-05-13", tu_fp(FP_READER));
    snprintf(multi, sizeof multi, "/app/ledgerUsers/%s?api-version=2024-08-22-preview",
             tu_fp(FP_READER));
    const char *fa = tu_fp(FP_ADMIN), *js = "application/json";
    nu_req q[4] = {
        {.method = "PATCH",
         .target = single,
         .fp = fa,
         .ctype = js,
         .body = "{\"assignedRole\":\"Reader\"}"},
        {.method = "PATCH",
         .target = multi,
         .fp = fa,
         .ctype = js,
         .body = "{\"assignedRoles\":[\"Reader\",\"Contributor\"]}"},
        {.method = "PATCH",
         .target = single,
         .fp = fa,
         .ctype = js,
         .body = "{\"assignedRole\":\"Contributor\"}"},
        {.method = "DELETE", .target = single, .fp = fa},
    };
    nu_reply r[4];
    uint64_t first = cl_ledger_last_seqno(e->l) + 1;
    for (int i = 0; i < 4; i++) {
        nu_start(e->n, &q[i], ++e->next_reqid, &r[i]);
        assert_int_equal(r[i].calls, 0); /* answered at the end of the batch */
    }
    bw_flush();
    const char *roles[3] = {"{\"assignedRole\":\"Reader\",",
                            "{\"assignedRoles\":[\"Contributor\",\"Reader\"],",
                            "{\"assignedRole\":\"Contributor\","};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(r[i].calls, 1);
        if (r[i].status != (i < 3 ? 200 : 204))
            fail_msg("reply %d: %d %s", i, r[i].status, r[i].body);
        const char *tx = nu_header(&r[i], "x-ms-ccf-transaction-id");
        assert_non_null(tx);
        assert_int_equal(txid_seqno(tx), first + (uint64_t)i);
        if (i < 3) {
            snprintf(want, sizeof want, "%s\"userId\":\"%s\"}", roles[i], tu_fp(FP_READER));
            assert_string_equal(r[i].body, want);
        }
        nu_reply_free(&r[i]);
    }
    reply_t g = rq(e, "GET", single, tu_fp(FP_ADMIN), NULL);
    EXPECT(g, 404, "ResourceNotFound"); /* the DELETE came last */
    nu_reply_free(&g);
    env_free(e);
}

static void test_restart(void **state)
{
    env_t *e = env_new();
    add_user(e, FP_READER, "Reader");
    char tx[64];
    snprintf(tx, sizeof tx, "%s", post(e, "collectionId=keep", "persisted"));
    assert_int_equal(cl_node_submit_signature(e->n), CL_OK);
    env_close_node(e);
    assert_int_equal(cl_ledger_close(e->l), CL_OK);
    assert_int_equal(lu_open(e->dir, 0, lu_fs_nosync(), &e->l), CL_OK);
    env_open_node(e); /* bootstrap again: no-op */
    char url[200];
    snprintf(url, sizeof url, "/app/transactions/%s?collectionId=keep", tx);
    reply_t r = rq(e, "GET", url, tu_fp(FP_READER), NULL);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "persisted"));
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/users", tu_fp(FP_ADMIN), NULL);
    json_t *j = body_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "ledgerUsers")), 2);
    json_decref(j);
    nu_reply_free(&r);
    snprintf(url, sizeof url, "/app/transactions/%s/receipt", tx);
    r = rq(e, "GET", url, tu_fp(FP_READER), NULL);
    assert_non_null(strstr(r.body, "\"state\":\"Ready\""));
    nu_reply_free(&r);
    /* Collections counted again: a new write still works, and ids continue. */
    const char *t2 = post(e, "collectionId=keep", "after restart");
    assert_true(txid_seqno(t2) > txid_seqno(tx));
    env_free(e);
}

/* ---- custom roles (§11.5) ------------------------------------------------------------------ */

#define ACT(x) "Microsoft.ConfidentialLedger/ledger/" x

/* PUT/PATCH /app/roles with one role; returns the reply (caller frees). */
static reply_t role_write(env_t *e, const char *method, const char *name, const char *actions)
{
    char b[2048];
    snprintf(b, sizeof b, "[{\"roleName\":\"%s\",\"roleActions\":[%s]}]", name, actions);
    return rq(e, method, "/app/roles?api-version=2024-08-22-preview", tu_fp(FP_ADMIN), b);
}

static void role_create(env_t *e, const char *name, const char *actions)
{
    reply_t r = role_write(e, "PUT", name, actions);
    if (r.status != 200)
        fail_msg("PUT role %s: %d %s", name, r.status, r.body);
    nu_reply_free(&r);
}

static void set_roles(env_t *e, char c, const char *roles_json)
{
    char t[200], b[1024];
    snprintf(t, sizeof t, "/app/ledgerUsers/%s?api-version=2024-08-22-preview", tu_fp(c));
    snprintf(b, sizeof b, "{\"assignedRoles\":%s}", roles_json);
    reply_t r = rq(e, "PATCH", t, tu_fp(FP_ADMIN), b);
    if (r.status != 200)
        fail_msg("PATCH %s: %d %s", t, r.status, r.body);
    nu_reply_free(&r);
}

static int status_of(env_t *e, const char *method, const char *target, char who, const char *body)
{
    reply_t r = rq(e, method, target, tu_fp(who), body);
    int st = r.status;
    if (st == 403 && strcmp(err_code(&r), "AuthorizationFailed") != 0)
        fail_msg("403 without AuthorizationFailed: %s", r.body);
    nu_reply_free(&r);
    return st;
}

static void test_roles_crud(void **state)
{
    env_t *e = env_new();
    uint64_t last = cl_ledger_last_seqno(e->l);
    /* Create: 200, no body, Content-Length 0 (len 0), the write's id. */
    reply_t r = role_write(e, "PUT", "auditor", "\"" ACT("users/read") "\"");
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 0);
    assert_int_equal(txid_seqno(nu_header(&r, "x-ms-ccf-transaction-id")), last + 1);
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/roles?roleName=auditor&api-version=2024-08-22-preview", tu_fp(FP_ADMIN),
           NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body,
                        "[{\"roleActions\":[\"" ACT("users/read") "\"],\"roleName\":\"auditor\"}]");
    assert_non_null(nu_header(&r, "x-ms-ccf-transaction-id"));
    nu_reply_free(&r);
    /* Several roles in one request: one roles-table entry each, one reply with the last id. */
    last = cl_ledger_last_seqno(e->l);
    r = rq(e, "PUT", "/app/roles", tu_fp(FP_ADMIN),
           "[{\"roleName\":\"r1\",\"roleActions\":[\"" ACT(
               "read") "\"]},"
                       "{\"roleName\":\"r2\",\"roleActions\":[\"" ACT("write") "\",\"" ACT(
                           "read") "\"]}]");
    assert_int_equal(r.status, 200);
    assert_int_equal(cl_ledger_last_seqno(e->l), last + 2);
    assert_int_equal(txid_seqno(nu_header(&r, "x-ms-ccf-transaction-id")), last + 2);
    nu_reply_free(&r);
    /* Canonical order, duplicates removed, action strings matched case-insensitively. */
    r = rq(e, "GET", "/app/roles?roleName=r2", tu_fp(FP_ADMIN), NULL);
    assert_string_equal(r.body, "[{\"roleActions\":[\"" ACT("read") "\",\"" ACT(
                                    "write") "\"],\"roleName\":\"r2\"}]");
    nu_reply_free(&r);
    /* Names are case-sensitive: "administrator" is a custom role, "Administrator" built in. */
    role_create(e, "administrator", "\"" ACT("*") "\"");
    r = rq(e, "GET", "/app/roles?roleName=administrator", tu_fp(FP_ADMIN), NULL);
    assert_string_equal(r.body,
                        "[{\"roleActions\":[\"" ACT("*") "\"],\"roleName\":\"administrator\"}]");
    nu_reply_free(&r);
    /* Built-in definitions are shown (read-only). */
    r = rq(e, "GET", "/app/roles?roleName=Reader", tu_fp(FP_ADMIN), NULL);
    assert_string_equal(r.body,
                        "[{\"roleActions\":[\"" ACT("read") "\"],\"roleName\":\"Reader\"}]");
    nu_reply_free(&r);
    /* Patch replaces the action list. */
    last = cl_ledger_last_seqno(e->l);
    r = role_write(e, "PATCH", "auditor",
                   "\"" ACT("read") "\",\"microsoft.confidentialledger/LEDGER/READ\",\"" ACT(
                       "functions/execute") "\"");
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 0);
    assert_int_equal(txid_seqno(nu_header(&r, "x-ms-ccf-transaction-id")), last + 1);
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/roles?roleName=auditor", tu_fp(FP_ADMIN), NULL);
    assert_string_equal(r.body, "[{\"roleActions\":[\"" ACT("read") "\",\"" ACT(
                                    "functions/execute") "\"],\"roleName\":\"auditor\"}]");
    nu_reply_free(&r);

    /* Errors; none writes anything. */
    last = cl_ledger_last_seqno(e->l);
    r = role_write(e, "PUT", "auditor", "\"" ACT("read") "\"");
    EXPECT(r, 400, "InvalidInput");
    assert_non_null(strstr(r.body, "already exists"));
    nu_reply_free(&r);
    r = rq(e, "PUT", "/app/roles", tu_fp(FP_ADMIN),
           "[{\"roleName\":\"fresh\",\"roleActions\":[\"" ACT(
               "read") "\"]},"
                       "{\"roleName\":\"auditor\",\"roleActions\":[\"" ACT("read") "\"]}]");
    EXPECT(r, 400, "InvalidInput");
    nu_reply_free(&r);
    const char *builtins[] = {"Administrator", "Contributor", "Reader"};
    for (size_t i = 0; i < 3; i++) {
        char url[200];
        r = role_write(e, "PUT", builtins[i], "\"" ACT("read") "\"");
        EXPECT(r, 400, "InvalidInput");
        nu_reply_free(&r);
        r = role_write(e, "PATCH", builtins[i], "\"" ACT("read") "\"");
        EXPECT(r, 400, "InvalidInput");
        nu_reply_free(&r);
        snprintf(url, sizeof url, "/app/roles?roleName=%s", builtins[i]);
        r = rq(e, "DELETE", url, tu_fp(FP_ADMIN), NULL);
        EXPECT(r, 400, "InvalidInput");
        nu_reply_free(&r);
    }
    r = role_write(e, "PATCH", "nosuch", "\"" ACT("read") "\"");
    EXPECT(r, 404, "ResourceNotFound");
    nu_reply_free(&r);
    r = rq(e, "PATCH", "/app/roles", tu_fp(FP_ADMIN),
           "[{\"roleName\":\"auditor\",\"roleActions\":[\"" ACT(
               "write") "\"]},"
                        "{\"roleName\":\"nosuch\",\"roleActions\":[\"" ACT("read") "\"]}]");
    EXPECT(r, 404, "ResourceNotFound");
    nu_reply_free(&r);
    r = role_write(e, "PUT", "bad", "\"" ACT("everything") "\"");
    EXPECT(r, 400, "InvalidInput");
    nu_reply_free(&r);
    r = role_write(e, "PATCH", "auditor", "\"Microsoft.ConfidentialLedger/ledger/users\"");
    EXPECT(r, 400, "InvalidInput");
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/roles?roleName=nosuch", tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 404, "ResourceNotFound");
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/roles?roleName=AUDITOR", tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 404, "ResourceNotFound");
    nu_reply_free(&r);
    const char *noname[] = {"/app/roles", "/app/roles?roleName=", "/app/roles?rolename=auditor",
                            "/app/roles?roleName=%01x"};
    for (size_t i = 0; i < sizeof noname / sizeof noname[0]; i++) {
        r = rq(e, "GET", noname[i], tu_fp(FP_ADMIN), NULL);
        EXPECT(r, 400, "InvalidInput");
        nu_reply_free(&r);
        r = rq(e, "DELETE", noname[i], tu_fp(FP_ADMIN), NULL);
        EXPECT(r, 400, "InvalidInput");
        nu_reply_free(&r);
    }
    r = rq(e, "DELETE", "/app/roles?roleName=nosuch", tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 404, "ResourceNotFound");
    nu_reply_free(&r);
    r = rq(e, "POST", "/app/roles", tu_fp(FP_ADMIN), "[]");
    EXPECT(r, 405, "MethodNotAllowed");
    nu_reply_free(&r);
    /* The unchanged role. */
    r = rq(e, "GET", "/app/roles?roleName=auditor", tu_fp(FP_ADMIN), NULL);
    assert_non_null(strstr(r.body, ACT("functions/execute")));
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/roles?roleName=fresh", tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 404, "ResourceNotFound");
    nu_reply_free(&r);
    assert_int_equal(cl_ledger_last_seqno(e->l), last);

    /* Role names: 1..64 characters (not bytes), no control characters. */
    char name[300];
    memset(name, 'n', 64);
    name[64] = 0;
    role_create(e, name, "\"" ACT("read") "\"");
    name[64] = 'n';
    name[65] = 0;
    r = role_write(e, "PUT", name, "\"" ACT("read") "\"");
    EXPECT(r, 400, "InvalidInput");
    nu_reply_free(&r);
    name[0] = 0;
    for (int i = 0; i < 64; i++)
        strcat(name, "\xc3\xa9"); /* é */
    role_create(e, name, "\"" ACT("read") "\"");
    strcat(name, "\xc3\xa9");
    r = role_write(e, "PUT", name, "\"" ACT("read") "\"");
    EXPECT(r, 400, "InvalidInput");
    nu_reply_free(&r);
    r = role_write(e, "PUT", "a\\u0001b", "\"" ACT("read") "\"");
    EXPECT(r, 400, "InvalidInput");
    nu_reply_free(&r);
    r = role_write(e, "PUT", "a\\u0085b", "\"" ACT("read") "\"");
    EXPECT(r, 400, "InvalidInput");
    nu_reply_free(&r);
    r = role_write(e, "PUT", "", "\"" ACT("read") "\"");
    EXPECT(r, 400, "InvalidInput");
    nu_reply_free(&r);
    role_create(e, "with space/and:colon", "\"" ACT("read") "\"");
    r = rq(e, "GET", "/app/roles?roleName=with+space%2Fand%3Acolon", tu_fp(FP_ADMIN), NULL);
    assert_int_equal(r.status, 200);
    nu_reply_free(&r);

    /* Users hold custom roles through the multi-role API; unknown names → 400. */
    set_roles(e, FP_READER, "[\"auditor\",\"Reader\",\"auditor\"]");
    char url[300];
    snprintf(url, sizeof url, "/app/ledgerUsers/%s", tu_fp(FP_READER));
    r = rq(e, "GET", url, tu_fp(FP_ADMIN), NULL);
    char want[400];
    snprintf(want, sizeof want, "{\"assignedRoles\":[\"Reader\",\"auditor\"],\"userId\":\"%s\"}",
             tu_fp(FP_READER));
    assert_string_equal(r.body, want);
    nu_reply_free(&r);
    last = cl_ledger_last_seqno(e->l);
    r = rq(e, "PATCH", url, tu_fp(FP_ADMIN), "{\"assignedRoles\":[\"auditor\",\"nosuch\"]}");
    EXPECT(r, 400, "InvalidInput");
    nu_reply_free(&r);
    r = rq(e, "PATCH", url, tu_fp(FP_ADMIN), "{\"assignedRoles\":[\"AUDITOR\"]}");
    EXPECT(r, 400, "InvalidInput");
    nu_reply_free(&r);
    r = rq(e, "PATCH", url, tu_fp(FP_ADMIN), "{\"assignedRoles\":[\"auditor\",7]}");
    EXPECT(r, 400, "InvalidInput");
    nu_reply_free(&r);
    /* The single-role API accepts built-in names only. */
    snprintf(url, sizeof url, "/app/users/%s", tu_fp(FP_READER));
    r = rq(e, "PATCH", url, tu_fp(FP_ADMIN), "{\"assignedRole\":\"auditor\"}");
    EXPECT(r, 400, "InvalidInput");
    nu_reply_free(&r);
    assert_int_equal(cl_ledger_last_seqno(e->l), last);
    /* A custom-only user is shown as Reader by the single-role API. */
    set_roles(e, FP_CONTRIB, "[\"auditor\"]");
    snprintf(url, sizeof url, "/app/users/%s", tu_fp(FP_CONTRIB));
    r = rq(e, "GET", url, tu_fp(FP_ADMIN), NULL);
    snprintf(want, sizeof want, "{\"assignedRole\":\"Reader\",\"userId\":\"%s\"}",
             tu_fp(FP_CONTRIB));
    assert_string_equal(r.body, want);
    nu_reply_free(&r);

    /* Delete: 200, no body, the write's id; then 404. */
    last = cl_ledger_last_seqno(e->l);
    r = rq(e, "DELETE", "/app/roles?roleName=r1&api-version=2024-08-22-preview", tu_fp(FP_ADMIN),
           NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 0);
    assert_int_equal(txid_seqno(nu_header(&r, "x-ms-ccf-transaction-id")), last + 1);
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/roles?roleName=r1", tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 404, "ResourceNotFound");
    nu_reply_free(&r);
    r = rq(e, "DELETE", "/app/roles?roleName=r1", tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 404, "ResourceNotFound");
    nu_reply_free(&r);
    /* A deleted role cannot be assigned any more. */
    snprintf(url, sizeof url, "/app/ledgerUsers/%s", tu_fp(FP_READER));
    r = rq(e, "PATCH", url, tu_fp(FP_ADMIN), "{\"assignedRoles\":[\"r1\"]}");
    EXPECT(r, 400, "InvalidInput");
    nu_reply_free(&r);

    /* The state machine re-checks what the handler checked (commands racing each other). */
    cl_buf b = CL_BUF_INIT;
    const char *nm[] = {"auditor"};
    const size_t nl[] = {7};
    const char *val[] = {"{\"roleActions\":[\"" ACT("read") "\"]}"};
    const size_t vl[] = {strlen(val[0])};
    void *res = NULL;
    last = cl_ledger_last_seqno(e->l);
    assert_int_equal(cl_cmd_encode_roles(&b, CL_CMD_ROLES_CREATE, 1, nm, nl, val, vl), CL_OK);
    assert_int_equal(cl_node_apply(e->n, 2, 5000, b.data, b.len, &res), CL_OK);
    assert_int_equal(((cl_node_result *)res)->status, CL_EEXIST);
    free(res);
    cl_buf_reset(&b);
    const char *nm2[] = {"gone"};
    const size_t nl2[] = {4};
    assert_int_equal(cl_cmd_encode_roles(&b, CL_CMD_ROLES_REPLACE, 1, nm2, nl2, val, vl), CL_OK);
    assert_int_equal(cl_node_apply(e->n, 2, 5001, b.data, b.len, &res), CL_OK);
    assert_int_equal(((cl_node_result *)res)->status, CL_ENOENT);
    free(res);
    cl_buf_reset(&b);
    char *uv = NULL;
    size_t uvl = 0;
    cl_roleset rs = {0, NULL, 0};
    assert_int_equal(cl_roleset_add(&rs, "gone", 4), CL_OK);
    assert_int_equal(cl_roles_value_encode(&rs, &uv, &uvl), CL_OK);
    cl_roleset_free(&rs);
    assert_int_equal(
        cl_cmd_encode_internal(&b, CL_TABLE_USERS, CL_OP_PUT, 0, "someone", 7, uv, uvl), CL_OK);
    free(uv);
    assert_int_equal(cl_node_apply(e->n, 2, 5002, b.data, b.len, &res), CL_OK);
    assert_int_equal(((cl_node_result *)res)->status, CL_ENOENT);
    free(res);
    cl_buf_reset(&b);
    /* Malformed role commands are fatal: a built-in name, a duplicate, a bad value. */
    const char *bn[] = {"Reader"};
    const size_t bnl[] = {6};
    assert_int_equal(cl_cmd_encode_roles(&b, CL_CMD_ROLES_CREATE, 1, bn, bnl, val, vl), CL_OK);
    assert_int_equal(cl_node_apply(e->n, 2, 5003, b.data, b.len, NULL), CL_EFORMAT);
    cl_buf_reset(&b);
    const char *dn[] = {"dup", "dup"};
    const size_t dnl[] = {3, 3};
    const char *dv[] = {val[0], val[0]};
    const size_t dvl[] = {vl[0], vl[0]};
    assert_int_equal(cl_cmd_encode_roles(&b, CL_CMD_ROLES_CREATE, 2, dn, dnl, dv, dvl), CL_OK);
    assert_int_equal(cl_node_apply(e->n, 2, 5004, b.data, b.len, NULL), CL_EFORMAT);
    cl_buf_reset(&b);
    const char *badv[] = {"{\"roleActions\":[\"x\"]}"};
    const size_t badvl[] = {strlen(badv[0])};
    assert_int_equal(cl_cmd_encode_roles(&b, CL_CMD_ROLES_CREATE, 1, nm2, nl2, badv, badvl), CL_OK);
    assert_int_equal(cl_node_apply(e->n, 2, 5005, b.data, b.len, NULL), CL_EFORMAT);
    cl_buf_reset(&b);
    /* Roles are never written through INTERNAL_WRITE. */
    assert_int_equal(
        cl_cmd_encode_internal(&b, CL_TABLE_ROLES, CL_OP_PUT, 0, "x", 1, val[0], vl[0]), CL_OK);
    assert_int_equal(cl_node_apply(e->n, 2, 5006, b.data, b.len, NULL), CL_EFORMAT);
    cl_buf_free(&b);
    assert_int_equal(cl_ledger_last_seqno(e->l), last);
    env_free(e);
}

#define FP_X 'D'

static void test_roles_authz(void **state)
{
    env_t *e = env_new();
    const char *tx0 = post(e, NULL, "seed");
    char tx[64], txurl[128];
    snprintf(tx, sizeof tx, "%s", tx0);
    snprintf(txurl, sizeof txurl, "/app/transactions/%s", tx);
    assert_int_equal(cl_node_submit_signature(e->n), CL_OK);
    role_create(e, "entryReader", "\"" ACT("read") "\"");
    role_create(e, "userReader", "\"" ACT("users/read") "\"");
    role_create(e, "everything", "\"" ACT("*") "\"");
    role_create(e, "roleReader", "\"" ACT("roles/read") "\"");
    set_roles(e, FP_READER, "[\"entryReader\"]");
    set_roles(e, FP_CONTRIB, "[\"userReader\"]");
    set_roles(e, FP_X, "[\"everything\"]");
    set_roles(e, '9', "[\"roleReader\",\"Reader\"]");
    const char *entry = "{\"contents\":\"x\"}";
    char uurl[200];
    snprintf(uurl, sizeof uurl, "/app/ledgerUsers/%s", tu_fp(FP_READER));
    const char *roledef = "[{\"roleName\":\"newrole\",\"roleActions\":[\"" ACT("read") "\"]}]";

    /* ledger/read only: reads entries, cannot write or manage. */
    assert_int_equal(status_of(e, "GET", txurl, FP_READER, NULL), 200);
    assert_int_equal(status_of(e, "GET", "/app/transactions", FP_READER, NULL), 200);
    assert_int_equal(status_of(e, "GET", "/app/transactions/current", FP_READER, NULL), 200);
    assert_int_equal(status_of(e, "GET", "/app/collections", FP_READER, NULL), 200);
    assert_int_equal(status_of(e, "POST", "/app/transactions", FP_READER, entry), 403);
    assert_int_equal(status_of(e, "GET", "/app/users", FP_READER, NULL), 403);
    assert_int_equal(status_of(e, "GET", "/app/roles?roleName=entryReader", FP_READER, NULL), 403);
    assert_int_equal(status_of(e, "POST", "/app/userDefinedFunctions/f:execute", FP_READER, "{}"),
                     403);
    /* users/read only: lists and reads users, cannot change them or read entries. */
    assert_int_equal(status_of(e, "GET", "/app/users", FP_CONTRIB, NULL), 200);
    assert_int_equal(status_of(e, "GET", "/app/ledgerUsers", FP_CONTRIB, NULL), 200);
    assert_int_equal(status_of(e, "GET", uurl, FP_CONTRIB, NULL), 200);
    assert_int_equal(
        status_of(e, "PATCH", uurl, FP_CONTRIB, "{\"assignedRoles\":[\"Administrator\"]}"), 403);
    assert_int_equal(status_of(e, "DELETE", uurl, FP_CONTRIB, NULL), 403);
    assert_int_equal(
        status_of(e, "PATCH", "/app/users/zz", FP_CONTRIB, "{\"assignedRole\":\"Reader\"}"), 403);
    assert_int_equal(status_of(e, "GET", txurl, FP_CONTRIB, NULL), 403);
    assert_int_equal(status_of(e, "POST", "/app/transactions", FP_CONTRIB, entry), 403);
    /* roles/read (plus Reader): reads roles, cannot write them. */
    assert_int_equal(status_of(e, "GET", "/app/roles?roleName=entryReader", '9', NULL), 200);
    assert_int_equal(status_of(e, "GET", txurl, '9', NULL), 200);
    assert_int_equal(status_of(e, "PUT", "/app/roles", '9', roledef), 403);
    assert_int_equal(status_of(e, "DELETE", "/app/roles?roleName=entryReader", '9', NULL), 403);
    /* The wildcard action grants everything. */
    assert_int_equal(status_of(e, "GET", txurl, FP_X, NULL), 200);
    assert_int_equal(status_of(e, "POST", "/app/transactions", FP_X, entry), 200);
    assert_int_equal(status_of(e, "GET", "/app/users", FP_X, NULL), 200);
    assert_int_equal(status_of(e, "PATCH", "/app/users/zz", FP_X, "{\"assignedRole\":\"Reader\"}"),
                     200);
    assert_int_equal(status_of(e, "DELETE", "/app/users/zz", FP_X, NULL), 204);
    assert_int_equal(status_of(e, "PUT", "/app/roles", FP_X, roledef), 200);
    assert_int_equal(status_of(e, "GET", "/app/roles?roleName=newrole", FP_X, NULL), 200);
    assert_int_equal(status_of(e, "DELETE", "/app/roles?roleName=newrole", FP_X, NULL), 200);
    assert_int_equal(status_of(e, "GET", "/app/userDefinedFunctions", FP_X, NULL), 501);
    assert_int_equal(status_of(e, "POST", "/app/userDefinedFunctions/f:execute", FP_X, "{}"), 501);
    /* Union over roles: entryReader + userReader. */
    set_roles(e, FP_READER, "[\"entryReader\",\"userReader\"]");
    assert_int_equal(status_of(e, "GET", txurl, FP_READER, NULL), 200);
    assert_int_equal(status_of(e, "GET", "/app/users", FP_READER, NULL), 200);
    assert_int_equal(status_of(e, "POST", "/app/transactions", FP_READER, entry), 403);
    /* A patched role changes its holders' rights at once. */
    reply_t r = role_write(e, "PATCH", "entryReader", "\"" ACT("read") "\",\"" ACT("write") "\"");
    assert_int_equal(r.status, 200);
    nu_reply_free(&r);
    assert_int_equal(status_of(e, "POST", "/app/transactions", FP_READER, entry), 200);
    /* Deleting a role that users hold is allowed; they lose its actions but keep the name. */
    r = rq(e, "DELETE", "/app/roles?roleName=entryReader", tu_fp(FP_ADMIN), NULL);
    assert_int_equal(r.status, 200);
    nu_reply_free(&r);
    assert_int_equal(status_of(e, "GET", txurl, FP_READER, NULL), 403);
    assert_int_equal(status_of(e, "POST", "/app/transactions", FP_READER, entry), 403);
    assert_int_equal(status_of(e, "GET", "/app/users", FP_READER, NULL), 200);
    r = rq(e, "GET", uurl, tu_fp(FP_ADMIN), NULL);
    assert_non_null(strstr(r.body, "\"entryReader\""));
    nu_reply_free(&r);
    /* A role of the same name created again applies to the holders of the name (documented). */
    role_create(e, "entryReader", "\"" ACT("read") "\"");
    assert_int_equal(status_of(e, "GET", txurl, FP_READER, NULL), 200);
    assert_int_equal(status_of(e, "POST", "/app/transactions", FP_READER, entry), 403);
    env_free(e);
}

static void test_roles_restart(void **state)
{
    env_t *e = env_new();
    const char *tx0 = post(e, NULL, "kept");
    char txurl[128];
    snprintf(txurl, sizeof txurl, "/app/transactions/%s", tx0);
    assert_int_equal(cl_node_submit_signature(e->n), CL_OK);
    role_create(e, "entryReader", "\"" ACT("read") "\"");
    role_create(e, "userReader", "\"" ACT("users/read") "\"");
    role_create(e, "temp", "\"" ACT("*") "\"");
    reply_t r =
        role_write(e, "PATCH", "userReader", "\"" ACT("users/read") "\",\"" ACT("roles/read") "\"");
    assert_int_equal(r.status, 200);
    nu_reply_free(&r);
    r = rq(e, "DELETE", "/app/roles?roleName=temp", tu_fp(FP_ADMIN), NULL);
    assert_int_equal(r.status, 200);
    nu_reply_free(&r);
    set_roles(e, FP_READER, "[\"entryReader\"]");
    set_roles(e, FP_CONTRIB, "[\"userReader\"]");
    assert_int_equal(cl_node_submit_signature(e->n), CL_OK);
    env_close_node(e);
    assert_int_equal(cl_ledger_close(e->l), CL_OK);
    assert_int_equal(lu_open(e->dir, 0, lu_fs_nosync(), &e->l), CL_OK);
    env_open_node(e);
    r = rq(e, "GET", "/app/roles?roleName=userReader", tu_fp(FP_ADMIN), NULL);
    assert_string_equal(r.body, "[{\"roleActions\":[\"" ACT("users/read") "\",\"" ACT(
                                    "roles/read") "\"],\"roleName\":\"userReader\"}]");
    nu_reply_free(&r);
    r = rq(e, "GET", "/app/roles?roleName=temp", tu_fp(FP_ADMIN), NULL);
    EXPECT(r, 404, "ResourceNotFound");
    nu_reply_free(&r);
    assert_int_equal(status_of(e, "GET", txurl, FP_READER, NULL), 200);
    assert_int_equal(status_of(e, "POST", "/app/transactions", FP_READER, "{\"contents\":\"x\"}"),
                     403);
    assert_int_equal(status_of(e, "GET", "/app/users", FP_CONTRIB, NULL), 200);
    assert_int_equal(status_of(e, "GET", "/app/roles?roleName=entryReader", FP_CONTRIB, NULL), 200);
    assert_int_equal(
        status_of(e, "PATCH", "/app/users/zz", FP_CONTRIB, "{\"assignedRole\":\"Reader\"}"), 403);
    /* Creating an existing role is still refused; a new one works. */
    r = role_write(e, "PUT", "entryReader", "\"" ACT("read") "\"");
    EXPECT(r, 400, "InvalidInput");
    nu_reply_free(&r);
    role_create(e, "temp", "\"" ACT("write") "\"");
    env_free(e);
}

/* ---- hostile inputs ------------------------------------------------------------------------ */

typedef struct {
    env_t *e;
    size_t count;
} hostile_ctx;

static void hostile(hostile_ctx *h, const req_spec *s, int status, const char *code)
{
    reply_t r = run_spec(h->e, s);
    if (r.status != status || (code && strcmp(err_code(&r), code) != 0))
        fail_msg("hostile #%zu %s %s [%.60s]: got %d %s, want %d %s", h->count, s->method,
                 s->target, s->body ? s->body : "", r.status, r.body, status, code ? code : "");
    assert_non_null(nu_header(&r, "x-ms-request-id"));
    assert_null(nu_header(&r, "x-ms-ccf-transaction-id"));
    nu_reply_free(&r);
    h->count++;
}

static void test_hostile(void **state)
{
    env_t *e = env_new();
    add_user(e, FP_READER, "Reader");
    post(e, NULL, "seed");
    assert_int_equal(cl_node_submit_signature(e->n), CL_OK);
    uint64_t last = cl_ledger_last_seqno(e->l);
    hostile_ctx h = {e, 0};
    char A[96];
    snprintf(A, sizeof A, "%s", tu_fp(FP_ADMIN));
    char buf[9000], url[2048];

    /* Bad JSON bodies, with every accepted content type. */
    const char *bad_json[] = {
        "",
        "{",
        "}",
        "[",
        "{\"contents\"",
        "{\"contents\":}",
        "{\"contents\":\"x\"",
        "{\"contents\":\"x\",}",
        "{contents:\"x\"}",
        "{'contents':'x'}",
        "{\"contents\":\"\\x\"}",
        "{\"contents\":\"\\u12\"}",
        "{\"contents\":\"\\ud800\"}",
        "nul",
        "tru",
        "{\"a\":1}{}",
        "{\"contents\":\"x\"} x",
        "{\"contents\":\"x\",\"contents\":\"y\"}",
        "\xff\xfe",
        "{\"contents\":\"\xc3\x28\"}",
        "{\"contents\":\"\xed\xa0\x80\"}",
        "{\"contents\":\"a\x01\"}",
        "{\"contents\":\"\\u0000\"}",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
        "1",
        "\"contents\"",
        "null",
        "true",
        "[]",
        "[{\"contents\":\"x\"}]",
        "0x10",
        "{\"contents\":01}",
        "{\"contents\":1e999999}",
        "{\"contents\":-}",
        "/* c */{\"contents\":\"x\"}",
        " ",
        "\n",
        "{\"contents\":\"x\"}\x00",
    };
    const char *ctypes[] = {NULL, "application/json", "application/json; charset=UTF-8",
                            "application/merge-patch+json", "APPLICATION/JSON"};
    for (size_t i = 0; i < sizeof bad_json / sizeof bad_json[0]; i++) {
        for (size_t c = 0; c < sizeof ctypes / sizeof ctypes[0]; c++) {
            size_t bl = strlen(bad_json[i]) + (i == sizeof bad_json / sizeof bad_json[0] - 1);
            req_spec s = {"POST", "/app/transactions", A, ctypes[c], bad_json[i], bl, NULL, NULL};
            if (bl == 0)
                s.body = NULL;
            hostile(&h, &s, 400, "InvalidInput");
        }
    }
    /* Wrong types / missing contents. */
    const char *wrong[] = {"{\"contents\":1}",
                           "{\"contents\":null}",
                           "{\"contents\":true}",
                           "{\"contents\":[\"x\"]}",
                           "{\"contents\":{\"a\":\"b\"}}",
                           "{\"Contents\":\"x\"}",
                           "{}",
                           "{\"collectionId\":\"x\"}",
                           "{\"contents\":1.5}",
                           "{\"contents\":-0}"};
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        for (size_t c = 0; c < 3; c++) {
            req_spec s = {"POST", "/app/transactions", A, ctypes[c + 1], wrong[i], 0, NULL, NULL};
            hostile(&h, &s, 400, "InvalidInput");
        }
    }
    /* Huge contents. */
    for (size_t n = 8193; n < 8193 + 120; n++) {
        memcpy(buf, "{\"contents\":\"", 13);
        memset(buf + 13, 'q', n);
        memcpy(buf + 13 + n, "\"}", 3);
        req_spec s = {"POST", "/app/transactions", A, "application/json", buf, 0, NULL, NULL};
        hostile(&h, &s, 400, "EntrySizeCapacityExceeded");
    }
    /* Bad transaction ids on the three id routes. */
    const char *bad_ids[] = {"a.b",
                             "2",
                             "2.",
                             ".5",
                             "2.5.1",
                             "0.0",
                             "0.1",
                             "1.0",
                             "02.1",
                             "2.01",
                             "-2.1",
                             "+2.1",
                             "2.-1",
                             " 2.1",
                             "2.1 ",
                             "2..1",
                             "2,1",
                             "2:1",
                             "18446744073709551616.1",
                             "2.18446744073709551616",
                             "99999999999999999999.1",
                             "2.1e3",
                             "0x2.1",
                             "2.1%20",
                             "%202.1",
                             "2.%31a",
                             "2.1%00",
                             "..",
                             ".",
                             "2.1.",
                             "x",
                             "2_1",
                             "２.1",
                             "2.1\t"};
    const char *sfx[] = {"", "/receipt", "/status"};
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        for (size_t k = 0; k < 3; k++) {
            snprintf(url, sizeof url, "/app/transactions/%s%s?api-version=2022-05-13", bad_ids[i],
                     sfx[k]);
            req_spec s = {"GET", url, A, NULL, NULL, 0, NULL, NULL};
            int bad_escape = strstr(bad_ids[i], "%00") != NULL;
            hostile(&h, &s, 400, bad_escape ? "InvalidInput" : "InvalidTransactionId");
        }
        snprintf(url, sizeof url, "/app/transactions?fromTransactionId=%s", bad_ids[i]);
        req_spec s = {"GET", url, A, NULL, NULL, 0, NULL, NULL};
        int esc = strstr(bad_ids[i], "%00") != NULL;
        /* In a query, '+' decodes to a space: still not an id. */
        hostile(&h, &s, 400, esc ? "InvalidInput" : "InvalidTransactionId");
    }
    /* Malformed percent-encoding in path and query, on several routes. */
    const char *bad_esc[] = {"%",   "%4",  "%G1", "%1G", "%%",    "%00", "a%0",
                             "%zz", "%-1", "%+1", "x%",  "%4%41", "%0%"};
    const char *bases[][2] = {{"/app/transactions/", ""}, {"/app/users/", ""},
                              {"/app/ledgerUsers/", ""},  {"/app/transactions/", "/receipt"},
                              {"/ledgerIdentity/", ""},   {"/app/", ""}};
    for (size_t i = 0; i < sizeof bad_esc / sizeof bad_esc[0]; i++) {
        for (size_t b = 0; b < sizeof bases / sizeof bases[0]; b++) {
            snprintf(url, sizeof url, "%s%s%s", bases[b][0], bad_esc[i], bases[b][1]);
            req_spec s = {"GET", url, A, NULL, NULL, 0, NULL, NULL};
            hostile(&h, &s, 400, "InvalidInput");
        }
        const char *qs[][2] = {
            {"collectionId=", ""}, {"", "=1"}, {"api-version=", ""}, {"fromTransactionId=", ""}};
        for (size_t q = 0; q < 4; q++) {
            char qq[64];
            snprintf(qq, sizeof qq, "%s%s%s", qs[q][0], bad_esc[i], qs[q][1]);
            snprintf(url, sizeof url, "/app/transactions?%s", qq);
            req_spec s = {"GET", url, A, NULL, NULL, 0, NULL, NULL};
            hostile(&h, &s, 400, "InvalidInput");
            snprintf(url, sizeof url, "/app/transactions?%s", qq);
            req_spec s2 = {"POST", url,  A,   "application/json", "{\"contents\":\"x\"}",
                           0,      NULL, NULL};
            hostile(&h, &s2, 400, "InvalidInput");
        }
    }
    /* Wrong content types. */
    const char *bad_ct[] = {"text/plain",
                            "application/xml",
                            "application/msgpack",
                            "application/jsonx",
                            "application/json-patch+json",
                            "multipart/form-data; boundary=x",
                            "application/x-www-form-urlencoded",
                            "json",
                            "application/",
                            "/json",
                            "application json",
                            "*/*",
                            "text/json",
                            "application/javascript",
                            "application/octet-stream",
                            "x",
                            "application/merge-patch",
                            "application/json5",
                            ";",
                            "charset=utf-8"};
    for (size_t i = 0; i < sizeof bad_ct / sizeof bad_ct[0]; i++) {
        req_spec s = {"POST", "/app/transactions", A, bad_ct[i], "{\"contents\":\"x\"}", 0, NULL,
                      NULL};
        hostile(&h, &s, 415, "UnsupportedContentType");
        req_spec s2 = {
            "PATCH", "/app/users/zz", A, bad_ct[i], "{\"assignedRole\":\"Reader\"}", 0, NULL, NULL};
        hostile(&h, &s2, 415, "UnsupportedContentType");
    }
    /* Control characters in collection ids (writes and reads). */
    for (int c = 1; c < 0x20; c++) {
        snprintf(url, sizeof url, "/app/transactions?collectionId=a%%%02X", c);
        req_spec s = {"POST", url, A, "application/json", "{\"contents\":\"x\"}", 0, NULL, NULL};
        hostile(&h, &s, 400, "InvalidInput");
        req_spec s2 = {"GET", url, A, NULL, NULL, 0, NULL, NULL};
        hostile(&h, &s2, 400, "InvalidInput");
    }
    {
        req_spec s = {"POST",
                      "/app/transactions?collectionId=%7F",
                      A,
                      "application/json",
                      "{\"contents\":\"x\"}",
                      0,
                      NULL,
                      NULL};
        hostile(&h, &s, 400, "InvalidInput");
        req_spec s2 = {"POST",
                       "/app/transactions?collectionId=%C3%28",
                       A,
                       "application/json",
                       "{\"contents\":\"x\"}",
                       0,
                       NULL,
                       NULL};
        hostile(&h, &s2, 400, "InvalidInput");
    }
    /* Over-long new collection ids. */
    for (size_t n = 257; n < 257 + 60; n++) {
        char q[400] = "/app/transactions?collectionId=";
        size_t at = strlen(q);
        memset(q + at, 'c', n);
        q[at + n] = 0;
        req_spec s = {"POST", q, A, "application/json", "{\"contents\":\"x\"}", 0, NULL, NULL};
        hostile(&h, &s, 400, "CollectionIdTooLong");
    }
    /* Users: bad bodies and bad ids, both APIs. */
    const char *bad_user_bodies[] = {"{\"assignedRole\":\"Owner\"}",
                                     "{\"assignedRole\":\"reader\"}",
                                     "{\"assignedRole\":1}",
                                     "{\"assignedRole\":null}",
                                     "{\"assignedRole\":[\"Reader\"]}",
                                     "{}",
                                     "\"Reader\"",
                                     "[]",
                                     "{\"assignedRole\":\"\"}",
                                     "{\"assignedRole\":\"Reader \"}",
                                     "{\"assignedRoles\":[\"Reader\"]}",
                                     "{\"assignedRole\":\"Administrator\\u0000\"}"};
    for (size_t i = 0; i < sizeof bad_user_bodies / sizeof bad_user_bodies[0]; i++) {
        req_spec s = {"PATCH",
                      "/app/users/someone",
                      A,
                      "application/merge-patch+json",
                      bad_user_bodies[i],
                      0,
                      NULL,
                      NULL};
        hostile(&h, &s, 400, "InvalidInput");
    }
    const char *bad_multi[] = {"{\"assignedRoles\":[]}",
                               "{\"assignedRoles\":\"Reader\"}",
                               "{\"assignedRoles\":[\"Owner\"]}",
                               "{\"assignedRoles\":[1]}",
                               "{\"assignedRoles\":[\"Reader\",null]}",
                               "{\"assignedRole\":\"Reader\"}",
                               "{\"assignedRoles\":null}",
                               "{}",
                               "[\"Reader\"]",
                               "{\"assignedRoles\":[[\"Reader\"]]}"};
    for (size_t i = 0; i < sizeof bad_multi / sizeof bad_multi[0]; i++) {
        req_spec s = {
            "PATCH", "/app/ledgerUsers/someone", A, "application/json", bad_multi[i], 0, NULL,
            NULL};
        hostile(&h, &s, 400, "InvalidInput");
    }
    for (int c = 1; c < 0x20; c++) {
        const char *meth[] = {"GET", "PATCH", "DELETE"};
        for (int m = 0; m < 3; m++) {
            snprintf(url, sizeof url, "/app/%s/u%%%02X", c % 2 ? "users" : "ledgerUsers", c);
            req_spec s = {meth[m],
                          url,
                          A,
                          m == 1 ? "application/json" : NULL,
                          m == 1 ? "{\"assignedRole\":\"Reader\"}" : NULL,
                          0,
                          NULL,
                          NULL};
            hostile(&h, &s, 400, "InvalidInput");
        }
    }
    {
        char longid[400] = "/app/users/";
        memset(longid + 11, 'u', 257);
        longid[11 + 257] = 0;
        req_spec s = {"PATCH", longid, A,   "application/json", "{\"assignedRole\":\"Reader\"}",
                      0,       NULL,   NULL};
        hostile(&h, &s, 400, "InvalidInput");
    }
    /* Unknown paths, wrong methods, auth failures. */
    const char *unknown[] = {"/",
                             "/app",
                             "/app/",
                             "/app/transactions/",
                             "/app//transactions",
                             "/app/transactions/2.1/receipt/x",
                             "/app/Transactions",
                             "/APP/transactions",
                             "/app/users/",
                             "/app/users/a/b",
                             "/ledgerIdentity",
                             "/ledgerIdentity/",
                             "/node",
                             "/node/ready/x",
                             "/app/transactions/2.1/proof",
                             "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r",
                             "/app/collections/x",
                             "/app/enclaveQuotes/x",
                             "/app/governance",
                             "/app/roles/x",
                             "/app/userDefinedFunctions/:execute/x"};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        req_spec s = {"GET", unknown[i], A, NULL, NULL, 0, NULL, NULL};
        hostile(&h, &s, 404, "ResourceNotFound");
        req_spec s2 = {"POST", unknown[i], A,   "application/json", "{\"contents\":\"x\"}",
                       0,      NULL,       NULL};
        hostile(&h, &s2, 404, "ResourceNotFound");
    }
    const char *methods[] = {"PUT", "DELETE", "TRACE", "CONNECT", "PROPFIND"};
    const char *known[] = {
        "/app/transactions",     "/app/collections",       "/app/transactions/current",
        "/app/transactions/2.5", "/app/enclaveQuotes",     "/ledgerIdentity/testledger",
        "/node/ready",           "/app/governance/members"};
    for (size_t m = 0; m < sizeof methods / sizeof methods[0]; m++) {
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) {
            req_spec s = {methods[m], known[k], A, NULL, NULL, 0, NULL, NULL};
            hostile(&h, &s, 405, "MethodNotAllowed");
        }
    }
    for (int i = 0; i < 40; i++) {
        char who[96];
        snprintf(who, sizeof who, "%s", tu_fp("0123456789DEF"[i % 13]));
        if (i % 13 == 11)
            continue; /* 'E' is unknown too but keep distinct callers */
        req_spec s = {"POST",
                      "/app/transactions",
                      i % 2 ? who : NULL,
                      "application/json",
                      "{\"contents\":\"x\"}",
                      0,
                      NULL,
                      NULL};
        if (strcmp(who, tu_fp(FP_READER)) == 0 || strcmp(who, tu_fp(FP_ADMIN)) == 0)
            continue;
        hostile(&h, &s, 401, "InvalidAuthenticationInfo");
        req_spec s2 = {"POST",
                       "/app/transactions",
                       tu_fp(FP_READER),
                       "application/json",
                       "{\"contents\":\"x\"}",
                       0,
                       NULL,
                       NULL};
        hostile(&h, &s2, 403, "AuthorizationFailed");
        req_spec s3 = {"PATCH",
                       "/app/users/victim",
                       tu_fp(FP_READER),
                       "application/json",
                       "{\"assignedRole\":\"Administrator\"}",
                       0,
                       NULL,
                       NULL};
        hostile(&h, &s3, 403, "AuthorizationFailed");
    }
    /* Garbage fingerprints (not a registered user): 401. */
    const char *fps[] = {"x", "AA", "AA:AA", "aa:aa:aa", " ", "::::", "ZZ"};
    for (size_t i = 0; i < sizeof fps / sizeof fps[0]; i++) {
        req_spec s = {"GET", "/app/transactions", fps[i], NULL, NULL, 0, NULL, NULL};
        hostile(&h, &s, 401, "InvalidAuthenticationInfo");
    }
    /* Deterministic byte mutations of a user-write body that break its JSON. */
    const char *tmpl = "{\"contents\":\"abc\"}";
    size_t tl = strlen(tmpl);
    const char mut[] = {'{', '}', '[', ']', ',', ':', '\\', '\x01', '\x7f'};
    for (size_t pos = 0; pos < tl; pos++) {
        for (size_t m = 0; m < sizeof mut; m++) {
            memcpy(buf, tmpl, tl + 1);
            if (buf[pos] == mut[m])
                continue;
            /* Inside the contents value, a structural character is still a string. */
            if (pos >= 13 && pos <= 15 && mut[m] != '\\' && mut[m] != '\x01')
                continue;
            buf[pos] = mut[m];
            json_t *probe = json_loads(buf, JSON_REJECT_DUPLICATES, NULL);
            int ok = probe && json_is_string(json_object_get(probe, "contents"));
            json_decref(probe);
            if (ok)
                continue;
            req_spec s = {"POST", "/app/transactions", A, "application/json", buf, 0, NULL, NULL};
            hostile(&h, &s, 400, "InvalidInput");
        }
        /* Truncations. */
        memcpy(buf, tmpl, pos);
        buf[pos] = 0;
        req_spec s = {"POST", "/app/transactions", A, "application/json", pos ? buf : NULL, 0, NULL,
                      NULL};
        hostile(&h, &s, 400, "InvalidInput");
    }
    /* Body too large, even for a GET. */
    {
        size_t bl = (1u << 20) + 1;
        char *big = malloc(bl + 1);
        memset(big, 'a', bl);
        big[bl] = 0;
        req_spec s = {"POST", "/app/transactions", A, "application/json", big, 0, NULL, NULL};
        hostile(&h, &s, 413, "RequestBodyTooLarge");
        req_spec s2 = {"PATCH", "/app/users/x", A, "application/json", big, 0, NULL, NULL};
        hostile(&h, &s2, 413, "RequestBodyTooLarge");
        free(big);
    }
    /* Too many query parameters. */
    {
        char q[2048] = "/app/transactions?";
        for (int i = 0; i < 70; i++)
            strcat(q, "a=1&");
        req_spec s = {"GET", q, A, NULL, NULL, 0, NULL, NULL};
        hostile(&h, &s, 400, "InvalidInput");
    }
    /* Client request ids that are not echoed. */
    {
        char longid[300];
        memset(longid, 'r', 257);
        longid[257] = 0;
        const char *bad_crid[] = {longid, "with space", "tab\tid", "", "\x80\x81"};
        for (size_t i = 0; i < sizeof bad_crid / sizeof bad_crid[0]; i++) {
            req_spec s = {"GET", "/app/nothing",           A,          NULL, NULL,
                          0,     "x-ms-client-request-id", bad_crid[i]};
            reply_t r = run_spec(e, &s);
            EXPECT(r, 404, "ResourceNotFound");
            assert_null(nu_header(&r, "x-ms-client-request-id"));
            nu_reply_free(&r);
            h.count++;
        }
    }
    /* /app/roles: bodies that are not an array of well-formed roles, PUT and PATCH. */
    {
        const char *rb[] = {
            "{}",
            "{\"roleName\":\"a\",\"roleActions\":[\"" ACT("read") "\"]}",
            "\"roles\"",
            "1",
            "null",
            "true",
            "[]",
            "[1]",
            "[\"a\"]",
            "[null]",
            "[[]]",
            "[{}]",
            "[{\"roleName\":\"a\"}]",
            "[{\"roleActions\":[\"" ACT("read") "\"]}]",
            "[{\"roleName\":1,\"roleActions\":[\"" ACT("read") "\"]}]",
            "[{\"roleName\":null,\"roleActions\":[\"" ACT("read") "\"]}]",
            "[{\"roleName\":[\"a\"],\"roleActions\":[\"" ACT("read") "\"]}]",
            "[{\"roleName\":\"a\",\"roleActions\":\"" ACT("read") "\"}]",
            "[{\"roleName\":\"a\",\"roleActions\":null}]",
            "[{\"roleName\":\"a\",\"roleActions\":{}}]",
            "[{\"roleName\":\"a\",\"roleActions\":[]}]",
            "[{\"roleName\":\"a\",\"roleActions\":[1]}]",
            "[{\"roleName\":\"a\",\"roleActions\":[null]}]",
            "[{\"roleName\":\"a\",\"roleActions\":[[\"" ACT("read") "\"]]}]",
            "[{\"roleName\":\"a\",\"roleActions\":[\"\"]}]",
            "[{\"roleName\":\"a\",\"roleActions\":[\"read\"]}]",
            "[{\"roleName\":\"a\",\"roleActions\":[\"" ACT("read ") "\"]}]",
            "[{\"roleName\":\"a\",\"roleActions\":[\"" ACT("") "\"]}]",
            "[{\"roleName\":\"a\",\"roleActions\":[\"" ACT("**") "\"]}]",
            "[{\"roleName\":\"a\",\"roleActions\":[\"Microsoft.ConfidentialLedger/*\"]}]",
            "[{\"roleName\":\"a\",\"roleActions\":[\"" ACT("read") "\",\"x\"]}]",
            "[{\"roleName\":\"\",\"roleActions\":[\"" ACT("read") "\"]}]",
            "[{\"roleName\":\"a\\u0000\",\"roleActions\":[\"" ACT("read") "\"]}]",
            "[{\"roleName\":\"a\\tb\",\"roleActions\":[\"" ACT("read") "\"]}]",
            "[{\"roleName\":\"a\\u007f\",\"roleActions\":[\"" ACT("read") "\"]}]",
            "[{\"roleName\":\"Reader\",\"roleActions\":[\"" ACT("read") "\"]}]",
            "[{\"roleName\":\"Administrator\",\"roleActions\":[\"" ACT("*") "\"]}]",
            "[{\"roleName\":\"a\",\"roleActions\":[\"" ACT(
                "read") "\"]},"
                        "{\"roleName\":\"a\",\"roleActions\":[\"" ACT("read") "\"]}]",
            "[{\"roleName\":\"a\",\"roleActions\":[\"" ACT("read") "\"]},7]",
            "[{\"roleName\":\"a\",\"roleActions\":[\"" ACT("read") "\"]}",
            "[{\"roleName\":\"a\",\"roleActions\":[\"" ACT("read") "\"]}]]",
            "[{\"roleName\":\"a\",\"roleName\":\"b\",\"roleActions\":[\"" ACT("read") "\"]}]",
        };
        for (size_t i = 0; i < sizeof rb / sizeof rb[0]; i++) {
            for (int m = 0; m < 2; m++) {
                req_spec s = {
                    m ? "PATCH" : "PUT", "/app/roles", A, "application/json", rb[i], 0, NULL, NULL};
                hostile(&h, &s, 400, "InvalidInput");
            }
        }
        /* Huge arrays: too many roles, too many actions, long names. */
        char *big = malloc(1u << 20);
        for (int m = 0; m < 2; m++) {
            const char *meth = m ? "PATCH" : "PUT";
            size_t k = 0;
            k += (size_t)sprintf(big + k, "[");
            for (int i = 0; i < 101; i++)
                k += (size_t)sprintf(
                    big + k, "%s{\"roleName\":\"h%d\",\"roleActions\":[\"" ACT("read") "\"]}",
                    i ? "," : "", i);
            sprintf(big + k, "]");
            req_spec s = {meth, "/app/roles", A, "application/json", big, 0, NULL, NULL};
            hostile(&h, &s, 400, "InvalidInput");
            k = (size_t)sprintf(big, "[");
            for (int i = 0; i < 20000; i++)
                k += (size_t)sprintf(big + k, "%s1", i ? "," : "");
            sprintf(big + k, "]");
            hostile(&h, &s, 400, "InvalidInput");
            k = (size_t)sprintf(big, "[{\"roleName\":\"a\",\"roleActions\":[");
            for (int i = 0; i < 65; i++)
                k += (size_t)sprintf(big + k, "%s\"" ACT("read") "\"", i ? "," : "");
            sprintf(big + k, "]}]");
            hostile(&h, &s, 400, "InvalidInput");
            k = (size_t)sprintf(big, "[{\"roleName\":\"");
            memset(big + k, 'n', 5000);
            k += 5000;
            sprintf(big + k, "\",\"roleActions\":[\"" ACT("read") "\"]}]");
            hostile(&h, &s, 400, "InvalidInput");
            k = (size_t)sprintf(big, "[");
            for (int i = 0; i < 200; i++)
                k += (size_t)sprintf(big + k, "[");
            hostile(&h, &s, 400, "InvalidInput");
            /* Over the body limit. */
            memset(big, ' ', (1u << 20) - 1);
            big[(1u << 20) - 1] = 0;
            req_spec s2 = {meth, "/app/roles",   A,    "application/json",
                           big,  (1u << 20) - 1, NULL, NULL};
            hostile(&h, &s2, 400, "InvalidInput");
        }
        free(big);
        {
            size_t bl = (1u << 20) + 1;
            char *huge = malloc(bl + 1);
            memset(huge, '[', bl);
            huge[bl] = 0;
            req_spec s = {"PUT", "/app/roles", A, "application/json", huge, 0, NULL, NULL};
            hostile(&h, &s, 413, "RequestBodyTooLarge");
            free(huge);
        }
        /* Other content types. */
        req_spec ct = {"PUT",
                       "/app/roles",
                       A,
                       "text/plain",
                       "[{\"roleName\":\"a\",\"roleActions\":[\"" ACT("read") "\"]}]",
                       0,
                       NULL,
                       NULL};
        hostile(&h, &ct, 415, "UnsupportedContentType");
        /* Bad roleName query values for GET and DELETE. */
        const char *rq_bad[] = {
            "/app/roles",
            "/app/roles?roleName",
            "/app/roles?roleName=",
            "/app/roles?RoleName=a",
            "/app/roles?roleName=a%01",
            "/app/roles?roleName=%7F",
            "/app/roles?roleName=%C2%85",
            "/app/roles?roleName=%FF",
            "/app/roles?roleName=%C3",
            "/app/roles?roleName=a%00",
            "/app/roles?roleName=%",
            "/app/roles?roleName=%G1",
            "/app/roles?roleName="
            "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"};
        for (size_t i = 0; i < sizeof rq_bad / sizeof rq_bad[0]; i++) {
            req_spec g = {"GET", rq_bad[i], A, NULL, NULL, 0, NULL, NULL};
            hostile(&h, &g, 400, "InvalidInput");
            req_spec d = {"DELETE", rq_bad[i], A, NULL, NULL, 0, NULL, NULL};
            hostile(&h, &d, 400, "InvalidInput");
        }
        req_spec d = {"DELETE", "/app/roles?roleName=Reader", A, NULL, NULL, 0, NULL, NULL};
        hostile(&h, &d, 400, "InvalidInput");
        /* Role names that do not exist, in users. */
        req_spec u = {"PATCH",
                      "/app/ledgerUsers/someone",
                      A,
                      "application/json",
                      "{\"assignedRoles\":[\"Reader\",\"ghost\"]}",
                      0,
                      NULL,
                      NULL};
        hostile(&h, &u, 400, "InvalidInput");
    }
    if (h.count < 1000)
        fail_msg("only %zu hostile inputs", h.count);
    print_message("hostile inputs: %zu\n", h.count);
    assert_int_equal(cl_ledger_last_seqno(e->l), last);
    env_free(e);
}

/* ---- codec, URL helpers, state machine ----------------------------------------------------- */

static void test_command_codec(void **state)
{
    cl_buf b = CL_BUF_INIT;
    uint8_t key[32];
    memset(key, 7, 32);
    assert_int_equal(cl_cmd_encode_user_write(&b, "c", 1, (const uint8_t *)"xyz", 3, key), CL_OK);
    cl_cmd c;
    assert_int_equal(cl_cmd_decode(b.data, b.len, &c), CL_OK);
    assert_int_equal(c.type, CL_CMD_USER_WRITE);
    assert_int_equal(c.contents_len, 3);
    assert_memory_equal(c.claims_key, key, 32);
    for (size_t n = 0; n < b.len; n++)
        assert_int_equal(cl_cmd_decode(b.data, n, &c), CL_EFORMAT);
    assert_int_equal(cl_buf_u8(&b, 0), CL_OK);
    assert_int_equal(cl_cmd_decode(b.data, b.len, &c), CL_EFORMAT);
    cl_buf_reset(&b);
    assert_int_equal(cl_cmd_encode_internal(&b, CL_TABLE_USERS, CL_OP_PUT, 0, "k", 1, "v", 1),
                     CL_OK);
    assert_int_equal(cl_cmd_decode(b.data, b.len, &c), CL_OK);
    assert_int_equal(c.table, CL_TABLE_USERS);
    b.data[4] = 0x80; /* unknown flag */
    assert_int_equal(cl_cmd_decode(b.data, b.len, &c), CL_EFORMAT);
    cl_buf_reset(&b);
    assert_int_equal(cl_cmd_encode_sign(&b), CL_OK);
    assert_int_equal(cl_cmd_decode(b.data, b.len, &c), CL_OK);
    b.data[0] = 2;
    assert_int_equal(cl_cmd_decode(b.data, b.len, &c), CL_EFORMAT);
    b.data[0] = 1;
    b.data[1] = 9;
    assert_int_equal(cl_cmd_decode(b.data, b.len, &c), CL_EFORMAT);
    /* ROLES: round trip, every truncation, trailing byte, bad mode and count. */
    cl_buf_reset(&b);
    const char *rn[] = {"r1", "role two"};
    const size_t rnl[] = {2, 8};
    const char *rv[] = {"{\"roleActions\":[]}", "v"};
    const size_t rvl[] = {17, 1};
    assert_int_equal(cl_cmd_encode_roles(&b, CL_CMD_ROLES_REPLACE, 2, rn, rnl, rv, rvl), CL_OK);
    assert_int_equal(cl_cmd_decode(b.data, b.len, &c), CL_OK);
    assert_int_equal(c.type, CL_CMD_ROLES);
    assert_int_equal(c.roles_mode, CL_CMD_ROLES_REPLACE);
    assert_int_equal(c.roles_count, 2);
    cl_cursor it;
    cl_cursor_init(&it, c.roles, c.roles_len);
    for (size_t i = 0; i < 2; i++) {
        const char *nm, *v;
        size_t nl, vl;
        assert_int_equal(cl_cmd_roles_next(&it, &nm, &nl, &v, &vl), CL_OK);
        assert_int_equal(nl, rnl[i]);
        assert_memory_equal(nm, rn[i], nl);
        assert_int_equal(vl, rvl[i]);
        assert_memory_equal(v, rv[i], vl);
    }
    assert_int_equal(cl_cursor_left(&it), 0);
    for (size_t n = 0; n < b.len; n++)
        assert_int_equal(cl_cmd_decode(b.data, n, &c), CL_EFORMAT);
    assert_int_equal(cl_buf_u8(&b, 0), CL_OK);
    assert_int_equal(cl_cmd_decode(b.data, b.len, &c), CL_EFORMAT);
    b.len--;
    b.data[2] = 0; /* mode */
    assert_int_equal(cl_cmd_decode(b.data, b.len, &c), CL_EFORMAT);
    b.data[2] = 4;
    assert_int_equal(cl_cmd_decode(b.data, b.len, &c), CL_EFORMAT);
    b.data[2] = CL_CMD_ROLES_CREATE;
    b.data[3] = 0; /* count 0 */
    b.data[4] = 0;
    assert_int_equal(cl_cmd_decode(b.data, b.len, &c), CL_EFORMAT);
    cl_buf_reset(&b);
    assert_int_equal(cl_cmd_encode_roles(&b, CL_CMD_ROLES_CREATE, 0, rn, rnl, rv, rvl),
                     CL_EOVERFLOW);
    assert_int_equal(cl_cmd_encode_roles(&b, 9, 1, rn, rnl, rv, rvl), CL_EINVAL);
    assert_int_equal(b.len, 0);
    cl_buf_reset(&b);
    assert_int_equal(cl_cmd_encode_user_write(&b, "", 0, (const uint8_t *)"x", 1, key),
                     CL_EOVERFLOW);
    assert_int_equal(b.len, 0);
    cl_buf_free(&b);

    /* The state machine refuses malformed commands and engine-managed tables. */
    env_t *e = env_new();
    uint64_t last = cl_ledger_last_seqno(e->l);
    void *res = (void *)1;
    const uint8_t junk[] = {1, 77};
    assert_int_equal(cl_node_apply(e->n, 2, 1, junk, sizeof junk, &res), CL_EFORMAT);
    assert_null(res);
    assert_int_equal(cl_node_apply(e->n, 2, 1, junk, 0, NULL), CL_EFORMAT);
    assert_int_equal(cl_cmd_encode_internal(&b, CL_TABLE_SECRETS, CL_OP_PUT, 0, "k", 1, "v", 1),
                     CL_OK);
    assert_int_equal(cl_node_apply(e->n, 2, 1, b.data, b.len, NULL), CL_EFORMAT);
    cl_buf_reset(&b);
    assert_int_equal(
        cl_cmd_encode_internal(&b, CL_TABLE_USERS, CL_OP_PUT, 0, "k", 1, "{\"x\":1}", 7), CL_OK);
    assert_int_equal(cl_node_apply(e->n, 2, 1, b.data, b.len, NULL), CL_EFORMAT);
    cl_buf_reset(&b);
    assert_int_equal(cl_cmd_encode_internal(&b, CL_TABLE_USERS, CL_OP_PUT, 0, "a\x01", 2,
                                            "{\"assignedRoles\":[\"Reader\"]}", 29),
                     CL_OK);
    assert_int_equal(cl_node_apply(e->n, 2, 1, b.data, b.len, NULL), CL_EFORMAT);
    assert_int_equal(cl_ledger_last_seqno(e->l), last);
    cl_buf_free(&b);
    env_free(e);
}

static void test_url(void **state)
{
    char *d;
    size_t n;
    assert_int_equal(cl_url_decode("a%3Ab+c%2b", 10, 1, &d, &n), CL_OK);
    assert_string_equal(d, "a:b c+");
    free(d);
    assert_int_equal(cl_url_decode("a+b", 3, 0, &d, &n), CL_OK);
    assert_string_equal(d, "a+b");
    free(d);
    const char *bad[] = {"%", "%4", "%G1", "%1g", "%00", "a%"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(cl_url_decode(bad[i], strlen(bad[i]), 1, &d, &n), CL_EINVAL);
    cl_url_path p;
    assert_int_equal(cl_url_path_parse("/app/users/a%2Fb", &p), CL_OK);
    assert_int_equal(p.n, 3);
    assert_string_equal(p.seg[2], "a/b");
    cl_url_path_free(&p);
    assert_int_equal(cl_url_path_parse("app", &p), CL_EINVAL);
    /* every segment decoded into one block: empty segments, escapes, more than the limit */
    assert_int_equal(cl_url_path_parse("/", &p), CL_OK);
    assert_int_equal(p.n, 1);
    assert_string_equal(p.seg[0], "");
    cl_url_path_free(&p);
    assert_int_equal(cl_url_path_parse("//%41%42//c", &p), CL_OK);
    assert_int_equal(p.n, 4);
    assert_string_equal(p.seg[0], "");
    assert_string_equal(p.seg[1], "AB");
    assert_int_equal(p.len[1], 2);
    assert_string_equal(p.seg[2], "");
    assert_string_equal(p.seg[3], "c");
    cl_url_path_free(&p);
    char longp[256] = "";
    for (int i = 0; i < CL_URL_MAX_SEGMENTS + 4; i++)
        strcat(longp, "/s%7E");
    assert_int_equal(cl_url_path_parse(longp, &p), CL_OK);
    assert_int_equal(p.n, CL_URL_MAX_SEGMENTS);
    assert_true(p.too_many);
    assert_string_equal(p.seg[CL_URL_MAX_SEGMENTS - 1], "s~");
    cl_url_path_free(&p);
    strcat(longp, "/%4"); /* a bad escape past the limit is still a 400 */
    assert_int_equal(cl_url_path_parse(longp, &p), CL_EINVAL);
    assert_null(p.arena);
    cl_url_query q;
    /* names without '=' (their value is ""), empty names and values, escapes, '+' */
    assert_int_equal(cl_url_query_parse("a&b&c", &q), CL_OK);
    assert_int_equal(q.n, 3);
    assert_string_equal(cl_url_query_get(&q, "c", NULL), "");
    assert_string_equal(q.name[0], "a");
    assert_string_equal(q.name[1], "b");
    cl_url_query_free(&q);
    size_t vl = 9;
    assert_int_equal(cl_url_query_parse("=&a=&=b&%41+%42=x+y%21&k", &q), CL_OK);
    assert_int_equal(q.n, 5);
    assert_string_equal(q.name[0], "");
    assert_string_equal(q.value[0], "");
    assert_string_equal(cl_url_query_get(&q, "a", &vl), "");
    assert_int_equal(vl, 0);
    assert_string_equal(q.value[2], "b");
    assert_string_equal(cl_url_query_get(&q, "A B", &vl), "x y!");
    assert_int_equal(vl, 4);
    assert_string_equal(cl_url_query_get(&q, "k", &vl), "");
    assert_int_equal(vl, 0);
    cl_url_query_free(&q);
    assert_int_equal(cl_url_query_parse("", &q), CL_OK);
    assert_int_equal(q.n, 0);
    assert_int_equal(cl_url_query_parse("a=1&b=%G0", &q), CL_EINVAL);
    assert_int_equal(q.n, 0);
    assert_null(q.arena);
    assert_int_equal(cl_url_query_parse("api-version=1&&x&api-version=2&c=%41", &q), CL_OK);
    assert_string_equal(cl_url_query_get(&q, "api-version", NULL), "2");
    assert_string_equal(cl_url_query_get(&q, "x", NULL), "");
    assert_string_equal(cl_url_query_get(&q, "c", NULL), "A");
    assert_null(cl_url_query_get(&q, "d", NULL));
    cl_url_query_free(&q);
    cl_buf b = CL_BUF_INIT;
    assert_int_equal(cl_url_encode(&b, "subledger:0 a/~", 15), CL_OK);
    assert_int_equal(b.len, strlen("subledger%3A0%20a%2F~"));
    assert_memory_equal(b.data, "subledger%3A0%20a%2F~", b.len);
    cl_buf_free(&b);
    uint64_t v, s;
    assert_int_equal(cl_txid_parse("2.18446744073709551615", 22, &v, &s), CL_OK);
    assert_true(s == UINT64_MAX);
    assert_int_equal(cl_txid_parse("2.18446744073709551616", 22, &v, &s), CL_EINVAL);
    char out[64];
    cl_txid_format(2, 3172, out, sizeof out);
    assert_string_equal(out, "2.3172");
    cl_txid_format(UINT64_MAX, UINT64_MAX, out, sizeof out);
    assert_string_equal(out, "18446744073709551615.18446744073709551615");
    assert_int_equal(strlen(out), CL_TXID_MAX);
    cl_txid_format(12, 345, out, 4); /* cut short like snprintf */
    assert_string_equal(out, "12.");
}

int main(void)
{
    cl_json_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url),
        cmocka_unit_test(test_command_codec),
        cmocka_unit_test(test_write_read_receipt),
        cmocka_unit_test(test_sig_max_entries),
        cmocka_unit_test(test_range_past_commit),
        cmocka_unit_test(test_error_codes),
        cmocka_unit_test(test_not_leader),
        cmocka_unit_test(test_writer_failed),
        cmocka_unit_test(test_write_outcome_unknown),
        cmocka_unit_test(test_ledger_sync_fails),
        cmocka_unit_test(test_role_matrix),
        cmocka_unit_test(test_users),
        cmocka_unit_test(test_users_find_fingerprint),
        cmocka_unit_test(test_users_store),
        cmocka_unit_test(test_users_paging),
        cmocka_unit_test(test_user_writes_in_one_batch),
        cmocka_unit_test(test_restart),
        cmocka_unit_test(test_roles_crud),
        cmocka_unit_test(test_roles_authz),
        cmocka_unit_test(test_roles_restart),
        cmocka_unit_test(test_collection_limits),
        cmocka_unit_test(test_collections),
        cmocka_unit_test(test_paging),
        cmocka_unit_test(test_paging_big_pages),
        cmocka_unit_test(test_paging_time_budget),
        cmocka_unit_test(test_paging_backlog_cap),
        cmocka_unit_test(test_paging_hex_ids),
        cmocka_unit_test(test_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
