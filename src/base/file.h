/*
 * file.h — atomic replacement of a small file on the real file system, for key and certificate
 * files written by the crypto layer (which sits below the storage seam). Protocol: remove a stale
 * path.tmp, create it O_EXCL with `mode` (fchmod'ed, so the umask cannot widen or narrow it),
 * write, fsync, rename over path, fsync the parent directory. On failure the old file is intact.
 */
#ifndef CLEDGER_BASE_FILE_H
#define CLEDGER_BASE_FILE_H

#include <stddef.h>
#include <sys/types.h>

#include "base/err.h"

CL_MUST_CHECK int cl_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);

/* mkdir(path, mode) made durable: when the directory is new, its entry in the parent directory is
 * fsynced too (POSIX does not promise that a later fsync inside it does). CL_OK when it exists
 * already as a directory; CL_EIO (errno kept) otherwise. */
CL_MUST_CHECK int cl_mkdir_durable(const char *path, mode_t mode);

/* An exclusive advisory lock (flock) on the directory `path`, held through *fd (O_CLOEXEC) until
 * it is closed or the process ends, crash included: one process at a time owns a data directory.
 * CL_ELOCKED when another process holds it; CL_EIO (errno kept) when it cannot be opened. */
CL_MUST_CHECK int cl_dir_lock(const char *path, int *fd);

/* 1 when directory `path` exists and holds anything, else 0 (missing or unreadable too). */
int cl_dir_has_files(const char *path);

/* Whole file (at most 16 MiB) as a NUL-terminated buffer allocated with malloc (free() it);
 * *len (may be NULL) receives the size. NULL with errno set on failure (EFBIG when too large). */
char *cl_read_file(const char *path, size_t *len);

#endif
