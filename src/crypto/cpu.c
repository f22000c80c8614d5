/*
 * cpu.c — see cpu.h. Measured on the project's benchmark machine (AMD EPYC, 2 vCPUs, OpenSSL
 * 3.0.19): `openssl speed rsa2048` 1,154 signs/s per core by default, 1,377-1,470 with ADX
 * masked; attestd's SGX attestations/s (bounded by the RS256 token signature) follow.
 */
#include "crypto/cpu.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

/* Bit 19 of CPUID leaf 7 EBX (ADX), as OpenSSL's OPENSSL_ia32cap takes it after the colon. */
#define CL_IA32CAP_NO_ADX ":~0x80000"

void cl_cpu_tune_rsa(char **argv)
{
#if defined(__x86_64__) && defined(__linux__)
    if (getenv("OPENSSL_ia32cap") != NULL || argv == NULL || argv[0] == NULL)
        return;
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d) || a < 7)
        return;
    char vendor[13];
    memcpy(vendor, &b, 4);
    memcpy(vendor + 4, &d, 4);
    memcpy(vendor + 8, &c, 4);
    vendor[12] = '\0';
    if (strcmp(vendor, "AuthenticAMD") != 0)
        return;
    __cpuid_count(7, 0, a, b, c, d);
    const unsigned avx2 = 1u << 5, adx = 1u << 19;
    if ((b & (avx2 | adx)) != (avx2 | adx))
        return;
    /* exec the file itself, not /proc/self/exe: the kernel names the process after the path
     * (ps, pgrep and top would show "exe") */
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0 || (size_t)n >= sizeof path - 1)
        return;
    path[n] = '\0';
    if (setenv("OPENSSL_ia32cap", CL_IA32CAP_NO_ADX, 1) != 0)
        return;
    execv(path, argv);
    /* exec failed: go on with libcrypto's default code paths (the variable is harmless now) */
    unsetenv("OPENSSL_ia32cap");
#else
    (void)argv;
#endif
}
