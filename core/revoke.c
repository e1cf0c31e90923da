/*
 * The asynchronous side of revocation checking, one rev_ctx per worker. A
 * check (struct rev_job, shared by every caller asking about the same
 * certificate) tries the certificate's OCSP URLs, then its CRL URLs, until a
 * verified source says good or revoked; CRL downloads (struct rev_crlf) are
 * shared by every check that needs the same CRL. Results go to the shared
 * cache (rev_cache.c) before callers hear them. Invariants: callbacks come
 * only from the loop (completion goes through a zero timer), each query is
 * answered once, and a job always ends, by an answer or its deadline.
 */
#include "core/revoke.h"

#include "core/dlist.h"
#include "core/fetch.h"
#include "core/log.h"
#include "core/rev_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ev.h>

static int64_t
rev_wall_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

int64_t (*rev_clock)(void) = rev_wall_clock;

enum rev_q_state {
    REV_Q_WAITING = 0, /* linked in job->queries */
    REV_Q_FIRING,      /* unlinked, its callback running */
};

struct rev_query {
    struct rev_job *job;    /* borrowed: the check it waits for */
    struct dlist_link link; /* in job->queries */
    rev_cb *cb;
    void *arg;
    enum rev_q_state state;
};

enum rev_job_state {
    REV_JOB_OCSP = 0, /* trying OCSP URLs (j->f in flight) */
    REV_JOB_CRL,      /* trying CRL URLs (j->crlf is the download it waits for) */
    REV_JOB_DONE,     /* answered; the kick timer delivers */
};

struct rev_crlf;

struct rev_job {
    struct rev_ctx *r;            /* borrowed: owner */
    struct dlist_link link;       /* in r->jobs */
    uint8_t key[REV_KEY_LEN];     /* rev_answer_key() */
    uint8_t *der;                 /* owned: the certificate, then the issuer */
    struct rev_cert cert, issuer; /* views into der */
    struct rev_urls ocsp, crl;    /* views into der */
    size_t next_ocsp, next_crl;
    enum rev_job_state st;
    char url[FETCH_MAX_URL];   /* the source being asked */
    struct fetch *f;           /* owned: OCSP request in flight */
    struct rev_crlf *crlf;     /* borrowed: CRL download waited for */
    struct rev_job *crlf_next; /* in crlf->waiters */
    struct dlist queries;      /* owned: struct rev_query */
    ev_timer deadline;
    ev_timer kick;
    struct rev_answer ans;
    char trail[320]; /* why each source failed, for an unknown answer */
};

/* One CRL being downloaded for one issuer; the jobs that wait for it. */
struct rev_crlf {
    struct rev_ctx *r;
    struct dlist_link link; /* in r->crlfs */
    char url[FETCH_MAX_URL];
    uint8_t *issuer_der; /* owned */
    struct rev_cert issuer;
    struct fetch *f; /* owned */
    struct rev_job *waiters;
};

struct rev_ctx {
    struct ev_loop *loop; /* borrowed: the worker's */
    struct res *res;      /* borrowed: the worker's */
    unsigned timeout_ms;
    size_t ocsp_max, crl_max;
    struct dlist jobs;  /* owned: struct rev_job, checks in flight */
    struct dlist crlfs; /* owned: struct rev_crlf, CRL downloads in flight */
    struct rev_stats st;
};

const char *
rev_status_str(enum rev_status s)
{
    return s == REV_GOOD ? "good" : s == REV_REVOKED ? "revoked" : "unknown";
}

/* ---- helpers ---------------------------------------------------------------------- */

/* A URL from a certificate as a C string, or false if it would not be one. */
static bool
rev_url_copy(struct rev_span u, char *out, size_t cap)
{
    if (u.len == 0 || u.len >= cap)
        return false;
    for (size_t i = 0; i < u.len; i++)
        if (u.p[i] <= 0x20 || u.p[i] >= 0x7f)
            return false;
    memcpy(out, u.p, u.len);
    out[u.len] = '\0';
    return true;
}

static void rev_trail(char *trail, size_t cap, const char *fmt, ...) CAT_PRINTF(3, 4);

