/*
 * SOCKS5 messages (RFC 1928, RFC 1929) for the SOCKS listener: the
 * connection state machine reads client bytes into a buffer and calls these
 * parsers after each read; they say whether a message is complete, how long
 * it is, and what it asks for. Stateless: every call re-reads from buf[0],
 * checks fields in wire order (so an early error is the error of the whole
 * message), never reads at or beyond len, and allocates nothing.
 */
#include "core/socks.h"

#include <errno.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#define SOCKS_LABEL_MAX 63
#define SOCKS_REQ_HDR 4 /* VER CMD RSV ATYP */

size_t
socks_method_reply(uint8_t out[SOCKS_METHOD_REPLY_LEN], uint8_t method)
{
    out[0] = SOCKS_VERSION;
    out[1] = method;
    return SOCKS_METHOD_REPLY_LEN;
}

/*
 * A wrong first byte is usually a client pointed at the wrong port or
 * speaking the wrong SOCKS; naming the likely culprit saves the operator a
 * packet capture.
 */
static const char *
socks_greeting_ver_err(uint8_t v)
{
    if (v == 4)
        return "SOCKS greeting: version 4 is not SOCKS5 (a SOCKS4/4a client)";
    if (v == 0x16)
        return "SOCKS greeting: a TLS record, not SOCKS5 (a TLS client on the SOCKS port)";
    if (v >= 'A' && v <= 'Z')
        return "SOCKS greeting: text, not SOCKS5 (an HTTP client on the SOCKS port)";
    return "SOCKS greeting: version is not 5";
}

int
socks_parse_greeting(const uint8_t *buf, size_t len, struct socks_greeting *g)
{
    memset(g, 0, sizeof(*g));
    if (len == 0)
        return CAT_AGAIN;
    if (buf[0] != SOCKS_VERSION) {
        g->err = socks_greeting_ver_err(buf[0]);
        return CAT_ERR;
    }
    if (len < 2)
        return CAT_AGAIN;
    if (buf[1] == 0) {
        g->err = "SOCKS greeting: no methods offered (NMETHODS 0)";
        return CAT_ERR;
    }
    size_t need = 2 + (size_t)buf[1];
    if (len < need)
        return CAT_AGAIN;
    g->n_methods = buf[1];
    for (size_t i = 2; i < need; i++)
        g->offered[buf[i] >> 3] |= (uint8_t)(1u << (buf[i] & 7));
    g->used = need;
    return CAT_OK;
}

bool
socks_offers(const struct socks_greeting *g, uint8_t m)
{
    return (g->offered[m >> 3] >> (m & 7)) & 1;
}

uint8_t
socks_choose_method(const struct socks_greeting *g, bool require_auth)
{
    if (require_auth)
        return socks_offers(g, SOCKS_M_USERPASS) ? SOCKS_M_USERPASS : SOCKS_M_NONE;
    if (socks_offers(g, SOCKS_M_NOAUTH))
        return SOCKS_M_NOAUTH;
    /* A client set up with credentials may offer nothing else; taking them still logs the user. */
    if (socks_offers(g, SOCKS_M_USERPASS))
        return SOCKS_M_USERPASS;
    return SOCKS_M_NONE;
}

int
socks_parse_auth(const uint8_t *buf, size_t len, struct socks_auth *a)
{
    memset(a, 0, sizeof(*a));
    if (len == 0)
        return CAT_AGAIN;
    if (buf[0] != SOCKS_AUTH_VERSION) {
        /* Some clients wrongly repeat the SOCKS version here. */
        a->err = buf[0] == SOCKS_VERSION ? "SOCKS auth: version 5 where RFC 1929 wants 1"
                                         : "SOCKS auth: version is not 1";
        return CAT_ERR;
    }
    if (len < 2)
        return CAT_AGAIN;
    size_t ulen = buf[1];
    if (ulen == 0) {
        a->err = "SOCKS auth: empty user name (ULEN 0)";
        return CAT_ERR;
    }
    if (len < 2 + ulen)
        return CAT_AGAIN;
    if (memchr(buf + 2, '\0', ulen) != NULL) {
        a->err = "SOCKS auth: NUL byte in the user name";
        return CAT_ERR;
    }
    if (len < 3 + ulen)
        return CAT_AGAIN;
    size_t plen = buf[2 + ulen];
    size_t need = 3 + ulen + plen;
    if (len < need)
        return CAT_AGAIN;
    if (memchr(buf + 3 + ulen, '\0', plen) != NULL) {
        a->err = "SOCKS auth: NUL byte in the password";
        return CAT_ERR;
    }
    memcpy(a->user, buf + 2, ulen);
    a->user_len = ulen;
    memcpy(a->pass, buf + 3 + ulen, plen);
    a->pass_len = plen;
    a->used = need;
    return CAT_OK;
}

