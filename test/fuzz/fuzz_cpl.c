/*
 * Fuzz target for the policy engine. The first byte chooses: even, the rest
 * is a CPL policy compiled against a small fixed category set, then every
 * layer kind is evaluated for a few fixed transactions (all data known,
 * none known, some known); odd, the rest is a categories file, then a few
 * names are looked up. Besides memory safety and leaks it checks that the
 * indexed evaluation equals the linear scan, and that a refusal is one
 * printable line starting with the file name.
 */
#include "core/cpl.h"
#include "core/cpl_int.h"
#include "test/fuzz/fuzz.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* abort() rather than assert(): the check must survive NDEBUG and the plain replay build. */
static const char fuzz_cats_text[] = "[financial]\n.bank.example\nonline.bank2.example\n"
                                     "[webmail]\n.mail.example\n[Social Networking]\n"
                                     ".social.example\nbank.example\n";

static const char *
fuzz_header(void *arg, const char *name, size_t *len)
{
    (void)arg;
    static const char *const h[][2] = {
        {"user-agent", "Mozilla/5.0"}, {"x-test", "yes"}, {"host", "www.bank.example"}};
    for (size_t i = 0; i < sizeof(h) / sizeof(h[0]); i++)
        if (strcasecmp(name, h[i][0]) == 0) {
            *len = strlen(h[i][1]);
            return h[i][1];
        }
    return NULL;
}

static void
fuzz_check_err(const char *err, size_t cap, const char *name)
{
    size_t n = strnlen(err, cap);
    FUZZ_CHECK(n < cap);
    FUZZ_CHECK(strncmp(err, name, strlen(name)) == 0);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK((unsigned char)err[i] >= 0x20 && (unsigned char)err[i] < 0x7f);
}

static void
fuzz_policy(const char *text, size_t len, const struct cpl_cats *cats)
{
    char err[256];
    memset(err, 0x55, sizeof(err));
    struct cpl *p = cpl_compile(text, len, "fuzz.cpl", cats, err, sizeof(err));
    if (p == NULL) {
        fuzz_check_err(err, sizeof(err), "fuzz.cpl:");
        return;
    }
    size_t nl, nr;
    cpl_stats(p, &nl, &nr);
    FUZZ_CHECK(nl <= CPL_MAX_LAYER_COUNT && nr <= CPL_MAX_RULES);

    struct sockaddr_in c4 = {.sin_family = AF_INET};
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
    inet_pton(AF_INET, "10.1.2.3", &c4.sin_addr);
    inet_pton(AF_INET6, "2001:db8::443", &s6.sin6_addr);
    const struct cpl_txn txns[] = {
        {0},
        {.client = (struct sockaddr *)&c4,
         .proxy_port = 8080,
         .client_protocol = "http",
         .method = "CONNECT",
         .url_scheme = "https",
         .url_host = "www.bank.example",
         .url_port = 443,
         .url_path = "/a/b?c=d",
         .url = "https://www.bank.example/a/b?c=d",
         .url_address = (struct sockaddr *)&s6,
         .server_url_host = "www.bank.example",
         .cert_hostname = "WWW.Bank.Example.",
         .user = "alice",
         .exception_id = "policy_denied",
         .header = fuzz_header},
        {.url_host = "a.b.c.mail.example",
         .cert_hostname = "unrated.example",
         .url_port = 80,
         .header = fuzz_header},
        {.url_host = "10.1.2.3",
         .server_url_host = "[2001:db8::1]",
         .cert_hostname = "bank.example"},
    };
    for (size_t i = 0; i < sizeof(txns) / sizeof(txns[0]); i++) {
        struct cpl_decision a, b;
        cpl_decision_init(&a);
        cpl_decision_init(&b);
        for (int k = 0; k < CPL_L_COUNT; k++) {
            cpl_eval(p, (enum cpl_layer)k, &txns[i], &a);
            cpl_eval_linear(p, (enum cpl_layer)k, &txns[i], &b);
        }
        FUZZ_CHECK(memcmp(&a, &b, sizeof(a)) == 0);
        FUZZ_CHECK(a.n_layers_run == nl);
        FUZZ_CHECK((a.ignore & ~CPL_IGN_ALL) == 0);
        FUZZ_CHECK(a.ignore == 0 || a.ignore_set);
        /* Strings point into the policy and stay readable. */
        const char *s[] = {a.deny_reason, a.auth_realm, a.issuer_keyring, a.emu_hostname,
                           a.splash_text, a.splash_url, a.forward};
        for (size_t k = 0; k < sizeof(s) / sizeof(s[0]); k++)
            FUZZ_CHECK(s[k] == NULL || strlen(s[k]) <= CPL_MAX_LINE);
    }
    cpl_free(p);
}

static void
fuzz_cats(const char *text, size_t len)
{
    char err[256];
    memset(err, 0x55, sizeof(err));
    struct cpl_cats *c = cpl_cats_parse(text, len, "fuzz.txt", err, sizeof(err));
    if (c == NULL) {
        fuzz_check_err(err, sizeof(err), "fuzz.txt:");
        return;
    }
    static const char *const hosts[] = {
        "bank.example", "www.bank.example", "a.b.c.d.e", "EXAMPLE.", "", "10.0.0.1", "x"};
    for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++)
        FUZZ_CHECK(cpl_category(c, hosts[i]) != NULL);
    /* A short input is also looked up as a host: a domain covers itself. */
    if (len > 1 && len < 200 && memchr(text, '\0', len) == NULL) {
        char h[256];
        memcpy(h, text, len);
        h[len] = '\0';
        FUZZ_CHECK(cpl_category(c, h) != NULL);
    }
    size_t nc, ne;
    cpl_cats_stats(c, &nc, &ne);
    FUZZ_CHECK(nc <= CPL_MAX_CATS && ne <= CPL_MAX_CAT_ENTRIES);
    cpl_cats_free(c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct cpl_cats *cats;
    if (cats == NULL) {
        char err[256];
        cats = cpl_cats_parse(fuzz_cats_text, strlen(fuzz_cats_text), "fixed", err, sizeof(err));
        FUZZ_CHECK(cats != NULL);
    }
    /* Policies are a few KiB; longer inputs only slow the search down. */
    if (size < 1 || size > 64 * 1024)
        return 0;
    /* An exact-size heap copy, no NUL: the parsers must honour the length. */
    size_t len = size - 1;
    char *text = malloc(len ? len : 1);
    if (text == NULL)
        return 0;
    memcpy(text, data + 1, len);
    if ((data[0] & 1) == 0)
        fuzz_policy(text, len, cats);
    else
        fuzz_cats(text, len);
    free(text);
    return 0;
}
