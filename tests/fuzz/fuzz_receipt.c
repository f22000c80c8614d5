/*
 * fuzz_receipt.c — receipt JSON / envelope parser and verifier (spec/receipts.md §3).
 *
 * Input: any bytes, parsed as a receipt or a GET /receipt envelope, then verified against the
 * P-256 service certificate of test vector 1 (with the envelope's claims when present). Invariants
 * beyond "no crash": a parsed receipt rebuilds to JSON that parses again to the same receipt and
 * gets the same verdict.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/json.h"
#include "crypto/x509.h"
#include "ledger/receipt.h"

static const char SERVICE_CERT[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBejCCASCgAwIBAgIQcmv2rRjksVYvqdOOHxp5UjAKBggqhkjOPQQDAjAWMRQw\n"
    "EgYDVQQDDAtDQ0YgTmV0d29yazAeFw0yMjExMDExODU0MzNaFw0yMzAxMzAxODU0\n"
    "MzJaMBYxFDASBgNVBAMMC0NDRiBOZXR3b3JrMFkwEwYHKoZIzj0CAQYIKoZIzj0D\n"
    "AQcDQgAEEFi2//FtAFoJvS+4jzQte+hjhhtBee8yjZ28ntukjeqWbG8XCncx4e0j\n"
    "eoQbFmGC9BnMb+t3t6FskQZkvgobrqNQME4wDAYDVR0TBAUwAwEB/zAdBgNVHQ4E\n"
    "FgQUQgzYFOQLy0vDkm3wqLSlcJsbQm8wHwYDVR0jBBgwFoAUQgzYFOQLy0vDkm3w\n"
    "qLSlcJsbQm8wCgYIKoZIzj0EAwIDSAAwRQIhAN/DrvHLpwRa7PeuN7q4ZztPjEY6\n"
    "R8r2IuT+wd5lMe7UAiAu7FftNooRjWIJ6pVFQO1xPtjCI5/JyvBUcJqfWT+Q2g==\n"
    "-----END CERTIFICATE-----\n";

static int same_receipt(const cl_receipt *a, const cl_receipt *b)
{
    if (a->cert_pem_len != b->cert_pem_len || memcmp(a->cert_pem, b->cert_pem, a->cert_pem_len))
        return 0;
    if (a->commit_evidence_len != b->commit_evidence_len ||
        memcmp(a->commit_evidence, b->commit_evidence, a->commit_evidence_len))
        return 0;
    if (memcmp(a->write_set_digest, b->write_set_digest, 32) ||
        memcmp(a->claims_digest, b->claims_digest, 32) || a->has_node_id != b->has_node_id ||
        (a->has_node_id && memcmp(a->node_id, b->node_id, 32)))
        return 0;
    if (a->proof_len != b->proof_len || a->n_endorsements != b->n_endorsements ||
        a->signature_len != b->signature_len ||
        memcmp(a->signature, b->signature, a->signature_len))
        return 0;
    for (size_t i = 0; i < a->proof_len; i++)
        if (memcmp(a->proof[i].hash, b->proof[i].hash, 32) ||
            a->proof[i].is_left != b->proof[i].is_left)
            return 0;
    for (size_t i = 0; i < a->n_endorsements; i++)
        if (a->endorsements[i].len != b->endorsements[i].len ||
            memcmp(a->endorsements[i].pem, b->endorsements[i].pem, a->endorsements[i].len))
            return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cl_cert *service;
    if (service == NULL && cl_cert_from_pem(SERVICE_CERT, sizeof SERVICE_CERT - 1, &service) != 0)
        abort();

    cl_receipt r = CL_RECEIPT_INIT, r2 = CL_RECEIPT_INIT;
    json_t *claims = NULL;
    char err[256];
    if (cl_receipt_parse((const char *)data, size, &r, &claims, err, sizeof err) != CL_OK) {
        if (claims != NULL || r.cert_pem != NULL || err[0] == '\0')
            abort(); /* a failed parse leaves nothing behind and always says why */
        return 0;
    }
    cl_receipt_verdict v1, v2;
    int rc1 = cl_receipt_verify(&r, service, claims, &v1);
    if ((rc1 == CL_OK) != (v1.step == CL_RECEIPT_VALID) || (rc1 != CL_OK && v1.message[0] == 0))
        abort();

    char *text = NULL;
    if (cl_receipt_to_json_string(&r, &text) != CL_OK)
        abort();
    if (cl_receipt_parse(text, strlen(text), &r2, NULL, NULL, 0) != CL_OK || !same_receipt(&r, &r2))
        abort();
    /* an envelope's transactionId is not part of the receipt JSON, but verify checks it against
     * the commit evidence: the copy gets it too */
    if (r.transaction_id != NULL &&
        cl_receipt_set_transaction_id(&r2, r.transaction_id, strlen(r.transaction_id)) != CL_OK)
        abort();
    int rc2 = cl_receipt_verify(&r2, service, claims, &v2);
    if (rc1 != rc2 || v1.step != v2.step)
        abort();

    cl_free(text);
    json_decref(claims);
    cl_receipt_clear(&r);
    cl_receipt_clear(&r2);
    return 0;
}
