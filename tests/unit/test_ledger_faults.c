/* Ledger engine under injected faults, and the offline verifier against tampering.
 *
 *   - write/fsync/rename faults: for N = 0, 1, 2, ... the Nth operation of a deterministic workload
 *     fails, as a crash (everything later fails too, then a simulated power cut) or as a single
 *     failed call; reopening gives a valid prefix holding every acknowledged entry, the engine's
 *     invariants hold, appends continue and the ledger verifies. Public and private ledgers.
 *   - allocation faults: the same with the Nth allocation failing.
 *   - tampering: one flipped bit anywhere in any chunk file is caught by verify-ledger, which names
 *     the chunk file and the seqno whose frame holds the byte; whole-file damage is caught too.
 *   - torn tails of the open chunk are cut at open.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/log.h"
#include "ledger/chunk.h"
#include "ledger/entry.h"
#include "ledger/ledger.h"
#include "ledger/verify.h"
#include "ledgerutil.h"
#include "storage/fs.h"
#include "testutil.h"

#define VIEW 2
#define FAULT_CHUNK 1500 /* small: the workload rolls over many chunks */
#define FAULT_CAP 400    /* a fault loop must finish a clean run before this many faults */
#define WL_ENTRIES 36
#define TAMPER_CHUNK 4096
#define TAMPER_ENTRIES 300
#define MAX_CHUNKS 256

/* ---- fixtures -------------------------------------------------------------------------------- */

/* Freshly created ledgers (public, private), closed; every fault run starts from a copy. */
static char g_base[512], g_tpl[2][600];
static char *g_pem[2];
/* A generated public ledger for the tamper and torn-tail tests, and its user entries. */
static char g_tamper[600];
static char *g_tamper_pem;
static lu_log g_tamper_log;

/* The fault fs wraps the real one; on a disk (no RAM fs) its syncs are skipped for speed: the
 * fault fs keeps its own record of what was synced, which is all its crash model uses. */
static int g_ramfs;
static cl_fs *fault_base(void) { return g_ramfs ? cl_fs_posix() : lu_fs_nosync(); }

static void make_template(int priv)
{
    snprintf(g_tpl[priv], sizeof g_tpl[priv], "%s/template-%s", g_base, priv ? "priv" : "pub");
    cl_ledger *l = NULL;
    assert_int_equal(lu_create(g_tpl[priv], priv, FAULT_CHUNK, NULL, &l), CL_OK);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    g_pem[priv] = lu_service_pem(g_tpl[priv]);
    assert_non_null(g_pem[priv]);
}

static void tamper_append(cl_ledger *l, int i)
{
    char text[96];
    const char *coll = i % 2 ? "tamper:odd" : "tamper:even";
    snprintf(text, sizeof text, "tamper entry %d %.*s", i, i % 29,
             "abcdefghijklmnopqrstuvwxyz0123456789");
    uint64_t s;
    assert_int_equal(
        cl_ledger_append_user(l, VIEW, coll, strlen(coll), (const uint8_t *)text, strlen(text), &s),
        CL_OK);
    lu_log_push(&g_tamper_log, s, coll, text);
}

/* A public ledger: the genesis chunk, then one tiny chunk (one entry and its signature: opened
 * with a tiny chunk size), then 300 user entries over 4 KiB chunks with a signature every 10 and
 * syncs every 7, a last signature, and three unsigned entries after it (an unsigned tail in the
 * open chunk). */
static void make_tamper_ledger(void)
{
    snprintf(g_tamper, sizeof g_tamper, "%s/tamper", g_base);
    lu_log_init(&g_tamper_log);
    cl_ledger *l = NULL;
    assert_int_equal(lu_create(g_tamper, 0, TAMPER_CHUNK, NULL, &l), CL_OK);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    assert_int_equal(lu_open(g_tamper, 200, NULL, &l), CL_OK);
    tamper_append(l, 0);
    assert_int_equal(cl_ledger_sign(l, VIEW, NULL), CL_OK); /* rolls the genesis chunk */
    tamper_append(l, 1);
    assert_int_equal(cl_ledger_sign(l, VIEW, NULL), CL_OK); /* rolls the tiny chunk */
    assert_int_equal(cl_ledger_close(l), CL_OK);
    assert_int_equal(lu_open(g_tamper, TAMPER_CHUNK, NULL, &l), CL_OK);
    for (int i = 2; i < TAMPER_ENTRIES + 3; i++) {
        tamper_append(l, i);
        if (i % 10 == 9 && i < TAMPER_ENTRIES)
            assert_int_equal(cl_ledger_sign(l, VIEW, NULL), CL_OK);
        if (i % 7 == 6)
            assert_int_equal(cl_ledger_sync(l), CL_OK);
        if (i == TAMPER_ENTRIES - 1)
            assert_int_equal(cl_ledger_sign(l, VIEW, NULL), CL_OK);
    }
    assert_int_equal(cl_ledger_close(l), CL_OK);
    lu_log_ack_all(&g_tamper_log);
    g_tamper_pem = lu_service_pem(g_tamper);
    assert_non_null(g_tamper_pem);
}

static int group_setup(void **state)
{
    (void)state;
    /* Nothing here depends on the real disk's durability (the fault fs models it), and the fault
     * loops create and delete thousands of small files: use a RAM file system when there is one.
     * CL_FAULTS_TMPDIR overrides. */
    const char *fast = getenv("CL_FAULTS_TMPDIR");
    if (fast == NULL && access("/dev/shm", W_OK | X_OK) == 0) {
        fast = "/dev/shm";
        g_ramfs = 1;
    }
    if (fast != NULL)
        setenv("TMPDIR", fast, 1);
    const char *b = tu_tempdir("cl-faults");
    if (b == NULL)
        return -1;
    snprintf(g_base, sizeof g_base, "%s", b);
    make_template(0);
    make_template(1);
    make_tamper_ledger();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    free(g_pem[0]);
    free(g_pem[1]);
    free(g_tamper_pem);
    lu_log_free(&g_tamper_log);
    tu_rmrf(g_base);
    return 0;
}

static void copy_of(const char *tpl, const char *name, char *dir, size_t cap)
{
    snprintf(dir, cap, "%s/%s", g_base, name);
    tu_rmrf(dir);
    assert_int_equal(lu_copy_tree(tpl, dir), CL_OK);
}

static void expect_verifies(const char *dir, const char *pem, const char *ctx)
{
    cl_verify_report rep;
    int rc = lu_verify(dir, pem, &rep);
    if (rc != CL_OK)
        fail_msg("%s: verify-ledger failed (%s): seqno %llu %s@%llu: %s", ctx, cl_errname(rc),
                 (unsigned long long)rep.bad_seqno, rep.file, (unsigned long long)rep.offset,
                 rep.what);
}

/* ---- the workload ---------------------------------------------------------------------------- */

