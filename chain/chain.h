/*
 * Forwarding through upstream proxies: the forwarding hosts and groups of a
 * config snapshot, the choice of an upstream for a route (failover order,
 * or hashing by site so one site sticks to one upstream), their health, and
 * the trust that is scoped to a route (an upstream's emulated issuer is an
 * anchor only on connections through that upstream, never globally).
 *
 * Knows nothing of connections: core/ asks for a host and builds the
 * CONNECT itself (chain never includes core/conn.h).
 */
#ifndef CATENA_CHAIN_CHAIN_H
#define CATENA_CHAIN_CHAIN_H

#include "core/attr.h"
#include "core/cfg.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ev_loop;
struct val_store;
struct val_store_opts;
struct chain;
struct chain_health;

/* One upstream of a snapshot. */
struct chain_host {
    const struct cfg_fwd_host *cfg; /* borrowed: the snapshot's */
    char *auth;                     /* owned: "Basic <base64>" for Proxy-Authorization, or NULL */
    struct val_store *trust;        /* owned: anchors of the route (base + its issuer), or NULL */
    uint8_t *issuer_der;            /* owned: the upstream's emulated issuer, or NULL */
    size_t issuer_len;
    struct chain_health *health;    /* shared by name and address across snapshots */
};

/**
 * Builds the forwarding of a snapshot: reads credentials and issuers, makes
 * each route's trust store from base (the node's anchors) plus the
 * upstream's issuer. NULL with err on a bad file or an unknown default.
 */
struct chain *chain_new(const struct cfg *cfg, const struct val_store_opts *base, char *err,
                        size_t errlen) CAT_WUR CAT_NONNULL(1, 2, 3);
void chain_free(struct chain *ch);

/** True if the snapshot forwards anything at all. */
bool chain_enabled(const struct chain *ch);

/**
 * The upstream for route (a host or group name; NULL or "" = direct) and a
 * site (for hashing). Returns the host, or NULL: then *direct says whether
 * to go direct (no route, or every upstream down with when_down "open") or
 * to refuse (every upstream down; why says which).
 */
const struct chain_host *chain_pick(const struct chain *ch, const char *route, const char *site,
                                    bool *direct, char *why, size_t whylen) CAT_NONNULL(1, 4, 5);

/** Whether a host is in rotation now. */
bool chain_host_up(const struct chain_host *h) CAT_NONNULL(1);

/** Starts health checks of the snapshot's hosts on loop (one worker's). */
void chain_health_start(struct chain *ch, struct ev_loop *loop) CAT_NONNULL(1, 2);
/** Stops them, on the same loop's thread, before the snapshot may be freed elsewhere. */
void chain_health_stop(struct chain *ch) CAT_NONNULL(1);

/** Writes a JSON array of the upstreams and their state into buf; returns the length. */
size_t chain_status_json(const struct chain *ch, char *buf, size_t cap) CAT_NONNULL(1, 2);

/** The same as Prometheus text (upstream up, checks, failed checks in a row). */
size_t chain_metrics(const struct chain *ch, char *buf, size_t cap) CAT_NONNULL(1, 2);

#endif
