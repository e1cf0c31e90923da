/*
 * Policy snapshots and decisions. The snapshot in force is one pointer under
 * a mutex: taking a reference costs a lock per connection, never per byte.
 * A bundle is verified (bundle.c), its policy and categories compiled
 * (cpl*.c), and only then swapped in; a refused bundle changes nothing.
 */
#include "core/policy.h"

#include "core/bundle.h"
#include "core/log.h"
#include "core/validate.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static pthread_mutex_t pol_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct pol *pol_live;  /* ref: the snapshot in force */

static struct pol *
pol_empty(void)
{
    struct pol *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    atomic_init(&p->refs, 1);
    snprintf(p->digest, sizeof(p->digest), "none");
    return p;
}

struct pol *
pol_ref(struct pol *p)
{
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    return p;
}

void
pol_unref(struct pol *p)
{
    if (p == NULL || atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
        return;
    cpl_free(p->cpl);
    cpl_cats_free(p->cats);
    bdl_free(p->bundle);
    free(p);
}

struct pol *
pol_current(void)
{
    pthread_mutex_lock(&pol_mtx);
    if (pol_live == NULL)
        pol_live = pol_empty();
    struct pol *p = pol_live != NULL ? pol_ref(pol_live) : NULL;
    pthread_mutex_unlock(&pol_mtx);
    CAT_ASSERT(p != NULL); /* only at startup can this fail, and main checks first */
    return p;
}

void
pol_install(struct pol *p, const char *how)
{
    pthread_mutex_lock(&pol_mtx);
    struct pol *old = pol_live;
    pol_live = p;
    pthread_mutex_unlock(&pol_mtx);
    size_t layers = 0, rules = 0;
    if (p->cpl != NULL)
        cpl_stats(p->cpl, &layers, &rules);
    log_notice(LOG_FAC_MAIN, NULL, "policy %s (%s): bundle version %llu, %zu layers, %zu rules",
               p->digest, how, (unsigned long long)p->version, layers, rules);
    pol_unref(old);
}

/* Whether the policy text mentions a condition or property (a text search,
 * so it errs on the side of yes): "server.certificate.hostname" means the
 * certificate must be known before deciding; "force_protocol" means the
 * first bytes of every tunnel must be looked at. */
static bool
pol_text_mentions(const uint8_t *text, size_t len, const char *needle)
{
    const size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++)
        if (strncasecmp((const char *)text + i, needle, n) == 0)
            return true;
    return false;
}

struct pol *
pol_from_bundle(const uint8_t *data, size_t len, const struct cfg *cfg, uint64_t min_version,
                char *err, size_t errlen)
{
    struct bdl_pubkey keys[CFG_MAX_BUNDLE_KEYS];
    size_t n_keys = 0;
    for (size_t i = 0; i < cfg->bundle.n_keys && n_keys < CFG_MAX_BUNDLE_KEYS; i++) {
        char kerr[256];
        if (bdl_pubkey_load(cfg->bundle.keys[i], &keys[n_keys], kerr, sizeof(kerr)) != CAT_OK) {
            snprintf(err, errlen, "bundle.keys: %s", kerr);
            return NULL;
        }
        n_keys++;
    }
    if (n_keys == 0) {
        snprintf(err, errlen, "no bundle verification key configured (bundle.keys)");
        return NULL;
    }
    struct pol *p = pol_empty();
    if (p == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->bundle = bdl_parse_verify(data, len, keys, n_keys, min_version, err, errlen);
    if (p->bundle == NULL)
        goto fail;
    size_t clen = 0, plen = 0;
    const uint8_t *cats = bdl_file(p->bundle, "categories.txt", &clen);
    if (cats != NULL &&
        (p->cats = cpl_cats_parse((const char *)cats, clen, "categories.txt", err, errlen)) == NULL)
        goto fail;
    const uint8_t *text = bdl_file(p->bundle, "policy.cpl", &plen);
    if (text == NULL) {
        snprintf(err, errlen, "the bundle has no policy.cpl");
        goto fail;
    }
    p->cpl = cpl_compile((const char *)text, plen, "policy.cpl", p->cats, err, errlen);
    if (p->cpl == NULL)
        goto fail;
    p->needs_cert = pol_text_mentions(text, plen, "server.certificate.hostname");
    p->may_force_ssl = pol_text_mentions(text, plen, "force_protocol");
    p->version = bdl_version(p->bundle);
    snprintf(p->digest, sizeof(p->digest), "%s", bdl_digest(p->bundle));
    return p;
fail:
    pol_unref(p);
    return NULL;
}

/* Reads a whole file (bounded: a bundle is at most 64 MiB). */
static uint8_t *
pol_read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    uint8_t *buf = NULL;
    if (fd == -1 || fstat(fd, &st) == -1) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (st.st_size <= 0 || st.st_size > (64 << 20) + 65536) {
        snprintf(err, errlen, "%s: not a bundle (size %lld)", path, (long long)st.st_size);
        goto out;
    }
    buf = malloc((size_t)st.st_size);
    size_t got = 0;
    while (buf != NULL && got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n <= 0) {
            snprintf(err, errlen, "%s: %s", path, n == 0 ? "short read" : strerror(errno));
            free(buf);
            buf = NULL;
            break;
        }
        got += (size_t)n;
    }
    *len = got;
