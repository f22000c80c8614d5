/* cl_consensus on real libraft + raft_uv + libuv: a one-voter node in a temporary directory.
 *
 * A fake state machine records every apply (index, term, command sequence number), can simulate
 * "durable only up to index N", and can refuse or allow snapshots. Tests: leadership and submit
 * before leadership, 1,000 submissions (bursts submitted without running the loop in between),
 * restart with applied_index (exact replay of what follows), snapshots, a fatal apply, and real
 * crashes (a child process is SIGKILLed while submitting; every command it saw acknowledged must
 * be replayed on restart). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "base/err.h"
#include "base/log.h"
#include "consensus/consensus.h"
#include "consensus/rlog.h"
#include "testutil.h"

#define WAIT_MS 5000
#define N_CMDS 1000
#define BURST 40
#define CRASH_ROUNDS 3

/* ---- failing raft log writes ------------------------------------------------------------------
 * With g_fail_log_writes set, a pwrite to a raft log segment ("log-" files; the writer threads'
 * path, not io_uring's) fails with EIO after g_fail_delay_us, writing nothing; 2: only the writes
 * that prepare a new segment ("log-*.tmp"). */
static volatile int g_fail_log_writes;
static volatile unsigned g_fail_delay_us;
static volatile int g_failed_writes;

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    static ssize_t (*real)(int, const void *, size_t, off_t);
    if (real == NULL)
        real = (ssize_t(*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
    if (g_fail_log_writes) {
        char lnk[64], path[600];
        snprintf(lnk, sizeof lnk, "/proc/self/fd/%d", fd);
        ssize_t k = readlink(lnk, path, sizeof path - 1);
        if (k > 0) {
            path[k] = 0;
            const char *b = strrchr(path, '/');
            int tmp = k > 4 && strcmp(path + k - 4, ".tmp") == 0;
            if (b != NULL && strncmp(b + 1, "log-", 4) == 0 && (g_fail_log_writes == 1 || tmp)) {
                if (g_fail_delay_us)
                    usleep(g_fail_delay_us);
                __atomic_add_fetch(&g_failed_writes, 1, __ATOMIC_RELAXED);
                errno = EIO;
                return -1;
            }
        }
    }
    return real(fd, buf, n, off);
}

/* ---- fake state machine -------------------------------------------------------------------- */

typedef struct {
    uint64_t index, term;
    uint64_t seq;
} applied_rec;

typedef struct {
    applied_rec *recs;
    size_t n, cap;
    uint64_t last_index; /* last index apply saw */
    uint64_t batch_last; /* last applied_batch argument */
    size_t batches;
    uint64_t durable_limit; /* applies above this index are never recorded durable */
    uint64_t durable;       /* simulated durable index: min(batch_last, durable_limit) */
    int snapshot_ok;
    size_t snapshot_calls, snapshots_given;
    uint64_t fail_seq; /* apply of this sequence number fails (0: never) */
    int errors;        /* order violations, malformed commands */
    int in_burst;      /* between completions(1) and completions(0) */
    size_t bursts;
} fake_sm;

static void sm_init(fake_sm *sm)
{
    memset(sm, 0, sizeof *sm);
    sm->durable_limit = UINT64_MAX;
}

static void sm_free(fake_sm *sm) { free(sm->recs); }

static int parse_cmd(const void *cmd, size_t len, uint64_t *seq)
{
    char buf[32];
    if (len < 3 || len >= sizeof buf)
        return -1;
    memcpy(buf, cmd, len);
    buf[len] = 0;
    if (buf[0] != 'c' || buf[1] != ':')
        return -1;
    char *end;
    *seq = strtoull(buf + 2, &end, 10);
    return *end == 0 ? 0 : -1;
}

static int sm_apply(void *arg, uint64_t term, uint64_t index, const void *cmd, size_t len,
                    void **result)
{
    fake_sm *sm = arg;
    uint64_t seq;
    if (parse_cmd(cmd, len, &seq) != 0 || index <= sm->last_index || term == 0) {
        sm->errors++;
        return CL_OK;
    }
    if (sm->fail_seq != 0 && seq == sm->fail_seq)
        return CL_EFORMAT;
    if (sm->n == sm->cap) {
        sm->cap = sm->cap ? 2 * sm->cap : 1024;
        sm->recs = realloc(sm->recs, sm->cap * sizeof *sm->recs);
        if (sm->recs == NULL)
            abort();
    }
    sm->recs[sm->n++] = (applied_rec){index, term, seq};
    sm->last_index = index;
    if (result != NULL) {
        uint64_t *r = malloc(sizeof *r);
        if (r == NULL)
            abort();
        *r = index;
        *result = r;
    }
    return CL_OK;
}

static void sm_batch(void *arg, uint64_t last_index)
{
    fake_sm *sm = arg;
    if (last_index < sm->batch_last || last_index != sm->last_index)
        sm->errors++;
    sm->batch_last = last_index;
    sm->batches++;
    sm->durable = last_index < sm->durable_limit ? last_index : sm->durable_limit;
}

static void sm_completions(void *arg, int begin)
{
    fake_sm *sm = arg;
    if (begin == sm->in_burst) /* nested or unpaired */
        sm->errors++;
    sm->in_burst = begin;
    sm->bursts += begin != 0;
}

static int sm_snapshot(void *arg, uint64_t *applied_index)
{
    fake_sm *sm = arg;
    sm->snapshot_calls++;
    if (!sm->snapshot_ok)
        return CL_ESTATE;
    *applied_index = sm->durable;
    sm->snapshots_given++;
    return CL_OK;
}

static const applied_rec *sm_find(const fake_sm *sm, uint64_t index)
{
    size_t lo = 0, hi = sm->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (sm->recs[mid].index < index)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < sm->n && sm->recs[lo].index == index ? &sm->recs[lo] : NULL;
}

/* ---- node harness ---------------------------------------------------------------------------- */

typedef struct {
    cl_consensus *c;
    fake_sm *sm;
    int leader_calls;
    uint64_t leader_term;
    int stopped;
} node;

typedef struct {
    node *n;
    uint64_t seq;
    int called;
    int status;
    uint64_t term, index;
    uint64_t batch_at_done; /* sm->batch_last when done ran */
    int in_burst;           /* done ran between completions(1) and completions(0) */
    int result_ok;
} sub_rec;

static void on_leader(void *arg, uint64_t term)
{
    node *n = arg;
    n->leader_calls++;
    n->leader_term = term;
}

static void on_stopped(void *arg) { ((node *)arg)->stopped = 1; }

static void on_done(void *arg, int status, uint64_t term, uint64_t index, void *result)
{
    sub_rec *s = arg;
    s->called++;
    s->status = status;
    s->term = term;
    s->index = index;
    s->batch_at_done = s->n->sm->batch_last;
    s->in_burst = s->n->sm->in_burst;
    s->result_ok =
        status == CL_OK ? result != NULL && *(uint64_t *)result == index : result == NULL;
    free(result);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

typedef int (*pred_fn)(void *ctx);

/* Runs the loop (non-blocking passes and short sleeps) until pred holds or ms elapse. */
static int run_until(uv_loop_t *loop, pred_fn pred, void *ctx, double ms)
{
    double end = now_ms() + ms;
    for (;;) {
        uv_run(loop, UV_RUN_NOWAIT);
        if (pred(ctx))
            return 1;
        if (now_ms() > end)
            return 0;
        usleep(200);
    }
}

static int pred_leader(void *ctx) { return cl_consensus_is_leader(((node *)ctx)->c); }
static int pred_stopped(void *ctx) { return ((node *)ctx)->stopped; }
static int pred_never(void *ctx)
{
    (void)ctx;
    return 0;
}

typedef struct {
    sub_rec *subs;
    size_t n;
} batch_ctx;

static int pred_all_done(void *ctx)
{
    batch_ctx *b = ctx;
    for (size_t i = 0; i < b->n; i++)
        if (!b->subs[i].called)
            return 0;
    return 1;
}

typedef struct {
    const char *dir;
    char address[32];
    int log_io; /* CL_RLOG_IO_* (0: auto) */
} node_cfg;

static int node_start(uv_loop_t *loop, const node_cfg *cfg, uint64_t applied_index,
                      unsigned snapshot_threshold, node *n, fake_sm *sm)
{
    memset(n, 0, sizeof *n);
    n->sm = sm;
    cl_consensus_opts o = {
        .dir = cfg->dir,
        .id = 1,
        .address = cfg->address,
        .applied_index = applied_index,
        .log_io = cfg->log_io,
        .election_timeout_ms = 500,
        .heartbeat_timeout_ms = 50,
        .snapshot_threshold = snapshot_threshold,
        .became_leader = on_leader,
        .leader_arg = n,
    };
    cl_consensus_fsm f = {.apply = sm_apply,
                          .applied_batch = sm_batch,
                          .snapshot = sm_snapshot,
                          .completions = sm_completions,
                          .arg = sm};
    return cl_consensus_start(loop, &o, &f, &n->c);
}

/* Files in dir whose name starts with prefix (".meta" files not counted). */
static int count_files(const char *dir, const char *prefix)
{
    int n = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 && strstr(e->d_name, ".meta") == NULL)
            n++;
    closedir(d);
    return n;
}

static int count_snapshots(const char *dir) { return count_files(dir, "snap-"); }

static void node_stop(uv_loop_t *loop, node *n, const char *dir)
{
    n->stopped = 0;
    cl_consensus_stop(n->c, on_stopped, n);
    assert_true(run_until(loop, pred_stopped, n, WAIT_MS));
    n->c = NULL;
    /* Every handle is closed: the loop has nothing left. */
    assert_int_equal(uv_run(loop, UV_RUN_NOWAIT), 0);
    /* A clean stop leaves no half-written file (segment preparation, snapshot, meta). */
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s", dir);
    DIR *d = opendir(tmp);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        assert_null(strstr(e->d_name, ".tmp"));
    closedir(d);
}

static int submit_seq(node *n, uint64_t seq, sub_rec *s)
{
    char cmd[32];
    int len = snprintf(cmd, sizeof cmd, "c:%llu", (unsigned long long)seq);
    memset(s, 0, sizeof *s);
    s->n = n;
    s->seq = seq;
    return cl_consensus_submit(n->c, cmd, (size_t)len, on_done, s);
}

/* Submits seqs [first, first+count) in bursts of BURST (each burst without running the loop) and
 * checks every completion: CL_OK, the leader's term, strictly increasing indexes, the result,
 * that applied_batch covered the index before done ran, and that done ran inside a completions
 * bracket. */
static void submit_many(uv_loop_t *loop, node *n, uint64_t first, size_t count, sub_rec *subs,
                        uint64_t min_index)
{
    for (size_t i = 0; i < count; i += BURST) {
        size_t k = count - i < BURST ? count - i : BURST;
        for (size_t j = 0; j < k; j++)
            assert_int_equal(submit_seq(n, first + i + j, &subs[i + j]), CL_OK);
        batch_ctx b = {subs + i, k};
        assert_true(run_until(loop, pred_all_done, &b, WAIT_MS));
    }
    uint64_t prev = min_index;
    uint64_t term = cl_consensus_term(n->c);
    for (size_t i = 0; i < count; i++) {
        const sub_rec *s = &subs[i];
        assert_int_equal(s->called, 1);
        assert_int_equal(s->status, CL_OK);
        assert_int_equal(s->term, term);
        assert_true(s->index > prev);
        assert_true(s->result_ok);
        assert_true(s->batch_at_done >= s->index);
        assert_true(s->in_burst); /* the completions hook brackets every normal completion */
        prev = s->index;
        const applied_rec *r = sm_find(n->sm, s->index);
        assert_non_null(r);
        assert_int_equal(r->seq, s->seq);
        assert_int_equal(r->term, s->term);
    }
}

static void cfg_init(node_cfg *cfg, const char *dir)
{
    int port = free_port();
    assert_true(port > 0);
    cfg->dir = dir;
    cfg->log_io = 0;
    snprintf(cfg->address, sizeof cfg->address, "127.0.0.1:%d", port);
}

static char *raft_dir(const char *base)
{
    static char path[600];
    snprintf(path, sizeof path, "%s/raft", base);
    return path;
}

/* ---- tests ------------------------------------------------------------------------------------
 */

static void test_submit_replay_restart(void **state)
{
    (void)state;
    const char *base = tu_tempdir("cl-raft");
    assert_non_null(base);
    char basecopy[512];
    snprintf(basecopy, sizeof basecopy, "%s", base);
    node_cfg cfg;
    cfg_init(&cfg, raft_dir(basecopy));
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);

    fake_sm sm1;
    sm_init(&sm1);
    sm1.durable_limit = 400; /* the state machine "loses" everything after raft index 400 */
    node n;
    assert_int_equal(node_start(&loop, &cfg, 0, 0, &n, &sm1), CL_OK);
    /* Not leader yet (the leadership barrier has not been applied): submit is refused. */
    assert_false(cl_consensus_is_leader(n.c));
    sub_rec early;
    assert_int_equal(submit_seq(&n, 999999, &early), CL_ESTATE);
    assert_int_equal(n.leader_calls, 0);
    assert_true(run_until(&loop, pred_leader, &n, WAIT_MS));
    assert_int_equal(n.leader_calls, 1);
    assert_true(n.leader_term >= 1);
    assert_int_equal(n.leader_term, cl_consensus_term(n.c));

    sub_rec *subs = calloc(N_CMDS, sizeof *subs);
    assert_non_null(subs);
    submit_many(&loop, &n, 1, N_CMDS, subs, 0);
    assert_int_equal(sm1.errors, 0);
    assert_int_equal(sm1.n, N_CMDS); /* nothing else reached the state machine */
    assert_int_equal(sm1.batch_last, subs[N_CMDS - 1].index);
    assert_true(sm1.batches >= N_CMDS / BURST);
    assert_true(cl_consensus_commit_index(n.c) >= subs[N_CMDS - 1].index);
    assert_int_equal(early.called, 0);
    uint64_t term1 = n.leader_term;
    node_stop(&loop, &n, cfg.dir);
    assert_int_equal(sm1.durable, 400);

    /* Restart: libraft replays; the glue passes exactly the commands after index 400. */
    fake_sm sm2;
    sm_init(&sm2);
    assert_int_equal(node_start(&loop, &cfg, sm1.durable, 0, &n, &sm2), CL_OK);
    size_t replay_from = 0;
    while (replay_from < sm1.n && sm1.recs[replay_from].index <= sm1.durable)
        replay_from++;
    assert_true(replay_from > 0 && replay_from < sm1.n);
    assert_int_equal(sm2.n, sm1.n - replay_from);
    for (size_t i = 0; i < sm2.n; i++) {
        assert_int_equal(sm2.recs[i].index, sm1.recs[replay_from + i].index);
        assert_int_equal(sm2.recs[i].term, sm1.recs[replay_from + i].term);
        assert_int_equal(sm2.recs[i].seq, sm1.recs[replay_from + i].seq);
    }
    assert_int_equal(sm2.errors, 0);
    assert_true(run_until(&loop, pred_leader, &n, WAIT_MS));
    assert_true(n.leader_term >= term1);
    size_t replayed = sm2.n;
    sub_rec more[100];
    submit_many(&loop, &n, N_CMDS + 1, 100, more, subs[N_CMDS - 1].index);
    assert_int_equal(sm2.n, replayed + 100);
    assert_int_equal(sm2.errors, 0);
    node_stop(&loop, &n, cfg.dir);

    /* A third start with everything durable replays nothing into the state machine. */
    fake_sm sm3;
    sm_init(&sm3);
    assert_int_equal(node_start(&loop, &cfg, more[99].index, 0, &n, &sm3), CL_OK);
    assert_int_equal(sm3.n, 0);
    assert_true(run_until(&loop, pred_leader, &n, WAIT_MS));
    node_stop(&loop, &n, cfg.dir);

    assert_int_equal(uv_loop_close(&loop), 0);
    sm_free(&sm1);
    sm_free(&sm2);
    sm_free(&sm3);
    free(subs);
    tu_rmrf(basecopy);
}

