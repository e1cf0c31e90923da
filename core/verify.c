/*
 * Certificate verdicts for connections.
 *
 *   tunneled site:    PEEK_HELLO -> PROBE -> VALIDATE -> TUNNEL, or exception
 *   intercepted site: SRV_TLS -> VALIDATE -> EMULATE, or exception
 *
 * An exception means catena intercepts the connection only to answer an
 * exception page: it never presents an emulated certificate for a server
 * whose certificate failed except to show that page (whose certificate is
 * made for the requested name from catena's own issuer). Errors the policy
 * ignores do not count; the SSL log keeps every error observed. A user may
 * continue past the errors the configuration allows (override.c).
 *
 * Revocation: revoke.c asks the certificate's sources (cached); when none
 * answers, a staple fetch asks the origin for its stapled OCSP response
 * (probe.c, staple.c), which settles it if it verifies.
 */
#include "core/verify.h"

#include "chain/chain.h"

#include "core/aia.h"
#include "core/conn.h"
#include "core/fetch.h"
#include "core/forward.h"
#include "core/intercept.h"
#include "core/msg.h"
#include "core/override.h"
#include "core/page.h"
#include "core/pin.h"
#include "core/policy.h"
#include "core/probe.h"
#include "core/revoke.h"
#include "core/tls.h"
#include "core/validate.h"
#include "core/worker.h"
#include "emulation/emu.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* wolfSSL's codes for an origin whose TLS is too old or offers no suite we allow. */
#define VERIFY_VERSION_ERROR (-326)
#define VERIFY_MATCH_SUITE_ERROR (-501)

static struct conn_cert *
verify_cert(struct conn *c)
{
    if (c->cert == NULL && (c->cert = calloc(1, sizeof(*c->cert))) != NULL)
        c->cert->issuer_idx = -1;
    return c->cert;
}

static void
verify_chain_free(struct conn_cert *cc)
{
    for (size_t i = 0; i < cc->n; i++)
        free(cc->der[i]);
    cc->n = 0;
}

void
verify_free(struct conn *c)
{
    struct conn_cert *cc = c->cert;
    if (cc == NULL)
        return;
    probe_cancel(cc->probe);
    rev_cancel(cc->revq);
    fetch_cancel(cc->aiaq);
    verify_chain_free(cc);
    free(cc);
    c->cert = NULL;
}

static int
verify_copy_chain(struct conn_cert *cc, const uint8_t *const *ders, const size_t *lens, size_t n)
{
    verify_chain_free(cc);
    for (size_t i = 0; i < n && i < CONN_MAX_CHAIN; i++) {
        cc->der[i] = malloc(lens[i]);
        if (cc->der[i] == NULL)
            return CAT_ERR;
        memcpy(cc->der[i], ders[i], lens[i]);
        cc->len[i] = lens[i];
        cc->n++;
    }
    return CAT_OK;
}

int
verify_take_chain(struct conn *c)
{
    struct conn_cert *cc = verify_cert(c);
    if (cc == NULL)
        return CAT_ERR;
    /* A new origin connection: a fresh verdict (the cache keeps it cheap). */
    rev_cancel(cc->revq);
    cc->revq = NULL;
    probe_cancel(cc->probe); /* a staple fetch of the last one */
    cc->probe = NULL;
    cc->checked = cc->rev_done = cc->from_probe = false;
    cc->errors = cc->final = 0;
    cc->issuer_idx = -1;
    cc->issuer_anchor = NULL;
    const uint8_t *ders[CONN_MAX_CHAIN];
    size_t lens[CONN_MAX_CHAIN], n = 0;
    WOLFSSL_X509_CHAIN *chain = wolfSSL_get_peer_chain(c->srv.ssl);
    int count = chain != NULL ? wolfSSL_get_chain_count(chain) : 0;
    for (int i = 0; i < count && n < CONN_MAX_CHAIN; i++) {
        ders[n] = wolfSSL_get_chain_cert(chain, i);
        lens[n] = (size_t)wolfSSL_get_chain_length(chain, i);
        if (ders[n] != NULL && lens[n] > 0)
            n++;
    }
    return verify_copy_chain(cc, ders, lens, n);
}

/* ---- exceptions ---------------------------------------------------------------- */

struct verify_exc {
    unsigned bits;
    int status;
    const char *id;
    const char *reason;
};

