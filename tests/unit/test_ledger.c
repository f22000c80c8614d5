#define _GNU_SOURCE /* memmem */
/* Ledger engine: create, append, group commit, read, receipts, reopen, private ledgers, secret
 * and identity rotation, chunk rollover, rollback of an unsigned tail, offline verification. */
#include <dirent.h>
#include <fcntl.h>
#include <lmdb.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "base/codec.h"
#include "base/cursor.h"
#include "base/log.h"
#include "crypto/aead.h"
#include "crypto/hash.h"
#include "crypto/x509.h"
#include "ledger/chunk.h"
#include "ledger/claims.h"
#include "ledger/entry.h"
#include "ledger/ledger.h"
#include "ledger/merkle.h"
#include "ledger/receipt.h"
#include "ledger/verify.h"
#include "ledgerutil.h"
#include "storage/fs.h"
#include "storage/index.h"
#include "testutil.h"

/* stderr (where cl_logf writes) goes to `log` until log_end; the level shows warnings. */
static int log_begin(const char *log)
{
    fflush(stderr);
    int saved = dup(2), fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    assert_int_equal(dup2(fd, 2), 2);
    close(fd);
    cl_log_set_level(CL_LOG_WARN);
    return saved;
}

/* Puts stderr back; returns whether the log holds `needle` (then removes the log). */
static int log_end(int saved, const char *log, const char *needle)
{
    cl_log_set_level(CL_LOG_ERROR); /* as main sets it */
    fflush(stderr);
    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
    size_t n = 0;
    char *m = tu_read_file(log, &n);
    int has = m != NULL && memmem(m, n, needle, strlen(needle)) != NULL;
    if (!has)
        fprintf(stderr, "log %s lacks \"%s\":\n%.*s\n", log, needle, (int)n, m ? m : "");
    free(m);
    unlink(log);
    return has;
}

static cl_ledger *make(const char *dir, int priv, uint64_t chunk)
{
    cl_ledger_opts o = {0};
    o.dir = dir;
    o.private_ledger = priv;
    o.chunk_size = chunk;
    cl_ledger *l = NULL;
    assert_int_equal(cl_ledger_create(&o, &l), CL_OK);
    return l;
}

/* boot: the boot id the ledger sees (NULL: this machine's) */
static cl_ledger *reopen_boot(const char *dir, uint64_t chunk, const char *boot)
{
    cl_ledger_opts o = {0};
    o.dir = dir;
    o.chunk_size = chunk;
    o.boot_id = boot;
    cl_ledger *l = NULL;
    assert_int_equal(cl_ledger_open(&o, &l), CL_OK);
    return l;
}

static cl_ledger *reopen(const char *dir, uint64_t chunk) { return reopen_boot(dir, chunk, NULL); }

/* Opens through `fs` (a fault fs, say). */
static cl_ledger *open_fs(const char *dir, cl_fs *fs)
{
    cl_ledger_opts o = {0};
    o.dir = dir;
    o.fs = fs;
    cl_ledger *l = NULL;
    assert_int_equal(cl_ledger_open(&o, &l), CL_OK);
    return l;
}

static uint64_t cur_view = 2;

static void put(cl_ledger *l, const char *coll, const char *text, uint64_t *seqno)
{
    assert_int_equal(cl_ledger_append_user(l, cur_view, coll, strlen(coll), (const uint8_t *)text,
                                           strlen(text), seqno),
                     CL_OK);
}

/* n entries of `text` in `coll` (their seqnos in s[]), signed after every `every`-th (the
 * signatures' seqnos in sigs[], when given). */
static void put_signed(cl_ledger *l, const char *coll, const char *text, int n, int every,
                       uint64_t *s, uint64_t *sigs)
{
    for (int i = 0; i < n; i++) {
        put(l, coll, text, &s[i]);
        if (i % every == every - 1)
            assert_int_equal(cl_ledger_sign(l, 2, sigs != NULL ? &sigs[i / every] : NULL), CL_OK);
    }
}

static void expect_entry(cl_ledger *l, uint64_t seqno, const char *coll, const char *text)
{
    cl_ledger_entry e;
    assert_int_equal(cl_ledger_read(l, seqno, &e), CL_OK);
    assert_int_equal(e.type, CL_ENTRY_USER);
    assert_string_equal(e.collection, coll);
    assert_int_equal(e.contents_len, strlen(text));
    assert_memory_equal(e.contents, text, strlen(text));
    cl_ledger_entry_free(&e);
}

/* The receipt verifies against the service certificate, with the entry's application claims. */
static void expect_receipt(cl_ledger *l, uint64_t seqno, const char *service_pem)
{
    json_t *rj = NULL;
    assert_int_equal(cl_ledger_receipt(l, seqno, &rj), CL_OK);
    cl_receipt r;
    cl_receipt_init(&r);
    json_t *claims = NULL;
    assert_int_equal(cl_receipt_from_json(rj, &r, &claims, NULL, 0), CL_OK);
    cl_ledger_entry e;
    assert_int_equal(cl_ledger_read(l, seqno, &e), CL_OK);
    json_t *app = NULL;
    if (e.type == CL_ENTRY_USER)
        assert_int_equal(cl_claims_ledger_entry_json(e.claims_key, 32, e.collection,
                                                     e.collection_len, (const char *)e.contents,
                                                     e.contents_len, &app),
                         CL_OK);
    cl_receipt_verdict v;
    int rc = cl_receipt_verify_pem(&r, service_pem, strlen(service_pem), app, &v);
    if (rc != CL_OK)
        fail_msg("receipt of %llu: %s: %s", (unsigned long long)seqno, cl_receipt_step_name(v.step),
                 v.message);
    json_decref(app);
    json_decref(claims);
    json_decref(rj);
    cl_ledger_entry_free(&e);
    cl_receipt_clear(&r);
}

/* cl_verify_ledger_dir of `dir` with the service certificate `service_pem`. */
static int verify_dir(const char *dir, const char *service_pem, cl_verify_report *rep)
{
    cl_cert *c = NULL;
    assert_int_equal(cl_cert_from_pem(service_pem, strlen(service_pem), &c), CL_OK);
    int rc = cl_verify_ledger_dir(NULL, dir, c, NULL, NULL, rep);
    cl_cert_free(c);
    return rc;
}

static void expect_verified(const char *dir, const char *service_pem, uint64_t entries)
{
    cl_verify_report rep;
    int rc = verify_dir(dir, service_pem, &rep);
    if (rc != CL_OK)
        fail_msg("verify-ledger: seqno %llu %s@%llu: %s", (unsigned long long)rep.bad_seqno,
                 rep.file, (unsigned long long)rep.offset, rep.what);
    if (entries)
        assert_int_equal(rep.entries, entries);
}

static void test_create_append_read_receipt(void **state)
{
    const char *dir = tu_tempdir("cl-ledger");
    cl_ledger *l = make(dir, 0, 0);
    assert_int_equal(cl_ledger_signed_seqno(l), 4); /* genesis: service, node, secret, sig */
    uint64_t s[50];
    char text[64];
    for (int i = 0; i < 50; i++) {
        snprintf(text, sizeof text, "entry %d", i);
        put(l, i % 2 ? "odd" : "subledger:0", text, &s[i]);
        if (i > 0)
            assert_true(s[i] > s[i - 1]);
        if (i % 7 == 6)
            assert_int_equal(cl_ledger_sign(l, 2, NULL), CL_OK);
    }
    /* nothing is readable before it is durable */
    assert_int_equal(cl_ledger_read(l, s[0], &(cl_ledger_entry){0}), CL_ERANGE);
    assert_int_equal(cl_ledger_sync(l), CL_OK);
    uint64_t last_sig;
    assert_int_equal(cl_ledger_sign(l, 2, &last_sig), CL_OK);
    assert_int_equal(cl_ledger_sync(l), CL_OK);
    assert_int_equal(cl_ledger_check(l), CL_OK);
    const char *pem = cl_ledger_service_cert_pem(l);
    for (int i = 0; i < 50; i++) {
        snprintf(text, sizeof text, "entry %d", i);
        expect_entry(l, s[i], i % 2 ? "odd" : "subledger:0", text);
        expect_receipt(l, s[i], pem);
    }
    expect_receipt(l, 1, pem); /* internal entries have receipts too */
    json_t *j = NULL;
    assert_int_equal(cl_ledger_receipt(l, last_sig, &j), CL_EINVAL); /* signature entry */
    /* commit evidence is deterministic and shaped as ce:view.seqno:hex */
    char ce1[128], ce2[128];
    assert_int_equal(cl_ledger_commit_evidence(l, s[3], ce1, sizeof ce1), CL_OK);
    assert_int_equal(cl_ledger_commit_evidence(l, s[3], ce2, sizeof ce2), CL_OK);
    assert_string_equal(ce1, ce2);
    assert_int_equal(strncmp(ce1, "ce:2.8:", 7), 0);
    assert_int_equal(strlen(ce1), 7 + 64);
    char *pem_copy = strdup(pem);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    expect_verified(dir, pem_copy, last_sig);

    /* reopen: same identity, same entries, receipts still verify, appends continue */
    l = reopen(dir, 0);
    assert_string_equal(cl_ledger_service_cert_pem(l), pem_copy);
    assert_int_equal(cl_ledger_last_seqno(l), last_sig);
    assert_int_equal(cl_ledger_check(l), CL_OK);
    expect_entry(l, s[10], "subledger:0", "entry 10");
    expect_receipt(l, s[49], pem_copy);
    uint64_t more;
    put(l, "after", "restart", &more);
    assert_int_equal(more, last_sig + 1);
    assert_int_equal(cl_ledger_sign(l, 3, NULL), CL_OK);
    assert_int_equal(cl_ledger_sync(l), CL_OK);
    expect_receipt(l, more, pem_copy);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    expect_verified(dir, pem_copy, more + 1);
    free(pem_copy);
    tu_rmrf(dir);
}

static void test_unsigned_entry_has_no_receipt(void **state)
{
    const char *dir = tu_tempdir("cl-ledger");
    cl_ledger *l = make(dir, 0, 0);
    uint64_t s;
    put(l, "c", "x", &s);
    assert_int_equal(cl_ledger_sync(l), CL_OK);
    json_t *j = NULL;
    assert_int_equal(cl_ledger_receipt(l, s, &j), CL_ENOTSIGNED);
    assert_int_equal(cl_ledger_receipt(l, s + 5, &j), CL_ERANGE);
    assert_int_equal(cl_ledger_sign(l, 2, NULL), CL_OK);
    /* signed but not yet durable: still no receipt */
    assert_int_equal(cl_ledger_receipt(l, s, &j), CL_ENOTSIGNED);
    assert_int_equal(cl_ledger_sync(l), CL_OK);
    expect_receipt(l, s, cl_ledger_service_cert_pem(l));
    assert_int_equal(cl_ledger_close(l), CL_OK);
    tu_rmrf(dir);
}

/* CRC-32C: RFC 3720 (B.4) vectors and the usual check value, for both implementations; then the
 * CPU's instruction (where there is one) against the tables over every length up to 300 at every
 * alignment, and chaining (the CRC of a||b continues the CRC of a). */
