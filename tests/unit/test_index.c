/* Unit tests for the ledger index (src/storage/index.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "storage/index.h"
#include "testutil.h"

typedef struct {
    char root[64];      /* mkdtemp directory, removed by teardown */
    char dir[PATH_MAX]; /* root/idx, the index directory */
    cl_index *idx;
} fixture;

static void rm_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        chmod(path, 0700);
        DIR *d = opendir(path);
        if (d != NULL) {
            struct dirent *e;
            while ((e = readdir(d)) != NULL) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                    continue;
                char sub[PATH_MAX];
                snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
                rm_tree(sub);
            }
            closedir(d);
        }
        rmdir(path);
    } else {
        unlink(path);
    }
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    strcpy(f->root, "/tmp/cl_index_test_XXXXXX");
    if (mkdtemp(f->root) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "%s/idx", f->root);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cl_index_close(f->idx);
    rm_tree(f->root);
    free(f);
    return 0;
}

static cl_index *open_idx(fixture *f, size_t map)
{
    assert_int_equal(cl_index_open(f->dir, map, &f->idx), CL_OK);
    assert_non_null(f->idx);
    return f->idx;
}

static void reopen(fixture *f)
{
    cl_index_close(f->idx);
    f->idx = NULL;
    open_idx(f, 0);
}

static cl_index_loc mkloc(uint64_t seqno)
{
    cl_index_loc l;
    memset(&l, 0, sizeof(l));
    l.chunk_start = seqno / 100 * 100 + 1;
    l.offset = seqno * 131;
    l.length = (uint32_t)(seqno * 7 + 3);
    l.view = seqno / 50 + 2;
    l.type = (uint8_t)(seqno % 5);
    l.flags = (uint8_t)(seqno % 3);
    return l;
}

static void assert_loc_equal(const cl_index_loc *a, const cl_index_loc *b)
{
    assert_int_equal(a->chunk_start, b->chunk_start);
    assert_int_equal(a->offset, b->offset);
    assert_int_equal(a->length, b->length);
    assert_int_equal(a->view, b->view);
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->flags, b->flags);
}

/* Puts entries [from, to] and, when coll_of returns an id, their collection rows, in one batch. */
typedef const char *(*coll_fn)(uint64_t seqno);

static void put_range(cl_index *idx, uint64_t from, uint64_t to, coll_fn coll_of)
{
    cl_index_batch *b;
    assert_int_equal(cl_index_batch_begin(idx, &b), CL_OK);
    for (uint64_t s = from; s <= to; s++) {
        cl_index_loc l = mkloc(s);
        assert_int_equal(cl_index_put_entry(b, s, &l), CL_OK);
        const char *c = coll_of ? coll_of(s) : NULL;
        if (c != NULL)
            assert_int_equal(cl_index_put_collection(b, c, strlen(c), s), CL_OK);
    }
    assert_int_equal(cl_index_batch_commit(b), CL_OK);
}

/* Collects scanned seqnos. */
typedef struct {
    uint64_t got[4096];
    size_t n;
    size_t stop_after; /* return 1 after this many (0: never) */
    int fail_with;     /* return this (negative) on the first call when non-zero */
} collect;

static int collect_cb(void *arg, uint64_t seqno)
{
    collect *c = arg;
    if (c->fail_with)
        return c->fail_with;
    c->got[c->n++] = seqno;
    return c->stop_after && c->n >= c->stop_after ? 1 : 0;
}

static size_t scan(cl_index *idx, const char *coll, uint64_t from, uint64_t to, size_t limit,
                   collect *c, uint64_t *next)
{
    c->n = 0;
    assert_int_equal(
        cl_index_collection_scan(idx, coll, strlen(coll), from, to, limit, collect_cb, c, next),
        CL_OK);
    return c->n;
}

/* ---- tests ---- */

static void test_roundtrip(void **state)
{
    fixture *f = *state;
    cl_index *idx = open_idx(f, 0);
    uint64_t last = 123;
    assert_int_equal(cl_index_last_seqno(idx, &last), CL_OK);
    assert_int_equal(last, 0);

    cl_index_loc a = {UINT64_MAX, UINT64_MAX - 1, UINT32_MAX, UINT64_MAX - 2, 0xff, 0xfe};
    cl_index_loc z = {0, 0, 0, 0, 0, 0};
    cl_index_loc m = {0x0102030405060708ull,
                      0x1112131415161718ull,
                      0x21222324,
                      0x3132333435363738ull,
                      0x41,
                      0x51};
    cl_index_batch *b;
    assert_int_equal(cl_index_batch_begin(idx, &b), CL_OK);
    assert_int_equal(cl_index_put_entry(b, 1, &a), CL_OK);
    assert_int_equal(cl_index_put_entry(b, 2, &z), CL_OK);
    assert_int_equal(cl_index_put_entry(b, UINT64_MAX, &m), CL_OK);
    assert_int_equal(cl_index_put_entry(b, 0, &a), CL_EINVAL);
    assert_int_equal(cl_index_put_entry(b, 3, NULL), CL_EINVAL);
    /* not visible before commit */
    cl_index_loc got;
    assert_int_equal(cl_index_get_entry(idx, 1, &got), CL_ENOENT);
    assert_int_equal(cl_index_batch_commit(b), CL_OK);

    assert_int_equal(cl_index_get_entry(idx, 1, &got), CL_OK);
    assert_loc_equal(&got, &a);
    assert_int_equal(cl_index_get_entry(idx, 2, &got), CL_OK);
    assert_loc_equal(&got, &z);
    assert_int_equal(cl_index_get_entry(idx, UINT64_MAX, &got), CL_OK);
    assert_loc_equal(&got, &m);
    assert_int_equal(cl_index_get_entry(idx, 3, &got), CL_ENOENT);
    assert_int_equal(cl_index_get_entry(idx, 0, &got), CL_ENOENT);
    assert_int_equal(cl_index_last_seqno(idx, &last), CL_OK);
    assert_int_equal(last, UINT64_MAX);
    assert_int_equal(cl_index_check(idx), CL_OK);
}

