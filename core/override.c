/*
 * Override tokens: 8 bytes of expiry (big-endian seconds) followed by the
 * first 16 bytes of HMAC-SHA256(key, expiry | errors | host | client), in
 * base64url. The key is random per process: tokens die with a restart,
 * which only costs the user one more click.
 */
#include "core/override.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hmac.h>
#include <wolfssl/wolfcrypt/random.h>

#define OVR_MAC_LEN 16

static uint8_t ovr_key[32];
static bool ovr_ready;

int
ovr_init(void)
{
    WC_RNG rng;
    if (wc_InitRng(&rng) != 0)
        return CAT_ERR;
    int rc = wc_RNG_GenerateBlock(&rng, ovr_key, sizeof(ovr_key));
    wc_FreeRng(&rng);
    ovr_ready = rc == 0;
    return ovr_ready ? CAT_OK : CAT_ERR;
}

static int
ovr_mac(uint8_t out[OVR_MAC_LEN], const uint8_t exp[8], const char *host, unsigned errors,
        const char *client_ip)
{
    Hmac h;
    uint8_t full[WC_SHA256_DIGEST_SIZE];
    uint8_t err4[4] = {(uint8_t)(errors >> 24), (uint8_t)(errors >> 16), (uint8_t)(errors >> 8),
                       (uint8_t)errors};
    /* Lengths are bound in by the separators: a host cannot contain NUL. */
    static const uint8_t sep = 0;
    if (!ovr_ready || wc_HmacInit(&h, NULL, INVALID_DEVID) != 0)
        return CAT_ERR;
    int rc = wc_HmacSetKey(&h, WC_SHA256, ovr_key, sizeof(ovr_key));
    rc |= wc_HmacUpdate(&h, exp, 8);
    rc |= wc_HmacUpdate(&h, err4, sizeof(err4));
    rc |= wc_HmacUpdate(&h, (const uint8_t *)host, (word32)strlen(host));
    rc |= wc_HmacUpdate(&h, &sep, 1);
    rc |= wc_HmacUpdate(&h, (const uint8_t *)client_ip, (word32)strlen(client_ip));
    rc |= wc_HmacFinal(&h, full);
    wc_HmacFree(&h);
    memcpy(out, full, OVR_MAC_LEN);
    return rc == 0 ? CAT_OK : CAT_ERR;
}

static const char ovr_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t
ovr_b64_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = ovr_b64[(v >> 18) & 63];
        out[o++] = ovr_b64[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = ovr_b64[(v >> 6) & 63];
        if (i + 2 < n)
            out[o++] = ovr_b64[v & 63];
    }
    out[o] = '\0';
    return o;
}

/* Decodes exactly `want` bytes; false on any other length or character. */
static bool
ovr_b64_decode(const char *in, size_t len, uint8_t *out, size_t want)
{
    size_t bits = 0, o = 0;
    uint32_t acc = 0;
    for (size_t i = 0; i < len; i++) {
        const char *p = memchr(ovr_b64, in[i], 64);
        if (p == NULL || in[i] == '\0')
            return false;
        acc = (acc << 6) | (uint32_t)(p - ovr_b64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o == want)
                return false;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    return o == want && (acc & ((1u << bits) - 1)) == 0;
}

int
ovr_make(char out[OVR_TOKEN_MAX], const char *host, unsigned errors, const char *client_ip,
         time_t expires)
{
    uint8_t raw[8 + OVR_MAC_LEN];
    uint64_t e = (uint64_t)expires;
    for (int i = 0; i < 8; i++)
        raw[i] = (uint8_t)(e >> (56 - 8 * i));
    if (ovr_mac(raw + 8, raw, host, errors, client_ip) != CAT_OK)
        return CAT_ERR;
    ovr_b64_encode(raw, sizeof(raw), out);
    return CAT_OK;
}

bool
ovr_check(const char *token, size_t len, const char *host, unsigned errors,
          const char *client_ip, time_t now)
{
    uint8_t raw[8 + OVR_MAC_LEN], mac[OVR_MAC_LEN];
    if (len >= OVR_TOKEN_MAX || !ovr_b64_decode(token, len, raw, sizeof(raw)))
        return false;
    uint64_t e = 0;
    for (int i = 0; i < 8; i++)
        e = (e << 8) | raw[i];
    if ((time_t)e < now || ovr_mac(mac, raw, host, errors, client_ip) != CAT_OK)
        return false;
    /* Constant time: the comparison must not tell how much of a guess was right. */
    uint8_t diff = 0;
    for (size_t i = 0; i < OVR_MAC_LEN; i++)
        diff |= (uint8_t)(mac[i] ^ raw[8 + i]);
    return diff == 0;
}

const char *
ovr_cookie_find(const char *cookie, size_t len, size_t *vlen)
{
    const size_t nl = sizeof(OVR_COOKIE) - 1;
    size_t i = 0;
    while (i < len) {
        while (i < len && (cookie[i] == ' ' || cookie[i] == ';'))
            i++;
        size_t start = i;
        while (i < len && cookie[i] != ';')
            i++;
        if (i - start > nl + 1 && memcmp(cookie + start, OVR_COOKIE, nl) == 0 &&
            cookie[start + nl] == '=') {
            *vlen = i - start - nl - 1;
            return cookie + start + nl + 1;
        }
    }
    return NULL;
}