static void test_crc32c(void **state)
{
    (void)state;
    uint8_t buf[320];
    uint32_t (*impl[2])(uint32_t, const void *, size_t) = {cl_crc32c, cl_crc32c_sw};
    for (int k = 0; k < 2; k++) {
        assert_int_equal(impl[k](0, "123456789", 9), 0xE3069283u);
        memset(buf, 0, 32);
        assert_int_equal(impl[k](0, buf, 32), 0x8A9136AAu);
        memset(buf, 0xff, 32);
        assert_int_equal(impl[k](0, buf, 32), 0x62A8AB43u);
        for (int i = 0; i < 32; i++)
            buf[i] = (uint8_t)i;
        assert_int_equal(impl[k](0, buf, 32), 0x46DD794Eu);
        for (int i = 0; i < 32; i++)
            buf[i] = (uint8_t)(31 - i);
        assert_int_equal(impl[k](0, buf, 32), 0x113FDB5Cu);
        assert_int_equal(impl[k](0, buf, 0), 0);
    }
    uint32_t x = 0x12345678u;
    for (size_t i = 0; i < sizeof buf; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    for (size_t off = 0; off < 8; off++)
        for (size_t n = 0; n <= 300; n++) {
            uint32_t want = cl_crc32c_sw(0, buf + off, n);
            assert_int_equal(cl_crc32c(0, buf + off, n), want);
            size_t cut = n / 3;
            assert_int_equal(cl_crc32c(cl_crc32c(0, buf + off, cut), buf + off + cut, n - cut),
                             want);
        }
    print_message("crc32c: %s\n", cl_crc32c_hw_available() ? "CPU instruction" : "tables only");
}

static void test_bad_collection_rejected(void **state)
{
    const char *dir = tu_tempdir("cl-ledger");
    cl_ledger *l = make(dir, 0, 0);
    uint64_t s;
    char big[300];
    memset(big, 'a', sizeof big);
    assert_int_equal(cl_ledger_append_user(l, 2, "", 0, (const uint8_t *)"x", 1, &s), CL_EINVAL);
    assert_int_equal(cl_ledger_append_user(l, 2, big, 257, (const uint8_t *)"x", 1, &s), CL_EINVAL);
    assert_int_equal(cl_ledger_append_user(l, 2, "a\0b", 3, (const uint8_t *)"x", 1, &s),
                     CL_EINVAL);
    assert_int_equal(cl_ledger_append_user(l, 2, "\x01sig", 4, (const uint8_t *)"x", 1, &s),
                     CL_EINVAL);
    /* the handle is still usable */
    put(l, "ok", "fine", &s);
    assert_int_equal(cl_ledger_sync(l), CL_OK);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    tu_rmrf(dir);
}

static void test_private_ledger_encrypts(void **state)
{
    const char *dir = tu_tempdir("cl-ledger");
    cl_ledger *l = make(dir, 1, 4096);
    assert_true(cl_ledger_is_private(l));
    const char *marker = "TOP-SECRET-PAYMENT-4711";
    uint64_t s[40];
    put_signed(l, "payments", marker, 40, 10, s, NULL);
    assert_int_equal(cl_ledger_rotate_secret(l, 2), CL_OK);
    uint64_t after;
    put(l, "payments", marker, &after);
    assert_int_equal(cl_ledger_sign(l, 2, NULL), CL_OK);
    assert_int_equal(cl_ledger_sync(l), CL_OK);
    char *pem = strdup(cl_ledger_service_cert_pem(l));
    assert_int_equal(cl_ledger_close(l), CL_OK);
    assert_false(tu_grep_dir(dir, marker, strlen(marker)));
    expect_verified(dir, pem, 0);

    l = reopen(dir, 4096);
    assert_true(cl_ledger_is_private(l));
    expect_entry(l, s[0], "payments", marker);
    expect_entry(l, s[39], "payments", marker);
    expect_entry(l, after, "payments", marker); /* encrypted under the rotated secret */
    expect_receipt(l, s[5], pem);
    expect_receipt(l, after, pem);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    free(pem);
    tu_rmrf(dir);
}

static void write_bytes(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* Opening with `secrets` (n bytes) as node/ledger_secrets is refused, says `why` (NULL: not
 * checked) and changes nothing. */
static void expect_secrets_refused_why(const char *dir, const uint8_t *secrets, size_t n,
                                       const char *why)
{
    char p[600];
    snprintf(p, sizeof p, "%s/node/ledger_secrets", dir);
    write_bytes(p, secrets, n);
    char ld[600], nd[600];
    snprintf(ld, sizeof ld, "%s/ledger", dir);
    snprintf(nd, sizeof nd, "%s/node", dir);
    uint32_t before_l = tu_dir_crc(ld), before_n = tu_dir_crc(nd);
    cl_ledger_opts o = {0};
    o.dir = dir;
    cl_ledger *l = NULL;
    char log[700];
    snprintf(log, sizeof log, "%s-log", dir);
    int saved = log_begin(log);
    int rc = cl_ledger_open(&o, &l);
    assert_true(log_end(saved, log, why != NULL ? why : ""));
    assert_int_equal(rc, CL_ECORRUPT);
    assert_int_equal(tu_dir_crc(ld), before_l);
    assert_int_equal(tu_dir_crc(nd), before_n);
}

static void expect_secrets_refused(const char *dir, const uint8_t *secrets, size_t n)
{
    expect_secrets_refused_why(dir, secrets, n, NULL);
}

/* node/ledger_secrets is covered by no signature, so it is checked against the ledger at open:
 * another ledger's file, an older copy (it lacks a rotated secret), a secret with a changed key or
 * first seqno are refused before anything is written; this ledger's own file opens. A foreign
 * file used to be taken: new entries went under a key the history does not know. */
static void test_secrets_file_checked(void **state)
{
    (void)state;
    const char *dir = tu_tempdir("cl-ledger");
    const char *other = tu_tempdir("cl-ledger");
    cl_ledger *l = make(other, 1, 0);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    l = make(dir, 1, 2048);
    uint64_t s[30];
    put_signed(l, "sec", "under the first secret", 30, 10, s, NULL);
    assert_int_equal(cl_ledger_sync(l), CL_OK);
    char p[600];
    snprintf(p, sizeof p, "%s/node/ledger_secrets", dir);
    size_t n_old = 0, n_cur = 0, n_other = 0;
    uint8_t *old = (uint8_t *)tu_read_file(p, &n_old); /* one secret */
    assert_int_equal(cl_ledger_rotate_secret(l, 2), CL_OK);
    uint64_t after;
    put(l, "sec", "under the second secret", &after);
    assert_int_equal(cl_ledger_sign(l, 2, NULL), CL_OK);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    uint8_t *cur = (uint8_t *)tu_read_file(p, &n_cur);
    assert_int_equal(n_cur, 12 + 2 * 40);
    char po[600];
    snprintf(po, sizeof po, "%s/node/ledger_secrets", other);
    uint8_t *oth = (uint8_t *)tu_read_file(po, &n_other);

    expect_secrets_refused(dir, oth, n_other);
    expect_secrets_refused(dir, old, n_old);
    uint8_t *bad = malloc(n_cur);
    assert_non_null(bad);
    memcpy(bad, cur, n_cur);
    bad[12 + 40 + 8 + 5] ^= 1; /* the second key */
    expect_secrets_refused(dir, bad, n_cur);
    memcpy(bad, cur, n_cur);
    cl_store_u64(bad + 12 + 40, cl_load_u64(cur + 12 + 40) + 1); /* the second first seqno */
    expect_secrets_refused(dir, bad, n_cur);
    memcpy(bad, cur, n_cur);
    /* the first secret said to apply from 3, where its record is: the record decrypts with the
     * key and holds no previous secret, but names seqno 1 */
    cl_store_u64(bad + 12, 3);
    expect_secrets_refused_why(dir, bad, n_cur, "names another first seqno");
    memcpy(bad, cur, n_cur);
    bad[12 + 8] ^= 1; /* the first key */
    expect_secrets_refused(dir, bad, n_cur);

    write_bytes(p, cur, n_cur);
    l = reopen(dir, 2048);
    expect_entry(l, s[3], "sec", "under the first secret");
    expect_entry(l, after, "sec", "under the second secret");
    assert_int_equal(cl_ledger_close(l), CL_OK);
    free(bad);
    free(old);
    free(cur);
    free(oth);
    tu_rmrf(dir);
    tu_rmrf(other);
}

static void test_public_ledger_not_encrypted_and_type_fixed(void **state)
{
    const char *dir = tu_tempdir("cl-ledger");
    cl_ledger *l = make(dir, 0, 0);
    const char *marker = "PUBLIC-VISIBLE-ENTRY";
    uint64_t s;
    put(l, "c", marker, &s);
    assert_int_equal(cl_ledger_sync(l), CL_OK);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    assert_true(tu_grep_dir(dir, marker, strlen(marker)));
    /* a second create on the same directory is refused */
    cl_ledger_opts o = {0};
    o.dir = dir;
    o.private_ledger = 1;
    cl_ledger *l2 = NULL;
    assert_int_equal(cl_ledger_create(&o, &l2), CL_EEXIST);
    l = reopen(dir, 0);
    assert_false(cl_ledger_is_private(l));
    assert_int_equal(cl_ledger_close(l), CL_OK);
    tu_rmrf(dir);
}

static void test_rollover_and_reads_across_chunks(void **state)
{
    const char *dir = tu_tempdir("cl-ledger");
    cl_ledger *l = make(dir, 0, 2048);
    uint64_t s[300];
    char text[64];
    for (int i = 0; i < 300; i++) {
        snprintf(text, sizeof text, "rollover %d", i);
        put(l, "r", text, &s[i]);
        if (i % 5 == 4)
            assert_int_equal(cl_ledger_sign(l, 2, NULL), CL_OK);
        if (i % 17 == 0)
            assert_int_equal(cl_ledger_sync(l), CL_OK);
    }
    assert_int_equal(cl_ledger_sync(l), CL_OK);
    assert_int_equal(cl_ledger_check(l), CL_OK);
    char *pem = strdup(cl_ledger_service_cert_pem(l));
    for (int i = 0; i < 300; i += 13) {
        snprintf(text, sizeof text, "rollover %d", i);
        expect_entry(l, s[i], "r", text);
        expect_receipt(l, s[i], pem);
    }
    assert_int_equal(cl_ledger_close(l), CL_OK);
    char ldir[600];
    snprintf(ldir, sizeof ldir, "%s/ledger", dir);
    char *chunk = tu_read_file(tu_source_path("README.md"), NULL); /* touch helper */
    free(chunk);
    expect_verified(dir, pem, 0);
    l = reopen(dir, 2048);
    expect_entry(l, s[1], "r", "rollover 1");
    expect_entry(l, s[299], "r", "rollover 299");
    assert_int_equal(cl_ledger_check(l), CL_OK);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    free(pem);
    tu_rmrf(dir);
}

static void test_service_identity_rotation(void **state)
{
    const char *dir = tu_tempdir("cl-ledger");
    cl_ledger *l = make(dir, 0, 0);
    char *old = strdup(cl_ledger_service_cert_pem(l));
    uint64_t before, after;
    put(l, "c", "before rotation", &before);
    assert_int_equal(cl_ledger_sign(l, 2, NULL), CL_OK);
    assert_int_equal(cl_ledger_sync(l), CL_OK);
    assert_int_equal(cl_ledger_rotate_service_identity(l, 4), CL_OK);
    char *cur = strdup(cl_ledger_service_cert_pem(l));
    assert_string_not_equal(old, cur);
    cur_view = 4;
    put(l, "c", "after rotation", &after);
    cur_view = 2;
    assert_int_equal(cl_ledger_sign(l, 4, NULL), CL_OK);
    assert_int_equal(cl_ledger_sync(l), CL_OK);
    expect_receipt(l, before, cur);
    expect_receipt(l, after, cur);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    expect_verified(dir, cur, 0);
    /* the old identity is no longer the ledger's identity */
    cl_cert *c = NULL;
    assert_int_equal(cl_cert_from_pem(old, strlen(old), &c), CL_OK);
    cl_verify_report rep;
    assert_int_equal(cl_verify_ledger_dir(NULL, dir, c, NULL, NULL, &rep), CL_EENDORSE);
    cl_cert_free(c);
    /* the service_cert.pem on disk is the new one, and a reopen keeps it */
    l = reopen(dir, 0);
    assert_string_equal(cl_ledger_service_cert_pem(l), cur);
    expect_receipt(l, before, cur);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    free(old);
    free(cur);
    tu_rmrf(dir);
}

static int open_logged(const char *dir, const char *log, cl_ledger **l);

static void copy_file(const char *from, const char *to)
{
    size_t n = 0;
    char *b = tu_read_file(from, &n);
    assert_non_null(b);
    FILE *f = fopen(to, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
    free(b);
}

static int last_key_cb(void *arg, const cl_ledger_entry *e)
{
    snprintf(arg, 32, "%.*s", (int)e->key_len, e->key);
    return 0;
}

/* A rotation whose records became durable but whose signature did not (a crash inside its sync),
 * its new identity staged and not installed: open cuts the records, removes the staging file,
 * keeps the old identity, and the index's meta rows are those of before the rotation (its
 * service_version and its node row: the next rotation records version 2 again, and receipts signed
 * later carry a node certificate the old identity endorses). */
static void test_service_identity_rotation_undone(void **state)
{
    const char *dir = tu_tempdir("cl-ledger");
    char pre[600], path[700], from[700], log[700];
    snprintf(pre, sizeof pre, "%s-pre", dir);
    snprintf(log, sizeof log, "%s.log", dir);
    cl_ledger *l = make(dir, 1, 0);
    char *old = strdup(cl_ledger_service_cert_pem(l));
    uint64_t before, after;
    put(l, "c", "before rotation", &before);
    assert_int_equal(cl_ledger_sign(l, 2, NULL), CL_OK);
    assert_int_equal(cl_ledger_sync(l), CL_OK);
    uint64_t last = cl_ledger_last_seqno(l);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    assert_int_equal(tu_copy_tree(dir, pre), 0);
    l = reopen(dir, 0);
    assert_int_equal(cl_ledger_rotate_service_identity(l, 2), CL_OK);
    assert_int_equal(cl_ledger_last_seqno(l), last + 3); /* service, node, signature */
    assert_int_equal(cl_ledger_close(l), CL_OK);
    /* the staging file as the rotation wrote it: key, service certificate, node certificate */
    char *parts[3];
    const char *files[3][2] = {
        {"node", "service_key.pem"}, {"", "service_cert.pem"}, {"node", "node_cert.pem"}};
    size_t total = 0, len[3];
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s/%s", dir, files[i][0], files[i][1]);
        parts[i] = tu_read_file(path, &len[i]);
        assert_non_null(parts[i]);
        total += len[i];
        snprintf(from, sizeof from, "%s/%s/%s", pre, files[i][0], files[i][1]);
        copy_file(from, path); /* the old identity back in place */
    }
    snprintf(path, sizeof path, "%s/node/identity.next", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fwrite(parts[i], 1, len[i], f), len[i]);
        free(parts[i]);
    }
    assert_int_equal(fclose(f), 0);
    /* the signature's frame lost: the open chunk ends after the two records */
    char names[16][128];
    int nc = lu_list_chunks(dir, names, 16);
    assert_true(nc >= 1);
    snprintf(from, sizeof from, "%s/ledger/%s", dir, names[nc - 1]);
    lu_frame *fr = NULL;
    size_t nf = 0;
    assert_int_equal(lu_chunk_frames(from, &fr, &nf), CL_OK);
    assert_true(nf >= 3);
    assert_int_equal(fr[nf - 1].type, CL_ENTRY_SIGNATURE);
    assert_int_equal(fr[nf - 1].seqno, last + 3);
    assert_int_equal(truncate(from, (off_t)fr[nf - 1].off), 0);
    free(fr);

    assert_int_equal(open_logged(dir, log, &l), CL_OK);
    char *out = tu_read_file(log, NULL);
    assert_non_null(strstr(out, "undoing an interrupted service identity rotation"));
    free(out);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(cl_ledger_last_seqno(l), last);
    assert_string_equal(cl_ledger_service_cert_pem(l), old);
    put(l, "c", "after the undone rotation", &after);
    assert_int_equal(cl_ledger_sign(l, 3, NULL), CL_OK);
    assert_int_equal(cl_ledger_sync(l), CL_OK);
    expect_receipt(l, before, old); /* the node row is the old identity's again */
    expect_receipt(l, after, old);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    expect_verified(dir, old, 0);
    /* a reopen (the meta rows read back) and a new rotation: version 2, as the first one was */
    l = reopen(dir, 0);
    expect_receipt(l, after, old);
    assert_int_equal(cl_ledger_rotate_service_identity(l, 3), CL_OK);
    char key[32] = "";
    assert_int_equal(cl_ledger_table_scan(l, CL_TABLE_SERVICE, last_key_cb, key), CL_OK);
    assert_string_equal(key, "2");
    char *cur = strdup(cl_ledger_service_cert_pem(l));
    expect_receipt(l, after, cur);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    expect_verified(dir, cur, 0);
    free(cur);
    free(old);
    unlink(log);
    tu_rmrf(pre);
    tu_rmrf(dir);
}

/* The identity files are held to the ledger at open: a service_cert.pem or service_key.pem that
 * is not the last recorded service identity is refused with a message naming them (a receipt
 * signed under it would not verify), and nothing is written. */
static void test_identity_files_checked(void **state)
{
    const char *dir = tu_tempdir("cl-ledger");
    char other[600], path[700], from[700], log[700];
    snprintf(other, sizeof other, "%s-other", dir);
    snprintf(log, sizeof log, "%s.log", dir);
    cl_ledger *l = make(dir, 0, 0);
    put(l, "c", "x", NULL);
    assert_int_equal(cl_ledger_sign(l, 2, NULL), CL_OK);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    l = make(other, 0, 0);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    const char *files[2][2] = {{"", "service_cert.pem"}, {"node", "service_key.pem"}};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s/%s", dir, files[i][0], files[i][1]);
        size_t n = 0;
        char *saved = tu_read_file(path, &n);
        snprintf(from, sizeof from, "%s/%s/%s", other, files[i][0], files[i][1]);
        copy_file(from, path);
        assert_int_equal(open_logged(dir, log, &l), CL_ECORRUPT);
        char *out = tu_read_file(log, NULL);
        assert_non_null(strstr(out, "is not the service identity the ledger recorded last"));
        free(out);
        FILE *f = fopen(path, "wb");
        assert_int_equal(fwrite(saved, 1, n, f), n);
        assert_int_equal(fclose(f), 0);
        free(saved);
    }
    l = reopen(dir, 0);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    unlink(log);
    tu_rmrf(other);
    tu_rmrf(dir);
}

/* After cl_ledger_truncate(l, sig): the ledger ends at sig, still serves `kept` ("kept" in
 * collection c), the next entry takes `dropped`, the first seqno cut off, and the ledger signs,
 * verifies offline and reopens with both entries. Closes l. */
static void expect_regrown(cl_ledger *l, const char *dir, uint64_t kept, uint64_t sig,
                           uint64_t dropped)
{
    assert_int_equal(cl_ledger_last_seqno(l), sig);
    expect_entry(l, kept, "c", "kept");
    uint64_t c;
    put(l, "c", "replacement", &c);
    assert_int_equal(c, dropped);
    assert_int_equal(cl_ledger_sign(l, 3, NULL), CL_OK);
    assert_int_equal(cl_ledger_sync(l), CL_OK);
    char *pem = strdup(cl_ledger_service_cert_pem(l));
    expect_receipt(l, c, pem);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    expect_verified(dir, pem, 0);
    l = reopen(dir, 0);
    expect_entry(l, kept, "c", "kept");
    expect_entry(l, c, "c", "replacement");
    expect_receipt(l, kept, pem);
    assert_int_equal(cl_ledger_check(l), CL_OK);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    free(pem);
}

static void test_truncate_unsigned_tail(void **state)
{
    const char *dir = tu_tempdir("cl-ledger");
    cl_ledger *l = make(dir, 0, 0);
    uint64_t a, b, sig;
    put(l, "c", "kept", &a);
    assert_int_equal(cl_ledger_sign(l, 2, &sig), CL_OK);
    put(l, "c", "rolled back", &b);
    assert_int_equal(cl_ledger_sync(l), CL_OK);
    assert_int_equal(cl_ledger_truncate(l, sig - 1), CL_ESTATE); /* below the signature */
    assert_int_equal(cl_ledger_truncate(l, sig), CL_OK);
    expect_regrown(l, dir, a, sig, b);
    tu_rmrf(dir);
}

