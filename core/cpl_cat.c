/*
 * Hostname categories for server.certificate.hostname.category=: a text file
 * of "[category]" sections listing exact names ("bank.example") and domains
 * (".bank.example": the name and everything below it), parsed once into one
 * open-addressing table. A lookup hashes the host once from the right, so
 * every label-boundary suffix costs one probe: O(labels), no allocation.
 * Category id 0 is the reserved "none" (unrated).
 */
#include "core/cpl_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct cpl_cat_ent {
    uint32_t hash; /* cpl_hash_fin(cpl_hash_host(name), suffix) */
    struct cpl_str name;
    bool suffix;
    uint32_t id0; /* c->ids[id0 .. id0+nid) */
    uint32_t nid;
};

struct cpl_cats {
    struct cpl_arena strs;
    CPL_VEC(struct cpl_str, names); /* [0] is "none" */
    CPL_VEC(struct cpl_cat_ent, ents);
    uint16_t *ids;          /* owned */
    struct cpl_slot *slots; /* owned: open addressing */
    size_t mask;
};

/* Parse-time (entry, category) pair: an entry may be listed under several categories. */
struct cpl_cat_pair {
    uint32_t ent;
    uint16_t id;
};

static const uint16_t cpl_cat_none_ids[1] = {0};

static const struct cpl_cat_ent *
cpl_cats_find(const struct cpl_cats *c, uint32_t hash, bool suffix, const char *s, size_t len)
{
    for (size_t i = hash & c->mask;; i = (i + 1) & c->mask) {
        const struct cpl_slot *slot = &c->slots[i];
        if (slot->idx == 0)
            return NULL;
        if (slot->hash != hash)
            continue;
        const struct cpl_cat_ent *e = &c->ents[slot->idx - 1];
        if (e->suffix == suffix && e->name.len == len &&
            memcmp(c->strs.b + e->name.off, s, len) == 0)
            return e;
    }
}

static int
cpl_cats_rehash(struct cpl_cats *c, size_t want)
{
    size_t size = 64;
    while (size < want * 2)
        size *= 2;
    struct cpl_slot *slots = calloc(size, sizeof(*slots));
    if (slots == NULL)
        return CAT_ERR;
    free(c->slots);
    c->slots = slots;
    c->mask = size - 1;
    for (size_t k = 0; k < c->n_ents; k++) {
        size_t i = c->ents[k].hash & c->mask;
        while (slots[i].idx != 0)
            i = (i + 1) & c->mask;
        slots[i] = (struct cpl_slot){c->ents[k].hash, (uint32_t)k + 1};
    }
    return CAT_OK;
}

int
cpl_cats_id(const struct cpl_cats *c, const char *name, size_t len)
{
    if (len == 4 && strncasecmp(name, "none", 4) == 0)
        return 0;
    if (c == NULL)
        return -1;
    for (size_t i = 1; i < c->n_names; i++) {
        if (c->names[i].len != len)
            continue;
        size_t k = 0;
        while (k < len && cpl_lower(name[k]) == c->strs.b[c->names[i].off + k])
            k++;
        if (k == len)
            return (int)i;
    }
    return -1;
}

const char *
cpl_cats_name(const struct cpl_cats *c, unsigned id)
{
    if (c == NULL || id == 0 || id >= c->n_names)
        return "none";
    return c->strs.b + c->names[id].off;
}

size_t
cpl_cats_count(const struct cpl_cats *c)
{
    return c == NULL ? 1 : c->n_names;
}

void
cpl_cats_lookup(const struct cpl_cats *c, const char *host, size_t len, const uint16_t **ids,
                size_t *n)
{
    *ids = cpl_cat_none_ids;
    *n = 0;
    if (c == NULL || c->n_ents == 0 || len == 0)
        return;
    const struct cpl_cat_ent *best = NULL;
    uint32_t h = CPL_HASH_SEED;
    bool ip = cpl_host_is_ip(host, len);
    for (size_t i = len; i-- > 0;) {
        h = cpl_hash_step(h, (unsigned char)host[i]);
        if (ip || (i > 0 && host[i - 1] != '.'))
            continue;
        /* Walking leftwards, each hit is a longer (more specific) domain. */
        const struct cpl_cat_ent *e = cpl_cats_find(c, cpl_hash_fin(h, 1), true, host + i, len - i);
        if (e != NULL)
            best = e;
    }
    const struct cpl_cat_ent *e = cpl_cats_find(c, cpl_hash_fin(h, 0), false, host, len);
    if (e != NULL)
        best = e;
    if (best != NULL) {
        *ids = c->ids + best->id0;
        *n = best->nid;
    }
}

const char *
cpl_category(const struct cpl_cats *c, const char *host)
{
    char norm[CPL_HOST_MAX + 1];
    int len = cpl_host_norm(host, strlen(host), norm);
    if (len <= 0)
        return "none";
    const uint16_t *ids;
    size_t n;
    cpl_cats_lookup(c, norm, (size_t)len, &ids, &n);
    return n == 0 ? "none" : cpl_cats_name(c, ids[0]);
}