static void
rev_trail(char *trail, size_t cap, const char *fmt, ...)
{
    size_t l = strlen(trail);
    if (l + 3 >= cap)
        return;
    if (l > 0) {
        memcpy(trail + l, "; ", 3);
        l += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(trail + l, cap - l, fmt, ap);
    va_end(ap);
}

/* The host[:port] of an http:// URL: enough to name a source in a short detail. */
static const char *
rev_site(const char *url, char buf[80])
{
    const char *h = url + 7, *e = h + strcspn(h, "/?");
    snprintf(buf, 80, "%.*s", (int)CAT_MIN(e - h, 79), h);
    return buf;
}

/* How long a good or revoked answer may be reused. */
static int64_t
rev_life(int64_t now, int64_t next_update)
{
    if (next_update == 0)
        return now + REV_MIN_LIFE_S;
    return CAT_MIN(next_update, now + REV_MAX_LIFE_S);
}

/* "OCSP http://...: revoked (reason 1: keyCompromise) at 2026-..." */
static void
rev_describe(struct rev_answer *a, const char *what, const char *url, const struct rev_verdict *v,
             const char *suffix)
{
    char when[32];
    if (v->status == REV_GOOD) {
        snprintf(a->detail, sizeof(a->detail), "%s %.96s: good%s", what, url, suffix);
        return;
    }
    rev_time_str(v->revoked_at, when);
    if (v->reason >= 0)
        snprintf(a->detail, sizeof(a->detail), "%s %.64s: revoked (reason %d: %s) at %s%s", what,
                 url, v->reason, rev_reason_str(v->reason), when, suffix);
    else
        snprintf(a->detail, sizeof(a->detail), "%s %.96s: revoked at %s%s", what, url, when,
                 suffix);
}

/* ---- queries and completion ----------------------------------------------------------- */

static void
rev_job_free(struct rev_job *j)
{
    struct rev_ctx *r = j->r;
    ev_timer_stop(r->loop, &j->deadline);
    ev_timer_stop(r->loop, &j->kick);
    fetch_cancel(j->f);
    DLIST_FOREACH_SAFE(q, &j->queries, struct rev_query, link)
        free(q);
    free(j->der);
    free(j);
}

static void
rev_crlf_detach(struct rev_job *j)
{
    struct rev_crlf *c = j->crlf;
    if (c == NULL)
        return;
    for (struct rev_job **pp = &c->waiters; *pp != NULL; pp = &(*pp)->crlf_next) {
        if (*pp == j) {
            *pp = j->crlf_next;
            break;
        }
    }
    j->crlf = NULL;
    j->crlf_next = NULL;
}

/* Out of r->jobs; a job already out stays out. */
static void
rev_job_unlink(struct rev_job *j)
{
    if (dlist_linked(&j->r->jobs, &j->link))
        dlist_unlink(&j->r->jobs, &j->link);
}

static void
rev_kick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct rev_job *j = w->data;
    /* Out of the table first: a callback checking the same certificate finds the cache. */
    rev_job_unlink(j);
    struct rev_query *q;
    while ((q = DLIST_FIRST(&j->queries, struct rev_query, link)) != NULL) {
        dlist_unlink(&j->queries, &q->link);
        q->state = REV_Q_FIRING;
        q->cb(q->arg, &j->ans);
        free(q);
    }
    rev_job_free(j);
}

/* Records the answer, caches it, and schedules delivery from the loop. */
static void
rev_job_finish(struct rev_job *j, enum rev_status status, const char *source, int64_t expires)
{
    struct rev_ctx *r = j->r;
    int64_t now = rev_clock();
    if (j->st == REV_JOB_DONE)
        return;
    j->st = REV_JOB_DONE;
    ev_timer_stop(r->loop, &j->deadline);
    fetch_cancel(j->f);
    j->f = NULL;
    rev_crlf_detach(j);
    j->ans.status = status;
    j->ans.source = source;
    if (status == REV_UNKNOWN) {
        snprintf(j->ans.detail, sizeof(j->ans.detail), "%.159s",
                 j->trail[0] ? j->trail : "no source answered");
        log_info(LOG_FAC_MAIN, NULL, "revocation: no answer: %s", j->trail);
        expires = now + REV_FAIL_LIFE_S;
    }
    rev_cache_put_answer(j->key, &j->ans, expires, now);
    log_debug(LOG_FAC_MAIN, NULL, "revocation: %s (%s): %s", rev_status_str(status), source,
              j->ans.detail);
    ev_timer_set(&j->kick, 0., 0.);
    ev_timer_start(r->loop, &j->kick);
}