out:
    if (fd >= 0)
        close(fd);
    return buf;
}

int
pol_load_configured(const struct cfg *cfg, struct pol **out, char *err, size_t errlen)
{
    const char *path = cfg->bundle.file;
    bool stored = false;
    if (path == NULL && cfg->bundle.store != NULL && access(cfg->bundle.store, R_OK) == 0) {
        path = cfg->bundle.store;
        stored = true;
    }
    if (path == NULL) {
        *out = pol_empty();
        if (*out == NULL) {
            snprintf(err, errlen, "out of memory");
            return CAT_ERR;
        }
        return CAT_OK;
    }
    size_t len;
    char rerr[300];
    uint8_t *data = pol_read_file(path, &len, rerr, sizeof(rerr));
    if (data == NULL) {
        snprintf(err, errlen, "bundle: %s", rerr);
        return CAT_ERR;
    }
    char berr[400];
    *out = pol_from_bundle(data, len, cfg, 0, berr, sizeof(berr));
    free(data);
    if (*out == NULL) {
        snprintf(err, errlen, "bundle %s: %s", path, berr);
        return CAT_ERR;
    }
    (void)stored;
    return CAT_OK;
}

int
pol_store(const struct cfg *cfg, const struct pol *p, char *err, size_t errlen)
{
    if (cfg->bundle.store == NULL || p->bundle == NULL)
        return CAT_OK;
    size_t len;
    const uint8_t *raw = bdl_raw(p->bundle, &len);
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", cfg->bundle.store);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd == -1) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        return CAT_ERR;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, raw + done, len - done);
        if (n <= 0) {
            snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
            close(fd);
            unlink(tmp);
            return CAT_ERR;
        }
        done += (size_t)n;
    }
    if (fsync(fd) == -1 || close(fd) == -1 || rename(tmp, cfg->bundle.store) == -1) {
        snprintf(err, errlen, "%s: %s", cfg->bundle.store, strerror(errno));
        unlink(tmp);
        return CAT_ERR;
    }
    return CAT_OK;
}

const char *
pol_page(const struct pol *p, const char *exception_id, char *buf, size_t cap)
{
    if (p->bundle == NULL)
        return NULL;
    char name[200];
    snprintf(name, sizeof(name), "pages/%s.html", exception_id);
    size_t len;
    const uint8_t *t = bdl_file(p->bundle, name, &len);
    if (t == NULL || len + 1 > cap)
        return NULL;
    memcpy(buf, t, len);
    buf[len] = '\0';
    return buf;
}

