/*
 * fuzz_url.c — the request-target helpers of src/node/url.c (spec/ledger-api.md §2.1, §4.1).
 *
 * The input is used as a whole in every role: as a path, a query, a percent-encoded string (both
 * modes) and a transaction id. Properties checked (abort on violation):
 *   - decoding never yields a NUL byte and never grows the input;
 *   - encode then decode is the identity for any decoded string;
 *   - a parsed transaction id formats back to exactly the input (one spelling per id);
 *   - a parsed path has at most CL_URL_MAX_SEGMENTS segments, each NUL-free;
 *   - the last occurrence of a query parameter wins.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/cursor.h"
#include "node/url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_decode(const char *s, size_t n, int form)
{
    char *d = NULL;
    size_t dl = 0;
    if (cl_url_decode(s, n, form, &d, &dl) != CL_OK)
        return;
    if (dl > n || memchr(d, 0, dl) != NULL || d[dl] != 0)
        abort();
    cl_buf b = CL_BUF_INIT;
    if (cl_url_encode(&b, d, dl) == CL_OK) {
        char *back = NULL;
        size_t bl = 0;
        if (cl_url_decode((const char *)b.data, b.len, form, &back, &bl) != CL_OK || bl != dl ||
            memcmp(back, d, dl) != 0)
            abort();
        cl_free(back);
    }
    cl_buf_free(&b);
    cl_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    check_decode(s, size, 0);
    check_decode(s, size, 1);

    uint64_t v, q;
    if (cl_txid_parse(s, size, &v, &q) == CL_OK) {
        char out[CL_TXID_MAX + 1];
        cl_txid_format(v, q, out, sizeof out);
        if (v == 0 || q == 0 || strlen(out) != size || memcmp(out, s, size) != 0)
            abort();
    }

    /* Path and query parsers take the NUL-terminated strings of the HTTP parser. */
    char *z = cl_malloc(size + 2);
    if (z == NULL)
        return 0;
    z[0] = '/';
    memcpy(z + 1, data, size);
    z[size + 1] = 0;
    cl_url_path p;
    if (cl_url_path_parse(z, &p) == CL_OK) {
        if (p.n > CL_URL_MAX_SEGMENTS)
            abort();
        for (size_t i = 0; i < p.n; i++) {
            if (strlen(p.seg[i]) != p.len[i])
                abort();
        }
        cl_url_path_free(&p);
    }
    cl_url_query qu;
    if (cl_url_query_parse(z + 1, &qu) == CL_OK) {
        if (qu.n > CL_URL_MAX_PARAMS)
            abort();
        for (size_t i = 0; i < qu.n; i++) {
            size_t len = 0;
            const char *got = cl_url_query_get(&qu, qu.name[i], &len);
            /* The last item with this name is at or after i. */
            size_t last = i;
            for (size_t k = i + 1; k < qu.n; k++)
                if (strcmp(qu.name[k], qu.name[i]) == 0)
                    last = k;
            if (got != qu.value[last] || len != qu.value_len[last])
                abort();
        }
        cl_url_query_free(&qu);
    }
    cl_free(z);
    return 0;
}
