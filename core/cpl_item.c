/*
 * The policy compiler's vocabulary: the tables of conditions and properties
 * (with the layers CPL allows each in), and the conversion of their values:
 * hosts normalised and sorted for binary search, CIDRs parsed, ports and
 * ranges checked, categories resolved to ids, condition=NAME recorded for
 * resolution once every define is known. Called by cpl_parse.c per item.
 */
#include "core/cpl_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum cpl_vtype {
    CPL_V_NET = 0, /* address or CIDR */
    CPL_V_PORT,    /* N or N..M */
    CPL_V_PROTO,   /* client.protocol values */
    CPL_V_TOKEN,   /* an HTTP-style token, case-insensitive */
    CPL_V_HOST,    /* a host name or IP literal */
    CPL_V_DOMAIN,  /* a domain: the name and all below it */
    CPL_V_STR,     /* any text, exact */
    CPL_V_STR_CI,  /* any non-empty text, case-insensitive */
    CPL_V_CAT,     /* a category name */
    CPL_V_COND,    /* a define condition name */
};

#define CPL_LM_ALL 0x1fu
#define CPL_LM_CERT (CPL_LM(CPL_L_SSL_INTERCEPT) | CPL_LM(CPL_L_SSL) | CPL_LM(CPL_L_EXCEPTION))

/* Conditions, with the layers where their data can exist. */
static const struct cpl_cond_def {
    const char *name;
    uint8_t field, vtype, layers;
} cpl_cond_defs[] = {
    {"client.address", CPL_F_CLIENT_ADDR, CPL_V_NET, CPL_LM_ALL},
    {"proxy.port", CPL_F_PROXY_PORT, CPL_V_PORT, CPL_LM_ALL},
    {"client.protocol", CPL_F_CLIENT_PROTO, CPL_V_PROTO, CPL_LM_ALL},
    {"http.method", CPL_F_METHOD, CPL_V_TOKEN, CPL_LM_ALL},
    {"url.scheme", CPL_F_URL_SCHEME, CPL_V_TOKEN, CPL_LM_ALL},
    {"url.host", CPL_F_URL_HOST, CPL_V_HOST, CPL_LM_ALL},
    {"url.domain", CPL_F_URL_DOMAIN, CPL_V_DOMAIN, CPL_LM_ALL},
    {"url.port", CPL_F_URL_PORT, CPL_V_PORT, CPL_LM_ALL},
    {"url.path", CPL_F_URL_PATH, CPL_V_STR_CI, CPL_LM_ALL},
    {"url.substring", CPL_F_URL_SUBSTRING, CPL_V_STR_CI, CPL_LM_ALL},
    {"url.address", CPL_F_URL_ADDR, CPL_V_NET, CPL_LM_ALL},
    {"server_url.host", CPL_F_SRV_HOST, CPL_V_HOST, CPL_LM_ALL},
    {"server.certificate.hostname", CPL_F_CERT_HOST, CPL_V_HOST, CPL_LM_CERT},
    {"server.certificate.hostname.category", CPL_F_CERT_CAT, CPL_V_CAT, CPL_LM_CERT},
    {"user", CPL_F_USER, CPL_V_STR_CI, CPL_LM_ALL},
    {"exception.id", CPL_F_EXCEPTION_ID, CPL_V_TOKEN, CPL_LM(CPL_L_EXCEPTION)},
    {"condition", CPL_F_CONDITION, CPL_V_COND, CPL_LM_ALL},
};
#define CPL_HEADER_PREFIX "request.header."

enum cpl_atype {
    CPL_A_NONE = 0, /* bare: allow */
    CPL_A_OPT_TEXT, /* deny or deny("text") */
    CPL_A_NAME,     /* a realm or keyring name */
    CPL_A_HOST,     /* a host name */
    CPL_A_TEXT,     /* free text */
    CPL_A_HTTPS_NO,
    CPL_A_YES_NO,
    CPL_A_SSL_NO,
    CPL_A_IGNORE, /* all | none | a list of error names */
    CPL_A_FORWARD, /* a forwarding host name, or no */
    CPL_A_INSPECT  /* both | edge | core */
};

