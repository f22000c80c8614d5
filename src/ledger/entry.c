#include "ledger/entry.h"

#include <string.h>

#include "crypto/hash.h"

/* CRC-32C (Castagnoli), reflected. Not a security check: it only separates a torn or zero-filled
 * tail from a complete frame or raft log record; integrity comes from the signed Merkle tree.
 * x86-64 CPUs with SSE4.2 have it as an instruction (the crc32 instruction computes exactly this
 * polynomial, reflected): 8 bytes per instruction against ~1.5 bytes per cycle for the tables,
 * which were 2.9% of the main loop's time under write load (every frame and every log record is
 * summed). Elsewhere: slicing-by-8 tables. Both give the same value (tests check them against
 * RFC 3720's vectors and against each other). */
static uint32_t crc_table[8][256];
static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

uint32_t cl_crc32c_sw(uint32_t crc, const void *data, size_t n)
{
    static int ready;
    if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
        crc_init(); /* idempotent: racing initialisers write identical tables */
        __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
    }
    const uint8_t *p = data;
    crc = ~crc;
    while (n >= 8) { /* slicing-by-8 */
        uint32_t lo = crc ^ cl_load_u32(p);
        uint32_t hi = cl_load_u32(p + 4);
        crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
              crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xff] ^
              crc_table[2][(hi >> 8) & 0xff] ^ crc_table[1][(hi >> 16) & 0xff] ^
              crc_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--)
        crc = (crc >> 8) ^ crc_table[0][(crc ^ *p++) & 0xff];
    return ~crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const void *data, size_t n)
{
    const uint8_t *p = data;
    uint64_t c = ~crc;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8); /* unaligned; little-endian, as the reflected CRC wants */
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return ~c32;
}

int cl_crc32c_hw_available(void)
{
    static int have = -1; /* racing first calls store the same answer */
    int h = __atomic_load_n(&have, __ATOMIC_RELAXED);
    if (h < 0) {
        __builtin_cpu_init();
        h = __builtin_cpu_supports("sse4.2") ? 1 : 0;
        __atomic_store_n(&have, h, __ATOMIC_RELAXED);
    }
    return h;
}

uint32_t cl_crc32c(uint32_t crc, const void *data, size_t n)
{
    return cl_crc32c_hw_available() ? crc_hw(crc, data, n) : cl_crc32c_sw(crc, data, n);
}
#else
int cl_crc32c_hw_available(void) { return 0; }
uint32_t cl_crc32c(uint32_t crc, const void *data, size_t n) { return cl_crc32c_sw(crc, data, n); }
#endif

static int valid_type(uint8_t t)
{
    return t == CL_ENTRY_USER || t == CL_ENTRY_SIGNATURE || t == CL_ENTRY_INTERNAL;
}

int cl_entry_encode(const cl_entry_view *e, cl_buf *out)
{
    CL_ENSURE(valid_type(e->type), CL_EINVAL);
    CL_ENSURE((e->flags & ~CL_ENTRY_F_ENCRYPTED) == 0, CL_EINVAL);
    CL_ENSURE(e->pub_len <= CL_ENTRY_MAX_FRAME && e->priv_len <= CL_ENTRY_MAX_FRAME, CL_EOVERFLOW);
    size_t total = CL_ENTRY_OVERHEAD + e->pub_len + e->priv_len;
    CL_ENSURE(total <= CL_ENTRY_MAX_FRAME, CL_EOVERFLOW);
    CL_TRY(cl_buf_reserve(out, total));
    size_t start = out->len;
    uint8_t h[CL_ENTRY_HEADER_LEN];
    memset(h, 0, sizeof h);
    cl_store_u32(h, (uint32_t)(total - 4));
    h[4] = CL_ENTRY_VERSION;
    h[5] = e->type;
    h[6] = (uint8_t)e->flags;
    h[7] = (uint8_t)(e->flags >> 8);
    cl_store_u64(h + 8, e->view);
    cl_store_u64(h + 16, e->seqno);
    memcpy(h + 24, e->claims_digest, 32);
    memcpy(h + 56, e->ce_digest, 32);
    cl_store_u32(h + 88, (uint32_t)e->pub_len);
    cl_store_u32(h + 92, (uint32_t)e->priv_len);
    memcpy(h + 96, e->iv, 12);
    memcpy(h + 108, e->tag, 16);
    /* reserve() above guarantees these appends cannot fail */
    CL_TRY(cl_buf_append(out, h, sizeof h));
    CL_TRY(cl_buf_append(out, e->pub, e->pub_len));
    CL_TRY(cl_buf_append(out, e->priv, e->priv_len));
    uint32_t crc = cl_crc32c(0, out->data + start + 4, out->len - start - 4);
    return cl_buf_u32(out, crc);
}

