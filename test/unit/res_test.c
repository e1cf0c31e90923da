/*
 * Unit tests of the resolver. The pure parts (names, ordering, the cache with
 * its clock as a parameter, the hosts parser) are tested directly; the
 * c-ares/libev part runs against a fake DNS server on a 127.0.0.1 UDP socket
 * served from the test's own loop, so nothing leaves loopback and nothing
 * asks the system's resolvers. Every loop run has a guard timer.
 */
#include "resolver/res_int.h"

#include "core/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>

/* ---- helpers -------------------------------------------------------------- */

static struct res_caddr
v4(const char *s)
{
    struct res_caddr a;
    memset(&a, 0, sizeof(a));
    a.family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, s, a.a), 1);
    return a;
}

static struct res_caddr
v6(const char *s)
{
    struct res_caddr a;
    memset(&a, 0, sizeof(a));
    a.family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, s, a.a), 1);
    return a;
}

/* Address i of an answer as text, "?" if it is not there. */
static const char *
ans_str(const struct res_answer *ans, size_t i, char buf[INET6_ADDRSTRLEN])
{
    if (i >= ans->n)
        return "?";
    const struct sockaddr_storage *ss = &ans->addrs[i];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)ss;
        assert_int_equal(ans->lens[i], sizeof(*sin));
        assert_int_equal(sin->sin_port, 0);
        inet_ntop(AF_INET, &sin->sin_addr, buf, INET6_ADDRSTRLEN);
    } else {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)ss;
        assert_int_equal(ss->ss_family, AF_INET6);
        assert_int_equal(ans->lens[i], sizeof(*sin6));
        assert_int_equal(sin6->sin6_port, 0);
        inet_ntop(AF_INET6, &sin6->sin6_addr, buf, INET6_ADDRSTRLEN);
    }
    return buf;
}

static bool
ans_has(const struct res_answer *ans, const char *ip)
{
    char buf[INET6_ADDRSTRLEN];
    for (size_t i = 0; i < ans->n; i++)
        if (strcmp(ans_str(ans, i, buf), ip) == 0)
            return true;
    return false;
}

static void
assert_addr(const struct res_answer *ans, size_t i, const char *ip)
{
    char buf[INET6_ADDRSTRLEN];
    assert_string_equal(ans_str(ans, i, buf), ip);
}

/* ---- pure helpers ----------------------------------------------------------- */

static void
test_siphash_vectors(void **state)
{
    /* Vectors from the SipHash paper's reference set: key 00..0f, message 00..len-1. */
    const uint64_t k[2] = {0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL};
    uint8_t msg[16];
    for (unsigned i = 0; i < sizeof(msg); i++)
        msg[i] = (uint8_t)i;
    assert_true(res_siphash(k, msg, 0) == 0x726fdb47dd0e0e31ULL);
    assert_true(res_siphash(k, msg, 15) == 0xa129ca6149be45e5ULL);
    const uint64_t k2[2] = {1, 2};
    assert_true(res_siphash(k2, msg, 15) != res_siphash(k, msg, 15));
}

static void
test_name_norm(void **state)
{
    char key[RES_KEY_SIZE];
    char big[300];

    assert_true(res_name_norm("Example.COM", key));
    assert_string_equal(key, "example.com");
    assert_true(res_name_norm("www.example.com.", key));
    assert_string_equal(key, "www.example.com");
    assert_true(res_name_norm("_srv-x.a-b.c", key));
    assert_string_equal(key, "_srv-x.a-b.c");
    assert_true(res_name_norm("intranet", key));
    assert_true(res_name_norm("1.2.3.example", key));
    assert_true(res_name_norm("host.1a", key));

    assert_false(res_name_norm("", key));
    assert_false(res_name_norm(".", key));
    assert_false(res_name_norm("a..b", key));
    assert_false(res_name_norm(".a", key));
    assert_false(res_name_norm("a.b..", key));
    assert_false(res_name_norm("a b", key));
    assert_false(res_name_norm("a/b", key));
    assert_false(res_name_norm("[::1]", key));
    assert_false(res_name_norm("exa\xc3\xa9mple.com", key));
    assert_false(res_name_norm("host:443", key));
    /* All-numeric last label: shortened or bad IPv4, not a name. */
    assert_false(res_name_norm("10.1", key));
    assert_false(res_name_norm("1.2.3.256", key));
    assert_false(res_name_norm("1.2.3.4.", key));
    assert_false(res_name_norm("42", key));

    /* Labels: 63 is fine, 64 is not. */
    memset(big, 'a', 63);
    strcpy(big + 63, ".com");
    assert_true(res_name_norm(big, key));
    memset(big, 'a', 64);
    strcpy(big + 64, ".com");
    assert_false(res_name_norm(big, key));

    /* Total: 253 characters (plus an optional dot) is fine, 254 is not. */
    size_t n = 0;
    while (n < 253) {
        size_t l = CAT_MIN(63u, 253 - n);
        memset(big + n, 'b', l);
        n += l;
        if (n < 253)
            big[n++] = '.';
    }
    /* A label of one character at the end may not start with a dot. */
    assert_true(big[252] != '.');
    big[253] = '\0';
    assert_true(res_name_norm(big, key));
    assert_int_equal(strlen(key), 253);
    big[253] = '.';
    big[254] = '\0';
    assert_true(res_name_norm(big, key));
    big[253] = 'c';
    assert_false(res_name_norm(big, key));
}

static void
test_literal(void **state)
{
    struct res_caddr a;
    assert_true(res_literal("127.0.0.1", &a));
    assert_int_equal(a.family, AF_INET);
    assert_memory_equal(a.a, ((uint8_t[]){127, 0, 0, 1}), 4);
    assert_true(res_literal("::1", &a));
    assert_int_equal(a.family, AF_INET6);
    assert_int_equal(a.a[15], 1);
    assert_true(res_literal("2001:db8::ffff:1.2.3.4", &a));
    assert_false(res_literal("[::1]", &a));
    assert_false(res_literal("127.1", &a));
    assert_false(res_literal("0x7f.0.0.1", &a));
    assert_false(res_literal("fe80::1%eth0", &a));
    assert_false(res_literal("example.com", &a));
}

