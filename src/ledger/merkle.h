/*
 * merkle.h — the ledger's persisted Merkle tree (CCF hashing, RFC 9162 shape; receipts.md §6, §7).
 *
 * Ownership. cl_merkle_open allocates a cl_merkle that the caller releases with cl_merkle_close
 * (close of NULL is a no-op). The cl_fs and the directory path are borrowed: the fs must outlive
 * the tree, the path is copied. Leaf values, roots, proof arrays and steps are caller-owned buffers
 * that are only used for the duration of the call. A tree is not thread-safe: one caller at a time
 * (reads included, since they consult the write buffers).
 *
 * Hashing. Leaves are 32-byte values supplied by the caller (CCF leaf 0 is 32 zero bytes, supplied
 * like any other leaf). MTH(D[i:i+1]) = D[i]; an interior node is SHA256(left || right) with no
 * domain-separation prefix; a range of n > 1 leaves splits at the largest power of two k < n.
 *
 * On-disk format. The directory holds one append-only file per level, level_00 .. level_63. Record
 * i of level k (32 bytes at offset 32*i) is the root of the perfect subtree over leaves
 * [i*2^k, (i+1)*2^k); level 0 holds the leaves. No header, no checksum: every byte is derivable
 * from level 0, and level 0 is derivable from the ledger. The file `synced_size` holds the size at
 * the last completed sync in two 24-byte slots at offsets 0 and 512: generation u64 LE, size u64
 * LE, first 8 bytes of SHA256 of those 16 bytes. Slot g % 2 holds generation g; the valid slot of
 * highest generation counts, so a torn marker write leaves the previous value.
 *
 * Invariants (re-verified by cl_merkle_check):
 *   I1. With n = cl_merkle_size(), level k holds exactly floor(n / 2^k) records (file records plus
 *       the records still in that level's write buffer); levels with no record are empty or absent.
 *   I2. Record i of level k >= 1 equals SHA256(record 2i of level k-1 || record 2i+1 of level k-1).
 *   I3. The in-memory frontier holds, for each set bit k of n, the last record of level k; it is
 *       all that append and root need, so neither reads any file and memory never grows with n.
 *   I4. The durable marker s <= n, and the first floor(s / 2^k) records of every level k are
 *       durable. The marker moves down before files are cut and up only after they are synced.
 *
 * Durability. Appends go to small bounded per-level write buffers; cl_merkle_flush writes them,
 * cl_merkle_sync flushes and fdatasyncs every level file holding records, then advances the marker
 * (the ledger engine decides when; the tree is rebuildable, so it need not be synced with every
 * entry). cl_merkle_sync_step does the same one fdatasync per call and moves the marker to the size
 * its first call saw. cl_merkle_close syncs. cl_merkle_truncate is durable on return (it lowers the
 * marker first), so a rolled-back tail never reappears. cl_merkle_open recovers from a crash: n =
 * min(marker, length(level_00) / 32); records past the last sync are dropped even when their length
 * looks right, because a crash can leave unsynced bytes cut or zero-filled. Longer levels are
 * truncated to floor(n / 2^k) records; shorter ones (a file lost or cut) are recomputed from the
 * level below, reading only the missing tail. So after a crash cl_merkle_size() is the size at the
 * last completed sync or close, lowered by any later truncate: the caller (ledger engine) compares
 * it with its own entry count and either truncates the tree (tree ahead of the ledger) or appends
 * the missing leaves (tree behind). Every leaf the reopened tree holds is one that was appended.
 *
 * Errors. After an I/O failure inside append, flush, sync or truncate the in-memory state may no
 * longer match the files: the tree then fails every further call with CL_ECLOSED and must be closed
 * and reopened (which recovers as above). Sizes and indices out of range give CL_ERANGE.
 *
 * Costs. append: amortised O(1) hashes and buffered writes (at most log2 n nodes). root: O(log n)
 * hashes, no reads. root_at, leaf, path, consistency: O(log n) reads. open: O(log n) reads plus the
 * work to complete levels a crash left short. truncate: O(log n) reads plus file truncations.
 *
 * Reads and memory. The newest records of each level are read from its write buffer, which keeps
 * written records as a cache (proofs of recent leaves touch no file). Older ones, when the fs
 * supports cl_file_map (the posix fs does), are read through a read-only shared mapping of the
 * level file, so a read is a memcpy rather than a pread; a mapping never reaches past the end of
 * the file, and is replaced by one of the whole file only after the file grew by 1/8 (records
 * past it are pread until then). Without cl_file_map, or when mapping fails, reads use pread. The
 * mappings are file-backed page cache: reclaimable by the kernel, counted as RssFile, not as
 * anonymous memory, and at most the size of the level files (~64 bytes per leaf in all). Heap
 * memory stays bounded (the fixed-size write buffers and this struct) whatever n is.
 * Consequences: no one else may shrink the level files while the tree is open (touching a mapped
 * page past the end of file raises SIGBUS; the tree itself drops a mapping before cutting a file),
 * and reads served from a mapping do not go through the fs, so a fault fs that has "crashed" still
 * answers them (reads are not failure points of that model).
 */
