#include "base/codec.h"

#include <string.h>

#include "base/alloc.h"

static const char HEX[] = "0123456789abcdef";

size_t cl_u64_dec(uint64_t v, char *out)
{
    char tmp[CL_U64_DEC_MAX];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    size_t n = sizeof tmp - i;
    memcpy(out, tmp + i, n);
    out[n] = '\0';
    return n;
}

size_t cl_u64_pair_dec(uint64_t a, uint64_t b, char *out)
{
    size_t n = cl_u64_dec(a, out);
    out[n++] = '.';
    return n + cl_u64_dec(b, out + n);
}

void cl_hex_encode(const uint8_t *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = HEX[in[i] >> 4];
        out[2 * i + 1] = HEX[in[i] & 15];
    }
    out[2 * n] = '\0';
}

int cl_hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int cl_hex_decode(const char *in, size_t inlen, uint8_t *out, size_t outlen)
{
    CL_ENSURE(outlen <= SIZE_MAX / 2 && inlen == 2 * outlen, CL_EHEX);
    for (size_t i = 0; i < outlen; i++) {
        int hi = cl_hex_digit(in[2 * i]), lo = cl_hex_digit(in[2 * i + 1]);
        CL_ENSURE(hi >= 0 && lo >= 0, CL_EHEX);
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return CL_OK;
}

int cl_hex_decode_alloc(const char *in, size_t inlen, uint8_t **out, size_t *outlen)
{
    CL_ENSURE(inlen % 2 == 0, CL_EHEX);
    uint8_t *p = cl_malloc(inlen / 2);
    CL_ENSURE(p != NULL, CL_ENOMEM);
    int rc = cl_hex_decode(in, inlen, p, inlen / 2);
    if (rc < 0) {
        cl_free(p);
        return rc;
    }
    *out = p;
    *outlen = inlen / 2;
    return CL_OK;
}

static const char B64_STD[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char B64_URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t cl_b64_encoded_len(size_t n, cl_b64_variant v)
{
    if (v == CL_B64_STD)
        return (n + 2) / 3 * 4;
    return n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}

void cl_b64_encode(const uint8_t *in, size_t n, char *out, cl_b64_variant v)
{
    const char *a = v == CL_B64_STD ? B64_STD : B64_URL;
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t x = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = a[x >> 18];
        out[o++] = a[(x >> 12) & 63];
        out[o++] = a[(x >> 6) & 63];
        out[o++] = a[x & 63];
    }
    size_t rest = n - i;
    if (rest > 0) {
        uint32_t x = (uint32_t)in[i] << 16 | (rest == 2 ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = a[x >> 18];
        out[o++] = a[(x >> 12) & 63];
        if (rest == 2)
            out[o++] = a[(x >> 6) & 63];
        if (v == CL_B64_STD) {
            if (rest == 1)
                out[o++] = '=';
            out[o++] = '=';
        }
    }
    out[o] = '\0';
}

char *cl_b64_encode_alloc(const uint8_t *in, size_t n, cl_b64_variant v)
{
    char *out = cl_malloc(cl_b64_encoded_len(n, v) + 1);
    if (out != NULL)
        cl_b64_encode(in, n, out, v);
    return out;
}

size_t cl_b64_decoded_max(size_t inlen) { return inlen / 4 * 3 + 3; }

/* Alphabets of the decoder: the two of cl_b64_variant, and either (the lenient decoder). */
enum { B64_ALPHA_STD = CL_B64_STD, B64_ALPHA_URL = CL_B64_URL, B64_ALPHA_ANY };

static int b64val(char c, int alpha)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if ((c == '+' && alpha != B64_ALPHA_URL) || (c == '-' && alpha != B64_ALPHA_STD))
        return 62;
    if ((c == '/' && alpha != B64_ALPHA_URL) || (c == '_' && alpha != B64_ALPHA_STD))
        return 63;
    return -1;
}

/* Decodes `body` symbols (no padding) into out (capacity outcap): canonical only (no lone final
 * symbol, unused low bits zero). */
static int b64_decode_body(const char *in, size_t body, uint8_t *out, size_t outcap, size_t *outlen,
                           int alpha)
{
    size_t rem = body % 4;
    CL_ENSURE(rem != 1, CL_EBASE64);
    size_t need = body / 4 * 3 + (rem ? rem - 1 : 0);
    CL_ENSURE(need <= outcap, CL_EOVERFLOW);
    size_t o = 0, i = 0;
    for (; i + 4 <= body; i += 4) {
        int a = b64val(in[i], alpha), b = b64val(in[i + 1], alpha), c = b64val(in[i + 2], alpha),
            d = b64val(in[i + 3], alpha);
        CL_ENSURE((a | b | c | d) >= 0, CL_EBASE64);
        uint32_t x = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        out[o++] = (uint8_t)(x >> 16);
        out[o++] = (uint8_t)(x >> 8);
        out[o++] = (uint8_t)x;
    }
    if (rem) {
        int a = b64val(in[i], alpha), b = b64val(in[i + 1], alpha);
        int c = rem == 3 ? b64val(in[i + 2], alpha) : 0;
        CL_ENSURE(a >= 0 && b >= 0 && c >= 0, CL_EBASE64);
        uint32_t x = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6;
        /* canonical: the unused low bits must be zero */
        CL_ENSURE((rem == 2 ? (x & 0xffff) : (x & 0xff)) == 0, CL_EBASE64);
        out[o++] = (uint8_t)(x >> 16);
        if (rem == 3)
            out[o++] = (uint8_t)(x >> 8);
    }
    *outlen = o;
    return CL_OK;
}

int cl_b64_decode(const char *in, size_t inlen, uint8_t *out, size_t outcap, size_t *outlen,
                  cl_b64_variant v)
{
    size_t body = inlen;
    if (v == CL_B64_STD) {
        CL_ENSURE(inlen % 4 == 0, CL_EBASE64);
        if (inlen > 0 && in[inlen - 1] == '=')
            body--;
        if (body < inlen && body > 0 && in[body - 1] == '=')
            body--;
        /* With standard padding the symbol count must round up to the padded length exactly. */
        CL_ENSURE((body + 3) / 4 * 4 == inlen, CL_EBASE64);
    }
    return b64_decode_body(in, body, out, outcap, outlen, (int)v);
}

int cl_b64_decode_alloc(const char *in, size_t inlen, uint8_t **out, size_t *outlen,
                        cl_b64_variant v)
{
    size_t cap = cl_b64_decoded_max(inlen);
    uint8_t *p = cl_malloc(cap);
    CL_ENSURE(p != NULL, CL_ENOMEM);
    int rc = cl_b64_decode(in, inlen, p, cap, outlen, v);
    if (rc < 0) {
        cl_free(p);
        return rc;
    }
    *out = p;
    return CL_OK;
}

int cl_b64_decode_lenient_alloc(const char *in, size_t inlen, uint8_t **out, size_t *outlen)
{
    CL_ENSURE(out != NULL && outlen != NULL && (in != NULL || inlen == 0), CL_EINVAL);
    size_t body = inlen;
    while (body > 0 && inlen - body < 2 && in[body - 1] == '=')
        body--;
    CL_ENSURE(body == inlen || inlen % 4 == 0, CL_EBASE64);
    /* Either alphabet, even mixed; everything else is rejected by the strict body decoder (unused
     * bits, a lone final symbol, a third '=', whitespace). */
    size_t cap = cl_b64_decoded_max(body);
    uint8_t *buf = cl_malloc(cap + 1);
    CL_ENSURE(buf != NULL, CL_ENOMEM);
    size_t len = 0;
    int rc = b64_decode_body(in, body, buf, cap, &len, B64_ALPHA_ANY);
    if (rc < 0) {
        cl_free(buf);
        return CL_EBASE64;
    }
    buf[len] = 0;
    *out = buf;
    *outlen = len;
    return CL_OK;
}

size_t cl_utf8_seq_len(const uint8_t *p, size_t avail)
{
    unsigned c = p[0];
    size_t n;
    unsigned lo = 0x80, hi = 0xBF; /* range of the second byte */
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0; /* no overlong 3-byte forms */
        else if (c == 0xED)
            hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90; /* no overlong 4-byte forms */
        else if (c == 0xF4)
            hi = 0x8F; /* nothing above U+10FFFF */
    } else
        return 0;
    if (avail < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

int cl_utf8_valid(const char *s, size_t n)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    while (i < n) {
        size_t k = 1;
        if (p[i] == 0 || (p[i] >= 0x80 && (k = cl_utf8_seq_len(p + i, n - i)) == 0))
            return 0;
        i += k;
    }
    return 1;
}