static void
test_order_interleave(void **state)
{
    struct res_answer out;

    /* AAAA first: v6, v4, v6, v6 (v4 runs out). */
    struct res_caddr in1[] = {v6("2001:db8::1"), v6("2001:db8::2"), v6("2001:db8::3"),
                              v4("192.0.2.1")};
    res_order(in1, CAT_ARRAY_LEN(in1), &out);
    assert_int_equal(out.err, RES_OK);
    assert_int_equal(out.n, 4);
    assert_addr(&out, 0, "2001:db8::1");
    assert_addr(&out, 1, "192.0.2.1");
    assert_addr(&out, 2, "2001:db8::2");
    assert_addr(&out, 3, "2001:db8::3");

    /* A first, mixed order, duplicates dropped. */
    struct res_caddr in2[] = {v4("192.0.2.1"),   v4("192.0.2.2"), v4("192.0.2.1"),
                              v6("2001:db8::1"), v4("192.0.2.3"), v6("2001:db8::2"),
                              v6("2001:db8::1")};
    res_order(in2, CAT_ARRAY_LEN(in2), &out);
    assert_int_equal(out.n, 5);
    assert_addr(&out, 0, "192.0.2.1");
    assert_addr(&out, 1, "2001:db8::1");
    assert_addr(&out, 2, "192.0.2.2");
    assert_addr(&out, 3, "2001:db8::2");
    assert_addr(&out, 4, "192.0.2.3");

    /* One family only keeps its order. */
    struct res_caddr in3[] = {v4("10.0.0.3"), v4("10.0.0.1"), v4("10.0.0.2")};
    res_order(in3, CAT_ARRAY_LEN(in3), &out);
    assert_int_equal(out.n, 3);
    assert_addr(&out, 0, "10.0.0.3");
    assert_addr(&out, 2, "10.0.0.2");

    /* Capped at RES_MAX_ADDRS, still alternating while both last. */
    struct res_caddr in4[40];
    for (unsigned i = 0; i < 20; i++) {
        char s[64];
        snprintf(s, sizeof(s), "198.51.100.%u", i + 1);
        in4[i] = v4(s);
        snprintf(s, sizeof(s), "2001:db8::%x", i + 1);
        in4[20 + i] = v6(s);
    }
    res_order(in4, CAT_ARRAY_LEN(in4), &out);
    assert_int_equal(out.n, RES_MAX_ADDRS);
    for (size_t i = 0; i < out.n; i++)
        assert_int_equal(out.addrs[i].ss_family, i % 2 == 0 ? AF_INET : AF_INET6);
    assert_addr(&out, 14, "198.51.100.8");
    assert_addr(&out, 15, "2001:db8::8");

    res_order(in4, 0, &out);
    assert_int_equal(out.n, 0);
}

static void
test_ttl_clamp(void **state)
{
    assert_int_equal(res_ttl_clamp(300, 30, 3600), 300);
    assert_int_equal(res_ttl_clamp(5, 30, 3600), 30);
    assert_int_equal(res_ttl_clamp(86400, 30, 3600), 3600);
    assert_int_equal(res_ttl_clamp(-1, 0, 3600), 0);
    assert_int_equal(res_ttl_clamp(0, 0, 3600), 0);
}

static void
test_server_parse(void **state)
{
    struct res_server s;
    char err[200];

    assert_int_equal(res_server_parse("192.0.2.53", &s, err, sizeof(err)), CAT_OK);
    assert_int_equal(s.addr.family, AF_INET);
    assert_int_equal(s.port, 53);
    assert_int_equal(res_server_parse("127.0.0.1:5353", &s, err, sizeof(err)), CAT_OK);
    assert_int_equal(s.port, 5353);
    assert_int_equal(res_server_parse("[::1]:65535", &s, err, sizeof(err)), CAT_OK);
    assert_int_equal(s.addr.family, AF_INET6);
    assert_int_equal(s.port, 65535);
    assert_int_equal(res_server_parse("[2001:db8::53]", &s, err, sizeof(err)), CAT_OK);
    assert_int_equal(s.port, 53);
    assert_int_equal(res_server_parse("2001:db8::53", &s, err, sizeof(err)), CAT_OK);
    assert_int_equal(s.addr.family, AF_INET6);
    assert_int_equal(s.port, 53);

    const char *bad[] = {"",
                         "dns.example",
                         "1.2.3",
                         "127.0.0.1:0",
                         "127.0.0.1:65536",
                         "127.0.0.1:",
                         "127.0.0.1:+53",
                         "127.0.0.1:5x",
                         "[::1",
                         "[::1]x",
                         "[::1]:",
                         "[127.0.0.1]:53",
                         "fe80::1%eth0",
                         "[fe80::1%eth0]:53",
                         "::1]:53",
                         "127.0.0.1:053535"};
    for (size_t i = 0; i < CAT_ARRAY_LEN(bad); i++) {
        err[0] = '\0';
        if (res_server_parse(bad[i], &s, err, sizeof(err)) != CAT_ERR)
            fail_msg("accepted bad server \"%s\"", bad[i]);
        assert_true(err[0] != '\0');
    }
}

/* ---- cache -------------------------------------------------------------------- */

static const uint64_t test_seed[2] = {0x1234, 0x5678};

static struct res_answer
answer_of(const char *ip)
{
    struct res_answer a;
    struct res_caddr c = strchr(ip, ':') != NULL ? v6(ip) : v4(ip);
    memset(&a, 0, sizeof(a));
    res_answer_add(&a, &c);
    return a;
}

static void
test_cache_expiry_negative(void **state)
{
    struct res_cache c;
    struct res_answer out;
    assert_int_equal(res_cache_init(&c, 10, test_seed), CAT_OK);

    struct res_answer a = answer_of("192.0.2.1");
    struct res_caddr six = v6("2001:db8::1");
    res_answer_add(&a, &six);
    res_cache_put(&c, "a.test", 1000.0, &a, 60);
    assert_int_equal(c.n, 1);
    assert_true(res_cache_get(&c, "a.test", 1059.9, &out));
    assert_int_equal(out.err, RES_OK);
    assert_int_equal(out.n, 2);
    assert_addr(&out, 0, "192.0.2.1");
    assert_addr(&out, 1, "2001:db8::1");
    assert_false(res_cache_get(&c, "b.test", 1001.0, &out));
    /* Expired exactly at put + ttl, and dropped on the way. */
    assert_false(res_cache_get(&c, "a.test", 1060.0, &out));
    assert_int_equal(c.n, 0);
    assert_true(res_cache_expiry(&c, "a.test") < 0);

    struct res_answer nx;
    memset(&nx, 0, sizeof(nx));
    nx.err = RES_ERR_NXDOMAIN;
    res_cache_put(&c, "nx.test", 2000.0, &nx, 30);
    assert_true(res_cache_get(&c, "nx.test", 2029.0, &out));
    assert_int_equal(out.err, RES_ERR_NXDOMAIN);
    assert_int_equal(out.n, 0);
    assert_false(res_cache_get(&c, "nx.test", 2030.5, &out));

    /* Replacing keeps one entry with the new content and lifetime. */
    res_cache_put(&c, "r.test", 0.0, &a, 10);
    struct res_answer b = answer_of("198.51.100.7");
    res_cache_put(&c, "r.test", 5.0, &b, 100);
    assert_int_equal(c.n, 1);
    assert_true(res_cache_expiry(&c, "r.test") == 105.0);
    assert_true(res_cache_get(&c, "r.test", 50.0, &out));
    assert_int_equal(out.n, 1);
    assert_addr(&out, 0, "198.51.100.7");

    /* A TTL of 0 is not stored. */
    res_cache_put(&c, "zero.test", 0.0, &a, 0);
    assert_false(res_cache_get(&c, "zero.test", 0.0, &out));
    res_cache_fini(&c);
}

