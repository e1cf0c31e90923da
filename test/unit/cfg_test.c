/*
 * Unit tests for core/cfg.c: the sample etc/catena.conf against the key
 * table (both ways, values equal to the built-in defaults), defaults of an
 * empty file, one exact message per kind of error (file:line:column: key),
 * the scalar parsers, matching helpers and the reference count. Includes
 * cfg.c to reach the table and the text locator.
 */
#include "core/cfg.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include <cmocka.h>

/* ---- helpers ---------------------------------------------------------------- */

static char test_err[1024];

static struct cfg *
load(const char *text)
{
    return cfg_load_string(text, "t.conf", test_err, sizeof(test_err));
}

/* Loads text, expects failure with exactly `want` as the message. */
static void
expect_err(const char *text, const char *want)
{
    struct cfg *c = load(text);
    if (c != NULL) {
        cfg_unref(c);
        fail_msg("accepted: %s", text);
    }
    if (strcmp(test_err, want) != 0)
        fail_msg("text:\n%s\nwant: %s\ngot:  %s", text, want, test_err);
}

/* Expects failure whose message starts with `prefix` (position and key). */
static void
expect_err_prefix(const char *text, const char *prefix)
{
    struct cfg *c = load(text);
    if (c != NULL) {
        cfg_unref(c);
        fail_msg("accepted: %s", text);
    }
    if (strncmp(test_err, prefix, strlen(prefix)) != 0)
        fail_msg("text:\n%s\nwant prefix: %s\ngot: %s", text, prefix, test_err);
}

static struct cfg *
load_ok(const char *text)
{
    struct cfg *c = load(text);
    if (c == NULL)
        fail_msg("rejected: %s\n%s", text, test_err);
    return c;
}

/* etc/catena.conf from the repository root, or found from this file's path. */
static const char *
sample_path(void)
{
    static char path[4096];
    struct stat st;
    if (stat("etc/catena.conf", &st) == 0)
        return "etc/catena.conf";
    const char *f = __FILE__;
    const char *cut = strstr(f, "test/unit/");
    snprintf(path, sizeof(path), "%.*setc/catena.conf", cut != NULL ? (int)(cut - f) : 0, f);
    return path;
}

static char *
read_all(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    assert_true(n < sizeof(buf) - 1);
    buf[n] = '\0';
    return strdup(buf);
}

/* ---- the sample --------------------------------------------------------------- */

#define MAX_SAMPLE_KEYS 128

/*
 * Every key the sample documents, set or commented out ("# name = ..."):
 * a line "[#] ident =" inside the current group ("ident = {" opens one at
 * the top level, a line starting with "}" closes it).
 */
static size_t
sample_keys(const char *text, char keys[][64], size_t max)
{
    char group[64] = "";
    size_t n = 0;
    const char *line = text;
    for (unsigned guard = 0; *line != '\0' && guard < 10000; guard++) {
        const char *end = strchr(line, '\n');
        size_t len = end != NULL ? (size_t)(end - line) : strlen(line);
        size_t i = 0;
        while (i < len && (line[i] == ' ' || line[i] == '\t'))
            i++;
        bool commented = i < len && line[i] == '#';
        if (commented) {
            i++;
            while (i < len && line[i] == ' ')
                i++;
        }
        if (!commented && i < len && line[i] == '}')
            group[0] = '\0';
        size_t id = i;
        while (i < len && ((line[i] >= 'a' && line[i] <= 'z') || line[i] == '_'))
            i++;
        size_t idlen = i - id;
        while (i < len && line[i] == ' ')
            i++;
        if (idlen > 0 && i < len && line[i] == '=') {
            i++;
            while (i < len && line[i] == ' ')
                i++;
            if (!commented && i < len && line[i] == '{') {
                snprintf(group, sizeof(group), "%.*s", (int)idlen, line + id);
            } else if (n < max) {
                snprintf(keys[n++], 64, "%s%s%.*s", group, group[0] ? "." : "", (int)idlen,
                         line + id);
            }
        }
        line += len + (end != NULL);
    }
    return n;
}

static void
test_sample_documents_every_key(void **state)
{
    (void)state;
    char *text = read_all(sample_path());
    static char keys[MAX_SAMPLE_KEYS][64];
    size_t n = sample_keys(text, keys, MAX_SAMPLE_KEYS);
    free(text);
    assert_true(n > 30); /* the scanner found the sample's keys at all */
    for (size_t i = 0; i < n; i++)
        if (cfg_key_find(keys[i]) == NULL)
            fail_msg("sample documents %s, which the table does not have", keys[i]);
    for (size_t k = 0; k < CAT_ARRAY_LEN(cfg_keys); k++) {
        bool found = false;
        for (size_t i = 0; i < n && !found; i++)
            found = strcmp(keys[i], cfg_keys[k].name) == 0;
        if (!found)
            fail_msg("table key %s is not documented in the sample", cfg_keys[k].name);
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (strcmp(keys[i], keys[j]) == 0)
                fail_msg("sample documents %s twice", keys[i]);
}

static void
assert_ranges_eq(const struct cfg_port_range *a, size_t na, const struct cfg_port_range *b,
                 size_t nb)
{
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++) {
        assert_int_equal(a[i].lo, b[i].lo);
        assert_int_equal(a[i].hi, b[i].hi);
    }
}

static void
assert_strv_eq(char *const *a, size_t na, char *const *b, size_t nb)
{
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++)
        assert_string_equal(a[i], b[i]);
}

static void
assert_optstr_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        assert_ptr_equal(a, b);
    else
        assert_string_equal(a, b);
}

/* "Every key is optional and shows its default": the sample equals "". */
static void
test_sample_shows_defaults(void **state)
{
    (void)state;
    char err[512];
    struct cfg *s = cfg_load(sample_path(), err, sizeof(err));
    if (s == NULL)
        fail_msg("sample: %s", err);
    struct cfg *d = load_ok("");

    assert_string_equal(s->node_name, d->node_name);
    assert_int_equal(s->workers, d->workers);
    assert_optstr_eq(s->pid_file, d->pid_file);
    assert_int_equal(s->n_listeners, d->n_listeners);
    for (size_t i = 0; i < s->n_listeners; i++) {
        assert_int_equal(s->listeners[i].type, d->listeners[i].type);
        assert_string_equal(s->listeners[i].text, d->listeners[i].text);
        assert_int_equal(s->listeners[i].addrlen, d->listeners[i].addrlen);
        assert_memory_equal(&s->listeners[i].addr, &d->listeners[i].addr, s->listeners[i].addrlen);
    }
    assert_int_equal(s->n_client_nets, d->n_client_nets);
    assert_memory_equal(s->client_nets, d->client_nets, s->n_client_nets * sizeof(struct cfg_net));
    assert_ranges_eq(s->connect_ports, s->n_connect_ports, d->connect_ports, d->n_connect_ports);
    assert_ranges_eq(s->http_ports, s->n_http_ports, d->http_ports, d->n_http_ports);

    assert_strv_eq(s->resolver.servers, s->resolver.n_servers, d->resolver.servers,
                   d->resolver.n_servers);
    assert_optstr_eq(s->resolver.hosts_file, d->resolver.hosts_file);
    assert_int_equal(s->resolver.family, d->resolver.family);
    assert_int_equal(s->resolver.cache_entries, d->resolver.cache_entries);
    assert_int_equal(s->resolver.min_ttl_s, d->resolver.min_ttl_s);
    assert_int_equal(s->resolver.max_ttl_s, d->resolver.max_ttl_s);
    assert_int_equal(s->resolver.negative_ttl_s, d->resolver.negative_ttl_s);
    assert_int_equal(s->resolver.timeout_ms, d->resolver.timeout_ms);
    assert_int_equal(s->resolver.tries, d->resolver.tries);

    assert_memory_equal(&s->timeouts, &d->timeouts, sizeof(s->timeouts));
    assert_memory_equal(&s->limits, &d->limits, sizeof(s->limits));

    assert_optstr_eq(s->log.event_file, d->log.event_file);
    assert_int_equal(s->log.event_level, d->log.event_level);
    assert_int_equal(s->log.ssl_level, d->log.ssl_level);
    assert_optstr_eq(s->log.access_file, d->log.access_file);
    assert_string_equal(s->log.access_fields, d->log.access_fields);

    assert_int_equal(s->tls.intercept, d->tls.intercept);
    assert_strv_eq(s->tls.intercept_hosts.names, s->tls.intercept_hosts.n,
                   d->tls.intercept_hosts.names, d->tls.intercept_hosts.n);
    assert_strv_eq(s->tls.never_intercept.names, s->tls.never_intercept.n,
                   d->tls.never_intercept.names, d->tls.never_intercept.n);
    assert_int_equal(s->tls.n_keyrings, d->tls.n_keyrings);
    for (size_t i = 0; i < s->tls.n_keyrings; i++) {
        assert_string_equal(s->tls.keyrings[i].name, d->tls.keyrings[i].name);
        /* Same relative text, each from its own base directory. */
        const char *rel = "/../run/keyring";
        size_t sl = strlen(s->tls.keyrings[i].dir), dl = strlen(d->tls.keyrings[i].dir);
        assert_true(sl > strlen(rel) && dl > strlen(rel));
        assert_string_equal(s->tls.keyrings[i].dir + sl - strlen(rel), rel);
        assert_string_equal(d->tls.keyrings[i].dir + dl - strlen(rel), rel);
    }
    assert_optstr_eq(s->tls.splash_text, d->tls.splash_text);
    assert_optstr_eq(s->tls.splash_url, d->tls.splash_url);
    assert_int_equal(s->tls.cert_cache_entries, d->tls.cert_cache_entries);
    assert_int_equal(s->tls.use_system_cas, d->tls.use_system_cas);
    assert_optstr_eq(s->tls.ca_file, d->tls.ca_file);
    assert_optstr_eq(s->tls.keylog_file, d->tls.keylog_file);

    assert_string_equal(s->path, sample_path());
    cfg_unref(s);
    cfg_unref(d);
}

