/*
 * consensus.c — cl_consensus on libraft 0.15 and cl_rlog (rlog.h), its raft_io.
 *
 * See docs/consensus.md for the rules this file implements. In short:
 *
 *  - Framing: every RAFT_COMMAND entry is `u64 LE term || u64 LE len || command || zero padding`
 *    to a multiple of 8 bytes; term = the leader's term when the command was submitted. The length
 *    and padding were required by raft_uv (before cl_rlog) and are kept so the command format
 *    does not depend on the storage.
 *  - Apply index: libraft's fsm->apply does not pass the index. libraft 0.15 applies committed
 *    entries in one loop (replicationApply: `for (index = last_applied + 1; index <= commit_index;
 *    index++) { ...apply command / barrier / change...; r->last_applied = index; }`), calling
 *    fsm->apply before it stores last_applied, and that loop is the only caller of fsm->apply.
 *    Barrier and configuration entries go through the same loop and advance last_applied without
 *    reaching the FSM. So during fsm->apply the entry's index is exactly raft.last_applied + 1.
 *    A sanity check makes an index that does not increase fatal.
 *  - Restart: libraft replays everything after its snapshot; apply of index <= applied_index is
 *    skipped (returns success, the state machine is not called).
 *  - Deferred callbacks: apply runs inside libraft; everything else the user sees (applied_batch,
 *    submit completions, became_leader) runs from a uv_check hook, i.e. once per loop iteration
 *    after libraft has applied every committed entry it knew of in that iteration. Completions are
 *    delivered after the applied_batch call that covers them.
 *  - Leadership: the check hook polls raft state/term; when this node is leader in a new term the
 *    glue appends a barrier, and only once the barrier is applied (every earlier entry applied) is
 *    the node reported leader (is_leader, submit, became_leader).
 */
#include "consensus/consensus.h"

#include <errno.h>
#include <raft.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "base/alloc.h"
#include "base/cursor.h"
#include "base/file.h"
#include "base/log.h"
#include "consensus/rlog.h"

#define FRAME_HDR 16 /* u64 LE term, u64 LE command length */
#define SNAP_LEN 8   /* u64 LE applied index */
#define DEFAULT_ELECTION_MS 1000
#define DEFAULT_HEARTBEAT_MS 100
/* A snapshot makes the node fdatasync the ledger on the loop (2.5-3.4 ms measured; with raft_uv
 * it also cost a 29-52 ms io_destroy, which cl_rlog does not have). libraft keeps the entries
 * since the last snapshot in memory (about 220 bytes each here: 100,000 entries cost 22 MB of
 * RSS), so 40,000 is the compromise: a snapshot every 8 s at 5k/s, ~9 MB of log. */
#define DEFAULT_SNAPSHOT_THRESHOLD 40000

typedef struct cl_sub cl_sub;
struct cl_sub {
    struct raft_apply req; /* req.data = this */
    cl_consensus *c;
    cl_consensus_done cb;
    void *arg;
    uint64_t term;
    uint64_t index;
    int status;
    void *result;
    cl_sub *prev, *next; /* in-flight list, then completion FIFO (next only) */
};

struct cl_consensus {
    uv_loop_t *loop;
    struct raft raft;
    struct raft_io io; /* cl_rlog */
    struct raft_fsm rfsm;
    cl_consensus_fsm fsm;
    void (*became_leader)(void *arg, uint64_t term);
    void *leader_arg;

    uint64_t skip_through;   /* opts.applied_index: apply is skipped for index <= this */
    uint64_t last_cmd_index; /* last command index the FSM holds (applied or skipped) */
    uint64_t batch_index;    /* last index passed to fsm.apply */
    uint64_t batch_reported; /* last index passed to fsm.applied_batch */
    uint64_t restored_index; /* applied index named by the snapshot restored at start (0: none) */
    int starting;            /* inside raft_start (restore at start vs. install at run time) */

    uv_check_t check;
    struct raft_barrier barrier;
    int barrier_inflight;
    uint64_t barrier_term;      /* term the in-flight barrier was issued in */
    uint64_t barrier_done_term; /* term whose barrier has been applied */
    uint64_t leader_term;       /* term in which raft is leader as last seen (0: not leader) */
    int ready;                  /* leader of leader_term and its barrier applied */

    cl_sub *done_head, *done_tail;
    cl_sub *fly_head, *fly_tail; /* submissions owned by libraft, in log order */

