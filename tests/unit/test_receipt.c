/*
 * test_receipt.c — receipts and application claims against the known-answer vectors of
 * tests/data/receipt-vectors (spec/receipts.md §3, §4, §8), plus a systematic single-field mutation
 * sweep, builder round trips and allocation-failure loops.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "base/codec.h"
#include "base/json.h"
#include "crypto/hash.h"
#include "crypto/x509.h"
#include "ledger/claims.h"
#include "ledger/receipt.h"

/* ---- fixtures ------------------------------------------------------------------------------- */

static char vec_dir[4096];

static void find_vectors(void)
{
    if (vec_dir[0] != '\0')
        return;
    const char *src = getenv("CLEDGER_SOURCE_DIR");
    const char *candidates[] = {"tests/data/receipt-vectors", "../tests/data/receipt-vectors",
                                "../../tests/data/receipt-vectors"};
    if (src != NULL && *src != '\0') {
        snprintf(vec_dir, sizeof vec_dir, "%s/tests/data/receipt-vectors", src);
        return;
    }
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/expected.json", candidates[i]);
        FILE *f = fopen(p, "rb");
        if (f != NULL) {
            fclose(f);
            snprintf(vec_dir, sizeof vec_dir, "%s", candidates[i]);
            return;
        }
    }
    snprintf(vec_dir, sizeof vec_dir, "%s", candidates[0]);
}

