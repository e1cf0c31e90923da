/*
 * Unit tests of core/fetch: URL splitting, the chunked decoder fed byte by
 * byte, and whole exchanges against a listener the test binds on 127.0.0.1
 * port 0 and serves from its own loop with canned responses (written in small
 * pieces, one per loop turn). Names resolve through a hosts file: nothing
 * leaves loopback and no DNS is sent. Every loop run has a guard timer.
 */
#include "core/fetch.c"

#include <arpa/inet.h>
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

/* ---- a canned server on the test's loop ------------------------------------- */

enum t_mode {
    T_RESPOND = 0, /* read the request, send resp, close */
    T_CLOSE,       /* read the request, close without answering */
    T_SILENT,      /* accept and never answer */
};

struct t_srv {
    struct ev_loop *loop;
    int lfd;
    unsigned port;
    ev_io lio;
    enum t_mode mode;
    const char *resp;
    size_t resp_len;
    size_t piece; /* bytes per write; 0 = all at once */
    /* the one connection being served */
    int cfd;
    ev_io cio;
    char req[16384];
    size_t req_len;
    bool req_done;
    size_t resp_off;
    int accepted;
};

static bool
t_req_complete(struct t_srv *s)
{
    s->req[s->req_len] = '\0';
    char *end = strstr(s->req, "\r\n\r\n");
    if (end == NULL)
        return false;
    size_t head = (size_t)(end - s->req) + 4;
    const char *cl = strcasestr(s->req, "\r\nContent-Length:");
    size_t want = cl != NULL && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
    return s->req_len >= head + want;
}

static void
t_conn_close(struct t_srv *s)
{
    if (s->cfd >= 0) {
        ev_io_stop(s->loop, &s->cio);
        close(s->cfd);
        s->cfd = -1;
    }
}

static void
t_conn_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct t_srv *s = w->data;
    if (!s->req_done) {
        ssize_t n = read(s->cfd, s->req + s->req_len, sizeof(s->req) - 1 - s->req_len);
        if (n <= 0) {
            t_conn_close(s);
            return;
        }
        s->req_len += (size_t)n;
        if (!t_req_complete(s))
            return;
        s->req_done = true;
        if (s->mode == T_CLOSE) {
            t_conn_close(s);
            return;
        }
        if (s->mode == T_SILENT)
            return;
        ev_io_stop(loop, &s->cio);
        ev_io_set(&s->cio, s->cfd, EV_WRITE);
        ev_io_start(loop, &s->cio);
        return;
    }
    if (s->mode == T_SILENT) {
        char tmp[256];
        if (read(s->cfd, tmp, sizeof(tmp)) <= 0)
            t_conn_close(s);
        return;
    }
    size_t left = s->resp_len - s->resp_off;
    size_t n = s->piece ? CAT_MIN(left, s->piece) : left;
    ssize_t w2 = write(s->cfd, s->resp + s->resp_off, n);
    if (w2 > 0)
        s->resp_off += (size_t)w2;
    if (w2 < 0 || s->resp_off == s->resp_len)
        t_conn_close(s);
}

static void
t_accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct t_srv *s = w->data;
    int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    if (s->cfd >= 0) { /* one at a time is all these tests need */
        close(fd);
        return;
    }
    s->accepted++;
    s->cfd = fd;
    s->req_len = 0;
    s->req_done = false;
    s->resp_off = 0;
    ev_io_init(&s->cio, t_conn_cb, fd, EV_READ);
    s->cio.data = s;
    ev_io_start(loop, &s->cio);
}

static void
t_srv_start(struct t_srv *s, struct ev_loop *loop, const char *resp)
{
    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->cfd = -1;
    s->resp = resp;
    s->resp_len = resp ? strlen(resp) : 0;
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(s->lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->lfd, 8), 0);
    socklen_t al = sizeof(a);
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &al), 0);
    s->port = ntohs(a.sin_port);
    ev_io_init(&s->lio, t_accept_cb, s->lfd, EV_READ);
    s->lio.data = s;
    ev_io_start(loop, &s->lio);
}

