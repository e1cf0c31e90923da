/* Override tokens: round trip, and every way of forging one fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/override.h"

static int
setup(void **state)
{
    return ovr_init() == CAT_OK ? 0 : -1;
}

static void
test_round_trip(void **state)
{
    char t[OVR_TOKEN_MAX];
    assert_int_equal(ovr_make(t, "site.test", 0x2, "127.0.0.1", 2000), CAT_OK);
    assert_true(ovr_check(t, strlen(t), "site.test", 0x2, "127.0.0.1", 1999));
    assert_true(ovr_check(t, strlen(t), "site.test", 0x2, "127.0.0.1", 2000));
}

static void
test_forgeries_fail(void **state)
{
    char t[OVR_TOKEN_MAX];
    assert_int_equal(ovr_make(t, "site.test", 0x2, "127.0.0.1", 2000), CAT_OK);
    size_t n = strlen(t);
    assert_false(ovr_check(t, n, "other.test", 0x2, "127.0.0.1", 1000));  /* another host */
    assert_false(ovr_check(t, n, "site.test", 0x3, "127.0.0.1", 1000));   /* more errors */
    assert_false(ovr_check(t, n, "site.test", 0x2, "127.0.0.2", 1000));   /* another client */
    assert_false(ovr_check(t, n, "site.test", 0x2, "127.0.0.1", 2001));   /* expired */
    for (size_t i = 0; i < n; i++) {                                      /* any edited char */
        char f[OVR_TOKEN_MAX];
        memcpy(f, t, n + 1);
        f[i] = f[i] == 'A' ? 'B' : 'A';
        assert_false(ovr_check(f, n, "site.test", 0x2, "127.0.0.1", 1000));
    }
    assert_false(ovr_check(t, n - 1, "site.test", 0x2, "127.0.0.1", 1000)); /* truncated */
    assert_false(ovr_check("", 0, "site.test", 0x2, "127.0.0.1", 1000));
    assert_false(ovr_check("!!!!", 4, "site.test", 0x2, "127.0.0.1", 1000));
}

static void
test_cookie_find(void **state)
{
    size_t vl;
    const char *c = "a=1; catena_override=XYZ; b=2";
    const char *v = ovr_cookie_find(c, strlen(c), &vl);
    assert_non_null(v);
    assert_int_equal(vl, 3);
    assert_memory_equal(v, "XYZ", 3);
    c = "xcatena_override=1; catena_overridex=2";
    assert_null(ovr_cookie_find(c, strlen(c), &vl));
    c = "catena_override=";
    v = ovr_cookie_find(c, strlen(c), &vl);
    assert_null(v);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_forgeries_fail),
        cmocka_unit_test(test_cookie_find),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
