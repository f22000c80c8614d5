/*
 * policy.c — parser and evaluator of the MAA attestation policy language
 * (spec/attestation-policy.md; see policy.h for ownership and the error convention).
 *
 * The text is checked for UTF-8 first, then lexed into a token array (a lexical error becomes a
 * final TK_ERROR token, so errors are still reported in text order), then parsed by recursive
 * descent into rules. Only function-call arguments recurse, and their depth is capped (S10), so
 * hostile nesting cannot exhaust the stack. Static rules S1–S9 are checked while parsing.
 *
 * Evaluation follows §5: every rule once, in order, against the incoming set as it stands; an
 * identifier binds the list of all matching claims (indices into the incoming set, which only
 * grows); an action runs once per firing. Values are scalars, Sets or empty (§4.2). Work is
 * bounded by the limits in policy.h (claims, bytes, steps, CPU time).
 */
#include "attest/policy.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "attest/jmespath.h"
#include "base/alloc.h"

/* ---- AST ------------------------------------------------------------------------------------ */

typedef enum { PROP_TYPE, PROP_VALUE, PROP_ISSUER, PROP_VALUETYPE } prop_t;
typedef enum { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE } cmpop_t;
typedef enum { X_STR, X_INT, X_BOOL, X_REF, X_CALL } xkind_t;
typedef enum {
    F_JMESPATH,
    F_JSONTOCLAIMVALUE,
    F_ISSUBSETOF,
    F_APPENDSTRING,
    F_NEGATEBOOL,
    F_CONTAINSONLYVALUE
} fn_t;
typedef enum { A_PERMIT, A_DENY, A_ADD, A_ISSUE, A_ISSUEPROPERTY } act_t;
enum { SEC_CONFIG = 0, SEC_AUTHZ = 1, SEC_ISSUANCE = 2 };

typedef struct expr {
    xkind_t k;
    unsigned line, col;
    char *s; /* X_STR (no NUL inside: the text has none) */
    int64_t i;
    int b;
    int var; /* X_REF */
    prop_t prop;
    fn_t fn; /* X_CALL */
    struct expr *args[2];
    unsigned nargs;
} expr;

typedef struct {
    prop_t prop;
    cmpop_t op;
    expr *rhs;
} ptest;

typedef struct {
    int var; /* -1: none */
    int neg;
    ptest *tests;
    size_t ntests;
    unsigned line, col;
} cond;

typedef struct {
    cond *conds;
    size_t nconds;
    unsigned nvars;
    act_t act;
    int claim_var; /* -1 unless claim=x */
    expr *arg[3];  /* type, value, valueType in textual order; argprop says which */
    prop_t argprop[3];
    unsigned nargs;
    unsigned line, col; /* the action keyword */
} rule;

typedef struct {
    rule *rules;
    size_t n, cap;
    int present;
} sect_t;

struct cl_policy {
    int version;
    sect_t sec[3];
};

static void expr_free(expr *e)
{
    if (e == NULL)
        return;
    cl_free(e->s);
    for (unsigned i = 0; i < e->nargs; i++)
        expr_free(e->args[i]);
    cl_free(e);
}

static void rule_clear(rule *r)
{
    for (size_t i = 0; i < r->nconds; i++) {
        for (size_t j = 0; j < r->conds[i].ntests; j++)
            expr_free(r->conds[i].tests[j].rhs);
        cl_free(r->conds[i].tests);
    }
    cl_free(r->conds);
    for (unsigned i = 0; i < r->nargs; i++)
        expr_free(r->arg[i]);
}

void cl_policy_free(cl_policy *p)
{
    if (p == NULL)
        return;
    for (int s = 0; s < 3; s++) {
        for (size_t i = 0; i < p->sec[s].n; i++)
            rule_clear(&p->sec[s].rules[i]);
        cl_free(p->sec[s].rules);
    }
    cl_free(p);
}

int cl_policy_version(const cl_policy *p) { return p ? p->version : 0; }

size_t cl_policy_rule_count(const cl_policy *p, int section)
{
    if (p == NULL || section < 0 || section > 2)
        return 0;
    return p->sec[section].n;
}

/* ---- lexer ---------------------------------------------------------------------------------- */

typedef enum {
    TK_EOF,
    TK_ERROR,
    TK_WORD,
    TK_STRING,
    TK_INT,
    TK_DECIMAL,
    TK_ARROW,
    TK_ANDAND,
    TK_EQEQ,
    TK_NE,
    TK_LE,
    TK_GE,
    TK_EQ,
    TK_LT,
    TK_GT,
    TK_NOT,
    TK_COLON,
    TK_COMMA,
    TK_DOT,
    TK_SEMI,
    TK_LPAREN,
    TK_RPAREN,
    TK_LBRACKET,
    TK_RBRACKET,
    TK_LBRACE,
    TK_RBRACE
} tk_t;

typedef enum {
    KW_NONE = 0,
    KW_VERSION,
    KW_CONFIGURATIONRULES,
    KW_AUTHORIZATIONRULES,
    KW_ISSUANCERULES,
    KW_PERMIT,
    KW_DENY,
    KW_ADD,
    KW_ISSUE,
    KW_ISSUEPROPERTY,
    KW_CLAIM,
    KW_TYPE,
    KW_VALUE,
    KW_ISSUER,
    KW_VALUETYPE,
    KW_TRUE,
    KW_FALSE,
    KW_JMESPATH,
    KW_JSONTOCLAIMVALUE,
    KW_ISSUBSETOF,
    KW_APPENDSTRING,
    KW_NEGATEBOOL,
    KW_NEGATEBOL,
    KW_CONTAINSONLYVALUE
} kw_t;

static const char *const KW_NAMES[] = {"",
                                       "version",
                                       "configurationrules",
                                       "authorizationrules",
                                       "issuancerules",
                                       "permit",
                                       "deny",
                                       "add",
                                       "issue",
                                       "issueproperty",
                                       "claim",
                                       "type",
                                       "value",
                                       "issuer",
                                       "valueType",
                                       "true",
                                       "false",
                                       "JmesPath",
                                       "JsonToClaimValue",
                                       "IsSubsetOf",
                                       "AppendString",
                                       "NegateBool",
                                       "NegateBol",
                                       "ContainsOnlyValue"};

typedef struct {
    tk_t k;
    kw_t kw;
    size_t start, len; /* bytes in the text */
    unsigned line, col;
    int64_t ival;
    char *str; /* TK_STRING: decoded, owned */
} token;

typedef struct {
    const char *text;
    size_t len;
    token *t;
    size_t nt, ct;
    size_t cur;
    char lexmsg[160]; /* message of the TK_ERROR token */
    char *err;
    size_t errlen;
    cl_policy *pol;
    size_t nrules;
    /* identifiers of the rule being parsed */
    const char *vname[64];
    size_t vlen[64];
    unsigned nvars;
} parser;