static void
test_cache_lru_bound(void **state)
{
    struct res_cache c;
    struct res_answer out, a = answer_of("192.0.2.1");
    assert_int_equal(res_cache_init(&c, 3, test_seed), CAT_OK);
    res_cache_put(&c, "one.test", 0.0, &a, 100);
    res_cache_put(&c, "two.test", 0.0, &a, 100);
    res_cache_put(&c, "three.test", 0.0, &a, 100);
    /* Touch "one": "two" becomes the least recently used. */
    assert_true(res_cache_get(&c, "one.test", 1.0, &out));
    res_cache_put(&c, "four.test", 1.0, &a, 100);
    assert_int_equal(c.n, 3);
    assert_false(res_cache_get(&c, "two.test", 2.0, &out));
    assert_true(res_cache_get(&c, "one.test", 2.0, &out));
    assert_true(res_cache_get(&c, "three.test", 2.0, &out));
    assert_true(res_cache_get(&c, "four.test", 2.0, &out));
    res_cache_fini(&c);

    /* Many more names than the bound: never over it, the newest kept. */
    assert_int_equal(res_cache_init(&c, 100, test_seed), CAT_OK);
    for (unsigned i = 0; i < 2000; i++) {
        char key[32];
        snprintf(key, sizeof(key), "h%u.test", i);
        res_cache_put(&c, key, (double)i, &a, 100000);
        assert_true(c.n <= 100);
    }
    assert_int_equal(c.n, 100);
    assert_int_equal(c.tab.n, 100);
    for (unsigned i = 1900; i < 2000; i++) {
        char key[32];
        snprintf(key, sizeof(key), "h%u.test", i);
        assert_true(res_cache_get(&c, key, 2000.0, &out));
    }
    assert_false(res_cache_get(&c, "h1899.test", 2000.0, &out));
    res_cache_fini(&c);

    /* Bound 0: the cache is off. */
    assert_int_equal(res_cache_init(&c, 0, test_seed), CAT_OK);
    res_cache_put(&c, "one.test", 0.0, &a, 100);
    assert_false(res_cache_get(&c, "one.test", 0.0, &out));
    assert_int_equal(c.n, 0);
    res_cache_fini(&c);
}

/* ---- hosts ---------------------------------------------------------------------- */

static void
test_hosts_parse(void **state)
{
    struct res_hosts h;
    struct res_answer out;
    char longline[RES_HOSTS_LINE_MAX + 100];

    memset(longline, ' ', sizeof(longline));
    memcpy(longline, "192.0.2.99 toolong.test", 23);
    longline[sizeof(longline) - 1] = '\0';
    char text[RES_HOSTS_LINE_MAX + 1024];
    snprintf(text, sizeof(text),
             "# comment line\n"
             "127.0.0.1\tlocalhost\n"
             "::1 localhost ip6-localhost   # trailing comment\n"
             "192.0.2.10 Web.Example.TEST. web alias.test\r\n"
             "2001:db8::10 web.example.test\n"
             "192.0.2.11 web.example.test\n"
             "not-an-ip bogus.test\n"
             "192.0.2.12 bad..name ok.test\n"
             "192.0.2.13 #only comment\n"
             "%s\n"
             "192.0.2.14 after-long.test\n"
             "   \t  \n"
             "192.0.2.15 last.test",
             longline);
    assert_int_equal(res_hosts_init(&h, test_seed), CAT_OK);
    assert_int_equal(res_hosts_parse(&h, text, strlen(text), "test-hosts"), CAT_OK);

    assert_true(res_hosts_get(&h, "web.example.test", CFG_FAMILY_ANY, &out));
    assert_int_equal(out.n, 3);
    assert_addr(&out, 0, "192.0.2.10");
    assert_addr(&out, 1, "2001:db8::10");
    assert_addr(&out, 2, "192.0.2.11");
    assert_true(res_hosts_get(&h, "web.example.test", CFG_FAMILY_IPV6, &out));
    assert_int_equal(out.n, 1);
    assert_addr(&out, 0, "2001:db8::10");
    assert_true(res_hosts_get(&h, "alias.test", CFG_FAMILY_ANY, &out));
    assert_addr(&out, 0, "192.0.2.10");
    assert_true(res_hosts_get(&h, "web", CFG_FAMILY_IPV4, &out));
    assert_true(res_hosts_get(&h, "localhost", CFG_FAMILY_ANY, &out));
    assert_int_equal(out.n, 2);
    assert_true(res_hosts_get(&h, "ip6-localhost", CFG_FAMILY_ANY, &out));
    /* Listed only for the other family: not answered here (DNS decides). */
    assert_false(res_hosts_get(&h, "ip6-localhost", CFG_FAMILY_IPV4, &out));
    assert_true(res_hosts_get(&h, "ok.test", CFG_FAMILY_ANY, &out));
    assert_addr(&out, 0, "192.0.2.12");
    assert_true(res_hosts_get(&h, "after-long.test", CFG_FAMILY_ANY, &out));
    assert_true(res_hosts_get(&h, "last.test", CFG_FAMILY_ANY, &out));
    assert_false(res_hosts_get(&h, "toolong.test", CFG_FAMILY_ANY, &out));
    assert_false(res_hosts_get(&h, "bogus.test", CFG_FAMILY_ANY, &out));
    assert_false(res_hosts_get(&h, "comment", CFG_FAMILY_ANY, &out));
    assert_false(res_hosts_get(&h, "only", CFG_FAMILY_ANY, &out));
    assert_false(res_hosts_get(&h, "nothere.test", CFG_FAMILY_ANY, &out));
    /* localhost, ip6-localhost, web.example.test, web, alias.test, ok.test, after-long, last */
    assert_int_equal(h.n_names, 8);
    res_hosts_fini(&h);

    /* More lines for one name than an answer holds: capped, not grown forever. */
    assert_int_equal(res_hosts_init(&h, test_seed), CAT_OK);
    for (unsigned i = 0; i < 40; i++) {
        char l[64];
        int n = snprintf(l, sizeof(l), "10.0.0.%u many.test\n", i + 1);
        assert_int_equal(res_hosts_parse(&h, l, (size_t)n, "many"), CAT_OK);
    }
    assert_true(res_hosts_get(&h, "many.test", CFG_FAMILY_ANY, &out));
    assert_int_equal(out.n, RES_MAX_ADDRS);
    assert_addr(&out, 0, "10.0.0.1");
    res_hosts_fini(&h);
}

static char *
write_temp(const void *data, size_t len)
{
    char *path = strdup("/tmp/res_test_hosts.XXXXXX");
    assert_non_null(path);
    int fd = mkstemp(path);
    assert_true(fd != -1);
    const char *p = data;
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, p + off, len - off);
        assert_true(n > 0);
        off += (size_t)n;
    }
    close(fd);
    return path;
}

