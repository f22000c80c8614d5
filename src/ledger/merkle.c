/*
 * merkle.c — persisted Merkle tree: one append-only file of perfect-subtree roots per level.
 *
 * See merkle.h for the format, the invariants I1-I4 and the crash model. Implementation notes:
 *
 *  - Every range whose root is ever needed (the siblings of an audit path, the elements of a
 *    consistency proof, root_at) starts at a multiple of its largest power-of-two part, so it is
 *    the concatenation of stored perfect subtrees, one per set bit of its length, largest first
 *    (range_root). Its RFC 9162 root is the right fold of those nodes. This is why nothing but the
 *    perfect nodes is stored and why every query is O(log n) reads.
 *  - Each level has a bounded write buffer holding the records after the last one written to its
 *    file (level k: max(16, 4096 >> k) records, so under 300 KiB in all). Records it has written
 *    stay there as a read cache until the space is needed (at least the newest half of it is kept
 *    when it fills), so proofs of recent leaves, the usual receipt request, are served from memory
 *    even right after a flush and do not force a remap. Reads look there first.
 *  - Reads of written records not in the buffer go through an optional read-only mapping of the
 *    level file (cl_file_map), so a proof step is a memcpy instead of a pread. A mapping never
 *    extends past the file's current size (a page wholly past EOF would raise SIGBUS): it covers
 *    the file as it was when mapped. A read past it maps the whole current file again once the
 *    file has grown by REMAP_GROWTH (1/8) since, and preads the record until then: a remap drops
 *    the old mapping's page-table entries, so remapping after every flush (the ledger once
 *    flushed at every sync) made proofs slower than pread; this way a level is remapped O(log n)
 *    times as it grows. Cutting a file (truncate, repair at open) first drops a mapping that
 *    reaches past the cut; close drops them all. When the fs cannot map (CL_EUNSUPPORTED, or any
 *    other map error) reads fall back to pread, trying again only once the file has grown.
 *  - The marker file `synced_size` holds the size at the last completed sync, in two slots
 *    written alternately (layout in merkle.h) so that a torn marker write leaves the previous value
 *    readable. Records below it are durable in every level; records past it may be missing, cut
 *    or zero-filled after a crash, which their length alone cannot show, so open never trusts
 *    them. The marker moves down before level files are cut (truncate, open) and up only after
 *    they are synced (sync), so it never covers a record that is not durable. A missing or
 *    unreadable marker means nothing is known to be durable: size 0.
 */
#include "ledger/merkle.h"

#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/cursor.h"
#include "crypto/hash.h"

#define HLEN CL_MERKLE_HASH_LEN
#define MAX_LEVELS 64
#define BUF_RECORDS_L0 4096u
#define BUF_RECORDS_MIN 16u
#define RECOVER_CHUNK 2048u /* parent records recomputed per read of the level below */
#define REMAP_GROWTH 8u     /* remap a level once its file is 1/8 longer than the mapping */
#define MARKER_NAME "synced_size"
#define MARKER_LEN 24       /* generation u64, size u64, first 8 bytes of SHA256 of both */
#define MARKER_SLOT_OFF 512 /* slot 1: another sector than slot 0 */
#define FILE_MODE 0644
#define DIR_MODE 0755

typedef struct {
    cl_file *file;    /* NULL until the level first holds a record (or exists at open) */
    uint64_t flushed; /* records in the file */
    uint8_t *buf;     /* records flushed - nclean .. flushed + nbuf - 1 */
    size_t nclean;    /* records at the start of buf already in the file (a read cache) */
    size_t nbuf;      /* records not yet written, after those */
    size_t cap;
    const uint8_t *map; /* read-only mapping of records 0 .. map_recs - 1, or NULL */
    uint64_t map_recs;
    uint64_t map_try; /* `flushed` at the last map attempt: no retry until the file grows */
} merkle_level;

struct cl_merkle {
    cl_fs *fs;
    char *path; /* "<dir>/<file name>", the name rewritten per file */
    size_t dir_len;
    cl_file *marker;
    uint64_t size;
    uint64_t synced;     /* value of the durable marker (I4) */
    uint64_t marker_gen; /* generation of that value; the next write goes to slot (gen + 1) % 2 */
    int failed;          /* an I/O error left memory and files out of step: only close is allowed */
    int dir_dirty;       /* level files may have been created since the last directory sync */
    /* An incremental sync under way (cl_merkle_sync_step): once every level file is synced up to
     * step_target records of level 0, and the directory if step_dir, the marker may cover it. */
    int stepping;
    uint64_t step_target;
    unsigned step_level; /* next level file to sync */
    int step_dir;        /* the directory entries of files created before the step began */
    uint8_t frontier[MAX_LEVELS][HLEN];
    merkle_level lv[MAX_LEVELS];
};

static void node_hash(const uint8_t l[HLEN], const uint8_t r[HLEN], uint8_t out[HLEN])
{
    cl_sha256_2(l, HLEN, r, HLEN, out);
}

