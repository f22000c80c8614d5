/* Small helpers shared by the unit tests (temporary directories, file reads). */
#ifndef CLEDGER_TESTUTIL_H
#define CLEDGER_TESTUTIL_H

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

/* mkdtemp under $TMPDIR or /tmp; the returned path is static storage per call slot (4 slots). */
const char *tu_tempdir(const char *prefix);
/* rm -rf */
void tu_rmrf(const char *path);
/* A client-certificate fingerprint in ACL's form ("XX:XX:...": 32 pairs of the hex digit c), in
 * one of 8 rotating static buffers (so a few may be used in one expression). */
const char *tu_fp(char c);
/* Whole file into a malloc'd NUL-terminated buffer; NULL on failure. */
char *tu_read_file(const char *path, size_t *len);
/* Path of a file in the repository (CLEDGER_SOURCE_DIR or the cwd's ..). */
const char *tu_source_path(const char *rel);
/* cp -a for a tree of regular files and directories (a file alone too); all-zero 64 KiB pieces
 * stay holes, so a sparse LMDB map costs what it holds. 0 or -1. */
int tu_copy_tree(const char *from, const char *to);
/* CRC-32C over the names and contents of dir's regular files, in name order (not recursive):
 * equal before and after an operation means it changed no file. */
uint32_t tu_dir_crc(const char *dir);
/* XORs the byte at `off` of an existing file with `mask` (damage in place). 0 or -1. */
int tu_flip_byte(const char *path, uint64_t off, uint8_t mask);
/* 1 if `needle` occurs in any regular file below dir. */
int tu_grep_dir(const char *dir, const void *needle, size_t n);
/* In the closed LMDB environment env_dir, row `key` of table `db`: deleted (val NULL) or put with
 * value val (vlen bytes), as a damaged page would read back; nothing else changes. 0 or -1. */
int tu_lmdb_row(const char *env_dir, const char *db, const void *key, size_t klen, const void *val,
                size_t vlen);
/* Copies row `key` of table `db` (exactly n bytes) out of the closed LMDB environment env_dir.
 * 0, or -1 when it cannot be read, is missing or has another size. */
int tu_lmdb_get(const char *env_dir, const char *db, const void *key, size_t klen, void *out,
                size_t n);
/* For edits tu_lmdb_row cannot express: opens the closed environment env_dir and begins a
 * transaction (read-only when rdonly) on table db. 0 or an LMDB error (nothing left open). */
int tu_lmdb_begin(const char *env_dir, const char *db, int rdonly, MDB_env **env, MDB_txn **txn,
                  MDB_dbi *dbi);
/* Commits (commit != 0) or aborts txn, then closes env. 0 or the commit's LMDB error. */
int tu_lmdb_end(MDB_env *env, MDB_txn *txn, int commit);

#endif
