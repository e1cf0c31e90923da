/*
 * Fuzz target: an origin server's certificate (DER) is untrusted input to
 * certificate emulation: parsing, name and validity extraction, the TBS
 * edit and signing. A keyring is made once in a temporary directory; the
 * cache holds one entry so every input is emulated afresh.
 */
#include "emulation/emu.h"
#include "test/fuzz/fuzz.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct emu *fuzz_emu;
static char fuzz_dir[300];
static char fuzz_base[64];

/* The keyring is scratch: remove it when the process ends. */
static void
fuzz_cleanup(void)
{
    const char *files[] = {"cert.pem", "key.pem", "chain.pem"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char p[400];
        snprintf(p, sizeof(p), "%s/%s", fuzz_dir, files[i]);
        unlink(p);
    }
    rmdir(fuzz_dir);
    rmdir(fuzz_base);
}

static void
fuzz_setup(void)
{
    char err[256];
    snprintf(fuzz_base, sizeof(fuzz_base), "/tmp/catena-fuzz-cert-XXXXXX");
    if (mkdtemp(fuzz_base) == NULL || emu_init(err, sizeof(err)) != CAT_OK)
        abort();
    snprintf(fuzz_dir, sizeof(fuzz_dir), "%s/kr", fuzz_base);
    atexit(fuzz_cleanup);
    const char *dir = fuzz_dir;
    struct emu_ca_req r = {.dir = dir, .common_name = "fuzz root", .days = 30, .path_len = 1};
    if (emu_ca_create(&r, err, sizeof(err)) != CAT_OK) {
        fprintf(stderr, "fuzz_cert: %s\n", err);
        abort();
    }
    struct emu_opts o = {.dir = dir, .name = "fuzz", .cache_entries = 1};
    fuzz_emu = emu_new(&o, err, sizeof(err));
    if (fuzz_emu == NULL) {
        fprintf(stderr, "fuzz_cert: %s\n", err);
        abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fuzz_emu == NULL)
        fuzz_setup();
    if (size == 0 || size > 16384)
        return 0;
    char err[256];
    bool cached;
    struct emu_params p = {.splash_text = "fuzz"};
    struct emu_leaf *l = emu_leaf_get(fuzz_emu, data, size, &p, &cached, err, sizeof(err));
    if (l != NULL) {
        size_t len = 0;
        if (emu_leaf_der(l, &len) == NULL || len == 0)
            abort();
        emu_leaf_unref(l);
    }
    (void)emu_is_own_issue(fuzz_emu, data, size);
    return 0;
}