static unsigned top_bit(uint64_t x) { return 63u - (unsigned)__builtin_clzll(x); }

/* Largest power of two strictly less than n (n >= 2): the RFC 9162 split point. */
static uint64_t split_point(uint64_t n) { return (uint64_t)1 << top_bit(n - 1); }

static const char *file_path(cl_merkle *t, const char *name)
{
    size_t n = strlen(name);
    t->path[t->dir_len] = '/';
    memcpy(t->path + t->dir_len + 1, name, n + 1);
    return t->path;
}

static const char *level_path(cl_merkle *t, unsigned k)
{
    char name[sizeof "level_00"] = "level_00";
    name[6] = (char)('0' + k / 10);
    name[7] = (char)('0' + k % 10);
    return file_path(t, name);
}

static void marker_encode(uint64_t gen, uint64_t size, uint8_t rec[MARKER_LEN])
{
    uint8_t h[CL_SHA256_LEN];
    cl_store_u64(rec, gen);
    cl_store_u64(rec + 8, size);
    cl_sha256(rec, 16, h);
    memcpy(rec + 16, h, 8);
}

/* The durable size from the valid slot of highest generation; size 0 (generation 0) when neither
 * slot is valid: nothing is known to be durable. */
static int marker_read(cl_file *marker, uint64_t *gen, uint64_t *size)
{
    *gen = 0;
    *size = 0;
    for (uint64_t slot = 0; slot < 2; slot++) {
        uint8_t rec[MARKER_LEN], want[MARKER_LEN];
        size_t got = 0;
        CL_TRY(cl_file_pread(marker, rec, MARKER_LEN, slot * MARKER_SLOT_OFF, &got));
        if (got != MARKER_LEN)
            continue;
        uint64_t g = cl_load_u64(rec);
        marker_encode(g, cl_load_u64(rec + 8), want);
        if (cl_ct_equal(rec, want, MARKER_LEN) && g % 2 == slot && g >= *gen) {
            *gen = g;
            *size = cl_load_u64(rec + 8);
        }
    }
    return CL_OK;
}

/* Writes the other slot than the current value's, then syncs. */
static int marker_write(cl_merkle *t, uint64_t size)
{
    uint8_t rec[MARKER_LEN];
    uint64_t gen = t->marker_gen + 1;
    marker_encode(gen, size, rec);
    CL_TRY(cl_file_pwrite(t->marker, rec, MARKER_LEN, (gen % 2) * MARKER_SLOT_OFF));
    CL_TRY(cl_file_sync(t->marker));
    t->synced = size;
    t->marker_gen = gen;
    return CL_OK;
}

/* Opens (creating if needed) the file of level k and allocates its write buffer. */
static int level_open(cl_merkle *t, unsigned k)
{
    merkle_level *L = &t->lv[k];
    if (L->file != NULL)
        return CL_OK;
    size_t cap = BUF_RECORDS_L0 >> k;
    if (cap < BUF_RECORDS_MIN)
        cap = BUF_RECORDS_MIN;
    uint8_t *buf = cl_malloc(cap * HLEN);
    CL_ENSURE(buf != NULL, CL_ENOMEM);
    int rc = cl_fs_open(t->fs, level_path(t, k), CL_FS_RDWR | CL_FS_CREAT, FILE_MODE, &L->file);
    if (rc < 0) {
        L->file = NULL;
        cl_free(buf);
        return rc;
    }
    L->buf = buf;
    L->cap = cap;
    L->nclean = 0;
    L->nbuf = 0;
    t->dir_dirty = 1;
    return CL_OK;
}

static int level_flush(merkle_level *L)
{
    if (L->nbuf == 0)
        return CL_OK;
    CL_TRY(cl_file_pwrite(L->file, L->buf + L->nclean * HLEN, L->nbuf * HLEN, L->flushed * HLEN));
    L->flushed += L->nbuf;
    L->nclean += L->nbuf;
    L->nbuf = 0;
    return CL_OK;
}

static int level_push(cl_merkle *t, unsigned k, const uint8_t rec[HLEN])
{
    merkle_level *L = &t->lv[k];
    CL_TRY(level_open(t, k));
    if (L->nclean + L->nbuf == L->cap) {
        /* Full: write it if it holds nothing else, then drop the oldest written records, keeping
         * the unwritten ones and at least the newest half (amortised: one record moved per push).
         */
        if (L->nbuf == L->cap)
            CL_TRY(level_flush(L));
        size_t keep = L->nbuf > L->cap / 2 ? L->nbuf : L->cap / 2;
        size_t drop = L->cap - keep;
        memmove(L->buf, L->buf + drop * HLEN, keep * HLEN);
        L->nclean -= drop;
    }
    memcpy(L->buf + (L->nclean + L->nbuf) * HLEN, rec, HLEN);
    L->nbuf++;
    return CL_OK;
}

static void level_unmap(merkle_level *L)
{
    if (L->map != NULL)
        (void)cl_file_unmap(L->file, L->map, L->map_recs * HLEN);
    L->map = NULL;
    L->map_recs = 0;
    L->map_try = UINT64_MAX; /* the next read past the (empty) mapping tries again */
}

