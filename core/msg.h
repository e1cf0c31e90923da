/*
 * The HTTP message relay of an exchange: the request head rewritten for the
 * origin, the response head rewritten for the client, and both bodies
 * streamed with their framing checked (Content-Length, chunked, until
 * close). Works on a connection's two sides whatever carries them.
 */
#ifndef CATENA_CORE_MSG_H
#define CATENA_CORE_MSG_H

#include "core/attr.h"
#include "core/http.h"

#include <stdbool.h>

struct conn;

/**
 * Builds the request head to send on from a parsed client head (hop-by-hop
 * headers removed, Host from the URL, Via added) into c->req_head, and sets
 * the request body's framing. CAT_OK; CAT_DECLINED when it answered an error
 * page instead (state is RESPOND); CAT_ERR on OOM (c->err set).
 */
int msg_build_request(struct conn *c, const struct http_head *h, const struct http_url *u)
    CAT_WUR CAT_NONNULL(1, 2, 3);

/** Starts an exchange on a connected origin (reused: a kept-alive connection). */
void msg_exchange_start(struct conn *c, bool reused) CAT_NONNULL(1);

/** Relays decrypted bytes both ways until both ends close (not HTTP inside TLS). */
void msg_stream_start(struct conn *c) CAT_NONNULL(1);
/** The CONN_ST_STREAM handler. */
int msg_stream(struct conn *c, unsigned ev) CAT_NONNULL(1);

/** The CONN_ST_EXCHANGE handler: moves both messages along (see conn.c). */
int msg_exchange(struct conn *c, unsigned ev) CAT_NONNULL(1);

#endif
