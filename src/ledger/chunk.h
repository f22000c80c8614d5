/*
 * chunk.h — chunk file naming, header, and sequential frame walking (docs/ledger-format.md §2).
 *
 * A chunk file starts with a 32-byte header:
 *   0  8  magic "CLGCHUNK"
 *   8  4  format version = 1 (u32 LE)
 *   12 4  flags: bit0 = private ledger
 *   16 8  start seqno (u64 LE) — equal to the <start> in the file name and the first frame's seqno
 *   24 8  reserved, zero
 * followed by entry frames back to back (entry.h). `ledger_<start>` is the open chunk;
 * `ledger_<start>-<end>.committed` is closed, immutable, and ends with a signature entry.
 *
 * The walker reads a chunk through the fs seam in bounded blocks (never the whole file), so its
 * memory does not depend on the chunk size beyond the largest frame.
 */
#ifndef CLEDGER_LEDGER_CHUNK_H
#define CLEDGER_LEDGER_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#include "base/cursor.h"
#include "base/err.h"
#include "ledger/entry.h"
#include "storage/fs.h"

#define CL_CHUNK_HEADER_LEN 32
#define CL_CHUNK_MAGIC "CLGCHUNK"
#define CL_CHUNK_VERSION 1
#define CL_CHUNK_F_PRIVATE 1

typedef struct {
    uint64_t start;
    uint64_t end; /* last seqno; 0 for the open chunk until known */
    int committed;
} cl_chunk_name;

/* Parses "ledger_<a>" or "ledger_<a>-<b>.committed" (decimal, no sign, no leading zeros).
 * CL_EINVAL for any other name. */
CL_MUST_CHECK int cl_chunk_parse_name(const char *name, cl_chunk_name *out);
void cl_chunk_format_name(const cl_chunk_name *c, char *out, size_t cap);

void cl_chunk_header_encode(uint64_t start, int private_ledger, uint8_t out[CL_CHUNK_HEADER_LEN]);
/* CL_EFORMAT naming the problem via *why (static string) when the header is wrong. */
CL_MUST_CHECK int cl_chunk_header_decode(const uint8_t *h, size_t len, uint64_t *start,
                                         int *private_ledger, const char **why);

/* Sequential reader over one chunk file. */
typedef struct {
    cl_file *f;
    uint64_t file_size;
    uint64_t off;     /* file offset of the next frame */
    cl_buf buf;       /* window of the file */
    uint64_t buf_off; /* file offset of buf.data[0] */
} cl_chunk_reader;

CL_MUST_CHECK int cl_chunk_reader_open(cl_chunk_reader *r, cl_fs *fs, const char *path);
void cl_chunk_reader_close(cl_chunk_reader *r);
/* Next frame: CL_OK with *e borrowing the reader's buffer until the next call, *frame_off its file
 * offset; CL_ENOENT at a clean end of file; CL_ETRUNC / CL_ECORRUPT / CL_EFORMAT for a bad frame
 * (r->off is then the offset of the bad frame). */
CL_MUST_CHECK int cl_chunk_reader_next(cl_chunk_reader *r, cl_entry_view *e, uint64_t *frame_off);

#endif