static void
rev_job_verdict(struct rev_job *j, const char *what, const char *url, const struct rev_verdict *v)
{
    int64_t now = rev_clock();
    rev_describe(&j->ans, what, url, v, "");
    rev_job_finish(j, v->status, what[0] == 'O' ? "ocsp" : "crl", rev_life(now, v->next_update));
}

void
rev_cancel(struct rev_query *q)
{
    if (q == NULL || q->state == REV_Q_FIRING)
        return;
    dlist_unlink(&q->job->queries, &q->link);
    free(q);
}

/* ---- the steps of a check -------------------------------------------------------------- */

static void rev_job_next(struct rev_job *j);

static bool
rev_fetch_failed_hard(const struct fetch_result *res)
{
    /* Transport failures and server errors mean the source is down for everyone;
     * a 404 or a bad answer is about this request. */
    return res->status == 0 || res->status >= 500;
}

static void
rev_ocsp_cb(void *arg, const struct fetch_result *res)
{
    struct rev_job *j = arg;
    char site[80];
    int64_t now = rev_clock();
    j->f = NULL;
    if (res->err != NULL) {
        if (rev_fetch_failed_hard(res))
            rev_cache_put_down(j->url, res->err, now + REV_FAIL_LIFE_S, now);
        rev_trail(j->trail, sizeof(j->trail), "OCSP %s: %s", rev_site(j->url, site), res->err);
        rev_job_next(j);
        return;
    }
    struct rev_verdict v;
    if (rev_ocsp_check(res->body, res->len, &j->cert, &j->issuer, now, &v) != CAT_OK) {
        log_info(LOG_FAC_MAIN, NULL, "revocation: OCSP %.200s: unusable response: %s", j->url,
                 v.why);
        rev_trail(j->trail, sizeof(j->trail), "OCSP %s: %s", rev_site(j->url, site), v.why);
        rev_job_next(j);
        return;
    }
    if (v.status == REV_UNKNOWN) {
        rev_trail(j->trail, sizeof(j->trail), "OCSP %s: certificate unknown to the responder",
                  rev_site(j->url, site));
        rev_job_next(j);
        return;
    }
    rev_job_verdict(j, "OCSP", j->url, &v);
}

/* Out of r->crlfs: no job joins it any more. A download already out stays out
 * (rev_crlf_cb unlinks it before rev_crlf_free does). */
static void
rev_crlf_unlink(struct rev_crlf *c)
{
    if (dlist_linked(&c->r->crlfs, &c->link))
        dlist_unlink(&c->r->crlfs, &c->link);
}

static void
rev_crlf_free(struct rev_crlf *c)
{
    fetch_cancel(c->f);
    rev_crlf_unlink(c);
    while (c->waiters != NULL)
        rev_crlf_detach(c->waiters);
    free(c->issuer_der);
    free(c);
}

