/*
 * test_astore.c — the attestation service's durable store (src/attest/store.c): policies and
 * certificates survive reopening, every change is in the history before it is visible, backups
 * round-trip, and bad backups change nothing.
 */
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

#include "attest/store.h"
#include "base/json.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/cl-astore-XXXXXX");
    assert_non_null(mkdtemp(dir));
    cl_json_init();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static size_t count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = 0;
    int c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static void test_types(void **state)
{
    (void)state;
    assert_int_equal(cl_atype_find("SgxEnclave", 10), 0);
    assert_int_equal(cl_atype_find("sgxenclave", 10), 0);
    assert_int_equal(cl_atype_find("TPM", 3), 4);
    assert_int_equal(cl_atype_find("Sgx", 3), -1);
    assert_int_equal(cl_atype_find("SgxEnclaveX", 11), -1);
}

static void test_policies_persist(void **state)
{
    (void)state;
    char err[256];
    cl_astore *s = NULL;
    assert_int_equal(cl_astore_open(dir, &s, err, sizeof err), CL_OK);
    assert_null(cl_astore_policy(s, 0));
    assert_int_equal(cl_astore_policy_set(s, 0, "a.b.", "tester"), CL_OK);
    assert_int_equal(cl_astore_policy_set(s, 2, "c.d.e", "tester"), CL_OK);
    assert_int_equal(cl_astore_policy_set(s, 0, "a2.b2.", "tester"), CL_OK);
    assert_string_equal(cl_astore_policy(s, 0), "a2.b2.");
    assert_int_equal(cl_astore_policy_reset(s, 2, "tester"), CL_OK);
    assert_null(cl_astore_policy(s, 2));
    assert_int_equal(cl_astore_history_len(s), 4);
    assert_int_equal(cl_astore_policy_set(s, -1, "x", "t"), CL_EINVAL);
    assert_int_equal(cl_astore_policy_set(s, CL_ATYPE_COUNT, "x", "t"), CL_EINVAL);
    cl_astore_close(s);

    s = NULL;
    assert_int_equal(cl_astore_open(dir, &s, err, sizeof err), CL_OK);
    assert_string_equal(cl_astore_policy(s, 0), "a2.b2.");
    assert_null(cl_astore_policy(s, 2));
    assert_int_equal(cl_astore_history_len(s), 4);
    char hp[128];
    snprintf(hp, sizeof hp, "%s/history.jsonl", dir);
    assert_int_equal(count_lines(hp), 4);
    struct stat st;
    assert_int_equal(stat(hp, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* every record names who did it and what */
    FILE *f = fopen(hp, "r");
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        json_t *j = NULL;
        assert_int_equal(cl_json_parse(line, strlen(line), sizeof line, &j, err, sizeof err),
                         CL_OK);
        assert_string_equal(json_string_value(json_object_get(j, "who")), "tester");
        assert_int_equal(json_integer_value(json_object_get(j, "seq")), ++n);
        assert_non_null(json_string_value(json_object_get(j, "action")));
        json_decref(j);
    }
    fclose(f);
    cl_astore_close(s);
}

static const uint8_t der_a[] = {0x30, 0x03, 0x02, 0x01, 0x01};
static const uint8_t der_b[] = {0x30, 0x03, 0x02, 0x01, 0x02};

static void test_certificates(void **state)
{
    (void)state;
    char err[256];
    cl_astore *s = NULL;
    int changed;
    assert_int_equal(cl_astore_open(dir, &s, err, sizeof err), CL_OK);
    assert_int_equal(cl_astore_cert_add(s, der_a, sizeof der_a, "t", &changed), CL_OK);
    assert_int_equal(changed, 1);
    assert_int_equal(cl_astore_cert_add(s, der_a, sizeof der_a, "t", &changed), CL_OK);
    assert_int_equal(changed, 0); /* idempotent */
    assert_int_equal(cl_astore_cert_add(s, der_b, sizeof der_b, "t", &changed), CL_OK);
    assert_int_equal(cl_astore_cert_count(s), 2);
    assert_int_equal(cl_astore_cert_remove(s, der_a, sizeof der_a, "t", &changed), CL_OK);
    assert_int_equal(changed, 1);
    assert_int_equal(cl_astore_cert_remove(s, der_a, sizeof der_a, "t", &changed), CL_OK);
    assert_int_equal(changed, 0);
    cl_astore_close(s);
    s = NULL;
    assert_int_equal(cl_astore_open(dir, &s, err, sizeof err), CL_OK);
    assert_int_equal(cl_astore_cert_count(s), 1);
    size_t len;
    const uint8_t *d = cl_astore_cert(s, 0, &len);
    assert_int_equal(len, sizeof der_b);
    assert_memory_equal(d, der_b, len);
    assert_int_equal(cl_astore_cert_find(s, der_a, sizeof der_a), -1);
    cl_astore_close(s);
}

static void test_backup_roundtrip(void **state)
{
    (void)state;
    char err[256];
    cl_astore *s = NULL;
    int changed;
    assert_int_equal(cl_astore_open(dir, &s, err, sizeof err), CL_OK);
    assert_int_equal(cl_astore_policy_set(s, 1, "p.q.", "t"), CL_OK);
    assert_int_equal(cl_astore_cert_add(s, der_a, sizeof der_a, "t", &changed), CL_OK);
    json_t *backup = NULL;
    assert_int_equal(cl_astore_export(s, &backup), CL_OK);
    /* change everything, then restore */
    assert_int_equal(cl_astore_policy_set(s, 1, "other.", "t"), CL_OK);
    assert_int_equal(cl_astore_policy_set(s, 3, "new.", "t"), CL_OK);
    assert_int_equal(cl_astore_cert_remove(s, der_a, sizeof der_a, "t", &changed), CL_OK);
    assert_int_equal(cl_astore_cert_add(s, der_b, sizeof der_b, "t", &changed), CL_OK);
    uint64_t before = cl_astore_history_len(s);
    assert_int_equal(cl_astore_import(s, backup, "restore", err, sizeof err), CL_OK);
    assert_true(cl_astore_history_len(s) > before);
    assert_string_equal(cl_astore_policy(s, 1), "p.q.");
    assert_null(cl_astore_policy(s, 3));
    assert_int_equal(cl_astore_cert_count(s), 1);
    assert_true(cl_astore_cert_find(s, der_a, sizeof der_a) >= 0);

    /* bad backups are refused before anything changes */
    uint64_t h = cl_astore_history_len(s);
    const char *bad[] = {
        "{}",
        "{\"format\":\"cledger-attestd-backup-v1\",\"policies\":[],\"certificates\":[]}",
        "{\"format\":\"cledger-attestd-backup-v1\",\"policies\":{\"Nope\":\"x\"},\"certificates\":["
        "]}",
        "{\"format\":\"cledger-attestd-backup-v1\",\"policies\":{\"Tpm\":1},\"certificates\":[]}",
        "{\"format\":\"cledger-attestd-backup-v1\",\"policies\":{},\"certificates\":[\"***\"]}",
        "{\"format\":\"cledger-attestd-backup-v1\",\"policies\":{},\"certificates\":{}}",
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        json_t *j = NULL;
        assert_int_equal(cl_json_parse(bad[k], strlen(bad[k]), 4096, &j, err, sizeof err), CL_OK);
        err[0] = '\0';
        assert_true(cl_astore_import(s, j, "restore", err, sizeof err) < 0);
        assert_true(err[0] != '\0');
        json_decref(j);
    }
    assert_int_equal(cl_astore_history_len(s), h);
    assert_string_equal(cl_astore_policy(s, 1), "p.q.");
    json_decref(backup);
    cl_astore_close(s);
}

static void test_damaged_state_refused(void **state)
{
    (void)state;
    char err[256], p[128];
    snprintf(p, sizeof p, "%s/certificates.json", dir);
    FILE *f = fopen(p, "w");
    fputs("{\"certificates\": [\"not base64!\"]}", f);
    fclose(f);
    cl_astore *s = NULL;
    err[0] = '\0';
    assert_true(cl_astore_open(dir, &s, err, sizeof err) < 0);
    assert_null(s);
    assert_non_null(strstr(err, "certificates.json"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types),
        cmocka_unit_test_setup_teardown(test_policies_persist, setup, teardown),
        cmocka_unit_test_setup_teardown(test_certificates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backup_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_state_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
