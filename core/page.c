/*
 * Exception pages from templates. Substitution is one pass over the
 * template: "$(name)" is replaced by the escaped value, anything else is
 * copied; an unknown variable is left out (so a typo in an admin's template
 * shows as a gap, not as raw text). The body is bounded by PAGE_MAX.
 */
#include "core/page.h"

#include "core/http.h"

#include <stdio.h>
#include <string.h>

/* The built-in page: says what happened in words, carries the exception id. */
static const char page_default[] =
    "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
    "<title>$(status) $(status_text)</title></head>\n<body>\n<h1>$(status_text)</h1>\n"
    "<p>$(reason)</p>\n"
    "$(if_host)<p>Host: <code>$(host)</code></p>\n$(end_host)"
    "$(if_errors)<p>Certificate errors: <code>$(errors)</code>; issuer: "
    "<code>$(issuer)</code></p>\n$(end_errors)"
    "$(if_override)<p><a href=\"$(override_url)\">I understand the risk: continue to this "
    "site</a> (this is logged)</p>\n$(end_override)"
    "<p>Exception: <code>$(exception.id)</code></p>\n"
    "<hr><address>catena</address>\n</body></html>\n";

size_t
page_escape(char *dst, size_t cap, const char *s)
{
    size_t n = strlen(dst);
    for (; *s && n + 7 < cap; s++) {
        const char *rep = NULL;
        switch (*s) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default: break;
        }
        if (rep != NULL) {
            size_t l = strlen(rep);
            memcpy(dst + n, rep, l);
            n += l;
        } else {
            dst[n++] = *s;
        }
    }
    dst[n] = '\0';
    return n;
}

static bool
page_set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

/* The value of a variable, or NULL if it has none (num: room for a status). */
static const char *
page_var(const char *name, size_t len, int status, const char *id, const struct page_vars *v,
         char *num)
{
#define PAGE_IS(lit) (len == sizeof(lit) - 1 && memcmp(name, lit, len) == 0)
    if (PAGE_IS("host"))
        return v->host;
    if (PAGE_IS("url"))
        return v->url;
    if (PAGE_IS("reason"))
        return page_set(v->reason) ? v->reason : http_reason(status);
    if (PAGE_IS("errors"))
        return v->errors;
    if (PAGE_IS("client"))
        return v->client;
    if (PAGE_IS("issuer"))
        return v->issuer;
    if (PAGE_IS("override_url"))
        return v->override_url;
    if (PAGE_IS("exception.id"))
        return id;
    if (PAGE_IS("status_text"))
        return http_reason(status);
    if (PAGE_IS("status")) {
        snprintf(num, 8, "%d", status);
        return num;
    }
#undef PAGE_IS
    return NULL;
}

/* Whether $(if_NAME) ... $(end_NAME) is shown: its variable has a value. */
static bool
page_cond(const char *name, size_t len, const struct page_vars *v)
{
    if (len == 4 && memcmp(name, "host", 4) == 0)
        return page_set(v->host);
    if (len == 6 && memcmp(name, "errors", 6) == 0)
        return page_set(v->errors);
    if (len == 8 && memcmp(name, "override", 8) == 0)
        return page_set(v->override_url);
    return false;
}

int
page_render(struct buf *out, int status, const char *exception_id, const struct page_vars *v,
            const char *tmpl)
{
    char body[PAGE_MAX - 1024];
    size_t blen = 0;
    body[0] = '\0';
    const char *p = tmpl != NULL ? tmpl : page_default;
    char skip_to[40] = ""; /* inside a hidden $(if_x): the $(end_x) to resume at */
    size_t skip_len = 0;
    while (*p) {
        const char *open = strstr(p, "$(");
        const char *close = open != NULL ? strchr(open + 2, ')') : NULL;
        size_t lit = open != NULL && close != NULL ? (size_t)(open - p) : strlen(p);
        if (skip_len == 0) {
            if (blen + lit >= sizeof(body))
                return CAT_ERR;
            memcpy(body + blen, p, lit);
            blen += lit;
            body[blen] = '\0';
        }
        if (open == NULL || close == NULL)
            break;
        const char *name = open + 2;
        size_t len = (size_t)(close - name);
        p = close + 1;
        if (skip_len != 0) {
            if (len == skip_len && memcmp(name, skip_to, len) == 0)
                skip_len = 0;
            continue;
        }
        if (len > 3 && memcmp(name, "if_", 3) == 0) {
            if (!page_cond(name + 3, len - 3, v)) {
                /* Hidden: skip to the matching $(end_NAME). */
                snprintf(skip_to, sizeof(skip_to), "end_%.*s",
                         (int)CAT_MIN(len - 3, sizeof(skip_to) - 5), name + 3);
                skip_len = strlen(skip_to);
            }
            continue;
        }
        if (len > 4 && memcmp(name, "end_", 4) == 0)
            continue;
        char num[8];
        const char *val = page_var(name, len, status, exception_id, v, num);
        if (val != NULL) {
            blen = page_escape(body, sizeof(body), val);
            if (blen + 8 >= sizeof(body))
                return CAT_ERR; /* escaping stopped short: the page would be cut */
        }
    }
    const char *reason = http_reason(status);
    if (buf_printf(out,
                   "HTTP/1.1 %d %s\r\nContent-Type: text/html; charset=utf-8\r\n"
                   "Content-Length: %zu\r\nX-Catena-Exception: %s\r\n"
                   "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                   status, reason, blen, exception_id) != CAT_OK)
        return CAT_ERR;
    return buf_append(out, body, blen);
}
