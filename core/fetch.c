/*
 * The HTTP client catena uses for its own fetches (OCSP, CRL, AIA): resolve
 * through the worker's resolver, connect to each address in turn, send one
 * request with Connection: close, read the head with the strict parser of
 * core/http and the body by Content-Length, chunked (decoded) or until close.
 * Invariants: every completion, even one found inside fetch_start(), goes
 * through a zero-delay timer, so callbacks only ever come from the loop; one
 * deadline covers the whole exchange; the body never grows past max_response.
 */
#include "core/fetch.h"

#include "core/http.h"
#include "core/log.h"
#include "core/relay.h"
#include "core/version.h"
#include "resolver/res.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

enum fetch_state {
    FETCH_ST_RESOLVE = 0, /* f->dns in flight */
    FETCH_ST_CONNECT,     /* non-blocking connect to addrs[addr_next - 1] */
    FETCH_ST_SEND,        /* writing f->out */
    FETCH_ST_HEAD,        /* reading the response head into f->head */
    FETCH_ST_BODY,        /* reading the body into f->body */
    FETCH_ST_DONE,        /* result recorded; the kick timer delivers it */
    FETCH_ST_FIRING,      /* the callback runs; freed when it returns */
};

struct fetch {
    struct ev_loop *loop; /* borrowed: the worker's */
    struct res *res;      /* borrowed: the worker's */
    fetch_cb *cb;
    void *arg;
    enum fetch_state st;
    enum http_method method;
    struct fetch_url url;
    unsigned timeout_ms;
    size_t max_response;

    struct res_query *dns; /* in flight while RESOLVE */
    struct res_answer addrs;
    size_t addr_next;
    char peer[INET6_ADDRSTRLEN + 8]; /* "ip:port" being tried, for messages */
    int fd;
    ev_io io;
    ev_timer deadline; /* the whole exchange */
    ev_timer attempt;  /* one connect attempt, so later addresses get their turn */
    ev_timer kick;     /* delivers the result from the loop */

    struct buf out; /* owned: request head and body */
    size_t sent;
    struct buf head; /* owned: response head and the bytes read with it */
    enum http_framing framing;
    uint64_t content_length;
    struct http_chunked ch;
    uint8_t *body; /* owned */
    size_t body_len, body_cap;

    struct fetch_result res_out;
    char err[320];
    char location[256];
};

/* ---- URLs ------------------------------------------------------------------ */

/* Bytes a URL path or query may carry onto the request line: visible ASCII only. */
static bool
fetch_path_ok(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f)
            return false;
    return true;
}

int
fetch_url_parse(const char *url, struct fetch_url *u, const char **err)
{
    /* A parsed head is 4 KiB: on the heap, not on a worker's stack. */
    struct http_head *h = malloc(sizeof(*h));
    struct http_url pu;
    size_t n = strlen(url);
    int rc = CAT_ERR;

    memset(u, 0, sizeof(*u));
    if (h == NULL) {
        *err = "out of memory";
        return CAT_ERR;
    }
    if (n == 0 || n >= FETCH_MAX_URL) {
        *err = n == 0 ? "empty URL" : "URL too long";
        goto out;
    }
    if (n < 7 || strncasecmp(url, "http://", 7) != 0) {
        *err = strncasecmp(url, "https://", 8) == 0 ? "https URLs are not supported"
                                                    : "not an http:// URL";
        goto out;
    }
    memset(h, 0, sizeof(*h));
    h->method = HTTP_M_GET;
    h->target = (struct http_str){url, n};
    if (http_parse_target(h, &pu) != CAT_OK) {
        *err = h->err != NULL ? h->err : "malformed URL";
        goto out;
    }
    if (!fetch_path_ok(pu.path.p, pu.path.len) || !fetch_path_ok(pu.query.p, pu.query.len)) {
        *err = "control character or space in URL";
        goto out;
    }
    if (pu.host.len == 0 || pu.host.len >= sizeof(u->host)) {
        *err = "malformed host in URL";
        goto out;
    }
    memcpy(u->host, pu.host.p, pu.host.len);
    u->host[pu.host.len] = '\0';
    u->port = pu.port;
    u->ipv6 = pu.host_is_ipv6;
    /* The path and query together are shorter than the URL, which fits. */
    memcpy(u->path, pu.path.p, pu.path.len);
    memcpy(u->path + pu.path.len, pu.query.p, pu.query.len);
    u->path[pu.path.len + pu.query.len] = '\0';
    rc = CAT_OK;
out:
    free(h);
    return rc;
}

/* ---- completion --------------------------------------------------------------- */

