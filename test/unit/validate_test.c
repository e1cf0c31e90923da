/*
 * Unit tests for the validation engine (core/validate.c, val_cert.c,
 * val_cache.c): the exact error bitmask of each fixture chain (made by
 * test/unit/data/validate/gen.sh with the openssl CLI and checked in),
 * validated at a fixed instant so the fixtures never rot; path choice; the
 * fields reported; the hostname rules table; the results cache (hit, bound,
 * TTL and notAfter with injected time); the store loader; DER dates, PEM
 * splitting and text sanitising. No network; no clock.
 */
#include "core/val_int.h"

/* The statics (hostname matcher, path checks); validate.o is then not linked. */
#include "core/validate.c"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <wolfssl/wolfcrypt/coding.h>

/* 2030-01-01T00:00:00Z: see gen.sh for the dates around it. */
#define NOW ((time_t)1893456000)
#define T2020 ((time_t)1577836800)
#define T2120 ((time_t)4733510400)

struct fx {
    const char *name;
    uint8_t *der;
    size_t len;
    char *pem;
    size_t pem_len;
};

static struct fx fixtures[] = {
    {.name = "root"},           {.name = "other"},     {.name = "oldroot"},
    {.name = "rsaroot"},        {.name = "inter"},     {.name = "inter_expired"},
    {.name = "interold"},       {.name = "noca"},      {.name = "nobc"},
    {.name = "nocertsign"},     {.name = "ekuclient"}, {.name = "sub"},
    {.name = "otherinter"},     {.name = "rsainter"},  {.name = "valid"},
    {.name = "expired"},        {.name = "notyet"},    {.name = "soon"},
    {.name = "selfsigned"},     {.name = "otherleaf"}, {.name = "wild"},
    {.name = "nosan"},          {.name = "rsa1024"},   {.name = "sha1"},
    {.name = "undernoca"},      {.name = "undernobc"}, {.name = "undernocertsign"},
    {.name = "underekuclient"}, {.name = "undersub"},  {.name = "clientonly"},
    {.name = "anyeku"},         {.name = "noeku"},     {.name = "underold"},
    {.name = "rsaleaf"},        {.name = "manybad"},   {.name = "inter_rekeyed"},
    {.name = "critext"},        {.name = "ec224"},
};

static struct val_store *store; /* root, oldroot, rsaroot; no cache */

static const char *
data_dir(void)
{
    const char *d = getenv("VAL_TEST_DATA");
    return d != NULL ? d : "test/unit/data/validate";
}

static char *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = malloc(1 << 16);
    size_t n = buf ? fread(buf, 1, (1 << 16) - 1, f) : 0;
    fclose(f);
    if (buf != NULL)
        buf[n] = '\0';
    *len = n;
    return buf;
}

static const struct fx *
fx(const char *name)
{
    for (size_t i = 0; i < CAT_ARRAY_LEN(fixtures); i++)
        if (strcmp(fixtures[i].name, name) == 0)
            return &fixtures[i];
    fail_msg("no fixture %s", name);
    return NULL;
}

static int
setup(void **state)
{
    (void)state;
    log_set_level(LOG_FAC_SSL, LOG_ERR);
    for (size_t i = 0; i < CAT_ARRAY_LEN(fixtures); i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s.pem", data_dir(), fixtures[i].name);
        struct fx *f = &fixtures[i];
        f->pem = slurp(path, &f->pem_len);
        if (f->pem == NULL) {
            fprintf(stderr, "validate_test: %s missing (run from the repository root)\n", path);
            return -1;
        }
        f->der = malloc(f->pem_len);
        size_t pos = 0;
        long l = val_pem_next(f->pem, f->pem_len, &pos, f->der, f->pem_len);
        if (l <= 0)
            return -1;
        f->len = (size_t)l;
    }
    const char *pems[] = {fx("root")->pem, fx("oldroot")->pem, fx("rsaroot")->pem};
    size_t lens[] = {fx("root")->pem_len, fx("oldroot")->pem_len, fx("rsaroot")->pem_len};
    struct val_store_opts o = {.pems = pems, .pem_lens = lens, .n_pems = 3};
    char err[256];
    store = val_store_new(&o, err, sizeof(err));
    if (store == NULL) {
        fprintf(stderr, "validate_test: %s\n", err);
        return -1;
    }
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    val_store_free(store);
    for (size_t i = 0; i < CAT_ARRAY_LEN(fixtures); i++) {
        free(fixtures[i].der);
        free(fixtures[i].pem);
    }
    return 0;
}

/* Checks the chain of fixture names (leaf first) against s at t. */
static int
check_at(const struct val_store *s, time_t t, struct val_result *r, const char *const *names,
         size_t n)
{
    const uint8_t *ders[VAL_MAX_CERTS + 4];
    size_t lens[VAL_MAX_CERTS + 4];
    for (size_t i = 0; i < n; i++) {
        ders[i] = fx(names[i])->der;
        lens[i] = fx(names[i])->len;
    }
    return val_check(s, ders, lens, n, t, r);
}

#define CHAIN(...) ((const char *const[]){__VA_ARGS__})
#define NCHAIN(...) (sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))
#define CHECK(r, ...) check_at(store, NOW, (r), CHAIN(__VA_ARGS__), NCHAIN(__VA_ARGS__))

static void
expect_errors(unsigned want, const char *const *names, size_t n)
{
    struct val_result r;
    assert_int_equal(check_at(store, NOW, &r, names, n), CAT_OK);
    if (r.errors != want) {
        char a[256], b[256];
        fail_msg("chain %s...: errors \"%s\", want \"%s\"", names[0],
                 val_errors_str(r.errors, a, sizeof(a)), val_errors_str(want, b, sizeof(b)));
    }
}

