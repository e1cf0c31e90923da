/*
 * Interception: from "200 Connection established" to HTTP over TLS on both
 * sides.
 *
 *   PEEK_HELLO  read the client's first bytes (kept for replay): a TLS
 *               ClientHello? which name? -> TUNNEL (not TLS, or policy says
 *               tunnel) or SRV_TLS
 *   SRV_TLS     handshake with the origin as the client would (its SNI,
 *               ALPN http/1.1), verifying its certificate
 *   EMULATE     an emulated certificate mimicking the origin's (cached)
 *   CLI_TLS     handshake with the client, replaying its ClientHello
 *   -> REQUEST  the same HTTP engine as plain proxying, over TLS
 *
 * Origin first, then client: a certificate is only ever emulated from one
 * the origin presented and that verified.
 */
#include "core/intercept.h"

#include "chain/chain.h"
#include "core/conn.h"
#include "core/detect.h"
#include "core/forward.h"
#include "core/msg.h"
#include "core/pin.h"
#include "core/policy.h"
#include "core/validate.h"
#include "core/verify.h"
#include "core/worker.h"
#include "emulation/emu.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static bool
intercept_is_ip(const char *host)
{
    struct in6_addr a6;
    struct in_addr a4;
    return inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1;
}

/* Moves the peeked bytes to the side's replay buffer: wolfSSL reads them first. */
static void
intercept_stash_hello(struct conn_side *s)
{
    buf_free(&s->replay);
    s->replay = s->in;
    memset(&s->in, 0, sizeof(s->in));
}

/* Tunneled sites are still checked (a bad certificate turns into an
 * exception page) when validation covers tunnels and a keyring can sign the
 * page's certificate. */
static bool
intercept_may_check(const struct conn *c)
{
    const struct cfg_validation *v = &c->cfg->validation;
    return v->enabled && v->tunnels && c->tls->n_keyrings > 0;
}

int
intercept_decide(struct conn *c)
{
    struct cpl_txn t;
    conn_cpl_txn(c, &t, NULL);
    t.client_protocol = "ssl";
    t.url_scheme = "https";
    t.url_host = c->tls_host;
    t.url_port = c->tls_port;
    if (c->tlog != NULL && c->tlog->cert_hostname[0] != '\0')
        t.cert_hostname = c->tlog->cert_hostname;
    pol_eval(c->pol, CPL_L_SSL_INTERCEPT, &t, &c->pd);
    c->ssl_decided = true;
    if (c->pd.allow == CPL_NO) {
        log_notice(LOG_FAC_SSL, c, LOG_EVT_DENIED " %s by policy", c->tls_host);
        c->txn.action = "TCP_DENIED";
        c->err = CONN_ERR_DENIED;
        if (c->tlog != NULL)
            c->tlog->action = "DENIED";
        conn_close(c, CONN_ERR_DENIED);
        return CAT_OK;
    }
    if (c->tls->n_keyrings == 0) {
        log_debug(LOG_FAC_SSL, c, "%s: no keyring: tunneled", c->tls_host);
        return CAT_DECLINED;
    }
    if (c->route != NULL && fwd_inspect(c) == CFG_INSPECT_CORE) {
        log_debug(LOG_FAC_SSL, c, "%s: the core tier inspects (tier.inspect = core)",
                  c->tls_host);
        return CAT_DECLINED;
    }
    if (!pol_should_intercept(c->cfg, &c->pd, c->tls_host)) {
        log_debug(LOG_FAC_SSL, c, "%s: tunneled by policy", c->tls_host);
        return CAT_DECLINED;
    }
    return intercept_now(c);
}

int
intercept_now(struct conn *c)
{
    log_debug(LOG_FAC_SSL, c, "%s: intercepting", c->tls_host);
    intercept_stash_hello(&c->cli);
    if (c->cert != NULL && c->cert->from_probe)
        verify_free(c); /* the probe's verdict is replaced by the real handshake's */
    conn_set_state(c, CONN_ST_SRV_TLS);
    return CAT_OK;
}