/* Whole vector file, NUL-terminated (free with free()). */
static char *load(const char *name, size_t *len)
{
    find_vectors();
    char path[8300];
    snprintf(path, sizeof path, "%s/%s", vec_dir, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open %s (set CLEDGER_SOURCE_DIR)", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    assert_true(n >= 0);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    buf[n] = '\0';
    if (len != NULL)
        *len = (size_t)n;
    return buf;
}

static json_t *load_json(const char *name)
{
    size_t len;
    char *s = load(name, &len);
    json_t *j = NULL;
    char err[200];
    int rc = cl_json_parse(s, len, 1u << 20, &j, err, sizeof err);
    if (rc != CL_OK)
        fail_msg("%s: %s", name, err);
    free(s);
    return j;
}

static void assert_digest(const uint8_t got[32], const char *want_hex, const char *what)
{
    char hex[65];
    cl_hex_encode(got, 32, hex);
    if (strcmp(hex, want_hex) != 0)
        fail_msg("%s: got %s, want %s", what, hex, want_hex);
}

static const char *jstr(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

/* Parse `receipt` (via its JSON text, so the parser is exercised too) and verify it. A parse
 * failure is reported as a shape failure in *v. */
static int verify_json(const json_t *receipt, const char *svc, size_t svclen, const json_t *claims,
                       cl_receipt_verdict *v)
{
    char *s = json_dumps(receipt, JSON_COMPACT);
    assert_non_null(s);
    cl_receipt r = CL_RECEIPT_INIT;
    json_t *env_claims = NULL;
    char eb[256];
    int rc = cl_receipt_parse(s, strlen(s), &r, &env_claims, eb, sizeof eb);
    cl_free(s);
    if (rc < 0) {
        memset(v, 0, sizeof *v);
        v->step = CL_RECEIPT_STEP_SHAPE;
        v->err = rc;
        snprintf(v->message, sizeof v->message, "%s", eb);
        assert_true(eb[0] != '\0'); /* every parse failure says why */
        assert_null(env_claims);
        return rc;
    }
    rc = cl_receipt_verify_pem(&r, svc, svclen, claims != NULL ? claims : env_claims, v);
    json_decref(env_claims);
    cl_receipt_clear(&r);
    if (rc < 0)
        assert_true(v->message[0] != '\0');
    else
        assert_int_equal(v->step, CL_RECEIPT_VALID);
    return rc;
}

/* One valid vector, loaded: receipt (camelCase keys), service certificate, claims or NULL. */
typedef struct {
    json_t *entry; /* borrowed from expected.json */
    json_t *receipt;
    char *svc;
    size_t svclen;
    json_t *claims;
} vector;

static void vector_load(vector *x, json_t *entry)
{
    x->entry = entry;
    json_t *raw = load_json(jstr(entry, "receipt"));
    assert_int_equal(cl_json_camel_keys(raw, &x->receipt), CL_OK);
    json_decref(raw);
    x->svc = load(jstr(entry, "serviceCert"), &x->svclen);
    json_t *c = json_object_get(entry, "applicationClaims");
    x->claims = json_is_string(c) ? load_json(json_string_value(c)) : NULL;
}

static void vector_free(vector *x)
{
    json_decref(x->receipt);
    json_decref(x->claims);
    free(x->svc);
}

/* ---- known-answer tests --------------------------------------------------------------------- */

static void test_valid_vectors(void **state)
{
    (void)state;
    json_t *exp = load_json("expected.json");
    json_t *valid = json_object_get(exp, "valid");
    assert_true(json_array_size(valid) >= 5);
    size_t i;
    json_t *e;
    json_array_foreach(valid, i, e)
    {
        vector x;
        vector_load(&x, e);
        cl_receipt_verdict v;
        int rc = verify_json(x.receipt, x.svc, x.svclen, x.claims, &v);
        if (rc != CL_OK)
            fail_msg("%s: %s: %s", jstr(e, "receipt"), cl_receipt_step_name(v.step), v.message);
        assert_true(v.have_digests && v.have_node_id);
        assert_digest(v.commit_evidence_digest, jstr(e, "commitEvidenceDigest"), "ce digest");
        assert_digest(v.leaf, jstr(e, "leaf"), "leaf");
        assert_digest(v.root, jstr(e, "root"), "root");
        assert_digest(v.node_id, jstr(e, "nodeId"), "nodeId");

        /* Also the raw file, not camelCased by the test (the snake_case one converts itself). */
        size_t len;
        char *text = load(jstr(e, "receipt"), &len);
        cl_receipt r = CL_RECEIPT_INIT;
        assert_int_equal(cl_receipt_parse(text, len, &r, NULL, NULL, 0), CL_OK);
        free(text);
        assert_int_equal(r.proof_len,
                         (size_t)json_integer_value(json_object_get(e, "proofLength")));
        assert_true(r.has_node_id);
        assert_digest(r.node_id, jstr(e, "nodeId"), "parsed nodeId");
        assert_int_equal(cl_receipt_verify_pem(&r, x.svc, x.svclen, x.claims, NULL), CL_OK);

        /* The same with a parsed cl_cert. */
        cl_cert *svc = NULL;
        assert_int_equal(cl_cert_from_pem(x.svc, x.svclen, &svc), CL_OK);
        assert_int_equal(cl_receipt_verify(&r, svc, x.claims, &v), CL_OK);
        assert_int_equal(v.step, CL_RECEIPT_VALID);
        assert_int_equal(v.err, CL_OK);

        /* The root is signed as a digest: signing SHA256(root) would be a different message, so the
         * same signature must not verify over it (spec §3 step 6). */
        uint8_t rehashed[32];
        cl_sha256(v.root, 32, rehashed);
        cl_cert *node = NULL;
        assert_int_equal(cl_cert_from_pem(r.cert_pem, r.cert_pem_len, &node), CL_OK);
        assert_int_equal(
            cl_key_verify_prehashed(node->pub, rehashed, 32, r.signature, r.signature_len),
            CL_ESIG);
        assert_int_equal(
            cl_key_verify_prehashed(node->pub, v.root, 32, r.signature, r.signature_len), CL_OK);
        cl_cert_free(node);
        cl_cert_free(svc);
        cl_receipt_clear(&r);
        vector_free(&x);
    }
    json_decref(exp);
}

/* Maps the `reason` of an expected.json negative case to the step that must fail first. */
static cl_receipt_verify_step step_for_reason(const char *reason)
{
    if (strstr(reason, "claims digest") != NULL)
        return CL_RECEIPT_STEP_CLAIMS;
    if (strstr(reason, "endorse") != NULL)
        return CL_RECEIPT_STEP_ENDORSEMENT;
    if (strstr(reason, "nodeId") != NULL)
        return CL_RECEIPT_STEP_NODE_ID;
    if (strstr(reason, "signature") != NULL)
        return CL_RECEIPT_STEP_SIGNATURE;
    fail_msg("unmapped reason: %s", reason);
    return CL_RECEIPT_STEP_SHAPE;
}

static int err_for_step(cl_receipt_verify_step s)
{
    switch (s) {
    case CL_RECEIPT_STEP_CLAIMS:
        return CL_ECLAIMS;
    case CL_RECEIPT_STEP_ENDORSEMENT:
        return CL_EENDORSE;
    case CL_RECEIPT_STEP_NODE_ID:
        return CL_ENODEID;
    case CL_RECEIPT_STEP_SIGNATURE:
        return CL_ESIG;
    default:
        return 1;
    }
}

/* Applies an expected.json mutation description to receipt r (camelCase). */
static void apply_mutation(json_t *r, const char *m)
{
    if (m == NULL)
        return;
    char field[64];
    if (sscanf(m, "%63s replaced by receipt_2.json's", field) == 1 &&
        strstr(m, "replaced by receipt_2.json's") != NULL) {
        json_t *r2 = load_json("receipt_2.json");
        json_t *val = json_object_get(r2, field);
        assert_non_null(val);
        assert_int_equal(json_object_set_new(r, field, json_deep_copy(val)), 0);
        json_decref(r2);
    } else if (strcmp(m, "proof replaced by []") == 0) {
        assert_int_equal(json_object_set_new(r, "proof", json_array()), 0);
    } else if (strcmp(m, "first proof element changed from left to right (same hash)") == 0) {
        json_t *p0 = json_array_get(json_object_get(r, "proof"), 0);
        json_t *h = json_object_get(p0, "left");
        assert_non_null(h);
        json_incref(h);
        assert_int_equal(json_object_del(p0, "left"), 0);
        assert_int_equal(json_object_set_new(p0, "right", h), 0);
    } else if (strcmp(m, "serviceEndorsements replaced by [contents of service_cert_2.pem]") == 0) {
        char *pem = load("service_cert_2.pem", NULL);
        assert_int_equal(json_object_set_new(r, "serviceEndorsements", json_pack("[s]", pem)), 0);
        free(pem);
    } else if (strcmp(m, "nodeId removed") == 0) {
        assert_int_equal(json_object_del(r, "nodeId"), 0);
    } else {
        fail_msg("unknown mutation in expected.json: %s", m);
    }
}

static void test_invalid_vectors(void **state)
{
    (void)state;
    json_t *exp = load_json("expected.json");
    json_t *invalid = json_object_get(exp, "invalid");
    assert_true(json_array_size(invalid) >= 14);
    size_t i;
    json_t *e;
    json_array_foreach(invalid, i, e)
    {
        vector x;
        vector_load(&x, e);
        const json_t *m = json_object_get(e, "mutation");
        apply_mutation(x.receipt, json_is_string(m) ? json_string_value(m) : NULL);
        cl_receipt_verify_step want = step_for_reason(jstr(e, "reason"));
        cl_receipt_verdict v;
        int rc = verify_json(x.receipt, x.svc, x.svclen, x.claims, &v);
        if (rc == CL_OK || v.step != want || rc != err_for_step(want))
            fail_msg("invalid case %zu (%s, %s): got %s/%s (%s), want %s", i, jstr(e, "receipt"),
                     json_is_string(m) ? json_string_value(m) : "-", cl_receipt_step_name(v.step),
                     cl_errname(rc), v.message, cl_receipt_step_name(want));
        assert_int_equal(v.err, rc);
        vector_free(&x);
    }
    json_t *variants = json_object_get(exp, "validVariants");
    assert_true(json_array_size(variants) >= 1);
    json_array_foreach(variants, i, e)
    {
        vector x;
        vector_load(&x, e);
        apply_mutation(x.receipt, jstr(e, "mutation"));
        cl_receipt_verdict v;
        int rc = verify_json(x.receipt, x.svc, x.svclen, x.claims, &v);
        if (rc != CL_OK)
            fail_msg("valid variant %zu: %s: %s", i, cl_receipt_step_name(v.step), v.message);
        vector_free(&x);
    }
    json_decref(exp);
}

static void test_claims_vectors(void **state)
{
    (void)state;
    json_t *exp = load_json("expected.json");
    json_t *list = json_object_get(exp, "claimsDigests");
    assert_true(json_array_size(list) >= 3);
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        json_t *claims = load_json(jstr(e, "claims"));
        json_t *per = json_object_get(e, "perClaim");
        size_t n = json_array_size(claims);
        assert_int_equal(n, json_array_size(per));
        uint8_t d[32], perclaim[8][32];
        assert_true(n <= 8);
        assert_int_equal(cl_claims_digest(claims, d, perclaim), CL_OK);
        assert_digest(d, jstr(e, "claimsDigest"), jstr(e, "claims"));
        for (size_t k = 0; k < n; k++) {
            json_t *pc = json_array_get(per, k);
            assert_digest(perclaim[k], jstr(pc, "claimDigest"), "perClaim");
            uint8_t one[32];
            assert_int_equal(cl_claim_digest(json_array_get(claims, k), one), CL_OK);
            assert_memory_equal(one, perclaim[k], 32);
            if (strcmp(jstr(pc, "kind"), "LedgerEntry") != 0)
                continue;
            json_t *le = json_object_get(json_array_get(claims, k), "ledgerEntry");
            const char *b64 = jstr(le, "secretKey"), *coll = jstr(le, "collectionId"),
                       *contents = jstr(le, "contents");
            uint8_t key[64];
            size_t keylen;
            assert_int_equal(cl_b64_decode(b64, strlen(b64), key, sizeof key, &keylen, CL_B64_STD),
                             CL_OK);
            cl_ledger_entry_v1_digests ld;
            assert_int_equal(cl_claims_ledger_entry_v1(key, keylen, coll, strlen(coll), contents,
                                                       strlen(contents), &ld),
                             CL_OK);
            assert_digest(ld.hmac_collection, jstr(pc, "hmacCollectionId"), "hmacCollectionId");
            assert_digest(ld.hmac_contents, jstr(pc, "hmacContents"), "hmacContents");
            assert_digest(ld.inner, jstr(pc, "inner"), "inner");
            assert_digest(ld.claim, jstr(pc, "claimDigest"), "claimDigest");
        }
        /* The text entry point gives the same digest. */
        size_t len;
        char *text = load(jstr(e, "claims"), &len);
        uint8_t d2[32];
        assert_int_equal(cl_claims_digest_json(text, len, d2), CL_OK);
        assert_memory_equal(d, d2, 32);
        free(text);
        json_decref(claims);
    }
    json_decref(exp);
}

/* The ledger engine's entry points: direct digest and the applicationClaims array it reveals. */
static void test_claims_ledger_entry_api(void **state)
{
    (void)state;
    const char *b64 = "Jde/VvaIfyrjQ/B19P+UJCBwmcrgN7sERStoyHnYO0M=";
    uint8_t key[32];
    size_t keylen;
    assert_int_equal(cl_b64_decode(b64, strlen(b64), key, sizeof key, &keylen, CL_B64_STD), CL_OK);
    assert_int_equal(keylen, 32);
    uint8_t d[32];
    assert_int_equal(
        cl_claims_ledger_entry_digest(key, 32, "subledger:0", 11, "Hello world", 11, d), CL_OK);
    assert_digest(d, "d08d8764437d09b2d4d07d52293cddaf40f44a3ea2176a0528819a80002df9f6",
                  "ledger entry digest");

    json_t *arr = NULL;
    assert_int_equal(
        cl_claims_ledger_entry_json(key, 32, "subledger:0", 11, "Hello world", 11, &arr), CL_OK);
    json_t *want = load_json("claims_1.json");
    assert_true(json_equal(arr, want));
    uint8_t d2[32];
    assert_int_equal(cl_claims_digest(arr, d2, NULL), CL_OK);
    assert_memory_equal(d, d2, 32);
    json_decref(want);
    json_decref(arr);

    /* Contents with non-ASCII UTF-8 round-trip through the JSON form unchanged. */
    const char *utf = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
    assert_int_equal(cl_claims_ledger_entry_digest(key, 32, "c", 1, utf, strlen(utf), d), CL_OK);
    assert_int_equal(cl_claims_ledger_entry_json(key, 32, "c", 1, utf, strlen(utf), &arr), CL_OK);
    assert_int_equal(cl_claims_digest(arr, d2, NULL), CL_OK);
    assert_memory_equal(d, d2, 32);
    json_decref(arr);
    /* Empty contents are fine. */
    assert_int_equal(cl_claims_ledger_entry_digest(key, 32, "c", 1, "", 0, d), CL_OK);
    assert_int_equal(cl_claims_ledger_entry_json(key, 32, "c", 1, "", 0, &arr), CL_OK);
    assert_int_equal(cl_claims_digest(arr, d2, NULL), CL_OK);
    assert_memory_equal(d, d2, 32);
    json_decref(arr);

    /* Invalid UTF-8 or NUL cannot be put in JSON. */
    arr = NULL;
    assert_int_equal(cl_claims_ledger_entry_json(key, 32, "c", 1, "a\xff", 2, &arr), CL_EINVAL);
    assert_int_equal(cl_claims_ledger_entry_json(key, 32, "c", 1, "a\0b", 3, &arr), CL_EINVAL);
    assert_int_equal(cl_claims_ledger_entry_json(key, 32, "\xc0\x80", 2, "x", 1, &arr), CL_EINVAL);
    assert_int_equal(cl_claims_ledger_entry_json(key, 32, "\xed\xa0\x80", 3, "x", 1, &arr),
                     CL_EINVAL);
    assert_null(arr);

    /* Allocation failures turn into CL_ENOMEM without leaks. */
    for (long n = 0;; n++) {
        cl_alloc_fail_after(n);
        int rc = cl_claims_ledger_entry_json(key, 32, "subledger:0", 11, "Hello world", 11, &arr);
        cl_alloc_fail_after(-1);
        if (rc == CL_OK) {
            json_decref(arr);
            break;
        }
        assert_int_equal(rc, CL_ENOMEM);
        assert_true(n < 1000);
    }
}

static int claims_text_digest(const char *text, uint8_t d[32])
{
    return cl_claims_digest_json(text, strlen(text), d);
}

static void test_claims_errors(void **state)
{
    (void)state;
    uint8_t d[32];
    const char *le_ok = "{\"kind\":\"LedgerEntry\",\"ledgerEntry\":{\"protocol\":\"LedgerEntryV1\","
                        "\"collectionId\":\"c\",\"contents\":\"x\",\"secretKey\":\"AAAA\"}}";
    char buf[512];
    snprintf(buf, sizeof buf, "[%s]", le_ok);
    assert_int_equal(claims_text_digest(buf, d), CL_OK);

    static const struct {
        const char *json;
        int err;
    } cases[] = {
        {"[]", CL_EJSON},
        {"{}", CL_EJSON},
        {"null", CL_EJSON},
        {"[1]", CL_EJSON},
        {"[{}]", CL_EJSON},
        {"[{\"kind\":1}]", CL_EJSON},
        {"[{\"kind\":\"Other\"}]", CL_EUNSUPPORTED},
        {"[{\"kind\":\"ledgerEntry\",\"ledgerEntry\":{}}]", CL_EUNSUPPORTED},
        {"[{\"kind\":\"LedgerEntry\"}]", CL_EJSON},
        {"[{\"kind\":\"LedgerEntry\",\"ledgerEntry\":[]}]", CL_EJSON},
        {"[{\"kind\":\"LedgerEntry\",\"ledgerEntry\":{\"protocol\":\"LedgerEntryV2\","
         "\"collectionId\":\"c\",\"contents\":\"x\",\"secretKey\":\"AAAA\"}}]",
         CL_EUNSUPPORTED},
        {"[{\"kind\":\"LedgerEntry\",\"ledgerEntry\":{\"protocol\":\"LedgerEntryV1\","
         "\"collectionId\":\"c\",\"contents\":\"x\",\"secretKey\":\"AA A\"}}]",
         CL_EBASE64},
        {"[{\"kind\":\"LedgerEntry\",\"ledgerEntry\":{\"protocol\":\"LedgerEntryV1\","
         "\"collectionId\":\"c\",\"contents\":\"x\",\"secretKey\":\"AAA\"}}]",
         CL_EBASE64},
        {"[{\"kind\":\"LedgerEntry\",\"ledgerEntry\":{\"protocol\":\"LedgerEntryV1\","
         "\"collectionId\":\"c\",\"contents\":1,\"secretKey\":\"AAAA\"}}]",
         CL_EJSON},
        {"[{\"kind\":\"LedgerEntry\",\"ledgerEntry\":{\"protocol\":\"LedgerEntryV1\","
         "\"contents\":\"x\",\"secretKey\":\"AAAA\"}}]",
         CL_EJSON},
        {"[{\"kind\":\"LedgerEntry\",\"ledgerEntry\":{\"protocol\":\"LedgerEntryV1\","
         "\"collectionId\":\"c\",\"contents\":\"x\"}}]",
         CL_EJSON},
        {"[{\"kind\":\"ClaimDigest\"}]", CL_EJSON},
        {"[{\"kind\":\"ClaimDigest\",\"digest\":{\"protocol\":\"p\"}}]", CL_EJSON},
        {"[{\"kind\":\"ClaimDigest\",\"digest\":{\"value\":\"00\"}}]", CL_EJSON},
        {"[{\"kind\":\"ClaimDigest\",\"digest\":{\"protocol\":\"p\",\"value\":\"0\"}}]", CL_EHEX},
        {"[{\"kind\":\"ClaimDigest\",\"digest\":{\"protocol\":\"p\",\"value\":\"zz\"}}]", CL_EHEX},
        {"[{\"kind\":\"ClaimDigest\",\"digest\":{\"protocol\":\"p\",\"value\":1}}]", CL_EJSON},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = claims_text_digest(cases[i].json, d);
        if (rc != cases[i].err)
            fail_msg("claims case %zu (%s): got %s, want %s", i, cases[i].json, cl_errname(rc),
                     cl_errname(cases[i].err));
    }
    /* A valid claim after an invalid one still fails the list. */
    snprintf(buf, sizeof buf, "[%s,{\"kind\":\"X\"}]", le_ok);
    assert_int_equal(claims_text_digest(buf, d), CL_EUNSUPPORTED);

    /* ClaimDigest accepts any protocol string and either hex case. */
    uint8_t a[32], b[32];
    assert_int_equal(claims_text_digest("[{\"kind\":\"ClaimDigest\",\"digest\":{\"protocol\":"
                                        "\"any\",\"value\":\"ABCDEF\"}}]",
                                        a),
                     CL_OK);
    assert_int_equal(claims_text_digest("[{\"kind\":\"ClaimDigest\",\"digest\":{\"protocol\":"
                                        "\"any\",\"value\":\"abcdef\"}}]",
                                        b),
                     CL_OK);
    assert_memory_equal(a, b, 32);

    /* Over the list limit. */
    json_t *big = json_array();
    for (int i = 0; i <= CL_CLAIMS_MAX; i++)
        assert_int_equal(
            json_array_append_new(big, json_pack("{s:s,s:{s:s,s:s}}", "kind", "ClaimDigest",
                                                 "digest", "protocol", "p", "value", "00")),
            0);
    assert_int_equal(cl_claims_digest(big, d, NULL), CL_EOVERFLOW);
    assert_int_equal(json_array_remove(big, 0), 0);
    assert_int_equal(cl_claims_digest(big, d, NULL), CL_OK);
    json_decref(big);
}

/* ---- mutation sweep ------------------------------------------------------------------------- */

typedef struct {
    const vector *x;
    const char *name;
    size_t count;
} sweep;

/* The mutated receipt must fail verification (any step, or `want` when not SHAPE-or-any = -1). */
static void must_fail(sweep *s, json_t *mutated, int want_step, const char *what)
{
    cl_receipt_verdict v;
    int rc = verify_json(mutated, s->x->svc, s->x->svclen, s->x->claims, &v);
    s->count++;
    if (rc == CL_OK)
        fail_msg("%s: mutation %s still verifies", s->name, what);
    if (want_step >= 0 && (int)v.step != want_step)
        fail_msg("%s: mutation %s failed at %s (%s), want %s", s->name, what,
                 cl_receipt_step_name(v.step), v.message,
                 cl_receipt_step_name((cl_receipt_verify_step)want_step));
}

static char other_hex(char c)
{
    static const char hex[] = "0123456789abcdef";
    int v = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : c - 'A' + 10;
    return hex[(v + 7) % 16];
}

/* Every character of the hex string at `slot` (a string json_t inside `doc`) changed to another
 * digit value. */
static void sweep_hex(sweep *s, json_t *doc, json_t *holder, const char *key, int want_step,
                      const char *label)
{
    json_t *str = json_object_get(holder, key);
    assert_true(json_is_string(str));
    char orig[65];
    snprintf(orig, sizeof orig, "%s", json_string_value(str));
    assert_int_equal(strlen(orig), 64);
    for (size_t i = 0; i < 64; i++) {
        char m[65];
        memcpy(m, orig, 65);
        m[i] = other_hex(m[i]);
        assert_int_equal(json_object_set_new(holder, key, json_string(m)), 0);
        char what[96];
        snprintf(what, sizeof what, "%s[%zu]", label, i);
        must_fail(s, doc, want_step, what);
    }
    /* Wrong lengths and non-hex characters are shape errors. */
    char m[66];
    snprintf(m, sizeof m, "%s0", orig);
    assert_int_equal(json_object_set_new(holder, key, json_string(m)), 0);
    must_fail(s, doc, CL_RECEIPT_STEP_SHAPE, "hex too long");
    snprintf(m, sizeof m, "%.63s", orig);
    assert_int_equal(json_object_set_new(holder, key, json_string(m)), 0);
    must_fail(s, doc, CL_RECEIPT_STEP_SHAPE, "hex too short");
    snprintf(m, sizeof m, "%.63sg", orig);
    assert_int_equal(json_object_set_new(holder, key, json_string(m)), 0);
    must_fail(s, doc, CL_RECEIPT_STEP_SHAPE, "hex with g");
    snprintf(m, sizeof m, " %.63s", orig);
    assert_int_equal(json_object_set_new(holder, key, json_string(m)), 0);
    must_fail(s, doc, CL_RECEIPT_STEP_SHAPE, "hex with space");
    /* Upper case is the same bytes: still valid. */
    for (size_t i = 0; i < 64; i++)
        m[i] = (orig[i] >= 'a' && orig[i] <= 'f') ? (char)(orig[i] - 'a' + 'A') : orig[i];
    m[64] = '\0';
    assert_int_equal(json_object_set_new(holder, key, json_string(m)), 0);
    cl_receipt_verdict v;
    assert_int_equal(verify_json(doc, s->x->svc, s->x->svclen, s->x->claims, &v), CL_OK);
    assert_int_equal(json_object_set_new(holder, key, json_string(orig)), 0);
}

/* Wrong JSON types for member `key` of `holder` (and its removal when `required`). */
static void sweep_types(sweep *s, json_t *doc, json_t *holder, const char *key, int required,
                        int array_ok)
{
    json_t *orig = json_object_get(holder, key);
    assert_non_null(orig);
    json_incref(orig);
    json_t *wrong[] = {json_integer(1), json_null(),    json_true(),     json_object(),
                       json_array(),    json_real(1.5), json_string("x")};
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        if (json_typeof(wrong[i]) == json_typeof(orig) && !json_is_string(orig))
            continue;
        if (json_is_array(wrong[i]) && array_ok)
            continue;
        if (json_is_string(orig) && json_is_string(wrong[i]) && strcmp(key, "commitEvidence") == 0)
            continue; /* any string is a commit evidence shape-wise (covered by the sweep) */
        assert_int_equal(json_object_set(holder, key, wrong[i]), 0);
        char what[96];
        snprintf(what, sizeof what, "%s as %s #%zu", key,
                 json_is_string(wrong[i]) ? "string" : "other type", i);
        must_fail(s, doc, -1, what);
    }
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++)
        json_decref(wrong[i]);
    if (required) {
        assert_int_equal(json_object_del(holder, key), 0);
        char what[96];
        snprintf(what, sizeof what, "%s removed", key);
        must_fail(s, doc, CL_RECEIPT_STEP_SHAPE, what);
    }
    assert_int_equal(json_object_set_new(holder, key, orig), 0);
}

