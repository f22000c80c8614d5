/*
 * jmespath.c — JMESPath (https://jmespath.org/specification.html) over jansson values, for the
 * policy function JmesPath (spec/attestation-policy.md §5.6). See jmespath.h for the subset and
 * the ownership rules.
 *
 * Structure: the query is lexed into a token array, parsed by a Pratt parser (binding powers as in
 * the specification's reference grammar) into a tree, and the tree is evaluated recursively. Every
 * evaluation step, produced element and compared value is charged to a caller-owned budget, and
 * the tree depth and input JSON depth are bounded, so neither recursion nor work is unbounded.
 * Values are jansson references: every evaluator returns a new reference (json_null() for null).
 */
#include "attest/jmespath.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/json.h"

/* ---- budget ------------------------------------------------------------------------------- */

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void cl_jmes_budget_init(cl_jmes_budget *b, uint64_t steps, size_t bytes, unsigned cpu_ms)
{
    b->steps = steps;
    b->bytes = bytes;
    b->counter = 0;
    b->deadline_ns = cpu_ms ? thread_cpu_ns() + (uint64_t)cpu_ms * 1000000u : 0;
}

int cl_jmes_charge_steps(cl_jmes_budget *b, uint64_t n, char *err, size_t errlen)
{
    if (n > b->steps) {
        b->steps = 0;
        if (err)
            snprintf(err, errlen, "evaluation exceeds its work limit");
        return CL_EFORMAT;
    }
    b->steps -= n;
    b->counter += n;
    if (b->deadline_ns && b->counter >= 4096) {
        b->counter = 0;
        if (thread_cpu_ns() > b->deadline_ns) {
            b->steps = 0;
            if (err)
                snprintf(err, errlen, "evaluation exceeds its CPU time limit");
            return CL_EFORMAT;
        }
    }
    return CL_OK;
}

int cl_jmes_charge_bytes(cl_jmes_budget *b, size_t n, char *err, size_t errlen)
{
    if (n > b->bytes) {
        b->bytes = 0;
        if (err)
            snprintf(err, errlen, "evaluation exceeds its limit of intermediate data");
        return CL_EFORMAT;
    }
    b->bytes -= n;
    return CL_OK;
}

/* ---- JSON helpers --------------------------------------------------------------------------- */

static int json_depth_ok(const json_t *j, unsigned depth)
{
    if (depth > CL_JMES_MAX_JSON_DEPTH)
        return 0;
    if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v)
        {
            if (!json_depth_ok(v, depth + 1))
                return 0;
        }
    } else if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v)
        {
            if (!json_depth_ok(v, depth + 1))
                return 0;
        }
    }
    return 1;
}

/* jansson reports a failed allocation as a parse error; the allocation seam counts failures. */
static int alloc_failed_since(long before) { return cl_alloc_failures() != before; }

int cl_jmes_parse_json(const char *text, size_t len, json_t **out, cl_jmes_budget *b, char *err,
                       size_t errlen)
{
    *out = NULL;
    CL_TRY(cl_jmes_charge_bytes(b, len, err, errlen));
    cl_json_init();
    json_error_t e;
    long before = cl_alloc_failures();
    json_t *j = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &e);
    if (j == NULL && alloc_failed_since(before))
        return CL_ENOMEM;
    if (j == NULL) {
        if (err)
            snprintf(err, errlen, "invalid JSON at line %d, column %d: %s", e.line, e.column,
                     e.text);
        return CL_EFORMAT;
    }
    if (!json_depth_ok(j, 0)) {
        json_decref(j);
        if (err)
            snprintf(err, errlen, "JSON nested deeper than %u levels", CL_JMES_MAX_JSON_DEPTH);
        return CL_EFORMAT;
    }
    *out = j;
    return CL_OK;
}

/* ---- lexer ---------------------------------------------------------------------------------- */

typedef enum {
    T_EOF,
    T_IDENT,
    T_QIDENT,
    T_NUMBER,
    T_LITERAL,
    T_RAW,
    T_DOT,
    T_STAR,
    T_FLATTEN,
    T_FILTER,
    T_LBRACKET,
    T_RBRACKET,
    T_LBRACE,
    T_RBRACE,
    T_LPAREN,
    T_RPAREN,
    T_COMMA,
    T_COLON,
    T_PIPE,
    T_OR,
    T_AND,
    T_NOT,
    T_EQ,
    T_NE,
    T_LT,
    T_LE,
    T_GT,
    T_GE,
    T_AT,
    T_EXPREF
} tkind;

static const char *tname(tkind k)
{
    static const char *const n[] = {"end of expression",
                                    "identifier",
                                    "quoted identifier",
                                    "number",
                                    "JSON literal",
                                    "raw string",
                                    "'.'",
                                    "'*'",
                                    "'[]'",
                                    "'[?'",
                                    "'['",
                                    "']'",
                                    "'{'",
                                    "'}'",
                                    "'('",
                                    "')'",
                                    "','",
                                    "':'",
                                    "'|'",
                                    "'||'",
                                    "'&&'",
                                    "'!'",
                                    "'=='",
                                    "'!='",
                                    "'<'",
                                    "'<='",
                                    "'>'",
                                    "'>='",
                                    "'@'",
                                    "'&'"};
    return n[k];
}

typedef struct {
    tkind k;
    size_t pos; /* byte offset in the query */
    char *s;    /* IDENT, QIDENT, RAW: decoded text (owned) */
    long long num;
    json_t *lit; /* LITERAL (owned reference) */
} token;

typedef enum {
    N_FIELD,
    N_CURRENT,
    N_LITERAL,
    N_SUBEXPR,
    N_INDEX,
    N_SLICE,
    N_PROJECTION,
    N_VALUE_PROJ,
    N_FILTER_PROJ,
    N_FLATTEN,
    N_OR,
    N_AND,
    N_NOT,
    N_CMP,
    N_PIPE,
    N_MSL,
    N_MSH,
    N_FUNC,
    N_EXPREF
} nkind;

struct fndef;

typedef struct node {
    nkind k;
    tkind op;      /* N_CMP */
    char *name;    /* N_FIELD */
    json_t *lit;   /* N_LITERAL */
    long long idx; /* N_INDEX */
    long long sl[3];
    int slset[3];
    struct node **kids; /* N_SUBEXPR etc.: [0] left, [1] right, [2] condition */
    size_t nkids;
    char **keys; /* N_MSH: one per kid */
    const struct fndef *fn;
    unsigned depth;
    size_t pos;
} node;

typedef struct {
    const char *q;
    size_t qlen;
    token *t;
    size_t nt, ct;
    size_t cur;
    unsigned depth;
    cl_jmes_budget *b;
    char *err;
    size_t errlen;
} parser;

/* Column (1-based, in characters) of byte offset pos. */
static size_t qcol(const char *q, size_t pos)
{
    size_t col = 1;
    for (size_t i = 0; i < pos; i++)
        if (((unsigned char)q[i] & 0xC0) != 0x80)
            col++;
    return col;
}

