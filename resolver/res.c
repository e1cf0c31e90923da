/*
 * The resolver a connection meets between policy and connect(): literal,
 * hosts file, cache, then one c-ares query per name however many callers
 * wait for it. c-ares runs on the worker's libev loop: its sockets are ev_io
 * watchers (ARES_OPT_SOCK_STATE_CB), its timeouts one ev_timer re-armed from
 * ares_timeout() after every ares_process_fd(). Nothing here blocks once
 * res_new() has returned. Callers' callbacks run from the loop, never inside
 * res_lookup(), and never after res_cancel() or res_free() returned.
 */
#include "resolver/res.h"

#include "core/log.h"
#include "resolver/res_int.h"

#include <arpa/inet.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <ares.h>
#include <ev.h>

enum res_q_state {
    RES_Q_WAITING = 0, /* linked in pend->callers */
    RES_Q_FIRING,      /* unlinked, its callback running; freed when it returns */
};

struct res_query {
    struct res_pend *pend;  /* borrowed: the lookup it waits for */
    struct dlist_link link; /* in pend->callers */
    res_cb *cb;
    void *arg;
    enum res_q_state state;
};

/* One name's query in flight (in r->pending), then its answer (in r->done). */
struct res_pend {
    struct res_hnode node; /* node.key is key[] */
    struct res *r;         /* borrowed: owner */
    struct res_pend *next_done;
    struct dlist callers; /* owned: struct res_query; may become empty, the query goes on */
    struct res_answer ans;
    char key[RES_KEY_SIZE];
};

const char *
res_err_str(enum res_err e)
{
    switch (e) {
    case RES_OK:
        return "ok";
    case RES_ERR_NXDOMAIN:
        return "no such host";
    case RES_ERR_NODATA:
        return "host has no address";
    case RES_ERR_TIMEOUT:
        return "DNS timeout";
    case RES_ERR_SERVFAIL:
        return "DNS server failure";
    case RES_ERR_BADNAME:
        return "invalid host name";
    case RES_ERR_NOMEM:
        return "out of memory";
    case RES_ERR_OTHER:
        break;
    }
    return "DNS error";
}

static const char *
res_family_name(enum cfg_family f)
{
    return f == CFG_FAMILY_IPV4 ? "ipv4" : f == CFG_FAMILY_IPV6 ? "ipv6" : "any";
}

static enum res_err
res_err_from_ares(int status)
{
    switch (status) {
    case ARES_SUCCESS:
        return RES_OK;
    case ARES_ENOTFOUND:
        return RES_ERR_NXDOMAIN;
    case ARES_ENODATA:
        return RES_ERR_NODATA;
    case ARES_ETIMEOUT:
        return RES_ERR_TIMEOUT;
    /* ECONNREFUSED: every server answered with ICMP port unreachable. */
    case ARES_ESERVFAIL:
    case ARES_EREFUSED:
    case ARES_ECONNREFUSED:
    case ARES_ENOTIMP:
    case ARES_EFORMERR:
    case ARES_EBADRESP:
        return RES_ERR_SERVFAIL;
    case ARES_EBADNAME:
        return RES_ERR_BADNAME;
    case ARES_ENOMEM:
        return RES_ERR_NOMEM;
    default:
        return RES_ERR_OTHER;
    }
}

static void
res_answer_fail(struct res_answer *out, enum res_err err)
{
    out->err = err;
    out->n = 0;
}

/* ---- callbacks to the callers -------------------------------------------- */

static void
res_pend_free(struct res_pend *p)
{
    DLIST_FOREACH_SAFE(q, &p->callers, struct res_query, link)
        free(q);
    free(p);
}

/*
 * Runs the callbacks of every answer queued so far. Each caller is unlinked
 * before its callback, so the callback may cancel other callers (of this
 * answer or another queued one), start lookups, or free its own object.
 * Answers queued by those lookups wait for the next kick: the loop is bounded.
 */
static void
res_deliver(struct res *r)
{
    struct res_pend *list = r->done;
    r->done = r->done_tail = NULL;
    ev_timer_stop(r->loop, &r->kick);
    while (list != NULL) {
        struct res_pend *p = list;
        list = p->next_done;
        struct res_query *q;
        while ((q = DLIST_FIRST(&p->callers, struct res_query, link)) != NULL) {
            dlist_unlink(&p->callers, &q->link);
            q->state = RES_Q_FIRING;
            q->cb(q->arg, &p->ans);
            free(q);
        }
        free(p);
    }
}

