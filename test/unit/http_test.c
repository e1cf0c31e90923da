/*
 * Unit tests for core/http: request and response heads (every rejection
 * rule, limits, incremental feeding, pipelining), framing and keep-alive
 * derivation, target and authority splitting, hop-by-hop headers, and the
 * chunked scanner fed whole, split at every position and byte by byte.
 */
#include "core/http.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const struct http_limits lim_default = {.max_head = 8192, .max_headers = 64};
/* 4 KiB each: kept off the stack of cmocka's test runner. */
static struct http_head H, H2;

static int
req(const char *s)
{
    return http_parse_request(s, strlen(s), &lim_default, &H);
}

static int
resp(const char *s, enum http_method m)
{
    return http_parse_response(s, strlen(s), &lim_default, m, &H);
}

static bool
view_is(struct http_str v, const char *lit)
{
    return v.len == strlen(lit) && memcmp(v.p, lit, v.len) == 0;
}

/* Table rows: a raw head and the verdict expected for it. */
struct head_case {
    const char *raw;
    int rc;     /* CAT_OK or CAT_ERR */
    int status; /* err_status on CAT_ERR */
};

static void
run_request_cases(const struct head_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int r = req(cases[i].raw);
        if (r != cases[i].rc || (r == CAT_ERR && H.err_status != cases[i].status) ||
            (r == CAT_ERR && H.err == NULL)) {
            print_error("case %zu: \"%s\": rc %d status %d (%s), want rc %d status %d\n", i,
                        cases[i].raw, r, H.err_status, H.err ? H.err : "-", cases[i].rc,
                        cases[i].status);
            fail();
        }
        if (r == CAT_OK)
            assert_int_equal(H.head_len, strlen(cases[i].raw));
    }
}

/* --- requests: accepted ---------------------------------------------------- */

static void
test_get_origin_form(void **state)
{
    (void)state;
    const char *s = "GET /a/b?x=1 HTTP/1.1\r\nHost:   example.com  \r\nUser-Agent:\tt/1\t\r\n"
                    "Empty:\r\n\r\n";
    assert_int_equal(req(s), CAT_OK);
    assert_int_equal(H.method, HTTP_M_GET);
    assert_true(view_is(H.method_str, "GET"));
    assert_true(view_is(H.target, "/a/b?x=1"));
    assert_int_equal(H.version, 11);
    assert_int_equal(H.n_hdrs, 3);
    assert_true(view_is(H.hdrs[0].name, "Host"));
    assert_true(view_is(H.hdrs[0].value, "example.com"));
    assert_true(view_is(H.hdrs[1].value, "t/1"));
    assert_int_equal(H.hdrs[2].value.len, 0);
    assert_int_equal(H.head_len, strlen(s));
    assert_int_equal(H.framing, HTTP_BODY_NONE);
    assert_true(H.keep_alive);
    assert_false(H.expect_continue);
    assert_int_equal(H.conn_tokens, 0);

    struct http_url u;
    assert_int_equal(http_parse_target(&H, &u), CAT_OK);
    assert_int_equal(u.scheme.len, 0);
    assert_int_equal(u.host.len, 0);
    assert_int_equal(u.port, 0);
    assert_true(view_is(u.path, "/a/b"));
    assert_true(view_is(u.query, "?x=1"));
}

