/*
 * bench_ledger — throughput, latency and memory of the ledger engine (driven by bench/run.sh).
 *
 *   bench_ledger append  DIR N BATCH   create a fresh public ledger in DIR (which must not hold
 *                                      one), append N user entries with 100-byte contents,
 *                                      cl_ledger_sync every BATCH entries and cl_ledger_sign every
 *                                      1000 (the daemon's sig_max_entries default). BATCH=1 is
 *                                      the one-fdatasync-per-entry baseline.
 *   bench_ledger open    DIR           time cl_ledger_open and cl_ledger_close of an existing
 *                                      ledger; peak RSS.
 *   bench_ledger rebuild DIR           open DIR as after an operating-system crash (left open in
 * one boot, reopened in another: the index is rebuilt from the chunks); time that open, then close.
 *   bench_ledger receipt DIR K         K receipts (cl_ledger_receipt) for random durable
 *                                      non-signature seqnos; then, with the ledger closed, K pure
 *                                      Merkle inclusion proofs (cl_merkle_path) on DIR/merkle.
 *   bench_ledger rss     DIR N         like append with BATCH=1000, printing the RSS every N/10
 *                                      entries (memory must not grow with the entry count).
 *
 * Output: one metric per line, "name value unit". Diagnostics go to stderr.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "base/err.h"
#include "base/log.h"
#include "ledger/ledger.h"
#include "ledger/merkle.h"
#include "storage/fs.h"

#define ENTRY_BYTES 100
#define SIG_EVERY 1000
#define VIEW 2
#define COLLECTION "bench"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* A "Field:  N kB" line of /proc/self/status in KiB, 0 if unknown. */
static long status_kib(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return 0;
    char line[256];
    size_t n = strlen(field);
    long v = 0;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            v = strtol(line + n + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* Resident set size (VmRSS): anonymous memory plus mapped file pages (the LMDB index map). */
static long rss_kib(void) { return status_kib("VmRSS"); }

static long peak_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss; /* KiB on Linux */
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "bench_ledger: %s: %s\n", what, cl_strerror(rc));
    return 1;
}

static int usage(void)
{
    fprintf(stderr, "usage: bench_ledger append DIR N BATCH\n"
                    "       bench_ledger open DIR\n"
                    "       bench_ledger rebuild DIR\n"
                    "       bench_ledger receipt DIR K\n"
                    "       bench_ledger rss DIR N\n");
    return 2;
}

/* xorshift64: a cheap, fixed-seed random sequence */
static uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* Total RSS, and its anonymous (heap: what the engine allocates) and file-backed (mmap of the
 * LMDB index; reclaimable page cache) parts. */
static void print_rss(uint64_t after)
{
    printf("ledger.rss.after_%" PRIu64 " %ld KiB\n", after, rss_kib());
    printf("ledger.rss_anon.after_%" PRIu64 " %ld KiB\n", after, status_kib("RssAnon"));
    printf("ledger.rss_file.after_%" PRIu64 " %ld KiB\n", after, status_kib("RssFile"));
}

typedef struct {
    double wall, cpu;
    uint64_t syncs, entries;
} append_stats;

/* Appends n user entries; sync every `batch`, sign every SIG_EVERY; ends with a signature and a
 * sync so that every entry is durable and signed. report_every > 0 prints the RSS. */
static int append_run(cl_ledger *l, uint64_t n, uint64_t batch, uint64_t report_every,
                      append_stats *st)
{
    uint8_t contents[ENTRY_BYTES];
    for (size_t i = 0; i < sizeof contents; i++)
        contents[i] = (uint8_t)('a' + i % 26);
    int rc;
    uint64_t seqno = 0, since_sig = 0, in_batch = 0;
    memset(st, 0, sizeof *st);
    double t0 = now(), c0 = cpu_s();
    for (uint64_t i = 1; i <= n; i++) {
        /* distinct contents per entry (the first 8 bytes carry the counter) */
        memcpy(contents, &i, sizeof i);
        if ((rc = cl_ledger_append_user(l, VIEW, COLLECTION, sizeof COLLECTION - 1, contents,
                                        sizeof contents, &seqno)) < 0)
            return fail("append", rc);
        if (++since_sig == SIG_EVERY) {
            if ((rc = cl_ledger_sign(l, VIEW, NULL)) < 0)
                return fail("sign", rc);
            since_sig = 0;
        }
        if (++in_batch == batch) {
            if ((rc = cl_ledger_sync(l)) < 0)
                return fail("sync", rc);
            st->syncs++;
            in_batch = 0;
        }
        if (report_every > 0 && i % report_every == 0)
            print_rss(i);
    }
    if (since_sig > 0 && (rc = cl_ledger_sign(l, VIEW, NULL)) < 0)
        return fail("sign", rc);
    if (cl_ledger_durable_seqno(l) != cl_ledger_last_seqno(l)) {
        if ((rc = cl_ledger_sync(l)) < 0)
            return fail("sync", rc);
        st->syncs++;
    }
    st->wall = now() - t0;
    st->cpu = cpu_s() - c0;
    st->entries = n;
    return 0;
}