static void
test_hosts_file(void **state)
{
    struct res_hosts h;
    struct res_answer out;
    char err[128];

    const char small[] = "192.0.2.1 file.test\n";
    char *path = write_temp(small, sizeof(small) - 1);
    assert_int_equal(res_hosts_init(&h, test_seed), CAT_OK);
    assert_int_equal(res_hosts_load(&h, path, err, sizeof(err)), CAT_OK);
    assert_true(res_hosts_get(&h, "file.test", CFG_FAMILY_ANY, &out));
    res_hosts_fini(&h);
    unlink(path);
    free(path);

    /* A missing file is a warning and an empty table. */
    assert_int_equal(res_hosts_init(&h, test_seed), CAT_OK);
    assert_int_equal(res_hosts_load(&h, "/nonexistent/res_test/hosts", err, sizeof(err)), CAT_OK);
    assert_int_equal(h.n_names, 0);
    res_hosts_fini(&h);

    /* A directory is not a hosts file. */
    assert_int_equal(res_hosts_init(&h, test_seed), CAT_OK);
    assert_int_equal(res_hosts_load(&h, "/tmp", err, sizeof(err)), CAT_OK);
    assert_int_equal(h.n_names, 0);
    res_hosts_fini(&h);

    /* Larger than the bound: the head is read, the tail ignored. */
    size_t big = RES_HOSTS_FILE_MAX + 4096;
    char *buf = malloc(big);
    assert_non_null(buf);
    memset(buf, '#', big);
    const char head[] = "192.0.2.2 head.test\n";
    memcpy(buf, head, sizeof(head) - 1);
    for (size_t i = 4096; i < big; i += 4096)
        buf[i - 1] = '\n';
    const char tail[] = "\n192.0.2.3 tail.test\n";
    memcpy(buf + big - (sizeof(tail) - 1), tail, sizeof(tail) - 1);
    path = write_temp(buf, big);
    free(buf);
    assert_int_equal(res_hosts_init(&h, test_seed), CAT_OK);
    assert_int_equal(res_hosts_load(&h, path, err, sizeof(err)), CAT_OK);
    assert_true(res_hosts_get(&h, "head.test", CFG_FAMILY_ANY, &out));
    assert_false(res_hosts_get(&h, "tail.test", CFG_FAMILY_ANY, &out));
    res_hosts_fini(&h);
    unlink(path);
    free(path);
}

/* ---- a fake DNS server on loopback ------------------------------------------------ */

#define FAKE_MAX_Q 512

struct fake_q {
    char name[RES_KEY_SIZE + 1];
    unsigned type;
};

struct fake_dns {
    int fd;
    uint16_t port;
    ev_io io;
    size_t nq;
    struct fake_q qs[FAKE_MAX_Q];
};

static int
udp_socket_bound(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(fd != -1);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    socklen_t len = sizeof(sin);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

/* Parses a query's question; returns its end offset, 0 if malformed. */
static size_t
fake_parse(const uint8_t *m, size_t len, struct fake_q *q)
{
    if (len < 12 || m[4] != 0 || m[5] != 1)
        return 0;
    size_t off = 12, out = 0;
    for (unsigned labels = 0; labels < 128; labels++) {
        if (off >= len)
            return 0;
        uint8_t l = m[off++];
        if (l == 0)
            break;
        if (l > 63 || off + l > len || out + l + 1 >= sizeof(q->name))
            return 0;
        if (out > 0)
            q->name[out++] = '.';
        for (uint8_t i = 0; i < l; i++) {
            char c = (char)m[off + i];
            q->name[out++] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
        }
        off += l;
    }
    q->name[out] = '\0';
    if (off + 4 > len)
        return 0;
    q->type = (unsigned)(m[off] << 8 | m[off + 1]);
    return off + 4;
}

static size_t
fake_rr(uint8_t *b, size_t off, unsigned type, uint32_t ttl, const struct res_caddr *a)
{
    size_t rdlen = type == 1 ? 4 : 16;
    b[off++] = 0xc0; /* name: pointer to the question's */
    b[off++] = 12;
    b[off++] = 0;
    b[off++] = (uint8_t)type;
    b[off++] = 0;
    b[off++] = 1;
    b[off++] = (uint8_t)(ttl >> 24);
    b[off++] = (uint8_t)(ttl >> 16);
    b[off++] = (uint8_t)(ttl >> 8);
    b[off++] = (uint8_t)ttl;
    b[off++] = 0;
    b[off++] = (uint8_t)rdlen;
    memcpy(b + off, a->a, rdlen);
    return off + rdlen;
}

static void
fake_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct fake_dns *f = w->data;
    for (unsigned round = 0; round < 64; round++) {
        uint8_t m[512], b[1500];
        struct sockaddr_storage from;
        socklen_t flen = sizeof(from);
        ssize_t n = recvfrom(f->fd, m, sizeof(m), 0, (struct sockaddr *)&from, &flen);
        if (n == -1)
            return;
        struct fake_q q;
        size_t qend = fake_parse(m, (size_t)n, &q);
        if (qend == 0)
            continue;
        if (f->nq < FAKE_MAX_Q)
            f->qs[f->nq++] = q;
        if (strcmp(q.name, "silent.test") == 0)
            continue;

        unsigned rcode = 0, an = 0;
        memcpy(b, m, qend);
        size_t off = qend;
        if (strcmp(q.name, "a.test") == 0) {
            struct res_caddr a = q.type == 1 ? v4("192.0.2.1") : v6("2001:db8::1");
            off = fake_rr(b, off, q.type, q.type == 1 ? 300 : 120, &a);
            an = 1;
        } else if (strcmp(q.name, "c.test") == 0 || strcmp(q.name, "intranet") == 0) {
            if (q.type == 1) {
                struct res_caddr a = v4("192.0.2.2");
                off = fake_rr(b, off, 1, 300, &a);
                an = 1;
            }
        } else if (strcmp(q.name, "ttl.test") == 0) {
            struct res_caddr a = q.type == 1 ? v4("192.0.2.3") : v6("2001:db8::3");
            off = fake_rr(b, off, q.type, q.type == 1 ? 5 : 7, &a);
            an = 1;
        } else if (strcmp(q.name, "long.test") == 0) {
            struct res_caddr a = q.type == 1 ? v4("192.0.2.4") : v6("2001:db8::4");
            off = fake_rr(b, off, q.type, 86400, &a);
            an = 1;
        } else if (strcmp(q.name, "many.test") == 0) {
            /* 12 AAAA records still fit in 512 bytes (no EDNS, no TC here). */
            for (unsigned i = 0; i < 12; i++) {
                char s[64];
                struct res_caddr a;
                if (q.type == 1) {
                    snprintf(s, sizeof(s), "198.51.100.%u", i + 1);
                    a = v4(s);
                } else {
                    snprintf(s, sizeof(s), "2001:db8::%x", i + 0x100);
                    a = v6(s);
                }
                off = fake_rr(b, off, q.type, 300, &a);
            }
            an = 12;
        } else if (strcmp(q.name, "nodata.test") == 0) {
            /* NOERROR, no answer */
        } else if (strcmp(q.name, "fail.test") == 0) {
            rcode = 2;
        } else {
            rcode = 3; /* NXDOMAIN for everything else */
        }
        b[2] = (uint8_t)(0x80 | (m[2] & 0x01)); /* QR, RD echoed */
        b[3] = (uint8_t)(0x80 | rcode);         /* RA */
        b[6] = 0;
        b[7] = (uint8_t)an;
        b[8] = b[9] = b[10] = b[11] = 0;
        sendto(f->fd, b, off, 0, (struct sockaddr *)&from, flen);
    }
}