#define EXPECT(want, ...) expect_errors((want), CHAIN(__VA_ARGS__), NCHAIN(__VA_ARGS__))

/* ---- chains ------------------------------------------------------------------ */

static void
test_valid_chain_and_fields(void **state)
{
    (void)state;
    struct val_result r;
    assert_int_equal(CHECK(&r, "valid", "inter"), CAT_OK);
    assert_int_equal(r.errors, 0);
    assert_true(r.anchored);
    assert_false(r.cached);
    assert_int_equal(r.path_len, 3);
    assert_ptr_equal(r.path[0].der, fx("valid")->der);
    assert_int_equal(r.path[1].idx, 1);
    assert_ptr_equal(r.path[1].der, fx("inter")->der);
    assert_int_equal(r.path[2].idx, -1); /* the store's root */
    assert_int_equal(r.path[2].len, fx("root")->len);
    assert_memory_equal(r.path[2].der, fx("root")->der, fx("root")->len);
    assert_ptr_equal(r.issuer_der, fx("inter")->der);
    assert_int_equal(r.issuer_len, fx("inter")->len);
    assert_int_equal(r.issuer_idx, 1);
    uint8_t sha[32];
    wc_Sha256Hash(fx("valid")->der, (word32)fx("valid")->len, sha);
    assert_memory_equal(r.leaf_sha256, sha, 32);
    assert_string_equal(r.subject_cn, "valid.example.test");
    assert_string_equal(r.issuer_dn, "/CN=Catena Test Intermediate/O=Catena Tests");
    assert_string_equal(r.dns_name, "www.example.test");
    assert_string_equal(r.ocsp_url, "http://ocsp.example.test/");
    /* The ldap:// distribution point comes first: skipped. */
    assert_string_equal(r.crl_url, "http://crl.example.test/inter.crl");
    assert_string_equal(r.aia_url, "");
    assert_int_equal(r.not_before, T2020);
    assert_int_equal(r.not_after, T2120);
}

static void
test_dates(void **state)
{
    (void)state;
    EXPECT(VAL_E_EXPIRED, "expired", "inter");
    EXPECT(VAL_E_NOT_YET_VALID, "notyet", "inter");
    /* notAfter is inclusive (RFC 5280 4.1.2.5). */
    struct val_result r;
    const char *const soon[] = {"soon", "inter"};
    assert_int_equal(check_at(store, NOW + 1800, &r, soon, 2), CAT_OK);
    assert_int_equal(r.errors, 0);
    assert_int_equal(check_at(store, NOW + 1801, &r, soon, 2), CAT_OK);
    assert_int_equal(r.errors, VAL_E_EXPIRED);
    /* Before the intermediate existed, both are not yet valid: one bit. */
    assert_int_equal(check_at(store, T2020 - 1, &r, soon, 2), CAT_OK);
    assert_int_equal(r.errors, VAL_E_NOT_YET_VALID);
}

static void
test_untrusted(void **state)
{
    (void)state;
    struct val_result r;
    assert_int_equal(CHECK(&r, "selfsigned"), CAT_OK);
    assert_int_equal(r.errors, VAL_E_UNTRUSTED); /* self-issued: nothing is missing */
    assert_false(r.anchored);
    assert_int_equal(r.path_len, 1);
    assert_null(r.issuer_der);
    assert_int_equal(r.issuer_idx, -1);

    /* Another root, sent or not: the path is built as far as it goes. */
    assert_int_equal(CHECK(&r, "otherleaf", "otherinter", "other"), CAT_OK);
    assert_int_equal(r.errors, VAL_E_UNTRUSTED);
    assert_int_equal(r.path_len, 3);
    assert_int_equal(r.path[2].idx, 2);
    EXPECT(VAL_E_UNTRUSTED, "otherleaf", "otherinter");
}

static void
test_every_error_reported(void **state)
{
    (void)state;
    /* RSA-1024, SHA-1, expired, unknown root: all of it. */
    EXPECT(VAL_E_UNTRUSTED | VAL_E_EXPIRED | VAL_E_WEAK_KEY | VAL_E_WEAK_SIGNATURE, "manybad",
           "otherinter");
    EXPECT(VAL_E_UNTRUSTED | VAL_E_EXPIRED | VAL_E_WEAK_KEY | VAL_E_WEAK_SIGNATURE, "manybad",
           "otherinter", "other");
}

static void
test_weak(void **state)
{
    (void)state;
    EXPECT(VAL_E_WEAK_KEY, "rsa1024", "inter");
    EXPECT(VAL_E_WEAK_KEY, "ec224", "inter");
    EXPECT(VAL_E_WEAK_SIGNATURE, "sha1", "inter");
    EXPECT(0, "rsaleaf", "rsainter");
}

static void
test_bad_ca(void **state)
{
    (void)state;
    EXPECT(VAL_E_BAD_CA, "undernoca", "noca");
    EXPECT(VAL_E_BAD_CA, "undernobc", "nobc");
    EXPECT(VAL_E_BAD_CA, "undernocertsign", "nocertsign");
    /* inter says pathlen:0 and sub is a CA below it. */
    EXPECT(VAL_E_BAD_CA, "undersub", "sub", "inter");
}

