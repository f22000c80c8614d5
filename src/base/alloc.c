#include "base/alloc.h"

#include <stdlib.h>
#include <string.h>

/* Fault-injection counters. Process-wide on purpose: the seam is a test hook, not state. Arming
 * it is for single-threaded unit tests; when it is disarmed (always, in the server) every thread
 * only bumps the success counter, atomically, so multi-threaded programs have no data race here. */
static long fail_countdown = -1;
static long successes;
static long failures;

static int should_fail(void)
{
    if (__atomic_load_n(&fail_countdown, __ATOMIC_RELAXED) < 0) {
        __atomic_fetch_add(&successes, 1, __ATOMIC_RELAXED);
        return 0;
    }
    if (fail_countdown == 0) {
        failures++;
        return 1;
    }
    fail_countdown--;
    successes++;
    return 0;
}

long cl_alloc_fail_after(long n)
{
    long s = __atomic_exchange_n(&successes, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&fail_countdown, n, __ATOMIC_RELAXED);
    return s;
}

long cl_alloc_failures(void) { return failures; }

void *cl_malloc(size_t n)
{
    if (should_fail())
        return NULL;
    return malloc(n ? n : 1);
}

void *cl_calloc(size_t count, size_t size)
{
    if (should_fail())
        return NULL;
    return calloc(count ? count : 1, size ? size : 1);
}

void *cl_realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    return realloc(p, n ? n : 1);
}

void *cl_aligned_alloc(size_t align, size_t n)
{
    void *p = NULL;
    if (should_fail() || posix_memalign(&p, align, n ? n : 1) != 0)
        return NULL;
    return p;
}

void cl_free(void *p) { free(p); }

char *cl_strndup(const char *s, size_t n)
{
    char *d = cl_malloc(n + 1);
    if (d == NULL)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *cl_strdup(const char *s) { return cl_strndup(s, strlen(s)); }