static void
test_post_length_and_chunked(void **state)
{
    (void)state;
    assert_int_equal(req("POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 42\r\n\r\n"), CAT_OK);
    assert_int_equal(H.method, HTTP_M_POST);
    assert_int_equal(H.framing, HTTP_BODY_LENGTH);
    assert_int_equal(H.content_length, 42);

    assert_int_equal(req("POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"), CAT_OK);
    assert_int_equal(H.framing, HTTP_BODY_LENGTH);
    assert_int_equal(H.content_length, 0);

    assert_int_equal(req("POST /f HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
                     CAT_OK);
    assert_int_equal(H.framing, HTTP_BODY_CHUNKED);

    assert_int_equal(req("PUT /f HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n"
                         "Transfer-Encoding: Chunked \r\n\r\n"),
                     CAT_OK);
    assert_int_equal(H.method, HTTP_M_PUT);
    assert_int_equal(H.framing, HTTP_BODY_CHUNKED);

    /* Identical values, as a list or repeated, count as one. */
    assert_int_equal(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7 , 7\r\n"
                         "Content-Length: 007\r\n\r\n"),
                     CAT_OK);
    assert_int_equal(H.content_length, 7);

    assert_int_equal(
        req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n"), CAT_OK);
    assert_true(H.content_length == UINT64_C(9223372036854775807));
}

static void
test_methods_and_versions(void **state)
{
    (void)state;
    assert_int_equal(req("get / HTTP/1.1\r\nHost: a\r\n\r\n"), CAT_OK);
    assert_int_equal(H.method, HTTP_M_OTHER); /* methods are case-sensitive */
    assert_int_equal(req("PROPFIND / HTTP/1.1\r\nHost: a\r\n\r\n"), CAT_OK);
    assert_int_equal(H.method, HTTP_M_OTHER);
    assert_true(view_is(H.method_str, "PROPFIND"));
    assert_int_equal(req("GET / HTTP/1.0\r\n\r\n"), CAT_OK); /* 1.0 needs no Host */
    assert_int_equal(H.version, 10);
    assert_false(H.keep_alive);
    assert_int_equal(req("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), CAT_OK);
    assert_int_equal(H.method, HTTP_M_OPTIONS);

    static const char *const names[] = {"GET",     "HEAD",    "POST",  "PUT",  "DELETE",
                                        "CONNECT", "OPTIONS", "TRACE", "PATCH"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        struct http_str s = {names[i], strlen(names[i])};
        enum http_method m = http_method_from(s);
        assert_int_not_equal(m, HTTP_M_OTHER);
        assert_string_equal(http_method_name(m), names[i]);
    }
    assert_string_equal(http_method_name(HTTP_M_OTHER), "OTHER");
    assert_string_equal(http_method_name((enum http_method)99), "OTHER");
}

static void
test_connect(void **state)
{
    (void)state;
    struct http_url u;
    assert_int_equal(req("CONNECT example.com:443 HTTP/1.1\r\n\r\n"), CAT_OK);
    assert_int_equal(H.method, HTTP_M_CONNECT);
    assert_int_equal(H.framing, HTTP_BODY_NONE);
    assert_int_equal(http_parse_target(&H, &u), CAT_OK);
    assert_true(view_is(u.host, "example.com"));
    assert_int_equal(u.port, 443);
    assert_false(u.host_is_ipv6);
    assert_int_equal(u.scheme.len, 0);

    assert_int_equal(req("CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n"), CAT_OK);
    assert_int_equal(http_parse_target(&H, &u), CAT_OK);
    assert_true(view_is(u.host, "::1"));
    assert_int_equal(u.port, 8443);
    assert_true(u.host_is_ipv6);

    assert_int_equal(req("CONNECT 10.0.0.1:1 HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), CAT_OK);
    assert_int_equal(H.framing, HTTP_BODY_NONE);
    assert_int_equal(http_parse_target(&H, &u), CAT_OK);
    assert_int_equal(u.port, 1);

    static const char *const bad_targets[] = {
        "example.com",
        "example.com:",
        "example.com:0",
        "example.com:65536",
        "u@example.com:443",
        "[::1]",
        "::1:443",
        "http://example.com:443/",
        "/path",
        "exa mple.com:1",
        "[::1]443",
        "example.com:443/",
    };
    for (size_t i = 0; i < sizeof(bad_targets) / sizeof(bad_targets[0]); i++) {
        char buf[256];
        snprintf(buf, sizeof(buf), "CONNECT %s HTTP/1.1\r\n\r\n", bad_targets[i]);
        int r = req(buf);
        if (r == CAT_OK)
            r = http_parse_target(&H, &u);
        if (r != CAT_ERR || H.err_status != 400) {
            print_error("CONNECT target \"%s\" accepted\n", bad_targets[i]);
            fail();
        }
    }
    /* CONNECT content would be read as tunnel bytes by one side, body by another. */
    assert_int_equal(req("CONNECT a:443 HTTP/1.1\r\nContent-Length: 5\r\n\r\n"), CAT_ERR);
    assert_int_equal(H.err_status, 400);
    assert_int_equal(req("CONNECT a:443 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), CAT_ERR);
    assert_int_equal(H.err_status, 400);
}

static void
test_absolute_form(void **state)
{
    (void)state;
    struct http_url u;
    /* No Host needed with absolute-form. */
    assert_int_equal(req("GET HTTP://Example.COM:8080/p/q?x=y&z HTTP/1.1\r\n\r\n"), CAT_OK);
    assert_int_equal(http_parse_target(&H, &u), CAT_OK);
    assert_true(view_is(u.scheme, "HTTP"));
    assert_true(view_is(u.host, "Example.COM"));
    assert_int_equal(u.port, 8080);
    assert_true(view_is(u.path, "/p/q"));
    assert_true(view_is(u.query, "?x=y&z"));

    assert_int_equal(req("GET http://example.com HTTP/1.1\r\n\r\n"), CAT_OK);
    assert_int_equal(http_parse_target(&H, &u), CAT_OK);
    assert_int_equal(u.port, 80);
    assert_true(view_is(u.path, "/"));
    assert_int_equal(u.query.len, 0);

    assert_int_equal(req("GET https://example.com?q HTTP/1.1\r\n\r\n"), CAT_OK);
    assert_int_equal(http_parse_target(&H, &u), CAT_OK);
    assert_int_equal(u.port, 443);
    assert_true(view_is(u.path, "/"));
    assert_true(view_is(u.query, "?q"));

    assert_int_equal(req("GET http://[2001:db8::1]:8080/x HTTP/1.1\r\n\r\n"), CAT_OK);
    assert_int_equal(http_parse_target(&H, &u), CAT_OK);
    assert_true(view_is(u.host, "2001:db8::1"));
    assert_true(u.host_is_ipv6);
    assert_int_equal(u.port, 8080);
    assert_true(view_is(u.path, "/x"));

    assert_int_equal(req("GET http://[::ffff:10.1.2.3]/ HTTP/1.1\r\n\r\n"), CAT_OK);
    assert_int_equal(http_parse_target(&H, &u), CAT_OK);
    assert_int_equal(u.port, 80);
    assert_true(view_is(u.host, "::ffff:10.1.2.3"));

    assert_int_equal(req("GET http://192.168.1.1:81/ HTTP/1.1\r\n\r\n"), CAT_OK);
    assert_int_equal(http_parse_target(&H, &u), CAT_OK);
    assert_true(view_is(u.host, "192.168.1.1"));
    assert_false(u.host_is_ipv6);

    static const char *const bad[] = {
        "http://user@example.com/",
        "http://u:p@example.com/",
        "ftp://example.com/",
        "http://example.com:0/",
        "http://example.com:65536/",
        "http://example.com:/",
        "http:///x",
        "http:/example.com/",
        "http://example.com/#frag",
        "*",
        "example.com/x",
        "http://exa_mple..com/",
        "http://example.com./",
        "http://127.1/",
        "http://0x7f.0.0.1/",
        "http://[::1/",
        "http://[fe80::1%25eth0]/",
        "http://example.com:80x/",
        "httpx://example.com/",
        "http:",
        "http://a:80:80/",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char buf[256];
        snprintf(buf, sizeof(buf), "GET %s HTTP/1.1\r\nHost: a\r\n\r\n", bad[i]);
        assert_int_equal(req(buf), CAT_OK);
        if (http_parse_target(&H, &u) != CAT_ERR || H.err_status != 400 || H.err == NULL) {
            print_error("target \"%s\" accepted\n", bad[i]);
            fail();
        }
    }
}

static void
test_request_accepts(void **state)
{
    (void)state;
    static const struct head_case cases[] = {
        {"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", CAT_OK, 0},
        {"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", CAT_OK, 0},
        {"GET / HTTP/1.1\r\nHost:a\r\n\r\n", CAT_OK, 0},
        {"GET / HTTP/1.1\r\nHost: a\r\nX: \x80\xff obs-text\r\n\r\n", CAT_OK, 0},
        {"GET / HTTP/1.1\r\nHost: a\r\nX: a\tb\r\n\r\n", CAT_OK, 0},
        {"GET / HTTP/1.1\r\nHost: a\r\n!#$%&'*+-.^_`|~09azAZ: v\r\n\r\n", CAT_OK, 0},
        {"GET / HTTP/1.1\r\nHost:\r\n\r\n", CAT_OK, 0}, /* empty Host is valid */
        {"GET / HTTP/1.1\r\nHost: a.example:8080\r\n\r\n", CAT_OK, 0},
        {"GET / HTTP/1.1\r\nHost: [2001:db8::2]:80\r\n\r\n", CAT_OK, 0},
        {"GET / HTTP/1.1\r\nHost: _srv.example\r\n\r\n", CAT_OK, 0},
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: , close,\r\n\r\n", CAT_OK, 0},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: x-gzip, deflate, chunked\r\n\r\n",
         CAT_OK, 0},
        {"GET /~a/%20b;p=1/c!$&'()*+,;=:@ HTTP/1.1\r\nHost: a\r\n\r\n", CAT_OK, 0},
    };
    run_request_cases(cases, sizeof(cases) / sizeof(cases[0]));
    assert_int_equal(req("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), CAT_OK);
    assert_true(view_is(H.method_str, "GET"));
}

/* --- requests: every rejection rule ------------------------------------------ */

static void
test_request_line_rejects(void **state)
{
    (void)state;
    static const struct head_case cases[] = {
        /* line endings */
        {"GET / HTTP/1.1\nHost: a\r\n\r\n", CAT_ERR, 400},
        {"GET / HTTP/1.1\r\nHost: a\n\r\n", CAT_ERR, 400},
        {"GET / HTTP/1.1\r\nHost: a\r\n\n", CAT_ERR, 400},
        {"GET / HTTP/1.1\rHost: a\r\n\r\n", CAT_ERR, 400},
        {"GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", CAT_ERR, 400},
        {"GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", CAT_ERR, 400},
        {"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", CAT_ERR, 400},
        {"\r\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", CAT_ERR, 400},
        {"\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", CAT_ERR, 400},
        /* request line shape */
        {" GET / HTTP/1.1\r\nHost: a\r\n\r\n", CAT_ERR, 400},
        {"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", CAT_ERR, 400},
        {"GET /  HTTP/1.1\r\nHost: a\r\n\r\n", CAT_ERR, 400},
        {"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", CAT_ERR, 400},
        {"GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", CAT_ERR, 400},
        {"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", CAT_ERR, 400},
        {"GET /\r\n\r\n", CAT_ERR, 400},
        {"GET\r\n\r\n", CAT_ERR, 400},
        {"GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", CAT_ERR, 400},
        {"GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n", CAT_ERR, 400},
        {"GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", CAT_ERR, 400},
        /* versions */
        {"GET / HTTP/2.0\r\nHost: a\r\n\r\n", CAT_ERR, 505},
        {"GET / HTTP/1.2\r\nHost: a\r\n\r\n", CAT_ERR, 505},
        {"GET / HTTP/0.9\r\nHost: a\r\n\r\n", CAT_ERR, 505},
        {"GET / http/1.1\r\nHost: a\r\n\r\n", CAT_ERR, 400},
        {"GET / HTTP/1.10\r\nHost: a\r\n\r\n", CAT_ERR, 400},
        {"GET / HTTP/1\r\nHost: a\r\n\r\n", CAT_ERR, 400},
        {"GET / HTTP/1.x\r\nHost: a\r\n\r\n", CAT_ERR, 400},
        {"GET / HTTPS/1.1\r\nHost: a\r\n\r\n", CAT_ERR, 400},
    };
    /* "\r\n" alone is one tolerated empty line: incomplete, not an error. */
    assert_int_equal(req("\r\n"), CAT_AGAIN);
    run_request_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void
test_header_rejects(void **state)
{
    (void)state;
    static const struct head_case cases[] = {
        {"GET / HTTP/1.1\r\nHost : a\r\n\r\n", CAT_ERR, 400},
        {"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", CAT_ERR, 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n", CAT_ERR, 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n\tc\r\n\r\n", CAT_ERR, 400},
        {"GET / HTTP/1.1\r\n Host: a\r\n\r\n", CAT_ERR, 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01z\r\n\r\n", CAT_ERR, 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fz\r\n\r\n", CAT_ERR, 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nX: a\x1bz\r\n\r\n", CAT_ERR, 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nX(y: v\r\n\r\n", CAT_ERR, 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nX\x80: v\r\n\r\n", CAT_ERR, 400},
        {"GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n", CAT_ERR, 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", CAT_ERR, 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nX-\"q\": v\r\n\r\n", CAT_ERR, 400},
    };
    run_request_cases(cases, sizeof(cases) / sizeof(cases[0]));
    /* A NUL in a value (strlen cannot carry it). */
    static const char nul[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n";
    assert_int_equal(http_parse_request(nul, sizeof(nul) - 1, &lim_default, &H), CAT_ERR);
    assert_int_equal(H.err_status, 400);
}

static void
test_host_rules(void **state)
{
    (void)state;
    static const struct head_case cases[] = {
        {"GET / HTTP/1.1\r\n\r\n", CAT_ERR, 400},
        {"GET * HTTP/1.1\r\n\r\n", CAT_ERR, 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", CAT_ERR, 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nhOST: b\r\n\r\n", CAT_ERR, 400},
        {"GET http://a/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", CAT_ERR, 400},
        {"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", CAT_ERR, 400},
        {"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", CAT_ERR, 400},
        {"GET / HTTP/1.1\r\nHost: a:0\r\n\r\n", CAT_ERR, 400},
        {"GET / HTTP/1.1\r\nHost: a,b\r\n\r\n", CAT_ERR, 400},
        {"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", CAT_ERR, 400},
        {"GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", CAT_ERR, 400},
        {"GET http://a/ HTTP/1.1\r\n\r\n", CAT_OK, 0},
        {"CONNECT a:1 HTTP/1.1\r\n\r\n", CAT_OK, 0},
    };
    run_request_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void
test_framing_rejects(void **state)
{
    (void)state;
    static const struct head_case cases[] = {
        /* Content-Length */
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n", CAT_ERR, 400},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", CAT_ERR, 400},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", CAT_ERR, 400},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", CAT_ERR, 400},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", CAT_ERR, 400},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", CAT_ERR, 400},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\n", CAT_ERR, 400},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n", CAT_ERR, 400},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", CAT_ERR,
         400},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n", CAT_ERR, 400},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", CAT_ERR,
         400},
        /* Transfer-Encoding */
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
         CAT_ERR, 400},
        {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
         CAT_ERR, 400},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", CAT_ERR, 400},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", CAT_ERR, 400},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", CAT_ERR, 400},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
         "Transfer-Encoding: chunked\r\n\r\n",
         CAT_ERR, 400},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
         "Transfer-Encoding: identity\r\n\r\n",
         CAT_ERR, 400},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: foo, chunked\r\n\r\n", CAT_ERR, 501},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", CAT_ERR, 400},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked\r\n\r\n", CAT_ERR, 400},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", CAT_ERR, 400},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", CAT_ERR, 400},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunk\r\n\r\n", CAT_ERR, 400},
        {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", CAT_ERR, 400},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n", CAT_ERR, 400},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n \r\n\r\n", CAT_ERR, 400},
        /* Connection must hold tokens */
        {"GET / HTTP/1.1\r\nHost: a\r\nConnection: a b\r\n\r\n", CAT_ERR, 400},
    };
    run_request_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void
