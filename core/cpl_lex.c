/*
 * The policy engine's lexer and small shared helpers: growable vectors, the
 * string arena, host-name normalisation and error formatting. The lexer walks
 * the raw text once; a '\' at the end of a physical line joins it to the next
 * (the logical line), so tokens always carry the physical line and column an
 * error must name. Nothing here allocates except the vectors and the arena.
 */
#include "core/cpl_int.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
cpl_vec_grow(void **base, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return CAT_OK;
    size_t ncap = *cap ? *cap * 2 : 16;
    if (ncap < *cap || ncap > SIZE_MAX / elem || ncap > UINT32_MAX)
        return CAT_ERR;
    void *nb = realloc(*base, ncap * elem);
    if (nb == NULL)
        return CAT_ERR;
    *base = nb;
    *cap = ncap;
    return CAT_OK;
}

int
cpl_arena_init(struct cpl_arena *a)
{
    a->cap = 4096;
    a->b = malloc(a->cap);
    if (a->b == NULL)
        return CAT_ERR;
    a->b[0] = '\0'; /* offset 0: the "no string" sentinel */
    a->len = 1;
    return CAT_OK;
}

int
cpl_arena_add(struct cpl_arena *a, const char *s, size_t len, bool lower, struct cpl_str *out)
{
    if (len >= UINT32_MAX - a->len - 1)
        return CAT_ERR;
    if (a->len + len + 1 > a->cap) {
        size_t ncap = a->cap;
        while (ncap < a->len + len + 1)
            ncap *= 2;
        if (ncap > UINT32_MAX)
            return CAT_ERR;
        char *nb = realloc(a->b, ncap);
        if (nb == NULL)
            return CAT_ERR;
        a->b = nb;
        a->cap = ncap;
    }
    char *d = a->b + a->len;
    for (size_t i = 0; i < len; i++)
        d[i] = lower ? cpl_lower(s[i]) : s[i];
    d[len] = '\0';
    out->off = (uint32_t)a->len;
    out->len = (uint32_t)len;
    a->len += len + 1;
    return CAT_OK;
}

int
cpl_host_norm(const char *in, size_t len, char out[CPL_HOST_MAX + 1])
{
    if (len >= 2 && in[0] == '[' && in[len - 1] == ']') {
        in++;
        len -= 2;
    }
    if (len > 0 && in[len - 1] == '.')
        len--;
    if (len > CPL_HOST_MAX)
        return -1;
    for (size_t i = 0; i < len; i++)
        out[i] = cpl_lower(in[i]);
    out[len] = '\0';
    return (int)len;
}

bool
cpl_host_is_ip(const char *s, size_t len)
{
    bool digits_only = true;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == ':')
            return true;
        if (!(s[i] >= '0' && s[i] <= '9') && s[i] != '.')
            digits_only = false;
    }
    return digits_only;
}

bool
cpl_host_valid(const char *s, size_t len)
{
    if (len == 0)
        return false;
    if (memchr(s, ':', len) != NULL) {
        /* An IPv6 literal: hex digits, ':' and dots (an embedded IPv4). */
        for (size_t i = 0; i < len; i++) {
            char c = s[i];
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == ':' || c == '.'))
                return false;
        }
        return true;
    }
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
            continue;
        }
        /* '_' appears in real names (SRV-style labels, some CDNs). */
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
        if (++label > 63)
            return false;
    }
    return label > 0;
}

const char *
cpl_show(char *buf, size_t cap, const char *s, size_t len)
{
    size_t n = len > CPL_ERR_SHOW ? CPL_ERR_SHOW : len, o = 0;
    for (size_t i = 0; i < n && o + 4 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[o++] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
    }
    if (n < len && o + 4 < cap) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    if (cap > 0)
        buf[o < cap ? o : cap - 1] = '\0';
    return buf;
}

void
cpl_lex_init(struct cpl_lex *lx, const char *text, size_t len, const char *name, char *err,
             size_t errlen)
{
    memset(lx, 0, sizeof(*lx));
    lx->name = name;
    lx->p = text;
    lx->end = text + len;
    lx->line_start = lx->logical = text;
    lx->line = 1;
    lx->err = err;
    lx->errlen = errlen;
    if (errlen > 0)
        err[0] = '\0';
}

static int cpl_lex_verr(struct cpl_lex *lx, unsigned line, unsigned col, const char *fmt,
                        va_list ap) CAT_PRINTF(4, 0);

static int
cpl_lex_verr(struct cpl_lex *lx, unsigned line, unsigned col, const char *fmt, va_list ap)
{
    if (lx->failed || lx->errlen == 0) {
        lx->failed = true;
        return CAT_ERR;
    }
    lx->failed = true;
    /* A long path keeps its end: the file name is what the reader needs. */
    char name[64];
    size_t nl = strlen(lx->name), cut = nl > CPL_ERR_SHOW ? nl - CPL_ERR_SHOW : 0;
    cpl_show(name, sizeof(name), lx->name + cut, nl - cut);
    int n = snprintf(lx->err, lx->errlen, "%s%s:%u:%u: ", cut > 0 ? "..." : "", name, line, col);
    if (n >= 0 && (size_t)n < lx->errlen)
        vsnprintf(lx->err + n, lx->errlen - (size_t)n, fmt, ap);
    return CAT_ERR;
}

