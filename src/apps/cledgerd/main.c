/*
 * cledgerd — one node of a cledger service: the ACL data-plane API over HTTPS, on libraft.
 *
 *   cledgerd --data-dir DIR --listen HOST:PORT [--ledger-type public|private]
 *            [--initial-admin-cert PEM] [--config FILE] [--log-level LEVEL]
 *
 * A fresh DIR creates a new service (service identity, node key and certificate, first ledger
 * secret, first administrator: the given certificate, or a generated DIR/admin_cert.pem +
 * DIR/admin_key.pem (0600)). A DIR with state resumes the same service. The ledger type is fixed
 * at creation. The config file is JSON with the same settings ("dataDir", "listen", "ledgerType",
 * "initialAdminCert", "logLevel") plus "sigIntervalMs", "sigMaxEntries", "maxBodyBytes",
 * "ledgerId", "httpThreads" (HTTPS worker threads for TLS and HTTP parsing, 0..64; 0: all on the
 * main loop; default: the number of CPUs), "raftLogIo" (how raft log writes reach the disk:
 * "auto", the default: io_uring when the kernel allows it, else writer threads; "io_uring":
 * refuse to start without it; "threads"); command-line flags win. config.c parses the file.
 *
 * Start-up order: open (or create) the ledger; judge the raft log and store a new raft term whose
 * view is above every view in the ledger (new_view: refused if the log is damaged or ends before
 * the raft index recorded in the ledger's last signature, with the ledger unchanged); cut the
 * ledger back to its last signature
 * (anything after it is still in the raft log and is re-applied byte-identically, since commands
 * carry their claims keys); start raft with applied_index = that raft index; start
 * the node (users from the ledger, signature timer) and the HTTPS listener. SIGTERM/SIGINT: stop
 * accepting, finish in-flight requests, stop raft, sync and close the ledger, exit 0.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "base/alloc.h"
#include "base/file.h"
#include "base/json.h"
#include "base/log.h"
#include "consensus/consensus.h"
#include "consensus/rlog.h"
#include "crypto/ec.h"
#include "crypto/hash.h"
#include "crypto/x509.h"
#include "ledger/ledger.h"
#include "net/http.h"
#include "net/tls.h"
#include "node/node.h"

#include "config.h"

/* --data-dir at most this long: every path under it fits the 1,024-byte buffers of the ledger
 * and of this file (the longest is a committed chunk's name under ledger/). */
#define CLEDGERD_DATA_DIR_MAX 900

#ifndef CLEDGER_VERSION
#define CLEDGER_VERSION "0.1.0-dev"
#endif

typedef struct {
    const char *data_dir, *listen, *ledger_type, *admin_cert, *config, *log_level, *ledger_id;
    unsigned sig_interval_ms, sig_max_entries;
    size_t max_body_bytes;
    int http_threads; /* -1: not set (the number of CPUs) */
    int log_io;       /* CL_RLOG_IO_* */
} settings;

typedef struct {
    uv_loop_t *loop;
    settings s;
    cl_ledger *ledger;
    cl_consensus *raft;
    cl_node *node;
    cl_tls_ctx *tls;
    cl_http_server *http;
    cl_http_server *corked; /* corked by fsm_completions(begin), until its end call */
    uv_signal_t sigterm, sigint;
    uv_timer_t quiesce; /* shutdown: wait until nothing is in flight in consensus */
    uv_prepare_t lag;   /* loop-lag watch (on_lag) */
    uint64_t lag_at, lag_idle, lag_reported, lag_max;
    uint64_t slow_checked;                  /* when the raft log's slow writes were last reported */
    uint64_t lag_cpu, lag_cpu_at;           /* the loop thread's CPU time, and when it was read */
    uint64_t lag_max_cpu, lag_max_cpu_wall; /* CPU time over the window ending with the longest */
    unsigned lag_count;
    int quiesce_ticks;
    int abandon_raft; /* stopped without raft teardown (see quiesce_closed) */
    int stopping;
    int exit_code;
    char *tls_cert_pem, *node_cert_pem;
    char host[256];
    int port;
    char admin_fp[96];
} daemon_t;

static void usage(FILE *f)
{
    fprintf(f, "usage: cledgerd --data-dir DIR --listen HOST:PORT [--ledger-type public|private]\n"
               "                [--initial-admin-cert PEM] [--config FILE] [--log-level LEVEL]\n"
               "                [--version]\n");
}

/* A string set by the file, unless a command-line flag set it: taken from c (it lives as long as
 * the process, as argv does). */
static void config_take(const char **slot, char **value)
{
    if (*slot == NULL && *value != NULL) {
        *slot = *value;
        *value = NULL;
    }
}

