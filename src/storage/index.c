/*
 * index.c — the ledger index on LMDB. See index.h for the API, ownership and durability model.
 *
 * Databases (all in one environment, opened once in cl_index_open):
 *   entries     seqno u64 BE -> 40-byte location record (index.h). BE keys make LMDB's byte order
 *               the numeric order, so MDB_LAST is the last seqno and appends can use MDB_APPEND.
 *   collections coll id || 0x00 || seqno u64 BE -> seqno u64 BE of the collection's row before
 *               it (0 for its first). Ids contain no NUL, so the rows of one collection are
 *               exactly the keys starting with "id\0" and sit together, in seqno order: a scan is
 *               one MDB_SET_RANGE and then MDB_NEXT per row, and checks the chain on the way.
 *   collstats   coll id -> count u64 LE, first u64 LE, last u64 LE.
 *   entrycoll   seqno u64 BE -> coll id; lets truncation find the collection rows of the tail
 *               without scanning collections.
 *   meta        key -> bytes. Caller keys are C strings; this module's own keys start with a NUL
 *               byte (META_VERSION, META_NCOLL) so they can never clash with the caller's.
 *
 * Invariants (cl_index_check re-verifies all of them):
 *   I1 entries keys are 8 bytes, seqno >= 1; values are CL_INDEX_LOC_SIZE bytes.
 *   I2 entrycoll row (s, c) exists iff collections row c||0||s exists; c is a valid id.
 *   I3 for every collection c with rows, collstats[c] = (number of rows, smallest seqno, largest
 *      seqno); collstats has no other rows.
 *   I4 meta[META_NCOLL] (0 when absent) = number of collstats rows.
 *   I5 meta[META_VERSION] = IDX_FORMAT_VERSION.
 *   I6 the value of collections row c||0||s is the largest seqno below s with a row of c (0 when
 *      none): the rows of a collection form a chain, so a row lost from the middle shows.
 * Every write keeps them within one LMDB transaction, so they hold at every commit.
 */
#define _GNU_SOURCE /* sync_file_range */
#include "storage/index.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <lmdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/cursor.h"
#include "base/file.h"
#include "base/log.h"

#define IDX_FORMAT_VERSION 2 /* 2: collection rows name the row before them (I6) */
#define IDX_DEFAULT_MAP ((size_t)256 << 20)
#define COLL_KEY_MAX (CL_INDEX_COLL_MAX + 1 + 8)
#define STAT_SIZE 24

/* Internal: the write transaction ran out of map space. Caught by run_write, never returned. */
#define IDX_EGROW (-1000)

static const char META_VERSION[] = "\0cl_index.version";
static const char META_NCOLL[] = "\0cl_index.collections";

struct cl_index {
    MDB_env *env;
    MDB_dbi entries, colls, collstats, meta, entrycoll;
    MDB_txn *rtxn; /* reusable read transaction, kept reset between calls */
    size_t map_size;
    int rtxn_live;  /* rtxn holds a snapshot (not reset) */
    int in_read;    /* a read (and maybe its callback) is running */
    int batch_open; /* a cl_index_batch exists */
    unsigned commits_since_kick;
    unsigned reads_since_release;
    size_t release_at; /* next offset of the map whose mapping release_slice drops */
    size_t psize;      /* LMDB page size */
    char *map_base;    /* where LMDB mapped data.mdb (found by find_map; NULL: not known) */
    size_t map_len;
    int map_lookups; /* failed find_map calls: it gives up after a few */
};

/* Commits between writeback kicks of the data file (index opened MDB_NOSYNC: the pages written by
 * each commit stay dirty until the sync at chunk rollover; starting their writeback early keeps
 * that sync short). */
#define KICK_EVERY 64

/* The map's pages stay in this process's page tables once touched: every page a commit writes
 * (MDB_WRITEMAP writes in place) and every page a read visits. Left alone, the resident set grows
 * with the index (52 MB of a 115 MB file after 1M entries, 130-160 MB after 2M). So at every
 * writeback kick (KICK_EVERY commits) and every RELEASE_READS reads, the mapping of the next
 * 1/RELEASE_PARTS of the used part of the map (at least RELEASE_MIN bytes) is dropped
 * (MADV_DONTNEED), sweeping the whole of it every RELEASE_PARTS steps. The pages stay in the page
 * cache (MAP_SHARED: a dirty page keeps its dirty state and is still written back); the next
 * access maps a page again with a minor fault. What stays mapped is what the last RELEASE_PARTS
 * steps touched (at most RELEASE_PARTS * RELEASE_READS reads' pages), whatever the size of the
 * index. A step's cost is in the pages it finds mapped (~2.3 us each here, dirty ones included),
 * not in the bytes it covers: 256 MiB with nothing mapped took 2 us. So the work per step follows
 * what was touched since the sweep last passed, not the size of the index. */
#define RELEASE_PARTS 8
#define RELEASE_READS 4096
#define RELEASE_MIN ((size_t)1 << 20)

enum { OP_ENTRY = 1, OP_COLL = 2, OP_META = 3, OP_META_DEL = 4 };

/* Recorded operations, replayed in order at commit (and again after the map grows):
 *   OP_ENTRY    seqno u64, loc [CL_INDEX_LOC_SIZE]
 *   OP_COLL     seqno u64, lp16 id
 *   OP_META     lp16 key, lp32 value
 *   OP_META_DEL lp16 key */
struct cl_index_batch {
    cl_index *idx;
    cl_buf ops;
};

/* ---- encoding helpers ---- */

static void store_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t load_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void loc_encode(uint8_t out[CL_INDEX_LOC_SIZE], const cl_index_loc *l)
{
    memset(out, 0, CL_INDEX_LOC_SIZE);
    cl_store_u64(out, l->chunk_start);
    cl_store_u64(out + 8, l->offset);
    cl_store_u32(out + 16, l->length);
    cl_store_u64(out + 20, l->view);
    out[28] = l->type;
    out[29] = l->flags;
    /* out[30..39] reserved, zero */
}

static int loc_decode(const MDB_val *v, cl_index_loc *l)
{
    CL_ENSURE(v->mv_size == CL_INDEX_LOC_SIZE, CL_ECORRUPT);
    cl_cursor c;
    cl_cursor_init(&c, v->mv_data, v->mv_size);
    CL_TRY(cl_cursor_u64(&c, &l->chunk_start));
    CL_TRY(cl_cursor_u64(&c, &l->offset));
    CL_TRY(cl_cursor_u32(&c, &l->length));
    CL_TRY(cl_cursor_u64(&c, &l->view));
    CL_TRY(cl_cursor_u8(&c, &l->type));
    CL_TRY(cl_cursor_u8(&c, &l->flags));
    return CL_OK;
}

static void stat_encode(uint8_t out[STAT_SIZE], const cl_index_coll_stat *s)
{
    cl_store_u64(out, s->count);
    cl_store_u64(out + 8, s->first);
    cl_store_u64(out + 16, s->last);
}

