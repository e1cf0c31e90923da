/*
 * A probe is a small state machine of its own: connect, TLS handshake,
 * collect the peer chain, close. It shares the origin-side TLS context (the
 * same versions, suites and SNI a real interception would use), so what it
 * sees is what catena would see. Nothing is sent after the handshake. A
 * staple fetch goes the same way on the staple context and stops earlier:
 * its scanner (in tio) ends the session after the server's first flight, and
 * nothing is sent after the ClientHello.
 */
#include "core/probe.h"

#include "core/dlist.h"
#include "core/log.h"
#include "core/staple.h"
#include "core/tls.h"

#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

enum probe_state { PROBE_CONNECTING = 0, PROBE_UP_TLS, PROBE_UPSTREAM, PROBE_HANDSHAKE };

struct probe {
    struct ev_loop *loop;  /* borrowed */
    enum probe_state state;
    int fd;                /* owned */
    ev_io io;
    ev_timer timer;
    WOLFSSL *ssl;          /* owned */
    struct tls_io tio;
    probe_cb *cb;
    void *arg;                 /* owned if arg_free is set */
    probe_arg_free_fn *arg_free;
    bool staple_mode;          /* a staple fetch: scan reads the flight */
    struct staple scan;        /* its scanner (tio.staple points here) */
    char sni[256];
    char err[160];
    char *connect_req;     /* owned: the CONNECT to send through an upstream, or NULL */
    size_t req_sent;
    char answer[1024];     /* the upstream's answer head, until its empty line */
    size_t answer_len;
    /* Through a TLS upstream: its session, under ssl once the CONNECT is answered. */
    WOLFSSL *up_ssl;       /* owned */
    struct tls_io up_tio;
    probe_cert_check_fn *up_check;
    void *up_check_arg;
};

static void
probe_free(struct probe *p)
{
    ev_io_stop(p->loop, &p->io);
    ev_timer_stop(p->loop, &p->timer);
    if (p->ssl != NULL)
        wolfSSL_free(p->ssl);
    if (p->up_ssl != NULL) /* after the session inside it */
        wolfSSL_free(p->up_ssl);
    if (p->fd >= 0)
        close(p->fd);
    free(p->connect_req);
    staple_fini(&p->scan);
    if (p->arg_free != NULL)
        p->arg_free(p->arg);
    free(p);
}

/* What a handshake that ended (err NULL: completed) leaves for the caller. */
static void
probe_collect(struct probe *p, const char *err, struct probe_result *r)
{
    WOLFSSL_X509_CHAIN *chain = NULL;
    if (err == NULL && (chain = wolfSSL_get_peer_chain(p->ssl)) != NULL) {
        int n = wolfSSL_get_chain_count(chain);
        for (int i = 0; i < n && r->n < PROBE_MAX_CERTS; i++) {
            r->ders[r->n] = wolfSSL_get_chain_cert(chain, i);
            r->lens[r->n] = (size_t)wolfSSL_get_chain_length(chain, i);
            if (r->ders[r->n] != NULL && r->lens[r->n] > 0)
                r->n++;
        }
        if (r->n == 0)
            r->err = "the server sent no certificate";
    }
    if (p->ssl != NULL && err == NULL) {
        r->version = wolfSSL_get_version(p->ssl);
        r->cipher = wolfSSL_get_cipher(p->ssl);
    }
    r->client_cert_requested = p->tio.client_cert_requested;
}

/* Reports and frees. The callback runs once; the probe is gone after it. */
static void
probe_finish(struct probe *p, const char *err, int tls_error)
{
    struct probe_result r = {.err = err, .tls_error = tls_error};
    if (p->staple_mode)
        r.staple = staple_response(&p->scan, &r.staple_len);
    else
        probe_collect(p, err, &r);
    if (p->ssl != NULL && tls_error != 0) {
        WOLFSSL_ALERT_HISTORY h;
        memset(&h, 0, sizeof(h));
        if (wolfSSL_get_alert_history(p->ssl, &h) == WOLFSSL_SUCCESS)
            r.alert_rx = h.last_rx.code;
    }
    ev_io_stop(p->loop, &p->io);
    ev_timer_stop(p->loop, &p->timer);
    p->cb(p->arg, &r);
    /* close_notify, best effort; a staple fetch has no session to close. */
    if (p->ssl != NULL && err == NULL && !p->staple_mode)
        wolfSSL_shutdown(p->ssl);
    probe_free(p);
}

static void
probe_want(struct probe *p, int events)
{
    ev_io_stop(p->loop, &p->io);
    ev_io_set(&p->io, p->fd, events);
    ev_io_start(p->loop, &p->io);
}

