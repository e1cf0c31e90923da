/*
 * Sites whose clients pin their server's key. Such a client refuses any
 * emulated certificate with an alert right after our Certificate; after a
 * number of refusals within a window, the site is tunneled for a while
 * instead of broken. Shared by all workers; bounded.
 */
#ifndef CATENA_CORE_PIN_H
#define CATENA_CORE_PIN_H

#include "core/attr.h"
#include "core/cfg.h"

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define PIN_MAX_SITES 1024

struct pin_site {
    char host[256];
    unsigned refusals;    /* within the current window */
    time_t window_start;
    time_t tunnel_until;  /* 0: not tunneled */
};

/** True if host is currently tunneled because its clients pin. */
bool pin_is_tunneled(const struct cfg_pinning *p, const char *host) CAT_NONNULL(1, 2);

/** Counts one refusal of our certificate for host; true if that made it tunneled now. */
bool pin_record_refusal(const struct cfg_pinning *p, const char *host) CAT_NONNULL(1, 2);

/** Copies up to max currently tunneled sites into out; returns how many. */
size_t pin_list(struct pin_site *out, size_t max) CAT_NONNULL(1);

#endif