int
cpl_lex_err(struct cpl_lex *lx, unsigned line, unsigned col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cpl_lex_verr(lx, line, col, fmt, ap);
    va_end(ap);
    return CAT_ERR;
}

int
cpl_lex_err_here(struct cpl_lex *lx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cpl_lex_verr(lx, lx->line, (unsigned)(lx->p - lx->line_start) + 1, fmt, ap);
    va_end(ap);
    return CAT_ERR;
}

static bool
cpl_is_ctl(unsigned char c)
{
    return (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f;
}

/* Is p a '\' followed by blanks up to the end of the physical line? */
static const char *
cpl_lex_continuation(const struct cpl_lex *lx, const char *p)
{
    if (p >= lx->end || *p != '\\')
        return NULL;
    for (p++; p < lx->end; p++) {
        if (*p == '\n')
            return p + 1;
        if (*p != ' ' && *p != '\t' && *p != '\r')
            return NULL;
    }
    return p; /* a '\' ending the text continues into nothing */
}

int
cpl_lex_skip(struct cpl_lex *lx)
{
    for (;;) {
        if ((size_t)(lx->p - lx->logical) > CPL_MAX_LINE)
            return cpl_lex_err_here(lx, "line too long (at most %u bytes with continuations)",
                                    CPL_MAX_LINE);
        if (lx->p >= lx->end)
            return CAT_OK;
        unsigned char c = (unsigned char)*lx->p;
        if (c == ' ' || c == '\t' || c == '\r') {
            lx->p++;
            continue;
        }
        if (c == ';') {
            const char *nl = memchr(lx->p, '\n', (size_t)(lx->end - lx->p));
            const char *stop = nl != NULL ? nl : lx->end;
            for (; lx->p < stop; lx->p++)
                if (*lx->p == '\0')
                    return cpl_lex_err_here(lx, "NUL byte in a comment");
            continue;
        }
        const char *next = cpl_lex_continuation(lx, lx->p);
        if (next != NULL) {
            lx->p = next;
            lx->line++;
            lx->line_start = next;
            continue;
        }
        if (cpl_is_ctl(c))
            return cpl_lex_err_here(lx, "control character 0x%02x: expected printable text", c);
        return CAT_OK;
    }
}

bool
cpl_lex_eol(const struct cpl_lex *lx)
{
    return lx->p >= lx->end || *lx->p == '\n';
}

void
cpl_lex_newline(struct cpl_lex *lx)
{
    if (lx->p < lx->end && *lx->p == '\n')
        lx->p++;
    lx->line++;
    lx->line_start = lx->logical = lx->p;
}

static void
cpl_lex_start(const struct cpl_lex *lx, struct cpl_tok *t)
{
    t->p = lx->p;
    t->len = 0;
    t->line = lx->line;
    t->col = (unsigned)(lx->p - lx->line_start) + 1;
    t->quoted = false;
}

void
cpl_lex_name(struct cpl_lex *lx, struct cpl_tok *t)
{
    cpl_lex_start(lx, t);
    while (lx->p < lx->end) {
        char c = *lx->p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            break;
        lx->p++;
    }
    t->len = (size_t)(lx->p - t->p);
}

int
cpl_lex_value(struct cpl_lex *lx, struct cpl_tok *t)
{
    cpl_lex_start(lx, t);
    char q = cpl_lex_peek(lx);
    if (q == '"' || q == '\'') {
        const char *s = ++lx->p;
        for (; lx->p < lx->end && *lx->p != q && *lx->p != '\n'; lx->p++)
            if (cpl_is_ctl((unsigned char)*lx->p))
                return cpl_lex_err_here(lx, "control character 0x%02x in a quoted string",
                                        (unsigned char)*lx->p);
        if (lx->p >= lx->end || *lx->p != q)
            return cpl_lex_err(lx, t->line, t->col,
                               "unterminated quoted string: expected a closing %c on the same line",
                               q);
        t->p = s;
        t->len = (size_t)(lx->p - s);
        t->quoted = true;
        lx->p++;
        return CAT_OK;
    }
    while (lx->p < lx->end) {
        unsigned char c = (unsigned char)*lx->p;
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ',' || c == '(' || c == ')')
            break;
        if (cpl_is_ctl(c))
            return cpl_lex_err_here(lx, "control character 0x%02x: expected printable text", c);
        if (c == '\\' && cpl_lex_continuation(lx, lx->p) != NULL)
            break;
        lx->p++;
    }
    t->len = (size_t)(lx->p - t->p);
    if (t->len == 0) {
        char shown[8];
        if (lx->p >= lx->end || *lx->p == '\n')
            return cpl_lex_err_here(lx, "expected a value, found the end of the line");
        return cpl_lex_err_here(lx, "expected a value, found '%s'",
                                cpl_show(shown, sizeof(shown), lx->p, 1));
    }
    return CAT_OK;
}

bool
cpl_tok_is(const struct cpl_tok *t, const char *w)
{
    size_t n = strlen(w);
    if (t->len != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (cpl_lower(t->p[i]) != w[i])
            return false;
    return true;
}

bool
cpl_word_end(const struct cpl_lex *lx)
{
    char c = cpl_lex_peek(lx);
    return c == '\0' || c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ';' || c == '\\';
}

bool
cpl_is_name(const char *s, size_t len)
{
    if (len == 0 || len > 64)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}