static int perr_at(parser *p, unsigned line, unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int perr_at(parser *p, unsigned line, unsigned col, const char *fmt, ...)
{
    if (p->err && p->errlen) {
        int n = snprintf(p->err, p->errlen, "line %u, column %u: ", line, col);
        if (n >= 0 && (size_t)n < p->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return CL_EPOLICY;
}

/* Position of byte offset `off` (1-based line; column in characters). */
static void position(const char *s, size_t off, unsigned *line, unsigned *col)
{
    unsigned l = 1, c = 1;
    for (size_t i = 0; i < off; i++) {
        unsigned char b = (unsigned char)s[i];
        if (b == '\n') {
            l++;
            c = 1;
        } else if ((b & 0xC0) != 0x80) {
            c++;
        }
    }
    *line = l;
    *col = c;
}

/* Offset of the first byte that is not part of valid UTF-8 (RFC 3629: no overlongs, no
 * surrogates, at most U+10FFFF), or len when all of it is valid. */
static size_t utf8_check(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned char b = s[i];
        if (b < 0x80) {
            i++;
            continue;
        }
        size_t n;
        unsigned lo = 0x80, hi = 0xBF;
        if (b >= 0xC2 && b <= 0xDF)
            n = 1;
        else if (b >= 0xE0 && b <= 0xEF) {
            n = 2;
            if (b == 0xE0)
                lo = 0xA0;
            if (b == 0xED)
                hi = 0x9F;
        } else if (b >= 0xF0 && b <= 0xF4) {
            n = 3;
            if (b == 0xF0)
                lo = 0x90;
            if (b == 0xF4)
                hi = 0x8F;
        } else
            return i;
        if (i + n >= len)
            return i;
        for (size_t k = 1; k <= n; k++) {
            unsigned char cb = s[i + k];
            unsigned l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
            if (cb < l || cb > h)
                return i;
        }
        i += n + 1;
    }
    return len;
}

static kw_t classify(const char *w, size_t n)
{
    for (size_t k = 1; k < sizeof KW_NAMES / sizeof KW_NAMES[0]; k++) {
        const char *name = KW_NAMES[k];
        if (strlen(name) != n)
            continue;
        size_t i = 0;
        for (; i < n; i++) {
            char a = w[i], b = name[i];
            if (a >= 'A' && a <= 'Z')
                a = (char)(a + 32);
            if (b >= 'A' && b <= 'Z')
                b = (char)(b + 32);
            if (a != b)
                break;
        }
        if (i == n)
            return (kw_t)k;
    }
    return KW_NONE;
}

static int push(parser *p, tk_t k, size_t start, size_t len, unsigned line, unsigned col,
                token **out)
{
    if (p->nt == p->ct) {
        size_t nc = p->ct ? p->ct * 2 : 64;
        token *t = cl_realloc(p->t, nc * sizeof *t);
        CL_ENSURE(t != NULL, CL_ENOMEM);
        p->t = t;
        p->ct = nc;
    }
    token *t = &p->t[p->nt++];
    memset(t, 0, sizeof *t);
    t->k = k;
    t->start = start;
    t->len = len;
    t->line = line;
    t->col = col;
    if (out)
        *out = t;
    return CL_OK;
}

static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static int is_dig(char c) { return c >= '0' && c <= '9'; }
static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Lexes the whole text. A lexical error ends the array with a TK_ERROR token whose message is in
 * p->lexmsg. Only CL_ENOMEM is returned as an error. */
static int lex(parser *p)
{
    const char *s = p->text;
    size_t n = p->len, i = 0;
    unsigned line = 1, col = 1;
    token *t;
#define ADV(k)                                                                                     \
    do {                                                                                           \
        size_t adv_n_ = (k);                                                                       \
        for (size_t adv_ = 0; adv_ < adv_n_; adv_++, i++) {                                        \
            if (s[i] == '\n') {                                                                    \
                line++;                                                                            \
                col = 1;                                                                           \
            } else if (((unsigned char)s[i] & 0xC0) != 0x80) {                                     \
                col++;                                                                             \
            }                                                                                      \
        }                                                                                          \
    } while (0)
#define LEXERR(...)                                                                                \
    do {                                                                                           \
        snprintf(p->lexmsg, sizeof p->lexmsg, __VA_ARGS__);                                        \
        return push(p, TK_ERROR, st, 0, sl, sc, NULL);                                             \
    } while (0)
    while (i < n) {
        char c = s[i];
        size_t st = i;
        unsigned sl = line, sc = col;
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            ADV(1);
            continue;
        }
        if (c == '/' && i + 1 < n && s[i + 1] == '/') {
            while (i < n && s[i] != '\n')
                ADV(1);
            continue;
        }
        if (is_alpha(c)) {
            size_t e = i;
            while (e < n && (is_alpha(s[e]) || is_dig(s[e])))
                e++;
            CL_TRY(push(p, TK_WORD, st, e - i, sl, sc, &t));
            t->kw = classify(s + i, e - i);
            ADV(e - i);
            continue;
        }
        if (is_dig(c) || (c == '-' && i + 1 < n && is_dig(s[i + 1]))) {
            size_t e = i;
            int neg = 0;
            if (s[e] == '-') {
                neg = 1;
                e++;
            }
            uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
            tk_t kind = TK_INT;
            if (s[e] == '0' && e + 1 < n && (s[e + 1] == 'x' || s[e + 1] == 'X')) {
                e += 2;
                size_t d0 = e;
                while (e < n && hexval(s[e]) >= 0) {
                    if (v > (lim - (uint64_t)hexval(s[e])) / 16)
                        LEXERR("integer literal out of range (signed 64-bit)");
                    v = v * 16 + (uint64_t)hexval(s[e]);
                    e++;
                }
                if (e == d0)
                    LEXERR("hexadecimal literal needs at least one digit after '0x'");
            } else {
                while (e < n && is_dig(s[e])) {
                    uint64_t d = (uint64_t)(s[e] - '0');
                    if (v > (lim - d) / 10)
                        LEXERR("integer literal out of range (signed 64-bit)");
                    v = v * 10 + d;
                    e++;
                }
                if (!neg && e + 1 < n && s[e] == '.' && is_dig(s[e + 1])) {
                    e++;
                    while (e < n && is_dig(s[e]))
                        e++;
                    kind = TK_DECIMAL;
                }
            }
            if (e < n && (is_alpha(s[e]) || is_dig(s[e])))
                LEXERR("invalid number '%.*s'", (int)((e + 1 - i) > 40 ? 40 : (e + 1 - i)), s + i);
            CL_TRY(push(p, kind, st, e - i, sl, sc, &t));
            t->ival = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
            ADV(e - i);
            continue;
        }
        if (c == '"') {
            size_t e = i + 1, o = 0;
            while (e < n && s[e] != '"') {
                if (s[e] == '\\' && e + 1 < n)
                    e++;
                e++;
            }
            if (e >= n)
                LEXERR("unterminated string literal");
            char *str = cl_malloc(e - i);
            CL_ENSURE(str != NULL, CL_ENOMEM);
            for (size_t k = i + 1; k < e; k++) {
                /* §2: \" and \\ are escapes; any other backslash is kept verbatim */
                if (s[k] == '\\' && (s[k + 1] == '"' || s[k + 1] == '\\'))
                    k++;
                str[o++] = s[k];
            }
            str[o] = '\0';
            int rc = push(p, TK_STRING, st, e + 1 - i, sl, sc, &t);
            if (rc < 0) {
                cl_free(str);
                return rc;
            }
            t->str = str;
            ADV(e + 1 - i);
            continue;
        }
        tk_t k2 = TK_EOF, k1 = TK_EOF;
        char d = i + 1 < n ? s[i + 1] : '\0';
        switch (c) {
        case '=':
            k2 = d == '>' ? TK_ARROW : d == '=' ? TK_EQEQ : TK_EOF;
            k1 = TK_EQ;
            break;
        case '!':
            k2 = d == '=' ? TK_NE : TK_EOF;
            k1 = TK_NOT;
            break;
        case '<':
            k2 = d == '=' ? TK_LE : TK_EOF;
            k1 = TK_LT;
            break;
        case '>':
            k2 = d == '=' ? TK_GE : TK_EOF;
            k1 = TK_GT;
            break;
        case '&':
            k2 = d == '&' ? TK_ANDAND : TK_EOF;
            break;
        case ':':
            k1 = TK_COLON;
            break;
        case ',':
            k1 = TK_COMMA;
            break;
        case '.':
            k1 = TK_DOT;
            break;
        case ';':
            k1 = TK_SEMI;
            break;
        case '(':
            k1 = TK_LPAREN;
            break;
        case ')':
            k1 = TK_RPAREN;
            break;
        case '[':
            k1 = TK_LBRACKET;
            break;
        case ']':
            k1 = TK_RBRACKET;
            break;
        case '{':
            k1 = TK_LBRACE;
            break;
        case '}':
            k1 = TK_RBRACE;
            break;
        default:
            break;
        }
        if (k2 != TK_EOF) {
            CL_TRY(push(p, k2, st, 2, sl, sc, NULL));
            ADV(2);
            continue;
        }
        if (k1 != TK_EOF) {
            CL_TRY(push(p, k1, st, 1, sl, sc, NULL));
            ADV(1);
            continue;
        }
        if (c == '&')
            LEXERR("unexpected character '&' (the conjunction is '&&')");
        if ((unsigned char)c >= 0x80) {
            /* decode the code point for the message */
            unsigned cp = 0, len = (unsigned char)c >= 0xF0 ? 4 : (unsigned char)c >= 0xE0 ? 3 : 2;
            cp = (unsigned char)c & (0xFF >> (len + 1));
            for (unsigned k = 1; k < len && i + k < n; k++)
                cp = cp << 6 | ((unsigned char)s[i + k] & 0x3F);
            if (cp == 0x201C || cp == 0x201D)
                LEXERR("unexpected character U+%04X (typographic quote; use ASCII '\"')", cp);
            LEXERR("unexpected character U+%04X (non-ASCII is allowed only inside strings)", cp);
        }
        if ((unsigned char)c < 0x20 || c == 0x7F)
            LEXERR("unexpected control character 0x%02X", (unsigned)(unsigned char)c);
        LEXERR("unexpected character '%c'", c);
    }
    return push(p, TK_EOF, n, 0, line, col, NULL);
#undef ADV
#undef LEXERR
}

/* ---- parser --------------------------------------------------------------------------------- */

static const token *cur(const parser *p) { return &p->t[p->cur]; }
static void advance(parser *p)
{
    if (p->cur + 1 < p->nt)
        p->cur++;
}
static int at(const parser *p, tk_t k) { return cur(p)->k == k; }
static int at_kw(const parser *p, kw_t kw) { return cur(p)->k == TK_WORD && cur(p)->kw == kw; }

/* At most `max` bytes of s, cut back to a UTF-8 character boundary. */
static int clip(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return (int)len;
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
        max--;
    return (int)max;
}

/* "found ..." description of a token. */
static void describe(const parser *p, const token *t, char *buf, size_t n)
{
    const char *s = p->text + t->start;
    switch (t->k) {
    case TK_EOF:
        snprintf(buf, n, "end of input");
        break;
    case TK_STRING:
        if (t->len > 42)
            snprintf(buf, n, "string %.*s...\"", clip(s, t->len, 40), s);
        else
            snprintf(buf, n, "string %.*s", (int)t->len, s);
        break;
    default:
        snprintf(buf, n, "'%.*s'", clip(s, t->len, 40), s);
        break;
    }
}

/* Error at the current token: the lexical error if that is what stopped us, else
 * "expected <what>, found <token>". */
static int expected(parser *p, const char *what)
{
    const token *t = cur(p);
    if (t->k == TK_ERROR)
        return perr_at(p, t->line, t->col, "%s", p->lexmsg);
    char f[64];
    describe(p, t, f, sizeof f);
    return perr_at(p, t->line, t->col, "expected %s, found %s", what, f);
}

static int expect(parser *p, tk_t k, const char *what)
{
    if (!at(p, k))
        return expected(p, what);
    advance(p);
    return CL_OK;
}

static int lookup_var(const parser *p, const token *t)
{
    for (unsigned i = 0; i < p->nvars; i++)
        if (p->vlen[i] == t->len && memcmp(p->vname[i], p->text + t->start, t->len) == 0)
            return (int)i;
    return -1;
}

static int new_expr(xkind_t k, const token *t, expr **out)
{
    expr *e = cl_calloc(1, sizeof *e);
    CL_ENSURE(e != NULL, CL_ENOMEM);
    e->k = k;
    e->line = t->line;
    e->col = t->col;
    *out = e;
    return CL_OK;
}

static int parse_prop(parser *p, prop_t *out, int allow_issuer, const char *what)
{
    if (cur(p)->k == TK_WORD) {
        switch (cur(p)->kw) {
        case KW_TYPE:
            *out = PROP_TYPE;
            break;
        case KW_VALUE:
            *out = PROP_VALUE;
            break;
        case KW_VALUETYPE:
            *out = PROP_VALUETYPE;
            break;
        case KW_ISSUER:
            if (!allow_issuer)
                return expected(p, what);
            *out = PROP_ISSUER;
            break;
        default:
            return expected(p, what);
        }
        advance(p);
        return CL_OK;
    }
    return expected(p, what);
}

static const char *const FN_NAMES[] = {"JmesPath",     "JsonToClaimValue", "IsSubsetOf",
                                       "AppendString", "NegateBool",       "ContainsOnlyValue"};

static int parse_expr(parser *p, unsigned depth, expr **out)
{
    const token *t = cur(p);
    expr *e = NULL;
    *out = NULL;
    if (t->k == TK_STRING) {
        CL_TRY(new_expr(X_STR, t, &e));
        e->s = cl_strdup(t->str);
        if (e->s == NULL) {
            cl_free(e);
            return CL_ENOMEM;
        }
        advance(p);
        *out = e;
        return CL_OK;
    }
    if (t->k == TK_INT) {
        CL_TRY(new_expr(X_INT, t, &e));
        e->i = t->ival;
        advance(p);
        *out = e;
        return CL_OK;
    }
    if (t->k != TK_WORD)
        return expected(p, "an expression (string, integer, true, false, x.property or a function "
                           "call)");
    if (t->kw == KW_TRUE || t->kw == KW_FALSE) {
        CL_TRY(new_expr(X_BOOL, t, &e));
        e->b = t->kw == KW_TRUE;
        advance(p);
        *out = e;
        return CL_OK;
    }
    if (t->kw >= KW_JMESPATH && t->kw <= KW_CONTAINSONLYVALUE) {
        static const fn_t map[] = {F_JMESPATH,         F_JSONTOCLAIMVALUE, F_ISSUBSETOF,
                                   F_APPENDSTRING,     F_NEGATEBOOL,       F_NEGATEBOOL,
                                   F_CONTAINSONLYVALUE};
        fn_t fn = map[t->kw - KW_JMESPATH];
        if (p->pol->version < 12)
            return perr_at(p, t->line, t->col,
                           "function %s requires version 1.2 (the policy declares 1.%d)",
                           FN_NAMES[fn], p->pol->version - 10);
        if (depth >= CL_POLICY_MAX_CALL_DEPTH)
            return perr_at(p, t->line, t->col, "function calls nested deeper than %u levels",
                           CL_POLICY_MAX_CALL_DEPTH);
        CL_TRY(new_expr(X_CALL, t, &e));
        e->fn = fn;
        advance(p);
        int rc = expect(p, TK_LPAREN, "'('");
        unsigned want = (fn == F_JSONTOCLAIMVALUE || fn == F_NEGATEBOOL) ? 1 : 2;
        unsigned got = 0;
        while (rc == CL_OK && !at(p, TK_RPAREN)) {
            if (got > 0)
                rc = expect(p, TK_COMMA, "',' or ')'");
            expr *a = NULL;
            if (rc == CL_OK)
                rc = parse_expr(p, depth + 1, &a);
            if (rc == CL_OK) {
                if (got < 2)
                    e->args[e->nargs++] = a;
                else
                    expr_free(a);
                got++;
            }
        }
        if (rc == CL_OK && got != want)
            rc = perr_at(p, e->line, e->col, "%s takes %u argument%s, got %u", FN_NAMES[fn], want,
                         want == 1 ? "" : "s", got);
        if (rc == CL_OK)
            advance(p); /* ')' */
        if (rc < 0) {
            expr_free(e);
            return rc;
        }
        *out = e;
        return CL_OK;
    }
    if (t->kw != KW_NONE)
        return expected(p, "an expression (string, integer, true, false, x.property or a function "
                           "call)");
    /* identifier */
    if (p->cur + 1 < p->nt && p->t[p->cur + 1].k == TK_LPAREN)
        return perr_at(p, t->line, t->col, "unknown function '%.*s'", (int)t->len,
                       p->text + t->start);
    int v = lookup_var(p, t);
    if (v < 0)
        return perr_at(p, t->line, t->col,
                       "identifier '%.*s' is not bound by a condition to its left in this rule",
                       (int)t->len, p->text + t->start);
    CL_TRY(new_expr(X_REF, t, &e));
    e->var = v;
    advance(p);
    int rc = expect(p, TK_DOT, "'.' after an identifier");
    if (rc == CL_OK)
        rc = parse_prop(p, &e->prop, 1, "'type', 'value', 'issuer' or 'valueType'");
    if (rc < 0) {
        expr_free(e);
        return rc;
    }
    *out = e;
    return CL_OK;
}

static const char *xkind_name(const expr *e)
{
    return e->k == X_INT ? "an integer" : e->k == X_BOOL ? "a boolean" : "a string";
}

static int parse_cond(parser *p, rule *r)
{
    const token *t = cur(p);
    cond c = {.var = -1, .line = t->line, .col = t->col};
    const token *bind = NULL;
    if (at(p, TK_NOT)) {
        if (p->pol->version < 12)
            return perr_at(p, t->line, t->col,
                           "negated condition '![...]' requires version 1.2 (the policy declares "
                           "1.%d)",
                           p->pol->version - 10);
        c.neg = 1;
        advance(p);
    } else if (t->k == TK_WORD && t->kw == KW_NONE) {
        if (p->cur + 1 >= p->nt || p->t[p->cur + 1].k != TK_COLON) {
            advance(p);
            return expected(p, "':' after the identifier");
        }
        if (lookup_var(p, t) >= 0)
            return perr_at(p, t->line, t->col, "identifier '%.*s' is already bound in this rule",
                           (int)t->len, p->text + t->start);
        bind = t;
        advance(p);
        advance(p);
        if (at(p, TK_NOT))
            return perr_at(p, cur(p)->line, cur(p)->col,
                           "a negated condition cannot bind an identifier");
    } else if (!at(p, TK_LBRACKET)) {
        return expected(p, r->nconds ? "a condition" : "a condition or '=>'");
    }
    CL_TRY(expect(p, TK_LBRACKET, "'['"));
    int rc = CL_OK;
    if (!at(p, TK_RBRACKET)) {
        for (;;) {
            ptest pt;
            rc = parse_prop(p, &pt.prop, 1, "'type', 'value', 'issuer' or 'valueType'");
            if (rc < 0)
                break;
            static const struct {
                tk_t k;
                cmpop_t op;
            } ops[] = {{TK_EQEQ, OP_EQ}, {TK_EQ, OP_EQ}, {TK_NE, OP_NE}, {TK_LT, OP_LT},
                       {TK_LE, OP_LE},   {TK_GT, OP_GT}, {TK_GE, OP_GE}};
            size_t k = 0;
            while (k < sizeof ops / sizeof ops[0] && ops[k].k != cur(p)->k)
                k++;
            if (k == sizeof ops / sizeof ops[0]) {
                rc = expected(p, "a comparison operator (==, !=, <, <=, >, >=)");
                break;
            }
            pt.op = ops[k].op;
            advance(p);
            const token *xt = cur(p);
            rc = parse_expr(p, 0, &pt.rhs);
            if (rc < 0)
                break;
            if (pt.prop != PROP_VALUE && (pt.rhs->k == X_INT || pt.rhs->k == X_BOOL)) {
                rc = perr_at(p, xt->line, xt->col, "'%s' is compared with a string, found %s",
                             KW_NAMES[pt.prop == PROP_TYPE     ? KW_TYPE
                                      : pt.prop == PROP_ISSUER ? KW_ISSUER
                                                               : KW_VALUETYPE],
                             xkind_name(pt.rhs));
                expr_free(pt.rhs);
                break;
            }
            ptest *nt = cl_realloc(c.tests, (c.ntests + 1) * sizeof *nt);
            if (nt == NULL) {
                expr_free(pt.rhs);
                rc = CL_ENOMEM;
                break;
            }
            c.tests = nt;
            c.tests[c.ntests++] = pt;
            if (at(p, TK_COMMA)) {
                advance(p);
                continue;
            }
            break;
        }
    }
    if (rc == CL_OK)
        rc = expect(p, TK_RBRACKET, "',' or ']'");
    if (rc == CL_OK && bind != NULL) {
        if (p->nvars >= sizeof p->vname / sizeof p->vname[0])
            rc = perr_at(p, bind->line, bind->col, "too many identifiers in one rule");
        else {
            c.var = (int)p->nvars;
            p->vname[p->nvars] = p->text + bind->start;
            p->vlen[p->nvars++] = bind->len;
        }
    }
    if (rc == CL_OK) {
        cond *nc = cl_realloc(r->conds, (r->nconds + 1) * sizeof *nc);
        if (nc == NULL)
            rc = CL_ENOMEM;
        else {
            r->conds = nc;
            r->conds[r->nconds++] = c;
            return CL_OK;
        }
    }
    for (size_t i = 0; i < c.ntests; i++)
        expr_free(c.tests[i].rhs);
    cl_free(c.tests);
    return rc;
}

static const char *const SEC_NAMES[] = {"configurationrules", "authorizationrules",
                                        "issuancerules"};

static int parse_action(parser *p, rule *r, int sec)
{
    const token *t = cur(p);
    if (t->k != TK_WORD || t->kw < KW_PERMIT || t->kw > KW_ISSUEPROPERTY)
        return expected(p, "an action (permit, deny, add, issue or issueproperty)");
    static const act_t acts[] = {A_PERMIT, A_DENY, A_ADD, A_ISSUE, A_ISSUEPROPERTY};
    act_t a = acts[t->kw - KW_PERMIT];
    const char *name = KW_NAMES[t->kw];
    r->act = a;
    r->line = t->line;
    r->col = t->col;
    r->claim_var = -1;
    /* S3–S5: which actions each section allows */
    int ok;
    const char *where;
    switch (a) {
    case A_PERMIT:
    case A_DENY:
        ok = sec == SEC_AUTHZ;
        where = "authorizationrules";
        break;
    case A_ISSUE:
        ok = sec == SEC_ISSUANCE;
        where = "issuancerules";
        break;
    case A_ADD:
        ok = sec != SEC_CONFIG;
        where = "authorizationrules and issuancerules";
        break;
    default:
        ok = sec != SEC_AUTHZ;
        where = "configurationrules and issuancerules";
        break;
    }
    if (!ok)
        return perr_at(p, t->line, t->col, "%s() is not allowed in %s (only in %s)", name,
                       SEC_NAMES[sec], where);
    advance(p);
    CL_TRY(expect(p, TK_LPAREN, "'('"));
    if (a == A_PERMIT || a == A_DENY)
        return expect(p, TK_RPAREN, "')'");
    if (at_kw(p, KW_CLAIM)) {
        advance(p);
        CL_TRY(expect(p, TK_EQ, "'='"));
        const token *id = cur(p);
        if (id->k != TK_WORD || id->kw != KW_NONE)
            return expected(p, "an identifier");
        int v = lookup_var(p, id);
        if (v < 0)
            return perr_at(p, id->line, id->col,
                           "identifier '%.*s' is not bound by a condition of this rule",
                           (int)id->len, p->text + id->start);
        r->claim_var = v;
        advance(p);
        return expect(p, TK_RPAREN, "')'");
    }
    int seen[3] = {0, 0, 0};
    for (;;) {
        const token *at_t = cur(p);
        prop_t pr = PROP_TYPE;
        CL_TRY(parse_prop(p, &pr, 0,
                          r->nargs ? "'type', 'value' or 'valueType'"
                                   : "'claim', 'type', 'value' or 'valueType'"));
        int slot = pr == PROP_TYPE ? 0 : pr == PROP_VALUE ? 1 : 2;
        if (seen[slot])
            return perr_at(p, at_t->line, at_t->col, "duplicate '%s' argument",
                           KW_NAMES[slot == 0   ? KW_TYPE
                                    : slot == 1 ? KW_VALUE
                                                : KW_VALUETYPE]);
        seen[slot] = 1;
        CL_TRY(expect(p, TK_EQ, "'='"));
        const token *xt = cur(p);
        expr *e = NULL;
        CL_TRY(parse_expr(p, 0, &e));
        r->arg[r->nargs] = e;
        r->argprop[r->nargs++] = pr;
        if (pr == PROP_TYPE && (e->k == X_INT || e->k == X_BOOL))
            return perr_at(p, xt->line, xt->col, "the claim type must be a string, found %s",
                           xkind_name(e));
        if (at(p, TK_COMMA)) {
            advance(p);
            continue;
        }
        break;
    }
    if (!at(p, TK_RPAREN))
        return expected(p, "',' or ')'");
    if (!seen[0] || !seen[1])
        return perr_at(p, cur(p)->line, cur(p)->col, "%s() needs a '%s' argument", name,
                       seen[0] ? "value" : "type");
    advance(p);
    return CL_OK;
}

static int parse_rule(parser *p, sect_t *s, int sec)
{
    const token *start = cur(p);
    if (p->nrules >= CL_POLICY_MAX_RULES)
        return perr_at(p, start->line, start->col, "too many rules (the limit is %u)",
                       CL_POLICY_MAX_RULES);
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 8;
        rule *nr = cl_realloc(s->rules, nc * sizeof *nr);
        CL_ENSURE(nr != NULL, CL_ENOMEM);
        s->rules = nr;
        s->cap = nc;
    }
    rule *r = &s->rules[s->n++];
    memset(r, 0, sizeof *r);
    r->claim_var = -1;
    p->nrules++;
    p->nvars = 0;
    if (!at(p, TK_ARROW)) {
        for (;;) {
            CL_TRY(parse_cond(p, r));
            if (at(p, TK_ANDAND)) {
                advance(p);
                continue;
            }
            break;
        }
        CL_TRY(expect(p, TK_ARROW, "'&&' or '=>'"));
    } else {
        advance(p);
    }
    r->nvars = p->nvars;
    return parse_action(p, r, sec);
}