typedef struct {
    int priv;
    lu_log log;
    const char *op; /* the operation that failed */
} workload;

static const char *const colls[] = {"alpha", "beta:1", "gamma/2"};

/* Appends to three collections, signs every 4 entries, syncs every 3, rotates the ledger secret
 * half-way on a private ledger, then signs, syncs and closes. Returns the first error (w->op names
 * the call); the handle is NULL afterwards when close was reached (close frees it either way). */
static int run_workload(cl_ledger **lp, workload *w)
{
    cl_ledger *l = *lp;
    char text[96];
    int rc;
    for (int i = 0; i < WL_ENTRIES; i++) {
        const char *coll = colls[i % 3];
        snprintf(text, sizeof text, "w%d %s %.*s", i, w->priv ? "private" : "public", i % 23,
                 "0123456789abcdefghijklmnopqrstuvwxyz");
        uint64_t s = 0;
        w->op = "append";
        rc = cl_ledger_append_user(l, VIEW, coll, strlen(coll), (const uint8_t *)text, strlen(text),
                                   &s);
        if (rc < 0)
            return rc;
        lu_log_push(&w->log, s, coll, text);
        if (i % 4 == 3) {
            w->op = "sign";
            if ((rc = cl_ledger_sign(l, VIEW, NULL)) < 0)
                return rc;
        }
        if (w->priv && i == WL_ENTRIES / 2) {
            w->op = "rotate_secret";
            if ((rc = cl_ledger_rotate_secret(l, VIEW)) < 0)
                return rc;
        }
        if (i % 3 == 2) {
            w->op = "sync";
            if ((rc = cl_ledger_sync(l)) < 0)
                return rc;
            lu_log_ack_all(&w->log);
        }
        if (i == 11) {
            /* A rollback (Raft truncation) of two durable but unsigned entries: their seqnos are
             * reused by the next appends. Once truncate returns, they are gone for good. */
            for (int k = 0; k < 2; k++) {
                w->op = "append (rolled back)";
                if ((rc = cl_ledger_append_user(l, VIEW, "doomed", 6, (const uint8_t *)"doomed", 6,
                                                &s)) < 0)
                    return rc;
                lu_log_push(&w->log, s, "doomed", "doomed");
            }
            w->op = "sync (before rollback)";
            if ((rc = cl_ledger_sync(l)) < 0)
                return rc;
            lu_log_ack_all(&w->log);
            /* (a failed truncate may or may not have cut them: no longer expected either way) */
            uint64_t keep = cl_ledger_signed_seqno(l);
            while (w->log.n > 0 && w->log.v[w->log.n - 1].seqno > keep)
                w->log.n--;
            if (w->log.acked > w->log.n)
                w->log.acked = w->log.n;
            w->op = "truncate";
            if ((rc = cl_ledger_truncate(l, keep)) < 0)
                return rc;
        }
    }
    w->op = "final sign";
    if ((rc = cl_ledger_sign(l, VIEW, NULL)) < 0)
        return rc;
    w->op = "final sync";
    if ((rc = cl_ledger_sync(l)) < 0)
        return rc;
    lu_log_ack_all(&w->log);
    w->op = "close";
    *lp = NULL;
    if ((rc = cl_ledger_close(l)) < 0)
        return rc;
    lu_log_ack_all(&w->log);
    return CL_OK;
}

/* Reopens with the real fs and checks everything a recovered ledger must satisfy. boot: as in
 * lu_open_boot (another boot after a simulated power cut). */
static void check_recovered(const char *dir, int priv, const lu_log *log, const char *ctx,
                            const char *boot)
{
    char why[512];
    cl_ledger *l = NULL;
    int rc = lu_open_boot(dir, FAULT_CHUNK, NULL, boot, &l);
    if (rc != CL_OK)
        fail_msg("%s: reopen failed: %s", ctx, cl_errname(rc));
    if ((rc = cl_ledger_check(l)) != CL_OK)
        fail_msg("%s: cl_ledger_check after reopen: %s", ctx, cl_errname(rc));
    if (lu_check_log(l, log, why, sizeof why) != CL_OK)
        fail_msg("%s: %s", ctx, why);
    if (priv && lu_check_secrets(l, dir, why, sizeof why) != CL_OK)
        fail_msg("%s: %s", ctx, why);
    /* the recovered ledger (maybe with an unsigned tail) verifies as it is */
    expect_verifies(dir, g_pem[priv], ctx);
    /* and takes new entries */
    uint64_t last = cl_ledger_last_seqno(l), s = 0;
    const char *text = "after recovery";
    rc =
        cl_ledger_append_user(l, VIEW + 1, "recovered", 9, (const uint8_t *)text, strlen(text), &s);
    if (rc != CL_OK || s != last + 1)
        fail_msg("%s: append after recovery: %s (seqno %llu, last %llu)", ctx, cl_errname(rc),
                 (unsigned long long)s, (unsigned long long)last);
    assert_int_equal(cl_ledger_sign(l, VIEW + 1, NULL), CL_OK);
    assert_int_equal(cl_ledger_sync(l), CL_OK);
    if (lu_expect_entry(l, s, "recovered", text, why, sizeof why) != CL_OK)
        fail_msg("%s: %s", ctx, why);
    assert_int_equal(cl_ledger_check(l), CL_OK);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    expect_verifies(dir, g_pem[priv], ctx);
}

/* ---- write / fsync / rename faults ----------------------------------------------------------- */

#define FS_KINDS (CL_FAULT_WRITE | CL_FAULT_SYNC | CL_FAULT_RENAME)

