/*
 * fuzz_rlog — the raft log loader of cl_rlog (src/consensus/rlog.c) on hostile directories.
 *
 * The input becomes the files of a fresh directory (/tmp/cledger-fuzz-rlog-<pid>, removed after
 * each input), then cl_rlog_init + io->init + io->load run on it, and what load returns is freed
 * exactly as libraft frees it. Layout, from the first byte (mode) and two little-endian u16 split
 * lengths a, b (bytes 1..4; inputs shorter than 5 bytes are one segment):
 *   mode & 3 == 0   log-0000000000000001 = the rest
 *   mode & 3 == 1   log-…01 = rest[0, a), log-…02 = rest[a, end)
 *   mode & 3 == 2   snapshot = rest[0, a), log-…01 = rest[a, end)
 *   mode & 3 == 3   log-…01 = rest[0, a), log-…02 = rest[a, a + b), snapshot = the remainder
 *   mode & 4        segment files keep their exact size (else zero-padded to a 4 KiB multiple, as
 *                   real segments are: the loader ignores a partial last block)
 *   mode & 8        a valid meta file (term 1 + ((mode >> 4) & 3), vote 1)
 *   mode & 0x40     checksums repaired first (every 8-byte aligned record header whose length
 *                   fits gets its crc32c recomputed; the snapshot's trailing crc32c too), so that
 *                   mutations reach the checks behind the checksums
 *   mode & 0x80     after a successful load: start, append three entries, close, load again
 * The snapshot file is named snap-<its own index field> when it is long enough to have one (else
 * snap-0000000000000001), so that valid snapshots are found.
 *
 * Checked: load either fails cleanly (nothing returned) or returns a consistent log (terms never
 * go down, the start index fits the snapshot); loading the same directory a second time (after
 * whatever repairs the first load made on disk) gives the same status and the same log; with
 * mode & 0x80, the reloaded log is the first one followed by exactly the appended entries (no
 * record from the fuzzed files comes back after them).
 *
 * Seed generation: when CLEDGER_FUZZ_GEN_DIR names a directory at the first call, valid layouts
 * (one and two segments, sealed and not, snapshots with and without trailing entries) and damaged
 * variants are written there. CLEDGER_FUZZ_VERBOSE prints each load's result.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <raft.h>
#include <uv.h>

#include "base/cursor.h"
#include "base/err.h"
#include "base/log.h"
#include "consensus/rlog.h"
#include "fuzz.h"
#include "ledger/entry.h"
#include "testutil.h"

#define BLK 4096u
#define SEG_BYTES (64u << 10)
#define N_APPEND 3

static char work_dir[256];
static int verbose;

/* ---- files ------------------------------------------------------------------------------------
 */

static void write_file(const char *dir, const char *name, const uint8_t *p, size_t n, size_t pad_to)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK(n == 0 || fwrite(p, 1, n, f) == n);
    static const uint8_t zeros[BLK];
    for (size_t left = pad_to > n ? pad_to - n : 0; left > 0;) {
        size_t k = left < BLK ? left : BLK;
        CHECK(fwrite(zeros, 1, k, f) == k);
        left -= k;
    }
    CHECK(fclose(f) == 0);
}

/* Removes every file of dir (what the input made, and whatever load or the appends added). */
static void clear_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        (void)unlink(path);
    }
    closedir(d);
}

#define M_ENTRY 0x31524c43u
#define M_SEAL 0x53524c43u

/* Recomputes the checksum of every record header at an 8-byte aligned offset of p[0, n). */
static void fix_log_crcs(uint8_t *p, size_t n)
{
    for (size_t pos = 0; pos + 32 <= n; pos += 8) {
        uint32_t magic = cl_load_u32(p + pos);
        uint32_t len = cl_load_u32(p + pos + 24);
        if ((magic == M_ENTRY || magic == M_SEAL) && len <= n - pos - 32)
            cl_store_u32(p + pos + 4, cl_crc32c(cl_crc32c(0, p + pos + 8, 24), p + pos + 32, len));
    }
}

