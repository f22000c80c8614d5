/*
 * node.h — the ACL data-plane service of one cledgerd node (spec/ledger-api.md): routing, the one
 * admission function (identity → 401, role → 403, method → 405, body limits → 413/415), handlers,
 * users and roles, the state machine that applies committed commands to the ledger, and the
 * signature cadence.
 *
 * Transport-neutral: cl_node_handle takes a parsed request (net/http.h) and answers through a
 * reply callback, exactly once, possibly later (writes answer after commit). The daemon wires it
 * to the HTTPS server; unit tests call it with hand-built requests.
 *
 * Writes: handlers encode a command (node/command.h) and submit it through a cl_node_writer —
 * consensus (cledgerd) or direct (tests: applies at once, as a one-node cluster would). Every
 * committed command is applied by cl_node_apply, on every node, in log order; it is the only code
 * that changes the ledger, so replicas stay byte-identical.
 *
 * Threading: one loop thread. Ownership: the node borrows the ledger and the writer; strings in
 * requests are borrowed for the duration of cl_node_handle (handlers copy what they keep).
 */
#ifndef CLEDGER_NODE_NODE_H
#define CLEDGER_NODE_NODE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/err.h"
#include "consensus/consensus.h"
#include "ledger/ledger.h"
#include "net/http.h"

typedef struct cl_node cl_node;

/* Reply sink: status, header pairs (name, value), body. Called exactly once per request. */
typedef void (*cl_node_reply_fn)(void *ctx, int status, const char *const *headers, size_t nh,
                                 const void *body, size_t len);

/* How commands reach the log. submit: CL_OK (cb will be called once) or CL_ESTATE (not leader).
 * error (may be NULL): 0 while the log can take writes, else the fatal error after which it never
 * will (the node must be restarted: /node/ready answers 503, /node/state says "Failed"). */
typedef struct {
    int (*submit)(void *impl, const void *cmd, size_t len, cl_consensus_done cb, void *arg);
    int (*is_leader)(void *impl);
    uint64_t (*term)(void *impl);
    void *impl;
    int (*error)(void *impl);
} cl_node_writer;

typedef struct {
    cl_ledger *ledger;            /* borrowed */
    cl_node_writer writer;        /* see above */
    uv_loop_t *loop;              /* for the signature timer */
    const char *ledger_id;        /* for /ledgerIdentity and defaults; "cledger" if NULL */
    const char *tls_cert_pem;     /* the node's TLS certificate PEM (identity endpoint) */
    const char *service_cert_pem; /* the service identity PEM (ledgerTlsCertificate) */
    unsigned sig_interval_ms;     /* 0: 20 */
    unsigned sig_max_entries;     /* 0: 1000 */
    size_t max_body_bytes;        /* 0: 1 MiB */
    int strict_api_version;       /* §3.2 rule 2 */
    size_t max_collections;       /* 0: 5000 (§15; the default collection is not counted) */
    unsigned list_budget_us;      /* main-loop time one list page may take; 0: 2000 */
    /* Reply bytes queued for slow readers (cl_http_server_queued_bytes); NULL: not watched.
     * While it exceeds list_backlog_max (0: 64 MiB), list pages get 503 + Retry-After. */
    size_t (*reply_backlog)(void *arg);
    void *reply_backlog_arg;
    size_t list_backlog_max;
} cl_node_opts;

/* The result of cl_node_apply, handed to the submitter's callback, which frees it with free()
 * (it is malloc'd). status: CL_OK, or a deterministic rejection that wrote nothing: CL_EOVERFLOW
 * (collection capacity, custom-role capacity), CL_ESTATE (would remove the last Administrator),
 * CL_EEXIST (bootstrap admin when users exist, creation of an existing role), CL_ENOENT (removal
 * of an unknown user, change or deletion of an unknown role, assignment of a deleted role). */
typedef struct {
    int status;
    uint64_t view;  /* view (= term) of the entry written */
    uint64_t seqno; /* seqno of the entry written (0 when rejected) */
    /* A users-table PUT that was applied: the user id it wrote under and its role value (the
     * command's, cl_roles_value_decode form), so the reply shows what this write did even when
     * a later command of the same batch changed or removed the user before replies are made.
     * Both point into the result's own allocation; NULL otherwise. */
    const char *user_id;
    const char *user_value;
    size_t user_value_len;
} cl_node_result;

/* Creates the node and rebuilds its in-memory state (users) from the ledger, so cl_node_apply
 * may run (consensus replay) before cl_node_start. */
CL_MUST_CHECK int cl_node_new(const cl_node_opts *o, cl_node **out);
/* Replace the writer (the daemon creates the node before consensus, whose state machine is the
 * node, then plugs consensus in). */
CL_MUST_CHECK int cl_node_set_writer(cl_node *n, const cl_node_writer *w);
/* Starts serving (/node/ready answers 200, /app routes are served; before: 503) and the
 * signature timer. */
CL_MUST_CHECK int cl_node_start(cl_node *n);
/* Frees the node. Stop consensus first (its pending callbacks reference the node). Writes still
 * waiting for a sync are answered 503. The timer handle is closed asynchronously: run the loop
 * once (e.g. UV_RUN_NOWAIT) before uv_loop_close. */
void cl_node_free(cl_node *n);
/* Submits a SIGN command now if this node leads and entries were applied after the last
 * signature (what the timer does). CL_OK also when there is nothing to sign. */
CL_MUST_CHECK int cl_node_submit_signature(cl_node *n);

/* Handle one request (see above). */
void cl_node_handle(cl_node *n, const cl_http_request *req, cl_node_reply_fn reply, void *ctx);

/* Shutdown: stop proposing signatures. Returns 1 once nothing this node submitted (writes,
 * signatures) is still waiting for consensus, so consensus can be closed with nothing in flight. */
int cl_node_quiesce(cl_node *n);

/* The state machine: apply one committed command (called by consensus on every node). */
CL_MUST_CHECK int cl_node_apply(cl_node *n, uint64_t term, uint64_t index, const void *cmd,
                                size_t len, void **result);
/* After a batch of applies: group-commit the ledger (one fdatasync) and answer waiting writes. */
void cl_node_applied_batch(cl_node *n, uint64_t last_index);

/* Bootstrap: make `user_id` (ACL fingerprint form or any id) an Administrator if the users table
 * is empty (first start). Submits a command (applied only if the table is still empty then); cb
 * as for writes. When users exist already nothing is submitted and cb is called at once with
 * CL_OK and a NULL result. CL_EINVAL for an invalid id, CL_ESTATE when not the leader. */
CL_MUST_CHECK int cl_node_bootstrap_admin(cl_node *n, const char *user_id, cl_consensus_done cb,
                                          void *arg);

/* A direct writer for tests and tools: submit applies the command at once through cl_node_apply
 * and cl_node_applied_batch, then calls cb. */
cl_node_writer cl_node_direct_writer(cl_node **node_slot);

#endif
