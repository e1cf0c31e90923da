/*
 * Fuzz target for the stapled-OCSP scanner (core/staple.c): the input is what
 * a server sends after our ClientHello. Besides memory safety it checks the
 * contract tls_recv_cb leans on: a decided state never changes, a response is
 * there exactly when FOUND and within STAPLE_MAX_RESPONSE, and the result does
 * not depend on how the bytes were split (whole, byte by byte, and in chunks
 * whose sizes come from the input itself).
 */
#include "core/staple.h"
#include "test/fuzz/fuzz.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* abort() rather than assert(): the check must survive NDEBUG and the plain replay build. */
/* Feeds data in pieces of at most `step` bytes (0: sizes taken from the data). */
static void
fuzz_feed(struct staple *s, const uint8_t *data, size_t size, size_t step)
{
    size_t at = 0, i = 0;
    while (at < size) {
        size_t k = step ? step : (size_t)data[i++ % size] % 64 + 1;
        k = k < size - at ? k : size - at;
        enum staple_state before = s->state;
        enum staple_state after = staple_feed(s, data + at, k);
        FUZZ_CHECK(before == STAPLE_SCANNING || after == before);
        FUZZ_CHECK(after == s->state);
        at += k;
    }
}

static void
fuzz_check_result(const struct staple *s)
{
    size_t len;
    const uint8_t *r = staple_response(s, &len);
    FUZZ_CHECK((r != NULL) == (s->state == STAPLE_FOUND));
    if (r != NULL)
        FUZZ_CHECK(len >= 1 && len <= STAPLE_MAX_RESPONSE && len == s->der_cap);
    else
        FUZZ_CHECK(len == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct staple whole, bytes, chunks;
    staple_init(&whole);
    staple_init(&bytes);
    staple_init(&chunks);
    fuzz_feed(&whole, data, size, size ? size : 1);
    fuzz_feed(&bytes, data, size, 1);
    fuzz_feed(&chunks, data, size, 0);
    fuzz_check_result(&whole);
    fuzz_check_result(&bytes);
    fuzz_check_result(&chunks);
    /* The flight bound may end a long input at a different byte per split. */
    if (size <= STAPLE_MAX_FLIGHT / 2) {
        size_t l1, l2, l3;
        const uint8_t *r1 = staple_response(&whole, &l1);
        const uint8_t *r2 = staple_response(&bytes, &l2);
        const uint8_t *r3 = staple_response(&chunks, &l3);
        FUZZ_CHECK(whole.state == bytes.state && whole.state == chunks.state);
        FUZZ_CHECK(l1 == l2 && l1 == l3);
        FUZZ_CHECK(l1 == 0 || (memcmp(r1, r2, l1) == 0 && memcmp(r1, r3, l1) == 0));
    }
    staple_fini(&whole);
    staple_fini(&bytes);
    staple_fini(&chunks);
    return 0;
}
