/*
 * fuzz_entry — the entry frame codec and its payload decoders (src/ledger/entry.c), plus chunk
 * name parsing and chunk header decoding (src/ledger/chunk.c).
 *
 * The input is read like a chunk body: frames back to back (a leading 32-byte chunk header, when
 * the input starts with the chunk magic, is skipped). Every frame that decodes must re-encode to
 * exactly its own bytes, every payload that decodes must re-encode to exactly the payload bytes,
 * and the AEAD additional data must be bytes [4,96) of the frame followed by the public part.
 * The frames are walked twice: once as given, and once with each frame's CRC-32C recomputed, so
 * that mutations reach the checks behind the CRC.
 *
 * Seed generation: when CLEDGER_FUZZ_GEN_DIR names a directory at the first call, valid frames of
 * every type (made with cl_entry_encode) and truncated/corrupted variants are written there first.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cursor.h"
#include "crypto/hash.h"
#include "fuzz.h"
#include "ledger/chunk.h"
#include "ledger/claims.h"
#include "ledger/entry.h"

#define MAX_FRAMES 4096

static void check_payloads(const cl_entry_view *e)
{
    cl_buf b = CL_BUF_INIT;
    if (e->type == CL_ENTRY_USER) {
        cl_user_pub up;
        if (cl_user_pub_decode(e->pub, e->pub_len, &up) == CL_OK) {
            CHECK(cl_user_pub_encode(&up, &b) == CL_OK);
            CHECK(b.len == e->pub_len && memcmp(b.data, e->pub, b.len) == 0);
        }
        cl_user_priv pv;
        if (!(e->flags & CL_ENTRY_F_ENCRYPTED) &&
            cl_user_priv_decode(e->priv, e->priv_len, &pv) == CL_OK) {
            cl_buf_reset(&b);
            CHECK(cl_user_priv_encode(&pv, &b) == CL_OK);
            CHECK(b.len == e->priv_len && memcmp(b.data, e->priv, b.len) == 0);
            uint8_t d[32];
            if (cl_user_pub_decode(e->pub, e->pub_len, &up) == CL_OK)
                CHECK(cl_claims_ledger_entry_digest(pv.claims_key, 32, (const char *)up.collection,
                                                    up.collection_len, (const char *)pv.contents,
                                                    pv.contents_len, d) <= 0);
        }
    } else if (e->type == CL_ENTRY_SIGNATURE) {
        cl_sig_pub sp;
        if (cl_sig_pub_decode(e->pub, e->pub_len, &sp) == CL_OK) {
            CHECK(sp.sig_len > 0 && sp.sig_len <= 150);
            CHECK(cl_sig_pub_encode(&sp, &b) == CL_OK);
            CHECK(b.len == e->pub_len && memcmp(b.data, e->pub, b.len) == 0);
        }
    } else {
        CHECK(e->type == CL_ENTRY_INTERNAL);
        cl_internal_pub ip;
        if (cl_internal_pub_decode(e->pub, e->pub_len, &ip) == CL_OK) {
            CHECK(ip.table >= CL_TABLE_USERS && ip.table <= CL_TABLE_MAX);
            CHECK(ip.op == CL_OP_PUT || ip.op == CL_OP_REMOVE);
            CHECK(cl_internal_pub_encode(&ip, &b) == CL_OK);
            CHECK(b.len == e->pub_len && memcmp(b.data, e->pub, b.len) == 0);
        }
    }
    cl_buf_free(&b);
}

static void check_frame(const cl_entry_view *e, const uint8_t *at, size_t consumed)
{
    CHECK(e->frame == at && e->frame_len == consumed);
    CHECK(e->frame_len == CL_ENTRY_OVERHEAD + e->pub_len + e->priv_len);
    CHECK(e->pub == e->frame + CL_ENTRY_HEADER_LEN && e->priv == e->pub + e->pub_len);

    /* Round trip: the decoded view re-encodes to exactly the frame it came from. */
    cl_buf b = CL_BUF_INIT;
    CHECK(cl_entry_encode(e, &b) == CL_OK);
    CHECK(b.len == e->frame_len && memcmp(b.data, e->frame, b.len) == 0);

    /* AEAD additional data = frame bytes [4,96) || public part. */
    cl_buf_reset(&b);
    CHECK(cl_entry_aad(e, &b) == CL_OK);
    CHECK(b.len == 92 + e->pub_len);
    CHECK(memcmp(b.data, e->frame + 4, 92) == 0);
    CHECK(e->pub_len == 0 || memcmp(b.data + 92, e->pub, e->pub_len) == 0);
    cl_buf_free(&b);

    uint8_t wsd[32], leaf[32], want[32];
    cl_entry_write_set_digest(e, wsd);
    cl_sha256(e->frame, e->frame_len, want);
    CHECK(memcmp(wsd, want, 32) == 0);
    cl_entry_leaf(wsd, e->ce_digest, e->claims_digest, leaf);

    check_payloads(e);
}

