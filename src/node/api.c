/*
 * api.c — the route handlers of the data-plane API (spec/ledger-api.md §6–§14). Each handler runs
 * after admission (node.c) and answers exactly once: synchronously, or — writes — through a
 * cl_pending answered after the command is applied and the ledger synced.
 *
 * Transaction status (§9.1), as seen by this node:
 *   seqno > last applied:         Invalid when the view is older than the current one, else Unknown
 *   seqno appended, not durable:  Pending (the view cannot be checked yet)
 *   durable, recorded view != id: Invalid
 *   durable, <= last durable signature: Committed, else Pending
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/codec.h"
#include "base/json.h"
#include "crypto/hash.h"
#include "ledger/claims.h"
#include "ledger/entry.h"
#include "node/command.h"
#include "node/internal.h"

/* The governance policy cledger reports (§12.2). cledger has no member governance yet: the
 * policy text states what the service does (docs/api.md). */
static const char default_constitution[] =
    "// cledger constitution v1\n"
    "// Governance of this ledger is administrative: the bootstrap Administrator (configured at\n"
    "// ledger creation) manages users through the data-plane API; no member proposals or votes\n"
    "// exist. Every change is a ledger transaction covered by signed Merkle roots.\n"
    "export function validate(input) { return { valid: false, description: \"proposals are not "
    "supported\" }; }\n"
    "export function resolve(proposal, proposerId, votes) { return \"Rejected\"; }\n"
    "export function apply(proposal, proposalId) {}\n";

enum { TX_COMMITTED, TX_PENDING, TX_INVALID, TX_UNKNOWN };

static void internal_error(cl_req *r, int rc)
{
    cl_api_error(&r->to, 500, "InternalError", "Internal error: %s", cl_strerror(rc));
}

/* ---- shared helpers ------------------------------------------------------------------------ */

/* reads_frame: the caller reads a Committed transaction's frame next (read_frame checks the
 * index's view there); every other answer that rests on the view checks it here. */
static int tx_state(cl_node *n, uint64_t view, uint64_t seqno, int reads_frame, int *st)
{
    uint64_t last = cl_ledger_last_seqno(n->l);
    if (seqno > last) {
        *st = view < n->last_view ? TX_INVALID : TX_UNKNOWN;
        return CL_OK;
    }
    if (seqno > cl_ledger_durable_seqno(n->l)) {
        *st = TX_PENDING;
        return CL_OK;
    }
    uint64_t v;
    CL_TRY(cl_ledger_view_of(n->l, seqno, &v));
    int committed = seqno <= cl_ledger_signed_seqno(n->l);
    /* The index's view alone gave a wrong state with 200 when its row was damaged (found in a
     * review, 2026-11-25); the check is one small read, skipped where the frame is read anyway. */
    if (v != view || !committed || !reads_frame)
        CL_TRY(cl_ledger_view_checked(n->l, seqno, &v));
    if (v != view)
        *st = TX_INVALID;
    else
        *st = committed ? TX_COMMITTED : TX_PENDING;
    return CL_OK;
}

/* Parses the {transactionId} segment and classifies it; answers and returns 0 on 400/404/500. */
static int path_txid(cl_req *r, int reads_frame, uint64_t *view, uint64_t *seqno, int *st)
{
    const char *s = r->path.seg[2];
    if (cl_txid_parse(s, r->path.len[2], view, seqno) < 0) {
        cl_api_error(&r->to, 400, "InvalidTransactionId",
                     "'%.64s' is not a valid transaction id (expected <view>.<seqno>).", s);
        return 0;
    }
    int rc = tx_state(r->n, *view, *seqno, reads_frame, st);
    if (rc < 0) {
        internal_error(r, rc);
        return 0;
    }
    if (*st == TX_INVALID) {
        cl_api_error(&r->to, 404, "InvalidTransactionId",
                     "Transaction %s is invalid: it was not committed in that view.", s);
        return 0;
    }
    if (*st == TX_UNKNOWN) {
        cl_api_error(&r->to, 404, "TransactionNotFound", "Transaction %s is not known yet.", s);
        return 0;
    }
    return 1;
}

/* Query parameter `name` (NULL when absent), or its hex form `name`Hex when that is present: a
 * collection or user id as a nextLink may carry it (link_id_param). A hex form that is not the hex
 * of 1..256 bytes is 400 InvalidInput (answers, sets *bad). */
static const char *query_id(cl_req *r, const char *name, size_t *len, int *bad)
{
    char hexname[32];
    size_t hl = 0;
    snprintf(hexname, sizeof hexname, "%sHex", name);
    const char *hex = cl_url_query_get(&r->query, hexname, &hl);
    *bad = 0;
    if (hex == NULL)
        return cl_url_query_get(&r->query, name, len);
    if (hl == 0 || hl % 2 != 0 || hl > 2 * CL_NODE_MAX_COLLECTION_ID ||
        cl_hex_decode(hex, hl, (uint8_t *)r->id_hex, hl / 2) != CL_OK) {
        cl_api_error(&r->to, 400, "InvalidInput",
                     "%s must be an id of 1 to %d bytes in hexadecimal.", hexname,
                     CL_NODE_MAX_COLLECTION_ID);
        *bad = 1;
        return NULL;
    }
    r->id_hex[hl / 2] = '\0';
    *len = hl / 2;
    return r->id_hex;
}

/* collectionId query parameter (§2.2; or collectionIdHex, query_id): default when absent or
 * empty; 400 InvalidInput for control characters or invalid UTF-8 (answers and returns 0). */
static int req_collection(cl_req *r, const char **c, size_t *len)
{
    int bad;
    const char *v = query_id(r, "collectionId", len, &bad);
    if (bad)
        return 0;
    if (v == NULL || *len == 0) {
        *c = CL_NODE_DEFAULT_COLLECTION;
        *len = strlen(CL_NODE_DEFAULT_COLLECTION);
        return 1;
    }
    if (!cl_collection_chars_ok(v, *len)) {
        cl_api_error(&r->to, 400, "InvalidInput",
                     "The collection id contains control characters or invalid UTF-8.");
        return 0;
    }
    *c = v;
    return 1;
}

/* JSON body of the wanted kind (object, or array when `array`); answers 400 and returns NULL
 * otherwise. */
static json_t *req_json(cl_req *r, int array)
{
    const char *want = array ? "array" : "object";
    const cl_http_request *h = r->http;
    if (h->body_len == 0) {
        cl_api_error(&r->to, 400, "InvalidInput", "A JSON request body is required.");
        return NULL;
    }
    json_t *j = NULL;
    char err[160] = "";
    if (cl_json_parse((const char *)h->body, h->body_len, r->n->max_body, &j, err, sizeof err) <
        0) {
        /* The parser takes objects and arrays only; a scalar is reported as ACL does. */
        size_t i = strspn((const char *)h->body, " \t\r\n");
        if (i < h->body_len && h->body[i] != '{' && h->body[i] != '[')
            cl_api_error(&r->to, 400, "InvalidInput", "At #/: Expected %s, found: %.64s", want,
                         (const char *)h->body + i);
        else
            cl_api_error(&r->to, 400, "InvalidInput", "Malformed JSON body: %s", err);
        return NULL;
    }
    if (array ? !json_is_array(j) : !json_is_object(j)) {
        cl_api_error(&r->to, 400, "InvalidInput", "At #/: Expected %s.", want);
        json_decref(j);
        return NULL;
    }
    return j;
}

