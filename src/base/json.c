#include "base/json.h"

#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/codec.h"

/* jansson reports a failed allocation as a generic parse error (often with an empty message), so
 * the allocator records it and cl_json_parse turns it into CL_ENOMEM. */
static __thread int json_alloc_failed;

static void *json_alloc(size_t n)
{
    void *p = cl_malloc(n);
    if (p == NULL)
        json_alloc_failed = 1;
    return p;
}

void cl_json_init(void)
{
    static int done;
    if (!done) {
        json_set_alloc_funcs(json_alloc, cl_free);
        done = 1;
    }
}

static int depth_ok(const json_t *j, int depth)
{
    if (depth > CL_JSON_MAX_DEPTH)
        return 0;
    if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v)
        {
            if (!depth_ok(v, depth + 1))
                return 0;
        }
    } else if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v)
        {
            if (!depth_ok(v, depth + 1))
                return 0;
        }
    }
    return 1;
}

int cl_json_parse(const char *data, size_t len, size_t maxlen, json_t **out, char *errbuf,
                  size_t errbuflen)
{
    cl_json_init();
    if (errbuf && errbuflen)
        errbuf[0] = '\0';
    if (len > maxlen) {
        if (errbuf)
            snprintf(errbuf, errbuflen, "JSON document of %zu bytes exceeds the limit of %zu", len,
                     maxlen);
        return CL_EOVERFLOW;
    }
    json_error_t e;
    json_alloc_failed = 0;
    json_t *j = json_loadb(data, len, JSON_REJECT_DUPLICATES, &e);
    if (j == NULL) {
        if (json_alloc_failed) {
            if (errbuf)
                snprintf(errbuf, errbuflen, "out of memory while parsing JSON");
            return CL_ENOMEM;
        }
        if (errbuf)
            snprintf(errbuf, errbuflen, "line %d column %d: %s", e.line, e.column, e.text);
        return CL_EJSON;
    }
    if (!depth_ok(j, 0)) {
        json_decref(j);
        if (errbuf)
            snprintf(errbuf, errbuflen, "nesting deeper than %d levels", CL_JSON_MAX_DEPTH);
        return CL_EJSON;
    }
    *out = j;
    return CL_OK;
}

int cl_json_opt_str(const json_t *obj, const char *key, const char **out, size_t *len)
{
    CL_ENSURE(json_is_object(obj), CL_EJSON);
    json_t *v = json_object_get(obj, key);
    if (v == NULL)
        return CL_ENOENT;
    CL_ENSURE(json_is_string(v), CL_EJSON);
    *out = json_string_value(v);
    if (len)
        *len = json_string_length(v);
    return CL_OK;
}

int cl_json_get_str(const json_t *obj, const char *key, const char **out, size_t *len)
{
    int rc = cl_json_opt_str(obj, key, out, len);
    return rc == CL_ENOENT ? CL_EJSON : rc;
}

int cl_json_get_hex(const json_t *obj, const char *key, uint8_t *out, size_t n)
{
    const char *s;
    size_t sl;
    CL_TRY(cl_json_get_str(obj, key, &s, &sl));
    return cl_hex_decode(s, sl, out, n);
}

char *cl_json_dump(const json_t *j)
{
    cl_json_init();
    return json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
}
