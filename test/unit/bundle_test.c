/*
 * Unit tests for core/bundle: build -> verify round trips (memory and
 * directory), every manifest rule with its exact error, tampering with any
 * covered byte, wrong and rotated keys, rollback, truncation and trailing
 * bytes, names that try to leave the bundle, key files and their modes.
 * Hand-made manifests are signed here with wolfCrypt directly, so the parser
 * is not only checked against its own builder.
 */
#include "core/bundle.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/ed25519.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include <cmocka.h>

/* 2026-11-30T07:00:00Z */
#define T_CREATED ((time_t)1796022000)

static struct bdl_privkey K1, K2;
static char err[512];

static const char policy[] = "<proxy>\nallow\n";
static const char cats[] = "financial .bank.example\n";
static const char ca[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
static const char page[] = "<html>expired</html>\n";

static int
setup_keys(void **state)
{
    uint8_t s1[32], s2[32];

    for (int i = 0; i < 32; i++) {
        s1[i] = (uint8_t)(i + 1);
        s2[i] = (uint8_t)(0xa0 + i);
    }
    if (bdl_privkey_from_seed(s1, &K1) != CAT_OK || bdl_privkey_from_seed(s2, &K2) != CAT_OK)
        return -1;
    return 0;
}

static int
teardown_keys(void **state)
{
    bdl_privkey_wipe(&K1);
    bdl_privkey_wipe(&K2);
    return 0;
}

static uint8_t *
build4(uint64_t version, size_t *len)
{
    const struct bdl_src src[] = {
        {"policy.cpl", (const uint8_t *)policy, sizeof(policy) - 1},
        {"pages/ssl_server_cert_expired.html", (const uint8_t *)page, sizeof(page) - 1},
        {"categories.txt", (const uint8_t *)cats, sizeof(cats) - 1},
        {"cas/upstream-issuer.pem", (const uint8_t *)ca, sizeof(ca) - 1},
    };
    /* static: gcc -O3 otherwise suspects the callee of storing &out into out. */
    static uint8_t *out;
    int rc = bdl_build_mem(src, 4, version, T_CREATED, &K1, &out, len, err, sizeof(err));

    assert_int_equal(rc, CAT_OK);
    return out;
}

/* Signs text (everything before the signature line) with k and appends area. */
static uint8_t *
sign_text(const char *text, const void *area, size_t area_len, const struct bdl_privkey *k,
          size_t *len)
{
    ed25519_key ek;
    uint8_t sig[64];
    word32 sl = sizeof(sig);
    size_t tl = strlen(text), cap = tl + 300 + area_len, pos = tl;
    uint8_t *out = malloc(cap);

    assert_non_null(out);
    memcpy(out, text, tl);
    assert_int_equal(wc_ed25519_init(&ek), 0);
    assert_int_equal(wc_ed25519_import_private_key(k->seed, 32, k->pub.key, 32, &ek), 0);
    assert_int_equal(wc_ed25519_sign_msg(out, (word32)tl, sig, &sl, &ek), 0);
    wc_ed25519_free(&ek);
    pos += (size_t)snprintf((char *)out + pos, cap - pos, "signature ed25519 %s ", k->pub.id_hex);
    for (size_t i = 0; i < sizeof(sig); i++)
        pos += (size_t)snprintf((char *)out + pos, cap - pos, "%02x", sig[i]);
    out[pos++] = '\n';
    memcpy(out + pos, area, area_len);
    *len = pos + area_len;
    return out;
}

static void
sha_hex(const void *d, size_t n, char out[65])
{
    uint8_t h[32];

    assert_int_equal(wc_Sha256Hash(d, (word32)n, h), 0);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

static struct bdl *
verify(const uint8_t *d, size_t n, uint64_t min)
{
    memset(err, 0, sizeof(err));
    return bdl_parse_verify(d, n, &K1.pub, 1, min, err, sizeof(err));
}

static void
expect_refused(const uint8_t *d, size_t n, uint64_t min, const char *want)
{
    struct bdl *b = verify(d, n, min);

    if (b != NULL || strcmp(err, want) != 0) {
        print_error("want \"%s\"\n got \"%s\" (%s)\n", want, err, b ? "accepted" : "refused");
        bdl_free(b);
        fail();
    }
}

static void
test_round_trip_mem(void **state)
{
    size_t len, l, n = 0;
    uint8_t *d = build4(42, &len);
    struct bdl *b = verify(d, len, 0);
    const struct bdl_entry *e;
    const uint8_t *p;
    char want_digest[80], h[65];

    assert_non_null(b);
    assert_int_equal(bdl_version(b), 42);
    assert_int_equal(bdl_created(b), T_CREATED);
    assert_string_equal(bdl_created_str(b), "2026-11-30T07:00:00Z");
    assert_string_equal(bdl_key_id(b), K1.pub.id_hex);
    assert_int_equal(bdl_count(b), 4);
    /* Manifest order is byte order, whatever order the builder was given. */
    assert_string_equal(bdl_entry_at(b, 0)->name, "cas/upstream-issuer.pem");
    assert_string_equal(bdl_entry_at(b, 1)->name, "categories.txt");
    assert_string_equal(bdl_entry_at(b, 2)->name, "pages/ssl_server_cert_expired.html");
    assert_string_equal(bdl_entry_at(b, 3)->name, "policy.cpl");
    assert_null(bdl_entry_at(b, 4));
    assert_int_equal(bdl_entry_at(b, 0)->kind, BDL_KIND_CA);
    assert_int_equal(bdl_entry_at(b, 2)->kind, BDL_KIND_PAGE);

    p = bdl_file(b, "policy.cpl", &l);
    assert_non_null(p);
    assert_int_equal(l, sizeof(policy) - 1);
    assert_memory_equal(p, policy, l);
    p = bdl_file(b, "categories.txt", &l);
    assert_non_null(p);
    assert_memory_equal(p, cats, l);
    assert_null(bdl_file(b, "cas/other.pem", &l));
    assert_int_equal(l, 0);
    assert_null(bdl_file(b, "", &l));

    for (size_t i = 0; (e = bdl_next(b, BDL_KIND_CA, &i)) != NULL; n++)
        assert_string_equal(e->name, "cas/upstream-issuer.pem");
    assert_int_equal(n, 1);
    n = 0;
    for (size_t i = 0; (e = bdl_next(b, BDL_KIND_PAGE, &i)) != NULL; n++)
        assert_memory_equal(e->data, page, e->len);
    assert_int_equal(n, 1);

    /* The digest is SHA-256 over the manifest with its signature line. */
    const uint8_t *sigl = (const uint8_t *)strstr((const char *)d, "signature ");
    const uint8_t *eol = memchr(sigl, '\n', len - (size_t)(sigl - d));
    sha_hex(d, (size_t)(eol + 1 - d), h);
    snprintf(want_digest, sizeof(want_digest), "sha256:%s", h);
    assert_string_equal(bdl_digest(b), want_digest);

    /* The object is a copy: the caller's buffer may go away. */
    p = bdl_raw(b, &l);
    assert_int_equal(l, len);
    assert_memory_equal(p, d, len);
    memset(d, 'x', len);
    free(d);
    p = bdl_file(b, "policy.cpl", &l);
    assert_memory_equal(p, policy, l);
    bdl_free(b);
    bdl_free(NULL);
}

static void
test_deterministic(void **state)
{
    size_t l1, l2;
    uint8_t *a = build4(7, &l1), *b = build4(7, &l2);

    /* Ed25519 is deterministic: same files, version, time and key give the same bytes. */
    assert_int_equal(l1, l2);
    assert_memory_equal(a, b, l1);
    free(a);
    free(b);
}

static void
test_tampered_file(void **state)
{
    size_t len;
    uint8_t *d = build4(42, &len);

    /* The last byte belongs to policy.cpl (the last file). */
    d[len - 1] ^= 1;
    expect_refused(d, len, 0, "file policy.cpl: sha256 mismatch");
    d[len - 1] ^= 1;
    /* The first file area byte: cas/upstream-issuer.pem. */
    size_t first =
        len - (sizeof(policy) - 1) - (sizeof(page) - 1) - (sizeof(cats) - 1) - (sizeof(ca) - 1);
    d[first] ^= 0x20;
    expect_refused(d, len, 0, "file cas/upstream-issuer.pem: sha256 mismatch");
    free(d);
}

static void
test_tampered_manifest(void **state)
{
    size_t len;
    uint8_t *d = build4(42, &len);
    char want[128];
    char *v = strstr((char *)d, "version 42");

    snprintf(want, sizeof(want), "signature does not verify with key %s", K1.pub.id_hex);
    v[9] = '3';
    expect_refused(d, len, 0, want);
    v[9] = '2';
    /* A hash in the manifest changed to match a changed file: still the signature. */
    char *h = strstr((char *)d, "file policy.cpl ");
    h = strchr(h + 16, ' ') + 1;
    char saved = h[0];
    h[0] = saved == 'a' ? 'b' : 'a';
    expect_refused(d, len, 0, want);
    h[0] = saved;
    /* The signature itself. */
    char *s = strstr((char *)d, "signature ed25519 ") + 18 + 17;
    saved = s[5];
    s[5] = saved == '0' ? '1' : '0';
    expect_refused(d, len, 0, want);
    s[5] = saved;
    struct bdl *b = verify(d, len, 0);
    assert_non_null(b);
    bdl_free(b);
    free(d);
}

static void
test_keys(void **state)
{
    size_t len;
    uint8_t *d = build4(42, &len);
    char want[128];
    struct bdl_pubkey both[2] = {K2.pub, K1.pub};
    struct bdl *b;

    snprintf(want, sizeof(want), "signature key %s is not a trusted key", K1.pub.id_hex);
    b = bdl_parse_verify(d, len, &K2.pub, 1, 0, err, sizeof(err));
    assert_null(b);
    assert_string_equal(err, want);
    b = bdl_parse_verify(d, len, NULL, 0, 0, err, sizeof(err));
    assert_null(b);
    assert_string_equal(err, want);
    /* Rotation: either of two trusted keys. */
    b = bdl_parse_verify(d, len, both, 2, 0, err, sizeof(err));
    assert_non_null(b);
    bdl_free(b);
    /* A key claiming K1's id but holding K2's key: the id only selects, it proves nothing. */
    struct bdl_pubkey liar = K2.pub;
    memcpy(liar.id, K1.pub.id, sizeof(liar.id));
    b = bdl_parse_verify(d, len, &liar, 1, 0, err, sizeof(err));
    assert_null(b);
    snprintf(want, sizeof(want), "signature does not verify with key %s", K1.pub.id_hex);
    assert_string_equal(err, want);
    free(d);
}

static void
test_rollback(void **state)
{
    size_t len;
    uint8_t *d = build4(5, &len);
    struct bdl *b;

    expect_refused(d, len, 6, "version 5 is older than the running 6");
    b = verify(d, len, 5); /* re-push of the running version */
    assert_non_null(b);
    bdl_free(b);
    b = verify(d, len, 1);
    assert_non_null(b);
    bdl_free(b);
    free(d);
}

static void
test_truncated_and_trailing(void **state)
{
    size_t len;
    uint8_t *d = build4(42, &len);
    const char *sig = strstr((const char *)d, "signature ");
    size_t man = (size_t)(strchr(sig, '\n') + 1 - (const char *)d);
    uint8_t *big;

    expect_refused(d, len - 1, 0,
                   "manifest line 7: file policy.cpl (14 bytes) runs past the end of the bundle "
                   "(truncated?)");
    expect_refused(d, man, 0,
                   "manifest line 4: file cas/upstream-issuer.pem (59 bytes) runs past the end "
                   "of the bundle (truncated?)");
    expect_refused(d, man - 1, 0, "manifest line 8: truncated (no end of line)");
    expect_refused(d, (size_t)(sig - (const char *)d), 0,
                   "manifest line 8: truncated (no signature line)");
    expect_refused(d, 10, 0, "manifest line 1: truncated (no end of line)");
    expect_refused(d, 0, 0, "empty bundle");
    /* Every cut refuses, with one line of text. */
    for (size_t cut = 0; cut < len; cut++) {
        struct bdl *b = verify(d, cut, 0);
        assert_null(b);
        assert_true(err[0] != '\0' && strchr(err, '\n') == NULL);
    }

    big = malloc(len + 3);
    memcpy(big, d, len);
    memcpy(big + len, "\n\n\n", 3);
    expect_refused(big, len + 3, 0, "3 bytes of trailing data after the last file");
    expect_refused(big, len + 1, 0, "1 bytes of trailing data after the last file");
    free(big);
    free(d);
}

static void
test_too_large(void **state)
{
    /* The size check comes before anything is read or copied. */
    static const uint8_t one = 'c';

    expect_refused(&one, (size_t)BDL_MAX_SIZE + 1, 0,
                   "bundle too large (67108865 bytes, at most 67108864)");
}

/* A manifest body (without signature) and the error expected once it is signed. */
struct mcase {
    const char *text;
    const char *err;
};

#define H64 "0000000000000000000000000000000000000000000000000000000000000000"
#define HEAD "catena-bundle 1\nversion 3\ncreated 2026-11-30T07:00:00Z\n"
#define POL "file policy.cpl 0 " H64 "\n"

static void
run_mcases(const struct mcase *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t len;
        uint8_t *d = sign_text(c[i].text, "", 0, &K1, &len);
        struct bdl *b = verify(d, len, 0);
        if (b != NULL || strcmp(err, c[i].err) != 0) {
            print_error("case %zu: %s\n want \"%s\"\n got \"%s\"\n", i, c[i].text, c[i].err,
                        b ? "(accepted)" : err);
            bdl_free(b);
            free(d);
            fail();
        }
        free(d);
    }
}

static void
test_manifest_head(void **state)
{
    static const struct mcase c[] = {
        {"catena-bundle 2\nversion 3\n", "manifest line 1: bundle format 2 is not supported "
                                         "(this catena reads format 1)"},
        {"catena-bundle 0\n", "manifest line 1: bundle format 0 is not supported (this catena "
                              "reads format 1)"},
        {"catena-bundle 01\n", "manifest line 1: bad format number \"01\""},
        {"catena-bundle 1.0\n", "manifest line 1: bad format number \"1.0\""},
        {"catena-bundle  1\n",
         "manifest line 1: not a catena bundle (expected \"catena-bundle 1\")"},
        {"catena-bundle 1 \n",
         "manifest line 1: not a catena bundle (expected \"catena-bundle 1\")"},
        {"Catena-bundle 1\n",
         "manifest line 1: not a catena bundle (expected \"catena-bundle 1\")"},
        {"PK\x03\x04", "manifest line 1: byte 0x03 at column 3 (only printable ASCII and LF)"},
        {"catena-bundle 1\r\n", "manifest line 1: byte 0x0d at column 16 (only printable ASCII "
                                "and LF)"},
        {"catena-bundle 1\nversion 0\n",
         "manifest line 2: version \"0\" is not a positive integer"},
        {"catena-bundle 1\nversion 042\n", "manifest line 2: version \"042\" is not a positive "
                                           "integer"},
        {"catena-bundle 1\nversion -1\n", "manifest line 2: version \"-1\" is not a positive "
                                          "integer"},
        {"catena-bundle 1\nversion 18446744073709551616\n",
         "manifest line 2: version \"18446744073709551616\" is not a positive integer"},
        {"catena-bundle 1\nversion\n", "manifest line 2: expected \"version N\""},
        {"catena-bundle 1\nVersion 1\n", "manifest line 2: expected \"version N\""},
        {"catena-bundle 1\ncreated 2026-11-30T07:00:00Z\n", "manifest line 2: expected "
                                                            "\"version N\""},
        {"catena-bundle 1\nversion 3\ncreated 2026-02-29T07:00:00Z\n",
         "manifest line 3: \"2026-02-29T07:00:00Z\" is not a UTC time YYYY-MM-DDTHH:MM:SSZ"},
        {"catena-bundle 1\nversion 3\ncreated 2026-11-30T07:00:00+01:00\n",
         "manifest line 3: \"2026-11-30T07:00:00+01:00\" is not a UTC time YYYY-MM-DDTHH:MM:SSZ"},
        {"catena-bundle 1\nversion 3\ncreated 2026-11-30T24:00:00Z\n",
         "manifest line 3: \"2026-11-30T24:00:00Z\" is not a UTC time YYYY-MM-DDTHH:MM:SSZ"},
        {"catena-bundle 1\nversion 3\ncreated 2026-11-30 07:00:00Z\n",
         "manifest line 3: expected \"created YYYY-MM-DDTHH:MM:SSZ\""},
        {"catena-bundle 1\nversion 3\n" POL, "manifest line 3: expected \"created "
                                             "YYYY-MM-DDTHH:MM:SSZ\""},
    };
    run_mcases(c, CAT_ARRAY_LEN(c));

    /* UINT64_MAX and a leap day are fine. */
    size_t len;
    uint8_t *d = sign_text("catena-bundle 1\nversion 18446744073709551615\ncreated "
                           "2028-02-29T23:59:59Z\n" POL,
                           "", 0, &K1, &len);
    char h[65];
    sha_hex("", 0, h);
    assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    free(d);
    char text[512];
    snprintf(text, sizeof(text),
             "catena-bundle 1\nversion 18446744073709551615\ncreated 2028-02-29T23:59:59Z\n"
             "file policy.cpl 0 %s\n",
             h);
    d = sign_text(text, "", 0, &K1, &len);
    struct bdl *b = verify(d, len, 0);
    assert_non_null(b);
    assert_int_equal(bdl_version(b), UINT64_MAX);
    assert_int_equal(bdl_created(b), (time_t)1835481599);
    bdl_free(b);
    free(d);
}

static void
test_manifest_files(void **state)
{
    static const struct mcase c[] = {
        {HEAD "file policy.cpl 0 " H64 " x\n", "manifest line 4: expected \"file NAME SIZE "
                                               "SHA256\""},
        {HEAD "file policy.cpl 0\n", "manifest line 4: expected \"file NAME SIZE SHA256\""},
        {HEAD "file  policy.cpl 0 " H64 "\n", "manifest line 4: fields must be separated by "
                                              "exactly one space"},
        {HEAD "file policy.cpl 0 " H64 " \n", "manifest line 4: fields must be separated by "
                                              "exactly one space"},
        {HEAD "file policy.cpl\t0 " H64 "\n", "manifest line 4: byte 0x09 at column 16 (only "
                                              "printable ASCII and LF)"},
        {HEAD "\n", "manifest line 4: fields must be separated by exactly one space"},
        {HEAD "file ../policy.cpl 0 " H64 "\n", "manifest line 4: file name \"../policy.cpl\": "
                                                "contains \"..\""},
        {HEAD "file cas/../policy.cpl 0 " H64 "\n", "manifest line 4: file name "
                                                    "\"cas/../policy.cpl\": contains \"..\""},
        {HEAD "file /policy.cpl 0 " H64 "\n", "manifest line 4: file name \"/policy.cpl\": must "
                                              "be relative (no leading '/')"},
        {HEAD "file cas/a..b.pem 0 " H64 "\n", "manifest line 4: file name \"cas/a..b.pem\": "
                                               "contains \"..\""},
        {HEAD "file ./policy.cpl 0 " H64 "\n", "manifest line 4: file name \"./policy.cpl\": "
                                               "component starts with '.'"},
        {HEAD "file cas/.x.pem 0 " H64 "\n", "manifest line 4: file name \"cas/.x.pem\": "
                                             "component starts with '.'"},
        {HEAD "file cas//x.pem 0 " H64 "\n", "manifest line 4: file name \"cas//x.pem\": empty "
                                             "path component"},
        {HEAD "file cas/x.pem/ 0 " H64 "\n", "manifest line 4: file name \"cas/x.pem/\": empty "
                                             "path component"},
        {HEAD "file cas/a/x.pem 0 " H64 "\n", "manifest line 4: file name \"cas/a/x.pem\": too "
                                              "deep (at most one directory)"},
        {HEAD "file cas/X.pem 0 " H64 "\n", "manifest line 4: file name \"cas/X.pem\": "
                                            "character 'X' not allowed (a-z 0-9 . _ - /)"},
        {HEAD "file cas\\x.pem 0 " H64 "\n", "manifest line 4: file name \"cas\\x5cx.pem\": "
                                             "character '\\' not allowed (a-z 0-9 . _ - /)"},
        {HEAD "file cas/\xc3\xa9.pem 0 " H64 "\n", "manifest line 4: byte 0xc3 at column 10 "
                                                   "(only printable ASCII and LF)"},
        {HEAD "file cas/x.PEM 0 " H64 "\n", "manifest line 4: file name \"cas/x.PEM\": "
                                            "character 'P' not allowed (a-z 0-9 . _ - /)"},
        {HEAD "file cas/x.crt 0 " H64 "\n",
         "manifest line 4: file name \"cas/x.crt\": not a bundle file (policy.cpl, "
         "categories.txt, cas/NAME.pem, pages/NAME.html)"},
        {HEAD "file pages/x.htm 0 " H64 "\n",
         "manifest line 4: file name \"pages/x.htm\": not a bundle file (policy.cpl, "
         "categories.txt, cas/NAME.pem, pages/NAME.html)"},
        {HEAD "file cas/.pem 0 " H64 "\n", "manifest line 4: file name \"cas/.pem\": component "
                                           "starts with '.'"},
        {HEAD "file notes.txt 0 " H64 "\n",
         "manifest line 4: file name \"notes.txt\": not a bundle file (policy.cpl, "
         "categories.txt, cas/NAME.pem, pages/NAME.html)"},
        {HEAD
         "file pages/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.html 0 " H64 "\n",
         "manifest line 4: file name \"pages/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\": "
         "longer than 128 bytes"},
        {HEAD "file policy.cpl 012 " H64 "\n", "manifest line 4: file size \"012\" is not a "
                                               "decimal number up to 67108864"},
        {HEAD "file policy.cpl +1 " H64 "\n", "manifest line 4: file size \"+1\" is not a "
                                              "decimal number up to 67108864"},
        {HEAD "file policy.cpl 67108865 " H64 "\n", "manifest line 4: file size \"67108865\" is "
                                                    "not a decimal number up to 67108864"},
        {HEAD "file policy.cpl 0 " H64 "0\n", "manifest line 4: sha256 must be 64 lowercase "
                                              "hex digits"},
        {HEAD "file policy.cpl 0 E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B8"
              "55\n",
         "manifest line 4: sha256 must be 64 lowercase hex digits"},
        {HEAD POL POL, "manifest line 5: duplicate file \"policy.cpl\""},
        {HEAD "file categories.txt 0 " H64 "\n" POL "file categories.txt 0 " H64 "\n",
         "manifest line 6: file \"categories.txt\" out of order (names must be in ascending "
         "byte order)"},
        {HEAD POL "file cas/a.pem 0 " H64 "\n", "manifest line 5: file \"cas/a.pem\" out of "
                                                "order (names must be in ascending byte order)"},
        {HEAD POL "comment hello\n", "manifest line 5: unknown keyword \"comment\" (expected "
                                     "\"file\" or \"signature\")"},
        {HEAD "version 4\n", "manifest line 4: unknown keyword \"version\" (expected \"file\" "
                             "or \"signature\")"},
        {HEAD "file categories.txt 0 " H64 "\n", "manifest: no policy.cpl"},
        {HEAD, "manifest: no policy.cpl"},
    };
    run_mcases(c, CAT_ARRAY_LEN(c));
}

/* Texts given whole, with their own (bad) signature line: nothing is appended. */
static void
test_manifest_signature(void **state)
{
    static const struct {
        const char *text, *err;
    } c[] = {
        {HEAD POL, "manifest line 5: truncated (no signature line)"},
        {HEAD POL "signature ed25519\n", "manifest line 5: expected \"signature ed25519 KEYID "
                                         "SIGNATURE\""},
        {HEAD POL "signature rsa 0011223344556677 00\n", "manifest line 5: signature algorithm "
                                                         "\"rsa\" is not supported (expected "
                                                         "ed25519)"},
        {HEAD POL "signature ed25519 00112233445566 " H64 H64 "\n",
         "manifest line 5: key id must be 16 lowercase hex digits"},
        {HEAD POL "signature ed25519 001122334455667G " H64 H64 "\n",
         "manifest line 5: key id must be 16 lowercase hex digits"},
        {HEAD POL "signature ed25519 0011223344556677 " H64 "\n",
         "manifest line 5: signature must be 128 lowercase hex digits"},
        {HEAD POL "signature ed25519 0011223344556677 " H64 H64 " x\n",
         "manifest line 5: expected \"signature ed25519 KEYID SIGNATURE\""},
        {HEAD POL "signature ed25519 0011223344556677 " H64 H64 "\n",
         "signature key 0011223344556677 is not a trusted key"},
    };
    for (size_t i = 0; i < CAT_ARRAY_LEN(c); i++) {
        struct bdl *b = verify((const uint8_t *)c[i].text, strlen(c[i].text), 0);
        if (b != NULL || strcmp(err, c[i].err) != 0) {
            print_error("case %zu: want \"%s\"\n got \"%s\"\n", i, c[i].err, err);
            bdl_free(b);
            fail();
        }
    }
}

static void
test_manifest_limits(void **state)
{
    size_t cap = 1100 * 120, pos, len;
    char *text = malloc(cap), line[600];
    uint8_t *d;

    /* A line of 511 bytes plus LF is the longest; the parser stops looking after it. */
    memset(line, 'a', sizeof(line));
    memcpy(line, "file ", 5);
    line[512] = '\0';
    snprintf(text, cap, HEAD "%s\n", line);
    d = sign_text(text, "", 0, &K1, &len);
    expect_refused(d, len, 0, "manifest line 4: longer than 511 bytes");
    free(d);
    line[511] = '\0';
    snprintf(text, cap, HEAD "%s\n", line);
    d = sign_text(text, "", 0, &K1, &len);
    expect_refused(d, len, 0, "manifest line 4: expected \"file NAME SIZE SHA256\"");
    free(d);

    /* 1024 files are allowed, the 1025th is not. */
    pos = (size_t)snprintf(text, cap, HEAD);
    for (int i = 0; i < 1025; i++)
        pos += (size_t)snprintf(text + pos, cap - pos, "file cas/%04d.pem 0 " H64 "\n", i);
    d = sign_text(text, "", 0, &K1, &len);
    expect_refused(d, len, 0, "manifest line 1028: more than 1024 files");
    free(d);
    free(text);
}

static void
test_name_check(void **state)
{
    enum bdl_kind k;
    char why[128];

    assert_int_equal(bdl_name_check("policy.cpl", 10, &k, why, sizeof(why)), CAT_OK);
    assert_int_equal(k, BDL_KIND_POLICY);
    assert_int_equal(bdl_name_check("categories.txt", 14, &k, why, sizeof(why)), CAT_OK);
    assert_int_equal(k, BDL_KIND_CATEGORIES);
    assert_int_equal(bdl_name_check("cas/a_b-c.d.pem", 15, &k, why, sizeof(why)), CAT_OK);
    assert_int_equal(k, BDL_KIND_CA);
    assert_int_equal(bdl_name_check("pages/x.html", 12, &k, why, sizeof(why)), CAT_OK);
    assert_int_equal(k, BDL_KIND_PAGE);
    assert_int_equal(bdl_name_check("pages/.html", 11, &k, why, sizeof(why)), CAT_ERR);
    assert_int_equal(bdl_name_check("policy.cpl/x", 12, &k, why, sizeof(why)), CAT_ERR);
    assert_int_equal(bdl_name_check("cas/x.pem", 0, &k, why, sizeof(why)), CAT_ERR);
    assert_string_equal(why, "empty name");
    /* The length is what counts: an embedded NUL is a bad byte, not an end. */
    assert_int_equal(bdl_name_check("policy.cpl\0x", 12, &k, why, sizeof(why)), CAT_ERR);
    assert_string_equal(why, "byte 0x00 not allowed (a-z 0-9 . _ - /)");
    assert_int_equal(bdl_name_check("..", 2, &k, why, sizeof(why)), CAT_ERR);
    assert_string_equal(why, "contains \"..\"");
}

static void
test_build_mem_errors(void **state)
{
    const uint8_t x = 'x';
    uint8_t *out = (uint8_t *)&x;
    size_t len = 5;
    struct bdl_src dup[] = {{"policy.cpl", &x, 1}, {"cas/a.pem", &x, 1}, {"cas/a.pem", &x, 0}};
    struct bdl_src bad[] = {{"policy.cpl", &x, 1}, {"cas/../../etc/passwd.pem", &x, 1}};
    struct bdl_src nopol[] = {{"categories.txt", &x, 1}};

    assert_int_equal(bdl_build_mem(dup, 3, 1, T_CREATED, &K1, &out, &len, err, sizeof(err)),
                     CAT_ERR);
    assert_string_equal(err, "duplicate file \"cas/a.pem\"");
    assert_null(out);
    assert_int_equal(len, 0);
    assert_int_equal(bdl_build_mem(bad, 2, 1, T_CREATED, &K1, &out, &len, err, sizeof(err)),
                     CAT_ERR);
    assert_string_equal(err, "file name \"cas/../../etc/passwd.pem\": contains \"..\"");
    assert_int_equal(bdl_build_mem(nopol, 1, 1, T_CREATED, &K1, &out, &len, err, sizeof(err)),
                     CAT_ERR);
    assert_string_equal(err, "no policy.cpl");
    assert_int_equal(bdl_build_mem(dup, 1, 0, T_CREATED, &K1, &out, &len, err, sizeof(err)),
                     CAT_ERR);
    assert_string_equal(err, "version must be a positive integer");
    assert_int_equal(bdl_build_mem(dup, 1, 1, -1, &K1, &out, &len, err, sizeof(err)), CAT_ERR);
    assert_string_equal(err, "creation time out of range");
}

/* --- files on disk ---------------------------------------------------------------------- */

static char tmpdir[64];

static void
put(const char *rel, const char *text, mode_t mode)
{
    char p[256];
    FILE *f;

    snprintf(p, sizeof(p), "%s/%s", tmpdir, rel);
    f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(p, mode), 0);
}

