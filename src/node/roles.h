/*
 * roles.h — custom roles (spec/ledger-api.md §11.5): the action catalogue, the in-memory map of
 * custom role definitions, and the JSON value stored in the ledger's roles table
 * ({"roleActions":[...]}).
 *
 * An action set is a bit mask over the catalogue: bits 0..8 are the CL_ACT_* bits of users.h
 * (one catalogue action each) and CL_ACTSET_STAR stands for the wildcard action
 * "Microsoft.ConfidentialLedger/ledger/" followed by '*' (every action). Action strings are matched
 * case-insensitively and stored and shown in their canonical spelling, in catalogue order, without
 * duplicates (cledger decisions).
 *
 * The map is a sorted array keyed by the role name (exact comparison); it is changed only by
 * cl_node_apply (so every node agrees) and rebuilt from the ledger at node creation. Built-in role
 * names (Administrator, Contributor, Reader) are never in it.
 *
 * Ownership: the map owns its strings; cl_rolemap_find returns a borrowed pointer valid until the
 * next change of the map.
 */
#ifndef CLEDGER_NODE_ROLES_H
#define CLEDGER_NODE_ROLES_H

#include <jansson.h>
#include <stddef.h>

#include "base/err.h"
#include "node/users.h"

#define CL_ACTSET_STAR (1u << 9)
#define CL_ACTSET_VALID (CL_ACT_ALL | CL_ACTSET_STAR)
#define CL_ROLE_MAX_ACTIONS 64     /* entries of one roleActions array (duplicates included) */
#define CL_ROLES_MAX 1000          /* custom roles per ledger */
#define CL_ROLES_MAX_PER_WRITE 100 /* roles in one PUT/PATCH body */

/* Parses one catalogue action string; CL_EINVAL when it is not in the catalogue. */
CL_MUST_CHECK int cl_action_parse(const char *s, size_t len, unsigned *bit);
/* The route actions an action set grants. */
unsigned cl_actset_grants(unsigned set);
/* New JSON array of the canonical action strings of a set, in catalogue order. */
json_t *cl_actset_json(unsigned set);

/* 1 when name[0..len) is Administrator, Contributor or Reader. */
int cl_role_is_builtin(const char *name, size_t len);

typedef struct {
    char *name;
    unsigned actions; /* action set (non-empty) */
} cl_custom_role;

typedef struct {
    cl_custom_role *v;
    size_t n, cap;
} cl_rolemap;

void cl_rolemap_init(cl_rolemap *m);
void cl_rolemap_free(cl_rolemap *m);
const cl_custom_role *cl_rolemap_find(const cl_rolemap *m, const char *name, size_t len);
/* Makes room for `extra` more roles, so the puts that follow cannot fail for lack of slots. */
CL_MUST_CHECK int cl_rolemap_reserve(cl_rolemap *m, size_t extra);
/* Creates the role or replaces its actions. */
CL_MUST_CHECK int cl_rolemap_put(cl_rolemap *m, const char *name, size_t len, unsigned actions);
/* Removes the role if present (CL_OK either way). */
void cl_rolemap_remove(cl_rolemap *m, const char *name, size_t len);

/* The roles-table value {"roleActions":[...]} (canonical; heap string). */
CL_MUST_CHECK int cl_role_value_encode(unsigned actions, char **out, size_t *len);
/* Strict decode of a roles-table value: an object whose roleActions is an array of 1 to
 * CL_ROLE_MAX_ACTIONS catalogue strings. CL_EJSON otherwise. */
CL_MUST_CHECK int cl_role_value_decode(const char *value, size_t len, unsigned *actions);
/* The same check on a parsed roleActions member (the API body): CL_EJSON when it is not an
 * array of 1..CL_ROLE_MAX_ACTIONS strings; CL_EINVAL for a string outside the catalogue (*bad =
 * its index). */
CL_MUST_CHECK int cl_role_actions_from_json(const json_t *arr, unsigned *actions, size_t *bad);

#endif