#ifndef CLEDGER_LEDGER_MERKLE_H
#define CLEDGER_LEDGER_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "storage/fs.h"

#define CL_MERKLE_HASH_LEN 32
/* Capacity the caller must provide for cl_merkle_path and cl_merkle_consistency output. */
#define CL_MERKLE_MAX_PATH 64
#define CL_MERKLE_MAX_CONSISTENCY 65

typedef struct cl_merkle cl_merkle;

/* One audit-path element (receipts.md §6.4): is_left = 1 for {"left": hash} (the sibling is on the
 * left: h = SHA256(hash || h)), 0 for {"right": hash} (h = SHA256(h || hash)). */
typedef struct {
    uint8_t hash[CL_MERKLE_HASH_LEN];
    uint8_t is_left;
} cl_merkle_step;

/* Opens (creating `dir` if needed) and recovers the tree stored in `dir`. */
CL_MUST_CHECK int cl_merkle_open(cl_fs *fs, const char *dir, cl_merkle **out);
/* Flushes buffered records (no sync) and frees the tree. Returns the flush result; the tree is
 * freed either way (a lost unsynced tail is recovered by the next open and the caller). */
int cl_merkle_close(cl_merkle *t);

/* Appends leaf number cl_merkle_size(t). */
CL_MUST_CHECK int cl_merkle_append(cl_merkle *t, const uint8_t leaf[CL_MERKLE_HASH_LEN]);
uint64_t cl_merkle_size(const cl_merkle *t);
/* Root of all current leaves; CL_ERANGE when the tree is empty. */
CL_MUST_CHECK int cl_merkle_root(const cl_merkle *t, uint8_t out[CL_MERKLE_HASH_LEN]);
/* Root of the first `size` leaves, 1 <= size <= cl_merkle_size(t). */
CL_MUST_CHECK int cl_merkle_root_at(const cl_merkle *t, uint64_t size,
                                    uint8_t out[CL_MERKLE_HASH_LEN]);
/* The value of leaf `index` < cl_merkle_size(t). */
CL_MUST_CHECK int cl_merkle_leaf(const cl_merkle *t, uint64_t index,
                                 uint8_t out[CL_MERKLE_HASH_LEN]);
/* Drops the leaves >= size (size <= cl_merkle_size(t)); durable on return. */
CL_MUST_CHECK int cl_merkle_truncate(cl_merkle *t, uint64_t size);
/* Writes buffered records to the level files (no sync). */
CL_MUST_CHECK int cl_merkle_flush(cl_merkle *t);
/* Flushes, fdatasyncs every level file that holds records, syncs the directory if level files
 * were created, then moves the marker: the steps of cl_merkle_sync_step, all at once. */
CL_MUST_CHECK int cl_merkle_sync(cl_merkle *t);
/* The same work as cl_merkle_sync spread over calls, each doing at most one fdatasync, so a caller
 * on an event loop never waits for a dozen device flushes at once. The first call flushes the
 * buffers and fixes the target (the size then); later calls sync one level file each, then the
 * directory, and the last writes the marker and sets *done. Appends may continue in between; a
 * truncate or cl_merkle_sync cancels the steps under way. *done = 1 at once when nothing is to be
 * synced. */
CL_MUST_CHECK int cl_merkle_sync_step(cl_merkle *t, int *done);