static void
test_eku(void **state)
{
    (void)state;
    EXPECT(VAL_E_BAD_EKU, "clientonly", "inter");
    EXPECT(VAL_E_BAD_EKU, "anyeku", "inter");
    EXPECT(0, "noeku", "inter"); /* no EKU extension: any use */
    EXPECT(VAL_E_BAD_EKU, "underekuclient", "ekuclient");
}

static void
test_missing_intermediate(void **state)
{
    (void)state;
    struct val_result r;
    const uint8_t *ders[3] = {fx("valid")->der};
    size_t lens[3] = {fx("valid")->len};
    assert_int_equal(val_check(store, ders, lens, 1, NOW, &r), CAT_OK);
    assert_int_equal(r.errors, VAL_E_UNTRUSTED | VAL_E_MISSING_INTERMEDIATE);
    assert_string_equal(r.aia_url, "http://ca.example.test/inter.der"); /* not the ldap one */
    /* The caller fetched it: the same arrays, extended. */
    ders[1] = fx("inter")->der;
    lens[1] = fx("inter")->len;
    assert_int_equal(val_check(store, ders, lens, 2, NOW, &r), CAT_OK);
    assert_int_equal(r.errors, 0);
    assert_string_equal(r.aia_url, "");
    /* Without an AIA URL it is merely untrusted. */
    EXPECT(VAL_E_UNTRUSTED, "undersub");
    /* A certificate with the issuer's name but another key (the leaf's AKID
     * says so) is not the issuer: still missing. */
    assert_int_equal(CHECK(&r, "valid", "inter_rekeyed"), CAT_OK);
    assert_int_equal(r.errors, VAL_E_UNTRUSTED | VAL_E_MISSING_INTERMEDIATE);
    assert_string_equal(r.aia_url, "http://ca.example.test/inter.der");
    assert_int_equal(CHECK(&r, "valid", "inter_rekeyed", "inter"), CAT_OK);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.path[1].idx, 2);
}

static void
test_broken_signature(void **state)
{
    (void)state;
    size_t len = fx("valid")->len;
    uint8_t *bad = malloc(len);
    memcpy(bad, fx("valid")->der, len);
    bad[len - 1] ^= 0x01; /* the last byte of the ECDSA s value */
    const uint8_t *ders[] = {bad, fx("inter")->der};
    size_t lens[] = {len, fx("inter")->len};
    struct val_result r;
    assert_int_equal(val_check(store, ders, lens, 2, NOW, &r), CAT_OK);
    /* The issuer was there and did not sign it: not a missing intermediate. */
    assert_int_equal(r.errors, VAL_E_UNTRUSTED);
    assert_int_equal(r.path_len, 1);
    free(bad);
}

static void
test_unknown_critical_extension(void **state)
{
    (void)state;
    struct val_result r;
    assert_int_equal(CHECK(&r, "critext", "inter"), CAT_OK);
    assert_int_equal(r.errors, VAL_E_UNTRUSTED);
    assert_false(r.leaf_malformed); /* its fields are still reported */
    assert_string_equal(r.subject_cn, "critext.example.test");
    assert_string_equal(r.dns_name, "critext.example.test");
}

static void
test_order_and_extras(void **state)
{
    (void)state;
    struct val_result r;
    assert_int_equal(CHECK(&r, "valid", "otherleaf", "root", "sha1", "inter", "valid", "inter"),
                     CAT_OK);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.path_len, 3);
    assert_int_equal(r.path[1].idx, 4);
    assert_int_equal(r.path[2].idx, -1); /* the store's root, though the server sent it */
    assert_ptr_equal(r.issuer_der, fx("inter")->der);
}

static void
test_best_path(void **state)
{
    (void)state;
    struct val_result r;
    /* The expired copy of the intermediate comes first; the valid one wins. */
    assert_int_equal(CHECK(&r, "valid", "inter_expired", "inter"), CAT_OK);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.path[1].idx, 2);
    assert_int_equal(CHECK(&r, "valid", "inter_expired"), CAT_OK);
    assert_int_equal(r.errors, VAL_E_EXPIRED);
    assert_int_equal(r.path[1].idx, 1);
}

static void
test_anchor_rules(void **state)
{
    (void)state;
    /* oldroot expired in 2025: anchors are names and keys, not judged on dates. */
    EXPECT(0, "underold", "interold");

    /* A self-signed server the store trusts as such is its own path. */
    const char *pems[] = {fx("selfsigned")->pem};
    size_t lens[] = {fx("selfsigned")->pem_len};
    struct val_store_opts o = {.pems = pems, .pem_lens = lens, .n_pems = 1};
    char err[256];
    struct val_store *s = val_store_new(&o, err, sizeof(err));
    assert_non_null(s);
    struct val_result r;
    assert_int_equal(check_at(s, NOW, &r, CHAIN("selfsigned"), 1), CAT_OK);
    assert_int_equal(r.errors, 0);
    assert_true(r.anchored);
    assert_int_equal(r.path_len, 1);
    /* Its dates still count. */
    assert_int_equal(check_at(s, T2020 - 1, &r, CHAIN("selfsigned"), 1), CAT_OK);
    assert_int_equal(r.errors, VAL_E_NOT_YET_VALID);
    val_store_free(s);
}

