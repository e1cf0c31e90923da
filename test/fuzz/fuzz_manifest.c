/*
 * Fuzz target for bdl_parse_verify(), the gate every pushed or pulled bundle
 * passes. A fixed Ed25519 key lives in the harness, so besides raw input
 * (which mostly stops before the signature) it can sign what the fuzzer
 * writes and reach the file area, the hashes and the bundle object:
 *   byte 0 & 3 == 0: the rest is a bundle, verified as is;
 *             == 1: the rest is "unsigned manifest" NUL "file area": signed here;
 *             == 2: the rest is a list of files: built with bdl_build_mem(),
 *                   which must then verify and give the same files back.
 * byte 0 >> 2 is the rollback floor. Checked: refusals are one printable line;
 * an accepted bundle keeps every promise of core/bundle.h.
 */
#include "core/bundle.h"
#include "test/fuzz/fuzz.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/ed25519.h>

/* abort() rather than assert(): the check must survive NDEBUG and the plain replay build. */
#define FUZZ_MAX (256 * 1024)

static struct bdl_privkey fuzz_key;
static bool fuzz_ready;

static void
fuzz_init(void)
{
    uint8_t seed[32];

    if (fuzz_ready)
        return;
    memset(seed, 0x42, sizeof(seed));
    FUZZ_CHECK(bdl_privkey_from_seed(seed, &fuzz_key) == CAT_OK);
    fuzz_ready = true;
}

static void
fuzz_check_err(const char *err, size_t cap)
{
    size_t n = strnlen(err, cap);

    FUZZ_CHECK(n > 0 && n < cap);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK((unsigned char)err[i] >= 0x20 && (unsigned char)err[i] < 0x7f);
}

static void
fuzz_check_bundle(const struct bdl *b, uint64_t min)
{
    size_t raw_len, sum = 0, l;
    const uint8_t *raw = bdl_raw(b, &raw_len);
    const char *d = bdl_digest(b);
    bool policy = false;

    FUZZ_CHECK(bdl_version(b) >= 1 && bdl_version(b) >= min);
    FUZZ_CHECK(strlen(d) == BDL_DIGEST_LEN && strncmp(d, "sha256:", 7) == 0);
    FUZZ_CHECK(strlen(bdl_created_str(b)) == 20);
    FUZZ_CHECK(bdl_count(b) >= 1 && bdl_count(b) <= BDL_MAX_FILES);
    FUZZ_CHECK(raw_len <= BDL_MAX_SIZE);
    for (size_t i = 0; i < bdl_count(b); i++) {
        const struct bdl_entry *e = bdl_entry_at(b, i);
        enum bdl_kind k;
        char why[128];
        FUZZ_CHECK(bdl_name_check(e->name, strlen(e->name), &k, why, sizeof(why)) == CAT_OK);
        FUZZ_CHECK(k == e->kind);
        FUZZ_CHECK(strstr(e->name, "..") == NULL && e->name[0] != '/');
        if (i > 0)
            FUZZ_CHECK(strcmp(bdl_entry_at(b, i - 1)->name, e->name) < 0);
        FUZZ_CHECK(e->data >= raw && e->data + e->len <= raw + raw_len);
        FUZZ_CHECK(bdl_file(b, e->name, &l) == e->data && l == e->len);
        policy |= e->kind == BDL_KIND_POLICY;
        sum += e->len;
    }
    FUZZ_CHECK(policy);
    /* The files are the tail of the bundle, back to back. */
    FUZZ_CHECK(bdl_entry_at(b, bdl_count(b) - 1)->data + bdl_entry_at(b, bdl_count(b) - 1)->len ==
               raw + raw_len);
    FUZZ_CHECK(sum < raw_len);
    size_t n = 0;
    for (size_t i = 0; bdl_next(b, BDL_KIND_CA, &i) != NULL; n++)
        FUZZ_CHECK(n < bdl_count(b));
}

static void
fuzz_verify(const uint8_t *d, size_t n, uint64_t min)
{
    char err[256];
    struct bdl *b;

    memset(err, 0x55, sizeof(err));
    b = bdl_parse_verify(d, n, &fuzz_key.pub, 1, min, err, sizeof(err));
    if (b == NULL) {
        fuzz_check_err(err, sizeof(err));
        return;
    }
    fuzz_check_bundle(b, min);
    bdl_free(b);
}

