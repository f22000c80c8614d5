/*
 * fuzz_identity_next.c — node/identity.next, the staged service identity of a rotation that
 * stopped on the way (ledger.c, resolve_staged_identity), read by a real cl_ledger_open.
 *
 * Each input is written as node/identity.next of a real, cleanly closed ledger, which is opened.
 * Properties checked (abort on violation):
 *   - open either succeeds or refuses with CL_EFORMAT (not a key and two certificates);
 *   - when it succeeds, the staged file is gone and the identity in place is unchanged (no input
 *     can be the ledger's own next identity: it was never staged);
 *   - when it refuses, the staged file is still there, for an operator to look at;
 *   - service_cert.pem never changes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/log.h"
#include "fuzz.h"
#include "ledger/ledger.h"
#include "testutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct {
    int ready;
    const char *dir;
    char next[600], cert[600];
    char *pem;
    size_t pem_len;
} g;

static void at_exit(void)
{
    free(g.pem);
    tu_rmrf(g.dir);
}

static void setup(void)
{
    cl_log_set_level(CL_LOG_OFF);
    g.dir = tu_tempdir("fuzz-identity-next");
    CHECK(g.dir != NULL);
    cl_ledger_opts o = {0};
    o.dir = g.dir;
    cl_ledger *l = NULL;
    CHECK(cl_ledger_create(&o, &l) == CL_OK);
    uint64_t s;
    CHECK(cl_ledger_append_user(l, 2, "c", 1, (const uint8_t *)"x", 1, &s) == CL_OK);
    CHECK(cl_ledger_sign(l, 2, NULL) == CL_OK);
    CHECK(cl_ledger_close(l) == CL_OK);
    snprintf(g.next, sizeof g.next, "%s/node/identity.next", g.dir);
    snprintf(g.cert, sizeof g.cert, "%s/service_cert.pem", g.dir);
    g.pem = tu_read_file(g.cert, &g.pem_len);
    CHECK(g.pem != NULL);
    g.ready = 1;
    atexit(at_exit);
}

static void write_file(const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK(fwrite(data, 1, size, f) == size);
    CHECK(fclose(f) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g.ready)
        setup();
    write_file(g.next, data, size);
    cl_ledger_opts o = {0};
    o.dir = g.dir;
    cl_ledger *l = NULL;
    int rc = cl_ledger_open(&o, &l);
    if (rc == CL_OK) {
        CHECK(access(g.next, F_OK) != 0);
        CHECK(strlen(cl_ledger_service_cert_pem(l)) == g.pem_len &&
              memcmp(cl_ledger_service_cert_pem(l), g.pem, g.pem_len) == 0);
        CHECK(cl_ledger_close(l) == CL_OK);
    } else {
        CHECK(rc == CL_EFORMAT);
        CHECK(access(g.next, F_OK) == 0);
        CHECK(unlink(g.next) == 0);
    }
    size_t n = 0;
    char *now = tu_read_file(g.cert, &n);
    CHECK(now != NULL && n == g.pem_len && memcmp(now, g.pem, n) == 0);
    free(now);
    return 0;
}