static void
rev_crlf_cb(void *arg, const struct fetch_result *res)
{
    struct rev_crlf *c = arg;
    int64_t now = rev_clock();
    char why[160] = "", site[80];
    struct rev_crl *crl = NULL;
    c->f = NULL;
    /* Done downloading: a waiter moving on must not join this one again. */
    rev_crlf_unlink(c);

    if (res->err != NULL) {
        if (rev_fetch_failed_hard(res))
            rev_cache_put_down(c->url, res->err, now + REV_FAIL_LIFE_S, now);
        snprintf(why, sizeof(why), "%s", res->err);
    } else {
        crl = rev_crl_load(res->body, res->len, c->url, &c->issuer, now, why, sizeof(why));
        if (crl == NULL)
            log_info(LOG_FAC_MAIN, NULL, "revocation: CRL %.200s: unusable: %s", c->url, why);
        else
            log_debug(LOG_FAC_MAIN, NULL, "revocation: CRL %.200s: %zu entries, %zu bytes", c->url,
                      rev_crl_entries(crl), res->len);
    }
    /* Take the waiters: each moves on (perhaps to another download) on its own. */
    struct rev_job *w = c->waiters;
    c->waiters = NULL;
    while (w != NULL) {
        struct rev_job *j = w;
        w = w->crlf_next;
        j->crlf = NULL;
        j->crlf_next = NULL;
        struct rev_verdict v;
        if (crl == NULL) {
            rev_trail(j->trail, sizeof(j->trail), "CRL %s: %s", rev_site(c->url, site), why);
            rev_job_next(j);
        } else if (rev_crl_find(crl, &j->cert, &v) != CAT_OK) {
            rev_trail(j->trail, sizeof(j->trail), "CRL %s: %s", rev_site(c->url, site), v.why);
            rev_job_next(j);
        } else {
            rev_job_verdict(j, "CRL", c->url, &v);
        }
    }
    if (crl != NULL)
        rev_cache_put_crl(c->url, &c->issuer, crl, rev_life(now, rev_crl_next_update(crl)), now);
    rev_crlf_free(c);
}

/* The download of j's url for j's issuer in flight, or NULL. */
static struct rev_crlf *
rev_crlf_find(const struct rev_job *j)
{
    DLIST_FOREACH_SAFE(c, &j->r->crlfs, struct rev_crlf, link)
        if (strcmp(c->url, j->url) == 0 &&
            rev_span_eq(c->issuer.spki, j->issuer.spki.p, j->issuer.spki.len))
            return c;
    return NULL;
}

/* Joins the download of url for j's issuer, starting it if nobody has. */
static int
rev_crlf_join(struct rev_job *j)
{
    struct rev_ctx *r = j->r;
    struct rev_crlf *c = rev_crlf_find(j);
    if (c == NULL) {
        const char *err;
        c = calloc(1, sizeof(*c));
        if (c == NULL)
            return CAT_ERR;
        c->r = r;
        snprintf(c->url, sizeof(c->url), "%s", j->url);
        c->issuer_der = malloc(j->issuer.der.len);
        if (c->issuer_der == NULL) {
            free(c);
            return CAT_ERR;
        }
        memcpy(c->issuer_der, j->issuer.der.p, j->issuer.der.len);
        if (rev_cert_parse(c->issuer_der, j->issuer.der.len, &c->issuer, &err) != CAT_OK) {
            free(c->issuer_der);
            free(c);
            return CAT_ERR;
        }
        c->f = fetch_start(r->loop, r->res, c->url, "GET", NULL, NULL, 0, r->crl_max, r->timeout_ms,
                           rev_crlf_cb, c);
        if (c->f == NULL) {
            free(c->issuer_der);
            free(c);
            return CAT_ERR;
        }
        dlist_push_head(&r->crlfs, &c->link);
        r->st.crl_fetches++;
    }
    j->crlf = c;
    j->crlf_next = c->waiters;
    c->waiters = j;
    return CAT_OK;
}