/* Replaces the mapping of level L by one of its whole file: the `flushed` records, or fewer if
 * the file is shorter (cut behind our back: the reads past it then fail as before, via pread).
 * Failure is not an error: the old mapping, if any, stays and reads fall back to pread. */
static void level_map(merkle_level *L)
{
    uint64_t bytes = 0;
    const void *addr = NULL;
    L->map_try = L->flushed;
    if (cl_file_size(L->file, &bytes) < 0)
        return;
    uint64_t recs = bytes / HLEN < L->flushed ? bytes / HLEN : L->flushed;
    if (recs <= L->map_recs || cl_file_map(L->file, recs * HLEN, &addr) < 0)
        return;
    if (L->map != NULL)
        (void)cl_file_unmap(L->file, L->map, L->map_recs * HLEN);
    L->map = addr;
    L->map_recs = recs;
}

/* Record i of level k, from the write buffer, the mapping or the file. The mapping is a cache of
 * the file, so updating it does not change the tree's logical state (hence the const). */
static int node_read(const cl_merkle *t, unsigned k, uint64_t i, uint8_t out[HLEN])
{
    merkle_level *L = (merkle_level *)&t->lv[k];
    CL_ENSURE(L->file != NULL, CL_ECORRUPT);
    uint64_t first = L->flushed - L->nclean; /* first record in the buffer */
    if (i >= first && i - first < L->nclean + L->nbuf) {
        memcpy(out, L->buf + (i - first) * HLEN, HLEN);
        return CL_OK;
    }
    if (i >= L->flushed)
        return CL_ECORRUPT; /* past the last record */
    /* Past the mapping: map the whole file again once it has grown enough since it was mapped
     * (a remap drops every page-table entry of the old mapping, so the pages fault in again);
     * until then the few records past it are pread. Never twice at the same length. */
    if (i >= L->map_recs && L->flushed - L->map_recs >= L->map_recs / REMAP_GROWTH &&
        L->map_try != L->flushed)
        level_map(L);
    if (i < L->map_recs) {
        memcpy(out, L->map + i * HLEN, HLEN);
        return CL_OK;
    }
    int rc = cl_file_read_exact(L->file, out, HLEN, i * HLEN);
    /* A file shorter than I1 says was cut behind our back. */
    return rc == CL_ETRUNC ? CL_ECORRUPT : rc;
}

/* MTH(D[a : a+len]) for len >= 1 and a a multiple of the largest power of two in len: the right
 * fold of the stored perfect subtrees, one per set bit of len, largest (leftmost) first. */
static int range_root(const cl_merkle *t, uint64_t a, uint64_t len, uint8_t out[HLEN])
{
    int have = 0;
    for (uint64_t bits = len; bits != 0; bits &= bits - 1) {
        uint64_t bit = bits & (~bits + 1);
        unsigned j = (unsigned)__builtin_ctzll(bits);
        /* The chunk for bit j starts after the chunks of all higher bits (bit * 2 - 1 wraps to
         * all ones for bit 63, as wanted). */
        uint64_t start = a + (len & ~(bit * 2 - 1));
        uint8_t node[HLEN];
        CL_TRY(node_read(t, j, start >> j, node));
        if (have)
            node_hash(node, out, out);
        else
            memcpy(out, node, HLEN);
        have = 1;
    }
    return CL_OK;
}

/* Frontier (I3) from the stored nodes: the last record of level k for each set bit k. */
static int frontier_load(cl_merkle *t)
{
    for (unsigned k = 0; k < MAX_LEVELS; k++)
        if (t->size >> k & 1)
            CL_TRY(node_read(t, k, (t->size >> k) - 1, t->frontier[k]));
    return CL_OK;
}

/* Completes level k from record `have` to `want` out of level k-1 (already complete), reading
 * only the two children of each missing record. */
static int level_recover(cl_merkle *t, unsigned k, uint64_t have, uint64_t want)
{
    int rc = CL_OK;
    uint8_t *in = cl_malloc(RECOVER_CHUNK * 2 * HLEN);
    uint8_t *outb = cl_malloc(RECOVER_CHUNK * HLEN);
    CL_GUARD_IF(in == NULL || outb == NULL, CL_ENOMEM);
    for (uint64_t i = have; i < want;) {
        size_t cnt = want - i < RECOVER_CHUNK ? (size_t)(want - i) : RECOVER_CHUNK;
        rc = cl_file_read_exact(t->lv[k - 1].file, in, cnt * 2 * HLEN, i * 2 * HLEN);
        CL_GUARD_IF(rc == CL_ETRUNC, CL_ECORRUPT);
        CL_GUARD(rc);
        for (size_t j = 0; j < cnt; j++)
            cl_sha256(in + j * 2 * HLEN, 2 * HLEN, outb + j * HLEN);
        CL_GUARD(cl_file_pwrite(t->lv[k].file, outb, cnt * HLEN, i * HLEN));
        i += cnt;
    }
out:
    cl_free(in);
    cl_free(outb);
    return rc;
}