#define CPL_LM_ACCESS (CPL_LM(CPL_L_PROXY) | CPL_LM(CPL_L_SSL) | CPL_LM(CPL_L_EXCEPTION))

/* Properties, with the only layers where CPL lets them be set. */
static const struct cpl_prop_def {
    const char *name;
    uint8_t atype, layers;
    uint16_t bit;
    uint8_t ign; /* CPL_IGN_* for the validate.ignore.* forms */
} cpl_prop_defs[] = {
    {"allow", CPL_A_NONE, CPL_LM_ACCESS, CPL_P_ALLOW, 0},
    {"deny", CPL_A_OPT_TEXT, CPL_LM_ACCESS, CPL_P_ALLOW, 0},
    {"deny.unauthorized", CPL_A_NONE, CPL_LM(CPL_L_PROXY) | CPL_LM(CPL_L_EXCEPTION), CPL_P_ALLOW,
     0},
    {"authenticate", CPL_A_NAME, CPL_LM(CPL_L_PROXY) | CPL_LM(CPL_L_EXCEPTION), CPL_P_AUTH, 0},
    {"ssl.forward_proxy", CPL_A_HTTPS_NO, CPL_LM(CPL_L_SSL_INTERCEPT), CPL_P_INTERCEPT, 0},
    {"ssl.forward_proxy.issuer_keyring", CPL_A_NAME, CPL_LM(CPL_L_SSL_INTERCEPT), CPL_P_KEYRING, 0},
    {"ssl.forward_proxy.hostname", CPL_A_HOST, CPL_LM(CPL_L_SSL_INTERCEPT), CPL_P_EMU_HOST, 0},
    {"ssl.forward_proxy.splash_text", CPL_A_TEXT, CPL_LM(CPL_L_SSL_INTERCEPT), CPL_P_SPLASH_TEXT,
     0},
    {"ssl.forward_proxy.splash_url", CPL_A_TEXT, CPL_LM(CPL_L_SSL_INTERCEPT), CPL_P_SPLASH_URL, 0},
    {"server.certificate.validate", CPL_A_YES_NO, CPL_LM(CPL_L_SSL), CPL_P_VALIDATE, 0},
    {"server.certificate.validate.ignore", CPL_A_IGNORE, CPL_LM(CPL_L_SSL), CPL_P_IGNORE,
     CPL_IGN_ALL},
    {"server.certificate.validate.ignore.untrusted_issuer", CPL_A_YES_NO, CPL_LM(CPL_L_SSL),
     CPL_P_IGNORE, CPL_IGN_UNTRUSTED},
    {"server.certificate.validate.ignore.expiration", CPL_A_YES_NO, CPL_LM(CPL_L_SSL), CPL_P_IGNORE,
     CPL_IGN_EXPIRATION},
    {"server.certificate.validate.ignore.hostname_mismatch", CPL_A_YES_NO, CPL_LM(CPL_L_SSL),
     CPL_P_IGNORE, CPL_IGN_HOSTNAME},
    {"server.certificate.validate.ignore.revocation", CPL_A_YES_NO, CPL_LM(CPL_L_SSL), CPL_P_IGNORE,
     CPL_IGN_REVOCATION},
    {"force_protocol", CPL_A_SSL_NO, CPL_LM(CPL_L_PROXY) | CPL_LM(CPL_L_SSL_INTERCEPT), CPL_P_FORCE,
     0},
    {"forward", CPL_A_FORWARD, CPL_LM(CPL_L_FORWARD), CPL_P_FORWARD, 0},
    {"tier.inspect", CPL_A_INSPECT, CPL_LM(CPL_L_FORWARD), CPL_P_INSPECT, 0},
};

static const char *const cpl_ign_names[] = {"untrusted_issuer", "expiration", "hostname_mismatch",
                                            "revocation"};

#define CPL_MAX_ARGS 8
#define CPL_MAX_TEXT_ARG 1024

/* --- values ---------------------------------------------------------------- */

