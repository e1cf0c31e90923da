/*
 * Pages catena serves itself: on admin listeners the status (JSON), metrics
 * (Prometheus text) and the CA download; on proxy listeners, for the
 * reserved download name (tls.download_host, e.g. http://catena.ca/), the
 * CA download only. Every answer closes the connection.
 */
#ifndef CATENA_CORE_ADMIN_H
#define CATENA_CORE_ADMIN_H

#include "core/attr.h"

#include <stdbool.h>

struct conn;
struct http_head;

/**
 * Renders the answer for path (no query) into c->cli.out and records the
 * status in the transaction. full: an admin listener (status and metrics
 * too). CAT_OK, or CAT_ERR on OOM (c->err set).
 */
int admin_respond(struct conn *c, const char *path, bool full) CAT_NONNULL(1, 2);

/**
 * An admin write (PUT /bundle, POST /reload), its head parsed and consumed:
 * checks the bearer token, then answers or starts reading the body.
 * Exits: RESPOND, ADMIN_BODY.
 */
int admin_write_request(struct conn *c, const struct http_head *h, const char *path)
    CAT_NONNULL(1, 2, 3);

/** CONN_ST_ADMIN_BODY: reads a PUT /bundle body, then verifies and installs it. */
int admin_st_body(struct conn *c, unsigned ev) CAT_NONNULL(1);

/** Counts a finished transaction or TLS connection for /status and /metrics by its action. */
void admin_count(const char *action);

/** Records the process start (for uptime); call once at startup. */
void admin_init(void);

#endif
