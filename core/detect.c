/*
 * ClientHello detection on the bytes a client sent first (after CONNECT, or
 * on a transparent connection). Pure and stateless: every call reparses buf
 * from the start, reads at most DETECT_MAX_HELLO bytes, allocates nothing.
 * Two passes: detect_frame() walks the record layer and proves the whole
 * handshake message is present and well framed; only then detect_parse()
 * reads the ClientHello through a reader that steps over record headers, so
 * no read in the second pass can leave the records the first pass checked.
 * Invariant: a result on a prefix of the bytes is CAT_AGAIN or the result on
 * the whole (monotone), which lets the caller stop at the first other answer.
 */
#include "core/detect.h"

#include <string.h>

#define DETECT_REC_HDR 5
#define DETECT_HS_HDR 4
/* RFC 8446 5.1: a plaintext fragment is at most 2^14 bytes. */
#define DETECT_REC_MAX 16384
#define DETECT_CT_HANDSHAKE 22
#define DETECT_HS_CLIENT_HELLO 1
/* version(2) random(32) session_id(1) cipher_suites(2+2) compression(1+1) */
#define DETECT_HELLO_MIN 41
#define DETECT_SESSION_ID_MAX 32
#define DETECT_HOST_MAX 253
#define DETECT_LABEL_MAX 63
#define DETECT_ALPN_NAME_MAX 63

#define DETECT_EXT_SERVER_NAME 0
#define DETECT_EXT_ALPN 16
#define DETECT_EXT_SUPPORTED_VERSIONS 43
#define DETECT_SNI_HOST_NAME 0

/* Sequential reader over the handshake message, skipping record headers. */
struct detect_rd {
    const uint8_t *buf; /* borrowed: the caller's bytes */
    size_t pos;         /* next byte in buf */
    size_t rec_end;     /* end of the current record's payload in buf */
    size_t off;         /* handshake-message bytes consumed so far */
};

static uint16_t
detect_be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

/*
 * Checks whatever part of the first record header (and the first handshake
 * byte) is present. These are the cheap "is this TLS at all" tests, so a
 * plain-text protocol is declined on its first byte and only TLS waits.
 */
static int
detect_first_bytes(const uint8_t *buf, size_t len)
{
    if (len == 0)
        return CAT_AGAIN;
    if (buf[0] & 0x80) {
        /*
         * SSLv2 record header: 2-byte length with the high bit, then
         * msg_type 1 (CLIENT-HELLO) and the version. A version-3 one is an
         * SSLv2-compatible ClientHello (RFC 5246 E.2): nothing current sends
         * it and our wolfSSL is built without OLD_HELLO_ALLOWED, so it is TLS
         * we do not support (CAT_ERR) rather than something to tunnel.
         * Anything else with the high bit set is not TLS.
         */
        if (len < 3)
            return CAT_AGAIN;
        if (buf[2] != 1)
            return CAT_DECLINED;
        if (len < 4)
            return CAT_AGAIN;
        return buf[3] == 3 ? CAT_ERR : CAT_DECLINED;
    }
    if (buf[0] != DETECT_CT_HANDSHAKE)
        return CAT_DECLINED;
    if (len >= 2 && buf[1] != 3)
        return CAT_DECLINED;
    /* SSL 3.0 .. TLS 1.3; RFC 8446 freezes the record version at 0x0301/0x0303. */
    if (len >= 3 && buf[2] > 4)
        return CAT_DECLINED;
    if (len >= DETECT_REC_HDR) {
        size_t rlen = detect_be16(buf + 3);
        /* RFC 5246 6.2.1: no zero-length handshake fragments. */
        if (rlen == 0 || rlen > DETECT_REC_MAX)
            return CAT_DECLINED;
    }
    if (len > DETECT_REC_HDR && buf[DETECT_REC_HDR] != DETECT_HS_CLIENT_HELLO)
        return CAT_DECLINED;
    return CAT_OK;
}

/*
 * Walks the records that carry the handshake message. CAT_OK: the whole
 * message is in buf; *msg_len is its body length, *end where its last record
 * ends. Every decision rests only on bytes present and never on len itself,
 * which keeps results monotone over prefixes.
 */
