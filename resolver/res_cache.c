/*
 * The resolver's keyed hash table and its answer cache. The cache maps a
 * normalised name to an address list or a remembered failure, expires
 * entries lazily against the caller's clock (ev_now() in production, a plain
 * number in tests) and never holds more than max entries: inserting beyond
 * the bound evicts the least recently used. Each entry is one allocation.
 */
#include "resolver/res_int.h"

#include <string.h>

/* ---- SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF") */

#define RES_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static void
res_sipround(uint64_t v[4])
{
    v[0] += v[1];
    v[1] = RES_ROTL(v[1], 13);
    v[1] ^= v[0];
    v[0] = RES_ROTL(v[0], 32);
    v[2] += v[3];
    v[3] = RES_ROTL(v[3], 16);
    v[3] ^= v[2];
    v[0] += v[3];
    v[3] = RES_ROTL(v[3], 21);
    v[3] ^= v[0];
    v[2] += v[1];
    v[1] = RES_ROTL(v[1], 17);
    v[1] ^= v[2];
    v[2] = RES_ROTL(v[2], 32);
}

uint64_t
res_siphash(const uint64_t k[2], const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t v[4] = {
        k[0] ^ 0x736f6d6570736575ULL,
        k[1] ^ 0x646f72616e646f6dULL,
        k[0] ^ 0x6c7967656e657261ULL,
        k[1] ^ 0x7465646279746573ULL,
    };
    size_t i = 0;

    for (; i + 8 <= len; i += 8) {
        uint64_t m = 0;
        for (unsigned j = 0; j < 8; j++)
            m |= (uint64_t)p[i + j] << (8 * j);
        v[3] ^= m;
        res_sipround(v);
        res_sipround(v);
        v[0] ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (unsigned j = 0; i + j < len; j++)
        b |= (uint64_t)p[i + j] << (8 * j);
    v[3] ^= b;
    res_sipround(v);
    res_sipround(v);
    v[0] ^= b;
    v[2] ^= 0xff;
    for (unsigned r = 0; r < 4; r++)
        res_sipround(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* ---- hash table ----------------------------------------------------------- */

#define RES_HTAB_MIN 16u
/* Doubling stops here: a bigger table is memory the bounded cache cannot use. */
#define RES_HTAB_MAX ((size_t)1 << 24)

int
res_htab_init(struct res_htab *t, size_t hint, const uint64_t seed[2])
{
    size_t nb = RES_HTAB_MIN;
    while (nb < hint && nb < RES_HTAB_MAX)
        nb *= 2;
    memset(t, 0, sizeof(*t));
    t->b = calloc(nb, sizeof(*t->b));
    if (t->b == NULL)
        return CAT_ERR;
    t->nb = nb;
    t->seed[0] = seed[0];
    t->seed[1] = seed[1];
    return CAT_OK;
}

void
res_htab_fini(struct res_htab *t)
{
    free(t->b);
    t->b = NULL;
    t->nb = t->n = 0;
}

uint64_t
res_htab_hash(const struct res_htab *t, const char *key)
{
    return res_siphash(t->seed, key, strlen(key));
}

struct res_hnode *
res_htab_find(const struct res_htab *t, const char *key, uint64_t hash)
{
    for (struct res_hnode *n = t->b[hash & (t->nb - 1)]; n != NULL; n = n->hnext)
        if (n->hash == hash && strcmp(n->key, key) == 0)
            return n;
    return NULL;
}

static void
res_htab_grow(struct res_htab *t)
{
    size_t nb = t->nb * 2;
    struct res_hnode **b = calloc(nb, sizeof(*b));
    if (b == NULL)
        return; /* keep the old buckets: slower, still correct */
    for (size_t i = 0; i < t->nb; i++) {
        struct res_hnode *n = t->b[i];
        while (n != NULL) {
            struct res_hnode *next = n->hnext;
            size_t j = n->hash & (nb - 1);
            n->hnext = b[j];
            b[j] = n;
            n = next;
        }
    }
    free(t->b);
    t->b = b;
    t->nb = nb;
}

void
res_htab_insert(struct res_htab *t, struct res_hnode *n)
{
    if (t->n >= t->nb && t->nb < RES_HTAB_MAX)
        res_htab_grow(t);
    size_t i = n->hash & (t->nb - 1);
    n->hnext = t->b[i];
    t->b[i] = n;
    t->n++;
}

void
res_htab_remove(struct res_htab *t, struct res_hnode *n)
{
    struct res_hnode **pp = &t->b[n->hash & (t->nb - 1)];
    while (*pp != NULL && *pp != n)
        pp = &(*pp)->hnext;
    CAT_ASSERT(*pp == n);
    *pp = n->hnext;
    n->hnext = NULL;
    t->n--;
}

/* ---- cache ---------------------------------------------------------------- */

struct res_centry {
    struct res_hnode node; /* node.key points at key[] below */
    struct dlist_link lru; /* in res_cache.lru */
    double expires;
    enum res_err err;
    size_t n;
    struct res_caddr addrs[RES_MAX_ADDRS];
    char key[]; /* NUL-terminated */
};

int
res_cache_init(struct res_cache *c, size_t max, const uint64_t seed[2])
{
    memset(c, 0, sizeof(*c));
    c->max = max;
    /* Buckets grow with the entries; start small, a big bound may never fill. */
    return res_htab_init(&c->tab, CAT_MIN(max, 1024), seed);
}

static void
res_cache_drop(struct res_cache *c, struct res_centry *e)
{
    res_htab_remove(&c->tab, &e->node);
    dlist_unlink(&c->lru, &e->lru);
    c->n--;
    free(e);
}

void
res_cache_fini(struct res_cache *c)
{
    DLIST_FOREACH_SAFE(e, &c->lru, struct res_centry, lru)
        free(e);
    dlist_init(&c->lru);
    c->n = 0;
    res_htab_fini(&c->tab);
}

static struct res_centry *
res_cache_find(const struct res_cache *c, const char *key)
{
    struct res_hnode *n = res_htab_find(&c->tab, key, res_htab_hash(&c->tab, key));
    return n != NULL ? CAT_CONTAINER_OF(n, struct res_centry, node) : NULL;
}

bool
res_cache_get(struct res_cache *c, const char *key, double now, struct res_answer *out)
{
    if (c->max == 0)
        return false;
    struct res_centry *e = res_cache_find(c, key);
    if (e == NULL)
        return false;
    if (now >= e->expires) {
        res_cache_drop(c, e);
        return false;
    }
    dlist_move_head(&c->lru, &e->lru);
    out->err = e->err;
    out->n = 0;
    for (size_t i = 0; i < e->n; i++)
        res_answer_add(out, &e->addrs[i]);
    return true;
}

void
res_cache_put(struct res_cache *c, const char *key, double now, const struct res_answer *ans,
              unsigned ttl_s)
{
    if (c->max == 0 || ttl_s == 0)
        return;
    struct res_centry *old = res_cache_find(c, key);
    if (old != NULL)
        res_cache_drop(c, old);
    struct res_centry *tail;
    while (c->n >= c->max && (tail = DLIST_LAST(&c->lru, struct res_centry, lru)) != NULL)
        res_cache_drop(c, tail);

    size_t klen = strlen(key);
    struct res_centry *e = malloc(sizeof(*e) + klen + 1);
    if (e == NULL)
        return; /* not cached: the next lookup asks again */
    memcpy(e->key, key, klen + 1);
    e->node.key = e->key;
    e->node.hash = res_htab_hash(&c->tab, key);
    e->node.hnext = NULL;
    e->lru = (struct dlist_link){NULL, NULL};
    e->expires = now + ttl_s;
    e->err = ans->err;
    e->n = 0;
    for (size_t i = 0; ans->err == RES_OK && i < ans->n && e->n < RES_MAX_ADDRS; i++)
        if (res_caddr_from_sa((const struct sockaddr *)&ans->addrs[i], &e->addrs[e->n]))
            e->n++;
    res_htab_insert(&c->tab, &e->node);
    dlist_push_head(&c->lru, &e->lru);
    c->n++;
}

double
res_cache_expiry(const struct res_cache *c, const char *key)
{
    const struct res_centry *e = res_cache_find(c, key);
    return e != NULL ? e->expires : -1.0;
}