static int
cpl_parse_net(struct cpl_cc *cc, const struct cpl_tok *t, struct cpl_net *n)
{
    char buf[64], shown[CPL_ERR_SHOW + 8];
    const char *s = t->p;
    size_t len = t->len;
    if (len >= sizeof(buf))
        goto bad;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *slash = strchr(buf, '/');
    long prefix = -1;
    if (slash != NULL) {
        *slash = '\0';
        const char *d = slash + 1;
        if (*d == '\0' || strlen(d) > 3)
            goto bad;
        prefix = 0;
        for (; *d != '\0'; d++) {
            if (*d < '0' || *d > '9')
                goto bad;
            prefix = prefix * 10 + (*d - '0');
        }
    }
    char *a = buf;
    size_t alen = strlen(a);
    if (alen >= 2 && a[0] == '[' && a[alen - 1] == ']') {
        a[alen - 1] = '\0';
        a++;
    }
    memset(n, 0, sizeof(*n));
    if (inet_pton(AF_INET, a, n->addr) == 1) {
        n->family = 4;
        if (prefix > 32)
            goto bad;
        n->prefix = (uint8_t)(prefix < 0 ? 32 : prefix);
    } else if (inet_pton(AF_INET6, a, n->addr) == 1) {
        n->family = 6;
        if (prefix > 128)
            goto bad;
        n->prefix = (uint8_t)(prefix < 0 ? 128 : prefix);
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (n->prefix >= 96 && memcmp(n->addr, mapped, 12) == 0) {
            /* ::ffff:a.b.c.d/N is the IPv4 network a.b.c.d/(N-96). */
            memmove(n->addr, n->addr + 12, 4);
            memset(n->addr + 4, 0, 12);
            n->family = 4;
            n->prefix -= 96;
        }
    } else {
        goto bad;
    }
    /* Host bits past the prefix are cleared, so 10.1.2.3/8 means 10.0.0.0/8. */
    for (unsigned bit = n->prefix; bit < 128; bit++)
        n->addr[bit / 8] &= (uint8_t) ~(0x80u >> (bit % 8));
    return CAT_OK;
bad:
    return cpl_lex_err(&cc->lx, t->line, t->col,
                       "bad address '%s': expected an IPv4 or IPv6 address with an optional "
                       "/prefix",
                       cpl_show(shown, sizeof(shown), s, len));
}

static bool
cpl_parse_u16(const char *s, size_t len, uint16_t *out)
{
    unsigned long v = 0;
    if (len == 0 || len > 5)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v < 1 || v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

static bool
cpl_is_token(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("!#$%&'*+.^_`|~-", c) != NULL) ||
            c == '\0')
            return false;
    }
    return true;
}

