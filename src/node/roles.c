/*
 * roles.c — the action catalogue, custom role definitions and the roles-table value (roles.h).
 */
#include "node/roles.h"

#include <string.h>
#include <strings.h>

#include "base/alloc.h"
#include "base/json.h"

/* §11.5 catalogue, in the order sets are shown. */
static const struct {
    const char *name;
    unsigned bit;
} catalogue[] = {
    {"Microsoft.ConfidentialLedger/ledger/read", CL_ACT_READ},
    {"Microsoft.ConfidentialLedger/ledger/write", CL_ACT_WRITE},
    {"Microsoft.ConfidentialLedger/ledger/users/read", CL_ACT_USERS_READ},
    {"Microsoft.ConfidentialLedger/ledger/users/write", CL_ACT_USERS_WRITE},
    {"Microsoft.ConfidentialLedger/ledger/roles/read", CL_ACT_ROLES_READ},
    {"Microsoft.ConfidentialLedger/ledger/roles/write", CL_ACT_ROLES_WRITE},
    {"Microsoft.ConfidentialLedger/ledger/programmability/read", CL_ACT_PROG_READ},
    {"Microsoft.ConfidentialLedger/ledger/programmability/write", CL_ACT_PROG_WRITE},
    {"Microsoft.ConfidentialLedger/ledger/functions/execute", CL_ACT_EXECUTE},
    {"Microsoft.ConfidentialLedger/ledger/*", CL_ACTSET_STAR},
};
#define NCAT (sizeof catalogue / sizeof catalogue[0])

int cl_action_parse(const char *s, size_t len, unsigned *bit)
{
    for (size_t i = 0; i < NCAT; i++) {
        if (len == strlen(catalogue[i].name) && strncasecmp(s, catalogue[i].name, len) == 0) {
            *bit = catalogue[i].bit;
            return CL_OK;
        }
    }
    return CL_EINVAL;
}

unsigned cl_actset_grants(unsigned set)
{
    return (set & CL_ACTSET_STAR) ? CL_ACT_ALL : (set & CL_ACT_ALL);
}

json_t *cl_actset_json(unsigned set)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < NCAT; i++) {
        if ((set & catalogue[i].bit) && json_array_append_new(a, json_string(catalogue[i].name))) {
            json_decref(a);
            a = NULL;
        }
    }
    return a;
}

int cl_role_is_builtin(const char *name, size_t len)
{
    static const char *const b[] = {"Administrator", "Contributor", "Reader"};
    for (size_t i = 0; i < 3; i++) {
        if (len == strlen(b[i]) && memcmp(name, b[i], len) == 0)
            return 1;
    }
    return 0;
}

/* ---- the map ------------------------------------------------------------------------------- */

void cl_rolemap_init(cl_rolemap *m) { memset(m, 0, sizeof *m); }

void cl_rolemap_free(cl_rolemap *m)
{
    for (size_t i = 0; i < m->n; i++)
        cl_free(m->v[i].name);
    cl_free(m->v);
    memset(m, 0, sizeof *m);
}

/* Bytewise comparison of a stored name with name[0..len) (names contain no NUL). */
static int cmp_name(const char *stored, const char *name, size_t len)
{
    size_t sl = strlen(stored);
    int c = memcmp(stored, name, sl < len ? sl : len);
    if (c != 0)
        return c;
    return sl < len ? -1 : sl > len ? 1 : 0;
}

static size_t lower_bound(const cl_rolemap *m, const char *name, size_t len, int *found)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cmp_name(m->v[mid].name, name, len) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < m->n && cmp_name(m->v[lo].name, name, len) == 0;
    return lo;
}

const cl_custom_role *cl_rolemap_find(const cl_rolemap *m, const char *name, size_t len)
{
    int found;
    size_t i = lower_bound(m, name, len, &found);
    return found ? &m->v[i] : NULL;
}

int cl_rolemap_reserve(cl_rolemap *m, size_t extra)
{
    if (m->cap - m->n >= extra)
        return CL_OK;
    size_t cap = m->cap ? m->cap : 16;
    while (cap - m->n < extra)
        cap *= 2;
    cl_custom_role *v = cl_realloc(m->v, cap * sizeof *v);
    CL_ENSURE(v != NULL, CL_ENOMEM);
    m->v = v;
    m->cap = cap;
    return CL_OK;
}

int cl_rolemap_put(cl_rolemap *m, const char *name, size_t len, unsigned actions)
{
    int found;
    size_t i = lower_bound(m, name, len, &found);
    if (found) {
        m->v[i].actions = actions;
        return CL_OK;
    }
    char *c = cl_strndup(name, len);
    CL_ENSURE(c != NULL, CL_ENOMEM);
    if (cl_rolemap_reserve(m, 1) < 0) {
        cl_free(c);
        return CL_ENOMEM;
    }
    memmove(&m->v[i + 1], &m->v[i], (m->n - i) * sizeof *m->v);
    m->v[i].name = c;
    m->v[i].actions = actions;
    m->n++;
    return CL_OK;
}

void cl_rolemap_remove(cl_rolemap *m, const char *name, size_t len)
{
    int found;
    size_t i = lower_bound(m, name, len, &found);
    if (!found)
        return;
    cl_free(m->v[i].name);
    memmove(&m->v[i], &m->v[i + 1], (m->n - i - 1) * sizeof *m->v);
    m->n--;
}

/* ---- the roles-table value ----------------------------------------------------------------- */

int cl_role_actions_from_json(const json_t *arr, unsigned *actions, size_t *bad)
{
    *bad = 0;
    CL_ENSURE(json_is_array(arr) && json_array_size(arr) >= 1 &&
                  json_array_size(arr) <= CL_ROLE_MAX_ACTIONS,
              CL_EJSON);
    unsigned set = 0, bit;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *v = json_array_get(arr, i);
        CL_ENSURE(json_is_string(v), CL_EJSON);
        if (cl_action_parse(json_string_value(v), json_string_length(v), &bit) < 0) {
            *bad = i;
            return CL_EINVAL;
        }
        set |= bit;
    }
    *actions = set;
    return CL_OK;
}

int cl_role_value_encode(unsigned actions, char **out, size_t *len)
{
    cl_json_init();
    *out = NULL;
    CL_ENSURE(actions != 0 && (actions & ~CL_ACTSET_VALID) == 0, CL_EINVAL);
    json_t *arr = cl_actset_json(actions);
    CL_ENSURE(arr != NULL, CL_ENOMEM);
    json_t *o = json_object();
    if (o == NULL) {
        json_decref(arr);
        return CL_ENOMEM;
    }
    if (json_object_set_new(o, "roleActions", arr) != 0) { /* takes arr even on failure */
        json_decref(o);
        return CL_ENOMEM;
    }
    *out = cl_json_dump(o);
    json_decref(o);
    CL_ENSURE(*out != NULL, CL_ENOMEM);
    *len = strlen(*out);
    return CL_OK;
}

int cl_role_value_decode(const char *value, size_t len, unsigned *actions)
{
    json_t *j = NULL;
    CL_TRY(cl_json_parse(value, len, 64 * 1024, &j, NULL, 0));
    size_t bad;
    int rc = CL_EJSON;
    if (json_is_object(j) &&
        cl_role_actions_from_json(json_object_get(j, "roleActions"), actions, &bad) == CL_OK)
        rc = CL_OK;
    json_decref(j);
    return rc;
}
