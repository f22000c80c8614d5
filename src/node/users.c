/*
 * users.c — user ids, roles and the user store (users.h).
 */
#include "node/users.h"

#include <string.h>

#include "base/alloc.h"
#include "base/codec.h"
#include "base/json.h"
#include "ledger/claims.h"

static int user_cmp(const cl_user *a, const cl_user *b) { return strcmp(a->key, b->key); }

/* RB_GENERATE_STATIC with the attribute spelled out: libbsd leaves __unused undefined (its
 * cdefs.h, Debian bugs #522773/#522774), and not every generated function is used here. */
RB_GENERATE_INTERNAL(cl_user_tree, cl_user, link, user_cmp, __attribute__((unused)) static)

void cl_users_init(cl_users *u)
{
    memset(u, 0, sizeof *u);
    RB_INIT(&u->root);
}

static void user_free(cl_user *x)
{
    cl_free(x->key);
    cl_free(x->id);
    cl_roleset_free(&x->rs);
    cl_free(x);
}

void cl_users_free(cl_users *u)
{
    cl_user *x, *next;
    for (x = RB_MIN(cl_user_tree, &u->root); x != NULL; x = next) {
        next = RB_NEXT(cl_user_tree, &u->root, x);
        RB_REMOVE(cl_user_tree, &u->root, x);
        user_free(x);
    }
    cl_users_init(u);
}

static int is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int is_fingerprint(const char *s, size_t n)
{
    if (n != 95)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (i % 3 == 2) {
            if (s[i] != ':')
                return 0;
        } else if (!is_hex(s[i])) {
            return 0;
        }
    }
    return 1;
}

static int is_guid(const char *s, size_t n)
{
    if (n != 36)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!is_hex(s[i])) {
            return 0;
        }
    }
    return 1;
}

/* The lookup key of an id into k (cap >= CL_USER_ID_MAX + 1): what cl_user_id_normalise gives
 * as *key, without allocating (the admission of every request looks its caller up). */
static int key_into(const char *id, size_t len, char *k)
{
    CL_ENSURE(len >= 1 && len <= CL_USER_ID_MAX && cl_utf8_valid(id, len), CL_EINVAL);
    for (size_t i = 0; i < len; i++)
        CL_ENSURE((unsigned char)id[i] >= 0x20 && id[i] != 0x7f, CL_EINVAL);
    memcpy(k, id, len);
    k[len] = '\0';
    int fp = is_fingerprint(id, len), guid = !fp && is_guid(id, len);
    for (size_t i = 0; i < len && (fp || guid); i++) {
        if (fp && k[i] >= 'a' && k[i] <= 'f')
            k[i] = (char)(k[i] - 'a' + 'A');
        else if (guid && k[i] >= 'A' && k[i] <= 'F')
            k[i] = (char)(k[i] - 'A' + 'a');
    }
    return CL_OK;
}

int cl_user_id_normalise(const char *id, size_t len, char **key, char **stored)
{
    *key = *stored = NULL;
    char kb[CL_USER_ID_MAX + 1];
    CL_TRY(key_into(id, len, kb));
    /* stored: fingerprints upper-case, everything else as given */
    char *k = cl_strndup(kb, len), *s = cl_strndup(is_fingerprint(id, len) ? kb : id, len);
    if (k == NULL || s == NULL) {
        cl_free(k);
        cl_free(s);
        return CL_ENOMEM;
    }
    *key = k;
    *stored = s;
    return CL_OK;
}

/* The user whose key is k (NUL-terminated key form), or NULL. */
static cl_user *find_key(const cl_users *u, const char *k)
{
    cl_user probe;
    probe.key = (char *)k;
    return RB_FIND(cl_user_tree, (struct cl_user_tree *)&u->root, &probe);
}

const cl_user *cl_users_find(const cl_users *u, const char *id, size_t len)
{
    char k[CL_USER_ID_MAX + 1];
    if (key_into(id, len, k) < 0)
        return NULL;
    return find_key(u, k);
}

const cl_user *cl_users_find_fingerprint(const cl_users *u, const char *fp)
{
    /* A fingerprint's key is its upper-case form (key_into): in that form it is the key already.
     * Anything else takes the full path, so the answer is the same. */
    size_t len = strnlen(fp, CL_USER_ID_MAX + 1);
    if (!is_fingerprint(fp, len) || strpbrk(fp, "abcdef") != NULL)
        return cl_users_find(u, fp, len);
    return find_key(u, fp);
}

static int is_admin(const cl_roleset *rs) { return (rs->builtin & CL_ROLE_ADMINISTRATOR) != 0; }

