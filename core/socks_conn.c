/*
 * SOCKS5 listeners: the front of a connection that speaks RFC 1928 instead
 * of an HTTP CONNECT. The greeting, the optional RFC 1929 login and the
 * request are read here (parsers in socks.c); from the request on, the
 * connection takes the very path of a CONNECT: the same client networks and
 * port allow-list, policy, resolution, TLS detection, tunnel or interception.
 * Only answers differ: SOCKS replies instead of HTTP status lines.
 */
#include "core/socks.h"

#include "core/auth.h"
#include "core/conn.h"
#include "core/worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

enum socks_phase { SOCKS_PH_GREETING = 0, SOCKS_PH_AUTH, SOCKS_PH_REQUEST };

/* Queues a reply for the client (written by the handler or RESPOND). */
static int
socks_queue(struct conn *c, const uint8_t *p, size_t n)
{
    if (buf_reserve(&c->cli.out, 256) != CAT_OK || buf_append(&c->cli.out, p, n) != CAT_OK) {
        c->err = CONN_ERR_NOMEM;
        return CAT_ERR;
    }
    return CAT_OK;
}

int
socks_answer_failure(struct conn *c, uint8_t rep)
{
    uint8_t r[SOCKS_REPLY_MAX];
    size_t n = socks_reply(r, rep, NULL);
    buf_free(&c->cli.out);
    if (socks_queue(c, r, n) != CAT_OK)
        return CAT_ERR;
    c->flags |= CONN_F_CLOSE_AFTER;
    c->after_respond = CONN_ST_LINGER;
    conn_set_state(c, CONN_ST_RESPOND);
    return CAT_OK;
}

int
socks_answer_success(struct conn *c)
{
    struct sockaddr_storage bound;
    socklen_t len = sizeof(bound);
    uint8_t r[SOCKS_REPLY_MAX];
    bool have = getsockname(c->srv.fd, (struct sockaddr *)&bound, &len) == 0;
    size_t n = socks_reply(r, SOCKS_REP_SUCCEEDED, have ? (struct sockaddr *)&bound : NULL);
    return socks_queue(c, r, n);
}

/* Writes what is queued; CAT_AGAIN until it is all out. */
static int
socks_flush(struct conn *c)
{
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
    return CAT_OK;
}

/* A malformed message: logged with the parser's words, answered if SOCKS5 at all. */
static int
socks_malformed(struct conn *c, const char *err, uint8_t rep, bool reply)
{
    log_info(LOG_FAC_MAIN, c, LOG_EVT_BAD_REQUEST " %s", err);
    c->err = CONN_ERR_BAD_REQUEST;
    snprintf(c->txn.method_str, sizeof(c->txn.method_str), "-");
    snprintf(c->txn.scheme, sizeof(c->txn.scheme), "socks");
    c->txn.action = "TCP_ERR";
    c->txn.status = 400;
    if (!reply)
        return CAT_ERR;
    return socks_answer_failure(c, rep);
}

/* The realm of this listener's logins, or NULL when it takes none. */
static struct auth_realm *
socks_realm(const struct conn *c)
{
    if (c->lsn == NULL || c->lsn->realm == NULL)
        return NULL;
    return tls_realm(c->tls, c->lsn->realm);
}

/* A refused login: 01 01 is queued; the connection closes once it is sent. */
static int
socks_login_refused(struct conn *c, const char *why)
{
    log_notice(LOG_FAC_MAIN, c, LOG_EVT_DENIED " SOCKS login: %s", why);
    c->err = CONN_ERR_DENIED;
    snprintf(c->txn.method_str, sizeof(c->txn.method_str), "-");
    snprintf(c->txn.scheme, sizeof(c->txn.scheme), "socks");
    clock_gettime(CLOCK_REALTIME, &c->txn.start);
    c->txn.action = "TCP_DENIED";
    c->txn.status = 407;
    c->txn.exception = "authentication_failed";
    c->flags |= CONN_F_CLOSE_AFTER;
    c->after_respond = CONN_ST_LINGER;
    conn_set_state(c, CONN_ST_RESPOND);
    return CAT_OK;
}

