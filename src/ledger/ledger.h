/*
 * ledger.h — the ledger engine: an append-only, signed, optionally encrypted log of entries in
 * chunk files, with a persisted Merkle tree and an LMDB index (docs/ledger-format.md).
 *
 * Threading: a cl_ledger is used by one thread at a time (the daemon's loop or FSM thread). Group
 * commit is explicit: cl_ledger_append_* assign seqnos and buffer frames; cl_ledger_sync writes
 * every buffered frame with one pwrite per chunk and one fdatasync, and only then reports them
 * durable. Nothing appended is durable, visible to readers, or covered by a receipt before the
 * sync that covers it returns.
 *
 * Invariants (checked by cl_ledger_check in tests):
 *   I1  seqnos are dense: entry k is the k-th frame of the ledger, starting at 1.
 *   I2  durable bytes are never rewritten; recovery only cuts bytes past the last complete frame
 *       of the last (open) chunk.
 *   I3  every committed chunk `ledger_<a>-<b>.committed` holds exactly seqnos a..b and ends with a
 *       signature entry.
 *   I4  Merkle leaf k = leaf(entry k) for k >= 1, leaf 0 = 32 zero bytes; a signature entry at
 *       seqno s signs the root over leaves 0..s-1.
 *   I5  after open, the index and the Merkle tree describe exactly the durable entries.
 *
 * Data directory (ARCHITECTURE.md §6):
 *   service_cert.pem          service identity (current)
 *   node/node_key.pem         node signing key (0600)      node/node_cert.pem
 *   node/service_key.pem      service identity key (0600)  node/ledger_secrets (0600)
 *   ledger/                   chunk files                   merkle/  index/   (rebuildable)
 *
 * Ownership: strings and buffers passed in are borrowed for the call. cl_ledger_entry results own
 * their heap memory (cl_ledger_entry_free; contents are wiped for private ledgers).
 */
#ifndef CLEDGER_LEDGER_LEDGER_H
#define CLEDGER_LEDGER_LEDGER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "crypto/ec.h"
#include "storage/fs.h"

typedef struct cl_ledger cl_ledger;

typedef struct {
    const char *dir;       /* data directory */
    cl_fs *fs;             /* NULL: the real file system */
    uint64_t chunk_size;   /* roll the chunk after the first signature past this size;
                              0: the size given at creation (default 5 MiB) */
    int private_ledger;    /* creation only: encrypt user contents */
    cl_curve curve;        /* creation only: node and service keys (0: P-256) */
    size_t index_map_size; /* 0: 64 MiB, grows on demand */
    const char
        *service_cn;     /* creation only: CN of the service identity (NULL: "cledger service") */
    const char *boot_id; /* NULL: this machine's (/proc/sys/kernel/random/boot_id); tests set it
                            to play a restart of the operating system (see "index marker" in
                            ledger.c) */
} cl_ledger_opts;

CL_MUST_CHECK int cl_ledger_create(const cl_ledger_opts *o, cl_ledger **out);
CL_MUST_CHECK int cl_ledger_open(const cl_ledger_opts *o, cl_ledger **out);
/* Syncs buffered appends, the tree and the index, then frees. */
int cl_ledger_close(cl_ledger *l);
/* Frees without syncing anything (simulates a process that stops dead; for tests). */
void cl_ledger_abandon(cl_ledger *l);

/* Appends (buffered). *seqno receives the assigned seqno. */
CL_MUST_CHECK int cl_ledger_append_user(cl_ledger *l, uint64_t view, const char *collection,
                                        size_t clen, const uint8_t *contents, size_t len,
                                        uint64_t *seqno);
CL_MUST_CHECK int cl_ledger_append_internal(cl_ledger *l, uint64_t view, uint8_t table, uint8_t op,
                                            const char *key, size_t klen, const char *value,
                                            size_t vlen, uint64_t *seqno);
/* As cl_ledger_append_user, with the 32-byte claims key given by the caller (a consensus leader
 * chooses it when proposing, so every replica and every re-application writes identical bytes). */
CL_MUST_CHECK int cl_ledger_append_user_keyed(cl_ledger *l, uint64_t view, const char *collection,
                                              size_t clen, const uint8_t *contents, size_t len,
                                              const uint8_t claims_key[32], uint64_t *seqno);