/* The sample's commented-out keys parse too, once uncommented. */
static void
test_sample_commented_keys_valid(void **state)
{
    (void)state;
    const char *text = "node = { name = \"branch-1\"; };\n"
                       "pid_file = \"/run/catena.pid\";\n"
                       "log = { access_file = \"/var/log/catena/access.log\"; };\n"
                       "tls = { splash_text = \"Inspected by catena for Example Corp\";\n"
                       "  splash_url = \"https://intranet.example.com/tls-inspection\";\n"
                       "  ca_file = \"extra-cas.pem\"; keylog_file = \"keylog.txt\"; };\n";
    struct cfg *c = load_ok(text);
    assert_string_equal(c->node_name, "branch-1");
    assert_string_equal(c->pid_file, "/run/catena.pid");
    assert_string_equal(c->log.access_file, "/var/log/catena/access.log");
    assert_string_equal(c->tls.splash_text, "Inspected by catena for Example Corp");
    assert_string_equal(c->tls.splash_url, "https://intranet.example.com/tls-inspection");
    assert_true(c->tls.ca_file[0] == '/');
    cfg_unref(c);
}

/* ---- defaults ------------------------------------------------------------------ */

static void
test_empty_is_defaults(void **state)
{
    (void)state;
    struct cfg *c = load_ok("");
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    assert_int_equal(c->workers, cpus < 1 ? 1 : cpus > 256 ? 256 : cpus);
    char host[256] = "";
    assert_int_equal(gethostname(host, sizeof(host)), 0);
    assert_string_equal(c->node_name, host);
    assert_null(c->pid_file);
    assert_string_equal(c->path, "t.conf");

    assert_int_equal(c->n_listeners, 1);
    assert_int_equal(c->listeners[0].type, CFG_LSN_HTTP);
    assert_string_equal(c->listeners[0].text, "127.0.0.1:3128");
    const struct sockaddr_in *a = (const void *)&c->listeners[0].addr;
    assert_int_equal(c->listeners[0].addrlen, sizeof(*a));
    assert_int_equal(a->sin_family, AF_INET);
    assert_int_equal(ntohs(a->sin_port), 3128);
    assert_int_equal(ntohl(a->sin_addr.s_addr), 0x7f000001);

    assert_int_equal(c->n_client_nets, 2);
    assert_int_equal(c->client_nets[0].family, AF_INET);
    assert_int_equal(c->client_nets[0].prefix, 8);
    assert_int_equal(c->client_nets[1].family, AF_INET6);
    assert_int_equal(c->client_nets[1].prefix, 128);
    assert_int_equal(c->n_connect_ports, 1);
    assert_int_equal(c->connect_ports[0].lo, 443);
    assert_int_equal(c->connect_ports[0].hi, 443);
    assert_int_equal(c->n_http_ports, 2);
    assert_int_equal(c->http_ports[0].lo, 80);
    assert_int_equal(c->http_ports[1].lo, 1025);
    assert_int_equal(c->http_ports[1].hi, 65535);

    assert_int_equal(c->resolver.n_servers, 0);
    assert_string_equal(c->resolver.hosts_file, "/etc/hosts");
    assert_int_equal(c->resolver.family, CFG_FAMILY_ANY);
    assert_int_equal(c->resolver.cache_entries, 10000);
    assert_int_equal(c->resolver.min_ttl_s, 5);
    assert_int_equal(c->resolver.max_ttl_s, 3600);
    assert_int_equal(c->resolver.negative_ttl_s, 30);
    assert_int_equal(c->resolver.timeout_ms, 2000);
    assert_int_equal(c->resolver.tries, 2);

    assert_int_equal(c->timeouts.connect_ms, 10000);
    assert_int_equal(c->timeouts.head_ms, 30000);
    assert_int_equal(c->timeouts.keepalive_ms, 60000);
    assert_int_equal(c->timeouts.idle_ms, 300000);
    assert_int_equal(c->timeouts.tunnel_idle_ms, 3600000);
    assert_int_equal(c->timeouts.tls_handshake_ms, 30000);
    assert_int_equal(c->timeouts.drain_ms, 30000);

    assert_int_equal(c->limits.max_connections, 20000);
    assert_int_equal(c->limits.max_head_size, 32768);
    assert_int_equal(c->limits.max_headers, 100);
    assert_int_equal(c->limits.buffer_size, 16384);
    assert_int_equal(c->limits.pipe_size, 65536);

    assert_null(c->log.event_file);
    assert_int_equal(c->log.event_level, LOG_INFO);
    assert_int_equal(c->log.ssl_level, LOG_INFO);
    assert_null(c->log.access_file);
    assert_string_equal(c->log.access_fields, LOG_ACCESS_DEFAULT_FIELDS);

    assert_int_equal(c->tls.intercept, CFG_INTERCEPT_NONE);
    assert_int_equal(c->tls.intercept_hosts.n, 0);
    assert_int_equal(c->tls.never_intercept.n, 0);
    assert_int_equal(c->tls.n_keyrings, 1);
    assert_string_equal(c->tls.keyrings[0].name, "default");
    char *cwd = getcwd(NULL, 0);
    char want[4200];
    snprintf(want, sizeof(want), "%s/../run/keyring", strcmp(cwd, "/") == 0 ? "" : cwd);
    free(cwd);
    assert_string_equal(c->tls.keyrings[0].dir, want);
    assert_null(c->tls.splash_text);
    assert_null(c->tls.splash_url);
    assert_int_equal(c->tls.cert_cache_entries, 10000);
    assert_true(c->tls.use_system_cas);
    assert_null(c->tls.ca_file);
    assert_null(c->tls.keylog_file);
    cfg_unref(c);

    /* Comments and empty groups are an empty config too. */
    c = load_ok("# nothing\n/* here */ node = { }; tls = { };\n");
    assert_int_equal(c->n_listeners, 1);
    cfg_unref(c);
}

/* Built-in defaults must satisfy the table's own bounds: each parses alone. */
static void
test_defaults_within_bounds(void **state)
{
    (void)state;
    for (size_t i = 0; i < CAT_ARRAY_LEN(cfg_keys); i++) {
        const struct cfg_key *k = &cfg_keys[i];
        if (k->def == NULL)
            continue;
        char text[1024];
        const char *dot = strchr(k->name, '.');
        if (dot != NULL)
            snprintf(text, sizeof(text), "%.*s = { %s = %s; };", (int)(dot - k->name), k->name,
                     dot + 1, k->def);
        else
            snprintf(text, sizeof(text), "%s = %s;", k->name, k->def);
        struct cfg *c = load_ok(text);
        cfg_unref(c);
    }
}

