/*
 * receipt.c — receipt JSON (spec/receipts.md §1) and its verification (§3).
 *
 * The decoder and the encoder of the receipt JSON live here together. Everything a receipt says is
 * untrusted until cl_receipt_verify has checked it: the parser only enforces shape and limits, so
 * that the verifier works on fixed-size decoded digests and bounded lists.
 */
#include "ledger/receipt.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/codec.h"
#include "base/json.h"
#include "crypto/hash.h"
#include "ledger/claims.h"

__attribute__((format(printf, 3, 4))) static void say(char *buf, size_t cap, const char *fmt, ...)
{
    if (buf == NULL || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
}

/* ---- struct management ---------------------------------------------------------------------- */

void cl_receipt_init(cl_receipt *r) { memset(r, 0, sizeof *r); }

void cl_receipt_clear(cl_receipt *r)
{
    if (r == NULL)
        return;
    cl_free(r->cert_pem);
    cl_free(r->commit_evidence);
    cl_free(r->proof);
    for (size_t i = 0; i < r->n_endorsements; i++)
        cl_free(r->endorsements[i].pem);
    cl_free(r->endorsements);
    cl_free(r->signature);
    cl_free(r->transaction_id);
    cl_receipt_init(r);
}

/* A NUL-terminated copy of text that must be UTF-8 without NUL. */
static int dup_text(const char *s, size_t len, size_t max, char **out)
{
    CL_ENSURE(s != NULL || len == 0, CL_EINVAL);
    CL_ENSURE(len <= max, CL_EOVERFLOW);
    CL_ENSURE(cl_utf8_valid(s, len), CL_EINVAL);
    char *p = cl_malloc(len + 1);
    CL_ENSURE(p != NULL, CL_ENOMEM);
    if (len > 0)
        memcpy(p, s, len);
    p[len] = '\0';
    *out = p;
    return CL_OK;
}

int cl_receipt_set_cert(cl_receipt *r, const char *pem, size_t len)
{
    char *p;
    CL_ENSURE(len > 0, CL_EINVAL);
    CL_TRY(dup_text(pem, len, CL_RECEIPT_MAX_PEM, &p));
    cl_free(r->cert_pem);
    r->cert_pem = p;
    r->cert_pem_len = len;
    return CL_OK;
}

int cl_receipt_set_commit_evidence(cl_receipt *r, const char *ce, size_t len)
{
    char *p;
    CL_TRY(dup_text(ce, len, CL_RECEIPT_MAX_CE, &p));
    cl_free(r->commit_evidence);
    r->commit_evidence = p;
    r->commit_evidence_len = len;
    return CL_OK;
}

int cl_receipt_set_transaction_id(cl_receipt *r, const char *txid, size_t len)
{
    char *p;
    CL_TRY(dup_text(txid, len, CL_RECEIPT_MAX_TXID, &p));
    cl_free(r->transaction_id);
    r->transaction_id = p;
    return CL_OK;
}

int cl_receipt_set_signature(cl_receipt *r, const uint8_t *sig, size_t len)
{
    CL_ENSURE(sig != NULL && len > 0, CL_EINVAL);
    CL_ENSURE(len <= CL_RECEIPT_MAX_SIG, CL_EOVERFLOW);
    uint8_t *p = cl_malloc(len);
    CL_ENSURE(p != NULL, CL_ENOMEM);
    memcpy(p, sig, len);
    cl_free(r->signature);
    r->signature = p;
    r->signature_len = len;
    return CL_OK;
}

int cl_receipt_add_proof_step(cl_receipt *r, const uint8_t hash[32], int is_left)
{
    CL_ENSURE(hash != NULL, CL_EINVAL);
    CL_ENSURE(r->proof_len < CL_RECEIPT_MAX_PROOF, CL_EOVERFLOW);
    cl_receipt_step *p = cl_realloc(r->proof, (r->proof_len + 1) * sizeof *p);
    CL_ENSURE(p != NULL, CL_ENOMEM);
    r->proof = p;
    memcpy(p[r->proof_len].hash, hash, 32);
    p[r->proof_len].is_left = is_left ? 1 : 0;
    r->proof_len++;
    return CL_OK;
}

int cl_receipt_add_endorsement(cl_receipt *r, const char *pem, size_t len)
{
    CL_ENSURE(len > 0, CL_EINVAL);
    CL_ENSURE(r->n_endorsements < CL_RECEIPT_MAX_ENDORSEMENTS, CL_EOVERFLOW);
    char *copy;
    CL_TRY(dup_text(pem, len, CL_RECEIPT_MAX_PEM, &copy));
    cl_receipt_pem *p = cl_realloc(r->endorsements, (r->n_endorsements + 1) * sizeof *p);
    if (p == NULL) {
        cl_free(copy);
        return CL_ENOMEM;
    }
    r->endorsements = p;
    p[r->n_endorsements].pem = copy;
    p[r->n_endorsements].len = len;
    r->n_endorsements++;
    return CL_OK;
}

/* ---- snake_case -> camelCase ---------------------------------------------------------------- */

static int camel_keys(const json_t *in, int depth, json_t **out)
{
    CL_ENSURE(depth <= CL_JSON_MAX_DEPTH, CL_EJSON);
    if (json_is_object(in)) {
        json_t *o = json_object();
        CL_ENSURE(o != NULL, CL_ENOMEM);
        const char *k;
        json_t *v;
        int rc = CL_OK;
        char *nk = NULL;
        json_object_foreach((json_t *)in, k, v)
        {
            size_t kl = strlen(k), o_ = 0;
            nk = cl_malloc(kl + 1);
            CL_GUARD_IF(nk == NULL, CL_ENOMEM);
            for (size_t i = 0; i < kl; i++) {
                if (k[i] == '_' && k[i + 1] >= 'a' && k[i + 1] <= 'z') {
                    nk[o_++] = (char)(k[i + 1] - 'a' + 'A');
                    i++;
                } else {
                    nk[o_++] = k[i];
                }
            }
            nk[o_] = '\0';
            CL_GUARD_IF(json_object_get(o, nk) != NULL, CL_EJSON);
            json_t *cv = NULL;
            CL_GUARD(camel_keys(v, depth + 1, &cv));
            CL_GUARD_IF(json_object_set_new(o, nk, cv) != 0, CL_ENOMEM);
            cl_free(nk);
            nk = NULL;
        }
    out:
        cl_free(nk);
        if (rc < 0) {
            json_decref(o);
            return rc;
        }
        *out = o;
        return CL_OK;
    }
    if (json_is_array(in)) {
        json_t *a = json_array();
        CL_ENSURE(a != NULL, CL_ENOMEM);
        size_t i;
        json_t *v;
        json_array_foreach(in, i, v)
        {
            json_t *cv = NULL;
            int rc = camel_keys(v, depth + 1, &cv);
            if (rc == CL_OK && json_array_append_new(a, cv) != 0)
                rc = CL_ENOMEM;
            if (rc < 0) {
                json_decref(a);
                return rc;
            }
        }
        *out = a;
        return CL_OK;
    }
    /* Scalars are shared: nothing here mutates them. */
    *out = json_incref((json_t *)in);
    return CL_OK;
}

int cl_json_camel_keys(const json_t *in, json_t **out)
{
    CL_ENSURE(in != NULL && out != NULL, CL_EINVAL);
    cl_json_init();
    return camel_keys(in, 0, out);
}

/* ---- parsing -------------------------------------------------------------------------------- */

/* A 32-byte digest given as 64 hex characters (either case). */
static int get_digest(const json_t *obj, const char *key, uint8_t out[32], char *eb, size_t el)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL) {
        say(eb, el, "%s is missing", key);
        return CL_EJSON;
    }
    if (!json_is_string(v)) {
        say(eb, el, "%s is not a string", key);
        return CL_EJSON;
    }
    if (cl_hex_decode(json_string_value(v), json_string_length(v), out, 32) != CL_OK) {
        say(eb, el, "%s is not 64 hexadecimal characters", key);
        return CL_EHEX;
    }
    return CL_OK;
}

