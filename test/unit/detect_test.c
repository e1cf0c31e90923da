/*
 * Unit tests for core/detect.c: ClientHellos captured from curl and openssl
 * on loopback, plus hellos assembled by hb_build() with chosen SNI, ALPN,
 * versions and record splits, and hand-broken ones for each error path.
 */
#include "core/detect.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

/*
 * Captured with a python3 socket listener on 127.0.0.1 and
 *   curl 7.88.1 (OpenSSL 3.0.19):
 *     curl https://example.test:PORT/ --resolve example.test:PORT:127.0.0.1
 *   openssl 3.0.19:
 *     openssl s_client -connect 127.0.0.1:PORT -servername example.test -alpn h2,http/1.1
 *     openssl s_client -connect 127.0.0.1:PORT -servername Example.Test -tls1_2
 * Also the seeds test/fuzz/corpus/hello/real-*.
 */
/* clang-format off */
static const uint8_t hello_curl[] = {
    0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0xab,
    0x5d, 0xd2, 0x7a, 0xe0, 0x68, 0xe8, 0xd1, 0xa7, 0x5f, 0x85, 0xc0, 0x57,
    0xaf, 0x2c, 0x1f, 0x55, 0x80, 0xa6, 0xd4, 0x49, 0xb2, 0x01, 0x5d, 0xa8,
    0x0d, 0xec, 0x90, 0xba, 0x16, 0x02, 0x74, 0x20, 0x8a, 0x52, 0x68, 0x82,
    0xb8, 0xae, 0x83, 0x53, 0xc2, 0x77, 0x03, 0x88, 0x71, 0xbd, 0xce, 0x68,
    0x74, 0xb8, 0x35, 0x1b, 0xf7, 0x65, 0x98, 0xbb, 0xe2, 0xbc, 0x96, 0xd3,
    0xe2, 0xc7, 0x9c, 0x8a, 0x00, 0x3e, 0x13, 0x02, 0x13, 0x03, 0x13, 0x01,
    0xc0, 0x2c, 0xc0, 0x30, 0x00, 0x9f, 0xcc, 0xa9, 0xcc, 0xa8, 0xcc, 0xaa,
    0xc0, 0x2b, 0xc0, 0x2f, 0x00, 0x9e, 0xc0, 0x24, 0xc0, 0x28, 0x00, 0x6b,
    0xc0, 0x23, 0xc0, 0x27, 0x00, 0x67, 0xc0, 0x0a, 0xc0, 0x14, 0x00, 0x39,
    0xc0, 0x09, 0xc0, 0x13, 0x00, 0x33, 0x00, 0x9d, 0x00, 0x9c, 0x00, 0x3d,
    0x00, 0x3c, 0x00, 0x35, 0x00, 0x2f, 0x00, 0xff, 0x01, 0x00, 0x01, 0x75,
    0x00, 0x00, 0x00, 0x11, 0x00, 0x0f, 0x00, 0x00, 0x0c, 0x65, 0x78, 0x61,
    0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x74, 0x65, 0x73, 0x74, 0x00, 0x0b, 0x00,
    0x04, 0x03, 0x00, 0x01, 0x02, 0x00, 0x0a, 0x00, 0x16, 0x00, 0x14, 0x00,
    0x1d, 0x00, 0x17, 0x00, 0x1e, 0x00, 0x19, 0x00, 0x18, 0x01, 0x00, 0x01,
    0x01, 0x01, 0x02, 0x01, 0x03, 0x01, 0x04, 0x00, 0x10, 0x00, 0x0e, 0x00,
    0x0c, 0x02, 0x68, 0x32, 0x08, 0x68, 0x74, 0x74, 0x70, 0x2f, 0x31, 0x2e,
    0x31, 0x00, 0x16, 0x00, 0x00, 0x00, 0x17, 0x00, 0x00, 0x00, 0x31, 0x00,
    0x00, 0x00, 0x0d, 0x00, 0x2a, 0x00, 0x28, 0x04, 0x03, 0x05, 0x03, 0x06,
    0x03, 0x08, 0x07, 0x08, 0x08, 0x08, 0x09, 0x08, 0x0a, 0x08, 0x0b, 0x08,
    0x04, 0x08, 0x05, 0x08, 0x06, 0x04, 0x01, 0x05, 0x01, 0x06, 0x01, 0x03,
    0x03, 0x03, 0x01, 0x03, 0x02, 0x04, 0x02, 0x05, 0x02, 0x06, 0x02, 0x00,
    0x2b, 0x00, 0x09, 0x08, 0x03, 0x04, 0x03, 0x03, 0x03, 0x02, 0x03, 0x01,
    0x00, 0x2d, 0x00, 0x02, 0x01, 0x01, 0x00, 0x33, 0x00, 0x26, 0x00, 0x24,
    0x00, 0x1d, 0x00, 0x20, 0x42, 0x97, 0x12, 0xcd, 0x91, 0x63, 0x2a, 0xa2,
    0x85, 0x6e, 0xc2, 0x1d, 0x13, 0x26, 0x58, 0x4f, 0x96, 0x39, 0x28, 0x8f,
    0xb2, 0x0c, 0xf5, 0xc8, 0xef, 0x9b, 0x1e, 0xae, 0xdf, 0xd6, 0x9d, 0x57,
    0x00, 0x15, 0x00, 0xb1, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00,
};
static const uint8_t hello_openssl[] = {
    0x16, 0x03, 0x01, 0x01, 0x4b, 0x01, 0x00, 0x01, 0x47, 0x03, 0x03, 0x74,
    0x80, 0x2d, 0xb5, 0x73, 0x73, 0x17, 0x25, 0x2f, 0x1e, 0xce, 0xf9, 0x1a,
    0x49, 0x27, 0xe4, 0x68, 0x2d, 0x81, 0xbb, 0x1e, 0x6f, 0x93, 0xdb, 0x88,
    0x8d, 0x60, 0xee, 0xb3, 0x2a, 0x89, 0x6f, 0x20, 0xb5, 0xd6, 0xf0, 0x04,
    0xc4, 0xc7, 0xf2, 0x4b, 0x74, 0x01, 0x19, 0x3c, 0x5e, 0x75, 0x05, 0x03,
    0x85, 0xd6, 0x49, 0x72, 0xdd, 0x24, 0x8d, 0x2e, 0xef, 0x7b, 0x6b, 0x73,
    0xc1, 0xce, 0x63, 0xc7, 0x00, 0x3e, 0x13, 0x02, 0x13, 0x03, 0x13, 0x01,
    0xc0, 0x2c, 0xc0, 0x30, 0x00, 0x9f, 0xcc, 0xa9, 0xcc, 0xa8, 0xcc, 0xaa,
    0xc0, 0x2b, 0xc0, 0x2f, 0x00, 0x9e, 0xc0, 0x24, 0xc0, 0x28, 0x00, 0x6b,
    0xc0, 0x23, 0xc0, 0x27, 0x00, 0x67, 0xc0, 0x0a, 0xc0, 0x14, 0x00, 0x39,
    0xc0, 0x09, 0xc0, 0x13, 0x00, 0x33, 0x00, 0x9d, 0x00, 0x9c, 0x00, 0x3d,
    0x00, 0x3c, 0x00, 0x35, 0x00, 0x2f, 0x00, 0xff, 0x01, 0x00, 0x00, 0xc0,
    0x00, 0x00, 0x00, 0x11, 0x00, 0x0f, 0x00, 0x00, 0x0c, 0x65, 0x78, 0x61,
    0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x74, 0x65, 0x73, 0x74, 0x00, 0x0b, 0x00,
    0x04, 0x03, 0x00, 0x01, 0x02, 0x00, 0x0a, 0x00, 0x16, 0x00, 0x14, 0x00,
    0x1d, 0x00, 0x17, 0x00, 0x1e, 0x00, 0x19, 0x00, 0x18, 0x01, 0x00, 0x01,
    0x01, 0x01, 0x02, 0x01, 0x03, 0x01, 0x04, 0x00, 0x23, 0x00, 0x00, 0x00,
    0x10, 0x00, 0x0e, 0x00, 0x0c, 0x02, 0x68, 0x32, 0x08, 0x68, 0x74, 0x74,
    0x70, 0x2f, 0x31, 0x2e, 0x31, 0x00, 0x16, 0x00, 0x00, 0x00, 0x17, 0x00,
    0x00, 0x00, 0x0d, 0x00, 0x2a, 0x00, 0x28, 0x04, 0x03, 0x05, 0x03, 0x06,
    0x03, 0x08, 0x07, 0x08, 0x08, 0x08, 0x09, 0x08, 0x0a, 0x08, 0x0b, 0x08,
    0x04, 0x08, 0x05, 0x08, 0x06, 0x04, 0x01, 0x05, 0x01, 0x06, 0x01, 0x03,
    0x03, 0x03, 0x01, 0x03, 0x02, 0x04, 0x02, 0x05, 0x02, 0x06, 0x02, 0x00,
    0x2b, 0x00, 0x09, 0x08, 0x03, 0x04, 0x03, 0x03, 0x03, 0x02, 0x03, 0x01,
    0x00, 0x2d, 0x00, 0x02, 0x01, 0x01, 0x00, 0x33, 0x00, 0x26, 0x00, 0x24,
    0x00, 0x1d, 0x00, 0x20, 0xa4, 0x47, 0x6e, 0x1c, 0x9c, 0xdb, 0xc9, 0xe8,
    0x26, 0xbf, 0x0e, 0x8e, 0x0e, 0x59, 0x5e, 0xba, 0x44, 0xe6, 0x53, 0xc3,
    0x98, 0x1d, 0x5b, 0xa8, 0xb2, 0xac, 0x1c, 0x3c, 0x90, 0x07, 0x54, 0x31,
};
static const uint8_t hello_openssl12[] = {
    0x16, 0x03, 0x01, 0x00, 0xcc, 0x01, 0x00, 0x00, 0xc8, 0x03, 0x03, 0x4e,
    0x85, 0x69, 0x9a, 0xd1, 0x34, 0xb0, 0xff, 0x44, 0x57, 0x0d, 0xd7, 0x2c,
    0xa3, 0xd3, 0xe5, 0x92, 0xde, 0x7e, 0x47, 0x8a, 0x8f, 0xa1, 0xe6, 0x70,
    0x7d, 0xa3, 0x33, 0xff, 0x11, 0xcf, 0xc0, 0x00, 0x00, 0x38, 0xc0, 0x2c,
    0xc0, 0x30, 0x00, 0x9f, 0xcc, 0xa9, 0xcc, 0xa8, 0xcc, 0xaa, 0xc0, 0x2b,
    0xc0, 0x2f, 0x00, 0x9e, 0xc0, 0x24, 0xc0, 0x28, 0x00, 0x6b, 0xc0, 0x23,
    0xc0, 0x27, 0x00, 0x67, 0xc0, 0x0a, 0xc0, 0x14, 0x00, 0x39, 0xc0, 0x09,
    0xc0, 0x13, 0x00, 0x33, 0x00, 0x9d, 0x00, 0x9c, 0x00, 0x3d, 0x00, 0x3c,
    0x00, 0x35, 0x00, 0x2f, 0x00, 0xff, 0x01, 0x00, 0x00, 0x67, 0x00, 0x00,
    0x00, 0x11, 0x00, 0x0f, 0x00, 0x00, 0x0c, 0x45, 0x78, 0x61, 0x6d, 0x70,
    0x6c, 0x65, 0x2e, 0x54, 0x65, 0x73, 0x74, 0x00, 0x0b, 0x00, 0x04, 0x03,
    0x00, 0x01, 0x02, 0x00, 0x0a, 0x00, 0x0c, 0x00, 0x0a, 0x00, 0x1d, 0x00,
    0x17, 0x00, 0x1e, 0x00, 0x19, 0x00, 0x18, 0x00, 0x23, 0x00, 0x00, 0x00,
    0x16, 0x00, 0x00, 0x00, 0x17, 0x00, 0x00, 0x00, 0x0d, 0x00, 0x2a, 0x00,
    0x28, 0x04, 0x03, 0x05, 0x03, 0x06, 0x03, 0x08, 0x07, 0x08, 0x08, 0x08,
    0x09, 0x08, 0x0a, 0x08, 0x0b, 0x08, 0x04, 0x08, 0x05, 0x08, 0x06, 0x04,
    0x01, 0x05, 0x01, 0x06, 0x01, 0x03, 0x03, 0x03, 0x01, 0x03, 0x02, 0x04,
    0x02, 0x05, 0x02, 0x06, 0x02,
};
/* clang-format on */