static int stat_decode(const MDB_val *v, cl_index_coll_stat *s)
{
    CL_ENSURE(v->mv_size == STAT_SIZE, CL_ECORRUPT);
    const uint8_t *p = v->mv_data;
    s->count = cl_load_u64(p);
    s->first = cl_load_u64(p + 8);
    s->last = cl_load_u64(p + 16);
    CL_ENSURE(s->count > 0 && s->first >= 1 && s->first <= s->last, CL_ECORRUPT);
    return CL_OK;
}

static int coll_valid(const void *coll, size_t len)
{
    return coll != NULL && len >= 1 && len <= CL_INDEX_COLL_MAX && memchr(coll, 0, len) == NULL;
}

/* coll || 0x00 || seqno BE; returns the key length. */
static size_t coll_key(uint8_t *out, const void *coll, size_t len, uint64_t seqno)
{
    memcpy(out, coll, len);
    out[len] = 0;
    store_be64(out + len + 1, seqno);
    return len + 9;
}

static MDB_val mval(const void *p, size_t n)
{
    MDB_val v = {n, (void *)p};
    return v;
}

#define IKEY(k) mval((k), sizeof(k) - 1)

/* Maps an LMDB result to a cl_err. MDB_MAP_FULL becomes IDX_EGROW so run_write can grow. The
 * index's own damage (LMDB found a page or file it cannot read as a B-tree) is CL_ECORRUPT, like a
 * broken invariant: a rebuild from the chunks mends it. Every other LMDB failure (the reader table
 * full, a write that failed, ...) is CL_EDB: nothing says the rows are wrong. */
static int db_err(int mrc, const char *what)
{
    switch (mrc) {
    case MDB_SUCCESS:
        return CL_OK;
    case MDB_MAP_FULL:
        return IDX_EGROW;
    case MDB_NOTFOUND:
        return CL_ENOENT;
    case ENOMEM:
        return CL_ENOMEM;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
        cl_logf(CL_LOG_ERROR, "index: %s: %s", what, mdb_strerror(mrc));
        return CL_ECORRUPT;
    default:
        cl_logf(CL_LOG_ERROR, "index: %s: %s", what, mdb_strerror(mrc));
        return CL_EDB;
    }
}

static int meta_get_u64(MDB_txn *txn, MDB_dbi dbi, MDB_val key, uint64_t *out)
{
    MDB_val v;
    int mrc = mdb_get(txn, dbi, &key, &v);
    if (mrc == MDB_NOTFOUND) {
        *out = 0;
        return CL_OK;
    }
    CL_TRY(db_err(mrc, "meta get"));
    CL_ENSURE(v.mv_size == 8, CL_ECORRUPT);
    *out = cl_load_u64(v.mv_data);
    return CL_OK;
}

static int meta_put_u64(MDB_txn *txn, MDB_dbi dbi, MDB_val key, uint64_t x)
{
    uint8_t buf[8];
    cl_store_u64(buf, x);
    MDB_val v = mval(buf, 8);
    return db_err(mdb_put(txn, dbi, &key, &v, 0), "meta put");
}

/* ---- transactions ---- */

static void refresh_map_size(cl_index *idx)
{
    MDB_envinfo info;
    if (mdb_env_info(idx->env, &info) == MDB_SUCCESS)
        idx->map_size = info.me_mapsize;
}

/* mdb_env_set_mapsize on an open environment, which unmaps and maps the file again (possibly
 * elsewhere, possibly not at all if it fails): the mapping found by find_map is forgotten first,
 * so release_slice can never advise an address the index no longer owns. */
static int set_mapsize(cl_index *idx, size_t size, const char *what)
{
    idx->map_base = NULL;
    idx->map_len = 0;
    return db_err(mdb_env_set_mapsize(idx->env, size), what);
}

static int grow_map(cl_index *idx)
{
    CL_ENSURE(idx->map_size <= SIZE_MAX / 2, CL_EOVERFLOW);
    size_t want = idx->map_size * 2;
    CL_TRY(set_mapsize(idx, want, "grow map"));
    refresh_map_size(idx);
    cl_logf(CL_LOG_DEBUG, "index: map grown to %zu bytes", idx->map_size);
    return CL_OK;
}

/* Reads reuse one read transaction. It stays open (its snapshot current) between reads, because
 * every write to this environment goes through this handle and run_write resets it first: so a
 * read costs no renew/reset, and writes still reuse freed pages and may remap the file. */
static int rd_begin(cl_index *idx, MDB_txn **txn)
{
    CL_ENSURE(!idx->in_read, CL_ESTATE);
    if (!idx->rtxn_live && idx->rtxn != NULL && mdb_txn_renew(idx->rtxn) != MDB_SUCCESS) {
        mdb_txn_abort(idx->rtxn);
        idx->rtxn = NULL;
    }
    if (idx->rtxn == NULL) {
        int mrc = mdb_txn_begin(idx->env, NULL, MDB_RDONLY, &idx->rtxn);
        if (mrc == MDB_MAP_RESIZED) {
            CL_TRY(set_mapsize(idx, 0, "adopt map size"));
            refresh_map_size(idx);
            mrc = mdb_txn_begin(idx->env, NULL, MDB_RDONLY, &idx->rtxn);
        }
        if (mrc != MDB_SUCCESS) {
            idx->rtxn = NULL;
            return db_err(mrc, "read begin");
        }
    }
    idx->rtxn_live = 1;
    idx->in_read = 1;
    *txn = idx->rtxn;
    return CL_OK;
}

/* LMDB does not say where it mapped the file (mdb_env_info's me_mapaddr is the fixed address
 * recorded in the meta page, NULL here), so the mapping is looked up in /proc/self/maps by the
 * file's device and inode: once after open and once after each growth of the map (which
 * remaps). */
static void find_map(cl_index *idx, size_t map_size)
{
    idx->map_base = NULL;
    idx->map_len = 0;
    int fd = -1;
    struct stat st;
    if (idx->map_lookups >= 3 || mdb_env_get_fd(idx->env, &fd) != MDB_SUCCESS || fd < 0 ||
        fstat(fd, &st) != 0)
        return;
    FILE *f = fopen("/proc/self/maps", "r");
    if (f == NULL) {
        idx->map_lookups++;
        return;
    }
    char line[512];
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned long lo, hi, off, ino;
        unsigned maj, mnr;
        if (sscanf(line, "%lx-%lx %*s %lx %x:%x %lu", &lo, &hi, &off, &maj, &mnr, &ino) == 6 &&
            off == 0 && ino == (unsigned long)st.st_ino && maj == major(st.st_dev) &&
            mnr == minor(st.st_dev) && hi - lo == map_size) {
            idx->map_base = (char *)lo;
            idx->map_len = hi - lo;
            break;
        }
    }
    fclose(f);
    if (idx->map_base == NULL)
        idx->map_lookups++;
}