    int fatal;       /* first fatal error (apply/state machine failure) */
    int in_raft_cb;  /* inside a callback libraft made (apply/snapshot/restore) */
    int closing;     /* raft_close called */
    int raft_closed; /* raft and its I/O fully closed */
    int stop_requested;
    int finishing; /* the check handle is closing; c is freed in its close callback */
    void (*stop_cb)(void *arg);
    void *stop_arg;
};

/* ---- helpers ---------------------------------------------------------------------------- */

static int map_raft_err(const cl_consensus *c, int rv)
{
    switch (rv) {
    case 0:
        return CL_OK;
    case RAFT_NOMEM:
        return CL_ENOMEM;
    case RAFT_NOTLEADER:
    case RAFT_LEADERSHIPLOST:
        return c != NULL && c->closing ? CL_ECLOSED : CL_ESTATE;
    case RAFT_SHUTDOWN:
    case RAFT_CANCELED:
        return CL_ECLOSED;
    case RAFT_TOOBIG:
    case RAFT_TOOMANY:
        return CL_EOVERFLOW;
    case RAFT_INVALID:
    case RAFT_MALFORMED:
    case RAFT_BADID:
    case RAFT_BADROLE:
    case RAFT_NAMETOOLONG:
        return CL_EINVAL;
    case RAFT_CORRUPT:
        return CL_ECORRUPT;
    case RAFT_NOTFOUND:
        return CL_ENOENT;
    case RAFT_CANTBOOTSTRAP:
    case RAFT_CANTCHANGE:
    case RAFT_BUSY:
        return CL_ESTATE;
    default:
        return CL_EIO;
    }
}

static void set_fatal(cl_consensus *c, int rc, const char *what)
{
    if (c->fatal == 0) {
        c->fatal = rc < 0 ? rc : CL_EIO;
        cl_logf(CL_LOG_ERROR, "consensus: %s failed (%s); stopping raft", what,
                cl_errname(c->fatal));
    }
}

static void fly_remove(cl_consensus *c, cl_sub *s)
{
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        c->fly_head = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    else
        c->fly_tail = s->prev;
    s->prev = s->next = NULL;
}

static void push_done(cl_consensus *c, cl_sub *s)
{
    s->next = NULL;
    if (c->done_tail != NULL)
        c->done_tail->next = s;
    else
        c->done_head = s;
    c->done_tail = s;
}

static void flush_batch(cl_consensus *c)
{
    if (c->batch_index > c->batch_reported) {
        c->batch_reported = c->batch_index;
        if (c->fsm.applied_batch != NULL)
            c->fsm.applied_batch(c->fsm.arg, c->batch_reported);
    }
}

/* Completions in submission order; a callback may submit again or stop (both only queue work). */
static void flush_done(cl_consensus *c)
{
    while (c->done_head != NULL) {
        cl_sub *s = c->done_head;
        c->done_head = s->next;
        if (c->done_head == NULL)
            c->done_tail = NULL;
        if (s->cb != NULL)
            s->cb(s->arg, s->status, s->term, s->index, s->result);
        cl_free(s);
    }
}

/* ---- raft FSM ----------------------------------------------------------------------------- */

static int fsm_apply(struct raft_fsm *rfsm, const struct raft_buffer *buf, void **result)
{
    cl_consensus *c = rfsm->data;
    /* The index: see the file comment (replicationApply stores last_applied after this call). */
    uint64_t index = (uint64_t)c->raft.last_applied + 1;
    *result = NULL;
    if (c->fatal != 0)
        return RAFT_IOERR;
    if (index <= c->last_cmd_index && index > c->skip_through) {
        cl_logf(CL_LOG_ERROR, "consensus: apply index %llu does not follow %llu",
                (unsigned long long)index, (unsigned long long)c->last_cmd_index);
        set_fatal(c, CL_ESTATE, "apply index check");
        return RAFT_IOERR;
    }
    uint64_t clen = buf->len >= FRAME_HDR ? cl_load_u64((const uint8_t *)buf->base + 8) : 0;
    if (buf->len < FRAME_HDR || buf->len % 8 != 0 || clen > buf->len - FRAME_HDR ||
        buf->len - FRAME_HDR - clen >= 8) {
        set_fatal(c, CL_EFORMAT, "command framing");
        return RAFT_MALFORMED;
    }
    c->last_cmd_index = index;
    if (index <= c->skip_through)
        return 0; /* the state machine already holds it durably */
    uint64_t term = cl_load_u64(buf->base);
    /* A result is only wanted when a submission of this node waits for this index (libraft then
     * calls its callback right after this returns); otherwise libraft would drop it. */
    const cl_sub *w = c->fly_head;
    int waited = w != NULL && (uint64_t)w->req.index == index;
    void *res = NULL;
    c->in_raft_cb++;
    int rc = c->fsm.apply(c->fsm.arg, term, index, (const uint8_t *)buf->base + FRAME_HDR,
                          (size_t)clen, waited ? &res : NULL);
    c->in_raft_cb--;
    if (rc < 0) {
        c->last_cmd_index = index - 1;
        set_fatal(c, rc, "state machine apply");
        return RAFT_IOERR;
    }
    c->batch_index = index;
    *result = res;
    return 0;
}