static void test_snapshot(void **state)
{
    (void)state;
    const char *base = tu_tempdir("cl-raft");
    assert_non_null(base);
    char basecopy[512];
    snprintf(basecopy, sizeof basecopy, "%s", base);
    node_cfg cfg;
    cfg_init(&cfg, raft_dir(basecopy));
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);

    fake_sm sm;
    sm_init(&sm);
    node n;
    assert_int_equal(node_start(&loop, &cfg, 0, 50, &n, &sm), CL_OK);
    assert_true(run_until(&loop, pred_leader, &n, WAIT_MS));
    sub_rec subs[200];
    /* The state machine refuses: libraft retries later, no snapshot is written. */
    submit_many(&loop, &n, 1, 120, subs, 0);
    assert_true(sm.snapshot_calls > 0);
    assert_int_equal(count_snapshots(cfg.dir), 0);
    sm.snapshot_ok = 1;
    submit_many(&loop, &n, 121, 80, subs + 120, subs[119].index);
    assert_true(sm.snapshots_given > 0);
    uint64_t last = subs[199].index;
    node_stop(&loop, &n, cfg.dir);
    assert_true(count_snapshots(cfg.dir) > 0);

    /* The snapshot names an index the state machine must hold: starting with less fails. */
    fake_sm sm2;
    sm_init(&sm2);
    assert_int_equal(node_start(&loop, &cfg, 1, 50, &n, &sm2), CL_ECORRUPT);
    uv_run(&loop, UV_RUN_DEFAULT); /* releases the failed instance */
    assert_int_equal(sm2.n, 0);

    /* With everything held, start replays nothing and accepts new commands after the old ones. */
    sm_init(&sm2);
    assert_int_equal(node_start(&loop, &cfg, last, 50, &n, &sm2), CL_OK);
    assert_int_equal(sm2.n, 0);
    assert_true(run_until(&loop, pred_leader, &n, WAIT_MS));
    sub_rec more[20];
    submit_many(&loop, &n, 1000, 20, more, last);
    node_stop(&loop, &n, cfg.dir);

    assert_int_equal(uv_loop_close(&loop), 0);
    sm_free(&sm);
    sm_free(&sm2);
    tu_rmrf(basecopy);
}