static void
test_bad_input(void **state)
{
    (void)state;
    struct val_result r;
    const uint8_t junk[] = {0x30, 0x03, 0x02, 0x01, 0x00};
    const uint8_t *ders[] = {junk, NULL};
    size_t lens[] = {sizeof(junk), 0};
    assert_int_equal(val_check(store, ders, lens, 0, NOW, &r), CAT_ERR);
    assert_int_equal(val_check(store, ders, lens, 1, NOW, &r), CAT_OK);
    assert_true(r.leaf_malformed);
    assert_int_equal(r.errors, VAL_E_UNTRUSTED);
    uint8_t sha[32];
    wc_Sha256Hash(junk, sizeof(junk), sha);
    assert_memory_equal(r.leaf_sha256, sha, 32);
    /* A NULL or empty extra certificate is skipped. */
    const uint8_t *d2[] = {fx("valid")->der, NULL, junk, fx("inter")->der};
    size_t l2[] = {fx("valid")->len, 0, sizeof(junk), fx("inter")->len};
    assert_int_equal(val_check(store, d2, l2, 4, NOW, &r), CAT_OK);
    assert_int_equal(r.errors, 0);
    /* More than VAL_MAX_CERTS: the rest is ignored. */
    const uint8_t *many[VAL_MAX_CERTS + 2];
    size_t ml[VAL_MAX_CERTS + 2];
    many[0] = fx("valid")->der;
    ml[0] = fx("valid")->len;
    for (size_t i = 1; i < VAL_MAX_CERTS + 2; i++) {
        many[i] = i == VAL_MAX_CERTS ? fx("inter")->der : fx("sha1")->der;
        ml[i] = i == VAL_MAX_CERTS ? fx("inter")->len : fx("sha1")->len;
    }
    assert_int_equal(val_check(store, many, ml, VAL_MAX_CERTS + 2, NOW, &r), CAT_OK);
    assert_int_equal(r.errors, VAL_E_UNTRUSTED | VAL_E_MISSING_INTERMEDIATE);
}

/* ---- path checks directly ---------------------------------------------------- */

static void
test_pathlen_counts_non_self_issued(void **state)
{
    (void)state;
    struct val_cert c[4];
    memset(c, 0, sizeof(c));
    for (int i = 0; i < 4; i++) {
        c[i].not_before = T2020;
        c[i].not_after = T2120;
        c[i].key_oid = ECDSAk;
        c[i].curve_oid = ECC_SECP256R1_OID;
        c[i].sig_oid = CTC_SHA256wECDSA;
        c[i].bc_set = c[i].is_ca = i > 0;
    }
    c[3].path_len_set = true;
    c[3].path_len = 0;
    struct val_node p[4] = {{&c[0], 0}, {&c[1], 1}, {&c[2], 2}, {&c[3], -1}};
    assert_int_equal(val_path_errors(p, 4, true, NOW), VAL_E_BAD_CA);
    c[1].self_issued = c[2].self_issued = true; /* key rollover certificates */
    assert_int_equal(val_path_errors(p, 4, true, NOW), 0);
    c[1].self_issued = false;
    c[3].path_len = 1;
    assert_int_equal(val_path_errors(p, 4, true, NOW), 0);
    /* An anchor without basicConstraints (v1 root) may issue; one saying CA:FALSE may not. */
    c[3].bc_set = c[3].is_ca = false;
    assert_int_equal(val_path_errors(p, 4, true, NOW), 0);
    c[3].bc_set = true;
    assert_int_equal(val_path_errors(p, 4, true, NOW), VAL_E_BAD_CA);
    c[3].bc_set = c[3].is_ca = true;
    /* The anchor's own dates, key and signature are not judged. */
    c[3].not_after = T2020 + 1;
    c[3].key_oid = RSAk;
    c[3].key_bits = 1024;
    c[3].sig_oid = CTC_MD5wRSA;
    assert_int_equal(val_path_errors(p, 4, true, NOW), 0);
    /* Unanchored, the same last certificate counts (but not its self-signature). */
    c[3].self_issued = true;
    assert_int_equal(val_path_errors(p, 4, false, NOW),
                     VAL_E_UNTRUSTED | VAL_E_EXPIRED | VAL_E_WEAK_KEY);
    c[3].self_issued = false;
    assert_int_equal(val_path_errors(p, 4, false, NOW),
                     VAL_E_UNTRUSTED | VAL_E_EXPIRED | VAL_E_WEAK_KEY | VAL_E_WEAK_SIGNATURE);
}

/* ---- hostname ------------------------------------------------------------------- */

struct host_case {
    const char *cert;
    const char *host;
    int want;
};

