/*
 * HTTP message relay for one exchange (CONN_ST_EXCHANGE).
 *
 * Each direction is a head made here (queued on the destination's `out`)
 * followed by body bytes forwarded from the source's `in` buffer without a
 * copy: a body scanner "approves" the bytes that belong to the message
 * (Content-Length countdown, chunked validation, or everything until close),
 * and only approved bytes are written on. Bytes after the message (a
 * pipelined next request) stay in the buffer for the next REQUEST state.
 *
 * Back-pressure is the buffer: when a destination does not take bytes, the
 * source's buffer fills and we stop reading the source.
 */
#include "core/msg.h"

#include "chain/chain.h"
#include "core/conn.h"
#include "core/forward.h"
#include "core/worker.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>

/* Handler-internal result: the state changed (an error page or a retry). */
#define MSG_STATE_CHANGED CAT_DECLINED

static void
msg_body_init(struct conn_body *b, enum http_framing f, uint64_t len)
{
    memset(b, 0, sizeof(*b));
    b->framing = f;
    b->remaining = len;
    http_chunked_init(&b->ch);
    b->complete = f == HTTP_BODY_NONE || (f == HTTP_BODY_LENGTH && len == 0);
}

/* Appends "name: value\r\n" for every header that goes on. */
static int
msg_copy_headers(const struct conn *c, struct buf *out, const struct http_head *h,
                 bool keep_length)
{
    for (size_t i = 0; i < h->n_hdrs; i++) {
        const struct http_hdr *x = &h->hdrs[i];
        if (http_str_eq(x->name, "Content-Length")) {
            if (!keep_length)
                continue;
        } else if (http_str_eq(x->name, "Host") || http_is_hop_by_hop(h, x) ||
                   fwd_is_tier_header(c, x)) {
            continue;
        }
        if (buf_printf(out, "%.*s: %.*s\r\n", (int)x->name.len, x->name.p, (int)x->value.len,
                       x->value.p) != CAT_OK)
            return CAT_ERR;
    }
    return CAT_OK;
}

int
msg_build_request(struct conn *c, const struct http_head *h, const struct http_url *u)
{
    const struct cfg *cfg = c->cfg;
    struct buf *out = &c->req_head;
    if (buf_reserve(out, cfg->limits.max_head_size + 1024) != CAT_OK) {
        c->err = CONN_ERR_NOMEM;
        return CAT_ERR;
    }
    out->head = out->len = 0;
    /* HTTP/1.0 clients get an HTTP/1.0 request on: the origin then never
     * answers chunked, which a 1.0 client could not read. */
    int minor = h->version == 10 ? 0 : 1;
    bool v6 = u->host_is_ipv6;
    /* Through an upstream proxy the target stays absolute (RFC 9112 3.2.2). */
    char abs[600] = "";
    if (c->route != NULL && !(c->flags & CONN_F_INTERCEPTED))
        snprintf(abs, sizeof(abs), "%s://%s%s%s:%u", c->txn.scheme, v6 ? "[" : "", c->txn.host,
                 v6 ? "]" : "", u->port);
    int rc = buf_printf(out, "%.*s %s%.*s%.*s HTTP/1.%d\r\nHost: %s%s%s", (int)h->method_str.len,
                        h->method_str.p, abs, (int)u->path.len, u->path.p, (int)u->query.len,
                        u->query.p, minor, v6 ? "[" : "", c->txn.host, v6 ? "]" : "");
    unsigned default_port = strcmp(c->txn.scheme, "https") == 0 ? 443 : 80;
    if (rc == CAT_OK && u->port != default_port)
        rc = buf_printf(out, ":%u", u->port);
    if (rc == CAT_OK)
        rc = buf_printf(out, "\r\n");
    if (rc == CAT_OK)
        rc = msg_copy_headers(c, out, h, false);
    if (rc == CAT_OK)
        rc = buf_printf(out, "Via: 1.%d %s\r\n", h->version == 10 ? 0 : 1, cfg->node_name);
    if (rc == CAT_OK && c->route != NULL && !(c->flags & CONN_F_INTERCEPTED))
        rc = fwd_upstream_headers(c, out);
    if (rc == CAT_OK && h->framing == HTTP_BODY_LENGTH)
        rc = buf_printf(out, "Content-Length: %llu\r\n", (unsigned long long)h->content_length);
    if (rc == CAT_OK && h->framing == HTTP_BODY_CHUNKED)
        rc = buf_printf(out, "Transfer-Encoding: chunked\r\n");
    if (rc == CAT_OK)
        rc = buf_printf(out, "\r\n");
    if (rc != CAT_OK) {
        conn_respond_error(c, 431, "request_header_too_large",
                           "The request head is too large to forward");
        return CAT_DECLINED;
    }
    msg_body_init(&c->req_body, h->framing, h->content_length);
    return CAT_OK;
}

