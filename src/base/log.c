#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/codec.h"
#include "base/json.h"

static cl_log_level level = CL_LOG_INFO;
static const char *NAMES[] = {"debug", "info", "warn", "error", "off"};

void cl_log_set_level(cl_log_level lvl) { level = lvl; }
cl_log_level cl_log_get_level(void) { return level; }

int cl_log_level_parse(const char *s)
{
    for (int i = 0; i <= CL_LOG_OFF; i++)
        if (strcmp(s, NAMES[i]) == 0)
            return i;
    return -1;
}

/* A JSON string of s; bytes that are not UTF-8 (a path, a message cut at its buffer's end in the
 * middle of a character) become '?' instead of losing the whole text. */
json_t *cl_log_text(const char *s)
{
    json_t *j = json_string(s);
    if (j != NULL)
        return j;
    size_t n = strlen(s);
    char *t = cl_malloc(n + 1);
    if (t == NULL)
        return NULL;
    size_t i = 0;
    while (i < n) {
        size_t k = 1;
        while (k <= 4 && i + k <= n && !cl_utf8_valid(s + i, k))
            k++;
        if (k <= 4 && i + k <= n) {
            memcpy(t + i, s + i, k);
            i += k;
        } else {
            t[i++] = '?';
        }
    }
    t[n] = '\0';
    j = json_string(t);
    cl_free(t);
    return j;
}

void cl_log(cl_log_level lvl, const char *msg, const json_t *fields)
{
    if (lvl < level || lvl >= CL_LOG_OFF)
        return;
    cl_json_init();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[96];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000);
    json_t *o = fields ? json_deep_copy(fields) : json_object();
    if (o == NULL)
        return;
    json_object_set_new(o, "ts", json_string(when));
    json_object_set_new(o, "level", json_string(NAMES[lvl]));
    json_object_set_new(o, "msg", cl_log_text(msg));
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (line == NULL)
        return;
    size_t n = strlen(line);
    char *buf = cl_malloc(n + 2);
    if (buf != NULL) {
        memcpy(buf, line, n);
        buf[n] = '\n';
        ssize_t w = write(STDERR_FILENO, buf, n + 1);
        (void)w;
        cl_free(buf);
    }
    cl_free(line);
}

void cl_logf(cl_log_level lvl, const char *fmt, ...)
{
    if (lvl < level)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cl_log(lvl, msg, NULL);
}
