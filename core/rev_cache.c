/*
 * The revocation cache every worker shares: verdicts per certificate, verified
 * CRLs per distribution point, and URLs that failed recently. One mutex; each
 * kind is a bounded LRU with its own limits (CRLs also by memory). Keys are
 * SHA-256 over a per-process random salt and the identifying bytes, so their
 * buckets cannot be aimed at from outside. Times are parameters: callers pass
 * wall-clock seconds, tests pass what they like.
 */
#include "core/rev_int.h"

#include "core/dlist.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/sha256.h>

struct rev_centry {
    struct rev_centry *hnext; /* bucket chain */
    struct dlist_link lru;    /* in rev_lru.lru */
    uint8_t key[REV_KEY_LEN];
    int64_t expires;
    size_t bytes;
    struct rev_answer ans; /* answers; a down URL keeps its reason in ans.detail */
    struct rev_crl *crl;   /* owned: CRL entries */
};

struct rev_lru {
    struct rev_centry **buckets; /* owned */
    size_t mask;                 /* buckets - 1 (a power of two) */
    struct dlist lru;            /* owned: struct rev_centry, most recent first */
    size_t n, bytes;
    size_t max_n, max_bytes; /* max_bytes 0: no bound */
};

static struct {
    pthread_mutex_t lock;
    int refs;
    uint8_t salt[16];
    struct rev_lru answers, crls, down;
} rev_cache = {.lock = PTHREAD_MUTEX_INITIALIZER};

static const struct rev_cache_limits rev_cache_defaults = {
    .answers = 10000, .crls = 32, .crl_bytes = 64u << 20, .down = 1024};

/* ---- keys ------------------------------------------------------------------------- */

static void
rev_key(uint8_t kind, const void *a, size_t alen, const void *b, size_t blen,
        uint8_t out[REV_KEY_LEN])
{
    wc_Sha256 h;
    const uint8_t zero = 0;
    /* SHA-256 fails only on bad arguments; a zero key would merely share a bucket. */
    memset(out, 0, REV_KEY_LEN);
    if (wc_InitSha256(&h) != 0)
        return;
    (void)wc_Sha256Update(&h, rev_cache.salt, sizeof(rev_cache.salt));
    (void)wc_Sha256Update(&h, &kind, 1);
    (void)wc_Sha256Update(&h, a, (word32)alen);
    (void)wc_Sha256Update(&h, &zero, 1);
    if (blen > 0)
        (void)wc_Sha256Update(&h, b, (word32)blen);
    (void)wc_Sha256Final(&h, out);
    wc_Sha256Free(&h);
}

void
rev_answer_key(const struct rev_cert *cert, const struct rev_cert *issuer, uint8_t key[REV_KEY_LEN])
{
    rev_key('A', issuer->spki.p, issuer->spki.len, cert->serial.p, cert->serial.len, key);
}

/* ---- LRU --------------------------------------------------------------------------- */

static size_t
rev_bucket(const struct rev_lru *l, const uint8_t key[REV_KEY_LEN])
{
    uint64_t h;
    memcpy(&h, key, sizeof(h));
    return (size_t)h & l->mask;
}

static int
rev_lru_init(struct rev_lru *l, size_t max_n, size_t max_bytes)
{
    size_t nb = 64;
    while (nb < max_n && nb < (1u << 20))
        nb <<= 1;
    memset(l, 0, sizeof(*l));
    l->buckets = calloc(nb, sizeof(*l->buckets));
    if (l->buckets == NULL)
        return CAT_ERR;
    l->mask = nb - 1;
    l->max_n = max_n;
    l->max_bytes = max_bytes;
    return CAT_OK;
}

