/*
 * The interception states of a connection (handlers in conn.c's table):
 * peek at the ClientHello, decide, handshake with the origin, emulate its
 * certificate, handshake with the client. After that the connection carries
 * HTTP over TLS on both sides through the ordinary REQUEST/EXCHANGE states.
 */
#ifndef CATENA_CORE_INTERCEPT_H
#define CATENA_CORE_INTERCEPT_H

#include "core/attr.h"

struct conn;

int intercept_st_peek_hello(struct conn *c, unsigned ev) CAT_NONNULL(1);
int intercept_st_srv_tls(struct conn *c, unsigned ev) CAT_NONNULL(1);
int intercept_st_emulate(struct conn *c, unsigned ev) CAT_NONNULL(1);
int intercept_st_cli_tls(struct conn *c, unsigned ev) CAT_NONNULL(1);

/**
 * Tunnel or intercept, once the name (and the certificate, if the policy
 * asks) is known: evaluates <ssl-intercept>. CAT_OK: the state changed
 * (SRV_TLS) or the connection closed (denied); CAT_DECLINED: tunnel it.
 */
int intercept_decide(struct conn *c) CAT_NONNULL(1);

/** Intercepts now: the ClientHello to replay, the handshake with the origin next. Exits: SRV_TLS. */
int intercept_now(struct conn *c) CAT_NONNULL(1);

#endif
