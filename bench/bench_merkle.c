/*
 * bench_merkle.c — throughput of the persisted Merkle tree.
 *
 * usage: bench_merkle [N=1000000] [dir]
 * Appends N leaves, syncs, closes, reopens, then generates inclusion proofs for 100k random
 * (index, N) pairs and consistency proofs for 100k random (m, N) pairs. Prints one `name value`
 * line per metric. Without `dir` it works in a fresh directory under /tmp and removes it after.
 * Peak RSS is printed at each stage to show that memory does not grow with N.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "crypto/hash.h"
#include "ledger/merkle.h"
#include "storage/fs.h"

#define PROOFS 100000

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "bench_merkle: %s: %s\n", what, cl_strerror(rc));
    return 1;
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    char tmp[] = "/tmp/bench_merkle_XXXXXX";
    const char *dir = argc > 2 ? argv[2] : NULL;
    if (n < 2) {
        fprintf(stderr, "usage: bench_merkle [N>=2] [dir]\n");
        return 2;
    }
    if (dir == NULL) {
        if (mkdtemp(tmp) == NULL) {
            perror("mkdtemp");
            return 1;
        }
        dir = tmp;
    }
    printf("merkle.leaves %llu\n", (unsigned long long)n);
    printf("merkle.rss_kb_start %ld\n", peak_rss_kb());

    cl_merkle *t = NULL;
    int rc = cl_merkle_open(cl_fs_posix(), dir, &t);
    if (rc < 0)
        return fail("open", rc);
    uint64_t base = cl_merkle_size(t);
    uint8_t leaf[32] = {0};
    double t0 = now();
    for (uint64_t i = 0; i < n; i++) {
        /* Distinct leaves without paying a hash per leaf: a counter in a fixed pattern. */
        memcpy(leaf, &i, sizeof i);
        leaf[31] = (uint8_t)(i * 131);
        rc = cl_merkle_append(t, leaf);
        if (rc < 0)
            return fail("append", rc);
    }
    rc = cl_merkle_flush(t);
    if (rc < 0)
        return fail("flush", rc);
    double t1 = now();
    printf("merkle.append_per_s %.0f\n", (double)n / (t1 - t0));
    rc = cl_merkle_sync(t);
    if (rc < 0)
        return fail("sync", rc);
    double t2 = now();
    printf("merkle.sync_ms %.2f\n", (t2 - t1) * 1e3);
    printf("merkle.rss_kb_after_append %ld\n", peak_rss_kb());
    uint8_t root[32], root2[32];
    rc = cl_merkle_root(t, root);
    if (rc < 0)
        return fail("root", rc);
    rc = cl_merkle_close(t);
    if (rc < 0)
        return fail("close", rc);

    t0 = now();
    rc = cl_merkle_open(cl_fs_posix(), dir, &t);
    if (rc < 0)
        return fail("reopen", rc);
    t1 = now();
    printf("merkle.open_ms %.3f\n", (t1 - t0) * 1e3);
    uint64_t size = cl_merkle_size(t);
    rc = cl_merkle_root(t, root2);
    if (rc < 0 || size != base + n || !cl_ct_equal(root, root2, 32)) {
        fprintf(stderr, "bench_merkle: reopened tree differs\n");
        return 1;
    }

    /* Inclusion proofs for random leaves of the full tree; every 100th is also verified. */
    cl_merkle_step steps[CL_MERKLE_MAX_PATH];
    size_t ns = 0, total_steps = 0;
    t0 = now();
    for (int i = 0; i < PROOFS; i++) {
        uint64_t idx = rnd() % size;
        rc = cl_merkle_path(t, idx, size, steps, &ns);
        if (rc < 0)
            return fail("path", rc);
        total_steps += ns;
        if (i % 100 == 0) {
            uint8_t lv[32], r[32];
            rc = cl_merkle_leaf(t, idx, lv);
            if (rc < 0 || cl_merkle_path_root(lv, steps, ns, r) < 0 || !cl_ct_equal(r, root, 32)) {
                fprintf(stderr, "bench_merkle: proof does not verify\n");
                return 1;
            }
        }
    }
    t1 = now();
    printf("merkle.path_us %.3f\n", (t1 - t0) * 1e6 / PROOFS);
    printf("merkle.path_steps_mean %.2f\n", (double)total_steps / PROOFS);

    /* Random sizes: inclusion proof of a random leaf in the tree of a random size (root_at). */
    t0 = now();
    for (int i = 0; i < PROOFS; i++) {
        uint64_t s = 1 + rnd() % size;
        rc = cl_merkle_path(t, rnd() % s, s, steps, &ns);
        if (rc < 0)
            return fail("path", rc);
    }
    t1 = now();
    printf("merkle.path_random_size_us %.3f\n", (t1 - t0) * 1e6 / PROOFS);

    t0 = now();
    for (int i = 0; i < PROOFS; i++) {
        uint64_t s = 1 + rnd() % size;
        rc = cl_merkle_root_at(t, s, root2);
        if (rc < 0)
            return fail("root_at", rc);
    }
    t1 = now();
    printf("merkle.root_at_us %.3f\n", (t1 - t0) * 1e6 / PROOFS);

    uint8_t proof[CL_MERKLE_MAX_CONSISTENCY][32];
    size_t np = 0, total_np = 0;
    t0 = now();
    for (int i = 0; i < PROOFS; i++) {
        uint64_t m = 1 + rnd() % size;
        rc = cl_merkle_consistency(t, m, size, proof, &np);
        if (rc < 0)
            return fail("consistency", rc);
        total_np += np;
        if (i % 100 == 0) {
            uint8_t rm[32];
            rc = cl_merkle_root_at(t, m, rm);
            if (rc < 0 || cl_merkle_verify_consistency(m, size, rm, root,
                                                       (const uint8_t(*)[32])proof, np) < 0) {
                fprintf(stderr, "bench_merkle: consistency proof does not verify\n");
                return 1;
            }
        }
    }
    t1 = now();
    printf("merkle.consistency_us %.3f\n", (t1 - t0) * 1e6 / PROOFS);
    printf("merkle.consistency_len_mean %.2f\n", (double)total_np / PROOFS);

    t0 = now();
    rc = cl_merkle_check(t);
    if (rc < 0)
        return fail("check", rc);
    t1 = now();
    printf("merkle.check_ms %.3f\n", (t1 - t0) * 1e3);
    printf("merkle.rss_kb_end %ld\n", peak_rss_kb());
    (void)cl_merkle_close(t);
    if (argc <= 2)
        remove_dir(dir);
    return 0;
}