static int parse_section(parser *p, int sec)
{
    sect_t *s = &p->pol->sec[sec];
    s->present = 1;
    advance(p); /* the section keyword */
    CL_TRY(expect(p, TK_LBRACE, "'{'"));
    while (!at(p, TK_RBRACE)) {
        CL_TRY(parse_rule(p, s, sec));
        if (at(p, TK_SEMI)) {
            advance(p);
            continue;
        }
        if (!at(p, TK_RBRACE))
            return expected(p, "';' or '}' after a rule");
    }
    advance(p);
    return expect(p, TK_SEMI, "';' after the section");
}

static int parse_policy(parser *p)
{
    if (!at_kw(p, KW_VERSION))
        return expected(p, "'version'");
    advance(p);
    CL_TRY(expect(p, TK_EQ, "'='"));
    const token *v = cur(p);
    if (v->k != TK_DECIMAL)
        return expected(p, "a version number (1.0, 1.1 or 1.2)");
    const char *vt = p->text + v->start;
    if (v->len == 3 && memcmp(vt, "1.0", 3) == 0)
        p->pol->version = 10;
    else if (v->len == 3 && memcmp(vt, "1.1", 3) == 0)
        p->pol->version = 11;
    else if (v->len == 3 && memcmp(vt, "1.2", 3) == 0)
        p->pol->version = 12;
    else
        return perr_at(p, v->line, v->col, "unsupported version %.*s (expected 1.0, 1.1 or 1.2)",
                       (int)(v->len > 20 ? 20 : v->len), vt);
    advance(p);
    CL_TRY(expect(p, TK_SEMI, "';' after the version"));
    if (at_kw(p, KW_CONFIGURATIONRULES)) {
        if (p->pol->version < 11)
            return perr_at(p, cur(p)->line, cur(p)->col,
                           "configurationrules requires version 1.1 or later (the policy "
                           "declares 1.0)");
        CL_TRY(parse_section(p, SEC_CONFIG));
    }
    if (!at_kw(p, KW_AUTHORIZATIONRULES))
        return expected(p, p->pol->sec[SEC_CONFIG].present || p->pol->version < 11
                               ? "'authorizationrules'"
                               : "'configurationrules' or 'authorizationrules'");
    CL_TRY(parse_section(p, SEC_AUTHZ));
    if (!at_kw(p, KW_ISSUANCERULES))
        return expected(p, "'issuancerules'");
    CL_TRY(parse_section(p, SEC_ISSUANCE));
    if (!at(p, TK_EOF))
        return expected(p, "end of input");
    return CL_OK;
}

