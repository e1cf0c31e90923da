/*
 * Unit tests for core/staple.c: TLS 1.2 server flights assembled by
 * flight_build() (ServerHello, Certificate, CertificateStatus, ..., with the
 * handshake stream cut into records of any size), fed split at every point,
 * plus hand-broken ones for each way out and deterministic garbage. Flights
 * captured from openssl s_server are the fuzz seeds (test/fuzz/corpus/staple/).
 * Then rev_staple(), what a found response goes through, on revoke_test's
 * openssl-made fixtures (test/unit/data/revoke/, read only) and their clock.
 */
#include "core/staple.h"

#include "core/rev_int.h"
#include "core/revoke.h"

#include <stdio.h>
#include <stdlib.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#define FLIGHT_MAX (64 * 1024)

/* What a flight is made of. */
struct flight_opts {
    size_t resp_len;     /* OCSPResponse bytes in a CertificateStatus; 0: none */
    size_t cert_len;     /* Certificate body bytes */
    size_t frag;         /* handshake bytes per record; 0: 16384 */
    bool no_done;        /* leave out ServerHelloDone */
    uint8_t status_type; /* 0: ocsp (1) */
    int resp_len_delta;  /* added to the inner response length field */
};

struct flight {
    uint8_t b[FLIGHT_MAX];
    size_t len;
    const uint8_t *resp; /* the response bytes inside b */
};

static uint8_t flight_hs[FLIGHT_MAX];

static size_t
flight_msg(uint8_t *out, uint8_t type, const uint8_t *body, size_t n)
{
    out[0] = type;
    out[1] = (uint8_t)(n >> 16);
    out[2] = (uint8_t)(n >> 8);
    out[3] = (uint8_t)n;
    memcpy(out + 4, body, n);
    return 4 + n;
}

/* The handshake stream, then cut into records of o->frag bytes. */
static void
flight_build(const struct flight_opts *o, struct flight *f)
{
    static uint8_t body[FLIGHT_MAX / 2];
    size_t h = 0, resp_at = 0;
    memset(body, 0x5a, sizeof(body));
    h += flight_msg(flight_hs + h, 2, body, 70); /* ServerHello */
    h += flight_msg(flight_hs + h, 11, body, o->cert_len);
    if (o->resp_len > 0) {
        uint8_t *st = body;
        size_t rl = (size_t)((long)o->resp_len + o->resp_len_delta);
        st[0] = o->status_type ? o->status_type : 1;
        st[1] = (uint8_t)(rl >> 16);
        st[2] = (uint8_t)(rl >> 8);
        st[3] = (uint8_t)rl;
        for (size_t i = 0; i < o->resp_len; i++)
            st[4 + i] = (uint8_t)(i * 7 + 3);
        resp_at = h + 8;
        h += flight_msg(flight_hs + h, 22, st, 4 + o->resp_len);
        memset(body, 0x5a, 4 + o->resp_len);
    }
    h += flight_msg(flight_hs + h, 12, body, 100); /* ServerKeyExchange */
    if (!o->no_done)
        h += flight_msg(flight_hs + h, 14, body, 0);
    size_t frag = o->frag ? o->frag : 16384, n = 0;
    for (size_t at = 0; at < h; at += frag) {
        size_t k = at + frag <= h ? frag : h - at;
        uint8_t *r = f->b + n;
        r[0] = 22;
        r[1] = 3;
        r[2] = 3;
        r[3] = (uint8_t)(k >> 8);
        r[4] = (uint8_t)k;
        memcpy(r + 5, flight_hs + at, k);
        n += 5 + k;
    }
    f->len = n;
    /* The response is contiguous in the stream, not in the records: the stream's copy. */
    f->resp = resp_at ? flight_hs + resp_at : NULL;
}

static void
expect_found(struct staple *s, const struct flight *f, size_t resp_len)
{
    size_t len;
    const uint8_t *r = staple_response(s, &len);
    assert_int_equal(s->state, STAPLE_FOUND);
    assert_non_null(r);
    assert_int_equal(len, resp_len);
    assert_memory_equal(r, f->resp, resp_len);
}