/* A signature entry over the root of every entry before it, signed with the node key. */
CL_MUST_CHECK int cl_ledger_sign(cl_ledger *l, uint64_t view, uint64_t *seqno);
/* The same, recording the consensus log index of the command that asked for it. */
CL_MUST_CHECK int cl_ledger_sign_at(cl_ledger *l, uint64_t view, uint64_t raft_index,
                                    uint64_t *seqno);
/* The raft index recorded in the last durable signature (0 if none or outside consensus). */
CL_MUST_CHECK int cl_ledger_signed_raft_index(cl_ledger *l, uint64_t *raft_index);
/* Group commit: everything appended so far becomes durable (and readable). */
CL_MUST_CHECK int cl_ledger_sync(cl_ledger *l);
/* Under consensus the replicated log is what makes a write durable: the node cuts its ledger back
 * to the last signature at start and re-applies the log (docs/consensus.md). With external
 * durability on, cl_ledger_sync writes and publishes entries without fdatasync; chunks are still
 * fdatasync'ed before they are committed (renamed), and cl_ledger_sync_hard / close force it (the
 * daemon calls it before allowing a raft snapshot, which may compact the log). The derived state
 * (Merkle tree, index) is then synced every few rollovers, one fdatasync per later
 * cl_ledger_sync call, instead of a dozen at once inside one call. */
void cl_ledger_set_external_durability(cl_ledger *l, int on);
CL_MUST_CHECK int cl_ledger_sync_hard(cl_ledger *l);
/* New ledger secret (recorded in the ledger, chained to the previous one). */
CL_MUST_CHECK int cl_ledger_rotate_secret(cl_ledger *l, uint64_t view);
/* New service identity: records the new identity with an endorsement of the previous one and
 * re-issues this node's certificate under it, signs and syncs, then installs the new key and
 * certificates (service_cert.pem among them). Staged first in node/identity.next, so a crash at
 * any point is settled by the next open: installed when its records were signed, undone
 * otherwise (docs/ledger-format.md). Any failure after the staging poisons the handle. */
CL_MUST_CHECK int cl_ledger_rotate_service_identity(cl_ledger *l, uint64_t view);
/* Drops every entry > seqno that is not durable or not yet signed (Raft rollback). CL_ESTATE
 * when that would cut below the last durable signature. */
CL_MUST_CHECK int cl_ledger_truncate(cl_ledger *l, uint64_t seqno);

uint64_t cl_ledger_last_seqno(const cl_ledger *l);    /* appended (maybe not durable) */
uint64_t cl_ledger_durable_seqno(const cl_ledger *l); /* durable */
uint64_t cl_ledger_signed_seqno(const cl_ledger *l);  /* seqno of last durable signature */
int cl_ledger_is_private(const cl_ledger *l);
/* View recorded for a durable seqno. */
CL_MUST_CHECK int cl_ledger_view_of(cl_ledger *l, uint64_t seqno, uint64_t *view);
/* The same view, checked against the frame's header (one small read): a row of the index whose
 * view, type or length is not the frame's is the index's damage (CL_ECORRUPT, marked for a
 * rebuild at the next open), as in every read of a frame. For answers that rest on the view
 * alone (a transaction's state). */
CL_MUST_CHECK int cl_ledger_view_checked(cl_ledger *l, uint64_t seqno, uint64_t *view);

typedef struct {
    uint64_t seqno, view;
    uint8_t type;
    char *collection; /* user entries; NUL-terminated */
    size_t collection_len;
    uint8_t *contents; /* user entries (decrypted) */
    size_t contents_len;
    uint8_t claims_key[32];
    uint8_t claims_digest[32];
    /* internal entries */
    uint8_t table, op;
    char *key, *value;
    size_t key_len, value_len;
} cl_ledger_entry;

CL_MUST_CHECK int cl_ledger_read(cl_ledger *l, uint64_t seqno, cl_ledger_entry *out);
/* cl_ledger_read of a seqno cl_ledger_collection_scan listed under coll: CL_ECORRUPT, with an
 * index rebuild asked of the next open, when the entry is not a user entry of that collection
 * (cl_ledger_table_scan holds an internal table's rows to the same rule). */
