/*
 * The connection state machine: one handler per state, in a table indexed by
 * enum conn_state. conn_run() calls the current state's handler until one
 * returns CAT_AGAIN (watchers armed) or CAT_ERR (closed). A handler that
 * returns CAT_OK has changed the state, and the new state's handler runs at
 * once. Every state has a deadline (c->timer).
 *
 * Explicit proxy path: ACCEPTED -> REQUEST -> POLICY -> RESOLVE -> CONNECT
 *   -> RESPOND (200 established) -> TUNNEL            for CONNECT
 *   -> EXCHANGE -> REQUEST (keep-alive) ...           for absolute-form HTTP
 * Errors answer a page (RESPOND) then LINGER until the client's FIN.
 *
 * Closing: conn_close() stops everything and queues the connection; the
 * worker frees it once the callback stack has unwound.
 */
#include "core/conn.h"

#include "chain/chain.h"
#include "core/admin.h"
#include "core/auth.h"
#include "core/forward.h"
#include "core/intercept.h"
#include "core/msg.h"
#include "core/page.h"
#include "core/policy.h"
#include "core/socks.h"
#include "core/transparent.h"
#include "core/verify.h"
#include "core/worker.h"
#include "emulation/emu.h"
#include "resolver/res.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* How long a closing connection waits for the client's FIN after our answer,
 * so that unread request bytes do not turn our close into a reset that
 * destroys the answer in flight (RFC 9112 section 9.6). */
#define CONN_LINGER_MS 2000
/* Bytes of request data a lingering close reads and discards at most. */
#define CONN_LINGER_MAX (256 * 1024)

static atomic_uint_fast64_t conn_next_id = 1;

static const char *const conn_state_names[CONN_ST_COUNT] = {
    [CONN_ST_ACCEPTED] = "accepted", [CONN_ST_REQUEST] = "request",
    [CONN_ST_PROXY_TLS] = "proxy-tls",
    [CONN_ST_SOCKS] = "socks",
    [CONN_ST_POLICY] = "policy",     [CONN_ST_RESOLVE] = "resolve",
    [CONN_ST_CONNECT] = "connect",   [CONN_ST_RESPOND] = "respond",
    [CONN_ST_CHAIN] = "chain",       [CONN_ST_UP_TLS] = "up-tls",
    [CONN_ST_PEEK_HELLO] = "peek-hello", [CONN_ST_SRV_TLS] = "srv-tls",
    [CONN_ST_PROBE] = "probe",       [CONN_ST_VALIDATE] = "validate",
    [CONN_ST_EMULATE] = "emulate",   [CONN_ST_CLI_TLS] = "cli-tls",
    [CONN_ST_TUNNEL] = "tunnel",     [CONN_ST_EXCHANGE] = "exchange",
    [CONN_ST_STREAM] = "stream",     [CONN_ST_LINGER] = "linger",
    [CONN_ST_ADMIN_BODY] = "admin-body",
};

static const char *const conn_err_names[CONN_ERR_COUNT] = {
    [CONN_ERR_NONE] = "none",
    [CONN_ERR_CLI_EOF] = "client closed",
    [CONN_ERR_CLI_RESET] = "client reset",
    [CONN_ERR_SRV_EOF] = "server closed",
    [CONN_ERR_SRV_RESET] = "server reset",
    [CONN_ERR_TIMEOUT] = "timeout",
    [CONN_ERR_DNS] = "DNS failure",
    [CONN_ERR_CONNECT] = "connect failed",
    [CONN_ERR_BAD_REQUEST] = "bad request",
    [CONN_ERR_BAD_RESPONSE] = "bad response",
    [CONN_ERR_CLI_TLS] = "client TLS handshake failed",
    [CONN_ERR_SRV_TLS] = "server TLS handshake failed",
    [CONN_ERR_EMULATE] = "certificate emulation failed",
    [CONN_ERR_DENIED] = "denied",
    [CONN_ERR_NOMEM] = "out of memory",
    [CONN_ERR_SHUTDOWN] = "shutdown",
    [CONN_ERR_INTERNAL] = "internal error",
};

const char *
conn_state_name(enum conn_state s)
{
    return s < CONN_ST_COUNT ? conn_state_names[s] : "?";
}

const char *
conn_err_str(enum conn_err e)
{
    return e < CONN_ERR_COUNT ? conn_err_names[e] : "?";
}

size_t
conn_log_ctx(const void *cv, char *buf, size_t cap)
{
    const struct conn *c = cv;
    int n;
    if (c->txn.host[0] != '\0')
        n = snprintf(buf, cap, "conn=%llu cli=%s target=%s:%u state=%s",
                     (unsigned long long)c->id, c->cli_text, c->txn.host, c->txn.port,
                     conn_state_name(c->state));
    else
        n = snprintf(buf, cap, "conn=%llu cli=%s state=%s", (unsigned long long)c->id,
                     c->cli_text, conn_state_name(c->state));
    return n < 0 ? 0 : CAT_MIN((size_t)n, cap - 1);
}

/* ---- the engine ----------------------------------------------------------- */

typedef int conn_state_fn(struct conn *c, unsigned ev);
static void conn_log_tls(struct conn *c);

static conn_state_fn conn_st_accepted, conn_st_proxy_tls, conn_st_request, conn_st_policy, conn_st_resolve,
    conn_st_connect, conn_st_respond, conn_st_tunnel, conn_st_exchange, conn_st_linger;

static conn_state_fn *const conn_states[CONN_ST_COUNT] = {
    [CONN_ST_ACCEPTED] = conn_st_accepted, [CONN_ST_REQUEST] = conn_st_request,
    [CONN_ST_PROXY_TLS] = conn_st_proxy_tls,
    [CONN_ST_SOCKS] = socks_st_request,
    [CONN_ST_POLICY] = conn_st_policy,     [CONN_ST_RESOLVE] = conn_st_resolve,
    [CONN_ST_CONNECT] = conn_st_connect,   [CONN_ST_RESPOND] = conn_st_respond,
    [CONN_ST_CHAIN] = fwd_st_chain,
    [CONN_ST_UP_TLS] = fwd_st_up_tls,
    [CONN_ST_PEEK_HELLO] = intercept_st_peek_hello,
    [CONN_ST_SRV_TLS] = intercept_st_srv_tls,
    [CONN_ST_PROBE] = verify_st_probe,
    [CONN_ST_VALIDATE] = verify_st_validate,
    [CONN_ST_EMULATE] = intercept_st_emulate,
    [CONN_ST_CLI_TLS] = intercept_st_cli_tls,
    [CONN_ST_TUNNEL] = conn_st_tunnel,     [CONN_ST_EXCHANGE] = conn_st_exchange,
    [CONN_ST_STREAM] = msg_stream,         [CONN_ST_LINGER] = conn_st_linger,
    [CONN_ST_ADMIN_BODY] = admin_st_body,
};

static void
conn_run(struct conn *c, unsigned ev)
{
    /* Bounded: a request passes through at most a handful of states per event. */
    for (int i = 0; i < 32 && !(c->flags & CONN_F_CLOSING); i++) {
        enum conn_state st = c->state;
        int rc = conn_states[st](c, ev);
        ev = 0; /* the event belonged to the first handler */
        if (rc == CAT_AGAIN)
            return;
        if (rc == CAT_ERR) {
            conn_close(c, c->err != CONN_ERR_NONE ? c->err : CONN_ERR_INTERNAL);
            return;
        }
        CAT_ASSERT(c->state != st || (c->flags & CONN_F_CLOSING));
    }
}

void
conn_wake(struct conn *c, unsigned ev)
{
    conn_run(c, ev);
}

void
conn_set_state(struct conn *c, enum conn_state st)
{
    log_debug(LOG_FAC_MAIN, c, "%s -> %s", conn_state_name(c->state), conn_state_name(st));
    c->state = st;
}

static void
conn_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct conn *c = io->data;
    unsigned ev = 0;
    if (io == &c->cli.io)
        ev = (revents & EV_READ ? CONN_EV_CLI_R : 0) | (revents & EV_WRITE ? CONN_EV_CLI_W : 0);
    else
        ev = (revents & EV_READ ? CONN_EV_SRV_R : 0) | (revents & EV_WRITE ? CONN_EV_SRV_W : 0);
    conn_run(c, ev);
}