static void fs_fault_loop(int priv, int crash)
{
    long n;
    int ended = 0;
    for (n = 0; n < FAULT_CAP && !ended; n++) {
        char dir[700], ctx[128];
        snprintf(ctx, sizeof ctx, "%s ledger, %s at fs operation %ld", priv ? "private" : "public",
                 crash ? "crash" : "failure", n);
        copy_of(g_tpl[priv], "fault-run", dir, sizeof dir);
        cl_fs_fault *ff = NULL;
        assert_int_equal(cl_fs_fault_new(fault_base(), &ff), CL_OK);
        cl_fs *fs = cl_fs_fault_fs(ff);
        cl_ledger *l = NULL;
        assert_int_equal(lu_open(dir, FAULT_CHUNK, fs, &l), CL_OK);
        cl_fs_fault_arm(ff, FS_KINDS, n, crash);
        workload w = {priv, {0}, NULL};
        lu_log_init(&w.log);
        int rc = run_workload(&l, &w);
        int fired = cl_fs_fault_fired(ff);
        if (!fired && rc != CL_OK)
            fail_msg("%s: %s failed without a fault: %s", ctx, w.op, cl_errname(rc));
        if (rc < 0 && rc != CL_EIO)
            fail_msg("%s: %s returned %s, expected CL_EIO", ctx, w.op, cl_errname(rc));
        if (l != NULL) {
            assert_true(rc < 0);
            if (!crash) {
                /* one failed write or sync poisons the handle until it is reopened */
                uint64_t s;
                int a = cl_ledger_append_user(l, VIEW, "x", 1, (const uint8_t *)"y", 1, &s);
                int b = cl_ledger_sign(l, VIEW, NULL);
                int c = cl_ledger_sync(l);
                int d = cl_ledger_rotate_secret(l, VIEW);
                if (a != CL_ECLOSED || b != CL_ECLOSED || c != CL_ECLOSED || d != CL_ECLOSED)
                    fail_msg("%s: after a failed %s the handle still accepts writes "
                             "(append %s, sign %s, sync %s, rotate %s)",
                             ctx, w.op, cl_errname(a), cl_errname(b), cl_errname(c), cl_errname(d));
            }
            cl_ledger_abandon(l);
        }
        if (fired && crash) {
            assert_int_equal(cl_fs_fault_crash_apply(ff, (uint64_t)n), CL_OK);
            /* A second crash during recovery itself must be harmless too. */
            cl_fs_fault_arm(ff, FS_KINDS, n % 5, 1);
            cl_ledger *r = NULL;
            int orc = lu_open_boot(dir, FAULT_CHUNK, fs, "after-power-cut-1", &r);
            if (orc == CL_OK)
                (void)cl_ledger_close(r);
            else if (!cl_fs_fault_fired(ff))
                fail_msg("%s: recovery open failed without a fault: %s", ctx, cl_errname(orc));
            if (cl_fs_fault_fired(ff))
                assert_int_equal(cl_fs_fault_crash_apply(ff, (uint64_t)n + 7919), CL_OK);
        }
        cl_fs_fault_free(ff);
        check_recovered(dir, priv, &w.log, ctx, fired && crash ? "after-power-cut-2" : NULL);
        lu_log_free(&w.log);
        ended = !fired;
    }
    if (!ended)
        fail_msg("the workload still hit a fault after %d faults", FAULT_CAP);
    print_message("    %s ledger, %s: %ld fault points\n", priv ? "private" : "public",
                  crash ? "crash" : "single failure", n - 1);
}

static void test_fs_crash_public(void **state)
{
    (void)state;
    fs_fault_loop(0, 1);
}
static void test_fs_crash_private(void **state)
{
    (void)state;
    fs_fault_loop(1, 1);
}
static void test_fs_failure_public(void **state)
{
    (void)state;
    fs_fault_loop(0, 0);
}
static void test_fs_failure_private(void **state)
{
    (void)state;
    fs_fault_loop(1, 0);
}

/* A copy of template tpl as g_base/name (its path in dir), opened through a new fault fs (*ff,
 * disarmed), with one user entry "before" appended (not synced) and logged in *g. */
static cl_ledger *open_faulty(const char *tpl, const char *name, char *dir, size_t cap,
                              cl_fs_fault **ff, lu_log *g)
{
    copy_of(tpl, name, dir, cap);
    assert_int_equal(cl_fs_fault_new(fault_base(), ff), CL_OK);
    cl_ledger *l = NULL;
    assert_int_equal(lu_open(dir, FAULT_CHUNK, cl_fs_fault_fs(*ff), &l), CL_OK);
    lu_log_init(g);
    uint64_t s;
    assert_int_equal(cl_ledger_append_user(l, VIEW, "c", 1, (const uint8_t *)"before", 6, &s),
                     CL_OK);
    lu_log_push(g, s, "c", "before");
    return l;
}

/* Regression: the directory sync after the new node/ledger_secrets is renamed into place fails.
 * The file on disk may hold the new secret; if the handle went on (forgetting that secret in
 * memory), later entries would be encrypted under the old secret but decrypted under the new one
 * after a reopen. Whatever the handle does, what it acknowledges must read back. */
static void test_rotate_secret_dir_sync_fails(void **state)
{
    (void)state;
    char dir[700], why[512];
    cl_fs_fault *ff = NULL;
    lu_log g;
    uint64_t s;
    cl_ledger *l = open_faulty(g_tpl[1], "rotate-fail", dir, sizeof dir, &ff, &g);
    assert_int_equal(cl_ledger_sync(l), CL_OK);
    lu_log_ack_all(&g);
    /* cl_fs_write_atomic: sync of the .tmp file (0), rename, sync of the directory (1) */
    cl_fs_fault_arm(ff, CL_FAULT_SYNC, 1, 0);
    assert_int_equal(cl_ledger_rotate_secret(l, VIEW), CL_EIO);
    assert_true(cl_fs_fault_fired(ff));
    int rc = cl_ledger_append_user(l, VIEW, "c", 1, (const uint8_t *)"after", 5, &s);
    if (rc == CL_OK) {
        lu_log_push(&g, s, "c", "after");
        assert_int_equal(cl_ledger_sign(l, VIEW, NULL), CL_OK);
        assert_int_equal(cl_ledger_sync(l), CL_OK);
        lu_log_ack_all(&g);
        assert_int_equal(cl_ledger_close(l), CL_OK);
    } else {
        assert_int_equal(rc, CL_ECLOSED);
        cl_ledger_abandon(l);
    }
    cl_fs_fault_free(ff);
    assert_int_equal(lu_open(dir, FAULT_CHUNK, NULL, &l), CL_OK);
    if (lu_check_log(l, &g, why, sizeof why) != CL_OK)
        fail_msg("%s", why);
    if (lu_check_secrets(l, dir, why, sizeof why) != CL_OK)
        fail_msg("%s", why);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    lu_log_free(&g);
    tu_rmrf(dir);
}

/* A service identity rotation crashed at each file-system operation it makes (its staging file,
 * its records and signature, the sync, the key and certificate files it installs, the staging
 * file's removal), each crash followed by a power cut (seeded outcomes), then reopened. The
 * identity in place is always the one the ledger recorded last: the staging file is gone, the
 * ledger verifies offline with the service certificate on disk (receipts included), and it takes
 * new entries. The ways out: the rotation discarded (no record durable), undone (its records
 * durable without their signature), finished at open, and complete; all but undone must be seen.
 * Before the staging (until 2026-11-25) the key files were written after the records' sync and
 * before their signature: a crash between left service_key.pem new and service_cert.pem old, or the
 * records unsigned with new files, which cledgerd's cut then removed. */