static void
test_values(void **state)
{
    (void)state;
    struct cfg *c = load_ok(
        "node = { name = \"edge-7.example\"; };\n"
        "workers = 3;\n"
        "listeners = ( { type = \"http\"; address = \"[::1]:8080\"; },\n"
        "              { type = \"SOCKS5\"; address = \"0.0.0.0:1080\"; },\n"
        "              { type = \"transparent\"; address = \"[::]:8081\"; } );\n"
        "access = { client_networks = [ \"10.0.0.0/8\", \"2001:db8::/32\", \"192.0.2.7\" ];\n"
        "  connect_ports = ( 443, \"8443-8444\", 563 );\n"
        "  http_ports = [ \"80\" ]; };\n"
        "resolver = { servers = [ \"127.0.0.1\", \"127.0.0.1:5353\", \"[::1]:53\", \"::1\" ];\n"
        "  hosts_file = \"\"; family = \"IPv6\"; cache_entries = 0; min_ttl = \"1m\";\n"
        "  max_ttl = \"1d\"; negative_ttl = 0; timeout = \"100ms\"; tries = 10; };\n"
        "timeouts = { connect = 1; head = \"1ms\"; keepalive = \"7d\"; idle = 604800;\n"
        "  tunnel_idle = \"2h\"; tls_handshake = \"5m\"; drain = 0x10; };\n"
        "limits = { max_connections = 1000000L; max_head_size = 1024; max_headers = 128;\n"
        "  buffer_size = \"1M\"; pipe_size = \"4K\"; };\n"
        "log = { event_file = \"/var/log/catena.log\"; event_level = \"debug\";\n"
        "  ssl_level = \"WARNING\"; access_file = \"\"; access_fields = \"date time\"; };\n"
        "tls = { intercept = \"list\"; intercept_hosts = [ \"Example.COM.\", \".Example.org\" ];\n"
        "  never_intercept = [ \".bank.example\", \"10.1.2.3\" ];\n"
        "  keyrings = ( { name = \"a\"; dir = \"/etc/catena/a\"; },\n"
        "               { name = \"b-2\"; dir = \"./b\"; } );\n"
        "  splash_text = \"\xc3\xa9t\xc3\xa9\"; cert_cache_entries = 1; use_system_cas = false;\n"
        "  ca_file = \"\"; keylog_file = \"/tmp/k\"; };\n");
    assert_string_equal(c->node_name, "edge-7.example");
    assert_int_equal(c->workers, 3);
    assert_int_equal(c->n_listeners, 3);
    assert_int_equal(c->listeners[0].addr.ss_family, AF_INET6);
    assert_int_equal(c->listeners[0].addrlen, sizeof(struct sockaddr_in6));
    assert_int_equal(ntohs(((struct sockaddr_in6 *)&c->listeners[0].addr)->sin6_port), 8080);
    assert_int_equal(c->listeners[1].type, CFG_LSN_SOCKS5);
    assert_int_equal(c->listeners[2].type, CFG_LSN_TRANSPARENT);
    assert_string_equal(c->listeners[2].text, "[::]:8081");
    assert_int_equal(c->n_client_nets, 3);
    assert_int_equal(c->client_nets[2].prefix, 32);
    assert_int_equal(c->n_connect_ports, 3);
    assert_int_equal(c->connect_ports[1].lo, 8443);
    assert_int_equal(c->connect_ports[1].hi, 8444);
    assert_int_equal(c->http_ports[0].hi, 80);
    assert_int_equal(c->resolver.n_servers, 4);
    assert_string_equal(c->resolver.servers[2], "[::1]:53");
    assert_null(c->resolver.hosts_file);
    assert_int_equal(c->resolver.family, CFG_FAMILY_IPV6);
    assert_int_equal(c->resolver.cache_entries, 0);
    assert_int_equal(c->resolver.min_ttl_s, 60);
    assert_int_equal(c->resolver.max_ttl_s, 86400);
    assert_int_equal(c->resolver.negative_ttl_s, 0);
    assert_int_equal(c->resolver.timeout_ms, 100);
    assert_int_equal(c->resolver.tries, 10);
    assert_int_equal(c->timeouts.connect_ms, 1000);
    assert_int_equal(c->timeouts.head_ms, 1);
    assert_int_equal(c->timeouts.keepalive_ms, 604800000u);
    assert_int_equal(c->timeouts.idle_ms, 604800000u);
    assert_int_equal(c->timeouts.tunnel_idle_ms, 7200000);
    assert_int_equal(c->timeouts.tls_handshake_ms, 300000);
    assert_int_equal(c->timeouts.drain_ms, 16000);
    assert_int_equal(c->limits.max_connections, 1000000);
    assert_int_equal(c->limits.max_head_size, 1024);
    assert_int_equal(c->limits.max_headers, 128);
    assert_int_equal(c->limits.buffer_size, 1 << 20);
    assert_int_equal(c->limits.pipe_size, 4096);
    assert_string_equal(c->log.event_file, "/var/log/catena.log");
    assert_int_equal(c->log.event_level, LOG_DEBUG);
    assert_int_equal(c->log.ssl_level, LOG_WARNING);
    assert_null(c->log.access_file);
    assert_string_equal(c->log.access_fields, "date time");
    assert_int_equal(c->tls.intercept, CFG_INTERCEPT_LIST);
    assert_string_equal(c->tls.intercept_hosts.names[0], "example.com");
    assert_string_equal(c->tls.intercept_hosts.names[1], ".example.org");
    assert_string_equal(c->tls.never_intercept.names[1], "10.1.2.3");
    assert_int_equal(c->tls.n_keyrings, 2);
    assert_string_equal(c->tls.keyrings[0].dir, "/etc/catena/a");
    assert_string_equal(c->tls.keyrings[1].name, "b-2");
    assert_string_equal(c->tls.splash_text, "\xc3\xa9t\xc3\xa9");
    assert_int_equal(c->tls.cert_cache_entries, 1);
    assert_false(c->tls.use_system_cas);
    assert_null(c->tls.ca_file);
    assert_string_equal(c->tls.keylog_file, "/tmp/k");
    cfg_unref(c);
}

/* ---- errors --------------------------------------------------------------------- */