static int get_text(const json_t *obj, const char *key, const char **s, size_t *len, char *eb,
                    size_t el)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL) {
        say(eb, el, "%s is missing", key);
        return CL_EJSON;
    }
    if (!json_is_string(v)) {
        say(eb, el, "%s is not a string", key);
        return CL_EJSON;
    }
    *s = json_string_value(v);
    *len = json_string_length(v);
    return CL_OK;
}

static int parse_proof(const json_t *proof, cl_receipt *r, char *eb, size_t el)
{
    if (!json_is_array(proof)) {
        say(eb, el, proof == NULL ? "proof is missing" : "proof is not a list");
        return CL_EJSON;
    }
    if (json_array_size(proof) > CL_RECEIPT_MAX_PROOF) {
        say(eb, el, "proof has more than %d elements", CL_RECEIPT_MAX_PROOF);
        return CL_EOVERFLOW;
    }
    size_t i;
    json_t *e;
    json_array_foreach(proof, i, e)
    {
        if (!json_is_object(e) || json_object_size(e) != 1) {
            say(eb, el, "proof[%zu] is not an object with exactly one of left/right", i);
            return CL_EJSON;
        }
        json_t *left = json_object_get(e, "left"), *right = json_object_get(e, "right");
        json_t *h = left != NULL ? left : right;
        if (h == NULL || !json_is_string(h)) {
            say(eb, el, "proof[%zu] is not an object with exactly one of left/right (string)", i);
            return CL_EJSON;
        }
        uint8_t hash[32];
        if (cl_hex_decode(json_string_value(h), json_string_length(h), hash, 32) != CL_OK) {
            say(eb, el, "proof[%zu].%s is not 64 hexadecimal characters", i,
                left != NULL ? "left" : "right");
            return CL_EHEX;
        }
        int rc = cl_receipt_add_proof_step(r, hash, left != NULL);
        if (rc < 0) {
            say(eb, el, "proof[%zu]: %s", i, cl_strerror(rc));
            return rc;
        }
    }
    return CL_OK;
}

