/*
 * test_policy.c — the MAA policy language (src/attest/policy.c, src/attest/jmespath.c) against
 * spec/attestation-policy.md: the published examples (§8), the conformance tests (§9), static
 * errors with exact positions, limits, and the JMESPath engine.
 *
 * Claim sets are written one claim per line: `type=<JSON value>[ @Custom| @Policy][ ro]`
 * (issuer AttestationService by default). Results are rendered the same way, with the issuer
 * always spelled out (" @Service", " @Custom"; nothing for AttestationPolicy).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attest/jmespath.h"
#include "attest/policy.h"
#include "base/alloc.h"
#include "testutil.h"

/* ---- claim-set notation ---------------------------------------------------------------------- */

static void add_line(cl_claimset *cs, const char *line, size_t len)
{
    char buf[4096];
    assert_true(len < sizeof buf);
    memcpy(buf, line, len);
    buf[len] = '\0';
    int ro = 0;
    cl_claim_issuer iss = CL_CI_SERVICE;
    size_t l = strlen(buf);
    if (l > 3 && strcmp(buf + l - 3, " ro") == 0) {
        ro = 1;
        buf[l -= 3] = '\0';
    }
    if (l > 8 && strcmp(buf + l - 8, " @Custom") == 0) {
        iss = CL_CI_CUSTOM;
        buf[l -= 8] = '\0';
    } else if (l > 8 && strcmp(buf + l - 8, " @Policy") == 0) {
        iss = CL_CI_POLICY;
        buf[l -= 8] = '\0';
    }
    char *eq = strchr(buf, '=');
    assert_non_null(eq);
    *eq = '\0';
    json_error_t je;
    json_t *v = json_loads(eq + 1, JSON_DECODE_ANY, &je);
    if (v == NULL)
        fail_msg("bad claim line '%s': %s", eq + 1, je.text);
    int rc;
    if (json_is_string(v))
        rc = cl_claimset_add_string(cs, buf, json_string_value(v), iss, ro);
    else if (json_is_integer(v))
        rc = cl_claimset_add_int(cs, buf, json_integer_value(v), iss);
    else if (json_is_boolean(v))
        rc = cl_claimset_add_bool(cs, buf, json_is_true(v), iss);
    else
        fail_msg("claim value must be a JSON scalar: %s", eq + 1);
    assert_int_equal(rc, CL_OK);
    cs->v[cs->n - 1].readonly = ro;
    json_decref(v);
}

static void add_lines(cl_claimset *cs, const char *text)
{
    while (text && *text) {
        const char *nl = strchr(text, '\n');
        size_t len = nl ? (size_t)(nl - text) : strlen(text);
        if (len)
            add_line(cs, text, len);
        text += len + (nl != NULL);
    }
}

/* Renders a set in the line notation (static buffer slots). */
static const char *render(const cl_claimset *cs)
{
    static char slots[4][16384];
    static int k;
    char *out = slots[k++ & 3];
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < cs->n; i++) {
        const cl_claim *c = &cs->v[i];
        json_t *j = cl_claim_value_json(c);
        char *v = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
        const char *iss = c->issuer == CL_CI_SERVICE  ? " @Service"
                          : c->issuer == CL_CI_CUSTOM ? " @Custom"
                                                      : "";
        int n = snprintf(out + o, sizeof slots[0] - o, "%s%s=%s%s%s", i ? "\n" : "", c->type, v,
                         iss, c->readonly ? " ro" : "");
        free(v);
        json_decref(j);
        assert_true(n > 0 && (size_t)n < sizeof slots[0] - o);
        o += (size_t)n;
    }
    return out;
}

/* ---- base claim sets ---------------------------------------------------------------------------
 */

#define AZ_MRE "b779202618becb636768e5d902f28d524222735fafb539ea9ba07c3fc171a1c2"
#define AZ_MRS "2c1a44952ae8207135c6c29b75b8c029372ee94b677e15c20bd42340f10d41aa"
#define PH_MRE "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
#define PH_MRS "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6"

#define SGX_SET(dbg, mre, mrs, pid, svn)                                                           \
    "x-ms-attestation-type=\"sgx\"\n"                                                              \
    "x-ms-ver=\"1.0\"\n"                                                                           \
    "x-ms-sgx-is-debuggable=" dbg "\n"                                                             \
    "x-ms-sgx-mrenclave=\"" mre "\"\n"                                                             \
    "x-ms-sgx-mrsigner=\"" mrs "\"\n"                                                              \
    "x-ms-sgx-product-id=" pid "\n"                                                                \
    "x-ms-sgx-svn=" svn "\n"                                                                       \
    "$is-debuggable=" dbg "\n"                                                                     \
    "$sgx-mrsigner=\"" mrs "\"\n"                                                                  \
    "$sgx-mrenclave=\"" mre "\"\n"                                                                 \
    "$product-id=" pid "\n"                                                                        \
    "$svn=" svn "\n"                                                                               \
    "$tee=\"sgx\"\n"

#define AZ SGX_SET("false", AZ_MRE, AZ_MRS, "1", "1")
#define AZ_DBG SGX_SET("true", AZ_MRE, AZ_MRS, "1", "1")
#define AZ_SVN2 SGX_SET("false", AZ_MRE, AZ_MRS, "1", "2")
#define PH SGX_SET("false", PH_MRE, PH_MRS, "0", "0")
#define SNP                                                                                        \
    "x-ms-attestation-type=\"sevsnpvm\"\n"                                                         \
    "x-ms-ver=\"1.0\"\n"                                                                           \
    "x-ms-sevsnpvm-is-debuggable=true\n"                                                           \
    "x-ms-sevsnpvm-launchmeasurement=\"b07af962\"\n"                                               \
    "x-ms-sevsnpvm-vmpl=0\n"
#define TPM_FLAGS(aik, sb)                                                                         \
    "aikValidated=" aik "\nsecureBootEnabled=" sb "\nbootDebuggingDisabled=true\nnotSafeMode="     \
    "true\n"

static const char PCR0[] = "3dYzmYLmiI1v2DV2+/RY+Zy1i5ngq6sEVe6fV79kKjk=";

/* A TPM claim set of the cledger Linux profile: pcrs and events as JSON text, read-only unless
 * `writable` (events shaped like the Windows-derived logs Microsoft's samples query). */
static void add_tpm(cl_claimset *cs, int writable)
{
    add_lines(cs, "x-ms-attestation-type=\"tpm\"\nx-ms-ver=\"1.0\"\naikValidated=true\n"
                  "aikPubHash=\"00ab\"\ntpmVersion=2\n");
    json_t *pcrs = json_pack("{s:[{s:i,s:{s:s}},{s:i,s:{s:s}},{s:i,s:{s:s}}]}", "PCRs", "Index", 0,
                             "Digests", "SHA256", PCR0, "Index", 1, "Digests", "SHA256",
                             "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "Index", 7, "Digests",
                             "SHA256", "7n1L6s3uBzrqlJmRw4iOpzbHxkd0lX6cIoFMkO1hjCA=");
    const char *guid = "8BE4DF61-93CA-11D2-AA0D-00E098032B8C";
    json_t *events = json_pack(
        "{s:[{s:i,s:i,s:s,s:{s:s,s:s,s:s}},{s:i,s:i,s:s,s:{s:s,s:s,s:s}},"
        "{s:i,s:i,s:s,s:{s:{s:b,s:b,s:{s:i},s:[{s:b,s:s},{s:b,s:s}]}}},"
        "{s:i,s:i,s:s,s:{s:{s:b,s:b,s:{s:i},s:[{s:b,s:s}]}}},"
        "{s:i,s:i,s:s,s:{s:s,s:s,s:s}}]}",
        "Events", /* 1 */ "EventSeq", 1, "PcrIndex", 7, "EventTypeString",
        "EV_EFI_VARIABLE_DRIVER_CONFIG", "ProcessedData", "VariableGuid", guid, "UnicodeName",
        "SecureBoot", "VariableData", "AQ",
        /* 2 */ "EventSeq", 2, "PcrIndex", 7, "EventTypeString", "EV_EFI_VARIABLE_DRIVER_CONFIG",
        "ProcessedData", "VariableGuid", guid, "UnicodeName", "PK", "VariableData", "cGs=",
        /* 3 */ "EventSeq", 3, "PcrIndex", 12, "EventTypeString", "EV_EVENT_TAG", "ProcessedData",
        "EVENT_TRUSTBOUNDARY", "EVENT_CODEINTEGRITY", 1, "EVENT_BOOTDEBUGGING", 0,
        "EVENT_BITLOCKER_UNLOCK", "Value", 0, "EVENT_LOADEDMODULE_AGGREGATION",
        "EVENT_IMAGEVALIDATED", 1, "EVENT_FILEPATH", "\\Windows\\System32\\DRIVERS\\wdboot.sys",
        "EVENT_IMAGEVALIDATED", 0, "EVENT_FILEPATH", "\\windows\\system32\\other.sys",
        /* 4 */ "EventSeq", 4, "PcrIndex", 13, "EventTypeString", "EV_EVENT_TAG", "ProcessedData",
        "EVENT_TRUSTBOUNDARY", "EVENT_CODEINTEGRITY", 1, "EVENT_BOOTDEBUGGING", 0,
        "EVENT_BITLOCKER_UNLOCK", "Value", 3, "EVENT_LOADEDMODULE_AGGREGATION",
        "EVENT_IMAGEVALIDATED", 1, "EVENT_FILEPATH", "\\windows\\system32\\ci.dll",
        /* 5 */ "EventSeq", 5, "PcrIndex", 4, "EventTypeString", "EV_EFI_BOOT_SERVICES_APPLICATION",
        "ProcessedData", "VariableGuid", "", "UnicodeName", "", "VariableData", "");
    assert_non_null(pcrs);
    assert_non_null(events);
    char *ps = json_dumps(pcrs, JSON_COMPACT | JSON_SORT_KEYS);
    char *es = json_dumps(events, JSON_COMPACT | JSON_SORT_KEYS);
    assert_int_equal(cl_claimset_add_string(cs, "pcrs", ps, CL_CI_SERVICE, !writable), CL_OK);
    assert_int_equal(cl_claimset_add_string(cs, "events", es, CL_CI_SERVICE, !writable), CL_OK);
    free(ps);
    free(es);
    json_decref(pcrs);
    json_decref(events);
}

/* x-ms-runtime as §6 defines it: the compact JSON text of the runtime data object. */
static void add_runtime(cl_claimset *cs)
{
    size_t len;
    char *raw = tu_read_file(
        tu_source_path("tests/data/attestation-vectors/sgx/azure-sdk_runtime_data.bin"), &len);
    if (raw == NULL)
        raw = tu_read_file(
            "/work/main/tests/data/attestation-vectors/sgx/azure-sdk_runtime_data.bin", &len);
    assert_non_null(raw);
    json_error_t je;
    json_t *j = json_loadb(raw, len, 0, &je);
    assert_non_null(j);
    char *t = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    assert_int_equal(cl_claimset_add_string(cs, "x-ms-runtime", t, CL_CI_SERVICE, 0), CL_OK);
    free(t);
    json_decref(j);
    free(raw);
}

static void build_set(cl_claimset *cs, const char *spec)
{
    cl_claimset_init(cs);
    if (strncmp(spec, "TPM", 3) == 0 && (spec[3] == '\0' || spec[3] == '\n' || spec[3] == 'W')) {
        int w = spec[3] == 'W';
        add_tpm(cs, w);
        spec += w ? 5 : 3;
    } else if (strncmp(spec, "RUNTIME\n", 8) == 0) {
        add_runtime(cs);
        spec += 8;
    }
    add_lines(cs, spec);
}

/* ---- the table ---------------------------------------------------------------------------------
 */

typedef struct {
    const char *id;
    const char *policy;
    const char *claims; /* line notation; may start with "TPM\n", "TPMW\n" or "RUNTIME\n" */
    int rc;
    const char *err;  /* exact message; "^..." prefix; "~..." substring; NULL: not checked */
    const char *out;  /* rendered outgoing set (NULL: not checked) */
    const char *prop; /* rendered property set (NULL: not checked) */
    const char *in;   /* a line that must occur in the rendered incoming set afterwards */
} pcase;

