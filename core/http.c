/*
 * HTTP/1.1 heads and chunked framing (RFC 9110, RFC 9112), parsed strictly.
 * Sits between the connection state machine, which reads a head into a
 * buffer, and the relay, which forwards bodies framed as decided here.
 * Results are views into the caller's buffer: nothing is allocated and no
 * state survives a call except in struct http_chunked. A head is re-parsed
 * from its first byte on each call, in one linear pass bounded by max_head.
 * Whatever two parsers could read differently is an error, never a guess.
 */
#include "core/http.h"

#include <limits.h>
#include <string.h>

/* RFC 9112 2.2 asks a server to ignore "at least one" empty line before a
 * request line; two covers the CRLF some clients add after a POST body. */
#define HTTP_MAX_LEADING_CRLF 2

/* Chunked framing bounds: a size line with its extensions, or one trailer
 * field line; all trailer bytes; the largest chunk size accepted. */
#define HTTP_CH_MAX_LINE 4096
#define HTTP_CH_MAX_TRAILERS 16384
#define HTTP_CH_MAX_SIZE (UINT64_C(1) << 62)
/* ch->digits in HTTP_CH_SIZE once whitespace followed the size: only BWS
 * then ';' may come (RFC 9112 7.1.1), never more digits or the CRLF. */
#define HTTP_CH_BWS 0xffu

/* --- character classes (RFC 9110 5.6.2, 5.5) --------------------------- */

