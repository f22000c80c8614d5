/*
 * fuzz_sgx.c — SGX/TDX quotes, Open Enclave reports and Intel collateral (src/attest/sgx*.c,
 * intel_*.c).
 *
 * The input is tried as: an Open Enclave report (and the quote inside it), a quote (parse, verify
 * without collateral and with the Phala SGX and TDX collateral at fixed times, claims, legacy
 * claims) and a collateral JSON document. Invariants checked: a parsed quote lies inside the
 * input; every failure leaves a message; claims never fail for a parsed quote. The collateral is
 * read once from the vectors ($CLEDGER_SOURCE_DIR or next to this source file).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attest/sgx.h"
#include "base/alloc.h"
#include "crypto/hash.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define T_NOW 1780272000        /* 2026-06-01T00:00:00Z */
#define T_COLLATERAL 1750377600 /* 2025-06-20T00:00:00Z */

static cl_intel_collateral *load_collateral(const char *rel)
{
    char path[4096];
    const char *src = getenv("CLEDGER_SOURCE_DIR");
    if (src != NULL) {
        snprintf(path, sizeof path, "%s/tests/data/attestation-vectors/%s", src, rel);
    } else {
        const char *slash = strrchr(__FILE__, '/');
        int dirlen = slash != NULL ? (int)(slash - __FILE__) : 1;
        snprintf(path, sizeof path, "%.*s/../data/attestation-vectors/%s", dirlen,
                 slash != NULL ? __FILE__ : ".", rel);
    }
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    cl_intel_collateral *c = NULL;
    if (cl_intel_collateral_parse(buf, n, &c, NULL, 0) != CL_OK)
        abort(); /* the vector itself must parse */
    return c;
}

static void check_quote(const uint8_t *data, size_t size, const uint8_t digest[32],
                        cl_intel_collateral *const *coll)
{
    cl_sgx_quote q;
    char err[512];
    err[0] = '\0';
    int rc = cl_sgx_quote_parse(data, size, &q, err, sizeof err);
    if (rc != CL_OK) {
        if (err[0] == '\0')
            abort();
        return;
    }
    if (q.quote_len > size || q.raw != data ||
        (const uint8_t *)q.pck_chain + q.pck_chain_len > data + q.quote_len ||
        q.report_data == NULL)
        abort();
    cl_sgx_result res;
    cl_sgx_result best;
    int have = 0;
    const int64_t times[3] = {T_NOW, T_COLLATERAL, T_COLLATERAL};
    for (int i = 0; i < 3; i++) {
        if (i > 0 && coll[i - 1] == NULL)
            continue;
        err[0] = '\0';
        rc = cl_sgx_quote_verify(&q, i == 0 ? NULL : coll[i - 1], times[i], &res, err, sizeof err);
        if (rc != CL_OK) {
            if (err[0] == '\0' || res.collateral_hashes != NULL || res.advisory_ids != NULL)
                abort();
            continue;
        }
        if (res.collateral_hashes == NULL)
            abort();
        if (have)
            cl_sgx_result_free(&best);
        best = res;
        have = 1;
    }
    json_t *claims = json_object();
    if (claims == NULL)
        return;
    if (cl_sgx_claims(&q, have ? &best : NULL, digest, claims) != CL_OK)
        abort();
    rc = cl_sgx_legacy_claims(&q, claims);
    if ((rc == CL_OK) != (q.tee_type == CL_SGX_TEE_SGX))
        abort();
    json_decref(claims);
    if (have)
        cl_sgx_result_free(&best);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cl_intel_collateral *coll[2];
    static int loaded;
    if (!loaded) {
        coll[0] = load_collateral("sgx/phala_sgx_quote_collateral.json");
        coll[1] = load_collateral("tdx/phala_tdx_quote_collateral.json");
        loaded = 1;
    }
    uint8_t digest[32];
    cl_sha256(data, size, digest);

    const uint8_t *inner = NULL;
    size_t inner_len = 0;
    char err[256];
    if (cl_oe_report_unwrap(data, size, &inner, &inner_len, err, sizeof err) == CL_OK) {
        if (inner != data + 16 || inner_len != size - 16)
            abort();
        check_quote(inner, inner_len, digest, coll);
    }
    check_quote(data, size, digest, coll);

    cl_intel_collateral *c = NULL;
    if (cl_intel_collateral_parse((const char *)data, size, &c, err, sizeof err) == CL_OK)
        cl_intel_collateral_free(c);
    else if (c != NULL)
        abort();
    return 0;
}