static void
test_errors_exact(void **state)
{
    (void)state;
    static const struct {
        const char *text, *want;
    } t[] = {
        {"workers = 257;", "t.conf:1:1: workers: must be 0..256"},
        {"\n\nlimits = {\n  max_connections = 20000;\n  buffer_size = 100;\n};",
         "t.conf:5:3: limits.buffer_size: must be 4096..1048576"},
        {"limits = { pipe_size = \"1g\"; };",
         "t.conf:1:12: limits.pipe_size: must be 4096..1048576"},
        {"limits = { buffer_size = \"16kb\"; };",
         "t.conf:1:12: limits.buffer_size: must be a size: bytes, or a string like \"16k\", "
         "\"1m\""},
        {"wrokers = 1;", "t.conf:1:1: wrokers: unknown key"},
        {"resolver = {\n  tiemout = \"2s\";\n};", "t.conf:2:3: resolver.tiemout: unknown key"},
        {"resolver = 5;", "t.conf:1:1: resolver: must be a group: { ... }"},
        {"tls = { use_system_cas = 1; };", "t.conf:1:9: tls.use_system_cas: must be true or false"},
        {"workers = \"4\";", "t.conf:1:1: workers: must be an integer"},
        {"workers = 1.5;", "t.conf:1:1: workers: must be an integer"},
        /* libconfig 1.5 would wrap this to 1 */
        {"workers = 4294967297;", "t.conf:1:1: workers: must be 0..256"},
        {"limits = { max_connections = 5000000000; };",
         "t.conf:1:12: limits.max_connections: must be 1..1000000"},
        {"timeouts = { connect = 0; };", "t.conf:1:14: timeouts.connect: must be 1ms..7d"},
        {"timeouts = { idle = \"8d\"; };", "t.conf:1:14: timeouts.idle: must be 1ms..7d"},
        {"timeouts = { idle = -1; };", "t.conf:1:14: timeouts.idle: must be 1ms..7d"},
        {"resolver = { timeout = \"99ms\"; };", "t.conf:1:14: resolver.timeout: must be 100ms..1m"},
        {"resolver = { tries = 0; };", "t.conf:1:14: resolver.tries: must be 1..10"},
        {"resolver = { min_ttl = \"1500ms\"; };",
         "t.conf:1:14: resolver.min_ttl: must be whole seconds"},
        {"resolver = { min_ttl = 60;\n  max_ttl = 30; };",
         "t.conf:1:14: resolver.min_ttl: must not be above resolver.max_ttl (30s)"},
        {"resolver = { max_ttl = 1; };",
         "t.conf:1:14: resolver.max_ttl: must not be below resolver.min_ttl (5s)"},
        {"resolver = { family = \"ipv5\"; };",
         "t.conf:1:14: resolver.family: must be \"any\", \"ipv4\" or \"ipv6\""},
        {"log = { event_level = \"loud\"; };",
         "t.conf:1:9: log.event_level: must be \"err\", \"warning\", \"notice\", \"info\" or "
         "\"debug\""},
        {"tls = { intercept = 1; };",
         "t.conf:1:9: tls.intercept: must be \"none\", \"all\" or \"list\""},
        {"listeners = ();", "t.conf:1:1: listeners: must have at least 1 entry"},
        {"listeners = ( { type = \"http\"; address = \"127.0.0.1:3128\"; },\n"
         "  { type = \"http\"; address = \"127.0.0.1:3128\"; } );",
         "t.conf:2:20: listeners[1].address: 127.0.0.1:3128 overlaps listeners[0] "
         "(127.0.0.1:3128)"},
        {"listeners = ( { type = \"http\"; address = \"0.0.0.0:3128\"; }, { type = \"http\"; "
         "address = \"127.0.0.1:3128\"; } );",
         "t.conf:1:78: listeners[1].address: 127.0.0.1:3128 overlaps listeners[0] "
         "(0.0.0.0:3128)"},
        {"listeners = ( { type = \"http\"; } );", "t.conf:1:15: listeners[0]: address is missing"},
        {"listeners = ( { type = \"ftp\"; address = \"127.0.0.1:21\"; } );",
         "t.conf:1:17: listeners[0].type: must be \"http\", \"socks5\", \"transparent\", \"admin\" or \"https\""},
        {"listeners = ( { type = \"http\"; address = \"127.0.0.1:3128\"; port = 1; } );",
         "t.conf:1:60: listeners[0].port: unknown key"},
        {"listeners = ( { type = \"http\"; address = \"localhost:3128\"; } );",
         "t.conf:1:32: listeners[0].address: \"localhost:3128\": must be \"ipv4:port\" or "
         "\"[ipv6]:port\""},
        {"listeners = ( { type = \"http\"; address = \"127.0.0.1:0\"; } );",
         "t.conf:1:32: listeners[0].address: \"127.0.0.1:0\": port must be 1..65535"},
        {"listeners = [ \"127.0.0.1:3128\" ];",
         "t.conf:1:15: listeners[0]: must be a group: { ... }"},
        {"access = { connect_ports = [ 443, 0 ]; };",
         "t.conf:1:35: access.connect_ports[1]: must be 1..65535"},
        {"access = { http_ports = [ \"0-80\" ]; };",
         "t.conf:1:27: access.http_ports[0]: \"0-80\": port 0 is not a port"},
        {"access = {\n  http_ports = ( 80,\n    \"9000-8000\" );\n};",
         "t.conf:3:5: access.http_ports[1]: \"9000-8000\": low port above high port"},
        {"access = { http_ports = [ \"80-\" ]; };",
         "t.conf:1:27: access.http_ports[0]: \"80-\": must be a port or \"low-high\" with ports "
         "1..65535"},
        {"access = { connect_ports = 443; };",
         "t.conf:1:12: access.connect_ports: must be a list: [ ... ] or ( ... )"},
        {"access = { client_networks = [ \"127.0.0.0/8\", \"10.0.0.1/8\" ]; };",
         "t.conf:1:47: access.client_networks[1]: \"10.0.0.1/8\": host bits set below the "
         "prefix"},
        {"access = { client_networks = [ \"10.0.0.0/33\" ]; };",
         "t.conf:1:32: access.client_networks[0]: \"10.0.0.0/33\": prefix must be 0..32"},
        {"access = { client_networks = [ \"example.com\" ]; };",
         "t.conf:1:32: access.client_networks[0]: \"example.com\": not an IP address or network "
         "in CIDR form"},
        {"resolver = { servers = [ \"8.8.8.8:53\", \"dns.example\" ]; };",
         "t.conf:1:40: resolver.servers[1]: \"dns.example\": must be \"ip\", \"ip:port\" or "
         "\"[ipv6]:port\" (IP literals only)"},
        {"resolver = { servers = [ \"::1:53\", \"[::1]:99999\" ]; };",
         "t.conf:1:36: resolver.servers[1]: \"[::1]:99999\": must be \"ip\", \"ip:port\" or "
         "\"[ipv6]:port\" (IP literals only)"},
        {"tls = { keyrings = ( { name = \"a\"; dir = \"/a\"; },\n"
         "                     { name = \"A\"; dir = \"/b\"; } ); };",
         "t.conf:2:24: tls.keyrings[1].name: \"A\" is already the name of tls.keyrings[0]"},
        {"tls = { keyrings = ( { name = \"a b\"; dir = \"/a\"; } ); };",
         "t.conf:1:24: tls.keyrings[0].name: must be 1..64 letters, digits, '.', '-' or '_'"},
        {"tls = { keyrings = ( ); };", "t.conf:1:9: tls.keyrings: must have at least 1 entry"},
        {"tls = { intercept_hosts = [ \"*.example.com\" ]; };",
         "t.conf:1:29: tls.intercept_hosts[0]: \"*.example.com\": wildcards are not patterns: "
         "\".example.com\" means the domain and all below"},
        {"tls = { never_intercept = [ \"a..b\" ]; };",
         "t.conf:1:29: tls.never_intercept[0]: \"a..b\": must be a host name, \".domain\", or "
         "an IP address"},
        {"tls = { splash_url = \"ftp://x\"; };",
         "t.conf:1:9: tls.splash_url: must be an http:// or https:// URL"},
        {"node = { name = \"a b\"; };",
         "t.conf:1:10: node.name: may hold only letters, digits, '.', '-' and '_'"},
        {"node = { name = \"\"; };", "t.conf:1:10: node.name: must not be empty"},
        {"log = { event_file = \"a\\nb\"; };",
         "t.conf:1:9: log.event_file: \"a\\x0ab\": control characters are not allowed"},
        /* a name inside a string or comment before the key is not the key */
        {"tls = { splash_text = \"workers\"; } /* workers */ workers = 999;",
         "t.conf:1:50: workers: must be 0..256"},
        /* syntax, found before libconfig runs */
        {"a = 1;\n\n  b = ", "t.conf:3:7: syntax error: unexpected end of text, expected a value"},
        {"a = 1;\n\n  b = \n",
         "t.conf:4:1: syntax error: unexpected end of text, expected a value"},
        {"a = 1;\n\n  b = 1 2;\nc = 3;\n", "t.conf:3:9: syntax error: unexpected 2, expected ';'"},
        {"tls = { \"splash_text\" = 1; };",
         "t.conf:1:9: syntax error: unexpected string, expected a setting name or '}'"},
        {"workers 4;", "t.conf:1:9: syntax error: unexpected 4, expected '=' or ':'"},
        {"workers = 4;\n} ", "t.conf:2:1: syntax error: unexpected '}', expected a setting name"},
        {"access = { connect_ports = [ 443, ]; };",
         "t.conf:1:35: syntax error: unexpected ']', expected a value after ','"},
        {"access = { connect_ports = ( 443 443 ); };",
         "t.conf:1:34: syntax error: unexpected 443, expected ',' or ')'"},
        {"access = { connect_ports = [ [ 443 ] ]; };",
         "t.conf:1:30: syntax error: unexpected '[', expected a number, string, boolean or ']'"},
        {"workers = 1;\nnode = { name = \"x\" \xc3\xa9 };",
         "t.conf:2:21: syntax error: unexpected byte 0xc3, expected ';'"},
        /* "0x" is 0 then a setting named x, as libconfig reads it */
        {"workers = 0x;", "t.conf:1:13: syntax error: unexpected ';', expected '=' or ':'"},
        {"true = 1;", "t.conf:1:1: syntax error: unexpected true, expected a setting name"},
        {"workers = 1;\nworkers = 2;", "t.conf:2:1: workers: set twice (first on line 1)"},
        {"tls = {\n  keyrings = ( { name = \"a\";\n    name = \"b\"; } ); };",
         "t.conf:3:5: tls.keyrings[0].name: set twice (first on line 2)"},
        {"access = { http_ports = [ 80, \"1025-65535\" ]; };",
         "t.conf:1:31: syntax error: an array [ ] holds one type (integers); a list ( ) may mix "
         "them"},
        {"a = [ 1, 1L ];",
         "t.conf:1:10: syntax error: an array [ ] holds one type (integers); a list ( ) may mix "
         "them"},
        {"workers = 1;\n  @include \"/etc/passwd\"\n",
         "t.conf:2:3: syntax error: @include is not supported"},
        {"workers = 1;\n\t @include \"/etc/passwd\"",
         "t.conf:2:3: syntax error: @include is not supported"},
        {"workers = 1;\ntls = { splash_text = \"a\\\"\n  b; };\n",
         "t.conf:2:23: syntax error: unterminated string"},
        {"workers = 1; /* a\n b */ node = { };\n/* x\n",
         "t.conf:3:1: syntax error: unterminated comment"},
    };
    for (size_t i = 0; i < CAT_ARRAY_LEN(t); i++)
        expect_err(t[i].text, t[i].want);
}

