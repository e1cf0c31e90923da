/*
 * Local pages: status, metrics and the CA download with install steps.
 * Bodies are built in a bounded buffer (ADMIN_MAX); every value that could
 * carry text from outside (host names in the pinned list) is escaped for
 * the format it lands in.
 */
#include "core/admin.h"

#include "core/conn.h"
#include "core/page.h"
#include "chain/chain.h"
#include "core/forward.h"
#include "core/pin.h"
#include "core/bundle.h"
#include "core/policy.h"
#include "core/tls.h"
#include "core/version.h"
#include "core/worker.h"
#include "emulation/emu.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ADMIN_MAX (256 * 1024)

static time_t admin_started;

/* Decisions, by s-action, for /status and /metrics. */
static const char *const admin_actions[] = {
    "TCP_TUNNELED", "TCP_INTERCEPTED", "TCP_MISS", "TCP_DENIED", "TCP_ERR_MISS", "TCP_ERR",
    "TCP_HIT", "TUNNELED", "INTERCEPTED", "EXCEPTION", "DENIED",
};
static atomic_ulong admin_counts[CAT_ARRAY_LEN(admin_actions)];

void
admin_count(const char *action)
{
    if (action == NULL)
        return;
    for (size_t i = 0; i < CAT_ARRAY_LEN(admin_actions); i++)
        if (strcmp(action, admin_actions[i]) == 0) {
            atomic_fetch_add_explicit(&admin_counts[i], 1, memory_order_relaxed);
            return;
        }
}

void
admin_init(void)
{
    admin_started = time(NULL);
}

/* A growing text body, bounded by ADMIN_MAX. */
struct admin_body {
    char *p;
    size_t len, cap;
    bool full;
};

static void CAT_PRINTF(2, 3)
admin_add(struct admin_body *b, const char *fmt, ...)
{
    if (b->full || b->len >= b->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->cap - b->len)
        b->full = true;
    else
        b->len += (size_t)n;
}

/* Host names in JSON: validated names never need escaping; be safe anyway. */
static void
admin_json_str(struct admin_body *b, const char *s)
{
    admin_add(b, "\"");
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            admin_add(b, "\\%c", ch);
        else if (ch < 0x20)
            admin_add(b, "\\u%04x", ch);
        else
            admin_add(b, "%c", ch);
    }
    admin_add(b, "\"");
}

static void
admin_status(struct admin_body *b, const struct conn *c)
{
    const struct tls_conf *t = c->tls;
    admin_add(b, "{\n  \"node\": ");
    admin_json_str(b, c->cfg->node_name);
    admin_add(b, ",\n  \"version\": \"%s\",\n  \"uptime_seconds\": %lld,\n", CATENA_VERSION,
              (long long)(time(NULL) - admin_started));
    admin_add(b, "  \"workers\": %u,\n  \"connections\": %u,\n", c->cfg->workers,
              atomic_load(&worker_conn_count));
    struct pol *p = pol_current();
    admin_add(b, "  \"bundle\": {\"digest\": \"%s\", \"version\": %llu},\n", p->digest,
              (unsigned long long)p->version);
    pol_unref(p);
    admin_add(b, "  \"decisions\": {");
    for (size_t i = 0; i < CAT_ARRAY_LEN(admin_actions); i++)
        admin_add(b, "%s\"%s\": %lu", i ? ", " : "", admin_actions[i],
                  atomic_load(&admin_counts[i]));
    admin_add(b, "},\n");
    admin_add(b, "  \"emulation\": {");
    for (size_t i = 0; i < t->n_keyrings; i++) {
        struct emu_stats s;
        emu_get_stats(t->keyrings[i], &s);
        admin_add(b, "%s\n    ", i ? "," : "");
        admin_json_str(b, t->keyring_names[i]);
        admin_add(b,
                  ": {\"created\": %lu, \"hits\": %lu, \"waited\": %lu, \"evicted\": %lu, "
                  "\"entries\": %lu}",
                  s.created, s.hits, s.waited, s.evicted, s.entries);
    }
    admin_add(b, "%s},\n  \"pinned_sites\": [", t->n_keyrings ? "\n  " : "");
    struct pin_site *sites = malloc(PIN_MAX_SITES * sizeof(*sites));
    size_t n = sites != NULL ? pin_list(sites, PIN_MAX_SITES) : 0;
    for (size_t i = 0; i < n; i++) {
        admin_add(b, "%s\n    {\"host\": ", i ? "," : "");
        admin_json_str(b, sites[i].host);
        admin_add(b, ", \"until\": %lld, \"reason\": \"%s\"}", (long long)sites[i].tunnel_until,
                  sites[i].client_cert ? "client_certificate" : "pinned");
    }
    admin_add(b, "%s],\n", n ? "\n  " : "");
    free(sites);
    /* Chains: this node's upstreams, and the downstream tiers seen. */
    char *j = malloc(65536);
    if (j != NULL) {
        chain_status_json(t->chain, j, 65536);
        admin_add(b, "  \"upstreams\": %s,\n", j);
        fwd_tiers_json(j, 65536);
        admin_add(b, "  \"tiers\": %s,\n  \"tier_mismatches\": %lu\n", j,
                  fwd_tier_mismatches());
        free(j);
    }
    admin_add(b, "}\n");
}