int cl_policy_parse(const char *text, size_t len, cl_policy **out, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (out == NULL || (text == NULL && len > 0)) {
        if (err)
            snprintf(err, errlen, "invalid argument");
        return CL_EINVAL;
    }
    *out = NULL;
    parser p = {.text = text ? text : "", .len = len, .err = err, .errlen = errlen};
    if (len > CL_POLICY_MAX_TEXT)
        return perr_at(&p, 1, 1, "policy text is %zu bytes, the limit is %u", len,
                       CL_POLICY_MAX_TEXT);
    size_t bad = utf8_check((const unsigned char *)p.text, len);
    if (bad < len) {
        unsigned l, c;
        position(p.text, bad, &l, &c);
        return perr_at(&p, l, c, "invalid UTF-8 (byte 0x%02X)",
                       (unsigned)(unsigned char)p.text[bad]);
    }
    const char *nul = memchr(p.text, '\0', len);
    if (nul != NULL) {
        unsigned l, c;
        position(p.text, (size_t)(nul - p.text), &l, &c);
        return perr_at(&p, l, c, "NUL character in policy text");
    }
    p.pol = cl_calloc(1, sizeof *p.pol);
    CL_ENSURE(p.pol != NULL, CL_ENOMEM);
    int rc = lex(&p);
    if (rc == CL_OK)
        rc = parse_policy(&p);
    for (size_t i = 0; i < p.nt; i++)
        cl_free(p.t[i].str);
    cl_free(p.t);
    if (rc < 0) {
        if (rc == CL_ENOMEM && err)
            snprintf(err, errlen, "out of memory while parsing the policy");
        cl_policy_free(p.pol);
        return rc;
    }
    *out = p.pol;
    return CL_OK;
}