static void
conn_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct conn *c = t->data;
    if (c->deadline_len > 0) {
        /* Idle timer: restarted lazily, only when it fires early. */
        ev_tstamp left = c->last_activity + c->deadline_len - ev_now(loop);
        if (left > 0.001) {
            ev_timer_set(t, left, 0.);
            ev_timer_start(loop, t);
            return;
        }
    }
    conn_run(c, CONN_EV_TIMER);
}

void
conn_side_want(struct conn *c, struct conn_side *s, int events)
{
    /* A TLS session may need the other direction (e.g. a read that must
     * first flush a key update): add what its last operation waits for. */
    if (s->ssl != NULL && events != 0)
        events |= s->tio.want;
    if (s->fd < 0 || s->events == events)
        return;
    struct ev_loop *loop = c->w->loop;
    ev_io_stop(loop, &s->io);
    s->events = events;
    if (events != 0) {
        ev_io_set(&s->io, s->fd, events);
        ev_io_start(loop, &s->io);
    }
}

void
conn_timer_once(struct conn *c, unsigned ms)
{
    ev_timer_stop(c->w->loop, &c->timer);
    c->deadline_len = 0;
    ev_timer_set(&c->timer, ms / 1000.0, 0.);
    ev_timer_start(c->w->loop, &c->timer);
}

void
conn_timer_idle(struct conn *c, unsigned ms)
{
    conn_timer_once(c, ms);
    c->deadline_len = ms / 1000.0;
    c->last_activity = ev_now(c->w->loop);
}

/* ---- lifecycle ------------------------------------------------------------ */

void
conn_addr_text(const struct sockaddr_storage *ss, char *ip, size_t iplen, unsigned *port)
{
    ip[0] = '\0';
    *port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, (socklen_t)iplen);
        *port = ntohs(a->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        /* Show IPv4-mapped clients as plain IPv4. */
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr))
            inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], ip, (socklen_t)iplen);
        else
            inet_ntop(AF_INET6, &a->sin6_addr, ip, (socklen_t)iplen);
        *port = ntohs(a->sin6_port);
    }
}

static void
conn_side_init(struct conn *c, struct conn_side *s, int fd)
{
    s->fd = fd;
    ev_io_init(&s->io, conn_io_cb, fd, 0);
    s->io.data = c;
    s->events = 0;
}

void
conn_accept(struct worker *w, int fd, const struct lsn *ln, const struct sockaddr *peer,
            socklen_t peerlen, struct cfg *cfg, struct tls_conf *tls)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        log_err(LOG_FAC_MAIN, NULL, "accept: out of memory");
        close(fd);
        return;
    }
    c->id = atomic_fetch_add_explicit(&conn_next_id, 1, memory_order_relaxed);
    c->w = w;
    c->lsn_type = ln->type;
    c->lsn = cfg_listener_find(cfg, ln->text);
    if (ln->type == CFG_LSN_HTTPS)
        c->lsn_ctx = tls_listener_ctx(tls, ln->text);
    c->cfg = cfg_ref(cfg);
    c->tls = tls_conf_ref(tls);
    c->pol = pol_current();
    memcpy(&c->cli_addr, peer, CAT_MIN((size_t)peerlen, sizeof(c->cli_addr)));
    socklen_t llen = sizeof(c->local_addr);
    if (getsockname(fd, (struct sockaddr *)&c->local_addr, &llen) == -1)
        memset(&c->local_addr, 0, sizeof(c->local_addr));
    unsigned port, lport;
    conn_addr_text(&c->cli_addr, c->cli_ip, sizeof(c->cli_ip), &port);
    conn_addr_text(&c->local_addr, c->local_ip, sizeof(c->local_ip), &lport);
    snprintf(c->cli_text, sizeof(c->cli_text), "%s:%u", c->cli_ip, port);
    conn_side_init(c, &c->cli, fd);
    conn_side_init(c, &c->srv, -1);
    ev_timer_init(&c->timer, conn_timer_cb, 1., 0.);
    c->timer.data = c;
    worker_conn_add(w, c);
    c->state = CONN_ST_ACCEPTED;
    conn_run(c, 0);
}

/* Ends a side's TLS session (no close_notify: the caller is dropping it). */
static void
conn_side_tls_free(struct conn_side *s)
{
    if (s->ssl != NULL)
        wolfSSL_free(s->ssl);
    s->ssl = NULL;
    memset(&s->tio, 0, sizeof(s->tio));
    if (s->up_ssl != NULL) /* the outer session goes after the inner one */
        wolfSSL_free(s->up_ssl);
    s->up_ssl = NULL;
    memset(&s->up_tio, 0, sizeof(s->up_tio));
    buf_free(&s->replay);
}

void
conn_srv_close(struct conn *c)
{
    if (c->srv.fd < 0)
        return;
    ev_io_stop(c->w->loop, &c->srv.io);
    c->srv.events = 0;
    conn_side_tls_free(&c->srv);
    close(c->srv.fd);
    c->srv.fd = -1;
    c->srv.eof = c->srv.shut = false;
    buf_free(&c->srv.in);
    buf_free(&c->srv.out);
    c->srv_reusable = false;
    c->srv_host[0] = '\0';
}

void
conn_close(struct conn *c, enum conn_err err)
{
    if (c->flags & CONN_F_CLOSING)
        return;
    c->flags |= CONN_F_CLOSING;
    if (c->err == CONN_ERR_NONE)
        c->err = err;
    struct ev_loop *loop = c->w->loop;
    ev_io_stop(loop, &c->cli.io);
    ev_io_stop(loop, &c->srv.io);
    ev_timer_stop(loop, &c->timer);
    res_cancel(c->dns);
    c->dns = NULL;
    conn_log_txn(c);
    conn_log_tls(c);
    /* Normal ends at debug; anything unusual at info so operators see it. */
    int level = (c->err == CONN_ERR_CLI_EOF || c->err == CONN_ERR_NONE) ? LOG_DEBUG : LOG_INFO;
    log_at(LOG_FAC_MAIN, level, c, "closed: %s", conn_err_str(c->err));
    worker_conn_remove(c->w, c);
    worker_defer_free(c->w, c);
}

void
conn_free(struct conn *c)
{
    CAT_ASSERT(c->flags & CONN_F_CLOSING);
    /* TLS sessions go before their emulated leaf (whose CTX they use). */
    conn_side_tls_free(&c->cli);
    conn_side_tls_free(&c->srv);
    verify_free(c);
    if (c->leaf != NULL)
        emu_leaf_unref(c->leaf);
    free(c->tlog);
    if (c->cli.fd >= 0)
        close(c->cli.fd);
    if (c->srv.fd >= 0)
        close(c->srv.fd);
    buf_free(&c->cli.in);
    buf_free(&c->cli.out);
    buf_free(&c->srv.in);
    buf_free(&c->srv.out);
    buf_free(&c->req_head);
    buf_free(&c->body);
    relay_tunnel_free(c->tunnel);
    free(c->addrs);
    conn_txn_reset(c);
    tls_conf_unref(c->tls);
    pol_unref(c->pol);
    cfg_unref(c->cfg);
    free(c);
}

void
conn_drain(struct conn *c)
{
    if (c->flags & CONN_F_IDLE)
        conn_close(c, CONN_ERR_SHUTDOWN);
    else
        c->flags |= CONN_F_CLOSE_AFTER;
}

void
conn_resolver_changed(struct conn *c)
{
    if (c->state == CONN_ST_VALIDATE) {
        verify_restart(c); /* its revocation check used the old resolver */
        return;
    }
    if (c->state != CONN_ST_RESOLVE || c->dns == NULL)
        return;
    /* The old resolver is about to be freed with this query: ask again. */
    res_cancel(c->dns);
    c->dns = NULL;
    conn_run(c, 0);
}

/* ---- transactions and the access log --------------------------------------- */

int
conn_tlslog_start(struct conn *c)
{
    if (c->tlog != NULL)
        return CAT_OK;
    c->tlog = calloc(1, sizeof(*c->tlog));
    if (c->tlog == NULL)
        return CAT_ERR;
    clock_gettime(CLOCK_REALTIME, &c->tlog->start);
    c->tlog->action = "TUNNELED";
    return CAT_OK;
}

