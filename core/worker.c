/*
 * Worker threads and their listening sockets. The main thread binds every
 * socket (one per listener per worker, SO_REUSEPORT), so a port that cannot
 * be bound refuses the config at startup or reload before any worker sees it.
 * Workers take ownership of their sockets, accept, and run connections.
 *
 * Reload: workers_reload() builds a worker_update per worker (new snapshot,
 * sockets reused where address and type are unchanged) and wakes the worker,
 * which swaps it in on its own thread: connections keep the snapshot they
 * started with. Drain: workers close their listeners, close idle connections
 * and give the others timeouts.drain to finish.
 */
#include "core/worker.h"

#include "core/conn.h"
#include "core/log.h"
#include "core/page.h"
#include "core/tls.h"
#include "chain/chain.h"
#include "core/pull.h"
#include "core/revoke.h"
#include "resolver/res.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

atomic_uint worker_conn_count;

static struct worker *workers;   /* owned array */
static unsigned n_workers;

/* ---- sockets (main thread) ---------------------------------------------- */

static int
worker_bind(const struct cfg_listener *l, char *err, size_t errlen)
{
    int fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1)
        goto fail;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1)
        goto fail;
    if (l->addr.ss_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1)
        goto fail;
    /* Under TPROXY the kernel hands the listener connections for addresses
     * that are not local (IP_TRANSPARENT, which needs CAP_NET_ADMIN). */
    if (l->tproxy &&
        (l->addr.ss_family == AF_INET6
             ? setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof(one))
             : setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one))) == -1) {
        snprintf(err, errlen, "listener %s: tproxy needs CAP_NET_ADMIN (IP_TRANSPARENT: %s)",
                 l->text, strerror(errno));
        close(fd);
        return -1;
    }
    if (bind(fd, (const struct sockaddr *)&l->addr, l->addrlen) == -1)
        goto fail;
    if (listen(fd, 1024) == -1)
        goto fail;
    return fd;
fail:
    snprintf(err, errlen, "listener %s: %s", l->text, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

/* Finds the worker's current socket for a listener spec, to reuse it. */
static int
worker_find_lsn(const struct worker *w, const struct cfg_listener *l)
{
    for (size_t i = 0; i < w->n_lsns; i++)
        if (w->lsns[i].type == l->type && strcmp(w->lsns[i].text, l->text) == 0)
            return w->lsns[i].fd;
    return -1;
}

static void
worker_update_free(struct worker_update *u)
{
    if (u == NULL)
        return;
    if (u->cfg != NULL)
        cfg_unref(u->cfg);
    tls_conf_unref(u->tls);
    free(u->lsns);
    free(u);
}

/*
 * Builds one update per worker. New sockets are bound here; on failure the
 * ones bound so far are closed and nothing changes. `reuse` is false at
 * startup. Reading w->lsns from the main thread is safe: only the main
 * thread hands out updates, and a worker's array changes only when it takes
 * one, which happens before the next update is built (workers_reload waits).
 */
static struct worker_update **
worker_make_updates(struct cfg *cfg, struct tls_conf *tls, bool reuse, char *err, size_t errlen)
{
    struct worker_update **ups = calloc(n_workers, sizeof(*ups));
    if (ups == NULL)
        goto oom;
    for (unsigned i = 0; i < n_workers; i++) {
        struct worker_update *u = calloc(1, sizeof(*u));
        if (u == NULL)
            goto oom;
        ups[i] = u;
        u->lsns = calloc(cfg->n_listeners, sizeof(*u->lsns));
        if (u->lsns == NULL)
            goto oom;
        for (size_t j = 0; j < cfg->n_listeners; j++) {
            const struct cfg_listener *l = &cfg->listeners[j];
            struct lsn *ln = &u->lsns[j];
            ln->type = l->type;
            snprintf(ln->text, sizeof(ln->text), "%s", l->text);
            ln->fd = reuse ? worker_find_lsn(&workers[i], l) : -1;
            if (ln->fd == -1) {
                ln->fd = worker_bind(l, err, errlen);
                if (ln->fd == -1)
                    goto fail;
                ln->fresh = true;
            }
            u->n_lsns++;
        }
        u->cfg = cfg_ref(cfg);
        u->tls = tls_conf_ref(tls);
    }
    return ups;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    for (unsigned i = 0; ups != NULL && i < n_workers; i++) {
        if (ups[i] == NULL)
            continue;
        for (size_t j = 0; j < ups[i]->n_lsns; j++)
            if (ups[i]->lsns[j].fresh)
                close(ups[i]->lsns[j].fd);
        worker_update_free(ups[i]);
    }
    free(ups);
    return NULL;
}

/* ---- accepting (worker thread) ------------------------------------------ */

static void
worker_accept_resume_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct lsn *ln = t->data;
    ev_io_start(loop, &ln->io);
}

