/*
 * Asynchronous name resolution: c-ares driven by a worker's libev loop (its
 * sockets and timeouts are watchers; nothing blocks), in front of it a hosts
 * file and a bounded cache of positive and negative answers that honours
 * TTLs. One `struct res` per worker: nothing is shared between threads.
 *
 * Concurrent lookups of one name share one DNS query.
 */
#ifndef CATENA_RESOLVER_RES_H
#define CATENA_RESOLVER_RES_H

#include "core/attr.h"
#include "core/cfg.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct ev_loop;
struct res;       /* a worker's resolver: channel, cache, pending queries */
struct res_query; /* one caller's interest in a lookup in flight */

#define RES_MAX_ADDRS 16

/* Why a lookup failed: what the error page and the logs say. */
enum res_err {
    RES_OK = 0,
    RES_ERR_NXDOMAIN, /* the name does not exist */
    RES_ERR_NODATA,   /* the name exists but has no address of the wanted family */
    RES_ERR_TIMEOUT,  /* no server answered in time */
    RES_ERR_SERVFAIL, /* the server failed or refused */
    RES_ERR_BADNAME,  /* not a valid host name */
    RES_ERR_NOMEM,
    RES_ERR_OTHER,
};

/** The addresses of one name, in the order connect() should try them. */
struct res_answer {
    enum res_err err;
    size_t n;
    struct sockaddr_storage addrs[RES_MAX_ADDRS]; /* port 0; the caller sets it */
    socklen_t lens[RES_MAX_ADDRS];
};

/**
 * Called once per res_lookup() that returned CAT_AGAIN, unless cancelled first, from
 * the loop. ans is valid during the call only; the query handle is dead once it
 * returns. It may call res_lookup() and res_cancel() and free arg, never res_free().
 */
typedef void res_cb(void *arg, const struct res_answer *ans);

/** Makes a resolver on loop from the config section (copied). NULL on failure, err says why. */
struct res *res_new(struct ev_loop *loop, const struct cfg_resolver *rc, char *err, size_t errlen)
    CAT_WUR;
/**
 * Cancels every query (no callbacks; every handle dies) and frees everything.
 * Not from inside a res_cb of the same resolver. r may be NULL.
 */
void res_free(struct res *r);

/**
 * Resolves host (a name or an IP literal, IPv6 without brackets).
 * - CAT_OK: answered now (literal, hosts file, localhost, cache, a cached
 *   failure, an invalid name, no memory): *out is filled, out->err says
 *   whether it failed; *qp is NULL; cb is never called.
 * - CAT_AGAIN: a query is in flight; *qp is set; cb(arg, ans) comes later
 *   from the loop, exactly once, unless res_cancel(*qp) is called first.
 */
int res_lookup(struct res *r, const char *host, struct res_answer *out, res_cb *cb, void *arg,
               struct res_query **qp) CAT_WUR CAT_NONNULL(1, 2, 3, 4, 6);

/**
 * Drops the caller's interest: no callback after this returns. q may be NULL.
 * The query itself goes on and its answer is still cached.
 */
void res_cancel(struct res_query *q);

/** Human text for an error, for error pages and logs ("no such host", ...). */
const char *res_err_str(enum res_err e);

/** Counters for /status and tests. */
struct res_stats {
    unsigned long lookups, cache_hits, cache_neg_hits, queries_sent, coalesced, entries;
};
void res_get_stats(const struct res *r, struct res_stats *out) CAT_NONNULL(1, 2);

#endif
