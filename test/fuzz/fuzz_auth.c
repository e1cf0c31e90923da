/*
 * Fuzz target: the Proxy-Authorization value a client sends ("Basic
 * <base64 of user:password>") is untrusted input to auth.c's parser, which
 * runs before any password check. The parser is static, so the module is
 * included here (as the unit tests do). Invariants: a parsed user is
 * non-empty, NUL-terminated, valid UTF-8 without ':' and within its buffer;
 * the password holds no control byte. Never crash, never leak.
 */
#include "core/auth.c"
#include "test/fuzz/fuzz.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The header value as http.c hands it over: a C string, at most the limit. */
    if (size > AUTH_HEADER_MAX)
        return 0;
    char v[AUTH_HEADER_MAX + 1];
    memcpy(v, data, size);
    v[size] = '\0';
    /* Small buffers too: the caller's capacity must bound the copy. */
    size_t caps[] = {AUTH_USER_MAX, 8};
    for (size_t k = 0; k < sizeof(caps) / sizeof(caps[0]); k++) {
        char user[AUTH_USER_MAX], pass[AUTH_PASS_MAX];
        memset(user, 0x55, sizeof(user));
        if (!auth_parse_basic(v, user, caps[k], pass, sizeof(pass)))
            continue;
        size_t ul = strnlen(user, caps[k]);
        FUZZ_CHECK(ul > 0 && ul < caps[k]);
        FUZZ_CHECK(memchr(user, ':', ul) == NULL);
        FUZZ_CHECK(auth_utf8_ok((const uint8_t *)user, ul));
        size_t pl = strnlen(pass, sizeof(pass));
        FUZZ_CHECK(pl < sizeof(pass));
        for (size_t i = 0; i < pl; i++)
            FUZZ_CHECK((unsigned char)pass[i] >= 0x20 && pass[i] != 0x7f);
    }
    return 0;
}
