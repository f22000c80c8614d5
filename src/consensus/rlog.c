/*
 * rlog.c — cledger's raft_io (see rlog.h; format and recovery rules: docs/consensus.md §8).
 *
 * Files in the directory:
 *   meta             term and vote (written atomically: tmp, fsync, rename, directory fsync)
 *   log-%016llx      segments, numbered in creation order; every one is created full size
 *                    (zero-filled, synced, renamed into place) before its first write
 *   snap-%016llx     snapshots by index (atomic like meta); only the newest is kept
 *
 * A segment holds records: a 32-byte header (u32 magic, u32 crc32c of header[8..32) and the
 * payload, u64 index, u64 term, u32 length, u8 type, 3 zero bytes), then the payload padded to 8
 * bytes. A batch is one O_DIRECT|O_DSYNC pwrite of whole blocks. It continues the previous batch's
 * last block (rewriting its records with the same bytes) when no other write to the segment is in
 * flight, else it starts on the next block; two writes in flight never touch the same block, and
 * the rest of a batch's last block is zero. A seal
 * record (magic "CLRS", index = the segment's last index) is written into its own block once every
 * entry of the segment has been reported durable to libraft, and marks the segment complete.
 *
 * Threads: the loop thread owns all state. Batch writes are submitted from the loop through an
 * io_uring whose completions signal an eventfd the loop polls: no thread wakes up to start a
 * write (io_uring issues it inside io_uring_enter on the loop, non-blocking; only a write that
 * would block goes to the kernel's io-wq worker). Where io_uring is unavailable (or
 * CL_RLOG_IO_THREADS), `writers` writer threads run them as pwrite(2) instead. One maintenance
 * thread runs everything else that blocks (segment preparation, seals, snapshots, truncation,
 * deletions), one job at a time in submission order. Thread completions come back through a
 * cl_waker. Raft-visible operations sit in one FIFO and are reported in order: writes complete in
 * any order on disk, but libraft hears of a batch only after every earlier one. Truncation and
 * snapshot installation are barriers: they start once everything before them is done, and nothing
 * after them starts before they are done.
 */
#define _GNU_SOURCE
#include "consensus/rlog.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/codec.h"
#include "base/cursor.h"
#include "base/log.h"
#include "base/waker.h"
#include "ledger/entry.h"
#include "storage/fs.h"

#define BLOCK 4096u
#define REC_HDR 32u
#define MAGIC_ENTRY 0x31524c43u /* "CLR1" little-endian */
#define MAGIC_SEAL 0x53524c43u  /* "CLRS" */
#define MAGIC_MARK                                                                                 \
    0x42524c43u              /* "CLRB": starts a batch; index = every entry up to it was durable */
#define SECTOR 512u          /* the unit a torn write keeps or loses whole */
#define BATCH_CAP (1u << 20) /* a batch stops growing here (a new one starts) */
#define DEFAULT_SEGMENT (8u << 20)
/* One write in flight measured best on the 2-core VM (docs/performance.md, session 5): with two,
 * batches halve and the device's flushes overlap poorly; with one, the next batch starts the
 * moment the previous write returns, not after libraft has processed it. */
#define DEFAULT_WRITERS 1
#define MAX_WRITERS 8
#define RING_ENTRIES 16 /* > MAX_WRITERS: a submission queue slot is always free */
#define ZERO_CHUNK (1u << 20)
#define META_LEN 28 /* "CLRMETA1" u64 term u64 vote u32 crc */
#define PATH_CAP 4096
#define LOCK_WAIT_MS 30000       /* a segment lock still held after this is another process's */
#define PATH_BUF (PATH_CAP + 64) /* a file name under dir (dir is shorter than PATH_CAP) */

enum { J_WRITE, J_TRUNCATE, J_INSTALL, J_SNAP_PUT, J_SNAP_GET, J_PREPARE, J_SEAL };

typedef struct seg seg;
struct seg {
    uint64_t counter;
    uint64_t first, last; /* indexes it holds (first == 0: none) */
    uint64_t head;        /* next write offset (block aligned) */
    uint64_t size;        /* file size */
    int fd;               /* O_DSYNC (and O_DIRECT where supported) */
    int retired;          /* no more batches go here */
    int sealed, seal_queued;
    unsigned inflight; /* writes to this segment not yet complete */
    size_t tail_fill;  /* bytes of the block before `head` in use (0: head starts clean) */
    uint8_t *tail_blk; /* a copy of that block: the next write rewrites it with more records */
    uint8_t *fix;      /* io_load: the segment's bytes, to zero from fix_from once all is judged */
    size_t fix_from;
    seg *next;
};

typedef struct job job;
struct job {
    int kind;
    int status; /* raft error code */
    int done, dispatched;
    int flying; /* J_WRITE counted in writes_flying */
    job *next;  /* FIFO (raft-visible jobs) */
    job *qnext; /* thread queue, then done queue */
    /* J_WRITE */
    seg *seg;
    uint64_t off;
    uint8_t *buf; /* BLOCK-aligned; len bytes used, capacity cap */
    size_t len, cap;
    uint64_t write_ns; /* how long the write (O_DSYNC: through the device) took */
    uint64_t start_ns; /* io_uring: first submission */
    size_t ring_done;  /* io_uring: bytes written so far (a short write is resubmitted) */
    uint64_t first_index, last_index;
    struct raft_io_append **reqs;
    unsigned n_reqs, reqs_cap;
    /* J_TRUNCATE: cut at index; J_SEAL: seal record index; J_INSTALL / J_SNAP_PUT: snapshot */
    uint64_t index;
    uint64_t new_head; /* J_TRUNCATE result for `seg` */
    seg *dels;         /* J_TRUNCATE / J_INSTALL / J_SNAP_PUT: segments to remove */
    struct raft_io_snapshot_put *put;
    struct raft_io_snapshot_get *get;
    struct raft_snapshot *snap; /* J_SNAP_GET result */
    uint8_t *file;              /* encoded snapshot */
    size_t file_len;
    /* J_PREPARE */
    uint64_t counter;
    int fd;
};

typedef struct {
    struct raft_io *io;
    uv_loop_t *loop;
    char dir[PATH_CAP];
    unsigned n_writers;
    uint64_t seg_bytes;
    uint64_t rng;

    uint64_t term, vote;
    seg *segs, *segs_tail; /* oldest first; the tail takes the next batch unless retired */
    seg *spare;            /* prepared, empty */
    int preparing;
    uint64_t next_counter;
    uint64_t next_index;      /* index of the next appended entry */
    uint64_t delivered_index; /* last index reported durable to libraft */
    int failed;
    int dry;               /* cl_rlog_check: io_load judges the log and changes nothing */
    unsigned lock_wait_ms; /* lock_seg's wait at load (LOCK_WAIT_MS) */

    job *fifo, *fifo_tail;
    unsigned writes_flying;     /* J_WRITE dispatched, not yet delivered */
    job *side_done, *side_tail; /* finished snapshot put/get (not ordered with writes) */
    unsigned internal;          /* maintenance jobs outstanding (prepare, seal, snapshot put/get) */
    int in_pump, pump_again;
    int barrier_active; /* a truncation or installation dispatched, not yet delivered */

    /* shared with the threads, under mu */
    uv_mutex_t mu;
    uv_cond_t wcond, mcond;
    job *wq, *wq_tail, *mq, *mq_tail, *dq, *dq_tail;
    int stop_threads;
    uv_thread_t threads[MAX_WRITERS + 1];
    unsigned n_threads;
    cl_waker wake;
    int started;

    uv_timer_t timer;
    uv_prepare_t prep; /* submits the batch gathered in a loop iteration, before the loop sleeps */
    int submit_wanted; /* appends arrived outside pump: submit at the next prepare phase */
    raft_io_tick_cb tick;
    int closing, handles_open, handles_closing;
    raft_io_close_cb close_cb;
    void (*free_cb)(struct raft_io *io);
    cl_rlog_stats stats;
    uint64_t slow_ns;                         /* cl_rlog_opts.slow_write_ns */
    uint64_t recent_slow, recent_slow_max_ns; /* slow writes since cl_rlog_take_slow */

    int io_mode;  /* CL_RLOG_IO_* asked for */
    int use_ring; /* batch writes through `ring` from the loop, not writer threads */
    struct io_uring ring;
    int ring_fd;         /* eventfd the ring signals on completions */
    uv_poll_t ring_poll; /* the loop's watch on ring_fd */

    /* The last delivered batch's buffer and request array, reused by the next batch: no aligned
     * allocation, zeroing and growth per batch (docs/performance.md, session 12). */
    uint8_t *spare_buf;
    size_t spare_cap;
    struct raft_io_append **spare_reqs;
    unsigned spare_reqs_cap;
} rlog;

/* ---- small helpers -------------------------------------------------------------------------- */

static uint64_t pad8(uint64_t n) { return (n + 7) & ~(uint64_t)7; }
static uint64_t up_block(uint64_t n) { return (n + BLOCK - 1) & ~(uint64_t)(BLOCK - 1); }

static uint8_t *aligned_alloc_zero(size_t n)
{
    uint8_t *p = cl_aligned_alloc(BLOCK, n ? n : BLOCK);
    if (p != NULL)
        memset(p, 0, n ? n : BLOCK);
    return p;
}

static void seg_path(const rlog *l, uint64_t counter, char *out, size_t cap)
{
    snprintf(out, cap, "%s/log-%016" PRIx64, l->dir, counter);
}

static int sync_dir(const char *dir)
{
    return cl_fs_sync_dir(cl_fs_posix(), dir) == CL_OK ? 0 : -1;
}

/* Whole-buffer pread/pwrite (retrying short transfers and EINTR); -1 with errno on failure. */
static int rw_all(int fd, uint8_t *p, size_t n, uint64_t off, int write)
{
    while (n > 0) {
        ssize_t r = write ? pwrite(fd, p, n, (off_t)off) : pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = EIO;
            return -1;
        }
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

static int pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off)
{
    return rw_all(fd, (uint8_t *)p, n, off, 1);
}

static int pread_all(int fd, uint8_t *p, size_t n, uint64_t off)
{
    return rw_all(fd, p, n, off, 0);
}

/* O_DIRECT where the file system has it (not tmpfs), O_DSYNC always: a returned write is durable.
 */
static int open_log_fd(const char *path)
{
    int fd = open(path, O_RDWR | O_CLOEXEC | O_DSYNC | O_DIRECT);
    if (fd < 0 && errno == EINVAL)
        fd = open(path, O_RDWR | O_CLOEXEC | O_DSYNC);
    return fd;
}

/* The segment locks. A process that dies (kill -9) with an io_uring write in flight is reaped
 * before the write lands: the ring is torn down by the kernel afterwards, asynchronously. A
 * successor that loaded the log meanwhile took the end of the log from before the write, started
 * its own batches on the next block, and the late write then put the dead process's records
 * after that end, half over the successor's: the next start found the log damaged and refused
 * (seen once in 40 stressed runs of test_consensus's crash test). An in-flight request holds the
 * open file it writes through, and a flock lock lives as long as that open file does, so every
 * segment descriptor the log writes through holds an exclusive lock, and a load takes the lock of
 * every segment before reading it: it waits until the writes of a dead predecessor are over.
 * Returns 0, or -1 with errno (EWOULDBLOCK: still held after `wait_ms`). */
static int lock_seg(int fd, int shared, unsigned wait_ms, const char *path)
{
    int op = (shared ? LOCK_SH : LOCK_EX) | LOCK_NB, told = 0;
    uint64_t start = uv_hrtime();
    for (;;) {
        if (flock(fd, op) == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno != EWOULDBLOCK)
            return -1;
        uint64_t waited_ms = (uv_hrtime() - start) / 1000000u;
        if (waited_ms >= wait_ms) {
            errno = EWOULDBLOCK;
            return -1;
        }
        if (!told && waited_ms >= 1000) {
            cl_logf(CL_LOG_WARN,
                    "rlog: waiting for the lock of %s: another process has it, or writes of "
                    "one that stopped are still in flight",
                    path);
            told = 1;
        }
        struct timespec pause = {0, 1000000L};
        (void)nanosleep(&pause, NULL);
    }
}

/* ---- records -------------------------------------------------------------------------------- */

static uint32_t rec_crc(const uint8_t *hdr, const uint8_t *payload, size_t len)
{
    uint32_t c = cl_crc32c(0, hdr + 8, REC_HDR - 8);
    return cl_crc32c(c, payload, len);
}

