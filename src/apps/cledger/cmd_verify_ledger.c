/*
 * cmd_verify_ledger.c — `cledger verify-ledger LEDGER_DIR --service-cert PEM [--json] [--quiet]`
 *
 * Walks every chunk of a ledger offline (ledger/verify.c) and reports either the counts and the
 * last signed root (exit 0) or the first failure: seqno, file, byte offset and what failed
 * (exit 1). In a node's data directory it audits the derived Merkle store (merkle/) as well: a
 * damaged store is reported after the ledger's counts, with exit 1. Usage errors and unreadable
 * certificates exit 2. A progress bar is drawn on stderr when it is a terminal.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/codec.h"
#include "base/err.h"
#include "base/log.h"
#include "commands.h"
#include "crypto/x509.h"
#include "ledger/verify.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void progress(void *arg, uint64_t done, uint64_t total)
{
    (void)arg;
    if (total == 0)
        return;
    int width = 40, fill = (int)((double)done / (double)total * width);
    if (fill > width)
        fill = width;
    char bar[64];
    memset(bar, '#', (size_t)fill);
    memset(bar + fill, '.', (size_t)(width - fill));
    bar[width] = '\0';
    fprintf(stderr, "\r[%s] %5.1f%%", bar, 100.0 * (double)done / (double)total);
    if (done >= total)
        fputc('\n', stderr);
    fflush(stderr);
}

static int usage(void)
{
    fprintf(stderr,
            "usage: cledger verify-ledger LEDGER_DIR --service-cert PEM [--json] [--quiet]\n"
            "  LEDGER_DIR is a node data directory or a directory of ledger_* chunk files\n");
    return CLEDGER_EXIT_USAGE;
}

int cmd_verify_ledger(int argc, char **argv)
{
    const char *dir = NULL, *cert_path = NULL;
    int json = 0, quiet = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--service-cert") == 0 && i + 1 < argc)
            cert_path = argv[++i];
        else if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--quiet") == 0)
            quiet = 1;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return usage(), CLEDGER_EXIT_OK;
        else if (argv[i][0] == '-' || dir != NULL)
            return fprintf(stderr, "verify-ledger: unexpected argument '%s'\n", argv[i]), usage();
        else
            dir = argv[i];
    }
    if (dir == NULL || cert_path == NULL)
        return usage();
    cl_log_set_level(CL_LOG_OFF);
    cl_cert *service = NULL;
    int rc = cl_cert_load_pem_file(cert_path, &service);
    if (rc < 0) {
        fprintf(stderr, "verify-ledger: cannot use service certificate %s: %s\n", cert_path,
                cl_strerror(rc));
        return CLEDGER_EXIT_USAGE;
    }
    cl_verify_report rep;
    double t0 = now_s();
    int tty = !quiet && !json && isatty(STDERR_FILENO);
    rc = cl_verify_ledger_dir(NULL, dir, service, tty ? progress : NULL, NULL, &rep);
    double dt = now_s() - t0;
    cl_cert_free(service);
    char root[65];
    cl_hex_encode(rep.last_root, 32, root);
    int store_bad = rc == CL_ECORRUPT && rep.what[0] == 0 && rep.merkle_what[0] != 0;
    const char *store = !rep.merkle_checked ? "absent" : store_bad ? "damaged" : "valid";
    if (rc == CL_OK || store_bad) {
        if (json) {
            char last[48];
            snprintf(last, sizeof last, "%" PRIu64 ".%" PRIu64, rep.last_view, rep.last_signed);
            json_t *j = json_pack(
                "{s:b,s:I,s:I,s:s,s:s,s:I,s:b,s:s,s:I,s:s,s:f}", "valid", 1, "entries",
                (json_int_t)rep.entries, "signatures", (json_int_t)rep.signatures, "lastSigned",
                last, "lastRoot", root, "unsignedTail", (json_int_t)rep.unsigned_tail, "private",
                rep.private_ledger, "merkleStore", store, "merkleRecords",
                (json_int_t)rep.merkle_records, "merkleWhat", rep.merkle_what, "seconds", dt);
            char *out = j ? json_dumps(j, JSON_COMPACT) : NULL;
            printf("%s\n", out ? out : "{\"valid\":true}");
            free(out);
            json_decref(j);
        } else
            printf("ledger valid: %" PRIu64 " entries, %" PRIu64 " signatures, last signed %" PRIu64
                   ".%" PRIu64 " root %s%s (%.2f s, %.0f "
                   "entries/s)\n",
                   rep.entries, rep.signatures, rep.last_view, rep.last_signed, root,
                   rep.unsigned_tail ? " (plus unsigned tail)" : "", dt,
                   dt > 0 ? (double)rep.entries / dt : 0.0);
        if (!json && rep.unsigned_tail)
            printf("note: %" PRIu64 " entries after the last signature are not yet signed\n",
                   rep.unsigned_tail);
        if (!json && rep.merkle_checked && !store_bad)
            printf("merkle store valid: %" PRIu64 " stored records checked\n", rep.merkle_records);
        if (!store_bad)
            return CLEDGER_EXIT_OK;
        /* The ledger is sound; the node's derived tree is not (and would serve bad proofs). */
        fprintf(stderr,
                "verify-ledger: the node's Merkle store is DAMAGED: %s. It is derived from the "
                "chunks: with the node stopped, remove %s/merkle and the next start rebuilds it\n",
                rep.merkle_what, dir);
        return CLEDGER_EXIT_INVALID;
    }
    if (json) {
        json_t *j = json_pack("{s:b,s:I,s:s,s:I,s:s,s:s}", "valid", 0, "seqno",
                              (json_int_t)rep.bad_seqno, "file", rep.file, "offset",
                              (json_int_t)rep.offset, "error", cl_errname(rc), "what", rep.what);
        char *out = j ? json_dumps(j, JSON_COMPACT) : NULL;
        printf("%s\n", out ? out : "{\"valid\":false}");
        free(out);
        json_decref(j);
        return CLEDGER_EXIT_INVALID;
    }
    printf("ledger INVALID at seqno %" PRIu64 " (%s, byte offset %" PRIu64 "): %s [%s]\n",
           rep.bad_seqno, rep.file[0] ? rep.file : "-", rep.offset, rep.what, cl_errname(rc));
    return CLEDGER_EXIT_INVALID;
}