void
socks_auth_wipe(struct socks_auth *a)
{
    explicit_bzero(a->pass, sizeof(a->pass));
    a->pass_len = 0;
}

size_t
socks_auth_reply(uint8_t out[SOCKS_AUTH_REPLY_LEN], bool ok)
{
    out[0] = SOCKS_AUTH_VERSION;
    out[1] = ok ? 0 : 1;
    return SOCKS_AUTH_REPLY_LEN;
}

static bool
socks_is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool
socks_is_hex(unsigned char c)
{
    return socks_is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* Strict dotted quad: four decimal parts 0..255, no leading zeros (no octal ambiguity). */
static bool
socks_ipv4_parse(const char *p, size_t n, uint8_t out[4])
{
    size_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (i >= n || p[i] != '.')
                return false;
            i++;
        }
        size_t s = i;
        unsigned v = 0;
        while (i < n && socks_is_digit((unsigned char)p[i]) && i - s < 3)
            v = v * 10 + (unsigned)(p[i++] - '0');
        if (i == s || v > 255 || (i - s > 1 && p[s] == '0'))
            return false;
        out[part] = (uint8_t)v;
    }
    return i == n;
}

static void
socks_set_v4(struct socks_req *r, const uint8_t a[4])
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(r->port);
    memcpy(&sin.sin_addr, a, 4);
    memcpy(&r->addr, &sin, sizeof(sin));
    inet_ntop(AF_INET, a, r->host, sizeof(r->host));
    r->host_len = strlen(r->host);
    r->has_addr = true;
}

/*
 * An IPv4-mapped IPv6 destination reaches the IPv4 host; storing it as IPv4
 * means address rules written for 127.0.0.0/8 or 10/8 cannot be sidestepped
 * by spelling the address ::ffff:127.0.0.1.
 */
static void
socks_set_v6(struct socks_req *r, const uint8_t a[16])
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(a, mapped, sizeof(mapped)) == 0) {
        socks_set_v4(r, a + 12);
        return;
    }
    struct sockaddr_in6 sin6;
    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(r->port);
    memcpy(&sin6.sin6_addr, a, 16);
    memcpy(&r->addr, &sin6, sizeof(sin6));
    inet_ntop(AF_INET6, a, r->host, sizeof(r->host));
    r->host_len = strlen(r->host);
    r->has_addr = true;
}

/*
 * Host names as the rest of catena accepts them (core/http.c): letters,
 * digits, '-', '_', labels of 1..63, at most 253 in all; one trailing root
 * dot is dropped, as policy matches names without it. A numeric last label
 * must make a strict dotted quad (no "127.1", no octal), which is then used
 * as an address; a name with ':' must be an IPv6 literal (no zone, no
 * brackets). On success r->host holds the name or the literal's canonical
 * text, and the literal is in r->addr (port filled in later).
 */
