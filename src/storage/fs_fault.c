/*
 * fs_fault.c — a cl_fs that wraps another one and injects failures and crashes (for tests).
 *
 * Failure model:
 *   - cl_fs_fault_arm(kinds, n, crash) makes the (n+1)th later operation of one of `kinds` fail
 *     with CL_EIO. A failed write first writes a seeded-random prefix of its bytes (a torn write).
 *   - With `crash`, the failure is a crash: that call and every later call through this fs fail
 *     (close still releases memory), as if the process had died at that instant.
 *
 * Crash model (cl_fs_fault_crash_apply), what a power cut may leave of writes that were not made
 * durable:
 *   - per file, bytes beyond the size at its last successful sync are kept whole, dropped, cut at a
 *     random point, or kept with a random span overwritten by zeros (the page cache flushed a later
 *     block before an earlier one);
 *   - a file created since the last sync of its directory may vanish;
 *   - a rename not followed by a directory sync may be undone.
 * Writes below the synced size (overwrites of durable data) are assumed durable; the ledger never
 * overwrites durable bytes, which is one of the invariants this model relies on.
 */
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "storage/fs.h"

#define MAX_TRACKED 256
#define PATH_CAP 512

typedef struct {
    char path[PATH_CAP];
    uint64_t synced_size;
    int created_pending; /* created since its directory was last synced */
    int known;           /* synced_size is meaningful (else: learn it from the file on open) */
    int in_use;
} tracked;

typedef struct {
    char from[PATH_CAP];
    char to[PATH_CAP];
    int in_use;
    int replaced; /* `to` existed: undoing the rename must bring that file back */
    uint8_t *old; /* its contents */
    size_t old_len;
} pending_rename;

/* Largest replaced file whose rename can be undone (a rename over a larger one is durable). */
#define OLD_MAX (1u << 20)

static void rename_clear(pending_rename *r)
{
    cl_free(r->old);
    memset(r, 0, sizeof *r);
}

struct cl_fs_fault {
    cl_fs fs;
    cl_fs *base;
    int kinds;
    long countdown; /* <0 disarmed */
    int crash_on_fire;
    int crashed;
    int fired;
    long counts[16];
    uint64_t rng;
    tracked files[MAX_TRACKED];
    pending_rename renames[MAX_TRACKED];
};

typedef struct {
    cl_file base;
    cl_file *inner;
    cl_fs_fault *ff;
    char path[PATH_CAP];
} fault_file;