/* Converts one value token of condition d and appends it to p->vals. */
static int
cpl_value(struct cpl_cc *cc, const struct cpl_cond_def *d, const struct cpl_tok *t)
{
    struct cpl *p = cc->p;
    struct cpl_lex *lx = &cc->lx;
    char shown[CPL_ERR_SHOW + 8], norm[CPL_HOST_MAX + 1];
    union cpl_val v;
    memset(&v, 0, sizeof(v));
    const char *s = t->p;
    size_t len = t->len;
    switch ((enum cpl_vtype)d->vtype) {
    case CPL_V_NET:
        if (CPL_PUSH(p, nets) != CAT_OK)
            return cpl_oom(cc);
        if (cpl_parse_net(cc, t, &p->nets[p->n_nets]) != CAT_OK)
            return CAT_ERR;
        v.id = (uint32_t)p->n_nets++;
        break;
    case CPL_V_PORT: {
        const char *dots = memmem(s, len, "..", 2);
        bool ok;
        if (dots != NULL) {
            size_t l1 = (size_t)(dots - s);
            ok = cpl_parse_u16(s, l1, &v.port.lo) &&
                 cpl_parse_u16(dots + 2, len - l1 - 2, &v.port.hi) && v.port.lo <= v.port.hi;
        } else {
            ok = cpl_parse_u16(s, len, &v.port.lo);
            v.port.hi = v.port.lo;
        }
        if (!ok)
            return cpl_lex_err(lx, t->line, t->col,
                               "bad port '%s': expected a number 1-65535 or a range such as "
                               "8000..8080",
                               cpl_show(shown, sizeof(shown), s, len));
        break;
    }
    case CPL_V_PROTO: {
        static const char *const protos[] = {"http", "https", "ssl", "tcp", "socks"};
        bool ok = false;
        for (size_t i = 0; i < CAT_ARRAY_LEN(protos) && !ok; i++)
            ok = cpl_tok_is(t, protos[i]);
        if (!ok)
            return cpl_lex_err(lx, t->line, t->col,
                               "unknown protocol '%s': expected http, https, ssl, tcp or socks",
                               cpl_show(shown, sizeof(shown), s, len));
        if (cpl_intern(cc, s, len, true, &v.s) != CAT_OK)
            return CAT_ERR;
        break;
    }
    case CPL_V_TOKEN:
        if (!cpl_is_token(s, len))
            return cpl_lex_err(lx, t->line, t->col,
                               "bad value '%s': expected a token (letters, digits and "
                               "!#$%%&'*+.^_`|~-)",
                               cpl_show(shown, sizeof(shown), s, len));
        if (cpl_intern(cc, s, len, true, &v.s) != CAT_OK)
            return CAT_ERR;
        break;
    case CPL_V_HOST:
    case CPL_V_DOMAIN: {
        if (d->vtype == CPL_V_DOMAIN && len > 1 && s[0] == '.') {
            s++;
            len--;
        }
        int n = cpl_host_norm(s, len, norm);
        if (n <= 0 || !cpl_host_valid(norm, (size_t)n))
            return cpl_lex_err(lx, t->line, t->col,
                               "bad host name '%s': expected a name such as www.example.com "
                               "or an IP address",
                               cpl_show(shown, sizeof(shown), t->p, t->len));
        if (cpl_intern(cc, norm, (size_t)n, false, &v.s) != CAT_OK)
            return CAT_ERR;
        break;
    }
    case CPL_V_STR:
    case CPL_V_STR_CI:
        if (len == 0 && d->vtype == CPL_V_STR_CI)
            return cpl_lex_err(lx, t->line, t->col, "empty value: expected some text");
        if (cpl_intern(cc, s, len, d->vtype == CPL_V_STR_CI, &v.s) != CAT_OK)
            return CAT_ERR;
        break;
    case CPL_V_CAT: {
        int id = cpl_cats_id(p->cats, s, len);
        if (id < 0)
            return cpl_lex_err(lx, t->line, t->col, "unknown category '%s': %s",
                               cpl_show(shown, sizeof(shown), s, len),
                               p->cats == NULL
                                   ? "no categories file was given (only 'none' exists)"
                                   : "expected a [category] of the categories file or 'none'");
        v.id = (uint32_t)id;
        break;
    }
    case CPL_V_COND:
        if (!cpl_is_name(s, len))
            return cpl_lex_err(lx, t->line, t->col,
                               "bad condition name '%s': expected letters, digits, '_', '.', '-'",
                               cpl_show(shown, sizeof(shown), s, len));
        if (cpl_intern(cc, s, len, true, &v.s) != CAT_OK || CPL_PUSH(cc, refs) != CAT_OK)
            return cpl_oom(cc);
        cc->refs[cc->n_refs++] = (struct cpl_ref){(uint32_t)p->n_vals, t->line, t->col};
        break;
    }
    if (CPL_PUSH(p, vals) != CAT_OK)
        return cpl_oom(cc);
    p->vals[p->n_vals++] = v;
    return CAT_OK;
}

static int
cpl_host_cmp(const void *a, const void *b, void *arg)
{
    const struct cpl_str *x = a, *y = b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp((const char *)arg + x->off, (const char *)arg + y->off, x->len);
}

