/*
 * fs_posix.c — the real file system behind the cl_fs seam.
 *
 * sync() is fdatasync(2): file size changes are metadata fdatasync does flush, so an appended
 * record is durable once sync returns. Directory entries (creation, rename) are made durable with
 * sync_dir (fsync on the directory), which callers do after creating or renaming files.
 *
 * map is mmap(PROT_READ, MAP_SHARED) of the file's first bytes with MADV_RANDOM (callers read
 * single records, so read-ahead would only pull unused pages into the page cache).
 *
 * writeback is sync_file_range(SYNC_FILE_RANGE_WRITE): the kernel starts writing the range and
 * returns; the fdatasync that makes it durable later finds little left to do.
 */
#define _GNU_SOURCE /* sync_file_range */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/file.h"
#include "storage/fs.h"

typedef struct {
    cl_file base;
    int fd;
} posix_file;

static int errno_to_cl(int e)
{
    switch (e) {
    case ENOENT:
        return CL_ENOENT;
    case EEXIST:
        return CL_EEXIST;
    case ENOMEM:
        return CL_ENOMEM;
    default:
        return CL_EIO;
    }
}

static int p_open(cl_fs *fs, const char *path, int flags, int mode, cl_file **out)
{
    int of = O_CLOEXEC | ((flags & CL_FS_RDWR) ? O_RDWR : O_RDONLY);
    if (flags & CL_FS_CREAT)
        of |= O_CREAT;
    if (flags & CL_FS_EXCL)
        of |= O_EXCL;
    if (flags & CL_FS_TRUNC)
        of |= O_TRUNC;
    posix_file *f = cl_malloc(sizeof *f);
    CL_ENSURE(f != NULL, CL_ENOMEM);
    int fd;
    do
        fd = open(path, of, mode ? mode : 0644);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        int e = errno;
        cl_free(f);
        errno = e;
        return errno_to_cl(e);
    }
    f->base.fs = fs;
    f->fd = fd;
    *out = &f->base;
    return CL_OK;
}

static int p_close(cl_file *file)
{
    posix_file *f = (posix_file *)file;
    int rc = close(f->fd) == 0 ? CL_OK : CL_EIO;
    cl_free(f);
    return rc;
}

static int p_pread(cl_file *file, void *buf, size_t n, uint64_t off, size_t *got)
{
    posix_file *f = (posix_file *)file;
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(f->fd, (char *)buf + done, n - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return CL_EIO;
        }
        if (r == 0)
            break;
        done += (size_t)r;
    }
    *got = done;
    return CL_OK;
}

static int p_pwrite(cl_file *file, const void *buf, size_t n, uint64_t off)
{
    posix_file *f = (posix_file *)file;
    size_t done = 0;
    while (done < n) {
        ssize_t w = pwrite(f->fd, (const char *)buf + done, n - done, (off_t)(off + done));
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return CL_EIO;
        }
        done += (size_t)w;
    }
    return CL_OK;
}

static int p_sync(cl_file *file)
{
    posix_file *f = (posix_file *)file;
    int r;
    do
        r = fdatasync(f->fd);
    while (r < 0 && errno == EINTR);
    return r == 0 ? CL_OK : CL_EIO;
}

static int p_truncate(cl_file *file, uint64_t size)
{
    posix_file *f = (posix_file *)file;
    return ftruncate(f->fd, (off_t)size) == 0 ? CL_OK : CL_EIO;
}

static int p_size(cl_file *file, uint64_t *size)
{
    posix_file *f = (posix_file *)file;
    struct stat st;
    CL_ENSURE(fstat(f->fd, &st) == 0, CL_EIO);
    *size = (uint64_t)st.st_size;
    return CL_OK;
}

static int p_rename(cl_fs *fs, const char *from, const char *to)
{
    return rename(from, to) == 0 ? CL_OK : errno_to_cl(errno);
}

static int p_unlink(cl_fs *fs, const char *path)
{
    return unlink(path) == 0 ? CL_OK : errno_to_cl(errno);
}

static int p_mkdir(cl_fs *fs, const char *path, int mode)
{
    int rc = cl_mkdir_durable(path, (mode_t)(mode ? mode : 0700));
    return rc == CL_EIO ? errno_to_cl(errno) : rc;
}

static int p_sync_dir(cl_fs *fs, const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno_to_cl(errno);
    int rc = fsync(fd) == 0 ? CL_OK : CL_EIO;
    close(fd);
    return rc;
}

static int p_list(cl_fs *fs, const char *dir, cl_fs_list_cb cb, void *arg)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return errno_to_cl(errno);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (cb(arg, e->d_name) != 0)
            break;
    }
    closedir(d);
    return CL_OK;
}