static void test_rotate_identity_crash(void **state)
{
    (void)state;
    enum { DISCARDED, UNDONE, FINISHED, COMPLETE };
    int seen[4] = {0};
    char dir[700], log[760], next[760], ctx[128], why[512];
    snprintf(log, sizeof log, "%s/rotate-crash.log", g_base);
    long n;
    int ended = 0;
    for (n = 0; n < FAULT_CAP && !ended; n++) {
        for (uint64_t seed = 0; seed < 3 && !ended; seed++) {
            snprintf(ctx, sizeof ctx, "rotate-identity, crash at fs operation %ld, seed %llu", n,
                     (unsigned long long)seed);
            cl_fs_fault *ff = NULL;
            lu_log g;
            uint64_t s;
            cl_ledger *l = open_faulty(g_tpl[1], "rotate-crash", dir, sizeof dir, &ff, &g);
            snprintf(next, sizeof next, "%s/node/identity.next", dir);
            assert_int_equal(cl_ledger_sign(l, VIEW, NULL), CL_OK);
            assert_int_equal(cl_ledger_sync(l), CL_OK);
            lu_log_ack_all(&g);
            uint64_t last = cl_ledger_last_seqno(l);
            cl_fs_fault_arm(ff, FS_KINDS, n, 1);
            int rc = cl_ledger_rotate_service_identity(l, VIEW);
            int fired = cl_fs_fault_fired(ff);
            if (!fired) {
                if (rc != CL_OK)
                    fail_msg("%s: failed without a fault: %s", ctx, cl_errname(rc));
                cl_fs_fault_arm(ff, FS_KINDS, -1, 1); /* close is not under test */
                assert_int_equal(cl_ledger_close(l), CL_OK);
                ended = 1;
            } else {
                if (rc != CL_EIO)
                    fail_msg("%s: returned %s, expected CL_EIO", ctx, cl_errname(rc));
                cl_ledger_abandon(l);
                assert_int_equal(cl_fs_fault_crash_apply(ff, (uint64_t)n * 3 + seed), CL_OK);
            }
            cl_fs_fault_free(ff);
            int staged = access(next, F_OK) == 0;
            rc = lu_open_logged(dir, FAULT_CHUNK, NULL, CL_LOG_WARN, log, &l);
            char *out = tu_read_file(log, NULL);
            assert_non_null(out);
            if (rc != CL_OK)
                fail_msg("%s: reopen failed: %s\n%s", ctx, cl_errname(rc), out);
            int way = strstr(out, "finishing an interrupted")    ? FINISHED
                      : strstr(out, "undoing an interrupted")    ? UNDONE
                      : strstr(out, "discarding an interrupted") ? DISCARDED
                                                                 : -1;
            free(out);
            if (!fired)
                way = way < 0 ? COMPLETE : -2; /* a clean rotation leaves nothing to settle */
            if (way < 0 && staged)
                fail_msg("%s: node/identity.next was left and open did not settle it", ctx);
            if (way >= 0)
                seen[way]++;
            else if (way == -2)
                fail_msg("%s: a complete rotation left something to settle", ctx);
            if (access(next, F_OK) == 0)
                fail_msg("%s: node/identity.next is still there after the open", ctx);
            if (way == UNDONE && cl_ledger_last_seqno(l) != last)
                fail_msg("%s: undone, but the ledger ends at %llu, not %llu", ctx,
                         (unsigned long long)cl_ledger_last_seqno(l), (unsigned long long)last);
            char *pem = lu_service_pem(dir);
            assert_non_null(pem);
            if (strcmp(pem, cl_ledger_service_cert_pem(l)) != 0)
                fail_msg("%s: service_cert.pem is not the handle's service identity", ctx);
            if (cl_ledger_check(l) != CL_OK || lu_check_log(l, &g, why, sizeof why) != CL_OK)
                fail_msg("%s: %s", ctx, why);
            if (lu_check_secrets(l, dir, why, sizeof why) != CL_OK)
                fail_msg("%s: %s", ctx, why);
            assert_int_equal(
                cl_ledger_append_user(l, VIEW + 1, "c", 1, (const uint8_t *)"after", 5, &s), CL_OK);
            assert_int_equal(cl_ledger_sign(l, VIEW + 1, NULL), CL_OK);
            assert_int_equal(cl_ledger_sync(l), CL_OK);
            json_t *receipt = NULL;
            assert_int_equal(cl_ledger_receipt(l, s, &receipt), CL_OK);
            json_decref(receipt);
            assert_int_equal(cl_ledger_close(l), CL_OK);
            expect_verifies(dir, pem, ctx);
            free(pem);
            lu_log_free(&g);
        }
    }
    if (!ended)
        fail_msg("the rotation still hit a fault after %d faults", FAULT_CAP);
    print_message(
        "    rotate-identity: %ld fault points; discarded %d, undone %d, finished at open "
        "%d, complete %d\n",
        n - 1, seen[DISCARDED], seen[UNDONE], seen[FINISHED], seen[COMPLETE]);
    /* Undone needs a power cut that keeps the records and tears their signature: some seeds
     * give it; test_ledger's test_service_identity_rotation_undone makes it on purpose. */
    if (seen[DISCARDED] == 0 || seen[FINISHED] == 0 || seen[COMPLETE] != 1)
        fail_msg("a way out was never seen");
    unlink(log);
    tu_rmrf(dir);
}

/* Regression (fault fs crash model): a crash right after an atomic replace (write .tmp, fsync,
 * rename over the old file) but before the directory sync leaves the old or the new file under the
 * name, never no file; the model used to undo the rename without restoring the old file, or make
 * the renamed file vanish. */
static void test_fault_fs_replace_then_crash(void **state)
{
    (void)state;
    char dir[700], path[800];
    snprintf(dir, sizeof dir, "%s/replace", g_base);
    tu_rmrf(dir);
    assert_int_equal(cl_fs_mkdir(cl_fs_posix(), dir, 0700), CL_OK);
    snprintf(path, sizeof path, "%s/file", dir);
    int saw_old = 0, saw_new = 0;
    for (uint64_t seed = 0; seed < 64; seed++) {
        assert_int_equal(cl_fs_write_atomic(cl_fs_posix(), path, "old contents", 12, 0600), CL_OK);
        cl_fs_fault *ff = NULL;
        assert_int_equal(cl_fs_fault_new(cl_fs_posix(), &ff), CL_OK);
        cl_fs_fault_arm(ff, CL_FAULT_SYNC, 1, 1); /* the directory sync after the rename */
        assert_int_equal(cl_fs_write_atomic(cl_fs_fault_fs(ff), path, "new", 3, 0600), CL_EIO);
        assert_true(cl_fs_fault_fired(ff));
        assert_int_equal(cl_fs_fault_crash_apply(ff, seed), CL_OK);
        cl_fs_fault_free(ff);
        size_t len = 0;
        char *b = tu_read_file(path, &len);
        if (b == NULL)
            fail_msg("seed %llu: the replaced file vanished", (unsigned long long)seed);
        if (len == 12 && memcmp(b, "old contents", 12) == 0)
            saw_old = 1;
        else if (len == 3 && memcmp(b, "new", 3) == 0)
            saw_new = 1;
        else
            fail_msg("seed %llu: the file holds '%.*s'", (unsigned long long)seed, (int)len, b);
        free(b);
    }
    assert_true(saw_old && saw_new); /* both outcomes are modelled */
    tu_rmrf(dir);
}

