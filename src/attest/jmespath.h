/*
 * jmespath.h — JMESPath queries over JSON text, for the policy function JmesPath
 * (spec/attestation-policy.md §5.6; https://jmespath.org/specification.html).
 *
 * Ownership. cl_jmespath_search borrows the document and query; on success *out is a new
 * NUL-terminated string (cl_malloc'd, caller frees with cl_free) holding the compact JSON text of
 * the result ("null" when nothing matched). The work budget is owned by the caller and is charged
 * by every call so that a sequence of calls shares one limit.
 *
 * Supported: the whole JMESPath grammar (identifiers, quoted identifiers, sub-expressions,
 * index and slice expressions, list/object wildcards, flatten, filter expressions, comparators,
 * ||, &&, !, parentheses, pipes, multi-select lists and hashes, current node @, JSON literals in
 * backticks, raw strings, expression references &expr) and every built-in function of the
 * specification, plus Microsoft's extension equals_ignore_case(a, b) (ASCII case folding; false
 * unless both arguments are strings). Not supported: the deprecated unquoted-JSON literal form
 * (`foo` without quotes), and the arithmetic operators of later proposals; both are reported as
 * errors. Errors (syntax, unknown function, wrong argument type or count, limits) return
 * CL_EFORMAT with a message naming the query position ("JMESPath column N: ...") or the function.
 */
#ifndef CLEDGER_ATTEST_JMESPATH_H
#define CLEDGER_ATTEST_JMESPATH_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define CL_JMES_MAX_QUERY 65536u   /* bytes of query text */
#define CL_JMES_MAX_DEPTH 64u      /* nesting of the query's syntax tree */
#define CL_JMES_MAX_JSON_DEPTH 64u /* nesting of an input JSON document */

/* Shared work budget. steps: abstract units (a node visited, an element produced, a value
 * compared); bytes: JSON text parsed and produced; deadline_ns: thread-CPU-time limit
 * (CLOCK_THREAD_CPUTIME_ID), 0 for none. */
typedef struct {
    uint64_t steps;
    size_t bytes;
    uint64_t deadline_ns;
    uint64_t counter; /* internal: steps since the last clock check */
} cl_jmes_budget;

/* Initialise a budget; cpu_ms 0 means no clock limit. */
void cl_jmes_budget_init(cl_jmes_budget *b, uint64_t steps, size_t bytes, unsigned cpu_ms);
/* Charge n steps; CL_EFORMAT (with message in err) when the budget is exhausted. */
CL_MUST_CHECK int cl_jmes_charge_steps(cl_jmes_budget *b, uint64_t n, char *err, size_t errlen);
/* Charge n bytes; CL_EFORMAT (with message) when exhausted. */
CL_MUST_CHECK int cl_jmes_charge_bytes(cl_jmes_budget *b, size_t n, char *err, size_t errlen);

/* Parse JSON text as any JSON value (scalars included), rejecting duplicate keys, NUL in strings
 * and nesting deeper than CL_JMES_MAX_JSON_DEPTH; charges len bytes. New reference in *out. */
CL_MUST_CHECK int cl_jmes_parse_json(const char *text, size_t len, json_t **out, cl_jmes_budget *b,
                                     char *err, size_t errlen);

/* Evaluates `query` on the JSON document `json` and returns the compact JSON text of the result.
 * CL_EFORMAT (bad JSON, bad query, evaluation error, budget exhausted) or CL_ENOMEM. */
CL_MUST_CHECK int cl_jmespath_search(const char *json, size_t jlen, const char *query, size_t qlen,
                                     char **out, cl_jmes_budget *b, char *err, size_t errlen);

/* Same on a parsed document; *out is a new reference to the result (json null when nothing
 * matched). */
CL_MUST_CHECK int cl_jmespath_eval(const json_t *doc, const char *query, size_t qlen, json_t **out,
                                   cl_jmes_budget *b, char *err, size_t errlen);

#endif
