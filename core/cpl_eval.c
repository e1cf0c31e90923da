/*
 * The policy evaluator: runs the compiled layers of one kind against a
 * transaction and merges the first matching rule of each into a decision.
 * Conditions use three-valued logic (yes / no / unknown, the last for data
 * the transaction does not have yet); a rule applies only on "yes".
 *
 * Large layers are indexed at compile time: a rule with a positive host,
 * domain, address or category condition is filed under each of its values,
 * so an evaluation only visits the rules filed under the transaction's names
 * (one hash probe per label, per prefix length in use, per category) plus the
 * unfiled ones, in rule order. The result is
 * the same as the linear scan (cpl_eval_linear), which tests compare against.
 * Nothing here allocates; all scratch lives on the stack.
 */
#include "core/cpl_int.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

enum { CPL_K_NO = 0, CPL_K_YES = 1, CPL_K_UNK = 2 };

#define CPL_IX_MIN_RULES 8 /* below this a linear scan is as fast */
#define CPL_IX_LISTS 64    /* candidate lists merged per layer; more falls back to linear */

struct cpl_addr {
    uint8_t fam; /* 0 unknown, 4, 6 */
    uint8_t a[16];
};

/* A transaction host, normalised on first use in an evaluation. */
struct cpl_host {
    const char *raw; /* borrowed: the cpl_txn's, NULL = unknown */
    bool done;       /* len, ip and s are set */
    int len;         /* -1 unknown, -2 too long to match anything */
    bool ip;
    char s[CPL_HOST_MAX + 1];
};

struct cpl_ctx {
    const struct cpl *p;
    const struct cpl_txn *t;
    struct cpl_addr cli, srv;
    struct cpl_host url, srv_host, cert;
    bool cats_done;
    const uint16_t *cat_ids;
    size_t n_cat;
};

static void
cpl_ctx_addr(const struct sockaddr *sa, struct cpl_addr *out)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    out->fam = 0;
    if (sa == NULL)
        return;
    if (sa->sa_family == AF_INET) {
        out->fam = 4;
        memcpy(out->a, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const uint8_t *a6 = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
        if (memcmp(a6, mapped, 12) == 0) {
            out->fam = 4;
            memcpy(out->a, a6 + 12, 4);
        } else {
            out->fam = 6;
            memcpy(out->a, a6, 16);
        }
    }
}

static const struct cpl_host *
cpl_host_get(struct cpl_host *h)
{
    if (h->done)
        return h;
    h->done = true;
    h->len = -1;
    if (h->raw == NULL)
        return h;
    size_t n = strnlen(h->raw, CPL_HOST_MAX + 4);
    h->len = cpl_host_norm(h->raw, n, h->s);
    if (h->len == -1)
        h->len = -2;
    h->ip = h->len > 0 && cpl_host_is_ip(h->s, (size_t)h->len);
    return h;
}

static const char *
cpl_s(const struct cpl *p, uint32_t off)
{
    return off ? p->strs.b + off : NULL;
}

