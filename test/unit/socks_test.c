/*
 * Unit tests for core/socks.c: messages captured from curl on loopback,
 * every message at every split and with pipelined bytes behind it, each
 * malformed case with its log text and REP, the method choice table, exact
 * reply bytes, maximum-length credentials and host name validation. Every
 * parser call gets an exact-size heap copy so ASan catches an overread.
 */
#include "core/socks.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cmocka.h>

/*
 * Captured with a python3 listener on 127.0.0.1 (in a network namespace of
 * its own, so nothing could reach a resolver) answering 05 00 / 05 02, and
 *   curl 7.88.1 --socks5-hostname 127.0.0.1:PORT http://example.test/
 *   curl 7.88.1 --socks5 127.0.0.1:PORT --resolve example.test:80:127.0.0.1 http://example.test/
 *   curl 7.88.1 --socks5-hostname user:pass@127.0.0.1:PORT http://example.test/
 *   curl 7.88.1 --socks5-hostname 'user:@127.0.0.1:PORT' http://example.test/
 *   curl 7.88.1 --socks5-hostname 127.0.0.1:PORT 'http://[::1]:8080/'
 *   curl 7.88.1 --socks5 127.0.0.1:PORT --resolve 'example.test:443:[::1]' https://example.test/
 *   curl 7.88.1 --socks4 / --socks4a 127.0.0.1:PORT http://example.test/
 * Also the seeds test/fuzz/corpus/socks/curl-*.
 */
/* clang-format off */
static const uint8_t curl_greeting[] = {0x05, 0x02, 0x00, 0x01};
static const uint8_t curl_greeting_auth[] = {0x05, 0x03, 0x00, 0x01, 0x02};
static const uint8_t curl_auth[] = {0x01, 0x04, 'u', 's', 'e', 'r', 0x04, 'p', 'a', 's', 's'};
static const uint8_t curl_auth_nopass[] = {0x01, 0x04, 'u', 's', 'e', 'r', 0x00};
static const uint8_t curl_req_name[] = {
    0x05, 0x01, 0x00, 0x03, 0x0c, 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 't', 'e', 's', 't',
    0x00, 0x50,
};
static const uint8_t curl_req_v4[] = {0x05, 0x01, 0x00, 0x01, 0x7f, 0x00, 0x00, 0x01, 0x00, 0x50};
static const uint8_t curl_req_v6[] = {
    0x05, 0x01, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x1f, 0x90,
};
static const uint8_t curl_req_v6_443[] = {
    0x05, 0x01, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x01, 0xbb,
};
static const uint8_t curl_socks4[] = {0x04, 0x01, 0x00, 0x50, 0x7f, 0x00, 0x00, 0x01, 0x00};
static const uint8_t curl_socks4a[] = {
    0x04, 0x01, 0x00, 0x50, 0x00, 0x00, 0x00, 0x01, 0x00,
    'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 't', 'e', 's', 't', 0x00,
};
/* clang-format on */
static const char curl_payload[] = "GET / HTTP/1.1\r\nHost: example.test\r\n"
                                   "User-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";

enum kind { K_GREETING, K_AUTH, K_REQUEST };

/* Everything a parse produced, so two parses can be compared field by field. */
struct result {
    int rc;
    struct socks_greeting g;
    struct socks_auth a;
    struct socks_req r;
};

static size_t
res_used(const struct result *res, enum kind k)
{
    return k == K_GREETING ? res->g.used : k == K_AUTH ? res->a.used : res->r.used;
}

static const char *
res_err(const struct result *res, enum kind k)
{
    return k == K_GREETING ? res->g.err : k == K_AUTH ? res->a.err : res->r.err;
}

/* Parses an exact-size heap copy of buf[0..len). */
static void
parse(enum kind k, const uint8_t *buf, size_t len, struct result *res)
{
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len > 0)
        memcpy(copy, buf, len);
    memset(res, 0xa5, sizeof(*res)); /* the parser must not rely on a zeroed struct */
    switch (k) {
    case K_GREETING:
        res->rc = socks_parse_greeting(copy, len, &res->g);
        break;
    case K_AUTH:
        res->rc = socks_parse_auth(copy, len, &res->a);
        break;
    case K_REQUEST:
        res->rc = socks_parse_request(copy, len, &res->r);
        break;
    }
    free(copy);
}

