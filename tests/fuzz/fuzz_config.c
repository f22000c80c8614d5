/*
 * fuzz_config.c — cledgerd's config file parser (src/apps/cledgerd/config.c).
 *
 * The input is the file's bytes. Its verdict is re-derived here, independently, from the
 * document as cl_json_parse builds it (that parser has its own target, fuzz_json). Properties
 * checked (abort on violation):
 *   - the file is accepted iff it is a JSON object whose keys are all known settings with valid
 *     values (strings; sigIntervalMs, sigMaxEntries 1..3600000; maxBodyBytes 1..64 MiB;
 *     httpThreads 0..64; raftLogIo "auto", "io_uring" or "threads");
 *   - on success, `set` names exactly the file's keys; every string set is non-NULL, NUL-free and
 *     equal to the JSON string, every other one NULL; every number is in its range and equal to
 *     the JSON value;
 *   - on failure, the message is non-empty and NUL-terminated within the buffer, nothing is
 *     written past it, a CLEDGERD_CONFIG_ERR_CAP buffer holds it uncut and a smaller one cuts it
 *     (same prefix); it is the JSON parser's message, "not a JSON object", or names the first
 *     refused member in file order ("unknown setting \"KEY\"", "\"KEY\" must be ...");
 *   - with allocations failing from an input-chosen point on, the parse gives the same result or
 *     fails with an out-of-memory message;
 *   - cledgerd_config_free releases every string (LeakSanitizer).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "apps/cledgerd/config.h"
#include "base/alloc.h"
#include "base/json.h"
#include "consensus/rlog.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CANARY 16

static int int_in(const json_t *v, json_int_t lo, json_int_t hi)
{
    return json_is_integer(v) && json_integer_value(v) >= lo && json_integer_value(v) <= hi;
}

/* The file's member k: v. 1: a valid value; 0: a refused value; -1: an unknown key. *bit: the
 * setting's CLEDGERD_CFG_* bit. */
static int judge(const char *k, const json_t *v, unsigned *bit)
{
    static const struct {
        const char *key;
        unsigned bit;
    } strs[] = {{"dataDir", CLEDGERD_CFG_DATA_DIR},
                {"listen", CLEDGERD_CFG_LISTEN},
                {"ledgerType", CLEDGERD_CFG_LEDGER_TYPE},
                {"logLevel", CLEDGERD_CFG_LOG_LEVEL},
                {"initialAdminCert", CLEDGERD_CFG_ADMIN_CERT},
                {"ledgerId", CLEDGERD_CFG_LEDGER_ID}};
    static const struct {
        const char *key;
        unsigned bit;
        json_int_t lo, hi;
    } ints[] = {{"sigIntervalMs", CLEDGERD_CFG_SIG_INTERVAL_MS, 1, 3600000},
                {"sigMaxEntries", CLEDGERD_CFG_SIG_MAX_ENTRIES, 1, 3600000},
                {"maxBodyBytes", CLEDGERD_CFG_MAX_BODY_BYTES, 1, 64 * 1024 * 1024},
                {"httpThreads", CLEDGERD_CFG_HTTP_THREADS, 0, 64}};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (strcmp(k, strs[i].key) == 0) {
            *bit = strs[i].bit;
            return json_is_string(v);
        }
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (strcmp(k, ints[i].key) == 0) {
            *bit = ints[i].bit;
            return int_in(v, ints[i].lo, ints[i].hi);
        }
    if (strcmp(k, "raftLogIo") != 0)
        return -1;
    *bit = CLEDGERD_CFG_RAFT_LOG_IO;
    const char *m = json_string_value(v);
    return m != NULL &&
           (strcmp(m, "auto") == 0 || strcmp(m, "io_uring") == 0 || strcmp(m, "threads") == 0);
}

static char *string_of(const cledgerd_config *c, unsigned bit)
{
    switch (bit) {
    case CLEDGERD_CFG_DATA_DIR:
        return c->data_dir;
    case CLEDGERD_CFG_LISTEN:
        return c->listen;
    case CLEDGERD_CFG_LEDGER_TYPE:
        return c->ledger_type;
    case CLEDGERD_CFG_ADMIN_CERT:
        return c->admin_cert;
    case CLEDGERD_CFG_LOG_LEVEL:
        return c->log_level;
    case CLEDGERD_CFG_LEDGER_ID:
        return c->ledger_id;
    }
    return NULL;
}