int cl_users_put(cl_users *u, const char *id, size_t len, const cl_roleset *rs)
{
    char *k, *s;
    CL_TRY(cl_user_id_normalise(id, len, &k, &s));
    cl_roleset copy;
    int rc = cl_roleset_copy(rs, &copy);
    if (rc < 0) {
        cl_free(k);
        cl_free(s);
        return rc;
    }
    cl_user *x = find_key(u, k);
    if (x != NULL) {
        u->admins = u->admins - (size_t)is_admin(&x->rs) + (size_t)is_admin(&copy);
        cl_roleset_free(&x->rs);
        x->rs = copy;
        cl_free(k);
        cl_free(s);
        return CL_OK;
    }
    x = cl_calloc(1, sizeof *x);
    if (x == NULL) {
        cl_free(k);
        cl_free(s);
        cl_roleset_free(&copy);
        return CL_ENOMEM;
    }
    x->key = k;
    x->id = s;
    x->rs = copy;
    RB_INSERT(cl_user_tree, &u->root, x);
    u->n++;
    u->admins += (size_t)is_admin(&x->rs);
    return CL_OK;
}

int cl_users_remove(cl_users *u, const char *id, size_t len)
{
    char k[CL_USER_ID_MAX + 1];
    CL_TRY(key_into(id, len, k));
    cl_user *x = find_key(u, k);
    if (x == NULL)
        return CL_OK;
    RB_REMOVE(cl_user_tree, &u->root, x);
    u->n--;
    u->admins -= (size_t)is_admin(&x->rs);
    user_free(x);
    return CL_OK;
}

size_t cl_users_admins(const cl_users *u) { return u->admins; }

const cl_user *cl_users_first(const cl_users *u)
{
    return RB_MIN(cl_user_tree, (struct cl_user_tree *)&u->root);
}

const cl_user *cl_users_next(const cl_users *u, const cl_user *x)
{
    (void)u;
    return RB_NEXT(cl_user_tree, (struct cl_user_tree *)&u->root, (cl_user *)x);
}

const cl_user *cl_users_after(const cl_users *u, const char *id, size_t len)
{
    char k[CL_USER_ID_MAX + 1];
    if (key_into(id, len, k) < 0)
        return cl_users_first(u);
    cl_user probe;
    probe.key = k;
    cl_user *x = RB_NFIND(cl_user_tree, (struct cl_user_tree *)&u->root, &probe);
    if (x != NULL && strcmp(x->key, k) == 0)
        x = RB_NEXT(cl_user_tree, (struct cl_user_tree *)&u->root, x);
    return x;
}

/* Length in bytes of the UTF-8 sequence at s (already validated), 1..4. */
static size_t utf8_seq_len(unsigned char c)
{
    return c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
}

int cl_role_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > 4 * CL_ROLE_NAME_MAX || !cl_utf8_valid(name, len))
        return 0;
    size_t chars = 0;
    for (size_t i = 0; i < len; chars++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f)
            return 0;
        if (c == 0xc2 && i + 1 < len && (unsigned char)name[i + 1] < 0xa0) /* U+0080..U+009F */
            return 0;
        i += utf8_seq_len(c);
    }
    return chars <= CL_ROLE_NAME_MAX;
}

static const struct {
    const char *name;
    unsigned bit;
} role_names[] = {
    {"Administrator", CL_ROLE_ADMINISTRATOR},
    {"Contributor", CL_ROLE_CONTRIBUTOR},
    {"Reader", CL_ROLE_READER},
};

int cl_role_parse(const char *name, unsigned *bit)
{
    for (size_t i = 0; i < sizeof role_names / sizeof role_names[0]; i++) {
        if (strcmp(name, role_names[i].name) == 0) {
            *bit = role_names[i].bit;
            return CL_OK;
        }
    }
    return CL_EINVAL;
}

const char *cl_role_highest(unsigned roles)
{
    for (size_t i = 0; i < sizeof role_names / sizeof role_names[0]; i++) {
        if (roles & role_names[i].bit)
            return role_names[i].name;
    }
    return "Reader";
}

unsigned cl_roles_actions(unsigned roles)
{
    unsigned a = 0;
    if (roles & (CL_ROLE_READER | CL_ROLE_CONTRIBUTOR | CL_ROLE_ADMINISTRATOR))
        a |= CL_ACT_READ;
    if (roles & (CL_ROLE_CONTRIBUTOR | CL_ROLE_ADMINISTRATOR))
        a |= CL_ACT_WRITE | CL_ACT_EXECUTE;
    if (roles & CL_ROLE_ADMINISTRATOR)
        a |= CL_ACT_USERS_READ | CL_ACT_USERS_WRITE | CL_ACT_ROLES_READ | CL_ACT_ROLES_WRITE |
             CL_ACT_PROG_READ | CL_ACT_PROG_WRITE;
    return a;
}