static json_t *req_json_object(cl_req *r) { return req_json(r, 0); }

/* Appends {"collectionId":...,"contents":...,"transactionId":...}: the bytes cl_json_dump gives
 * for that object (sorted keys), without building it. Contents and collection ids are UTF-8
 * (checked when written); a ledger that says otherwise is CL_EJSON, answered with 500. */
static int put_entry_object(cl_buf *b, const cl_ledger_entry *e, const char *txid)
{
    CL_ENSURE(cl_utf8_valid((const char *)e->contents, e->contents_len) &&
                  cl_utf8_valid(e->collection, e->collection_len),
              CL_EJSON);
    CL_TRY(cl_buf_reserve(b, e->contents_len + e->collection_len + 96));
    CL_TRY(cl_buf_append(b, CL_LIT("{\"collectionId\":")));
    CL_TRY(cl_json_put_string(b, e->collection, e->collection_len));
    CL_TRY(cl_buf_append(b, CL_LIT(",\"contents\":")));
    CL_TRY(cl_json_put_string(b, (const char *)e->contents, e->contents_len));
    CL_TRY(cl_buf_append(b, CL_LIT(",\"transactionId\":")));
    CL_TRY(cl_json_put_string(b, txid, strlen(txid)));
    return cl_buf_append(b, CL_LIT("}"));
}

/* ---- ledger entries ------------------------------------------------------------------------ */

void cl_api_post_entry(cl_req *r)
{
    cl_node *n = r->n;
    json_t *j = req_json_object(r);
    if (j == NULL)
        return;
    cl_buf cmd = CL_BUF_SECRET;
    json_t *contents = json_object_get(j, "contents");
    if (contents == NULL) {
        cl_api_error(&r->to, 400, "InvalidInput", "At #/: Missing required property 'contents'.");
        goto out;
    }
    if (!json_is_string(contents)) {
        cl_api_error(&r->to, 400, "InvalidInput", "At #/contents: Expected string.");
        goto out;
    }
    size_t clen = json_string_length(contents);
    if (clen > CL_NODE_MAX_CONTENTS) {
        cl_api_error(&r->to, 400, "EntrySizeCapacityExceeded",
                     "Entry contents of %zu bytes exceed the limit of %d bytes.", clen,
                     CL_NODE_MAX_CONTENTS);
        goto out;
    }
    static const char *const hooks[] = {"preHooks", "postHooks", "preOperationHooks",
                                        "postOperationHooks", "tags"};
    for (size_t i = 0; i < sizeof hooks / sizeof hooks[0]; i++) {
        json_t *hk = json_object_get(j, hooks[i]);
        if (hk != NULL && !json_is_null(hk) && !(json_is_array(hk) && json_array_size(hk) == 0)) {
            cl_api_error(&r->to, 501, "NotImplemented",
                         "'%s' is not supported: this build has no programmability or tags.",
                         hooks[i]);
            goto out;
        }
    }
    size_t tl = 0;
    if (cl_url_query_get(&r->query, "tags", &tl) != NULL && tl > 0) {
        cl_api_error(&r->to, 501, "NotImplemented", "Tags are not supported by this build.");
        goto out;
    }
    const char *coll;
    size_t len;
    if (!req_collection(r, &coll, &len))
        goto out;
    if (cl_node_collection_is_new(n, coll, len)) {
        if (len > CL_NODE_MAX_COLLECTION_ID) {
            cl_api_error(&r->to, 400, "CollectionIdTooLong",
                         "Collection ID of %zu bytes exceeds the limit of %d bytes.", len,
                         CL_NODE_MAX_COLLECTION_ID);
            goto out;
        }
        if (strcmp(coll, CL_NODE_DEFAULT_COLLECTION) != 0 &&
            n->ncollections >= n->max_collections) {
            cl_api_error(
                &r->to, 400, "CollectionCapacityExceeded",
                "The ledger already has %zu collections; no new collection can be created.",
                n->max_collections);
            goto out;
        }
    }
    uint8_t key[32];
    int rc = cl_random_pool_take(&r->n->keys, key, sizeof key);
    if (rc == CL_OK)
        rc = cl_cmd_encode_user_write(&cmd, coll, len, (const uint8_t *)json_string_value(contents),
                                      clen, key);
    cl_wipe(key, sizeof key);
    if (rc < 0) {
        internal_error(r, rc);
        goto out;
    }
    cl_pending *p = cl_pending_new(n, &r->to, CL_PW_ENTRY, coll, len);
    if (p == NULL) {
        internal_error(r, CL_ENOMEM);
        goto out;
    }
    cl_node_submit_pending(n, p, &cmd);
out:
    cl_buf_free(&cmd);
    json_decref(j);
}

void cl_api_get_entry(cl_req *r)
{
    uint64_t view, seqno;
    int st;
    const char *coll;
    size_t len;
    if (!path_txid(r, 1, &view, &seqno, &st) || !req_collection(r, &coll, &len))
        return;
    if (st == TX_PENDING) {
        cl_api_reply(r->n, &r->to, 200, json_pack("{s:s}", "state", "Loading"), NULL);
        return;
    }
    cl_ledger_entry e;
    int rc = cl_ledger_read(r->n->l, seqno, &e);
    if (rc < 0) {
        internal_error(r, rc);
        return;
    }
    if (e.type != CL_ENTRY_USER || e.collection_len != len ||
        memcmp(e.collection, coll, len) != 0) {
        cl_ledger_entry_free(&e);
        cl_api_error(&r->to, 404, "ResourceNotFound",
                     "Transaction %s did not write an entry to collection '%.256s'.",
                     r->path.seg[2], coll);
        return;
    }
    /* The hottest read: serialised directly, the same bytes as cl_json_dump of
     * {"entry":{"collectionId","contents","transactionId"},"state":"Ready"} (sorted keys). jansson
     * built and sorted it in 7% of a read's CPU. */
    cl_buf b = CL_BUF_SECRET;
    if ((rc = cl_buf_append(&b, CL_LIT("{\"entry\":"))) == CL_OK &&
        (rc = put_entry_object(&b, &e, r->path.seg[2])) == CL_OK)
        rc = cl_buf_append(&b, CL_LIT(",\"state\":\"Ready\"}"));
    cl_ledger_entry_free(&e);
    if (rc == CL_OK)
        cl_api_reply_text(r->n, &r->to, 200, b.data, b.len, NULL);
    else
        internal_error(r, rc);
    cl_buf_free(&b);
}

