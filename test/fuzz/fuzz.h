/*
 * What every libFuzzer target here shares: the entry point's prototype and
 * FUZZ_CHECK, which turns a broken invariant into a crash libFuzzer reports
 * (with the file, line and the condition that failed).
 */
#ifndef CATENA_TEST_FUZZ_FUZZ_H
#define CATENA_TEST_FUZZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(x)                                                                              \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #x);              \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
