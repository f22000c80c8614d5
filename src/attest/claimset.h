/*
 * claimset.h — the claim multisets of the attestation service (spec/attestation-policy.md §4.1).
 *
 * A claim is (type, value, valueType, issuer) plus a read-only flag. Values are scalars: String
 * (UTF-8, NUL-terminated, no embedded NUL), Integer (signed 64-bit) or Boolean. A set keeps
 * insertion order (it determines the order of issued claims in a token) and allows repeated
 * types and values.
 *
 * Evidence verifiers describe what they found as a JSON object of token claims (the
 * evidence-specific members of attestation-api.md §5.4); cl_claimset_add_json turns such an
 * object into incoming claims: JSON string -> String, integer -> Integer, true/false -> Boolean,
 * object or array -> String holding its compact JSON text (keys sorted), as §6 of the policy
 * document requires for x-ms-sgx-collateral, x-ms-runtime and friends.
 */
#ifndef CLEDGER_ATTEST_CLAIMSET_H
#define CLEDGER_ATTEST_CLAIMSET_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

typedef enum { CL_CV_STRING = 0, CL_CV_INTEGER, CL_CV_BOOLEAN } cl_claim_vtype;

typedef enum {
    CL_CI_SERVICE = 0, /* "AttestationService": produced by the evidence parser */
    CL_CI_POLICY,      /* "AttestationPolicy": produced by a rule */
    CL_CI_CUSTOM       /* "CustomClaim": supplied by the attester */
} cl_claim_issuer;

typedef struct {
    char *type; /* heap, NUL-terminated */
    cl_claim_vtype vt;
    char *s; /* CL_CV_STRING: heap, NUL-terminated; NULL otherwise */
    int64_t i;
    int b;
    cl_claim_issuer issuer;
    int readonly;
} cl_claim;

typedef struct {
    cl_claim *v;
    size_t n, cap;
} cl_claimset;

void cl_claimset_init(cl_claimset *cs);
void cl_claimset_free(cl_claimset *cs);

CL_MUST_CHECK int cl_claimset_add_string(cl_claimset *cs, const char *type, const char *s,
                                         cl_claim_issuer issuer, int readonly);
CL_MUST_CHECK int cl_claimset_add_int(cl_claimset *cs, const char *type, int64_t v,
                                      cl_claim_issuer issuer);
CL_MUST_CHECK int cl_claimset_add_bool(cl_claimset *cs, const char *type, int v,
                                       cl_claim_issuer issuer);
/* Appends a copy of c (type and string duplicated). */
CL_MUST_CHECK int cl_claimset_add_copy(cl_claimset *cs, const cl_claim *c);
/* Appends one claim per member of the JSON object obj (see the header comment). A real number
 * or null member is CL_EJSON. `prefix` (may be NULL) is prepended to every type ("$"). */
CL_MUST_CHECK int cl_claimset_add_json(cl_claimset *cs, const json_t *obj, const char *prefix,
                                       cl_claim_issuer issuer);

/* Index of the first claim of `type` at or after `from`, or -1. */
long cl_claimset_find(const cl_claimset *cs, const char *type, size_t from);

/* Equality of two claim values (same valueType and same value; strings byte-exact). */
int cl_claim_value_equal(const cl_claim *a, const cl_claim *b);

/* JSON value of a claim (new reference; NULL on allocation failure). */
json_t *cl_claim_value_json(const cl_claim *c);

/* "String", "Integer", "Boolean". */
const char *cl_claim_vtype_name(cl_claim_vtype vt);

#endif
