/*
 * Server-certificate validation: the trust store, path building from the
 * chain an origin sent, the browser-grade checks and the hostname rules.
 * Runs in workers after the origin handshake (which never fails for
 * certificate reasons); the caller turns the error bitmask into a verdict.
 *
 * Invariants: the store is read-only once built (only its cache, behind a
 * mutex, changes); certificates the server sent are never trusted, they
 * only link the leaf to an anchor by verified signatures; every error seen
 * on the chosen path is reported, and the best path (fewest errors) wins.
 */
#include "core/validate.h"

#include "core/log.h"
#include "core/val_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/sha256.h>

#define VAL_SIG_BUDGET 24    /* signature checks per val_check: bounds hostile chains */
#define VAL_VISIT_BUDGET 256 /* path-building steps per val_check */
#define VAL_FILE_MAX ((size_t)16 << 20)
#define VAL_DEFAULT_TTL 3600

struct val_store {
    struct val_cert *anchors; /* owned, sorted by subject hash; each der owned */
    size_t n_anchors;
    size_t skipped;
    struct val_cache *cache; /* owned; NULL: no cache */
};

/* ---- error names ------------------------------------------------------------- */

static const char *const val_error_names[] = {
    "untrusted_issuer",
    "missing_intermediate",
    "expired",
    "not_yet_valid",
    "weak_key",
    "weak_signature",
    "bad_ca",
    "bad_eku",
    "hostname_mismatch",
    "revoked",
    "revocation_unknown",
    "protocol_insecure",
};

/* The names policy uses for groups of errors (server.certificate.validate.ignore.*). */
unsigned
val_policy_bits(const char *name, size_t len)
{
    static const struct {
        const char *name;
        unsigned bits;
    } groups[] = {
        {"untrusted_issuer", VAL_E_UNTRUSTED | VAL_E_MISSING_INTERMEDIATE},
        {"expiration", VAL_E_EXPIRED | VAL_E_NOT_YET_VALID},
        {"revocation", VAL_E_REVOKED | VAL_E_REVOCATION_UNKNOWN},
        {"all", VAL_E_ALL},
    };
    for (size_t i = 0; i < CAT_ARRAY_LEN(groups); i++)
        if (strlen(groups[i].name) == len && memcmp(groups[i].name, name, len) == 0)
            return groups[i].bits;
    return val_error_bit(name, len);
}

const char *
val_errors_str(unsigned errors, char *buf, size_t cap)
{
    size_t o = 0;
    if (cap == 0)
        return buf;
    buf[0] = '\0';
    for (size_t i = 0; i < CAT_ARRAY_LEN(val_error_names); i++) {
        if (!(errors & (1u << i)))
            continue;
        size_t l = strlen(val_error_names[i]) + (o > 0);
        if (o + l >= cap)
            continue;
        if (o > 0)
            buf[o++] = ' ';
        memcpy(buf + o, val_error_names[i], strlen(val_error_names[i]));
        o += strlen(val_error_names[i]);
        buf[o] = '\0';
    }
    return buf;
}

unsigned
val_error_bit(const char *name, size_t len)
{
    for (size_t i = 0; i < CAT_ARRAY_LEN(val_error_names); i++)
        if (strlen(val_error_names[i]) == len && memcmp(val_error_names[i], name, len) == 0)
            return 1u << i;
    return 0;
}

/* ---- trust store --------------------------------------------------------------- */

struct val_loader {
    struct val_cert *v;
    size_t n, cap;
    size_t skipped;
    DecodedCert *dc;
};

/* Adds every certificate of one PEM text; returns how many were usable. */
static size_t
val_load_pem(struct val_loader *l, const char *pem, size_t len, const char *what)
{
    size_t pos = 0, added = 0;
    uint8_t *buf = malloc(len > 0 ? len : 1);
    if (buf == NULL)
        return 0;
    for (unsigned guard = 0; guard < 100000; guard++) {
        long dl = val_pem_next(pem, len, &pos, buf, len);
        if (dl == 0)
            break;
        if (dl < 0) {
            l->skipped++;
            continue;
        }
        if (l->n == l->cap) {
            size_t nc = l->cap ? l->cap * 2 : 256;
            struct val_cert *nv = realloc(l->v, nc * sizeof(*nv));
            if (nv == NULL) {
                l->skipped++;
                break;
            }
            l->v = nv;
            l->cap = nc;
        }
        uint8_t *der = malloc((size_t)dl);
        if (der == NULL) {
            l->skipped++;
            break;
        }
        memcpy(der, buf, (size_t)dl);
        struct val_cert *c = &l->v[l->n];
        /* An anchor with an unknown critical extension is refused, as a
         * CertManager would. */
        if (val_cert_parse(c, der, (size_t)dl, l->dc, NULL) != CAT_OK || c->crit_unknown ||
            c->key_oid == 0) {
            log_debug(LOG_FAC_SSL, NULL, "trust store: %s: certificate %zu unusable", what,
                      added + l->skipped + 1);
            free(der);
            l->skipped++;
            continue;
        }
        l->n++;
        added++;
    }
    free(buf);
    return added;
}