static void
rev_lru_unlink(struct rev_lru *l, struct rev_centry *e)
{
    struct rev_centry **pp = &l->buckets[rev_bucket(l, e->key)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    dlist_unlink(&l->lru, &e->lru);
    l->n--;
    l->bytes -= e->bytes;
}

static void
rev_lru_remove(struct rev_lru *l, struct rev_centry *e)
{
    rev_lru_unlink(l, e);
    rev_crl_free(e->crl);
    free(e);
}

static void
rev_lru_clear(struct rev_lru *l)
{
    struct rev_centry *e;
    while ((e = DLIST_FIRST(&l->lru, struct rev_centry, lru)) != NULL)
        rev_lru_remove(l, e);
}

static void
rev_lru_fini(struct rev_lru *l)
{
    rev_lru_clear(l);
    free(l->buckets);
    l->buckets = NULL;
}

static void
rev_lru_evict(struct rev_lru *l)
{
    struct rev_centry *e;
    while ((e = DLIST_LAST(&l->lru, struct rev_centry, lru)) != NULL &&
           (l->n > l->max_n || (l->max_bytes && l->bytes > l->max_bytes)))
        rev_lru_remove(l, e);
}

/* The live entry for key, made most recent; an expired one is dropped. */
static struct rev_centry *
rev_lru_get(struct rev_lru *l, const uint8_t key[REV_KEY_LEN], int64_t now)
{
    if (l->buckets == NULL)
        return NULL;
    struct rev_centry *e = l->buckets[rev_bucket(l, key)];
    while (e != NULL && memcmp(e->key, key, REV_KEY_LEN) != 0)
        e = e->hnext;
    if (e == NULL)
        return NULL;
    if (e->expires <= now) {
        rev_lru_remove(l, e);
        return NULL;
    }
    dlist_move_head(&l->lru, &e->lru);
    return e;
}

/* Inserts e (replacing an entry with its key), then trims to the limits. */
static void
rev_lru_put(struct rev_lru *l, struct rev_centry *e)
{
    if (l->buckets == NULL) {
        rev_crl_free(e->crl);
        free(e);
        return;
    }
    size_t b = rev_bucket(l, e->key);
    for (struct rev_centry *o = l->buckets[b]; o != NULL; o = o->hnext) {
        if (memcmp(o->key, e->key, REV_KEY_LEN) == 0) {
            rev_lru_remove(l, o);
            break;
        }
    }
    e->hnext = l->buckets[b];
    l->buckets[b] = e;
    dlist_push_head(&l->lru, &e->lru);
    l->n++;
    l->bytes += e->bytes;
    rev_lru_evict(l);
}

/* ---- lifetime ------------------------------------------------------------------------- */

int
rev_cache_acquire(void)
{
    int rc = CAT_OK;
    pthread_mutex_lock(&rev_cache.lock);
    if (rev_cache.refs == 0) {
        const struct rev_cache_limits *d = &rev_cache_defaults;
        if (getrandom(rev_cache.salt, sizeof(rev_cache.salt), 0) !=
                (ssize_t)sizeof(rev_cache.salt) ||
            rev_lru_init(&rev_cache.answers, d->answers, 0) != CAT_OK ||
            rev_lru_init(&rev_cache.crls, d->crls, d->crl_bytes) != CAT_OK ||
            rev_lru_init(&rev_cache.down, d->down, 0) != CAT_OK) {
            rev_lru_fini(&rev_cache.answers);
            rev_lru_fini(&rev_cache.crls);
            rev_lru_fini(&rev_cache.down);
            rc = CAT_ERR;
        }
    }
    if (rc == CAT_OK)
        rev_cache.refs++;
    pthread_mutex_unlock(&rev_cache.lock);
    return rc;
}

void
rev_cache_release(void)
{
    pthread_mutex_lock(&rev_cache.lock);
    CAT_ASSERT(rev_cache.refs > 0);
    if (--rev_cache.refs == 0) {
        rev_lru_fini(&rev_cache.answers);
        rev_lru_fini(&rev_cache.crls);
        rev_lru_fini(&rev_cache.down);
    }
    pthread_mutex_unlock(&rev_cache.lock);
}

void
rev_cache_set_limits(const struct rev_cache_limits *lim)
{
    pthread_mutex_lock(&rev_cache.lock);
    rev_cache.answers.max_n = lim->answers;
    rev_cache.crls.max_n = lim->crls;
    rev_cache.crls.max_bytes = lim->crl_bytes;
    rev_cache.down.max_n = lim->down;
    rev_lru_evict(&rev_cache.answers);
    rev_lru_evict(&rev_cache.crls);
    rev_lru_evict(&rev_cache.down);
    pthread_mutex_unlock(&rev_cache.lock);
}

void
rev_cache_flush(void)
{
    pthread_mutex_lock(&rev_cache.lock);
    rev_lru_clear(&rev_cache.answers);
    rev_lru_clear(&rev_cache.crls);
    rev_lru_clear(&rev_cache.down);
    pthread_mutex_unlock(&rev_cache.lock);
}

void
rev_cache_get_stats(struct rev_cache_stats *s)
{
    pthread_mutex_lock(&rev_cache.lock);
    s->answers = rev_cache.answers.n;
    s->crls = rev_cache.crls.n;
    s->crl_bytes = rev_cache.crls.bytes;
    s->down = rev_cache.down.n;
    pthread_mutex_unlock(&rev_cache.lock);
}

/* ---- the three kinds ---------------------------------------------------------------------- */

void
rev_cache_put_answer(const uint8_t key[REV_KEY_LEN], const struct rev_answer *a, int64_t expires,
                     int64_t now)
{
    if (expires <= now)
        return;
    struct rev_centry *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return; /* a cache that forgets is still correct */
    memcpy(e->key, key, REV_KEY_LEN);
    e->expires = expires;
    e->bytes = sizeof(*e);
    e->ans = *a;
    pthread_mutex_lock(&rev_cache.lock);
    /* No answer never hides one: a stapled response may have answered while a
     * check of the same certificate was still failing through its sources. */
    struct rev_centry *o =
        a->status == REV_UNKNOWN ? rev_lru_get(&rev_cache.answers, key, now) : NULL;
    if (o != NULL && o->ans.status != REV_UNKNOWN)
        free(e);
    else
        rev_lru_put(&rev_cache.answers, e);
    pthread_mutex_unlock(&rev_cache.lock);
}

bool
rev_cache_get_answer(const uint8_t key[REV_KEY_LEN], int64_t now, struct rev_answer *out)
{
    pthread_mutex_lock(&rev_cache.lock);
    struct rev_centry *e = rev_lru_get(&rev_cache.answers, key, now);
    if (e != NULL)
        *out = e->ans;
    pthread_mutex_unlock(&rev_cache.lock);
    return e != NULL;
}

void
rev_cache_put_down(const char *url, const char *why, int64_t until, int64_t now)
{
    if (until <= now)
        return;
    struct rev_centry *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return;
    rev_key('D', url, strlen(url), NULL, 0, e->key);
    e->expires = until;
    e->bytes = sizeof(*e);
    e->ans.status = REV_UNKNOWN;
    snprintf(e->ans.detail, sizeof(e->ans.detail), "%s", why);
    pthread_mutex_lock(&rev_cache.lock);
    rev_lru_put(&rev_cache.down, e);
    pthread_mutex_unlock(&rev_cache.lock);
}

bool
rev_cache_is_down(const char *url, int64_t now, char *why, size_t whylen)
{
    uint8_t key[REV_KEY_LEN];
    rev_key('D', url, strlen(url), NULL, 0, key);
    pthread_mutex_lock(&rev_cache.lock);
    struct rev_centry *e = rev_lru_get(&rev_cache.down, key, now);
    if (e != NULL && whylen > 0)
        snprintf(why, whylen, "%s", e->ans.detail);
    pthread_mutex_unlock(&rev_cache.lock);
    return e != NULL;
}

void
rev_cache_put_crl(const char *url, const struct rev_cert *issuer, struct rev_crl *crl,
                  int64_t expires, int64_t now)
{
    struct rev_centry *e = expires > now ? calloc(1, sizeof(*e)) : NULL;
    if (e == NULL) {
        rev_crl_free(crl);
        return;
    }
    rev_key('C', url, strlen(url), issuer->spki.p, issuer->spki.len, e->key);
    e->expires = expires;
    e->crl = crl;
    e->bytes = sizeof(*e) + rev_crl_bytes(crl);
    pthread_mutex_lock(&rev_cache.lock);
    rev_lru_put(&rev_cache.crls, e);
    pthread_mutex_unlock(&rev_cache.lock);
}

int
rev_cache_find_crl(const char *url, const struct rev_cert *cert, const struct rev_cert *issuer,
                   int64_t now, struct rev_verdict *v)
{
    uint8_t key[REV_KEY_LEN];
    int rc = CAT_DECLINED;
    rev_key('C', url, strlen(url), issuer->spki.p, issuer->spki.len, key);
    pthread_mutex_lock(&rev_cache.lock);
    /* The lookup runs under the lock: another worker may evict the CRL as soon as it is
     * released. A binary search is short. */
    struct rev_centry *e = rev_lru_get(&rev_cache.crls, key, now);
    if (e != NULL)
        rc = rev_crl_find(e->crl, cert, v);
    pthread_mutex_unlock(&rev_cache.lock);
    return rc;
}
