/*
 * node.c — the node's lifecycle, its state machine (cl_node_apply), the signature cadence, the
 * route table and the one admission function every request passes before a handler runs
 * (spec/ledger-api.md §4, §5, §6, §11).
 *
 * Admission order (docs/api.md): path and query decoding (400 InvalidInput) → route (404
 * ResourceNotFound / 405 MethodNotAllowed + Allow) → service open (503) → identity (401
 * InvalidAuthenticationInfo) → role (403 AuthorizationFailed) → body size (413
 * RequestBodyTooLarge) → Content-Type (415 UnsupportedContentType) → api-version (strict mode:
 * 400 UnsupportedApiVersion) → handler.
 *
 * State-machine invariants: cl_node_apply is the only code that changes the ledger or the user
 * store; it is deterministic in (ledger state, command), so every replica applying the same log
 * holds the same ledger and users. A rejected command (cl_node_result.status != CL_OK) writes
 * nothing. Writes are answered only after cl_node_applied_batch synced the ledger.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/alloc.h"
#include "base/codec.h"
#include "base/json.h"
#include "base/log.h"
#include "crypto/hash.h"
#include "crypto/x509.h"
#include "ledger/claims.h"
#include "ledger/entry.h"
#include "node/command.h"
#include "node/internal.h"

const char *const cl_api_versions[CL_API_COUNT] = {
    "0.1-preview",        "2022-04-20-preview", "2022-05-13",         "2022-11-23",
    "2023-01-18-preview", "2024-01-26-preview", "2024-07-26-preview", "2024-08-22-preview",
    "2024-12-09-preview", "2026-02-23",
};

/* ---- route table (§6) ---------------------------------------------------------------------- */

/* Order matters: literal segments before wildcards (/app/transactions/current before
 * /app/transactions/{id}); the first route whose path and method match is taken. */
static const cl_route routes[] = {
    {"GET", "/app/governance/constitution", CL_ACT_READ, cl_api_constitution},
    {"GET", "/app/governance/members", CL_ACT_READ, cl_api_members},
    {"GET", "/app/enclaveQuotes", CL_ACT_READ, cl_api_enclave_quotes},
    {"GET", "/app/collections", CL_ACT_READ, cl_api_collections},
    {"GET", "/app/transactions", CL_ACT_READ, cl_api_list_entries},
    {"POST", "/app/transactions", CL_ACT_WRITE, cl_api_post_entry},
    {"GET", "/app/transactions/current", CL_ACT_READ, cl_api_current},
    {"GET", "/app/transactions/*", CL_ACT_READ, cl_api_get_entry},
    {"GET", "/app/transactions/*/receipt", CL_ACT_READ, cl_api_receipt},
    {"GET", "/app/transactions/*/status", CL_ACT_READ, cl_api_status},
    {"GET", "/app/users", CL_ACT_USERS_READ, cl_api_users_list},
    {"GET", "/app/ledgerUsers", CL_ACT_USERS_READ, cl_api_ledger_users_list},
    {"GET", "/app/users/*", CL_ACT_USERS_READ, cl_api_user_get},
    {"PATCH", "/app/users/*", CL_ACT_USERS_WRITE, cl_api_user_patch},
    {"DELETE", "/app/users/*", CL_ACT_USERS_WRITE, cl_api_user_delete},
    {"GET", "/app/ledgerUsers/*", CL_ACT_USERS_READ, cl_api_user_get},
    {"PATCH", "/app/ledgerUsers/*", CL_ACT_USERS_WRITE, cl_api_user_patch},
    {"DELETE", "/app/ledgerUsers/*", CL_ACT_USERS_WRITE, cl_api_user_delete},
    /* Programmability (§13): routed, answered 501 NotImplemented. */
    {"GET", "/app/userDefinedEndpoints", CL_ACT_PROG_READ, cl_api_not_implemented},
    {"PUT", "/app/userDefinedEndpoints", CL_ACT_PROG_WRITE, cl_api_not_implemented},
    {"GET", "/app/userDefinedEndpoints/runtimeOptions", CL_ACT_PROG_READ, cl_api_not_implemented},
    {"PATCH", "/app/userDefinedEndpoints/runtimeOptions", CL_ACT_PROG_WRITE,
     cl_api_not_implemented},
    {"GET", "/app/userDefinedEndpoints/modules", CL_ACT_PROG_READ, cl_api_not_implemented},
    {"GET", "/app/userDefinedFunctions", CL_ACT_PROG_READ, cl_api_not_implemented},
    {"POST", "/app/userDefinedFunctions/*:execute", CL_ACT_EXECUTE, cl_api_not_implemented},
    {"GET", "/app/userDefinedFunctions/*", CL_ACT_PROG_READ, cl_api_not_implemented},
    {"PUT", "/app/userDefinedFunctions/*", CL_ACT_PROG_WRITE, cl_api_not_implemented},
    {"DELETE", "/app/userDefinedFunctions/*", CL_ACT_PROG_WRITE, cl_api_not_implemented},
    /* Custom roles (§11.5). */
    {"GET", "/app/roles", CL_ACT_ROLES_READ, cl_api_roles_get},
    {"PUT", "/app/roles", CL_ACT_ROLES_WRITE, cl_api_roles_put},
    {"PATCH", "/app/roles", CL_ACT_ROLES_WRITE, cl_api_roles_put},
    {"DELETE", "/app/roles", CL_ACT_ROLES_WRITE, cl_api_roles_delete},
    /* Identity (§14) and node status: anonymous. */
    {"GET", "/ledgerIdentity/*", 0, cl_api_identity},
    {"GET", "/node/ready", 0, cl_api_node_ready},
    {"GET", "/node/state", 0, cl_api_node_state},
    {"GET", "/node/version", 0, cl_api_node_version},
};
#define NROUTES (sizeof routes / sizeof routes[0])

/* Routes whose reply grows with the ledger's contents (entries, collections, users): admission
 * holds them to the cap on reply bytes waiting for slow readers. */
static int big_reply(cl_handler h)
{
    return h == cl_api_list_entries || h == cl_api_collections || h == cl_api_users_list ||
           h == cl_api_ledger_users_list;
}

static int seg_match(const char *pat, size_t plen, const char *seg, size_t slen)
{
    if (plen == 1 && pat[0] == '*')
        return slen > 0;
    if (plen > 1 && pat[0] == '*') { /* "*:execute": a suffix after a non-empty id */
        size_t sfx = plen - 1;
        return slen > sfx && memcmp(seg + slen - sfx, pat + 1, sfx) == 0;
    }
    return plen == slen && memcmp(pat, seg, slen) == 0;
}

static int path_match(const char *pattern, const cl_url_path *p)
{
    if (p->too_many)
        return 0;
    const char *s = pattern + 1;
    size_t i = 0;
    for (;;) {
        const char *e = strchr(s, '/');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (i >= p->n || !seg_match(s, len, p->seg[i], p->len[i]))
            return 0;
        i++;
        if (e == NULL)
            break;
        s = e + 1;
    }
    return i == p->n;
}