static void
assert_same(enum kind k, const struct result *x, const struct result *y)
{
    assert_int_equal(x->rc, y->rc);
    if (x->rc == CAT_ERR) {
        assert_string_equal(res_err(x, k), res_err(y, k));
        if (k == K_REQUEST)
            assert_int_equal(x->r.rep, y->r.rep);
        return;
    }
    if (x->rc != CAT_OK)
        return;
    switch (k) {
    case K_GREETING:
        assert_int_equal(x->g.n_methods, y->g.n_methods);
        assert_memory_equal(x->g.offered, y->g.offered, sizeof(x->g.offered));
        assert_int_equal(x->g.used, y->g.used);
        break;
    case K_AUTH:
        assert_string_equal(x->a.user, y->a.user);
        assert_int_equal(x->a.user_len, y->a.user_len);
        assert_int_equal(x->a.pass_len, y->a.pass_len);
        assert_memory_equal(x->a.pass, y->a.pass, x->a.pass_len + 1);
        assert_int_equal(x->a.used, y->a.used);
        break;
    case K_REQUEST:
        assert_int_equal(x->r.cmd, y->r.cmd);
        assert_int_equal(x->r.atyp, y->r.atyp);
        assert_string_equal(x->r.host, y->r.host);
        assert_int_equal(x->r.host_len, y->r.host_len);
        assert_int_equal(x->r.port, y->r.port);
        assert_int_equal(x->r.has_addr, y->r.has_addr);
        assert_int_equal(x->r.name_is_ip, y->r.name_is_ip);
        assert_memory_equal(&x->r.addr, &y->r.addr, sizeof(x->r.addr));
        assert_int_equal(x->r.used, y->r.used);
        break;
    }
}

/*
 * A complete message: every proper prefix is CAT_AGAIN; the message alone
 * and the message with bytes behind it give the same result, and `used` is
 * exactly the message.
 */
static void
check_message(enum kind k, const uint8_t *msg, size_t n, struct result *out)
{
    struct result whole, tmp;
    parse(k, msg, n, &whole);
    assert_int_equal(whole.rc, CAT_OK);
    assert_int_equal(res_used(&whole, k), n);
    for (size_t cut = 0; cut < n; cut++) {
        parse(k, msg, cut, &tmp);
        if (tmp.rc != CAT_AGAIN)
            fail_msg("prefix %zu of %zu: rc %d, want CAT_AGAIN", cut, n, tmp.rc);
    }
    /* Pipelined: the next message (a greeting, as good as anything) and payload. */
    uint8_t more[1024];
    assert_true(n + 64 <= sizeof(more));
    memcpy(more, msg, n);
    static const uint8_t tail[] = {0x05, 0x01, 0x00, 0x01, 0x16, 0x03, 0x01, 0x02, 0x00, 0x01};
    memcpy(more + n, tail, sizeof(tail));
    for (size_t extra = 1; extra <= sizeof(tail); extra++) {
        parse(k, more, n + extra, &tmp);
        assert_same(k, &whole, &tmp);
    }
    if (out != NULL)
        *out = whole;
}

/* A malformed message: the whole gives err and rep; every prefix is CAT_AGAIN or the same. */
static void
check_error(enum kind k, const uint8_t *msg, size_t n, const char *err, int rep)
{
    struct result whole, tmp;
    parse(k, msg, n, &whole);
    if (whole.rc != CAT_ERR)
        fail_msg("want CAT_ERR \"%s\", got rc %d", err, whole.rc);
    assert_string_equal(res_err(&whole, k), err);
    if (k == K_REQUEST)
        assert_int_equal(whole.r.rep, rep);
    bool seen = false;
    for (size_t cut = 0; cut <= n; cut++) {
        parse(k, msg, cut, &tmp);
        if (tmp.rc == CAT_AGAIN) {
            assert_false(seen); /* monotone: no AGAIN after the error showed */
            continue;
        }
        seen = true;
        assert_same(k, &whole, &tmp);
    }
}

static void
test_curl_greetings(void **state)
{
    (void)state;
    struct result res;
    check_message(K_GREETING, curl_greeting, sizeof(curl_greeting), &res);
    assert_int_equal(res.g.n_methods, 2);
    assert_true(socks_offers(&res.g, SOCKS_M_NOAUTH));
    assert_true(socks_offers(&res.g, SOCKS_M_GSSAPI));
    assert_false(socks_offers(&res.g, SOCKS_M_USERPASS));
    assert_int_equal(socks_choose_method(&res.g, false), SOCKS_M_NOAUTH);
    assert_int_equal(socks_choose_method(&res.g, true), SOCKS_M_NONE);

    check_message(K_GREETING, curl_greeting_auth, sizeof(curl_greeting_auth), &res);
    assert_int_equal(res.g.n_methods, 3);
    assert_int_equal(socks_choose_method(&res.g, false), SOCKS_M_NOAUTH);
    assert_int_equal(socks_choose_method(&res.g, true), SOCKS_M_USERPASS);
}

static void
test_curl_auth(void **state)
{
    (void)state;
    struct result res;
    check_message(K_AUTH, curl_auth, sizeof(curl_auth), &res);
    assert_string_equal(res.a.user, "user");
    assert_int_equal(res.a.user_len, 4);
    assert_string_equal(res.a.pass, "pass");
    assert_int_equal(res.a.pass_len, 4);
    assert_null(res.a.err);

    /* curl sends PLEN 0 for "user:@": an empty password, not a framing error. */
    check_message(K_AUTH, curl_auth_nopass, sizeof(curl_auth_nopass), &res);
    assert_string_equal(res.a.user, "user");
    assert_int_equal(res.a.pass_len, 0);
    assert_string_equal(res.a.pass, "");
}

