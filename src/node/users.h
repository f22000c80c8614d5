/*
 * users.h — the in-memory user store of a node (spec/ledger-api.md §2.3, §11): user id
 * normalisation, built-in roles and the actions they grant, and the JSON value stored in the
 * ledger's users table ({"assignedRoles":[...]}).
 *
 * The store is a sorted array keyed by the normalised id; it is changed only by cl_node_apply (so
 * every node agrees) and rebuilt from the ledger at node creation.
 *
 * Id rules (§2.3, cledger decisions): 1..256 bytes of UTF-8 without control characters. An id
 * matching the certificate fingerprint pattern (32 hex bytes separated by ':') in any letter case
 * is stored and looked up in upper case. A GUID-like id (8-4-4-4-12 hex) is compared case-
 * insensitively and echoed in the form it was first stored. Any other id is compared exactly.
 *
 * Ownership: the store owns its strings; cl_users_find returns a borrowed pointer valid until the
 * next change of the store.
 */
#ifndef CLEDGER_NODE_USERS_H
#define CLEDGER_NODE_USERS_H

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

typedef struct {
    char *key; /* normalised (comparison) form */
    char *id;  /* stored / displayed form */
    unsigned roles;
} cl_user;

typedef struct {
    cl_user *v;
    size_t n, cap;
} cl_users;

void cl_users_init(cl_users *u);
void cl_users_free(cl_users *u);

/* Validates a user id and computes its normalised key and the form to store for a new user
 * (both heap strings). CL_EINVAL for an invalid id. */
CL_MUST_CHECK int cl_user_id_normalise(const char *id, size_t len, char **key, char **stored);

const cl_user *cl_users_find(const cl_users *u, const char *id, size_t len);
/* Creates the user or replaces its roles; an existing user keeps its stored form. */
CL_MUST_CHECK int cl_users_put(cl_users *u, const char *id, size_t len, unsigned roles);
/* Removes the user if present (CL_OK either way). */
CL_MUST_CHECK int cl_users_remove(cl_users *u, const char *id, size_t len);
size_t cl_users_count_role(const cl_users *u, unsigned role);

/* Role names: "Reader", "Contributor", "Administrator" (case-sensitive, §11.5). */
CL_MUST_CHECK int cl_role_parse(const char *name, unsigned *bit);
/* Highest built-in role of a set (§11.3), "Reader" for an empty set. */
const char *cl_role_highest(unsigned roles);
/* Union of the actions the roles grant (§11.2). */
unsigned cl_roles_actions(unsigned roles);
/* New JSON array of the role names, in the order Administrator, Contributor, Reader. */
json_t *cl_roles_json_array(unsigned roles);

/* The users-table value {"assignedRoles":[...]} (canonical order; heap string). */
CL_MUST_CHECK int cl_roles_value_encode(unsigned roles, char **out, size_t *len);
/* Strict decode of a users-table value: an object with a non-empty assignedRoles array of
 * known role names. CL_EJSON otherwise. */
CL_MUST_CHECK int cl_roles_value_decode(const char *value, size_t len, unsigned *roles);

#endif