/* ---- allocation faults ----------------------------------------------------------------------- */

static void alloc_fault_loop(int priv)
{
    long n;
    int ended = 0;
    for (n = 0; n < 100000 && !ended; n++) {
        char dir[700], ctx[128];
        snprintf(ctx, sizeof ctx, "%s ledger, allocation %ld fails", priv ? "private" : "public",
                 n);
        copy_of(g_tpl[priv], "alloc-run", dir, sizeof dir);
        cl_ledger *l = NULL;
        assert_int_equal(lu_open(dir, FAULT_CHUNK, NULL, &l), CL_OK);
        workload w = {priv, {0}, NULL};
        lu_log_init(&w.log);
        long before = cl_alloc_failures();
        cl_alloc_fail_after(n);
        int rc = run_workload(&l, &w);
        cl_alloc_fail_after(-1);
        int fired = cl_alloc_failures() != before;
        if (!fired && rc != CL_OK)
            fail_msg("%s: %s failed without a fault: %s", ctx, w.op, cl_errname(rc));
        if (rc < 0 && rc != CL_ENOMEM && rc != CL_ECLOSED)
            fail_msg("%s: %s returned %s, expected CL_ENOMEM or CL_ECLOSED", ctx, w.op,
                     cl_errname(rc));
        if (l != NULL) {
            /* Either the handle refuses everything (poisoned) or it is still consistent: then a
             * sync and a close succeed and everything appended is acknowledged. */
            int src = cl_ledger_sync(l);
            if (src == CL_OK) {
                lu_log_ack_all(&w.log);
                assert_int_equal(cl_ledger_check(l), CL_OK);
                if ((src = cl_ledger_close(l)) != CL_OK)
                    fail_msg("%s: close after a survived %s: %s", ctx, w.op, cl_errname(src));
            } else {
                if (src != CL_ECLOSED)
                    fail_msg("%s: sync after a failed %s: %s", ctx, w.op, cl_errname(src));
                cl_ledger_abandon(l);
            }
        }
        check_recovered(dir, priv, &w.log, ctx, NULL);
        lu_log_free(&w.log);
        ended = !fired;
    }
    if (!ended)
        fail_msg("allocation fault loop did not end");
    print_message("    %s ledger: %ld allocation fault points\n", priv ? "private" : "public",
                  n - 1);
}

static void test_alloc_faults_public(void **state)
{
    (void)state;
    alloc_fault_loop(0);
}
static void test_alloc_faults_private(void **state)
{
    (void)state;
    alloc_fault_loop(1);
}

/* ---- tampering ------------------------------------------------------------------------------- */

typedef struct {
    char name[128];
    char path[800];
    cl_chunk_name cn;
    uint64_t size;
    lu_frame *frames;
    size_t nframes;
} chunk_info;

static size_t load_chunks(const char *dir, chunk_info *ci, size_t cap)
{
    static char names[MAX_CHUNKS][128];
    int n = lu_list_chunks(dir, names, MAX_CHUNKS);
    assert_true(n > 0 && (size_t)n <= cap);
    for (int i = 0; i < n; i++) {
        memcpy(ci[i].name, names[i], sizeof ci[i].name);
        int k = snprintf(ci[i].path, sizeof ci[i].path, "%s/ledger/%s", dir, names[i]);
        assert_true(k > 0 && (size_t)k < sizeof ci[i].path);
        assert_int_equal(cl_chunk_parse_name(names[i], &ci[i].cn), CL_OK);
        struct stat st;
        assert_int_equal(stat(ci[i].path, &st), 0);
        ci[i].size = (uint64_t)st.st_size;
        assert_int_equal(lu_chunk_frames(ci[i].path, &ci[i].frames, &ci[i].nframes), CL_OK);
        assert_true(ci[i].nframes > 0);
    }
    return (size_t)n;
}

static void free_chunks(chunk_info *ci, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ci[i].frames);
}

/* The seqno and chunk verify-ledger must name for a flipped byte. */
static void expected_for(const chunk_info *ci, size_t nchunks, size_t c, uint64_t pos, uint8_t mask,
                         uint64_t *seqno, const char **file)
{
    *file = ci[c].name;
    if (pos < CL_CHUNK_HEADER_LEN) {
        *seqno = ci[c].cn.start;
        return;
    }
    for (size_t f = 0; f < ci[c].nframes; f++) {
        if (pos >= ci[c].frames[f].off && pos < ci[c].frames[f].end) {
            *seqno = ci[c].frames[f].seqno;
            return;
        }
    }
    fail_msg("byte %llu of %s is in no frame", (unsigned long long)pos, ci[c].name);
}

static void flip(int fd, uint64_t pos, uint8_t mask)
{
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, (off_t)pos), 1);
    b ^= mask;
    assert_int_equal(pwrite(fd, &b, 1, (off_t)pos), 1);
}

static long g_flips;

static void tamper_one(const char *dir, const cl_cert *cert, const chunk_info *ci, size_t nchunks,
                       size_t c, int fd, uint64_t pos, uint8_t mask)
{
    flip(fd, pos, mask);
    cl_verify_report rep;
    int rc = cl_verify_ledger_dir(NULL, dir, cert, NULL, NULL, &rep);
    flip(fd, pos, mask);
    g_flips++;
    uint64_t want_seqno;
    const char *want_file;
    expected_for(ci, nchunks, c, pos, mask, &want_seqno, &want_file);
    if (rc == CL_OK)
        fail_msg("flipping 0x%02x at byte %llu of %s went unnoticed", mask, (unsigned long long)pos,
                 ci[c].name);
    if (rep.bad_seqno != want_seqno || strcmp(rep.file, want_file) != 0)
        fail_msg("flipping 0x%02x at byte %llu of %s: verify-ledger names seqno %llu in '%s' "
                 "(%s), expected seqno %llu in %s",
                 mask, (unsigned long long)pos, ci[c].name, (unsigned long long)rep.bad_seqno,
                 rep.file, rep.what, (unsigned long long)want_seqno, want_file);
    /* inside a frame (signed or not), the CRC catches a flipped bit before anything else */
    if (pos >= CL_CHUNK_HEADER_LEN ? strstr(rep.what, "unreadable entry frame") == NULL
                                   : rep.what[0] == '\0')
        fail_msg("flipping 0x%02x at byte %llu of %s: unexpected explanation '%s'", mask,
                 (unsigned long long)pos, ci[c].name, rep.what);
}