/* In order of precedence: the first that matches names the exception. */
static const struct verify_exc verify_excs[] = {
    {VAL_E_REVOKED, 503, "ssl_server_cert_revoked",
     "The server's certificate has been revoked by its issuer."},
    {VAL_E_UNTRUSTED | VAL_E_MISSING_INTERMEDIATE, 503, "ssl_server_cert_untrusted_issuer",
     "The server's certificate was not issued by a trusted certificate authority."},
    {VAL_E_PROTOCOL, 503, "ssl_server_protocol_insecure",
     "The server only offers an outdated, insecure TLS version or cipher."},
    {VAL_E_WEAK_KEY | VAL_E_WEAK_SIGNATURE | VAL_E_BAD_CA | VAL_E_BAD_EKU, 503,
     "ssl_server_cert_invalid",
     "The server's certificate is not acceptable (a weak key or signature, or a certificate "
     "not meant for this use)."},
    {VAL_E_REVOCATION_UNKNOWN, 503, "ssl_server_cert_revocation_unknown",
     "Whether the server's certificate was revoked could not be checked."},
    {VAL_E_EXPIRED | VAL_E_NOT_YET_VALID, 503, "ssl_server_cert_expired",
     "The server's certificate has expired or is not yet valid."},
    {VAL_E_HOSTNAME, 409, "ssl_domain_invalid",
     "The server's certificate is not valid for the requested name."},
};

static const struct verify_exc *
verify_exception_of(unsigned errors)
{
    for (size_t i = 0; i < CAT_ARRAY_LEN(verify_excs); i++)
        if (errors & verify_excs[i].bits)
            return &verify_excs[i];
    return &verify_excs[1];
}

/* Errors ignored for this site: the <ssl> layers' word, plus the node
 * config's validation.ignore. */
static unsigned
verify_ignored(struct conn *c)
{
    const struct cfg_validation *v = &c->cfg->validation;
    struct cpl_txn t;
    conn_cpl_txn(c, &t, NULL);
    t.client_protocol = "ssl";
    t.url_scheme = "https";
    t.url_host = c->tls_host;
    t.url_port = c->tls_port;
    t.cert_hostname = c->tlog != NULL && c->tlog->cert_hostname[0] != '\0'
                          ? c->tlog->cert_hostname
                          : c->tls_host;
    pol_eval(c->pol, CPL_L_SSL, &t, &c->pd);
    if (c->pd.validate == CPL_NO || (c->pd.validate == CPL_UNSET && !v->enabled))
        return VAL_E_ALL;
    unsigned bits = c->pd.ignore;
    for (size_t i = 0; i < v->n_ignore; i++)
        if (cfg_hostlist_match(&v->ignore[i].hosts, c->tls_host))
            bits |= v->ignore[i].errors;
    return bits;
}

/* May the user continue past these errors? */
static bool
verify_overridable(const struct conn *c, unsigned final)
{
    return final != 0 && (final & ~c->cfg->validation.override) == 0;
}

static void
verify_log_exception(struct conn *c, const struct verify_exc *x)
{
    char errs[160];
    val_errors_str(c->cert->final, errs, sizeof(errs));
    log_warn(LOG_FAC_SSL, c, "certificate of %s refused: %s (%s)", c->tls_host, errs, x->id);
    if (c->tlog != NULL)
        c->tlog->action = "EXCEPTION";
}

/* Decides once the chain (and revocation) are known. Exits: TUNNEL, EMULATE,
 * EXCHANGE, or RESPOND (an exception page for a request in flight). */
static int
verify_decide(struct conn *c)
{
    struct conn_cert *cc = c->cert;
    /* A policy that asks about the certificate decides only now. */
    if (cc->from_probe && !c->ssl_decided && intercept_decide(c) != CAT_DECLINED)
        return CAT_OK;
    cc->final = cc->errors & ~verify_ignored(c);
    if (c->tlog != NULL) {
        val_errors_str(cc->errors, c->tlog->cert_errors, sizeof(c->tlog->cert_errors));
        c->tlog->cert_status = cc->final == 0 ? "CERT_VALID" : verify_exception_of(cc->final)->id;
    }
    ev_timer_stop(c->w->loop, &c->timer);
    if (cc->errors != cc->final)
        log_info(LOG_FAC_SSL, c, "certificate errors of %s ignored by policy", c->tls_host);
    if (cc->from_probe && cc->upstream_intercepted && fwd_inspect(c) != CFG_INSPECT_CORE) {
        /* The upstream intercepts this site: tunneled through here, the user
         * would get the upstream's certificates (and pages), which only this
         * tier's issuer makes trustworthy. Intercept here too. */
        log_info(LOG_FAC_SSL, c, "%s: the upstream %s intercepts; intercepting here too",
                 c->tls_host, c->route->cfg->name);
        return intercept_now(c);
    }
    if (cc->final == 0) {
        if (cc->from_probe) {
            conn_set_state(c, CONN_ST_TUNNEL);
        } else if (c->flags & CONN_F_INTERCEPTED) {
            msg_exchange_start(c, false);
            conn_set_state(c, CONN_ST_EXCHANGE);
        } else {
            conn_set_state(c, CONN_ST_EMULATE);
        }
        return CAT_OK;
    }
    const struct verify_exc *x = verify_exception_of(cc->final);
    cc->status = x->status;
    cc->exception = x->id;
    if (c->flags & CONN_F_INTERCEPTED) {
        /* A new origin connection under a client already talking to us. */
        if ((c->flags & CONN_F_OVERRIDDEN) && verify_overridable(c, cc->final)) {
            msg_exchange_start(c, false);
            conn_set_state(c, CONN_ST_EXCHANGE);
            return CAT_OK;
        }
        verify_log_exception(c, x);
        c->flags |= CONN_F_EXCEPTION;
        c->txn.action = "TCP_DENIED";
        return conn_respond_error(c, x->status, x->id, "%s", x->reason);
    }
    verify_log_exception(c, x);
    c->flags |= CONN_F_EXCEPTION;
    if (cc->from_probe) {
        /* The origin's own TLS is not needed for a page; an override
         * reconnects. The ClientHello goes to our handshake. */
        conn_srv_close(c);
        buf_free(&c->cli.replay);
        c->cli.replay = c->cli.in;
        memset(&c->cli.in, 0, sizeof(c->cli.in));
    }
    conn_set_state(c, CONN_ST_EMULATE);
    return CAT_OK;
}