static void test_fatal_apply(void **state)
{
    (void)state;
    const char *base = tu_tempdir("cl-raft");
    assert_non_null(base);
    char basecopy[512];
    snprintf(basecopy, sizeof basecopy, "%s", base);
    node_cfg cfg;
    cfg_init(&cfg, raft_dir(basecopy));
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    cl_log_level saved = cl_log_get_level();
    cl_log_set_level(CL_LOG_OFF);

    fake_sm sm;
    sm_init(&sm);
    sm.fail_seq = 5;
    node n;
    assert_int_equal(node_start(&loop, &cfg, 0, 0, &n, &sm), CL_OK);
    assert_true(run_until(&loop, pred_leader, &n, WAIT_MS));
    sub_rec subs[8];
    for (int i = 0; i < 8; i++)
        assert_int_equal(submit_seq(&n, (uint64_t)i + 1, &subs[i]), CL_OK);
    batch_ctx b = {subs, 8};
    assert_true(run_until(&loop, pred_all_done, &b, WAIT_MS));
    for (int i = 0; i < 4; i++)
        assert_int_equal(subs[i].status, CL_OK);
    for (int i = 4; i < 8; i++)
        assert_int_equal(subs[i].status, CL_ECLOSED);
    assert_int_equal(cl_consensus_error(n.c), CL_EFORMAT);
    assert_false(cl_consensus_is_leader(n.c));
    sub_rec late;
    assert_int_equal(submit_seq(&n, 100, &late), CL_ECLOSED);
    node_stop(&loop, &n, cfg.dir);

    /* A state machine that now accepts the command resumes after what it held. */
    fake_sm sm2;
    sm_init(&sm2);
    assert_int_equal(node_start(&loop, &cfg, subs[3].index, 0, &n, &sm2), CL_OK);
    assert_int_equal(sm2.n, 4); /* seqs 5..8 were committed, never applied: now they are */
    assert_int_equal(sm2.recs[0].seq, 5);
    assert_true(run_until(&loop, pred_leader, &n, WAIT_MS));
    node_stop(&loop, &n, cfg.dir);
    cl_log_set_level(saved);

    assert_int_equal(uv_loop_close(&loop), 0);
    sm_free(&sm);
    sm_free(&sm2);
    tu_rmrf(basecopy);
}