void cl_api_status(cl_req *r)
{
    uint64_t view, seqno;
    int st;
    if (!path_txid(r, 0, &view, &seqno, &st))
        return;
    cl_api_reply(r->n, &r->to, 200,
                 json_pack("{s:s,s:s}", "state", st == TX_COMMITTED ? "Committed" : "Pending",
                           "transactionId", r->path.seg[2]),
                 NULL);
}

static json_t *loading_receipt(void)
{
    return json_pack("{s:n,s:s,s:s}", "receipt", "state", "Loading", "transactionId", "");
}

void cl_api_receipt(cl_req *r)
{
    cl_node *n = r->n;
    uint64_t view, seqno;
    int st;
    if (!path_txid(r, 1, &view, &seqno, &st))
        return;
    if (st == TX_PENDING) {
        cl_api_reply(n, &r->to, 200, loading_receipt(), NULL);
        return;
    }
    json_t *rec = NULL, *claims = NULL;
    int rc = cl_ledger_receipt(n->l, seqno, &rec);
    if (rc == CL_ENOTSIGNED) {
        cl_api_reply(n, &r->to, 200, loading_receipt(), NULL);
        return;
    }
    if (rc == CL_EINVAL) {
        cl_api_error(&r->to, 404, "ResourceNotFound",
                     "Receipts are not offered for signature transactions.");
        return;
    }
    if (rc < 0) {
        internal_error(r, rc);
        return;
    }
    if (r->api >= CL_API_2022_11_23) {
        cl_ledger_entry e;
        rc = cl_ledger_read(n->l, seqno, &e);
        if (rc == CL_OK) {
            if (e.type == CL_ENTRY_USER)
                rc = cl_claims_ledger_entry_json(e.claims_key, 32, e.collection, e.collection_len,
                                                 (const char *)e.contents, e.contents_len, &claims);
            cl_ledger_entry_free(&e);
        }
        if (rc < 0) {
            json_decref(rec);
            internal_error(r, rc);
            return;
        }
    }
    /* json_pack and json_object_set_new take the references even when they fail. */
    json_t *body = json_pack("{s:o,s:s,s:s}", "receipt", rec, "state", "Ready", "transactionId",
                             r->path.seg[2]);
    if (body == NULL) {
        json_decref(claims);
    } else if (claims != NULL && json_object_set_new(body, "applicationClaims", claims) != 0) {
        json_decref(body);
        body = NULL;
    }
    cl_api_reply(n, &r->to, 200, body, NULL);
}

void cl_api_current(cl_req *r)
{
    cl_node *n = r->n;
    const char *coll;
    size_t len;
    if (!req_collection(r, &coll, &len))
        return;
    uint64_t seqno = 0;
    if (len <= CL_NODE_MAX_COLLECTION_ID) {
        int rc = cl_ledger_collection_last(n->l, coll, len, &seqno);
        if (rc < 0) {
            internal_error(r, rc);
            return;
        }
    }
    if (seqno == 0) {
        cl_api_error(&r->to, 404, "ResourceNotFound", "Collection '%.256s' has no entries.", coll);
        return;
    }
    cl_ledger_entry e;
    int rc = cl_ledger_read(n->l, seqno, &e);
    if (rc < 0) {
        internal_error(r, rc);
        return;
    }
    char rp[CL_TXID_MAX + 1];
    cl_node_read_point(n, rp, sizeof rp);
    cl_buf b = CL_BUF_SECRET;
    rc = put_entry_object(&b, &e, rp);
    cl_ledger_entry_free(&e);
    if (rc == CL_OK)
        cl_api_reply_text(n, &r->to, 200, b.data, b.len, rp);
    else
        internal_error(r, rc);
    cl_buf_free(&b);
}

/* ---- listing (§8.3) ------------------------------------------------------------------------ */

typedef struct {
    uint64_t *v;
    size_t n, cap;
} seq_list;

static int seq_cb(void *arg, uint64_t seqno)
{
    seq_list *s = arg;
    if (s->n == s->cap)
        return 1; /* window full (cannot happen: cap = window) */
    s->v[s->n++] = seqno;
    return 0;
}

static int view_for(cl_node *n, uint64_t seqno, uint64_t *view)
{
    if (seqno >= 1 && seqno <= cl_ledger_durable_seqno(n->l))
        return cl_ledger_view_of(n->l, seqno, view);
    *view = n->last_view;
    return CL_OK;
}

static int append_param(cl_buf *b, const char *name, const char *value, size_t len)
{
    CL_TRY(cl_buf_append(b, "&", 1));
    CL_TRY(cl_buf_append(b, name, strlen(name)));
    CL_TRY(cl_buf_append(b, "=", 1));
    return cl_url_encode(b, value, len);
}

/* A collection id in a nextLink: `name`=<percent-encoded>, or `name`Hex=<hex> instead when the id
 * holds a byte that a client may not give back as it was. The Python SDK follows a nextLink by
 * decoding its query and sending the values raw: '+' then reads as a space, '&' cuts the value,
 * '#' cuts the rest of the query (a fragment), '%' starts an escape. The hex form, unreserved
 * characters only, survives that (query_id reads either). */
static int link_id_param(cl_buf *b, const char *name, const char *id, size_t len)
{
    int mangled = 0;
    for (size_t i = 0; i < len; i++)
        mangled |= id[i] == '+' || id[i] == '&' || id[i] == '#' || id[i] == '%';
    if (!mangled)
        return append_param(b, name, id, len);
    char hexname[32];
    snprintf(hexname, sizeof hexname, "&%sHex=", name);
    CL_TRY(cl_buf_append(b, hexname, strlen(hexname)));
    CL_TRY(cl_buf_reserve(b, 2 * len + 1));
    cl_hex_encode((const uint8_t *)id, len, (char *)b->data + b->len);
    b->len += 2 * len;
    return CL_OK;
}

static int api_version_param(cl_req *r, cl_buf *b, const char *path)
{
    const char *v = cl_api_versions[r->api]; /* the effective version (§3.2 rule 5) */
    CL_TRY(cl_buf_append(b, path, strlen(path)));
    CL_TRY(cl_buf_append(b, "?api-version=", 13));
    return cl_url_encode(b, v, strlen(v));
}