void
verify_protocol_exception(struct conn *c)
{
    struct conn_cert *cc = verify_cert(c);
    if (cc == NULL)
        return;
    cc->errors = VAL_E_PROTOCOL;
    cc->checked = cc->rev_done = true;
}

/* ---- probe ------------------------------------------------------------------------- */

static void
verify_probe_key(const struct conn *c, char *key, size_t cap)
{
    /* The route is part of the site: a verdict reached with one upstream's
     * scoped trust must never be reused on another route. */
    snprintf(key, cap, "%s:%u@%s/%s", c->tls_host, c->tls_port, c->srv_ip,
             c->route != NULL ? c->route->cfg->name : "direct");
}

static bool
verify_is_protocol_failure(const struct probe_result *r)
{
    return r->tls_error == VERIFY_VERSION_ERROR || r->tls_error == VERIFY_MATCH_SUITE_ERROR ||
           r->alert_rx == protocol_version || r->alert_rx == handshake_failure ||
           r->alert_rx == insufficient_security;
}

static void
verify_probe_cb(void *arg, const struct probe_result *r)
{
    struct conn *c = arg;
    struct conn_cert *cc = c->cert;
    cc->probe = NULL;
    struct probe_verdict v = {0};
    char key[400];
    verify_probe_key(c, key, sizeof(key));
    if (r->client_cert_requested) {
        v.client_cert = true;
        cc->n = 0;
    } else if (r->err != NULL) {
        if (verify_is_protocol_failure(r)) {
            log_info(LOG_FAC_SSL, c, "probe of %s: %s", c->tls_host, r->err);
            verify_protocol_exception(c);
            v.errors = VAL_E_PROTOCOL;
        } else {
            /* Nothing learnt: the client will judge the certificate itself. */
            log_info(LOG_FAC_SSL, c, "probe of %s failed (%s): tunneled unchecked", c->tls_host,
                     r->err);
            cc->checked = cc->rev_done = true;
            conn_wake(c, 0);
            return;
        }
    } else if (verify_copy_chain(cc, r->ders, r->lens, r->n) != CAT_OK) {
        c->err = CONN_ERR_NOMEM;
        conn_close(c, CONN_ERR_NOMEM);
        return;
    }
    if (v.client_cert || v.errors)
        probe_cache_put(key, &v, c->cfg->validation.probe_ttl_ms,
                        c->cfg->validation.cache_entries);
    conn_wake(c, 0);
}

/*
 * A probe of the site at the address the origin connection reached, by the
 * route the connection takes: through the upstream as the tunnel itself goes
 * (over TLS to it for type https, judged as the tunnel's was). NULL with *why.
 */
static struct probe *
verify_probe_start(struct conn *c, probe_cb *cb, void *arg, enum conn_err *why)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);
    if (getpeername(c->srv.fd, (struct sockaddr *)&sa, &len) == -1) {
        *why = CONN_ERR_SRV_RESET;
        return NULL;
    }
    *why = CONN_ERR_NOMEM;
    bool ip = strchr(c->tls_host, ':') != NULL ||
              strspn(c->tls_host, "0123456789.") == strlen(c->tls_host);
    const char *sni = ip ? NULL : c->tls_host;
    unsigned tmo = c->cfg->validation.probe_timeout_ms;
    if (c->route == NULL)
        return probe_start(c->w->loop, c->tls->srv_ctx, (struct sockaddr *)&sa, len, sni, tmo,
                           cb, arg);
    uint8_t mem[4096];
    struct buf req = {.base = mem, .cap = sizeof(mem) - 1};
    if (fwd_connect_request(c, &req) != CAT_OK)
        return NULL;
    mem[req.len] = '\0';
    const struct cfg_fwd_host *up = c->route->cfg;
    if (up->type == CFG_FWD_HTTPS)
        return probe_start_via_tls(c->w->loop, c->tls->srv_ctx, (struct sockaddr *)&sa, len,
                                   (const char *)mem, up->tls_name, fwd_upstream_cert_check, c,
                                   sni, tmo, cb, arg);
    return probe_start_via(c->w->loop, c->tls->srv_ctx, (struct sockaddr *)&sa, len,
                           (const char *)mem, sni, tmo, cb, arg);
}