static size_t
fake_count(const struct fake_dns *f, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < f->nq; i++)
        if (strcmp(f->qs[i].name, name) == 0)
            n++;
    return n;
}

/* ---- loop harness ------------------------------------------------------------ */

struct t_env {
    struct ev_loop *loop;
    struct fake_dns dns;
    struct res *r;
    char server[64];
    char *servers[1];
    struct cfg_resolver rc;
    ev_timer guard;
    ev_prepare prep; /* before each block: stop once pred holds */
    bool guard_fired;
    bool (*pred)(struct t_env *);
    int waiting; /* callbacks still expected */
};

static bool in_lookup; /* a callback seeing this true ran inside res_lookup() */

struct t_call {
    struct t_env *e;
    int calls;
    struct res_answer ans;
    struct res_query *q;
    struct t_call *cancel_other; /* cancelled from this callback */
    bool relookup;               /* look the same name up again from the callback */
    int relookup_rc;
    struct res_answer relookup_ans;
    bool free_self; /* heap object freed by its own callback */
    const char *name;
};

static void
t_cb(void *arg, const struct res_answer *ans)
{
    struct t_call *c = arg;
    assert_false(in_lookup);
    c->calls++;
    c->ans = *ans;
    c->e->waiting--;
    if (c->cancel_other != NULL) {
        res_cancel(c->cancel_other->q);
        c->cancel_other->q = NULL;
    }
    /* Cancelling one's own, already delivered, query is harmless. */
    res_cancel(c->q);
    c->q = NULL;
    if (c->relookup) {
        struct res_query *q2 = NULL;
        in_lookup = true;
        c->relookup_rc = res_lookup(c->e->r, c->name, &c->relookup_ans, t_cb, c, &q2);
        in_lookup = false;
        assert_null(q2);
    }
    if (c->free_self)
        free(c);
}

static int
t_lookup(struct t_env *e, const char *name, struct t_call *c, struct res_answer *out)
{
    memset(out, 0xa5, sizeof(*out));
    c->e = e;
    c->name = name;
    in_lookup = true;
    int rc = res_lookup(e->r, name, out, t_cb, c, &c->q);
    in_lookup = false;
    if (rc == CAT_AGAIN) {
        assert_non_null(c->q);
        e->waiting++;
    } else {
        assert_int_equal(rc, CAT_OK);
        assert_null(c->q);
    }
    return rc;
}

static void
t_guard_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct t_env *e = w->data;
    e->guard_fired = true;
    ev_break(loop, EVBREAK_ALL);
}

static void
t_prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct t_env *e = w->data;
    if (e->pred(e))
        ev_break(loop, EVBREAK_ALL);
}

static bool
t_no_waiting(struct t_env *e)
{
    return e->waiting <= 0;
}

static bool
t_idle(struct t_env *e)
{
    return e->r->pending.n == 0 && e->r->done == NULL;
}

/* Runs the loop until pred holds; fails the test after 2 s. */
static void
t_run(struct t_env *e, bool (*pred)(struct t_env *))
{
    if (pred(e))
        return;
    e->pred = pred;
    ev_timer_set(&e->guard, 2.0, 0.);
    ev_now_update(e->loop);
    ev_timer_start(e->loop, &e->guard);
    ev_prepare_start(e->loop, &e->prep);
    ev_run(e->loop, 0);
    ev_prepare_stop(e->loop, &e->prep);
    ev_timer_stop(e->loop, &e->guard);
    assert_false(e->guard_fired);
}

static void
t_cfg(struct t_env *e, const char *server)
{
    memset(&e->rc, 0, sizeof(e->rc));
    snprintf(e->server, sizeof(e->server), "%s", server);
    e->servers[0] = e->server;
    e->rc.servers = e->servers;
    e->rc.n_servers = 1;
    e->rc.hosts_file = NULL;
    e->rc.family = CFG_FAMILY_ANY;
    e->rc.cache_entries = 100;
    e->rc.min_ttl_s = 30;
    e->rc.max_ttl_s = 3600;
    e->rc.negative_ttl_s = 60;
    e->rc.timeout_ms = 300;
    e->rc.tries = 1;
}

static struct t_env *
t_env_new(void)
{
    struct t_env *e = calloc(1, sizeof(*e));
    assert_non_null(e);
    e->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(e->loop);
    e->dns.fd = udp_socket_bound(&e->dns.port);
    ev_io_init(&e->dns.io, fake_io_cb, e->dns.fd, EV_READ);
    e->dns.io.data = &e->dns;
    ev_io_start(e->loop, &e->dns.io);
    ev_timer_init(&e->guard, t_guard_cb, 2.0, 0.);
    e->guard.data = e;
    ev_prepare_init(&e->prep, t_prepare_cb);
    e->prep.data = e;
    char s[64];
    snprintf(s, sizeof(s), "127.0.0.1:%u", e->dns.port);
    t_cfg(e, s);
    /* Search-domain sources c-ares would otherwise use: none may apply. */
    setenv("LOCALDOMAIN", "leak.invalid", 1);
    setenv("RES_OPTIONS", "ndots:5", 1);
    return e;
}

static void
t_env_start(struct t_env *e)
{
    char err[256] = "";
    e->r = res_new(e->loop, &e->rc, err, sizeof(err));
    if (e->r == NULL)
        fail_msg("res_new: %s", err);
}

static void
t_env_free(struct t_env *e)
{
    res_free(e->r);
    ev_io_stop(e->loop, &e->dns.io);
    close(e->dns.fd);
    ev_loop_destroy(e->loop);
    free(e);
}

/* ---- resolver on a loop ----------------------------------------------------------- */

static void
test_res_new_bad_server(void **state)
{
    struct t_env *e = t_env_new();
    const char *bad[] = {"dns.example", "127.0.0.1:99999", "[::1", "fe80::1%lo"};
    for (size_t i = 0; i < CAT_ARRAY_LEN(bad); i++) {
        char err[256] = "";
        t_cfg(e, bad[i]);
        struct res *r = res_new(e->loop, &e->rc, err, sizeof(err));
        assert_null(r);
        assert_non_null(strstr(err, "resolver.servers"));
        assert_non_null(strstr(err, bad[i]));
    }
    t_env_free(e);
}

