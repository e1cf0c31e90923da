/*
 * Unit tests of revocation checking. The synchronous parts (DER times,
 * certificate fields and URLs, the OCSP request, OCSP response and CRL
 * verification, the shared cache) run on fixtures that openssl made
 * (test/unit/data/revoke/make.sh), checked at the time they were made + 60 s.
 * The asynchronous driver runs on a loop with core/fetch replaced by a
 * stand-in defined here, which records each request and lets the test answer
 * it with fixture bytes or an error: no socket, no network. The clock is
 * injected through rev_clock.
 */
#include "core/fetch.h"
#include "core/log.h"
#include "core/rev_int.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <ev.h>

#define DATA "test/unit/data/revoke/"

/* ---- fixtures ------------------------------------------------------------------------ */

struct t_file {
    const char *name;
    uint8_t *p;
    size_t len;
};

static struct t_file t_files[64];
static size_t t_nfiles;
static int64_t t_made; /* when make.sh ran */

static const struct t_file *
fx(const char *name)
{
    for (size_t i = 0; i < t_nfiles; i++)
        if (strcmp(t_files[i].name, name) == 0)
            return &t_files[i];
    CAT_ASSERT(t_nfiles < CAT_ARRAY_LEN(t_files));
    char path[256];
    snprintf(path, sizeof(path), DATA "%s", name);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "revoke_test: cannot open %s (run from the repository root)\n", path);
        abort();
    }
    struct t_file *t = &t_files[t_nfiles++];
    t->name = name;
    t->p = malloc(1 << 16);
    CAT_ASSERT(t->p != NULL);
    t->len = fread(t->p, 1, 1 << 16, f);
    fclose(f);
    return t;
}

static void
t_cert(const char *name, struct rev_cert *c)
{
    const struct t_file *f = fx(name);
    const char *err = NULL;
    if (rev_cert_parse(f->p, f->len, c, &err) != CAT_OK)
        fail_msg("%s: %s", name, err);
}

static int64_t t_now;

static int64_t
t_clock(void)
{
    return t_now;
}

static int
t_setup(void **state)
{
    const struct t_file *n = fx("now.txt");
    char buf[32];
    snprintf(buf, sizeof(buf), "%.*s", (int)CAT_MIN(n->len, sizeof(buf) - 1), (const char *)n->p);
    t_made = strtoll(buf, NULL, 10);
    assert_true(t_made > 1700000000);
    t_now = t_made + 60;
    rev_clock = t_clock;
    return 0;
}

/* ---- DER, times, certificates --------------------------------------------------------- */

static int64_t
t_time(uint8_t tag, const char *s)
{
    int64_t t = -1;
    struct rev_span v = {(const uint8_t *)s, strlen(s)};
    if (rev_der_time(tag, v, &t) != CAT_OK)
        return -1;
    return t;
}

static void
test_der_times(void **state)
{
    assert_int_equal(t_time(0x17, "700101000000Z"), 0);
    assert_int_equal(t_time(0x17, "491231235959Z"), 2524607999); /* 2049 */
    assert_int_equal(t_time(0x17, "500101000000Z"), -631152000); /* 1950 */
    assert_int_equal(t_time(0x18, "20261130074443Z"), 1796024683);
    assert_int_equal(t_time(0x18, "20261130074443.123Z"), 1796024683);
    assert_int_equal(t_time(0x18, "20240229000000Z"), 1709164800);
    assert_int_equal(t_time(0x18, "21261106074443Z"), 4949624683);
    const char *bad[] = {"20230229000000Z",
                         "20261301000000Z",
                         "20261100000000Z",
                         "20261131000000Z",
                         "20261130240000Z",
                         "20261130236000Z",
                         "20261130000060Z",
                         "2026113000000Z",
                         "20261130000000",
                         "2026113000000aZ",
                         "20261130000000.Z",
                         "20261130000000+0100",
                         "20261130000000.1234567890123Z"};
    for (size_t i = 0; i < CAT_ARRAY_LEN(bad); i++)
        if (t_time(0x18, bad[i]) != -1)
            fail_msg("accepted %s", bad[i]);
    assert_int_equal(t_time(0x17, "2611300000Z"), -1);
    assert_int_equal(t_time(0x17, "261130000000.1Z"), -1);
    assert_int_equal(t_time(0x04, "261130000000Z"), -1);
    char s[32];
    rev_time_str(1796024683, s);
    assert_string_equal(s, "2026-11-30 07:44:43Z");
}

static void
test_der_walker(void **state)
{
    /* SEQUENCE { INTEGER 5 } then a long-form length. */
    static const uint8_t ok[] = {0x30, 0x03, 0x02, 0x01, 0x05, 0x04, 0x81, 0x01, 0xaa};
    struct rev_span rd = {ok, sizeof(ok)}, v, w;
    uint8_t tag;
    assert_int_equal(rev_der_get(&rd, 0x30, &v, &w), CAT_OK);
    assert_int_equal(v.len, 3);
    assert_int_equal(w.len, 5);
    assert_int_equal(rev_der_get(&rd, 0x30, &v, NULL), CAT_ERR); /* wrong tag: unchanged */
    assert_int_equal(rd.len, 4);
    assert_int_equal(rev_der_next(&rd, &tag, &v, NULL), CAT_OK);
    assert_int_equal(tag, 0x04);
    assert_int_equal(v.p[0], 0xaa);
    assert_int_equal(rd.len, 0);
    assert_int_equal(rev_der_next(&rd, &tag, &v, NULL), CAT_ERR);
    static const uint8_t *bad[] = {
        (const uint8_t *)"\x30\x80\x00\x00",             /* indefinite length */
        (const uint8_t *)"\x30\x05\x02\x01",             /* past the end */
        (const uint8_t *)"\x1f\x01\x00",                 /* multi-byte tag */
        (const uint8_t *)"\x04\x85\x01\x00\x00\x00\x00", /* five length octets */
        (const uint8_t *)"\x04\x82\x01",                 /* truncated length */
    };
    static const size_t blen[] = {4, 4, 3, 7, 3};
    for (size_t i = 0; i < CAT_ARRAY_LEN(bad); i++) {
        struct rev_span b = {bad[i], blen[i]};
        assert_int_equal(rev_der_next(&b, &tag, &v, NULL), CAT_ERR);
        assert_int_equal(b.len, blen[i]);
    }
}