static void sweep_vector(const vector *x, const char *name)
{
    sweep s = {x, name, 0};
    json_t *doc = json_deep_copy(x->receipt);
    json_t *lc = json_object_get(doc, "leafComponents");
    json_t *proof = json_object_get(doc, "proof");
    int claims_step = x->claims != NULL ? CL_RECEIPT_STEP_CLAIMS : CL_RECEIPT_STEP_SIGNATURE;

    /* Every hex digit of every digest. */
    sweep_hex(&s, doc, lc, "writeSetDigest", CL_RECEIPT_STEP_SIGNATURE, "writeSetDigest");
    sweep_hex(&s, doc, lc, "claimsDigest", claims_step, "claimsDigest");
    sweep_hex(&s, doc, doc, "nodeId", CL_RECEIPT_STEP_NODE_ID, "nodeId");
    for (size_t i = 0; i < json_array_size(proof); i++) {
        json_t *el = json_array_get(proof, i);
        const char *side = json_object_get(el, "left") != NULL ? "left" : "right";
        char label[32];
        snprintf(label, sizeof label, "proof[%zu]", i);
        sweep_hex(&s, doc, el, side, CL_RECEIPT_STEP_SIGNATURE, label);
    }

    /* Every character of the commit evidence (hashed as text). */
    char ce[256];
    snprintf(ce, sizeof ce, "%s", json_string_value(json_object_get(lc, "commitEvidence")));
    size_t celen = strlen(ce);
    for (size_t i = 0; i < celen; i++) {
        char m[256];
        memcpy(m, ce, celen + 1);
        char c = m[i];
        m[i] = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ? other_hex(c) : (char)(c ^ 1);
        assert_int_equal(json_object_set_new(lc, "commitEvidence", json_string(m)), 0);
        char what[64];
        snprintf(what, sizeof what, "commitEvidence[%zu]", i);
        must_fail(&s, doc, CL_RECEIPT_STEP_SIGNATURE, what);
    }
    {
        char m[260];
        snprintf(m, sizeof m, "%s ", ce);
        assert_int_equal(json_object_set_new(lc, "commitEvidence", json_string(m)), 0);
        must_fail(&s, doc, CL_RECEIPT_STEP_SIGNATURE, "commitEvidence + space");
        /* Hex-decoding instead of hashing the text, or upper-casing it, must not be accepted. */
        for (size_t i = 0; i < celen; i++)
            m[i] = (ce[i] >= 'a' && ce[i] <= 'f') ? (char)(ce[i] - 32) : ce[i];
        m[celen] = '\0';
        assert_int_equal(json_object_set_new(lc, "commitEvidence", json_string(m)), 0);
        must_fail(&s, doc, CL_RECEIPT_STEP_SIGNATURE, "commitEvidence upper case");
        assert_int_equal(json_object_set_new(lc, "commitEvidence", json_string("")), 0);
        must_fail(&s, doc, CL_RECEIPT_STEP_SIGNATURE, "commitEvidence empty");
        assert_int_equal(json_object_set_new(lc, "commitEvidence", json_string(ce)), 0);
    }

    /* Proof structure: side swaps, drops, duplicates, reordering. */
    size_t np = json_array_size(proof);
    for (size_t i = 0; i < np; i++) {
        json_t *el = json_array_get(proof, i);
        int left = json_object_get(el, "left") != NULL;
        json_t *h = json_incref(json_object_get(el, left ? "left" : "right"));
        assert_int_equal(json_object_del(el, left ? "left" : "right"), 0);
        assert_int_equal(json_object_set(el, left ? "right" : "left", h), 0);
        must_fail(&s, doc, CL_RECEIPT_STEP_SIGNATURE, "side swapped");
        /* both sides present, no side, unknown member */
        assert_int_equal(json_object_set(el, left ? "left" : "right", h), 0);
        must_fail(&s, doc, CL_RECEIPT_STEP_SHAPE, "both left and right");
        assert_int_equal(json_object_del(el, left ? "right" : "left"), 0);
        assert_int_equal(json_object_set_new(el, "up", json_string("x")), 0);
        must_fail(&s, doc, CL_RECEIPT_STEP_SHAPE, "extra member in proof element");
        assert_int_equal(json_object_del(el, "up"), 0);
        json_t *saved = json_deep_copy(el);
        assert_int_equal(json_array_set_new(proof, i, json_string("x")), 0);
        must_fail(&s, doc, CL_RECEIPT_STEP_SHAPE, "proof element is a string");
        assert_int_equal(json_array_set_new(proof, i, json_object()), 0);
        must_fail(&s, doc, CL_RECEIPT_STEP_SHAPE, "proof element empty");
        assert_int_equal(
            json_array_set_new(proof, i, json_pack("{s:i}", left ? "left" : "right", 1)), 0);
        must_fail(&s, doc, CL_RECEIPT_STEP_SHAPE, "proof hash is a number");
        assert_int_equal(json_array_set_new(proof, i, saved), 0);
        json_decref(h);

        /* drop element i */
        json_t *keep = json_incref(json_array_get(proof, i));
        assert_int_equal(json_array_remove(proof, i), 0);
        must_fail(&s, doc, CL_RECEIPT_STEP_SIGNATURE, "proof element dropped");
        /* duplicate element i */
        assert_int_equal(json_array_insert(proof, i, keep), 0);
        assert_int_equal(json_array_insert(proof, i, keep), 0);
        must_fail(&s, doc, CL_RECEIPT_STEP_SIGNATURE, "proof element duplicated");
        assert_int_equal(json_array_remove(proof, i), 0);
        json_decref(keep);
    }
    if (np >= 2) {
        json_t *a = json_incref(json_array_get(proof, 0)),
               *b = json_incref(json_array_get(proof, 1));
        assert_int_equal(json_array_set(proof, 0, b), 0);
        assert_int_equal(json_array_set(proof, 1, a), 0);
        must_fail(&s, doc, CL_RECEIPT_STEP_SIGNATURE, "proof elements 0 and 1 swapped");
        assert_int_equal(json_array_set(proof, 0, a), 0);
        assert_int_equal(json_array_set(proof, 1, b), 0);
        json_decref(a);
        json_decref(b);
    }
    assert_true(json_equal(doc, x->receipt));

    /* Every byte of the DER signature, one bit flipped, re-encoded canonically. */
    const char *sig64 = json_string_value(json_object_get(doc, "signature"));
    uint8_t sig[CL_RECEIPT_MAX_SIG];
    size_t siglen;
    assert_int_equal(cl_b64_decode(sig64, strlen(sig64), sig, sizeof sig, &siglen, CL_B64_STD),
                     CL_OK);
    char *sig_orig = strdup(sig64);
    for (size_t i = 0; i < siglen; i++) {
        for (int bit = 0; bit < 8; bit += 7) {
            sig[i] ^= (uint8_t)(1u << bit);
            char *enc = cl_b64_encode_alloc(sig, siglen, CL_B64_STD);
            assert_int_equal(json_object_set_new(doc, "signature", json_string(enc)), 0);
            cl_free(enc);
            char what[64];
            snprintf(what, sizeof what, "signature byte %zu bit %d", i, bit);
            must_fail(&s, doc, CL_RECEIPT_STEP_SIGNATURE, what);
            sig[i] ^= (uint8_t)(1u << bit);
        }
    }
    /* Truncated and extended signatures. */
    for (size_t cut = 1; cut <= 2; cut++) {
        char *enc = cl_b64_encode_alloc(sig, siglen - cut, CL_B64_STD);
        assert_int_equal(json_object_set_new(doc, "signature", json_string(enc)), 0);
        cl_free(enc);
        must_fail(&s, doc, CL_RECEIPT_STEP_SIGNATURE, "signature truncated");
    }
    sig[siglen] = 0;
    {
        char *enc = cl_b64_encode_alloc(sig, siglen + 1, CL_B64_STD);
        assert_int_equal(json_object_set_new(doc, "signature", json_string(enc)), 0);
        cl_free(enc);
        must_fail(&s, doc, CL_RECEIPT_STEP_SIGNATURE, "signature with trailing byte");
    }
    /* Non-canonical base64 is a shape error. */
    {
        char m[512];
        size_t l = strlen(sig_orig);
        snprintf(m, sizeof m, "%s", sig_orig);
        m[l / 2] = '!';
        assert_int_equal(json_object_set_new(doc, "signature", json_string(m)), 0);
        must_fail(&s, doc, CL_RECEIPT_STEP_SHAPE, "signature with '!'");
        snprintf(m, sizeof m, "%.*s\n%s", (int)(l / 2), sig_orig, sig_orig + l / 2);
        assert_int_equal(json_object_set_new(doc, "signature", json_string(m)), 0);
        must_fail(&s, doc, CL_RECEIPT_STEP_SHAPE, "signature with newline");
        snprintf(m, sizeof m, "%s=", sig_orig);
        assert_int_equal(json_object_set_new(doc, "signature", json_string(m)), 0);
        must_fail(&s, doc, CL_RECEIPT_STEP_SHAPE, "signature with extra padding");
        /* url-safe alphabet */
        snprintf(m, sizeof m, "%s", sig_orig);
        int changed = 0;
        for (size_t i = 0; i < l; i++) {
            if (m[i] == '+' || m[i] == '/') {
                m[i] = m[i] == '+' ? '-' : '_';
                changed = 1;
            }
        }
        if (changed) {
            assert_int_equal(json_object_set_new(doc, "signature", json_string(m)), 0);
            must_fail(&s, doc, CL_RECEIPT_STEP_SHAPE, "signature url-safe");
        }
        if (l >= 2 && sig_orig[l - 1] == '=') {
            snprintf(m, sizeof m, "%.*s", (int)(l - 1 - (sig_orig[l - 2] == '=')), sig_orig);
            assert_int_equal(json_object_set_new(doc, "signature", json_string(m)), 0);
            must_fail(&s, doc, CL_RECEIPT_STEP_SHAPE, "signature without padding");
        }
        assert_int_equal(json_object_set_new(doc, "signature", json_string("")), 0);
        must_fail(&s, doc, CL_RECEIPT_STEP_SHAPE, "signature empty");
    }
    assert_int_equal(json_object_set_new(doc, "signature", json_string(sig_orig)), 0);
    free(sig_orig);

    /* The certificate: base64 body characters changed (not the last quantum, whose spare bits a
     * PEM decoder may ignore), structure broken, or replaced by the service certificate. */
    char *cert = strdup(json_string_value(json_object_get(doc, "cert")));
    size_t certlen = strlen(cert);
    const char *body = strchr(cert, '\n') + 1;
    const char *end = strstr(cert, "-----END");
    for (const char *p = body; p + 8 < end; p += 5) {
        if (*p == '\n')
            continue;
        char *m = strdup(cert);
        size_t off = (size_t)(p - cert);
        m[off] = m[off] == 'A' ? 'B' : 'A';
        assert_int_equal(json_object_set_new(doc, "cert", json_string(m)), 0);
        free(m);
        char what[64];
        snprintf(what, sizeof what, "cert char %zu", off);
        must_fail(&s, doc, -1, what);
    }
    assert_int_equal(json_object_set_new(doc, "cert", json_string(x->svc)), 0);
    must_fail(&s, doc, -1, "cert replaced by the service certificate");
    assert_int_equal(json_object_set_new(doc, "cert", json_stringn(cert, certlen / 2)), 0);
    must_fail(&s, doc, CL_RECEIPT_STEP_SHAPE, "cert truncated");
    assert_int_equal(json_object_set_new(doc, "cert", json_string("")), 0);
    must_fail(&s, doc, CL_RECEIPT_STEP_SHAPE, "cert empty");
    {
        size_t two = 2 * certlen + 1;
        char *m = malloc(two);
        snprintf(m, two, "%s%s", cert, cert);
        assert_int_equal(json_object_set_new(doc, "cert", json_string(m)), 0);
        free(m);
        must_fail(&s, doc, CL_RECEIPT_STEP_SHAPE, "two certificates");
    }
    assert_int_equal(json_object_set_new(doc, "cert", json_string(cert)), 0);

    /* serviceEndorsements: foreign certificates, garbage, wrong element types. */
    json_t *se_saved = json_object_get(doc, "serviceEndorsements");
    if (se_saved != NULL)
        json_incref(se_saved);
    assert_int_equal(json_object_set_new(doc, "serviceEndorsements", json_pack("[s]", x->svc)), 0);
    {
        /* Not a mutation that must fail: the self-signed service certificate endorses itself, so
         * [S] followed by S is a valid chain under §3 step 2 (the official verifier agrees). */
        cl_receipt_verdict v;
        assert_int_equal(verify_json(doc, x->svc, x->svclen, x->claims, &v), CL_OK);
    }
    assert_int_equal(json_object_set_new(doc, "serviceEndorsements", json_pack("[s]", cert)), 0);
    must_fail(&s, doc, CL_RECEIPT_STEP_ENDORSEMENT, "node cert as endorsement");
    assert_int_equal(json_object_set_new(doc, "serviceEndorsements", json_pack("[s]", "junk")), 0);
    must_fail(&s, doc, CL_RECEIPT_STEP_SHAPE, "junk endorsement");
    assert_int_equal(json_object_set_new(doc, "serviceEndorsements", json_pack("[i]", 1)), 0);
    must_fail(&s, doc, CL_RECEIPT_STEP_SHAPE, "endorsement is a number");
    assert_int_equal(json_object_set_new(doc, "serviceEndorsements", json_string("x")), 0);
    must_fail(&s, doc, CL_RECEIPT_STEP_SHAPE, "endorsements is a string");
    if (se_saved != NULL)
        assert_int_equal(json_object_set_new(doc, "serviceEndorsements", se_saved), 0);
    else
        assert_int_equal(json_object_del(doc, "serviceEndorsements"), 0);
    free(cert);

    /* Removed fields and wrong types. */
    sweep_types(&s, doc, doc, "cert", 1, 0);
    sweep_types(&s, doc, doc, "leafComponents", 1, 0);
    sweep_types(&s, doc, lc, "writeSetDigest", 1, 0);
    sweep_types(&s, doc, lc, "claimsDigest", 1, 0);
    sweep_types(&s, doc, lc, "commitEvidence", 1, 0);
    sweep_types(&s, doc, doc, "proof", 1, 1);
    sweep_types(&s, doc, doc, "signature", 1, 0);
    sweep_types(&s, doc, doc, "nodeId", 0, 0);
    assert_true(json_equal(doc, x->receipt));
    {
        cl_receipt_verdict v;
        assert_int_equal(verify_json(doc, x->svc, x->svclen, x->claims, &v), CL_OK);
    }
    /* The receipt is not an object at all. */
    json_t *arr = json_pack("[O]", doc);
    must_fail(&s, arr, CL_RECEIPT_STEP_SHAPE, "receipt inside an array");
    json_decref(arr);

    print_message("  %s: %zu mutations, all rejected\n", name, s.count);
    assert_true(s.count > 300);
    json_decref(doc);
}

