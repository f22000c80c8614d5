#include "ledger/chunk.h"

#include <stdio.h>
#include <string.h>

#include "base/alloc.h"

static int parse_u64(const char **p, uint64_t *out)
{
    const char *s = *p;
    if (*s < '0' || *s > '9' || (*s == '0' && s[1] >= '0' && s[1] <= '9'))
        return CL_EINVAL;
    uint64_t v = 0;
    while (*s >= '0' && *s <= '9') {
        uint64_t d = (uint64_t)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return CL_EINVAL;
        v = v * 10 + d;
        s++;
    }
    *p = s;
    *out = v;
    return CL_OK;
}

int cl_chunk_parse_name(const char *name, cl_chunk_name *out)
{
    CL_ENSURE(strncmp(name, "ledger_", 7) == 0, CL_EINVAL);
    const char *p = name + 7;
    cl_chunk_name c = {0, 0, 0};
    CL_TRY(parse_u64(&p, &c.start));
    CL_ENSURE(c.start >= 1, CL_EINVAL);
    if (*p == '\0') {
        *out = c;
        return CL_OK;
    }
    CL_ENSURE(*p == '-', CL_EINVAL);
    p++;
    CL_TRY(parse_u64(&p, &c.end));
    CL_ENSURE(strcmp(p, ".committed") == 0 && c.end >= c.start, CL_EINVAL);
    c.committed = 1;
    *out = c;
    return CL_OK;
}

void cl_chunk_format_name(const cl_chunk_name *c, char *out, size_t cap)
{
    if (c->committed)
        snprintf(out, cap, "ledger_%llu-%llu.committed", (unsigned long long)c->start,
                 (unsigned long long)c->end);
    else
        snprintf(out, cap, "ledger_%llu", (unsigned long long)c->start);
}

void cl_chunk_header_encode(uint64_t start, int private_ledger, uint8_t out[CL_CHUNK_HEADER_LEN])
{
    memset(out, 0, CL_CHUNK_HEADER_LEN);
    memcpy(out, CL_CHUNK_MAGIC, 8);
    cl_store_u32(out + 8, CL_CHUNK_VERSION);
    cl_store_u32(out + 12, private_ledger ? CL_CHUNK_F_PRIVATE : 0);
    cl_store_u64(out + 16, start);
}

int cl_chunk_header_decode(const uint8_t *h, size_t len, uint64_t *start, int *private_ledger,
                           const char **why)
{
    static const uint8_t zero[8];
    *why = NULL;
    if (len < CL_CHUNK_HEADER_LEN)
        *why = "chunk header truncated";
    else if (memcmp(h, CL_CHUNK_MAGIC, 8) != 0)
        *why = "bad chunk magic";
    else if (cl_load_u32(h + 8) != CL_CHUNK_VERSION)
        *why = "unsupported chunk version";
    else if ((cl_load_u32(h + 12) & ~(uint32_t)CL_CHUNK_F_PRIVATE) != 0)
        *why = "unknown chunk flags";
    else if (memcmp(h + 24, zero, 8) != 0)
        *why = "reserved chunk header bytes are not zero";
    if (*why != NULL)
        return CL_EFORMAT;
    *start = cl_load_u64(h + 16);
    *private_ledger = (cl_load_u32(h + 12) & CL_CHUNK_F_PRIVATE) != 0;
    return CL_OK;
}

int cl_chunk_reader_open(cl_chunk_reader *r, cl_fs *fs, const char *path)
{
    memset(r, 0, sizeof *r);
    cl_buf_init(&r->buf);
    CL_TRY(cl_fs_open(fs, path, CL_FS_RDONLY, 0, &r->f));
    int rc = cl_file_size(r->f, &r->file_size);
    if (rc < 0) {
        cl_file_close(r->f);
        r->f = NULL;
        return rc;
    }
    r->off = CL_CHUNK_HEADER_LEN;
    return CL_OK;
}

void cl_chunk_reader_close(cl_chunk_reader *r)
{
    cl_file_close(r->f);
    r->f = NULL;
    cl_buf_free(&r->buf);
}

#define WINDOW (256u * 1024)

/* Make sure bytes [off, off+n) of the file are in the window (or as many as the file has). */
static int fill(cl_chunk_reader *r, uint64_t off, size_t n)
{
    if (off >= r->buf_off && off + n <= r->buf_off + r->buf.len)
        return CL_OK;
    size_t want = n > WINDOW ? n : WINDOW;
    if (off + want > r->file_size)
        want = off < r->file_size ? (size_t)(r->file_size - off) : 0;
    cl_buf_reset(&r->buf);
    CL_TRY(cl_buf_reserve(&r->buf, want));
    size_t got = 0;
    CL_TRY(cl_file_pread(r->f, r->buf.data, want, off, &got));
    r->buf.len = got;
    r->buf_off = off;
    return CL_OK;
}

int cl_chunk_reader_next(cl_chunk_reader *r, cl_entry_view *e, uint64_t *frame_off)
{
    if (r->off >= r->file_size)
        return CL_ENOENT;
    CL_TRY(fill(r, r->off, 4));
    size_t avail = (size_t)(r->buf_off + r->buf.len - r->off);
    if (avail < 4)
        return CL_ETRUNC;
    uint32_t flen = cl_load_u32(r->buf.data + (r->off - r->buf_off));
    if (flen < CL_ENTRY_OVERHEAD - 4 || flen > CL_ENTRY_MAX_FRAME)
        return CL_ECORRUPT;
    if ((uint64_t)flen + 4 > r->file_size - r->off)
        return CL_ETRUNC;
    CL_TRY(fill(r, r->off, (size_t)flen + 4));
    cl_cursor c;
    cl_cursor_init(&c, r->buf.data + (r->off - r->buf_off), (size_t)flen + 4);
    CL_TRY(cl_entry_decode(&c, e));
    *frame_off = r->off;
    r->off += (uint64_t)flen + 4;
    return CL_OK;
}