/* Refuses a connection over the limit with a 503 page, best effort, without blocking. */
static void
worker_refuse(int fd, enum cfg_listener_type type)
{
    /* A transparent client expects the origin's bytes and a SOCKS client a
     * SOCKS reply; an HTTP page would only confuse them: just close. */
    if (type == CFG_LSN_TRANSPARENT || type == CFG_LSN_SOCKS5 || type == CFG_LSN_HTTPS) {
        close(fd);
        return;
    }
    uint8_t mem[PAGE_MAX];
    struct buf b = {.base = mem, .cap = sizeof(mem)};
    struct page_vars v = {.reason = "The proxy is at its connection limit; try again shortly"};
    if (page_render(&b, 503, "too_many_connections", &v, NULL) == CAT_OK) {
        ssize_t n = send(fd, buf_data(&b), b.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)n;
    }
    shutdown(fd, SHUT_WR);
    close(fd);
}

static void
worker_accept_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct lsn *ln = io->data;
    struct worker *w = ln->w;
    /* Bounded per wake-up so one busy listener cannot starve the others. */
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof(peer);
        int fd = accept4(ln->fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: stop accepting for a moment instead of
                 * spinning on a listener that stays readable. */
                log_err(LOG_FAC_MAIN, NULL, "accept on %s: %s; pausing 100ms", ln->text,
                        strerror(errno));
                ev_io_stop(loop, &ln->io);
                ev_timer_set(&ln->pause, 0.1, 0.);
                ev_timer_start(loop, &ln->pause);
            }
            return;
        }
        unsigned limit = w->cfg->limits.max_connections;
        if (atomic_load_explicit(&worker_conn_count, memory_order_relaxed) >= limit) {
            log_warn(LOG_FAC_MAIN, NULL, "connection refused: over max_connections (%u)", limit);
            worker_refuse(fd, ln->type);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        conn_accept(w, fd, ln, (struct sockaddr *)&peer, plen, w->cfg, w->tls);
    }
}

static void
worker_lsn_start(struct worker *w, struct lsn *ln)
{
    ln->w = w;
    ev_io_init(&ln->io, worker_accept_cb, ln->fd, EV_READ);
    ln->io.data = ln;
    ev_timer_init(&ln->pause, worker_accept_resume_cb, 0.1, 0.);
    ln->pause.data = ln;
    ev_io_start(w->loop, &ln->io);
}

static void
worker_lsn_stop(struct worker *w, struct lsn *ln, bool close_fd)
{
    ev_io_stop(w->loop, &ln->io);
    ev_timer_stop(w->loop, &ln->pause);
    if (close_fd)
        close(ln->fd);
}

/* ---- connections -------------------------------------------------------- */

void
worker_conn_add(struct worker *w, struct conn *c)
{
    dlist_push_head(&w->conns, &c->link);
    w->n_conns++;
    atomic_fetch_add_explicit(&worker_conn_count, 1, memory_order_relaxed);
}

void
worker_conn_remove(struct worker *w, struct conn *c)
{
    dlist_unlink(&w->conns, &c->link);
    w->n_conns--;
    atomic_fetch_sub_explicit(&worker_conn_count, 1, memory_order_relaxed);
}

void
worker_defer_free(struct worker *w, struct conn *c)
{
    c->next_free = w->free_list;
    w->free_list = c;
}

/* Runs before the loop blocks: every callback of this iteration has returned. */
static void
worker_reap_cb(struct ev_loop *loop, ev_prepare *p, int revents)
{
    struct worker *w = p->data;
    while (w->free_list != NULL) {
        struct conn *c = w->free_list;
        w->free_list = c->next_free;
        conn_free(c);
    }
    if (w->draining && w->n_conns == 0)
        ev_break(loop, EVBREAK_ALL);
}

/* ---- updates, drain ------------------------------------------------------ */