static void
res_kick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    res_deliver(w->data);
}

/* ---- c-ares on libev -------------------------------------------------------- */

static void
res_rearm(struct res *r)
{
    struct timeval tv;
    ev_timer_stop(r->loop, &r->tmo);
    if (ares_timeout(r->ch, NULL, &tv) != NULL) {
        ev_timer_set(&r->tmo, (double)tv.tv_sec + (double)tv.tv_usec / 1e6, 0.);
        ev_timer_start(r->loop, &r->tmo);
    }
}

static void
res_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct res *r = w->data;
    ares_socket_t fd = w->fd;
    /* w may be freed inside: c-ares closes sockets through res_sock_state_cb. */
    ares_process_fd(r->ch, (revents & EV_READ) ? fd : ARES_SOCKET_BAD,
                    (revents & EV_WRITE) ? fd : ARES_SOCKET_BAD);
    res_rearm(r);
    res_deliver(r);
}

static void
res_tmo_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct res *r = w->data;
    ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    res_rearm(r);
    res_deliver(r);
}

static void
res_sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
    struct res *r = data;
    struct res_sock **pp = &r->socks;
    while (*pp != NULL && (*pp)->io.fd != fd)
        pp = &(*pp)->next;
    struct res_sock *s = *pp;

    if (!readable && !writable) {
        if (s != NULL) {
            ev_io_stop(r->loop, &s->io);
            *pp = s->next;
            free(s);
        }
        return;
    }
    int events = (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);
    if (s == NULL) {
        s = calloc(1, sizeof(*s));
        if (s == NULL) {
            /* Unwatched, the query still ends: c-ares's timeout fires. */
            log_err(LOG_FAC_MAIN, NULL, "resolver: out of memory watching a DNS socket");
            return;
        }
        ev_io_init(&s->io, res_io_cb, fd, events);
        s->io.data = r;
        s->next = r->socks;
        r->socks = s;
        ev_io_start(r->loop, &s->io);
        return;
    }
    if ((s->io.events & (EV_READ | EV_WRITE)) != events) {
        ev_io_stop(r->loop, &s->io);
        ev_io_set(&s->io, fd, events);
        ev_io_start(r->loop, &s->io);
    }
}

/* The addresses c-ares found, at most RES_MAX_ADDRS per family, and their TTL. */
static void
res_answer_from_ai(struct res *r, const struct ares_addrinfo *ai, struct res_answer *out, long *ttl)
{
    struct res_caddr in[2 * RES_MAX_ADDRS];
    size_t n = 0, n4 = 0, n6 = 0;
    long min_ttl = LONG_MAX;

    for (const struct ares_addrinfo_node *nd = ai->nodes; nd != NULL; nd = nd->ai_next) {
        struct res_caddr a;
        if (nd->ai_addr == NULL || !res_family_ok(r->family, nd->ai_family) ||
            !res_caddr_from_sa(nd->ai_addr, &a))
            continue;
        size_t *count = a.family == AF_INET ? &n4 : &n6;
        if (*count >= RES_MAX_ADDRS)
            continue;
        (*count)++;
        in[n++] = a;
        min_ttl = CAT_MIN(min_ttl, (long)nd->ai_ttl);
    }
    /* A CNAME's TTL bounds how long its target may be believed. */
    for (const struct ares_addrinfo_cname *c = ai->cnames; c != NULL; c = c->next)
        min_ttl = CAT_MIN(min_ttl, (long)c->ttl);
    res_order(in, n, out);
    if (out->n == 0)
        res_answer_fail(out, RES_ERR_NODATA);
    *ttl = min_ttl == LONG_MAX ? 0 : min_ttl;
}

static void
res_log_answer(const struct res_pend *p, int status, long ttl, unsigned cache_s)
{
    if (!log_want(LOG_FAC_MAIN, LOG_DEBUG))
        return;
    if (p->ans.err != RES_OK) {
        log_debug(LOG_FAC_MAIN, NULL, "resolver: answer %s: %s (%s), cached %us", p->key,
                  res_err_str(p->ans.err), ares_strerror(status), cache_s);
        return;
    }
    char first[INET6_ADDRSTRLEN] = "?";
    const struct sockaddr_storage *ss = &p->ans.addrs[0];
    if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)ss)->sin_addr, first,
                  sizeof(first));
    else
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr, first,
                  sizeof(first));
    log_debug(LOG_FAC_MAIN, NULL,
              "resolver: answer %s: %zu address%s, first %s, ttl %ld, cached %us", p->key, p->ans.n,
              p->ans.n == 1 ? "" : "es", first, ttl, cache_s);
}

