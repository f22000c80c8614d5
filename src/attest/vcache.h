/*
 * vcache.h — a bounded, thread-safe memo of certificate-chain verifications.
 *
 * Evidence from one platform carries the same certificate chain every time (the PCK chain and QE
 * report of an SGX/TDX machine, the VCEK chain of an SEV-SNP chip). Verifying that chain costs
 * several signature checks and X.509 parsing; the per-evidence signature (ISV/TD report, SNP
 * report) is cheap by comparison and is always checked. A verifier records a successful chain
 * verification under a SHA-256 key over every input the verification depended on (the chain
 * bytes, the CRLs/collateral used, the signed QE report), with the time window in which the
 * result stays true (the intersection of the certificates' and CRLs' validity), and a copy of
 * what later steps need (a small blob, and optionally a certificate). A lookup succeeds only for
 * the same key, a time inside the window, and within `max_age` seconds of wall-clock time of the
 * insertion (so revocation data loaded later is not ignored for long).
 *
 * Memory is bounded: a fixed array of slots indexed by the key (a newer entry replaces an older
 * one in its slot). Thread-safe (one mutex); lookups return copies and an up-referenced X509.
 * Ownership: the cache up-references certificates it stores and frees them on replacement and
 * in cl_vcache_free; callers X509_free what cl_vcache_lookup returns.
 */
#ifndef CLEDGER_ATTEST_VCACHE_H
#define CLEDGER_ATTEST_VCACHE_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define CL_VCACHE_BLOB 256

typedef struct cl_vcache cl_vcache;

/* slots: number of entries (rounded up to a power of two, at most 65536); max_age_s: wall-clock
 * lifetime of an entry. */
CL_MUST_CHECK int cl_vcache_new(size_t slots, int64_t max_age_s, cl_vcache **out);
void cl_vcache_free(cl_vcache *c);

/* 1 on a hit (blob copied into `blob` (capacity CL_VCACHE_BLOB), *blob_len set, *cert and *pkey
 * set to up-referenced objects or NULL when none was stored; each out pointer may be NULL), 0 on
 * a miss. c may be NULL (miss). */
int cl_vcache_lookup(cl_vcache *c, const uint8_t key[32], int64_t now, void *blob, size_t *blob_len,
                     X509 **cert, EVP_PKEY **pkey);
/* Records a verified result valid for not_before <= now <= not_after. c may be NULL (no-op).
 * blob_len <= CL_VCACHE_BLOB; cert and pkey may be NULL (both are up-referenced). */
void cl_vcache_insert(cl_vcache *c, const uint8_t key[32], int64_t not_before, int64_t not_after,
                      const void *blob, size_t blob_len, X509 *cert, EVP_PKEY *pkey);

/* Counters for tests and diagnostics. */
void cl_vcache_stats(cl_vcache *c, uint64_t *hits, uint64_t *misses);

#endif