static void release_slice(cl_index *idx)
{
    MDB_envinfo info;
    if (idx->psize == 0 || mdb_env_info(idx->env, &info) != MDB_SUCCESS)
        return;
    if (idx->map_base == NULL || idx->map_len != info.me_mapsize)
        find_map(idx, info.me_mapsize);
    if (idx->map_base == NULL)
        return;
    size_t used = ((size_t)info.me_last_pgno + 1) * idx->psize;
    if (used > idx->map_len)
        used = idx->map_len;
    if (idx->release_at >= used)
        idx->release_at = 0;
    size_t step = (used / RELEASE_PARTS + idx->psize - 1) / idx->psize * idx->psize;
    if (step < RELEASE_MIN)
        step = RELEASE_MIN;
    size_t n = used - idx->release_at;
    if (n > step)
        n = step;
    /* advice only: a failure leaves the pages mapped, nothing else */
    (void)madvise(idx->map_base + idx->release_at, n, MADV_DONTNEED);
    idx->release_at += n;
    if (idx->release_at >= used) /* the sweep reached the end: the next step starts over */
        idx->release_at = 0;
}

static void rd_end(cl_index *idx)
{
    idx->in_read = 0;
    if (++idx->reads_since_release >= RELEASE_READS) {
        idx->reads_since_release = 0;
        release_slice(idx);
    }
}

/* Called before every write transaction: releases the read snapshot. */
static void rd_release(cl_index *idx)
{
    if (idx->rtxn_live) {
        mdb_txn_reset(idx->rtxn);
        idx->rtxn_live = 0;
    }
}

typedef int (*write_fn)(cl_index *idx, MDB_txn *txn, void *arg);

/* Runs fn in a write transaction and commits; on MDB_MAP_FULL (during fn or the commit) aborts,
 * doubles the map and runs fn again from the start in a fresh transaction. */
static int run_write(cl_index *idx, write_fn fn, void *arg)
{
    CL_ENSURE(!idx->in_read, CL_ESTATE);
    rd_release(idx);
    for (;;) {
        MDB_txn *txn = NULL;
        int mrc = mdb_txn_begin(idx->env, NULL, 0, &txn);
        if (mrc == MDB_MAP_RESIZED) {
            /* another process grew the map (should not happen: one process per index) */
            CL_TRY(set_mapsize(idx, 0, "adopt map size"));
            refresh_map_size(idx);
            continue;
        }
        CL_TRY(db_err(mrc, "write begin"));
        int rc = fn(idx, txn, arg);
        if (rc == CL_OK)
            rc = db_err(mdb_txn_commit(txn), "commit"); /* frees txn, also on failure */
        else
            mdb_txn_abort(txn);
        if (rc != IDX_EGROW)
            return rc;
        CL_TRY(grow_map(idx));
    }
}

/* ---- open / close ---- */

static int open_dbs(cl_index *idx, MDB_txn *txn, void *arg)
{
    (void)arg;
    CL_TRY(db_err(mdb_dbi_open(txn, "entries", MDB_CREATE, &idx->entries), "open entries"));
    CL_TRY(db_err(mdb_dbi_open(txn, "collections", MDB_CREATE, &idx->colls), "open collections"));
    CL_TRY(db_err(mdb_dbi_open(txn, "collstats", MDB_CREATE, &idx->collstats), "open collstats"));
    CL_TRY(db_err(mdb_dbi_open(txn, "meta", MDB_CREATE, &idx->meta), "open meta"));
    CL_TRY(db_err(mdb_dbi_open(txn, "entrycoll", MDB_CREATE, &idx->entrycoll), "open entrycoll"));
    MDB_val k = IKEY(META_VERSION), v;
    int mrc = mdb_get(txn, idx->meta, &k, &v);
    if (mrc == MDB_NOTFOUND)
        return meta_put_u64(txn, idx->meta, k, IDX_FORMAT_VERSION);
    CL_TRY(db_err(mrc, "read version"));
    CL_ENSURE(v.mv_size == 8 && cl_load_u64(v.mv_data) == IDX_FORMAT_VERSION, CL_EUNSUPPORTED);
    return CL_OK;
}

int cl_index_open(const char *dir, size_t map_size_bytes, cl_index **out)
{
    CL_ENSURE(dir != NULL && *dir != '\0' && out != NULL, CL_EINVAL);
    *out = NULL;
    CL_TRY(cl_mkdir_durable(dir, 0700)); /* an existing non-directory: CL_EIO */

    int rc = CL_OK;
    cl_index *idx = cl_calloc(1, sizeof(*idx));
    CL_ENSURE(idx != NULL, CL_ENOMEM);
    int mrc = mdb_env_create(&idx->env);
    if (mrc != MDB_SUCCESS) {
        idx->env = NULL;
        CL_GUARD(db_err(mrc, "env create"));
    }
    CL_GUARD(db_err(mdb_env_set_maxdbs(idx->env, 5), "set maxdbs"));
    CL_GUARD(
        db_err(mdb_env_set_mapsize(idx->env, map_size_bytes ? map_size_bytes : IDX_DEFAULT_MAP),
               "set mapsize"));
    /* Durability and the write map: see index.h. No readahead (MADV_RANDOM on the map): with
     * the write map the file is sparse up to the map size, and the first write to a new page
     * faulted in a readahead window of zero-filled pages around it, 30-38 ms of CPU on the loop
     * now and then (perf: filemap_fault -> page_cache_ra_order -> zero_user_segments). B-tree
     * pages are read at random anyway. */
    mrc = mdb_env_open(idx->env, dir,
                       MDB_NOSYNC | MDB_NOMETASYNC | MDB_NOTLS | MDB_WRITEMAP | MDB_MAPASYNC |
                           MDB_NORDAHEAD,
                       0600);
    if (mrc == EACCES || mrc == ENOENT || mrc == ENOTDIR || mrc == EROFS || mrc == EIO ||
        mrc == ENOSPC || mrc == EPERM)
        CL_GUARD(CL_EIO);
    CL_GUARD(db_err(mrc, "env open"));
    refresh_map_size(idx);
    MDB_stat est;
    if (mdb_env_stat(idx->env, &est) == MDB_SUCCESS)
        idx->psize = est.ms_psize; /* 0 (unknown): release_slice does nothing */
    CL_GUARD(run_write(idx, open_dbs, NULL));
    *out = idx;
    return CL_OK;
out:
    if (idx->env != NULL)
        mdb_env_close(idx->env);
    cl_free(idx);
    return rc;
}

void cl_index_close(cl_index *idx)
{
    if (idx == NULL)
        return;
    if (idx->rtxn != NULL)
        mdb_txn_abort(idx->rtxn);
    mdb_env_close(idx->env);
    cl_free(idx);
}

