/*
 * Forwarding through upstream proxies, as seen by a connection.
 *
 * Downstream side: the <forward> layers pick a route; a CONNECT (for TLS,
 * tunneled or intercepted here) or an absolute-form request (plain HTTP)
 * goes to the upstream with Proxy-Authorization, Via, X-Forwarded-For, the
 * user (to upstreams marked for it) and Catena-Tier ("node=..; bundle=..;
 * inspect=..") so the upstream knows which tier and policy it serves.
 *
 * Upstream side: those claims are believed only from tier.downstream_networks;
 * a downstream running another bundle is counted, logged once per change,
 * and listed in /status.
 */
#include "core/forward.h"

#include "chain/chain.h"
#include "core/conn.h"
#include "core/msg.h"
#include "core/policy.h"
#include "core/tls.h"
#include "core/validate.h"
#include "core/worker.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---- downstream tiers seen (upstream side) ------------------------------------- */

#define FWD_MAX_TIERS 64

struct fwd_tier {
    char node[64];
    char bundle[80];
    bool match;
    time_t last_seen;
    unsigned long requests;
};

static pthread_mutex_t fwd_tiers_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct fwd_tier fwd_tiers[FWD_MAX_TIERS];
static size_t fwd_n_tiers;
static atomic_ulong fwd_mismatches;

unsigned long
fwd_tier_mismatches(void)
{
    return atomic_load(&fwd_mismatches);
}

static void
fwd_tier_record(const struct conn *c, const char *node, const char *bundle)
{
    bool match = strcmp(bundle, c->pol->digest) == 0;
    bool changed = false;
    pthread_mutex_lock(&fwd_tiers_mtx);
    struct fwd_tier *t = NULL;
    for (size_t i = 0; i < fwd_n_tiers && t == NULL; i++)
        if (strcmp(fwd_tiers[i].node, node) == 0)
            t = &fwd_tiers[i];
    if (t == NULL) {
        if (fwd_n_tiers < FWD_MAX_TIERS) {
            t = &fwd_tiers[fwd_n_tiers++];
        } else { /* full: reuse the stalest */
            t = &fwd_tiers[0];
            for (size_t i = 1; i < fwd_n_tiers; i++)
                if (fwd_tiers[i].last_seen < t->last_seen)
                    t = &fwd_tiers[i];
        }
        memset(t, 0, sizeof(*t));
        snprintf(t->node, sizeof(t->node), "%s", node);
        changed = true;
    }
    if (strcmp(t->bundle, bundle) != 0) {
        snprintf(t->bundle, sizeof(t->bundle), "%s", bundle);
        changed = true;
    }
    changed |= t->match != match;
    t->match = match;
    t->last_seen = time(NULL);
    t->requests++;
    pthread_mutex_unlock(&fwd_tiers_mtx);
    if (!match)
        atomic_fetch_add(&fwd_mismatches, 1);
    if (changed && !match)
        log_warn(LOG_FAC_MAIN, c, "tier mismatch: downstream node %s runs bundle %s, this node %s",
                 node, bundle, c->pol->digest);
    else if (changed)
        log_info(LOG_FAC_MAIN, c, "downstream node %s runs the same bundle %s", node, bundle);
}

size_t
fwd_tiers_json(char *buf, size_t cap)
{
    size_t o = 0;
    int n = snprintf(buf, cap, "[");
    o = n > 0 ? (size_t)n : 0;
    pthread_mutex_lock(&fwd_tiers_mtx);
    for (size_t i = 0; i < fwd_n_tiers && o < cap; i++) {
        const struct fwd_tier *t = &fwd_tiers[i];
        n = snprintf(buf + o, cap - o,
                     "%s{\"node\": \"%s\", \"bundle\": \"%s\", \"match\": %s, "
                     "\"last_seen\": %lld, \"requests\": %lu}",
                     i ? ", " : "", t->node, t->bundle, t->match ? "true" : "false",
                     (long long)t->last_seen, t->requests);
        if (n > 0)
            o += (size_t)n;
    }
    pthread_mutex_unlock(&fwd_tiers_mtx);
    if (o + 2 < cap) {
        buf[o++] = ']';
        buf[o] = '\0';
    }
    return CAT_MIN(o, cap > 0 ? cap - 1 : 0);
}

/* Copies a "key=value" parameter of a Catena-Tier value (letters, digits and
 * a few signs only: it ends up in logs and JSON). */
