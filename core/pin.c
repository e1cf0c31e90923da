/*
 * Pinned-site tracking: a small table behind one mutex (touched once per
 * intercepted handshake that fails or starts, never per byte). When full,
 * the entry with the oldest activity is reused, so the table stays bounded
 * whatever names clients send.
 */
#include "core/pin.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static pthread_mutex_t pin_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct pin_site pin_sites[PIN_MAX_SITES];
static size_t pin_n;

static struct pin_site *
pin_find(const char *host)
{
    for (size_t i = 0; i < pin_n; i++)
        if (strcasecmp(pin_sites[i].host, host) == 0)
            return &pin_sites[i];
    return NULL;
}

bool
pin_is_tunneled(const struct cfg_pinning *p, const char *host, const char **why)
{
    time_t now = time(NULL);
    pthread_mutex_lock(&pin_mtx);
    const struct pin_site *s = pin_find(host);
    bool tunneled = s != NULL && s->tunnel_until > now;
    bool client_cert = tunneled && s->client_cert;
    pthread_mutex_unlock(&pin_mtx);
    /* A client certificate cannot be overridden by policy: it is not ours. */
    if (client_cert) {
        *why = "its server asks for a client certificate";
        return true;
    }
    *why = "its clients pin their server's key";
    return tunneled && p->enabled && !cfg_hostlist_match(&p->always_intercept, host);
}

/* The entry for host, made if new (reusing the stalest when full). Locked. */
static struct pin_site *
pin_get(const char *host, time_t now)
{
    struct pin_site *s = pin_find(host);
    if (s != NULL)
        return s;
    if (pin_n < PIN_MAX_SITES) {
        s = &pin_sites[pin_n++];
    } else {
        s = &pin_sites[0];
        for (size_t i = 1; i < pin_n; i++)
            if (pin_sites[i].tunnel_until < s->tunnel_until ||
                (pin_sites[i].tunnel_until == s->tunnel_until &&
                 pin_sites[i].window_start < s->window_start))
                s = &pin_sites[i];
    }
    memset(s, 0, sizeof(*s));
    snprintf(s->host, sizeof(s->host), "%s", host);
    s->window_start = now;
    return s;
}

void
pin_note_client_cert(const struct cfg_pinning *p, const char *host)
{
    time_t now = time(NULL);
    pthread_mutex_lock(&pin_mtx);
    struct pin_site *s = pin_get(host, now);
    s->client_cert = true;
    s->tunnel_until = now + (time_t)(p->tunnel_ms / 1000);
    pthread_mutex_unlock(&pin_mtx);
}

bool
pin_record_refusal(const struct cfg_pinning *p, const char *host)
{
    if (!p->enabled || cfg_hostlist_match(&p->always_intercept, host))
        return false;
    time_t now = time(NULL);
    bool pinned = false;
    pthread_mutex_lock(&pin_mtx);
    struct pin_site *s = pin_get(host, now);
    if (now - s->window_start > (time_t)(p->window_ms / 1000)) {
        s->window_start = now;
        s->refusals = 0;
    }
    if (++s->refusals >= p->threshold && s->tunnel_until <= now) {
        s->tunnel_until = now + (time_t)(p->tunnel_ms / 1000);
        s->refusals = 0;
        pinned = true;
    }
    pthread_mutex_unlock(&pin_mtx);
    return pinned;
}

size_t
pin_list(struct pin_site *out, size_t max)
{
    time_t now = time(NULL);
    size_t n = 0;
    pthread_mutex_lock(&pin_mtx);
    for (size_t i = 0; i < pin_n && n < max; i++)
        if (pin_sites[i].tunnel_until > now)
            out[n++] = pin_sites[i];
    pthread_mutex_unlock(&pin_mtx);
    return n;
}
