/*
 * Authentication realms for policy's authenticate(realm): a realm checks the
 * credentials of Proxy-Authorization and answers OK / FAIL / RATE_LIMITED /
 * MALFORMED. Every realm type shares the front half (strict Basic parsing,
 * per-client rate limiting of failures, a bounded cache of recent successes);
 * a type only supplies its verify op. Type "local" reads a users file of
 * crypt(3) hashes. Realms are immutable after load except for the two small
 * tables, which a mutex guards, so worker threads share one realm.
 */
#ifndef CATENA_CORE_AUTH_H
#define CATENA_CORE_AUTH_H

#include "core/attr.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#define AUTH_USER_MAX 256    /* bytes of a user name, NUL included */
#define AUTH_PASS_MAX 512    /* bytes of a password, NUL included */
#define AUTH_HEADER_MAX 1024 /* bytes of a Proxy-Authorization value */
#define AUTH_NAME_MAX 64     /* bytes of a realm name, NUL included */

/* Failures: AUTH_FAIL_MAX within AUTH_FAIL_WINDOW_S block a client for AUTH_BLOCK_S. */
#define AUTH_FAIL_MAX 5
#define AUTH_FAIL_WINDOW_S 60
#define AUTH_BLOCK_S 60
#define AUTH_RATE_SLOTS 4096 /* clients tracked; the stalest is reused when full */
/* Successes are remembered for AUTH_CACHE_TTL_S so a slow hash is not paid per request. */
#define AUTH_CACHE_TTL_S 300
#define AUTH_CACHE_MAX 1024

enum auth_result {
    AUTH_OK = 0,       /* user_out holds the authenticated user */
    AUTH_FAIL,         /* unknown user or wrong password; user_out holds the name tried */
    AUTH_RATE_LIMITED, /* this client failed too often; nothing was checked */
    AUTH_MALFORMED,    /* not a well-formed Basic credential; user_out is "" */
};

enum auth_type {
    AUTH_TYPE_LOCAL = 0, /* users file with crypt(3) hashes */
};

struct auth_realm;

/**
 * Loads a realm. type is "local" (path: the users file, "name:hash" per line,
 * '#' comments; yescrypt, sha512-crypt, sha256-crypt and bcrypt hashes only).
 * NULL with one line in err ("users.txt:3: user \"bob\": plaintext password refused ...").
 */
struct auth_realm *auth_realm_load(const char *name, const char *type, const char *path, char *err,
                                   size_t errlen) CAT_WUR CAT_NONNULL(1, 2, 3, 4);
/** Frees a realm (NULL is fine); no thread may still be using it. */
void auth_realm_free(struct auth_realm *r);

/** The realm's name and type. */
const char *auth_realm_name(const struct auth_realm *r) CAT_NONNULL(1);
enum auth_type auth_realm_type(const struct auth_realm *r) CAT_NONNULL(1);
/** Number of users (local realms). */
size_t auth_realm_users(const struct auth_realm *r) CAT_NONNULL(1);

/**
 * Checks a Proxy-Authorization value ("Basic <base64 of user:password>").
 * client is the peer (rate limiting; IPv6 by /64); now is a monotonic time in
 * seconds. user_out (cap bytes) gets the user name tried, for the log line the
 * caller writes on FAIL; the password is never copied out or kept.
 */
enum auth_result auth_check_basic(struct auth_realm *r, const char *header_value, char *user_out,
                                  size_t user_cap, const struct sockaddr *client, time_t now)
    CAT_NONNULL(1, 2, 3, 5);

/**
 * Checks a user name and password given some other way (a SOCKS5 login):
 * the same verification, cache and per-client rate limit as Basic. The
 * caller wipes pass afterwards.
 */
enum auth_result auth_check_userpass(struct auth_realm *r, const char *user, const char *pass,
                                     const struct sockaddr *client, time_t now)
    CAT_NONNULL(1, 2, 3, 4);

/** "Proxy-Authenticate: Basic realm=\"NAME\", charset=\"UTF-8\"" (no CRLF); owned by r. */
const char *auth_challenge_header(const struct auth_realm *r) CAT_NONNULL(1);

/** "ok", "fail", "rate-limited", "malformed": for logs and counters. */
const char *auth_result_str(enum auth_result res);

#endif