/* One send or recv towards the upstream, through its TLS session if any:
 * > 0, 0 (closed), or -1 with errno (EAGAIN: *events says what to wait for). */
static ssize_t
probe_up_io(struct probe *p, char *buf, size_t len, bool out, int *events)
{
    *events = out ? EV_WRITE : EV_READ;
    if (p->up_ssl == NULL)
        return out ? send(p->fd, buf, len, MSG_NOSIGNAL) : recv(p->fd, buf, len, 0);
    int n = out ? wolfSSL_write(p->up_ssl, buf, (int)len) : wolfSSL_read(p->up_ssl, buf, (int)len);
    if (n > 0)
        return n;
    int e = wolfSSL_get_error(p->up_ssl, n);
    if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE) {
        *events = e == WOLFSSL_ERROR_WANT_READ ? EV_READ : EV_WRITE;
        errno = EAGAIN;
        return -1;
    }
    if (e == WOLFSSL_ERROR_ZERO_RETURN)
        return 0;
    errno = ECONNRESET;
    return -1;
}

/* TLS to the upstream, judged by the caller's check. CAT_OK: up and trusted. */
static int
probe_up_tls(struct probe *p)
{
    int ret = wolfSSL_connect(p->up_ssl);
    if (ret != WOLFSSL_SUCCESS) {
        int e = wolfSSL_get_error(p->up_ssl, ret);
        if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE) {
            probe_want(p, e == WOLFSSL_ERROR_WANT_READ ? EV_READ : EV_WRITE);
            return CAT_AGAIN;
        }
        char d[120];
        tls_describe_error(p->up_ssl, ret, d, sizeof(d));
        snprintf(p->err, sizeof(p->err), "upstream TLS: %s", d);
        probe_finish(p, p->err, 0);
        return CAT_ERR;
    }
    char why[120];
    if (p->up_check(p->up_check_arg, p->up_ssl, why, sizeof(why)) != CAT_OK) {
        snprintf(p->err, sizeof(p->err), "upstream: %s", why);
        probe_finish(p, p->err, 0);
        return CAT_ERR;
    }
    return CAT_OK;
}

/* Through an upstream: send the CONNECT, read the answer head byte by byte
 * (what follows it is the origin's TLS). CAT_OK: the tunnel is up. */
static int
probe_upstream(struct probe *p)
{
    size_t len = strlen(p->connect_req);
    int events;
    while (p->req_sent < len) {
        ssize_t n = probe_up_io(p, p->connect_req + p->req_sent, len - p->req_sent, true, &events);
        if (n > 0) {
            p->req_sent += (size_t)n;
            continue;
        }
        if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
            probe_want(p, events);
            return CAT_AGAIN;
        }
        snprintf(p->err, sizeof(p->err), "upstream: %s", strerror(errno));
        probe_finish(p, p->err, 0);
        return CAT_ERR;
    }
    while (p->answer_len + 1 < sizeof(p->answer)) {
        ssize_t n = probe_up_io(p, p->answer + p->answer_len, 1, false, &events);
        if (n == 1) {
            p->answer[++p->answer_len] = '\0';
            if (p->answer_len >= 4 && memcmp(p->answer + p->answer_len - 4, "\r\n\r\n", 4) == 0) {
                if (strncmp(p->answer, "HTTP/1.", 7) == 0 && p->answer[9] == '2')
                    return CAT_OK;
                snprintf(p->err, sizeof(p->err), "upstream refused: %.60s", p->answer);
                probe_finish(p, p->err, 0);
                return CAT_ERR;
            }
            continue;
        }
        if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
            probe_want(p, events);
            return CAT_AGAIN;
        }
        snprintf(p->err, sizeof(p->err), "upstream closed before answering");
        probe_finish(p, p->err, 0);
        return CAT_ERR;
    }
    snprintf(p->err, sizeof(p->err), "upstream answer too long");
    probe_finish(p, p->err, 0);
    return CAT_ERR;
}