/* Mode 1: sign the fuzzer's manifest text as the real signer would, then verify. */
static void
fuzz_signed(const uint8_t *d, size_t n, uint64_t min)
{
    const uint8_t *nul = memchr(d, 0, n);
    size_t tl = nul ? (size_t)(nul - d) : n, al = nul ? n - tl - 1 : 0, pos;
    uint8_t sig[64], *buf;
    word32 sl = sizeof(sig);
    ed25519_key ek;

    buf = malloc(tl + 200 + al);
    if (buf == NULL)
        return;
    memcpy(buf, d, tl);
    FUZZ_CHECK(wc_ed25519_init(&ek) == 0);
    FUZZ_CHECK(wc_ed25519_import_private_key(fuzz_key.seed, 32, fuzz_key.pub.key, 32, &ek) == 0);
    FUZZ_CHECK(wc_ed25519_sign_msg(buf, (word32)tl, sig, &sl, &ek) == 0);
    wc_ed25519_free(&ek);
    pos = tl + (size_t)sprintf((char *)buf + tl, "signature ed25519 %s ", fuzz_key.pub.id_hex);
    for (size_t i = 0; i < sizeof(sig); i++)
        pos += (size_t)sprintf((char *)buf + pos, "%02x", sig[i]);
    buf[pos++] = '\n';
    if (al)
        memcpy(buf + pos, nul + 1, al);
    fuzz_verify(buf, pos + al, min);
    free(buf);
}

/*
 * Mode 2: records of [name length][name][size, 2 bytes][data]; the first 8
 * bytes are the version. Whatever the builder accepts must verify and
 * round-trip byte for byte.
 */
static void
fuzz_build(const uint8_t *d, size_t n, uint64_t min)
{
    struct bdl_src src[16];
    char names[16][256];
    size_t nf = 0, pos = 8, len;
    uint64_t version = 0;
    uint8_t *out;
    char err[256];

    if (n < 8)
        return;
    for (int i = 0; i < 8; i++)
        version = version << 8 | d[i];
    while (pos < n && nf < CAT_ARRAY_LEN(src)) {
        size_t nl = d[pos++], dl;
        if (nl > n - pos)
            break;
        memcpy(names[nf], d + pos, nl);
        names[nf][nl] = '\0';
        pos += nl;
        if (n - pos < 2)
            break;
        dl = (size_t)d[pos] << 8 | d[pos + 1];
        pos += 2;
        dl = CAT_MIN(dl, n - pos);
        src[nf] = (struct bdl_src){.name = names[nf], .data = d + pos, .len = dl};
        pos += dl;
        nf++;
    }
    memset(err, 0x55, sizeof(err));
    if (bdl_build_mem(src, nf, version, (time_t)1796022000, &fuzz_key, &out, &len, err,
                      sizeof(err)) != CAT_OK) {
        fuzz_check_err(err, sizeof(err));
        return;
    }
    struct bdl *b = bdl_parse_verify(out, len, &fuzz_key.pub, 1, min, err, sizeof(err));
    if (version < min) {
        FUZZ_CHECK(b == NULL);
    } else {
        if (b == NULL)
            fprintf(stderr, "fuzz_manifest: built bundle refused: %s\n", err);
        FUZZ_CHECK(b != NULL);
        fuzz_check_bundle(b, min);
        FUZZ_CHECK(bdl_version(b) == version && bdl_count(b) == nf);
        for (size_t i = 0; i < nf; i++) {
            size_t l;
            const uint8_t *p = bdl_file(b, src[i].name, &l);
            FUZZ_CHECK(p != NULL && l == src[i].len);
            FUZZ_CHECK(l == 0 || memcmp(p, src[i].data, l) == 0);
        }
        bdl_free(b);
    }
    free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > FUZZ_MAX)
        return 0;
    fuzz_init();
    uint64_t min = data[0] >> 2;
    switch (data[0] & 3) {
    case 1:
        fuzz_signed(data + 1, size - 1, min);
        break;
    case 2:
        fuzz_build(data + 1, size - 1, min);
        break;
    default:
        fuzz_verify(data + 1, size - 1, min);
        break;
    }
    return 0;
}