static void
test_hostname_table(void **state)
{
    (void)state;
    static const struct host_case cases[] = {
        {"valid", "www.example.test", CAT_OK},
        {"valid", "WWW.Example.TEST", CAT_OK},
        {"valid", "www.example.test.", CAT_OK}, /* trailing dot ignored */
        {"valid", "example.test", CAT_OK},
        {"valid", "upper.example.test", CAT_OK}, /* SAN in upper case */
        {"valid", "other.example.test", CAT_DECLINED},
        {"valid", "valid.example.test", CAT_DECLINED}, /* the CN is never used */
        {"valid", "www.example.test..", CAT_DECLINED},
        {"valid", "", CAT_DECLINED},
        {"valid", ".", CAT_DECLINED},
        {"valid", "*.example.test", CAT_DECLINED},
        {"valid", "test", CAT_DECLINED},
        {"valid", "127.0.0.1", CAT_OK},
        {"valid", "127.0.0.2", CAT_DECLINED},
        {"valid", "::1", CAT_OK},
        {"valid", "[::1]", CAT_OK},
        {"valid", "0:0:0:0:0:0:0:1", CAT_OK},
        {"valid", "::2", CAT_DECLINED},
        {"valid", "[127.0.0.1]", CAT_DECLINED},
        {"wild", "a.wild.example.test", CAT_OK},
        {"wild", "A-1.WILD.example.test.", CAT_OK},
        {"wild", "a.b.wild.example.test", CAT_DECLINED}, /* one label only */
        {"wild", "wild.example.test", CAT_DECLINED},     /* not the bare domain */
        {"wild", ".wild.example.test", CAT_DECLINED},
        {"wild", "foo.example.test", CAT_DECLINED}, /* "f*o": no partial wildcards */
        {"wild", "fxo.example.test", CAT_DECLINED},
        {"wild", "f*o.example.test", CAT_DECLINED},
        {"wild", "x.test", CAT_DECLINED},              /* "*.test": too wide */
        {"wild", "a.x.example.test", CAT_DECLINED},    /* "a.*.example.test" */
        {"wild", "anything", CAT_DECLINED},            /* "*" */
        {"nosan", "nosan.example.test", CAT_DECLINED}, /* no SAN: never matches */
        {"selfsigned", "selfsigned.example.test", CAT_OK},
    };
    for (size_t i = 0; i < CAT_ARRAY_LEN(cases); i++) {
        const struct fx *f = fx(cases[i].cert);
        int got = val_check_hostname(f->der, f->len, cases[i].host);
        if (got != cases[i].want)
            fail_msg("case %zu: %s vs \"%s\": %d, want %d", i, cases[i].cert, cases[i].host, got,
                     cases[i].want);
    }
    const uint8_t junk[] = {0x30, 0x00};
    assert_int_equal(val_check_hostname(junk, sizeof(junk), "a.example"), CAT_ERR);
}

static void
test_dns_match_rules(void **state)
{
    (void)state;
    static const struct {
        const char *pat, *host;
        bool want;
    } t[] = {
        {"*.example.com", "a.example.com", true},
        {"*.example.com", "A.EXAMPLE.COM", true},
        {"*.example.com", "a.b.example.com", false},
        {"*.example.com", "example.com", false},
        {"*.example.com", ".example.com", false},
        {"*.com", "a.com", false},
        {"*", "a", false},
        {"*.", "a.", false},
        {"*.a..com", "x.a..com", false},
        {"a*.example.com", "ab.example.com", false},
        {"*a.example.com", "ba.example.com", false},
        {"**.example.com", "a.example.com", false},
        {"*.*.com", "a.b.com", false},
        {"www.example.com", "www.example.com", true},
        {"www.example.com", "www.example.co", false},
        {"www.example.co", "www.example.com", false},
        {"", "", false},
        {"*.co.uk", "a.co.uk", true}, /* no PSL */
    };
    for (size_t i = 0; i < CAT_ARRAY_LEN(t); i++) {
        bool got = val_dns_match(t[i].pat, strlen(t[i].pat), t[i].host, strlen(t[i].host));
        if (got != t[i].want)
            fail_msg("\"%s\" vs \"%s\": %d", t[i].pat, t[i].host, got);
    }
    /* A NUL inside a SAN never matches its prefix. */
    assert_false(val_dns_match("a.example.com\0.evil", 19, "a.example.com", 13));
}

/* ---- names ------------------------------------------------------------------------ */

static void
test_error_names(void **state)
{
    (void)state;
    char buf[256];
    assert_string_equal(val_errors_str(0, buf, sizeof(buf)), "");
    assert_string_equal(val_errors_str(VAL_E_ALL, buf, sizeof(buf)),
                        "untrusted_issuer missing_intermediate expired not_yet_valid weak_key "
                        "weak_signature bad_ca bad_eku hostname_mismatch revoked "
                        "revocation_unknown protocol_insecure");
    assert_string_equal(val_errors_str(VAL_E_EXPIRED | VAL_E_UNTRUSTED, buf, sizeof(buf)),
                        "untrusted_issuer expired");
    /* Names that do not fit are dropped whole; later short ones may still fit. */
    assert_string_equal(val_errors_str(VAL_E_UNTRUSTED | VAL_E_EXPIRED, buf, 10), "expired");
    assert_string_equal(val_errors_str(VAL_E_UNTRUSTED, buf, 3), "");
    assert_int_equal(val_error_bit("bad_eku", 7), VAL_E_BAD_EKU);
    assert_int_equal(val_error_bit("revoked", 7), VAL_E_REVOKED);
    assert_int_equal(val_error_bit("hostname_mismatch", 17), VAL_E_HOSTNAME);
    assert_int_equal(val_error_bit("expire", 6), 0);
    assert_int_equal(val_error_bit("expiredx", 8), 0);
    /* Policy names: groups of errors. */
    assert_int_equal(val_policy_bits("expiration", 10), VAL_E_EXPIRED | VAL_E_NOT_YET_VALID);
    assert_int_equal(val_policy_bits("untrusted_issuer", 16),
                     VAL_E_UNTRUSTED | VAL_E_MISSING_INTERMEDIATE);
    assert_int_equal(val_policy_bits("revocation", 10),
                     VAL_E_REVOKED | VAL_E_REVOCATION_UNKNOWN);
    assert_int_equal(val_policy_bits("all", 3), VAL_E_ALL);
    assert_int_equal(val_policy_bits("weak_key", 8), VAL_E_WEAK_KEY);
    assert_int_equal(val_policy_bits("nonsense", 8), 0);
    for (unsigned b = 0; b < 12; b++) {
        val_errors_str(1u << b, buf, sizeof(buf));
        assert_int_equal(val_error_bit(buf, strlen(buf)), 1u << b);
    }
}

/* ---- cache ------------------------------------------------------------------------- */