/* What libconfig 1.5 gets wrong on its own, and what it must not be refused for. */
static void
test_lexical_edges(void **state)
{
    (void)state;
    /* a last-line comment without a newline */
    struct cfg *c = load_ok("workers = 3; # the end");
    assert_int_equal(c->workers, 3);
    cfg_unref(c);
    c = load_ok("workers = 3; // the end");
    cfg_unref(c);
    /* "@include" inside a string or a comment is text */
    c = load_ok("/*\n@include \"/etc/passwd\"\n*/ # @include \"x\"\nworkers = 2;");
    assert_int_equal(c->workers, 2);
    cfg_unref(c);
    expect_err("tls = { splash_text = \"x\n@include \\\"/etc/passwd\\\"\"; };\n",
               "t.conf:1:9: tls.splash_text: \"x\\x0a@include \\\"/etc/passwd\\\"\": control "
               "characters are not allowed");
    /* an escaped backslash before the closing quote */
    c = load_ok("tls = { splash_text = \"a\\\\\"; };");
    assert_string_equal(c->tls.splash_text, "a\\");
    cfg_unref(c);
    /* "@" anywhere else is garbage to libconfig */
    expect_err("workers = 1; @include \"x\"",
               "t.conf:1:14: syntax error: unexpected '@', expected a setting name");
    /* every number form of libconfig 1.5 is one token (then a type error of ours) */
    static const char *const nums[] = {"1",  "-1", "+1", "1L",  "1LL",  "0x1f", "0X1FL", "1.5",
                                       ".5", "-.", "1.", "1e5", "1.e5", "+.e5", "-1e+5", "2E-3"};
    for (size_t i = 0; i < CAT_ARRAY_LEN(nums); i++) {
        char text[64], want[128];
        snprintf(text, sizeof(text), "node = { name = %s; };", nums[i]);
        expect_err(text, "t.conf:1:10: node.name: must be a string");
        snprintf(text, sizeof(text), "tls = { keyrings = ( %s ); };", nums[i]);
        snprintf(want, sizeof(want), "t.conf:1:22: tls.keyrings[0]: must be a group: { ... }");
        expect_err(text, want);
    }
    /* booleans are any case; "TrueX" is a name */
    c = load_ok("tls = { use_system_cas = FaLsE; };");
    assert_false(c->tls.use_system_cas);
    cfg_unref(c);
    expect_err("tls = { use_system_cas = truex; };",
               "t.conf:1:26: syntax error: unexpected name truex, expected a value");
    /* separators: ',' ends a setting too, and none is needed before a name or '}' */
    c = load_ok("workers = 2, node = { name = \"n\" } limits = { max_headers = 9 }");
    assert_int_equal(c->workers, 2);
    assert_int_equal(c->limits.max_headers, 9);
    cfg_unref(c);
    /* nesting is bounded */
    char deep[256] = "a = ";
    for (int i = 0; i < 40; i++)
        strcat(deep, "(");
    expect_err(deep, "t.conf:1:37: syntax error: nested deeper than 32");
}

static void
test_error_splash_text_length(void **state)
{
    (void)state;
    char text[512], big[256];
    memset(big, 'x', 200);
    big[200] = '\0';
    snprintf(text, sizeof(text), "tls = { splash_text = \"%s\"; };", big);
    struct cfg *c = load_ok(text);
    assert_int_equal(strlen(c->tls.splash_text), 200);
    cfg_unref(c);
    big[200] = 'y';
    big[201] = '\0';
    snprintf(text, sizeof(text), "tls = { splash_text = \"%s\"; };", big);
    expect_err(text, "t.conf:1:9: tls.splash_text: must be at most 200 characters (is 201)");
    /* 200 two-byte characters are 200 characters */
    char utf[512] = "tls = { splash_text = \"";
    for (int i = 0; i < 200; i++)
        strcat(utf, "\xc3\xa9");
    strcat(utf, "\"; };");
    c = load_ok(utf);
    cfg_unref(c);
    /* continuation bytes alone are not characters, nor text */
    char cont[512] = "tls = { splash_text = \"";
    for (int i = 0; i < 300; i++)
        strcat(cont, "\x80");
    strcat(cont, "\"; };");
    expect_err(cont, "t.conf:1:9: tls.splash_text: must be UTF-8 text");
}

static void
test_utf8(void **state)
{
    (void)state;
    assert_int_equal(cfg_utf8_chars(""), 0);
    assert_int_equal(cfg_utf8_chars("abc"), 3);
    assert_int_equal(cfg_utf8_chars("\xc3\xa9"), 1);
    assert_int_equal(cfg_utf8_chars("\xe2\x82\xac"), 1);
    assert_int_equal(cfg_utf8_chars("\xf0\x9f\x98\x80x"), 2);
    assert_int_equal(cfg_utf8_chars("\xf4\x8f\xbf\xbf"), 1);
    static const char *const bad[] = {
        "\x80",
        "\xc3",
        "\xc3x",
        "\xc0\xaf",
        "\xc1\xbf",
        "\xe0\x80\xaf",
        "\xed\xa0\x80",
        "\xf4\x90\x80\x80",
        "\xf5\x80\x80\x80",
        "\xff",
        "a\xe2\x82",
    };
    for (size_t i = 0; i < CAT_ARRAY_LEN(bad); i++)
        if (cfg_utf8_chars(bad[i]) != SIZE_MAX)
            fail_msg("accepted bad UTF-8 #%zu", i);
}

/* Every message is one line and starts with the name. */
static void
test_error_one_line(void **state)
{
    (void)state;
    expect_err_prefix("tls = { intercept_hosts = [ \"a\\nb\\u0001\" ]; };",
                      "t.conf:1:29: tls.intercept_hosts[0]: ");
    assert_null(strchr(test_err, '\n'));
    expect_err_prefix("resolver = { servers = [ \"a\\\"b\" ]; };", "t.conf:1:26: ");
    assert_non_null(strstr(test_err, "\"a\\\"b\""));
    /* a small buffer truncates, never overruns */
    char small[16];
    struct cfg *c = cfg_load_string("workers = 999;", "t.conf", small, sizeof(small));
    assert_null(c);
    assert_int_equal(strlen(small), sizeof(small) - 1);
}

static void
test_load_file_errors(void **state)
{
    (void)state;
    char err[512];
    assert_null(cfg_load("/nonexistent/catena.conf", err, sizeof(err)));
    assert_string_equal(err, "/nonexistent/catena.conf: cannot open: No such file or directory");

    char dir[] = "/tmp/cfg_test.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/catena.conf", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("workers = 1;\n\nlimits = { max_headers = 7; };\n", f);
    fclose(f);
    assert_null(cfg_load(path, err, sizeof(err)));
    char want[512];
    snprintf(want, sizeof(want), "%s:3:12: limits.max_headers: must be 8..128", path);
    assert_string_equal(err, want);

    f = fopen(path, "w");
    assert_non_null(f);
    fwrite("workers = 1;\n\0x", 1, 15, f);
    fclose(f);
    assert_null(cfg_load(path, err, sizeof(err)));
    snprintf(want, sizeof(want), "%s:2: syntax error: NUL byte in the text", path);
    assert_string_equal(err, want);

    assert_null(cfg_load(dir, err, sizeof(err)));
    snprintf(want, sizeof(want), "%s: cannot read: Is a directory", dir);
    assert_string_equal(err, want);
    unlink(path);
    rmdir(dir);
}

