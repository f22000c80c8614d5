/*
 * fs.h — the file-system seam. Every byte the ledger engine, the Merkle store and the verifier
 * read or write goes through a cl_fs, so tests can inject failures and simulate crashes without
 * touching the storage code (SQLite's os.c / test6.c idea).
 *
 * Implementations:
 *   cl_fs_posix()          the real thing (pread/pwrite/fdatasync/rename, directory fsync).
 *   cl_fs_fault_new(base)  wraps another cl_fs; fails the Nth write / fsync / open on request and
 *                          can "crash": every later call fails, and cl_fs_fault_crash_apply() then
 *                          drops or tears whatever was written but not fsynced, as a power cut
 *                          would (see fs_fault.c for the exact model).
 *
 * Optional ops. map/unmap may be NULL in an implementation (cl_file_map then returns
 * CL_EUNSUPPORTED and callers fall back to pread). map gives a read-only shared mapping of the
 * first `len` bytes of the file (0 < len <= current file size; the caller must never map past the
 * end: touching a mapped page wholly beyond EOF raises SIGBUS, so a caller that shrinks the file
 * unmaps first). The mapping sees later writes made through pwrite (same page cache); it is
 * released with unmap(f, addr, len), same len, before f is closed. unmap releases even after a
 * fault-fs crash.
 *
 * Ownership: a cl_file is created by open and released by close (close of NULL is a no-op). The
 * cl_fs returned by cl_fs_posix() is static; a fault fs is freed with cl_fs_fault_free after all
 * its files are closed. Paths are borrowed for the duration of the call. All calls return 0 or a
 * negative cl_err (CL_EIO for system errors, CL_ENOENT for a missing file, CL_EEXIST with
 * CL_FS_EXCL); errno is preserved for logging.
 */
#ifndef CLEDGER_STORAGE_FS_H
#define CLEDGER_STORAGE_FS_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

enum {
    CL_FS_RDONLY = 0,
    CL_FS_RDWR = 1,
    CL_FS_CREAT = 2,
    CL_FS_EXCL = 4,
    CL_FS_TRUNC = 8,
};

typedef struct cl_fs cl_fs;
typedef struct cl_file cl_file;

/* Called once per directory entry name (not "." or ".."); return non-zero to stop. */
typedef int (*cl_fs_list_cb)(void *arg, const char *name);

typedef struct cl_fs_ops {
    int (*open)(cl_fs *fs, const char *path, int flags, int mode, cl_file **out);
    int (*close)(cl_file *f);
    /* Reads up to n bytes at off; *got < n only at end of file. */
    int (*pread)(cl_file *f, void *buf, size_t n, uint64_t off, size_t *got);
    /* Writes all n bytes at off or fails. */
    int (*pwrite)(cl_file *f, const void *buf, size_t n, uint64_t off);
    int (*sync)(cl_file *f); /* fdatasync */
    int (*truncate)(cl_file *f, uint64_t size);
    int (*size)(cl_file *f, uint64_t *size);
    int (*rename)(cl_fs *fs, const char *from, const char *to);
    int (*unlink)(cl_fs *fs, const char *path);
    int (*mkdir)(cl_fs *fs, const char *path, int mode); /* CL_OK when it already exists */
    int (*sync_dir)(cl_fs *fs, const char *path);
    int (*list)(cl_fs *fs, const char *dir, cl_fs_list_cb cb, void *arg);
    int (*exists)(cl_fs *fs, const char *path); /* 1 yes, 0 no, <0 error */
    /* Optional (may be NULL): read-only shared mapping of the first len bytes (see above). */
    int (*map)(cl_file *f, uint64_t len, const void **addr);
    int (*unmap)(cl_file *f, const void *addr, uint64_t len);
    /* Optional (may be NULL): start writing [off, off+len) back to the device without waiting
     * and without any durability promise, so that a later sync has less to wait for. */
    int (*writeback)(cl_file *f, uint64_t off, uint64_t len);
} cl_fs_ops;

struct cl_fs {
    const cl_fs_ops *ops;
};

struct cl_file {
    cl_fs *fs;
};

cl_fs *cl_fs_posix(void);

