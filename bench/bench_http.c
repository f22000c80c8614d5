/*
 * bench_http — the plaintext HTTP request parser on its own (cl_http_parser: http-parser plus
 * cledger's framing and Host checks), the CPU one request costs an HTTPS worker before TLS and the
 * handler.
 *
 *   bench_http [N=1000000]
 *
 * Feeds N copies of each request below (one cl_http_parser_feed per request, as a worker gets a
 * request in one TLS record) and prints ns per request and per header byte, with the request's
 * size. The requests are the ones the load benchmark and the SDKs send: a write of a 100-byte
 * entry with the headers the Azure SDK for JS adds, and a read of one entry.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net/http.h"

static const char WRITE[] =
    "POST /app/transactions?api-version=2024-08-22-preview HTTP/1.1\r\n"
    "Host: 127.0.0.1:8443\r\n"
    "User-Agent: azsdk-js-confidential-ledger-rest/1.1.0 core-rest-pipeline/1.16.0 Node/20.20.2 "
    "OS/(x86_64-Linux-6.18.44)\r\n"
    "Accept: application/json\r\n"
    "Accept-Encoding: gzip,deflate\r\n"
    "Content-Type: application/json\r\n"
    "x-ms-client-request-id: 5f0c2a8e-3b1d-4c9e-8f7a-2d6b1e4c9a03\r\n"
    "Content-Length: 115\r\n"
    "\r\n"
    "{\"contents\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}";

static const char READ[] =
    "GET /app/transactions/2.1234567?api-version=2024-08-22-preview HTTP/1.1\r\n"
    "Host: 127.0.0.1:8443\r\n"
    "User-Agent: bench_load\r\n"
    "Accept: application/json\r\n"
    "\r\n";

static uint64_t g_parsed;

static void on_parsed(void *arg, cl_http_request *req)
{
    (void)arg;
    g_parsed += req->method != NULL;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int run(const char *name, const char *req, size_t len, uint64_t n)
{
    cl_http_parser *p = NULL;
    if (cl_http_parser_new(0, 0, on_parsed, NULL, &p) != 0) {
        fprintf(stderr, "bench_http: parser_new failed\n");
        return 1;
    }
    const char *body = strstr(req, "\r\n\r\n");
    size_t head = body != NULL ? (size_t)(body - req) + 4 : len;
    g_parsed = 0;
    double t0 = now_s();
    for (uint64_t i = 0; i < n; i++) {
        int status = 0;
        if (cl_http_parser_feed(p, req, len, &status) != 0) {
            fprintf(stderr, "bench_http: %s refused (%d)\n", name, status);
            cl_http_parser_free(p);
            return 1;
        }
    }
    double dt = now_s() - t0;
    cl_http_parser_free(p);
    if (g_parsed != n) {
        fprintf(stderr, "bench_http: %s: %" PRIu64 " of %" PRIu64 " parsed\n", name, g_parsed, n);
        return 1;
    }
    printf("http.parse.%s.bytes %zu bytes (head %zu)\n", name, len, head);
    printf("http.parse.%s.ns_per_request %.1f ns\n", name, dt * 1e9 / (double)n);
    printf("http.parse.%s.ns_per_head_byte %.2f ns\n", name, dt * 1e9 / (double)n / (double)head);
    return 0;
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    if (n == 0) {
        fprintf(stderr, "usage: bench_http [N]\n");
        return 2;
    }
    return run("write", WRITE, sizeof WRITE - 1, n) || run("read", READ, sizeof READ - 1, n);
}