/* Brings level k to exactly `want` records (I1) at open time. */
static int level_repair(cl_merkle *t, unsigned k, uint64_t want)
{
    merkle_level *L = &t->lv[k];
    uint64_t bytes = 0;
    CL_TRY(cl_file_size(L->file, &bytes));
    uint64_t have = bytes / HLEN;
    uint64_t keep = have < want ? have : want;
    /* A longer level or a torn record is cut; the cut need not be durable, since whatever a
     * crash revives lies past the marker. Recomputed records lie below it, so they are synced. */
    if (bytes != keep * HLEN) {
        if (L->map_recs > keep)
            level_unmap(L);
        CL_TRY(cl_file_truncate(L->file, keep * HLEN));
    }
    if (keep < want) {
        CL_TRY(level_recover(t, k, keep, want));
        CL_TRY(cl_file_sync(L->file));
    }
    L->flushed = want;
    return CL_OK;
}

int cl_merkle_open(cl_fs *fs, const char *dir, cl_merkle **out)
{
    int rc;
    CL_ENSURE(fs != NULL && dir != NULL && out != NULL, CL_EINVAL);
    *out = NULL;
    cl_merkle *t = cl_calloc(1, sizeof *t);
    CL_ENSURE(t != NULL, CL_ENOMEM);
    t->fs = fs;
    t->dir_len = strlen(dir);
    t->path = cl_malloc(t->dir_len + sizeof "/" MARKER_NAME);
    CL_GUARD_IF(t->path == NULL, CL_ENOMEM);
    memcpy(t->path, dir, t->dir_len + 1);

    CL_GUARD(cl_fs_mkdir(fs, dir, DIR_MODE));
    CL_GUARD(
        cl_fs_open(fs, file_path(t, MARKER_NAME), CL_FS_RDWR | CL_FS_CREAT, FILE_MODE, &t->marker));
    t->dir_dirty = 1;
    uint64_t durable = 0, bytes = 0;
    CL_GUARD(marker_read(t->marker, &t->marker_gen, &durable));
    CL_GUARD(level_open(t, 0));
    CL_GUARD(cl_file_size(t->lv[0].file, &bytes));
    uint64_t n = bytes / HLEN < durable ? bytes / HLEN : durable;
    /* Lower the marker before cutting anything (I4); a marker already at n is left alone. */
    t->synced = durable;
    if (durable != n)
        CL_GUARD(marker_write(t, n));
    CL_GUARD(level_repair(t, 0, n));
    for (unsigned k = 1; k < MAX_LEVELS; k++) {
        uint64_t want = n >> k;
        if (want == 0) {
            /* A level above the top only holds records of a longer, lost tree: empty it (no
             * sync needed, its records lie past the marker). */
            int ex = cl_fs_exists(fs, level_path(t, k));
            CL_GUARD(ex);
            if (ex == 0)
                continue;
        }
        CL_GUARD(level_open(t, k));
        CL_GUARD(level_repair(t, k, want));
    }
    t->size = n;
    CL_GUARD(frontier_load(t));
    *out = t;
    return CL_OK;
out:
    t->failed = 1; /* close must not sync a half-recovered tree */
    (void)cl_merkle_close(t);
    return rc;
}

static int do_sync(cl_merkle *t);

int cl_merkle_close(cl_merkle *t)
{
    if (t == NULL)
        return CL_OK;
    int rc = CL_OK;
    if (!t->failed && t->marker != NULL)
        rc = do_sync(t);
    for (unsigned k = 0; k < MAX_LEVELS; k++) {
        merkle_level *L = &t->lv[k];
        if (L->file == NULL)
            continue;
        level_unmap(L);
        int crc = cl_file_close(L->file);
        if (rc == CL_OK)
            rc = crc;
        cl_free(L->buf);
    }
    int mrc = cl_file_close(t->marker);
    if (rc == CL_OK)
        rc = mrc;
    cl_free(t->path);
    cl_free(t);
    return rc;
}

static int mark(cl_merkle *t, int rc)
{
    if (rc < 0 && rc != CL_ERANGE && rc != CL_EOVERFLOW && rc != CL_ECLOSED)
        t->failed = 1;
    return rc;
}

static int do_append(cl_merkle *t, const uint8_t leaf[HLEN])
{
    uint64_t n = t->size;
    uint8_t h[HLEN];
    memcpy(h, leaf, HLEN);
    CL_TRY(level_push(t, 0, h));
    /* Leaf n completes the perfect subtree of level k+1 for every trailing 1 bit k of n. */
    unsigned k = 0;
    while (n >> k & 1) {
        node_hash(t->frontier[k], h, h);
        k++;
        CL_TRY(level_push(t, k, h));
    }
    memcpy(t->frontier[k], h, HLEN);
    t->size = n + 1;
    return CL_OK;
}

