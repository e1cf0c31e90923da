/*
 * Sites that cannot be intercepted, remembered so they are tunneled for a
 * while instead of broken:
 * - sites whose clients pin their server's key: such a client refuses any
 *   emulated certificate with an alert right after our Certificate; after a
 *   number of refusals within a window the site is tunneled;
 * - sites whose server asks for a client certificate, which catena cannot
 *   present on the client's behalf: tunneled from the first sighting.
 * Shared by all workers; bounded.
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
    bool client_cert;     /* tunneled because the server wants a client certificate */
};

/** True if host is currently tunneled; *why says which reason (static text). */
bool pin_is_tunneled(const struct cfg_pinning *p, const char *host, const char **why)
    CAT_NONNULL(1, 2, 3);

/** The server of host asked for a client certificate: tunnel it for p->tunnel_ms. */
void pin_note_client_cert(const struct cfg_pinning *p, const char *host) CAT_NONNULL(1, 2);

/** Counts one refusal of our certificate for host; true if that made it tunneled now. */
bool pin_record_refusal(const struct cfg_pinning *p, const char *host) CAT_NONNULL(1, 2);

/** Copies up to max currently tunneled sites into out; returns how many. */
size_t pin_list(struct pin_site *out, size_t max) CAT_NONNULL(1);

#endif