static int parse_endorsements(const json_t *se, cl_receipt *r, char *eb, size_t el)
{
    if (se == NULL)
        return CL_OK; /* optional */
    if (!json_is_array(se)) {
        say(eb, el, "serviceEndorsements is not a list");
        return CL_EJSON;
    }
    if (json_array_size(se) > CL_RECEIPT_MAX_ENDORSEMENTS) {
        say(eb, el, "serviceEndorsements has more than %d elements", CL_RECEIPT_MAX_ENDORSEMENTS);
        return CL_EOVERFLOW;
    }
    size_t i;
    json_t *e;
    json_array_foreach(se, i, e)
    {
        if (!json_is_string(e)) {
            say(eb, el, "serviceEndorsements[%zu] is not a string", i);
            return CL_EJSON;
        }
        int rc = cl_receipt_add_endorsement(r, json_string_value(e), json_string_length(e));
        if (rc < 0) {
            say(eb, el, "serviceEndorsements[%zu]: %s", i, cl_strerror(rc));
            return rc == CL_EINVAL ? CL_EJSON : rc;
        }
    }
    return CL_OK;
}

/* The receipt object itself (§3 step 0), camelCase keys. */
static int parse_receipt_object(const json_t *o, cl_receipt *r, char *eb, size_t el)
{
    const char *s;
    size_t len;
    int rc;
    if (!json_is_object(o)) {
        say(eb, el, "receipt is not a JSON object");
        return CL_EJSON;
    }
    if (json_object_get(o, "cert") == NULL &&
        (json_object_get(o, "leaf") != NULL || json_object_get(o, "root") != NULL)) {
        say(eb, el, "CCF 1.x receipt (leaf/root without cert) is not supported");
        return CL_EUNSUPPORTED;
    }

    CL_TRY(get_text(o, "cert", &s, &len, eb, el));
    rc = cl_receipt_set_cert(r, s, len);
    if (rc < 0) {
        say(eb, el, "cert: %s", len == 0 ? "empty" : cl_strerror(rc));
        return rc == CL_EINVAL ? CL_EJSON : rc;
    }

    const json_t *lc = json_object_get(o, "leafComponents");
    if (!json_is_object(lc)) {
        say(eb, el, lc == NULL ? "leafComponents is missing" : "leafComponents is not an object");
        return CL_EJSON;
    }
    CL_TRY(get_digest(lc, "claimsDigest", r->claims_digest, eb, el));
    CL_TRY(get_digest(lc, "writeSetDigest", r->write_set_digest, eb, el));
    CL_TRY(get_text(lc, "commitEvidence", &s, &len, eb, el));
    rc = cl_receipt_set_commit_evidence(r, s, len);
    if (rc < 0) {
        say(eb, el, "commitEvidence: %s", cl_strerror(rc));
        return rc == CL_EINVAL ? CL_EJSON : rc;
    }

    if (json_object_get(o, "nodeId") != NULL) {
        CL_TRY(get_digest(o, "nodeId", r->node_id, eb, el));
        r->has_node_id = 1;
    }

    CL_TRY(parse_proof(json_object_get(o, "proof"), r, eb, el));
    CL_TRY(parse_endorsements(json_object_get(o, "serviceEndorsements"), r, eb, el));

    CL_TRY(get_text(o, "signature", &s, &len, eb, el));
    if (len == 0 || len > cl_b64_encoded_len(CL_RECEIPT_MAX_SIG, CL_B64_STD)) {
        say(eb, el, "signature is empty or longer than %d bytes", CL_RECEIPT_MAX_SIG);
        return len == 0 ? CL_EJSON : CL_EOVERFLOW;
    }
    uint8_t sig[CL_RECEIPT_MAX_SIG];
    size_t siglen = 0;
    rc = cl_b64_decode(s, len, sig, sizeof sig, &siglen, CL_B64_STD);
    if (rc < 0) {
        say(eb, el, "signature is not canonical standard base64");
        return rc;
    }
    if (siglen == 0) {
        say(eb, el, "signature is empty");
        return CL_EJSON;
    }
    return cl_receipt_set_signature(r, sig, siglen);
}

