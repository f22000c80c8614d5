#include "base/file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"

static int fsync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    if (slash == NULL)
        dir = cl_strdup(".");
    else if (slash == path)
        dir = cl_strdup("/");
    else
        dir = cl_strndup(path, (size_t)(slash - path));
    CL_ENSURE(dir != NULL, CL_ENOMEM);
    int rc = CL_OK;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0)
        rc = CL_EIO;
    if (fd >= 0)
        close(fd);
    cl_free(dir);
    return rc;
}

int cl_mkdir_durable(const char *path, mode_t mode)
{
    if (mkdir(path, mode) != 0) {
        struct stat st;
        int e = errno;
        if (e == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            return CL_OK;
        errno = e;
        return CL_EIO;
    }
    /* the parent of "a/b/" is "a": drop trailing slashes first */
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    char *p = cl_strndup(path, n);
    CL_ENSURE(p != NULL, CL_ENOMEM);
    int rc = fsync_parent_dir(p);
    cl_free(p);
    return rc;
}

int cl_dir_lock(const char *path, int *fd)
{
    *fd = -1;
    int d = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d < 0)
        return CL_EIO;
    while (flock(d, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        if (e == EINTR)
            continue;
        close(d);
        errno = e;
        return e == EWOULDBLOCK ? CL_ELOCKED : CL_EIO;
    }
    *fd = d;
    return CL_OK;
}

int cl_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
    int rc = CL_OK, fd = -1, created = 0;
    size_t plen = strlen(path);
    char *tmp = cl_malloc(plen + sizeof ".tmp");
    CL_ENSURE(tmp != NULL, CL_ENOMEM);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", sizeof ".tmp");
    CL_GUARD_IF(unlink(tmp) != 0 && errno != ENOENT, CL_EIO);
    fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, mode);
    CL_GUARD_IF(fd < 0, errno == ENOENT ? CL_ENOENT : CL_EIO);
    created = 1;
    /* The umask may have removed bits; the mode is part of the contract (0600 / 0644). */
    CL_GUARD_IF(fchmod(fd, mode) != 0, CL_EIO);
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, (const char *)data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        CL_GUARD_IF(w <= 0, CL_EIO);
        off += (size_t)w;
    }
    CL_GUARD_IF(fsync(fd) != 0, CL_EIO);
    rc = close(fd) == 0 ? CL_OK : CL_EIO;
    fd = -1;
    CL_GUARD(rc);
    CL_GUARD_IF(rename(tmp, path) != 0, CL_EIO);
    created = 0; /* the temporary name is gone */
    CL_GUARD(fsync_parent_dir(path));
out:
    if (fd >= 0)
        close(fd);
    if (created)
        unlink(tmp);
    cl_free(tmp);
    return rc;
}

char *cl_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *p = cap > (16u << 20) ? NULL : realloc(buf, cap);
            if (p == NULL) {
                free(buf);
                fclose(f);
                errno = cap > (16u << 20) ? EFBIG : ENOMEM;
                return NULL;
            }
            buf = p;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        if (r == 0)
            break;
        n += r;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        errno = EIO;
        return NULL;
    }
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

int cl_dir_has_files(const char *path)
{
    DIR *dir = opendir(path);
    if (dir == NULL)
        return 0;
    int any = 0;
    for (struct dirent *e; !any && (e = readdir(dir)) != NULL;)
        any = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(dir);
    return any;
}
