/*
 * bench_disk — the device's own latency for durable writes: the reference a write's latency is
 * judged against, as nginx is for the network.
 *
 *   bench_disk --file PATH [--duration S=10] [--interval-ms MS=20] [--bytes B=4096]
 *
 * Writes B bytes (whole 4 KiB blocks) with O_DIRECT|O_DSYNC (O_DSYNC alone where the file system
 * has no O_DIRECT, e.g. tmpfs) to PATH every MS milliseconds for S seconds, cycling over 16 MiB
 * that are written and synced once before the clock starts (so no write allocates a block or
 * changes the file size: each is a data write and a cache flush, what cl_rlog's log writes are).
 * With MS = 0 the writes go back to back.
 *
 * Paced, it is light (50 writes/s at the default interval against the ~1,000-3,000 a log under
 * load issues), so it runs beside a load test: a device stall shows up in its maximum at the time
 * it holds the server's writes. bench/load.sh runs it during each half-rate write run.
 *
 * Prints "disk.writes N", "disk.p50_ms", "disk.p99_ms", "disk.max_ms", "disk.over10 N" (writes
 * slower than 10 ms) and "disk.over100 N". PATH is created (0600) and removed at the end, also
 * when a write fails; an existing PATH is refused, so it never overwrites a file. A run stops
 * after MAX_SAMPLES writes (at most 128 MiB of latencies).
 */
#define _GNU_SOURCE /* O_DIRECT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 4096
#define SPAN ((off_t)16 << 20)
/* Latencies kept (8 bytes each): a run ends early when it has timed this many writes. */
#define MAX_SAMPLES ((size_t)1 << 24)

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *msg, const char *arg)
{
    fprintf(stderr, "bench_disk: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
    exit(2);
}

static double num(const char *opt, const char *v, double lo, double hi)
{
    char *end = NULL;
    errno = 0;
    double d = v != NULL ? strtod(v, &end) : 0;
    if (v == NULL || errno != 0 || end == v || *end != '\0' || !(d >= lo && d <= hi))
        die("bad value for", opt);
    return d;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int write_all(int fd, const void *buf, size_t n, off_t off)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
        off += w;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    double duration = 10, interval_ms = 20, dbytes = BLOCK;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--file") == 0 && v != NULL)
            path = v;
        else if (strcmp(a, "--duration") == 0)
            duration = num(a, v, 0.1, 86400);
        else if (strcmp(a, "--interval-ms") == 0)
            interval_ms = num(a, v, 0, 60000);
        else if (strcmp(a, "--bytes") == 0)
            dbytes = num(a, v, BLOCK, 1 << 20);
        else
            die("usage: bench_disk --file PATH [--duration S] [--interval-ms MS] [--bytes B]",
                NULL);
        i++;
    }
    if (path == NULL)
        die("--file is required", NULL);
    size_t bytes = (size_t)dbytes;
    if ((double)bytes != dbytes || bytes % BLOCK != 0)
        die("--bytes must be a multiple of 4096", NULL);

    /* Everything that can fail before the file exists is done first: after open, every failure
     * goes through `out`, which removes the file. */
    void *buf = NULL;
    size_t cap = 1024, n = 0;
    double *lat = malloc(cap * sizeof *lat);
    if (lat == NULL || posix_memalign(&buf, BLOCK, 1 << 20) != 0)
        die("out of memory", NULL);
    memset(buf, 0x5a, 1 << 20);

    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_DSYNC | O_DIRECT, 0600);
    if (fd < 0 && errno == EINVAL) {
        /* No O_DIRECT on this file system. O_EXCL did not fail, so the path was not there before:
         * whatever the refused open left behind is ours to remove. */
        (void)unlink(path);
        fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_DSYNC, 0600);
    }
    if (fd < 0)
        die(strerror(errno), path);
    const char *failed = NULL;
    for (off_t off = 0; off < SPAN && failed == NULL; off += 1 << 20)
        if (write_all(fd, buf, 1 << 20, off) != 0)
            failed = strerror(errno);
    if (failed == NULL && fdatasync(fd) != 0)
        failed = strerror(errno);

    double t0 = now(), next = t0;
    off_t off = 0;
    while (failed == NULL && n < MAX_SAMPLES && now() - t0 < duration) {
        if (interval_ms > 0) {
            double wait = next - now();
            if (wait > 0) {
                struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
                nanosleep(&ts, NULL);
            }
            next += interval_ms / 1000;
        }
        if (n == cap) {
            double *g = realloc(lat, 2 * cap * sizeof *lat);
            if (g == NULL) {
                failed = "out of memory";
                break;
            }
            lat = g;
            cap *= 2;
        }
        double a = now();
        if (write_all(fd, buf, bytes, off) != 0) {
            failed = strerror(errno);
            break;
        }
        lat[n++] = (now() - a) * 1e3;
        off += (off_t)bytes;
        if (off + (off_t)bytes > SPAN)
            off = 0;
    }
    close(fd);
    unlink(path);
    free(buf);
    if (failed != NULL) {
        fprintf(stderr, "bench_disk: %s: %s\n", path, failed);
        free(lat);
        return 1;
    }
    size_t over10 = 0, over100 = 0;
    for (size_t i = 0; i < n; i++) {
        over10 += lat[i] > 10;
        over100 += lat[i] > 100;
    }
    qsort(lat, n, sizeof *lat, cmp_double);
    printf("disk.writes %zu\n", n);
    if (n > 0) {
        printf("disk.p50_ms %.3f ms\n", lat[n / 2]);
        printf("disk.p99_ms %.3f ms\n", lat[(n * 99) / 100]);
        printf("disk.max_ms %.3f ms\n", lat[n - 1]);
    }
    printf("disk.over10 %zu\n", over10);
    printf("disk.over100 %zu\n", over100);
    free(lat);
    return 0;
}