/* Reads a whole file; NULL + errno. */
static char *
val_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            if (cap >= VAL_FILE_MAX) {
                errno = EFBIG;
                goto fail;
            }
            cap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, cap);
            if (nb == NULL)
                goto fail;
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) {
            if (ferror(f)) {
                errno = EIO;
                goto fail;
            }
            break;
        }
    }
    fclose(f);
    *len = n;
    return buf;
fail:;
    int e = errno;
    fclose(f);
    free(buf);
    errno = e;
    return NULL;
}

static int
val_anchor_cmp(const void *a, const void *b)
{
    const struct val_cert *x = a, *y = b;
    int r = memcmp(x->subject_hash, y->subject_hash, VAL_HASH_SIZE);
    return r != 0 ? r : memcmp(x->sha256, y->sha256, sizeof(x->sha256));
}

struct val_store *
val_store_new(const struct val_store_opts *o, char *err, size_t errlen)
{
    struct val_loader l = {0};
    struct val_store *s = calloc(1, sizeof(*s));
    l.dc = malloc(sizeof(*l.dc));
    if (s == NULL || l.dc == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (o->use_system) {
        const char *path = o->system_file != NULL ? o->system_file : VAL_SYSTEM_CAS;
        size_t len;
        char *pem = val_read_file(path, &len);
        if (pem == NULL) {
            log_warn(LOG_FAC_SSL, NULL, "trust store: %s: %s (system CAs not loaded)", path,
                     strerror(errno));
        } else {
            size_t got = val_load_pem(&l, pem, len, path);
            free(pem);
            log_debug(LOG_FAC_SSL, NULL, "trust store: %zu CAs from %s", got, path);
        }
    }
    for (size_t i = 0; i < o->n_files; i++) {
        size_t len;
        char *pem = val_read_file(o->files[i], &len);
        if (pem == NULL) {
            snprintf(err, errlen, "%s: %s", o->files[i], strerror(errno));
            goto fail;
        }
        size_t got = val_load_pem(&l, pem, len, o->files[i]);
        free(pem);
        if (got == 0) {
            snprintf(err, errlen, "%s: no usable CA certificate", o->files[i]);
            goto fail;
        }
    }
    for (size_t i = 0; i < o->n_pems; i++) {
        if (val_load_pem(&l, o->pems[i], o->pem_lens[i], "inline PEM") == 0) {
            snprintf(err, errlen, "CA PEM #%zu: no usable CA certificate", i + 1);
            goto fail;
        }
    }
    /* Sorted by subject for lookups; the same certificate twice is kept once. */
    if (l.n > 0)
        qsort(l.v, l.n, sizeof(*l.v), val_anchor_cmp);
    size_t w = 0;
    for (size_t i = 0; i < l.n; i++) {
        if (w > 0 && memcmp(l.v[w - 1].sha256, l.v[i].sha256, 32) == 0) {
            free((void *)l.v[i].der);
            continue;
        }
        l.v[w++] = l.v[i];
    }
    s->anchors = l.v;
    s->n_anchors = w;
    s->skipped = l.skipped;
    l.v = NULL;
    if (o->cache_entries > 0) {
        s->cache = val_cache_new(o->cache_entries, o->cache_ttl ? o->cache_ttl : VAL_DEFAULT_TTL);
        if (s->cache == NULL) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    if (s->n_anchors == 0)
        log_warn(LOG_FAC_SSL, NULL, "trust store: no CA loaded: every origin is untrusted");
    free(l.dc);
    return s;
fail:
    for (size_t i = 0; i < l.n; i++)
        free((void *)l.v[i].der);
    free(l.v);
    free(l.dc);
    val_store_free(s);
    return NULL;
}

void
val_store_free(struct val_store *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n_anchors; i++)
        free((void *)s->anchors[i].der);
    free(s->anchors);
    val_cache_free(s->cache);
    free(s);
}

void
val_store_stats(const struct val_store *s, struct val_stats *st)
{
    memset(st, 0, sizeof(*st));
    st->anchors = s->n_anchors;
    st->skipped = s->skipped;
    if (s->cache != NULL)
        val_cache_stats(s->cache, &st->cache_entries, &st->cache_hits, &st->cache_misses);
}

/* First anchor whose subject hash is h, or NULL; the equal ones follow it. */
static const struct val_cert *
val_anchor_first(const struct val_store *s, const uint8_t *h)
{
    size_t lo = 0, hi = s->n_anchors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (memcmp(s->anchors[mid].subject_hash, h, VAL_HASH_SIZE) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < s->n_anchors && memcmp(s->anchors[lo].subject_hash, h, VAL_HASH_SIZE) == 0)
        return &s->anchors[lo];
    return NULL;
}

static const struct val_cert *
val_anchor_by_sha(const struct val_store *s, const struct val_cert *c)
{
    for (const struct val_cert *a = val_anchor_first(s, c->subject_hash);
         a != NULL && a < s->anchors + s->n_anchors &&
         memcmp(a->subject_hash, c->subject_hash, VAL_HASH_SIZE) == 0;
         a++)
        if (memcmp(a->sha256, c->sha256, 32) == 0)
            return a;
    return NULL;
}

/* ---- the checks on one path ---------------------------------------------------- */

static bool
val_weak_key(const struct val_cert *c)
{
    switch (c->key_oid) {
    case RSAk:
    case RSAPSSk:
        return c->key_bits < 2048;
    case ECDSAk:
        switch (c->curve_oid) {
        case ECC_SECP256R1_OID:
        case ECC_SECP384R1_OID:
        case ECC_SECP521R1_OID:
        case ECC_SECP256K1_OID:
        case ECC_BRAINPOOLP256R1_OID:
        case ECC_BRAINPOOLP320R1_OID:
        case ECC_BRAINPOOLP384R1_OID:
        case ECC_BRAINPOOLP512R1_OID:
            return false;
        default:
            return true; /* under 256 bits, or explicit parameters */
        }
    default:
        return false; /* EdDSA; anything else could not be verified anyway */
    }
}

static bool
val_weak_sig(const struct val_cert *c)
{
    switch (c->sig_oid) {
    case CTC_MD2wRSA:
    case CTC_MD5wRSA:
    case CTC_SHAwRSA:
    case CTC_SHAwECDSA:
    case CTC_SHAwDSA:
        return true;
    default:
        return false;
    }
}

struct val_node {
    const struct val_cert *c;
    int idx; /* into the sent chain; -1 for a store anchor */
};

/*
 * Every error of the path p[0..len-1] (leaf first). anchored: p[len-1] is
 * a trust anchor. Decisions (browser-like, RFC 5280 section 6):
 * - the anchor is a name and a key: its validity, key size and self-
 *   signature are not judged, but an anchor that explicitly says CA:FALSE,
 *   lacks keyCertSign, or states a pathLen that the path exceeds is bad_ca;
 * - dates and key size count for every other certificate, the leaf always
 *   (even when it is itself the anchor);
 * - a signature counts when it links two certificates of the path, and for
 *   the last certificate of an unanchored path unless it is self-issued;
 * - EKU: the leaf needs serverAuth (anyExtendedKeyUsage is not enough: a
 *   certificate meant for TLS servers says so, and mozilla::pkix also
 *   ignores anyEKU); an intermediate with an EKU extension needs serverAuth
 *   or anyExtendedKeyUsage (EKU chaining, as browsers do).
 */
static unsigned
val_path_errors(const struct val_node *p, size_t len, bool anchored, time_t now)
{
    unsigned e = anchored ? 0 : VAL_E_UNTRUSTED;
    size_t last = len - 1;
    for (size_t k = 0; k < len; k++) {
        const struct val_cert *c = p[k].c;
        bool anchor = anchored && k == last;
        if (c->crit_unknown)
            e |= VAL_E_UNTRUSTED;
        if (!anchor || k == 0) {
            if (now > c->not_after)
                e |= VAL_E_EXPIRED;
            if (now < c->not_before)
                e |= VAL_E_NOT_YET_VALID;
            if (val_weak_key(c))
                e |= VAL_E_WEAK_KEY;
        }
        if (!anchor && !(k == last && c->self_issued) && val_weak_sig(c))
            e |= VAL_E_WEAK_SIGNATURE;
        if (k == 0) {
            if (c->eku_set && !(c->eku & EXTKEYUSE_SERVER_AUTH))
                e |= VAL_E_BAD_EKU;
            continue;
        }
        /* c issued p[k - 1]. */
        if (anchor ? (c->bc_set && !c->is_ca) : !(c->bc_set && c->is_ca))
            e |= VAL_E_BAD_CA;
        if (c->ku_set && !(c->ku & KEYUSE_KEY_CERT_SIGN))
            e |= VAL_E_BAD_CA;
        if (c->path_len_set) {
            /* RFC 5280 4.2.1.9: non-self-issued intermediates below it. */
            unsigned below = 0;
            for (size_t j = 1; j < k; j++)
                below += !p[j].c->self_issued;
            if (below > c->path_len)
                e |= VAL_E_BAD_CA;
        }
        if (!anchor && c->eku_set && !(c->eku & (EXTKEYUSE_SERVER_AUTH | EXTKEYUSE_ANY)))
            e |= VAL_E_BAD_EKU;
    }
    return e;
}

/* ---- path building --------------------------------------------------------------- */

struct val_work {
    const struct val_store *s;
    time_t now;
    size_t n;
    struct val_cert sent[VAL_MAX_CERTS];
    bool usable[VAL_MAX_CERTS];
    int8_t link[VAL_MAX_CERTS][VAL_MAX_CERTS]; /* [child][parent]: 0 untried, 1 ok, -1 bad */
    int8_t anchor_state[VAL_MAX_CERTS];        /* 0 untried, 1 found, -1 none */
    bool anchor_named[VAL_MAX_CERTS];          /* an anchor had the issuer's name */
    const struct val_cert *anchor_of[VAL_MAX_CERTS];
    unsigned sig_budget, visit_budget;
    struct val_node path[VAL_MAX_PATH];
    bool in_path[VAL_MAX_CERTS];
    /* The best path so far. */
    struct val_node best[VAL_MAX_PATH];
    size_t best_len;
    unsigned best_errors;
    bool best_anchored;
    bool best_missing; /* unanchored and nothing at all bore the last issuer's name */
    bool done;
    DecodedCert dc;
};

static bool
val_key_id_mismatch(const struct val_cert *child, const struct val_cert *parent)
{
    return child->akid_set && parent->skid_set &&
           memcmp(child->akid, parent->skid, VAL_HASH_SIZE) != 0;
}

static unsigned
val_popcount(unsigned x)
{
    unsigned n = 0;
    for (; x; x &= x - 1)
        n++;
    return n;
}

static void
val_consider(struct val_work *w, size_t len, bool anchored, bool missing)
{
    unsigned e = val_path_errors(w->path, len, anchored, w->now);
    bool better;
    if (w->best_len == 0)
        better = true;
    else if (anchored != w->best_anchored)
        better = anchored;
    else if (anchored)
        better = val_popcount(e) < val_popcount(w->best_errors) ||
                 (val_popcount(e) == val_popcount(w->best_errors) && len < w->best_len);
    else /* the longest partial path tells the most (how far we got) */
        better = len > w->best_len;
    if (!better)
        return;
    memcpy(w->best, w->path, len * sizeof(w->path[0]));
    w->best_len = len;
    w->best_errors = e;
    w->best_anchored = anchored;
    w->best_missing = !anchored && missing;
    if (anchored && e == 0)
        w->done = true;
}

/* Finds (once per certificate) an anchor that signed sent[i]. */
static const struct val_cert *
val_anchor_for(struct val_work *w, int i)
{
    if (w->anchor_state[i] != 0)
        return w->anchor_state[i] > 0 ? w->anchor_of[i] : NULL;
    const struct val_cert *c = &w->sent[i];
    const struct val_store *s = w->s;
    w->anchor_state[i] = -1;
    for (const struct val_cert *a = val_anchor_first(s, c->issuer_hash);
         a != NULL && a < s->anchors + s->n_anchors &&
         memcmp(a->subject_hash, c->issuer_hash, VAL_HASH_SIZE) == 0;
         a++) {
        if (val_key_id_mismatch(c, a))
            continue;
        w->anchor_named[i] = true;
        if (w->sig_budget == 0)
            continue;
        w->sig_budget--;
        if (val_cert_signed_by(c, a)) {
            w->anchor_of[i] = a;
            w->anchor_state[i] = 1;
            return a;
        }
    }
    return NULL;
}

/* Depth-first from path[depth - 1]: anchors first (shortest paths), then
 * the sent certificates in the order sent. */
static void
val_build(struct val_work *w, size_t depth)
{
    if (w->done || w->visit_budget == 0)
        return;
    w->visit_budget--;
    int i = w->path[depth - 1].idx;
    const struct val_cert *cur = &w->sent[i];
    const struct val_cert *a = val_anchor_for(w, i);
    bool named = w->anchor_named[i];
    if (a != NULL) {
        w->path[depth] = (struct val_node){a, -1};
        val_consider(w, depth + 1, true, false);
        if (w->done)
            return;
    }
    for (size_t j = 1; j < w->n && depth + 1 < VAL_MAX_PATH; j++) {
        if (!w->usable[j] || w->in_path[j] ||
            memcmp(w->sent[j].subject_hash, cur->issuer_hash, VAL_HASH_SIZE) != 0)
            continue;
        if (val_key_id_mismatch(cur, &w->sent[j]))
            continue;
        named = true;
        if (w->link[i][j] == 0) {
            if (w->sig_budget == 0)
                continue;
            w->sig_budget--;
            w->link[i][j] = val_cert_signed_by(cur, &w->sent[j]) ? 1 : -1;
        }
        if (w->link[i][j] < 0)
            continue;
        w->path[depth] = (struct val_node){&w->sent[j], (int)j};
        w->in_path[j] = true;
        val_build(w, depth + 1);
        w->in_path[j] = false;
        if (w->done)
            return;
    }
    /* The partial path ending here. The issuer is missing when no
     * certificate had its name (and a key id that does not contradict);
     * one that was there but did not verify is a bad signature instead,
     * which fetching would not mend. */
    val_consider(w, depth, false, !named && !cur->self_issued);
}

/* SHA-256 over the chain as sent, lengths included (no two chains alike). */
static int
val_chain_key(const uint8_t *const *ders, const size_t *lens, size_t n, uint8_t key[32])
{
    wc_Sha256 sha;
    if (wc_InitSha256(&sha) != 0)
        return CAT_ERR;
    int r = 0;
    uint8_t hdr[8];
    for (size_t i = 0; i < n && r == 0; i++) {
        uint64_t l = lens[i];
        for (int b = 0; b < 8; b++)
            hdr[b] = (uint8_t)(l >> (56 - 8 * b));
        r = wc_Sha256Update(&sha, hdr, sizeof(hdr));
        if (r == 0 && lens[i] > 0)
            r = wc_Sha256Update(&sha, ders[i], (word32)lens[i]);
    }
    if (r == 0)
        r = wc_Sha256Final(&sha, key);
    wc_Sha256Free(&sha);
    return r == 0 ? CAT_OK : CAT_ERR;
}

/* The next instant after now at which a date of a chain certificate flips
 * a result: the cache must not keep the result past it. */
static time_t
val_next_boundary(const struct val_work *w, time_t now)
{
    time_t t = (time_t)INT64_MAX;
    for (size_t i = 0; i < w->n; i++) {
        if (!w->usable[i])
            continue;
        if (w->sent[i].not_before > now && w->sent[i].not_before < t)
            t = w->sent[i].not_before;
        if (w->sent[i].not_after >= now && w->sent[i].not_after < t)
            t = w->sent[i].not_after + 1;
    }
    return t;
}

int
val_check(const struct val_store *s, const uint8_t *const *ders, const size_t *lens, size_t n,
          time_t now, struct val_result *out)
{
    memset(out, 0, sizeof(*out));
    out->issuer_idx = -1;
    if (n == 0 || ders[0] == NULL || lens[0] == 0)
        return CAT_ERR;
    uint8_t key[32];
    bool keyed = s->cache != NULL && val_chain_key(ders, lens, n, key) == CAT_OK;
    if (keyed && val_cache_get(s->cache, key, now, out)) {
        for (size_t k = 0; k < out->path_len; k++) {
            int idx = out->path[k].idx;
            if (idx >= 0 && (size_t)idx < n) {
                out->path[k].der = ders[idx];
                out->path[k].len = lens[idx];
            }
        }
        if (out->path_len >= 2) {
            out->issuer_der = out->path[1].der;
            out->issuer_len = out->path[1].len;
        }
        out->cached = true;
        return CAT_OK;
    }

    struct val_work *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return CAT_ERR;
    w->s = s;
    w->now = now;
    w->n = CAT_MIN(n, (size_t)VAL_MAX_CERTS);
    w->sig_budget = VAL_SIG_BUDGET;
    w->visit_budget = VAL_VISIT_BUDGET;

    struct val_leaf_text text = {
        .cn = out->subject_cn,
        .cn_cap = sizeof(out->subject_cn),
        .issuer = out->issuer_dn,
        .issuer_cap = sizeof(out->issuer_dn),
        .dns = out->dns_name,
        .dns_cap = sizeof(out->dns_name),
    };
    w->usable[0] = val_cert_parse(&w->sent[0], ders[0], lens[0], &w->dc, &text) == CAT_OK;
    memcpy(out->leaf_sha256, w->sent[0].sha256, 32);
    if (!w->usable[0]) {
        out->leaf_malformed = true;
        out->errors = VAL_E_UNTRUSTED;
        out->path_len = 1;
        out->path[0] = (struct val_path_cert){ders[0], lens[0], 0};
        free(w);
        return CAT_OK;
    }
    const struct val_cert *leaf = &w->sent[0];
    out->not_before = leaf->not_before;
    out->not_after = leaf->not_after;
    val_cert_url(leaf, VAL_URL_OCSP, out->ocsp_url, sizeof(out->ocsp_url));
    val_cert_url(leaf, VAL_URL_CRL, out->crl_url, sizeof(out->crl_url));

    for (size_t i = 1; i < w->n; i++) {
        if (ders[i] == NULL || lens[i] == 0 ||
            val_cert_parse(&w->sent[i], ders[i], lens[i], &w->dc, NULL) != CAT_OK)
            continue;
        /* A certificate sent twice (or the leaf again) is one candidate. */
        bool dup = false;
        for (size_t j = 0; j < i && !dup; j++)
            dup = w->usable[j] && memcmp(w->sent[j].sha256, w->sent[i].sha256, 32) == 0;
        w->usable[i] = !dup;
    }

    w->path[0] = (struct val_node){leaf, 0};
    w->in_path[0] = true;
    /* A leaf the store holds as such (a trusted self-signed server) is its
     * own anchor. */
    const struct val_cert *self = val_anchor_by_sha(s, leaf);
    if (self != NULL) {
        w->path[0].c = self;
        val_consider(w, 1, true, false);
        w->path[0].c = leaf;
    }
    if (!w->done)
        val_build(w, 1);

    out->errors = w->best_errors;
    out->anchored = w->best_anchored;
    out->path_len = w->best_len;
    for (size_t k = 0; k < w->best_len; k++) {
        const struct val_node *nd = &w->best[k];
        out->path[k] = (struct val_path_cert){nd->c->der, nd->c->len, nd->idx};
        if (nd->idx >= 0) { /* point at the caller's bytes, not a copy */
            out->path[k].der = ders[nd->idx];
            out->path[k].len = lens[nd->idx];
        }
    }
    if (out->path_len >= 2) {
        out->issuer_der = out->path[1].der;
        out->issuer_len = out->path[1].len;
        out->issuer_idx = out->path[1].idx;
    }
    if (w->best_missing && val_cert_url(w->best[w->best_len - 1].c, VAL_URL_CA_ISSUERS,
                                        out->aia_url, sizeof(out->aia_url)))
        out->errors |= VAL_E_MISSING_INTERMEDIATE;

    if (keyed) {
        time_t until = val_next_boundary(w, now);
        if (w->best_anchored && w->best[w->best_len - 1].idx < 0) {
            const struct val_cert *a = w->best[w->best_len - 1].c;
            if (a->not_before > now && a->not_before < until)
                until = a->not_before;
            if (a->not_after >= now && a->not_after < until)
                until = a->not_after + 1;
        }
        val_cache_put(s->cache, key, out, now, until);
    }
    free(w);
    return CAT_OK;
}

/* ---- hostname ------------------------------------------------------------------ */

/*
 * One DNS subjectAltName against a host name (both without a trailing dot,
 * host lowercase or not: ASCII case-insensitive). A wildcard is only the
 * whole left-most label, stands for exactly one non-empty label, and needs
 * at least two labels after it ("*.com" never matches).
 */
static bool
val_dns_match(const char *pat, size_t pl, const char *host, size_t hl)
{
    if (pl == 0 || hl == 0 || memchr(pat, '\0', pl) != NULL || memmem(pat, pl, "..", 2) != NULL)
        return false;
    if (pat[0] != '*')
        return memchr(pat, '*', pl) == NULL && pl == hl && strncasecmp(pat, host, pl) == 0;
    if (pl < 2 || pat[1] != '.' || memchr(pat + 1, '*', pl - 1) != NULL)
        return false;
    const char *suffix = pat + 1; /* ".example.com" */
    size_t sl = pl - 1;
    const char *dot = memchr(suffix + 1, '.', sl - 1);
    if (sl < 4 || dot == NULL || dot == suffix + 1 || dot == suffix + sl - 1)
        return false; /* "*.", "*.com", "*..com", "*.com." */
    const char *hdot = memchr(host, '.', hl);
    if (hdot == NULL || hdot == host)
        return false; /* the wildcard must stand for a non-empty label */
    size_t rest = hl - (size_t)(hdot - host);
    return rest == sl && strncasecmp(hdot, suffix, sl) == 0;
}

int
val_check_hostname(const uint8_t *leaf, size_t len, const char *host)
{
    char h[256];
    size_t hl = strlen(host);
    if (hl > 0 && host[hl - 1] == '.')
        hl--;
    if (hl == 0 || hl >= sizeof(h))
        return CAT_DECLINED;
    memcpy(h, host, hl);
    h[hl] = '\0';

    uint8_t ip[16];
    size_t iplen = 0;
    if (h[0] == '[' && hl > 2 && h[hl - 1] == ']') {
        h[hl - 1] = '\0';
        if (inet_pton(AF_INET6, h + 1, ip) != 1)
            return CAT_DECLINED;
        iplen = 16;
    } else if (inet_pton(AF_INET, h, ip) == 1) {
        iplen = 4;
    } else if (inet_pton(AF_INET6, h, ip) == 1) {
        iplen = 16;
    } else if (memchr(h, '*', hl) != NULL || strstr(h, "..") != NULL || h[0] == '.') {
        return CAT_DECLINED; /* not a host name: nothing may match it */
    }

    if (len == 0 || len > UINT32_MAX / 2)
        return CAT_ERR;
    DecodedCert *dc = malloc(sizeof(*dc));
    if (dc == NULL)
        return CAT_ERR;
    wc_InitDecodedCert(dc, leaf, (word32)len, NULL);
    int r = wc_ParseCert(dc, CERT_TYPE, NO_VERIFY, NULL);
    if (r != 0 && r != ASN_CRIT_EXT_E) {
        wc_FreeDecodedCert(dc);
        free(dc);
        return CAT_ERR;
    }
    /* subjectAltName only: no fallback to the subject CN (RFC 6125 6.4.4
     * leaves it optional; CA/B Forum certificates always carry SANs and
     * Chrome dropped the fallback in version 58). */
    int res = CAT_DECLINED;
    unsigned guard = 0;
    for (const DNS_entry *e = dc->altNames; e != NULL && guard < 4096; e = e->next, guard++) {
        if (e->name == NULL || e->len <= 0)
            continue;
        if (iplen > 0) {
            if (e->type == ASN_IP_TYPE && (size_t)e->len == iplen &&
                memcmp(e->name, ip, iplen) == 0) {
                res = CAT_OK;
                break;
            }
            continue;
        }
        if (e->type != ASN_DNS_TYPE)
            continue;
        size_t pl = (size_t)e->len;
        if (pl > 1 && e->name[pl - 1] == '.')
            pl--;
        if (val_dns_match(e->name, pl, h, hl)) {
            res = CAT_OK;
            break;
        }
    }
    wc_FreeDecodedCert(dc);
    free(dc);
    return res;
}
