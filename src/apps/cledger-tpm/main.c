/*
 * main.c — `cledger-tpm`, a test and operations tool for the TPM 2.0 profile of the attestation
 * service (docs/evidence-tpm.md). It works on the files tpm2-tools writes:
 *
 *   cledger-tpm verify-quote --quote F --sig F --ak-pub F --nonce HEX --pcrs F [--pcr-alg ALG]
 *                            [--ak-cert DER --ca PEM... [--time UNIX]]
 *       verifies a TPMS_ATTEST quote (tpm2_quote -m/-s, AK from tpm2_readpublic -f tss, PCR values
 *       as tpm2_quote -o or {"sha256":{"0":"<hex>",...}} JSON) and prints the TPM claims as JSON.
 *   cledger-tpm make-credential --ek-pub F --ak-name F --secret F --out-blob F --out-secret F
 *                               [--out-tpm2-tools F]
 *       TPM2_MakeCredential in software; --out-tpm2-tools writes the file tpm2_activatecredential
 *       -i reads.
 *   cledger-tpm verify-ek --ek-cert F --ca PEM... [--ek-pub F] [--time UNIX]
 *       verifies an EK certificate (DER, as read from NV) against the given CA certificates.
 *
 * Exit status: 0 success, 1 verification or input error (message on stderr), 2 usage.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attest/tpm.h"
#include "base/alloc.h"
#include "base/codec.h"
#include "base/cursor.h"
#include "base/json.h"

#define MAX_FILE (4u << 20)
#define MAX_CAS 16

static int usage(void)
{
    fprintf(stderr,
            "usage:\n"
            "  cledger-tpm verify-quote --quote F --sig F --ak-pub F --nonce HEX --pcrs F\n"
            "              [--pcr-alg sha1|sha256|sha384|sha512|any] [--ak-cert DER --ca PEM...]\n"
            "              [--time UNIX]\n"
            "  cledger-tpm make-credential --ek-pub F --ak-name F --secret F --out-blob F\n"
            "              --out-secret F [--out-tpm2-tools F]\n"
            "  cledger-tpm verify-ek --ek-cert F --ca PEM... [--ek-pub F] [--time UNIX]\n");
    return 2;
}

/* A usage error that names what is wrong, then the usage (exit 2). */
static int bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("cledger-tpm: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return usage();
}

static int die(const char *cmd, int rc, const char *msg)
{
    fprintf(stderr, "cledger-tpm %s: %s (%s)\n", cmd, msg, cl_errname(rc));
    return 1;
}

/* Whole file into a cl_malloc'd buffer with a NUL after the data. */
static int read_all(const char *path, uint8_t **out, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return CL_EIO;
    }
    cl_buf b = CL_BUF_INIT;
    uint8_t chunk[4096];
    size_t n;
    int rc = CL_OK;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.len + n > MAX_FILE) {
            snprintf(err, errlen, "%s is larger than %u bytes", path, MAX_FILE);
            rc = CL_EOVERFLOW;
            break;
        }
        if ((rc = cl_buf_append(&b, chunk, n)) < 0)
            break;
    }
    if (rc == CL_OK && ferror(f)) {
        snprintf(err, errlen, "cannot read %s", path);
        rc = CL_EIO;
    }
    fclose(f);
    if (rc == CL_OK)
        rc = cl_buf_u8(&b, 0);
    if (rc < 0) {
        if (rc == CL_ENOMEM)
            snprintf(err, errlen, "out of memory reading %s", path);
        cl_buf_free(&b);
        return rc;
    }
    *out = b.data;
    *len = b.len - 1;
    return CL_OK;
}

/* Writes the file whole or not at all: a failed write removes what it left. */
static int write_all(const char *path, const uint8_t *p, size_t n, char *err, size_t errlen)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return CL_EIO;
    }
    int ok = fwrite(p, 1, n, f) == n;
    int e = errno;
    if (fclose(f) != 0 && ok) {
        ok = 0;
        e = errno;
    }
    if (!ok) {
        (void)remove(path);
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(e));
        return CL_EIO;
    }
    return CL_OK;
}

typedef struct {
    const char *quote, *sig, *ak_pub, *nonce, *pcrs, *pcr_alg, *ak_cert, *time;
    const char *ek_pub, *ak_name, *secret, *out_blob, *out_secret, *out_tools, *ek_cert;
    const char *ca[MAX_CAS];
    size_t nca;
} opts;

