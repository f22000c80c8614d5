/*
 * fuzz_verify_ledger — the offline ledger verifier (src/ledger/verify.c) on hostile chunk files.
 *
 * The input is the contents of one chunk file, `ledger_1`, in a per-process directory
 * (/tmp/cledger-fuzz-verify-<pid>, removed after each input). cl_verify_ledger_dir runs against a
 * fixed service certificate, tests/fuzz/corpus-data/verify_service_cert.pem
 * (CLEDGER_FUZZ_SERVICE_CERT overrides the path), the identity of the ledger the seeds come from.
 * It must succeed or fail cleanly: a failure names what failed, a success accounts for every byte
 * of the file. When any frame's CRC-32C is wrong, the file is verified a second time with the CRCs
 * repaired, so that mutations reach the semantic checks (payloads, certificates, Merkle roots,
 * signatures).
 *
 * CLEDGER_FUZZ_VERBOSE prints every verification result.
 *
 * Seed generation: when CLEDGER_FUZZ_GEN_DIR names a directory at the first call, ledgers are made
 * with the real engine (cl_ledger_create and appends) and their chunk files, snapshots of the open
 * chunk and a few mutated copies are written there; the service certificate is written to the
 * path above.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/cursor.h"
#include "crypto/x509.h"
#include "fuzz.h"
#include "ledger/chunk.h"
#include "ledger/entry.h"
#include "ledger/ledger.h"
#include "ledger/verify.h"
#include "storage/fs.h"

static char work_dir[256];
static char chunk_path[300];
static cl_cert *service_cert;
static int verbose; /* CLEDGER_FUZZ_VERBOSE: print each result */

static void cleanup(void) { cl_cert_free(service_cert); }

