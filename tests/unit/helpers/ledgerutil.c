#include "ledgerutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cursor.h"
#include "base/log.h"
#include "crypto/x509.h"
#include "ledger/chunk.h"
#include "ledger/entry.h"
#include "testutil.h"

static int whyf(char *why, size_t cap, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int whyf(char *why, size_t cap, int rc, const char *fmt, ...)
{
    if (why != NULL && cap > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, cap, fmt, ap);
        va_end(ap);
    }
    return rc;
}

int lu_create(const char *dir, int private_ledger, uint64_t chunk_size, cl_fs *fs, cl_ledger **out)
{
    cl_ledger_opts o = {0};
    o.dir = dir;
    o.fs = fs;
    o.private_ledger = private_ledger;
    o.chunk_size = chunk_size;
    *out = NULL;
    return cl_ledger_create(&o, out);
}

int lu_open_boot(const char *dir, uint64_t chunk_size, cl_fs *fs, const char *boot, cl_ledger **out)
{
    cl_ledger_opts o = {0};
    o.dir = dir;
    o.fs = fs;
    o.chunk_size = chunk_size;
    o.boot_id = boot;
    *out = NULL;
    return cl_ledger_open(&o, out);
}

int lu_open(const char *dir, uint64_t chunk_size, cl_fs *fs, cl_ledger **out)
{
    return lu_open_boot(dir, chunk_size, fs, NULL, out);
}

int lu_open_logged(const char *dir, uint64_t chunk_size, const char *boot, int level,
                   const char *log, cl_ledger **out)
{
    fflush(stderr);
    int saved = dup(2), fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (saved < 0 || fd < 0 || dup2(fd, 2) != 2)
        abort();
    close(fd);
    cl_log_level was = cl_log_get_level();
    cl_log_set_level((cl_log_level)level);
    int rc = lu_open_boot(dir, chunk_size, NULL, boot, out);
    cl_log_set_level(was);
    fflush(stderr);
    if (dup2(saved, 2) != 2)
        abort();
    close(saved);
    return rc;
}

void lu_log_init(lu_log *g) { memset(g, 0, sizeof *g); }

void lu_log_free(lu_log *g)
{
    free(g->v);
    memset(g, 0, sizeof *g);
}

void lu_log_push(lu_log *g, uint64_t seqno, const char *coll, const char *text)
{
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 64;
        lu_rec *p = realloc(g->v, cap * sizeof *p);
        if (p == NULL)
            abort();
        g->v = p;
        g->cap = cap;
    }
    lu_rec *r = &g->v[g->n++];
    r->seqno = seqno;
    snprintf(r->coll, sizeof r->coll, "%s", coll);
    snprintf(r->text, sizeof r->text, "%s", text);
}

int lu_expect_entry(cl_ledger *l, uint64_t seqno, const char *coll, const char *text, char *why,
                    size_t cap)
{
    cl_ledger_entry e;
    int rc = cl_ledger_read(l, seqno, &e);
    if (rc < 0)
        return whyf(why, cap, rc, "read of seqno %" PRIu64 ": %s", seqno, cl_errname(rc));
    size_t tl = strlen(text);
    if (e.type != CL_ENTRY_USER || e.collection == NULL || strcmp(e.collection, coll) != 0 ||
        e.contents_len != tl || memcmp(e.contents, text, tl) != 0) {
        rc = whyf(why, cap, CL_ECORRUPT,
                  "seqno %" PRIu64 ": type %d collection '%s' contents '%.*s', expected '%s' '%s'",
                  seqno, e.type, e.collection ? e.collection : "(none)",
                  e.contents ? (int)e.contents_len : 0, e.contents ? (char *)e.contents : "", coll,
                  text);
    }
    cl_ledger_entry_free(&e);
    return rc;
}

int lu_check_log(cl_ledger *l, const lu_log *g, char *why, size_t cap)
{
    uint64_t durable = cl_ledger_durable_seqno(l);
    if (g->acked > 0 && durable < g->v[g->acked - 1].seqno)
        return whyf(why, cap, CL_ECORRUPT,
                    "acknowledged seqno %" PRIu64 " lost: the ledger ends at %" PRIu64,
                    g->v[g->acked - 1].seqno, durable);
    for (size_t i = 0; i < g->n; i++) {
        const lu_rec *r = &g->v[i];
        if (r->seqno > durable)
            break;
        int rc = lu_expect_entry(l, r->seqno, r->coll, r->text, why, cap);
        if (rc < 0) {
            if (why != NULL && cap > 0) {
                size_t k = strlen(why);
                snprintf(why + k, cap - k, " (%s)",
                         i < g->acked ? "acknowledged" : "durable, not acknowledged");
            }
            return rc;
        }
    }
    return CL_OK;
}