static const char *coll_mod3(uint64_t s)
{
    static const char *const names[] = {"alpha", "beta", NULL};
    return names[s % 3];
}

static void test_ordering(void **state)
{
    fixture *f = *state;
    cl_index *idx = open_idx(f, 0);
    static const uint64_t order[] = {50, 10, 70, 20, 60, 30, 40, 80, 5, 90};
    cl_index_batch *b;
    assert_int_equal(cl_index_batch_begin(idx, &b), CL_OK);
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        cl_index_loc l = mkloc(order[i]);
        assert_int_equal(cl_index_put_entry(b, order[i], &l), CL_OK);
        assert_int_equal(cl_index_put_collection(b, "c", 1, order[i]), CL_OK);
    }
    assert_int_equal(cl_index_batch_commit(b), CL_OK);
    uint64_t last;
    assert_int_equal(cl_index_last_seqno(idx, &last), CL_OK);
    assert_int_equal(last, 90);

    collect c = {0};
    assert_int_equal(scan(idx, "c", 0, UINT64_MAX, 0, &c, NULL), 10);
    for (size_t i = 1; i < c.n; i++)
        assert_true(c.got[i - 1] < c.got[i]);
    assert_int_equal(c.got[0], 5);
    assert_int_equal(c.got[9], 90);

    /* a later batch below the end (not appendable) and an overwrite of an existing entry */
    cl_index_loc over = mkloc(999);
    assert_int_equal(cl_index_batch_begin(idx, &b), CL_OK);
    cl_index_loc l15 = mkloc(15);
    assert_int_equal(cl_index_put_entry(b, 15, &l15), CL_OK);
    assert_int_equal(cl_index_put_collection(b, "c", 1, 15), CL_OK);
    assert_int_equal(cl_index_put_entry(b, 50, &over), CL_OK);
    assert_int_equal(cl_index_batch_commit(b), CL_OK);
    cl_index_loc got;
    assert_int_equal(cl_index_get_entry(idx, 50, &got), CL_OK);
    assert_loc_equal(&got, &over);
    assert_int_equal(cl_index_get_entry(idx, 15, &got), CL_OK);
    assert_loc_equal(&got, &l15);
    assert_int_equal(scan(idx, "c", 11, 19, 0, &c, NULL), 1);
    assert_int_equal(c.got[0], 15);
    /* rows put below the end were linked into the chain (I6): every scan start and the check */
    static const uint64_t rows[] = {5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90};
    for (uint64_t from = 0; from <= 91; from++) {
        size_t want = 0;
        for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
            want += rows[i] >= from;
        assert_int_equal(scan(idx, "c", from, UINT64_MAX, 0, &c, NULL), want);
    }
    assert_int_equal(cl_index_check(idx), CL_OK);

    /* collections whose ids are prefixes of each other stay apart */
    assert_int_equal(cl_index_batch_begin(idx, &b), CL_OK);
    assert_int_equal(cl_index_put_collection(b, "ab", 2, 100), CL_OK);
    assert_int_equal(cl_index_put_collection(b, "a", 1, 101), CL_OK);
    assert_int_equal(cl_index_put_collection(b, "a\x01", 2, 102), CL_OK);
    assert_int_equal(cl_index_put_collection(b, "b", 1, 103), CL_OK);
    assert_int_equal(cl_index_batch_commit(b), CL_OK);
    assert_int_equal(scan(idx, "a", 0, UINT64_MAX, 0, &c, NULL), 1);
    assert_int_equal(c.got[0], 101);
    assert_int_equal(scan(idx, "ab", 0, UINT64_MAX, 0, &c, NULL), 1);
    assert_int_equal(c.got[0], 100);
    assert_int_equal(scan(idx, "a\x01", 0, UINT64_MAX, 0, &c, NULL), 1);
    assert_int_equal(c.got[0], 102);
    assert_int_equal(cl_index_check(idx), CL_OK);
}

static void test_scan(void **state)
{
    fixture *f = *state;
    cl_index *idx = open_idx(f, 0);
    put_range(idx, 1, 300, coll_mod3); /* alpha: 3,6,..,300 (100); beta: 1,4,..,298 (100) */
    collect c = {0};
    uint64_t next = 7;

    assert_int_equal(scan(idx, "alpha", 0, UINT64_MAX, 0, &c, &next), 100);
    assert_int_equal(next, 0);
    assert_int_equal(c.got[0], 3);
    assert_int_equal(c.got[99], 300);

    /* from/to inclusive, from not itself in the collection */
    assert_int_equal(scan(idx, "alpha", 10, 30, 0, &c, &next), 7); /* 12..30 */
    assert_int_equal(c.got[0], 12);
    assert_int_equal(c.got[6], 30);
    assert_int_equal(next, 0);
    assert_int_equal(scan(idx, "beta", 4, 4, 0, &c, &next), 1);
    assert_int_equal(c.got[0], 4);
    assert_int_equal(scan(idx, "beta", 5, 6, 0, &c, &next), 0);
    assert_int_equal(scan(idx, "beta", 9, 3, 0, &c, &next), 0); /* from > to */
    assert_int_equal(scan(idx, "alpha", 301, UINT64_MAX, 0, &c, &next), 0);

    /* limit and next */
    assert_int_equal(scan(idx, "alpha", 0, UINT64_MAX, 10, &c, &next), 10);
    assert_int_equal(c.got[9], 30);
    assert_int_equal(next, 33);
    /* limit exactly reaching the end of the range: nothing left, next = 0 */
    assert_int_equal(scan(idx, "alpha", 0, 30, 10, &c, &next), 10);
    assert_int_equal(next, 0);
    assert_int_equal(scan(idx, "alpha", 295, UINT64_MAX, 2, &c, &next), 2);
    assert_int_equal(next, 0);

    /* paging with next covers everything exactly once, in order */
    uint64_t from = 1, expect = 1;
    size_t pages = 0, total = 0;
    do {
        scan(idx, "beta", from, UINT64_MAX, 7, &c, &next);
        for (size_t i = 0; i < c.n; i++, expect += 3)
            assert_int_equal(c.got[i], expect);
        total += c.n;
        pages++;
        from = next;
    } while (next != 0);
    assert_int_equal(total, 100);
    assert_int_equal(pages, 15);

    /* callback stops: next is the first seqno not delivered */
    c.stop_after = 3;
    assert_int_equal(scan(idx, "alpha", 0, UINT64_MAX, 0, &c, &next), 3);
    assert_int_equal(next, 12);
    c.stop_after = 0;
    /* callback error propagates */
    c.fail_with = CL_EIO;
    assert_int_equal(
        cl_index_collection_scan(idx, "alpha", 5, 0, UINT64_MAX, 0, collect_cb, &c, &next), CL_EIO);
    c.fail_with = 0;
    /* unknown collection */
    assert_int_equal(scan(idx, "gamma", 0, UINT64_MAX, 0, &c, &next), 0);
    assert_int_equal(next, 0);
    /* the index is usable after a callback error (read transaction released) */
    assert_int_equal(scan(idx, "alpha", 0, 3, 0, &c, NULL), 1);
}