CL_MUST_CHECK int cl_ledger_read_listed(cl_ledger *l, uint64_t seqno, const char *coll, size_t len,
                                        cl_ledger_entry *out);
void cl_ledger_entry_free(cl_ledger_entry *e);

/* Durable seqnos of a user collection in [from, to], ascending, at most `limit` (0: all);
 * *next = first seqno not delivered (0 when exhausted). cb returns 0 to go on, >0 to stop.
 * O(log n + returned). Collections starting with 0x01 are internal and refused (CL_EINVAL). cb
 * must not call back into the ledger (the index is not re-entrant): collect, then read. An index
 * found damaged on the way (rows out of order, or ending before the collection's last seqno)
 * gives CL_ECORRUPT, never a short list, and the next open rebuilds the index. */
CL_MUST_CHECK int cl_ledger_collection_scan(cl_ledger *l, const char *coll, size_t len,
                                            uint64_t from, uint64_t to, size_t limit,
                                            int (*cb)(void *arg, uint64_t seqno), void *arg,
                                            uint64_t *next);
/* Last durable seqno of a collection (0 when it has none). */
CL_MUST_CHECK int cl_ledger_collection_last(cl_ledger *l, const char *coll, size_t len,
                                            uint64_t *seqno);
/* User collections with at least one durable entry, in byte order of their ids. */
CL_MUST_CHECK int
cl_ledger_collections(cl_ledger *l, int (*cb)(void *arg, const char *coll, size_t len), void *arg);
CL_MUST_CHECK int cl_ledger_collection_count(cl_ledger *l, size_t *n);
/* Every durable write of an internal table, in ledger order (cost: the table's writes, not the
 * ledger's size). Used at start to rebuild users, nodes and the like. */
CL_MUST_CHECK int cl_ledger_table_scan(cl_ledger *l, uint8_t table,
                                       int (*cb)(void *arg, const cl_ledger_entry *e), void *arg);

/* Commit evidence string "ce:<view>.<seqno>:<64 hex>" (NUL-terminated, cap >= 100). */
CL_MUST_CHECK int cl_ledger_commit_evidence(cl_ledger *l, uint64_t seqno, char *out, size_t cap);

/* Receipt for a durable, signed, non-signature entry: the camelCase receipt object of
 * spec/receipts.md §1 (cert, leafComponents, nodeId, proof, serviceEndorsements, signature).
 * CL_ENOTSIGNED when no durable signature follows yet; CL_EINVAL for a signature entry. */
CL_MUST_CHECK int cl_ledger_receipt(cl_ledger *l, uint64_t seqno, json_t **out);

/* Consistency proof between two durable signature entries at seqnos from <= to (spec/receipts.md
 * §7): {"fromTreeSize","toTreeSize","fromRoot","toRoot","proof":[hex...]} where each root is the
 * one its signature entry signs. CL_EINVAL when either seqno is not a durable signature entry or
 * from > to. */
CL_MUST_CHECK int cl_ledger_consistency(cl_ledger *l, uint64_t from, uint64_t to, json_t **out);

/* Seal / unseal a consensus command with the current ledger secret, so a private ledger's
 * contents are never stored in plaintext in the raft log either. Format v2: u64 (appliesFrom of
 * the secret | 2 << 56) || salt[16] || IV[12] || tag[16] || AES-256-GCM ciphertext, AAD =
 * "cledger command v2", under a key derived from the secret and the salt (HMAC-SHA256; one salt
 * per process and secret) with IV = a counter: never the entries' key, never an IV twice. Unseal
 * also reads v1 (no salt, a random IV under the secret itself; written before 2026-11-25), picks
 * the secret by appliesFrom; CL_EDECRYPT when it fails to authenticate, CL_EFORMAT for another
 * version or a short header. */
CL_MUST_CHECK int cl_ledger_seal(cl_ledger *l, const void *in, size_t len, cl_buf *out);
CL_MUST_CHECK int cl_ledger_unseal(cl_ledger *l, const void *in, size_t len, cl_buf *out);

/* The service identity certificate PEM (borrowed, valid until the next rotation). */
const char *cl_ledger_service_cert_pem(const cl_ledger *l);

/* Re-verifies invariants I1-I5 against the files (debug/test). */
CL_MUST_CHECK int cl_ledger_check(cl_ledger *l);

#endif
