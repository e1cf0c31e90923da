/*
 * Forwarding hosts, groups, health. Health is per upstream (by name and
 * address) in a process-wide registry so that a reload does not forget
 * that an upstream is down; checks are TCP connects on one worker's loop.
 * A host leaves rotation after health_failures failed checks in a row and
 * comes back after two successful ones.
 */
#include "chain/chain.h"

#include "core/log.h"
#include "core/validate.h"

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ev.h>

#define CHAIN_UP_AFTER 2 /* successful checks that bring a host back */

struct chain_health {
    char key[200];            /* "name@address" */
    atomic_bool down;
    atomic_uint fails, oks;
    atomic_ulong checks;
    struct chain_health *next;
};

static pthread_mutex_t chain_reg_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct chain_health *chain_reg; /* never freed: a handful of upstreams */

/* One check in flight for one host. */
struct chain_check {
    struct chain *ch;
    struct chain_host *h;
    ev_timer timer;
    ev_io io;
    int fd;
    ev_tstamp started; /* when the check in flight (fd >= 0) began */
};

struct chain {
    const struct cfg *cfg;        /* borrowed */
    struct chain_host *hosts;     /* owned array */
    size_t n_hosts;
    struct chain_check *checks;   /* owned array (n_hosts), when started */
    struct ev_loop *loop;         /* borrowed: where checks run */
};

static struct chain_health *
chain_health_get(const struct cfg_fwd_host *c)
{
    char key[200];
    snprintf(key, sizeof(key), "%s@%s", c->name, c->addr_text);
    pthread_mutex_lock(&chain_reg_mtx);
    struct chain_health *h;
    for (h = chain_reg; h != NULL; h = h->next)
        if (strcmp(h->key, key) == 0)
            break;
    if (h == NULL && (h = calloc(1, sizeof(*h))) != NULL) {
        snprintf(h->key, sizeof(h->key), "%s", key);
        h->next = chain_reg;
        chain_reg = h;
    }
    pthread_mutex_unlock(&chain_reg_mtx);
    return h;
}

/* Reads a small secret file that must not be readable by others. */
static int
chain_read_secret(const char *path, char *out, size_t cap, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd == -1 || fstat(fd, &st) == -1) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return CAT_ERR;
    }
    if (st.st_mode & 077) {
        close(fd);
        snprintf(err, errlen, "%s: readable by others; it must be 0600", path);
        return CAT_ERR;
    }
    ssize_t n = read(fd, out, cap - 1);
    close(fd);
    if (n <= 0) {
        snprintf(err, errlen, "%s: empty", path);
        return CAT_ERR;
    }
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
        n--;
    out[n] = '\0';
    return CAT_OK;
}

