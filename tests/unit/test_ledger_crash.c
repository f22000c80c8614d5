/* Real process crashes: a child process appends, signs and syncs in a loop and reports every
 * entry a successful sync made durable through a pipe; the parent kills it with SIGKILL at a
 * random moment, then reopens the ledger itself and checks that every reported entry is there with
 * its exact contents, that the engine's invariants hold and that the ledger verifies. Twenty
 * rounds on the same directory, each child continuing the ledger the previous one left.
 *
 * CL_CRASH_SEED=<n> replays a particular sequence of kill delays (the default is fixed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "ledger/ledger.h"
#include "ledger/verify.h"
#include "ledgerutil.h"
#include "testutil.h"

#define ROUNDS 20
#define VIEW 2
#define CRASH_CHUNK 4096 /* frequent rollovers: kills land in renames and directory syncs too */
#define SIGN_EVERY 8
#define SYNC_EVERY 3
#define CHILD_MAX_MS 5000 /* a child that is never killed stops by itself */
#define KILL_MIN_MS 5
#define KILL_MAX_MS 80

/* What the child reports after a successful sync, one record per entry (< PIPE_BUF: atomic). */
typedef struct {
    uint64_t seqno;
    uint32_t round;
    uint32_t counter;
} report;

static void entry_text(char *out, size_t cap, uint32_t round, uint32_t counter)
{
    snprintf(out, cap, "round %u counter %u %.*s", round, counter, (int)(counter % 31),
             "................................");
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The child: never returns, never touches cmocka. Exit codes name what failed. */
static void child_main(const char *dir, uint32_t round, int wfd)
{
    cl_ledger *l = NULL;
    if (lu_open(dir, CRASH_CHUNK, NULL, &l) != CL_OK)
        _exit(10);
    double t0 = now_ms();
    report pend[SYNC_EVERY];
    int np = 0;
    char text[96];
    for (uint32_t counter = 0; now_ms() - t0 < CHILD_MAX_MS; counter++) {
        entry_text(text, sizeof text, round, counter);
        uint64_t s;
        if (cl_ledger_append_user(l, VIEW, "crash", 5, (const uint8_t *)text, strlen(text), &s) !=
            CL_OK)
            _exit(11);
        pend[np].seqno = s;
        pend[np].round = round;
        pend[np].counter = counter;
        np++;
        if (counter % SIGN_EVERY == SIGN_EVERY - 1 && cl_ledger_sign(l, VIEW, NULL) != CL_OK)
            _exit(12);
        if (np == SYNC_EVERY) {
            if (cl_ledger_sync(l) != CL_OK)
                _exit(13);
            /* durable now: tell the parent */
            if (write_all(wfd, pend, sizeof pend) != 0)
                _exit(14);
            np = 0;
        }
    }
    if (cl_ledger_close(l) != CL_OK)
        _exit(15);
    _exit(0);
}

/* Reads whole records from fd into the log until the deadline (ms; < 0: until end of file). */
static void collect(int fd, double deadline, lu_log *log, char *partial, size_t *plen)
{
    for (;;) {
        int timeout = -1;
        if (deadline >= 0) {
            double left = deadline - now_ms();
            if (left <= 0)
                return;
            timeout = (int)left + 1;
        }
        struct pollfd pfd = {fd, POLLIN, 0};
        int pr = poll(&pfd, 1, timeout);
        if (pr < 0 && errno == EINTR)
            continue;
        assert_true(pr >= 0);
        if (pr == 0)
            continue; /* deadline check above */
        ssize_t n = read(fd, partial + *plen, sizeof(report) * 64 - *plen);
        if (n < 0 && errno == EINTR)
            continue;
        assert_true(n >= 0);
        if (n == 0)
            return; /* end of file: the child is gone */
        *plen += (size_t)n;
        size_t whole = *plen / sizeof(report) * sizeof(report);
        for (size_t off = 0; off < whole; off += sizeof(report)) {
            report r;
            memcpy(&r, partial + off, sizeof r);
            char text[96];
            entry_text(text, sizeof text, r.round, r.counter);
            lu_log_push(log, r.seqno, "crash", text);
        }
        memmove(partial, partial + whole, *plen - whole);
        *plen -= whole;
    }
}

static void test_sigkill_rounds(void **state)
{
    (void)state;
    const char *d = tu_tempdir("cl-crash");
    assert_non_null(d);
    char dir[600];
    snprintf(dir, sizeof dir, "%s", d);
    cl_ledger *l = NULL;
    assert_int_equal(lu_create(dir, 0, CRASH_CHUNK, NULL, &l), CL_OK);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    char *pem = lu_service_pem(dir);
    assert_non_null(pem);

    const char *seed_env = getenv("CL_CRASH_SEED");
    unsigned seed = seed_env ? (unsigned)strtoul(seed_env, NULL, 10) : 20261122u;
    srand(seed);
    lu_log log;
    lu_log_init(&log);
    int killed = 0;
    uint64_t max_tail = 0;
    for (uint32_t round = 0; round < ROUNDS; round++) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        fflush(NULL); /* nothing buffered is written twice */
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            child_main(dir, round, p[1]);
        }
        close(p[1]);
        int delay = KILL_MIN_MS + rand() % (KILL_MAX_MS - KILL_MIN_MS + 1);
        char partial[sizeof(report) * 64];
        size_t plen = 0;
        size_t before = log.n;
        collect(p[0], now_ms() + delay, &log, partial, &plen);
        kill(pid, SIGKILL);
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        collect(p[0], -1, &log, partial, &plen);
        close(p[0]);
        assert_int_equal(plen, 0); /* records are written whole */
        if (WIFSIGNALED(status)) {
            assert_int_equal(WTERMSIG(status), SIGKILL);
            killed++;
        } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fail_msg("round %u: the child failed (exit %d)", round,
                     WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        }
        lu_log_ack_all(&log);

        /* The parent recovers the ledger the dead child left. */
        char why[512];
        int rc = lu_open(dir, CRASH_CHUNK, NULL, &l);
        if (rc != CL_OK)
            fail_msg("round %u: reopen after SIGKILL: %s", round, cl_errname(rc));
        if ((rc = cl_ledger_check(l)) != CL_OK)
            fail_msg("round %u: cl_ledger_check: %s", round, cl_errname(rc));
        if (lu_check_log(l, &log, why, sizeof why) != CL_OK)
            fail_msg("round %u (killed after %d ms, %zu entries reported): %s", round, delay,
                     log.n - before, why);
        cl_verify_report rep;
        rc = lu_verify(dir, pem, &rep);
        if (rc != CL_OK)
            fail_msg("round %u: verify-ledger: %s: seqno %llu %s@%llu: %s", round, cl_errname(rc),
                     (unsigned long long)rep.bad_seqno, rep.file, (unsigned long long)rep.offset,
                     rep.what);
        if (rep.unsigned_tail > max_tail)
            max_tail = rep.unsigned_tail;
        assert_int_equal(rep.entries, cl_ledger_last_seqno(l));
        assert_int_equal(cl_ledger_close(l), CL_OK);
    }
    print_message("    %d of %d children killed, %zu durable entries reported, ledger of %llu "
                  "entries, longest unsigned tail %llu (seed %u)\n",
                  killed, ROUNDS, log.n, (unsigned long long)(log.n ? log.v[log.n - 1].seqno : 0),
                  (unsigned long long)max_tail, seed);
    assert_true(killed > ROUNDS / 2);
    assert_true(log.n > 0);
    lu_log_free(&log);
    free(pem);
    tu_rmrf(dir);
}

int main(void)
{
    const char *lv = getenv("CL_TEST_LOG");
    int level = lv ? cl_log_level_parse(lv) : -1;
    cl_log_set_level(level >= 0 ? (cl_log_level)level : CL_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigkill_rounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