/* The SSL access log line of a TLS connection, once, when it ends. */
static void
conn_log_tls(struct conn *c)
{
    struct conn_tlslog *g = c->tlog;
    if (g == NULL)
        return;
    struct log_tls t = {
        .start = g->start,
        .c_ip = c->cli_ip,
        .action = g->action,
        .sni = c->tls_host,
        .s_ip = c->srv_ip[0] ? c->srv_ip : NULL,
        .s_port = (int)c->tls_port,
        .cert_hostname = g->cert_hostname,
        .cert_issuer = g->cert_issuer,
        .cert_errors = g->cert_errors,
        .cert_status = g->cert_status,
        .cs_version = g->cs_version,
        .cs_cipher = g->cs_cipher,
        .rs_version = g->rs_version,
        .rs_cipher = g->rs_cipher,
        .sc_bytes = g->sc_bytes + c->cli.bytes_out,
        .cs_bytes = g->cs_bytes + c->cli.bytes_in,
        .detail = g->detail,
        .username = c->user[0] ? c->user : NULL,
        .upstream = c->route != NULL ? c->route->cfg->name : NULL,
        .upstream_intercepted = c->route == NULL  ? NULL
                                : c->cert == NULL ? "-"
                                : c->cert->upstream_intercepted ? "yes"
                                                                : "no",
    };
    if (c->tunnel != NULL) {
        t.sc_bytes += c->tunnel->moved[RELAY_S2C];
        t.cs_bytes += c->tunnel->moved[RELAY_C2S];
    }
    clock_gettime(CLOCK_REALTIME, &t.end);
    log_tls(&t);
    admin_count(t.action);
    free(c->tlog);
    c->tlog = NULL;
}

void
conn_txn_reset(struct conn *c)
{
    if (c->tlog != NULL && (c->flags & CONN_F_INTERCEPTED)) {
        c->tlog->sc_bytes += c->cli.bytes_out;
        c->tlog->cs_bytes += c->cli.bytes_in;
    }
    free(c->txn.path);
    free(c->txn.query);
    free(c->txn.user_agent);
    memset(&c->txn, 0, sizeof(c->txn));
    c->route_decided = false;
    c->cli.bytes_in = c->cli.bytes_out = 0;
    c->srv.bytes_in = c->srv.bytes_out = 0;
    c->flags &= ~CONN_F_LOGGED;
}

void
conn_log_txn(struct conn *c)
{
    if ((c->flags & CONN_F_LOGGED) || c->txn.method_str[0] == '\0')
        return;
    c->flags |= CONN_F_LOGGED;
    struct log_txn t = {0};
    unsigned port;
    char cli_ip[INET6_ADDRSTRLEN];
    conn_addr_text(&c->cli_addr, cli_ip, sizeof(cli_ip), &port);
    t.start = c->txn.start;
    clock_gettime(CLOCK_REALTIME, &t.end);
    t.c_ip = c->real_ip[0] ? c->real_ip : cli_ip;
    t.c_port = (int)port;
    t.upstream = c->route != NULL ? c->route->cfg->name : NULL;
    t.s_ip = c->local_ip;
    t.supplier_ip = c->srv_ip[0] ? c->srv_ip : NULL;
    t.action = c->txn.action ? c->txn.action : "TCP_ERR";
    t.status = c->txn.status;
    t.method = c->txn.method_str;
    t.scheme = c->txn.scheme;
    t.host = c->txn.host;
    t.port = (int)c->txn.port;
    t.path = c->txn.path;
    t.query = c->txn.query;
    t.user_agent = c->txn.user_agent;
    t.exception_id = c->txn.exception;
    t.username = c->user[0] ? c->user : NULL;
    admin_count(t.action);
    if (c->tunnel != NULL) {
        t.cs_bytes = c->cli.bytes_in + c->tunnel->moved[RELAY_C2S];
        t.sc_bytes = c->cli.bytes_out + c->tunnel->moved[RELAY_S2C];
    } else {
        t.cs_bytes = c->cli.bytes_in;
        t.sc_bytes = c->cli.bytes_out;
    }
    log_access(&t);
}

int
conn_respond_error(struct conn *c, int status, const char *exception_id, const char *fmt, ...)
{
    char detail[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);

    c->txn.status = status;
    c->txn.exception = exception_id;
    if (c->txn.action == NULL)
        c->txn.action = "TCP_ERR";
    /* Once response bytes went to the client, a page cannot follow: close. */
    if (c->resp_phase != CONN_MSG_IDLE) {
        log_info(LOG_FAC_MAIN, c, "%s after the response started: %s", exception_id, detail);
        c->err = CONN_ERR_BAD_RESPONSE;
        return CAT_ERR;
    }
    conn_srv_close(c);
    c->flags |= CONN_F_CLOSE_AFTER;
    /* A redirected client expects the origin's bytes, not a page: close. */
    if (c->lsn_type == CFG_LSN_TRANSPARENT && !(c->flags & CONN_F_INTERCEPTED)) {
        log_info(LOG_FAC_MAIN, c, "transparent connection refused (%s): %s", exception_id, detail);
        conn_log_txn(c);
        return CAT_ERR;
    }
    /* A SOCKS client not yet tunneled hears a SOCKS reply, not a page. */
    if (c->lsn_type == CFG_LSN_SOCKS5 && !(c->flags & CONN_F_INTERCEPTED)) {
        log_info(LOG_FAC_MAIN, c, "SOCKS request refused (%s): %s", exception_id, detail);
        return socks_answer_failure(c, socks_rep_for(exception_id, c->connect_errno));
    }
    buf_free(&c->cli.out);
    if (buf_reserve(&c->cli.out, PAGE_MAX) != CAT_OK ||
        page_render(&c->cli.out, status, exception_id,
                    &(struct page_vars){.host = c->txn.host, .reason = detail,
                                        .client = c->cli_ip},
                    NULL) != CAT_OK) {
        c->err = CONN_ERR_NOMEM;
        return CAT_ERR;
    }
    c->after_respond = CONN_ST_LINGER;
    conn_set_state(c, CONN_ST_RESPOND);
    return CAT_OK;
}

/* ---- states ----------------------------------------------------------------- */

/* Entered once per connection. Exits: REQUEST, SOCKS, POLICY (transparent), PROXY_TLS. */
static int
conn_st_accepted(struct conn *c, unsigned ev)
{
    log_debug(LOG_FAC_MAIN, c, "accepted");
    if (c->lsn_type == CFG_LSN_HTTPS) {
        conn_timer_once(c, c->cfg->timeouts.tls_handshake_ms);
        conn_set_state(c, CONN_ST_PROXY_TLS);
        return CAT_OK;
    }
    conn_timer_once(c, c->cfg->timeouts.head_ms);
    if (c->lsn_type == CFG_LSN_TRANSPARENT)
        return transparent_start(c);
    conn_set_state(c, c->lsn_type == CFG_LSN_SOCKS5 ? CONN_ST_SOCKS : CONN_ST_REQUEST);
    return CAT_OK;
}

/*
 * An https listener: the client (a downstream tier across a WAN) speaks TLS
 * to the proxy itself. This session stays under everything that follows:
 * requests, CONNECT tunnels (relayed through it instead of spliced) and an
 * interception's session, which nests inside it.
 * Exits: REQUEST, closed (handshake failed or timed out).
 */
static int
conn_st_proxy_tls(struct conn *c, unsigned ev)
{
    struct conn_side *s = &c->cli;
    if (ev & CONN_EV_TIMER) {
        log_info(LOG_FAC_SSL, c, LOG_EVT_CLI_TLS " to the proxy: handshake timed out");
        c->err = CONN_ERR_CLI_TLS;
        return CAT_ERR;
    }
    if (s->ssl == NULL) {
        if (c->lsn_ctx == NULL) {
            log_err(LOG_FAC_SSL, c, "https listener without a TLS context");
            c->err = CONN_ERR_INTERNAL;
            return CAT_ERR;
        }
        conn_side_tls_io(s, NULL);
        s->tio.watch_alerts = true; /* a client refusing the proxy's certificate */
        s->ssl = tls_session_new(c->lsn_ctx, &s->tio);
        if (s->ssl == NULL) {
            c->err = CONN_ERR_NOMEM;
            return CAT_ERR;
        }
    }
    int ret;
    int rc = conn_side_handshake(c, s, false, &ret);
    if (rc == CAT_AGAIN)
        return CAT_AGAIN;
    if (rc != CAT_OK) {
        c->err = CONN_ERR_CLI_TLS;
        if (s->tio.peer_closed && s->tio.plain_alert == 0) {
            /* Connected and left (a downstream's health check): not an error. */
            log_debug(LOG_FAC_SSL, c, "client closed before the TLS handshake ended");
            c->err = CONN_ERR_CLI_EOF;
            return CAT_ERR;
        }
        char d[256];
        tls_describe_error(s->ssl, ret, d, sizeof(d));
        log_info(LOG_FAC_SSL, c, LOG_EVT_CLI_TLS " to the proxy: %s%s", d,
                 tls_peer_rejected_cert(s->ssl, &s->tio)
                     ? " (the client refused the proxy's certificate)"
                     : "");
        return CAT_ERR;
    }
    conn_side_want(c, s, 0);
    log_debug(LOG_FAC_SSL, c, "TLS to the proxy: %s %s", wolfSSL_get_version(s->ssl),
              wolfSSL_get_cipher(s->ssl));
    conn_timer_once(c, c->cfg->timeouts.head_ms);
    conn_set_state(c, CONN_ST_REQUEST);
    return CAT_OK;
}

