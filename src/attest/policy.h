/*
 * policy.h — the MAA attestation policy language, versions 1.0, 1.1 and 1.2
 * (spec/attestation-policy.md; user reference in docs/policy-language.md).
 *
 * Ownership. cl_policy_parse allocates a cl_policy (the parsed, statically checked rules; it does
 * not keep a pointer to the text) that the caller releases with cl_policy_free. A cl_policy is
 * immutable after parsing: several threads may evaluate the same policy at once.
 * cl_policy_evaluate borrows the policy and the incoming claim set; it appends to `incoming` (add,
 * issue and issueproperty, §5.4) and never removes from it. It always initialises *res first, so
 * the caller must call cl_policy_result_free(res) after every call, whatever it returned. Claims
 * in res are owned by res. Strings returned by cl_policy_property point into res and live until
 * cl_policy_result_free. `err` (may be NULL) receives a NUL-terminated message on failure.
 *
 * Error convention. Parse errors are CL_EPOLICY with err = "line L, column C: <what>" (1-based,
 * column counted in Unicode characters, a tab counting as one). Evaluation returns CL_EDENIED with
 * err exactly "A Deny claim was issued, authorization failed." or "No permit claim was issued.",
 * CL_EFORMAT for an evaluation error (function error, type mismatch, issuing a read-only value,
 * invalid property value, a resource limit) with err = "line L, column C: <what>" naming the rule
 * or call at fault, and CL_ENOMEM when memory runs out.
 */
#ifndef CLEDGER_ATTEST_POLICY_H
#define CLEDGER_ATTEST_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "attest/claimset.h"
#include "base/err.h"

/* Static limits (§3 S10) and evaluation limits (§5.7). */
#define CL_POLICY_MAX_TEXT 65536u    /* bytes of policy text */
#define CL_POLICY_MAX_RULES 1024u    /* rules over all sections */
#define CL_POLICY_MAX_CALL_DEPTH 16u /* nesting of function calls */
#define CL_POLICY_MAX_CLAIMS 100000u /* claims in the incoming set during evaluation */
/* Bytes of intermediate data one evaluation may create: JSON text parsed or produced by
 * JmesPath/JsonToClaimValue, AppendString results, and string bytes of claims the policy adds. */
#define CL_POLICY_MAX_WORK_BYTES (10u * 1024u * 1024u)
/* Abstract work units one evaluation may spend (a claim examined by a filter, a JMESPath node
 * visited or element produced); bounds CPU time deterministically. */
#define CL_POLICY_MAX_STEPS 5000000u
/* Wall-clock guard on top of the step budget (thread CPU time, milliseconds). */
#define CL_POLICY_MAX_CPU_MS 1000u

typedef struct cl_policy cl_policy;

/* Parses and checks `len` bytes of policy text (need not be NUL-terminated). CL_EPOLICY on any
 * syntax or static-rule error (S1–S10), a feature above the declared version, non-UTF-8 text or
 * a NUL byte, an unknown keyword or function; CL_ENOMEM; CL_EINVAL for NULL arguments. */
CL_MUST_CHECK int cl_policy_parse(const char *text, size_t len, cl_policy **out, char *err,
                                  size_t errlen);
void cl_policy_free(cl_policy *p);

/* 10, 11 or 12. */
int cl_policy_version(const cl_policy *p);
/* Number of rules in each section (tests and diagnostics). section: 0 configurationrules,
 * 1 authorizationrules, 2 issuancerules. */
size_t cl_policy_rule_count(const cl_policy *p, int section);

typedef struct {
    cl_claimset outgoing; /* issue(): the token's policy claims, in issue order */
    cl_claimset property; /* issueproperty(): engine/token settings, in issue order */
} cl_policy_result;

void cl_policy_result_free(cl_policy_result *r);

/* Runs configurationrules, authorizationrules, then (if permitted) issuancerules (§5.1). CL_OK
 * when permitted; see the header comment for the other results. */
CL_MUST_CHECK int cl_policy_evaluate(const cl_policy *p, cl_claimset *incoming,
                                     cl_policy_result *res, char *err, size_t errlen);

/* Runs configurationrules only, against a private copy of `incoming` (left unchanged), and fills
 * res->property. For engines that must know their settings (require_valid_aik_cert,
 * required_pcr_mask) before they finish building the incoming set; the full evaluation later runs
 * configurationrules again on the real set. CL_OK or CL_EFORMAT/CL_ENOMEM. */
CL_MUST_CHECK int cl_policy_configure(const cl_policy *p, const cl_claimset *incoming,
                                      cl_policy_result *res, char *err, size_t errlen);

/* The last property claim named `name` in res (last value wins, §5.5), or NULL. */
const cl_claim *cl_policy_property(const cl_policy_result *r, const char *name);

/* The §5.5 settings with their defaults applied. Their types and ranges were checked when they
 * were issued (an invalid value is an evaluation error), so reading them cannot fail. */
typedef struct {
    int64_t report_validity_in_minutes; /* 1…525600; default 480 */
    int omit_x5c;                       /* default 0 (accepted, no effect) */
    int require_valid_aik_cert;         /* default 1 */
    int64_t required_pcr_mask;          /* 0…0xFFFFFF; default 0xFFFFFF */
} cl_policy_settings;

void cl_policy_settings_get(const cl_policy_result *r, cl_policy_settings *out);

#endif