static int parse_any(const json_t *j, cl_receipt *r, json_t **claims_out, char *eb, size_t el)
{
    if (!json_is_object(j)) {
        say(eb, el, "receipt is not a JSON object");
        return CL_EJSON;
    }
    const json_t *rj = json_object_get(j, "receipt");
    int envelope =
        rj != NULL ||
        (json_object_get(j, "cert") == NULL &&
         (json_object_get(j, "state") != NULL || json_object_get(j, "transactionId") != NULL));
    if (!envelope) {
        /* Claims beside a bare receipt would go unchecked: an envelope carries them. */
        if (json_object_get(j, "applicationClaims") != NULL) {
            say(eb, el,
                "applicationClaims beside a bare receipt: put the receipt under "
                "\"receipt\" (an envelope), or give the claims separately");
            return CL_EJSON;
        }
        return parse_receipt_object(j, r, eb, el);
    }

    const json_t *state = json_object_get(j, "state");
    if (state != NULL) {
        if (!json_is_string(state)) {
            say(eb, el, "state is not a string");
            return CL_EJSON;
        }
        if (strcmp(json_string_value(state), "Ready") != 0) {
            /* shown to a terminal: printable ASCII only */
            char shown[33];
            const char *st = json_string_value(state);
            size_t k = 0;
            for (; st[k] != '\0' && k < sizeof shown - 1; k++)
                shown[k] = st[k] >= 0x20 && st[k] < 0x7F ? st[k] : '?';
            shown[k] = '\0';
            say(eb, el, "receipt is not ready (state \"%s\")", shown);
            return CL_ESTATE;
        }
    }
    if (rj == NULL) {
        say(eb, el, "envelope has no receipt");
        return CL_EJSON;
    }
    const json_t *txid = json_object_get(j, "transactionId");
    if (txid != NULL) {
        if (!json_is_string(txid) || json_string_length(txid) > CL_RECEIPT_MAX_TXID) {
            say(eb, el, "transactionId is not a string of at most %d bytes", CL_RECEIPT_MAX_TXID);
            return CL_EJSON;
        }
    }
    const json_t *claims = json_object_get(j, "applicationClaims");
    if (claims != NULL && !json_is_null(claims) && !json_is_array(claims)) {
        say(eb, el, "applicationClaims is not a list");
        return CL_EJSON;
    }
    CL_TRY(parse_receipt_object(rj, r, eb, el));
    if (txid != NULL) {
        int rc =
            cl_receipt_set_transaction_id(r, json_string_value(txid), json_string_length(txid));
        if (rc < 0) {
            say(eb, el, "transactionId: %s", cl_strerror(rc));
            return rc == CL_EINVAL ? CL_EJSON : rc;
        }
    }
    if (claims_out != NULL && json_is_array(claims))
        *claims_out = json_incref((json_t *)claims);
    return CL_OK;
}