int lu_check_secrets(cl_ledger *l, const char *dir, char *why, size_t cap)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/node/ledger_secrets", dir);
    size_t n = 0;
    char *b = tu_read_file(path, &n);
    if (b == NULL || n < 12 || memcmp(b, "CLSECRT1", 8) != 0) {
        free(b);
        return whyf(why, cap, CL_EFORMAT, "cannot read %s", path);
    }
    uint32_t count = cl_load_u32((const uint8_t *)b + 8);
    if (n != 12 + (size_t)count * 40) {
        free(b);
        return whyf(why, cap, CL_EFORMAT, "%s: bad length", path);
    }
    uint64_t from[64];
    size_t nfrom = count < 64 ? count : 64;
    for (size_t i = 0; i < nfrom; i++)
        from[i] = cl_load_u64((const uint8_t *)b + 12 + 40 * i);
    free(b);
    /* The secrets-table records of the durable ledger, in order. */
    uint64_t durable = cl_ledger_durable_seqno(l), rec_seqno[64];
    size_t nrec = 0;
    for (uint64_t s = 1; s <= durable; s++) {
        cl_ledger_entry e;
        int rc = cl_ledger_read(l, s, &e);
        if (rc < 0)
            return whyf(why, cap, rc, "read of seqno %" PRIu64 ": %s", s, cl_errname(rc));
        if (e.type == CL_ENTRY_INTERNAL && e.table == CL_TABLE_SECRETS && nrec < 64) {
            char want[24];
            snprintf(want, sizeof want, "%zu", nrec + 1);
            if (strcmp(e.key, want) != 0) {
                rc = whyf(why, cap, CL_ECORRUPT,
                          "secret record at %" PRIu64 " has key '%s', expected '%s'", s, e.key,
                          want);
            }
            rec_seqno[nrec++] = s;
        }
        cl_ledger_entry_free(&e);
        if (rc < 0)
            return rc;
    }
    if (nrec != nfrom)
        return whyf(why, cap, CL_ECORRUPT,
                    "%zu ledger secrets in node/ledger_secrets but %zu secret records in the "
                    "durable ledger (ends at %" PRIu64 ")",
                    nfrom, nrec, durable);
    for (size_t i = 0; i < nfrom; i++) {
        /* the first secret applies from seqno 1, recorded in the genesis transaction */
        int ok = i == 0 ? rec_seqno[0] >= from[0] : rec_seqno[i] == from[i];
        if (!ok)
            return whyf(why, cap, CL_ECORRUPT,
                        "secret %zu applies from %" PRIu64 " but is recorded at %" PRIu64, i + 1,
                        from[i], rec_seqno[i]);
    }
    return CL_OK;
}

char *lu_service_pem(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/service_cert.pem", dir);
    return tu_read_file(path, NULL);
}

int lu_verify(const char *dir, const char *service_pem, cl_verify_report *rep)
{
    cl_cert *c = NULL;
    memset(rep, 0, sizeof *rep);
    int rc = cl_cert_from_pem(service_pem, strlen(service_pem), &c);
    if (rc < 0) {
        snprintf(rep->what, sizeof rep->what, "bad service certificate");
        return rc;
    }
    rc = cl_verify_ledger_dir(NULL, dir, c, NULL, NULL, rep);
    cl_cert_free(c);
    return rc;
}

static int copy_file(const char *from, const char *to, mode_t mode)
{
    int in = open(from, O_RDONLY);
    if (in < 0)
        return CL_EIO;
    int out = open(to, O_WRONLY | O_CREAT | O_EXCL, mode & 0777);
    if (out < 0) {
        close(in);
        return CL_EIO;
    }
    int rc = CL_OK;
    char buf[65536];
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n == 0)
            break;
        if (n < 0 || write(out, buf, (size_t)n) != n) {
            rc = CL_EIO;
            break;
        }
    }
    close(in);
    close(out);
    return rc;
}

int lu_copy_tree(const char *from, const char *to)
{
    struct stat st;
    if (lstat(from, &st) != 0)
        return CL_ENOENT;
    if (!S_ISDIR(st.st_mode))
        return S_ISREG(st.st_mode) ? copy_file(from, to, st.st_mode) : CL_OK;
    if (mkdir(to, st.st_mode & 0777) != 0)
        return CL_EIO;
    DIR *d = opendir(from);
    if (d == NULL)
        return CL_EIO;
    int rc = CL_OK;
    struct dirent *e;
    while (rc == CL_OK && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char a[1024], b[1024];
        snprintf(a, sizeof a, "%s/%s", from, e->d_name);
        snprintf(b, sizeof b, "%s/%s", to, e->d_name);
        rc = lu_copy_tree(a, b);
    }
    closedir(d);
    return rc;
}