static void
worker_apply_update(struct worker *w, struct worker_update *u)
{
    /* Close sockets the new config no longer has; keep reused ones open. */
    for (size_t i = 0; i < w->n_lsns; i++) {
        bool kept = false;
        for (size_t j = 0; j < u->n_lsns; j++)
            kept |= u->lsns[j].fd == w->lsns[i].fd;
        worker_lsn_stop(w, &w->lsns[i], !kept);
    }
    free(w->lsns);
    w->lsns = u->lsns;
    w->n_lsns = u->n_lsns;
    u->lsns = NULL;
    for (size_t i = 0; i < w->n_lsns; i++)
        worker_lsn_start(w, &w->lsns[i]);

    struct cfg *old = w->cfg;
    w->cfg = u->cfg;
    u->cfg = NULL;
    if (w->idx == 0 && w->tls != NULL)
        chain_health_stop(w->tls->chain); /* on this thread, where they run */
    tls_conf_unref(w->tls);
    w->tls = u->tls;
    u->tls = NULL;
    if (w->idx == 0)
        chain_health_start(w->tls->chain, w->loop);

    /* A new resolver when its section changed: lookups in flight are
     * restarted on the new one by the connections themselves. */
    char err[256];
    struct res *r = res_new(w->loop, &w->cfg->resolver, err, sizeof(err));
    if (r == NULL) {
        log_err(LOG_FAC_MAIN, NULL, "worker %u: resolver: %s; keeping the old one", w->idx, err);
    } else {
        /* Revocation checks use the resolver: they restart with it. */
        struct res *old_res = w->res;
        struct rev_ctx *old_rev = w->rev;
        w->res = r;
        w->rev = rev_ctx_new(w->loop, r, w->cfg->validation.revocation_timeout_ms);
        DLIST_FOREACH_SAFE(c, &w->conns, struct conn, link)
            conn_resolver_changed(c);
        rev_ctx_free(old_rev);
        pull_update(w); /* its fetch used the old resolver */
        res_free(old_res);
    }
    if (old != NULL)
        cfg_unref(old);
}

static void
worker_drain_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker *w = t->data;
    if (w->n_conns > 0)
        log_notice(LOG_FAC_MAIN, NULL, "worker %u: drain period over, closing %u connections",
                   w->idx, w->n_conns);
    DLIST_FOREACH_SAFE(c, &w->conns, struct conn, link)
        conn_close(c, CONN_ERR_SHUTDOWN);
}

static void
worker_start_drain(struct worker *w)
{
    if (w->draining)
        return;
    w->draining = true;
    for (size_t i = 0; i < w->n_lsns; i++)
        worker_lsn_stop(w, &w->lsns[i], true);
    w->n_lsns = 0;
    DLIST_FOREACH_SAFE(c, &w->conns, struct conn, link)
        conn_drain(c);
    ev_timer_set(&w->drain_timer, w->cfg->timeouts.drain_ms / 1000.0, 0.);
    ev_timer_start(w->loop, &w->drain_timer);
}

static void
worker_wake_cb(struct ev_loop *loop, ev_async *a, int revents)
{
    struct worker *w = a->data;
    pthread_mutex_lock(&w->mtx);
    struct worker_update *u = w->pending;
    w->pending = NULL;
    bool drain = w->drain_req;
    pthread_mutex_unlock(&w->mtx);
    if (u != NULL && !w->draining)
        worker_apply_update(w, u);
    worker_update_free(u);
    if (drain)
        worker_start_drain(w);
}

bool
worker_is_draining(const struct worker *w)
{
    return w->draining;
}

static void *
worker_main(void *arg)
{
    struct worker *w = arg;
    ev_run(w->loop, 0);
    /* Loop ended: everything closed (drain) — free what is left. */
    worker_reap_cb(w->loop, &w->reap, 0);
    for (size_t i = 0; i < w->n_lsns; i++)
        worker_lsn_stop(w, &w->lsns[i], true);
    free(w->lsns);
    w->lsns = NULL;
    pull_free(w->pull);
    w->pull = NULL;
    if (w->idx == 0 && w->tls != NULL)
        chain_health_stop(w->tls->chain);
    rev_ctx_free(w->rev);
    w->rev = NULL;
    res_free(w->res);
    w->res = NULL;
    return NULL;
}

/* ---- main thread API ---------------------------------------------------- */

