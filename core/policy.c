/*
 * Access decisions from the node config (the stand-in until the CPL engine
 * of the Policy issue replaces these functions' insides; callers stay).
 * Everything not explicitly allowed is denied.
 */
#include "core/policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>

void
pol_check_request(const struct cfg *cfg, const struct sockaddr *cli, enum http_method m,
                  unsigned port, struct pol_verdict *v)
{
    v->allow = false;
    v->reason[0] = '\0';
    if (!cfg_net_match(cfg->client_nets, cfg->n_client_nets, cli)) {
        snprintf(v->reason, sizeof(v->reason), "Your address is not allowed to use this proxy");
        return;
    }
    if (m == HTTP_M_CONNECT) {
        if (!cfg_port_allowed(cfg->connect_ports, cfg->n_connect_ports, port)) {
            snprintf(v->reason, sizeof(v->reason), "CONNECT to port %u is not allowed", port);
            return;
        }
    } else if (!cfg_port_allowed(cfg->http_ports, cfg->n_http_ports, port)) {
        snprintf(v->reason, sizeof(v->reason), "HTTP requests to port %u are not allowed", port);
        return;
    }
    v->allow = true;
}

bool
pol_should_intercept(const struct cfg *cfg, const char *host)
{
    const struct cfg_tls *t = &cfg->tls;
    if (cfg_hostlist_match(&t->never_intercept, host))
        return false;
    switch (t->intercept) {
    case CFG_INTERCEPT_ALL:
        return true;
    case CFG_INTERCEPT_LIST:
        return cfg_hostlist_match(&t->intercept_hosts, host);
    case CFG_INTERCEPT_NONE:
        break;
    }
    return false;
}