static void test_mutation_sweep(void **state)
{
    (void)state;
    json_t *exp = load_json("expected.json");
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(exp, "valid"), i, e)
    {
        vector x;
        vector_load(&x, e);
        char name[128];
        snprintf(name, sizeof name, "%s%s%s", jstr(e, "receipt"), x.claims ? " + " : "",
                 x.claims ? jstr(e, "applicationClaims") : "");
        sweep_vector(&x, name);
        vector_free(&x);
    }
    json_decref(exp);
}

/* ---- builder, round trip, envelope ---------------------------------------------------------- */

static void test_round_trip(void **state)
{
    (void)state;
    const char *files[] = {"receipt_1.json", "receipt_1_snake_case.json", "receipt_2.json",
                           "receipt_p384_claims.json"};
    const char *certs[] = {"service_cert_1.pem", "service_cert_1.pem", "service_cert_2.pem",
                           "service_cert_p384.pem"};
    for (size_t f = 0; f < 4; f++) {
        size_t len, svclen;
        char *text = load(files[f], &len);
        char *svc = load(certs[f], &svclen);
        cl_receipt r = CL_RECEIPT_INIT, r2 = CL_RECEIPT_INIT;
        assert_int_equal(cl_receipt_parse(text, len, &r, NULL, NULL, 0), CL_OK);
        char *out = NULL;
        assert_int_equal(cl_receipt_to_json_string(&r, &out), CL_OK);
        assert_int_equal(cl_receipt_parse(out, strlen(out), &r2, NULL, NULL, 0), CL_OK);
        assert_int_equal(cl_receipt_verify_pem(&r2, svc, svclen, NULL, NULL), CL_OK);
        /* Same struct contents after the round trip. */
        assert_int_equal(r.cert_pem_len, r2.cert_pem_len);
        assert_string_equal(r.cert_pem, r2.cert_pem);
        assert_string_equal(r.commit_evidence, r2.commit_evidence);
        assert_memory_equal(r.write_set_digest, r2.write_set_digest, 32);
        assert_memory_equal(r.claims_digest, r2.claims_digest, 32);
        assert_memory_equal(r.node_id, r2.node_id, 32);
        assert_int_equal(r.proof_len, r2.proof_len);
        assert_memory_equal(r.proof, r2.proof, r.proof_len * sizeof *r.proof);
        assert_int_equal(r.signature_len, r2.signature_len);
        assert_memory_equal(r.signature, r2.signature, r.signature_len);
        /* And the receipt_1 forms rebuild to exactly receipt_1.json. */
        if (f <= 1) {
            json_t *want = load_json("receipt_1.json");
            json_t *got = NULL;
            assert_int_equal(cl_receipt_to_json(&r, &got), CL_OK);
            assert_true(json_equal(got, want));
            json_decref(got);
            json_decref(want);
        }
        cl_free(out);
        cl_receipt_clear(&r);
        cl_receipt_clear(&r2);
        free(text);
        free(svc);
    }
}