static int parse_opts(int argc, char **argv, opts *o)
{
    memset(o, 0, sizeof *o);
    static const struct {
        const char *flag;
        size_t off;
    } FLAGS[] = {
        {"--quote", offsetof(opts, quote)},
        {"--sig", offsetof(opts, sig)},
        {"--ak-pub", offsetof(opts, ak_pub)},
        {"--nonce", offsetof(opts, nonce)},
        {"--pcrs", offsetof(opts, pcrs)},
        {"--pcr-alg", offsetof(opts, pcr_alg)},
        {"--ak-cert", offsetof(opts, ak_cert)},
        {"--time", offsetof(opts, time)},
        {"--ek-pub", offsetof(opts, ek_pub)},
        {"--ak-name", offsetof(opts, ak_name)},
        {"--secret", offsetof(opts, secret)},
        {"--out-blob", offsetof(opts, out_blob)},
        {"--out-secret", offsetof(opts, out_secret)},
        {"--out-tpm2-tools", offsetof(opts, out_tools)},
        {"--ek-cert", offsetof(opts, ek_cert)},
    };
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
        if (strncmp(argv[i], "--", 2) != 0) {
            fprintf(stderr, "cledger-tpm: unexpected argument %s (options are --name VALUE)\n",
                    argv[i]);
            return -1;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "cledger-tpm: %s needs a value\n", argv[i]);
            return -1;
        }
        if (strcmp(argv[i], "--ca") == 0) {
            if (o->nca == MAX_CAS) {
                fprintf(stderr, "cledger-tpm: at most %d --ca files\n", MAX_CAS);
                return -1;
            }
            o->ca[o->nca++] = argv[++i];
            continue;
        }
        size_t k;
        for (k = 0; k < sizeof FLAGS / sizeof FLAGS[0]; k++)
            if (strcmp(argv[i], FLAGS[k].flag) == 0)
                break;
        if (k == sizeof FLAGS / sizeof FLAGS[0]) {
            fprintf(stderr, "cledger-tpm: unknown option %s\n", argv[i]);
            return -1;
        }
        *(const char **)((char *)o + FLAGS[k].off) = argv[++i];
    }
    return 0;
}

static int parse_time(const char *s, int64_t *out)
{
    if (s == NULL) {
        *out = (int64_t)time(NULL);
        return 0;
    }
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0)
        return -1;
    *out = v;
    return 0;
}

/* The --ca files concatenated. */
static int read_cas(const opts *o, cl_buf *pem, char *err, size_t errlen)
{
    for (size_t i = 0; i < o->nca; i++) {
        uint8_t *p;
        size_t n;
        int rc = read_all(o->ca[i], &p, &n, err, errlen);
        if (rc < 0)
            return rc;
        rc = cl_buf_append(pem, p, n);
        if (rc == CL_OK)
            rc = cl_buf_u8(pem, '\n');
        cl_free(p);
        if (rc < 0) {
            snprintf(err, errlen, "out of memory");
            return rc;
        }
    }
    return CL_OK;
}

static int load_public(const char *path, cl_tpm_public *pub, char *err, size_t errlen)
{
    uint8_t *p;
    size_t n;
    char perr[200];
    int rc = read_all(path, &p, &n, err, errlen);
    if (rc < 0)
        return rc;
    rc = cl_tpm_public_parse(p, n, pub, perr, sizeof perr);
    cl_free(p);
    if (rc < 0)
        snprintf(err, errlen, "%s: %s", path, perr);
    return rc;
}

/* A PCR file is JSON when its first non-blank byte is '{', else tpm2_quote's -o dump. */
static int load_pcrs(const char *path, cl_tpm_pcrs *pcrs, char *err, size_t errlen)
{
    uint8_t *p;
    size_t n;
    int rc = read_all(path, &p, &n, err, errlen);
    if (rc < 0)
        return rc;
    size_t i = 0;
    while (i < n && (p[i] == ' ' || p[i] == '\n' || p[i] == '\r' || p[i] == '\t'))
        i++;
    char perr[200];
    if (i < n && p[i] == '{')
        rc = cl_tpm_pcrs_parse_json((const char *)p, n, pcrs, perr, sizeof perr);
    else
        rc = cl_tpm_pcrs_parse_tpm2tools(p, n, pcrs, perr, sizeof perr);
    cl_free(p);
    if (rc < 0)
        snprintf(err, errlen, "%s: %s", path, perr);
    return rc;
}