/* Moves j to its next source, or ends it (the answer goes out through the kick timer). */
static void
rev_job_next(struct rev_job *j)
{
    struct rev_ctx *r = j->r;
    int64_t now = rev_clock();
    char why[160], site[80];

    while (j->st == REV_JOB_OCSP && j->next_ocsp < j->ocsp.n) {
        struct rev_span u = j->ocsp.url[j->next_ocsp++];
        uint8_t req[512];
        if (!rev_url_copy(u, j->url, sizeof(j->url))) {
            rev_trail(j->trail, sizeof(j->trail), "OCSP URL unusable");
            continue;
        }
        if (rev_cache_is_down(j->url, now, why, sizeof(why))) {
            rev_trail(j->trail, sizeof(j->trail), "OCSP %s failed recently: %s",
                      rev_site(j->url, site), why);
            continue;
        }
        size_t n = rev_ocsp_request(&j->cert, &j->issuer, req, sizeof(req));
        if (n == 0) {
            rev_trail(j->trail, sizeof(j->trail), "OCSP request not built");
            continue;
        }
        j->f = fetch_start(r->loop, r->res, j->url, "POST", "application/ocsp-request", req, n,
                           r->ocsp_max, r->timeout_ms, rev_ocsp_cb, j);
        if (j->f == NULL) {
            rev_trail(j->trail, sizeof(j->trail), "OCSP %s: out of memory", rev_site(j->url, site));
            continue;
        }
        r->st.ocsp_fetches++;
        log_debug(LOG_FAC_MAIN, NULL, "revocation: asking OCSP %.200s", j->url);
        return;
    }
    j->st = REV_JOB_CRL;
    while (j->next_crl < j->crl.n) {
        struct rev_span u = j->crl.url[j->next_crl++];
        struct rev_verdict v;
        if (!rev_url_copy(u, j->url, sizeof(j->url))) {
            rev_trail(j->trail, sizeof(j->trail), "CRL URL unusable");
            continue;
        }
        int rc = rev_cache_find_crl(j->url, &j->cert, &j->issuer, now, &v);
        if (rc == CAT_OK) {
            rev_job_verdict(j, "CRL", j->url, &v);
            return;
        }
        if (rc == CAT_ERR) {
            rev_trail(j->trail, sizeof(j->trail), "CRL %s: %s", rev_site(j->url, site), v.why);
            continue;
        }
        if (rev_cache_is_down(j->url, now, why, sizeof(why))) {
            rev_trail(j->trail, sizeof(j->trail), "CRL %s failed recently: %s",
                      rev_site(j->url, site), why);
            continue;
        }
        if (rev_crlf_join(j) != CAT_OK) {
            rev_trail(j->trail, sizeof(j->trail), "CRL %s: out of memory", rev_site(j->url, site));
            continue;
        }
        log_debug(LOG_FAC_MAIN, NULL, "revocation: fetching CRL %.200s", j->url);
        return;
    }
    rev_job_finish(j, REV_UNKNOWN, j->crl.n > 0 ? "crl" : "ocsp", 0);
}

static void
rev_deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct rev_job *j = w->data;
    rev_trail(j->trail, sizeof(j->trail), "gave up after %u ms", 2 * j->r->timeout_ms);
    rev_job_finish(j, REV_UNKNOWN, j->st == REV_JOB_CRL ? "crl" : "ocsp", 0);
}

/* ---- the API --------------------------------------------------------------------------- */

struct rev_ctx *
rev_ctx_new(struct ev_loop *loop, struct res *res, unsigned timeout_ms)
{
    struct rev_ctx *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    if (rev_cache_acquire() != CAT_OK) {
        free(r);
        return NULL;
    }
    r->loop = loop;
    r->res = res;
    r->timeout_ms = timeout_ms ? timeout_ms : 1;
    r->ocsp_max = REV_OCSP_MAX_DEFAULT;
    r->crl_max = REV_CRL_MAX_DEFAULT;
    return r;
}

void
rev_ctx_free(struct rev_ctx *r)
{
    if (r == NULL)
        return;
    struct rev_crlf *c;
    while ((c = DLIST_FIRST(&r->crlfs, struct rev_crlf, link)) != NULL)
        rev_crlf_free(c);
    struct rev_job *j;
    while ((j = DLIST_FIRST(&r->jobs, struct rev_job, link)) != NULL) {
        rev_job_unlink(j);
        rev_job_free(j);
    }
    free(r);
    rev_cache_release();
}

void
rev_ctx_set_limits(struct rev_ctx *r, size_t ocsp_max, size_t crl_max)
{
    r->ocsp_max = ocsp_max;
    r->crl_max = crl_max;
}

void
rev_get_stats(const struct rev_ctx *r, struct rev_stats *out)
{
    struct rev_cache_stats cs;
    *out = r->st;
    rev_cache_get_stats(&cs);
    out->cache_answers = cs.answers;
    out->cache_crls = cs.crls;
    out->cache_down = cs.down;
}

static int rev_now_answer(struct rev_answer *out, enum rev_status st, const char *source,
                          const char *fmt, ...) CAT_PRINTF(4, 5);