static void test_builder_field_set(void **state)
{
    (void)state;
    size_t len;
    char *pem = load("service_cert_1.pem", &len);
    cl_receipt r;
    cl_receipt_init(&r);
    json_t *j = NULL;
    assert_int_equal(cl_receipt_to_json(&r, &j), CL_EINVAL); /* empty */
    assert_int_equal(cl_receipt_set_cert(&r, pem, len), CL_OK);
    assert_int_equal(cl_receipt_set_commit_evidence(&r, "ce:2.35:ab", 10), CL_OK);
    memset(r.write_set_digest, 0xAB, 32);
    memset(r.claims_digest, 0, 32);
    assert_int_equal(cl_receipt_to_json(&r, &j), CL_EINVAL); /* no signature */
    const uint8_t sig[] = {0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0xfb};
    assert_int_equal(cl_receipt_set_signature(&r, sig, sizeof sig), CL_OK);
    r.has_node_id = 1;
    memset(r.node_id, 0xCD, 32);
    uint8_t h[32];
    memset(h, 0xEF, 32);
    assert_int_equal(cl_receipt_add_proof_step(&r, h, 1), CL_OK);
    assert_int_equal(cl_receipt_add_proof_step(&r, h, 0), CL_OK);
    assert_int_equal(cl_receipt_to_json(&r, &j), CL_OK);

    const char *top[] = {"cert",  "leafComponents",      "nodeId",
                         "proof", "serviceEndorsements", "signature"};
    assert_int_equal(json_object_size(j), 6);
    for (size_t i = 0; i < 6; i++)
        assert_non_null(json_object_get(j, top[i]));
    json_t *lc = json_object_get(j, "leafComponents");
    assert_int_equal(json_object_size(lc), 3);
    assert_string_equal(jstr(lc, "claimsDigest"),
                        "0000000000000000000000000000000000000000000000000000000000000000");
    assert_string_equal(jstr(lc, "writeSetDigest"),
                        "abababababababababababababababababababababababababababababababab");
    assert_string_equal(jstr(lc, "commitEvidence"), "ce:2.35:ab");
    assert_string_equal(jstr(j, "nodeId"),
                        "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd");
    assert_string_equal(jstr(j, "signature"), "MAYCAQECAfs=");
    assert_string_equal(jstr(j, "cert"), pem);
    json_t *proof = json_object_get(j, "proof");
    assert_int_equal(json_array_size(proof), 2);
    assert_int_equal(json_object_size(json_array_get(proof, 0)), 1);
    assert_string_equal(jstr(json_array_get(proof, 0), "left"),
                        "efefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefef");
    assert_int_equal(json_object_size(json_array_get(proof, 1)), 1);
    assert_non_null(json_object_get(json_array_get(proof, 1), "right"));
    assert_true(json_is_array(json_object_get(j, "serviceEndorsements")));
    assert_int_equal(json_array_size(json_object_get(j, "serviceEndorsements")), 0);
    json_decref(j);

    /* Endorsements are emitted in order; the serialised form sorts keys. */
    assert_int_equal(cl_receipt_add_endorsement(&r, pem, len), CL_OK);
    assert_int_equal(cl_receipt_add_endorsement(&r, "B", 1), CL_OK);
    char *s = NULL;
    assert_int_equal(cl_receipt_to_json_string(&r, &s), CL_OK);
    assert_true(strncmp(s, "{\"cert\":", 8) == 0);
    assert_non_null(strstr(s, ",\"B\"]"));
    cl_free(s);

    /* Limits and invalid text in setters. */
    assert_int_equal(cl_receipt_set_commit_evidence(&r, "a\0b", 3), CL_EINVAL);
    assert_int_equal(cl_receipt_set_cert(&r, "\xff", 1), CL_EINVAL);
    assert_int_equal(cl_receipt_set_cert(&r, "", 0), CL_EINVAL);
    uint8_t bigsig[CL_RECEIPT_MAX_SIG + 1] = {0};
    assert_int_equal(cl_receipt_set_signature(&r, bigsig, sizeof bigsig), CL_EOVERFLOW);
    while (r.proof_len < CL_RECEIPT_MAX_PROOF)
        assert_int_equal(cl_receipt_add_proof_step(&r, h, 1), CL_OK);
    assert_int_equal(cl_receipt_add_proof_step(&r, h, 1), CL_EOVERFLOW);
    while (r.n_endorsements < CL_RECEIPT_MAX_ENDORSEMENTS)
        assert_int_equal(cl_receipt_add_endorsement(&r, "x", 1), CL_OK);
    assert_int_equal(cl_receipt_add_endorsement(&r, "x", 1), CL_EOVERFLOW);
    /* A struct without nodeId builds without it. */
    r.has_node_id = 0;
    assert_int_equal(cl_receipt_to_json(&r, &j), CL_OK);
    assert_null(json_object_get(j, "nodeId"));
    json_decref(j);

    /* Allocation failures while building. */
    for (long n = 0;; n++) {
        cl_alloc_fail_after(n);
        int rc = cl_receipt_to_json(&r, &j);
        cl_alloc_fail_after(-1);
        if (rc == CL_OK) {
            json_decref(j);
            break;
        }
        assert_int_equal(rc, CL_ENOMEM);
    }
    cl_receipt_clear(&r);
    cl_receipt_clear(&r); /* idempotent */
    free(pem);
}

