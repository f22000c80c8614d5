#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ledger/entry.h"

const char *tu_tempdir(const char *prefix)
{
    static char slots[4][512];
    static int next;
    char *p = slots[next++ % 4];
    const char *base = getenv("TMPDIR");
    snprintf(p, 512, "%s/%s-XXXXXX", base && *base ? base : "/tmp", prefix);
    if (mkdtemp(p) == NULL)
        return NULL;
    return p;
}

void tu_rmrf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (d != NULL) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                    continue;
                char sub[1024];
                snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
                tu_rmrf(sub);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b != NULL && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b != NULL) {
        b[n] = '\0';
        if (len)
            *len = (size_t)n;
    }
    return b;
}

const char *tu_source_path(const char *rel)
{
    static char buf[1024];
    const char *root = getenv("CLEDGER_SOURCE_DIR");
    snprintf(buf, sizeof buf, "%s/%s", root && *root ? root : "..", rel);
    return buf;
}

int tu_flip_byte(const char *path, uint64_t off, uint8_t mask)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -1;
    uint8_t b;
    int rc = pread(fd, &b, 1, (off_t)off) == 1 ? 0 : -1;
    b ^= mask;
    if (rc == 0 && pwrite(fd, &b, 1, (off_t)off) != 1)
        rc = -1;
    close(fd);
    return rc;
}

int tu_grep_dir(const char *dir, const void *needle, size_t n)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char sub[1024];
        snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(sub, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            found = tu_grep_dir(sub, needle, n);
        } else if (S_ISREG(st.st_mode)) {
            size_t len = 0;
            char *b = tu_read_file(sub, &len);
            if (b != NULL && len >= n) {
                for (size_t i = 0; i + n <= len && !found; i++)
                    found = memcmp(b + i, needle, n) == 0;
            }
            free(b);
        }
    }
    closedir(d);
    return found;
}

static int copy_regular(const char *from, const char *to)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -1;
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc = out < 0 ? -1 : 0;
    static const char zero[1 << 16];
    static char buf[1 << 16];
    off_t off = 0;
    ssize_t n;
    while (rc == 0 && (n = read(in, buf, sizeof buf)) != 0) {
        if (n < 0)
            rc = -1;
        else if (n == (ssize_t)sizeof buf && memcmp(buf, zero, sizeof buf) == 0)
            off += n; /* a hole */
        else if (pwrite(out, buf, (size_t)n, off) != n)
            rc = -1;
        else
            off += n;
    }
    if (rc == 0 && ftruncate(out, off) != 0)
        rc = -1;
    close(in);
    if (out >= 0 && close(out) != 0)
        rc = -1;
    return rc;
}

int tu_copy_tree(const char *from, const char *to)
{
    struct stat st;
    if (lstat(from, &st) != 0)
        return -1;
    if (S_ISREG(st.st_mode))
        return copy_regular(from, to);
    if (!S_ISDIR(st.st_mode) || (mkdir(to, 0700) != 0 && errno != EEXIST))
        return -1;
    DIR *d = opendir(from);
    if (d == NULL)
        return -1;
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char a[1024], b[1024];
        snprintf(a, sizeof a, "%s/%s", from, e->d_name);
        snprintf(b, sizeof b, "%s/%s", to, e->d_name);
        if (lstat(a, &st) == 0 && (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)))
            rc = tu_copy_tree(a, b);
    }
    closedir(d);
    return rc;
}

const char *tu_fp(char c)
{
    static char buf[8][96];
    static unsigned slot;
    char *b = buf[slot++ % 8];
    for (int i = 0; i < 32; i++) {
        b[i * 3] = c;
        b[i * 3 + 1] = c;
        b[i * 3 + 2] = i == 31 ? '\0' : ':';
    }
    return b;
}

uint32_t tu_dir_crc(const char *dir)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0)
        abort();
    uint32_t c = 0;
    for (int i = 0; i < n; i++) {
        char p[1024];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, names[i]->d_name);
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
            size_t len = 0;
            char *b = tu_read_file(p, &len);
            if (b == NULL)
                abort();
            c = cl_crc32c(c, names[i]->d_name, strlen(names[i]->d_name));
            c = cl_crc32c(c, b, len);
            free(b);
        }
        free(names[i]);
    }
    free(names);
    return c;
}

int tu_lmdb_begin(const char *env_dir, const char *db, int rdonly, MDB_env **env, MDB_txn **txn,
                  MDB_dbi *dbi)
{
    *env = NULL;
    *txn = NULL;
    int rc = mdb_env_create(env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(*env, 8);
    if (rc == 0)
        rc = mdb_env_open(*env, env_dir, rdonly ? MDB_RDONLY : 0, 0600);
    if (rc == 0)
        rc = mdb_txn_begin(*env, NULL, rdonly ? MDB_RDONLY : 0, txn);
    if (rc == 0)
        rc = mdb_dbi_open(*txn, db, 0, dbi);
    if (rc != 0) {
        (void)tu_lmdb_end(*env, *txn, 0);
        *env = NULL;
        *txn = NULL;
    }
    return rc;
}

int tu_lmdb_end(MDB_env *env, MDB_txn *txn, int commit)
{
    int rc = 0;
    if (txn != NULL) {
        if (commit)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    if (env != NULL)
        mdb_env_close(env);
    return rc;
}

int tu_lmdb_row(const char *env_dir, const char *db, const void *key, size_t klen, const void *val,
                size_t vlen)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    int rc = tu_lmdb_begin(env_dir, db, 0, &env, &txn, &dbi);
    if (rc != 0)
        return -1;
    rc = val != NULL ? mdb_put(txn, dbi, &k, &v, 0) : mdb_del(txn, dbi, &k, NULL);
    int end = tu_lmdb_end(env, txn, rc == 0);
    return rc == 0 && end == 0 ? 0 : -1;
}

int tu_lmdb_get(const char *env_dir, const char *db, const void *key, size_t klen, void *out,
                size_t n)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_val k = {klen, (void *)key}, v;
    if (tu_lmdb_begin(env_dir, db, 1, &env, &txn, &dbi) != 0)
        return -1;
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc == 0 && v.mv_size == n)
        memcpy(out, v.mv_data, n);
    (void)tu_lmdb_end(env, txn, 0);
    return rc == 0 && v.mv_size == n ? 0 : -1;
}
