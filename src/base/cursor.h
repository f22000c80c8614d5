/*
 * cursor.h — the bounds-checked cursor every decoder uses, and a growable byte buffer for encoders.
 *
 * cl_cursor borrows the bytes it reads (it never copies or frees them); the caller keeps them alive
 * while the cursor is in use. Every read either succeeds and advances, or fails with CL_ETRUNC /
 * CL_EOVERFLOW and leaves the cursor where it was. No length read from input is trusted before the
 * bytes it announces are known to be there. Integers are little-endian unless the name says _be.
 *
 * cl_buf owns its heap storage (cl_malloc'd, grown geometrically). cl_buf_free releases it;
 * cl_buf_wipe_free zeroes it first. A buffer made with CL_BUF_SECRET (or cl_buf_init_secret) is
 * for bytes that must not outlive their use (keys, a private ledger's contents, HTTP messages): it
 * is zeroed whenever it lets go of bytes, so no copy is left in freed memory: the old storage when
 * it grows (no realloc), the bytes dropped by cl_buf_reset, all of it in cl_buf_free, which keeps
 * the buffer secret for reuse. A failed append leaves the buffer unchanged and returns CL_ENOMEM.
 */
#ifndef CLEDGER_BASE_CURSOR_H
#define CLEDGER_BASE_CURSOR_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

typedef struct {
    const uint8_t *data;
    size_t len;
    size_t pos;
} cl_cursor;

static inline void cl_cursor_init(cl_cursor *c, const void *data, size_t len)
{
    c->data = (const uint8_t *)data;
    c->len = len;
    c->pos = 0;
}
static inline size_t cl_cursor_left(const cl_cursor *c) { return c->len - c->pos; }
static inline const uint8_t *cl_cursor_ptr(const cl_cursor *c) { return c->data + c->pos; }

CL_MUST_CHECK int cl_cursor_skip(cl_cursor *c, size_t n);
CL_MUST_CHECK int cl_cursor_read(cl_cursor *c, void *out, size_t n);
/* Borrow n bytes in place: *out points into the cursor's data. */
CL_MUST_CHECK int cl_cursor_view(cl_cursor *c, const uint8_t **out, size_t n);
CL_MUST_CHECK int cl_cursor_u8(cl_cursor *c, uint8_t *v);
CL_MUST_CHECK int cl_cursor_u16(cl_cursor *c, uint16_t *v);
CL_MUST_CHECK int cl_cursor_u32(cl_cursor *c, uint32_t *v);
CL_MUST_CHECK int cl_cursor_u64(cl_cursor *c, uint64_t *v);
CL_MUST_CHECK int cl_cursor_u16_be(cl_cursor *c, uint16_t *v);
CL_MUST_CHECK int cl_cursor_u32_be(cl_cursor *c, uint32_t *v);
CL_MUST_CHECK int cl_cursor_u64_be(cl_cursor *c, uint64_t *v);
/* A length-prefixed field (u16 or u32 little-endian length, then the bytes), borrowed in place. */
CL_MUST_CHECK int cl_cursor_lp16(cl_cursor *c, const uint8_t **out, size_t *n);
CL_MUST_CHECK int cl_cursor_lp32(cl_cursor *c, const uint8_t **out, size_t *n);

typedef struct {
    uint8_t *data;
    size_t len;
    size_t cap;
    int secret; /* zeroed when it grows, is reset or freed */
} cl_buf;

#define CL_BUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0, 0                                                                              \
    }
#define CL_BUF_SECRET                                                                              \
    {                                                                                              \
        NULL, 0, 0, 1                                                                              \
    }

/* A string literal as the (pointer, length) pair cl_buf_append takes. */
#define CL_LIT(s) (s), (sizeof(s) - 1)

void cl_buf_init(cl_buf *b);
void cl_buf_init_secret(cl_buf *b);
void cl_buf_free(cl_buf *b);
void cl_buf_wipe_free(cl_buf *b);
void cl_buf_reset(cl_buf *b);
CL_MUST_CHECK int cl_buf_reserve(cl_buf *b, size_t extra);
CL_MUST_CHECK int cl_buf_append(cl_buf *b, const void *p, size_t n);
CL_MUST_CHECK int cl_buf_u8(cl_buf *b, uint8_t v);
CL_MUST_CHECK int cl_buf_u16(cl_buf *b, uint16_t v);
CL_MUST_CHECK int cl_buf_u32(cl_buf *b, uint32_t v);
CL_MUST_CHECK int cl_buf_u64(cl_buf *b, uint64_t v);
/* Length-prefixed field; CL_EOVERFLOW when n does not fit the prefix. */
CL_MUST_CHECK int cl_buf_lp16(cl_buf *b, const void *p, size_t n);
CL_MUST_CHECK int cl_buf_lp32(cl_buf *b, const void *p, size_t n);

/* Little-endian stores and loads into plain arrays (for fixed-size headers). */
static inline void cl_store_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static inline void cl_store_u64(uint8_t *p, uint64_t v)
{
    cl_store_u32(p, (uint32_t)v);
    cl_store_u32(p + 4, (uint32_t)(v >> 32));
}
static inline uint32_t cl_load_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t cl_load_u64(const uint8_t *p)
{
    return (uint64_t)cl_load_u32(p) | (uint64_t)cl_load_u32(p + 4) << 32;
}

#endif