typedef struct {
    char names[8][16];
    uint64_t counts[8];
    size_t n;
} list_acc;

static int list_cb(void *arg, const char *coll, size_t len, uint64_t count)
{
    list_acc *a = arg;
    assert_true(len < sizeof(a->names[0]) && a->n < 8);
    memcpy(a->names[a->n], coll, len);
    a->names[a->n][len] = 0;
    a->counts[a->n++] = count;
    return 0;
}

static const char *coll_three(uint64_t s)
{
    if (s % 10 == 0)
        return NULL;
    if (s <= 5)
        return "zeta";
    return s % 2 ? "eta" : "theta";
}

static void test_stats(void **state)
{
    fixture *f = *state;
    cl_index *idx = open_idx(f, 0);
    size_t n = 99;
    assert_int_equal(cl_index_collection_count(idx, &n), CL_OK);
    assert_int_equal(n, 0);
    cl_index_coll_stat st;
    assert_int_equal(cl_index_collection_stat(idx, "eta", 3, &st), CL_ENOENT);

    put_range(idx, 1, 40, coll_three);
    /* zeta: 1..5; eta: odd 7..39; theta: even 6..38 except multiples of 10 */
    assert_int_equal(cl_index_collection_count(idx, &n), CL_OK);
    assert_int_equal(n, 3);
    assert_int_equal(cl_index_collection_stat(idx, "zeta", 4, &st), CL_OK);
    assert_int_equal(st.count, 5);
    assert_int_equal(st.first, 1);
    assert_int_equal(st.last, 5);
    assert_int_equal(cl_index_collection_stat(idx, "eta", 3, &st), CL_OK);
    assert_int_equal(st.count, 17);
    assert_int_equal(st.first, 7);
    assert_int_equal(st.last, 39);
    assert_int_equal(cl_index_collection_stat(idx, "theta", 5, &st), CL_OK);
    assert_int_equal(st.count, 14); /* even 6..40 except 10, 20, 30, 40 */
    assert_int_equal(st.first, 6);
    assert_int_equal(st.last, 38);

    list_acc a = {0};
    assert_int_equal(cl_index_collections_list(idx, list_cb, &a), CL_OK);
    assert_int_equal(a.n, 3);
    assert_string_equal(a.names[0], "eta");
    assert_string_equal(a.names[1], "theta");
    assert_string_equal(a.names[2], "zeta");
    assert_int_equal(a.counts[0], 17);
    assert_int_equal(a.counts[2], 5);

    /* re-putting an existing pair changes nothing; a second collection for a seqno is refused and
     * the whole batch is dropped */
    cl_index_batch *b;
    assert_int_equal(cl_index_batch_begin(idx, &b), CL_OK);
    assert_int_equal(cl_index_put_collection(b, "zeta", 4, 3), CL_OK);
    assert_int_equal(cl_index_batch_commit(b), CL_OK);
    assert_int_equal(cl_index_collection_stat(idx, "zeta", 4, &st), CL_OK);
    assert_int_equal(st.count, 5);
    assert_int_equal(cl_index_batch_begin(idx, &b), CL_OK);
    assert_int_equal(cl_index_put_collection(b, "new", 3, 50), CL_OK);
    assert_int_equal(cl_index_put_collection(b, "eta", 3, 3), CL_OK);
    assert_int_equal(cl_index_batch_commit(b), CL_EEXIST);
    assert_int_equal(cl_index_collection_stat(idx, "new", 3, &st), CL_ENOENT);
    assert_int_equal(cl_index_collection_count(idx, &n), CL_OK);
    assert_int_equal(n, 3);

    /* a collection row may precede its entry, and an earlier seqno lowers "first" */
    assert_int_equal(cl_index_batch_begin(idx, &b), CL_OK);
    assert_int_equal(cl_index_put_collection(b, "new", 3, 60), CL_OK);
    assert_int_equal(cl_index_put_collection(b, "new", 3, 50), CL_OK);
    assert_int_equal(cl_index_put_collection(b, "eta", 3, 10), CL_OK);
    assert_int_equal(cl_index_batch_commit(b), CL_OK);
    assert_int_equal(cl_index_collection_stat(idx, "new", 3, &st), CL_OK);
    assert_int_equal(st.count, 2);
    assert_int_equal(st.first, 50);
    assert_int_equal(st.last, 60);
    assert_int_equal(cl_index_collection_stat(idx, "eta", 3, &st), CL_OK);
    assert_int_equal(st.count, 18);
    assert_int_equal(cl_index_collection_count(idx, &n), CL_OK);
    assert_int_equal(n, 4);
    assert_int_equal(cl_index_check(idx), CL_OK);
}