/*
 * c-ares is done with one name. Runs inside ares_process_fd(), inside
 * ares_getaddrinfo() when c-ares fails at once, or inside ares_destroy().
 * Callers are not called from here: the answer is queued for res_deliver(),
 * so no caller code runs while c-ares is on the stack.
 */
static void
res_ares_cb(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
    struct res_pend *p = arg;
    struct res *r = p->r;

    res_htab_remove(&r->pending, &p->node);
    if (status == ARES_EDESTRUCTION || r->freeing) {
        if (ai != NULL)
            ares_freeaddrinfo(ai);
        res_pend_free(p);
        return;
    }

    long ttl = 0;
    unsigned cache_s = 0;
    if (status == ARES_SUCCESS && ai != NULL)
        res_answer_from_ai(r, ai, &p->ans, &ttl);
    else
        res_answer_fail(&p->ans, res_err_from_ares(status == ARES_SUCCESS ? ARES_ENODATA : status));
    if (ai != NULL)
        ares_freeaddrinfo(ai);

    /* SERVFAIL, timeouts and the like are not cached: they are about the path
     * to a server, not the name, and often last less than one retry. A name
     * that keeps failing still costs at most one query in flight at a time,
     * since concurrent callers share it. */
    if (p->ans.err == RES_OK)
        cache_s = res_ttl_clamp(ttl, r->min_ttl_s, r->max_ttl_s);
    else if (p->ans.err == RES_ERR_NXDOMAIN || p->ans.err == RES_ERR_NODATA)
        cache_s = r->negative_ttl_s;
    res_cache_put(&r->cache, p->key, ev_now(r->loop), &p->ans, cache_s);
    res_log_answer(p, status, ttl, r->cache.max > 0 ? cache_s : 0);

    if (dlist_empty(&p->callers)) {
        free(p); /* everyone cancelled; the cache still learnt the answer */
        return;
    }
    p->next_done = NULL;
    if (r->done_tail != NULL)
        r->done_tail->next_done = p;
    else
        r->done = p;
    r->done_tail = p;
}

/* ---- public API ----------------------------------------------------------- */

static pthread_once_t res_ares_once = PTHREAD_ONCE_INIT;
static int res_ares_init_status = ARES_SUCCESS;

static void
res_ares_library_init(void)
{
    /* Not thread-safe in c-ares 1.18 and workers make resolvers concurrently
     * on reload: once per process, never cleaned up (it holds nothing on Linux). */
    res_ares_init_status = ares_library_init(ARES_LIB_INIT_ALL);
}