/* NAME=[!]VALUE, NAME=[!](V, ...), NAME=[!]V,V: the lexer is just past '='. */
int
cpl_condition(struct cpl_cc *cc, const struct cpl_tok *nt, enum cpl_in in, unsigned lmask)
{
    struct cpl *p = cc->p;
    struct cpl_lex *lx = &cc->lx;
    char shown[CPL_ERR_SHOW + 8];
    const struct cpl_cond_def *d = NULL;
    static const struct cpl_cond_def hdr_def = {"request.header.", CPL_F_HEADER, CPL_V_STR,
                                                CPL_LM_ALL};
    for (size_t i = 0; i < CAT_ARRAY_LEN(cpl_cond_defs) && d == NULL; i++)
        if (cpl_tok_is(nt, cpl_cond_defs[i].name))
            d = &cpl_cond_defs[i];
    struct cpl_str hdr = {0, 0};
    size_t plen = strlen(CPL_HEADER_PREFIX);
    /* The name token's characters ([A-Za-z0-9_.-]) are all valid in a header name. */
    if (d == NULL && nt->len > plen && strncasecmp(nt->p, CPL_HEADER_PREFIX, plen) == 0) {
        d = &hdr_def;
        if (cpl_intern(cc, nt->p + plen, nt->len - plen, true, &hdr) != CAT_OK)
            return CAT_ERR;
    }
    cpl_show(shown, sizeof(shown), nt->p, nt->len);
    if (d == NULL) {
        for (size_t i = 0; i < CAT_ARRAY_LEN(cpl_prop_defs); i++)
            if (cpl_tok_is(nt, cpl_prop_defs[i].name))
                return cpl_lex_err(lx, nt->line, nt->col,
                                   "'%s' is a property, not a condition: expected %s(VALUE)", shown,
                                   shown);
        return cpl_lex_err(lx, nt->line, nt->col, "unknown condition '%s'", shown);
    }
    if (in != CPL_IN_DEFINE && (d->layers & lmask) == 0) {
        char where[64] = "";
        for (unsigned k = 0; k < CPL_L_COUNT; k++)
            if (d->layers & CPL_LM(k))
                snprintf(where + strlen(where), sizeof(where) - strlen(where), "%s<%s>",
                         where[0] ? " " : "", cpl_layer_names[k]);
        return cpl_lex_err(lx, nt->line, nt->col,
                           "condition '%s' is not allowed in a <%s> layer (its data is not known "
                           "there): expected it in %s",
                           shown, cpl_layer_names[__builtin_ctz(lmask)], where);
    }
    if (CPL_PUSH(p, atoms) != CAT_OK)
        return cpl_oom(cc);
    struct cpl_atom a = {.field = d->field, .hdr = hdr, .val0 = (uint32_t)p->n_vals};
    a.ci = d->vtype != CPL_V_STR;
    lx->p++; /* '=' */
    if (cpl_lex_peek(lx) == '!') {
        a.neg = true;
        lx->p++;
    }
    struct cpl_tok vt;
    if (cpl_lex_peek(lx) == '(') {
        lx->p++;
        for (;;) {
            if (cpl_lex_skip(lx) != CAT_OK)
                return CAT_ERR;
            if (cpl_lex_peek(lx) == ')' && a.n == 0)
                return cpl_lex_err_here(lx, "empty value list: expected at least one value");
            if (cpl_lex_value(lx, &vt) != CAT_OK || cpl_value(cc, d, &vt) != CAT_OK)
                return CAT_ERR;
            if (++a.n > CPL_MAX_VALUES)
                return cpl_lex_err(lx, vt.line, vt.col,
                                   "too many values for one condition (at most %u)",
                                   CPL_MAX_VALUES);
            if (cpl_lex_skip(lx) != CAT_OK)
                return CAT_ERR;
            char c = cpl_lex_peek(lx);
            if (c == ')') {
                lx->p++;
                break;
            }
            if (c != ',')
                return cpl_lex_err_here(lx, "expected ',' or ')' in the value list of '%s'", shown);
            lx->p++;
        }
    } else {
        for (;;) {
            if (cpl_lex_value(lx, &vt) != CAT_OK || cpl_value(cc, d, &vt) != CAT_OK)
                return CAT_ERR;
            if (++a.n > CPL_MAX_VALUES)
                return cpl_lex_err(lx, vt.line, vt.col,
                                   "too many values for one condition (at most %u)",
                                   CPL_MAX_VALUES);
            if (cpl_lex_peek(lx) != ',')
                break;
            lx->p++;
        }
    }
    if (!cpl_word_end(lx)) {
        char c[8];
        return cpl_lex_err_here(lx, "unexpected '%s' after the value of '%s': expected a blank",
                                cpl_show(c, sizeof(c), lx->p, 1), shown);
    }
    if (d->vtype == CPL_V_HOST || d->vtype == CPL_V_DOMAIN) {
        /* Sorted by (length, bytes) for the evaluator's binary search; duplicates dropped. */
        struct cpl_str *h = &p->vals[a.val0].s;
        qsort_r(h, a.n, sizeof(union cpl_val), cpl_host_cmp, p->strs.b);
        uint32_t w = 0;
        for (uint32_t r = 0; r < a.n; r++)
            if (w == 0 ||
                cpl_host_cmp(&p->vals[a.val0 + w - 1].s, &p->vals[a.val0 + r].s, p->strs.b) != 0)
                p->vals[a.val0 + w++] = p->vals[a.val0 + r];
        p->n_vals -= a.n - w;
        a.n = w;
    }
    p->atoms[p->n_atoms++] = a;
    return CAT_OK;
}