/* cl_index_del_meta, and cl_index_truncate_from_then: the cut and the batch (meta rows put and
 * removed) in one transaction; a batch that fails to apply leaves the cut undone too. */
static void test_truncate_then_meta(void **state)
{
    fixture *f = *state;
    cl_index *idx = open_idx(f, 0);
    put_range(idx, 1, 40, coll_three);
    char buf[16];
    size_t len = 0;
    cl_index_batch *b;
    assert_int_equal(cl_index_batch_begin(idx, &b), CL_OK);
    assert_int_equal(cl_index_put_meta(b, "node:a", "old", 3), CL_OK);
    assert_int_equal(cl_index_put_meta(b, "node:b", "cut", 3), CL_OK);
    assert_int_equal(cl_index_del_meta(b, ""), CL_EINVAL);
    assert_int_equal(cl_index_batch_commit(b), CL_OK);

    assert_int_equal(cl_index_batch_begin(idx, &b), CL_OK);
    assert_int_equal(cl_index_put_meta(b, "node:a", "new", 3), CL_OK);
    assert_int_equal(cl_index_del_meta(b, "node:b"), CL_OK);
    assert_int_equal(cl_index_del_meta(b, "node:none"), CL_OK);       /* absent: nothing */
    assert_int_equal(cl_index_truncate_from_then(idx, 31, b), CL_OK); /* frees b */
    uint64_t last;
    assert_int_equal(cl_index_last_seqno(idx, &last), CL_OK);
    assert_int_equal(last, 30);
    assert_int_equal(cl_index_get_meta(idx, "node:a", buf, sizeof buf, &len), CL_OK);
    assert_memory_equal(buf, "new", 3);
    assert_int_equal(cl_index_get_meta(idx, "node:b", buf, sizeof buf, &len), CL_ENOENT);
    /* without a batch: the cut alone */
    assert_int_equal(cl_index_truncate_from_then(idx, 21, NULL), CL_OK);
    assert_int_equal(cl_index_last_seqno(idx, &last), CL_OK);
    assert_int_equal(last, 20);
    /* a batch whose apply fails (a seqno under a second collection): neither happens */
    assert_int_equal(cl_index_batch_begin(idx, &b), CL_OK);
    assert_int_equal(cl_index_put_meta(b, "node:a", "lost", 4), CL_OK);
    assert_int_equal(cl_index_put_collection(b, "other", 5, 5), CL_OK);
    assert_int_equal(cl_index_truncate_from_then(idx, 11, b), CL_EEXIST);
    assert_int_equal(cl_index_last_seqno(idx, &last), CL_OK);
    assert_int_equal(last, 20);
    assert_int_equal(cl_index_get_meta(idx, "node:a", buf, sizeof buf, &len), CL_OK);
    assert_memory_equal(buf, "new", 3);
    assert_int_equal(cl_index_check(idx), CL_OK);
}

static void test_truncate(void **state)
{
    fixture *f = *state;
    cl_index *idx = open_idx(f, 0);
    put_range(idx, 1, 40, coll_three);
    cl_index_batch *b;
    assert_int_equal(cl_index_batch_begin(idx, &b), CL_OK);
    assert_int_equal(cl_index_put_collection(b, "late", 4, 40), CL_OK);
    assert_int_equal(cl_index_put_collection(b, "late", 4, 30), CL_OK);
    assert_int_equal(cl_index_put_meta(b, "applied", "x", 1), CL_OK);
    /* truncation is refused while a batch is open */
    assert_int_equal(cl_index_truncate_from(idx, 20), CL_ESTATE);
    assert_int_equal(cl_index_batch_commit(b), CL_OK);
    size_t n;
    assert_int_equal(cl_index_collection_count(idx, &n), CL_OK);
    assert_int_equal(n, 4);

    assert_int_equal(cl_index_truncate_from(idx, 0), CL_EINVAL);
    assert_int_equal(cl_index_truncate_from(idx, 41), CL_OK); /* past the end: nothing */
    assert_int_equal(cl_index_truncate_from(idx, 16), CL_OK);
    uint64_t last;
    assert_int_equal(cl_index_last_seqno(idx, &last), CL_OK);
    assert_int_equal(last, 15);
    cl_index_loc got;
    assert_int_equal(cl_index_get_entry(idx, 16, &got), CL_ENOENT);
    assert_int_equal(cl_index_get_entry(idx, 40, &got), CL_ENOENT);
    assert_int_equal(cl_index_get_entry(idx, 15, &got), CL_OK);

    cl_index_coll_stat st;
    assert_int_equal(cl_index_collection_stat(idx, "late", 4, &st), CL_ENOENT);
    assert_int_equal(cl_index_collection_count(idx, &n), CL_OK);
    assert_int_equal(n, 3);
    assert_int_equal(cl_index_collection_stat(idx, "eta", 3, &st), CL_OK);
    assert_int_equal(st.count, 5); /* 7 9 11 13 15 */
    assert_int_equal(st.first, 7);
    assert_int_equal(st.last, 15);
    assert_int_equal(cl_index_collection_stat(idx, "theta", 5, &st), CL_OK);
    assert_int_equal(st.count, 4); /* 6 8 12 14 */
    assert_int_equal(st.last, 14);
    assert_int_equal(cl_index_collection_stat(idx, "zeta", 4, &st), CL_OK);
    assert_int_equal(st.count, 5);

    collect c = {0};
    uint64_t next;
    assert_int_equal(scan(idx, "eta", 0, UINT64_MAX, 0, &c, &next), 5);
    assert_int_equal(c.got[4], 15);
    assert_int_equal(scan(idx, "late", 0, UINT64_MAX, 0, &c, &next), 0);
    list_acc a = {0};
    assert_int_equal(cl_index_collections_list(idx, list_cb, &a), CL_OK);
    assert_int_equal(a.n, 3);
    /* meta is left alone */
    char buf[4];
    size_t len;
    assert_int_equal(cl_index_get_meta(idx, "applied", buf, sizeof(buf), &len), CL_OK);
    assert_int_equal(len, 1);
    assert_int_equal(cl_index_check(idx), CL_OK);

    /* appending again after truncation, over the removed range */
    put_range(idx, 16, 25, coll_three);
    assert_int_equal(cl_index_collection_stat(idx, "eta", 3, &st), CL_OK);
    assert_int_equal(st.last, 25);
    assert_int_equal(cl_index_check(idx), CL_OK);

    /* truncating everything empties the index */
    assert_int_equal(cl_index_truncate_from(idx, 1), CL_OK);
    assert_int_equal(cl_index_last_seqno(idx, &last), CL_OK);
    assert_int_equal(last, 0);
    assert_int_equal(cl_index_collection_count(idx, &n), CL_OK);
    assert_int_equal(n, 0);
    assert_int_equal(cl_index_check(idx), CL_OK);
}