void
msg_exchange_start(struct conn *c, bool reused)
{
    const struct cfg *cfg = c->cfg;
    c->srv_reused = reused;
    c->srv_fresh = false;
    c->txn.action = "TCP_MISS";
    c->resp_for = c->txn.method;
    c->resp_phase = CONN_MSG_IDLE;
    c->req_phase = CONN_MSG_BODY;
    /* Reserve failures surface as CAT_ERR from the first pump (no room). */
    if (buf_reserve(&c->srv.out, c->req_head.len) == CAT_OK) {
        c->srv.out.head = c->srv.out.len = 0;
        if (c->srv.out.cap >= c->req_head.len) {
            memcpy(c->srv.out.base, buf_data(&c->req_head), c->req_head.len);
            c->srv.out.len = c->req_head.len;
        }
    }
    if (buf_reserve(&c->srv.in, CAT_MAX(cfg->limits.buffer_size, cfg->limits.max_head_size)) !=
        CAT_OK)
        buf_free(&c->srv.out); /* msg_exchange sees the missing buffer and closes */
    conn_timer_idle(c, cfg->timeouts.idle_ms);
}

/* Rewrites a final response head for the client into cli.out. */
static int
msg_build_response(struct conn *c, const struct http_head *h)
{
    const struct cfg *cfg = c->cfg;
    struct buf *out = &c->cli.out;
    if (buf_reserve(out, cfg->limits.max_head_size + 1024) != CAT_OK)
        return CAT_ERR;
    bool close_cli = (c->flags & CONN_F_CLOSE_AFTER) || !c->txn.keep_alive ||
                     c->req_phase != CONN_MSG_DONE || worker_is_draining(c->w) ||
                     h->framing == HTTP_BODY_CLOSE;
    const char *reason = h->reason.len ? NULL : http_reason(h->status);
    int rc;
    if (reason != NULL)
        rc = buf_printf(out, "HTTP/1.1 %d %s\r\n", h->status, reason);
    else
        rc = buf_printf(out, "HTTP/1.1 %d %.*s\r\n", h->status, (int)h->reason.len, h->reason.p);
    /* A response without a body (HEAD, 304) keeps its Content-Length: it
     * describes the representation, not this message. */
    if (rc == CAT_OK)
        rc = msg_copy_headers(c, out, h, h->framing == HTTP_BODY_NONE);
    if (rc == CAT_OK)
        rc = buf_printf(out, "Via: 1.%d %s\r\n", h->version == 10 ? 0 : 1, cfg->node_name);
    if (rc == CAT_OK && h->framing == HTTP_BODY_LENGTH)
        rc = buf_printf(out, "Content-Length: %llu\r\n", (unsigned long long)h->content_length);
    if (rc == CAT_OK && h->framing == HTTP_BODY_CHUNKED)
        rc = buf_printf(out, "Transfer-Encoding: chunked\r\n");
    if (rc == CAT_OK && close_cli)
        rc = buf_printf(out, "Connection: close\r\n");
    else if (rc == CAT_OK && c->txn.version == 10)
        rc = buf_printf(out, "Connection: keep-alive\r\n");
    if (rc == CAT_OK)
        rc = buf_printf(out, "\r\n");
    if (rc != CAT_OK)
        return CAT_ERR;
    if (close_cli)
        c->flags |= CONN_F_CLOSE_AFTER;
    return CAT_OK;
}