int cl_index_sync(cl_index *idx)
{
    CL_ENSURE(idx != NULL, CL_EINVAL);
    int mrc = mdb_env_sync(idx->env, 1);
    if (mrc != MDB_SUCCESS) {
        cl_logf(CL_LOG_ERROR, "index: sync: %s", mdb_strerror(mrc));
        return CL_EIO;
    }
    return CL_OK;
}

int cl_index_remove_files(const char *dir)
{
    CL_ENSURE(dir != NULL, CL_EINVAL);
    static const char *const names[] = {"data.mdb", "lock.mdb"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char path[PATH_MAX];
        int n = snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        CL_ENSURE(n > 0 && (size_t)n < sizeof(path), CL_EOVERFLOW);
        if (unlink(path) != 0 && errno != ENOENT)
            return CL_EIO;
    }
    return CL_OK;
}

size_t cl_index_map_size(const cl_index *idx) { return idx ? idx->map_size : 0; }

/* ---- batches ---- */

int cl_index_batch_begin(cl_index *idx, cl_index_batch **b)
{
    CL_ENSURE(idx != NULL && b != NULL, CL_EINVAL);
    *b = NULL;
    CL_ENSURE(!idx->batch_open, CL_ESTATE);
    cl_index_batch *nb = cl_calloc(1, sizeof(*nb));
    CL_ENSURE(nb != NULL, CL_ENOMEM);
    nb->idx = idx;
    cl_buf_init(&nb->ops);
    idx->batch_open = 1;
    *b = nb;
    return CL_OK;
}

void cl_index_batch_abort(cl_index_batch *b)
{
    if (b == NULL)
        return;
    b->idx->batch_open = 0;
    cl_buf_free(&b->ops);
    cl_free(b);
}

int cl_index_put_entry(cl_index_batch *b, uint64_t seqno, const cl_index_loc *loc)
{
    CL_ENSURE(b != NULL && loc != NULL && seqno >= 1, CL_EINVAL);
    uint8_t rec[1 + 8 + CL_INDEX_LOC_SIZE];
    rec[0] = OP_ENTRY;
    cl_store_u64(rec + 1, seqno);
    loc_encode(rec + 9, loc);
    return cl_buf_append(&b->ops, rec, sizeof(rec));
}

int cl_index_put_collection(cl_index_batch *b, const char *coll, size_t len, uint64_t seqno)
{
    CL_ENSURE(b != NULL && seqno >= 1 && coll_valid(coll, len), CL_EINVAL);
    uint8_t hdr[1 + 8];
    hdr[0] = OP_COLL;
    cl_store_u64(hdr + 1, seqno);
    size_t mark = b->ops.len;
    int rc = cl_buf_reserve(&b->ops, sizeof(hdr) + 2 + len);
    if (rc == CL_OK)
        rc = cl_buf_append(&b->ops, hdr, sizeof(hdr));
    if (rc == CL_OK)
        rc = cl_buf_lp16(&b->ops, coll, len);
    if (rc != CL_OK)
        b->ops.len = mark;
    return rc;
}

int cl_index_put_meta(cl_index_batch *b, const char *key, const void *val, size_t len)
{
    CL_ENSURE(b != NULL && key != NULL && (val != NULL || len == 0), CL_EINVAL);
    size_t klen = strlen(key);
    CL_ENSURE(klen >= 1 && klen <= CL_INDEX_META_KEY_MAX, CL_EINVAL);
    CL_ENSURE(len <= UINT32_MAX, CL_EOVERFLOW);
    size_t mark = b->ops.len;
    int rc = cl_buf_reserve(&b->ops, 1 + 2 + klen + 4 + len);
    if (rc == CL_OK)
        rc = cl_buf_u8(&b->ops, OP_META);
    if (rc == CL_OK)
        rc = cl_buf_lp16(&b->ops, key, klen);
    if (rc == CL_OK)
        rc = cl_buf_lp32(&b->ops, val, len);
    if (rc != CL_OK)
        b->ops.len = mark;
    return rc;
}

int cl_index_del_meta(cl_index_batch *b, const char *key)
{
    CL_ENSURE(b != NULL && key != NULL, CL_EINVAL);
    size_t klen = strlen(key);
    CL_ENSURE(klen >= 1 && klen <= CL_INDEX_META_KEY_MAX, CL_EINVAL);
    size_t mark = b->ops.len;
    int rc = cl_buf_reserve(&b->ops, 1 + 2 + klen);
    if (rc == CL_OK)
        rc = cl_buf_u8(&b->ops, OP_META_DEL);
    if (rc == CL_OK)
        rc = cl_buf_lp16(&b->ops, key, klen);
    if (rc != CL_OK)
        b->ops.len = mark;
    return rc;
}

/* State of one replay of a batch. The collstats row being updated is cached in slot_* so a run of
 * puts to one collection reads and writes its row once. */
typedef struct {
    const cl_buf *ops;
    MDB_cursor *ent, *ec, *col;
    uint64_t ent_last, ec_last; /* largest key in entries / entrycoll, 0 when empty */
    int64_t ncoll_delta;
    int slot_valid;
    size_t slot_len;
    uint8_t slot_id[CL_INDEX_COLL_MAX];
    cl_index_coll_stat slot;
} apply_ctx;

static int last_seqno_of(MDB_cursor *cur, uint64_t *out)
{
    MDB_val k, v;
    int mrc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    if (mrc == MDB_NOTFOUND) {
        *out = 0;
        return CL_OK;
    }
    CL_TRY(db_err(mrc, "last key"));
    CL_ENSURE(k.mv_size == 8, CL_ECORRUPT);
    *out = load_be64(k.mv_data);
    return CL_OK;
}

static int stat_load(cl_index *idx, MDB_txn *txn, const void *coll, size_t len,
                     cl_index_coll_stat *st)
{
    MDB_val k = mval(coll, len), v;
    int mrc = mdb_get(txn, idx->collstats, &k, &v);
    if (mrc == MDB_NOTFOUND) {
        memset(st, 0, sizeof(*st));
        return CL_OK;
    }
    CL_TRY(db_err(mrc, "collstats get"));
    return stat_decode(&v, st);
}

static int stat_store(cl_index *idx, MDB_txn *txn, const void *coll, size_t len,
                      const cl_index_coll_stat *st)
{
    uint8_t buf[STAT_SIZE];
    stat_encode(buf, st);
    MDB_val k = mval(coll, len), v = mval(buf, sizeof(buf));
    return db_err(mdb_put(txn, idx->collstats, &k, &v, 0), "collstats put");
}

static int slot_flush(cl_index *idx, MDB_txn *txn, apply_ctx *a)
{
    if (!a->slot_valid)
        return CL_OK;
    a->slot_valid = 0;
    return stat_store(idx, txn, a->slot_id, a->slot_len, &a->slot);
}