static int
rev_now_answer(struct rev_answer *out, enum rev_status st, const char *source, const char *fmt, ...)
{
    va_list ap;
    out->status = st;
    out->source = source;
    va_start(ap, fmt);
    vsnprintf(out->detail, sizeof(out->detail), fmt, ap);
    va_end(ap);
    return CAT_OK;
}

/*
 * Answers at once when no source is worth asking: every URL failed recently,
 * unless a cached CRL answers. Returns false when something must be fetched.
 */
static bool
rev_try_now(const struct rev_cert *cert, const struct rev_cert *issuer, const struct rev_urls *ocsp,
            const struct rev_urls *crl, int64_t now, struct rev_answer *out)
{
    char url[FETCH_MAX_URL], why[160], trail[320] = "", site[80];
    bool ocsp_live = false;
    for (size_t i = 0; i < ocsp->n; i++) {
        if (!rev_url_copy(ocsp->url[i], url, sizeof(url)))
            continue;
        if (!rev_cache_is_down(url, now, why, sizeof(why))) {
            ocsp_live = true;
            break;
        }
        rev_trail(trail, sizeof(trail), "OCSP %s failed recently: %s", rev_site(url, site), why);
    }
    if (ocsp_live)
        return false;
    for (size_t i = 0; i < crl->n; i++) {
        struct rev_verdict v;
        if (!rev_url_copy(crl->url[i], url, sizeof(url)))
            continue;
        int rc = rev_cache_find_crl(url, cert, issuer, now, &v);
        if (rc == CAT_OK) {
            rev_describe(out, "CRL", url, &v, " (cached CRL)");
            out->status = v.status;
            out->source = "crl";
            return true;
        }
        if (rc == CAT_ERR || !rev_cache_is_down(url, now, why, sizeof(why)))
            return false;
        rev_trail(trail, sizeof(trail), "CRL %s failed recently: %s", rev_site(url, site), why);
    }
    if (trail[0] == '\0')
        return false;
    rev_now_answer(out, REV_UNKNOWN, "cache", "%s", trail);
    return true;
}

/* The check of key in flight that has no answer yet, or NULL. */
static struct rev_job *
rev_job_find(const struct rev_ctx *r, const uint8_t key[REV_KEY_LEN])
{
    DLIST_FOREACH_SAFE(j, &r->jobs, struct rev_job, link)
        if (memcmp(j->key, key, REV_KEY_LEN) == 0 && j->st != REV_JOB_DONE)
            return j;
    return NULL;
}