/* ---- values --------------------------------------------------------------------------------- */

typedef struct {
    cl_claim_vtype vt;
    const char *s; /* String: points to own, to the AST, or to a claim's heap string */
    char *own;
    int64_t i;
    int b;
} sv;

typedef enum { V_EMPTY, V_SCALAR, V_SET } vkind_t;

typedef struct {
    vkind_t k;
    sv *v;
    size_t n;
    int ro;
} val;

static void val_free(val *v)
{
    for (size_t i = 0; i < v->n; i++)
        cl_free(v->v[i].own);
    cl_free(v->v);
    memset(v, 0, sizeof *v);
}

static int val_alloc(val *v, vkind_t k, size_t n)
{
    memset(v, 0, sizeof *v);
    v->k = k;
    if (n) {
        v->v = cl_calloc(n, sizeof *v->v);
        CL_ENSURE(v->v != NULL, CL_ENOMEM);
    }
    return CL_OK;
}

static int sv_eq(const sv *a, const sv *b)
{
    if (a->vt != b->vt)
        return 0;
    switch (a->vt) {
    case CL_CV_STRING:
        return strcmp(a->s, b->s) == 0;
    case CL_CV_INTEGER:
        return a->i == b->i;
    default:
        return a->b == b->b;
    }
}

static const char *issuer_name(cl_claim_issuer i)
{
    return i == CL_CI_POLICY   ? "AttestationPolicy"
           : i == CL_CI_CUSTOM ? "CustomClaim"
                               : "AttestationService";
}

static void claim_prop(const cl_claim *c, prop_t pr, sv *out)
{
    memset(out, 0, sizeof *out);
    switch (pr) {
    case PROP_TYPE:
        out->vt = CL_CV_STRING;
        out->s = c->type;
        break;
    case PROP_ISSUER:
        out->vt = CL_CV_STRING;
        out->s = issuer_name(c->issuer);
        break;
    case PROP_VALUETYPE:
        out->vt = CL_CV_STRING;
        out->s = cl_claim_vtype_name(c->vt);
        break;
    case PROP_VALUE:
        out->vt = c->vt;
        out->s = c->s;
        out->i = c->i;
        out->b = c->b;
        break;
    }
}

static const char *val_desc(const val *v)
{
    if (v->k == V_EMPTY)
        return "empty";
    if (v->k == V_SET)
        return "a Set";
    return v->v[0].vt == CL_CV_STRING    ? "a String"
           : v->v[0].vt == CL_CV_INTEGER ? "an Integer"
                                         : "a Boolean";
}

/* ---- evaluation ----------------------------------------------------------------------------- */

typedef struct {
    size_t *idx;
    size_t n;
} binding;

typedef struct {
    const cl_policy *p;
    cl_claimset *in;
    cl_policy_result *res;
    char *err;
    size_t errlen;
    cl_jmes_budget b;
    binding bind[64];
    int permit, deny;
} ectx;