static void test_envelope(void **state)
{
    (void)state;
    json_t *receipt = load_json("receipt_p384_claims.json");
    json_t *claims1 = load_json("claims_1.json"), *claims3 = load_json("claims_3.json");
    size_t svclen;
    char *svc = load("service_cert_p384.pem", &svclen);

    json_t *env = json_pack("{s:s,s:s,s:O,s:O}", "state", "Ready", "transactionId", "2.13",
                            "receipt", receipt, "applicationClaims", claims1);
    char *text = json_dumps(env, 0);
    cl_receipt r = CL_RECEIPT_INIT;
    json_t *claims = NULL;
    assert_int_equal(cl_receipt_parse(text, strlen(text), &r, &claims, NULL, 0), CL_OK);
    assert_non_null(claims);
    assert_true(json_equal(claims, claims1));
    assert_string_equal(r.transaction_id, "2.13");
    cl_receipt_verdict v;
    assert_int_equal(cl_receipt_verify_pem(&r, svc, svclen, claims, &v), CL_OK);
    assert_int_equal(cl_receipt_verify_pem(&r, svc, svclen, claims3, &v), CL_ECLAIMS);
    assert_int_equal(v.step, CL_RECEIPT_STEP_CLAIMS);
    assert_non_null(strstr(v.message, "101badd9"));
    json_decref(claims);
    cl_free(text);

    /* Wrong claims inside the envelope fail through verify_json (which uses them). */
    assert_int_equal(json_object_set(env, "applicationClaims", claims3), 0);
    assert_int_equal(verify_json(env, svc, svclen, NULL, &v), CL_ECLAIMS);
    assert_int_equal(json_object_set_new(env, "applicationClaims", json_array()), 0);
    assert_int_equal(verify_json(env, svc, svclen, NULL, &v), CL_EJSON);
    assert_int_equal(v.step, CL_RECEIPT_STEP_CLAIMS);
    assert_int_equal(json_object_set_new(env, "applicationClaims", json_null()), 0);
    assert_int_equal(verify_json(env, svc, svclen, NULL, &v), CL_OK);
    assert_int_equal(json_object_set_new(env, "applicationClaims", json_string("x")), 0);
    assert_int_equal(verify_json(env, svc, svclen, NULL, &v), CL_EJSON);
    assert_int_equal(v.step, CL_RECEIPT_STEP_SHAPE);
    assert_int_equal(json_object_del(env, "applicationClaims"), 0);
    assert_int_equal(verify_json(env, svc, svclen, NULL, &v), CL_OK);
    assert_int_equal(json_object_set_new(env, "transactionId", json_integer(2)), 0);
    assert_int_equal(verify_json(env, svc, svclen, NULL, &v), CL_EJSON);
    /* the envelope's transactionId is not signed: one other than the commit evidence's
     * ("ce:2.13:...") would relabel the receipt, so it is refused */
    static const char *const other[] = {"9.999", "2.1", "2.130", "02.13", "2.13:", "2", ""};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        assert_int_equal(json_object_set_new(env, "transactionId", json_string(other[i])), 0);
        int rc = verify_json(env, svc, svclen, NULL, &v);
        if (rc != CL_EINVAL || v.step != CL_RECEIPT_STEP_SHAPE ||
            strstr(v.message, "commit evidence") == NULL)
            fail_msg("transactionId %s: %d step %d %s", other[i], rc, (int)v.step, v.message);
    }
    assert_int_equal(json_object_set_new(env, "transactionId", json_string("2.13")), 0);
    assert_int_equal(verify_json(env, svc, svclen, NULL, &v), CL_OK);
    assert_int_equal(json_object_del(env, "transactionId"), 0);
    assert_int_equal(json_object_set_new(env, "state", json_string("Loading")), 0);
    assert_int_equal(verify_json(env, svc, svclen, NULL, &v), CL_ESTATE);
    /* a state is shown as printable ASCII only (it goes to a terminal) */
    assert_int_equal(json_object_set_new(env, "state", json_string("\x1b]0;x\x07\xc3\xa9")), 0);
    char eb2[200];
    char *t2 = json_dumps(env, 0);
    cl_receipt r2 = CL_RECEIPT_INIT;
    assert_int_equal(cl_receipt_parse(t2, strlen(t2), &r2, NULL, eb2, sizeof eb2), CL_ESTATE);
    assert_string_equal(eb2, "receipt is not ready (state \"?]0;x???\")");
    cl_receipt_clear(&r2);
    cl_free(t2);
    assert_int_equal(json_object_set_new(env, "state", json_string("Loading")), 0);
    assert_int_equal(json_object_del(env, "receipt"), 0);
    assert_int_equal(verify_json(env, svc, svclen, NULL, &v), CL_ESTATE);
    assert_int_equal(json_object_set_new(env, "state", json_string("Ready")), 0);
    assert_int_equal(verify_json(env, svc, svclen, NULL, &v), CL_EJSON);
    assert_int_equal(json_object_set_new(env, "receipt", json_string("x")), 0);
    assert_int_equal(verify_json(env, svc, svclen, NULL, &v), CL_EJSON);
    json_decref(env);

    /* snake_case envelope (legacy key forms all the way down). */
    json_t *snake = load_json("receipt_1_snake_case.json");
    size_t svc1len;
    char *svc1 = load("service_cert_1.pem", &svc1len);
    env = json_pack("{s:s,s:s,s:O}", "state", "Ready", "transaction_id", "2.35", "receipt", snake);
    text = json_dumps(env, 0);
    assert_int_equal(cl_receipt_parse(text, strlen(text), &r, &claims, NULL, 0), CL_OK);
    assert_null(claims);
    assert_string_equal(r.transaction_id, "2.35");
    assert_int_equal(cl_receipt_verify_pem(&r, svc1, svc1len, NULL, &v), CL_OK);
    cl_free(text);
    json_decref(env);

    /* Claims beside a bare receipt would go unchecked: refused. */
    assert_int_equal(json_object_set_new(snake, "applicationClaims", json_array()), 0);
    char eb3[200];
    char *t3 = json_dumps(snake, 0);
    assert_int_equal(cl_receipt_parse(t3, strlen(t3), &r, NULL, eb3, sizeof eb3), CL_EJSON);
    assert_non_null(strstr(eb3, "applicationClaims beside a bare receipt"));
    cl_free(t3);
    assert_int_equal(json_object_del(snake, "applicationClaims"), 0);

    /* Both spellings of one key collide after conversion. */
    assert_int_equal(json_object_set_new(snake, "nodeId", json_string("00")), 0);
    assert_int_equal(verify_json(snake, svc1, svc1len, NULL, &v), CL_EJSON);
    json_decref(snake);

    /* CCF 1.x receipts are recognised and refused. */
    const char *v1 = "{\"leaf\":\"00\",\"nodeId\":\"00\",\"proof\":[],\"root\":\"00\","
                     "\"signature\":\"AA==\"}";
    char eb[200];
    assert_int_equal(cl_receipt_parse(v1, strlen(v1), &r, NULL, eb, sizeof eb), CL_EUNSUPPORTED);
    assert_non_null(strstr(eb, "1.x"));

    cl_receipt_clear(&r);
    free(svc);
    free(svc1);
    json_decref(receipt);
    json_decref(claims1);
    json_decref(claims3);
}