int lu_list_chunks(const char *dir, char (*names)[128], size_t cap)
{
    char ldir[1024];
    snprintf(ldir, sizeof ldir, "%s/ledger", dir);
    DIR *d = opendir(ldir);
    if (d == NULL)
        return CL_ENOENT;
    size_t n = 0;
    uint64_t starts[1024];
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        cl_chunk_name c;
        size_t len = strlen(e->d_name);
        if (len >= 128 || cl_chunk_parse_name(e->d_name, &c) != CL_OK || n == cap || n == 1024)
            continue;
        /* insertion by start seqno */
        size_t j = n++;
        while (j > 0 && starts[j - 1] > c.start) {
            starts[j] = starts[j - 1];
            memcpy(names[j], names[j - 1], 128);
            j--;
        }
        starts[j] = c.start;
        memcpy(names[j], e->d_name, len + 1);
    }
    closedir(d);
    return (int)n;
}

int lu_chunk_frames(const char *path, lu_frame **frames, size_t *n)
{
    cl_chunk_reader r;
    *frames = NULL;
    *n = 0;
    int rc = cl_chunk_reader_open(&r, cl_fs_posix(), path);
    if (rc < 0)
        return rc;
    size_t cap = 0;
    for (;;) {
        cl_entry_view e;
        uint64_t off;
        rc = cl_chunk_reader_next(&r, &e, &off);
        if (rc == CL_ENOENT) {
            rc = CL_OK;
            break;
        }
        if (rc < 0)
            break;
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            lu_frame *p = realloc(*frames, cap * sizeof *p);
            if (p == NULL)
                abort();
            *frames = p;
        }
        lu_frame *f = &(*frames)[(*n)++];
        f->off = off;
        f->end = off + e.frame_len;
        f->seqno = e.seqno;
        f->type = e.type;
    }
    cl_chunk_reader_close(&r);
    if (rc < 0) {
        free(*frames);
        *frames = NULL;
        *n = 0;
    }
    return rc;
}

/* ---- a real fs without syncs ----------------------------------------------------------------- */

typedef struct {
    cl_file base;
    cl_file *inner;
} ns_file;

static cl_fs *real(void) { return cl_fs_posix(); }

static int ns_open(cl_fs *fs, const char *path, int flags, int mode, cl_file **out)
{
    ns_file *f = malloc(sizeof *f);
    if (f == NULL)
        return CL_ENOMEM;
    int rc = cl_fs_open(real(), path, flags, mode, &f->inner);
    if (rc < 0) {
        free(f);
        return rc;
    }
    f->base.fs = fs;
    *out = &f->base;
    return CL_OK;
}

static int ns_close(cl_file *file)
{
    ns_file *f = (ns_file *)file;
    int rc = cl_file_close(f->inner);
    free(f);
    return rc;
}

static int ns_pread(cl_file *f, void *buf, size_t n, uint64_t off, size_t *got)
{
    return cl_file_pread(((ns_file *)f)->inner, buf, n, off, got);
}
static int ns_pwrite(cl_file *f, const void *buf, size_t n, uint64_t off)
{
    return cl_file_pwrite(((ns_file *)f)->inner, buf, n, off);
}
static int ns_sync(cl_file *f)
{
    (void)f;
    return CL_OK;
}
static int ns_truncate(cl_file *f, uint64_t size)
{
    return cl_file_truncate(((ns_file *)f)->inner, size);
}
static int ns_size(cl_file *f, uint64_t *size) { return cl_file_size(((ns_file *)f)->inner, size); }
static int ns_rename(cl_fs *fs, const char *a, const char *b)
{
    (void)fs;
    return cl_fs_rename(real(), a, b);
}
static int ns_unlink(cl_fs *fs, const char *p)
{
    (void)fs;
    return cl_fs_unlink(real(), p);
}
static int ns_mkdir(cl_fs *fs, const char *p, int mode)
{
    (void)fs;
    return cl_fs_mkdir(real(), p, mode);
}
static int ns_sync_dir(cl_fs *fs, const char *p)
{
    (void)fs;
    (void)p;
    return CL_OK;
}
static int ns_list(cl_fs *fs, const char *dir, cl_fs_list_cb cb, void *arg)
{
    (void)fs;
    return cl_fs_list(real(), dir, cb, arg);
}
static int ns_exists(cl_fs *fs, const char *p)
{
    (void)fs;
    return cl_fs_exists(real(), p);
}

static const cl_fs_ops ns_ops = {
    .open = ns_open,
    .close = ns_close,
    .pread = ns_pread,
    .pwrite = ns_pwrite,
    .sync = ns_sync,
    .truncate = ns_truncate,
    .size = ns_size,
    .rename = ns_rename,
    .unlink = ns_unlink,
    .mkdir = ns_mkdir,
    .sync_dir = ns_sync_dir,
    .list = ns_list,
    .exists = ns_exists,
};

cl_fs *lu_fs_nosync(void)
{
    static cl_fs fs = {&ns_ops};
    return &fs;
}