#define PERMIT_ALL "version=1.0; authorizationrules{=> permit();}; "
#define V12 "version=1.2; authorizationrules{=> permit();}; "
#define DENY_MSG "A Deny claim was issued, authorization failed."
#define NOPERMIT_MSG "No permit claim was issued."

static const char DEFAULT_SGX[] =
    "version= 1.0;authorizationrules{c:[type==\"$is-debuggable\"] => "
    "permit();};issuancerules{c:[type==\"$is-debuggable\"] => issue(type=\"is-debuggable\", "
    "value=c.value);c:[type==\"$sgx-mrsigner\"] => issue(type=\"sgx-mrsigner\", "
    "value=c.value);c:[type==\"$sgx-mrenclave\"] => issue(type=\"sgx-mrenclave\", "
    "value=c.value);c:[type==\"$product-id\"] => issue(type=\"product-id\", "
    "value=c.value);c:[type==\"$svn\"] => issue(type=\"svn\", value=c.value);c:[type==\"$tee\"] "
    "=> issue(type=\"tee\", value=c.value);};";

#define SIX_LEGACY                                                                                 \
    "is-debuggable=false\nsgx-mrsigner=\"" AZ_MRS "\"\nsgx-mrenclave=\"" AZ_MRE                    \
    "\"\nproduct-id=1\nsvn=1\ntee=\"sgx\""

#define E1                                                                                         \
    "Version= 1.0;\n"                                                                              \
    "authorizationrules\n"                                                                         \
    "{\n"                                                                                          \
    "\tc:[type==\"$is-debuggable\"] => permit();\n"                                                \
    "};\n"                                                                                         \
    "issuancerules\n"                                                                              \
    "{\n"                                                                                          \
    "\tc:[type==\"$is-debuggable\"] => issue(type=\"is-debuggable\", value=c.value);\n"            \
    "\tc:[type==\"$sgx-mrsigner\"] => issue(type=\"sgx-mrsigner\", value=c.value);\n"              \
    "\tc:[type==\"$sgx-mrenclave\"] => issue(type=\"sgx-mrenclave\", value=c.value);\n"            \
    "\tc:[type==\"$product-id\"] => issue(type=\"product-id\", value=c.value);\n"                  \
    "\tc:[type==\"$svn\"] => issue(type=\"svn\", value=c.value);\n"                                \
    "\tc:[type==\"$tee\"] => issue(type=\"tee\", value=c.value);\n"                                \
    "};\n"

#define E3                                                                                         \
    "version=1.0;\n"                                                                               \
    "authorizationrules\n"                                                                         \
    "{\n"                                                                                          \
    "[type==\"secureBootEnabled\", value==true, issuer==\"AttestationService\"]=>permit();\n"      \
    "};\n"                                                                                         \
    "\n"                                                                                           \
    "issuancerules\n"                                                                              \
    "{\n"                                                                                          \
    "=> issue(type=\"SecurityLevelValue\", value=100);\n"                                          \
    "};\n"

#define E4_ISSUANCE                                                                                \
    "issuancerules\n"                                                                              \
    "{\n"                                                                                          \
    "[type==\"aikValidated\", value==true]&&\n"                                                    \
    "[type==\"secureBootEnabled\", value==true] &&\n"                                              \
    "[type==\"bootDebuggingDisabled\", value==true] &&\n"                                          \
    "[type==\"notSafeMode\", value==true] => issue(type=\"PlatformAttested\", value=true);\n"      \
    "};\n"

#define E4 "version=1.0;\nauthorizationrules { => permit(); };\n" E4_ISSUANCE

#define E5_BODY                                                                                    \
    "\n"                                                                                           \
    "configurationrules{\n"                                                                        \
    "=> issueproperty(type = \"required_pcr_mask\", value = 15);\n"                                \
    "=> issueproperty(type = \"require_valid_aik_cert\", value = false);\n"                        \
    "};\n"                                                                                         \
    "\n"                                                                                           \
    "authorizationrules {\n"                                                                       \
    "    => permit();\n"                                                                           \
    "};\n"                                                                                         \
    "\n"                                                                                           \
    "issuancerules\n"                                                                              \
    "{\n"                                                                                          \
    "[type==\"aikValidated\", value==true]&&\n"                                                    \
    "[type==\"secureBootEnabled\", value==true] &&\n"                                              \
    "[type==\"bootDebuggingDisabled\", value==true] &&\n"                                          \
    "[type==\"notSafeMode\", value==true] => issue(type=\"PlatformAttested\", value=true);\n"      \
    "\n"                                                                                           \
    "[type==\"aikValidated\", value==false]&&\n"                                                   \
    "[type==\"secureBootEnabled\", value==true] &&\n"                                              \
    "[type==\"bootDebuggingDisabled\", value==true] &&\n"                                          \
    "[type==\"notSafeMode\", value==true] => issue(type=\"PlatformAttested\", value=false);\n"     \
    "};\n"

#define E5 "version=1.1;\n" E5_BODY

#define E6                                                                                         \
    "version=1.2;\n"                                                                               \
    "\n"                                                                                           \
    "authorizationrules {\n"                                                                       \
    "  => permit();\n"                                                                             \
    "};\n"                                                                                         \
    "\n"                                                                                           \
    "issuancerules\n"                                                                              \
    "{\n"                                                                                          \
    "c:[type == \"events\", issuer==\"AttestationService\"] => add(type = "                        \
    "\"efiConfigVariables\", "                                                                     \
    "value = JmesPath(c.value, \"Events[?EventTypeString == 'EV_EFI_VARIABLE_DRIVER_CONFIG' && "   \
    "ProcessedData.VariableGuid == '8BE4DF61-93CA-11D2-AA0D-00E098032B8C']\"));\n"                 \
    "\n"                                                                                           \
    "c:[type==\"efiConfigVariables\", issuer=\"AttestationPolicy\"]=> issue(type = "               \
    "\"secureBootEnabled\", value = JsonToClaimValue(JmesPath(c.value, "                           \
    "\"[?ProcessedData.UnicodeName == 'SecureBoot'] | length(@) == `1` && "                        \
    "@[0].ProcessedData.VariableData == 'AQ'\")));\n"                                              \
    "![type==\"secureBootEnabled\", issuer==\"AttestationPolicy\"] => "                            \
    "issue(type=\"secureBootEnabled\", "                                                           \
    "value=false);\n"                                                                              \
    "\n"                                                                                           \
    "};\n"