static int eerr(ectx *x, unsigned line, unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int eerr(ectx *x, unsigned line, unsigned col, const char *fmt, ...)
{
    if (x->err && x->errlen) {
        int n = snprintf(x->err, x->errlen, "line %u, column %u: ", line, col);
        if (n >= 0 && (size_t)n < x->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(x->err + n, x->errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return CL_EFORMAT;
}

/* Charges the budget; on exhaustion the message names the rule position. */
static int steps(ectx *x, uint64_t n, unsigned line, unsigned col)
{
    char m[96];
    if (cl_jmes_charge_steps(&x->b, n, m, sizeof m) < 0)
        return eerr(x, line, col, "%s", m);
    return CL_OK;
}
static int bytes(ectx *x, size_t n, unsigned line, unsigned col)
{
    char m[96];
    if (cl_jmes_charge_bytes(&x->b, n, m, sizeof m) < 0)
        return eerr(x, line, col, "%s (%u bytes)", m, CL_POLICY_MAX_WORK_BYTES);
    return CL_OK;
}

static int eval_expr(ectx *x, const expr *e, val *out);

static int need_string(ectx *x, const expr *call, unsigned argi, const val *v)
{
    if (v->k != V_SCALAR || v->v[0].vt != CL_CV_STRING)
        return eerr(x, call->line, call->col, "%s: argument %u must be a String, got %s",
                    FN_NAMES[call->fn], argi, val_desc(v));
    return CL_OK;
}

/* One JSON primitive to a scalar (§5.6 JsonToClaimValue). */
static int json_to_sv(ectx *x, const expr *call, const json_t *j, sv *out)
{
    memset(out, 0, sizeof *out);
    switch (json_typeof(j)) {
    case JSON_INTEGER:
        out->vt = CL_CV_INTEGER;
        out->i = (int64_t)json_integer_value(j);
        return CL_OK;
    case JSON_REAL: {
        double d = json_real_value(j);
        /* an integral real (2.0, 1e3) is an integer; a fraction is an error */
        if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 && (double)(int64_t)d == d) {
            out->vt = CL_CV_INTEGER;
            out->i = (int64_t)d;
            return CL_OK;
        }
        return eerr(x, call->line, call->col,
                    "JsonToClaimValue: the number %.17g is not an integer", d);
    }
    case JSON_TRUE:
    case JSON_FALSE:
        out->vt = CL_CV_BOOLEAN;
        out->b = json_is_true(j);
        return CL_OK;
    case JSON_STRING:
        out->vt = CL_CV_STRING;
        out->own = cl_strndup(json_string_value(j), json_string_length(j));
        CL_ENSURE(out->own != NULL, CL_ENOMEM);
        out->s = out->own;
        return CL_OK;
    default:
        return eerr(x, call->line, call->col, "JsonToClaimValue: %s cannot become a claim value",
                    json_is_object(j) ? "a JSON object" : "a nested JSON array");
    }
}

static int fn_json_to_claim(ectx *x, const expr *e, val *a, val *out)
{
    CL_TRY(need_string(x, e, 1, &a[0]));
    json_t *j = NULL;
    char m[200];
    int rc = cl_jmes_parse_json(a[0].v[0].s, strlen(a[0].v[0].s), &j, &x->b, m, sizeof m);
    if (rc == CL_ENOMEM)
        return rc;
    if (rc < 0)
        return eerr(x, e->line, e->col, "JsonToClaimValue: %s", m);
    if (json_is_null(j)) {
        json_decref(j);
        return val_alloc(out, V_EMPTY, 0);
    }
    if (!json_is_array(j)) {
        rc = val_alloc(out, V_SCALAR, 1);
        if (rc == CL_OK) {
            out->n = 1;
            rc = json_to_sv(x, e, j, &out->v[0]);
        }
    } else {
        size_t n = json_array_size(j), i;
        json_t *el;
        rc = val_alloc(out, V_SET, n);
        if (rc == CL_OK)
            rc = steps(x, n, e->line, e->col);
        json_array_foreach(j, i, el)
        {
            if (rc < 0)
                break;
            if (json_is_null(el))
                continue; /* nulls inside the array are skipped */
            rc = json_to_sv(x, e, el, &out->v[out->n]);
            if (rc == CL_OK)
                out->n++;
        }
    }
    json_decref(j);
    if (rc < 0) {
        val_free(out);
        return rc;
    }
    out->ro = a[0].ro;
    return CL_OK;
}

static int call(ectx *x, const expr *e, val *out)
{
    val a[2];
    memset(a, 0, sizeof a);
    int rc = CL_OK;
    for (unsigned i = 0; i < e->nargs && rc == CL_OK; i++)
        rc = eval_expr(x, e->args[i], &a[i]);
    if (rc < 0)
        goto out;
    switch (e->fn) {
    case F_JMESPATH: {
        rc = need_string(x, e, 1, &a[0]);
        if (rc == CL_OK)
            rc = need_string(x, e, 2, &a[1]);
        if (rc < 0)
            break;
        const char *js = a[0].v[0].s, *q = a[1].v[0].s;
        if (*js == '\0' || *q == '\0') {
            rc = eerr(x, e->line, e->col, "JmesPath: the %s is empty",
                      *js == '\0' ? "JSON document (argument 1)" : "query (argument 2)");
            break;
        }
        char m[256], *res = NULL;
        rc = cl_jmespath_search(js, strlen(js), q, strlen(q), &res, &x->b, m, sizeof m);
        if (rc == CL_ENOMEM)
            break;
        if (rc < 0) {
            rc = eerr(x, e->line, e->col, "JmesPath: %s", m);
            break;
        }
        rc = val_alloc(out, V_SCALAR, 1);
        if (rc < 0) {
            cl_free(res);
            break;
        }
        out->n = 1;
        out->v[0].vt = CL_CV_STRING;
        out->v[0].own = res;
        out->v[0].s = res;
        out->ro = a[0].ro || a[1].ro;
        break;
    }
    case F_JSONTOCLAIMVALUE:
        rc = fn_json_to_claim(x, e, a, out);
        break;
    case F_ISSUBSETOF: {
        uint64_t work = (uint64_t)a[0].n * (a[1].n ? a[1].n : 1);
        rc = steps(x, work, e->line, e->col);
        int all = 1;
        for (size_t i = 0; rc == CL_OK && all && i < a[0].n; i++) {
            int found = 0;
            for (size_t k = 0; !found && k < a[1].n; k++)
                found = sv_eq(&a[0].v[i], &a[1].v[k]);
            all = found;
        }
        if (rc == CL_OK)
            rc = val_alloc(out, V_SCALAR, 1);
        if (rc == CL_OK) {
            out->n = 1;
            out->v[0].vt = CL_CV_BOOLEAN;
            out->v[0].b = all;
        }
        break;
    }
    case F_APPENDSTRING: {
        rc = need_string(x, e, 1, &a[0]);
        if (rc == CL_OK)
            rc = need_string(x, e, 2, &a[1]);
        if (rc < 0)
            break;
        size_t l0 = strlen(a[0].v[0].s), l1 = strlen(a[1].v[0].s);
        rc = bytes(x, l0 + l1, e->line, e->col);
        char *s = rc == CL_OK ? cl_malloc(l0 + l1 + 1) : NULL;
        if (rc == CL_OK && s == NULL)
            rc = CL_ENOMEM;
        if (rc == CL_OK)
            rc = val_alloc(out, V_SCALAR, 1);
        if (rc < 0) {
            cl_free(s);
            break;
        }
        memcpy(s, a[0].v[0].s, l0);
        memcpy(s + l0, a[1].v[0].s, l1 + 1);
        out->n = 1;
        out->v[0].vt = CL_CV_STRING;
        out->v[0].own = s;
        out->v[0].s = s;
        out->ro = a[0].ro || a[1].ro;
        break;
    }
    case F_NEGATEBOOL:
        if (a[0].k != V_SCALAR || a[0].v[0].vt != CL_CV_BOOLEAN) {
            rc = eerr(x, e->line, e->col, "NegateBool: argument 1 must be a Boolean, got %s",
                      val_desc(&a[0]));
            break;
        }
        rc = val_alloc(out, V_SCALAR, 1);
        if (rc == CL_OK) {
            out->n = 1;
            out->v[0].vt = CL_CV_BOOLEAN;
            out->v[0].b = !a[0].v[0].b;
            out->ro = a[0].ro;
        }
        break;
    case F_CONTAINSONLYVALUE: {
        if (a[1].k != V_SCALAR) {
            rc = eerr(x, e->line, e->col,
                      "ContainsOnlyValue: argument 2 must be a single value, got %s",
                      val_desc(&a[1]));
            break;
        }
        rc = steps(x, a[0].n, e->line, e->col);
        int all = a[0].n > 0;
        for (size_t i = 0; rc == CL_OK && all && i < a[0].n; i++)
            all = sv_eq(&a[0].v[i], &a[1].v[0]);
        if (rc == CL_OK)
            rc = val_alloc(out, V_SCALAR, 1);
        if (rc == CL_OK) {
            out->n = 1;
            out->v[0].vt = CL_CV_BOOLEAN;
            out->v[0].b = all;
        }
        break;
    }
    }
out:
    val_free(&a[0]);
    val_free(&a[1]);
    return rc;
}

static int eval_expr(ectx *x, const expr *e, val *out)
{
    memset(out, 0, sizeof *out);
    CL_TRY(steps(x, 1, e->line, e->col));
    switch (e->k) {
    case X_STR:
    case X_INT:
    case X_BOOL:
        CL_TRY(val_alloc(out, V_SCALAR, 1));
        out->n = 1;
        out->v[0].vt = e->k == X_STR ? CL_CV_STRING : e->k == X_INT ? CL_CV_INTEGER : CL_CV_BOOLEAN;
        out->v[0].s = e->s;
        out->v[0].i = e->i;
        out->v[0].b = e->b;
        return CL_OK;
    case X_REF: {
        const binding *bd = &x->bind[e->var];
        CL_TRY(steps(x, bd->n, e->line, e->col));
        /* each reference copies the bound claims' values: intermediate data (a condition with a
         * thousand references to a binding of 4,096 claims held 190 MB before this counted) */
        CL_TRY(bytes(x, bd->n * sizeof(sv), e->line, e->col));
        CL_TRY(val_alloc(out, bd->n == 1 ? V_SCALAR : V_SET, bd->n));
        for (size_t i = 0; i < bd->n; i++) {
            const cl_claim *c = &x->in->v[bd->idx[i]];
            claim_prop(c, e->prop, &out->v[i]);
            if (e->prop == PROP_VALUE && c->readonly)
                out->ro = 1;
        }
        out->n = bd->n;
        return CL_OK;
    }
    case X_CALL:
        return call(x, e, out);
    }
    return CL_EINVAL;
}

static int compare(const sv *l, cmpop_t op, const sv *r)
{
    switch (op) {
    case OP_EQ:
        return sv_eq(l, r);
    case OP_NE:
        return !sv_eq(l, r);
    default:
        if (l->vt != CL_CV_INTEGER || r->vt != CL_CV_INTEGER)
            return 0; /* ordering is defined on Integers only (§5.3) */
        return op == OP_LT   ? l->i < r->i
               : op == OP_LE ? l->i <= r->i
               : op == OP_GT ? l->i > r->i
                             : l->i >= r->i;
    }
}

/* Evaluates one condition; *truth receives its value, and its binding (if any) is filled. */
static int eval_cond(ectx *x, const cond *c, int *truth)
{
    int rc = CL_OK;
    val *rhs = c->ntests ? cl_calloc(c->ntests, sizeof *rhs) : NULL;
    if (c->ntests && rhs == NULL)
        return CL_ENOMEM;
    for (size_t i = 0; rc == CL_OK && i < c->ntests; i++)
        rc = eval_expr(x, c->tests[i].rhs, &rhs[i]);
    size_t n = x->in->n, found = 0;
    size_t *idx = NULL;
    if (rc == CL_OK)
        rc = steps(x, n ? n : 1, c->line, c->col);
    if (rc == CL_OK && c->var >= 0 && n > 0) {
        idx = cl_malloc(n * sizeof *idx);
        if (idx == NULL)
            rc = CL_ENOMEM;
    }
    for (size_t k = 0; rc == CL_OK && k < n; k++) {
        const cl_claim *cl = &x->in->v[k];
        int match = 1;
        uint64_t cmps = 0; /* comparisons made for this claim: work beyond the one charged above */
        for (size_t i = 0; match && i < c->ntests; i++) {
            const ptest *t = &c->tests[i];
            sv lhs;
            claim_prop(cl, t->prop, &lhs);
            int any = 0;
            size_t j = 0;
            for (; !any && j < rhs[i].n; j++)
                any = compare(&lhs, t->op, &rhs[i].v[j]);
            cmps += j;
            match = any;
        }
        /* charged claim by claim, so the work limit and the CPU deadline are checked while a
         * condition runs (every claim against every test's values: minutes of CPU before) */
        if (cmps > 1 && (rc = steps(x, cmps - 1, c->line, c->col)) < 0)
            break;
        if (!match)
            continue;
        if (idx == NULL) {
            found = 1;
            break; /* no binding needed: one match decides */
        }
        idx[found++] = k;
    }
    for (size_t i = 0; i < c->ntests; i++)
        val_free(&rhs[i]);
    cl_free(rhs);
    if (rc < 0) {
        cl_free(idx);
        return rc;
    }
    *truth = c->neg ? found == 0 : found > 0;
    if (c->var >= 0 && found > 0) {
        /* a binding is held to the rule's end (64 per rule): intermediate data, at its size */
        if ((rc = bytes(x, found * sizeof *idx, c->line, c->col)) < 0) {
            cl_free(idx);
            return rc;
        }
        if (found < n) {
            size_t *fit = cl_realloc(idx, found * sizeof *idx);
            if (fit != NULL)
                idx = fit;
        }
        x->bind[c->var].idx = idx;
        x->bind[c->var].n = found;
    } else {
        cl_free(idx);
    }
    return CL_OK;
}

static int check_property(ectx *x, const rule *r, const char *type, const sv *v)
{
    if (strcmp(type, "report_validity_in_minutes") == 0) {
        if (v->vt != CL_CV_INTEGER || v->i < 1 || v->i > 525600)
            return eerr(x, r->line, r->col,
                        "issueproperty: report_validity_in_minutes must be an Integer from 1 to "
                        "525600");
    } else if (strcmp(type, "omit_x5c") == 0 || strcmp(type, "require_valid_aik_cert") == 0) {
        if (v->vt != CL_CV_BOOLEAN)
            return eerr(x, r->line, r->col, "issueproperty: %s must be a Boolean", type);
    } else if (strcmp(type, "required_pcr_mask") == 0) {
        if (v->vt != CL_CV_INTEGER || v->i < 0 || v->i > 0xFFFFFF)
            return eerr(x, r->line, r->col,
                        "issueproperty: required_pcr_mask must be an Integer from 0 to 0xFFFFFF");
    }
    return CL_OK;
}

static int add_sv(cl_claimset *cs, const char *type, const sv *v, int ro)
{
    switch (v->vt) {
    case CL_CV_STRING:
        return cl_claimset_add_string(cs, type, v->s, CL_CI_POLICY, ro);
    case CL_CV_INTEGER:
        CL_TRY(cl_claimset_add_int(cs, type, v->i, CL_CI_POLICY));
        break;
    default:
        CL_TRY(cl_claimset_add_bool(cs, type, v->b, CL_CI_POLICY));
        break;
    }
    cs->v[cs->n - 1].readonly = ro;
    return CL_OK;
}

static const char *ACT_NAMES[] = {"permit", "deny", "add", "issue", "issueproperty"};

static int room(ectx *x, const rule *r, size_t k)
{
    if (x->in->n + k > CL_POLICY_MAX_CLAIMS)
        return eerr(x, r->line, r->col, "%s: the incoming claim set would exceed %u claims",
                    ACT_NAMES[r->act], CL_POLICY_MAX_CLAIMS);
    return CL_OK;
}

static cl_claimset *second_set(ectx *x, act_t a)
{
    return a == A_ISSUE ? &x->res->outgoing : a == A_ISSUEPROPERTY ? &x->res->property : NULL;
}

static int run_action(ectx *x, const rule *r)
{
    int rc = CL_OK;
    if (r->act == A_PERMIT) {
        x->permit = 1;
        return CL_OK;
    }
    if (r->act == A_DENY) {
        x->deny = 1;
        return CL_OK;
    }
    cl_claimset *extra = second_set(x, r->act);
    if (r->claim_var >= 0) {
        const binding *bd = &x->bind[r->claim_var];
        CL_TRY(room(x, r, bd->n));
        for (size_t i = 0; i < bd->n; i++) {
            /* copy the struct: adding may move the array the claim lives in */
            cl_claim c = x->in->v[bd->idx[i]];
            if (c.readonly && extra != NULL)
                return eerr(x, r->line, r->col, "%s: claim '%s' is read-only and cannot be issued",
                            ACT_NAMES[r->act], c.type);
            if (r->act == A_ISSUEPROPERTY) {
                sv v;
                claim_prop(&c, PROP_VALUE, &v);
                CL_TRY(check_property(x, r, c.type, &v));
            }
            CL_TRY(bytes(x, strlen(c.type) + (c.s ? strlen(c.s) : 0), r->line, r->col));
            CL_TRY(cl_claimset_add_copy(x->in, &c));
            if (extra)
                CL_TRY(cl_claimset_add_copy(extra, &c));
        }
        return CL_OK;
    }
    val v[3];
    memset(v, 0, sizeof v);
    const val *tv = NULL, *vv = NULL, *vtv = NULL;
    for (unsigned i = 0; rc == CL_OK && i < r->nargs; i++) {
        rc = eval_expr(x, r->arg[i], &v[i]);
        if (rc == CL_OK) {
            if (r->argprop[i] == PROP_TYPE)
                tv = &v[i];
            else if (r->argprop[i] == PROP_VALUE)
                vv = &v[i];
            else
                vtv = &v[i];
        }
    }
    if (rc < 0)
        goto out;
    /* A value computed by a function from read-only data may be issued (Microsoft's TPM samples,
     * e.g. example E6, issue JsonToClaimValue(JmesPath(events, ...))); what may not be issued is a
     * read-only claim's own value (c.value / claim=c). Claims added from such results stay
     * read-only in the incoming set (§5.6, conformance T48). docs/policy-language.md. */
    int value_computed = 0;
    for (unsigned i = 0; i < r->nargs; i++)
        if (r->argprop[i] == PROP_VALUE && r->arg[i]->k == X_CALL)
            value_computed = 1;
    const char *an = ACT_NAMES[r->act];
    if (tv->k != V_SCALAR || tv->v[0].vt != CL_CV_STRING) {
        rc = eerr(x, r->line, r->col, "%s: the claim type must be a String, got %s", an,
                  val_desc(tv));
        goto out;
    }
    const char *type = tv->v[0].s;
    if (vtv != NULL && (vtv->k != V_SCALAR || vtv->v[0].vt != CL_CV_STRING)) {
        rc = eerr(x, r->line, r->col, "%s: valueType must be a String, got %s", an, val_desc(vtv));
        goto out;
    }
    if (vv->n > 0 && vv->ro && extra != NULL && !value_computed) {
        rc = eerr(x, r->line, r->col,
                  "%s: the value of '%s' is derived from a read-only claim and cannot be issued",
                  an, type);
        goto out;
    }
    size_t need = 0;
    for (size_t i = 0; i < vv->n; i++) {
        const sv *s = &vv->v[i];
        if (vtv != NULL && strcmp(vtv->v[0].s, cl_claim_vtype_name(s->vt)) != 0) {
            rc = eerr(x, r->line, r->col, "%s: valueType \"%s\" does not match the value's type %s",
                      an, vtv->v[0].s, cl_claim_vtype_name(s->vt));
            goto out;
        }
        if (r->act == A_ISSUEPROPERTY) {
            rc = check_property(x, r, type, s);
            if (rc < 0)
                goto out;
        }
        need += strlen(type) + (s->vt == CL_CV_STRING ? strlen(s->s) : 0);
    }
    rc = room(x, r, vv->n);
    if (rc == CL_OK)
        rc = bytes(x, need, r->line, r->col);
    for (size_t i = 0; rc == CL_OK && i < vv->n; i++) {
        rc = add_sv(x->in, type, &vv->v[i], vv->ro);
        if (rc == CL_OK && extra != NULL)
            rc = add_sv(extra, type, &vv->v[i], 0);
    }
out:
    for (int i = 0; i < 3; i++)
        val_free(&v[i]);
    return rc;
}

static void clear_bindings(ectx *x, unsigned nvars)
{
    for (unsigned i = 0; i < nvars; i++) {
        cl_free(x->bind[i].idx);
        x->bind[i].idx = NULL;
        x->bind[i].n = 0;
    }
}

static int run_rule(ectx *x, const rule *r)
{
    int truth = 1, rc = CL_OK;
    for (size_t i = 0; rc == CL_OK && truth && i < r->nconds; i++)
        rc = eval_cond(x, &r->conds[i], &truth);
    if (rc == CL_OK && truth)
        rc = run_action(x, r);
    clear_bindings(x, r->nvars);
    return rc;
}

static int run_section(ectx *x, int sec)
{
    const sect_t *s = &x->p->sec[sec];
    for (size_t i = 0; i < s->n; i++) {
        CL_TRY(run_rule(x, &s->rules[i]));
        if (sec == SEC_AUTHZ && x->deny)
            break;
    }
    return CL_OK;
}

static void ectx_init(ectx *x, const cl_policy *p, cl_claimset *in, cl_policy_result *res,
                      char *err, size_t errlen)
{
    memset(x, 0, sizeof *x);
    x->p = p;
    x->in = in;
    x->res = res;
    x->err = err;
    x->errlen = errlen;
    cl_jmes_budget_init(&x->b, CL_POLICY_MAX_STEPS, CL_POLICY_MAX_WORK_BYTES, CL_POLICY_MAX_CPU_MS);
}

static int finish(ectx *x, int rc)
{
    if (rc == CL_ENOMEM && x->err)
        snprintf(x->err, x->errlen, "out of memory while evaluating the policy");
    return rc;
}

int cl_policy_evaluate(const cl_policy *p, cl_claimset *incoming, cl_policy_result *res, char *err,
                       size_t errlen)
{
    if (res != NULL) {
        cl_claimset_init(&res->outgoing);
        cl_claimset_init(&res->property);
    }
    if (err && errlen)
        err[0] = '\0';
    if (p == NULL || incoming == NULL || res == NULL) {
        if (err)
            snprintf(err, errlen, "invalid argument");
        return CL_EINVAL;
    }
    ectx x;
    ectx_init(&x, p, incoming, res, err, errlen);
    int rc = run_section(&x, SEC_CONFIG);
    if (rc == CL_OK)
        rc = run_section(&x, SEC_AUTHZ);
    if (rc < 0)
        return finish(&x, rc);
    if (x.deny || !x.permit) {
        if (err)
            snprintf(err, errlen, "%s",
                     x.deny ? "A Deny claim was issued, authorization failed."
                            : "No permit claim was issued.");
        return CL_EDENIED;
    }
    return finish(&x, run_section(&x, SEC_ISSUANCE));
}

int cl_policy_configure(const cl_policy *p, const cl_claimset *incoming, cl_policy_result *res,
                        char *err, size_t errlen)
{
    if (res != NULL) {
        cl_claimset_init(&res->outgoing);
        cl_claimset_init(&res->property);
    }
    if (err && errlen)
        err[0] = '\0';
    if (p == NULL || incoming == NULL || res == NULL) {
        if (err)
            snprintf(err, errlen, "invalid argument");
        return CL_EINVAL;
    }
    cl_claimset copy;
    cl_claimset_init(&copy);
    int rc = CL_OK;
    for (size_t i = 0; rc == CL_OK && i < incoming->n; i++)
        rc = cl_claimset_add_copy(&copy, &incoming->v[i]);
    ectx x;
    ectx_init(&x, p, &copy, res, err, errlen);
    if (rc == CL_OK)
        rc = run_section(&x, SEC_CONFIG);
    cl_claimset_free(&copy);
    return finish(&x, rc);
}

void cl_policy_result_free(cl_policy_result *r)
{
    if (r == NULL)
        return;
    cl_claimset_free(&r->outgoing);
    cl_claimset_free(&r->property);
}

const cl_claim *cl_policy_property(const cl_policy_result *r, const char *name)
{
    if (r == NULL || name == NULL)
        return NULL;
    for (size_t i = r->property.n; i-- > 0;)
        if (strcmp(r->property.v[i].type, name) == 0)
            return &r->property.v[i];
    return NULL;
}

void cl_policy_settings_get(const cl_policy_result *r, cl_policy_settings *out)
{
    out->report_validity_in_minutes = 480;
    out->omit_x5c = 0;
    out->require_valid_aik_cert = 1;
    out->required_pcr_mask = 0xFFFFFF;
    const cl_claim *c;
    if ((c = cl_policy_property(r, "report_validity_in_minutes")) && c->vt == CL_CV_INTEGER)
        out->report_validity_in_minutes = c->i;
    if ((c = cl_policy_property(r, "omit_x5c")) && c->vt == CL_CV_BOOLEAN)
        out->omit_x5c = c->b;
    if ((c = cl_policy_property(r, "require_valid_aik_cert")) && c->vt == CL_CV_BOOLEAN)
        out->require_valid_aik_cert = c->b;
    if ((c = cl_policy_property(r, "required_pcr_mask")) && c->vt == CL_CV_INTEGER)
        out->required_pcr_mask = c->i;
}