/* The snapshot covers raft.last_applied. The state machine must hold every command up to there
 * durably; it reports the index it holds in *applied_index (preset to raft.last_applied). Entries
 * after the last command (barriers, configuration) need nothing from the state machine. */
static int fsm_snapshot(struct raft_fsm *rfsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
    cl_consensus *c = rfsm->data;
    uint64_t covers = (uint64_t)c->raft.last_applied;
    if (c->fsm.snapshot == NULL || c->fatal != 0)
        return RAFT_BUSY;
    flush_batch(c); /* let the state machine group-commit what it applied */
    uint64_t held = covers;
    c->in_raft_cb++;
    int rc = c->fsm.snapshot(c->fsm.arg, &held);
    c->in_raft_cb--;
    if (rc < 0 || held < c->last_cmd_index)
        return RAFT_BUSY; /* libraft ignores RAFT_BUSY and retries after later applies */
    if (held > covers)
        held = covers;
    struct raft_buffer *b = raft_malloc(sizeof *b);
    uint8_t *p = raft_malloc(SNAP_LEN);
    if (b == NULL || p == NULL) {
        raft_free(b);
        raft_free(p);
        return RAFT_NOMEM;
    }
    cl_store_u64(p, held);
    b->base = p;
    b->len = SNAP_LEN;
    *bufs = b; /* fsm version 1: libraft owns and raft_free()s both */
    *n_bufs = 1;
    cl_logf(CL_LOG_INFO, "consensus: snapshot at raft index %llu (state machine holds %llu)",
            (unsigned long long)covers, (unsigned long long)held);
    return 0;
}

static int fsm_restore(struct raft_fsm *rfsm, struct raft_buffer *buf)
{
    cl_consensus *c = rfsm->data;
    if (buf->len != SNAP_LEN) {
        cl_logf(CL_LOG_ERROR, "consensus: malformed snapshot (%zu bytes)", buf->len);
        return RAFT_MALFORMED;
    }
    uint64_t held = cl_load_u64(buf->base);
    if (!c->starting) {
        /* InstallSnapshot from a leader: the ledger would have to be fetched from a peer. */
        cl_logf(CL_LOG_ERROR, "consensus: snapshot install at run time is not supported");
        return RAFT_CANCELED;
    }
    if (held > c->skip_through) {
        cl_logf(
            CL_LOG_ERROR,
            "consensus: raft snapshot needs the state machine to hold index %llu, it holds %llu",
            (unsigned long long)held, (unsigned long long)c->skip_through);
        return RAFT_CORRUPT;
    }
    c->restored_index = held;
    raft_free(buf->base); /* on success the buffer belongs to the FSM */
    return 0;
}

/* ---- leadership --------------------------------------------------------------------------- */

static void on_barrier(struct raft_barrier *req, int status)
{
    cl_consensus *c = req->data;
    c->barrier_inflight = 0;
    if (status == 0)
        c->barrier_done_term = c->barrier_term;
}

static void poll_leader(cl_consensus *c)
{
    if (c->closing || c->fatal != 0)
        return;
    uint64_t term = (uint64_t)c->raft.current_term;
    if (c->raft.state != RAFT_LEADER) {
        c->leader_term = 0;
        c->ready = 0;
        return;
    }
    if (c->leader_term != term) {
        c->leader_term = term;
        c->ready = 0;
    }
    if (c->ready)
        return;
    if (c->barrier_done_term == term) {
        c->ready = 1;
        cl_logf(CL_LOG_INFO, "consensus: leader in term %llu", (unsigned long long)term);
        if (c->became_leader != NULL)
            c->became_leader(c->leader_arg, term);
        return;
    }
    if (!c->barrier_inflight) {
        c->barrier.data = c;
        c->barrier_term = term;
        int rv = raft_barrier(&c->raft, &c->barrier, on_barrier);
        if (rv == 0)
            c->barrier_inflight = 1;
        else
            cl_logf(CL_LOG_WARN, "consensus: barrier failed: %s", raft_strerror(rv));
    }
}

