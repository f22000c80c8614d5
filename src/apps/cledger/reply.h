/*
 * reply.h — what the `cledger` client makes of a server's answers before it trusts or shows them:
 * text escaped for a terminal, nextLink progress, the shape of a user, the identity PEM. Pure
 * functions over untrusted bytes (no I/O), so that tests/fuzz/fuzz_client_reply.c can drive them.
 */
#ifndef CLEDGER_APPS_CLEDGER_REPLY_H
#define CLEDGER_APPS_CLEDGER_REPLY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* How the next character of server text s[0..n) (n >= 1) is shown on a terminal, so that no
 * answer can move the cursor, retitle the window or fake a line of output: \\, \n, \r, \t as
 * such; the other C0 controls, DEL and bytes that are not well-formed UTF-8 as \xNN; the C1
 * controls U+0080..U+009F as \u00NN; printable ASCII and every other UTF-8 character as they
 * are. Writes 1..REPLY_ESCAPE_MAX bytes to out (not terminated), sets *used to the input bytes
 * they stand for (1..4) and returns how many it wrote. */
#define REPLY_ESCAPE_MAX 6
size_t reply_escape_next(const char *s, size_t n, size_t *used, char out[REPLY_ESCAPE_MAX]);

/* Server text for a message: s[0..n) escaped (reply_escape_next) into buf, NUL-terminated, cut
 * with "..." to fit cap (>= 8). s may be NULL ("(none)"). Returns buf. */
const char *reply_esc(const char *s, size_t n, char *buf, size_t cap);

/* reply_esc of a NUL-terminated string (or NULL) into an array of the caller's. */
#define REPLY_ESC(s, buf) reply_esc((s), (s) ? strlen(s) : 0, (buf), sizeof(buf))

/* The seqno of the fromTransactionId query parameter of a path ("/app/...?..."), 0 when it has
 * none or no valid one (cl_url_query_parse, cl_txid_parse). */
uint64_t reply_link_from(const char *path);

/* Whether an answer is a user: LedgerUser {"userId", "assignedRole"} or LedgerUserMultipleRoles
 * {"userId", "assignedRoles": [...]}, all strings. */
int reply_is_user(const json_t *u);

/* Removes every "\u0000" escape that ends a JSON string (directly before its closing quote, also
 * several in a row) from text[0..len), in place; returns the new length (and NUL-terminates when
 * it shrank). An escape is one whose backslash is not itself escaped. The spec's identity
 * examples end the PEM with "\n\u0000", which the strict parser refuses. */
size_t reply_drop_final_nul_escapes(char *text, size_t len);

/* Whether pem[0..n) is one PEM certificate block and nothing else (white space around it
 * allowed), all printable ASCII: what gets saved or printed is then exactly a certificate. pem is
 * a NUL-terminated string of at least n bytes. */
int reply_is_certificate(const char *pem, size_t n);

#endif