/* ---- replies ------------------------------------------------------------------------------- */

/* The challenge of a 401 to a caller that sent an Authorization header (RFC 6750 §3): tokens are
 * not accepted, whatever their scheme. */
#define BEARER_CHALLENGE "Bearer realm=\"cledger\", error=\"invalid_token\""

void cl_node_read_point(cl_node *n, char *out, size_t cap)
{
    cl_txid_format(n->last_view, cl_ledger_last_seqno(n->l), out, cap);
}

static void reply_send(const cl_reply_to *t, int status, const char *txid, const char *hname,
                       const char *hvalue, const void *body, size_t len)
{
    const char *h[10];
    size_t nh = 0;
    h[nh++] = "x-ms-request-id";
    h[nh++] = t->reqid;
    if (t->crid[0] != '\0') {
        h[nh++] = "x-ms-client-request-id";
        h[nh++] = t->crid;
    }
    if (txid != NULL) {
        h[nh++] = "x-ms-ccf-transaction-id";
        h[nh++] = txid;
    }
    if (hname != NULL) {
        h[nh++] = hname;
        h[nh++] = hvalue;
    }
    t->fn(t->ctx, status, h, nh / 2, body, len);
}

static void verror(const cl_reply_to *t, int status, const char *hname, const char *hvalue,
                   const char *code, const char *fmt, va_list ap)
    __attribute__((format(printf, 6, 0)));
static void verror(const cl_reply_to *t, int status, const char *hname, const char *hvalue,
                   const char *code, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    /* Messages quote request data: keep them valid UTF-8 without control characters. */
    int utf8 = cl_utf8_valid(msg, strlen(msg));
    for (char *p = msg; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f || (!utf8 && (unsigned char)*p >= 0x80))
            *p = '?';
    }
    json_t *j = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
    cl_wipe(msg, sizeof msg); /* it may quote the request; the copy in j is wiped when freed */
    char *s = j ? cl_json_dump(j) : NULL;
    json_decref(j);
    if (s == NULL) {
        static const char oom[] =
            "{\"error\":{\"code\":\"InternalError\",\"message\":\"out of memory\"}}";
        reply_send(t, 500, NULL, NULL, NULL, oom, sizeof oom - 1);
        return;
    }
    reply_send(t, status, NULL, hname, hvalue, s, strlen(s));
    cl_json_free(s);
}

void cl_api_error(const cl_reply_to *t, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(t, status, NULL, NULL, code, fmt, ap);
    va_end(ap);
}

void cl_api_error_hdr(const cl_reply_to *t, int status, const char *hname, const char *hvalue,
                      const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(t, status, hname, hvalue, code, fmt, ap);
    va_end(ap);
}

/* Whether the request carries an Authorization header (looked up on refusals only). */
static int has_token(const cl_http_request *h)
{
    return cl_http_header_get(h, "authorization") != NULL;
}

/* A 401 from admission. RFC 9110 §11.6.1 wants a challenge on every 401; a client certificate
 * has no scheme to name, so only a caller that sent an Authorization header (token = has_token)
 * gets one. */