/* A leader on a fresh directory, logging off: the start of the fault tests below. */
typedef struct {
    char base[512];
    node_cfg cfg;
    uv_loop_t loop;
    cl_log_level saved;
    fake_sm sm;
    node n;
} fixture;

static void fx_start(fixture *f, int log_io)
{
    const char *base = tu_tempdir("cl-raft");
    assert_non_null(base);
    snprintf(f->base, sizeof f->base, "%s", base);
    cfg_init(&f->cfg, raft_dir(f->base));
    f->cfg.log_io = log_io;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->saved = cl_log_get_level();
    cl_log_set_level(CL_LOG_OFF);
    sm_init(&f->sm);
    assert_int_equal(node_start(&f->loop, &f->cfg, 0, 0, &f->n, &f->sm), CL_OK);
    assert_true(run_until(&f->loop, pred_leader, &f->n, WAIT_MS));
}

static void restart_takes_commands(uv_loop_t *loop, const node_cfg *cfg, size_t applied);

/* Stops the node (unless stopped), checks that it starts again holding what it applied and takes
 * commands. */
static void fx_end(fixture *f)
{
    if (f->n.c != NULL)
        node_stop(&f->loop, &f->n, f->cfg.dir);
    cl_log_set_level(f->saved);
    restart_takes_commands(&f->loop, &f->cfg, f->sm.n);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    sm_free(&f->sm);
    tu_rmrf(f->base);
}