/* Relative paths start from the config file's directory. */
static void
test_relative_paths(void **state)
{
    (void)state;
    char dir[] = "/tmp/cfg_test.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], want[512], err[512];
    snprintf(path, sizeof(path), "%s/catena.conf", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("pid_file = \"run/catena.pid\";\n"
          "resolver = { hosts_file = \"./hosts\"; };\n"
          "log = { event_file = \"ev.log\"; access_file = \"/abs/access.log\"; };\n"
          "tls = { ca_file = \"cas.pem\"; keylog_file = \"../keylog\";\n"
          "  keyrings = ( { name = \"k\"; dir = \"keyring\"; } ); };\n",
          f);
    fclose(f);
    struct cfg *c = cfg_load(path, err, sizeof(err));
    if (c == NULL)
        fail_msg("%s", err);
    snprintf(want, sizeof(want), "%s/run/catena.pid", dir);
    assert_string_equal(c->pid_file, want);
    snprintf(want, sizeof(want), "%s/hosts", dir);
    assert_string_equal(c->resolver.hosts_file, want);
    snprintf(want, sizeof(want), "%s/ev.log", dir);
    assert_string_equal(c->log.event_file, want);
    assert_string_equal(c->log.access_file, "/abs/access.log");
    snprintf(want, sizeof(want), "%s/cas.pem", dir);
    assert_string_equal(c->tls.ca_file, want);
    snprintf(want, sizeof(want), "%s/../keylog", dir);
    assert_string_equal(c->tls.keylog_file, want);
    snprintf(want, sizeof(want), "%s/keyring", dir);
    assert_string_equal(c->tls.keyrings[0].dir, want);
    assert_string_equal(c->path, path);
    cfg_unref(c);
    unlink(path);
    rmdir(dir);

    /* From a string: the current directory. */
    c = load_ok("tls = { ca_file = \"cas.pem\"; };");
    char *cwd = getcwd(NULL, 0);
    snprintf(want, sizeof(want), "%s/cas.pem", strcmp(cwd, "/") == 0 ? "" : cwd);
    free(cwd);
    assert_string_equal(c->tls.ca_file, want);
    cfg_unref(c);

    /* The directory of a relative config path is made absolute. */
    char *base = cfg_base_dir("etc/catena.conf");
    cwd = getcwd(NULL, 0);
    snprintf(want, sizeof(want), "%s/etc", strcmp(cwd, "/") == 0 ? "" : cwd);
    assert_string_equal(base, want);
    free(base);
    base = cfg_base_dir("catena.conf");
    assert_string_equal(base, cwd);
    free(base);
    free(cwd);
    base = cfg_base_dir("/catena.conf");
    assert_string_equal(base, "/");
    free(base);
    base = cfg_base_dir("/etc/catena/catena.conf");
    assert_string_equal(base, "/etc/catena");
    free(base);
}

/* ---- scalar parsers ------------------------------------------------------------- */

static void
test_parse_duration(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int rc;
        unsigned ms;
    } t[] = {
        {"0", CAT_OK, 0},
        {"10", CAT_OK, 10000},
        {"500ms", CAT_OK, 500},
        {"10s", CAT_OK, 10000},
        {"5m", CAT_OK, 300000},
        {"1h", CAT_OK, 3600000},
        {"7d", CAT_OK, 604800000},
        {"49d", CAT_OK, 4233600000u},
        {"4294967295ms", CAT_OK, 4294967295u},
        {"50d", CAT_ERR, 0}, /* over 32 bits of ms */
        {"4294967296ms", CAT_ERR, 0},
        {"99999999999999999999999", CAT_ERR, 0},
        {"", CAT_ERR, 0},
        {"s", CAT_ERR, 0},
        {"10 s", CAT_ERR, 0},
        {" 10s", CAT_ERR, 0},
        {"-1", CAT_ERR, 0},
        {"+1", CAT_ERR, 0},
        {"1.5s", CAT_ERR, 0},
        {"10S", CAT_ERR, 0},
        {"10sec", CAT_ERR, 0},
        {"1msx", CAT_ERR, 0},
        {"0x10", CAT_ERR, 0},
    };
    for (size_t i = 0; i < CAT_ARRAY_LEN(t); i++) {
        unsigned ms = 12345;
        int rc = cfg_parse_duration_ms(t[i].s, &ms);
        if (rc != t[i].rc)
            fail_msg("\"%s\": rc %d, want %d", t[i].s, rc, t[i].rc);
        if (rc == CAT_OK && ms != t[i].ms)
            fail_msg("\"%s\": %u ms, want %u", t[i].s, ms, t[i].ms);
        if (rc != CAT_OK)
            assert_int_equal(ms, 12345); /* untouched on error */
    }
}

static void
test_parse_size(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int rc;
        size_t n;
    } t[] = {
        {"0", CAT_OK, 0},
        {"4096", CAT_OK, 4096},
        {"16k", CAT_OK, 16384},
        {"64K", CAT_OK, 65536},
        {"1m", CAT_OK, 1048576},
        {"2M", CAT_OK, 2097152},
        {"1g", CAT_OK, 1073741824},
        {"17179869183G", CAT_OK, (size_t)17179869183ull << 30},
        {"17179869184G", CAT_ERR, 0}, /* 2^64 */
        {"18446744073709551616", CAT_ERR, 0},
        {"", CAT_ERR, 0},
        {"k", CAT_ERR, 0},
        {"16kb", CAT_ERR, 0},
        {"16 k", CAT_ERR, 0},
        {"-1", CAT_ERR, 0},
        {"1.5k", CAT_ERR, 0},
        {"1t", CAT_ERR, 0},
    };
    for (size_t i = 0; i < CAT_ARRAY_LEN(t); i++) {
        size_t n = 777;
        int rc = cfg_parse_size(t[i].s, &n);
        if (rc != t[i].rc)
            fail_msg("\"%s\": rc %d, want %d", t[i].s, rc, t[i].rc);
        if (rc == CAT_OK && n != t[i].n)
            fail_msg("\"%s\": %zu, want %zu", t[i].s, n, t[i].n);
    }
}

static void
test_parse_net(void **state)
{
    (void)state;
    struct cfg_net n;
    assert_int_equal(cfg_parse_net("10.0.0.0/8", &n), CAT_OK);
    assert_int_equal(n.family, AF_INET);
    assert_int_equal(n.prefix, 8);
    assert_int_equal(n.addr[0], 10);
    assert_int_equal(cfg_parse_net("192.0.2.1", &n), CAT_OK);
    assert_int_equal(n.prefix, 32);
    assert_int_equal(cfg_parse_net("0.0.0.0/0", &n), CAT_OK);
    assert_int_equal(n.prefix, 0);
    assert_int_equal(cfg_parse_net("::1/128", &n), CAT_OK);
    assert_int_equal(n.family, AF_INET6);
    assert_int_equal(n.addr[15], 1);
    assert_int_equal(cfg_parse_net("::/0", &n), CAT_OK);
    assert_int_equal(cfg_parse_net("2001:db8::/32", &n), CAT_OK);
    assert_int_equal(n.prefix, 32);
    assert_int_equal(cfg_parse_net("fe80::/10", &n), CAT_OK);
    assert_int_equal(cfg_parse_net("10.128.0.0/9", &n), CAT_OK);
    assert_int_equal(cfg_parse_net("::ffff:10.0.0.0/104", &n), CAT_OK);

    static const char *const bad[] = {
        "10.0.0.1/8",    "10.128.0.0/8", "fe80::1/10",  "2001:db8::1/32", "10.0.0.0/33",
        "::/129",        "10.0.0.0/",    "10.0.0.0/-1", "10.0.0.0/8/8",   "/8",
        "10.0.0.0/ 8",   "10.0.0.0/08x", "10.0.0",      "localhost",      "",
        "10.0.0.0/0008", "1.2.3.4.5",    "[::1]/128",   "10.0.0.0/8 ",
    };
    for (size_t i = 0; i < CAT_ARRAY_LEN(bad); i++)
        if (cfg_parse_net(bad[i], &n) != CAT_ERR)
            fail_msg("accepted \"%s\"", bad[i]);
}

