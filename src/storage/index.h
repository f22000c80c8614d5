/*
 * index.h — the ledger index: seqno -> entry location, collection -> seqnos, and a little
 * bookkeeping for the ledger engine, kept in one LMDB environment (ARCHITECTURE.md §4, §6).
 *
 * Ownership and threads. cl_index_open allocates the handle; cl_index_close frees it (close of NULL
 * is a no-op). A cl_index_batch is allocated by cl_index_batch_begin and freed by exactly one of
 * cl_index_batch_commit / cl_index_batch_abort (commit frees it whether it succeeds or not); every
 * batch must be finished before cl_index_close. All pointers passed in (dir, collection ids, meta
 * keys and values, locations) are borrowed for the duration of the call only: the batch copies
 * what it needs. Pointers handed to callbacks point into the database map and are valid only until
 * the callback returns. A handle is NOT thread-safe: calls on one handle must be serialised by the
 * caller, but because the environment uses MDB_NOTLS the handle may move between threads (e.g. the
 * loop thread and a worker) between calls. Callbacks must not call back into the same handle
 * (CL_ESTATE). Open each index directory at most once per process (an LMDB rule); the engine's
 * directory lock keeps other processes out.
 *
 * Durability. The ledger chunk files are the source of truth and are fsynced on their own, so the
 * environment is opened with MDB_NOSYNC | MDB_NOMETASYNC, and with MDB_WRITEMAP | MDB_MAPASYNC so
 * that a commit writes its pages straight into the shared mapping instead of one pwrite(2) per
 * dirty page (about ten per commit; the ledger commits once per consensus batch), which also makes
 * the data file as long as the map (sparse). Either way a commit reaches the OS page cache but
 * not the disk. A process crash loses nothing; an OS crash or power cut may lose the last commits
 * or leave the index torn: unreadable, or (a page the disk never got reads back as an older one)
 * readable with stale rows that no check can tell from fresh ones. After a restart the engine
 * therefore (1) rebuilds the index from the chunks (cl_index_remove_files, then put calls) when it
 * was open while the operating system stopped (ledger.c, "the index marker"), or when
 * cl_index_open or any later call fails with CL_ECORRUPT (the index is damaged: LMDB cannot read a
 * page, or rows break the invariants of index.c) or, while it is brought up to date at open, with
 * CL_EDB (any other LMDB failure), and (2) compares cl_index_last_seqno with the
 * ledger's last seqno, re-indexes the missing tail with put calls and, if the index is ahead of a
 * ledger whose tail was rolled back, calls cl_index_truncate_from. cl_index_sync forces everything
 * committed so far to disk (e.g. at a checkpoint or clean shutdown).
 *
 * Map size. LMDB needs a maximum map size up front; this module grows it on demand. A batch records
 * its operations in memory (bounded by what the caller puts in it) and applies them in one write
 * transaction at commit; if LMDB reports MDB_MAP_FULL, the transaction is aborted, the map size is
 * doubled and the recorded operations are replayed into a fresh transaction. Truncation retries the
 * same way. Growth is transparent to callers; it fails only if the address space or disk runs out.
 *
 * Keys. Seqnos start at 1 (0 is rejected with CL_EINVAL; 0 is "none" in results). A collection id
 * is 1..256 bytes and must not contain a NUL byte (CL_EINVAL); an entry belongs to at most one
 * collection. Meta keys are NUL-terminated strings of 1..CL_INDEX_META_KEY_MAX bytes.
 */
#ifndef CLEDGER_STORAGE_INDEX_H
#define CLEDGER_STORAGE_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define CL_INDEX_COLL_MAX 256
#define CL_INDEX_META_KEY_MAX 256
/* Size of the encoded location record in the "entries" database. */
#define CL_INDEX_LOC_SIZE 40

/* Where an entry lives. Stored as a fixed 40-byte little-endian record: chunk_start u64, offset
 * u64, length u32, view u64, type u8, flags u8, 10 reserved bytes (written as zero, ignored on
 * read so later versions can use them). */
typedef struct {
    uint64_t chunk_start; /* first seqno of the chunk file holding the entry */
    uint64_t offset;      /* byte offset of the entry's frame in that file */
    uint32_t length;      /* frame length in bytes */
    uint64_t view;        /* view (Raft term) of the transaction id view.seqno */
    uint8_t type;         /* entry type, as in docs/ledger-format.md */
    uint8_t flags;        /* engine-defined */
} cl_index_loc;

typedef struct {
    uint64_t count; /* seqnos indexed under the collection */
    uint64_t first; /* smallest of them */
    uint64_t last;  /* largest of them */
} cl_index_coll_stat;

typedef struct cl_index cl_index;
typedef struct cl_index_batch cl_index_batch;

/* Callbacks return 0 to go on, > 0 to stop (the call then returns CL_OK), < 0 to stop and make the
 * call return that value. */
typedef int (*cl_index_seqno_cb)(void *arg, uint64_t seqno);
/* coll is not NUL-terminated; it points into the map and is valid only during the call. */
typedef int (*cl_index_coll_cb)(void *arg, const char *coll, size_t len, uint64_t count);

/* Opens (creating if needed) the index in directory dir, which is created with mode 0700 when
 * missing (its parent must exist). map_size_bytes is the initial map size (0: 256 MiB); LMDB
 * never maps an existing environment smaller than the data it holds. CL_EIO when dir cannot be
 * created or opened, CL_ECORRUPT for files LMDB cannot read as an index, CL_EDB for another
 * LMDB failure, CL_EUNSUPPORTED
 * for an index written by an incompatible version of this module, CL_ENOMEM. */