#define E7                                                                                         \
    "version=1.2;\n"                                                                               \
    "authorizationrules {\n"                                                                       \
    "    [type==\"vsmReportPresent\", value==true] &&\n"                                           \
    "    [type==\"enclaveAuthorId\", value==\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"] &&\n" \
    "    [type==\"enclaveImageId\", value==\"AQEAAAAAAAAAAAAAAAAAAA\"] &&\n"                       \
    "    [type==\"enclaveSvn\", value>=0] =>  permit();\n"                                         \
    "};\n"                                                                                         \
    "issuancerules { };\n"
#define VBS(svn)                                                                                   \
    "vsmReportPresent=true\nenclaveAuthorId=\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"\n"     \
    "enclaveImageId=\"AQEAAAAAAAAAAAAAAAAAAA\"\nenclaveSvn=" svn "\n"

#define E8_1                                                                                       \
    "F1:[type==\"OSName\", issuer==\"CustomClaim\"] &&\n"                                          \
    "[type==\"OSName\", issuer==\"AttestationService\", value== F1.value ]\n"                      \
    "=> issueproperty(type=\"report_validity_in_minutes\", value=1440);\n"
#define E8_2                                                                                       \
    "F1:[type==\"OSName\", issuer==\"CustomClaim\"] &&\n"                                          \
    "C2:[type==\"OSName\", issuer==\"AttestationService\", value== F1.value ]\n"                   \
    "=> issue(claim = C2);\n"

#define E9                                                                                         \
    "version=1.0;\n"                                                                               \
    "authorizationrules {\n"                                                                       \
    "  c:[type==\"x-ms-sgx-mrsigner\", "                                                           \
    "value==\"2c1a44952ae8207135c6c29b75b8c029372ee94b677e15c20bd42340f10d41aa\"] &&\n"            \
    "  [type==\"x-ms-sgx-is-debuggable\", value==false] &&\n"                                      \
    "  [type==\"x-ms-sgx-svn\", value>=1] => permit();\n"                                          \
    "};\n"                                                                                         \
    "issuancerules {\n"                                                                            \
    "  c:[type==\"x-ms-sgx-mrenclave\"] => issue(type=\"enclave\", value=c.value);\n"              \
    "};\n"

/* A v1.2 TPM policy in the style of Microsoft's samples (cledger's own text): Sets from JSON
 * arrays, ContainsOnlyValue, flatten + filter + equals_ignore_case, multi-select hash. */
#define TPM_RICH                                                                                   \
    V12 "issuancerules {\n"                                                                        \
        "c:[type==\"events\"] => add(type=\"tb\", value=JmesPath(c.value, \"Events[? "             \
        "EventTypeString "                                                                         \
        "== 'EV_EVENT_TAG' && (PcrIndex == `12` || PcrIndex == `13`)].ProcessedData."              \
        "EVENT_TRUSTBOUNDARY\"));\n"                                                               \
        "c:[type==\"tb\"] => add(type=\"ciSet\", value=JsonToClaimValue(JmesPath(c.value, "        \
        "\"[*].EVENT_CODEINTEGRITY\")));\n"                                                        \
        "c:[type==\"ciSet\"] => add(type=\"ci\", value=ContainsOnlyValue(c.value, true));\n"       \
        "c:[type==\"tb\"] => add(type=\"dbgSet\", value=JsonToClaimValue(JmesPath(c.value, "       \
        "\"[*].EVENT_BOOTDEBUGGING\")));\n"                                                        \
        "c:[type==\"dbgSet\"] => add(type=\"dbgOff\", value=ContainsOnlyValue(c.value, false));\n" \
        "c:[type==\"tb\"] => add(type=\"bl\", value=JsonToClaimValue(JmesPath(c.value, "           \
        "\"[*].EVENT_BITLOCKER_UNLOCK | @[? Value != `0`].Value | @[0]\")));\n"                    \
        "c:[type==\"tb\"] => add(type=\"elam\", value=JsonToClaimValue(JmesPath(c.value, "         \
        "\"[*].EVENT_LOADEDMODULE_AGGREGATION[] | [? EVENT_IMAGEVALIDATED == `true` && "           \
        "(equals_ignore_case(EVENT_FILEPATH, "                                                     \
        "'\\\\windows\\\\system32\\\\drivers\\\\wdboot.sys'))] | "                                 \
        "@ != `null`\")));\n"                                                                      \
        "c:[type==\"events\"] => add(type=\"pk\", value=JmesPath(c.value, \"Events[? "             \
        "ProcessedData.UnicodeName == 'PK'] | length(@) == `1` && @[0] | "                         \
        "@.{Seq:EventSeq, Data:ProcessedData.VariableData}\"));\n"                                 \
        "c:[type==\"ci\"] => add(type=\"out\", value=c.value);\n"                                  \
        "c:[type==\"dbgOff\"] => add(type=\"out\", value=c.value);\n"                              \
        "c:[type==\"bl\"] => add(type=\"out\", value=c.value);\n"                                  \
        "c:[type==\"elam\"] => add(type=\"out\", value=c.value);\n"                                \
        "c:[type==\"pk\"] => add(type=\"out\", value=c.value);\n"                                  \
        "};"

static const pcase CASES[] = {
    /* ---- §9 conformance tests ---- */
    {"T01", PERMIT_ALL "issuancerules{};", AZ, CL_OK, NULL, "", "", NULL},
    {"T02", DEFAULT_SGX, AZ, CL_OK, NULL,
     "is-debuggable=false\nsgx-mrsigner=\"" AZ_MRS "\"\nsgx-mrenclave=\"" AZ_MRE
     "\"\nproduct-id=1\nsvn=1\ntee=\"sgx\"",
     "", NULL},
    {"T03", DEFAULT_SGX, SNP, CL_EDENIED, NOPERMIT_MSG, "", NULL, NULL},
    {"T04", "version=1.0; authorizationrules{=> deny();}; issuancerules{};", AZ, CL_EDENIED,
     DENY_MSG, "", NULL, NULL},
    {"T05a",
     "version=1.0; authorizationrules{=> permit(); c:[type==\"x-ms-sgx-is-debuggable\", "
     "value==true] => deny();}; issuancerules{};",
     AZ, CL_OK, NULL, "", NULL, NULL},
    {"T05b",
     "version=1.0; authorizationrules{=> permit(); c:[type==\"x-ms-sgx-is-debuggable\", "
     "value==true] => deny();}; issuancerules{};",
     AZ_DBG, CL_EDENIED, DENY_MSG, NULL, NULL, NULL},
    {"T06", "version=1.0; authorizationrules{=> deny(); => permit();}; issuancerules{};", AZ,
     CL_EDENIED, DENY_MSG, NULL, NULL, NULL},
    {"T07a", E9, AZ, CL_OK, NULL, "enclave=\"" AZ_MRE "\"", NULL, NULL},
    {"T07b", E9, PH, CL_EDENIED, NOPERMIT_MSG, "", NULL, NULL},
    {"T08a",
     "version=1.0; authorizationrules{[type==\"x-ms-sgx-svn\", value>=2] => permit();}; "
     "issuancerules{};",
     AZ, CL_EDENIED, NOPERMIT_MSG, NULL, NULL, NULL},
    {"T08b",
     "version=1.0; authorizationrules{[type==\"x-ms-sgx-svn\", value>=2] => permit();}; "
     "issuancerules{};",
     AZ_SVN2, CL_OK, NULL, "", NULL, NULL},
    {"T09",
     "version=1.0; authorizationrules{[type==\"x-ms-sgx-svn\", value==\"1\"] => permit();}; "
     "issuancerules{};",
     AZ, CL_EDENIED, NOPERMIT_MSG, NULL, NULL, NULL},
    {"T10",
     "version=1.0; authorizationrules{[type==\"x-ms-sgx-mrsigner\", value>\"0\"] => permit();}; "
     "issuancerules{};",
     AZ, CL_EDENIED, NOPERMIT_MSG, NULL, NULL, NULL},
    {"T11",
     "version=1.0; authorizationrules{[type==\"x-ms-sgx-svn\", valueType==\"Integer\"] => "
     "permit();}; issuancerules{};",
     AZ, CL_OK, NULL, "", NULL, NULL},
    {"T12a",
     "version=1.0; authorizationrules{[type==\"OSName\", issuer==\"AttestationService\"] => "
     "permit();}; issuancerules{};",
     "OSName=\"Linux\" @Custom", CL_EDENIED, NOPERMIT_MSG, NULL, NULL, NULL},
    {"T12b",
     "version=1.0; authorizationrules{[type==\"OSName\", issuer==\"CustomClaim\"] => permit();}; "
     "issuancerules{};",
     "OSName=\"Linux\" @Custom", CL_OK, NULL, "", NULL, NULL},
    {"T13", PERMIT_ALL "issuancerules{" E8_2 "};", "OSName=\"Linux\" @Custom\nOSName=\"Linux\"",
     CL_OK, NULL, "OSName=\"Linux\" @Service", "", NULL},
    {"T14", PERMIT_ALL "issuancerules{" E8_2 "};", "OSName=\"Linux\" @Custom\nOSName=\"Windows\"",
     CL_OK, NULL, "", "", NULL},
    {"T15",
     "version=1.0; authorizationrules{=> add(type=\"stage\", value=\"authz\"); => permit();}; "
     "issuancerules{c:[type==\"stage\", issuer==\"AttestationPolicy\"] => "
     "issue(type=\"stage-seen\", value=c.value);};",
     AZ, CL_OK, NULL, "stage-seen=\"authz\"", "", "stage=\"authz\""},
    {"T16",
     PERMIT_ALL "issuancerules{=> issue(type=\"a\", value=1); c:[type==\"a\"] => issue(type=\"b\", "
                "value=c.value);};",
     AZ, CL_OK, NULL, "a=1\nb=1", "", NULL},
    {"T17", PERMIT_ALL "issuancerules{c:[type==\"a\"] => issue(type=\"a\", value=2);};", AZ, CL_OK,
     NULL, "", "", NULL},
    {"T18",
     PERMIT_ALL "issuancerules{=> issueproperty(type=\"report_validity_in_minutes\", value=60);};",
     AZ, CL_OK, NULL, "", "report_validity_in_minutes=60", "report_validity_in_minutes=60"},
    {"T19", PERMIT_ALL "issuancerules{c:[type==\"x-ms-sgx-svn\"] => issue(claim=c);};", AZ, CL_OK,
     NULL, "x-ms-sgx-svn=1 @Service", "", NULL},
    {"T20", PERMIT_ALL "issuancerules{c:[type==\"tag\"] => issue(type=\"tags\", value=c.value);};",
     "tag=\"a\" @Custom\ntag=\"b\" @Custom", CL_OK, NULL, "tags=\"a\"\ntags=\"b\"", "", NULL},
    {"T21", E4, TPM_FLAGS("true", "true"), CL_OK, NULL, "PlatformAttested=true", "", NULL},
    {"T22", E4, TPM_FLAGS("true", "false"), CL_OK, NULL, "", "", NULL},
    {"T23", E5, TPM_FLAGS("false", "true"), CL_OK, NULL, "PlatformAttested=false",
     "required_pcr_mask=15\nrequire_valid_aik_cert=false", NULL},
    {"T24", "version=1.0;" E5_BODY, "", CL_EPOLICY,
     "line 2, column 1: configurationrules requires version 1.1 or later (the policy declares "
     "1.0)",
     NULL, NULL, NULL},
    {"T25",
     V12 "issuancerules{![type==\"secureBootEnabled\", issuer==\"AttestationPolicy\"] => "
         "issue(type=\"secureBootEnabled\", value=false);};",
     AZ, CL_OK, NULL, "secureBootEnabled=false", "", NULL},
    {"T26",
     PERMIT_ALL "issuancerules{![type==\"secureBootEnabled\", issuer==\"AttestationPolicy\"] => "
                "issue(type=\"secureBootEnabled\", value=false);};",
     "", CL_EPOLICY,
     "line 1, column 62: negated condition '![...]' requires version 1.2 (the policy declares "
     "1.0)",
     NULL, NULL, NULL},
    {"T27",
     V12 "issuancerules{=> add(type=\"r\", value=JmesPath(\"{\\\"foo\\\": \\\"bar\\\"}\", "
         "\"foo\")); c:[type==\"r\"] => issue(type=\"raw\", value=c.value); c:[type==\"r\"] => "
         "issue(type=\"conv\", value=JsonToClaimValue(c.value));};",
     AZ, CL_OK, NULL, "raw=\"\\\"bar\\\"\"\nconv=\"bar\"", "", "r=\"\\\"bar\\\"\""},
    {"T28",
     V12 "issuancerules{c1:[type==\"JsonData\"] && c2:[type==\"JmesPathQuery\"] => "
         "issue(type=\"r\", value=JsonToClaimValue(JmesPath(c1.value, c2.value)));};",
     "JsonData=\"{\\\"values\\\": [0,1,2,3,4]}\" @Custom\nJmesPathQuery=\"values[2]\" @Custom",
     CL_OK, NULL, "r=2", "", NULL},
    {"T29",
     V12 "issuancerules{=> add(type=\"Result\", value=JsonToClaimValue(\"[0, \\\"abc\\\", "
         "true]\")); c:[type==\"Result\"] => issue(type=\"Result\", value=c.value);};",
     AZ, CL_OK, NULL, "Result=0\nResult=\"abc\"\nResult=true", "", NULL},
    {"T30",
     V12 "issuancerules{=> add(type=\"N\", value=JsonToClaimValue(\"null\")); ![type==\"N\"] => "
         "issue(type=\"none\", value=true);};",
     AZ, CL_OK, NULL, "none=true", "", NULL},
    {"T31", V12 "issuancerules{=> add(type=\"F\", value=JsonToClaimValue(\"1.5\"));};", AZ,
     CL_EFORMAT, "line 1, column 85: JsonToClaimValue: the number 1.5 is not an integer", NULL,
     NULL, NULL},
    {"T32", V12 "issuancerules{=> add(type=\"O\", value=JsonToClaimValue(\"{\\\"a\\\":1}\"));};",
     AZ, CL_EFORMAT,
     "line 1, column 85: JsonToClaimValue: a JSON object cannot become a claim value", NULL, NULL,
     NULL},
    {"T33a",
     V12 "issuancerules{c1:[type==\"Subset\"] && c2:[type==\"Superset\"] => "
         "issue(type=\"IsSubset\", value=IsSubsetOf(c1.value, c2.value));};",
     "Subset=\"abc\" @Custom\nSubset=100 @Custom\nSuperset=true @Custom\nSuperset=\"abc\" "
     "@Custom\nSuperset=100 @Custom",
     CL_OK, NULL, "IsSubset=true", "", NULL},
    {"T33b",
     V12 "issuancerules{c1:[type==\"Superset\"] && c2:[type==\"Subset\"] => "
         "issue(type=\"IsSubset\", value=IsSubsetOf(c1.value, c2.value));};",
     "Subset=\"abc\" @Custom\nSubset=100 @Custom\nSuperset=true @Custom\nSuperset=\"abc\" "
     "@Custom\nSuperset=100 @Custom",
     CL_OK, NULL, "IsSubset=false", "", NULL},
    {"T34a",
     V12 "issuancerules{c:[type==\"Set\"] => issue(type=\"R\", value=ContainsOnlyValue(c.value, "
         "100));};",
     "Set=100\nSet=101", CL_OK, NULL, "R=false", "", NULL},
    {"T34b",
     V12 "issuancerules{c:[type==\"Set\"] => issue(type=\"R\", value=ContainsOnlyValue(c.value, "
         "100));};",
     "Set=100\nSet=100", CL_OK, NULL, "R=true", "", NULL},
    {"T34c",
     V12 "issuancerules{c:[type==\"Set\"] => issue(type=\"R\", value=ContainsOnlyValue(c.value, "
         "100));};",
     "Set=100", CL_OK, NULL, "R=true", "", NULL},
    {"T35",
     V12 "issuancerules{=> issue(type=\"R\", value=ContainsOnlyValue(JsonToClaimValue(\"[]\"), "
         "1));};",
     AZ, CL_OK, NULL, "R=false", "", NULL},
    {"T36", V12 "issuancerules{=> issue(type=\"R\", value=AppendString(\"abc\", \"xyz\"));};", AZ,
     CL_OK, NULL, "R=\"abcxyz\"", "", NULL},
    {"T37", V12 "issuancerules{=> issue(type=\"R\", value=NegateBool(true));};", AZ, CL_OK, NULL,
     "R=false", "", NULL},
    {"T38", V12 "issuancerules{=> issue(type=\"R\", value=NegateBool(\"true\"));};", AZ, CL_EFORMAT,
     "line 1, column 87: NegateBool: argument 1 must be a Boolean, got a String", NULL, NULL, NULL},
    {"T39", V12 "issuancerules{=> issue(type=\"R\", value=Frobnicate(1));};", "", CL_EPOLICY,
     "line 1, column 87: unknown function 'Frobnicate'", NULL, NULL, NULL},
    {"T40", "version=1.0; authorizationrules{=> permit();}; issuancerules{=> permit();};", "",
     CL_EPOLICY,
     "line 1, column 65: permit() is not allowed in issuancerules (only in authorizationrules)",
     NULL, NULL, NULL},
    {"T41", "version=1.0; authorizationrules{=> issue(type=\"a\", value=1);}; issuancerules{};", "",
     CL_EPOLICY,
     "line 1, column 36: issue() is not allowed in authorizationrules (only in issuancerules)",
     NULL, NULL, NULL},
    {"T42", "version=1.0 authorizationrules{=> permit();}; issuancerules{};", "", CL_EPOLICY,
     "line 1, column 13: expected ';' after the version, found 'authorizationrules'", NULL, NULL,
     NULL},
    {"T43",
     "Version= 1.0;\nauthorizationrules\n{\n\tc:[type==\xE2\x80\x9D$is-debuggable\xE2\x80\x9D] => "
     "permit();\n};\nissuancerules\n{\n};\n",
     "", CL_EPOLICY,
     "line 4, column 11: unexpected character U+201D (typographic quote; use ASCII '\"')", NULL,
     NULL, NULL},
    {"T44",
     "Version= 1.0;\nAuthorizationRules {\n c:[type=\"$is-debuggable\"] => permit()\n};\n"
     "IssuanceRules { };",
     AZ, CL_OK, NULL, "", "", NULL},
    {"T45",
     "version=1.2;\n// leading comment\nauthorizationrules { // after brace\n  => permit(); // "
     "trailing\n  // between rules\n};\nissuancerules {\n  // first\n  => issue(type=\"a\", "
     "value=NegateBool(false)); // x\n  // second\n  c:[type==\"a\"] => issue(type=\"b\", "
     "value=c.value);\n}; // end without newline",
     AZ, CL_OK, NULL, "a=true\nb=true", "", NULL},
    {"T46",
     "version=1.0; authorizationrules{=> permit();}; issuancerules{=> issue(type=\"x\", "
     "value=c.value);};",
     "", CL_EPOLICY,
     "line 1, column 87: identifier 'c' is not bound by a condition to its left in this rule", NULL,
     NULL, NULL},
    {"T47", V12 "issuancerules{c:[type==\"pcrs\"] => issue(claim=c);};", "TPM\n", CL_EFORMAT,
     "line 1, column 82: issue: claim 'pcrs' is read-only and cannot be issued", NULL, NULL, NULL},
    {"T48",
     V12 "issuancerules{c:[type==\"pcrs\"] => add(type=\"p0\", value=JmesPath(c.value, "
         "\"PCRs[?Index==`0`].Digests.SHA256 | [0]\"));};",
     "TPM\n", CL_OK, NULL, "", "",
     "p0=\"\\\"3dYzmYLmiI1v2DV2+/RY+Zy1i5ngq6sEVe6fV79kKjk=\\\"\" ro"},
    {"T49",
     V12 "issuancerules{c:[type==\"x-ms-runtime\"] => issue(type=\"jwk-crv\", "
         "value=JsonToClaimValue(JmesPath(c.value, \"jwk.crv\")));};",
     "RUNTIME\n" AZ, CL_OK, NULL, "jwk-crv=\"P-256\"", "", NULL},
    {"T50", "version=1.3; authorizationrules{=> permit();}; issuancerules{};", "", CL_EPOLICY,
     "line 1, column 9: unsupported version 1.3 (expected 1.0, 1.1 or 1.2)", NULL, NULL, NULL},
    {"T51",
     PERMIT_ALL "issuancerules{=> issue(type=\"n\", value=-5); => issue(type=\"h\", "
                "value=0xFF);};",
     AZ, CL_OK, NULL, "n=-5\nh=255", "", NULL},
    {"T52",
     "version=1.2; authorizationrules{[type==\"x-ms-sgx-svn\", value==1] && "
     "![type==\"x-ms-sgx-is-debuggable\", value==true] => permit();}; issuancerules{};",
     AZ, CL_OK, NULL, "", "", NULL},

    /* ---- §8 published examples ---- */
    {"E1", E1, AZ, CL_OK, NULL, SIX_LEGACY, "", NULL},
    {"E1-snp", E1, SNP, CL_EDENIED, NOPERMIT_MSG, "", "", NULL},
    {"E2b",
     "version=1.0; authorizationrules{=> permit();}; issuancerules{=> issue(type=\"sdk-test\", "
     "value=\"true\");};",
     AZ, CL_OK, NULL, "sdk-test=\"true\"", "", NULL},
    {"E3a", E3, "secureBootEnabled=true", CL_OK, NULL, "SecurityLevelValue=100", "", NULL},
    {"E3b", E3, "secureBootEnabled=true @Custom", CL_EDENIED, NOPERMIT_MSG, "", "", NULL},
    /* E6 on a TPM set whose events claim is read-only (§6): the issued value is computed by a
     * function from it, which MAA's published samples rely on (docs/policy-language.md). */
    {"E6-ro", E6, "TPM\n", CL_OK, NULL, "secureBootEnabled=true", "", NULL},
    {"E6-rw", E6, "TPMW\n", CL_OK, NULL, "secureBootEnabled=true", "", NULL},
    {"E6-noevents", E6, "aikValidated=true", CL_OK, NULL, "secureBootEnabled=false", "", NULL},
    {"E7a", E7, VBS("0"), CL_OK, NULL, "", "", NULL},
    {"E7b", E7, VBS("-1"), CL_EDENIED, NOPERMIT_MSG, "", "", NULL},
    {"E7c", E7, "vsmReportPresent=true", CL_EDENIED, NOPERMIT_MSG, "", "", NULL},
    {"E8-1", PERMIT_ALL "issuancerules{" E8_1 "};", "OSName=\"Linux\" @Custom\nOSName=\"Linux\"",
     CL_OK, NULL, "", "report_validity_in_minutes=1440", NULL},
    {"E8-1-v12", V12 "issuancerules{" E8_1 E8_2 "};",
     "OSName=\"Linux\" @Custom\nOSName=\"Windows\"\nOSName=\"Linux\"", CL_OK, NULL,
     "OSName=\"Linux\" @Service", "report_validity_in_minutes=1440", NULL},
    {"TPM-rich", TPM_RICH, "TPMW\n", CL_OK, NULL, "", "",
     "out=true\nout=true\nout=3\nout=true\nout=\"{\\\"Seq\\\":2,\\\"Data\\\":\\\"cGs=\\\"}\""},

    /* ---- version gating, keywords, lexical details ---- */
    {"gate-fn-1.1",
     "version=1.1; authorizationrules{=> permit();}; issuancerules{=> issue(type=\"a\", "
     "value=NegateBool(true));};",
     "", CL_EPOLICY,
     "line 1, column 87: function NegateBool requires version 1.2 (the policy declares 1.1)", NULL,
     NULL, NULL},
    {"gate-config-1.1",
     "version=1.1; configurationrules{}; authorizationrules{=> permit();}; issuancerules{};", AZ,
     CL_OK, NULL, "", "", NULL},
    {"config-only-issueproperty",
     "version=1.2; configurationrules{=> add(type=\"a\", value=1);}; authorizationrules{=> "
     "permit();}; issuancerules{};",
     "", CL_EPOLICY,
     "line 1, column 36: add() is not allowed in configurationrules (only in authorizationrules "
     "and issuancerules)",
     NULL, NULL, NULL},
    {"issueproperty-authz",
     "version=1.2; authorizationrules{=> issueproperty(type=\"a\", value=1);}; issuancerules{};",
     "", CL_EPOLICY,
     "line 1, column 36: issueproperty() is not allowed in authorizationrules (only in "
     "configurationrules and issuancerules)",
     NULL, NULL, NULL},
    {"keywords-upper",
     "VERSION=1.2; AUTHORIZATIONRULES{C:[TYPE==\"x-ms-sgx-svn\", VALUE==1, "
     "ISSUER==\"AttestationService\", "
     "VALUETYPE==\"Integer\"] => PERMIT();}; ISSUANCERULES{=> ISSUE(TYPE=\"a\", "
     "VALUE=JMESPATH(\"[1,2]\", \"length(@)\")); => Issue(Type=\"b\", Value=NEGATEBOL(FALSE), "
     "ValueType=\"Boolean\"); => issue(type=\"c\", value=TRUE);};",
     AZ, CL_OK, NULL, "a=\"2\"\nb=true\nc=true", "", NULL},
    {"ident-case-sensitive",
     PERMIT_ALL "issuancerules{c:[type==\"x-ms-sgx-svn\"] => issue(type=\"a\", value=C.value);};",
     "", CL_EPOLICY,
     "line 1, column 112: identifier 'C' is not bound by a condition to its left in this rule",
     NULL, NULL, NULL},
    {"string-escapes",
     PERMIT_ALL "issuancerules{=> issue(type=\"q\", value=\"a\\\"b\\\\c\\d\\n\xC3\xA9\");};", AZ,
     CL_OK, NULL, "q=\"a\\\"b\\\\c\\\\d\\\\n\xC3\xA9\"", "", NULL},
    {"hex-and-extremes",
     PERMIT_ALL
     "issuancerules{=> issue(type=\"a\", value=0x7FFFFFFFFFFFFFFF); => issue(type=\"b\", "
     "value=-9223372036854775808); => issue(type=\"c\", value=-0x10); => "
     "issue(type=\"d\", value=0XaB);};",
     AZ, CL_OK, NULL, "a=9223372036854775807\nb=-9223372036854775808\nc=-16\nd=171", "", NULL},
    {"hex-overflow", PERMIT_ALL "issuancerules{=> issue(type=\"a\", value=0x8000000000000000);};",
     "", CL_EPOLICY, "line 1, column 87: integer literal out of range (signed 64-bit)", NULL, NULL,
     NULL},
    {"dec-overflow", PERMIT_ALL "issuancerules{=> issue(type=\"a\", value=9223372036854775808);};",
     "", CL_EPOLICY, "line 1, column 87: integer literal out of range (signed 64-bit)", NULL, NULL,
     NULL},
    {"empty-hex", PERMIT_ALL "issuancerules{=> issue(type=\"a\", value=0x);};", "", CL_EPOLICY,
     "line 1, column 87: hexadecimal literal needs at least one digit after '0x'", NULL, NULL,
     NULL},

    /* ---- comparisons ---- */
    {"cmp-int",
     PERMIT_ALL
     "issuancerules{[type==\"n\", value<5] => issue(type=\"lt\", value=1); [type==\"n\", "
     "value<=4] => issue(type=\"le\", value=1); [type==\"n\", value>3] => "
     "issue(type=\"gt\", value=1); [type==\"n\", value>=4] => issue(type=\"ge\", "
     "value=1); [type==\"n\", value!=4] => issue(type=\"ne\", value=1); [type==\"n\", "
     "value<4] => issue(type=\"bad\", value=1); [type==\"n\", value!=\"4\"] => "
     "issue(type=\"ne-str\", value=1);};",
     "n=4", CL_OK, NULL, "lt=1\nle=1\ngt=1\nge=1\nne-str=1", "", NULL},
    {"cmp-bool",
     PERMIT_ALL "issuancerules{[type==\"b\", value==true] => issue(type=\"t\", value=1); "
                "[type==\"b\", value!=false] => issue(type=\"nf\", value=1); [type==\"b\", "
                "value>false] => issue(type=\"ord\", value=1); [type==\"b\", value==1] => "
                "issue(type=\"int\", value=1); [type==\"b\", value==\"true\"] => "
                "issue(type=\"str\", value=1);};",
     "b=true", CL_OK, NULL, "t=1\nnf=1", "", NULL},
    {"cmp-string",
     PERMIT_ALL "issuancerules{[type==\"s\", value==\"abc\"] => issue(type=\"eq\", value=1); "
                "[type==\"s\", value==\"ABC\"] => issue(type=\"case\", value=1); [type==\"s\", "
                "value!=\"abd\"] => issue(type=\"ne\", value=1); [type==\"s\", value<\"b\"] => "
                "issue(type=\"ord\", value=1); [type==\"s\", valueType==\"String\", "
                "issuer!=\"CustomClaim\"] => issue(type=\"meta\", value=1);};",
     "s=\"abc\"", CL_OK, NULL, "eq=1\nne=1\nmeta=1", "", NULL},
    {"cmp-type-literal-int", PERMIT_ALL "issuancerules{[type==1] => issue(type=\"a\", value=1);};",
     "", CL_EPOLICY, "line 1, column 69: 'type' is compared with a string, found an integer", NULL,
     NULL, NULL},
    {"type-arg-literal-bool", PERMIT_ALL "issuancerules{=> issue(type=true, value=1);};", "",
     CL_EPOLICY, "line 1, column 76: the claim type must be a string, found a boolean", NULL, NULL,
     NULL},
    {"empty-filter-matches-all",
     PERMIT_ALL "issuancerules{c:[] => issue(type=\"n\", value=c.valueType);};", "a=1\nb=\"x\"",
     CL_OK, NULL, "n=\"Integer\"\nn=\"String\"", "", NULL},

    /* ---- missing claims, multiple claims of one type ---- */
    {"missing-claim",
     PERMIT_ALL "issuancerules{c:[type==\"nope\"] => issue(type=\"a\", value=c.value); => "
                "issue(type=\"b\", value=1);};",
     AZ, CL_OK, NULL, "b=1", "", NULL},
    {"multi-any",
     PERMIT_ALL "issuancerules{[type==\"tag\", value==\"b\"] => issue(type=\"has-b\", value=true); "
                "[type==\"tag\", value==\"z\"] => issue(type=\"has-z\", value=true);};",
     "tag=\"a\"\ntag=\"b\"", CL_OK, NULL, "has-b=true", "", NULL},
    {"multi-set-rhs",
     PERMIT_ALL "issuancerules{c:[type==\"allowed\"] && d:[type==\"tag\", value==c.value] => "
                "issue(type=\"ok\", value=d.value);};",
     "allowed=\"x\"\nallowed=\"b\"\ntag=\"a\"\ntag=\"b\"\ntag=\"x\"", CL_OK, NULL,
     "ok=\"b\"\nok=\"x\"", "", NULL},
    {"multi-action-once",
     PERMIT_ALL "issuancerules{[type==\"tag\"] => issue(type=\"once\", value=1);};",
     "tag=\"a\"\ntag=\"b\"\ntag=\"c\"", CL_OK, NULL, "once=1", "", NULL},
    {"multi-claim-copy", PERMIT_ALL "issuancerules{c:[type==\"tag\"] => issue(claim=c);};",
     "tag=\"a\" @Custom\ntag=\"b\"", CL_OK, NULL, "tag=\"a\" @Custom\ntag=\"b\" @Service", "",
     NULL},
    {"set-to-type-error",
     PERMIT_ALL "issuancerules{c:[type==\"tag\"] => issue(type=c.value, value=1);};",
     "tag=\"a\"\ntag=\"b\"", CL_EFORMAT,
     "line 1, column 81: issue: the claim type must be a String, got a Set", NULL, NULL, NULL},

    /* ---- deny / permit ordering, sections ---- */
    {"permit-then-deny",
     "version=1.0; authorizationrules{=> permit(); => deny();}; issuancerules{};", AZ, CL_EDENIED,
     DENY_MSG, NULL, NULL, NULL},
    {"deny-stops-authz",
     "version=1.0; authorizationrules{=> deny(); => add(type=\"after\", value=1);}; "
     "issuancerules{};",
     AZ, CL_EDENIED, DENY_MSG, "", NULL, NULL},
    {"no-rules", "version=1.0; authorizationrules{}; issuancerules{};", AZ, CL_EDENIED,
     NOPERMIT_MSG, NULL, NULL, NULL},
    {"denied-skips-issuance",
     "version=1.0; authorizationrules{}; issuancerules{=> issue(type=\"a\", value=1);};", AZ,
     CL_EDENIED, NOPERMIT_MSG, "", NULL, NULL},
    {"authz-sees-config",
     "version=1.1; configurationrules{=> issueproperty(type=\"mode\", value=\"x\");}; "
     "authorizationrules{[type==\"mode\", issuer==\"AttestationPolicy\"] => permit();}; "
     "issuancerules{};",
     "", CL_OK, NULL, "", "mode=\"x\"", NULL},

    /* ---- valueType, properties, read-only ---- */
    {"valuetype-ok",
     PERMIT_ALL "issuancerules{=> issue(valueType=\"Integer\", value=3, type=\"a\");};", AZ, CL_OK,
     NULL, "a=3", "", NULL},
    {"valuetype-mismatch",
     PERMIT_ALL "issuancerules{=> issue(type=\"a\", value=3, valueType=\"String\");};", AZ,
     CL_EFORMAT,
     "line 1, column 65: issue: valueType \"String\" does not match the value's type Integer", NULL,
     NULL, NULL},
    {"property-range",
     PERMIT_ALL "issuancerules{=> issueproperty(type=\"report_validity_in_minutes\", value=0);};",
     AZ, CL_EFORMAT,
     "line 1, column 65: issueproperty: report_validity_in_minutes must be an Integer from 1 to "
     "525600",
     NULL, NULL, NULL},
    {"property-type", PERMIT_ALL "issuancerules{=> issueproperty(type=\"omit_x5c\", value=1);};",
     AZ, CL_EFORMAT, "line 1, column 65: issueproperty: omit_x5c must be a Boolean", NULL, NULL,
     NULL},
    {"property-last-wins-unknown-kept",
     PERMIT_ALL "issuancerules{=> issueproperty(type=\"omit_x5c\", value=true); => "
                "issueproperty(type=\"omit_x5c\", value=false); => issueproperty(type=\"custom\", "
                "value=\"x\");};",
     AZ, CL_OK, NULL, "", "omit_x5c=true\nomit_x5c=false\ncustom=\"x\"", NULL},
    {"readonly-add-copy",
     V12 "issuancerules{c:[type==\"events\"] => add(claim=c); c:[type==\"pcrs\"] => "
         "add(type=\"rp\", value=c.value);};",
     "TPM\n", CL_OK, NULL, "", "", NULL},
    {"readonly-negate-propagates",
     V12 "issuancerules{c:[type==\"pcrs\"] => add(type=\"b\", "
         "value=JsonToClaimValue(JmesPath(c.value, \"length(PCRs) == `3`\"))); c:[type==\"b\"] => "
         "add(type=\"nb\", value=NegateBool(c.value)); c:[type==\"b\"] => add(type=\"s\", "
         "value=IsSubsetOf(c.value, c.value)); c:[type==\"s\"] => issue(type=\"s\", "
         "value=c.value); c:[type==\"nb\"] => issue(type=\"nb\", value=c.value);};",
     "TPM\n", CL_EFORMAT,
     "line 1, column 358: issue: the value of 'nb' is derived from a read-only claim and cannot "
     "be issued",
     NULL, NULL, NULL},

    /* ---- other function errors ---- */
    {"jmespath-bad-query",
     V12 "issuancerules{=> add(type=\"a\", value=JmesPath(\"{}\", \"a[\"));};", AZ, CL_EFORMAT,
     "line 1, column 85: JmesPath: JMESPath column 3: expected an index, a slice or '*' after '[', "
     "found end of expression",
     NULL, NULL, NULL},
    {"jmespath-bad-json", V12 "issuancerules{=> add(type=\"a\", value=JmesPath(\"{x\", \"a\"));};",
     AZ, CL_EFORMAT, "^line 1, column 85: JmesPath: invalid JSON at line 1", NULL, NULL, NULL},
    {"jmespath-empty", V12 "issuancerules{=> add(type=\"a\", value=JmesPath(\"\", \"a\"));};", AZ,
     CL_EFORMAT, "line 1, column 85: JmesPath: the JSON document (argument 1) is empty", NULL, NULL,
     NULL},
    {"jmespath-unknown-fn",
     V12 "issuancerules{=> add(type=\"a\", value=JmesPath(\"[1]\", \"frob(@)\"));};", AZ,
     CL_EFORMAT, "line 1, column 85: JmesPath: JMESPath column 1: unknown function frob()", NULL,
     NULL, NULL},
    {"jmespath-set-arg",
     V12 "issuancerules{c:[type==\"tag\"] => add(type=\"a\", value=JmesPath(c.value, \"a\"));};",
     "tag=\"{}\"\ntag=\"{}\"", CL_EFORMAT,
     "line 1, column 101: JmesPath: argument 1 must be a String, got a Set", NULL, NULL, NULL},
    {"json-nested-array",
     V12 "issuancerules{=> add(type=\"a\", value=JsonToClaimValue(\"[[1]]\"));};", AZ, CL_EFORMAT,
     "line 1, column 85: JsonToClaimValue: a nested JSON array cannot become a claim value", NULL,
     NULL, NULL},
    {"json-array-nulls-integral",
     V12 "issuancerules{=> issue(type=\"a\", value=JsonToClaimValue(\"[null, 2.0, null, "
         "\\\"s\\\"]\"));};",
     AZ, CL_OK, NULL, "a=2\na=\"s\"", "", NULL},
    {"append-type-error", V12 "issuancerules{=> add(type=\"a\", value=AppendString(\"x\", 1));};",
     AZ, CL_EFORMAT, "line 1, column 85: AppendString: argument 2 must be a String, got an Integer",
     NULL, NULL, NULL},
    {"containsonly-set-arg",
     V12 "issuancerules{c:[type==\"t\"] => add(type=\"a\", value=ContainsOnlyValue(1, c.value));};",
     "t=1\nt=2", CL_EFORMAT,
     "line 1, column 99: ContainsOnlyValue: argument 2 must be a single value, got a Set", NULL,
     NULL, NULL},
    {"arity", V12 "issuancerules{=> add(type=\"a\", value=JmesPath(\"{}\"));};", "", CL_EPOLICY,
     "line 1, column 85: JmesPath takes 2 arguments, got 1", NULL, NULL, NULL},
};

/* ---- malformed policies: exact messages with positions ----------------------------------------
 */

typedef struct {
    const char *policy;
    const char *err;
} bad_case;

static const bad_case BAD[] = {
    {"", "line 1, column 1: expected 'version', found end of input"},
    {"versio=1.0;", "line 1, column 1: expected 'version', found 'versio'"},
    {"version=1;", "line 1, column 9: expected a version number (1.0, 1.1 or 1.2), found '1'"},
    {"version=1.0;\nauthorizationrules{=> permit();};\nissuancerules{=> issue(type=\"a\" "
     "value=1);};",
     "line 3, column 33: expected ',' or ')', found 'value'"},
    {"version=1.0;\nauthorizationrules{\n  [type==\"a\"] => permit();\n  [type=\"b\" => "
     "permit();\n};"
     "\nissuancerules{};",
     "line 4, column 13: expected ',' or ']', found '=>'"},
    {"version=1.0;\nauthorizationrules{=> permit();};\nissuancerules{=> issue(type=\"a\", "
     "value=1)\n=> issue(type=\"b\", value=2);};",
     "line 4, column 1: expected ';' or '}' after a rule, found '=>'"},
    {"version=1.0;\r\nauthorizationrules{\r\n\t=> permit();\r\n};\r\nissuancerules{\r\n\tc:[type "
     "== \"x\"] => issue(type=\"y\", value=c.val);\r\n};",
     "line 6, column 45: expected 'type', 'value', 'issuer' or 'valueType', found 'val'"},
    {"version=1.0; authorizationrules{=> permit();}; issuancerules{c:[type==\"a\"] && "
     "c:[type==\"b\"] => issue(claim=c);};",
     "line 1, column 79: identifier 'c' is already bound in this rule"},
    {"version=1.2; authorizationrules{=> permit();}; issuancerules{c:![type==\"a\"] => "
     "issue(type=\"b\", value=1);};",
     "line 1, column 64: a negated condition cannot bind an identifier"},
    {"version=1.0; authorizationrules{=> permit();}; issuancerules{c:[type==\"a\", value==c.value] "
     "=> issue(type=\"b\", value=1);};",
     "line 1, column 83: identifier 'c' is not bound by a condition to its left in this rule"},
    {"version=1.0; authorizationrules{=> permit();}; issuancerules{=> issue(type=\"a\");};",
     "line 1, column 79: issue() needs a 'value' argument"},
    {"version=1.0; authorizationrules{=> permit();}; issuancerules{=> issue(type=\"a\", value=1, "
     "type=\"b\");};",
     "line 1, column 90: duplicate 'type' argument"},
    {"version=1.0; authorizationrules{=> permit();}; issuancerules{=> issue(type=\"a\", "
     "value=1.5);};",
     "line 1, column 87: expected an expression (string, integer, true, false, x.property or a "
     "function call), found '1.5'"},
    {"version=1.0; authorizationrules{=> permit();}; issuancerules{=> issue(type=\"a\", "
     "value=\"unterminated);};",
     "line 1, column 87: unterminated string literal"},
    {"version=1.0; authorizationrules{=> permit();}; issuancerules{[type==\"a\"] & [type==\"b\"] "
     "=> issue(type=\"a\", value=1);};",
     "line 1, column 74: unexpected character '&' (the conjunction is '&&')"},
    {"version=1.0; authorizationrules{=> permit();}; issuancerules{};\nextra",
     "line 2, column 1: expected end of input, found 'extra'"},
    {"version=1.0; authorizationrules{=> permit();}; issuancerules{} ",
     "line 1, column 64: expected ';' after the section, found end of input"},
    {"version=1.0; issuancerules{}; authorizationrules{=> permit();};",
     "line 1, column 14: expected 'authorizationrules', found 'issuancerules'"},
    {"version=1.2; authorizationrules{=> permit();}; issuancerules{}; issuancerules{};",
     "line 1, column 65: expected end of input, found 'issuancerules'"},
    {"version=1.0; authorizationrules{=> permit();}; issuancerules{=> "
     "issue(type=\"\xC3\xA9\xC3\xA9\", "
     "value=permit);};",
     "line 1, column 88: expected an expression (string, integer, true, false, x.property or a "
     "function call), found 'permit'"},
    {"version=1.0; authorizationrules{=> permit();}; issuancerules{;};",
     "line 1, column 62: expected a condition or '=>', found ';'"},
    {"version=1.0; authorizationrules{=> permit();}; issuancerules{permit:[] => "
     "issue(type=\"a\", value=1);};",
     "line 1, column 62: expected a condition or '=>', found 'permit'"},
    {"version=1.0; authorizationrules{=> permit();}; issuancerules{c[type==\"a\"] => "
     "issue(type=\"a\", value=1);};",
     "line 1, column 63: expected ':' after the identifier, found '['"},
    {"version=1.0; authorizationrules{=> permit();}; issuancerules{=> issue(claim=d);};",
     "line 1, column 77: identifier 'd' is not bound by a condition of this rule"},
    {"version=1.0; authorizationrules{=> permit();}; issuancerules{[type==\"a\"] => "
     "frob(type=\"a\", value=1);};",
     "line 1, column 77: expected an action (permit, deny, add, issue or issueproperty), found "
     "'frob'"},
    {"version=1.0; authorizationrules{=> permit();}; issuancerules{/* c */};",
     "line 1, column 62: unexpected character '/'"},
};

/* ---- runners ------------------------------------------------------------------------------------
 */

static void check_err(const char *id, const char *want, const char *got)
{
    if (want == NULL)
        return;
    int ok;
    if (want[0] == '^')
        ok = strncmp(got, want + 1, strlen(want + 1)) == 0;
    else if (want[0] == '~')
        ok = strstr(got, want + 1) != NULL;
    else
        ok = strcmp(got, want) == 0;
    if (!ok)
        fail_msg("%s: error message\n  got:  %s\n  want: %s", id, got, want);
}

static void run_case(const pcase *c)
{
    cl_policy *p = NULL;
    char err[512] = "";
    int rc = cl_policy_parse(c->policy, strlen(c->policy), &p, err, sizeof err);
    if (c->rc == CL_EPOLICY) {
        if (rc != CL_EPOLICY)
            fail_msg("%s: parse returned %d (%s), want CL_EPOLICY", c->id, rc, err);
        check_err(c->id, c->err, err);
        assert_null(p);
        return;
    }
    if (rc != CL_OK)
        fail_msg("%s: parse failed: %d %s", c->id, rc, err);
    cl_claimset in;
    build_set(&in, c->claims);
    cl_policy_result res;
    err[0] = '\0';
    rc = cl_policy_evaluate(p, &in, &res, err, sizeof err);
    if (rc != c->rc)
        fail_msg("%s: evaluate returned %s (%s), want %s", c->id, cl_errname(rc), err,
                 cl_errname(c->rc));
    if (rc != CL_OK)
        check_err(c->id, c->err, err);
    else if (err[0] != '\0')
        fail_msg("%s: message on success: %s", c->id, err);
    if (c->out && strcmp(render(&res.outgoing), c->out) != 0)
        fail_msg("%s: outgoing\n  got:\n%s\n  want:\n%s", c->id, render(&res.outgoing), c->out);
    if (c->prop && strcmp(render(&res.property), c->prop) != 0)
        fail_msg("%s: property\n  got:\n%s\n  want:\n%s", c->id, render(&res.property), c->prop);
    if (c->in) {
        const char *all = render(&in);
        const char *hit = strstr(all, c->in);
        size_t l = strlen(c->in);
        if (hit == NULL || (hit != all && hit[-1] != '\n') ||
            (hit[l] != '\0' && hit[l] != '\n' && hit[l] != ' '))
            fail_msg("%s: incoming lacks\n%s\n  incoming:\n%s", c->id, c->in, all);
    }
    cl_policy_result_free(&res);
    cl_claimset_free(&in);
    cl_policy_free(p);
}

static void test_table(void **state)
{
    (void)state;
    size_t n = sizeof CASES / sizeof CASES[0];
    assert_true(n >= 60);
    for (size_t i = 0; i < n; i++)
        run_case(&CASES[i]);
}

static void test_malformed_positions(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        cl_policy *p = NULL;
        char err[512] = "";
        int rc = cl_policy_parse(BAD[i].policy, strlen(BAD[i].policy), &p, err, sizeof err);
        if (rc != CL_EPOLICY)
            fail_msg("BAD[%zu]: returned %d, want CL_EPOLICY", i, rc);
        assert_null(p);
        char id[32];
        snprintf(id, sizeof id, "BAD[%zu]", i);
        check_err(id, BAD[i].err, err);
    }
}