static void
t_srv_stop(struct t_srv *s)
{
    t_conn_close(s);
    ev_io_stop(s->loop, &s->lio);
    close(s->lfd);
}

/* ---- the client side ---------------------------------------------------------- */

struct t_env {
    struct ev_loop *loop;
    struct res *res;
    char hosts[64];
    ev_timer guard;
    bool guard_fired;
};

struct t_call {
    struct t_env *e;
    int calls;
    int status;
    char err[400];
    bool has_err;
    uint8_t body[70000];
    size_t len;
    bool body_null;
    struct fetch *cancel_other; /* cancelled from this callback */
};

static bool in_start; /* a callback seeing this ran inside fetch_start() */

static void
t_cb(void *arg, const struct fetch_result *r)
{
    struct t_call *c = arg;
    assert_false(in_start);
    c->calls++;
    c->status = r->status;
    c->has_err = r->err != NULL;
    snprintf(c->err, sizeof(c->err), "%s", r->err ? r->err : "");
    c->body_null = r->body == NULL;
    c->len = r->len;
    if (r->len > 0) {
        assert_true(r->len <= sizeof(c->body));
        memcpy(c->body, r->body, r->len);
    }
    if (c->cancel_other != NULL)
        fetch_cancel(c->cancel_other);
}

static void
t_guard_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct t_env *e = w->data;
    e->guard_fired = true;
    ev_break(loop, EVBREAK_ALL);
}

static struct t_env *
t_env_new(void)
{
    struct t_env *e = calloc(1, sizeof(*e));
    assert_non_null(e);
    e->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(e->loop);
    snprintf(e->hosts, sizeof(e->hosts), "/tmp/catena-fetch-hosts-XXXXXX");
    int fd = mkstemp(e->hosts);
    assert_true(fd >= 0);
    const char *text = "127.0.0.1 fetch.test\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    /* A server that is never asked: every name here is a literal or in the hosts file. */
    static char server[] = "127.0.0.1:9";
    static char *servers[] = {server};
    struct cfg_resolver rc = {.servers = servers,
                              .n_servers = 1,
                              .hosts_file = e->hosts,
                              .family = CFG_FAMILY_IPV4,
                              .cache_entries = 16,
                              .min_ttl_s = 1,
                              .max_ttl_s = 60,
                              .negative_ttl_s = 1,
                              .timeout_ms = 100,
                              .tries = 1};
    char err[256] = "";
    e->res = res_new(e->loop, &rc, err, sizeof(err));
    if (e->res == NULL)
        fail_msg("res_new: %s", err);
    ev_timer_init(&e->guard, t_guard_cb, 2.0, 0.);
    e->guard.data = e;
    return e;
}

static void
t_env_free(struct t_env *e)
{
    res_free(e->res);
    unlink(e->hosts);
    ev_loop_destroy(e->loop);
    free(e);
}

/* Runs the loop until c has its callback; fails after 2 s. */
static void
t_wait(struct t_env *e, struct t_call *c)
{
    ev_now_update(e->loop);
    ev_timer_start(e->loop, &e->guard);
    for (int i = 0; i < 100000 && c->calls == 0 && !e->guard_fired; i++)
        ev_run(e->loop, EVRUN_ONCE);
    ev_timer_stop(e->loop, &e->guard);
    assert_false(e->guard_fired);
    assert_int_equal(c->calls, 1);
}

/* A few more loop turns: nothing else may call back. */
static void
t_spin(struct t_env *e, int turns)
{
    for (int i = 0; i < turns; i++)
        ev_run(e->loop, EVRUN_NOWAIT);
}