test_connection_tokens(void **state)
{
    (void)state;
    assert_int_equal(req("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"), CAT_OK);
    assert_false(H.keep_alive);
    assert_int_equal(H.conn_tokens, HTTP_CONN_CLOSE);

    assert_int_equal(req("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), CAT_OK);
    assert_true(H.keep_alive);
    assert_int_equal(H.conn_tokens, HTTP_CONN_KEEPALIVE);

    assert_int_equal(req("GET / HTTP/1.0\r\nProxy-Connection: keep-alive\r\n\r\n"), CAT_OK);
    assert_true(H.keep_alive);

    assert_int_equal(req("GET / HTTP/1.1\r\nHost: a\r\nProxy-Connection: close\r\n\r\n"), CAT_OK);
    assert_false(H.keep_alive);

    /* close wins over keep-alive */
    assert_int_equal(
        req("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"),
        CAT_OK);
    assert_false(H.keep_alive);
    assert_int_equal(H.conn_tokens, HTTP_CONN_CLOSE | HTTP_CONN_KEEPALIVE);

    assert_int_equal(req("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, x-foo\r\n"
                         "Upgrade: websocket\r\n\r\n"),
                     CAT_OK);
    assert_true(H.keep_alive);
    assert_int_equal(H.conn_tokens, HTTP_CONN_UPGRADE);

    assert_int_equal(req("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n"
                         "Content-Length: 3\r\n\r\n"),
                     CAT_OK);
    assert_true(H.expect_continue);
    /* RFC 9110 10.1.1: ignored from an HTTP/1.0 client. */
    assert_int_equal(req("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"),
                     CAT_OK);
    assert_false(H.expect_continue);
    assert_int_equal(req("POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n"), CAT_OK);
    assert_false(H.expect_continue);
}

static void
test_find_and_hop_by_hop(void **state)
{
    (void)state;
    assert_int_equal(req("GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Foo, content-length, host, "
                         "keep-alive\r\nX-Foo: 1\r\nx-bar: 2\r\nContent-Length: 0\r\n"
                         "Keep-Alive: timeout=5\r\nte: trailers\r\nAccept: */*\r\n"
                         "Proxy-Authorization: Basic x\r\nProxy-Connection: X-Baz\r\n"
                         "X-Baz: 3\r\n\r\n"),
                     CAT_OK);
    const struct http_hdr *x = http_find(&H, "x-foo");
    assert_non_null(x);
    assert_true(view_is(x->value, "1"));
    assert_null(http_find(&H, "X-None"));
    assert_non_null(http_find(&H, "X-BAR"));

    struct {
        const char *name;
        bool hop;
    } want[] = {
        {"Host", false},
        {"Connection", true},
        {"X-Foo", true},
        {"x-bar", false},
        {"Content-Length", false},
        {"Keep-Alive", true},
        {"te", true},
        {"Accept", false},
        {"Proxy-Authorization", true},
        {"Proxy-Connection", true},
        {"X-Baz", true},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const struct http_hdr *hd = http_find(&H, want[i].name);
        assert_non_null(hd);
        if (http_is_hop_by_hop(&H, hd) != want[i].hop) {
            print_error("%s: hop-by-hop should be %d\n", want[i].name, want[i].hop);
            fail();
        }
    }
    struct http_str s = {"Transfer-ENCODING", 17};
    assert_true(http_str_eq(s, "transfer-encoding"));
    assert_false(http_str_eq(s, "transfer-encodin"));
    s.len = 0;
    assert_true(http_str_eq(s, ""));
    assert_string_equal(http_reason(502), "Bad Gateway");
    assert_string_equal(http_reason(431), "Request Header Fields Too Large");
    assert_string_equal(http_reason(299), "Unknown");
    assert_string_equal(http_reason(100), "Continue");
    assert_string_equal(http_reason(200), "OK");
    assert_string_equal(http_reason(505), "HTTP Version Not Supported");
    assert_string_equal(http_reason(-1), "Unknown");
}

/* --- incremental, pipelining, limits --------------------------------------- */

static void
test_byte_at_a_time(void **state)
{
    (void)state;
    const char *s = "\r\nPOST http://example.com/x HTTP/1.1\r\nContent-Length: 3\r\n"
                    "Connection: close\r\n\r\nabc";
    size_t head = strlen(s) - 3;
    for (size_t n = 0; n < head; n++) {
        int r = http_parse_request(s, n, &lim_default, &H);
        if (r != CAT_AGAIN) {
            print_error("prefix %zu: rc %d (%s)\n", n, r, H.err ? H.err : "-");
            fail();
        }
    }
    for (size_t n = head; n <= strlen(s); n++) {
        assert_int_equal(http_parse_request(s, n, &lim_default, &H), CAT_OK);
        assert_int_equal(H.head_len, head);
        assert_int_equal(H.content_length, 3);
        assert_false(H.keep_alive);
    }

    /* A bad head fails at the first byte that shows it, and stays failed. */
    const char *bad = "GET / HTTP/1.1\r\nHost: a\r\nX : y\r\n\r\n";
    size_t first_err = 0;
    for (size_t n = 0; n <= strlen(bad); n++) {
        int r = http_parse_request(bad, n, &lim_default, &H);
        if (first_err == 0 && r == CAT_ERR)
            first_err = n;
        if (first_err != 0) {
            assert_int_equal(r, CAT_ERR);
            assert_int_equal(H.err_status, 400);
        } else {
            assert_int_equal(r, CAT_AGAIN);
        }
    }
    assert_int_equal(first_err, strlen("GET / HTTP/1.1\r\nHost: a\r\nX : y\r\n"));

    /* Not HTTP at all (a TLS ClientHello): refused at once, not at the limit. */
    static const char hello[] = "\x16\x03\x01\x02\x00\x01";
    assert_int_equal(http_parse_request(hello, 1, &lim_default, &H), CAT_ERR);
    assert_int_equal(H.err_status, 400);
    assert_int_equal(http_parse_request("GE", 2, &lim_default, &H), CAT_AGAIN);
}

static void
test_pipelined(void **state)
{
    (void)state;
    const char *s = "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
                    "GET /b HTTP/1.1\r\nHost: b\r\n\r\n"
                    "GET /c HTTP/1.1\r\nHost: c\r\n\r\nGET /d HT";
    size_t len = strlen(s), off = 0;
    assert_int_equal(http_parse_request(s, len, &lim_default, &H), CAT_OK);
    assert_int_equal(H.head_len,
                     strlen("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"));
    off = H.head_len + H.content_length;
    assert_int_equal(http_parse_request(s + off, len - off, &lim_default, &H), CAT_OK);
    assert_true(view_is(H.target, "/b"));
    assert_int_equal(H.head_len, strlen("GET /b HTTP/1.1\r\nHost: b\r\n\r\n"));
    off += H.head_len;
    assert_int_equal(http_parse_request(s + off, len - off, &lim_default, &H), CAT_OK);
    assert_true(view_is(H.target, "/c"));
    off += H.head_len;
    assert_int_equal(http_parse_request(s + off, len - off, &lim_default, &H), CAT_AGAIN);
}

static void
test_limits(void **state)
{
    (void)state;
    char buf[1024];
    struct http_limits lim = {.max_head = 64, .max_headers = 3};

    /* Request line alone longer than the limit: 414, whether or not it ends. */
    memset(buf, 'a', sizeof(buf));
    memcpy(buf, "GET /", 5);
    assert_int_equal(http_parse_request(buf, 63, &lim, &H), CAT_AGAIN);
    assert_int_equal(http_parse_request(buf, 64, &lim, &H), CAT_ERR);
    assert_int_equal(H.err_status, 414);
    memcpy(buf + 100, " HTTP/1.1\r\nHost: a\r\n\r\n", 23);
    assert_int_equal(http_parse_request(buf, 122, &lim, &H), CAT_ERR);
    assert_int_equal(H.err_status, 414);

    /* Headers beyond the limit: 431. */
    const char *big =
        "GET / HTTP/1.1\r\nHost: a\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    assert_true(strlen(big) > 64);
    assert_int_equal(http_parse_request(big, 63, &lim, &H), CAT_AGAIN);
    assert_int_equal(http_parse_request(big, 64, &lim, &H), CAT_ERR);
    assert_int_equal(H.err_status, 431);
    assert_int_equal(http_parse_request(big, strlen(big), &lim, &H), CAT_ERR);
    assert_int_equal(H.err_status, 431);

    /* A head of exactly max_head bytes fits; one more does not. */
    char exact[65];
    snprintf(exact, sizeof(exact), "GET / HTTP/1.1\r\nHost: a\r\nX: %s\r\n\r\n",
             "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
    assert_int_equal(strlen(exact), 64);
    assert_int_equal(http_parse_request(exact, 64, &lim, &H), CAT_OK);
    assert_int_equal(H.head_len, 64);
    lim.max_head = 63;
    assert_int_equal(http_parse_request(exact, 64, &lim, &H), CAT_ERR);
    assert_int_equal(H.err_status, 431);
    lim.max_head = 8192;

    /* Header count: three fit, a fourth is refused as soon as it starts. */
    const char *three = "GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\n\r\n";
    assert_int_equal(http_parse_request(three, strlen(three), &lim, &H), CAT_OK);
    assert_int_equal(H.n_hdrs, 3);
    const char *four = "GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nC: 2\r\nD";
    assert_int_equal(http_parse_request(four, strlen(four), &lim, &H), CAT_ERR);
    assert_int_equal(H.err_status, 431);

    /* max_headers above the hard ceiling is clamped to HTTP_MAX_HEADERS. */
    static char many[8192];
    size_t n = (size_t)snprintf(many, sizeof(many), "GET / HTTP/1.1\r\n");
    for (int i = 0; i < HTTP_MAX_HEADERS + 1; i++)
        n += (size_t)snprintf(many + n, sizeof(many) - n, "H%d: v\r\n", i);
    n += (size_t)snprintf(many + n, sizeof(many) - n, "\r\n");
    lim.max_headers = 1000;
    assert_int_equal(http_parse_request(many, n, &lim, &H), CAT_ERR);
    assert_int_equal(H.err_status, 431);

    /* Responses over either limit are 502. */
    lim.max_head = 32;
    const char *r = "HTTP/1.1 200 OK\r\nServer: something-long-enough\r\n\r\n";
    assert_int_equal(http_parse_response(r, strlen(r), &lim, HTTP_M_GET, &H), CAT_ERR);
    assert_int_equal(H.err_status, 502);
    assert_int_equal(http_parse_response(r, 31, &lim, HTTP_M_GET, &H), CAT_AGAIN);
    lim.max_head = 8192;
    lim.max_headers = 1;
    const char *r2 = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n";
    assert_int_equal(http_parse_response(r2, strlen(r2), &lim, HTTP_M_GET, &H), CAT_ERR);
    assert_int_equal(H.err_status, 502);

    /* Limit 0: nothing can ever fit. */
    lim.max_head = 0;
    assert_int_equal(http_parse_request("", 0, &lim, &H), CAT_ERR);
}

/* --- responses ------------------------------------------------------------- */

static void
test_response_framing(void **state)
{
    (void)state;
    static const struct {
        const char *raw;
        enum http_method m;
        enum http_framing framing;
        uint64_t cl;
        bool keep_alive;
    } cases[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", HTTP_M_GET, HTTP_BODY_LENGTH, 5, true},
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", HTTP_M_HEAD, HTTP_BODY_NONE, 0, true},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_M_HEAD, HTTP_BODY_NONE, 0,
         true},
        {"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", HTTP_M_GET, HTTP_BODY_NONE, 0,
         true},
        {"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", HTTP_M_GET, HTTP_BODY_NONE, 0,
         true},
        {"HTTP/1.1 100 Continue\r\n\r\n", HTTP_M_POST, HTTP_BODY_NONE, 0, true},
        {"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
         HTTP_M_GET, HTTP_BODY_NONE, 0, true},
        {"HTTP/1.1 200 Connection established\r\n\r\n", HTTP_M_CONNECT, HTTP_BODY_NONE, 0, true},
        {"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", HTTP_M_CONNECT, HTTP_BODY_NONE, 0, true},
        {"HTTP/1.1 407 Proxy Auth\r\nContent-Length: 10\r\n\r\n", HTTP_M_CONNECT, HTTP_BODY_LENGTH,
         10, true},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP_M_GET, HTTP_BODY_CHUNKED, 0,
         true},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", HTTP_M_GET,
         HTTP_BODY_CHUNKED, 0, true},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", HTTP_M_GET,
         HTTP_BODY_CHUNKED, 0, false},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", HTTP_M_GET, HTTP_BODY_CLOSE, 0,
         false},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", HTTP_M_GET, HTTP_BODY_CLOSE,
         0, false},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: foo\r\nContent-Length: 5\r\n\r\n", HTTP_M_GET,
         HTTP_BODY_CLOSE, 0, false},
        {"HTTP/1.1 200 OK\r\n\r\n", HTTP_M_GET, HTTP_BODY_CLOSE, 0, false},
        {"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n", HTTP_M_GET,
         HTTP_BODY_LENGTH, 5, false},
        {"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n", HTTP_M_GET, HTTP_BODY_LENGTH, 5, false},
        {"HTTP/1.0 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n", HTTP_M_GET,
         HTTP_BODY_LENGTH, 5, true},
        {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", HTTP_M_GET, HTTP_BODY_CLOSE, 0,
         false},
        /* Proxy-Connection means nothing in a response. */
        {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nProxy-Connection: close\r\n\r\n", HTTP_M_GET,
         HTTP_BODY_LENGTH, 0, true},
        {"HTTP/1.1 200\r\nContent-Length: 1\r\n\r\n", HTTP_M_GET, HTTP_BODY_LENGTH, 1, true},
        {"HTTP/1.1 599 \r\nContent-Length: 1\r\n\r\n", HTTP_M_GET, HTTP_BODY_LENGTH, 1, true},
        {"HTTP/1.1 404 Not \x80 Found\t!\r\nContent-Length: 2, 2\r\n\r\n", HTTP_M_GET,
         HTTP_BODY_LENGTH, 2, true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int r = resp(cases[i].raw, cases[i].m);
        if (r != CAT_OK || H.framing != cases[i].framing || H.content_length != cases[i].cl ||
            H.keep_alive != cases[i].keep_alive || H.head_len != strlen(cases[i].raw)) {
            print_error("case %zu: rc %d (%s) framing %d cl %llu ka %d\n", i, r,
                        H.err ? H.err : "-", H.framing, (unsigned long long)H.content_length,
                        H.keep_alive);
            fail();
        }
    }
    assert_int_equal(resp("HTTP/1.1 404 Not Found\r\n\r\n", HTTP_M_GET), CAT_OK);
    assert_int_equal(H.status, 404);
    assert_true(view_is(H.reason, "Not Found"));
    assert_int_equal(H.version, 11);
    assert_int_equal(resp("HTTP/1.1 200\r\n\r\n", HTTP_M_GET), CAT_OK);
    assert_int_equal(H.reason.len, 0);
}

