/*
 * A small asynchronous HTTP/1.1 client on a worker's libev loop, for what
 * catena fetches itself: OCSP (POST application/ocsp-request), CRLs and AIA
 * caIssuers certificates (GET). One request per connection, plain http://
 * only, names through the worker's resolver, one overall deadline, bounded
 * response size, redirects never followed. Nothing blocks.
 */
#ifndef CATENA_CORE_FETCH_H
#define CATENA_CORE_FETCH_H

#include "core/attr.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ev_loop;
struct res;
struct fetch; /* one request in flight */

#define FETCH_MAX_URL 2048   /* longer URLs are refused */
#define FETCH_MAX_HEAD 16384 /* response head limit */

/**
 * The outcome. status: the HTTP status if a response head arrived, else 0.
 * err: NULL only for a complete 2xx response; otherwise why not ("timeout
 * after 3000 ms", "HTTP 404 Not Found", "HTTP 302 redirect to ... not followed").
 * body/len: the complete body (also for non-2xx), NULL/0 if none; valid during the callback.
 */
struct fetch_result {
    int status;
    const uint8_t *body;
    size_t len;
    const char *err;
};

/**
 * Called exactly once per fetch_start() that returned non-NULL, from the loop (never
 * from inside fetch_start), unless fetch_cancel() came first. The handle dies when
 * it returns. It may call fetch_start() and fetch_cancel() on other fetches.
 */
typedef void fetch_cb(void *arg, const struct fetch_result *r);

/**
 * Starts a request for url ("http://host[:port][/path][?query]", host a name or an IP
 * literal, IPv6 in brackets). method "GET" or "POST"; content_type and body (copied)
 * for POST, else NULL/0. max_response bounds the body (larger: "response too large").
 * timeout_ms bounds everything from now to the callback. Errors found at once (bad
 * URL, no memory) are still reported through cb from the loop. NULL only on OOM.
 */
struct fetch *fetch_start(struct ev_loop *loop, struct res *res, const char *url,
                          const char *method, const char *content_type, const uint8_t *body,
                          size_t body_len, size_t max_response, unsigned timeout_ms, fetch_cb *cb,
                          void *arg) CAT_WUR CAT_NONNULL(1, 2, 3, 4, 10);

/** Stops the request and frees it: no callback after it returns. f may be NULL. */
void fetch_cancel(struct fetch *f);

/**
 * Splits an http:// URL (for callers that want to check it first). host and path
 * are NUL-terminated copies; path includes the query ("/" if none). CAT_ERR with
 * *err (static text) if it is not a URL fetch_start() accepts.
 */
struct fetch_url {
    char host[256];
    unsigned port;
    bool ipv6;
    char path[FETCH_MAX_URL];
};
int fetch_url_parse(const char *url, struct fetch_url *u, const char **err) CAT_WUR
    CAT_NONNULL(1, 2, 3);

#endif
