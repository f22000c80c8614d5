#include "testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
