/*
 * Unit tests for core/auth: users-file loading (every refusal with its exact
 * message), good and bad passwords for each accepted hash type (hashes made
 * here with crypt_gensalt_rn + crypt_rn), strict Basic parsing, the failure
 * limiter (blocks, recovers, per client and per IPv6 /64) and the success
 * cache (hit without crypt, expiry, LRU bound), all with an injected clock.
 * Includes core/auth.c to count crypt calls and reach the cache directly.
 */
#include "core/auth.c"

#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

static char tmpdir[64];
static char err[1024];
static char users_path[128];

static const char *
tpath(const char *rel)
{
    static char p[4][192];
    static int i;

    i = (i + 1) % 4;
    snprintf(p[i], sizeof(p[i]), "%s/%s", tmpdir, rel);
    return p[i];
}

static void
put_n(const char *rel, const char *text, size_t n)
{
    FILE *f = fopen(tpath(rel), "w");

    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, n, f), n);
    fclose(f);
}

static void
put(const char *rel, const char *text)
{
    put_n(rel, text, strlen(text));
}

/* Cheap settings where the scheme allows it: the tests check logic, not cost. */
static void
mkhash(const char *prefix, unsigned long count, const char *pw, char *out, size_t cap)
{
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data *cd = calloc(1, sizeof(*cd));

    assert_non_null(cd);
    assert_non_null(crypt_gensalt_rn(prefix, count, NULL, 0, salt, sizeof(salt)));
    const char *h = crypt_rn(pw, salt, cd, (int)sizeof(*cd));
    assert_non_null(h);
    assert_true(h[0] == '$');
    assert_true(strlen(h) < cap);
    strcpy(out, h);
    free(cd);
}

static char H_Y[256], H_6[256], H_5[256], H_2B[256], H_2Y[256], H_1[256];

static int
setup(void **state)
{
    const char *t = getenv("TMPDIR");
    char text[2048];

    snprintf(tmpdir, sizeof(tmpdir), "%s/auth_test.XXXXXX", t && strlen(t) < 40 ? t : "/tmp");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    mkhash("$y$", 1, "yes-pw", H_Y, sizeof(H_Y));
    mkhash("$6$", 1000, "sha512-pw", H_6, sizeof(H_6));
    mkhash("$5$", 1000, "sha256-pw", H_5, sizeof(H_5));
    mkhash("$2b$", 4, "bcrypt-pw", H_2B, sizeof(H_2B));
    mkhash("$2y$", 4, "bcrypt-y-pw", H_2Y, sizeof(H_2Y));
    mkhash("$1$", 0, "md5-pw", H_1, sizeof(H_1));
    snprintf(text, sizeof(text),
             "# catena users\n"
             "\n"
             "alice:%s\n"
             "bob:%s\r\n"
             "   # indented comment\n"
             "carol:%s   \n"
             "dave:%s\n"
             "erin:%s\n"
             "j\xc3\xbcrgen:%s\n",
             H_Y, H_6, H_5, H_2B, H_2Y, H_6);
    put("users", text);
    snprintf(users_path, sizeof(users_path), "%s", tpath("users"));
    return 0;
}

static int
teardown(void **state)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static struct auth_realm *
load_ok(void)
{
    struct auth_realm *r = auth_realm_load("corp", "local", users_path, err, sizeof(err));

    if (r == NULL)
        print_error("load: %s\n", err);
    assert_non_null(r);
    return r;
}