/* Encodes one record at p (REC_HDR + pad8(len) bytes, padding zeroed: buffers are reused). */
static void rec_put(uint8_t *p, uint32_t magic, uint64_t index, uint64_t term, unsigned type,
                    const void *payload, size_t len)
{
    cl_store_u64(p + 8, index);
    cl_store_u64(p + 16, term);
    cl_store_u32(p + 24, (uint32_t)len);
    p[28] = (uint8_t)type;
    p[29] = p[30] = p[31] = 0;
    if (len > 0)
        memcpy(p + REC_HDR, payload, len);
    memset(p + REC_HDR + len, 0, (size_t)(pad8(len) - len));
    cl_store_u32(p, magic);
    cl_store_u32(p + 4, rec_crc(p, p + REC_HDR, len));
}

typedef struct {
    uint64_t first, last; /* entries found (first == 0: none) */
    uint64_t last_term;
    size_t end;  /* offset just after the last valid entry (0: none) */
    size_t stop; /* offset where the scan stopped */
    int sealed;  /* a valid seal record follows the last entry */
} scan_res;

typedef int (*scan_cb)(void *arg, uint64_t index, uint64_t term, unsigned type,
                       const uint8_t *payload, size_t len, size_t off);

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return 0;
    return 1;
}

/* Reads records from data[0..n) while they continue the chain: expect = the index the first
 * record must have (0: any). Stops at the first thing that is not a valid next record (zeros at a
 * block boundary, a bad checksum, a wrong index, a term going down) or at a seal. Zeros from a
 * record's end to the end of its block are the padding after a batch: the scan moves to the next
 * block. Batch marks are skipped (mark_after judges them). */
static int scan(const uint8_t *data, size_t n, uint64_t expect, uint64_t min_term, scan_res *r,
                scan_cb cb, void *arg)
{
    memset(r, 0, sizeof *r);
    size_t pos = 0;
    uint64_t next = expect;
    uint64_t term_floor = min_term;
    while (pos + REC_HDR <= n) {
        const uint8_t *h = data + pos;
        uint32_t magic = cl_load_u32(h);
        if (magic != MAGIC_ENTRY && magic != MAGIC_SEAL && magic != MAGIC_MARK) {
            size_t blk_end = (size_t)up_block(pos);
            if (pos % BLOCK != 0 && blk_end <= n && all_zero(h, blk_end - pos)) {
                pos = blk_end;
                continue;
            }
            break;
        }
        uint64_t len = cl_load_u32(h + 24);
        if (len > n - pos - REC_HDR || h[29] | h[30] | h[31])
            break;
        if (cl_load_u32(h + 4) != rec_crc(h, h + REC_HDR, (size_t)len))
            break;
        uint64_t index = cl_load_u64(h + 8), term = cl_load_u64(h + 16);
        if (magic == MAGIC_MARK) {
            if (len != 0)
                break;
            pos += REC_HDR;
            continue;
        }
        if (magic == MAGIC_SEAL) {
            if (r->first != 0 && index == r->last && len == 0)
                r->sealed = 1;
            break;
        }
        if ((next != 0 && index != next) || index == 0 || term == 0 || term < term_floor)
            break;
        if (cb != NULL) {
            int rc = cb(arg, index, term, h[28], h + REC_HDR, (size_t)len, pos);
            if (rc != 0)
                return rc;
        }
        if (r->first == 0)
            r->first = index;
        r->last = index;
        r->last_term = term;
        term_floor = term;
        next = index + 1;
        pos += REC_HDR + (size_t)pad8(len);
        r->end = pos;
    }
    r->stop = pos;
    return 0;
}

/* The highest index named by a valid batch mark at an 8-byte boundary of data[from..n) (0: none).
 * A mark claims that every entry up to its index was durable when its batch was written. Marks in
 * the last block that holds anything do not count: a truncation zeroes its segment's tail from
 * the highest block down, so a power cut during one of those writes can leave a block of older
 * records, marks included, partly zeroed and with nothing after it. Entry payloads cannot fake a
 * mark by accident: it needs its magic, seven zero bytes and a matching CRC-32C. */
static uint64_t mark_after(const uint8_t *data, size_t n, size_t from)
{
    size_t used = n;
    while (used > 0 && data[used - 1] == 0)
        used--;
    size_t limit = used & ~(size_t)(BLOCK - 1);
    uint64_t best = 0;
    for (size_t pos = (size_t)pad8(from); pos + REC_HDR <= limit; pos += 8) {
        const uint8_t *h = data + pos;
        if (cl_load_u32(h) == MAGIC_MARK && cl_load_u32(h + 24) == 0 &&
            (h[29] | h[30] | h[31]) == 0 && cl_load_u32(h + 4) == rec_crc(h, h + REC_HDR, 0) &&
            cl_load_u64(h + 8) > best)
            best = cl_load_u64(h + 8);
    }
    return best;
}

/* Whether what follows the last valid entry can be a torn write: a batch whose 512-byte sectors
 * each reached the disk whole or not at all, over bytes that were zero before it (a new segment,
 * the padding after the previous batch, or a truncation's zeroes; the records a batch rewrites
 * before its own are the same either way). Then the first broken record has a sector that never
 * arrived: its bytes from the record on, to the end of that sector, are zero. A record with every
 * sector present and still wrong (a flipped byte, a stale or foreign record) is damage, not a
 * crash. r: the scan (r->end: after the last valid entry; r->stop: where it stopped, after the
 * batch marks that follow r->end); next: the index the record should have (0: any). */
static int torn_shape(const uint8_t *data, size_t n, const scan_res *r, uint64_t next)
{
    size_t end = r->end, at = r->stop;
    size_t piece = (end | (SECTOR - 1)) + 1;
    if (end >= n || all_zero(data + end, (piece < n ? piece : n) - end))
        return 1; /* padding, or a batch whose first sector never arrived */
    if (at + REC_HDR > n)
        return 1;
    const uint8_t *h = data + at;
    int entry = cl_load_u32(h) == MAGIC_ENTRY && (h[29] | h[30] | h[31]) == 0 &&
                cl_load_u32(h + 24) <= n - at - REC_HDR;
    uint64_t len = entry ? cl_load_u32(h + 24) : 0;
    if (entry && end % BLOCK == 0 && next != 0 && cl_load_u64(h + 8) > next &&
        cl_load_u32(h + 4) == rec_crc(h, h + REC_HDR, (size_t)len))
        return 1;         /* a later batch, written while the ones before it were not */
    size_t ext = REC_HDR; /* the bytes the broken record claims */
    if (entry && (next == 0 || cl_load_u64(h + 8) == next))
        ext += (size_t)pad8(len);
    size_t lim = at + ext < n ? at + ext : n;
    for (size_t s = at & ~(size_t)(SECTOR - 1); s < lim; s += SECTOR) {
        size_t lo = s > at ? s : at, hi = s + SECTOR < n ? s + SECTOR : n;
        if (all_zero(data + lo, hi - lo))
            return 1;
    }
    return 0;
}

/* Is there a valid seal record at a block boundary at or after `from` (with index >= min)? */
static int has_seal_after(const uint8_t *data, size_t n, size_t from, uint64_t min)
{
    for (size_t pos = (size_t)up_block(from); pos + REC_HDR <= n; pos += BLOCK) {
        const uint8_t *h = data + pos;
        if (cl_load_u32(h) == MAGIC_SEAL && cl_load_u32(h + 24) == 0 && cl_load_u64(h + 8) >= min &&
            cl_load_u32(h + 4) == rec_crc(h, h + REC_HDR, 0))
            return 1;
    }
    return 0;
}

void (*cl_rlog_step_hook)(void);

static void step_hook(void)
{
    if (cl_rlog_step_hook != NULL)
        cl_rlog_step_hook();
}

/* Zeroes data[from..n) on disk (fd, O_DIRECT-safe: whole aligned blocks), only where the copy in
 * `data` is not zero already; `data` is updated too. The highest block goes first: a crash part
 * way leaves a prefix of the old records, ending at a zeroed block boundary, and never the old
 * seal after a hole (which the next load would take for a missing record). */
static int zero_tail(int fd, uint8_t *data, size_t n, size_t from)
{
    size_t first = from & ~(size_t)(BLOCK - 1);
    if (first >= n)
        return 0;
    size_t blk = (n - 1) & ~(size_t)(BLOCK - 1);
    for (;;) {
        size_t bn = n - blk < BLOCK ? n - blk : BLOCK;
        size_t lo = from > blk ? from - blk : 0;
        int dirty = 0;
        for (size_t i = lo; i < bn && !dirty; i++)
            dirty = data[blk + i] != 0;
        if (dirty) {
            memset(data + blk + lo, 0, bn - lo);
            step_hook();
            if (pwrite_all(fd, data + blk, BLOCK <= n - blk ? BLOCK : bn, blk) != 0)
                return -1;
        }
        if (blk == first)
            return 0;
        blk -= BLOCK;
    }
}

/* ---- meta and snapshot files ----------------------------------------------------------------- */

static int meta_store(rlog *l, uint64_t term, uint64_t vote)
{
    uint8_t b[META_LEN];
    char path[PATH_BUF];
    memcpy(b, "CLRMETA1", 8);
    cl_store_u64(b + 8, term);
    cl_store_u64(b + 16, vote);
    cl_store_u32(b + 24, cl_crc32c(0, b, 24));
    snprintf(path, sizeof path, "%s/meta", l->dir);
    int rc = cl_fs_write_atomic(cl_fs_posix(), path, b, sizeof b, 0600);
    if (rc != CL_OK) {
        snprintf(l->io->errmsg, sizeof l->io->errmsg, "store %.180s: %s", path, strerror(errno));
        return RAFT_IOERR;
    }
    l->term = term;
    l->vote = vote;
    return 0;
}

static int meta_load(rlog *l)
{
    char path[PATH_BUF];
    uint8_t *b = NULL;
    size_t n = 0;
    snprintf(path, sizeof path, "%s/meta", l->dir);
    int rc = cl_fs_read_all(cl_fs_posix(), path, 4096, &b, &n);
    if (rc == CL_ENOENT) {
        l->term = l->vote = 0;
        return 0;
    }
    if (rc != CL_OK || n != META_LEN || memcmp(b, "CLRMETA1", 8) != 0 ||
        cl_load_u32(b + 24) != cl_crc32c(0, b, 24)) {
        cl_free(b);
        snprintf(l->io->errmsg, sizeof l->io->errmsg, "%.180s is unreadable or damaged", path);
        return RAFT_CORRUPT;
    }
    l->term = cl_load_u64(b + 8);
    l->vote = cl_load_u64(b + 16);
    cl_free(b);
    return 0;
}

/* Snapshot file: "CLRSNAP1" u64 term u64 index u64 conf_index u32 n_servers
 * {u64 id u32 role u32 addr_len addr}* u64 data_len data u32 crc32c(everything before). */
static int snap_encode(const struct raft_snapshot *s, uint8_t **out, size_t *out_len)
{
    cl_buf b = CL_BUF_INIT;
    size_t dl = 0;
    for (unsigned i = 0; i < s->n_bufs; i++)
        dl += s->bufs[i].len;
    int rc = cl_buf_append(&b, CL_LIT("CLRSNAP1"));
    rc = rc ? rc : cl_buf_u64(&b, s->term);
    rc = rc ? rc : cl_buf_u64(&b, s->index);
    rc = rc ? rc : cl_buf_u64(&b, s->configuration_index);
    rc = rc ? rc : cl_buf_u32(&b, s->configuration.n);
    for (unsigned i = 0; i < s->configuration.n && rc == CL_OK; i++) {
        const struct raft_server *sv = &s->configuration.servers[i];
        rc = cl_buf_u64(&b, sv->id);
        rc = rc ? rc : cl_buf_u32(&b, (uint32_t)sv->role);
        rc = rc ? rc : cl_buf_lp32(&b, sv->address, strlen(sv->address));
    }
    rc = rc ? rc : cl_buf_u64(&b, dl);
    for (unsigned i = 0; i < s->n_bufs && rc == CL_OK; i++)
        rc = cl_buf_append(&b, s->bufs[i].base, s->bufs[i].len);
    rc = rc ? rc : cl_buf_u32(&b, cl_crc32c(0, b.data, b.len));
    if (rc != CL_OK) {
        cl_buf_free(&b);
        return RAFT_NOMEM;
    }
    *out = b.data;
    *out_len = b.len;
    return 0;
}

/* Decodes a snapshot file into a new raft_snapshot (raft_malloc'd, as libraft frees it). Anything
 * but a snapshot this file wrote is RAFT_CORRUPT. */
