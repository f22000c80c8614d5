/*
 * entry.h — the ledger entry frame: encoder and decoder in one place (docs/ledger-format.md §3).
 *
 * A frame is what one seqno occupies in a chunk file:
 *
 *   off  size  field
 *   0    4     frame_len: bytes after this field, CRC included (u32 LE)
 *   4    1     format version = 1
 *   5    1     type: 1 user entry, 2 signature, 3 internal-table write
 *   6    2     flags: bit0 = private part encrypted (AES-256-GCM)
 *   8    8     view
 *   16   8     seqno
 *   24   32    claims digest (32 zero bytes when the entry has no application claims)
 *   56   32    commit-evidence digest = SHA-256(utf8 "ce:<view>.<seqno>:<hex>")
 *   88   4     public part length P
 *   92   4     private part length N
 *   96   12    AES-GCM IV  (zero when not encrypted)
 *   108  16    AES-GCM tag (zero when not encrypted)
 *   124  P     public part
 *   124+P N    private part (ciphertext, or plaintext when flag bit0 is clear)
 *   end-4 4    CRC-32C of bytes [4, end-4)
 *
 * writeSetDigest = SHA-256 of the whole frame, so every byte of a frame is covered by the Merkle
 * leaf and hence by the next signature. The CRC lets recovery tell a torn tail from a complete
 * frame without any key. AEAD additional data = bytes [4, 96) followed by the public part.
 *
 * Ownership: cl_entry_view borrows the frame bytes it was decoded from (pointers into them);
 * cl_entry_encode appends to a caller-owned cl_buf.
 */
#ifndef CLEDGER_LEDGER_ENTRY_H
#define CLEDGER_LEDGER_ENTRY_H

#include <stddef.h>
#include <stdint.h>

#include "base/cursor.h"
#include "base/err.h"

#define CL_ENTRY_VERSION 1
#define CL_ENTRY_HEADER_LEN 124
#define CL_ENTRY_OVERHEAD (CL_ENTRY_HEADER_LEN + 4)
#define CL_ENTRY_MAX_FRAME (64u << 20) /* 64 MiB: far above any API limit */

enum { CL_ENTRY_USER = 1, CL_ENTRY_SIGNATURE = 2, CL_ENTRY_INTERNAL = 3 };
enum { CL_ENTRY_F_ENCRYPTED = 1 };

/* Internal tables (type 3). */
enum {
    CL_TABLE_USERS = 1,        /* key: user id; value: JSON {"assignedRoles":[...]} */
    CL_TABLE_NODES = 2,        /* key: node id hex; value: JSON {"cert": PEM, "status": ...} */
    CL_TABLE_SERVICE = 3,      /* key: identity version; value: JSON {"cert","endorsement"?} */
    CL_TABLE_SECRETS = 4,      /* key: secret version; value: JSON {"appliesFrom"}; private part:
                                  the previous ledger secret, encrypted under this one */
    CL_TABLE_MEMBERS = 5,      /* key: member id; value: JSON */
    CL_TABLE_CONSTITUTION = 6, /* key: "constitution"; value: text */
    CL_TABLE_ROLES = 7         /* key: custom role name; value: JSON {"roleActions":[...]} */
};
#define CL_TABLE_MAX CL_TABLE_ROLES /* highest table id */
enum { CL_OP_PUT = 1, CL_OP_REMOVE = 2 };

typedef struct {
    uint8_t type;
    uint16_t flags;
    uint64_t view;
    uint64_t seqno;
    uint8_t claims_digest[32];
    uint8_t ce_digest[32];
    uint8_t iv[12];
    uint8_t tag[16];
    const uint8_t *pub; /* borrowed */
    size_t pub_len;
    const uint8_t *priv; /* borrowed; ciphertext when encrypted */
    size_t priv_len;
    const uint8_t *frame; /* the whole frame, borrowed */
    size_t frame_len;     /* total bytes including the length field */
} cl_entry_view;

