/*
 * bench_index — throughput of the ledger index.
 *
 *   bench_index [N=1000000] [dir]
 *
 * Puts N entries, each with a collection row (16 collections, round robin), in batches of 1000;
 * then N random get_entry calls; then scans every collection in pages of 1000. Prints
 * "index.put_per_s X", "index.get_per_s Y", "index.scan_per_s Z" (seqnos returned per second).
 * Without dir a temporary directory under /tmp is used and removed afterwards; with dir the index
 * files in it are replaced.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "storage/index.h"

#define BATCH 1000
#define NCOLL 16

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "bench_index: %s: %s\n", what, cl_strerror(rc));
    return 1;
}

static int count_cb(void *arg, uint64_t seqno)
{
    (void)seqno;
    (*(uint64_t *)arg)++;
    return 0;
}

/* xorshift64: a cheap, fixed-seed random sequence for the lookups */
static uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    if (n == 0)
        n = 1000000;
    char tmp[] = "/tmp/cl_bench_index_XXXXXX";
    char dir[4096];
    int own_dir = argc <= 2;
    if (own_dir) {
        if (mkdtemp(tmp) == NULL) {
            perror("mkdtemp");
            return 1;
        }
        snprintf(dir, sizeof(dir), "%s/idx", tmp);
    } else {
        snprintf(dir, sizeof(dir), "%s", argv[2]);
        if (cl_index_remove_files(dir) < 0) {
            fprintf(stderr, "bench_index: cannot clear %s\n", dir);
            return 1;
        }
    }
    char names[NCOLL][16];
    for (int i = 0; i < NCOLL; i++)
        snprintf(names[i], sizeof(names[i]), "coll-%02d", i);

    cl_index *idx;
    int rc = cl_index_open(dir, 0, &idx);
    if (rc < 0)
        return fail("open", rc);

    double t0 = now();
    for (uint64_t s = 1; s <= n;) {
        cl_index_batch *b;
        if ((rc = cl_index_batch_begin(idx, &b)) < 0)
            return fail("batch_begin", rc);
        for (int i = 0; i < BATCH && s <= n; i++, s++) {
            cl_index_loc l = {s / 4096 * 4096 + 1, s * 200, 180, 3, 1, 0};
            const char *c = names[s % NCOLL];
            if ((rc = cl_index_put_entry(b, s, &l)) < 0 ||
                (rc = cl_index_put_collection(b, c, strlen(c), s)) < 0) {
                cl_index_batch_abort(b);
                return fail("put", rc);
            }
        }
        if ((rc = cl_index_batch_commit(b)) < 0)
            return fail("commit", rc);
    }
    double put_s = now() - t0;

    uint64_t seed = 0x9e3779b97f4a7c15ull;
    t0 = now();
    for (uint64_t i = 0; i < n; i++) {
        cl_index_loc l;
        if ((rc = cl_index_get_entry(idx, rnd(&seed) % n + 1, &l)) < 0)
            return fail("get", rc);
    }
    double get_s = now() - t0;

    uint64_t seen = 0;
    t0 = now();
    for (int i = 0; i < NCOLL; i++) {
        uint64_t from = 1, next;
        do {
            rc = cl_index_collection_scan(idx, names[i], strlen(names[i]), from, UINT64_MAX, 1000,
                                          count_cb, &seen, &next);
            if (rc < 0)
                return fail("scan", rc);
            from = next;
        } while (next != 0);
    }
    double scan_s = now() - t0;
    if (seen != n) {
        fprintf(stderr, "bench_index: scanned %llu seqnos, expected %llu\n",
                (unsigned long long)seen, (unsigned long long)n);
        return 1;
    }

    printf("index.n %llu\n", (unsigned long long)n);
    printf("index.put_per_s %.0f\n", (double)n / put_s);
    printf("index.get_per_s %.0f\n", (double)n / get_s);
    printf("index.scan_per_s %.0f\n", (double)seen / scan_s);
    printf("index.map_size %zu\n", cl_index_map_size(idx));
    cl_index_close(idx);
    if (own_dir) {
        if (cl_index_remove_files(dir) == CL_OK)
            rmdir(dir);
        rmdir(tmp);
    }
    return 0;
}
