/*
 * fuzz_snp.c — SEV-SNP evidence (src/attest/snp.c; spec/evidence-formats.md §5,
 * spec/attestation-api.md §3.4).
 *
 * The input is tried three ways:
 *   1. as the decoded SevSnpVm `report` member (the JSON wrapper): parse, verify at a fixed time
 *      (2025-06-20, inside the vector certificates' validity), and derive the claims;
 *   2. as a raw 1184-byte report: parse and derive the claims;
 *   3. when longer than a report, as report bytes followed by a PEM chain (cl_snp_verify_report).
 * Invariants checked: no crash or leak; a failed call leaves a NUL-terminated message and no
 * object; a parsed report always yields all 17 claims; the evidence accessors agree with a
 * re-parse of the raw bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attest/snp.h"
#include "base/json.h"

#define FUZZ_NOW INT64_C(1750377600)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_err(const char *err, size_t cap)
{
    if (memchr(err, 0, cap) == NULL)
        abort();
}

static void check_claims(const cl_snp_report *r)
{
    json_t *c = json_object();
    if (c == NULL)
        return;
    if (cl_snp_claims(r, c) != CL_OK || json_object_size(c) != 17)
        abort();
    json_decref(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    cl_snp_report r;

    cl_snp_evidence *e = (cl_snp_evidence *)&r; /* must be reset to NULL on failure */
    memset(err, 'x', sizeof err);
    int rc = cl_snp_wrapper_parse(data, size, &e, err, sizeof err);
    if (rc == CL_OK) {
        const cl_snp_report *er = cl_snp_evidence_report(e);
        if (cl_snp_report_parse(cl_snp_evidence_raw(e), CL_SNP_REPORT_LEN, &r, NULL, 0) != CL_OK ||
            r.reported_tcb.raw != er->reported_tcb.raw ||
            memcmp(r.measurement, er->measurement, sizeof r.measurement) != 0)
            abort();
        memset(err, 'x', sizeof err);
        if (cl_snp_verify(e, FUZZ_NOW, err, sizeof err) != CL_OK)
            check_err(err, sizeof err);
        json_t *c = json_object();
        if (c != NULL) {
            if (cl_snp_evidence_claims(e, c, c) != CL_OK)
                abort();
            size_t want = cl_snp_evidence_endorsements(e) ? 18 : 17;
            if (json_object_size(c) != want)
                abort();
            json_decref(c);
        }
        cl_snp_evidence_free(e);
    } else {
        if (e != NULL)
            abort();
        check_err(err, sizeof err);
    }

    memset(err, 'x', sizeof err);
    if (cl_snp_report_parse(data, size, &r, err, sizeof err) == CL_OK) {
        if (size != CL_SNP_REPORT_LEN)
            abort();
        check_claims(&r);
    } else {
        check_err(err, sizeof err);
    }

    if (size > CL_SNP_REPORT_LEN) {
        memset(err, 'x', sizeof err);
        rc = cl_snp_verify_report(NULL, data, CL_SNP_REPORT_LEN,
                                  (const char *)data + CL_SNP_REPORT_LEN, size - CL_SNP_REPORT_LEN,
                                  FUZZ_NOW, err, sizeof err);
        if (rc != CL_OK)
            check_err(err, sizeof err);
    }
    return 0;
}
