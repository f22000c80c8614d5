/*
 * cmd_ledger.c — `cledger ledger ...`: direct, local access to a ledger data directory through
 * the engine (no network). For operators and auditors working on a copy of a node's directory,
 * for `make run` until the network service exists, and for end-to-end tests of the engine.
 *
 *   cledger ledger init DIR [--private] [--curve p256|p384] [--chunk-size BYTES]
 *   cledger ledger append DIR --collection ID [--no-sign] CONTENTS
 *   cledger ledger get DIR TXID
 *   cledger ledger receipt DIR TXID        (the GET /app/transactions/{id}/receipt body)
 *   cledger ledger status DIR
 *   cledger ledger rotate-secret DIR | rotate-identity DIR
 *
 * Each command locks the directory as cledgerd does (refused while a node or another command has
 * it), and a cledgerd node's directory takes reads only (open_dir). Exit codes as commands.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/codec.h"
#include "base/file.h"
#include "base/json.h"
#include "base/log.h"
#include "commands.h"
#include "ledger/claims.h"
#include "ledger/entry.h"
#include "ledger/ledger.h"
#include "node/url.h"

static int usage(void)
{
    fprintf(stderr,
            "usage: cledger ledger init DIR [--private] [--curve p256|p384] [--chunk-size BYTES]\n"
            "       cledger ledger append DIR --collection ID [--no-sign] CONTENTS\n"
            "       cledger ledger get DIR TXID\n"
            "       cledger ledger receipt DIR TXID\n"
            "       cledger ledger status DIR\n"
            "       cledger ledger rotate-secret DIR\n"
            "       cledger ledger rotate-identity DIR\n");
    return CLEDGER_EXIT_USAGE;
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "cledger ledger: %s: %s\n", what, cl_strerror(rc));
    return rc == CL_EINVAL || rc == CL_ERANGE || rc == CL_ENOTSIGNED ? CLEDGER_EXIT_INVALID
                                                                     : CLEDGER_EXIT_USAGE;
}

/* "view.seqno" in canonical form (cl_txid_parse: decimal, no sign or leading zeros). */
static int parse_txid(const char *s, uint64_t *view, uint64_t *seqno)
{
    return cl_txid_parse(s, strlen(s), view, seqno);
}

enum { READS, WRITES };

/* Opens the ledger in dir, or says why not and returns the exit status. The directory is locked
 * for the life of this process, as cledgerd locks it: an open may cut a torn tail, which in a
 * running node's directory is a write in flight. A cledgerd node's directory (its raft/ holds a
 * log) takes no writes from here: its entries are the raft log's, applied in order. An entry
 * written here is cut at the node's next start when unsigned, and when signed the node applies
 * its whole raft log again after it (every entry twice). */
static int open_dir(const char *dir, int what, cl_ledger **l)
{
    *l = NULL;
    int fd = -1; /* held until exit */
    int rc = cl_dir_lock(dir, &fd);
    if (rc == CL_ELOCKED) {
        fprintf(stderr,
                "cledger ledger: %s is in use by another process (a running cledgerd, or "
                "another cledger ledger): stop it first, or work on a copy\n",
                dir);
        return CLEDGER_EXIT_USAGE;
    }
    if (rc < 0) {
        fprintf(stderr, "cledger ledger: %s: %s\n", dir, strerror(errno));
        return CLEDGER_EXIT_USAGE;
    }
    char raft[4200];
    if (what == WRITES && snprintf(raft, sizeof raft, "%s/raft", dir) < (int)sizeof raft &&
        cl_dir_has_files(raft)) {
        fprintf(stderr,
                "cledger ledger: %s is a cledgerd node's data directory (%s holds its raft "
                "log): its entries come from the raft log, and one written here would be lost "
                "at the node's next start, or make it apply its log a second time. Write "
                "through the node's API\n",
                dir, raft);
        return CLEDGER_EXIT_USAGE;
    }
    cl_ledger_opts o = {0};
    o.dir = dir;
    rc = cl_ledger_open(&o, l);
    return rc < 0 ? fail("open", rc) : CLEDGER_EXIT_OK;
}

static uint64_t current_view(cl_ledger *l)
{
    uint64_t v = 2;
    if (cl_ledger_durable_seqno(l) > 0 && cl_ledger_view_of(l, cl_ledger_durable_seqno(l), &v) < 0)
        v = 2;
    return v < 2 ? 2 : v;
}

static int print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s == NULL)
        return CLEDGER_EXIT_USAGE;
    printf("%s\n", s);
    free(s);
    return CLEDGER_EXIT_OK;
}