static int snap_decode(const uint8_t *b, size_t n, struct raft_snapshot **out)
{
    if (n < 12 || memcmp(b, "CLRSNAP1", 8) != 0 || cl_load_u32(b + n - 4) != cl_crc32c(0, b, n - 4))
        return RAFT_CORRUPT;
    struct raft_snapshot *s = raft_calloc(1, sizeof *s);
    if (s == NULL)
        return RAFT_NOMEM;
    raft_configuration_init(&s->configuration);
    cl_cursor c;
    cl_cursor_init(&c, b + 8, n - 12);
    uint64_t term = 0, index = 0, conf_index = 0, dl = 0;
    uint32_t ns = 0;
    int rv = cl_cursor_u64(&c, &term) || cl_cursor_u64(&c, &index) ||
                     cl_cursor_u64(&c, &conf_index) || cl_cursor_u32(&c, &ns)
                 ? RAFT_CORRUPT
                 : 0;
    for (uint32_t i = 0; i < ns && rv == 0; i++) {
        uint64_t id;
        uint32_t role;
        const uint8_t *a;
        size_t al;
        char addr[256];
        if (cl_cursor_u64(&c, &id) || cl_cursor_u32(&c, &role) || cl_cursor_lp32(&c, &a, &al) ||
            id == 0 /* libraft only asserts it (compiled out in Debian's build) */ ||
            al >= sizeof addr) {
            rv = RAFT_CORRUPT;
            break;
        }
        memcpy(addr, a, al);
        addr[al] = '\0';
        rv = raft_configuration_add(&s->configuration, id, addr, (int)role);
        if (rv != 0 && rv != RAFT_NOMEM)
            rv = RAFT_CORRUPT; /* an unknown role, a duplicate id */
    }
    const uint8_t *data = NULL;
    if (rv == 0 && (cl_cursor_u64(&c, &dl) || dl != cl_cursor_left(&c) ||
                    cl_cursor_view(&c, &data, (size_t)dl)))
        rv = RAFT_CORRUPT;
    if (rv == 0 && (s->bufs = raft_malloc(sizeof *s->bufs)) == NULL)
        rv = RAFT_NOMEM;
    if (rv == 0) {
        s->n_bufs = 1;
        s->bufs[0].len = (size_t)dl;
        s->bufs[0].base = raft_malloc(dl ? (size_t)dl : 1);
        if (s->bufs[0].base == NULL)
            rv = RAFT_NOMEM;
        else if (dl > 0)
            memcpy(s->bufs[0].base, data, (size_t)dl);
    }
    if (rv != 0) {
        if (s->bufs != NULL)
            raft_free(s->bufs[0].base);
        raft_free(s->bufs);
        raft_configuration_close(&s->configuration);
        raft_free(s);
        return rv;
    }
    s->term = term;
    s->index = index;
    s->configuration_index = conf_index;
    *out = s;
    return 0;
}

static void snap_free(struct raft_snapshot *s)
{
    if (s == NULL)
        return;
    for (unsigned i = 0; i < s->n_bufs; i++)
        raft_free(s->bufs[i].base);
    raft_free(s->bufs);
    raft_configuration_close(&s->configuration);
    raft_free(s);
}

void cl_rlog_loaded_free(struct raft_snapshot *snap, struct raft_entry *entries, size_t n)
{
    /* as libraft's entryBatchesDestroy / logRelease do */
    void *last = NULL;
    for (size_t i = 0; i < n; i++) {
        if (entries[i].batch == NULL)
            raft_free(entries[i].buf.base);
        else if (entries[i].batch != last)
            raft_free(last = entries[i].batch);
    }
    raft_free(entries);
    snap_free(snap);
}

/* Directory listing of our files. */
typedef struct {
    uint64_t *segs;
    size_t n_segs, cap_segs;
    uint64_t *snaps;
    size_t n_snaps, cap_snaps;
    int foreign; /* raft_uv files */
} listing;

static int push_u64(uint64_t **a, size_t *n, size_t *cap, uint64_t v)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        uint64_t *na = cl_realloc(*a, nc * sizeof *na);
        if (na == NULL)
            return -1;
        *a = na;
        *cap = nc;
    }
    (*a)[(*n)++] = v;
    return 0;
}

static int parse_hex16(const char *s, uint64_t *v)
{
    if (strlen(s) != 16)
        return 0;
    uint64_t x = 0;
    for (int i = 0; i < 16; i++) {
        int d = cl_hex_digit(s[i]);
        if (d < 0)
            return 0;
        x = x << 4 | (uint64_t)d;
    }
    *v = x;
    return 1;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Lists the directory; with clean_tmp (at start only: meta is replaced through meta.tmp on the
 * loop while the maintenance thread lists), removes leftovers of interrupted atomic writes. */
static int list_dir(const char *dir, listing *ls, int clean_tmp)
{
    memset(ls, 0, sizeof *ls);
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL && rc == 0) {
        const char *nm = e->d_name;
        uint64_t v;
        size_t len = strlen(nm);
        if (len > 4 && strcmp(nm + len - 4, ".tmp") == 0) {
            if (!clean_tmp)
                continue;
            char p[PATH_BUF];
            snprintf(p, sizeof p, "%s/%s", dir, nm);
            (void)unlink(p);
        } else if (strncmp(nm, "log-", 4) == 0 && parse_hex16(nm + 4, &v)) {
            rc = push_u64(&ls->segs, &ls->n_segs, &ls->cap_segs, v);
        } else if (strncmp(nm, "snap-", 5) == 0 && parse_hex16(nm + 5, &v)) {
            rc = push_u64(&ls->snaps, &ls->n_snaps, &ls->cap_snaps, v);
        } else if (strcmp(nm, "metadata1") == 0 || strcmp(nm, "metadata2") == 0 ||
                   strncmp(nm, "open-", 5) == 0 || strncmp(nm, "snapshot-", 9) == 0) {
            ls->foreign = 1;
        }
    }
    closedir(d);
    if (rc == 0) {
        if (ls->n_segs > 1)
            qsort(ls->segs, ls->n_segs, sizeof *ls->segs, cmp_u64);
        if (ls->n_snaps > 1)
            qsort(ls->snaps, ls->n_snaps, sizeof *ls->snaps, cmp_u64);
    }
    return rc;
}

static void listing_free(listing *ls)
{
    cl_free(ls->segs);
    cl_free(ls->snaps);
}

/* Creates segment `counter` full size and zero-filled (as log-X.tmp, synced, renamed into place,
 * directory synced) and opens it for writing. Runs on the maintenance thread (paced) or in
 * bootstrap.
 *
 * Paced: the zeros go to the disk in PREP_STEP pieces, each written with O_DIRECT where the file
 * system has it and made durable before the next, with PREP_PAUSE_NS between pieces. One buffered
 * write of the whole segment and one fdatasync made the device flush 8 MiB at once (6-10 ms here),
 * and every log write queued behind that flush waited for all of it; now a log write waits for at
 * most one piece (docs/performance.md, session 6). A segment lasts about a second at full write
 * rate, so the ~90 ms this takes is well inside the time the spare has. */
#define PREP_STEP (256u << 10)
#define PREP_PAUSE_NS 2000000L
static int seg_create(const char *dir, uint64_t counter, uint64_t size, int paced,
                      const uint8_t *init, size_t init_len, int *fd_out)
{
    char path[PATH_BUF], tmp[PATH_BUF + 8];
    snprintf(path, sizeof path, "%s/log-%016" PRIx64, dir, counter);
    snprintf(tmp, sizeof tmp, "%.*s.tmp", (int)(PATH_BUF - 1), path);
    (void)unlink(tmp);
    int flags = O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC;
    int fd = open(tmp, flags | O_DIRECT, 0600);
    if (fd < 0 && errno == EINVAL)
        fd = open(tmp, flags, 0600);
    if (fd < 0)
        return -1;
    size_t step = paced ? PREP_STEP : ZERO_CHUNK;
    uint8_t *z = aligned_alloc_zero(step);
    int rc = z == NULL ? -1 : 0;
    for (uint64_t off = 0; rc == 0 && off < size; off += step) {
        size_t n = size - off < step ? (size_t)(size - off) : step;
        rc = pwrite_all(fd, z, n, off);
        if (rc == 0 && paced)
            rc = fdatasync(fd);
        if (rc == 0 && paced && off + n < size) {
            struct timespec pause = {0, PREP_PAUSE_NS};
            (void)nanosleep(&pause, NULL);
        }
    }
    free(z);
    if (rc == 0 && init_len > 0)
        rc = pwrite_all(fd, init, init_len, 0);
    if (rc == 0 && (!paced || init_len > 0))
        rc = fdatasync(fd);
    close(fd);
    int renamed = 0;
    if (rc == 0)
        rc = rename(tmp, path);
    if (rc == 0) {
        renamed = 1;
        rc = sync_dir(dir);
    }
    if (rc == 0) {
        fd = open_log_fd(path);
        rc = fd < 0 ? -1 : 0;
        if (rc == 0 && (rc = lock_seg(fd, 0, 0, path)) != 0) { /* a new file: nobody holds it */
            int e = errno;
            close(fd);
            errno = e;
        }
    }
    if (rc != 0) {
        /* Never leave a segment the caller will not know about: a forgotten empty segment ends
         * the chain at the next load, and the segments after it would be dropped. */
        int e = errno;
        (void)unlink(renamed ? path : tmp);
        if (renamed)
            (void)sync_dir(dir);
        errno = e;
        return -1;
    }
    *fd_out = fd;
    return 0;
}

/* ---- threads --------------------------------------------------------------------------------- */

static void qpush(job **head, job **tail, job *j)
{
    j->qnext = NULL;
    if (*tail != NULL)
        (*tail)->qnext = j;
    else
        *head = j;
    *tail = j;
}

/* A thread's next job, waiting for one; NULL once the threads are told to stop. */
static job *qtake(rlog *l, job **head, job **tail, uv_cond_t *cond)
{
    uv_mutex_lock(&l->mu);
    while (*head == NULL && !l->stop_threads)
        uv_cond_wait(cond, &l->mu);
    job *j = *head;
    if (j != NULL) {
        *head = j->qnext;
        if (*head == NULL)
            *tail = NULL;
    }
    uv_mutex_unlock(&l->mu);
    return j;
}

static void finish_job(rlog *l, job *j)
{
    uv_mutex_lock(&l->mu);
    qpush(&l->dq, &l->dq_tail, j);
    cl_waker_unlock_send(&l->wake, &l->mu);
}

static void writer_main(void *arg)
{
    rlog *l = arg;
    job *j;
    (void)pthread_setname_np(pthread_self(), "cl-rlog-write");
    while ((j = qtake(l, &l->wq, &l->wq_tail, &l->wcond)) != NULL) {
        uint64_t t0 = uv_hrtime();
        j->status = pwrite_all(j->seg->fd, j->buf, j->len, j->off) == 0 ? 0 : RAFT_IOERR;
        j->write_ns = uv_hrtime() - t0;
        if (j->status != 0)
            cl_logf(CL_LOG_ERROR, "rlog: write of %zu bytes at %" PRIu64 ": %s", j->len, j->off,
                    strerror(errno));
        finish_job(l, j);
    }
}

/* Unlinks the segment files of list d, each followed by a directory sync. Oldest first leaves a
 * suffix of the log after a crash (compaction); newest first leaves a prefix (truncation,
 * installation): never a sealed segment after a gap. */
static int unlink_segs(rlog *l, const seg *d, int newest_first)
{
    if (d == NULL)
        return 0;
    if (newest_first && unlink_segs(l, d->next, 1) != 0)
        return RAFT_IOERR;
    char path[PATH_BUF];
    seg_path(l, d->counter, path, sizeof path);
    if (newest_first)
        step_hook();
    if ((unlink(path) != 0 && errno != ENOENT) || sync_dir(l->dir) != 0)
        return RAFT_IOERR;
    return newest_first ? 0 : unlink_segs(l, d->next, 0);
}

/* scan() callback of a truncation: stops at the first record at or after the cut index. */
typedef struct {
    uint64_t index;
    size_t off;
} cut_point;

static int find_cut(void *arg, uint64_t index, uint64_t term, unsigned type, const uint8_t *payload,
                    size_t len, size_t off)
{
    (void)term;
    (void)type;
    (void)payload;
    (void)len;
    cut_point *cp = arg;
    if (index < cp->index)
        return 0;
    cp->off = off;
    return 1; /* stop */
}

/* Truncation on the maintenance thread: remove j->dels, then cut j->seg at the record of index
 * j->index, zeroing from there to the end of the file (a seal after the last batch included). */
static int do_truncate(rlog *l, job *j)
{
    if (unlink_segs(l, j->dels, 1) != 0)
        return RAFT_IOERR;
    seg *s = j->seg;
    if (s == NULL || s->head == 0)
        return 0;
    size_t n = (size_t)s->size;
    uint8_t *data = aligned_alloc_zero(n);
    if (data == NULL)
        return RAFT_NOMEM;
    if (pread_all(s->fd, data, n, 0) != 0) {
        free(data);
        return RAFT_IOERR;
    }
    cut_point cp = {j->index, (size_t)s->head};
    scan_res r;
    (void)scan(data, (size_t)s->head, 0, 0, &r, find_cut, &cp);
    int rc = zero_tail(s->fd, data, n, cp.off);
    free(data);
    if (rc != 0)
        return RAFT_IOERR;
    j->new_head = up_block(cp.off);
    return 0;
}