static void test_reopen(void **state)
{
    fixture *f = *state;
    cl_index *idx = open_idx(f, 0);
    put_range(idx, 1, 500, coll_mod3);
    cl_index_batch *b;
    assert_int_equal(cl_index_batch_begin(idx, &b), CL_OK);
    assert_int_equal(cl_index_put_meta(b, "chunk", "ledger_1", 8), CL_OK);
    assert_int_equal(cl_index_batch_commit(b), CL_OK);
    assert_int_equal(cl_index_sync(idx), CL_OK);
    reopen(f);
    idx = f->idx;
    uint64_t last;
    assert_int_equal(cl_index_last_seqno(idx, &last), CL_OK);
    assert_int_equal(last, 500);
    for (uint64_t s = 1; s <= 500; s += 37) {
        cl_index_loc got, want = mkloc(s);
        assert_int_equal(cl_index_get_entry(idx, s, &got), CL_OK);
        assert_loc_equal(&got, &want);
    }
    size_t n;
    assert_int_equal(cl_index_collection_count(idx, &n), CL_OK);
    assert_int_equal(n, 2);
    char buf[16];
    size_t len;
    assert_int_equal(cl_index_get_meta(idx, "chunk", buf, sizeof(buf), &len), CL_OK);
    assert_memory_equal(buf, "ledger_1", 8);
    assert_int_equal(cl_index_check(idx), CL_OK);

    /* removing the files gives an empty index on the next open */
    cl_index_close(f->idx);
    f->idx = NULL;
    assert_int_equal(cl_index_remove_files(f->dir), CL_OK);
    assert_int_equal(cl_index_remove_files(f->dir), CL_OK);
    idx = open_idx(f, 0);
    assert_int_equal(cl_index_last_seqno(idx, &last), CL_OK);
    assert_int_equal(last, 0);
}

static const char *coll_many(uint64_t s)
{
    static char name[32];
    snprintf(name, sizeof(name), "user-%03u", (unsigned)(s % 97));
    return name;
}

static void test_map_growth(void **state)
{
    fixture *f = *state;
    cl_index *idx = open_idx(f, 64 * 1024);
    size_t initial = cl_index_map_size(idx);
    assert_true(initial <= 64 * 1024);
    const uint64_t total = 100000;
    for (uint64_t s = 1; s <= total; s += 1000)
        put_range(idx, s, s + 999, coll_many);
    assert_true(cl_index_map_size(idx) > initial);
    uint64_t last;
    assert_int_equal(cl_index_last_seqno(idx, &last), CL_OK);
    assert_int_equal(last, total);
    for (uint64_t s = 1; s <= total; s += 997) {
        cl_index_loc got, want = mkloc(s);
        assert_int_equal(cl_index_get_entry(idx, s, &got), CL_OK);
        assert_loc_equal(&got, &want);
    }
    size_t n;
    assert_int_equal(cl_index_collection_count(idx, &n), CL_OK);
    assert_int_equal(n, 97);
    cl_index_coll_stat st;
    assert_int_equal(cl_index_collection_stat(idx, "user-000", 8, &st), CL_OK);
    assert_int_equal(st.count, total / 97);
    /* one single large batch, and a big truncation, also grow the map */
    size_t before = cl_index_map_size(idx);
    put_range(idx, total + 1, total + 60000, coll_many);
    assert_int_equal(cl_index_truncate_from(idx, 50000), CL_OK);
    assert_true(cl_index_map_size(idx) >= before);
    assert_int_equal(cl_index_last_seqno(idx, &last), CL_OK);
    assert_int_equal(last, 49999);
    assert_int_equal(cl_index_check(idx), CL_OK);
    reopen(f);
    assert_int_equal(cl_index_last_seqno(f->idx, &last), CL_OK);
    assert_int_equal(last, 49999);
}

/* Rss of this process's mapping of dir/data.mdb, in KiB (0: not mapped). */
static long mapping_rss_kb(const char *dir)
{
    char want[PATH_MAX + 16], line[PATH_MAX + 256];
    snprintf(want, sizeof want, "%s/data.mdb", dir);
    FILE *f = fopen("/proc/self/smaps", "r");
    assert_non_null(f);
    long rss = 0;
    int in = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        size_t n = strlen(line);
        if (n > 0 && line[n - 1] == '\n')
            line[--n] = '\0';
        unsigned long lo, hi;
        char dash;
        if (sscanf(line, "%lx%c%lx ", &lo, &dash, &hi) == 3 && dash == '-') { /* a mapping */
            in = n >= strlen(want) && strcmp(line + n - strlen(want), want) == 0;
            continue;
        }
        long kb;
        if (in && sscanf(line, "Rss: %ld kB", &kb) == 1)
            rss += kb;
    }
    fclose(f);
    return rss;
}