static bool
span_is(struct rev_span s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.p, lit, s.len) == 0;
}

static void
test_cert_fields(void **state)
{
    struct rev_cert good, ca, revoked, responder, rogue, bare;
    struct rev_urls u;
    t_cert("good.der", &good);
    t_cert("ca.der", &ca);
    t_cert("revoked.der", &revoked);
    t_cert("responder.der", &responder);
    t_cert("rogue.der", &rogue);
    t_cert("bare.der", &bare);

    assert_true(rev_span_eq(good.serial, "\x10\x01", 2));
    assert_true(rev_span_eq(revoked.serial, "\x00\x8f\x02", 3));
    assert_true(rev_span_eq(good.issuer, ca.subject.p, ca.subject.len));
    assert_true(ca.is_ca && !good.is_ca);
    assert_true(ca.has_ku && (ca.ku & REV_KU_CRLSIGN));
    assert_true(responder.has_eku && responder.eku_ocsp);
    assert_true(rogue.has_eku && !rogue.eku_ocsp);
    assert_false(good.unknown_critical);
    assert_true(good.not_before < t_now && t_now < good.not_after);

    /* The ldap:// entries come first in the certificate: skipped, counted. */
    rev_cert_ocsp_urls(&good, &u);
    assert_int_equal(u.n, 1);
    assert_int_equal(u.other, 1);
    assert_true(span_is(u.url[0], "http://ocsp.rev.test:8080/"));
    rev_cert_crl_urls(&good, &u);
    assert_int_equal(u.n, 1);
    assert_int_equal(u.other, 1);
    assert_true(span_is(u.url[0], "http://crl.rev.test/ca.crl"));
    rev_cert_ocsp_urls(&bare, &u);
    assert_int_equal(u.n + u.other, 0);
    rev_cert_crl_urls(&bare, &u);
    assert_int_equal(u.n + u.other, 0);

    const char *err;
    assert_int_equal(rev_cert_signed_by(&good, &ca, &err), CAT_OK);
    assert_int_equal(rev_cert_signed_by(&responder, &ca, &err), CAT_OK);
    struct rev_cert other;
    t_cert("other.der", &other);
    assert_int_equal(rev_cert_signed_by(&good, &other, &err), CAT_ERR);

    /* Truncated and bit-flipped certificates never parse into something else silently. */
    const struct t_file *f = fx("good.der");
    struct rev_cert c;
    for (size_t n = 0; n < f->len; n++)
        assert_int_equal(rev_cert_parse(f->p, n, &c, &err), CAT_ERR);
}

/* ---- OCSP ------------------------------------------------------------------------------ */

static void
test_ocsp_request(void **state)
{
    struct rev_cert good, ca;
    uint8_t req[512];
    t_cert("good.der", &good);
    t_cert("ca.der", &ca);
    size_t n = rev_ocsp_request(&good, &ca, req, sizeof(req));
    const struct t_file *want = fx("req_good.der"); /* openssl ocsp -no_nonce -reqout */
    assert_int_equal(n, want->len);
    assert_memory_equal(req, want->p, n);
    assert_int_equal(rev_ocsp_request(&good, &ca, req, n - 1), 0);
}

static int
t_ocsp(const char *resp, const char *cert, const char *issuer, struct rev_verdict *v)
{
    struct rev_cert c, i;
    t_cert(cert, &c);
    t_cert(issuer, &i);
    const struct t_file *r = fx(resp);
    return rev_ocsp_check(r->p, r->len, &c, &i, t_now, v);
}

static void
t_ocsp_expect(const char *resp, const char *cert, const char *issuer, int rc, enum rev_status st,
              const char *why)
{
    struct rev_verdict v;
    int got = t_ocsp(resp, cert, issuer, &v);
    if (got != rc || (rc == CAT_OK && v.status != st) ||
        (why != NULL && strstr(v.why, why) == NULL))
        fail_msg("%s for %s: rc %d status %s why \"%s\"; want rc %d status %s why \"%s\"", resp,
                 cert, got, rev_status_str(v.status), v.why, rc, rev_status_str(st),
                 why ? why : "");
}