static int apply_entry(cl_index *idx, apply_ctx *a, cl_cursor *c)
{
    uint64_t seqno;
    const uint8_t *rec;
    CL_TRY(cl_cursor_u64(c, &seqno));
    CL_TRY(cl_cursor_view(c, &rec, CL_INDEX_LOC_SIZE));
    uint8_t kb[8];
    store_be64(kb, seqno);
    MDB_val k = mval(kb, 8), v = mval(rec, CL_INDEX_LOC_SIZE);
    unsigned flags = 0;
    if (seqno > a->ent_last) {
        flags = MDB_APPEND;
        a->ent_last = seqno;
    }
    (void)idx;
    return db_err(mdb_cursor_put(a->ent, &k, &v, flags), "entries put");
}

static int apply_coll(cl_index *idx, MDB_txn *txn, apply_ctx *a, cl_cursor *c)
{
    uint64_t seqno;
    const uint8_t *coll;
    size_t len;
    CL_TRY(cl_cursor_u64(c, &seqno));
    CL_TRY(cl_cursor_lp16(c, &coll, &len));

    uint8_t kb[8];
    store_be64(kb, seqno);
    MDB_val k = mval(kb, 8), v = mval(coll, len);
    if (seqno > a->ec_last) {
        CL_TRY(db_err(mdb_cursor_put(a->ec, &k, &v, MDB_APPEND), "entrycoll put"));
        a->ec_last = seqno;
    } else {
        MDB_val old;
        int mrc = mdb_get(txn, idx->entrycoll, &k, &old);
        if (mrc == MDB_SUCCESS) {
            if (old.mv_size == len && memcmp(old.mv_data, coll, len) == 0)
                return CL_OK; /* already indexed: idempotent */
            return CL_EEXIST;
        }
        if (mrc != MDB_NOTFOUND)
            return db_err(mrc, "entrycoll get");
        CL_TRY(db_err(mdb_cursor_put(a->ec, &k, &v, 0), "entrycoll put"));
    }

    if (!a->slot_valid || a->slot_len != len || memcmp(a->slot_id, coll, len) != 0) {
        CL_TRY(slot_flush(idx, txn, a));
        CL_TRY(stat_load(idx, txn, coll, len, &a->slot));
        memcpy(a->slot_id, coll, len);
        a->slot_len = len;
        a->slot_valid = 1;
    }
    cl_index_coll_stat *st = &a->slot;

    /* The row's value is the seqno of the collection's row before it (I6). Appends, the normal
     * case, take it from the statistics; a row put below the collection's last takes it from the
     * row after it, which then points at the new row. */
    uint8_t ckb[COLL_KEY_MAX], pb[8];
    MDB_val ck = mval(ckb, coll_key(ckb, coll, len, seqno)), pv = mval(pb, 8);
    if (st->count == 0 || seqno > st->last) {
        store_be64(pb, st->count == 0 ? 0 : st->last);
    } else {
        MDB_val nk = ck, nv;
        int nrc = mdb_cursor_get(a->col, &nk, &nv, MDB_SET_RANGE);
        if (nrc != MDB_NOTFOUND)
            CL_TRY(db_err(nrc, "collections next"));
        /* the statistics promise a later row whose link passes over seqno; a row at seqno itself
         * has no entrycoll row (I2 broken) */
        CL_ENSURE(nrc == MDB_SUCCESS && nk.mv_size == len + 9 &&
                      memcmp(nk.mv_data, ckb, len + 1) == 0 && nv.mv_size == 8 &&
                      load_be64(nv.mv_data) < seqno &&
                      load_be64((const uint8_t *)nk.mv_data + len + 1) > seqno,
                  CL_ECORRUPT);
        memcpy(pb, nv.mv_data, 8);
        uint8_t sb[8];
        store_be64(sb, seqno);
        MDB_val sv = mval(sb, 8);
        CL_TRY(db_err(mdb_cursor_put(a->col, &nk, &sv, MDB_CURRENT), "collections relink"));
    }
    int mrc = mdb_cursor_put(a->col, &ck, &pv, MDB_NOOVERWRITE);
    if (mrc == MDB_KEYEXIST)
        return CL_ECORRUPT; /* row without its entrycoll row: I2 broken */
    CL_TRY(db_err(mrc, "collections put"));

    if (st->count == 0) {
        st->first = st->last = seqno;
        a->ncoll_delta++;
    } else {
        if (seqno < st->first)
            st->first = seqno;
        if (seqno > st->last)
            st->last = seqno;
    }
    st->count++;
    return CL_OK;
}

static int apply_meta(cl_index *idx, MDB_txn *txn, cl_cursor *c)
{
    const uint8_t *key, *val;
    size_t klen, vlen;
    CL_TRY(cl_cursor_lp16(c, &key, &klen));
    CL_TRY(cl_cursor_lp32(c, &val, &vlen));
    MDB_val k = mval(key, klen), v = mval(val, vlen);
    return db_err(mdb_put(txn, idx->meta, &k, &v, 0), "meta put");
}

static int apply_meta_del(cl_index *idx, MDB_txn *txn, cl_cursor *c)
{
    const uint8_t *key;
    size_t klen;
    CL_TRY(cl_cursor_lp16(c, &key, &klen));
    MDB_val k = mval(key, klen);
    int mrc = mdb_del(txn, idx->meta, &k, NULL);
    return mrc == MDB_NOTFOUND ? CL_OK : db_err(mrc, "meta del");
}

static int update_ncoll(cl_index *idx, MDB_txn *txn, int64_t delta)
{
    if (delta == 0)
        return CL_OK;
    uint64_t n;
    CL_TRY(meta_get_u64(txn, idx->meta, IKEY(META_NCOLL), &n));
    CL_ENSURE(delta > 0 || n >= (uint64_t)-delta, CL_ECORRUPT);
    return meta_put_u64(txn, idx->meta, IKEY(META_NCOLL), n + (uint64_t)delta);
}

static int apply_batch(cl_index *idx, MDB_txn *txn, void *arg)
{
    apply_ctx a;
    memset(&a, 0, sizeof(a));
    a.ops = arg;
    int rc = CL_OK;
    CL_GUARD(db_err(mdb_cursor_open(txn, idx->entries, &a.ent), "cursor"));
    CL_GUARD(db_err(mdb_cursor_open(txn, idx->entrycoll, &a.ec), "cursor"));
    CL_GUARD(db_err(mdb_cursor_open(txn, idx->colls, &a.col), "cursor"));
    CL_GUARD(last_seqno_of(a.ent, &a.ent_last));
    CL_GUARD(last_seqno_of(a.ec, &a.ec_last));

    cl_cursor c;
    cl_cursor_init(&c, a.ops->data, a.ops->len);
    while (cl_cursor_left(&c) > 0) {
        uint8_t op;
        CL_GUARD(cl_cursor_u8(&c, &op));
        switch (op) {
        case OP_ENTRY:
            CL_GUARD(apply_entry(idx, &a, &c));
            break;
        case OP_COLL:
            CL_GUARD(apply_coll(idx, txn, &a, &c));
            break;
        case OP_META:
            CL_GUARD(apply_meta(idx, txn, &c));
            break;
        case OP_META_DEL:
            CL_GUARD(apply_meta_del(idx, txn, &c));
            break;
        default:
            CL_GUARD(CL_EINVAL); /* cannot happen: we wrote the buffer */
        }
    }
    CL_GUARD(slot_flush(idx, txn, &a));
    CL_GUARD(update_ncoll(idx, txn, a.ncoll_delta));
out:
    /* LMDB would free write-transaction cursors with the transaction; closing them here keeps
     * ownership local to this function */
    if (a.col)
        mdb_cursor_close(a.col);
    if (a.ec)
        mdb_cursor_close(a.ec);
    if (a.ent)
        mdb_cursor_close(a.ent);
    return rc;
}