/* Removes snapshots older than `keep` and the segments in j->dels. */
static int remove_old(rlog *l, job *j, uint64_t keep, int newest_first)
{
    char path[PATH_BUF];
    int changed = 0;
    if (unlink_segs(l, j->dels, newest_first) != 0)
        return RAFT_IOERR;
    listing ls;
    if (list_dir(l->dir, &ls, 0) != 0)
        return RAFT_IOERR;
    for (size_t i = 0; i < ls.n_snaps; i++) {
        if (ls.snaps[i] < keep) {
            snprintf(path, sizeof path, "%s/snap-%016" PRIx64, l->dir, ls.snaps[i]);
            (void)unlink(path);
            changed = 1;
        }
    }
    listing_free(&ls);
    if (changed && sync_dir(l->dir) != 0)
        return RAFT_IOERR;
    return 0;
}

static int newest_snapshot(rlog *l, struct raft_snapshot **out);

static void maint_main(void *arg)
{
    rlog *l = arg;
    job *j;
    (void)pthread_setname_np(pthread_self(), "cl-rlog-maint");
    while ((j = qtake(l, &l->mq, &l->mq_tail, &l->mcond)) != NULL) {
        char path[PATH_BUF];
        switch (j->kind) {
        case J_PREPARE:
            j->status = seg_create(l->dir, j->counter, l->seg_bytes, 1, NULL, 0, &j->fd) == 0
                            ? 0
                            : RAFT_IOERR;
            if (j->status != 0)
                cl_logf(CL_LOG_ERROR, "rlog: prepare segment %" PRIu64 ": %s", j->counter,
                        strerror(errno));
            break;
        case J_SEAL: {
            uint8_t *b = aligned_alloc_zero(BLOCK);
            if (b == NULL) {
                j->status = RAFT_NOMEM;
                break;
            }
            rec_put(b, MAGIC_SEAL, j->index, 0, 0, NULL, 0);
            j->status = pwrite_all(j->seg->fd, b, BLOCK, j->off) == 0 ? 0 : RAFT_IOERR;
            free(b);
            break;
        }
        case J_TRUNCATE:
            j->status = do_truncate(l, j);
            step_hook();
            break;
        case J_INSTALL:
        case J_SNAP_PUT:
            snprintf(path, sizeof path, "%s/snap-%016" PRIx64, l->dir, j->index);
            j->status = cl_fs_write_atomic(cl_fs_posix(), path, j->file, j->file_len, 0600) == CL_OK
                            ? 0
                            : RAFT_IOERR;
            if (j->status == 0)
                j->status = remove_old(l, j, j->index, j->kind == J_INSTALL);
            break;
        case J_SNAP_GET:
            j->status = newest_snapshot(l, &j->snap);
            if (j->status == 0 && j->snap == NULL)
                j->status = RAFT_NOTFOUND;
            break;
        }
        finish_job(l, j);
    }
}

/* ---- loop side ------------------------------------------------------------------------------- */

static void job_free(job *j)
{
    if (j == NULL)
        return;
    free(j->buf);
    cl_free(j->reqs);
    cl_free(j->file);
    cl_free(j);
}

/* Keeps a delivered write's buffer and request array for the next batch (one of each). */
static void recycle(rlog *l, job *j)
{
    if (j->kind != J_WRITE)
        return;
    if (l->spare_buf == NULL && j->buf != NULL) {
        l->spare_buf = j->buf;
        l->spare_cap = j->cap;
        j->buf = NULL;
    }
    if (l->spare_reqs == NULL && j->reqs != NULL) {
        l->spare_reqs = j->reqs;
        l->spare_reqs_cap = j->reqs_cap;
        j->reqs = NULL;
    }
}

static void free_segs(seg *s)
{
    while (s != NULL) {
        seg *n = s->next;
        if (s->fd >= 0)
            close(s->fd);
        cl_free(s->tail_blk);
        cl_free(s);
        s = n;
    }
}

static void queue_thread(rlog *l, job *j, int maint)
{
    j->dispatched = 1;
    uv_mutex_lock(&l->mu);
    if (maint) {
        qpush(&l->mq, &l->mq_tail, j);
        uv_cond_signal(&l->mcond);
    } else {
        qpush(&l->wq, &l->wq_tail, j);
        uv_cond_signal(&l->wcond);
    }
    uv_mutex_unlock(&l->mu);
}

static job *job_new(int kind)
{
    job *j = cl_calloc(1, sizeof *j);
    if (j != NULL) {
        j->kind = kind;
        j->fd = -1;
    }
    return j;
}

static void fifo_push(rlog *l, job *j)
{
    j->next = NULL;
    if (l->fifo_tail != NULL)
        l->fifo_tail->next = j;
    else
        l->fifo = j;
    l->fifo_tail = j;
}

static void seg_append(rlog *l, seg *s)
{
    s->next = NULL;
    if (l->segs_tail != NULL)
        l->segs_tail->next = s;
    else
        l->segs = s;
    l->segs_tail = s;
}

static void internal_submit(rlog *l, job *j)
{
    l->internal++;
    queue_thread(l, j, 1);
}

static void ensure_spare(rlog *l)
{
    if (l->spare != NULL || l->preparing || l->failed || l->closing || !l->started)
        return;
    job *j = job_new(J_PREPARE);
    if (j == NULL)
        return; /* retried at the next batch */
    j->counter = l->next_counter++;
    l->preparing = 1;
    internal_submit(l, j);
}

static void maybe_seal(rlog *l, seg *s)
{
    /* Not while a truncation is under way: the seal would name the old last index and land
     * after the cut; the truncation's delivery seals with the new one. */
    if (!s->retired || s->sealed || s->seal_queued || s->first == 0 || l->failed ||
        l->barrier_active || l->delivered_index < s->last || s->head + BLOCK > s->size)
        return;
    job *j = job_new(J_SEAL);
    if (j == NULL)
        return;
    j->seg = s;
    j->index = s->last;
    j->off = s->head;
    s->seal_queued = 1;
    internal_submit(l, j);
}

static void seal_ready(rlog *l)
{
    for (seg *s = l->segs; s != NULL; s = s->next)
        maybe_seal(l, s);
}

static void retire(rlog *l, seg *s)
{
    if (s->retired)
        return;
    s->retired = 1;
    maybe_seal(l, s);
}

/* ---- io_uring batch writes --------------------------------------------------------------------
 */

static void write_finished(rlog *l, job *j);
static void pump(rlog *l);

/* Queues the rest of j's write (everything after ring_done) and submits it. A submission the
 * kernel refuses fails the job and the log, like a failed pwrite: the SQE may still sit in the
 * ring, so nothing is ever submitted to it again (a failed log takes no writes, and the
 * resubmissions below check l->failed). */
static void ring_submit(rlog *l, job *j)
{
    j->dispatched = 1;
    if (j->start_ns == 0)
        j->start_ns = uv_hrtime();
    struct io_uring_sqe *sqe = l->failed ? NULL : io_uring_get_sqe(&l->ring);
    int rv = l->failed ? -EIO : -EBUSY;
    if (sqe != NULL) {
        io_uring_prep_write(sqe, j->seg->fd, j->buf + j->ring_done,
                            (unsigned)(j->len - j->ring_done), j->off + j->ring_done);
        io_uring_sqe_set_data(sqe, j);
        /* No IOSQE_ASYNC: io_uring_enter issues the direct write on the loop (~30 us with the
         * virtio doorbell) instead of waking an io-wq worker to do it, which cost a context
         * switch and its scheduling delay on every batch (docs/performance.md, session 28). */
        for (int tries = 0; tries < 100; tries++) {
            rv = io_uring_submit(&l->ring);
            if (rv != -EINTR && rv != -EAGAIN)
                break;
        }
        if (rv == 1)
            return;
    }
    cl_logf(CL_LOG_ERROR, "rlog: io_uring submission of a %zu-byte write at %" PRIu64 ": %s",
            j->len, j->off, strerror(rv < 0 ? -rv : EIO));
    l->failed = 1;
    j->status = RAFT_IOERR;
    j->write_ns = uv_hrtime() - j->start_ns;
    write_finished(l, j);
    l->pump_again = 1; /* cut runs inside pump's submit: it reports the job */
}

/* One completion: done, short (the rest is resubmitted), interrupted (resubmitted) or failed. */
static void ring_complete(rlog *l, job *j, int res)
{
    if (res == -EINTR || res == -EAGAIN) {
        ring_submit(l, j);
        return;
    }
    if (res > 0 && (size_t)res < j->len - j->ring_done) {
        j->ring_done += (size_t)res;
        ring_submit(l, j);
        return;
    }
    j->write_ns = uv_hrtime() - j->start_ns;
    if (res < 0 || res == 0) {
        cl_logf(CL_LOG_ERROR, "rlog: write of %zu bytes at %" PRIu64 ": %s", j->len, j->off,
                res < 0 ? strerror(-res) : "nothing written");
        j->status = RAFT_IOERR;
    } else {
        j->status = 0;
    }
    write_finished(l, j);
}

static void on_ring(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    rlog *l = h->data;
    uint64_t v;
    while (read(l->ring_fd, &v, sizeof v) < 0 && errno == EINTR)
        ;
    struct io_uring_cqe *cqe;
    while (io_uring_peek_cqe(&l->ring, &cqe) == 0) {
        job *j = io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(&l->ring, cqe);
        ring_complete(l, j, res);
    }
    pump(l);
}

/* Opens the ring and the eventfd it signals; -1 with errno when io_uring is unavailable. */
static int ring_open(rlog *l)
{
    int rv = io_uring_queue_init(RING_ENTRIES, &l->ring, 0);
    if (rv < 0) {
        errno = -rv;
        return -1;
    }
    /* IORING_OP_WRITE came in Linux 5.6; an older ring would fail the
     * first write, and with it the log: such a kernel gets the writer threads instead. */
    struct io_uring_probe *probe = io_uring_get_probe_ring(&l->ring);
    int has_write = probe != NULL && io_uring_opcode_supported(probe, IORING_OP_WRITE);
    if (probe != NULL)
        io_uring_free_probe(probe);
    if (!has_write) {
        io_uring_queue_exit(&l->ring);
        errno = ENOSYS;
        return -1;
    }
    l->ring_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    rv = l->ring_fd < 0 ? -errno : io_uring_register_eventfd(&l->ring, l->ring_fd);
    if (rv < 0) {
        if (l->ring_fd >= 0)
            close(l->ring_fd);
        io_uring_queue_exit(&l->ring);
        errno = -rv;
        return -1;
    }
    l->use_ring = 1;
    return 0;
}

static void ring_close(rlog *l)
{
    if (!l->use_ring)
        return;
    io_uring_queue_exit(&l->ring);
    close(l->ring_fd);
    l->use_ring = 0;
}

/* Assigns a segment and an offset to write job j and submits it (io_uring) or hands it to a
 * writer thread. 0: not possible yet (no prepared segment). */
static int cut(rlog *l, job *j)
{
    seg *s = l->segs_tail;
    /* With no write in flight to the segment, the batch continues its last block: the write
     * rewrites that block's records (the same bytes, so a torn write cannot damage them). */
    size_t pre = s != NULL && !s->retired && s->inflight == 0 ? s->tail_fill : 0;
    uint64_t start = pre > 0 ? s->head - BLOCK : s != NULL ? s->head : 0;
    if (pre > 0 && up_block(pre + j->len) > j->cap) {
        uint8_t *nb = aligned_alloc_zero((size_t)up_block(pre + j->len));
        if (nb != NULL) {
            memcpy(nb, j->buf, j->len);
            free(j->buf);
            j->buf = nb;
            j->cap = (size_t)up_block(pre + j->len);
        } else {
            pre = 0; /* no memory for the longer write: start on the next block instead */
            start = s->head;
        }
    }
    /* The batch and a seal block after it must fit, or the batch goes to the spare. */
    if (s == NULL || s->retired || start + up_block(pre + j->len) + BLOCK > s->size) {
        if (s != NULL)
            retire(l, s);
        if (l->spare == NULL) {
            ensure_spare(l);
            if (l->spare == NULL && !l->preparing && !l->failed && !l->closing) {
                /* Not even the request for a segment could be allocated: nothing would wake
                 * this batch again, so the log fails (its requests are answered RAFT_IOERR). */
                cl_logf(CL_LOG_ERROR, "rlog: out of memory preparing a segment");
                l->failed = 1;
            }
            return 0;
        }
        s = l->spare;
        l->spare = NULL;
        seg_append(l, s);
        ensure_spare(l);
        pre = 0;
        start = s->head;
    }
    /* The batch's mark: every entry up to delivered_index is durable, so damage found before a
     * mark on reload is damage, not a torn write (io_load). */
    rec_put(j->buf, MAGIC_MARK, l->delivered_index, 0, 0, NULL, 0);
    size_t used = pre + j->len;
    uint64_t need = up_block(used);
    if (pre > 0) {
        memmove(j->buf + pre, j->buf, j->len);
        memcpy(j->buf, s->tail_blk, pre);
    }
    memset(j->buf + used, 0, (size_t)(need - used)); /* the rest of the last block is zero */
    size_t tail = used % BLOCK;
    if (tail > 0 && s->tail_blk == NULL && (s->tail_blk = cl_malloc(BLOCK)) == NULL)
        tail = 0; /* the next batch starts on a fresh block */
    if (tail > 0)
        memcpy(s->tail_blk, j->buf + need - BLOCK, tail);
    s->tail_fill = tail;
    j->seg = s;
    j->off = start;
    j->len = (size_t)need;
    s->head = start + need;
    if (s->first == 0)
        s->first = j->first_index;
    s->last = j->last_index;
    s->inflight++;
    l->writes_flying++;
    j->flying = 1;
    if (l->writes_flying > l->stats.max_inflight)
        l->stats.max_inflight = l->writes_flying;
    l->stats.writes++;
    l->stats.entries += j->last_index - j->first_index + 1;
    if (l->use_ring)
        ring_submit(l, j);
    else
        queue_thread(l, j, 0);
    return 1;
}