static long file_kb_of(const fixture *f)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/data.mdb", f->dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (long)st.st_blocks / 2; /* allocated: the file is sparse up to the map size */
}

/* The pages a commit writes in place (MDB_WRITEMAP) and a read visits stay mapped unless the
 * index drops them: the mapping's resident set must stay a small part of the file however much
 * is written or read, also after the map grew (LMDB remaps it elsewhere), and nothing written
 * may be lost by dropping pages that were still dirty. */
static void test_resident_bounded(void **state)
{
    fixture *f = *state;
    const size_t map = (size_t)32 << 20;
    cl_index *idx = open_idx(f, map);
    uint64_t s = 1;
    for (; s <= 200000; s += 20)
        put_range(idx, s, s + 19, coll_mod3);
    assert_int_equal(cl_index_map_size(idx), map); /* not remapped yet */
    long file_kb = file_kb_of(f);
    assert_true(file_kb > 12 * 1024); /* large enough to tell */
    assert_true(mapping_rss_kb(f->dir) * 4 < file_kb);
    for (; s <= 450000; s += 20) /* grows the map: written pages now land in a new mapping */
        put_range(idx, s, s + 19, coll_mod3);
    assert_true(cl_index_map_size(idx) > map);
    file_kb = file_kb_of(f);
    assert_true(mapping_rss_kb(f->dir) * 4 < file_kb);
    const uint64_t total = s - 1;
    for (uint64_t q = 1; q <= total; q++) {
        cl_index_loc got, want = mkloc(q);
        assert_int_equal(cl_index_get_entry(idx, q, &got), CL_OK);
        assert_loc_equal(&got, &want);
    }
    assert_true(mapping_rss_kb(f->dir) * 4 < file_kb);
    assert_int_equal(cl_index_check(idx), CL_OK);
    reopen(f);
    uint64_t last;
    assert_int_equal(cl_index_last_seqno(f->idx, &last), CL_OK);
    assert_int_equal(last, total);
    for (uint64_t q = 1; q <= total; q += 1009) {
        cl_index_loc got, want = mkloc(q);
        assert_int_equal(cl_index_get_entry(f->idx, q, &got), CL_OK);
        assert_loc_equal(&got, &want);
    }
    assert_int_equal(cl_index_check(f->idx), CL_OK);
}

static void test_meta(void **state)
{
    fixture *f = *state;
    cl_index *idx = open_idx(f, 0);
    char buf[64];
    size_t len = 0;
    assert_int_equal(cl_index_get_meta(idx, "k", buf, sizeof(buf), &len), CL_ENOENT);
    cl_index_batch *b;
    assert_int_equal(cl_index_batch_begin(idx, &b), CL_OK);
    assert_int_equal(cl_index_put_meta(b, "k", "one", 3), CL_OK);
    assert_int_equal(cl_index_put_meta(b, "k", "value-two", 9), CL_OK); /* later put wins */
    assert_int_equal(cl_index_put_meta(b, "empty", NULL, 0), CL_OK);
    assert_int_equal(cl_index_put_meta(b, "", "x", 1), CL_EINVAL);
    assert_int_equal(cl_index_put_meta(b, "k", NULL, 1), CL_EINVAL);
    char longkey[CL_INDEX_META_KEY_MAX + 2];
    memset(longkey, 'k', sizeof(longkey) - 1);
    longkey[sizeof(longkey) - 1] = 0;
    assert_int_equal(cl_index_put_meta(b, longkey, "x", 1), CL_EINVAL);
    longkey[CL_INDEX_META_KEY_MAX] = 0;
    assert_int_equal(cl_index_put_meta(b, longkey, "max", 3), CL_OK);
    assert_int_equal(cl_index_batch_commit(b), CL_OK);

    assert_int_equal(cl_index_get_meta(idx, "k", buf, sizeof(buf), &len), CL_OK);
    assert_int_equal(len, 9);
    assert_memory_equal(buf, "value-two", 9);
    assert_int_equal(cl_index_get_meta(idx, "k", NULL, 0, &len), CL_EOVERFLOW);
    assert_int_equal(len, 9);
    assert_int_equal(cl_index_get_meta(idx, "k", buf, 8, &len), CL_EOVERFLOW);
    assert_int_equal(cl_index_get_meta(idx, "empty", NULL, 0, &len), CL_OK);
    assert_int_equal(len, 0);
    assert_int_equal(cl_index_get_meta(idx, longkey, buf, sizeof(buf), &len), CL_OK);
    assert_int_equal(len, 3);
    assert_int_equal(cl_index_get_meta(idx, "", buf, sizeof(buf), &len), CL_EINVAL);
    /* this module's own bookkeeping is not visible under caller keys */
    assert_int_equal(cl_index_get_meta(idx, "cl_index.version", buf, sizeof(buf), &len), CL_ENOENT);
}

