/*
 * cmd_verify_receipt.c — `cledger verify-receipt`: verify a write receipt offline
 * (spec/receipts.md §3).
 *
 *   cledger verify-receipt RECEIPT.json --service-cert PEM [--claims CLAIMS.json] [--json]
 *
 * RECEIPT.json is a receipt (camelCase or legacy snake_case) or the whole GET /receipt envelope;
 * the envelope's applicationClaims are checked when present, and so is --claims when given.
 * Exit status: 0 valid, 1 invalid, 2 usage error or unreadable input.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/codec.h"
#include "base/json.h"
#include "commands.h"
#include "crypto/x509.h"
#include "ledger/receipt.h"

#define VR_MAX_INPUT (CL_RECEIPT_MAX_JSON + 1)

static void usage(FILE *f)
{
    fprintf(f, "usage: cledger verify-receipt RECEIPT.json --service-cert PEM "
               "[--claims CLAIMS.json] [--json]\n"
               "\n"
               "  RECEIPT.json   receipt (camelCase or snake_case) or GET /receipt envelope\n"
               "  --service-cert PEM file of the service identity certificate\n"
               "  --claims FILE  application claims (JSON list) to check against claimsDigest\n"
               "  --json         print the result as a JSON object\n"
               "\nexit status: 0 valid, 1 invalid, 2 usage error or unreadable input\n");
}

/* Whole file into a NUL-terminated heap buffer; at most `max` bytes. */
static int read_file(const char *path, size_t max, char **out, size_t *len, char *err,
                     size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, n = 0;
    char *buf = cl_malloc(cap + 1);
    int ok = buf != NULL;
    while (ok) {
        if (n == cap) {
            if (cap >= max) {
                snprintf(err, errlen, "%s is larger than %zu bytes", path, max);
                ok = 0;
                break;
            }
            size_t ncap = cap * 2 > max ? max : cap * 2;
            char *p = cl_realloc(buf, ncap + 1);
            if (p == NULL) {
                ok = 0;
                break;
            }
            buf = p;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        if (got == 0) {
            if (ferror(f)) {
                snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
                ok = 0;
            }
            break;
        }
        n += got;
    }
    if (buf == NULL || (!ok && err[0] == '\0'))
        snprintf(err, errlen, "out of memory reading %s", path);
    fclose(f);
    if (!ok) {
        cl_free(buf);
        return -1;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* "<view>.<seqno>" from commit evidence "ce:<view>.<seqno>:<hex>", for display only. */
static void txid_from_ce(const cl_receipt *r, char *out, size_t cap)
{
    snprintf(out, cap, "unknown");
    const char *ce = r->commit_evidence;
    if (ce == NULL || strncmp(ce, "ce:", 3) != 0)
        return;
    const char *p = ce + 3, *end = strchr(p, ':');
    if (end == NULL || (size_t)(end - p) >= cap || end == p)
        return;
    int dot = 0;
    for (const char *q = p; q < end; q++) {
        if (*q == '.')
            dot++;
        else if (*q < '0' || *q > '9')
            return;
    }
    if (dot != 1)
        return;
    snprintf(out, cap, "%.*s", (int)(end - p), p);
}

static int print_json(json_t *o)
{
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (s == NULL) {
        fprintf(stderr, "verify-receipt: out of memory\n");
        return -1;
    }
    printf("%s\n", s);
    cl_free(s);
    return 0;
}

static int report_invalid(int as_json, const char *step, int err, const char *message)
{
    if (as_json) {
        json_t *o = json_pack("{s:b,s:s,s:s,s:s}", "valid", 0, "step", step, "error",
                              cl_errname(err), "message", message);
        if (o == NULL || print_json(o) < 0)
            return CLEDGER_EXIT_USAGE;
    } else {
        printf("receipt INVALID: %s: %s\n", step, message);
    }
    return CLEDGER_EXIT_INVALID;
}

int cmd_verify_receipt(int argc, char **argv)
{
    const char *receipt_path = NULL, *cert_path = NULL, *claims_path = NULL;
    int as_json = 0;
    cl_json_init(); /* jansson allocates through cl_malloc from here on */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return CLEDGER_EXIT_OK;
        } else if (strcmp(a, "--json") == 0) {
            as_json = 1;
        } else if (strcmp(a, "--service-cert") == 0 || strcmp(a, "--claims") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "verify-receipt: %s needs a file argument\n", a);
                usage(stderr);
                return CLEDGER_EXIT_USAGE;
            }
            if (strcmp(a, "--claims") == 0)
                claims_path = argv[++i];
            else
                cert_path = argv[++i];
        } else if (strncmp(a, "--service-cert=", 15) == 0) {
            cert_path = a + 15;
        } else if (strncmp(a, "--claims=", 9) == 0) {
            claims_path = a + 9;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "verify-receipt: unknown option '%s'\n", a);
            usage(stderr);
            return CLEDGER_EXIT_USAGE;
        } else if (receipt_path == NULL) {
            receipt_path = a;
        } else {
            fprintf(stderr, "verify-receipt: more than one receipt file given\n");
            usage(stderr);
            return CLEDGER_EXIT_USAGE;
        }
    }
    if (receipt_path == NULL || cert_path == NULL || *receipt_path == '\0' || *cert_path == '\0') {
        fprintf(stderr, "verify-receipt: %s is required\n",
                receipt_path == NULL || *receipt_path == '\0' ? "RECEIPT.json"
                                                              : "--service-cert PEM");
        usage(stderr);
        return CLEDGER_EXIT_USAGE;
    }

    int status = CLEDGER_EXIT_USAGE;
    char err[512] = "";
    char *receipt_text = NULL, *cert_text = NULL, *claims_text = NULL;
    size_t receipt_len = 0, cert_len = 0, claims_len = 0;
    cl_cert *service = NULL;
    json_t *file_claims = NULL, *env_claims = NULL;
    cl_receipt r = CL_RECEIPT_INIT;
    cl_receipt_verdict v;

    if (read_file(receipt_path, VR_MAX_INPUT, &receipt_text, &receipt_len, err, sizeof err) < 0 ||
        read_file(cert_path, CL_RECEIPT_MAX_PEM, &cert_text, &cert_len, err, sizeof err) < 0 ||
        (claims_path != NULL &&
         read_file(claims_path, VR_MAX_INPUT, &claims_text, &claims_len, err, sizeof err) < 0)) {
        fprintf(stderr, "verify-receipt: %s\n", err);
        goto out;
    }
    int rc = cl_cert_from_pem(cert_text, cert_len, &service);
    if (rc < 0) {
        fprintf(stderr, "verify-receipt: %s: not a usable service certificate: %s\n", cert_path,
                cl_strerror(rc));
        goto out;
    }
    if (claims_text != NULL) {
        json_t *raw = NULL;
        rc = cl_json_parse(claims_text, claims_len, CL_RECEIPT_MAX_JSON, &raw, err, sizeof err);
        if (rc < 0) {
            fprintf(stderr, "verify-receipt: %s: not valid JSON: %s\n", claims_path, err);
            goto out;
        }
        rc = cl_json_camel_keys(raw, &file_claims);
        json_decref(raw);
        if (rc < 0) {
            status = report_invalid(as_json, "claims", rc, "claims keys collide after conversion");
            goto out;
        }
    }

    rc = cl_receipt_parse(receipt_text, receipt_len, &r, &env_claims, err, sizeof err);
    if (rc < 0) {
        status = report_invalid(as_json, cl_receipt_step_name(CL_RECEIPT_STEP_SHAPE), rc, err);
        goto out;
    }
    /* --claims first (when given), then the envelope's own claims: both must match. */
    rc = cl_receipt_verify(&r, service, file_claims != NULL ? file_claims : env_claims, &v);
    if (rc == CL_OK && file_claims != NULL && env_claims != NULL)
        rc = cl_receipt_verify(&r, service, env_claims, &v);
    if (rc < 0) {
        status = report_invalid(as_json, cl_receipt_step_name(v.step), rc, v.message);
        goto out;
    }

    /* The transaction the commit evidence names (an envelope's transactionId, when present, has
     * been held to it), digits and one dot only, or "unknown". */
    char txid[CL_RECEIPT_MAX_TXID + 1], root[65], node[65];
    txid_from_ce(&r, txid, sizeof txid);
    cl_hex_encode(v.root, 32, root);
    cl_hex_encode(v.node_id, 32, node);
    if (as_json) {
        char leaf[65];
        cl_hex_encode(v.leaf, 32, leaf);
        json_t *o = json_pack("{s:b,s:s,s:s,s:s,s:s,s:b,s:i}", "valid", 1, "transactionId", txid,
                              "root", root, "leaf", leaf, "nodeId", node, "claimsChecked",
                              file_claims != NULL || env_claims != NULL, "serviceEndorsements",
                              (int)r.n_endorsements);
        if (o == NULL || print_json(o) < 0)
            goto out;
    } else {
        printf("receipt valid: transaction %s, root %s, node %s\n", txid, root, node);
    }
    status = CLEDGER_EXIT_OK;
out:
    cl_receipt_clear(&r);
    json_decref(file_claims);
    json_decref(env_claims);
    cl_cert_free(service);
    cl_free(receipt_text);
    cl_free(cert_text);
    cl_free(claims_text);
    return status;
}