/* Parsing and evaluating the same text must agree with the §9 expectation for T44-like rules
 * whatever comments are inserted: T45 is compared with its comment-free twin. */
static void test_comments_equivalent(void **state)
{
    (void)state;
    const char *a = "version=1.2;authorizationrules{=>permit();};issuancerules{=>issue(type=\"a\","
                    "value=NegateBool(false));c:[type==\"a\"]=>issue(type=\"b\",value=c.value);};";
    const pcase *t45 = NULL;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++)
        if (strcmp(CASES[i].id, "T45") == 0)
            t45 = &CASES[i];
    assert_non_null(t45);
    pcase twin = *t45;
    twin.id = "T45-twin";
    twin.policy = a;
    run_case(&twin);
}

static void test_default_sgx_policy(void **state)
{
    (void)state;
    cl_policy *p = NULL;
    char err[256];
    assert_int_equal(cl_policy_parse(DEFAULT_SGX, strlen(DEFAULT_SGX), &p, err, sizeof err), CL_OK);
    assert_int_equal(cl_policy_version(p), 10);
    assert_int_equal(cl_policy_rule_count(p, 0), 0);
    assert_int_equal(cl_policy_rule_count(p, 1), 1);
    assert_int_equal(cl_policy_rule_count(p, 2), 6);
    cl_claimset in;
    build_set(&in, AZ);
    size_t before = in.n;
    cl_policy_result res;
    assert_int_equal(cl_policy_evaluate(p, &in, &res, err, sizeof err), CL_OK);
    assert_string_equal(render(&res.outgoing), SIX_LEGACY);
    /* issue() also adds to the incoming set */
    assert_int_equal(in.n, before + 6);
    for (size_t i = 0; i < res.outgoing.n; i++) {
        assert_int_equal(res.outgoing.v[i].issuer, CL_CI_POLICY);
        assert_int_equal(res.outgoing.v[i].readonly, 0);
    }
    cl_policy_result_free(&res);
    cl_claimset_free(&in);
    cl_policy_free(p);
}

