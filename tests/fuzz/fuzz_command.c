/*
 * fuzz_command.c — the node's log commands (src/node/command.c) and the role values the state
 * machine reads back from the ledger (src/node/roles.c, src/node/users.c).
 *
 * Every input is tried in every role: as a log command, as a roles-table value, as a users-table
 * value and as an action string. Properties checked (abort on violation):
 *   - a command that decodes re-encodes to exactly the input bytes (one spelling per command),
 *     and the items of a ROLES command are exactly roles_count items filling roles[0..roles_len);
 *   - a roles-table value that decodes gives a non-empty valid action set, whose canonical value
 *     decodes to the same set and encodes to itself;
 *   - a users-table value that decodes gives at most CL_USER_MAX_ROLES valid roles (custom names
 *     sorted, distinct, never built-in), whose canonical value decodes to the same set;
 *   - an action string that parses names one catalogue bit, and its canonical spelling parses
 *     to the same bit.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/cursor.h"
#include "fuzz.h"
#include "node/command.h"
#include "node/roles.h"
#include "node/users.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int popcount(unsigned v)
{
    int n = 0;
    for (; v != 0; v &= v - 1)
        n++;
    return n;
}

/* Re-encodes a ROLES command item by item (the decoder checked them; this walk must agree). */
static int reencode_roles(const cl_cmd *c, cl_buf *b)
{
    const char *names[CL_CMD_MAX_ROLES], *values[CL_CMD_MAX_ROLES];
    size_t nlens[CL_CMD_MAX_ROLES], vlens[CL_CMD_MAX_ROLES];
    CHECK(c->roles_count >= 1 && c->roles_count <= CL_CMD_MAX_ROLES);
    cl_cursor it;
    cl_cursor_init(&it, c->roles, c->roles_len);
    for (size_t i = 0; i < c->roles_count; i++)
        CHECK(cl_cmd_roles_next(&it, &names[i], &nlens[i], &values[i], &vlens[i]) == CL_OK);
    CHECK(cl_cursor_left(&it) == 0);
    return cl_cmd_encode_roles(b, c->roles_mode, c->roles_count, names, nlens, values, vlens);
}

static void check_command(const uint8_t *data, size_t size)
{
    cl_cmd c;
    if (cl_cmd_decode(data, size, &c) != CL_OK)
        return;
    cl_buf b = CL_BUF_INIT;
    int rc = CL_EINVAL;
    switch (c.type) {
    case CL_CMD_USER_WRITE:
        CHECK(c.collection >= (const char *)data && c.claims_key + 32 <= data + size);
        rc = cl_cmd_encode_user_write(&b, c.collection, c.collection_len, c.contents,
                                      c.contents_len, c.claims_key);
        break;
    case CL_CMD_INTERNAL_WRITE:
        rc = cl_cmd_encode_internal(&b, c.table, c.op, c.flags, c.key, c.key_len, c.value,
                                    c.value_len);
        break;
    case CL_CMD_SIGN:
        rc = cl_cmd_encode_sign(&b);
        break;
    case CL_CMD_ROLES:
        CHECK(c.roles >= data && c.roles + c.roles_len <= data + size);
        rc = reencode_roles(&c, &b);
        break;
    default:
        CHECK(!"decoded an unknown command type");
    }
    if (rc == CL_ENOMEM) {
        cl_buf_free(&b);
        return;
    }
    CHECK(rc == CL_OK);
    CHECK(b.len == size && memcmp(b.data, data, size) == 0);
    cl_buf_free(&b);
}

static void check_role_value(const char *s, size_t n)
{
    unsigned actions = 0;
    if (cl_role_value_decode(s, n, &actions) != CL_OK)
        return;
    CHECK(actions != 0 && (actions & ~CL_ACTSET_VALID) == 0);
    char *canon = NULL;
    size_t clen = 0;
    if (cl_role_value_encode(actions, &canon, &clen) != CL_OK)
        return; /* out of memory */
    unsigned again = 0;
    CHECK(cl_role_value_decode(canon, clen, &again) == CL_OK && again == actions);
    char *canon2 = NULL;
    size_t clen2 = 0;
    if (cl_role_value_encode(again, &canon2, &clen2) == CL_OK) {
        CHECK(clen2 == clen && memcmp(canon2, canon, clen) == 0);
        cl_free(canon2);
    }
    cl_free(canon);
}

static void check_roleset(const cl_roleset *rs)
{
    CHECK((rs->builtin & ~(unsigned)(CL_ROLE_ALL)) == 0);
    CHECK((size_t)popcount(rs->builtin) + rs->ncustom >= 1);
    CHECK((size_t)popcount(rs->builtin) + rs->ncustom <= CL_USER_MAX_ROLES);
    for (size_t i = 0; i < rs->ncustom; i++) {
        const char *nm = rs->custom[i];
        CHECK(cl_role_name_valid(nm, strlen(nm)) && !cl_role_is_builtin(nm, strlen(nm)));
        CHECK(i == 0 || strcmp(rs->custom[i - 1], nm) < 0);
    }
}

static void check_users_value(const char *s, size_t n)
{
    cl_roleset rs;
    if (cl_roles_value_decode(s, n, &rs) != CL_OK)
        return;
    check_roleset(&rs);
    char *canon = NULL;
    size_t clen = 0;
    if (cl_roles_value_encode(&rs, &canon, &clen) == CL_OK) {
        cl_roleset back;
        int rc = cl_roles_value_decode(canon, clen, &back);
        CHECK(rc == CL_OK || rc == CL_ENOMEM);
        if (rc == CL_OK) {
            CHECK(back.builtin == rs.builtin && back.ncustom == rs.ncustom);
            for (size_t i = 0; i < rs.ncustom; i++)
                CHECK(strcmp(back.custom[i], rs.custom[i]) == 0);
            cl_roleset_free(&back);
        }
        cl_free(canon);
    }
    cl_roleset_free(&rs);
}

static void check_action(const char *s, size_t n)
{
    unsigned bit = 0;
    if (cl_action_parse(s, n, &bit) != CL_OK)
        return;
    CHECK(popcount(bit) == 1 && (bit & ~CL_ACTSET_VALID) == 0);
    json_t *a = cl_actset_json(bit);
    if (a == NULL)
        return;
    CHECK(json_array_size(a) == 1);
    json_t *name = json_array_get(a, 0);
    unsigned again = 0;
    CHECK(cl_action_parse(json_string_value(name), json_string_length(name), &again) == CL_OK &&
          again == bit);
    json_decref(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_command(data, size);
    check_role_value((const char *)data, size);
    check_users_value((const char *)data, size);
    check_action((const char *)data, size);
    return 0;
}
