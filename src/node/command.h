/*
 * command.h — the commands the node submits to the replicated log, encoder and decoder in one
 * place (docs/api.md "Commands").
 *
 * Wire format (little-endian, every length bounded before any byte is trusted):
 *
 *   u8 version = 1 | u8 type | body
 *   USER_WRITE (1):     lp16 collection (1..CL_CMD_MAX_COLLECTION) | lp32 contents
 *                       (<= CL_CMD_MAX_CONTENTS) | claims_key[32]
 *   INTERNAL_WRITE (2): u8 table | u8 op | u8 flags | lp16 key (1..CL_CMD_MAX_KEY)
 *                       | lp32 value (<= CL_CMD_MAX_VALUE)
 *   SIGN (3):           (empty)
 *   ROLES (4):          u8 mode (1 create, 2 replace, 3 delete) | u16 count
 *                       (1..CL_CMD_MAX_ROLES) | count x (lp16 name (1..CL_CMD_MAX_ROLE_NAME)
 *                       | lp32 value (<= CL_CMD_MAX_VALUE; empty for delete))
 *
 * ROLES carries every role of one /app/roles request, so the state machine applies all of them
 * or none (one roles-table entry per role in the ledger).
 *
 * Trailing bytes, unknown versions, types or flags are errors (CL_EFORMAT). The claims key of a
 * user write is chosen by the node that proposes it (cl_random), so every replica and every
 * re-application writes identical bytes.
 *
 * Ownership: cl_cmd_decode fills a cl_cmd whose pointers borrow the input bytes; cl_cmd_encode_*
 * append to a caller-owned cl_buf.
 */
#ifndef CLEDGER_NODE_COMMAND_H
#define CLEDGER_NODE_COMMAND_H

#include <stddef.h>
#include <stdint.h>

#include "base/cursor.h"
#include "base/err.h"

#define CL_CMD_VERSION 1
#define CL_CMD_MAX_COLLECTION 256
#define CL_CMD_MAX_CONTENTS (64u * 1024)
#define CL_CMD_MAX_KEY 1024
#define CL_CMD_MAX_VALUE (64u * 1024)
#define CL_CMD_MAX_ROLES 100     /* = CL_ROLES_MAX_PER_WRITE */
#define CL_CMD_MAX_ROLE_NAME 256 /* bytes: 64 characters of up to 4 bytes */

enum { CL_CMD_USER_WRITE = 1, CL_CMD_INTERNAL_WRITE = 2, CL_CMD_SIGN = 3, CL_CMD_ROLES = 4 };
/* ROLES modes. */
enum { CL_CMD_ROLES_CREATE = 1, CL_CMD_ROLES_REPLACE = 2, CL_CMD_ROLES_DELETE = 3 };
/* INTERNAL_WRITE flags. */
enum {
    CL_CMD_F_IF_EMPTY = 1 /* apply only when the table (users) is empty: bootstrap admin */
};

typedef struct {
    uint8_t type;
    /* USER_WRITE */
    const char *collection;
    size_t collection_len;
    const uint8_t *contents;
    size_t contents_len;
    const uint8_t *claims_key; /* 32 bytes */
    /* INTERNAL_WRITE */
    uint8_t table, op, flags;
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
    /* ROLES: the items, read with cl_cmd_roles_next over a cursor on roles[0..roles_len) */
    uint8_t roles_mode;
    size_t roles_count;
    const uint8_t *roles;
    size_t roles_len;
} cl_cmd;

CL_MUST_CHECK int cl_cmd_encode_user_write(cl_buf *b, const char *collection, size_t clen,
                                           const uint8_t *contents, size_t len,
                                           const uint8_t claims_key[32]);
CL_MUST_CHECK int cl_cmd_encode_internal(cl_buf *b, uint8_t table, uint8_t op, uint8_t flags,
                                         const char *key, size_t klen, const char *value,
                                         size_t vlen);
CL_MUST_CHECK int cl_cmd_encode_sign(cl_buf *b);
/* names[i] / values[i] with their lengths, for i < count. */
CL_MUST_CHECK int cl_cmd_encode_roles(cl_buf *b, uint8_t mode, size_t count,
                                      const char *const *names, const size_t *nlens,
                                      const char *const *values, const size_t *vlens);

CL_MUST_CHECK int cl_cmd_decode(const void *data, size_t len, cl_cmd *out);
/* Next item of a decoded ROLES command (the decoder checked them all). */
CL_MUST_CHECK int cl_cmd_roles_next(cl_cursor *it, const char **name, size_t *nlen,
                                    const char **value, size_t *vlen);

#endif