static int
detect_frame(const uint8_t *buf, size_t len, size_t *msg_len, size_t *end)
{
    uint8_t hs[DETECT_HS_HDR];
    size_t hs_got = 0; /* handshake header bytes gathered into hs */
    size_t need = 0;   /* whole message (header + body); 0 until known */
    size_t got = 0;    /* message bytes in the records walked so far */
    size_t pos = 0;

    /* Each record is >= 6 bytes and must end within DETECT_MAX_HELLO: bounded. */
    for (;;) {
        /* No further record fits: so len >= DETECT_MAX_HELLO never answers CAT_AGAIN. */
        if (pos + DETECT_REC_HDR + 1 > DETECT_MAX_HELLO)
            return CAT_ERR;
        if (len - pos < DETECT_REC_HDR) {
            /* A partial continuation header can already be wrong. */
            if (pos > 0 && pos < len && buf[pos] != DETECT_CT_HANDSHAKE)
                return CAT_ERR;
            if (pos > 0 && len - pos >= 2 && buf[pos + 1] != 3)
                return CAT_ERR;
            return CAT_AGAIN;
        }
        size_t rlen = detect_be16(buf + pos + 3);
        if (pos > 0) {
            /* RFC 8446 5.1: nothing may be interleaved with a fragmented handshake message. */
            if (buf[pos] != DETECT_CT_HANDSHAKE || buf[pos + 1] != 3 || buf[pos + 2] > 4)
                return CAT_ERR;
            if (rlen == 0 || rlen > DETECT_REC_MAX)
                return CAT_ERR;
        }
        size_t rend = pos + DETECT_REC_HDR + rlen;
        if (rend > DETECT_MAX_HELLO)
            return CAT_ERR;
        got += rlen;

        size_t p = pos + DETECT_REC_HDR;
        while (hs_got < DETECT_HS_HDR && p < rend && p < len)
            hs[hs_got++] = buf[p++];
        if (need == 0 && hs_got == DETECT_HS_HDR) {
            size_t body = ((size_t)hs[1] << 16) | ((size_t)hs[2] << 8) | hs[3];
            if (body < DETECT_HELLO_MIN)
                return CAT_ERR;
            /* At least one record header in front of it. */
            if (DETECT_REC_HDR + DETECT_HS_HDR + body > DETECT_MAX_HELLO)
                return CAT_ERR;
            *msg_len = body;
            need = DETECT_HS_HDR + body;
        }
        if (need != 0 && got >= need) {
            /*
             * A client's first flight is the ClientHello alone: anything after
             * it in the same record would be a second handshake message that
             * has no place before the server has answered.
             */
            if (got > need)
                return CAT_ERR;
            if (rend > len)
                return CAT_AGAIN;
            *end = rend;
            return CAT_OK;
        }
        if (rend > len)
            return CAT_AGAIN;
        pos = rend;
    }
}

/* Only called with r->off below the message length, so a next byte exists. */
static void
detect_rd_step(struct detect_rd *r)
{
    if (r->pos == r->rec_end) {
        size_t rlen = detect_be16(r->buf + r->pos + 3);
        r->pos += DETECT_REC_HDR;
        r->rec_end = r->pos + rlen;
    }
    CAT_ASSERT(r->pos < r->rec_end);
}

static bool
detect_rd_skip(struct detect_rd *r, size_t lim, size_t n)
{
    if (n > lim - r->off)
        return false;
    while (n > 0) {
        detect_rd_step(r);
        size_t k = CAT_MIN(n, r->rec_end - r->pos);
        r->pos += k;
        r->off += k;
        n -= k;
    }
    return true;
}

static bool
detect_rd_copy(struct detect_rd *r, size_t lim, uint8_t *dst, size_t n)
{
    if (n > lim - r->off)
        return false;
    while (n > 0) {
        detect_rd_step(r);
        size_t k = CAT_MIN(n, r->rec_end - r->pos);
        memcpy(dst, r->buf + r->pos, k);
        dst += k;
        r->pos += k;
        r->off += k;
        n -= k;
    }
    return true;
}

static bool
detect_rd_u8(struct detect_rd *r, size_t lim, size_t *v)
{
    uint8_t b;
    if (!detect_rd_copy(r, lim, &b, 1))
        return false;
    *v = b;
    return true;
}

static bool
detect_rd_u16(struct detect_rd *r, size_t lim, size_t *v)
{
    uint8_t b[2];
    if (!detect_rd_copy(r, lim, b, 2))
        return false;
    *v = detect_be16(b);
    return true;
}

static bool
detect_is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