int cl_merkle_append(cl_merkle *t, const uint8_t leaf[CL_MERKLE_HASH_LEN])
{
    CL_ENSURE(!t->failed, CL_ECLOSED);
    CL_ENSURE(t->size < UINT64_MAX, CL_EOVERFLOW);
    return mark(t, do_append(t, leaf));
}

uint64_t cl_merkle_size(const cl_merkle *t) { return t->size; }

int cl_merkle_root(const cl_merkle *t, uint8_t out[CL_MERKLE_HASH_LEN])
{
    CL_ENSURE(!t->failed, CL_ECLOSED);
    CL_ENSURE(t->size > 0, CL_ERANGE);
    int have = 0;
    for (unsigned k = 0; k < MAX_LEVELS; k++) {
        if (!(t->size >> k & 1))
            continue;
        if (have)
            node_hash(t->frontier[k], out, out);
        else
            memcpy(out, t->frontier[k], HLEN);
        have = 1;
    }
    return CL_OK;
}

int cl_merkle_root_at(const cl_merkle *t, uint64_t size, uint8_t out[CL_MERKLE_HASH_LEN])
{
    CL_ENSURE(!t->failed, CL_ECLOSED);
    CL_ENSURE(size > 0 && size <= t->size, CL_ERANGE);
    if (size == t->size)
        return cl_merkle_root(t, out);
    return range_root(t, 0, size, out);
}

int cl_merkle_leaf(const cl_merkle *t, uint64_t index, uint8_t out[CL_MERKLE_HASH_LEN])
{
    CL_ENSURE(!t->failed, CL_ECLOSED);
    CL_ENSURE(index < t->size, CL_ERANGE);
    return node_read(t, 0, index, out);
}

/* A truncate or a full sync supersedes an incremental sync under way. Cutting files below its
 * target would make its marker write a lie (I4); a full sync does the whole job at once. */
static void step_cancel(cl_merkle *t)
{
    if (!t->stepping)
        return;
    t->dir_dirty |= t->step_dir;
    t->stepping = 0;
}

static int do_truncate(cl_merkle *t, uint64_t size)
{
    step_cancel(t);
    /* I4 first: from here on a crash reopens at most `size` leaves. The cuts themselves then need
     * no sync. */
    if (t->synced > size)
        CL_TRY(marker_write(t, size));
    for (unsigned k = 0; k < MAX_LEVELS; k++) {
        merkle_level *L = &t->lv[k];
        uint64_t want = size >> k;
        if (L->file == NULL || L->flushed + L->nbuf == want)
            continue;
        if (want >= L->flushed) {
            L->nbuf = (size_t)(want - L->flushed);
            continue;
        }
        /* Never leave mapped pages past the new end of file (SIGBUS). */
        if (L->map_recs > want)
            level_unmap(L);
        L->map_try = UINT64_MAX; /* `flushed` goes down: it may return to a tried value */
        CL_TRY(cl_file_truncate(L->file, want * HLEN));
        /* Cached records below the cut stay valid. */
        uint64_t first = L->flushed - L->nclean;
        L->nclean = want > first ? (size_t)(want - first) : 0;
        L->flushed = want;
        L->nbuf = 0;
    }
    t->size = size;
    return frontier_load(t);
}

int cl_merkle_truncate(cl_merkle *t, uint64_t size)
{
    CL_ENSURE(!t->failed, CL_ECLOSED);
    CL_ENSURE(size <= t->size, CL_ERANGE);
    if (size == t->size)
        return CL_OK;
    return mark(t, do_truncate(t, size));
}

static int do_flush(cl_merkle *t)
{
    for (unsigned k = 0; k < MAX_LEVELS; k++)
        if (t->lv[k].file != NULL)
            CL_TRY(level_flush(&t->lv[k]));
    return CL_OK;
}

int cl_merkle_flush(cl_merkle *t)
{
    CL_ENSURE(!t->failed, CL_ECLOSED);
    return mark(t, do_flush(t));
}

int cl_merkle_sync(cl_merkle *t)
{
    CL_ENSURE(!t->failed, CL_ECLOSED);
    return mark(t, do_sync(t));
}

/* One device flush per call: the first call flushes the buffers and fixes the target (the current
 * size); each call then fdatasyncs the next level file that holds records below the target, then
 * the directory, and the last one writes the marker. Records appended meanwhile lie past the
 * target, so they need not be durable yet; files created meanwhile hold only such records. */