static void fix_snap_crc(uint8_t *p, size_t n)
{
    if (n >= 52)
        cl_store_u32(p + n - 4, cl_crc32c(0, p, n - 4));
}

/* Lays the input out in dir (see the header comment). */
static void lay_out(const char *dir, uint8_t *data, size_t size)
{
    unsigned mode = size >= 5 ? data[0] : 0;
    size_t a = size >= 5 ? (size_t)(data[1] | data[2] << 8) : 0;
    size_t b = size >= 5 ? (size_t)(data[3] | data[4] << 8) : 0;
    uint8_t *rest = size >= 5 ? data + 5 : data;
    size_t n = size >= 5 ? size - 5 : size;
    a = a < n ? a : n;
    b = b < n - a ? b : n - a;
    int exact = (mode & 4) != 0;
    uint8_t *log1 = rest, *log2 = NULL, *snap = NULL;
    size_t l1 = n, l2 = 0, ls = 0;
    switch (mode & 3) {
    case 1:
        l1 = a;
        log2 = rest + a;
        l2 = n - a;
        break;
    case 2:
        snap = rest;
        ls = a;
        log1 = rest + a;
        l1 = n - a;
        break;
    case 3:
        l1 = a;
        log2 = rest + a;
        l2 = b;
        snap = rest + a + b;
        ls = n - a - b;
        break;
    default:
        break;
    }
    if (mode & 0x40) {
        fix_log_crcs(log1, l1);
        if (log2 != NULL)
            fix_log_crcs(log2, l2);
        if (snap != NULL)
            fix_snap_crc(snap, ls);
    }
    write_file(dir, "log-0000000000000001", log1, l1, exact ? 0 : (l1 + BLK - 1) / BLK * BLK);
    if (log2 != NULL)
        write_file(dir, "log-0000000000000002", log2, l2, exact ? 0 : (l2 + BLK - 1) / BLK * BLK);
    if (snap != NULL) {
        char name[32];
        uint64_t idx = ls >= 24 ? cl_load_u64(snap + 16) : 1;
        snprintf(name, sizeof name, "snap-%016llx", (unsigned long long)idx);
        write_file(dir, name, snap, ls, 0);
    }
    if (mode & 8) {
        uint8_t m[28];
        memcpy(m, "CLRMETA1", 8);
        cl_store_u64(m + 8, 1 + ((mode >> 4) & 3));
        cl_store_u64(m + 16, 1);
        cl_store_u32(m + 24, cl_crc32c(0, m, 24));
        write_file(dir, "meta", m, sizeof m, 0);
    }
}

/* ---- the io ---------------------------------------------------------------------------------- */

typedef struct {
    int rv;
    raft_term term;
    raft_id vote;
    struct raft_snapshot *snap;
    raft_index start;
    struct raft_entry *e;
    size_t n;
} result;

/* Everything load returned, freed as libraft frees it. */
static void result_free(result *r)
{
    cl_rlog_loaded_free(r->snap, r->e, r->n);
    memset(r, 0, sizeof *r);
}

static void check_result(const result *r)
{
    if (r->rv != 0) {
        CHECK(r->snap == NULL && r->e == NULL && r->n == 0);
        return;
    }
    CHECK(r->start >= 1);
    CHECK(r->n == 0 || r->e != NULL);
    for (size_t i = 0; i < r->n; i++) {
        CHECK(r->e[i].buf.base != NULL);
        CHECK(r->e[i].batch != NULL && r->e[i].batch == r->e[0].batch); /* one shared batch */
        CHECK(r->e[i].term >= 1);
        CHECK(i == 0 || r->e[i].term >= r->e[i - 1].term);
    }
    if (r->snap != NULL) {
        CHECK(r->snap->n_bufs >= 1 && r->snap->bufs != NULL);
        if (r->n > 0)
            CHECK(r->start <= r->snap->index + 1 && r->start + r->n - 1 >= r->snap->index);
        else
            CHECK(r->start == r->snap->index + 1);
    } else {
        CHECK(r->n == 0 || r->start == 1);
        CHECK(r->n > 0 || r->start == 1);
    }
}

