/*
 * fuzz_policy.c — the policy parser and evaluator (spec/attestation-policy.md) and the JMESPath
 * engine.
 *
 * The input is parsed as policy text. If it parses, it is evaluated (and its configurationrules
 * run on their own) against a fixed small claim set holding SGX claims, custom claims and the
 * read-only TPM JSON claims `pcrs` and `events`. Evaluation is bounded by the limits of policy.h
 * (claims, bytes, steps, CPU time), so every input finishes quickly. Invariants checked: the
 * result code is one of the documented ones, a failure always carries a message, a denial carries
 * exactly one of the two MAA messages, the claim-set cap holds, and outgoing/property claims are
 * never read-only. If the input does not parse and contains a NUL byte, the bytes before it are
 * used as a JSON document and the bytes after it as a JMESPath query.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attest/jmespath.h"
#include "attest/policy.h"
#include "base/alloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char PCRS[] =
    "{\"PCRs\":[{\"Digests\":{\"SHA256\":\"3dYzmYLmiI1v2DV2+/RY+Zy1i5ngq6sEVe6fV79kKjk=\"},"
    "\"Index\":0},{\"Digests\":{\"SHA256\":\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"},"
    "\"Index\":7}]}";
static const char EVENTS[] =
    "{\"Events\":[{\"EventSeq\":1,\"EventTypeString\":\"EV_EFI_VARIABLE_DRIVER_CONFIG\","
    "\"PcrIndex\":7,\"ProcessedData\":{\"UnicodeName\":\"SecureBoot\",\"VariableData\":\"AQ\","
    "\"VariableGuid\":\"8BE4DF61-93CA-11D2-AA0D-00E098032B8C\"}},{\"EventSeq\":2,"
    "\"EventTypeString\":\"EV_EVENT_TAG\",\"PcrIndex\":12,\"ProcessedData\":{"
    "\"EVENT_TRUSTBOUNDARY\":{\"EVENT_BOOTDEBUGGING\":false,\"EVENT_CODEINTEGRITY\":true}}}]}";

static int build(cl_claimset *cs)
{
    cl_claimset_init(cs);
    CL_TRY(cl_claimset_add_string(cs, "x-ms-attestation-type", "sgx", CL_CI_SERVICE, 0));
    CL_TRY(cl_claimset_add_bool(cs, "x-ms-sgx-is-debuggable", 0, CL_CI_SERVICE));
    CL_TRY(cl_claimset_add_string(
        cs, "x-ms-sgx-mrsigner", "2c1a44952ae8207135c6c29b75b8c029372ee94b677e15c20bd42340f10d41aa",
        CL_CI_SERVICE, 0));
    CL_TRY(cl_claimset_add_int(cs, "x-ms-sgx-svn", 1, CL_CI_SERVICE));
    CL_TRY(cl_claimset_add_bool(cs, "$is-debuggable", 0, CL_CI_SERVICE));
    CL_TRY(cl_claimset_add_int(cs, "$svn", 1, CL_CI_SERVICE));
    CL_TRY(cl_claimset_add_string(cs, "$tee", "sgx", CL_CI_SERVICE, 0));
    CL_TRY(cl_claimset_add_string(cs, "tag", "a", CL_CI_CUSTOM, 0));
    CL_TRY(cl_claimset_add_string(cs, "tag", "b", CL_CI_CUSTOM, 0));
    CL_TRY(cl_claimset_add_string(cs, "JsonData", "{\"values\": [0,1,2,3,4]}", CL_CI_CUSTOM, 0));
    CL_TRY(cl_claimset_add_string(cs, "JmesPathQuery", "values[2]", CL_CI_CUSTOM, 0));
    CL_TRY(cl_claimset_add_bool(cs, "aikValidated", 1, CL_CI_SERVICE));
    CL_TRY(cl_claimset_add_string(cs, "pcrs", PCRS, CL_CI_SERVICE, 1));
    CL_TRY(cl_claimset_add_string(cs, "events", EVENTS, CL_CI_SERVICE, 1));
    return CL_OK;
}

static void check_result(int rc, const char *err, const cl_policy_result *res)
{
    if (rc != CL_OK && rc != CL_EDENIED && rc != CL_EFORMAT && rc != CL_ENOMEM)
        abort();
    if (rc != CL_OK && err[0] == '\0')
        abort();
    if (rc == CL_EDENIED && strcmp(err, "A Deny claim was issued, authorization failed.") != 0 &&
        strcmp(err, "No permit claim was issued.") != 0)
        abort();
    for (size_t i = 0; i < res->outgoing.n; i++)
        if (res->outgoing.v[i].readonly)
            abort();
    for (size_t i = 0; i < res->property.n; i++)
        if (res->property.v[i].readonly)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cl_policy *p = NULL;
    char err[512];
    int rc = cl_policy_parse((const char *)data, size, &p, err, sizeof err);
    if (rc == CL_OK) {
        if (cl_policy_version(p) < 10 || cl_policy_version(p) > 12)
            abort();
        cl_claimset in;
        if (build(&in) != CL_OK)
            abort();
        size_t start = in.n;
        cl_policy_result res;
        err[0] = '\0';
        rc = cl_policy_configure(p, &in, &res, err, sizeof err);
        check_result(rc, err, &res);
        if (rc == CL_EDENIED || in.n != start)
            abort(); /* configuration never decides and never touches the caller's set */
        cl_policy_settings s;
        cl_policy_settings_get(&res, &s);
        if (s.report_validity_in_minutes < 1 || s.report_validity_in_minutes > 525600 ||
            s.required_pcr_mask < 0 || s.required_pcr_mask > 0xFFFFFF)
            abort();
        cl_policy_result_free(&res);
        err[0] = '\0';
        rc = cl_policy_evaluate(p, &in, &res, err, sizeof err);
        check_result(rc, err, &res);
        if (in.n > CL_POLICY_MAX_CLAIMS)
            abort();
        cl_policy_result_free(&res);
        cl_claimset_free(&in);
        cl_policy_free(p);
        return 0;
    }
    if (rc != CL_EPOLICY && rc != CL_ENOMEM)
        abort();
    if (p != NULL || (rc == CL_EPOLICY && strncmp(err, "line ", 5) != 0))
        abort();
    const uint8_t *nul = memchr(data, 0, size);
    if (nul != NULL) {
        size_t jl = (size_t)(nul - data);
        cl_jmes_budget b;
        cl_jmes_budget_init(&b, 200000, 1u << 20, 1000);
        char *out = NULL;
        rc = cl_jmespath_search((const char *)data, jl, (const char *)nul + 1, size - jl - 1, &out,
                                &b, err, sizeof err);
        if (rc == CL_OK) {
            if (out == NULL)
                abort();
            cl_free(out);
        } else if (rc != CL_EFORMAT && rc != CL_ENOMEM) {
            abort();
        }
    }
    return 0;
}