static void
test_ocsp_verify(void **state)
{
    t_ocsp_expect("ocsp_good.der", "good.der", "ca.der", CAT_OK, REV_GOOD, NULL);
    t_ocsp_expect("ocsp_good_by_ca.der", "good.der", "ca.der", CAT_OK, REV_GOOD, NULL);
    t_ocsp_expect("ocsp_good_keyid.der", "good.der", "ca.der", CAT_OK, REV_GOOD, NULL);
    t_ocsp_expect("ocsp_good_sha1.der", "good.der", "ca.der", CAT_OK, REV_GOOD, NULL);
    t_ocsp_expect("ocsp_good_ed25519.der", "good.der", "ca.der", CAT_OK, REV_GOOD, NULL);
    t_ocsp_expect("ocsp_good_nonext.der", "good.der", "ca.der", CAT_OK, REV_GOOD, NULL);
    t_ocsp_expect("ocsp_unknown.der", "unknown.der", "ca.der", CAT_OK, REV_UNKNOWN, NULL);
    t_ocsp_expect("ocsp_multi.der", "good.der", "ca.der", CAT_OK, REV_GOOD, NULL);
    t_ocsp_expect("ocsp_multi.der", "bare.der", "ca.der", CAT_OK, REV_GOOD, NULL);
    t_ocsp_expect("ocsp_multi.der", "revoked.der", "ca.der", CAT_OK, REV_REVOKED, NULL);
    t_ocsp_expect("ocsp_rsa_good.der", "rsa_good.der", "rsaca.der", CAT_OK, REV_GOOD, NULL);
    t_ocsp_expect("ocsp_rsa_pss.der", "rsa_good.der", "rsaca.der", CAT_OK, REV_GOOD, NULL);

    struct rev_verdict v;
    assert_int_equal(t_ocsp("ocsp_revoked.der", "revoked.der", "ca.der", &v), CAT_OK);
    assert_int_equal(v.status, REV_REVOKED);
    assert_int_equal(v.reason, 1);
    assert_true(v.revoked_at > t_made - 60 && v.revoked_at <= t_made);
    assert_true(v.this_update <= t_now && v.next_update > t_now + 86400L * 365 * 50);
    assert_int_equal(t_ocsp("ocsp_rsa_revoked.der", "rsa_revoked.der", "rsaca.der", &v), CAT_OK);
    assert_int_equal(v.status, REV_REVOKED);
    assert_int_equal(v.reason, 4);
    assert_string_equal(rev_reason_str(4), "superseded");

    /* Not trustworthy, or not about this certificate. */
    t_ocsp_expect("ocsp_by_rogue.der", "good.der", "ca.der", CAT_ERR, 0, "OCSPSigning");
    t_ocsp_expect("ocsp_badsig.der", "good.der", "ca.der", CAT_ERR, 0, "bad signature");
    t_ocsp_expect("ocsp_by_other.der", "good.der", "ca.der", CAT_ERR, 0,
                  "not signed by the issuer");
    t_ocsp_expect("ocsp_good.der", "revoked.der", "ca.der", CAT_ERR, 0,
                  "not about this certificate");
    t_ocsp_expect("ocsp_good_by_ca.der", "good.der", "other.der", CAT_ERR, 0, "responder");
    t_ocsp_expect("ocsp_rsa_good.der", "good.der", "ca.der", CAT_ERR, 0, "responder");
    t_ocsp_expect("crl.der", "good.der", "ca.der", CAT_ERR, 0, "not an OCSP response");

    /* A responder error status. */
    static const uint8_t try_later[] = {0x30, 0x03, 0x0a, 0x01, 0x03};
    struct rev_cert good, ca;
    t_cert("good.der", &good);
    t_cert("ca.der", &ca);
    assert_int_equal(rev_ocsp_check(try_later, sizeof(try_later), &good, &ca, t_now, &v), CAT_ERR);
    assert_string_equal(v.why, "responder said tryLater");
    assert_int_equal(rev_ocsp_check(NULL, 0, &good, &ca, t_now, &v), CAT_ERR);
}

static void
test_ocsp_dates(void **state)
{
    int64_t saved = t_now;
    struct rev_verdict v;
    /* nextUpdate one minute after thisUpdate: fine until then, stale beyond the skew. */
    assert_int_equal(t_ocsp("ocsp_good_1min.der", "good.der", "ca.der", &v), CAT_OK);
    int64_t next = v.next_update;
    assert_int_equal(next, v.this_update + 60);
    t_now = next + REV_SKEW_S;
    t_ocsp_expect("ocsp_good_1min.der", "good.der", "ca.der", CAT_OK, REV_GOOD, NULL);
    t_now = next + REV_SKEW_S + 1;
    t_ocsp_expect("ocsp_good_1min.der", "good.der", "ca.der", CAT_ERR, 0, "stale response");
    /* From the future. */
    assert_int_equal(t_ocsp("ocsp_good.der", "good.der", "ca.der", &v), CAT_OK);
    t_now = v.this_update - REV_SKEW_S - 1;
    t_ocsp_expect("ocsp_good.der", "good.der", "ca.der", CAT_ERR, 0, "from the future");
    t_now = v.this_update - REV_SKEW_S;
    t_ocsp_expect("ocsp_good.der", "good.der", "ca.der", CAT_OK, REV_GOOD, NULL);
    /* No nextUpdate: good for a day. */
    t_now = saved;
    assert_int_equal(t_ocsp("ocsp_good_nonext.der", "good.der", "ca.der", &v), CAT_OK);
    assert_int_equal(v.next_update, 0);
    t_now = v.this_update + REV_NO_NEXT_MAX_AGE + REV_SKEW_S;
    t_ocsp_expect("ocsp_good_nonext.der", "good.der", "ca.der", CAT_OK, REV_GOOD, NULL);
    t_now += 1;
    t_ocsp_expect("ocsp_good_nonext.der", "good.der", "ca.der", CAT_ERR, 0, "stale response");
    t_now = saved;
}

/* Every single-bit change and every truncation of a signed response is refused. */
static void
test_ocsp_tamper(void **state)
{
    const char *names[] = {"ocsp_good.der", "ocsp_good_by_ca.der", "ocsp_good_ed25519.der"};
    struct rev_cert good, ca;
    t_cert("good.der", &good);
    t_cert("ca.der", &ca);
    for (size_t k = 0; k < CAT_ARRAY_LEN(names); k++) {
        const struct t_file *f = fx(names[k]);
        uint8_t *b = malloc(f->len);
        assert_non_null(b);
        struct rev_verdict v;
        for (size_t i = 0; i < f->len; i++) {
            memcpy(b, f->p, f->len);
            b[i] ^= 0x01;
            if (rev_ocsp_check(b, f->len, &good, &ca, t_now, &v) == CAT_OK)
                fail_msg("%s: flipping byte %zu still verifies", names[k], i);
        }
        for (size_t n = 0; n < f->len; n++)
            assert_int_equal(rev_ocsp_check(f->p, n, &good, &ca, t_now, &v), CAT_ERR);
        free(b);
    }
}

/* ---- CRLs ------------------------------------------------------------------------------ */

#define CRL_URL "http://crl.rev.test/ca.crl"

static struct rev_crl *
t_crl(const char *name, const char *issuer, char *why)
{
    struct rev_cert i;
    t_cert(issuer, &i);
    const struct t_file *f = fx(name);
    return rev_crl_load(f->p, f->len, CRL_URL, &i, t_now, why, 160);
}

static enum rev_status
t_crl_status(struct rev_crl *crl, const char *cert, struct rev_verdict *v)
{
    struct rev_cert c;
    t_cert(cert, &c);
    assert_int_equal(rev_crl_find(crl, &c, v), CAT_OK);
    return v->status;
}