static void
admin_metrics(struct admin_body *b, const struct conn *c)
{
    const struct tls_conf *t = c->tls;
    admin_add(b, "# HELP catena_connections Client connections open now.\n"
                 "# TYPE catena_connections gauge\ncatena_connections %u\n",
              atomic_load(&worker_conn_count));
    admin_add(b, "# HELP catena_uptime_seconds Seconds since start.\n"
                 "# TYPE catena_uptime_seconds gauge\ncatena_uptime_seconds %lld\n",
              (long long)(time(NULL) - admin_started));
    admin_add(b, "# HELP catena_emulated_certificates_total Emulated certificates signed.\n"
                 "# TYPE catena_emulated_certificates_total counter\n");
    for (size_t i = 0; i < t->n_keyrings; i++) {
        struct emu_stats s;
        emu_get_stats(t->keyrings[i], &s);
        admin_add(b, "catena_emulated_certificates_total{keyring=\"%s\"} %lu\n",
                  t->keyring_names[i], s.created);
        admin_add(b, "catena_emulated_certificate_cache_hits_total{keyring=\"%s\"} %lu\n",
                  t->keyring_names[i], s.hits);
    }
    char up[8192];
    if (chain_metrics(t->chain, up, sizeof(up)) > 0)
        admin_add(b, "%s", up);
}

static void
admin_metrics_decisions(struct admin_body *b)
{
    admin_add(b, "# HELP catena_tier_mismatches_total Requests from downstream tiers running "
                 "another bundle.\n# TYPE catena_tier_mismatches_total counter\n"
                 "catena_tier_mismatches_total %lu\n",
              fwd_tier_mismatches());
    admin_add(b, "# HELP catena_decisions_total Transactions and TLS connections by action.\n"
                 "# TYPE catena_decisions_total counter\n");
    for (size_t i = 0; i < CAT_ARRAY_LEN(admin_actions); i++)
        admin_add(b, "catena_decisions_total{action=\"%s\"} %lu\n", admin_actions[i],
                  atomic_load(&admin_counts[i]));
    struct pol *p = pol_current();
    admin_add(b, "# HELP catena_bundle_version The policy bundle in force.\n"
                 "# TYPE catena_bundle_version gauge\n"
                 "catena_bundle_version{digest=\"%s\"} %llu\n",
              p->digest, (unsigned long long)p->version);
    pol_unref(p);
}