static void deny_identity(const cl_req *r, int token, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void deny_identity(const cl_req *r, int token, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(&r->to, 401, token ? "WWW-Authenticate" : NULL, token ? BEARER_CHALLENGE : NULL,
           "InvalidAuthenticationInfo", fmt, ap);
    va_end(ap);
}

void cl_api_reply_text(cl_node *n, const cl_reply_to *t, int status, const void *body, size_t len,
                       const char *txid)
{
    char rp[CL_TXID_MAX + 1];
    if (t->is_app && txid == NULL && status / 100 == 2) {
        cl_node_read_point(n, rp, sizeof rp);
        txid = rp;
    }
    reply_send(t, status, t->is_app ? txid : NULL, NULL, NULL, body, len);
}

void cl_api_reply(cl_node *n, const cl_reply_to *t, int status, json_t *body, const char *txid)
{
    char *s = body ? cl_json_dump(body) : NULL;
    json_decref(body);
    if (s == NULL) {
        cl_api_error(t, 500, "InternalError", "out of memory");
        return;
    }
    cl_api_reply_text(n, t, status, s, strlen(s), txid);
    cl_json_free(s);
}

void cl_api_reply_empty(cl_node *n, const cl_reply_to *t, int status, const char *txid)
{
    char rp[CL_TXID_MAX + 1];
    if (t->is_app && txid == NULL) {
        cl_node_read_point(n, rp, sizeof rp);
        txid = rp;
    }
    reply_send(t, status, t->is_app ? txid : NULL, NULL, NULL, NULL, 0);
}

/* ---- lifecycle ----------------------------------------------------------------------------- */

static int users_scan_cb(void *arg, const cl_ledger_entry *e)
{
    cl_node *n = arg;
    if (e->op == CL_OP_REMOVE) {
        /* An id that is not valid was never stored (the put below ignores it too). */
        int rrc = cl_users_remove(&n->users, e->key, e->key_len);
        return rrc == CL_EINVAL ? 0 : rrc;
    }
    cl_roleset rs;
    int rc = cl_roles_value_decode(e->value, e->value_len, &rs);
    if (rc == CL_ENOMEM)
        return rc;
    if (rc < 0) {
        cl_logf(CL_LOG_WARN, "node: ignoring malformed users-table value at seqno %" PRIu64,
                e->seqno);
        return 0;
    }
    rc = cl_users_put(&n->users, e->key, e->key_len, &rs);
    cl_roleset_free(&rs);
    return rc == CL_EINVAL ? 0 : rc;
}

static int roles_scan_cb(void *arg, const cl_ledger_entry *e)
{
    cl_node *n = arg;
    if (!cl_role_name_valid(e->key, e->key_len) || cl_role_is_builtin(e->key, e->key_len)) {
        cl_logf(CL_LOG_WARN, "node: ignoring roles-table write with a bad name at seqno %" PRIu64,
                e->seqno);
        return 0;
    }
    if (e->op == CL_OP_REMOVE) {
        cl_rolemap_remove(&n->roles, e->key, e->key_len);
        return 0;
    }
    unsigned actions;
    int rc = cl_role_value_decode(e->value, e->value_len, &actions);
    if (rc == CL_ENOMEM)
        return rc;
    if (rc < 0) {
        cl_logf(CL_LOG_WARN, "node: ignoring malformed roles-table value at seqno %" PRIu64,
                e->seqno);
        return 0;
    }
    return cl_rolemap_put(&n->roles, e->key, e->key_len, actions);
}

static int is_default_collection(const char *c, size_t len)
{
    return len == strlen(CL_NODE_DEFAULT_COLLECTION) &&
           memcmp(c, CL_NODE_DEFAULT_COLLECTION, len) == 0;
}

static int coll_first_cb(void *arg, uint64_t seqno)
{
    *(uint64_t *)arg = seqno;
    return 1;
}

int cl_node_collection_first(cl_node *n, const char *coll, size_t len, uint64_t upto,
                             uint64_t *first)
{
    *first = 0;
    return cl_ledger_collection_scan(n->l, coll, len, 1, upto, 1, coll_first_cb, first, NULL);
}

/* Room for one more collection in n->colls. */
static int colls_reserve(cl_node *n)
{
    if (n->n_colls < n->cap_colls)
        return CL_OK;
    size_t cap = n->cap_colls ? n->cap_colls * 2 : 16;
    cl_coll *v = cl_realloc(n->colls, cap * sizeof *v);
    CL_ENSURE(v != NULL, CL_ENOMEM);
    n->colls = v;
    n->cap_colls = cap;
    return CL_OK;
}

static int colls_load_cb(void *arg, const char *coll, size_t len)
{
    cl_node *n = arg;
    CL_TRY(colls_reserve(n));
    char *id = cl_strndup(coll, len);
    CL_ENSURE(id != NULL, CL_ENOMEM);
    n->colls[n->n_colls++] = (cl_coll){id, len, 0};
    return 0;
}

static int cmp_coll_first(const void *a, const void *b)
{
    const cl_coll *x = a, *y = b;
    return x->first < y->first ? -1 : x->first > y->first;
}

/* The collections of the ledger, in order of their first entry: one index lookup each, at start
 * only; the state machine appends the new ones (apply_user_write), so a listing is O(page). */
static int colls_load(cl_node *n)
{
    CL_TRY(cl_ledger_collections(n->l, colls_load_cb, n));
    /* Then their first entries (the index takes one read at a time); on an error the list is
     * left whole for cl_node_free. */
    for (size_t i = 0; i < n->n_colls; i++)
        CL_TRY(cl_node_collection_first(n, n->colls[i].id, n->colls[i].len, UINT64_MAX,
                                        &n->colls[i].first));
    size_t k = 0;
    for (size_t i = 0; i < n->n_colls; i++) {
        cl_coll c = n->colls[i];
        if (c.first == 0) { /* no durable entry: not a collection yet */
            cl_free(c.id);
            continue;
        }
        if (!is_default_collection(c.id, c.len))
            n->ncollections++;
        n->colls[k++] = c;
    }
    n->n_colls = k;
    if (n->n_colls > 1)
        qsort(n->colls, n->n_colls, sizeof *n->colls, cmp_coll_first);
    return CL_OK;
}

static int node_id_from_cert(cl_node *n, const char *pem)
{
    cl_cert *c = NULL;
    uint8_t id[32];
    CL_TRY(cl_cert_from_pem(pem, strlen(pem), &c));
    int rc = cl_cert_spki_sha256(c, id);
    cl_cert_free(c);
    CL_TRY(rc);
    cl_hex_encode(id, 32, n->node_id_hex);
    n->have_node_id = 1;
    return CL_OK;
}

/* Without a TLS certificate: the node recorded last in the nodes table (this node, on a ledger
 * it created). */
static int nodes_scan_cb(void *arg, const cl_ledger_entry *e)
{
    cl_node *n = arg;
    if (e->op == CL_OP_PUT && e->key_len == 64) {
        memcpy(n->node_id_hex, e->key, 64);
        n->node_id_hex[64] = 0;
        n->have_node_id = 1;
    }
    return 0;
}

static char *dup_opt(const char *s, int *bad)
{
    if (s == NULL)
        return NULL;
    char *d = cl_strdup(s);
    if (d == NULL)
        *bad = 1;
    return d;
}

int cl_node_new(const cl_node_opts *o, cl_node **out)
{
    *out = NULL;
    CL_ENSURE(o != NULL && o->ledger != NULL, CL_EINVAL);
    cl_json_init();
    cl_node *n = cl_calloc(1, sizeof *n);
    if (n != NULL)
        cl_random_pool_init(&n->keys);
    CL_ENSURE(n != NULL, CL_ENOMEM);
    int rc = CL_OK, bad = 0;
    n->l = o->ledger;
    n->w = o->writer;
    n->loop = o->loop;
    n->ledger_id = dup_opt(o->ledger_id ? o->ledger_id : "cledger", &bad);
    n->tls_cert_pem = dup_opt(o->tls_cert_pem, &bad);
    n->service_cert_pem = dup_opt(o->service_cert_pem, &bad);
    CL_GUARD_IF(bad, CL_ENOMEM);
    n->sig_interval_ms = o->sig_interval_ms ? o->sig_interval_ms : 20;
    n->sig_max_entries = o->sig_max_entries ? o->sig_max_entries : 1000;
    n->max_body = o->max_body_bytes ? o->max_body_bytes : (1u << 20);
    n->strict_api = o->strict_api_version;
    n->max_collections = o->max_collections ? o->max_collections : 5000;
    n->list_budget_ns =
        (uint64_t)(o->list_budget_us ? o->list_budget_us : CL_NODE_LIST_BUDGET_US) * 1000u;
    n->reply_backlog = o->reply_backlog;
    n->reply_backlog_arg = o->reply_backlog_arg;
    n->list_backlog_max = o->list_backlog_max ? o->list_backlog_max : CL_NODE_LIST_BACKLOG_MAX;
    n->waiting_tail = &n->waiting;
    cl_users_init(&n->users);
    cl_rolemap_init(&n->roles);
    CL_GUARD(cl_ledger_table_scan(n->l, CL_TABLE_USERS, users_scan_cb, n));
    CL_GUARD(cl_ledger_table_scan(n->l, CL_TABLE_ROLES, roles_scan_cb, n));
    CL_GUARD(colls_load(n));
    if (n->tls_cert_pem != NULL)
        CL_GUARD(node_id_from_cert(n, n->tls_cert_pem));
    else
        CL_GUARD(cl_ledger_table_scan(n->l, CL_TABLE_NODES, nodes_scan_cb, n));
    uint64_t last = cl_ledger_last_seqno(n->l);
    n->last_view = 2;
    if (last > 0 && last <= cl_ledger_durable_seqno(n->l))
        CL_GUARD(cl_ledger_view_of(n->l, last, &n->last_view));
    n->unsigned_entries = last != cl_ledger_signed_seqno(n->l);
    *out = n;
    return CL_OK;
out:
    cl_node_free(n);
    return rc;
}

int cl_node_set_writer(cl_node *n, const cl_node_writer *w)
{
    CL_ENSURE(n != NULL && w != NULL && w->submit != NULL && w->is_leader != NULL &&
                  w->term != NULL,
              CL_EINVAL);
    n->w = *w;
    return CL_OK;
}

static void timer_closed(uv_handle_t *h) { cl_free(h); }

static void on_sig_timer(uv_timer_t *t)
{
    cl_node *n = t->data;
    if (n != NULL && cl_node_submit_signature(n) < 0)
        cl_logf(CL_LOG_WARN, "node: could not submit a signature");
}

int cl_node_start(cl_node *n)
{
    CL_ENSURE(n->w.submit != NULL, CL_EINVAL);
    if (n->loop != NULL && n->timer == NULL) {
        n->timer = cl_calloc(1, sizeof *n->timer);
        CL_ENSURE(n->timer != NULL, CL_ENOMEM);
        if (uv_timer_init(n->loop, n->timer) != 0) {
            cl_free(n->timer);
            n->timer = NULL;
            return CL_EIO;
        }
        n->timer->data = n;
        if (uv_timer_start(n->timer, on_sig_timer, n->sig_interval_ms, n->sig_interval_ms) != 0)
            return CL_EIO;
    }
    n->started = 1;
    return CL_OK;
}

static void pending_free(cl_pending *p)
{
    json_decref(p->reply);
    if (p->name != p->name_inline)
        cl_free(p->name);
    cl_free(p);
}

void cl_node_free(cl_node *n)
{
    if (n == NULL)
        return;
    if (n->timer != NULL) {
        uv_timer_stop(n->timer);
        n->timer->data = NULL;
        uv_close((uv_handle_t *)n->timer, timer_closed);
    }
    while (n->waiting != NULL) {
        cl_pending *p = n->waiting;
        n->waiting = p->next;
        cl_api_error(&p->to, 503, "ServiceUnavailable", "the node is shutting down");
        pending_free(p);
    }
    for (size_t i = 0; i < n->n_colls; i++)
        cl_free(n->colls[i].id);
    cl_free(n->colls);
    cl_users_free(&n->users);
    cl_rolemap_free(&n->roles);
    cl_free(n->ledger_id);
    cl_free(n->tls_cert_pem);
    cl_free(n->service_cert_pem);
    cl_random_pool_wipe(&n->keys);
    cl_free(n);
}

/* ---- the state machine --------------------------------------------------------------------- */

int cl_node_collection_is_new(cl_node *n, const char *coll, size_t len)
{
    uint64_t last = 0;
    if (cl_ledger_collection_last(n->l, coll, len, &last) == CL_OK && last != 0)
        return 0;
    /* Not in the index, which holds what is synced: the collections created since are the tail
     * of n->colls past the durable seqno. */
    uint64_t durable = cl_ledger_durable_seqno(n->l);
    for (size_t i = n->n_colls; i > 0 && n->colls[i - 1].first > durable; i--) {
        if (n->colls[i - 1].len == len && memcmp(n->colls[i - 1].id, coll, len) == 0)
            return 0;
    }
    return 1;
}

static int apply_user_write(cl_node *n, uint64_t view, const cl_cmd *c, cl_node_result *res)
{
    int is_new = cl_node_collection_is_new(n, c->collection, c->collection_len);
    int counted = is_new && !is_default_collection(c->collection, c->collection_len);
    if (counted && n->ncollections >= n->max_collections) {
        res->status = CL_EOVERFLOW;
        return CL_OK;
    }
    /* Room first: nothing may fail after the ledger has the entry. */
    if (is_new)
        CL_TRY(colls_reserve(n));
    char *copy = is_new ? cl_strndup(c->collection, c->collection_len) : NULL;
    CL_ENSURE(!is_new || copy != NULL, CL_ENOMEM);
    int rc = cl_ledger_append_user_keyed(n->l, view, c->collection, c->collection_len, c->contents,
                                         c->contents_len, c->claims_key, &res->seqno);
    if (rc < 0) {
        cl_free(copy);
        return rc;
    }
    if (is_new)
        n->colls[n->n_colls++] = (cl_coll){copy, c->collection_len, res->seqno};
    if (counted)
        n->ncollections++;
    return CL_OK;
}

static int apply_users(cl_node *n, uint64_t view, const cl_cmd *c, cl_node_result *res)
{
    if ((c->flags & CL_CMD_F_IF_EMPTY) && n->users.n > 0) {
        res->status = CL_EEXIST;
        return CL_OK;
    }
    char *key = NULL, *stored = NULL, *value = NULL;
    size_t vlen = 0;
    cl_roleset rs = {0, NULL, 0};
    int rc = CL_OK;
    CL_GUARD(cl_user_id_normalise(c->key, c->key_len, &key, &stored));
    const cl_user *u = cl_users_find(&n->users, c->key, c->key_len);
    const char *id = u ? u->id : stored;
    int last_admin =
        u && (u->rs.builtin & CL_ROLE_ADMINISTRATOR) && cl_users_admins(&n->users) == 1;
    if (c->op == CL_OP_PUT) {
        CL_GUARD(cl_roles_value_decode(c->value, c->value_len, &rs));
        /* Custom roles must exist when assigned (one may have been deleted meanwhile). */
        for (size_t i = 0; i < rs.ncustom; i++) {
            if (cl_rolemap_find(&n->roles, rs.custom[i], strlen(rs.custom[i])) == NULL) {
                res->status = CL_ENOENT;
                goto out;
            }
        }
        if (last_admin && !(rs.builtin & CL_ROLE_ADMINISTRATOR)) {
            res->status = CL_ESTATE;
            goto out;
        }
        CL_GUARD(cl_roles_value_encode(&rs, &value, &vlen));
        size_t idlen = strlen(id);
        /* An existing user's id differs from the key only in letter case (same length). */
        CL_GUARD_IF(idlen > c->key_len, CL_EFORMAT);
        CL_GUARD(cl_ledger_append_internal(n->l, view, CL_TABLE_USERS, CL_OP_PUT, id, idlen, value,
                                           vlen, &res->seqno));
        CL_GUARD(cl_users_put(&n->users, id, idlen, &rs));
        /* What this write did, for its reply: cl_node_apply left room behind res. */
        char *t = (char *)(res + 1);
        memcpy(t, id, idlen + 1);
        res->user_id = t;
        t += c->key_len + 1;
        memcpy(t, c->value, c->value_len);
        t[c->value_len] = '\0';
        res->user_value = t;
        res->user_value_len = c->value_len;
    } else {
        if (u == NULL) {
            res->status = CL_ENOENT;
            goto out;
        }
        if (last_admin) {
            res->status = CL_ESTATE;
            goto out;
        }
        CL_GUARD(cl_ledger_append_internal(n->l, view, CL_TABLE_USERS, CL_OP_REMOVE, id, strlen(id),
                                           "", 0, &res->seqno));
        CL_GUARD(cl_users_remove(&n->users, stored, strlen(stored)));
    }
out:
    cl_free(key);
    cl_free(stored);
    cl_free(value);
    cl_roleset_free(&rs);
    /* An id or value the proposer should have refused: the command is malformed (fatal). */
    if (rc == CL_EJSON || rc == CL_EINVAL)
        rc = CL_EFORMAT;
    return rc;
}

/* A ROLES command: every item is checked before the first is written, so the request is applied
 * whole or not at all. Refusals (status): CL_EEXIST (create of an existing role), CL_ENOENT
 * (replace or delete of an unknown role), CL_EOVERFLOW (more than CL_ROLES_MAX roles). */
static int apply_roles(cl_node *n, uint64_t view, const cl_cmd *c, cl_node_result *res)
{
    const size_t cnt = c->roles_count;
    const char *name[CL_CMD_MAX_ROLES];
    size_t nlen[CL_CMD_MAX_ROLES];
    unsigned actions[CL_CMD_MAX_ROLES];
    char *value[CL_CMD_MAX_ROLES] = {NULL};
    size_t vlen[CL_CMD_MAX_ROLES];
    cl_cursor it;
    cl_cursor_init(&it, c->roles, c->roles_len);
    int rc = CL_OK;
    size_t created = 0;
    for (size_t i = 0; i < cnt; i++) {
        const char *v;
        size_t vl;
        CL_GUARD(cl_cmd_roles_next(&it, &name[i], &nlen[i], &v, &vl));
        /* What the proposer must have refused: malformed (fatal). */
        CL_GUARD_IF(!cl_role_name_valid(name[i], nlen[i]) || cl_role_is_builtin(name[i], nlen[i]),
                    CL_EFORMAT);
        for (size_t k = 0; k < i; k++)
            CL_GUARD_IF(nlen[k] == nlen[i] && memcmp(name[k], name[i], nlen[i]) == 0, CL_EFORMAT);
        if (c->roles_mode == CL_CMD_ROLES_DELETE)
            CL_GUARD_IF(vl != 0, CL_EFORMAT);
        else
            CL_GUARD_IF(cl_role_value_decode(v, vl, &actions[i]) < 0, CL_EFORMAT);
        int exists = cl_rolemap_find(&n->roles, name[i], nlen[i]) != NULL;
        if (c->roles_mode == CL_CMD_ROLES_CREATE && exists) {
            res->status = CL_EEXIST;
            goto out;
        }
        if (c->roles_mode != CL_CMD_ROLES_CREATE && !exists) {
            res->status = CL_ENOENT;
            goto out;
        }
        created += c->roles_mode == CL_CMD_ROLES_CREATE;
    }
    if (n->roles.n + created > CL_ROLES_MAX) {
        res->status = CL_EOVERFLOW;
        goto out;
    }
    /* Everything that can fail for lack of memory happens before the ledger changes. */
    for (size_t i = 0; i < cnt && c->roles_mode != CL_CMD_ROLES_DELETE; i++)
        CL_GUARD(cl_role_value_encode(actions[i], &value[i], &vlen[i]));
    CL_GUARD(cl_rolemap_reserve(&n->roles, created));
    for (size_t i = 0; i < cnt; i++) {
        if (c->roles_mode == CL_CMD_ROLES_DELETE) {
            CL_GUARD(cl_ledger_append_internal(n->l, view, CL_TABLE_ROLES, CL_OP_REMOVE, name[i],
                                               nlen[i], "", 0, &res->seqno));
            cl_rolemap_remove(&n->roles, name[i], nlen[i]);
        } else {
            CL_GUARD(cl_ledger_append_internal(n->l, view, CL_TABLE_ROLES, CL_OP_PUT, name[i],
                                               nlen[i], value[i], vlen[i], &res->seqno));
            CL_GUARD(cl_rolemap_put(&n->roles, name[i], nlen[i], actions[i]));
        }
    }
out:
    for (size_t i = 0; i < cnt; i++)
        cl_free(value[i]);
    return rc;
}

int cl_node_apply(cl_node *n, uint64_t term, uint64_t index, const void *cmd, size_t len,
                  void **result)
{
    if (result != NULL)
        *result = NULL;
    cl_cmd c;
    CL_TRY(cl_cmd_decode(cmd, len, &c));
    /* Allocated first: once the ledger changed, the apply must not fail. A users-table PUT gets
     * room behind it for the id and the value it writes (see cl_node_result). */
    int user_put =
        c.type == CL_CMD_INTERNAL_WRITE && c.table == CL_TABLE_USERS && c.op == CL_OP_PUT;
    size_t tail = user_put ? c.key_len + 1 + c.value_len + 1 : 0;
    cl_node_result *res = malloc(sizeof *res + tail);
    CL_ENSURE(res != NULL, CL_ENOMEM);
    memset(res, 0, sizeof *res);
    res->view = term;
    int rc = CL_OK;
    switch (c.type) {
    case CL_CMD_USER_WRITE:
        rc = apply_user_write(n, term, &c, res);
        break;
    case CL_CMD_INTERNAL_WRITE:
        if (c.table == CL_TABLE_USERS)
            rc = apply_users(n, term, &c, res);
        /* Roles are written only through ROLES commands (all of a request or nothing). */
        else if (c.table == CL_TABLE_MEMBERS || c.table == CL_TABLE_CONSTITUTION)
            rc = cl_ledger_append_internal(n->l, term, c.table, c.op, c.key, c.key_len, c.value,
                                           c.value_len, &res->seqno);
        else
            rc = CL_EFORMAT; /* engine-managed tables are never written through commands */
        break;
    case CL_CMD_SIGN:
        rc = cl_ledger_sign_at(n->l, term, index, &res->seqno);
        break;
    case CL_CMD_ROLES:
        rc = apply_roles(n, term, &c, res);
        break;
    default:
        rc = CL_EFORMAT;
    }
    if (rc < 0) {
        free(res);
        cl_logf(CL_LOG_ERROR, "node: cannot apply command at index %" PRIu64 ": %s", index,
                cl_strerror(rc));
        return rc;
    }
    if (res->seqno != 0) {
        n->last_view = term;
        n->unsigned_entries = c.type != CL_CMD_SIGN;
    }
    if (result != NULL)
        *result = res;
    else
        free(res);
    return CL_OK;
}

static void finish_write(cl_pending *p);

/* A write applied when the ledger's sync failed: not lost, the raft log replays it at restart. */
#define SYNC_FAILED                                                                                \
    "the ledger could not be synced; the write is committed in the raft log and is applied "       \
    "again when the service restarts"

void cl_node_applied_batch(cl_node *n, uint64_t last_index)
{
    int rc = n->failed ? CL_ECLOSED : cl_ledger_sync(n->l);
    if (rc < 0 && !n->failed) {
        cl_logf(CL_LOG_ERROR, "node: ledger sync failed: %s", cl_strerror(rc));
        n->failed = 1;
    }
    uint64_t durable = cl_ledger_durable_seqno(n->l);
    cl_pending **pp = &n->waiting;
    while (*pp != NULL) {
        cl_pending *p = *pp;
        if (rc < 0 || p->seqno <= durable) {
            *pp = p->next;
            if (rc < 0) {
                cl_api_error(&p->to, 500, "InternalError", "%s", SYNC_FAILED);
                pending_free(p);
            } else {
                finish_write(p);
            }
        } else {
            pp = &p->next;
        }
    }
    n->waiting_tail = pp;
}

/* ---- writes -------------------------------------------------------------------------------- */

cl_pending *cl_pending_new(cl_node *n, const cl_reply_to *t, int kind, const char *name, size_t len)
{
    cl_pending *p = cl_calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->n = n;
    p->to = *t;
    p->kind = kind;
    if (name != NULL) {
        size_t nl = strnlen(name, len);
        if (nl < sizeof p->name_inline) { /* the usual case: no second allocation */
            memcpy(p->name_inline, name, nl);
            p->name_inline[nl] = '\0';
            p->name = p->name_inline;
        } else if ((p->name = cl_strndup(name, nl)) == NULL) {
            cl_free(p);
            return NULL;
        }
    }
    return p;
}

static void finish_write(cl_pending *p)
{
    cl_node *n = p->n;
    char txid[CL_TXID_MAX + 1];
    cl_txid_format(p->view, p->seqno, txid, sizeof txid);
    switch (p->kind) {
    case CL_PW_ENTRY: {
        /* The hottest reply: {"collectionId":...} written directly (the bytes cl_json_dump gives;
         * the id was checked to be UTF-8 on the way in), not built and dumped by jansson. */
        cl_buf b = CL_BUF_INIT;
        int rc = cl_buf_append(&b, CL_LIT("{\"collectionId\":"));
        if (rc == CL_OK)
            rc = cl_json_put_string(&b, p->name, strlen(p->name));
        if (rc == CL_OK)
            rc = cl_buf_append(&b, CL_LIT("}"));
        if (rc == CL_OK)
            cl_api_reply_text(n, &p->to, 200, b.data, b.len, txid);
        else
            cl_api_error(&p->to, 500, "InternalError", "out of memory");
        cl_buf_free(&b);
        break;
    }
    case CL_PW_USER_SINGLE:
    case CL_PW_USER_MULTI:
        cl_api_reply(n, &p->to, 200, p->reply, txid); /* NULL (no memory): 500 */
        p->reply = NULL;
        break;
    case CL_PW_USER_DELETE:
        cl_api_reply_empty(n, &p->to, 204, txid);
        break;
    case CL_PW_ROLES_CREATE:
    case CL_PW_ROLES_REPLACE:
    case CL_PW_ROLES_DELETE: /* §11.5: 200 without a body */
        cl_api_reply_empty(n, &p->to, 200, txid);
        break;
    default:
        break;
    }
    pending_free(p);
}

/* The 200 body of a user write (§11.3), from the id and roles its command wrote: the users
 * table itself may have changed again (a later PATCH or DELETE in the same batch) before the
 * batch's replies are made. NULL when out of memory. */
static json_t *user_reply(int kind, const cl_node_result *res)
{
    cl_roleset rs = {0, NULL, 0};
    if (res->user_id == NULL ||
        cl_roles_value_decode(res->user_value, res->user_value_len, &rs) < 0)
        return NULL;
    json_t *body = kind == CL_PW_USER_SINGLE
                       ? json_pack("{s:s,s:s}", "assignedRole", cl_role_highest(rs.builtin),
                                   "userId", res->user_id)
                       : json_pack("{s:o,s:s}", "assignedRoles", cl_roles_json_array(&rs), "userId",
                                   res->user_id);
    cl_roleset_free(&rs);
    return body;
}

static void write_done(void *arg, int status, uint64_t term, uint64_t index, void *result)
{
    cl_pending *p = arg;
    cl_node *n = p->n;
    cl_node_result *res = result;
    if (status < 0 || res == NULL) {
        /* The command reached the raft log, or may have: it can still be committed (by this node
         * when it starts again: the log is replayed). No Retry-After: a blind retry could write
         * it twice. (A write refused before it reached the log is answered by the caller of
         * cl_node_writer.submit, with Retry-After when that is safe.) */
        if (status == CL_ESTATE || status == CL_ECLOSED)
            cl_api_error(&p->to, 503, "ServiceUnavailable",
                         "the service stopped before the write was committed (%s); it may still "
                         "be committed when the service starts again: read the collection before "
                         "writing it again",
                         cl_strerror(status));
        else
            cl_api_error(&p->to, 500, "InternalError", "the write failed: %s",
                         cl_strerror(status < 0 ? status : CL_EINVAL));
        free(res);
        pending_free(p);
        return;
    }
    int st = res->status;
    p->view = res->view;
    p->seqno = res->seqno;
    if (st == CL_OK && (p->kind == CL_PW_USER_SINGLE || p->kind == CL_PW_USER_MULTI))
        p->reply = user_reply(p->kind, res);
    free(res);
    int roles = p->kind == CL_PW_ROLES_CREATE || p->kind == CL_PW_ROLES_REPLACE ||
                p->kind == CL_PW_ROLES_DELETE;
    if (roles && st == CL_EEXIST) {
        cl_api_error(&p->to, 400, "InvalidInput", "A role of that name was created meanwhile.");
    } else if (roles && st == CL_ENOENT) {
        cl_api_error(&p->to, 404, "ResourceNotFound",
                     "A role of the request was deleted meanwhile.");
    } else if (roles && st == CL_EOVERFLOW) {
        cl_api_error(&p->to, 400, "InvalidInput",
                     "The ledger cannot hold more than %d custom roles.", CL_ROLES_MAX);
    } else if (st == CL_ENOENT && p->kind != CL_PW_USER_DELETE) {
        cl_api_error(&p->to, 400, "InvalidInput",
                     "A custom role of the request was deleted meanwhile.");
    } else if (st == CL_EOVERFLOW) {
        cl_api_error(&p->to, 400, "CollectionCapacityExceeded",
                     "The ledger already has %zu collections; no new collection can be created.",
                     n->max_collections);
    } else if (st == CL_ESTATE) {
        cl_api_error(&p->to, 400, "InvalidInput",
                     "The last Administrator cannot be removed or demoted.");
    } else if (st == CL_ENOENT && p->kind == CL_PW_USER_DELETE) {
        cl_api_reply_empty(n, &p->to, 204, NULL);
    } else if (st != CL_OK) {
        cl_api_error(&p->to, 500, "InternalError", "the write was rejected: %s", cl_strerror(st));
    } else if (p->seqno <= cl_ledger_durable_seqno(n->l)) {
        finish_write(p);
        return;
    } else if (n->failed) { /* the ledger's last sync failed: no later one will answer it */
        cl_api_error(&p->to, 500, "InternalError", "%s", SYNC_FAILED);
    } else {
        /* Answered by cl_node_applied_batch once the ledger is synced. */
        p->next = NULL;
        *n->waiting_tail = p;
        n->waiting_tail = &p->next;
        return;
    }
    pending_free(p);
}

static int maybe_sign_after_writes(cl_node *n);

void cl_node_submit_pending(cl_node *n, cl_pending *p, const cl_buf *cmd)
{
    if (!n->w.is_leader(n->w.impl)) {
        cl_api_error_hdr(&p->to, 503, "Retry-After", "1", "ServiceUnavailable",
                         "this node is not the primary");
        pending_free(p);
        return;
    }
    int kind = p->kind;
    int rc = n->w.submit(n->w.impl, cmd->data, cmd->len, write_done, p);
    if (rc < 0) { /* the callback will not be called */
        cl_api_error_hdr(&p->to, 503, "Retry-After", "1", "ServiceUnavailable",
                         "the write could not be submitted: %s", cl_strerror(rc));
        pending_free(p);
        return;
    }
    /* p may be freed already (a direct writer answers synchronously). */
    if (kind == CL_PW_ENTRY) {
        n->writes_since_sign++;
        if (maybe_sign_after_writes(n) < 0)
            cl_logf(CL_LOG_WARN, "node: could not submit a signature");
    }
}

static void sign_done(void *arg, int status, uint64_t term, uint64_t index, void *result)
{
    cl_node *n = arg;
    free(result);
    n->sign_inflight = 0;
    if (status < 0)
        cl_logf(CL_LOG_WARN, "node: signature not committed: %s", cl_strerror(status));
}

static int submit_sign(cl_node *n)
{
    cl_buf b = CL_BUF_INIT;
    int rc = cl_cmd_encode_sign(&b);
    if (rc == CL_OK) {
        n->sign_inflight = 1;
        n->writes_since_sign = 0;
        rc = n->w.submit(n->w.impl, b.data, b.len, sign_done, n);
        if (rc < 0)
            n->sign_inflight = 0;
    }
    cl_buf_free(&b);
    return rc;
}

static int maybe_sign_after_writes(cl_node *n)
{
    if (n->writes_since_sign < n->sig_max_entries || n->sign_inflight || n->failed ||
        !n->w.is_leader(n->w.impl))
        return CL_OK;
    return submit_sign(n);
}

int cl_node_quiesce(cl_node *n)
{
    if (n->timer != NULL)
        uv_timer_stop(n->timer);
    n->writes_since_sign = 0; /* no signature after the last writes either */
    return !n->sign_inflight && n->waiting == NULL;
}

int cl_node_submit_signature(cl_node *n)
{
    if (n->w.submit == NULL || n->sign_inflight || n->failed || !n->unsigned_entries ||
        !n->w.is_leader(n->w.impl))
        return CL_OK;
    return submit_sign(n);
}

int cl_node_bootstrap_admin(cl_node *n, const char *user_id, cl_consensus_done cb, void *arg)
{
    CL_ENSURE(user_id != NULL, CL_EINVAL);
    char *k = NULL, *s = NULL;
    CL_TRY(cl_user_id_normalise(user_id, strlen(user_id), &k, &s));
    cl_free(k);
    if (n->users.n > 0) {
        cl_free(s);
        if (cb != NULL)
            cb(arg, CL_OK, 0, 0, NULL);
        return CL_OK;
    }
    int rc = CL_ESTATE;
    cl_buf b = CL_BUF_INIT;
    char *value = NULL;
    size_t vlen = 0;
    const cl_roleset admin = {CL_ROLE_ADMINISTRATOR, NULL, 0};
    if (n->w.submit == NULL || !n->w.is_leader(n->w.impl))
        goto out;
    CL_GUARD(cl_roles_value_encode(&admin, &value, &vlen));
    CL_GUARD(cl_cmd_encode_internal(&b, CL_TABLE_USERS, CL_OP_PUT, CL_CMD_F_IF_EMPTY, s, strlen(s),
                                    value, vlen));
    rc = n->w.submit(n->w.impl, b.data, b.len, cb, arg);
out:
    cl_free(s);
    cl_free(value);
    cl_buf_free(&b);
    return rc;
}

/* ---- the direct writer --------------------------------------------------------------------- */

#define DIRECT_TERM 2 /* the view the ledger's genesis uses */

static int direct_submit(void *impl, const void *cmd, size_t len, cl_consensus_done cb, void *arg)
{
    cl_node *n = *(cl_node **)impl;
    CL_ENSURE(n != NULL, CL_ESTATE);
    uint64_t index = ++n->direct_index;
    void *res = NULL;
    int rc = cl_node_apply(n, DIRECT_TERM, index, cmd, len, &res);
    if (rc == CL_OK)
        cl_node_applied_batch(n, index);
    if (cb != NULL)
        cb(arg, rc, DIRECT_TERM, index, res);
    else
        free(res);
    return CL_OK;
}

static int direct_is_leader(void *impl) { return *(cl_node **)impl != NULL; }
static uint64_t direct_term(void *impl) { return DIRECT_TERM; }

int cl_node_failed(const cl_node *n)
{
    return n->failed || (n->w.error != NULL && n->w.error(n->w.impl) != 0);
}

cl_node_writer cl_node_direct_writer(cl_node **node_slot)
{
    cl_node_writer w = {direct_submit, direct_is_leader, direct_term, node_slot, NULL};
    return w;
}

/* ---- admission ----------------------------------------------------------------------------- */

unsigned cl_node_user_actions(const cl_node *n, const cl_user *u)
{
    unsigned a = cl_roles_actions(u->rs.builtin);
    for (size_t i = 0; i < u->rs.ncustom && a != CL_ACT_ALL; i++) {
        const cl_custom_role *d =
            cl_rolemap_find(&n->roles, u->rs.custom[i], strlen(u->rs.custom[i]));
        if (d != NULL) /* a deleted role grants nothing */
            a |= cl_actset_grants(d->actions);
    }
    return a;
}

static int visible_ascii(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return 0;
    }
    return 1;
}