/* "Basic " + base64 of user:pass. */
static const char *
basic(const char *user, const char *pass)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    static char out[4096];
    char in[2048];
    size_t n = (size_t)snprintf(in, sizeof(in), "%s:%s", user, pass), o = 6;

    memcpy(out, "Basic ", 6);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t w = (uint32_t)(uint8_t)in[i] << 16;
        if (i + 1 < n)
            w |= (uint32_t)(uint8_t)in[i + 1] << 8;
        if (i + 2 < n)
            w |= (uint8_t)in[i + 2];
        out[o++] = tab[w >> 18 & 63];
        out[o++] = tab[w >> 12 & 63];
        out[o++] = i + 1 < n ? tab[w >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? tab[w & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

static struct sockaddr_storage
addr(const char *ip)
{
    struct sockaddr_storage ss = {0};

    if (strchr(ip, ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, ip, &a->sin_addr), 1);
    }
    return ss;
}

static enum auth_result
check(struct auth_realm *r, const char *hdr, const char *ip, time_t now, char *user)
{
    struct sockaddr_storage ss = addr(ip);
    static char dummy[AUTH_USER_MAX];

    return auth_check_basic(r, hdr, user ? user : dummy, AUTH_USER_MAX, (struct sockaddr *)&ss,
                            now);
}

static void
test_load_ok(void **state)
{
    struct auth_realm *r = load_ok();

    assert_string_equal(auth_realm_name(r), "corp");
    assert_int_equal(auth_realm_type(r), AUTH_TYPE_LOCAL);
    assert_int_equal(auth_realm_users(r), 6);
    assert_string_equal(auth_challenge_header(r),
                        "Proxy-Authenticate: Basic realm=\"corp\", charset=\"UTF-8\"");
    auth_realm_free(r);
    auth_realm_free(NULL);
}

static void
expect_load_err(const char *text, const char *want_after_path)
{
    char want[1024];

    put("bad", text);
    struct auth_realm *r = auth_realm_load("corp", "local", tpath("bad"), err, sizeof(err));
    snprintf(want, sizeof(want), "%s%s", tpath("bad"), want_after_path);
    if (r != NULL || strcmp(err, want) != 0) {
        print_error("text: %s\n want \"%s\"\n got \"%s\"\n", text, want, r ? "(loaded)" : err);
        auth_realm_free(r);
        fail();
    }
}

#define HINT                                                                                       \
    "use yescrypt ($y$), sha512-crypt ($6$), sha256-crypt ($5$) or bcrypt ($2b$/$2y$), e.g. "      \
    "from mkpasswd -m yescrypt"

static void
test_load_errors(void **state)
{
    char text[1024], trunc[256];
    struct auth_realm *r0;

    expect_load_err("alice:secret\n", ":1: user \"alice\": plaintext password refused; " HINT);
    expect_load_err("# x\n\nalice:\n", ":3: user \"alice\": plaintext password refused; " HINT);
    snprintf(text, sizeof(text), "bob:%s\n", H_1);
    expect_load_err(text, ":1: user \"bob\": MD5-crypt ($1$) is too weak; " HINT);
    expect_load_err("bob:$apr1$abcdefgh$0123456789012345678901\n",
                    ":1: user \"bob\": Apache MD5 ($apr1$) is too weak; " HINT);
    expect_load_err("bob:abJnggxhB/yWI\n", ":1: user \"bob\": DES crypt is too weak; " HINT);
    expect_load_err("bob:$7$CU..../....r1Jk12/gmHkXk/UfNazDu0$KtbLw745.sCTtZSetQoL5lONW5uytyjsUPD."
                    "MhuPiF/\n",
                    ":1: user \"bob\": unsupported hash type \"$7$\"; " HINT);
    expect_load_err("bob:$2a$05$xt2N/TKDhg0hSpXJWFbFXuIbXXlix7WqKVL/6RuLu7u9TYBm7.GFC\n",
                    ":1: user \"bob\": unsupported hash type \"$2a$\"; " HINT);
    expect_load_err("bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n",
                    ":1: user \"bob\": plaintext password refused; " HINT);
    /* Truncated hashes of each accepted type. */
    const char *full[] = {H_Y, H_6, H_5, H_2B};
    for (size_t i = 0; i < CAT_ARRAY_LEN(full); i++) {
        snprintf(trunc, sizeof(trunc), "%.*s", (int)strlen(full[i]) - 1, full[i]);
        snprintf(text, sizeof(text), "u:%s\n", trunc);
        expect_load_err(text, ":1: user \"u\": malformed hash (truncated or damaged?)");
        snprintf(text, sizeof(text), "u:%s!\n", trunc);
        expect_load_err(text, ":1: user \"u\": malformed hash (truncated or damaged?)");
    }
    expect_load_err("u:$2b$03$xt2N/TKDhg0hSpXJWFbFXuIbXXlix7WqKVL/6RuLu7u9TYBm7.GFC\n",
                    ":1: user \"u\": malformed hash (truncated or damaged?)");
    expect_load_err("alice\n", ":1: expected \"user:hash\"");
    snprintf(text, sizeof(text), ":%s\n", H_6);
    expect_load_err(text, ":1: empty user name");
    snprintf(text, sizeof(text), "alice:%s\nbob:%s\nalice:%s\n", H_6, H_5, H_Y);
    expect_load_err(text, ":3: user \"alice\" already defined on line 1");
    snprintf(text, sizeof(text), " alice:%s\n", H_6);
    expect_load_err(text, ":1: user \" alice\": names are 1-255 bytes of UTF-8 without control "
                          "characters or blanks at either end");
    snprintf(text, sizeof(text), "a\tb:%s\n", H_6);
    expect_load_err(text, ":1: user \"a\\x09b\": names are 1-255 bytes of UTF-8 without control "
                          "characters or blanks at either end");
    snprintf(text, sizeof(text), "\xff:%s\n", H_6);
    expect_load_err(text, ":1: user \"\\xff\": names are 1-255 bytes of UTF-8 without control "
                          "characters or blanks at either end");
    expect_load_err("# nobody\n\n", ": no users");
    expect_load_err("", ": no users");
    expect_load_err("a:b\n", ":1: user \"a\": plaintext password refused; " HINT);
    put_n("bad", "a:b\0c\n", 6);
    r0 = auth_realm_load("corp", "local", tpath("bad"), err, sizeof(err));
    assert_null(r0);
    snprintf(text, sizeof(text), "%s: contains a NUL byte", tpath("bad"));
    assert_string_equal(err, text);

    struct auth_realm *r = auth_realm_load("corp", "local", tpath("missing"), err, sizeof(err));
    assert_null(r);
    snprintf(text, sizeof(text), "%s: No such file or directory", tpath("missing"));
    assert_string_equal(err, text);
    r = auth_realm_load("corp", "local", tmpdir, err, sizeof(err));
    assert_null(r);
    snprintf(text, sizeof(text), "%s: not a regular file", tmpdir);
    assert_string_equal(err, text);
    r = auth_realm_load("corp", "ldap", users_path, err, sizeof(err));
    assert_null(r);
    assert_string_equal(err, "realm corp: unknown type \"ldap\" (known: local)");
    r = auth_realm_load("co\"rp", "local", users_path, err, sizeof(err));
    assert_null(r);
    assert_string_equal(err, "realm name must be printable ASCII without '\"' or '\\'");
    r = auth_realm_load("", "local", users_path, err, sizeof(err));
    assert_null(r);
    assert_string_equal(err, "realm name must be 1-63 characters");
}

static void
test_passwords(void **state)
{
    struct auth_realm *r = load_ok();
    char user[AUTH_USER_MAX];
    static const struct {
        const char *user, *good;
    } u[] = {
        {"alice", "yes-pw"},   {"bob", "sha512-pw"},    {"carol", "sha256-pw"},
        {"dave", "bcrypt-pw"}, {"erin", "bcrypt-y-pw"}, {"j\xc3\xbcrgen", "sha512-pw"},
    };
    time_t now = 1000;

    for (size_t i = 0; i < CAT_ARRAY_LEN(u); i++) {
        /* A fresh client address each time: this test is not about the limiter. */
        char ip[32];
        snprintf(ip, sizeof(ip), "10.0.%zu.1", i);
        unsigned long before = atomic_load(&auth_crypt_calls);
        assert_int_equal(check(r, basic(u[i].user, u[i].good), ip, now, user), AUTH_OK);
        assert_string_equal(user, u[i].user);
        assert_int_equal(atomic_load(&auth_crypt_calls), before + 1);
        assert_int_equal(check(r, basic(u[i].user, "wrong"), ip, now, user), AUTH_FAIL);
        assert_string_equal(user, u[i].user);
        /* A password that is a prefix or an extension of the right one. */
        char pw[64];
        snprintf(pw, sizeof(pw), "%s ", u[i].good);
        assert_int_equal(check(r, basic(u[i].user, pw), ip, now, user), AUTH_FAIL);
        snprintf(pw, sizeof(pw), "%.*s", (int)strlen(u[i].good) - 1, u[i].good);
        assert_int_equal(check(r, basic(u[i].user, pw), ip, now, user), AUTH_FAIL);
        assert_int_equal(atomic_load(&auth_crypt_calls), before + 4);
    }
    /* Someone else's password; an unknown user still costs one crypt (timing). */
    assert_int_equal(check(r, basic("alice", "sha512-pw"), "10.1.0.1", now, user), AUTH_FAIL);
    unsigned long before = atomic_load(&auth_crypt_calls);
    assert_int_equal(check(r, basic("mallory", "yes-pw"), "10.1.0.2", now, user), AUTH_FAIL);
    assert_string_equal(user, "mallory");
    assert_int_equal(atomic_load(&auth_crypt_calls), before + 1);
    /* Names are exact: no case folding. */
    assert_int_equal(check(r, basic("Alice", "yes-pw"), "10.1.0.3", now, user), AUTH_FAIL);
    /* The password may hold ':' (only the first one splits). */
    assert_int_equal(check(r, basic("alice:yes", "pw"), "10.1.0.4", now, user), AUTH_FAIL);
    assert_string_equal(user, "alice");
    auth_realm_free(r);
}

static void
test_malformed(void **state)
{
    struct auth_realm *r = load_ok();
    char user[AUTH_USER_MAX], big[AUTH_HEADER_MAX + 64], name[300];
    static const char *bad[] = {
        "",
        "Basic",
        "Basic ",
        "Bearer YWxpY2U6eWVzLXB3",
        "Basic\tYWxpY2U6eWVzLXB3",
        "BasicYWxpY2U6eWVzLXB3",
        "Basic YWxpY2U6eWVzLXB3 ",
        "Basic YWxpY2U6eWVz LXB3",
        "Basic YWxpY2U6eWVzLXB", /* length not a multiple of 4 */
        "Basic YWxpY2U6eWVzLXB3====",
        "Basic YWxpY2U6eWVzLXB=", /* '=' then nothing, but 3 chars of data: bad bits */
        "Basic YWxpY2U6eWVzLXC=", /* non-canonical: unused bits set */
        "Basic YW=pY2U6eWVzLXB3", /* padding inside */
        "Basic YWxpY2U6eWVzLXB3\r\n",
        "Basic YWxpY2U",          /* "alice" + junk length */
        "Basic YWxpY2U=",         /* "alice": no colon */
        "Basic OnllcC1wdw==",     /* ":yep-pw": empty user */
        "Basic YWxpY2U6eWVz-XB3", /* base64url alphabet */
    };

    for (size_t i = 0; i < CAT_ARRAY_LEN(bad); i++) {
        strcpy(user, "sentinel");
        enum auth_result res = check(r, bad[i], "10.2.0.1", 1000, user);
        if (res != AUTH_MALFORMED || user[0] != '\0') {
            print_error("case %zu \"%s\": %s, user \"%s\"\n", i, bad[i], auth_result_str(res),
                        user);
            fail();
        }
    }
    /* Controls in the password, bad UTF-8 in the name. */
    assert_int_equal(check(r, basic("alice", "yes\x01pw"), "10.2.0.1", 1000, user), AUTH_MALFORMED);
    assert_int_equal(check(r, basic("alice", "yes\x7fpw"), "10.2.0.1", 1000, user), AUTH_MALFORMED);
    assert_int_equal(check(r, basic("al\xc3", "x"), "10.2.0.1", 1000, user), AUTH_MALFORMED);
    assert_int_equal(check(r, basic("al\xed\xa0\x80", "x"), "10.2.0.1", 1000, user),
                     AUTH_MALFORMED);
    assert_int_equal(check(r, basic("al\xc0\xaf", "x"), "10.2.0.1", 1000, user), AUTH_MALFORMED);
    /* A NUL inside: base64 of "alice:yes\0pw". */
    assert_int_equal(check(r, "Basic YWxpY2U6eWVzAHB3", "10.2.0.1", 1000, user), AUTH_MALFORMED);
    /* Latin-1 in a password is allowed (and simply wrong here). */
    assert_int_equal(check(r, basic("alice", "caf\xe9"), "10.2.0.1", 1000, user), AUTH_FAIL);

    /* Scheme in any case, several spaces. */
    assert_int_equal(check(r, "bAsIc    YWxpY2U6eWVzLXB3", "10.2.0.2", 1000, user), AUTH_OK);
    assert_string_equal(user, "alice");
    /* Malformed input never reaches crypt nor the limiter. */
    unsigned long before = atomic_load(&auth_crypt_calls);
    for (int i = 0; i < 20; i++)
        assert_int_equal(check(r, "Basic !!!!", "10.2.0.3", 1000, user), AUTH_MALFORMED);
    assert_int_equal(atomic_load(&auth_crypt_calls), before);
    assert_int_equal(check(r, basic("alice", "yes-pw"), "10.2.0.3", 1000, user), AUTH_OK);

    /* Long inputs: the header bound, the name bound, the caller's buffer. */
    memset(big, 'A', sizeof(big));
    memcpy(big, "Basic ", 6);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(check(r, big, "10.2.0.4", 1000, user), AUTH_MALFORMED);
    memset(name, 'n', sizeof(name));
    name[AUTH_USER_MAX] = '\0';
    assert_int_equal(check(r, basic(name, "x"), "10.2.0.4", 1000, user), AUTH_MALFORMED);
    name[AUTH_USER_MAX - 1] = '\0';
    assert_int_equal(check(r, basic(name, "x"), "10.2.0.4", 1000, user), AUTH_FAIL);
    assert_int_equal(strlen(user), AUTH_USER_MAX - 1);
    char small[6];
    struct sockaddr_storage ss = addr("10.2.0.5");
    assert_int_equal(auth_check_basic(r, basic("alice", "yes-pw"), small, sizeof(small),
                                      (struct sockaddr *)&ss, 1000),
                     AUTH_OK);
    assert_string_equal(small, "alice");
    assert_int_equal(
        auth_check_basic(r, basic("alice", "yes-pw"), small, 5, (struct sockaddr *)&ss, 1000),
        AUTH_MALFORMED);
    char pw[AUTH_PASS_MAX + 8];
    memset(pw, 'p', sizeof(pw));
    pw[AUTH_PASS_MAX] = '\0';
    assert_int_equal(check(r, basic("alice", pw), "10.2.0.6", 1000, user), AUTH_MALFORMED);
    pw[AUTH_PASS_MAX - 1] = '\0';
    assert_int_equal(check(r, basic("alice", pw), "10.2.0.6", 1000, user), AUTH_FAIL);
    auth_realm_free(r);
}

static void
test_rate_limit(void **state)
{
    struct auth_realm *r = load_ok();
    char bad[256], good[256];
    time_t t = 5000;

    /* basic() returns a static buffer: keep copies. */
    snprintf(bad, sizeof(bad), "%s", basic("bob", "guess"));
    snprintf(good, sizeof(good), "%s", basic("bob", "sha512-pw"));
    for (int i = 0; i < AUTH_FAIL_MAX; i++)
        assert_int_equal(check(r, basic("bob", "guess"), "192.0.2.7", t + i, NULL), AUTH_FAIL);
    /* Blocked: no crypt at all, even for the right password. */
    unsigned long before = atomic_load(&auth_crypt_calls);
    assert_int_equal(check(r, bad, "192.0.2.7", t + 5, NULL), AUTH_RATE_LIMITED);
    assert_int_equal(check(r, good, "192.0.2.7", t + 10, NULL), AUTH_RATE_LIMITED);
    assert_int_equal(check(r, good, "::ffff:192.0.2.7", t + 10, NULL), AUTH_RATE_LIMITED);
    assert_int_equal(atomic_load(&auth_crypt_calls), before);
    /* Other clients are not affected. */
    assert_int_equal(check(r, good, "192.0.2.8", t + 10, NULL), AUTH_OK);
    /* Recovery once the block is over (it started at the 5th failure, t + 4). */
    assert_int_equal(check(r, good, "192.0.2.7", t + 4 + AUTH_BLOCK_S - 1, NULL),
                     AUTH_RATE_LIMITED);
    assert_int_equal(check(r, good, "192.0.2.7", t + 4 + AUTH_BLOCK_S, NULL), AUTH_OK);
    /* And the count starts again from zero. */
    t += 1000;
    for (int i = 0; i < AUTH_FAIL_MAX - 1; i++)
        assert_int_equal(check(r, bad, "192.0.2.7", t, NULL), AUTH_FAIL);
    assert_int_equal(check(r, bad, "192.0.2.7", t, NULL), AUTH_FAIL);
    assert_int_equal(check(r, bad, "192.0.2.7", t, NULL), AUTH_RATE_LIMITED);

    /* Failures spread wider than the window never block. */
    t += 1000;
    for (int i = 0; i < 3 * AUTH_FAIL_MAX; i++)
        assert_int_equal(check(r, bad, "198.51.100.1", t + i * (AUTH_FAIL_WINDOW_S / 4 + 1), NULL),
                         AUTH_FAIL);

    /* IPv6: one /64 is one client. */
    t += 1000;
    for (int i = 0; i < AUTH_FAIL_MAX; i++) {
        char ip[64];
        snprintf(ip, sizeof(ip), "2001:db8:1:2::%x", i + 1);
        assert_int_equal(check(r, bad, ip, t, NULL), AUTH_FAIL);
    }
    assert_int_equal(check(r, good, "2001:db8:1:2:ffff::1", t, NULL), AUTH_RATE_LIMITED);
    assert_int_equal(check(r, good, "2001:db8:1:3::1", t, NULL), AUTH_OK);
    auth_realm_free(r);
}

static void
test_rate_table_bounded(void **state)
{
    struct auth_realm *r = load_ok();
    uint8_t a[16] = {0};
    size_t used = 0;

    /* Many more clients than slots: the table never grows and stays usable. */
    pthread_mutex_lock(&r->mtx);
    for (uint32_t i = 0; i < 3 * AUTH_RATE_SLOTS; i++) {
        memcpy(a, &i, sizeof(i));
        struct auth_rate *s = auth_rate_slot(r, a, 4, 100, true);
        assert_non_null(s);
        s->fails = 1;
        s->window_start = 100;
    }
    for (size_t i = 0; i < AUTH_RATE_SLOTS; i++)
        used += r->rate[i].family != 0;
    pthread_mutex_unlock(&r->mtx);
    assert_true(used <= AUTH_RATE_SLOTS);
    /* After the flood, checks still work. */
    assert_int_equal(check(r, basic("bob", "sha512-pw"), "203.0.113.9", 200, NULL), AUTH_OK);
    auth_realm_free(r);
}

static void
test_cache(void **state)
{
    struct auth_realm *r = load_ok();
    char good[256];
    unsigned long c0;

    snprintf(good, sizeof(good), "%s", basic("alice", "yes-pw"));
    c0 = atomic_load(&auth_crypt_calls);
    assert_int_equal(check(r, good, "10.3.0.1", 100, NULL), AUTH_OK);
    assert_int_equal(atomic_load(&auth_crypt_calls), c0 + 1);
    /* Hits: no crypt, from any client. */
    for (int i = 0; i < 10; i++)
        assert_int_equal(check(r, good, i % 2 ? "10.3.0.1" : "10.3.0.2", 100 + i, NULL), AUTH_OK);
    assert_int_equal(atomic_load(&auth_crypt_calls), c0 + 1);
    /* A different password for the same user is not a hit. */
    assert_int_equal(check(r, basic("alice", "yes-pw2"), "10.3.0.3", 120, NULL), AUTH_FAIL);
    assert_int_equal(atomic_load(&auth_crypt_calls), c0 + 2);
    /* Failures are never cached. */
    assert_int_equal(check(r, basic("alice", "yes-pw2"), "10.3.0.3", 121, NULL), AUTH_FAIL);
    assert_int_equal(atomic_load(&auth_crypt_calls), c0 + 3);
    /* The TTL counts from the verification, hits do not extend it. */
    assert_int_equal(check(r, good, "10.3.0.1", 100 + AUTH_CACHE_TTL_S - 1, NULL), AUTH_OK);
    assert_int_equal(atomic_load(&auth_crypt_calls), c0 + 3);
    assert_int_equal(check(r, good, "10.3.0.1", 100 + AUTH_CACHE_TTL_S, NULL), AUTH_OK);
    assert_int_equal(atomic_load(&auth_crypt_calls), c0 + 4);
    assert_int_equal(check(r, good, "10.3.0.1", 100 + AUTH_CACHE_TTL_S + 1, NULL), AUTH_OK);
    assert_int_equal(atomic_load(&auth_crypt_calls), c0 + 4);
    /* The key is a keyed hash: neither the password nor the user is stored. */
    for (size_t i = 0; i < AUTH_CACHE_MAX; i++) {
        assert_null(memmem(r->cache[i].key, AUTH_KEY_LEN, "yes-pw", 6));
        assert_null(memmem(r->cache[i].key, AUTH_KEY_LEN, "alice", 5));
    }
    auth_realm_free(r);
}

static void
test_cache_lru(void **state)
{
    struct auth_realm *r = load_ok();
    uint8_t k[AUTH_KEY_LEN];
    char u[32];

    pthread_mutex_lock(&r->mtx);
    for (int i = 0; i < AUTH_CACHE_MAX; i++) {
        snprintf(u, sizeof(u), "user%d", i);
        auth_cache_key(r, u, "pw", k);
        auth_cache_put(r, k, 10);
    }
    /* Touch the oldest, then one more entry evicts the next oldest (user1), not user0. */
    auth_cache_key(r, "user0", "pw", k);
    assert_true(auth_cache_find(r, k, 11) >= 0);
    auth_cache_key(r, "extra", "pw", k);
    auth_cache_put(r, k, 12);
    assert_true(auth_cache_find(r, k, 12) >= 0);
    auth_cache_key(r, "user0", "pw", k);
    assert_true(auth_cache_find(r, k, 12) >= 0);
    auth_cache_key(r, "user1", "pw", k);
    assert_int_equal(auth_cache_find(r, k, 12), -1);
    auth_cache_key(r, "user2", "pw", k);
    assert_true(auth_cache_find(r, k, 12) >= 0);
    /* Every slot is used and the LRU list holds each exactly once. */
    size_t n = 0;
    for (int32_t i = r->lru_head; i >= 0 && n <= AUTH_CACHE_MAX; i = r->cache[i].next)
        n++;
    assert_int_equal(n, AUTH_CACHE_MAX);
    assert_int_equal(r->free_head, -1);
    /* Expired entries are dropped on lookup and their slot is reused. */
    auth_cache_key(r, "user2", "pw", k);
    assert_int_equal(auth_cache_find(r, k, 10 + AUTH_CACHE_TTL_S), -1);
    assert_true(r->free_head >= 0);
    pthread_mutex_unlock(&r->mtx);
    auth_realm_free(r);
}

struct thr_arg {
    struct auth_realm *r;
    const char *good, *bad; /* headers, made before the threads start */
    int id, ok, fail, limited;
};

static void *
thr_main(void *p)
{
    struct thr_arg *a = p;
    char user[AUTH_USER_MAX], ip[32];
    struct sockaddr_storage ss = addr("10.9.0.1"), own;

    snprintf(ip, sizeof(ip), "10.9.1.%d", a->id);
    own = addr(ip);
    for (int i = 0; i < 200; i++) {
        a->ok += auth_check_basic(a->r, a->good, user, sizeof(user), (struct sockaddr *)&ss, 50) ==
                 AUTH_OK;
        if (i % 20 == 0) {
            enum auth_result res =
                auth_check_basic(a->r, a->bad, user, sizeof(user), (struct sockaddr *)&own, 50);
            a->fail += res == AUTH_FAIL;
            a->limited += res == AUTH_RATE_LIMITED;
        }
    }
    return NULL;
}

/* Worker threads share a realm: cache hits and per-client limits hold under concurrency. */
static void
test_threads(void **state)
{
    struct auth_realm *r = load_ok();
    pthread_t t[4];
    struct thr_arg a[4];
    char good[256], bad[256];

    snprintf(good, sizeof(good), "%s", basic("carol", "sha256-pw"));
    snprintf(bad, sizeof(bad), "%s", basic("carol", "nope"));
    for (int i = 0; i < 4; i++) {
        a[i] = (struct thr_arg){.r = r, .good = good, .bad = bad, .id = i};
        assert_int_equal(pthread_create(&t[i], NULL, thr_main, &a[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(a[i].ok, 200);
        assert_int_equal(a[i].fail, AUTH_FAIL_MAX);
        assert_int_equal(a[i].limited, 10 - AUTH_FAIL_MAX);
    }
    auth_realm_free(r);
}

static void
test_result_str(void **state)
{
    assert_string_equal(auth_result_str(AUTH_OK), "ok");
    assert_string_equal(auth_result_str(AUTH_FAIL), "fail");
    assert_string_equal(auth_result_str(AUTH_RATE_LIMITED), "rate-limited");
    assert_string_equal(auth_result_str(AUTH_MALFORMED), "malformed");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_ok),    cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_passwords),  cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_rate_limit), cmocka_unit_test(test_rate_table_bounded),
        cmocka_unit_test(test_cache),      cmocka_unit_test(test_cache_lru),
        cmocka_unit_test(test_threads),    cmocka_unit_test(test_result_str),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