int
rev_check(struct rev_ctx *r, const uint8_t *cert, size_t cert_len, const uint8_t *issuer,
          size_t issuer_len, struct rev_answer *out, rev_cb *cb, void *arg, struct rev_query **qp)
{
    struct rev_cert c, i;
    struct rev_urls ocsp, crl;
    const char *err;
    uint8_t key[REV_KEY_LEN];
    int64_t now = rev_clock();

    *qp = NULL;
    *out = (struct rev_answer){.status = REV_UNKNOWN, .source = "none"};
    r->st.checks++;
    if (rev_cert_parse(cert, cert_len, &c, &err) != CAT_OK)
        return rev_now_answer(out, REV_UNKNOWN, "none", "certificate: %s", err);
    if (rev_cert_parse(issuer, issuer_len, &i, &err) != CAT_OK)
        return rev_now_answer(out, REV_UNKNOWN, "none", "issuer certificate: %s", err);
    if (!rev_span_eq(c.issuer, i.subject.p, i.subject.len))
        return rev_now_answer(out, REV_UNKNOWN, "none",
                              "the issuer certificate is not the certificate's issuer");
    rev_cert_ocsp_urls(&c, &ocsp);
    rev_cert_crl_urls(&c, &crl);
    if (ocsp.n + crl.n == 0) {
        if (ocsp.other + crl.other > 0)
            return rev_now_answer(out, REV_UNKNOWN, "none",
                                  "no http:// OCSP or CRL URL in the certificate (%zu other)",
                                  ocsp.other + crl.other);
        return rev_now_answer(out, REV_UNKNOWN, "none", "no OCSP or CRL URL in the certificate");
    }
    rev_answer_key(&c, &i, key);
    if (rev_cache_get_answer(key, now, out)) {
        out->source = "cache";
        r->st.cache_hits++;
        return CAT_OK;
    }
    if (rev_try_now(&c, &i, &ocsp, &crl, now, out)) {
        r->st.cache_hits++;
        return CAT_OK;
    }

    struct rev_query *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return rev_now_answer(out, REV_UNKNOWN, "none", "out of memory");
    q->cb = cb;
    q->arg = arg;

    struct rev_job *j = rev_job_find(r, key);
    if (j != NULL) {
        r->st.coalesced++;
    } else {
        j = calloc(1, sizeof(*j));
        if (j == NULL || (j->der = malloc(cert_len + issuer_len)) == NULL) {
            free(j);
            free(q);
            return rev_now_answer(out, REV_UNKNOWN, "none", "out of memory");
        }
        j->r = r;
        memcpy(j->key, key, REV_KEY_LEN);
        memcpy(j->der, cert, cert_len);
        memcpy(j->der + cert_len, issuer, issuer_len);
        /* Parsed again over our copy: these views must outlive the caller's buffers. */
        CAT_ASSERT(rev_cert_parse(j->der, cert_len, &j->cert, &err) == CAT_OK);
        CAT_ASSERT(rev_cert_parse(j->der + cert_len, issuer_len, &j->issuer, &err) == CAT_OK);
        rev_cert_ocsp_urls(&j->cert, &j->ocsp);
        rev_cert_crl_urls(&j->cert, &j->crl);
        ev_timer_init(&j->deadline, rev_deadline_cb, 2.0 * r->timeout_ms / 1000.0, 0.);
        j->deadline.data = j;
        ev_timer_init(&j->kick, rev_kick_cb, 0., 0.);
        j->kick.data = j;
        dlist_push_head(&r->jobs, &j->link);
        ev_now_update(r->loop);
        ev_timer_start(r->loop, &j->deadline);
        /* Any answer found on the way is delivered through the kick timer. */
        rev_job_next(j);
    }
    q->job = j;
    dlist_push_head(&j->queries, &q->link);
    *qp = q;
    return CAT_AGAIN;
}

/* ---- stapled responses ------------------------------------------------------------------- */

int
rev_staple(const uint8_t *cert, size_t cert_len, const uint8_t *issuer, size_t issuer_len,
           const uint8_t *resp, size_t len, const struct rev_answer *unknown,
           struct rev_answer *out, char *why, size_t whylen)
{
    struct rev_cert c, i;
    struct rev_verdict v;
    const char *err;
    uint8_t key[REV_KEY_LEN];
    int64_t now = rev_clock();
    int rc = CAT_ERR;

    *out = *unknown;
    out->staple_tried = true;
    if (rev_cert_parse(cert, cert_len, &c, &err) != CAT_OK ||
        rev_cert_parse(issuer, issuer_len, &i, &err) != CAT_OK) {
        snprintf(why, whylen, "certificate: %s", err);
        return CAT_ERR; /* rev_check said "none" for these: nothing to cache */
    }
    rev_answer_key(&c, &i, key);
    if (resp == NULL || len == 0) {
        snprintf(why, whylen, "none sent");
        rc = CAT_DECLINED;
    } else if (rev_ocsp_check(resp, len, &c, &i, now, &v) != CAT_OK) {
        snprintf(why, whylen, "%s", v.why);
    } else if (v.status == REV_UNKNOWN) {
        snprintf(why, whylen, "the responder does not know the certificate");
    } else {
        rev_describe(out, "stapled", "OCSP", &v, "");
        out->status = v.status;
        out->source = REV_SRC_STAPLE;
        out->staple_tried = false;
        rev_cache_put_answer(key, out, rev_life(now, v.next_update), now);
        snprintf(why, whylen, "%s", rev_status_str(v.status));
        return CAT_OK;
    }
    rev_cache_put_answer(key, out, now + REV_FAIL_LIFE_S, now);
    return rc;
}