/* Marks the connection's error from a failed write or read on a side. */
static int
msg_side_error(struct conn *c, const struct conn_side *s, bool eof)
{
    if (s == &c->cli)
        c->err = eof ? CONN_ERR_CLI_EOF : CONN_ERR_CLI_RESET;
    else
        c->err = eof ? CONN_ERR_SRV_EOF : CONN_ERR_SRV_RESET;
    return CAT_ERR;
}

/* Writes what was made here for a side (a head, an interim 100 Continue). */
static int
msg_flush(struct conn *c, struct conn_side *dst, bool *moved)
{
    while (dst->out.len > 0) {
        ssize_t n = conn_side_write(dst, buf_data(&dst->out), dst->out.len);
        if (n == CAT_AGAIN)
            return CAT_OK;
        if (n < 0)
            return msg_side_error(c, dst, false);
        buf_consume(&dst->out, (size_t)n);
        dst->bytes_out += n;
        *moved = true;
    }
    return CAT_OK;
}

/*
 * Moves one message body from src to dst: first dst->out (the head made
 * here), then approved bytes of src->in, scanning and reading more as room
 * allows. Sets *progress when anything moved. CAT_OK or CAT_ERR (closed).
 */
static int
msg_pump(struct conn *c, struct conn_side *src, struct conn_side *dst, struct conn_body *b,
         enum conn_msg_phase *phase, bool *progress)
{
    for (int pass = 0; pass < 64; pass++) {
        bool moved = false;
        /* 1. The head made here goes first. */
        if (msg_flush(c, dst, &moved) != CAT_OK)
            return CAT_ERR;
        /* 2. Approved body bytes, straight from the source's buffer. */
        if (dst->out.len == 0 && b->approved > 0) {
            ssize_t n = conn_side_write(dst, buf_data(&src->in), b->approved);
            if (n > 0) {
                buf_consume(&src->in, (size_t)n);
                b->approved -= (size_t)n;
                src->bytes_in += n;
                dst->bytes_out += n;
                moved = true;
            } else if (n != CAT_AGAIN) {
                return msg_side_error(c, dst, false);
            }
        }
        /* 3. Approve what arrived. */
        if (!b->complete && src->in.len > b->approved) {
            size_t fresh = src->in.len - b->approved;
            switch (b->framing) {
            case HTTP_BODY_LENGTH: {
                size_t take = (size_t)CAT_MIN((uint64_t)fresh, b->remaining);
                b->approved += take;
                b->remaining -= take;
                b->complete = b->remaining == 0;
                break;
            }
            case HTTP_BODY_CHUNKED: {
                long k = http_chunked_scan(&b->ch, buf_data(&src->in) + b->approved, fresh);
                if (k < 0) {
                    log_info(LOG_FAC_MAIN, c, "bad chunked body from the %s: %s",
                             src == &c->cli ? "client" : "server", b->ch.err);
                    c->err = src == &c->cli ? CONN_ERR_BAD_REQUEST : CONN_ERR_BAD_RESPONSE;
                    return CAT_ERR;
                }
                b->approved += (size_t)k;
                b->complete = http_chunked_done(&b->ch);
                break;
            }
            case HTTP_BODY_CLOSE:
                b->approved += fresh;
                break;
            case HTTP_BODY_NONE:
                b->complete = true;
                break;
            }
        }
        /* 4. Read more while the message wants more and there is room. */
        if (!b->complete && !src->eof && buf_room(&src->in) > 0) {
            ssize_t n = conn_side_read(src, &src->in);
            if (n > 0) {
                moved = true;
            } else if (n == 0) {
                src->eof = true;
                if (b->framing != HTTP_BODY_CLOSE) {
                    log_info(LOG_FAC_MAIN, c, "the %s closed in the middle of a body",
                             src == &c->cli ? "client" : "server");
                    return msg_side_error(c, src, true);
                }
                b->complete = true;
                moved = true;
            } else if (n != CAT_AGAIN) {
                return msg_side_error(c, src, false);
            }
        }
        if (b->complete && b->approved == 0 && dst->out.len == 0) {
            *phase = CONN_MSG_DONE;
            *progress = true;
            return CAT_OK;
        }
        if (!moved)
            break;
        *progress = true;
    }
    return CAT_OK;
}