static void
probe_step(struct probe *p)
{
    if (p->state == PROBE_CONNECTING) {
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == -1)
            soerr = errno;
        if (soerr != 0) {
            snprintf(p->err, sizeof(p->err), "connect: %s", strerror(soerr));
            probe_finish(p, p->err, 0);
            return;
        }
        p->state = p->up_ssl != NULL         ? PROBE_UP_TLS
                   : p->connect_req != NULL ? PROBE_UPSTREAM
                                            : PROBE_HANDSHAKE;
    }
    if (p->state == PROBE_UP_TLS) {
        if (probe_up_tls(p) != CAT_OK)
            return; /* waiting, or finished with an error */
        p->state = PROBE_UPSTREAM;
    }
    if (p->state == PROBE_UPSTREAM) {
        int rc = probe_upstream(p);
        if (rc != CAT_OK)
            return; /* waiting, or finished with an error */
        p->state = PROBE_HANDSHAKE;
    }
    int ret = wolfSSL_connect(p->ssl);
    /* A staple fetch ends where its scanner says, the session cut short. */
    enum staple_state st = p->staple_mode ? p->scan.state : STAPLE_SCANNING;
    if (ret == WOLFSSL_SUCCESS || st == STAPLE_FOUND || st == STAPLE_ABSENT) {
        probe_finish(p, NULL, 0);
        return;
    }
    int e = wolfSSL_get_error(p->ssl, ret);
    if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE) {
        probe_want(p, e == WOLFSSL_ERROR_WANT_READ ? EV_READ : EV_WRITE);
        return;
    }
    tls_describe_error(p->ssl, ret, p->err, sizeof(p->err));
    probe_finish(p, p->err, e);
}

static void
probe_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    probe_step(w->data);
}

static void
probe_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct probe *p = t->data;
    snprintf(p->err, sizeof(p->err), "no %s within the probe timeout",
             p->state == PROBE_CONNECTING ? "connection"
             : p->state == PROBE_HANDSHAKE ? "TLS handshake"
                                          : "answer from the upstream");
    probe_finish(p, p->err, 0);
}

/* Callbacks come from the loop: a probe that cannot even start reports on
 * the next iteration, like every other outcome. */
static void
probe_fail_soon_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct probe *p = t->data;
    probe_finish(p, p->err, 0);
}

/* The session to the origin on ctx, with SNI and ALPN as an interception's. */
static WOLFSSL *
probe_session_new(struct probe *p, WOLFSSL_CTX *ctx)
{
    WOLFSSL *ssl = tls_session_new(ctx, &p->tio);
    if (ssl == NULL)
        return NULL;
    if (p->sni[0] != '\0')
        wolfSSL_UseSNI(ssl, WOLFSSL_SNI_HOST_NAME, p->sni, (unsigned short)strlen(p->sni));
    char alpn[] = "http/1.1";
    wolfSSL_UseALPN(ssl, alpn, sizeof(alpn) - 1, WOLFSSL_ALPN_CONTINUE_ON_MISMATCH);
    return ssl;
}

struct probe *
probe_start(struct ev_loop *loop, WOLFSSL_CTX *ctx, const struct sockaddr *addr,
            socklen_t addrlen, const char *sni, unsigned timeout_ms, probe_cb *cb, void *arg)
{
    struct probe *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->loop = loop;
    p->cb = cb;
    p->arg = arg;
    p->fd = -1;
    ev_io_init(&p->io, probe_io_cb, -1, 0);
    p->io.data = p;
    ev_timer_init(&p->timer, probe_timer_cb, timeout_ms / 1000.0, 0.);
    p->timer.data = p;
    if (sni != NULL)
        snprintf(p->sni, sizeof(p->sni), "%s", sni);

    p->fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->fd == -1) {
        free(p);
        return NULL;
    }
    staple_init(&p->scan);
    p->tio = (struct tls_io){.fd = p->fd};
    p->ssl = probe_session_new(p, ctx);
    if (p->ssl == NULL) {
        close(p->fd);
        free(p);
        return NULL;
    }
    if (connect(p->fd, addr, addrlen) == -1 && errno != EINPROGRESS) {
        snprintf(p->err, sizeof(p->err), "connect: %s", strerror(errno));
        ev_timer_init(&p->timer, probe_fail_soon_cb, 0., 0.);
        p->timer.data = p;
        ev_timer_start(loop, &p->timer);
        return p;
    }
    ev_io_set(&p->io, p->fd, EV_WRITE);
    ev_io_start(loop, &p->io);
    ev_timer_start(loop, &p->timer);
    return p;
}

struct probe *
probe_start_via(struct ev_loop *loop, WOLFSSL_CTX *ctx, const struct sockaddr *addr,
                socklen_t addrlen, const char *connect_req, const char *sni, unsigned timeout_ms,
                probe_cb *cb, void *arg)
{
    char *req = strdup(connect_req);
    if (req == NULL)
        return NULL;
    struct probe *p = probe_start(loop, ctx, addr, addrlen, sni, timeout_ms, cb, arg);
    if (p == NULL) {
        free(req);
        return NULL;
    }
    p->connect_req = req;
    return p;
}