static void
test_response_rejects(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/2.0 200 OK\r\n\r\n",
        "HTTP/1.2 200 OK\r\n\r\n",
        "http/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 099 Odd\r\n\r\n",
        "HTTP/1.1 600 Odd\r\n\r\n",
        "HTTP/1.1 2x0 OK\r\n\r\n",
        "HTTP/1.1  200 OK\r\n\r\n",
        "HTTP/1.1 200 O\x01K\r\n\r\n",
        "HTTP/1.1\r\n\r\n",
        "\r\nHTTP/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n X: y\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked;x=1\r\n\r\n",
        "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nConnection: a b\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: \x7f\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int r = resp(cases[i], HTTP_M_GET);
        if (r != CAT_ERR || H.err_status != 502 || H.err == NULL) {
            print_error("case %zu: \"%s\": rc %d status %d\n", i, cases[i], r, H.err_status);
            fail();
        }
    }
    /* Not a status line at all: refused from the first byte that shows it. */
    assert_int_equal(http_parse_response("<html>", 1, &lim_default, HTTP_M_GET, &H2), CAT_ERR);
    assert_int_equal(H2.err_status, 502);
    assert_int_equal(http_parse_response("HTTP", 4, &lim_default, HTTP_M_GET, &H2), CAT_AGAIN);
    assert_int_equal(http_parse_response("HTTP/", 5, &lim_default, HTTP_M_GET, &H2), CAT_AGAIN);
    const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    for (size_t n = 0; n < strlen(s); n++)
        assert_int_equal(http_parse_response(s, n, &lim_default, HTTP_M_GET, &H2), CAT_AGAIN);
    assert_int_equal(http_parse_response(s, strlen(s), &lim_default, HTTP_M_GET, &H2), CAT_OK);
}