/* The number behind a numeric setting's bit, as a JSON integer would hold it. */
static json_int_t number_of(const cledgerd_config *c, unsigned bit)
{
    switch (bit) {
    case CLEDGERD_CFG_SIG_INTERVAL_MS:
        return c->sig_interval_ms;
    case CLEDGERD_CFG_SIG_MAX_ENTRIES:
        return c->sig_max_entries;
    case CLEDGERD_CFG_MAX_BODY_BYTES:
        return (json_int_t)c->max_body_bytes;
    case CLEDGERD_CFG_HTTP_THREADS:
        return c->http_threads;
    }
    return -1;
}

/* An accepted file: c holds exactly the members of the object j. */
static void check_filled(json_t *j, const cledgerd_config *c)
{
    unsigned seen = 0;
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v)
    {
        unsigned bit = 0;
        CHECK(judge(k, v, &bit) == 1);
        seen |= bit;
        const char *s = string_of(c, bit);
        if (json_is_string(v) && bit != CLEDGERD_CFG_RAFT_LOG_IO) {
            CHECK(s != NULL && strlen(s) == json_string_length(v));
            CHECK(memcmp(s, json_string_value(v), json_string_length(v)) == 0);
        } else if (bit == CLEDGERD_CFG_RAFT_LOG_IO) {
            const char *m = json_string_value(v);
            int want = strcmp(m, "auto") == 0      ? CL_RLOG_IO_AUTO
                       : strcmp(m, "threads") == 0 ? CL_RLOG_IO_THREADS
                                                   : CL_RLOG_IO_URING;
            CHECK(c->log_io == want);
        } else {
            CHECK(number_of(c, bit) == json_integer_value(v));
        }
    }
    CHECK(c->set == seen);
    for (unsigned bit = CLEDGERD_CFG_DATA_DIR; bit <= CLEDGERD_CFG_LEDGER_ID; bit <<= 1)
        CHECK((string_of(c, bit) != NULL) == ((seen & bit) != 0));
    CHECK((seen & CLEDGERD_CFG_SIG_INTERVAL_MS) ? c->sig_interval_ms - 1 < 3600000
                                                : c->sig_interval_ms == 0);
    CHECK((seen & CLEDGERD_CFG_SIG_MAX_ENTRIES) ? c->sig_max_entries - 1 < 3600000
                                                : c->sig_max_entries == 0);
    CHECK((seen & CLEDGERD_CFG_MAX_BODY_BYTES) ? c->max_body_bytes - 1 < 64u * 1024 * 1024
                                               : c->max_body_bytes == 0);
    CHECK(c->http_threads >= 0 && c->http_threads <= 64);
    CHECK((seen & (CLEDGERD_CFG_HTTP_THREADS | CLEDGERD_CFG_RAFT_LOG_IO)) != 0 ||
          (c->http_threads == 0 && c->log_io == CL_RLOG_IO_AUTO));
}

/* msg is head + k + tail. */
static int is_message(const char *msg, const char *head, const char *k, const char *tail)
{
    size_t hl = strlen(head), kl = strlen(k);
    return strncmp(msg, head, hl) == 0 && strncmp(msg + hl, k, kl) == 0 &&
           strncmp(msg + hl + kl, tail, strlen(tail)) == 0;
}

/* A refused file: the message matches the reason re-derived from the document. */
static void check_refusal(int json_rc, const char *json_err, json_t *j, const char *msg)
{
    if (json_rc != CL_OK) {
        CHECK(strcmp(msg, json_err) == 0);
        return;
    }
    if (!json_is_object(j)) {
        CHECK(strcmp(msg, "not a JSON object") == 0);
        return;
    }
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v)
    {
        unsigned bit = 0;
        int verdict = judge(k, v, &bit);
        if (verdict == 1)
            continue;
        if (verdict < 0)
            CHECK(is_message(msg, "unknown setting \"", k, "\"") && strlen(msg) == strlen(k) + 18);
        else
            CHECK(is_message(msg, "\"", k, "\" must be "));
        return;
    }
    CHECK(!"refused a file whose members are all valid");
}