static const char *
path(const char *rel)
{
    static char p[4][256];
    static int i;

    i = (i + 1) % 4;
    snprintf(p[i], sizeof(p[i]), "%s/%s", tmpdir, rel);
    return p[i];
}

static int
setup_dir(void **state)
{
    const char *t = getenv("TMPDIR");

    snprintf(tmpdir, sizeof(tmpdir), "%s/bundle_test.XXXXXX", t && strlen(t) < 40 ? t : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int
teardown_dir(void **state)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void
test_keyfiles(void **state)
{
    struct bdl_pubkey pub;
    struct bdl_privkey priv;
    struct stat st;
    char want[512];

    assert_int_equal(bdl_keygen(path("k1"), path("k1.pub"), err, sizeof(err)), CAT_OK);
    assert_int_equal(stat(path("k1"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(bdl_pubkey_load(path("k1.pub"), &pub, err, sizeof(err)), CAT_OK);
    assert_int_equal(bdl_privkey_load(path("k1"), &priv, err, sizeof(err)), CAT_OK);
    assert_memory_equal(priv.pub.key, pub.key, 32);
    assert_string_equal(priv.pub.id_hex, pub.id_hex);
    assert_int_equal(strlen(pub.id_hex), 16);
    bdl_privkey_wipe(&priv);
    for (size_t i = 0; i < sizeof(priv); i++)
        assert_int_equal(((uint8_t *)&priv)[i], 0);

    /* Never overwrite. */
    assert_int_equal(bdl_keygen(path("k1"), path("k2.pub"), err, sizeof(err)), CAT_ERR);
    snprintf(want, sizeof(want), "%s: File exists", path("k1"));
    assert_string_equal(err, want);
    assert_int_equal(access(path("k2.pub"), F_OK), -1);
    /* A failed public write leaves no private key behind. */
    assert_int_equal(bdl_keygen(path("k3"), path("k1.pub"), err, sizeof(err)), CAT_ERR);
    assert_int_equal(access(path("k3"), F_OK), -1);

    /* A private key others can read is refused. */
    assert_int_equal(chmod(path("k1"), 0640), 0);
    assert_int_equal(bdl_privkey_load(path("k1"), &priv, err, sizeof(err)), CAT_ERR);
    snprintf(want, sizeof(want),
             "%s: private key is accessible by group or others (mode 0640); chmod 600 it",
             path("k1"));
    assert_string_equal(err, want);
    assert_int_equal(chmod(path("k1"), 0400), 0);
    assert_int_equal(bdl_privkey_load(path("k1"), &priv, err, sizeof(err)), CAT_OK);
    bdl_privkey_wipe(&priv);

    /* Malformed files. */
    put("bad.pub", "catena-ed25519-public 00\n", 0644);
    assert_int_equal(bdl_pubkey_load(path("bad.pub"), &pub, err, sizeof(err)), CAT_ERR);
    snprintf(want, sizeof(want), "%s: expected \"catena-ed25519-public <64 lowercase hex digits>\"",
             path("bad.pub"));
    assert_string_equal(err, want);
    put("priv-as-pub", "catena-ed25519-private " H64 "\n", 0600);
    assert_int_equal(bdl_pubkey_load(path("priv-as-pub"), &pub, err, sizeof(err)), CAT_ERR);
    put("pub-as-priv", "catena-ed25519-public " H64 "\n", 0600);
    assert_int_equal(bdl_privkey_load(path("pub-as-priv"), &priv, err, sizeof(err)), CAT_ERR);
    snprintf(want, sizeof(want),
             "%s: expected \"catena-ed25519-private <64 lowercase hex digits>\"",
             path("pub-as-priv"));
    assert_string_equal(err, want);
    assert_int_equal(bdl_pubkey_load(path("missing"), &pub, err, sizeof(err)), CAT_ERR);
    snprintf(want, sizeof(want), "%s: No such file or directory", path("missing"));
    assert_string_equal(err, want);
    assert_int_equal(bdl_pubkey_load(tmpdir, &pub, err, sizeof(err)), CAT_ERR);

    /* Text form: no trailing junk, one LF at most. */
    char text[200];
    snprintf(text, sizeof(text), "catena-ed25519-public ");
    for (int i = 0; i < 32; i++)
        snprintf(text + strlen(text), 3, "%02x", K1.pub.key[i]);
    assert_int_equal(bdl_pubkey_parse(text, strlen(text), &pub, err, sizeof(err)), CAT_OK);
    assert_memory_equal(&pub, &K1.pub, sizeof(pub));
    strcat(text, "\n\n");
    assert_int_equal(bdl_pubkey_parse(text, strlen(text), &pub, err, sizeof(err)), CAT_ERR);
}

static void
test_build_dir(void **state)
{
    char sub[256], want[512];
    uint8_t *out;
    size_t len, l;
    struct bdl_pubkey pub;
    struct bdl *b;

    snprintf(sub, sizeof(sub), "%s/d", tmpdir);
    assert_int_equal(mkdir(sub, 0755), 0);
    assert_int_equal(bdl_keygen(path("bk"), path("bk.pub"), err, sizeof(err)), CAT_OK);
    assert_int_equal(bdl_pubkey_load(path("bk.pub"), &pub, err, sizeof(err)), CAT_OK);

    /* policy.cpl is required. */
    assert_int_equal(bdl_build(sub, 1, path("bk"), &out, &len, err, sizeof(err)), CAT_ERR);
    snprintf(want, sizeof(want), "%s/policy.cpl: No such file or directory", sub);
    assert_string_equal(err, want);

    put("d/policy.cpl", policy, 0644);
    put("d/README", "not collected\n", 0644);
    assert_int_equal(mkdir(path("d/cas"), 0755), 0);
    assert_int_equal(mkdir(path("d/pages"), 0755), 0);
    put("d/cas/b.pem", ca, 0644);
    put("d/cas/a.pem", ca, 0644);
    put("d/cas/.a.pem.swp", "editor junk", 0644);
    put("d/pages/ssl_server_cert_expired.html", page, 0644);
    assert_int_equal(bdl_build(sub, 9, path("bk"), &out, &len, err, sizeof(err)), CAT_OK);
    b = bdl_parse_verify(out, len, &pub, 1, 9, err, sizeof(err));
    assert_non_null(b);
    assert_int_equal(bdl_count(b), 4);
    assert_string_equal(bdl_entry_at(b, 0)->name, "cas/a.pem");
    assert_string_equal(bdl_entry_at(b, 1)->name, "cas/b.pem");
    assert_null(bdl_file(b, "categories.txt", &l));
    assert_memory_equal(bdl_file(b, "pages/ssl_server_cert_expired.html", &l), page, l);
    bdl_free(b);
    free(out);

    /* A file in cas/ that cannot go in is an error, not silently dropped. */
    put("d/cas/Upstream.pem", ca, 0644);
    assert_int_equal(bdl_build(sub, 9, path("bk"), &out, &len, err, sizeof(err)), CAT_ERR);
    snprintf(want, sizeof(want),
             "%s/cas/Upstream.pem: cannot go into a bundle: character 'U' not allowed (a-z 0-9 "
             ". _ - /)",
             sub);
    assert_string_equal(err, want);
    assert_int_equal(unlink(path("d/cas/Upstream.pem")), 0);
    put("d/pages/x.txt", "x", 0644);
    assert_int_equal(bdl_build(sub, 9, path("bk"), &out, &len, err, sizeof(err)), CAT_ERR);
    snprintf(want, sizeof(want),
             "%s/pages/x.txt: cannot go into a bundle: not a bundle file "
             "(policy.cpl, categories.txt, cas/NAME.pem, pages/NAME.html)",
             sub);
    assert_string_equal(err, want);
    assert_int_equal(unlink(path("d/pages/x.txt")), 0);
    put("d/pages/x.pem", "x", 0644);
    assert_int_equal(bdl_build(sub, 9, path("bk"), &out, &len, err, sizeof(err)), CAT_ERR);
    snprintf(want, sizeof(want),
             "%s/pages/x.pem: cannot go into a bundle: not a bundle file "
             "(policy.cpl, categories.txt, cas/NAME.pem, pages/NAME.html)",
             sub);
    assert_string_equal(err, want);
    assert_int_equal(unlink(path("d/pages/x.pem")), 0);

    /* A readable signing key is refused before anything is read. */
    assert_int_equal(chmod(path("bk"), 0644), 0);
    assert_int_equal(bdl_build(sub, 9, path("bk"), &out, &len, err, sizeof(err)), CAT_ERR);
    assert_non_null(strstr(err, "private key is accessible by group or others"));
    assert_null(out);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_mem),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_tampered_file),
        cmocka_unit_test(test_tampered_manifest),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_rollback),
        cmocka_unit_test(test_truncated_and_trailing),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_manifest_head),
        cmocka_unit_test(test_manifest_files),
        cmocka_unit_test(test_manifest_signature),
        cmocka_unit_test(test_manifest_limits),
        cmocka_unit_test(test_name_check),
        cmocka_unit_test(test_build_mem_errors),
        cmocka_unit_test_setup_teardown(test_keyfiles, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_build_dir, setup_dir, teardown_dir),
    };
    return cmocka_run_group_tests(tests, setup_keys, teardown_keys);
}