/* tests/fuzz/corpus-data/verify_service_cert.pem, found next to this source file. */
static void cert_path(char *out, size_t cap)
{
    const char *env = getenv("CLEDGER_FUZZ_SERVICE_CERT");
    if (env != NULL && env[0] != '\0') {
        snprintf(out, cap, "%s", env);
        return;
    }
    const char *src = __FILE__;
    const char *slash = strrchr(src, '/');
    int dirlen = slash ? (int)(slash - src) : 1;
    snprintf(out, cap, "%.*s/corpus-data/verify_service_cert.pem", dirlen, slash ? src : ".");
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    CHECK(fseek(f, 0, SEEK_END) == 0);
    long n = ftell(f);
    CHECK(n >= 0);
    rewind(f);
    uint8_t *p = malloc((size_t)n + 1);
    CHECK(p != NULL);
    CHECK(fread(p, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return p;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    CHECK(len == 0 || fwrite(data, 1, len, f) == len);
    CHECK(fclose(f) == 0);
}

/* Recomputes the CRC of every frame after the chunk header whose length field fits the buffer.
 * Returns 1 when anything changed. */
static int fix_crcs(uint8_t *p, size_t len)
{
    int changed = 0;
    size_t off = CL_CHUNK_HEADER_LEN;
    while (off < len && len - off >= 4) {
        uint32_t flen = cl_load_u32(p + off);
        if (flen < CL_ENTRY_OVERHEAD - 4 || flen > len - off - 4)
            break;
        size_t total = (size_t)flen + 4;
        uint32_t crc = cl_crc32c(0, p + off + 4, total - 8);
        if (cl_load_u32(p + off + total - 4) != crc) {
            cl_store_u32(p + off + total - 4, crc);
            changed = 1;
        }
        off += total;
    }
    return changed;
}

/* ---- seed generation ------------------------------------------------------------------------ */

static const char *gen_dir;

static void gen_copy(const char *from, const char *name)
{
    size_t len;
    uint8_t *p = read_file(from, &len);
    char to[1024];
    snprintf(to, sizeof to, "%s/%s", gen_dir, name);
    write_file(to, p, len);
    free(p);
}

typedef struct {
    char dir[512];
    char names[16][128];
    int n;
} listing;

static int list_cb(void *arg, const char *name)
{
    listing *l = arg;
    if (strncmp(name, "ledger_", 7) == 0 && l->n < 16)
        snprintf(l->names[l->n++], 128, "%s", name);
    return 0;
}

/* Copies every chunk file of data directory `data` to the seed dir as <prefix>_<chunk name>. */
static void gen_copy_chunks(const char *data, const char *prefix)
{
    listing l;
    memset(&l, 0, sizeof l);
    snprintf(l.dir, sizeof l.dir, "%s/ledger", data);
    CHECK(cl_fs_list(cl_fs_posix(), l.dir, list_cb, &l) == CL_OK);
    for (int i = 0; i < l.n; i++) {
        char from[800], name[300];
        snprintf(from, sizeof from, "%s/%s", l.dir, l.names[i]);
        snprintf(name, sizeof name, "%s_%s", prefix, l.names[i]);
        gen_copy(from, name);
    }
}

static void user(cl_ledger *l, uint64_t view, const char *coll, const char *contents)
{
    uint64_t s;
    CHECK(cl_ledger_append_user(l, view, coll, strlen(coll), (const uint8_t *)contents,
                                strlen(contents), &s) == CL_OK);
}

static void internal(cl_ledger *l, uint64_t view, uint8_t table, uint8_t op, const char *k,
                     const char *v)
{
    uint64_t s;
    CHECK(cl_ledger_append_internal(l, view, table, op, k, strlen(k), v, strlen(v), &s) == CL_OK);
}

static void sign_sync(cl_ledger *l, uint64_t view)
{
    uint64_t s;
    CHECK(cl_ledger_sign(l, view, &s) == CL_OK);
    CHECK(cl_ledger_sync(l) == CL_OK);
}

/* A mutated copy of `from`: byte `at` (from the end when negative) xored with `x`, CRCs
 * repaired, so the verifier's semantic checks see the change. */
static void gen_mutant(const char *from, const char *name, long at, uint8_t x)
{
    size_t len;
    uint8_t *p = read_file(from, &len);
    size_t i = at >= 0 ? (size_t)at : len - (size_t)(-at);
    CHECK(i < len);
    p[i] ^= x;
    fix_crcs(p, len);
    char to[1024];
    snprintf(to, sizeof to, "%s/%s", gen_dir, name);
    write_file(to, p, len);
    free(p);
}

static void generate(void)
{
    char base[256], data[300], open_chunk[400], seed[400];
    snprintf(base, sizeof base, "/tmp/cledger-fuzz-gen-%ld", (long)getpid());
    CHECK(mkdir(base, 0700) == 0);

    /* 1. The main public ledger, all in one open chunk (ledger_1), snapshotted as it grows. Its
     * final service identity is the fixed certificate of this target. */
    snprintf(data, sizeof data, "%s/pub", base);
    snprintf(open_chunk, sizeof open_chunk, "%s/ledger/ledger_1", data);
    cl_ledger_opts o;
    memset(&o, 0, sizeof o);
    o.dir = data;
    o.chunk_size = 1u << 20;
    cl_ledger *l = NULL;
    CHECK(cl_ledger_create(&o, &l) == CL_OK);
    gen_copy(open_chunk, "pub_genesis");
    CHECK(cl_ledger_rotate_service_identity(l, 3) == CL_OK);
    sign_sync(l, 3);
    gen_copy(open_chunk, "pub_rotated");
    user(l, 3, "public", "hello");
    user(l, 3, "accounts", "{\"alice\":10}");
    user(l, 4, "x", "");
    internal(l, 4, CL_TABLE_USERS, CL_OP_PUT, "alice", "{\"assignedRoles\":[\"Reader\"]}");
    internal(l, 4, CL_TABLE_MEMBERS, CL_OP_PUT, "m0", "{\"status\":\"Active\"}");
    internal(l, 4, CL_TABLE_CONSTITUTION, CL_OP_PUT, "constitution", "allow all");
    internal(l, 4, CL_TABLE_USERS, CL_OP_REMOVE, "alice", "");
    sign_sync(l, 4);
    gen_copy(open_chunk, "pub_users");
    CHECK(cl_ledger_rotate_secret(l, 5) == CL_OK);
    user(l, 5, "public", "after the secret rotation");
    sign_sync(l, 5);
    user(l, 5, "tail", "not yet signed");
    CHECK(cl_ledger_sync(l) == CL_OK);
    gen_copy(open_chunk, "pub_tail");
    CHECK(cl_ledger_close(l) == CL_OK);
    char cert_from[400], cert_to[512];
    snprintf(cert_from, sizeof cert_from, "%s/service_cert.pem", data);
    cert_path(cert_to, sizeof cert_to);
    size_t clen;
    uint8_t *cert = read_file(cert_from, &clen);
    write_file(cert_to, cert, clen);
    free(cert);

    /* Mutants of the full ledger (CRCs repaired). */
    snprintf(seed, sizeof seed, "%s/pub_tail", gen_dir);
    gen_mutant(seed, "mut_header_start", 16, 1);
    gen_mutant(seed, "mut_header_private", 12, 1);
    gen_mutant(seed, "mut_first_seqno", CL_CHUNK_HEADER_LEN + 16, 4);
    gen_mutant(seed, "mut_first_view", CL_CHUNK_HEADER_LEN + 8, 0x40);
    gen_mutant(seed, "mut_first_cert", CL_CHUNK_HEADER_LEN + CL_ENTRY_HEADER_LEN + 200, 0x01);
    gen_mutant(seed, "mut_last_contents", -10, 0x20);
    snprintf(seed, sizeof seed, "%s/pub_users", gen_dir);
    gen_mutant(seed, "mut_last_signature", -12, 0x01);
    gen_mutant(seed, "mut_signed_root", -100, 0x80);

    /* 2. A private ledger (encrypted user entries; another identity, so it fails at the end). */
    snprintf(data, sizeof data, "%s/priv", base);
    snprintf(open_chunk, sizeof open_chunk, "%s/ledger/ledger_1", data);
    o.dir = data;
    o.private_ledger = 1;
    CHECK(cl_ledger_create(&o, &l) == CL_OK);
    user(l, 2, "secret", "private contents");
    user(l, 2, "secret", "more");
    sign_sync(l, 2);
    gen_copy(open_chunk, "priv_users");
    CHECK(cl_ledger_close(l) == CL_OK);

    /* 3. A public ledger with small chunks: committed chunk files and the open one. */
    snprintf(data, sizeof data, "%s/small", base);
    o.dir = data;
    o.private_ledger = 0;
    o.chunk_size = 1500;
    CHECK(cl_ledger_create(&o, &l) == CL_OK);
    for (int i = 0; i < 6; i++) {
        user(l, 2, "c", "chunked");
        sign_sync(l, 2);
    }
    CHECK(cl_ledger_close(l) == CL_OK);
    gen_copy_chunks(data, "small");

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    CHECK(system(cmd) == 0);
}

/* ---- entry point ---------------------------------------------------------------------------- */

static void progress(void *arg, uint64_t done, uint64_t total)
{
    (void)arg;
    CHECK(done <= total);
}

static void verify(size_t size)
{
    cl_verify_report rep;
    int rc = cl_verify_ledger_dir(cl_fs_posix(), work_dir, service_cert, progress, NULL, &rep);
    CHECK(rc <= 0);
    if (verbose)
        fprintf(stderr, "verify: %s (%s) entries=%llu signatures=%llu at %s+%llu\n", cl_errname(rc),
                rep.what, (unsigned long long)rep.entries, (unsigned long long)rep.signatures,
                rep.file, (unsigned long long)rep.offset);
    if (rc == CL_OK) {
        CHECK(rep.bytes == size);
        CHECK(rep.signatures >= 1 && rep.signatures <= rep.entries);
        CHECK(rep.last_signed >= 1 && rep.last_signed <= rep.entries);
        CHECK(rep.unsigned_tail == rep.entries - rep.last_signed);
    } else {
        CHECK(rc == CL_ENOMEM || rep.what[0] != '\0');
        CHECK(memchr(rep.what, '\0', sizeof rep.what) != NULL);
        CHECK(memchr(rep.file, '\0', sizeof rep.file) != NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (service_cert == NULL) {
        verbose = getenv("CLEDGER_FUZZ_VERBOSE") != NULL;
        gen_dir = getenv("CLEDGER_FUZZ_GEN_DIR");
        if (gen_dir != NULL && gen_dir[0] != '\0')
            generate();
        char path[512];
        cert_path(path, sizeof path);
        int rc = cl_cert_load_pem_file(path, &service_cert);
        if (rc != CL_OK) {
            fprintf(stderr, "fuzz_verify_ledger: cannot load %s: %s\n", path, cl_strerror(rc));
            abort();
        }
        snprintf(work_dir, sizeof work_dir, "/tmp/cledger-fuzz-verify-%ld", (long)getpid());
        snprintf(chunk_path, sizeof chunk_path, "%s/ledger_1", work_dir);
        atexit(cleanup);
    }

    /* The directory lives only for this input, so a process that dies leaves nothing behind. */
    CHECK(mkdir(work_dir, 0700) == 0 || access(work_dir, W_OK) == 0);

    write_file(chunk_path, data, size);
    verify(size);

    uint8_t *copy = malloc(size + 1);
    CHECK(copy != NULL);
    memcpy(copy, data, size);
    if (fix_crcs(copy, size)) {
        write_file(chunk_path, copy, size);
        verify(size);
    }
    free(copy);
    CHECK(unlink(chunk_path) == 0);
    CHECK(rmdir(work_dir) == 0);
    return 0;
}
