/*
 * Fuzz target for detect_hello(): the input is the first bytes of a client
 * connection. Besides memory safety it checks the contract the connection
 * state machine leans on: a CAT_OK result stays inside the input and its
 * strings are terminated and clean, and results are monotone over prefixes
 * (a prefix answers CAT_AGAIN or what the whole answers, identically on OK).
 */
#include "core/detect.h"
#include "test/fuzz/fuzz.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* abort() rather than assert(): the check must survive NDEBUG and the plain replay build. */
/* Bounds the prefix replays: at most about this many per input. */
#define FUZZ_PREFIXES 96

static bool
fuzz_str_ok(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

static void
fuzz_check_ok(const uint8_t *data, size_t size, const struct detect_hello *h)
{
    /* 5 record + 4 handshake + 41 minimal body */
    FUZZ_CHECK(h->hello_len >= 50 && h->hello_len <= size && h->hello_len <= DETECT_MAX_HELLO);
    FUZZ_CHECK(h->record_version >> 8 == 3 && h->legacy_version >> 8 == 3);
    FUZZ_CHECK(fuzz_str_ok(h->sni, sizeof(h->sni)));
    size_t n = strlen(h->sni);
    FUZZ_CHECK(n <= 253);
    FUZZ_CHECK(n == 0 || (h->has_sni && !h->sni_invalid));
    FUZZ_CHECK(!h->sni_invalid || h->has_sni);
    FUZZ_CHECK(!h->has_sni || h->sni_invalid || n > 0);
    for (size_t i = 0; i < n; i++) {
        char c = h->sni[i];
        FUZZ_CHECK((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                   c == '.');
    }
    FUZZ_CHECK(h->n_alpn <= DETECT_MAX_ALPN);
    for (size_t i = 0; i < h->n_alpn; i++) {
        FUZZ_CHECK(fuzz_str_ok(h->alpn[i], sizeof(h->alpn[i])));
        FUZZ_CHECK(h->alpn[i][0] != '\0');
        FUZZ_CHECK(detect_offers_alpn(h, h->alpn[i]));
    }
    FUZZ_CHECK(h->n_versions <= DETECT_MAX_VERSIONS);
    uint16_t max = detect_max_version(h);
    FUZZ_CHECK(max >> 8 == 3);
    for (size_t i = 0; i < h->n_versions; i++)
        FUZZ_CHECK(h->versions[i] >> 8 != 3 || h->versions[i] <= max);
    /* The hello's own bytes are enough, and one fewer is not. */
    struct detect_hello again;
    FUZZ_CHECK(detect_hello(data, h->hello_len, &again) == CAT_OK);
    FUZZ_CHECK(memcmp(&again, h, sizeof(again)) == 0);
    FUZZ_CHECK(detect_hello(data, h->hello_len - 1, &again) == CAT_AGAIN);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct detect_hello full, part;
    int rc = detect_hello(data, size, &full);
    FUZZ_CHECK(rc == CAT_OK || rc == CAT_ERR || rc == CAT_AGAIN || rc == CAT_DECLINED);
    if (rc == CAT_OK)
        fuzz_check_ok(data, size, &full);
    /* A caller holding DETECT_MAX_HELLO bytes always gets an answer. */
    FUZZ_CHECK(size < DETECT_MAX_HELLO || rc != CAT_AGAIN);

    size_t step = size / FUZZ_PREFIXES > 7 ? size / FUZZ_PREFIXES : 7;
    for (size_t n = 0; n < size; n += step) {
        int prc = detect_hello(data, n, &part);
        FUZZ_CHECK(prc == CAT_AGAIN || prc == rc);
        /* Both calls zero the struct first, so padding compares equal too. */
        if (prc == CAT_OK)
            FUZZ_CHECK(memcmp(&part, &full, sizeof(part)) == 0);
    }
    /* The few bytes that decide "is it TLS" one by one. */
    for (size_t n = 0; n < size && n < 12; n++) {
        int prc = detect_hello(data, n, &part);
        FUZZ_CHECK(prc == CAT_AGAIN || prc == rc);
    }
    return 0;
}