/* ---- shutdown ----------------------------------------------------------------------------- */

static void on_check_closed(uv_handle_t *h)
{
    cl_consensus *c = h->data;
    flush_done(c);
    void (*cb)(void *) = c->stop_cb;
    void *arg = c->stop_arg;
    cl_free(c);
    if (cb != NULL)
        cb(arg);
}

static void finish_stop(cl_consensus *c)
{
    if (c->finishing)
        return;
    c->finishing = 1;
    uv_close((uv_handle_t *)&c->check, on_check_closed);
}

static void on_raft_closed(struct raft *r)
{
    cl_consensus *c = r->data;
    c->raft_closed = 1;
    /* Commands applied before the close still get their batch call and their CL_OK. */
    flush_batch(c);
    flush_done(c);
    if (c->stop_requested)
        finish_stop(c);
}

void cl_consensus_log_stats(const cl_consensus *c)
{
    if (c == NULL)
        return;
    cl_rlog_stats st;
    cl_rlog_get_stats(&c->io, &st);
    /* A slow log write (over 10 ms by default) held every write in flight: worth a warning. */
    cl_logf(st.slow_writes > 0 ? CL_LOG_WARN : CL_LOG_INFO,
            "consensus: raft log: %llu entries in %llu writes (%s, at most %llu in flight, "
            "%.1f us on average, the slowest %.1f ms, %llu over %llu ms), %llu segments prepared",
            (unsigned long long)st.entries, (unsigned long long)st.writes,
            st.uring ? "io_uring" : "writer threads", (unsigned long long)st.max_inflight,
            st.writes ? (double)st.sum_write_ns / (double)st.writes / 1e3 : 0.0,
            (double)st.max_write_ns / 1e6, (unsigned long long)st.slow_writes,
            (unsigned long long)(st.slow_write_ns / 1000000), (unsigned long long)st.segments);
}

void cl_consensus_report_slow_writes(cl_consensus *c)
{
    if (c == NULL || c->closing)
        return; /* closing: the totals cl_consensus_log_stats logs cover the rest */
    uint64_t n = 0, max_ns = 0;
    cl_rlog_take_slow(&c->io, &n, &max_ns);
    if (n == 0)
        return;
    cl_rlog_stats st;
    cl_rlog_get_stats(&c->io, &st);
    cl_logf(CL_LOG_WARN, "raft log: %llu write(s) slower than %llu ms, the slowest %.1f ms",
            (unsigned long long)n, (unsigned long long)(st.slow_write_ns / 1000000),
            (double)max_ns / 1e6);
}

static void begin_close(cl_consensus *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->ready = 0;
    cl_consensus_log_stats(c);
    /* Fails every queued request synchronously (RAFT_LEADERSHIPLOST -> CL_ECLOSED). */
    raft_close(&c->raft, on_raft_closed);
}

static void on_check(uv_check_t *h)
{
    cl_consensus *c = h->data;
    if (c->closing)
        return;
    int burst =
        c->fsm.completions != NULL && (c->done_head != NULL || c->batch_index > c->batch_reported);
    if (burst)
        c->fsm.completions(c->fsm.arg, 1);
    flush_batch(c);
    flush_done(c);
    if (burst)
        c->fsm.completions(c->fsm.arg, 0);
    if (c->fatal != 0 || c->stop_requested) {
        begin_close(c);
        return;
    }
    poll_leader(c);
}

/* ---- public API ----------------------------------------------------------------------------- */

static void on_start_failed_closed(struct raft *r)
{
    cl_consensus *c = r->data;
    cl_free(c);
}

static void on_io_released(struct raft_io *io)
{
    cl_free(io->data); /* the cl_consensus (io->data set below) */
}

int cl_consensus_new_term(const char *dir, uint64_t floor, uint64_t need_index,
                          uint64_t *last_index, uint64_t *term, char *why, size_t why_len)
{
    *last_index = *term = 0;
    struct stat st;
    if (need_index > 0 && stat(dir, &st) != 0 && errno == ENOENT)
        return CL_OK; /* no log at all: it ends before need_index, and nothing is created */
    if (cl_mkdir_durable(dir, 0700) != CL_OK) {
        snprintf(why, why_len, "mkdir %s: %s", dir, strerror(errno));
        return CL_EIO;
    }
    return map_raft_err(NULL,
                        cl_rlog_new_term(dir, floor, need_index, last_index, term, why, why_len));
}