static void
test_crl(void **state)
{
    char why[160];
    struct rev_verdict v;
    const char *same[] = {"crl.der", "crl.pem", "crl_idp.der"};
    for (size_t i = 0; i < CAT_ARRAY_LEN(same); i++) {
        struct rev_crl *crl = t_crl(same[i], "ca.der", why);
        if (crl == NULL)
            fail_msg("%s: %s", same[i], why);
        assert_int_equal(rev_crl_entries(crl), 1);
        assert_int_equal(t_crl_status(crl, "revoked.der", &v), REV_REVOKED);
        assert_int_equal(v.reason, 1);
        assert_true(v.revoked_at > t_made - 60 && v.revoked_at <= t_made);
        assert_int_equal(t_crl_status(crl, "good.der", &v), REV_GOOD);
        assert_int_equal(v.next_update, rev_crl_next_update(crl));
        assert_int_equal(t_crl_status(crl, "unknown.der", &v), REV_GOOD);
        /* A certificate of another issuer is not answered by this CRL. */
        struct rev_cert rsa;
        t_cert("rsa_good.der", &rsa);
        assert_int_equal(rev_crl_find(crl, &rsa, &v), CAT_ERR);
        rev_crl_free(crl);
    }
    struct rev_crl *crl = t_crl("crl_empty.der", "ca.der", why);
    assert_non_null(crl);
    assert_int_equal(t_crl_status(crl, "revoked.der", &v), REV_GOOD);
    rev_crl_free(crl);
    crl = t_crl("crl_rsa.der", "rsaca.der", why);
    assert_non_null(crl);
    assert_int_equal(t_crl_status(crl, "rsa_revoked.der", &v), REV_REVOKED);
    assert_int_equal(v.reason, 4);
    assert_int_equal(t_crl_status(crl, "rsa_good.der", &v), REV_GOOD);
    rev_crl_free(crl);

    /* Refused. */
    struct {
        const char *name, *issuer, *why;
    } bad[] = {
        {"crl_other.der", "ca.der", "not the certificate's issuer"},
        {"crl.der", "other.der", "not the certificate's issuer"},
        {"crl_idp_other.der", "ca.der", "another distribution point"},
        {"crl_idp_ca.der", "ca.der", "CA certificates only"},
        {"crl_delta.der", "ca.der", "delta CRL"},
        {"ocsp_good.der", "ca.der", "malformed CRL"},
        {"now.txt", "ca.der", "neither a DER nor a PEM CRL"},
    };
    for (size_t i = 0; i < CAT_ARRAY_LEN(bad); i++) {
        why[0] = '\0';
        crl = t_crl(bad[i].name, bad[i].issuer, why);
        if (crl != NULL || strstr(why, bad[i].why) == NULL)
            fail_msg("%s: loaded %d why \"%s\", want \"%s\"", bad[i].name, crl != NULL, why,
                     bad[i].why);
    }

    /* Dates: a CRL with nextUpdate an hour after thisUpdate. */
    int64_t saved = t_now;
    crl = t_crl("crl_1h.der", "ca.der", why);
    assert_non_null(crl);
    int64_t next = rev_crl_next_update(crl);
    assert_int_equal(t_crl_status(crl, "good.der", &v), REV_GOOD);
    assert_int_equal(next, v.this_update + 3600);
    rev_crl_free(crl);
    t_now = next + REV_SKEW_S;
    crl = t_crl("crl_1h.der", "ca.der", why);
    assert_non_null(crl);
    rev_crl_free(crl);
    t_now = next + REV_SKEW_S + 1;
    assert_null(t_crl("crl_1h.der", "ca.der", why));
    assert_non_null(strstr(why, "expired CRL"));
    t_now = v.this_update - REV_SKEW_S - 1;
    assert_null(t_crl("crl_1h.der", "ca.der", why));
    assert_non_null(strstr(why, "from the future"));
    t_now = saved;
}

static void
test_crl_tamper(void **state)
{
    struct rev_cert ca;
    t_cert("ca.der", &ca);
    const struct t_file *f = fx("crl.der");
    uint8_t *b = malloc(f->len);
    assert_non_null(b);
    char why[160];
    for (size_t i = 0; i < f->len; i++) {
        memcpy(b, f->p, f->len);
        b[i] ^= 0x01;
        struct rev_crl *crl = rev_crl_load(b, f->len, CRL_URL, &ca, t_now, why, sizeof(why));
        if (crl != NULL)
            fail_msg("flipping byte %zu of the CRL still verifies", i);
    }
    for (size_t n = 0; n < f->len; n++)
        assert_null(rev_crl_load(f->p, n, CRL_URL, &ca, t_now, why, sizeof(why)));
    free(b);
}

/* ---- the shared cache --------------------------------------------------------------------- */