static int same_entry(const struct raft_entry *x, const struct raft_entry *y)
{
    return x->term == y->term && x->type == y->type && x->buf.len == y->buf.len &&
           (x->buf.len == 0 || memcmp(x->buf.base, y->buf.base, x->buf.len) == 0);
}

static int same_snapshot(const struct raft_snapshot *x, const struct raft_snapshot *y)
{
    if (x == NULL || y == NULL)
        return x == y;
    if (x->index != y->index || x->term != y->term ||
        x->configuration_index != y->configuration_index ||
        x->configuration.n != y->configuration.n || x->n_bufs != y->n_bufs)
        return 0;
    for (unsigned i = 0; i < x->configuration.n; i++) {
        const struct raft_server *s = &x->configuration.servers[i],
                                 *t = &y->configuration.servers[i];
        if (s->id != t->id || s->role != t->role || strcmp(s->address, t->address) != 0)
            return 0;
    }
    for (unsigned i = 0; i < x->n_bufs; i++)
        if (x->bufs[i].len != y->bufs[i].len ||
            (x->bufs[i].len > 0 && memcmp(x->bufs[i].base, y->bufs[i].base, x->bufs[i].len) != 0))
            return 0;
    return 1;
}

typedef struct {
    uv_loop_t loop;
    struct raft_io io;
    int closed;
    int fired;
    int statuses;
} fio;

static void on_closed(struct raft_io *io)
{
    fio *f = io->data;
    f->closed = 1;
}

static void on_append(struct raft_io_append *req, int status)
{
    fio *f = req->data;
    f->fired++;
    f->statuses |= status != 0;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void run_until(fio *f, const int *flag, int want)
{
    double end = now_ms() + 20000;
    while (*flag < want) {
        CHECK(now_ms() < end); /* a hang is a finding */
        uv_run(&f->loop, UV_RUN_ONCE);
    }
}

static void fio_close(fio *f)
{
    f->io.close(&f->io, on_closed);
    run_until(f, &f->closed, 1);
    CHECK(uv_run(&f->loop, UV_RUN_NOWAIT) == 0);
    CHECK(uv_loop_close(&f->loop) == 0);
}

/* cl_rlog_init + init + load on dir; r receives the result. The io is left open. */
static void fio_load(fio *f, const char *dir, result *r)
{
    memset(f, 0, sizeof *f);
    memset(r, 0, sizeof *r);
    CHECK(uv_loop_init(&f->loop) == 0);
    cl_rlog_opts o = {.writers = 1, .segment_bytes = SEG_BYTES};
    CHECK(cl_rlog_init(&f->io, &f->loop, dir, &o) == CL_OK);
    f->io.data = f;
    CHECK(f->io.init(&f->io, 1, "a") == 0);
    r->rv = f->io.load(&f->io, &r->term, &r->vote, &r->snap, &r->start, &r->e, &r->n);
    if (verbose)
        fprintf(stderr, "load: rv %d term %llu start %llu entries %zu snapshot %llu%s%s\n", r->rv,
                (unsigned long long)r->term, (unsigned long long)r->start, r->n,
                r->snap ? (unsigned long long)r->snap->index : 0ULL, r->rv ? ": " : "",
                r->rv ? f->io.errmsg : "");
    check_result(r);
}

/* Appends N_APPEND entries after what r holds (term: the last entry's, the snapshot's or 1). */
static void append_some(fio *f, const result *r, struct raft_entry *made)
{
    raft_term term = 1;
    if (r->snap != NULL && r->snap->term > term)
        term = r->snap->term;
    if (r->n > 0 && r->e[r->n - 1].term > term)
        term = r->e[r->n - 1].term;
    CHECK(f->io.start(&f->io, 60000, NULL, NULL) == 0);
    static uint8_t payload[3][700];
    struct raft_io_append reqs[N_APPEND];
    for (int i = 0; i < N_APPEND; i++) {
        memset(payload[i], 'a' + i, sizeof payload[i]);
        made[i].term = term;
        made[i].type = RAFT_COMMAND;
        made[i].buf.base = payload[i];
        made[i].buf.len = 100 + 300 * (size_t)i;
        made[i].batch = NULL;
        reqs[i].data = f;
        /* one request at a time: each is its own batch */
        CHECK(f->io.append(&f->io, &reqs[i], &made[i], 1, on_append) == 0);
        run_until(f, &f->fired, i + 1);
    }
    CHECK(f->statuses == 0);
}

/* ---- seeds ------------------------------------------------------------------------------------
 */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} gbuf;