static void
fetch_close_fd(struct fetch *f)
{
    if (f->fd >= 0) {
        ev_io_stop(f->loop, &f->io);
        close(f->fd);
        f->fd = -1;
    }
    ev_timer_stop(f->loop, &f->attempt);
}

static void
fetch_free(struct fetch *f)
{
    fetch_close_fd(f);
    res_cancel(f->dns);
    ev_timer_stop(f->loop, &f->deadline);
    ev_timer_stop(f->loop, &f->kick);
    buf_free(&f->out);
    buf_free(&f->head);
    free(f->body);
    free(f);
}

/* Records the outcome (err NULL: the response is complete) and schedules delivery. */
static void
fetch_finish(struct fetch *f, const char *err)
{
    if (f->st == FETCH_ST_DONE || f->st == FETCH_ST_FIRING)
        return;
    fetch_close_fd(f);
    res_cancel(f->dns);
    f->dns = NULL;
    ev_timer_stop(f->loop, &f->deadline);
    f->res_out.err = err;
    f->st = FETCH_ST_DONE;
    ev_timer_set(&f->kick, 0., 0.);
    ev_timer_start(f->loop, &f->kick);
}

static void fetch_fail(struct fetch *f, const char *fmt, ...) CAT_PRINTF(2, 3);

static void
fetch_fail(struct fetch *f, const char *fmt, ...)
{
    if (f->st == FETCH_ST_DONE || f->st == FETCH_ST_FIRING)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->err, sizeof(f->err), fmt, ap);
    va_end(ap);
    fetch_finish(f, f->err);
}

static void
fetch_kick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct fetch *f = w->data;
    f->st = FETCH_ST_FIRING;
    f->cb(f->arg, &f->res_out);
    fetch_free(f);
}

void
fetch_cancel(struct fetch *f)
{
    /* From its own callback: it is freed when the callback returns. */
    if (f == NULL || f->st == FETCH_ST_FIRING)
        return;
    fetch_free(f);
}

static const char *
fetch_phase(const struct fetch *f)
{
    switch (f->st) {
    case FETCH_ST_RESOLVE:
        return "resolving";
    case FETCH_ST_CONNECT:
        return "connecting to";
    case FETCH_ST_SEND:
        return "sending to";
    default:
        return "waiting for the response of";
    }
}

static void
fetch_deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct fetch *f = w->data;
    fetch_fail(f, "timeout after %u ms (%s %s)", f->timeout_ms, fetch_phase(f),
               f->st == FETCH_ST_RESOLVE ? f->url.host : f->peer);
}

/* ---- response ------------------------------------------------------------------ */

/* Appends body bytes, growing the buffer up to max_response. */
static int
fetch_body_add(struct fetch *f, const uint8_t *p, size_t n)
{
    if (n == 0)
        return CAT_OK;
    if (n > f->max_response - f->body_len) {
        fetch_fail(f, "response too large (over %zu bytes)", f->max_response);
        return CAT_ERR;
    }
    if (f->body_len + n > f->body_cap) {
        size_t cap = f->body_cap ? f->body_cap : 16384;
        while (cap < f->body_len + n)
            cap = cap > f->max_response / 2 ? f->max_response : cap * 2;
        uint8_t *nb = realloc(f->body, cap);
        if (nb == NULL) {
            fetch_fail(f, "out of memory for a %zu-byte response", cap);
            return CAT_ERR;
        }
        f->body = nb;
        f->body_cap = cap;
    }
    memcpy(f->body + f->body_len, p, n);
    f->body_len += n;
    return CAT_OK;
}

static void
fetch_complete(struct fetch *f)
{
    int s = f->res_out.status;
    f->res_out.body = f->body;
    f->res_out.len = f->body_len;
    if (s >= 200 && s <= 299)
        fetch_finish(f, NULL);
    else if (s >= 300 && s <= 399 && f->location[0] != '\0')
        fetch_fail(f, "HTTP %d redirect to %s not followed", s, f->location);
    else
        fetch_fail(f, "HTTP %d %s", s, http_reason(s));
}

/*
 * Takes body bytes as they arrive. Chunked framing is decoded here: the
 * scanner validates every framing byte (fed one at a time, they are few) and
 * tells when data starts; data runs are copied whole.
 */