/* Starts what can start: writes in order while fewer than n_writers are in flight, and a barrier
 * once everything before it is done. Never calls back into libraft. */
static void submit(rlog *l)
{
    if (!l->started || l->closing)
        return;
    int all_done = 1; /* every job before the current one is done */
    for (job *j = l->fifo; j != NULL; j = j->next) {
        if (j->kind == J_WRITE) {
            if (!j->dispatched) {
                if (l->failed) {
                    j->dispatched = j->done = 1;
                    j->status = RAFT_IOERR;
                } else if (l->writes_flying >= l->n_writers || !cut(l, j)) {
                    if (!l->failed)
                        return; /* a writer or the spare segment frees up later */
                    j->dispatched = j->done = 1;
                    j->status = RAFT_IOERR;
                }
            }
        } else if (j->kind == J_TRUNCATE || j->kind == J_INSTALL) {
            if (!j->dispatched) {
                if (!all_done)
                    return;
                if (j->kind == J_TRUNCATE) {
                    /* the segment holding j->index is cut, every later one removed */
                    seg *prev = NULL, *s = l->segs;
                    while (s != NULL && !(s->first != 0 && s->first >= j->index)) {
                        prev = s;
                        s = s->next;
                    }
                    j->dels = s;
                    if (prev != NULL) {
                        prev->next = NULL;
                        l->segs_tail = prev;
                    } else {
                        l->segs = l->segs_tail = NULL;
                    }
                    j->seg = prev != NULL && prev->last >= j->index ? prev : NULL;
                } else {
                    j->dels = l->segs;
                    l->segs = l->segs_tail = NULL;
                }
                l->barrier_active = 1;
                queue_thread(l, j, 1);
            }
            /* Nothing after a barrier starts before pump has delivered it, done or not: the
             * delivery gives the cut segment its new head, and a batch cut before it would be
             * written at the old head while the next one is cut at the new head, over it. */
            return;
        }
        if (!j->done)
            all_done = 0;
    }
}

static void deliver(rlog *l, job *j)
{
    switch (j->kind) {
    case J_WRITE:
        if (j->write_ns > l->stats.max_write_ns)
            l->stats.max_write_ns = j->write_ns;
        l->stats.sum_write_ns += j->write_ns;
        if (j->write_ns > l->slow_ns) {
            l->stats.slow_writes++;
            l->recent_slow++;
            if (j->write_ns > l->recent_slow_max_ns)
                l->recent_slow_max_ns = j->write_ns;
        }
        if (j->status == 0) {
            if (j->last_index > l->delivered_index)
                l->delivered_index = j->last_index;
            for (unsigned i = 0; i < j->n_reqs; i++)
                j->reqs[i]->cb(j->reqs[i], 0);
        } else {
            if (j->status != RAFT_CANCELED)
                l->failed = 1;
            /* Failures from the highest index down (deliver_failed_run says why). */
            for (unsigned i = j->n_reqs; i-- > 0;)
                j->reqs[i]->cb(j->reqs[i], j->status);
        }
        seal_ready(l);
        break;
    case J_TRUNCATE:
        if (j->status != 0)
            l->failed = 1;
        if (j->seg != NULL) {
            seg *s = j->seg;
            s->last = j->index - 1;
            if (s->last < s->first)
                s->first = s->last = 0;
            s->head = j->new_head;
            s->tail_fill = 0;
            s->sealed = s->seal_queued = 0;
        }
        if (l->delivered_index >= j->index)
            l->delivered_index = j->index - 1;
        free_segs(j->dels);
        j->dels = NULL;
        l->barrier_active = 0;
        seal_ready(l);
        break;
    case J_INSTALL:
        if (j->status != 0)
            l->failed = 1;
        free_segs(j->dels);
        j->dels = NULL;
        l->barrier_active = 0;
        l->delivered_index = j->index;
        j->put->cb(j->put, j->status);
        break;
    }
}

/* The write at the head of the FIFO failed or was cancelled: it and every write queued behind it
 * up to the next barrier are reported together, once all of them are over, as failed (a write
 * that reached the disk after a failed one is not reported durable: libraft would count the
 * failed entries before it as stored and commit them), from the highest index down. libraft
 * 0.15's appendLeaderCb truncates its in-memory log at a failed request's index without checking
 * that the index is still in it (fixed upstream in 0.17.1): reported lowest first, the second
 * failure truncated at an index past the end, removeSuffix's count wrapped around and it freed
 * slots until it crashed. That was the segfault of a close with a batch of two or more queued and
 * of any failed write under load. Returns 0 while a write of the run is still in flight (nothing
 * new is cut: the log is failed or closing). */
static int deliver_failed_run(rlog *l)
{
    job *last = l->fifo;
    int status = l->fifo->status;
    for (job *j = l->fifo; j != NULL && j->kind == J_WRITE; j = j->next) {
        if (!j->done)
            return 0;
        last = j;
    }
    job *run = l->fifo, *rev = NULL;
    l->fifo = last->next;
    if (l->fifo == NULL)
        l->fifo_tail = NULL;
    last->next = NULL;
    while (run != NULL) {
        job *j = run;
        run = j->next;
        j->next = rev;
        rev = j;
    }
    while (rev != NULL) {
        job *j = rev;
        rev = j->next;
        if (j->status == 0)
            j->status = status == RAFT_CANCELED ? RAFT_CANCELED : RAFT_IOERR;
        deliver(l, j);
        recycle(l, j);
        job_free(j);
    }
    return 1;
}

/* Reports finished work to libraft (in FIFO order, but for failed runs of writes), then starts
 * what can start. Re-entrant: a callback may append or truncate; that only queues, and the loop
 * here picks it up. */
static void maybe_finish_close(rlog *l);

static void pump(rlog *l)
{
    if (l->in_pump) {
        l->pump_again = 1;
        return;
    }
    l->in_pump = 1;
    do {
        l->pump_again = 0;
        /* Start the next write before reporting: the disk works while libraft applies. */
        submit(l);
        while (l->fifo != NULL && l->fifo->done) {
            job *j = l->fifo;
            if (j->kind == J_WRITE && j->status != 0) {
                if (!deliver_failed_run(l))
                    break;
                continue;
            }
            l->fifo = j->next;
            if (l->fifo == NULL)
                l->fifo_tail = NULL;
            deliver(l, j);
            recycle(l, j);
            job_free(j);
        }
        while (l->side_done != NULL) {
            job *j = l->side_done;
            l->side_done = j->qnext;
            if (l->side_done == NULL)
                l->side_tail = NULL;
            if (j->kind == J_SNAP_PUT) {
                free_segs(j->dels);
                j->dels = NULL;
                j->put->cb(j->put, j->status);
            } else {
                struct raft_snapshot *s = j->snap;
                j->snap = NULL;
                j->get->cb(j->get, s, j->status);
            }
            job_free(j);
        }
        submit(l);
    } while (l->pump_again);
    l->in_pump = 0;
    maybe_finish_close(l);
}

/* A batch write is over (either path): reported to libraft in order by pump. */
static void write_finished(rlog *l, job *j)
{
    j->done = 1;
    if (j->status != 0 && j->status != RAFT_CANCELED)
        l->failed = 1; /* now, not when reported: no later batch is cut behind a failed one */
    if (j->flying) {
        j->flying = 0;
        l->writes_flying--;
        j->seg->inflight--;
    }
}

static void on_wake(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    rlog *l = h->data;
    cl_waker_drain(&l->wake);
    uv_mutex_lock(&l->mu);
    job *d = l->dq;
    l->dq = l->dq_tail = NULL;
    l->wake.signaled = 0;
    uv_mutex_unlock(&l->mu);
    while (d != NULL) {
        job *j = d;
        d = d->qnext;
        j->done = 1;
        switch (j->kind) {
        case J_PREPARE: {
            l->internal--;
            l->preparing = 0;
            if (j->status == 0) {
                seg *s = cl_calloc(1, sizeof *s);
                if (s == NULL) {
                    /* The segment is on disk but will not be used: remove it (see seg_create)
                     * so that no gap in the segment numbers precedes the next one. */
                    char path[PATH_BUF];
                    seg_path(l, j->counter, path, sizeof path);
                    close(j->fd);
                    if (unlink(path) != 0 || sync_dir(l->dir) != 0) {
                        cl_logf(CL_LOG_ERROR, "rlog: remove unused segment %s: %s", path,
                                strerror(errno));
                        l->failed = 1;
                    }
                } else {
                    s->counter = j->counter;
                    s->fd = j->fd;
                    s->size = l->seg_bytes;
                    l->spare = s;
                    l->stats.segments++;
                }
            } else {
                l->failed = 1;
            }
            job_free(j);
            break;
        }
        case J_SEAL:
            l->internal--;
            if (j->status == 0 && j->seg->seal_queued)
                j->seg->sealed = 1;
            j->seg->seal_queued = 0;
            job_free(j);
            break;
        case J_SNAP_PUT:
        case J_SNAP_GET:
            l->internal--;
            qpush(&l->side_done, &l->side_tail, j);
            break;
        case J_WRITE:
            write_finished(l, j);
            break; /* delivered in order by pump */
        default:
            break; /* FIFO jobs: delivered in order by pump */
        }
    }
    pump(l);
}

/* ---- closing ----------------------------------------------------------------------------------
 */

static void stop_threads(rlog *l)
{
    if (l->n_threads == 0)
        return;
    uv_mutex_lock(&l->mu);
    l->stop_threads = 1;
    uv_cond_broadcast(&l->wcond);
    uv_cond_broadcast(&l->mcond);
    uv_mutex_unlock(&l->mu);
    for (unsigned i = 0; i < l->n_threads; i++)
        uv_thread_join(&l->threads[i]);
    l->n_threads = 0;
}

static void release(rlog *l)
{
    struct raft_io *io = l->io;
    raft_io_close_cb cb = l->close_cb;
    void (*free_cb)(struct raft_io *) = l->free_cb;
    cl_waker_close_fd(&l->wake);
    ring_close(l);
    free_segs(l->segs);
    free_segs(l->spare);
    free(l->spare_buf);
    cl_free(l->spare_reqs);
    uv_mutex_destroy(&l->mu);
    uv_cond_destroy(&l->wcond);
    uv_cond_destroy(&l->mcond);
    cl_free(l);
    io->impl = NULL;
    if (cb != NULL)
        cb(io);
    if (free_cb != NULL)
        free_cb(io);
}

static void on_handle_closed(uv_handle_t *h)
{
    rlog *l = h->data;
    if (--l->handles_open == 0)
        release(l);
}

static void maybe_finish_close(rlog *l)
{
    if (!l->closing || l->in_pump || l->fifo != NULL || l->side_done != NULL || l->internal > 0 ||
        l->handles_closing)
        return;
    /* Nothing queued or running: the threads are idle. */
    stop_threads(l);
    l->handles_closing = 1;
    if (l->started) { /* io_start opened the waker, the prepare hook (and the ring's watch) */
        uv_close((uv_handle_t *)&l->wake.poll, on_handle_closed);
        uv_close((uv_handle_t *)&l->prep, on_handle_closed);
        if (l->use_ring)
            uv_close((uv_handle_t *)&l->ring_poll, on_handle_closed);
    }
    uv_close((uv_handle_t *)&l->timer, on_handle_closed);
}