int cl_receipt_from_json(const json_t *j, cl_receipt *out, json_t **claims_out, char *errbuf,
                         size_t errlen)
{
    say(errbuf, errlen, "%s", "");
    if (claims_out != NULL)
        *claims_out = NULL;
    CL_ENSURE(out != NULL, CL_EINVAL);
    cl_receipt_clear(out);
    if (j == NULL) {
        say(errbuf, errlen, "no receipt");
        return CL_EINVAL;
    }
    json_t *cj = NULL;
    int rc = cl_json_camel_keys(j, &cj);
    if (rc < 0) {
        say(errbuf, errlen, "%s",
            rc == CL_EJSON ? "keys collide after snake_case to camelCase conversion"
                           : cl_strerror(rc));
        return rc;
    }
    rc = parse_any(cj, out, claims_out, errbuf, errlen);
    json_decref(cj);
    if (rc < 0) {
        if (errbuf != NULL && errlen > 0 && errbuf[0] == '\0')
            say(errbuf, errlen, "%s", cl_strerror(rc));
        cl_receipt_clear(out);
        if (claims_out != NULL && *claims_out != NULL) {
            json_decref(*claims_out);
            *claims_out = NULL;
        }
    }
    return rc;
}

int cl_receipt_parse(const char *json, size_t len, cl_receipt *out, json_t **claims_out,
                     char *errbuf, size_t errlen)
{
    if (claims_out != NULL)
        *claims_out = NULL;
    CL_ENSURE(out != NULL && (json != NULL || len == 0), CL_EINVAL);
    cl_receipt_clear(out);
    json_t *j = NULL;
    int rc = cl_json_parse(json != NULL ? json : "", len, CL_RECEIPT_MAX_JSON, &j, errbuf, errlen);
    if (rc < 0) {
        if (errbuf != NULL && errlen > 0 && errbuf[0] == '\0')
            say(errbuf, errlen, "%s", cl_strerror(rc));
        return rc;
    }
    rc = cl_receipt_from_json(j, out, claims_out, errbuf, errlen);
    json_decref(j);
    return rc;
}

/* ---- building ------------------------------------------------------------------------------- */

static int set_hex(json_t *o, const char *key, const uint8_t d[32])
{
    char hex[65];
    cl_hex_encode(d, 32, hex);
    return json_object_set_new(o, key, json_string(hex)) == 0 ? CL_OK : CL_ENOMEM;
}

static int set_text(json_t *o, const char *key, const char *s, size_t len)
{
    CL_ENSURE(s != NULL && cl_utf8_valid(s, len), CL_EINVAL);
    return json_object_set_new(o, key, json_stringn(s, len)) == 0 ? CL_OK : CL_ENOMEM;
}