/* --- properties ------------------------------------------------------------ */

static int
cpl_prop_err(struct cpl_cc *cc, const struct cpl_tok *nt, const char *expected)
{
    char shown[CPL_ERR_SHOW + 8];
    return cpl_lex_err(&cc->lx, nt->line, nt->col, "bad value for '%s': expected %s",
                       cpl_show(shown, sizeof(shown), nt->p, nt->len), expected);
}

/* Reads "(a, b, ...)"; the lexer is at '('. */
static int
cpl_args(struct cpl_cc *cc, const struct cpl_tok *nt, struct cpl_tok *args, size_t *n)
{
    struct cpl_lex *lx = &cc->lx;
    char shown[CPL_ERR_SHOW + 8];
    *n = 0;
    lx->p++;
    if (cpl_lex_skip(lx) != CAT_OK)
        return CAT_ERR;
    if (cpl_lex_peek(lx) == ')') {
        lx->p++;
        return CAT_OK;
    }
    for (;;) {
        if (*n == CPL_MAX_ARGS)
            return cpl_lex_err_here(lx, "too many values for '%s' (at most %u)",
                                    cpl_show(shown, sizeof(shown), nt->p, nt->len), CPL_MAX_ARGS);
        if (cpl_lex_value(lx, &args[*n]) != CAT_OK || cpl_lex_skip(lx) != CAT_OK)
            return CAT_ERR;
        ++*n;
        char c = cpl_lex_peek(lx);
        if (c == ')') {
            lx->p++;
            return CAT_OK;
        }
        if (c != ',')
            return cpl_lex_err_here(lx, "expected ',' or ')' after a value of '%s'",
                                    cpl_show(shown, sizeof(shown), nt->p, nt->len));
        lx->p++;
        if (cpl_lex_skip(lx) != CAT_OK)
            return CAT_ERR;
    }
}

static int
cpl_yes_no(const struct cpl_tok *a, const char *yes, uint8_t *out)
{
    if (cpl_tok_is(a, yes))
        *out = CPL_YES;
    else if (cpl_tok_is(a, "no"))
        *out = CPL_NO;
    else
        return CAT_ERR;
    return CAT_OK;
}