/*
 * Entered with the client's ClientHello in cli.in and the origin connected,
 * when the site is to be tunneled. Exits: VALIDATE (a chain or a cached
 * verdict), TUNNEL (the probe failed; a client-certificate site), closed.
 */
int
verify_st_probe(struct conn *c, unsigned ev)
{
    struct conn_cert *cc = verify_cert(c);
    if (cc == NULL) {
        c->err = CONN_ERR_NOMEM;
        return CAT_ERR;
    }
    if (cc->probe != NULL)
        return CAT_AGAIN; /* the probe has its own deadline */
    if (!cc->from_probe) {
        cc->from_probe = true;
        char key[400];
        verify_probe_key(c, key, sizeof(key));
        struct probe_verdict v;
        if (probe_cache_get(key, &v)) {
            if (v.client_cert) {
                conn_set_state(c, CONN_ST_TUNNEL);
                return CAT_OK;
            }
            cc->errors = v.errors;
            cc->upstream_intercepted = v.upstream_intercepted;
            cc->checked = cc->rev_done = true;
            if (c->tlog != NULL) {
                snprintf(c->tlog->cert_hostname, sizeof(c->tlog->cert_hostname), "%s", v.cn);
                snprintf(c->tlog->cert_issuer, sizeof(c->tlog->cert_issuer), "%s", v.issuer);
            }
            conn_set_state(c, CONN_ST_VALIDATE);
            return CAT_OK;
        }
        enum conn_err why;
        cc->probe = verify_probe_start(c, verify_probe_cb, c, &why);
        if (cc->probe == NULL) {
            c->err = why;
            return CAT_ERR;
        }
        conn_side_want(c, &c->cli, 0);
        return CAT_AGAIN;
    }
    /* The probe answered (verify_probe_cb). */
    if (cc->n == 0 && !cc->checked) {
        log_notice(LOG_FAC_SSL, c, "%s asks for a client certificate: tunneled from now on",
                   c->tls_host);
        pin_note_client_cert(&c->cfg->pinning, c->tls_host);
        conn_set_state(c, CONN_ST_TUNNEL);
        return CAT_OK;
    }
    if (cc->n == 0 && cc->errors == 0) {
        conn_set_state(c, CONN_ST_TUNNEL); /* the probe failed: unchecked */
        return CAT_OK;
    }
    conn_set_state(c, CONN_ST_VALIDATE);
    return CAT_OK;
}

/* ---- validate --------------------------------------------------------------------- */

static void
verify_apply_revocation(struct conn *c, const struct rev_answer *a)
{
    struct conn_cert *cc = c->cert;
    cc->rev_done = true;
    switch (a->status) {
    case REV_REVOKED:
        cc->errors |= VAL_E_REVOKED;
        log_warn(LOG_FAC_SSL, c, "certificate of %s is revoked: %s", c->tls_host, a->detail);
        break;
    case REV_UNKNOWN:
        if (strcmp(a->source, "none") == 0)
            break; /* the certificate names no revocation source */
        if (c->cfg->validation.revocation == CFG_REV_HARD)
            cc->errors |= VAL_E_REVOCATION_UNKNOWN;
        log_info(LOG_FAC_SSL, c, "revocation of %s unknown (%s): %s", c->tls_host,
                 c->cfg->validation.revocation == CFG_REV_HARD ? "hard fail" : "soft fail",
                 a->detail);
        break;
    case REV_GOOD:
        /* A staple answering for silent sources is worth an operator's eye. */
        log_at(LOG_FAC_SSL, strcmp(a->source, REV_SRC_STAPLE) == 0 ? LOG_INFO : LOG_DEBUG, c,
               "revocation of %s: good (%s)", c->tls_host, a->source);
        break;
    }
}

/* The leaf's issuer as validation found it: in the chain, or a trust anchor. */
static const uint8_t *
verify_issuer(const struct conn_cert *cc, size_t *len)
{
    *len = cc->issuer_idx > 0 ? cc->len[cc->issuer_idx] : cc->issuer_anchor_len;
    return cc->issuer_idx > 0 ? cc->der[cc->issuer_idx] : cc->issuer_anchor;
}

/* ---- stapled OCSP: asked of the origin when the sources say nothing -------------------- */

/* A staple fetch's callback argument, owned by the fetch (probe_own_arg). */
struct verify_staple {
    struct conn *c;            /* borrowed: the connection whose cc->probe this is */
    struct rev_answer unknown; /* the sources' answer, kept if the staple does not settle it */
};