/* The origin closed or reset before any response byte on a reused
 * connection: it timed out the idle connection as we sent. Safe to send the
 * request again on a new connection when it had no body. */
static bool
msg_may_retry(const struct conn *c)
{
    return c->srv_reused && c->srv.in.len == 0 && c->req_body.framing == HTTP_BODY_NONE &&
           c->resp_phase == CONN_MSG_IDLE;
}

static int
msg_retry(struct conn *c)
{
    log_debug(LOG_FAC_MAIN, c, "kept-alive origin connection was closed; retrying on a new one");
    ev_io_stop(c->w->loop, &c->srv.io);
    c->srv.events = 0;
    close(c->srv.fd);
    c->srv.fd = -1;
    c->srv.eof = false;
    buf_free(&c->srv.in);
    buf_free(&c->srv.out);
    c->srv_reusable = false;
    c->req_phase = CONN_MSG_IDLE;
    conn_set_state(c, CONN_ST_RESOLVE);
    return MSG_STATE_CHANGED;
}

/* An exception page made by an upstream tier (its X-Catena-Exception id)
 * counts as one in this tier's access log too. */
static void
msg_note_upstream_exception(struct conn *c, const struct http_head *h)
{
    const struct http_hdr *x = c->route != NULL ? http_find(h, "X-Catena-Exception") : NULL;
    if (x == NULL || x->value.len == 0 || x->value.len >= sizeof(c->txn.upstream_exception))
        return;
    for (size_t i = 0; i < x->value.len; i++) {
        char ch = x->value.p[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_'))
            return; /* ids are [a-z0-9_]: anything else is not ours to log */
    }
    memcpy(c->txn.upstream_exception, x->value.p, x->value.len);
    c->txn.upstream_exception[x->value.len] = '\0';
    c->txn.exception = c->txn.upstream_exception;
}

/*
 * Reads and parses the response head (skipping 1xx interim answers, which go
 * on to HTTP/1.1 clients). CAT_OK (maybe progressed), MSG_STATE_CHANGED
 * (error page or retry), CAT_ERR.
 */
static int
msg_response_head(struct conn *c, bool *progress)
{
    const struct cfg *cfg = c->cfg;
    const struct http_limits lim = {cfg->limits.max_head_size, cfg->limits.max_headers};
    for (int pass = 0; pass < 16; pass++) {
        if (c->srv.in.len > 0) {
            struct http_head h;
            int rc = http_parse_response((const char *)buf_data(&c->srv.in), c->srv.in.len, &lim,
                                         c->resp_for, &h);
            if (rc == CAT_ERR) {
                log_warn(LOG_FAC_MAIN, c, "invalid response from %s: %s", c->srv_ip, h.err);
                c->txn.action = "TCP_ERR_MISS";
                conn_respond_error(c, 502, "server_response_invalid",
                                   "The server sent an invalid response: %s", h.err);
                return MSG_STATE_CHANGED;
            }
            if (rc == CAT_OK) {
                *progress = true;
                if (h.status == 101) {
                    /* We never forward Upgrade, so a switch is a protocol error. */
                    c->txn.action = "TCP_ERR_MISS";
                    conn_respond_error(c, 502, "server_response_invalid",
                                       "The server switched protocols unasked");
                    return MSG_STATE_CHANGED;
                }
                if (h.status < 200) {
                    if (c->txn.version == 11 &&
                        (buf_reserve(&c->cli.out, cfg->limits.max_head_size + 1024) != CAT_OK ||
                         buf_printf(&c->cli.out, "HTTP/1.1 %d %s\r\n\r\n", h.status,
                                    http_reason(h.status)) != CAT_OK)) {
                        c->err = CONN_ERR_NOMEM;
                        return CAT_ERR;
                    }
                    buf_consume(&c->srv.in, h.head_len);
                    c->srv.bytes_in += (int64_t)h.head_len;
                    continue;
                }
                if (h.status == 407 && c->route != NULL && !(c->flags & CONN_F_INTERCEPTED)) {
                    /* The upstream's own login, not the user's business: a
                     * page naming it, as for a refused CONNECT. */
                    const struct cfg_fwd_host *up = c->route->cfg;
                    log_warn(LOG_FAC_MAIN, c, "upstream %s (%s) answered 407%s", up->name,
                             up->addr_text,
                             up->credentials_file != NULL ? ": it refuses our credentials"
                                                          : ": it wants credentials_file");
                    c->txn.action = "TCP_ERR_MISS";
                    c->srv_reusable = false;
                    conn_respond_error(c, 502, "upstream_authentication",
                                       "The upstream proxy %s (%s) answered 407 Proxy "
                                       "Authentication Required%s",
                                       up->name, up->addr_text,
                                       up->credentials_file != NULL
                                           ? ": it refused this proxy's credentials"
                                           : ": this proxy has no credentials for it");
                    return MSG_STATE_CHANGED;
                }
                if (msg_build_response(c, &h) != CAT_OK) {
                    c->txn.action = "TCP_ERR_MISS";
                    conn_respond_error(c, 502, "server_response_invalid",
                                       "The response head is too large");
                    return MSG_STATE_CHANGED;
                }
                c->txn.status = h.status;
                msg_note_upstream_exception(c, &h);
                c->srv_reusable = h.keep_alive && h.framing != HTTP_BODY_CLOSE;
                msg_body_init(&c->resp_body, h.framing, h.content_length);
                buf_consume(&c->srv.in, h.head_len);
                c->srv.bytes_in += (int64_t)h.head_len;
                c->resp_phase = CONN_MSG_BODY;
                return CAT_OK;
            }
        }
        if (buf_room(&c->srv.in) == 0)
            return CAT_OK; /* cannot happen: the parser errs at max_head */
        ssize_t n = conn_side_read(&c->srv, &c->srv.in);
        if (n > 0) {
            *progress = true;
            continue;
        }
        if (n == CAT_AGAIN)
            return CAT_OK;
        if (msg_may_retry(c))
            return msg_retry(c);
        c->txn.action = "TCP_ERR_MISS";
        log_info(LOG_FAC_MAIN, c, "server %s %s before a complete response head", c->srv_ip,
                 n == 0 ? "closed" : "reset");
        conn_respond_error(c, 502, "server_response_invalid",
                           "The server closed the connection without a complete response");
        return MSG_STATE_CHANGED;
    }
    return CAT_OK;
}

/* Both messages are done: log, then the next request or the end. */
static int
msg_exchange_end(struct conn *c)
{
    conn_log_txn(c);
    bool close_cli = (c->flags & CONN_F_CLOSE_AFTER) || worker_is_draining(c->w);
    if (!c->srv_reusable || c->req_phase != CONN_MSG_DONE || close_cli) {
        ev_io_stop(c->w->loop, &c->srv.io);
        c->srv.events = 0;
        close(c->srv.fd);
        c->srv.fd = -1;
        c->srv.eof = false;
        c->srv_reusable = false;
        buf_free(&c->srv.in);
    }
    buf_free(&c->srv.out);
    conn_side_want(c, &c->srv, 0);
    conn_side_want(c, &c->cli, 0);
    conn_txn_reset(c);
    c->req_phase = c->resp_phase = CONN_MSG_IDLE;
    if (close_cli) {
        conn_set_state(c, CONN_ST_LINGER);
        return CAT_OK;
    }
    c->flags |= CONN_F_IDLE;
    conn_timer_once(c, c->cfg->timeouts.keepalive_ms);
    conn_set_state(c, CONN_ST_REQUEST);
    return CAT_OK;
}

int
msg_exchange(struct conn *c, unsigned ev)
{
    if (ev & CONN_EV_TIMER) {
        c->err = CONN_ERR_TIMEOUT;
        log_info(LOG_FAC_MAIN, c, "exchange idle for %u ms", c->cfg->timeouts.idle_ms);
        if (c->resp_phase == CONN_MSG_IDLE) {
            c->txn.action = "TCP_ERR_MISS";
            return conn_respond_error(c, 504, "gateway_timeout",
                                      "The server did not answer in time");
        }
        return CAT_ERR;
    }
    if (c->srv.out.base == NULL || c->srv.in.base == NULL) {
        c->err = CONN_ERR_NOMEM;
        return CAT_ERR;
    }
    for (int pass = 0; pass < 64; pass++) {
        bool progress = false;
        if (c->req_phase == CONN_MSG_BODY &&
            msg_pump(c, &c->cli, &c->srv, &c->req_body, &c->req_phase, &progress) != CAT_OK) {
            /* The origin went away while we sent: on a reused connection
             * with nothing answered yet, send again on a new one. */
            if (c->err == CONN_ERR_SRV_RESET && msg_may_retry(c))
                return msg_retry(c) == MSG_STATE_CHANGED ? CAT_OK : CAT_ERR;
            return CAT_ERR;
        }
        if (c->resp_phase == CONN_MSG_IDLE) {
            /* Interim answers (100 Continue) go to the client at once. */
            if (msg_flush(c, &c->cli, &progress) != CAT_OK)
                return CAT_ERR;
            int rc = msg_response_head(c, &progress);
            if (rc == MSG_STATE_CHANGED)
                return CAT_OK;
            if (rc != CAT_OK)
                return CAT_ERR;
        }
        if (c->resp_phase == CONN_MSG_BODY &&
            msg_pump(c, &c->srv, &c->cli, &c->resp_body, &c->resp_phase, &progress) != CAT_OK)
            return CAT_ERR;
        if (c->resp_phase == CONN_MSG_DONE &&
            (c->req_phase == CONN_MSG_DONE || (c->flags & CONN_F_CLOSE_AFTER)))
            return msg_exchange_end(c);
        if (progress)
            conn_touch(c, c->w->loop);
        else
            break;
    }

    int cev = 0, sev = 0;
    if (c->req_phase == CONN_MSG_BODY && !c->req_body.complete && buf_room(&c->cli.in) > 0)
        cev |= EV_READ;
    if (c->cli.out.len > 0 || (c->resp_phase == CONN_MSG_BODY && c->resp_body.approved > 0))
        cev |= EV_WRITE;
    if ((c->resp_phase == CONN_MSG_IDLE ||
         (c->resp_phase == CONN_MSG_BODY && !c->resp_body.complete)) &&
        buf_room(&c->srv.in) > 0 && !c->srv.eof)
        sev |= EV_READ;
    if (c->srv.out.len > 0 || (c->req_phase == CONN_MSG_BODY && c->req_body.approved > 0))
        sev |= EV_WRITE;
    conn_side_want(c, &c->cli, cev);
    conn_side_want(c, &c->srv, sev);
    return CAT_AGAIN;
}

/* ---- a decrypted byte stream (not HTTP inside intercepted TLS) ---------- */

void
msg_stream_start(struct conn *c)
{
    const struct cfg *cfg = c->cfg;
    msg_body_init(&c->req_body, HTTP_BODY_CLOSE, 0);
    msg_body_init(&c->resp_body, HTTP_BODY_CLOSE, 0);
    c->req_phase = c->resp_phase = CONN_MSG_BODY;
    c->txn.action = "TCP_TUNNELED";
    c->txn.status = 200;
    if (c->txn.method_str[0] == '\0') {
        /* Not HTTP inside an interception: a transaction of its own. */
        snprintf(c->txn.method_str, sizeof(c->txn.method_str), "-");
        snprintf(c->txn.scheme, sizeof(c->txn.scheme), "tls");
        snprintf(c->txn.host, sizeof(c->txn.host), "%s", c->tls_host);
        c->txn.port = c->tls_port;
        clock_gettime(CLOCK_REALTIME, &c->txn.start);
    }
    size_t cap = CAT_MAX(cfg->limits.buffer_size, cfg->limits.max_head_size);
    if (buf_reserve(&c->srv.in, cap) != CAT_OK)
        buf_free(&c->cli.in); /* msg_stream sees the missing buffer and closes */
    conn_timer_idle(c, cfg->timeouts.tunnel_idle_ms);
}

/* Tells dst that its peer finished: close_notify, then FIN. */
static void
msg_shut(struct conn_side *dst)
{
    if (dst->shut)
        return;
    dst->shut = true;
    if (dst->ssl != NULL)
        wolfSSL_shutdown(dst->ssl); /* best effort: one try, non-blocking */
    shutdown(dst->fd, SHUT_WR);
}

int
msg_stream(struct conn *c, unsigned ev)
{
    if (ev & CONN_EV_TIMER) {
        c->err = CONN_ERR_TIMEOUT;
        return CAT_ERR;
    }
    if (c->cli.in.base == NULL || c->srv.in.base == NULL) {
        c->err = CONN_ERR_NOMEM;
        return CAT_ERR;
    }
    for (int pass = 0; pass < 64; pass++) {
        bool progress = false;
        if (c->req_phase == CONN_MSG_BODY &&
            msg_pump(c, &c->cli, &c->srv, &c->req_body, &c->req_phase, &progress) != CAT_OK)
            return CAT_ERR;
        if (c->resp_phase == CONN_MSG_BODY &&
            msg_pump(c, &c->srv, &c->cli, &c->resp_body, &c->resp_phase, &progress) != CAT_OK)
            return CAT_ERR;
        if (c->req_phase == CONN_MSG_DONE)
            msg_shut(&c->srv);
        if (c->resp_phase == CONN_MSG_DONE)
            msg_shut(&c->cli);
        if (c->req_phase == CONN_MSG_DONE && c->resp_phase == CONN_MSG_DONE) {
            c->err = CONN_ERR_CLI_EOF;
            return CAT_ERR; /* both ended: a normal close */
        }
        if (!progress)
            break;
        conn_touch(c, c->w->loop);
    }
    int cev = 0, sev = 0;
    if (c->req_phase == CONN_MSG_BODY && buf_room(&c->cli.in) > 0)
        cev |= EV_READ;
    if (c->resp_phase == CONN_MSG_BODY && c->resp_body.approved > 0)
        cev |= EV_WRITE;
    if (c->resp_phase == CONN_MSG_BODY && buf_room(&c->srv.in) > 0)
        sev |= EV_READ;
    if (c->req_phase == CONN_MSG_BODY && c->req_body.approved > 0)
        sev |= EV_WRITE;
    conn_side_want(c, &c->cli, cev);
    conn_side_want(c, &c->srv, sev);
    return CAT_AGAIN;
}