static void g_need(gbuf *g, size_t n)
{
    if (g->n + n > g->cap) {
        g->cap = (g->n + n) * 2;
        g->p = realloc(g->p, g->cap);
        CHECK(g->p != NULL);
    }
}

static void g_bytes(gbuf *g, const void *p, size_t n)
{
    g_need(g, n);
    memcpy(g->p + g->n, p, n);
    g->n += n;
}

static void g_zeros(gbuf *g, size_t n)
{
    g_need(g, n);
    memset(g->p + g->n, 0, n);
    g->n += n;
}

static void g_pad_block(gbuf *g) { g_zeros(g, (BLK - g->n % BLK) % BLK); }

static void g_rec(gbuf *g, uint32_t magic, uint64_t index, uint64_t term, unsigned type,
                  const void *payload, uint32_t len)
{
    size_t at = g->n;
    g_zeros(g, 32 + ((len + 7u) & ~7u));
    uint8_t *h = g->p + at;
    cl_store_u64(h + 8, index);
    cl_store_u64(h + 16, term);
    cl_store_u32(h + 24, len);
    h[28] = (uint8_t)type;
    if (len > 0)
        memcpy(h + 32, payload, len);
    cl_store_u32(h, magic);
    cl_store_u32(h + 4, cl_crc32c(cl_crc32c(0, h + 8, 24), h + 32, len));
}

/* Entries first..last (term t) as one batch; payload lengths vary with the index. */
static void g_entries(gbuf *g, uint64_t first, uint64_t last, uint64_t t)
{
    uint8_t pl[200];
    for (uint64_t i = first; i <= last; i++) {
        uint32_t len = (uint32_t)(i * 37 % 150);
        for (uint32_t k = 0; k < len; k++)
            pl[k] = (uint8_t)(i + k);
        g_rec(g, M_ENTRY, i, t, i == 1 ? RAFT_CHANGE : RAFT_COMMAND, pl, len);
    }
}

static void g_seal(gbuf *g, uint64_t last)
{
    g_pad_block(g);
    g_rec(g, M_SEAL, last, 0, 0, NULL, 0);
    g_pad_block(g);
}

/* A snapshot file at (index, term) with one voter and a few data bytes. */
static void g_snapshot(gbuf *g, uint64_t index, uint64_t term)
{
    size_t at = g->n;
    g_bytes(g, "CLRSNAP1", 8);
    uint8_t b[8];
    cl_store_u64(b, term);
    g_bytes(g, b, 8);
    cl_store_u64(b, index);
    g_bytes(g, b, 8);
    cl_store_u64(b, 1);
    g_bytes(g, b, 8);
    cl_store_u32(b, 1);
    g_bytes(g, b, 4);
    cl_store_u64(b, 1);
    g_bytes(g, b, 8);
    cl_store_u32(b, RAFT_VOTER);
    g_bytes(g, b, 4);
    cl_store_u32(b, 1);
    g_bytes(g, b, 4);
    g_bytes(g, "a", 1);
    cl_store_u64(b, 5);
    g_bytes(g, b, 8);
    g_bytes(g, "state", 5);
    cl_store_u32(b, cl_crc32c(0, g->p + at, g->n - at));
    g_bytes(g, b, 4);
}