void
cpl_cats_stats(const struct cpl_cats *c, size_t *n_cats, size_t *n_entries)
{
    *n_cats = c->n_names - 1;
    *n_entries = c->n_ents;
}

void
cpl_cats_free(struct cpl_cats *c)
{
    if (c == NULL)
        return;
    free(c->strs.b);
    free(c->names);
    free(c->ents);
    free(c->ids);
    free(c->slots);
    free(c);
}

/* One "[name]" line: finds or adds the category; returns its id or -1. */
static int
cpl_cats_section(struct cpl_cats *c, struct cpl_lex *lx, const char *s, size_t len, unsigned col)
{
    char shown[CPL_ERR_SHOW + 8];
    const char *close = memchr(s, ']', len);
    if (close == NULL)
        return cpl_lex_err(lx, lx->line, col, "unterminated category header: expected ']'");
    for (const char *q = close + 1; q < s + len; q++)
        if (*q != ' ' && *q != '\t' && *q != '\r')
            return cpl_lex_err(lx, lx->line, col + (unsigned)(q - s),
                               "unexpected text after ']': expected the end of the line");
    const char *n = s + 1;
    size_t nlen = (size_t)(close - n);
    while (nlen > 0 && (*n == ' ' || *n == '\t')) {
        n++;
        nlen--;
    }
    while (nlen > 0 && (n[nlen - 1] == ' ' || n[nlen - 1] == '\t'))
        nlen--;
    bool ok = nlen > 0 && nlen <= 64;
    for (size_t i = 0; ok && i < nlen; i++) {
        char ch = n[i];
        ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
             ch == ' ' || ch == '_' || ch == '.' || ch == '-';
    }
    if (!ok)
        return cpl_lex_err(lx, lx->line, col,
                           "bad category name '%s': expected 1-64 letters, digits, spaces, "
                           "'_', '.' or '-'",
                           cpl_show(shown, sizeof(shown), n, nlen));
    int id = cpl_cats_id(c, n, nlen);
    if (id == 0)
        return cpl_lex_err(lx, lx->line, col, "category 'none' is reserved for unrated names");
    if (id > 0)
        return id; /* a repeated section adds to the category */
    if (c->n_names > CPL_MAX_CATS)
        return cpl_lex_err(lx, lx->line, col, "too many categories (at most %u)", CPL_MAX_CATS);
    if (CPL_PUSH(c, names) != CAT_OK ||
        cpl_arena_add(&c->strs, n, nlen, true, &c->names[c->n_names]) != CAT_OK)
        return cpl_lex_err(lx, lx->line, col, "out of memory");
    return (int)c->n_names++;
}

/* One host or .domain line under category id. */
static int
cpl_cats_entry(struct cpl_cats *c, struct cpl_lex *lx, const char *s, size_t len, unsigned col,
               int id, struct cpl_cat_pair **pairs, size_t *n_pairs, size_t *cap_pairs)
{
    char shown[CPL_ERR_SHOW + 8], norm[CPL_HOST_MAX + 1];
    if (id < 0)
        return cpl_lex_err(lx, lx->line, col,
                           "name outside a category: expected a [category] line first");
    if (len >= 2 && s[0] == '*' && s[1] == '.')
        return cpl_lex_err(lx, lx->line, col,
                           "wildcards are not supported: write .example.com for the domain "
                           "and every name below it");
    bool suffix = s[0] == '.';
    int nlen = cpl_host_norm(s + suffix, len - suffix, norm);
    if (nlen <= 0 || !cpl_host_valid(norm, (size_t)nlen) ||
        (suffix && cpl_host_is_ip(norm, (size_t)nlen)))
        return cpl_lex_err(lx, lx->line, col,
                           "bad host name '%s': expected a name such as bank.example or a "
                           "domain such as .bank.example",
                           cpl_show(shown, sizeof(shown), s, len));
    uint32_t hash = cpl_hash_fin(cpl_hash_host(norm, (size_t)nlen), suffix);
    const struct cpl_cat_ent *e = cpl_cats_find(c, hash, suffix, norm, (size_t)nlen);
    uint32_t ent;
    if (e != NULL) {
        ent = (uint32_t)(e - c->ents);
    } else {
        if (c->n_ents >= CPL_MAX_CAT_ENTRIES)
            return cpl_lex_err(lx, lx->line, col, "too many names (at most %u)",
                               CPL_MAX_CAT_ENTRIES);
        if (CPL_PUSH(c, ents) != CAT_OK)
            return cpl_lex_err(lx, lx->line, col, "out of memory");
        struct cpl_cat_ent *ne = &c->ents[c->n_ents];
        memset(ne, 0, sizeof(*ne));
        ne->hash = hash;
        ne->suffix = suffix;
        if (cpl_arena_add(&c->strs, norm, (size_t)nlen, false, &ne->name) != CAT_OK)
            return cpl_lex_err(lx, lx->line, col, "out of memory");
        ent = (uint32_t)c->n_ents++;
        if (c->n_ents * 2 > c->mask + 1) {
            /* Rehashing inserts every entry, this one included. */
            if (cpl_cats_rehash(c, c->n_ents * 2) != CAT_OK)
                return cpl_lex_err(lx, lx->line, col, "out of memory");
        } else {
            size_t i = hash & c->mask;
            while (c->slots[i].idx != 0)
                i = (i + 1) & c->mask;
            c->slots[i] = (struct cpl_slot){hash, ent + 1};
        }
    }
    /* Consecutive duplicates are the common case of a repeated line. */
    if (*n_pairs > 0 && (*pairs)[*n_pairs - 1].ent == ent && (*pairs)[*n_pairs - 1].id == id)
        return CAT_OK;
    if (cpl_vec_grow((void **)pairs, cap_pairs, *n_pairs, sizeof(**pairs)) != CAT_OK)
        return cpl_lex_err(lx, lx->line, col, "out of memory");
    (*pairs)[(*n_pairs)++] = (struct cpl_cat_pair){ent, (uint16_t)id};
    return CAT_OK;
}

