/*
 * A connection's way through an upstream proxy (chain/ picks the upstream):
 * the <forward> decision, the CONNECT exchange with the upstream, the
 * headers a tier sends upstream (Catena-Tier, X-Forwarded-For, the user) and
 * what a tier believes of them from its downstreams, loop detection by Via,
 * and the record of downstream tiers for /status.
 */
#ifndef CATENA_CORE_FORWARD_H
#define CATENA_CORE_FORWARD_H

#include "core/attr.h"
#include "core/cfg.h"
#include "core/http.h"
#include "core/relay.h"

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include <stdbool.h>
#include <stddef.h>

struct conn;

#define FWD_TIER_HEADER "Catena-Tier"

/**
 * Decides the route of the request in c->txn (<forward> layers, else
 * forwarding.default) and sets c->route. CAT_OK (direct or routed), or
 * CAT_DECLINED when every upstream is down and the route fails closed (an
 * error page is answered: the state changed).
 */
int fwd_route(struct conn *c) CAT_NONNULL(1);

/** CONN_ST_UP_TLS: TLS with an upstream of type https, its certificate validated. */
int fwd_st_up_tls(struct conn *c, unsigned ev) CAT_NONNULL(1);

/** CONN_ST_CHAIN: the CONNECT exchange with the upstream. Exits: as a direct connect. */
int fwd_st_chain(struct conn *c, unsigned ev) CAT_NONNULL(1);

/** Where a chain decrypts for this connection: the policy's tier.inspect(), else the node's. */
enum cfg_inspect fwd_inspect(const struct conn *c) CAT_NONNULL(1);

/**
 * Judges the certificate of a type-https upstream (c->route) after the TLS
 * handshake on ssl: a path to the node's trust anchors, and its tls_name
 * (else its address). conn is the struct conn (a probe_cert_check_fn).
 * CAT_OK, or CAT_ERR with why.
 */
int fwd_upstream_cert_check(void *conn, WOLFSSL *ssl, char *why, size_t cap) CAT_NONNULL(1, 2, 3);

/** Appends the headers for the upstream (Proxy-Authorization, Catena-Tier, X-Forwarded-For, user). */
int fwd_upstream_headers(const struct conn *c, struct buf *out) CAT_WUR CAT_NONNULL(1, 2);

/** Appends the CONNECT request for the upstream (the site, then the upstream headers). */
int fwd_connect_request(const struct conn *c, struct buf *out) CAT_WUR CAT_NONNULL(1, 2);

/** A request from a downstream tier: believes its claims if it is in tier.downstream_networks. */
void fwd_downstream_claims(struct conn *c, const struct http_head *h) CAT_NONNULL(1, 2);

/** True if the request already went through this node (its name is in Via): a loop. */
bool fwd_is_loop(const struct conn *c, const struct http_head *h) CAT_NONNULL(1, 2);

/** True for headers a tier consumes and never forwards as received. */
bool fwd_is_tier_header(const struct conn *c, const struct http_hdr *x) CAT_NONNULL(1, 2);

/** Writes the JSON array of downstream tiers seen (node, bundle, matching) into buf. */
size_t fwd_tiers_json(char *buf, size_t cap) CAT_NONNULL(1);

/** Number of requests whose downstream ran another bundle than this node. */
unsigned long fwd_tier_mismatches(void);

#endif