/* Input = mode, a, b, then the parts. */
static void g_input(const char *dir, const char *name, unsigned mode, const gbuf *p1,
                    const gbuf *p2, const gbuf *p3)
{
    gbuf in = {0};
    uint8_t h[5] = {(uint8_t)mode, (uint8_t)(p1->n & 0xff), (uint8_t)(p1->n >> 8),
                    (uint8_t)(p2 ? p2->n & 0xff : 0), (uint8_t)(p2 ? p2->n >> 8 : 0)};
    CHECK(p1->n < 65536 && (p2 == NULL || p2->n < 65536));
    g_bytes(&in, h, 5);
    g_bytes(&in, p1->p, p1->n);
    if (p2 != NULL)
        g_bytes(&in, p2->p, p2->n);
    if (p3 != NULL)
        g_bytes(&in, p3->p, p3->n);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK(fwrite(in.p, 1, in.n, f) == in.n);
    CHECK(fclose(f) == 0);
    free(in.p);
}

static void generate(const char *dir)
{
    gbuf s1 = {0}, s2 = {0}, sn = {0}, x = {0};
    /* one unsealed segment: 1..3 (one batch), 4..9 (the next block) */
    g_entries(&s1, 1, 3, 1);
    g_pad_block(&s1);
    g_entries(&s1, 4, 9, 2);
    g_input(dir, "one-segment", 0x08, &s1, NULL, NULL);
    g_input(dir, "one-segment-append", 0x88, &s1, NULL, NULL);
    g_input(dir, "one-segment-exact-size", 0x04, &s1, NULL, NULL);

    /* two segments: 1..9 sealed, 10..14 */
    x.n = 0;
    g_bytes(&x, s1.p, s1.n);
    g_seal(&x, 9);
    g_entries(&s2, 10, 14, 2);
    g_input(dir, "two-segments", 0x19, &x, &s2, NULL);
    g_input(dir, "two-segments-append", 0x99, &x, &s2, NULL);
    g_input(dir, "two-segments-fix-crcs", 0xd9, &x, &s2, NULL);
    /* the same without the seal (a crash before sealing): still one log */
    g_input(dir, "two-segments-unsealed", 0x81, &s1, &s2, NULL);

    /* snapshot at 12 with trailing entries 10..14 (the second segment alone) */
    g_snapshot(&sn, 12, 2);
    g_input(dir, "snapshot-trailing", 0x8a, &sn, &s2, NULL);
    /* snapshot at 20: every entry older, the log restarts after it */
    gbuf sn20 = {0};
    g_snapshot(&sn20, 20, 3);
    g_input(dir, "snapshot-newer-than-log", 0x8a, &sn20, &s2, NULL);
    /* three parts: sealed 1..9, 10..14, snapshot at 12 */
    g_input(dir, "three-parts", 0x8b, &x, &s2, &sn);
    g_input(dir, "three-parts-fix-crcs", 0xcb, &x, &s2, &sn);

    /* damage: a bad checksum in the middle of the sealed segment (RAFT_CORRUPT) */
    gbuf d = {0};
    g_bytes(&d, x.p, x.n);
    d.p[4096 + 40] ^= 0x40;
    g_input(dir, "damaged-sealed-segment", 0x09, &d, &s2, NULL);
    d.p[4096 + 40] ^= 0x40;
    d.p[12] ^= 0x01; /* the first record's index instead */
    g_input(dir, "damaged-sealed-segment-first-record", 0x09, &d, &s2, NULL);
    /* damage: torn tail of the last segment (garbage in the last record) */
    gbuf t = {0};
    g_bytes(&t, s2.p, s2.n);
    t.p[t.n - 3] ^= 0xff;
    g_input(dir, "torn-tail", 0x89, &x, &t, NULL);
    /* zeros in the middle of a batch, records after them */
    gbuf z = {0};
    g_bytes(&z, s1.p, s1.n);
    memset(z.p + 4096 + 40, 0, 60);
    g_input(dir, "zeros-mid-batch", 0x88, &z, NULL, NULL);
    /* no snapshot and a log starting at 10 (RAFT_CORRUPT) */
    g_input(dir, "starts-at-10", 0x00, &s2, NULL, NULL);
    /* a term going down */
    gbuf td = {0};
    g_entries(&td, 1, 4, 3);
    g_entries(&td, 5, 6, 2);
    g_input(dir, "term-goes-down", 0x88, &td, NULL, NULL);
    /* a damaged snapshot */
    gbuf bs = {0};
    g_bytes(&bs, sn.p, sn.n);
    bs.p[40] ^= 1; /* inside the configuration: the checksum no longer matches */
    g_input(dir, "damaged-snapshot", 0x02, &bs, &s2, NULL);

    free(s1.p);
    free(s2.p);
    free(sn.p);
    free(sn20.p);
    free(x.p);
    free(d.p);
    free(t.p);
    free(z.p);
    free(td.p);
    free(bs.p);
}