static void
assert_v4(const struct socks_req *r, const char *ip, uint16_t port)
{
    assert_true(r->has_addr);
    assert_int_equal(r->addr.ss_family, AF_INET);
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&r->addr;
    struct in_addr want;
    assert_int_equal(inet_pton(AF_INET, ip, &want), 1);
    assert_memory_equal(&sin->sin_addr, &want, 4);
    assert_int_equal(ntohs(sin->sin_port), port);
    assert_string_equal(r->host, ip);
    assert_int_equal(r->host_len, strlen(ip));
    assert_int_equal(r->port, port);
}

static void
assert_v6(const struct socks_req *r, const char *ip, uint16_t port)
{
    assert_true(r->has_addr);
    assert_int_equal(r->addr.ss_family, AF_INET6);
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&r->addr;
    struct in6_addr want;
    assert_int_equal(inet_pton(AF_INET6, ip, &want), 1);
    assert_memory_equal(&sin6->sin6_addr, &want, 16);
    assert_int_equal(ntohs(sin6->sin6_port), port);
    assert_string_equal(r->host, ip);
    assert_int_equal(r->port, port);
}

static void
test_curl_requests(void **state)
{
    (void)state;
    struct result res;
    check_message(K_REQUEST, curl_req_name, sizeof(curl_req_name), &res);
    assert_int_equal(res.r.cmd, SOCKS_CMD_CONNECT);
    assert_int_equal(res.r.atyp, SOCKS_ATYP_DOMAIN);
    assert_string_equal(res.r.host, "example.test");
    assert_int_equal(res.r.host_len, 12);
    assert_int_equal(res.r.port, 80);
    assert_false(res.r.has_addr);
    assert_false(res.r.name_is_ip);
    assert_int_equal(res.r.addr.ss_family, AF_UNSPEC);
    assert_null(res.r.err);

    check_message(K_REQUEST, curl_req_v4, sizeof(curl_req_v4), &res);
    assert_int_equal(res.r.atyp, SOCKS_ATYP_IPV4);
    assert_false(res.r.name_is_ip);
    assert_v4(&res.r, "127.0.0.1", 80);

    check_message(K_REQUEST, curl_req_v6, sizeof(curl_req_v6), &res);
    assert_int_equal(res.r.atyp, SOCKS_ATYP_IPV6);
    assert_v6(&res.r, "::1", 8080);

    check_message(K_REQUEST, curl_req_v6_443, sizeof(curl_req_v6_443), &res);
    assert_v6(&res.r, "::1", 443);
}

/* The whole curl exchange from one buffer, each step starting where the last one's used ends. */
static void
test_chain(void **state)
{
    (void)state;
    uint8_t buf[256];
    size_t n = 0;
    memcpy(buf + n, curl_greeting_auth, sizeof(curl_greeting_auth));
    n += sizeof(curl_greeting_auth);
    memcpy(buf + n, curl_auth, sizeof(curl_auth));
    n += sizeof(curl_auth);
    memcpy(buf + n, curl_req_name, sizeof(curl_req_name));
    n += sizeof(curl_req_name);
    memcpy(buf + n, curl_payload, strlen(curl_payload));
    n += strlen(curl_payload);

    struct socks_greeting g;
    struct socks_auth a;
    struct socks_req r;
    size_t off = 0;
    assert_int_equal(socks_parse_greeting(buf, n, &g), CAT_OK);
    off += g.used;
    assert_int_equal(off, sizeof(curl_greeting_auth));
    assert_int_equal(socks_parse_auth(buf + off, n - off, &a), CAT_OK);
    off += a.used;
    assert_string_equal(a.user, "user");
    assert_int_equal(socks_parse_request(buf + off, n - off, &r), CAT_OK);
    off += r.used;
    assert_string_equal(r.host, "example.test");
    assert_int_equal(n - off, strlen(curl_payload));
    assert_memory_equal(buf + off, curl_payload, n - off);
}

static void
test_greeting_errors(void **state)
{
    (void)state;
    check_error(K_GREETING, curl_socks4, sizeof(curl_socks4),
                "SOCKS greeting: version 4 is not SOCKS5 (a SOCKS4/4a client)", 0);
    check_error(K_GREETING, curl_socks4a, sizeof(curl_socks4a),
                "SOCKS greeting: version 4 is not SOCKS5 (a SOCKS4/4a client)", 0);
    static const uint8_t tls[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01};
    check_error(K_GREETING, tls, sizeof(tls),
                "SOCKS greeting: a TLS record, not SOCKS5 (a TLS client on the SOCKS port)", 0);
    static const char http[] = "CONNECT example.test:443 HTTP/1.1\r\n\r\n";
    check_error(K_GREETING, (const uint8_t *)http, strlen(http),
                "SOCKS greeting: text, not SOCKS5 (an HTTP client on the SOCKS port)", 0);
    static const uint8_t v6[] = {0x06, 0x01, 0x00};
    check_error(K_GREETING, v6, sizeof(v6), "SOCKS greeting: version is not 5", 0);
    static const uint8_t v0[] = {0x00};
    check_error(K_GREETING, v0, sizeof(v0), "SOCKS greeting: version is not 5", 0);
    static const uint8_t none[] = {0x05, 0x00, 0x05, 0x01, 0x00};
    check_error(K_GREETING, none, sizeof(none), "SOCKS greeting: no methods offered (NMETHODS 0)",
                0);
}