int cl_consensus_start(uv_loop_t *loop, const cl_consensus_opts *o, const cl_consensus_fsm *fsm,
                       cl_consensus **out)
{
    CL_ENSURE(loop != NULL && o != NULL && fsm != NULL && out != NULL, CL_EINVAL);
    CL_ENSURE(fsm->apply != NULL && o->dir != NULL && o->address != NULL && o->id >= 1, CL_EINVAL);
    *out = NULL;
    unsigned election = o->election_timeout_ms ? o->election_timeout_ms : DEFAULT_ELECTION_MS;
    unsigned heartbeat = o->heartbeat_timeout_ms ? o->heartbeat_timeout_ms : DEFAULT_HEARTBEAT_MS;
    CL_ENSURE(heartbeat < election, CL_EINVAL);

    if (cl_mkdir_durable(o->dir, 0700) != CL_OK) {
        cl_logf(CL_LOG_ERROR, "consensus: mkdir %s: %s", o->dir, strerror(errno));
        return CL_EIO;
    }

    cl_consensus *c = cl_calloc(1, sizeof *c);
    CL_ENSURE(c != NULL, CL_ENOMEM);
    c->loop = loop;
    c->fsm = *fsm;
    c->became_leader = o->became_leader;
    c->leader_arg = o->leader_arg;
    c->skip_through = o->applied_index;
    c->last_cmd_index = o->applied_index;
    c->rfsm.version = 1;
    c->rfsm.data = c;
    c->rfsm.apply = fsm_apply;
    c->rfsm.snapshot = fsm_snapshot;
    c->rfsm.restore = fsm_restore;

    cl_rlog_opts ro = {.io = o->log_io};
    int rc = cl_rlog_init(&c->io, loop, o->dir, &ro);
    if (rc != CL_OK) {
        cl_free(c);
        return rc;
    }
    c->io.data = c; /* raft_init replaces it with the struct raft */
    int rv = raft_init(&c->raft, &c->io, &c->rfsm, o->id, o->address);
    if (rv != 0) {
        cl_logf(CL_LOG_ERROR, "consensus: raft_init: %s", raft_errmsg(&c->raft));
        c->io.data = c;
        cl_rlog_close(&c->io, on_io_released);
        return map_raft_err(NULL, rv);
    }
    c->raft.data = c;

    /* First start on this directory: a one-voter configuration. */
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    rv = raft_configuration_add(&conf, o->id, o->address, RAFT_VOTER);
    if (rv == 0) {
        rv = raft_bootstrap(&c->raft, &conf);
        if (rv == RAFT_CANTBOOTSTRAP)
            rv = 0; /* already bootstrapped */
        else if (rv == 0)
            cl_logf(CL_LOG_INFO, "consensus: bootstrapped %s as the only voter", o->dir);
    }
    raft_configuration_close(&conf);
    if (rv != 0) {
        cl_logf(CL_LOG_ERROR, "consensus: bootstrap: %s", raft_errmsg(&c->raft));
        rc = map_raft_err(NULL, rv);
        goto fail;
    }

    raft_set_election_timeout(&c->raft, election);
    raft_set_heartbeat_timeout(&c->raft, heartbeat);
    raft_set_snapshot_threshold(&c->raft, o->snapshot_threshold ? o->snapshot_threshold
                                                                : DEFAULT_SNAPSHOT_THRESHOLD);
    raft_set_pre_vote(&c->raft, true);

    /* A single voter elects itself inside raft_start and applies its whole log there. */
    c->starting = 1;
    rv = raft_start(&c->raft);
    c->starting = 0;
    if (rv != 0) {
        cl_logf(CL_LOG_ERROR, "consensus: raft_start: %s (%s)", raft_strerror(rv),
                raft_errmsg(&c->raft));
        rc = c->fatal != 0 ? c->fatal : map_raft_err(NULL, rv);
        goto fail;
    }
    if (c->fatal != 0) {
        rc = c->fatal;
        goto fail;
    }
    if (o->applied_index > (uint64_t)raft_last_index(&c->raft)) {
        cl_logf(CL_LOG_ERROR,
                "consensus: state machine holds raft index %llu but the raft log ends at %llu",
                (unsigned long long)o->applied_index,
                (unsigned long long)raft_last_index(&c->raft));
        rc = CL_ESTATE;
        goto fail;
    }
    rv = uv_check_init(loop, &c->check);
    if (rv != 0) {
        rc = CL_EIO;
        goto fail;
    }
    c->check.data = c;
    uv_check_start(&c->check, on_check);
    uv_unref((uv_handle_t *)&c->check);
    flush_batch(c); /* the replay done inside raft_start */
    poll_leader(c); /* a single voter is leader already: append its barrier now */
    *out = c;
    return CL_OK;

fail:
    /* raft_close is asynchronous: the instance is released once the loop runs. */
    c->closing = 1;
    raft_close(&c->raft, on_start_failed_closed);
    return rc;
}

