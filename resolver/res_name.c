/*
 * Pure helpers of the resolver: which strings are host names or IP literals,
 * how a name becomes a cache key, how configured server strings parse, and
 * the order in which answers are handed to connect(). No state, no I/O: the
 * lookup path in res.c runs these before anything could reach the network,
 * so a name rejected here never becomes a DNS query.
 */
#include "resolver/res_int.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

static bool
res_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool
res_is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || res_is_digit(c) || c == '-' ||
           c == '_';
}

bool
res_name_norm(const char *host, char key[RES_KEY_SIZE])
{
    size_t len = strnlen(host, RES_NAME_MAX + 2);
    if (len > RES_NAME_MAX + 1)
        return false;
    if (len > 0 && host[len - 1] == '.')
        len--;
    if (len == 0 || len > RES_NAME_MAX)
        return false;

    size_t label = 0;
    bool numeric = true; /* the current label is all digits so far */
    for (size_t i = 0; i < len; i++) {
        char c = host[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
            numeric = true;
            key[i] = '.';
            continue;
        }
        if (!res_is_name_char(c) || ++label > RES_LABEL_MAX)
            return false;
        numeric = numeric && res_is_digit(c);
        key[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    /* label == 0 here means "a..": the dot before the stripped one ended empty.
     * An all-digit last label is no host name (RFC 3696 2: top-level domains
     * are not all-numeric); it is a mistyped or shortened IPv4 literal such
     * as "10.1" or "1.2.3.256" that some clients would read as an address:
     * answering BADNAME keeps it out of DNS and out of policy ambiguity. */
    if (label == 0 || numeric)
        return false;
    key[len] = '\0';
    return true;
}

bool
res_literal(const char *host, struct res_caddr *a)
{
    memset(a, 0, sizeof(*a));
    /* inet_pton(AF_INET) takes only the dotted quad, not "127.1" or "0x7f.1". */
    if (inet_pton(AF_INET, host, a->a) == 1) {
        a->family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, host, a->a) == 1) {
        a->family = AF_INET6;
        return true;
    }
    return false;
}

bool
res_family_ok(enum cfg_family f, int af)
{
    switch (f) {
    case CFG_FAMILY_IPV4:
        return af == AF_INET;
    case CFG_FAMILY_IPV6:
        return af == AF_INET6;
    case CFG_FAMILY_ANY:
        break;
    }
    return af == AF_INET || af == AF_INET6;
}

bool
res_caddr_from_sa(const struct sockaddr *sa, struct res_caddr *a)
{
    memset(a, 0, sizeof(*a));
    if (sa->sa_family == AF_INET) {
        a->family = AF_INET;
        memcpy(a->a, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        a->family = AF_INET6;
        memcpy(a->a, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
        return true;
    }
    return false;
}

static bool
res_answer_has(const struct res_answer *out, const struct res_caddr *a)
{
    for (size_t i = 0; i < out->n; i++) {
        struct res_caddr b;
        if (res_caddr_from_sa((const struct sockaddr *)&out->addrs[i], &b) &&
            memcmp(&b, a, sizeof(b)) == 0)
            return true;
    }
    return false;
}

void
res_answer_add(struct res_answer *out, const struct res_caddr *a)
{
    if (out->n >= RES_MAX_ADDRS || res_answer_has(out, a))
        return;
    struct sockaddr_storage *ss = &out->addrs[out->n];
    memset(ss, 0, sizeof(*ss));
    if (a->family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, a->a, 4);
        out->lens[out->n] = sizeof(*sin);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, a->a, 16);
        out->lens[out->n] = sizeof(*sin6);
    }
    out->n++;
}

void
res_order(const struct res_caddr *in, size_t n, struct res_answer *out)
{
    out->err = RES_OK;
    out->n = 0;
    if (n == 0)
        return;
    /* Two cursors, one per family, each skipping the other family's entries. */
    const int fam[2] = {in[0].family, in[0].family == AF_INET ? AF_INET6 : AF_INET};
    size_t cur[2] = {0, 0};
    bool done[2] = {false, false};
    for (unsigned turn = 0; out->n < RES_MAX_ADDRS && !(done[0] && done[1]); turn ^= 1) {
        if (done[turn])
            continue;
        size_t before = out->n;
        while (cur[turn] < n && out->n == before) {
            const struct res_caddr *a = &in[cur[turn]++];
            if (a->family == fam[turn])
                res_answer_add(out, a); /* a duplicate adds nothing: keep looking */
        }
        if (out->n == before)
            done[turn] = true;
    }
}

unsigned
res_ttl_clamp(long ttl, unsigned min_s, unsigned max_s)
{
    unsigned long t = ttl < 0 ? 0 : (unsigned long)ttl;
    if (t < min_s)
        t = min_s;
    if (t > max_s)
        t = max_s;
    return (unsigned)t;
}

/* "53" -> 53; digits only, 1..65535. */
static bool
res_port_parse(const char *s, uint16_t *port)
{
    unsigned long v = 0;
    size_t i = 0;
    for (; s[i] != '\0'; i++) {
        if (!res_is_digit(s[i]) || i >= 5)
            return false;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (i == 0 || v == 0 || v > 65535)
        return false;
    *port = (uint16_t)v;
    return true;
}

int
res_server_parse(const char *s, struct res_server *out, char *err, size_t errlen)
{
    char host[INET6_ADDRSTRLEN];
    const char *port = NULL;
    size_t slen = strlen(s);

    memset(out, 0, sizeof(*out));
    out->port = 53;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL) {
            snprintf(err, errlen, "\"%.64s\": missing ']'", s);
            return CAT_ERR;
        }
        if (close[1] != '\0' && close[1] != ':') {
            snprintf(err, errlen, "\"%.64s\": expected ':port' after ']'", s);
            return CAT_ERR;
        }
        size_t hlen = (size_t)(close - s - 1);
        if (hlen == 0 || hlen >= sizeof(host)) {
            snprintf(err, errlen, "\"%.64s\": not an IPv6 address", s);
            return CAT_ERR;
        }
        memcpy(host, s + 1, hlen);
        host[hlen] = '\0';
        if (close[1] == ':')
            port = close + 2;
    } else {
        const char *colon = strchr(s, ':');
        if (colon != NULL && strchr(colon + 1, ':') == NULL) {
            /* One colon: IPv4 with a port. Two or more: a bare IPv6 address. */
            if ((size_t)(colon - s) >= sizeof(host)) {
                snprintf(err, errlen, "\"%.64s\": not an IP address", s);
                return CAT_ERR;
            }
            memcpy(host, s, (size_t)(colon - s));
            host[colon - s] = '\0';
            port = colon + 1;
        } else {
            if (slen >= sizeof(host)) {
                snprintf(err, errlen, "\"%.64s\": not an IP address", s);
                return CAT_ERR;
            }
            memcpy(host, s, slen + 1);
        }
    }
    if (strchr(host, '%') != NULL) {
        /* ares_addr_port_node has no scope id: the query would leave by any link. */
        snprintf(err, errlen, "\"%.64s\": scoped IPv6 addresses are not supported", s);
        return CAT_ERR;
    }
    if (!res_literal(host, &out->addr)) {
        snprintf(err, errlen, "\"%.64s\": not an IP address (names are not allowed here)", s);
        return CAT_ERR;
    }
    if (port != NULL && !res_port_parse(port, &out->port)) {
        snprintf(err, errlen, "\"%.64s\": port must be 1..65535", s);
        return CAT_ERR;
    }
    if (s[0] != '[' && port != NULL && out->addr.family != AF_INET) {
        snprintf(err, errlen, "\"%.64s\": write an IPv6 address with a port as [addr]:port", s);
        return CAT_ERR;
    }
    if (s[0] == '[' && out->addr.family != AF_INET6) {
        snprintf(err, errlen, "\"%.64s\": only IPv6 addresses go in brackets", s);
        return CAT_ERR;
    }
    return CAT_OK;
}