static int
fetch_body_feed(struct fetch *f, const uint8_t *p, size_t n)
{
    switch (f->framing) {
    case HTTP_BODY_LENGTH: {
        size_t want = (size_t)(f->content_length - f->body_len);
        if (fetch_body_add(f, p, CAT_MIN(n, want)) != CAT_OK)
            return CAT_ERR;
        if (f->body_len == f->content_length)
            fetch_complete(f);
        return CAT_OK;
    }
    case HTTP_BODY_CHUNKED:
        while (n > 0 && !http_chunked_done(&f->ch)) {
            size_t take = 1;
            if (f->ch.st == HTTP_CH_DATA) {
                take = (size_t)CAT_MIN((uint64_t)n, f->ch.remaining);
                if (fetch_body_add(f, p, take) != CAT_OK)
                    return CAT_ERR;
            }
            long r = http_chunked_scan(&f->ch, p, take);
            if (r < 0) {
                fetch_fail(f, "bad chunked framing from %s: %s", f->peer,
                           f->ch.err ? f->ch.err : "?");
                return CAT_ERR;
            }
            p += take;
            n -= take;
        }
        if (http_chunked_done(&f->ch))
            fetch_complete(f);
        return CAT_OK;
    case HTTP_BODY_CLOSE:
        return fetch_body_add(f, p, n);
    default:
        fetch_complete(f);
        return CAT_OK;
    }
}

/* Parses what f->head holds; moves on to the body once the head is complete. */
static void
fetch_head_feed(struct fetch *f)
{
    static const struct http_limits lim = {.max_head = FETCH_MAX_HEAD,
                                           .max_headers = HTTP_MAX_HEADERS};
    struct http_head *h = malloc(sizeof(*h));
    if (h == NULL) {
        fetch_fail(f, "out of memory");
        return;
    }
    for (;;) {
        int rc =
            http_parse_response((const char *)buf_data(&f->head), f->head.len, &lim, f->method, h);
        if (rc == CAT_AGAIN)
            break;
        if (rc != CAT_OK) {
            fetch_fail(f, "bad response from %s: %s", f->peer, h->err ? h->err : "malformed");
            break;
        }
        /* Interim responses (RFC 9110 15.2): skip them and read the real one. */
        if (h->status >= 100 && h->status <= 199 && h->status != 101) {
            buf_consume(&f->head, h->head_len);
            continue;
        }
        if (h->status == 101) {
            fetch_fail(f, "bad response from %s: unexpected 101", f->peer);
            break;
        }
        f->res_out.status = h->status;
        const struct http_hdr *loc = http_find(h, "Location");
        if (loc != NULL)
            snprintf(f->location, sizeof(f->location), "%.*s", (int)CAT_MIN(loc->value.len, 200),
                     loc->value.p);
        f->framing = h->framing;
        f->content_length = h->content_length;
        if (f->framing == HTTP_BODY_LENGTH && f->content_length > f->max_response) {
            fetch_fail(f, "response too large (Content-Length %llu, limit %zu)",
                       (unsigned long long)f->content_length, f->max_response);
            break;
        }
        http_chunked_init(&f->ch);
        f->st = FETCH_ST_BODY;
        size_t extra = f->head.len - h->head_len;
        const uint8_t *p = buf_data(&f->head) + h->head_len;
        if (f->framing == HTTP_BODY_NONE ||
            (f->framing == HTTP_BODY_LENGTH && f->content_length == 0))
            fetch_complete(f);
        else
            (void)fetch_body_feed(f, p, extra);
        break;
    }
    free(h);
    if (f->st == FETCH_ST_BODY)
        buf_free(&f->head);
}

static void
fetch_on_eof(struct fetch *f)
{
    if (f->st == FETCH_ST_HEAD) {
        fetch_fail(f, "%s closed the connection %s", f->peer,
                   f->head.len ? "inside the response head" : "without a response");
    } else if (f->framing == HTTP_BODY_CLOSE) {
        fetch_complete(f);
    } else if (f->framing == HTTP_BODY_LENGTH) {
        fetch_fail(f, "%s closed the connection after %zu of %llu body bytes", f->peer, f->body_len,
                   (unsigned long long)f->content_length);
    } else {
        fetch_fail(f, "%s closed the connection inside the chunked body", f->peer);
    }
}