static void
test_ports(void **state)
{
    (void)state;
    struct cfg *c = load_ok("access = { connect_ports = ( 1, \"65535\", \"10-20\", 0x50 ); };");
    assert_int_equal(c->n_connect_ports, 4);
    assert_true(cfg_port_allowed(c->connect_ports, c->n_connect_ports, 1));
    assert_true(cfg_port_allowed(c->connect_ports, c->n_connect_ports, 65535));
    assert_true(cfg_port_allowed(c->connect_ports, c->n_connect_ports, 10));
    assert_true(cfg_port_allowed(c->connect_ports, c->n_connect_ports, 15));
    assert_true(cfg_port_allowed(c->connect_ports, c->n_connect_ports, 20));
    assert_true(cfg_port_allowed(c->connect_ports, c->n_connect_ports, 80));
    assert_false(cfg_port_allowed(c->connect_ports, c->n_connect_ports, 9));
    assert_false(cfg_port_allowed(c->connect_ports, c->n_connect_ports, 21));
    assert_false(cfg_port_allowed(c->connect_ports, c->n_connect_ports, 443));
    assert_false(cfg_port_allowed(c->connect_ports, c->n_connect_ports, 0));
    assert_false(cfg_port_allowed(c->connect_ports, c->n_connect_ports, 65536));
    assert_false(cfg_port_allowed(NULL, 0, 443));
    cfg_unref(c);
    /* an empty list allows nothing */
    c = load_ok("access = { connect_ports = [ ]; };");
    assert_false(cfg_port_allowed(c->connect_ports, c->n_connect_ports, 443));
    cfg_unref(c);

    static const char *const bad[] = {
        "[ 0 ]",         "[ 65536 ]",     "[ -443 ]",        "[ \"0\" ]",
        "[ \"65536\" ]", "[ \"5-4\" ]",   "[ \"1-65536\" ]", "[ \"-5\" ]",
        "[ \"a-b\" ]",   "[ \"1 - 2\" ]", "[ \"\" ]",        "[ 4294967739 ]",
        "[ 1.0 ]",       "[ true ]",      "( ( 1 ) )",       "[ \"1-2-3\" ]",
    };
    for (size_t i = 0; i < CAT_ARRAY_LEN(bad); i++) {
        char text[128];
        snprintf(text, sizeof(text), "access = { http_ports = %s; };", bad[i]);
        expect_err_prefix(text, "t.conf:1:");
        assert_non_null(strstr(test_err, "access.http_ports"));
    }
}

static void
test_listener_addresses(void **state)
{
    (void)state;
    static const char *const good[] = {"127.0.0.1:3128", "[::1]:3128", "0.0.0.0:1", "[::]:65535",
                                       "[::ffff:127.0.0.1]:80"};
    for (size_t i = 0; i < CAT_ARRAY_LEN(good); i++) {
        char text[160];
        snprintf(text, sizeof(text), "listeners = ( { type = \"http\"; address = \"%s\"; } );",
                 good[i]);
        struct cfg *c = load_ok(text);
        assert_string_equal(c->listeners[0].text, good[i]);
        cfg_unref(c);
    }
    static const char *const bad[] = {
        "127.0.0.1",    "127.0.0.1:", ":3128",         "[::1]",
        "::1:3128",     "[::1]3128",  "[::1]:0",       "1.2.3.4:65536",
        "[1.2.3.4]:80", "host:80",    "127.0.0.1:+80", "127.0.0.1: 80",
        "[::1]:80x",    "",           "[]:80",
    };
    for (size_t i = 0; i < CAT_ARRAY_LEN(bad); i++) {
        char text[160];
        snprintf(text, sizeof(text), "listeners = ( { type = \"http\"; address = \"%s\"; } );",
                 bad[i]);
        expect_err_prefix(text, "t.conf:1:32: listeners[0].address: ");
    }
    /* Different families or ports do not overlap; IPv6 sockets are V6ONLY. */
    struct cfg *c = load_ok("listeners = ( { type = \"http\"; address = \"0.0.0.0:3128\"; },\n"
                            "  { type = \"http\"; address = \"[::]:3128\"; },\n"
                            "  { type = \"socks5\"; address = \"127.0.0.1:1080\"; } );");
    assert_int_equal(c->n_listeners, 3);
    cfg_unref(c);
    expect_err_prefix("listeners = ( { type = \"http\"; address = \"[::1]:3128\"; },\n"
                      "  { type = \"http\"; address = \"[::]:3128\"; } );",
                      "t.conf:2:20: listeners[1].address: [::]:3128 overlaps listeners[0]");

    /* An https listener has its certificate and key, and only it has them. */
    c = load_ok("listeners = ( { type = \"https\"; address = \"127.0.0.1:3129\";\n"
                "  cert = \"/etc/catena/proxy.pem\"; key = \"proxy.key\"; } );");
    assert_int_equal(c->listeners[0].type, CFG_LSN_HTTPS);
    assert_string_equal(c->listeners[0].cert_file, "/etc/catena/proxy.pem");
    assert_non_null(strstr(c->listeners[0].key_file, "proxy.key"));
    assert_string_equal(cfg_listener_type_name(c->listeners[0].type), "https");
    cfg_unref(c);
    expect_err_prefix("listeners = ( { type = \"https\"; address = \"127.0.0.1:3129\"; "
                      "key = \"k\"; } );",
                      "t.conf:1:15: listeners[0].cert: an \"https\" listener needs cert");
    expect_err_prefix("listeners = ( { type = \"http\"; address = \"127.0.0.1:3129\"; "
                      "cert = \"c\"; } );",
                      "t.conf:1:60: listeners[0].cert: only an \"https\" listener has cert");
    expect_err_prefix("listeners = ( { address = \"127.0.0.1:3129\"; } );",
                      "t.conf:1:15: listeners[0]: type is missing");
}

static void
test_servers(void **state)
{
    (void)state;
    static const char *const good[] = {"127.0.0.1",  "127.0.0.1:53", "::1",
                                       "[::1]:5353", "[::1]",        "2001:db8::53"};
    for (size_t i = 0; i < CAT_ARRAY_LEN(good); i++) {
        char text[160];
        snprintf(text, sizeof(text), "resolver = { servers = [ \"%s\" ]; };", good[i]);
        struct cfg *c = load_ok(text);
        assert_string_equal(c->resolver.servers[0], good[i]);
        cfg_unref(c);
    }
    static const char *const bad[] = {
        "",      "localhost", "1.2.3.4:0", "1.2.3.4:", "[::1]:", "[1.2.3.4]:53",
        "1.2.3", "[::1",      "::1]:53",   "1.2.3.4 "};
    for (size_t i = 0; i < CAT_ARRAY_LEN(bad); i++) {
        char text[160];
        snprintf(text, sizeof(text), "resolver = { servers = [ \"%s\" ]; };", bad[i]);
        expect_err_prefix(text, "t.conf:1:26: resolver.servers[0]: ");
    }
}

/* ---- matching ------------------------------------------------------------------ */

static struct cfg_hostlist *
hostlist(const char *items)
{
    char text[512];
    snprintf(text, sizeof(text), "tls = { intercept_hosts = [ %s ]; };", items);
    struct cfg *c = load_ok(text);
    /* Keep the snapshot alive through the list: it is freed by hostlist_free. */
    return &c->tls.intercept_hosts;
}

static void
hostlist_free(struct cfg_hostlist *l)
{
    cfg_unref(CAT_CONTAINER_OF(l, struct cfg, tls.intercept_hosts));
}

static void
test_hostlist_match(void **state)
{
    (void)state;
    struct cfg_hostlist *l =
        hostlist("\"example.com\", \".example.org\", \"10.0.0.1\", \"::1\", \"::FFFF:a\"");
    assert_string_equal(l->names[4], "::ffff:a");
    assert_true(cfg_hostlist_match(l, "::ffff:A"));
    assert_true(cfg_hostlist_match(l, "example.com"));
    assert_true(cfg_hostlist_match(l, "EXAMPLE.Com"));
    assert_true(cfg_hostlist_match(l, "example.com."));
    assert_false(cfg_hostlist_match(l, "www.example.com"));
    assert_false(cfg_hostlist_match(l, "xexample.com"));
    assert_false(cfg_hostlist_match(l, "example.com.."));
    assert_false(cfg_hostlist_match(l, "example.co"));
    assert_true(cfg_hostlist_match(l, "example.org"));
    assert_true(cfg_hostlist_match(l, "example.org."));
    assert_true(cfg_hostlist_match(l, "www.example.org"));
    assert_true(cfg_hostlist_match(l, "a.b.c.Example.ORG"));
    assert_false(cfg_hostlist_match(l, "badexample.org"));
    assert_false(cfg_hostlist_match(l, "example.org.evil"));
    assert_false(cfg_hostlist_match(l, "org"));
    assert_false(cfg_hostlist_match(l, ".example.org.x"));
    assert_true(cfg_hostlist_match(l, "10.0.0.1"));
    assert_false(cfg_hostlist_match(l, "10.0.0.10"));
    assert_true(cfg_hostlist_match(l, "::1"));
    assert_false(cfg_hostlist_match(l, ""));
    assert_false(cfg_hostlist_match(l, "."));
    hostlist_free(l);

    struct cfg *c = load_ok("");
    assert_false(cfg_hostlist_match(&c->tls.intercept_hosts, "example.com"));
    cfg_unref(c);
}