static void
test_cache(void **state)
{
    assert_int_equal(rev_cache_acquire(), CAT_OK);
    rev_cache_flush();
    struct rev_cert good, revoked, ca;
    t_cert("good.der", &good);
    t_cert("revoked.der", &revoked);
    t_cert("ca.der", &ca);
    uint8_t k1[REV_KEY_LEN], k2[REV_KEY_LEN], k3[REV_KEY_LEN];
    rev_answer_key(&good, &ca, k1);
    rev_answer_key(&revoked, &ca, k2);
    assert_memory_not_equal(k1, k2, REV_KEY_LEN);

    struct rev_answer a = {.status = REV_GOOD, .source = "ocsp", .detail = "fine"}, out;
    int64_t now = 1000;
    rev_cache_put_answer(k1, &a, now + 100, now);
    assert_true(rev_cache_get_answer(k1, now + 99, &out));
    assert_int_equal(out.status, REV_GOOD);
    assert_string_equal(out.detail, "fine");
    assert_false(rev_cache_get_answer(k2, now, &out));
    assert_false(rev_cache_get_answer(k1, now + 100, &out)); /* expired and dropped */
    assert_false(rev_cache_get_answer(k1, now, &out));
    rev_cache_put_answer(k1, &a, now, now); /* already expired: not kept */
    assert_false(rev_cache_get_answer(k1, now - 1, &out));

    /* LRU: two entries at most; a hit makes an entry recent. */
    struct rev_cache_limits lim = {.answers = 2, .crls = 4, .crl_bytes = 1 << 20, .down = 2};
    rev_cache_set_limits(&lim);
    memset(k3, 7, sizeof(k3));
    rev_cache_put_answer(k1, &a, now + 100, now);
    rev_cache_put_answer(k2, &a, now + 100, now);
    assert_true(rev_cache_get_answer(k1, now, &out));
    rev_cache_put_answer(k3, &a, now + 100, now);
    assert_true(rev_cache_get_answer(k1, now, &out));
    assert_false(rev_cache_get_answer(k2, now, &out));
    assert_true(rev_cache_get_answer(k3, now, &out));
    /* The same key replaces. */
    a.status = REV_REVOKED;
    rev_cache_put_answer(k3, &a, now + 100, now);
    assert_true(rev_cache_get_answer(k3, now, &out));
    assert_int_equal(out.status, REV_REVOKED);
    struct rev_cache_stats st;
    rev_cache_get_stats(&st);
    assert_int_equal(st.answers, 2);

    /* Failed URLs. */
    char why[64];
    rev_cache_put_down("http://a.test/", "connect refused", now + REV_FAIL_LIFE_S, now);
    assert_true(rev_cache_is_down("http://a.test/", now + REV_FAIL_LIFE_S - 1, why, sizeof(why)));
    assert_string_equal(why, "connect refused");
    assert_false(rev_cache_is_down("http://b.test/", now, why, sizeof(why)));
    assert_false(rev_cache_is_down("http://a.test/", now + REV_FAIL_LIFE_S, why, sizeof(why)));

    /* CRLs: kept per URL and issuer key; bounded by memory. */
    char cwhy[160];
    const struct t_file *f = fx("crl.der");
    struct rev_crl *crl = rev_crl_load(f->p, f->len, CRL_URL, &ca, t_now, cwhy, sizeof(cwhy));
    assert_non_null(crl);
    struct rev_verdict v;
    rev_cache_put_crl(CRL_URL, &ca, crl, t_now + 100, t_now);
    assert_int_equal(rev_cache_find_crl(CRL_URL, &revoked, &ca, t_now, &v), CAT_OK);
    assert_int_equal(v.status, REV_REVOKED);
    assert_int_equal(rev_cache_find_crl(CRL_URL, &good, &ca, t_now, &v), CAT_OK);
    assert_int_equal(v.status, REV_GOOD);
    assert_int_equal(rev_cache_find_crl("http://other.test/x.crl", &good, &ca, t_now, &v),
                     CAT_DECLINED);
    struct rev_cert other;
    t_cert("other.der", &other);
    assert_int_equal(rev_cache_find_crl(CRL_URL, &good, &other, t_now, &v), CAT_DECLINED);
    assert_int_equal(rev_cache_find_crl(CRL_URL, &good, &ca, t_now + 100, &v), CAT_DECLINED);
    lim.crl_bytes = 10; /* smaller than any CRL: not kept */
    rev_cache_set_limits(&lim);
    crl = rev_crl_load(f->p, f->len, CRL_URL, &ca, t_now, cwhy, sizeof(cwhy));
    rev_cache_put_crl(CRL_URL, &ca, crl, t_now + 100, t_now);
    assert_int_equal(rev_cache_find_crl(CRL_URL, &good, &ca, t_now, &v), CAT_DECLINED);

    lim = (struct rev_cache_limits){
        .answers = 10000, .crls = 32, .crl_bytes = 64 << 20, .down = 1024};
    rev_cache_set_limits(&lim);
    rev_cache_flush();
    rev_cache_release();
}

/* Workers share the cache: concurrent puts, gets and evictions stay consistent. */
static void *
t_cache_worker(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    struct rev_answer a = {.status = REV_GOOD, .source = "ocsp"}, out;
    for (int i = 0; i < 20000; i++) {
        uint8_t key[REV_KEY_LEN] = {0};
        seed = seed * 1103515245u + 12345u;
        key[0] = (uint8_t)(seed >> 16);
        key[1] = (uint8_t)(seed >> 24) & 3;
        snprintf(a.detail, sizeof(a.detail), "%u.%u", key[0], key[1]);
        if (i % 3 == 0) {
            rev_cache_put_answer(key, &a, 2000, 1000);
        } else if (rev_cache_get_answer(key, 1000, &out)) {
            char want[16];
            snprintf(want, sizeof(want), "%u.%u", key[0], key[1]);
            if (strcmp(out.detail, want) != 0)
                return (void *)1;
        }
        if (i % 1000 == 0)
            rev_cache_put_down("http://x.test/", "down", 1001 + (i % 7), 1000);
    }
    return NULL;
}

static void
test_cache_threads(void **state)
{
    assert_int_equal(rev_cache_acquire(), CAT_OK);
    rev_cache_flush();
    struct rev_cache_limits lim = {.answers = 200, .crls = 4, .crl_bytes = 1 << 20, .down = 4};
    rev_cache_set_limits(&lim);
    pthread_t t[4];
    for (uintptr_t i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, t_cache_worker, (void *)(i + 1)), 0);
    for (int i = 0; i < 4; i++) {
        void *rv;
        assert_int_equal(pthread_join(t[i], &rv), 0);
        assert_null(rv);
    }
    struct rev_cache_stats st;
    rev_cache_get_stats(&st);
    assert_true(st.answers > 0 && st.answers <= 200);
    lim = (struct rev_cache_limits){
        .answers = 10000, .crls = 32, .crl_bytes = 64 << 20, .down = 1024};
    rev_cache_set_limits(&lim);
    rev_cache_flush();
    rev_cache_release();
}

/* ---- the asynchronous driver, with core/fetch replaced -----------------------------------------
 */

/* The stand-in for core/fetch: requests are recorded; the test answers them. */
struct fetch {
    struct fetch *next;
    char url[FETCH_MAX_URL];
    char method[8];
    char ct[64];
    uint8_t body[512];
    size_t body_len, max;
    unsigned timeout_ms;
    fetch_cb *cb;
    void *arg;
};

static struct fetch *t_fetches;
static int t_started, t_cancelled;
static bool in_check; /* a callback seeing this true ran inside rev_check() */