static bool
detect_is_hex(uint8_t c)
{
    return detect_is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/*
 * DNS host name as RFC 6066 3 wants in server_name: ASCII letters, digits,
 * '-' and '_' (seen in the wild), non-empty labels <= 63, <= 253 in all, no
 * trailing dot. A numeric last label makes it an IP literal, which RFC 6066
 * forbids; that also catches the short and hex forms ("127.1", "0x7f.1")
 * that URL parsers and inet_aton read as IPv4. ':' already rules out IPv6.
 */
static bool
detect_host_valid(const uint8_t *s, size_t n)
{
    if (n == 0 || n > DETECT_HOST_MAX)
        return false;
    size_t label = 0, last = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
            last = i + 1;
            continue;
        }
        bool ok = detect_is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  c == '-' || c == '_';
        if (!ok || ++label > DETECT_LABEL_MAX)
            return false;
    }
    if (label == 0)
        return false;

    const uint8_t *l = s + last;
    bool numeric = true;
    for (size_t i = 0; i < label; i++)
        numeric = numeric && detect_is_digit(l[i]);
    if (numeric)
        return false;
    if (label >= 2 && l[0] == '0' && (l[1] == 'x' || l[1] == 'X')) {
        bool hex = true;
        for (size_t i = 2; i < label; i++)
            hex = hex && detect_is_hex(l[i]);
        if (hex)
            return false;
    }
    return true;
}

