/*
 * command.c — encoder and decoder of the node's log commands (format in command.h).
 */
#include "node/command.h"

#include <string.h>

#include "ledger/entry.h"

static int header(cl_buf *b, uint8_t type)
{
    CL_TRY(cl_buf_u8(b, CL_CMD_VERSION));
    return cl_buf_u8(b, type);
}

int cl_cmd_encode_user_write(cl_buf *b, const char *collection, size_t clen,
                             const uint8_t *contents, size_t len, const uint8_t claims_key[32])
{
    CL_ENSURE(clen >= 1 && clen <= CL_CMD_MAX_COLLECTION, CL_EOVERFLOW);
    CL_ENSURE(len <= CL_CMD_MAX_CONTENTS, CL_EOVERFLOW);
    size_t at = b->len;
    /* One allocation: header, u16 length, collection, u32 length, contents, key. */
    int rc = cl_buf_reserve(b, 2 + 2 + clen + 4 + len + 32);
    if (rc == CL_OK)
        rc = header(b, CL_CMD_USER_WRITE);
    if (rc == CL_OK)
        rc = cl_buf_lp16(b, collection, clen);
    if (rc == CL_OK)
        rc = cl_buf_lp32(b, contents, len);
    if (rc == CL_OK)
        rc = cl_buf_append(b, claims_key, 32);
    if (rc < 0)
        b->len = at;
    return rc;
}

int cl_cmd_encode_internal(cl_buf *b, uint8_t table, uint8_t op, uint8_t flags, const char *key,
                           size_t klen, const char *value, size_t vlen)
{
    CL_ENSURE(klen >= 1 && klen <= CL_CMD_MAX_KEY && vlen <= CL_CMD_MAX_VALUE, CL_EOVERFLOW);
    size_t at = b->len;
    int rc = header(b, CL_CMD_INTERNAL_WRITE);
    if (rc == CL_OK)
        rc = cl_buf_u8(b, table);
    if (rc == CL_OK)
        rc = cl_buf_u8(b, op);
    if (rc == CL_OK)
        rc = cl_buf_u8(b, flags);
    if (rc == CL_OK)
        rc = cl_buf_lp16(b, key, klen);
    if (rc == CL_OK)
        rc = cl_buf_lp32(b, value, vlen);
    if (rc < 0)
        b->len = at;
    return rc;
}

int cl_cmd_encode_sign(cl_buf *b)
{
    size_t at = b->len;
    int rc = header(b, CL_CMD_SIGN);
    if (rc < 0)
        b->len = at;
    return rc;
}

int cl_cmd_encode_roles(cl_buf *b, uint8_t mode, size_t count, const char *const *names,
                        const size_t *nlens, const char *const *values, const size_t *vlens)
{
    CL_ENSURE(mode >= CL_CMD_ROLES_CREATE && mode <= CL_CMD_ROLES_DELETE, CL_EINVAL);
    CL_ENSURE(count >= 1 && count <= CL_CMD_MAX_ROLES, CL_EOVERFLOW);
    for (size_t i = 0; i < count; i++)
        CL_ENSURE(nlens[i] >= 1 && nlens[i] <= CL_CMD_MAX_ROLE_NAME && vlens[i] <= CL_CMD_MAX_VALUE,
                  CL_EOVERFLOW);
    size_t at = b->len;
    int rc = header(b, CL_CMD_ROLES);
    if (rc == CL_OK)
        rc = cl_buf_u8(b, mode);
    if (rc == CL_OK)
        rc = cl_buf_u16(b, (uint16_t)count);
    for (size_t i = 0; rc == CL_OK && i < count; i++) {
        rc = cl_buf_lp16(b, names[i], nlens[i]);
        if (rc == CL_OK)
            rc = cl_buf_lp32(b, values[i], vlens[i]);
    }
    if (rc < 0)
        b->len = at;
    return rc;
}

