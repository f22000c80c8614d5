/*
 * test_merkle.c — the persisted Merkle tree against a naive in-memory reference.
 *
 * The reference below is the only in-memory tree in the project: a direct transcription of the
 * recursive definitions of receipts.md §6.4 (MTH, PATH) and §7.2 (PROOF/SUBPROOF) over an array
 * of leaves. It memoises the MTH of every range the recursion visits (2n-1 nodes) so that checking
 * every proof of every size stays cheap, but it computes nothing the definitions do not.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "crypto/hash.h"
#include "ledger/merkle.h"
#include "storage/fs.h"
#include "testutil.h"

#define H 32

/* ---- helpers ------------------------------------------------------------------------------- */

/* Test-side comparison; the module itself compares roots with cl_ct_equal. */
static int heq(const uint8_t *a, const uint8_t *b) { return memcmp(a, b, H) == 0; }

static void make_dir(char *out, size_t cap)
{
    snprintf(out, cap, "/tmp/cl_merkle_XXXXXX");
    assert_non_null(mkdtemp(out));
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static void level_file(char *out, size_t cap, const char *dir, unsigned k)
{
    snprintf(out, cap, "%s/level_%02u", dir, k);
}

static long file_len(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

static uint64_t rng_state = 0x1234567;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Leaf i of family `fam`: leaf 0 of family 0 is 32 zero bytes, as in CCF. */
static void make_leaf(uint64_t i, uint32_t fam, uint8_t out[H])
{
    if (i == 0 && fam == 0) {
        memset(out, 0, H);
        return;
    }
    uint8_t in[12];
    memcpy(in, &i, 8);
    memcpy(in + 8, &fam, 4);
    cl_sha256(in, sizeof in, out);
}

static uint8_t (*make_leaves(uint64_t n, uint32_t fam))[H]
{
    uint8_t(*l)[H] = malloc((n ? n : 1) * H);
    assert_non_null(l);
    for (uint64_t i = 0; i < n; i++)
        make_leaf(i, fam, l[i]);
    return l;
}

static cl_merkle *open_tree(const char *dir)
{
    cl_merkle *t = NULL;
    assert_int_equal(cl_merkle_open(cl_fs_posix(), dir, &t), CL_OK);
    assert_int_equal(cl_merkle_check(t), CL_OK);
    return t;
}

static void append_all(cl_merkle *t, uint8_t (*leaves)[H], uint64_t from, uint64_t to)
{
    for (uint64_t i = from; i < to; i++)
        assert_int_equal(cl_merkle_append(t, leaves[i]), CL_OK);
}

/* ---- naive reference (receipts.md §6.4, §7.2) ---------------------------------------------- */

typedef struct {
    uint8_t h[H];
    int l, r; /* children, -1 for a leaf */
    uint64_t a, b;
} ref_node;

typedef struct {
    ref_node *n;
    int count;
} ref_tree;

static int ref_build_rec(ref_tree *rt, uint8_t (*leaves)[H], uint64_t a, uint64_t b)
{
    int idx = rt->count++;
    rt->n[idx].a = a;
    rt->n[idx].b = b;
    if (b - a == 1) {
        memcpy(rt->n[idx].h, leaves[a], H);
        rt->n[idx].l = rt->n[idx].r = -1;
        return idx;
    }
    uint64_t k = 1;
    while (k * 2 < b - a)
        k *= 2;
    int l = ref_build_rec(rt, leaves, a, a + k);
    int r = ref_build_rec(rt, leaves, a + k, b);
    rt->n[idx].l = l;
    rt->n[idx].r = r;
    cl_sha256_2(rt->n[l].h, H, rt->n[r].h, H, rt->n[idx].h);
    return idx;
}

/* MTH over the first n leaves; node 0 is the root. */
static void ref_build(ref_tree *rt, uint8_t (*leaves)[H], uint64_t n)
{
    rt->n = realloc(rt->n, (2 * n) * sizeof *rt->n);
    assert_non_null(rt->n);
    rt->count = 0;
    ref_build_rec(rt, leaves, 0, n);
}

static void ref_root(uint8_t (*leaves)[H], uint64_t n, uint8_t out[H])
{
    ref_tree rt = {NULL, 0};
    ref_build(&rt, leaves, n);
    memcpy(out, rt.n[0].h, H);
    free(rt.n);
}

/* PATH(m, D[0:n]) as the recursive definition writes it: inner path first, then the sibling. */
static size_t ref_path_rec(const ref_tree *rt, int node, uint64_t m, cl_merkle_step *out)
{
    const ref_node *x = &rt->n[node];
    if (x->l < 0)
        return 0;
    const ref_node *l = &rt->n[x->l], *r = &rt->n[x->r];
    size_t d;
    if (m < l->b) {
        d = ref_path_rec(rt, x->l, m, out);
        memcpy(out[d].hash, r->h, H);
        out[d].is_left = 0;
    } else {
        d = ref_path_rec(rt, x->r, m, out);
        memcpy(out[d].hash, l->h, H);
        out[d].is_left = 1;
    }
    return d + 1;
}

/* SUBPROOF(m, D[a:b], flag) over the memoised node for [a, b). */
static size_t ref_subproof(const ref_tree *rt, int node, uint64_t m, int flag, uint8_t (*out)[H])
{
    const ref_node *x = &rt->n[node];
    if (m == x->b - x->a) {
        if (flag)
            return 0;
        memcpy(out[0], x->h, H);
        return 1;
    }
    const ref_node *l = &rt->n[x->l], *r = &rt->n[x->r];
    uint64_t k = l->b - l->a;
    size_t d;
    if (m <= k) {
        d = ref_subproof(rt, x->l, m, flag, out);
        memcpy(out[d], r->h, H);
    } else {
        d = ref_subproof(rt, x->r, m - k, 0, out);
        memcpy(out[d], l->h, H);
    }
    return d + 1;
}

/* ---- tests --------------------------------------------------------------------------------- */

static void check_paths(cl_merkle *t, ref_tree *rt, uint8_t (*leaves)[H], uint64_t s,
                        int mutate_all)
{
    cl_merkle_step got[CL_MERKLE_MAX_PATH], want[CL_MERKLE_MAX_PATH];
    uint8_t root[H], r2[H];
    assert_int_equal(cl_merkle_root_at(t, s, root), CL_OK);
    assert_true(heq(root, rt->n[0].h));
    for (uint64_t i = 0; i < s; i++) {
        size_t ng = 99;
        assert_int_equal(cl_merkle_path(t, i, s, got, &ng), CL_OK);
        size_t nw = ref_path_rec(rt, 0, i, want);
        assert_int_equal(ng, nw);
        for (size_t j = 0; j < ng; j++) {
            assert_int_equal(got[j].is_left, want[j].is_left);
            assert_true(heq(got[j].hash, want[j].hash));
        }
        assert_int_equal(cl_merkle_path_root(leaves[i], got, ng, r2), CL_OK);
        assert_true(heq(r2, root));
        if (!mutate_all && (i + s) % 16 != 0)
            continue;
        /* A wrong proof must not reach the root: wrong leaf, flipped side, flipped bit. */
        uint64_t other = (i + 1) % s;
        if (other != i && !heq(leaves[other], leaves[i])) {
            assert_int_equal(cl_merkle_path_root(leaves[other], got, ng, r2), CL_OK);
            assert_false(heq(r2, root));
        }
        if (ng > 0) {
            size_t j = (size_t)((i * 7 + s) % ng);
            got[j].is_left ^= 1;
            assert_int_equal(cl_merkle_path_root(leaves[i], got, ng, r2), CL_OK);
            assert_false(heq(r2, root));
            got[j].is_left ^= 1;
            got[j].hash[(i + s) % H] ^= (uint8_t)(1u << (i % 8));
            assert_int_equal(cl_merkle_path_root(leaves[i], got, ng, r2), CL_OK);
            assert_false(heq(r2, root));
            got[j].hash[(i + s) % H] ^= (uint8_t)(1u << (i % 8));
            got[j].is_left = 2;
            assert_int_equal(cl_merkle_path_root(leaves[i], got, ng, r2), CL_EPROOF);
        }
    }
}

/* Every inclusion proof of every tree size 1..2000, against root() and root_at(). */
static void test_all_paths(void **state)
{
    (void)state;
    enum { N = 2000 };
    char dir[64];
    make_dir(dir, sizeof dir);
    uint8_t(*leaves)[H] = make_leaves(N, 0);
    uint8_t(*roots)[H] = malloc((N + 1) * H);
    assert_non_null(roots);
    ref_tree rt = {NULL, 0};

    cl_merkle *t = open_tree(dir);
    uint8_t r[H];
    assert_int_equal(cl_merkle_root(t, r), CL_ERANGE);
    for (uint64_t s = 1; s <= N; s++) {
        append_all(t, leaves, s - 1, s);
        assert_int_equal(cl_merkle_size(t), s);
        assert_int_equal(cl_merkle_root(t, roots[s]), CL_OK);
        if (s % 97 == 0 || s < 40)
            assert_int_equal(cl_merkle_check(t), CL_OK);
    }
    for (uint64_t s = 1; s <= N; s++) {
        ref_build(&rt, leaves, s);
        assert_true(heq(roots[s], rt.n[0].h));
        check_paths(t, &rt, leaves, s, 0);
    }
    for (uint64_t i = 0; i < N; i += 13) {
        assert_int_equal(cl_merkle_leaf(t, i, r), CL_OK);
        assert_true(heq(r, leaves[i]));
    }

    /* Reopen: everything now comes from the files. */
    assert_int_equal(cl_merkle_close(t), CL_OK);
    t = open_tree(dir);
    assert_int_equal(cl_merkle_size(t), N);
    assert_int_equal(cl_merkle_root(t, r), CL_OK);
    assert_true(heq(r, roots[N]));
    static const uint64_t sizes[] = {1, 2, 3, 5, 63, 64, 65, 1023, 1024, 1025, 1536, 1999, 2000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        ref_build(&rt, leaves, sizes[i]);
        check_paths(t, &rt, leaves, sizes[i], 1);
    }

    /* The on-disk layout is the documented one. */
    assert_int_equal(cl_merkle_close(t), CL_OK);
    char p[128];
    level_file(p, sizeof p, dir, 0);
    assert_int_equal(file_len(p), N * H);
    FILE *f = fopen(p, "rb");
    uint8_t rec[H];
    for (int i = 0; i < N; i++) {
        assert_int_equal(fread(rec, 1, H, f), H);
        assert_true(heq(rec, leaves[i]));
    }
    fclose(f);
    level_file(p, sizeof p, dir, 1);
    assert_int_equal(file_len(p), (N / 2) * H);
    f = fopen(p, "rb");
    for (int i = 0; i < N / 2; i++) {
        uint8_t want[H];
        assert_int_equal(fread(rec, 1, H, f), H);
        cl_sha256_2(leaves[2 * i], H, leaves[2 * i + 1], H, want);
        assert_true(heq(rec, want));
    }
    fclose(f);
    for (unsigned k = 0; k < 11; k++) {
        level_file(p, sizeof p, dir, k);
        assert_int_equal(file_len(p), (long)((N >> k) * H));
    }
    level_file(p, sizeof p, dir, 11);
    assert_true(file_len(p) <= 0);

    free(rt.n);
    free(roots);
    free(leaves);
    remove_dir(dir);
}

/* A larger tree whose write buffers have been flushed several times; sampled proofs. */
static void test_large_sampled(void **state)
{
    (void)state;
    enum { N = 20000 };
    char dir[64];
    make_dir(dir, sizeof dir);
    uint8_t(*leaves)[H] = make_leaves(N, 3);
    ref_tree rt = {NULL, 0};
    cl_merkle *t = open_tree(dir);
    append_all(t, leaves, 0, 12345);
    assert_int_equal(cl_merkle_flush(t), CL_OK);
    append_all(t, leaves, 12345, N);
    assert_int_equal(cl_merkle_check(t), CL_OK);
    cl_merkle_step got[CL_MERKLE_MAX_PATH], want[CL_MERKLE_MAX_PATH];
    uint8_t root[H], r2[H];
    for (int round = 0; round < 30; round++) {
        uint64_t s = round == 0 ? N : 1 + rnd() % N;
        ref_build(&rt, leaves, s);
        assert_int_equal(cl_merkle_root_at(t, s, root), CL_OK);
        assert_true(heq(root, rt.n[0].h));
        for (int j = 0; j < 200; j++) {
            uint64_t i = j == 0 ? s - 1 : rnd() % s;
            size_t ng = 0;
            assert_int_equal(cl_merkle_path(t, i, s, got, &ng), CL_OK);
            size_t nw = ref_path_rec(&rt, 0, i, want);
            assert_int_equal(ng, nw);
            assert_memory_equal(got, want, ng * sizeof got[0]);
            assert_int_equal(cl_merkle_path_root(leaves[i], got, ng, r2), CL_OK);
            assert_true(heq(r2, root));
        }
        for (int j = 0; j < 50; j++) {
            uint64_t m = 1 + rnd() % s;
            uint8_t pg[CL_MERKLE_MAX_CONSISTENCY][H], pw[CL_MERKLE_MAX_CONSISTENCY][H], rm[H];
            size_t ng = 0;
            assert_int_equal(cl_merkle_consistency(t, m, s, pg, &ng), CL_OK);
            size_t nw = m == s ? 0 : ref_subproof(&rt, 0, m, 1, pw);
            assert_int_equal(ng, nw);
            assert_memory_equal(pg, pw, ng * H);
            assert_int_equal(cl_merkle_root_at(t, m, rm), CL_OK);
            assert_int_equal(
                cl_merkle_verify_consistency(m, s, rm, root, (const uint8_t(*)[H])pg, ng), CL_OK);
        }
    }
    assert_int_equal(cl_merkle_close(t), CL_OK);
    free(rt.n);
    free(leaves);
    remove_dir(dir);
}

/* Consistency proofs for all 1 <= m <= n <= 200. */
static void test_consistency_all(void **state)
{
    (void)state;
    enum { N = 200 };
    char dir[64];
    make_dir(dir, sizeof dir);
    uint8_t(*leaves)[H] = make_leaves(N, 0);
    uint8_t(*roots)[H] = malloc((N + 1) * H);
    ref_tree rt = {NULL, 0};
    cl_merkle *t = open_tree(dir);
    append_all(t, leaves, 0, N);
    for (uint64_t s = 1; s <= N; s++)
        assert_int_equal(cl_merkle_root_at(t, s, roots[s]), CL_OK);

    uint8_t pg[CL_MERKLE_MAX_CONSISTENCY + 1][H], pw[CL_MERKLE_MAX_CONSISTENCY][H];
    const uint8_t(*cp)[H] = (const uint8_t(*)[H])pg;
    for (uint64_t n = 1; n <= N; n++) {
        ref_build(&rt, leaves, n);
        assert_true(heq(roots[n], rt.n[0].h));
        for (uint64_t m = 1; m <= n; m++) {
            size_t ng = 99;
            assert_int_equal(cl_merkle_consistency(t, m, n, pg, &ng), CL_OK);
            size_t nw = m == n ? 0 : ref_subproof(&rt, 0, m, 1, pw);
            assert_int_equal(ng, nw);
            assert_memory_equal(pg, pw, ng * H);
            assert_int_equal(cl_merkle_verify_consistency(m, n, roots[m], roots[n], cp, ng), CL_OK);
            if (m == n) {
                /* Equal sizes: only the empty proof with equal roots. */
                if (n > 1)
                    assert_int_equal(
                        cl_merkle_verify_consistency(m, n, roots[m - 1], roots[n], cp, 0),
                        CL_EPROOF);
                memcpy(pg[0], roots[n], H);
                assert_int_equal(cl_merkle_verify_consistency(m, n, roots[m], roots[n], cp, 1),
                                 CL_EPROOF);
                continue;
            }
            /* Every single-bit flip of every element fails. */
            for (size_t j = 0; j < ng; j++) {
                pg[j][(m + n + j) % H] ^= 0x10;
                assert_int_equal(cl_merkle_verify_consistency(m, n, roots[m], roots[n], cp, ng),
                                 CL_EPROOF);
                pg[j][(m + n + j) % H] ^= 0x10;
            }
            /* Dropped last element, extra element, empty proof. */
            assert_int_equal(cl_merkle_verify_consistency(m, n, roots[m], roots[n], cp, ng - 1),
                             CL_EPROOF);
            memcpy(pg[ng], roots[n], H);
            assert_int_equal(cl_merkle_verify_consistency(m, n, roots[m], roots[n], cp, ng + 1),
                             CL_EPROOF);
            assert_int_equal(cl_merkle_verify_consistency(m, n, roots[m], roots[n], cp, 0),
                             CL_EPROOF);
            /* Wrong roots, swapped sizes, size 0. */
            assert_int_equal(cl_merkle_verify_consistency(m, n, roots[n], roots[n], cp, ng),
                             CL_EPROOF);
            assert_int_equal(cl_merkle_verify_consistency(m, n, roots[m], roots[m], cp, ng),
                             CL_EPROOF);
            if (n > m + 1)
                assert_int_equal(cl_merkle_verify_consistency(m, n, roots[m], roots[n - 1], cp, ng),
                                 CL_EPROOF);
            assert_int_equal(cl_merkle_verify_consistency(n, m, roots[n], roots[m], cp, ng),
                             CL_EPROOF);
            assert_int_equal(cl_merkle_verify_consistency(0, n, roots[m], roots[n], cp, ng),
                             CL_EPROOF);
        }
    }
    assert_int_equal(cl_merkle_close(t), CL_OK);
    free(rt.n);
    free(roots);
    free(leaves);
    remove_dir(dir);
}

static void test_errors(void **state)
{
    (void)state;
    char dir[64];
    make_dir(dir, sizeof dir);
    uint8_t(*leaves)[H] = make_leaves(10, 0);
    cl_merkle *t = open_tree(dir);
    uint8_t r[H], proof[CL_MERKLE_MAX_CONSISTENCY][H];
    cl_merkle_step steps[CL_MERKLE_MAX_PATH];
    size_t n = 0;
    assert_int_equal(cl_merkle_size(t), 0);
    assert_int_equal(cl_merkle_root(t, r), CL_ERANGE);
    assert_int_equal(cl_merkle_root_at(t, 0, r), CL_ERANGE);
    assert_int_equal(cl_merkle_leaf(t, 0, r), CL_ERANGE);
    assert_int_equal(cl_merkle_path(t, 0, 0, steps, &n), CL_ERANGE);
    assert_int_equal(cl_merkle_sync(t), CL_OK);
    append_all(t, leaves, 0, 10);
    assert_int_equal(cl_merkle_root_at(t, 11, r), CL_ERANGE);
    assert_int_equal(cl_merkle_path(t, 10, 10, steps, &n), CL_ERANGE);
    assert_int_equal(cl_merkle_path(t, 3, 11, steps, &n), CL_ERANGE);
    assert_int_equal(cl_merkle_consistency(t, 0, 5, proof, &n), CL_ERANGE);
    assert_int_equal(cl_merkle_consistency(t, 6, 5, proof, &n), CL_ERANGE);
    assert_int_equal(cl_merkle_consistency(t, 5, 11, proof, &n), CL_ERANGE);
    assert_int_equal(cl_merkle_truncate(t, 11), CL_ERANGE);
    assert_int_equal(cl_merkle_path(t, 0, 1, steps, &n), CL_OK);
    assert_int_equal(n, 0);
    /* Single leaf: the root is the leaf itself (receipts.md §6.4). */
    assert_int_equal(cl_merkle_root_at(t, 1, r), CL_OK);
    assert_true(heq(r, leaves[0]));
    assert_int_equal(cl_merkle_path_root(leaves[0], steps, CL_MERKLE_MAX_PATH + 1, r), CL_EPROOF);
    assert_int_equal(cl_merkle_check(t), CL_OK);
    assert_int_equal(cl_merkle_close(t), CL_OK);
    assert_int_equal(cl_merkle_close(NULL), CL_OK);
    free(leaves);
    remove_dir(dir);
}

static int hex2bin(const char *hex, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

/* receipts.md §8: receipt_1.json (tx 2.35) folds to its signed root; the real tree of seqno+1
 * leaves gives proofs of exactly that shape (popcount(seqno) steps, all left). */
static void test_known_answer(void **state)
{
    (void)state;
    uint8_t leaf[H], want[H], root[H];
    cl_merkle_step steps[3];
    assert_int_equal(
        hex2bin("52ce29a3663b093b34c34bda0e8714b83015429577c00078eb73fdb13bb6e9b7", leaf, H), 0);
    assert_int_equal(
        hex2bin("283afa446263bcc3be31a980957fe3d0196494bf100df6774249f09d10755101", want, H), 0);
    assert_int_equal(hex2bin("5e949d6d17b88900aeb8fb292f041075272d3b58108f2016a3ceea2a47ffad8f",
                             steps[0].hash, H),
                     0);
    assert_int_equal(hex2bin("fb199f029ed1e7886ca95f8ecb4f9a56edede5f15fb425874c2a34861a9765ee",
                             steps[1].hash, H),
                     0);
    assert_int_equal(hex2bin("efe9c61961fc189e292edeadb4317040ea4a6e5abc8cf349dc74295930ed7435",
                             steps[2].hash, H),
                     0);
    steps[0].is_left = steps[1].is_left = steps[2].is_left = 1;
    assert_int_equal(cl_merkle_path_root(leaf, steps, 3, root), CL_OK);
    assert_true(heq(root, want));
    steps[1].is_left = 0;
    assert_int_equal(cl_merkle_path_root(leaf, steps, 3, root), CL_OK);
    assert_false(heq(root, want));

    char dir[64];
    make_dir(dir, sizeof dir);
    enum { N = 7416 };
    uint8_t(*leaves)[H] = make_leaves(N, 0);
    cl_merkle *t = open_tree(dir);
    append_all(t, leaves, 0, N);
    static const uint64_t seqnos[] = {35, 7415, 13};
    cl_merkle_step p[CL_MERKLE_MAX_PATH];
    for (size_t i = 0; i < 3; i++) {
        size_t n = 0;
        assert_int_equal(cl_merkle_path(t, seqnos[i], seqnos[i] + 1, p, &n), CL_OK);
        assert_int_equal(n, (size_t)__builtin_popcountll(seqnos[i]));
        for (size_t j = 0; j < n; j++)
            assert_int_equal(p[j].is_left, 1);
    }
    /* Leaf 35 of 36: [D[34], MTH(D[32:34]), MTH(D[0:32])]. */
    size_t n = 0;
    uint8_t x[H];
    assert_int_equal(cl_merkle_path(t, 35, 36, p, &n), CL_OK);
    assert_true(heq(p[0].hash, leaves[34]));
    cl_sha256_2(leaves[32], H, leaves[33], H, x);
    assert_true(heq(p[1].hash, x));
    ref_root(leaves, 32, x);
    assert_true(heq(p[2].hash, x));
    assert_int_equal(cl_merkle_close(t), CL_OK);
    free(leaves);
    remove_dir(dir);
}

/* Leaves of the model: `len` leaves, the first `keep` from family 0, the rest from family `fam`. */
static void expect_tree(cl_merkle *t, uint8_t (*model)[H], uint64_t len)
{
    assert_int_equal(cl_merkle_size(t), len);
    assert_int_equal(cl_merkle_check(t), CL_OK);
    if (len == 0)
        return;
    uint8_t r[H], w[H];
    assert_int_equal(cl_merkle_root(t, r), CL_OK);
    ref_root(model, len, w);
    assert_true(heq(r, w));
    uint64_t s = 1 + rnd() % len;
    assert_int_equal(cl_merkle_root_at(t, s, r), CL_OK);
    ref_root(model, s, w);
    assert_true(heq(r, w));
    cl_merkle_step p[CL_MERKLE_MAX_PATH];
    size_t n = 0;
    uint64_t i = rnd() % s;
    assert_int_equal(cl_merkle_path(t, i, s, p, &n), CL_OK);
    assert_int_equal(cl_merkle_path_root(model[i], p, n, r), CL_OK);
    assert_true(heq(r, w));
}

/* The tree holds the model, and still does after close and reopen (closed at the end). */
static void expect_closed_and_reopened(cl_merkle *t, const char *dir, uint8_t (*model)[H],
                                       uint64_t len)
{
    expect_tree(t, model, len);
    assert_int_equal(cl_merkle_close(t), CL_OK);
    t = open_tree(dir);
    expect_tree(t, model, len);
    assert_int_equal(cl_merkle_close(t), CL_OK);
}

/* truncate() then append different leaves, mixed with reopen, against a model array. */
static void test_truncate(void **state)
{
    (void)state;
    enum { CAP = 5000 };
    char dir[64];
    make_dir(dir, sizeof dir);
    uint8_t(*model)[H] = malloc(CAP * H);
    uint64_t len = 0;
    uint32_t fam = 1;
    cl_merkle *t = open_tree(dir);
    for (int op = 0; op < 120; op++) {
        uint64_t r = rnd() % 10;
        if (r < 5) {
            uint64_t add = rnd() % (r < 2 ? 1500 : 40);
            if (len + add > CAP)
                add = CAP - len;
            for (uint64_t i = 0; i < add; i++) {
                make_leaf(len, fam, model[len]);
                assert_int_equal(cl_merkle_append(t, model[len]), CL_OK);
                len++;
            }
        } else if (r < 8) {
            uint64_t to = len ? rnd() % (len + 1) : 0;
            if (op % 4 == 0 && len > 4100)
                to = 4095 + rnd() % 3; /* around the level-0 write buffer's capacity */
            assert_int_equal(cl_merkle_truncate(t, to), CL_OK);
            len = to;
            fam++; /* what is appended next differs from what was cut */
        } else if (r == 8) {
            assert_int_equal(cl_merkle_close(t), CL_OK);
            t = open_tree(dir);
        } else {
            assert_int_equal(cl_merkle_sync(t), CL_OK);
        }
        expect_tree(t, model, len);
    }
    assert_int_equal(cl_merkle_truncate(t, 0), CL_OK);
    expect_tree(t, model, 0);
    make_leaf(0, 77, model[0]);
    assert_int_equal(cl_merkle_append(t, model[0]), CL_OK);
    expect_tree(t, model, 1);
    assert_int_equal(cl_merkle_close(t), CL_OK);
    free(model);
    remove_dir(dir);
}

/* The fs seam's map/unmap: contents, later writes, the unsupported and crashed cases. */
static void test_fs_map(void **state)
{
    (void)state;
    char dir[64], p[128];
    make_dir(dir, sizeof dir);
    snprintf(p, sizeof p, "%s/f", dir);
    cl_file *f = NULL;
    assert_int_equal(cl_fs_open(cl_fs_posix(), p, CL_FS_RDWR | CL_FS_CREAT, 0600, &f), CL_OK);
    uint8_t data[10000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 7 + 3);
    assert_int_equal(cl_file_pwrite(f, data, sizeof data, 0), CL_OK);
    const void *a = NULL;
    assert_int_equal(cl_file_map(f, 9000, &a), CL_OK); /* not a page multiple */
    assert_memory_equal(a, data, 9000);
    /* A write through pwrite shows through the (shared) mapping. */
    uint8_t x[H];
    memset(x, 0xab, H);
    assert_int_equal(cl_file_pwrite(f, x, H, 4090), CL_OK);
    assert_memory_equal((const uint8_t *)a + 4090, x, H);
    assert_int_equal(cl_file_unmap(f, a, 9000), CL_OK);
    assert_int_equal(cl_file_map(f, 0, &a), CL_EINVAL);
    assert_int_equal(cl_file_close(f), CL_OK);

    /* An fs without the optional ops. */
    cl_fs_ops ops = *cl_fs_posix()->ops;
    ops.map = NULL;
    ops.unmap = NULL;
    cl_fs nomap = {&ops};
    assert_int_equal(cl_fs_open(&nomap, p, CL_FS_RDWR, 0, &f), CL_OK);
    assert_int_equal(cl_file_map(f, 100, &a), CL_EUNSUPPORTED);
    assert_int_equal(cl_file_unmap(f, data, 100), CL_EUNSUPPORTED);
    assert_int_equal(cl_file_close(f), CL_OK);

    /* The fault fs delegates, and refuses new mappings once crashed (old ones still release). */
    cl_fs_fault *ff = NULL;
    assert_int_equal(cl_fs_fault_new(cl_fs_posix(), &ff), CL_OK);
    assert_int_equal(cl_fs_open(cl_fs_fault_fs(ff), p, CL_FS_RDWR, 0, &f), CL_OK);
    const void *b = NULL;
    assert_int_equal(cl_file_map(f, 5000, &b), CL_OK);
    assert_memory_equal((const uint8_t *)b + 4090, x, H);
    cl_fs_fault_arm(ff, CL_FAULT_WRITE, 0, 1);
    assert_int_equal(cl_file_pwrite(f, x, H, 0), CL_EIO);
    assert_int_equal(cl_file_map(f, 100, &a), CL_EIO);
    assert_int_equal(cl_file_unmap(f, b, 5000), CL_OK);
    (void)cl_file_close(f);
    cl_fs_fault_free(ff);
    remove_dir(dir);
}

/* Every proof kind for a few indices and sizes of the model, against the reference. */
static void expect_proofs(cl_merkle *t, uint8_t (*model)[H], uint64_t len)
{
    assert_int_equal(cl_merkle_size(t), len);
    if (len == 0)
        return;
    ref_tree rt = {NULL, 0};
    uint8_t r[H], pg[CL_MERKLE_MAX_CONSISTENCY][H], pw[CL_MERKLE_MAX_CONSISTENCY][H];
    cl_merkle_step got[CL_MERKLE_MAX_PATH], want[CL_MERKLE_MAX_PATH];
    /* The full size (the newest, possibly just flushed, records) and a random one. */
    uint64_t sizes[2] = {len, 1 + rnd() % len};
    for (int si = 0; si < 2; si++) {
        uint64_t s = sizes[si];
        ref_build(&rt, model, s);
        assert_int_equal(cl_merkle_root_at(t, s, r), CL_OK);
        assert_true(heq(r, rt.n[0].h));
        /* The last leaves (right-hand imperfect subtrees), the first, and random ones. */
        uint64_t idx[6] = {s - 1, s > 1 ? s - 2 : 0, 0, rnd() % s, rnd() % s, s / 2};
        for (int j = 0; j < 6; j++) {
            size_t ng = 99;
            assert_int_equal(cl_merkle_path(t, idx[j], s, got, &ng), CL_OK);
            size_t nw = ref_path_rec(&rt, 0, idx[j], want);
            assert_int_equal(ng, nw);
            for (size_t q = 0; q < ng; q++) {
                assert_int_equal(got[q].is_left, want[q].is_left);
                assert_true(heq(got[q].hash, want[q].hash));
            }
            assert_int_equal(cl_merkle_leaf(t, idx[j], r), CL_OK);
            assert_true(heq(r, model[idx[j]]));
        }
        uint64_t ms[3] = {1, 1 + rnd() % s, s > 1 ? s - 1 : 1};
        for (int j = 0; j < 3; j++) {
            size_t ng = 99;
            assert_int_equal(cl_merkle_consistency(t, ms[j], s, pg, &ng), CL_OK);
            size_t nw = ms[j] == s ? 0 : ref_subproof(&rt, 0, ms[j], 1, pw);
            assert_int_equal(ng, nw);
            assert_memory_equal(pg, pw, ng * H);
        }
    }
    free(rt.n);
}

/* Mapped reads: appends, flushes, syncs, proofs, truncates (below and above what is mapped) and
 * reopens interleaved, so that mappings are created, outgrown, remapped and dropped before cuts;
 * once through the posix fs, once through an fs without map (pread fallback) and once through the
 * (unarmed) fault fs. */
static void test_mapped_reads(void **state)
{
    (void)state;
    enum { CAP = 40000 };
    cl_fs_ops nomap_ops = *cl_fs_posix()->ops;
    nomap_ops.map = NULL;
    nomap_ops.unmap = NULL;
    cl_fs nomap = {&nomap_ops};
    cl_fs_fault *ff = NULL;
    assert_int_equal(cl_fs_fault_new(cl_fs_posix(), &ff), CL_OK);
    cl_fs *fss[3] = {cl_fs_posix(), &nomap, cl_fs_fault_fs(ff)};
    uint8_t(*model)[H] = malloc(CAP * H);
    assert_non_null(model);
    for (int v = 0; v < 3; v++) {
        char dir[64];
        make_dir(dir, sizeof dir);
        uint64_t len = 0;
        uint32_t fam = 100;
        cl_merkle *t = NULL;
        assert_int_equal(cl_merkle_open(fss[v], dir, &t), CL_OK);
        for (int op = 0; op < 90; op++) {
            uint64_t r = rnd() % 12;
            if (r < 5) {
                /* Mostly small growth (reads then need records flushed since the mapping was
                 * made), sometimes more than doubling the tree. */
                uint64_t add = r == 0 ? len + 1 + rnd() % 5000 : rnd() % (r < 3 ? 3000 : 50);
                if (len + add > CAP)
                    add = CAP - len;
                for (uint64_t i = 0; i < add; i++) {
                    make_leaf(len, fam, model[len]);
                    assert_int_equal(cl_merkle_append(t, model[len]), CL_OK);
                    len++;
                }
                if (rnd() % 2)
                    assert_int_equal(cl_merkle_flush(t), CL_OK);
            } else if (r < 8) {
                /* Cut a little (the mapping usually survives) or a lot (it must go first). */
                uint64_t to = len;
                if (len > 0)
                    to = r == 5 ? rnd() % (len + 1) : len - rnd() % (len < 300 ? len + 1 : 300);
                assert_int_equal(cl_merkle_truncate(t, to), CL_OK);
                len = to;
                fam++; /* what is appended next differs from what was cut */
            } else if (r < 10) {
                assert_int_equal(cl_merkle_sync(t), CL_OK);
            } else if (r == 10) {
                assert_int_equal(cl_merkle_close(t), CL_OK);
                assert_int_equal(cl_merkle_open(fss[v], dir, &t), CL_OK);
            } else {
                assert_int_equal(cl_merkle_flush(t), CL_OK);
            }
            assert_int_equal(cl_merkle_check(t), CL_OK);
            expect_proofs(t, model, len);
        }
        expect_tree(t, model, len);
        assert_int_equal(cl_merkle_close(t), CL_OK);
        remove_dir(dir);
    }
    cl_fs_fault_free(ff);
    free(model);
}

/* Crash simulation by hand: cut, chop, delete or extend level files, then reopen. */
static void test_crash_files(void **state)
{
    (void)state;
    enum { N = 3000 };
    uint8_t(*leaves)[H] = make_leaves(N, 5);
    uint8_t(*other)[H] = make_leaves(N, 6);
    char p[128];
    for (int trial = 0; trial < 36; trial++) {
        char dir[64];
        make_dir(dir, sizeof dir);
        uint64_t n = trial < 6 ? (uint64_t)(N - trial) : 1 + rnd() % N;
        cl_merkle *t = open_tree(dir);
        append_all(t, leaves, 0, n);
        assert_int_equal(cl_merkle_close(t), CL_OK);
        unsigned top = 63u - (unsigned)__builtin_clzll(n);

        uint64_t expect = n;
        int kind = trial % 6;
        if (kind == 0 || kind == 5) {
            /* Level 0 lost a tail, possibly mid-record; the levels above are now too long. */
            uint64_t cut = rnd() % (n * H + 1);
            level_file(p, sizeof p, dir, 0);
            assert_int_equal(truncate(p, (off_t)cut), 0);
            expect = cut / H;
        }
        if (kind == 1 || kind == 5) {
            /* Upper levels cut short, chopped mid-record or deleted: recomputed. */
            for (unsigned k = 1; k <= top; k++) {
                level_file(p, sizeof p, dir, k);
                switch (rnd() % 4) {
                case 0:
                    unlink(p);
                    break;
                case 1:
                    assert_int_equal(truncate(p, (off_t)(rnd() % ((n >> k) * H + 1))), 0);
                    break;
                case 2:
                    assert_int_equal(truncate(p, (off_t)((n >> k) * H - 1)), 0);
                    break;
                default:
                    break;
                }
            }
        }
        if (kind == 2) {
            /* Every level above 0 deleted. */
            for (unsigned k = 1; k <= top; k++) {
                level_file(p, sizeof p, dir, k);
                unlink(p);
            }
        }
        if (kind == 3) {
            /* Torn tails: garbage past the end of every level, including a partial record. */
            for (unsigned k = 0; k <= top + 2; k++) {
                level_file(p, sizeof p, dir, k);
                FILE *f = fopen(p, "ab");
                assert_non_null(f);
                for (uint64_t b = 0; b < 40 + k; b++)
                    fputc((int)(rnd() & 0xff), f);
                fclose(f);
            }
        }
        if (kind == 4) {
            /* Level 0 deleted: an empty tree, and stale upper levels must not leak into it. */
            level_file(p, sizeof p, dir, 0);
            unlink(p);
            expect = 0;
        }
        t = open_tree(dir);
        expect_tree(t, leaves, expect);
        for (unsigned k = 0; k < 64; k++) {
            level_file(p, sizeof p, dir, k);
            long len = file_len(p);
            if ((expect >> k) > 0)
                assert_int_equal(len, (long)((expect >> k) * H));
            else
                assert_true(len <= 0);
        }
        /* The caller appends what the tree lacks, or different leaves after a rollback. */
        uint8_t(*src)[H] = (trial % 2) ? leaves : other;
        uint8_t(*model)[H] = malloc(N * H);
        memcpy(model, leaves, expect * H);
        memcpy(model + expect, src + expect, (n - expect) * H);
        append_all(t, model, expect, n);
        expect_closed_and_reopened(t, dir, model, n);
        free(model);
        remove_dir(dir);
    }
    free(leaves);
    free(other);
}

/* Records past the last sync are never trusted: a hole of zeros in level 0 after the last sync,
 * with the right length, is dropped at reopen; so is a lost marker. */
static void test_unsynced_tail_dropped(void **state)
{
    (void)state;
    char dir[64], p[128];
    make_dir(dir, sizeof dir);
    uint8_t(*leaves)[H] = make_leaves(600, 7);
    cl_fs_fault *ff = NULL;
    assert_int_equal(cl_fs_fault_new(cl_fs_posix(), &ff), CL_OK);
    cl_merkle *t = NULL;
    assert_int_equal(cl_merkle_open(cl_fs_fault_fs(ff), dir, &t), CL_OK);
    append_all(t, leaves, 0, 300);
    assert_int_equal(cl_merkle_sync(t), CL_OK);
    append_all(t, leaves, 300, 600);
    assert_int_equal(cl_merkle_flush(t), CL_OK);
    /* Crash at the next sync: the handle fails and close writes nothing more. */
    cl_fs_fault_arm(ff, CL_FAULT_SYNC, 0, 1);
    assert_int_equal(cl_merkle_sync(t), CL_EIO);
    assert_int_equal(cl_merkle_append(t, leaves[0]), CL_ECLOSED);
    assert_int_equal(cl_merkle_check(t), CL_ECLOSED);
    (void)cl_merkle_close(t);
    cl_fs_fault_free(ff);
    /* Level 0 still holds 600 records, with a zero-filled span past the sync. */
    level_file(p, sizeof p, dir, 0);
    assert_int_equal(file_len(p), 600 * H);
    FILE *f = fopen(p, "r+b");
    uint8_t zeros[H * 10] = {0};
    fseek(f, 400 * H, SEEK_SET);
    fwrite(zeros, 1, sizeof zeros, f);
    fclose(f);
    t = open_tree(dir);
    expect_tree(t, leaves, 300);
    append_all(t, leaves, 300, 600);
    expect_tree(t, leaves, 600);
    assert_int_equal(cl_merkle_close(t), CL_OK);
    /* A torn write of one marker slot falls back to the other one. */
    snprintf(p, sizeof p, "%s/synced_size", dir);
    long mlen = file_len(p);
    assert_true(mlen > 0);
    f = fopen(p, "r+b");
    for (long off = 0; off < mlen; off += 512) {
        /* Corrupt whichever slot holds the newest value: the older one, 300, must remain. */
        uint8_t rec[24];
        fseek(f, off, SEEK_SET);
        assert_int_equal(fread(rec, 1, sizeof rec, f), sizeof rec);
        uint64_t size;
        memcpy(&size, rec + 8, 8);
        if (size == 600) {
            rec[10] ^= 1;
            fseek(f, off, SEEK_SET);
            fwrite(rec, 1, sizeof rec, f);
        }
    }
    fclose(f);
    t = open_tree(dir);
    expect_tree(t, leaves, 300);
    assert_int_equal(cl_merkle_close(t), CL_OK);
    /* No marker at all: nothing is known to be durable. */
    unlink(p);
    t = open_tree(dir);
    expect_tree(t, leaves, 0);
    assert_int_equal(cl_merkle_close(t), CL_OK);
    free(leaves);
    remove_dir(dir);
}

/* Crashes injected through the fault fs at every write / sync of a short workload. Mode 0 syncs at
 * once; mode 1 syncs in steps (cl_merkle_sync_step, one per append while a round is under way)
 * and cuts the tail now and then, which cancels the round: the marker must never cover a record
 * that a crash can lose or that was cut (I4). */
static void crash_fault_fs(int steps)
{
    enum { N = 700, SYNC_EVERY = 150 };
    uint8_t(*leaves)[H] = make_leaves(N, 9);
    long total = -1;
    for (long fail_at = 0;; fail_at += 1 + fail_at / 8) {
        char dir[64];
        make_dir(dir, sizeof dir);
        cl_fs_fault *ff = NULL;
        assert_int_equal(cl_fs_fault_new(cl_fs_posix(), &ff), CL_OK);
        cl_fs *fs = cl_fs_fault_fs(ff);
        if (total >= 0)
            cl_fs_fault_arm(ff, CL_FAULT_WRITE | CL_FAULT_SYNC, fail_at, 1);
        cl_merkle *t = NULL;
        uint64_t synced = 0, appended = 0, target = 0;
        int stepping = 0, done = 0;
        int rc = cl_merkle_open(fs, dir, &t);
        for (uint64_t i = 0; rc == CL_OK && i < N; i++) {
            rc = cl_merkle_append(t, leaves[i]);
            if (rc == CL_OK)
                appended = i + 1;
            if (rc == CL_OK && stepping) {
                rc = cl_merkle_sync_step(t, &done);
                if (rc == CL_OK && done) {
                    synced = target;
                    stepping = 0;
                }
            }
            if (rc == CL_OK && (i + 1) % SYNC_EVERY == 0) {
                if (!steps) {
                    rc = cl_merkle_sync(t);
                    if (rc == CL_OK)
                        synced = i + 1;
                } else if (!stepping) {
                    target = appended;
                    stepping = 1;
                    rc = cl_merkle_sync_step(t, &done);
                    assert_true(rc != CL_OK || !done);
                }
            }
            if (rc == CL_OK && i % 97 == 0)
                rc = cl_merkle_truncate(t, appended); /* no-op, exercises the path */
            if (rc == CL_OK && steps && i % 61 == 60) {
                /* a real cut (cancels a round under way), then the same leaves again */
                rc = cl_merkle_truncate(t, appended - 5);
                if (rc == CL_OK) {
                    stepping = 0;
                    if (synced > appended - 5)
                        synced = appended - 5;
                    for (uint64_t j = appended - 5; rc == CL_OK && j < appended; j++)
                        rc = cl_merkle_append(t, leaves[j]);
                }
            }
        }
        if (rc == CL_OK) {
            rc = cl_merkle_close(t);
            if (rc == CL_OK)
                synced = appended;
        } else {
            assert_int_equal(rc, CL_EIO);
            (void)cl_merkle_close(t);
        }
        if (total < 0) {
            assert_int_equal(rc, CL_OK);
            total = cl_fs_fault_count(ff, CL_FAULT_WRITE) + cl_fs_fault_count(ff, CL_FAULT_SYNC);
            cl_fs_fault_free(ff);
            remove_dir(dir);
            continue;
        }
        assert_int_equal(cl_fs_fault_crash_apply(ff, (uint64_t)fail_at * 31 + 7), CL_OK);
        cl_fs_fault_free(ff);
        t = open_tree(dir);
        uint64_t got = cl_merkle_size(t);
        /* Everything synced survives; nothing past what was appended appears. */
        assert_true(got >= synced && got <= appended);
        expect_tree(t, leaves, got);
        append_all(t, leaves, got, N);
        expect_tree(t, leaves, N);
        assert_int_equal(cl_merkle_close(t), CL_OK);
        remove_dir(dir);
        if (fail_at > total)
            break;
    }
    free(leaves);
}

static void test_crash_fault_fs(void **state)
{
    (void)state;
    crash_fault_fs(0);
}

static void test_crash_fault_fs_steps(void **state)
{
    (void)state;
    crash_fault_fs(1);
}

/* cl_merkle_sync_step: at most one fdatasync per call; appends go on between the calls; the
 * marker moves only with the last call, to the size the first call saw; a truncate cancels the
 * round; a crash before the last call loses nothing the previous sync covered. */
/* Audits `dir` with the first `n` leaves of `leaves` supplied; returns the finish result. */
static int audit(const char *dir, uint8_t (*leaves)[H], uint64_t n, cl_merkle_audit_result *res)
{
    cl_merkle_audit *a = NULL;
    int rc = cl_merkle_audit_open(cl_fs_posix(), dir, &a);
    if (rc < 0)
        return rc;
    int first = CL_OK;
    for (uint64_t i = 0; i < n; i++) {
        int r = cl_merkle_audit_leaf(a, leaves[i]);
        if (first == CL_OK)
            first = r;
    }
    rc = cl_merkle_audit_finish(a, res);
    cl_merkle_audit_close(a);
    if (first != CL_OK)
        assert_int_equal(rc, CL_ECORRUPT);
    return rc;
}

static void flip_record(const char *dir, unsigned k, uint64_t i)
{
    char p[128];
    level_file(p, sizeof p, dir, k);
    assert_int_equal(tu_flip_byte(p, i * H + 3, 1), 0);
}

/* The offline audit: every kept record checked, damage found at its level and index, records
 * past the marker or missing from a short file (open recomputes them) not held against the store,
 * a store ahead of the caller's leaves counted, and nothing in the directory changed. */
static void test_audit(void **state)
{
    (void)state;
    char dir[64], p[128];
    make_dir(dir, sizeof dir);
    uint8_t(*leaves)[H] = make_leaves(5000, 3);
    cl_merkle_audit_result res;
    cl_merkle_audit *a = NULL;
    assert_int_equal(cl_merkle_audit_open(cl_fs_posix(), dir, &a), CL_ENOENT);
    cl_merkle *t = open_tree(dir);
    append_all(t, leaves, 0, 4000);
    assert_int_equal(cl_merkle_sync(t), CL_OK);
    append_all(t, leaves, 4000, 5000); /* close syncs these too */
    assert_int_equal(cl_merkle_close(t), CL_OK);
    uint32_t crc = tu_dir_crc(dir);
    assert_int_equal(audit(dir, leaves, 5000, &res), CL_OK);
    /* 5000 leaves and every upper record: 5000 + 2500 + 1250 + ... */
    uint64_t all = 0;
    for (uint64_t n = 5000; n != 0; n >>= 1)
        all += n;
    assert_int_equal(res.records, all);
    assert_int_equal(res.size, 5000);
    assert_int_equal(res.ahead, 0);
    assert_int_equal(audit(dir, leaves, 4500, &res), CL_OK); /* the ledger behind the store */
    assert_int_equal(res.ahead, 500);
    assert_int_equal(tu_dir_crc(dir), crc);
    /* a leaf */
    flip_record(dir, 0, 4321);
    assert_int_equal(audit(dir, leaves, 5000, &res), CL_ECORRUPT);
    assert_int_equal(res.bad_level, 0);
    assert_int_equal(res.bad_index, 4321);
    /* not supplied, so not compared; but its parent is no longer its hash */
    assert_int_equal(audit(dir, leaves, 4000, &res), CL_ECORRUPT);
    assert_int_equal(res.bad_level, 1);
    assert_int_equal(res.bad_index, 4321 / 2);
    flip_record(dir, 0, 4321);
    /* an upper record, deep inside the tree */
    flip_record(dir, 6, 33);
    assert_int_equal(audit(dir, leaves, 5000, &res), CL_ECORRUPT);
    assert_int_equal(res.bad_level, 6);
    assert_int_equal(res.bad_index, 33);
    flip_record(dir, 6, 33);
    /* a level file cut short (a crash): the missing records are the next open's to recompute */
    level_file(p, sizeof p, dir, 3);
    assert_int_equal(truncate(p, 100 * H), 0);
    assert_int_equal(audit(dir, leaves, 5000, &res), CL_OK);
    assert_true(res.records < all);
    t = open_tree(dir);
    expect_tree(t, leaves, 5000);
    assert_int_equal(cl_merkle_close(t), CL_OK);
    assert_int_equal(audit(dir, leaves, 5000, &res), CL_OK);
    assert_int_equal(res.records, all);
    free(leaves);
    remove_dir(dir);
}

static void test_sync_steps(void **state)
{
    (void)state;
    enum { N = 9000, FIRST = 5000 };
    uint8_t(*leaves)[H] = make_leaves(N, 11);
    for (uint64_t stop_after = 0; stop_after < 20; stop_after += 3) {
        char dir[64];
        make_dir(dir, sizeof dir);
        cl_fs_fault *ff = NULL;
        assert_int_equal(cl_fs_fault_new(cl_fs_posix(), &ff), CL_OK);
        cl_merkle *t = NULL;
        assert_int_equal(cl_merkle_open(cl_fs_fault_fs(ff), dir, &t), CL_OK);
        int done = 0;
        /* a round with nothing new: done at once, no fdatasync */
        assert_int_equal(cl_merkle_sync(t), CL_OK);
        long syncs = cl_fs_fault_count(ff, CL_FAULT_SYNC);
        assert_int_equal(cl_merkle_sync_step(t, &done), CL_OK);
        assert_int_equal(done, 1);
        assert_int_equal(cl_fs_fault_count(ff, CL_FAULT_SYNC), syncs);
        append_all(t, leaves, 0, 100);
        assert_int_equal(cl_merkle_sync(t), CL_OK); /* the last full sync: 100 */
        append_all(t, leaves, 100, FIRST);
        uint64_t n = FIRST, calls = 0;
        done = 0;
        while (!done && calls < stop_after) {
            syncs = cl_fs_fault_count(ff, CL_FAULT_SYNC);
            assert_int_equal(cl_merkle_sync_step(t, &done), CL_OK);
            assert_true(cl_fs_fault_count(ff, CL_FAULT_SYNC) - syncs <= 1);
            assert_int_equal(cl_merkle_check(t), CL_OK);
            append_all(t, leaves, n, n + 7);
            n += 7;
            calls++;
        }
        /* 13 level files, the directory and the marker: 15 calls for the round */
        if (done)
            assert_int_equal(calls, 15);
        else
            assert_int_equal(calls, stop_after);
        /* power cut now */
        cl_fs_fault_arm(ff, CL_FAULT_WRITE | CL_FAULT_SYNC | CL_FAULT_OPEN, 0, 1);
        assert_int_equal(cl_merkle_sync_step(t, &done), CL_EIO);
        (void)cl_merkle_close(t);
        assert_int_equal(cl_fs_fault_crash_apply(ff, stop_after + 3), CL_OK);
        cl_fs_fault_free(ff);
        t = open_tree(dir);
        uint64_t got = cl_merkle_size(t);
        if (done)
            assert_true(got >= FIRST && got <= n);
        else
            assert_true(got >= 100 && got <= n);
        expect_tree(t, leaves, got);
        assert_int_equal(cl_merkle_close(t), CL_OK);
        remove_dir(dir);
    }
    /* A truncate below the target in the middle of a round cancels it; the next round starts
     * over from the new size, and a full sync also ends a round. */
    char dir[64];
    make_dir(dir, sizeof dir);
    cl_merkle *t = open_tree(dir);
    append_all(t, leaves, 0, FIRST);
    int done = 0;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(cl_merkle_sync_step(t, &done), CL_OK);
        assert_int_equal(done, 0);
    }
    assert_int_equal(cl_merkle_truncate(t, 3000), CL_OK);
    assert_int_equal(cl_merkle_check(t), CL_OK);
    int calls = 0;
    do {
        assert_int_equal(cl_merkle_sync_step(t, &done), CL_OK);
        assert_int_equal(cl_merkle_check(t), CL_OK);
        calls++;
    } while (!done);
    assert_int_equal(calls, 14); /* 12 level files, the directory, the marker */
    append_all(t, leaves, 3000, N);
    assert_int_equal(cl_merkle_sync_step(t, &done), CL_OK);
    assert_int_equal(cl_merkle_sync(t), CL_OK);
    assert_int_equal(cl_merkle_sync_step(t, &done), CL_OK);
    assert_int_equal(done, 1); /* the full sync covered everything */
    expect_closed_and_reopened(t, dir, leaves, N);
    remove_dir(dir);
    free(leaves);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors),          cmocka_unit_test(test_known_answer),
        cmocka_unit_test(test_all_paths),       cmocka_unit_test(test_large_sampled),
        cmocka_unit_test(test_consistency_all), cmocka_unit_test(test_truncate),
        cmocka_unit_test(test_crash_files),     cmocka_unit_test(test_unsynced_tail_dropped),
        cmocka_unit_test(test_crash_fault_fs),  cmocka_unit_test(test_fs_map),
        cmocka_unit_test(test_mapped_reads),    cmocka_unit_test(test_crash_fault_fs_steps),
        cmocka_unit_test(test_sync_steps),      cmocka_unit_test(test_audit),
    };
    /* TEST_FILTER=test_truncate runs one test (cmocka glob). */
    if (getenv("TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