static bool
fwd_tier_param(struct http_str v, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    for (size_t i = 0; i + kl + 1 < v.len; i++) {
        if ((i == 0 || v.p[i - 1] == ' ' || v.p[i - 1] == ';') &&
            strncasecmp(v.p + i, key, kl) == 0 && v.p[i + kl] == '=') {
            size_t o = 0;
            for (size_t j = i + kl + 1; j < v.len && v.p[j] != ';' && o + 1 < cap; j++) {
                char ch = v.p[j];
                if (!(isalnum((unsigned char)ch) || ch == '-' || ch == '_' || ch == '.' ||
                      ch == ':'))
                    return false;
                out[o++] = ch;
            }
            out[o] = '\0';
            return o > 0;
        }
    }
    return false;
}

static bool
fwd_from_downstream(const struct conn *c)
{
    const struct cfg_tier *t = &c->cfg->tier;
    return t->n_downstream_nets > 0 &&
           cfg_net_match(t->downstream_nets, t->n_downstream_nets,
                         (const struct sockaddr *)&c->cli_addr);
}

void
fwd_downstream_claims(struct conn *c, const struct http_head *h)
{
    const struct http_hdr *tier = http_find(h, FWD_TIER_HEADER);
    if (!fwd_from_downstream(c))
        return; /* claims of strangers are not believed, nor counted */
    if (tier != NULL) {
        char node[64], bundle[80], inspect[16];
        if (fwd_tier_param(tier->value, "node", node, sizeof(node)) &&
            fwd_tier_param(tier->value, "bundle", bundle, sizeof(bundle)))
            fwd_tier_record(c, node, bundle);
        if (fwd_tier_param(tier->value, "inspect", inspect, sizeof(inspect)) &&
            strcmp(inspect, "edge") == 0)
            c->downstream_inspects = true;
    }
    const struct http_hdr *xff = http_find(h, "X-Forwarded-For");
    if (xff != NULL) {
        /* The last entry is what the downstream saw: its client. */
        size_t start = xff->value.len;
        while (start > 0 && xff->value.p[start - 1] != ',')
            start--;
        char ip[INET6_ADDRSTRLEN];
        size_t n = 0;
        for (size_t i = start; i < xff->value.len && n + 1 < sizeof(ip); i++)
            if (xff->value.p[i] != ' ')
                ip[n++] = xff->value.p[i];
        ip[n] = '\0';
        struct in6_addr a6;
        struct in_addr a4;
        if (inet_pton(AF_INET, ip, &a4) == 1 || inet_pton(AF_INET6, ip, &a6) == 1)
            snprintf(c->real_ip, sizeof(c->real_ip), "%s", ip);
    }
    const struct http_hdr *user = http_find(h, c->cfg->forwarding.user_header);
    if (user != NULL && c->user[0] == '\0' && user->value.len < sizeof(c->user)) {
        bool clean = true;
        for (size_t i = 0; i < user->value.len; i++)
            clean &= (unsigned char)user->value.p[i] >= 0x20 && user->value.p[i] != 0x7f;
        if (clean)
            snprintf(c->user, sizeof(c->user), "%.*s", (int)user->value.len, user->value.p);
    }
}

bool
fwd_is_tier_header(const struct conn *c, const struct http_hdr *x)
{
    return http_str_eq(x->name, FWD_TIER_HEADER) ||
           http_str_eq(x->name, c->cfg->forwarding.user_header) ||
           (c->route != NULL && http_str_eq(x->name, "X-Forwarded-For"));
}

bool
fwd_is_loop(const struct conn *c, const struct http_head *h)
{
    const char *me = c->cfg->node_name;
    size_t ml = strlen(me);
    for (size_t i = 0; i < h->n_hdrs; i++) {
        const struct http_hdr *x = &h->hdrs[i];
        if (!http_str_eq(x->name, "Via"))
            continue;
        /* Via: 1.1 a, 1.1 b (comment): a pseudonym is the second token of an entry. */
        for (size_t j = 0; j + ml <= x->value.len; j++) {
            bool start = j > 0 && x->value.p[j - 1] == ' ';
            bool end = j + ml == x->value.len || x->value.p[j + ml] == ',' ||
                       x->value.p[j + ml] == ' ';
            if (start && end && strncasecmp(x->value.p + j, me, ml) == 0)
                return true;
        }
    }
    return false;
}

