/*
 * Unit tests for the policy engine (core/cpl*): every syntax construct, the
 * exact text of a set of error messages, the evaluator's semantics (first
 * match, per-property override across layers, negation, define conditions,
 * unknown data, CIDRs, domains at label boundaries, categories, headers),
 * the categories file, the limits, and the index against the linear scan on
 * a large random policy. Every evaluation here is also run linearly and the
 * two decisions must be identical.
 */
#include "core/cpl.h"
#include "core/cpl_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

static char err[512];

static struct cpl *
compile_with(const char *text, const struct cpl_cats *cats)
{
    struct cpl *p = cpl_compile(text, strlen(text), "t.cpl", cats, err, sizeof(err));
    if (p == NULL)
        print_error("compile failed: %s\n", err);
    assert_non_null(p);
    return p;
}

static struct cpl *
compile(const char *text)
{
    return compile_with(text, NULL);
}

static void
expect_err_with(const char *text, const struct cpl_cats *cats, const char *want)
{
    memset(err, 'x', sizeof(err));
    struct cpl *p = cpl_compile(text, strlen(text), "t.cpl", cats, err, sizeof(err));
    if (p != NULL || strcmp(err, want) != 0)
        print_error("policy:\n%s\n got: %s\nwant: %s\n", text, p ? "(compiled)" : err, want);
    cpl_free(p);
    assert_null(p);
    assert_string_equal(err, want);
    assert_null(strchr(err, '\n'));
}

static void
expect_err(const char *text, const char *want)
{
    expect_err_with(text, NULL, want);
}

static struct cpl_cats *
cats_parse(const char *text)
{
    struct cpl_cats *c = cpl_cats_parse(text, strlen(text), "c.txt", err, sizeof(err));
    if (c == NULL)
        print_error("categories failed: %s\n", err);
    assert_non_null(c);
    return c;
}

/* Evaluates with the index and linearly; both must agree exactly. */
static struct cpl_decision D;
static const struct cpl_decision *
eval(const struct cpl *p, enum cpl_layer which, const struct cpl_txn *t)
{
    struct cpl_decision lin;
    cpl_decision_init(&D);
    cpl_decision_init(&lin);
    cpl_eval(p, which, t, &D);
    cpl_eval_linear(p, which, t, &lin);
    assert_memory_equal(&D, &lin, sizeof(D));
    return &D;
}