static void test_versions(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int version;
    } v[] = {
        {"version=1.0; authorizationrules{}; issuancerules{};", 10},
        {"version = 1.1 ; authorizationrules { } ; issuancerules { } ;", 11},
        {"VeRsIoN=1.2;authorizationrules{};issuancerules{};", 12},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        cl_policy *p = NULL;
        char err[256];
        assert_int_equal(cl_policy_parse(v[i].text, strlen(v[i].text), &p, err, sizeof err), CL_OK);
        assert_int_equal(cl_policy_version(p), v[i].version);
        cl_policy_free(p);
    }
}

static void test_settings(void **state)
{
    (void)state;
    cl_policy *p = NULL;
    char err[256];
    cl_policy_result res;
    cl_policy_settings s;
    /* defaults */
    memset(&res, 0, sizeof res);
    cl_policy_settings_get(&res, &s);
    assert_int_equal(s.report_validity_in_minutes, 480);
    assert_int_equal(s.omit_x5c, 0);
    assert_int_equal(s.require_valid_aik_cert, 1);
    assert_int_equal(s.required_pcr_mask, 0xFFFFFF);

    assert_int_equal(cl_policy_parse(E5, strlen(E5), &p, err, sizeof err), CL_OK);
    cl_claimset in;
    build_set(&in, TPM_FLAGS("true", "true"));
    /* configure only: the incoming set is not touched */
    size_t before = in.n;
    assert_int_equal(cl_policy_configure(p, &in, &res, err, sizeof err), CL_OK);
    assert_int_equal(in.n, before);
    assert_int_equal(res.outgoing.n, 0);
    cl_policy_settings_get(&res, &s);
    assert_int_equal(s.required_pcr_mask, 15);
    assert_int_equal(s.require_valid_aik_cert, 0);
    const cl_claim *c = cl_policy_property(&res, "required_pcr_mask");
    assert_non_null(c);
    assert_int_equal(c->vt, CL_CV_INTEGER);
    assert_null(cl_policy_property(&res, "omit_x5c"));
    cl_policy_result_free(&res);

    assert_int_equal(cl_policy_evaluate(p, &in, &res, err, sizeof err), CL_OK);
    cl_policy_settings_get(&res, &s);
    assert_int_equal(s.required_pcr_mask, 15);
    assert_int_equal(s.report_validity_in_minutes, 480);
    cl_policy_result_free(&res);
    cl_claimset_free(&in);
    cl_policy_free(p);

    const char *t =
        PERMIT_ALL "issuancerules{=> issueproperty(type=\"report_validity_in_minutes\", "
                   "value=60); => issueproperty(type=\"report_validity_in_minutes\", "
                   "value=90);};";
    assert_int_equal(cl_policy_parse(t, strlen(t), &p, err, sizeof err), CL_OK);
    build_set(&in, AZ);
    assert_int_equal(cl_policy_evaluate(p, &in, &res, err, sizeof err), CL_OK);
    cl_policy_settings_get(&res, &s);
    assert_int_equal(s.report_validity_in_minutes, 90);
    cl_policy_result_free(&res);
    cl_claimset_free(&in);
    cl_policy_free(p);
}

