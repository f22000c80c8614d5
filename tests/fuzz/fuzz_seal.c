/*
 * fuzz_seal.c — the header of a command sealed for the raft log (cl_ledger_unseal, both formats),
 * against a real private ledger with two secrets.
 *
 * Each input is tried three ways. Properties checked (abort on violation):
 *   - as a sealed command: whatever it is, unseal answers without a sanitizer finding, and when it
 *     accepts, the plaintext is exactly the input minus its header (52 bytes in v2, 36 in v1);
 *   - as a plaintext: sealed, it unseals to itself, and its ciphertext is not it (inputs of 8
 *     bytes or more);
 *   - as a mutation of that sealed command (the input's first bytes name a position and a mask):
 *     a changed byte anywhere makes unseal refuse it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "fuzz.h"
#include "ledger/ledger.h"
#include "testutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct {
    int ready;
    const char *dir;
    cl_ledger *l;
    cl_buf sealed, plain;
} g;

static void at_exit(void)
{
    cl_buf_free(&g.sealed);
    cl_buf_free(&g.plain);
    if (g.l != NULL)
        CHECK(cl_ledger_close(g.l) == CL_OK);
    tu_rmrf(g.dir);
}

static void setup(void)
{
    cl_log_set_level(CL_LOG_OFF);
    g.dir = tu_tempdir("fuzz-seal");
    CHECK(g.dir != NULL);
    cl_ledger_opts o = {0};
    o.dir = g.dir;
    o.private_ledger = 1;
    CHECK(cl_ledger_create(&o, &g.l) == CL_OK);
    CHECK(cl_ledger_rotate_secret(g.l, 2) == CL_OK); /* a second secret */
    CHECK(cl_ledger_sync(g.l) == CL_OK);
    g.sealed = (cl_buf)CL_BUF_INIT;
    g.plain = (cl_buf)CL_BUF_INIT;
    g.ready = 1;
    atexit(at_exit);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g.ready)
        setup();
    int rc = cl_ledger_unseal(g.l, data, size, &g.plain);
    if (rc == CL_OK) {
        size_t hl = (data[7] == 2) ? 52 : 36;
        CHECK(size >= hl && g.plain.len == size - hl);
    } else {
        CHECK(rc == CL_EFORMAT || rc == CL_ENOSECRET || rc == CL_EDECRYPT);
    }

    CHECK(cl_ledger_seal(g.l, data, size, &g.sealed) == CL_OK);
    CHECK(g.sealed.len == size + 52);
    if (size >= 8) /* the ciphertext is not the plaintext (by chance: 2^-64) */
        CHECK(memcmp(g.sealed.data + 52, data, size) != 0);
    CHECK(cl_ledger_unseal(g.l, g.sealed.data, g.sealed.len, &g.plain) == CL_OK);
    CHECK(g.plain.len == size && (size == 0 || memcmp(g.plain.data, data, size) == 0));

    if (size >= 3) {
        size_t at = ((size_t)data[0] << 8 | data[1]) % g.sealed.len;
        uint8_t mask = data[2] ? data[2] : 1;
        g.sealed.data[at] ^= mask;
        CHECK(cl_ledger_unseal(g.l, g.sealed.data, g.sealed.len, &g.plain) != CL_OK);
    }
    return 0;
}