static int cmd_verify_quote(const opts *o)
{
    const char *cmd = "verify-quote";
    if (o->quote == NULL || o->sig == NULL || o->ak_pub == NULL || o->nonce == NULL ||
        o->pcrs == NULL)
        return bad_usage("%s needs --quote, --sig, --ak-pub, --nonce and --pcrs", cmd);
    if (o->ak_cert != NULL && o->nca == 0)
        return bad_usage("%s: --ak-cert needs at least one --ca", cmd);
    char err[512];
    uint8_t *quote = NULL, *sig = NULL, *nonce = NULL, *akc = NULL;
    size_t qn = 0, sn = 0, nn = 0, akcn = 0;
    cl_tpm_public ak;
    memset(&ak, 0, sizeof ak);
    cl_tpm_pcrs *pcrs = cl_malloc(sizeof *pcrs);
    cl_buf cas = CL_BUF_INIT;
    json_t *claims = NULL;
    int64_t now;
    int rc, status = 1, validated = 0;
    uint16_t want = CL_TPM_ALG_SHA256;

    if (pcrs == NULL) {
        rc = CL_ENOMEM;
        snprintf(err, sizeof err, "out of memory");
        goto out;
    }
    if (o->pcr_alg != NULL) {
        want = strcmp(o->pcr_alg, "any") == 0 ? 0 : cl_tpm_hash_from_name(o->pcr_alg);
        if (want == 0 && strcmp(o->pcr_alg, "any") != 0) {
            status = bad_usage("--pcr-alg %s: not sha1, sha256, sha384, sha512 or any", o->pcr_alg);
            goto done;
        }
    }
    if (parse_time(o->time, &now) < 0) {
        status = bad_usage("--time %s: not a Unix time (whole seconds, 0 or more)", o->time);
        goto done;
    }
    if ((rc = read_all(o->quote, &quote, &qn, err, sizeof err)) < 0 ||
        (rc = read_all(o->sig, &sig, &sn, err, sizeof err)) < 0 ||
        (rc = load_public(o->ak_pub, &ak, err, sizeof err)) < 0 ||
        (rc = load_pcrs(o->pcrs, pcrs, err, sizeof err)) < 0)
        goto out;
    rc = cl_hex_decode_alloc(o->nonce, strlen(o->nonce), &nonce, &nn);
    if (rc < 0) {
        snprintf(err, sizeof err, "--nonce %s hex digits",
                 strlen(o->nonce) % 2 ? "is an odd number of" : "is not all");
        goto out;
    }
    if ((rc = cl_tpm_quote_verify(quote, qn, sig, sn, &ak, nonce, nn, pcrs, err, sizeof err)) < 0)
        goto out;
    cl_tpm_attest a;
    if ((rc = cl_tpm_attest_parse(quote, qn, &a, err, sizeof err)) < 0)
        goto out;
    if (want != 0) {
        int found = 0;
        for (uint32_t i = 0; i < a.nbanks; i++)
            found |= a.banks[i].hash_alg == want;
        if (!found) {
            rc = CL_EBINDING;
            snprintf(err, sizeof err, "the quote does not select the %s bank (--pcr-alg)",
                     cl_tpm_alg_name(want));
            goto out;
        }
    }
    if (o->ak_cert != NULL) {
        if ((rc = read_all(o->ak_cert, &akc, &akcn, err, sizeof err)) < 0 ||
            (rc = read_cas(o, &cas, err, sizeof err)) < 0 ||
            (rc = cl_tpm_ak_cert_verify(akc, akcn, (const char *)cas.data, cas.len, &ak, now, err,
                                        sizeof err)) < 0)
            goto out;
        validated = 1;
    }
    claims = json_object();
    if (claims == NULL || (rc = cl_tpm_claims(&a, pcrs, &ak, validated, claims)) < 0) {
        rc = claims == NULL ? CL_ENOMEM : rc;
        snprintf(err, sizeof err, "cannot build the claims");
        goto out;
    }
    char *text = json_dumps(claims, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (text == NULL) {
        rc = CL_ENOMEM;
        snprintf(err, sizeof err, "out of memory");
        goto out;
    }
    printf("%s\n", text);
    cl_free(text);
    rc = CL_OK;
out:
    status = rc < 0 ? die(cmd, rc, err) : 0;
done:
    json_decref(claims);
    cl_tpm_public_free(&ak);
    cl_free(pcrs);
    cl_free(quote);
    cl_free(sig);
    cl_free(nonce);
    cl_free(akc);
    cl_buf_free(&cas);
    return status;
}

static int cmd_make_credential(const opts *o)
{
    const char *cmd = "make-credential";
    if (o->ek_pub == NULL || o->ak_name == NULL || o->secret == NULL || o->out_blob == NULL ||
        o->out_secret == NULL)
        return bad_usage("%s needs --ek-pub, --ak-name, --secret, --out-blob and --out-secret",
                         cmd);
    char err[512];
    cl_tpm_public ek;
    memset(&ek, 0, sizeof ek);
    uint8_t *name = NULL, *secret = NULL;
    size_t nl = 0, sl = 0;
    cl_buf blob = CL_BUF_INIT, enc = CL_BUF_INIT, file = CL_BUF_INIT;
    int rc;
    if ((rc = load_public(o->ek_pub, &ek, err, sizeof err)) < 0 ||
        (rc = read_all(o->ak_name, &name, &nl, err, sizeof err)) < 0 ||
        (rc = read_all(o->secret, &secret, &sl, err, sizeof err)) < 0 ||
        (rc = cl_tpm_make_credential(&ek, name, nl, secret, sl, &blob, &enc, err, sizeof err)) <
            0 ||
        (rc = write_all(o->out_blob, blob.data, blob.len, err, sizeof err)) < 0 ||
        (rc = write_all(o->out_secret, enc.data, enc.len, err, sizeof err)) < 0)
        goto out;
    if (o->out_tools != NULL) {
        if ((rc = cl_tpm_credential_file(blob.data, blob.len, enc.data, enc.len, &file)) < 0) {
            snprintf(err, sizeof err, "out of memory");
            goto out;
        }
        if ((rc = write_all(o->out_tools, file.data, file.len, err, sizeof err)) < 0)
            goto out;
    }
    rc = CL_OK;
out:
    if (secret != NULL)
        memset(secret, 0, sl);
    cl_free(secret);
    cl_free(name);
    cl_buf_free(&blob);
    cl_buf_free(&enc);
    cl_buf_free(&file);
    cl_tpm_public_free(&ek);
    return rc < 0 ? die(cmd, rc, err) : 0;
}

static int cmd_verify_ek(const opts *o)
{
    const char *cmd = "verify-ek";
    int64_t now;
    if (o->ek_cert == NULL || o->nca == 0)
        return bad_usage("%s needs --ek-cert and at least one --ca", cmd);
    if (parse_time(o->time, &now) < 0)
        return bad_usage("--time %s: not a Unix time (whole seconds, 0 or more)", o->time);
    char err[512];
    cl_tpm_public ek;
    memset(&ek, 0, sizeof ek);
    uint8_t *der = NULL;
    size_t dn = 0;
    cl_buf cas = CL_BUF_INIT;
    int rc;
    if ((rc = read_all(o->ek_cert, &der, &dn, err, sizeof err)) < 0 ||
        (rc = read_cas(o, &cas, err, sizeof err)) < 0 ||
        (o->ek_pub != NULL && (rc = load_public(o->ek_pub, &ek, err, sizeof err)) < 0))
        goto out;
    rc = cl_tpm_ek_cert_verify(der, dn, (const char *)cas.data, cas.len,
                               o->ek_pub != NULL ? &ek : NULL, now, err, sizeof err);
    if (rc == CL_OK)
        printf("EK certificate OK%s\n",
               o->ek_pub != NULL ? " (key matches the EK public area)" : "");
out:
    cl_free(der);
    cl_buf_free(&cas);
    cl_tpm_public_free(&ek);
    return rc < 0 ? die(cmd, rc, err) : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    opts o;
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage();
        return 0;
    }
    int prc = parse_opts(argc, argv, &o);
    if (prc < 0)
        return usage();
    if (prc > 0) { /* --help after the command */
        usage();
        return 0;
    }
    cl_json_init();
    if (strcmp(cmd, "verify-quote") == 0)
        return cmd_verify_quote(&o);
    if (strcmp(cmd, "make-credential") == 0)
        return cmd_make_credential(&o);
    if (strcmp(cmd, "verify-ek") == 0)
        return cmd_verify_ek(&o);
    fprintf(stderr, "cledger-tpm: unknown command %s\n", cmd);
    return usage();
}