static int do_init(int argc, char **argv)
{
    cl_ledger_opts o = {0};
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--private") == 0)
            o.private_ledger = 1;
        else if (strcmp(argv[i], "--curve") == 0 && i + 1 < argc) {
            const char *c = argv[++i];
            if (strcmp(c, "p256") == 0)
                o.curve = CL_CURVE_P256;
            else if (strcmp(c, "p384") == 0)
                o.curve = CL_CURVE_P384;
            else
                return usage();
        } else if (strcmp(argv[i], "--chunk-size") == 0 && i + 1 < argc)
            o.chunk_size = strtoull(argv[++i], NULL, 10);
        else
            return usage();
    }
    o.dir = argv[1];
    cl_ledger *l = NULL;
    int rc = cl_ledger_create(&o, &l);
    if (rc < 0)
        return fail("init", rc);
    printf("created %s ledger in %s\nservice certificate: %s/service_cert.pem\n",
           o.private_ledger ? "private" : "public", o.dir, o.dir);
    rc = cl_ledger_close(l);
    return rc < 0 ? fail("close", rc) : CLEDGER_EXIT_OK;
}

static int do_append(int argc, char **argv)
{
    const char *coll = NULL, *contents = NULL;
    int sign = 1;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--collection") == 0 && i + 1 < argc)
            coll = argv[++i];
        else if (strcmp(argv[i], "--no-sign") == 0)
            sign = 0;
        else if (contents == NULL)
            contents = argv[i];
        else
            return usage();
    }
    if (coll == NULL || contents == NULL)
        return usage();
    /* what the service takes (ledger-api §2.2, §15): a collection id of 1 to 256 bytes of UTF-8
     * without control characters, contents that are UTF-8 (a JSON string) */
    size_t cl = strlen(coll);
    if (cl < 1 || cl > 256 || !cl_collection_chars_ok(coll, cl)) {
        fprintf(stderr, "cledger ledger: append: a collection id is 1 to 256 bytes of UTF-8 "
                        "without control characters\n");
        return CLEDGER_EXIT_USAGE;
    }
    if (!cl_utf8_valid(contents, strlen(contents))) {
        fprintf(stderr, "cledger ledger: append: the contents are not valid UTF-8\n");
        return CLEDGER_EXIT_USAGE;
    }
    cl_ledger *l = NULL;
    int rc = open_dir(argv[1], WRITES, &l);
    if (rc != CLEDGER_EXIT_OK)
        return rc;
    uint64_t view = current_view(l), seqno = 0;
    rc = cl_ledger_append_user(l, view, coll, strlen(coll), (const uint8_t *)contents,
                               strlen(contents), &seqno);
    if (rc == CL_OK && sign)
        rc = cl_ledger_sign(l, view, NULL);
    if (rc == CL_OK)
        rc = cl_ledger_sync(l);
    int crc = cl_ledger_close(l);
    if (rc < 0 || crc < 0)
        return fail("append", rc < 0 ? rc : crc);
    printf("%" PRIu64 ".%" PRIu64 "\n", view, seqno);
    return CLEDGER_EXIT_OK;
}

static int do_get(int argc, char **argv)
{
    uint64_t view, seqno, real;
    if (argc != 3 || parse_txid(argv[2], &view, &seqno) != CL_OK)
        return usage();
    cl_ledger *l = NULL;
    int rc = open_dir(argv[1], READS, &l);
    if (rc != CLEDGER_EXIT_OK)
        return rc;
    cl_ledger_entry e;
    rc = cl_ledger_view_of(l, seqno, &real);
    if (rc == CL_OK && real != view)
        rc = CL_ERANGE;
    if (rc == CL_OK)
        rc = cl_ledger_read(l, seqno, &e);
    if (rc < 0) {
        cl_ledger_close(l);
        return fail(argv[2], rc);
    }
    json_t *j = json_object();
    json_object_set_new(j, "transactionId", json_string(argv[2]));
    if (e.type == CL_ENTRY_USER) {
        json_t *c = json_stringn(e.collection, e.collection_len);
        json_t *v = json_stringn((const char *)e.contents, e.contents_len);
        if (c == NULL || v == NULL) { /* not UTF-8: nothing the service or append writes */
            json_decref(c);
            json_decref(v);
            json_decref(j);
            cl_ledger_entry_free(&e);
            cl_ledger_close(l);
            fprintf(stderr, "cledger ledger: %s: the entry is not valid UTF-8\n", argv[2]);
            return CLEDGER_EXIT_INVALID;
        }
        json_object_set_new(j, "collectionId", c);
        json_object_set_new(j, "contents", v);
    } else {
        json_object_set_new(j, "type",
                            json_string(e.type == CL_ENTRY_SIGNATURE ? "signature" : "internal"));
        if (e.type == CL_ENTRY_INTERNAL) {
            json_object_set_new(j, "table", json_integer(e.table));
            json_object_set_new(j, "key", json_stringn(e.key, e.key_len));
            json_object_set_new(j, "value", json_stringn(e.value, e.value_len));
        }
    }
    cl_ledger_entry_free(&e);
    cl_ledger_close(l);
    rc = print_json(j);
    json_decref(j);
    return rc;
}