/* Copies a view into an owned C string (NULL for an empty view). */
static char *
conn_strndup(struct http_str s)
{
    return s.len ? strndup(s.p, s.len) : NULL;
}

/*
 * Inside intercepted TLS the client names the site twice more: the request
 * target or its Host header must agree with the name intercepted (the SNI,
 * else the CONNECT host) and the CONNECT port; a request is never routed by
 * the less trusted name. Fills u's host, port and scheme. CAT_OK, or
 * CAT_DECLINED when it answered an error page.
 */
static int
conn_target_intercepted(struct conn *c, const struct http_head *h, struct http_url *u)
{
    if (h->method == HTTP_M_CONNECT) {
        conn_respond_error(c, 400, "invalid_request", "CONNECT inside an intercepted connection");
        return CAT_DECLINED;
    }
    struct http_str host = u->host;
    unsigned port = u->port;
    if (host.len == 0) {
        const struct http_hdr *hh = http_find(h, "Host");
        if (hh == NULL || http_parse_authority(hh->value, &host, &port) != CAT_OK) {
            conn_respond_error(c, 400, "invalid_request", "Missing or invalid Host header");
            return CAT_DECLINED;
        }
        if (port == 0)
            port = c->tls_port;
    } else if (!http_str_eq(u->scheme, "https")) {
        conn_respond_error(c, 400, "invalid_request", "Only https:// URLs inside TLS");
        return CAT_DECLINED;
    }
    if (!http_str_eq(host, c->tls_host) || port != c->tls_port) {
        log_notice(LOG_FAC_MAIN, c, LOG_EVT_DENIED " Host %.*s:%u does not match %s:%u",
                   (int)CAT_MIN(host.len, 255), host.p, port, c->tls_host, c->tls_port);
        c->txn.action = "TCP_DENIED";
        conn_respond_error(c, 409, "host_mismatch",
                           "The requested host does not match the server name of this TLS "
                           "connection (%s)",
                           c->tls_host);
        return CAT_DECLINED;
    }
    u->host = host;
    u->port = port;
    u->scheme = (struct http_str){"https", 5};
    return CAT_OK;
}

/* request.header.NAME= for the policy: the parsed head is the callback's arg. */
static const char *
conn_cpl_header(void *arg, const char *name, size_t *len)
{
    const struct http_hdr *x = http_find(arg, name);
    if (x == NULL)
        return NULL;
    *len = x->value.len;
    return x->value.p;
}

void
conn_cpl_txn(const struct conn *c, struct cpl_txn *t, const struct http_head *h)
{
    memset(t, 0, sizeof(*t));
    t->client = (const struct sockaddr *)&c->cli_addr;
    if (c->local_addr.ss_family == AF_INET)
        t->proxy_port = ntohs(((const struct sockaddr_in *)&c->local_addr)->sin_port);
    else if (c->local_addr.ss_family == AF_INET6)
        t->proxy_port = ntohs(((const struct sockaddr_in6 *)&c->local_addr)->sin6_port);
    t->client_protocol = c->lsn_type == CFG_LSN_SOCKS5 ? "socks" : "http";
    /* The address only where it is this transaction's: a transparent
     * connection's destination, or the origin this request's target is
     * connected to (not the previous request's on a kept-alive connection). */
    if (c->srv_addr.ss_family != AF_UNSPEC &&
        (c->lsn_type == CFG_LSN_TRANSPARENT ||
         (c->srv.fd >= 0 && c->srv_port == c->txn.port && strcmp(c->srv_host, c->txn.host) == 0)))
        t->url_address = (const struct sockaddr *)&c->srv_addr;
    t->user = c->user[0] ? c->user : NULL;
    if (h != NULL) {
        t->header = conn_cpl_header;
        t->header_arg = (void *)h;
    }
}

/*
 * The <proxy> layers for a request (h: its head, for request.header=; NULL
 * for SOCKS), and authentication when they ask for it. CAT_OK: go on;
 * CAT_DECLINED: answered (407), the state changed.
 */
static int
conn_policy_proxy(struct conn *c, const struct http_head *h)
{
    struct conn_txn *x = &c->txn;
    char url[2048];
    snprintf(url, sizeof(url), "%s://%s:%u%s%s", x->scheme, x->host, x->port,
             x->path ? x->path : "", x->query ? x->query : "");
    struct cpl_txn t;
    conn_cpl_txn(c, &t, h);
    if (c->flags & CONN_F_INTERCEPTED)
        t.client_protocol = "https";
    t.method = x->method_str;
    t.url_scheme = x->scheme;
    t.url_host = x->host;
    t.url_port = x->port;
    t.url_path = x->path;
    t.url = url;
    t.server_url_host = x->host;
    /* A new request: the <proxy> verdict is its own. */
    c->pd.allow = CPL_UNSET;
    c->pd.deny_reason = NULL;
    c->pd.deny_unauthorized = false;
    c->pd.realm = NULL;
    pol_eval(c->pol, CPL_L_PROXY, &t, &c->pd);
    if (c->pd.realm == NULL && !c->pd.deny_unauthorized)
        return CAT_OK;
    if (c->user[0] != '\0')
        return CAT_OK; /* authenticated earlier on this connection */
    if (h == NULL) {
        /* SOCKS or transparent: no 407 to send. A SOCKS listener with a
         * realm has logged the user in already. */
        c->pd.allow = CPL_NO;
        c->pd.deny_reason = c->lsn_type == CFG_LSN_SOCKS5
                                ? "The policy requires a login: give this SOCKS listener a realm"
                                : "The policy requires a login, which transparent clients "
                                  "cannot give";
        return CAT_OK;
    }
    struct auth_realm *r = c->pd.realm ? tls_realm(c->tls, c->pd.realm) : NULL;
    if (r == NULL && c->tls->n_realms > 0)
        r = c->tls->realms[0];
    if (r == NULL) {
        log_err(LOG_FAC_MAIN, c, "policy asks for realm %s, which the node config does not define",
                c->pd.realm ? c->pd.realm : "(any)");
        c->pd.allow = CPL_NO;
        c->pd.deny_reason = "Authentication is not available";
        return CAT_OK;
    }
    const struct http_hdr *pa = h != NULL ? http_find(h, "Proxy-Authorization") : NULL;
    enum auth_result res = AUTH_MALFORMED;
    char tried[AUTH_USER_MAX] = "";
    if (pa != NULL && pa->value.len < AUTH_HEADER_MAX) {
        char hv[AUTH_HEADER_MAX];
        memcpy(hv, pa->value.p, pa->value.len);
        hv[pa->value.len] = '\0';
        res = auth_check_basic(r, hv, tried, sizeof(tried), t.client, time(NULL));
        memset(hv, 0, sizeof(hv));
    }
    if (res == AUTH_OK) {
        snprintf(c->user, sizeof(c->user), "%s", tried);
        /* Again, now that user= is known. */
        t.user = c->user;
        c->pd.allow = CPL_UNSET;
        pol_eval(c->pol, CPL_L_PROXY, &t, &c->pd);
        return CAT_OK;
    }
    if (pa != NULL)
        log_notice(LOG_FAC_MAIN, c, "authentication %s for user \"%s\" (realm %s)",
                   auth_result_str(res), tried, auth_realm_name(r));
    c->txn.action = "TCP_DENIED";
    c->txn.status = 407;
    c->txn.exception = "authentication_required";
    c->flags |= CONN_F_CLOSE_AFTER;
    buf_free(&c->cli.out);
    static const char body[] = "Proxy authentication required\n";
    if (buf_reserve(&c->cli.out, 1024) != CAT_OK ||
        buf_printf(&c->cli.out,
                   "HTTP/1.1 407 Proxy Authentication Required\r\n%s\r\n"
                   "X-Catena-Exception: authentication_required\r\n"
                   "Content-Type: text/plain\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n\r\n%s",
                   auth_challenge_header(r), sizeof(body) - 1, body) != CAT_OK) {
        c->err = CONN_ERR_NOMEM;
        return CAT_ERR;
    }
    c->after_respond = CONN_ST_LINGER;
    conn_set_state(c, CONN_ST_RESPOND);
    return CAT_DECLINED;
}