/* RFC 1929: the login checked against the listener's realm (a's password is wiped). */
static int
socks_login(struct conn *c, struct socks_auth *a)
{
    struct auth_realm *r = socks_realm(c);
    enum auth_result res = AUTH_FAIL;
    bool printable = true;
    for (size_t i = 0; i < a->user_len; i++)
        printable &= (unsigned char)a->user[i] >= 0x20 && a->user[i] != 0x7f;
    if (r == NULL)
        log_err(LOG_FAC_MAIN, c, "SOCKS listener realm %s is not loaded",
                c->lsn != NULL && c->lsn->realm != NULL ? c->lsn->realm : "?");
    else if (!printable)
        res = AUTH_MALFORMED;
    else
        res = auth_check_userpass(r, a->user, a->pass, (const struct sockaddr *)&c->cli_addr,
                                  time(NULL));
    socks_auth_wipe(a);
    uint8_t rep[SOCKS_AUTH_REPLY_LEN];
    if (socks_queue(c, rep, socks_auth_reply(rep, res == AUTH_OK)) != CAT_OK)
        return CAT_ERR;
    if (res != AUTH_OK) {
        char why[300];
        snprintf(why, sizeof(why), "%s for user \"%s\"%s%s", auth_result_str(res),
                 printable ? a->user : "(unprintable)", r != NULL ? " in realm " : "",
                 r != NULL ? auth_realm_name(r) : "");
        return socks_login_refused(c, why);
    }
    snprintf(c->user, sizeof(c->user), "%s", a->user);
    log_debug(LOG_FAC_MAIN, c, "SOCKS login: user %s", c->user);
    c->socks_phase = SOCKS_PH_REQUEST;
    return CAT_OK;
}

/* Parses what the current phase expects. CAT_OK: a state change or next phase,
 * CAT_AGAIN: need bytes, CAT_ERR: closed. */
static int
socks_parse(struct conn *c, bool *advanced)
{
    const uint8_t *p = buf_data(&c->cli.in);
    size_t len = c->cli.in.len;
    *advanced = false;
    switch (c->socks_phase) {
    case SOCKS_PH_GREETING: {
        struct socks_greeting g;
        int rc = socks_parse_greeting(p, len, &g);
        if (rc != CAT_OK)
            return rc == CAT_AGAIN ? CAT_AGAIN : socks_malformed(c, g.err, 0, false);
        buf_consume(&c->cli.in, g.used);
        c->cli.bytes_in += (int64_t)g.used;
        /* A listener with a realm takes logins only; without one, only
         * "no authentication" is acceptable. */
        bool login = socks_realm(c) != NULL;
        uint8_t want = login ? SOCKS_M_USERPASS : SOCKS_M_NOAUTH;
        uint8_t m = socks_offers(&g, want) ? want : SOCKS_M_NONE;
        uint8_t r[SOCKS_METHOD_REPLY_LEN];
        if (socks_queue(c, r, socks_method_reply(r, m)) != CAT_OK)
            return CAT_ERR;
        if (m == SOCKS_M_NONE) {
            log_info(LOG_FAC_MAIN, c, LOG_EVT_DENIED " SOCKS client offers no acceptable method%s",
                     login ? " (this listener requires username/password)" : "");
            c->err = CONN_ERR_DENIED;
            c->flags |= CONN_F_CLOSE_AFTER;
            c->after_respond = CONN_ST_LINGER;
            conn_set_state(c, CONN_ST_RESPOND);
            return CAT_OK;
        }
        c->socks_phase = login ? SOCKS_PH_AUTH : SOCKS_PH_REQUEST;
        *advanced = true;
        return CAT_OK;
    }
    case SOCKS_PH_AUTH: {
        struct socks_auth a;
        int rc = socks_parse_auth(p, len, &a);
        if (rc == CAT_AGAIN)
            return CAT_AGAIN;
        if (rc != CAT_OK) {
            uint8_t r[SOCKS_AUTH_REPLY_LEN];
            socks_auth_wipe(&a);
            if (socks_queue(c, r, socks_auth_reply(r, false)) != CAT_OK)
                return CAT_ERR;
            return socks_login_refused(c, a.err);
        }
        explicit_bzero(buf_data(&c->cli.in), a.used); /* the password, as the client sent it */
        buf_consume(&c->cli.in, a.used);
        c->cli.bytes_in += (int64_t)a.used;
        int lrc = socks_login(c, &a);
        *advanced = lrc == CAT_OK && c->socks_phase == SOCKS_PH_REQUEST;
        return lrc;
    }
    case SOCKS_PH_REQUEST: {
        struct socks_req q;
        int rc = socks_parse_request(p, len, &q);
        if (rc == CAT_AGAIN)
            return CAT_AGAIN;
        if (rc != CAT_OK)
            return socks_malformed(c, q.err, q.rep, true);
        buf_consume(&c->cli.in, q.used);
        c->cli.bytes_in += (int64_t)q.used;
        struct conn_txn *t = &c->txn;
        clock_gettime(CLOCK_REALTIME, &t->start);
        snprintf(t->scheme, sizeof(t->scheme), "socks");
        snprintf(t->host, sizeof(t->host), "%s", q.host);
        t->port = q.port;
        snprintf(t->method_str, sizeof(t->method_str), "%s", socks_cmd_str(q.cmd));
        if (q.cmd != SOCKS_CMD_CONNECT) {
            log_info(LOG_FAC_MAIN, c, "SOCKS %s is not supported", socks_cmd_str(q.cmd));
            t->action = "TCP_ERR";
            t->status = 501;
            return socks_answer_failure(c, SOCKS_REP_CMD_UNSUPPORTED);
        }
        /* From here on it is a CONNECT: same policy, same path. */
        t->method = HTTP_M_CONNECT;
        c->n_requests++;
        conn_set_state(c, CONN_ST_POLICY);
        return CAT_OK;
    }
    }
    return CAT_ERR;
}