/* Big enough for the oversized cases (more than DETECT_MAX_HELLO). */
#define TBUF (80 * 1024)

struct wr {
    uint8_t *p;
    size_t len, cap;
};

static void
wr_bytes(struct wr *w, const void *b, size_t n)
{
    assert_true(n <= w->cap - w->len);
    memcpy(w->p + w->len, b, n);
    w->len += n;
}

static void
wr_u8(struct wr *w, size_t v)
{
    uint8_t b = (uint8_t)v;
    wr_bytes(w, &b, 1);
}

static void
wr_u16(struct wr *w, size_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    wr_bytes(w, b, 2);
}

static void
wr_u24(struct wr *w, size_t v)
{
    uint8_t b[3] = {(uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    wr_bytes(w, b, 3);
}

static void
wr_fill(struct wr *w, uint8_t c, size_t n)
{
    assert_true(n <= w->cap - w->len);
    memset(w->p + w->len, c, n);
    w->len += n;
}

/* Patches a big-endian 16-bit length written earlier at off. */
static void
wr_patch16(struct wr *w, size_t off, size_t v)
{
    assert_true(off + 2 <= w->len);
    w->p[off] = (uint8_t)(v >> 8);
    w->p[off + 1] = (uint8_t)v;
}

/* What hb_build() puts in a ClientHello; zero fields take the defaults. */
struct hb {
    const char *sni;       /* NULL: no server_name extension */
    size_t sni_len;        /* 0: strlen(sni); lets a test embed NUL */
    bool dup_sni;          /* a second server_name extension */
    const char *alpn[24];  /* NULL-terminated */
    uint16_t versions[24]; /* supported_versions; 0-terminated */
    uint16_t legacy;       /* 0: 0x0303 */
    uint16_t rec_version;  /* 0: 0x0301 */
    size_t sid_len;        /* session id length (32 when 0, unless sid_zero) */
    bool sid_zero;
    size_t cs_len;   /* cipher_suites bytes; 0: 6 */
    size_t comp_len; /* compression methods; 0: 1 */
    bool comp_zero;
    bool no_ext;        /* no extensions block at all */
    size_t pad;         /* a padding (21) extension of this size, 0: none */
    const uint8_t *raw; /* appended verbatim to the extensions */
    size_t raw_len;
    size_t n_records; /* split the message into this many records; 0: 1 */
};

/* Where hb_build() put the fields a test wants to break. */
struct hb_out {
    size_t len;         /* record bytes */
    size_t msg_len;     /* handshake message bytes (header included) */
    size_t ext_len_off; /* offset of the extensions length in the message, 0: none */
};

/* Frames a handshake message into n records of near-equal size. */
static size_t
hb_frame(const uint8_t *msg, size_t msg_len, size_t n, uint16_t rec_version, uint8_t *out,
         size_t cap)
{
    struct wr w = {out, 0, cap};
    if (n == 0)
        n = 1;
    size_t chunk = (msg_len + n - 1) / n, off = 0;
    assert_true(chunk <= 16384);
    for (size_t i = 0; i < n && off < msg_len; i++) {
        size_t k = msg_len - off < chunk ? msg_len - off : chunk;
        wr_u8(&w, 22);
        wr_u16(&w, rec_version);
        wr_u16(&w, k);
        wr_bytes(&w, msg + off, k);
        off += k;
    }
    assert_int_equal(off, msg_len);
    return w.len;
}

static void
hb_ext_sni(struct wr *w, const char *name, size_t n)
{
    wr_u16(w, 0);
    wr_u16(w, n + 5);
    wr_u16(w, n + 3);
    wr_u8(w, 0);
    wr_u16(w, n);
    wr_bytes(w, name, n);
}

static struct hb_out
hb_build(const struct hb *o, uint8_t *out, size_t cap)
{
    static uint8_t msg[TBUF];
    struct wr w = {msg, 0, sizeof(msg)};
    struct hb_out r = {0, 0, 0};

    wr_u8(&w, 1);
    wr_u24(&w, 0); /* patched below */
    wr_u16(&w, o->legacy ? o->legacy : 0x0303);
    for (size_t i = 0; i < 32; i++)
        wr_u8(&w, i * 7 + 1);
    size_t sid = o->sid_zero ? 0 : o->sid_len ? o->sid_len : 32;
    wr_u8(&w, sid);
    wr_fill(&w, 0xa5, sid);
    size_t cs = o->cs_len ? o->cs_len : 6;
    wr_u16(&w, cs);
    for (size_t i = 0; i < cs; i++)
        wr_u8(&w, i % 2 ? 0x01 + i : 0x13);
    size_t comp = o->comp_zero ? 0 : o->comp_len ? o->comp_len : 1;
    wr_u8(&w, comp);
    wr_fill(&w, 0, comp);

    if (!o->no_ext) {
        r.ext_len_off = w.len;
        wr_u16(&w, 0);
        size_t ext_start = w.len;
        if (o->sni != NULL) {
            size_t n = o->sni_len ? o->sni_len : strlen(o->sni);
            hb_ext_sni(&w, o->sni, n);
            if (o->dup_sni)
                hb_ext_sni(&w, o->sni, n);
        }
        /* extended_master_secret, empty, as every real client sends */
        wr_u16(&w, 23);
        wr_u16(&w, 0);
        if (o->alpn[0] != NULL) {
            size_t list = 0;
            for (size_t i = 0; o->alpn[i] != NULL; i++)
                list += 1 + strlen(o->alpn[i]);
            wr_u16(&w, 16);
            wr_u16(&w, list + 2);
            wr_u16(&w, list);
            for (size_t i = 0; o->alpn[i] != NULL; i++) {
                wr_u8(&w, strlen(o->alpn[i]));
                wr_bytes(&w, o->alpn[i], strlen(o->alpn[i]));
            }
        }
        if (o->versions[0] != 0) {
            size_t n = 0;
            while (o->versions[n] != 0)
                n++;
            wr_u16(&w, 43);
            wr_u16(&w, 1 + 2 * n);
            wr_u8(&w, 2 * n);
            for (size_t i = 0; i < n; i++)
                wr_u16(&w, o->versions[i]);
        }
        if (o->raw != NULL)
            wr_bytes(&w, o->raw, o->raw_len);
        if (o->pad) {
            wr_u16(&w, 21);
            wr_u16(&w, o->pad);
            wr_fill(&w, 0, o->pad);
        }
        wr_patch16(&w, r.ext_len_off, w.len - ext_start);
    }
    size_t body = w.len - 4;
    msg[1] = (uint8_t)(body >> 16);
    msg[2] = (uint8_t)(body >> 8);
    msg[3] = (uint8_t)body;
    r.msg_len = w.len;
    r.len = hb_frame(msg, w.len, o->n_records, o->rec_version ? o->rec_version : 0x0301, out, cap);
    return r;
}

/* The same ClientHello re-framed: everything but hello_len must match. */
static void
assert_same_hello(const struct detect_hello *a, const struct detect_hello *b)
{
    assert_int_equal(a->record_version, b->record_version);
    assert_int_equal(a->legacy_version, b->legacy_version);
    assert_string_equal(a->sni, b->sni);
    assert_int_equal(a->has_sni, b->has_sni);
    assert_int_equal(a->sni_invalid, b->sni_invalid);
    assert_int_equal(a->n_alpn, b->n_alpn);
    for (size_t i = 0; i < a->n_alpn; i++)
        assert_string_equal(a->alpn[i], b->alpn[i]);
    assert_int_equal(a->n_versions, b->n_versions);
    for (size_t i = 0; i < a->n_versions; i++)
        assert_int_equal(a->versions[i], b->versions[i]);
}

static int
detect_len(const uint8_t *buf, size_t len)
{
    struct detect_hello h;
    return detect_hello(buf, len, &h);
}

/* Every proper prefix asks for more, the whole is CAT_OK. */
static void
assert_prefixes_again(const uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        int rc = detect_len(buf, i);
        if (rc != CAT_AGAIN)
            fail_msg("prefix %zu of %zu: %d, want CAT_AGAIN", i, len, rc);
    }
    assert_int_equal(detect_len(buf, len), CAT_OK);
}

static void
test_real_curl(void **state)
{
    (void)state;
    struct detect_hello h;
    assert_int_equal(detect_hello(hello_curl, sizeof(hello_curl), &h), CAT_OK);
    assert_int_equal(h.record_version, 0x0301);
    assert_int_equal(h.legacy_version, 0x0303);
    assert_true(h.has_sni);
    assert_false(h.sni_invalid);
    assert_string_equal(h.sni, "example.test");
    assert_int_equal(h.n_alpn, 2);
    assert_string_equal(h.alpn[0], "h2");
    assert_string_equal(h.alpn[1], "http/1.1");
    assert_int_equal(h.n_versions, 4);
    assert_int_equal(h.versions[0], 0x0304);
    assert_int_equal(h.versions[3], 0x0301);
    assert_int_equal(h.hello_len, sizeof(hello_curl));
    assert_int_equal(detect_max_version(&h), 0x0304);
    assert_true(detect_offers_alpn(&h, "h2"));
    assert_true(detect_offers_alpn(&h, "http/1.1"));
    assert_false(detect_offers_alpn(&h, "h"));
    assert_false(detect_offers_alpn(&h, "h3"));
}

static void
test_real_openssl(void **state)
{
    (void)state;
    struct detect_hello h;
    assert_int_equal(detect_hello(hello_openssl, sizeof(hello_openssl), &h), CAT_OK);
    assert_int_equal(h.record_version, 0x0301);
    assert_string_equal(h.sni, "example.test");
    assert_int_equal(h.n_alpn, 2);
    assert_string_equal(h.alpn[0], "h2");
    assert_string_equal(h.alpn[1], "http/1.1");
    assert_int_equal(h.n_versions, 4);
    assert_int_equal(h.hello_len, sizeof(hello_openssl));
    assert_int_equal(detect_max_version(&h), 0x0304);

    /* TLS 1.2 only, mixed-case name: lowercased, no versions, no ALPN. */
    assert_int_equal(detect_hello(hello_openssl12, sizeof(hello_openssl12), &h), CAT_OK);
    assert_string_equal(h.sni, "example.test");
    assert_false(h.sni_invalid);
    assert_int_equal(h.n_versions, 0);
    assert_int_equal(h.n_alpn, 0);
    assert_false(detect_offers_alpn(&h, "http/1.1"));
    assert_int_equal(detect_max_version(&h), 0x0303);
    assert_int_equal(h.hello_len, sizeof(hello_openssl12));
}

static const struct {
    const uint8_t *buf;
    size_t len;
} real_hellos[] = {
    {hello_curl, sizeof(hello_curl)},
    {hello_openssl, sizeof(hello_openssl)},
    {hello_openssl12, sizeof(hello_openssl12)},
};

static void
test_real_prefixes(void **state)
{
    (void)state;
    for (size_t i = 0; i < CAT_ARRAY_LEN(real_hellos); i++)
        assert_prefixes_again(real_hellos[i].buf, real_hellos[i].len);
}

/* What follows the hello (a TLS 1.3 compatibility CCS, early data) is not part of it. */
static void
test_real_trailing_records(void **state)
{
    (void)state;
    static uint8_t buf[1024];
    static const uint8_t after[] = {20, 3, 3, 0, 1, 1, 23, 3, 3, 0, 2, 0xde, 0xad};
    memcpy(buf, hello_curl, sizeof(hello_curl));
    memcpy(buf + sizeof(hello_curl), after, sizeof(after));
    struct detect_hello h;
    for (size_t n = sizeof(hello_curl); n <= sizeof(hello_curl) + sizeof(after); n++) {
        assert_int_equal(detect_hello(buf, n, &h), CAT_OK);
        assert_int_equal(h.hello_len, sizeof(hello_curl));
    }
}

/* The real hellos re-framed into 2, 3 and 7 records, and with the handshake header split. */
static void
test_real_split_records(void **state)
{
    (void)state;
    static uint8_t buf[4096];
    for (size_t i = 0; i < CAT_ARRAY_LEN(real_hellos); i++) {
        const uint8_t *rec = real_hellos[i].buf;
        size_t rec_len = real_hellos[i].len;
        struct detect_hello one, many;
        assert_int_equal(detect_hello(rec, rec_len, &one), CAT_OK);
        const size_t splits[] = {2, 3, 7};
        for (size_t s = 0; s < CAT_ARRAY_LEN(splits); s++) {
            size_t n = hb_frame(rec + 5, rec_len - 5, splits[s], 0x0301, buf, sizeof(buf));
            assert_int_equal(n, rec_len + 5 * (splits[s] - 1));
            assert_int_equal(detect_hello(buf, n, &many), CAT_OK);
            assert_same_hello(&one, &many);
            assert_int_equal(many.hello_len, n);
            assert_prefixes_again(buf, n);
        }
        /* Handshake header split 1+3 over two one-off records, then the rest. */
        struct wr w = {buf, 0, sizeof(buf)};
        const uint8_t *msg = rec + 5;
        size_t msg_len = rec_len - 5;
        const size_t cuts[] = {0, 1, 2, 4, msg_len};
        for (size_t c = 0; c + 1 < CAT_ARRAY_LEN(cuts); c++) {
            wr_u8(&w, 22);
            wr_u16(&w, 0x0301);
            wr_u16(&w, cuts[c + 1] - cuts[c]);
            wr_bytes(&w, msg + cuts[c], cuts[c + 1] - cuts[c]);
        }
        assert_int_equal(detect_hello(buf, w.len, &many), CAT_OK);
        assert_same_hello(&one, &many);
        assert_int_equal(many.hello_len, w.len);
        assert_prefixes_again(buf, w.len);
    }
}

static void
test_built(void **state)
{
    (void)state;
    static uint8_t buf[TBUF];
    struct hb o = {
        .sni = "WWW.Example.ORG",
        .alpn = {"h2", "http/1.1", "acme-tls/1", NULL},
        .versions = {0x7a7a, 0x0304, 0x0303, 0},
        .rec_version = 0x0303,
    };
    struct hb_out b = hb_build(&o, buf, sizeof(buf));
    struct detect_hello one, many;
    assert_int_equal(detect_hello(buf, b.len, &one), CAT_OK);
    assert_int_equal(one.record_version, 0x0303);
    assert_int_equal(one.legacy_version, 0x0303);
    assert_string_equal(one.sni, "www.example.org");
    assert_int_equal(one.n_alpn, 3);
    assert_string_equal(one.alpn[2], "acme-tls/1");
    assert_int_equal(one.n_versions, 3);
    assert_int_equal(one.versions[0], 0x7a7a);
    assert_int_equal(detect_max_version(&one), 0x0304);
    assert_int_equal(one.hello_len, b.len);
    assert_prefixes_again(buf, b.len);

    for (size_t n = 2; n <= 3; n++) {
        o.n_records = n;
        struct hb_out bn = hb_build(&o, buf, sizeof(buf));
        assert_int_equal(bn.len, b.len + 5 * (n - 1));
        assert_int_equal(detect_hello(buf, bn.len, &many), CAT_OK);
        assert_same_hello(&one, &many);
        assert_int_equal(many.hello_len, bn.len);
        assert_prefixes_again(buf, bn.len);
    }

    /* No extensions at all (RFC 5246 allows it), legacy 1.0. */
    struct hb bare = {.no_ext = true, .legacy = 0x0301};
    b = hb_build(&bare, buf, sizeof(buf));
    assert_int_equal(detect_hello(buf, b.len, &one), CAT_OK);
    assert_false(one.has_sni);
    assert_string_equal(one.sni, "");
    assert_int_equal(one.n_alpn, 0);
    assert_int_equal(detect_max_version(&one), 0x0301);

    /* Smallest legal: empty session id, one suite, one method, no extensions. */
    struct hb tiny = {.no_ext = true, .sid_zero = true, .cs_len = 2};
    b = hb_build(&tiny, buf, sizeof(buf));
    assert_int_equal(b.msg_len, 4 + 41);
    assert_int_equal(detect_hello(buf, b.len, &one), CAT_OK);
}

static void
test_declined_early(void **state)
{
    (void)state;
    static const char *plain[] = {
        "GET / HTTP/1.1\r\nHost: example.test\r\n\r\n",
        "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n",
        "CONNECT example.test:443 HTTP/1.1\r\n\r\n",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "220 smtp.example.test ESMTP\r\n",
    };
    for (size_t i = 0; i < CAT_ARRAY_LEN(plain); i++) {
        const uint8_t *p = (const uint8_t *)plain[i];
        size_t n = strlen(plain[i]);
        /* Decided on the first byte and stays decided. */
        for (size_t k = 1; k <= n; k++)
            assert_int_equal(detect_len(p, k), CAT_DECLINED);
    }
    assert_int_equal(detect_len(NULL, 0), CAT_AGAIN);

    static const struct {
        uint8_t b[6];
        size_t len;
        int want;
    } cases[] = {
        {{22}, 1, CAT_AGAIN},
        {{22, 3}, 2, CAT_AGAIN},
        {{22, 3, 1, 0}, 4, CAT_AGAIN},
        {{22, 3, 1, 0, 200}, 5, CAT_AGAIN},
        {{22, 3, 1, 0, 200, 1}, 6, CAT_AGAIN},
        {{23, 3, 3}, 3, CAT_DECLINED},             /* application data */
        {{21, 3, 3, 0, 2, 2}, 6, CAT_DECLINED},    /* alert */
        {{22, 2}, 2, CAT_DECLINED},                /* major 2 */
        {{22, 3, 5}, 3, CAT_DECLINED},             /* no TLS 1.4 record version */
        {{22, 3, 1, 0, 0}, 5, CAT_DECLINED},       /* empty record */
        {{22, 3, 1, 0x40, 0x01}, 5, CAT_DECLINED}, /* 16385 > 2^14 */
        {{22, 3, 1, 0, 80, 2}, 6, CAT_DECLINED},   /* ServerHello, not a client */
        {{0x80, 0x2e}, 2, CAT_AGAIN},
        {{0x80, 0x2e, 0x05}, 3, CAT_DECLINED},
        {{0x80, 0x2e, 0x01, 0x00, 0x02}, 5, CAT_DECLINED}, /* pure SSLv2 */
        {{0x80, 0x2e, 0x01, 0x03, 0x01}, 5, CAT_ERR},      /* SSLv2-compatible: refused */
        {{22, 3, 1, 0, 44, 1}, 6, CAT_AGAIN},
    };
    for (size_t i = 0; i < CAT_ARRAY_LEN(cases); i++) {
        int rc = detect_len(cases[i].b, cases[i].len);
        if (rc != cases[i].want)
            fail_msg("case %zu: %d, want %d", i, rc, cases[i].want);
    }
}

/* Deterministic xorshift, so a failure is reproducible. */
static uint32_t
test_rand(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void
test_garbage(void **state)
{
    (void)state;
    static uint8_t buf[2048];
    uint32_t seed = 0x2545f491;
    size_t declined = 0;
    for (size_t i = 0; i < 4000; i++) {
        size_t n = 1 + test_rand(&seed) % sizeof(buf);
        for (size_t k = 0; k < n; k++)
            buf[k] = (uint8_t)test_rand(&seed);
        /* Force a TLS-looking start on a quarter of them to reach the deeper checks. */
        if (i % 4 == 0 && n >= 6) {
            memcpy(buf, (const uint8_t[]){22, 3, 1}, 3);
            buf[3] = (uint8_t)((n - 5) >> 8);
            buf[4] = (uint8_t)(n - 5);
            buf[5] = 1;
        }
        int rc = detect_len(buf, n);
        assert_int_not_equal(rc, CAT_OK);
        if (buf[0] != 22 && !(buf[0] & 0x80)) {
            assert_int_equal(rc, CAT_DECLINED);
            declined++;
        }
    }
    assert_true(declined > 1200);
}

static void
expect_rc(const struct hb *o, int want)
{
    static uint8_t buf[TBUF];
    struct hb_out b = hb_build(o, buf, sizeof(buf));
    struct detect_hello h;
    int rc = detect_hello(buf, b.len, &h);
    assert_int_equal(rc, want);
    if (rc != CAT_OK) {
        /* Nothing half-parsed is left behind. */
        assert_false(h.has_sni);
        assert_int_equal(h.n_alpn, 0);
        assert_int_equal(h.hello_len, 0);
    }
}

static void
test_duplicates(void **state)
{
    (void)state;
    expect_rc(&(struct hb){.sni = "example.test"}, CAT_OK);
    expect_rc(&(struct hb){.sni = "example.test", .dup_sni = true}, CAT_ERR);
    /* Any other type twice (extended_master_secret is always there). */
    static const uint8_t ems[] = {0, 23, 0, 0};
    expect_rc(&(struct hb){.raw = ems, .raw_len = sizeof(ems)}, CAT_ERR);
    static const uint8_t alpn2[] = {0, 16, 0, 5, 0, 3, 2, 'h', '2'};
    expect_rc(&(struct hb){.alpn = {"h2", NULL}, .raw = alpn2, .raw_len = sizeof(alpn2)}, CAT_ERR);
    /* Two host_name entries in one list. */
    static const uint8_t two[] = {0, 0, 0, 12, 0, 10, 0, 0, 2, 'a', 'b', 0, 0, 2, 'c', 'd'};
    expect_rc(&(struct hb){.raw = two, .raw_len = sizeof(two)}, CAT_ERR);
    /* An unknown name type next to host_name is skipped (RFC 6066 3). */
    static const uint8_t other[] = {0, 0, 0, 12, 0, 10, 7, 0, 2, 'a', 'b', 0, 0, 2, 'c', 'd'};
    static uint8_t buf[1024];
    struct hb_out b =
        hb_build(&(struct hb){.raw = other, .raw_len = sizeof(other)}, buf, sizeof(buf));
    struct detect_hello h;
    assert_int_equal(detect_hello(buf, b.len, &h), CAT_OK);
    assert_string_equal(h.sni, "cd");
}

static void
test_bad_lengths(void **state)
{
    (void)state;
    static uint8_t buf[TBUF];
    static uint8_t msg[TBUF];
    static uint8_t orig[TBUF];
    struct hb o = {.sni = "example.test", .alpn = {"h2", NULL}, .versions = {0x0304, 0}};
    struct hb_out b = hb_build(&o, buf, sizeof(buf));
    assert_int_equal(detect_len(buf, b.len), CAT_OK);
    memcpy(orig, buf + 5, b.msg_len);

    /* Extensions length one off either way, re-framed so only that is wrong. */
    for (int d = -1; d <= 1; d += 2) {
        memcpy(msg, orig, b.msg_len);
        size_t el = ((size_t)msg[b.ext_len_off] << 8 | msg[b.ext_len_off + 1]) + (size_t)d;
        msg[b.ext_len_off] = (uint8_t)(el >> 8);
        msg[b.ext_len_off + 1] = (uint8_t)el;
        size_t n = hb_frame(msg, b.msg_len, 1, 0x0301, buf, sizeof(buf));
        assert_int_equal(detect_len(buf, n), CAT_ERR);
    }

    /* Each raw extension is well framed on the outside, broken inside. */
    static const struct {
        uint8_t b[16];
        size_t len;
    } bad[] = {
        {{0, 0, 0, 7, 0, 6, 0, 0, 2, 'a', 'b'}, 11}, /* SNI list longer than the ext */
        {{0, 0, 0, 7, 0, 4, 0, 0, 2, 'a', 'b'}, 11}, /* SNI list shorter */
        {{0, 0, 0, 7, 0, 5, 0, 0, 3, 'a', 'b'}, 11}, /* host name overruns */
        {{0, 0, 0, 5, 0, 3, 0, 0, 0}, 9},            /* empty host name */
        {{0, 0, 0, 2, 0, 0}, 6},                     /* empty list */
        {{0, 0, 0, 1, 0}, 5},                        /* list length cut short */
        {{0, 16, 0, 5, 0, 3, 3, 'h', '2'}, 9},       /* ALPN name overruns */
        {{0, 16, 0, 5, 0, 3, 0, 'h', '2'}, 9},       /* empty ALPN name */
        {{0, 16, 0, 2, 0, 0}, 6},                    /* empty ALPN list */
        {{0, 16, 0, 5, 0, 4, 2, 'h', '2'}, 9},       /* ALPN list longer */
        {{0, 43, 0, 3, 3, 3, 4}, 7},                 /* odd versions */
        {{0, 43, 0, 3, 4, 3, 4}, 7},                 /* versions overrun */
        {{0, 43, 0, 4, 2, 3, 4, 0}, 8},              /* trailing byte after versions */
        {{0, 43, 0, 1, 0}, 5},                       /* no versions */
        {{0x12, 0x34, 0, 9, 1, 2}, 6},               /* extension overruns the block */
        {{0x12, 0x34, 0}, 3},                        /* extension header cut */
    };
    for (size_t i = 0; i < CAT_ARRAY_LEN(bad); i++) {
        struct hb r = {.raw = bad[i].b, .raw_len = bad[i].len};
        b = hb_build(&r, buf, sizeof(buf));
        int rc = detect_len(buf, b.len);
        if (rc != CAT_ERR)
            fail_msg("bad extension %zu: %d, want CAT_ERR", i, rc);
    }

    expect_rc(&(struct hb){.sid_len = 33}, CAT_ERR);
    expect_rc(&(struct hb){.cs_len = 5}, CAT_ERR);
    expect_rc(&(struct hb){.comp_zero = true}, CAT_ERR);
    expect_rc(&(struct hb){.legacy = 0x0200}, CAT_ERR);
    expect_rc(&(struct hb){.legacy = 0x0300}, CAT_OK);

    /* Handshake length says less than the record holds: trailing bytes in the record. */
    b = hb_build(&o, buf, sizeof(buf));
    memcpy(msg, buf + 5, b.msg_len);
    msg[b.msg_len] = 0;
    size_t n = hb_frame(msg, b.msg_len + 1, 1, 0x0301, buf, sizeof(buf));
    assert_int_equal(detect_len(buf, n), CAT_ERR);
    /* Handshake length one short: the parse runs out inside the extensions. */
    msg[3]--;
    n = hb_frame(msg, b.msg_len - 1, 1, 0x0301, buf, sizeof(buf));
    assert_int_equal(detect_len(buf, n), CAT_ERR);

    /* Body below the 41-byte minimum is refused from its header alone. */
    static const uint8_t small[] = {22, 3, 1, 0, 44, 1, 0, 0, 40};
    assert_int_equal(detect_len(small, sizeof(small)), CAT_ERR);
}

static void
test_interleaved_record(void **state)
{
    (void)state;
    static uint8_t buf[4096];
    size_t n = hb_frame(hello_openssl + 5, sizeof(hello_openssl) - 5, 2, 0x0301, buf, sizeof(buf));
    size_t second = 5 + (sizeof(hello_openssl) - 5 + 1) / 2;
    const uint8_t bad_types[] = {20, 21, 23, 24, 0x80};
    for (size_t i = 0; i < CAT_ARRAY_LEN(bad_types); i++) {
        buf[second] = bad_types[i];
        assert_int_equal(detect_len(buf, n), CAT_ERR);
        /* Known wrong from its first byte. */
        assert_int_equal(detect_len(buf, second + 1), CAT_ERR);
    }
    buf[second] = 22;
    assert_int_equal(detect_len(buf, n), CAT_OK);
    buf[second + 1] = 2;
    assert_int_equal(detect_len(buf, second + 2), CAT_ERR);
    buf[second + 1] = 3;
    /* An empty or over-long continuation record. */
    uint8_t l3 = buf[second + 3], l4 = buf[second + 4];
    buf[second + 3] = 0;
    buf[second + 4] = 0;
    assert_int_equal(detect_len(buf, second + 5), CAT_ERR);
    buf[second + 3] = 0x40;
    buf[second + 4] = 0x01;
    assert_int_equal(detect_len(buf, second + 5), CAT_ERR);
    buf[second + 3] = l3;
    buf[second + 4] = l4;
    assert_int_equal(detect_len(buf, n), CAT_OK);
}

static void
test_oversized(void **state)
{
    (void)state;
    static uint8_t buf[TBUF];
    /* Big but fits: ~20 KiB in 2 records. */
    struct hb o = {.sni = "big.example", .pad = 20000, .n_records = 2};
    struct hb_out b = hb_build(&o, buf, sizeof(buf));
    struct detect_hello h;
    assert_int_equal(detect_hello(buf, b.len, &h), CAT_OK);
    assert_string_equal(h.sni, "big.example");
    assert_int_equal(h.hello_len, b.len);

    /* Message larger than DETECT_MAX_HELLO: refused on its first 9 bytes. */
    o.pad = DETECT_MAX_HELLO;
    o.n_records = 3;
    b = hb_build(&o, buf, sizeof(buf));
    assert_true(b.len > DETECT_MAX_HELLO);
    assert_int_equal(detect_len(buf, 9), CAT_ERR);
    assert_int_equal(detect_len(buf, b.len), CAT_ERR);
    assert_int_equal(detect_len(buf, 8), CAT_AGAIN);

    /* Message fits, but its many small records do not. */
    o.pad = 30000;
    o.n_records = 600;
    b = hb_build(&o, buf, sizeof(buf));
    assert_true(b.msg_len + 5 < DETECT_MAX_HELLO && b.len > DETECT_MAX_HELLO);
    assert_int_equal(detect_len(buf, b.len), CAT_ERR);
    /* Decided at the record that crosses the limit, not later. */
    assert_int_equal(detect_len(buf, DETECT_MAX_HELLO), CAT_ERR);
    /*
     * One-byte records up to 2 bytes short of the limit, where no record can
     * follow: refused there, so a full DETECT_MAX_HELLO buffer never waits.
     */
    memset(buf, 0, DETECT_MAX_HELLO);
    const uint8_t hs_head[] = {1, 0, 0x7d, 0x00}; /* 32000-byte body */
    size_t at = 0;
    for (size_t i = 0; at + 6 <= DETECT_MAX_HELLO; i++) {
        const uint8_t rec[] = {22, 3, 1, 0, 1, i < 4 ? hs_head[i] : 0};
        memcpy(buf + at, rec, sizeof(rec));
        at += sizeof(rec);
    }
    assert_int_equal(at, DETECT_MAX_HELLO - 2);
    assert_int_equal(detect_len(buf, at - 1), CAT_AGAIN);
    assert_int_equal(detect_len(buf, at), CAT_ERR);
    assert_int_equal(detect_len(buf, DETECT_MAX_HELLO), CAT_ERR);
    assert_int_equal(detect_len(buf, DETECT_MAX_HELLO + 100), CAT_ERR);

    o.n_records = 300; /* 30 KiB + 1.5 KiB of headers: fits */
    b = hb_build(&o, buf, sizeof(buf));
    assert_true(b.len <= DETECT_MAX_HELLO);
    assert_int_equal(detect_len(buf, b.len), CAT_OK);
}

static void
sni_case(const char *name, size_t n, bool valid)
{
    static uint8_t buf[2048];
    struct hb o = {.sni = name, .sni_len = n};
    struct hb_out b = hb_build(&o, buf, sizeof(buf));
    struct detect_hello h;
    assert_int_equal(detect_hello(buf, b.len, &h), CAT_OK);
    assert_true(h.has_sni);
    if (h.sni_invalid == valid)
        fail_msg("SNI \"%.*s\": sni_invalid %d", (int)n, name, h.sni_invalid);
    if (!valid)
        assert_string_equal(h.sni, "");
    else
        assert_int_equal(strlen(h.sni), n);
}

static void
test_sni_validation(void **state)
{
    (void)state;
    char l63[64], l64[65], long253[254], long254[255];
    memset(l63, 'a', 63);
    l63[63] = '\0';
    memset(l64, 'a', 64);
    l64[64] = '\0';
    /* 63 + '.' + 63 + '.' + 63 + '.' + 61 = 253 */
    memset(long253, 'b', 253);
    long253[63] = long253[127] = long253[191] = '.';
    long253[253] = '\0';
    memcpy(long254, long253, 253);
    long254[253] = 'c';
    long254[254] = '\0';

    /* clang-format off */
    static const char *ok[] = {
        "example.test", "a", "a-b_c.example", "1.2.3.com", "xn--bcher-kva.example",
        "0x7f.example", "my-host.0xzz", "123abc",
    };
    /* clang-format on */
    for (size_t i = 0; i < CAT_ARRAY_LEN(ok); i++)
        sni_case(ok[i], strlen(ok[i]), true);
    sni_case(l63, 63, true);
    sni_case(long253, 253, true);

    /* clang-format off */
    static const char *bad[] = {
        "127.0.0.1", "127.1", "1234", "10.0.0.0x1", "0x7f.1", "a.0X7F", "::1", "[::1]",
        "exa mple.test", "example.test.", ".example.test", "a..b", "example.test:443",
        "ex\xc3\xa4mple.test", "*.example.test", "example.test/x",
    };
    /* clang-format on */
    for (size_t i = 0; i < CAT_ARRAY_LEN(bad); i++)
        sni_case(bad[i], strlen(bad[i]), false);
    sni_case(l64, 64, false);
    sni_case(long254, 254, false);
    sni_case("good.test\0evil.test", 19, false);

    /* Longer than the buffer: still parsed, marked invalid, not stored. */
    static char huge[1000];
    memset(huge, 'x', sizeof(huge));
    sni_case(huge, sizeof(huge), false);
}

static void
test_alpn_and_versions(void **state)
{
    (void)state;
    static uint8_t buf[8192];
    static char names[20][8];
    struct hb o = {.versions = {0x0a0a, 0x7f1c, 0xfb1a, 0x0304, 0x0303, 0}};
    for (size_t i = 0; i < 20; i++) {
        snprintf(names[i], sizeof(names[i]), "p%zu", i);
        o.alpn[i] = names[i];
    }
    struct hb_out b = hb_build(&o, buf, sizeof(buf));
    struct detect_hello h;
    assert_int_equal(detect_hello(buf, b.len, &h), CAT_OK);
    assert_int_equal(h.n_alpn, DETECT_MAX_ALPN);
    assert_string_equal(h.alpn[15], "p15");
    assert_true(detect_offers_alpn(&h, "p0"));
    assert_false(detect_offers_alpn(&h, "p16"));
    /* Drafts and GREASE do not outrank TLS 1.3. */
    assert_int_equal(detect_max_version(&h), 0x0304);
    assert_int_equal(h.n_versions, 5);

    /* Too long to store (64) and NUL-bearing names are skipped, the rest kept in order. */
    char n63[64], n64[65];
    memset(n63, 'q', 63);
    n63[63] = '\0';
    memset(n64, 'r', 64);
    n64[64] = '\0';
    static const uint8_t nul_alpn[] = {0, 16, 0, 9, 0, 7, 2, 'h', '2', 3, 'x', 0, 'y'};
    struct hb o2 = {.alpn = {n64, n63, NULL}, .versions = {0x0303, 0}};
    b = hb_build(&o2, buf, sizeof(buf));
    assert_int_equal(detect_hello(buf, b.len, &h), CAT_OK);
    assert_int_equal(h.n_alpn, 1);
    assert_string_equal(h.alpn[0], n63);
    assert_int_equal(detect_max_version(&h), 0x0303);
    struct hb o3 = {.raw = nul_alpn, .raw_len = sizeof(nul_alpn)};
    b = hb_build(&o3, buf, sizeof(buf));
    assert_int_equal(detect_hello(buf, b.len, &h), CAT_OK);
    assert_int_equal(h.n_alpn, 1);
    assert_false(detect_offers_alpn(&h, "x"));

    /* More versions than fit: the first DETECT_MAX_VERSIONS kept. */
    struct hb o4 = {.legacy = 0x0303};
    for (size_t i = 0; i < 20; i++)
        o4.versions[i] = (uint16_t)(0x0301 + i);
    b = hb_build(&o4, buf, sizeof(buf));
    assert_int_equal(detect_hello(buf, b.len, &h), CAT_OK);
    assert_int_equal(h.n_versions, DETECT_MAX_VERSIONS);
    assert_int_equal(h.versions[15], 0x0301 + 15);
    assert_int_equal(detect_max_version(&h), 0x0301 + 15);

    /* Only GREASE: falls back to legacy_version. */
    struct hb o5 = {.versions = {0x1a1a, 0}};
    b = hb_build(&o5, buf, sizeof(buf));
    assert_int_equal(detect_hello(buf, b.len, &h), CAT_OK);
    assert_int_equal(detect_max_version(&h), 0x0303);
}

int
main(void)
{
    /* clang-format off */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_curl),
        cmocka_unit_test(test_real_openssl),
        cmocka_unit_test(test_real_prefixes),
        cmocka_unit_test(test_real_trailing_records),
        cmocka_unit_test(test_real_split_records),
        cmocka_unit_test(test_built),
        cmocka_unit_test(test_declined_early),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_bad_lengths),
        cmocka_unit_test(test_interleaved_record),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_sni_validation),
        cmocka_unit_test(test_alpn_and_versions),
    };
    /* clang-format on */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