static void
test_res_new_system_servers(void **state)
{
    /* No servers: c-ares reads resolv.conf. Only a literal is looked up, so
     * nothing is sent to the system's resolvers. */
    struct t_env *e = t_env_new();
    e->rc.n_servers = 0;
    e->rc.servers = NULL;
    t_env_start(e);
    struct t_call c;
    struct res_answer out;
    memset(&c, 0, sizeof(c));
    assert_int_equal(t_lookup(e, "198.51.100.1", &c, &out), CAT_OK);
    assert_addr(&out, 0, "198.51.100.1");
    struct res_stats st;
    res_get_stats(e->r, &st);
    assert_int_equal(st.queries_sent, 0);
    t_env_free(e);
}

static void
test_lookup_immediate(void **state)
{
    struct t_env *e = t_env_new();
    const char hosts[] = "192.0.2.77 Hosted.Test\n2001:db8::77 hosted.test\n";
    char *path = write_temp(hosts, sizeof(hosts) - 1);
    e->rc.hosts_file = path;
    t_env_start(e);

    struct t_call c;
    struct res_answer out;
    memset(&c, 0, sizeof(c));
    assert_int_equal(t_lookup(e, "192.0.2.5", &c, &out), CAT_OK);
    assert_int_equal(out.err, RES_OK);
    assert_int_equal(out.n, 1);
    assert_addr(&out, 0, "192.0.2.5");
    assert_int_equal(t_lookup(e, "2001:db8::5", &c, &out), CAT_OK);
    assert_int_equal(out.n, 1);
    assert_addr(&out, 0, "2001:db8::5");

    const char *bad[] = {"", "a..b", "bad name", "x/y", "[::1]", "10.1", "a.b.c:443"};
    for (size_t i = 0; i < CAT_ARRAY_LEN(bad); i++) {
        assert_int_equal(t_lookup(e, bad[i], &c, &out), CAT_OK);
        assert_int_equal(out.err, RES_ERR_BADNAME);
        assert_int_equal(out.n, 0);
    }

    assert_int_equal(t_lookup(e, "HOSTED.test.", &c, &out), CAT_OK);
    assert_int_equal(out.err, RES_OK);
    assert_int_equal(out.n, 2);
    assert_addr(&out, 0, "192.0.2.77");
    assert_addr(&out, 1, "2001:db8::77");

    /* RFC 6761: localhost never goes to DNS even without a hosts file entry. */
    assert_int_equal(t_lookup(e, "foo.localhost", &c, &out), CAT_OK);
    assert_int_equal(out.n, 2);
    assert_addr(&out, 0, "127.0.0.1");
    assert_addr(&out, 1, "::1");

    struct res_stats st;
    res_get_stats(e->r, &st);
    assert_int_equal(st.lookups, 4 + CAT_ARRAY_LEN(bad));
    assert_int_equal(st.queries_sent, 0);
    assert_int_equal(c.calls, 0);
    /* Give a wrongly sent query the chance to arrive: nothing did. */
    ev_run(e->loop, EVRUN_NOWAIT);
    assert_int_equal(e->dns.nq, 0);
    assert_string_equal(res_err_str(RES_ERR_BADNAME), "invalid host name");
    assert_string_equal(res_err_str(RES_ERR_NXDOMAIN), "no such host");

    t_env_free(e);
    unlink(path);
    free(path);
}

static void
test_lookup_dns_and_cache(void **state)
{
    struct t_env *e = t_env_new();
    t_env_start(e);
    struct t_call c1, c2;
    struct res_answer out;
    memset(&c1, 0, sizeof(c1));
    memset(&c2, 0, sizeof(c2));

    assert_int_equal(t_lookup(e, "A.Test.", &c1, &out), CAT_AGAIN);
    assert_int_equal(c1.calls, 0); /* never from inside res_lookup() */
    t_run(e, t_no_waiting);
    assert_int_equal(c1.calls, 1);
    assert_int_equal(c1.ans.err, RES_OK);
    assert_int_equal(c1.ans.n, 2);
    assert_true(ans_has(&c1.ans, "192.0.2.1"));
    assert_true(ans_has(&c1.ans, "2001:db8::1"));
    assert_int_not_equal(c1.ans.addrs[0].ss_family, c1.ans.addrs[1].ss_family);
    /* The name exactly, once per type: no search suffix from LOCALDOMAIN. */
    assert_int_equal(fake_count(&e->dns, "a.test"), 2);
    assert_int_equal(e->dns.nq, 2);

    /* Cached for min(max(120, 30), 3600): the smaller TTL of the two. */
    double exp = res_cache_expiry(&e->r->cache, "a.test");
    assert_true(exp > ev_now(e->loop) + 110 && exp <= ev_now(e->loop) + 120);
    assert_int_equal(t_lookup(e, "a.test", &c2, &out), CAT_OK);
    assert_int_equal(out.err, RES_OK);
    assert_int_equal(out.n, 2);
    assert_int_equal(memcmp(&out.addrs[0], &c1.ans.addrs[0], sizeof(out.addrs[0])), 0);

    /* Floor and ceiling on TTLs. */
    assert_int_equal(t_lookup(e, "ttl.test", &c1, &out), CAT_AGAIN);
    assert_int_equal(t_lookup(e, "long.test", &c2, &out), CAT_AGAIN);
    t_run(e, t_no_waiting);
    exp = res_cache_expiry(&e->r->cache, "ttl.test") - ev_now(e->loop);
    assert_true(exp > 25 && exp <= 30);
    exp = res_cache_expiry(&e->r->cache, "long.test") - ev_now(e->loop);
    assert_true(exp > 3590 && exp <= 3600);

    struct res_stats st;
    res_get_stats(e->r, &st);
    assert_int_equal(st.lookups, 4);
    assert_int_equal(st.queries_sent, 3);
    assert_int_equal(st.cache_hits, 1);
    assert_int_equal(st.entries, 3);
    t_env_free(e);
}

static void
test_lookup_failures(void **state)
{
    struct t_env *e = t_env_new();
    t_env_start(e);
    struct t_call c[3];
    struct res_answer out;
    memset(c, 0, sizeof(c));

    assert_int_equal(t_lookup(e, "nx.test", &c[0], &out), CAT_AGAIN);
    assert_int_equal(t_lookup(e, "nodata.test", &c[1], &out), CAT_AGAIN);
    assert_int_equal(t_lookup(e, "fail.test", &c[2], &out), CAT_AGAIN);
    t_run(e, t_no_waiting);
    assert_int_equal(c[0].ans.err, RES_ERR_NXDOMAIN);
    assert_int_equal(c[1].ans.err, RES_ERR_NODATA);
    assert_int_equal(c[2].ans.err, RES_ERR_SERVFAIL);
    assert_int_equal(c[0].ans.n + c[1].ans.n + c[2].ans.n, 0);

    /* NXDOMAIN and NODATA are remembered for negative_ttl; SERVFAIL is not. */
    double exp = res_cache_expiry(&e->r->cache, "nx.test") - ev_now(e->loop);
    assert_true(exp > 55 && exp <= 60);
    size_t before = e->dns.nq;
    memset(c, 0, sizeof(c));
    assert_int_equal(t_lookup(e, "nx.test", &c[0], &out), CAT_OK);
    assert_int_equal(out.err, RES_ERR_NXDOMAIN);
    assert_int_equal(t_lookup(e, "nodata.test", &c[1], &out), CAT_OK);
    assert_int_equal(out.err, RES_ERR_NODATA);
    assert_int_equal(t_lookup(e, "fail.test", &c[2], &out), CAT_AGAIN);
    t_run(e, t_no_waiting);
    assert_int_equal(c[2].ans.err, RES_ERR_SERVFAIL);
    assert_int_equal(e->dns.nq, before + 2); /* only fail.test's A and AAAA again */

    struct res_stats st;
    res_get_stats(e->r, &st);
    assert_int_equal(st.cache_neg_hits, 2);
    assert_int_equal(st.cache_hits, 0);
    assert_int_equal(st.queries_sent, 4);
    t_env_free(e);
}

