/*
 * claimset.c — claim multisets (see claimset.h).
 */
#include "attest/claimset.h"

#include <string.h>

#include "base/alloc.h"

void cl_claimset_init(cl_claimset *cs) { memset(cs, 0, sizeof *cs); }

void cl_claimset_free(cl_claimset *cs)
{
    if (cs == NULL)
        return;
    for (size_t k = 0; k < cs->n; k++) {
        cl_free(cs->v[k].type);
        cl_free(cs->v[k].s);
    }
    cl_free(cs->v);
    memset(cs, 0, sizeof *cs);
}

/* Reserves a slot and fills its type; the caller sets the value. */
static cl_claim *slot(cl_claimset *cs, const char *prefix, const char *type)
{
    if (type == NULL)
        return NULL;
    if (cs->n == cs->cap) {
        size_t cap = cs->cap ? cs->cap * 2 : 16;
        cl_claim *v = cl_realloc(cs->v, cap * sizeof *v);
        if (v == NULL)
            return NULL;
        cs->v = v;
        cs->cap = cap;
    }
    size_t pl = prefix ? strlen(prefix) : 0, tl = strlen(type);
    char *t = cl_malloc(pl + tl + 1);
    if (t == NULL)
        return NULL;
    if (pl)
        memcpy(t, prefix, pl);
    memcpy(t + pl, type, tl + 1);
    cl_claim *c = &cs->v[cs->n];
    memset(c, 0, sizeof *c);
    c->type = t;
    return c;
}

static int add_string(cl_claimset *cs, const char *prefix, const char *type, const char *s,
                      cl_claim_issuer issuer, int readonly)
{
    CL_ENSURE(s != NULL, CL_EINVAL);
    char *dup = cl_strdup(s);
    CL_ENSURE(dup != NULL, CL_ENOMEM);
    cl_claim *c = slot(cs, prefix, type);
    if (c == NULL) {
        cl_free(dup);
        return CL_ENOMEM;
    }
    c->vt = CL_CV_STRING;
    c->s = dup;
    c->issuer = issuer;
    c->readonly = readonly != 0;
    cs->n++;
    return CL_OK;
}

int cl_claimset_add_string(cl_claimset *cs, const char *type, const char *s, cl_claim_issuer issuer,
                           int readonly)
{
    return add_string(cs, NULL, type, s, issuer, readonly);
}

static int add_int(cl_claimset *cs, const char *prefix, const char *type, int64_t v,
                   cl_claim_issuer issuer)
{
    cl_claim *c = slot(cs, prefix, type);
    CL_ENSURE(c != NULL, CL_ENOMEM);
    c->vt = CL_CV_INTEGER;
    c->i = v;
    c->issuer = issuer;
    cs->n++;
    return CL_OK;
}

int cl_claimset_add_int(cl_claimset *cs, const char *type, int64_t v, cl_claim_issuer issuer)
{
    return add_int(cs, NULL, type, v, issuer);
}

static int add_bool(cl_claimset *cs, const char *prefix, const char *type, int v,
                    cl_claim_issuer issuer)
{
    cl_claim *c = slot(cs, prefix, type);
    CL_ENSURE(c != NULL, CL_ENOMEM);
    c->vt = CL_CV_BOOLEAN;
    c->b = v != 0;
    c->issuer = issuer;
    cs->n++;
    return CL_OK;
}

int cl_claimset_add_bool(cl_claimset *cs, const char *type, int v, cl_claim_issuer issuer)
{
    return add_bool(cs, NULL, type, v, issuer);
}

int cl_claimset_add_copy(cl_claimset *cs, const cl_claim *c)
{
    CL_ENSURE(c != NULL, CL_EINVAL);
    switch (c->vt) {
    case CL_CV_STRING:
        return add_string(cs, NULL, c->type, c->s, c->issuer, c->readonly);
    case CL_CV_INTEGER:
        CL_TRY(add_int(cs, NULL, c->type, c->i, c->issuer));
        break;
    case CL_CV_BOOLEAN:
        CL_TRY(add_bool(cs, NULL, c->type, c->b, c->issuer));
        break;
    default:
        return CL_EINVAL;
    }
    cs->v[cs->n - 1].readonly = c->readonly;
    return CL_OK;
}

int cl_claimset_add_json(cl_claimset *cs, const json_t *obj, const char *prefix,
                         cl_claim_issuer issuer)
{
    CL_ENSURE(json_is_object(obj), CL_EJSON);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        switch (json_typeof(v)) {
        case JSON_STRING:
            CL_ENSURE(strlen(json_string_value(v)) == json_string_length(v), CL_EJSON);
            CL_TRY(add_string(cs, prefix, k, json_string_value(v), issuer, 0));
            break;
        case JSON_INTEGER:
            CL_TRY(add_int(cs, prefix, k, (int64_t)json_integer_value(v), issuer));
            break;
        case JSON_TRUE:
        case JSON_FALSE:
            CL_TRY(add_bool(cs, prefix, k, json_is_true(v), issuer));
            break;
        case JSON_OBJECT:
        case JSON_ARRAY: {
            char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
            CL_ENSURE(text != NULL, CL_ENOMEM);
            int rc = add_string(cs, prefix, k, text, issuer, 0);
            cl_free(text);
            CL_TRY(rc);
            break;
        }
        default:
            return CL_EJSON;
        }
    }
    return CL_OK;
}

long cl_claimset_find(const cl_claimset *cs, const char *type, size_t from)
{
    for (size_t k = from; k < cs->n; k++)
        if (strcmp(cs->v[k].type, type) == 0)
            return (long)k;
    return -1;
}

int cl_claim_value_equal(const cl_claim *a, const cl_claim *b)
{
    if (a->vt != b->vt)
        return 0;
    switch (a->vt) {
    case CL_CV_STRING:
        return strcmp(a->s, b->s) == 0;
    case CL_CV_INTEGER:
        return a->i == b->i;
    case CL_CV_BOOLEAN:
        return a->b == b->b;
    }
    return 0;
}

json_t *cl_claim_value_json(const cl_claim *c)
{
    switch (c->vt) {
    case CL_CV_STRING:
        return json_string(c->s);
    case CL_CV_INTEGER:
        return json_integer((json_int_t)c->i);
    case CL_CV_BOOLEAN:
        return json_boolean(c->b);
    }
    return NULL;
}

const char *cl_claim_vtype_name(cl_claim_vtype vt)
{
    switch (vt) {
    case CL_CV_STRING:
        return "String";
    case CL_CV_INTEGER:
        return "Integer";
    case CL_CV_BOOLEAN:
        return "Boolean";
    }
    return "String";
}