static bool
http_is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool
http_is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
http_hex_val(unsigned char c)
{
    if (http_is_digit(c))
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static bool
http_is_tchar(unsigned char c)
{
    if (http_is_alpha(c) || http_is_digit(c))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* field-vchar, SP or HTAB: everything but the other controls and DEL. */
static bool
http_is_field_byte(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool
http_is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static unsigned char
http_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c;
}

static bool
http_str_caseeq(struct http_str a, struct http_str b)
{
    if (a.len != b.len)
        return false;
    for (size_t i = 0; i < a.len; i++)
        if (http_lower((unsigned char)a.p[i]) != http_lower((unsigned char)b.p[i]))
            return false;
    return true;
}

bool
http_str_eq(struct http_str s, const char *lit)
{
    struct http_str l = {lit, strlen(lit)};
    return http_str_caseeq(s, l);
}

static bool
http_is_token(struct http_str s)
{
    if (s.len == 0)
        return false;
    for (size_t i = 0; i < s.len; i++)
        if (!http_is_tchar((unsigned char)s.p[i]))
            return false;
    return true;
}

static struct http_str
http_trim(const char *p, size_t n)
{
    while (n > 0 && http_is_ows((unsigned char)p[0])) {
        p++;
        n--;
    }
    while (n > 0 && http_is_ows((unsigned char)p[n - 1]))
        n--;
    return (struct http_str){p, n};
}

/* --- comma-separated lists (RFC 9110 5.6.1) ------------------------------ */

struct http_list {
    const char *p;
    size_t len, off;
    bool done;
};

static struct http_list
http_list_of(struct http_str s)
{
    return (struct http_list){s.p != NULL ? s.p : "", s.len, 0, false};
}

/* Next element, OWS trimmed, possibly empty; false after the last one.
 * The lists parsed here hold tokens or digits, never quoted commas. */
static bool
http_list_next(struct http_list *l, struct http_str *elem)
{
    if (l->done)
        return false;
    const char *s = l->p + l->off;
    size_t rest = l->len - l->off;
    const char *comma = memchr(s, ',', rest);
    size_t n = comma != NULL ? (size_t)(comma - s) : rest;
    if (comma != NULL)
        l->off += n + 1;
    else
        l->done = true;
    *elem = http_trim(s, n);
    return true;
}

/* --- methods and reasons ------------------------------------------------- */

static const char *const http_method_names[] = {
    [HTTP_M_OTHER] = "OTHER",     [HTTP_M_GET] = "GET",         [HTTP_M_HEAD] = "HEAD",
    [HTTP_M_POST] = "POST",       [HTTP_M_PUT] = "PUT",         [HTTP_M_DELETE] = "DELETE",
    [HTTP_M_CONNECT] = "CONNECT", [HTTP_M_OPTIONS] = "OPTIONS", [HTTP_M_TRACE] = "TRACE",
    [HTTP_M_PATCH] = "PATCH",
};

enum http_method
http_method_from(struct http_str s)
{
    /* Methods are case-sensitive (RFC 9110 9.1): "get" is some other token. */
    for (size_t m = HTTP_M_GET; m < CAT_ARRAY_LEN(http_method_names); m++) {
        const char *name = http_method_names[m];
        if (s.len == strlen(name) && memcmp(s.p, name, s.len) == 0)
            return (enum http_method)m;
    }
    return HTTP_M_OTHER;
}

const char *
http_method_name(enum http_method m)
{
    if ((size_t)m >= CAT_ARRAY_LEN(http_method_names))
        return http_method_names[HTTP_M_OTHER];
    return http_method_names[m];
}

static const struct {
    int status;
    const char *reason;
} http_reasons[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {203, "Non-Authoritative Information"},
    {204, "No Content"},
    {205, "Reset Content"},
    {206, "Partial Content"},
    {300, "Multiple Choices"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {407, "Proxy Authentication Required"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"},
    {417, "Expectation Failed"},
    {421, "Misdirected Request"},
    {422, "Unprocessable Content"},
    {426, "Upgrade Required"},
    {428, "Precondition Required"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
    {508, "Loop Detected"},
    {511, "Network Authentication Required"},
};

const char *
http_reason(int status)
{
    for (size_t i = 0; i < CAT_ARRAY_LEN(http_reasons); i++)
        if (http_reasons[i].status == status)
            return http_reasons[i].reason;
    return "Unknown";
}

/* --- head: lines --------------------------------------------------------- */

static int
http_fail(struct http_head *h, int status, const char *err)
{
    h->err_status = status;
    h->err = err;
    return CAT_ERR;
}

static void
http_head_reset(struct http_head *h)
{
    /* hdrs[] is left alone: n_hdrs bounds what is valid, and clearing 4 KiB
     * on every call of a byte-at-a-time read would be wasted work. */
    h->method = HTTP_M_OTHER;
    h->method_str = (struct http_str){"", 0};
    h->target = (struct http_str){"", 0};
    h->status = 0;
    h->reason = (struct http_str){"", 0};
    h->version = 0;
    h->n_hdrs = 0;
    h->head_len = 0;
    h->framing = HTTP_BODY_NONE;
    h->content_length = 0;
    h->conn_tokens = 0;
    h->keep_alive = false;
    h->expect_continue = false;
    h->err_status = 0;
    h->err = NULL;
}

/* Head incomplete in buf[0..win): wait while under the limit, else fail.
 * 414 only while the request line itself is what does not fit. */
static int
http_more(struct http_head *h, bool more, bool is_req, bool start_line)
{
    if (more)
        return CAT_AGAIN;
    if (!is_req)
        return http_fail(h, 502, "response head too large");
    if (start_line)
        return http_fail(h, 414, "request line too long");
    return http_fail(h, 431, "request header fields too large");
}

/*
 * The line starting at pos in buf[0..win): CAT_OK with its content in
 * buf[pos..*eol) and the next line at *next, CAT_AGAIN without an LF yet.
 * Only CRLF ends a line (RFC 9112 2.2): bare LF and bare CR are errors,
 * since other parsers take either for a line end.
 */
static int
http_line(struct http_head *h, const char *buf, size_t win, size_t pos, int bad, size_t *eol,
          size_t *next)
{
    const char *lf = memchr(buf + pos, '\n', win - pos);
    if (lf == NULL)
        return CAT_AGAIN;
    size_t i = (size_t)(lf - buf);
    if (i == pos || buf[i - 1] != '\r')
        return http_fail(h, bad, "bare LF line ending");
    if (memchr(buf + pos, '\r', i - 1 - pos) != NULL)
        return http_fail(h, bad, "bare CR in a line");
    *eol = i - 1;
    *next = i + 1;
    return CAT_OK;
}

/* "HTTP/" DIGIT "." DIGIT (RFC 9112 2.3), case-sensitive. */
static int
http_version(struct http_head *h, const char *p, size_t n, bool is_req)
{
    if (n != 8 || memcmp(p, "HTTP/", 5) != 0 || !http_is_digit((unsigned char)p[5]) ||
        p[6] != '.' || !http_is_digit((unsigned char)p[7]))
        return http_fail(h, is_req ? 400 : 502, "malformed HTTP version");
    if (p[5] != '1' || (p[7] != '0' && p[7] != '1'))
        return http_fail(h, is_req ? 505 : 502, "unsupported HTTP version");
    h->version = p[7] == '0' ? 10 : 11;
    return CAT_OK;
}

/* method SP request-target SP HTTP-version, single spaces (RFC 9112 3). */
static int
http_request_line(struct http_head *h, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && http_is_tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i == n || p[i] != ' ')
        return http_fail(h, 400, "malformed method");
    h->method_str = (struct http_str){p, i};
    h->method = http_method_from(h->method_str);
    size_t t = ++i;
    /* URI syntax (RFC 3986) has no controls, spaces or raw 8-bit bytes. */
    while (i < n && p[i] != ' ') {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x21 || c > 0x7e)
            return http_fail(h, 400, "bad byte in request target");
        i++;
    }
    if (i == t)
        return http_fail(h, 400, "empty request target");
    if (i == n)
        return http_fail(h, 400, "no HTTP version in request line");
    h->target = (struct http_str){p + t, i - t};
    i++;
    return http_version(h, p + i, n - i, true);
}

/* HTTP-version SP 3DIGIT SP [reason] (RFC 9112 4); the SP before an empty
 * reason is often omitted and harmless to accept. */
static int
http_status_line(struct http_head *h, const char *p, size_t n)
{
    if (n < 8)
        return http_fail(h, 502, "malformed status line");
    int r = http_version(h, p, 8, false);
    if (r != CAT_OK)
        return r;
    if (n < 12 || p[8] != ' ' || !http_is_digit((unsigned char)p[9]) ||
        !http_is_digit((unsigned char)p[10]) || !http_is_digit((unsigned char)p[11]) ||
        (n > 12 && p[12] != ' '))
        return http_fail(h, 502, "malformed status line");
    h->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    if (h->status < 100 || h->status > 599)
        return http_fail(h, 502, "status code out of range");
    size_t rs = n > 12 ? 13 : 12;
    for (size_t i = rs; i < n; i++)
        if (!http_is_field_byte((unsigned char)p[i]))
            return http_fail(h, 502, "control character in reason phrase");
    h->reason = (struct http_str){p + rs, n - rs};
    return CAT_OK;
}

/* field-name ":" OWS field-value OWS (RFC 9112 5). */
static int
http_field_line(struct http_head *h, const char *p, size_t n, int bad, struct http_hdr *out)
{
    size_t i = 0;
    while (i < n && http_is_tchar((unsigned char)p[i]))
        i++;
    if (i == n)
        return http_fail(h, bad, "header line without a colon");
    if (p[i] != ':') {
        /* RFC 9112 5.1: such whitespace must be rejected, lest another
         * parser read "Content-Length " as a different field. */
        if (http_is_ows((unsigned char)p[i]))
            return http_fail(h, bad, "whitespace before a header colon");
        return http_fail(h, bad, "bad byte in header name");
    }
    if (i == 0)
        return http_fail(h, bad, "empty header name");
    out->name = (struct http_str){p, i};
    out->value = http_trim(p + i + 1, n - i - 1);
    for (size_t j = 0; j < out->value.len; j++)
        if (!http_is_field_byte((unsigned char)out->value.p[j]))
            return http_fail(h, bad, "control character in header value");
    return CAT_OK;
}

/*
 * Splits the head into start line and field lines. Only buf[0..max_head) is
 * looked at, so a head is complete within the limit or not at all. Checks
 * that need one byte of a line (method bytes, obs-fold, header count) run
 * before the line is complete, giving the same verdict however the bytes
 * arrive, only sooner.
 */
static int
http_split_head(const char *buf, size_t len, const struct http_limits *lim, struct http_head *h,
                bool is_req)
{
    int bad = is_req ? 400 : 502;
    unsigned max_hdrs = CAT_MIN(lim->max_headers, (unsigned)HTTP_MAX_HEADERS);
    size_t win = CAT_MIN(len, lim->max_head);
    bool more = len < lim->max_head;
    size_t pos = 0, eol = 0, next = 0;
    int r;

    if (is_req) {
        for (unsigned n = 0; pos < win && (buf[pos] == '\r' || buf[pos] == '\n'); n++) {
            if (n == HTTP_MAX_LEADING_CRLF)
                return http_fail(h, 400, "too many empty lines before the request line");
            if (buf[pos] == '\n')
                return http_fail(h, 400, "bare LF line ending");
            if (pos + 1 == win)
                return http_more(h, more, true, true);
            if (buf[pos + 1] != '\n')
                return http_fail(h, 400, "bare CR in a line");
            pos += 2;
        }
        size_t i = pos;
        while (i < win && http_is_tchar((unsigned char)buf[i]))
            i++;
        if (i < win && (i == pos || buf[i] != ' '))
            return http_fail(h, 400, "malformed method");
    } else if (memcmp(buf, "HTTP/", CAT_MIN(win, (size_t)5)) != 0) {
        /* HTTP/0.9, TLS or garbage from the server: no need to wait for more. */
        return http_fail(h, 502, "malformed status line");
    }
    r = http_line(h, buf, win, pos, bad, &eol, &next);
    if (r == CAT_AGAIN)
        return http_more(h, more, is_req, true);
    if (r != CAT_OK)
        return r;
    r = is_req ? http_request_line(h, buf + pos, eol - pos)
               : http_status_line(h, buf + pos, eol - pos);
    if (r != CAT_OK)
        return r;
    pos = next;

    for (;;) {
        if (pos < win && buf[pos] != '\r') {
            /* obs-fold (RFC 9112 5.2), or whitespace after the start line
             * (RFC 9112 2.2): both rejected, as a proxy may. */
            if (http_is_ows((unsigned char)buf[pos]))
                return http_fail(h, bad, "obs-fold or whitespace-led header line");
            if (h->n_hdrs == max_hdrs)
                return http_fail(h, is_req ? 431 : 502, "too many header fields");
        }
        r = http_line(h, buf, win, pos, bad, &eol, &next);
        if (r == CAT_AGAIN)
            return http_more(h, more, is_req, false);
        if (r != CAT_OK)
            return r;
        if (eol == pos) {
            h->head_len = next;
            return CAT_OK;
        }
        r = http_field_line(h, buf + pos, eol - pos, bad, &h->hdrs[h->n_hdrs]);
        if (r != CAT_OK)
            return r;
        h->n_hdrs++;
        pos = next;
    }
}

/* --- head: framing and connection semantics ----------------------------- */

/* What the framing and routing fields say, gathered in one pass. */
struct http_facts {
    bool have_cl, have_te, te_last_chunked, te_unknown;
    unsigned n_chunked, n_host;
    uint64_t cl;
    const struct http_hdr *host;
};

/* 1*DIGIT, at most INT64_MAX so that callers may hold it in an off_t. */
static bool
http_cl_value(struct http_str s, uint64_t *out)
{
    if (s.len == 0)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (!http_is_digit(c))
            return false;
        unsigned d = c - '0';
        if (v > ((uint64_t)INT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* Codings a peer may legitimately stack under chunked (RFC 9112 7). */
static bool
http_known_coding(struct http_str c)
{
    static const char *const known[] = {"gzip", "x-gzip", "deflate", "compress", "x-compress"};
    for (size_t i = 0; i < CAT_ARRAY_LEN(known); i++)
        if (http_str_eq(c, known[i]))
            return true;
    return false;
}

static int
http_gather(struct http_head *h, bool is_req, struct http_facts *f)
{
    int bad = is_req ? 400 : 502;
    for (size_t i = 0; i < h->n_hdrs; i++) {
        const struct http_hdr *hd = &h->hdrs[i];
        struct http_list l = http_list_of(hd->value);
        struct http_str e;
        if (http_str_eq(hd->name, "Content-Length")) {
            /* RFC 9110 8.6: a list of identical values may be taken as one;
             * anything else is a smuggling attempt or a broken sender. */
            while (http_list_next(&l, &e)) {
                uint64_t v = 0;
                if (!http_cl_value(e, &v))
                    return http_fail(h, bad, "malformed Content-Length");
                if (f->have_cl && v != f->cl)
                    return http_fail(h, bad, "conflicting Content-Length values");
                f->have_cl = true;
                f->cl = v;
            }
        } else if (http_str_eq(hd->name, "Transfer-Encoding")) {
            /* Several field lines form one list (RFC 9110 5.3). Parameters
             * and empty elements are refused: "chunked;x" or ", chunked"
             * are read as chunked by some and not by others. */
            f->have_te = true;
            while (http_list_next(&l, &e)) {
                if (!http_is_token(e))
                    return http_fail(h, bad, "malformed Transfer-Encoding");
                f->te_last_chunked = http_str_eq(e, "chunked");
                f->n_chunked += f->te_last_chunked;
                if (!f->te_last_chunked && !http_known_coding(e))
                    f->te_unknown = true;
            }
        } else if (http_str_eq(hd->name, "Connection") ||
                   (is_req && http_str_eq(hd->name, "Proxy-Connection"))) {
            while (http_list_next(&l, &e)) {
                if (e.len == 0)
                    continue; /* RFC 9110 5.6.1: empty elements are ignored */
                if (!http_is_token(e))
                    return http_fail(h, bad, "malformed Connection");
                if (http_str_eq(e, "close"))
                    h->conn_tokens |= HTTP_CONN_CLOSE;
                else if (http_str_eq(e, "keep-alive"))
                    h->conn_tokens |= HTTP_CONN_KEEPALIVE;
                else if (http_str_eq(e, "upgrade"))
                    h->conn_tokens |= HTTP_CONN_UPGRADE;
            }
        } else if (is_req && http_str_eq(hd->name, "Host")) {
            f->n_host++;
            f->host = hd;
        } else if (is_req && http_str_eq(hd->name, "Expect")) {
            /* RFC 9110 10.1.1: ignored in an HTTP/1.0 request. */
            if (h->version == 11 && http_str_eq(hd->value, "100-continue"))
                h->expect_continue = true;
        }
    }
    return CAT_OK;
}

static bool
http_keep_alive(int version, unsigned tokens)
{
    if (tokens & HTTP_CONN_CLOSE)
        return false;
    return version == 11 || (tokens & HTTP_CONN_KEEPALIVE) != 0;
}

/* RFC 9112 6.1 and 6.3 for a request: only chunked or Content-Length. */
static int
http_request_semantics(struct http_head *h)
{
    struct http_facts f = {0};
    int r = http_gather(h, true, &f);
    if (r != CAT_OK)
        return r;

    /* RFC 9112 3.2: one Host, with a valid value (empty is allowed). */
    if (f.n_host > 1)
        return http_fail(h, 400, "more than one Host");
    if (f.host != NULL && f.host->value.len > 0) {
        struct http_str host;
        unsigned port;
        if (http_parse_authority(f.host->value, &host, &port) != CAT_OK)
            return http_fail(h, 400, "malformed Host");
    }
    bool origin_form = h->target.p[0] == '/';
    bool asterisk = h->target.len == 1 && h->target.p[0] == '*';
    if (h->version == 11 && f.n_host == 0 && h->method != HTTP_M_CONNECT &&
        (origin_form || asterisk))
        return http_fail(h, 400, "HTTP/1.1 request without Host");

    if (f.have_te) {
        /* RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has
         * faulty framing, and with Content-Length too it is the classic
         * smuggling shape (RFC 9112 6.3 item 3). */
        if (h->version == 10)
            return http_fail(h, 400, "Transfer-Encoding in an HTTP/1.0 request");
        if (f.have_cl)
            return http_fail(h, 400, "both Content-Length and Transfer-Encoding");
        if (!f.te_last_chunked || f.n_chunked != 1)
            return http_fail(h, 400, "Transfer-Encoding does not end in one chunked");
        if (f.te_unknown)
            return http_fail(h, 501, "unknown transfer coding");
        h->framing = HTTP_BODY_CHUNKED;
    } else if (f.have_cl) {
        h->framing = HTTP_BODY_LENGTH;
        h->content_length = f.cl;
    }
    /* CONNECT content has no meaning (RFC 9110 9.3.6); bytes after the head
     * are the tunnel, so a declared body would be read two ways. Some
     * clients send "Content-Length: 0", which is harmless. */
    if (h->method == HTTP_M_CONNECT) {
        if (h->framing == HTTP_BODY_CHUNKED || h->content_length > 0)
            return http_fail(h, 400, "CONNECT with a body");
        h->framing = HTTP_BODY_NONE;
    }
    h->keep_alive = http_keep_alive(h->version, h->conn_tokens);
    return CAT_OK;
}

/* RFC 9112 6.3 for a response. */
static int
http_response_semantics(struct http_head *h, enum http_method req_method)
{
    struct http_facts f = {0};
    int r = http_gather(h, false, &f);
    if (r != CAT_OK)
        return r;
    if (f.n_chunked > 1)
        return http_fail(h, 502, "chunked applied more than once");

    bool clean = true;
    if (req_method == HTTP_M_HEAD || h->status < 200 || h->status == 204 || h->status == 304 ||
        (req_method == HTTP_M_CONNECT && h->status / 100 == 2)) {
        h->framing = HTTP_BODY_NONE;
    } else if (f.have_te) {
        if (h->version == 10)
            return http_fail(h, 502, "Transfer-Encoding in an HTTP/1.0 response");
        if (f.te_last_chunked) {
            h->framing = HTTP_BODY_CHUNKED;
            /* RFC 9112 6.3 item 3: chunked wins, Content-Length must be
             * dropped before forwarding, and the connection is suspect. */
            clean = !f.have_cl;
        } else {
            h->framing = HTTP_BODY_CLOSE;
        }
    } else if (f.have_cl) {
        h->framing = HTTP_BODY_LENGTH;
        h->content_length = f.cl;
    } else {
        h->framing = HTTP_BODY_CLOSE;
    }
    h->keep_alive =
        clean && h->framing != HTTP_BODY_CLOSE && http_keep_alive(h->version, h->conn_tokens);
    return CAT_OK;
}

int
http_parse_request(const char *buf, size_t len, const struct http_limits *lim, struct http_head *h)
{
    http_head_reset(h);
    int r = http_split_head(buf, len, lim, h, true);
    if (r != CAT_OK)
        return r;
    return http_request_semantics(h);
}

int
http_parse_response(const char *buf, size_t len, const struct http_limits *lim,
                    enum http_method req_method, struct http_head *h)
{
    http_head_reset(h);
    int r = http_split_head(buf, len, lim, h, false);
    if (r != CAT_OK)
        return r;
    return http_response_semantics(h, req_method);
}

/* --- header lookups ------------------------------------------------------ */

const struct http_hdr *
http_find(const struct http_head *h, const char *name)
{
    for (size_t i = 0; i < h->n_hdrs; i++)
        if (http_str_eq(h->hdrs[i].name, name))
            return &h->hdrs[i];
    return NULL;
}

bool
http_is_hop_by_hop(const struct http_head *h, const struct http_hdr *hdr)
{
    static const char *const fixed[] = {
        "Connection",
        "Proxy-Connection",
        "Keep-Alive",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Proxy-Authenticate",
        "Proxy-Authorization",
    };
    for (size_t i = 0; i < CAT_ARRAY_LEN(fixed); i++)
        if (http_str_eq(hdr->name, fixed[i]))
            return true;
    /* "Connection: Content-Length" would have the next hop frame the body
     * differently from us, "Connection: Host" route it differently: a
     * request smuggling lever, so those two stay end-to-end. */
    if (http_str_eq(hdr->name, "Content-Length") || http_str_eq(hdr->name, "Host"))
        return false;
    bool is_req = h->status == 0;
    for (size_t i = 0; i < h->n_hdrs; i++) {
        const struct http_hdr *c = &h->hdrs[i];
        if (!http_str_eq(c->name, "Connection") &&
            !(is_req && http_str_eq(c->name, "Proxy-Connection")))
            continue;
        struct http_list l = http_list_of(c->value);
        struct http_str e;
        while (http_list_next(&l, &e))
            if (http_str_caseeq(e, hdr->name))
                return true;
    }
    return false;
}

/* --- targets and authorities (RFC 3986 3.2, RFC 9112 3.2) --------------- */

/*
 * Dotted-quad only, no leading zeros: the shorthand forms inet_aton() takes
 * ("127.1", "0x7f.0.0.1", "0177.0.0.1") would let an address slip past
 * policy written for its canonical spelling.
 */
static bool
http_ipv4_ok(const char *p, size_t n)
{
    unsigned parts = 0;
    size_t i = 0;
    for (;;) {
        size_t s = i;
        unsigned v = 0;
        while (i < n && http_is_digit((unsigned char)p[i]) && i - s < 3)
            v = v * 10 + (unsigned)(p[i++] - '0');
        if (i == s || v > 255 || (i - s > 1 && p[s] == '0'))
            return false;
        parts++;
        if (i == n)
            return parts == 4;
        if (p[i] != '.' || parts == 4)
            return false;
        i++;
    }
}

/* RFC 4291 2.2 text forms, without zone identifiers (RFC 6874). */
static bool
http_ipv6_ok(const char *p, size_t n)
{
    size_t i = 0;
    unsigned groups = 0;
    bool elided = false;
    if (n < 2)
        return false;
    if (p[0] == ':') {
        if (p[1] != ':')
            return false;
        elided = true;
        i = 2;
        if (i == n)
            return true;
    }
    for (;;) {
        size_t s = i;
        while (i < n && http_hex_val((unsigned char)p[i]) >= 0 && i - s < 5)
            i++;
        if (i == s)
            return false;
        if (i < n && p[i] == '.') {
            /* An embedded IPv4 address ends the literal. */
            if (!http_ipv4_ok(p + s, n - s))
                return false;
            groups += 2;
            break;
        }
        if (i - s > 4 || ++groups > 8)
            return false;
        if (i == n)
            break;
        if (p[i] != ':' || ++i == n)
            return false;
        if (p[i] == ':') {
            if (elided)
                return false;
            elided = true;
            if (++i == n)
                break;
        }
    }
    return elided ? groups <= 7 : groups == 8;
}

/*
 * DNS names as a proxy meets them: letters, digits, '-', '_' (tolerated,
 * common in service names), labels of 1..63, at most 253 in all, no
 * trailing root dot (policy matches names without it). A name whose last
 * label looks numeric must be a strict dotted quad, as WHATWG URL does.
 */
static bool
http_host_ok(const char *p, size_t n)
{
    if (n == 0 || n > 253)
        return false;
    size_t label = 0, last = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
            last = i + 1;
            continue;
        }
        if (!http_is_alpha(c) && !http_is_digit(c) && c != '-' && c != '_')
            return false;
        if (++label > 63)
            return false;
    }
    if (label == 0)
        return false;
    const char *l = p + last;
    size_t ln = n - last, i = 0;
    if (ln >= 2 && l[0] == '0' && (l[1] | 0x20) == 'x') {
        i = 2;
        while (i < ln && http_hex_val((unsigned char)l[i]) >= 0)
            i++;
    } else {
        while (i < ln && http_is_digit((unsigned char)l[i]))
            i++;
    }
    if (i == ln)
        return http_ipv4_ok(p, n);
    return true;
}

/* 1..65535, at most five digits. */
static bool
http_port_ok(const char *p, size_t n, unsigned *port)
{
    if (n == 0 || n > 5)
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!http_is_digit((unsigned char)p[i]))
            return false;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    if (v == 0 || v > 65535)
        return false;
    *port = v;
    return true;
}

/* host [":" port], IPv6 in brackets; an empty port is refused although
 * RFC 3986 allows it, as nobody legitimate sends one. */
static int
http_authority(struct http_str s, bool need_port, struct http_str *host, unsigned *port, bool *v6)
{
    const char *p = s.p;
    size_t n = s.len, i;
    *port = 0;
    *v6 = false;
    if (n == 0)
        return CAT_ERR;
    if (p[0] == '[') {
        const char *rb = memchr(p, ']', n);
        if (rb == NULL)
            return CAT_ERR;
        size_t hl = (size_t)(rb - p) - 1;
        if (!http_ipv6_ok(p + 1, hl))
            return CAT_ERR;
        *host = (struct http_str){p + 1, hl};
        *v6 = true;
        i = hl + 2;
    } else {
        const char *colon = memchr(p, ':', n);
        i = colon != NULL ? (size_t)(colon - p) : n;
        if (!http_host_ok(p, i))
            return CAT_ERR;
        *host = (struct http_str){p, i};
    }
    if (i == n)
        return need_port ? CAT_ERR : CAT_OK;
    if (p[i] != ':' || !http_port_ok(p + i + 1, n - i - 1, port))
        return CAT_ERR;
    return CAT_OK;
}

int
http_parse_authority(struct http_str s, struct http_str *host, unsigned *port)
{
    bool v6;
    struct http_str hs = {"", 0};
    unsigned pt = 0;
    if (http_authority(s, false, &hs, &pt, &v6) != CAT_OK)
        return CAT_ERR;
    *host = hs;
    *port = pt;
    return CAT_OK;
}

int
http_parse_target(struct http_head *h, struct http_url *u)
{
    static const char root[] = "/";
    const struct http_str empty = {"", 0};
    struct http_str t = h->target;
    size_t i = 0;

    u->scheme = u->host = u->path = u->query = empty;
    u->port = 0;
    u->host_is_ipv6 = false;
    if (t.len == 0)
        return http_fail(h, 400, "empty request target");
    if (h->method == HTTP_M_CONNECT) {
        if (http_authority(t, true, &u->host, &u->port, &u->host_is_ipv6) != CAT_OK)
            return http_fail(h, 400, "malformed CONNECT target");
        return CAT_OK;
    }
    /* A fragment is never part of a request target (RFC 9112 3.2). */
    if (memchr(t.p, '#', t.len) != NULL)
        return http_fail(h, 400, "fragment in request target");
    if (t.p[0] != '/') {
        const char *colon = memchr(t.p, ':', CAT_MIN(t.len, (size_t)6));
        if (colon == NULL)
            return http_fail(h, 400, "malformed request target");
        size_t sl = (size_t)(colon - t.p);
        if (t.len - sl < 3 || colon[1] != '/' || colon[2] != '/')
            return http_fail(h, 400, "malformed request target");
        u->scheme = (struct http_str){t.p, sl};
        unsigned defport;
        if (http_str_eq(u->scheme, "http"))
            defport = 80;
        else if (http_str_eq(u->scheme, "https"))
            defport = 443;
        else
            return http_fail(h, 400, "unsupported URI scheme");
        size_t a = sl + 3, e = a;
        while (e < t.len && t.p[e] != '/' && t.p[e] != '?')
            e++;
        struct http_str auth = {t.p + a, e - a};
        /* RFC 9110 4.2.4: userinfo is deprecated and a phishing vector. */
        if (memchr(auth.p, '@', auth.len) != NULL)
            return http_fail(h, 400, "userinfo in request target");
        if (http_authority(auth, false, &u->host, &u->port, &u->host_is_ipv6) != CAT_OK)
            return http_fail(h, 400, "malformed host in request target");
        if (u->port == 0)
            u->port = defport;
        i = e;
    }
    const char *q = memchr(t.p + i, '?', t.len - i);
    size_t qs = q != NULL ? (size_t)(q - t.p) : t.len;
    /* RFC 9112 3.2.1: an empty path in absolute-form is sent as "/". */
    u->path = qs > i ? (struct http_str){t.p + i, qs - i} : (struct http_str){root, 1};
    if (q != NULL)
        u->query = (struct http_str){q, t.len - qs};
    return CAT_OK;
}

/* --- chunked framing (RFC 9112 7.1) -------------------------------------- */

void
http_chunked_init(struct http_chunked *ch)
{
    memset(ch, 0, sizeof(*ch));
    ch->st = HTTP_CH_SIZE;
    ch->err = NULL;
}

static long
http_ch_fail(struct http_chunked *ch, const char *err)
{
    ch->err = err;
    return CAT_ERR;
}

/* One byte of a trailer field line; ch->digits turns 1 at the colon. */
static long
http_ch_trailer(struct http_chunked *ch, unsigned char c)
{
    if (++ch->line_len > HTTP_CH_MAX_LINE || ++ch->trailer_total > HTTP_CH_MAX_TRAILERS)
        return http_ch_fail(ch, "trailer section too large");
    if (ch->digits == 0) {
        if (c == ':')
            ch->digits = 1;
        else if (!http_is_tchar(c))
            return http_ch_fail(ch, "malformed trailer field name");
    } else if (c == '\r') {
        ch->st = HTTP_CH_TRAILER_LF;
    } else if (!http_is_field_byte(c)) {
        return http_ch_fail(ch, "control character in trailer field");
    }
    return CAT_OK;
}

/* One byte of a size line, extension or trailer; the caller advances. */
static long
http_ch_byte(struct http_chunked *ch, unsigned char c)
{
    switch (ch->st) {
    case HTTP_CH_SIZE: {
        int v = ch->digits != HTTP_CH_BWS ? http_hex_val(c) : -1;
        if (++ch->line_len > HTTP_CH_MAX_LINE)
            return http_ch_fail(ch, "chunk size line too long");
        if (v >= 0) {
            if (ch->digits == 16)
                return http_ch_fail(ch, "too many chunk size digits");
            if (ch->remaining > HTTP_CH_MAX_SIZE >> 4)
                return http_ch_fail(ch, "chunk size too large");
            ch->remaining = ch->remaining * 16 + (unsigned)v;
            if (ch->remaining > HTTP_CH_MAX_SIZE)
                return http_ch_fail(ch, "chunk size too large");
            ch->digits++;
        } else if (ch->digits == 0) {
            return http_ch_fail(ch, "missing chunk size");
        } else if (http_is_ows(c)) {
            ch->digits = HTTP_CH_BWS;
        } else if (c == ';') {
            ch->st = HTTP_CH_EXT;
        } else if (c == '\r' && ch->digits != HTTP_CH_BWS) {
            ch->st = HTTP_CH_SIZE_LF;
        } else {
            return http_ch_fail(ch, "malformed chunk size line");
        }
        return CAT_OK;
    }
    case HTTP_CH_EXT:
        if (++ch->line_len > HTTP_CH_MAX_LINE)
            return http_ch_fail(ch, "chunk size line too long");
        if (c == '\r')
            ch->st = HTTP_CH_SIZE_LF;
        else if (!http_is_field_byte(c))
            return http_ch_fail(ch, "control character in chunk extension");
        return CAT_OK;
    case HTTP_CH_SIZE_LF:
        if (c != '\n')
            return http_ch_fail(ch, "bare CR in chunk size line");
        ch->line_len = 0;
        ch->digits = 0;
        ch->st = ch->remaining == 0 ? HTTP_CH_TRAILER_START : HTTP_CH_DATA;
        return CAT_OK;
    case HTTP_CH_DATA_CR:
        if (c != '\r')
            return http_ch_fail(ch, "chunk data not followed by CRLF");
        ch->st = HTTP_CH_DATA_LF;
        return CAT_OK;
    case HTTP_CH_DATA_LF:
        if (c != '\n')
            return http_ch_fail(ch, "chunk data not followed by CRLF");
        ch->st = HTTP_CH_SIZE;
        ch->remaining = 0;
        ch->digits = 0;
        ch->line_len = 0;
        return CAT_OK;
    case HTTP_CH_TRAILER_START:
        if (c == '\r') {
            ch->st = HTTP_CH_FINAL_LF;
            return CAT_OK;
        }
        if (http_is_ows(c))
            return http_ch_fail(ch, "obs-fold in trailer section");
        if (!http_is_tchar(c))
            return http_ch_fail(ch, "malformed trailer field");
        ch->st = HTTP_CH_TRAILER;
        ch->digits = 0;
        ch->line_len = 0;
        return http_ch_trailer(ch, c);
    case HTTP_CH_TRAILER:
        return http_ch_trailer(ch, c);
    case HTTP_CH_TRAILER_LF:
        if (c != '\n')
            return http_ch_fail(ch, "bare CR in trailer field");
        ch->st = HTTP_CH_TRAILER_START;
        return CAT_OK;
    case HTTP_CH_FINAL_LF:
        if (c != '\n')
            return http_ch_fail(ch, "bare CR after trailer section");
        ch->st = HTTP_CH_DONE;
        return CAT_OK;
    case HTTP_CH_DATA:
    case HTTP_CH_DONE:
        break;
    }
    return http_ch_fail(ch, "chunked scanner in an impossible state");
}

long
http_chunked_scan(struct http_chunked *ch, const uint8_t *p, size_t len)
{
    if (ch->err != NULL)
        return CAT_ERR;
    if (len > LONG_MAX)
        len = LONG_MAX;
    size_t i = 0;
    while (i < len && ch->st != HTTP_CH_DONE) {
        if (ch->st == HTTP_CH_DATA) {
            /* Data is skipped in bulk: only the framing is examined. */
            size_t n = len - i;
            if (n > ch->remaining)
                n = (size_t)ch->remaining;
            ch->remaining -= n;
            i += n;
            if (ch->remaining == 0)
                ch->st = HTTP_CH_DATA_CR;
            continue;
        }
        if (http_ch_byte(ch, p[i]) != CAT_OK)
            return CAT_ERR;
        i++;
    }
    return (long)i;
}