static int do_receipt(int argc, char **argv)
{
    uint64_t view, seqno, real;
    if (argc != 3 || parse_txid(argv[2], &view, &seqno) != CL_OK)
        return usage();
    cl_ledger *l = NULL;
    int rc = open_dir(argv[1], READS, &l);
    if (rc != CLEDGER_EXIT_OK)
        return rc;
    json_t *receipt = NULL, *claims = NULL;
    cl_ledger_entry e;
    memset(&e, 0, sizeof e);
    rc = cl_ledger_view_of(l, seqno, &real);
    if (rc == CL_OK && real != view)
        rc = CL_ERANGE;
    if (rc == CL_OK)
        rc = cl_ledger_read(l, seqno, &e);
    if (rc == CL_OK && e.type == CL_ENTRY_SIGNATURE) {
        cl_ledger_entry_free(&e);
        cl_ledger_close(l);
        fprintf(stderr,
                "cledger ledger: %s is a signature transaction: receipts are given for "
                "the transactions a signature covers\n",
                argv[2]);
        return CLEDGER_EXIT_INVALID;
    }
    if (rc == CL_OK)
        rc = cl_ledger_receipt(l, seqno, &receipt);
    if (rc == CL_OK && e.type == CL_ENTRY_USER)
        rc = cl_claims_ledger_entry_json(e.claims_key, 32, e.collection, e.collection_len,
                                         (const char *)e.contents, e.contents_len, &claims);
    cl_ledger_entry_free(&e);
    cl_ledger_close(l);
    if (rc < 0) {
        json_decref(receipt);
        return fail(argv[2], rc);
    }
    json_t *env = json_object();
    json_object_set_new(env, "receipt", receipt);
    json_object_set_new(env, "state", json_string("Ready"));
    json_object_set_new(env, "transactionId", json_string(argv[2]));
    if (claims != NULL)
        json_object_set_new(env, "applicationClaims", claims);
    rc = print_json(env);
    json_decref(env);
    return rc;
}

static int do_status(int argc, char **argv)
{
    if (argc != 2)
        return usage();
    cl_ledger *l = NULL;
    int rc = open_dir(argv[1], READS, &l);
    if (rc != CLEDGER_EXIT_OK)
        return rc;
    printf("type: %s\nlast seqno: %" PRIu64 "\nlast signature: %" PRIu64 "\nview: %" PRIu64 "\n",
           cl_ledger_is_private(l) ? "private" : "public", cl_ledger_durable_seqno(l),
           cl_ledger_signed_seqno(l), current_view(l));
    rc = cl_ledger_close(l);
    return rc < 0 ? fail("close", rc) : CLEDGER_EXIT_OK;
}

static int do_rotate(int argc, char **argv, int identity)
{
    if (argc != 2)
        return usage();
    cl_ledger *l = NULL;
    int rc = open_dir(argv[1], WRITES, &l);
    if (rc != CLEDGER_EXIT_OK)
        return rc;
    uint64_t view = current_view(l);
    /* An identity rotation signs its records itself (before it installs the new key files); a
     * secret rotation's record is signed here. */
    rc = identity ? cl_ledger_rotate_service_identity(l, view) : cl_ledger_rotate_secret(l, view);
    if (rc == CL_OK && !identity)
        rc = cl_ledger_sign(l, view, NULL);
    if (rc == CL_OK)
        rc = cl_ledger_sync(l);
    int crc = cl_ledger_close(l);
    if (rc < 0 || crc < 0)
        return fail(identity ? "rotate-identity" : "rotate-secret", rc < 0 ? rc : crc);
    printf("%s rotated\n", identity ? "service identity" : "ledger secret");
    return CLEDGER_EXIT_OK;
}

int cmd_ledger(int argc, char **argv)
{
    if (argc < 3)
        return usage();
    cl_log_set_level(CL_LOG_WARN);
    const char *sub = argv[1];
    argc--;
    argv++;
    if (strcmp(sub, "init") == 0)
        return do_init(argc, argv);
    if (strcmp(sub, "append") == 0)
        return do_append(argc, argv);
    if (strcmp(sub, "get") == 0)
        return do_get(argc, argv);
    if (strcmp(sub, "receipt") == 0)
        return do_receipt(argc, argv);
    if (strcmp(sub, "status") == 0)
        return do_status(argc, argv);
    if (strcmp(sub, "rotate-secret") == 0)
        return do_rotate(argc, argv, 0);
    if (strcmp(sub, "rotate-identity") == 0)
        return do_rotate(argc, argv, 1);
    return usage();
}