/*
 * A request for catena itself: the admin listener, or the CA download name
 * on the proxy port. Answered here, then the connection closes.
 * Exits: RESPOND.
 */
static int
conn_local_request(struct conn *c, const struct http_head *h, const struct http_url *u)
{
    struct conn_txn *t = &c->txn;
    bool admin = c->lsn_type == CFG_LSN_ADMIN;
    const struct cfg_net *nets = admin ? c->cfg->admin_nets : c->cfg->client_nets;
    size_t n_nets = admin ? c->cfg->n_admin_nets : c->cfg->n_client_nets;
    snprintf(t->scheme, sizeof(t->scheme), "http");
    snprintf(t->host, sizeof(t->host), "%s", admin ? "admin" : c->cfg->tls.download_host);
    t->path = conn_strndup(u->path);
    buf_consume(&c->cli.in, h->head_len);
    c->cli.bytes_in += (int64_t)h->head_len;
    if (!cfg_net_match(nets, n_nets, (const struct sockaddr *)&c->cli_addr)) {
        t->action = "TCP_DENIED";
        log_notice(LOG_FAC_MAIN, c, LOG_EVT_DENIED " %s from a client not allowed",
                   admin ? "admin request" : "CA download");
        return conn_respond_error(c, 403, "policy_denied",
                                  "Your address is not allowed to use this service");
    }
    char path[512];
    snprintf(path, sizeof(path), "%.*s", (int)CAT_MIN(u->path.len, sizeof(path) - 1), u->path.p);
    if (admin && (h->method == HTTP_M_PUT || h->method == HTTP_M_POST))
        return admin_write_request(c, h, path);
    if (h->method != HTTP_M_GET && h->method != HTTP_M_HEAD)
        return conn_respond_error(c, 405, "method_not_allowed", "Only GET and HEAD are served here");
    if (admin_respond(c, path, admin) != CAT_OK)
        return CAT_ERR;
    c->flags |= CONN_F_CLOSE_AFTER;
    c->after_respond = CONN_ST_LINGER;
    conn_set_state(c, CONN_ST_RESPOND);
    return CAT_OK;
}

/*
 * A complete request head is in cli.in: record it, split the target, build
 * the head to send on, and consume it. Exits: POLICY, or RESPOND (error).
 */
static int
conn_request_head(struct conn *c, struct http_head *h)
{
    struct conn_txn *t = &c->txn;
    t->method = h->method;
    snprintf(t->method_str, sizeof(t->method_str), "%.*s", (int)CAT_MIN(h->method_str.len, 15),
             h->method_str.p);
    t->version = h->version;
    t->keep_alive = h->keep_alive;
    t->expect_continue = h->expect_continue;
    const struct http_hdr *ua = http_find(h, "User-Agent");
    if (ua != NULL)
        t->user_agent = conn_strndup(ua->value);

    struct http_url u;
    if (http_parse_target(h, &u) != CAT_OK) {
        t->path = conn_strndup(h->target);
        return conn_respond_error(c, 400, "invalid_request", "%s", h->err);
    }
    if ((c->flags & CONN_F_INTERCEPTED) && conn_target_intercepted(c, h, &u) != CAT_OK)
        return CAT_OK; /* answered with an error page */
    if (c->flags & CONN_F_EXCEPTION) {
        /* Intercepted for an exception: a page, the override, or (overridden) on. */
        snprintf(t->scheme, sizeof(t->scheme), "https");
        snprintf(t->host, sizeof(t->host), "%s", c->tls_host);
        t->port = c->tls_port;
        free(t->path);
        t->path = conn_strndup(u.path);
        int rc = verify_exception_request(c, h, &u);
        if (rc != CAT_DECLINED)
            return rc;
    }
    if (c->lsn_type == CFG_LSN_ADMIN ||
        (h->method != HTTP_M_CONNECT && !(c->flags & CONN_F_INTERCEPTED) &&
         u.host.len > 0 && http_str_eq(u.host, c->cfg->tls.download_host)))
        return conn_local_request(c, h, &u);
    if (u.host.len == 0 || u.host.len >= sizeof(t->host)) {
        /* Origin-form sent to an explicit proxy: not a proxy request. */
        t->path = conn_strndup(h->target);
        return conn_respond_error(c, 400, "invalid_request",
                                  "This is a proxy: requests must name an absolute URL");
    }
    for (size_t i = 0; i < u.host.len; i++)
        t->host[i] = (char)tolower((unsigned char)u.host.p[i]);
    t->host[u.host.len] = '\0';
    t->port = u.port;
    if (h->method == HTTP_M_CONNECT) {
        snprintf(t->scheme, sizeof(t->scheme), "tcp");
    } else {
        snprintf(t->scheme, sizeof(t->scheme), "%.*s", (int)CAT_MIN(u.scheme.len, 7), u.scheme.p);
        for (char *p = t->scheme; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        free(t->path);
        t->path = conn_strndup(u.path);
        t->query = conn_strndup(u.query);
        bool tls_ok = (c->flags & CONN_F_INTERCEPTED) && strcmp(t->scheme, "https") == 0;
        if (strcmp(t->scheme, "http") != 0 && !tls_ok)
            return conn_respond_error(c, 400, "invalid_request",
                                      "Only http:// URLs may be requested without CONNECT");
    }
    if (fwd_is_loop(c, h)) {
        log_warn(LOG_FAC_MAIN, c, LOG_EVT_DENIED " forwarding loop: Via already names %s",
                 c->cfg->node_name);
        c->txn.action = "TCP_DENIED";
        return conn_respond_error(c, 508, "loop_detected",
                                  "This request already went through this proxy (%s)",
                                  c->cfg->node_name);
    }
    fwd_downstream_claims(c, h);
    int prc = conn_policy_proxy(c, h);
    if (prc != CAT_OK)
        return prc == CAT_DECLINED ? CAT_OK : CAT_ERR;
    /* The route (inside an interception the CONNECT's route stays). */
    if (!(c->flags & CONN_F_INTERCEPTED)) {
        if (fwd_route(c) != CAT_OK)
            return CAT_OK; /* answered: no upstream available */
        c->route_decided = true;
    }
    if (h->method != HTTP_M_CONNECT) {
        int rc = msg_build_request(c, h, &u);
        if (rc == CAT_ERR)
            return CAT_ERR;
        if (rc == CAT_DECLINED)
            return CAT_OK; /* answered with an error page */
    }
    buf_consume(&c->cli.in, h->head_len);
    c->cli.bytes_in += (int64_t)h->head_len;
    conn_set_state(c, CONN_ST_POLICY);
    return CAT_OK;
}

/* The first bytes inside an intercepted connection that do not start like a
 * request line ("TOKEN SP") are another protocol, not a bad request. */
static bool
conn_is_stream(const struct conn *c)
{
    if (!(c->flags & CONN_F_INTERCEPTED) || c->n_requests > 0)
        return false;
    const uint8_t *p = buf_data(&c->cli.in);
    size_t n = CAT_MIN(c->cli.in.len, (size_t)24);
    for (size_t i = 0; i < n; i++) {
        if (p[i] == ' ')
            return i == 0;
        if (p[i] < 'A' || p[i] > 'Z')
            return true;
    }
    return n == 24;
}

/*
 * Entered with cli.in holding zero or more bytes of a request head (bytes
 * beyond a previous request stay there: pipelining). Exits: POLICY (a whole
 * head), RESPOND (malformed: 4xx), closed (client left or idle timeout).
 */
static int
conn_st_request(struct conn *c, unsigned ev)
{
    const struct cfg *cfg = c->cfg;
    if (ev & CONN_EV_TIMER) {
        c->err = CONN_ERR_TIMEOUT;
        if (c->cli.in.len == 0 || (c->flags & CONN_F_IDLE))
            return CAT_ERR; /* idle keep-alive connection, or nothing ever sent */
        if (c->txn.start.tv_sec == 0)
            clock_gettime(CLOCK_REALTIME, &c->txn.start);
        snprintf(c->txn.method_str, sizeof(c->txn.method_str), "-");
        log_info(LOG_FAC_MAIN, c, "request head not complete within %u ms", cfg->timeouts.head_ms);
        return conn_respond_error(c, 408, "request_timeout",
                                  "The request head did not arrive in time");
    }
    size_t cap = CAT_MAX(cfg->limits.buffer_size, cfg->limits.max_head_size);
    if (buf_reserve(&c->cli.in, cap) != CAT_OK) {
        c->err = CONN_ERR_NOMEM;
        return CAT_ERR;
    }
    const struct http_limits lim = {cfg->limits.max_head_size, cfg->limits.max_headers};
    /* Bounded: each pass reads at least one byte or leaves. */
    for (int pass = 0; pass < 64; pass++) {
        if (c->cli.in.len > 0) {
            if (c->flags & CONN_F_IDLE) {
                /* First byte of the next request: the head timeout starts. */
                c->flags &= ~CONN_F_IDLE;
                conn_timer_once(c, cfg->timeouts.head_ms);
            }
            if (c->txn.start.tv_sec == 0)
                clock_gettime(CLOCK_REALTIME, &c->txn.start);
            if (conn_is_stream(c)) {
                /* Not HTTP inside intercepted TLS: relay it decrypted, or deny it. */
                if (cfg->tls.non_http == CFG_NON_HTTP_DENY) {
                    log_notice(LOG_FAC_MAIN, c, LOG_EVT_DENIED " not HTTP inside TLS to %s",
                               c->tls_host);
                    c->err = CONN_ERR_DENIED;
                    return CAT_ERR;
                }
                log_info(LOG_FAC_MAIN, c, "not HTTP inside TLS to %s: relayed as a byte stream",
                         c->tls_host);
                conn_side_want(c, &c->cli, 0);
                msg_stream_start(c);
                conn_set_state(c, CONN_ST_STREAM);
                return CAT_OK;
            }
            struct http_head h;
            int rc = http_parse_request((const char *)buf_data(&c->cli.in), c->cli.in.len, &lim, &h);
            if (rc == CAT_OK) {
                conn_side_want(c, &c->cli, 0);
                c->n_requests++;
                return conn_request_head(c, &h);
            }
            if (rc == CAT_ERR) {
                snprintf(c->txn.method_str, sizeof(c->txn.method_str), "-");
                c->err = CONN_ERR_BAD_REQUEST;
                log_info(LOG_FAC_MAIN, c, LOG_EVT_BAD_REQUEST " %s (%d)", h.err, h.err_status);
                return conn_respond_error(c, h.err_status,
                                          h.err_status == 431 ? "request_header_too_large"
                                                              : "invalid_request",
                                          "%s", h.err);
            }
        }
        /* EOF or error before a whole head: nothing to answer. */
        int rc = conn_cli_read_more(c, &c->cli.in);
        if (rc != CAT_OK)
            return rc;
    }
    conn_side_want(c, &c->cli, EV_READ);
    return CAT_AGAIN;
}

int
conn_side_handshake(struct conn *c, struct conn_side *s, bool as_client, int *ret)
{
    *ret = as_client ? wolfSSL_connect(s->ssl) : wolfSSL_accept(s->ssl);
    if (*ret == WOLFSSL_SUCCESS)
        return CAT_OK;
    int e = wolfSSL_get_error(s->ssl, *ret);
    if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE) {
        conn_side_want(c, s, e == WOLFSSL_ERROR_WANT_READ ? EV_READ : EV_WRITE);
        return CAT_AGAIN;
    }
    return CAT_ERR;
}