/* --- authorities ------------------------------------------------------------ */

static void
test_authority(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *host;
        unsigned port;
    } good[] = {
        {"example.com", "example.com", 0},
        {"Example.COM:8080", "Example.COM", 8080},
        {"a", "a", 0},
        {"x_y-z.example", "x_y-z.example", 0},
        {"1.2.3.4:80", "1.2.3.4", 80},
        {"0.0.0.0", "0.0.0.0", 0},
        {"255.255.255.255:65535", "255.255.255.255", 65535},
        {"[::1]:443", "::1", 443},
        {"[::]", "::", 0},
        {"[1:2:3:4:5:6:7:8]", "1:2:3:4:5:6:7:8", 0},
        {"[1:2:3:4:5:6:7::]", "1:2:3:4:5:6:7::", 0},
        {"[::2:3:4:5:6:7:8]", "::2:3:4:5:6:7:8", 0},
        {"[fe80::abcd:EF01]", "fe80::abcd:EF01", 0},
        {"[::ffff:1.2.3.4]:1", "::ffff:1.2.3.4", 1},
        {"[1:2:3:4:5:6:1.2.3.4]", "1:2:3:4:5:6:1.2.3.4", 0},
        {"host.123x", "host.123x", 0},
        {"example.com:00080", "example.com", 80},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct http_str in = {good[i].in, strlen(good[i].in)}, host = {NULL, 0};
        unsigned port = 12345;
        if (http_parse_authority(in, &host, &port) != CAT_OK || !view_is(host, good[i].host) ||
            port != good[i].port) {
            print_error("authority \"%s\" not split as expected\n", good[i].in);
            fail();
        }
    }

    char label63[80], label64[80], long254[300], long253[300];
    memset(label63, 'a', 63);
    strcpy(label63 + 63, ".com");
    memset(label64, 'a', 64);
    strcpy(label64 + 64, ".com");
    /* 253 = four labels of 62, each with its dot, and a 1-letter label. */
    size_t n = 0;
    for (int i = 0; i < 4; i++) {
        memset(long253 + n, 'b', 62);
        n += 62;
        long253[n++] = '.';
    }
    memcpy(long253 + n, "c", 2);
    assert_int_equal(strlen(long253), 253);
    memcpy(long254, long253, 253);
    memcpy(long254 + 253, "e", 2);

    const char *const bad[] = {
        "",
        ":80",
        "a..b",
        ".a",
        "a.",
        "a b",
        "a@b",
        "u:p@b",
        "a/b",
        "a%2eb",
        "a:",
        "a:0",
        "a:65536",
        "a:123456",
        "a:8x",
        "a:+80",
        "a:-1",
        "a:80:81",
        label64,
        long254,
        "127.1",
        "0x7f.0.0.1",
        "0x7f000001",
        "2130706433",
        "01.2.3.4",
        "1.2.3.04",
        "256.1.1.1",
        "1.2.3.4.5",
        "1.2.3",
        "example.123",
        "example.0x1f",
        "[::1",
        "[::1]x",
        "[::1]:",
        "::1",
        "[]",
        "[:1]",
        "[1:]",
        "[1::2::3]",
        "[1:2:3:4:5:6:7:8:9]",
        "[1:2:3:4:5:6:7]",
        "[12345::]",
        "[fe80::1%25eth0]",
        "[v1.abc]",
        "[::1.2.3]",
        "[1:2:3:4:5:6:7:1.2.3.4]",
        "[::1.2.3.4:5]",
        "[g::1]",
        "[1:::2]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct http_str in = {bad[i], strlen(bad[i])}, host;
        unsigned port;
        if (http_parse_authority(in, &host, &port) != CAT_ERR) {
            print_error("authority \"%s\" accepted\n", bad[i]);
            fail();
        }
    }
    struct http_str host;
    unsigned port;
    struct http_str in = {label63, strlen(label63)};
    assert_int_equal(http_parse_authority(in, &host, &port), CAT_OK);
    in = (struct http_str){long253, 253};
    assert_int_equal(http_parse_authority(in, &host, &port), CAT_OK);
}