enum cfg_inspect
fwd_inspect(const struct conn *c)
{
    /* The bundle's word wins: both tiers run the same one, so they agree. */
    switch (c->pd.inspect) {
    case CPL_INSPECT_BOTH:
        return CFG_INSPECT_BOTH;
    case CPL_INSPECT_EDGE:
        return CFG_INSPECT_EDGE;
    case CPL_INSPECT_CORE:
        return CFG_INSPECT_CORE;
    case CPL_INSPECT_UNSET:
        break;
    }
    return c->cfg->tier.inspect;
}

int
fwd_upstream_headers(const struct conn *c, struct buf *out)
{
    const struct chain_host *r = c->route;
    enum cfg_inspect mode = fwd_inspect(c);
    const char *inspect = mode == CFG_INSPECT_EDGE   ? "edge"
                          : mode == CFG_INSPECT_CORE ? "core"
                                                     : "both";
    if (r->auth != NULL && buf_printf(out, "Proxy-Authorization: %s\r\n", r->auth) != CAT_OK)
        return CAT_ERR;
    if (buf_printf(out, FWD_TIER_HEADER ": node=%s; bundle=%s; inspect=%s\r\n",
                   c->cfg->node_name, c->pol->digest, inspect) != CAT_OK)
        return CAT_ERR;
    if (buf_printf(out, "X-Forwarded-For: %s\r\n", c->real_ip[0] ? c->real_ip : c->cli_ip) !=
        CAT_OK)
        return CAT_ERR;
    if (r->cfg->send_user && c->user[0] != '\0' &&
        buf_printf(out, "%s: %s\r\n", c->cfg->forwarding.user_header, c->user) != CAT_OK)
        return CAT_ERR;
    return CAT_OK;
}

int
fwd_connect_request(const struct conn *c, struct buf *out)
{
    /* Under an interception (a new origin connection) the CONNECT names the
     * site intercepted; otherwise the one the client asked for. */
    const char *t = c->flags & CONN_F_INTERCEPTED ? c->tls_host : c->txn.host;
    unsigned port = c->flags & CONN_F_INTERCEPTED ? c->tls_port : c->txn.port;
    bool v6 = strchr(t, ':') != NULL;
    if (buf_printf(out, "CONNECT %s%s%s:%u HTTP/1.1\r\nHost: %s%s%s:%u\r\n", v6 ? "[" : "", t,
                   v6 ? "]" : "", port, v6 ? "[" : "", t, v6 ? "]" : "", port) != CAT_OK ||
        fwd_upstream_headers(c, out) != CAT_OK ||
        buf_printf(out, "Via: 1.1 %s\r\n\r\n", c->cfg->node_name) != CAT_OK)
        return CAT_ERR;
    return CAT_OK;
}

/* ---- the route ------------------------------------------------------------------- */

int
fwd_route(struct conn *c)
{
    c->route = NULL;
    const struct chain *ch = c->tls->chain;
    if (!chain_enabled(ch))
        return CAT_OK;
    struct cpl_txn t;
    conn_cpl_txn(c, &t, NULL);
    t.method = c->txn.method_str;
    t.url_scheme = c->txn.scheme;
    t.url_host = c->txn.host;
    t.url_port = c->txn.port;
    t.server_url_host = c->txn.host;
    c->pd.forward = NULL;
    pol_eval(c->pol, CPL_L_FORWARD, &t, &c->pd);
    const char *route = c->pd.forward != NULL ? c->pd.forward : c->cfg->forwarding.default_route;
    bool direct;
    char why[200];
    c->route = chain_pick(ch, route, c->txn.host, &direct, why, sizeof(why));
    if (c->route != NULL) {
        log_debug(LOG_FAC_MAIN, c, "forwarded through %s (%s)", c->route->cfg->name,
                  c->route->cfg->addr_text);
        return CAT_OK;
    }
    if (direct) {
        if (why[0] != '\0')
            log_info(LOG_FAC_MAIN, c, "%s: going direct (forwarding.when_down = open)", why);
        return CAT_OK;
    }
    log_warn(LOG_FAC_MAIN, c, "%s: refused (forwarding.when_down = closed)", why);
    c->txn.action = "TCP_ERR_MISS";
    c->err = CONN_ERR_CONNECT;
    conn_respond_error(c, 502, "upstream_unavailable", "No upstream proxy is available: %s",
                       why);
    return CAT_DECLINED;
}