static struct sockaddr_storage addr_store[8];
static size_t addr_next;
static const struct sockaddr *
sa(const char *text)
{
    struct sockaddr_storage *ss = &addr_store[addr_next++ % 8];
    memset(ss, 0, sizeof(*ss));
    if (inet_pton(AF_INET, text, &((struct sockaddr_in *)ss)->sin_addr) == 1)
        ss->ss_family = AF_INET;
    else if (inet_pton(AF_INET6, text, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1)
        ss->ss_family = AF_INET6;
    else
        fail_msg("bad test address %s", text);
    return (const struct sockaddr *)ss;
}

/* --- syntax ---------------------------------------------------------------- */

static void
test_syntax_constructs(void **state)
{
    (void)state;
    const char *text = "; a comment line\n"
                       "\n"
                       "DEFINE CONDITION Trusted   ; case-insensitive keywords\n"
                       "    url.address=192.0.2.0/24\n"
                       "    url.host=\"trusted.example\"\n"
                       "END CONDITION\n"
                       "define condition other\n"
                       "    condition=trusted url.port=443\n"
                       "end\n"
                       "<Proxy \"first layer\"> client.address=10.0.0.0/8\r\n"
                       "  http.method=(GET, 'HEAD') \\\n"
                       "      url.scheme=http,https allow ; comment after a rule\n"
                       "  url.domain=!(a.example,b.example) DENY(\"not a or b\")\n"
                       "  condition=!trusted deny.unauthorized\n"
                       "  condition=(trusted, other) authenticate(corp)\n"
                       "  request.header.X-Test=\"a value; with semicolon\" force_protocol(ssl)\n"
                       "  url.substring=a;b deny\n"
                       "  user=alice url.path=/admin proxy.port=8080..8090 deny\n"
                       "  client.protocol=(http, https, ssl, tcp, socks) allow\n"
                       "  deny\n"
                       "  url.host=only.example ; a rule without properties is an exemption\n"
                       "<ssl-intercept label>\n"
                       "  server.certificate.hostname.category=none ssl.forward_proxy(https) \\\n"
                       "     ssl.forward_proxy.issuer_keyring(default) "
                       "ssl.forward_proxy.hostname(Emu.Example.) \\\n"
                       "     ssl.forward_proxy.splash_text(\"Hello, inspected\") "
                       "ssl.forward_proxy.splash_url(\"https://x.example/why\")\n"
                       "<ssl>\n"
                       "  server.certificate.hostname=a.example server.certificate.validate(no)\n"
                       "  server.certificate.validate.ignore(untrusted_issuer, expiration)\n"
                       "  server.certificate.validate.ignore.revocation(yes) \\\n"
                       "     server.certificate.validate.ignore.hostname_mismatch(no) allow\n"
                       "<exception>\n"
                       "  exception.id=policy_denied deny(\"x\")\n"
                       "<forward>\n"
                       "  url.host=[2001:db8::1] forward(dc-1)\n"
                       "  forward(no)\n";
    struct cpl *p = compile(text);
    size_t nl, nr;
    cpl_stats(p, &nl, &nr);
    assert_int_equal(nl, 5);
    assert_int_equal(nr, 17);
    cpl_free(p);
    /* Empty and comment-only policies compile to nothing. */
    p = compile("");
    cpl_stats(p, &nl, &nr);
    assert_int_equal(nl + nr, 0);
    cpl_free(p);
    p = compile("; only a comment\n\n   \t\n");
    cpl_free(p);
    /* A layer with no rules, a final line without newline, a continuation at the very end. */
    p = compile("<proxy>\n<proxy>\nallow \\");
    cpl_stats(p, &nl, &nr);
    assert_int_equal(nl, 2);
    assert_int_equal(nr, 1);
    cpl_free(p);
}

struct err_case {
    const char *text;
    const char *want;
};

static void
test_error_messages(void **state)
{
    (void)state;
    static const struct err_case cases[] = {
        {"allow\n", "t.cpl:1:1: rule outside a layer: expected a layer header such as <proxy> "
                    "first"},
        {"<cache>\n", "t.cpl:1:2: unknown layer '<cache>': expected <proxy>, <ssl-intercept>, "
                      "<ssl>, <exception> or <forward>"},
        {"<proxy\n", "t.cpl:1:7: expected '>' to close the layer header"},
        {"<", "t.cpl:1:2: expected a layer name after '<': proxy, ssl-intercept, ssl, exception "
              "or forward"},
        {"< >", "t.cpl:1:3: expected a layer name after '<': proxy, ssl-intercept, ssl, exception "
                "or forward"},
        {"<proxy>\n  url.hots=a.example allow\n", "t.cpl:2:3: unknown condition 'url.hots'"},
        {"<proxy>\n  allow permit\n", "t.cpl:2:9: unknown property 'permit'"},
        {"<proxy>\n  url.host(a) allow\n",
         "t.cpl:2:3: 'url.host' is a condition, not a property: expected url.host=VALUE"},
        {"<proxy>\n  deny=yes\n",
         "t.cpl:2:3: 'deny' is a property, not a condition: expected deny(VALUE)"},
        {"<proxy>\n  ssl.forward_proxy(https)\n",
         "t.cpl:2:3: property 'ssl.forward_proxy' is not allowed in a <proxy> layer: expected "
         "it in <ssl-intercept>"},
        {"<ssl-intercept>\n  deny\n",
         "t.cpl:2:3: property 'deny' is not allowed in a <ssl-intercept> layer: expected it in "
         "<proxy> <ssl> <exception>"},
        {"<forward>\n  server.certificate.validate(no)\n",
         "t.cpl:2:3: property 'server.certificate.validate' is not allowed in a <forward> layer: "
         "expected it in <ssl>"},
        {"<proxy>\n  forward(dc)\n",
         "t.cpl:2:3: property 'forward' is not allowed in a <proxy> layer: expected it in "
         "<forward>"},
        {"<proxy>\n  server.certificate.hostname=a.example deny\n",
         "t.cpl:2:3: condition 'server.certificate.hostname' is not allowed in a <proxy> layer "
         "(its data is not known there): expected it in <ssl-intercept> <ssl> <exception>"},
        {"<ssl>\n  exception.id=x allow\n",
         "t.cpl:2:3: condition 'exception.id' is not allowed in a <ssl> layer (its data is not "
         "known there): expected it in <exception>"},
        {"<proxy> deny\n",
         "t.cpl:1:9: property 'deny' on a layer header: expected it in a rule of the layer"},
        {"define condition a\n  url.host=x.example allow\nend\n",
         "t.cpl:2:22: property 'allow' in a define condition: expected conditions only"},
        {"define condition a\n  url.host=x.example\nend\ndefine condition A\n  url.port=1\nend\n",
         "t.cpl:4:18: duplicate define condition 'a' (first defined at line 1)"},
        {"<proxy>\n  condition=nosuch allow\n",
         "t.cpl:2:13: undefined condition 'nosuch': expected a 'define condition nosuch' block"},
        {"define condition a\n  url.port=1\n",
         "t.cpl:1:18: define condition 'a' has no matching 'end'"},
        {"end\n", "t.cpl:1:1: 'end' without a 'define condition' before it"},
        {"define condition a\ndefine condition b\n",
         "t.cpl:2:1: 'define' inside define condition 'a' (line 1): expected 'end' first"},
        {"define condition a\n<proxy>\n",
         "t.cpl:2:1: layer header inside define condition 'a': expected 'end' first"},
        {"define condition a\nend\n",
         "t.cpl:1:18: define condition 'a' is empty: expected at least one line of conditions "
         "before 'end'"},
        {"define subnet a\n",
         "t.cpl:1:8: unsupported definition 'define subnet': expected 'define condition NAME'"},
        {"define condition a\n  condition=b\nend\ndefine condition b\n  condition=a\nend\n",
         "t.cpl:1:18: define condition 'a' refers to itself (through condition=)"},
        {"<proxy>\n  url.host=\"a.example allow\n",
         "t.cpl:2:12: unterminated quoted string: expected a closing \" on the same line"},
        {"<proxy>\n  client.address=10.0.0.0/33 allow\n",
         "t.cpl:2:18: bad address '10.0.0.0/33': expected an IPv4 or IPv6 address with an "
         "optional /prefix"},
        {"<proxy>\n  client.address=10.0.0 allow\n",
         "t.cpl:2:18: bad address '10.0.0': expected an IPv4 or IPv6 address with an optional "
         "/prefix"},
        {"<proxy>\n  url.port=0 allow\n",
         "t.cpl:2:12: bad port '0': expected a number 1-65535 or a range such as 8000..8080"},
        {"<proxy>\n  url.port=90..80 allow\n",
         "t.cpl:2:12: bad port '90..80': expected a number 1-65535 or a range such as "
         "8000..8080"},
        {"<proxy>\n  url.host=a..example allow\n",
         "t.cpl:2:12: bad host name 'a..example': expected a name such as www.example.com or an "
         "IP address"},
        {"<proxy>\n  client.protocol=ftp allow\n",
         "t.cpl:2:19: unknown protocol 'ftp': expected http, https, ssl, tcp or socks"},
        {"<ssl-intercept>\n  server.certificate.hostname.category=financial "
         "ssl.forward_proxy(no)\n",
         "t.cpl:2:40: unknown category 'financial': no categories file was given (only 'none' "
         "exists)"},
        {"<ssl-intercept>\n  ssl.forward_proxy(yes)\n",
         "t.cpl:2:3: bad value for 'ssl.forward_proxy': expected https or no"},
        {"<ssl-intercept>\n  ssl.forward_proxy\n",
         "t.cpl:2:3: 'ssl.forward_proxy' needs a value: expected ssl.forward_proxy(VALUE)"},
        {"<proxy>\n  allow()\n", "t.cpl:2:3: 'allow' takes no value"},
        {"<proxy>\n  deny(a, b)\n", "t.cpl:2:3: 'deny' takes exactly one value"},
        {"<proxy>\n  allow deny\n",
         "t.cpl:2:9: 'deny' sets a property this rule already sets: expected each property once "
         "per rule"},
        {"<ssl>\n  server.certificate.validate.ignore(all, expiration)\n",
         "t.cpl:2:3: bad value for 'server.certificate.validate.ignore': expected all or none "
         "alone, or a list of error names"},
        {"<ssl>\n  server.certificate.validate.ignore(all) "
         "server.certificate.validate.ignore.expiration(no)\n",
         "t.cpl:2:43: 'server.certificate.validate.ignore.expiration' sets a property this rule "
         "already sets: expected each property once per rule"},
        {"<proxy>\n  authenticate(\"my realm\")\n",
         "t.cpl:2:3: bad value for 'authenticate': expected a name of 1-64 letters, digits, '_', "
         "'.', '-'"},
        {"<proxy>\n  !url.host=a.example deny\n",
         "t.cpl:2:3: negation goes after the '=': expected NAME=!VALUE"},
        {"<proxy>\n  url.host=() deny\n",
         "t.cpl:2:13: empty value list: expected at least one value"},
        {"<proxy>\n  url.host=(a.example b.example) deny\n",
         "t.cpl:2:23: expected ',' or ')' in the value list of 'url.host'"},
        {"<proxy>\n  url.host= deny\n", "t.cpl:2:12: expected a value, found ' '"},
        {"<proxy>\n  url.host=a.example(x) deny\n",
         "t.cpl:2:21: unexpected '(' after the value of 'url.host': expected a blank"},
        {"<proxy>\n  = deny\n",
         "t.cpl:2:3: unexpected '=': expected a condition (NAME=VALUE) or a property (NAME or "
         "NAME(VALUE))"},
        {"<proxy>\n  url.host=a\001 deny\n",
         "t.cpl:2:13: control character 0x01: expected printable text"},
        {"<proxy>\n  request.header.Bad/Name=x deny\n",
         "t.cpl:2:21: unexpected '/' after 'request.header.Bad': expected '=', '(' or a blank"},
        {"<proxy>\n  url.substring=\"\" deny\n", "t.cpl:2:17: empty value: expected some text"},
        {"end condition x\n", "t.cpl:1:1: 'end' without a 'define condition' before it"},
        {"define condition a\n  url.port=1\nend thing\n",
         "t.cpl:3:5: expected 'end' or 'end condition'"},
    };
    for (size_t i = 0; i < CAT_ARRAY_LEN(cases); i++)
        expect_err(cases[i].text, cases[i].want);
    struct cpl_cats *c = cats_parse("[financial]\nbank.example\n");
    expect_err_with("<ssl>\n  server.certificate.hostname.category=gambling allow\n", c,
                    "t.cpl:2:40: unknown category 'gambling': expected a [category] of the "
                    "categories file or 'none'");
    cpl_cats_free(c);
    /* Long offending text is cut; the message stays on one line. */
    char big[400];
    snprintf(big, sizeof(big), "<proxy>\n  url.host=%0300d allow\n", 7);
    expect_err(big, "t.cpl:2:12: bad host name '000000000000000000000000000000000000000000000000"
                    "...': expected a name such as www.example.com or an IP address");
    /* The error buffer is never overrun and always terminated. */
    char small[16];
    assert_null(cpl_compile("allow", 5, "t.cpl", NULL, small, sizeof(small)));
    assert_string_equal(small, "t.cpl:1:1: rule");
    assert_null(cpl_compile("allow", 5, "t.cpl", NULL, small, 0));
    assert_string_equal(small, "t.cpl:1:1: rule"); /* errlen 0: untouched */
}

static void
test_error_messages_more(void **state)
{
    (void)state;
    char text1k[1100], long_arg[1300];
    memset(text1k, 'a', 1025);
    text1k[1025] = '\0';
    static const struct err_case cases[] = {
        {"<proxy>\n  url.host=\"a\001\" deny\n",
         "t.cpl:2:14: control character 0x01 in a quoted string"},
        {"<proxy>\n  condition=\"a b\" deny\n",
         "t.cpl:2:13: bad condition name 'a b': expected letters, digits, '_', '.', '-'"},
        {"define condition\n", "t.cpl:1:17: bad condition name: expected 1-64 letters, digits, "
                               "'_', '.', '-' after 'define condition'"},
        {"define condition a b\n", "t.cpl:1:20: unexpected text after 'define condition a': "
                                   "expected the end of the line"},
        {"define condition a\n url.port=1\nend condition x\n",
         "t.cpl:3:15: unexpected text after 'end condition'"},
        {"<proxy>\n  request.header.=x deny\n", "t.cpl:2:3: unknown condition 'request.header.'"},
        {"<proxy>\n  deny(a,b,c,d,e,f,g,h,i)\n",
         "t.cpl:2:24: too many values for 'deny' (at most 8)"},
        {"<proxy>\n  deny(a b)\n", "t.cpl:2:10: expected ',' or ')' after a value of 'deny'"},
        {"<proxy>\n  deny(\"x\")y\n", "t.cpl:2:12: unexpected text after 'deny': expected a blank"},
        {"<proxy>\n  deny()\n", "t.cpl:2:3: 'deny' takes exactly one value"},
        {"<ssl>\n  server.certificate.validate(maybe)\n",
         "t.cpl:2:3: bad value for 'server.certificate.validate': expected yes or no"},
        {"<ssl>\n  server.certificate.validate.ignore.expiration(all)\n",
         "t.cpl:2:3: bad value for 'server.certificate.validate.ignore.expiration': expected yes "
         "or no"},
        {"<ssl>\n  server.certificate.validate.ignore(bogus)\n",
         "t.cpl:2:3: bad value for 'server.certificate.validate.ignore': expected all, none, or "
         "some of untrusted_issuer, expiration, hostname_mismatch, revocation"},
        {"<proxy>\n  force_protocol(tls)\n",
         "t.cpl:2:3: bad value for 'force_protocol': expected ssl or no"},
        {"<ssl-intercept>\n  ssl.forward_proxy.hostname(a..b)\n",
         "t.cpl:2:3: bad value for 'ssl.forward_proxy.hostname': expected a host name"},
        {"<forward>\n  forward(\"a b\")\n",
         "t.cpl:2:3: bad value for 'forward': expected a forwarding host name or no"},
        {"<forward>\n  tier.inspect(middle)\n",
         "t.cpl:2:3: bad value for 'tier.inspect': expected both, edge or core"},
        {"<ssl-intercept>\n  tier.inspect(edge)\n",
         "t.cpl:2:3: property 'tier.inspect' is not allowed in a <ssl-intercept> layer: expected "
         "it in <forward>"},
        {"<ssl-intercept>\n  ssl.forward_proxy.issuer_keyring(a/b)\n",
         "t.cpl:2:3: bad value for 'ssl.forward_proxy.issuer_keyring': expected a name of 1-64 "
         "letters, digits, '_', '.', '-'"},
    };
    for (size_t i = 0; i < CAT_ARRAY_LEN(cases); i++)
        expect_err(cases[i].text, cases[i].want);
    expect_err("<proxy>\n  http.method=\"GE T\" deny\n",
               "t.cpl:2:15: bad value 'GE T': expected a token (letters, digits and "
               "!#$%&'*+.^_`|~-)");
    snprintf(long_arg, sizeof(long_arg),
             "<ssl-intercept>\n ssl.forward_proxy.splash_text(\"%s\")\n", text1k);
    expect_err(long_arg, "t.cpl:2:2: bad value for 'ssl.forward_proxy.splash_text': expected a "
                         "text of at most 1024 bytes");
    snprintf(long_arg, sizeof(long_arg), "<proxy>\n deny(\"%s\")\n", text1k);
    expect_err(long_arg, "t.cpl:2:2: bad value for 'deny': expected a text of at most 1024 bytes");
    /* A NUL byte: refused in a comment as anywhere else (texts carry their length). */
    static const char nul[] = "<proxy>\n allow ; a\0b\n";
    assert_null(cpl_compile(nul, sizeof(nul) - 1, "t.cpl", NULL, err, sizeof(err)));
    assert_string_equal(err, "t.cpl:2:11: NUL byte in a comment");
    static const char nul2[] = "<proxy>\n url.host=a\0b allow\n";
    assert_null(cpl_compile(nul2, sizeof(nul2) - 1, "t.cpl", NULL, err, sizeof(err)));
    assert_string_equal(err, "t.cpl:2:12: control character 0x00: expected printable text");
    /* The file name in errors is shown printable. */
    assert_null(cpl_compile("x", 1, "bad\nname", NULL, err, sizeof(err)));
    assert_string_equal(err, "bad?name:1:1: rule outside a layer: expected a layer header such "
                             "as <proxy> first");
}

static void
test_limits_counts(void **state)
{
    (void)state;
    size_t cap = 2u << 20, o = 0;
    char *t = malloc(cap);
    assert_non_null(t);
    for (unsigned i = 0; i <= CPL_MAX_LAYER_COUNT; i++)
        o += (size_t)snprintf(t + o, cap - o, "<ssl>\n");
    assert_null(cpl_compile(t, o, "t.cpl", NULL, err, sizeof(err)));
    assert_string_equal(err, "t.cpl:4097:1: too many layers (at most 4096)");
    o = (size_t)snprintf(t, cap, "<proxy>\n");
    for (unsigned i = 0; i <= CPL_MAX_RULES; i++)
        o += (size_t)snprintf(t + o, cap - o, "deny\n");
    assert_null(cpl_compile(t, o, "t.cpl", NULL, err, sizeof(err)));
    assert_string_equal(err, "t.cpl:200002:1: too many rules (at most 200000)");
    o = 0;
    for (unsigned i = 0; i <= CPL_MAX_DEFINES; i++)
        o += (size_t)snprintf(t + o, cap - o, "define condition c%u\n url.port=1\nend\n", i);
    assert_null(cpl_compile(t, o, "t.cpl", NULL, err, sizeof(err)));
    assert_string_equal(err, "t.cpl:60001:1: too many define conditions (at most 20000)");
    /* Categories: the number of categories, line length and file size. */
    o = 0;
    for (unsigned i = 0; i <= CPL_MAX_CATS; i++)
        o += (size_t)snprintf(t + o, cap - o, "[c%u]\n", i);
    assert_null(cpl_cats_parse(t, o, "c.txt", err, sizeof(err)));
    assert_string_equal(err, "c.txt:1001:1: too many categories (at most 1000)");
    memset(t, 'a', CPL_MAX_LINE + 1);
    assert_null(cpl_cats_parse(t, CPL_MAX_LINE + 1, "c.txt", err, sizeof(err)));
    assert_string_equal(err, "c.txt:1:1: line too long (at most 65536 bytes)");
    assert_null(cpl_cats_parse(t, (size_t)CPL_MAX_CATS_TEXT + 1, "c.txt", err, sizeof(err)));
    assert_string_equal(err, "c.txt:1:1: categories file too large (at most 67108864 bytes)");
    free(t);
}

static void
test_limits(void **state)
{
    (void)state;
    /* Too many values for one condition. */
    size_t cap = 16 + 12 * (CPL_MAX_VALUES + 2);
    char *t = malloc(cap);
    assert_non_null(t);
    size_t o = (size_t)snprintf(t, cap, "<proxy>\nurl.port=(");
    for (unsigned i = 0; i <= CPL_MAX_VALUES; i++)
        o += (size_t)snprintf(t + o, cap - o, "%s%u", i ? "," : "", i % 60000 + 1);
    snprintf(t + o, cap - o, ") deny\n");
    memset(err, 0, sizeof(err));
    assert_null(cpl_compile(t, strlen(t), "t.cpl", NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "too many values for one condition (at most 10000)"));
    free(t);
    /* A logical line longer than the limit, made of continuations. */
    cap = CPL_MAX_LINE + 4096;
    t = malloc(cap);
    assert_non_null(t);
    o = (size_t)snprintf(t, cap, "<proxy>\nurl.port=(1");
    while (o < CPL_MAX_LINE + 1024)
        o += (size_t)snprintf(t + o, cap - o, ",                1 \\\n");
    snprintf(t + o, cap - o, ") deny\n");
    assert_null(cpl_compile(t, strlen(t), "t.cpl", NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "line too long (at most 65536 bytes with continuations)"));
    free(t);
    /* Too many conditions on one line. */
    char lots[2048];
    o = (size_t)snprintf(lots, sizeof(lots), "<proxy>\n");
    for (unsigned i = 0; i <= CPL_MAX_CONDS; i++)
        o += (size_t)snprintf(lots + o, sizeof(lots) - o, "url.port=%u ", i + 1);
    assert_null(cpl_compile(lots, strlen(lots), "t.cpl", NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "too many conditions on one line (at most 64)"));
    /* Nesting of condition= references is bounded. */
    o = 0;
    for (unsigned i = 0; i <= CPL_MAX_DEPTH; i++)
        o += (size_t)snprintf(lots + o, sizeof(lots) - o, "define condition c%u\n %s%u\nend\n", i,
                              i == CPL_MAX_DEPTH ? "url.port=" : "condition=c", i + 1);
    assert_null(cpl_compile(lots, strlen(lots), "t.cpl", NULL, err, sizeof(err)));
    assert_string_equal(err, "t.cpl:1:18: define condition 'c0' is nested too deep (at most 8 "
                             "levels of condition=)");
    /* One level less is fine. */
    o = 0;
    for (unsigned i = 0; i < CPL_MAX_DEPTH; i++)
        o += (size_t)snprintf(lots + o, sizeof(lots) - o, "define condition c%u\n %s%u\nend\n", i,
                              i == CPL_MAX_DEPTH - 1 ? "url.port=" : "condition=c", i + 1);
    snprintf(lots + o, sizeof(lots) - o, "<proxy>\n condition=c0 deny\n");
    struct cpl *p = compile(lots);
    struct cpl_txn tx = {.url_port = CPL_MAX_DEPTH};
    assert_int_equal(eval(p, CPL_L_PROXY, &tx)->allow, CPL_NO);
    tx.url_port = 1;
    assert_int_equal(eval(p, CPL_L_PROXY, &tx)->allow, CPL_UNSET);
    cpl_free(p);
    /* The size limit is checked before anything is read. */
    assert_null(cpl_compile("", (size_t)CPL_MAX_TEXT + 1, "t.cpl", NULL, err, sizeof(err)));
    assert_string_equal(err, "t.cpl:1:1: policy too large (at most 16777216 bytes)");
}

/* --- evaluation ------------------------------------------------------------ */

static void
test_first_match_and_override(void **state)
{
    (void)state;
    struct cpl *p = compile("<proxy>\n"
                            "  url.host=a.example deny(\"first\")\n"        /* line 2 */
                            "  url.host=a.example allow authenticate(r1)\n" /* line 3 */
                            "  authenticate(r0)\n"                          /* line 4 */
                            "<proxy>\n"
                            "  url.port=8080 allow\n" /* line 6: only allow overridden */
                            "<proxy> url.port=9999\n" /* line 7: guard */
                            "  deny\n");
    struct cpl_txn t = {.url_host = "A.Example.", .url_port = 80};
    const struct cpl_decision *d = eval(p, CPL_L_PROXY, &t);
    assert_int_equal(d->allow, CPL_NO);
    assert_string_equal(d->deny_reason, "first");
    assert_null(d->auth_realm); /* line 3 never ran: the first match wins */
    assert_int_equal(d->n_layers_run, 3);
    assert_int_equal(d->trace[0].rule_line, 2);
    assert_int_equal(d->trace[0].layer_line, 1);
    assert_int_equal(d->trace[1].rule_line, 0);
    assert_true(d->trace[2].guard_failed);
    assert_int_equal(d->trace[2].layer_line, 7);

    t.url_port = 8080;
    d = eval(p, CPL_L_PROXY, &t);
    assert_int_equal(d->allow, CPL_YES);
    assert_null(d->deny_reason); /* allow and its reason are one property */
    assert_int_equal(d->trace[1].rule_line, 6);

    t.url_host = "b.example";
    t.url_port = 9999;
    d = eval(p, CPL_L_PROXY, &t);
    assert_int_equal(d->allow, CPL_NO);
    assert_string_equal(d->auth_realm, "r0"); /* kept from layer 1: layer 3 said nothing of it */
    assert_int_equal(d->trace[2].rule_line, 8);
    assert_false(d->trace[2].guard_failed);

    /* Other kinds are not run; decisions accumulate across calls. */
    assert_int_equal(eval(p, CPL_L_SSL, &t)->n_layers_run, 0);
    cpl_decision_init(&D);
    cpl_eval(p, CPL_L_PROXY, &t, &D);
    cpl_eval(p, CPL_L_SSL_INTERCEPT, &t, &D);
    cpl_eval(p, CPL_L_PROXY, &t, &D);
    assert_int_equal(D.n_layers_run, 6);
    cpl_eval(p, CPL_L_COUNT, &t, &D); /* out of range: nothing */
    assert_int_equal(D.n_layers_run, 6);
    cpl_free(p);
}

static void
test_ssl_properties(void **state)
{
    (void)state;
    struct cpl *p = compile(
        "<ssl-intercept>\n"
        "  ssl.forward_proxy(https) ssl.forward_proxy.issuer_keyring(ring1) \\\n"
        "    ssl.forward_proxy.hostname(Emu.Example.) ssl.forward_proxy.splash_text('hi there') "
        "\\\n"
        "    ssl.forward_proxy.splash_url(\"https://x.example/\") force_protocol(ssl)\n"
        "<ssl-intercept>\n"
        "  url.host=tunnel.example ssl.forward_proxy(no) force_protocol(no)\n"
        "<ssl>\n"
        "  server.certificate.validate.ignore(all)\n"
        "<ssl>\n"
        "  server.certificate.hostname=strict.example "
        "server.certificate.validate.ignore.expiration(no) server.certificate.validate(yes)\n"
        "  server.certificate.hostname=none.example server.certificate.validate.ignore(none)\n"
        "  server.certificate.hostname=two.example "
        "server.certificate.validate.ignore(hostname_mismatch,revocation)\n"
        "<forward>\n"
        "  url.host=up.example forward(dc1) tier.inspect(edge)\n"
        "  forward(no)\n");
    struct cpl_txn t = {.url_host = "x.example", .cert_hostname = "x.example"};
    const struct cpl_decision *d = eval(p, CPL_L_SSL_INTERCEPT, &t);
    assert_int_equal(d->intercept, CPL_YES);
    assert_string_equal(d->issuer_keyring, "ring1");
    assert_string_equal(d->emu_hostname, "emu.example");
    assert_string_equal(d->splash_text, "hi there");
    assert_string_equal(d->splash_url, "https://x.example/");
    assert_int_equal(d->force_ssl, CPL_YES);
    t.url_host = "tunnel.example";
    d = eval(p, CPL_L_SSL_INTERCEPT, &t);
    assert_int_equal(d->intercept, CPL_NO);
    assert_int_equal(d->force_ssl, CPL_NO);
    assert_string_equal(d->issuer_keyring, "ring1"); /* not overridden */

    d = eval(p, CPL_L_SSL, &t);
    assert_true(d->ignore_set);
    assert_int_equal(d->ignore, CPL_IGN_ALL);
    assert_int_equal(d->validate, CPL_UNSET);
    t.cert_hostname = "strict.example";
    d = eval(p, CPL_L_SSL, &t);
    assert_int_equal(d->ignore, CPL_IGN_ALL & ~CPL_IGN_EXPIRATION); /* one bit overridden */
    assert_int_equal(d->validate, CPL_YES);
    t.cert_hostname = "none.example";
    assert_int_equal(eval(p, CPL_L_SSL, &t)->ignore, 0);
    t.cert_hostname = "two.example";
    assert_int_equal(eval(p, CPL_L_SSL, &t)->ignore, CPL_IGN_HOSTNAME | CPL_IGN_REVOCATION);
    t.cert_hostname = NULL; /* unknown: the second layer's rules cannot match */
    d = eval(p, CPL_L_SSL, &t);
    assert_int_equal(d->ignore, CPL_IGN_ALL);
    assert_int_equal(d->trace[1].rule_line, 0);

    t.url_host = "up.example";
    assert_string_equal(eval(p, CPL_L_FORWARD, &t)->forward, "dc1");
    assert_int_equal(eval(p, CPL_L_FORWARD, &t)->inspect, CPL_INSPECT_EDGE);
    t.url_host = "down.example";
    assert_string_equal(eval(p, CPL_L_FORWARD, &t)->forward, "");
    assert_int_equal(eval(p, CPL_L_FORWARD, &t)->inspect, CPL_INSPECT_UNSET);
    cpl_free(p);
}

static void
test_negation_and_unknown(void **state)
{
    (void)state;
    struct cpl *p = compile("<proxy>\n"
                            "  client.address=!10.0.0.0/8 deny(\"outside\")\n"
                            "  http.method=!(GET, HEAD) deny(\"method\")\n"
                            "  request.header.X-Block=!no deny(\"header\")\n"
                            "  allow\n");
    struct cpl_txn t = {0};
    /* Nothing known: the negated conditions are unknown too; only the catch-all applies. */
    assert_int_equal(eval(p, CPL_L_PROXY, &t)->allow, CPL_YES);
    t.client = sa("192.0.2.1");
    assert_string_equal(eval(p, CPL_L_PROXY, &t)->deny_reason, "outside");
    t.client = sa("10.9.8.7");
    t.method = "post";
    assert_string_equal(eval(p, CPL_L_PROXY, &t)->deny_reason, "method");
    t.method = "Get";
    assert_int_equal(eval(p, CPL_L_PROXY, &t)->allow, CPL_YES);
    cpl_free(p);
}

struct hdrs {
    const char *name, *value;
};

static const char *
hdr_cb(void *arg, const char *name, size_t *len)
{
    for (const struct hdrs *h = arg; h->name != NULL; h++)
        if (strcasecmp(h->name, name) == 0) {
            *len = strlen(h->value);
            return h->value;
        }
    return NULL;
}

static void
test_request_header(void **state)
{
    (void)state;
    struct cpl *p = compile("<proxy>\n"
                            "  request.header.User-Agent=\"Bad Bot/1.0\" deny(\"bot\")\n"
                            "  request.header.X-Flag=!yes deny(\"no flag\")\n"
                            "  allow\n");
    struct hdrs h1[] = {{"user-agent", "Bad Bot/1.0"}, {"x-flag", "yes"}, {NULL, NULL}};
    struct hdrs h2[] = {{"User-Agent", "bad bot/1.0"}, {"X-Flag", "yes"}, {NULL, NULL}};
    struct hdrs h3[] = {{"User-Agent", "curl"}, {NULL, NULL}};
    struct cpl_txn t = {.header = hdr_cb, .header_arg = h1};
    assert_string_equal(eval(p, CPL_L_PROXY, &t)->deny_reason, "bot");
    t.header_arg = h2; /* values compare exactly */
    assert_int_equal(eval(p, CPL_L_PROXY, &t)->allow, CPL_YES);
    t.header_arg = h3; /* an absent header is known-absent: its negation holds */
    assert_string_equal(eval(p, CPL_L_PROXY, &t)->deny_reason, "no flag");
    t.header = NULL; /* headers not known yet */
    assert_int_equal(eval(p, CPL_L_PROXY, &t)->allow, CPL_YES);
    cpl_free(p);
}

static void
test_define_conditions(void **state)
{
    (void)state;
    struct cpl *p = compile("<proxy>\n"
                            "  condition=trusted deny(\"trusted\")\n"
                            "  condition=!trusted url.port=443 deny(\"force\")\n"
                            "  condition=(pair, trusted) allow\n"
                            "define condition trusted\n" /* after its use: definitions float */
                            "  url.address=192.0.2.0/24\n"
                            "  url.host=trusted.example url.port=8443\n"
                            "end\n"
                            "define condition pair\n"
                            "  condition=trusted\n"
                            "  user=bob\n"
                            "end condition\n");
    struct cpl_txn t = {.url_port = 443};
    /* Address unknown, host unknown: trusted is unknown, so neither it nor !trusted holds. */
    const struct cpl_decision *d = eval(p, CPL_L_PROXY, &t);
    assert_int_equal(d->allow, CPL_UNSET);
    /* Address known and outside, line 2 is false (port differs): !trusted holds. */
    t.url_address = sa("203.0.113.1");
    assert_string_equal(eval(p, CPL_L_PROXY, &t)->deny_reason, "force");
    /* Any line holding makes it hold: the second line. */
    t.url_host = "Trusted.Example";
    t.url_port = 8443;
    assert_string_equal(eval(p, CPL_L_PROXY, &t)->deny_reason, "trusted");
    /* The first line (an IPv4-mapped address matches the v4 network). */
    t.url_host = NULL;
    t.url_address = sa("::ffff:192.0.2.77");
    assert_string_equal(eval(p, CPL_L_PROXY, &t)->deny_reason, "trusted");
    /* condition=(a, b) holds if any does; nested references. */
    t.url_address = sa("203.0.113.1");
    t.url_host = "other.example";
    t.user = "BOB";
    d = eval(p, CPL_L_PROXY, &t);
    assert_int_equal(d->allow, CPL_YES);
    assert_int_equal(d->trace[0].rule_line, 4);
    cpl_free(p);
}

static void
test_addresses(void **state)
{
    (void)state;
    struct cpl *p = compile("<proxy>\n"
                            "  client.address=10.1.2.3 deny(\"one\")\n"
                            "  client.address=10.1.0.0/16 deny(\"v4net\")\n"
                            "  client.address=2001:db8::/32 deny(\"v6net\")\n"
                            "  client.address=[2001:db9::1] deny(\"v6one\")\n"
                            "  client.address=::ffff:172.16.0.0/108 deny(\"mapped\")\n"
                            "  client.address=10.255.255.255/1 deny(\"masked\")\n"
                            "  client.address=0.0.0.0/0 deny(\"any4\")\n"
                            "  client.address=::/0 deny(\"any6\")\n");
    static const struct {
        const char *addr, *want;
    } cases[] = {
        {"10.1.2.3", "one"},        {"::ffff:10.1.2.3", "one"}, {"10.1.200.1", "v4net"},
        {"2001:db8:1::5", "v6net"}, {"2001:db9::1", "v6one"},   {"2001:db9::2", "any6"},
        {"172.16.9.9", "mapped"},   {"172.31.0.1", "mapped"},   {"172.32.0.1", "any4"},
        {"127.0.0.1", "masked"},    {"192.168.1.1", "any4"},    {"::1", "any6"},
    };
    for (size_t i = 0; i < CAT_ARRAY_LEN(cases); i++) {
        struct cpl_txn t = {.client = sa(cases[i].addr)};
        const struct cpl_decision *d = eval(p, CPL_L_PROXY, &t);
        if (d->deny_reason == NULL || strcmp(d->deny_reason, cases[i].want) != 0)
            fail_msg("%s: got %s want %s", cases[i].addr, d->deny_reason, cases[i].want);
    }
    /* An address of another family is unknown. */
    struct sockaddr_storage un = {.ss_family = AF_UNIX};
    struct cpl_txn t = {.client = (struct sockaddr *)&un};
    assert_int_equal(eval(p, CPL_L_PROXY, &t)->allow, CPL_UNSET);
    cpl_free(p);
}

static void
test_hosts_and_domains(void **state)
{
    (void)state;
    struct cpl *p = compile("<proxy>\n"
                            "  url.domain=bank.example deny(\"domain\")\n"
                            "  url.domain=.dot.example deny(\"dot\")\n"
                            "  url.host=exact.example deny(\"exact\")\n"
                            "  url.domain=10.1.2.3 deny(\"ip\")\n"
                            "  server_url.host=next.example deny(\"srv\")\n"
                            "  url.host=2001:db8::1 deny(\"v6\")\n");
    static const struct {
        const char *host, *want;
    } cases[] = {
        {"bank.example", "domain"},
        {"www.bank.example", "domain"},
        {"A.B.BANK.EXAMPLE.", "domain"},
        {"evilbank.example", NULL},
        {"bank.example.evil", NULL},
        {"dot.example", "dot"},
        {"x.dot.example", "dot"},
        {"exact.example", "exact"},
        {"www.exact.example", NULL},
        {"10.1.2.3", "ip"},
        {"5.10.1.2.3", NULL},
        {"[2001:DB8::1]", "v6"},
        {"", NULL},
        {".", NULL},
    };
    for (size_t i = 0; i < CAT_ARRAY_LEN(cases); i++) {
        struct cpl_txn t = {.url_host = cases[i].host};
        const struct cpl_decision *d = eval(p, CPL_L_PROXY, &t);
        const char *got = d->deny_reason;
        if ((got == NULL) != (cases[i].want == NULL) ||
            (got != NULL && strcmp(got, cases[i].want) != 0))
            fail_msg("%s: got %s want %s", cases[i].host, got ? got : "-",
                     cases[i].want ? cases[i].want : "-");
    }
    /* A host longer than any name is known but matches nothing. */
    char lng[400];
    memset(lng, 'a', sizeof(lng) - 1);
    lng[sizeof(lng) - 1] = '\0';
    struct cpl_txn t = {.url_host = lng, .server_url_host = "NEXT.example"};
    assert_string_equal(eval(p, CPL_L_PROXY, &t)->deny_reason, "srv");
    cpl_free(p);
}

static void
test_strings_ports_protocols(void **state)
{
    (void)state;
    struct cpl *p =
        compile("<proxy>\n"
                "  url.substring=\"/Secret/\" deny(\"substr\")\n"
                "  url.path=/admin deny(\"path\")\n"
                "  proxy.port=8080..8081 url.port=(81, 8000..8010) deny(\"ports\")\n"
                "  client.protocol=socks deny(\"socks\")\n"
                "  url.scheme=FTP deny(\"ftp\")\n"
                "  user=alice deny(\"alice\")\n"
                "<exception>\n"
                "  exception.id=(policy_denied, dns_unresolved_hostname) deny(\"exc\")\n");
    struct cpl_txn t = {.url = "http://h.example/a/SECRET/b", .url_path = "/a/SECRET/b"};
    assert_string_equal(eval(p, CPL_L_PROXY, &t)->deny_reason, "substr");
    t.url = "http://h.example/Admin/x";
    t.url_path = "/Admin/x";
    assert_string_equal(eval(p, CPL_L_PROXY, &t)->deny_reason, "path");
    t.url_path = "/x/admin";
    t.url = "s";
    assert_int_equal(eval(p, CPL_L_PROXY, &t)->allow, CPL_UNSET);
    t.proxy_port = 8081;
    t.url_port = 8005;
    assert_string_equal(eval(p, CPL_L_PROXY, &t)->deny_reason, "ports");
    t.url_port = 8011;
    assert_int_equal(eval(p, CPL_L_PROXY, &t)->allow, CPL_UNSET);
    t.proxy_port = 0; /* unknown */
    t.url_port = 81;
    assert_int_equal(eval(p, CPL_L_PROXY, &t)->allow, CPL_UNSET);
    t.client_protocol = "SOCKS";
    assert_string_equal(eval(p, CPL_L_PROXY, &t)->deny_reason, "socks");
    t.client_protocol = "http";
    t.url_scheme = "ftp";
    assert_string_equal(eval(p, CPL_L_PROXY, &t)->deny_reason, "ftp");
    t.url_scheme = "http";
    t.user = "Alice";
    assert_string_equal(eval(p, CPL_L_PROXY, &t)->deny_reason, "alice");
    t.exception_id = "DNS_unresolved_hostname";
    assert_string_equal(eval(p, CPL_L_EXCEPTION, &t)->deny_reason, "exc");
    cpl_free(p);
}

/* --- categories ------------------------------------------------------------ */

static const char cats_text[] = "; test categories\n"
                                "[Financial]\n"
                                "bank.example\n"
                                ".bank2.example   ; and below\n"
                                "[webmail]\n"
                                ".mail.example\n"
                                "special.mail.example\n"
                                "[Financial Services]\n"
                                "BANK.example.\n"
                                "[webmail]\n"
                                "x.mail.example\n";

static void
test_categories_file(void **state)
{
    (void)state;
    struct cpl_cats *c = cats_parse(cats_text);
    size_t nc, ne;
    cpl_cats_stats(c, &nc, &ne);
    assert_int_equal(nc, 3);
    assert_int_equal(ne, 5);
    assert_string_equal(cpl_category(c, "bank.example"), "financial");
    assert_string_equal(cpl_category(c, "Bank.Example."), "financial");
    assert_string_equal(cpl_category(c, "www.bank.example"), "none"); /* exact name only */
    assert_string_equal(cpl_category(c, "bank2.example"), "financial");
    assert_string_equal(cpl_category(c, "a.b.bank2.example"), "financial");
    assert_string_equal(cpl_category(c, "evilbank2.example"), "none");
    assert_string_equal(cpl_category(c, "special.mail.example"), "webmail");
    assert_string_equal(cpl_category(c, "a.mail.example"), "webmail");
    assert_string_equal(cpl_category(c, "unknown.example"), "none");
    assert_string_equal(cpl_category(c, ""), "none");
    assert_string_equal(cpl_category(NULL, "bank.example"), "none");
    /* A name in two categories has both; the first listed is "the" category. */
    const uint16_t *ids;
    size_t n;
    cpl_cats_lookup(c, "bank.example", 12, &ids, &n);
    assert_int_equal(n, 2);
    assert_string_equal(cpl_cats_name(c, ids[1]), "financial services");
    cpl_cats_free(c);
    cpl_cats_free(NULL);

    static const struct err_case errs[] = {
        {"bank.example\n", "c.txt:1:1: name outside a category: expected a [category] line first"},
        {"[none]\n", "c.txt:1:1: category 'none' is reserved for unrated names"},
        {"[fin\n", "c.txt:1:1: unterminated category header: expected ']'"},
        {"[fin] x\n", "c.txt:1:7: unexpected text after ']': expected the end of the line"},
        {"[f/n]\n",
         "c.txt:1:1: bad category name 'f/n': expected 1-64 letters, digits, spaces, '_', '.' "
         "or '-'"},
        {"[a]\n  *.bank.example\n",
         "c.txt:2:3: wildcards are not supported: write .example.com for the domain and every "
         "name below it"},
        {"[a]\nbank..example\n",
         "c.txt:2:1: bad host name 'bank..example': expected a name such as bank.example or a "
         "domain such as .bank.example"},
        {"[a]\n.\n",
         "c.txt:2:1: bad host name '.': expected a name such as bank.example or a domain such as "
         ".bank.example"},
        {"[a]\nx.example y.example\n",
         "c.txt:2:10: unexpected 'y.example' after the name: expected one name per line"},
        {"[a]\nx.exa\001mple\n", "c.txt:2:6: control character 0x01: expected printable text"},
    };
    for (size_t i = 0; i < CAT_ARRAY_LEN(errs); i++) {
        memset(err, 'x', sizeof(err));
        c = cpl_cats_parse(errs[i].text, strlen(errs[i].text), "c.txt", err, sizeof(err));
        if (c != NULL || strcmp(err, errs[i].want) != 0)
            print_error("cats:\n%s\n got: %s\nwant: %s\n", errs[i].text, c ? "(parsed)" : err,
                        errs[i].want);
        assert_null(c);
        assert_string_equal(err, errs[i].want);
    }
}

static void
test_category_conditions(void **state)
{
    (void)state;
    struct cpl_cats *c = cats_parse(cats_text);
    struct cpl *p = compile_with("<ssl-intercept>\n"
                                 "  server.certificate.hostname.category=\"Financial Services\" "
                                 "ssl.forward_proxy(no)\n"
                                 "  server.certificate.hostname.category=(WEBMAIL, none) "
                                 "ssl.forward_proxy(https)\n"
                                 "  server.certificate.hostname.category=!financial "
                                 "ssl.forward_proxy.issuer_keyring(other)\n",
                                 c);
    struct cpl_txn t = {.cert_hostname = "bank.example"};
    const struct cpl_decision *d = eval(p, CPL_L_SSL_INTERCEPT, &t);
    assert_int_equal(d->intercept, CPL_NO); /* its second category */
    t.cert_hostname = "www.bank2.example";  /* financial only: no rule */
    d = eval(p, CPL_L_SSL_INTERCEPT, &t);
    assert_int_equal(d->intercept, CPL_UNSET);
    assert_null(d->issuer_keyring);
    t.cert_hostname = "unrated.example"; /* none */
    assert_int_equal(eval(p, CPL_L_SSL_INTERCEPT, &t)->intercept, CPL_YES);
    t.cert_hostname = "a.mail.example";
    assert_int_equal(eval(p, CPL_L_SSL_INTERCEPT, &t)->intercept, CPL_YES);
    t.cert_hostname = NULL; /* unknown: no category rule, not even "none" or a negation */
    d = eval(p, CPL_L_SSL_INTERCEPT, &t);
    assert_int_equal(d->intercept, CPL_UNSET);
    assert_null(d->issuer_keyring);
    cpl_free(p);
    /* Without a categories file only "none" exists, and every name is unrated. */
    p = compile("<ssl-intercept>\n"
                "  server.certificate.hostname.category=none ssl.forward_proxy(https)\n");
    t.cert_hostname = "bank.example";
    assert_int_equal(eval(p, CPL_L_SSL_INTERCEPT, &t)->intercept, CPL_YES);
    cpl_free(p);
    cpl_cats_free(c);
}

/* --- the sample bundle ----------------------------------------------------- */

static char *
slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strdup(buf);
}

