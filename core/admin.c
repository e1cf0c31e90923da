/*
 * Local pages: status, metrics and the CA download with install steps.
 * Bodies are built in a bounded buffer (ADMIN_MAX); every value that could
 * carry text from outside (host names in the pinned list) is escaped for
 * the format it lands in.
 */
#include "core/admin.h"

#include "core/conn.h"
#include "core/page.h"
#include "core/pin.h"
#include "core/tls.h"
#include "core/version.h"
#include "core/worker.h"
#include "emulation/emu.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define ADMIN_MAX (256 * 1024)

static time_t admin_started;

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
    admin_add(b, "%s]\n}\n", n ? "\n  " : "");
    free(sites);
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
    } else {
        status = 404;
        type = "text/plain";
        admin_add(&b, "not found\n");
    }
    int rc = admin_send(c, status, type, b.p, b.len);
    free(b.p);
    return rc;
}