/* Both parses gave the same settings. */
static void check_same(const cledgerd_config *a, const cledgerd_config *b)
{
    CHECK(a->set == b->set);
    for (unsigned bit = CLEDGERD_CFG_DATA_DIR; bit <= CLEDGERD_CFG_LEDGER_ID; bit <<= 1)
        CHECK((a->set & bit) == 0 || strcmp(string_of(a, bit), string_of(b, bit)) == 0);
    for (unsigned bit = CLEDGERD_CFG_SIG_INTERVAL_MS; bit <= CLEDGERD_CFG_HTTP_THREADS; bit <<= 1)
        CHECK(number_of(a, bit) == number_of(b, bit));
    CHECK(a->log_io == b->log_io);
}

/* Parses with a CLEDGERD_CONFIG_ERR_CAP message buffer followed by a canary; on failure the
 * message is non-empty, ends with room to spare in the buffer (it is not cut) and nothing past the
 * buffer was written. */
static int parse(const uint8_t *data, size_t size, cledgerd_config *c, char *err)
{
    size_t cap = CLEDGERD_CONFIG_ERR_CAP(size);
    memset(err, 0x5a, cap + CANARY);
    int rc = cledgerd_config_parse((const char *)data, size, c, err, cap);
    CHECK(rc == 0 || rc == -1);
    for (size_t i = cap; i < cap + CANARY; i++)
        CHECK(err[i] == 0x5a);
    if (rc == 0)
        return 0;
    CHECK(memchr(err, '\0', cap - 1) != NULL && err[0] != '\0');
    CHECK(c->set == 0 && c->data_dir == NULL && c->listen == NULL && c->ledger_type == NULL &&
          c->admin_cert == NULL && c->log_level == NULL && c->ledger_id == NULL);
    return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cl_json_init();
    cledgerd_config c, o;
    char *err = malloc(CLEDGERD_CONFIG_ERR_CAP(size) + CANARY);
    char *oerr = malloc(CLEDGERD_CONFIG_ERR_CAP(size) + CANARY);
    CHECK(err != NULL && oerr != NULL);
    int rc = parse(data, size, &c, err);

    json_t *j = NULL;
    char json_err[200];
    int json_rc = cl_json_parse((const char *)data, size, CLEDGERD_CONFIG_MAX_BYTES, &j, json_err,
                                sizeof json_err);
    int valid = json_rc == CL_OK && json_is_object(j);
    const char *k;
    json_t *v;
    unsigned bit;
    if (valid)
        json_object_foreach(j, k, v) valid = valid && judge(k, v, &bit) == 1;
    CHECK((rc == 0) == valid);
    if (rc == 0) {
        check_filled(j, &c);
    } else {
        check_refusal(json_rc, json_err, j, err);
        /* a smaller buffer cuts the same message */
        size_t cap = 1 + size % 24;
        char small[24];
        cledgerd_config d;
        CHECK(cledgerd_config_parse((const char *)data, size, &d, small, cap) == -1);
        CHECK(strlen(small) == (strlen(err) < cap ? strlen(err) : cap - 1));
        CHECK(strncmp(small, err, strlen(small)) == 0);
    }
    json_decref(j);

    /* Allocation failure from an input-chosen point on: the same result, or out of memory. */
    cl_alloc_fail_after((long)(size % 48));
    int orc = parse(data, size, &o, oerr);
    cl_alloc_fail_after(-1);
    if (orc == 0) {
        CHECK(rc == 0);
        check_same(&c, &o);
    } else {
        CHECK(strcmp(oerr, "out of memory") == 0 ||
              strcmp(oerr, "out of memory while parsing JSON") == 0 ||
              (rc != 0 && strcmp(oerr, err) == 0));
    }
    cledgerd_config_free(&o);
    cledgerd_config_free(&c);
    free(oerr);
    free(err);
    return 0;
}