int cl_receipt_to_json(const cl_receipt *r, json_t **out)
{
    CL_ENSURE(r != NULL && out != NULL, CL_EINVAL);
    CL_ENSURE(r->cert_pem != NULL && r->cert_pem_len > 0 && r->commit_evidence != NULL, CL_EINVAL);
    CL_ENSURE(r->signature != NULL && r->signature_len > 0, CL_EINVAL);
    CL_ENSURE(r->signature_len <= CL_RECEIPT_MAX_SIG && r->proof_len <= CL_RECEIPT_MAX_PROOF &&
                  r->n_endorsements <= CL_RECEIPT_MAX_ENDORSEMENTS,
              CL_EOVERFLOW);
    CL_ENSURE(r->proof_len == 0 || r->proof != NULL, CL_EINVAL);
    CL_ENSURE(r->n_endorsements == 0 || r->endorsements != NULL, CL_EINVAL);
    cl_json_init();
    int rc = CL_OK;
    char *sig = NULL;
    json_t *o = json_object(), *lc = json_object(), *proof = json_array(), *se = json_array();
    CL_GUARD_IF(o == NULL || lc == NULL || proof == NULL || se == NULL, CL_ENOMEM);

    CL_GUARD(set_text(o, "cert", r->cert_pem, r->cert_pem_len));
    CL_GUARD(set_hex(lc, "claimsDigest", r->claims_digest));
    CL_GUARD(set_text(lc, "commitEvidence", r->commit_evidence, r->commit_evidence_len));
    CL_GUARD(set_hex(lc, "writeSetDigest", r->write_set_digest));
    if (r->has_node_id)
        CL_GUARD(set_hex(o, "nodeId", r->node_id));
    for (size_t i = 0; i < r->proof_len; i++) {
        json_t *e = json_object();
        CL_GUARD_IF(e == NULL, CL_ENOMEM);
        if (json_array_append_new(proof, e) != 0)
            CL_GUARD_IF(1, CL_ENOMEM);
        CL_GUARD(set_hex(e, r->proof[i].is_left ? "left" : "right", r->proof[i].hash));
    }
    for (size_t i = 0; i < r->n_endorsements; i++) {
        json_t *e = NULL;
        CL_GUARD_IF(r->endorsements[i].pem == NULL ||
                        !cl_utf8_valid(r->endorsements[i].pem, r->endorsements[i].len),
                    CL_EINVAL);
        e = json_stringn(r->endorsements[i].pem, r->endorsements[i].len);
        CL_GUARD_IF(e == NULL || json_array_append_new(se, e) != 0, CL_ENOMEM);
    }
    sig = cl_b64_encode_alloc(r->signature, r->signature_len, CL_B64_STD);
    CL_GUARD_IF(sig == NULL, CL_ENOMEM);
    CL_GUARD_IF(json_object_set_new(o, "signature", json_string(sig)) != 0, CL_ENOMEM);

    CL_GUARD_IF(json_object_set(o, "leafComponents", lc) != 0, CL_ENOMEM);
    CL_GUARD_IF(json_object_set(o, "proof", proof) != 0, CL_ENOMEM);
    CL_GUARD_IF(json_object_set(o, "serviceEndorsements", se) != 0, CL_ENOMEM);
    *out = o;
    o = NULL;
out:
    cl_free(sig);
    json_decref(o);
    json_decref(lc);
    json_decref(proof);
    json_decref(se);
    return rc;
}

int cl_receipt_to_json_string(const cl_receipt *r, char **out)
{
    CL_ENSURE(out != NULL, CL_EINVAL);
    json_t *j = NULL;
    CL_TRY(cl_receipt_to_json(r, &j));
    char *s = cl_json_dump(j);
    json_decref(j);
    CL_ENSURE(s != NULL, CL_ENOMEM);
    *out = s;
    return CL_OK;
}

/* ---- verification (§3) ---------------------------------------------------------------------- */

const char *cl_receipt_step_name(cl_receipt_verify_step s)
{
    switch (s) {
    case CL_RECEIPT_VALID:
        return "valid";
    case CL_RECEIPT_STEP_SHAPE:
        return "shape";
    case CL_RECEIPT_STEP_CLAIMS:
        return "claims";
    case CL_RECEIPT_STEP_ENDORSEMENT:
        return "endorsement";
    case CL_RECEIPT_STEP_LEAF:
        return "leaf";
    case CL_RECEIPT_STEP_ROOT:
        return "root";
    case CL_RECEIPT_STEP_NODE_ID:
        return "nodeId";
    case CL_RECEIPT_STEP_SIGNATURE:
        return "signature";
    }
    return "unknown";
}

__attribute__((format(printf, 4, 5))) static int
fail(cl_receipt_verdict *v, cl_receipt_verify_step step, int err, const char *fmt, ...)
{
    v->step = step;
    v->err = err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->message, sizeof v->message, fmt, ap);
    va_end(ap);
    return err;
}

