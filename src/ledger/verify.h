/*
 * verify.h — offline verification of a whole ledger directory, with nothing but the service
 * certificate (docs/ledger-format.md §6 describes the walk).
 *
 * Checks, in order, for every chunk and every frame: chunk names contiguous, chunk headers, frame
 * framing and CRC, dense seqnos, non-decreasing views, payload shapes, recomputed Merkle leaves and
 * roots, every signature (root equality and ECDSA with the signing node's key), every node
 * certificate endorsed by the service identity in force, every service-identity change endorsed by
 * the new identity, a committed chunk ends on a signature, plaintext claims digests on public
 * ledgers, and finally that the ledger's current service identity is the given certificate. In a
 * node's data directory the derived Merkle store (merkle/) is audited against the recomputed
 * leaves too (cl_merkle_audit_*). Memory is O(log n + nodes + identities), independent of the
 * ledger size.
 */
#ifndef CLEDGER_LEDGER_VERIFY_H
#define CLEDGER_LEDGER_VERIFY_H

#include <stdint.h>

#include "base/err.h"
#include "crypto/x509.h"
#include "storage/fs.h"

typedef struct {
    uint64_t entries;       /* frames verified */
    uint64_t signatures;    /* signature entries verified */
    uint64_t last_signed;   /* seqno of the last signature entry */
    uint64_t last_view;     /* its view */
    uint8_t last_root[32];  /* the root it signs */
    uint64_t unsigned_tail; /* entries after the last signature (open chunk only) */
    uint64_t bytes;         /* bytes read */
    int private_ledger;
    /* The node's Merkle store (data-directory mode, when merkle/ exists; merkle.h, offline
     * audit). It is derived from the chunks: a damaged store does not make the ledger invalid,
     * but the call then fails with CL_ECORRUPT and merkle_what says what differs. */
    int merkle_checked;
    uint64_t merkle_records; /* stored records checked */
    char merkle_what[256];   /* empty when the store is sound */
    /* On failure: */
    uint64_t bad_seqno; /* the seqno that failed (expected seqno when the frame is unreadable) */
    char file[512];     /* chunk file name */
    uint64_t offset;    /* byte offset in that file */
    char what[256];     /* what failed */
} cl_verify_report;

typedef void (*cl_verify_progress_cb)(void *arg, uint64_t done_bytes, uint64_t total_bytes);

/* dir: a data directory (its ledger/ subdirectory is used) or a directory of chunk files.
 * CL_OK when the whole ledger verifies; otherwise a negative code with the report's failure
 * fields filled in. */
CL_MUST_CHECK int cl_verify_ledger_dir(cl_fs *fs, const char *dir, const cl_cert *service_cert,
                                       cl_verify_progress_cb progress, void *arg,
                                       cl_verify_report *rep);

#endif