/* ---- TLS to the upstream (type https) ----------------------------------------------- */

/*
 * Entered with the upstream connected (TCP). Its certificate is validated
 * against the node's anchors and the name tls_name (or its address).
 * Exits: CHAIN (a tunnel to ask for), EXCHANGE (plain HTTP), RESPOND (502).
 */
int
fwd_st_up_tls(struct conn *c, unsigned ev)
{
    const struct chain_host *r = c->route;
    struct conn_side *s = &c->srv;
    char why[300] = "";
    if (ev & CONN_EV_TIMER) {
        snprintf(why, sizeof(why), "TLS handshake timed out");
        goto refused;
    }
    if (s->ssl == NULL) {
        conn_side_tls_io(s, NULL);
        s->ssl = tls_session_new(c->tls->srv_ctx, &s->tio);
        if (s->ssl == NULL) {
            c->err = CONN_ERR_NOMEM;
            return CAT_ERR;
        }
        if (r->cfg->tls_name != NULL)
            wolfSSL_UseSNI(s->ssl, WOLFSSL_SNI_HOST_NAME, r->cfg->tls_name,
                           (unsigned short)strlen(r->cfg->tls_name));
        conn_timer_once(c, c->cfg->timeouts.tls_handshake_ms);
    }
    int ret;
    int rc = conn_side_handshake(c, s, true, &ret);
    if (rc == CAT_AGAIN)
        return CAT_AGAIN;
    if (rc != CAT_OK) {
        tls_describe_error(s->ssl, ret, why, sizeof(why));
        goto refused;
    }
    ev_timer_stop(c->w->loop, &c->timer);
    conn_side_want(c, s, 0);
    if (fwd_upstream_cert_check(c, s->ssl, why, sizeof(why)) != CAT_OK)
        goto refused;
    log_debug(LOG_FAC_MAIN, c, "TLS to upstream %s up: %s", r->cfg->name,
              wolfSSL_get_version(s->ssl));
    if (c->txn.method == HTTP_M_CONNECT || (c->flags & (CONN_F_INTERCEPTED | CONN_F_RETUNNEL))) {
        conn_set_state(c, CONN_ST_CHAIN);
        return CAT_OK;
    }
    return conn_established(c);
refused:
    log_warn(LOG_FAC_SSL, c, LOG_EVT_SRV_TLS " upstream %s (%s): %s", r->cfg->name,
             r->cfg->addr_text, why);
    c->txn.action = "TCP_ERR_MISS";
    c->err = CONN_ERR_SRV_TLS;
    return conn_respond_error(c, 502, "upstream_error",
                              "The TLS connection to the upstream proxy %s (%s) failed: %s",
                              r->cfg->name, r->cfg->addr_text, why);
}

int
fwd_upstream_cert_check(void *conn, WOLFSSL *ssl, char *why, size_t cap)
{
    struct conn *c = conn;
    const struct chain_host *r = c->route;
    const uint8_t *ders[8];
    size_t lens[8], n = 0;
    WOLFSSL_X509_CHAIN *chain = wolfSSL_get_peer_chain(ssl);
    int count = chain != NULL ? wolfSSL_get_chain_count(chain) : 0;
    for (int i = 0; i < count && n < 8; i++) {
        ders[n] = wolfSSL_get_chain_cert(chain, i);
        lens[n] = (size_t)wolfSSL_get_chain_length(chain, i);
        if (ders[n] != NULL)
            n++;
    }
    struct val_result *v = calloc(1, sizeof(*v));
    unsigned errors = VAL_E_UNTRUSTED;
    if (v != NULL && n > 0 && val_check(c->tls->trust, ders, lens, n, time(NULL), v) == CAT_OK) {
        errors = v->errors;
        char ip[64];
        const char *name = r->cfg->tls_name;
        if (name == NULL) {
            /* No name configured: the address must be in its IP subjectAltNames. */
            snprintf(ip, sizeof(ip), "%s", r->cfg->addr_text);
            char *colon = strrchr(ip, ':');
            if (colon != NULL)
                *colon = '\0';
            name = ip[0] == '[' ? ip + 1 : ip;
            char *br = strchr(ip, ']');
            if (br != NULL)
                *br = '\0';
        }
        if (val_check_hostname(ders[0], lens[0], name) != CAT_OK)
            errors |= VAL_E_HOSTNAME;
    }
    free(v);
    if (errors == 0)
        return CAT_OK;
    char errs[160];
    snprintf(why, cap, "its certificate is refused: %s", val_errors_str(errors, errs, sizeof(errs)));
    return CAT_ERR;
}

