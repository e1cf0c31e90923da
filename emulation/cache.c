/*
 * The leaf cache: a bounded LRU keyed by SHA-256 over the origin DER and the
 * emulation parameters, shared by every worker under one mutex. A miss puts
 * an in-flight (BUILDING) entry in the table and signs outside the lock;
 * concurrent requests for the same key wait on the condition variable, so
 * one certificate is made per key. Only READY entries are in the LRU and
 * count towards the bound. An entry leaves the table on eviction or failure
 * but is freed only when no builder or waiter still holds it (pins == 0).
 */
#include "emulation/emu_int.h"

#include "core/log.h"

#include <string.h>

#include <wolfssl/wolfcrypt/sha256.h>

int
emu_cache_init(struct emu_cache *c, unsigned cap)
{
    size_t n = 16;

    /* About one entry per bucket at the bound; the table never grows. */
    while (n < cap && n < ((size_t)1 << 20))
        n *= 2;
    c->buckets = calloc(n, sizeof(*c->buckets));
    if (!c->buckets)
        return CAT_ERR;
    c->mask = n - 1;
    c->cap = cap;
    dlist_init(&c->lru);
    memset(&c->stats, 0, sizeof(c->stats));
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    return CAT_OK;
}

void
emu_cache_fini(struct emu_cache *c)
{
    if (!c->buckets)
        return;
    /* No request may be in flight any more: every entry is in the table. */
    for (size_t i = 0; i <= c->mask; i++) {
        struct emu_entry *en = c->buckets[i], *next;

        for (; en; en = next) {
            next = en->hnext;
            CAT_ASSERT(en->pins == 0);
            emu_leaf_unref(en->leaf);
            free(en);
        }
    }
    free(c->buckets);
    c->buckets = NULL;
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
}

static void
cache_hash_str(wc_Sha256 *h, const char *s)
{
    uint8_t hdr[5] = {0};
    size_t len = s ? strlen(s) : 0;

    /* Presence byte and length: no two parameter sets hash the same input. */
    hdr[0] = s != NULL;
    hdr[1] = (uint8_t)(len >> 24);
    hdr[2] = (uint8_t)(len >> 16);
    hdr[3] = (uint8_t)(len >> 8);
    hdr[4] = (uint8_t)len;
    wc_Sha256Update(h, hdr, sizeof(hdr));
    if (len)
        wc_Sha256Update(h, (const uint8_t *)s, (word32)len);
}