void
conn_side_tls_nest(struct conn_side *s)
{
    s->up_ssl = s->ssl;
    s->up_tio = s->tio;
    wolfSSL_SetIOReadCtx(s->up_ssl, &s->up_tio);
    wolfSSL_SetIOWriteCtx(s->up_ssl, &s->up_tio);
    s->ssl = NULL;
}

void
conn_side_tls_io(struct conn_side *s, struct buf *replay)
{
    s->tio = (struct tls_io){.fd = s->fd, .replay = replay};
    if (s->up_ssl != NULL) {
        s->tio.under = s->up_ssl;
        s->tio.under_io = &s->up_tio;
    }
}

int
conn_cli_read_more(struct conn *c, struct buf *b)
{
    ssize_t n = conn_side_read(&c->cli, b);
    if (n > 0)
        return CAT_OK;
    if (n == CAT_AGAIN) {
        conn_side_want(c, &c->cli, EV_READ);
        return CAT_AGAIN;
    }
    c->err = n == 0 ? CONN_ERR_CLI_EOF : CONN_ERR_CLI_RESET;
    return CAT_ERR;
}

/* What an origin connection is kept for: "host" and port, or "@upstream" for
 * plain HTTP through an upstream (any site may reuse it). */
static void
conn_srv_key(const struct conn *c, char *key, size_t cap, unsigned *port)
{
    if (c->route != NULL && c->txn.method != HTTP_M_CONNECT && !(c->flags & CONN_F_INTERCEPTED)) {
        snprintf(key, cap, "@%s", c->route->cfg->name);
        *port = 0;
    } else if (c->flags & CONN_F_INTERCEPTED) {
        /* Inside TLS the Host matched the intercepted name; the origin is
         * still where the tunnel went (a transparent client's destination
         * is an address, never a name to look up again). */
        snprintf(key, cap, "%s", c->tunnel_host);
        *port = c->tls_port;
    } else {
        snprintf(key, cap, "%s", c->txn.host);
        *port = c->txn.port;
    }
}

/* Transient. Exits: RESOLVE, EXCHANGE (origin connection reused), RESPOND (403). */
static int
conn_st_policy(struct conn *c, unsigned ev)
{
    struct pol_verdict v = {.allow = true};
    /* SOCKS and transparent connections have no head: <proxy> is asked here. */
    if ((c->lsn_type == CFG_LSN_SOCKS5 || c->lsn_type == CFG_LSN_TRANSPARENT) &&
        !c->route_decided && !(c->flags & CONN_F_INTERCEPTED) &&
        conn_policy_proxy(c, NULL) != CAT_OK)
        return CAT_ERR;
    /* Inside an intercepted connection the CONNECT was already allowed. */
    if (!(c->flags & CONN_F_INTERCEPTED))
        pol_check_request(c->cfg, (const struct sockaddr *)&c->cli_addr, c->txn.method,
                          c->txn.port, &v);
    if (v.allow && c->pd.allow == CPL_NO) {
        v.allow = false;
        snprintf(v.reason, sizeof(v.reason), "%s",
                 c->pd.deny_reason ? c->pd.deny_reason : "The policy denies this request");
    }
    if (!v.allow) {
        c->txn.action = "TCP_DENIED";
        c->err = CONN_ERR_DENIED;
        log_notice(LOG_FAC_MAIN, c, LOG_EVT_DENIED " %s", v.reason);
        return conn_respond_error(c, 403, "policy_denied", "%s", v.reason);
    }
    if (!c->route_decided && !(c->flags & CONN_F_INTERCEPTED)) {
        /* SOCKS and transparent connections: no head, the route is decided here. */
        c->route_decided = true;
        if (fwd_route(c) != CAT_OK)
            return CAT_OK;
    }
    char key[sizeof(c->srv_host)];
    unsigned kport;
    conn_srv_key(c, key, sizeof(key), &kport);
    if (c->srv.fd >= 0 && (c->srv_fresh || c->srv_reusable) && c->txn.method != HTTP_M_CONNECT &&
        c->srv_port == kport && strcmp(c->srv_host, key) == 0) {
        log_debug(LOG_FAC_MAIN, c, "reusing the origin connection");
        msg_exchange_start(c, !c->srv_fresh);
        conn_set_state(c, CONN_ST_EXCHANGE);
        return CAT_OK;
    }
    conn_srv_close(c);
    conn_set_state(c, CONN_ST_RESOLVE);
    return CAT_OK;
}

static void
conn_dns_cb(void *arg, const struct res_answer *ans)
{
    struct conn *c = arg;
    c->dns = NULL;
    *c->addrs = *ans;
    conn_run(c, CONN_EV_DNS);
}

