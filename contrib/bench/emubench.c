/*
 * emubench: emulated certificates per second for `make bench`. Loads a
 * keyring, then emulates one origin certificate (DER file) N times with
 * parameters that differ each time, so every call is a cache miss and costs
 * a real signature; then N cache hits.
 *
 *   emubench KEYRING_DIR ORIGIN.der [N]
 */
#include "emulation/emu.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double
eb_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: emubench KEYRING_DIR ORIGIN.der [N]\n");
        return 2;
    }
    unsigned n = argc > 3 ? (unsigned)atoi(argv[3]) : 2000;
    static uint8_t der[65536];
    FILE *f = fopen(argv[2], "rb");
    if (f == NULL) {
        perror(argv[2]);
        return 1;
    }
    size_t len = fread(der, 1, sizeof(der), f);
    fclose(f);
    char err[256];
    if (emu_init(err, sizeof(err)) != CAT_OK) {
        fprintf(stderr, "emubench: %s\n", err);
        return 1;
    }
    struct emu_opts o = {.dir = argv[1], .name = "bench", .cache_entries = n + 16};
    struct emu *e = emu_new(&o, err, sizeof(err));
    if (e == NULL) {
        fprintf(stderr, "emubench: %s\n", err);
        return 1;
    }
    char text[64];
    struct emu_params p = {.splash_text = text};
    bool cached;
    double t0 = eb_now();
    for (unsigned i = 0; i < n; i++) {
        snprintf(text, sizeof(text), "bench %u", i);
        struct emu_leaf *l = emu_leaf_get(e, der, len, &p, &cached, err, sizeof(err));
        if (l == NULL) {
            fprintf(stderr, "emubench: %s\n", err);
            return 1;
        }
        emu_leaf_unref(l);
    }
    double cold = eb_now() - t0;
    t0 = eb_now();
    for (unsigned i = 0; i < n; i++) {
        snprintf(text, sizeof(text), "bench %u", i);
        struct emu_leaf *l = emu_leaf_get(e, der, len, &p, &cached, err, sizeof(err));
        if (l == NULL || !cached)
            return 1;
        emu_leaf_unref(l);
    }
    double warm = eb_now() - t0;
    printf("emulated certificates: %.0f /s cold (a signature and a TLS context each), "
           "%.0f /s from the cache\n",
           n / cold, n / warm);
    emu_free(e);
    emu_fini();
    return 0;
}