/* §4.1: application/json and application/merge-patch+json with any parameters; absent is JSON. */
static int content_type_ok(const char *ct)
{
    if (ct == NULL)
        return 1;
    size_t n = strcspn(ct, ";");
    while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    const char *s = ct;
    while (n > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    static const char *const ok[] = {"application/json", "application/merge-patch+json"};
    for (size_t i = 0; i < 2; i++) {
        if (n == strlen(ok[i]) && strncasecmp(s, ok[i], n) == 0)
            return 1;
    }
    return 0;
}

static int api_ordinal(const char *v)
{
    for (int i = 0; i < CL_API_COUNT; i++) {
        if (strcmp(v, cl_api_versions[i]) == 0)
            return i;
    }
    return -1;
}

/* Seconds since the epoch as "2026-11-23T21:36:01Z" (the number itself if gmtime cannot). */
static void fmt_utc(int64_t t, char *out, size_t cap)
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (gmtime_r(&tt, &tm) == NULL || strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, cap, "%" PRId64, t);
}

/* Returns 1 when the handler may run; otherwise the request was answered. */
static int admit(cl_req *r)
{
    cl_node *n = r->n;
    const cl_http_request *h = r->http;
    const char *method = h->method != NULL ? h->method : "";
    /* "*" (the HTTP layer lets it through for OPTIONS only) is the whole server: every route's
     * methods go in Allow. */
    int asterisk = h->path != NULL && strcmp(h->path, "*") == 0;
    if (!asterisk && cl_url_path_parse(h->path, &r->path) < 0) {
        cl_api_error(&r->to, 400, "InvalidInput", "Malformed percent-encoding in the path.");
        return 0;
    }
    int qrc = cl_url_query_parse(h->query, &r->query);
    if (qrc < 0) {
        cl_api_error(&r->to, 400, "InvalidInput", "%s",
                     qrc == CL_EOVERFLOW ? "Too many query parameters."
                                         : "Malformed percent-encoding in the query.");
        return 0;
    }
    /* Route: path, then method. Allow is built only for a refusal (every write would build one:
     * the GET route of its path comes first). */
    char allow[96] = "";
    int path_known = asterisk; /* "*" serves no method: cl_http_route_decide */
    for (size_t i = 0; !asterisk && i < NROUTES && r->route == NULL; i++) {
        if (!path_match(routes[i].pattern, &r->path))
            continue;
        path_known = 1;
        if (cl_http_method_serves(routes[i].method, method))
            r->route = &routes[i];
    }
    for (size_t i = 0; r->route == NULL && path_known && i < NROUTES; i++)
        if (asterisk || path_match(routes[i].pattern, &r->path))
            cl_http_allow_add(allow, sizeof allow, routes[i].method);
    cl_http_route_verdict v =
        cl_http_route_decide(method, asterisk, path_known, r->route != NULL, allow, sizeof allow);
    switch (v) {
    case CL_HTTP_ROUTE_SERVE:
        break;
    case CL_HTTP_ROUTE_OPTIONS: /* no identity needed: it tells nothing the 405s do not */
        reply_send(&r->to, 200, NULL, "Allow", allow, NULL, 0);
        return 0;
    case CL_HTTP_ROUTE_NOT_ALLOWED:
        cl_api_error_hdr(&r->to, 405, "Allow", allow, "MethodNotAllowed",
                         "Method %s is not allowed here.", method);
        return 0;
    case CL_HTTP_ROUTE_NOT_FOUND:
        cl_api_error(&r->to, 404, "ResourceNotFound", "No resource at this path.");
        return 0;
    }
    if (!n->started && r->route->h != cl_api_node_state && r->route->h != cl_api_node_version) {
        cl_api_error_hdr(&r->to, 503, "Retry-After", "1", "ServiceUnavailable",
                         "The service is not open yet.");
        return 0;
    }
    if (cl_node_failed(n) && r->route->action != 0) {
        cl_api_node_failed(&r->to);
        return 0;
    }
    /* Identity (§11.1): the client certificate must be within its validity period (the node's
     * clock) and its fingerprint a registered user. Bearer tokens are not supported yet and count
     * as absent; a caller that sent one is told so, with the RFC 6750 challenge. */
    if (r->route->action != 0) {
        const char *fp = h->client_fingerprint;
        if (fp[0] == '\0') {
            int token = has_token(h);
            deny_identity(r, token, "%s",
                          token ? "Bearer tokens are not supported by this service: authenticate "
                                  "with a registered client certificate."
                                : "A registered client certificate is required.");
            return 0;
        }
        if (cl_http_client_cert_unreadable(h)) {
            deny_identity(r, has_token(h), "%s",
                          "The client certificate's validity period is empty or cannot be read.");
            return 0;
        }
        if (!cl_http_client_cert_current(h, (int64_t)time(NULL))) {
            char from[32], to[32];
            fmt_utc(h->client_not_before, from, sizeof from);
            fmt_utc(h->client_not_after, to, sizeof to);
            deny_identity(r, has_token(h),
                          "The client certificate is not valid now: it is valid from %s to %s.",
                          from, to);
            return 0;
        }
        r->caller = cl_users_find_fingerprint(&n->users, fp);
        if (r->caller == NULL) {
            deny_identity(r, has_token(h),
                          "The client certificate is not registered as a ledger user.");
            return 0;
        }
        unsigned need = r->route->action;
        if ((cl_node_user_actions(n, r->caller) & need) != need) {
            cl_api_error(&r->to, 403, "AuthorizationFailed",
                         "The caller's roles do not allow this operation.");
            return 0;
        }
    }
    /* Writes go to the primary, refused before a handler answers from this node's own state: a
     * DELETE of a user this node did not know answered 204, and a last-Administrator check 400,
     * with nothing written (found in a review, 2026-11-25). The SDKs retry 503 + Retry-After. */
    if (r->route->action != 0 && strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 &&
        !n->w.is_leader(n->w.impl)) {
        cl_api_error_hdr(&r->to, 503, "Retry-After", "1", "ServiceUnavailable",
                         "this node is not the primary");
        return 0;
    }
    /* Replies that can be large (a list page: up to 1 MiB; the collections of a preview-version
     * request: all of them) stay in memory until their readers take them: past a global cap on
     * such bytes, they wait (the SDKs retry 503 + Retry-After) rather than pile up. */
    if (big_reply(r->route->h) && n->reply_backlog != NULL &&
        n->reply_backlog(n->reply_backlog_arg) > n->list_backlog_max) {
        cl_api_error_hdr(&r->to, 503, "Retry-After", "1", "ServiceUnavailable",
                         "Too many replies are waiting for their readers; retry shortly.");
        return 0;
    }
    if (h->body_len > n->max_body) {
        cl_api_error(&r->to, 413, "RequestBodyTooLarge",
                     "The request body of %zu bytes exceeds the limit of %zu bytes.", h->body_len,
                     n->max_body);
        return 0;
    }
    const char *ct = cl_http_header_get(h, "content-type");
    if (h->body_len > 0 && !content_type_ok(ct)) {
        cl_api_error(&r->to, 415, "UnsupportedContentType",
                     "Unsupported content type %.100s. Only application/json and "
                     "application/merge-patch+json are supported.",
                     ct);
        return 0;
    }
    /* api-version (§3.2): last occurrence wins; missing → 2022-05-13; unknown → newest. */
    r->api_raw = cl_url_query_get(&r->query, "api-version", NULL);
    r->api = CL_API_2022_05_13;
    if (r->api_raw != NULL) {
        int ord = api_ordinal(r->api_raw);
        if (ord < 0 && n->strict_api && r->to.is_app) { /* /node and /ledgerIdentity: unversioned */
            cl_api_error(&r->to, 400, "UnsupportedApiVersion",
                         "The api-version '%.64s' is not supported.", r->api_raw);
            return 0;
        }
        r->api = ord < 0 ? CL_API_NEWEST : ord;
    }
    return 1;
}

void cl_node_handle(cl_node *n, const cl_http_request *req, cl_node_reply_fn reply, void *ctx)
{
    cl_req r;
    memset(&r, 0, sizeof r);
    r.n = n;
    r.http = req;
    r.to.fn = reply;
    r.to.ctx = ctx;
    _Static_assert(sizeof r.to.reqid > CL_U64_DEC_MAX, "x-ms-request-id buffer");
    (void)cl_u64_dec(req->request_id, r.to.reqid);
    const char *crid = cl_http_header_get(req, "x-ms-client-request-id");
    if (crid != NULL && visible_ascii(crid, sizeof r.to.crid - 1))
        memcpy(r.to.crid, crid, strlen(crid) + 1);
    r.to.is_app = req->path != NULL && strncmp(req->path, "/app/", 5) == 0;
    if (admit(&r))
        r.route->h(&r);
    cl_url_path_free(&r.path);
    cl_url_query_free(&r.query);
}