/* Answers a failed lookup. */
static int
conn_dns_failed(struct conn *c, enum res_err e)
{
    c->txn.action = "TCP_ERR_MISS";
    c->err = CONN_ERR_DNS;
    log_info(LOG_FAC_MAIN, c, "cannot resolve %s: %s", c->txn.host, res_err_str(e));
    if (e == RES_ERR_TIMEOUT)
        return conn_respond_error(c, 504, "dns_server_failure",
                                  "No DNS server answered for %s (%s)", c->txn.host,
                                  res_err_str(e));
    if (e == RES_ERR_SERVFAIL)
        return conn_respond_error(c, 502, "dns_server_failure",
                                  "The DNS server failed to resolve %s (%s)", c->txn.host,
                                  res_err_str(e));
    return conn_respond_error(c, 502, "dns_unresolved_hostname",
                              "The host name %s could not be resolved: %s", c->txn.host,
                              res_err_str(e));
}

/*
 * Entered to resolve txn.host; the answer comes now (cache, literal) or from
 * conn_dns_cb. Exits: CONNECT, RESPOND (DNS error page).
 */
static int
conn_st_resolve(struct conn *c, unsigned ev)
{
    if (c->dns != NULL) {
        if (ev & CONN_EV_TIMER) {
            res_cancel(c->dns);
            c->dns = NULL;
            return conn_dns_failed(c, RES_ERR_TIMEOUT);
        }
        return CAT_AGAIN; /* still waiting */
    }
    if (!(ev & CONN_EV_DNS)) {
        if (c->addrs == NULL && (c->addrs = malloc(sizeof(*c->addrs))) == NULL) {
            c->err = CONN_ERR_NOMEM;
            return CAT_ERR;
        }
        if (c->route != NULL) {
            /* The upstream resolves the origin; we only need the upstream. */
            c->addrs->err = RES_OK;
            c->addrs->n = 1;
            c->addrs->addrs[0] = c->route->cfg->addr;
            c->addrs->lens[0] = c->route->cfg->addrlen;
            c->addr_next = 0;
            c->connect_errno = 0;
            conn_set_state(c, CONN_ST_CONNECT);
            return CAT_OK;
        }
        const char *host = c->flags & CONN_F_INTERCEPTED ? c->tunnel_host : c->txn.host;
        int rc = res_lookup(c->w->res, host, c->addrs, conn_dns_cb, c, &c->dns);
        if (rc == CAT_AGAIN) {
            /* Safety net over the resolver's own tries and timeouts. */
            const struct cfg_resolver *r = &c->cfg->resolver;
            conn_timer_once(c, r->timeout_ms * r->tries + 1000);
            return CAT_AGAIN;
        }
    }
    if (c->addrs->err != RES_OK || c->addrs->n == 0)
        return conn_dns_failed(c, c->addrs->err != RES_OK ? c->addrs->err : RES_ERR_NODATA);
    c->addr_next = 0;
    c->connect_errno = 0;
    conn_set_state(c, CONN_ST_CONNECT);
    return CAT_OK;
}

/* Starts a non-blocking connect to the next address. CAT_OK connected, CAT_AGAIN pending. */
static int
conn_connect_next(struct conn *c)
{
    while (c->addr_next < c->addrs->n) {
        size_t i = c->addr_next++;
        struct sockaddr_storage sa = c->addrs->addrs[i];
        socklen_t len = c->addrs->lens[i];
        if (c->route != NULL)
            ; /* the upstream's address carries its port */
        else if (sa.ss_family == AF_INET)
            ((struct sockaddr_in *)&sa)->sin_port = htons((uint16_t)c->txn.port);
        else
            ((struct sockaddr_in6 *)&sa)->sin6_port = htons((uint16_t)c->txn.port);
        unsigned port;
        conn_addr_text(&sa, c->srv_ip, sizeof(c->srv_ip), &port);
        int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd == -1) {
            c->connect_errno = errno;
            continue;
        }
        conn_side_init(c, &c->srv, fd);
        if (connect(fd, (struct sockaddr *)&sa, len) == 0)
            return CAT_OK;
        if (errno == EINPROGRESS) {
            conn_side_want(c, &c->srv, EV_WRITE);
            conn_timer_once(c, c->cfg->timeouts.connect_ms);
            return CAT_AGAIN;
        }
        c->connect_errno = errno;
        log_debug(LOG_FAC_MAIN, c, "connect to %s failed: %s", c->srv_ip, strerror(errno));
        close(fd);
        c->srv.fd = -1;
    }
    return CAT_ERR;
}

/*
 * Entered with c->addrs resolved; tries each address in turn, each within
 * timeouts.connect. Exits: RESPOND (200 to a CONNECT), EXCHANGE (HTTP),
 * RESPOND (502/504 when every address failed).
 */