static struct fetch *
t_start(struct t_env *e, struct t_call *c, const char *url, const char *method, const char *ct,
        const char *body, size_t max, unsigned timeout_ms)
{
    memset(c, 0, sizeof(*c));
    c->e = e;
    in_start = true;
    struct fetch *f = fetch_start(e->loop, e->res, url, method, ct, (const uint8_t *)body,
                                  body ? strlen(body) : 0, max, timeout_ms, t_cb, c);
    in_start = false;
    assert_non_null(f);
    assert_int_equal(c->calls, 0);
    return f;
}

static void
t_get(struct t_env *e, struct t_srv *s, struct t_call *c, const char *path, size_t max)
{
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", s->port, path);
    (void)t_start(e, c, url, "GET", NULL, NULL, max, 2000);
    t_wait(e, c);
}

static bool
body_is(const struct t_call *c, const char *s)
{
    return c->len == strlen(s) && memcmp(c->body, s, c->len) == 0;
}

/* ---- URLs ---------------------------------------------------------------------- */

static void
test_url_parse(void **state)
{
    struct fetch_url u;
    const char *err = NULL;

    assert_int_equal(fetch_url_parse("http://ocsp.example.com", &u, &err), CAT_OK);
    assert_string_equal(u.host, "ocsp.example.com");
    assert_int_equal(u.port, 80);
    assert_string_equal(u.path, "/");
    assert_false(u.ipv6);

    assert_int_equal(fetch_url_parse("HTTP://10.1.2.3:8080/a/b.crl?x=1&y", &u, &err), CAT_OK);
    assert_string_equal(u.host, "10.1.2.3");
    assert_int_equal(u.port, 8080);
    assert_string_equal(u.path, "/a/b.crl?x=1&y");

    assert_int_equal(fetch_url_parse("http://[::1]:81/p", &u, &err), CAT_OK);
    assert_string_equal(u.host, "::1");
    assert_true(u.ipv6);
    assert_int_equal(u.port, 81);

    assert_int_equal(fetch_url_parse("http://h.test?q", &u, &err), CAT_OK);
    assert_string_equal(u.path, "/?q");

    const char *bad[] = {
        "",
        "https://h.test/",
        "ftp://h.test/",
        "ldap://ldap.example.com/cn=x",
        "http://",
        "http://user@h.test/",
        "http://h.test:0/",
        "http://h.test:99999/",
        "http://h.test/a b",
        "http://h.test/a\r\nX: y",
        "http://h.test/a\x7f",
        "http://h.test/#frag",
        "http://h..test/",
        "http://127.1/",
        "http:/h.test/",
        "h.test/x",
    };
    for (size_t i = 0; i < CAT_ARRAY_LEN(bad); i++) {
        err = NULL;
        if (fetch_url_parse(bad[i], &u, &err) != CAT_ERR)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_non_null(err);
    }
    assert_int_equal(fetch_url_parse("https://h.test/", &u, &err), CAT_ERR);
    assert_string_equal(err, "https URLs are not supported");

    char longurl[FETCH_MAX_URL + 16];
    memcpy(longurl, "http://h.test/", 14);
    memset(longurl + 14, 'a', sizeof(longurl) - 15);
    longurl[sizeof(longurl) - 1] = '\0';
    assert_int_equal(fetch_url_parse(longurl, &u, &err), CAT_ERR);
    assert_string_equal(err, "URL too long");
}

/* ---- the chunked decoder, without sockets ----------------------------------------- */

static struct fetch *
t_decoder(size_t max)
{
    struct fetch *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->loop = ev_loop_new(EVFLAG_AUTO);
    f->fd = -1;
    f->max_response = max;
    f->framing = HTTP_BODY_CHUNKED;
    f->st = FETCH_ST_BODY;
    f->res_out.status = 200;
    http_chunked_init(&f->ch);
    ev_timer_init(&f->deadline, fetch_deadline_cb, 1., 0.);
    ev_timer_init(&f->attempt, fetch_attempt_cb, 1., 0.);
    ev_timer_init(&f->kick, fetch_kick_cb, 0., 0.);
    ev_io_init(&f->io, fetch_io_cb, -1, EV_READ);
    return f;
}

