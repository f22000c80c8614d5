/*
 * fuzz_json.c — cl_json_parse (src/base/json.c), differentially against jansson's json_loadb.
 *
 * cl_json_parse is meant to accept exactly the documents json_loadb(JSON_REJECT_DUPLICATES)
 * accepts with nesting of at most CL_JSON_MAX_DEPTH levels, and to build the same tree. Properties
 * checked (abort on violation):
 *   - both accept or both reject, except that a raw NUL byte is always rejected here: it is never
 *     valid JSON, but jansson's stream skips a NUL that follows a number ("[0\0]" parses);
 *   - accepted documents give json_equal trees;
 *   - a rejection carries a description, and the result pointer is left untouched;
 *   - a failure is CL_EJSON (the input is never over the size limit here, and nothing fails to
 *     allocate).
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int depth_ok(const json_t *j, int depth)
{
    if (depth > CL_JSON_MAX_DEPTH)
        return 0;
    const char *k;
    json_t *v;
    size_t i;
    if (json_is_object(j)) {
        json_object_foreach((json_t *)j, k, v) if (!depth_ok(v, depth + 1)) return 0;
    } else if (json_is_array(j)) {
        json_array_foreach(j, i, v) if (!depth_ok(v, depth + 1)) return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cl_json_init();
    json_t *mine = NULL;
    char err[200];
    int rc = cl_json_parse((const char *)data, size, size, &mine, err, sizeof err);
    if (memchr(data, 0, size) != NULL) {
        if (rc != CL_EJSON || mine != NULL)
            abort();
        return 0;
    }
    json_error_t e;
    json_t *ref = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &e);
    if (ref != NULL && !depth_ok(ref, 0)) {
        json_decref(ref);
        ref = NULL;
    }
    if ((rc == CL_OK) != (ref != NULL))
        abort();
    if (rc == CL_OK) {
        if (mine == NULL || !json_equal(mine, ref))
            abort();
    } else if (rc != CL_EJSON || mine != NULL || err[0] == '\0')
        abort();
    json_decref(mine);
    json_decref(ref);
    return 0;
}