void cl_api_list_entries(cl_req *r)
{
    cl_node *n = r->n;
    const char *coll;
    size_t len;
    if (!req_collection(r, &coll, &len))
        return;
    size_t tl = 0;
    if (cl_url_query_get(&r->query, "tag", &tl) != NULL && tl > 0) {
        cl_api_error(&r->to, 501, "NotImplemented", "Tags are not supported by this build.");
        return;
    }
    uint64_t fv = 0, from = 1, tv = 0, to = 0;
    size_t fl = 0;
    const char *fs = cl_url_query_get(&r->query, "fromTransactionId", &fl);
    const char *ts = cl_url_query_get(&r->query, "toTransactionId", &tl);
    if ((fs != NULL && cl_txid_parse(fs, fl, &fv, &from) < 0) ||
        (ts != NULL && cl_txid_parse(ts, tl, &tv, &to) < 0)) {
        cl_api_error(&r->to, 400, "InvalidTransactionId",
                     "fromTransactionId / toTransactionId must be transaction ids.");
        return;
    }
    if (ts != NULL && from > to) {
        cl_api_error(&r->to, 400, "InvalidTransactionId",
                     "fromTransactionId is after toTransactionId.");
        return;
    }
    uint64_t commit = cl_ledger_signed_seqno(n->l);
    seq_list sl = {NULL, 0, 0};
    cl_buf link = CL_BUF_INIT, out = CL_BUF_SECRET;
    int rc = CL_OK;
    char txid[CL_TXID_MAX + 1];
    if (ts == NULL) { /* pin the upper bound: the commit point of the first page */
        to = commit;
        CL_GUARD(view_for(n, to, &tv));
    }
    uint64_t end = to < commit ? to : commit; /* committed entries only */
    uint64_t last_coll = 0;
    if (len <= CL_NODE_MAX_COLLECTION_ID)
        CL_GUARD(cl_ledger_collection_last(n->l, coll, len, &last_coll));
    uint64_t next = 0;
    /* The page is written directly, the bytes cl_json_dump gives for {"entries":[...],
     * "nextLink":...,"state":"Ready"} (sorted keys): jansson spent over half of a large page's
     * time building and escaping it. A page runs on the main loop, so besides its window and its
     * size it has a time budget: once it is spent, the page ends and its nextLink resumes at the
     * next entry (§8.3 allows a Ready page of any length with a nextLink). */
    CL_GUARD(cl_buf_append(&out, CL_LIT("{\"entries\":[")));
    if (last_coll != 0 && from <= end) {
        uint64_t wend = end - from >= CL_NODE_LIST_WINDOW ? from + CL_NODE_LIST_WINDOW - 1 : end;
        sl.cap = CL_NODE_LIST_WINDOW;
        sl.v = cl_malloc(sl.cap * sizeof *sl.v);
        CL_GUARD_IF(sl.v == NULL, CL_ENOMEM);
        CL_GUARD(cl_ledger_collection_scan(n->l, coll, len, from, wend, 0, seq_cb, &sl, NULL));
        uint64_t t0 = uv_hrtime();
        for (size_t i = 0; i < sl.n; i++) {
            if (i > 0 && uv_hrtime() - t0 >= n->list_budget_ns) {
                next = sl.v[i];
                break;
            }
            cl_ledger_entry e;
            CL_GUARD(cl_ledger_read_listed(n->l, sl.v[i], coll, len, &e));
            size_t mark = out.len;
            cl_txid_format(e.view, e.seqno, txid, sizeof txid);
            rc = i > 0 ? cl_buf_append(&out, CL_LIT(",")) : CL_OK;
            if (rc == CL_OK)
                rc = put_entry_object(&out, &e, txid);
            cl_ledger_entry_free(&e);
            CL_GUARD(rc);
            if (i > 0 && out.len + CL_NODE_LIST_TAIL > CL_NODE_LIST_MAX_BODY) {
                cl_wipe(out.data + mark, out.len - mark);
                out.len = mark;
                next = sl.v[i];
                break;
            }
        }
        if (next == 0 && wend < end) {
            /* Resume at the next entry of the collection, skipping empty windows. */
            sl.n = 0;
            CL_GUARD(
                cl_ledger_collection_scan(n->l, coll, len, wend + 1, end, 1, seq_cb, &sl, NULL));
            next = sl.n ? sl.v[0] : 0;
        }
    }
    if (next == 0 && ts != NULL && end < to && to <= cl_ledger_last_seqno(n->l) &&
        (last_coll > end || to > cl_ledger_durable_seqno(n->l))) {
        /* The range ends past the commit point, at an entry already written, and the collection
         * has entries past the commit point (or may have: some of the range is not indexed yet):
         * the listing is not complete yet, so the client is sent on from the first uncommitted
         * seqno (an empty page until the next signature commits it) instead of being told it is
         * done. A collection with no entry there (an unknown one: §8.3) gets no nextLink. A bound
         * beyond the last written entry is cut at the commit point as before, so paging always
         * ends. */
        next = end + 1 > from ? end + 1 : from;
    }
    CL_GUARD(cl_buf_append(&out, CL_LIT("]")));
    if (next != 0) {
        uint64_t nv;
        CL_GUARD(view_for(n, next, &nv));
        CL_GUARD(api_version_param(r, &link, "/app/transactions"));
        CL_GUARD(link_id_param(&link, "collectionId", coll, len));
        cl_txid_format(nv, next, txid, sizeof txid);
        CL_GUARD(append_param(&link, "fromTransactionId", txid, strlen(txid)));
        cl_txid_format(tv, to, txid, sizeof txid);
        CL_GUARD(append_param(&link, "toTransactionId", txid, strlen(txid)));
        CL_GUARD(cl_buf_append(&out, CL_LIT(",\"nextLink\":")));
        CL_GUARD(cl_json_put_string(&out, (const char *)link.data, link.len));
    }
    CL_GUARD(cl_buf_append(&out, CL_LIT(",\"state\":\"Ready\"}")));
    cl_api_reply_text(n, &r->to, 200, out.data, out.len, NULL);
out:
    if (rc < 0)
        internal_error(r, rc);
    cl_free(sl.v);
    cl_buf_free(&link);
    cl_buf_free(&out);
}

/* ---- collections (§8.4) -------------------------------------------------------------------- */

