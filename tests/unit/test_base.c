/*
 * test_base.c — the base layer: error list, cursor and cl_buf, hex/base64, JSON helpers, log
 * levels, and the allocation seam (src/base/ files).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/codec.h"
#include "base/cursor.h"
#include "base/err.h"
#include "base/json.h"
#include "base/log.h"

/* ---- errors -----------------------------------------------------------------------------------
 */

typedef struct {
    const char *name;
    int value;
    const char *msg;
} err_entry;

static const err_entry ERRS[] = {
#define CL_ERR_ENTRY(name, value, msg) {#name, value, msg},
    CL_ERRORS(CL_ERR_ENTRY)
#undef CL_ERR_ENTRY
};
#define NERRS (sizeof ERRS / sizeof ERRS[0])

static void test_err_list(void **state)
{
    (void)state;
    assert_true(NERRS > 10);
    assert_int_equal(ERRS[0].value, CL_OK);
    assert_int_equal(ERRS[0].value, 0);
    for (size_t i = 0; i < NERRS; i++) {
        /* codes are 0, -1, -2, ... in list order: appending never renumbers */
        assert_int_equal(ERRS[i].value, -(int)i);
        assert_string_equal(cl_errname(ERRS[i].value), ERRS[i].name);
        assert_string_equal(cl_strerror(ERRS[i].value), ERRS[i].msg);
        assert_true(strlen(ERRS[i].msg) > 3);
        assert_string_not_equal(ERRS[i].msg, "unknown error");
        assert_memory_equal(ERRS[i].name, "CL_", 3);
        for (size_t j = 0; j < i; j++) {
            assert_int_not_equal(ERRS[i].value, ERRS[j].value);
            assert_string_not_equal(ERRS[i].name, ERRS[j].name);
            assert_string_not_equal(ERRS[i].msg, ERRS[j].msg);
        }
    }
    assert_string_equal(cl_strerror(1), "unknown error");
    assert_string_equal(cl_strerror(-(int)NERRS), "unknown error");
    assert_string_equal(cl_errname(-9999), "CL_E?");
}

static int guarded(int first, int second, int *reached)
{
    int rc = CL_OK;
    CL_GUARD(first);
    *reached = 1;
    CL_GUARD_IF(second, CL_ESTATE);
out:
    return rc;
}

static int tried(int v, int cond)
{
    CL_TRY(v);
    CL_ENSURE(cond, CL_EINVAL);
    return 7;
}

static void test_err_macros(void **state)
{
    (void)state;
    int reached = 0;
    assert_int_equal(guarded(CL_EIO, 0, &reached), CL_EIO);
    assert_int_equal(reached, 0);
    assert_int_equal(guarded(5, 1, &reached), CL_ESTATE);
    assert_int_equal(reached, 1);
    assert_int_equal(guarded(0, 0, &reached), CL_OK);
    assert_int_equal(tried(CL_ESIG, 1), CL_ESIG);
    assert_int_equal(tried(3, 0), CL_EINVAL);
    assert_int_equal(tried(0, 1), 7);
}

/* ---- cursor -----------------------------------------------------------------------------------
 */

static void test_cursor_reads(void **state)
{
    (void)state;
    const uint8_t d[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b,
                         0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16};
    cl_cursor c;
    cl_cursor_init(&c, d, sizeof d);
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    assert_int_equal(cl_cursor_u8(&c, &u8), CL_OK);
    assert_int_equal(u8, 0x01);
    assert_int_equal(cl_cursor_u16(&c, &u16), CL_OK);
    assert_int_equal(u16, 0x0302);
    assert_int_equal(cl_cursor_u32(&c, &u32), CL_OK);
    assert_int_equal(u32, 0x07060504);
    assert_int_equal(cl_cursor_u64(&c, &u64), CL_OK);
    assert_true(u64 == 0x0f0e0d0c0b0a0908ull);
    assert_int_equal(cl_cursor_u16_be(&c, &u16), CL_OK);
    assert_int_equal(u16, 0x1011);
    assert_int_equal(cl_cursor_u32_be(&c, &u32), CL_OK);
    assert_int_equal(u32, 0x12131415);
    assert_int_equal(cl_cursor_left(&c), 1);

    cl_cursor_init(&c, d, sizeof d);
    assert_int_equal(cl_cursor_skip(&c, 14), CL_OK);
    assert_int_equal(cl_cursor_u64_be(&c, &u64), CL_OK);
    assert_true(u64 == 0x0f10111213141516ull);
    assert_int_equal(cl_cursor_left(&c), 0);
    assert_ptr_equal(cl_cursor_ptr(&c), d + sizeof d);

    /* zero-length operations at the end are fine */
    assert_int_equal(cl_cursor_skip(&c, 0), CL_OK);
    assert_int_equal(cl_cursor_read(&c, NULL, 0), CL_OK);

    const uint8_t *v;
    cl_cursor_init(&c, d, sizeof d);
    assert_int_equal(cl_cursor_view(&c, &v, 3), CL_OK);
    assert_ptr_equal(v, d);
    uint8_t out[4];
    assert_int_equal(cl_cursor_read(&c, out, 4), CL_OK);
    assert_memory_equal(out, d + 3, 4);
    assert_int_equal(c.pos, 7);
}