static void
admin_install_page(struct admin_body *b, const struct conn *c)
{
    char node[600] = "";
    page_escape(node, sizeof(node), c->cfg->node_name);
    admin_add(b,
              "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
              "<title>Install the catena root certificate</title></head>\n<body>\n"
              "<h1>Install the root certificate of this proxy</h1>\n"
              "<p>This network inspects TLS connections through the proxy <code>%s</code>. "
              "Your device must trust its root certificate:</p>\n"
              "<p><a href=\"/ca.der\">Download for Windows and macOS (DER)</a> &middot; "
              "<a href=\"/ca.pem\">Download as PEM (Linux, Firefox)</a></p>\n<ul>\n"
              "<li><b>Windows</b>: open the downloaded file, choose <i>Install Certificate</i>, "
              "<i>Local Machine</i>, and place it in <i>Trusted Root Certification "
              "Authorities</i>.</li>\n"
              "<li><b>macOS</b>: open the file in Keychain Access (System keychain), then set "
              "<i>When using this certificate</i> to <i>Always Trust</i>.</li>\n"
              "<li><b>Firefox</b>: Settings, Privacy &amp; Security, Certificates, "
              "<i>View Certificates</i>, Authorities, <i>Import</i>, and tick "
              "<i>Trust this CA to identify websites</i>.</li>\n"
              "<li><b>Linux</b> (Debian, Ubuntu): copy the PEM file to "
              "<code>/usr/local/share/ca-certificates/catena.crt</code> and run "
              "<code>update-ca-certificates</code>.</li>\n</ul>\n"
              "</body></html>\n",
              node);
}

/* The DER of the root at the top of the default keyring's chain. */
static const uint8_t *
admin_root_der(struct emu *e, size_t *len)
{
    const uint8_t *last = NULL;
    for (size_t i = 0; i < 16; i++) {
        size_t l;
        const uint8_t *d = emu_chain_der(e, i, &l);
        if (d == NULL)
            break;
        last = d;
        *len = l;
    }
    return last;
}

static int
admin_send(struct conn *c, int status, const char *type, const void *body, size_t len)
{
    struct buf *out = &c->cli.out;
    buf_free(out);
    if (buf_reserve(out, len + 512) != CAT_OK ||
        buf_printf(out,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                   "Cache-Control: no-store\r\nServer: catena/%s\r\nConnection: close\r\n\r\n",
                   status, http_reason(status), type, len, CATENA_VERSION) != CAT_OK ||
        (c->txn.method != HTTP_M_HEAD && buf_append(out, body, len) != CAT_OK)) {
        c->err = CONN_ERR_NOMEM;
        return CAT_ERR;
    }
    c->txn.status = status;
    return CAT_OK;
}

/* /crl/<keyring>.crl: the keyring's empty CRL, for emulated certificates' CDP. */
static int
admin_crl(struct conn *c, const char *file)
{
    const struct tls_conf *t = c->tls;
    size_t n = strlen(file);
    for (size_t i = 0; i < t->n_keyrings; i++) {
        const char *name = t->keyring_names[i];
        size_t nl = strlen(name);
        if (n != nl + 4 || strncmp(file, name, nl) != 0 || strcmp(file + nl, ".crl") != 0)
            continue;
        uint8_t *der;
        size_t len;
        char err[200];
        if (emu_crl_get(t->keyrings[i], &der, &len, NULL, err, sizeof(err)) != CAT_OK) {
            log_err(LOG_FAC_SSL, c, "CRL of keyring %s: %s", name, err);
            return admin_send(c, 503, "text/plain", "no CRL\n", 7);
        }
        int rc = admin_send(c, 200, "application/pkix-crl", der, len);
        free(der);
        return rc;
    }
    return admin_send(c, 404, "text/plain", "not found\n", 10);
}

/* GET /bundle: the bundle in force, for downstream nodes that pull it. */
static int
admin_get_bundle(struct conn *c)
{
    struct pol *p = pol_current();
    int rc;
    if (p->bundle == NULL) {
        rc = admin_send(c, 404, "text/plain", "no bundle\n", 10);
    } else {
        size_t len;
        const uint8_t *raw = bdl_raw(p->bundle, &len);
        rc = admin_send(c, 200, "application/octet-stream", raw, len);
    }
    pol_unref(p);
    return rc;
}