/* Gives every entry its contiguous, duplicate-free list of category ids. */
static int
cpl_cats_lists(struct cpl_cats *c, const struct cpl_cat_pair *pairs, size_t n_pairs)
{
    c->ids = malloc((n_pairs ? n_pairs : 1) * sizeof(*c->ids));
    if (c->ids == NULL)
        return CAT_ERR;
    for (size_t i = 0; i < n_pairs; i++)
        c->ents[pairs[i].ent].nid++;
    uint32_t off = 0;
    for (size_t k = 0; k < c->n_ents; k++) {
        c->ents[k].id0 = off;
        off += c->ents[k].nid;
        c->ents[k].nid = 0;
    }
    for (size_t i = 0; i < n_pairs; i++) {
        struct cpl_cat_ent *e = &c->ents[pairs[i].ent];
        bool dup = false;
        for (uint32_t j = 0; j < e->nid && !dup; j++)
            dup = c->ids[e->id0 + j] == pairs[i].id;
        if (!dup)
            c->ids[e->id0 + e->nid++] = pairs[i].id;
    }
    return CAT_OK;
}

struct cpl_cats *
cpl_cats_parse(const char *text, size_t len, const char *name, char *err, size_t errlen)
{
    struct cpl_lex lx;
    cpl_lex_init(&lx, text, len, name, err, errlen);
    if (len > CPL_MAX_CATS_TEXT) {
        cpl_lex_err(&lx, 1, 1, "categories file too large (at most %u bytes)", CPL_MAX_CATS_TEXT);
        return NULL;
    }
    struct cpl_cat_pair *pairs = NULL;
    size_t n_pairs = 0, cap_pairs = 0;
    struct cpl_cats *c = calloc(1, sizeof(*c));
    if (c == NULL || cpl_arena_init(&c->strs) != CAT_OK || CPL_PUSH(c, names) != CAT_OK ||
        cpl_arena_add(&c->strs, "none", 4, false, &c->names[0]) != CAT_OK ||
        cpl_cats_rehash(c, 16) != CAT_OK) {
        cpl_lex_err(&lx, 1, 1, "out of memory");
        goto fail;
    }
    c->n_names = 1;
    int id = -1;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl != NULL ? nl : end;
        lx.line_start = p;
        if ((size_t)(eol - p) > CPL_MAX_LINE) {
            cpl_lex_err(&lx, lx.line, 1, "line too long (at most %u bytes)", CPL_MAX_LINE);
            goto fail;
        }
        const char *s = p, *e = eol;
        for (const char *q = s; q < e; q++) {
            unsigned char ch = (unsigned char)*q;
            if (ch == ';') {
                e = q;
                break;
            }
            if ((ch < 0x20 && ch != '\t' && ch != '\r') || ch == 0x7f) {
                cpl_lex_err(&lx, lx.line, (unsigned)(q - p) + 1,
                            "control character 0x%02x: expected printable text", ch);
                goto fail;
            }
        }
        while (s < e && (*s == ' ' || *s == '\t' || *s == '\r'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
            e--;
        unsigned col = (unsigned)(s - p) + 1;
        if (s < e && *s == '[') {
            if ((id = cpl_cats_section(c, &lx, s, (size_t)(e - s), col)) < 0)
                goto fail;
        } else if (s < e) {
            const char *blank = s;
            while (blank < e && *blank != ' ' && *blank != '\t')
                blank++;
            if (blank < e) {
                char shown[CPL_ERR_SHOW + 8];
                cpl_lex_err(&lx, lx.line, col + (unsigned)(blank - s),
                            "unexpected '%s' after the name: expected one name per line",
                            cpl_show(shown, sizeof(shown), blank + 1, (size_t)(e - blank - 1)));
                goto fail;
            }
            if (cpl_cats_entry(c, &lx, s, (size_t)(e - s), col, id, &pairs, &n_pairs, &cap_pairs) !=
                CAT_OK)
                goto fail;
        }
        p = nl != NULL ? nl + 1 : end;
        lx.line++;
    }
    if (cpl_cats_lists(c, pairs, n_pairs) != CAT_OK) {
        cpl_lex_err(&lx, lx.line, 1, "out of memory");
        goto fail;
    }
    free(pairs);
    return c;
fail:
    free(pairs);
    cpl_cats_free(c);
    return NULL;
}