int cl_entry_decode(cl_cursor *c, cl_entry_view *out)
{
    size_t left = cl_cursor_left(c);
    CL_ENSURE(left >= 4, CL_ETRUNC);
    const uint8_t *p = cl_cursor_ptr(c);
    uint32_t flen = cl_load_u32(p);
    CL_ENSURE(flen >= CL_ENTRY_OVERHEAD - 4 && flen <= CL_ENTRY_MAX_FRAME, CL_ECORRUPT);
    size_t total = (size_t)flen + 4;
    CL_ENSURE(total <= left, CL_ETRUNC);
    uint32_t crc = cl_load_u32(p + total - 4);
    CL_ENSURE(cl_crc32c(0, p + 4, total - 8) == crc, CL_ECORRUPT);
    /* The frame is complete and intact as written; now check that it makes sense. */
    CL_ENSURE(p[4] == CL_ENTRY_VERSION, p[4] > CL_ENTRY_VERSION ? CL_EUNSUPPORTED : CL_EFORMAT);
    CL_ENSURE(valid_type(p[5]), CL_EFORMAT);
    uint16_t flags = (uint16_t)(p[6] | p[7] << 8);
    CL_ENSURE((flags & ~CL_ENTRY_F_ENCRYPTED) == 0, CL_EFORMAT);
    uint64_t pub_len = cl_load_u32(p + 88), priv_len = cl_load_u32(p + 92);
    CL_ENSURE(pub_len + priv_len + CL_ENTRY_OVERHEAD == total, CL_EFORMAT);
    if (!(flags & CL_ENTRY_F_ENCRYPTED)) {
        static const uint8_t zero[28];
        CL_ENSURE(memcmp(p + 96, zero, 28) == 0, CL_EFORMAT);
    }
    out->type = p[5];
    out->flags = flags;
    out->view = cl_load_u64(p + 8);
    out->seqno = cl_load_u64(p + 16);
    memcpy(out->claims_digest, p + 24, 32);
    memcpy(out->ce_digest, p + 56, 32);
    memcpy(out->iv, p + 96, 12);
    memcpy(out->tag, p + 108, 16);
    out->pub = p + CL_ENTRY_HEADER_LEN;
    out->pub_len = (size_t)pub_len;
    out->priv = out->pub + pub_len;
    out->priv_len = (size_t)priv_len;
    out->frame = p;
    out->frame_len = total;
    c->pos += total;
    return CL_OK;
}

int cl_entry_aad(const cl_entry_view *e, cl_buf *out)
{
    uint8_t h[92];
    memset(h, 0, sizeof h);
    size_t total = CL_ENTRY_OVERHEAD + e->pub_len + e->priv_len;
    /* bytes [4,96) of the frame: version..private length */
    h[0] = CL_ENTRY_VERSION;
    h[1] = e->type;
    h[2] = (uint8_t)e->flags;
    h[3] = (uint8_t)(e->flags >> 8);
    cl_store_u64(h + 4, e->view);
    cl_store_u64(h + 12, e->seqno);
    memcpy(h + 20, e->claims_digest, 32);
    memcpy(h + 52, e->ce_digest, 32);
    cl_store_u32(h + 84, (uint32_t)e->pub_len);
    cl_store_u32(h + 88, (uint32_t)e->priv_len);
    (void)total;
    CL_TRY(cl_buf_reserve(out, sizeof h + e->pub_len));
    CL_TRY(cl_buf_append(out, h, sizeof h));
    return cl_buf_append(out, e->pub, e->pub_len);
}

void cl_entry_iv(uint64_t view, uint64_t seqno, uint8_t iv[12])
{
    cl_store_u64(iv, seqno);
    cl_store_u32(iv + 8, (uint32_t)view);
}

void cl_entry_write_set_digest(const cl_entry_view *e, uint8_t out[32])
{
    cl_sha256(e->frame, e->frame_len, out);
}

void cl_entry_leaf(const uint8_t wsd[32], const uint8_t ce_digest[32],
                   const uint8_t claims_digest[32], uint8_t out[32])
{
    cl_iov v[3] = {{wsd, 32}, {ce_digest, 32}, {claims_digest, 32}};
    cl_sha256_v(v, 3, out);
}