struct fetch *
fetch_start(struct ev_loop *loop, struct res *res, const char *url, const char *method,
            const char *content_type, const uint8_t *body, size_t body_len, size_t max_response,
            unsigned timeout_ms, fetch_cb *cb, void *arg)
{
    struct fetch *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->url, sizeof(f->url), "%s", url);
    snprintf(f->method, sizeof(f->method), "%s", method);
    snprintf(f->ct, sizeof(f->ct), "%s", content_type ? content_type : "");
    assert_true(body_len <= sizeof(f->body));
    if (body_len > 0)
        memcpy(f->body, body, body_len);
    f->body_len = body_len;
    f->max = max_response;
    f->timeout_ms = timeout_ms;
    f->cb = cb;
    f->arg = arg;
    f->next = t_fetches;
    t_fetches = f;
    t_started++;
    return f;
}

static bool
t_unlink(struct fetch *f)
{
    for (struct fetch **pp = &t_fetches; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == f) {
            *pp = f->next;
            return true;
        }
    }
    return false;
}

void
fetch_cancel(struct fetch *f)
{
    if (f == NULL)
        return;
    assert_true(t_unlink(f));
    t_cancelled++;
    free(f);
}

static struct fetch *
t_pending(const char *url)
{
    for (struct fetch *f = t_fetches; f != NULL; f = f->next)
        if (strcmp(f->url, url) == 0)
            return f;
    return NULL;
}

static int
t_npending(void)
{
    int n = 0;
    for (struct fetch *f = t_fetches; f != NULL; f = f->next)
        n++;
    return n;
}

/* Answers the request for url as the loop would: status, body (a fixture) or an error. */
static void
t_reply(const char *url, int status, const char *fixture, const char *err)
{
    struct fetch *f = t_pending(url);
    if (f == NULL)
        fail_msg("no request pending for %s", url);
    assert_true(t_unlink(f));
    const struct t_file *b = fixture ? fx(fixture) : NULL;
    struct fetch_result r = {
        .status = status, .body = b ? b->p : NULL, .len = b ? b->len : 0, .err = err};
    if (b != NULL)
        assert_true(b->len <= f->max);
    f->cb(f->arg, &r);
    free(f);
}

#define OCSP_URL "http://ocsp.rev.test:8080/"

struct t_env {
    struct ev_loop *loop;
    struct rev_ctx *r;
    int dummy;
};

struct t_call {
    int calls;
    struct rev_answer a;
    struct rev_query *q;
    struct rev_query *cancel_other; /* cancelled from the callback */
};

static void
t_cb(void *arg, const struct rev_answer *a)
{
    struct t_call *c = arg;
    assert_false(in_check);
    c->calls++;
    c->a = *a;
    if (c->cancel_other != NULL)
        rev_cancel(c->cancel_other);
}

static struct t_env *
t_env_new(unsigned timeout_ms)
{
    struct t_env *e = calloc(1, sizeof(*e));
    assert_non_null(e);
    e->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(e->loop);
    e->r = rev_ctx_new(e->loop, (struct res *)(void *)&e->dummy, timeout_ms);
    assert_non_null(e->r);
    rev_cache_flush();
    t_started = t_cancelled = 0;
    return e;
}

static void
t_env_free(struct t_env *e)
{
    rev_ctx_free(e->r);
    assert_null(t_fetches); /* freeing the context cancelled every request */
    ev_loop_destroy(e->loop);
    free(e);
}

static int
t_check(struct t_env *e, const char *cert, const char *issuer, struct t_call *c)
{
    const struct t_file *cf = fx(cert), *inf = fx(issuer);
    memset(c, 0, sizeof(*c));
    memset(&c->a, 0x5a, sizeof(c->a));
    in_check = true;
    int rc = rev_check(e->r, cf->p, cf->len, inf->p, inf->len, &c->a, t_cb, c, &c->q);
    in_check = false;
    if (rc == CAT_AGAIN)
        assert_non_null(c->q);
    else
        assert_null(c->q);
    return rc;
}

static void
t_spin(struct t_env *e)
{
    for (int i = 0; i < 5; i++)
        ev_run(e->loop, EVRUN_NOWAIT);
}

static void
test_check_none(void **state)
{
    struct t_env *e = t_env_new(1000);
    struct t_call c;
    assert_int_equal(t_check(e, "bare.der", "ca.der", &c), CAT_OK);
    assert_int_equal(c.a.status, REV_UNKNOWN);
    assert_string_equal(c.a.source, "none");
    assert_string_equal(c.a.detail, "no OCSP or CRL URL in the certificate");
    assert_int_equal(t_check(e, "good.der", "other.der", &c), CAT_OK);
    assert_string_equal(c.a.source, "none");
    assert_non_null(strstr(c.a.detail, "not the certificate's issuer"));
    assert_int_equal(t_check(e, "now.txt", "ca.der", &c), CAT_OK);
    assert_string_equal(c.a.source, "none");
    assert_non_null(strstr(c.a.detail, "certificate: malformed"));
    assert_int_equal(t_started, 0);
    t_env_free(e);
}

