#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
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
    json_object_set_new(o, "msg", json_string(msg));
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
