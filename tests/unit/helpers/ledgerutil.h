/* Helpers shared by the ledger fault, crash and tamper tests: create/open with options, a log of
 * appended entries, read-back and verification checks, a tree copy, and a map of the frames of a
 * chunk file (offset -> seqno). Every function returns CL_OK / 0 or a negative value and, where
 * it says so, writes a human explanation into `why`; none of them uses cmocka, so the helpers link
 * into every unit test binary. */
#ifndef CLEDGER_LEDGERUTIL_H
#define CLEDGER_LEDGERUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "ledger/ledger.h"
#include "ledger/verify.h"
#include "storage/fs.h"

/* cl_ledger_create / cl_ledger_open with the common options (fs NULL: the real file system). */
int lu_create(const char *dir, int private_ledger, uint64_t chunk_size, cl_fs *fs, cl_ledger **out);
int lu_open(const char *dir, uint64_t chunk_size, cl_fs *fs, cl_ledger **out);
/* lu_open as if the machine's boot id were `boot` (NULL: the real one). An open after a simulated
 * power cut (cl_fs_fault_crash_apply) must name another boot than the open before it: the ledger
 * takes a torn tail for damage when the boot is the same (only the process died). */
int lu_open_boot(const char *dir, uint64_t chunk_size, cl_fs *fs, const char *boot,
                 cl_ledger **out);
/* lu_open_boot (real file system) with the log at `level` written to the file `log` instead of
 * stderr; the log level is put back afterwards. Aborts when stderr cannot be redirected. */
int lu_open_logged(const char *dir, uint64_t chunk_size, const char *boot, int level,
                   const char *log, cl_ledger **out);

/* One appended user entry. */
typedef struct {
    uint64_t seqno;
    char coll[32];
    char text[96];
} lu_rec;

/* A growable list of appended entries; `acked` counts the leading records that a successful
 * cl_ledger_sync has acknowledged (records are appended in seqno order). */
typedef struct {
    lu_rec *v;
    size_t n, cap;
    size_t acked;
} lu_log;

void lu_log_init(lu_log *g);
void lu_log_free(lu_log *g);
void lu_log_push(lu_log *g, uint64_t seqno, const char *coll, const char *text);
/* Everything appended so far is acknowledged (after a successful sync or close). */
static inline void lu_log_ack_all(lu_log *g) { g->acked = g->n; }

/* Reads seqno and compares it with a user entry of this collection and text. */
int lu_expect_entry(cl_ledger *l, uint64_t seqno, const char *coll, const char *text, char *why,
                    size_t cap);
/* After a reopen: every acknowledged record is present and identical; every other record whose
 * seqno is durable now is identical too (a valid prefix, never garbage); the ledger is at least as
 * long as the last acknowledged record. */
int lu_check_log(cl_ledger *l, const lu_log *g, char *why, size_t cap);
/* Every ledger secret in node/ledger_secrets that applies from a durable seqno has its record (an
 * internal CL_TABLE_SECRETS write) at exactly that seqno. */
int lu_check_secrets(cl_ledger *l, const char *dir, char *why, size_t cap);

/* The service certificate PEM of a data directory (malloc'd; NULL on failure). */
char *lu_service_pem(const char *dir);
/* cl_verify_ledger_dir with the real fs and the given PEM; rep is always filled. */
int lu_verify(const char *dir, const char *service_pem, cl_verify_report *rep);

/* Recursive copy of a directory tree of regular files (the target must not exist). */
int lu_copy_tree(const char *from, const char *to);

/* Chunk file names in dir/ledger (sorted by start seqno). Returns the count (<= cap) or < 0. */
int lu_list_chunks(const char *dir, char (*names)[128], size_t cap);

/* The frames of one chunk file as the reader sees them. */
typedef struct {
    uint64_t off, end; /* [off, end) in the file */
    uint64_t seqno;
    uint8_t type;
} lu_frame;
/* Walks a chunk file with cl_chunk_reader; *frames is malloc'd. Fails on any unreadable frame. */
int lu_chunk_frames(const char *path, lu_frame **frames, size_t *n);

/* A cl_fs over the real one whose sync and sync_dir do nothing: a fast base for a fault fs, whose
 * crash model keeps its own record of what was synced. */
cl_fs *lu_fs_nosync(void);

#endif
