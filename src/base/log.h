/*
 * log.h — JSON-lines logging on stderr (one object per line: ts, level, msg, and fields).
 *
 * cl_log("info", "ledger opened", "dir", dir, "entries", "%llu", n) is awkward in C, so the API
 * takes a message and an optional pre-built jansson object of fields (borrowed; not consumed).
 * Lines below the configured level are dropped before any formatting. Thread-safe: one write(2) per
 * line.
 */
#ifndef CLEDGER_BASE_LOG_H
#define CLEDGER_BASE_LOG_H

#include <jansson.h>

typedef enum { CL_LOG_DEBUG = 0, CL_LOG_INFO, CL_LOG_WARN, CL_LOG_ERROR, CL_LOG_OFF } cl_log_level;

void cl_log_set_level(cl_log_level lvl);
cl_log_level cl_log_get_level(void);
/* Parses "debug|info|warn|error|off"; returns -1 when unknown. */
int cl_log_level_parse(const char *s);
/* A new JSON string of s for a log line: bytes that are not UTF-8 (a path) become '?' (NULL only
 * when out of memory). */
json_t *cl_log_text(const char *s);
void cl_log(cl_log_level lvl, const char *msg, const json_t *fields);
/* printf-style convenience without structured fields. */
void cl_logf(cl_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