/* Starts a node on cfg with a new state machine: it becomes leader holding `applied` commands and
 * takes a burst of commands; then it stops. */
static void restart_takes_commands(uv_loop_t *loop, const node_cfg *cfg, size_t applied)
{
    fake_sm sm;
    sm_init(&sm);
    node n;
    assert_int_equal(node_start(loop, cfg, 0, 0, &n, &sm), CL_OK);
    assert_true(run_until(loop, pred_leader, &n, WAIT_MS));
    assert_int_equal(sm.n, applied);
    sub_rec more[BURST];
    submit_many(loop, &n, 100, BURST, more, 0);
    node_stop(loop, &n, cfg->dir);
    sm_free(&sm);
}

/* Regression: cl_rlog reported a failed or cancelled batch's requests lowest index first, and
 * libraft 0.15 truncates its in-memory log at each failed request's index without checking that
 * the index is still there: the second one wrapped removeSuffix's count around and it freed
 * slots until it crashed (SIGSEGV). A stop with two or more requests queued in one batch did it
 * every time, and so did a failed raft log write under load. Now such a run of writes is reported
 * from the highest index down (rlog.c, deliver_failed_run). log_io 0: a stop with a batch queued;
 * CL_RLOG_IO_THREADS: raft log writes fail (EIO from the writer threads' pwrite): a batch of
 * eight fails while a second batch waits behind it (or is written beside it). Every request is
 * answered with an error, none is applied, the node stops without a crash, and starts again. */