static void io_close(struct raft_io *io, raft_io_close_cb cb)
{
    rlog *l = io->impl;
    l->close_cb = cb;
    l->closing = 1;
    uv_timer_stop(&l->timer);
    /* What never started is cancelled; what runs finishes and is reported with its status. */
    for (job *j = l->fifo; j != NULL; j = j->next) {
        if (!j->dispatched) {
            j->dispatched = j->done = 1;
            j->status = RAFT_CANCELED;
        }
    }
    if (l->started)
        cl_waker_send(&l->wake); /* report from the loop, not from inside raft_close */
    else
        maybe_finish_close(l);
}

void cl_rlog_close(struct raft_io *io, void (*cb)(struct raft_io *io))
{
    rlog *l = io->impl;
    if (l == NULL) {
        if (cb != NULL)
            cb(io);
        return;
    }
    l->free_cb = cb;
    io_close(io, NULL);
}

/* ---- raft_io methods --------------------------------------------------------------------------
 */

static int io_init(struct raft_io *io, raft_id id, const char *address)
{
    (void)address;
    rlog *l = io->impl;
    l->rng ^= (uint64_t)id * 0x9e3779b97f4a7c15ULL;
    return 0;
}

/* Loader state. */
typedef struct {
    struct raft_entry *v;
    size_t n, cap;
    uint8_t *arena; /* every payload, raft_malloc'd: the entries' batch */
    size_t arena_len, arena_cap;
} entries_acc;

/* Loaded payloads share one allocation, the entries' batch (as raft_uv's did): libraft frees
 * loaded entries by batch (entryBatchesDestroy when raft_start fails, logRelease otherwise).
 * While loading, buf.base holds the payload's offset in the arena. */
static int collect(void *arg, uint64_t index, uint64_t term, unsigned type, const uint8_t *payload,
                   size_t len, size_t off)
{
    (void)index;
    (void)off;
    entries_acc *a = arg;
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 256;
        struct raft_entry *nv = raft_realloc(a->v, nc * sizeof *nv);
        if (nv == NULL)
            return RAFT_NOMEM;
        a->v = nv;
        a->cap = nc;
    }
    if (a->arena_len + len > a->arena_cap) {
        size_t nc = a->arena_cap ? a->arena_cap * 2 : 65536;
        while (nc < a->arena_len + len)
            nc *= 2;
        uint8_t *na = raft_realloc(a->arena, nc);
        if (na == NULL)
            return RAFT_NOMEM;
        a->arena = na;
        a->arena_cap = nc;
    }
    struct raft_entry *e = &a->v[a->n];
    e->term = term;
    e->type = (unsigned short)type;
    e->batch = NULL;
    e->buf.len = len;
    e->buf.base = (void *)(uintptr_t)a->arena_len;
    if (len > 0)
        memcpy(a->arena + a->arena_len, payload, len);
    a->arena_len += len;
    a->n++;
    return 0;
}

/* Turns the offsets into pointers once the arena no longer moves. */
static void entries_finish(entries_acc *a)
{
    for (size_t i = 0; i < a->n; i++) {
        a->v[i].buf.base = a->arena + (uintptr_t)a->v[i].buf.base;
        a->v[i].batch = a->arena;
    }
}

static void entries_free(entries_acc *a)
{
    raft_free(a->arena);
    raft_free(a->v);
    memset(a, 0, sizeof *a);
}

static int newest_snapshot(rlog *l, struct raft_snapshot **out)
{
    *out = NULL;
    listing ls;
    if (list_dir(l->dir, &ls, 0) != 0)
        return RAFT_IOERR;
    int rv = 0;
    if (ls.n_snaps > 0) {
        char path[PATH_BUF];
        uint64_t idx = ls.snaps[ls.n_snaps - 1];
        snprintf(path, sizeof path, "%s/snap-%016" PRIx64, l->dir, idx);
        uint8_t *b = NULL;
        size_t n = 0;
        if (cl_fs_read_all(cl_fs_posix(), path, (size_t)1 << 30, &b, &n) != CL_OK)
            rv = RAFT_IOERR;
        else
            rv = snap_decode(b, n, out);
        cl_free(b);
        if (rv == 0 && (*out)->index != idx) {
            snap_free(*out);
            *out = NULL;
            rv = RAFT_CORRUPT;
        }
    }
    listing_free(&ls);
    return rv;
}

static int fail_load(rlog *l, int rv, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail_load(rlog *l, int rv, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->io->errmsg, sizeof l->io->errmsg, fmt, ap);
    va_end(ap);
    cl_logf(CL_LOG_ERROR, "rlog: %s", l->io->errmsg);
    return rv;
}

/* A log with entries but no meta file got term t stored: an interrupted bootstrap (the log is its
 * one configuration entry), or meta was lost later -- said loudly. */
static void say_term_restored(const char *dir, uint64_t first, const struct raft_entry *v, size_t n,
                              const struct raft_snapshot *snap, uint64_t t, const char *which)
{
    if (n == 1 && first == 1 && snap == NULL && v[0].type == RAFT_CHANGE)
        cl_logf(CL_LOG_WARN,
                "rlog: %s had entries but no term: an interrupted bootstrap, term %" PRIu64
                " stored",
                dir, t);
    else
        cl_logf(CL_LOG_ERROR,
                "rlog: %s/meta is missing, but the log holds entries %" PRIu64 "..%" PRIu64
                ": the node's term and vote were lost. Term %" PRIu64
                " (%s) stored, no vote; no entry is lost, and for this "
                "single-voter service that is safe. Find out what removed the file",
                dir, first, first + n - 1, t, which);
}

static int io_load(struct raft_io *io, raft_term *term, raft_id *voted_for,
                   struct raft_snapshot **snapshot, raft_index *start_index,
                   struct raft_entry *entries[], size_t *n_entries)
{
    rlog *l = io->impl;
    *snapshot = NULL;
    *entries = NULL;
    *n_entries = 0;
    int rv = meta_load(l);
    if (rv != 0)
        return rv;
    struct raft_snapshot *snap = NULL;
    rv = newest_snapshot(l, &snap);
    if (rv == RAFT_CORRUPT)
        return fail_load(l, rv, "the newest snapshot in %.180s is damaged", l->dir);
    if (rv != 0)
        return rv;
    listing ls;
    if (list_dir(l->dir, &ls, !l->dry) != 0) {
        snap_free(snap);
        return fail_load(l, RAFT_IOERR, "list %s: %s", l->dir, strerror(errno));
    }

    entries_acc acc = {0};
    uint64_t expect = 0, term_floor = 0;
    /* The lowest index a batch mark may not claim durable where the chain has ended: nothing
     * before the chain's next entry is known, so the first segment uses the snapshot's. */
    uint64_t floor_index = snap != NULL ? snap->index + 1 : 1;
    int cut_done = 0;
    /* Repairs (zeroing what follows a torn write, removing segments after the end of the log)
     * wait until every segment has been read and judged: a start refused for damage changes
     * nothing on disk. */
    uint64_t *drop = cl_calloc(ls.n_segs + 1, sizeof *drop);
    size_t n_drop = 0;
    if (drop == NULL)
        rv = RAFT_NOMEM;
    char path[PATH_BUF];
    for (size_t i = 0; i < ls.n_segs && rv == 0; i++) {
        uint64_t counter = ls.segs[i];
        seg_path(l, counter, path, sizeof path);
        if (counter >= l->next_counter)
            l->next_counter = counter + 1;
        int fd = open_log_fd(path);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0) {
            rv = fail_load(l, RAFT_IOERR, "open %s: %s", path, strerror(errno));
            if (fd >= 0)
                close(fd);
            break;
        }
        /* a dry load (a check) shares the lock: it too waits for a dead writer's last writes */
        if (lock_seg(fd, l->dry, l->lock_wait_ms, path) != 0) {
            rv = errno == EWOULDBLOCK
                     ? fail_load(l, RAFT_IOERR,
                                 "%s is locked by another process (a node running on this "
                                 "directory?) after %u ms",
                                 path, l->lock_wait_ms)
                     : fail_load(l, RAFT_IOERR, "lock %s: %s", path, strerror(errno));
            close(fd);
            break;
        }
        size_t size = (size_t)st.st_size & ~(size_t)(BLOCK - 1);
        uint8_t *data = aligned_alloc_zero(size);
        if (data == NULL || (size > 0 && pread_all(fd, data, size, 0) != 0)) {
            rv = data == NULL ? RAFT_NOMEM
                              : fail_load(l, RAFT_IOERR, "read %s: %s", path, strerror(errno));
            free(data);
            close(fd);
            break;
        }
        uint64_t lost = expect != 0 ? expect : floor_index; /* the first index not in the chain */
        if (cut_done) {
            /* After the end of the log: only never-acknowledged data may be here. */
            uint64_t mark = mark_after(data, size, 0);
            if (has_seal_after(data, size, 0, expect)) {
                rv = fail_load(l, RAFT_CORRUPT,
                               "%s is sealed but follows a gap in the log at index %" PRIu64, path,
                               expect);
            } else if (mark >= lost) {
                rv = fail_load(l, RAFT_CORRUPT,
                               "%s follows a gap in the log at index %" PRIu64
                               ", yet records that the entries up to %" PRIu64
                               " were durable: the log is damaged (nothing was changed)",
                               path, lost, mark);
            } else {
                drop[n_drop++] = counter;
            }
            free(data);
            close(fd);
            continue;
        }
        scan_res r;
        rv = scan(data, size, expect, term_floor, &r, collect, &acc);
        if (rv != 0) {
            free(data);
            close(fd);
            break;
        }
        seg *s = cl_calloc(1, sizeof *s);
        if (s == NULL) {
            rv = RAFT_NOMEM;
            free(data);
            close(fd);
            break;
        }
        s->counter = counter;
        s->fd = fd;
        s->size = size;
        s->first = r.first;
        s->last = r.last;
        if (r.sealed) {
            s->sealed = s->retired = 1;
            s->head = up_block(r.end) + BLOCK;
            expect = r.last + 1;
            term_floor = r.last_term;
        } else {
            uint64_t next = r.first != 0 ? r.last + 1 : expect;
            if (r.first != 0)
                lost = next;
            uint64_t mark = mark_after(data, size, r.end);
            if (has_seal_after(data, size, r.end, expect)) {
                rv = fail_load(l, RAFT_CORRUPT,
                               "%s is damaged: a valid record is missing before its seal "
                               "(after index %" PRIu64 ")",
                               path, r.first ? r.last : expect);
            } else if (mark >= lost) {
                rv = fail_load(l, RAFT_CORRUPT,
                               "%s is damaged at offset %zu: entry %" PRIu64
                               " cannot be read, yet a later batch records that the entries "
                               "up to %" PRIu64 " were durable (nothing was changed)",
                               path, r.end, lost, mark);
            } else if (!torn_shape(data, size, &r, next)) {
                rv = fail_load(l, RAFT_CORRUPT,
                               "%s is damaged at offset %zu: the record of entry %" PRIu64
                               " is wrong in sectors that were all written, which a torn "
                               "write cannot leave (nothing was changed)",
                               path, r.stop, lost);
            } else if (!all_zero(data + r.end, size - r.end)) {
                s->fix = data; /* zeroed from r.end once the whole log is judged */
                s->fix_from = r.end;
                data = NULL;
            }
            s->head = up_block(r.end);
            if (r.first != 0) {
                expect = r.last + 1;
                term_floor = r.last_term;
            }
        }
        free(data);
        seg_append(l, s);
        /* An unsealed segment ends the log unless the next one continues it (a crash between
         * the last write of a segment and its seal): the next scan decides, and finds no entry
         * if it does not. A segment without entries ends the log. */
        if (r.first == 0)
            cut_done = 1;
    }
    if (l->dry)
        n_drop = 0;
    for (seg *s = l->segs; s != NULL; s = s->next) {
        if (rv == 0 && !l->dry && s->fix != NULL &&
            zero_tail(s->fd, s->fix, s->size, s->fix_from) != 0)
            rv = fail_load(l, RAFT_IOERR, "repair log segment %016" PRIx64 " in %s: %s", s->counter,
                           l->dir, strerror(errno));
        free(s->fix);
        s->fix = NULL;
    }
    for (size_t k = 0; k < n_drop && rv == 0; k++) {
        seg_path(l, drop[k], path, sizeof path);
        if (unlink(path) != 0)
            rv = fail_load(l, RAFT_IOERR, "unlink %s: %s", path, strerror(errno));
    }
    /* Everything loaded is vouched for from here on (delivered_index, and the batch marks that
     * follow), yet a killed predecessor may have left some of it not durable: a segment it
     * renamed into place just before its directory sync, or, on a file system without O_DIRECT,
     * records still in the page cache. So it is made durable first: one fdatasync per segment
     * and one directory sync (a few per start). */
    for (seg *s = l->segs; s != NULL && rv == 0 && !l->dry; s = s->next)
        if (fdatasync(s->fd) != 0)
            rv = fail_load(l, RAFT_IOERR, "sync log segment %016" PRIx64 " in %s: %s", s->counter,
                           l->dir, strerror(errno));
    if (rv == 0 && !l->dry && sync_dir(l->dir) != 0)
        rv = fail_load(l, RAFT_IOERR, "sync %s: %s", l->dir, strerror(errno));
    free(drop);
    listing_free(&ls);

    /* A segment without entries ends the chain, so only the last can be empty: it is zero
     * (zero_tail) and becomes the spare. */
    if (rv == 0 && l->segs_tail != NULL && l->segs_tail->first == 0) {
        seg *prev = NULL;
        for (seg *s = l->segs; s != l->segs_tail; s = s->next)
            prev = s;
        l->spare = l->segs_tail;
        l->spare->head = 0;
        if (prev != NULL)
            prev->next = NULL;
        else
            l->segs = NULL;
        l->segs_tail = prev;
    }

    uint64_t first = acc.n > 0 ? l->segs->first : 0;
    uint64_t last = acc.n > 0 ? first + acc.n - 1 : 0;
    if (rv == 0 && acc.n > 0) {
        if (snap == NULL && first != 1)
            rv = fail_load(l, RAFT_CORRUPT,
                           "the raft log starts at index %" PRIu64 " and there is no snapshot",
                           first);
        else if (snap != NULL && first > snap->index + 1)
            rv = fail_load(l, RAFT_CORRUPT,
                           "the raft log starts at index %" PRIu64
                           ", after the snapshot's index %" PRIu64 " + 1",
                           first, (uint64_t)snap->index);
    }
    if (rv == 0 && snap != NULL && acc.n > 0 && last < snap->index) {
        /* every entry is older than the snapshot: start the log after it */
        entries_free(&acc);
        if (!l->dry && unlink_segs(l, l->segs, 0) != 0)
            rv = fail_load(l, RAFT_IOERR, "remove old segments: %s", strerror(errno));
        free_segs(l->segs);
        l->segs = l->segs_tail = NULL;
        first = last = 0;
    }
    if (rv != 0) {
        entries_free(&acc);
        snap_free(snap);
        free_segs(l->segs);
        free_segs(l->spare);
        l->segs = l->segs_tail = l->spare = NULL;
        return rv;
    }
    if (acc.n == 0) {
        entries_free(&acc);
    } else if (acc.arena == NULL && (acc.arena = raft_malloc(1)) == NULL) { /* payloads empty */
        entries_free(&acc);
        snap_free(snap);
        return RAFT_NOMEM;
    }
    if (acc.n > 0) {
        *start_index = first;
        l->next_index = last + 1;
    } else {
        *start_index = snap != NULL ? snap->index + 1 : 1;
        l->next_index = *start_index;
    }
    l->delivered_index = l->next_index - 1;
    if (l->term == 0 && acc.n > 0 && !l->dry) {
        /* Entries but no term. Either bootstrap stopped after its entry was durable and before
         * the meta file was (io_bootstrap: the log is that one configuration entry), or meta was
         * lost later. Both load with the term of the last entry and no vote. For a cluster of one
         * voter, which is what cledgerd runs, that is safe: the node votes only for itself, its
         * next election takes a term above every entry's, and no entry is lost. With other
         * voters a lost vote could let this node vote twice in one term; then this must refuse
         * (docs/consensus.md). */
        uint64_t t = acc.v[acc.n - 1].term;
        if (meta_store(l, t, 0) != 0) {
            entries_free(&acc);
            snap_free(snap);
            return fail_load(l, RAFT_IOERR, "store the term in %s: %s", l->dir, strerror(errno));
        }
        say_term_restored(l->dir, first, acc.v, acc.n, snap, t, "the last entry's");
    }
    *term = l->term;
    *voted_for = l->vote;
    *snapshot = snap;
    entries_finish(&acc);
    *entries = acc.v;
    *n_entries = acc.n;
    return 0;
}

