/*
 * The bundle puller: an ev_timer and at most one fetch in flight. A failed
 * pull is logged once per change of cause (not at every interval) and the
 * running policy stays.
 */
#include "core/pull.h"

#include "core/fetch.h"
#include "core/log.h"
#include "core/policy.h"
#include "core/worker.h"

#include <stdio.h>
#include <string.h>

#include <ev.h>

#define PULL_MAX (64u << 20) + 65536
#define PULL_TIMEOUT_MS 30000

struct pull {
    struct worker *w;      /* borrowed */
    ev_timer timer;
    struct fetch *f;       /* owned: in flight */
    char url[2048];
    char last_err[200];    /* logged once until it changes */
};

static void
pull_done(void *arg, const struct fetch_result *r)
{
    struct pull *p = arg;
    p->f = NULL;
    char err[512] = "";
    if (r->err != NULL) {
        snprintf(err, sizeof(err), "%s", r->err);
    } else {
        struct pol *cur = pol_current();
        uint64_t running = cur->version;
        char digest[sizeof(cur->digest)];
        snprintf(digest, sizeof(digest), "%s", cur->digest);
        pol_unref(cur);
        struct pol *np = pol_from_bundle(r->body, r->len, p->w->cfg, running, err, sizeof(err));
        if (np != NULL && strcmp(np->digest, digest) == 0) {
            pol_unref(np); /* the same policy: nothing to do */
        } else if (np != NULL) {
            char serr[300];
            if (pol_store(p->w->cfg, np, serr, sizeof(serr)) != CAT_OK)
                log_warn(LOG_FAC_MAIN, NULL, "pulled bundle not stored: %s", serr);
            pol_install(np, "pull");
        }
    }
    if (err[0] != '\0' && strcmp(err, p->last_err) != 0)
        log_warn(LOG_FAC_MAIN, NULL, "bundle pull from %s failed: %s; the running policy stays",
                 p->url, err);
    snprintf(p->last_err, sizeof(p->last_err), "%s", err);
}

static void
pull_timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct pull *p = t->data;
    if (p->f != NULL || p->w->res == NULL)
        return;
    p->f = fetch_start(loop, p->w->res, p->url, "GET", NULL, NULL, 0, PULL_MAX, PULL_TIMEOUT_MS,
                       pull_done, p);
    if (p->f == NULL)
        log_warn(LOG_FAC_MAIN, NULL, "bundle pull from %s: cannot start", p->url);
}

void
pull_free(struct pull *p)
{
    if (p == NULL)
        return;
    fetch_cancel(p->f);
    ev_timer_stop(p->w->loop, &p->timer);
    free(p);
}

void
pull_update(struct worker *w)
{
    const struct cfg_bundle *b = &w->cfg->bundle;
    pull_free(w->pull);
    w->pull = NULL;
    if (b->pull_url == NULL || w->idx != 0)
        return;
    struct pull *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        log_err(LOG_FAC_MAIN, NULL, "bundle pull: out of memory");
        return;
    }
    p->w = w;
    snprintf(p->url, sizeof(p->url), "%s", b->pull_url);
    /* First pull soon after start, then on the interval. */
    ev_timer_init(&p->timer, pull_timer_cb, 0.05, b->pull_interval_ms / 1000.0);
    p->timer.data = p;
    ev_timer_start(w->loop, &p->timer);
    w->pull = p;
    log_info(LOG_FAC_MAIN, NULL, "pulling the bundle from %s every %u s", p->url,
             b->pull_interval_ms / 1000);
}