static void test_invalid_collection(void **state)
{
    fixture *f = *state;
    cl_index *idx = open_idx(f, 0);
    char big[CL_INDEX_COLL_MAX + 1];
    memset(big, 'x', sizeof(big));
    cl_index_batch *b;
    assert_int_equal(cl_index_batch_begin(idx, &b), CL_OK);
    assert_int_equal(cl_index_put_collection(b, "", 0, 1), CL_EINVAL);
    assert_int_equal(cl_index_put_collection(b, NULL, 3, 1), CL_EINVAL);
    assert_int_equal(cl_index_put_collection(b, "a\0b", 3, 1), CL_EINVAL);
    assert_int_equal(cl_index_put_collection(b, "ab\0", 3, 1), CL_EINVAL);
    assert_int_equal(cl_index_put_collection(b, big, sizeof(big), 1), CL_EINVAL);
    assert_int_equal(cl_index_put_collection(b, "ok", 2, 0), CL_EINVAL);
    assert_int_equal(cl_index_put_collection(b, big, CL_INDEX_COLL_MAX, 1), CL_OK);
    assert_int_equal(cl_index_batch_commit(b), CL_OK);

    cl_index_coll_stat st;
    assert_int_equal(cl_index_collection_stat(idx, big, CL_INDEX_COLL_MAX, &st), CL_OK);
    assert_int_equal(st.count, 1);
    assert_int_equal(cl_index_collection_stat(idx, big, sizeof(big), &st), CL_EINVAL);
    assert_int_equal(cl_index_collection_stat(idx, "a\0b", 3, &st), CL_EINVAL);
    assert_int_equal(cl_index_collection_stat(idx, "", 0, &st), CL_EINVAL);
    collect c = {0};
    assert_int_equal(
        cl_index_collection_scan(idx, "a\0b", 3, 0, UINT64_MAX, 0, collect_cb, &c, NULL),
        CL_EINVAL);
    assert_int_equal(
        cl_index_collection_scan(idx, big, sizeof(big), 0, UINT64_MAX, 0, collect_cb, &c, NULL),
        CL_EINVAL);
    assert_int_equal(cl_index_collection_scan(idx, "", 0, 0, UINT64_MAX, 0, collect_cb, &c, NULL),
                     CL_EINVAL);
    c.n = 0;
    assert_int_equal(cl_index_collection_scan(idx, big, CL_INDEX_COLL_MAX, 0, UINT64_MAX, 0,
                                              collect_cb, &c, NULL),
                     CL_OK);
    assert_int_equal(c.n, 1);
    assert_int_equal(cl_index_check(idx), CL_OK);
}

/* Edits the closed index in f->dir with LMDB itself: deletes (val NULL) or puts row key of db. */
/* A closed index whose collection "c" holds rows 10, 20, ..., n * 10. */
static void closed_rows(fixture *f, uint64_t n)
{
    cl_index *idx = open_idx(f, 0);
    cl_index_batch *b;
    assert_int_equal(cl_index_batch_begin(idx, &b), CL_OK);
    for (uint64_t s = 1; s <= n; s++)
        assert_int_equal(cl_index_put_collection(b, "c", 1, s * 10), CL_OK);
    assert_int_equal(cl_index_batch_commit(b), CL_OK);
    cl_index_close(f->idx);
    f->idx = NULL;
}

static void raw_row(fixture *f, const char *db, const uint8_t *key, size_t klen, const uint8_t *val,
                    size_t vlen)
{
    assert_int_equal(tu_lmdb_row(f->dir, db, key, klen, val, vlen), 0);
}

/* A row put below a collection's last is linked in through the row after it (I6). When that row is
 * not there, or does not link over the new seqno, or the new seqno already has a collection row
 * without its entrycoll row, the batch is refused with CL_ECORRUPT and changes nothing. The first
 * case came back as CL_ENOENT, which the ledger does not count as damage; the other two were
 * refused before too (the row put last finds its key taken) and stay as regression cases. */
static void test_relink_damage(void **state)
{
    fixture *f = *state;
    for (int v = 0; v < 3; v++) {
        closed_rows(f, 3);
        uint8_t kb[10] = {'c', 0, 0, 0, 0, 0, 0, 0, 0, 30}, link[8] = {0, 0, 0, 0, 0, 0, 0, 27};
        uint8_t ek[8] = {0, 0, 0, 0, 0, 0, 0, 20};
        uint64_t put = 25;
        if (v == 0) /* the last row lost, its statistics intact */
            raw_row(f, "collections", kb, sizeof kb, NULL, 0);
        else if (v == 1) /* the row after 25 links to 27, not over it */
            raw_row(f, "collections", kb, sizeof kb, link, sizeof link);
        else { /* 20's entrycoll row lost, its collection row intact: 20 is put again */
            raw_row(f, "entrycoll", ek, sizeof ek, NULL, 0);
            put = 20;
        }
        cl_index *idx = open_idx(f, 0);
        cl_index_batch *b;
        assert_int_equal(cl_index_batch_begin(idx, &b), CL_OK);
        assert_int_equal(cl_index_put_collection(b, "c", 1, put), CL_OK);
        assert_int_equal(cl_index_batch_commit(b), CL_ECORRUPT);
        cl_index_coll_stat st;
        assert_int_equal(cl_index_collection_stat(idx, "c", 1, &st), CL_OK);
        assert_int_equal(st.count, 3); /* the batch changed nothing */
        cl_index_close(f->idx);
        f->idx = NULL;
        assert_int_equal(cl_index_remove_files(f->dir), CL_OK);
    }
}

/* I6: a row lost from the middle of a collection, its neighbours and the statistics intact (what
 * a stale index page can look like), fails every scan that reads the row after the gap from a
 * start at or before the lost row, and cl_index_check; a scan that starts after it is served. */
static void test_chain_damage(void **state)
{
    fixture *f = *state;
    closed_rows(f, 10);
    uint8_t kb[10] = {'c', 0, 0, 0, 0, 0, 0, 0, 0, 50};
    raw_row(f, "collections", kb, sizeof kb, NULL, 0);

    cl_index *idx = open_idx(f, 0);
    collect c = {0};
    for (uint64_t from = 0; from <= 50; from += 5)
        assert_int_equal(
            cl_index_collection_scan(idx, "c", 1, from, UINT64_MAX, 0, collect_cb, &c, NULL),
            CL_ECORRUPT);
    /* a window that ends before the lost row lists (it reads 40 to see where it ends); one that
     * ends on the row before the gap reads the row after it */
    assert_int_equal(scan(idx, "c", 0, 30, 0, &c, NULL), 3);
    assert_int_equal(cl_index_collection_scan(idx, "c", 1, 0, 40, 0, collect_cb, &c, NULL),
                     CL_ECORRUPT);
    assert_int_equal(scan(idx, "c", 51, UINT64_MAX, 0, &c, NULL), 5);
    assert_int_equal(c.got[0], 60);
    assert_int_equal(cl_index_check(idx), CL_ECORRUPT);
}

