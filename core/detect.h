/*
 * Protocol detection on the first bytes a client sends through a tunnel: is
 * it a TLS ClientHello, and if so which server name, ALPN protocols and
 * versions does it offer. The bytes are only read, never consumed: the
 * caller replays them to wolfSSL (intercept) or to the server (tunnel).
 *
 * Handles a ClientHello fragmented over several TLS records and over several
 * reads (call again with the longer buffer).
 */
#ifndef CATENA_CORE_DETECT_H
#define CATENA_CORE_DETECT_H

#include "core/attr.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Beyond this many bytes of records a ClientHello is refused (real ones are < 2 KiB, 8 KiB with PQ shares). */
#define DETECT_MAX_HELLO 32768
#define DETECT_MAX_ALPN 16
#define DETECT_MAX_VERSIONS 16

struct detect_hello {
    uint16_t record_version;   /* from the first record header */
    uint16_t legacy_version;   /* client_version field of the ClientHello */
    char sni[256];             /* host_name from server_name, NUL-terminated; "" if absent */
    bool has_sni;
    /* ALPN protocol names, each NUL-terminated, in the client's order */
    char alpn[DETECT_MAX_ALPN][64];
    size_t n_alpn;
    uint16_t versions[DETECT_MAX_VERSIONS]; /* supported_versions (TLS 1.3 clients) */
    size_t n_versions;
    size_t hello_len;          /* bytes of records the ClientHello occupied */
    bool sni_invalid;          /* server_name present but not a valid host name */
};

/**
 * Looks at buf (the first len bytes the client sent).
 * CAT_OK: a complete ClientHello, h filled.
 * CAT_AGAIN: so far it looks like TLS; need more bytes.
 * CAT_DECLINED: not TLS (plain TCP: tunnel it, or deny where SSL is forced).
 * CAT_ERR: TLS records but not a well-formed ClientHello (or too large).
 */
int detect_hello(const uint8_t *buf, size_t len, struct detect_hello *h) CAT_WUR CAT_NONNULL(3);

/** Highest version the client offers (supported_versions if present, else legacy_version). */
uint16_t detect_max_version(const struct detect_hello *h) CAT_NONNULL(1);

/** True if the client offers ALPN protocol `name`. */
bool detect_offers_alpn(const struct detect_hello *h, const char *name) CAT_NONNULL(1, 2);

#endif
