/*
 * users.h — the in-memory user store of a node (spec/ledger-api.md §2.3, §11): user id
 * normalisation, built-in roles and the actions they grant, and the JSON value stored in the
 * ledger's users table ({"assignedRoles":[...]}).
 *
 * The store is a red-black tree (libbsd's <bsd/sys/tree.h>, OpenBSD's macros) ordered by the
 * normalised id, with a count of Administrators kept on every change: a lookup, a change and the
 * start of a listing page are O(log users), counting Administrators O(1). It is changed only by
 * cl_node_apply (so every node agrees) and rebuilt from the ledger at node creation.
 *
 * Id rules (§2.3, cledger decisions): 1..256 bytes of UTF-8 without control characters. An id
 * matching the certificate fingerprint pattern (32 hex bytes separated by ':') in any letter case
 * is stored and looked up in upper case. A GUID-like id (8-4-4-4-12 hex) is compared case-
 * insensitively and echoed in the form it was first stored. Any other id is compared exactly.
 *
 * Ownership: the store owns its strings; cl_users_find returns a borrowed pointer valid until the
 * next change of the store. Custom role definitions live in node/roles.h.
 */
#ifndef CLEDGER_NODE_USERS_H
#define CLEDGER_NODE_USERS_H

#include <bsd/sys/tree.h>
#include <jansson.h>
#include <stddef.h>

#include "base/err.h"

#define CL_USER_ID_MAX 256

/* Built-in roles (§11.2), as bits. */
enum { CL_ROLE_READER = 1, CL_ROLE_CONTRIBUTOR = 2, CL_ROLE_ADMINISTRATOR = 4 };
#define CL_ROLE_ALL (CL_ROLE_READER | CL_ROLE_CONTRIBUTOR | CL_ROLE_ADMINISTRATOR)

/* Actions a route requires (§11.5 catalogue), as bits. */
enum {
    CL_ACT_READ = 1 << 0,
    CL_ACT_WRITE = 1 << 1,
    CL_ACT_USERS_READ = 1 << 2,
    CL_ACT_USERS_WRITE = 1 << 3,
    CL_ACT_ROLES_READ = 1 << 4,
    CL_ACT_ROLES_WRITE = 1 << 5,
    CL_ACT_PROG_READ = 1 << 6,
    CL_ACT_PROG_WRITE = 1 << 7,
    CL_ACT_EXECUTE = 1 << 8,
};
#define CL_ACT_ALL 0x1ffu /* every action bit */

/* Role names (§11.5, cledger decisions): 1..CL_ROLE_NAME_MAX Unicode characters of valid UTF-8
 * without control characters (C0, DEL, C1), compared exactly (case-sensitive). */
#define CL_ROLE_NAME_MAX 64
/* Distinct roles one user may hold (built-in and custom together). */
#define CL_USER_MAX_ROLES 64

/* The roles of one user: built-in bits and custom role names (heap, sorted by strcmp, distinct,
 * never a built-in name). A custom name need not exist as a role: deleting a role leaves the
 * name with its holders, where it grants nothing (docs/api.md). */
typedef struct {
    unsigned builtin;
    char **custom;
    size_t ncustom;
} cl_roleset;

typedef struct cl_user {
    RB_ENTRY(cl_user) link;
    char *key; /* normalised (comparison) form */
    char *id;  /* stored / displayed form */
    cl_roleset rs;
} cl_user;

RB_HEAD(cl_user_tree, cl_user);

typedef struct {
    struct cl_user_tree root;
    size_t n;      /* users */
    size_t admins; /* users holding the built-in Administrator role */
} cl_users;

void cl_users_init(cl_users *u);
void cl_users_free(cl_users *u);

/* Validates a user id and computes its normalised key and the form to store for a new user
 * (both heap strings). CL_EINVAL for an invalid id. */
CL_MUST_CHECK int cl_user_id_normalise(const char *id, size_t len, char **key, char **stored);

const cl_user *cl_users_find(const cl_users *u, const char *id, size_t len);
/* cl_users_find for a NUL-terminated certificate fingerprint (the admission path): the same
 * answer, without the copy and validation when fp is already in key form (95 characters,
 * upper-case hex and colons, as the TLS layer writes it). */
const cl_user *cl_users_find_fingerprint(const cl_users *u, const char *fp);
/* Creates the user or replaces its roles (deep copy of rs); an existing user keeps its stored
 * form. */
CL_MUST_CHECK int cl_users_put(cl_users *u, const char *id, size_t len, const cl_roleset *rs);
/* Removes the user if present (CL_OK either way). */
CL_MUST_CHECK int cl_users_remove(cl_users *u, const char *id, size_t len);
/* Users holding the built-in Administrator role (O(1)). */
size_t cl_users_admins(const cl_users *u);
/* In key order: the first user, the user after x (NULL at the end), and the first user whose key
 * is greater than the key of id (an id that is not valid starts from the first user: it can only
 * come from a link the client changed). */
const cl_user *cl_users_first(const cl_users *u);
const cl_user *cl_users_next(const cl_users *u, const cl_user *x);
const cl_user *cl_users_after(const cl_users *u, const char *id, size_t len);

/* 1 when name[0..len) is a valid role name (built-in or custom). */
int cl_role_name_valid(const char *name, size_t len);
/* Role names: "Reader", "Contributor", "Administrator" (case-sensitive, §11.5). */
CL_MUST_CHECK int cl_role_parse(const char *name, unsigned *bit);
/* Highest built-in role of a set (§11.3), "Reader" for an empty set. */
const char *cl_role_highest(unsigned roles);
/* Union of the actions the built-in roles grant (§11.2). */
unsigned cl_roles_actions(unsigned roles);

void cl_roleset_free(cl_roleset *s);
/* Adds a role by name: a built-in name sets its bit, any other valid name joins the custom
 * names (kept sorted and distinct). CL_EINVAL for an invalid name, CL_EOVERFLOW when the set
 * would exceed CL_USER_MAX_ROLES. */
CL_MUST_CHECK int cl_roleset_add(cl_roleset *s, const char *name, size_t len);
CL_MUST_CHECK int cl_roleset_copy(const cl_roleset *from, cl_roleset *to);
/* New JSON array of the role names: Administrator, Contributor, Reader, then custom names. */
json_t *cl_roles_json_array(const cl_roleset *s);

/* The users-table value {"assignedRoles":[...]} (canonical order above; heap string). */
CL_MUST_CHECK int cl_roles_value_encode(const cl_roleset *s, char **out, size_t *len);
/* Strict decode of a users-table value: an object with a non-empty assignedRoles array of valid
 * role names (at most CL_USER_MAX_ROLES distinct). Whether custom names exist is not checked.
 * CL_EJSON otherwise. On success *out is a new set (free with cl_roleset_free). */
CL_MUST_CHECK int cl_roles_value_decode(const char *value, size_t len, cl_roleset *out);

#endif