static int shape_of_struct(const cl_receipt *r, cl_receipt_verdict *v)
{
    if (r->cert_pem == NULL || r->cert_pem_len == 0)
        return fail(v, CL_RECEIPT_STEP_SHAPE, CL_EINVAL, "cert is missing");
    if (r->commit_evidence == NULL)
        return fail(v, CL_RECEIPT_STEP_SHAPE, CL_EINVAL, "commitEvidence is missing");
    if (r->signature == NULL || r->signature_len == 0)
        return fail(v, CL_RECEIPT_STEP_SHAPE, CL_EINVAL, "signature is missing");
    if (r->proof_len > CL_RECEIPT_MAX_PROOF || (r->proof_len > 0 && r->proof == NULL))
        return fail(v, CL_RECEIPT_STEP_SHAPE, CL_EOVERFLOW, "proof has more than %d elements",
                    CL_RECEIPT_MAX_PROOF);
    if (r->n_endorsements > CL_RECEIPT_MAX_ENDORSEMENTS ||
        (r->n_endorsements > 0 && r->endorsements == NULL))
        return fail(v, CL_RECEIPT_STEP_SHAPE, CL_EOVERFLOW,
                    "serviceEndorsements has more than %d elements", CL_RECEIPT_MAX_ENDORSEMENTS);
    if (r->signature_len > CL_RECEIPT_MAX_SIG)
        return fail(v, CL_RECEIPT_STEP_SHAPE, CL_EOVERFLOW, "signature longer than %d bytes",
                    CL_RECEIPT_MAX_SIG);
    /* An envelope's transactionId is not signed: only the one the commit evidence names
     * ("ce:<view>.<seqno>:...") is proven, so any other is refused rather than reported. */
    if (r->transaction_id != NULL) {
        size_t tl = strlen(r->transaction_id);
        const char *ce = r->commit_evidence; /* revealed after commit: public */
        int named = tl > 0 && r->commit_evidence_len >= 4 + tl &&
                    memcmp(ce, "ce:", 3) == 0 &&                  /* lint:public */
                    memcmp(ce + 3, r->transaction_id, tl) == 0 && /* lint:public */
                    ce[3 + tl] == ':';
        if (!named)
            return fail(v, CL_RECEIPT_STEP_SHAPE, CL_EINVAL,
                        "transactionId is not the transaction the commit evidence names");
    }
    return CL_OK;
}