/* --- chunked ---------------------------------------------------------------- */

static const char chunked_sample[] = "5\r\nhello\r\n"
                                     "1A;name=value;q=\"a b\"\r\nabcdefghijklmnopqrstuvwxyz\r\n"
                                     "3 ; ext\r\n\r\n\n\r\n"
                                     "0000000000000001\r\nX\r\n"
                                     "0;last\r\n"
                                     "Trailer-One: v1\r\n"
                                     "Trailer-Two:\r\n"
                                     "\r\n";
static const char next_msg[] = "GET /next HTTP/1.1\r\n";

/* Scans buf cut at the given points; returns total consumed or CAT_ERR. */
static long
scan_split(struct http_chunked *ch, const uint8_t *p, size_t len, const size_t *cuts, size_t ncuts)
{
    http_chunked_init(ch);
    size_t off = 0;
    long total = 0;
    for (size_t k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : len;
        long r = http_chunked_scan(ch, p + off, end - off);
        if (r < 0)
            return r;
        assert_true((size_t)r <= end - off);
        total += r;
        if (http_chunked_done(ch))
            return total;
        assert_int_equal((size_t)r, end - off);
        off = end;
    }
    return total;
}

static void
test_chunked_whole_and_split(void **state)
{
    (void)state;
    uint8_t buf[512];
    size_t body = strlen(chunked_sample);
    memcpy(buf, chunked_sample, body);
    memcpy(buf + body, next_msg, strlen(next_msg));
    size_t len = body + strlen(next_msg);
    struct http_chunked ch;

    assert_int_equal(scan_split(&ch, buf, len, NULL, 0), (long)body);
    assert_true(http_chunked_done(&ch));
    assert_null(ch.err);
    /* Once done, nothing more belongs to the message. */
    assert_int_equal(http_chunked_scan(&ch, buf + body, len - body), 0);

    /* Every single cut point, then every pair, gives the same answer. */
    for (size_t a = 0; a <= len; a++) {
        size_t cut[1] = {a};
        assert_int_equal(scan_split(&ch, buf, len, cut, 1), (long)body);
        assert_true(http_chunked_done(&ch));
        for (size_t b = a; b <= len; b++) {
            size_t cuts[2] = {a, b};
            assert_int_equal(scan_split(&ch, buf, len, cuts, 2), (long)body);
        }
    }
    /* Byte by byte. */
    http_chunked_init(&ch);
    size_t total = 0;
    for (size_t i = 0; i < len && !http_chunked_done(&ch); i++) {
        long r = http_chunked_scan(&ch, buf + i, 1);
        assert_true(r == 0 || r == 1);
        total += (size_t)r;
    }
    assert_int_equal(total, body);
    assert_true(http_chunked_done(&ch));

    /* Incomplete: everything is consumed, not done. */
    for (size_t n = 0; n < body; n++) {
        assert_int_equal(scan_split(&ch, buf, n, NULL, 0), (long)n);
        assert_false(http_chunked_done(&ch));
    }

    /* Minimal body and an empty call. */
    http_chunked_init(&ch);
    assert_int_equal(http_chunked_scan(&ch, NULL, 0), 0);
    assert_int_equal(http_chunked_scan(&ch, (const uint8_t *)"0\r\n\r\nX", 6), 5);
    assert_true(http_chunked_done(&ch));
}