/* Walks frames of data[0..len); returns how many decoded. */
static size_t walk(const uint8_t *data, size_t len)
{
    cl_cursor c;
    cl_cursor_init(&c, data, len);
    size_t n = 0;
    while (n < MAX_FRAMES) {
        size_t pos = c.pos;
        cl_entry_view e;
        int rc = cl_entry_decode(&c, &e);
        if (rc != CL_OK) {
            CHECK(c.pos == pos); /* a failed decode does not move the cursor */
            CHECK(rc == CL_ETRUNC || rc == CL_ECORRUPT || rc == CL_EFORMAT ||
                  rc == CL_EUNSUPPORTED);
            size_t left = cl_cursor_left(&c);
            CHECK(rc != CL_ETRUNC || left < 4 || cl_load_u32(data + pos) + (uint64_t)4 > left);
            break;
        }
        check_frame(&e, data + pos, c.pos - pos);
        n++;
    }
    return n;
}

/* Recomputes the CRC of every frame whose length field fits in the buffer. */
static void fix_crcs(uint8_t *p, size_t len)
{
    size_t off = 0;
    for (int i = 0; i < MAX_FRAMES && len - off >= 4; i++) {
        uint32_t flen = cl_load_u32(p + off);
        if (flen < CL_ENTRY_OVERHEAD - 4 || flen > len - off - 4)
            return;
        size_t total = (size_t)flen + 4;
        cl_store_u32(p + off + total - 4, cl_crc32c(0, p + off + 4, total - 8));
        off += total;
    }
}

/* ---- seed generation ------------------------------------------------------------------------ */

static const char *gen_dir;

static void gen_write(const char *name, const void *data, size_t len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", gen_dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK(len == 0 || fwrite(data, 1, len, f) == len);
    CHECK(fclose(f) == 0);
}

static void gen_fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + i * 37);
}

/* Encodes one frame of the given type with a payload made from `variant`. */
static void gen_frame(uint8_t type, int variant, uint64_t seqno, cl_buf *out)
{
    cl_entry_view e;
    memset(&e, 0, sizeof e);
    e.type = type;
    e.view = 2 + (uint64_t)variant;
    e.seqno = seqno;
    gen_fill(e.ce_digest, 32, (uint8_t)(seqno * 3));
    cl_buf pub = CL_BUF_INIT, priv = CL_BUF_INIT;
    uint8_t key[32], sig[72], blob[200];
    gen_fill(key, 32, 7);
    gen_fill(sig, sizeof sig, 0x30);
    gen_fill(blob, sizeof blob, (uint8_t)variant);
    if (type == CL_ENTRY_USER) {
        static const char *const colls[] = {"public", "accounts", "x", "col\xc3\xa9"};
        const char *coll = colls[variant % 4];
        cl_user_pub up = {(const uint8_t *)coll, strlen(coll)};
        CHECK(cl_user_pub_encode(&up, &pub) == CL_OK);
        static const char *const contents[] = {"hello", "", "{\"amount\":42}", "contents"};
        const char *ct = contents[variant % 4];
        cl_user_priv pv = {(const uint8_t *)ct, strlen(ct), key};
        if (variant & 4) { /* encrypted: ciphertext is opaque bytes of the same length */
            e.flags = CL_ENTRY_F_ENCRYPTED;
            cl_entry_iv(e.view, e.seqno, e.iv);
            gen_fill(e.tag, 16, 0x55);
            CHECK(cl_buf_append(&priv, blob, strlen(ct) + 4 + 32) == CL_OK);
        } else {
            CHECK(cl_user_priv_encode(&pv, &priv) == CL_OK);
            CHECK(cl_claims_ledger_entry_digest(key, 32, coll, strlen(coll), ct, strlen(ct),
                                                e.claims_digest) == CL_OK);
        }
    } else if (type == CL_ENTRY_SIGNATURE) {
        cl_sig_pub sp;
        sp.tree_size = seqno;
        gen_fill(sp.root, 32, 0x11);
        gen_fill(sp.node_id, 32, 0x22);
        sp.sig = sig;
        sp.sig_len = 64 + (size_t)variant % 8;
        CHECK(cl_sig_pub_encode(&sp, &pub) == CL_OK);
    } else {
        static const char *const values[] = {
            "{\"assignedRoles\":[\"Administrator\"]}",
            "{\"cert\":\"-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n\"}",
            "{\"cert\":\"x\",\"endorsement\":\"y\"}",
            "{\"appliesFrom\":1}",
            "{}",
            "constitution text"};
        cl_internal_pub ip;
        ip.table = (uint8_t)(CL_TABLE_USERS + variant % 6);
        ip.op = (variant / 6) % 2 ? CL_OP_REMOVE : CL_OP_PUT;
        const char *k = ip.table == CL_TABLE_NODES
                            ? "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"
                            : "key";
        ip.key = (const uint8_t *)k;
        ip.key_len = strlen(k);
        ip.value = (const uint8_t *)values[variant % 6];
        ip.value_len = ip.op == CL_OP_REMOVE ? 0 : strlen(values[variant % 6]);
        CHECK(cl_internal_pub_encode(&ip, &pub) == CL_OK);
        if (ip.table == CL_TABLE_SECRETS) {
            e.flags = CL_ENTRY_F_ENCRYPTED;
            cl_entry_iv(e.view, e.seqno, e.iv);
            gen_fill(e.tag, 16, 0x66);
            CHECK(cl_buf_append(&priv, blob, 32) == CL_OK);
        }
    }
    e.pub = pub.data;
    e.pub_len = pub.len;
    e.priv = priv.data;
    e.priv_len = priv.len;
    CHECK(cl_entry_encode(&e, out) == CL_OK);
    cl_buf_free(&pub);
    cl_buf_free(&priv);
}