int cl_cmd_roles_next(cl_cursor *it, const char **name, size_t *nlen, const char **value,
                      size_t *vlen)
{
    const uint8_t *p;
    size_t n;
    CL_ENSURE(cl_cursor_lp16(it, &p, &n) == CL_OK && n >= 1 && n <= CL_CMD_MAX_ROLE_NAME,
              CL_EFORMAT);
    *name = (const char *)p;
    *nlen = n;
    CL_ENSURE(cl_cursor_lp32(it, &p, &n) == CL_OK && n <= CL_CMD_MAX_VALUE, CL_EFORMAT);
    *value = (const char *)p;
    *vlen = n;
    return CL_OK;
}

int cl_cmd_decode(const void *data, size_t len, cl_cmd *out)
{
    memset(out, 0, sizeof *out);
    cl_cursor c;
    cl_cursor_init(&c, data, len);
    uint8_t version, type;
    CL_ENSURE(cl_cursor_u8(&c, &version) == CL_OK && version == CL_CMD_VERSION, CL_EFORMAT);
    CL_ENSURE(cl_cursor_u8(&c, &type) == CL_OK, CL_EFORMAT);
    const uint8_t *p;
    size_t n;
    switch (type) {
    case CL_CMD_USER_WRITE:
        CL_ENSURE(cl_cursor_lp16(&c, &p, &n) == CL_OK, CL_EFORMAT);
        CL_ENSURE(n >= 1 && n <= CL_CMD_MAX_COLLECTION, CL_EFORMAT);
        out->collection = (const char *)p;
        out->collection_len = n;
        CL_ENSURE(cl_cursor_lp32(&c, &p, &n) == CL_OK && n <= CL_CMD_MAX_CONTENTS, CL_EFORMAT);
        out->contents = p;
        out->contents_len = n;
        CL_ENSURE(cl_cursor_view(&c, &out->claims_key, 32) == CL_OK, CL_EFORMAT);
        break;
    case CL_CMD_INTERNAL_WRITE:
        CL_ENSURE(cl_cursor_u8(&c, &out->table) == CL_OK, CL_EFORMAT);
        CL_ENSURE(cl_cursor_u8(&c, &out->op) == CL_OK, CL_EFORMAT);
        CL_ENSURE(cl_cursor_u8(&c, &out->flags) == CL_OK, CL_EFORMAT);
        CL_ENSURE(out->table >= CL_TABLE_USERS && out->table <= CL_TABLE_MAX, CL_EFORMAT);
        CL_ENSURE(out->op == CL_OP_PUT || out->op == CL_OP_REMOVE, CL_EFORMAT);
        CL_ENSURE((out->flags & ~CL_CMD_F_IF_EMPTY) == 0, CL_EFORMAT);
        CL_ENSURE(cl_cursor_lp16(&c, &p, &n) == CL_OK, CL_EFORMAT);
        CL_ENSURE(n >= 1 && n <= CL_CMD_MAX_KEY, CL_EFORMAT);
        out->key = (const char *)p;
        out->key_len = n;
        CL_ENSURE(cl_cursor_lp32(&c, &p, &n) == CL_OK && n <= CL_CMD_MAX_VALUE, CL_EFORMAT);
        out->value = (const char *)p;
        out->value_len = n;
        break;
    case CL_CMD_SIGN:
        break;
    case CL_CMD_ROLES: {
        uint16_t count;
        CL_ENSURE(cl_cursor_u8(&c, &out->roles_mode) == CL_OK, CL_EFORMAT);
        CL_ENSURE(out->roles_mode >= CL_CMD_ROLES_CREATE && out->roles_mode <= CL_CMD_ROLES_DELETE,
                  CL_EFORMAT);
        CL_ENSURE(cl_cursor_u16(&c, &count) == CL_OK, CL_EFORMAT);
        CL_ENSURE(count >= 1 && count <= CL_CMD_MAX_ROLES, CL_EFORMAT);
        out->roles = cl_cursor_ptr(&c);
        size_t start = c.pos;
        for (uint16_t i = 0; i < count; i++) {
            const char *nm, *v;
            size_t nl, vl;
            CL_TRY(cl_cmd_roles_next(&c, &nm, &nl, &v, &vl));
        }
        out->roles_count = count;
        out->roles_len = c.pos - start;
        break;
    }
    default:
        return CL_EFORMAT;
    }
    CL_ENSURE(cl_cursor_left(&c) == 0, CL_EFORMAT);
    out->type = type;
    return CL_OK;
}
