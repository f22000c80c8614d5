/*
 * commands.h — subcommands of the `cledger` program. Each takes the arguments from the subcommand
 * name on (argv[0] is the subcommand) and returns the process exit status: 0 success, 1 the input
 * was checked and is invalid, 2 usage error or unreadable input.
 */
#ifndef CLEDGER_APPS_CLEDGER_COMMANDS_H
#define CLEDGER_APPS_CLEDGER_COMMANDS_H

#define CLEDGER_EXIT_OK 0
#define CLEDGER_EXIT_INVALID 1
#define CLEDGER_EXIT_USAGE 2
#define CLEDGER_EXIT_NETWORK 3 /* network client: no answer (connection, TLS, timeout) */

int cmd_verify_receipt(int argc, char **argv);
int cmd_verify_ledger(int argc, char **argv);
int cmd_ledger(int argc, char **argv);
/* Network client (cmd_client.c): put, get, list, status, wait, receipt, user, identity. */
int cmd_client(int argc, char **argv);
/* The same when global options come before the subcommand: argv[0] is the program name. */
int cmd_client_global(int argc, char **argv);

#endif