static void
t_decoder_free(struct fetch *f)
{
    struct ev_loop *loop = f->loop;
    fetch_free(f);
    ev_loop_destroy(loop);
}

static void
test_chunked_decode(void **state)
{
    static const char wire[] = "5;ext=1\r\nhello\r\n1\r\n \r\n"
                               "10\r\n0123456789abcdef\r\n0\r\nTrailer: x\r\n\r\nGARBAGE";
    const size_t msg = sizeof(wire) - 1 - 7;
    /* Whole, then split at every position, then byte by byte. */
    for (size_t split = 0; split <= msg; split++) {
        struct fetch *f = t_decoder(1000);
        assert_int_equal(fetch_body_feed(f, (const uint8_t *)wire, split), CAT_OK);
        assert_int_equal(
            fetch_body_feed(f, (const uint8_t *)wire + split, sizeof(wire) - 1 - split), CAT_OK);
        assert_int_equal(f->st, FETCH_ST_DONE);
        if (f->res_out.err != NULL)
            fail_msg("split %zu: %s", split, f->res_out.err);
        assert_int_equal(f->body_len, 22);
        assert_memory_equal(f->body, "hello 0123456789abcdef", 22);
        t_decoder_free(f);
    }
    struct fetch *f = t_decoder(1000);
    for (size_t i = 0; i < sizeof(wire) - 1 && f->st != FETCH_ST_DONE; i++)
        assert_int_equal(fetch_body_feed(f, (const uint8_t *)wire + i, 1), CAT_OK);
    assert_int_equal(f->st, FETCH_ST_DONE);
    assert_int_equal(f->body_len, 22);
    t_decoder_free(f);

    /* Over the limit by one byte. */
    f = t_decoder(21);
    assert_int_equal(fetch_body_feed(f, (const uint8_t *)wire, sizeof(wire) - 1), CAT_ERR);
    assert_int_equal(f->st, FETCH_ST_DONE);
    assert_non_null(strstr(f->res_out.err, "response too large"));
    t_decoder_free(f);

    /* Bad framing: a non-hex size. */
    f = t_decoder(1000);
    assert_int_equal(fetch_body_feed(f, (const uint8_t *)"5\r\nhello\r\nzz\r\n", 14), CAT_ERR);
    assert_non_null(strstr(f->res_out.err, "bad chunked framing"));
    t_decoder_free(f);
}

/* ---- exchanges over loopback -------------------------------------------------------- */

static void
test_get_content_length(void **state)
{
    struct t_env *e = t_env_new();
    struct t_srv s;
    t_srv_start(&s, e->loop,
                "HTTP/1.1 200 OK\r\nContent-Type: application/pkix-crl\r\n"
                "Content-Length: 11\r\n\r\nhello world");
    s.piece = 7;
    struct t_call c;
    t_get(e, &s, &c, "/ca.crl?x=1", 1000);
    assert_false(c.has_err);
    assert_int_equal(c.status, 200);
    assert_true(body_is(&c, "hello world"));
    /* What went on the wire. */
    char want[128];
    snprintf(want, sizeof(want), "GET /ca.crl?x=1 HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n", s.port);
    assert_memory_equal(s.req, want, strlen(want));
    assert_non_null(strstr(s.req, "\r\nConnection: close\r\n"));
    assert_null(strstr(s.req, "Content-Length"));
    t_spin(e, 5);
    assert_int_equal(c.calls, 1);
    t_srv_stop(&s);
    t_env_free(e);
}