static void test_limits(void **state)
{
    (void)state;
    json_t *base = load_json("receipt_1.json");
    size_t svclen;
    char *svc = load("service_cert_1.pem", &svclen);
    cl_receipt_verdict v;

    json_t *doc = json_deep_copy(base);
    json_t *proof = json_object_get(doc, "proof");
    while (json_array_size(proof) < CL_RECEIPT_MAX_PROOF)
        assert_int_equal(json_array_append(proof, json_array_get(proof, 0)), 0);
    assert_int_equal(verify_json(doc, svc, svclen, NULL, &v), CL_ESIG); /* 64: allowed */
    assert_int_equal(json_array_append(proof, json_array_get(proof, 0)), 0);
    assert_int_equal(verify_json(doc, svc, svclen, NULL, &v), CL_EOVERFLOW);
    json_decref(doc);

    doc = json_deep_copy(base);
    json_t *se = json_array();
    for (int i = 0; i <= CL_RECEIPT_MAX_ENDORSEMENTS; i++)
        assert_int_equal(json_array_append_new(se, json_string(svc)), 0);
    assert_int_equal(json_object_set_new(doc, "serviceEndorsements", se), 0);
    assert_int_equal(verify_json(doc, svc, svclen, NULL, &v), CL_EOVERFLOW);
    json_decref(doc);

    /* A huge document is refused before parsing. */
    size_t big = CL_RECEIPT_MAX_JSON + 10;
    char *text = malloc(big);
    memset(text, ' ', big);
    text[0] = '{';
    text[big - 1] = '}';
    cl_receipt r = CL_RECEIPT_INIT;
    assert_int_equal(cl_receipt_parse(text, big, &r, NULL, NULL, 0), CL_EOVERFLOW);
    free(text);
    /* Garbage and trailing data. */
    assert_int_equal(cl_receipt_parse("", 0, &r, NULL, NULL, 0), CL_EJSON);
    assert_int_equal(cl_receipt_parse(NULL, 0, &r, NULL, NULL, 0), CL_EJSON);
    assert_int_equal(cl_receipt_parse("{} {}", 5, &r, NULL, NULL, 0), CL_EJSON);
    assert_int_equal(cl_receipt_parse("[]", 2, &r, NULL, NULL, 0), CL_EJSON);

    /* Verify refuses an inconsistent struct and a bad service certificate. */
    assert_int_equal(cl_receipt_verify_pem(&r, svc, svclen, NULL, &v), CL_EINVAL);
    assert_int_equal(v.step, CL_RECEIPT_STEP_SHAPE);
    char *s = json_dumps(base, 0);
    assert_int_equal(cl_receipt_parse(s, strlen(s), &r, NULL, NULL, 0), CL_OK);
    cl_free(s);
    assert_int_equal(cl_receipt_verify_pem(&r, "junk", 4, NULL, &v), CL_EPEM);
    assert_int_equal(v.step, CL_RECEIPT_STEP_SHAPE);
    assert_int_equal(cl_receipt_verify(&r, NULL, NULL, &v), CL_EINVAL);

    /* Allocation failures while parsing a pre-parsed document and while verifying. */
    for (long n = 0;; n++) {
        cl_receipt r2 = CL_RECEIPT_INIT;
        json_t *claims = NULL;
        cl_alloc_fail_after(n);
        int rc = cl_receipt_from_json(base, &r2, &claims, NULL, 0);
        cl_alloc_fail_after(-1);
        assert_null(claims);
        cl_receipt_clear(&r2);
        if (rc == CL_OK)
            break;
        assert_int_equal(rc, CL_ENOMEM);
        assert_true(n < 10000);
    }
    for (long n = 0;; n++) {
        cl_alloc_fail_after(n);
        int rc = cl_receipt_verify_pem(&r, svc, svclen, NULL, &v);
        cl_alloc_fail_after(-1);
        if (rc == CL_OK)
            break;
        assert_int_equal(rc, CL_ENOMEM);
        assert_true(n < 10000);
    }
    assert_string_equal(cl_receipt_step_name(CL_RECEIPT_STEP_NODE_ID), "nodeId");
    assert_string_equal(cl_receipt_step_name(CL_RECEIPT_STEP_ENDORSEMENT), "endorsement");
    cl_receipt_clear(&r);
    json_decref(base);
    free(svc);
}

int main(void)
{
    cl_json_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_vectors),  cmocka_unit_test(test_invalid_vectors),
        cmocka_unit_test(test_claims_vectors), cmocka_unit_test(test_claims_ledger_entry_api),
        cmocka_unit_test(test_claims_errors),  cmocka_unit_test(test_mutation_sweep),
        cmocka_unit_test(test_round_trip),     cmocka_unit_test(test_builder_field_set),
        cmocka_unit_test(test_envelope),       cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