static void
res_seed(uint64_t seed[2])
{
    if (getrandom(seed, 2 * sizeof(seed[0]), GRND_NONBLOCK) == (ssize_t)(2 * sizeof(seed[0])))
        return;
    /* No entropy yet (early boot): a weaker key still differs per process. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    seed[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
    seed[1] = (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)seed;
}

struct res *
res_new(struct ev_loop *loop, const struct cfg_resolver *rc, char *err, size_t errlen)
{
    struct ares_addr_port_node *srv = NULL;
    struct res *r = NULL;
    uint64_t seed[2];
    int st;

    if (rc->n_servers > 0) {
        srv = calloc(rc->n_servers, sizeof(*srv));
        if (srv == NULL)
            goto nomem;
    }
    for (size_t i = 0; i < rc->n_servers; i++) {
        struct res_server s;
        char why[160];
        if (res_server_parse(rc->servers[i], &s, why, sizeof(why)) != CAT_OK) {
            log_warn(LOG_FAC_MAIN, NULL, "resolver: bad server %s", why);
            snprintf(err, errlen, "resolver.servers: %s", why);
            goto fail;
        }
        srv[i].next = i + 1 < rc->n_servers ? &srv[i + 1] : NULL;
        srv[i].family = s.addr.family;
        if (s.addr.family == AF_INET)
            memcpy(&srv[i].addr.addr4, s.addr.a, 4);
        else
            memcpy(&srv[i].addr.addr6, s.addr.a, 16);
        srv[i].udp_port = s.port;
        srv[i].tcp_port = s.port;
    }

    pthread_once(&res_ares_once, res_ares_library_init);
    if (res_ares_init_status != ARES_SUCCESS) {
        snprintf(err, errlen, "c-ares: %s", ares_strerror(res_ares_init_status));
        goto fail;
    }

    r = calloc(1, sizeof(*r));
    if (r == NULL)
        goto nomem;
    r->loop = loop;
    r->family = rc->family;
    r->min_ttl_s = rc->min_ttl_s;
    r->max_ttl_s = rc->max_ttl_s;
    r->negative_ttl_s = rc->negative_ttl_s;
    ev_timer_init(&r->tmo, res_tmo_cb, 0., 0.);
    r->tmo.data = r;
    ev_timer_init(&r->kick, res_kick_cb, 0., 0.);
    r->kick.data = r;
    res_seed(seed);
    /* A zeroed table, cache or hosts is safe to fini: res_free() undoes any prefix. */
    if (res_htab_init(&r->pending, 64, seed) != CAT_OK ||
        res_cache_init(&r->cache, rc->cache_entries, seed) != CAT_OK ||
        res_hosts_init(&r->hosts, seed) != CAT_OK)
        goto nomem;
    if (rc->hosts_file != NULL && res_hosts_load(&r->hosts, rc->hosts_file, err, errlen) != CAT_OK)
        goto fail;

    struct ares_options o;
    int mask = ARES_OPT_FLAGS | ARES_OPT_LOOKUPS | ARES_OPT_SOCK_STATE_CB;
    char lookups[] = "b"; /* DNS only: our hosts table ran before c-ares */
    memset(&o, 0, sizeof(o));
    /* NOALIASES: HOSTALIASES would rename single-label names behind our back
     * (and read a file at query time). */
    o.flags = ARES_FLAG_NOALIASES;
    o.lookups = lookups;
    o.sock_state_cb = res_sock_state_cb;
    o.sock_state_cb_data = r;
    if (rc->timeout_ms > 0) {
        mask |= ARES_OPT_TIMEOUTMS;
        o.timeout = (int)CAT_MIN(rc->timeout_ms, (unsigned)INT_MAX);
    }
    if (rc->tries > 0) {
        mask |= ARES_OPT_TRIES;
        o.tries = (int)CAT_MIN(rc->tries, 100u);
    }
    if (srv != NULL) {
        /* Configured servers are the only ones asked, for the name as given:
         * no search domains from resolv.conf, LOCALDOMAIN or the hostname
         * (c-ares 1.18's getaddrinfo ignores ARES_FLAG_NOSEARCH; zero domains
         * is what stops "name.corp.example" leaking to the wrong place). */
        mask |= ARES_OPT_DOMAINS | ARES_OPT_NDOTS;
        o.flags |= ARES_FLAG_NOSEARCH;
        o.domains = NULL;
        o.ndomains = 0;
        o.ndots = 1;
    }
    st = ares_init_options(&r->ch, &o, mask);
    if (st != ARES_SUCCESS) {
        r->ch = NULL;
        snprintf(err, errlen, "c-ares init: %s", ares_strerror(st));
        goto fail;
    }
    if (srv != NULL) {
        st = ares_set_servers_ports(r->ch, srv);
        if (st != ARES_SUCCESS) {
            snprintf(err, errlen, "c-ares servers: %s", ares_strerror(st));
            goto fail;
        }
    }
    free(srv);
    log_debug(LOG_FAC_MAIN, NULL,
              "resolver: ready: %zu configured server%s%s, family %s, %zu hosts names, cache %u",
              rc->n_servers, rc->n_servers == 1 ? "" : "s",
              rc->n_servers == 0 ? " (resolv.conf)" : "", res_family_name(r->family),
              r->hosts.n_names, rc->cache_entries);
    return r;

nomem:
    snprintf(err, errlen, "out of memory");
fail:
    free(srv);
    res_free(r);
    return NULL;
}

void
res_free(struct res *r)
{
    if (r == NULL)
        return;
    r->freeing = true;
    /* Every query in flight ends with ARES_EDESTRUCTION: res_ares_cb frees it
     * and its callers without calling them. Sockets leave via sock_state_cb. */
    if (r->ch != NULL)
        ares_destroy(r->ch);
    r->ch = NULL;
    while (r->done != NULL) {
        struct res_pend *p = r->done;
        r->done = p->next_done;
        res_pend_free(p);
    }
    r->done_tail = NULL;
    ev_timer_stop(r->loop, &r->tmo);
    ev_timer_stop(r->loop, &r->kick);
    while (r->socks != NULL) {
        struct res_sock *s = r->socks;
        r->socks = s->next;
        ev_io_stop(r->loop, &s->io);
        free(s);
    }
    CAT_ASSERT(r->pending.n == 0);
    res_htab_fini(&r->pending);
    res_cache_fini(&r->cache);
    res_hosts_fini(&r->hosts);
    free(r);
}