static void
test_chunked_state_and_sizes(void **state)
{
    (void)state;
    struct http_chunked ch;
    http_chunked_init(&ch);
    assert_int_equal(http_chunked_scan(&ch, (const uint8_t *)"10\r\nabc", 7), 7);
    assert_int_equal(ch.st, HTTP_CH_DATA);
    assert_true(ch.remaining == 13);

    /* 2^62 is the largest size accepted; beyond it and 17 digits fail. */
    http_chunked_init(&ch);
    assert_int_equal(http_chunked_scan(&ch, (const uint8_t *)"4000000000000000\r\n", 18), 18);
    assert_true(ch.remaining == (UINT64_C(1) << 62));
    static const char *const bad_sizes[] = {
        "4000000000000001\r\n",  "ffffffffffffffff\r\n",          "10000000000000000\r\n",
        "00000000000000001\r\n", "fffffffffffffffffffffffff\r\n",
    };
    for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
        http_chunked_init(&ch);
        assert_int_equal(
            http_chunked_scan(&ch, (const uint8_t *)bad_sizes[i], strlen(bad_sizes[i])), CAT_ERR);
        assert_non_null(ch.err);
    }
}

static void
test_chunked_rejects(void **state)
{
    (void)state;
    char ext[6000];
    memcpy(ext, "1;", 2);
    memset(ext + 2, 'e', sizeof(ext) - 2);
    memcpy(ext + sizeof(ext) - 3, "\r\n", 3);
    char trailers[20000];
    size_t n = (size_t)snprintf(trailers, sizeof(trailers), "0\r\n");
    while (n < sizeof(trailers) - 100)
        n += (size_t)snprintf(trailers + n, sizeof(trailers) - n, "X-Trailer-Field: %s\r\n",
                              "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv");
    snprintf(trailers + n, sizeof(trailers) - n, "\r\n");
    char long_trailer[5000];
    memcpy(long_trailer, "0\r\nX: ", 6);
    memset(long_trailer + 6, 'v', sizeof(long_trailer) - 6);
    memcpy(long_trailer + sizeof(long_trailer) - 5, "\r\n\r\n", 5);

    const char *const bad[] = {
        "\r\n",
        "g\r\n",
        "-5\r\n",
        "+5\r\n",
        "0x5\r\n",
        " 5\r\n",
        "5 \r\n",
        "5 5\r\n",
        "5\n",
        "5\r\r\n",
        "5\rhello",
        ";5\r\n",
        "5;a\x01\r\n",
        "5;a\nb\r\n",
        "5;a\x7f\r\n",
        "5\r\nhelloX\r\n",
        "5\r\nhello\n",
        "5\r\nhello\r\r",
        "5\r\nhello\r\n\r\n",
        "0\r\n \r\n",
        "0\r\nX: y\r\n z\r\n\r\n",
        "0\r\n: y\r\n\r\n",
        "0\r\nX y\r\n\r\n",
        "0\r\nXy\r\n\r\n",
        "0\r\nX : y\r\n\r\n",
        "0\r\nX: y\x01\r\n\r\n",
        "0\r\nX: y\n\r\n",
        "0\r\nX: y\r\r\n",
        "0\r\n\r\r",
        "0\r\n\n",
        "0\r\n\rX",
        ext,
        trailers,
        long_trailer,
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct http_chunked ch;
        http_chunked_init(&ch);
        long r = http_chunked_scan(&ch, (const uint8_t *)bad[i], strlen(bad[i]));
        if (r != CAT_ERR || ch.err == NULL) {
            print_error("chunked case %zu accepted (rc %ld, state %d)\n", i, r, ch.st);
            fail();
        }
        /* The error sticks. */
        assert_int_equal(http_chunked_scan(&ch, (const uint8_t *)"0\r\n\r\n", 5), CAT_ERR);
        /* Byte by byte fails too, at some byte. */
        http_chunked_init(&ch);
        bool failed = false;
        for (size_t k = 0; k < strlen(bad[i]) && !failed; k++)
            failed = http_chunked_scan(&ch, (const uint8_t *)bad[i] + k, 1) == CAT_ERR;
        assert_true(failed);
    }

    /* Within bounds: the same shapes a little smaller pass. */
    struct http_chunked ch;
    http_chunked_init(&ch);
    const char *ok = "1 \t;x=\"y\"\r\na\r\n0\r\nA:\r\nB: c d\r\n\r\n";
    assert_int_equal(http_chunked_scan(&ch, (const uint8_t *)ok, strlen(ok)), (long)strlen(ok));
    assert_true(http_chunked_done(&ch));
}