static void
test_auth_errors(void **state)
{
    (void)state;
    static const uint8_t v5[] = {0x05, 0x04, 'u', 's', 'e', 'r', 0x04, 'p', 'a', 's', 's'};
    check_error(K_AUTH, v5, sizeof(v5), "SOCKS auth: version 5 where RFC 1929 wants 1", 0);
    static const uint8_t v2[] = {0x02, 0x01, 'u', 0x01, 'p'};
    check_error(K_AUTH, v2, sizeof(v2), "SOCKS auth: version is not 1", 0);
    static const uint8_t empty_user[] = {0x01, 0x00, 0x04, 'p', 'a', 's', 's'};
    check_error(K_AUTH, empty_user, sizeof(empty_user), "SOCKS auth: empty user name (ULEN 0)", 0);
    static const uint8_t nul_user[] = {0x01, 0x03, 'a', 0x00, 'b', 0x01, 'p'};
    check_error(K_AUTH, nul_user, sizeof(nul_user), "SOCKS auth: NUL byte in the user name", 0);
    static const uint8_t nul_pass[] = {0x01, 0x01, 'u', 0x03, 'p', 0x00, 'q'};
    check_error(K_AUTH, nul_pass, sizeof(nul_pass), "SOCKS auth: NUL byte in the password", 0);
    /* A length claiming more than is there stays incomplete: never read past len. */
    static const uint8_t short_pass[] = {0x01, 0x01, 'u', 0xff, 'p', 'q'};
    struct result res;
    parse(K_AUTH, short_pass, sizeof(short_pass), &res);
    assert_int_equal(res.rc, CAT_AGAIN);
    static const uint8_t short_user[] = {0x01, 0xff, 'u', 's'};
    parse(K_AUTH, short_user, sizeof(short_user), &res);
    assert_int_equal(res.rc, CAT_AGAIN);
}