static void
test_found(void **state)
{
    static struct flight f;
    struct staple s;
    flight_build(&(struct flight_opts){.resp_len = 998, .cert_len = 1664}, &f);
    staple_init(&s);
    assert_int_equal(staple_feed(&s, f.b, f.len), STAPLE_FOUND);
    expect_found(&s, &f, 998);
    staple_fini(&s);
    assert_null(s.der);
}

/* Every two-way split, and one byte at a time. */
static void
test_split_anywhere(void **state)
{
    static struct flight f;
    flight_build(&(struct flight_opts){.resp_len = 300, .cert_len = 500}, &f);
    for (size_t cut = 0; cut <= f.len; cut++) {
        struct staple s;
        staple_init(&s);
        enum staple_state a = staple_feed(&s, f.b, cut);
        enum staple_state b = staple_feed(&s, f.b + cut, f.len - cut);
        assert_true(a == STAPLE_SCANNING || a == STAPLE_FOUND);
        assert_int_equal(b, STAPLE_FOUND);
        expect_found(&s, &f, 300);
        staple_fini(&s);
    }
    struct staple s;
    staple_init(&s);
    for (size_t i = 0; i < f.len; i++)
        staple_feed(&s, f.b + i, 1);
    expect_found(&s, &f, 300);
    staple_fini(&s);
}

/* Handshake messages (and their headers) across records of every small size. */
static void
test_messages_across_records(void **state)
{
    static struct flight f;
    for (size_t frag = 1; frag <= 40; frag++) {
        flight_build(&(struct flight_opts){.resp_len = 77, .cert_len = 200, .frag = frag}, &f);
        struct staple s;
        staple_init(&s);
        assert_int_equal(staple_feed(&s, f.b, f.len), STAPLE_FOUND);
        expect_found(&s, &f, 77);
        staple_fini(&s);
    }
    /* The largest response kept, spread over two records. */
    flight_build(
        &(struct flight_opts){.resp_len = STAPLE_MAX_RESPONSE, .cert_len = 10, .frag = 9000}, &f);
    struct staple s;
    staple_init(&s);
    assert_int_equal(staple_feed(&s, f.b, f.len), STAPLE_FOUND);
    expect_found(&s, &f, STAPLE_MAX_RESPONSE);
    staple_fini(&s);
}

static void
test_absent(void **state)
{
    static struct flight f;
    struct staple s;
    size_t len;
    /* ServerHelloDone without a CertificateStatus, whatever the records. */
    for (size_t frag = 1; frag <= 16384; frag *= 3) {
        flight_build(&(struct flight_opts){.cert_len = 900, .frag = frag}, &f);
        staple_init(&s);
        assert_int_equal(staple_feed(&s, f.b, f.len), STAPLE_ABSENT);
        assert_null(staple_response(&s, &len));
        assert_int_equal(len, 0);
        staple_fini(&s);
    }
    /* A TLS 1.3 server: its ServerHello, then ChangeCipherSpec or encrypted records. */
    static const uint8_t tls13[] = {22, 3, 3, 0, 6, 2, 0, 0, 2, 3, 3, 20, 3, 3, 0, 1, 1};
    staple_init(&s);
    assert_int_equal(staple_feed(&s, tls13, sizeof(tls13)), STAPLE_ABSENT);
    staple_fini(&s);
    static const uint8_t appdata[] = {22, 3, 3, 0, 6, 2, 0, 0, 2, 3, 3, 23, 3, 3, 0, 40};
    staple_init(&s);
    assert_int_equal(staple_feed(&s, appdata, sizeof(appdata)), STAPLE_ABSENT);
    staple_fini(&s);
    /* An empty message (HelloRequest) is stepped over. */
    static const uint8_t hr[] = {22, 3, 3, 0, 8, 0, 0, 0, 0, 14, 0, 0, 0};
    staple_init(&s);
    assert_int_equal(staple_feed(&s, hr, sizeof(hr)), STAPLE_ABSENT);
    staple_fini(&s);
}