static void failed_batches(int log_io)
{
    fixture f;
    fx_start(&f, log_io);
    size_t applied = f.sm.n, nsubs = 8;
    sub_rec subs[16];
    if (log_io == CL_RLOG_IO_THREADS) {
        g_fail_delay_us = 50000;
        g_fail_log_writes = 1;
    }
    for (size_t i = 0; i < 8; i++) /* one batch */
        assert_int_equal(submit_seq(&f.n, i + 1, &subs[i]), CL_OK);
    if (log_io == CL_RLOG_IO_THREADS) {
        uv_run(&f.loop, UV_RUN_NOWAIT); /* the first batch goes to a writer, which fails in 50 ms */
        for (; nsubs < 16; nsubs++)
            assert_int_equal(submit_seq(&f.n, nsubs + 1, &subs[nsubs]), CL_OK);
        batch_ctx b = {subs, nsubs};
        assert_true(run_until(&f.loop, pred_all_done, &b, WAIT_MS));
        g_fail_log_writes = 0;
        assert_true(g_failed_writes >= 1);
        assert_int_not_equal(cl_consensus_error(f.n.c), CL_OK);
    } else {
        node_stop(&f.loop, &f.n, f.cfg.dir); /* the batch is still queued */
    }
    for (size_t i = 0; i < nsubs; i++) {
        assert_int_equal(subs[i].called, 1);
        assert_int_not_equal(subs[i].status, CL_OK);
    }
    assert_int_equal(f.sm.n, applied);
    fx_end(&f); /* nothing of the failed writes is in the log */
}

