/*
 * url.h — request-target parsing for the data-plane API (spec/ledger-api.md §4.1, §2.1):
 * percent-decoding of path segments and query names/values, query splitting, transaction id
 * parsing, and percent-encoding for nextLink values.
 *
 * Ownership: cl_url_path and cl_url_query own their decoded strings (NUL-terminated, all in one
 * heap block per parse) and are released with cl_url_path_free / cl_url_query_free; the raw input
 * is borrowed for the call only. Decoded strings never contain NUL (a decoded %00 is an error), so
 * C string functions are safe on them; `len` is kept anyway.
 */
#ifndef CLEDGER_NODE_URL_H
#define CLEDGER_NODE_URL_H

#include <stddef.h>
#include <stdint.h>

#include "base/cursor.h"
#include "base/err.h"

#define CL_URL_MAX_SEGMENTS 16 /* more: no route can match */
#define CL_URL_MAX_PARAMS 64   /* more: 400 InvalidInput */
#define CL_TXID_MAX 41         /* "<u64>.<u64>" */

/* Percent-decodes in[0..n) into a new heap string. form != 0: '+' decodes to a space (query
 * names and values). CL_EINVAL for a malformed escape (%G1, truncated %4) or a decoded NUL. */
CL_MUST_CHECK int cl_url_decode(const char *in, size_t n, int form, char **out, size_t *outlen);

typedef struct {
    char *seg[CL_URL_MAX_SEGMENTS];
    size_t len[CL_URL_MAX_SEGMENTS];
    size_t n;
    int too_many; /* more than CL_URL_MAX_SEGMENTS segments (no route matches) */
    char *arena;  /* holds every seg[i] */
} cl_url_path;

/* Splits a raw path ("/a/b%2Fc") on '/' and decodes each segment separately, so an encoded
 * slash stays inside its segment. The leading '/' is required (CL_EINVAL otherwise); empty
 * segments are kept (they match no route). CL_EINVAL for a malformed escape. */
CL_MUST_CHECK int cl_url_path_parse(const char *raw, cl_url_path *out);
void cl_url_path_free(cl_url_path *p);

typedef struct {
    char *name[CL_URL_MAX_PARAMS];
    char *value[CL_URL_MAX_PARAMS];
    size_t value_len[CL_URL_MAX_PARAMS];
    size_t n;
    char *arena; /* holds every name[i] and value[i] */
} cl_url_query;

/* Splits a raw query ("a=1&b=x%3Ay") on '&' and decodes names and values (form encoding). Empty
 * items are skipped; an item without '=' has the value "". CL_EINVAL for a malformed escape,
 * CL_EOVERFLOW for more than CL_URL_MAX_PARAMS items. */
CL_MUST_CHECK int cl_url_query_parse(const char *raw, cl_url_query *out);
void cl_url_query_free(cl_url_query *q);
/* The value of the LAST occurrence of `name` (§3.2 rule 4, §4.1), or NULL. */
const char *cl_url_query_get(const cl_url_query *q, const char *name, size_t *len);

/* Appends the percent-encoding of s[0..n) to b: every byte except the RFC 3986 unreserved
 * characters A-Z a-z 0-9 - . _ ~ becomes %XX (upper-case hex). */
CL_MUST_CHECK int cl_url_encode(cl_buf *b, const char *s, size_t n);

/* Whether s[0..n) has the characters of a collection id (§2.2): valid UTF-8 without control
 * characters (C0 or DEL). Its length (1 to 256 bytes on a write) is checked apart. */
int cl_collection_chars_ok(const char *s, size_t n);

/* Parses a transaction id "<view>.<seqno>" (§2.1): decimal, both >= 1, no sign, no leading
 * zeros, no whitespace, each fitting in u64. CL_EINVAL otherwise. */
CL_MUST_CHECK int cl_txid_parse(const char *s, size_t n, uint64_t *view, uint64_t *seqno);
/* Canonical form into out (cap >= CL_TXID_MAX + 1). */
void cl_txid_format(uint64_t view, uint64_t seqno, char *out, size_t cap);

#endif
