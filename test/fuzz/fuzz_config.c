/*
 * Fuzz target for cfg_load_string(): the input is a node config text. Besides
 * memory safety and leaks (libconfig's included), it checks the contract the
 * rest of catena leans on: a loaded snapshot holds only validated values
 * (bounds, non-empty lists, absolute paths), and a refusal is one clean line
 * that starts with the file name. Short inputs also go to the scalar parsers.
 */
#include "core/cfg.h"
#include "test/fuzz/fuzz.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* abort() rather than assert(): the check must survive NDEBUG and the plain replay build. */
static void
fuzz_check_path(const char *p)
{
    if (p != NULL)
        FUZZ_CHECK(p[0] == '/');
}

static void
fuzz_check_hosts(const struct cfg_hostlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        const char *p = l->names[i];
        FUZZ_CHECK(p != NULL && p[0] != '\0');
        for (const char *q = p; *q != '\0'; q++)
            FUZZ_CHECK(!(*q >= 'A' && *q <= 'Z') && (unsigned char)*q > 0x20);
        /* A pattern matches the name it spells (without its leading dot). */
        FUZZ_CHECK(cfg_hostlist_match(l, p[0] == '.' ? p + 1 : p));
    }
}

static void
fuzz_check_cfg(struct cfg *c)
{
    FUZZ_CHECK(c->workers >= 1 && c->workers <= 256);
    FUZZ_CHECK(c->node_name != NULL);
    FUZZ_CHECK(c->n_listeners >= 1);
    for (size_t i = 0; i < c->n_listeners; i++) {
        const struct cfg_listener *l = &c->listeners[i];
        FUZZ_CHECK(l->text != NULL);
        FUZZ_CHECK(l->type >= CFG_LSN_HTTP && l->type <= CFG_LSN_TRANSPARENT);
        FUZZ_CHECK((l->addr.ss_family == AF_INET && l->addrlen == sizeof(struct sockaddr_in)) ||
                   (l->addr.ss_family == AF_INET6 && l->addrlen == sizeof(struct sockaddr_in6)));
    }
    for (size_t i = 0; i < c->n_client_nets; i++) {
        const struct cfg_net *n = &c->client_nets[i];
        FUZZ_CHECK(n->family == AF_INET ? n->prefix <= 32 : n->prefix <= 128);
        /* A network contains its own address. */
        struct sockaddr_storage ss = {0};
        if (n->family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            a->sin_family = AF_INET;
            memcpy(&a->sin_addr, n->addr, 4);
        } else {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            a->sin6_family = AF_INET6;
            memcpy(&a->sin6_addr, n->addr, 16);
        }
        FUZZ_CHECK(cfg_net_match(c->client_nets, c->n_client_nets, (struct sockaddr *)&ss));
    }
    const struct cfg_port_range *pr[] = {c->connect_ports, c->http_ports};
    const size_t pn[] = {c->n_connect_ports, c->n_http_ports};
    for (size_t j = 0; j < 2; j++)
        for (size_t i = 0; i < pn[j]; i++) {
            FUZZ_CHECK(pr[j][i].lo >= 1 && pr[j][i].lo <= pr[j][i].hi);
            FUZZ_CHECK(cfg_port_allowed(pr[j], pn[j], pr[j][i].hi));
        }
    for (size_t i = 0; i < c->resolver.n_servers; i++)
        FUZZ_CHECK(c->resolver.servers[i] != NULL && c->resolver.servers[i][0] != '\0');
    fuzz_check_path(c->resolver.hosts_file);
    FUZZ_CHECK(c->resolver.min_ttl_s <= c->resolver.max_ttl_s);
    FUZZ_CHECK(c->resolver.timeout_ms >= 100 && c->resolver.timeout_ms <= 60000);
    FUZZ_CHECK(c->resolver.tries >= 1 && c->resolver.tries <= 10);
    const unsigned *t = &c->timeouts.connect_ms;
    for (size_t i = 0; i < sizeof(c->timeouts) / sizeof(unsigned); i++)
        FUZZ_CHECK(t[i] >= 1 && t[i] <= 7u * 86400000u);
    FUZZ_CHECK(c->limits.max_connections >= 1 && c->limits.max_connections <= 1000000);
    FUZZ_CHECK(c->limits.max_headers >= 8 && c->limits.max_headers <= 128);
    FUZZ_CHECK(c->limits.buffer_size >= 4096 && c->limits.buffer_size <= (1u << 20));
    FUZZ_CHECK(c->limits.pipe_size >= 4096 && c->limits.pipe_size <= (1u << 20));
    FUZZ_CHECK(c->limits.max_head_size >= 1024 && c->limits.max_head_size <= (1u << 20));
    fuzz_check_path(c->pid_file);
    fuzz_check_path(c->log.event_file);
    fuzz_check_path(c->log.access_file);
    FUZZ_CHECK(c->log.access_fields != NULL);
    FUZZ_CHECK(c->tls.n_keyrings >= 1);
    for (size_t i = 0; i < c->tls.n_keyrings; i++) {
        FUZZ_CHECK(c->tls.keyrings[i].name != NULL && c->tls.keyrings[i].name[0] != '\0');
        fuzz_check_path(c->tls.keyrings[i].dir);
    }
    fuzz_check_hosts(&c->tls.intercept_hosts);
    fuzz_check_hosts(&c->tls.never_intercept);
    FUZZ_CHECK(c->tls.cert_cache_entries >= 1);
    fuzz_check_path(c->tls.ca_file);
    fuzz_check_path(c->tls.keylog_file);
    FUZZ_CHECK(c->tls.splash_text == NULL || strlen(c->tls.splash_text) <= 4 * 200);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A config is a few KiB; longer inputs only slow the search down. */
    if (size > 64 * 1024)
        return 0;
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    char err[256];
    memset(err, 0x55, sizeof(err));
    struct cfg *c = cfg_load_string(text, "fuzz.conf", err, sizeof(err));
    if (c != NULL) {
        FUZZ_CHECK(atomic_load(&c->refs) == 1);
        fuzz_check_cfg(cfg_ref(c));
        cfg_unref(c);
        cfg_unref(c);
    } else {
        size_t n = strnlen(err, sizeof(err));
        FUZZ_CHECK(n < sizeof(err) && strncmp(err, "fuzz.conf", 9) == 0);
        for (size_t i = 0; i < n; i++)
            FUZZ_CHECK((unsigned char)err[i] >= 0x20);
    }

    if (size < 128) {
        unsigned ms;
        size_t bytes;
        struct cfg_net net;
        if (cfg_parse_duration_ms(text, &ms) == CAT_OK)
            FUZZ_CHECK(text[0] >= '0' && text[0] <= '9');
        if (cfg_parse_size(text, &bytes) == CAT_OK)
            FUZZ_CHECK(text[0] >= '0' && text[0] <= '9');
        if (cfg_parse_net(text, &net) == CAT_OK)
            FUZZ_CHECK(net.family == AF_INET ? net.prefix <= 32 : net.prefix <= 128);
    }
    free(text);
    return 0;
}
