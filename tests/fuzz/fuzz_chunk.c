/*
 * fuzz_chunk — the sequential chunk reader (src/ledger/chunk.c) over a real file.
 *
 * The input is written to a temporary file (/tmp/cledger-fuzz-chunk-<pid>-XXXXXX, removed after
 * each run) and walked with cl_chunk_reader_open/next until it stops. The reader is checked
 * against an in-memory walk of the same bytes with cl_entry_decode: the same frames at the same
 * offsets, and the same final result (CL_ENOENT exactly when the frames end at end of file). The
 * header is decoded as the verifier would. Work is bounded: each frame is at least 128 bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/cursor.h"
#include "fuzz.h"
#include "ledger/chunk.h"
#include "ledger/entry.h"
#include "storage/fs.h"

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Payload decoders either succeed or reject the payload as malformed. */
static int decoded(int rc) { return rc == CL_OK || rc == CL_EFORMAT; }

static void payloads(const cl_entry_view *e)
{
    if (e->type == CL_ENTRY_USER) {
        cl_user_pub up;
        cl_user_priv pv;
        CHECK(decoded(cl_user_pub_decode(e->pub, e->pub_len, &up)));
        if (!(e->flags & CL_ENTRY_F_ENCRYPTED))
            CHECK(decoded(cl_user_priv_decode(e->priv, e->priv_len, &pv)));
    } else if (e->type == CL_ENTRY_SIGNATURE) {
        cl_sig_pub sp;
        CHECK(decoded(cl_sig_pub_decode(e->pub, e->pub_len, &sp)));
    } else {
        cl_internal_pub ip;
        CHECK(decoded(cl_internal_pub_decode(e->pub, e->pub_len, &ip)));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[128];
    snprintf(path, sizeof path, "/tmp/cledger-fuzz-chunk-%ld-XXXXXX", (long)getpid());
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK(write_all(fd, data, size) == 0);
    CHECK(close(fd) == 0);

    /* The header, as the verifier reads it. */
    uint64_t start;
    int priv;
    const char *why;
    size_t hl = size < CL_CHUNK_HEADER_LEN ? size : CL_CHUNK_HEADER_LEN;
    int hrc = cl_chunk_header_decode(data, hl, &start, &priv, &why);
    CHECK(hrc == CL_OK ? why == NULL : hrc == CL_EFORMAT && why != NULL);

    /* Reference walk over the bytes after the header. */
    cl_cursor ref;
    if (size > CL_CHUNK_HEADER_LEN)
        cl_cursor_init(&ref, data + CL_CHUNK_HEADER_LEN, size - CL_CHUNK_HEADER_LEN);
    else
        cl_cursor_init(&ref, data, 0);

    cl_chunk_reader r;
    int rc = cl_chunk_reader_open(&r, cl_fs_posix(), path);
    CHECK(rc == CL_OK);
    CHECK(r.file_size == size);
    size_t frames = 0;
    for (;;) {
        cl_entry_view e;
        uint64_t off = 0;
        uint64_t at = r.off;
        rc = cl_chunk_reader_next(&r, &e, &off);
        cl_entry_view want;
        size_t ref_pos = ref.pos;
        int ref_rc = cl_cursor_left(&ref) == 0 ? CL_ENOENT : cl_entry_decode(&ref, &want);
        CHECK(rc == ref_rc);
        if (rc != CL_OK) {
            CHECK(r.off == at); /* r->off is the offset of the bad frame */
            CHECK(rc != CL_ENOENT || r.off >= r.file_size);
            break;
        }
        frames++;
        CHECK(off == at && off == CL_CHUNK_HEADER_LEN + ref_pos);
        CHECK(r.off == off + e.frame_len);
        CHECK(e.frame_len == want.frame_len && memcmp(e.frame, want.frame, e.frame_len) == 0);
        CHECK(e.type == want.type && e.seqno == want.seqno && e.view == want.view);
        payloads(&e);
        uint8_t wsd[32], leaf[32];
        cl_entry_write_set_digest(&e, wsd);
        cl_entry_leaf(wsd, e.ce_digest, e.claims_digest, leaf);
        CHECK(frames <= size / CL_ENTRY_OVERHEAD);
    }
    cl_chunk_reader_close(&r);
    CHECK(unlink(path) == 0);
    return 0;
}
