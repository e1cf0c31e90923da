/*
 * Server certificate validation in a connection's life: the probe of a
 * tunneled site, the check of a chain (validate.c) and its revocation
 * (revoke.c), the policy's ignores, and the consequence: tunnel, intercept,
 * or intercept only to answer an exception page, with a safe "continue
 * anyway" (override.c) where the configuration allows it.
 */
#ifndef CATENA_CORE_VERIFY_H
#define CATENA_CORE_VERIFY_H

#include "core/attr.h"
#include "core/http.h"

struct conn;

/** CONN_ST_PROBE: the certificate of a site about to be tunneled. */
int verify_st_probe(struct conn *c, unsigned ev) CAT_NONNULL(1);
/** CONN_ST_VALIDATE: check the chain in c->cert, then decide. */
int verify_st_validate(struct conn *c, unsigned ev) CAT_NONNULL(1);

/** Takes the origin's chain from its TLS session into c->cert. CAT_ERR on OOM. */
int verify_take_chain(struct conn *c) CAT_NONNULL(1);

/** Exception mode for the origin's TLS failing for an old protocol (no chain). */
void verify_protocol_exception(struct conn *c) CAT_NONNULL(1);

/**
 * A request inside a connection intercepted for an exception: the override
 * link, a valid override cookie (then CAT_DECLINED: serve it normally), or
 * the exception page (CAT_OK, state RESPOND).
 */
int verify_exception_request(struct conn *c, const struct http_head *h, const struct http_url *u)
    CAT_NONNULL(1, 2, 3);

/** The lookup of a revocation check in flight must restart (the resolver changed). */
void verify_restart(struct conn *c) CAT_NONNULL(1);

/** Frees c->cert (cancelling what is in flight). */
void verify_free(struct conn *c) CAT_NONNULL(1);

#endif
