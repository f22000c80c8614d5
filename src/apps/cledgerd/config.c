/*
 * config.c — cledgerd's config file parser (config.h). The file is parsed with cl_json_parse (so
 * duplicate keys, NUL bytes and invalid UTF-8 are refused there), then each member is checked
 * in file order; the first one that is refused gives the message.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/json.h"
#include "consensus/rlog.h"

/* In the order of the CLEDGERD_CFG_* bits; the first six are the string settings. */
static const char *const setting_names[] = {
    "dataDir",       "listen",        "ledgerType",   "initialAdminCert", "logLevel",  "ledgerId",
    "sigIntervalMs", "sigMaxEntries", "maxBodyBytes", "httpThreads",      "raftLogIo",
};
#define NSETTINGS (sizeof setting_names / sizeof setting_names[0])
#define NSTRINGS 6

/* A refusal: the message into err (before the decref: the arguments may be strings of j), j and
 * *c released; -1. */
static int config_fail(json_t *j, cledgerd_config *c, char *err, size_t errcap, const char *fmt,
                       ...) __attribute__((format(printf, 5, 6)));
static int config_fail(json_t *j, cledgerd_config *c, char *err, size_t errcap, const char *fmt,
                       ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (errcap > 0)
        vsnprintf(err, errcap, fmt, ap);
    va_end(ap);
    /* A key is echoed in the message: its control characters (an escape sequence for the
     * terminal) are not. */
    for (size_t i = 0; i < errcap && err[i] != '\0'; i++)
        if ((unsigned char)err[i] < 0x20 || err[i] == 0x7f)
            err[i] = '?';
    json_decref(j);
    cledgerd_config_free(c);
    return -1;
}

int cledgerd_config_parse(const char *text, size_t len, cledgerd_config *c, char *err,
                          size_t errcap)
{
    memset(c, 0, sizeof *c);
    json_t *j = NULL;
    char jerr[200];
    int rc = cl_json_parse(text, len, CLEDGERD_CONFIG_MAX_BYTES, &j, jerr, sizeof jerr);
    if (rc < 0 || !json_is_object(j))
        return config_fail(j, c, err, errcap, "%s", rc < 0 ? jerr : "not a JSON object");
    char **strings[NSTRINGS] = {&c->data_dir,   &c->listen,    &c->ledger_type,
                                &c->admin_cert, &c->log_level, &c->ledger_id};
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v)
    {
        size_t i = 0;
        while (i < NSETTINGS && strcmp(k, setting_names[i]) != 0)
            i++;
        if (i == NSETTINGS)
            return config_fail(j, c, err, errcap, "unknown setting \"%s\"", k);
        unsigned bit = 1u << i;
        json_int_t n = json_is_integer(v) ? json_integer_value(v) : -1;
        if (i < NSTRINGS) {
            if (!json_is_string(v))
                return config_fail(j, c, err, errcap, "\"%s\" must be a string", k);
            if ((*strings[i] = cl_strdup(json_string_value(v))) == NULL)
                return config_fail(j, c, err, errcap, "out of memory");
        } else if (bit == CLEDGERD_CFG_SIG_INTERVAL_MS || bit == CLEDGERD_CFG_SIG_MAX_ENTRIES) {
            if (n <= 0 || n > 3600000)
                return config_fail(j, c, err, errcap, "\"%s\" must be an integer 1..3600000", k);
            if (bit == CLEDGERD_CFG_SIG_INTERVAL_MS)
                c->sig_interval_ms = (unsigned)n;
            else
                c->sig_max_entries = (unsigned)n;
        } else if (bit == CLEDGERD_CFG_MAX_BODY_BYTES) {
            if (n <= 0 || n > (json_int_t)64 << 20)
                return config_fail(j, c, err, errcap, "\"maxBodyBytes\" must be 1..%d", 64 << 20);
            c->max_body_bytes = (size_t)n;
        } else if (bit == CLEDGERD_CFG_HTTP_THREADS) {
            if (n < 0 || n > 64)
                return config_fail(j, c, err, errcap, "\"httpThreads\" must be 0..64");
            c->http_threads = (int)n;
        } else {
            const char *m = json_string_value(v);
            if (m != NULL && strcmp(m, "auto") == 0)
                c->log_io = CL_RLOG_IO_AUTO;
            else if (m != NULL && strcmp(m, "io_uring") == 0)
                c->log_io = CL_RLOG_IO_URING;
            else if (m != NULL && strcmp(m, "threads") == 0)
                c->log_io = CL_RLOG_IO_THREADS;
            else
                return config_fail(j, c, err, errcap,
                                   "\"raftLogIo\" must be \"auto\", \"io_uring\" or \"threads\"");
        }
        c->set |= bit;
    }
    json_decref(j);
    return 0;
}

void cledgerd_config_free(cledgerd_config *c)
{
    cl_free(c->data_dir);
    cl_free(c->listen);
    cl_free(c->ledger_type);
    cl_free(c->admin_cert);
    cl_free(c->log_level);
    cl_free(c->ledger_id);
    memset(c, 0, sizeof *c);
}