static void
fetch_read(struct fetch *f)
{
    /* Bounded: a fast server cannot keep the loop here for ever. */
    for (int round = 0; round < 16 && (f->st == FETCH_ST_HEAD || f->st == FETCH_ST_BODY); round++) {
        ssize_t n;
        if (f->st == FETCH_ST_HEAD) {
            if (buf_reserve(&f->head, FETCH_MAX_HEAD + 1) != CAT_OK) {
                fetch_fail(f, "out of memory");
                return;
            }
            n = relay_read(f->fd, &f->head);
            if (n > 0)
                fetch_head_feed(f);
        } else {
            uint8_t tmp[16384];
            do
                n = read(f->fd, tmp, sizeof(tmp));
            while (n == -1 && errno == EINTR);
            if (n == -1)
                n = errno == EAGAIN || errno == EWOULDBLOCK ? CAT_AGAIN : CAT_ERR;
            if (n > 0)
                (void)fetch_body_feed(f, tmp, (size_t)n);
        }
        if (n == 0) {
            fetch_on_eof(f);
            return;
        }
        if (n == CAT_AGAIN)
            return;
        if (n < 0) {
            fetch_fail(f, "read from %s: %s", f->peer, strerror(errno));
            return;
        }
    }
}

/* ---- request ------------------------------------------------------------------- */

static void
fetch_send(struct fetch *f)
{
    while (f->sent < f->out.len) {
        ssize_t w = relay_write(f->fd, buf_data(&f->out) + f->sent, f->out.len - f->sent);
        if (w == CAT_AGAIN)
            return;
        if (w < 0) {
            fetch_fail(f, "send to %s: %s", f->peer, strerror(errno));
            return;
        }
        f->sent += (size_t)w;
    }
    buf_free(&f->out);
    f->st = FETCH_ST_HEAD;
    ev_io_stop(f->loop, &f->io);
    ev_io_set(&f->io, f->fd, EV_READ);
    ev_io_start(f->loop, &f->io);
}

static int
fetch_build(struct fetch *f, const char *method, const char *content_type, const uint8_t *body,
            size_t body_len)
{
    char host[300];
    if (f->url.ipv6)
        snprintf(host, sizeof(host), "[%s]", f->url.host);
    else
        snprintf(host, sizeof(host), "%s", f->url.host);
    if (f->url.port != 80) {
        size_t l = strlen(host);
        snprintf(host + l, sizeof(host) - l, ":%u", f->url.port);
    }
    size_t cap = strlen(f->url.path) + strlen(host) + 256 + body_len +
                 (content_type ? strlen(content_type) : 0);
    if (buf_reserve(&f->out, cap) != CAT_OK)
        return CAT_ERR;
    if (buf_printf(&f->out,
                   "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: catena/" CATENA_VERSION
                   "\r\nAccept: */*\r\nConnection: close\r\n",
                   method, f->url.path, host) != CAT_OK)
        return CAT_ERR;
    if (body != NULL || f->method == HTTP_M_POST) {
        if (content_type != NULL &&
            buf_printf(&f->out, "Content-Type: %s\r\n", content_type) != CAT_OK)
            return CAT_ERR;
        if (buf_printf(&f->out, "Content-Length: %zu\r\n", body_len) != CAT_OK)
            return CAT_ERR;
    }
    if (buf_append(&f->out, "\r\n", 2) != CAT_OK ||
        (body_len > 0 && buf_append(&f->out, body, body_len) != CAT_OK))
        return CAT_ERR;
    return CAT_OK;
}

/* ---- connecting ----------------------------------------------------------------- */

static void fetch_connect_next(struct fetch *f);

static void
fetch_connected(struct fetch *f)
{
    ev_timer_stop(f->loop, &f->attempt);
    int one = 1;
    (void)setsockopt(f->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    f->st = FETCH_ST_SEND;
    ev_io_stop(f->loop, &f->io);
    ev_io_set(&f->io, f->fd, EV_WRITE);
    ev_io_start(f->loop, &f->io);
    fetch_send(f);
}

static void
fetch_connect_failed(struct fetch *f, int err)
{
    log_debug(LOG_FAC_MAIN, NULL, "fetch: connect to %s: %s", f->peer, strerror(err));
    fetch_close_fd(f);
    if (f->addr_next >= f->addrs.n) {
        fetch_fail(f, "connect to %s: %s", f->peer, strerror(err));
        return;
    }
    fetch_connect_next(f);
}

static void
fetch_attempt_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    fetch_connect_failed(w->data, ETIMEDOUT);
}

static void
fetch_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct fetch *f = w->data;
    switch (f->st) {
    case FETCH_ST_CONNECT: {
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(f->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == -1)
            soerr = errno;
        if (soerr != 0)
            fetch_connect_failed(f, soerr);
        else
            fetch_connected(f);
        break;
    }
    case FETCH_ST_SEND:
        fetch_send(f);
        break;
    case FETCH_ST_HEAD:
    case FETCH_ST_BODY:
        fetch_read(f);
        break;
    default:
        break;
    }
}