int cl_index_batch_commit(cl_index_batch *b)
{
    CL_ENSURE(b != NULL, CL_EINVAL);
    int rc = CL_OK;
    if (b->ops.len > 0)
        rc = run_write(b->idx, apply_batch, &b->ops);
    if (rc == CL_OK && b->ops.len > 0 && ++b->idx->commits_since_kick >= KICK_EVERY) {
        int fd = -1;
        b->idx->commits_since_kick = 0;
        if (mdb_env_get_fd(b->idx->env, &fd) == MDB_SUCCESS && fd >= 0)
            (void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE); /* a hint */
        release_slice(b->idx);
    }
    cl_index_batch_abort(b);
    return rc;
}

/* ---- truncation ---- */

static int do_truncate(cl_index *idx, MDB_txn *txn, void *arg)
{
    uint64_t from = *(const uint64_t *)arg;
    MDB_cursor *ec = NULL, *col = NULL, *ent = NULL;
    int64_t ncoll_delta = 0;
    int rc = CL_OK;
    CL_GUARD(db_err(mdb_cursor_open(txn, idx->entrycoll, &ec), "cursor"));
    CL_GUARD(db_err(mdb_cursor_open(txn, idx->colls, &col), "cursor"));
    CL_GUARD(db_err(mdb_cursor_open(txn, idx->entries, &ent), "cursor"));

    /* Newest first: when row (c, s) goes, s is the largest remaining seqno of c, so the new
     * "last" of c is simply the row before c||0||s. */
    for (;;) {
        MDB_val k, v;
        int mrc = mdb_cursor_get(ec, &k, &v, MDB_LAST);
        if (mrc == MDB_NOTFOUND)
            break;
        CL_GUARD(db_err(mrc, "entrycoll last"));
        CL_GUARD_IF(k.mv_size != 8 || !coll_valid(v.mv_data, v.mv_size), CL_ECORRUPT);
        uint64_t s = load_be64(k.mv_data);
        if (s < from)
            break;
        uint8_t id[CL_INDEX_COLL_MAX];
        size_t len = v.mv_size;
        memcpy(id, v.mv_data, len); /* v points into a page the deletes below may change */
        CL_GUARD(db_err(mdb_cursor_del(ec, 0), "entrycoll del"));

        uint8_t ckb[COLL_KEY_MAX];
        MDB_val ck = mval(ckb, coll_key(ckb, id, len, s));
        mrc = mdb_del(txn, idx->colls, &ck, NULL);
        CL_GUARD_IF(mrc == MDB_NOTFOUND, CL_ECORRUPT);
        CL_GUARD(db_err(mrc, "collections del"));

        cl_index_coll_stat st;
        CL_GUARD(stat_load(idx, txn, id, len, &st));
        CL_GUARD_IF(st.count == 0, CL_ECORRUPT);
        if (--st.count == 0) {
            MDB_val sk = mval(id, len);
            CL_GUARD(db_err(mdb_del(txn, idx->collstats, &sk, NULL), "collstats del"));
            ncoll_delta--;
            continue;
        }
        MDB_val pk = ck, pv;
        mrc = mdb_cursor_get(col, &pk, &pv, MDB_SET_RANGE);
        if (mrc == MDB_SUCCESS)
            mrc = mdb_cursor_get(col, &pk, &pv, MDB_PREV);
        else if (mrc == MDB_NOTFOUND)
            mrc = mdb_cursor_get(col, &pk, &pv, MDB_LAST);
        CL_GUARD_IF(mrc == MDB_NOTFOUND, CL_ECORRUPT);
        CL_GUARD(db_err(mrc, "collections prev"));
        CL_GUARD_IF(pk.mv_size != len + 9 || memcmp(pk.mv_data, ckb, len + 1) != 0, CL_ECORRUPT);
        st.last = load_be64((const uint8_t *)pk.mv_data + len + 1);
        CL_GUARD_IF(st.last < st.first, CL_ECORRUPT);
        CL_GUARD(stat_store(idx, txn, id, len, &st));
    }

    for (;;) {
        uint64_t last;
        CL_GUARD(last_seqno_of(ent, &last));
        if (last == 0 || last < from)
            break;
        CL_GUARD(db_err(mdb_cursor_del(ent, 0), "entries del"));
    }
    CL_GUARD(update_ncoll(idx, txn, ncoll_delta));
out:
    if (ent)
        mdb_cursor_close(ent);
    if (col)
        mdb_cursor_close(col);
    if (ec)
        mdb_cursor_close(ec);
    return rc;
}

int cl_index_truncate_from(cl_index *idx, uint64_t seqno)
{
    CL_ENSURE(idx != NULL && seqno >= 1, CL_EINVAL);
    CL_ENSURE(!idx->batch_open, CL_ESTATE);
    return run_write(idx, do_truncate, &seqno);
}

typedef struct {
    uint64_t from;
    const cl_buf *ops;
} truncate_then;

static int do_truncate_then(cl_index *idx, MDB_txn *txn, void *arg)
{
    truncate_then *t = arg;
    CL_TRY(do_truncate(idx, txn, &t->from));
    return t->ops->len > 0 ? apply_batch(idx, txn, (void *)t->ops) : CL_OK;
}

int cl_index_truncate_from_then(cl_index *idx, uint64_t seqno, cl_index_batch *b)
{
    if (b == NULL)
        return cl_index_truncate_from(idx, seqno);
    int rc = CL_EINVAL;
    if (idx != NULL && seqno >= 1 && b->idx == idx) {
        truncate_then t = {seqno, &b->ops};
        rc = run_write(idx, do_truncate_then, &t);
    }
    cl_index_batch_abort(b);
    return rc;
}

/* ---- reads ---- */