static struct val_store *
cache_store(size_t entries, unsigned ttl)
{
    const char *pems[] = {fx("root")->pem};
    size_t lens[] = {fx("root")->pem_len};
    struct val_store_opts o = {
        .pems = pems, .pem_lens = lens, .n_pems = 1, .cache_entries = entries, .cache_ttl = ttl};
    char err[256];
    struct val_store *s = val_store_new(&o, err, sizeof(err));
    assert_non_null(s);
    return s;
}

static void
test_cache_hit_and_repointing(void **state)
{
    (void)state;
    struct val_store *s = cache_store(8, 3600);
    struct val_result r;
    assert_int_equal(check_at(s, NOW, &r, CHAIN("valid", "inter"), 2), CAT_OK);
    assert_false(r.cached);
    /* The same bytes in other buffers: a hit that points at the new ones. */
    size_t l0 = fx("valid")->len, l1 = fx("inter")->len;
    uint8_t *c0 = malloc(l0), *c1 = malloc(l1);
    memcpy(c0, fx("valid")->der, l0);
    memcpy(c1, fx("inter")->der, l1);
    const uint8_t *ders[] = {c0, c1};
    size_t lens[] = {l0, l1};
    assert_int_equal(val_check(s, ders, lens, 2, NOW + 10, &r), CAT_OK);
    assert_true(r.cached);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.path_len, 3);
    assert_ptr_equal(r.path[0].der, c0);
    assert_ptr_equal(r.path[1].der, c1);
    assert_ptr_equal(r.issuer_der, c1);
    assert_string_equal(r.subject_cn, "valid.example.test");
    /* A different chain (one more byte of order) is another key. */
    const uint8_t *rev[] = {c0, c1, c1};
    size_t rlen[] = {l0, l1, l1};
    assert_int_equal(val_check(s, rev, rlen, 3, NOW, &r), CAT_OK);
    assert_false(r.cached);
    struct val_stats st;
    val_store_stats(s, &st);
    assert_int_equal(st.cache_hits, 1);
    assert_int_equal(st.cache_misses, 2);
    assert_int_equal(st.cache_entries, 2);
    assert_int_equal(st.anchors, 1);
    free(c0);
    free(c1);
    val_store_free(s);
}

static void
test_cache_bound(void **state)
{
    (void)state;
    struct val_store *s = cache_store(2, 3600);
    struct val_result r;
    assert_int_equal(check_at(s, NOW, &r, CHAIN("valid", "inter"), 2), CAT_OK);
    assert_int_equal(check_at(s, NOW, &r, CHAIN("expired", "inter"), 2), CAT_OK);
    assert_int_equal(check_at(s, NOW, &r, CHAIN("valid", "inter"), 2), CAT_OK); /* refresh */
    assert_true(r.cached);
    assert_int_equal(check_at(s, NOW, &r, CHAIN("sha1", "inter"), 2), CAT_OK); /* evicts expired */
    struct val_stats st;
    val_store_stats(s, &st);
    assert_int_equal(st.cache_entries, 2);
    assert_int_equal(check_at(s, NOW, &r, CHAIN("valid", "inter"), 2), CAT_OK);
    assert_true(r.cached);
    assert_int_equal(check_at(s, NOW, &r, CHAIN("sha1", "inter"), 2), CAT_OK);
    assert_true(r.cached);
    assert_int_equal(r.errors, VAL_E_WEAK_SIGNATURE);
    assert_int_equal(check_at(s, NOW, &r, CHAIN("expired", "inter"), 2), CAT_OK);
    assert_false(r.cached);
    assert_int_equal(r.errors, VAL_E_EXPIRED);
    val_store_free(s);
}

static void
test_cache_ttl(void **state)
{
    (void)state;
    struct val_store *s = cache_store(8, 600);
    struct val_result r;
    const char *const ch[] = {"valid", "inter"};
    assert_int_equal(check_at(s, NOW, &r, ch, 2), CAT_OK);
    assert_int_equal(check_at(s, NOW + 599, &r, ch, 2), CAT_OK);
    assert_true(r.cached);
    assert_int_equal(check_at(s, NOW + 600, &r, ch, 2), CAT_OK);
    assert_false(r.cached);
    /* A clock that went back does not trust an entry from its future. */
    assert_int_equal(check_at(s, NOW - 1, &r, ch, 2), CAT_OK);
    assert_false(r.cached);

    /* Never past a notAfter: "soon" expires 1800 s after NOW; ttl is 3600. */
    struct val_store *s2 = cache_store(8, 3600);
    const char *const sc[] = {"soon", "inter"};
    assert_int_equal(check_at(s2, NOW, &r, sc, 2), CAT_OK);
    assert_int_equal(r.errors, 0);
    assert_int_equal(check_at(s2, NOW + 1800, &r, sc, 2), CAT_OK);
    assert_true(r.cached);
    assert_int_equal(r.errors, 0);
    assert_int_equal(check_at(s2, NOW + 1801, &r, sc, 2), CAT_OK);
    assert_false(r.cached);
    assert_int_equal(r.errors, VAL_E_EXPIRED);
    /* Nor past a notBefore: the same for a certificate about to become valid. */
    assert_int_equal(check_at(s2, T2020 - 10, &r, sc, 2), CAT_OK);
    assert_int_equal(r.errors, VAL_E_NOT_YET_VALID);
    assert_false(r.cached);
    assert_int_equal(check_at(s2, T2020, &r, sc, 2), CAT_OK);
    assert_false(r.cached);
    assert_int_equal(r.errors, 0);
    val_store_free(s);
    val_store_free(s2);
}