/* RFC 6761 6.3: localhost names are loopback and are never sent to DNS. */
static bool
res_localhost(const struct res *r, const char *key, struct res_answer *out)
{
    size_t len = strlen(key);
    static const char dom[] = ".localhost";
    if (strcmp(key, "localhost") != 0 &&
        !(len > sizeof(dom) - 1 && strcmp(key + len - (sizeof(dom) - 1), dom) == 0))
        return false;
    struct res_caddr lo[2];
    size_t n = 0;
    memset(lo, 0, sizeof(lo));
    if (res_family_ok(r->family, AF_INET)) {
        lo[n].family = AF_INET;
        memcpy(lo[n].a, (const uint8_t[]){127, 0, 0, 1}, 4);
        n++;
    }
    if (res_family_ok(r->family, AF_INET6)) {
        lo[n].family = AF_INET6;
        lo[n].a[15] = 1;
        n++;
    }
    res_order(lo, n, out);
    return true;
}

int
res_lookup(struct res *r, const char *host, struct res_answer *out, res_cb *cb, void *arg,
           struct res_query **qp)
{
    char key[RES_KEY_SIZE];
    struct res_caddr lit;

    *qp = NULL;
    r->st.lookups++;
    res_answer_fail(out, RES_OK);

    if (res_literal(host, &lit)) {
        if (res_family_ok(r->family, lit.family))
            res_answer_add(out, &lit);
        else
            res_answer_fail(out, RES_ERR_NODATA);
        return CAT_OK;
    }
    if (!res_name_norm(host, key)) {
        log_debug(LOG_FAC_MAIN, NULL, "resolver: \"%.80s\" is not a host name", host);
        res_answer_fail(out, RES_ERR_BADNAME);
        return CAT_OK;
    }
    if (res_hosts_get(&r->hosts, key, r->family, out) || res_localhost(r, key, out))
        return CAT_OK;
    if (res_cache_get(&r->cache, key, ev_now(r->loop), out)) {
        if (out->err == RES_OK)
            r->st.cache_hits++;
        else
            r->st.cache_neg_hits++;
        return CAT_OK;
    }

    struct res_query *q = calloc(1, sizeof(*q));
    if (q == NULL) {
        res_answer_fail(out, RES_ERR_NOMEM);
        return CAT_OK;
    }
    q->cb = cb;
    q->arg = arg;

    uint64_t hash = res_htab_hash(&r->pending, key);
    struct res_hnode *hn = res_htab_find(&r->pending, key, hash);
    struct res_pend *p;
    if (hn != NULL) {
        p = CAT_CONTAINER_OF(hn, struct res_pend, node);
        r->st.coalesced++;
    } else {
        p = calloc(1, sizeof(*p));
        if (p == NULL) {
            free(q);
            res_answer_fail(out, RES_ERR_NOMEM);
            return CAT_OK;
        }
        p->r = r;
        memcpy(p->key, key, sizeof(p->key));
        p->node.key = p->key;
        p->node.hash = hash;
        res_htab_insert(&r->pending, &p->node);
    }
    q->pend = p;
    dlist_push_head(&p->callers, &q->link);
    *qp = q;
    if (hn != NULL)
        return CAT_AGAIN;

    struct ares_addrinfo_hints hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = r->family == CFG_FAMILY_IPV4   ? AF_INET
                      : r->family == CFG_FAMILY_IPV6 ? AF_INET6
                                                     : AF_UNSPEC;
    r->st.queries_sent++;
    log_debug(LOG_FAC_MAIN, NULL, "resolver: query %s (%s)", key, res_family_name(r->family));
    /* p may be answered (and queued) before this returns, e.g. for ".onion". */
    ares_getaddrinfo(r->ch, p->key, NULL, &hints, res_ares_cb, p);
    res_rearm(r);
    if (r->done != NULL && !ev_is_active(&r->kick))
        ev_timer_start(r->loop, &r->kick);
    return CAT_AGAIN;
}

void
res_cancel(struct res_query *q)
{
    /* A callback cancelling its own query: it is already out of the list. */
    if (q == NULL || q->state == RES_Q_FIRING)
        return;
    dlist_unlink(&q->pend->callers, &q->link);
    free(q);
}

void
res_get_stats(const struct res *r, struct res_stats *out)
{
    *out = r->st;
    out->entries = r->cache.n;
}