static int create_ledger(const char *dir, cl_ledger **l)
{
    cl_ledger_opts o;
    memset(&o, 0, sizeof o);
    o.dir = dir;
    int rc = cl_ledger_create(&o, l);
    return rc < 0 ? fail("create", rc) : 0;
}

static int open_ledger_boot(const char *dir, const char *boot, cl_ledger **l)
{
    cl_ledger_opts o;
    memset(&o, 0, sizeof o);
    o.dir = dir;
    o.boot_id = boot;
    int rc = cl_ledger_open(&o, l);
    return rc < 0 ? fail("open", rc) : 0;
}

static int open_ledger(const char *dir, cl_ledger **l) { return open_ledger_boot(dir, NULL, l); }

static int cmd_append(const char *dir, uint64_t n, uint64_t batch)
{
    cl_ledger *l;
    if (create_ledger(dir, &l))
        return 1;
    append_stats st;
    if (append_run(l, n, batch, 0, &st)) {
        cl_ledger_abandon(l);
        return 1;
    }
    uint64_t last = cl_ledger_last_seqno(l);
    double t0 = now();
    int rc = cl_ledger_close(l);
    double close_s = now() - t0;
    if (rc < 0)
        return fail("close", rc);
    char p[64];
    snprintf(p, sizeof p, "ledger.append.batch%" PRIu64, batch);
    printf("%s.entries %" PRIu64 " entries\n", p, st.entries);
    printf("%s.seqnos %" PRIu64 " seqnos\n", p, last);
    printf("%s.per_s %.0f entries/s\n", p, (double)st.entries / st.wall);
    printf("%s.seconds %.3f s\n", p, st.wall);
    printf("%s.us_per_sync %.1f us\n", p, st.wall * 1e6 / (double)st.syncs);
    printf("%s.cpu_us_per_entry %.2f us\n", p, st.cpu * 1e6 / (double)st.entries);
    printf("%s.cpu_util %.2f cores\n", p, st.cpu / st.wall);
    printf("%s.close_ms %.1f ms\n", p, close_s * 1e3);
    printf("%s.peak_rss %ld KiB\n", p, peak_rss_kib());
    return 0;
}

static int cmd_open(const char *dir)
{
    long rss0 = rss_kib();
    cl_ledger *l;
    double t0 = now();
    if (open_ledger(dir, &l))
        return 1;
    double open_s = now() - t0;
    uint64_t last = cl_ledger_last_seqno(l);
    long rss_open = rss_kib();
    t0 = now();
    int rc = cl_ledger_close(l);
    double close_s = now() - t0;
    if (rc < 0)
        return fail("close", rc);
    printf("ledger.open.seqnos %" PRIu64 " seqnos\n", last);
    printf("ledger.open.ms %.2f ms\n", open_s * 1e3);
    printf("ledger.open.close_ms %.2f ms\n", close_s * 1e3);
    printf("ledger.open.total_ms %.2f ms\n", (open_s + close_s) * 1e3);
    printf("ledger.open.rss_delta %ld KiB\n", rss_open - rss0);
    printf("ledger.open.peak_rss %ld KiB\n", peak_rss_kib());
    printf("ledger.open.rss_anon %ld KiB\n", status_kib("RssAnon"));
    return 0;
}

/* Leaves the ledger open in boot "bench-a" (abandoned, as a machine that stops would), then times
 * its open in boot "bench-b": the index marker names another boot, so the index is rebuilt. */
static int cmd_rebuild(const char *dir)
{
    cl_ledger *l;
    if (open_ledger_boot(dir, "bench-a", &l))
        return 1;
    cl_ledger_abandon(l);
    double t0 = now();
    if (open_ledger_boot(dir, "bench-b", &l))
        return 1;
    double open_s = now() - t0;
    uint64_t last = cl_ledger_last_seqno(l);
    int rc = cl_ledger_close(l);
    if (rc < 0)
        return fail("close", rc);
    printf("ledger.rebuild.seqnos %" PRIu64 " seqnos\n", last);
    printf("ledger.rebuild.ms %.1f ms\n", open_s * 1e3);
    printf("ledger.rebuild.per_s %.0f entries/s\n", (double)last / open_s);
    printf("ledger.rebuild.peak_rss %ld KiB\n", peak_rss_kib());
    return 0;
}

