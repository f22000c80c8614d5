/*
 * internal.h — what node.c (lifecycle, state machine, admission, routing, replies) and api.c
 * (route handlers) share. Not part of the node's public interface.
 *
 * A request is held in a cl_req on cl_node_handle's stack; handlers answer synchronously through
 * cl_api_reply / cl_api_error, or (writes) copy the reply target into a cl_pending that lives
 * until the command is applied and the ledger synced.
 */
#ifndef CLEDGER_NODE_INTERNAL_H
#define CLEDGER_NODE_INTERNAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "crypto/hash.h"
#include "node/node.h"
#include "node/roles.h"
#include "node/url.h"
#include "node/users.h"

#define CL_NODE_DEFAULT_COLLECTION "subledger:0"
#define CL_NODE_MAX_CONTENTS 8192        /* §15 */
#define CL_NODE_MAX_COLLECTION_ID 256    /* §15 */
#define CL_NODE_LIST_WINDOW 1000         /* §8.3 seqnos per page */
#define CL_NODE_LIST_MAX_BODY (1u << 20) /* §8.3: 4 MiB there; smaller pages, less held */
#define CL_NODE_LIST_TAIL 2048           /* room kept in a page for its nextLink and end */
#define CL_NODE_LIST_BUDGET_US 2000      /* main-loop time one page may take, by default */
/* Reply bytes waiting for slow readers (cl_node_opts.reply_backlog) above which list pages are
 * refused with 503 until readers catch up, by default: 300 connections that request 1 MiB pages
 * and never read would otherwise hold 300 MB. */
#define CL_NODE_LIST_BACKLOG_MAX (64u << 20)
#define CL_NODE_COLLECTIONS_PAGE 1000 /* §8.4 */
#define CL_NODE_USERS_PAGE 1000 /* §11.4: users per page of GET /app/users, /app/ledgerUsers */
#define CL_NODE_QUOTE_VERSION "CLEDGER_VIRTUAL_v1"
#define CL_NODE_QUOTE_MEASUREMENT "cledger virtual v1"
#define CL_NODE_VERSION "0.1.0"

/* api-version ordinals (§3.1), oldest first. */
enum {
    CL_API_0_1_PREVIEW,
    CL_API_2022_04_20_PREVIEW,
    CL_API_2022_05_13,
    CL_API_2022_11_23,
    CL_API_2023_01_18_PREVIEW,
    CL_API_2024_01_26_PREVIEW,
    CL_API_2024_07_26_PREVIEW,
    CL_API_2024_08_22_PREVIEW,
    CL_API_2024_12_09_PREVIEW,
    CL_API_2026_02_23,
    CL_API_COUNT
};
#define CL_API_NEWEST CL_API_2026_02_23
extern const char *const cl_api_versions[CL_API_COUNT];

/* The node can no longer write: its ledger failed, or its writer reports a fatal error. */
int cl_node_failed(const cl_node *n);

/* Where and how to answer one request (copied into pending writes). */
typedef struct {
    cl_node_reply_fn fn;
    void *ctx;
    char crid[257]; /* x-ms-client-request-id echo ("" : none) */
    char reqid[24]; /* x-ms-request-id */
    int is_app;     /* /app route: 2xx replies carry x-ms-ccf-transaction-id */
} cl_reply_to;

#define CL_NODE_FAILED_MSG "The node failed and can no longer write; it must be restarted."
/* 503 ServiceUnavailable, Retry-After 5, CL_NODE_FAILED_MSG: what a failed node answers. */
void cl_api_node_failed(cl_reply_to *to);

typedef struct cl_req cl_req;
typedef void (*cl_handler)(cl_req *r);

typedef struct {
    const char *method;
    const char *pattern; /* segments: "*" matches one; "*:execute" matches a suffix */
    unsigned action;     /* required action bits; 0: anonymous */
    cl_handler h;
} cl_route;

struct cl_req {
    cl_node *n;
    const cl_http_request *http;
    cl_reply_to to;
    cl_url_path path;
    cl_url_query query;
    const cl_route *route;
    const char *api_raw; /* api-version as sent (last one), or NULL */
    int api;             /* effective ordinal */
    const cl_user *caller;
    char id_hex[CL_NODE_MAX_COLLECTION_ID + 1]; /* a collectionIdHex/afterHex value, decoded */
};

/* A write waiting for its command to be applied and synced. */
enum {
    CL_PW_ENTRY = 1,
    CL_PW_USER_SINGLE,
    CL_PW_USER_MULTI,
    CL_PW_USER_DELETE,
    CL_PW_SIGN,
    CL_PW_ROLES_CREATE,
    CL_PW_ROLES_REPLACE,
    CL_PW_ROLES_DELETE
};
typedef struct cl_pending {
    struct cl_pending *next;
    cl_node *n;
    cl_reply_to to;
    int kind;
    char *name; /* an entry write's collection id (its reply): name_inline, or heap when longer;
                 * NULL for the other kinds */
    uint64_t view, seqno;
    json_t *reply; /* a user write's reply body, made from what its command wrote (write_done) */
    char name_inline[40];
} cl_pending;

