#include "base/cursor.h"

#include <openssl/crypto.h>
#include <string.h>

#include "base/alloc.h"

int cl_cursor_skip(cl_cursor *c, size_t n)
{
    CL_ENSURE(n <= cl_cursor_left(c), CL_ETRUNC);
    c->pos += n;
    return CL_OK;
}

int cl_cursor_view(cl_cursor *c, const uint8_t **out, size_t n)
{
    CL_ENSURE(n <= cl_cursor_left(c), CL_ETRUNC);
    *out = c->data + c->pos;
    c->pos += n;
    return CL_OK;
}

int cl_cursor_read(cl_cursor *c, void *out, size_t n)
{
    CL_ENSURE(n <= cl_cursor_left(c), CL_ETRUNC);
    if (n > 0)
        memcpy(out, c->data + c->pos, n);
    c->pos += n;
    return CL_OK;
}

int cl_cursor_u8(cl_cursor *c, uint8_t *v) { return cl_cursor_read(c, v, 1); }

static int read_le(cl_cursor *c, uint64_t *v, size_t n)
{
    CL_ENSURE(n <= cl_cursor_left(c), CL_ETRUNC);
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++)
        x |= (uint64_t)c->data[c->pos + i] << (8 * i);
    c->pos += n;
    *v = x;
    return CL_OK;
}

static int read_be(cl_cursor *c, uint64_t *v, size_t n)
{
    CL_ENSURE(n <= cl_cursor_left(c), CL_ETRUNC);
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++)
        x = x << 8 | c->data[c->pos + i];
    c->pos += n;
    *v = x;
    return CL_OK;
}

int cl_cursor_u16(cl_cursor *c, uint16_t *v)
{
    uint64_t x;
    CL_TRY(read_le(c, &x, 2));
    *v = (uint16_t)x;
    return CL_OK;
}
int cl_cursor_u32(cl_cursor *c, uint32_t *v)
{
    uint64_t x;
    CL_TRY(read_le(c, &x, 4));
    *v = (uint32_t)x;
    return CL_OK;
}
int cl_cursor_u64(cl_cursor *c, uint64_t *v) { return read_le(c, v, 8); }
int cl_cursor_u16_be(cl_cursor *c, uint16_t *v)
{
    uint64_t x;
    CL_TRY(read_be(c, &x, 2));
    *v = (uint16_t)x;
    return CL_OK;
}
int cl_cursor_u32_be(cl_cursor *c, uint32_t *v)
{
    uint64_t x;
    CL_TRY(read_be(c, &x, 4));
    *v = (uint32_t)x;
    return CL_OK;
}
int cl_cursor_u64_be(cl_cursor *c, uint64_t *v) { return read_be(c, v, 8); }

static int read_lp(cl_cursor *c, const uint8_t **out, size_t *n, size_t width)
{
    size_t save = c->pos;
    uint64_t len;
    CL_TRY(read_le(c, &len, width));
    if (len > cl_cursor_left(c)) {
        c->pos = save; /* a failed read does not move the cursor */
        return CL_ETRUNC;
    }
    *out = c->data + c->pos;
    *n = (size_t)len;
    c->pos += (size_t)len;
    return CL_OK;
}
int cl_cursor_lp16(cl_cursor *c, const uint8_t **out, size_t *n) { return read_lp(c, out, n, 2); }
int cl_cursor_lp32(cl_cursor *c, const uint8_t **out, size_t *n) { return read_lp(c, out, n, 4); }

void cl_buf_init(cl_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->secret = 0;
}

void cl_buf_init_secret(cl_buf *b)
{
    cl_buf_init(b);
    b->secret = 1;
}

/* Frees the storage (wiped first when `wipe`); the buffer stays secret or not for reuse. */
static void buf_release(cl_buf *b, int wipe)
{
    if (wipe && b->data != NULL)
        OPENSSL_cleanse(b->data, b->cap);
    cl_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void cl_buf_free(cl_buf *b) { buf_release(b, b->secret); }

void cl_buf_wipe_free(cl_buf *b) { buf_release(b, 1); }

void cl_buf_reset(cl_buf *b)
{
    if (b->secret && b->len > 0)
        OPENSSL_cleanse(b->data, b->len);
    b->len = 0;
}

int cl_buf_reserve(cl_buf *b, size_t extra)
{
    CL_ENSURE(extra <= SIZE_MAX - b->len, CL_EOVERFLOW);
    size_t need = b->len + extra;
    if (need <= b->cap)
        return CL_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        CL_ENSURE(cap <= SIZE_MAX / 2, CL_EOVERFLOW);
        cap *= 2;
    }
    uint8_t *p;
    if (b->secret) { /* realloc would free the old copy unwiped */
        p = cl_malloc(cap);
        CL_ENSURE(p != NULL, CL_ENOMEM);
        if (b->data != NULL) {
            memcpy(p, b->data, b->len);
            OPENSSL_cleanse(b->data, b->cap);
            cl_free(b->data);
        }
    } else {
        p = cl_realloc(b->data, cap);
        CL_ENSURE(p != NULL, CL_ENOMEM);
    }
    b->data = p;
    b->cap = cap;
    return CL_OK;
}

int cl_buf_append(cl_buf *b, const void *p, size_t n)
{
    CL_TRY(cl_buf_reserve(b, n));
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    return CL_OK;
}

int cl_buf_u8(cl_buf *b, uint8_t v) { return cl_buf_append(b, &v, 1); }
int cl_buf_u16(cl_buf *b, uint16_t v)
{
    uint8_t t[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    return cl_buf_append(b, t, 2);
}
int cl_buf_u32(cl_buf *b, uint32_t v)
{
    uint8_t t[4];
    cl_store_u32(t, v);
    return cl_buf_append(b, t, 4);
}
int cl_buf_u64(cl_buf *b, uint64_t v)
{
    uint8_t t[8];
    cl_store_u64(t, v);
    return cl_buf_append(b, t, 8);
}
int cl_buf_lp16(cl_buf *b, const void *p, size_t n)
{
    CL_ENSURE(n <= UINT16_MAX, CL_EOVERFLOW);
    CL_TRY(cl_buf_reserve(b, 2 + n));
    CL_TRY(cl_buf_u16(b, (uint16_t)n));
    return cl_buf_append(b, p, n);
}
int cl_buf_lp32(cl_buf *b, const void *p, size_t n)
{
    CL_ENSURE(n <= UINT32_MAX, CL_EOVERFLOW);
    CL_TRY(cl_buf_reserve(b, 4 + n));
    CL_TRY(cl_buf_u32(b, (uint32_t)n));
    return cl_buf_append(b, p, n);
}