/* The same state signs to the same bytes: two copies of one ledger each sign the same entries
 * and end byte-identical (a signature entry re-applied after it was lost must not fork the
 * history; before RFC 6979 nonces, the copies differed in every signature). */
static void test_sign_deterministic(void **state)
{
    (void)state;
    const char *dir = tu_tempdir("cl-ledger");
    const char *dir2 = tu_tempdir("cl-ledger");
    cl_ledger *l = make(dir, 1, 0);
    uint64_t a;
    put(l, "c", "signed twice", &a);
    assert_int_equal(cl_ledger_sync_hard(l), CL_OK);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    tu_rmrf(dir2);
    assert_int_equal(tu_copy_tree(dir, dir2), 0);
    const char *dirs[2] = {dir, dir2};
    for (int i = 0; i < 2; i++) {
        l = reopen(dirs[i], 0);
        uint64_t s1, s2, b;
        assert_int_equal(cl_ledger_sign_at(l, 2, 7, &s1), CL_OK);
        static const uint8_t key[32] = {7}; /* as a raft command carries it */
        assert_int_equal(
            cl_ledger_append_user_keyed(l, 2, "c", 1, (const uint8_t *)"and after", 9, key, &b),
            CL_OK);
        assert_int_equal(cl_ledger_sign_at(l, 2, 9, &s2), CL_OK);
        assert_int_equal(cl_ledger_sync_hard(l), CL_OK);
        expect_receipt(l, a, cl_ledger_service_cert_pem(l));
        assert_int_equal(cl_ledger_close(l), CL_OK);
    }
    char p1[600], p2[600];
    snprintf(p1, sizeof p1, "%s/ledger/ledger_1", dir);
    snprintf(p2, sizeof p2, "%s/ledger/ledger_1", dir2);
    size_t n1 = 0, n2 = 0;
    char *b1 = tu_read_file(p1, &n1), *b2 = tu_read_file(p2, &n2);
    assert_true(b1 != NULL && b2 != NULL);
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1);
    free(b1);
    free(b2);
    tu_rmrf(dir);
    tu_rmrf(dir2);
}

/* Size of the open (not committed) chunk file of dir's ledger (0: there is none). */
static size_t open_chunk_size(const char *dir)
{
    char p[600];
    snprintf(p, sizeof p, "%s/ledger", dir);
    DIR *d = opendir(p);
    assert_non_null(d);
    struct dirent *e;
    size_t size = 0;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, "ledger_", 7) == 0 && strchr(e->d_name, '-') == NULL) {
            char f[900];
            snprintf(f, sizeof f, "%s/%s", p, e->d_name);
            struct stat st;
            assert_int_equal(stat(f, &st), 0);
            size = (size_t)st.st_size;
        }
    closedir(d);
    return size;
}

/* The type file must agree with the chunk headers: emptied, damaged or flipped to "public", it
 * made a private ledger open public and write its next entries in plaintext. */
static void test_type_file_checked(void **state)
{
    (void)state;
    const char *dir = tu_tempdir("cl-ledger");
    for (int priv = 0; priv < 2; priv++) {
        tu_rmrf(dir);
        /* small chunks, written until one has just been rolled: there is then no open chunk,
         * whose header would have said the type, and the next append creates one */
        cl_ledger *l = make(dir, priv, 1024);
        uint64_t s;
        int i = 0;
        do {
            put(l, "c", "typed", &s);
            assert_int_equal(cl_ledger_sign(l, 2, NULL), CL_OK);
            assert_int_equal(cl_ledger_sync_hard(l), CL_OK);
            assert_true(i < 500);
        } while (++i < 5 || open_chunk_size(dir) != 0);
        assert_int_equal(cl_ledger_close(l), CL_OK);
        char p[600];
        snprintf(p, sizeof p, "%s/node/ledger_type", dir);
        size_t n = 0;
        char *orig = tu_read_file(p, &n);
        assert_non_null(orig);
        const char *bad[] = {"", "garbage\n", priv ? "public\n" : "private\n"};
        for (size_t b = 0; b < 3; b++) {
            FILE *f = fopen(p, "wb");
            assert_non_null(f);
            fputs(bad[b], f);
            fclose(f);
            cl_ledger_opts o = {0};
            o.dir = dir;
            cl_ledger *x = NULL;
            assert_int_equal(cl_ledger_open(&o, &x), CL_ECORRUPT);
        }
        FILE *f = fopen(p, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(orig, 1, n, f), n);
        fclose(f);
        free(orig);
        l = reopen(dir, 0);
        assert_int_equal(cl_ledger_is_private(l), priv);
        expect_entry(l, s, "c", "typed");
        assert_int_equal(cl_ledger_close(l), CL_OK);
    }
    tu_rmrf(dir);
}

static void test_derived_state_rebuilt(void **state)
{
    /* Deleting the Merkle store and the index entirely: open rebuilds both from the chunks. */
    const char *dir = tu_tempdir("cl-ledger");
    cl_ledger *l = make(dir, 1, 1024);
    uint64_t s[100];
    for (int i = 0; i < 100; i++) {
        put(l, i % 3 ? "x" : "y", "rebuild me", &s[i]);
        if (i % 9 == 8)
            assert_int_equal(cl_ledger_sign(l, 2, NULL), CL_OK);
    }
    assert_int_equal(cl_ledger_sign(l, 2, NULL), CL_OK);
    char *pem = strdup(cl_ledger_service_cert_pem(l));
    assert_int_equal(cl_ledger_close(l), CL_OK);
    char p[600];
    snprintf(p, sizeof p, "%s/merkle", dir);
    tu_rmrf(p);
    snprintf(p, sizeof p, "%s/index", dir);
    tu_rmrf(p);
    l = reopen(dir, 1024);
    assert_int_equal(cl_ledger_check(l), CL_OK);
    expect_entry(l, s[50], s[50] % 3 == 0 ? "x" : "x", "rebuild me");
    for (int i = 0; i < 100; i += 11)
        expect_receipt(l, s[i], pem);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    free(pem);
    tu_rmrf(dir);
}

/* An index torn by a power cut (it is opened MDB_NOSYNC; here every page after the two meta pages
 * overwritten): the ledger opens, rebuilding it from the chunks. */
static void test_torn_index_rebuilt(void **state)
{
    (void)state;
    const char *dir = tu_tempdir("cl-ledger");
    cl_ledger *l = make(dir, 1, 1024);
    uint64_t s[60];
    for (int i = 0; i < 60; i++)
        put(l, i % 2 ? "x" : "y", "torn index", &s[i]);
    assert_int_equal(cl_ledger_sign(l, 2, NULL), CL_OK);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    char p[600];
    snprintf(p, sizeof p, "%s/index/data.mdb", dir);
    FILE *f = fopen(p, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    long psz = sysconf(_SC_PAGESIZE);
    assert_true(size > 2 * psz);
    long from = 2 * psz;
    assert_int_equal(fseek(f, from, SEEK_SET), 0);
    for (long i = from; i < size; i++)
        assert_int_equal(fputc(0xA5, f), 0xA5);
    assert_int_equal(fclose(f), 0);
    l = reopen(dir, 1024);
    assert_int_equal(cl_ledger_check(l), CL_OK);
    for (int i = 0; i < 60; i += 7)
        expect_entry(l, s[i], i % 2 ? "x" : "y", "torn index");
    assert_int_equal(cl_ledger_close(l), CL_OK);
    tu_rmrf(dir);
}

/* Flips one bit of record `index` of level `level` of the stored tree. */
static void flip_tree_record(const char *dir, unsigned level, uint64_t index)
{
    char p[600];
    snprintf(p, sizeof p, "%s/merkle/level_%02u", dir, level);
    assert_int_equal(tu_flip_byte(p, index * 32 + 7, 0x10), 0);
}

static int rebuild_asked(const char *dir)
{
    char p[600];
    snprintf(p, sizeof p, "%s/merkle/rebuild", dir);
    return access(p, F_OK) == 0;
}

/* The level files carry no checksum. A damaged record on the frontier of the last signed size
 * (here the root of the largest perfect subtree, which every later root and most proofs use) is
 * caught at open, which rebuilds the tree from the chunks; without the check every receipt of it
 * failed verification and every later signature signed a wrong root. The check needs neither the
 * index (removed here) nor an open chunk (the ledger ends on a rollover in the second case). */
static void test_tree_frontier_damage_rebuilt(void **state)
{
    (void)state;
    for (int rolled = 0; rolled <= 1; rolled++) {
        const char *dir = tu_tempdir("cl-ledger");
        cl_ledger *l = make(dir, rolled, rolled ? 2048 : 0);
        uint64_t s[70];
        for (int i = 0; i < 70; i++) {
            put(l, "frontier", "tree check", &s[i]);
            if (i % 9 == 8)
                assert_int_equal(cl_ledger_sign(l, 2, NULL), CL_OK);
        }
        uint64_t sig;
        assert_int_equal(cl_ledger_sign(l, 2, &sig), CL_OK);
        assert_int_equal(cl_ledger_sync(l), CL_OK);
        char *pem = strdup(cl_ledger_service_cert_pem(l));
        assert_int_equal(cl_ledger_close(l), CL_OK);
        unsigned top = 0;
        while ((2ull << top) <= sig)
            top++;
        flip_tree_record(dir, top, 0); /* leaves [0, 2^top), on the frontier of size sig */
        if (rolled) { /* every chunk is committed: the signature is found without an open one */
            char lp[600];
            snprintf(lp, sizeof lp, "%s/ledger", dir);
            DIR *d = opendir(lp);
            assert_non_null(d);
            int open_chunks = 0;
            for (struct dirent *de; (de = readdir(d)) != NULL;)
                open_chunks += de->d_name[0] != '.' && strstr(de->d_name, ".committed") == NULL;
            closedir(d);
            assert_int_equal(open_chunks, 0);
        }
        char p[600];
        snprintf(p, sizeof p, "%s/index", dir);
        tu_rmrf(p);
        l = reopen(dir, rolled ? 2048 : 0);
        assert_int_equal(cl_ledger_check(l), CL_OK);
        for (int i = 0; i < 70; i += 3)
            expect_receipt(l, s[i], pem);
        uint64_t more;
        put(l, "frontier", "after the rebuild", &more);
        assert_int_equal(cl_ledger_sign(l, 2, NULL), CL_OK);
        assert_int_equal(cl_ledger_sync(l), CL_OK);
        expect_receipt(l, more, pem);
        assert_int_equal(cl_ledger_close(l), CL_OK);
        assert_false(rebuild_asked(dir));
        expect_verified(dir, pem, 0);
        free(pem);
        tu_rmrf(dir);
    }
}

/* The chunk files of a closed ledger: the first and the last committed one (path, first and last
 * seqno), how many are committed and how many open. */
typedef struct {
    char first[1200], last[1200];
    unsigned long long first_start, first_end, last_start;
    int committed, open;
} chunk_files;

static void chunk_files_of(const char *dir, chunk_files *cf)
{
    char lp[600];
    unsigned long long st, en;
    memset(cf, 0, sizeof *cf);
    cf->first_start = ~0ull;
    snprintf(lp, sizeof lp, "%s/ledger", dir);
    DIR *d = opendir(lp);
    assert_non_null(d);
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        if (de->d_name[0] == '.')
            continue;
        if (sscanf(de->d_name, "ledger_%llu-%llu.committed", &st, &en) != 2) {
            cf->open++;
            continue;
        }
        cf->committed++;
        if (st < cf->first_start) {
            cf->first_start = st;
            cf->first_end = en;
            snprintf(cf->first, sizeof cf->first, "%s/%s", lp, de->d_name);
        }
        if (st >= cf->last_start) {
            cf->last_start = st;
            snprintf(cf->last, sizeof cf->last, "%s/%s", lp, de->d_name);
        }
    }
    closedir(d);
}

/* Offset of the last whole frame of the chunk file at path (0: none). */
static uint64_t last_frame_off(const char *path)
{
    uint64_t last_off = 0;
    cl_chunk_reader r;
    assert_int_equal(cl_chunk_reader_open(&r, cl_fs_posix(), path), CL_OK);
    cl_entry_view e;
    uint64_t off;
    while (cl_chunk_reader_next(&r, &e, &off) == CL_OK)
        last_off = off;
    cl_chunk_reader_close(&r);
    return last_off;
}

/* Open hashes the leaves after the last signature again from the chunks, and with no open chunk
 * reads that signature from the last committed chunk: that chunk cut short (its signature lost)
 * is refused, the log naming the file and offset. It used to open without the signature, so its
 * receipts and the tree check were gone. */
static void test_committed_chunk_cut_refused(void **state)
{
    (void)state;
    const char *dir = tu_tempdir("cl-ledger");
    cl_ledger *l = make(dir, 1, 2048); /* the shape of test_tree_frontier_damage_rebuilt's */
    for (int i = 0; i < 70; i++) {     /* second case: it ends on a rollover */
        put(l, "frontier", "tree check", NULL);
        if (i % 9 == 8)
            assert_int_equal(cl_ledger_sign(l, 2, NULL), CL_OK);
    }
    assert_int_equal(cl_ledger_sign(l, 2, NULL), CL_OK);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    chunk_files cf;
    chunk_files_of(dir, &cf);
    assert_int_equal(cf.open, 0);
    const char *last = cf.last;
    /* cut at the start of its last frame (the closing signature): every frame left is whole, so
     * only the check that a committed chunk holds the seqnos its name says refuses it (it was
     * refused with no word of why) */
    uint64_t last_off = last_frame_off(last);
    assert_true(last_off > 0);
    char *whole = tu_read_file(last, NULL);
    struct stat sb;
    assert_int_equal(stat(last, &sb), 0);
    assert_int_equal(truncate(last, (off_t)last_off), 0);
    cl_ledger_opts o = {0};
    o.dir = dir;
    char log[700];
    snprintf(log, sizeof log, "%s-log", dir);
    int saved = log_begin(log);
    int rc = cl_ledger_open(&o, &l);
    assert_true(log_end(saved, log, "but its name says"));
    assert_int_equal(rc, CL_ECORRUPT);
    /* cut inside its last frame */
    write_bytes(last, whole, (size_t)sb.st_size);
    assert_int_equal(truncate(last, sb.st_size - 10), 0);
    assert_int_equal(cl_ledger_open(&o, &l), CL_ETRUNC);
    /* its signature forged into a whole frame of another type with the same seqno (the CRC made
     * to fit): it holds every seqno its name says, but does not end with a signature */
    {
        cl_cursor c;
        cl_cursor_init(&c, whole + last_off, (size_t)sb.st_size - last_off);
        cl_entry_view e;
        assert_int_equal(cl_entry_decode(&c, &e), CL_OK);
        assert_int_equal(e.type, CL_ENTRY_SIGNATURE);
        assert_int_equal(c.pos, c.len); /* the chunk's last bytes */
        e.type = CL_ENTRY_INTERNAL;
        cl_buf forged = CL_BUF_INIT;
        assert_int_equal(cl_buf_append(&forged, whole, (size_t)last_off), CL_OK);
        assert_int_equal(cl_entry_encode(&e, &forged), CL_OK);
        assert_int_equal(forged.len, (size_t)sb.st_size);
        write_bytes(last, forged.data, forged.len);
        cl_buf_free(&forged);
    }
    saved = log_begin(log);
    rc = cl_ledger_open(&o, &l);
    assert_true(log_end(saved, log, "does not end with a readable signature"));
    assert_int_equal(rc, CL_ECORRUPT);
    /* whole again: it opens */
    write_bytes(last, whole, (size_t)sb.st_size);
    assert_int_equal(cl_ledger_open(&o, &l), CL_OK);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    free(whole);
    tu_rmrf(dir);
}

/* Leaves after the last durable signature are vouched for by nothing yet: open hashes them again
 * from the chunks. Without that, a damaged tail leaf went into the next signed root, its receipt
 * could never verify, and the ledger could never be opened again once the tree was rebuilt (the
 * chunks no longer reproduced the signed root). */