static void
verify_staple_cb(void *arg, const struct probe_result *r)
{
    struct verify_staple *vs = arg;
    struct conn *c = vs->c;
    struct conn_cert *cc = c->cert;
    cc->probe = NULL;
    size_t ilen;
    const uint8_t *issuer = verify_issuer(cc, &ilen);
    struct rev_answer a;
    char why[160];
    int rc = rev_staple(cc->der[0], cc->len[0], issuer, ilen, r->staple, r->staple_len,
                        &vs->unknown, &a, why, sizeof(why));
    if (rc == CAT_ERR)
        log_info(LOG_FAC_SSL, c, "stapled OCSP response of %s ignored: %s", c->tls_host, why);
    else if (rc == CAT_DECLINED)
        log_debug(LOG_FAC_SSL, c, "no stapled OCSP response from %s%s%s", c->tls_host,
                  r->err != NULL ? ": " : "", r->err != NULL ? r->err : "");
    verify_apply_revocation(c, &a);
    conn_wake(c, 0);
}

/* May the origin's staple settle this answer? Only one that nothing else can. */
static bool
verify_staple_wanted(const struct conn *c, const struct rev_answer *a)
{
    return a->status == REV_UNKNOWN && !a->staple_tried && strcmp(a->source, "none") != 0 &&
           strcmp(a->source, "timeout") != 0 && c->tls->staple_ctx != NULL && c->srv.fd >= 0;
}

/* Starts a staple fetch, the sources' answer kept meanwhile. CAT_ERR: not started. */
static int
verify_staple_start(struct conn *c, const struct rev_answer *unknown)
{
    struct verify_staple *vs = calloc(1, sizeof(*vs));
    if (vs == NULL)
        return CAT_ERR;
    vs->c = c;
    vs->unknown = *unknown;
    enum conn_err why;
    struct probe *p = verify_probe_start(c, verify_staple_cb, vs, &why);
    if (p == NULL) {
        free(vs);
        return CAT_ERR;
    }
    probe_own_arg(p, free);
    if (probe_fetch_staple(p, c->tls->staple_ctx) != CAT_OK) {
        probe_cancel(p);
        return CAT_ERR;
    }
    c->cert->probe = p;
    log_debug(LOG_FAC_SSL, c, "revocation of %s: no source answered; asking the origin for "
              "its stapled OCSP response", c->tls_host);
    conn_timer_once(c, c->cfg->validation.probe_timeout_ms + 1000);
    return CAT_OK;
}

/* The sources' answer: taken, or held while the origin is asked for its staple. */
static void
verify_rev_answered(struct conn *c, const struct rev_answer *a)
{
    if (verify_staple_wanted(c, a) && verify_staple_start(c, a) == CAT_OK)
        return; /* verify_staple_cb decides */
    verify_apply_revocation(c, a);
}

static void
verify_rev_cb(void *arg, const struct rev_answer *a)
{
    struct conn *c = arg;
    c->cert->revq = NULL;
    verify_rev_answered(c, a);
    conn_wake(c, 0);
}

/* ---- missing intermediates (AIA caIssuers) ------------------------------------------ */

#define VERIFY_AIA_MAX 2 /* certificates fetched for one chain */

static void
verify_aia_cb(void *arg, const struct fetch_result *fr)
{
    struct conn *c = arg;
    struct conn_cert *cc = c->cert;
    cc->aiaq = NULL;
    uint8_t *der = NULL;
    size_t len = 0;
    const char *why = fr->err;
    if (why == NULL && aia_decode(fr->body, fr->len, &der, &len, &why) == CAT_OK) {
        log_info(LOG_FAC_SSL, c, "fetched the intermediate %s did not send, from %s (%zu bytes)",
                 c->tls_host, cc->aia_url, len);
    } else {
        log_info(LOG_FAC_SSL, c, "cannot fetch the intermediate %s did not send, from %s: %s",
                 c->tls_host, cc->aia_url, why);
        cc->aia_failed = true;
    }
    aia_cache_put(cc->aia_url, der, len);
    free(der);
    cc->checked = false; /* again, with what the cache now holds */
    conn_wake(c, 0);
}

/*
 * A chain that lacks an intermediate its last certificate names a caIssuers
 * URL for: add it from the cache (CAT_OK: check again), or start fetching
 * it (CAT_AGAIN: verify_aia_cb wakes the connection). CAT_DECLINED: nothing
 * to add (disabled, bounded, or fetched in vain).
 */
static int
verify_aia(struct conn *c, const struct val_result *r)
{
    struct conn_cert *cc = c->cert;
    if (!c->cfg->validation.aia_fetch || !(r->errors & VAL_E_MISSING_INTERMEDIATE) ||
        r->aia_url[0] == '\0' || cc->aia_failed || cc->aia_fetches >= VERIFY_AIA_MAX ||
        cc->n >= CONN_MAX_CHAIN)
        return CAT_DECLINED;
    uint8_t *der;
    size_t len;
    switch (aia_cache_get(r->aia_url, &der, &len)) {
    case AIA_HIT:
        cc->der[cc->n] = der;
        cc->len[cc->n] = len;
        cc->n++;
        cc->aia_fetches++;
        return CAT_OK;
    case AIA_FAILED:
        return CAT_DECLINED;
    case AIA_MISS:
        break;
    }
    snprintf(cc->aia_url, sizeof(cc->aia_url), "%s", r->aia_url);
    cc->aiaq = fetch_start(c->w->loop, c->w->res, cc->aia_url, "GET", NULL, NULL, 0,
                           AIA_MAX_RESPONSE, c->cfg->validation.revocation_timeout_ms,
                           verify_aia_cb, c);
    return cc->aiaq != NULL ? CAT_AGAIN : CAT_DECLINED;
}