static void
test_check_ocsp(void **state)
{
    struct t_env *e = t_env_new(1000);
    struct t_call c, c2;
    assert_int_equal(t_check(e, "good.der", "ca.der", &c), CAT_AGAIN);
    /* A second caller for the same certificate shares the request. */
    assert_int_equal(t_check(e, "good.der", "ca.der", &c2), CAT_AGAIN);
    assert_int_equal(t_npending(), 1);
    struct fetch *f = t_pending(OCSP_URL);
    assert_non_null(f);
    assert_string_equal(f->method, "POST");
    assert_string_equal(f->ct, "application/ocsp-request");
    assert_int_equal(f->max, REV_OCSP_MAX_DEFAULT);
    assert_int_equal(f->timeout_ms, 1000);
    const struct t_file *req = fx("req_good.der");
    assert_int_equal(f->body_len, req->len);
    assert_memory_equal(f->body, req->p, req->len);

    t_reply(OCSP_URL, 200, "ocsp_good.der", NULL);
    assert_int_equal(c.calls, 0); /* delivered from the loop */
    t_spin(e);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c2.calls, 1);
    assert_int_equal(c.a.status, REV_GOOD);
    assert_string_equal(c.a.source, "ocsp");
    assert_string_equal(c.a.detail, "OCSP http://ocsp.rev.test:8080/: good");
    assert_string_equal(c2.a.detail, c.a.detail);

    /* Then from the cache, for a day at most (nextUpdate is a century away). */
    assert_int_equal(t_check(e, "good.der", "ca.der", &c), CAT_OK);
    assert_int_equal(c.a.status, REV_GOOD);
    assert_string_equal(c.a.source, "cache");
    assert_string_equal(c.a.detail, "OCSP http://ocsp.rev.test:8080/: good");
    int64_t saved = t_now;
    t_now += REV_MAX_LIFE_S - 1;
    assert_int_equal(t_check(e, "good.der", "ca.der", &c), CAT_OK);
    t_now += 1;
    assert_int_equal(t_check(e, "good.der", "ca.der", &c), CAT_AGAIN);
    t_now = saved;
    t_reply(OCSP_URL, 200, "ocsp_good.der", NULL);
    t_spin(e);
    assert_int_equal(c.calls, 1);

    /* Revoked. */
    assert_int_equal(t_check(e, "revoked.der", "ca.der", &c), CAT_AGAIN);
    t_reply(OCSP_URL, 200, "ocsp_revoked.der", NULL);
    t_spin(e);
    assert_int_equal(c.a.status, REV_REVOKED);
    assert_string_equal(c.a.source, "ocsp");
    char rt[32], want[160];
    struct rev_verdict v;
    assert_int_equal(t_ocsp("ocsp_revoked.der", "revoked.der", "ca.der", &v), CAT_OK);
    rev_time_str(v.revoked_at, rt);
    snprintf(want, sizeof(want),
             "OCSP http://ocsp.rev.test:8080/: revoked (reason 1: keyCompromise) at %s", rt);
    assert_string_equal(c.a.detail, want);

    struct rev_stats st;
    rev_get_stats(e->r, &st);
    assert_int_equal(st.checks, 6);
    assert_int_equal(st.ocsp_fetches, 3);
    assert_int_equal(st.coalesced, 1);
    assert_int_equal(st.cache_hits, 2);
    assert_int_equal(st.crl_fetches, 0);
    t_env_free(e);
}

static void
test_check_no_next_update(void **state)
{
    struct t_env *e = t_env_new(1000);
    struct t_call c;
    assert_int_equal(t_check(e, "good.der", "ca.der", &c), CAT_AGAIN);
    t_reply(OCSP_URL, 200, "ocsp_good_nonext.der", NULL);
    t_spin(e);
    assert_int_equal(c.a.status, REV_GOOD);
    /* Floored to a few minutes. */
    int64_t saved = t_now;
    t_now += REV_MIN_LIFE_S - 1;
    assert_int_equal(t_check(e, "good.der", "ca.der", &c), CAT_OK);
    t_now += 1;
    assert_int_equal(t_check(e, "good.der", "ca.der", &c), CAT_AGAIN);
    t_now = saved;
    t_env_free(e);
}

static void
test_check_fallback_to_crl(void **state)
{
    struct t_env *e = t_env_new(1000);
    struct t_call c1, c2;
    /* The responder is down: both certificates go on to the one CRL download. */
    assert_int_equal(t_check(e, "revoked.der", "ca.der", &c1), CAT_AGAIN);
    t_reply(OCSP_URL, 0, NULL, "connect to 127.0.0.1:8080: Connection refused");
    assert_non_null(t_pending(CRL_URL));
    assert_int_equal(t_check(e, "good.der", "ca.der", &c2), CAT_AGAIN); /* OCSP skipped */
    assert_null(t_pending(OCSP_URL));
    assert_int_equal(t_npending(), 1);
    struct fetch *f = t_pending(CRL_URL);
    assert_string_equal(f->method, "GET");
    assert_int_equal(f->max, REV_CRL_MAX_DEFAULT);
    t_reply(CRL_URL, 200, "crl.der", NULL);
    t_spin(e);
    assert_int_equal(c1.calls, 1);
    assert_int_equal(c2.calls, 1);
    assert_int_equal(c1.a.status, REV_REVOKED);
    assert_string_equal(c1.a.source, "crl");
    assert_non_null(strstr(c1.a.detail, "CRL http://crl.rev.test/ca.crl: revoked (reason 1: "
                                        "keyCompromise) at "));
    assert_int_equal(c2.a.status, REV_GOOD);
    assert_string_equal(c2.a.detail, "CRL http://crl.rev.test/ca.crl: good");

    /* Another certificate of the issuer, while OCSP is down: the cached CRL answers at once. */
    assert_int_equal(t_check(e, "unknown.der", "ca.der", &c1), CAT_OK);
    assert_int_equal(c1.a.status, REV_GOOD);
    assert_string_equal(c1.a.source, "crl");
    assert_string_equal(c1.a.detail, "CRL http://crl.rev.test/ca.crl: good (cached CRL)");
    assert_int_equal(t_npending(), 0);

    /* Unusable OCSP answers (forged, or "unknown") also fall through to the CRL. */
    t_now += REV_FAIL_LIFE_S; /* the responder is back */
    rev_cache_flush();
    assert_int_equal(t_check(e, "good.der", "ca.der", &c1), CAT_AGAIN);
    t_reply(OCSP_URL, 200, "ocsp_by_rogue.der", NULL);
    t_reply(CRL_URL, 200, "crl.der", NULL);
    t_spin(e);
    assert_int_equal(c1.a.status, REV_GOOD);
    assert_string_equal(c1.a.source, "crl");
    assert_int_equal(t_check(e, "unknown.der", "ca.der", &c1), CAT_AGAIN);
    t_reply(OCSP_URL, 200, "ocsp_unknown.der", NULL);
    t_spin(e); /* the CRL is cached now */
    assert_int_equal(c1.calls, 1);
    assert_string_equal(c1.a.source, "crl");
    t_now -= REV_FAIL_LIFE_S;
    t_env_free(e);
}