/* NAME or NAME(ARGS); the lexer is just past NAME. */
int
cpl_property(struct cpl_cc *cc, const struct cpl_tok *nt, enum cpl_in in, unsigned lmask,
             struct cpl_props *pr)
{
    struct cpl_lex *lx = &cc->lx;
    char shown[CPL_ERR_SHOW + 8];
    cpl_show(shown, sizeof(shown), nt->p, nt->len);
    const struct cpl_prop_def *d = NULL;
    for (size_t i = 0; i < CAT_ARRAY_LEN(cpl_prop_defs) && d == NULL; i++)
        if (cpl_tok_is(nt, cpl_prop_defs[i].name))
            d = &cpl_prop_defs[i];
    if (d == NULL) {
        for (size_t i = 0; i < CAT_ARRAY_LEN(cpl_cond_defs); i++)
            if (cpl_tok_is(nt, cpl_cond_defs[i].name))
                return cpl_lex_err(lx, nt->line, nt->col,
                                   "'%s' is a condition, not a property: expected %s=VALUE", shown,
                                   shown);
        return cpl_lex_err(lx, nt->line, nt->col, "unknown property '%s'", shown);
    }
    if (in == CPL_IN_DEFINE)
        return cpl_lex_err(lx, nt->line, nt->col,
                           "property '%s' in a define condition: expected conditions only", shown);
    if (in == CPL_IN_GUARD)
        return cpl_lex_err(lx, nt->line, nt->col,
                           "property '%s' on a layer header: expected it in a rule of the layer",
                           shown);
    if ((d->layers & lmask) == 0) {
        char where[64] = "";
        for (unsigned k = 0; k < CPL_L_COUNT; k++)
            if (d->layers & CPL_LM(k))
                snprintf(where + strlen(where), sizeof(where) - strlen(where), "%s<%s>",
                         where[0] ? " " : "", cpl_layer_names[k]);
        return cpl_lex_err(lx, nt->line, nt->col,
                           "property '%s' is not allowed in a <%s> layer: expected it in %s", shown,
                           cpl_layer_names[__builtin_ctz(lmask)], where);
    }
    struct cpl_tok args[CPL_MAX_ARGS];
    size_t n = 0;
    bool paren = cpl_lex_peek(lx) == '(';
    if (paren && cpl_args(cc, nt, args, &n) != CAT_OK)
        return CAT_ERR;
    if (!cpl_word_end(lx))
        return cpl_lex_err_here(lx, "unexpected text after '%s': expected a blank", shown);
    if (d->atype == CPL_A_NONE && paren)
        return cpl_lex_err(lx, nt->line, nt->col, "'%s' takes no value", shown);
    if (d->atype != CPL_A_NONE && d->atype != CPL_A_OPT_TEXT && !paren)
        return cpl_lex_err(lx, nt->line, nt->col, "'%s' needs a value: expected %s(VALUE)", shown,
                           shown);
    size_t want_max = d->atype == CPL_A_IGNORE ? CPL_MAX_ARGS : d->atype == CPL_A_NONE ? 0 : 1;
    if ((paren && n == 0) || n > want_max)
        return cpl_lex_err(lx, nt->line, nt->col, "'%s' takes %s", shown,
                           want_max == 1 ? "exactly one value" : "a list of values");
    uint8_t ign_mask = d->ign, ign_val = 0;
    if ((pr->set & d->bit) && (d->bit != CPL_P_IGNORE || (pr->ign_mask & ign_mask)))
        return cpl_lex_err(lx, nt->line, nt->col,
                           "'%s' sets a property this rule already sets: expected each "
                           "property once per rule",
                           shown);
    const struct cpl_tok *a = &args[0];
    switch ((enum cpl_atype)d->atype) {
    case CPL_A_NONE:
    case CPL_A_OPT_TEXT:
        pr->allow = cpl_tok_is(nt, "allow") ? CPL_YES : CPL_NO;
        pr->deny_unauth = cpl_tok_is(nt, "deny.unauthorized");
        if (n == 1) {
            if (a->len > CPL_MAX_TEXT_ARG)
                return cpl_prop_err(cc, nt, "a text of at most 1024 bytes");
            struct cpl_str s;
            if (cpl_intern(cc, a->p, a->len, false, &s) != CAT_OK)
                return CAT_ERR;
            pr->deny_reason = s.off;
        }
        break;
    case CPL_A_NAME:
        if (!cpl_is_name(a->p, a->len))
            return cpl_prop_err(cc, nt, "a name of 1-64 letters, digits, '_', '.', '-'");
        break;
    case CPL_A_HOST: {
        char norm[CPL_HOST_MAX + 1];
        int hl = cpl_host_norm(a->p, a->len, norm);
        if (hl <= 0 || !cpl_host_valid(norm, (size_t)hl))
            return cpl_prop_err(cc, nt, "a host name");
        struct cpl_str s;
        if (cpl_intern(cc, norm, (size_t)hl, false, &s) != CAT_OK)
            return CAT_ERR;
        pr->emu_host = s.off;
        break;
    }
    case CPL_A_TEXT:
        if (a->len > CPL_MAX_TEXT_ARG)
            return cpl_prop_err(cc, nt, "a text of at most 1024 bytes");
        break;
    case CPL_A_HTTPS_NO:
        if (cpl_yes_no(a, "https", &pr->intercept) != CAT_OK)
            return cpl_prop_err(cc, nt, "https or no");
        break;
    case CPL_A_SSL_NO:
        if (cpl_yes_no(a, "ssl", &pr->force_ssl) != CAT_OK)
            return cpl_prop_err(cc, nt, "ssl or no");
        break;
    case CPL_A_YES_NO: {
        uint8_t v;
        if (cpl_yes_no(a, "yes", &v) != CAT_OK)
            return cpl_prop_err(cc, nt, "yes or no");
        if (d->bit == CPL_P_VALIDATE)
            pr->validate = v;
        else
            ign_val = v == CPL_YES ? d->ign : 0;
        break;
    }
    case CPL_A_IGNORE:
        for (size_t i = 0; i < n; i++) {
            bool known = false;
            if (cpl_tok_is(&args[i], "all") || cpl_tok_is(&args[i], "none")) {
                if (n > 1)
                    return cpl_prop_err(cc, nt, "all or none alone, or a list of error names");
                ign_val = cpl_tok_is(&args[i], "all") ? CPL_IGN_ALL : 0;
                known = true;
            }
            for (unsigned k = 0; k < CAT_ARRAY_LEN(cpl_ign_names) && !known; k++)
                if (cpl_tok_is(&args[i], cpl_ign_names[k])) {
                    ign_val |= (uint8_t)(1u << k);
                    known = true;
                }
            if (!known)
                return cpl_prop_err(cc, nt,
                                    "all, none, or some of untrusted_issuer, expiration, "
                                    "hostname_mismatch, revocation");
        }
        break;
    case CPL_A_FORWARD:
        if (cpl_tok_is(a, "no")) {
            struct cpl_str s;
            if (cpl_intern(cc, "", 0, false, &s) != CAT_OK)
                return CAT_ERR;
            pr->forward = s.off;
        } else if (!cpl_is_name(a->p, a->len)) {
            return cpl_prop_err(cc, nt, "a forwarding host name or no");
        }
        break;
    case CPL_A_INSPECT:
        pr->inspect = cpl_tok_is(a, "both")   ? CPL_INSPECT_BOTH
                      : cpl_tok_is(a, "edge") ? CPL_INSPECT_EDGE
                      : cpl_tok_is(a, "core") ? CPL_INSPECT_CORE
                                              : CPL_INSPECT_UNSET;
        if (pr->inspect == CPL_INSPECT_UNSET)
            return cpl_prop_err(cc, nt, "both, edge or core");
        break;
    }
    uint32_t *dst = NULL;
    if (d->bit == CPL_P_AUTH)
        dst = &pr->auth_realm;
    else if (d->bit == CPL_P_KEYRING)
        dst = &pr->keyring;
    else if (d->bit == CPL_P_SPLASH_TEXT)
        dst = &pr->splash_text;
    else if (d->bit == CPL_P_SPLASH_URL)
        dst = &pr->splash_url;
    else if (d->bit == CPL_P_FORWARD && pr->forward == 0)
        dst = &pr->forward;
    if (dst != NULL) {
        struct cpl_str s;
        if (cpl_intern(cc, a->p, a->len, false, &s) != CAT_OK)
            return CAT_ERR;
        *dst = s.off;
    }
    pr->set |= d->bit;
    pr->ign_mask |= ign_mask;
    pr->ign_val = (uint8_t)((pr->ign_val & ~ign_mask) | (ign_val & ign_mask));
    return CAT_OK;
}