static int do_sync_step(cl_merkle *t, int *done)
{
    *done = 0;
    if (!t->stepping) {
        /* Nothing past the marker exists: every record below it is already durable. */
        if (t->size == t->synced && !t->dir_dirty) {
            *done = 1;
            return CL_OK;
        }
        CL_TRY(do_flush(t));
        t->stepping = 1;
        t->step_target = t->size;
        t->step_level = 0;
        t->step_dir = t->dir_dirty;
        t->dir_dirty = 0;
    }
    while (t->step_level < MAX_LEVELS && (t->step_target >> t->step_level) > 0) {
        merkle_level *L = &t->lv[t->step_level++];
        if (L->file != NULL)
            return cl_file_sync(L->file);
    }
    t->step_level = MAX_LEVELS;
    if (t->step_dir) {
        t->path[t->dir_len] = '\0';
        CL_TRY(cl_fs_sync_dir(t->fs, t->path));
        t->step_dir = 0;
        return CL_OK;
    }
    /* Only now may the marker cover the target (I4). */
    if (t->step_target > t->synced)
        CL_TRY(marker_write(t, t->step_target));
    t->stepping = 0;
    *done = 1;
    return CL_OK;
}

/* The whole sync at once: a round of steps started afresh (one under way is dropped). */
static int do_sync(cl_merkle *t)
{
    step_cancel(t);
    int done = 0;
    while (!done)
        CL_TRY(do_sync_step(t, &done));
    return CL_OK;
}

int cl_merkle_sync_step(cl_merkle *t, int *done)
{
    *done = 0;
    CL_ENSURE(!t->failed, CL_ECLOSED);
    return mark(t, do_sync_step(t, done));
}

int cl_merkle_path(const cl_merkle *t, uint64_t index, uint64_t size, cl_merkle_step *steps,
                   size_t *nsteps)
{
    CL_ENSURE(!t->failed, CL_ECLOSED);
    CL_ENSURE(size <= t->size && index < size, CL_ERANGE);
    /* PATH (receipts.md §6.4) descends from the root; siblings are collected top-down and then
     * emitted leaf-first. The range [a, a+len) always starts at a multiple of the next split. */
    cl_merkle_step top[CL_MERKLE_MAX_PATH];
    size_t d = 0;
    uint64_t a = 0, len = size;
    while (len > 1) {
        uint64_t k = split_point(len);
        if (index - a < k) {
            /* Right sibling D[a+k : a+len]: the only possibly imperfect one. */
            CL_TRY(range_root(t, a + k, len - k, top[d].hash));
            top[d].is_left = 0;
            len = k;
        } else {
            CL_TRY(node_read(t, top_bit(k), a >> top_bit(k), top[d].hash));
            top[d].is_left = 1;
            a += k;
            len -= k;
        }
        d++;
    }
    for (size_t i = 0; i < d; i++)
        steps[i] = top[d - 1 - i];
    *nsteps = d;
    return CL_OK;
}

int cl_merkle_consistency(const cl_merkle *t, uint64_t m, uint64_t n,
                          uint8_t (*proof)[CL_MERKLE_HASH_LEN], size_t *nproof)
{
    CL_ENSURE(!t->failed, CL_ECLOSED);
    CL_ENSURE(m >= 1 && m <= n && n <= t->size, CL_ERANGE);
    /* SUBPROOF (RFC 9162 §2.1.4.1) with the recursion unrolled: `top` collects the appended
     * elements outermost first; the result is [MTH(D[a:a+m]) unless b] ++ reversed(top). */
    uint8_t top[CL_MERKLE_MAX_CONSISTENCY][HLEN];
    size_t d = 0, np = 0;
    uint64_t a = 0, len = n;
    int b = 1;
    while (m != len) {
        uint64_t k = split_point(len);
        if (m <= k) {
            CL_TRY(range_root(t, a + k, len - k, top[d]));
            len = k;
        } else {
            CL_TRY(range_root(t, a, k, top[d]));
            a += k;
            len -= k;
            m -= k;
            b = 0;
        }
        d++;
    }
    if (!b)
        CL_TRY(range_root(t, a, m, proof[np++]));
    for (size_t i = 0; i < d; i++)
        memcpy(proof[np++], top[d - 1 - i], HLEN);
    *nproof = np;
    return CL_OK;
}

int cl_merkle_path_root(const uint8_t leaf[CL_MERKLE_HASH_LEN], const cl_merkle_step *steps,
                        size_t nsteps, uint8_t out_root[CL_MERKLE_HASH_LEN])
{
    CL_ENSURE(nsteps <= CL_MERKLE_MAX_PATH, CL_EPROOF);
    uint8_t h[HLEN];
    memcpy(h, leaf, HLEN);
    for (size_t i = 0; i < nsteps; i++) {
        CL_ENSURE(steps[i].is_left <= 1, CL_EPROOF);
        if (steps[i].is_left)
            node_hash(steps[i].hash, h, h);
        else
            node_hash(h, steps[i].hash, h);
    }
    memcpy(out_root, h, HLEN);
    return CL_OK;
}