/* How many of n->colls (in order of first seqno) have their first entry at or before seqno. */
static size_t colls_upto(const cl_node *n, uint64_t seqno)
{
    size_t lo = 0, hi = n->n_colls;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (n->colls[mid].first <= seqno)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Appends `{"<field>":"<id>"}` for collections v[from..to), comma-separated. */
static int put_colls(cl_buf *b, const cl_coll *v, size_t from, size_t to, const char *field)
{
    for (size_t i = from; i < to; i++) {
        CL_TRY(cl_buf_append(b, i > from ? ",{\"" : "{\"", i > from ? 3 : 2));
        CL_TRY(cl_buf_append(b, field, strlen(field)));
        CL_TRY(cl_buf_append(b, CL_LIT("\":")));
        CL_TRY(cl_json_put_string(b, v[i].id, v[i].len));
        CL_TRY(cl_buf_append(b, CL_LIT("}")));
    }
    return CL_OK;
}

void cl_api_collections(cl_req *r)
{
    cl_node *n = r->n;
    cl_buf out = CL_BUF_INIT, link = CL_BUF_INIT;
    int rc = CL_OK;
    /* Collections with a committed entry, in order of creation (first seqno): a prefix of
     * n->colls. The reply is written directly (ids are valid UTF-8, checked on write). */
    uint64_t commit = cl_ledger_signed_seqno(n->l);
    size_t count = colls_upto(n, commit);
    if (r->api == CL_API_2022_04_20_PREVIEW) { /* bare array, field "id", one page */
        CL_GUARD(cl_buf_append(&out, CL_LIT("[")));
        CL_GUARD(put_colls(&out, n->colls, 0, count, "id"));
        CL_GUARD(cl_buf_append(&out, CL_LIT("]")));
        cl_api_reply_text(n, &r->to, 200, out.data, out.len, NULL);
        goto out;
    }
    size_t start = 0, alen = 0;
    int bad;
    const char *after = query_id(r, "after", &alen, &bad);
    if (bad) /* answered */
        goto out;
    if (after != NULL && alen > 0 && (uint8_t)after[0] != 0x01) {
        /* Resume after the collection named: its first committed entry (one index lookup) places
         * it; an unknown one (or an internal name) starts the listing over. */
        uint64_t af = 0;
        CL_GUARD(cl_node_collection_first(n, after, alen, commit, &af));
        start = colls_upto(n, af);
    }
    size_t stop =
        count - start > CL_NODE_COLLECTIONS_PAGE ? start + CL_NODE_COLLECTIONS_PAGE : count;
    CL_GUARD(cl_buf_append(&out, CL_LIT("{\"collections\":[")));
    CL_GUARD(put_colls(&out, n->colls, start, stop, "collectionId"));
    CL_GUARD(cl_buf_append(&out, CL_LIT("]")));
    if (stop < count) {
        const cl_coll *c = &n->colls[stop - 1];
        CL_GUARD(api_version_param(r, &link, "/app/collections"));
        CL_GUARD(link_id_param(&link, "after", c->id, c->len));
        CL_GUARD(cl_buf_append(&out, CL_LIT(",\"nextLink\":")));
        CL_GUARD(cl_json_put_string(&out, (const char *)link.data, link.len));
    }
    CL_GUARD(cl_buf_append(&out, CL_LIT("}")));
    cl_api_reply_text(n, &r->to, 200, out.data, out.len, NULL);
out:
    if (rc < 0)
        internal_error(r, rc);
    cl_buf_free(&out);
    cl_buf_free(&link);
}

/* ---- users (§11.3, §11.4) ------------------------------------------------------------------ */

static int is_multi(const cl_req *r) { return strcmp(r->path.seg[1], "ledgerUsers") == 0; }

static json_t *user_json(const cl_user *u, int multi)
{
    if (multi)
        return json_pack("{s:o,s:s}", "assignedRoles", cl_roles_json_array(&u->rs), "userId",
                         u->id);
    return json_pack("{s:s,s:s}", "assignedRole", cl_role_highest(u->rs.builtin), "userId", u->id);
}

/* One page of users in key order (§11.4, PagedUsers): CL_NODE_USERS_PAGE at most, resumed after
 * the user named by `after` (or `afterHex`) in the nextLink, so a page costs O(page + log users)
 * and a user added or removed between pages neither repeats nor skips the others. */
static void users_list(cl_req *r, int multi)
{
    cl_node *n = r->n;
    cl_buf link = CL_BUF_INIT;
    size_t alen = 0;
    int bad;
    const char *after = query_id(r, "after", &alen, &bad);
    if (bad) /* answered */
        return;
    const cl_user *u = after != NULL && alen > 0 ? cl_users_after(&n->users, after, alen)
                                                 : cl_users_first(&n->users);
    json_t *arr = json_array(), *page = NULL;
    const cl_user *last = NULL;
    for (size_t i = 0; arr != NULL && u != NULL && i < CL_NODE_USERS_PAGE; i++) {
        json_t *j = user_json(u, multi);
        if (j == NULL || json_array_append_new(arr, j) != 0) {
            json_decref(arr);
            arr = NULL;
        }
        last = u;
        u = cl_users_next(&n->users, u);
    }
    if (arr == NULL)
        goto out;
    page = json_pack("{s:o}", "ledgerUsers", arr); /* takes arr */
    if (page != NULL && u != NULL) {
        const char *path = multi ? "/app/ledgerUsers" : "/app/users";
        json_t *nl = NULL;
        if (api_version_param(r, &link, path) != CL_OK ||
            link_id_param(&link, "after", last->id, strlen(last->id)) != CL_OK ||
            (nl = json_stringn((const char *)link.data, link.len)) == NULL ||
            json_object_set_new(page, "nextLink", nl) != 0) {
            json_decref(page);
            page = NULL;
        }
    }
out:
    cl_buf_free(&link);
    cl_api_reply(n, &r->to, 200, page, NULL);
}

void cl_api_users_list(cl_req *r) { users_list(r, 0); }
void cl_api_ledger_users_list(cl_req *r) { users_list(r, 1); }

/* The {userId} segment, validated (answers 400 and returns 0 otherwise). */
static int path_user(cl_req *r)
{
    char *k = NULL, *s = NULL;
    int rc = cl_user_id_normalise(r->path.seg[2], r->path.len[2], &k, &s);
    cl_free(k);
    cl_free(s);
    if (rc == CL_EINVAL) {
        cl_api_error(&r->to, 400, "InvalidInput",
                     "A user id is 1 to 256 bytes of UTF-8 without control characters.");
        return 0;
    }
    if (rc < 0) {
        internal_error(r, rc);
        return 0;
    }
    return 1;
}

void cl_api_user_get(cl_req *r)
{
    if (!path_user(r))
        return;
    const cl_user *u = cl_users_find(&r->n->users, r->path.seg[2], r->path.len[2]);
    if (u == NULL) {
        cl_api_error(&r->to, 404, "ResourceNotFound", "User '%.256s' does not exist.",
                     r->path.seg[2]);
        return;
    }
    cl_api_reply(r->n, &r->to, 200, user_json(u, is_multi(r)), NULL);
}

static int last_admin(cl_node *n, const cl_user *u)
{
    return u != NULL && (u->rs.builtin & CL_ROLE_ADMINISTRATOR) && cl_users_admins(&n->users) == 1;
}

static void submit_user_cmd(cl_req *r, int kind, uint8_t op, const cl_roleset *rs)
{
    cl_node *n = r->n;
    cl_buf cmd = CL_BUF_INIT;
    char *value = NULL;
    size_t vlen = 0;
    int rc = op == CL_OP_PUT ? cl_roles_value_encode(rs, &value, &vlen) : CL_OK;
    if (rc == CL_OK)
        rc = cl_cmd_encode_internal(&cmd, CL_TABLE_USERS, op, 0, r->path.seg[2], r->path.len[2],
                                    value ? value : "", vlen);
    cl_pending *p = rc == CL_OK ? cl_pending_new(n, &r->to, kind, NULL, 0) : NULL;
    if (p == NULL)
        internal_error(r, rc < 0 ? rc : CL_ENOMEM);
    else
        cl_node_submit_pending(n, p, &cmd);
    cl_free(value);
    cl_buf_free(&cmd);
}

void cl_api_user_patch(cl_req *r)
{
    cl_node *n = r->n;
    if (!path_user(r))
        return;
    json_t *j = req_json_object(r);
    if (j == NULL)
        return;
    int multi = is_multi(r);
    cl_roleset rs = {0, NULL, 0};
    unsigned bit;
    if (!multi) {
        json_t *v = json_object_get(j, "assignedRole");
        if (!json_is_string(v) || cl_role_parse(json_string_value(v), &bit) < 0) {
            cl_api_error(&r->to, 400, "InvalidInput",
                         "assignedRole must be one of Administrator, Contributor, Reader.");
            goto out;
        }
        rs.builtin = bit;
    } else {
        json_t *a = json_object_get(j, "assignedRoles"), *v;
        size_t i;
        if (!json_is_array(a) || json_array_size(a) == 0 ||
            json_array_size(a) > CL_USER_MAX_ROLES) {
            cl_api_error(&r->to, 400, "InvalidInput",
                         "assignedRoles must be an array of 1 to %d role names.",
                         CL_USER_MAX_ROLES);
            goto out;
        }
        json_array_foreach(a, i, v)
        {
            if (!json_is_string(v)) {
                cl_api_error(&r->to, 400, "InvalidInput",
                             "At #/assignedRoles/%zu: Expected string.", i);
                goto out;
            }
            const char *name = json_string_value(v);
            size_t len = json_string_length(v);
            if (!cl_role_is_builtin(name, len) &&
                (!cl_role_name_valid(name, len) || cl_rolemap_find(&n->roles, name, len) == NULL)) {
                cl_api_error(&r->to, 400, "InvalidInput",
                             "Unknown role name at #/assignedRoles/%zu: '%.64s'.", i, name);
                goto out;
            }
            int rc = cl_roleset_add(&rs, name, len);
            if (rc < 0) {
                internal_error(r, rc);
                goto out;
            }
        }
    }
    const cl_user *u = cl_users_find(&n->users, r->path.seg[2], r->path.len[2]);
    if (last_admin(n, u) && !(rs.builtin & CL_ROLE_ADMINISTRATOR)) {
        cl_api_error(&r->to, 400, "InvalidInput",
                     "The last Administrator cannot be removed or demoted.");
        goto out;
    }
    submit_user_cmd(r, multi ? CL_PW_USER_MULTI : CL_PW_USER_SINGLE, CL_OP_PUT, &rs);
out:
    cl_roleset_free(&rs);
    json_decref(j);
}

void cl_api_user_delete(cl_req *r)
{
    cl_node *n = r->n;
    if (!path_user(r))
        return;
    const cl_user *u = cl_users_find(&n->users, r->path.seg[2], r->path.len[2]);
    if (u == NULL) { /* §11.3 cledger decision: 204, nothing written */
        cl_api_reply_empty(n, &r->to, 204, NULL);
        return;
    }
    if (last_admin(n, u)) {
        cl_api_error(&r->to, 400, "InvalidInput",
                     "The last Administrator cannot be removed or demoted.");
        return;
    }
    submit_user_cmd(r, CL_PW_USER_DELETE, CL_OP_REMOVE, NULL);
}

/* ---- custom roles (§11.5) ------------------------------------------------------------------ */

/* The roleName query parameter: present, a valid name (answers 400 and returns NULL otherwise). */
static const char *query_role(cl_req *r, size_t *len)
{
    const char *v = cl_url_query_get(&r->query, "roleName", len);
    if (v == NULL || *len == 0) {
        cl_api_error(&r->to, 400, "InvalidInput", "The roleName query parameter is required.");
        return NULL;
    }
    if (!cl_role_name_valid(v, *len)) {
        cl_api_error(&r->to, 400, "InvalidInput",
                     "A role name is 1 to %d characters of UTF-8 without control characters.",
                     CL_ROLE_NAME_MAX);
        return NULL;
    }
    return v;
}

static const struct {
    const char *name;
    unsigned actions;
} builtin_defs[] = {
    {"Administrator", CL_ACTSET_STAR},
    {"Contributor", CL_ACT_READ | CL_ACT_WRITE | CL_ACT_EXECUTE},
    {"Reader", CL_ACT_READ},
};

void cl_api_roles_get(cl_req *r)
{
    size_t len;
    const char *name = query_role(r, &len);
    if (name == NULL)
        return;
    unsigned actions = 0;
    const cl_custom_role *d = cl_rolemap_find(&r->n->roles, name, len);
    if (d != NULL)
        actions = d->actions;
    for (size_t i = 0; i < sizeof builtin_defs / sizeof builtin_defs[0]; i++) {
        if (strcmp(name, builtin_defs[i].name) == 0) /* cledger decision: shown, read-only */
            actions = builtin_defs[i].actions;
    }
    if (actions == 0) {
        cl_api_error(&r->to, 404, "ResourceNotFound", "Role '%.64s' does not exist.", name);
        return;
    }
    json_t *acts = cl_actset_json(actions), *nm = json_stringn(name, len);
    json_t *o = acts && nm ? json_pack("{s:o,s:o}", "roleActions", acts, "roleName", nm) : NULL;
    if (o == NULL) {
        if (!(acts && nm)) {
            json_decref(acts);
            json_decref(nm);
        }
        internal_error(r, CL_ENOMEM);
        return;
    }
    json_t *arr = json_array();
    if (arr != NULL && json_array_append_new(arr, o) != 0) {
        json_decref(arr);
        arr = NULL;
    } else if (arr == NULL) {
        json_decref(o);
    }
    cl_api_reply(r->n, &r->to, 200, arr, NULL);
}

static void submit_roles(cl_req *r, uint8_t mode, size_t cnt, const char *const *names,
                         const size_t *nlens, const char *const *values, const size_t *vlens)
{
    static const int kinds[] = {0, CL_PW_ROLES_CREATE, CL_PW_ROLES_REPLACE, CL_PW_ROLES_DELETE};
    cl_buf cmd = CL_BUF_INIT;
    int rc = cl_cmd_encode_roles(&cmd, mode, cnt, names, nlens, values, vlens);
    cl_pending *p = rc == CL_OK ? cl_pending_new(r->n, &r->to, kinds[mode], NULL, 0) : NULL;
    if (p == NULL)
        internal_error(r, rc < 0 ? rc : CL_ENOMEM);
    else
        cl_node_submit_pending(r->n, p, &cmd);
    cl_buf_free(&cmd);
}

/* PUT (create) and PATCH (replace): body [{"roleName":…,"roleActions":[…]}, …]. Every item is
 * checked (form first, then existence) before anything is submitted; the state machine applies
 * all or none. */
void cl_api_roles_put(cl_req *r)
{
    cl_node *n = r->n;
    int create = strcmp(r->http->method, "PUT") == 0;
    json_t *j = req_json(r, 1);
    if (j == NULL)
        return;
    size_t cnt = json_array_size(j);
    const char *names[CL_ROLES_MAX_PER_WRITE];
    size_t nlens[CL_ROLES_MAX_PER_WRITE], vlens[CL_ROLES_MAX_PER_WRITE];
    char *values[CL_ROLES_MAX_PER_WRITE] = {NULL};
    size_t created = 0;
    if (cnt == 0 || cnt > CL_ROLES_MAX_PER_WRITE) {
        cl_api_error(&r->to, 400, "InvalidInput", "The body must be an array of 1 to %d roles.",
                     CL_ROLES_MAX_PER_WRITE);
        cnt = 0;
        goto out;
    }
    for (size_t i = 0; i < cnt; i++) {
        json_t *it = json_array_get(j, i);
        json_t *nm = json_object_get(it, "roleName");
        if (!json_is_object(it)) {
            cl_api_error(&r->to, 400, "InvalidInput", "At #/%zu: Expected object.", i);
            cnt = i;
            goto out;
        }
        if (!json_is_string(nm)) {
            cl_api_error(&r->to, 400, "InvalidInput",
                         "At #/%zu: Missing required string property 'roleName'.", i);
            cnt = i;
            goto out;
        }
        names[i] = json_string_value(nm);
        nlens[i] = json_string_length(nm);
        if (!cl_role_name_valid(names[i], nlens[i])) {
            cl_api_error(&r->to, 400, "InvalidInput",
                         "At #/%zu/roleName: a role name is 1 to %d characters of UTF-8 without "
                         "control characters.",
                         i, CL_ROLE_NAME_MAX);
            cnt = i;
            goto out;
        }
        if (cl_role_is_builtin(names[i], nlens[i])) {
            cl_api_error(&r->to, 400, "InvalidInput",
                         "The built-in role '%s' cannot be created or changed.", names[i]);
            cnt = i;
            goto out;
        }
        for (size_t k = 0; k < i; k++) {
            if (nlens[k] == nlens[i] && memcmp(names[k], names[i], nlens[i]) == 0) {
                cl_api_error(&r->to, 400, "InvalidInput", "Role '%.64s' appears twice.", names[i]);
                cnt = i;
                goto out;
            }
        }
        unsigned actions;
        size_t bad;
        int rc = cl_role_actions_from_json(json_object_get(it, "roleActions"), &actions, &bad);
        if (rc == CL_EINVAL) {
            cl_api_error(&r->to, 400, "InvalidInput", "At #/%zu/roleActions/%zu: unknown action.",
                         i, bad);
            cnt = i;
            goto out;
        }
        if (rc < 0) {
            cl_api_error(&r->to, 400, "InvalidInput",
                         "At #/%zu/roleActions: Expected an array of 1 to %d action strings.", i,
                         CL_ROLE_MAX_ACTIONS);
            cnt = i;
            goto out;
        }
        rc = cl_role_value_encode(actions, &values[i], &vlens[i]);
        if (rc < 0) {
            internal_error(r, rc);
            cnt = i;
            goto out;
        }
    }
    /* The body is well-formed; now the state of the roles. */
    for (size_t i = 0; i < cnt; i++) {
        int exists = cl_rolemap_find(&n->roles, names[i], nlens[i]) != NULL;
        if (create && exists) {
            cl_api_error(&r->to, 400, "InvalidInput", "Role '%.64s' already exists.", names[i]);
            goto out;
        }
        if (!create && !exists) {
            cl_api_error(&r->to, 404, "ResourceNotFound", "Role '%.64s' does not exist.", names[i]);
            goto out;
        }
        created += create;
    }
    if (n->roles.n + created > CL_ROLES_MAX) {
        cl_api_error(&r->to, 400, "InvalidInput",
                     "The ledger cannot hold more than %d custom roles.", CL_ROLES_MAX);
        goto out;
    }
    submit_roles(r, create ? CL_CMD_ROLES_CREATE : CL_CMD_ROLES_REPLACE, cnt, names, nlens,
                 (const char *const *)values, vlens);
out:
    for (size_t i = 0; i < cnt; i++)
        cl_free(values[i]);
    json_decref(j);
}

void cl_api_roles_delete(cl_req *r)
{
    size_t len;
    const char *name = query_role(r, &len);
    if (name == NULL)
        return;
    if (cl_role_is_builtin(name, len)) {
        cl_api_error(&r->to, 400, "InvalidInput", "The built-in role '%s' cannot be deleted.",
                     name);
        return;
    }
    if (cl_rolemap_find(&r->n->roles, name, len) == NULL) {
        cl_api_error(&r->to, 404, "ResourceNotFound", "Role '%.64s' does not exist.", name);
        return;
    }
    const size_t zero = 0;
    submit_roles(r, CL_CMD_ROLES_DELETE, 1, &name, &len, (const char *const[]){""}, &zero);
}

/* ---- governance, enclave, identity, node --------------------------------------------------- */

typedef struct {
    json_t *map; /* key -> value string (PUT) */
    int oom;
} table_fold;

static int fold_cb(void *arg, const cl_ledger_entry *e)
{
    table_fold *f = arg;
    char *k = cl_strndup(e->key, e->key_len);
    if (k == NULL) {
        f->oom = 1;
        return 1;
    }
    if (e->op == CL_OP_REMOVE) {
        json_object_del(f->map, k);
    } else {
        json_t *v = json_stringn(e->value, e->value_len);
        if (v == NULL || json_object_set_new(f->map, k, v) != 0)
            f->oom = 1;
    }
    cl_free(k);
    return f->oom;
}

/* Current state of an internal table: an object key -> value (strings). */
static int table_state(cl_node *n, uint8_t table, json_t **out)
{
    table_fold f = {json_object(), 0};
    CL_ENSURE(f.map != NULL, CL_ENOMEM);
    int rc = cl_ledger_table_scan(n->l, table, fold_cb, &f);
    if (rc == CL_OK && f.oom)
        rc = CL_ENOMEM;
    if (rc < 0) {
        json_decref(f.map);
        return rc;
    }
    *out = f.map;
    return CL_OK;
}

void cl_api_constitution(cl_req *r)
{
    json_t *t = NULL;
    int rc = table_state(r->n, CL_TABLE_CONSTITUTION, &t);
    if (rc < 0) {
        internal_error(r, rc);
        return;
    }
    json_t *v = json_object_get(t, "constitution");
    const char *script = v ? json_string_value(v) : default_constitution;
    size_t len = v ? json_string_length(v) : strlen(default_constitution);
    uint8_t d[32];
    char hex[65];
    cl_sha256(script, len, d);
    cl_hex_encode(d, 32, hex);
    json_t *body = json_pack("{s:s,s:s%}", "digest", hex, "script", script, len);
    json_decref(t);
    cl_api_reply(r->n, &r->to, 200, body, NULL);
}

void cl_api_members(cl_req *r)
{
    json_t *t = NULL;
    int rc = table_state(r->n, CL_TABLE_MEMBERS, &t);
    if (rc < 0) {
        internal_error(r, rc);
        return;
    }
    json_t *arr = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(t, k, v)
    {
        /* value: {"cert": PEM, ...} (CL_TABLE_MEMBERS); malformed records are skipped. */
        json_t *rec = NULL;
        if (cl_json_parse(json_string_value(v), json_string_length(v), 1u << 20, &rec, NULL, 0) < 0)
            continue;
        json_t *cert = json_object_get(rec, "cert");
        if (arr != NULL && json_is_string(cert)) {
            json_t *m = json_pack("{s:O,s:s}", "certificate", cert, "id", k);
            if (m == NULL || json_array_append_new(arr, m) != 0) {
                json_decref(arr);
                arr = NULL;
            }
        }
        json_decref(rec);
    }
    json_decref(t);
    cl_api_reply(r->n, &r->to, 200, arr ? json_pack("{s:o}", "members", arr) : NULL, NULL);
}

/* The virtual quote of a node (docs/api.md): raw = hex of the UTF-8 JSON
 * {"measurement":"cledger virtual v1","report_data":"<node id>"} (compact, sorted keys). */
static json_t *virtual_quote(const char *node_id)
{
    json_t *ev =
        json_pack("{s:s,s:s}", "measurement", CL_NODE_QUOTE_MEASUREMENT, "report_data", node_id);
    char *s = ev ? cl_json_dump(ev) : NULL;
    json_decref(ev);
    if (s == NULL)
        return NULL;
    size_t n = strlen(s);
    char *hex = cl_malloc(2 * n + 1);
    json_t *q = NULL;
    if (hex != NULL) {
        cl_hex_encode((const uint8_t *)s, n, hex);
        uint8_t m[32];
        char mh[65];
        cl_sha256(CL_NODE_QUOTE_MEASUREMENT, strlen(CL_NODE_QUOTE_MEASUREMENT), m);
        cl_hex_encode(m, 32, mh);
        q = json_pack("{s:s,s:s,s:s,s:s}", "nodeId", node_id, "quoteVersion", CL_NODE_QUOTE_VERSION,
                      "raw", hex, "mrenclave", mh);
    }
    cl_free(hex);
    cl_free(s);
    return q;
}

void cl_api_enclave_quotes(cl_req *r)
{
    cl_node *n = r->n;
    if (!n->have_node_id) {
        cl_api_error(&r->to, 500, "InternalError", "This node's identity is unknown.");
        return;
    }
    json_t *t = NULL;
    int rc = table_state(n, CL_TABLE_NODES, &t);
    if (rc < 0) {
        internal_error(r, rc);
        return;
    }
    json_t *quotes = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(t, k, v)
    {
        json_t *rec = NULL;
        if (cl_json_parse(json_string_value(v), json_string_length(v), 1u << 20, &rec, NULL, 0) < 0)
            continue;
        json_t *status = json_object_get(rec, "status");
        if (quotes != NULL && strlen(k) == 64 && json_is_string(status) &&
            strcmp(json_string_value(status), "Trusted") == 0) {
            json_t *q = virtual_quote(k);
            if (q == NULL || json_object_set_new(quotes, k, q) != 0) {
                json_decref(quotes);
                quotes = NULL;
            }
        }
        json_decref(rec);
    }
    json_decref(t);
    if (quotes != NULL && json_object_get(quotes, n->node_id_hex) == NULL) {
        json_t *q = virtual_quote(n->node_id_hex);
        if (q == NULL || json_object_set_new(quotes, n->node_id_hex, q) != 0) {
            json_decref(quotes);
            quotes = NULL;
        }
    }
    cl_api_reply(
        n, &r->to, 200,
        quotes ? json_pack("{s:s,s:o}", "currentNodeId", n->node_id_hex, "enclaveQuotes", quotes)
               : NULL,
        NULL);
}

void cl_api_identity(cl_req *r)
{
    cl_node *n = r->n;
    if (strcmp(r->path.seg[1], n->ledger_id) != 0) {
        cl_api_error(&r->to, 404, "ResourceNotFound", "Unknown ledger id '%.128s'.",
                     r->path.seg[1]);
        return;
    }
    const char *pem = n->service_cert_pem ? n->service_cert_pem : cl_ledger_service_cert_pem(n->l);
    cl_api_reply(n, &r->to, 200,
                 json_pack("{s:s,s:s}", "ledgerId", n->ledger_id, "ledgerTlsCertificate", pem),
                 NULL);
}

void cl_api_not_implemented(cl_req *r)
{
    cl_api_error(&r->to, 501, "NotImplemented",
                 "This operation is not implemented by this build of cledger.");
}

void cl_api_node_failed(cl_reply_to *to)
{
    cl_api_error_hdr(to, 503, "Retry-After", "5", "ServiceUnavailable", CL_NODE_FAILED_MSG);
}

void cl_api_node_ready(cl_req *r)
{
    if (cl_node_failed(r->n)) {
        cl_api_node_failed(&r->to);
        return;
    }
    cl_api_reply(r->n, &r->to, 200, json_pack("{s:b}", "ready", 1), NULL);
}

void cl_api_node_state(cl_req *r)
{
    cl_node *n = r->n;
    json_t *b = json_pack(
        "{s:s,s:s,s:I,s:I,s:I,s:I,s:b}", "nodeId", n->have_node_id ? n->node_id_hex : "", "state",
        cl_node_failed(n) ? "Failed"
        : n->started      ? "PartOfNetwork"
                          : "Initialized",
        "lastSignedSeqno", (json_int_t)cl_ledger_signed_seqno(n->l), "lastSeqno",
        (json_int_t)cl_ledger_last_seqno(n->l), "durableSeqno",
        (json_int_t)cl_ledger_durable_seqno(n->l), "view", (json_int_t)n->last_view, "isPrimary",
        n->w.is_leader != NULL && n->w.is_leader(n->w.impl));
    cl_api_reply(n, &r->to, 200, b, NULL);
}

void cl_api_node_version(cl_req *r)
{
    json_t *v = json_array();
    for (int i = 0; v != NULL && i < CL_API_COUNT; i++) {
        if (json_array_append_new(v, json_string(cl_api_versions[i])) != 0) {
            json_decref(v);
            v = NULL;
        }
    }
    cl_api_reply(r->n, &r->to, 200,
                 v ? json_pack("{s:s,s:s,s:o,s:s}", "name", "cledger", "version", CL_NODE_VERSION,
                               "apiVersions", v, "quoteFormat", CL_NODE_QUOTE_VERSION)
                   : NULL,
                 NULL);
}
