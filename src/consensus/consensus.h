/*
 * consensus.h — libraft glue: a replicated, durable command log driving a state machine.
 *
 * cledgerd runs one cl_consensus per node. Commands are opaque byte strings; a command submitted
 * on the leader is appended to the raft log (cl_rlog: O_DSYNC segments in raft/), replicated, and
 * once committed applied, in log order, by the state machine's apply callback on every node.
 * Issue #3 runs a one-voter cluster (bootstrapped on first start); the multi-node issue adds
 * voters through the same interface.
 *
 * Terms and indexes: apply receives the raft term the command was proposed in (the leader's term
 * at submit time, carried inside the log entry, so it is the same on every node and on replay) and
 * its raft log index. Restart: libraft replays the log after its last snapshot; the state machine
 * tells which indexes it already holds durably via `applied_index` at start, and the glue skips
 * them (apply is not called for index <= applied_index).
 *
 * Snapshots: the state machine's snapshot callback returns CL_ESTATE while it cannot snapshot
 * (e.g. the ledger has entries after its last signature); otherwise a small buffer naming the
 * applied index. The ledger itself lives in the ledger directory, not in the snapshot.
 *
 * Threading: everything on the loop thread. Ownership: submit copies the command; callbacks get
 * borrowed pointers valid for the duration of the call.
 */
#ifndef CLEDGER_CONSENSUS_CONSENSUS_H
#define CLEDGER_CONSENSUS_CONSENSUS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/err.h"

typedef struct cl_consensus cl_consensus;

typedef struct {
    /* Apply one committed command. Return CL_OK and optionally a result pointer handed to the
     * submitter's callback (on the node that submitted it; freed by that callback). `result` is
     * NULL when no submission of this node waits for the command (replay after restart, a
     * follower, a leader that lost the request): then no result may be produced. A negative
     * return is fatal for the node (the state machine diverged): the glue logs and stops. */
    int (*apply)(void *arg, uint64_t term, uint64_t index, const void *cmd, size_t len,
                 void **result);
    /* Optional: called after a batch of applies (e.g. to group-commit the ledger), from a uv_check
     * hook once libraft has applied everything committed in that loop iteration, and always
     * before the done callbacks of the commands it covers. last_index = last index applied. */
    void (*applied_batch)(void *arg, uint64_t last_index);
    /* Optional snapshot support (see above). *applied_index is preset to the raft index the
     * snapshot would cover; on CL_OK it holds the index up to which the state machine holds every
     * command durably (it must be >= the last command applied; entries after that are barriers or
     * configuration). That index is stored in the snapshot; a later start must pass
     * applied_index >= it, otherwise start fails with CL_ECORRUPT. */
    int (*snapshot)(void *arg, uint64_t *applied_index);
    /* Optional: called with begin = 1 before, and begin = 0 after, each run of applied_batch and
     * done callbacks from the loop's check hook (e.g. to send the replies they produce out as
     * one burst). Never nested; nothing is called between the two but those callbacks. */
    void (*completions)(void *arg, int begin);
    void *arg;
} cl_consensus_fsm;

typedef struct {
    const char *dir;               /* raft data directory (created 0700) */
    uint64_t id;                   /* this node's raft id (>= 1) */
    const char *address;           /* this node's raft address "host:port" (for future peers) */
    uint64_t applied_index;        /* the state machine already holds indexes <= this */
    unsigned election_timeout_ms;  /* 0: 1000 */
    unsigned heartbeat_timeout_ms; /* 0: 100 */
    unsigned snapshot_threshold;   /* 0: 40000 entries */
    int log_io;                    /* CL_RLOG_IO_* (rlog.h): how raft log writes reach the disk */
    void (*became_leader)(void *arg, uint64_t term); /* optional */
    void *leader_arg;
} cl_consensus_opts;

/* Called when a submitted command was applied (status CL_OK, with the apply result) or could not
 * be committed (negative status: CL_ESTATE leadership lost -- the command may still commit under a
 * later leader --, CL_ECLOSED shutting down, CL_EIO/CL_ENOMEM). Runs from the loop, never inside
 * cl_consensus_submit or inside apply. */
typedef void (*cl_consensus_done)(void *arg, int status, uint64_t term, uint64_t index,
                                  void *result);

CL_MUST_CHECK int cl_consensus_start(uv_loop_t *loop, const cl_consensus_opts *o,
                                     const cl_consensus_fsm *fsm, cl_consensus **out);
/* Before a start: judges the raft log in dir as a start would (cl_rlog_check: CL_ECORRUPT /
 * CL_EIO with `why` naming the file) and, when it reaches need_index (the state machine's), stores
 * a new term for this node, above every term the log holds and >= floor, durably
 * (cl_rlog_new_term; dir is created if missing). A single voter elects itself in its stored term,
 * so every command proposed after the start carries a term no earlier entry had. *last_index: the
 * log's last raft index (0: none); *term: the term stored, 0 when nothing was (an error, or the log
 * ends before need_index: the directory is left as it was). */
CL_MUST_CHECK int cl_consensus_new_term(const char *dir, uint64_t floor, uint64_t need_index,
                                        uint64_t *last_index, uint64_t *term, char *why,
                                        size_t why_len);
/* CL_ESTATE when this node is not the leader, or is leader but has not yet applied every entry
 * of earlier terms (a barrier is appended on each new leadership; became_leader fires once it is
 * applied). CL_ECLOSED after a fatal error or once stop was called. */
CL_MUST_CHECK int cl_consensus_submit(cl_consensus *c, const void *cmd, size_t len,
                                      cl_consensus_done cb, void *arg);
int cl_consensus_is_leader(const cl_consensus *c);
uint64_t cl_consensus_term(const cl_consensus *c);
uint64_t cl_consensus_commit_index(const cl_consensus *c);
/* 0 while healthy; the fatal error (e.g. a negative apply result) after which the glue closed
 * raft on its own. The owner must still call cl_consensus_stop. */
int cl_consensus_error(const cl_consensus *c);
/* Logs (info) the raft log's statistics: entries, writes, most writes in flight, segments. */
void cl_consensus_log_stats(const cl_consensus *c);
/* Logs, as a warning, the raft log writes slower than its slow_write_ns since the last call,
 * if there were any: how many and the slowest. Meant to be called about once a second, so a slow
 * device shows in the log when it happens, not only in the totals at shutdown. */
void cl_consensus_report_slow_writes(cl_consensus *c);
/* Stops raft (pending submissions fail with CL_ECLOSED), then calls done(arg) and frees c. */
void cl_consensus_stop(cl_consensus *c, void (*done)(void *arg), void *arg);

#endif