/* Every kind of read fails with CL_ETRUNC and leaves the cursor where it was. */
static void test_cursor_truncation(void **state)
{
    (void)state;
    const uint8_t d[7] = {1, 2, 3, 4, 5, 6, 7};
    for (size_t start = 0; start <= sizeof d; start++) {
        cl_cursor c;
        cl_cursor_init(&c, d, sizeof d);
        assert_int_equal(cl_cursor_skip(&c, start), CL_OK);
        size_t left = sizeof d - start;
        uint8_t u8 = 0xee, buf[16];
        uint16_t u16 = 0xeeee;
        uint32_t u32 = 0xeeeeeeee;
        uint64_t u64 = 0xee;
        const uint8_t *v = NULL;
        if (left < 1)
            assert_int_equal(cl_cursor_u8(&c, &u8), CL_ETRUNC);
        if (left < 2) {
            assert_int_equal(cl_cursor_u16(&c, &u16), CL_ETRUNC);
            assert_int_equal(cl_cursor_u16_be(&c, &u16), CL_ETRUNC);
        }
        if (left < 4) {
            assert_int_equal(cl_cursor_u32(&c, &u32), CL_ETRUNC);
            assert_int_equal(cl_cursor_u32_be(&c, &u32), CL_ETRUNC);
        }
        assert_int_equal(cl_cursor_u64(&c, &u64), CL_ETRUNC);
        assert_int_equal(cl_cursor_u64_be(&c, &u64), CL_ETRUNC);
        assert_int_equal(cl_cursor_skip(&c, left + 1), CL_ETRUNC);
        assert_int_equal(cl_cursor_read(&c, buf, left + 1), CL_ETRUNC);
        assert_int_equal(cl_cursor_view(&c, &v, left + 1), CL_ETRUNC);
        assert_int_equal(cl_cursor_skip(&c, SIZE_MAX), CL_ETRUNC);
        assert_int_equal(c.pos, start);
        /* outputs untouched on failure */
        assert_int_equal(u8, 0xee);
        assert_int_equal(u16, 0xeeee);
        assert_true(u32 == 0xeeeeeeee);
        assert_true(u64 == 0xee);
        assert_null(v);
    }
}

