/*
 * json.h — thin helpers over jansson for strict field access.
 *
 * jansson owns every json_t; callers release with json_decref. Getters borrow: a returned string
 * lives as long as the object that holds it. cl_json_parse is our own strict RFC 8259 parser
 * building jansson values (about 10x faster than json_loadb on large strings;
 * docs/dependencies.md): it rejects trailing data, duplicate keys, NUL bytes (raw or \u0000),
 * invalid UTF-8, integers outside int64, real overflow, nesting deeper than CL_JSON_MAX_DEPTH, and
 * inputs over the given size; errors give the line and column. jansson's allocator is pointed at
 * the base allocation seam (cl_json_init is idempotent and is called by cl_json_parse), and every
 * block jansson frees is wiped first (cl_json_free).
 */
#ifndef CLEDGER_BASE_JSON_H
#define CLEDGER_BASE_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/cursor.h"
#include "base/err.h"

#define CL_JSON_MAX_DEPTH 32

void cl_json_init(void);
/* jansson's free function: wipes the block (its whole usable size), then frees it. */
void cl_json_free(void *p);
/* Parse `len` bytes. On failure *errmsg (may be NULL) gets a static or caller-buffer description.
 */
CL_MUST_CHECK int cl_json_parse(const char *data, size_t len, size_t maxlen, json_t **out,
                                char *errbuf, size_t errbuflen);
/* Required string member; CL_EJSON when absent or not a string. */
CL_MUST_CHECK int cl_json_get_str(const json_t *obj, const char *key, const char **out,
                                  size_t *len);
/* Optional string member: CL_ENOENT when absent, CL_EJSON when of another type. */
CL_MUST_CHECK int cl_json_opt_str(const json_t *obj, const char *key, const char **out,
                                  size_t *len);
/* Required member holding exactly 2*n hex characters, decoded into out. */
CL_MUST_CHECK int cl_json_get_hex(const json_t *obj, const char *key, uint8_t *out, size_t n);
/* Appends s[0..n) as a JSON string literal, escaped byte for byte as jansson's json_dumps escapes
 * it without JSON_ENSURE_ASCII or JSON_ESCAPE_SLASH ('"', '\\' and control characters; no other
 * byte). For answers built without a json_t on hot paths. The bytes must be valid UTF-8 (not
 * checked here). */
CL_MUST_CHECK int cl_json_put_string(cl_buf *b, const char *s, size_t n);
/* Serialise compactly with sorted keys into a new string (caller frees with cl_free, or with
 * cl_json_free when it may hold request data). */
char *cl_json_dump(const json_t *j);

#endif