static int p_exists(cl_fs *fs, const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0)
        return 1;
    return errno == ENOENT ? 0 : CL_EIO;
}

static int p_map(cl_file *file, uint64_t len, const void **addr)
{
    posix_file *f = (posix_file *)file;
    CL_ENSURE(len > 0, CL_EINVAL);
    CL_ENSURE(len <= (uint64_t)SIZE_MAX, CL_EOVERFLOW);
    void *p = mmap(NULL, (size_t)len, PROT_READ, MAP_SHARED, f->fd, 0);
    if (p == MAP_FAILED)
        return errno_to_cl(errno);
    (void)madvise(p, (size_t)len, MADV_RANDOM); /* advice only: a failure changes nothing */
    *addr = p;
    return CL_OK;
}

static int p_unmap(cl_file *file, const void *addr, uint64_t len)
{
    (void)file;
    return munmap((void *)(uintptr_t)addr, (size_t)len) == 0 ? CL_OK : CL_EIO;
}

static int p_writeback(cl_file *file, uint64_t off, uint64_t len)
{
    posix_file *f = (posix_file *)file;
    if (sync_file_range(f->fd, (off64_t)off, (off64_t)len, SYNC_FILE_RANGE_WRITE) != 0 &&
        errno != EINTR)
        return CL_EIO;
    return CL_OK;
}

static const cl_fs_ops posix_ops = {
    .open = p_open,
    .close = p_close,
    .pread = p_pread,
    .pwrite = p_pwrite,
    .sync = p_sync,
    .truncate = p_truncate,
    .size = p_size,
    .rename = p_rename,
    .unlink = p_unlink,
    .mkdir = p_mkdir,
    .sync_dir = p_sync_dir,
    .list = p_list,
    .exists = p_exists,
    .map = p_map,
    .unmap = p_unmap,
    .writeback = p_writeback,
};

static cl_fs posix_fs = {&posix_ops};

cl_fs *cl_fs_posix(void) { return &posix_fs; }

/* ---- helpers shared by every implementation ------------------------------------------------ */

int cl_file_read_exact(cl_file *f, void *buf, size_t n, uint64_t off)
{
    size_t got = 0;
    CL_TRY(cl_file_pread(f, buf, n, off, &got));
    return got == n ? CL_OK : CL_ETRUNC;
}

int cl_fs_read_all(cl_fs *fs, const char *path, size_t max, uint8_t **out, size_t *len)
{
    cl_file *f = NULL;
    uint8_t *buf = NULL;
    uint64_t size = 0;
    int rc;
    CL_GUARD(cl_fs_open(fs, path, CL_FS_RDONLY, 0, &f));
    CL_GUARD(cl_file_size(f, &size));
    CL_GUARD_IF(size > max, CL_EOVERFLOW);
    buf = cl_malloc((size_t)size + 1);
    CL_GUARD_IF(buf == NULL, CL_ENOMEM);
    CL_GUARD(cl_file_read_exact(f, buf, (size_t)size, 0));
    buf[size] = '\0';
    *out = buf;
    *len = (size_t)size;
    buf = NULL;
out:
    if (buf != NULL) /* a short read may have brought part of a secret (node/ledger_secrets) */
        explicit_bzero(buf, (size_t)size);
    cl_free(buf);
    cl_file_close(f);
    return rc;
}

static void dir_of(const char *path, char *dir, size_t cap)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        snprintf(dir, cap, ".");
    } else if (slash == path) {
        snprintf(dir, cap, "/");
    } else {
        snprintf(dir, cap, "%.*s", (int)(slash - path), path);
    }
}

int cl_fs_write_atomic(cl_fs *fs, const char *path, const void *data, size_t len, int mode)
{
    char tmp[4096], dir[4096];
    CL_ENSURE((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) < sizeof tmp, CL_EOVERFLOW);
    dir_of(path, dir, sizeof dir);
    cl_file *f = NULL;
    int rc;
    (void)cl_fs_unlink(fs, tmp); /* a stale temporary from an earlier crash */
    CL_GUARD(cl_fs_open(fs, tmp, CL_FS_RDWR | CL_FS_CREAT | CL_FS_EXCL, mode, &f));
    CL_GUARD(cl_file_pwrite(f, data, len, 0));
    CL_GUARD(cl_file_sync(f));
    rc = cl_file_close(f);
    f = NULL;
    CL_GUARD(rc);
    CL_GUARD(cl_fs_rename(fs, tmp, path));
    CL_GUARD(cl_fs_sync_dir(fs, dir));
out:
    if (f != NULL) {
        cl_file_close(f);
        (void)cl_fs_unlink(fs, tmp);
    }
    return rc;
}