/* ---- decisions ------------------------------------------------------------------ */

/* The policy's ignore names to the validation engine's bits. */
static unsigned
pol_ignore_bits(unsigned cpl_ignore)
{
    unsigned bits = 0;
    if (cpl_ignore & CPL_IGN_UNTRUSTED)
        bits |= VAL_E_UNTRUSTED | VAL_E_MISSING_INTERMEDIATE;
    if (cpl_ignore & CPL_IGN_EXPIRATION)
        bits |= VAL_E_EXPIRED | VAL_E_NOT_YET_VALID;
    if (cpl_ignore & CPL_IGN_HOSTNAME)
        bits |= VAL_E_HOSTNAME;
    if (cpl_ignore & CPL_IGN_REVOCATION)
        bits |= VAL_E_REVOKED | VAL_E_REVOCATION_UNKNOWN;
    return bits;
}

void
pol_eval(const struct pol *p, enum cpl_layer l, const struct cpl_txn *t, struct pol_out *o)
{
    if (p->cpl == NULL)
        return;
    struct cpl_decision d;
    cpl_decision_init(&d);
    cpl_eval(p->cpl, l, t, &d);
    /* What a layer set overrides what an earlier kind set. */
    if (d.allow != CPL_UNSET) {
        o->allow = d.allow;
        o->deny_reason = d.deny_reason;
        o->deny_unauthorized = d.deny_unauthorized;
    }
    if (d.auth_realm != NULL)
        o->realm = d.auth_realm;
    if (d.intercept != CPL_UNSET)
        o->intercept = d.intercept;
    if (d.issuer_keyring != NULL)
        o->keyring = d.issuer_keyring;
    if (d.emu_hostname != NULL)
        o->emu_hostname = d.emu_hostname;
    if (d.splash_text != NULL)
        o->splash_text = d.splash_text;
    if (d.splash_url != NULL)
        o->splash_url = d.splash_url;
    if (d.validate != CPL_UNSET)
        o->validate = d.validate;
    if (d.ignore_set)
        o->ignore = pol_ignore_bits(d.ignore);
    if (d.force_ssl != CPL_UNSET)
        o->force_ssl = d.force_ssl;
    if (d.forward != NULL)
        o->forward = d.forward;
    if (d.inspect != CPL_INSPECT_UNSET)
        o->inspect = d.inspect;
}

void
pol_check_request(const struct cfg *cfg, const struct sockaddr *cli, enum http_method m,
                  unsigned port, struct pol_verdict *v)
{
    v->allow = false;
    v->reason[0] = '\0';
    if (!cfg_net_match(cfg->client_nets, cfg->n_client_nets, cli)) {
        snprintf(v->reason, sizeof(v->reason), "Your address is not allowed to use this proxy");
        return;
    }
    if (m == HTTP_M_CONNECT) {
        if (!cfg_port_allowed(cfg->connect_ports, cfg->n_connect_ports, port)) {
            snprintf(v->reason, sizeof(v->reason), "CONNECT to port %u is not allowed", port);
            return;
        }
    } else if (!cfg_port_allowed(cfg->http_ports, cfg->n_http_ports, port)) {
        snprintf(v->reason, sizeof(v->reason), "HTTP requests to port %u are not allowed", port);
        return;
    }
    v->allow = true;
}

bool
pol_should_intercept(const struct cfg *cfg, const struct pol_out *o, const char *host)
{
    if (o->intercept != CPL_UNSET)
        return o->intercept == CPL_YES;
    const struct cfg_tls *t = &cfg->tls;
    if (cfg_hostlist_match(&t->never_intercept, host))
        return false;
    switch (t->intercept) {
    case CFG_INTERCEPT_ALL:
        return true;
    case CFG_INTERCEPT_LIST:
        return cfg_hostlist_match(&t->intercept_hosts, host);
    case CFG_INTERCEPT_NONE:
        break;
    }
    return false;
}