static const char *
socks_host_check(const uint8_t *p, size_t n, struct socks_req *r)
{
    if (n > 1 && p[n - 1] == '.')
        n--;
    bool colon = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if (c == '\0')
            return "SOCKS request: NUL byte in the host name";
        if (c <= 0x20 || c == 0x7f)
            return "SOCKS request: space or control character in the host name";
        if (c == ':')
            colon = true;
        else if (!socks_is_digit(c) && !((c | 0x20) >= 'a' && (c | 0x20) <= 'z') && c != '-' &&
                 c != '_' && c != '.')
            return "SOCKS request: host name has a character other than letters, digits, "
                   "'-', '_', '.'";
    }
    char text[SOCKS_FIELD_MAX + 1];
    memcpy(text, p, n);
    text[n] = '\0';
    if (colon) {
        uint8_t a6[16];
        if (inet_pton(AF_INET6, text, a6) != 1)
            return "SOCKS request: host name with ':' is not an IPv6 literal";
        socks_set_v6(r, a6);
        r->name_is_ip = true;
        return NULL;
    }
    if (n > SOCKS_HOST_MAX)
        return "SOCKS request: host name longer than 253";
    size_t label = 0, last = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '.') {
            if (label == 0)
                return "SOCKS request: empty label in the host name";
            label = 0;
            last = i + 1;
        } else if (++label > SOCKS_LABEL_MAX) {
            return "SOCKS request: host name label longer than 63";
        }
    }
    if (label == 0)
        return "SOCKS request: empty label in the host name";
    /* As WHATWG URL: a last label of digits (or 0x hex) means the whole is an IPv4 address. */
    const uint8_t *l = p + last;
    size_t ln = n - last, i = 0;
    if (ln >= 2 && l[0] == '0' && (l[1] | 0x20) == 'x') {
        i = 2;
        while (i < ln && socks_is_hex(l[i]))
            i++;
    } else {
        while (i < ln && socks_is_digit(l[i]))
            i++;
    }
    if (i == ln) {
        uint8_t a4[4];
        if (!socks_ipv4_parse(text, n, a4))
            return "SOCKS request: numeric host name is not a dotted-quad IPv4 address";
        socks_set_v4(r, a4);
        r->name_is_ip = true;
        return NULL;
    }
    memcpy(r->host, text, n + 1);
    r->host_len = n;
    return NULL;
}

static int
socks_req_fail(struct socks_req *r, uint8_t rep, const char *err)
{
    r->rep = rep;
    r->err = err;
    return CAT_ERR;
}

int
socks_parse_request(const uint8_t *buf, size_t len, struct socks_req *r)
{
    memset(r, 0, sizeof(*r));
    r->addr.ss_family = AF_UNSPEC;
    if (len == 0)
        return CAT_AGAIN;
    if (buf[0] != SOCKS_VERSION)
        return socks_req_fail(r, SOCKS_REP_GENERAL_FAILURE, "SOCKS request: version is not 5");
    if (len < 2)
        return CAT_AGAIN;
    if (buf[1] < SOCKS_CMD_CONNECT || buf[1] > SOCKS_CMD_UDP_ASSOCIATE)
        return socks_req_fail(r, SOCKS_REP_CMD_UNSUPPORTED, "SOCKS request: unknown command");
    if (len < 3)
        return CAT_AGAIN;
    if (buf[2] != 0)
        return socks_req_fail(r, SOCKS_REP_GENERAL_FAILURE,
                              "SOCKS request: reserved byte is not 0");
    if (len < SOCKS_REQ_HDR)
        return CAT_AGAIN;
    r->cmd = buf[1];
    r->atyp = buf[3];
    size_t addr_off = SOCKS_REQ_HDR, addr_len;
    switch (buf[3]) {
    case SOCKS_ATYP_IPV4:
        addr_len = 4;
        break;
    case SOCKS_ATYP_IPV6:
        addr_len = 16;
        break;
    case SOCKS_ATYP_DOMAIN:
        if (len < SOCKS_REQ_HDR + 1)
            return CAT_AGAIN;
        addr_off++;
        addr_len = buf[SOCKS_REQ_HDR];
        if (addr_len == 0)
            return socks_req_fail(r, SOCKS_REP_GENERAL_FAILURE, "SOCKS request: empty host name");
        break;
    default:
        return socks_req_fail(r, SOCKS_REP_ATYP_UNSUPPORTED, "SOCKS request: unknown address type");
    }
    size_t need = addr_off + addr_len + 2;
    if (len < addr_off + addr_len)
        return CAT_AGAIN;
    /* The name is judged as soon as it is complete, before the port arrives. */
    if (buf[3] == SOCKS_ATYP_DOMAIN) {
        const char *err = socks_host_check(buf + addr_off, addr_len, r);
        if (err != NULL)
            return socks_req_fail(r, SOCKS_REP_HOST_UNREACHABLE, err);
    }
    if (len < need)
        return CAT_AGAIN;
    r->port = (uint16_t)((buf[need - 2] << 8) | buf[need - 1]);
    if (r->port == 0 && r->cmd == SOCKS_CMD_CONNECT)
        return socks_req_fail(r, SOCKS_REP_GENERAL_FAILURE, "SOCKS request: CONNECT to port 0");
    if (buf[3] == SOCKS_ATYP_IPV4)
        socks_set_v4(r, buf + addr_off);
    else if (buf[3] == SOCKS_ATYP_IPV6)
        socks_set_v6(r, buf + addr_off);
    /* A literal name became an address before the port arrived. */
    if (r->addr.ss_family == AF_INET)
        ((struct sockaddr_in *)&r->addr)->sin_port = htons(r->port);
    else if (r->addr.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&r->addr)->sin6_port = htons(r->port);
    r->used = need;
    return CAT_OK;
}