static void
sa4(struct sockaddr_storage *ss, const char *ip)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, ip, &a->sin_addr), 1);
}

static void
sa6(struct sockaddr_storage *ss, const char *ip)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
}

static void
test_net_match(void **state)
{
    (void)state;
    struct cfg *c = load_ok("access = { client_networks = [ \"10.0.0.0/8\", \"192.0.2.128/25\",\n"
                            "  \"2001:db8::/33\", \"172.16.0.1\" ]; };");
    const struct cfg_net *n = c->client_nets;
    size_t k = c->n_client_nets;
    struct sockaddr_storage ss;
#define M(fn, ip) (fn(&ss, ip), cfg_net_match(n, k, (const struct sockaddr *)&ss))
    assert_true(M(sa4, "10.0.0.0"));
    assert_true(M(sa4, "10.255.255.255"));
    assert_false(M(sa4, "11.0.0.0"));
    assert_false(M(sa4, "9.255.255.255"));
    assert_true(M(sa4, "192.0.2.128"));
    assert_true(M(sa4, "192.0.2.255"));
    assert_false(M(sa4, "192.0.2.127"));
    assert_true(M(sa4, "172.16.0.1"));
    assert_false(M(sa4, "172.16.0.2"));
    assert_true(M(sa6, "2001:db8::1"));
    assert_true(M(sa6, "2001:db8:7fff:ffff::1"));
    assert_false(M(sa6, "2001:db8:8000::1"));
    assert_false(M(sa6, "2001:db9::"));
    /* IPv4 clients on a dual-stack socket */
    assert_true(M(sa6, "::ffff:10.1.2.3"));
    assert_true(M(sa6, "::ffff:192.0.2.200"));
    assert_false(M(sa6, "::ffff:192.0.2.1"));
    assert_false(M(sa6, "::ffff:11.1.2.3"));
    assert_false(M(sa6, "::10.1.2.3")); /* IPv4-compatible is not mapped */
    assert_false(M(sa6, "::ffff:0:10.1.2.3"));
    ss.ss_family = AF_UNIX;
    assert_false(cfg_net_match(n, k, (const struct sockaddr *)&ss));
    assert_false(cfg_net_match(NULL, 0, (const struct sockaddr *)&ss));
    cfg_unref(c);

    /* Default: loopback only, both families. */
    c = load_ok("");
    n = c->client_nets;
    k = c->n_client_nets;
    assert_true(M(sa4, "127.0.0.1"));
    assert_true(M(sa4, "127.255.0.9"));
    assert_true(M(sa6, "::1"));
    assert_true(M(sa6, "::ffff:127.0.0.1"));
    assert_false(M(sa6, "::2"));
    assert_false(M(sa4, "128.0.0.1"));
    cfg_unref(c);

    /* /0 matches all of its family, and IPv6 nets see IPv4 clients as mapped. */
    c = load_ok("access = { client_networks = [ \"0.0.0.0/0\", \"::ffff:0:0/96\" ]; };");
    n = c->client_nets;
    k = 1;
    assert_true(M(sa4, "203.0.113.9"));
    assert_true(M(sa6, "::ffff:203.0.113.9"));
    assert_false(M(sa6, "2001:db8::1"));
    n = c->client_nets + 1;
    assert_true(M(sa4, "203.0.113.9"));
    cfg_unref(c);
#undef M
}

/* ---- reference count ----------------------------------------------------------- */

static void
test_refcount(void **state)
{
    (void)state;
    struct cfg *c = load_ok("workers = 2;");
    assert_int_equal(atomic_load(&c->refs), 1);
    assert_ptr_equal(cfg_ref(c), c);
    assert_ptr_equal(cfg_ref(c), c);
    assert_int_equal(atomic_load(&c->refs), 3);
    cfg_unref(c);
    cfg_unref(c);
    assert_int_equal(atomic_load(&c->refs), 1);
    assert_int_equal(c->workers, 2); /* still alive */
    cfg_unref(c);                    /* freed: LeakSanitizer checks the rest */
    cfg_unref(NULL);
}

/* Failures after partial parsing free what was built (checked under ASan). */
static void
test_partial_failure_frees(void **state)
{
    (void)state;
    expect_err_prefix(
        "node = { name = \"n\"; }; pid_file = \"p\";\n"
        "listeners = ( { type = \"http\"; address = \"127.0.0.1:1\"; } );\n"
        "resolver = { servers = [ \"::1\" ]; };\n"
        "tls = { intercept_hosts = [ \"a.example\", \"b.example\" ];\n"
        "  keyrings = ( { name = \"a\"; dir = \"/a\"; }, { name = \"a\"; dir = \"/b\"; } ); };",
        "t.conf:5:47: tls.keyrings[1].name: ");
    expect_err_prefix("resolver = { min_ttl = 10; max_ttl = 5; };", "t.conf:1:14: ");
}

/* ---- the locator ----------------------------------------------------------------- */

static void
test_locate_columns(void **state)
{
    (void)state;
    /* tabs count as one column; the element after a comment and a newline */
    expect_err("access = {\n\tconnect_ports = [ 443, # https\n\t\t/* odd */ 70000 ];\n};",
               "t.conf:3:13: access.connect_ports[1]: must be 1..65535");
    /* adjacent strings are one element */
    expect_err("tls = { never_intercept = [ \"a\" \"b.example\", \"-\" \"x y\" ]; };",
               "t.conf:1:46: tls.never_intercept[1]: \"-x y\": must be a host name, \".domain\", "
               "or an IP address");
    /* colon assignment, and nested lists skipped while counting */
    expect_err(
        "tls: { keyrings: ( { name: \"x\"; dir: \"(,)\\\"\"; }, { name: \"ok\"; dir: 5; } ); };",
        "t.conf:1:64: tls.keyrings[1].dir: must be a directory name");
    /* the same key name twice on a line: the one inside its own parent */
    expect_err("log = { event_level = \"info\"; }; tls = { intercept = \"x\"; };",
               "t.conf:1:42: tls.intercept: must be \"none\", \"all\" or \"list\"");
    expect_err("listeners = ( { type = \"http\"; address = \"127.0.0.1:1\"; }, "
               "{ type = \"http\"; address = \"bad\"; } );",
               "t.conf:1:77: listeners[1].address: \"bad\": must be \"ipv4:port\" or "
               "\"[ipv6]:port\"");
    /* a value on the line after its name */
    expect_err("limits = {\n  max_headers =\n    200;\n};",
               "t.conf:2:3: limits.max_headers: must be 8..128");
    /* libconfig gives this element the line of the ',' after it; the recognizer does not */
    expect_err("access = { http_ports = ( 80,\n  \"0\"\n  , 81 ); };",
               "t.conf:2:3: access.http_ports[1]: \"0\": port 0 is not a port");
    /* CRLF line ends */
    expect_err("workers = 1;\r\nlimits = { max_headers = 200; };\r\n",
               "t.conf:2:12: limits.max_headers: must be 8..128");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sample_documents_every_key),
        cmocka_unit_test(test_sample_shows_defaults),
        cmocka_unit_test(test_sample_commented_keys_valid),
        cmocka_unit_test(test_empty_is_defaults),
        cmocka_unit_test(test_defaults_within_bounds),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_errors_exact),
        cmocka_unit_test(test_lexical_edges),
        cmocka_unit_test(test_error_splash_text_length),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_error_one_line),
        cmocka_unit_test(test_load_file_errors),
        cmocka_unit_test(test_relative_paths),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_parse_net),
        cmocka_unit_test(test_ports),
        cmocka_unit_test(test_listener_addresses),
        cmocka_unit_test(test_servers),
        cmocka_unit_test(test_hostlist_match),
        cmocka_unit_test(test_net_match),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_partial_failure_frees),
        cmocka_unit_test(test_locate_columns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