/*
 * The client's bytes are not TLS, or the server spoke first (no TLS client
 * waits for that): tunneled as plain TCP unless the policy forces SSL or
 * denies it. <ssl-intercept> is asked with what is known: the CONNECT's
 * host and port and the address connected to (url.address), so the classic
 * recipe "force SSL on 443 except for trusted servers" works as written.
 */
static int
intercept_not_tls(struct conn *c, const char *what)
{
    if (!c->ssl_decided) {
        struct cpl_txn t;
        conn_cpl_txn(c, &t, NULL);
        t.client_protocol = "tcp";
        t.url_scheme = "tcp";
        t.url_host = c->txn.host;
        t.url_port = c->txn.port;
        pol_eval(c->pol, CPL_L_SSL_INTERCEPT, &t, &c->pd);
        c->ssl_decided = true;
    }
    if (c->pd.force_ssl == CPL_YES || c->pd.allow == CPL_NO) {
        log_notice(LOG_FAC_MAIN, c, LOG_EVT_DENIED " %s, and the policy %s", what,
                   c->pd.force_ssl == CPL_YES ? "forces SSL" : "denies it");
        c->txn.action = "TCP_DENIED";
        c->txn.status = 403;
        c->txn.exception = "policy_denied";
        c->err = CONN_ERR_DENIED;
        return CAT_ERR;
    }
    log_info(LOG_FAC_MAIN, c, "%s: tunneled as plain TCP", what);
    conn_set_state(c, CONN_ST_TUNNEL);
    return CAT_OK;
}

/* Whether the server has spoken (bytes or its end) before the client: then
 * this is no TLS. Not known through a TLS upstream (its session is not
 * peeked at). */