static int
conn_st_connect(struct conn *c, unsigned ev)
{
    int rc;
    if (c->srv.fd < 0) {
        rc = conn_connect_next(c);
    } else if (ev & (CONN_EV_SRV_W | CONN_EV_TIMER)) {
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (ev & CONN_EV_TIMER)
            soerr = ETIMEDOUT;
        else if (getsockopt(c->srv.fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == -1)
            soerr = errno;
        if (soerr == 0) {
            rc = CAT_OK;
        } else {
            c->connect_errno = soerr;
            log_debug(LOG_FAC_MAIN, c, "connect to %s failed: %s", c->srv_ip, strerror(soerr));
            ev_io_stop(c->w->loop, &c->srv.io);
            close(c->srv.fd);
            c->srv.fd = -1;
            rc = conn_connect_next(c);
        }
    } else {
        return CAT_AGAIN;
    }
    if (rc == CAT_AGAIN)
        return CAT_AGAIN;
    if (rc == CAT_ERR) {
        c->txn.action = "TCP_ERR_MISS";
        c->err = CONN_ERR_CONNECT;
        const char *why = strerror(c->connect_errno ? c->connect_errno : EHOSTUNREACH);
        if (c->route != NULL) {
            log_warn(LOG_FAC_MAIN, c, "cannot connect to upstream %s (%s): %s",
                     c->route->cfg->name, c->route->cfg->addr_text, why);
            return conn_respond_error(c, 502, "upstream_error",
                                      "Cannot connect to the upstream proxy %s (%s): %s",
                                      c->route->cfg->name, c->route->cfg->addr_text, why);
        }
        log_info(LOG_FAC_MAIN, c, "cannot connect to %s:%u: %s", c->txn.host, c->txn.port, why);
        if (c->connect_errno == ETIMEDOUT)
            return conn_respond_error(c, 504, "gateway_timeout",
                                      "Connecting to %s port %u timed out", c->txn.host,
                                      c->txn.port);
        return conn_respond_error(c, 502, "tcp_error", "Cannot connect to %s port %u: %s",
                                  c->txn.host, c->txn.port, why);
    }
    ev_timer_stop(c->w->loop, &c->timer);
    conn_side_want(c, &c->srv, 0);
    int one = 1;
    setsockopt(c->srv.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    conn_srv_key(c, c->srv_host, sizeof(c->srv_host), &c->srv_port);
    socklen_t sl = sizeof(c->srv_addr);
    if (c->route != NULL) {
        /* Through an upstream the origin's address is not known, unless the
         * client named it (transparent). */
        if (c->lsn_type != CFG_LSN_TRANSPARENT)
            c->srv_addr.ss_family = AF_UNSPEC;
    } else if (getpeername(c->srv.fd, (struct sockaddr *)&c->srv_addr, &sl) == -1) {
        c->srv_addr.ss_family = AF_UNSPEC;
    }
    log_debug(LOG_FAC_MAIN, c, "connected to %s", c->srv_ip);
    /* Through an upstream: a tunnel to the origin first (plain HTTP goes as
     * absolute-form requests, no tunnel). */
    if (c->route != NULL && c->route->cfg->type == CFG_FWD_HTTPS) {
        conn_set_state(c, CONN_ST_UP_TLS); /* TLS to the upstream first */
        return CAT_OK;
    }
    if (c->route != NULL && (c->txn.method == HTTP_M_CONNECT ||
                             (c->flags & (CONN_F_INTERCEPTED | CONN_F_RETUNNEL)))) {
        conn_set_state(c, CONN_ST_CHAIN);
        return CAT_OK;
    }
    return conn_established(c);
}

int
conn_established(struct conn *c)
{
    if (c->flags & CONN_F_RETUNNEL) {
        /* The ClientHello waits in cli.in: the tunnel sends it first. */
        c->flags &= ~CONN_F_RETUNNEL;
        conn_set_state(c, CONN_ST_TUNNEL);
        return CAT_OK;
    }
    if (c->flags & CONN_F_INTERCEPTED) {
        /* A new origin connection under an intercepted client: TLS again. */
        conn_set_state(c, CONN_ST_SRV_TLS);
        return CAT_OK;
    }
    if (c->txn.method == HTTP_M_CONNECT) {
        static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
        if (c->lsn_type == CFG_LSN_TRANSPARENT) {
            /* Nothing to answer: the client thinks it is talking to the origin. */
        } else if (c->lsn_type == CFG_LSN_SOCKS5) {
            if (socks_answer_success(c) != CAT_OK)
                return CAT_ERR;
        } else if (buf_reserve(&c->cli.out, 256) != CAT_OK ||
                   buf_append(&c->cli.out, ok, sizeof(ok) - 1) != CAT_OK) {
            c->err = CONN_ERR_NOMEM;
            return CAT_ERR;
        }
        c->txn.status = 200;
        c->txn.action = "TCP_TUNNELED";
        /* Look at the first bytes only when something may be intercepted or
         * checked (a certificate exception needs a keyring for its page). */
        const struct cfg *cfg = c->cfg;
        bool look = (c->tls->n_keyrings > 0 &&
                     (cfg->tls.intercept != CFG_INTERCEPT_NONE ||
                      (cfg->validation.enabled && cfg->validation.tunnels))) ||
                    c->pol->may_force_ssl;
        c->after_respond = look ? CONN_ST_PEEK_HELLO : CONN_ST_TUNNEL;
        conn_set_state(c, CONN_ST_RESPOND);
        return CAT_OK;
    }
    msg_exchange_start(c, false);
    conn_set_state(c, CONN_ST_EXCHANGE);
    return CAT_OK;
}

/* Writes cli.out. Exits: c->after_respond once it is all written; closed on error. */
static int
conn_st_respond(struct conn *c, unsigned ev)
{
    if (ev & CONN_EV_TIMER) {
        c->err = CONN_ERR_TIMEOUT;
        return CAT_ERR;
    }
    if (!ev_is_active(&c->timer))
        conn_timer_once(c, c->cfg->timeouts.idle_ms);
    while (c->cli.out.len > 0) {
        ssize_t n = conn_side_write(&c->cli, buf_data(&c->cli.out), c->cli.out.len);
        if (n == CAT_AGAIN) {
            conn_side_want(c, &c->cli, EV_WRITE);
            return CAT_AGAIN;
        }
        if (n < 0) {
            c->err = CONN_ERR_CLI_RESET;
            return CAT_ERR;
        }
        buf_consume(&c->cli.out, (size_t)n);
        c->cli.bytes_out += n;
    }
    buf_free(&c->cli.out);
    conn_side_want(c, &c->cli, 0);
    ev_timer_stop(c->w->loop, &c->timer);
    /* An answer that ends the transaction is logged once it is sent, with
     * its size; a tunnel is logged when it ends. */
    if (c->after_respond == CONN_ST_LINGER)
        conn_log_txn(c);
    conn_set_state(c, c->after_respond);
    return CAT_OK;
}

/*
 * Entered after "200 Connection established". Bytes the client sent early
 * (already in cli.in) go first; then both directions are spliced.
 * Exits: closed when both directions ended, on error, or when idle.
 */
static int
conn_st_tunnel(struct conn *c, unsigned ev)
{
    if (ev & CONN_EV_TIMER) {
        c->err = CONN_ERR_TIMEOUT;
        log_info(LOG_FAC_MAIN, c, "tunnel idle for %u ms", c->cfg->timeouts.tunnel_idle_ms);
        return CAT_ERR;
    }
    if (c->tunnel == NULL && (c->srv.ssl != NULL || c->cli.ssl != NULL)) {
        /* Through a TLS upstream, or from a client speaking TLS to the
         * proxy, the bytes must pass through that session: relayed in user
         * space instead of spliced. */
        conn_side_want(c, &c->cli, 0);
        msg_stream_start(c);
        conn_set_state(c, CONN_ST_STREAM);
        return CAT_OK;
    }
    if (c->tunnel == NULL) {
        /* Bytes the upstream sent behind its CONNECT answer go to the client. */
        while (c->srv.in.len > 0) {
            ssize_t n = relay_write(c->cli.fd, buf_data(&c->srv.in), c->srv.in.len);
            if (n == CAT_AGAIN) {
                conn_side_want(c, &c->srv, 0);
                conn_side_want(c, &c->cli, EV_WRITE);
                if (!ev_is_active(&c->timer))
                    conn_timer_once(c, c->cfg->timeouts.idle_ms);
                return CAT_AGAIN;
            }
            if (n < 0) {
                c->err = CONN_ERR_CLI_RESET;
                return CAT_ERR;
            }
            buf_consume(&c->srv.in, (size_t)n);
            c->cli.bytes_out += n;
        }
        /* Early client bytes, written the ordinary way before splicing. */
        while (c->cli.in.len > 0) {
            ssize_t n = relay_write(c->srv.fd, buf_data(&c->cli.in), c->cli.in.len);
            if (n == CAT_AGAIN) {
                conn_side_want(c, &c->cli, 0);
                conn_side_want(c, &c->srv, EV_WRITE);
                if (!ev_is_active(&c->timer))
                    conn_timer_once(c, c->cfg->timeouts.idle_ms);
                return CAT_AGAIN;
            }
            if (n < 0) {
                c->err = CONN_ERR_SRV_RESET;
                return CAT_ERR;
            }
            buf_consume(&c->cli.in, (size_t)n);
            c->cli.bytes_in += n;
        }
        /* An idle tunnel holds no user-space buffer. */
        buf_free(&c->cli.in);
        buf_free(&c->cli.out);
        buf_free(&c->srv.in);
        buf_free(&c->srv.out);
        buf_free(&c->req_head);
        c->tunnel = relay_tunnel_new(c->cfg->limits.pipe_size);
        if (c->tunnel == NULL) {
            log_err(LOG_FAC_MAIN, c, "tunnel: cannot make pipes: %s", strerror(errno));
            c->err = CONN_ERR_NOMEM;
            return CAT_ERR;
        }
        conn_timer_idle(c, c->cfg->timeouts.tunnel_idle_ms);
    }
    int cev, sev;
    bool moved;
    int rc = relay_tunnel_pump(c->tunnel, c->cli.fd, c->srv.fd, &cev, &sev, &moved);
    if (moved)
        conn_touch(c, c->w->loop);
    if (rc == CAT_OK) {
        c->err = CONN_ERR_CLI_EOF;
        return CAT_ERR; /* both directions ended: a normal close */
    }
    if (rc == CAT_ERR) {
        c->err = errno == ECONNRESET || errno == EPIPE ? CONN_ERR_CLI_RESET : CONN_ERR_SRV_RESET;
        log_debug(LOG_FAC_MAIN, c, "tunnel: %s", strerror(errno));
        return CAT_ERR;
    }
    conn_side_want(c, &c->cli, cev);
    conn_side_want(c, &c->srv, sev);
    return CAT_AGAIN;
}

/* The HTTP exchange lives in msg.c. Exits: REQUEST (keep-alive), LINGER, RESPOND, closed. */
static int
conn_st_exchange(struct conn *c, unsigned ev)
{
    return msg_exchange(c, ev);
}

/*
 * Entered once an answer that ends the connection is written: shut our
 * write side and read until the client's FIN (bounded in time and bytes),
 * so unread request bytes do not make the kernel reset the connection.
 */
static int
conn_st_linger(struct conn *c, unsigned ev)
{
    if (!c->cli.shut) {
        c->cli.shut = true;
        shutdown(c->cli.fd, SHUT_WR);
        conn_srv_close(c);
        conn_timer_once(c, CONN_LINGER_MS);
    }
    if (ev & CONN_EV_TIMER)
        return CAT_ERR;
    uint8_t sink[4096];
    for (int i = 0; i < 16; i++) {
        ssize_t n = read(c->cli.fd, sink, sizeof(sink));
        if (n > 0) {
            c->cli.bytes_in += n;
            if (c->cli.bytes_in > CONN_LINGER_MAX)
                return CAT_ERR;
            continue;
        }
        if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
            conn_side_want(c, &c->cli, EV_READ);
            return CAT_AGAIN;
        }
        break;
    }
    if (c->err == CONN_ERR_NONE)
        c->err = CONN_ERR_CLI_EOF;
    return CAT_ERR;
}
