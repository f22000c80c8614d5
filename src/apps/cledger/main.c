/*
 * main.c — the `cledger` command-line tool: subcommand dispatch.
 */
#include <stdio.h>
#include <string.h>

#include "commands.h"

#ifndef CLEDGER_VERSION
#define CLEDGER_VERSION "0.1.0-dev"
#endif

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static int cmd_help(int argc, char **argv);
static int cmd_version(int argc, char **argv);

static const command COMMANDS[] = {
    {"help", cmd_help, "show this help"},
    {"version", cmd_version, "print the version"},
    {"verify-receipt", cmd_verify_receipt,
     "verify a write receipt: RECEIPT.json --service-cert PEM [--claims CLAIMS.json] [--json]"},
    /* verify-ledger: implemented in cmd_verify_ledger.c (owned by the ledger verifier). */
    {"verify-ledger", cmd_verify_ledger,
     "verify a ledger directory offline: DIR --service-cert PEM [--json]"},
    {"ledger", cmd_ledger, "local ledger directory: init|append|get|receipt|status|rotate-*"},
    /* Network client of cledgerd (cmd_client.c); see docs/client.md. */
    {"put", cmd_client, "write an entry: [--collection C] [--wait] CONTENTS|- | --batch FILE"},
    {"get", cmd_client, "read an entry: TXID [--collection C]"},
    {"list", cmd_client, "list entries: [--collection C] [--from TXID] [--to TXID]"},
    {"status", cmd_client, "transaction status: TXID"},
    {"wait", cmd_client, "wait until a transaction commits: TXID [--timeout SECONDS]"},
    {"receipt", cmd_client, "write receipt: TXID [--verify] [--out FILE]"},
    {"user", cmd_client, "users: add ID|CERT.pem --role ROLE | get ID | rm ID | list"},
    {"identity", cmd_client, "service certificate: [--save FILE] [--insecure-first-contact]"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: cledger <command> [arguments]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(f, "  %-16s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(f, "\nRun `cledger <command> --help` for the options of a command.\n");
    fprintf(f, "Network commands take --endpoint, --service-cert, --cert, --key (or --profile FILE)"
               " and --json.\n");
}

static int cmd_help(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    usage(stdout);
    return CLEDGER_EXIT_OK;
}

static int cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("cledger %s\n", CLEDGER_VERSION);
    return CLEDGER_EXIT_OK;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLEDGER_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
        return cmd_help(argc - 1, argv + 1);
    if (strcmp(name, "--version") == 0)
        return cmd_version(argc - 1, argv + 1);
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++) {
        if (strcmp(name, COMMANDS[i].name) == 0)
            return COMMANDS[i].run(argc - 1, argv + 1);
    }
    if (name[0] == '-') /* global client options before the subcommand */
        return cmd_client_global(argc, argv);
    fprintf(stderr, "cledger: unknown command '%s'\n\n", name);
    usage(stderr);
    return CLEDGER_EXIT_USAGE;
}
