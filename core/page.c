/*
 * Exception pages. The body is small and self-contained (no external
 * resources), says what happened in words, and carries the exception id
 * so that users can quote it to their help desk. Every value that came from
 * the network (host, detail text) is HTML-escaped. Admin-replaceable
 * templates come with the Validation issue.
 */
#include "core/page.h"

#include "core/http.h"

#include <stdio.h>
#include <string.h>

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

int
page_render(struct buf *out, int status, const char *exception_id, const char *host,
            const char *detail)
{
    char h[600] = "", d[3000] = "", id[200] = "";
    page_escape(id, sizeof(id), exception_id);
    if (host != NULL)
        page_escape(h, sizeof(h), host);
    if (detail != NULL)
        page_escape(d, sizeof(d), detail);
    const char *reason = http_reason(status);
    char body[4096];
    int blen = snprintf(body, sizeof(body),
                        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
                        "<title>%d %s</title></head>\n<body>\n<h1>%s</h1>\n"
                        "<p>%s</p>\n%s%s%s"
                        "<p>Exception: <code>%s</code></p>\n"
                        "<hr><address>catena</address>\n</body></html>\n",
                        status, reason, reason, d[0] ? d : reason, h[0] ? "<p>Host: <code>" : "",
                        h, h[0] ? "</code></p>\n" : "", id);
    if (blen < 0 || (size_t)blen >= sizeof(body))
        return CAT_ERR;
    if (buf_printf(out,
                   "HTTP/1.1 %d %s\r\nContent-Type: text/html; charset=utf-8\r\n"
                   "Content-Length: %d\r\nX-Catena-Exception: %s\r\n"
                   "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                   status, reason, blen, id) != CAT_OK)
        return CAT_ERR;
    return buf_append(out, body, (size_t)blen);
}