/* The next segment cannot be prepared (its zero-filling write fails) while no log write is in
 * flight: the log refuses every later append at once, inside raft_apply. The node must then
 * report a fatal error; it answered each later write with an error while it said it was ready. */
static int g_big_done;
static void on_big_done(void *arg, int status, uint64_t term, uint64_t index, void *result)
{
    (void)arg;
    (void)status;
    (void)term;
    (void)index;
    free(result);
    g_big_done++;
}
static int pred_big_done(void *ctx) { return g_big_done == *(int *)ctx; }

static void test_segment_prepare_fails(void **state)
{
    (void)state;
    fixture f;
    fx_start(&f, 0);
    g_fail_delay_us = 0;
    g_failed_writes = 0;
    g_fail_log_writes = 2;
    /* bursts of 4 KiB commands, each burst answered before the next, until the 8 MiB segment is
     * full and the preparation of the one after its successor has failed */
    static char big[4096];
    memset(big, 'x', sizeof big);
    memcpy(big, "c:1", 3);
    int sent = 0;
    g_big_done = 0;
    for (int burst = 0; burst < 200 && g_failed_writes == 0; burst++) {
        for (int i = 0; i < 32; i++, sent++)
            assert_int_equal(cl_consensus_submit(f.n.c, big, sizeof big, on_big_done, NULL), CL_OK);
        assert_true(run_until(&f.loop, pred_big_done, &sent, WAIT_MS));
    }
    assert_true(g_failed_writes > 0);
    assert_false(run_until(&f.loop, pred_never, NULL, 100)); /* idle: no write in flight */
    int rc = cl_consensus_submit(f.n.c, big, sizeof big, on_big_done, NULL);
    g_fail_log_writes = 0;
    assert_int_not_equal(rc, CL_OK);
    assert_int_not_equal(cl_consensus_error(f.n.c), CL_OK);
    assert_false(cl_consensus_is_leader(f.n.c));
    fx_end(&f);
}

static void test_stop_with_batch_queued(void **state)
{
    (void)state;
    failed_batches(0);
}

static void test_log_write_fails(void **state)
{
    (void)state;
    failed_batches(CL_RLOG_IO_THREADS);
}

/* ---- crash test ---------------------------------------------------------------------------- */

typedef struct {
    uint64_t index, seq;
} ack;

typedef struct {
    node *n;
    int fd;
    uint64_t next_seq;
    int inflight;
} child_ctx;

typedef struct {
    child_ctx *cc;
    uint64_t seq;
} child_sub;

static void child_pump(child_ctx *cc);

static void child_done(void *arg, int status, uint64_t term, uint64_t index, void *result)
{
    child_sub *s = arg;
    child_ctx *cc = s->cc;
    (void)term;
    free(result);
    cc->inflight--;
    if (status == CL_OK) {
        ack a = {index, s->seq};
        if (write(cc->fd, &a, sizeof a) != (ssize_t)sizeof a)
            _exit(3);
    } else {
        _exit(4);
    }
    free(s);
    child_pump(cc);
}

static void child_pump(child_ctx *cc)
{
    while (cc->inflight < 16) {
        child_sub *s = malloc(sizeof *s);
        if (s == NULL)
            _exit(5);
        s->cc = cc;
        s->seq = cc->next_seq++;
        char cmd[32];
        int len = snprintf(cmd, sizeof cmd, "c:%llu", (unsigned long long)s->seq);
        if (cl_consensus_submit(cc->n->c, cmd, (size_t)len, child_done, s) != CL_OK)
            _exit(6);
        cc->inflight++;
    }
}

_Noreturn static void child_run(const node_cfg *cfg, int fd, uint64_t first_seq)
{
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0)
        _exit(2);
    fake_sm sm;
    sm_init(&sm);
    node n;
    if (node_start(&loop, cfg, 0, 0, &n, &sm) != CL_OK)
        _exit(7);
    if (!run_until(&loop, pred_leader, &n, WAIT_MS))
        _exit(8);
    child_ctx cc = {&n, fd, first_seq, 0};
    child_pump(&cc);
    double end = now_ms() + 5000; /* a child that is never killed stops by itself */
    while (now_ms() < end)
        uv_run(&loop, UV_RUN_ONCE);
    _exit(0);
}