static void
expect_error(const uint8_t *p, size_t n)
{
    struct staple s;
    staple_init(&s);
    assert_int_equal(staple_feed(&s, p, n), STAPLE_ERROR);
    assert_null(s.der); /* nothing kept */
    staple_fini(&s);
}

static void
test_errors(void **state)
{
    static const uint8_t alert[] = {21, 3, 3, 0, 2, 2, 70};
    static const uint8_t http[] = "HTTP/1.1 400 Bad Request\r\n\r\n";
    static const uint8_t empty_rec[] = {22, 3, 3, 0, 0};
    static const uint8_t big_rec[] = {22, 3, 3, 0x40, 0x01};
    static const uint8_t sslv2[] = {22, 2, 0, 0, 5, 2, 0, 0, 1, 0};
    static const uint8_t other_type[] = {24, 3, 3, 0, 1, 0};
    static const uint8_t done_len[] = {22, 3, 3, 0, 5, 14, 0, 0, 1, 0};
    static const uint8_t huge_msg[] = {22, 3, 3, 0, 4, 11, 0x10, 0, 1};
    /* CertificateStatus: too short; a response over STAPLE_MAX_RESPONSE (refused on sight,
     * nothing allocated). */
    static const uint8_t st_short[] = {22, 3, 3, 0, 8, 22, 0, 0, 4, 1, 0, 0, 0};
    static const uint8_t st_big[] = {22, 3, 3, 0, 8, 22, 0, 0x40, 0x05, 1, 0, 0x40, 0x01};
    expect_error(alert, sizeof(alert));
    expect_error(http, sizeof(http) - 1);
    expect_error(empty_rec, sizeof(empty_rec));
    expect_error(big_rec, sizeof(big_rec));
    expect_error(sslv2, sizeof(sslv2));
    expect_error(other_type, sizeof(other_type));
    expect_error(done_len, sizeof(done_len));
    expect_error(huge_msg, sizeof(huge_msg));
    expect_error(st_short, sizeof(st_short));
    expect_error(st_big, sizeof(st_big));

    static struct flight f;
    /* status_type other than ocsp (ocsp_multi is RFC 6961's, not asked for). */
    flight_build(&(struct flight_opts){.resp_len = 50, .cert_len = 10, .status_type = 2}, &f);
    expect_error(f.b, f.len);
    /* The inner length disagreeing with the message's. */
    flight_build(&(struct flight_opts){.resp_len = 50, .cert_len = 10, .resp_len_delta = -1}, &f);
    expect_error(f.b, f.len);
    flight_build(&(struct flight_opts){.resp_len = 50, .cert_len = 10, .resp_len_delta = 1}, &f);
    expect_error(f.b, f.len);
}

/* More than STAPLE_MAX_FLIGHT bytes without an end. */
static void
test_flight_bound(void **state)
{
    static uint8_t rec[5 + 16384];
    struct staple s;
    staple_init(&s);
    /* One endless Certificate message spread over full records. */
    static const uint8_t first[] = {22, 3, 3, 0x40, 0x00, 11, 0x0f, 0xff, 0xff};
    memset(rec, 0, sizeof(rec));
    memcpy(rec, first, sizeof(first));
    assert_int_equal(staple_feed(&s, rec, sizeof(rec)), STAPLE_SCANNING);
    rec[0] = 22;
    rec[1] = 3;
    rec[2] = 3;
    rec[3] = 0x40;
    rec[4] = 0x00;
    memset(rec + 5, 0, 16384);
    enum staple_state st = STAPLE_SCANNING;
    size_t fed = sizeof(rec);
    for (int i = 0; i < 100 && st == STAPLE_SCANNING; i++) {
        st = staple_feed(&s, rec, sizeof(rec));
        fed += sizeof(rec);
    }
    assert_int_equal(st, STAPLE_ERROR);
    assert_true(fed > STAPLE_MAX_FLIGHT);
    assert_true(fed <= STAPLE_MAX_FLIGHT + 2 * sizeof(rec));
    staple_fini(&s);
}

