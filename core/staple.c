/*
 * The stapled-OCSP scanner: TLS records -> handshake messages -> the
 * CertificateStatus body, for the plaintext part of a TLS 1.2 server flight.
 *
 * Why catena fetches staples with a handshake of its own (measured on this
 * machine, wolfSSL 5.5.4 as built in build/wolfssl, a client CTX as
 * tls_srv_ctx_new() makes it (VERIFY_NONE, no CAs), openssl s_server
 * -status_file, TLS 1.2 and TLS 1.3):
 *  - wolfSSL_UseOCSPStapling() (per session or CTX) alone sends no
 *    status_request: the extension is suppressed unless the CTX's cert
 *    manager has wolfSSL_CTX_EnableOCSPStapling(); no server stapled.
 *  - With EnableOCSPStapling, every staple fails the handshake with -406
 *    BAD_CERTIFICATE_STATUS_ERROR (TLS 1.2 sends alert 113): good, revoked,
 *    signed by a stranger, or about another certificate, in 1.2 and 1.3 alike;
 *    loading the roots and the intermediate does not help while VERIFY_NONE.
 *    With VERIFY_PEER it is good -> OK, revoked -> -360, unverifiable -> -406,
 *    all fatal and never seen by the verify callback. A server that staples
 *    nothing: OK in every case. wolfSSL_get_tlsext_status_ocsp_resp() gives
 *    0 bytes. So catena's own handshakes cannot ask for a staple.
 *  - TLS 1.3 carries the staple in the encrypted Certificate message, which
 *    wolfSSL parses into a transient buffer: unreadable to us.
 * Hence a staple fetch (probe.c, on tls.c's staple context: TLS 1.2 only,
 * stapling enabled): its ClientHello asks, this scanner reads the server's
 * answer as it passes through tls_recv_cb, and the session is cut where the
 * flight ends, before wolfSSL would judge the staple. The response is then
 * checked by revoke.c like a fetched one (rev_staple()).
 *
 * Invariants: every byte is consumed at most once, each loop pass consumes at
 * least one, and nothing is kept but the response (bounded).
 */
#include "core/staple.h"

#include <stdlib.h>
#include <string.h>

#define STAPLE_REC_HANDSHAKE 22
#define STAPLE_REC_CCS 20
#define STAPLE_REC_ALERT 21
#define STAPLE_REC_APPDATA 23
#define STAPLE_MAX_FRAGMENT 16384u /* RFC 5246 6.2.1: plaintext records */
#define STAPLE_HS_STATUS 22        /* CertificateStatus */
#define STAPLE_HS_DONE 14          /* ServerHelloDone */
#define STAPLE_STATUS_OCSP 1       /* CertificateStatusType ocsp */

void
staple_init(struct staple *s)
{
    memset(s, 0, sizeof(*s));
    s->state = STAPLE_SCANNING;
}

void
staple_fini(struct staple *s)
{
    free(s->der);
    s->der = NULL;
    s->der_len = s->der_cap = 0;
}

const char *
staple_state_str(enum staple_state st)
{
    switch (st) {
    case STAPLE_SCANNING:
        return "scanning";
    case STAPLE_FOUND:
        return "found";
    case STAPLE_ABSENT:
        return "absent";
    case STAPLE_ERROR:
        return "error";
    }
    return "?";
}

const uint8_t *
staple_response(const struct staple *s, size_t *len)
{
    if (s->state != STAPLE_FOUND) {
        *len = 0;
        return NULL;
    }
    *len = s->der_len;
    return s->der;
}

/* Moves up to `want` bytes from *p into a small header buffer; true when full. */
static bool
staple_gather(uint8_t *hdr, uint8_t *have, uint8_t want, const uint8_t **p, size_t *n)
{
    size_t k = CAT_MIN((size_t)(want - *have), *n);
    memcpy(hdr + *have, *p, k);
    *have = (uint8_t)(*have + k);
    *p += k;
    *n -= k;
    return *have == want;
}

static uint32_t
staple_u24(const uint8_t *b)
{
    return (uint32_t)b[0] << 16 | (uint32_t)b[1] << 8 | b[2];
}