static int perr(parser *p, size_t pos, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int perr(parser *p, size_t pos, const char *fmt, ...)
{
    if (p->err && p->errlen) {
        int n = snprintf(p->err, p->errlen, "JMESPath column %zu: ", qcol(p->q, pos));
        if (n >= 0 && (size_t)n < p->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return CL_EFORMAT;
}

static int push_tok(parser *p, tkind k, size_t pos, token **out)
{
    if (p->nt == p->ct) {
        size_t nc = p->ct ? p->ct * 2 : 32;
        token *nt = cl_realloc(p->t, nc * sizeof *nt);
        if (nt == NULL)
            return CL_ENOMEM;
        p->t = nt;
        p->ct = nc;
    }
    token *t = &p->t[p->nt++];
    memset(t, 0, sizeof *t);
    t->k = k;
    t->pos = pos;
    if (out)
        *out = t;
    return CL_OK;
}

static int is_ident_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* Finds the closing delimiter `d` of a quoted token starting after position i; a backslash
 * escapes the next byte. Returns the offset of the closing delimiter or qlen. */
static size_t find_close(const char *q, size_t qlen, size_t i, char d)
{
    while (i < qlen && q[i] != d) {
        if (q[i] == '\\' && i + 1 < qlen)
            i++;
        i++;
    }
    return i;
}

static int lex(parser *p)
{
    const char *q = p->q;
    size_t n = p->qlen, i = 0;
    token *t;
    while (i < n) {
        char c = q[i];
        size_t st = i;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            i++;
            continue;
        }
        if (is_ident_start(c)) {
            while (i < n && (is_ident_start(q[i]) || is_digit(q[i])))
                i++;
            CL_TRY(push_tok(p, T_IDENT, st, &t));
            t->s = cl_strndup(q + st, i - st);
            CL_ENSURE(t->s != NULL, CL_ENOMEM);
            continue;
        }
        if (is_digit(c) || (c == '-' && i + 1 < n && is_digit(q[i + 1]))) {
            int neg = c == '-';
            if (neg)
                i++;
            unsigned long long v = 0;
            while (i < n && is_digit(q[i])) {
                unsigned d = (unsigned)(q[i] - '0');
                if (v > (ULLONG_MAX - d) / 10 || v * 10 + d > (unsigned long long)LLONG_MAX)
                    return perr(p, st, "number out of range");
                v = v * 10 + d;
                i++;
            }
            CL_TRY(push_tok(p, T_NUMBER, st, &t));
            t->num = neg ? -(long long)v : (long long)v;
            continue;
        }
        switch (c) {
        case '.':
            CL_TRY(push_tok(p, T_DOT, st, NULL));
            i++;
            continue;
        case '*':
            CL_TRY(push_tok(p, T_STAR, st, NULL));
            i++;
            continue;
        case ']':
            CL_TRY(push_tok(p, T_RBRACKET, st, NULL));
            i++;
            continue;
        case '{':
            CL_TRY(push_tok(p, T_LBRACE, st, NULL));
            i++;
            continue;
        case '}':
            CL_TRY(push_tok(p, T_RBRACE, st, NULL));
            i++;
            continue;
        case '(':
            CL_TRY(push_tok(p, T_LPAREN, st, NULL));
            i++;
            continue;
        case ')':
            CL_TRY(push_tok(p, T_RPAREN, st, NULL));
            i++;
            continue;
        case ',':
            CL_TRY(push_tok(p, T_COMMA, st, NULL));
            i++;
            continue;
        case ':':
            CL_TRY(push_tok(p, T_COLON, st, NULL));
            i++;
            continue;
        case '@':
            CL_TRY(push_tok(p, T_AT, st, NULL));
            i++;
            continue;
        case '[':
            if (i + 1 < n && q[i + 1] == '?') {
                CL_TRY(push_tok(p, T_FILTER, st, NULL));
                i += 2;
            } else if (i + 1 < n && q[i + 1] == ']') {
                CL_TRY(push_tok(p, T_FLATTEN, st, NULL));
                i += 2;
            } else {
                CL_TRY(push_tok(p, T_LBRACKET, st, NULL));
                i++;
            }
            continue;
        case '|':
            if (i + 1 < n && q[i + 1] == '|') {
                CL_TRY(push_tok(p, T_OR, st, NULL));
                i += 2;
            } else {
                CL_TRY(push_tok(p, T_PIPE, st, NULL));
                i++;
            }
            continue;
        case '&':
            if (i + 1 < n && q[i + 1] == '&') {
                CL_TRY(push_tok(p, T_AND, st, NULL));
                i += 2;
            } else {
                CL_TRY(push_tok(p, T_EXPREF, st, NULL));
                i++;
            }
            continue;
        case '!':
            if (i + 1 < n && q[i + 1] == '=') {
                CL_TRY(push_tok(p, T_NE, st, NULL));
                i += 2;
            } else {
                CL_TRY(push_tok(p, T_NOT, st, NULL));
                i++;
            }
            continue;
        case '<':
        case '>': {
            int eq = i + 1 < n && q[i + 1] == '=';
            tkind k = c == '<' ? (eq ? T_LE : T_LT) : (eq ? T_GE : T_GT);
            CL_TRY(push_tok(p, k, st, NULL));
            i += eq ? 2 : 1;
            continue;
        }
        case '=':
            if (i + 1 < n && q[i + 1] == '=') {
                CL_TRY(push_tok(p, T_EQ, st, NULL));
                i += 2;
                continue;
            }
            return perr(p, st, "'=' is not an operator (use '==')");
        case '\'': {
            size_t e = find_close(q, n, i + 1, '\'');
            if (e >= n)
                return perr(p, st, "unterminated raw string");
            char *s = cl_malloc(e - i);
            CL_ENSURE(s != NULL, CL_ENOMEM);
            size_t o = 0;
            for (size_t k = i + 1; k < e; k++) {
                if (q[k] == '\\' && k + 1 < e && q[k + 1] == '\'')
                    k++;
                s[o++] = q[k];
            }
            s[o] = '\0';
            int rc = push_tok(p, T_RAW, st, &t);
            if (rc < 0) {
                cl_free(s);
                return rc;
            }
            t->s = s;
            i = e + 1;
            continue;
        }
        case '`': {
            size_t e = find_close(q, n, i + 1, '`');
            if (e >= n)
                return perr(p, st, "unterminated JSON literal");
            char *s = cl_malloc(e - i);
            CL_ENSURE(s != NULL, CL_ENOMEM);
            size_t o = 0;
            for (size_t k = i + 1; k < e; k++) {
                if (q[k] == '\\' && k + 1 < e && q[k + 1] == '`')
                    k++;
                s[o++] = q[k];
            }
            json_t *j = NULL;
            char sub[160];
            int rc = cl_jmes_parse_json(s, o, &j, p->b, sub, sizeof sub);
            cl_free(s);
            if (rc == CL_ENOMEM)
                return rc;
            if (rc < 0)
                return perr(p, st, "JSON literal: %s", sub);
            rc = push_tok(p, T_LITERAL, st, &t);
            if (rc < 0) {
                json_decref(j);
                return rc;
            }
            t->lit = j;
            i = e + 1;
            continue;
        }
        case '"': {
            size_t e = find_close(q, n, i + 1, '"');
            if (e >= n)
                return perr(p, st, "unterminated quoted identifier");
            json_error_t je;
            cl_json_init();
            long before = cl_alloc_failures();
            json_t *j = json_loadb(q + i, e + 1 - i, JSON_DECODE_ANY, &je);
            if (j == NULL && alloc_failed_since(before))
                return CL_ENOMEM;
            if (j == NULL || !json_is_string(j)) {
                json_decref(j);
                return perr(p, st, "invalid quoted identifier");
            }
            char *s = cl_strndup(json_string_value(j), json_string_length(j));
            json_decref(j);
            CL_ENSURE(s != NULL, CL_ENOMEM);
            int rc = push_tok(p, T_QIDENT, st, &t);
            if (rc < 0) {
                cl_free(s);
                return rc;
            }
            t->s = s;
            i = e + 1;
            continue;
        }
        default:
            break;
        }
        if ((unsigned char)c >= 0x80)
            return perr(p, st, "unexpected non-ASCII character");
        return perr(p, st, "unexpected character '%c'", c);
    }
    return push_tok(p, T_EOF, n, NULL);
}

/* ---- functions table ------------------------------------------------------------------------ */

enum {
    TY_NUMBER = 1,
    TY_STRING = 2,
    TY_BOOL = 4,
    TY_ARRAY = 8,
    TY_OBJECT = 16,
    TY_NULL = 32,
    TY_EXPREF = 64,
    TY_ANY = 63
};

typedef struct eval_ctx eval_ctx;
typedef struct {
    json_t *v;        /* NULL for an expression reference */
    const node *expr; /* expression reference */
} jarg;

typedef int (*fn_impl)(eval_ctx *e, const node *call, jarg *a, size_t n, json_t **out);

typedef struct fndef {
    const char *name;
    unsigned minargs, maxargs; /* maxargs 0: variadic */
    unsigned types[2];         /* accepted types of the first two arguments (more: types[1]) */
    fn_impl impl;
} fndef;

/* ---- parser --------------------------------------------------------------------------------- */

static void node_free(node *n)
{
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->nkids; i++) {
        node_free(n->kids[i]);
        if (n->keys)
            cl_free(n->keys[i]);
    }
    cl_free(n->kids);
    cl_free(n->keys);
    cl_free(n->name);
    json_decref(n->lit);
    cl_free(n);
}

static int new_node(parser *p, nkind k, size_t pos, node **out)
{
    node *n = cl_calloc(1, sizeof *n);
    CL_ENSURE(n != NULL, CL_ENOMEM);
    n->k = k;
    n->pos = pos;
    n->depth = 1;
    *out = n;
    return CL_OK;
}

/* Appends kid to n (taking ownership even on failure). */
static int add_kid(parser *p, node *n, node *kid)
{
    node **nk = cl_realloc(n->kids, (n->nkids + 1) * sizeof *nk);
    if (nk == NULL) {
        node_free(kid);
        return CL_ENOMEM;
    }
    n->kids = nk;
    n->kids[n->nkids++] = kid;
    if (kid->depth + 1 > n->depth)
        n->depth = kid->depth + 1;
    if (n->depth > CL_JMES_MAX_DEPTH)
        return perr(p, n->pos, "expression nested deeper than %u levels", CL_JMES_MAX_DEPTH);
    return CL_OK;
}

/* Builds a node of kind k with kids a, b (b may be NULL); frees them on failure. */
static int make2(parser *p, nkind k, size_t pos, node *a, node *b, node **out)
{
    node *n = NULL;
    int rc = new_node(p, k, pos, &n);
    if (rc < 0) {
        node_free(a);
        node_free(b);
        return rc;
    }
    rc = add_kid(p, n, a);
    if (rc == CL_OK && b != NULL)
        rc = add_kid(p, n, b);
    else if (b != NULL)
        node_free(b);
    if (rc < 0) {
        node_free(n);
        return rc;
    }
    *out = n;
    return CL_OK;
}

static const token *cur(const parser *p) { return &p->t[p->cur]; }
static tkind curk(const parser *p) { return p->t[p->cur].k; }
static tkind peekk(const parser *p, size_t ahead)
{
    size_t i = p->cur + ahead;
    return i < p->nt ? p->t[i].k : T_EOF;
}
static void advance(parser *p)
{
    if (p->cur + 1 < p->nt)
        p->cur++;
}

static int expect(parser *p, tkind k)
{
    if (curk(p) != k)
        return perr(p, cur(p)->pos, "expected %s, found %s", tname(k), tname(curk(p)));
    advance(p);
    return CL_OK;
}

static int bp(tkind k)
{
    switch (k) {
    case T_PIPE:
        return 1;
    case T_OR:
        return 2;
    case T_AND:
        return 3;
    case T_EQ:
    case T_NE:
    case T_LT:
    case T_LE:
    case T_GT:
    case T_GE:
        return 5;
    case T_FLATTEN:
        return 9;
    case T_STAR:
        return 20;
    case T_FILTER:
        return 21;
    case T_DOT:
        return 40;
    case T_NOT:
        return 45;
    case T_LBRACE:
        return 50;
    case T_LBRACKET:
        return 55;
    case T_LPAREN:
        return 60;
    default:
        return 0;
    }
}

static int parse_expr(parser *p, int rbp, node **out);
static const fndef *find_fn(const char *name);

static int current_node(parser *p, node **out) { return new_node(p, N_CURRENT, cur(p)->pos, out); }

static int parse_dot_rhs(parser *p, int rbp, node **out);
static int parse_msl(parser *p, size_t pos, node **out);
static int parse_msh(parser *p, size_t pos, node **out);

static int projection_rhs(parser *p, int rbp, node **out)
{
    tkind k = curk(p);
    if (bp(k) < 10)
        return current_node(p, out);
    if (k == T_LBRACKET || k == T_FILTER)
        return parse_expr(p, rbp, out);
    if (k == T_DOT) {
        advance(p);
        return parse_dot_rhs(p, rbp, out);
    }
    return perr(p, cur(p)->pos, "unexpected %s after a projection", tname(k));
}

static int parse_dot_rhs(parser *p, int rbp, node **out)
{
    tkind k = curk(p);
    size_t pos = cur(p)->pos;
    if (k == T_IDENT || k == T_QIDENT || k == T_STAR)
        return parse_expr(p, rbp, out);
    if (k == T_LBRACKET) {
        advance(p);
        return parse_msl(p, pos, out);
    }
    if (k == T_LBRACE) {
        advance(p);
        return parse_msh(p, pos, out);
    }
    return perr(p, pos, "expected an identifier, '*', '[' or '{' after '.', found %s", tname(k));
}

static int parse_msl(parser *p, size_t pos, node **out)
{
    node *n = NULL;
    CL_TRY(new_node(p, N_MSL, pos, &n));
    for (;;) {
        node *e = NULL;
        int rc = parse_expr(p, 0, &e);
        if (rc == CL_OK)
            rc = add_kid(p, n, e);
        if (rc < 0) {
            node_free(n);
            return rc;
        }
        if (curk(p) == T_COMMA) {
            advance(p);
            continue;
        }
        rc = expect(p, T_RBRACKET);
        if (rc < 0) {
            node_free(n);
            return rc;
        }
        break;
    }
    *out = n;
    return CL_OK;
}

static int parse_msh(parser *p, size_t pos, node **out)
{
    node *n = NULL;
    CL_TRY(new_node(p, N_MSH, pos, &n));
    int rc;
    for (;;) {
        const token *t = cur(p);
        if (t->k != T_IDENT && t->k != T_QIDENT) {
            rc = perr(p, t->pos, "expected a key in a multi-select hash, found %s", tname(t->k));
            goto fail;
        }
        const char *keytext = t->s;
        advance(p);
        rc = expect(p, T_COLON);
        node *v = NULL;
        if (rc == CL_OK)
            rc = parse_expr(p, 0, &v);
        if (rc < 0)
            goto fail;
        char **nk = cl_realloc(n->keys, (n->nkids + 1) * sizeof *nk);
        char *key = nk ? cl_strdup(keytext) : NULL;
        if (nk)
            n->keys = nk;
        if (key == NULL) {
            node_free(v);
            rc = CL_ENOMEM;
            goto fail;
        }
        size_t before = n->nkids;
        n->keys[before] = key;
        rc = add_kid(p, n, v);
        if (rc < 0) {
            if (n->nkids == before)
                cl_free(key); /* not appended: node_free will not see it */
            goto fail;
        }
        if (curk(p) == T_COMMA) {
            advance(p);
            continue;
        }
        rc = expect(p, T_RBRACE);
        if (rc < 0)
            goto fail;
        break;
    }
    *out = n;
    return CL_OK;
fail:
    node_free(n);
    return rc;
}

static int parse_index(parser *p, node **out)
{
    size_t pos = cur(p)->pos;
    if (curk(p) == T_NUMBER && peekk(p, 1) != T_COLON) {
        node *n = NULL;
        CL_TRY(new_node(p, N_INDEX, pos, &n));
        n->idx = cur(p)->num;
        advance(p);
        int rc = expect(p, T_RBRACKET);
        if (rc < 0) {
            node_free(n);
            return rc;
        }
        *out = n;
        return CL_OK;
    }
    node *n = NULL;
    CL_TRY(new_node(p, N_SLICE, pos, &n));
    unsigned part = 0;
    while (curk(p) != T_RBRACKET) {
        if (curk(p) == T_COLON) {
            if (++part > 2) {
                node_free(n);
                return perr(p, cur(p)->pos, "too many ':' in a slice");
            }
        } else if (curk(p) == T_NUMBER && !n->slset[part]) {
            n->sl[part] = cur(p)->num;
            n->slset[part] = 1;
        } else {
            tkind k = curk(p);
            size_t at = cur(p)->pos;
            node_free(n);
            return perr(p, at, "unexpected %s in a slice", tname(k));
        }
        advance(p);
    }
    advance(p);
    if (n->slset[2] && n->sl[2] == 0) {
        node_free(n);
        return perr(p, pos, "slice step cannot be 0");
    }
    *out = n;
    return CL_OK;
}

/* left[index] or a slice projection left[a:b] RHS. */
static int project_if_slice(parser *p, node *left, node *right, node **out)
{
    int is_slice = right->k == N_SLICE;
    size_t pos = right->pos;
    node *ie = NULL;
    CL_TRY(make2(p, N_SUBEXPR, pos, left, right, &ie));
    if (!is_slice) {
        *out = ie;
        return CL_OK;
    }
    node *rhs = NULL;
    int rc = projection_rhs(p, bp(T_STAR), &rhs);
    if (rc < 0) {
        node_free(ie);
        return rc;
    }
    return make2(p, N_PROJECTION, pos, ie, rhs, out);
}

static int parse_filter(parser *p, node *left, size_t pos, node **out)
{
    node *cond = NULL, *rhs = NULL;
    int rc = parse_expr(p, 0, &cond);
    if (rc == CL_OK)
        rc = expect(p, T_RBRACKET);
    if (rc == CL_OK)
        rc = curk(p) == T_FLATTEN ? current_node(p, &rhs) : projection_rhs(p, bp(T_FILTER), &rhs);
    if (rc < 0) {
        node_free(left);
        node_free(cond);
        return rc;
    }
    node *n = NULL;
    rc = make2(p, N_FILTER_PROJ, pos, left, rhs, &n);
    if (rc < 0) {
        node_free(cond);
        return rc;
    }
    rc = add_kid(p, n, cond);
    if (rc < 0) {
        node_free(n);
        return rc;
    }
    *out = n;
    return CL_OK;
}

static int nud(parser *p, node **out)
{
    const token *t = cur(p);
    size_t pos = t->pos;
    tkind k = t->k;
    node *n = NULL, *l = NULL, *r = NULL;
    advance(p);
    switch (k) {
    case T_LITERAL:
    case T_RAW:
        CL_TRY(new_node(p, N_LITERAL, pos, &n));
        long before = cl_alloc_failures();
        n->lit = k == T_LITERAL ? json_incref(t->lit) : json_string(t->s);
        if (n->lit == NULL) {
            node_free(n);
            return alloc_failed_since(before) ? CL_ENOMEM
                                              : perr(p, pos, "raw string is not valid UTF-8");
        }
        *out = n;
        return CL_OK;
    case T_IDENT:
    case T_QIDENT:
        if (k == T_QIDENT && curk(p) == T_LPAREN)
            return perr(p, pos, "a quoted identifier cannot name a function");
        CL_TRY(new_node(p, N_FIELD, pos, &n));
        n->name = cl_strdup(t->s);
        if (n->name == NULL) {
            node_free(n);
            return CL_ENOMEM;
        }
        *out = n;
        return CL_OK;
    case T_STAR: {
        CL_TRY(new_node(p, N_CURRENT, pos, &l));
        int rc = projection_rhs(p, bp(T_STAR), &r);
        if (rc < 0) {
            node_free(l);
            return rc;
        }
        return make2(p, N_VALUE_PROJ, pos, l, r, out);
    }
    case T_FILTER:
        CL_TRY(new_node(p, N_CURRENT, pos, &l));
        return parse_filter(p, l, pos, out);
    case T_LBRACE:
        return parse_msh(p, pos, out);
    case T_LPAREN:
        CL_TRY(parse_expr(p, 0, &n));
        if (curk(p) != T_RPAREN) {
            node_free(n);
            return expect(p, T_RPAREN);
        }
        advance(p);
        *out = n;
        return CL_OK;
    case T_FLATTEN: {
        CL_TRY(new_node(p, N_CURRENT, pos, &l));
        node *f = NULL;
        CL_TRY(make2(p, N_FLATTEN, pos, l, NULL, &f));
        int rc = projection_rhs(p, bp(T_FLATTEN), &r);
        if (rc < 0) {
            node_free(f);
            return rc;
        }
        return make2(p, N_PROJECTION, pos, f, r, out);
    }
    case T_NOT:
        CL_TRY(parse_expr(p, bp(T_NOT), &l));
        return make2(p, N_NOT, pos, l, NULL, out);
    case T_LBRACKET:
        if (curk(p) == T_NUMBER || curk(p) == T_COLON) {
            CL_TRY(parse_index(p, &r));
            int rc = new_node(p, N_CURRENT, pos, &l);
            if (rc < 0) {
                node_free(r);
                return rc;
            }
            return project_if_slice(p, l, r, out);
        }
        if (curk(p) == T_STAR && peekk(p, 1) == T_RBRACKET) {
            advance(p);
            advance(p);
            CL_TRY(new_node(p, N_CURRENT, pos, &l));
            int rc = projection_rhs(p, bp(T_STAR), &r);
            if (rc < 0) {
                node_free(l);
                return rc;
            }
            return make2(p, N_PROJECTION, pos, l, r, out);
        }
        return parse_msl(p, pos, out);
    case T_AT:
        return new_node(p, N_CURRENT, pos, out);
    case T_EXPREF:
        CL_TRY(parse_expr(p, bp(T_EXPREF), &l));
        return make2(p, N_EXPREF, pos, l, NULL, out);
    case T_NUMBER:
        return perr(p, pos, "a number is only valid inside [] (use `%lld` for a literal)", t->num);
    default:
        return perr(p, pos, "unexpected %s", tname(k));
    }
}

static int parse_call(parser *p, node *left, size_t pos, node **out)
{
    if (left->k != N_FIELD) {
        node_free(left);
        return perr(p, pos, "'(' must follow a function name");
    }
    const fndef *fn = find_fn(left->name);
    if (fn == NULL) {
        int rc = perr(p, left->pos, "unknown function %s()", left->name);
        node_free(left);
        return rc;
    }
    size_t fpos = left->pos;
    node_free(left);
    node *n = NULL;
    CL_TRY(new_node(p, N_FUNC, fpos, &n));
    n->fn = fn;
    int rc = CL_OK;
    while (curk(p) != T_RPAREN) {
        if (n->nkids > 0) {
            rc = expect(p, T_COMMA);
            if (rc < 0)
                goto fail;
        }
        node *a = NULL;
        rc = parse_expr(p, 0, &a);
        if (rc == CL_OK)
            rc = add_kid(p, n, a);
        if (rc < 0)
            goto fail;
    }
    advance(p);
    if (n->nkids < fn->minargs || (fn->maxargs && n->nkids > fn->maxargs)) {
        if (fn->maxargs == fn->minargs)
            rc = perr(p, fpos, "%s() takes %u argument%s, got %zu", fn->name, fn->minargs,
                      fn->minargs == 1 ? "" : "s", n->nkids);
        else
            rc = perr(p, fpos, "%s() takes at least %u argument%s, got %zu", fn->name, fn->minargs,
                      fn->minargs == 1 ? "" : "s", n->nkids);
        goto fail;
    }
    *out = n;
    return CL_OK;
fail:
    node_free(n);
    return rc;
}

static int led(parser *p, node *left, node **out)
{
    const token *t = cur(p);
    tkind k = t->k;
    size_t pos = t->pos;
    node *r = NULL;
    int rc;
    advance(p);
    switch (k) {
    case T_DOT:
        if (curk(p) != T_STAR) {
            rc = parse_dot_rhs(p, bp(T_DOT), &r);
            if (rc < 0)
                goto fail;
            return make2(p, N_SUBEXPR, pos, left, r, out);
        }
        advance(p);
        rc = projection_rhs(p, bp(T_DOT), &r);
        if (rc < 0)
            goto fail;
        return make2(p, N_VALUE_PROJ, pos, left, r, out);
    case T_PIPE:
    case T_OR:
    case T_AND:
        rc = parse_expr(p, bp(k), &r);
        if (rc < 0)
            goto fail;
        return make2(p, k == T_PIPE ? N_PIPE : k == T_OR ? N_OR : N_AND, pos, left, r, out);
    case T_LPAREN:
        return parse_call(p, left, pos, out);
    case T_FILTER:
        return parse_filter(p, left, pos, out);
    case T_EQ:
    case T_NE:
    case T_LT:
    case T_LE:
    case T_GT:
    case T_GE: {
        rc = parse_expr(p, bp(k), &r);
        if (rc < 0)
            goto fail;
        node *n = NULL;
        CL_TRY(make2(p, N_CMP, pos, left, r, &n));
        n->op = k;
        *out = n;
        return CL_OK;
    }
    case T_FLATTEN: {
        node *f = NULL;
        CL_TRY(make2(p, N_FLATTEN, pos, left, NULL, &f));
        rc = projection_rhs(p, bp(T_FLATTEN), &r);
        if (rc < 0) {
            node_free(f);
            return rc;
        }
        return make2(p, N_PROJECTION, pos, f, r, out);
    }
    case T_LBRACKET:
        if (curk(p) == T_NUMBER || curk(p) == T_COLON) {
            rc = parse_index(p, &r);
            if (rc < 0)
                goto fail;
            return project_if_slice(p, left, r, out);
        }
        if (curk(p) != T_STAR) {
            rc = perr(p, cur(p)->pos, "expected an index, a slice or '*' after '[', found %s",
                      tname(curk(p)));
            goto fail;
        }
        advance(p);
        rc = expect(p, T_RBRACKET);
        if (rc == CL_OK)
            rc = projection_rhs(p, bp(T_STAR), &r);
        if (rc < 0)
            goto fail;
        return make2(p, N_PROJECTION, pos, left, r, out);
    default:
        rc = perr(p, pos, "unexpected %s", tname(k));
        goto fail;
    }
fail:
    node_free(left);
    return rc;
}

static int parse_expr(parser *p, int rbp, node **out)
{
    if (++p->depth > CL_JMES_MAX_DEPTH) {
        p->depth--;
        return perr(p, cur(p)->pos, "expression nested deeper than %u levels", CL_JMES_MAX_DEPTH);
    }
    node *left = NULL;
    int rc = nud(p, &left);
    while (rc == CL_OK && rbp < bp(curk(p)))
        rc = led(p, left, &left);
    p->depth--;
    if (rc < 0)
        return rc;
    *out = left;
    return CL_OK;
}

static void free_tokens(parser *p)
{
    for (size_t i = 0; i < p->nt; i++) {
        cl_free(p->t[i].s);
        json_decref(p->t[i].lit);
    }
    cl_free(p->t);
    p->t = NULL;
    p->nt = p->ct = 0;
}

static int compile(const char *q, size_t qlen, node **out, cl_jmes_budget *b, char *err,
                   size_t errlen)
{
    parser p = {.q = q, .qlen = qlen, .b = b, .err = err, .errlen = errlen};
    *out = NULL;
    if (qlen == 0) {
        if (err)
            snprintf(err, errlen, "JMESPath expression is empty");
        return CL_EFORMAT;
    }
    if (qlen > CL_JMES_MAX_QUERY) {
        if (err)
            snprintf(err, errlen, "JMESPath expression of %zu bytes exceeds the limit of %u", qlen,
                     CL_JMES_MAX_QUERY);
        return CL_EFORMAT;
    }
    if (memchr(q, '\0', qlen) != NULL) {
        return perr(&p, (size_t)((const char *)memchr(q, '\0', qlen) - q),
                    "NUL character in expression");
    }
    int rc = lex(&p);
    node *n = NULL;
    if (rc == CL_OK)
        rc = cl_jmes_charge_steps(b, p.nt, err, errlen);
    if (rc == CL_OK)
        rc = parse_expr(&p, 0, &n);
    if (rc == CL_OK && curk(&p) != T_EOF) {
        rc = perr(&p, cur(&p)->pos, "unexpected %s", tname(curk(&p)));
        node_free(n);
        n = NULL;
    }
    free_tokens(&p);
    if (rc < 0)
        return rc;
    *out = n;
    return CL_OK;
}

/* ---- evaluation ----------------------------------------------------------------------------- */

struct eval_ctx {
    const char *q;
    cl_jmes_budget *b;
    char *err;
    size_t errlen;
};

static int eerr(eval_ctx *e, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int eerr(eval_ctx *e, size_t pos, const char *fmt, ...)
{
    if (e->err && e->errlen) {
        int n = snprintf(e->err, e->errlen, "JMESPath column %zu: ", qcol(e->q, pos));
        if (n >= 0 && (size_t)n < e->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(e->err + n, e->errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return CL_EFORMAT;
}

static int charge(eval_ctx *e, uint64_t n)
{
    return cl_jmes_charge_steps(e->b, n, e->err, e->errlen);
}

static int truthy(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_NULL:
    case JSON_FALSE:
        return 0;
    case JSON_STRING:
        return json_string_length(v) > 0;
    case JSON_ARRAY:
        return json_array_size(v) > 0;
    case JSON_OBJECT:
        return json_object_size(v) > 0;
    default:
        return 1;
    }
}

static unsigned jtype(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_INTEGER:
    case JSON_REAL:
        return TY_NUMBER;
    case JSON_STRING:
        return TY_STRING;
    case JSON_TRUE:
    case JSON_FALSE:
        return TY_BOOL;
    case JSON_ARRAY:
        return TY_ARRAY;
    case JSON_OBJECT:
        return TY_OBJECT;
    default:
        return TY_NULL;
    }
}

static const char *jtype_name(unsigned t)
{
    switch (t) {
    case TY_NUMBER:
        return "number";
    case TY_STRING:
        return "string";
    case TY_BOOL:
        return "boolean";
    case TY_ARRAY:
        return "array";
    case TY_OBJECT:
        return "object";
    case TY_EXPREF:
        return "expression reference";
    default:
        return "null";
    }
}

static int num_cmp(const json_t *a, const json_t *b)
{
    if (json_is_integer(a) && json_is_integer(b)) {
        json_int_t x = json_integer_value(a), y = json_integer_value(b);
        return x < y ? -1 : x > y;
    }
    double x = json_number_value(a), y = json_number_value(b);
    return x < y ? -1 : x > y;
}

static int str_cmp(const json_t *a, const json_t *b)
{
    size_t la = json_string_length(a), lb = json_string_length(b);
    int c = memcmp(json_string_value(a), json_string_value(b), la < lb ? la : lb);
    if (c != 0)
        return c < 0 ? -1 : 1;
    return la < lb ? -1 : la > lb;
}

/* Deep equality (numbers by value). *eq receives the result. */
static int deep_equal(eval_ctx *e, const json_t *a, const json_t *b, unsigned depth, int *eq)
{
    CL_TRY(charge(e, 1));
    if (depth > 4 * CL_JMES_MAX_DEPTH)
        return eerr(e, 0, "values nested too deeply to compare");
    unsigned ta = jtype(a), tb = jtype(b);
    *eq = 0;
    if (ta != tb)
        return CL_OK;
    switch (ta) {
    case TY_NUMBER:
        *eq = num_cmp(a, b) == 0;
        return CL_OK;
    case TY_STRING:
        *eq = str_cmp(a, b) == 0;
        return CL_OK;
    case TY_BOOL:
    case TY_NULL:
        *eq = json_typeof(a) == json_typeof(b);
        return CL_OK;
    case TY_ARRAY: {
        size_t n = json_array_size(a);
        if (n != json_array_size(b))
            return CL_OK;
        for (size_t i = 0; i < n; i++) {
            CL_TRY(deep_equal(e, json_array_get(a, i), json_array_get(b, i), depth + 1, eq));
            if (!*eq)
                return CL_OK;
        }
        *eq = 1;
        return CL_OK;
    }
    default: {
        if (json_object_size(a) != json_object_size(b))
            return CL_OK;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)a, k, v)
        {
            json_t *w = json_object_get(b, k);
            if (w == NULL)
                return CL_OK;
            CL_TRY(deep_equal(e, v, w, depth + 1, eq));
            if (!*eq)
                return CL_OK;
        }
        *eq = 1;
        return CL_OK;
    }
    }
}

static int ev(eval_ctx *e, const node *n, json_t *cur, json_t **out);

/* Appends v (stealing the reference) to arr unless it is null. */
static int push_nonnull(eval_ctx *e, json_t *arr, json_t *v)
{
    if (json_is_null(v))
        return CL_OK;
    CL_TRY(charge(e, 1));
    CL_ENSURE(json_array_append_new(arr, v) == 0, CL_ENOMEM);
    return CL_OK;
}

static int ev_projection(eval_ctx *e, const node *n, json_t *base, json_t **out)
{
    json_t *res = json_array();
    CL_ENSURE(res != NULL, CL_ENOMEM);
    size_t i;
    json_t *el;
    if (json_is_array(base)) {
        json_array_foreach(base, i, el)
        {
            json_t *r = NULL;
            int rc = ev(e, n->kids[1], el, &r);
            if (rc == CL_OK)
                rc = push_nonnull(e, res, r);
            if (rc < 0) {
                json_decref(res);
                return rc;
            }
        }
    } else {
        const char *k;
        json_object_foreach(base, k, el)
        {
            json_t *r = NULL;
            int rc = ev(e, n->kids[1], el, &r);
            if (rc == CL_OK)
                rc = push_nonnull(e, res, r);
            if (rc < 0) {
                json_decref(res);
                return rc;
            }
        }
    }
    *out = res;
    return CL_OK;
}

static long long clampi(long long v, long long lo, long long hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static int ev_slice(eval_ctx *e, const node *n, json_t *cur, json_t **out)
{
    if (!json_is_array(cur)) {
        *out = json_null();
        return CL_OK;
    }
    long long len = (long long)json_array_size(cur);
    long long step = n->slset[2] ? n->sl[2] : 1;
    long long start, stop;
    if (step > 0) {
        start = n->slset[0] ? n->sl[0] : 0;
        stop = n->slset[1] ? n->sl[1] : len;
        if (start < 0)
            start += len;
        if (stop < 0)
            stop += len;
        start = clampi(start, 0, len);
        stop = clampi(stop, 0, len);
    } else {
        start = n->slset[0] ? n->sl[0] : len - 1;
        stop = n->slset[1] ? n->sl[1] : -1 - len;
        if (start < 0)
            start += len;
        if (stop < 0)
            stop += len;
        start = clampi(start, -1, len - 1);
        stop = clampi(stop, -1, len - 1);
    }
    json_t *res = json_array();
    CL_ENSURE(res != NULL, CL_ENOMEM);
    for (long long i = start; step > 0 ? i < stop : i > stop; i += step) {
        int rc = charge(e, 1);
        if (rc < 0) {
            json_decref(res);
            return rc;
        }
        if (json_array_append(res, json_array_get(cur, (size_t)i)) != 0) {
            json_decref(res);
            return CL_ENOMEM;
        }
        if ((step > 0 && i > LLONG_MAX - step) || (step < 0 && i < LLONG_MIN - step))
            break;
    }
    *out = res;
    return CL_OK;
}

static int call_fn(eval_ctx *e, const node *n, json_t *cur, json_t **out);

static int ev(eval_ctx *e, const node *n, json_t *cur, json_t **out)
{
    json_t *l = NULL, *r = NULL;
    int rc;
    CL_TRY(charge(e, 1));
    switch (n->k) {
    case N_FIELD: {
        json_t *v = json_is_object(cur) ? json_object_get(cur, n->name) : NULL;
        *out = v ? json_incref(v) : json_null();
        return CL_OK;
    }
    case N_CURRENT:
        *out = json_incref(cur);
        return CL_OK;
    case N_LITERAL:
        *out = json_incref(n->lit);
        return CL_OK;
    case N_SUBEXPR:
    case N_PIPE:
        CL_TRY(ev(e, n->kids[0], cur, &l));
        rc = ev(e, n->kids[1], l, out);
        json_decref(l);
        return rc;
    case N_INDEX: {
        json_t *v = NULL;
        if (json_is_array(cur)) {
            long long len = (long long)json_array_size(cur), i = n->idx;
            if (i < 0)
                i += len;
            if (i >= 0 && i < len)
                v = json_array_get(cur, (size_t)i);
        }
        *out = v ? json_incref(v) : json_null();
        return CL_OK;
    }
    case N_SLICE:
        return ev_slice(e, n, cur, out);
    case N_PROJECTION:
    case N_VALUE_PROJ:
        CL_TRY(ev(e, n->kids[0], cur, &l));
        if (n->k == N_PROJECTION ? !json_is_array(l) : !json_is_object(l)) {
            json_decref(l);
            *out = json_null();
            return CL_OK;
        }
        rc = ev_projection(e, n, l, out);
        json_decref(l);
        return rc;
    case N_FILTER_PROJ: {
        CL_TRY(ev(e, n->kids[0], cur, &l));
        if (!json_is_array(l)) {
            json_decref(l);
            *out = json_null();
            return CL_OK;
        }
        json_t *res = json_array();
        rc = res ? CL_OK : CL_ENOMEM;
        size_t i;
        json_t *el;
        json_array_foreach(l, i, el)
        {
            if (rc < 0)
                break;
            json_t *c = NULL;
            rc = ev(e, n->kids[2], el, &c);
            if (rc < 0)
                break;
            int keep = truthy(c);
            json_decref(c);
            if (!keep)
                continue;
            rc = ev(e, n->kids[1], el, &r);
            if (rc == CL_OK)
                rc = push_nonnull(e, res, r);
        }
        json_decref(l);
        if (rc < 0) {
            json_decref(res);
            return rc;
        }
        *out = res;
        return CL_OK;
    }
    case N_FLATTEN: {
        CL_TRY(ev(e, n->kids[0], cur, &l));
        if (!json_is_array(l)) {
            json_decref(l);
            *out = json_null();
            return CL_OK;
        }
        json_t *res = json_array();
        rc = res ? CL_OK : CL_ENOMEM;
        size_t i, j;
        json_t *el, *sub;
        json_array_foreach(l, i, el)
        {
            if (rc < 0)
                break;
            if (json_is_array(el)) {
                json_array_foreach(el, j, sub)
                {
                    rc = charge(e, 1);
                    if (rc == CL_OK && json_array_append(res, sub) != 0)
                        rc = CL_ENOMEM;
                    if (rc < 0)
                        break;
                }
            } else {
                rc = charge(e, 1);
                if (rc == CL_OK && json_array_append(res, el) != 0)
                    rc = CL_ENOMEM;
            }
        }
        json_decref(l);
        if (rc < 0) {
            json_decref(res);
            return rc;
        }
        *out = res;
        return CL_OK;
    }
    case N_OR:
    case N_AND:
        CL_TRY(ev(e, n->kids[0], cur, &l));
        if ((n->k == N_OR) == (truthy(l) != 0)) {
            *out = l;
            return CL_OK;
        }
        json_decref(l);
        return ev(e, n->kids[1], cur, out);
    case N_NOT:
        CL_TRY(ev(e, n->kids[0], cur, &l));
        *out = json_boolean(!truthy(l));
        json_decref(l);
        return CL_OK;
    case N_CMP: {
        CL_TRY(ev(e, n->kids[0], cur, &l));
        rc = ev(e, n->kids[1], cur, &r);
        if (rc < 0) {
            json_decref(l);
            return rc;
        }
        if (n->op == T_EQ || n->op == T_NE) {
            int eq = 0;
            rc = deep_equal(e, l, r, 0, &eq);
            if (rc == CL_OK)
                *out = json_boolean(n->op == T_EQ ? eq : !eq);
        } else if (json_is_number(l) && json_is_number(r)) {
            int c = num_cmp(l, r);
            int v = n->op == T_LT ? c < 0 : n->op == T_LE ? c <= 0 : n->op == T_GT ? c > 0 : c >= 0;
            *out = json_boolean(v);
        } else {
            *out = json_null();
        }
        json_decref(l);
        json_decref(r);
        return rc;
    }
    case N_MSL:
    case N_MSH: {
        if (json_is_null(cur)) {
            *out = json_null();
            return CL_OK;
        }
        json_t *res = n->k == N_MSL ? json_array() : json_object();
        CL_ENSURE(res != NULL, CL_ENOMEM);
        for (size_t i = 0; i < n->nkids; i++) {
            rc = ev(e, n->kids[i], cur, &r);
            if (rc == CL_OK) {
                int bad = n->k == N_MSL ? json_array_append_new(res, r)
                                        : json_object_set_new(res, n->keys[i], r);
                rc = bad ? CL_ENOMEM : CL_OK;
            }
            if (rc < 0) {
                json_decref(res);
                return rc;
            }
        }
        *out = res;
        return CL_OK;
    }
    case N_FUNC:
        return call_fn(e, n, cur, out);
    case N_EXPREF:
        return eerr(e, n->pos, "an expression reference (&) is only valid as a function argument");
    }
    return eerr(e, n->pos, "internal error: unknown node");
}

/* ---- built-in functions --------------------------------------------------------------------- */

static int type_err(eval_ctx *e, const node *call, size_t argi, const char *want, const jarg *a)
{
    return eerr(e, call->pos, "%s(): argument %zu must be %s, got %s", call->fn->name, argi + 1,
                want, a->v ? jtype_name(jtype(a->v)) : "an expression reference");
}

static int out_new(json_t *v, json_t **out)
{
    CL_ENSURE(v != NULL, CL_ENOMEM);
    *out = v;
    return CL_OK;
}

static size_t utf8_len(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            c++;
    return c;
}

static int fn_abs(eval_ctx *e, const node *c, jarg *a, size_t n, json_t **out)
{
    if (json_is_integer(a[0].v)) {
        json_int_t v = json_integer_value(a[0].v);
        if (v == LLONG_MIN)
            return out_new(json_real(-(double)v), out);
        return out_new(json_integer(v < 0 ? -v : v), out);
    }
    double d = json_real_value(a[0].v);
    return out_new(json_real(d < 0 ? -d : d), out);
}

/* floor/ceil without libm: values of magnitude >= 2^52 are already integral. */
static double dfloor(double d)
{
    if (!(d > -4503599627370496.0 && d < 4503599627370496.0))
        return d;
    double t = (double)(long long)d;
    return t > d ? t - 1 : t;
}
static double dceil(double d)
{
    if (!(d > -4503599627370496.0 && d < 4503599627370496.0))
        return d;
    double t = (double)(long long)d;
    return t < d ? t + 1 : t;
}

/* An integral double as a JSON integer when it fits, else a real. */
static json_t *num_from_double(double d)
{
    if (d >= -9.2e18 && d <= 9.2e18 && d == dfloor(d))
        return json_integer((json_int_t)d);
    return isfinite(d) ? json_real(d) : NULL;
}

static int fn_ceil_floor(eval_ctx *e, const node *c, jarg *a, size_t n, json_t **out, int ceil_)
{
    if (json_is_integer(a[0].v)) {
        *out = json_incref(a[0].v);
        return CL_OK;
    }
    double d = json_real_value(a[0].v);
    json_t *r = num_from_double(ceil_ ? dceil(d) : dfloor(d));
    CL_ENSURE(r != NULL, CL_ENOMEM);
    *out = r;
    return CL_OK;
}
static int fn_ceil(eval_ctx *e, const node *c, jarg *a, size_t n, json_t **out)
{
    return fn_ceil_floor(e, c, a, n, out, 1);
}
static int fn_floor(eval_ctx *e, const node *c, jarg *a, size_t n, json_t **out)
{
    return fn_ceil_floor(e, c, a, n, out, 0);
}

/* Checks that every element of array argument i has type `ty`; charges one step per element. */
static int check_elems(eval_ctx *e, const node *c, jarg *a, size_t i, unsigned ty, const char *want)
{
    size_t k;
    json_t *el;
    CL_TRY(charge(e, json_array_size(a[i].v)));
    json_array_foreach(a[i].v, k, el)
    {
        if (!(jtype(el) & ty))
            return eerr(e, c->pos, "%s(): argument %zu must be %s (element %zu is %s)", c->fn->name,
                        i + 1, want, k, jtype_name(jtype(el)));
    }
    return CL_OK;
}

static int fn_sum_avg(eval_ctx *e, const node *c, jarg *a, size_t n, json_t **out, int avg)
{
    CL_TRY(check_elems(e, c, a, 0, TY_NUMBER, "an array of numbers"));
    size_t cnt = json_array_size(a[0].v), k;
    if (avg && cnt == 0) {
        *out = json_null();
        return CL_OK;
    }
    json_t *el;
    int all_int = 1;
    long long isum = 0;
    double dsum = 0;
    json_array_foreach(a[0].v, k, el)
    {
        dsum += json_number_value(el);
        if (all_int && json_is_integer(el)) {
            long long v = json_integer_value(el);
            if ((v > 0 && isum > LLONG_MAX - v) || (v < 0 && isum < LLONG_MIN - v))
                all_int = 0;
            else
                isum += v;
        } else {
            all_int = 0;
        }
    }
    json_t *r;
    if (avg)
        r = isfinite(dsum / (double)cnt) ? json_real(dsum / (double)cnt) : NULL;
    else
        r = all_int ? json_integer(isum) : isfinite(dsum) ? json_real(dsum) : NULL;
    if (r == NULL)
        return isfinite(dsum) ? CL_ENOMEM
                              : eerr(e, c->pos, "%s(): result out of range", c->fn->name);
    *out = r;
    return CL_OK;
}
static int fn_sum(eval_ctx *e, const node *c, jarg *a, size_t n, json_t **out)
{
    return fn_sum_avg(e, c, a, n, out, 0);
}
static int fn_avg(eval_ctx *e, const node *c, jarg *a, size_t n, json_t **out)
{
    return fn_sum_avg(e, c, a, n, out, 1);
}

static int fn_contains(eval_ctx *e, const node *c, jarg *a, size_t n, json_t **out)
{
    if (json_is_string(a[0].v)) {
        int found = 0;
        if (json_is_string(a[1].v)) {
            const char *h = json_string_value(a[0].v), *nd = json_string_value(a[1].v);
            size_t hl = json_string_length(a[0].v), nl = json_string_length(a[1].v);
            CL_TRY(charge(e, hl / 16 + 1));
            if (nl == 0)
                found = 1;
            for (size_t i = 0; !found && nl <= hl && i <= hl - nl; i++)
                found = memcmp(h + i, nd, nl) == 0;
        }
        *out = json_boolean(found);
        return CL_OK;
    }
    size_t k;
    json_t *el;
    json_array_foreach(a[0].v, k, el)
    {
        int eq = 0;
        CL_TRY(deep_equal(e, el, a[1].v, 0, &eq));
        if (eq) {
            *out = json_true();
            return CL_OK;
        }
    }
    *out = json_false();
    return CL_OK;
}

static int fn_starts_ends(eval_ctx *e, const node *c, jarg *a, size_t n, json_t **out, int ends)
{
    size_t hl = json_string_length(a[0].v), nl = json_string_length(a[1].v);
    int r = 0;
    if (nl <= hl) {
        const char *h = json_string_value(a[0].v) + (ends ? hl - nl : 0);
        r = memcmp(h, json_string_value(a[1].v), nl) == 0;
    }
    *out = json_boolean(r);
    return CL_OK;
}
static int fn_starts_with(eval_ctx *e, const node *c, jarg *a, size_t n, json_t **out)
{
    return fn_starts_ends(e, c, a, n, out, 0);
}
static int fn_ends_with(eval_ctx *e, const node *c, jarg *a, size_t n, json_t **out)
{
    return fn_starts_ends(e, c, a, n, out, 1);
}

static int fn_join(eval_ctx *e, const node *c, jarg *a, size_t n, json_t **out)
{
    CL_TRY(check_elems(e, c, a, 1, TY_STRING, "an array of strings"));
    size_t gl = json_string_length(a[0].v), total = 0, k;
    json_t *el;
    json_array_foreach(a[1].v, k, el)
    {
        total += json_string_length(el) + (k ? gl : 0);
        if (total > e->b->bytes)
            break;
    }
    CL_TRY(cl_jmes_charge_bytes(e->b, total, e->err, e->errlen));
    char *buf = cl_malloc(total + 1);
    CL_ENSURE(buf != NULL, CL_ENOMEM);
    size_t o = 0;
    json_array_foreach(a[1].v, k, el)
    {
        if (k) {
            memcpy(buf + o, json_string_value(a[0].v), gl);
            o += gl;
        }
        memcpy(buf + o, json_string_value(el), json_string_length(el));
        o += json_string_length(el);
    }
    buf[o] = '\0';
    json_t *r = json_stringn_nocheck(buf, o);
    cl_free(buf);
    return out_new(r, out);
}

static int fn_keys_values(eval_ctx *e, const node *c, jarg *a, size_t n, json_t **out, int keys)
{
    json_t *r = json_array();
    CL_ENSURE(r != NULL, CL_ENOMEM);
    const char *k;
    json_t *v;
    CL_TRY(charge(e, json_object_size(a[0].v)));
    json_object_foreach(a[0].v, k, v)
    {
        if ((keys ? json_array_append_new(r, json_string_nocheck(k)) : json_array_append(r, v)) !=
            0) {
            json_decref(r);
            return CL_ENOMEM;
        }
    }
    *out = r;
    return CL_OK;
}
static int fn_keys(eval_ctx *e, const node *c, jarg *a, size_t n, json_t **out)
{
    return fn_keys_values(e, c, a, n, out, 1);
}
static int fn_values(eval_ctx *e, const node *c, jarg *a, size_t n, json_t **out)
{
    return fn_keys_values(e, c, a, n, out, 0);
}

static int fn_length(eval_ctx *e, const node *c, jarg *a, size_t n, json_t **out)
{
    size_t len;
    if (json_is_string(a[0].v))
        len = utf8_len(json_string_value(a[0].v), json_string_length(a[0].v));
    else if (json_is_array(a[0].v))
        len = json_array_size(a[0].v);
    else
        len = json_object_size(a[0].v);
    return out_new(json_integer((json_int_t)len), out);
}

static int fn_map(eval_ctx *e, const node *c, jarg *a, size_t n, json_t **out)
{
    json_t *r = json_array();
    CL_ENSURE(r != NULL, CL_ENOMEM);
    size_t k;
    json_t *el;
    json_array_foreach(a[1].v, k, el)
    {
        json_t *v = NULL;
        int rc = ev(e, a[0].expr, el, &v);
        if (rc == CL_OK && json_array_append_new(r, v) != 0)
            rc = CL_ENOMEM;
        if (rc < 0) {
            json_decref(r);
            return rc;
        }
    }
    *out = r;
    return CL_OK;
}

/* Keys for sort/sort_by/max_by/min_by: key values of the elements, all numbers or all strings. */
typedef struct {
    json_t *key;
    json_t *el;
    size_t idx;
} keyed;

static int keyed_cmp(const void *x, const void *y)
{
    const keyed *a = x, *b = y;
    int c = json_is_string(a->key) ? str_cmp(a->key, b->key) : num_cmp(a->key, b->key);
    if (c != 0)
        return c;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static void keyed_free(keyed *k, size_t n)
{
    if (k == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        json_decref(k[i].key);
    cl_free(k);
}

/* Builds the key array of arr (expr NULL: the elements themselves). */
static int make_keys(eval_ctx *e, const node *c, json_t *arr, const node *expr, keyed **out)
{
    size_t cnt = json_array_size(arr);
    *out = NULL;
    if (cnt == 0)
        return CL_OK;
    keyed *k = cl_calloc(cnt, sizeof *k);
    CL_ENSURE(k != NULL, CL_ENOMEM);
    unsigned ty = 0;
    for (size_t i = 0; i < cnt; i++) {
        json_t *el = json_array_get(arr, i);
        json_t *key = NULL;
        int rc = charge(e, 1);
        if (rc == CL_OK && expr != NULL)
            rc = ev(e, expr, el, &key);
        else if (rc == CL_OK)
            key = json_incref(el);
        if (rc < 0) {
            keyed_free(k, i);
            return rc;
        }
        k[i].key = key;
        k[i].el = el;
        k[i].idx = i;
        unsigned t = jtype(key);
        if ((t != TY_NUMBER && t != TY_STRING) || (ty && t != ty)) {
            keyed_free(k, i + 1);
            return eerr(
                e, c->pos, "%s(): %s must all be numbers or all be strings (element %zu is %s)",
                c->fn->name, expr ? "the expression's results" : "the elements", i, jtype_name(t));
        }
        ty = t;
    }
    /* n log n comparisons */
    uint64_t logn = 1;
    while ((1ull << logn) < cnt)
        logn++;
    int rc = charge(e, cnt * logn);
    if (rc < 0) {
        keyed_free(k, cnt);
        return rc;
    }
    *out = k;
    return CL_OK;
}

static int sort_common(eval_ctx *e, const node *c, json_t *arr, const node *expr, json_t **out)
{
    keyed *k = NULL;
    CL_TRY(make_keys(e, c, arr, expr, &k));
    size_t cnt = json_array_size(arr);
    if (cnt)
        qsort(k, cnt, sizeof *k, keyed_cmp);
    json_t *r = json_array();
    int rc = r ? CL_OK : CL_ENOMEM;
    for (size_t i = 0; rc == CL_OK && i < cnt; i++)
        if (json_array_append(r, k[i].el) != 0)
            rc = CL_ENOMEM;
    keyed_free(k, cnt);
    if (rc < 0) {
        json_decref(r);
        return rc;
    }
    *out = r;
    return CL_OK;
}
static int fn_sort(eval_ctx *e, const node *c, jarg *a, size_t n, json_t **out)
{
    return sort_common(e, c, a[0].v, NULL, out);
}
static int fn_sort_by(eval_ctx *e, const node *c, jarg *a, size_t n, json_t **out)
{
    return sort_common(e, c, a[0].v, a[1].expr, out);
}

static int minmax_common(eval_ctx *e, const node *c, json_t *arr, const node *expr, int max,
                         json_t **out)
{
    keyed *k = NULL;
    CL_TRY(make_keys(e, c, arr, expr, &k));
    size_t cnt = json_array_size(arr), best = 0;
    if (cnt == 0) {
        *out = json_null();
        return CL_OK;
    }
    for (size_t i = 1; i < cnt; i++) {
        int cmp = json_is_string(k[i].key) ? str_cmp(k[i].key, k[best].key)
                                           : num_cmp(k[i].key, k[best].key);
        if (max ? cmp > 0 : cmp < 0)
            best = i;
    }
    *out = json_incref(k[best].el);
    keyed_free(k, cnt);
    return CL_OK;
}
static int fn_max(eval_ctx *e, const node *c, jarg *a, size_t n, json_t **out)
{
    return minmax_common(e, c, a[0].v, NULL, 1, out);
}
static int fn_min(eval_ctx *e, const node *c, jarg *a, size_t n, json_t **out)
{
    return minmax_common(e, c, a[0].v, NULL, 0, out);
}
static int fn_max_by(eval_ctx *e, const node *c, jarg *a, size_t n, json_t **out)
{
    return minmax_common(e, c, a[0].v, a[1].expr, 1, out);
}
static int fn_min_by(eval_ctx *e, const node *c, jarg *a, size_t n, json_t **out)
{
    return minmax_common(e, c, a[0].v, a[1].expr, 0, out);
}

static int fn_merge(eval_ctx *e, const node *c, jarg *a, size_t n, json_t **out)
{
    json_t *r = json_object();
    CL_ENSURE(r != NULL, CL_ENOMEM);
    for (size_t i = 0; i < n; i++) {
        int rc = charge(e, json_object_size(a[i].v) + 1);
        if (rc == CL_OK && json_object_update(r, a[i].v) != 0)
            rc = CL_ENOMEM;
        if (rc < 0) {
            json_decref(r);
            return rc;
        }
    }
    *out = r;
    return CL_OK;
}

static int fn_not_null(eval_ctx *e, const node *c, jarg *a, size_t n, json_t **out)
{
    for (size_t i = 0; i < n; i++)
        if (!json_is_null(a[i].v)) {
            *out = json_incref(a[i].v);
            return CL_OK;
        }
    *out = json_null();
    return CL_OK;
}

static int fn_reverse(eval_ctx *e, const node *c, jarg *a, size_t n, json_t **out)
{
    if (json_is_array(a[0].v)) {
        size_t cnt = json_array_size(a[0].v);
        CL_TRY(charge(e, cnt));
        json_t *r = json_array();
        CL_ENSURE(r != NULL, CL_ENOMEM);
        for (size_t i = cnt; i-- > 0;)
            if (json_array_append(r, json_array_get(a[0].v, i)) != 0) {
                json_decref(r);
                return CL_ENOMEM;
            }
        *out = r;
        return CL_OK;
    }
    const char *s = json_string_value(a[0].v);
    size_t len = json_string_length(a[0].v);
    CL_TRY(cl_jmes_charge_bytes(e->b, len, e->err, e->errlen));
    char *buf = cl_malloc(len + 1);
    CL_ENSURE(buf != NULL, CL_ENOMEM);
    /* reverse by code points: copy each UTF-8 sequence to the mirrored position */
    size_t i = 0;
    while (i < len) {
        size_t l = 1;
        while (i + l < len && ((unsigned char)s[i + l] & 0xC0) == 0x80)
            l++;
        memcpy(buf + len - i - l, s + i, l);
        i += l;
    }
    buf[len] = '\0';
    json_t *r = json_stringn_nocheck(buf, len);
    cl_free(buf);
    return out_new(r, out);
}

static int fn_to_array(eval_ctx *e, const node *c, jarg *a, size_t n, json_t **out)
{
    if (json_is_array(a[0].v)) {
        *out = json_incref(a[0].v);
        return CL_OK;
    }
    json_t *r = json_array();
    CL_ENSURE(r != NULL, CL_ENOMEM);
    if (json_array_append(r, a[0].v) != 0) {
        json_decref(r);
        return CL_ENOMEM;
    }
    *out = r;
    return CL_OK;
}

static int dump_checked(eval_ctx *e, const json_t *v, char **out, size_t *len);

static int fn_to_string(eval_ctx *e, const node *c, jarg *a, size_t n, json_t **out)
{
    if (json_is_string(a[0].v)) {
        *out = json_incref(a[0].v);
        return CL_OK;
    }
    char *s = NULL;
    size_t len = 0;
    CL_TRY(dump_checked(e, a[0].v, &s, &len));
    json_t *r = json_stringn_nocheck(s, len);
    cl_free(s);
    return out_new(r, out);
}

/* Strict JSON number grammar. */
static int json_number_text(const char *s, size_t n, int *is_int)
{
    size_t i = 0;
    *is_int = 1;
    if (i < n && s[i] == '-')
        i++;
    if (i >= n || !is_digit(s[i]))
        return 0;
    if (s[i] == '0')
        i++;
    else
        while (i < n && is_digit(s[i]))
            i++;
    if (i < n && s[i] == '.') {
        *is_int = 0;
        i++;
        if (i >= n || !is_digit(s[i]))
            return 0;
        while (i < n && is_digit(s[i]))
            i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        *is_int = 0;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= n || !is_digit(s[i]))
            return 0;
        while (i < n && is_digit(s[i]))
            i++;
    }
    return i == n;
}

static int fn_to_number(eval_ctx *e, const node *c, jarg *a, size_t n, json_t **out)
{
    if (json_is_number(a[0].v)) {
        *out = json_incref(a[0].v);
        return CL_OK;
    }
    *out = json_null();
    if (!json_is_string(a[0].v))
        return CL_OK;
    const char *s = json_string_value(a[0].v);
    size_t len = json_string_length(a[0].v);
    int is_int;
    if (len > 400 || !json_number_text(s, len, &is_int))
        return CL_OK;
    char buf[401];
    memcpy(buf, s, len);
    buf[len] = '\0';
    json_t *r = NULL;
    if (is_int) {
        char *end;
        errno = 0;
        long long v = strtoll(buf, &end, 10);
        if (errno == 0)
            r = json_integer(v);
    }
    if (r == NULL) {
        double d = strtod(buf, NULL);
        if (!isfinite(d))
            return CL_OK;
        r = json_real(d);
    }
    return out_new(r, out);
}

static int fn_type(eval_ctx *e, const node *c, jarg *a, size_t n, json_t **out)
{
    return out_new(json_string(jtype_name(jtype(a[0].v))), out);
}

/* Microsoft extension used in the MAA v1.2 samples: ASCII case-insensitive string equality;
 * false when either argument is not a string. */
static int fn_equals_ignore_case(eval_ctx *e, const node *c, jarg *a, size_t n, json_t **out)
{
    int r = 0;
    if (json_is_string(a[0].v) && json_is_string(a[1].v)) {
        size_t la = json_string_length(a[0].v), lb = json_string_length(a[1].v);
        const char *x = json_string_value(a[0].v), *y = json_string_value(a[1].v);
        r = la == lb;
        for (size_t i = 0; r && i < la; i++) {
            unsigned char p = (unsigned char)x[i], q = (unsigned char)y[i];
            if (p >= 'A' && p <= 'Z')
                p = (unsigned char)(p + 32);
            if (q >= 'A' && q <= 'Z')
                q = (unsigned char)(q + 32);
            r = p == q;
        }
    }
    *out = json_boolean(r);
    return CL_OK;
}

static const fndef FUNCS[] = {
    {"abs", 1, 1, {TY_NUMBER, 0}, fn_abs},
    {"avg", 1, 1, {TY_ARRAY, 0}, fn_avg},
    {"ceil", 1, 1, {TY_NUMBER, 0}, fn_ceil},
    {"contains", 2, 2, {TY_ARRAY | TY_STRING, TY_ANY}, fn_contains},
    {"ends_with", 2, 2, {TY_STRING, TY_STRING}, fn_ends_with},
    {"equals_ignore_case", 2, 2, {TY_ANY, TY_ANY}, fn_equals_ignore_case},
    {"floor", 1, 1, {TY_NUMBER, 0}, fn_floor},
    {"join", 2, 2, {TY_STRING, TY_ARRAY}, fn_join},
    {"keys", 1, 1, {TY_OBJECT, 0}, fn_keys},
    {"length", 1, 1, {TY_STRING | TY_ARRAY | TY_OBJECT, 0}, fn_length},
    {"map", 2, 2, {TY_EXPREF, TY_ARRAY}, fn_map},
    {"max", 1, 1, {TY_ARRAY, 0}, fn_max},
    {"max_by", 2, 2, {TY_ARRAY, TY_EXPREF}, fn_max_by},
    {"merge", 1, 0, {TY_OBJECT, TY_OBJECT}, fn_merge},
    {"min", 1, 1, {TY_ARRAY, 0}, fn_min},
    {"min_by", 2, 2, {TY_ARRAY, TY_EXPREF}, fn_min_by},
    {"not_null", 1, 0, {TY_ANY, TY_ANY}, fn_not_null},
    {"reverse", 1, 1, {TY_STRING | TY_ARRAY, 0}, fn_reverse},
    {"sort", 1, 1, {TY_ARRAY, 0}, fn_sort},
    {"sort_by", 2, 2, {TY_ARRAY, TY_EXPREF}, fn_sort_by},
    {"starts_with", 2, 2, {TY_STRING, TY_STRING}, fn_starts_with},
    {"sum", 1, 1, {TY_ARRAY, 0}, fn_sum},
    {"to_array", 1, 1, {TY_ANY, 0}, fn_to_array},
    {"to_number", 1, 1, {TY_ANY, 0}, fn_to_number},
    {"to_string", 1, 1, {TY_ANY, 0}, fn_to_string},
    {"type", 1, 1, {TY_ANY, 0}, fn_type},
    {"values", 1, 1, {TY_OBJECT, 0}, fn_values},
};

static const fndef *find_fn(const char *name)
{
    for (size_t i = 0; i < sizeof FUNCS / sizeof FUNCS[0]; i++)
        if (strcmp(FUNCS[i].name, name) == 0)
            return &FUNCS[i];
    return NULL;
}

static const char *want_text(unsigned ty)
{
    switch (ty) {
    case TY_NUMBER:
        return "a number";
    case TY_STRING:
        return "a string";
    case TY_ARRAY:
        return "an array";
    case TY_OBJECT:
        return "an object";
    case TY_EXPREF:
        return "an expression reference (&expr)";
    case TY_ARRAY | TY_STRING:
        return "an array or a string";
    case TY_STRING | TY_ARRAY | TY_OBJECT:
        return "a string, an array or an object";
    default:
        return "a JSON value";
    }
}

static int call_fn(eval_ctx *e, const node *n, json_t *cur, json_t **out)
{
    const fndef *fn = n->fn;
    jarg *a = cl_calloc(n->nkids ? n->nkids : 1, sizeof *a);
    CL_ENSURE(a != NULL, CL_ENOMEM);
    int rc = CL_OK;
    for (size_t i = 0; rc == CL_OK && i < n->nkids; i++) {
        const node *k = n->kids[i];
        unsigned want = fn->types[i < 2 ? i : 1];
        if (k->k == N_EXPREF)
            a[i].expr = k->kids[0];
        else
            rc = ev(e, k, cur, &a[i].v);
        if (rc == CL_OK && !((a[i].v ? jtype(a[i].v) : TY_EXPREF) & want))
            rc = type_err(e, n, i, want_text(want), &a[i]);
    }
    if (rc == CL_OK)
        rc = fn->impl(e, n, a, n->nkids, out);
    for (size_t i = 0; i < n->nkids; i++)
        json_decref(a[i].v);
    cl_free(a);
    return rc;
}

/* ---- serialisation and entry points --------------------------------------------------------- */

/* Lower bound of the compact serialisation size (escapes make the text longer), charging one
 * step per value; it stops adding once it passes `limit`. */
static int size_bound(eval_ctx *e, const json_t *v, unsigned depth, size_t *acc, size_t limit)
{
    CL_TRY(charge(e, 1));
    if (depth > 4 * CL_JMES_MAX_DEPTH)
        return eerr(e, 0, "result nested too deeply to serialise");
    switch (json_typeof(v)) {
    case JSON_STRING:
        *acc += json_string_length(v) + 2;
        break;
    case JSON_ARRAY: {
        size_t i;
        json_t *el;
        *acc += 2;
        json_array_foreach(v, i, el)
        {
            CL_TRY(size_bound(e, el, depth + 1, acc, limit));
            *acc += 1;
            if (*acc > limit)
                break;
        }
        break;
    }
    case JSON_OBJECT: {
        const char *k;
        json_t *el;
        *acc += 2;
        json_object_foreach((json_t *)v, k, el)
        {
            *acc += strlen(k) + 4;
            CL_TRY(size_bound(e, el, depth + 1, acc, limit));
            if (*acc > limit)
                break;
        }
        break;
    }
    default:
        *acc += 1;
        break;
    }
    return CL_OK;
}

static int dump_checked(eval_ctx *e, const json_t *v, char **out, size_t *len)
{
    size_t bound = 0;
    CL_TRY(size_bound(e, v, 0, &bound, e->b->bytes));
    if (bound > e->b->bytes)
        return cl_jmes_charge_bytes(e->b, bound, e->err, e->errlen);
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    CL_ENSURE(s != NULL, CL_ENOMEM);
    size_t l = strlen(s);
    int rc = cl_jmes_charge_bytes(e->b, l, e->err, e->errlen);
    if (rc < 0) {
        cl_free(s);
        return rc;
    }
    *out = s;
    *len = l;
    return CL_OK;
}

int cl_jmespath_eval(const json_t *doc, const char *query, size_t qlen, json_t **out,
                     cl_jmes_budget *b, char *err, size_t errlen)
{
    node *n = NULL;
    *out = NULL;
    CL_TRY(compile(query, qlen, &n, b, err, errlen));
    eval_ctx e = {.q = query, .b = b, .err = err, .errlen = errlen};
    int rc = ev(&e, n, (json_t *)doc, out);
    node_free(n);
    return rc;
}

int cl_jmespath_search(const char *json, size_t jlen, const char *query, size_t qlen, char **out,
                       cl_jmes_budget *b, char *err, size_t errlen)
{
    *out = NULL;
    json_t *doc = NULL, *res = NULL;
    if (jlen == 0) {
        if (err)
            snprintf(err, errlen, "JSON document is empty");
        return CL_EFORMAT;
    }
    node *n = NULL;
    CL_TRY(compile(query, qlen, &n, b, err, errlen));
    int rc = cl_jmes_parse_json(json, jlen, &doc, b, err, errlen);
    eval_ctx e = {.q = query, .b = b, .err = err, .errlen = errlen};
    if (rc == CL_OK)
        rc = ev(&e, n, doc, &res);
    node_free(n);
    json_decref(doc);
    if (rc < 0)
        return rc;
    size_t len = 0;
    rc = dump_checked(&e, res, out, &len);
    json_decref(res);
    return rc;
}