struct thr_arg {
    struct val_store *s;
    int bad;
};

static void *
thr_main(void *p)
{
    struct thr_arg *a = p;
    static const char *const chains[3][2] = {
        {"valid", "inter"}, {"expired", "inter"}, {"sha1", "inter"}};
    static const unsigned want[3] = {0, VAL_E_EXPIRED, VAL_E_WEAK_SIGNATURE};
    for (int i = 0; i < 60; i++) {
        struct val_result r;
        int k = i % 3;
        if (check_at(a->s, NOW + i, &r, chains[k], 2) != CAT_OK || r.errors != want[k])
            a->bad++;
    }
    return NULL;
}

static void
test_cache_threads(void **state)
{
    (void)state;
    struct val_store *s = cache_store(2, 3600); /* small: evictions under contention */
    pthread_t t[4];
    struct thr_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (struct thr_arg){s, 0};
        assert_int_equal(pthread_create(&t[i], NULL, thr_main, &a[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(a[i].bad, 0);
    }
    struct val_stats st;
    val_store_stats(s, &st);
    assert_int_equal(st.cache_hits + st.cache_misses, 240);
    assert_true(st.cache_entries <= 2);
    val_store_free(s);
}

/* ---- store ---------------------------------------------------------------------- */

static void
test_store_sources(void **state)
{
    (void)state;
    char err[256];
    char p_root[512], p_script[512];
    snprintf(p_root, sizeof(p_root), "%s/root.pem", data_dir());
    snprintf(p_script, sizeof(p_script), "%s/gen.sh", data_dir());

    const char *missing[] = {"/nonexistent/catena-ca.pem"};
    struct val_store_opts o = {.files = missing, .n_files = 1};
    assert_null(val_store_new(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/catena-ca.pem"));

    const char *script[] = {p_script};
    o.files = script;
    assert_null(val_store_new(&o, err, sizeof(err)));
    assert_non_null(strstr(err, "no usable CA certificate"));

    /* The same root from a file and twice inline: one anchor. */
    const char *files[] = {p_root};
    const char *pems[] = {fx("root")->pem, fx("root")->pem};
    size_t lens[] = {fx("root")->pem_len, fx("root")->pem_len};
    struct val_store_opts o2 = {
        .files = files, .n_files = 1, .pems = pems, .pem_lens = lens, .n_pems = 2};
    struct val_store *s = val_store_new(&o2, err, sizeof(err));
    assert_non_null(s);
    struct val_stats st;
    val_store_stats(s, &st);
    assert_int_equal(st.anchors, 1);
    val_store_free(s);

    const char *nocert = "just text\n";
    size_t nl = strlen(nocert);
    struct val_store_opts o3 = {.pems = &nocert, .pem_lens = &nl, .n_pems = 1};
    assert_null(val_store_new(&o3, err, sizeof(err)));

    /* A missing system bundle is not an error. */
    struct val_store_opts o4 = {.use_system = true, .system_file = "/nonexistent/bundle.crt"};
    s = val_store_new(&o4, err, sizeof(err));
    assert_non_null(s);
    val_store_stats(s, &st);
    assert_int_equal(st.anchors, 0);
    val_store_free(s);
}

static void
test_store_system_bundle(void **state)
{
    (void)state;
    if (access(VAL_SYSTEM_CAS, R_OK) != 0)
        skip();
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    struct val_store_opts o = {.use_system = true};
    char err[256];
    struct val_store *s = val_store_new(&o, err, sizeof(err));
    clock_gettime(CLOCK_MONOTONIC, &b);
    assert_non_null(s);
    struct val_stats st;
    val_store_stats(s, &st);
    assert_true(st.anchors > 50);
    print_message("system bundle: %zu anchors, %zu skipped, %.1f ms\n", st.anchors, st.skipped,
                  (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6);
    /* Our test root is not in it; the intermediate names where to get it. */
    struct val_result r;
    assert_int_equal(check_at(s, NOW, &r, CHAIN("valid", "inter"), 2), CAT_OK);
    assert_int_equal(r.errors, VAL_E_UNTRUSTED | VAL_E_MISSING_INTERMEDIATE);
    assert_string_equal(r.aia_url, "http://ca.example.test/root.der");
    assert_int_equal(r.path_len, 2);
    /* Fetched, it is a self-signed root nobody trusts: untrusted, nothing missing. */
    assert_int_equal(check_at(s, NOW, &r, CHAIN("valid", "inter", "root"), 3), CAT_OK);
    assert_int_equal(r.errors, VAL_E_UNTRUSTED);
    assert_int_equal(r.path_len, 3);
    val_store_free(s);
}

/* ---- helpers ------------------------------------------------------------------------ */

static void
test_time_parse(void **state)
{
    (void)state;
    static const struct {
        const char *tlv;
        size_t len;
        int rc;
        time_t t;
    } t[] = {
        {"\x17\x0d"
         "200101000000Z",
         15, CAT_OK, T2020},
        {"\x17\x0d"
         "491231235959Z",
         15, CAT_OK, 2524607999},
        {"\x17\x0d"
         "500101000000Z",
         15, CAT_OK, -631152000},
        {"\x18\x0f"
         "21200101000000Z",
         17, CAT_OK, T2120},
        {"\x18\x0f"
         "20000229000000Z",
         17, CAT_OK, 951782400},
        {"\x18\x0f"
         "21000229000000Z",
         17, CAT_ERR, 0}, /* 2100 is not a leap year */
        {"\x17\x0d"
         "200230000000Z",
         15, CAT_ERR, 0},
        {"\x17\x0d"
         "201301000000Z",
         15, CAT_ERR, 0},
        {"\x17\x0d"
         "200101240000Z",
         15, CAT_ERR, 0},
        {"\x17\x0d"
         "20010100000+Z",
         15, CAT_ERR, 0},
        {"\x17\x0d"
         "2001010000000",
         15, CAT_ERR, 0}, /* no Z */
        {"\x17\x0b"
         "2001010000Z",
         13, CAT_ERR, 0}, /* no seconds */
        {"\x18\x0d"
         "200101000000Z",
         15, CAT_ERR, 0}, /* wrong length for the tag */
        {"\x17\x0f"
         "200101000000Z",
         15, CAT_ERR, 0}, /* length past the end */
        {"\x04\x0d"
         "200101000000Z",
         15, CAT_ERR, 0},
    };
    for (size_t i = 0; i < CAT_ARRAY_LEN(t); i++) {
        time_t got = 0;
        int rc = val_time_parse((const uint8_t *)t[i].tlv, t[i].len, &got);
        if (rc != t[i].rc || (rc == CAT_OK && got != t[i].t))
            fail_msg("case %zu: rc %d t %lld", i, rc, (long long)got);
    }
}

static void
test_text_copy(void **state)
{
    (void)state;
    char out[16];
    val_text_copy(out, sizeof(out), (const uint8_t *)"a<b>\x01\n\x7f", 7);
    assert_string_equal(out, "a<b>???");
    val_text_copy(out, sizeof(out), (const uint8_t *)"caf\xc3\xa9 \xe2\x82\xac", 9);
    assert_string_equal(out, "caf\xc3\xa9 \xe2\x82\xac");
    val_text_copy(out, sizeof(out), (const uint8_t *)"\xc3(\xc0\xaf\xed\xa0\x80\xc2\x85", 9);
    assert_string_equal(out, "?(???????"); /* invalid, overlong, surrogate, C1 */
    val_text_copy(out, 6, (const uint8_t *)"abcd\xc3\xa9", 6); /* never split a character */
    assert_string_equal(out, "abcd");
    val_text_copy(out, 1, (const uint8_t *)"abc", 3);
    assert_string_equal(out, "");
}

static void
test_pem_split(void **state)
{
    (void)state;
    /* A TRUSTED CERTIFICATE (OpenSSL's trust settings after the DER), junk
     * and a damaged block between two good ones. */
    const struct fx *root = fx("root");
    size_t dl = root->len + 4;
    uint8_t *aux = malloc(dl);
    memcpy(aux, root->der, root->len);
    memcpy(aux + root->len, "\x30\x02\x05\x00", 4);
    word32 b64l = (word32)(dl * 2 + 64);
    byte *b64 = malloc(b64l);
    assert_int_equal(Base64_Encode(aux, (word32)dl, b64, &b64l), 0);
    size_t cap = b64l + root->pem_len + 512;
    char *pem = malloc(cap);
    int n = snprintf(pem, cap,
                     "junk\n-----BEGIN TRUSTED CERTIFICATE-----\n%.*s-----END TRUSTED "
                     "CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\n!!!!\n-----END "
                     "CERTIFICATE-----\n%s",
                     (int)b64l, (const char *)b64, root->pem);
    uint8_t der[8192];
    size_t pos = 0;
    assert_int_equal(val_pem_next(pem, (size_t)n, &pos, der, sizeof(der)), (long)root->len);
    assert_memory_equal(der, root->der, root->len);
    assert_int_equal(val_pem_next(pem, (size_t)n, &pos, der, sizeof(der)), CAT_ERR);
    assert_int_equal(val_pem_next(pem, (size_t)n, &pos, der, sizeof(der)), (long)root->len);
    assert_int_equal(val_pem_next(pem, (size_t)n, &pos, der, sizeof(der)), 0);
    /* An unterminated block ends the scan. */
    pos = 0;
    const char *cut = "-----BEGIN CERTIFICATE-----\nMIIB";
    assert_int_equal(val_pem_next(cut, strlen(cut), &pos, der, sizeof(der)), CAT_ERR);
    assert_int_equal(val_pem_next(cut, strlen(cut), &pos, der, sizeof(der)), 0);
    free(aux);
    free(b64);
    free(pem);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_chain_and_fields),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_untrusted),
        cmocka_unit_test(test_every_error_reported),
        cmocka_unit_test(test_weak),
        cmocka_unit_test(test_bad_ca),
        cmocka_unit_test(test_eku),
        cmocka_unit_test(test_missing_intermediate),
        cmocka_unit_test(test_broken_signature),
        cmocka_unit_test(test_unknown_critical_extension),
        cmocka_unit_test(test_order_and_extras),
        cmocka_unit_test(test_best_path),
        cmocka_unit_test(test_anchor_rules),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_pathlen_counts_non_self_issued),
        cmocka_unit_test(test_hostname_table),
        cmocka_unit_test(test_dns_match_rules),
        cmocka_unit_test(test_error_names),
        cmocka_unit_test(test_cache_hit_and_repointing),
        cmocka_unit_test(test_cache_bound),
        cmocka_unit_test(test_cache_ttl),
        cmocka_unit_test(test_cache_threads),
        cmocka_unit_test(test_store_sources),
        cmocka_unit_test(test_store_system_bundle),
        cmocka_unit_test(test_time_parse),
        cmocka_unit_test(test_text_copy),
        cmocka_unit_test(test_pem_split),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