static char *repeat_text(const char *head, const char *unit, size_t n, const char *mid,
                         const char *unit2, const char *tail)
{
    size_t len = strlen(head) + n * (strlen(unit) + strlen(unit2)) + strlen(mid) + strlen(tail) + 1;
    char *s = malloc(len);
    assert_non_null(s);
    size_t o = 0;
#define PUT(x)                                                                                     \
    do {                                                                                           \
        size_t l_ = strlen(x);                                                                     \
        memcpy(s + o, x, l_);                                                                      \
        o += l_;                                                                                   \
    } while (0)
    PUT(head);
    for (size_t i = 0; i < n; i++)
        PUT(unit);
    PUT(mid);
    for (size_t i = 0; i < n; i++)
        PUT(unit2);
    PUT(tail);
#undef PUT
    s[o] = '\0';
    return s;
}

static void test_limits_parse(void **state)
{
    (void)state;
    char err[256];
    cl_policy *p = NULL;
    /* 16 nested calls are fine, 17 are not */
    char *ok = repeat_text(V12 "issuancerules{=> issue(type=\"a\", value=", "NegateBool(", 16,
                           "true", ")", ");};");
    assert_int_equal(cl_policy_parse(ok, strlen(ok), &p, err, sizeof err), CL_OK);
    cl_claimset in;
    cl_policy_result res;
    build_set(&in, "");
    assert_int_equal(cl_policy_evaluate(p, &in, &res, err, sizeof err), CL_OK);
    assert_string_equal(render(&res.outgoing), "a=true");
    cl_policy_result_free(&res);
    cl_claimset_free(&in);
    cl_policy_free(p);
    free(ok);
    char *deep = repeat_text(V12 "issuancerules{=> issue(type=\"a\", value=", "NegateBool(", 17,
                             "true", ")", ");};");
    assert_int_equal(cl_policy_parse(deep, strlen(deep), &p, err, sizeof err), CL_EPOLICY);
    assert_string_equal(err, "line 1, column 263: function calls nested deeper than 16 levels");
    free(deep);
    /* hostile nesting far beyond the limit: clean error, no stack overflow */
    char *huge = repeat_text(V12 "issuancerules{=> issue(type=\"a\", value=", "NegateBool(", 5000,
                             "true", ")", ");};");
    assert_int_equal(cl_policy_parse(huge, strlen(huge), &p, err, sizeof err), CL_EPOLICY);
    assert_string_equal(err, "line 1, column 263: function calls nested deeper than 16 levels");
    free(huge);
    char *brackets = repeat_text(V12 "issuancerules{", "[", 30000, "", "]", "=> permit();};");
    assert_int_equal(cl_policy_parse(brackets, strlen(brackets), &p, err, sizeof err), CL_EPOLICY);
    assert_string_equal(err, "line 1, column 63: expected 'type', 'value', 'issuer' or "
                             "'valueType', found '['");
    free(brackets);
    /* size limit */
    char *big =
        repeat_text(V12 "issuancerules{", "=> issue(type=\"a\", value=1);", 2500, "", "", "};");
    assert_true(strlen(big) > CL_POLICY_MAX_TEXT);
    assert_int_equal(cl_policy_parse(big, strlen(big), &p, err, sizeof err), CL_EPOLICY);
    assert_string_equal(err, "line 1, column 1: policy text is 70063 bytes, the limit is 65536");
    free(big);
    /* rule-count limit, over all sections: permit() is rule 1, so the 1024th issuance rule
     * (offset 61 + 1023 * 24) is the first one too many */
    char *many =
        repeat_text(V12 "issuancerules{", "=>add(type=\"a\",value=1);", 1025, "", "", "};");
    assert_true(strlen(many) <= CL_POLICY_MAX_TEXT);
    assert_int_equal(cl_policy_parse(many, strlen(many), &p, err, sizeof err), CL_EPOLICY);
    assert_string_equal(err, "line 1, column 24614: too many rules (the limit is 1024)");
    free(many);
}