void cl_roleset_free(cl_roleset *s)
{
    for (size_t i = 0; i < s->ncustom; i++)
        cl_free(s->custom[i]);
    cl_free(s->custom);
    memset(s, 0, sizeof *s);
}

static size_t popcount3(unsigned b)
{
    return (size_t)((b & 1) != 0) + ((b & 2) != 0) + ((b & 4) != 0);
}

int cl_roleset_add(cl_roleset *s, const char *name, size_t len)
{
    CL_ENSURE(cl_role_name_valid(name, len), CL_EINVAL);
    for (size_t i = 0; i < sizeof role_names / sizeof role_names[0]; i++) {
        if (len == strlen(role_names[i].name) && memcmp(name, role_names[i].name, len) == 0) {
            if (!(s->builtin & role_names[i].bit))
                CL_ENSURE(popcount3(s->builtin) + s->ncustom < CL_USER_MAX_ROLES, CL_EOVERFLOW);
            s->builtin |= role_names[i].bit;
            return CL_OK;
        }
    }
    char *c = cl_strndup(name, len);
    CL_ENSURE(c != NULL, CL_ENOMEM);
    size_t at = 0;
    while (at < s->ncustom && strcmp(s->custom[at], c) < 0)
        at++;
    if (at < s->ncustom && strcmp(s->custom[at], c) == 0) {
        cl_free(c);
        return CL_OK;
    }
    if (popcount3(s->builtin) + s->ncustom >= CL_USER_MAX_ROLES) {
        cl_free(c);
        return CL_EOVERFLOW;
    }
    char **v = cl_realloc(s->custom, (s->ncustom + 1) * sizeof *v);
    if (v == NULL) {
        cl_free(c);
        return CL_ENOMEM;
    }
    s->custom = v;
    memmove(&v[at + 1], &v[at], (s->ncustom - at) * sizeof *v);
    v[at] = c;
    s->ncustom++;
    return CL_OK;
}

int cl_roleset_copy(const cl_roleset *from, cl_roleset *to)
{
    memset(to, 0, sizeof *to);
    to->builtin = from->builtin;
    if (from->ncustom == 0)
        return CL_OK;
    to->custom = cl_calloc(from->ncustom, sizeof *to->custom);
    CL_ENSURE(to->custom != NULL, CL_ENOMEM);
    for (size_t i = 0; i < from->ncustom; i++) {
        to->custom[i] = cl_strdup(from->custom[i]);
        if (to->custom[i] == NULL) {
            to->ncustom = i;
            cl_roleset_free(to);
            return CL_ENOMEM;
        }
    }
    to->ncustom = from->ncustom;
    return CL_OK;
}

json_t *cl_roles_json_array(const cl_roleset *s)
{
    json_t *a = json_array();
    if (a == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof role_names / sizeof role_names[0]; i++) {
        if ((s->builtin & role_names[i].bit) &&
            json_array_append_new(a, json_string(role_names[i].name)) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    for (size_t i = 0; i < s->ncustom; i++) {
        if (json_array_append_new(a, json_string(s->custom[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

int cl_roles_value_encode(const cl_roleset *s, char **out, size_t *len)
{
    cl_json_init();
    *out = NULL;
    json_t *arr = cl_roles_json_array(s);
    CL_ENSURE(arr != NULL, CL_ENOMEM);
    json_t *o = json_object();
    if (o == NULL) {
        json_decref(arr);
        return CL_ENOMEM;
    }
    if (json_object_set_new(o, "assignedRoles", arr) != 0) { /* takes arr even on failure */
        json_decref(o);
        return CL_ENOMEM;
    }
    *out = cl_json_dump(o);
    json_decref(o);
    CL_ENSURE(*out != NULL, CL_ENOMEM);
    *len = strlen(*out);
    return CL_OK;
}

int cl_roles_value_decode(const char *value, size_t len, cl_roleset *out)
{
    memset(out, 0, sizeof *out);
    json_t *j = NULL;
    CL_TRY(cl_json_parse(value, len, 64 * 1024, &j, NULL, 0));
    int rc = CL_EJSON;
    cl_roleset r = {0, NULL, 0};
    json_t *arr = json_object_get(j, "assignedRoles");
    if (!json_is_object(j) || !json_is_array(arr) || json_array_size(arr) == 0)
        goto out;
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v))
            goto out;
        int arc = cl_roleset_add(&r, json_string_value(v), json_string_length(v));
        if (arc == CL_ENOMEM) {
            rc = arc;
            goto out;
        }
        if (arc < 0)
            goto out;
    }
    *out = r;
    r.custom = NULL;
    r.ncustom = 0;
    rc = CL_OK;
out:
    cl_roleset_free(&r);
    json_decref(j);
    return rc;
}