static void test_tree_tail_rehashed(void **state)
{
    (void)state;
    const char *dir = tu_tempdir("cl-ledger");
    cl_ledger *l = make(dir, 0, 0);
    uint64_t s[20];
    for (int i = 0; i < 20; i++)
        put(l, "tail", "unsigned for now", &s[i]);
    assert_int_equal(cl_ledger_sync(l), CL_OK);
    char *pem = strdup(cl_ledger_service_cert_pem(l));
    assert_int_equal(cl_ledger_close(l), CL_OK);
    flip_tree_record(dir, 0, s[10]);
    flip_tree_record(dir, 1, s[16] / 2);
    l = reopen(dir, 0);
    assert_int_equal(cl_ledger_sign(l, 2, NULL), CL_OK);
    assert_int_equal(cl_ledger_sync(l), CL_OK);
    for (int i = 0; i < 20; i++)
        expect_receipt(l, s[i], pem);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    expect_verified(dir, pem, 0);
    l = reopen(dir, 0);
    expect_receipt(l, s[10], pem);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    free(pem);
    tu_rmrf(dir);
}

/* A damaged record off that frontier feeds only proofs of older entries: the receipt that would
 * carry it is refused (CL_ECORRUPT, never an invalid receipt), others are still served, and the
 * next open rebuilds the tree, after which the refused receipt verifies. The same for a
 * consistency proof. */
static void test_tree_proof_damage_refused(void **state)
{
    (void)state;
    const char *dir = tu_tempdir("cl-ledger");
    cl_ledger *l = make(dir, 0, 0);
    uint64_t s[70], sigs[10];
    int nsig = 0;
    sigs[nsig++] = cl_ledger_signed_seqno(l);
    for (int i = 0; i < 70; i++) {
        put(l, "proofs", "old entry", &s[i]);
        if (i % 9 == 8)
            assert_int_equal(cl_ledger_sign(l, 2, &sigs[nsig++]), CL_OK);
    }
    assert_int_equal(cl_ledger_sign(l, 2, &sigs[nsig++]), CL_OK);
    assert_int_equal(cl_ledger_sync(l), CL_OK);
    char *pem = strdup(cl_ledger_service_cert_pem(l));
    assert_int_equal(cl_ledger_close(l), CL_OK);
    /* level 2 record 2 (leaves 8..11) is in the proof of leaf 12 (s[7]) and in the root of the
     * signature at 14 (8 + 4 + 2 leaves), but not on the frontier of the last signed size (64 +
     * 16 + 2) */
    assert_int_equal(s[7], 12);
    assert_int_equal(sigs[1], 14);
    assert_int_equal(sigs[nsig - 1], 82);
    flip_tree_record(dir, 2, 2);
    { /* verify-ledger finds it too: the ledger is valid, its store is not */
        cl_verify_report rep;
        assert_int_equal(verify_dir(dir, pem, &rep), CL_ECORRUPT);
        assert_string_equal(rep.what, "");
        assert_string_equal(rep.merkle_what,
                            "merkle/level_02 record 2 is not the hash of its two children");
    }
    /* the first receipt that finds it cannot write merkle/rebuild (a failed rename): refused all
     * the same, and the next one writes it */
    cl_fs_fault *ff = NULL;
    assert_int_equal(cl_fs_fault_new(cl_fs_posix(), &ff), CL_OK);
    l = open_fs(dir, cl_fs_fault_fs(ff));
    assert_false(rebuild_asked(dir));
    json_t *j = NULL;
    char log[700];
    snprintf(log, sizeof log, "%s-log", dir);
    cl_fs_fault_arm(ff, CL_FAULT_RENAME, 0, 0);
    int saved = log_begin(log);
    int rc = cl_ledger_receipt(l, s[7], &j);
    assert_true(log_end(saved, log, "the marker could not be written"));
    assert_int_equal(rc, CL_ECORRUPT);
    assert_null(j);
    assert_true(cl_fs_fault_fired(ff));
    assert_false(rebuild_asked(dir));
    assert_int_equal(cl_ledger_receipt(l, s[7], &j), CL_ECORRUPT);
    assert_null(j);
    assert_true(rebuild_asked(dir));
    expect_receipt(l, s[3], pem);  /* leaf 8: its proof holds level 2 record 3, not 2 */
    expect_receipt(l, s[60], pem); /* far away */
    assert_int_equal(cl_ledger_consistency(l, sigs[1], sigs[nsig - 1], &j), CL_ECORRUPT);
    assert_null(j);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    cl_fs_fault_free(ff);
    l = reopen(dir, 0);
    assert_false(rebuild_asked(dir));
    expect_receipt(l, s[7], pem);
    assert_int_equal(cl_ledger_consistency(l, sigs[1], sigs[nsig - 1], &j), CL_OK);
    json_decref(j);
    assert_int_equal(cl_ledger_check(l), CL_OK);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    free(pem);
    tu_rmrf(dir);
}

/* An entry altered in a chunk with its CRC fixed up (tampering, not a torn write): its receipt is
 * refused, and the rebuild that asks for cannot reproduce the signed root, so the ledger is no
 * longer opened (verify-ledger names the entry) rather than served with a history nobody
 * signed. */
static void test_tampered_entry_refused(void **state)
{
    (void)state;
    const char *dir = tu_tempdir("cl-ledger");
    cl_ledger *l = make(dir, 0, 0);
    uint64_t s[10];
    for (int i = 0; i < 10; i++)
        put(l, "tamper", i == 6 ? "pay 100 to bob" : "an entry", &s[i]);
    assert_int_equal(cl_ledger_sign(l, 2, NULL), CL_OK);
    assert_int_equal(cl_ledger_sync(l), CL_OK);
    char *pem = strdup(cl_ledger_service_cert_pem(l));
    assert_int_equal(cl_ledger_close(l), CL_OK);
    char lp[600], path[1200] = "";
    snprintf(lp, sizeof lp, "%s/ledger", dir);
    DIR *d = opendir(lp);
    assert_non_null(d);
    for (struct dirent *de; (de = readdir(d)) != NULL;)
        if (strstr(de->d_name, ".committed") == NULL && de->d_name[0] != '.')
            snprintf(path, sizeof path, "%s/%s", lp, de->d_name);
    closedir(d);
    size_t len = 0;
    uint8_t *b = (uint8_t *)tu_read_file(path, &len);
    assert_non_null(b);
    int fixed = 0;
    for (size_t off = CL_CHUNK_HEADER_LEN; off + 4 <= len;) {
        size_t fl = cl_load_u32(b + off);
        assert_true(off + 4 + fl <= len);
        uint8_t *hit = memmem(b + off, 4 + fl, "pay 100", 7);
        if (hit != NULL) {
            hit[4] = '9'; /* pay 900 to bob */
            cl_store_u32(b + off + fl, cl_crc32c(0, b + off + 4, fl - 4));
            fixed = 1;
        }
        off += 4 + fl;
    }
    assert_true(fixed);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    free(b);
    l = reopen(dir, 0); /* the stored tree still holds the signed history */
    json_t *j = NULL;
    assert_int_equal(cl_ledger_receipt(l, s[6], &j), CL_ECORRUPT);
    expect_receipt(l, s[2], pem);
    assert_true(rebuild_asked(dir));
    assert_int_equal(cl_ledger_close(l), CL_OK);
    cl_ledger_opts o = {0};
    o.dir = dir;
    assert_int_equal(cl_ledger_open(&o, &l), CL_ECORRUPT);
    assert_true(rebuild_asked(dir)); /* still asked: the next attempt checks again */
    cl_verify_report rep;
    assert_true(verify_dir(dir, pem, &rep) < 0);
    assert_int_equal(rep.bad_seqno, s[6]);
    free(pem);
    tu_rmrf(dir);
}

/* Consistency proofs between signed roots verify with the pure RFC 9162 verifier, and fail for a
 * root from another ledger state or for non-signature seqnos. */
static void test_consistency_between_signatures(void **state)
{
    const char *dir = tu_tempdir("cl-ledger");
    cl_ledger *l = make(dir, 0, 0);
    uint64_t sigs[12], s;
    int nsig = 0;
    sigs[nsig++] = cl_ledger_signed_seqno(l);
    for (int i = 0; i < 40; i++) {
        put(l, "c", "consistency", &s);
        if (i % 4 == 3)
            assert_int_equal(cl_ledger_sign(l, 2, &sigs[nsig++]), CL_OK);
    }
    assert_int_equal(cl_ledger_sync(l), CL_OK);
    for (int a = 0; a < nsig; a++) {
        for (int b = a; b < nsig; b++) {
            json_t *j = NULL;
            assert_int_equal(cl_ledger_consistency(l, sigs[a], sigs[b], &j), CL_OK);
            uint64_t m = (uint64_t)json_integer_value(json_object_get(j, "fromTreeSize"));
            uint64_t n = (uint64_t)json_integer_value(json_object_get(j, "toTreeSize"));
            assert_int_equal(m, sigs[a]);
            assert_int_equal(n, sigs[b]);
            uint8_t rm[32], rn[32], proof[65][32];
            assert_int_equal(
                cl_hex_decode(json_string_value(json_object_get(j, "fromRoot")), 64, rm, 32),
                CL_OK);
            assert_int_equal(
                cl_hex_decode(json_string_value(json_object_get(j, "toRoot")), 64, rn, 32), CL_OK);
            json_t *arr = json_object_get(j, "proof");
            size_t np = json_array_size(arr);
            for (size_t i = 0; i < np; i++)
                assert_int_equal(
                    cl_hex_decode(json_string_value(json_array_get(arr, i)), 64, proof[i], 32),
                    CL_OK);
            assert_int_equal(
                cl_merkle_verify_consistency(m, n, rm, rn, (const uint8_t(*)[32])proof, np), CL_OK);
            if (m != n) {
                rm[0] ^= 1; /* a different earlier root is not consistent */
                assert_int_equal(
                    cl_merkle_verify_consistency(m, n, rm, rn, (const uint8_t(*)[32])proof, np),
                    CL_EPROOF);
            }
            json_decref(j);
        }
    }
    json_t *j = NULL;
    assert_int_equal(cl_ledger_consistency(l, sigs[2], sigs[1], &j), CL_EINVAL);
    assert_int_equal(cl_ledger_consistency(l, sigs[1] - 1, sigs[2], &j), CL_EINVAL);
    assert_int_equal(cl_ledger_consistency(l, sigs[1], sigs[nsig - 1] + 1, &j), CL_EINVAL);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    tu_rmrf(dir);
}

/* Consensus support: a leader-chosen claims key is stored as given, and the raft index recorded in
 * a signature survives a reopen. */
static void test_keyed_append_and_raft_index(void **state)
{
    const char *dir = tu_tempdir("cl-ledger");
    cl_ledger *l = make(dir, 1, 0);
    uint64_t ri = 1;
    assert_int_equal(cl_ledger_signed_raft_index(l, &ri), CL_OK);
    assert_int_equal(ri, 0); /* genesis is outside consensus */
    uint8_t key[32];
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)(i * 7 + 1);
    uint64_t s;
    assert_int_equal(cl_ledger_append_user_keyed(l, 3, "k", 1, (const uint8_t *)"v", 1, key, &s),
                     CL_OK);
    assert_int_equal(cl_ledger_sign_at(l, 3, 77, NULL), CL_OK);
    assert_int_equal(cl_ledger_sync(l), CL_OK);
    cl_ledger_entry e;
    assert_int_equal(cl_ledger_read(l, s, &e), CL_OK);
    assert_memory_equal(e.claims_key, key, 32);
    cl_ledger_entry_free(&e);
    expect_receipt(l, s, cl_ledger_service_cert_pem(l));
    assert_int_equal(cl_ledger_signed_raft_index(l, &ri), CL_OK);
    assert_int_equal(ri, 77);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    l = reopen(dir, 0);
    assert_int_equal(cl_ledger_signed_raft_index(l, &ri), CL_OK);
    assert_int_equal(ri, 77);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    tu_rmrf(dir);
}

static int collect_seqno(void *arg, uint64_t seqno)
{
    uint64_t *v = arg;
    v[++v[0]] = seqno;
    return 0;
}

static int count_coll(void *arg, const char *coll, size_t len)
{
    (void)coll;
    (void)len;
    (*(int *)arg)++;
    return 0;
}

static int count_users(void *arg, const cl_ledger_entry *e)
{
    assert_int_equal(e->table, CL_TABLE_USERS);
    (*(int *)arg)++;
    return 0;
}

static int count_rows(void *arg, const cl_ledger_entry *e)
{
    (void)e;
    (*(int *)arg)++;
    return 0;
}

/* Collection scans, listing and counts hide internal collections; table scans see one table. */
static void test_collections_and_tables(void **state)
{
    const char *dir = tu_tempdir("cl-ledger");
    cl_ledger *l = make(dir, 0, 0);
    uint64_t s;
    for (int i = 0; i < 30; i++)
        put(l, i % 3 == 0 ? "a" : "b", "x", &s);
    assert_int_equal(
        cl_ledger_append_internal(l, 2, CL_TABLE_USERS, CL_OP_PUT, "u1", 2, "{}", 2, NULL), CL_OK);
    assert_int_equal(
        cl_ledger_append_internal(l, 2, CL_TABLE_USERS, CL_OP_REMOVE, "u1", 2, "", 0, NULL), CL_OK);
    assert_int_equal(cl_ledger_sign(l, 2, NULL), CL_OK);
    assert_int_equal(cl_ledger_sync(l), CL_OK);
    uint64_t got[64] = {0}, next = 1;
    assert_int_equal(
        cl_ledger_collection_scan(l, "a", 1, 1, UINT64_MAX, 4, collect_seqno, got, &next), CL_OK);
    assert_int_equal(got[0], 4);
    assert_true(next > got[4]);
    memset(got, 0, sizeof got);
    assert_int_equal(
        cl_ledger_collection_scan(l, "a", 1, next, UINT64_MAX, 0, collect_seqno, got, &next),
        CL_OK);
    assert_int_equal(got[0], 6);
    assert_int_equal(next, 0);
    uint64_t last = 0;
    assert_int_equal(cl_ledger_collection_last(l, "b", 1, &last), CL_OK);
    assert_int_equal(last, s);
    assert_int_equal(cl_ledger_collection_last(l, "none", 4, &last), CL_OK);
    assert_int_equal(last, 0);
    assert_int_equal(cl_ledger_collection_scan(l, "\x01sig", 4, 1, 10, 0, collect_seqno, got, NULL),
                     CL_EINVAL);
    int n = 0;
    assert_int_equal(cl_ledger_collections(l, count_coll, &n), CL_OK);
    assert_int_equal(n, 2);
    size_t cnt = 0;
    assert_int_equal(cl_ledger_collection_count(l, &cnt), CL_OK);
    assert_int_equal(cnt, 2);
    int users = 0;
    assert_int_equal(cl_ledger_table_scan(l, CL_TABLE_USERS, count_users, &users), CL_OK);
    assert_int_equal(users, 2);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    /* the same after rebuilding the index from the chunks */
    char p[600];
    snprintf(p, sizeof p, "%s/index", dir);
    tu_rmrf(p);
    l = reopen(dir, 0);
    users = 0;
    assert_int_equal(cl_ledger_table_scan(l, CL_TABLE_USERS, count_users, &users), CL_OK);
    assert_int_equal(users, 2);
    assert_int_equal(cl_ledger_collection_count(l, &cnt), CL_OK);
    assert_int_equal(cnt, 2);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    tu_rmrf(dir);
}

/* The index is committed without syncs, so after an operating-system crash it may hold stale pages
 * that read as a valid B-tree. Stand-in for such an index: the index of another ledger with as
 * many entries, all in collection "z", planted over this one's. The marker decides: a ledger
 * left open (abandoned) and reopened in another boot rebuilds its index from the chunks; reopened
 * in the same boot (only the process died) or after a clean close, it keeps the index it finds. */