/* Runs val_check on the chain and the checks only an interception can make.
 * With an AIA fetch started, returns leaving cc->checked false. */
static void
verify_check_chain(struct conn *c)
{
    struct conn_cert *cc = c->cert;
    struct val_result *r = calloc(1, sizeof(*r));
    cc->checked = true;
    /* Through an upstream, its emulated issuer is an anchor too: on this
     * route only, never globally. */
    const struct val_store *store =
        c->route != NULL && c->route->trust != NULL ? c->route->trust : c->tls->trust;
    for (int round = 0;; round++) {
        if (r == NULL || cc->n == 0 ||
            val_check(store, (const uint8_t *const *)cc->der, cc->len, cc->n, time(NULL), r) !=
                CAT_OK) {
            cc->errors |= VAL_E_UNTRUSTED;
            free(r);
            return;
        }
        int arc = round <= VERIFY_AIA_MAX ? verify_aia(c, r) : CAT_DECLINED;
        if (arc == CAT_DECLINED)
            break;
        if (arc == CAT_AGAIN) {
            cc->checked = false;
            free(r);
            return;
        }
    }
    cc->errors |= r->errors;
    if (c->route != NULL && c->route->issuer_der != NULL && r->anchored && r->path_len > 0) {
        const struct val_path_cert *a = &r->path[r->path_len - 1];
        cc->upstream_intercepted = a->len == c->route->issuer_len &&
                                   memcmp(a->der, c->route->issuer_der, a->len) == 0;
        if (cc->upstream_intercepted)
            log_debug(LOG_FAC_SSL, c, "%s: the upstream %s intercepts", c->tls_host,
                      c->route->cfg->name);
    }
    if (r->issuer_idx >= 0) {
        cc->issuer_idx = r->issuer_idx;
    } else if (r->issuer_der != NULL) {
        cc->issuer_anchor = r->issuer_der; /* lives in the store: c->tls holds it */
        cc->issuer_anchor_len = r->issuer_len;
    }
    if (c->tlog != NULL) {
        snprintf(c->tlog->cert_hostname, sizeof(c->tlog->cert_hostname), "%s",
                 r->subject_cn[0] ? r->subject_cn : r->dns_name);
        snprintf(c->tlog->cert_issuer, sizeof(c->tlog->cert_issuer), "%s", r->issuer_dn);
    }
    if (!cc->from_probe) {
        /* The name is only known for sure inside the interception. */
        if (val_check_hostname(cc->der[0], cc->len[0], c->tls_host) != CAT_OK)
            cc->errors |= VAL_E_HOSTNAME;
        /* Our issuer is never an upstream trust anchor: our own certificate
         * coming back from an "origin" is a loop or an attack. */
        for (size_t i = 0; i < c->tls->n_keyrings && !cc->upstream_intercepted; i++)
            if (emu_is_own_issue(c->tls->keyrings[i], cc->der[0], cc->len[0])) {
                log_warn(LOG_FAC_SSL, c, "%s presented a certificate issued by catena's own CA",
                         c->tls_host);
                cc->errors |= VAL_E_UNTRUSTED;
            }
    } else {
        struct probe_verdict v = {.errors = cc->errors,
                                  .upstream_intercepted = cc->upstream_intercepted};
        snprintf(v.cn, sizeof(v.cn), "%s", r->subject_cn[0] ? r->subject_cn : r->dns_name);
        snprintf(v.issuer, sizeof(v.issuer), "%s", r->issuer_dn);
        char key[400];
        verify_probe_key(c, key, sizeof(key));
        /* Revocation is added once known; this entry covers a failure to ask. */
        probe_cache_put(key, &v, c->cfg->validation.probe_ttl_ms,
                        c->cfg->validation.cache_entries);
    }
    free(r);
}

/*
 * Entered with a chain in c->cert (or a cached verdict). Exits: see
 * verify_decide; closed on OOM.
 */