static bool
intercept_server_spoke(const struct conn *c)
{
    if (c->srv.ssl != NULL || c->srv.in.len > 0)
        return c->srv.in.len > 0;
    char b;
    ssize_t n = recv(c->srv.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/*
 * Entered after "200 Connection established" when something may be
 * intercepted. Reads until a whole ClientHello (or proof it is not TLS).
 * Exits: TUNNEL (not TLS; policy says tunnel), SRV_TLS, closed (malformed,
 * SNI naming another host than the CONNECT, timeout).
 */
int
intercept_st_peek_hello(struct conn *c, unsigned ev)
{
    const struct cfg *cfg = c->cfg;
    if (ev & CONN_EV_TIMER) {
        if (c->cli.in.len == 0) {
            /* A client that speaks second (e.g. a server-first protocol):
             * nothing to inspect. */
            ev_timer_stop(c->w->loop, &c->timer);
            conn_side_want(c, &c->srv, 0);
            return intercept_not_tls(c, "the client sent nothing");
        }
        log_info(LOG_FAC_SSL, c, LOG_EVT_CLI_TLS " %s: ClientHello incomplete after %u ms",
                 c->txn.host, cfg->timeouts.tls_handshake_ms);
        c->err = CONN_ERR_TIMEOUT;
        return CAT_ERR;
    }
    if (!ev_is_active(&c->timer))
        conn_timer_once(c, cfg->timeouts.tls_handshake_ms);
    size_t cap = CAT_MAX(CAT_MAX(cfg->limits.buffer_size, cfg->limits.max_head_size),
                         (size_t)DETECT_MAX_HELLO);
    if (c->cli.in.cap < cap)
        buf_free(&c->cli.in); /* keep-alive buffer too small for a hello: empty here */
    if (buf_reserve(&c->cli.in, cap) != CAT_OK) {
        c->err = CONN_ERR_NOMEM;
        return CAT_ERR;
    }
    struct detect_hello h;
    int rc = CAT_AGAIN;
    for (int pass = 0; pass < 64; pass++) {
        if (c->cli.in.len > 0) {
            rc = detect_hello(buf_data(&c->cli.in), c->cli.in.len, &h);
            if (rc != CAT_AGAIN)
                break;
        }
        ssize_t n = conn_side_read(&c->cli, &c->cli.in);
        if (n > 0)
            continue;
        if (n == CAT_AGAIN) {
            if (buf_room(&c->cli.in) == 0) {
                rc = CAT_ERR; /* larger than any real ClientHello */
                break;
            }
            if (c->cli.in.len == 0 && intercept_server_spoke(c)) {
                /* SSH and the like: the server greets first. No waiting for
                 * a ClientHello that will not come. */
                conn_side_want(c, &c->cli, 0);
                conn_side_want(c, &c->srv, 0);
                ev_timer_stop(c->w->loop, &c->timer);
                return intercept_not_tls(c, "the server spoke first");
            }
            conn_side_want(c, &c->cli, EV_READ);
            /* Watch the server too while the client has said nothing. */
            conn_side_want(c, &c->srv, c->cli.in.len == 0 && c->srv.ssl == NULL ? EV_READ : 0);
            return CAT_AGAIN;
        }
        c->err = n == 0 ? CONN_ERR_CLI_EOF : CONN_ERR_CLI_RESET;
        return CAT_ERR;
    }
    conn_side_want(c, &c->cli, 0);
    conn_side_want(c, &c->srv, 0);
    ev_timer_stop(c->w->loop, &c->timer);
    if (rc == CAT_DECLINED)
        return intercept_not_tls(c, "not TLS");
    if (rc != CAT_OK) {
        log_info(LOG_FAC_SSL, c, LOG_EVT_CLI_TLS " %s: malformed ClientHello", c->txn.host);
        c->err = CONN_ERR_CLI_TLS;
        return CAT_ERR;
    }

    /* The name to intercept: the SNI, which must agree with a CONNECT by name. */
    bool connect_by_ip = intercept_is_ip(c->txn.host);
    if (h.has_sni && !h.sni_invalid && !connect_by_ip && strcasecmp(h.sni, c->txn.host) != 0) {
        log_notice(LOG_FAC_SSL, c, LOG_EVT_DENIED " SNI %s does not match the CONNECT host %s",
                   h.sni, c->txn.host);
        c->txn.action = "TCP_DENIED";
        c->txn.status = 403;
        c->txn.exception = "host_mismatch";
        c->err = CONN_ERR_DENIED;
        snprintf(c->tls_host, sizeof(c->tls_host), "%s", h.sni);
        c->tls_port = c->txn.port;
        if (conn_tlslog_start(c) == CAT_OK) {
            c->tlog->action = "DENIED";
            snprintf(c->tlog->detail, sizeof(c->tlog->detail), "SNI differs from CONNECT host");
        }
        return CAT_ERR;
    }
    const char *name = h.has_sni && !h.sni_invalid ? h.sni : c->txn.host;
    snprintf(c->tls_host, sizeof(c->tls_host), "%s", name);
    snprintf(c->tunnel_host, sizeof(c->tunnel_host), "%s", c->txn.host);
    c->tls_port = c->txn.port;
    if (conn_tlslog_start(c) != CAT_OK) {
        c->err = CONN_ERR_NOMEM;
        return CAT_ERR;
    }

    /* Applications that are not HTTP/1 (by ALPN) go through untouched. */
    bool http_alpn = h.n_alpn == 0 || detect_offers_alpn(&h, "http/1.1") ||
                     detect_offers_alpn(&h, "http/1.0");
    if (!http_alpn) {
        log_info(LOG_FAC_SSL, c, "%s: ALPN offers no HTTP/1.x (first: %s): tunneled",
                 c->tls_host, h.alpn[0]);
        conn_set_state(c, CONN_ST_TUNNEL);
        return CAT_OK;
    }
    if (c->downstream_inspects) {
        /* The downstream tier intercepts (tier.inspect = edge) and validates
         * the origin through this tunnel: decrypting twice helps nobody. */
        log_debug(LOG_FAC_SSL, c, "%s: inspected downstream: tunneled", c->tls_host);
        snprintf(c->tlog->detail, sizeof(c->tlog->detail), "inspected downstream");
        conn_set_state(c, CONN_ST_TUNNEL);
        return CAT_OK;
    }
    const char *why;
    if (pin_is_tunneled(&cfg->pinning, c->tls_host, &why)) {
        log_debug(LOG_FAC_SSL, c, "%s: tunneled: %s", c->tls_host, why);
        conn_set_state(c, CONN_ST_TUNNEL);
        return CAT_OK;
    }
    /* A policy that asks about the certificate decides after a probe. */
    if (c->pol->needs_cert && intercept_may_check(c)) {
        conn_set_state(c, CONN_ST_PROBE);
        return CAT_OK;
    }
    if (intercept_decide(c) == CAT_DECLINED)
        conn_set_state(c, intercept_may_check(c) ? CONN_ST_PROBE : CONN_ST_TUNNEL);
    return CAT_OK;
}

/* The origin's TLS is too old, or it offers no suite we allow. */
static bool
intercept_is_protocol_failure(WOLFSSL *ssl, int ret)
{
    int e = wolfSSL_get_error(ssl, ret);
    WOLFSSL_ALERT_HISTORY h;
    memset(&h, 0, sizeof(h));
    wolfSSL_get_alert_history(ssl, &h);
    return e == VERSION_ERROR || e == MATCH_SUITE_ERROR || h.last_rx.code == protocol_version ||
           h.last_rx.code == handshake_failure || h.last_rx.code == insufficient_security;
}

/*
 * The origin wants a client certificate: catena cannot present one for the
 * client, so the site is remembered and tunneled. The client has not been
 * answered yet (its ClientHello waits in cli.replay), so this connection is
 * tunneled too, over a fresh origin connection. Exits: CONNECT.
 */
static int
intercept_abandon_for_client_cert(struct conn *c)
{
    log_notice(LOG_FAC_SSL, c, "%s asks for a client certificate: tunneled from now on",
               c->tls_host);
    pin_note_client_cert(&c->cfg->pinning, c->tls_host);
    if (c->tlog != NULL)
        snprintf(c->tlog->detail, sizeof(c->tlog->detail), "client certificate requested");
    conn_srv_close(c);
    buf_free(&c->cli.in);
    c->cli.in = c->cli.replay;
    memset(&c->cli.replay, 0, sizeof(c->cli.replay));
    c->flags |= CONN_F_RETUNNEL;
    c->addr_next = 0;
    conn_set_state(c, CONN_ST_CONNECT);
    return CAT_OK;
}

/*
 * Entered with the origin connected (TCP). Handshakes as the client would,
 * without judging the certificate (VALIDATE does).
 * Exits: VALIDATE, CONNECT (a client-certificate site: tunneled instead),
 * closed (the handshake failed).
 */
int
intercept_st_srv_tls(struct conn *c, unsigned ev)
{
    struct conn_side *s = &c->srv;
    if (ev & CONN_EV_TIMER) {
        log_warn(LOG_FAC_SSL, c, LOG_EVT_SRV_TLS " %s: handshake timed out", c->tls_host);
        c->err = CONN_ERR_SRV_TLS;
        return CAT_ERR;
    }
    if (s->ssl != NULL && s->up_ssl == NULL && c->route != NULL &&
        c->route->cfg->type == CFG_FWD_HTTPS)
        conn_side_tls_nest(s); /* the upstream's session goes under the origin's */
    if (s->ssl == NULL) {
        conn_side_tls_io(s, NULL);
        s->ssl = tls_session_new(c->tls->srv_ctx, &s->tio);
        if (s->ssl == NULL) {
            c->err = CONN_ERR_NOMEM;
            return CAT_ERR;
        }
        if (!intercept_is_ip(c->tls_host))
            wolfSSL_UseSNI(s->ssl, WOLFSSL_SNI_HOST_NAME, c->tls_host,
                           (unsigned short)strlen(c->tls_host));
        char alpn[] = "http/1.1";
        wolfSSL_UseALPN(s->ssl, alpn, sizeof(alpn) - 1, WOLFSSL_ALPN_CONTINUE_ON_MISMATCH);
        conn_timer_once(c, c->cfg->timeouts.tls_handshake_ms);
    }
    int ret;
    int hrc = conn_side_handshake(c, s, true, &ret);
    if (hrc == CAT_AGAIN)
        return CAT_AGAIN;
    if (hrc != CAT_OK) {
        if (s->tio.client_cert_requested && !(c->flags & CONN_F_INTERCEPTED))
            return intercept_abandon_for_client_cert(c);
        char d[256];
        tls_describe_error(s->ssl, ret, d, sizeof(d));
        log_warn(LOG_FAC_SSL, c, LOG_EVT_SRV_TLS " %s: %s", c->tls_host, d);
        if (intercept_is_protocol_failure(s->ssl, ret) && c->tls->n_keyrings > 0) {
            /* No silent downgrade: the user gets a page saying why. */
            verify_protocol_exception(c);
            conn_srv_close(c);
            conn_set_state(c, CONN_ST_VALIDATE);
            return CAT_OK;
        }
        c->err = CONN_ERR_SRV_TLS;
        return CAT_ERR;
    }
    ev_timer_stop(c->w->loop, &c->timer);
    conn_side_want(c, s, 0);
    if (s->tio.client_cert_requested && !(c->flags & CONN_F_INTERCEPTED))
        return intercept_abandon_for_client_cert(c);
    if (c->tlog != NULL) {
        c->tlog->rs_version = wolfSSL_get_version(s->ssl);
        c->tlog->rs_cipher = wolfSSL_get_cipher(s->ssl);
    }
    log_debug(LOG_FAC_SSL, c, "origin TLS up: %s %s", wolfSSL_get_version(s->ssl),
              wolfSSL_get_cipher(s->ssl));
    c->srv_fresh = true;
    c->srv_reusable = true;
    if (verify_take_chain(c) != CAT_OK) {
        c->err = CONN_ERR_NOMEM;
        return CAT_ERR;
    }
    conn_set_state(c, CONN_ST_VALIDATE);
    return CAT_OK;
}

/* Transient. Exits: CLI_TLS, closed (emulation failed: our problem, logged at err). */
int
intercept_st_emulate(struct conn *c, unsigned ev)
{
    const struct cfg *cfg = c->cfg;
    struct emu *e = tls_keyring(c->tls, c->pd.keyring);
    char crl[400];
    struct emu_params p = {
        .splash_text = c->pd.splash_text != NULL ? c->pd.splash_text : cfg->tls.splash_text,
        .splash_url = c->pd.splash_url != NULL ? c->pd.splash_url : cfg->tls.splash_url,
        .hostname = c->pd.emu_hostname,
    };
    if (cfg->tls.crl_url) {
        snprintf(crl, sizeof(crl), "http://%s/crl/%s.crl", cfg->tls.download_host,
                 c->tls->n_keyrings ? c->tls->keyring_names[0] : "default");
        p.crl_url = crl;
    }
    const uint8_t *der = NULL;
    size_t der_len = 0;
    /* An exception page, or errors the policy ignores that the client would
     * still see in a mimicked certificate (dates, name): a certificate for
     * the requested name made from our issuer, never one mimicking a
     * certificate that failed. */
    unsigned visible = VAL_E_EXPIRED | VAL_E_NOT_YET_VALID | VAL_E_HOSTNAME;
    if ((c->flags & CONN_F_EXCEPTION) || (c->cert != NULL && (c->cert->errors & visible))) {
        if (e != NULL)
            der = emu_issuer_der(e, &der_len);
        p.hostname = c->tls_host;
    } else if (c->cert != NULL && c->cert->n > 0) {
        der = c->cert->der[0];
        der_len = c->cert->len[0];
    }
    bool cached = false;
    char err[256] = "no keyring or no origin certificate";
    c->leaf = e != NULL && der != NULL
                  ? emu_leaf_get(e, der, der_len, &p, &cached, err, sizeof(err))
                  : NULL;
    if (c->leaf == NULL) {
        log_err(LOG_FAC_SSL, c, "cannot emulate the certificate of %s: %s", c->tls_host, err);
        c->err = CONN_ERR_EMULATE;
        return CAT_ERR;
    }
    log_debug(LOG_FAC_SSL, c, "emulated certificate for %s (%s)", c->tls_host,
              cached ? "cached" : "new");
    conn_set_state(c, CONN_ST_CLI_TLS);
    return CAT_OK;
}

/*
 * Entered with the emulated leaf; the ClientHello waits in cli.replay.
 * Exits: REQUEST (HTTP over TLS on both sides), closed (the client refused
 * our certificate or the handshake failed).
 */
int
intercept_st_cli_tls(struct conn *c, unsigned ev)
{
    struct conn_side *s = &c->cli;
    if (ev & CONN_EV_TIMER) {
        log_info(LOG_FAC_SSL, c, LOG_EVT_CLI_TLS " %s: handshake timed out", c->tls_host);
        c->err = CONN_ERR_CLI_TLS;
        return CAT_ERR;
    }
    if (s->ssl != NULL && s->up_ssl == NULL && c->lsn_type == CFG_LSN_HTTPS)
        conn_side_tls_nest(s); /* the client's TLS to the proxy: ours goes inside it */
    if (s->ssl == NULL) {
        conn_side_tls_io(s, &s->replay);
        s->tio.watch_alerts = true; /* a client refusing our certificate (pinning) */
        s->ssl = tls_session_new(emu_leaf_ctx(c->leaf), &s->tio);
        if (s->ssl == NULL) {
            c->err = CONN_ERR_NOMEM;
            return CAT_ERR;
        }
        tls_keylog_prepare(s->ssl);
        /* Mirroring: the client never sees a newer version than the origin spoke. */
        if (c->cfg->tls.mirror_version && c->srv.ssl != NULL &&
            wolfSSL_version(c->srv.ssl) < TLS1_3_VERSION &&
            wolfSSL_set_max_proto_version(s->ssl, wolfSSL_version(c->srv.ssl)) != WOLFSSL_SUCCESS)
            log_warn(LOG_FAC_SSL, c, "cannot mirror the origin's TLS version");
        conn_timer_once(c, c->cfg->timeouts.tls_handshake_ms);
    }
    int ret;
    int hrc = conn_side_handshake(c, s, false, &ret);
    if (hrc == CAT_AGAIN)
        return CAT_AGAIN;
    if (hrc != CAT_OK) {
        char d[256];
        tls_describe_error(s->ssl, ret, d, sizeof(d));
        /* Blame decides the level: a client refusing our leaf is expected
         * (pinning, no trust in our root); it is not our fault. */
        bool refused = tls_peer_rejected_cert(s->ssl, &s->tio);
        log_info(LOG_FAC_SSL, c, LOG_EVT_CLI_TLS " %s: %s%s", c->tls_host, d,
                 refused ? " (the client refused our certificate)" : "");
        /* Only a refusal by alert counts: a mere network error must not
         * mark a site as pinned. */
        if (refused && pin_record_refusal(&c->cfg->pinning, c->tls_host))
            log_notice(LOG_FAC_SSL, c,
                       "pinned: clients of %s refuse emulated certificates; tunneling it for "
                       "%u s",
                       c->tls_host, c->cfg->pinning.tunnel_ms / 1000);
        c->err = CONN_ERR_CLI_TLS;
        return CAT_ERR;
    }
    ev_timer_stop(c->w->loop, &c->timer);
    conn_side_want(c, s, 0);
    c->flags |= CONN_F_INTERCEPTED;
    log_debug(LOG_FAC_SSL, c, "client TLS up: %s %s", wolfSSL_get_version(s->ssl),
              wolfSSL_get_cipher(s->ssl));
    if (c->tlog != NULL) {
        if (!(c->flags & CONN_F_EXCEPTION))
            c->tlog->action = "INTERCEPTED";
        c->tlog->cs_version = wolfSSL_get_version(s->ssl);
        c->tlog->cs_cipher = wolfSSL_get_cipher(s->ssl);
        if (c->tlog->cert_status == NULL)
            c->tlog->cert_status = "CERT_VALID";
    }
    /* The CONNECT's own line: the requests inside follow as https. */
    c->txn.action = "TCP_INTERCEPTED";
    conn_log_txn(c);
    conn_txn_reset(c);
    c->n_requests = 0; /* the requests inside TLS count from here */
    tls_keylog_tls12(s->ssl);
    conn_timer_once(c, c->cfg->timeouts.head_ms);
    conn_set_state(c, CONN_ST_REQUEST);
    return CAT_OK;
}
