/*
 * "Continue anyway" on a certificate exception, done safely: catena hands
 * out a token that is an HMAC over (host, errors overridden, client address,
 * expiry) with a key only this process knows. It is carried in a link on the
 * exception page, then in a host-scoped cookie. Editing the URL or the
 * cookie breaks the HMAC; a token for one site, client or set of errors
 * does not open another.
 */
#ifndef CATENA_CORE_OVERRIDE_H
#define CATENA_CORE_OVERRIDE_H

#include "core/attr.h"

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define OVR_COOKIE "catena_override"
#define OVR_PATH "/.catena/override"
#define OVR_TOKEN_MAX 64

/** Makes the process key (random). CAT_ERR if the RNG fails. */
int ovr_init(void) CAT_WUR;

/** Writes a token (base64url, NUL-terminated) for these facts into out[OVR_TOKEN_MAX]. */
int ovr_make(char out[OVR_TOKEN_MAX], const char *host, unsigned errors, const char *client_ip,
             time_t expires) CAT_WUR CAT_NONNULL(1, 2, 4);

/** True if token was made by this process for host, errors and client, and has not expired. */
bool ovr_check(const char *token, size_t len, const char *host, unsigned errors,
               const char *client_ip, time_t now) CAT_NONNULL(1, 3, 5);

/** Finds our cookie's value in a Cookie header value; NULL if absent. */
const char *ovr_cookie_find(const char *cookie, size_t len, size_t *vlen) CAT_NONNULL(1, 3);

#endif