static void
test_check_all_down(void **state)
{
    struct t_env *e = t_env_new(1000);
    struct t_call c;
    assert_int_equal(t_check(e, "good.der", "ca.der", &c), CAT_AGAIN);
    t_reply(OCSP_URL, 0, NULL, "timeout after 1000 ms (connecting to 127.0.0.1:8080)");
    t_reply(CRL_URL, 503, NULL, "HTTP 503 Service Unavailable");
    t_spin(e);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.a.status, REV_UNKNOWN);
    assert_string_equal(c.a.source, "crl");
    assert_string_equal(c.a.detail, "OCSP ocsp.rev.test:8080: timeout after 1000 ms (connecting "
                                    "to 127.0.0.1:8080); CRL crl.rev.test: HTTP 503 Service "
                                    "Unavailable");
    /* Again: from the cache, at once. */
    assert_int_equal(t_check(e, "good.der", "ca.der", &c), CAT_OK);
    assert_int_equal(c.a.status, REV_UNKNOWN);
    assert_string_equal(c.a.source, "cache");
    /* Another certificate with the same dead sources: answered at once too. */
    assert_int_equal(t_check(e, "revoked.der", "ca.der", &c), CAT_OK);
    assert_int_equal(c.a.status, REV_UNKNOWN);
    assert_string_equal(c.a.source, "cache");
    assert_string_equal(c.a.detail, "OCSP ocsp.rev.test:8080 failed recently: timeout after 1000 "
                                    "ms (connecting to 127.0.0.1:8080); CRL crl.rev.test failed "
                                    "recently: HTTP 503 Service Unavailable");
    assert_int_equal(t_npending(), 0);
    /* 30 s later they are asked again. */
    t_now += REV_FAIL_LIFE_S;
    assert_int_equal(t_check(e, "good.der", "ca.der", &c), CAT_AGAIN);
    assert_non_null(t_pending(OCSP_URL));
    /* A 404 is not "down": the next certificate still asks. */
    t_reply(OCSP_URL, 200, "ocsp_good.der", NULL);
    t_spin(e);
    assert_int_equal(c.a.status, REV_GOOD);
    assert_int_equal(t_check(e, "revoked.der", "ca.der", &c), CAT_AGAIN);
    t_reply(OCSP_URL, 404, NULL, "HTTP 404 Not Found");
    t_reply(CRL_URL, 404, NULL, "HTTP 404 Not Found");
    t_spin(e);
    assert_int_equal(c.a.status, REV_UNKNOWN);
    assert_int_equal(t_check(e, "unknown.der", "ca.der", &c), CAT_AGAIN);
    assert_non_null(t_pending(OCSP_URL));
    t_now -= REV_FAIL_LIFE_S;
    t_env_free(e);
}

static void
test_check_cancel(void **state)
{
    struct t_env *e = t_env_new(1000);
    struct t_call c1, c2, c3;
    assert_int_equal(t_check(e, "good.der", "ca.der", &c1), CAT_AGAIN);
    assert_int_equal(t_check(e, "good.der", "ca.der", &c2), CAT_AGAIN);
    assert_int_equal(t_check(e, "good.der", "ca.der", &c3), CAT_AGAIN);
    rev_cancel(c2.q);
    rev_cancel(NULL);
    /* Callers hear in reverse order of arrival: c3 first, and it cancels c1. */
    c3.cancel_other = c1.q;
    t_reply(OCSP_URL, 200, "ocsp_good.der", NULL);
    t_spin(e);
    assert_int_equal(c3.calls, 1);
    assert_int_equal(c2.calls, 0);
    assert_int_equal(c1.calls, 0);
    /* A cancelled check still fills the cache. */
    assert_int_equal(t_check(e, "revoked.der", "ca.der", &c1), CAT_AGAIN);
    rev_cancel(c1.q);
    t_reply(OCSP_URL, 200, "ocsp_revoked.der", NULL);
    t_spin(e);
    assert_int_equal(c1.calls, 0);
    assert_int_equal(t_check(e, "revoked.der", "ca.der", &c1), CAT_OK);
    assert_int_equal(c1.a.status, REV_REVOKED);
    /* Freeing the context with checks in flight: no callback, requests cancelled. */
    assert_int_equal(t_check(e, "unknown.der", "ca.der", &c1), CAT_AGAIN);
    t_env_free(e);
    assert_int_equal(c1.calls, 0);
    assert_int_equal(t_cancelled, 1);
}

static void
test_check_deadline(void **state)
{
    struct t_env *e = t_env_new(10);
    struct t_call c;
    assert_int_equal(t_check(e, "good.der", "ca.der", &c), CAT_AGAIN);
    ev_tstamp t0 = ev_time();
    for (int i = 0; i < 1000 && c.calls == 0; i++)
        ev_run(e->loop, EVRUN_ONCE);
    assert_int_equal(c.calls, 1);
    assert_true(ev_time() - t0 < 0.5);
    assert_int_equal(c.a.status, REV_UNKNOWN);
    assert_string_equal(c.a.detail, "gave up after 20 ms");
    assert_int_equal(t_cancelled, 1);
    assert_int_equal(t_npending(), 0);
    t_env_free(e);
}

static int
t_teardown(void **state)
{
    for (size_t i = 0; i < t_nfiles; i++)
        free(t_files[i].p);
    t_nfiles = 0;
    return 0;
}

int
main(void)
{
    log_set_level(LOG_FAC_MAIN, LOG_WARNING);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_der_times),
        cmocka_unit_test(test_der_walker),
        cmocka_unit_test(test_cert_fields),
        cmocka_unit_test(test_ocsp_request),
        cmocka_unit_test(test_ocsp_verify),
        cmocka_unit_test(test_ocsp_dates),
        cmocka_unit_test(test_ocsp_tamper),
        cmocka_unit_test(test_crl),
        cmocka_unit_test(test_crl_tamper),
        cmocka_unit_test(test_cache),
        cmocka_unit_test(test_cache_threads),
        cmocka_unit_test(test_check_none),
        cmocka_unit_test(test_check_ocsp),
        cmocka_unit_test(test_check_no_next_update),
        cmocka_unit_test(test_check_fallback_to_crl),
        cmocka_unit_test(test_check_all_down),
        cmocka_unit_test(test_check_cancel),
        cmocka_unit_test(test_check_deadline),
    };
    return cmocka_run_group_tests(tests, t_setup, t_teardown);
}