static inline int cl_fs_open(cl_fs *fs, const char *path, int flags, int mode, cl_file **out)
{
    return fs->ops->open(fs, path, flags, mode, out);
}
static inline int cl_file_close(cl_file *f) { return f ? f->fs->ops->close(f) : CL_OK; }
static inline int cl_file_pread(cl_file *f, void *buf, size_t n, uint64_t off, size_t *got)
{
    return f->fs->ops->pread(f, buf, n, off, got);
}
static inline int cl_file_pwrite(cl_file *f, const void *buf, size_t n, uint64_t off)
{
    return f->fs->ops->pwrite(f, buf, n, off);
}
static inline int cl_file_sync(cl_file *f) { return f->fs->ops->sync(f); }
/* A hint: CL_OK also when the file system has no writeback operation. */
static inline int cl_file_writeback(cl_file *f, uint64_t off, uint64_t len)
{
    return f->fs->ops->writeback ? f->fs->ops->writeback(f, off, len) : CL_OK;
}
static inline int cl_file_truncate(cl_file *f, uint64_t size)
{
    return f->fs->ops->truncate(f, size);
}
static inline int cl_file_size(cl_file *f, uint64_t *size) { return f->fs->ops->size(f, size); }
/* CL_EUNSUPPORTED when the implementation has no mapping. */
static inline int cl_file_map(cl_file *f, uint64_t len, const void **addr)
{
    return f->fs->ops->map ? f->fs->ops->map(f, len, addr) : CL_EUNSUPPORTED;
}
static inline int cl_file_unmap(cl_file *f, const void *addr, uint64_t len)
{
    return f->fs->ops->unmap ? f->fs->ops->unmap(f, addr, len) : CL_EUNSUPPORTED;
}
static inline int cl_fs_rename(cl_fs *fs, const char *a, const char *b)
{
    return fs->ops->rename(fs, a, b);
}
static inline int cl_fs_unlink(cl_fs *fs, const char *p) { return fs->ops->unlink(fs, p); }
static inline int cl_fs_mkdir(cl_fs *fs, const char *p, int mode)
{
    return fs->ops->mkdir(fs, p, mode);
}
static inline int cl_fs_sync_dir(cl_fs *fs, const char *p) { return fs->ops->sync_dir(fs, p); }
static inline int cl_fs_list(cl_fs *fs, const char *dir, cl_fs_list_cb cb, void *arg)
{
    return fs->ops->list(fs, dir, cb, arg);
}
static inline int cl_fs_exists(cl_fs *fs, const char *p) { return fs->ops->exists(fs, p); }

/* Reads exactly n bytes at off (CL_ETRUNC when the file is shorter). */
CL_MUST_CHECK int cl_file_read_exact(cl_file *f, void *buf, size_t n, uint64_t off);
/* Whole small file into a new heap buffer (NUL-terminated for convenience); CL_EOVERFLOW > max. */
CL_MUST_CHECK int cl_fs_read_all(cl_fs *fs, const char *path, size_t max, uint8_t **out,
                                 size_t *len);
/* Atomic replace: write path.tmp (mode), fsync, rename over path, fsync the directory. */
CL_MUST_CHECK int cl_fs_write_atomic(cl_fs *fs, const char *path, const void *data, size_t len,
                                     int mode);

/* ---- fault injection ---------------------------------------------------------------------- */

typedef struct cl_fs_fault cl_fs_fault;

enum { CL_FAULT_WRITE = 1, CL_FAULT_SYNC = 2, CL_FAULT_OPEN = 4, CL_FAULT_RENAME = 8 };

CL_MUST_CHECK int cl_fs_fault_new(cl_fs *base, cl_fs_fault **out);
void cl_fs_fault_free(cl_fs_fault *ff);
cl_fs *cl_fs_fault_fs(cl_fs_fault *ff);
/* Fail the (n+1)th operation of any kind in `kinds` from now on (n = 0: the next one). When
 * `crash` is set, that failure is a crash: it and every later call fail with CL_EIO. n < 0
 * disarms. A failed write may have written a prefix of its bytes (torn write). */
void cl_fs_fault_arm(cl_fs_fault *ff, int kinds, long n, int crash);
/* Operations of each kind seen so far (for sizing fault loops). */
long cl_fs_fault_count(cl_fs_fault *ff, int kind);
int cl_fs_fault_fired(cl_fs_fault *ff);
/* After a crash, rewrite every file touched through this fs as a power cut could leave it: bytes
 * written since that file's last successful sync are kept, dropped or torn (a seeded choice). The
 * fault fs is usable again afterwards (disarmed). */
CL_MUST_CHECK int cl_fs_fault_crash_apply(cl_fs_fault *ff, uint64_t seed);

#endif