int cl_merkle_verify_consistency(uint64_t m, uint64_t n, const uint8_t root_m[CL_MERKLE_HASH_LEN],
                                 const uint8_t root_n[CL_MERKLE_HASH_LEN],
                                 const uint8_t (*proof)[CL_MERKLE_HASH_LEN], size_t nproof)
{
    CL_ENSURE(m >= 1 && m <= n, CL_EPROOF);
    if (m == n)
        return nproof == 0 && cl_ct_equal(root_m, root_n, HLEN) ? CL_OK : CL_EPROOF;
    /* RFC 9162 §2.1.4.2, receipts.md §7.3. */
    CL_ENSURE(nproof >= 1 && nproof <= CL_MERKLE_MAX_CONSISTENCY, CL_EPROOF);
    /* Step 2: when m is a power of two, the path is [root_m] ++ proof. */
    int lead = (m & (m - 1)) == 0;
    size_t total = nproof + (size_t)lead;
#define PATH_AT(i) (lead ? ((i) == 0 ? root_m : proof[(i)-1]) : proof[(i)])
    uint64_t fn = m - 1, sn = n - 1;
    while (fn & 1) {
        fn >>= 1;
        sn >>= 1;
    }
    uint8_t fr[HLEN], sr[HLEN];
    memcpy(fr, PATH_AT(0), HLEN);
    memcpy(sr, PATH_AT(0), HLEN);
    for (size_t i = 1; i < total; i++) {
        const uint8_t *c = PATH_AT(i);
        CL_ENSURE(sn != 0, CL_EPROOF);
        if ((fn & 1) || fn == sn) {
            node_hash(c, fr, fr);
            node_hash(c, sr, sr);
            while (!(fn & 1) && fn != 0) {
                fn >>= 1;
                sn >>= 1;
            }
        } else {
            node_hash(sr, c, sr);
        }
        fn >>= 1;
        sn >>= 1;
    }
#undef PATH_AT
    int ok = cl_ct_equal(fr, root_m, HLEN) & cl_ct_equal(sr, root_n, HLEN) & (sn == 0);
    return ok ? CL_OK : CL_EPROOF;
}

int cl_merkle_check(const cl_merkle *t)
{
    CL_ENSURE(!t->failed, CL_ECLOSED);
    /* I4 */
    uint64_t durable = 0, gen = 0;
    CL_TRY(marker_read(t->marker, &gen, &durable));
    CL_ENSURE(durable == t->synced && gen == t->marker_gen && durable <= t->size, CL_ECORRUPT);
    for (unsigned k = 0; k < MAX_LEVELS; k++) {
        const merkle_level *L = &t->lv[k];
        uint64_t want = t->size >> k;
        /* I1 */
        if (L->file == NULL) {
            CL_ENSURE(want == 0, CL_ECORRUPT);
            continue;
        }
        uint64_t bytes = 0;
        CL_TRY(cl_file_size(L->file, &bytes));
        CL_ENSURE(bytes == L->flushed * HLEN, CL_ECORRUPT);
        CL_ENSURE(L->flushed + L->nbuf == want, CL_ECORRUPT);
        if (want == 0)
            continue;
        uint8_t last[HLEN];
        CL_TRY(node_read(t, k, want - 1, last));
        /* I3 */
        if (t->size >> k & 1)
            CL_ENSURE(cl_ct_equal(last, t->frontier[k], HLEN), CL_ECORRUPT);
        /* I2, on the last record */
        if (k > 0) {
            uint8_t l[HLEN], r[HLEN], h[HLEN];
            CL_TRY(node_read(t, k - 1, 2 * want - 2, l));
            CL_TRY(node_read(t, k - 1, 2 * want - 1, r));
            node_hash(l, r, h);
            CL_ENSURE(cl_ct_equal(last, h, HLEN), CL_ECORRUPT);
        }
    }
    return CL_OK;
}

/* ---- offline audit ----------------------------------------------------------------------------
 * Reads the files as the next open would find them, without recovering or changing anything:
 * leaves are compared as the caller streams them in, then every upper record is checked against
 * its two children, reading each level sequentially in blocks of AUDIT_BLOCK records. */
#define AUDIT_BLOCK 2048u

typedef struct {
    cl_file *f;
    uint64_t recs; /* whole records in the file */
    uint8_t *buf;  /* records base .. base + nbuf - 1 */
    uint64_t base;
    size_t nbuf;
} audit_level;

struct cl_merkle_audit {
    cl_merkle t; /* only fs and path are used, for level_path */
    uint64_t size, next;
    audit_level lv[2];
    cl_merkle_audit_result res;
};

static int audit_level_open(cl_merkle_audit *a, unsigned k, audit_level *L)
{
    memset(L, 0, sizeof *L);
    int ex = cl_fs_exists(a->t.fs, level_path(&a->t, k));
    CL_TRY(ex);
    if (ex == 0)
        return CL_OK;
    uint64_t bytes = 0;
    CL_TRY(cl_fs_open(a->t.fs, level_path(&a->t, k), CL_FS_RDONLY, 0, &L->f));
    CL_TRY(cl_file_size(L->f, &bytes));
    L->recs = bytes / HLEN;
    L->buf = cl_malloc(AUDIT_BLOCK * HLEN);
    CL_ENSURE(L->buf != NULL, CL_ENOMEM);
    return CL_OK;
}

static void audit_level_close(audit_level *L)
{
    cl_file_close(L->f);
    cl_free(L->buf);
    memset(L, 0, sizeof *L);
}