/* ---- writes ------------------------------------------------------------------ */

/* The bearer token from admin.token_file; false if none can be read. */
static bool
admin_token(const struct cfg *cfg, char *out, size_t cap)
{
    if (cfg->admin_token_file == NULL)
        return false;
    int fd = open(cfg->admin_token_file, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        log_warn(LOG_FAC_MAIN, NULL, "admin.token_file %s: %s", cfg->admin_token_file,
                 strerror(errno));
        return false;
    }
    struct stat st;
    ssize_t n = fstat(fd, &st) == 0 && (st.st_mode & 077) == 0 ? read(fd, out, cap - 1) : -1;
    close(fd);
    if (n <= 0) {
        log_warn(LOG_FAC_MAIN, NULL, "admin.token_file %s: unreadable, empty, or readable by "
                                     "others (it must be 0600)",
                 cfg->admin_token_file);
        return false;
    }
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
        n--;
    out[n] = '\0';
    return n >= 16; /* a guessable token is no token */
}

static bool
admin_authorized(const struct conn *c, const struct http_head *h)
{
    char want[512];
    const struct http_hdr *a = http_find(h, "Authorization");
    if (a == NULL || a->value.len < 8 || strncasecmp(a->value.p, "Bearer ", 7) != 0 ||
        !admin_token(c->cfg, want, sizeof(want)))
        return false;
    size_t wl = strlen(want), gl = a->value.len - 7;
    const char *got = a->value.p + 7;
    /* Constant time in the token's bytes: no timing oracle. */
    unsigned diff = wl != gl;
    for (size_t i = 0; i < wl; i++)
        diff |= (unsigned char)want[i] ^ (unsigned char)(i < gl ? got[i] : 0);
    memset(want, 0, sizeof(want));
    return diff == 0;
}

static int
admin_done(struct conn *c, int status, const char *fmt, ...) CAT_PRINTF(3, 4);

