/*
 * fuzz_client_reply.c — what the `cledger` client makes of a server's answers
 * (src/apps/cledger/reply.h): terminal escaping, nextLink progress, the shape of a user, and the
 * identity PEM with its tolerated trailing "\u0000".
 *
 * The input is used whole in every role. Properties checked (abort on violation):
 *   - escaped text is UTF-8 without C0 or C1 controls or DEL, and un-escaping it (an
 *     independent decoder here) gives back the input; a message copy is NUL-terminated, fits its
 *     buffer, is just as safe, and is a prefix of the full escape followed by "..." when cut;
 *   - dropping final NUL escapes never grows the text, leaves text without "\u0000" unchanged,
 *     leaves every input the strict JSON parser accepts unchanged, and is idempotent;
 *   - a link's fromTransactionId seqno is 0 unless the path has a '?' and the name;
 *   - a user (reply_is_user) has a string userId and string role(s);
 *   - a certificate (reply_is_certificate) is printable and starts and ends with the PEM lines.
 */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/apps/cledger/reply.h"
#include "base/alloc.h"
#include "base/codec.h"
#include "base/json.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The inverse of reply_escape_next over a whole text; -1 on a sequence it never writes. */
static long unescape(const char *e, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (e[i] != '\\') {
            out[o++] = e[i];
            continue;
        }
        if (++i == n)
            return -1;
        if (e[i] == '\\' || e[i] == 'n' || e[i] == 'r' || e[i] == 't') {
            out[o++] = e[i] == '\\' ? '\\' : e[i] == 'n' ? '\n' : e[i] == 'r' ? '\r' : '\t';
        } else if (e[i] == 'x' && i + 2 < n && hexval(e[i + 1]) >= 0 && hexval(e[i + 2]) >= 0) {
            out[o++] = (char)(hexval(e[i + 1]) * 16 + hexval(e[i + 2]));
            i += 2;
        } else if (e[i] == 'u' && i + 4 < n && memcmp(e + i + 1, "00", 2) == 0 &&
                   hexval(e[i + 3]) >= 8 && hexval(e[i + 4]) >= 0) { /* U+0080..U+009F */
            int v = hexval(e[i + 3]) * 16 + hexval(e[i + 4]);
            if (v > 0x9f)
                return -1;
            out[o++] = (char)0xc2;
            out[o++] = (char)v;
            i += 4;
        } else {
            return -1;
        }
    }
    return (long)o;
}

/* Escaped text is safe on a terminal: UTF-8 without C0 or C1 controls or DEL. */
static void check_safe(const char *t, size_t n)
{
    CHECK(cl_utf8_valid(t, n));
    for (size_t j = 0; j < n; j++) {
        unsigned char c = (unsigned char)t[j];
        CHECK(c >= 0x20 && c != 0x7f);
        CHECK(!(c == 0xc2 && j + 1 < n && (unsigned char)t[j + 1] <= 0x9f));
    }
}

static void check_escape(const char *s, size_t n)
{
    char *full = malloc(REPLY_ESCAPE_MAX * n + 1), *back = malloc(n + 1);
    CHECK(full != NULL && back != NULL);
    size_t fl = 0;
    full[0] = 0; /* n == 0: nothing escaped */
    for (size_t i = 0, used; i < n; i += used) {
        char e[REPLY_ESCAPE_MAX];
        size_t k = reply_escape_next(s + i, n - i, &used, e);
        CHECK(k >= 1 && k <= REPLY_ESCAPE_MAX && used >= 1 && used <= 4 && used <= n - i);
        memcpy(full + fl, e, k);
        fl += k;
    }
    check_safe(full, fl);
    CHECK(unescape(full, fl, back) == (long)n && memcmp(back, s, n) == 0);
    /* message copies of several sizes */
    static const size_t caps[] = {8, 9, 17, 64, 260};
    for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
        char buf[260];
        const char *r = reply_esc(s, n, buf, caps[c]);
        CHECK(r == buf);
        size_t bl = strlen(buf);
        CHECK(bl < caps[c]);
        check_safe(buf, bl);
        if (fl + 4 <= caps[c]) /* the whole escape fits, with room to spare for "..." */
            CHECK(bl == fl && memcmp(buf, full, fl) == 0);
        else /* a prefix of it, cut between characters, and "..." */
            CHECK(bl >= 3 && bl - 3 < fl && memcmp(buf, full, bl - 3) == 0 &&
                  memcmp(buf + bl - 3, "...", 3) == 0);
    }
    char none[16];
    CHECK(strcmp(reply_esc(NULL, 0, none, sizeof none), "(none)") == 0);
    free(full);
    free(back);
}

static void check_drop_nul(const char *s, size_t n)
{
    char *t = malloc(n + 1);
    CHECK(t != NULL);
    memcpy(t, s, n);
    t[n] = 0;
    size_t m = reply_drop_final_nul_escapes(t, n);
    CHECK(m <= n && (m == n || t[m] == 0));
    if (memmem(s, n, "\\u0000", 6) == NULL)
        CHECK(m == n && memcmp(t, s, n) == 0);
    json_t *j = NULL;
    if (cl_json_parse(s, n, n + 1, &j, NULL, 0) == CL_OK) /* strict: no NUL escape in it */
        CHECK(m == n && memcmp(t, s, n) == 0);
    json_decref(j);
    char *u = malloc(m + 1);
    CHECK(u != NULL);
    memcpy(u, t, m);
    u[m] = 0;
    CHECK(reply_drop_final_nul_escapes(u, m) == m && memcmp(u, t, m) == 0);
    free(u);
    free(t);
}

static void check_json_shapes(const char *s, size_t n)
{
    json_t *j = NULL;
    if (cl_json_parse(s, n, n + 1, &j, NULL, 0) != CL_OK)
        return;
    if (reply_is_user(j)) {
        CHECK(json_is_string(json_object_get(j, "userId")));
        json_t *roles = json_object_get(j, "assignedRoles");
        if (roles == NULL) {
            CHECK(json_is_string(json_object_get(j, "assignedRole")));
        } else {
            CHECK(json_is_array(roles));
            for (size_t i = 0; i < json_array_size(roles); i++)
                CHECK(json_is_string(json_array_get(roles, i)));
        }
    }
    /* users inside a list page, as cledger user list walks them */
    json_t *users = json_object_get(j, "ledgerUsers");
    for (size_t i = 0; i < json_array_size(users); i++)
        (void)reply_is_user(json_array_get(users, i));
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    check_escape(s, size);
    check_drop_nul(s, size);
    check_json_shapes(s, size);

    char *z = malloc(size + 1); /* NUL-terminated copies for the string functions */
    CHECK(z != NULL);
    memcpy(z, data, size);
    z[size] = 0;
    size_t zl = strlen(z);
    if (reply_link_from(z) != 0)
        CHECK(strchr(z, '?') != NULL && strstr(z, "fromTransactionId") != NULL);
    if (reply_is_certificate(z, zl)) {
        for (size_t i = 0; i < zl; i++)
            CHECK((z[i] >= 0x20 && z[i] < 0x7f) || z[i] == '\n' || z[i] == '\r' || z[i] == '\t');
        const char *p = z + strspn(z, " \t\r\n");
        CHECK(strncmp(p, "-----BEGIN CERTIFICATE-----", 27) == 0);
        size_t e = zl;
        while (e > 0 && strchr(" \t\r\n", z[e - 1]) != NULL)
            e--;
        CHECK(e >= 25 && memcmp(z + e - 25, "-----END CERTIFICATE-----", 25) == 0);
    }
    free(z);
    return 0;
}