CL_MUST_CHECK int cl_index_open(const char *dir, size_t map_size_bytes, cl_index **out);
void cl_index_close(cl_index *idx);
/* Forces all committed transactions to disk (mdb_env_sync with force). CL_EIO on failure. */
CL_MUST_CHECK int cl_index_sync(cl_index *idx);
/* Removes the index files in dir (not dir itself) so it can be rebuilt. Missing files are fine. */
CL_MUST_CHECK int cl_index_remove_files(const char *dir);
/* Current map size in bytes (grows automatically). */
size_t cl_index_map_size(const cl_index *idx);

/* Writes. Only one batch may be open per handle (CL_ESTATE otherwise). Operations are validated
 * when put, recorded, and become visible atomically at commit; they are applied in the order they
 * were put. Putting an entry that exists replaces its location. Putting a (collection, seqno) pair
 * again is a no-op; putting a seqno under a second, different collection fails the commit with
 * CL_EEXIST. Seqnos put in increasing order past the current end are appended (fast path); any
 * other order is accepted too. */
CL_MUST_CHECK int cl_index_batch_begin(cl_index *idx, cl_index_batch **b);
CL_MUST_CHECK int cl_index_put_entry(cl_index_batch *b, uint64_t seqno, const cl_index_loc *loc);
CL_MUST_CHECK int cl_index_put_collection(cl_index_batch *b, const char *coll, size_t len,
                                          uint64_t seqno);
CL_MUST_CHECK int cl_index_put_meta(cl_index_batch *b, const char *key, const void *val,
                                    size_t len);
/* Removes meta key (nothing when it is absent). */
CL_MUST_CHECK int cl_index_del_meta(cl_index_batch *b, const char *key);
/* Applies the batch in one write transaction and frees b. On failure nothing of it is visible. */
CL_MUST_CHECK int cl_index_batch_commit(cl_index_batch *b);
/* Drops the batch and frees b (NULL is a no-op). */
void cl_index_batch_abort(cl_index_batch *b);

/* Removes every entry with seqno >= seqno (seqno >= 1), their collection rows, and fixes the
 * per-collection statistics and the distinct-collection count, in one write transaction. Cost is
 * O((removed entries) * log n). Meta values are left alone. CL_ESTATE while a batch is open. */
CL_MUST_CHECK int cl_index_truncate_from(cl_index *idx, uint64_t seqno);
/* cl_index_truncate_from, then batch b applied, in one write transaction: both or neither. Frees b
 * (NULL: the truncation alone). */
CL_MUST_CHECK int cl_index_truncate_from_then(cl_index *idx, uint64_t seqno, cl_index_batch *b);

/* Reads. Each sees everything committed so far (this handle is the environment's only writer).
 * They share one LMDB read transaction that is kept open between reads and released before every
 * write, so a lookup costs one B-tree search. */
/* CL_ENOENT if seqno is not indexed; CL_ECORRUPT if the stored record has the wrong size. */
CL_MUST_CHECK int cl_index_get_entry(cl_index *idx, uint64_t seqno, cl_index_loc *out);
/* Largest indexed seqno, 0 when the index is empty. */
CL_MUST_CHECK int cl_index_last_seqno(cl_index *idx, uint64_t *out);
/* Calls cb for each seqno of collection coll in [from_seqno, to_seqno] (inclusive; pass UINT64_MAX
 * for no upper bound), in increasing order, at most limit times (0: no limit). *next_seqno (may be
 * NULL) receives the first seqno in range that was not passed to cb because the limit was reached
 * or cb asked to stop, or 0 when the range is exhausted; pass it as from_seqno to resume. Costs
 * O(log n + returned). An unknown collection yields nothing (CL_OK). Rows that break the
 * collection's statistics or its chain (index.c, I6) are CL_ECORRUPT, never a shorter listing. */
CL_MUST_CHECK int cl_index_collection_scan(cl_index *idx, const char *coll, size_t len,
                                           uint64_t from_seqno, uint64_t to_seqno, size_t limit,
                                           cl_index_seqno_cb cb, void *arg, uint64_t *next_seqno);
/* CL_ENOENT when the collection has no seqnos. */
CL_MUST_CHECK int cl_index_collection_stat(cl_index *idx, const char *coll, size_t len,
                                           cl_index_coll_stat *out);
/* Calls cb for every collection that has seqnos, in byte order of the ids. */
CL_MUST_CHECK int cl_index_collections_list(cl_index *idx, cl_index_coll_cb cb, void *arg);
/* Number of distinct collections with at least one seqno; O(1). */
CL_MUST_CHECK int cl_index_collection_count(cl_index *idx, size_t *n);
/* Copies the value of meta key into buf and sets *len to its length. When cap < length, copies
 * nothing, sets *len and returns CL_EOVERFLOW (buf may be NULL with cap 0 to ask for the size).
 * CL_ENOENT when the key is absent. */
CL_MUST_CHECK int cl_index_get_meta(cl_index *idx, const char *key, void *buf, size_t cap,
                                    size_t *len);

/* Re-verifies the invariants listed at the top of index.c over the whole index (O(n); for tests,
 * debug builds and after an unclean shutdown). CL_ECORRUPT when one does not hold. */
CL_MUST_CHECK int cl_index_check(cl_index *idx);

#endif