/* Answers an admin write with a short text body, then closes. */
static int
admin_done(struct conn *c, int status, const char *fmt, ...)
{
    char body[600];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(body, sizeof(body) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    n = (int)CAT_MIN((size_t)n, sizeof(body) - 2);
    body[n++] = '\n';
    c->txn.action = status < 300 ? "TCP_HIT" : "TCP_DENIED";
    if (admin_send(c, status, "text/plain", body, (size_t)n) != CAT_OK)
        return CAT_ERR;
    c->flags |= CONN_F_CLOSE_AFTER;
    c->after_respond = CONN_ST_LINGER;
    conn_set_state(c, CONN_ST_RESPOND);
    return CAT_OK;
}

int
admin_write_request(struct conn *c, const struct http_head *h, const char *path)
{
    if (!admin_authorized(c, h)) {
        log_notice(LOG_FAC_MAIN, c, LOG_EVT_DENIED " admin %s %s without a valid token",
                   c->txn.method_str, path);
        return admin_done(c, 401, "a valid bearer token (admin.token_file) is required");
    }
    if (h->method == HTTP_M_POST && strcmp(path, "/reload") == 0) {
        log_notice(LOG_FAC_MAIN, c, "admin: reload requested");
        kill(getpid(), SIGHUP); /* the main thread reloads, as for an operator's SIGHUP */
        return admin_done(c, 202, "reload requested");
    }
    if (h->method != HTTP_M_PUT || strcmp(path, "/bundle") != 0)
        return admin_done(c, 404, "no such admin action");
    if (h->framing != HTTP_BODY_LENGTH || h->content_length == 0)
        return admin_done(c, 411, "a bundle is sent with a Content-Length");
    if (h->content_length > (64u << 20) + 65536)
        return admin_done(c, 413, "a bundle is at most 64 MiB");
    if (buf_reserve(&c->body, (size_t)h->content_length) != CAT_OK) {
        c->err = CONN_ERR_NOMEM;
        return CAT_ERR;
    }
    conn_timer_once(c, c->cfg->timeouts.idle_ms);
    conn_set_state(c, CONN_ST_ADMIN_BODY);
    return CAT_OK;
}

/* Verifies, compiles, installs and stores a pushed bundle. */
static int
admin_put_bundle(struct conn *c)
{
    char err[512];
    struct pol *cur = pol_current();
    uint64_t running = cur->version;
    pol_unref(cur);
    struct pol *p = pol_from_bundle(buf_data(&c->body), c->body.len, c->cfg, running, err,
                                    sizeof(err));
    buf_free(&c->body);
    if (p == NULL) {
        log_warn(LOG_FAC_MAIN, c, "bundle refused: %s; the running policy stays", err);
        return admin_done(c, 422, "bundle refused: %s", err);
    }
    char serr[300];
    if (pol_store(c->cfg, p, serr, sizeof(serr)) != CAT_OK)
        log_warn(LOG_FAC_MAIN, c, "pushed bundle not stored: %s", serr);
    char digest[sizeof(p->digest)];
    snprintf(digest, sizeof(digest), "%s", p->digest);
    unsigned long long version = (unsigned long long)p->version;
    pol_install(p, "push");
    return admin_done(c, 200, "installed %s version %llu", digest, version);
}

int
admin_st_body(struct conn *c, unsigned ev)
{
    if (ev & CONN_EV_TIMER) {
        c->err = CONN_ERR_TIMEOUT;
        return CAT_ERR;
    }
    /* Bytes already read behind the head come first. */
    if (c->cli.in.len > 0) {
        size_t n = CAT_MIN(c->cli.in.len, c->body.cap - c->body.len);
        memcpy(c->body.base + c->body.len, buf_data(&c->cli.in), n);
        c->body.len += n;
        buf_consume(&c->cli.in, n);
    }
    while (c->body.len < c->body.cap) {
        size_t before = c->body.len;
        int rc = conn_cli_read_more(c, &c->body);
        if (rc != CAT_OK)
            return rc;
        c->cli.bytes_in += (int64_t)(c->body.len - before);
    }
    conn_side_want(c, &c->cli, 0);
    ev_timer_stop(c->w->loop, &c->timer);
    return admin_put_bundle(c);
}

int
admin_respond(struct conn *c, const char *path, bool full)
{
    c->txn.action = "TCP_HIT";
    struct emu *e = tls_keyring(c->tls, NULL);
    if (strcmp(path, "/ca.pem") == 0 || strcmp(path, "/ca.der") == 0) {
        if (e == NULL)
            return admin_send(c, 404, "text/plain", "no CA keyring is loaded\n", 24);
        if (strcmp(path, "/ca.pem") == 0) {
            const char *pem = emu_root_pem(e);
            return admin_send(c, 200, "application/x-pem-file", pem, strlen(pem));
        }
        size_t len = 0;
        const uint8_t *der = admin_root_der(e, &len);
        return admin_send(c, 200, "application/x-x509-ca-cert", der, len);
    }
    if (strncmp(path, "/crl/", 5) == 0)
        return admin_crl(c, path + 5);
    struct admin_body b = {.cap = ADMIN_MAX};
    const char *type = "text/html; charset=utf-8";
    b.p = malloc(b.cap);
    if (b.p == NULL) {
        c->err = CONN_ERR_NOMEM;
        return CAT_ERR;
    }
    int status = 200;
    if (strcmp(path, "/") == 0 || strcmp(path, "/ca") == 0) {
        admin_install_page(&b, c);
    } else if (full && strcmp(path, "/status") == 0) {
        type = "application/json";
        admin_status(&b, c);
    } else if (full && strcmp(path, "/metrics") == 0) {
        type = "text/plain; version=0.0.4";
        admin_metrics(&b, c);
        admin_metrics_decisions(&b);
    } else if (full && strcmp(path, "/bundle") == 0) {
        free(b.p);
        return admin_get_bundle(c);
    } else {
        status = 404;
        type = "text/plain";
        admin_add(&b, "not found\n");
    }
    int rc = admin_send(c, status, type, b.p, b.len);
    free(b.p);
    return rc;
}
