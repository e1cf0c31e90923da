/*
 * Transparent listeners (see transparent.h): the original destination,
 * and the refusal of connections that were not redirected at all.
 */
#include "core/transparent.h"

#include "core/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Whether the address is one of this host's own: a socket without
 * IP_TRANSPARENT binds only to those (EADDRNOTAVAIL otherwise). */
static bool
transparent_addr_is_local(const struct sockaddr_storage *ss)
{
    struct sockaddr_storage a = *ss;
    socklen_t len = a.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (a.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&a)->sin6_port = 0;
    else
        ((struct sockaddr_in *)&a)->sin_port = 0;
    int fd = socket(a.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return true; /* unknown: the safe answer */
    bool local = bind(fd, (const struct sockaddr *)&a, len) == 0 || errno != EADDRNOTAVAIL;
    close(fd);
    return local;
}

static bool
transparent_addr_is_any(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
    return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
}

/*
 * A redirected connection (iptables REDIRECT, or TPROXY): the destination the
 * client meant is the original destination (SO_ORIGINAL_DST) or, under
 * TPROXY, our local address. From here it is a CONNECT to that address,
 * without a request and without a 200: the same policy, detection, tunnel
 * or interception. Exits: POLICY, closed (no destination, or ourselves).
 */
int
transparent_start(struct conn *c)
{
    struct sockaddr_storage dst;
    socklen_t len = sizeof(dst);
    bool v6 = c->local_addr.ss_family == AF_INET6;
    int level = v6 ? SOL_IPV6 : SOL_IP;
    bool tproxy = c->lsn != NULL && c->lsn->tproxy;
    /* SO_ORIGINAL_DST and IP6T_SO_ORIGINAL_DST are both 80 (linux/netfilter_ipv4.h). */
    bool redirected = getsockopt(c->cli.fd, level, 80, &dst, &len) == 0;
    unsigned port, lport;
    char ip[INET6_ADDRSTRLEN], lip[INET6_ADDRSTRLEN];
    if (redirected) {
        conn_addr_text(&dst, ip, sizeof(ip), &port);
        conn_addr_text(&c->local_addr, lip, sizeof(lip), &lport);
        /* conntrack answers for an unNATed (TPROXY) connection too: its original
         * destination is then the local address, not a redirection. */
        if (tproxy && port == lport && strcmp(ip, lip) == 0)
            redirected = false;
    }
    if (!redirected) {
        if (!tproxy) {
            log_notice(LOG_FAC_MAIN, c,
                       LOG_EVT_DENIED " transparent listener reached directly (no redirection)");
            c->err = CONN_ERR_DENIED;
            return CAT_ERR;
        }
        dst = c->local_addr;
    }
    conn_addr_text(&dst, ip, sizeof(ip), &port);
    if (port == 0 || ip[0] == '\0') {
        log_info(LOG_FAC_MAIN, c, "transparent connection without a destination");
        c->err = CONN_ERR_BAD_REQUEST;
        return CAT_ERR;
    }
    bool direct;
    if (redirected) {
        conn_addr_text(&c->local_addr, lip, sizeof(lip), &lport);
        direct = lport == port && strcmp(lip, ip) == 0;
    } else {
        conn_addr_text(&c->lsn->addr, lip, sizeof(lip), &lport);
        direct = lport == port &&
                 (transparent_addr_is_any(&c->lsn->addr) ? transparent_addr_is_local(&dst) : strcmp(lip, ip) == 0);
    }
    if (direct) {
        /* Not redirected: a client connected to the listener itself. */
        log_notice(LOG_FAC_MAIN, c, LOG_EVT_DENIED " transparent listener reached directly");
        c->err = CONN_ERR_DENIED;
        return CAT_ERR;
    }
    struct conn_txn *t = &c->txn;
    clock_gettime(CLOCK_REALTIME, &t->start);
    t->method = HTTP_M_CONNECT;
    snprintf(t->method_str, sizeof(t->method_str), "CONNECT");
    snprintf(t->scheme, sizeof(t->scheme), "tcp");
    snprintf(t->host, sizeof(t->host), "%s", ip);
    t->port = port;
    c->srv_addr = dst; /* known before connecting: url.address for the policy */
    c->n_requests++;
    conn_set_state(c, CONN_ST_POLICY);
    return CAT_OK;
}