static void
test_post_ocsp(void **state)
{
    struct t_env *e = t_env_new();
    struct t_srv s;
    t_srv_start(&s, e->loop,
                "HTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response\r\n"
                "Content-Length: 3\r\n\r\nabc");
    struct t_call c;
    char url[128];
    snprintf(url, sizeof(url), "http://fetch.test:%u", s.port);
    (void)t_start(e, &c, url, "POST", "application/ocsp-request", "REQ-BYTES", 100, 2000);
    t_wait(e, &c);
    assert_false(c.has_err);
    assert_true(body_is(&c, "abc"));
    assert_non_null(strstr(s.req, "POST / HTTP/1.1\r\n"));
    char host[64];
    snprintf(host, sizeof(host), "\r\nHost: fetch.test:%u\r\n", s.port);
    assert_non_null(strstr(s.req, host));
    assert_non_null(strstr(s.req, "\r\nContent-Type: application/ocsp-request\r\n"));
    assert_non_null(strstr(s.req, "\r\nContent-Length: 9\r\n"));
    assert_int_equal(strcmp(s.req + s.req_len - 13, "\r\n\r\nREQ-BYTES"), 0);
    t_srv_stop(&s);
    t_env_free(e);
}

static void
test_chunked_and_close(void **state)
{
    struct t_env *e = t_env_new();
    struct t_srv s;
    struct t_call c;
    t_srv_start(&s, e->loop,
                "HTTP/1.1 100 Continue\r\n\r\n"
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                "3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\n\r\n");
    s.piece = 3;
    t_get(e, &s, &c, "/", 100);
    assert_false(c.has_err);
    assert_true(body_is(&c, "abcdefg"));
    t_srv_stop(&s);

    /* HTTP/1.0 without a length: the body ends when the server closes. */
    t_srv_start(&s, e->loop, "HTTP/1.0 200 OK\r\nServer: x\r\n\r\nuntil close");
    s.piece = 4;
    t_get(e, &s, &c, "/", 100);
    assert_false(c.has_err);
    assert_true(body_is(&c, "until close"));
    t_srv_stop(&s);

    /* An empty 204. */
    t_srv_start(&s, e->loop, "HTTP/1.1 204 No Content\r\n\r\n");
    t_get(e, &s, &c, "/", 100);
    assert_false(c.has_err);
    assert_int_equal(c.status, 204);
    assert_int_equal(c.len, 0);
    t_srv_stop(&s);
    t_env_free(e);
}

static void
test_too_large(void **state)
{
    struct t_env *e = t_env_new();
    struct t_srv s;
    struct t_call c;
    t_srv_start(&s, e->loop, "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world");
    t_get(e, &s, &c, "/", 10);
    assert_true(c.has_err);
    assert_non_null(strstr(c.err, "response too large"));
    assert_int_equal(c.len, 0);
    t_srv_stop(&s);

    /* Exactly at the limit is fine. */
    t_srv_start(&s, e->loop, "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world");
    t_get(e, &s, &c, "/", 11);
    assert_false(c.has_err);
    t_srv_stop(&s);

    /* Close-delimited and chunked bodies are counted as they come. */
    t_srv_start(&s, e->loop, "HTTP/1.0 200 OK\r\n\r\n0123456789ABCDEF");
    t_get(e, &s, &c, "/", 15);
    assert_true(c.has_err);
    assert_non_null(strstr(c.err, "response too large"));
    t_srv_stop(&s);
    t_srv_start(&s, e->loop,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n01234567\r\n"
                "8\r\n89abcdef\r\n0\r\n\r\n");
    t_get(e, &s, &c, "/", 15);
    assert_non_null(strstr(c.err, "response too large"));
    t_srv_stop(&s);

    /* A big body, grown in steps. */
    static char big[60000 + 64];
    int hl = snprintf(big, sizeof(big), "HTTP/1.1 200 OK\r\nContent-Length: 60000\r\n\r\n");
    memset(big + hl, 'z', 60000);
    big[hl + 60000] = '\0';
    t_srv_start(&s, e->loop, big);
    s.piece = 5000;
    t_get(e, &s, &c, "/", 65536);
    assert_false(c.has_err);
    assert_int_equal(c.len, 60000);
    assert_int_equal(c.body[59999], 'z');
    t_srv_stop(&s);
    t_env_free(e);
}

