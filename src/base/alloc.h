/*
 * alloc.h — the allocation seam.
 *
 * All library allocations go through cl_malloc/cl_calloc/cl_realloc/cl_free so that tests can make
 * the Nth allocation fail (cl_alloc_fail_after) and check that every caller turns that into
 * CL_ENOMEM without leaking or corrupting state. Ownership: whoever calls cl_malloc frees with
 * cl_free. cl_free(NULL) is a no-op. jansson is pointed at the same seam (json.c).
 */
#ifndef CLEDGER_BASE_ALLOC_H
#define CLEDGER_BASE_ALLOC_H

#include <stddef.h>

void *cl_malloc(size_t n);
void *cl_calloc(size_t count, size_t size);
void *cl_realloc(void *p, size_t n);
/* `align` a power of two and a multiple of sizeof(void *) (posix_memalign); freed with cl_free. */
void *cl_aligned_alloc(size_t align, size_t n);
void cl_free(void *p);
char *cl_strdup(const char *s);
char *cl_strndup(const char *s, size_t n);

/* Test hook: the allocation after `n` more successful ones fails (n = 0: the very next one).
 * n < 0 turns fault injection off. Returns how many allocations succeeded since the last call. */
long cl_alloc_fail_after(long n);
/* Number of allocations that have been made to fail since start-up. */
long cl_alloc_failures(void);

#endif
