/*
 * Stapled OCSP from a TLS 1.2 server's first flight: an incremental scanner
 * of the plaintext records and handshake messages a server sends after the
 * ClientHello, which keeps the OCSPResponse of a CertificateStatus message
 * (RFC 6066 section 8). Pure (no I/O); it allocates only that response,
 * at most STAPLE_MAX_RESPONSE bytes. Fed by core/tls.c for a staple fetch
 * (core/probe.c); see staple.c for why a fetch of its own.
 */
#ifndef CATENA_CORE_STAPLE_H
#define CATENA_CORE_STAPLE_H

#include "core/attr.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STAPLE_MAX_RESPONSE 16384u   /* largest OCSPResponse kept */
#define STAPLE_MAX_FLIGHT (1u << 20) /* bytes scanned before giving up */

enum staple_state {
    STAPLE_SCANNING = 0, /* more of the flight is needed */
    STAPLE_FOUND,        /* a CertificateStatus carried an OCSP response: staple_response() */
    STAPLE_ABSENT,       /* the plaintext flight ended (ServerHelloDone, ChangeCipherSpec,
                            encrypted records) without one */
    STAPLE_ERROR,        /* an alert, or records or messages we cannot follow (malformed,
                            oversized, not TLS): the handshake's own checks will say */
};

/* Scanner state. Every field is bounded by the wire format's own lengths. */
struct staple {
    enum staple_state state;
    uint8_t rec_hdr[5]; /* the record header being gathered */
    uint8_t rec_hdr_len;
    uint16_t rec_left;  /* bytes of the current handshake record still to come */
    uint8_t msg_hdr[4]; /* the handshake message header being gathered */
    uint8_t msg_hdr_len;
    uint32_t msg_left; /* body bytes of the current message still to come */
    bool in_status;    /* the current message is a CertificateStatus */
    uint8_t st_hdr[4]; /* its status_type and response length */
    uint8_t st_hdr_len;
    uint8_t *der; /* owned: the OCSPResponse, der_cap bytes once complete */
    size_t der_len, der_cap;
    size_t seen; /* bytes fed so far */
};

/** Readies s for a new flight. */
void staple_init(struct staple *s) CAT_NONNULL(1);

/** Frees what s holds; s may be initialised again. */
void staple_fini(struct staple *s) CAT_NONNULL(1);

/**
 * Feeds n bytes the server sent, in order, split anywhere. Returns the state
 * after them; once it is not SCANNING, later bytes are ignored.
 */
enum staple_state staple_feed(struct staple *s, const void *p, size_t n) CAT_NONNULL(1);

/** The OCSPResponse (DER, owned by s) in state FOUND, else NULL. */
const uint8_t *staple_response(const struct staple *s, size_t *len) CAT_NONNULL(1, 2);

/** "scanning", "found", "absent", "error". */
const char *staple_state_str(enum staple_state st);

#endif