/* Rules that another check would also catch must still say what was wrong. */
static void
test_error_texts(void **state)
{
    (void)state;
    assert_int_equal(req("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n"), CAT_ERR);
    assert_non_null(strstr(H.err, "bare CR"));
    assert_int_equal(req("GET / HTTP/1.1\r\nHost: a\r\n b\r\n\r\n"), CAT_ERR);
    assert_non_null(strstr(H.err, "obs-fold"));
    assert_int_equal(req("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), CAT_ERR);
    assert_non_null(strstr(H.err, "whitespace before"));
    assert_int_equal(req("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n"),
                     CAT_ERR);
    assert_non_null(strstr(H.err, "both"));
    assert_int_equal(req("GET http://u@a/ HTTP/1.1\r\n\r\n"), CAT_OK);
    struct http_url u;
    assert_int_equal(http_parse_target(&H, &u), CAT_ERR);
    assert_non_null(strstr(H.err, "userinfo"));

    struct http_chunked ch;
    http_chunked_init(&ch);
    assert_int_equal(http_chunked_scan(&ch, (const uint8_t *)"0\r\n b\r\n", 7), CAT_ERR);
    assert_non_null(strstr(ch.err, "obs-fold"));
    /* Whitespace alone can make a size line too long. */
    static uint8_t ws[5000];
    memset(ws, ' ', sizeof(ws));
    ws[0] = '1';
    http_chunked_init(&ch);
    assert_int_equal(http_chunked_scan(&ch, ws, sizeof(ws)), CAT_ERR);
    assert_non_null(strstr(ch.err, "too long"));
    http_chunked_init(&ch);
    assert_int_equal(http_chunked_scan(&ch, ws, 4096), 4096);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_origin_form),
        cmocka_unit_test(test_post_length_and_chunked),
        cmocka_unit_test(test_methods_and_versions),
        cmocka_unit_test(test_connect),
        cmocka_unit_test(test_absolute_form),
        cmocka_unit_test(test_request_accepts),
        cmocka_unit_test(test_request_line_rejects),
        cmocka_unit_test(test_header_rejects),
        cmocka_unit_test(test_host_rules),
        cmocka_unit_test(test_framing_rejects),
        cmocka_unit_test(test_connection_tokens),
        cmocka_unit_test(test_find_and_hop_by_hop),
        cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_pipelined),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_response_framing),
        cmocka_unit_test(test_response_rejects),
        cmocka_unit_test(test_authority),
        cmocka_unit_test(test_chunked_whole_and_split),
        cmocka_unit_test(test_chunked_state_and_sizes),
        cmocka_unit_test(test_chunked_rejects),
        cmocka_unit_test(test_error_texts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