static void
test_sample_bundle(void **state)
{
    (void)state;
    char *ct = slurp("etc/bundle/categories.txt"), *pt = slurp("etc/bundle/policy.cpl");
    if (ct == NULL || pt == NULL) {
        free(ct);
        free(pt);
        skip(); /* run from elsewhere than the repository root */
    }
    struct cpl_cats *c = cats_parse(ct);
    struct cpl *p = compile_with(pt, c);
    struct cpl_txn t = {.client = sa("10.1.2.3"), .method = "CONNECT", .url_port = 443};
    static const struct {
        const char *host, *addr;
        enum cpl_tri intercept, force;
    } cases[] = {
        {"www.bank.example", "203.0.113.9", CPL_NO, CPL_YES}, /* financial: tunnel */
        {"www.paypal.com", "203.0.113.9", CPL_NO, CPL_YES},
        {"update.microsoft.com", "203.0.113.9", CPL_NO, CPL_YES}, /* pinned: tunnel */
        {"login.live.com", "203.0.113.9", CPL_NO, CPL_YES},
        {"unrated.example", "203.0.113.9", CPL_YES, CPL_YES},           /* unrated: intercept */
        {"x.webmail.example", "203.0.113.9", CPL_YES, CPL_YES},         /* chosen category */
        {"news.example.org.example", "192.0.2.10", CPL_YES, CPL_UNSET}, /* trusted server */
    };
    for (size_t i = 0; i < CAT_ARRAY_LEN(cases); i++) {
        t.url_host = t.cert_hostname = t.server_url_host = cases[i].host;
        t.url_address = sa(cases[i].addr);
        struct cpl_decision d;
        cpl_decision_init(&d);
        cpl_eval(p, CPL_L_PROXY, &t, &d);
        cpl_eval(p, CPL_L_SSL_INTERCEPT, &t, &d);
        if (d.intercept != cases[i].intercept || d.force_ssl != cases[i].force ||
            d.allow != CPL_YES)
            fail_msg("%s: intercept %d force %d allow %d", cases[i].host, d.intercept, d.force_ssl,
                     d.allow);
    }
    /* Outside clients are refused; CONNECT to other ports too. */
    t.client = sa("198.51.100.1");
    assert_int_equal(eval(p, CPL_L_PROXY, &t)->allow, CPL_NO);
    t.client = sa("10.1.2.3");
    t.url_port = 25;
    assert_string_equal(eval(p, CPL_L_PROXY, &t)->deny_reason,
                        "CONNECT is allowed to TLS ports only");
    /* The untrusted issuer is ignored for the internal host only. */
    t.cert_hostname = "intranet.corp.example";
    assert_int_equal(eval(p, CPL_L_SSL, &t)->ignore, CPL_IGN_UNTRUSTED);
    t.cert_hostname = "intranet2.corp.example";
    assert_false(eval(p, CPL_L_SSL, &t)->ignore_set);
    assert_string_equal(eval(p, CPL_L_FORWARD, &t)->forward, "");
    cpl_free(p);
    cpl_cats_free(c);
    free(ct);
    free(pt);
}