/* RFC 6066 3. Called with r at the extension data; lim is its end. */
static int
detect_ext_sni(struct detect_rd *r, size_t lim, struct detect_hello *h)
{
    size_t list;
    if (!detect_rd_u16(r, lim, &list) || list == 0 || list != lim - r->off)
        return CAT_ERR;
    /* Bounded: every entry consumes >= 3 bytes. */
    while (r->off < lim) {
        size_t type, n;
        if (!detect_rd_u8(r, lim, &type) || !detect_rd_u16(r, lim, &n))
            return CAT_ERR;
        /* RFC 6066 3: later name types also start with a 16-bit length, so they can be skipped. */
        if (type != DETECT_SNI_HOST_NAME) {
            if (!detect_rd_skip(r, lim, n))
                return CAT_ERR;
            continue;
        }
        /* "MUST NOT contain more than one name of the same name_type"; HostName is <1..2^16-1>. */
        if (h->has_sni || n == 0)
            return CAT_ERR;
        h->has_sni = true;
        if (n > DETECT_HOST_MAX) {
            h->sni_invalid = true;
            if (!detect_rd_skip(r, lim, n))
                return CAT_ERR;
            continue;
        }
        uint8_t name[DETECT_HOST_MAX];
        if (!detect_rd_copy(r, lim, name, n))
            return CAT_ERR;
        /* An invalid name is never stored: callers may use sni as a target or a cert name. */
        if (!detect_host_valid(name, n)) {
            h->sni_invalid = true;
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            uint8_t c = name[i];
            h->sni[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        }
        h->sni[n] = '\0';
    }
    return CAT_OK;
}

/* RFC 7301 3.1. Names that do not fit, contain NUL, or come after DETECT_MAX_ALPN are skipped. */
static int
detect_ext_alpn(struct detect_rd *r, size_t lim, struct detect_hello *h)
{
    size_t list;
    if (!detect_rd_u16(r, lim, &list) || list < 2 || list != lim - r->off)
        return CAT_ERR;
    /* Bounded: every name consumes >= 2 bytes. */
    while (r->off < lim) {
        size_t n;
        uint8_t name[DETECT_ALPN_NAME_MAX];
        if (!detect_rd_u8(r, lim, &n) || n == 0)
            return CAT_ERR;
        if (n > DETECT_ALPN_NAME_MAX || h->n_alpn == DETECT_MAX_ALPN) {
            if (!detect_rd_skip(r, lim, n))
                return CAT_ERR;
            continue;
        }
        if (!detect_rd_copy(r, lim, name, n))
            return CAT_ERR;
        /* A NUL would truncate the C string and make detect_offers_alpn() match a prefix. */
        if (memchr(name, '\0', n) != NULL)
            continue;
        memcpy(h->alpn[h->n_alpn], name, n);
        h->alpn[h->n_alpn][n] = '\0';
        h->n_alpn++;
    }
    return CAT_OK;
}

/* RFC 8446 4.2.1, ClientHello form: versions<2..254>. Kept as sent, GREASE included. */
static int
detect_ext_versions(struct detect_rd *r, size_t lim, struct detect_hello *h)
{
    size_t n;
    if (!detect_rd_u8(r, lim, &n) || n < 2 || n % 2 != 0 || n != lim - r->off)
        return CAT_ERR;
    while (r->off < lim) {
        size_t v;
        if (!detect_rd_u16(r, lim, &v))
            return CAT_ERR;
        if (h->n_versions < DETECT_MAX_VERSIONS)
            h->versions[h->n_versions++] = (uint16_t)v;
    }
    return CAT_OK;
}

/* r is at the start of the ClientHello body; lim is the body's end. */
static int
detect_parse(struct detect_rd *r, size_t lim, struct detect_hello *h)
{
    size_t v, n;
    if (!detect_rd_u16(r, lim, &v) || (v >> 8) != 3)
        return CAT_ERR;
    h->legacy_version = (uint16_t)v;
    if (!detect_rd_skip(r, lim, 32))
        return CAT_ERR;
    if (!detect_rd_u8(r, lim, &n) || n > DETECT_SESSION_ID_MAX || !detect_rd_skip(r, lim, n))
        return CAT_ERR;
    if (!detect_rd_u16(r, lim, &n) || n < 2 || n % 2 != 0 || !detect_rd_skip(r, lim, n))
        return CAT_ERR;
    if (!detect_rd_u8(r, lim, &n) || n < 1 || !detect_rd_skip(r, lim, n))
        return CAT_ERR;
    /* RFC 5246 7.4.1.2: extensions may be absent altogether (old clients). */
    if (r->off == lim)
        return CAT_OK;
    if (!detect_rd_u16(r, lim, &n) || n != lim - r->off)
        return CAT_ERR;

    /*
     * RFC 8446 4.2: no extension type twice in one block. A bit per type
     * (8 KiB of stack) keeps the check linear whatever the client sends.
     */
    uint64_t seen[65536 / 64];
    memset(seen, 0, sizeof(seen));
    /* Bounded: every extension consumes >= 4 bytes. */
    while (r->off < lim) {
        size_t type, elen;
        if (!detect_rd_u16(r, lim, &type) || !detect_rd_u16(r, lim, &elen) || elen > lim - r->off)
            return CAT_ERR;
        uint64_t bit = (uint64_t)1 << (type % 64);
        if (seen[type / 64] & bit)
            return CAT_ERR;
        seen[type / 64] |= bit;

        size_t eend = r->off + elen;
        int rc = CAT_OK;
        switch (type) {
        case DETECT_EXT_SERVER_NAME:
            rc = detect_ext_sni(r, eend, h);
            break;
        case DETECT_EXT_ALPN:
            rc = detect_ext_alpn(r, eend, h);
            break;
        case DETECT_EXT_SUPPORTED_VERSIONS:
            rc = detect_ext_versions(r, eend, h);
            break;
        default:
            if (!detect_rd_skip(r, eend, elen))
                rc = CAT_ERR;
            break;
        }
        if (rc != CAT_OK)
            return rc;
        CAT_ASSERT(r->off == eend);
    }
    return CAT_OK;
}

int
detect_hello(const uint8_t *buf, size_t len, struct detect_hello *h)
{
    memset(h, 0, sizeof(*h));
    int rc = detect_first_bytes(buf, len);
    if (rc != CAT_OK)
        return rc;

    size_t body = 0, end = 0;
    rc = detect_frame(buf, len, &body, &end);
    if (rc != CAT_OK)
        return rc;

    struct detect_rd r = {
        .buf = buf,
        .pos = DETECT_REC_HDR,
        .rec_end = DETECT_REC_HDR + detect_be16(buf + 3),
        .off = 0,
    };
    /* The handshake header was checked by detect_frame(); it may span records too. */
    bool skipped = detect_rd_skip(&r, DETECT_HS_HDR, DETECT_HS_HDR);
    CAT_ASSERT(skipped);
    h->record_version = detect_be16(buf + 1);
    rc = detect_parse(&r, DETECT_HS_HDR + body, h);
    if (rc != CAT_OK) {
        memset(h, 0, sizeof(*h));
        return rc;
    }
    CAT_ASSERT(r.off == DETECT_HS_HDR + body && r.pos == end);
    h->hello_len = end;
    return CAT_OK;
}

uint16_t
detect_max_version(const struct detect_hello *h)
{
    uint16_t best = 0;
    /*
     * Only 0x03xx counts: GREASE (RFC 8701, 0x?a?a) and the old draft code
     * points (0x7fxx, 0xfbxx) would otherwise outrank TLS 1.3 numerically.
     */
    for (size_t i = 0; i < h->n_versions && i < DETECT_MAX_VERSIONS; i++) {
        uint16_t v = h->versions[i];
        if ((v >> 8) == 3 && v > best)
            best = v;
    }
    return best != 0 ? best : h->legacy_version;
}

bool
detect_offers_alpn(const struct detect_hello *h, const char *name)
{
    for (size_t i = 0; i < h->n_alpn && i < DETECT_MAX_ALPN; i++) {
        if (strcmp(h->alpn[i], name) == 0)
            return true;
    }
    return false;
}