/* Record i (< L->recs) of an audited level; reads are sequential, so the block after the last. */
static int audit_read(audit_level *L, uint64_t i, const uint8_t **out)
{
    if (i < L->base || i >= L->base + L->nbuf) {
        uint64_t n = L->recs - i < AUDIT_BLOCK ? L->recs - i : AUDIT_BLOCK;
        CL_TRY(cl_file_read_exact(L->f, L->buf, n * HLEN, i * HLEN));
        L->base = i;
        L->nbuf = (size_t)n;
    }
    *out = L->buf + (i - L->base) * HLEN;
    return CL_OK;
}

int cl_merkle_audit_open(cl_fs *fs, const char *dir, cl_merkle_audit **out)
{
    CL_ENSURE(fs != NULL && dir != NULL && out != NULL, CL_EINVAL);
    *out = NULL;
    cl_merkle_audit *a = cl_calloc(1, sizeof *a);
    CL_ENSURE(a != NULL, CL_ENOMEM);
    int rc;
    cl_file *marker = NULL;
    a->t.fs = fs;
    a->t.dir_len = strlen(dir);
    a->t.path = cl_malloc(a->t.dir_len + sizeof "/" MARKER_NAME);
    CL_GUARD_IF(a->t.path == NULL, CL_ENOMEM);
    memcpy(a->t.path, dir, a->t.dir_len + 1);
    int ex = cl_fs_exists(fs, file_path(&a->t, MARKER_NAME));
    CL_GUARD(ex);
    CL_GUARD_IF(ex == 0, CL_ENOENT);
    CL_GUARD(cl_fs_open(fs, file_path(&a->t, MARKER_NAME), CL_FS_RDONLY, 0, &marker));
    uint64_t gen = 0, durable = 0;
    CL_GUARD(marker_read(marker, &gen, &durable));
    CL_GUARD(audit_level_open(a, 0, &a->lv[0]));
    a->size = a->lv[0].recs < durable ? a->lv[0].recs : durable;
    a->res.size = a->size;
    cl_file_close(marker);
    *out = a;
    return CL_OK;
out:
    cl_file_close(marker);
    cl_merkle_audit_close(a);
    return rc;
}

int cl_merkle_audit_leaf(cl_merkle_audit *a, const uint8_t leaf[HLEN])
{
    uint64_t i = a->next++;
    if (i >= a->size || a->res.bad)
        return CL_OK;
    const uint8_t *rec;
    CL_TRY(audit_read(&a->lv[0], i, &rec));
    a->res.records++;
    if (!cl_ct_equal(rec, leaf, HLEN)) {
        a->res.bad = 1;
        a->res.bad_level = 0;
        a->res.bad_index = i;
        return CL_ECORRUPT;
    }
    return CL_OK;
}

int cl_merkle_audit_finish(cl_merkle_audit *a, cl_merkle_audit_result *res)
{
    int rc = CL_OK;
    /* Leaves the ledger did not supply (the store ran ahead of it) are left to the next open. */
    for (unsigned k = 1; k < MAX_LEVELS && !a->res.bad && (a->size >> k) != 0; k++) {
        /* lv[0] holds level k-1, lv[1] level k; records past a short file are recomputed by the
         * next open, so only records whose children are both in the files are checked */
        audit_level_close(&a->lv[1]);
        CL_GUARD(audit_level_open(a, k, &a->lv[1]));
        uint64_t n = a->size >> k;
        if (n > a->lv[1].recs)
            n = a->lv[1].recs;
        if (n > a->lv[0].recs / 2)
            n = a->lv[0].recs / 2;
        for (uint64_t i = 0; i < n; i++) {
            const uint8_t *l, *r, *p;
            uint8_t lc[HLEN], h[HLEN];
            CL_GUARD(audit_read(&a->lv[0], 2 * i, &l));
            memcpy(lc, l, HLEN); /* the next read may move the block */
            CL_GUARD(audit_read(&a->lv[0], 2 * i + 1, &r));
            node_hash(lc, r, h);
            CL_GUARD(audit_read(&a->lv[1], i, &p));
            a->res.records++;
            if (!cl_ct_equal(p, h, HLEN)) {
                a->res.bad = 1;
                a->res.bad_level = k;
                a->res.bad_index = i;
                break;
            }
        }
        audit_level_close(&a->lv[0]);
        a->lv[0] = a->lv[1];
        memset(&a->lv[1], 0, sizeof a->lv[1]);
    }
    if (a->next < a->size && !a->res.bad) /* fewer ledger leaves than stored ones */
        a->res.ahead = a->size - a->next;
out:
    *res = a->res;
    if (rc == CL_OK && a->res.bad)
        rc = CL_ECORRUPT;
    return rc;
}

void cl_merkle_audit_close(cl_merkle_audit *a)
{
    if (a == NULL)
        return;
    audit_level_close(&a->lv[0]);
    audit_level_close(&a->lv[1]);
    cl_free(a->t.path);
    cl_free(a);
}