static void on_tick(uv_timer_t *t)
{
    rlog *l = t->data;
    if (l->tick != NULL && !l->closing)
        l->tick(l->io);
}

/* Runs once per loop iteration just before the loop polls: everything appended during the
 * iteration (by every request handled in it) goes to the disk as one batch. */
static void on_prepare(uv_prepare_t *h)
{
    rlog *l = h->data;
    if (l->submit_wanted && !l->in_pump) {
        l->submit_wanted = 0;
        pump(l);
    }
}

static int io_start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv)
{
    (void)recv; /* no transport: nothing is ever received */
    rlog *l = io->impl;
    if (l->started || l->closing)
        return RAFT_INVALID;
    if (l->io_mode != CL_RLOG_IO_THREADS && ring_open(l) != 0) {
        if (l->io_mode == CL_RLOG_IO_URING) {
            snprintf(io->errmsg, sizeof io->errmsg, "io_uring: %s", strerror(errno));
            return RAFT_IOERR;
        }
        cl_logf(CL_LOG_INFO, "rlog: io_uring unavailable (%s): log writes from writer threads",
                strerror(errno));
    }
    if (cl_waker_init(&l->wake, l->loop, on_wake, l) != CL_OK) {
        snprintf(io->errmsg, sizeof io->errmsg, "eventfd: %s", strerror(errno));
        ring_close(l);
        return RAFT_IOERR;
    }
    l->handles_open = 3;
    uv_prepare_init(l->loop, &l->prep);
    l->prep.data = l;
    uv_prepare_start(&l->prep, on_prepare);
    uv_unref((uv_handle_t *)&l->prep); /* does not keep the loop alive by itself */
    if (l->use_ring) {
        if (uv_poll_init(l->loop, &l->ring_poll, l->ring_fd) != 0) {
            ring_close(l);
            snprintf(io->errmsg, sizeof io->errmsg, "cannot watch the io_uring eventfd");
            l->started = 1; /* so close releases what started */
            return RAFT_IOERR;
        }
        l->ring_poll.data = l;
        uv_poll_start(&l->ring_poll, UV_READABLE, on_ring);
        l->handles_open++;
    }
    /* writer threads only without the ring; the maintenance thread always */
    unsigned nthreads = l->use_ring ? 1 : l->n_writers + 1;
    for (unsigned i = 0; i < nthreads; i++) {
        if (uv_thread_create(&l->threads[i], i + 1 < nthreads ? writer_main : maint_main, l) != 0) {
            snprintf(io->errmsg, sizeof io->errmsg, "cannot start the raft log threads");
            l->started = 1; /* so close joins what started */
            return RAFT_IOERR;
        }
        l->n_threads = i + 1;
    }
    l->tick = tick;
    l->started = 1;
    uv_timer_start(&l->timer, on_tick, msecs, msecs);
    for (seg *s = l->segs; s != NULL && s != l->segs_tail; s = s->next)
        retire(l, s); /* complete segments whose seal a crash prevented are sealed now */
    ensure_spare(l);
    pump(l);
    return 0;
}

/* Whether every segment in `ls` holds only zero bytes (an older build's bootstrap renamed log-1
 * into place zero-filled, before its entry). 1 yes, 0 no, -1 on an I/O error. Only a directory
 * with no term reaches this, so reading whole segments is a one-off cost. */
static int segs_all_zero(const rlog *l, const listing *ls)
{
    enum { CHUNK = 64 << 10 };
    uint8_t *b = cl_malloc(CHUNK);
    if (b == NULL)
        return -1;
    int zero = 1, rc = 0;
    char path[PATH_BUF];
    for (size_t i = 0; i < ls->n_segs && zero && rc == 0; i++) {
        seg_path(l, ls->segs[i], path, sizeof path);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            rc = -1;
            break;
        }
        ssize_t n;
        while (zero && (n = read(fd, b, CHUNK)) > 0)
            for (ssize_t k = 0; k < n && zero; k++)
                zero = b[k] == 0;
        if (zero && n < 0)
            rc = -1;
        close(fd);
    }
    cl_free(b);
    return rc != 0 ? -1 : zero;
}

/* Bootstrap writes the configuration entry into log-1 before that segment is renamed into place,
 * then the meta file with term 1. A crash in between leaves either nothing (bootstrap again) or
 * the entry without the term (io_load completes it). A directory whose term is 0 and whose
 * segments are all zeros (a crash inside an older build's bootstrap) is bootstrapped again;
 * anything else there is never deleted. */
static int io_bootstrap(struct raft_io *io, const struct raft_configuration *conf)
{
    rlog *l = io->impl;
    listing ls;
    if (meta_load(l) != 0)
        return RAFT_CORRUPT;
    if (list_dir(l->dir, &ls, 0) != 0)
        return RAFT_IOERR;
    int rv = 0;
    if (ls.n_snaps > 0 || (l->term != 0 && (ls.n_segs > 0 || l->vote != 0))) {
        /* A stored term without a vote, segments or snapshots is a new term stored before the
         * first start (cl_rlog_new_term); the bootstrap keeps it. */
        rv = RAFT_CANTBOOTSTRAP;
    } else if (ls.n_segs > 0) {
        int zero = segs_all_zero(l, &ls);
        if (zero != 1) {
            rv = zero < 0 ? RAFT_IOERR : RAFT_CANTBOOTSTRAP;
        } else {
            char path[PATH_BUF];
            for (size_t i = 0; i < ls.n_segs && rv == 0; i++) {
                seg_path(l, ls.segs[i], path, sizeof path);
                if (unlink(path) != 0)
                    rv = RAFT_IOERR;
            }
            if (rv == 0 && sync_dir(l->dir) != 0)
                rv = RAFT_IOERR;
            if (rv == 0)
                cl_logf(CL_LOG_WARN,
                        "rlog: %s held %zu zero-filled segment(s) and no term: an "
                        "interrupted bootstrap, done again",
                        l->dir, ls.n_segs);
        }
    }
    listing_free(&ls);
    if (rv != 0) {
        if (rv == RAFT_IOERR)
            snprintf(io->errmsg, sizeof io->errmsg, "bootstrap %.180s: %s", l->dir,
                     strerror(errno));
        return rv;
    }
    struct raft_buffer cb;
    rv = raft_configuration_encode(conf, &cb);
    if (rv != 0)
        return rv;
    int fd = -1;
    size_t n = (size_t)up_block(REC_HDR + pad8(cb.len));
    uint8_t *b = aligned_alloc_zero(n);
    if (b == NULL) {
        raft_free(cb.base);
        return RAFT_NOMEM;
    }
    rec_put(b, MAGIC_ENTRY, 1, 1, RAFT_CHANGE, cb.base, cb.len);
    raft_free(cb.base);
    rv = seg_create(l->dir, 1, l->seg_bytes, 0, b, n, &fd) == 0 ? 0 : RAFT_IOERR;
    free(b);
    if (fd >= 0)
        close(fd);
    if (rv != 0) {
        snprintf(io->errmsg, sizeof io->errmsg, "bootstrap %.180s: %s", l->dir, strerror(errno));
        return rv;
    }
    return meta_store(l, l->term > 1 ? l->term : 1, 0);
}

static int io_recover(struct raft_io *io, const struct raft_configuration *conf)
{
    (void)conf;
    snprintf(io->errmsg, sizeof io->errmsg, "recover is not supported");
    return RAFT_INVALID;
}

static int io_set_term(struct raft_io *io, raft_term term) { return meta_store(io->impl, term, 0); }

static int io_set_vote(struct raft_io *io, raft_id server_id)
{
    rlog *l = io->impl;
    return meta_store(l, l->term, server_id);
}

static int io_send(struct raft_io *io, struct raft_io_send *req, const struct raft_message *message,
                   raft_io_send_cb cb)
{
    (void)req;
    (void)message;
    (void)cb;
    snprintf(io->errmsg, sizeof io->errmsg, "no transport (single-node raft log)");
    return RAFT_NOCONNECTION;
}

