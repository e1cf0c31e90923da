/*
 * libFuzzer target for core/http. One input is parsed as a request, as a
 * response to GET, HEAD and CONNECT, with default and input-derived small
 * limits; an accepted request goes through http_parse_target, and bytes go
 * through the chunked scanner whole, byte by byte and in input-derived
 * splits. Invariants (views inside the buffer, counts within bounds, prefix
 * and split consistency) abort() on violation so the fuzzer reports them.
 */
#include "core/http.h"
#include "test/fuzz/fuzz.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool
fuzz_within(struct http_str s, const char *buf, size_t len)
{
    return s.p != NULL && s.p >= buf && s.len <= len && (size_t)(s.p - buf) <= len - s.len;
}

static bool
fuzz_status_ok(int st, bool is_req)
{
    if (!is_req)
        return st == 502;
    return st == 400 || st == 414 || st == 431 || st == 501 || st == 505;
}

static void
fuzz_check_head(int r, const struct http_head *h, const char *buf, size_t len,
                const struct http_limits *lim, bool is_req)
{
    FUZZ_CHECK(r == CAT_OK || r == CAT_ERR || r == CAT_AGAIN);
    if (r == CAT_AGAIN) {
        FUZZ_CHECK(len < lim->max_head);
        return;
    }
    if (r == CAT_ERR) {
        FUZZ_CHECK(h->err != NULL);
        FUZZ_CHECK(fuzz_status_ok(h->err_status, is_req));
        return;
    }
    FUZZ_CHECK(h->head_len >= 4 && h->head_len <= len && h->head_len <= lim->max_head);
    FUZZ_CHECK(buf[h->head_len - 1] == '\n' && buf[h->head_len - 2] == '\r');
    FUZZ_CHECK(buf[h->head_len - 3] == '\n' && buf[h->head_len - 4] == '\r');
    FUZZ_CHECK(h->n_hdrs <= lim->max_headers && h->n_hdrs <= HTTP_MAX_HEADERS);
    FUZZ_CHECK(h->version == 10 || h->version == 11);
    FUZZ_CHECK(h->err == NULL && h->err_status == 0);
    FUZZ_CHECK(h->framing == HTTP_BODY_NONE || h->framing == HTTP_BODY_LENGTH ||
               h->framing == HTTP_BODY_CHUNKED || h->framing == HTTP_BODY_CLOSE);
    FUZZ_CHECK(h->framing == HTTP_BODY_LENGTH || h->content_length == 0);
    FUZZ_CHECK(h->content_length <= (uint64_t)INT64_MAX);
    FUZZ_CHECK((h->conn_tokens & ~7u) == 0);
    if (is_req) {
        FUZZ_CHECK(h->framing != HTTP_BODY_CLOSE);
        FUZZ_CHECK(h->method_str.len > 0 && fuzz_within(h->method_str, buf, h->head_len));
        FUZZ_CHECK(h->target.len > 0 && fuzz_within(h->target, buf, h->head_len));
        FUZZ_CHECK(http_method_from(h->method_str) == h->method);
        FUZZ_CHECK(h->method != HTTP_M_CONNECT || h->framing == HTTP_BODY_NONE);
        FUZZ_CHECK(h->version == 11 || !h->expect_continue);
    } else {
        FUZZ_CHECK(h->status >= 100 && h->status <= 599);
        FUZZ_CHECK(h->reason.len == 0 || fuzz_within(h->reason, buf, h->head_len));
        FUZZ_CHECK(h->framing != HTTP_BODY_CLOSE || !h->keep_alive);
        FUZZ_CHECK(!h->expect_continue);
    }
    for (size_t i = 0; i < h->n_hdrs; i++) {
        const struct http_hdr *hd = &h->hdrs[i];
        FUZZ_CHECK(hd->name.len > 0 && fuzz_within(hd->name, buf, h->head_len));
        FUZZ_CHECK(hd->value.len == 0 || fuzz_within(hd->value, buf, h->head_len));
        FUZZ_CHECK(memchr(hd->name.p, ':', hd->name.len) == NULL);
        FUZZ_CHECK(hd->value.len == 0 || memchr(hd->value.p, '\r', hd->value.len) == NULL);
        FUZZ_CHECK(hd->value.len == 0 || memchr(hd->value.p, '\n', hd->value.len) == NULL);
        FUZZ_CHECK(hd->value.len == 0 ||
                   (hd->value.p[0] != ' ' && hd->value.p[hd->value.len - 1] != '\t'));
        const struct http_hdr *f = http_find(h, "x");
        FUZZ_CHECK(f == NULL || http_str_eq(f->name, "x"));
        f = http_find(h, "");
        FUZZ_CHECK(f == NULL);
        /* Framing headers never become hop-by-hop through Connection. */
        bool hop = http_is_hop_by_hop(h, hd);
        FUZZ_CHECK(!hop || !http_str_eq(hd->name, "Content-Length"));
        FUZZ_CHECK(!hop || !http_str_eq(hd->name, "Host"));
        FUZZ_CHECK(hop || !http_str_eq(hd->name, "Transfer-Encoding"));
    }
}