static void test_tamper_every_chunk(void **state)
{
    (void)state;
    char dir[700];
    copy_of(g_tamper, "tamper-flip", dir, sizeof dir);
    static chunk_info ci[MAX_CHUNKS];
    size_t n = load_chunks(dir, ci, MAX_CHUNKS);
    assert_true(n >= 5);
    assert_false(ci[n - 1].cn.committed); /* an open chunk with an unsigned tail */
    const chunk_info *oc = &ci[n - 1];
    uint64_t last_sig_end = 0;
    for (size_t f = 0; f < oc->nframes; f++)
        if (oc->frames[f].type == CL_ENTRY_SIGNATURE)
            last_sig_end = oc->frames[f].end;
    assert_true(last_sig_end < oc->size); /* the tail really is unsigned */
    /* every byte of one whole committed chunk: the first after genesis (cheap to reach) */
    size_t small = 1;
    assert_true(ci[small].cn.committed);

    cl_cert *cert = NULL;
    assert_int_equal(cl_cert_from_pem(g_tamper_pem, strlen(g_tamper_pem), &cert), CL_OK);
    g_flips = 0;
    const uint8_t masks[2] = {0x01, 0x80};
    for (size_t c = 0; c < n; c++) {
        int fd = open(ci[c].path, O_RDWR);
        assert_true(fd >= 0);
        if (c == small) {
            for (uint64_t p = 0; p < ci[c].size; p++)
                for (int m = 0; m < 2; m++)
                    tamper_one(dir, cert, ci, n, c, fd, p, masks[m]);
            close(fd);
            continue;
        }
        /* every header byte (alternating the two bits), the ledger-type flag with both */
        for (uint64_t p = 0; p < CL_CHUNK_HEADER_LEN; p++)
            tamper_one(dir, cert, ci, n, c, fd, p, masks[(p + c) % 2]);
        tamper_one(dir, cert, ci, n, c, fd, 12, masks[(c + 1) % 2]);
        for (size_t f = 0; f < ci[c].nframes; f++) {
            const lu_frame *fr = &ci[c].frames[f];
            uint64_t len = fr->end - fr->off;
            if (c + 1 == n && fr->off >= last_sig_end) {
                /* the unsigned tail: unsigned, but every byte is still covered by the CRC */
                uint64_t stride = fr->off == last_sig_end ? 1 : 5;
                for (uint64_t p = fr->off; p < fr->end; p += stride)
                    tamper_one(dir, cert, ci, n, c, fd, p, masks[p % 2]);
                continue;
            }
            /* the length field, somewhere inside, and (every third frame) the CRC */
            tamper_one(dir, cert, ci, n, c, fd, fr->off + f % 4, masks[f % 2]);
            tamper_one(dir, cert, ci, n, c, fd, fr->off + 4 + (c * 131 + f * 37) % (len - 8),
                       masks[(f + 1) % 2]);
            if (f % 3 == 0)
                tamper_one(dir, cert, ci, n, c, fd, fr->end - 1 - f % 4, masks[(f + 1) % 2]);
        }
        close(fd);
    }
    print_message(
        "    %ld single-bit flips over %zu chunk files (all %llu bytes of %s), all caught\n",
        g_flips, n, (unsigned long long)ci[small].size, ci[small].name);
    /* every byte was restored */
    cl_verify_report rep;
    assert_int_equal(cl_verify_ledger_dir(NULL, dir, cert, NULL, NULL, &rep), CL_OK);
    assert_int_equal(rep.unsigned_tail, 3);
    cl_cert_free(cert);
    free_chunks(ci, n);
    tu_rmrf(dir);
}

/* verify-ledger fails, naming the given file (NULL: any) and a `what` containing `needle`. */
static void expect_rejected(const char *dir, const char *file, uint64_t seqno, const char *needle,
                            const char *ctx)
{
    cl_verify_report rep;
    int rc = lu_verify(dir, g_tamper_pem, &rep);
    if (rc == CL_OK)
        fail_msg("%s: verify-ledger accepted the damaged ledger", ctx);
    if ((file != NULL && strcmp(rep.file, file) != 0) || (seqno && rep.bad_seqno != seqno) ||
        strstr(rep.what, needle) == NULL)
        fail_msg("%s: verify-ledger says seqno %llu in '%s': %s (expected seqno %llu in '%s': "
                 "...%s...)",
                 ctx, (unsigned long long)rep.bad_seqno, rep.file, rep.what,
                 (unsigned long long)seqno, file ? file : "*", needle);
}

static void append_bytes(const char *path, const void *data, size_t n)
{
    int fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, n), (ssize_t)n);
    close(fd);
}