static void
test_coalesce_and_cancel(void **state)
{
    struct t_env *e = t_env_new();
    t_env_start(e);
    enum { N = 50, CANCELLED = 10 };
    struct t_call c[N];
    struct res_answer out;
    memset(c, 0, sizeof(c));
    for (int i = 0; i < N; i++)
        assert_int_equal(t_lookup(e, i % 2 ? "c.test" : "C.TEST", &c[i], &out), CAT_AGAIN);
    /* Cancel a spread of them, first and last included, before any answer. */
    for (int i = 0; i < N; i += N / CANCELLED) {
        res_cancel(c[i].q);
        e->waiting--;
    }
    res_cancel(NULL);
    t_run(e, t_no_waiting);
    for (int i = 0; i < N; i++) {
        assert_int_equal(c[i].calls, i % (N / CANCELLED) == 0 ? 0 : 1);
        if (c[i].calls) {
            assert_int_equal(c[i].ans.err, RES_OK);
            assert_int_equal(c[i].ans.n, 1);
            assert_addr(&c[i].ans, 0, "192.0.2.2");
        }
    }
    assert_int_equal(fake_count(&e->dns, "c.test"), 2);
    struct res_stats st;
    res_get_stats(e->r, &st);
    assert_int_equal(st.queries_sent, 1);
    assert_int_equal(st.coalesced, N - 1);
    t_env_free(e);
}

static void
test_cancel_all_still_caches(void **state)
{
    struct t_env *e = t_env_new();
    t_env_start(e);
    struct t_call c[3];
    struct res_answer out;
    memset(c, 0, sizeof(c));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(t_lookup(e, "a.test", &c[i], &out), CAT_AGAIN);
        res_cancel(c[i].q);
        e->waiting--;
    }
    t_run(e, t_idle);
    for (int i = 0; i < 3; i++)
        assert_int_equal(c[i].calls, 0);
    assert_int_equal(t_lookup(e, "a.test", &c[0], &out), CAT_OK);
    assert_int_equal(out.err, RES_OK);
    assert_int_equal(out.n, 2);
    assert_int_equal(fake_count(&e->dns, "a.test"), 2);
    t_env_free(e);
}

static void
test_callback_reentry(void **state)
{
    struct t_env *e = t_env_new();
    t_env_start(e);
    struct t_call a, b, d;
    struct res_answer out;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    memset(&d, 0, sizeof(d));
    struct t_call *self = calloc(1, sizeof(*self));
    assert_non_null(self);
    self->free_self = true;

    /* All on one name: whichever runs first, b is never called, since a
     * cancels b (if a runs after b, b has already been called: see below). */
    assert_int_equal(t_lookup(e, "a.test", &b, &out), CAT_AGAIN);
    assert_int_equal(t_lookup(e, "a.test", self, &out), CAT_AGAIN);
    assert_int_equal(t_lookup(e, "a.test", &a, &out), CAT_AGAIN);
    assert_int_equal(t_lookup(e, "nx.test", &d, &out), CAT_AGAIN);
    a.cancel_other = &b;
    a.relookup = true;
    /* d (another name) cancels nothing but looks its name up again. */
    d.relookup = true;
    t_run(e, t_idle);
    /* Callers are called newest first or oldest first: either a ran before b
     * (b cancelled, never called) or b ran first (a's cancel was harmless). */
    assert_int_equal(a.calls, 1);
    assert_true(b.calls == 0 || b.calls == 1);
    if (b.calls == 0)
        e->waiting--;
    assert_int_equal(e->waiting, 0);
    assert_int_equal(a.relookup_rc, CAT_OK); /* the answer was cached before callbacks */
    assert_int_equal(a.relookup_ans.err, RES_OK);
    assert_int_equal(d.ans.err, RES_ERR_NXDOMAIN);
    assert_int_equal(d.relookup_rc, CAT_OK);
    assert_int_equal(d.relookup_ans.err, RES_ERR_NXDOMAIN);
    t_env_free(e);
}

static void
test_cancel_sibling_in_callback(void **state)
{
    /* Deterministic variant: both orders are tried, the cancelled one never runs. */
    for (int order = 0; order < 2; order++) {
        struct t_env *e = t_env_new();
        t_env_start(e);
        struct t_call x, y;
        struct res_answer out;
        memset(&x, 0, sizeof(x));
        memset(&y, 0, sizeof(y));
        assert_int_equal(t_lookup(e, "a.test", &x, &out), CAT_AGAIN);
        assert_int_equal(t_lookup(e, "a.test", &y, &out), CAT_AGAIN);
        x.cancel_other = &y;
        y.cancel_other = &x;
        t_run(e, t_idle);
        assert_int_equal(x.calls + y.calls, 1);
        t_env_free(e);
        (void)order;
    }
}

static void
test_sync_failure_deferred(void **state)
{
    /* c-ares fails ".onion" (RFC 7686) inside ares_getaddrinfo(): the caller
     * still gets CAT_AGAIN and its callback from the loop. */
    struct t_env *e = t_env_new();
    t_env_start(e);
    struct t_call c;
    struct res_answer out;
    memset(&c, 0, sizeof(c));
    assert_int_equal(t_lookup(e, "hidden.onion", &c, &out), CAT_AGAIN);
    assert_int_equal(c.calls, 0);
    t_run(e, t_no_waiting);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.ans.err, RES_ERR_NXDOMAIN);
    assert_int_equal(e->dns.nq, 0);
    t_env_free(e);
}

static void
test_many_interleaved(void **state)
{
    struct t_env *e = t_env_new();
    t_env_start(e);
    struct t_call c;
    struct res_answer out;
    memset(&c, 0, sizeof(c));
    assert_int_equal(t_lookup(e, "many.test", &c, &out), CAT_AGAIN);
    t_run(e, t_no_waiting);
    assert_int_equal(c.ans.err, RES_OK);
    assert_int_equal(c.ans.n, RES_MAX_ADDRS);
    /* 24 addresses cut to 16, alternating whichever family came first. */
    for (size_t i = 1; i < c.ans.n; i++)
        assert_int_not_equal(c.ans.addrs[i].ss_family, c.ans.addrs[i - 1].ss_family);
    assert_true(ans_has(&c.ans, "198.51.100.1") && ans_has(&c.ans, "198.51.100.8"));
    assert_true(ans_has(&c.ans, "2001:db8::100") && ans_has(&c.ans, "2001:db8::107"));
    assert_false(ans_has(&c.ans, "198.51.100.9") || ans_has(&c.ans, "2001:db8::108"));
    t_env_free(e);
}