/*
 * Whatever a prefix of the input says must agree with the whole: a prefix
 * shorter than the head is incomplete, the head alone parses the same, and
 * an error seen early is the error the whole input gives.
 */
static void
fuzz_check_prefix(int r, const struct http_head *h, const char *buf, size_t cut,
                  const struct http_limits *lim, bool is_req, enum http_method m,
                  struct http_head *tmp)
{
    int r2 = is_req ? http_parse_request(buf, cut, lim, tmp)
                    : http_parse_response(buf, cut, lim, m, tmp);
    fuzz_check_head(r2, tmp, buf, cut, lim, is_req);
    if (r == CAT_AGAIN) {
        FUZZ_CHECK(r2 == CAT_AGAIN);
    } else if (r == CAT_OK) {
        if (cut < h->head_len) {
            FUZZ_CHECK(r2 == CAT_AGAIN);
        } else {
            FUZZ_CHECK(r2 == CAT_OK && tmp->head_len == h->head_len);
            FUZZ_CHECK(tmp->framing == h->framing && tmp->keep_alive == h->keep_alive);
            FUZZ_CHECK(tmp->n_hdrs == h->n_hdrs && tmp->content_length == h->content_length);
        }
    } else if (r2 == CAT_ERR) {
        FUZZ_CHECK(tmp->err_status == h->err_status && strcmp(tmp->err, h->err) == 0);
    }
}

static void
fuzz_check_target(struct http_head *h)
{
    struct http_url u;
    const char *t = h->target.p;
    size_t tl = h->target.len;
    if (http_parse_target(h, &u) != CAT_OK) {
        FUZZ_CHECK(h->err_status == 400 && h->err != NULL);
        return;
    }
    FUZZ_CHECK(u.port <= 65535);
    FUZZ_CHECK(u.host.len == 0 || fuzz_within(u.host, t, tl));
    FUZZ_CHECK(u.query.len == 0 || (fuzz_within(u.query, t, tl) && u.query.p[0] == '?'));
    FUZZ_CHECK(u.host.len <= 253);
    if (h->method == HTTP_M_CONNECT) {
        FUZZ_CHECK(u.host.len > 0 && u.port >= 1 && u.scheme.len == 0);
        FUZZ_CHECK(u.path.len == 0 && u.query.len == 0);
        return;
    }
    FUZZ_CHECK(u.path.len >= 1 && u.path.p[0] == '/');
    FUZZ_CHECK(u.path.len == 1 || fuzz_within(u.path, t, tl));
    if (u.scheme.len > 0) {
        FUZZ_CHECK(http_str_eq(u.scheme, "http") || http_str_eq(u.scheme, "https"));
        FUZZ_CHECK(u.host.len > 0 && u.port >= 1);
    } else {
        FUZZ_CHECK(u.host.len == 0 && u.port == 0 && t[0] == '/');
    }
    for (size_t i = 0; i < u.host.len; i++)
        FUZZ_CHECK(u.host.p[i] != '@' && u.host.p[i] != '/' && u.host.p[i] != '[');
    /* The host and port are what the authority parser sees in the same text. */
    if (!u.host_is_ipv6 && u.host.len > 0) {
        struct http_str host;
        unsigned port;
        FUZZ_CHECK(http_parse_authority(u.host, &host, &port) == CAT_OK);
        FUZZ_CHECK(host.p == u.host.p && host.len == u.host.len && port == 0);
    }
}