static cl_ledger *open_boot(const char *dir, const char *boot) { return reopen_boot(dir, 0, boot); }

static void plant_index(const char *from_dir, const char *to_dir)
{
    char from[700], to[700];
    snprintf(from, sizeof from, "%s/index/data.mdb", from_dir);
    snprintf(to, sizeof to, "%s/index/data.mdb", to_dir);
    size_t n = 0;
    char *b = tu_read_file(from, &n);
    assert_non_null(b);
    FILE *f = fopen(to, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
    free(b);
}

static uint64_t coll_count(cl_ledger *l, const char *coll)
{
    uint64_t got[64] = {0}, next = 0;
    assert_int_equal(cl_ledger_collection_scan(l, coll, strlen(coll), 1, UINT64_MAX, 60,
                                               collect_seqno, got, &next),
                     CL_OK);
    return got[0];
}

static int count_seqno(void *arg, uint64_t seqno)
{
    (void)seqno;
    (*(uint64_t *)arg)++;
    return 0;
}

static uint64_t coll_count_all(cl_ledger *l, const char *coll)
{
    uint64_t n = 0;
    assert_int_equal(
        cl_ledger_collection_scan(l, coll, strlen(coll), 1, UINT64_MAX, 0, count_seqno, &n, NULL),
        CL_OK);
    return n;
}

/* Plants the other ledger's index in dir and opens dir in `boot`: the planted index is used. */
/* Sets (want 1: puts) or reads the meta row "test:kept" of dir's index, opened directly. */
static int index_sentinel(const char *dir, int put)
{
    char idir[600];
    snprintf(idir, sizeof idir, "%s/index", dir);
    cl_index *idx = NULL;
    assert_int_equal(cl_index_open(idir, 64u << 20, &idx), CL_OK);
    int have = 1;
    if (put) {
        cl_index_batch *b = NULL;
        assert_int_equal(cl_index_batch_begin(idx, &b), CL_OK);
        assert_int_equal(cl_index_put_meta(b, "test:kept", "1", 1), CL_OK);
        assert_int_equal(cl_index_batch_commit(b), CL_OK);
    } else {
        char v[4];
        size_t n = 0;
        have = cl_index_get_meta(idx, "test:kept", v, sizeof v, &n) == CL_OK;
    }
    cl_index_close(idx);
    return have;
}

/* The index open finds in dir is kept, not rebuilt: a row put in it beforehand (one no rebuild
 * makes, and no read looks at) is still there after the open. Until 2026-11-25 the mark was
 * another ledger's whole index planted in its place; open now reads the service table through
 * the index and found that one wrong whenever the two genesis frames differed by a byte. */
static void expect_index_kept(const char *other, const char *dir, const char *boot)
{
    (void)other;
    index_sentinel(dir, 1);
    cl_ledger *l = open_boot(dir, boot);
    cl_ledger_abandon(l);
    assert_true(index_sentinel(dir, 0));
}

static void test_index_after_os_crash(void **state)
{
    (void)state;
    const char *dir = tu_tempdir("cl-ledger");
    char other[600], marker[600];
    snprintf(other, sizeof other, "%s-other", dir);
    snprintf(marker, sizeof marker, "%s/index/dirty", dir);
    cl_ledger_opts o = {0};
    o.boot_id = "boot-1";
    o.dir = other;
    cl_ledger *l = NULL;
    assert_int_equal(cl_ledger_create(&o, &l), CL_OK);
    for (int i = 0; i < 40; i++)
        put(l, "z", "stale rows", NULL);
    assert_int_equal(cl_ledger_sign(l, 2, NULL), CL_OK);
    assert_int_equal(cl_ledger_close(l), CL_OK);

    o.dir = dir;
    assert_int_equal(cl_ledger_create(&o, &l), CL_OK);
    assert_int_equal(access(marker, F_OK), 0); /* open: marked */
    uint64_t s[40];
    for (int i = 0; i < 40; i++)
        put(l, i % 2 ? "x" : "y", "fresh rows", &s[i]);
    assert_int_equal(cl_ledger_sign(l, 2, NULL), CL_OK);
    assert_int_equal(cl_ledger_sync(l), CL_OK);
    cl_ledger_abandon(l); /* the process dies with the index open */

    /* same boot: the index the process left is the one the page cache holds, and it is kept */
    expect_index_kept(other, dir, "boot-1");

    /* another boot: rebuilt from the chunks, and marked with the new boot */
    plant_index(other, dir);
    l = open_boot(dir, "boot-2");
    assert_int_equal(coll_count(l, "z"), 0);
    assert_int_equal(coll_count(l, "x"), 20);
    assert_int_equal(coll_count(l, "y"), 20);
    for (int i = 0; i < 40; i += 9)
        expect_entry(l, s[i], i % 2 ? "x" : "y", "fresh rows");
    assert_int_equal(cl_ledger_check(l), CL_OK);
    size_t n = 0;
    char *m = tu_read_file(marker, &n);
    assert_non_null(m);
    assert_int_equal(n, strlen("boot boot-2\n"));
    assert_memory_equal(m, "boot boot-2\n", n);
    free(m);
    /* a clean close syncs the index and removes the marker: the next boot keeps the index */
    assert_int_equal(cl_ledger_close(l), CL_OK);
    assert_int_equal(access(marker, F_OK), -1);
    expect_index_kept(other, dir, "boot-3");

    /* a boot id that cannot be read counts as another boot */
    l = open_boot(dir, "");
    assert_int_equal(coll_count(l, "x"), 20);
    cl_ledger_abandon(l);
    l = open_boot(dir, "");
    assert_int_equal(coll_count(l, "x"), 20);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    tu_rmrf(dir);
    tu_rmrf(other);
}

/* An index torn in pages that open does not read but the replay does. A disk can do that; no
 * crash in the same boot can, and after another boot the marker rebuilds the index anyway. The
 * index is behind the chunks (an older copy of it), and each page it uses is overwritten in turn.
 * Every open must succeed. When an LMDB call fails while the index is brought up to date, open
 * removes it and rebuilds it from the chunks, and the answers must be right; at least one page
 * must take that path. A page that nothing reads at open goes unnoticed (LMDB keeps no page
 * checksums), so those opens are only required to succeed. */
static int open_logged(const char *dir, const char *log, cl_ledger **l)
{
    /* the rebuild is a warning; main sets the level to errors */
    return lu_open_logged(dir, 0, "boot-1", CL_LOG_WARN, log, l);
}

/* The index's keys hold seqnos big-endian, so rows sort by seqno. */
static void be64_put(uint8_t *p, uint64_t v)
{
    for (int b = 0; b < 8; b++)
        p[b] = (uint8_t)(v >> (56 - 8 * b));
}

/* Deletes (val = NULL) or puts with value val (vlen bytes) the row `key` of table `db` in a closed
 * ledger's index with LMDB itself, as a damaged page would read back; nothing else changes. */
static void index_row(const char *dir, const char *db, const uint8_t *key, size_t klen,
                      const uint8_t *val, size_t vlen)
{
    char path[600];
    snprintf(path, sizeof path, "%s/index", dir);
    assert_int_equal(tu_lmdb_row(path, db, key, klen, val, vlen), 0);
}

/* Copies row `key` of table `db` (exactly n bytes) out of a closed ledger's index. */
static void index_row_get(const char *dir, const char *db, const uint8_t *key, size_t klen,
                          uint8_t *out, size_t n)
{
    char path[600];
    snprintf(path, sizeof path, "%s/index", dir);
    assert_int_equal(tu_lmdb_get(path, db, key, klen, out, n), 0);
}

/* Truncation cuts the open chunk, the source of truth, so it must not trust the index's
 * location of the cut: a row of the first entry to drop that names an older frame (here: the
 * frame of an entry before the signature), or a row of the last entry kept that does not end
 * where the cut is, would cut signed entries out of the chunk. The cut is found in the chunk
 * itself then, and the index is rebuilt at the next open. */
static void test_truncate_checks_index(void **state)
{
    (void)state;
    for (int which = 0; which < 2; which++) {
        const char *dir = tu_tempdir("cl-ledger");
        cl_ledger *l = make(dir, which, 0);
        uint64_t a, sig, b[3];
        put(l, "c", "kept", &a);
        assert_int_equal(cl_ledger_sign(l, 2, &sig), CL_OK);
        for (int i = 0; i < 3; i++)
            put(l, "c", "rolled back", &b[i]);
        assert_int_equal(cl_ledger_sync(l), CL_OK);
        assert_int_equal(cl_ledger_close(l), CL_OK);
        /* which 0: the row of sig + 1 names the frame of a; 1: the row of sig names the frame of
         * b[1] (a whole frame of another seqno, so only the end check sees it) */
        uint8_t kfrom[8], kto[8], rec[CL_INDEX_LOC_SIZE];
        be64_put(kfrom, which == 0 ? a : b[1]);
        be64_put(kto, which == 0 ? sig + 1 : sig);
        index_row_get(dir, "entries", kfrom, 8, rec, sizeof rec);
        index_row(dir, "entries", kto, 8, rec, sizeof rec);
        l = reopen(dir, 0);
        assert_int_equal(cl_ledger_truncate(l, sig), CL_OK);
        expect_regrown(l, dir, a, sig, b[0]);
        tu_rmrf(dir);
    }
}

/* Open reads the chunks only from the last signature on; every older committed chunk is held to
 * its size instead: its file must end where the index puts the frame of the last seqno its name
 * says. Cut at a frame boundary (every frame left whole), cut inside a frame or grown past its last
 * frame, the first committed chunk was not noticed at open (only by the reads that reached it);
 * now open refuses it, naming it. With the chunk whole and the index's row wrong, it is the index
 * that is rebuilt. */
static void test_older_chunk_ends_checked(void **state)
{
    (void)state;
    const char *dir = tu_tempdir("cl-ledger");
    cl_ledger *l = make(dir, 0, 2048);
    uint64_t last = 0;
    for (int i = 0; i < 60; i++) {
        put(l, "older", "an entry of an older chunk", NULL);
        if (i % 9 == 8)
            assert_int_equal(cl_ledger_sign(l, 2, NULL), CL_OK);
    }
    assert_int_equal(cl_ledger_sign(l, 2, NULL), CL_OK);
    put(l, "older", "in the open chunk, behind its signature", NULL);
    assert_int_equal(cl_ledger_sign(l, 2, &last), CL_OK);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    /* the first committed chunk, and that there are more and an open chunk after it */
    chunk_files cf;
    chunk_files_of(dir, &cf);
    assert_int_equal(cf.first_start, 1);
    assert_true(cf.committed >= 3);
    assert_int_equal(cf.open, 1);
    const char *first = cf.first;
    uint64_t last_off = last_frame_off(first);
    size_t n = 0;
    char *whole = tu_read_file(first, &n);
    assert_non_null(whole);
    assert_true(last_off > 0 && last_off < n);
    cl_ledger_opts o = {0};
    o.dir = dir;
    char log[700];
    snprintf(log, sizeof log, "%s-log", dir);
    /* cut at its last frame, cut inside it, grown past it by part of a copy of its last frame or
     * by the whole copy (a whole frame out of order): refused, named. Bytes past the end of the
     * file repeat its last frame. */
    size_t flen = n - (size_t)last_off;
    struct {
        size_t len;
        const char *says;
    } cuts[] = {
        {(size_t)last_off, "but its name says"},
        {n - 10, "unreadable entry frame at offset"},
        {n + 7, "unreadable entry frame at offset"},
        {n + flen, "holds seqno"},
    };
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        char *b = malloc(cuts[k].len);
        assert_non_null(b);
        for (size_t i = 0; i < cuts[k].len; i++)
            b[i] = i < n ? whole[i] : whole[last_off + (i - n)];
        write_bytes(first, b, cuts[k].len);
        free(b);
        int saved = log_begin(log);
        int rc = cl_ledger_open(&o, &l);
        assert_true(log_end(saved, log, cuts[k].says));
        assert_int_equal(rc, CL_ECORRUPT);
    }
    /* whole again, but the index puts its last frame one byte further: the index is rebuilt */
    write_bytes(first, whole, n);
    uint8_t kb[8], rec[CL_INDEX_LOC_SIZE], good[CL_INDEX_LOC_SIZE];
    be64_put(kb, cf.first_end);
    index_row_get(dir, "entries", kb, 8, rec, sizeof rec);
    memcpy(good, rec, sizeof rec);
    rec[8] ^= 1; /* the offset, little-endian */
    index_row(dir, "entries", kb, 8, rec, sizeof rec);
    int saved = log_begin(log);
    assert_int_equal(cl_ledger_open(&o, &l), CL_OK);
    assert_true(log_end(saved, log, "the index does not end"));
    for (uint64_t s = 1; s <= last; s++) {
        cl_ledger_entry e;
        assert_int_equal(cl_ledger_read(l, s, &e), CL_OK);
        assert_int_equal(e.seqno, s);
        cl_ledger_entry_free(&e);
    }
    assert_int_equal(cl_ledger_close(l), CL_OK);
    index_row_get(dir, "entries", kb, 8, rec, sizeof rec);
    assert_memory_equal(rec, good, sizeof rec);
    free(whole);
    tu_rmrf(dir);
}

/* Collection rows (statistics left as they were): removes (del, dseq) when del is not NULL, adds
 * (add, aseq) naming `before` as the row before it when add is not NULL. */
static void index_rows_edit(const char *dir, const char *del, uint64_t dseq, const char *add,
                            uint64_t aseq, uint64_t before)
{
    const char *coll[2] = {del, add};
    uint64_t seq[2] = {dseq, aseq};
    uint8_t vb[8];
    be64_put(vb, before);
    for (int i = 0; i < 2; i++) {
        if (coll[i] == NULL)
            continue;
        uint8_t kb[300];
        size_t n = strlen(coll[i]);
        memcpy(kb, coll[i], n + 1);
        be64_put(kb + n + 1, seq[i]);
        index_row(dir, "collections", kb, n + 9, i == 1 ? vb : NULL, 8);
    }
}

static int index_rebuild_asked(const char *dir)
{
    char path[600];
    snprintf(path, sizeof path, "%s/index/dirty", dir);
    size_t n = 0;
    char *m = tu_read_file(path, &n);
    int asked = m != NULL && n == 8 && memcmp(m, "damaged\n", 8) == 0;
    free(m);
    return asked;
}

/* A location naming another chunk than the one that holds the seqno, at an offset where that chunk
 * holds no whole frame: the location is wrong, not the chunk. The check looked for the frame in
 * the chunk the index named, found nothing, and blamed that chunk: refused for good, no rebuild
 * asked. */
static void test_location_in_another_chunk(void **state)
{
    (void)state;
    const char *dir = tu_tempdir("cl-ledger");
    cl_ledger *l = make(dir, 0, 2048);
    uint64_t s[40];
    put_signed(l, "a", "rows in small chunks", 40, 10, s, NULL);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    uint8_t k3[8], k30[8], r3[40], r30[40];
    be64_put(k3, s[3]);
    be64_put(k30, s[30]);
    index_row_get(dir, "entries", k3, 8, r3, sizeof r3);
    index_row_get(dir, "entries", k30, 8, r30, sizeof r30);
    assert_true(cl_load_u64(r3) != cl_load_u64(r30)); /* two chunks */
    memcpy(r30, r3, 8);
    cl_store_u64(r30 + 8, cl_load_u64(r30 + 8) + 1); /* off any frame boundary there */
    index_row(dir, "entries", k30, 8, r30, sizeof r30);
    l = reopen(dir, 2048);
    cl_ledger_entry e;
    assert_int_equal(cl_ledger_read(l, s[30], &e), CL_ECORRUPT);
    assert_true(index_rebuild_asked(dir));
    expect_entry(l, s[3], "a", "rows in small chunks");
    assert_int_equal(cl_ledger_close(l), CL_OK);
    l = reopen(dir, 2048);
    expect_entry(l, s[30], "a", "rows in small chunks");
    assert_int_equal(cl_ledger_close(l), CL_OK);
    tu_rmrf(dir);
}

