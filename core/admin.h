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

/**
 * Renders the answer for path (no query) into c->cli.out and records the
 * status in the transaction. full: an admin listener (status and metrics
 * too). CAT_OK, or CAT_ERR on OOM (c->err set).
 */
int admin_respond(struct conn *c, const char *path, bool full) CAT_NONNULL(1, 2);

/** Records the process start (for uptime); call once at startup. */
void admin_init(void);

#endif