/* --- the index against the linear scan -------------------------------------- */

static uint32_t rnd_state = 12345;
static uint32_t
rnd(uint32_t n)
{
    rnd_state = rnd_state * 1103515245u + 12345u;
    return (rnd_state >> 8) % n;
}

static void
test_index_equivalence(void **state)
{
    (void)state;
    struct cpl_cats *c = cats_parse("[c0]\n.d0.example\n[c1]\n.d1.example\nh3.d2.example\n"
                                    "[c2]\n.d2.example\nh1.d0.example\n");
    size_t cap = 1 << 20, o = 0;
    char *t = malloc(cap);
    assert_non_null(t);
    o += (size_t)snprintf(t + o, cap - o,
                          "define condition dc\n url.port=(1,3)\n"
                          " url.host=h2.d1.example\nend\n");
    static const char *const kinds[] = {"proxy", "ssl-intercept", "ssl"};
    for (unsigned l = 0; l < 12; l++) {
        o += (size_t)snprintf(t + o, cap - o, "<%s>%s\n", kinds[l % 3],
                              l == 5 ? " url.port=!2" : "");
        unsigned nr = l == 0 ? 3 : 20 + rnd(200);
        for (unsigned r = 0; r < nr; r++) {
            switch (rnd(11)) {
            case 0:
                o += (size_t)snprintf(t + o, cap - o, "url.host=h%u.d%u.example", rnd(6), rnd(3));
                break;
            case 1:
                o += (size_t)snprintf(t + o, cap - o, "url.domain=(d%u.example, h%u.d%u.example)",
                                      rnd(3), rnd(6), rnd(3));
                break;
            case 2:
                o += (size_t)snprintf(t + o, cap - o, "url.domain=!d%u.example", rnd(3));
                break;
            case 3:
                o += (size_t)snprintf(t + o, cap - o, "server_url.host=h%u.d%u.example", rnd(6),
                                      rnd(3));
                break;
            case 4:
                if (l % 3 != 0)
                    o += (size_t)snprintf(
                        t + o, cap - o, "server.certificate.hostname.category=(c%u,none)", rnd(3));
                break;
            case 5:
                if (l % 3 != 0)
                    o += (size_t)snprintf(t + o, cap - o,
                                          "server.certificate.hostname=h%u.d%u.example", rnd(6),
                                          rnd(3));
                break;
            case 6:
                o += (size_t)snprintf(t + o, cap - o, "condition=%sdc", rnd(2) ? "!" : "");
                break;
            case 7:
                o += (size_t)snprintf(t + o, cap - o,
                                      "client.address=(10.%u.0.0/%u, 2001:db8:%u::/%u)", rnd(3),
                                      8 + 8 * rnd(3), rnd(3), 32 + 16 * rnd(3));
                break;
            case 8:
                o += (size_t)snprintf(t + o, cap - o, "url.address=%s10.0.%u.%u%s",
                                      rnd(4) ? "" : "!", rnd(2), rnd(4), rnd(2) ? "/31" : "");
                break;
            default:
                break;
            }
            o += (size_t)snprintf(t + o, cap - o, " url.port=%s%u", rnd(3) ? "" : "!", rnd(4) + 1);
            o += (size_t)snprintf(t + o, cap - o,
                                  l % 3 == 0   ? " deny(\"%u\")\n"
                                  : l % 3 == 1 ? " ssl.forward_proxy.issuer_keyring(k%u)\n"
                                               : " server.certificate.validate.ignore(all)"
                                                 " ; %u\n",
                                  r);
            assert_true(o < cap - 512);
        }
    }
    struct cpl *p = compile_with(t, c);
    unsigned indexed = 0;
    for (size_t i = 0; i < p->n_layers; i++)
        indexed += p->layers[i].indexed;
    assert_true(indexed >= 10);
    char h1[64], h2[64], h3[64];
    for (unsigned i = 0; i < 3000; i++) {
        snprintf(h1, sizeof(h1), "%sh%u.d%u.example", rnd(4) ? "" : "x.", rnd(7), rnd(4));
        snprintf(h2, sizeof(h2), "h%u.d%u.example", rnd(7), rnd(4));
        snprintf(h3, sizeof(h3), "%sh%u.d%u.EXAMPLE.", rnd(3) ? "" : "y.", rnd(7), rnd(4));
        char c1[64], a1[64];
        snprintf(c1, sizeof(c1), rnd(2) ? "10.%u.%u.1" : "2001:db8:%u:%u::1", rnd(4), rnd(3));
        snprintf(a1, sizeof(a1), rnd(2) ? "10.0.%u.%u" : "::ffff:10.0.%u.%u", rnd(3), rnd(5));
        struct cpl_txn tx = {
            .client = rnd(8) ? sa(c1) : NULL,
            .url_address = rnd(8) ? sa(a1) : NULL,
            .url_host = rnd(8) ? h1 : NULL,
            .server_url_host = rnd(8) ? h2 : NULL,
            .cert_hostname = rnd(8) ? h3 : NULL,
            .url_port = rnd(5), /* 0: unknown */
        };
        for (unsigned k = 0; k < 3; k++)
            eval(p, (enum cpl_layer)k, &tx); /* asserts index == linear */
    }
    cpl_free(p);
    cpl_cats_free(c);
    free(t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_syntax_constructs),
        cmocka_unit_test(test_error_messages),
        cmocka_unit_test(test_error_messages_more),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_limits_counts),
        cmocka_unit_test(test_first_match_and_override),
        cmocka_unit_test(test_ssl_properties),
        cmocka_unit_test(test_negation_and_unknown),
        cmocka_unit_test(test_request_header),
        cmocka_unit_test(test_define_conditions),
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_hosts_and_domains),
        cmocka_unit_test(test_strings_ports_protocols),
        cmocka_unit_test(test_categories_file),
        cmocka_unit_test(test_category_conditions),
        cmocka_unit_test(test_sample_bundle),
        cmocka_unit_test(test_index_equivalence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