/* Once decided, later bytes change nothing. */
static void
test_final_states_stick(void **state)
{
    static struct flight f;
    static const uint8_t junk[] = {21, 3, 3, 0, 2, 2, 40, 0xff, 0xff};
    struct staple s;
    flight_build(&(struct flight_opts){.resp_len = 64, .cert_len = 100}, &f);
    staple_init(&s);
    assert_int_equal(staple_feed(&s, f.b, f.len), STAPLE_FOUND);
    assert_int_equal(staple_feed(&s, junk, sizeof(junk)), STAPLE_FOUND);
    assert_int_equal(staple_feed(&s, f.b, f.len), STAPLE_FOUND);
    expect_found(&s, &f, 64);
    staple_fini(&s);
    staple_init(&s);
    assert_int_equal(staple_feed(&s, junk, sizeof(junk)), STAPLE_ERROR);
    assert_int_equal(staple_feed(&s, f.b, f.len), STAPLE_ERROR);
    staple_fini(&s);
    /* Init again after fini: a fresh scanner. */
    staple_init(&s);
    assert_int_equal(staple_feed(&s, NULL, 0), STAPLE_SCANNING);
    assert_int_equal(staple_feed(&s, f.b, f.len), STAPLE_FOUND);
    staple_fini(&s);
    staple_fini(&s); /* twice is harmless */
}

/* Deterministic garbage, and real flights with bytes flipped: no crash, sane results. */
static void
test_garbage(void **state)
{
    static struct flight f;
    static uint8_t buf[4096];
    uint32_t x = 12345;
    flight_build(&(struct flight_opts){.resp_len = 120, .cert_len = 300, .frag = 97}, &f);
    for (int round = 0; round < 3000; round++) {
        size_t n;
        if (round % 2 == 0) {
            n = f.len;
            memcpy(buf, f.b, n);
            for (int k = 0; k < 3; k++) {
                x = x * 1103515245u + 12345u;
                buf[(x >> 8) % n] = (uint8_t)(x >> 24);
            }
        } else {
            x = x * 1103515245u + 12345u;
            n = (x >> 16) % sizeof(buf);
            for (size_t i = 0; i < n; i++) {
                x = x * 1103515245u + 12345u;
                buf[i] = (uint8_t)(x >> 24);
            }
            if (n > 0)
                buf[0] = 22; /* get past the first check more often */
        }
        struct staple s;
        staple_init(&s);
        size_t at = 0;
        while (at < n) {
            x = x * 1103515245u + 12345u;
            size_t k = CAT_MIN(n - at, (size_t)(x >> 20) % 50 + 1);
            staple_feed(&s, buf + at, k);
            at += k;
        }
        size_t len;
        const uint8_t *r = staple_response(&s, &len);
        if (s.state == STAPLE_FOUND) {
            assert_non_null(r);
            assert_true(len >= 1 && len <= STAPLE_MAX_RESPONSE && len == s.der_cap);
        } else {
            assert_null(r);
        }
        staple_fini(&s);
    }
}

static void
test_state_str(void **state)
{
    assert_string_equal(staple_state_str(STAPLE_SCANNING), "scanning");
    assert_string_equal(staple_state_str(STAPLE_FOUND), "found");
    assert_string_equal(staple_state_str(STAPLE_ABSENT), "absent");
    assert_string_equal(staple_state_str(STAPLE_ERROR), "error");
    assert_string_equal(staple_state_str((enum staple_state)42), "?");
}

/* ---- rev_staple: the check of what was found ------------------------------------------- */

#define DATA "test/unit/data/revoke/"

struct t_file {
    uint8_t b[1 << 16];
    size_t len;
};

static const struct t_file *
fx(const char *name)
{
    static struct t_file files[16];
    static const char *names[16];
    size_t i;
    for (i = 0; i < CAT_ARRAY_LEN(names) && names[i] != NULL; i++)
        if (strcmp(names[i], name) == 0)
            return &files[i];
    CAT_ASSERT(i < CAT_ARRAY_LEN(names));
    char path[256];
    snprintf(path, sizeof(path), DATA "%s", name);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "staple_test: cannot open %s (run from the repository root)\n", path);
        abort();
    }
    files[i].len = fread(files[i].b, 1, sizeof(files[i].b), f);
    fclose(f);
    names[i] = name;
    return &files[i];
}