/* A location row whose view (or type) is not its frame's: the view decides a transaction's state
 * and its commit evidence, and it used to be taken from the row alone (a wrong state with 200).
 * cl_ledger_view_checked and every frame read now compare it with the frame: index damage,
 * rebuilt at the next open. */
static void test_location_view_checked(void **state)
{
    (void)state;
    const char *dir = tu_tempdir("cl-ledger");
    cl_ledger *l = make(dir, 0, 0);
    uint64_t s[6];
    put_signed(l, "a", "a view in its row", 6, 6, s, NULL);
    assert_int_equal(cl_ledger_sync(l), CL_OK);
    uint64_t v = 0;
    assert_int_equal(cl_ledger_view_checked(l, s[2], &v), CL_OK);
    assert_int_equal(v, cur_view);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    for (int what = 0; what < 2; what++) {
        uint8_t k[8], r[40];
        be64_put(k, s[2]);
        index_row_get(dir, "entries", k, 8, r, sizeof r);
        if (what == 0)
            cl_store_u64(r + 20, cur_view + 1); /* the view */
        else
            r[28] = CL_ENTRY_SIGNATURE; /* the type */
        index_row(dir, "entries", k, 8, r, sizeof r);
        l = reopen(dir, 0);
        assert_int_equal(cl_ledger_view_checked(l, s[2], &v), CL_ECORRUPT);
        assert_true(index_rebuild_asked(dir));
        cl_ledger_entry e;
        assert_int_equal(cl_ledger_read(l, s[2], &e), CL_ECORRUPT);
        assert_int_equal(cl_ledger_view_checked(l, s[3], &v), CL_OK); /* the others are fine */
        assert_int_equal(cl_ledger_close(l), CL_OK);
        l = reopen(dir, 0); /* rebuilt */
        assert_int_equal(cl_ledger_view_checked(l, s[2], &v), CL_OK);
        assert_int_equal(v, cur_view);
        expect_entry(l, s[2], "a", "a view in its row");
        assert_int_equal(cl_ledger_close(l), CL_OK);
    }
    tu_rmrf(dir);
}

/* At open, a ledger with a rotated secret asks the index whether any secret was recorded after the
 * last one node/ledger_secrets holds (an older copy of the file would lack it). When the index
 * cannot answer, open rebuilds it from the chunks and asks again: a damaged index used to fail
 * that start (only the next one rebuilt), and a forged row that fits the chain made the right file
 * look like an older copy. Both cases: a secrets-table row at a user entry's seqno, first naming
 * itself as the row before it (off the chain), then the rotation record (on it). */
static void test_secrets_check_index_damage(void **state)
{
    (void)state;
    const char *dir = tu_tempdir("cl-ledger");
    cl_ledger *l = make(dir, 1, 2048);
    uint64_t first[12];
    put_signed(l, "sec", "under the first secret", 12, 12, first, NULL);
    uint64_t s = first[11];
    assert_int_equal(cl_ledger_rotate_secret(l, 2), CL_OK);
    uint64_t after;
    put(l, "sec", "under the second secret", &after);
    assert_int_equal(cl_ledger_sign(l, 2, NULL), CL_OK);
    assert_int_equal(cl_ledger_sync(l), CL_OK);
    cl_ledger_entry e;
    assert_int_equal(cl_ledger_read(l, after - 1, &e), CL_OK); /* the rotation record */
    assert_int_equal(e.type, CL_ENTRY_INTERNAL);
    assert_int_equal(e.table, CL_TABLE_SECRETS);
    cl_ledger_entry_free(&e);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    const char sc[] = {'\x01', 't', (char)('0' + CL_TABLE_SECRETS), 0};
    char log[700];
    snprintf(log, sizeof log, "%s-log", dir);
    for (int c = 0; c < 2; c++) {
        index_rows_edit(dir, NULL, 0, sc, after, c == 0 ? after : after - 1);
        int saved = log_begin(log);
        l = reopen(dir, 2048);
        assert_true(log_end(saved, log, "the index failed while the secrets file was checked"));
        assert_false(index_rebuild_asked(dir));
        expect_entry(l, after, "sec", "under the second secret");
        expect_entry(l, s, "sec", "under the first secret");
        assert_int_equal(cl_ledger_check(l), CL_OK);
        assert_int_equal(cl_ledger_close(l), CL_OK);
    }
    tu_rmrf(dir);
}

/* Collection rows that end early, run out of order, skip a row or name another collection's entry
 * (what one damaged index page can look like) are refused with CL_ECORRUPT, never served as a
 * shorter or wrong listing, and the next open rebuilds the index from the chunks. */
static void test_index_damage_refused(void **state)
{
    (void)state;
    const char *dir = tu_tempdir("cl-ledger");
    cl_ledger *l = make(dir, 0, 0);
    uint64_t s[60];
    for (int i = 0; i < 60; i++)
        put(l, i % 3 ? "a" : "b", "rows", &s[i]);
    assert_int_equal(cl_ledger_sign(l, 2, NULL), CL_OK);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    uint64_t got[64] = {0}, next = 0;
    /* 1. the last row of "a" lost: its rows end before its statistics' last seqno */
    index_rows_edit(dir, "a", s[59], NULL, 0, 0);
    l = reopen(dir, 0);
    assert_int_equal(
        cl_ledger_collection_scan(l, "a", 1, 1, UINT64_MAX, 0, collect_seqno, got, &next),
        CL_ECORRUPT);
    assert_true(index_rebuild_asked(dir));
    /* a window that ends before the damage still lists, and "b" is whole */
    memset(got, 0, sizeof got);
    assert_int_equal(cl_ledger_collection_scan(l, "a", 1, 1, s[10], 0, collect_seqno, got, &next),
                     CL_OK);
    assert_int_equal(got[0], 7);
    assert_int_equal(coll_count(l, "b"), 20);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    assert_true(index_rebuild_asked(dir)); /* a clean close leaves the request */
    l = reopen(dir, 0);
    assert_false(index_rebuild_asked(dir));
    assert_int_equal(coll_count(l, "a"), 40);
    assert_int_equal(cl_ledger_check(l), CL_OK);
    assert_int_equal(cl_ledger_close(l), CL_OK);

    /* 2. a row of "a" that names an entry of "b" and fits the chain before it: the scan refuses
     * it when it reads the next row of "a", which names s[2] as the row before it */
    index_rows_edit(dir, NULL, 0, "a", s[3], s[2]);
    l = reopen(dir, 0);
    memset(got, 0, sizeof got);
    assert_int_equal(cl_ledger_collection_scan(l, "a", 1, 1, s[5], 0, collect_seqno, got, &next),
                     CL_ECORRUPT);
    assert_true(index_rebuild_asked(dir));
    assert_int_equal(cl_ledger_close(l), CL_OK);
    l = reopen(dir, 0); /* rebuilt */
    assert_int_equal(cl_ledger_close(l), CL_OK);
    /* the same row with the next row edited to name it: the chain holds, the listing has it, and
     * reading it as an entry of "a" is refused */
    index_rows_edit(dir, NULL, 0, "a", s[3], s[2]);
    index_rows_edit(dir, NULL, 0, "a", s[4], s[3]);
    l = reopen(dir, 0);
    memset(got, 0, sizeof got);
    assert_int_equal(cl_ledger_collection_scan(l, "a", 1, 1, s[5], 0, collect_seqno, got, &next),
                     CL_OK);
    assert_int_equal(got[0], 5); /* s[1], s[2], s[3] (of "b"), s[4], s[5] */
    cl_ledger_entry e;
    assert_int_equal(cl_ledger_read_listed(l, s[2], "a", 1, &e), CL_OK);
    cl_ledger_entry_free(&e);
    assert_false(index_rebuild_asked(dir));
    assert_int_equal(cl_ledger_read_listed(l, s[3], "a", 1, &e), CL_ECORRUPT);
    assert_true(index_rebuild_asked(dir));
    assert_int_equal(cl_ledger_close(l), CL_OK);
    l = reopen(dir, 0);
    memset(got, 0, sizeof got);
    assert_int_equal(cl_ledger_collection_scan(l, "a", 1, 1, s[5], 0, collect_seqno, got, &next),
                     CL_OK);
    assert_int_equal(got[0], 4);
    assert_int_equal(cl_ledger_close(l), CL_OK);

    /* 3. the location row of a durable entry lost: reading it is refused, and asks for a rebuild
     * (a read of its state and of its receipt goes through the same location) */
    {
        uint8_t kb[8];
        be64_put(kb, s[10]);
        index_row(dir, "entries", kb, 8, NULL, 0);
    }
    l = reopen(dir, 0);
    assert_false(index_rebuild_asked(dir));
    assert_int_equal(cl_ledger_read(l, s[10], &e), CL_ECORRUPT);
    assert_true(index_rebuild_asked(dir));
    uint64_t view = 0;
    assert_int_equal(cl_ledger_view_of(l, s[10], &view), CL_ECORRUPT);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    l = reopen(dir, 0);
    expect_entry(l, s[10], "a", "rows");
    assert_int_equal(cl_ledger_close(l), CL_OK);

    /* 4. a row of "a" past its statistics' last seqno (a row's seqno bytes changed) */
    index_rows_edit(dir, "a", s[58], "a", s[59] + 500, s[59]);
    l = reopen(dir, 0);
    assert_int_equal(
        cl_ledger_collection_scan(l, "a", 1, s[50], UINT64_MAX, 0, collect_seqno, got, &next),
        CL_ECORRUPT);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    l = reopen(dir, 0);
    assert_int_equal(coll_count(l, "a"), 40);
    assert_int_equal(cl_ledger_close(l), CL_OK);

    /* 5. a row lost from the middle of "a", its neighbours and the statistics intact: every scan
     * that reads the row after the gap refuses it, whether it starts before the gap, inside it or
     * at the lost row; a page that starts after the gap is whole and lists */
    index_rows_edit(dir, "a", s[31], NULL, 0, 0); /* i = 31: "a"; s[32] names it, s[29] before */
    l = reopen(dir, 0);
    const uint64_t starts[] = {1, s[29], s[30], s[31]};
    for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++) {
        memset(got, 0, sizeof got);
        assert_int_equal(cl_ledger_collection_scan(l, "a", 1, starts[i], UINT64_MAX, 0,
                                                   collect_seqno, got, &next),
                         CL_ECORRUPT);
    }
    memset(got, 0, sizeof got);
    assert_int_equal(
        cl_ledger_collection_scan(l, "a", 1, s[32] + 1, UINT64_MAX, 0, collect_seqno, got, &next),
        CL_OK);
    assert_int_equal(got[0], 18); /* s[34] .. s[59] of "a" */
    assert_true(index_rebuild_asked(dir));
    assert_int_equal(cl_ledger_close(l), CL_OK);
    l = reopen(dir, 0);
    assert_int_equal(coll_count(l, "a"), 40);
    memset(got, 0, sizeof got);
    assert_int_equal(
        cl_ledger_collection_scan(l, "a", 1, 1, UINT64_MAX, 0, collect_seqno, got, &next), CL_OK);
    assert_int_equal(got[0], 40);
    assert_int_equal(cl_ledger_close(l), CL_OK);

    /* 6. an index of format 1 (collection rows without the link to the row before): the next
     * open rebuilds it, and scans are whole */
    {
        static const char vkey[] = "\0cl_index.version";
        const uint8_t one[8] = {1, 0, 0, 0, 0, 0, 0, 0}; /* u64 little-endian */
        index_row(dir, "meta", (const uint8_t *)vkey, sizeof vkey - 1, one, 8);
        char log[700];
        snprintf(log, sizeof log, "%s-log", dir);
        assert_int_equal(open_logged(dir, log, &l), CL_OK);
        size_t n = 0;
        char *m = tu_read_file(log, &n);
        assert_non_null(strstr(m, "index of another format"));
        free(m);
        unlink(log);
    }
    memset(got, 0, sizeof got);
    assert_int_equal(
        cl_ledger_collection_scan(l, "a", 1, 1, UINT64_MAX, 0, collect_seqno, got, &next), CL_OK);
    assert_int_equal(got[0], 40);
    assert_int_equal(cl_ledger_close(l), CL_OK);

    /* 7. a location naming a chunk the ledger does not have, then one with a length no frame can
     * have (it used to size a 4 GiB allocation): refused before any read, rebuilt at the next open
     */
    for (int v = 0; v < 2; v++) {
        /* the 40-byte record: u64 chunk_start, u64 offset, u32 length, ... (little-endian) */
        uint8_t kb[8], rec[40] = {0};
        be64_put(kb, s[12]);
        rec[0] = v == 0 ? 0x77 : 1; /* no chunk starts at seqno 0x77; the first starts at 1 */
        uint32_t len = v == 0 ? 64 : 0xffffffffu;
        memcpy(rec + 16, &len, 4);
        index_row(dir, "entries", kb, 8, rec, sizeof rec);
        l = reopen(dir, 0);
        assert_false(index_rebuild_asked(dir));
        assert_int_equal(cl_ledger_read(l, s[12], &e), CL_ECORRUPT);
        assert_true(index_rebuild_asked(dir));
        assert_int_equal(cl_ledger_close(l), CL_OK);
        l = reopen(dir, 0);
        expect_entry(l, s[12], "b", "rows");
        assert_int_equal(cl_ledger_close(l), CL_OK);
    }

    /* 8. an internal table's row lost (the ledger secrets' only row, seqno 3): a table scan is
     * refused and asks for a rebuild like a user collection's (it answered CL_EDB, and nothing) */
    {
        uint8_t kb[12] = {1, 't', (uint8_t)('0' + CL_TABLE_SECRETS), 0};
        be64_put(kb + 4, 3);
        index_row(dir, "collections", kb, sizeof kb, NULL, 0);
    }
    l = reopen(dir, 0);
    int rows = 0;
    assert_int_equal(cl_ledger_table_scan(l, CL_TABLE_SECRETS, count_rows, &rows), CL_ECORRUPT);
    assert_true(index_rebuild_asked(dir));
    assert_int_equal(cl_ledger_close(l), CL_OK);
    l = reopen(dir, 0);
    rows = 0;
    assert_int_equal(cl_ledger_table_scan(l, CL_TABLE_SECRETS, count_rows, &rows), CL_OK);
    assert_int_equal(rows, 1);
    assert_int_equal(cl_ledger_close(l), CL_OK);

    /* 9. a location that holds a whole frame of another seqno (s[13]'s record under s[12]): the
     * frame decodes and its checksum holds, but it is not this seqno's: refused, rebuilt */
    {
        uint8_t kb[8], rec[40];
        be64_put(kb, s[13]);
        index_row_get(dir, "entries", kb, 8, rec, sizeof rec);
        be64_put(kb, s[12]);
        index_row(dir, "entries", kb, 8, rec, sizeof rec);
    }
    l = reopen(dir, 0);
    assert_false(index_rebuild_asked(dir));
    assert_int_equal(cl_ledger_read(l, s[12], &e), CL_ECORRUPT);
    assert_true(index_rebuild_asked(dir));
    assert_int_equal(cl_ledger_close(l), CL_OK);
    l = reopen(dir, 0);
    expect_entry(l, s[12], "b", "rows");
    assert_int_equal(cl_ledger_close(l), CL_OK);

    /* 10. a location one byte off the frame of s[14], then one byte short of it: no whole frame
     * there, but the chunk holds it: the location is wrong (they answered 500 and asked for
     * nothing) */
    uint8_t kb14[8], rec14[40];
    be64_put(kb14, s[14]);
    index_row_get(dir, "entries", kb14, 8, rec14, sizeof rec14);
    for (int v = 0; v < 2; v++) {
        uint8_t rec[40];
        memcpy(rec, rec14, sizeof rec);
        if (v == 0)
            cl_store_u64(rec + 8, cl_load_u64(rec + 8) + 1);
        else
            cl_store_u32(rec + 16, cl_load_u32(rec + 16) - 1);
        index_row(dir, "entries", kb14, 8, rec, sizeof rec);
        l = reopen(dir, 0);
        assert_int_equal(cl_ledger_read(l, s[14], &e), CL_ECORRUPT);
        assert_true(index_rebuild_asked(dir));
        assert_int_equal(cl_ledger_close(l), CL_OK);
        l = reopen(dir, 0);
        expect_entry(l, s[14], "a", "rows");
        assert_int_equal(cl_ledger_close(l), CL_OK);
    }
    /* ... while a frame whose bytes are damaged in the chunk is the chunk's damage: refused, and
     * no index rebuild asked (damaged and mended with the ledger open, so no open cuts it) */
    {
        char chunk[900] = "";
        char lp[600];
        snprintf(lp, sizeof lp, "%s/ledger", dir);
        DIR *d = opendir(lp);
        assert_non_null(d);
        unsigned long long st;
        for (struct dirent *de; (de = readdir(d)) != NULL;)
            if (sscanf(de->d_name, "ledger_%llu", &st) == 1 && st == cl_load_u64(rec14))
                snprintf(chunk, sizeof chunk, "%s/%s", lp, de->d_name);
        closedir(d);
        assert_true(chunk[0] != '\0');
        uint64_t at = cl_load_u64(rec14 + 8) + cl_load_u32(rec14 + 16) / 2;
        l = reopen(dir, 0);
        assert_int_equal(tu_flip_byte(chunk, at, 0x40), 0);
        char log[700];
        snprintf(log, sizeof log, "%s-log", dir);
        int saved = log_begin(log);
        int rc = cl_ledger_read(l, s[14], &e);
        assert_true(log_end(saved, log, "cannot be read from the chunk"));
        assert_int_equal(rc, CL_ECORRUPT);
        assert_false(index_rebuild_asked(dir));
        assert_int_equal(tu_flip_byte(chunk, at, 0x40), 0);
        expect_entry(l, s[14], "a", "rows");
        assert_int_equal(cl_ledger_close(l), CL_OK);
    }
    tu_rmrf(dir);
}