static bool
cpl_net_has(const struct cpl_net *n, const struct cpl_addr *a)
{
    if (n->family != a->fam)
        return false;
    unsigned full = n->prefix / 8, rest = n->prefix % 8;
    if (memcmp(n->addr, a->a, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xffu << (8 - rest));
    return (n->addr[full] & mask) == (a->a[full] & mask);
}

/* Host values are sorted by (length, bytes): binary search. */
static bool
cpl_host_in(const struct cpl *p, const struct cpl_atom *a, const char *h, size_t len)
{
    size_t lo = 0, hi = a->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct cpl_str *v = &p->vals[a->val0 + mid].s;
        int c = v->len != len ? (v->len < len ? -1 : 1) : memcmp(p->strs.b + v->off, h, len);
        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

static bool
cpl_domain_in(const struct cpl *p, const struct cpl_atom *a, const struct cpl_host *h)
{
    size_t len = (size_t)h->len;
    if (cpl_host_in(p, a, h->s, len))
        return true;
    if (h->ip)
        return false;
    for (size_t i = 1; i < len; i++)
        if (h->s[i - 1] == '.' && cpl_host_in(p, a, h->s + i, len - i))
            return true;
    return false;
}

/* Stored values are lowercase; s is the transaction's text. */
static bool
cpl_eq_ci(const char *v, size_t vlen, const char *s, size_t slen)
{
    if (vlen != slen)
        return false;
    for (size_t i = 0; i < vlen; i++)
        if (cpl_lower(s[i]) != v[i])
            return false;
    return true;
}

static bool
cpl_substr_ci(const char *v, size_t vlen, const char *s, size_t slen)
{
    if (vlen > slen)
        return false;
    for (size_t i = 0; i + vlen <= slen; i++) {
        if (cpl_lower(s[i]) != v[0])
            continue;
        size_t k = 1;
        while (k < vlen && cpl_lower(s[i + k]) == v[k])
            k++;
        if (k == vlen)
            return true;
    }
    return false;
}

enum cpl_str_op { CPL_OP_EQ, CPL_OP_PREFIX, CPL_OP_SUBSTR };

static int
cpl_str_any(const struct cpl *p, const struct cpl_atom *a, const char *s, size_t slen,
            enum cpl_str_op op)
{
    for (uint32_t i = 0; i < a->n; i++) {
        const struct cpl_str *v = &p->vals[a->val0 + i].s;
        const char *vs = p->strs.b + v->off;
        bool m;
        if (!a->ci)
            m = v->len == slen && memcmp(vs, s, slen) == 0;
        else if (op == CPL_OP_EQ)
            m = cpl_eq_ci(vs, v->len, s, slen);
        else if (op == CPL_OP_PREFIX)
            m = v->len <= slen && cpl_eq_ci(vs, v->len, s, v->len);
        else
            m = cpl_substr_ci(vs, v->len, s, slen);
        if (m)
            return CPL_K_YES;
    }
    return CPL_K_NO;
}

static int cpl_conds(struct cpl_ctx *x, const struct cpl_conds *c, bool exact);

static void
cpl_ctx_cats(struct cpl_ctx *x)
{
    if (x->cats_done)
        return;
    x->cats_done = true;
    x->n_cat = 0;
    x->cat_ids = NULL;
    const struct cpl_host *h = cpl_host_get(&x->cert);
    if (h->len > 0)
        cpl_cats_lookup(x->p->cats, h->s, (size_t)h->len, &x->cat_ids, &x->n_cat);
}

/* One condition, before negation: YES if any value matches, UNK without data. */
static int
cpl_atom_any(struct cpl_ctx *x, const struct cpl_atom *a)
{
    const struct cpl *p = x->p;
    const struct cpl_txn *t = x->t;
    const struct cpl_addr *addr = NULL;
    struct cpl_host *host = NULL;
    const char *s = NULL;
    unsigned port = 0;
    enum cpl_str_op op = CPL_OP_EQ;
    switch ((enum cpl_field)a->field) {
    case CPL_F_CLIENT_ADDR:
        addr = &x->cli;
        break;
    case CPL_F_URL_ADDR:
        addr = &x->srv;
        break;
    case CPL_F_PROXY_PORT:
        port = t->proxy_port;
        break;
    case CPL_F_URL_PORT:
        port = t->url_port;
        break;
    case CPL_F_CLIENT_PROTO:
        s = t->client_protocol;
        break;
    case CPL_F_METHOD:
        s = t->method;
        break;
    case CPL_F_URL_SCHEME:
        s = t->url_scheme;
        break;
    case CPL_F_USER:
        s = t->user;
        break;
    case CPL_F_EXCEPTION_ID:
        s = t->exception_id;
        break;
    case CPL_F_URL_PATH:
        s = t->url_path;
        op = CPL_OP_PREFIX;
        break;
    case CPL_F_URL_SUBSTRING:
        s = t->url;
        op = CPL_OP_SUBSTR;
        break;
    case CPL_F_URL_HOST:
    case CPL_F_URL_DOMAIN:
        host = &x->url;
        break;
    case CPL_F_SRV_HOST:
        host = &x->srv_host;
        break;
    case CPL_F_CERT_HOST:
        host = &x->cert;
        break;
    case CPL_F_CERT_CAT: {
        if (x->cert.raw == NULL)
            return CPL_K_UNK;
        cpl_ctx_cats(x);
        for (uint32_t i = 0; i < a->n; i++) {
            uint32_t want = p->vals[a->val0 + i].id;
            if (want == 0 && x->n_cat == 0)
                return CPL_K_YES;
            for (size_t k = 0; k < x->n_cat; k++)
                if (x->cat_ids[k] == want)
                    return CPL_K_YES;
        }
        return CPL_K_NO;
    }
    case CPL_F_HEADER: {
        if (t->header == NULL)
            return CPL_K_UNK;
        size_t vlen = 0;
        const char *v = t->header(t->header_arg, p->strs.b + a->hdr.off, &vlen);
        return v == NULL ? CPL_K_NO : cpl_str_any(p, a, v, vlen, CPL_OP_EQ);
    }
    case CPL_F_CONDITION: {
        int r = CPL_K_NO;
        for (uint32_t i = 0; i < a->n && r != CPL_K_YES; i++) {
            const struct cpl_define *d = &p->defines[p->vals[a->val0 + i].id];
            for (uint32_t c = d->clause0; c < d->clause0 + d->n; c++) {
                int cr = cpl_conds(x, &p->clauses[c], true);
                if (cr == CPL_K_YES)
                    return CPL_K_YES;
                if (cr == CPL_K_UNK)
                    r = CPL_K_UNK;
            }
        }
        return r;
    }
    case CPL_F_COUNT:
        break;
    }
    if (addr != NULL) {
        if (addr->fam == 0)
            return CPL_K_UNK;
        for (uint32_t i = 0; i < a->n; i++)
            if (cpl_net_has(&p->nets[p->vals[a->val0 + i].id], addr))
                return CPL_K_YES;
        return CPL_K_NO;
    }
    if (host != NULL) {
        cpl_host_get(host);
        if (host->len == -1)
            return CPL_K_UNK;
        if (host->len < 0)
            return CPL_K_NO;
        if (a->field == CPL_F_URL_DOMAIN)
            return cpl_domain_in(p, a, host) ? CPL_K_YES : CPL_K_NO;
        return cpl_host_in(p, a, host->s, (size_t)host->len) ? CPL_K_YES : CPL_K_NO;
    }
    if (a->field == CPL_F_PROXY_PORT || a->field == CPL_F_URL_PORT) {
        if (port == 0)
            return CPL_K_UNK;
        for (uint32_t i = 0; i < a->n; i++) {
            const union cpl_val *v = &p->vals[a->val0 + i];
            if (port >= v->port.lo && port <= v->port.hi)
                return CPL_K_YES;
        }
        return CPL_K_NO;
    }
    if (s == NULL)
        return CPL_K_UNK;
    return cpl_str_any(p, a, s, strlen(s), op);
}

/*
 * A conjunction. exact: tell NO from UNK (define lines, whose value feeds a
 * negation); otherwise any non-YES ends the scan, since only YES applies a rule.
 */
static int
cpl_conds(struct cpl_ctx *x, const struct cpl_conds *c, bool exact)
{
    int r = CPL_K_YES;
    for (uint32_t i = 0; i < c->n; i++) {
        const struct cpl_atom *a = &x->p->atoms[c->atom0 + i];
        int ar = cpl_atom_any(x, a);
        if (a->neg && ar != CPL_K_UNK)
            ar = ar == CPL_K_YES ? CPL_K_NO : CPL_K_YES;
        if (ar == CPL_K_NO)
            return CPL_K_NO;
        if (ar == CPL_K_UNK) {
            if (!exact)
                return CPL_K_UNK;
            r = CPL_K_UNK;
        }
    }
    return r;
}

/* --- the index --------------------------------------------------------------- */

/* Key atoms by preference: exact names are the most selective, categories the least. */
static int
cpl_ix_rank(unsigned field)
{
    switch (field) {
    case CPL_F_URL_HOST:
    case CPL_F_SRV_HOST:
    case CPL_F_CERT_HOST:
        return 0;
    case CPL_F_URL_DOMAIN:
        return 1;
    case CPL_F_CLIENT_ADDR:
    case CPL_F_URL_ADDR:
        return 2;
    case CPL_F_CERT_CAT:
        return 3;
    default:
        return -1;
    }
}

static bool
cpl_ix_is_net(unsigned field)
{
    return field == CPL_F_CLIENT_ADDR || field == CPL_F_URL_ADDR;
}

static uint32_t
cpl_ix_hash(uint32_t h, uint32_t layer, unsigned field)
{
    return cpl_hash_fin(h ^ (field * 0x01000193u), layer + 1);
}

/* struct cpl_net has no padding: its bytes are its identity. */
static uint32_t
cpl_ix_net_hash(const struct cpl_net *n)
{
    return cpl_hash_host((const char *)n, sizeof(*n));
}

/* The entry for a string key (s != NULL), a category id or a network (net != NULL). */
static const struct cpl_ix *
cpl_ix_find(const struct cpl *p, uint32_t hash, uint32_t layer, unsigned field, uint32_t id,
            const char *s, size_t len, const struct cpl_net *net)
{
    if (p->ix_slots == NULL)
        return NULL;
    for (size_t i = hash & p->ix_mask;; i = (i + 1) & p->ix_mask) {
        const struct cpl_slot *slot = &p->ix_slots[i];
        if (slot->idx == 0)
            return NULL;
        if (slot->hash != hash)
            continue;
        const struct cpl_ix *e = &p->ix[slot->idx - 1];
        if (e->layer != layer || e->field != field)
            continue;
        if (net != NULL ? memcmp(&p->nets[e->key], net, sizeof(*net)) == 0
            : s != NULL ? e->key_len == len && memcmp(p->strs.b + e->key, s, len) == 0
                        : e->key == id)
            return e;
    }
}

struct cpl_list {
    const uint32_t *p, *end;
};

static bool
cpl_ix_add(struct cpl_list *l, size_t *n, const struct cpl *p, const struct cpl_ix *e)
{
    if (e == NULL)
        return true;
    if (*n == CPL_IX_LISTS)
        return false;
    l[*n].p = p->ix_rules + e->list0;
    l[*n].end = l[*n].p + e->n;
    ++*n;
    return true;
}

/* Adds the lists for host h under field; false if the lists overflow. */
static bool
cpl_ix_host(struct cpl_ctx *x, uint32_t li, unsigned field, struct cpl_host *hv, struct cpl_list *l,
            size_t *n)
{
    const struct cpl *p = x->p;
    const struct cpl_host *h = cpl_host_get(hv);
    if (h->len <= 0)
        return true; /* unknown or unmatchable: no filed rule can apply */
    size_t len = (size_t)h->len;
    uint32_t hh = CPL_HASH_SEED;
    for (size_t i = len; i-- > 0;) {
        hh = cpl_hash_step(hh, (unsigned char)h->s[i]);
        if (field != CPL_F_URL_DOMAIN || i == 0 || h->ip || h->s[i - 1] != '.')
            continue;
        uint32_t k = cpl_ix_hash(hh, li, field);
        if (!cpl_ix_add(l, n, p, cpl_ix_find(p, k, li, field, 0, h->s + i, len - i, NULL)))
            return false;
    }
    uint32_t k = cpl_ix_hash(hh, li, field);
    return cpl_ix_add(l, n, p, cpl_ix_find(p, k, li, field, 0, h->s, len, NULL));
}

/* Adds the lists for address a: one probe per prefix length filed in the layer. */
static bool
cpl_ix_addr(struct cpl_ctx *x, uint32_t li, unsigned field, const struct cpl_addr *a,
            struct cpl_list *l, size_t *n)
{
    const struct cpl *p = x->p;
    const struct cpl_lay *L = &p->layers[li];
    unsigned w = field == CPL_F_URL_ADDR;
    if (a->fam == 0)
        return true;
    unsigned bits = a->fam == 4 ? 32 : 128;
    for (unsigned pfx = 0; pfx <= bits; pfx++) {
        uint64_t m = a->fam == 4 ? L->pfx4[w] : L->pfx6[w][pfx / 64];
        if (!(m & (1ull << (pfx % 64))))
            continue;
        struct cpl_net net = {.family = a->fam, .prefix = (uint8_t)pfx};
        memcpy(net.addr, a->a, pfx / 8);
        if (pfx % 8)
            net.addr[pfx / 8] = (uint8_t)(a->a[pfx / 8] & (0xff00u >> (pfx % 8)));
        uint32_t k = cpl_ix_hash(cpl_ix_net_hash(&net), li, field);
        if (!cpl_ix_add(l, n, p, cpl_ix_find(p, k, li, field, 0, NULL, 0, &net)))
            return false;
    }
    return true;
}

/* First matching rule of an indexed layer: -1 none, -2 too many lists (scan instead). */
static long
cpl_ix_match(struct cpl_ctx *x, uint32_t li)
{
    const struct cpl *p = x->p;
    const struct cpl_lay *L = &p->layers[li];
    struct cpl_list l[CPL_IX_LISTS];
    size_t n = 0;
    if (L->nalw > 0) {
        l[0].p = p->ix_rules + L->always0;
        l[0].end = l[0].p + L->nalw;
        n = 1;
    }
    bool ok = true;
    uint32_t f = L->ix_fields;
    if (f & (1u << CPL_F_URL_HOST))
        ok = ok && cpl_ix_host(x, li, CPL_F_URL_HOST, &x->url, l, &n);
    if (f & (1u << CPL_F_URL_DOMAIN))
        ok = ok && cpl_ix_host(x, li, CPL_F_URL_DOMAIN, &x->url, l, &n);
    if (f & (1u << CPL_F_SRV_HOST))
        ok = ok && cpl_ix_host(x, li, CPL_F_SRV_HOST, &x->srv_host, l, &n);
    if (f & (1u << CPL_F_CERT_HOST))
        ok = ok && cpl_ix_host(x, li, CPL_F_CERT_HOST, &x->cert, l, &n);
    if (f & (1u << CPL_F_CLIENT_ADDR))
        ok = ok && cpl_ix_addr(x, li, CPL_F_CLIENT_ADDR, &x->cli, l, &n);
    if (f & (1u << CPL_F_URL_ADDR))
        ok = ok && cpl_ix_addr(x, li, CPL_F_URL_ADDR, &x->srv, l, &n);
    if (ok && (f & (1u << CPL_F_CERT_CAT)) && x->cert.raw != NULL) {
        cpl_ctx_cats(x);
        static const uint16_t none = 0;
        const uint16_t *ids = x->n_cat ? x->cat_ids : &none;
        size_t nid = x->n_cat ? x->n_cat : 1;
        for (size_t i = 0; i < nid && ok; i++) {
            uint32_t k = cpl_ix_hash(ids[i] * 2654435761u, li, CPL_F_CERT_CAT);
            ok = cpl_ix_add(l, &n, p, cpl_ix_find(p, k, li, CPL_F_CERT_CAT, ids[i], NULL, 0, NULL));
        }
    }
    if (!ok)
        return -2;
    /* Merge the ascending lists; a rule filed under several keys is tried once. */
    long last = -1;
    for (;;) {
        uint32_t best = UINT32_MAX;
        for (size_t i = 0; i < n; i++) {
            while (l[i].p < l[i].end && (long)*l[i].p <= last)
                l[i].p++;
            if (l[i].p < l[i].end && *l[i].p < best)
                best = *l[i].p;
        }
        if (best == UINT32_MAX)
            return -1;
        last = best;
        if (cpl_conds(x, &p->rules[best].c, false) == CPL_K_YES)
            return best;
    }
}

/* A filed value: (layer, field, key) -> rule. */
struct cpl_ix_tup {
    uint32_t layer, key, rule;
    uint16_t len;
    uint8_t field;
};

static int
cpl_ix_key_cmp(const struct cpl_ix_tup *x, const struct cpl_ix_tup *y, const struct cpl *p)
{
    if (x->layer != y->layer)
        return x->layer < y->layer ? -1 : 1;
    if (x->field != y->field)
        return x->field < y->field ? -1 : 1;
    if (cpl_ix_is_net(x->field))
        return memcmp(&p->nets[x->key], &p->nets[y->key], sizeof(struct cpl_net));
    if (x->key != y->key) /* strings are interned: equal strings have equal offsets */
        return x->key < y->key ? -1 : 1;
    return 0;
}

static int
cpl_ix_tup_cmp(const void *a, const void *b, void *arg)
{
    const struct cpl_ix_tup *x = a, *y = b;
    int c = cpl_ix_key_cmp(x, y, arg);
    if (c != 0)
        return c;
    return x->rule < y->rule ? -1 : x->rule > y->rule;
}

/* Files rule r of layer L under its key atom, or in the always list. */
static int
cpl_ix_file(struct cpl *p, uint32_t li, uint32_t r, struct cpl_ix_tup **tup, size_t *n_tup,
            size_t *cap_tup)
{
    struct cpl_lay *L = &p->layers[li];
    const struct cpl_conds *c = &p->rules[r].c;
    const struct cpl_atom *key = NULL;
    for (uint32_t i = 0; i < c->n; i++) {
        const struct cpl_atom *a = &p->atoms[c->atom0 + i];
        int rank = cpl_ix_rank(a->field);
        if (!a->neg && rank >= 0 && (key == NULL || rank < cpl_ix_rank(key->field)))
            key = a;
    }
    if (key == NULL) {
        if (CPL_PUSH(p, ix_rules) != CAT_OK)
            return CAT_ERR;
        p->ix_rules[p->n_ix_rules++] = r;
        L->nalw++;
        return CAT_OK;
    }
    L->ix_fields |= 1u << key->field;
    for (uint32_t v = key->val0; v < key->val0 + key->n; v++) {
        if (cpl_vec_grow((void **)tup, cap_tup, *n_tup, sizeof(**tup)) != CAT_OK)
            return CAT_ERR;
        uint32_t k = p->vals[v].id;
        uint16_t len = 0;
        if (cpl_ix_is_net(key->field)) {
            const struct cpl_net *net = &p->nets[k];
            unsigned w = key->field == CPL_F_URL_ADDR;
            if (net->family == 4)
                L->pfx4[w] |= 1ull << net->prefix;
            else
                L->pfx6[w][net->prefix / 64] |= 1ull << (net->prefix % 64);
        } else if (key->field != CPL_F_CERT_CAT) {
            k = p->vals[v].s.off;
            len = (uint16_t)p->vals[v].s.len;
        }
        (*tup)[(*n_tup)++] = (struct cpl_ix_tup){li, k, r, len, key->field};
    }
    return CAT_OK;
}

int
cpl_index_build(struct cpl *p)
{
    struct cpl_ix_tup *tup = NULL;
    size_t n_tup = 0, cap_tup = 0;
    int rc = CAT_ERR;
    for (uint32_t li = 0; li < p->n_layers; li++) {
        struct cpl_lay *L = &p->layers[li];
        if (L->n < CPL_IX_MIN_RULES)
            continue;
        L->indexed = true;
        L->always0 = (uint32_t)p->n_ix_rules;
        for (uint32_t r = L->rule0; r < L->rule0 + L->n; r++)
            if (cpl_ix_file(p, li, r, &tup, &n_tup, &cap_tup) != CAT_OK)
                goto out;
    }
    if (n_tup > 0)
        qsort_r(tup, n_tup, sizeof(*tup), cpl_ix_tup_cmp, p);
    for (size_t i = 0; i < n_tup; i++) {
        const struct cpl_ix_tup *u = &tup[i];
        bool same = i > 0 && cpl_ix_key_cmp(&tup[i - 1], u, p) == 0;
        if (same && tup[i - 1].rule == u->rule)
            continue;
        if (!same) {
            if (CPL_PUSH(p, ix) != CAT_OK)
                goto out;
            uint32_t h = u->field == CPL_F_CERT_CAT ? u->key * 2654435761u
                         : cpl_ix_is_net(u->field)  ? cpl_ix_net_hash(&p->nets[u->key])
                                                    : cpl_hash_host(p->strs.b + u->key, u->len);
            p->ix[p->n_ix++] = (struct cpl_ix){cpl_ix_hash(h, u->layer, u->field),
                                               u->layer,
                                               u->key,
                                               u->len,
                                               u->field,
                                               (uint32_t)p->n_ix_rules,
                                               0};
        }
        if (CPL_PUSH(p, ix_rules) != CAT_OK)
            goto out;
        p->ix_rules[p->n_ix_rules++] = u->rule;
        p->ix[p->n_ix - 1].n++;
    }
    if (p->n_ix > 0) {
        size_t size = 16;
        while (size < p->n_ix * 2)
            size *= 2;
        p->ix_slots = calloc(size, sizeof(*p->ix_slots));
        if (p->ix_slots == NULL)
            goto out;
        p->ix_mask = size - 1;
        for (size_t k = 0; k < p->n_ix; k++) {
            size_t i = p->ix[k].hash & p->ix_mask;
            while (p->ix_slots[i].idx != 0)
                i = (i + 1) & p->ix_mask;
            p->ix_slots[i] = (struct cpl_slot){p->ix[k].hash, (uint32_t)k + 1};
        }
    }
    rc = CAT_OK;
out:
    free(tup);
    return rc;
}

/* --- evaluation ---------------------------------------------------------------- */

static void
cpl_apply(const struct cpl *p, const struct cpl_props *pr, struct cpl_decision *d)
{
    uint32_t s = pr->set;
    if (s & CPL_P_ALLOW) {
        d->allow = (enum cpl_tri)pr->allow;
        d->deny_reason = cpl_s(p, pr->deny_reason);
        d->deny_unauthorized = pr->deny_unauth;
    }
    if (s & CPL_P_AUTH)
        d->auth_realm = cpl_s(p, pr->auth_realm);
    if (s & CPL_P_INTERCEPT)
        d->intercept = (enum cpl_tri)pr->intercept;
    if (s & CPL_P_KEYRING)
        d->issuer_keyring = cpl_s(p, pr->keyring);
    if (s & CPL_P_EMU_HOST)
        d->emu_hostname = cpl_s(p, pr->emu_host);
    if (s & CPL_P_SPLASH_TEXT)
        d->splash_text = cpl_s(p, pr->splash_text);
    if (s & CPL_P_SPLASH_URL)
        d->splash_url = cpl_s(p, pr->splash_url);
    if (s & CPL_P_VALIDATE)
        d->validate = (enum cpl_tri)pr->validate;
    if (s & CPL_P_IGNORE) {
        d->ignore = (d->ignore & ~(unsigned)pr->ign_mask) | (pr->ign_val & pr->ign_mask);
        d->ignore_set = true;
    }
    if (s & CPL_P_FORCE)
        d->force_ssl = (enum cpl_tri)pr->force_ssl;
    if (s & CPL_P_FORWARD)
        d->forward = cpl_s(p, pr->forward);
    if (s & CPL_P_INSPECT)
        d->inspect = (enum cpl_inspect)pr->inspect;
}

static void
cpl_run(const struct cpl *p, enum cpl_layer which, const struct cpl_txn *t, struct cpl_decision *d,
        bool use_index)
{
    if ((unsigned)which >= CPL_L_COUNT)
        return;
    struct cpl_ctx x;
    x.p = p;
    x.t = t;
    x.cats_done = false;
    cpl_ctx_addr(t->client, &x.cli);
    cpl_ctx_addr(t->url_address, &x.srv);
    x.url.raw = t->url_host;
    x.srv_host.raw = t->server_url_host;
    x.cert.raw = t->cert_hostname;
    x.url.done = x.srv_host.done = x.cert.done = false;
    for (uint32_t k = p->kind_off[which]; k < p->kind_off[which + 1]; k++) {
        uint32_t li = p->kind_layers[k];
        const struct cpl_lay *L = &p->layers[li];
        struct cpl_trace tr = {which, L->line, 0, false};
        long m = -1;
        if (L->guard.n > 0 && cpl_conds(&x, &L->guard, false) != CPL_K_YES) {
            tr.guard_failed = true;
        } else {
            if (use_index && L->indexed)
                m = cpl_ix_match(&x, li);
            if (m == -2 || !use_index || !L->indexed) {
                m = -1;
                for (uint32_t r = L->rule0; r < L->rule0 + L->n && m < 0; r++)
                    if (cpl_conds(&x, &p->rules[r].c, false) == CPL_K_YES)
                        m = r;
            }
        }
        if (m >= 0) {
            cpl_apply(p, &p->rules[m].pr, d);
            tr.rule_line = p->rules[m].line;
        }
        if (d->n_layers_run < CPL_MAX_LAYERS)
            d->trace[d->n_layers_run] = tr;
        d->n_layers_run++;
    }
}

void
cpl_eval(const struct cpl *p, enum cpl_layer which, const struct cpl_txn *t, struct cpl_decision *d)
{
    cpl_run(p, which, t, d, true);
}

void
cpl_eval_linear(const struct cpl *p, enum cpl_layer which, const struct cpl_txn *t,
                struct cpl_decision *d)
{
    cpl_run(p, which, t, d, false);
}

void
cpl_decision_init(struct cpl_decision *d)
{
    memset(d, 0, sizeof(*d));
}

const char *
cpl_tri_name(enum cpl_tri t)
{
    return t == CPL_YES ? "yes" : t == CPL_NO ? "no" : "unset";
}