static int64_t t_now;

static int64_t
t_clock(void)
{
    return t_now;
}

static int
rev_setup(void **state)
{
    const struct t_file *n = fx("now.txt");
    char buf[32];
    snprintf(buf, sizeof(buf), "%.*s", (int)CAT_MIN(n->len, sizeof(buf) - 1), (const char *)n->b);
    t_now = strtoll(buf, NULL, 10) + 60;
    rev_clock = t_clock;
    return rev_cache_acquire() == CAT_OK ? 0 : -1;
}

static int
rev_teardown(void **state)
{
    rev_cache_release();
    return 0;
}

/* rev_staple on fixtures: resp NULL for "none sent". */
static int
t_staple(const char *cert, const char *resp, struct rev_answer *out, char *why, size_t whylen)
{
    const struct rev_answer unknown = {
        .status = REV_UNKNOWN, .source = "ocsp", .detail = "OCSP ocsp.test: connection refused"};
    const struct t_file *c = fx(cert), *i = fx("ca.der");
    const struct t_file *r = resp != NULL ? fx(resp) : NULL;
    return rev_staple(c->b, c->len, i->b, i->len, r != NULL ? r->b : NULL, r != NULL ? r->len : 0,
                      &unknown, out, why, whylen);
}

/* The cached answer for cert, as rev_check would find it. */
static bool
t_cached(const char *cert, struct rev_answer *a)
{
    struct rev_cert c, i;
    const char *err;
    uint8_t key[REV_KEY_LEN];
    const struct t_file *cf = fx(cert), *ifile = fx("ca.der");
    assert_int_equal(rev_cert_parse(cf->b, cf->len, &c, &err), CAT_OK);
    assert_int_equal(rev_cert_parse(ifile->b, ifile->len, &i, &err), CAT_OK);
    rev_answer_key(&c, &i, key);
    return rev_cache_get_answer(key, t_now, a);
}

static void
test_rev_staple_verdicts(void **state)
{
    struct rev_answer a, cached;
    char why[160];
    rev_cache_flush();
    assert_int_equal(t_staple("good.der", "ocsp_good.der", &a, why, sizeof(why)), CAT_OK);
    assert_int_equal(a.status, REV_GOOD);
    assert_string_equal(a.source, REV_SRC_STAPLE);
    assert_string_equal(a.detail, "stapled OCSP: good");
    assert_false(a.staple_tried);
    assert_true(t_cached("good.der", &cached));
    assert_int_equal(cached.status, REV_GOOD);

    assert_int_equal(t_staple("revoked.der", "ocsp_revoked.der", &a, why, sizeof(why)), CAT_OK);
    assert_int_equal(a.status, REV_REVOKED);
    assert_non_null(strstr(a.detail, "stapled OCSP: revoked (reason 1: keyCompromise) at "));
    assert_true(t_cached("revoked.der", &cached));
    assert_int_equal(cached.status, REV_REVOKED);
}

static void
test_rev_staple_unusable(void **state)
{
    /* resp, why it does not count (a part of it); the sources' answer is kept each time. */
    static const struct {
        const char *cert, *resp, *why;
        int rc;
    } cases[] = {
        {"good.der", NULL, "none sent", CAT_DECLINED},
        {"good.der", "ocsp_by_rogue.der", "OCSPSigning", CAT_ERR},
        {"good.der", "ocsp_by_other.der", "not signed by the issuer", CAT_ERR},
        {"good.der", "ocsp_badsig.der", "signature", CAT_ERR},
        {"revoked.der", "ocsp_good.der", "not about this certificate", CAT_ERR},
        {"unknown.der", "ocsp_unknown.der", "does not know", CAT_ERR},
        {"good.der", "ca.der", "not an OCSP response", CAT_ERR},
    };
    for (size_t k = 0; k < CAT_ARRAY_LEN(cases); k++) {
        struct rev_answer a, cached;
        char why[160] = "";
        rev_cache_flush();
        int rc = t_staple(cases[k].cert, cases[k].resp, &a, why, sizeof(why));
        if (rc != cases[k].rc || strstr(why, cases[k].why) == NULL)
            fail_msg("%s with %s: %d (%s)", cases[k].cert, cases[k].resp, rc, why);
        assert_int_equal(a.status, REV_UNKNOWN);
        assert_string_equal(a.source, "ocsp");
        assert_string_equal(a.detail, "OCSP ocsp.test: connection refused");
        assert_true(a.staple_tried);
        /* Cached as no answer, so the origin is not asked again at once. */
        assert_true(t_cached(cases[k].cert, &cached));
        assert_int_equal(cached.status, REV_UNKNOWN);
        assert_true(cached.staple_tried);
    }
}