int
verify_st_validate(struct conn *c, unsigned ev)
{
    struct conn_cert *cc = c->cert;
    const struct cfg_validation *v = &c->cfg->validation;
    if (ev & CONN_EV_TIMER) {
        rev_cancel(cc->revq);
        cc->revq = NULL;
        probe_cancel(cc->probe); /* a staple fetch */
        cc->probe = NULL;
        verify_apply_revocation(c, &(struct rev_answer){.status = REV_UNKNOWN,
                                                        .source = "timeout",
                                                        .detail = "no answer in time"});
    }
    if (ev & CONN_EV_TIMER && cc->aiaq != NULL) {
        fetch_cancel(cc->aiaq);
        cc->aiaq = NULL;
        log_info(LOG_FAC_SSL, c, "cannot fetch the intermediate %s did not send, from %s: "
                 "no answer in time", c->tls_host, cc->aia_url);
        aia_cache_put(cc->aia_url, NULL, 0);
        cc->aia_failed = true;
    }
    if (cc->revq != NULL || cc->aiaq != NULL || cc->probe != NULL)
        return CAT_AGAIN;
    if (!cc->checked) {
        verify_check_chain(c);
        if (cc->aiaq != NULL) {
            conn_timer_once(c, v->revocation_timeout_ms + 1000);
            return CAT_AGAIN;
        }
    }
    if (!cc->rev_done) {
        size_t issuer_len;
        const uint8_t *issuer = verify_issuer(cc, &issuer_len);
        /* Revocation matters only for a chain that is otherwise trusted. */
        if (!v->enabled || v->revocation == CFG_REV_OFF || issuer == NULL || c->w->rev == NULL ||
            (cc->errors & VAL_E_UNTRUSTED)) {
            cc->rev_done = true;
        } else {
            struct rev_answer a;
            int rc = rev_check(c->w->rev, cc->der[0], cc->len[0], issuer, issuer_len, &a,
                               verify_rev_cb, c, &cc->revq);
            if (rc == CAT_AGAIN) {
                conn_timer_once(c, 2 * v->revocation_timeout_ms + 1000);
                return CAT_AGAIN;
            }
            verify_rev_answered(c, &a);
            if (cc->probe != NULL)
                return CAT_AGAIN; /* a staple fetch */
        }
    }
    /* The probe's verdict, revocation included, whichever way it ended. */
    if (cc->from_probe && (cc->errors & (VAL_E_REVOKED | VAL_E_REVOCATION_UNKNOWN))) {
        struct probe_verdict pv = {.errors = cc->errors,
                                   .upstream_intercepted = cc->upstream_intercepted};
        char key[400];
        if (c->tlog != NULL) {
            snprintf(pv.cn, sizeof(pv.cn), "%s", c->tlog->cert_hostname);
            snprintf(pv.issuer, sizeof(pv.issuer), "%s", c->tlog->cert_issuer);
        }
        verify_probe_key(c, key, sizeof(key));
        probe_cache_put(key, &pv, v->probe_ttl_ms, v->cache_entries);
    }
    return verify_decide(c);
}

void
verify_restart(struct conn *c)
{
    struct conn_cert *cc = c->cert;
    if (cc == NULL || cc->revq == NULL)
        return;
    rev_cancel(cc->revq);
    cc->revq = NULL;
    cc->rev_done = false;
    conn_wake(c, 0);
}

/* ---- requests inside an exception ----------------------------------------------------- */

/* Percent-encodes a path for a query parameter (all but unreserved characters). */
static void
verify_url_encode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 4 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~' || ch == '/')
            out[o++] = (char)ch;
        else
            o += (size_t)snprintf(out + o, cap - o, "%%%02X", ch);
    }
    out[o] = '\0';
}

/* Decodes one query parameter's value; false on bad escapes or control characters. */
static bool
verify_url_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (o + 1 >= cap)
            return false;
        unsigned char ch = (unsigned char)s[i];
        if (ch == '%') {
            if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) ||
                !isxdigit((unsigned char)s[i + 2]))
                return false;
            char hex[3] = {s[i + 1], s[i + 2], '\0'};
            ch = (unsigned char)strtoul(hex, NULL, 16);
            i += 2;
        }
        if (ch < 0x20 || ch == 0x7f)
            return false; /* no header injection through the redirect */
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return true;
}

/* Finds param=value in a query ("?a=1&b=2"); the value is a view. */
static bool
verify_query_param(struct http_str q, const char *name, struct http_str *val)
{
    size_t nl = strlen(name);
    size_t i = q.len > 0 && q.p[0] == '?' ? 1 : 0;
    while (i < q.len) {
        size_t start = i;
        while (i < q.len && q.p[i] != '&')
            i++;
        if (i - start > nl && memcmp(q.p + start, name, nl) == 0 && q.p[start + nl] == '=') {
            *val = (struct http_str){q.p + start + nl + 1, i - start - nl - 1};
            return true;
        }
        i++;
    }
    return false;
}