static void
test_family_and_no_search(void **state)
{
    struct t_env *e = t_env_new();
    e->rc.family = CFG_FAMILY_IPV4;
    t_env_start(e);
    struct t_call c;
    struct res_answer out;
    memset(&c, 0, sizeof(c));

    assert_int_equal(t_lookup(e, "::1", &c, &out), CAT_OK);
    assert_int_equal(out.err, RES_ERR_NODATA);
    assert_int_equal(t_lookup(e, "localhost", &c, &out), CAT_OK);
    assert_int_equal(out.n, 1);
    assert_addr(&out, 0, "127.0.0.1");

    /* A single label with ndots:5 and LOCALDOMAIN set: sent as is, A only. */
    assert_int_equal(t_lookup(e, "intranet", &c, &out), CAT_AGAIN);
    t_run(e, t_no_waiting);
    assert_int_equal(c.ans.err, RES_OK);
    assert_int_equal(c.ans.n, 1);
    assert_addr(&c.ans, 0, "192.0.2.2");
    assert_int_equal(e->dns.nq, 1);
    assert_string_equal(e->dns.qs[0].name, "intranet");
    assert_int_equal(e->dns.qs[0].type, 1);

    memset(&c, 0, sizeof(c));
    assert_int_equal(t_lookup(e, "a.test", &c, &out), CAT_AGAIN);
    t_run(e, t_no_waiting);
    assert_int_equal(c.ans.n, 1);
    assert_addr(&c.ans, 0, "192.0.2.1");
    for (size_t i = 0; i < e->dns.nq; i++) {
        assert_int_equal(e->dns.qs[i].type, 1);
        assert_null(strstr(e->dns.qs[i].name, "leak"));
    }
    t_env_free(e);
}

static void
test_timeout_silent_server(void **state)
{
    /* A bound socket nobody reads: the query arrives and is never answered. */
    struct t_env *e = t_env_new();
    uint16_t port;
    int silent = udp_socket_bound(&port);
    char s[64];
    snprintf(s, sizeof(s), "127.0.0.1:%u", port);
    t_cfg(e, s);
    e->rc.timeout_ms = 100;
    e->rc.tries = 1;
    t_env_start(e);

    struct t_call c;
    struct res_answer out;
    memset(&c, 0, sizeof(c));
    ev_now_update(e->loop);
    double t0 = ev_now(e->loop);
    assert_int_equal(t_lookup(e, "slow.test", &c, &out), CAT_AGAIN);
    t_run(e, t_no_waiting);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.ans.err, RES_ERR_TIMEOUT);
    double dt = ev_now(e->loop) - t0;
    assert_true(dt >= 0.09 && dt < 1.0);
    assert_true(res_cache_expiry(&e->r->cache, "slow.test") < 0);

    /* Both questions reached the configured server, and only as "slow.test". */
    struct fake_q q;
    uint8_t m[512];
    int seen = 0;
    ssize_t n;
    while ((n = recv(silent, m, sizeof(m), 0)) > 0) {
        assert_true(fake_parse(m, (size_t)n, &q) > 0);
        assert_string_equal(q.name, "slow.test");
        seen++;
    }
    assert_int_equal(seen, 2);
    close(silent);
    t_env_free(e);
}

static void
test_closed_port(void **state)
{
    /* Nothing listens on 127.0.0.1:1. c-ares 1.18 sees the ICMP port
     * unreachable on a later send or recv, depending on timing, and then
     * either gives up on the server (SERVFAIL) or waits out the timeout. */
    struct t_env *e = t_env_new();
    t_cfg(e, "127.0.0.1:1");
    e->rc.timeout_ms = 100;
    t_env_start(e);
    struct t_call c;
    struct res_answer out;
    memset(&c, 0, sizeof(c));
    assert_int_equal(t_lookup(e, "refused.test", &c, &out), CAT_AGAIN);
    t_run(e, t_no_waiting);
    assert_int_equal(c.calls, 1);
    assert_true(c.ans.err == RES_ERR_TIMEOUT || c.ans.err == RES_ERR_SERVFAIL);
    t_env_free(e);
}

static void
test_free_in_flight(void **state)
{
    struct t_env *e = t_env_new();
    t_env_start(e);
    struct t_call c[3];
    struct res_answer out;
    memset(c, 0, sizeof(c));
    assert_int_equal(t_lookup(e, "silent.test", &c[0], &out), CAT_AGAIN);
    assert_int_equal(t_lookup(e, "silent.test", &c[1], &out), CAT_AGAIN);
    /* One answered but not yet delivered when the resolver goes. */
    assert_int_equal(t_lookup(e, "x.onion", &c[2], &out), CAT_AGAIN);
    assert_non_null(e->r->done);
    res_free(e->r);
    e->r = NULL;
    ev_run(e->loop, EVRUN_NOWAIT);
    for (int i = 0; i < 3; i++)
        assert_int_equal(c[i].calls, 0);
    t_env_free(e);
}

int
main(void)
{
    log_set_level(LOG_FAC_MAIN, getenv("RES_TEST_DEBUG") != NULL ? LOG_DEBUG : LOG_ERR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_siphash_vectors),
        cmocka_unit_test(test_name_norm),
        cmocka_unit_test(test_literal),
        cmocka_unit_test(test_order_interleave),
        cmocka_unit_test(test_ttl_clamp),
        cmocka_unit_test(test_server_parse),
        cmocka_unit_test(test_cache_expiry_negative),
        cmocka_unit_test(test_cache_lru_bound),
        cmocka_unit_test(test_hosts_parse),
        cmocka_unit_test(test_hosts_file),
        cmocka_unit_test(test_res_new_bad_server),
        cmocka_unit_test(test_res_new_system_servers),
        cmocka_unit_test(test_lookup_immediate),
        cmocka_unit_test(test_lookup_dns_and_cache),
        cmocka_unit_test(test_lookup_failures),
        cmocka_unit_test(test_coalesce_and_cancel),
        cmocka_unit_test(test_cancel_all_still_caches),
        cmocka_unit_test(test_callback_reentry),
        cmocka_unit_test(test_cancel_sibling_in_callback),
        cmocka_unit_test(test_sync_failure_deferred),
        cmocka_unit_test(test_many_interleaved),
        cmocka_unit_test(test_family_and_no_search),
        cmocka_unit_test(test_timeout_silent_server),
        cmocka_unit_test(test_closed_port),
        cmocka_unit_test(test_free_in_flight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