/* Inclusion proof of leaf `index` in the tree of the first `size` leaves (index < size <=
 * cl_merkle_size(t)), ordered from the leaf upward as receipts.md §6.4. `steps` must have room for
 * CL_MERKLE_MAX_PATH elements; *nsteps receives the count (0 for size 1). */
CL_MUST_CHECK int cl_merkle_path(const cl_merkle *t, uint64_t index, uint64_t size,
                                 cl_merkle_step *steps, size_t *nsteps);
/* Consistency proof PROOF(m, D[0:n]) of RFC 9162 §2.1.4.1 (receipts.md §7.2), 1 <= m <= n <=
 * cl_merkle_size(t); empty when m == n. `proof` must have room for CL_MERKLE_MAX_CONSISTENCY
 * hashes; *nproof receives the count. */
CL_MUST_CHECK int cl_merkle_consistency(const cl_merkle *t, uint64_t m, uint64_t n,
                                        uint8_t (*proof)[CL_MERKLE_HASH_LEN], size_t *nproof);

/* Pure: folds an audit path over `leaf` (receipts.md §3 step 4) into out_root. Compare the result
 * with the expected root using cl_ct_equal. CL_EPROOF if nsteps > CL_MERKLE_MAX_PATH or a step's
 * is_left is neither 0 nor 1. */
CL_MUST_CHECK int cl_merkle_path_root(const uint8_t leaf[CL_MERKLE_HASH_LEN],
                                      const cl_merkle_step *steps, size_t nsteps,
                                      uint8_t out_root[CL_MERKLE_HASH_LEN]);
/* Pure: verifies that the tree of size n with root_n extends the tree of size m with root_m
 * (RFC 9162 §2.1.4.2, receipts.md §7.3). m == n is valid iff the proof is empty and the roots are
 * equal. CL_OK or CL_EPROOF (also for m == 0 or m > n). */
CL_MUST_CHECK int cl_merkle_verify_consistency(uint64_t m, uint64_t n,
                                               const uint8_t root_m[CL_MERKLE_HASH_LEN],
                                               const uint8_t root_n[CL_MERKLE_HASH_LEN],
                                               const uint8_t (*proof)[CL_MERKLE_HASH_LEN],
                                               size_t nproof);

/* ---- offline audit (cledger verify-ledger) ----
 * Checks a stored tree without opening it: nothing is recovered, created or changed, so it may
 * run beside a node that has the tree open. It covers the records the next cl_merkle_open would
 * keep (size = min(marker, records in level_00)): leaf i is compared with the i-th leaf the caller
 * recomputed from the ledger, and every upper record whose two children are in the files with
 * the hash of those children (I2). Records a crash left missing are recomputed by open and are
 * not checked; leaves the caller did not supply (the store ahead of the ledger) are counted in
 * `ahead`. O(stored records) sequential reads, O(1) memory. */
typedef struct cl_merkle_audit cl_merkle_audit;
typedef struct {
    uint64_t size;      /* leaves the next open would keep */
    uint64_t records;   /* records checked */
    uint64_t ahead;     /* stored leaves past the caller's last one */
    int bad;            /* 1: the record below differs from what it must hold */
    unsigned bad_level; /* 0: a leaf that differs from the caller's; k >= 1: an I2 violation */
    uint64_t bad_index;
} cl_merkle_audit_result;

/* CL_ENOENT when `dir` holds no tree (no marker file). */
CL_MUST_CHECK int cl_merkle_audit_open(cl_fs *fs, const char *dir, cl_merkle_audit **out);
/* The next leaf, in order from leaf 0. CL_ECORRUPT at the first one that differs (later calls
 * then compare nothing). */
CL_MUST_CHECK int cl_merkle_audit_leaf(cl_merkle_audit *a, const uint8_t leaf[CL_MERKLE_HASH_LEN]);
/* Checks the upper levels (unless a leaf already differed) and fills *res. CL_OK, CL_ECORRUPT
 * when a record differs, or an I/O error. */
CL_MUST_CHECK int cl_merkle_audit_finish(cl_merkle_audit *a, cl_merkle_audit_result *res);
void cl_merkle_audit_close(cl_merkle_audit *a);

/* Debug check of invariants I1-I4 (I2 on the last record of every level: O(log n) reads).
 * CL_OK, CL_ECORRUPT on a violation, or an I/O error. */
CL_MUST_CHECK int cl_merkle_check(const cl_merkle *t);

#endif