static int
verify_page(struct conn *c, const struct http_url *u)
{
    struct conn_cert *cc = c->cert;
    const struct verify_exc *x = verify_exception_of(cc->final);
    char errs[160], path[1024], url[1400], ovr[1700] = "";
    val_errors_str(cc->final, errs, sizeof(errs));
    snprintf(path, sizeof(path), "%.*s%.*s", (int)CAT_MIN(u->path.len, 700), u->path.p,
             (int)CAT_MIN(u->query.len, 300), u->query.p);
    snprintf(url, sizeof(url), "https://%s%s", c->tls_host, path);
    if (verify_overridable(c, cc->final)) {
        char tok[OVR_TOKEN_MAX], enc[1400];
        time_t exp = time(NULL) + (time_t)(c->cfg->validation.override_ms / 1000);
        if (ovr_make(tok, c->tls_host, cc->final, c->cli_ip, exp) == CAT_OK) {
            verify_url_encode(path, strlen(path), enc, sizeof(enc));
            snprintf(ovr, sizeof(ovr), "%s?t=%s&u=%s", OVR_PATH, tok, enc);
        }
    }
    struct page_vars vars = {
        .host = c->tls_host,
        .url = url,
        .reason = x->reason,
        .errors = errs,
        .client = c->cli_ip,
        .issuer = c->tlog != NULL ? c->tlog->cert_issuer : NULL,
        .override_url = ovr,
    };
    c->txn.status = x->status;
    c->txn.exception = x->id;
    c->txn.action = "TCP_DENIED";
    c->flags |= CONN_F_CLOSE_AFTER;
    buf_free(&c->cli.out);
    if (buf_reserve(&c->cli.out, PAGE_MAX) != CAT_OK ||
        page_render(&c->cli.out, x->status, x->id, &vars, NULL) != CAT_OK) {
        c->err = CONN_ERR_NOMEM;
        return CAT_ERR;
    }
    c->after_respond = CONN_ST_LINGER;
    conn_set_state(c, CONN_ST_RESPOND);
    return CAT_OK;
}

/* The override link: check the token, set the cookie, send the user on. */
static int
verify_override(struct conn *c, const struct http_url *u)
{
    struct conn_cert *cc = c->cert;
    struct http_str tok, to;
    char dest[1024];
    if (!verify_overridable(c, cc->final) || !verify_query_param(u->query, "t", &tok) ||
        !verify_query_param(u->query, "u", &to) ||
        !verify_url_decode(to.p, to.len, dest, sizeof(dest)) || dest[0] != '/' ||
        dest[1] == '/' || dest[1] == '\\' || /* "//host": not a path, an open redirect */
        !ovr_check(tok.p, tok.len, c->tls_host, cc->final, c->cli_ip, time(NULL))) {
        log_notice(LOG_FAC_SSL, c, LOG_EVT_DENIED " invalid override request for %s",
                   c->tls_host);
        c->txn.action = "TCP_DENIED";
        return conn_respond_error(c, 403, "override_invalid",
                                  "This link is not valid (anymore): go back and try again");
    }
    char errs[160];
    log_notice(LOG_FAC_SSL, c, "override: client %s continues to %s past %s", c->cli_ip,
               c->tls_host, val_errors_str(cc->final, errs, sizeof(errs)));
    c->txn.status = 302;
    c->txn.action = "TCP_HIT";
    c->flags |= CONN_F_CLOSE_AFTER;
    buf_free(&c->cli.out);
    if (buf_reserve(&c->cli.out, 2048 + tok.len) != CAT_OK ||
        buf_printf(&c->cli.out,
                   "HTTP/1.1 302 Found\r\nLocation: %s\r\nSet-Cookie: " OVR_COOKIE
                   "=%.*s; Path=/; Max-Age=%u; Secure; HttpOnly; SameSite=Lax\r\n"
                   "Content-Length: 0\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
                   dest, (int)tok.len, tok.p,
                   c->cfg->validation.override_ms / 1000) != CAT_OK) {
        c->err = CONN_ERR_NOMEM;
        return CAT_ERR;
    }
    c->after_respond = CONN_ST_LINGER;
    conn_set_state(c, CONN_ST_RESPOND);
    return CAT_OK;
}

int
verify_exception_request(struct conn *c, const struct http_head *h, const struct http_url *u)
{
    struct conn_cert *cc = c->cert;
    if (cc == NULL)
        return CAT_DECLINED;
    if (http_str_eq(u->path, OVR_PATH))
        return verify_override(c, u);
    if (!(c->flags & CONN_F_OVERRIDDEN) && verify_overridable(c, cc->final)) {
        const struct http_hdr *ck = http_find(h, "Cookie");
        size_t vl;
        const char *tok = ck != NULL ? ovr_cookie_find(ck->value.p, ck->value.len, &vl) : NULL;
        if (tok != NULL &&
            ovr_check(tok, vl, c->tls_host, cc->final, c->cli_ip, time(NULL))) {
            c->flags |= CONN_F_OVERRIDDEN;
            log_info(LOG_FAC_SSL, c, "override in effect for %s (client %s)", c->tls_host,
                     c->cli_ip);
        }
    }
    if (c->flags & CONN_F_OVERRIDDEN)
        return CAT_DECLINED;
    return verify_page(c, u);
}