/* A handshake message header is complete: what its body means to us. */
static void
staple_msg_start(struct staple *s)
{
    uint8_t type = s->msg_hdr[0];
    uint32_t len = staple_u24(s->msg_hdr + 1);
    s->msg_left = len;
    s->in_status = false;
    if (type == STAPLE_HS_DONE) {
        s->state = len == 0 ? STAPLE_ABSENT : STAPLE_ERROR;
    } else if (type == STAPLE_HS_STATUS) {
        /* status_type (1), a uint24 length, then at least one byte of response. */
        if (len < 5 || len - 4 > STAPLE_MAX_RESPONSE)
            s->state = STAPLE_ERROR;
        s->in_status = true;
        s->st_hdr_len = 0;
    } else if (len > STAPLE_MAX_FLIGHT) {
        s->state = STAPLE_ERROR;
    }
    if (s->state == STAPLE_SCANNING && len == 0)
        s->msg_hdr_len = 0; /* an empty message (HelloRequest): the next one */
}

/* The CertificateStatus header (inside the message body) is complete. */
static void
staple_status_start(struct staple *s)
{
    uint32_t rlen = staple_u24(s->st_hdr + 1);
    /* RFC 6066 8: struct { CertificateStatusType; opaque OCSPResponse<1..2^24-1>; }
     * and nothing else in the message. */
    if (s->st_hdr[0] != STAPLE_STATUS_OCSP || rlen == 0 || rlen != s->msg_left) {
        s->state = STAPLE_ERROR;
        return;
    }
    s->der = malloc(rlen);
    if (s->der == NULL) {
        s->state = STAPLE_ERROR;
        return;
    }
    s->der_cap = rlen;
    s->der_len = 0;
}

/* Handshake-message bytes (the fragments of handshake records, concatenated). */
static void
staple_messages(struct staple *s, const uint8_t *p, size_t n)
{
    while (n > 0 && s->state == STAPLE_SCANNING) {
        if (s->msg_hdr_len < sizeof(s->msg_hdr)) {
            if (staple_gather(s->msg_hdr, &s->msg_hdr_len, sizeof(s->msg_hdr), &p, &n))
                staple_msg_start(s);
            continue;
        }
        if (s->in_status && s->st_hdr_len < sizeof(s->st_hdr)) {
            uint8_t before = s->st_hdr_len;
            bool full = staple_gather(s->st_hdr, &s->st_hdr_len, sizeof(s->st_hdr), &p, &n);
            s->msg_left -= (uint32_t)(s->st_hdr_len - before);
            if (full)
                staple_status_start(s);
            continue;
        }
        size_t k = CAT_MIN(n, (size_t)s->msg_left);
        if (s->in_status) {
            memcpy(s->der + s->der_len, p, k);
            s->der_len += k;
        }
        p += k;
        n -= k;
        s->msg_left -= (uint32_t)k;
        if (s->msg_left == 0 && s->in_status)
            s->state = STAPLE_FOUND;
        else if (s->msg_left == 0)
            s->msg_hdr_len = 0;
    }
}

/* A record header is complete: follow handshake records, stop at anything else. */
static void
staple_record_start(struct staple *s)
{
    const uint8_t *h = s->rec_hdr;
    uint16_t len = (uint16_t)(h[3] << 8 | h[4]);
    s->rec_hdr_len = 0;
    if (h[1] != 3) {
        s->state = STAPLE_ERROR; /* not TLS (an HTTP answer, SSLv2) */
        return;
    }
    switch (h[0]) {
    case STAPLE_REC_HANDSHAKE:
        /* Empty handshake fragments are forbidden (RFC 5246 6.2.1). */
        if (len == 0 || len > STAPLE_MAX_FRAGMENT)
            s->state = STAPLE_ERROR;
        s->rec_left = len;
        break;
    case STAPLE_REC_CCS:
    case STAPLE_REC_APPDATA:
        /* The plaintext flight is over: a TLS 1.3 server, or a resumption. */
        s->state = STAPLE_ABSENT;
        break;
    case STAPLE_REC_ALERT:
    default:
        s->state = STAPLE_ERROR;
        break;
    }
}

enum staple_state
staple_feed(struct staple *s, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    if (s->state != STAPLE_SCANNING)
        return s->state;
    if (n > STAPLE_MAX_FLIGHT - CAT_MIN(s->seen, (size_t)STAPLE_MAX_FLIGHT)) {
        s->state = STAPLE_ERROR;
        return s->state;
    }
    s->seen += n;
    while (n > 0 && s->state == STAPLE_SCANNING) {
        if (s->rec_left == 0) {
            if (staple_gather(s->rec_hdr, &s->rec_hdr_len, sizeof(s->rec_hdr), &p, &n))
                staple_record_start(s);
            continue;
        }
        size_t k = CAT_MIN(n, (size_t)s->rec_left);
        staple_messages(s, p, k);
        p += k;
        n -= k;
        s->rec_left = (uint16_t)(s->rec_left - k);
    }
    return s->state;
}