/* An internal table's scan holds each listed row to its table, like a user collection's listing:
 * a users-table row that names a user entry, linked in consistently, is refused and asks for a
 * rebuild (it was handed to the caller as a user: the users table decides who may do what). */
static void test_table_row_forged(void **state)
{
    (void)state;
    const char *dir = tu_tempdir("cl-ledger");
    cl_ledger *l = make(dir, 0, 0);
    uint64_t a = 0, x = 0, c = 0;
    assert_int_equal(
        cl_ledger_append_internal(l, 2, CL_TABLE_USERS, CL_OP_PUT, "u1", 2, "{}", 2, &a), CL_OK);
    put(l, "c", "not a user", &x);
    assert_int_equal(
        cl_ledger_append_internal(l, 2, CL_TABLE_USERS, CL_OP_PUT, "u2", 2, "{}", 2, &c), CL_OK);
    assert_int_equal(cl_ledger_sign(l, 2, NULL), CL_OK);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    char users[4] = {'\x01', 't', (char)('0' + CL_TABLE_USERS), 0};
    index_rows_edit(dir, NULL, 0, users, x, a); /* a <- x <- c */
    index_rows_edit(dir, NULL, 0, users, c, x);
    l = reopen(dir, 0);
    int rows = 0;
    assert_int_equal(cl_ledger_table_scan(l, CL_TABLE_USERS, count_rows, &rows), CL_ECORRUPT);
    assert_true(index_rebuild_asked(dir));
    assert_int_equal(cl_ledger_close(l), CL_OK);
    l = reopen(dir, 0);
    rows = 0;
    assert_int_equal(cl_ledger_table_scan(l, CL_TABLE_USERS, count_rows, &rows), CL_OK);
    assert_int_equal(rows, 2);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    tu_rmrf(dir);
}

/* Every row of the index's meta table whose key starts with `prefix`: deleted (val NULL) or given
 * the value val. */
static void index_meta_edit(const char *dir, const char *prefix, const char *val)
{
    char path[600];
    snprintf(path, sizeof path, "%s/index", dir);
    MDB_env *env;
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    MDB_dbi dbi;
    assert_int_equal(tu_lmdb_begin(path, "meta", 0, &env, &txn, &dbi), 0);
    assert_int_equal(mdb_cursor_open(txn, dbi, &cur), 0);
    size_t n = strlen(prefix);
    MDB_val k = {n, (void *)prefix}, v;
    int edited = 0;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size >= n && memcmp(k.mv_data, prefix, n) == 0) {
        edited++;
        if (val != NULL) {
            MDB_val nv = {strlen(val), (void *)val};
            assert_int_equal(mdb_cursor_put(cur, &k, &nv, MDB_CURRENT), 0);
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        } else {
            assert_int_equal(mdb_cursor_del(cur, 0), 0); /* the cursor now sits on the next row */
            rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
        }
    }
    mdb_cursor_close(cur);
    assert_true(edited > 0);
    assert_int_equal(tu_lmdb_end(env, txn, 1), 0);
}

/* A receipt goes through the index three times: the signatures' collection (the next signature
 * after the entry), that signature's location, and the signing node's certificate. Each kind of
 * damage there is refused with CL_ECORRUPT and asks for a rebuild, never served as a receipt that
 * does not verify; a marker that could not be written is written by the next read that finds the
 * damage. */
static void test_receipt_index_damage(void **state)
{
    (void)state;
    const char *dir = tu_tempdir("cl-ledger");
    cl_ledger *l = make(dir, 0, 0);
    uint64_t s[30], sig[3];
    put_signed(l, "r", "receipts", 30, 10, s, sig);
    char *pem = strdup(cl_ledger_service_cert_pem(l));
    assert_int_equal(cl_ledger_close(l), CL_OK);
    json_t *j = NULL;
    char log[700];
    snprintf(log, sizeof log, "%s-log", dir);

    /* 1. the middle signature's row lost from the signatures' collection; the first read that
     * finds it cannot write its marker (a failed rename), the next one does */
    index_rows_edit(dir, "\x01sig", sig[1], NULL, 0, 0);
    cl_fs_fault *ff = NULL;
    assert_int_equal(cl_fs_fault_new(cl_fs_posix(), &ff), CL_OK);
    l = open_fs(dir, cl_fs_fault_fs(ff));
    cl_fs_fault_arm(ff, CL_FAULT_RENAME, 0, 0);
    int saved = log_begin(log);
    int rc = cl_ledger_receipt(l, s[12], &j);
    assert_true(log_end(saved, log, "the marker could not be written"));
    assert_int_equal(rc, CL_ECORRUPT);
    assert_null(j);
    assert_true(cl_fs_fault_fired(ff));
    assert_false(index_rebuild_asked(dir));
    expect_receipt(l, s[25], pem); /* its signature's row and the row before it are whole */
    assert_int_equal(cl_ledger_receipt(l, s[12], &j), CL_ECORRUPT);
    assert_true(index_rebuild_asked(dir));
    assert_int_equal(cl_ledger_close(l), CL_OK);
    cl_fs_fault_free(ff);
    l = reopen(dir, 0);
    expect_receipt(l, s[12], pem);
    assert_int_equal(cl_ledger_close(l), CL_OK);

    /* 2. an entry listed among the signatures, linked in consistently (sig[0] <- s[15] <- sig[1]):
     * the chain holds, so the receipt of s[12] finds s[15] as its signature, and refuses it */
    index_rows_edit(dir, NULL, 0, "\x01sig", s[15], sig[0]);
    index_rows_edit(dir, NULL, 0, "\x01sig", sig[1], s[15]);
    l = reopen(dir, 0);
    assert_int_equal(cl_ledger_receipt(l, s[12], &j), CL_ECORRUPT);
    assert_null(j);
    assert_true(index_rebuild_asked(dir));
    assert_int_equal(cl_ledger_close(l), CL_OK);
    l = reopen(dir, 0);
    expect_receipt(l, s[12], pem);
    assert_int_equal(cl_ledger_close(l), CL_OK);

    /* 3. the signing node's certificate row lost (it answered CL_ENOENT, a 500, and asked for no
     * rebuild), empty, not JSON, without its certificate, or with an empty one (a 404 before) */
    static const char *const node_rows[] = {NULL, "", "{\"cert\":", "{\"other\":1}",
                                            "{\"cert\":\"\"}"};
    for (size_t v = 0; v < sizeof node_rows / sizeof node_rows[0]; v++) {
        index_meta_edit(dir, "node:", node_rows[v]); /* then empty, not JSON, without "cert" */
        l = reopen(dir, 0);
        assert_int_equal(cl_ledger_receipt(l, s[3], &j), CL_ECORRUPT);
        assert_null(j);
        assert_true(index_rebuild_asked(dir));
        assert_int_equal(cl_ledger_close(l), CL_OK);
        l = reopen(dir, 0);
        expect_receipt(l, s[3], pem);
        assert_int_equal(cl_ledger_check(l), CL_OK);
        assert_int_equal(cl_ledger_close(l), CL_OK);
    }
    free(pem);
    tu_rmrf(dir);
}

static void test_index_torn_mid_replay(void **state)
{
    (void)state;
    const char *dir = tu_tempdir("cl-ledger");
    char old[600], work[600], log[600], mdb[700];
    snprintf(old, sizeof old, "%s-old", dir);
    snprintf(work, sizeof work, "%s-work", dir);
    snprintf(log, sizeof log, "%s-log", dir);
    cl_ledger_opts o = {0};
    o.dir = dir;
    o.boot_id = "boot-1";
    cl_ledger *l = NULL;
    assert_int_equal(cl_ledger_create(&o, &l), CL_OK);
    for (int i = 0; i < 1500; i++)
        put(l, (const char[]){(char)('a' + i % 5), 0}, "torn in the middle of a replay", NULL);
    assert_int_equal(cl_ledger_sign(l, 2, NULL), CL_OK);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    assert_int_equal(tu_copy_tree(dir, old), 0);
    l = open_boot(dir, "boot-1");
    for (int i = 0; i < 1500; i++)
        put(l, (const char[]){(char)('a' + i % 5), 0}, "torn in the middle of a replay", NULL);
    assert_int_equal(cl_ledger_sign(l, 2, NULL), CL_OK);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    snprintf(mdb, sizeof mdb, "%s/index/data.mdb", old);
    char to[700];
    snprintf(to, sizeof to, "%s/index/data.mdb", dir);
    assert_int_equal(tu_copy_tree(mdb, to), 0); /* the index is now 1500 entries behind */

    /* the pages the old index uses: up to its last non-zero page */
    int fd = open(mdb, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    long psz = sysconf(_SC_PAGESIZE), used = 0;
    static char page[1 << 16], junk[1 << 16];
    assert_true(psz <= (long)sizeof page);
    for (long p = 0; pread(fd, page, (size_t)psz, p * psz) == psz; p++) {
        for (long i = 0; i < psz; i++)
            if (page[i] != 0) {
                used = p + 1;
                break;
            }
    }
    close(fd);
    assert_true(used > 10);
    memset(junk, 0xA5, sizeof junk);
    int mid = 0;
    for (long p = 2; p < used; p++) {
        tu_rmrf(work);
        assert_int_equal(tu_copy_tree(dir, work), 0);
        snprintf(to, sizeof to, "%s/index/data.mdb", work);
        fd = open(to, O_WRONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, junk, (size_t)psz, p * psz), psz);
        close(fd);
        assert_int_equal(open_logged(work, log, &l), CL_OK);
        char *out = tu_read_file(log, NULL);
        assert_non_null(out);
        int rebuilt = strstr(out, "rebuilding it from the chunks") != NULL;
        mid += strstr(out, "failed while it was brought up to date") != NULL;
        free(out);
        if (rebuilt) {
            assert_int_equal(coll_count_all(l, "a"), 600);
            assert_int_equal(coll_count_all(l, "e"), 600);
            assert_int_equal(cl_ledger_check(l), CL_OK);
        }
        assert_int_equal(cl_ledger_close(l), CL_OK);
    }
    assert_true(mid >= 1);
    tu_rmrf(work);
    tu_rmrf(old);
    unlink(log);
    tu_rmrf(dir);
}

/* Commands sealed for the raft log: round trip, no plaintext, tamper and truncation detected,
 * still unsealable after a secret rotation and a reopen. */
static void test_seal_unseal(void **state)
{
    const char *dir = tu_tempdir("cl-ledger");
    cl_ledger *l = make(dir, 1, 0);
    const char *msg = "command with SECRET-CONTENTS";
    cl_buf sealed = CL_BUF_INIT, plain = CL_BUF_INIT;
    assert_int_equal(cl_ledger_seal(l, msg, strlen(msg), &sealed), CL_OK);
    assert_null(memmem(sealed.data, sealed.len, "SECRET", 6));
    assert_int_equal(cl_ledger_unseal(l, sealed.data, sealed.len, &plain), CL_OK);
    assert_int_equal(plain.len, strlen(msg));
    assert_memory_equal(plain.data, msg, plain.len);
    sealed.data[sealed.len - 1] ^= 1;
    assert_int_equal(cl_ledger_unseal(l, sealed.data, sealed.len, &plain), CL_EDECRYPT);
    sealed.data[sealed.len - 1] ^= 1;
    assert_int_equal(cl_ledger_unseal(l, sealed.data, 10, &plain), CL_EFORMAT);
    /* v2: a key of its own (salt), IVs from a counter: the next seal has the next IV */
    assert_int_equal(sealed.data[7], 2);
    cl_buf second = CL_BUF_INIT, third = CL_BUF_INIT;
    assert_int_equal(cl_ledger_seal(l, msg, strlen(msg), &second), CL_OK);
    assert_memory_equal(second.data, sealed.data, 24); /* secret and salt */
    assert_int_equal(cl_load_u64(sealed.data + 24), 0);
    assert_int_equal(cl_load_u64(second.data + 24), 1);
    assert_true(memcmp(second.data + 24, sealed.data + 24, sealed.len - 24) != 0);
    sealed.data[10] ^= 1; /* the salt names the key */
    assert_int_equal(cl_ledger_unseal(l, sealed.data, sealed.len, &plain), CL_EDECRYPT);
    sealed.data[10] ^= 1;
    sealed.data[7] = 1; /* no such version */
    assert_int_equal(cl_ledger_unseal(l, sealed.data, sealed.len, &plain), CL_EFORMAT);
    sealed.data[7] = 2;
    /* v1, as earlier builds wrote it (a random IV under the secret itself), is still read */
    char sp[600];
    snprintf(sp, sizeof sp, "%s/node/ledger_secrets", dir);
    size_t sn = 0;
    uint8_t *sf = (uint8_t *)tu_read_file(sp, &sn);
    assert_true(sf != NULL && sn >= 52);
    cl_buf v1 = CL_BUF_INIT;
    assert_int_equal(cl_buf_reserve(&v1, 36 + strlen(msg)), CL_OK);
    memcpy(v1.data, sf + 12, 8); /* appliesFrom of the first secret */
    memset(v1.data + 8, 0x5a, 12);
    assert_int_equal(cl_aead_encrypt(sf + 20, v1.data + 8, (const uint8_t *)"cledger command v1",
                                     18, (const uint8_t *)msg, strlen(msg), v1.data + 36,
                                     v1.data + 20),
                     CL_OK);
    v1.len = 36 + strlen(msg);
    cl_wipe(sf, sn);
    free(sf);
    assert_int_equal(cl_ledger_unseal(l, v1.data, v1.len, &plain), CL_OK);
    assert_memory_equal(plain.data, msg, plain.len);
    /* a rotation: the new secret gets its own salt */
    assert_int_equal(cl_ledger_rotate_secret(l, 2), CL_OK);
    assert_int_equal(cl_ledger_sync(l), CL_OK);
    assert_int_equal(cl_ledger_seal(l, msg, strlen(msg), &third), CL_OK);
    assert_true(memcmp(third.data, sealed.data, 24) != 0);
    assert_int_equal(cl_load_u64(third.data + 24), 0);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    /* another process: a new salt; what earlier ones sealed still opens, in any order */
    l = reopen(dir, 0);
    cl_buf fourth = CL_BUF_INIT;
    assert_int_equal(cl_ledger_seal(l, msg, strlen(msg), &fourth), CL_OK);
    assert_true(memcmp(fourth.data + 8, third.data + 8, 16) != 0);
    cl_buf *all[] = {&sealed, &third, &fourth, &v1, &second, &fourth, &sealed};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        assert_int_equal(cl_ledger_unseal(l, all[i]->data, all[i]->len, &plain), CL_OK);
        assert_int_equal(plain.len, strlen(msg));
        assert_memory_equal(plain.data, msg, plain.len);
    }
    assert_int_equal(cl_ledger_close(l), CL_OK);
    cl_buf_free(&sealed);
    cl_buf_free(&second);
    cl_buf_free(&third);
    cl_buf_free(&fourth);
    cl_buf_free(&v1);
    cl_buf_free(&plain);
    tu_rmrf(dir);
}

