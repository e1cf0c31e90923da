/*
 * Missing intermediates fetched from the caIssuers URL of the certificate
 * that needs them (RFC 5280 4.2.2.1 "Authority Information Access"), as
 * browsers do, when validation.aia_fetch allows it.
 *
 * A fetched certificate is never trusted for being fetched: it only fills a
 * gap in the chain, and val_check still needs a path of verified signatures
 * up to a trust anchor. Fetches and failures are cached, process-wide and
 * bounded, so a site with a broken chain costs one fetch per TTL, not one
 * per connection; the fetching itself is verify.c's, on the worker's loop.
 */
#ifndef CATENA_CORE_AIA_H
#define CATENA_CORE_AIA_H

#include "core/attr.h"

#include <stddef.h>
#include <stdint.h>

#define AIA_CACHE_MAX 512              /* URLs remembered */
#define AIA_TTL_S (24 * 3600)          /* a fetched certificate is kept this long */
#define AIA_NEGATIVE_TTL_S (5 * 60)    /* a failed fetch is not retried for this long */
#define AIA_MAX_RESPONSE (64 * 1024)   /* a certificate is a few KiB */

enum aia_lookup { AIA_MISS = 0, AIA_HIT, AIA_FAILED };

/**
 * The cached outcome for url. AIA_HIT: *der (malloc'd copy, the caller's to
 * free) and *len. AIA_FAILED: fetched recently without a usable answer.
 */
enum aia_lookup aia_cache_get(const char *url, uint8_t **der, size_t *len) CAT_NONNULL(1, 2, 3);

/** Remembers url's certificate (der != NULL) or its failure (der == NULL). */
void aia_cache_put(const char *url, const uint8_t *der, size_t len) CAT_NONNULL(1);

/**
 * Turns a caIssuers response into one DER certificate: DER as served
 * (application/pkix-cert) or one PEM block. A PKCS#7 bundle (.p7c) is
 * refused (*why says so). *der is malloc'd. CAT_OK or CAT_ERR.
 */
int aia_decode(const uint8_t *body, size_t len, uint8_t **der, size_t *der_len, const char **why)
    CAT_WUR CAT_NONNULL(3, 4, 5);

/** Empties the cache (tests, shutdown). */
void aia_cache_clear(void);

#endif