static void on_applied(struct raft_apply *req, int status, void *result)
{
    cl_sub *s = req->data;
    cl_consensus *c = s->c;
    fly_remove(c, s);
    s->index = (uint64_t)req->index;
    s->status = map_raft_err(c, status);
    if (status == RAFT_IOERR || status == RAFT_NOSPACE)
        set_fatal(c, CL_EIO, "raft log write"); /* the log's state is unknown: stop */
    s->result = status == 0 ? result : NULL;
    push_done(c, s);
}

int cl_consensus_submit(cl_consensus *c, const void *cmd, size_t len, cl_consensus_done cb,
                        void *arg)
{
    CL_ENSURE(c != NULL && (cmd != NULL || len == 0), CL_EINVAL);
    CL_ENSURE(len <= UINT32_MAX - FRAME_HDR - 8, CL_EOVERFLOW); /* cl_rlog: 32-bit entry length */
    CL_ENSURE(!c->closing && !c->stop_requested && c->fatal == 0, CL_ECLOSED);
    CL_ENSURE(cl_consensus_is_leader(c), CL_ESTATE);
    cl_sub *s = cl_calloc(1, sizeof *s);
    CL_ENSURE(s != NULL, CL_ENOMEM);
    struct raft_buffer buf;
    buf.len = (FRAME_HDR + len + 7) & ~(size_t)7; /* libraft needs multiples of 8 bytes */
    buf.base = raft_calloc(1, buf.len);           /* zero padding */
    if (buf.base == NULL) {
        cl_free(s);
        return CL_ENOMEM;
    }
    s->c = c;
    s->cb = cb;
    s->arg = arg;
    s->term = (uint64_t)c->raft.current_term;
    s->req.data = s;
    cl_store_u64(buf.base, s->term);
    cl_store_u64((uint8_t *)buf.base + 8, (uint64_t)len);
    if (len > 0)
        memcpy((uint8_t *)buf.base + FRAME_HDR, cmd, len);
    s->prev = c->fly_tail;
    if (c->fly_tail != NULL)
        c->fly_tail->next = s;
    else
        c->fly_head = s;
    c->fly_tail = s;
    int rv = raft_apply(&c->raft, &s->req, &buf, 1, on_applied);
    if (rv != 0) {
        fly_remove(c, s);
        raft_free(buf.base); /* not transferred on failure */
        cl_free(s);
        /* The log refused the append (it failed without a write in flight: a segment that could
         * not be prepared): nothing will be written again, so the node says it failed instead of
         * answering every later write with an error while it reports itself ready. */
        if (rv == RAFT_IOERR)
            set_fatal(c, CL_EIO, "raft log append");
        return map_raft_err(c, rv);
    }
    return CL_OK;
}

int cl_consensus_is_leader(const cl_consensus *c)
{
    return c != NULL && !c->closing && c->fatal == 0 && c->ready && c->raft.state == RAFT_LEADER &&
           (uint64_t)c->raft.current_term == c->leader_term;
}

uint64_t cl_consensus_term(const cl_consensus *c)
{
    return c != NULL ? (uint64_t)c->raft.current_term : 0;
}

uint64_t cl_consensus_commit_index(const cl_consensus *c)
{
    return c != NULL ? (uint64_t)c->raft.commit_index : 0;
}

int cl_consensus_error(const cl_consensus *c) { return c != NULL ? c->fatal : CL_EINVAL; }

void cl_consensus_stop(cl_consensus *c, void (*done)(void *arg), void *arg)
{
    if (c == NULL) {
        if (done != NULL)
            done(arg);
        return;
    }
    if (c->stop_requested)
        return; /* already stopping: the first caller's done is called */
    c->stop_requested = 1;
    c->stop_cb = done;
    c->stop_arg = arg;
    c->ready = 0;
    if (c->raft_closed)
        finish_stop(c);
    else if (!c->closing && c->in_raft_cb == 0)
        begin_close(c);
    /* else: inside a libraft callback (the check hook closes), or already closing (the raft close
     * callback finishes). */
}