static void test_crash_acknowledged_durable(void **state)
{
    (void)state;
    const char *base = tu_tempdir("cl-raft");
    assert_non_null(base);
    char basecopy[512];
    snprintf(basecopy, sizeof basecopy, "%s", base);
    node_cfg cfg;
    cfg_init(&cfg, raft_dir(basecopy));
    const char *seed_env = getenv("CL_CRASH_SEED");
    unsigned seed = seed_env ? (unsigned)strtoul(seed_env, NULL, 10) : (unsigned)time(NULL);
    srand(seed);
    print_message("crash seed %u\n", seed);

    size_t cap = 1 << 16, n_acks = 0;
    ack *acks = malloc(cap * sizeof *acks);
    assert_non_null(acks);
    cl_log_level saved = cl_log_get_level();
    cl_log_set_level(CL_LOG_WARN);

    for (int round = 0; round < CRASH_ROUNDS; round++) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            child_run(&cfg, p[1], (uint64_t)(round + 1) * 1000000);
        }
        close(p[1]);
        size_t round_acks = 0;
        double kill_at = -1, deadline = now_ms() + 10000;
        char partial[sizeof(ack)];
        size_t have = 0;
        int eof = 0;
        for (;;) {
            double t = now_ms();
            if (kill_at < 0 && round_acks > 0)
                kill_at = t + 20 + rand() % 400; /* somewhere in the middle of the stream */
            if ((kill_at >= 0 && t >= kill_at) || t >= deadline)
                break;
            struct pollfd pf = {p[0], POLLIN, 0};
            if (poll(&pf, 1, 5) <= 0)
                continue;
            ssize_t r = read(p[0], partial + have, sizeof partial - have);
            if (r <= 0) {
                eof = 1;
                break;
            }
            have += (size_t)r;
            if (have == sizeof partial) {
                if (n_acks == cap) {
                    cap *= 2;
                    acks = realloc(acks, cap * sizeof *acks);
                    assert_non_null(acks);
                }
                memcpy(&acks[n_acks++], partial, sizeof(ack));
                round_acks++;
                have = 0;
            }
        }
        assert_false(eof); /* the child must not exit early */
        kill(pid, SIGKILL);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        /* Acks written before the kill are still in the pipe. */
        for (;;) {
            ssize_t r = read(p[0], partial + have, sizeof partial - have);
            if (r <= 0)
                break;
            have += (size_t)r;
            if (have == sizeof partial) {
                if (n_acks == cap) {
                    cap *= 2;
                    acks = realloc(acks, cap * sizeof *acks);
                    assert_non_null(acks);
                }
                memcpy(&acks[n_acks++], partial, sizeof(ack));
                round_acks++;
                have = 0;
            }
        }
        close(p[0]);
        assert_true(round_acks > 0);

        /* Restart with an empty state machine: every acknowledged command is replayed. */
        uv_loop_t loop;
        assert_int_equal(uv_loop_init(&loop), 0);
        fake_sm sm;
        sm_init(&sm);
        node n;
        assert_int_equal(node_start(&loop, &cfg, 0, 0, &n, &sm), CL_OK);
        assert_int_equal(sm.errors, 0);
        for (size_t i = 0; i < n_acks; i++) {
            const applied_rec *r = sm_find(&sm, acks[i].index);
            assert_non_null(r);
            assert_int_equal(r->seq, acks[i].seq);
        }
        print_message("round %d: %zu acknowledged, %zu replayed\n", round, round_acks, sm.n);
        assert_true(run_until(&loop, pred_leader, &n, WAIT_MS));
        node_stop(&loop, &n, cfg.dir);
        assert_int_equal(uv_loop_close(&loop), 0);
        sm_free(&sm);
    }
    cl_log_set_level(saved);
    free(acks);
    tu_rmrf(basecopy);
}

int main(void)
{
    cl_log_set_level(CL_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_submit_replay_restart),
        cmocka_unit_test(test_snapshot),
        cmocka_unit_test(test_fatal_apply),
        cmocka_unit_test(test_stop_with_batch_queued),
        cmocka_unit_test(test_log_write_fails),
        cmocka_unit_test(test_segment_prepare_fails),
        cmocka_unit_test(test_crash_acknowledged_durable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
