/*
 * config.h — cledgerd's config file: a JSON object of settings (see main.c), parsed from bytes
 * into a struct of its own, with no I/O, so that it can be fuzzed (tests/fuzz/fuzz_config.c).
 *
 * Ownership: cledgerd_config_parse fills a caller's struct; its strings are allocated with
 * cl_malloc and owned by the struct until cledgerd_config_free (a caller may take one by setting
 * the member to NULL). The input bytes are only read during the call. On failure the struct holds
 * nothing (free on it is harmless) and the message is in the caller's buffer.
 */
#ifndef CLEDGER_APPS_CLEDGERD_CONFIG_H
#define CLEDGER_APPS_CLEDGERD_CONFIG_H

#include <stddef.h>

#include "base/err.h"

/* The settings, one bit of cledgerd_config.set each: which ones the file sets. */
enum {
    CLEDGERD_CFG_DATA_DIR = 1u << 0,        /* "dataDir" */
    CLEDGERD_CFG_LISTEN = 1u << 1,          /* "listen" */
    CLEDGERD_CFG_LEDGER_TYPE = 1u << 2,     /* "ledgerType" */
    CLEDGERD_CFG_ADMIN_CERT = 1u << 3,      /* "initialAdminCert" */
    CLEDGERD_CFG_LOG_LEVEL = 1u << 4,       /* "logLevel" */
    CLEDGERD_CFG_LEDGER_ID = 1u << 5,       /* "ledgerId" */
    CLEDGERD_CFG_SIG_INTERVAL_MS = 1u << 6, /* "sigIntervalMs" */
    CLEDGERD_CFG_SIG_MAX_ENTRIES = 1u << 7, /* "sigMaxEntries" */
    CLEDGERD_CFG_MAX_BODY_BYTES = 1u << 8,  /* "maxBodyBytes" */
    CLEDGERD_CFG_HTTP_THREADS = 1u << 9,    /* "httpThreads" */
    CLEDGERD_CFG_RAFT_LOG_IO = 1u << 10,    /* "raftLogIo" */
};

#define CLEDGERD_CONFIG_MAX_BYTES (1u << 20) /* a larger file is refused */
/* A message buffer that holds every refusal of a len-byte file uncut (the longest names an
 * unknown key of the file). */
#define CLEDGERD_CONFIG_ERR_CAP(len) ((size_t)(len) + 200)

/* A member the file does not set is NULL or 0 (and its bit of `set` is clear). */
typedef struct {
    unsigned set; /* CLEDGERD_CFG_* */
    char *data_dir, *listen, *ledger_type, *admin_cert, *log_level, *ledger_id;
    unsigned sig_interval_ms, sig_max_entries; /* 1..3600000 */
    size_t max_body_bytes;                     /* 1..64 MiB */
    int http_threads;                          /* 0..64 */
    int log_io;                                /* CL_RLOG_IO_* */
} cledgerd_config;

/* Parses text[0..len) (no NUL terminator needed). 0: *c is filled. -1: the file is refused, *c
 * holds nothing, and err gets the reason, NUL-terminated and cut to errcap bytes (see
 * CLEDGERD_CONFIG_ERR_CAP), e.g. "\"httpThreads\" must be 0..64". Every value is checked, also
 * one that a command-line flag will override. */
CL_MUST_CHECK int cledgerd_config_parse(const char *text, size_t len, cledgerd_config *c, char *err,
                                        size_t errcap);
/* Releases the strings *c still owns and clears it. */
void cledgerd_config_free(cledgerd_config *c);

#endif