static int
cache_key(const uint8_t *der, size_t len, const struct emu_params *p, uint8_t key[32])
{
    wc_Sha256 h;
    uint8_t n[8];
    int ret;

    for (int i = 0; i < 8; i++)
        n[i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    ret = wc_InitSha256(&h);
    if (ret != 0)
        return CAT_ERR;
    wc_Sha256Update(&h, n, sizeof(n));
    wc_Sha256Update(&h, der, (word32)len);
    cache_hash_str(&h, p->hostname);
    cache_hash_str(&h, p->splash_text);
    cache_hash_str(&h, p->splash_url);
    cache_hash_str(&h, p->crl_url);
    ret = wc_Sha256Final(&h, key);
    wc_Sha256Free(&h);
    return ret == 0 ? CAT_OK : CAT_ERR;
}

static struct emu_entry **
cache_slot(struct emu_cache *c, const uint8_t key[32])
{
    uint64_t h;

    memcpy(&h, key, sizeof(h));
    return &c->buckets[h & c->mask];
}

static struct emu_entry *
cache_find(struct emu_cache *c, const uint8_t key[32])
{
    for (struct emu_entry *en = *cache_slot(c, key); en; en = en->hnext)
        if (memcmp(en->key, key, 32) == 0)
            return en;
    return NULL;
}

static void
cache_unlink_hash(struct emu_cache *c, struct emu_entry *en)
{
    struct emu_entry **pp = cache_slot(c, en->key);

    while (*pp != en)
        pp = &(*pp)->hnext;
    *pp = en->hnext;
    en->hnext = NULL;
    en->in_table = false;
}

/* Drops a pin; a detached entry nobody holds goes on *dead (freed after unlock). */
static void
cache_unpin(struct emu_entry *en, struct emu_entry **dead)
{
    en->pins--;
    if (!en->in_table && en->pins == 0) {
        en->hnext = *dead;
        *dead = en;
    }
}

static void
cache_free_dead(struct emu_entry *dead)
{
    while (dead) {
        struct emu_entry *next = dead->hnext;

        emu_leaf_unref(dead->leaf);
        free(dead);
        dead = next;
    }
}

/* Called with the lock held, once a new READY entry is at the front. */
static void
cache_evict(struct emu_cache *c, struct emu_entry **dead)
{
    while (c->stats.entries > c->cap) {
        struct emu_entry *old = DLIST_LAST(&c->lru, struct emu_entry, lru);

        CAT_ASSERT(old != NULL);
        dlist_unlink(&c->lru, &old->lru);
        cache_unlink_hash(c, old);
        c->stats.entries--;
        c->stats.evicted++;
        /* Waiters that have not woken yet still take their reference. */
        if (old->pins == 0) {
            old->hnext = *dead;
            *dead = old;
        }
    }
}

struct emu_leaf *
emu_leaf_get(struct emu *e, const uint8_t *origin_der, size_t origin_len,
             const struct emu_params *p, bool *cached, char *err, size_t errlen)
{
    struct emu_cache *c = &e->cache;
    struct emu_params q = *p;
    struct emu_entry *en, *dead = NULL;
    struct emu_leaf *l = NULL;
    uint8_t key[32];
    char berr[sizeof(en->err)];

    if (cached)
        *cached = false;
    /* An empty string means none, so both forms share one cache entry. */
    if (q.hostname && !*q.hostname)
        q.hostname = NULL;
    if (q.splash_text && !*q.splash_text)
        q.splash_text = NULL;
    if (q.splash_url && !*q.splash_url)
        q.splash_url = NULL;
    if (q.crl_url && !*q.crl_url)
        q.crl_url = NULL;
    if (origin_len == 0 || origin_len > EMU_CERT_MAX) {
        emu_seterr(err, errlen, "origin certificate: bad length %zu", origin_len);
        return NULL;
    }
    if (emu_params_check(&q, err, errlen) != CAT_OK)
        return NULL;
    if (cache_key(origin_der, origin_len, &q, key) != CAT_OK) {
        emu_seterr(err, errlen, "SHA-256 failed");
        return NULL;
    }

    pthread_mutex_lock(&c->mu);
    en = cache_find(c, key);
    if (en && en->state == EMU_ENT_READY) {
        dlist_move_head(&c->lru, &en->lru);
        l = emu_leaf_ref(en->leaf);
        c->stats.hits++;
        pthread_mutex_unlock(&c->mu);
        if (cached)
            *cached = true;
        return l;
    }
    if (en) {
        /* Another worker is making this one: wait for it, then share it. */
        c->stats.waited++;
        en->pins++;
        while (en->state == EMU_ENT_BUILDING)
            pthread_cond_wait(&c->cv, &c->mu);
        if (en->state == EMU_ENT_READY) {
            l = emu_leaf_ref(en->leaf);
            if (cached)
                *cached = true;
        } else {
            emu_seterr(err, errlen, "%s", en->err);
        }
        cache_unpin(en, &dead);
        pthread_mutex_unlock(&c->mu);
        cache_free_dead(dead);
        return l;
    }
    en = calloc(1, sizeof(*en));
    if (!en) {
        pthread_mutex_unlock(&c->mu);
        emu_seterr(err, errlen, "out of memory");
        return NULL;
    }
    memcpy(en->key, key, sizeof(key));
    en->state = EMU_ENT_BUILDING;
    en->pins = 1;
    en->in_table = true;
    en->hnext = *cache_slot(c, key);
    *cache_slot(c, key) = en;
    pthread_mutex_unlock(&c->mu);

    berr[0] = '\0';
    l = emu_leaf_make(e, origin_der, origin_len, &q, berr, sizeof(berr));

    pthread_mutex_lock(&c->mu);
    if (l) {
        en->leaf = emu_leaf_ref(l); /* the cache's reference */
        en->state = EMU_ENT_READY;
        c->stats.created++;
        dlist_push_head(&c->lru, &en->lru);
        c->stats.entries++;
        cache_evict(c, &dead);
    } else {
        en->state = EMU_ENT_FAILED;
        snprintf(en->err, sizeof(en->err), "%s", berr);
        cache_unlink_hash(c, en);
        emu_seterr(err, errlen, "%s", berr);
    }
    cache_unpin(en, &dead);
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    cache_free_dead(dead);
    return l; /* on failure the caller logs, with its connection's context */
}

void
emu_get_stats(struct emu *e, struct emu_stats *out)
{
    pthread_mutex_lock(&e->cache.mu);
    *out = e->cache.stats;
    pthread_mutex_unlock(&e->cache.mu);
}
