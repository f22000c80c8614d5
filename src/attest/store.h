/*
 * store.h — durable state of an attestation instance: stored policies (one JWS text per
 * attestation type), the policy-management certificate set, and a history of every change.
 *
 * Layout under the data directory:
 *   policies/<Type>.jws    the stored policy JWS text, byte-exact as accepted (atomic replace +
 *                          fsync of file and directory); absent: the type's default applies
 *   certificates.json      {"certificates":["<std base64 DER>", ...]} (atomic replace + fsync)
 *   history.jsonl          one JSON object per change, appended and fdatasync'd before the
 *                          change is acknowledged: seq, time, who, action, type/cert, hash, and
 *                          the new JWS or certificate (so the history alone can rebuild state)
 *
 * The store keeps everything in memory after open (a few KiB per policy); every mutation writes
 * the history record first, then the state file, then updates memory — a crash in between leaves
 * the previous state, or the new state with its history record; never a half-written file.
 *
 * Ownership: the store owns its strings; getters return borrowed pointers valid until the next
 * mutation of the same item. Not thread-safe (the service runs it on one loop).
 */
#ifndef CLEDGER_ATTEST_STORE_H
#define CLEDGER_ATTEST_STORE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* Attestation types with policies, in canonical spelling. */
#define CL_ATYPE_COUNT 6
extern const char *const cl_atype_names[CL_ATYPE_COUNT]; /* SgxEnclave, OpenEnclave, SevSnpVm,
                                                           TdxVm, Tpm, Virtual */
/* Index of a type name matched case-insensitively, or -1. */
int cl_atype_find(const char *name, size_t len);

typedef struct cl_astore cl_astore;

CL_MUST_CHECK int cl_astore_open(const char *dir, cl_astore **out, char *err, size_t errlen);
void cl_astore_close(cl_astore *s);

/* Stored JWS text of a type (borrowed), or NULL when the default applies. */
const char *cl_astore_policy(const cl_astore *s, int type);
CL_MUST_CHECK int cl_astore_policy_set(cl_astore *s, int type, const char *jws, const char *who);
/* Removes the stored policy (no-op but still recorded when none). */
CL_MUST_CHECK int cl_astore_policy_reset(cl_astore *s, int type, const char *who);

size_t cl_astore_cert_count(const cl_astore *s);
/* DER of certificate i (borrowed). */
const uint8_t *cl_astore_cert(const cl_astore *s, size_t i, size_t *len);
/* Index of a certificate with exactly this DER, or -1. */
long cl_astore_cert_find(const cl_astore *s, const uint8_t *der, size_t len);
/* Adds (no-op when present, *added = 0) / removes (no-op when absent, *removed = 0). */
CL_MUST_CHECK int cl_astore_cert_add(cl_astore *s, const uint8_t *der, size_t len, const char *who,
                                     int *added);
CL_MUST_CHECK int cl_astore_cert_remove(cl_astore *s, const uint8_t *der, size_t len,
                                        const char *who, int *removed);

/* Number of history records (the next record's seq is this value + 1). */
uint64_t cl_astore_history_len(const cl_astore *s);

/* Backup: {"format":"cledger-attestd-backup-v1","policies":{"<Type>":"<jws>",...},
 * "certificates":["<std b64 DER>",...]} (new reference). */
CL_MUST_CHECK int cl_astore_export(const cl_astore *s, json_t **out);
/* Restore: replaces every policy and the certificate set with the backup's (each change is
 * recorded in the history as action "import"). The document is validated completely before
 * anything changes. */
CL_MUST_CHECK int cl_astore_import(cl_astore *s, const json_t *backup, const char *who, char *err,
                                   size_t errlen);

#endif
