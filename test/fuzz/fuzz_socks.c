/*
 * libFuzzer target for core/socks. One input goes to the greeting, auth and
 * request parsers, and through the chains a client would send (greeting,
 * auth, request; greeting, request) from one buffer by the used counts.
 * Invariants (used within len, prefix consistency, NUL-terminated fields,
 * address and host agree, replies parse back) abort() on violation.
 */
#include "core/socks.h"
#include "test/fuzz/fuzz.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

static bool
fuzz_host_char(unsigned char c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '-' ||
           c == '_' || c == '.' || c == ':';
}

static size_t
fuzz_greeting(const uint8_t *p, size_t len, size_t cut)
{
    struct socks_greeting g, t;
    int r = socks_parse_greeting(p, len, &g);
    FUZZ_CHECK(r == CAT_OK || r == CAT_AGAIN || r == CAT_ERR);
    if (r == CAT_ERR)
        FUZZ_CHECK(g.err != NULL && strncmp(g.err, "SOCKS greeting: ", 16) == 0);
    int rt = socks_parse_greeting(p, cut < len ? cut : len, &t);
    FUZZ_CHECK(rt == CAT_AGAIN || rt == r);
    if (r == CAT_ERR && rt == CAT_ERR)
        FUZZ_CHECK(strcmp(t.err, g.err) == 0);
    if (r != CAT_OK)
        return 0;
    FUZZ_CHECK(g.err == NULL && g.n_methods >= 1);
    FUZZ_CHECK(g.used == 2 + (size_t)g.n_methods && g.used <= len);
    if (rt == CAT_OK)
        FUZZ_CHECK(t.used == g.used && memcmp(t.offered, g.offered, sizeof(g.offered)) == 0);
    FUZZ_CHECK(socks_parse_greeting(p, g.used - 1, &t) == CAT_AGAIN);
    unsigned bits = 0;
    for (unsigned m = 0; m < 256; m++)
        bits += socks_offers(&g, (uint8_t)m);
    FUZZ_CHECK(bits >= 1 && bits <= g.n_methods);
    for (size_t i = 2; i < g.used; i++)
        FUZZ_CHECK(socks_offers(&g, p[i]));
    uint8_t m0 = socks_choose_method(&g, false), m1 = socks_choose_method(&g, true);
    FUZZ_CHECK(m1 == SOCKS_M_USERPASS || m1 == SOCKS_M_NONE);
    FUZZ_CHECK(m1 != SOCKS_M_USERPASS || socks_offers(&g, SOCKS_M_USERPASS));
    FUZZ_CHECK(m0 == SOCKS_M_NOAUTH || m0 == SOCKS_M_USERPASS || m0 == SOCKS_M_NONE);
    FUZZ_CHECK(m0 == SOCKS_M_NONE || socks_offers(&g, m0));
    uint8_t out[SOCKS_METHOD_REPLY_LEN];
    FUZZ_CHECK(socks_method_reply(out, m0) == 2 && out[0] == 5 && out[1] == m0);
    return g.used;
}

static size_t
fuzz_auth(const uint8_t *p, size_t len, size_t cut)
{
    struct socks_auth a, t;
    int r = socks_parse_auth(p, len, &a);
    FUZZ_CHECK(r == CAT_OK || r == CAT_AGAIN || r == CAT_ERR);
    if (r == CAT_ERR)
        FUZZ_CHECK(a.err != NULL && strncmp(a.err, "SOCKS auth: ", 12) == 0);
    int rt = socks_parse_auth(p, cut < len ? cut : len, &t);
    FUZZ_CHECK(rt == CAT_AGAIN || rt == r);
    if (r == CAT_ERR && rt == CAT_ERR)
        FUZZ_CHECK(strcmp(t.err, a.err) == 0);
    if (r != CAT_OK)
        return 0;
    FUZZ_CHECK(a.err == NULL);
    if (rt == CAT_OK)
        FUZZ_CHECK(t.used == a.used && strcmp(t.user, a.user) == 0 && strcmp(t.pass, a.pass) == 0);
    FUZZ_CHECK(a.user_len >= 1 && a.user_len <= 255 && a.pass_len <= 255);
    FUZZ_CHECK(strlen(a.user) == a.user_len && strlen(a.pass) == a.pass_len);
    FUZZ_CHECK(a.used == 3 + a.user_len + a.pass_len && a.used <= len);
    FUZZ_CHECK(memcmp(a.user, p + 2, a.user_len) == 0);
    FUZZ_CHECK(memcmp(a.pass, p + 3 + a.user_len, a.pass_len) == 0);
    FUZZ_CHECK(socks_parse_auth(p, a.used - 1, &t) == CAT_AGAIN);
    size_t used = a.used;
    socks_auth_wipe(&a);
    FUZZ_CHECK(a.pass_len == 0 && a.pass[0] == '\0' && a.pass[254] == '\0');
    return used;
}

