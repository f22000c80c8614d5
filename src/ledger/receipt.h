/*
 * receipt.h — write-transaction receipts: parse, build and verify (spec/receipts.md §1, §3).
 *
 * Ownership: a cl_receipt owns every buffer it points to (cl_malloc'd). Initialise it with
 * cl_receipt_init (or CL_RECEIPT_INIT), fill it with cl_receipt_parse / cl_receipt_from_json or the
 * setters, and release it with cl_receipt_clear, which also leaves it ready for reuse. The setters
 * copy their inputs. Fixed-size digests are plain arrays and are written directly.
 *
 * Parsing is strict about shape (§3 step 0): required fields present with the right JSON types,
 * digests exactly 64 hex characters (either case), proof elements with exactly one of left/right,
 * standard base64 signature, size limits below. Unknown extra members are ignored (forward
 * compatibility; the legacy `is_signature_transaction` is one). Legacy snake_case receipts are
 * accepted: keys are converted to camelCase recursively first (cl_json_camel_keys). The whole GET
 * /receipt envelope {"receipt", "applicationClaims", "state", "transactionId"} is accepted too.
 * Certificates are not parsed here: cl_receipt_verify does that (and reports it as a shape error).
 *
 * cl_receipt_to_json emits the camelCase receipt of §1 (lower-case hex, standard base64,
 * serviceEndorsements always present).
 */
#ifndef CLEDGER_LEDGER_RECEIPT_H
#define CLEDGER_LEDGER_RECEIPT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "crypto/x509.h"

#define CL_RECEIPT_MAX_JSON (1u << 20)  /* bytes of receipt / envelope JSON */
#define CL_RECEIPT_MAX_PROOF 64         /* proof elements */
#define CL_RECEIPT_MAX_ENDORSEMENTS 16  /* serviceEndorsements */
#define CL_RECEIPT_MAX_PEM (64u * 1024) /* bytes of one PEM certificate */
#define CL_RECEIPT_MAX_SIG 256          /* decoded signature bytes */
#define CL_RECEIPT_MAX_CE 1024          /* bytes of commitEvidence */
#define CL_RECEIPT_MAX_TXID 64          /* bytes of the envelope's transactionId */

typedef struct {
    uint8_t hash[32];
    int is_left; /* 1: {"left": hash} (h = SHA256(hash || h)); 0: {"right": hash} */
} cl_receipt_step;

typedef struct {
    char *pem; /* NUL-terminated */
    size_t len;
} cl_receipt_pem;

typedef struct {
    char *cert_pem; /* node certificate, NUL-terminated */
    size_t cert_pem_len;
    uint8_t write_set_digest[32];
    char *commit_evidence; /* NUL-terminated; hashed as text */
    size_t commit_evidence_len;
    uint8_t claims_digest[32]; /* 32 zero bytes when there are no claims */
    int has_node_id;
    uint8_t node_id[32];
    cl_receipt_step *proof; /* from the leaf upwards */
    size_t proof_len;
    cl_receipt_pem *endorsements; /* oldest first */
    size_t n_endorsements;
    uint8_t *signature; /* DER ECDSA-Sig-Value */
    size_t signature_len;
    char *transaction_id; /* from the envelope; NULL when unknown. Not part of the receipt JSON. */
} cl_receipt;

#define CL_RECEIPT_INIT                                                                            \
    {                                                                                              \
        0                                                                                          \
    }

void cl_receipt_init(cl_receipt *r);
/* Frees every owned buffer and re-initialises r. */
void cl_receipt_clear(cl_receipt *r);

/* Setters (copy; replace any previous value). PEM and commit evidence must not contain NUL and
 * must be UTF-8; CL_EINVAL otherwise, CL_EOVERFLOW over the limits. */
CL_MUST_CHECK int cl_receipt_set_cert(cl_receipt *r, const char *pem, size_t len);
CL_MUST_CHECK int cl_receipt_set_commit_evidence(cl_receipt *r, const char *ce, size_t len);
CL_MUST_CHECK int cl_receipt_set_signature(cl_receipt *r, const uint8_t *sig, size_t len);
CL_MUST_CHECK int cl_receipt_set_transaction_id(cl_receipt *r, const char *txid, size_t len);
CL_MUST_CHECK int cl_receipt_add_proof_step(cl_receipt *r, const uint8_t hash[32], int is_left);
CL_MUST_CHECK int cl_receipt_add_endorsement(cl_receipt *r, const char *pem, size_t len);