int cl_index_get_entry(cl_index *idx, uint64_t seqno, cl_index_loc *out)
{
    CL_ENSURE(idx != NULL && out != NULL, CL_EINVAL);
    MDB_txn *txn;
    CL_TRY(rd_begin(idx, &txn));
    uint8_t kb[8];
    store_be64(kb, seqno);
    MDB_val k = mval(kb, 8), v;
    int rc = db_err(mdb_get(txn, idx->entries, &k, &v), "entries get");
    if (rc == CL_OK)
        rc = loc_decode(&v, out);
    rd_end(idx);
    return rc;
}

int cl_index_last_seqno(cl_index *idx, uint64_t *out)
{
    CL_ENSURE(idx != NULL && out != NULL, CL_EINVAL);
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    CL_TRY(rd_begin(idx, &txn));
    int rc = db_err(mdb_cursor_open(txn, idx->entries, &cur), "cursor");
    if (rc == CL_OK)
        rc = last_seqno_of(cur, out);
    if (cur)
        mdb_cursor_close(cur);
    rd_end(idx);
    return rc;
}

int cl_index_collection_scan(cl_index *idx, const char *coll, size_t len, uint64_t from_seqno,
                             uint64_t to_seqno, size_t limit, cl_index_seqno_cb cb, void *arg,
                             uint64_t *next_seqno)
{
    CL_ENSURE(idx != NULL && cb != NULL && coll_valid(coll, len), CL_EINVAL);
    if (next_seqno)
        *next_seqno = 0;
    if (from_seqno > to_seqno)
        return CL_OK;
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    CL_TRY(rd_begin(idx, &txn));
    int rc = CL_OK;
    CL_GUARD(db_err(mdb_cursor_open(txn, idx->colls, &cur), "cursor"));

    /* The rows are held to the collection's statistics on the way: each in order and within its
     * last seqno, and rows that run out inside the range must have reached that last seqno (or
     * none was due). Each row names the row before it (I6): the first row read must name one
     * before the range (0 only for the collection's first), every later row the row read before
     * it. So a damaged page of rows cannot end a listing early, skip a row inside it, or pass on a
     * row from beyond the collection, without a word. */
    cl_index_coll_stat st;
    CL_GUARD(stat_load(idx, txn, coll, len, &st));
    uint8_t kb[COLL_KEY_MAX];
    MDB_val k = mval(kb, coll_key(kb, coll, len, from_seqno)), v;
    int mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    size_t n = 0;
    int stop = 0, rows_ended = 1;
    uint64_t read = 0; /* the last row read */
    while (mrc == MDB_SUCCESS) {
        if (k.mv_size != len + 9 || memcmp(k.mv_data, kb, len + 1) != 0)
            break;
        uint64_t s = load_be64((const uint8_t *)k.mv_data + len + 1);
        if (s < from_seqno || s <= read || s > st.last) {
            cl_logf(CL_LOG_ERROR,
                    "index: a collection row is out of order (%" PRIu64 " after %" PRIu64
                    ", scanning from %" PRIu64 ", the collection's last is %" PRIu64 ")",
                    s, read, from_seqno, st.last);
            CL_GUARD(CL_ECORRUPT);
        }
        uint64_t before = v.mv_size == 8 ? load_be64(v.mv_data) : UINT64_MAX;
        if (read != 0 ? before != read
                      : (before != 0 && before >= from_seqno) || (before == 0) != (s == st.first)) {
            if (read != 0)
                cl_logf(CL_LOG_ERROR,
                        "index: collection row %" PRIu64 " names %" PRIu64
                        " as the row before it, but the row before it is %" PRIu64
                        " (a row is missing or damaged)",
                        s, before, read);
            else
                cl_logf(CL_LOG_ERROR,
                        "index: collection row %" PRIu64 ", the first from %" PRIu64
                        ", names %" PRIu64
                        " as the row before it (the collection's first is %" PRIu64
                        "; a row is missing or damaged)",
                        s, from_seqno, before, st.first);
            CL_GUARD(CL_ECORRUPT);
        }
        read = s;
        if (s > to_seqno) {
            rows_ended = 0;
            break;
        }
        if (stop || (limit != 0 && n == limit)) {
            if (next_seqno)
                *next_seqno = s;
            rows_ended = 0;
            break;
        }
        int r = cb(arg, s);
        n++;
        if (r < 0)
            CL_GUARD(r);
        stop = r > 0;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND)
        CL_GUARD(db_err(mrc, "collections scan"));
    if (rows_ended) {
        /* the rows ran out (read is then the last one passed to cb) */
        if (read == 0 ? st.count != 0 && st.last >= from_seqno : read != st.last) {
            cl_logf(CL_LOG_ERROR,
                    "index: the rows of a collection end at %" PRIu64
                    " but its statistics say %" PRIu64,
                    read, st.last);
            CL_GUARD(CL_ECORRUPT);
        }
    }
out:
    if (cur)
        mdb_cursor_close(cur);
    rd_end(idx);
    return rc;
}

int cl_index_collection_stat(cl_index *idx, const char *coll, size_t len, cl_index_coll_stat *out)
{
    CL_ENSURE(idx != NULL && out != NULL && coll_valid(coll, len), CL_EINVAL);
    MDB_txn *txn;
    CL_TRY(rd_begin(idx, &txn));
    int rc = stat_load(idx, txn, coll, len, out);
    if (rc == CL_OK && out->count == 0)
        rc = CL_ENOENT;
    rd_end(idx);
    return rc;
}