static void test_non_utf8(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *err;
    } v[] = {
        {"version=1.0;\nauthorizationrules{=> permit();};\nissuancerules{=> "
         "issue(type=\"\xE2\x82\xAC"
         "\xFF\", value=1);};",
         "line 3, column 31: invalid UTF-8 (byte 0xFF)"},
        {"version=1.0; // \xC0\xAF overlong\nauthorizationrules{};issuancerules{};",
         "line 1, column 17: invalid UTF-8 (byte 0xC0)"},
        {"version=1.0; \"\xED\xA0\x80\" ", "line 1, column 15: invalid UTF-8 (byte 0xED)"},
        {"version=1.0;\n\n  \xE2\x82", "line 3, column 3: invalid UTF-8 (byte 0xE2)"},
        {"version=1.0;\xF4\x90\x80\x80", "line 1, column 13: invalid UTF-8 (byte 0xF4)"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        cl_policy *p = NULL;
        char err[256];
        assert_int_equal(cl_policy_parse(v[i].text, strlen(v[i].text), &p, err, sizeof err),
                         CL_EPOLICY);
        assert_string_equal(err, v[i].err);
    }
    /* embedded NUL */
    const char nul[] = "version=1.0; authorizationrules{=> permit();}; issuancerules{=> "
                       "issue(type=\"a\0b\", value=1);};";
    cl_policy *p = NULL;
    char err[256];
    assert_int_equal(cl_policy_parse(nul, sizeof nul - 1, &p, err, sizeof err), CL_EPOLICY);
    assert_string_equal(err, "line 1, column 78: NUL character in policy text");
    /* a NULL text of length 0 parses as empty input */
    assert_int_equal(cl_policy_parse(NULL, 0, &p, err, sizeof err), CL_EPOLICY);
    assert_int_equal(cl_policy_parse(NULL, 5, &p, err, sizeof err), CL_EINVAL);
}

static void eval_expect(const char *policy, const char *claims, int want_rc, const char *want_err)
{
    cl_policy *p = NULL;
    char err[512];
    if (cl_policy_parse(policy, strlen(policy), &p, err, sizeof err) != CL_OK)
        fail_msg("parse: %s", err);
    cl_claimset in;
    build_set(&in, claims);
    cl_policy_result res;
    int rc = cl_policy_evaluate(p, &in, &res, err, sizeof err);
    if (rc != want_rc)
        fail_msg("evaluate returned %s (%s)", cl_errname(rc), err);
    if (want_err)
        check_err("eval", want_err, err);
    assert_true(in.n <= CL_POLICY_MAX_CLAIMS);
    cl_policy_result_free(&res);
    cl_claimset_free(&in);
    cl_policy_free(p);
}

static void test_limits_eval(void **state)
{
    (void)state;
    /* claim growth: each rule doubles the number of "x" claims; the 17th would pass 100000 */
    char *dbl = repeat_text(PERMIT_ALL "issuancerules{",
                            "c:[type==\"x\"] => add(type=\"x\", "
                            "value=c.value);",
                            20, "", "", "};");
    eval_expect(dbl, "x=1", CL_EFORMAT, "~add: the incoming claim set would exceed 100000 claims");
    free(dbl);
    /* bytes: each rule doubles a string; 10 MiB of intermediate data is the cap */
    char rules[64 * 1024];
    size_t o = (size_t)snprintf(rules, sizeof rules, "%s", V12 "issuancerules{");
    for (int i = 0; i < 30; i++)
        o += (size_t)snprintf(rules + o, sizeof rules - o,
                              "c:[type==\"s%d\"] => add(type=\"s%d\", value=AppendString(c.value, "
                              "c.value));",
                              i, i + 1);
    snprintf(rules + o, sizeof rules - o, "};");
    eval_expect(rules, "s0=\"abcdefgh\"", CL_EFORMAT,
                "~evaluation exceeds its limit of intermediate data");
    /* JMESPath work: nested projections over a modest document explode combinatorially */
    const char *explode =
        V12 "issuancerules{=> add(type=\"a\", value=JmesPath(\"[[0,1,2,3,4,5,6,7,8,9],"
            "[0,1,2,3,4,5,6,7,8,9]]\", \"[*].[@,@,@,@,@,@,@,@] | [*].[@,@,@,@,@,@,@,@] | "
            "[*].[@,@,@,@,@,@,@,@] | [*].[@,@,@,@,@,@,@,@] | [*].[@,@,@,@,@,@,@,@] | "
            "[*].[@,@,@,@,@,@,@,@] | [*].[@,@,@,@,@,@,@,@] | [*].[@,@,@,@,@,@,@,@] | "
            "[*].[@,@,@,@,@,@,@,@] | [*].[@,@,@,@,@,@,@,@] | [*].[@,@,@,@,@,@,@,@]\"));};";
    eval_expect(explode, "", CL_EFORMAT,
                "line 1, column 85: JmesPath: evaluation exceeds its limit of intermediate data");
    /* flattening really copies: 8^8 elements would be needed, the step budget stops it */
    const char *steps = V12 "issuancerules{=> add(type=\"a\", value=JmesPath(\"[1]\", "
                            "\"[@,@,@,@,@,@,@,@][] | [@,@,@,@,@,@,@,@][] | [@,@,@,@,@,@,@,@][] | "
                            "[@,@,@,@,@,@,@,@][] | [@,@,@,@,@,@,@,@][] | [@,@,@,@,@,@,@,@][] | "
                            "[@,@,@,@,@,@,@,@][] | [@,@,@,@,@,@,@,@][] | length(@)\"));};";
    eval_expect(steps, "", CL_EFORMAT,
                "line 1, column 85: JmesPath: evaluation exceeds its work limit");
    /* 6 levels (2^18 elements, about 3 steps each) stay within it */
    const char *steps6 = V12 "issuancerules{=> issue(type=\"a\", value=JmesPath(\"[1]\", "
                             "\"[@,@,@,@,@,@,@,@][] | [@,@,@,@,@,@,@,@][] | [@,@,@,@,@,@,@,@][] | "
                             "[@,@,@,@,@,@,@,@][] | [@,@,@,@,@,@,@,@][] | [@,@,@,@,@,@,@,@][] | "
                             "length(@)\"));};";
    eval_expect(steps6, "", CL_OK, NULL);
    /* shared sub-structures cannot make serialisation explode either */
    const char *share = V12 "issuancerules{=> add(type=\"a\", value=JmesPath(\"[1]\", "
                            "\"[@,@] | [@,@] | [@,@] | [@,@] | [@,@] | [@,@] | [@,@] | [@,@] | "
                            "[@,@] | [@,@] | [@,@] | [@,@] | [@,@] | [@,@] | [@,@] | [@,@] | "
                            "[@,@] | [@,@] | [@,@] | [@,@] | [@,@] | [@,@] | [@,@] | [@,@] | "
                            "[@,@] | [@,@] | [@,@] | [@,@] | [@,@] | [@,@] | [@,@] | [@,@]\"));};";
    eval_expect(share, "", CL_EFORMAT,
                "line 1, column 85: JmesPath: evaluation exceeds its limit of intermediate data");
    /* JMESPath nesting depth */
    char *parens = repeat_text(V12 "issuancerules{=> add(type=\"a\", value=JmesPath(\"[1]\", \"",
                               "(", 5000, "@", ")", "\"));};");
    eval_expect(parens, "", CL_EFORMAT, "~expression nested deeper than 64 levels");
    free(parens);
    char *dots = repeat_text(V12 "issuancerules{=> add(type=\"a\", value=JmesPath(\"{}\", \"a",
                             ".a", 3000, "", "", "\"));};");
    eval_expect(dots, "", CL_EFORMAT, "~expression nested deeper than 64 levels");
    free(dots);
    /* A condition compares every incoming claim with every value of its tests' right-hand sides:
     * that work counts too, claim by claim. 2^16 claims "b" made 2^11 claims "a" of value 1 and
     * one of value 2; c is bound to those, and each "value==c.value" is a set of 2049 values that
     * every one of the 67 585 claims is compared with. Ten of them ran 3.5 s of CPU (forty: 13.6 s)
     * without an error, the 1 s deadline unseen; the work limit now stops them at once. */
    char work[8192];
    o = (size_t)snprintf(work, sizeof work,
                         "version=1.0; authorizationrules{=> add(type=\"b\", "
                         "value=2);");
    for (int i = 0; i < 16; i++)
        o += (size_t)snprintf(work + o, sizeof work - o, "c:[type==\"b\"] => add(claim=c);");
    o += (size_t)snprintf(work + o, sizeof work - o, "=> add(type=\"a\", value=1);");
    for (int i = 0; i < 11; i++)
        o += (size_t)snprintf(work + o, sizeof work - o, "c:[type==\"a\"] => add(claim=c);");
    o += (size_t)snprintf(work + o, sizeof work - o,
                          "=> add(type=\"a\", value=2); c:[type==\"a\"] && [");
    for (int i = 0; i < 10; i++)
        o += (size_t)snprintf(work + o, sizeof work - o, "value==c.value, ");
    snprintf(work + o, sizeof work - o,
             "type==\"never\"] => permit(); => permit();}; issuancerules{};");
    eval_expect(work, "", CL_EFORMAT, "~evaluation exceeds its work limit");
    /* Each reference to a binding copies its claims' values, and a binding is held to its rule's
     * end: intermediate data. 1150 references to 4096 bound claims held 190 MB (the work limit
     * alone allows 5M values of 40 bytes); the 10 MiB cap now stops them. */
    char *mem = malloc(32 * 1024);
    assert_non_null(mem);
    o = (size_t)snprintf(mem, 32 * 1024,
                         "version=1.0; authorizationrules{=> add(type=\"a\", value=1);");
    for (int i = 0; i < 12; i++)
        o += (size_t)snprintf(mem + o, 32 * 1024 - o, "c:[type==\"a\"] => add(claim=c);");
    o += (size_t)snprintf(mem + o, 32 * 1024 - o, "c:[type==\"a\"] && [");
    for (int i = 0; i < 1150; i++)
        o += (size_t)snprintf(mem + o, 32 * 1024 - o, "value==c.value, ");
    snprintf(mem + o, 32 * 1024 - o,
             "type==\"never\"] => permit(); => permit();}; issuancerules{};");
    eval_expect(mem, "", CL_EFORMAT, "~evaluation exceeds its limit of intermediate data");
    free(mem);
}