/* A small deterministic generator so splits depend on the input only. */
static uint32_t
fuzz_next(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

struct fuzz_ch_result {
    long total; /* bytes that belong to the message, or CAT_ERR */
    enum http_chunk_state st;
    uint64_t remaining;
};

static struct fuzz_ch_result
fuzz_scan(const uint8_t *p, size_t len, uint32_t seed, size_t max_piece)
{
    struct http_chunked ch;
    struct fuzz_ch_result res = {0, HTTP_CH_SIZE, 0};
    http_chunked_init(&ch);
    if (seed == 0)
        seed = 1; /* xorshift stays at zero */
    size_t off = 0;
    while (off < len && !http_chunked_done(&ch)) {
        size_t piece = len - off;
        if (max_piece > 0) {
            size_t want = max_piece == 1 ? 1 : fuzz_next(&seed) % max_piece;
            if (want < piece)
                piece = want;
        }
        long r = http_chunked_scan(&ch, p + off, piece);
        if (r == CAT_ERR) {
            FUZZ_CHECK(ch.err != NULL);
            FUZZ_CHECK(http_chunked_scan(&ch, p, len) == CAT_ERR);
            res.total = CAT_ERR;
            return res;
        }
        FUZZ_CHECK(r >= 0 && (size_t)r <= piece);
        FUZZ_CHECK((size_t)r == piece || http_chunked_done(&ch));
        off += (size_t)r;
    }
    if (http_chunked_done(&ch))
        FUZZ_CHECK(http_chunked_scan(&ch, p, len) == 0);
    res.total = (long)off;
    res.st = ch.st;
    res.remaining = ch.remaining;
    return res;
}

static void
fuzz_chunked(const uint8_t *p, size_t len, uint32_t seed)
{
    struct fuzz_ch_result whole = fuzz_scan(p, len, seed, 0);
    struct fuzz_ch_result split = fuzz_scan(p, len, seed, 17);
    struct fuzz_ch_result split2 = fuzz_scan(p, len, seed ^ 0x9e3779b9u, 300);
    struct fuzz_ch_result bytes = fuzz_scan(p, len, seed, 1);
    const struct fuzz_ch_result *other[] = {&split, &split2, &bytes};
    for (size_t i = 0; i < 3; i++) {
        FUZZ_CHECK(other[i]->total == whole.total);
        if (whole.total >= 0)
            FUZZ_CHECK(other[i]->st == whole.st && other[i]->remaining == whole.remaining);
    }
    FUZZ_CHECK(whole.total <= (long)len);
    FUZZ_CHECK(whole.total < 0 || whole.st == HTTP_CH_DONE || (size_t)whole.total == len);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    struct http_head h, tmp;
    struct http_limits lim = {.max_head = 8192, .max_headers = 64};
    uint32_t seed = 2166136261u;
    for (size_t i = 0; i < size; i++)
        seed = (seed ^ data[i]) * 16777619u;
    if (seed == 0)
        seed = 1;
    size_t cut = size > 0 ? seed % size : 0;

    int r = http_parse_request(buf, size, &lim, &h);
    fuzz_check_head(r, &h, buf, size, &lim, true);
    fuzz_check_prefix(r, &h, buf, cut, &lim, true, HTTP_M_OTHER, &tmp);
    if (r == CAT_OK) {
        fuzz_check_prefix(r, &h, buf, h.head_len, &lim, true, HTTP_M_OTHER, &tmp);
        fuzz_check_prefix(r, &h, buf, h.head_len - 1, &lim, true, HTTP_M_OTHER, &tmp);
        fuzz_check_target(&h);
        if (h.framing == HTTP_BODY_CHUNKED)
            fuzz_chunked(data + h.head_len, size - h.head_len, seed);
    }

    static const enum http_method methods[] = {HTTP_M_GET, HTTP_M_HEAD, HTTP_M_CONNECT};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        r = http_parse_response(buf, size, &lim, methods[i], &h);
        fuzz_check_head(r, &h, buf, size, &lim, false);
        if (i == 0)
            fuzz_check_prefix(r, &h, buf, cut, &lim, false, methods[i], &tmp);
        if (r == CAT_OK && methods[i] == HTTP_M_CONNECT && h.status / 100 == 2)
            FUZZ_CHECK(h.framing == HTTP_BODY_NONE);
        if (r == CAT_OK && methods[i] == HTTP_M_HEAD)
            FUZZ_CHECK(h.framing == HTTP_BODY_NONE);
        if (r == CAT_OK && i == 0 && h.framing == HTTP_BODY_CHUNKED)
            fuzz_chunked(data + h.head_len, size - h.head_len, seed);
    }

    /* Small limits derived from the input reach the 414/431/502 paths. */
    struct http_limits small = {.max_head = size / 2 + (seed & 15), .max_headers = seed % 5};
    r = http_parse_request(buf, size, &small, &h);
    fuzz_check_head(r, &h, buf, size, &small, true);
    r = http_parse_response(buf, size, &small, HTTP_M_GET, &h);
    fuzz_check_head(r, &h, buf, size, &small, false);

    fuzz_chunked(data, size, seed);

    if (size <= 512) {
        struct http_str s = {buf, size}, host;
        unsigned port = 0;
        if (http_parse_authority(s, &host, &port) == CAT_OK) {
            FUZZ_CHECK(host.len > 0 && fuzz_within(host, buf, size) && port <= 65535);
            FUZZ_CHECK(memchr(host.p, '@', host.len) == NULL);
        }
    }
    return 0;
}