int cl_index_collections_list(cl_index *idx, cl_index_coll_cb cb, void *arg)
{
    CL_ENSURE(idx != NULL && cb != NULL, CL_EINVAL);
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    CL_TRY(rd_begin(idx, &txn));
    int rc = CL_OK;
    CL_GUARD(db_err(mdb_cursor_open(txn, idx->collstats, &cur), "cursor"));
    MDB_val k, v;
    int mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (mrc == MDB_SUCCESS) {
        cl_index_coll_stat st;
        CL_GUARD(stat_decode(&v, &st));
        int r = cb(arg, k.mv_data, k.mv_size, st.count);
        CL_GUARD(r);
        if (r > 0)
            goto out;
        mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (mrc != MDB_NOTFOUND)
        CL_GUARD(db_err(mrc, "collstats scan"));
out:
    if (cur)
        mdb_cursor_close(cur);
    rd_end(idx);
    return rc;
}

int cl_index_collection_count(cl_index *idx, size_t *n)
{
    CL_ENSURE(idx != NULL && n != NULL, CL_EINVAL);
    MDB_txn *txn;
    CL_TRY(rd_begin(idx, &txn));
    uint64_t x = 0;
    int rc = meta_get_u64(txn, idx->meta, IKEY(META_NCOLL), &x);
    rd_end(idx);
    CL_TRY(rc);
    CL_ENSURE(x <= SIZE_MAX, CL_EOVERFLOW);
    *n = (size_t)x;
    return CL_OK;
}

int cl_index_get_meta(cl_index *idx, const char *key, void *buf, size_t cap, size_t *len)
{
    CL_ENSURE(idx != NULL && key != NULL && len != NULL && (buf != NULL || cap == 0), CL_EINVAL);
    size_t klen = strlen(key);
    CL_ENSURE(klen >= 1 && klen <= CL_INDEX_META_KEY_MAX, CL_EINVAL);
    MDB_txn *txn;
    CL_TRY(rd_begin(idx, &txn));
    MDB_val k = mval(key, klen), v;
    int rc = db_err(mdb_get(txn, idx->meta, &k, &v), "meta get");
    if (rc == CL_OK) {
        *len = v.mv_size;
        if (v.mv_size > cap)
            rc = CL_EOVERFLOW;
        else if (v.mv_size > 0)
            memcpy(buf, v.mv_data, v.mv_size);
    }
    rd_end(idx);
    return rc;
}

/* ---- invariant check ---- */

static int check_entries(cl_index *idx, MDB_txn *txn, MDB_cursor *cur)
{
    (void)idx;
    (void)txn;
    MDB_val k, v;
    int mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    for (; mrc == MDB_SUCCESS; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        CL_ENSURE(k.mv_size == 8 && load_be64(k.mv_data) >= 1, CL_ECORRUPT); /* I1 */
        CL_ENSURE(v.mv_size == CL_INDEX_LOC_SIZE, CL_ECORRUPT);
    }
    return mrc == MDB_NOTFOUND ? CL_OK : db_err(mrc, "check entries");
}

static int check_entrycoll(cl_index *idx, MDB_txn *txn, MDB_cursor *cur, uint64_t *rows)
{
    MDB_val k, v;
    *rows = 0;
    int mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    for (; mrc == MDB_SUCCESS; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        CL_ENSURE(k.mv_size == 8 && coll_valid(v.mv_data, v.mv_size), CL_ECORRUPT);
        uint8_t ckb[COLL_KEY_MAX];
        MDB_val ck = mval(ckb, coll_key(ckb, v.mv_data, v.mv_size, load_be64(k.mv_data))), cv;
        int r = mdb_get(txn, idx->colls, &ck, &cv);
        CL_ENSURE(r != MDB_NOTFOUND, CL_ECORRUPT); /* I2 */
        CL_TRY(db_err(r, "check entrycoll"));
        (*rows)++;
    }
    return mrc == MDB_NOTFOUND ? CL_OK : db_err(mrc, "check entrycoll");
}

/* Compares one run of collection rows with its collstats row (I3). */
static int check_group(cl_index *idx, MDB_txn *txn, const uint8_t *id, size_t len,
                       const cl_index_coll_stat *want)
{
    cl_index_coll_stat st;
    CL_TRY(stat_load(idx, txn, id, len, &st));
    CL_ENSURE(st.count == want->count && st.first == want->first && st.last == want->last,
              CL_ECORRUPT);
    return CL_OK;
}

static int check_colls(cl_index *idx, MDB_txn *txn, MDB_cursor *cur, uint64_t *rows,
                       uint64_t *groups)
{
    MDB_val k, v;
    uint8_t id[CL_INDEX_COLL_MAX];
    size_t idlen = 0;
    cl_index_coll_stat g = {0, 0, 0};
    *rows = *groups = 0;
    int mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    for (; mrc == MDB_SUCCESS; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const uint8_t *p = k.mv_data;
        CL_ENSURE(k.mv_size >= 10 && p[k.mv_size - 9] == 0, CL_ECORRUPT);
        size_t len = k.mv_size - 9;
        CL_ENSURE(coll_valid(p, len), CL_ECORRUPT);
        uint64_t s = load_be64(p + len + 1);
        uint8_t kb[8];
        store_be64(kb, s);
        MDB_val ek = mval(kb, 8), ev;
        int r = mdb_get(txn, idx->entrycoll, &ek, &ev);
        CL_ENSURE(r != MDB_NOTFOUND, CL_ECORRUPT); /* I2 */
        CL_TRY(db_err(r, "check collections"));
        CL_ENSURE(ev.mv_size == len && memcmp(ev.mv_data, p, len) == 0, CL_ECORRUPT);
        if (g.count == 0 || idlen != len || memcmp(id, p, len) != 0) {
            if (g.count > 0)
                CL_TRY(check_group(idx, txn, id, idlen, &g));
            memcpy(id, p, len);
            idlen = len;
            g.count = 0;
            g.first = s;
            (*groups)++;
        }
        CL_ENSURE(v.mv_size == 8 && load_be64(v.mv_data) == (g.count == 0 ? 0 : g.last),
                  CL_ECORRUPT); /* I6 */
        g.count++;
        g.last = s;
        (*rows)++;
    }
    CL_ENSURE(mrc == MDB_NOTFOUND, db_err(mrc, "check collections"));
    if (g.count > 0)
        CL_TRY(check_group(idx, txn, id, idlen, &g));
    return CL_OK;
}

static int check_all(cl_index *idx, MDB_txn *txn)
{
    MDB_stat ms;
    uint64_t ec_rows, col_rows, groups, ncoll, version;
    MDB_cursor *cur = NULL;
    int rc = CL_OK;
    CL_GUARD(db_err(mdb_cursor_open(txn, idx->entries, &cur), "cursor"));
    CL_GUARD(check_entries(idx, txn, cur));
    mdb_cursor_close(cur);
    cur = NULL;
    CL_GUARD(db_err(mdb_cursor_open(txn, idx->entrycoll, &cur), "cursor"));
    CL_GUARD(check_entrycoll(idx, txn, cur, &ec_rows));
    mdb_cursor_close(cur);
    cur = NULL;
    CL_GUARD(db_err(mdb_cursor_open(txn, idx->colls, &cur), "cursor"));
    CL_GUARD(check_colls(idx, txn, cur, &col_rows, &groups));
    CL_GUARD_IF(ec_rows != col_rows, CL_ECORRUPT); /* I2 */
    CL_GUARD(db_err(mdb_stat(txn, idx->collstats, &ms), "stat"));
    CL_GUARD_IF(ms.ms_entries != groups, CL_ECORRUPT); /* I3: no stray stats rows */
    CL_GUARD(meta_get_u64(txn, idx->meta, IKEY(META_NCOLL), &ncoll));
    CL_GUARD_IF(ncoll != groups, CL_ECORRUPT); /* I4 */
    CL_GUARD(meta_get_u64(txn, idx->meta, IKEY(META_VERSION), &version));
    CL_GUARD_IF(version != IDX_FORMAT_VERSION, CL_ECORRUPT); /* I5 */
out:
    if (cur)
        mdb_cursor_close(cur);
    return rc;
}

int cl_index_check(cl_index *idx)
{
    CL_ENSURE(idx != NULL, CL_EINVAL);
    MDB_txn *txn;
    CL_TRY(rd_begin(idx, &txn));
    int rc = check_all(idx, txn);
    rd_end(idx);
    return rc;
}