int
workers_start(struct cfg *cfg, struct tls_conf *tls, char *err, size_t errlen)
{
    n_workers = cfg->workers;
    workers = calloc(n_workers, sizeof(*workers));
    if (workers == NULL) {
        snprintf(err, errlen, "out of memory");
        return CAT_ERR;
    }
    struct worker_update **ups = worker_make_updates(cfg, tls, false, err, errlen);
    if (ups == NULL)
        return CAT_ERR;
    for (unsigned i = 0; i < n_workers; i++) {
        struct worker *w = &workers[i];
        w->idx = i;
        w->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
        if (w->loop == NULL) {
            snprintf(err, errlen, "cannot create an event loop");
            return CAT_ERR;
        }
        pthread_mutex_init(&w->mtx, NULL);
        ev_async_init(&w->wake, worker_wake_cb);
        w->wake.data = w;
        ev_async_start(w->loop, &w->wake);
        ev_prepare_init(&w->reap, worker_reap_cb);
        w->reap.data = w;
        ev_prepare_start(w->loop, &w->reap);
        ev_timer_init(&w->drain_timer, worker_drain_timeout_cb, 1., 0.);
        w->drain_timer.data = w;
        w->res = res_new(w->loop, &cfg->resolver, err, errlen);
        if (w->res == NULL)
            return CAT_ERR;
        w->rev = rev_ctx_new(w->loop, w->res, cfg->validation.revocation_timeout_ms);
        if (w->rev == NULL) {
            snprintf(err, errlen, "out of memory");
            return CAT_ERR;
        }
        /* The resolver exists, so the update only sets config and sockets. */
        struct worker_update *u = ups[i];
        w->cfg = u->cfg;
        u->cfg = NULL;
        w->tls = u->tls;
        u->tls = NULL;
        w->lsns = u->lsns;
        w->n_lsns = u->n_lsns;
        u->lsns = NULL;
        worker_update_free(u);
        for (size_t j = 0; j < w->n_lsns; j++)
            worker_lsn_start(w, &w->lsns[j]);
        pull_update(w);
        if (i == 0)
            chain_health_start(w->tls->chain, w->loop);
    }
    free(ups);
    for (unsigned i = 0; i < n_workers; i++) {
        if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
            snprintf(err, errlen, "cannot start worker %u", i);
            return CAT_ERR;
        }
    }
    return CAT_OK;
}

int
workers_reload(struct cfg *cfg, struct tls_conf *tls, char *err, size_t errlen)
{
    if (cfg->workers != n_workers)
        log_warn(LOG_FAC_MAIN, NULL, "workers: %u -> %u takes effect at the next restart",
                 n_workers, cfg->workers);
    /* A worker may still hold an update not yet applied: its sockets are
     * then not in w->lsns, and reuse would miss them. Wait until all took
     * theirs (bounded: workers take updates within one loop iteration). */
    for (int tries = 0; tries < 1000; tries++) {
        bool busy = false;
        for (unsigned i = 0; i < n_workers; i++) {
            pthread_mutex_lock(&workers[i].mtx);
            busy |= workers[i].pending != NULL;
            pthread_mutex_unlock(&workers[i].mtx);
        }
        if (!busy)
            break;
        usleep(1000);
    }
    struct worker_update **ups = worker_make_updates(cfg, tls, true, err, errlen);
    if (ups == NULL)
        return CAT_ERR;
    for (unsigned i = 0; i < n_workers; i++) {
        struct worker *w = &workers[i];
        pthread_mutex_lock(&w->mtx);
        worker_update_free(w->pending);
        w->pending = ups[i];
        pthread_mutex_unlock(&w->mtx);
        ev_async_send(w->loop, &w->wake);
    }
    free(ups);
    return CAT_OK;
}

void
workers_drain(void)
{
    for (unsigned i = 0; i < n_workers; i++) {
        struct worker *w = &workers[i];
        pthread_mutex_lock(&w->mtx);
        w->drain_req = true;
        pthread_mutex_unlock(&w->mtx);
        ev_async_send(w->loop, &w->wake);
    }
}

void
workers_join(void)
{
    for (unsigned i = 0; i < n_workers; i++) {
        struct worker *w = &workers[i];
        pthread_join(w->thread, NULL);
        worker_update_free(w->pending);
        if (w->cfg != NULL)
            cfg_unref(w->cfg);
        tls_conf_unref(w->tls);
        ev_loop_destroy(w->loop);
        pthread_mutex_destroy(&w->mtx);
    }
    free(workers);
    workers = NULL;
    n_workers = 0;
}
