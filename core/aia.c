/*
 * The caIssuers cache and response decoding (see aia.h). The cache is a
 * small table under one mutex: it is touched once per validation of a
 * broken chain, never on the path of a well-configured site.
 */
#include "core/aia.h"

#include "core/validate.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>

struct aia_entry {
    char url[VAL_URL_MAX]; /* "" = free slot */
    uint8_t *der;          /* owned; NULL = the fetch failed */
    size_t len;
    time_t expires;
    uint64_t used; /* for eviction: least recently used goes first */
};

static pthread_mutex_t aia_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct aia_entry aia_table[AIA_CACHE_MAX];
static uint64_t aia_clock;

static time_t
aia_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

static void
aia_entry_clear(struct aia_entry *e)
{
    free(e->der);
    memset(e, 0, sizeof(*e));
}

enum aia_lookup
aia_cache_get(const char *url, uint8_t **der, size_t *len)
{
    enum aia_lookup res = AIA_MISS;
    time_t now = aia_now();
    *der = NULL;
    *len = 0;
    pthread_mutex_lock(&aia_mtx);
    for (size_t i = 0; i < AIA_CACHE_MAX; i++) {
        struct aia_entry *e = &aia_table[i];
        if (e->url[0] == '\0' || strcmp(e->url, url) != 0)
            continue;
        if (e->expires <= now) {
            aia_entry_clear(e);
            break;
        }
        e->used = ++aia_clock;
        if (e->der == NULL) {
            res = AIA_FAILED;
        } else if ((*der = malloc(e->len)) != NULL) {
            memcpy(*der, e->der, e->len);
            *len = e->len;
            res = AIA_HIT;
        }
        break;
    }
    pthread_mutex_unlock(&aia_mtx);
    return res;
}

void
aia_cache_put(const char *url, const uint8_t *der, size_t len)
{
    if (strlen(url) >= VAL_URL_MAX)
        return;
    uint8_t *copy = NULL;
    if (der != NULL && (copy = malloc(len)) == NULL)
        return;
    if (copy != NULL)
        memcpy(copy, der, len);
    time_t now = aia_now();
    pthread_mutex_lock(&aia_mtx);
    /* The same URL, else a free or expired slot, else the least recently used. */
    struct aia_entry *slot = NULL, *lru = &aia_table[0];
    for (size_t i = 0; i < AIA_CACHE_MAX; i++) {
        struct aia_entry *e = &aia_table[i];
        if (e->url[0] != '\0' && strcmp(e->url, url) == 0) {
            slot = e;
            break;
        }
        if (slot == NULL && (e->url[0] == '\0' || e->expires <= now))
            slot = e;
        if (e->used < lru->used)
            lru = e;
    }
    if (slot == NULL)
        slot = lru;
    aia_entry_clear(slot);
    strcpy(slot->url, url); /* length checked above */
    slot->der = copy;
    slot->len = copy != NULL ? len : 0;
    slot->expires = now + (copy != NULL ? AIA_TTL_S : AIA_NEGATIVE_TTL_S);
    slot->used = ++aia_clock;
    pthread_mutex_unlock(&aia_mtx);
}

void
aia_cache_clear(void)
{
    pthread_mutex_lock(&aia_mtx);
    for (size_t i = 0; i < AIA_CACHE_MAX; i++)
        aia_entry_clear(&aia_table[i]);
    pthread_mutex_unlock(&aia_mtx);
}

/* The content octets' offset of the DER element at p[0..len), or 0 if malformed. */
static size_t
aia_der_header(const uint8_t *p, size_t len)
{
    if (len < 2)
        return 0;
    if (p[1] < 0x80)
        return 2;
    size_t n = p[1] & 0x7f;
    return n >= 1 && n <= 4 && len >= 2 + n ? 2 + n : 0;
}

int
aia_decode(const uint8_t *body, size_t len, uint8_t **der, size_t *der_len, const char **why)
{
    static const char begin[] = "-----BEGIN CERTIFICATE-----";
    *der = NULL;
    *der_len = 0;
    if (body == NULL || len == 0) {
        *why = "empty response";
        return CAT_ERR;
    }
    if (body[0] == 0x30) {
        /* Certificate ::= SEQUENCE { tbsCertificate SEQUENCE ... };
         * ContentInfo (PKCS#7) ::= SEQUENCE { contentType OID ... }. */
        size_t h = aia_der_header(body, len);
        if (h == 0 || h >= len) {
            *why = "malformed DER";
            return CAT_ERR;
        }
        if (body[h] == 0x06) {
            *why = "a PKCS#7 bundle, which catena does not read";
            return CAT_ERR;
        }
        if (body[h] != 0x30) {
            *why = "not a certificate";
            return CAT_ERR;
        }
        if ((*der = malloc(len)) == NULL) {
            *why = "out of memory";
            return CAT_ERR;
        }
        memcpy(*der, body, len);
        *der_len = len;
        return CAT_OK;
    }
    const uint8_t *b = memmem(body, len, begin, sizeof(begin) - 1);
    if (b == NULL) {
        *why = "neither DER nor PEM";
        return CAT_ERR;
    }
    size_t rest = len - (size_t)(b - body);
    if ((*der = malloc(rest)) == NULL) {
        *why = "out of memory";
        return CAT_ERR;
    }
    int n = wc_CertPemToDer(b, (int)rest, *der, (int)rest, CERT_TYPE);
    if (n <= 0) {
        free(*der);
        *der = NULL;
        *why = "PEM that does not decode";
        return CAT_ERR;
    }
    *der_len = (size_t)n;
    return CAT_OK;
}