static int load_config(settings *s)
{
    size_t len = 0;
    struct stat st;
    if (stat(s->config, &st) == 0 && !S_ISREG(st.st_mode)) {
        fprintf(stderr, "cledgerd: config file %s is not a regular file\n", s->config);
        return -1;
    }
    char *text = cl_read_file(s->config, &len);
    if (text == NULL) {
        fprintf(stderr, "cledgerd: cannot read config file %s: %s\n", s->config, strerror(errno));
        return -1;
    }
    cledgerd_config c;
    size_t cap = CLEDGERD_CONFIG_ERR_CAP(len); /* a refusal is printed whole */
    char *err = malloc(cap);
    int rc = err == NULL ? -1 : cledgerd_config_parse(text, len, &c, err, cap);
    free(text);
    if (rc < 0) {
        fprintf(stderr, "cledgerd: config file %s: %s\n", s->config,
                err != NULL ? err : "out of memory");
        free(err);
        return -1;
    }
    free(err);
    config_take(&s->data_dir, &c.data_dir);
    config_take(&s->listen, &c.listen);
    config_take(&s->ledger_type, &c.ledger_type);
    config_take(&s->admin_cert, &c.admin_cert);
    config_take(&s->log_level, &c.log_level);
    config_take(&s->ledger_id, &c.ledger_id);
    if (c.set & CLEDGERD_CFG_SIG_INTERVAL_MS)
        s->sig_interval_ms = c.sig_interval_ms;
    if (c.set & CLEDGERD_CFG_SIG_MAX_ENTRIES)
        s->sig_max_entries = c.sig_max_entries;
    if (c.set & CLEDGERD_CFG_MAX_BODY_BYTES)
        s->max_body_bytes = c.max_body_bytes;
    if (c.set & CLEDGERD_CFG_HTTP_THREADS)
        s->http_threads = c.http_threads;
    if (c.set & CLEDGERD_CFG_RAFT_LOG_IO)
        s->log_io = c.log_io;
    cledgerd_config_free(&c); /* the strings a flag overrode */
    return 0;
}