struct probe *
probe_start_via_tls(struct ev_loop *loop, WOLFSSL_CTX *ctx, const struct sockaddr *addr,
                    socklen_t addrlen, const char *connect_req, const char *tls_name,
                    probe_cert_check_fn *check, void *check_arg, const char *sni,
                    unsigned timeout_ms, probe_cb *cb, void *arg)
{
    struct probe *p =
        probe_start_via(loop, ctx, addr, addrlen, connect_req, sni, timeout_ms, cb, arg);
    if (p == NULL)
        return NULL;
    p->up_tio = (struct tls_io){.fd = p->fd};
    p->up_ssl = tls_session_new(ctx, &p->up_tio);
    if (p->up_ssl == NULL) {
        /* Not started yet as far as the caller knows: no callback. */
        probe_free(p);
        return NULL;
    }
    if (tls_name != NULL)
        wolfSSL_UseSNI(p->up_ssl, WOLFSSL_SNI_HOST_NAME, tls_name, (unsigned short)strlen(tls_name));
    p->up_check = check;
    p->up_check_arg = check_arg;
    /* The origin's session goes inside the upstream's. */
    p->tio.under = p->up_ssl;
    p->tio.under_io = &p->up_tio;
    return p;
}

int
probe_fetch_staple(struct probe *p, WOLFSSL_CTX *ctx)
{
    /* Not on the loop yet: the first session has done nothing. */
    WOLFSSL *ssl = probe_session_new(p, ctx);
    if (ssl == NULL)
        return CAT_ERR;
    wolfSSL_free(p->ssl);
    p->ssl = ssl;
    p->staple_mode = true;
    p->tio.staple = &p->scan;
    return CAT_OK;
}

void
probe_own_arg(struct probe *p, probe_arg_free_fn *free_fn)
{
    p->arg_free = free_fn;
}

void
probe_cancel(struct probe *p)
{
    if (p != NULL)
        probe_free(p);
}

/* ---- the verdict cache ------------------------------------------------------ */

struct probe_entry {
    char *key;                  /* owned */
    struct probe_verdict v;
    double expires;             /* CLOCK_MONOTONIC seconds */
    struct probe_entry *hnext;  /* hash chain */
    struct dlist_link lru;      /* in probe_lru */
};

#define PROBE_BUCKETS 4096

static pthread_mutex_t probe_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct probe_entry *probe_table[PROBE_BUCKETS];
static struct dlist probe_lru; /* struct probe_entry: head is the most recent */
static unsigned probe_entries;

static double
probe_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned
probe_hash(const char *s)
{
    unsigned h = 2166136261u; /* FNV-1a: keys are names we checked, not attacker-sized */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h % PROBE_BUCKETS;
}

/* Removes e from the hash and the LRU and frees it. Locked. */
static void
probe_entry_drop(struct probe_entry *e)
{
    struct probe_entry **pp = &probe_table[probe_hash(e->key)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    dlist_unlink(&probe_lru, &e->lru);
    free(e->key);
    free(e);
    probe_entries--;
}

static struct probe_entry *
probe_find(const char *key)
{
    for (struct probe_entry *e = probe_table[probe_hash(key)]; e != NULL; e = e->hnext)
        if (strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

bool
probe_cache_get(const char *key, struct probe_verdict *v)
{
    bool hit = false;
    pthread_mutex_lock(&probe_mtx);
    struct probe_entry *e = probe_find(key);
    if (e != NULL && e->expires <= probe_now()) {
        probe_entry_drop(e);
        e = NULL;
    }
    if (e != NULL) {
        *v = e->v;
        dlist_move_head(&probe_lru, &e->lru);
        hit = true;
    }
    pthread_mutex_unlock(&probe_mtx);
    return hit;
}

void
probe_cache_put(const char *key, const struct probe_verdict *v, unsigned ttl_ms,
                unsigned max_entries)
{
    if (max_entries == 0)
        return;
    pthread_mutex_lock(&probe_mtx);
    struct probe_entry *e = probe_find(key);
    if (e == NULL) {
        e = calloc(1, sizeof(*e));
        if (e == NULL || (e->key = strdup(key)) == NULL) {
            free(e);
            pthread_mutex_unlock(&probe_mtx);
            return;
        }
        unsigned h = probe_hash(key);
        e->hnext = probe_table[h];
        probe_table[h] = e;
        probe_entries++;
        dlist_push_head(&probe_lru, &e->lru);
    } else {
        dlist_move_head(&probe_lru, &e->lru);
    }
    e->v = *v;
    e->expires = probe_now() + ttl_ms / 1000.0;
    struct probe_entry *tail;
    while (probe_entries > max_entries &&
           (tail = DLIST_LAST(&probe_lru, struct probe_entry, lru)) != NULL)
        probe_entry_drop(tail);
    pthread_mutex_unlock(&probe_mtx);
}