static void
fetch_connect_next(struct fetch *f)
{
    int last = EHOSTUNREACH;
    while (f->addr_next < f->addrs.n) {
        size_t i = f->addr_next++;
        struct sockaddr_storage sa = f->addrs.addrs[i];
        socklen_t len = f->addrs.lens[i];
        char ip[INET6_ADDRSTRLEN] = "?";
        if (sa.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&sa;
            a->sin_port = htons((uint16_t)f->url.port);
            inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
            snprintf(f->peer, sizeof(f->peer), "%s:%u", ip, f->url.port);
        } else {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&sa;
            a->sin6_port = htons((uint16_t)f->url.port);
            inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
            snprintf(f->peer, sizeof(f->peer), "[%s]:%u", ip, f->url.port);
        }
        f->st = FETCH_ST_CONNECT;
        f->fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (f->fd == -1) {
            last = errno;
            continue;
        }
        ev_io_set(&f->io, f->fd, EV_WRITE);
        if (connect(f->fd, (struct sockaddr *)&sa, len) == 0) {
            fetch_connected(f);
            return;
        }
        if (errno == EINPROGRESS) {
            ev_io_start(f->loop, &f->io);
            /* Share what is left of the deadline among the addresses still to try. */
            size_t left = f->addrs.n - i;
            ev_tstamp remain = ev_timer_remaining(f->loop, &f->deadline);
            if (left > 1) {
                ev_timer_set(&f->attempt, remain / (double)left, 0.);
                ev_timer_start(f->loop, &f->attempt);
            }
            return;
        }
        last = errno;
        log_debug(LOG_FAC_MAIN, NULL, "fetch: connect to %s: %s", f->peer, strerror(last));
        close(f->fd);
        f->fd = -1;
    }
    fetch_fail(f, "connect to %s: %s", f->peer[0] ? f->peer : f->url.host, strerror(last));
}

static void
fetch_resolved(struct fetch *f, const struct res_answer *a)
{
    if (a->err != RES_OK || a->n == 0) {
        fetch_fail(f, "resolve %s: %s", f->url.host,
                   res_err_str(a->err != RES_OK ? a->err : RES_ERR_NODATA));
        return;
    }
    if (a != &f->addrs)
        f->addrs = *a;
    f->addr_next = 0;
    fetch_connect_next(f);
}

static void
fetch_dns_cb(void *arg, const struct res_answer *a)
{
    struct fetch *f = arg;
    f->dns = NULL;
    fetch_resolved(f, a);
}

struct fetch *
fetch_start(struct ev_loop *loop, struct res *res, const char *url, const char *method,
            const char *content_type, const uint8_t *body, size_t body_len, size_t max_response,
            unsigned timeout_ms, fetch_cb *cb, void *arg)
{
    struct fetch *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    f->loop = loop;
    f->res = res;
    f->cb = cb;
    f->arg = arg;
    f->fd = -1;
    f->timeout_ms = timeout_ms;
    f->max_response = max_response;
    ev_io_init(&f->io, fetch_io_cb, -1, EV_WRITE);
    f->io.data = f;
    ev_timer_init(&f->deadline, fetch_deadline_cb, timeout_ms / 1000.0, 0.);
    f->deadline.data = f;
    ev_timer_init(&f->attempt, fetch_attempt_cb, 1., 0.);
    f->attempt.data = f;
    ev_timer_init(&f->kick, fetch_kick_cb, 0., 0.);
    f->kick.data = f;
    /* The deadline counts from now, not from the loop's last wake-up. */
    ev_now_update(loop);
    ev_timer_start(loop, &f->deadline);

    const char *why = NULL;
    struct http_str m = {method, strlen(method)};
    f->method = http_method_from(m);
    if (f->method != HTTP_M_GET && f->method != HTTP_M_POST && f->method != HTTP_M_HEAD) {
        fetch_fail(f, "method %.16s not supported", method);
        return f;
    }
    if (content_type != NULL &&
        (strchr(content_type, '\r') != NULL || strchr(content_type, '\n') != NULL)) {
        fetch_fail(f, "bad Content-Type");
        return f;
    }
    if (fetch_url_parse(url, &f->url, &why) != CAT_OK) {
        fetch_fail(f, "bad URL \"%.200s\": %s", url, why);
        return f;
    }
    if (fetch_build(f, method, content_type, body, body_len) != CAT_OK) {
        fetch_fail(f, "out of memory");
        return f;
    }
    f->st = FETCH_ST_RESOLVE;
    int rc = res_lookup(res, f->url.host, &f->addrs, fetch_dns_cb, f, &f->dns);
    if (rc != CAT_AGAIN)
        fetch_resolved(f, &f->addrs);
    return f;
}
