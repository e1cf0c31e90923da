/*
 * Results cache of the validation engine: chain hash -> struct val_result,
 * a bounded LRU shared by all workers behind one mutex (a lookup is a hash
 * and a copy, far cheaper than the signature checks it saves). Entries die
 * at min(insert + ttl, the next notBefore/notAfter boundary the caller
 * gives), and also when the clock runs backwards past their creation.
 */
#include "core/val_int.h"

#include "core/dlist.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct val_cache_ent {
    uint8_t key[32];
    time_t created, expires;
    struct val_cache_ent *hnext; /* bucket chain */
    struct dlist_link lru;       /* in val_cache.lru */
    struct val_result res;
};

struct val_cache {
    pthread_mutex_t mtx;
    size_t cap, n;
    unsigned ttl;
    size_t mask;                    /* buckets - 1 */
    struct val_cache_ent **buckets; /* owned array; entries owned via the LRU list */
    struct dlist lru;               /* struct val_cache_ent: head is the most recent */
    uint64_t hits, misses;
};

struct val_cache *
val_cache_new(size_t cap, unsigned ttl)
{
    if (cap == 0 || cap > ((size_t)1 << 24))
        return NULL;
    struct val_cache *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    size_t nb = 16;
    while (nb < cap * 2)
        nb <<= 1;
    c->buckets = calloc(nb, sizeof(*c->buckets));
    if (c->buckets == NULL) {
        free(c);
        return NULL;
    }
    c->mask = nb - 1;
    c->cap = cap;
    c->ttl = ttl;
    pthread_mutex_init(&c->mtx, NULL);
    return c;
}

void
val_cache_free(struct val_cache *c)
{
    if (c == NULL)
        return;
    DLIST_FOREACH_SAFE(e, &c->lru, struct val_cache_ent, lru)
        free(e);
    pthread_mutex_destroy(&c->mtx);
    free(c->buckets);
    free(c);
}

/* The key is already a SHA-256: any 8 bytes of it are a good hash. */
static size_t
val_cache_bucket(const struct val_cache *c, const uint8_t key[32])
{
    uint64_t h;
    memcpy(&h, key, sizeof(h));
    return (size_t)h & c->mask;
}

static void
val_cache_unlink_hash(struct val_cache *c, struct val_cache_ent *e)
{
    struct val_cache_ent **pp = &c->buckets[val_cache_bucket(c, e->key)];
    while (*pp != NULL && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp == e)
        *pp = e->hnext;
    e->hnext = NULL;
}

static struct val_cache_ent *
val_cache_find(struct val_cache *c, const uint8_t key[32])
{
    for (struct val_cache_ent *e = c->buckets[val_cache_bucket(c, key)]; e != NULL; e = e->hnext)
        if (memcmp(e->key, key, 32) == 0)
            return e;
    return NULL;
}

static void
val_cache_drop(struct val_cache *c, struct val_cache_ent *e)
{
    val_cache_unlink_hash(c, e);
    dlist_unlink(&c->lru, &e->lru);
    free(e);
    c->n--;
}

bool
val_cache_get(struct val_cache *c, const uint8_t key[32], time_t now, struct val_result *out)
{
    bool hit = false;
    pthread_mutex_lock(&c->mtx);
    struct val_cache_ent *e = val_cache_find(c, key);
    if (e != NULL && (now >= e->expires || now < e->created)) {
        val_cache_drop(c, e);
        e = NULL;
    }
    if (e != NULL) {
        *out = e->res;
        dlist_move_head(&c->lru, &e->lru);
        c->hits++;
        hit = true;
    } else {
        c->misses++;
    }
    pthread_mutex_unlock(&c->mtx);
    return hit;
}

void
val_cache_put(struct val_cache *c, const uint8_t key[32], const struct val_result *r, time_t now,
              time_t expires)
{
    time_t until = now + (time_t)c->ttl;
    if (expires < until)
        until = expires;
    if (until <= now)
        return;
    pthread_mutex_lock(&c->mtx);
    struct val_cache_ent *e = val_cache_find(c, key);
    if (e == NULL && c->n >= c->cap)
        e = DLIST_LAST(&c->lru, struct val_cache_ent, lru); /* recycle the least recently used */
    if (e != NULL) {
        val_cache_unlink_hash(c, e);
        dlist_unlink(&c->lru, &e->lru);
    } else {
        e = malloc(sizeof(*e));
        if (e == NULL) {
            pthread_mutex_unlock(&c->mtx);
            return;
        }
        e->lru = (struct dlist_link){NULL, NULL};
        c->n++;
    }
    memcpy(e->key, key, 32);
    e->created = now;
    e->expires = until;
    e->res = *r;
    size_t b = val_cache_bucket(c, key);
    e->hnext = c->buckets[b];
    c->buckets[b] = e;
    dlist_push_head(&c->lru, &e->lru);
    pthread_mutex_unlock(&c->mtx);
}

void
val_cache_stats(struct val_cache *c, size_t *entries, uint64_t *hits, uint64_t *misses)
{
    pthread_mutex_lock(&c->mtx);
    *entries = c->n;
    *hits = c->hits;
    *misses = c->misses;
    pthread_mutex_unlock(&c->mtx);
}