static void test_cursor_lp(void **state)
{
    (void)state;
    const uint8_t *v;
    size_t n;
    cl_cursor c;

    const uint8_t ok16[] = {3, 0, 'a', 'b', 'c', 0, 0};
    cl_cursor_init(&c, ok16, sizeof ok16);
    assert_int_equal(cl_cursor_lp16(&c, &v, &n), CL_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(v, "abc", 3);
    assert_int_equal(cl_cursor_lp16(&c, &v, &n), CL_OK); /* empty field */
    assert_int_equal(n, 0);
    assert_int_equal(cl_cursor_left(&c), 0);
    assert_int_equal(cl_cursor_lp16(&c, &v, &n), CL_ETRUNC);

    /* announced length beyond the data: one byte short */
    const uint8_t short16[] = {'x', 4, 0, 'a', 'b', 'c'};
    cl_cursor_init(&c, short16, sizeof short16);
    assert_int_equal(cl_cursor_skip(&c, 1), CL_OK);
    assert_int_equal(cl_cursor_lp16(&c, &v, &n), CL_ETRUNC);
    assert_int_equal(c.pos, 1);
    /* prefix itself truncated */
    const uint8_t half[] = {5};
    cl_cursor_init(&c, half, sizeof half);
    assert_int_equal(cl_cursor_lp16(&c, &v, &n), CL_ETRUNC);
    assert_int_equal(cl_cursor_lp32(&c, &v, &n), CL_ETRUNC);
    assert_int_equal(c.pos, 0);

    /* lp32 with huge lengths */
    const uint8_t big32[] = {0xff, 0xff, 0xff, 0xff, 1, 2, 3};
    cl_cursor_init(&c, big32, sizeof big32);
    assert_int_equal(cl_cursor_lp32(&c, &v, &n), CL_ETRUNC);
    assert_int_equal(c.pos, 0);
    const uint8_t exact32[] = {3, 0, 0, 0, 1, 2, 3};
    cl_cursor_init(&c, exact32, sizeof exact32);
    assert_int_equal(cl_cursor_lp32(&c, &v, &n), CL_OK);
    assert_int_equal(n, 3);
    assert_ptr_equal(v, exact32 + 4);
    cl_cursor_init(&c, exact32, sizeof exact32 - 1);
    assert_int_equal(cl_cursor_lp32(&c, &v, &n), CL_ETRUNC);
    assert_int_equal(c.pos, 0);
    /* a u16-prefixed field read as lp32 announces 0x63620003 bytes */
    cl_cursor_init(&c, ok16, 5);
    assert_int_equal(cl_cursor_lp32(&c, &v, &n), CL_ETRUNC);
    assert_int_equal(c.pos, 0);
}

/* ---- cl_buf -----------------------------------------------------------------------------------
 */

static void test_buf_growth(void **state)
{
    (void)state;
    cl_buf b = CL_BUF_INIT;
    for (unsigned i = 0; i < 5000; i++) {
        assert_int_equal(cl_buf_u8(&b, (uint8_t)(i * 31)), CL_OK);
        assert_true(b.cap >= b.len);
    }
    assert_int_equal(b.len, 5000);
    for (unsigned i = 0; i < 5000; i++)
        assert_int_equal(b.data[i], (uint8_t)(i * 31));

    cl_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(cl_buf_u16(&b, 0x1234), CL_OK);
    assert_int_equal(cl_buf_u32(&b, 0xdeadbeef), CL_OK);
    assert_int_equal(cl_buf_u64(&b, 0x0102030405060708ull), CL_OK);
    assert_int_equal(cl_buf_lp16(&b, "hi", 2), CL_OK);
    assert_int_equal(cl_buf_lp32(&b, "xyz", 3), CL_OK);
    assert_int_equal(cl_buf_lp16(&b, NULL, 0), CL_OK);
    cl_cursor c;
    cl_cursor_init(&c, b.data, b.len);
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    const uint8_t *v;
    size_t n;
    assert_int_equal(cl_cursor_u16(&c, &u16), CL_OK);
    assert_int_equal(u16, 0x1234);
    assert_int_equal(cl_cursor_u32(&c, &u32), CL_OK);
    assert_true(u32 == 0xdeadbeef);
    assert_int_equal(cl_cursor_u64(&c, &u64), CL_OK);
    assert_true(u64 == 0x0102030405060708ull);
    assert_int_equal(cl_cursor_lp16(&c, &v, &n), CL_OK);
    assert_int_equal(n, 2);
    assert_memory_equal(v, "hi", 2);
    assert_int_equal(cl_cursor_lp32(&c, &v, &n), CL_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(v, "xyz", 3);
    assert_int_equal(cl_cursor_lp16(&c, &v, &n), CL_OK);
    assert_int_equal(n, 0);
    assert_int_equal(cl_cursor_left(&c), 0);

    uint8_t t[8];
    cl_store_u64(t, 0x1122334455667788ull);
    assert_int_equal(t[0], 0x88);
    assert_int_equal(t[7], 0x11);
    assert_true(cl_load_u64(t) == 0x1122334455667788ull);
    assert_true(cl_load_u32(t) == 0x55667788u);

    cl_buf_wipe_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    cl_buf_free(&b); /* idempotent */
}

/* A secret buffer keeps its bytes across growth, zeroes what cl_buf_reset drops, stays secret when
 * freed and reused, and a failed growth leaves it as it was. (That growth wipes the old storage is
 * seen from outside: tests/cli/private_memory.py searches cledgerd's memory.) */
static void test_buf_secret(void **state)
{
    (void)state;
    cl_buf b = CL_BUF_SECRET;
    assert_int_equal(b.secret, 1);
    for (unsigned i = 0; i < 5000; i++)
        assert_int_equal(cl_buf_u8(&b, (uint8_t)(i * 7 + 1)), CL_OK);
    for (unsigned i = 0; i < 5000; i++)
        assert_int_equal(b.data[i], (uint8_t)(i * 7 + 1));
    size_t cap = b.cap;
    cl_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, cap);
    for (unsigned i = 0; i < 5000; i++)
        assert_int_equal(b.data[i], 0);

    /* a growth that cannot allocate: unchanged */
    assert_int_equal(cl_buf_append(&b, "key", 3), CL_OK);
    uint8_t *before = b.data;
    cl_alloc_fail_after(0);
    assert_int_equal(cl_buf_reserve(&b, cap), CL_ENOMEM);
    cl_alloc_fail_after(-1);
    assert_ptr_equal(b.data, before);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "key", 3);

    cl_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len + b.cap, 0);
    assert_int_equal(b.secret, 1); /* still secret for its next use */
    assert_int_equal(cl_buf_append(&b, "again", 5), CL_OK);
    cl_buf_wipe_free(&b);
    assert_int_equal(b.secret, 1);

    cl_buf p = CL_BUF_INIT;
    assert_int_equal(p.secret, 0);
    cl_buf_init_secret(&p);
    assert_int_equal(p.secret, 1);
    cl_buf_init(&p);
    assert_int_equal(p.secret, 0);
    assert_int_equal(cl_buf_append(&p, "x", 1), CL_OK);
    cl_buf_wipe_free(&p);
    assert_int_equal(p.secret, 0);
    assert_null(p.data);
}

static void test_buf_overflow(void **state)
{
    (void)state;
    cl_buf b = CL_BUF_INIT;
    assert_int_equal(cl_buf_append(&b, "abc", 3), CL_OK);

    /* lengths that do not fit the prefix: rejected before anything is read or written */
    static uint8_t big[70000];
    assert_int_equal(cl_buf_lp16(&b, big, 65536), CL_EOVERFLOW);
    assert_int_equal(b.len, 3);
    assert_int_equal(cl_buf_lp16(&b, big, 65535), CL_OK);
    assert_int_equal(b.len, 3 + 2 + 65535);
    assert_int_equal(b.data[3], 0xff);
    assert_int_equal(b.data[4], 0xff);
    cl_buf_reset(&b);
    assert_int_equal(cl_buf_append(&b, "abc", 3), CL_OK);
    if (SIZE_MAX > UINT32_MAX)
        assert_int_equal(cl_buf_lp32(&b, big, (size_t)UINT32_MAX + 1), CL_EOVERFLOW);
    assert_int_equal(cl_buf_reserve(&b, SIZE_MAX), CL_EOVERFLOW);
    assert_int_equal(cl_buf_reserve(&b, SIZE_MAX - 3), CL_EOVERFLOW);
    assert_int_equal(cl_buf_append(&b, big, SIZE_MAX - 1), CL_EOVERFLOW);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "abc", 3);
    cl_buf_free(&b);

    /* a failed allocation leaves the buffer as it was */
    assert_int_equal(cl_buf_append(&b, "abc", 3), CL_OK);
    uint8_t *data = b.data;
    size_t cap = b.cap;
    cl_alloc_fail_after(0);
    assert_int_equal(cl_buf_append(&b, big, cap + 1), CL_ENOMEM);
    assert_int_equal(cl_buf_lp32(&b, big, cap), CL_ENOMEM);
    cl_alloc_fail_after(-1);
    assert_ptr_equal(b.data, data);
    assert_int_equal(b.cap, cap);
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "abc", 3);
    /* a failed prefixed append does not leave a dangling prefix */
    cl_alloc_fail_after(0);
    assert_int_equal(cl_buf_lp16(&b, big, cap), CL_ENOMEM);
    cl_alloc_fail_after(-1);
    assert_int_equal(b.len, 3);
    cl_buf_free(&b);
}