/* A frame with byte `at` set to `v` and its CRC recomputed (a well-framed but invalid frame). */
static void gen_patched(const char *name, const cl_buf *frame, size_t at, uint8_t v, int fix)
{
    uint8_t *p = malloc(frame->len);
    CHECK(p != NULL);
    memcpy(p, frame->data, frame->len);
    p[at] = v;
    if (fix)
        fix_crcs(p, frame->len);
    gen_write(name, p, frame->len);
    free(p);
}

static void generate(void)
{
    char name[64];
    cl_buf all = CL_BUF_INIT, one = CL_BUF_INIT;
    uint8_t hdr[CL_CHUNK_HEADER_LEN];
    cl_chunk_header_encode(1, 0, hdr);
    CHECK(cl_buf_append(&all, hdr, sizeof hdr) == CL_OK);
    uint64_t seqno = 1;
    for (int v = 0; v < 8; v++) {
        cl_buf_reset(&one);
        gen_frame(CL_ENTRY_USER, v, seqno++, &one);
        snprintf(name, sizeof name, "user_%d", v);
        gen_write(name, one.data, one.len);
        CHECK(cl_buf_append(&all, one.data, one.len) == CL_OK);
    }
    for (int v = 0; v < 12; v++) {
        cl_buf_reset(&one);
        gen_frame(CL_ENTRY_INTERNAL, v, seqno++, &one);
        snprintf(name, sizeof name, "internal_%d", v);
        gen_write(name, one.data, one.len);
        CHECK(cl_buf_append(&all, one.data, one.len) == CL_OK);
    }
    for (int v = 0; v < 3; v++) {
        cl_buf_reset(&one);
        gen_frame(CL_ENTRY_SIGNATURE, v, seqno++, &one);
        snprintf(name, sizeof name, "signature_%d", v);
        gen_write(name, one.data, one.len);
        CHECK(cl_buf_append(&all, one.data, one.len) == CL_OK);
    }
    gen_write("chunk_all", all.data, all.len);
    gen_write("frames_all", all.data + CL_CHUNK_HEADER_LEN, all.len - CL_CHUNK_HEADER_LEN);
    gen_write("chunk_header_only", hdr, sizeof hdr);

    /* Truncated and corrupted variants of a user frame (the last one encoded is a signature). */
    cl_buf_reset(&one);
    gen_frame(CL_ENTRY_USER, 0, 1, &one);
    gen_write("trunc_user_minus1", one.data, one.len - 1);
    gen_write("trunc_user_half", one.data, one.len / 2);
    gen_write("trunc_user_len_only", one.data, 4);
    gen_write("trunc_two_frames", all.data + CL_CHUNK_HEADER_LEN, 2 * one.len - 7);
    gen_patched("bad_crc", &one, 40, (uint8_t)(one.data[40] ^ 1), 0);
    gen_patched("bad_version_2", &one, 4, 2, 1);
    gen_patched("bad_version_0", &one, 4, 0, 1);
    gen_patched("bad_type", &one, 5, 9, 1);
    gen_patched("bad_flags", &one, 7, 0x80, 1);
    gen_patched("bad_iv_unencrypted", &one, 100, 1, 1);
    gen_patched("bad_pub_len", &one, 88, (uint8_t)(one.data[88] + 1), 1);
    gen_patched("bad_frame_len_small", &one, 0, 10, 0);
    gen_patched("bad_frame_len_huge", &one, 3, 0x7f, 0);
    gen_patched("bad_user_lp16", &one, CL_ENTRY_HEADER_LEN, 0xff, 1);
    cl_buf_reset(&one);
    gen_frame(CL_ENTRY_SIGNATURE, 0, 5, &one);
    gen_patched("bad_sig_len_zero", &one, CL_ENTRY_HEADER_LEN + 72, 0, 1);
    cl_buf_reset(&one);
    gen_frame(CL_ENTRY_INTERNAL, 0, 5, &one);
    gen_patched("bad_internal_table", &one, CL_ENTRY_HEADER_LEN, CL_TABLE_MAX + 1, 1);
    gen_patched("bad_internal_op", &one, CL_ENTRY_HEADER_LEN + 1, 3, 1);

    static const char *const names[] = {"ledger_1",
                                        "ledger_12-40.committed",
                                        "ledger_0",
                                        "ledger_01",
                                        "ledger_18446744073709551615",
                                        "ledger_18446744073709551616",
                                        "ledger_5-4.committed",
                                        "ledger_1.tmp"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(name, sizeof name, "name_%zu", i);
        gen_write(name, names[i], strlen(names[i]));
    }
    cl_buf_free(&all);
    cl_buf_free(&one);
}