static int io_append(struct raft_io *io, struct raft_io_append *req,
                     const struct raft_entry entries[], unsigned n, raft_io_append_cb cb)
{
    rlog *l = io->impl;
    if (l->closing)
        return RAFT_CANCELED;
    if (!l->started)
        return RAFT_INVALID; /* libraft appends only after start */
    if (l->failed)
        return RAFT_IOERR;
    /* A batch must fit in an empty segment with room for its seal. */
    size_t cap =
        l->seg_bytes - 2 * BLOCK < BATCH_CAP ? (size_t)(l->seg_bytes - 2 * BLOCK) : BATCH_CAP;
    size_t need = 0;
    for (unsigned i = 0; i < n; i++) {
        if (entries[i].buf.len > cap / 2)
            return RAFT_TOOBIG;
        need += REC_HDR + (size_t)pad8(entries[i].buf.len);
    }
    if (REC_HDR + need > cap)
        return RAFT_TOOBIG; /* one request's entries go in one batch, after its mark */
    job *j = l->fifo_tail, *fresh = NULL;
    if (j == NULL || j->kind != J_WRITE || j->dispatched || j->len + need > cap) {
        j = fresh = job_new(J_WRITE);
        if (j == NULL)
            return RAFT_NOMEM;
        j->first_index = l->next_index;
        j->len = REC_HDR;      /* the batch mark, written by cut() */
        j->buf = l->spare_buf; /* may be NULL (capacity 0) */
        j->cap = l->spare_cap;
        l->spare_buf = NULL;
        l->spare_cap = 0;
        j->reqs = l->spare_reqs;
        j->reqs_cap = l->spare_reqs_cap;
        l->spare_reqs = NULL;
        l->spare_reqs_cap = 0;
    }
    if (j->len + need > j->cap) {
        size_t nc = (size_t)up_block(j->len + need > 2 * j->cap ? j->len + need : 2 * j->cap);
        uint8_t *nb = aligned_alloc_zero(nc);
        if (nb == NULL) {
            job_free(fresh);
            return RAFT_NOMEM;
        }
        if (j->len > REC_HDR)
            memcpy(nb, j->buf, j->len);
        free(j->buf);
        j->buf = nb;
        j->cap = nc;
    }
    if (j->n_reqs == j->reqs_cap) {
        unsigned nc = j->reqs_cap ? j->reqs_cap * 2 : 8;
        struct raft_io_append **nr = cl_realloc(j->reqs, nc * sizeof *nr);
        if (nr == NULL) {
            job_free(fresh);
            return RAFT_NOMEM;
        }
        j->reqs = nr;
        j->reqs_cap = nc;
    }
    if (fresh != NULL)
        fifo_push(l, fresh);
    for (unsigned i = 0; i < n; i++) {
        rec_put(j->buf + j->len, MAGIC_ENTRY, l->next_index, entries[i].term, entries[i].type,
                entries[i].buf.base, entries[i].buf.len);
        j->len += REC_HDR + (size_t)pad8(entries[i].buf.len);
        j->last_index = l->next_index++;
    }
    req->cb = cb;
    j->reqs[j->n_reqs++] = req;
    /* Not submitted here: libraft appends each request on its own, and a write started now
     * would carry this one entry while the rest of the loop iteration's entries waited for it to
     * finish. The prepare hook (or the pump, when this runs inside it) submits the whole batch. */
    if (!l->in_pump)
        l->submit_wanted = 1;
    else
        l->pump_again = 1;
    return 0;
}

static int io_truncate(struct raft_io *io, raft_index index)
{
    rlog *l = io->impl;
    if (l->closing)
        return RAFT_CANCELED;
    if (index == 0 || index >= l->next_index)
        return index == 0 ? RAFT_INVALID : 0;
    job *j = job_new(J_TRUNCATE);
    if (j == NULL)
        return RAFT_NOMEM;
    j->index = index;
    fifo_push(l, j);
    l->next_index = index;
    if (!l->in_pump)
        submit(l);
    else
        l->pump_again = 1;
    return 0;
}

/* Segments that are sealed and hold nothing after `through`, from the oldest, leaving at least
 * the segment being written. */
static seg *take_segs_through(rlog *l, uint64_t through)
{
    seg *head = NULL, *tail = NULL;
    while (l->segs != NULL && l->segs != l->segs_tail && l->segs->last <= through &&
           l->segs->sealed) {
        seg *s = l->segs;
        l->segs = s->next;
        s->next = NULL;
        if (tail != NULL)
            tail->next = s;
        else
            head = s;
        tail = s;
    }
    return head;
}

static int io_snapshot_put(struct raft_io *io, unsigned trailing, struct raft_io_snapshot_put *req,
                           const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb)
{
    rlog *l = io->impl;
    if (l->closing)
        return RAFT_CANCELED;
    job *j = job_new(trailing == 0 ? J_INSTALL : J_SNAP_PUT);
    if (j == NULL)
        return RAFT_NOMEM;
    int rv = snap_encode(snapshot, &j->file, &j->file_len);
    if (rv != 0) {
        job_free(j);
        return rv;
    }
    j->index = snapshot->index;
    j->put = req;
    req->cb = cb;
    if (trailing == 0) {
        fifo_push(l, j);
        l->next_index = snapshot->index + 1;
        if (!l->in_pump)
            submit(l);
        else
            l->pump_again = 1;
    } else {
        uint64_t keep_from = snapshot->index > trailing ? snapshot->index - trailing : 0;
        j->dels = keep_from > 0 ? take_segs_through(l, keep_from) : NULL;
        internal_submit(l, j);
    }
    return 0;
}

static int io_snapshot_get(struct raft_io *io, struct raft_io_snapshot_get *req,
                           raft_io_snapshot_get_cb cb)
{
    rlog *l = io->impl;
    if (l->closing)
        return RAFT_CANCELED;
    job *j = job_new(J_SNAP_GET);
    if (j == NULL)
        return RAFT_NOMEM;
    j->get = req;
    req->cb = cb;
    internal_submit(l, j);
    return 0;
}

static raft_time io_time(struct raft_io *io)
{
    rlog *l = io->impl;
    return uv_now(l->loop);
}

static int io_random(struct raft_io *io, int min, int max)
{
    rlog *l = io->impl;
    l->rng ^= l->rng << 13;
    l->rng ^= l->rng >> 7;
    l->rng ^= l->rng << 17;
    if (max <= min)
        return min;
    return min + (int)(l->rng % (uint64_t)(max - min));
}

/* ---- public -------------------------------------------------------------------------------- */

/* A dry load of dir (it changes nothing); free with dry_done. */
typedef struct {
    struct raft_io io;
    rlog *l;
    raft_term term;
    raft_id vote;
    struct raft_snapshot *snap;
    raft_index start;
    struct raft_entry *entries;
    size_t n;
} dry_load;

static int dry_load_dir(const char *dir, dry_load *d, char *why, size_t why_len)
{
    memset(d, 0, sizeof *d);
    if (why_len > 0)
        why[0] = '\0';
    if (dir == NULL || strlen(dir) >= PATH_CAP)
        return RAFT_INVALID;
    rlog *l = cl_calloc(1, sizeof *l);
    if (l == NULL)
        return RAFT_NOMEM;
    l->io = &d->io;
    l->dry = 1;
    l->lock_wait_ms = LOCK_WAIT_MS;
    d->io.impl = l;
    d->l = l;
    memcpy(l->dir, dir, strlen(dir) + 1);
    int rv = io_load(&d->io, &d->term, &d->vote, &d->snap, &d->start, &d->entries, &d->n);
    if (rv != 0 && why_len > 0)
        snprintf(why, why_len, "%s", d->io.errmsg[0] ? d->io.errmsg : raft_strerror(rv));
    return rv;
}

static void dry_done(dry_load *d)
{
    cl_rlog_loaded_free(d->snap, d->entries, d->n);
    if (d->l != NULL) {
        free_segs(d->l->segs);
        free_segs(d->l->spare);
        cl_free(d->l);
    }
    memset(d, 0, sizeof *d);
}

/* The log's last index: the snapshot's without entries; 0: empty. */
static uint64_t dry_last_index(const dry_load *d)
{
    return d->n > 0 ? (uint64_t)d->start + d->n - 1 : d->snap != NULL ? d->snap->index : 0;
}

int cl_rlog_check(const char *dir, uint64_t *last_index, char *why, size_t why_len)
{
    if (last_index == NULL)
        return RAFT_INVALID;
    *last_index = 0;
    dry_load d;
    int rv = dry_load_dir(dir, &d, why, why_len);
    if (rv == 0)
        *last_index = dry_last_index(&d);
    dry_done(&d);
    return rv;
}

int cl_rlog_new_term(const char *dir, uint64_t floor, uint64_t need_index, uint64_t *last_index,
                     uint64_t *term, char *why, size_t why_len)
{
    if (term == NULL || last_index == NULL)
        return RAFT_INVALID;
    *term = *last_index = 0;
    dry_load d;
    int rv = dry_load_dir(dir, &d, why, why_len);
    if (rv != 0) {
        dry_done(&d);
        return rv;
    }
    *last_index = dry_last_index(&d);
    if (*last_index < need_index) { /* the caller refuses to start: nothing is changed */
        dry_done(&d);
        return 0;
    }
    /* Terms never go down along the log, and the stored term is at least the last entry's
     * unless meta was lost (a dry load stores nothing). */
    uint64_t top = d.term;
    if (d.n > 0 && d.entries[d.n - 1].term > top)
        top = d.entries[d.n - 1].term;
    if (d.snap != NULL && d.snap->term > top)
        top = d.snap->term;
    uint64_t t = top + 1 > floor ? top + 1 : floor;
    rv = meta_store(d.l, t, 0);
    if (rv != 0) {
        if (why_len > 0)
            snprintf(why, why_len, "%s", d.io.errmsg);
    } else {
        if (d.term == 0 && d.n > 0)
            say_term_restored(dir, d.start, d.entries, d.n, d.snap, t, "above the last entry's");
        *term = t;
    }
    dry_done(&d);
    return rv;
}

int cl_rlog_init(struct raft_io *io, uv_loop_t *loop, const char *dir, const cl_rlog_opts *o)
{
    CL_ENSURE(io != NULL && loop != NULL && dir != NULL, CL_EINVAL);
    CL_ENSURE(strlen(dir) < PATH_CAP - 64, CL_EOVERFLOW);
    unsigned writers = o != NULL && o->writers ? o->writers : DEFAULT_WRITERS;
    uint64_t segb = o != NULL && o->segment_bytes ? o->segment_bytes : DEFAULT_SEGMENT;
    CL_ENSURE(writers <= MAX_WRITERS && segb % BLOCK == 0 && segb >= (64u << 10), CL_EINVAL);
    CL_ENSURE(o == NULL || (o->io >= CL_RLOG_IO_AUTO && o->io <= CL_RLOG_IO_URING), CL_EINVAL);
    listing ls;
    if (list_dir(dir, &ls, 1) != 0) {
        cl_logf(CL_LOG_ERROR, "rlog: cannot list %s: %s", dir, strerror(errno));
        return CL_EIO;
    }
    int foreign = ls.foreign;
    listing_free(&ls);
    if (foreign) {
        cl_logf(CL_LOG_ERROR,
                "rlog: %s holds a raft_uv log (cledger before its own raft log); this version "
                "cannot read it: start from a fresh data directory",
                dir);
        return CL_EUNSUPPORTED;
    }
    rlog *l = cl_calloc(1, sizeof *l);
    CL_ENSURE(l != NULL, CL_ENOMEM);
    if (uv_mutex_init(&l->mu) != 0 || uv_cond_init(&l->wcond) != 0 ||
        uv_cond_init(&l->mcond) != 0 || uv_timer_init(loop, &l->timer) != 0) {
        cl_free(l);
        return CL_EIO;
    }
    l->timer.data = l;
    l->slow_ns = o != NULL && o->slow_write_ns ? o->slow_write_ns : CL_RLOG_SLOW_WRITE_NS;
    l->lock_wait_ms = o != NULL && o->lock_wait_ms ? o->lock_wait_ms : LOCK_WAIT_MS;
    l->handles_open = 1;
    l->io = io;
    l->loop = loop;
    snprintf(l->dir, sizeof l->dir, "%s", dir);
    l->n_writers = writers;
    l->io_mode = o != NULL ? o->io : CL_RLOG_IO_AUTO;
    l->seg_bytes = segb;
    l->next_counter = 1;
    l->next_index = 1;
    l->wake.fd = -1;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    l->rng = ((uint64_t)ts.tv_nsec << 20 ^ (uint64_t)ts.tv_sec ^ (uint64_t)getpid()) | 1;

    memset(io, 0, sizeof *io);
    io->version = 1;
    io->impl = l;
    io->init = io_init;
    io->close = io_close;
    io->load = io_load;
    io->start = io_start;
    io->bootstrap = io_bootstrap;
    io->recover = io_recover;
    io->set_term = io_set_term;
    io->set_vote = io_set_vote;
    io->send = io_send;
    io->append = io_append;
    io->truncate = io_truncate;
    io->snapshot_put = io_snapshot_put;
    io->snapshot_get = io_snapshot_get;
    io->time = io_time;
    io->random = io_random;
    return CL_OK;
}

void cl_rlog_take_slow(struct raft_io *io, uint64_t *count, uint64_t *max_ns)
{
    rlog *l = io->impl;
    *count = *max_ns = 0;
    if (l == NULL)
        return;
    *count = l->recent_slow;
    *max_ns = l->recent_slow_max_ns;
    l->recent_slow = l->recent_slow_max_ns = 0;
}

void cl_rlog_get_stats(const struct raft_io *io, cl_rlog_stats *out)
{
    const rlog *l = io->impl;
    if (l == NULL)
        memset(out, 0, sizeof *out);
    else {
        *out = l->stats;
        out->uring = l->use_ring;
        out->slow_write_ns = l->slow_ns;
    }
}
