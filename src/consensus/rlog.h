/*
 * rlog.h — cledger's raft_io for libraft 0.15: the raft log, term/vote and snapshots in one
 * directory, with several log writes in flight.
 *
 * Why not raft_uv: raft_uv keeps one log write in flight (the next batch is submitted only after
 * the previous write's callbacks ran on the loop), so a durable write waits for the batch in
 * flight, then for its own; and its snapshot barrier closes the open segment's AIO context with
 * io_destroy(2) on the loop thread (29-52 ms per snapshot, measured). Here appends are batched
 * while `writers` writes are in flight, each batch is one O_DIRECT|O_DSYNC write submitted from
 * the loop through io_uring (or, where io_uring is unavailable, a pwrite from a writer thread),
 * completions are delivered to libraft in log order, and everything that blocks (segment
 * preparation, seals, snapshots, truncation) runs on a maintenance thread. docs/consensus.md §6
 * has the on-disk format and the recovery rules.
 *
 * Scope: storage, the tick timer, time and randomness. `send` fails (RAFT_NOCONNECTION) and no
 * message is ever received: there is no transport yet (a one-voter cluster sends nothing; the
 * multi-node issue adds one). `recover` is not supported.
 *
 * Lifetime: cl_rlog_init fills *io (the caller owns the struct raft_io); raft_init/raft_close use
 * it through its function pointers. io->close (called by raft_close) finishes the writes in
 * flight, cancels the ones not yet submitted, joins the threads and calls its callback from the
 * loop; the io's memory is released before that callback returns. Before raft_init has taken
 * the io (or after raft_init failed), release it with cl_rlog_close.
 */
#ifndef CLEDGER_CONSENSUS_RLOG_H
#define CLEDGER_CONSENSUS_RLOG_H

#include <raft.h>
#include <stdint.h>
#include <uv.h>

#include "base/err.h"

/* How batch writes reach the disk. AUTO: io_uring when the kernel allows it (io_uring_setup can
 * be disabled by kernel.io_uring_disabled or a seccomp filter), else writer threads. */
enum { CL_RLOG_IO_AUTO = 0, CL_RLOG_IO_THREADS = 1, CL_RLOG_IO_URING = 2 };

typedef struct {
    unsigned writers;       /* log writes in flight (0: 1; at most 8) */
    uint64_t segment_bytes; /* segment file size (0: 8 MiB; a multiple of 4096, >= 64 KiB) */
    int io;                 /* CL_RLOG_IO_*; URING fails io->start when io_uring is unavailable */
    uint64_t slow_write_ns; /* a batch write slower than this is counted slow (0: 10 ms) */
    unsigned lock_wait_ms;  /* how long a load waits for a segment's lock (0: 30 s) */
} cl_rlog_opts;

/* dir must exist. Refuses (CL_EUNSUPPORTED, logged) a directory written by raft_uv. */
CL_MUST_CHECK int cl_rlog_init(struct raft_io *io, uv_loop_t *loop, const char *dir,
                               const cl_rlog_opts *o);
/* Reads and judges the raft log in dir as a start would (every rule of docs/consensus.md §8) and
 * changes nothing: no torn tail is cut, no file removed. *last_index: the log's last index (the
 * snapshot's without entries; 0: empty). 0, or what io->load would return (RAFT_CORRUPT,
 * RAFT_IOERR, ...) with `why` saying which file and what. For callers that must not change other
 * state before they know the log will load (cledgerd cuts its ledger back to the last signature
 * only then). */
CL_MUST_CHECK int cl_rlog_check(const char *dir, uint64_t *last_index, char *why, size_t why_len);
/* Stores, durably (meta: tmp, fsync, rename, directory fsync), a new current term for the raft log
 * in dir, with no vote: *term = max(every term the log holds + 1, floor). A single voter elects
 * itself in its stored term, so everything proposed after the next start carries a term no
 * earlier entry has. The log is judged as by cl_rlog_check first (a damaged log: its error, and
 * nothing stored), and *last_index is what cl_rlog_check would give; when it is below need_index
 * nothing is stored either (0, *term 0). A log whose meta was lost is reported as a load would
 * report it. A directory never bootstrapped keeps the term: its bootstrap
 * writes the configuration entry in term 1 and leaves the stored term. dir must exist. */
CL_MUST_CHECK int cl_rlog_new_term(const char *dir, uint64_t floor, uint64_t need_index,
                                   uint64_t *last_index, uint64_t *term, char *why, size_t why_len);

/* For an io that raft does not own (never passed to raft_init, or raft_init failed): same as
 * io->close. cb may be NULL. */
void cl_rlog_close(struct raft_io *io, void (*cb)(struct raft_io *io));

/* Test seam (test_rlog): when set, it is called before every step that changes the disk in a
 * truncation, a snapshot installation or a load that cuts a torn tail (each segment removal, each
 * block a cut zeroes) and once after a truncation's last step, so a test can copy the directory
 * as a crash at that point would leave it. NULL in every program. */
extern void (*cl_rlog_step_hook)(void);

/* Frees what io->load returned (or a snapshot io->snapshot_get delivered, with entries NULL) the
 * way libraft does: entries by batch (an entry without a batch owns its payload), then the array,
 * then the snapshot. For callers that load outside libraft (tests, tools). Any part may be
 * NULL / 0. */
void cl_rlog_loaded_free(struct raft_snapshot *snap, struct raft_entry *entries, size_t n);

/* Statistics since start (loop thread). */
typedef struct {
    uint64_t writes;        /* batches written */
    uint64_t entries;       /* entries written */
    uint64_t max_inflight;  /* most batches in flight at once */
    uint64_t segments;      /* segments prepared */
    uint64_t max_write_ns;  /* the slowest batch write (submission to completion, through to the
                             * device) */
    uint64_t sum_write_ns;  /* all batch writes together: sum_write_ns / writes is the mean */
    uint64_t slow_writes;   /* batch writes slower than slow_write_ns */
    uint64_t slow_write_ns; /* the threshold in force (cl_rlog_opts; default 10 ms) */
    int uring;              /* batch writes go through io_uring (else writer threads) */
} cl_rlog_stats;
#define CL_RLOG_SLOW_WRITE_NS (10ull * 1000 * 1000)
void cl_rlog_get_stats(const struct raft_io *io, cl_rlog_stats *out);
/* The batch writes slower than slow_write_ns since the last call (loop thread): how many
 * and the slowest (0 and 0: none). Each call starts a new window; the lifetime figures in
 * cl_rlog_stats are not affected. */
void cl_rlog_take_slow(struct raft_io *io, uint64_t *count, uint64_t *max_ns);

#endif