static void
fuzz_check_req(const struct socks_req *r, const uint8_t *p, size_t len)
{
    FUZZ_CHECK(r->err == NULL && r->used <= len);
    FUZZ_CHECK(r->cmd >= SOCKS_CMD_CONNECT && r->cmd <= SOCKS_CMD_UDP_ASSOCIATE);
    FUZZ_CHECK(r->cmd != SOCKS_CMD_CONNECT || r->port != 0);
    FUZZ_CHECK(r->port == (uint16_t)((p[r->used - 2] << 8) | p[r->used - 1]));
    FUZZ_CHECK(r->host_len >= 1 && r->host_len <= 253 && strlen(r->host) == r->host_len);
    for (size_t i = 0; i < r->host_len; i++)
        FUZZ_CHECK(fuzz_host_char((unsigned char)r->host[i]));
    switch (r->atyp) {
    case SOCKS_ATYP_IPV4:
        FUZZ_CHECK(r->used == 10 && r->has_addr && !r->name_is_ip);
        break;
    case SOCKS_ATYP_IPV6:
        FUZZ_CHECK(r->used == 22 && r->has_addr && !r->name_is_ip);
        break;
    case SOCKS_ATYP_DOMAIN:
        FUZZ_CHECK(r->used == 7 + (size_t)p[4]);
        FUZZ_CHECK(r->has_addr == r->name_is_ip);
        FUZZ_CHECK(r->host[r->host_len - 1] != '.' || r->host_len == 1);
        break;
    default:
        FUZZ_CHECK(0);
    }
    if (!r->has_addr) {
        FUZZ_CHECK(r->addr.ss_family == AF_UNSPEC && memchr(r->host, ':', r->host_len) == NULL);
        return;
    }
    /* The address, its text and the reply built from it all agree. */
    char text[INET6_ADDRSTRLEN];
    uint8_t out[SOCKS_REPLY_MAX];
    size_t n = socks_reply(out, SOCKS_REP_SUCCEEDED, (const struct sockaddr *)&r->addr);
    if (r->addr.ss_family == AF_INET) {
        struct sockaddr_in sin;
        memcpy(&sin, &r->addr, sizeof(sin));
        FUZZ_CHECK(ntohs(sin.sin_port) == r->port);
        FUZZ_CHECK(inet_ntop(AF_INET, &sin.sin_addr, text, sizeof(text)) != NULL);
        FUZZ_CHECK(n == 10 && out[3] == SOCKS_ATYP_IPV4);
    } else {
        FUZZ_CHECK(r->addr.ss_family == AF_INET6);
        struct sockaddr_in6 sin6;
        memcpy(&sin6, &r->addr, sizeof(sin6));
        FUZZ_CHECK(ntohs(sin6.sin6_port) == r->port);
        FUZZ_CHECK(!IN6_IS_ADDR_V4MAPPED(&sin6.sin6_addr));
        FUZZ_CHECK(inet_ntop(AF_INET6, &sin6.sin6_addr, text, sizeof(text)) != NULL);
        FUZZ_CHECK(n == 22 && out[3] == SOCKS_ATYP_IPV6);
    }
    FUZZ_CHECK(strcmp(text, r->host) == 0);
    if (r->port == 0)
        return;
    struct socks_req back;
    out[1] = SOCKS_CMD_CONNECT;
    FUZZ_CHECK(socks_parse_request(out, n, &back) == CAT_OK && back.used == n);
    FUZZ_CHECK(strcmp(back.host, r->host) == 0 && back.port == r->port);
    FUZZ_CHECK(memcmp(&back.addr, &r->addr, sizeof(back.addr)) == 0);
}

static size_t
fuzz_request(const uint8_t *p, size_t len, size_t cut)
{
    struct socks_req r, t;
    int rc = socks_parse_request(p, len, &r);
    FUZZ_CHECK(rc == CAT_OK || rc == CAT_AGAIN || rc == CAT_ERR);
    int rt = socks_parse_request(p, cut < len ? cut : len, &t);
    FUZZ_CHECK(rt == CAT_AGAIN || rt == rc);
    if (rc == CAT_ERR) {
        FUZZ_CHECK(r.err != NULL && strncmp(r.err, "SOCKS request: ", 15) == 0);
        FUZZ_CHECK(r.rep == SOCKS_REP_GENERAL_FAILURE || r.rep == SOCKS_REP_HOST_UNREACHABLE ||
                   r.rep == SOCKS_REP_CMD_UNSUPPORTED || r.rep == SOCKS_REP_ATYP_UNSUPPORTED);
        if (rt == CAT_ERR)
            FUZZ_CHECK(t.rep == r.rep && strcmp(t.err, r.err) == 0);
        uint8_t out[SOCKS_REPLY_MAX];
        FUZZ_CHECK(socks_reply(out, r.rep, NULL) == 10 && out[1] == r.rep);
        FUZZ_CHECK(strcmp(socks_rep_str(r.rep), "unassigned") != 0);
        return 0;
    }
    if (rc != CAT_OK)
        return 0;
    fuzz_check_req(&r, p, len);
    if (rt == CAT_OK)
        FUZZ_CHECK(t.used == r.used && strcmp(t.host, r.host) == 0 && t.port == r.port);
    FUZZ_CHECK(socks_parse_request(p, r.used - 1, &t) == CAT_AGAIN);
    FUZZ_CHECK(strcmp(socks_cmd_str(r.cmd), "unknown") != 0);
    return r.used;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 16777619u;
    size_t cut = size > 0 ? h % (size + 1) : 0;

    fuzz_greeting(data, size, cut);
    fuzz_auth(data, size, cut);
    fuzz_request(data, size, cut);

    /* greeting, auth, request, as curl sends them with credentials */
    size_t off = fuzz_greeting(data, size, cut);
    if (off > 0) {
        size_t a = fuzz_auth(data + off, size - off, cut);
        if (a > 0) {
            size_t q = fuzz_request(data + off + a, size - off - a, cut);
            FUZZ_CHECK(off + a + q <= size);
        }
        /* greeting, request: the no-auth path */
        size_t q = fuzz_request(data + off, size - off, cut);
        FUZZ_CHECK(off + q <= size);
    }

    if (size >= 1) {
        FUZZ_CHECK(socks_rep_str(data[0]) != NULL && socks_cmd_str(data[0]) != NULL);
        FUZZ_CHECK(socks_rep_from_errno(data[0]) <= SOCKS_REP_ATYP_UNSUPPORTED);
    }
    return 0;
}
