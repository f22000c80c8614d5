/*
 * fuzz_http — the plaintext HTTP/1.1 request parser (src/net/http.c, cl_http_parser_*), the same
 * code the server runs over decrypted bytes.
 *
 * The first input byte chooses how the rest is cut into 1–3 pieces fed one after another, so
 * that every parser state is also reached across a read boundary. Limits are small (1 KiB of
 * headers, 4 KiB of body) so the 431 and 413 paths are reachable. Checks: every delivered request
 * is internally consistent (strings NUL-terminated where the lengths say, lower-case header
 * names, path and query taken from the target's form, body within the limit), and a failure
 * reports one of the statuses the server answers with and makes every later feed fail the same
 * way.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "net/http.h"

#define MAX_HEADER 1024
#define MAX_BODY 4096

static size_t requests;

static void on_request(void *arg, cl_http_request *r)
{
    (void)arg;
    requests++;
    CHECK(r->method != NULL && r->target != NULL && r->path != NULL && r->query != NULL);
    size_t tl = strlen(r->target), pl = strlen(r->path);
    CHECK(strchr(r->path, '?') == NULL);
    if (r->target[0] == '/') { /* origin-form: path and query are the target split at '?' */
        CHECK(pl <= tl && memcmp(r->path, r->target, pl) == 0);
        if (pl < tl) {
            CHECK(r->target[pl] == '?');
            CHECK(strcmp(r->query, r->target + pl + 1) == 0);
        } else {
            CHECK(r->query[0] == '\0');
        }
    } else if (strcmp(r->target, "*") == 0) { /* asterisk-form: OPTIONS only */
        CHECK(strcmp(r->method, "OPTIONS") == 0 && strcmp(r->path, "*") == 0);
    } else { /* absolute-form: an http(s) URI whose path (or "/") and query are in the target */
        CHECK(strncasecmp(r->target, "http", 4) == 0 && r->path[0] == '/');
        CHECK(pl == 1 || strstr(r->target, r->path) != NULL);
        CHECK(r->query[0] == '\0' || strstr(r->target, r->query) != NULL);
    }
    CHECK(tl <= MAX_HEADER);
    CHECK(r->nheaders <= CL_HTTP_MAX_HEADERS);
    for (size_t i = 0; i < r->nheaders; i++) {
        const char *n = r->headers[i].name, *v = r->headers[i].value;
        CHECK(n != NULL && v != NULL);
        for (const char *c = n; *c; c++)
            CHECK(!(*c >= 'A' && *c <= 'Z'));
        CHECK(strlen(n) + strlen(v) <= MAX_HEADER);
        CHECK(cl_http_header_get(r, n) != NULL);
    }
    CHECK(r->body != NULL && r->body_len <= MAX_BODY && r->body[r->body_len] == '\0');
    /* Touch every body byte so ASan sees a bad length. */
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < r->body_len; i++)
        sink ^= r->body[i];
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    size_t cut1 = size, cut2 = size;
    if (mode % 3 >= 1 && size > 0)
        cut1 = (size_t)(mode / 3) * size / 85; /* (255/3 = 85): anywhere in the input */
    if (cut1 > size)
        cut1 = size;
    if (mode % 3 == 2)
        cut2 = cut1 + (size - cut1) / 2;
    size_t cuts[3][2] = {{0, cut1}, {cut1, cut2}, {cut2, size}};

    cl_http_parser *p = NULL;
    CHECK(cl_http_parser_new(MAX_HEADER, MAX_BODY, on_request, NULL, &p) == CL_OK);
    requests = 0;
    int failed = 0, first_status = 0;
    for (int i = 0; i < 3; i++) {
        size_t a = cuts[i][0], b = cuts[i][1];
        if (b <= a)
            continue;
        /* A copy of exactly the piece, so reads past it are caught. */
        uint8_t *piece = malloc(b - a);
        CHECK(piece != NULL);
        memcpy(piece, data + a, b - a);
        int status = -1;
        int rc = cl_http_parser_feed(p, piece, b - a, &status);
        free(piece);
        if (rc == CL_OK) {
            CHECK(!failed && status == 0);
        } else {
            CHECK(status == 400 || status == 413 || status == 431 || status == 501 ||
                  status == 505 || status == 500);
            CHECK(!failed || status == first_status);
            if (!failed)
                first_status = status;
            failed = 1;
        }
    }
    cl_http_parser_free(p);
    return 0;
}