size_t
socks_reply(uint8_t out[SOCKS_REPLY_MAX], uint8_t rep, const struct sockaddr *bound)
{
    out[0] = SOCKS_VERSION;
    out[1] = rep;
    out[2] = 0;
    if (bound != NULL && bound->sa_family == AF_INET6) {
        struct sockaddr_in6 sin6;
        memcpy(&sin6, bound, sizeof(sin6));
        out[3] = SOCKS_ATYP_IPV6;
        memcpy(out + 4, &sin6.sin6_addr, 16);
        memcpy(out + 20, &sin6.sin6_port, 2); /* both in network order */
        return 22;
    }
    out[3] = SOCKS_ATYP_IPV4;
    if (bound != NULL && bound->sa_family == AF_INET) {
        struct sockaddr_in sin;
        memcpy(&sin, bound, sizeof(sin));
        memcpy(out + 4, &sin.sin_addr, 4);
        memcpy(out + 8, &sin.sin_port, 2);
    } else {
        memset(out + 4, 0, 6);
    }
    return 10;
}

uint8_t
socks_rep_from_errno(int err)
{
    switch (err) {
    case 0:
        return SOCKS_REP_SUCCEEDED;
    case ECONNREFUSED:
        return SOCKS_REP_CONN_REFUSED;
    case ENETUNREACH:
    case ENETDOWN:
        return SOCKS_REP_NET_UNREACHABLE;
    case EHOSTUNREACH:
    case EHOSTDOWN:
        return SOCKS_REP_HOST_UNREACHABLE;
    case ETIMEDOUT:
        /* RFC 1928 has no "timed out"; TTL expired is the nearest, and what other servers send. */
        return SOCKS_REP_TTL_EXPIRED;
    case EACCES:
    case EPERM:
        /* A local firewall rule refused the connect(). */
        return SOCKS_REP_NOT_ALLOWED;
    case EAFNOSUPPORT:
        return SOCKS_REP_ATYP_UNSUPPORTED;
    default:
        return SOCKS_REP_GENERAL_FAILURE;
    }
}

const char *
socks_rep_str(uint8_t rep)
{
    static const char *const names[] = {
        [SOCKS_REP_SUCCEEDED] = "succeeded",
        [SOCKS_REP_GENERAL_FAILURE] = "general SOCKS server failure",
        [SOCKS_REP_NOT_ALLOWED] = "connection not allowed by ruleset",
        [SOCKS_REP_NET_UNREACHABLE] = "network unreachable",
        [SOCKS_REP_HOST_UNREACHABLE] = "host unreachable",
        [SOCKS_REP_CONN_REFUSED] = "connection refused",
        [SOCKS_REP_TTL_EXPIRED] = "TTL expired",
        [SOCKS_REP_CMD_UNSUPPORTED] = "command not supported",
        [SOCKS_REP_ATYP_UNSUPPORTED] = "address type not supported",
    };
    return rep < CAT_ARRAY_LEN(names) ? names[rep] : "unassigned";
}

const char *
socks_cmd_str(uint8_t cmd)
{
    switch (cmd) {
    case SOCKS_CMD_CONNECT:
        return "CONNECT";
    case SOCKS_CMD_BIND:
        return "BIND";
    case SOCKS_CMD_UDP_ASSOCIATE:
        return "UDP ASSOCIATE";
    default:
        return "unknown";
    }
}