/* ---- payloads ---- */

int cl_user_pub_encode(const cl_user_pub *p, cl_buf *out)
{
    return cl_buf_lp16(out, p->collection, p->collection_len);
}

int cl_user_pub_decode(const uint8_t *data, size_t len, cl_user_pub *out)
{
    cl_cursor c;
    cl_cursor_init(&c, data, len);
    CL_ENSURE(cl_cursor_lp16(&c, &out->collection, &out->collection_len) == CL_OK, CL_EFORMAT);
    CL_ENSURE(cl_cursor_left(&c) == 0, CL_EFORMAT);
    return CL_OK;
}

int cl_user_priv_encode(const cl_user_priv *p, cl_buf *out)
{
    CL_TRY(cl_buf_reserve(out, 4 + p->contents_len + 32));
    CL_TRY(cl_buf_lp32(out, p->contents, p->contents_len));
    return cl_buf_append(out, p->claims_key, 32);
}

int cl_user_priv_decode(const uint8_t *data, size_t len, cl_user_priv *out)
{
    cl_cursor c;
    cl_cursor_init(&c, data, len);
    CL_ENSURE(cl_cursor_lp32(&c, &out->contents, &out->contents_len) == CL_OK, CL_EFORMAT);
    CL_ENSURE(cl_cursor_view(&c, &out->claims_key, 32) == CL_OK, CL_EFORMAT);
    CL_ENSURE(cl_cursor_left(&c) == 0, CL_EFORMAT);
    return CL_OK;
}

int cl_sig_pub_encode(const cl_sig_pub *p, cl_buf *out)
{
    CL_TRY(cl_buf_u64(out, p->tree_size));
    CL_TRY(cl_buf_u64(out, p->raft_index));
    CL_TRY(cl_buf_append(out, p->root, 32));
    CL_TRY(cl_buf_append(out, p->node_id, 32));
    return cl_buf_lp16(out, p->sig, p->sig_len);
}

int cl_sig_pub_decode(const uint8_t *data, size_t len, cl_sig_pub *out)
{
    cl_cursor c;
    cl_cursor_init(&c, data, len);
    CL_ENSURE(cl_cursor_u64(&c, &out->tree_size) == CL_OK, CL_EFORMAT);
    CL_ENSURE(cl_cursor_u64(&c, &out->raft_index) == CL_OK, CL_EFORMAT);
    CL_ENSURE(cl_cursor_read(&c, out->root, 32) == CL_OK, CL_EFORMAT);
    CL_ENSURE(cl_cursor_read(&c, out->node_id, 32) == CL_OK, CL_EFORMAT);
    CL_ENSURE(cl_cursor_lp16(&c, &out->sig, &out->sig_len) == CL_OK, CL_EFORMAT);
    CL_ENSURE(out->sig_len > 0 && out->sig_len <= 150, CL_EFORMAT);
    CL_ENSURE(cl_cursor_left(&c) == 0, CL_EFORMAT);
    return CL_OK;
}

int cl_internal_pub_encode(const cl_internal_pub *p, cl_buf *out)
{
    CL_TRY(cl_buf_u8(out, p->table));
    CL_TRY(cl_buf_u8(out, p->op));
    CL_TRY(cl_buf_lp16(out, p->key, p->key_len));
    return cl_buf_lp32(out, p->value, p->value_len);
}

int cl_internal_pub_decode(const uint8_t *data, size_t len, cl_internal_pub *out)
{
    cl_cursor c;
    cl_cursor_init(&c, data, len);
    CL_ENSURE(cl_cursor_u8(&c, &out->table) == CL_OK, CL_EFORMAT);
    CL_ENSURE(cl_cursor_u8(&c, &out->op) == CL_OK, CL_EFORMAT);
    CL_ENSURE(out->table >= CL_TABLE_USERS && out->table <= CL_TABLE_MAX, CL_EFORMAT);
    CL_ENSURE(out->op == CL_OP_PUT || out->op == CL_OP_REMOVE, CL_EFORMAT);
    CL_ENSURE(cl_cursor_lp16(&c, &out->key, &out->key_len) == CL_OK, CL_EFORMAT);
    CL_ENSURE(cl_cursor_lp32(&c, &out->value, &out->value_len) == CL_OK, CL_EFORMAT);
    CL_ENSURE(cl_cursor_left(&c) == 0, CL_EFORMAT);
    return CL_OK;
}