/* ---- entry point ---------------------------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int initialised;
    if (!initialised) {
        initialised = 1;
        gen_dir = getenv("CLEDGER_FUZZ_GEN_DIR");
        if (gen_dir != NULL && gen_dir[0] != '\0')
            generate();
    }

    /* Chunk file name parsing on the input as a string. */
    char name[256];
    size_t nl = size < sizeof name - 1 ? size : sizeof name - 1;
    memcpy(name, data, nl);
    name[nl] = '\0';
    cl_chunk_name cn;
    if (cl_chunk_parse_name(name, &cn) == CL_OK) {
        CHECK(cn.start >= 1);
        CHECK(!cn.committed || cn.end >= cn.start);
        /* no leading zeros and no sign, so formatting gives back the same name */
        char again[256];
        cl_chunk_format_name(&cn, again, sizeof again);
        CHECK(strcmp(again, name) == 0);
    }

    /* Chunk header decoding on the first 32 bytes. */
    uint64_t start = 0;
    int priv = 0;
    const char *why = NULL;
    size_t hl = size < CL_CHUNK_HEADER_LEN ? size : CL_CHUNK_HEADER_LEN;
    int hrc = cl_chunk_header_decode(data, hl, &start, &priv, &why);
    if (hrc == CL_OK) {
        uint8_t h[CL_CHUNK_HEADER_LEN];
        cl_chunk_header_encode(start, priv, h);
        CHECK(why == NULL && memcmp(h, data, CL_CHUNK_HEADER_LEN) == 0);
    } else {
        CHECK(hrc == CL_EFORMAT && why != NULL);
    }

    /* Frames, as given and with their CRCs repaired. */
    size_t body = size >= CL_CHUNK_HEADER_LEN && memcmp(data, CL_CHUNK_MAGIC, 8) == 0
                      ? CL_CHUNK_HEADER_LEN
                      : 0;
    size_t n1 = walk(data + body, size - body);
    uint8_t *copy = malloc(size - body + 1);
    CHECK(copy != NULL);
    memcpy(copy, data + body, size - body);
    fix_crcs(copy, size - body);
    size_t n2 = walk(copy, size - body);
    CHECK(n2 >= n1);
    free(copy);
    return 0;
}