/* ---- JMESPath engine ----------------------------------------------------------------------------
 */

typedef struct {
    const char *doc, *query, *want; /* want NULL: error expected */
} jcase;

static const jcase JCASES[] = {
    {"{\"a\":{\"b\":{\"c\":1}}}", "a.b.c", "1"},
    {"{\"a\":1}", "b", "null"},
    {"{\"a\":[1,2,3]}", "a[0]", "1"},
    {"{\"a\":[1,2,3]}", "a[-1]", "3"},
    {"{\"a\":[1,2,3]}", "a[5]", "null"},
    {"[0,1,2,3,4,5,6,7,8,9]", "[2:5]", "[2,3,4]"},
    {"[0,1,2,3,4,5,6,7,8,9]", "[::3]", "[0,3,6,9]"},
    {"[0,1,2,3,4,5,6,7,8,9]", "[::-4]", "[9,5,1]"},
    {"[0,1,2,3,4,5,6,7,8,9]", "[-3:]", "[7,8,9]"},
    {"[0,1,2]", "[5:1:-1]", "[2]"},
    {"{\"people\":[{\"n\":\"a\",\"age\":30},{\"n\":\"b\"},{\"n\":\"c\",\"age\":20}]}",
     "people[*].age", "[30,20]"},
    {"{\"o\":{\"x\":{\"v\":1},\"y\":{\"v\":2},\"z\":3}}", "o.*.v", "[1,2]"},
    {"[[1,2],[3,[4]],5]", "[]", "[1,2,3,[4],5]"},
    {"[[1,2],[3,[4]],5]", "[][]", "[1,2,3,4,5]"},
    {"{\"e\":[{\"t\":\"x\",\"v\":1},{\"t\":\"y\",\"v\":2},{\"t\":\"x\",\"v\":3}]}",
     "e[?t == 'x'].v", "[1,3]"},
    {"{\"e\":[{\"t\":\"x\",\"v\":1},{\"t\":\"y\",\"v\":2},{\"t\":\"x\",\"v\":3}]}",
     "e[?t == 'x' && v > `1`].v | [0]", "3"},
    {"{\"e\":[{\"t\":\"x\",\"v\":1},{\"t\":\"y\",\"v\":2}]}", "e[?!(t == 'x') || v == `1`].t",
     "[\"x\",\"y\"]"},
    {"{\"e\":[{\"v\":1},{\"v\":\"1\"},{\"v\":1.0}]}", "e[?v == `1`]", "[{\"v\":1},{\"v\":1.0}]"},
    {"{\"e\":[{\"v\":1},{\"v\":\"a\"}]}", "e[?v < `2`]", "[{\"v\":1}]"},
    {"{\"a\":\"x\",\"b\":[1]}", "{k: a, l: b[0], m: missing}", "{\"k\":\"x\",\"l\":1,\"m\":null}"},
    {"{\"a\":\"x\",\"b\":[1]}", "[a, b]", "[\"x\",[1]]"},
    {"{\"a\":{\"b\":2}}", "a.{x: b}", "{\"x\":2}"},
    {"null", "[a]", "null"},
    {"{\"a\":[]}", "a || 'empty'", "\"empty\""},
    {"{\"a\":0}", "a && 'yes'", "\"yes\""},
    {"{}", "`{\"k\": [1, \"two\"]}`", "{\"k\":[1,\"two\"]}"},
    {"{}", "'it\\'s \\\\n'", "\"it's \\\\\\\\n\""},
    {"{\"foo.bar\":1}", "\"foo.bar\"", "1"},
    {"[1,2,3]", "length(@)", "3"},
    {"{\"s\":\"h\xC3\xA9llo\"}", "length(s)", "5"},
    {"{\"s\":\"h\xC3\xA9llo\"}", "reverse(s)", "\"oll\xC3\xA9h\""},
    {"[3,1,2]", "sort(@)", "[1,2,3]"},
    {"[\"b\",\"a\"]", "sort(@)", "[\"a\",\"b\"]"},
    {"[{\"a\":2,\"i\":0},{\"a\":1,\"i\":1},{\"a\":2,\"i\":2}]", "sort_by(@, &a)[*].i", "[1,0,2]"},
    {"[{\"a\":2},{\"a\":5},{\"a\":1}]", "max_by(@, &a).a", "5"},
    {"[{\"a\":2},{\"a\":5},{\"a\":1}]", "min_by(@, &a).a", "1"},
    {"[1,2,3,4]", "sum(@)", "10"},
    {"[1,2]", "avg(@)", "1.5"},
    {"[]", "avg(@)", "null"},
    {"{}", "abs(`-3`)", "3"},
    {"{}", "ceil(`1.2`)", "2"},
    {"{}", "floor(`-1.2`)", "-2"},
    {"{\"a\":\"hello\"}", "contains(a, 'ell')", "true"},
    {"[1,\"x\"]", "contains(@, 'x')", "true"},
    {"{\"a\":\"hello\"}", "starts_with(a, 'he') && ends_with(a, 'lo')", "true"},
    {"[\"a\",\"b\"]", "join(', ', @)", "\"a, b\""},
    {"{\"a\":1,\"b\":2}", "keys(@)", "[\"a\",\"b\"]"},
    {"{\"a\":1,\"b\":2}", "values(@)", "[1,2]"},
    {"[{\"a\":1},{\"b\":2}]", "map(&a, @)", "[1,null]"},
    {"{}", "merge(`{\"a\":1,\"b\":1}`, `{\"b\":2}`)", "{\"a\":1,\"b\":2}"},
    {"{\"b\":2}", "not_null(a, b)", "2"},
    {"{}", "to_array(`1`)", "[1]"},
    {"{}", "to_string(`[1,2]`)", "\"[1,2]\""},
    {"{}", "to_number('12')", "12"},
    {"{}", "to_number('1.5e1')", "15.0"},
    {"{}", "to_number('abc')", "null"},
    {"{}", "type(`true`)", "\"boolean\""},
    {"[\"x\",\"y\"]", "max(@)", "\"y\""},
    {"{\"p\":\"\\\\WINDOWS\\\\wdboot.SYS\"}", "equals_ignore_case(p, '\\windows\\wdboot.sys')",
     "true"},
    {"{\"p\":1}", "equals_ignore_case(p, '1')", "false"},
    {"[1,2,3]", "@[?@ > `1`] | length(@) == `2` && @[0]", "2"},
    {"{\"a\":[{\"b\":[1,2]},{\"b\":[3]}]}", "a[*].b[]", "[1,2,3]"},
    {"{\"a\":[{\"b\":[1,2]},{\"b\":[3]}]}", "a[*].b | [0]", "[1,2]"},
    {"{\"a\":{\"b\":1}}", "a.*", "[1]"},
    {"{\"a\":[1,2]}", "a[?@ == `2`] | [0]", "2"},
    /* errors */
    {"{}", "a.", NULL},
    {"{}", "a[", NULL},
    {"{}", "a = b", NULL},
    {"{}", "`foo`", NULL},
    {"{}", "length(`1`)", NULL},
    {"{}", "length(@, @)", NULL},
    {"{}", "sort(`[1, \"a\"]`)", NULL},
    {"{}", "&a", NULL},
    {"{}", "a[1:2:0]", NULL},
    {"{}", "'unterminated", NULL},
    {"{}", "a.b #", NULL},
    {"{}", "5", NULL},
    {"{}", "\"quoted\"(@)", NULL},
};

static void test_jmespath(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof JCASES / sizeof JCASES[0]; i++) {
        const jcase *c = &JCASES[i];
        cl_jmes_budget b;
        cl_jmes_budget_init(&b, 1000000, 1 << 20, 0);
        char *out = NULL, err[256] = "";
        int rc = cl_jmespath_search(c->doc, strlen(c->doc), c->query, strlen(c->query), &out, &b,
                                    err, sizeof err);
        if (c->want == NULL) {
            if (rc != CL_EFORMAT)
                fail_msg("JCASES[%zu] %s: want an error, got %d %s", i, c->query, rc,
                         out ? out : "");
            assert_true(strncmp(err, "JMESPath", 8) == 0 || strstr(err, "(): ") != NULL);
            continue;
        }
        if (rc != CL_OK)
            fail_msg("JCASES[%zu] %s: %s", i, c->query, err);
        if (strcmp(out, c->want) != 0)
            fail_msg("JCASES[%zu] %s: got %s want %s", i, c->query, out, c->want);
        cl_free(out);
    }
    /* exact error messages */
    cl_jmes_budget b;
    cl_jmes_budget_init(&b, 1000000, 1 << 20, 0);
    char *out = NULL, err[256];
    assert_int_equal(cl_jmespath_search("{}", 2, "length(`1`)", 11, &out, &b, err, sizeof err),
                     CL_EFORMAT);
    assert_string_equal(err,
                        "JMESPath column 1: length(): argument 1 must be a string, an array or "
                        "an object, got number");
    assert_int_equal(cl_jmespath_search("{}", 2, "a.b #", 5, &out, &b, err, sizeof err),
                     CL_EFORMAT);
    assert_string_equal(err, "JMESPath column 5: unexpected character '#'");
    /* budget exhaustion is an error, not a hang */
    cl_jmes_budget_init(&b, 50, 1 << 20, 0);
    assert_int_equal(cl_jmespath_search("[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20]", 52,
                                        "[*].[@,@]", 9, &out, &b, err, sizeof err),
                     CL_EFORMAT);
    assert_string_equal(err, "evaluation exceeds its work limit");
}

/* Every allocation failure during parse and evaluation surfaces as CL_ENOMEM (no crash, no leak
 * under ASan). */
static void test_alloc_failures(void **state)
{
    (void)state;
    const char *pol = TPM_RICH;
    int saw_ok = 0;
    for (long n = 0; n < 20000 && !saw_ok; n++) {
        cl_claimset in;
        build_set(&in, "TPMW\n");
        cl_policy *p = NULL;
        cl_policy_result res;
        char err[256];
        cl_alloc_fail_after(n);
        int rc = cl_policy_parse(pol, strlen(pol), &p, err, sizeof err);
        if (rc == CL_OK) {
            rc = cl_policy_evaluate(p, &in, &res, err, sizeof err);
            cl_policy_result_free(&res);
        }
        cl_alloc_fail_after(-1);
        if (rc == CL_OK)
            saw_ok = 1;
        else if (rc != CL_ENOMEM)
            fail_msg("allocation failure %ld gave %s: %s", n, cl_errname(rc), err);
        cl_policy_free(p);
        cl_claimset_free(&in);
    }
    assert_true(saw_ok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_malformed_positions),
        cmocka_unit_test(test_comments_equivalent),
        cmocka_unit_test(test_default_sgx_policy),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_settings),
        cmocka_unit_test(test_limits_parse),
        cmocka_unit_test(test_non_utf8),
        cmocka_unit_test(test_limits_eval),
        cmocka_unit_test(test_jmespath),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