int cl_receipt_verify(const cl_receipt *r, const cl_cert *service, const json_t *claims,
                      cl_receipt_verdict *verdict)
{
    cl_receipt_verdict local;
    cl_receipt_verdict *v = verdict != NULL ? verdict : &local;
    memset(v, 0, sizeof *v);
    if (r == NULL || service == NULL || service->pub == NULL)
        return fail(v, CL_RECEIPT_STEP_SHAPE, CL_EINVAL, "no receipt or service certificate");
    int rc = shape_of_struct(r, v);
    if (rc < 0)
        return rc;

    cl_cert *node = NULL;
    cl_cert **chain = NULL;
    size_t nchain = 0;
    char hex1[65], hex2[65];

    /* Step 0: the node certificate and every endorsement are EC X.509 certificates. */
    rc = cl_cert_from_pem(r->cert_pem, r->cert_pem_len, &node);
    if (rc < 0) {
        fail(v, CL_RECEIPT_STEP_SHAPE, rc, "cert: %s", cl_strerror(rc));
        goto out;
    }
    if (r->n_endorsements > 0) {
        chain = cl_calloc(r->n_endorsements, sizeof *chain);
        if (chain == NULL) {
            fail(v, CL_RECEIPT_STEP_SHAPE, CL_ENOMEM, "%s", cl_strerror(CL_ENOMEM));
            rc = CL_ENOMEM;
            goto out;
        }
    }
    for (; nchain < r->n_endorsements; nchain++) {
        const cl_receipt_pem *e = &r->endorsements[nchain];
        rc = e->pem != NULL ? cl_cert_from_pem(e->pem, e->len, &chain[nchain]) : CL_EPEM;
        if (rc < 0) {
            fail(v, CL_RECEIPT_STEP_SHAPE, rc, "serviceEndorsements[%zu]: %s", nchain,
                 cl_strerror(rc));
            goto out;
        }
    }

    /* Steps 3 and 4 are pure hashing and cannot fail; computing them first lets the verdict carry
     * the leaf and root whatever step fails later. */
    cl_sha256(r->commit_evidence, r->commit_evidence_len, v->commit_evidence_digest);
    const cl_iov leaf_parts[3] = {
        {r->write_set_digest, 32}, {v->commit_evidence_digest, 32}, {r->claims_digest, 32}};
    cl_sha256_v(leaf_parts, 3, v->leaf);
    uint8_t h[32];
    memcpy(h, v->leaf, 32);
    for (size_t i = 0; i < r->proof_len; i++) {
        if (r->proof[i].is_left)
            cl_sha256_2(r->proof[i].hash, 32, h, 32, h);
        else
            cl_sha256_2(h, 32, r->proof[i].hash, 32, h);
    }
    memcpy(v->root, h, 32);
    v->have_digests = 1;
    rc = cl_cert_spki_sha256(node, v->node_id);
    if (rc < 0) {
        fail(v, CL_RECEIPT_STEP_NODE_ID, rc, "cannot hash the node public key: %s",
             cl_strerror(rc));
        goto out;
    }
    v->have_node_id = 1;

    /* Step 1: claims. */
    if (claims != NULL) {
        uint8_t cd[32];
        rc = cl_claims_digest(claims, cd, NULL);
        if (rc < 0) {
            fail(v, CL_RECEIPT_STEP_CLAIMS, rc, "cannot compute the claims digest: %s",
                 cl_strerror(rc));
            goto out;
        }
        if (!cl_ct_equal(cd, r->claims_digest, 32)) {
            cl_hex_encode(cd, 32, hex1);
            cl_hex_encode(r->claims_digest, 32, hex2);
            rc = fail(v, CL_RECEIPT_STEP_CLAIMS, CL_ECLAIMS,
                      "claims digest %s differs from leafComponents.claimsDigest %s", hex1, hex2);
            goto out;
        }
    }

    /* Step 2: endorsement chain = serviceEndorsements (in order), then the service certificate.
     * Only the X.509 signature of each link is checked (no path validation, no dates). */
    const cl_cert *cur = node;
    for (size_t i = 0; i <= nchain; i++) {
        const cl_cert *issuer = i < nchain ? chain[i] : service;
        rc = cl_cert_verify_signed_by(cur, issuer->pub);
        if (rc < 0) {
            char who[64], by[64];
            if (i == 0)
                snprintf(who, sizeof who, "node certificate");
            else
                snprintf(who, sizeof who, "serviceEndorsements[%zu]", i - 1);
            if (i < nchain)
                snprintf(by, sizeof by, "serviceEndorsements[%zu]", i);
            else
                snprintf(by, sizeof by, "the service certificate");
            fail(v, CL_RECEIPT_STEP_ENDORSEMENT, rc, "%s is not signed by %s", who, by);
            goto out;
        }
        cur = issuer;
    }

    /* Step 5: node id. */
    if (r->has_node_id && !cl_ct_equal(v->node_id, r->node_id, 32)) {
        cl_hex_encode(r->node_id, 32, hex1);
        cl_hex_encode(v->node_id, 32, hex2);
        rc = fail(v, CL_RECEIPT_STEP_NODE_ID, CL_ENODEID,
                  "nodeId %s is not SHA-256 of the certificate's public key (%s)", hex1, hex2);
        goto out;
    }

    /* Step 6: the root, used directly as a SHA-256 digest (never hashed again). */
    rc = cl_key_verify_prehashed(node->pub, v->root, 32, r->signature, r->signature_len);
    if (rc < 0) {
        cl_hex_encode(v->root, 32, hex1);
        fail(v, CL_RECEIPT_STEP_SIGNATURE, rc,
             "signature does not verify over root %s with the node key", hex1);
        goto out;
    }
    v->step = CL_RECEIPT_VALID;
    v->err = CL_OK;
    v->message[0] = '\0';
out:
    for (size_t i = 0; i < nchain; i++)
        cl_cert_free(chain[i]);
    cl_free(chain);
    cl_cert_free(node);
    return rc;
}

int cl_receipt_verify_pem(const cl_receipt *r, const char *service_pem, size_t len,
                          const json_t *claims, cl_receipt_verdict *verdict)
{
    cl_receipt_verdict local;
    cl_receipt_verdict *v = verdict != NULL ? verdict : &local;
    memset(v, 0, sizeof *v);
    cl_cert *svc = NULL;
    int rc = service_pem != NULL ? cl_cert_from_pem(service_pem, len, &svc) : CL_EINVAL;
    if (rc < 0)
        return fail(v, CL_RECEIPT_STEP_SHAPE, rc, "service certificate: %s", cl_strerror(rc));
    rc = cl_receipt_verify(r, svc, claims, v);
    cl_cert_free(svc);
    return rc;
}
