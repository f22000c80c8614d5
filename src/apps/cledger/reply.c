/*
 * reply.c — what the `cledger` client makes of a server's answers before it trusts or shows them
 * (reply.h). Fuzzed by tests/fuzz/fuzz_client_reply.c.
 */
#include "reply.h"

#include <string.h>

#include "base/codec.h"
#include "node/url.h"

size_t reply_escape_next(const char *s, size_t n, size_t *used, char out[REPLY_ESCAPE_MAX])
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    unsigned char ch = p[0];
    *used = 1;
    const char *named = ch == '\\'   ? "\\\\"
                        : ch == '\n' ? "\\n"
                        : ch == '\r' ? "\\r"
                        : ch == '\t' ? "\\t"
                                     : NULL;
    if (named != NULL) {
        memcpy(out, named, 2);
        return 2;
    }
    if (ch >= 0x20 && ch < 0x7f) {
        out[0] = (char)ch;
        return 1;
    }
    size_t k = ch >= 0x80 ? cl_utf8_seq_len(p, n) : 0;
    if (k == 2 && ch == 0xc2 && p[1] <= 0x9f) { /* U+0080..U+009F: C1 controls (CSI is U+009B) */
        memcpy(out, "\\u00", 4);
        out[4] = hex[p[1] >> 4];
        out[5] = hex[p[1] & 15];
        *used = 2;
        return 6;
    }
    if (k > 0) { /* any other well-formed character */
        memcpy(out, s, k);
        *used = k;
        return k;
    }
    out[0] = '\\'; /* C0 controls, DEL, bytes that are not UTF-8 */
    out[1] = 'x';
    out[2] = hex[ch >> 4];
    out[3] = hex[ch & 15];
    return 4;
}

const char *reply_esc(const char *s, size_t n, char *buf, size_t cap)
{
    if (s == NULL) {
        s = "(none)";
        n = 6;
    }
    size_t o = 0;
    char e[REPLY_ESCAPE_MAX];
    for (size_t i = 0, used; i < n; i += used) {
        size_t k = reply_escape_next(s + i, n - i, &used, e);
        if (o + k + 4 > cap) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(buf + o, e, k);
        o += k;
    }
    buf[o] = '\0';
    return buf;
}

uint64_t reply_link_from(const char *path)
{
    const char *q = strchr(path, '?');
    cl_url_query qs;
    if (q == NULL || cl_url_query_parse(q + 1, &qs) < 0)
        return 0;
    size_t n = 0;
    const char *v = cl_url_query_get(&qs, "fromTransactionId", &n);
    uint64_t view, seqno;
    if (v == NULL || cl_txid_parse(v, n, &view, &seqno) < 0)
        seqno = 0;
    cl_url_query_free(&qs);
    return seqno;
}

int reply_is_user(const json_t *u)
{
    if (!json_is_string(json_object_get(u, "userId")))
        return 0;
    json_t *roles = json_object_get(u, "assignedRoles");
    if (roles == NULL)
        return json_is_string(json_object_get(u, "assignedRole"));
    if (!json_is_array(roles))
        return 0;
    size_t i;
    json_t *r;
    json_array_foreach(roles, i, r) if (!json_is_string(r)) return 0;
    return 1;
}

size_t reply_drop_final_nul_escapes(char *text, size_t len)
{
    static const char nul[] = "\\u0000";
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t run = 0; /* NUL escapes starting at i */
        while (i + (run + 1) * 6 <= len && memcmp(text + i + run * 6, nul, 6) == 0)
            run++;
        if (run > 0 && i + run * 6 < len && text[i + run * 6] == '"') {
            size_t bs = 0; /* backslashes right before i: odd, the one at i is escaped */
            while (bs < o && text[o - 1 - bs] == '\\')
                bs++;
            if (bs % 2 == 0) {
                i += run * 6;
                continue;
            }
        }
        text[o++] = text[i++];
    }
    if (o < len)
        text[o] = '\0';
    return o;
}

int reply_is_certificate(const char *pem, size_t n)
{
    static const char begin[] = "-----BEGIN CERTIFICATE-----", end[] = "-----END CERTIFICATE-----";
    if (pem == NULL)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((pem[i] < 0x20 || pem[i] >= 0x7f) && pem[i] != '\n' && pem[i] != '\r' && pem[i] != '\t')
            return 0;
    while (n > 0 && strchr(" \t\r\n", pem[n - 1]) != NULL)
        n--;
    while (n > 0 && strchr(" \t\r\n", pem[0]) != NULL)
        pem++, n--;
    return n >= sizeof begin + sizeof end && memcmp(pem, begin, sizeof begin - 1) == 0 &&
           memcmp(pem + n - (sizeof end - 1), end, sizeof end - 1) == 0 &&
           strstr(pem + 1, "-----BEGIN") == NULL; /* one block (pem is NUL-terminated) */
}
