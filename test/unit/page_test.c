/* Exception pages: escaping, variables, conditional sections, bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/page.h"

static char *
render(int status, const char *id, const struct page_vars *v, const char *tmpl, int *rc)
{
    static uint8_t mem[PAGE_MAX + 1];
    struct buf b = {.base = mem, .cap = PAGE_MAX};
    *rc = page_render(&b, status, id, v, tmpl);
    mem[b.len] = '\0';
    return (char *)mem;
}

static void
test_escapes_network_values(void **state)
{
    int rc;
    struct page_vars v = {.host = "<script>x</script>", .reason = "a & \"b\" 'c'"};
    char *s = render(502, "tcp_error", &v, NULL, &rc);
    assert_int_equal(rc, CAT_OK);
    assert_null(strstr(s, "<script>"));
    assert_non_null(strstr(s, "&lt;script&gt;x&lt;/script&gt;"));
    assert_non_null(strstr(s, "a &amp; &quot;b&quot; &#39;c&#39;"));
    assert_non_null(strstr(s, "HTTP/1.1 502 Bad Gateway\r\n"));
    assert_non_null(strstr(s, "X-Catena-Exception: tcp_error\r\n"));
}

static void
test_content_length_matches_body(void **state)
{
    int rc;
    struct page_vars v = {.host = "h.test"};
    char *s = render(403, "policy_denied", &v, NULL, &rc);
    assert_int_equal(rc, CAT_OK);
    char *cl = strstr(s, "Content-Length: ");
    assert_non_null(cl);
    size_t n = strtoul(cl + 16, NULL, 10);
    char *body = strstr(s, "\r\n\r\n");
    assert_non_null(body);
    assert_int_equal(strlen(body + 4), n);
}

static void
test_conditionals(void **state)
{
    int rc;
    const char *t = "A$(if_override)[$(override_url)]$(end_override)B$(if_host)<$(host)>$(end_host)C";
    struct page_vars v = {.host = "x.test"};
    char *s = render(503, "id", &v, t, &rc);
    assert_int_equal(rc, CAT_OK);
    assert_non_null(strstr(s, "\r\n\r\nAB<x.test>C"));
    v.override_url = "/.catena/override?t=1&u=2";
    s = render(503, "id", &v, t, &rc);
    assert_non_null(strstr(s, "\r\n\r\nA[/.catena/override?t=1&amp;u=2]B<x.test>C"));
}

static void
test_unknown_variable_is_dropped(void **state)
{
    int rc;
    struct page_vars v = {0};
    char *s = render(400, "invalid_request", &v, "x$(nope)y $(status) $(exception.id)", &rc);
    assert_int_equal(rc, CAT_OK);
    assert_non_null(strstr(s, "\r\n\r\nxy 400 invalid_request"));
}

static void
test_oversized_template_fails(void **state)
{
    int rc;
    static char big[PAGE_MAX * 2];
    memset(big, 'a', sizeof(big) - 1);
    struct page_vars v = {0};
    render(500, "id", &v, big, &rc);
    assert_int_equal(rc, CAT_ERR);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escapes_network_values),
        cmocka_unit_test(test_content_length_matches_body),
        cmocka_unit_test(test_conditionals),
        cmocka_unit_test(test_unknown_variable_is_dropped),
        cmocka_unit_test(test_oversized_template_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
