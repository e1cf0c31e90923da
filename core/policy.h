/*
 * Access decisions. Until the CPL policy engine lands, the node config
 * stands in: client networks, CONNECT and HTTP port allow-lists, and which
 * TLS connections to intercept. Deny by default what is not allowed.
 */
#ifndef CATENA_CORE_POLICY_H
#define CATENA_CORE_POLICY_H

#include "core/attr.h"
#include "core/cfg.h"
#include "core/http.h"

#include <stdbool.h>
#include <sys/socket.h>

struct pol_verdict {
    bool allow;
    char reason[192]; /* why not, for the page and the log */
};

/** May this client send this request (method and target port)? */
void pol_check_request(const struct cfg *cfg, const struct sockaddr *cli, enum http_method m,
                       unsigned port, struct pol_verdict *v) CAT_NONNULL(1, 2, 5);

/** Should a TLS connection to host (SNI or CONNECT host) be intercepted? */
bool pol_should_intercept(const struct cfg *cfg, const char *host) CAT_NONNULL(1, 2);

#endif