/* A user collection and the seqno of its first entry (the order of GET /app/collections). */
typedef struct {
    char *id;
    size_t len;
    uint64_t first;
} cl_coll;

struct cl_node {
    cl_ledger *l;
    cl_node_writer w;
    uv_loop_t *loop;
    uv_timer_t *timer;
    char *ledger_id;
    char *tls_cert_pem;
    char *service_cert_pem; /* NULL: the ledger's */
    unsigned sig_interval_ms, sig_max_entries;
    size_t max_body;
    int strict_api;
    size_t max_collections;
    uint64_t list_budget_ns; /* cl_node_opts.list_budget_us */
    size_t (*reply_backlog)(void *arg);
    void *reply_backlog_arg;
    size_t list_backlog_max;
    int started;
    int failed; /* a ledger sync failed: the node serves errors until restarted */
    cl_users users;
    cl_rolemap roles; /* custom roles (§11.5) */
    int have_node_id;
    char node_id_hex[65];
    uint64_t last_view;   /* view of the last applied entry */
    int unsigned_entries; /* entries applied after the last signature */
    int sign_inflight;
    uint64_t writes_since_sign;
    size_t ncollections; /* user collections other than the default */
    cl_coll *colls;      /* every user collection (the default too), in order of first seqno */
    size_t n_colls, cap_colls;
    cl_pending *waiting, **waiting_tail;
    uint64_t direct_index;
    cl_random_pool keys; /* commit-evidence keys of writes (main loop only) */
};

/* Replies (node.c). cl_api_reply consumes `body` (NULL body with a 2xx status: 500). txid: the
 * x-ms-ccf-transaction-id of a write, or NULL for the read point. */
void cl_api_reply(cl_node *n, const cl_reply_to *t, int status, json_t *body, const char *txid);
void cl_api_reply_empty(cl_node *n, const cl_reply_to *t, int status, const char *txid);
/* As cl_api_reply, with a body already serialised (JSON, len bytes). */
void cl_api_reply_text(cl_node *n, const cl_reply_to *t, int status, const void *body, size_t len,
                       const char *txid);
void cl_api_error(const cl_reply_to *t, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Extra header (e.g. Allow, Retry-After) on an error. */
void cl_api_error_hdr(const cl_reply_to *t, int status, const char *hname, const char *hvalue,
                      const char *code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* The read point "<view>.<last applied seqno>". */
void cl_node_read_point(cl_node *n, char *out, size_t cap);

/* Submits a write command for a pending reply (node.c). On failure replies with the error and
 * frees p. */
void cl_node_submit_pending(cl_node *n, cl_pending *p, const cl_buf *cmd);
cl_pending *cl_pending_new(cl_node *n, const cl_reply_to *t, int kind, const char *name,
                           size_t len);
/* The route actions a user's roles grant (built-in and existing custom roles). */
unsigned cl_node_user_actions(const cl_node *n, const cl_user *u);
/* The seqno of `coll`'s first durable entry at or before `upto` (0: none), one index lookup;
 * coll must not start with 0x01 (CL_EINVAL). */
int cl_node_collection_first(cl_node *n, const char *coll, size_t len, uint64_t upto,
                             uint64_t *first);
/* 1 when `coll` does not exist yet (durably or in the current unsynced batch). */
int cl_node_collection_is_new(cl_node *n, const char *coll, size_t len);

/* Handlers (api.c). */
void cl_api_constitution(cl_req *r);
void cl_api_members(cl_req *r);
void cl_api_enclave_quotes(cl_req *r);
void cl_api_collections(cl_req *r);
void cl_api_list_entries(cl_req *r);
void cl_api_post_entry(cl_req *r);
void cl_api_get_entry(cl_req *r);
void cl_api_receipt(cl_req *r);
void cl_api_status(cl_req *r);
void cl_api_current(cl_req *r);
void cl_api_users_list(cl_req *r);
void cl_api_ledger_users_list(cl_req *r);
void cl_api_user_get(cl_req *r);
void cl_api_user_patch(cl_req *r);
void cl_api_user_delete(cl_req *r);
void cl_api_roles_get(cl_req *r);
void cl_api_roles_put(cl_req *r); /* PUT (create) and PATCH (replace) */
void cl_api_roles_delete(cl_req *r);
void cl_api_not_implemented(cl_req *r);
void cl_api_identity(cl_req *r);
void cl_api_node_ready(cl_req *r);
void cl_api_node_state(cl_req *r);
void cl_api_node_version(cl_req *r);

#endif