static void
test_status_errors(void **state)
{
    struct t_env *e = t_env_new();
    struct t_srv s;
    struct t_call c;
    t_srv_start(&s, e->loop, "HTTP/1.1 404 Nope\r\nContent-Length: 4\r\n\r\ngone");
    t_get(e, &s, &c, "/", 100);
    assert_int_equal(c.status, 404);
    assert_string_equal(c.err, "HTTP 404 Not Found");
    assert_true(body_is(&c, "gone"));
    t_srv_stop(&s);

    t_srv_start(&s, e->loop,
                "HTTP/1.1 302 Found\r\nLocation: http://elsewhere.test/x\r\n"
                "Content-Length: 0\r\n\r\n");
    t_get(e, &s, &c, "/", 100);
    assert_int_equal(c.status, 302);
    assert_string_equal(c.err, "HTTP 302 redirect to http://elsewhere.test/x not followed");
    assert_int_equal(s.accepted, 1);
    t_srv_stop(&s);

    t_srv_start(&s, e->loop, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx");
    t_get(e, &s, &c, "/", 100);
    assert_non_null(strstr(c.err, "bad response from 127.0.0.1:"));
    t_srv_stop(&s);

    t_srv_start(&s, e->loop, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf");
    t_get(e, &s, &c, "/", 100);
    assert_non_null(strstr(c.err, "closed the connection after 4 of 10 body bytes"));
    assert_true(c.body_null);
    t_srv_stop(&s);

    t_srv_start(&s, e->loop, NULL);
    s.mode = T_CLOSE;
    t_get(e, &s, &c, "/", 100);
    assert_non_null(strstr(c.err, "closed the connection without a response"));
    t_srv_stop(&s);

    /* A head over 16 KiB. */
    static char fat[FETCH_MAX_HEAD + 200];
    int n = snprintf(fat, sizeof(fat), "HTTP/1.1 200 OK\r\nX-Pad: ");
    memset(fat + n, 'p', FETCH_MAX_HEAD);
    memcpy(fat + n + FETCH_MAX_HEAD, "\r\n\r\n", 5);
    t_srv_start(&s, e->loop, fat);
    t_get(e, &s, &c, "/", 100);
    assert_non_null(strstr(c.err, "bad response"));
    t_srv_stop(&s);
    t_env_free(e);
}

static void
test_connect_refused_and_timeout(void **state)
{
    struct t_env *e = t_env_new();
    struct t_call c;
    /* A port that was bound a moment ago and is closed now. */
    struct t_srv s;
    t_srv_start(&s, e->loop, NULL);
    unsigned port = s.port;
    t_srv_stop(&s);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/", port);
    (void)t_start(e, &c, url, "GET", NULL, NULL, 100, 2000);
    t_wait(e, &c);
    char want[128];
    snprintf(want, sizeof(want), "connect to 127.0.0.1:%u: Connection refused", port);
    assert_string_equal(c.err, want);
    assert_int_equal(c.status, 0);

    /* Accepted, never answered: the deadline. */
    t_srv_start(&s, e->loop, NULL);
    s.mode = T_SILENT;
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/", s.port);
    ev_now_update(e->loop);
    ev_tstamp t0 = ev_time();
    (void)t_start(e, &c, url, "GET", NULL, NULL, 100, 60);
    t_wait(e, &c);
    ev_tstamp took = ev_time() - t0;
    snprintf(want, sizeof(want), "timeout after 60 ms (waiting for the response of 127.0.0.1:%u)",
             s.port);
    assert_string_equal(c.err, want);
    assert_true(took >= 0.055 && took < 0.5);
    t_srv_stop(&s);

    /* Names the resolver cannot find. */
    (void)t_start(e, &c, "http://nonexistent.invalid/", "GET", NULL, NULL, 100, 2000);
    t_wait(e, &c);
    assert_non_null(strstr(c.err, "resolve nonexistent.invalid: "));
    t_env_free(e);
}

static void
test_errors_come_from_the_loop(void **state)
{
    struct t_env *e = t_env_new();
    struct t_call c;
    (void)t_start(e, &c, "ldap://x.test/", "GET", NULL, NULL, 100, 2000);
    t_wait(e, &c);
    assert_string_equal(c.err, "bad URL \"ldap://x.test/\": not an http:// URL");
    (void)t_start(e, &c, "http://x.test/", "PUT", NULL, NULL, 100, 2000);
    t_wait(e, &c);
    assert_string_equal(c.err, "method PUT not supported");
    (void)t_start(e, &c, "http://x.test/", "POST", "a\r\nb", "x", 100, 2000);
    t_wait(e, &c);
    assert_string_equal(c.err, "bad Content-Type");
    t_env_free(e);
}

static void
test_cancel(void **state)
{
    struct t_env *e = t_env_new();
    struct t_srv s;
    t_srv_start(&s, e->loop, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/", s.port);

    /* Cancelled at once: also one whose error was already found. */
    struct t_call c1, c2, c3;
    struct fetch *f1 = t_start(e, &c1, url, "GET", NULL, NULL, 100, 2000);
    struct fetch *f2 = t_start(e, &c2, "bogus", "GET", NULL, NULL, 100, 2000);
    fetch_cancel(f1);
    fetch_cancel(f2);
    fetch_cancel(NULL);
    /* One callback cancels another fetch still in flight. */
    struct t_call c4;
    struct fetch *f4 = t_start(e, &c4, url, "GET", NULL, NULL, 100, 2000);
    (void)t_start(e, &c3, "bogus", "GET", NULL, NULL, 100, 2000);
    c3.cancel_other = f4;
    t_wait(e, &c3);
    t_spin(e, 50);
    assert_int_equal(c1.calls, 0);
    assert_int_equal(c2.calls, 0);
    assert_int_equal(c4.calls, 0);
    t_srv_stop(&s);
    t_env_free(e);
}

static void
test_ipv6_literal(void **state)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 4) != 0) {
        if (fd >= 0)
            close(fd);
        skip();
    }
    socklen_t al = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    struct t_env *e = t_env_new();
    /* The test resolver is IPv4-only: a v6 literal is NODATA there, so use one that allows both. */
    res_free(e->res);
    static char server[] = "127.0.0.1:9";
    static char *servers[] = {server};
    struct cfg_resolver rc = {.servers = servers,
                              .n_servers = 1,
                              .family = CFG_FAMILY_ANY,
                              .cache_entries = 4,
                              .min_ttl_s = 1,
                              .max_ttl_s = 60,
                              .negative_ttl_s = 1,
                              .timeout_ms = 100,
                              .tries = 1};
    char err[256];
    e->res = res_new(e->loop, &rc, err, sizeof(err));
    assert_non_null(e->res);
    char url[128];
    snprintf(url, sizeof(url), "http://[::1]:%u/v6", ntohs(a.sin6_port));
    struct t_call c;
    (void)t_start(e, &c, url, "GET", NULL, NULL, 100, 80);
    t_wait(e, &c);
    /* Accepted by the kernel, never answered: what matters is the address text. */
    char want[128];
    snprintf(want, sizeof(want), "of [::1]:%u)", ntohs(a.sin6_port));
    if (strstr(c.err, want) == NULL)
        fail_msg("%s", c.err);
    close(fd);
    t_env_free(e);
}

int
main(void)
{
    log_set_level(LOG_FAC_MAIN, LOG_WARNING);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_parse),
        cmocka_unit_test(test_chunked_decode),
        cmocka_unit_test(test_get_content_length),
        cmocka_unit_test(test_post_ocsp),
        cmocka_unit_test(test_chunked_and_close),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_status_errors),
        cmocka_unit_test(test_connect_refused_and_timeout),
        cmocka_unit_test(test_errors_come_from_the_loop),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_ipv6_literal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