/* ---- entry point ------------------------------------------------------------------------------
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (work_dir[0] == '\0') {
        verbose = getenv("CLEDGER_FUZZ_VERBOSE") != NULL;
        cl_log_set_level(verbose ? CL_LOG_DEBUG : CL_LOG_OFF);
        const char *gen = getenv("CLEDGER_FUZZ_GEN_DIR");
        if (gen != NULL && gen[0] != '\0')
            generate(gen);
        snprintf(work_dir, sizeof work_dir, "/tmp/cledger-fuzz-rlog-%ld", (long)getpid());
    }
    CHECK(mkdir(work_dir, 0700) == 0 || access(work_dir, W_OK) == 0);
    clear_dir(work_dir);
    uint8_t *copy = malloc(size ? size : 1);
    CHECK(copy != NULL);
    if (size > 0)
        memcpy(copy, data, size);
    lay_out(work_dir, copy, size);
    free(copy);
    unsigned mode = size >= 5 ? data[0] : 0;

    /* cl_rlog_check first: it changes nothing, and agrees with the load that follows. */
    uint32_t before = tu_dir_crc(work_dir);
    uint64_t checked_last = 0;
    char why[256];
    int check_rc = cl_rlog_check(work_dir, &checked_last, why, sizeof why);
    CHECK(tu_dir_crc(work_dir) == before);

    fio f;
    result r1, r2;
    fio_load(&f, work_dir, &r1);
    fio_close(&f);
    CHECK(check_rc == r1.rv);
    if (r1.rv == 0)
        CHECK(checked_last == (r1.n > 0  ? (uint64_t)r1.start + r1.n - 1
                               : r1.snap ? (uint64_t)r1.snap->index
                                         : 0));

    /* A second load sees what the first one repaired: the same status and the same log. */
    fio_load(&f, work_dir, &r2);
    CHECK(r2.rv == r1.rv);
    if (r1.rv == 0) {
        CHECK(r2.term == r1.term && r2.vote == r1.vote && r2.start == r1.start && r2.n == r1.n);
        for (size_t i = 0; i < r1.n; i++)
            CHECK(same_entry(&r1.e[i], &r2.e[i]));
        CHECK(same_snapshot(r1.snap, r2.snap));
    }
    struct raft_entry made[N_APPEND];
    int appended = r2.rv == 0 && (mode & 0x80);
    if (appended)
        append_some(&f, &r2, made);
    fio_close(&f);
    result_free(&r2);

    if (appended) {
        /* the log as it was, then exactly the appended entries */
        fio_load(&f, work_dir, &r2);
        CHECK(r2.rv == 0);
        CHECK(same_snapshot(r1.snap, r2.snap));
        uint64_t next = r1.n > 0 ? r1.start + r1.n : r1.start;
        CHECK(r2.start + r2.n == next + N_APPEND);
        CHECK(r2.start == r1.start);
        for (size_t i = 0; i < r1.n; i++)
            CHECK(same_entry(&r1.e[i], &r2.e[i]));
        for (size_t i = 0; i < N_APPEND; i++)
            CHECK(same_entry(&made[i], &r2.e[r1.n + i]));
        fio_close(&f);
        result_free(&r2);
    }
    result_free(&r1);

    clear_dir(work_dir);
    CHECK(rmdir(work_dir) == 0);
    return 0;
}