static int path_in(const daemon_t *d, const char *name, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s", d->s.data_dir, name);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* The first administrator's certificate: self-signed with k, written to cpath. */
static int admin_cert_from(const cl_key *k, const char *cpath)
{
    cl_cert *c = NULL;
    int rc = cl_cert_self_signed_ca(k, "cledger administrator", 3650, &c);
    if (rc == CL_OK)
        rc = cl_cert_save_pem(c, cpath);
    cl_cert_free(c);
    return rc;
}

/* The first administrator's credential in a new DIR: a P-256 key (written first) and its
 * certificate. A key left without its certificate (a first start cut short between the two; the
 * key was never handed out) gets the certificate issued from it. */
static int admin_credential(const char *cpath, const char *kpath, int have_key)
{
    cl_key *k = NULL;
    int rc = have_key ? cl_key_load_private_pem(kpath, &k) : cl_key_generate(CL_CURVE_P256, &k);
    if (rc == CL_OK && !have_key)
        rc = cl_key_save_private_pem(k, kpath);
    if (rc == CL_OK)
        rc = admin_cert_from(k, cpath);
    cl_key_free(k);
    if (rc < 0) {
        fprintf(stderr,
                "cledgerd: cannot %s the administrator credential %s / %s: %s; move them away, "
                "or pass --initial-admin-cert PEM\n",
                have_key ? "complete" : "write", cpath, kpath, cl_strerror(rc));
        return -1;
    }
    json_t *f = json_pack("{s:o,s:o}", "cert", cl_log_text(cpath), "key", cl_log_text(kpath));
    cl_log(have_key ? CL_LOG_WARN : CL_LOG_INFO,
           have_key ? "the first start of this directory stopped after the administrator's key "
                      "was written: its certificate was issued from it"
                    : "generated the first administrator's credentials",
           f);
    json_decref(f);
    return 0;
}

/* The first administrator, recorded by the first leader when the users table is empty
 * (became_leader): the certificate given with --initial-admin-cert, else DIR/admin_cert.pem.
 * A new service without either gets a generated DIR/admin_cert.pem + admin_key.pem, and one
 * given --initial-admin-cert keeps a copy of it as DIR/admin_cert.pem, before its ledger is
 * created, so a first start cut short resumes with the same administrator, flag or not. A
 * resumed service generates nothing: without DIR/admin_cert.pem it adds no administrator (its
 * users are in the ledger). */
static int admin_identity(daemon_t *d, int fresh)
{
    char cpath[1100], kpath[1100];
    path_in(d, "admin_cert.pem", cpath, sizeof cpath);
    path_in(d, "admin_key.pem", kpath, sizeof kpath);
    struct stat st;
    int have_cert = stat(cpath, &st) == 0, have_key = stat(kpath, &st) == 0;
    const char *cert_path = d->s.admin_cert;
    if (cert_path == NULL) {
        cert_path = cpath;
        if (!have_cert && !fresh) {
            cl_logf(CL_LOG_WARN,
                    "%s is missing and no --initial-admin-cert was given: no administrator is "
                    "added. The users recorded in the ledger stand; if it has none, nobody can "
                    "use this service until it is started with --initial-admin-cert PEM",
                    cpath);
            return 0; /* admin_fp stays empty */
        }
        /* from here a missing certificate means a new DIR (returned above otherwise) */
        if (!have_cert && admin_credential(cpath, kpath, have_key) < 0)
            return -1;
    }
    cl_cert *c = NULL;
    cl_buf der = CL_BUF_INIT;
    int rc = cl_cert_load_pem_file(cert_path, &c);
    if (rc == CL_OK)
        rc = cl_cert_to_der(c, &der);
    if (rc == CL_OK)
        cl_tls_fingerprint(der.data, der.len, d->admin_fp);
    if (rc == CL_OK && fresh && d->s.admin_cert != NULL && !have_cert) {
        rc = cl_cert_save_pem(c, cpath);
        if (rc < 0)
            fprintf(stderr,
                    "cledgerd: cannot keep a copy of the administrator certificate as %s: "
                    "%s\n",
                    cpath, cl_strerror(rc));
    } else if (rc < 0) {
        fprintf(stderr, "cledgerd: administrator certificate %s: %s\n", cert_path, cl_strerror(rc));
    }
    cl_buf_free(&der);
    cl_cert_free(c);
    return rc < 0 ? -1 : 0;
}

/* TLS certificate for the listener: the node key, issued by the service identity, with SANs for
 * the listen host, localhost and 127.0.0.1. Re-issued at every start (it is not ledger state). */
static int make_tls(daemon_t *d)
{
    char path[1100];
    cl_key *node_key = NULL, *service_key = NULL;
    cl_cert *service = NULL, *tls = NULL;
    char *key_pem = NULL;
    size_t key_len = 0, cert_len = 0;
    int rc;
    const char *sans[3] = {"localhost", "127.0.0.1", d->host};
    size_t nsans = (strcmp(d->host, "localhost") == 0 || strcmp(d->host, "127.0.0.1") == 0 ||
                    d->host[0] == '\0')
                       ? 2
                       : 3;
    path_in(d, "node/node_key.pem", path, sizeof path);
    CL_GUARD(cl_key_load_private_pem(path, &node_key));
    path_in(d, "node/service_key.pem", path, sizeof path);
    CL_GUARD(cl_key_load_private_pem(path, &service_key));
    path_in(d, "service_cert.pem", path, sizeof path);
    CL_GUARD(cl_cert_load_pem_file(path, &service));
    snprintf(path, sizeof path, "the TLS certificate");
    /* As long as the node's certificate: it is issued again at every start, never while the node
     * runs, so a shorter one would expire under a node that runs for long. */
    CL_GUARD(
        cl_cert_issue(node_key, "cledger node", service, service_key, 3650, sans, nsans, &tls));
    CL_GUARD(cl_cert_to_pem(tls, &d->tls_cert_pem, &cert_len));
    path_in(d, "node/tls_cert.pem", path, sizeof path);
    CL_GUARD(cl_cert_save_pem(tls, path));
    snprintf(path, sizeof path, "the TLS context");
    CL_GUARD(cl_key_private_pem(node_key, &key_pem, &key_len));
    CL_GUARD(cl_tls_server_ctx(d->tls_cert_pem, cert_len, key_pem, key_len, 1, &d->tls));
    path_in(d, "node/node_cert.pem", path, sizeof path);
    size_t nl = 0;
    d->node_cert_pem = cl_read_file(path, &nl);
    CL_GUARD_IF(d->node_cert_pem == NULL, CL_EIO);
out:
    if (key_pem != NULL)
        cl_secret_free(key_pem, key_len + 1);
    cl_key_free(node_key);
    cl_key_free(service_key);
    cl_cert_free(service);
    cl_cert_free(tls);
    if (rc < 0)
        fprintf(stderr, "cledgerd: TLS set-up failed: %s: %s\n", path, cl_strerror(rc));
    return rc;
}

/* ---- consensus <-> node ------------------------------------------------------------------ */

/* Views: CCF's first view is 2 and the genesis entries are written in view 2; libraft's first
 * term is 1 (a lone voter elects itself in its stored term; cledgerd raises it at every start of
 * an existing service: new_view). view = term + 1 keeps both conventions. */
#define VIEW_OF_TERM(t) ((t) + 1)

/* On a private ledger every command is sealed with the ledger secret before it enters the raft
 * log (cl_ledger_seal), so no contents reach the raft/ directory in plaintext. */
static int fsm_apply(void *arg, uint64_t term, uint64_t index, const void *cmd, size_t len,
                     void **result)
{
    daemon_t *d = arg;
    if (!cl_ledger_is_private(d->ledger))
        return cl_node_apply(d->node, VIEW_OF_TERM(term), index, cmd, len, result);
    cl_buf plain = CL_BUF_SECRET;
    int rc = cl_ledger_unseal(d->ledger, cmd, len, &plain);
    if (rc == CL_OK)
        rc = cl_node_apply(d->node, VIEW_OF_TERM(term), index, plain.data, plain.len, result);
    cl_buf_free(&plain);
    return rc;
}

static void fsm_batch(void *arg, uint64_t last_index)
{
    daemon_t *d = arg;
    cl_node_applied_batch(d->node, last_index);
}

/* A group commit's replies (from applied_batch and the done callbacks) reach each HTTPS worker
 * with one wake-up, not one each. The server is freed only from close callbacks, never between
 * begin and end. */
static void fsm_completions(void *arg, int begin)
{
    daemon_t *d = arg;
    if (begin && d->http != NULL) {
        d->corked = d->http;
        cl_http_server_cork(d->corked);
    } else if (!begin && d->corked != NULL) {
        cl_http_server_uncork(d->corked);
        d->corked = NULL;
    }
}

static int fsm_snapshot(void *arg, uint64_t *applied_index)
{
    daemon_t *d = arg;
    if (cl_ledger_last_seqno(d->ledger) != cl_ledger_signed_seqno(d->ledger))
        return CL_ESTATE; /* only at a signature: the restart rule cuts back to one */
    /* The snapshot lets raft drop its log up to here: the ledger must be on disk first. */
    CL_TRY(cl_ledger_sync_hard(d->ledger));
    return cl_ledger_signed_raft_index(d->ledger, applied_index);
}

static int w_submit(void *impl, const void *cmd, size_t len, cl_consensus_done cb, void *arg)
{
    daemon_t *d = impl;
    if (d->raft == NULL)
        return CL_ESTATE;
    if (!cl_ledger_is_private(d->ledger))
        return cl_consensus_submit(d->raft, cmd, len, cb, arg);
    cl_buf sealed = CL_BUF_INIT;
    int rc = cl_ledger_seal(d->ledger, cmd, len, &sealed);
    if (rc == CL_OK)
        rc = cl_consensus_submit(d->raft, sealed.data, sealed.len, cb, arg);
    cl_buf_free(&sealed);
    return rc;
}
static int w_is_leader(void *impl)
{
    daemon_t *d = impl;
    return d->raft != NULL && cl_consensus_is_leader(d->raft);
}
static int w_error(void *impl)
{
    daemon_t *d = impl;
    return d->raft != NULL ? cl_consensus_error(d->raft) : 0;
}
#define FD_RESERVE 256 /* descriptors kept from client connections */

#define NO_GENESIS                                                                                 \
    "cledgerd: the ledger in %s/ledger holds no entries, not even its genesis: its files are "     \
    "missing or its creation was interrupted; restore them from a backup, or use an empty "        \
    "directory for a new service\n"

/* node/ledger_type written, no entry in the ledger and no raft log: a first start stopped while
 * the ledger was created (its type file is written before its first entry). */
#define INTERRUPTED_FIRST_START                                                                    \
    "cledgerd: %s holds no ledger entry and no raft log: the first start of this directory "       \
    "stopped after node/ledger_type was written and before its first entry, so no service was "    \
    "created. Remove %s/node, ledger, merkle and index and start again\n"

/* Each start of an existing service writes in a new view, above every view its ledger and raft
 * log hold, stored before the ledger is cut back to its last signature. The raft log re-applies
 * the cut entries it holds in their own views, byte-identically; but entries it does not hold
 * (appended offline with `cledger ledger append --no-sign`, or past the end of a raft log restored
 * from an older copy) are gone for good, and new commands take their seqnos. In the same view a
 * private ledger would then encrypt another plaintext under the key and IV (seqno || view) of the
 * cut one, which an older copy of ledger/ still holds (docs/ledger-format.md "Encryption").
 * A crash after the raise and before the cut raises again at the next start: views only grow. */
static int new_view(daemon_t *d, const char *raft_dir, uint64_t applied)
{
    uint64_t last_view = 0, term = 0, log_last = 0;
    int rc = cl_ledger_view_of(d->ledger, cl_ledger_last_seqno(d->ledger), &last_view);
    if (rc < 0) {
        fprintf(stderr, "cledgerd: cannot read the view of the ledger's last entry: %s\n",
                cl_strerror(rc));
        return rc;
    }
    /* view = term + 1: a term >= last_view is a view above it (views never go down along the
     * ledger, so above every view it holds). The raft log is judged by the same load. */
    char why[400];
    rc = cl_consensus_new_term(raft_dir, last_view, applied, &log_last, &term, why, sizeof why);
    if (rc == CL_OK && log_last < applied) {
        rc = CL_ESTATE;
        snprintf(why, sizeof why,
                 "it ends at raft index %" PRIu64 " but the ledger's last signature was made at "
                 "%" PRIu64 " (nothing was changed)",
                 log_last, applied);
    }
    if (rc < 0) {
        fprintf(stderr, "cledgerd: start-up failed: the raft log in %s %s: %s\n", raft_dir,
                rc == CL_ESTATE     ? "does not match the ledger"
                : rc == CL_ECORRUPT ? "is damaged"
                                    : "cannot be used",
                why);
        return rc;
    }
    cl_logf(CL_LOG_INFO,
            "new writes go to view %" PRIu64 " (the ledger's last entry is in view %" PRIu64 ")",
            VIEW_OF_TERM(term), last_view);
    return CL_OK;
}

static uint64_t w_term(void *impl)
{
    daemon_t *d = impl;
    return d->raft != NULL ? VIEW_OF_TERM(cl_consensus_term(d->raft)) : 0;
}

static void admin_done(void *arg, int status, uint64_t term, uint64_t index, void *result)
{
    daemon_t *d = arg;
    const cl_node_result *res = result;
    if (status < 0)
        cl_logf(CL_LOG_ERROR, "could not record the first administrator: %s", cl_strerror(status));
    else if (res != NULL && res->status == CL_OK)
        cl_logf(CL_LOG_INFO, "recorded the first administrator %s", d->admin_fp);
    else if (d->s.admin_cert != NULL) /* the users table was not empty */
        cl_logf(CL_LOG_WARN,
                "--initial-admin-cert %s was not used: %s already has users (add administrators "
                "with cledger user add)",
                d->s.admin_cert, d->s.data_dir);
    free(result);
}

static void became_leader(void *arg, uint64_t term)
{
    daemon_t *d = arg;
    cl_logf(CL_LOG_INFO, "this node is the leader (term %" PRIu64 ")", term);
    if (d->node != NULL && d->admin_fp[0] != '\0' &&
        cl_node_bootstrap_admin(d->node, d->admin_fp, admin_done, d) < 0)
        cl_logf(CL_LOG_ERROR, "could not submit the first administrator");
}

/* ---- HTTP <-> node ----------------------------------------------------------------------- */

static void reply_http(void *ctx, int status, const char *const *headers, size_t nh,
                       const void *body, size_t len)
{
    cl_http_reply(ctx, status, headers, nh, body, len);
}

static size_t reply_backlog(void *arg)
{
    daemon_t *d = arg;
    return d->http != NULL ? cl_http_server_queued_bytes(d->http) : 0;
}

static void on_request(void *arg, cl_http_exchange *x)
{
    daemon_t *d = arg;
    cl_node_handle(d->node, cl_http_request_of(x), reply_http, x);
}

/* ---- loop-lag watch ------------------------------------------------------------------------ */

/* The main loop owns raft, the ledger and the reply to every write: a callback that keeps it busy
 * delays every request in flight. Before each poll, the busy time of the iteration that just
 * ended (its wall time less the time the loop slept in the poll) is checked; iterations over
 * LAG_WARN_NS are reported as a warning, at most once a second, with their count and the longest,
 * and how much of the longest the loop thread spent on a CPU: the rest it waited, for the disk
 * (an fdatasync) or for a core (another thread or process ran).
 *
 * The thread's CPU time (CLOCK_THREAD_CPUTIME_ID) is a real system call, 3% of the loop's time
 * when read every iteration under write load. It is read at most once per LAG_CPU_STEP_NS of wall
 * time, and at the end of every long iteration; so the CPU time reported for the longest iteration
 * covers a window that starts at most LAG_CPU_STEP_NS before it, and the report gives that window.
 */
#define LAG_WARN_NS (10ull * 1000 * 1000)
#define LAG_CPU_STEP_NS (1000ull * 1000)
static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void on_lag(uv_prepare_t *p)
{
    daemon_t *d = p->data;
    uint64_t now = uv_hrtime(), idle = uv_metrics_idle_time(d->loop);
    uint64_t cpu = 0;
    int have_cpu = 0;
    if (d->lag_at != 0) {
        uint64_t slept = idle - d->lag_idle, wall = now - d->lag_at;
        uint64_t busy = wall > slept ? wall - slept : 0;
        if (busy > LAG_WARN_NS) {
            cpu = thread_cpu_ns();
            have_cpu = 1;
            d->lag_count++;
            if (busy > d->lag_max) {
                d->lag_max = busy;
                d->lag_max_cpu = cpu - d->lag_cpu;
                d->lag_max_cpu_wall = now - d->lag_cpu_at;
            }
        }
        if (d->lag_count > 0 && now - d->lag_reported >= 1000000000ull) {
            cl_logf(CL_LOG_WARN,
                    "main loop: %u iteration(s) busy for more than %llu ms, the longest %.1f ms "
                    "(%.1f ms on a CPU in the %.1f ms up to its end)",
                    d->lag_count, (unsigned long long)(LAG_WARN_NS / 1000000),
                    (double)d->lag_max / 1e6, (double)d->lag_max_cpu / 1e6,
                    (double)d->lag_max_cpu_wall / 1e6);
            d->lag_count = 0;
            d->lag_max = 0;
            d->lag_reported = now;
        }
    }
    /* The raft log's slow writes (a device or host stall holds every write in flight), once a
     * second, beside the loop's own: the two together tell a slow disk from a busy loop. */
    if (now - d->slow_checked >= 1000000000ull) {
        d->slow_checked = now;
        if (d->raft != NULL)
            cl_consensus_report_slow_writes(d->raft);
    }
    d->lag_at = uv_hrtime(); /* the report itself is not counted */
    d->lag_idle = idle;
    if (have_cpu || d->lag_at - d->lag_cpu_at >= LAG_CPU_STEP_NS) {
        d->lag_cpu = have_cpu ? cpu : thread_cpu_ns();
        d->lag_cpu_at = have_cpu ? now : d->lag_at;
    }
}

/* ---- shutdown ----------------------------------------------------------------------------- */

/* Graceful stop without raft_close: libraft 0.15 crashed intermittently (SIGSEGV inside its
 * teardown) when closed right after write load, even with nothing of ours in flight. Nothing
 * needs raft's teardown: every acknowledged write is already fsync'd in the raft log, and a
 * restart after an abrupt end is the path the crash tests exercise. So: HTTPS drained, consensus
 * quiet, then the ledger is synced and closed and the loop is left with raft still open. */
static void quiesce_closed(uv_handle_t *h)
{
    daemon_t *d = h->data;
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    uv_close((uv_handle_t *)&d->sigint, NULL);
    uv_close((uv_handle_t *)&d->lag, NULL);
    int rc = cl_ledger_close(d->ledger);
    d->ledger = NULL;
    if (rc < 0) {
        cl_logf(CL_LOG_ERROR, "ledger close failed: %s", cl_strerror(rc));
        d->exit_code = 1;
    }
    cl_consensus_log_stats(d->raft);
    d->abandon_raft = 1;
    uv_stop(d->loop);
}

/* Stop proposing and wait, at most 2 s, until nothing this node submitted is in flight. */
static void on_quiesce(uv_timer_t *t)
{
    daemon_t *d = t->data;
    if (cl_node_quiesce(d->node) || ++d->quiesce_ticks > 400) {
        uv_timer_stop(t);
        uv_close((uv_handle_t *)t, quiesce_closed);
    }
}

static void http_stopped(void *arg)
{
    daemon_t *d = arg;
    d->http = NULL;
    d->quiesce.data = d;
    uv_timer_init(d->loop, &d->quiesce);
    uv_timer_start(&d->quiesce, on_quiesce, 0, 5);
}

static void on_signal(uv_signal_t *h, int signum)
{
    daemon_t *d = h->data;
    if (d->stopping)
        return;
    d->stopping = 1;
    /* Stopping blocks the loop on purpose (threads joined, files synced): not lag to report. */
    uv_prepare_stop(&d->lag);
    cl_logf(CL_LOG_INFO, "signal %d: stopping (finishing in-flight requests)", signum);
    cl_http_server_stop(d->http, http_stopped, d);
}

int main(int argc, char **argv)
{
    daemon_t d;
    memset(&d, 0, sizeof d);
    d.s.http_threads = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = NULL;
        if (strcmp(a, "--data-dir") == 0)
            slot = &d.s.data_dir;
        else if (strcmp(a, "--listen") == 0)
            slot = &d.s.listen;
        else if (strcmp(a, "--ledger-type") == 0)
            slot = &d.s.ledger_type;
        else if (strcmp(a, "--initial-admin-cert") == 0)
            slot = &d.s.admin_cert;
        else if (strcmp(a, "--config") == 0)
            slot = &d.s.config;
        else if (strcmp(a, "--log-level") == 0)
            slot = &d.s.log_level;
        else if (strcmp(a, "--version") == 0) {
            printf("cledgerd %s\n", CLEDGER_VERSION);
            return 0;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "cledgerd: unknown argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "cledgerd: %s needs a value\n", a);
            return 2;
        }
        *slot = argv[++i];
    }
    if (d.s.config != NULL && load_config(&d.s) < 0)
        return 2;
    if (d.s.data_dir == NULL || d.s.listen == NULL) {
        usage(stderr);
        return 2;
    }
    if (d.s.log_level != NULL) {
        int lvl = cl_log_level_parse(d.s.log_level);
        if (lvl < 0) {
            fprintf(stderr,
                    "cledgerd: unknown log level '%s' (--log-level, or logLevel in a "
                    "config file)\n",
                    d.s.log_level);
            return 2;
        }
        cl_log_set_level((cl_log_level)lvl);
    }
    int want_private = -1;
    if (d.s.ledger_type != NULL) {
        if (strcmp(d.s.ledger_type, "public") == 0)
            want_private = 0;
        else if (strcmp(d.s.ledger_type, "private") == 0)
            want_private = 1;
        else {
            fprintf(stderr, "cledgerd: --ledger-type (ledgerType in a config file) must be public "
                            "or private\n");
            return 2;
        }
    }
    if (cl_parse_hostport(d.s.listen, d.host, sizeof d.host, &d.port) < 0) {
        fprintf(stderr, "cledgerd: --listen must be HOST:PORT (got '%s')\n", d.s.listen);
        return 2;
    }
    if (strcmp(d.host, "localhost") == 0)
        snprintf(d.host, sizeof d.host, "127.0.0.1");
    /* Before the data directory is touched: a start that cannot listen changes nothing (it used
     * to create the service, or raise a resumed one's view, first). */
    char why[256];
    int lc = cl_http_listen_check(d.host, d.port, why, sizeof why);
    if (lc == CL_EINVAL) {
        fprintf(stderr, "cledgerd: --listen: %s (HOST is an IPv4 or IPv6 address, or localhost)\n",
                why);
        return 2;
    }
    if (lc < 0) {
        fprintf(stderr, "cledgerd: cannot listen on %s: %s\n", d.s.listen, why);
        return 1;
    }
    /* Room for the longest file name under it (the ledger's own paths stop at 1,023 bytes). */
    if (strlen(d.s.data_dir) > CLEDGERD_DATA_DIR_MAX) {
        fprintf(stderr, "cledgerd: --data-dir is longer than %d bytes\n", CLEDGERD_DATA_DIR_MAX);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    /* Descriptors: up to 1,024 client connections (net/http.c), the ledger's read descriptors of
     * committed chunks (64), raft log segments and the index. Debian's default soft limit is
     * 1,024; raise it to the hard limit (at most 65,536), as servers usually do. */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max &&
        nofile.rlim_cur < 65536) {
        nofile.rlim_cur = nofile.rlim_max < 65536 ? nofile.rlim_max : 65536;
        (void)setrlimit(RLIMIT_NOFILE, &nofile);
    }

    /* One cledgerd per data directory: a second one would append to the same raft log and ledger
     * files, hand out the same transaction ids, and leave a directory that no longer starts. The
     * lock goes with the process, a crash included. */
    int dir_lock = -1;
    int lrc = cl_mkdir_durable(d.s.data_dir, 0700);
    if (lrc == CL_OK)
        lrc = cl_dir_lock(d.s.data_dir, &dir_lock);
    if (lrc == CL_ELOCKED) {
        fprintf(stderr, "cledgerd: %s is in use by another cledgerd process; stop it first\n",
                d.s.data_dir);
        return 1;
    }
    if (lrc < 0) {
        fprintf(stderr, "cledgerd: cannot use the data directory %s: %s\n", d.s.data_dir,
                strerror(errno));
        return 1;
    }

    /* The ledger: create or resume. */
    char probe[1100];
    path_in(&d, "node/ledger_type", probe, sizeof probe);
    struct stat st;
    int fresh = stat(probe, &st) != 0;
    if (fresh && errno != ENOENT) { /* not "absent": a new service must not be made over it */
        fprintf(stderr, "cledgerd: cannot read %s: %s\n", probe, strerror(errno));
        return 1;
    }
    path_in(&d, "ledger", probe, sizeof probe);
    if (!fresh && !cl_dir_has_files(probe)) { /* checked again below, after the open */
        char raft[1100];
        path_in(&d, "raft", raft, sizeof raft);
        if (!cl_dir_has_files(raft)) {
            fprintf(stderr, INTERRUPTED_FIRST_START, d.s.data_dir, d.s.data_dir);
        } else {
            fprintf(stderr, NO_GENESIS, d.s.data_dir);
        }
        return 1;
    }
    if (fresh) {
        /* Without node/ledger_type the directory reads as new; a new service created over the
         * ledger and raft log of an old one would overwrite them with a new genesis. */
        static const char *const held[] = {"ledger", "raft"};
        for (size_t i = 0; i < sizeof held / sizeof held[0]; i++) {
            path_in(&d, held[i], probe, sizeof probe);
            if (cl_dir_has_files(probe)) {
                fprintf(stderr,
                        "cledgerd: %s holds a ledger (%s/) but no node/ledger_type: its node "
                        "files are missing or damaged, and a new service will not be created "
                        "over it; restore them from a backup, or use an empty directory\n",
                        d.s.data_dir, held[i]);
                return 1;
            }
        }
        /* node/ without ledger_type: a first start cut short before its service was created
         * (ledger_type is written before the first entry), with nothing in ledger/ or raft/. */
        path_in(&d, "node", probe, sizeof probe);
        if (cl_dir_has_files(probe)) {
            fprintf(stderr,
                    "cledgerd: %s holds files but no node/ledger_type, and %s/ledger and "
                    "%s/raft are empty: the first start of this directory stopped before its "
                    "service was created, so no entry was ever written. Remove %s and start "
                    "again (or restore node/ledger_type from a backup if it was lost)\n",
                    probe, d.s.data_dir, d.s.data_dir, probe);
            return 1;
        }
        (void)rmdir(probe); /* an empty leftover */
        if (admin_identity(&d, 1) < 0)
            return 1;
    }
    cl_ledger_opts lo = {0};
    lo.dir = d.s.data_dir;
    lo.private_ledger = want_private == 1;
    int rc = fresh ? cl_ledger_create(&lo, &d.ledger) : cl_ledger_open(&lo, &d.ledger);
    if (rc < 0) {
        fprintf(stderr, "cledgerd: cannot %s the ledger in %s: %s\n", fresh ? "create" : "open",
                d.s.data_dir, cl_strerror(rc));
        return 1;
    }
    if (!fresh && cl_ledger_last_seqno(d.ledger) == 0) {
        /* A service's ledger starts with its genesis entries (service, node, secret, signature),
         * written when it was created; a ledger without them has lost its files (or its creation
         * never finished), and raft replaying its log into it would shift every seqno. */
        char raft[1100];
        path_in(&d, "raft", raft, sizeof raft);
        if (cl_dir_has_files(raft))
            fprintf(stderr, NO_GENESIS, d.s.data_dir);
        else
            fprintf(stderr, INTERRUPTED_FIRST_START, d.s.data_dir, d.s.data_dir);
        cl_ledger_close(d.ledger);
        return 1;
    }
    if (!fresh && want_private >= 0 && want_private != cl_ledger_is_private(d.ledger)) {
        fprintf(stderr,
                "cledgerd: %s holds a %s ledger; the ledger type is fixed at creation and "
                "cannot become %s\n",
                d.s.data_dir, cl_ledger_is_private(d.ledger) ? "private" : "public",
                d.s.ledger_type);
        cl_ledger_close(d.ledger);
        return 2;
    }
    if ((!fresh && admin_identity(&d, 0) < 0) || make_tls(&d) < 0) {
        cl_ledger_close(d.ledger);
        return 1;
    }
    /* The raft log (written O_DSYNC by cl_rlog before commit) is a write's durability point. */
    cl_ledger_set_external_durability(d.ledger, 1);
    /* Restart rule: cut back to the last signature; raft re-applies the rest. The raft log is
     * judged first (new_view): if it cannot start, the ledger is left as it was. A new service's
     * raft directory was found empty above. */
    char raft_dir[1100];
    path_in(&d, "raft", raft_dir, sizeof raft_dir);
    uint64_t applied = 0;
    rc = cl_ledger_signed_raft_index(d.ledger, &applied);
    if (rc == CL_OK && !fresh && new_view(&d, raft_dir, applied) < 0) {
        cl_ledger_close(d.ledger);
        return 1;
    }
    if (rc == CL_OK)
        rc = cl_ledger_truncate(d.ledger, cl_ledger_signed_seqno(d.ledger));
    if (rc < 0) {
        fprintf(stderr, "cledgerd: cannot prepare the ledger for consensus: %s\n", cl_strerror(rc));
        cl_ledger_close(d.ledger);
        return 1;
    }

    d.loop = uv_default_loop();
    /* the loop-lag watch needs the time the loop slept in its polls */
    (void)uv_loop_configure(d.loop, UV_METRICS_IDLE_TIME);
    cl_node_opts no = {0};
    no.ledger = d.ledger;
    no.writer.submit = w_submit;
    no.writer.is_leader = w_is_leader;
    no.writer.term = w_term;
    no.writer.error = w_error;
    no.writer.impl = &d;
    no.loop = d.loop;
    no.ledger_id = d.s.ledger_id;
    no.tls_cert_pem = d.tls_cert_pem;
    no.service_cert_pem = cl_ledger_service_cert_pem(d.ledger);
    no.sig_interval_ms = d.s.sig_interval_ms;
    no.sig_max_entries = d.s.sig_max_entries;
    no.max_body_bytes = d.s.max_body_bytes;
    no.reply_backlog = reply_backlog;
    no.reply_backlog_arg = &d;
    rc = cl_node_new(&no, &d.node);
    char raft_addr[300];
    snprintf(raft_addr, sizeof raft_addr, "127.0.0.1:%d", d.port ? d.port + 1000 : 9443);
    cl_consensus_opts co = {0};
    co.dir = raft_dir;
    co.id = 1;
    co.address = raft_addr;
    co.applied_index = applied;
    co.log_io = d.s.log_io;
    co.became_leader = became_leader;
    co.leader_arg = &d;
    cl_consensus_fsm fsm = {fsm_apply, fsm_batch, fsm_snapshot, fsm_completions, &d};
    if (rc == CL_OK)
        rc = cl_consensus_start(d.loop, &co, &fsm, &d.raft);
    if (rc == CL_OK) {
        no.writer.impl = &d;
        rc = cl_node_set_writer(d.node, &no.writer);
    }
    if (rc == CL_OK)
        rc = cl_node_start(d.node);
    cl_http_server_opts ho = {0};
    ho.host = d.host;
    ho.port = d.port;
    ho.tls = d.tls;
    ho.handler = on_request;
    ho.handler_arg = &d;
    ho.max_body_bytes = d.s.max_body_bytes;
    /* Connections get the descriptors that the ledger's read descriptors (64), the raft log, the
     * index and the loops' own do not need, so a full house of clients makes accept fail (the
     * server closes those at once) and never a ledger or log open. */
    struct rlimit fdl;
    if (getrlimit(RLIMIT_NOFILE, &fdl) == 0 && fdl.rlim_cur != RLIM_INFINITY &&
        fdl.rlim_cur < 1024 + FD_RESERVE) {
        ho.max_connections = fdl.rlim_cur > FD_RESERVE + 16 ? fdl.rlim_cur - FD_RESERVE : 16;
        cl_logf(CL_LOG_WARN,
                "the descriptor limit is %llu: at most %zu client connections (raise it with "
                "ulimit -n for the default 1,024)",
                (unsigned long long)fdl.rlim_cur, ho.max_connections);
    }
    if (d.s.http_threads >= 0) {
        ho.worker_threads = (unsigned)d.s.http_threads;
    } else {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        ho.worker_threads = ncpu < 1 ? 1 : ncpu > 64 ? 64 : (unsigned)ncpu;
    }
    ho.access_log = 1;
    if (rc == CL_OK)
        rc = cl_http_server_start(d.loop, &ho, &d.http);
    if (rc < 0) {
        fprintf(stderr, "cledgerd: start-up failed: %s\n", cl_strerror(rc));
        return 1;
    }
    uv_signal_init(d.loop, &d.sigterm);
    uv_signal_init(d.loop, &d.sigint);
    d.sigterm.data = d.sigint.data = &d;
    uv_signal_start(&d.sigterm, on_signal, SIGTERM);
    uv_signal_start(&d.sigint, on_signal, SIGINT);
    uv_prepare_init(d.loop, &d.lag);
    d.lag.data = &d;
    uv_prepare_start(&d.lag, on_lag);
    uv_unref((uv_handle_t *)&d.lag);
    json_t *f =
        json_pack("{s:s,s:i,s:o,s:s,s:s}", "host", d.host, "port", cl_http_server_port(d.http),
                  "dataDir", cl_log_text(d.s.data_dir), "ledgerType",
                  cl_ledger_is_private(d.ledger) ? "private" : "public", "admin", d.admin_fp);
    cl_log(CL_LOG_INFO, "cledgerd listening", f);
    json_decref(f);
    uv_run(d.loop, UV_RUN_DEFAULT);
    if (d.abandon_raft) {
        /* raft, the node and their handles are left to process exit (see quiesce_closed). */
        cl_logf(CL_LOG_INFO, "cledgerd stopped");
        fflush(NULL);
        _exit(d.exit_code);
    }
    cl_tls_ctx_free(d.tls);
    free(d.tls_cert_pem);
    free(d.node_cert_pem);
    uv_loop_close(d.loop);
    cl_logf(CL_LOG_INFO, "cledgerd stopped");
    return d.exit_code;
}