/* A staple past its nextUpdate is refused like a fetched response (a short-lived one). */
static void
test_rev_staple_stale(void **state)
{
    struct rev_answer a;
    char why[160];
    int64_t saved = t_now;
    rev_cache_flush();
    assert_int_equal(t_staple("good.der", "ocsp_good_1min.der", &a, why, sizeof(why)), CAT_OK);
    rev_cache_flush();
    t_now = saved + 3600;
    assert_int_equal(t_staple("good.der", "ocsp_good_1min.der", &a, why, sizeof(why)), CAT_ERR);
    assert_non_null(strstr(why, "stale"));
    assert_int_equal(a.status, REV_UNKNOWN);
    t_now = saved;
}

/* No answer never hides one: a check failing through its sources after the staple answered. */
static void
test_rev_cache_keeps_verdict(void **state)
{
    struct rev_answer a, cached;
    char why[160];
    uint8_t key[REV_KEY_LEN];
    struct rev_cert c, i;
    const char *err;
    rev_cache_flush();
    assert_int_equal(t_staple("good.der", "ocsp_good.der", &a, why, sizeof(why)), CAT_OK);
    assert_int_equal(rev_cert_parse(fx("good.der")->b, fx("good.der")->len, &c, &err), CAT_OK);
    assert_int_equal(rev_cert_parse(fx("ca.der")->b, fx("ca.der")->len, &i, &err), CAT_OK);
    rev_answer_key(&c, &i, key);
    struct rev_answer unknown = {.status = REV_UNKNOWN, .source = "ocsp", .detail = "late"};
    rev_cache_put_answer(key, &unknown, t_now + 30, t_now);
    assert_true(t_cached("good.der", &cached));
    assert_int_equal(cached.status, REV_GOOD);
    /* A declined staple (another connection's) does not hide it either. */
    assert_int_equal(t_staple("good.der", NULL, &a, why, sizeof(why)), CAT_DECLINED);
    assert_true(t_cached("good.der", &cached));
    assert_int_equal(cached.status, REV_GOOD);
    /* But a verdict replaces a verdict, and an unknown replaces an unknown. */
    rev_cache_flush();
    rev_cache_put_answer(key, &unknown, t_now + 30, t_now);
    assert_int_equal(t_staple("good.der", NULL, &a, why, sizeof(why)), CAT_DECLINED);
    assert_true(t_cached("good.der", &cached));
    assert_true(cached.staple_tried);
}

int
main(void)
{
    /* One group (test/run.sh counts a binary's last one); its setup is rev_staple's clock and
     * cache, which the scanner tests do not touch. */
    /* clang-format off */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_found),
        cmocka_unit_test(test_split_anywhere),
        cmocka_unit_test(test_messages_across_records),
        cmocka_unit_test(test_absent),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_flight_bound),
        cmocka_unit_test(test_final_states_stick),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_state_str),
        cmocka_unit_test(test_rev_staple_verdicts),
        cmocka_unit_test(test_rev_staple_unusable),
        cmocka_unit_test(test_rev_staple_stale),
        cmocka_unit_test(test_rev_cache_keeps_verdict),
    };
    /* clang-format on */
    return cmocka_run_group_tests(tests, rev_setup, rev_teardown);
}