/* Encode a frame into out. priv is written as given (the caller encrypts first and passes the
 * iv/tag in e). Fills nothing else in e. The CRC is computed here. */
CL_MUST_CHECK int cl_entry_encode(const cl_entry_view *e, cl_buf *out);

/* Decode one frame from the start of c; on success the cursor advances past it. Errors:
 * CL_ETRUNC (the frame is not all there: a torn tail), CL_ECORRUPT (CRC mismatch or impossible
 * length), CL_EFORMAT (bad version/type/flags/lengths), CL_EUNSUPPORTED (newer version). */
CL_MUST_CHECK int cl_entry_decode(cl_cursor *c, cl_entry_view *out);

/* AEAD additional data of a frame being built or decoded: header bytes [4,96) + public part. */
CL_MUST_CHECK int cl_entry_aad(const cl_entry_view *e, cl_buf *out);
void cl_entry_iv(uint64_t view, uint64_t seqno, uint8_t iv[12]);

/* SHA-256 of the whole frame (writeSetDigest) and the Merkle leaf of spec/receipts.md §6.1. */
void cl_entry_write_set_digest(const cl_entry_view *e, uint8_t out[32]);
void cl_entry_leaf(const uint8_t wsd[32], const uint8_t ce_digest[32],
                   const uint8_t claims_digest[32], uint8_t out[32]);

/* CRC-32C of data, continuing crc (0 to start): cl_crc32c(cl_crc32c(0, a), b) = CRC of a||b.
 * The CPU's instruction where it has one, else tables; the _sw form always uses the tables and
 * _hw_available says which one cl_crc32c uses (both exposed for tests). */
uint32_t cl_crc32c(uint32_t crc, const void *data, size_t n);
uint32_t cl_crc32c_sw(uint32_t crc, const void *data, size_t n);
int cl_crc32c_hw_available(void);

/* ---- public-part payloads ---- */

/* User entry: public = lp16 collection id; private plaintext = lp32 contents || 32-byte claims
 * secret key. */
typedef struct {
    const uint8_t *collection;
    size_t collection_len;
} cl_user_pub;
CL_MUST_CHECK int cl_user_pub_encode(const cl_user_pub *p, cl_buf *out);
CL_MUST_CHECK int cl_user_pub_decode(const uint8_t *data, size_t len, cl_user_pub *out);
typedef struct {
    const uint8_t *contents;
    size_t contents_len;
    const uint8_t *claims_key; /* 32 bytes */
} cl_user_priv;
CL_MUST_CHECK int cl_user_priv_encode(const cl_user_priv *p, cl_buf *out);
CL_MUST_CHECK int cl_user_priv_decode(const uint8_t *data, size_t len, cl_user_priv *out);

/* Signature entry: public = u64 tree_size || u64 raft_index || root[32] || node_id[32] ||
 * lp16 DER signature. raft_index is the consensus log index of the command that produced this
 * signature (0 outside consensus): after a restart, the ledger is cut back to its last signature
 * and consensus entries up to that index are known to be applied. */
typedef struct {
    uint64_t tree_size;
    uint64_t raft_index;
    uint8_t root[32];
    uint8_t node_id[32];
    const uint8_t *sig;
    size_t sig_len;
} cl_sig_pub;
CL_MUST_CHECK int cl_sig_pub_encode(const cl_sig_pub *p, cl_buf *out);
CL_MUST_CHECK int cl_sig_pub_decode(const uint8_t *data, size_t len, cl_sig_pub *out);

/* Internal write: public = u8 table || u8 op || lp16 key || lp32 value. */
typedef struct {
    uint8_t table;
    uint8_t op;
    const uint8_t *key;
    size_t key_len;
    const uint8_t *value;
    size_t value_len;
} cl_internal_pub;
CL_MUST_CHECK int cl_internal_pub_encode(const cl_internal_pub *p, cl_buf *out);
CL_MUST_CHECK int cl_internal_pub_decode(const uint8_t *data, size_t len, cl_internal_pub *out);

#endif