static char *
chain_basic(const char *userpass)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(userpass);
    char *out = malloc(6 + 4 * ((n + 2) / 3) + 1);
    if (out == NULL)
        return NULL;
    size_t o = (size_t)sprintf(out, "Basic ");
    const unsigned char *s = (const unsigned char *)userpass;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0) |
                     (i + 2 < n ? s[i + 2] : 0);
        out[o++] = b64[v >> 18 & 63];
        out[o++] = b64[v >> 12 & 63];
        out[o++] = i + 1 < n ? b64[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? b64[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

/* The upstream's issuer (PEM file) as DER, for the route's store and the SSL log. */
static int
chain_load_issuer(struct chain_host *h, const struct val_store_opts *base, char *err, size_t errlen)
{
    const char *path = h->cfg->issuer;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return CAT_ERR;
    }
    static char pem[65536];
    size_t n = fread(pem, 1, sizeof(pem) - 1, f);
    fclose(f);
    pem[n] = '\0';
    uint8_t *der = malloc(n);
    int len = der != NULL ? wolfSSL_CertPemToDer((const unsigned char *)pem, (int)n, der, (int)n,
                                                 CERT_TYPE)
                          : -1;
    if (len <= 0) {
        free(der);
        snprintf(err, errlen, "%s: no certificate", path);
        return CAT_ERR;
    }
    h->issuer_der = der;
    h->issuer_len = (size_t)len;
    /* The route's anchors: the node's, plus this upstream's issuer. */
    struct val_store_opts o = *base;
    const char *pems[1] = {pem};
    const size_t lens[1] = {n};
    o.pems = pems;
    o.pem_lens = lens;
    o.n_pems = 1;
    char verr[300];
    h->trust = val_store_new(&o, verr, sizeof(verr));
    if (h->trust == NULL) {
        snprintf(err, errlen, "%s: %s", path, verr);
        return CAT_ERR;
    }
    return CAT_OK;
}

struct chain *
chain_new(const struct cfg *cfg, const struct val_store_opts *base, char *err, size_t errlen)
{
    const struct cfg_forwarding *f = &cfg->forwarding;
    struct chain *ch = calloc(1, sizeof(*ch));
    if (ch == NULL || (f->n_hosts > 0 && (ch->hosts = calloc(f->n_hosts, sizeof(*ch->hosts))) == NULL)) {
        free(ch);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ch->cfg = cfg;
    for (size_t i = 0; i < f->n_hosts; i++) {
        struct chain_host *h = &ch->hosts[i];
        h->cfg = &f->hosts[i];
        ch->n_hosts++;
        for (size_t j = 0; j < i; j++)
            if (strcmp(f->hosts[j].name, h->cfg->name) == 0) {
                snprintf(err, errlen, "forwarding.hosts: \"%s\" is used twice", h->cfg->name);
                goto fail;
            }
        h->health = chain_health_get(h->cfg);
        if (h->health == NULL) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        if (h->cfg->credentials_file != NULL) {
            char up[512], cerr[300];
            if (chain_read_secret(h->cfg->credentials_file, up, sizeof(up), cerr,
                                  sizeof(cerr)) != CAT_OK ||
                strchr(up, ':') == NULL) {
                snprintf(err, errlen, "forwarding host %s: credentials: %s", h->cfg->name,
                         strchr(up, ':') == NULL ? "must be \"user:password\"" : cerr);
                goto fail;
            }
            h->auth = chain_basic(up);
            memset(up, 0, sizeof(up));
        }
        char ierr[400];
        if (h->cfg->issuer != NULL && chain_load_issuer(h, base, ierr, sizeof(ierr)) != CAT_OK) {
            snprintf(err, errlen, "forwarding host %s: issuer: %s", h->cfg->name, ierr);
            goto fail;
        }
    }
    if (f->default_route != NULL) {
        bool found = false;
        for (size_t i = 0; i < f->n_hosts && !found; i++)
            found = strcmp(f->hosts[i].name, f->default_route) == 0;
        for (size_t i = 0; i < f->n_groups && !found; i++)
            found = strcmp(f->groups[i].name, f->default_route) == 0;
        if (!found) {
            snprintf(err, errlen, "forwarding.default: \"%s\" is neither a host nor a group",
                     f->default_route);
            goto fail;
        }
    }
    return ch;
fail:
    chain_free(ch);
    return NULL;
}

static void chain_check_stop(struct chain_check *k);

void
chain_health_stop(struct chain *ch)
{
    for (size_t i = 0; ch->checks != NULL && i < ch->n_hosts; i++)
        chain_check_stop(&ch->checks[i]);
    free(ch->checks);
    ch->checks = NULL;
}

void
chain_free(struct chain *ch)
{
    if (ch == NULL)
        return;
    /* Checks run on a worker's loop: they were stopped there (chain_health_stop). */
    CAT_ASSERT(ch->checks == NULL);
    for (size_t i = 0; i < ch->n_hosts; i++) {
        free(ch->hosts[i].auth);
        val_store_free(ch->hosts[i].trust);
        free(ch->hosts[i].issuer_der);
    }
    free(ch->hosts);
    free(ch);
}

bool
chain_enabled(const struct chain *ch)
{
    return ch->n_hosts > 0;
}

bool
chain_host_up(const struct chain_host *h)
{
    return !atomic_load(&h->health->down);
}

static const struct chain_host *
chain_host_by_name(const struct chain *ch, const char *name)
{
    for (size_t i = 0; i < ch->n_hosts; i++)
        if (strcmp(ch->hosts[i].cfg->name, name) == 0)
            return &ch->hosts[i];
    return NULL;
}

/* FNV-1a: which upstream a site sticks to; not a security boundary. */
static unsigned
chain_hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

const struct chain_host *
chain_pick(const struct chain *ch, const char *route, const char *site, bool *direct, char *why,
           size_t whylen)
{
    *direct = false;
    why[0] = '\0';
    if (route == NULL || route[0] == '\0') {
        *direct = true;
        return NULL;
    }
    const struct cfg_forwarding *f = &ch->cfg->forwarding;
    const struct chain_host *h = chain_host_by_name(ch, route);
    if (h != NULL) {
        if (chain_host_up(h))
            return h;
        snprintf(why, whylen, "the upstream %s (%s) is down", route, h->cfg->addr_text);
    } else {
        const struct cfg_fwd_group *g = NULL;
        for (size_t i = 0; i < f->n_groups && g == NULL; i++)
            if (strcmp(f->groups[i].name, route) == 0)
                g = &f->groups[i];
        if (g == NULL) {
            snprintf(why, whylen, "the route %s names no upstream", route);
        } else {
            /* Hash: start at the site's member, then go round: a site moves
             * only when its upstream is down. */
            size_t start = g->method == CFG_FWD_HASH && site != NULL
                               ? chain_hash(site) % g->n_members
                               : 0;
            for (size_t k = 0; k < g->n_members; k++) {
                h = chain_host_by_name(ch, g->members[(start + k) % g->n_members]);
                if (h != NULL && chain_host_up(h))
                    return h;
            }
            snprintf(why, whylen, "every upstream of %s is down", route);
        }
    }
    *direct = f->when_down == CFG_DOWN_OPEN;
    return NULL;
}

/* ---- health checks --------------------------------------------------------------- */

static void
chain_check_result(struct chain_check *k, bool ok)
{
    struct chain_health *s = k->h->health;
    unsigned threshold = k->ch->cfg->forwarding.health_failures;
    atomic_fetch_add(&s->checks, 1);
    if (ok) {
        atomic_store(&s->fails, 0);
        if (atomic_fetch_add(&s->oks, 1) + 1 >= CHAIN_UP_AFTER && atomic_load(&s->down)) {
            atomic_store(&s->down, false);
            log_notice(LOG_FAC_MAIN, NULL, "upstream %s (%s) is up again", k->h->cfg->name,
                       k->h->cfg->addr_text);
        }
    } else {
        atomic_store(&s->oks, 0);
        if (atomic_fetch_add(&s->fails, 1) + 1 >= threshold && !atomic_load(&s->down)) {
            atomic_store(&s->down, true);
            log_warn(LOG_FAC_MAIN, NULL, "upstream %s (%s) is down after %u failed checks",
                     k->h->cfg->name, k->h->cfg->addr_text, threshold);
        }
    }
}

static void
chain_check_close(struct chain_check *k)
{
    ev_io_stop(k->ch->loop, &k->io);
    if (k->fd >= 0)
        close(k->fd);
    k->fd = -1;
}

static void
chain_check_io_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct chain_check *k = io->data;
    int soerr = 0;
    socklen_t sl = sizeof(soerr);
    if (getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == -1)
        soerr = errno;
    chain_check_close(k);
    chain_check_result(k, soerr == 0);
}

static void
chain_check_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct chain_check *k = t->data;
    if (k->fd >= 0) {
        /* The previous check is still open. Its answer may only be waiting
         * behind a busy loop (a large transfer on this worker): ask the
         * socket itself before calling it a failure, and give it the whole
         * connect_timeout. */
        struct pollfd pf = {.fd = k->fd, .events = POLLOUT};
        if (poll(&pf, 1, 0) == 1) {
            chain_check_io_cb(loop, &k->io, EV_WRITE);
        } else if (ev_now(loop) - k->started < k->ch->cfg->forwarding.connect_ms / 1000.0) {
            return;
        } else {
            chain_check_close(k);
            chain_check_result(k, false);
        }
    }
    const struct cfg_fwd_host *c = k->h->cfg;
    k->fd = socket(c->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (k->fd == -1)
        return;
    k->started = ev_now(loop);
    if (connect(k->fd, (const struct sockaddr *)&c->addr, c->addrlen) == 0) {
        chain_check_close(k);
        chain_check_result(k, true);
        return;
    }
    if (errno != EINPROGRESS) {
        chain_check_close(k);
        chain_check_result(k, false);
        return;
    }
    ev_io_set(&k->io, k->fd, EV_WRITE);
    ev_io_start(loop, &k->io);
}

static void
chain_check_stop(struct chain_check *k)
{
    if (k->ch == NULL)
        return;
    ev_timer_stop(k->ch->loop, &k->timer);
    chain_check_close(k);
}

void
chain_health_start(struct chain *ch, struct ev_loop *loop)
{
    if (ch->n_hosts == 0 || ch->checks != NULL)
        return;
    ch->checks = calloc(ch->n_hosts, sizeof(*ch->checks));
    if (ch->checks == NULL)
        return;
    ch->loop = loop;
    double every = ch->cfg->forwarding.health_ms / 1000.0;
    for (size_t i = 0; i < ch->n_hosts; i++) {
        struct chain_check *k = &ch->checks[i];
        k->ch = ch;
        k->h = &ch->hosts[i];
        k->fd = -1;
        ev_io_init(&k->io, chain_check_io_cb, -1, 0);
        k->io.data = k;
        ev_timer_init(&k->timer, chain_check_timer_cb, 0.01, every);
        k->timer.data = k;
        ev_timer_start(loop, &k->timer);
    }
}

size_t
chain_metrics(const struct chain *ch, char *buf, size_t cap)
{
    static const char *const head[] = {
        "# HELP catena_upstream_up Whether the upstream is in rotation (1) or down (0).\n"
        "# TYPE catena_upstream_up gauge\n",
        "# HELP catena_upstream_checks_total Health checks of the upstream.\n"
        "# TYPE catena_upstream_checks_total counter\n",
        "# HELP catena_upstream_failed_checks Failed health checks in a row.\n"
        "# TYPE catena_upstream_failed_checks gauge\n",
    };
    size_t o = 0;
    for (size_t m = 0; m < CAT_ARRAY_LEN(head) && ch->n_hosts > 0; m++) {
        int n = snprintf(buf + o, cap - o, "%s", head[m]);
        o = n > 0 ? CAT_MIN(o + (size_t)n, cap - 1) : o;
        for (size_t i = 0; i < ch->n_hosts; i++) {
            const struct chain_host *h = &ch->hosts[i];
            unsigned long v = m == 0   ? (chain_host_up(h) ? 1ul : 0ul)
                              : m == 1 ? atomic_load(&h->health->checks)
                                       : atomic_load(&h->health->fails);
            n = snprintf(buf + o, cap - o, "%s{upstream=\"%s\"} %lu\n",
                         m == 0   ? "catena_upstream_up"
                         : m == 1 ? "catena_upstream_checks_total"
                                  : "catena_upstream_failed_checks",
                         h->cfg->name, v);
            o = n > 0 ? CAT_MIN(o + (size_t)n, cap - 1) : o;
        }
    }
    if (cap > 0)
        buf[o] = '\0';
    return o;
}

size_t
chain_status_json(const struct chain *ch, char *buf, size_t cap)
{
    size_t o = 0;
    int n = snprintf(buf, cap, "[");
    o = n > 0 ? (size_t)n : 0;
    for (size_t i = 0; i < ch->n_hosts && o < cap; i++) {
        const struct chain_host *h = &ch->hosts[i];
        n = snprintf(buf + o, cap - o,
                     "%s{\"name\": \"%s\", \"address\": \"%s\", \"type\": \"%s\", "
                     "\"up\": %s, \"failed_checks\": %u, \"checks\": %lu}",
                     i ? ", " : "", h->cfg->name, h->cfg->addr_text,
                     h->cfg->type == CFG_FWD_HTTPS ? "https" : "http",
                     chain_host_up(h) ? "true" : "false", atomic_load(&h->health->fails),
                     atomic_load(&h->health->checks));
        if (n > 0)
            o += (size_t)n;
    }
    if (o + 2 < cap) {
        buf[o++] = ']';
        buf[o] = '\0';
    }
    return CAT_MIN(o, cap > 0 ? cap - 1 : 0);
}
