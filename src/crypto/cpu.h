/*
 * cpu.h — choice of libcrypto's code paths for this CPU, made before libcrypto starts.
 */
#ifndef CLEDGER_CRYPTO_CPU_H
#define CLEDGER_CRYPTO_CPU_H

/* On AMD x86-64 CPUs with AVX2 and ADX, re-executes the running program (the file /proc/self/exe
 * names, same argv, same environment) with OPENSSL_ia32cap=":~0x80000" so that libcrypto 3.0 runs
 * RSA private keys through its AVX2 Montgomery code (rsaz-avx2) instead of the ADX/MULX code it
 * prefers when ADX is present. On AMD EPYC (Zen) that makes an RSA-2048 signature about 20% faster;
 * both paths are constant-time, only the ADX flag changes (AES, SHA and ECDSA keep their code).
 * libcrypto reads the variable once, when it is loaded, so it cannot be changed from inside the
 * process.
 *
 * Does nothing (returns) when OPENSSL_ia32cap is already set — an operator's explicit choice,
 * including OPENSSL_ia32cap=":~0" to keep libcrypto's default — on other CPUs, or when the exec
 * fails. Call it first thing in main, before any thread, descriptor or output exists. */
void cl_cpu_tune_rsa(char **argv);

#endif