/* ---- hex --------------------------------------------------------------------------------------
 */

static void test_u64_dec(void **state)
{
    (void)state;
    char s[CL_U64_DEC_MAX + 1], want[32];
    const uint64_t v[] = {
        0, 1, 9, 10, 99, 100, 4294967295ull, 4294967296ull, 10000000000000000000ull, UINT64_MAX};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        memset(s, 'x', sizeof s);
        int n = snprintf(want, sizeof want, "%" PRIu64, v[i]);
        assert_int_equal(cl_u64_dec(v[i], s), (size_t)n);
        assert_string_equal(s, want);
    }
    assert_int_equal(cl_u64_dec(UINT64_MAX, s), CL_U64_DEC_MAX);
    char pair[CL_U64_PAIR_DEC_MAX + 1];
    assert_int_equal(cl_u64_pair_dec(0, 7, pair), 3);
    assert_string_equal(pair, "0.7");
    assert_int_equal(cl_u64_pair_dec(UINT64_MAX, UINT64_MAX, pair), CL_U64_PAIR_DEC_MAX);
    assert_string_equal(pair, "18446744073709551615.18446744073709551615");
}

static void test_hex(void **state)
{
    (void)state;
    const uint8_t bin[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
    char s[13];
    cl_hex_encode(bin, sizeof bin, s);
    assert_string_equal(s, "00017f80abff");
    uint8_t out[6];
    assert_int_equal(cl_hex_decode(s, 12, out, 6), CL_OK);
    assert_memory_equal(out, bin, 6);
    assert_int_equal(cl_hex_decode("00017F80ABFF", 12, out, 6), CL_OK); /* upper case accepted */
    assert_memory_equal(out, bin, 6);
    assert_int_equal(cl_hex_decode("00017f80aBfF", 12, out, 6), CL_OK);
    assert_memory_equal(out, bin, 6);

    /* wrong length for the output, odd length */
    assert_int_equal(cl_hex_decode("0001", 4, out, 1), CL_EHEX);
    assert_int_equal(cl_hex_decode("000", 3, out, 1), CL_EHEX);
    assert_int_equal(cl_hex_decode("0", 1, out, 0), CL_EHEX);
    uint8_t *p = NULL;
    size_t n = 0;
    assert_int_equal(cl_hex_decode_alloc("abc", 3, &p, &n), CL_EHEX);
    assert_null(p);
    /* bad characters anywhere */
    const char *bad[] = {"0g", "g0", " 0", "0 ", "0x", "+1", "\n0", "-1", "0:", "@1", "`1", "G0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(cl_hex_decode(bad[i], 2, out, 1), CL_EHEX);
    char with_nul[4] = {'a', '\0', 'b', 'c'};
    assert_int_equal(cl_hex_decode(with_nul, 4, out, 2), CL_EHEX);

    assert_int_equal(cl_hex_decode_alloc("DEADbeef", 8, &p, &n), CL_OK);
    assert_int_equal(n, 4);
    assert_memory_equal(p, "\xde\xad\xbe\xef", 4);
    cl_free(p);
    p = NULL;
    assert_int_equal(cl_hex_decode_alloc("zz", 2, &p, &n), CL_EHEX);
    assert_null(p);
    cl_alloc_fail_after(0);
    assert_int_equal(cl_hex_decode_alloc("00", 2, &p, &n), CL_ENOMEM);
    cl_alloc_fail_after(-1);
}

/* ---- base64 -----------------------------------------------------------------------------------
 */

static const char *RFC_IN[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
static const char *RFC_STD[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
static const char *RFC_URL[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};

static int b64(const char *s, cl_b64_variant v, uint8_t *out, size_t *n)
{
    return cl_b64_decode(s, strlen(s), out, 64, n, v);
}

static void test_base64_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < 7; i++) {
        size_t len = strlen(RFC_IN[i]), n = 99;
        char enc[16];
        uint8_t dec[64];
        assert_int_equal(cl_b64_encoded_len(len, CL_B64_STD), strlen(RFC_STD[i]));
        assert_int_equal(cl_b64_encoded_len(len, CL_B64_URL), strlen(RFC_URL[i]));
        cl_b64_encode((const uint8_t *)RFC_IN[i], len, enc, CL_B64_STD);
        assert_string_equal(enc, RFC_STD[i]);
        cl_b64_encode((const uint8_t *)RFC_IN[i], len, enc, CL_B64_URL);
        assert_string_equal(enc, RFC_URL[i]);
        assert_int_equal(b64(RFC_STD[i], CL_B64_STD, dec, &n), CL_OK);
        assert_int_equal(n, len);
        assert_memory_equal(dec, RFC_IN[i], len);
        assert_int_equal(b64(RFC_URL[i], CL_B64_URL, dec, &n), CL_OK);
        assert_int_equal(n, len);
        assert_memory_equal(dec, RFC_IN[i], len);
        assert_true(cl_b64_decoded_max(strlen(RFC_STD[i])) >= len);
        assert_true(cl_b64_decoded_max(strlen(RFC_URL[i])) >= len);
    }
    /* every byte value, both alphabets, all lengths mod 3 */
    uint8_t all[256], back[256 + 3];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    for (size_t len = 253; len <= 256; len++) {
        for (int v = 0; v < 2; v++) {
            char *e = cl_b64_encode_alloc(all, len, (cl_b64_variant)v);
            assert_non_null(e);
            assert_int_equal(strlen(e), cl_b64_encoded_len(len, (cl_b64_variant)v));
            size_t n = 0;
            assert_int_equal(cl_b64_decode(e, strlen(e), back, sizeof back, &n, (cl_b64_variant)v),
                             CL_OK);
            assert_int_equal(n, len);
            assert_memory_equal(back, all, len);
            assert_null(strchr(e, v == CL_B64_STD ? '-' : '+'));
            assert_null(strchr(e, v == CL_B64_STD ? '_' : '/'));
            cl_free(e);
        }
    }
    uint8_t *p = NULL;
    size_t n = 0;
    assert_int_equal(cl_b64_decode_alloc("Zm9vYmFy", 8, &p, &n, CL_B64_STD), CL_OK);
    assert_int_equal(n, 6);
    assert_memory_equal(p, "foobar", 6);
    cl_free(p);
    p = NULL;
    assert_int_equal(cl_b64_decode_alloc("Zm9vYmF", 7, &p, &n, CL_B64_STD), CL_EBASE64);
    assert_null(p);
}

static void test_base64_strict(void **state)
{
    (void)state;
    uint8_t out[64];
    size_t n;
    const char *bad_std[] = {
        "Zg",    "Zm8",       "Zg=",        "Zg===",   "Zm9v====",  "Zm8==",    " Zg==",
        "Zg== ", "Zg==\n",    "Zm9v\nYmFy", "Zh==",    "Zm9=",      "Zg==Zg==", "Z=g=",
        "Zm=v",  "=",         "==",         "====",    "A===",      "Zm9vYmF=", "Zm-v",
        "Zm_v",  "Zm9vYmFy=", "Zm9v!mFy",   "Zm\x80v", "Zm9vYg=\n",
    };
    for (size_t i = 0; i < sizeof bad_std / sizeof bad_std[0]; i++) {
        int rc = b64(bad_std[i], CL_B64_STD, out, &n);
        if (rc != CL_EBASE64)
            fail_msg("std accepted \"%s\" (rc %d)", bad_std[i], rc);
    }
    const char *bad_url[] = {
        "Zg==", "Zm8=", "Z", "Zm9vY", "Zh", "Zm9", "Zm+v", "Zm/v", "Zm9v ", "Zg=", "=", "Zm=v",
    };
    for (size_t i = 0; i < sizeof bad_url / sizeof bad_url[0]; i++) {
        int rc = b64(bad_url[i], CL_B64_URL, out, &n);
        if (rc != CL_EBASE64)
            fail_msg("url accepted \"%s\" (rc %d)", bad_url[i], rc);
    }
    /* both alphabets' specials in their own variant */
    assert_int_equal(b64("+/+/", CL_B64_STD, out, &n), CL_OK);
    assert_memory_equal(out, "\xfb\xff\xbf", 3);
    assert_int_equal(b64("-_-_", CL_B64_URL, out, &n), CL_OK);
    assert_memory_equal(out, "\xfb\xff\xbf", 3);
    /* an embedded NUL is not skipped */
    assert_int_equal(cl_b64_decode("Zm\0v", 4, out, sizeof out, &n, CL_B64_STD), CL_EBASE64);
    /* output capacity is honoured */
    assert_int_equal(cl_b64_decode("Zm9vYmFy", 8, out, 5, &n, CL_B64_STD), CL_EOVERFLOW);
    assert_int_equal(cl_b64_decode("Zm9vYmFy", 8, out, 6, &n, CL_B64_STD), CL_OK);
    assert_int_equal(cl_b64_decode("Zm9vYmE", 7, out, 4, &n, CL_B64_URL), CL_EOVERFLOW);
}

/* ---- JSON -------------------------------------------------------------------------------------
 */

static int parse(const char *s, size_t maxlen, json_t **j)
{
    char err[160];
    int rc = cl_json_parse(s, strlen(s), maxlen, j, err, sizeof err);
    if (rc < 0)
        assert_true(err[0] != '\0'); /* failures carry a description */
    return rc;
}

static char *nested(int depth, const char *inner)
{
    size_t il = strlen(inner);
    char *s = malloc(2 * (size_t)depth + il + 1);
    assert_non_null(s);
    memset(s, '[', (size_t)depth);
    memcpy(s + depth, inner, il);
    memset(s + depth + il, ']', (size_t)depth);
    s[2 * depth + il] = '\0';
    return s;
}

/* The parser of base/json.c itself (fuzz_json checks it against jansson on random input): escapes,
 * UTF-8, numbers and where errors are reported. */
static void test_json_parser_details(void **state)
{
    (void)state;
    json_t *j = NULL;
    assert_int_equal(
        parse("{\"k\\u00e9\": \"\\ud834\\udd1e\\n\\\"\\\\\\/\\b\\f\\r\\t\"}", 1000, &j), CL_OK);
    json_t *v = json_object_get(j, "k\xc3\xa9");
    assert_non_null(v);
    assert_int_equal(json_string_length(v), 4 + 8);
    assert_memory_equal(json_string_value(v), "\xf0\x9d\x84\x9e\n\"\\/\b\f\r\t", 12);
    json_decref(j);

    /* an escaped key is the same key as its plain spelling */
    j = NULL;
    assert_int_equal(parse("{\"\\u0061\": 1, \"a\": 2}", 1000, &j), CL_EJSON);
    /* a key with escapes survives a value that has escapes too */
    assert_int_equal(parse("{\"\\u0061b\": \"\\u0063d\", \"e\": [\"\\n\"]}", 1000, &j), CL_OK);
    assert_string_equal(json_string_value(json_object_get(j, "ab")), "cd");
    json_decref(j);

    /* numbers: exact integers, reals, the limits */
    j = NULL;
    assert_int_equal(parse("[-0, 9223372036854775807, -9223372036854775808, 1.5e3, 1e-400, "
                           "0.100000000000000000000000000000000000000000000000000000000000000001]",
                           1000, &j),
                     CL_OK);
    assert_true(json_is_integer(json_array_get(j, 0)));
    assert_int_equal(json_integer_value(json_array_get(j, 1)), INT64_MAX);
    assert_true(json_integer_value(json_array_get(j, 2)) == INT64_MIN);
    assert_true(json_real_value(json_array_get(j, 3)) == 1500.0);
    assert_true(json_real_value(json_array_get(j, 4)) == 0.0);
    assert_true(json_real_value(json_array_get(j, 5)) == 0.1);
    json_decref(j);
    j = NULL;
    const char *bad[] = {"[01]",
                         "[-]",
                         "[1.]",
                         "[.5]",
                         "[1e]",
                         "[+1]",
                         "[9223372036854775808]",
                         "[1e400]",
                         "[tru]",
                         "[nul]",
                         "[True]",
                         "[\"\\ud834\"]",
                         "[\"\\udd1e\"]",
                         "[\"\\ud834\\u0041\"]",
                         "[\"\\x\"]",
                         "[\"\\u12g4\"]",
                         "[\"\xc0\xaf\"]",
                         "[\"\xed\xa0\x80\"]",
                         "[\"\xf4\x90\x80\x80\"]",
                         "[\"\xe2\x82\"]",
                         "[\"\t\"]",
                         "\"top-level string\"",
                         "{\"a\" 1}",
                         "{1: 2}",
                         "[1 2]",
                         "{\"a\":1,}",
                         "["};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (parse(bad[i], 1000, &j) != CL_EJSON)
            fail_msg("accepted %s", bad[i]);
        assert_null(j);
    }

    /* errors say where: line and column (in characters) */
    char err[160];
    assert_int_equal(cl_json_parse("{\n  \"\xc3\xa9\": tru }", 17, 100, &j, err, sizeof err),
                     CL_EJSON);
    assert_non_null(strstr(err, "line 2 column 8"));
}

/* cl_json_put_string writes exactly what json_dumps writes for the same string. */
static void test_json_put_string(void **state)
{
    (void)state;
    cl_json_init(); /* jansson allocates through cl_malloc */
    char one[1];
    const char *samples[] = {"",
                             "plain",
                             "a\"b\\c/d",
                             "\x01\x1f\x7f tab\there\r\n",
                             "\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x80\xa8",
                             "\b\f"};
    for (int i = 0; i < 128 + (int)(sizeof samples / sizeof samples[0]); i++) {
        const char *str;
        size_t n;
        if (i < 128) {
            one[0] = (char)i;
            str = one;
            n = 1;
        } else {
            str = samples[i - 128];
            n = strlen(str);
        }
        json_t *j = json_stringn(str, n);
        assert_non_null(j);
        char *want = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
        json_decref(j);
        assert_non_null(want);
        cl_buf b = CL_BUF_INIT;
        assert_int_equal(cl_json_put_string(&b, str, n), CL_OK);
        assert_int_equal(b.len, strlen(want));
        assert_memory_equal(b.data, want, b.len);
        cl_buf_free(&b);
        cl_free(want);
    }
}

static void test_json_parse(void **state)
{
    (void)state;
    json_t *j = NULL;
    assert_int_equal(parse(" {\"a\": \"x\", \"b\": [1, 2, {\"c\": null}]} \n", 1000, &j), CL_OK);
    assert_non_null(j);
    char *dump = cl_json_dump(j);
    assert_string_equal(dump, "{\"a\":\"x\",\"b\":[1,2,{\"c\":null}]}");
    cl_free(dump);
    json_decref(j);

    j = NULL;
    assert_int_equal(parse("{\"a\": 1, \"a\": 2}", 1000, &j), CL_EJSON);
    assert_int_equal(parse("{\"a\": {\"x\": 1, \"x\": 1}}", 1000, &j), CL_EJSON);
    assert_int_equal(parse("{} x", 1000, &j), CL_EJSON);
    assert_int_equal(parse("{}{}", 1000, &j), CL_EJSON);
    assert_int_equal(parse("[1,]", 1000, &j), CL_EJSON);
    assert_int_equal(parse("", 1000, &j), CL_EJSON);
    assert_int_equal(parse("{\"a\": \"x\\u0000y\"}", 1000, &j), CL_EJSON);
    assert_null(j);
    /* a raw NUL byte inside the input */
    char err[64];
    assert_int_equal(cl_json_parse("{\"a\":\"x\0\"}", 10, 100, &j, err, sizeof err), CL_EJSON);
    assert_int_equal(cl_json_parse("{}\0", 3, 100, &j, NULL, 0), CL_EJSON);

    /* size limit: exactly the limit is fine, one more byte is not */
    assert_int_equal(parse("[1, 2]", 6, &j), CL_OK);
    json_decref(j);
    j = NULL;
    assert_int_equal(parse("[1, 2]", 5, &j), CL_EOVERFLOW);
    assert_null(j);

    /* depth: values nested up to CL_JSON_MAX_DEPTH levels below the top are accepted */
    char *s = nested(CL_JSON_MAX_DEPTH, "1");
    assert_int_equal(parse(s, 100000, &j), CL_OK);
    json_decref(j);
    j = NULL;
    free(s);
    s = nested(CL_JSON_MAX_DEPTH + 1, "1");
    assert_int_equal(parse(s, 100000, &j), CL_EJSON);
    free(s);
    s = nested(CL_JSON_MAX_DEPTH + 5, "{\"a\":{}}");
    assert_int_equal(parse(s, 100000, &j), CL_EJSON);
    free(s);
    s = nested(100000, ""); /* far beyond any limit: an error, not a stack overflow */
    assert_int_equal(parse(s, 1000000, &j), CL_EJSON);
    free(s);
    /* objects count as well as arrays */
    char deep[1024] = "";
    for (int i = 0; i < CL_JSON_MAX_DEPTH + 2; i++)
        strcat(deep, "{\"k\":");
    strcat(deep, "1");
    for (int i = 0; i < CL_JSON_MAX_DEPTH + 2; i++)
        strcat(deep, "}");
    assert_int_equal(parse(deep, sizeof deep, &j), CL_EJSON);
    assert_null(j);
}

static void test_json_getters(void **state)
{
    (void)state;
    json_t *j = NULL;
    assert_int_equal(
        parse("{\"s\":\"hello\",\"n\":5,\"h\":\"00ff\",\"H\":\"00FF\",\"e\":\"\"}", 1000, &j),
        CL_OK);
    const char *s;
    size_t n;
    assert_int_equal(cl_json_get_str(j, "s", &s, &n), CL_OK);
    assert_string_equal(s, "hello");
    assert_int_equal(n, 5);
    assert_int_equal(cl_json_get_str(j, "e", &s, NULL), CL_OK);
    assert_string_equal(s, "");
    assert_int_equal(cl_json_get_str(j, "missing", &s, &n), CL_EJSON);
    assert_int_equal(cl_json_get_str(j, "n", &s, &n), CL_EJSON);
    assert_int_equal(cl_json_opt_str(j, "missing", &s, &n), CL_ENOENT);
    assert_int_equal(cl_json_opt_str(j, "n", &s, &n), CL_EJSON);
    assert_int_equal(cl_json_opt_str(j, "s", &s, &n), CL_OK);
    uint8_t b[2];
    assert_int_equal(cl_json_get_hex(j, "h", b, 2), CL_OK);
    assert_memory_equal(b, "\x00\xff", 2);
    assert_int_equal(cl_json_get_hex(j, "H", b, 2), CL_OK);
    assert_int_equal(cl_json_get_hex(j, "h", b, 1), CL_EHEX);
    assert_int_equal(cl_json_get_hex(j, "s", b, 2), CL_EHEX);
    assert_int_equal(cl_json_get_hex(j, "n", b, 2), CL_EJSON);
    assert_int_equal(cl_json_get_hex(j, "missing", b, 2), CL_EJSON);
    json_t *arr = json_array();
    assert_int_equal(cl_json_get_str(arr, "s", &s, &n), CL_EJSON);
    assert_int_equal(cl_json_opt_str(NULL, "s", &s, &n), CL_EJSON);
    json_decref(arr);
    json_decref(j);
}

/* jansson allocates through the seam: every failed allocation while parsing is CL_ENOMEM. */
static void test_json_alloc_failure(void **state)
{
    (void)state;
    /* every allocating path of the parser: containers, plain and escaped strings and keys, numbers
     * short and long (a heap copy for strtod), literals */
    const char *doc =
        "{\"a\": [1, 2, {\"b\": \"some string value\"}], \"c\": \"d\", "
        "\"k\\u00e9\": \"x\\ny\", \"r\": 1.5e3, \"t\": [true, false, null], "
        "\"long\": 0.1000000000000000000000000000000000000000000000000000000000000000001}";
    long failed = 0;
    for (long n = 0; n < 400; n++) {
        json_t *j = NULL;
        long before = cl_alloc_failures();
        cl_alloc_fail_after(n);
        int rc = cl_json_parse(doc, strlen(doc), 1000, &j, NULL, 0);
        cl_alloc_fail_after(-1);
        if (cl_alloc_failures() == before) {
            assert_int_equal(rc, CL_OK);
            json_decref(j);
            assert_true(failed > 0);
            return;
        }
        failed++;
        assert_int_equal(rc, CL_ENOMEM);
        assert_null(j);
    }
    fail_msg("parse never succeeded");
}

/* ---- log --------------------------------------------------------------------------------------
 */

static void test_log_level(void **state)
{
    (void)state;
    assert_int_equal(cl_log_level_parse("debug"), CL_LOG_DEBUG);
    assert_int_equal(cl_log_level_parse("info"), CL_LOG_INFO);
    assert_int_equal(cl_log_level_parse("warn"), CL_LOG_WARN);
    assert_int_equal(cl_log_level_parse("error"), CL_LOG_ERROR);
    assert_int_equal(cl_log_level_parse("off"), CL_LOG_OFF);
    assert_int_equal(cl_log_level_parse(""), -1);
    assert_int_equal(cl_log_level_parse("INFO"), -1);
    assert_int_equal(cl_log_level_parse("warning"), -1);
    assert_int_equal(cl_log_level_parse("info "), -1);
    assert_int_equal(cl_log_level_parse("inf"), -1);

    cl_log_level old = cl_log_get_level();
    cl_log_set_level(CL_LOG_ERROR);
    assert_int_equal(cl_log_get_level(), CL_LOG_ERROR);
    cl_log_set_level(CL_LOG_OFF);
    /* below the level: dropped without output or allocation */
    long before = cl_alloc_fail_after(0);
    (void)before;
    cl_log(CL_LOG_ERROR, "not printed", NULL);
    cl_logf(CL_LOG_WARN, "not printed %d", 1);
    long failures = cl_alloc_failures();
    cl_alloc_fail_after(-1);
    assert_int_equal(cl_alloc_failures(), failures);
    cl_log_set_level(old);
}

/* ---- allocation seam --------------------------------------------------------------------------
 */

static void test_alloc_seam(void **state)
{
    (void)state;
    cl_alloc_fail_after(-1);
    long base = cl_alloc_failures();

    cl_alloc_fail_after(0);
    assert_null(cl_malloc(16));
    assert_int_equal(cl_alloc_failures(), base + 1);
    assert_null(cl_calloc(1, 16)); /* still armed until disarmed */
    assert_int_equal(cl_alloc_fail_after(-1), 0);
    void *p = cl_malloc(16);
    assert_non_null(p);
    cl_free(p);
    assert_int_equal(cl_alloc_failures(), base + 2);

    /* n successes, then failure */
    cl_alloc_fail_after(2);
    void *a = cl_malloc(1), *b = cl_strdup("xy"), *c = cl_malloc(1);
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(b, "xy");
    assert_null(c);
    assert_int_equal(cl_alloc_fail_after(-1), 2);

    /* realloc failure keeps the old block */
    cl_alloc_fail_after(0);
    assert_null(cl_realloc(a, 1000));
    assert_null(cl_strndup("abc", 2));
    cl_alloc_fail_after(-1);
    a = cl_realloc(a, 1000);
    assert_non_null(a);
    char *d = cl_strndup("abcdef", 3);
    assert_string_equal(d, "abc");

    /* counting successes with the seam disarmed */
    cl_alloc_fail_after(-1);
    void *e = cl_calloc(0, 0), *f = cl_malloc(0);
    assert_non_null(e);
    assert_non_null(f);
    assert_int_equal(cl_alloc_fail_after(-1), 2);
    cl_free(e);
    cl_free(f);
    cl_free(a);
    cl_free(b);
    cl_free(d);
    cl_free(NULL);
}

/* Log text that is not UTF-8 keeps its readable part: each bad byte becomes '?'. */
static void test_log_text(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain", "plain"},
        {"/tmp/d\xff"
         "x",
         "/tmp/d?x"},
        {"caf\xc3\xa9", "caf\xc3\xa9"},                       /* valid two-byte character kept */
        {"cut \xe2\x82", "cut ??"},                           /* a character cut at the end */
        {"\xf0\x9f\x98\x80 \xc0\xaf", "\xf0\x9f\x98\x80 ??"}, /* overlong '/' refused */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *j = cl_log_text(cases[i].in);
        assert_non_null(j);
        assert_string_equal(json_string_value(j), cases[i].out);
        json_decref(j);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_list),
        cmocka_unit_test(test_log_text),
        cmocka_unit_test(test_err_macros),
        cmocka_unit_test(test_cursor_reads),
        cmocka_unit_test(test_cursor_truncation),
        cmocka_unit_test(test_cursor_lp),
        cmocka_unit_test(test_buf_growth),
        cmocka_unit_test(test_buf_overflow),
        cmocka_unit_test(test_buf_secret),
        cmocka_unit_test(test_u64_dec),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_base64_vectors),
        cmocka_unit_test(test_base64_strict),
        cmocka_unit_test(test_json_parse),
        cmocka_unit_test(test_json_put_string),
        cmocka_unit_test(test_json_parser_details),
        cmocka_unit_test(test_json_getters),
        cmocka_unit_test(test_json_alloc_failure),
        cmocka_unit_test(test_log_level),
        cmocka_unit_test(test_alloc_seam),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
