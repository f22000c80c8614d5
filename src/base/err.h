/*
 * err.h — the one error list of cledger.
 *
 * Every fallible function returns 0 (CL_OK) or a negative code from this list. Codes are generated
 * with an X-macro so each one has a stable name and a human message (tests/unit/test_err.c checks
 * that every code has both and that they are unique). Never reuse or renumber a code.
 */
#ifndef CLEDGER_BASE_ERR_H
#define CLEDGER_BASE_ERR_H

#define CL_ERRORS(X)                                                                               \
    X(CL_OK, 0, "success")                                                                         \
    X(CL_ENOMEM, -1, "out of memory")                                                              \
    X(CL_EINVAL, -2, "invalid argument")                                                           \
    X(CL_ETRUNC, -3, "input ends before the data it announces")                                    \
    X(CL_EOVERFLOW, -4, "value or length out of range")                                            \
    X(CL_EHEX, -5, "malformed hexadecimal")                                                        \
    X(CL_EBASE64, -6, "malformed base64")                                                          \
    X(CL_EJSON, -7, "malformed or unexpected JSON")                                                \
    X(CL_EIO, -8, "input/output error")                                                            \
    X(CL_ENOENT, -9, "not found")                                                                  \
    X(CL_EEXIST, -10, "already exists")                                                            \
    X(CL_ECRYPTO, -11, "cryptographic library failure")                                            \
    X(CL_EPEM, -12, "malformed PEM or X.509 certificate")                                          \
    X(CL_EKEYTYPE, -13, "unsupported key type (EC P-256 or P-384 required)")                       \
    X(CL_ESIG, -14, "signature does not verify")                                                   \
    X(CL_EENDORSE, -15, "certificate is not endorsed by the expected key")                         \
    X(CL_ENODEID, -16, "node id does not match the certificate's public key")                      \
    X(CL_EROOT, -17, "Merkle root mismatch")                                                       \
    X(CL_ECLAIMS, -18, "claims digest mismatch")                                                   \
    X(CL_EPROOF, -19, "malformed or invalid Merkle proof")                                         \
    X(CL_EFORMAT, -20, "malformed ledger data")                                                    \
    X(CL_ECORRUPT, -21, "ledger data is corrupt")                                                  \
    X(CL_EDECRYPT, -22, "decryption failed (wrong key or tampered data)")                          \
    X(CL_ENOSECRET, -23, "no ledger secret for this sequence number")                              \
    X(CL_ERANGE, -24, "sequence number out of range")                                              \
    X(CL_ENOTSIGNED, -25, "not yet covered by a signature")                                        \
    X(CL_ECLOSED, -26, "object is closed or failed and must be reopened")                          \
    X(CL_EUNSUPPORTED, -27, "unsupported version or feature")                                      \
    X(CL_EDB, -28, "index database error")                                                         \
    X(CL_ESTATE, -29, "operation not allowed in this state")                                       \
    X(CL_ELOCKED, -30, "directory is in use by another process")                                   \
    X(CL_ECHAIN, -31, "certificate chain does not lead to a pinned or configured root")            \
    X(CL_EREVOKED, -32, "certificate or TCB is revoked")                                           \
    X(CL_EEXPIRED, -33, "certificate or collateral is outside its validity period")                \
    X(CL_EPOLICY, -34, "policy does not parse")                                                    \
    X(CL_EDENIED, -35, "policy denied the request")                                                \
    X(CL_EBINDING, -36, "data does not match the hash bound into the evidence")

typedef enum {
#define CL_ERR_ENUM(name, value, msg) name = (value),
    CL_ERRORS(CL_ERR_ENUM)
#undef CL_ERR_ENUM
} cl_err;

/* Name ("CL_ESIG") and message of a code; "unknown error" for a value not in the list. */
const char *cl_strerror(int err);
const char *cl_errname(int err);

#define CL_MUST_CHECK __attribute__((warn_unused_result))

/* Guard macros (s2n style): propagate a negative result; fail with a code when a condition holds.
 */
#define CL_TRY(expr)                                                                               \
    do {                                                                                           \
        int cl_try_rc_ = (expr);                                                                   \
        if (cl_try_rc_ < 0)                                                                        \
            return cl_try_rc_;                                                                     \
    } while (0)
#define CL_ENSURE(cond, err)                                                                       \
    do {                                                                                           \
        if (!(cond))                                                                               \
            return (err);                                                                          \
    } while (0)
/* For functions with one cleanup label `out` and an `int rc`. */
#define CL_GUARD(expr)                                                                             \
    do {                                                                                           \
        rc = (expr);                                                                               \
        if (rc < 0)                                                                                \
            goto out;                                                                              \
    } while (0)
#define CL_GUARD_IF(cond, err)                                                                     \
    do {                                                                                           \
        if (cond) {                                                                                \
            rc = (err);                                                                            \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

#endif