static uint64_t rng_next(uint64_t *s)
{
    /* splitmix64: deterministic per seed so a failing crash test can be replayed */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static tracked *track(cl_fs_fault *ff, const char *path, int create)
{
    tracked *free_slot = NULL;
    for (int i = 0; i < MAX_TRACKED; i++) {
        if (ff->files[i].in_use && strcmp(ff->files[i].path, path) == 0)
            return &ff->files[i];
        if (!ff->files[i].in_use && free_slot == NULL)
            free_slot = &ff->files[i];
    }
    if (!create || free_slot == NULL || strlen(path) >= PATH_CAP)
        return NULL;
    memset(free_slot, 0, sizeof *free_slot);
    snprintf(free_slot->path, PATH_CAP, "%s", path);
    free_slot->in_use = 1;
    return free_slot;
}

/* Returns non-zero when this operation must fail. */
static int inject(cl_fs_fault *ff, int kind)
{
    if (ff->crashed)
        return 1;
    ff->counts[kind]++;
    if (!(ff->kinds & kind) || ff->countdown < 0)
        return 0;
    if (ff->countdown > 0) {
        ff->countdown--;
        return 0;
    }
    ff->countdown = -1;
    ff->fired = 1;
    if (ff->crash_on_fire)
        ff->crashed = 1;
    return 1;
}

static int f_open(cl_fs *fs, const char *path, int flags, int mode, cl_file **out)
{
    cl_fs_fault *ff = (cl_fs_fault *)fs;
    if (ff->crashed || ((flags & CL_FS_CREAT) && inject(ff, CL_FAULT_OPEN)))
        return CL_EIO;
    int existed = cl_fs_exists(ff->base, path) == 1;
    fault_file *f = cl_malloc(sizeof *f);
    CL_ENSURE(f != NULL, CL_ENOMEM);
    int rc = cl_fs_open(ff->base, path, flags, mode, &f->inner);
    if (rc < 0) {
        cl_free(f);
        return rc;
    }
    f->base.fs = fs;
    f->ff = ff;
    snprintf(f->path, PATH_CAP, "%s", path);
    tracked *t = track(ff, path, 1);
    if (t != NULL) {
        uint64_t size = 0;
        if (!existed) {
            t->created_pending = 1;
            t->synced_size = 0;
        } else if (flags & CL_FS_TRUNC) {
            t->synced_size = 0;
        } else if (!t->known) {
            /* First sight of an existing file: what is on disk now is taken as durable. */
            (void)cl_file_size(f->inner, &size);
            t->synced_size = size;
        }
        t->known = 1;
    }
    *out = &f->base;
    return CL_OK;
}

static int f_close(cl_file *file)
{
    fault_file *f = (fault_file *)file;
    int rc = cl_file_close(f->inner);
    cl_free(f);
    return rc;
}

static int f_pread(cl_file *file, void *buf, size_t n, uint64_t off, size_t *got)
{
    fault_file *f = (fault_file *)file;
    CL_ENSURE(!f->ff->crashed, CL_EIO);
    return cl_file_pread(f->inner, buf, n, off, got);
}

static int f_pwrite(cl_file *file, const void *buf, size_t n, uint64_t off)
{
    fault_file *f = (fault_file *)file;
    cl_fs_fault *ff = f->ff;
    if (ff->crashed)
        return CL_EIO;
    if (inject(ff, CL_FAULT_WRITE)) {
        size_t part = n ? (size_t)(rng_next(&ff->rng) % n) : 0;
        if (part > 0)
            (void)cl_file_pwrite(f->inner, buf, part, off);
        return CL_EIO;
    }
    return cl_file_pwrite(f->inner, buf, n, off);
}

static int f_sync(cl_file *file)
{
    fault_file *f = (fault_file *)file;
    if (inject(f->ff, CL_FAULT_SYNC))
        return CL_EIO;
    CL_TRY(cl_file_sync(f->inner));
    tracked *t = track(f->ff, f->path, 1);
    if (t != NULL) {
        uint64_t size = 0;
        CL_TRY(cl_file_size(f->inner, &size));
        t->synced_size = size;
    }
    return CL_OK;
}

static int f_truncate(cl_file *file, uint64_t size)
{
    fault_file *f = (fault_file *)file;
    CL_ENSURE(!f->ff->crashed, CL_EIO);
    CL_TRY(cl_file_truncate(f->inner, size));
    tracked *t = track(f->ff, f->path, 0);
    if (t != NULL && t->synced_size > size)
        t->synced_size = size;
    return CL_OK;
}

static int f_size(cl_file *file, uint64_t *size)
{
    fault_file *f = (fault_file *)file;
    CL_ENSURE(!f->ff->crashed, CL_EIO);
    return cl_file_size(f->inner, size);
}

static int f_rename(cl_fs *fs, const char *from, const char *to)
{
    cl_fs_fault *ff = (cl_fs_fault *)fs;
    if (inject(ff, CL_FAULT_RENAME))
        return CL_EIO;
    /* A rename over an existing file is atomic: after a crash `to` names the old file or the new
     * one, never nothing. Keep the old contents so an undo can put them back. */
    int replaced = cl_fs_exists(ff->base, to) == 1;
    uint8_t *prev = NULL;
    size_t prev_len = 0;
    if (replaced && cl_fs_read_all(ff->base, to, OLD_MAX, &prev, &prev_len) < 0)
        prev = NULL;
    int rc = cl_fs_rename(ff->base, from, to);
    if (rc < 0) {
        cl_free(prev);
        return rc;
    }
    tracked *t = track(ff, from, 0);
    tracked *old = track(ff, to, 0);
    if (old != NULL)
        old->in_use = 0;
    if (t != NULL)
        snprintf(t->path, PATH_CAP, "%s", to);
    if (t != NULL && replaced)
        t->created_pending = 0; /* the name `to` is durable: it cannot vanish, only revert */
    for (int i = 0; i < MAX_TRACKED && (!replaced || prev != NULL); i++) {
        if (!ff->renames[i].in_use && strlen(from) < PATH_CAP && strlen(to) < PATH_CAP) {
            ff->renames[i].in_use = 1;
            snprintf(ff->renames[i].from, PATH_CAP, "%s", from);
            snprintf(ff->renames[i].to, PATH_CAP, "%s", to);
            ff->renames[i].replaced = replaced;
            ff->renames[i].old = prev;
            ff->renames[i].old_len = prev_len;
            prev = NULL;
            break;
        }
    }
    cl_free(prev); /* not recorded: the rename counts as durable */
    return CL_OK;
}

static int f_unlink(cl_fs *fs, const char *path)
{
    cl_fs_fault *ff = (cl_fs_fault *)fs;
    CL_ENSURE(!ff->crashed, CL_EIO);
    CL_TRY(cl_fs_unlink(ff->base, path));
    tracked *t = track(ff, path, 0);
    if (t != NULL)
        t->in_use = 0;
    return CL_OK;
}

static int f_mkdir(cl_fs *fs, const char *path, int mode)
{
    cl_fs_fault *ff = (cl_fs_fault *)fs;
    CL_ENSURE(!ff->crashed, CL_EIO);
    return cl_fs_mkdir(ff->base, path, mode);
}

static int in_dir(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    return strncmp(path, dir, n) == 0 && path[n] == '/' && strchr(path + n + 1, '/') == NULL;
}

static int f_sync_dir(cl_fs *fs, const char *path)
{
    cl_fs_fault *ff = (cl_fs_fault *)fs;
    if (inject(ff, CL_FAULT_SYNC))
        return CL_EIO;
    CL_TRY(cl_fs_sync_dir(ff->base, path));
    for (int i = 0; i < MAX_TRACKED; i++) {
        if (ff->files[i].in_use && in_dir(ff->files[i].path, path))
            ff->files[i].created_pending = 0;
        if (ff->renames[i].in_use && in_dir(ff->renames[i].to, path))
            rename_clear(&ff->renames[i]);
    }
    return CL_OK;
}

static int f_list(cl_fs *fs, const char *dir, cl_fs_list_cb cb, void *arg)
{
    cl_fs_fault *ff = (cl_fs_fault *)fs;
    CL_ENSURE(!ff->crashed, CL_EIO);
    return cl_fs_list(ff->base, dir, cb, arg);
}

static int f_exists(cl_fs *fs, const char *path)
{
    cl_fs_fault *ff = (cl_fs_fault *)fs;
    CL_ENSURE(!ff->crashed, CL_EIO);
    return cl_fs_exists(ff->base, path);
}

/* Reads through a mapping are not failure points; only creating one after a crash fails. */
static int f_map(cl_file *file, uint64_t len, const void **addr)
{
    fault_file *f = (fault_file *)file;
    CL_ENSURE(!f->ff->crashed, CL_EIO);
    return cl_file_map(f->inner, len, addr);
}

static int f_unmap(cl_file *file, const void *addr, uint64_t len)
{
    fault_file *f = (fault_file *)file;
    return cl_file_unmap(f->inner, addr, len); /* releases even after a crash, like close */
}

static const cl_fs_ops fault_ops = {
    .open = f_open,
    .close = f_close,
    .pread = f_pread,
    .pwrite = f_pwrite,
    .sync = f_sync,
    .truncate = f_truncate,
    .size = f_size,
    .rename = f_rename,
    .unlink = f_unlink,
    .mkdir = f_mkdir,
    .sync_dir = f_sync_dir,
    .list = f_list,
    .exists = f_exists,
    .map = f_map,
    .unmap = f_unmap,
};

int cl_fs_fault_new(cl_fs *base, cl_fs_fault **out)
{
    cl_fs_fault *ff = cl_calloc(1, sizeof *ff);
    CL_ENSURE(ff != NULL, CL_ENOMEM);
    ff->fs.ops = &fault_ops;
    ff->base = base;
    ff->countdown = -1;
    ff->rng = 0x5eed;
    *out = ff;
    return CL_OK;
}

void cl_fs_fault_free(cl_fs_fault *ff)
{
    if (ff == NULL)
        return;
    for (int i = 0; i < MAX_TRACKED; i++)
        rename_clear(&ff->renames[i]);
    cl_free(ff);
}
cl_fs *cl_fs_fault_fs(cl_fs_fault *ff) { return &ff->fs; }

void cl_fs_fault_arm(cl_fs_fault *ff, int kinds, long n, int crash)
{
    ff->kinds = kinds;
    ff->countdown = n;
    ff->crash_on_fire = crash;
    ff->fired = 0;
}

long cl_fs_fault_count(cl_fs_fault *ff, int kind) { return ff->counts[kind]; }
int cl_fs_fault_fired(cl_fs_fault *ff) { return ff->fired; }

int cl_fs_fault_crash_apply(cl_fs_fault *ff, uint64_t seed)
{
    uint64_t s = seed ^ 0xc0ffee;
    cl_fs *base = ff->base;
    /* Undo renames that never reached a directory sync (newest first), sometimes. */
    for (int i = MAX_TRACKED - 1; i >= 0; i--) {
        pending_rename *r = &ff->renames[i];
        if (!r->in_use)
            continue;
        int rc = CL_OK;
        if (rng_next(&s) % 2 == 0 && cl_fs_exists(base, r->to) == 1) {
            rc = cl_fs_rename(base, r->to, r->from);
            tracked *t = rc == CL_OK ? track(ff, r->to, 0) : NULL;
            if (t != NULL)
                snprintf(t->path, PATH_CAP, "%s", r->from);
            if (rc == CL_OK && r->replaced) {
                /* the replaced file is back under its name, as it was */
                cl_file *f = NULL;
                rc = cl_fs_open(base, r->to, CL_FS_RDWR | CL_FS_CREAT | CL_FS_TRUNC, 0600, &f);
                if (rc == CL_OK && r->old_len > 0)
                    rc = cl_file_pwrite(f, r->old, r->old_len, 0);
                cl_file_close(f);
            }
        }
        rename_clear(r);
        CL_TRY(rc);
    }
    for (int i = 0; i < MAX_TRACKED; i++) {
        tracked *t = &ff->files[i];
        if (!t->in_use)
            continue;
        if (cl_fs_exists(base, t->path) != 1) {
            t->in_use = 0;
            continue;
        }
        if (t->created_pending && rng_next(&s) % 4 == 0) {
            CL_TRY(cl_fs_unlink(base, t->path));
            t->in_use = 0;
            continue;
        }
        cl_file *f = NULL;
        CL_TRY(cl_fs_open(base, t->path, CL_FS_RDWR, 0, &f));
        uint64_t size = 0;
        int rc = cl_file_size(f, &size);
        if (rc == CL_OK && size > t->synced_size) {
            uint64_t extra = size - t->synced_size;
            switch (rng_next(&s) % 4) {
            case 0: /* everything reached the disk */
                break;
            case 1: /* nothing did */
                rc = cl_file_truncate(f, t->synced_size);
                break;
            case 2: /* cut at a random byte */
                rc = cl_file_truncate(f, t->synced_size + rng_next(&s) % extra);
                break;
            default: { /* a hole of zeros inside the unsynced span */
                uint64_t off = t->synced_size + rng_next(&s) % extra;
                uint64_t len = 1 + rng_next(&s) % (size - off);
                uint8_t zeros[4096] = {0};
                while (rc == CL_OK && len > 0) {
                    size_t n = len < sizeof zeros ? (size_t)len : sizeof zeros;
                    rc = cl_file_pwrite(f, zeros, n, off);
                    off += n;
                    len -= n;
                }
            }
            }
        }
        cl_file_close(f);
        CL_TRY(rc);
        t->known = 0; /* re-learned when the file is opened again */
        t->created_pending = 0;
    }
    ff->crashed = 0;
    ff->countdown = -1;
    ff->fired = 0;
    return CL_OK;
}