/* New JSON value equal to `in` with every object key converted from snake_case to camelCase
 * ("_x" -> "X" for a lower-case letter x), recursively. CL_EJSON when two keys of one object
 * collide after conversion, CL_ENOMEM. */
CL_MUST_CHECK int cl_json_camel_keys(const json_t *in, json_t **out);

/* Parse a receipt (camelCase or snake_case) or a whole receipt envelope. On success `out` (which
 * must be initialised; it is cleared first) holds the receipt; when claims_out is not NULL it
 * receives a new reference to the envelope's applicationClaims (camelCase), or NULL when there are
 * none. On failure a description goes to errbuf (may be NULL) and `out` is left cleared.
 * Errors: CL_EJSON (shape), CL_EHEX, CL_EBASE64, CL_EOVERFLOW (limits), CL_EUNSUPPORTED (CCF 1.x
 * receipt), CL_ESTATE (envelope state not "Ready"), CL_ENOMEM. */
CL_MUST_CHECK int cl_receipt_parse(const char *json, size_t len, cl_receipt *out,
                                   json_t **claims_out, char *errbuf, size_t errlen);
CL_MUST_CHECK int cl_receipt_from_json(const json_t *j, cl_receipt *out, json_t **claims_out,
                                       char *errbuf, size_t errlen);

/* The camelCase receipt object of §1 (new reference). nodeId is emitted when has_node_id is set
 * (the ledger always sets it). CL_EINVAL when cert, commit evidence or signature is missing. */
CL_MUST_CHECK int cl_receipt_to_json(const cl_receipt *r, json_t **out);
/* The same, serialised compactly with sorted keys (caller frees with cl_free). */
CL_MUST_CHECK int cl_receipt_to_json_string(const cl_receipt *r, char **out);

/* Verification steps of §3, in order. */
typedef enum {
    CL_RECEIPT_VALID = 0,
    CL_RECEIPT_STEP_SHAPE,       /* 0: shape, certificate parsing */
    CL_RECEIPT_STEP_CLAIMS,      /* 1: claims digest */
    CL_RECEIPT_STEP_ENDORSEMENT, /* 2: endorsement chain */
    CL_RECEIPT_STEP_LEAF,        /* 3: leaf */
    CL_RECEIPT_STEP_ROOT,        /* 4: root */
    CL_RECEIPT_STEP_NODE_ID,     /* 5: node id */
    CL_RECEIPT_STEP_SIGNATURE,   /* 6: root signature */
} cl_receipt_verify_step;

/* "valid", "shape", "claims", "endorsement", "leaf", "root", "nodeId", "signature". */
const char *cl_receipt_step_name(cl_receipt_verify_step s);

typedef struct {
    cl_receipt_verify_step step; /* first step that failed, CL_RECEIPT_VALID when valid */
    int err;                     /* the error code returned */
    char message[256];           /* human-readable reason ("" when valid) */
    int have_digests;            /* the three values below were computed */
    uint8_t commit_evidence_digest[32];
    uint8_t leaf[32];
    uint8_t root[32];
    int have_node_id; /* node_id below = SHA256(SPKI of cert) */
    uint8_t node_id[32];
} cl_receipt_verdict;

/* Verify receipt r against the service certificate (and, when claims is not NULL, the JSON array of
 * application claims), exactly as spec/receipts.md §3. Returns CL_OK when valid, otherwise the
 * error of the failing step (CL_EJSON/CL_EPEM/CL_EKEYTYPE/...: shape, CL_ECLAIMS or a claims
 * decoding error: claims, CL_EENDORSE: endorsement, CL_ENODEID: nodeId, CL_ESIG: signature).
 * verdict (may be NULL) receives the step, the message and the computed values. */
CL_MUST_CHECK int cl_receipt_verify(const cl_receipt *r, const cl_cert *service,
                                    const json_t *claims, cl_receipt_verdict *verdict);
/* The same with the service certificate given as PEM (a parse failure is a shape failure). */
CL_MUST_CHECK int cl_receipt_verify_pem(const cl_receipt *r, const char *service_pem, size_t len,
                                        const json_t *claims, cl_receipt_verdict *verdict);

#endif