static void test_tamper_whole_files(void **state)
{
    (void)state;
    char dir[700], a[900], b[900];
    static chunk_info ci[MAX_CHUNKS];
    size_t n;

    /* a missing chunk in the middle, and a missing first chunk */
    copy_of(g_tamper, "tamper-files", dir, sizeof dir);
    n = load_chunks(dir, ci, MAX_CHUNKS);
    assert_int_equal(unlink(ci[2].path), 0);
    expect_rejected(dir, ci[3].name, ci[2].cn.start, "missing", "deleted middle chunk");
    assert_int_equal(unlink(ci[0].path), 0);
    expect_rejected(dir, ci[1].name, 1, "missing", "deleted first chunk");
    free_chunks(ci, n);

    /* two chunk files swap names */
    copy_of(g_tamper, "tamper-files", dir, sizeof dir);
    n = load_chunks(dir, ci, MAX_CHUNKS);
    snprintf(a, sizeof a, "%s.swap", ci[1].path);
    assert_int_equal(rename(ci[1].path, a), 0);
    assert_int_equal(rename(ci[3].path, ci[1].path), 0);
    assert_int_equal(rename(a, ci[3].path), 0);
    expect_rejected(dir, ci[1].name, ci[1].cn.start, "differs from its file name",
                    "swapped chunks");
    free_chunks(ci, n);

    /* a committed chunk cut at a frame boundary (its last signature gone), and mid-frame */
    copy_of(g_tamper, "tamper-files", dir, sizeof dir);
    n = load_chunks(dir, ci, MAX_CHUNKS);
    const lu_frame *last = &ci[1].frames[ci[1].nframes - 1];
    assert_int_equal(last->type, CL_ENTRY_SIGNATURE);
    assert_int_equal(truncate(ci[1].path, (off_t)last->off), 0);
    expect_rejected(dir, ci[1].name, 0, "should end at seqno", "committed chunk cut at a frame");
    assert_int_equal(truncate(ci[1].path, (off_t)last->off - 10), 0);
    expect_rejected(dir, ci[1].name, last->seqno - 1, "unreadable entry frame",
                    "committed chunk cut mid-frame");
    free_chunks(ci, n);

    /* junk, and a copy of a valid frame, after the end of a committed chunk */
    copy_of(g_tamper, "tamper-files", dir, sizeof dir);
    n = load_chunks(dir, ci, MAX_CHUNKS);
    static const char junk[] = "\x13\x37junk after the last frame of a committed chunk";
    append_bytes(ci[2].path, junk, sizeof junk - 1);
    expect_rejected(dir, ci[2].name, ci[2].cn.end + 1, "unreadable entry frame",
                    "junk after a committed chunk");
    free_chunks(ci, n);
    copy_of(g_tamper, "tamper-files", dir, sizeof dir);
    n = load_chunks(dir, ci, MAX_CHUNKS);
    size_t flen = 0;
    char *whole = tu_read_file(ci[2].path, &flen);
    assert_non_null(whole);
    last = &ci[2].frames[ci[2].nframes - 1];
    append_bytes(ci[2].path, whole + last->off, (size_t)(last->end - last->off));
    free(whole);
    expect_rejected(dir, ci[2].name, ci[2].cn.end + 1, "frame holds seqno",
                    "a frame repeated after a committed chunk");
    free_chunks(ci, n);

    /* a stray file with a chunk-like name, and a second open chunk */
    copy_of(g_tamper, "tamper-files", dir, sizeof dir);
    n = load_chunks(dir, ci, MAX_CHUNKS);
    snprintf(b, sizeof b, "%s/ledger/ledger_junk", dir);
    int fd = open(b, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    close(fd);
    expect_rejected(dir, NULL, 0, "not a chunk name", "stray ledger_ file");
    assert_int_equal(unlink(b), 0);
    cl_chunk_name open2 = {ci[1].cn.start, 0, 0};
    char oname[128];
    cl_chunk_format_name(&open2, oname, sizeof oname);
    snprintf(b, sizeof b, "%s/ledger/%s", dir, oname);
    assert_int_equal(rename(ci[1].path, b), 0);
    expect_rejected(dir, oname, 0, "open chunk that is not the last", "open chunk in the middle");
    free_chunks(ci, n);
    tu_rmrf(dir);
}

/* ---- torn tails ------------------------------------------------------------------------------ */

static void write_marker(const char *dir, const char *text)
{
    char path[800];
    snprintf(path, sizeof path, "%s/index/dirty", dir);
    assert_int_equal(cl_fs_write_atomic(cl_fs_posix(), path, text, strlen(text), 0600), CL_OK);
}

/* Damage the end of the open chunk as a crash could, reopen: the tail is cut back to the last
 * complete frame, every entry survives, and the ledger verifies and grows. whole: the tail starts
 * with a whole frame that fails its check (a length field out of range, or a bad CRC), which only
 * a power cut can leave (the machine stopped: index/dirty names another boot). While the ledger
 * was closed cleanly, or last open in this boot (only the process died, and that leaves a prefix
 * of what it wrote), such a frame is damage: the open is refused and nothing is cut. Before, it
 * was cut with every whole frame after it. A tail that is a prefix of a frame is cut either way. */
static void torn_tail_case(const char *what, const void *tail, size_t tail_len, int whole)
{
    char dir[700], why[512];
    copy_of(g_tamper, "torn", dir, sizeof dir);
    static chunk_info ci[MAX_CHUNKS];
    size_t n = load_chunks(dir, ci, MAX_CHUNKS);
    const chunk_info *oc = &ci[n - 1];
    assert_false(oc->cn.committed);
    append_bytes(oc->path, tail, tail_len);
    cl_verify_report rep;
    assert_int_not_equal(lu_verify(dir, g_tamper_pem, &rep), CL_OK);

    cl_ledger *l = NULL;
    struct stat st;
    if (whole) {
        uint32_t before = tu_dir_crc(dir);
        if (lu_open(dir, TAMPER_CHUNK, NULL, &l) != CL_ECORRUPT) /* closed cleanly */
            fail_msg("%s: a whole bad frame after a clean close was not refused", what);
        assert_int_equal(tu_dir_crc(dir), before);
        write_marker(dir, "boot this-boot\n");
        before = tu_dir_crc(dir);
        if (lu_open_boot(dir, TAMPER_CHUNK, NULL, "this-boot", &l) != CL_ECORRUPT)
            fail_msg("%s: a whole bad frame in the same boot was not refused", what);
        assert_int_equal(tu_dir_crc(dir), before);
        write_marker(dir, "boot before-the-power-cut\n");
    }
    int rc = lu_open_boot(dir, TAMPER_CHUNK, NULL, whole ? "after-the-power-cut" : NULL, &l);
    if (rc != CL_OK)
        fail_msg("%s: reopen: %s", what, cl_errname(rc));
    assert_int_equal(stat(oc->path, &st), 0);
    if ((uint64_t)st.st_size != oc->size)
        fail_msg("%s: the open chunk is %lld bytes after recovery, expected %llu", what,
                 (long long)st.st_size, (unsigned long long)oc->size);
    assert_int_equal(cl_ledger_last_seqno(l), oc->frames[oc->nframes - 1].seqno);
    assert_int_equal(cl_ledger_check(l), CL_OK);
    if (lu_check_log(l, &g_tamper_log, why, sizeof why) != CL_OK)
        fail_msg("%s: %s", what, why);
    expect_verifies(dir, g_tamper_pem, what);
    uint64_t s;
    assert_int_equal(cl_ledger_append_user(l, VIEW, "after", 5, (const uint8_t *)"tear", 4, &s),
                     CL_OK);
    assert_int_equal(s, oc->frames[oc->nframes - 1].seqno + 1);
    assert_int_equal(cl_ledger_sign(l, VIEW, NULL), CL_OK);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    expect_verifies(dir, g_tamper_pem, what);
    l = NULL;
    assert_int_equal(lu_open(dir, TAMPER_CHUNK, NULL, &l), CL_OK);
    if (lu_expect_entry(l, s, "after", "tear", why, sizeof why) != CL_OK)
        fail_msg("%s: %s", what, why);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    free_chunks(ci, n);
    tu_rmrf(dir);
}

static void test_torn_tail_cut(void **state)
{
    (void)state;
    /* the first bytes of a real frame (its last frame again, so the length field is plausible) */
    char dir[700];
    static chunk_info ci[MAX_CHUNKS];
    snprintf(dir, sizeof dir, "%s", g_tamper);
    size_t n = load_chunks(dir, ci, MAX_CHUNKS);
    const chunk_info *oc = &ci[n - 1];
    const lu_frame *fr = &oc->frames[oc->nframes - 1];
    size_t flen = 0;
    char *whole = tu_read_file(oc->path, &flen);
    assert_non_null(whole);
    size_t frame_len = (size_t)(fr->end - fr->off);
    torn_tail_case("partial frame (length field only)", whole + fr->off, 4, 0);
    torn_tail_case("partial frame (header)", whole + fr->off, 100, 0);
    torn_tail_case("partial frame (all but the CRC)", whole + fr->off, frame_len - 4, 0);
    /* a whole frame with a bad CRC */
    char *bad = malloc(frame_len);
    assert_non_null(bad);
    memcpy(bad, whole + fr->off, frame_len);
    bad[frame_len - 1] ^= 0x55;
    torn_tail_case("complete frame with a bad CRC", bad, frame_len, 1);
    /* and one followed by a whole frame: both cut only after a power cut */
    char *two = malloc(2 * frame_len);
    assert_non_null(two);
    memcpy(two, bad, frame_len);
    memcpy(two + frame_len, whole + fr->off, frame_len);
    torn_tail_case("a frame with a bad CRC, then a whole frame", two, 2 * frame_len, 1);
    free(two);
    free(bad);
    free(whole);
    free_chunks(ci, n);

    torn_tail_case("three bytes", "\x01\x02\x03", 3, 0);
    static const char garbage[] = "\xfa\xce\xb0\x0c garbage that is not a frame at all \xff\x00";
    torn_tail_case("garbage", garbage, sizeof garbage - 1, 1);
    static uint8_t zeros[5000];
    torn_tail_case("zeros", zeros, sizeof zeros, 1);
    uint8_t huge[8] = {0xff, 0xff, 0xff, 0x0f, 1, 1, 0, 0};
    torn_tail_case("an absurd length", huge, sizeof huge, 1);
}

/* A crash right after creating a new chunk file: it holds a partial header or nothing. The
 * Merkle tree and the index are then ahead of the chunks and are cut back at open. */
static void test_torn_new_chunk(void **state)
{
    (void)state;
    char dir[700], why[512];
    static chunk_info ci[MAX_CHUNKS];
    static const size_t keeps[] = {0, 9, 18, 31, CL_CHUNK_HEADER_LEN};
    for (size_t ki = 0; ki < sizeof keeps / sizeof keeps[0]; ki++) {
        size_t keep = keeps[ki];
        copy_of(g_tamper, "torn-new", dir, sizeof dir);
        size_t n = load_chunks(dir, ci, MAX_CHUNKS);
        const chunk_info *oc = &ci[n - 1];
        uint64_t start = oc->cn.start;
        char *whole = tu_read_file(oc->path, NULL);
        assert_non_null(whole);
        assert_int_equal(truncate(oc->path, (off_t)keep), 0);
        cl_ledger *l = NULL;
        int rc = lu_open(dir, TAMPER_CHUNK, NULL, &l);
        if (rc != CL_OK)
            fail_msg("open chunk cut to %zu bytes: reopen: %s", keep, cl_errname(rc));
        assert_int_equal(cl_ledger_last_seqno(l), start - 1);
        assert_int_equal(cl_ledger_check(l), CL_OK);
        lu_log g;
        lu_log_init(&g);
        for (size_t i = 0; i < g_tamper_log.n && g_tamper_log.v[i].seqno < start; i++)
            lu_log_push(&g, g_tamper_log.v[i].seqno, g_tamper_log.v[i].coll,
                        g_tamper_log.v[i].text);
        lu_log_ack_all(&g);
        if (lu_check_log(l, &g, why, sizeof why) != CL_OK)
            fail_msg("open chunk cut to %zu bytes: %s", keep, why);
        lu_log_free(&g);
        expect_verifies(dir, g_tamper_pem, "cut open chunk");
        uint64_t s;
        assert_int_equal(cl_ledger_append_user(l, VIEW, "again", 5, (const uint8_t *)"x", 1, &s),
                         CL_OK);
        assert_int_equal(s, start);
        assert_int_equal(cl_ledger_sign(l, VIEW, NULL), CL_OK);
        assert_int_equal(cl_ledger_close(l), CL_OK);
        expect_verifies(dir, g_tamper_pem, "cut open chunk, then appended");
        free(whole);
        free_chunks(ci, n);
    }
    tu_rmrf(dir);
}

/* The header of a new chunk is synced before anything else goes into the file. So a damaged header
 * in a file holding only the header (a crash while creating it; here its start field zeroed, as a
 * power cut that zero-fills a page span can leave it) is recreated at open, while the same damage
 * in front of entries is corruption: open refuses it rather than dropping those entries. */
static void test_damaged_new_chunk_header(void **state)
{
    (void)state;
    char dir[700];
    static chunk_info ci[MAX_CHUNKS];
    for (int with_entries = 0; with_entries <= 1; with_entries++) {
        copy_of(g_tamper, "damaged-header", dir, sizeof dir);
        size_t n = load_chunks(dir, ci, MAX_CHUNKS);
        const chunk_info *oc = &ci[n - 1];
        uint64_t start = oc->cn.start;
        if (!with_entries)
            assert_int_equal(truncate(oc->path, CL_CHUNK_HEADER_LEN), 0);
        FILE *f = fopen(oc->path, "r+b");
        assert_non_null(f);
        static const uint8_t zeros[8];
        assert_int_equal(fseek(f, 16, SEEK_SET), 0); /* the start seqno */
        assert_int_equal(fwrite(zeros, 1, sizeof zeros, f), sizeof zeros);
        assert_int_equal(fclose(f), 0);
        cl_ledger *l = NULL;
        int rc = lu_open(dir, TAMPER_CHUNK, NULL, &l);
        if (with_entries) {
            assert_int_equal(rc, CL_ECORRUPT);
        } else {
            assert_int_equal(rc, CL_OK);
            assert_int_equal(cl_ledger_last_seqno(l), start - 1);
            assert_int_equal(cl_ledger_check(l), CL_OK);
            assert_int_equal(cl_ledger_close(l), CL_OK);
            expect_verifies(dir, g_tamper_pem, "damaged header of an empty open chunk");
        }
        free_chunks(ci, n);
        tu_rmrf(dir);
    }
}

int main(void)
{
    /* CL_TEST_LOG=debug|info|warn|error shows the engine's log; CL_TEST_FILTER=pattern runs a
     * subset of the tests. */
    const char *lv = getenv("CL_TEST_LOG");
    int level = lv ? cl_log_level_parse(lv) : -1;
    cl_log_set_level(level >= 0 ? (cl_log_level)level : CL_LOG_OFF);
    if (getenv("CL_TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("CL_TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fs_crash_public),
        cmocka_unit_test(test_fs_crash_private),
        cmocka_unit_test(test_fs_failure_public),
        cmocka_unit_test(test_fs_failure_private),
        cmocka_unit_test(test_rotate_secret_dir_sync_fails),
        cmocka_unit_test(test_rotate_identity_crash),
        cmocka_unit_test(test_fault_fs_replace_then_crash),
        cmocka_unit_test(test_alloc_faults_public),
        cmocka_unit_test(test_alloc_faults_private),
        cmocka_unit_test(test_tamper_every_chunk),
        cmocka_unit_test(test_tamper_whole_files),
        cmocka_unit_test(test_torn_tail_cut),
        cmocka_unit_test(test_torn_new_chunk),
        cmocka_unit_test(test_damaged_new_chunk_header),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