/* ---- the CONNECT exchange -------------------------------------------------------- */

/*
 * Entered with the upstream connected (and its TLS up for type https).
 * Sends CONNECT host:port and reads the answer. Exits: those of a direct
 * connect (conn_established), RESPOND (the upstream refused: a page naming
 * it and its answer).
 */
int
fwd_st_chain(struct conn *c, unsigned ev)
{
    const struct chain_host *r = c->route;
    const struct cfg *cfg = c->cfg;
    if (ev & CONN_EV_TIMER) {
        c->txn.action = "TCP_ERR_MISS";
        c->err = CONN_ERR_TIMEOUT;
        return conn_respond_error(c, 504, "gateway_timeout",
                                  "The upstream proxy %s did not answer in time", r->cfg->name);
    }
    if (c->srv.in.base == NULL) {
        size_t cap = CAT_MAX(cfg->limits.buffer_size, cfg->limits.max_head_size);
        if (buf_reserve(&c->srv.in, cap) != CAT_OK || buf_reserve(&c->srv.out, 4096) != CAT_OK ||
            fwd_connect_request(c, &c->srv.out) != CAT_OK) {
            c->err = CONN_ERR_NOMEM;
            return CAT_ERR;
        }
        conn_timer_once(c, cfg->forwarding.connect_ms + cfg->timeouts.connect_ms);
    }
    while (c->srv.out.len > 0) {
        ssize_t n = conn_side_write(&c->srv, buf_data(&c->srv.out), c->srv.out.len);
        if (n == CAT_AGAIN) {
            conn_side_want(c, &c->srv, EV_WRITE);
            return CAT_AGAIN;
        }
        if (n < 0)
            goto broken;
        buf_consume(&c->srv.out, (size_t)n);
    }
    const struct http_limits lim = {cfg->limits.max_head_size, cfg->limits.max_headers};
    for (int pass = 0; pass < 64; pass++) {
        if (c->srv.in.len > 0) {
            struct http_head h;
            int rc = http_parse_response((const char *)buf_data(&c->srv.in), c->srv.in.len, &lim,
                                         HTTP_M_CONNECT, &h);
            if (rc == CAT_ERR)
                goto broken;
            if (rc == CAT_OK) {
                buf_consume(&c->srv.in, h.head_len);
                conn_side_want(c, &c->srv, 0);
                ev_timer_stop(c->w->loop, &c->timer);
                if (h.status >= 200 && h.status < 300) {
                    buf_free(&c->srv.out);
                    if (c->srv.in.len == 0)
                        buf_free(&c->srv.in);
                    return conn_established(c);
                }
                c->txn.action = "TCP_ERR_MISS";
                c->err = CONN_ERR_CONNECT;
                log_warn(LOG_FAC_MAIN, c, "upstream %s refused CONNECT: %d %.*s", r->cfg->name,
                         h.status, (int)CAT_MIN(h.reason.len, 100), h.reason.p);
                return conn_respond_error(
                    c, 502, h.status == 407 ? "upstream_authentication" : "upstream_error",
                    "The upstream proxy %s (%s) answered: %d %.*s", r->cfg->name,
                    r->cfg->addr_text, h.status, (int)CAT_MIN(h.reason.len, 100), h.reason.p);
            }
        }
        ssize_t n = conn_side_read(&c->srv, &c->srv.in);
        if (n > 0)
            continue;
        if (n == CAT_AGAIN) {
            conn_side_want(c, &c->srv, EV_READ);
            return CAT_AGAIN;
        }
        goto broken;
    }
broken:
    c->txn.action = "TCP_ERR_MISS";
    c->err = CONN_ERR_BAD_RESPONSE;
    log_warn(LOG_FAC_MAIN, c, "upstream %s: no valid answer to CONNECT", r->cfg->name);
    return conn_respond_error(c, 502, "upstream_error",
                              "The upstream proxy %s (%s) gave no valid answer", r->cfg->name,
                              r->cfg->addr_text);
}