static int cmd_receipt(const char *dir, uint64_t k)
{
    cl_ledger *l;
    if (open_ledger(dir, &l))
        return 1;
    uint64_t durable = cl_ledger_durable_seqno(l), signed_s = cl_ledger_signed_seqno(l);
    if (signed_s < 5) {
        fprintf(stderr, "bench_ledger: ledger too small for receipts\n");
        cl_ledger_close(l);
        return 1;
    }
    uint64_t seed = 0x9e3779b97f4a7c15ull, done = 0, skipped = 0, bytes = 0;
    double total = 0, worst = 0;
    /* warm-up: one receipt (first-use costs: digest contexts, index read txn, file handles) */
    for (int w = 0; w < 2; w++) {
        json_t *j = NULL;
        if (cl_ledger_receipt(l, 5, &j) == CL_OK)
            json_decref(j);
    }
    while (done < k) {
        uint64_t s = rnd(&seed) % (signed_s - 1) + 1; /* entries before the last signature */
        json_t *j = NULL;
        double t0 = now();
        int rc = cl_ledger_receipt(l, s, &j);
        double dt = now() - t0;
        if (rc == CL_EINVAL) { /* a signature entry: not a receipt target */
            skipped++;
            continue;
        }
        if (rc < 0) {
            cl_ledger_close(l);
            return fail("receipt", rc);
        }
        if (done == 0) {
            char *txt = json_dumps(j, JSON_COMPACT);
            bytes = txt ? strlen(txt) : 0;
            free(txt);
        }
        json_decref(j);
        total += dt;
        if (dt > worst)
            worst = dt;
        done++;
    }
    long peak_receipts = peak_rss_kib(), anon_receipts = status_kib("RssAnon"),
         file_receipts = status_kib("RssFile");
    int rc = cl_ledger_close(l);
    if (rc < 0)
        return fail("close", rc);

    /* The pure inclusion proof on the persisted tree (what cl_ledger_receipt calls). */
    cl_merkle *t;
    char mdir[4096];
    snprintf(mdir, sizeof mdir, "%s/merkle", dir);
    if ((rc = cl_merkle_open(cl_fs_posix(), mdir, &t)) < 0)
        return fail("merkle open", rc);
    uint64_t size = cl_merkle_size(t);
    cl_merkle_step steps[CL_MERKLE_MAX_PATH];
    size_t nsteps = 0, total_steps = 0;
    seed = 0x2545f4914f6cdd1dull;
    double pt0 = now();
    for (uint64_t i = 0; i < k; i++) {
        uint64_t idx = rnd(&seed) % (size - 1) + 1;
        if ((rc = cl_merkle_path(t, idx, size, steps, &nsteps)) < 0) {
            cl_merkle_close(t);
            return fail("merkle path", rc);
        }
        total_steps += nsteps;
    }
    double path_s = now() - pt0;
    cl_merkle_close(t);

    printf("ledger.receipt.seqnos %" PRIu64 " seqnos\n", durable);
    printf("ledger.receipt.count %" PRIu64 " receipts\n", done);
    printf("ledger.receipt.mean_us %.2f us\n", total * 1e6 / (double)done);
    printf("ledger.receipt.max_us %.1f us\n", worst * 1e6);
    printf("ledger.receipt.json_bytes %" PRIu64 " bytes\n", bytes);
    printf("ledger.receipt.peak_rss %ld KiB\n", peak_receipts);
    printf("ledger.receipt.rss_anon %ld KiB\n", anon_receipts);
    printf("ledger.receipt.rss_file %ld KiB\n", file_receipts);
    printf("ledger.proof.tree_size %" PRIu64 " leaves\n", size);
    printf("ledger.proof.mean_us %.2f us\n", path_s * 1e6 / (double)k);
    printf("ledger.proof.mean_steps %.1f steps\n", (double)total_steps / (double)k);
    printf("ledger.proof.peak_rss %ld KiB\n", peak_rss_kib());
    (void)skipped;
    return 0;
}

static int cmd_rss(const char *dir, uint64_t n)
{
    cl_ledger *l;
    if (create_ledger(dir, &l))
        return 1;
    print_rss(0);
    append_stats st;
    uint64_t every = n / 10 ? n / 10 : 1;
    if (append_run(l, n, 1000, every, &st)) {
        cl_ledger_abandon(l);
        return 1;
    }
    int rc = cl_ledger_close(l);
    if (rc < 0)
        return fail("close", rc);
    printf("ledger.rss.peak %ld KiB\n", peak_rss_kib());
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return usage();
    cl_log_set_level(CL_LOG_WARN);
    const char *mode = argv[1], *dir = argv[2];
    if (strcmp(mode, "append") == 0 && argc == 5) {
        uint64_t n = strtoull(argv[3], NULL, 10), b = strtoull(argv[4], NULL, 10);
        if (n == 0 || b == 0)
            return usage();
        return cmd_append(dir, n, b);
    }
    if (strcmp(mode, "open") == 0 && argc == 3)
        return cmd_open(dir);
    if (strcmp(mode, "rebuild") == 0 && argc == 3)
        return cmd_rebuild(dir);
    if (strcmp(mode, "receipt") == 0 && argc == 4) {
        uint64_t k = strtoull(argv[3], NULL, 10);
        return k ? cmd_receipt(dir, k) : usage();
    }
    if (strcmp(mode, "rss") == 0 && argc == 4) {
        uint64_t n = strtoull(argv[3], NULL, 10);
        return n ? cmd_rss(dir, n) : usage();
    }
    return usage();
}