static void
test_request_errors(void **state)
{
    (void)state;
    static const uint8_t v4[] = {0x04, 0x01, 0x00, 0x01, 127, 0, 0, 1, 0, 80};
    check_error(K_REQUEST, v4, sizeof(v4), "SOCKS request: version is not 5",
                SOCKS_REP_GENERAL_FAILURE);
    static const uint8_t cmd0[] = {0x05, 0x00, 0x00, 0x01, 127, 0, 0, 1, 0, 80};
    check_error(K_REQUEST, cmd0, sizeof(cmd0), "SOCKS request: unknown command",
                SOCKS_REP_CMD_UNSUPPORTED);
    static const uint8_t cmd4[] = {0x05, 0x04, 0x00, 0x01, 127, 0, 0, 1, 0, 80};
    check_error(K_REQUEST, cmd4, sizeof(cmd4), "SOCKS request: unknown command",
                SOCKS_REP_CMD_UNSUPPORTED);
    static const uint8_t cmdff[] = {0x05, 0xff};
    check_error(K_REQUEST, cmdff, sizeof(cmdff), "SOCKS request: unknown command",
                SOCKS_REP_CMD_UNSUPPORTED);
    static const uint8_t rsv[] = {0x05, 0x01, 0x01, 0x01, 127, 0, 0, 1, 0, 80};
    check_error(K_REQUEST, rsv, sizeof(rsv), "SOCKS request: reserved byte is not 0",
                SOCKS_REP_GENERAL_FAILURE);
    static const uint8_t atyp0[] = {0x05, 0x01, 0x00, 0x00, 127, 0, 0, 1, 0, 80};
    check_error(K_REQUEST, atyp0, sizeof(atyp0), "SOCKS request: unknown address type",
                SOCKS_REP_ATYP_UNSUPPORTED);
    static const uint8_t atyp2[] = {0x05, 0x01, 0x00, 0x02, 127, 0, 0, 1, 0, 80};
    check_error(K_REQUEST, atyp2, sizeof(atyp2), "SOCKS request: unknown address type",
                SOCKS_REP_ATYP_UNSUPPORTED);
    static const uint8_t atyp5[] = {0x05, 0x01, 0x00, 0x05};
    check_error(K_REQUEST, atyp5, sizeof(atyp5), "SOCKS request: unknown address type",
                SOCKS_REP_ATYP_UNSUPPORTED);
    static const uint8_t empty_name[] = {0x05, 0x01, 0x00, 0x03, 0x00, 0x00, 0x50};
    check_error(K_REQUEST, empty_name, sizeof(empty_name), "SOCKS request: empty host name",
                SOCKS_REP_GENERAL_FAILURE);
    static const uint8_t port0[] = {0x05, 0x01, 0x00, 0x01, 127, 0, 0, 1, 0, 0};
    check_error(K_REQUEST, port0, sizeof(port0), "SOCKS request: CONNECT to port 0",
                SOCKS_REP_GENERAL_FAILURE);
    static const uint8_t name_port0[] = {0x05, 0x01, 0x00, 0x03, 0x01, 'a', 0, 0};
    check_error(K_REQUEST, name_port0, sizeof(name_port0), "SOCKS request: CONNECT to port 0",
                SOCKS_REP_GENERAL_FAILURE);
    /* A bad name is refused before its port arrives. */
    static const uint8_t sp[] = {0x05, 0x01, 0x00, 0x03, 0x03, 'a', ' ', 'b'};
    check_error(K_REQUEST, sp, sizeof(sp),
                "SOCKS request: space or control character in the host name",
                SOCKS_REP_HOST_UNREACHABLE);
    /* Too short for its ATYP: incomplete, never an overread. */
    static const uint8_t short_v6[] = {0x05, 0x01, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    struct result res;
    parse(K_REQUEST, short_v6, sizeof(short_v6), &res);
    assert_int_equal(res.rc, CAT_AGAIN);
    static const uint8_t short_name[] = {0x05, 0x01, 0x00, 0x03, 0xff, 'a', 'b'};
    parse(K_REQUEST, short_name, sizeof(short_name), &res);
    assert_int_equal(res.rc, CAT_AGAIN);
}

/* BIND and UDP ASSOCIATE are well-formed requests; port 0 is normal for them. */
static void
test_other_commands(void **state)
{
    (void)state;
    struct result res;
    static const uint8_t bind[] = {0x05, 0x02, 0x00, 0x01, 0, 0, 0, 0, 0, 0};
    check_message(K_REQUEST, bind, sizeof(bind), &res);
    assert_int_equal(res.r.cmd, SOCKS_CMD_BIND);
    assert_v4(&res.r, "0.0.0.0", 0);
    static const uint8_t udp[] = {0x05, 0x03, 0x00, 0x03, 0x01, 'h', 0x12, 0x34};
    check_message(K_REQUEST, udp, sizeof(udp), &res);
    assert_int_equal(res.r.cmd, SOCKS_CMD_UDP_ASSOCIATE);
    assert_string_equal(res.r.host, "h");
    assert_int_equal(res.r.port, 0x1234);
    assert_string_equal(socks_cmd_str(res.r.cmd), "UDP ASSOCIATE");
    assert_string_equal(socks_cmd_str(SOCKS_CMD_CONNECT), "CONNECT");
    assert_string_equal(socks_cmd_str(SOCKS_CMD_BIND), "BIND");
    assert_string_equal(socks_cmd_str(9), "unknown");
}

/* A v4-mapped IPv6 destination is stored as IPv4, so address rules see one form. */
static void
test_v4_mapped(void **state)
{
    (void)state;
    struct result res;
    static const uint8_t mapped[] = {0x05, 0x01, 0x00, 0x04, 0,    0,  0, 0, 0, 0,    0,
                                     0,    0,    0,    0xff, 0xff, 10, 1, 2, 3, 0x01, 0xbb};
    check_message(K_REQUEST, mapped, sizeof(mapped), &res);
    assert_int_equal(res.r.atyp, SOCKS_ATYP_IPV6);
    assert_v4(&res.r, "10.1.2.3", 443);
    /* Not mapped (::fffe:...) stays IPv6. */
    uint8_t other[sizeof(mapped)];
    memcpy(other, mapped, sizeof(mapped));
    other[15] = 0xfe;
    check_message(K_REQUEST, other, sizeof(other), &res);
    assert_v6(&res.r, "::fffe:a01:203", 443);
}

struct choice {
    const uint8_t *methods;
    size_t n;
    uint8_t no_auth; /* choice without require_auth */
    uint8_t auth;    /* choice with require_auth */
};

static void
test_method_choice(void **state)
{
    (void)state;
    static const uint8_t m00[] = {0x00}, m02[] = {0x02}, m0002[] = {0x00, 0x02},
                         m0200[] = {0x02, 0x00}, m01[] = {0x01}, m000102[] = {0x00, 0x01, 0x02},
                         m80ff[] = {0x80, 0xff}, m0202[] = {0x02, 0x02}, m03[] = {0x03};
    static uint8_t all_but_0[255];
    for (size_t i = 0; i < sizeof(all_but_0); i++)
        all_but_0[i] = (uint8_t)(i + 1);
    const struct choice table[] = {
        {m00, sizeof(m00), SOCKS_M_NOAUTH, SOCKS_M_NONE},
        {m02, sizeof(m02), SOCKS_M_USERPASS, SOCKS_M_USERPASS},
        {m0002, sizeof(m0002), SOCKS_M_NOAUTH, SOCKS_M_USERPASS},
        {m0200, sizeof(m0200), SOCKS_M_NOAUTH, SOCKS_M_USERPASS},
        {m01, sizeof(m01), SOCKS_M_NONE, SOCKS_M_NONE},
        {m000102, sizeof(m000102), SOCKS_M_NOAUTH, SOCKS_M_USERPASS},
        {m80ff, sizeof(m80ff), SOCKS_M_NONE, SOCKS_M_NONE},
        {m0202, sizeof(m0202), SOCKS_M_USERPASS, SOCKS_M_USERPASS},
        {m03, sizeof(m03), SOCKS_M_NONE, SOCKS_M_NONE},
        {all_but_0, sizeof(all_but_0), SOCKS_M_USERPASS, SOCKS_M_USERPASS},
    };
    for (size_t i = 0; i < CAT_ARRAY_LEN(table); i++) {
        uint8_t msg[2 + 255];
        msg[0] = 5;
        msg[1] = (uint8_t)table[i].n;
        memcpy(msg + 2, table[i].methods, table[i].n);
        struct result res;
        check_message(K_GREETING, msg, 2 + table[i].n, &res);
        assert_int_equal(res.g.n_methods, table[i].n);
        for (size_t j = 0; j < table[i].n; j++)
            assert_true(socks_offers(&res.g, table[i].methods[j]));
        if (socks_choose_method(&res.g, false) != table[i].no_auth ||
            socks_choose_method(&res.g, true) != table[i].auth)
            fail_msg("row %zu: got %02x/%02x", i, socks_choose_method(&res.g, false),
                     socks_choose_method(&res.g, true));
    }
    /* Methods not offered are not reported. */
    struct socks_greeting g;
    assert_int_equal(socks_parse_greeting(curl_greeting, sizeof(curl_greeting), &g), CAT_OK);
    for (unsigned m = 2; m < 256; m++)
        assert_false(socks_offers(&g, (uint8_t)m));
}

static void
test_reply_bytes(void **state)
{
    (void)state;
    uint8_t out[SOCKS_REPLY_MAX + 1];

    uint8_t m[SOCKS_METHOD_REPLY_LEN];
    assert_int_equal(socks_method_reply(m, SOCKS_M_USERPASS), 2);
    assert_memory_equal(m, "\x05\x02", 2);
    assert_int_equal(socks_method_reply(m, SOCKS_M_NONE), 2);
    assert_memory_equal(m, "\x05\xff", 2);
    uint8_t a[SOCKS_AUTH_REPLY_LEN];
    assert_int_equal(socks_auth_reply(a, true), 2);
    assert_memory_equal(a, "\x01\x00", 2);
    assert_int_equal(socks_auth_reply(a, false), 2);
    assert_memory_equal(a, "\x01\x01", 2);

    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(1080);
    assert_int_equal(inet_pton(AF_INET, "192.0.2.1", &sin.sin_addr), 1);
    memset(out, 0xee, sizeof(out));
    assert_int_equal(socks_reply(out, SOCKS_REP_SUCCEEDED, (struct sockaddr *)&sin), 10);
    static const uint8_t want4[] = {5, 0, 0, 1, 192, 0, 2, 1, 0x04, 0x38};
    assert_memory_equal(out, want4, sizeof(want4));
    assert_int_equal(out[10], 0xee);

    struct sockaddr_in6 sin6;
    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(443);
    assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", &sin6.sin6_addr), 1);
    memset(out, 0xee, sizeof(out));
    assert_int_equal(socks_reply(out, SOCKS_REP_CONN_REFUSED, (struct sockaddr *)&sin6), 22);
    static const uint8_t want6[] = {5, 5, 0, 4, 0x20, 0x01, 0x0d, 0xb8, 0, 0,    0,
                                    0, 0, 0, 0, 0,    0,    0,    0,    1, 0x01, 0xbb};
    assert_memory_equal(out, want6, sizeof(want6));
    assert_int_equal(out[22], 0xee);

    memset(out, 0xee, sizeof(out));
    assert_int_equal(socks_reply(out, SOCKS_REP_NOT_ALLOWED, NULL), 10);
    static const uint8_t want_none[] = {5, 2, 0, 1, 0, 0, 0, 0, 0, 0};
    assert_memory_equal(out, want_none, sizeof(want_none));
    assert_int_equal(out[10], 0xee);

    struct sockaddr_un sun;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    memset(out, 0xee, sizeof(out));
    assert_int_equal(socks_reply(out, SOCKS_REP_GENERAL_FAILURE, (struct sockaddr *)&sun), 10);
    static const uint8_t want_unix[] = {5, 1, 0, 1, 0, 0, 0, 0, 0, 0};
    assert_memory_equal(out, want_unix, sizeof(want_unix));

    /* A reply parses back as a request would (same layout) with the same address. */
    struct socks_req r;
    assert_int_equal(socks_reply(out, 0x01, (struct sockaddr *)&sin6), 22);
    out[1] = SOCKS_CMD_CONNECT;
    assert_int_equal(socks_parse_request(out, 22, &r), CAT_OK);
    assert_string_equal(r.host, "2001:db8::1");
    assert_int_equal(r.port, 443);
}

static void
test_auth_max(void **state)
{
    (void)state;
    uint8_t msg[3 + 255 + 255];
    msg[0] = 1;
    msg[1] = 255;
    for (size_t i = 0; i < 255; i++)
        msg[2 + i] = (uint8_t)('a' + i % 26);
    msg[2 + 255] = 255;
    for (size_t i = 0; i < 255; i++)
        msg[3 + 255 + i] = (uint8_t)(1 + i); /* every byte but NUL, high bytes included */
    struct result res;
    check_message(K_AUTH, msg, sizeof(msg), &res);
    assert_int_equal(res.a.used, 513);
    assert_int_equal(res.a.user_len, 255);
    assert_int_equal(strlen(res.a.user), 255);
    assert_memory_equal(res.a.user, msg + 2, 255);
    assert_int_equal(res.a.pass_len, 255);
    assert_memory_equal(res.a.pass, msg + 258, 255);
    assert_int_equal(res.a.pass[255], '\0');

    socks_auth_wipe(&res.a);
    static const char zero[sizeof(res.a.pass)];
    assert_memory_equal(res.a.pass, zero, sizeof(zero));
    assert_int_equal(res.a.pass_len, 0);
    assert_int_equal(res.a.user_len, 255); /* the user name stays for the logs */
    assert_memory_equal(res.a.user, msg + 2, 255);

    /* One byte short of the maximum message: incomplete. */
    parse(K_AUTH, msg, sizeof(msg) - 1, &res);
    assert_int_equal(res.rc, CAT_AGAIN);
}

/* Builds 05 01 00 03 LEN NAME 01 BB. */
static size_t
req_name(uint8_t *out, const char *name, size_t n)
{
    out[0] = 5;
    out[1] = SOCKS_CMD_CONNECT;
    out[2] = 0;
    out[3] = SOCKS_ATYP_DOMAIN;
    out[4] = (uint8_t)n;
    memcpy(out + 5, name, n);
    out[5 + n] = 0x01;
    out[6 + n] = 0xbb;
    return 7 + n;
}

struct host_ok {
    const char *name;
    const char *host; /* what r.host holds */
    int family;       /* AF_UNSPEC for a name */
};

struct host_bad {
    const char *name;
    size_t n; /* 0: strlen */
    const char *err;
};

static void
test_host_names(void **state)
{
    (void)state;
    char l63[64], l64[65], n253[254], n254[255], n253dot[255], n255[256];
    memset(l63, 'a', 63);
    l63[63] = '\0';
    memset(l64, 'b', 64);
    l64[64] = '\0';
    /* 63.63.63.61 = 253 */
    memset(n253, 'c', 253);
    n253[63] = n253[127] = n253[191] = '.';
    n253[253] = '\0';
    memcpy(n254, n253, 253);
    n254[253] = 'c';
    n254[254] = '\0';
    memcpy(n253dot, n253, 253);
    n253dot[253] = '.';
    n253dot[254] = '\0';
    memcpy(n255, n254, 254);
    n255[254] = 'c';
    n255[255] = '\0';

    const struct host_ok good[] = {
        {"example.test", "example.test", AF_UNSPEC},
        {"Example.TEST", "Example.TEST", AF_UNSPEC},
        {"a", "a", AF_UNSPEC},
        {"_srv._tcp.example-1.test", "_srv._tcp.example-1.test", AF_UNSPEC},
        {"example.test.", "example.test", AF_UNSPEC},
        {"1.2.3.com", "1.2.3.com", AF_UNSPEC},
        {"123abc", "123abc", AF_UNSPEC},
        {"xn--bcher-kva.test", "xn--bcher-kva.test", AF_UNSPEC},
        {l63, l63, AF_UNSPEC},
        {n253, n253, AF_UNSPEC},
        {n253dot, n253, AF_UNSPEC},
        {"127.0.0.1", "127.0.0.1", AF_INET},
        {"0.0.0.0", "0.0.0.0", AF_INET},
        {"255.255.255.255", "255.255.255.255", AF_INET},
        {"192.0.2.1.", "192.0.2.1", AF_INET},
        {"::1", "::1", AF_INET6},
        {"0:0:0:0:0:0:0:1", "::1", AF_INET6},
        {"2001:DB8::1", "2001:db8::1", AF_INET6},
        {"::ffff:127.0.0.1", "127.0.0.1", AF_INET},
    };
    for (size_t i = 0; i < CAT_ARRAY_LEN(good); i++) {
        uint8_t msg[8 + 255];
        size_t n = req_name(msg, good[i].name, strlen(good[i].name));
        struct result res;
        parse(K_REQUEST, msg, n, &res);
        if (res.rc != CAT_OK)
            fail_msg("\"%s\": rc %d (%s)", good[i].name, res.rc, res.r.err);
        check_message(K_REQUEST, msg, n, &res);
        assert_string_equal(res.r.host, good[i].host);
        assert_int_equal(res.r.host_len, strlen(good[i].host));
        assert_int_equal(res.r.atyp, SOCKS_ATYP_DOMAIN);
        assert_int_equal(res.r.addr.ss_family, good[i].family);
        assert_int_equal(res.r.name_is_ip, good[i].family != AF_UNSPEC);
        assert_int_equal(res.r.has_addr, good[i].family != AF_UNSPEC);
        if (good[i].family == AF_INET)
            assert_v4(&res.r, good[i].host, 443);
        else if (good[i].family == AF_INET6)
            assert_v6(&res.r, good[i].host, 443);
    }

    static const char *const ctl = "SOCKS request: space or control character in the host name";
    static const char *const chr = "SOCKS request: host name has a character other than letters, "
                                   "digits, '-', '_', '.'";
    static const char *const empty = "SOCKS request: empty label in the host name";
    static const char *const quad =
        "SOCKS request: numeric host name is not a dotted-quad IPv4 address";
    static const char *const v6 = "SOCKS request: host name with ':' is not an IPv6 literal";
    const struct host_bad bad[] = {
        {"a b", 0, ctl},
        {" example.test", 0, ctl},
        {"a\tb", 0, ctl},
        {"a\r\nb", 0, ctl},
        {"a\x7f", 0, ctl},
        {"a\0b", 3, "SOCKS request: NUL byte in the host name"},
        {"example.test\0", 13, "SOCKS request: NUL byte in the host name"},
        {"ex*mple.test", 0, chr},
        {"ex/ample", 0, chr},
        {"user@example.test", 0, chr},
        {"b\303\274cher.test", 0, chr}, /* UTF-8, not IDNA */
        {"[::1]", 0, chr},
        {"fe80::1%eth0", 0, chr},
        {".", 0, empty},
        {"..", 0, empty},
        {"a..b", 0, empty},
        {".a", 0, empty},
        {"a..", 0, empty},
        {l64, 0, "SOCKS request: host name label longer than 63"},
        {n254, 0, "SOCKS request: host name longer than 253"},
        {n255, 0, "SOCKS request: host name longer than 253"},
        {"127.1", 0, quad},
        {"1.2.3.4.5", 0, quad},
        {"010.0.0.1", 0, quad},
        {"256.1.1.1", 0, quad},
        {"1.2.3.0x10", 0, quad},
        {"example.0x7f", 0, quad},
        {"0x7f000001", 0, quad},
        {"4294967295", 0, quad},
        {"example.test:443", 0, v6},
        {":::", 0, v6},
        {"1:2:3:4:5:6:7:8:9", 0, v6},
        {"example:test", 0, v6},
    };
    for (size_t i = 0; i < CAT_ARRAY_LEN(bad); i++) {
        uint8_t msg[8 + 255];
        size_t n = req_name(msg, bad[i].name, bad[i].n ? bad[i].n : strlen(bad[i].name));
        struct result res;
        parse(K_REQUEST, msg, n, &res);
        if (res.rc != CAT_ERR || strcmp(res.r.err, bad[i].err) != 0)
            fail_msg("bad[%zu]: rc %d err \"%s\"", i, res.rc, res.rc == CAT_ERR ? res.r.err : "");
        check_error(K_REQUEST, msg, n, bad[i].err, SOCKS_REP_HOST_UNREACHABLE);
    }
}

static void
test_names(void **state)
{
    (void)state;
    assert_string_equal(socks_rep_str(SOCKS_REP_SUCCEEDED), "succeeded");
    assert_string_equal(socks_rep_str(SOCKS_REP_GENERAL_FAILURE), "general SOCKS server failure");
    assert_string_equal(socks_rep_str(SOCKS_REP_NOT_ALLOWED), "connection not allowed by ruleset");
    assert_string_equal(socks_rep_str(SOCKS_REP_NET_UNREACHABLE), "network unreachable");
    assert_string_equal(socks_rep_str(SOCKS_REP_HOST_UNREACHABLE), "host unreachable");
    assert_string_equal(socks_rep_str(SOCKS_REP_CONN_REFUSED), "connection refused");
    assert_string_equal(socks_rep_str(SOCKS_REP_TTL_EXPIRED), "TTL expired");
    assert_string_equal(socks_rep_str(SOCKS_REP_CMD_UNSUPPORTED), "command not supported");
    assert_string_equal(socks_rep_str(SOCKS_REP_ATYP_UNSUPPORTED), "address type not supported");
    assert_string_equal(socks_rep_str(0x09), "unassigned");
    assert_string_equal(socks_rep_str(0xff), "unassigned");

    assert_int_equal(socks_rep_from_errno(0), SOCKS_REP_SUCCEEDED);
    assert_int_equal(socks_rep_from_errno(ECONNREFUSED), SOCKS_REP_CONN_REFUSED);
    assert_int_equal(socks_rep_from_errno(ENETUNREACH), SOCKS_REP_NET_UNREACHABLE);
    assert_int_equal(socks_rep_from_errno(EHOSTUNREACH), SOCKS_REP_HOST_UNREACHABLE);
    assert_int_equal(socks_rep_from_errno(ETIMEDOUT), SOCKS_REP_TTL_EXPIRED);
    assert_int_equal(socks_rep_from_errno(EACCES), SOCKS_REP_NOT_ALLOWED);
    assert_int_equal(socks_rep_from_errno(EAFNOSUPPORT), SOCKS_REP_ATYP_UNSUPPORTED);
    assert_int_equal(socks_rep_from_errno(EIO), SOCKS_REP_GENERAL_FAILURE);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_curl_greetings),  cmocka_unit_test(test_curl_auth),
        cmocka_unit_test(test_curl_requests),   cmocka_unit_test(test_chain),
        cmocka_unit_test(test_greeting_errors), cmocka_unit_test(test_auth_errors),
        cmocka_unit_test(test_request_errors),  cmocka_unit_test(test_other_commands),
        cmocka_unit_test(test_v4_mapped),       cmocka_unit_test(test_method_choice),
        cmocka_unit_test(test_reply_bytes),     cmocka_unit_test(test_auth_max),
        cmocka_unit_test(test_host_names),      cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