static void test_bad_dir(void **state)
{
    fixture *f = *state;
    cl_index *idx = (cl_index *)&idx; /* must be reset to NULL on failure */
    char path[PATH_MAX];

    /* parent does not exist */
    snprintf(path, sizeof(path), "%s/missing/idx", f->root);
    assert_int_equal(cl_index_open(path, 0, &idx), CL_EIO);
    assert_null(idx);

    /* the path is a regular file, or lies under one */
    snprintf(path, sizeof(path), "%s/file", f->root);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(cl_index_open(path, 0, &idx), CL_EIO);
    snprintf(path, sizeof(path), "%s/file/idx", f->root);
    assert_int_equal(cl_index_open(path, 0, &idx), CL_EIO);

    /* the data file is not an LMDB environment */
    snprintf(path, sizeof(path), "%s/garbage", f->root);
    assert_int_equal(mkdir(path, 0700), 0);
    char data[PATH_MAX + 16];
    snprintf(data, sizeof(data), "%s/data.mdb", path);
    fp = fopen(data, "w");
    assert_non_null(fp);
    for (int i = 0; i < 3000; i++)
        fputs("not an lmdb file ", fp);
    fclose(fp);
    assert_int_equal(cl_index_open(path, 0, &idx), CL_ECORRUPT); /* MDB_INVALID: damage */
    assert_null(idx);

    /* no permission (root ignores mode bits, so only checked for other users) */
    if (geteuid() != 0) {
        snprintf(path, sizeof(path), "%s/ro", f->root);
        assert_int_equal(mkdir(path, 0500), 0);
        assert_int_equal(cl_index_open(path, 0, &idx), CL_EIO);
        snprintf(path, sizeof(path), "%s/ro/idx", f->root);
        assert_int_equal(cl_index_open(path, 0, &idx), CL_EIO);
    }

    assert_int_equal(cl_index_open(NULL, 0, &idx), CL_EINVAL);
    assert_int_equal(cl_index_open("", 0, &idx), CL_EINVAL);

    /* the directory is created with mode 0700 */
    open_idx(f, 0);
    struct stat st;
    assert_int_equal(stat(f->dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
}

static int reenter_cb(void *arg, uint64_t seqno)
{
    cl_index *idx = arg;
    cl_index_loc l;
    uint64_t last;
    assert_int_equal(cl_index_get_entry(idx, seqno, &l), CL_ESTATE);
    assert_int_equal(cl_index_last_seqno(idx, &last), CL_ESTATE);
    cl_index_batch *b;
    assert_int_equal(cl_index_batch_begin(idx, &b), CL_OK);
    assert_int_equal(cl_index_put_entry(b, 1000, &l), CL_OK);
    assert_int_equal(cl_index_batch_commit(b), CL_ESTATE);
    assert_int_equal(cl_index_truncate_from(idx, 1), CL_ESTATE);
    return 1;
}

static void test_batch_rules(void **state)
{
    fixture *f = *state;
    cl_index *idx = open_idx(f, 0);
    cl_index_batch *b, *b2;
    assert_int_equal(cl_index_batch_begin(idx, &b), CL_OK);
    assert_int_equal(cl_index_batch_begin(idx, &b2), CL_ESTATE);
    assert_null(b2);
    cl_index_loc l = mkloc(1);
    assert_int_equal(cl_index_put_entry(b, 1, &l), CL_OK);
    cl_index_batch_abort(b);
    cl_index_batch_abort(NULL);
    assert_int_equal(cl_index_get_entry(idx, 1, &l), CL_ENOENT);
    /* an empty batch commits */
    assert_int_equal(cl_index_batch_begin(idx, &b), CL_OK);
    assert_int_equal(cl_index_batch_commit(b), CL_OK);

    put_range(idx, 1, 5, coll_mod3);
    uint64_t next;
    assert_int_equal(
        cl_index_collection_scan(idx, "beta", 4, 0, UINT64_MAX, 0, reenter_cb, idx, &next), CL_OK);
    assert_int_equal(next, 4);
    assert_int_equal(cl_index_get_entry(idx, 1000, &l), CL_ENOENT);
    assert_int_equal(cl_index_check(idx), CL_OK);
}

static void test_alloc_failures(void **state)
{
    fixture *f = *state;
    cl_index *idx = open_idx(f, 0);
    cl_index_close(idx);
    f->idx = NULL;
    /* every allocation this module makes may fail; each failure is CL_ENOMEM and leaves nothing
     * behind (ASan checks the leaks) */
    int ok = 0;
    for (long n = 0; n < 64 && !ok; n++) {
        cl_alloc_fail_after(n);
        cl_index *x = NULL;
        cl_index_batch *b = NULL;
        int rc = cl_index_open(f->dir, 0, &x);
        if (rc == CL_OK)
            rc = cl_index_batch_begin(x, &b);
        for (uint64_t s = 1; rc == CL_OK && s <= 200; s++) {
            cl_index_loc l = mkloc(s);
            rc = cl_index_put_entry(b, s, &l);
            if (rc == CL_OK)
                rc = cl_index_put_collection(b, "c", 1, s);
            if (rc == CL_OK)
                rc = cl_index_put_meta(b, "m", "v", 1);
        }
        if (rc == CL_OK) {
            rc = cl_index_batch_commit(b);
            b = NULL;
        }
        cl_alloc_fail_after(-1);
        cl_index_batch_abort(b);
        if (rc == CL_OK) {
            ok = 1;
            uint64_t last;
            assert_int_equal(cl_index_last_seqno(x, &last), CL_OK);
            assert_int_equal(last, 200);
            assert_int_equal(cl_index_check(x), CL_OK);
        } else {
            assert_int_equal(rc, CL_ENOMEM);
        }
        cl_index_close(x);
    }
    assert_true(ok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncate_then_meta, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ordering, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_growth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resident_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_meta, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_collection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relink_damage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_damage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alloc_failures, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