/*
 * Entered on a SOCKS5 listener's connection. Exits: POLICY (a CONNECT
 * request), RESPOND (a refusal), closed (malformed, timeout, client left).
 */
int
socks_st_request(struct conn *c, unsigned ev)
{
    if (ev & CONN_EV_TIMER) {
        log_info(LOG_FAC_MAIN, c, "SOCKS negotiation not complete within %u ms",
                 c->cfg->timeouts.head_ms);
        c->err = CONN_ERR_TIMEOUT;
        return CAT_ERR;
    }
    if (buf_reserve(&c->cli.in, c->cfg->limits.buffer_size) != CAT_OK) {
        c->err = CONN_ERR_NOMEM;
        return CAT_ERR;
    }
    for (int pass = 0; pass < 16; pass++) {
        int rc = socks_flush(c);
        if (rc != CAT_OK)
            return rc;
        enum conn_state st = c->state;
        bool advanced = false;
        if (c->cli.in.len > 0) {
            rc = socks_parse(c, &advanced);
            if (rc == CAT_ERR)
                return CAT_ERR;
            if (c->state != st)
                return socks_flush(c) == CAT_ERR ? CAT_ERR : CAT_OK;
            if (advanced)
                continue;
        }
        rc = conn_cli_read_more(c, &c->cli.in);
        if (rc != CAT_OK)
            return rc;
    }
    conn_side_want(c, &c->cli, EV_READ);
    return CAT_AGAIN;
}

uint8_t
socks_rep_for(const char *exception_id, int connect_errno)
{
    if (exception_id == NULL)
        return SOCKS_REP_GENERAL_FAILURE;
    if (strcmp(exception_id, "policy_denied") == 0)
        return SOCKS_REP_NOT_ALLOWED;
    if (strncmp(exception_id, "dns_", 4) == 0)
        return SOCKS_REP_HOST_UNREACHABLE;
    if (strcmp(exception_id, "gateway_timeout") == 0)
        return SOCKS_REP_TTL_EXPIRED;
    if (strcmp(exception_id, "tcp_error") == 0)
        return socks_rep_from_errno(connect_errno);
    return SOCKS_REP_GENERAL_FAILURE;
}
