#!/usr/bin/env bash
# Project lint (STYLE.md §9), run by ctest:
#  1. no raw memcmp in crypto, Merkle, receipt, claims, verifier and attestation code: digests,
#     roots, tags, MACs and keys are compared with cl_ct_equal (CRYPTO_memcmp). A comparison of
#     public constants may stay if its line carries the marker `lint:public`.
#  2. no unbounded string calls anywhere in src/: strcpy, strcat, sprintf, vsprintf, gets.
set -u
cd "$(dirname "$0")/.."
status=0
scoped="src/crypto/*.c src/ledger/merkle.c src/ledger/receipt.c src/ledger/claims.c src/ledger/verify.c
        src/attest/sgx*.c src/attest/intel_*.c src/attest/snp.c src/attest/tpm*.c src/attest/jws.c
        src/attest/service.c src/attest/store.c src/attest/vcache.c"
# shellcheck disable=SC2086
hits=$(grep -n '\bmemcmp(' $scoped 2>/dev/null | grep -v 'CRYPTO_memcmp' | grep -v 'lint:public')
if [ -n "$hits" ]; then
    echo "raw memcmp in security-sensitive code (use cl_ct_equal, or mark public data 'lint:public'):"
    echo "$hits"
    status=1
fi
hits=$(grep -rnE '\b(strcpy|strcat|sprintf|vsprintf|gets)\(' src | grep -vE '\b(snprintf|vsnprintf)\(')
if [ -n "$hits" ]; then
    echo "unbounded string call:"
    echo "$hits"
    status=1
fi
[ $status -eq 0 ] && echo "lint: 2 checks passed, 0 failed"
exit $status