/* Under consensus (external durability) a group commit publishes entries without fdatasync;
 * sync_hard and a chunk rollover still force it, and reopening after a hard sync keeps all. */
static void test_external_durability(void **state)
{
    const char *dir = tu_tempdir("cl-ledger");
    cl_ledger *l = make(dir, 0, 0);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    cl_fs_fault *ff = NULL;
    assert_int_equal(cl_fs_fault_new(cl_fs_posix(), &ff), CL_OK);
    cl_ledger_opts o = {0};
    o.dir = dir;
    o.fs = cl_fs_fault_fs(ff);
    assert_int_equal(cl_ledger_open(&o, &l), CL_OK);
    cl_ledger_set_external_durability(l, 1);
    uint64_t s;
    long syncs = cl_fs_fault_count(ff, CL_FAULT_SYNC);
    for (int i = 0; i < 20; i++) {
        put(l, "c", "external", &s);
        assert_int_equal(cl_ledger_sync(l), CL_OK);
    }
    assert_int_equal(cl_fs_fault_count(ff, CL_FAULT_SYNC), syncs); /* no fdatasync */
    expect_entry(l, s, "c", "external");                           /* but readable */
    assert_int_equal(cl_ledger_sign(l, 2, NULL), CL_OK);
    assert_int_equal(cl_ledger_sync_hard(l), CL_OK);
    assert_true(cl_fs_fault_count(ff, CL_FAULT_SYNC) > syncs);
    expect_receipt(l, s, cl_ledger_service_cert_pem(l));
    assert_int_equal(cl_ledger_close(l), CL_OK);
    cl_fs_fault_free(ff);
    l = reopen(dir, 0);
    expect_entry(l, s, "c", "external");
    assert_int_equal(cl_ledger_close(l), CL_OK);
    tu_rmrf(dir);
}

/* External durability on the real file system: more than a MiB of entries goes through the
 * writeback hint (sync_file_range) without any fdatasync until sync_hard; everything reads back
 * after reopening, and the hint on a file system without the operation is a no-op. */
static void test_external_durability_writeback(void **state)
{
    (void)state;
    const char *dir = tu_tempdir("cl-ledger");
    cl_ledger *l = make(dir, 0, 0);
    cl_ledger_set_external_durability(l, 1);
    char big[4000];
    memset(big, 'w', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    uint64_t s = 0;
    for (int i = 0; i < 400; i++) { /* ~1.6 MB */
        put(l, "wb", big, &s);
        assert_int_equal(cl_ledger_sync(l), CL_OK);
    }
    assert_int_equal(cl_ledger_sign(l, 2, NULL), CL_OK);
    assert_int_equal(cl_ledger_sync_hard(l), CL_OK);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    l = reopen(dir, 0);
    expect_entry(l, s, "wb", big);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    tu_rmrf(dir);
    /* the fault file system has no writeback operation: the hint reports success */
    cl_fs_fault *ff = NULL;
    assert_int_equal(cl_fs_fault_new(cl_fs_posix(), &ff), CL_OK);
    cl_fs *fs = cl_fs_fault_fs(ff);
    const char *d2 = tu_tempdir("cl-ledger");
    char path[512];
    snprintf(path, sizeof path, "%s/f", d2);
    cl_file *f = NULL;
    assert_int_equal(cl_fs_open(fs, path, CL_FS_RDWR | CL_FS_CREAT, 0600, &f), CL_OK);
    assert_int_equal(cl_file_pwrite(f, "abc", 3, 0), CL_OK);
    assert_int_equal(cl_file_writeback(f, 0, 3), CL_OK);
    cl_file_close(f);
    f = NULL;
    assert_int_equal(cl_fs_open(cl_fs_posix(), path, CL_FS_RDWR, 0600, &f), CL_OK);
    assert_int_equal(cl_file_writeback(f, 0, 3), CL_OK); /* posix: sync_file_range */
    cl_file_close(f);
    cl_fs_fault_free(ff);
    tu_rmrf(d2);
}

/* External durability syncs the Merkle tree and the index only every few rollovers: after a
 * power cut that drops everything not synced, open replays the missing chunks and every entry
 * (with its receipt) is back. */
/* The size in the Merkle tree's durable marker (the newer valid slot; merkle.h has the layout,
 * the checksum is not checked here). */
static uint64_t merkle_marker(const char *dir)
{
    char p[512];
    snprintf(p, sizeof p, "%s/merkle/synced_size", dir);
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    uint8_t rec[24];
    uint64_t best_gen = 0, size = 0;
    for (long off = 0; off <= 512; off += 512) {
        if (fseek(f, off, SEEK_SET) != 0 || fread(rec, 1, sizeof rec, f) != sizeof rec)
            continue;
        uint64_t gen = cl_load_u64(rec);
        if (gen >= best_gen) {
            best_gen = gen;
            size = cl_load_u64(rec + 8);
        }
    }
    fclose(f);
    return size;
}

static void lagging_derived_state(uint64_t seed)
{
    const char *dir = tu_tempdir("cl-ledger");
    cl_ledger *l = make(dir, 0, 4096);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    cl_fs_fault *ff = NULL;
    assert_int_equal(cl_fs_fault_new(cl_fs_posix(), &ff), CL_OK);
    cl_ledger_opts o = {0};
    o.dir = dir;
    o.fs = cl_fs_fault_fs(ff);
    assert_int_equal(cl_ledger_open(&o, &l), CL_OK);
    cl_ledger_set_external_durability(l, 1);
    char text[300];
    uint64_t seqnos[200];
    long most = 0;
    for (int i = 0; i < 200; i++) { /* ~60 KB: over a dozen 4 KiB chunks */
        snprintf(text, sizeof text, "entry %d %0200d", i, i);
        put(l, "lag", text, &seqnos[i]);
        long before = cl_fs_fault_count(ff, CL_FAULT_SYNC);
        if (i % 5 == 4) /* a full chunk rolls over when a signature is synced */
            assert_int_equal(cl_ledger_sign(l, cur_view, NULL), CL_OK);
        long did = cl_fs_fault_count(ff, CL_FAULT_SYNC) - before;
        most = did > most ? did : most;
        before = cl_fs_fault_count(ff, CL_FAULT_SYNC);
        assert_int_equal(cl_ledger_sync(l), CL_OK);
        did = cl_fs_fault_count(ff, CL_FAULT_SYNC) - before;
        most = did > most ? did : most;
    }
    /* A rollover syncs the chunk and the directory twice; the tree's files are synced in later
     * calls, one each (all of them at once took a dozen). */
    assert_true(most <= 3);
    /* and those rounds do finish: the tree's durable marker has moved past the first chunks */
    assert_true(merkle_marker(dir) >= 50);
    assert_int_equal(cl_ledger_sync_hard(l), CL_OK); /* the chunks are durable */
    /* power cut: every byte not synced through the fs is dropped */
    cl_fs_fault_arm(ff, CL_FAULT_WRITE | CL_FAULT_SYNC | CL_FAULT_OPEN, 0, 1);
    uint64_t extra;
    put(l, "lag", "after the cut", &extra);
    assert_true(cl_ledger_sync(l) < 0); /* the fault fs is down */
    cl_ledger_abandon(l);
    assert_int_equal(cl_fs_fault_crash_apply(ff, seed), CL_OK);
    cl_fs_fault_free(ff);
    l = reopen_boot(dir, 4096, "after-the-power-cut"); /* the machine stopped: another boot */
    for (int i = 0; i < 200; i++) {
        snprintf(text, sizeof text, "entry %d %0200d", i, i);
        expect_entry(l, seqnos[i], "lag", text);
    }
    expect_receipt(l, seqnos[150], cl_ledger_service_cert_pem(l));
    expect_receipt(l, seqnos[194], cl_ledger_service_cert_pem(l));
    assert_int_equal(cl_ledger_close(l), CL_OK);
    tu_rmrf(dir);
}

static void test_external_durability_lagging_derived_state(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 6; seed++) /* unsynced bytes kept, dropped or torn */
        lagging_derived_state(seed);
}

/* A secret rotation whose record a truncation cuts (it was never signed): the secret goes with it.
 * Kept, the next entry at the record's seqno was encrypted under it with the record's IV (the
 * record holds the previous secret under the new one: a known write gave it away), and the
 * entries under it had no record: the next open refused the ledger (CL_ECORRUPT). */
static void test_truncate_drops_cut_secret(void **state)
{
    (void)state;
    const char *dir = tu_tempdir("cl-ledger");
    cl_ledger *l = make(dir, 1, 0);
    uint64_t s0;
    put(l, "c", "before", &s0);
    assert_int_equal(cl_ledger_sign(l, cur_view, NULL), CL_OK);
    assert_int_equal(cl_ledger_sync(l), CL_OK);
    uint64_t signed_at = cl_ledger_signed_seqno(l);
    char p[600];
    snprintf(p, sizeof p, "%s/node/ledger_secrets", dir);
    size_t n1 = 0, n2 = 0;
    free(tu_read_file(p, &n1));
    assert_int_equal(cl_ledger_rotate_secret(l, cur_view), CL_OK);
    assert_int_equal(cl_ledger_sync(l), CL_OK);
    free(tu_read_file(p, &n2));
    assert_true(n2 > n1);
    assert_int_equal(cl_ledger_truncate(l, signed_at), CL_OK);
    free(tu_read_file(p, &n2));
    assert_int_equal(n2, n1); /* the cut secret is gone from the file too */
    uint64_t s[4];
    for (int i = 0; i < 4; i++)
        put(l, "c", "after the cut", &s[i]);
    assert_int_equal(s[0], signed_at + 1);
    assert_int_equal(cl_ledger_sign(l, cur_view, NULL), CL_OK);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    l = reopen(dir, 0);
    expect_entry(l, s0, "c", "before");
    for (int i = 0; i < 4; i++)
        expect_entry(l, s[i], "c", "after the cut");
    assert_int_equal(cl_ledger_close(l), CL_OK);
    tu_rmrf(dir);
}

/* Views never go down and fit the IV's 32 bits: cledgerd's new view at each start takes the last
 * entry's view as the highest the ledger holds. A refused append changes nothing. */
static void test_views_never_go_down(void **state)
{
    (void)state;
    const char *dir = tu_tempdir("cl-ledger");
    cl_ledger *l = make(dir, 1, 0);
    static const uint8_t c[] = "x";
    uint64_t s1 = 0, s = 0;
    assert_int_equal(cl_ledger_append_user(l, 3, "c", 1, c, 1, &s1), CL_OK);
    assert_int_equal(cl_ledger_append_user(l, 2, "c", 1, c, 1, &s), CL_EINVAL);
    assert_int_equal(cl_ledger_sign(l, 2, NULL), CL_EINVAL);
    assert_int_equal(cl_ledger_append_user(l, 1ull << 32, "c", 1, c, 1, &s), CL_ERANGE);
    assert_int_equal(cl_ledger_last_seqno(l), s1);
    assert_int_equal(cl_ledger_sign(l, 3, NULL), CL_OK);
    assert_int_equal(cl_ledger_sync(l), CL_OK);
    uint64_t signed_at = cl_ledger_signed_seqno(l);
    assert_int_equal(signed_at, s1 + 1);
    assert_int_equal(cl_ledger_append_user(l, 5, "c", 1, c, 1, &s), CL_OK);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    /* after a reopen the last entry's view is read back */
    l = reopen(dir, 0);
    assert_int_equal(cl_ledger_append_user(l, 4, "c", 1, c, 1, &s), CL_EINVAL);
    /* after a cut, from the new last entry: a replay in the cut entry's own view is taken */
    assert_int_equal(cl_ledger_truncate(l, signed_at), CL_OK);
    assert_int_equal(cl_ledger_append_user(l, 2, "c", 1, c, 1, &s), CL_EINVAL);
    assert_int_equal(cl_ledger_append_user(l, 3, "c", 1, c, 1, &s), CL_OK);
    assert_int_equal(s, signed_at + 1);
    assert_int_equal(cl_ledger_append_user(l, UINT32_MAX, "c", 1, c, 1, &s), CL_OK);
    assert_int_equal(cl_ledger_sign(l, UINT32_MAX, NULL), CL_OK);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    l = reopen(dir, 0);
    assert_int_equal(cl_ledger_check(l), CL_OK);
    assert_int_equal(cl_ledger_close(l), CL_OK);
    tu_rmrf(dir);
}

int main(void)
{
    cl_log_set_level(CL_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_append_read_receipt),
        cmocka_unit_test(test_unsigned_entry_has_no_receipt),
        cmocka_unit_test(test_bad_collection_rejected),
        cmocka_unit_test(test_crc32c),
        cmocka_unit_test(test_private_ledger_encrypts),
        cmocka_unit_test(test_secrets_file_checked),
        cmocka_unit_test(test_public_ledger_not_encrypted_and_type_fixed),
        cmocka_unit_test(test_rollover_and_reads_across_chunks),
        cmocka_unit_test(test_service_identity_rotation),
        cmocka_unit_test(test_service_identity_rotation_undone),
        cmocka_unit_test(test_identity_files_checked),
        cmocka_unit_test(test_truncate_unsigned_tail),
        cmocka_unit_test(test_truncate_checks_index),
        cmocka_unit_test(test_sign_deterministic),
        cmocka_unit_test(test_type_file_checked),
        cmocka_unit_test(test_derived_state_rebuilt),
        cmocka_unit_test(test_torn_index_rebuilt),
        cmocka_unit_test(test_truncate_drops_cut_secret),
        cmocka_unit_test(test_views_never_go_down),
        cmocka_unit_test(test_index_after_os_crash),
        cmocka_unit_test(test_index_damage_refused),
        cmocka_unit_test(test_secrets_check_index_damage),
        cmocka_unit_test(test_location_in_another_chunk),
        cmocka_unit_test(test_location_view_checked),
        cmocka_unit_test(test_receipt_index_damage),
        cmocka_unit_test(test_table_row_forged),
        cmocka_unit_test(test_index_torn_mid_replay),
        cmocka_unit_test(test_tree_frontier_damage_rebuilt),
        cmocka_unit_test(test_committed_chunk_cut_refused),
        cmocka_unit_test(test_older_chunk_ends_checked),
        cmocka_unit_test(test_tree_tail_rehashed),
        cmocka_unit_test(test_tree_proof_damage_refused),
        cmocka_unit_test(test_tampered_entry_refused),
        cmocka_unit_test(test_consistency_between_signatures),
        cmocka_unit_test(test_keyed_append_and_raft_index),
        cmocka_unit_test(test_collections_and_tables),
        cmocka_unit_test(test_seal_unseal),
        cmocka_unit_test(test_external_durability),
        cmocka_unit_test(test_external_durability_writeback),
        cmocka_unit_test(test_external_durability_lagging_derived_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
