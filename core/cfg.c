/*
 * Node configuration loader: libconfig text -> a validated `struct cfg`.
 * Runs in the main thread at startup and on reload, before any worker sees
 * the result; a returned snapshot is immutable and owns every string in it.
 * One row of cfg_keys[] per key drives type checks, bounds and defaults, and
 * etc/catena.conf documents exactly those keys (the unit test checks both
 * ways). Errors are one line, "file:line:column: key: reason". A recognizer of
 * libconfig's syntax runs first (columns for syntax errors, no libconfig leaks);
 * libconfig gives settings a line only, so their columns are found in the text.
 */
#include "core/cfg.h"

#include "core/http.h"
#include "core/log.h"
#include "core/validate.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <libconfig.h>

#define CFG_MAX_TEXT (1u << 20) /* a node config is a few KiB; this bounds a wrong path */
#define CFG_SEC 1000ull
#define CFG_MIN (60 * CFG_SEC)
#define CFG_HOUR (60 * CFG_MIN)
#define CFG_DAY (24 * CFG_HOUR)

/* Enum fields are written through an int pointer by the table walker. */
_Static_assert(sizeof(enum cfg_family) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cfg_intercept_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cfg_tls_version) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cfg_non_http) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cfg_revocation) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cfg_fwd_down) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cfg_inspect) == sizeof(int), "enum size");

/* One load in progress. */
struct cfg_ctx {
    const char *name; /* borrowed: file name for messages */
    const char *text; /* borrowed: the text as given (libconfig reads a copy) */
    size_t len;
    char *base; /* owned: absolute directory relative paths start from */
    bool dflt;  /* applying a built-in default: no position in the text */
    char *err;
    size_t errlen;
    struct cfg *cfg;     /* owned until returned */
    config_t *user;      /* the parsed text */
    struct cfg_pos *pos; /* owned: one per setting, in libconfig's order */
    size_t n_pos, cap_pos;
    bool pos_ok; /* pos[] attached to every setting of *user */
};

struct cfg_key;
/* Parses list element i (setting e) into out, an element of the row's array. */
typedef int cfg_elem_fn(struct cfg_ctx *x, const struct cfg_key *k, const config_setting_t *e,
                        unsigned i, void *out);
/* Checks a whole list (s) once all elements are parsed: duplicates. */
typedef int cfg_post_fn(struct cfg_ctx *x, const struct cfg_key *k, const config_setting_t *s);
/* Extra validation of a string value v of setting s. */
typedef int cfg_check_fn(struct cfg_ctx *x, const struct cfg_key *k, const config_setting_t *s,
                         const char *v);

enum cfg_type {
    CFG_T_UINT,     /* unsigned: an integer */
    CFG_T_BOOL,     /* bool */
    CFG_T_STR,      /* char *: a string */
    CFG_T_PATH,     /* char *: a path, relative ones from the config's directory */
    CFG_T_DURATION, /* unsigned milliseconds: seconds, or "500ms" "10s" "5m" "1h" "1d" */
    CFG_T_TTL,      /* unsigned seconds: a duration in whole seconds */
    CFG_T_SIZE,     /* size_t bytes: a number, or "16k" "1m" */
    CFG_T_ENUM,     /* int: index of the value in names[] */
    CFG_T_LEVEL,    /* int: a syslog level by name (log_level_parse) */
    CFG_T_LIST,     /* array at off, count at off_n, elements by elem() */
    CFG_T_ERRBITS,  /* unsigned: certificate error names OR-ed (val_policy_bits) */
};

#define CFG_F_EMPTY_NULL 0x1u /* "" stores NULL (feature off) */
#define CFG_F_DASH_NULL 0x2u  /* "-" stores NULL (stderr) */

struct cfg_key {
    const char *name; /* "group.key" or "key" */
    enum cfg_type type;
    size_t off;
    const char *def;             /* libconfig value text as shown in etc/catena.conf; NULL: none */
    unsigned long long min, max; /* numbers: bounds (ms for durations); strings: max
                                    characters (0: any); lists: min elements */
    unsigned flags;
    const char *const *names; /* CFG_T_ENUM: NULL-terminated */
    size_t off_n;             /* CFG_T_LIST: the count */
    size_t esize;             /* CFG_T_LIST: element size */
    cfg_elem_fn *elem;
    cfg_post_fn *post;
    cfg_check_fn *check; /* CFG_T_STR */
};

#define CFG_OFF(f) offsetof(struct cfg, f)
/* A default in libconfig syntax, written without escapes. */
#define CFG_Q(...) #__VA_ARGS__

static const char *const cfg_family_names[] = {"any", "ipv4", "ipv6", NULL};
static const char *const cfg_intercept_names[] = {"none", "all", "list", NULL};
static const char *const cfg_tls_version_names[] = {"1.2", "1.3", NULL};
static const char *const cfg_non_http_names[] = {"relay", "deny", NULL};
static const char *const cfg_revocation_names[] = {"off", "soft", "hard", NULL};
static const char *const cfg_down_names[] = {"closed", "open", NULL};
static const char *const cfg_inspect_names[] = {"both", "edge", "core", NULL};
static const char *const cfg_lsn_names[] = {"http", "socks5", "transparent", "admin", "https", NULL};

const struct cfg_listener *
cfg_listener_find(const struct cfg *c, const char *text)
{
    for (size_t i = 0; i < c->n_listeners; i++)
        if (strcmp(c->listeners[i].text, text) == 0)
            return &c->listeners[i];
    return NULL;
}

const char *
cfg_listener_type_name(enum cfg_listener_type t)
{
    return (size_t)t < CAT_ARRAY_LEN(cfg_lsn_names) - 1 ? cfg_lsn_names[t] : "?";
}

static cfg_check_fn cfg_chk_node_name, cfg_chk_url, cfg_chk_header;
static cfg_elem_fn cfg_e_net, cfg_e_port, cfg_e_server, cfg_e_host, cfg_e_listener, cfg_e_keyring,
    cfg_e_ignore, cfg_e_path, cfg_e_realm, cfg_e_fwd_host, cfg_e_fwd_group;
static cfg_post_fn cfg_p_forwarding;
static cfg_post_fn cfg_p_listeners, cfg_p_keyrings;

/* Designated initializers only: -Wextra flags partly positional ones. */
#define CFG_ROW(n, t, f, d) .name = (n), .type = (t), .off = CFG_OFF(f), .def = (d)
#define CFG_LIST(n, t, fn) .off_n = CFG_OFF(n), .esize = sizeof(t), .elem = (fn)
#define CFG_RANGE(lo, hi) .min = (lo), .max = (hi)
#define CFG_DAYS7 CFG_RANGE(1, 7 * CFG_DAY)

/* Keep in sync with etc/catena.conf: the unit test compares the two. */
/* One row per key: the formatter would spread CFG_Q() defaults over several lines. */
/* clang-format off */
static const struct cfg_key cfg_keys[] = {
    {CFG_ROW("node.name", CFG_T_STR, node_name, NULL), .max = 255,
     .check = cfg_chk_node_name},
    {CFG_ROW("workers", CFG_T_UINT, workers, "0"), CFG_RANGE(0, 256)},
    {CFG_ROW("pid_file", CFG_T_PATH, pid_file, NULL), .flags = CFG_F_EMPTY_NULL},
    /* Before listeners: a socks5 listener names a realm. */
    {CFG_ROW("realms", CFG_T_LIST, realms, "()"),
     CFG_LIST(n_realms, struct cfg_realm, cfg_e_realm)},
    {CFG_ROW("listeners", CFG_T_LIST, listeners,
             CFG_Q(({ type = "http"; address = "127.0.0.1:3128"; }))),
     .min = 1, CFG_LIST(n_listeners, struct cfg_listener, cfg_e_listener),
     .post = cfg_p_listeners},

    {CFG_ROW("access.client_networks", CFG_T_LIST, client_nets,
             CFG_Q(["127.0.0.0/8", "::1/128"])),
     CFG_LIST(n_client_nets, struct cfg_net, cfg_e_net)},
    {CFG_ROW("access.connect_ports", CFG_T_LIST, connect_ports, "[ 443 ]"),
     CFG_LIST(n_connect_ports, struct cfg_port_range, cfg_e_port)},
    {CFG_ROW("access.http_ports", CFG_T_LIST, http_ports, CFG_Q((80, "1025-65535"))),
     CFG_LIST(n_http_ports, struct cfg_port_range, cfg_e_port)},
    {CFG_ROW("access.admin_networks", CFG_T_LIST, admin_nets,
             CFG_Q(["127.0.0.0/8", "::1/128"])),
     CFG_LIST(n_admin_nets, struct cfg_net, cfg_e_net)},

    {CFG_ROW("resolver.servers", CFG_T_LIST, resolver.servers, "[]"),
     CFG_LIST(resolver.n_servers, char *, cfg_e_server)},
    {CFG_ROW("resolver.hosts_file", CFG_T_PATH, resolver.hosts_file, CFG_Q("/etc/hosts")),
     .flags = CFG_F_EMPTY_NULL},
    {CFG_ROW("resolver.family", CFG_T_ENUM, resolver.family, CFG_Q("any")),
     .names = cfg_family_names},
    {CFG_ROW("resolver.cache_entries", CFG_T_UINT, resolver.cache_entries, "10000"),
     CFG_RANGE(0, 10000000)},
    {CFG_ROW("resolver.min_ttl", CFG_T_TTL, resolver.min_ttl_s, "5"), CFG_RANGE(0, CFG_DAY)},
    {CFG_ROW("resolver.max_ttl", CFG_T_TTL, resolver.max_ttl_s, "3600"),
     CFG_RANGE(CFG_SEC, 7 * CFG_DAY)},
    {CFG_ROW("resolver.negative_ttl", CFG_T_TTL, resolver.negative_ttl_s, "30"),
     CFG_RANGE(0, CFG_DAY)},
    {CFG_ROW("resolver.timeout", CFG_T_DURATION, resolver.timeout_ms, CFG_Q("2s")),
     CFG_RANGE(100, 60 * CFG_SEC)},
    {CFG_ROW("resolver.tries", CFG_T_UINT, resolver.tries, "2"), CFG_RANGE(1, 10)},

    {CFG_ROW("timeouts.connect", CFG_T_DURATION, timeouts.connect_ms, CFG_Q("10s")), CFG_DAYS7},
    {CFG_ROW("timeouts.head", CFG_T_DURATION, timeouts.head_ms, CFG_Q("30s")), CFG_DAYS7},
    {CFG_ROW("timeouts.keepalive", CFG_T_DURATION, timeouts.keepalive_ms, CFG_Q("60s")),
     CFG_DAYS7},
    {CFG_ROW("timeouts.idle", CFG_T_DURATION, timeouts.idle_ms, CFG_Q("300s")), CFG_DAYS7},
    {CFG_ROW("timeouts.tunnel_idle", CFG_T_DURATION, timeouts.tunnel_idle_ms, CFG_Q("3600s")),
     CFG_DAYS7},
    {CFG_ROW("timeouts.tls_handshake", CFG_T_DURATION, timeouts.tls_handshake_ms, CFG_Q("30s")),
     CFG_DAYS7},
    {CFG_ROW("timeouts.drain", CFG_T_DURATION, timeouts.drain_ms, CFG_Q("30s")), CFG_DAYS7},

    {CFG_ROW("limits.max_connections", CFG_T_UINT, limits.max_connections, "20000"),
     CFG_RANGE(1, 1000000)},
    {CFG_ROW("limits.max_head_size", CFG_T_SIZE, limits.max_head_size, CFG_Q("32k")),
     CFG_RANGE(1024, 1 << 20)},
    {CFG_ROW("limits.max_headers", CFG_T_UINT, limits.max_headers, "100"),
     CFG_RANGE(8, HTTP_MAX_HEADERS)},
    {CFG_ROW("limits.buffer_size", CFG_T_SIZE, limits.buffer_size, CFG_Q("16k")),
     CFG_RANGE(4096, 1 << 20)},
    /* The kernel rounds a pipe up to whole pages (F_SETPIPE_SZ). */
    {CFG_ROW("limits.pipe_size", CFG_T_SIZE, limits.pipe_size, CFG_Q("64k")),
     CFG_RANGE(4096, 1 << 20)},

    {CFG_ROW("log.event_file", CFG_T_PATH, log.event_file, CFG_Q("-")),
     .flags = CFG_F_DASH_NULL},
    {CFG_ROW("log.event_level", CFG_T_LEVEL, log.event_level, CFG_Q("info"))},
    {CFG_ROW("log.ssl_level", CFG_T_LEVEL, log.ssl_level, CFG_Q("info"))},
    {CFG_ROW("log.access_file", CFG_T_PATH, log.access_file, NULL), .flags = CFG_F_EMPTY_NULL},
    {CFG_ROW("log.ssl_file", CFG_T_PATH, log.ssl_file, NULL), .flags = CFG_F_EMPTY_NULL},
    {CFG_ROW("log.access_fields", CFG_T_STR, log.access_fields,
             "\"" LOG_ACCESS_DEFAULT_FIELDS "\"")},

    {CFG_ROW("tls.intercept", CFG_T_ENUM, tls.intercept, CFG_Q("none")),
     .names = cfg_intercept_names},
    {CFG_ROW("tls.intercept_hosts", CFG_T_LIST, tls.intercept_hosts.names, "[]"),
     CFG_LIST(tls.intercept_hosts.n, char *, cfg_e_host)},
    {CFG_ROW("tls.never_intercept", CFG_T_LIST, tls.never_intercept.names, "[]"),
     CFG_LIST(tls.never_intercept.n, char *, cfg_e_host)},
    {CFG_ROW("tls.keyrings", CFG_T_LIST, tls.keyrings,
             CFG_Q(({ name = "default"; dir = "../run/keyring"; }))),
     .min = 1, CFG_LIST(tls.n_keyrings, struct cfg_keyring, cfg_e_keyring),
     .post = cfg_p_keyrings},
    /* Both go into every emulated certificate, so they are kept short. */
    {CFG_ROW("tls.splash_text", CFG_T_STR, tls.splash_text, NULL), .max = 200},
    {CFG_ROW("tls.splash_url", CFG_T_STR, tls.splash_url, NULL), .max = 2048,
     .check = cfg_chk_url},
    {CFG_ROW("tls.cert_cache_entries", CFG_T_UINT, tls.cert_cache_entries, "10000"),
     CFG_RANGE(1, 1000000)},
    {CFG_ROW("tls.use_system_cas", CFG_T_BOOL, tls.use_system_cas, "true")},
    {CFG_ROW("tls.client_min_version", CFG_T_ENUM, tls.client_min_version, CFG_Q("1.2")),
     .names = cfg_tls_version_names},
    {CFG_ROW("tls.server_min_version", CFG_T_ENUM, tls.server_min_version, CFG_Q("1.2")),
     .names = cfg_tls_version_names},
    {CFG_ROW("tls.client_ciphers", CFG_T_STR, tls.client_ciphers, "\"" CFG_TLS_CIPHERS_DEFAULT "\""),
     .max = 2048},
    {CFG_ROW("tls.server_ciphers", CFG_T_STR, tls.server_ciphers, "\"" CFG_TLS_CIPHERS_DEFAULT "\""),
     .max = 2048},
    {CFG_ROW("tls.mirror_version", CFG_T_BOOL, tls.mirror_version, "false")},
    {CFG_ROW("tls.ca_file", CFG_T_PATH, tls.ca_file, NULL), .flags = CFG_F_EMPTY_NULL},
    {CFG_ROW("tls.keylog_file", CFG_T_PATH, tls.keylog_file, NULL), .flags = CFG_F_EMPTY_NULL},
    {CFG_ROW("tls.download_host", CFG_T_STR, tls.download_host, CFG_Q("catena.ca")), .max = 253,
     .check = cfg_chk_node_name},
    {CFG_ROW("tls.crl_url", CFG_T_BOOL, tls.crl_url, "false")},
    {CFG_ROW("tls.non_http", CFG_T_ENUM, tls.non_http, CFG_Q("relay")),
     .names = cfg_non_http_names},
    {CFG_ROW("validation.enabled", CFG_T_BOOL, validation.enabled, "true")},
    {CFG_ROW("validation.tunnels", CFG_T_BOOL, validation.tunnels, "true")},
    {CFG_ROW("validation.revocation", CFG_T_ENUM, validation.revocation, CFG_Q("soft")),
     .names = cfg_revocation_names},
    {CFG_ROW("validation.revocation_timeout", CFG_T_DURATION, validation.revocation_timeout_ms,
             CFG_Q("3s")),
     CFG_RANGE(100, 60 * CFG_SEC)},
    {CFG_ROW("validation.override", CFG_T_ERRBITS, validation.override,
             CFG_Q(["expiration", "hostname_mismatch"])),
     },
    {CFG_ROW("validation.override_for", CFG_T_DURATION, validation.override_ms, CFG_Q("1h")),
     CFG_RANGE(CFG_SEC, 7 * CFG_DAY)},
    {CFG_ROW("validation.ignore", CFG_T_LIST, validation.ignore, "()"),
     CFG_LIST(validation.n_ignore, struct cfg_ignore, cfg_e_ignore)},
    {CFG_ROW("validation.cache_entries", CFG_T_UINT, validation.cache_entries, "10000"),
     CFG_RANGE(0, 1000000)},
    {CFG_ROW("validation.probe_ttl", CFG_T_DURATION, validation.probe_ttl_ms, CFG_Q("10m")),
     CFG_RANGE(CFG_SEC, CFG_DAY)},
    {CFG_ROW("validation.probe_timeout", CFG_T_DURATION, validation.probe_timeout_ms,
             CFG_Q("5s")),
     CFG_RANGE(100, 60 * CFG_SEC)},
    {CFG_ROW("validation.aia_fetch", CFG_T_BOOL, validation.aia_fetch, "false")},
    {CFG_ROW("bundle.file", CFG_T_PATH, bundle.file, NULL), .flags = CFG_F_EMPTY_NULL},
    {CFG_ROW("bundle.keys", CFG_T_LIST, bundle.keys, "[]"),
     .max = CFG_MAX_BUNDLE_KEYS, CFG_LIST(bundle.n_keys, char *, cfg_e_path)},
    {CFG_ROW("bundle.store", CFG_T_PATH, bundle.store, NULL), .flags = CFG_F_EMPTY_NULL},
    {CFG_ROW("bundle.pull_url", CFG_T_STR, bundle.pull_url, NULL), .max = 2048,
     .flags = CFG_F_EMPTY_NULL, .check = cfg_chk_url},
    {CFG_ROW("bundle.pull_interval", CFG_T_DURATION, bundle.pull_interval_ms, CFG_Q("5m")),
     CFG_RANGE(CFG_SEC, CFG_DAY)},
    {CFG_ROW("admin.token_file", CFG_T_PATH, admin_token_file, NULL), .flags = CFG_F_EMPTY_NULL},
    {CFG_ROW("forwarding.hosts", CFG_T_LIST, forwarding.hosts, "()"),
     CFG_LIST(forwarding.n_hosts, struct cfg_fwd_host, cfg_e_fwd_host)},
    {CFG_ROW("forwarding.groups", CFG_T_LIST, forwarding.groups, "()"),
     CFG_LIST(forwarding.n_groups, struct cfg_fwd_group, cfg_e_fwd_group),
     .post = cfg_p_forwarding},
    {CFG_ROW("forwarding.default", CFG_T_STR, forwarding.default_route, NULL), .max = 64,
     .flags = CFG_F_EMPTY_NULL},
    {CFG_ROW("forwarding.when_down", CFG_T_ENUM, forwarding.when_down, CFG_Q("closed")),
     .names = cfg_down_names},
    {CFG_ROW("forwarding.connect_timeout", CFG_T_DURATION, forwarding.connect_ms, CFG_Q("5s")),
     CFG_RANGE(100, 60 * CFG_SEC)},
    {CFG_ROW("forwarding.health_interval", CFG_T_DURATION, forwarding.health_ms, CFG_Q("5s")),
     CFG_RANGE(100, CFG_HOUR)},
    {CFG_ROW("forwarding.health_failures", CFG_T_UINT, forwarding.health_failures, "3"),
     CFG_RANGE(1, 100)},
    {CFG_ROW("forwarding.user_header", CFG_T_STR, forwarding.user_header,
             CFG_Q("X-Authenticated-User")),
     .max = 64, .check = cfg_chk_header},
    {CFG_ROW("tier.downstream_networks", CFG_T_LIST, tier.downstream_nets, "[]"),
     CFG_LIST(tier.n_downstream_nets, struct cfg_net, cfg_e_net)},
    {CFG_ROW("tier.inspect", CFG_T_ENUM, tier.inspect, CFG_Q("both")),
     .names = cfg_inspect_names},
    {CFG_ROW("pinning.enabled", CFG_T_BOOL, pinning.enabled, "true")},
    {CFG_ROW("pinning.threshold", CFG_T_UINT, pinning.threshold, "3"),
     CFG_RANGE(1, 1000)},
    {CFG_ROW("pinning.window", CFG_T_DURATION, pinning.window_ms, CFG_Q("10m")),
     CFG_RANGE(CFG_SEC, 7 * CFG_DAY)},
    {CFG_ROW("pinning.tunnel_for", CFG_T_DURATION, pinning.tunnel_ms, CFG_Q("1h")),
     CFG_RANGE(CFG_SEC, 30 * CFG_DAY)},
    {CFG_ROW("pinning.always_intercept", CFG_T_LIST, pinning.always_intercept.names,
             "[]"),
     CFG_LIST(pinning.always_intercept.n, char *, cfg_e_host)},
};
/* clang-format on */

/* ---- positions in the text -------------------------------------------------- */

static bool
cfg_id_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '*';
}

static bool
cfg_id_char(char c)
{
    return cfg_id_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* Names of nodes and keyrings: letters, digits, '.', '-', '_'. */
static bool
cfg_word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
}

/*
 * Where a setting is, recorded by the recognizer (cfg_syntax) in the order
 * libconfig creates settings, and attached to them as their hook.
 */
struct cfg_pos {
    size_t name;  /* offset of the name, or of the element itself in a list */
    size_t value; /* offset of the value */
};

/* Attaches the recorded positions to libconfig's settings, in creation order. */
static bool
cfg_attach_pos(struct cfg_ctx *x, config_setting_t *s, size_t *i, unsigned depth)
{
    for (int k = 0; k < config_setting_length(s); k++) {
        config_setting_t *c = config_setting_get_elem(s, (unsigned)k);
        if (*i >= x->n_pos || depth > 64)
            return false;
        config_setting_set_hook(c, &x->pos[(*i)++]);
        if (config_setting_is_aggregate(c) && !cfg_attach_pos(x, c, i, depth + 1))
            return false;
    }
    return true;
}

/* Where setting s is, or NULL (a default, or positions that did not line up). */
static const struct cfg_pos *
cfg_pos_of(const struct cfg_ctx *x, const config_setting_t *s)
{
    return x->dflt || !x->pos_ok ? NULL : config_setting_get_hook(s);
}

/*
 * libconfig 1.5 converts integer literals like atoi(): 5000000000 becomes
 * 705032704 with no error. Reads the literal again from the text and says
 * whether the value libconfig holds is the one written (true if unknown).
 */
static bool
cfg_literal_ok(const struct cfg_ctx *x, const config_setting_t *s)
{
    const struct cfg_pos *pos = cfg_pos_of(x, s);
    if (pos == NULL)
        return true;
    const char *t = x->text;
    size_t i = pos->value;
    bool neg = t[i] == '-';
    if (t[i] == '-' || t[i] == '+')
        i++;
    unsigned base = 10;
    if (i + 1 < x->len && t[i] == '0' && (t[i + 1] == 'x' || t[i + 1] == 'X')) {
        base = 16;
        i += 2;
    }
    unsigned long long v = 0;
    bool any = false, over = false;
    for (; i < x->len; i++) {
        char c = t[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (base == 16 && c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (base == 16 && c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            break;
        any = true;
        if (v > (ULLONG_MAX - d) / base)
            over = true;
        else
            v = v * base + d;
    }
    if (!any)
        return true;
    unsigned long long lim = config_setting_type(s) == CONFIG_TYPE_INT64
                                 ? (unsigned long long)LLONG_MAX
                                 : (unsigned long long)INT_MAX;
    return !over && v <= lim + (neg ? 1 : 0);
}

/* ---- messages ---------------------------------------------------------------- */

/* Writes s quoted, with control bytes escaped and long values cut. */
static const char *
cfg_quote(const char *s, char *buf, size_t cap)
{
    size_t o = 0;
    buf[o++] = '"';
    for (size_t i = 0; s[i] != '\0' && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i == 60) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

/* 1-based line and column of setting s; column 0 when it cannot be found. */
static void
cfg_where(const struct cfg_ctx *x, const config_setting_t *s, unsigned *line, unsigned *col)
{
    const struct cfg_pos *pos = cfg_pos_of(x, s);
    *line = config_setting_source_line(s);
    *col = 0;
    if (pos == NULL)
        return;
    size_t off = pos->name;
    size_t ls = 0;
    unsigned l = 1;
    for (size_t i = 0; i < off; i++)
        if (x->text[i] == '\n') {
            l++;
            ls = i + 1;
        }
    *line = l;
    *col = (unsigned)(off - ls + 1);
}

/* Messages are one line: no byte of the input may break it. */
static void
cfg_one_line(char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

static int cfg_fail(struct cfg_ctx *x, const config_setting_t *s, const char *key, const char *fmt,
                    ...) CAT_PRINTF(4, 5);
static int cfg_fail_elem(struct cfg_ctx *x, const config_setting_t *s, const struct cfg_key *k,
                         unsigned i, const char *member, const char *fmt, ...) CAT_PRINTF(6, 7);

/* Writes "file:line:col: key: reason" for setting s (NULL: no position). */
static int
cfg_fail(struct cfg_ctx *x, const config_setting_t *s, const char *key, const char *fmt, ...)
{
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    char where[48] = "";
    if (s != NULL && !x->dflt) {
        unsigned line, col;
        cfg_where(x, s, &line, &col);
        if (col != 0)
            snprintf(where, sizeof(where), ":%u:%u", line, col);
        else if (line != 0)
            snprintf(where, sizeof(where), ":%u", line);
    }
    if (x->errlen > 0) {
        snprintf(x->err, x->errlen, "%s%s: %s: %s%s", x->name, where, key, reason,
                 x->dflt ? " (built-in default)" : "");
        cfg_one_line(x->err);
    }
    return CAT_ERR;
}

/* The same for element i of list row k ("key[i]"), or for a member of it. */
static int
cfg_fail_elem(struct cfg_ctx *x, const config_setting_t *s, const struct cfg_key *k, unsigned i,
              const char *member, const char *fmt, ...)
{
    char key[128], reason[512];
    snprintf(key, sizeof(key), "%s[%u]%s%s", k->name, i, member ? "." : "", member ? member : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    return cfg_fail(x, s, key, "%s", reason);
}

static void
cfg_choices(const char *const *names, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; names[i] != NULL && o < cap; i++) {
        const char *sep = i == 0 ? "" : names[i + 1] == NULL ? " or " : ", ";
        int n = snprintf(buf + o, cap - o, "%s\"%s\"", sep, names[i]);
        if (n < 0)
            break;
        o += (size_t)n;
    }
}

/* "7d", "60s", "100ms": the largest unit that divides ms exactly. */
static const char *
cfg_fmt_ms(unsigned long long ms, char *buf, size_t cap)
{
    static const struct {
        unsigned long long ms;
        const char *unit;
    } u[] = {{CFG_DAY, "d"}, {CFG_HOUR, "h"}, {CFG_MIN, "m"}, {CFG_SEC, "s"}};
    if (ms != 0)
        for (size_t i = 0; i < CAT_ARRAY_LEN(u); i++)
            if (ms % u[i].ms == 0) {
                snprintf(buf, cap, "%llu%s", ms / u[i].ms, u[i].unit);
                return buf;
            }
    snprintf(buf, cap, "%llu%s", ms, ms == 0 ? "" : "ms");
    return buf;
}

static int
cfg_fail_range(struct cfg_ctx *x, const struct cfg_key *k, const config_setting_t *s)
{
    char lo[32], hi[32];
    if (k->type == CFG_T_DURATION || k->type == CFG_T_TTL)
        return cfg_fail(x, s, k->name, "must be %s..%s", cfg_fmt_ms(k->min, lo, sizeof(lo)),
                        cfg_fmt_ms(k->max, hi, sizeof(hi)));
    return cfg_fail(x, s, k->name, "must be %llu..%llu", k->min, k->max);
}

/* ---- scalar syntax ------------------------------------------------------------ */

struct cfg_unit {
    const char *suffix;
    unsigned long long mult;
};

static const struct cfg_unit cfg_dur_units[] = {
    {"", CFG_SEC}, {"ms", 1}, {"s", CFG_SEC}, {"m", CFG_MIN}, {"h", CFG_HOUR}, {"d", CFG_DAY},
};
static const struct cfg_unit cfg_size_units[] = {
    {"", 1},        {"k", 1 << 10}, {"K", 1 << 10}, {"m", 1 << 20},
    {"M", 1 << 20}, {"g", 1 << 30}, {"G", 1 << 30},
};

/* Digits then a unit; ULLONG_MAX stands for "too large". CAT_ERR on syntax. */
static int
cfg_num_unit(const char *s, const struct cfg_unit *u, size_t nu, unsigned long long *out)
{
    unsigned long long v = 0;
    size_t i = 0;
    for (; s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        v = v > (ULLONG_MAX - 1 - d) / 10 ? ULLONG_MAX : v * 10 + d;
    }
    if (i == 0)
        return CAT_ERR;
    for (size_t j = 0; j < nu; j++) {
        if (strcmp(s + i, u[j].suffix) != 0)
            continue;
        *out = v != ULLONG_MAX && v <= (ULLONG_MAX - 1) / u[j].mult ? v * u[j].mult : ULLONG_MAX;
        return CAT_OK;
    }
    return CAT_ERR;
}

int
cfg_parse_duration_ms(const char *s, unsigned *out_ms)
{
    unsigned long long v;
    if (s == NULL || cfg_num_unit(s, cfg_dur_units, CAT_ARRAY_LEN(cfg_dur_units), &v) != CAT_OK ||
        v > UINT_MAX)
        return CAT_ERR;
    *out_ms = (unsigned)v;
    return CAT_OK;
}

int
cfg_parse_size(const char *s, size_t *out)
{
    unsigned long long v;
    if (s == NULL || cfg_num_unit(s, cfg_size_units, CAT_ARRAY_LEN(cfg_size_units), &v) != CAT_OK ||
        v == ULLONG_MAX || v > SIZE_MAX)
        return CAT_ERR;
    *out = (size_t)v;
    return CAT_OK;
}

/* A decimal port 0..65535 made of [s, s+n); -1 if not. */
static long
cfg_port_num(const char *s, size_t n)
{
    long v = 0;
    if (n == 0 || n > 5)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v <= 65535 ? v : -1;
}

/* "443" or "1025-65535"; *why says what is wrong. */
static int
cfg_range_parse(const char *s, struct cfg_port_range *r, const char **why)
{
    const char *dash = strchr(s, '-');
    long lo = cfg_port_num(s, dash != NULL ? (size_t)(dash - s) : strlen(s));
    long hi = dash != NULL ? cfg_port_num(dash + 1, strlen(dash + 1)) : lo;
    *why = "must be a port or \"low-high\" with ports 1..65535";
    if (lo < 0 || hi < 0)
        return CAT_ERR;
    if (lo == 0 || hi == 0) {
        *why = "port 0 is not a port";
        return CAT_ERR;
    }
    if (lo > hi) {
        *why = "low port above high port";
        return CAT_ERR;
    }
    r->lo = (uint16_t)lo;
    r->hi = (uint16_t)hi;
    return CAT_OK;
}

static int
cfg_net_parse(const char *s, struct cfg_net *out, const char **why)
{
    char addr[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(s, '/');
    size_t alen = slash != NULL ? (size_t)(slash - s) : strlen(s);
    struct cfg_net n = {0};
    *why = "not an IP address or network in CIDR form";
    if (alen == 0 || alen >= sizeof(addr))
        return CAT_ERR;
    memcpy(addr, s, alen);
    addr[alen] = '\0';
    unsigned bits;
    if (inet_pton(AF_INET, addr, n.addr) == 1) {
        n.family = AF_INET;
        bits = 32;
    } else if (inet_pton(AF_INET6, addr, n.addr) == 1) {
        n.family = AF_INET6;
        bits = 128;
    } else {
        return CAT_ERR;
    }
    unsigned prefix = bits;
    if (slash != NULL) {
        const char *p = slash + 1;
        size_t plen = strlen(p);
        prefix = 0;
        for (size_t i = 0; i < plen; i++)
            prefix = p[i] >= '0' && p[i] <= '9' && i < 3 ? prefix * 10 + (unsigned)(p[i] - '0')
                                                         : UINT_MAX;
        if (plen == 0 || prefix > bits) {
            *why = bits == 32 ? "prefix must be 0..32" : "prefix must be 0..128";
            return CAT_ERR;
        }
    }
    for (unsigned b = prefix; b < bits; b++)
        if (n.addr[b / 8] & (0x80u >> (b % 8))) {
            *why = "host bits set below the prefix";
            return CAT_ERR;
        }
    n.prefix = (uint8_t)prefix;
    *out = n;
    return CAT_OK;
}

int
cfg_parse_net(const char *s, struct cfg_net *out)
{
    const char *why;
    if (s == NULL || out == NULL)
        return CAT_ERR;
    return cfg_net_parse(s, out, &why);
}

/* "1.2.3.4:3128" or "[v6]:3128" into a sockaddr. */
static int
cfg_addr_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len, const char **why)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *port;
    size_t hlen;
    memset(ss, 0, sizeof(*ss));
    *why = "must be \"ipv4:port\" or \"[ipv6]:port\"";
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return CAT_ERR;
        hlen = (size_t)(close - s - 1);
        memcpy(host, s + 1, CAT_MIN(hlen, sizeof(host) - 1));
        port = close + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (colon == NULL)
            return CAT_ERR;
        hlen = (size_t)(colon - s);
        memcpy(host, s, CAT_MIN(hlen, sizeof(host) - 1));
        port = colon + 1;
    }
    if (hlen == 0 || hlen >= sizeof(host))
        return CAT_ERR;
    host[hlen] = '\0';
    long p = cfg_port_num(port, strlen(port));
    if (p <= 0) {
        *why = "port must be 1..65535";
        return CAT_ERR;
    }
    if (s[0] == '[') {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
        if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
            return CAT_ERR;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)p);
        *len = sizeof(*a6);
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
        if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
            return CAT_ERR;
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)p);
        *len = sizeof(*a4);
    }
    return CAT_OK;
}

/* A DNS server: "ip", "ip:port" (IPv4) or "[ipv6]:port". */
static bool
cfg_server_ok(const char *s)
{
    unsigned char buf[16];
    char host[INET6_ADDRSTRLEN + 1];
    if (inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1)
        return true;
    struct sockaddr_storage ss;
    socklen_t len;
    const char *why;
    if (cfg_addr_parse(s, &ss, &len, &why) == CAT_OK)
        return true;
    /* "[v6]" alone: the brackets without a port. */
    size_t n = strlen(s);
    if (n < 3 || s[0] != '[' || s[n - 1] != ']' || n - 2 >= sizeof(host))
        return false;
    memcpy(host, s + 1, n - 2);
    host[n - 2] = '\0';
    return inet_pton(AF_INET6, host, buf) == 1;
}

/*
 * Normalises a host pattern: "example.com" or ".example.com" (lower case,
 * no trailing dot), or an IP literal. NULL with *why on error.
 */
static char *
cfg_host_pattern(const char *s, const char **why)
{
    unsigned char buf[16];
    size_t n = strlen(s);
    if (n > 1 && s[n - 1] == '.')
        n--;
    *why = "must be a host name, \".domain\", or an IP address";
    if (s[0] == '*') {
        *why = "wildcards are not patterns: \".example.com\" means the domain and all below";
        return NULL;
    }
    if (n == 0 || n > 254)
        return NULL;
    char *p = strndup(s, n);
    if (p == NULL) {
        *why = "out of memory";
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (p[i] >= 'A' && p[i] <= 'Z')
            p[i] = (char)(p[i] - 'A' + 'a');
    if (inet_pton(AF_INET, p, buf) == 1 || inet_pton(AF_INET6, p, buf) == 1)
        return p;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '.' && (label > 0 || i == 0)) {
            label = 0;
            continue;
        } else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            goto bad;
        if (++label > 63)
            goto bad;
    }
    if (label == 0) /* "." alone, or ending in ".." */
        goto bad;
    return p;
bad:
    free(p);
    return NULL;
}

/* ---- values from libconfig ---------------------------------------------------- */

/* An integer setting as written; LLONG_MAX when the literal does not fit. */
static bool
cfg_get_int(const struct cfg_ctx *x, const config_setting_t *s, long long *out)
{
    int t = config_setting_type(s);
    if (t == CONFIG_TYPE_INT)
        *out = config_setting_get_int(s);
    else if (t == CONFIG_TYPE_INT64)
        *out = config_setting_get_int64(s);
    else
        return false;
    if (!cfg_literal_ok(x, s))
        *out = LLONG_MAX;
    return true;
}

static const char *
cfg_get_str(const config_setting_t *s)
{
    return config_setting_type(s) == CONFIG_TYPE_STRING ? config_setting_get_string(s) : NULL;
}

static bool
cfg_has_ctl(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* Characters in UTF-8 text (RFC 3629), or SIZE_MAX if s is not UTF-8. */
static size_t
cfg_utf8_chars(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0;
    while (*p != 0) {
        /* lead byte -> sequence length, smallest code point it may carry, payload bits */
        static const struct {
            unsigned char lo, hi;
            unsigned len, min, mask;
        } lead[] = {{0x00, 0x7f, 1, 0, 0x7f},
                    {0xc2, 0xdf, 2, 0x80, 0x1f},
                    {0xe0, 0xef, 3, 0x800, 0x0f},
                    {0xf0, 0xf4, 4, 0x10000, 0x07}};
        size_t k = 0;
        while (k < CAT_ARRAY_LEN(lead) && !(*p >= lead[k].lo && *p <= lead[k].hi))
            k++;
        if (k == CAT_ARRAY_LEN(lead))
            return SIZE_MAX;
        unsigned c = *p & lead[k].mask, len = lead[k].len, min = lead[k].min;
        for (unsigned i = 1; i < len; i++) {
            if ((p[i] & 0xc0) != 0x80) /* also stops at the NUL */
                return SIZE_MAX;
            c = (c << 6) | (p[i] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return SIZE_MAX; /* overlong, beyond Unicode, or a surrogate */
        p += len;
        n++;
    }
    return n;
}

/* Joins a relative path to the config's directory. */
static char *
cfg_path(const struct cfg_ctx *x, const char *v)
{
    if (v[0] == '/')
        return strdup(v);
    while (v[0] == '.' && v[1] == '/')
        v += 2;
    size_t bl = strlen(x->base);
    const char *sep = bl > 0 && x->base[bl - 1] == '/' ? "" : "/";
    char *p = malloc(bl + strlen(sep) + strlen(v) + 1);
    if (p != NULL)
        sprintf(p, "%s%s%s", x->base, sep, v);
    return p;
}

static int
cfg_oom(struct cfg_ctx *x, const char *key)
{
    snprintf(x->err, x->errlen, "%s: %s: out of memory", x->name, key);
    return CAT_ERR;
}

static int
cfg_string(struct cfg_ctx *x, const struct cfg_key *k, const config_setting_t *s, char **dst)
{
    const char *v = cfg_get_str(s);
    char q[96];
    if (v == NULL)
        return cfg_fail(x, s, k->name, "must be a string");
    if ((k->flags & CFG_F_EMPTY_NULL && v[0] == '\0') ||
        (k->flags & CFG_F_DASH_NULL && strcmp(v, "-") == 0))
        return CAT_OK;
    if (v[0] == '\0')
        return cfg_fail(x, s, k->name, "must not be empty");
    if (cfg_has_ctl(v))
        return cfg_fail(x, s, k->name, "%s: control characters are not allowed",
                        cfg_quote(v, q, sizeof(q)));
    /* Paths are bytes to the kernel; other strings end up in certificates and logs. */
    size_t n = k->type == CFG_T_PATH ? strlen(v) : cfg_utf8_chars(v);
    if (n == SIZE_MAX)
        return cfg_fail(x, s, k->name, "must be UTF-8 text");
    if (k->max != 0 && n > k->max)
        return cfg_fail(x, s, k->name, "must be at most %llu characters (is %zu)", k->max, n);
    if (k->check != NULL && k->check(x, k, s, v) != CAT_OK)
        return CAT_ERR;
    *dst = k->type == CFG_T_PATH ? cfg_path(x, v) : strdup(v);
    return *dst != NULL ? CAT_OK : cfg_oom(x, k->name);
}

/* Number = seconds, or a string with a unit; CAT_ERR if neither. */
static int
cfg_get_ms(const struct cfg_ctx *x, const config_setting_t *s, unsigned long long *ms)
{
    long long v;
    const char *str = cfg_get_str(s);
    if (str != NULL)
        return cfg_num_unit(str, cfg_dur_units, CAT_ARRAY_LEN(cfg_dur_units), ms);
    if (!cfg_get_int(x, s, &v))
        return CAT_ERR;
    /* A negative number is out of range, never a syntax error. */
    *ms = v < 0                                          ? ULLONG_MAX
          : (unsigned long long)v > ULLONG_MAX / CFG_SEC ? ULLONG_MAX
                                                         : (unsigned long long)v * CFG_SEC;
    return CAT_OK;
}

static int
cfg_get_bytes(const struct cfg_ctx *x, const config_setting_t *s, unsigned long long *n)
{
    long long v;
    const char *str = cfg_get_str(s);
    if (str != NULL)
        return cfg_num_unit(str, cfg_size_units, CAT_ARRAY_LEN(cfg_size_units), n);
    if (!cfg_get_int(x, s, &v))
        return CAT_ERR;
    *n = v < 0 ? ULLONG_MAX : (unsigned long long)v;
    return CAT_OK;
}

static int
cfg_list(struct cfg_ctx *x, const struct cfg_key *k, const config_setting_t *s)
{
    char *base = (char *)x->cfg;
    size_t *n = (size_t *)(void *)(base + k->off_n);
    void *arr = NULL;
    if (!config_setting_is_array(s) && !config_setting_is_list(s))
        return cfg_fail(x, s, k->name, "must be a list: [ ... ] or ( ... )");
    unsigned len = (unsigned)config_setting_length(s);
    if (len < k->min)
        return cfg_fail(x, s, k->name, "must have at least %llu entr%s", k->min,
                        k->min == 1 ? "y" : "ies");
    if (len > 0) {
        arr = calloc(len, k->esize);
        if (arr == NULL)
            return cfg_oom(x, k->name);
        /* The field is a typed pointer (struct cfg_net * ...): copy, do not alias. */
        memcpy(base + k->off, &arr, sizeof(arr));
        *n = len; /* elements start zeroed, so a partial array frees cleanly */
    }
    for (unsigned i = 0; i < len; i++)
        if (k->elem(x, k, config_setting_get_elem(s, i), i, (char *)arr + i * k->esize) != CAT_OK)
            return CAT_ERR;
    return k->post != NULL ? k->post(x, k, s) : CAT_OK;
}

/* A list of certificate error names (policy vocabulary) OR-ed into *out. */
static int
cfg_errbits(struct cfg_ctx *x, const char *key, const config_setting_t *s, unsigned *out)
{
    if (!config_setting_is_array(s) && !config_setting_is_list(s))
        return cfg_fail(x, s, key, "must be a list of certificate error names");
    *out = 0;
    for (int i = 0; i < config_setting_length(s); i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        const char *v = cfg_get_str(e);
        unsigned bits = v != NULL ? val_policy_bits(v, strlen(v)) : 0;
        if (bits == 0) {
            char q[96];
            return cfg_fail(x, e, key,
                            "%s: not an error name (untrusted_issuer, expiration, "
                            "hostname_mismatch, revocation, all, or one of: "
                            "missing_intermediate expired not_yet_valid weak_key "
                            "weak_signature bad_ca bad_eku revoked)",
                            v != NULL ? cfg_quote(v, q, sizeof(q)) : "not a string");
        }
        *out |= bits;
    }
    return CAT_OK;
}

/* Applies setting s (the user's or a default) to the field of row k. */
static int
cfg_apply(struct cfg_ctx *x, const struct cfg_key *k, const config_setting_t *s)
{
    void *f = (char *)x->cfg + k->off;
    unsigned long long u;
    long long v;
    char buf[160];
    switch (k->type) {
    case CFG_T_UINT:
        if (!cfg_get_int(x, s, &v))
            return cfg_fail(x, s, k->name, "must be an integer");
        if (v < 0 || (unsigned long long)v < k->min || (unsigned long long)v > k->max)
            return cfg_fail_range(x, k, s);
        *(unsigned *)f = (unsigned)v;
        return CAT_OK;
    case CFG_T_BOOL:
        if (config_setting_type(s) != CONFIG_TYPE_BOOL)
            return cfg_fail(x, s, k->name, "must be true or false");
        *(bool *)f = config_setting_get_bool(s) != 0;
        return CAT_OK;
    case CFG_T_STR:
    case CFG_T_PATH:
        return cfg_string(x, k, s, (char **)f);
    case CFG_T_DURATION:
    case CFG_T_TTL:
        if (cfg_get_ms(x, s, &u) != CAT_OK)
            return cfg_fail(x, s, k->name,
                            "must be a duration: seconds, or a string like \"500ms\", \"10s\", "
                            "\"5m\", \"1h\"");
        if (u < k->min || u > k->max)
            return cfg_fail_range(x, k, s);
        if (k->type == CFG_T_TTL && u % CFG_SEC != 0)
            return cfg_fail(x, s, k->name, "must be whole seconds");
        *(unsigned *)f = (unsigned)(k->type == CFG_T_TTL ? u / CFG_SEC : u);
        return CAT_OK;
    case CFG_T_SIZE:
        if (cfg_get_bytes(x, s, &u) != CAT_OK)
            return cfg_fail(x, s, k->name,
                            "must be a size: bytes, or a string like \"16k\", \"1m\"");
        if (u < k->min || u > k->max)
            return cfg_fail_range(x, k, s);
        *(size_t *)f = (size_t)u;
        return CAT_OK;
    case CFG_T_ENUM: {
        const char *str = cfg_get_str(s);
        for (size_t i = 0; str != NULL && k->names[i] != NULL; i++)
            if (strcasecmp(str, k->names[i]) == 0) {
                *(int *)f = (int)i;
                return CAT_OK;
            }
        cfg_choices(k->names, buf, sizeof(buf));
        return cfg_fail(x, s, k->name, "must be %s", buf);
    }
    case CFG_T_LEVEL: {
        const char *str = cfg_get_str(s);
        int lvl = str != NULL ? log_level_parse(str) : -1;
        if (lvl < 0)
            return cfg_fail(x, s, k->name,
                            "must be \"err\", \"warning\", \"notice\", \"info\" or \"debug\"");
        *(int *)f = lvl;
        return CAT_OK;
    }
    case CFG_T_LIST:
        return cfg_list(x, k, s);
    case CFG_T_ERRBITS:
        return cfg_errbits(x, k->name, s, (unsigned *)f);
    }
    return cfg_fail(x, s, k->name, "internal error: no type");
}

/* ---- per-key checks and list elements ---------------------------------------- */

/* Via pseudonyms and log fields: a host-name-like token. */
static int
cfg_chk_node_name(struct cfg_ctx *x, const struct cfg_key *k, const config_setting_t *s,
                  const char *v)
{
    for (const char *p = v; *p != '\0'; p++)
        if (!cfg_word_char(*p))
            return cfg_fail(x, s, k->name, "may hold only letters, digits, '.', '-' and '_'");
    return CAT_OK;
}

/* An HTTP header name (a token). */
static int
cfg_chk_header(struct cfg_ctx *x, const struct cfg_key *k, const config_setting_t *s,
               const char *v)
{
    if (*v == '\0')
        return cfg_fail(x, s, k->name, "must be a header name");
    for (const char *p = v; *p != '\0'; p++)
        if (!(cfg_word_char(*p) && *p != '.'))
            return cfg_fail(x, s, k->name, "must be a header name (letters, digits, '-', '_')");
    return CAT_OK;
}

static int
cfg_chk_url(struct cfg_ctx *x, const struct cfg_key *k, const config_setting_t *s, const char *v)
{
    if (strncasecmp(v, "http://", 7) != 0 && strncasecmp(v, "https://", 8) != 0)
        return cfg_fail(x, s, k->name, "must be an http:// or https:// URL");
    for (const char *p = v; *p != '\0'; p++)
        if (*p == ' ')
            return cfg_fail(x, s, k->name, "must not contain spaces");
    return CAT_OK;
}

static int
cfg_e_net(struct cfg_ctx *x, const struct cfg_key *k, const config_setting_t *e, unsigned i,
          void *out)
{
    const char *v = cfg_get_str(e), *why;
    char q[96];
    if (v == NULL)
        return cfg_fail_elem(x, e, k, i, NULL, "must be a string like \"10.0.0.0/8\"");
    if (cfg_net_parse(v, out, &why) != CAT_OK)
        return cfg_fail_elem(x, e, k, i, NULL, "%s: %s", cfg_quote(v, q, sizeof(q)), why);
    return CAT_OK;
}

static int
cfg_e_port(struct cfg_ctx *x, const struct cfg_key *k, const config_setting_t *e, unsigned i,
           void *out)
{
    struct cfg_port_range *r = out;
    const char *v = cfg_get_str(e), *why;
    char q[96];
    long long p;
    if (v != NULL) {
        if (cfg_range_parse(v, r, &why) != CAT_OK)
            return cfg_fail_elem(x, e, k, i, NULL, "%s: %s", cfg_quote(v, q, sizeof(q)), why);
        return CAT_OK;
    }
    if (!cfg_get_int(x, e, &p))
        return cfg_fail_elem(x, e, k, i, NULL, "must be a port or a \"low-high\" string");
    if (p < 1 || p > 65535)
        return cfg_fail_elem(x, e, k, i, NULL, "must be 1..65535");
    r->lo = r->hi = (uint16_t)p;
    return CAT_OK;
}

static int
cfg_e_server(struct cfg_ctx *x, const struct cfg_key *k, const config_setting_t *e, unsigned i,
             void *out)
{
    const char *v = cfg_get_str(e);
    char q[96];
    if (v == NULL)
        return cfg_fail_elem(x, e, k, i, NULL, "must be a string");
    if (!cfg_server_ok(v))
        return cfg_fail_elem(x, e, k, i, NULL,
                             "%s: must be \"ip\", \"ip:port\" or \"[ipv6]:port\" (IP literals "
                             "only)",
                             cfg_quote(v, q, sizeof(q)));
    *(char **)out = strdup(v);
    return *(char **)out != NULL ? CAT_OK : cfg_oom(x, k->name);
}

static int
cfg_e_host(struct cfg_ctx *x, const struct cfg_key *k, const config_setting_t *e, unsigned i,
           void *out)
{
    const char *v = cfg_get_str(e), *why;
    char q[96];
    if (v == NULL)
        return cfg_fail_elem(x, e, k, i, NULL, "must be a string");
    *(char **)out = cfg_host_pattern(v, &why);
    if (*(char **)out == NULL)
        return cfg_fail_elem(x, e, k, i, NULL, "%s: %s", cfg_quote(v, q, sizeof(q)), why);
    return CAT_OK;
}

/*
 * Checks that group element e of row k has only members named in names[];
 * found[j] is the setting of names[j], NULL where it is absent.
 */
static int
cfg_members_opt(struct cfg_ctx *x, const struct cfg_key *k, const config_setting_t *e,
                unsigned i, const char *const *names, const config_setting_t **found)
{
    if (!config_setting_is_group(e))
        return cfg_fail_elem(x, e, k, i, NULL, "must be a group: { ... }");
    for (int m = 0; m < config_setting_length(e); m++) {
        const config_setting_t *ms = config_setting_get_elem(e, (unsigned)m);
        size_t j = 0;
        while (names[j] != NULL && strcmp(names[j], config_setting_name(ms)) != 0)
            j++;
        if (names[j] == NULL)
            return cfg_fail_elem(x, ms, k, i, config_setting_name(ms), "unknown key");
        found[j] = ms;
    }
    return CAT_OK;
}

/* As cfg_members_opt, and every member of names[] must be there. */
static int
cfg_members(struct cfg_ctx *x, const struct cfg_key *k, const config_setting_t *e, unsigned i,
            const char *const *names, const config_setting_t **found)
{
    if (cfg_members_opt(x, k, e, i, names, found) != CAT_OK)
        return CAT_ERR;
    for (size_t j = 0; names[j] != NULL; j++)
        if (found[j] == NULL)
            return cfg_fail_elem(x, e, k, i, NULL, "%s is missing", names[j]);
    return CAT_OK;
}

static int
cfg_e_listener(struct cfg_ctx *x, const struct cfg_key *k, const config_setting_t *e, unsigned i,
               void *out)
{
    static const char *const names[] = {"type", "address", "cert", "key", "realm", "tproxy", NULL};
    const config_setting_t *m[6] = {NULL};
    struct cfg_listener *l = out;
    char q[96], ch[96];
    const char *why;
    if (cfg_members_opt(x, k, e, i, names, m) != CAT_OK)
        return CAT_ERR;
    for (size_t j = 0; j < 2; j++)
        if (m[j] == NULL)
            return cfg_fail_elem(x, e, k, i, NULL, "%s is missing", names[j]);
    const char *type = cfg_get_str(m[0]);
    size_t t = 0;
    while (type != NULL && cfg_lsn_names[t] != NULL && strcasecmp(type, cfg_lsn_names[t]) != 0)
        t++;
    if (type == NULL || cfg_lsn_names[t] == NULL) {
        cfg_choices(cfg_lsn_names, ch, sizeof(ch));
        return cfg_fail_elem(x, m[0], k, i, "type", "must be %s", ch);
    }
    l->type = (enum cfg_listener_type)t;
    const char *addr = cfg_get_str(m[1]);
    if (addr == NULL)
        return cfg_fail_elem(x, m[1], k, i, "address", "must be a string like \"127.0.0.1:3128\"");
    if (cfg_addr_parse(addr, &l->addr, &l->addrlen, &why) != CAT_OK)
        return cfg_fail_elem(x, m[1], k, i, "address", "%s: %s", cfg_quote(addr, q, sizeof(q)),
                             why);
    if ((l->text = strdup(addr)) == NULL)
        return cfg_oom(x, k->name);
    /* Only a TLS listener has a certificate, and it must have one. */
    for (size_t j = 2; j < 4; j++) {
        if (l->type != CFG_LSN_HTTPS && m[j] != NULL)
            return cfg_fail_elem(x, m[j], k, i, names[j], "only an \"https\" listener has %s",
                                 names[j]);
        if (l->type != CFG_LSN_HTTPS)
            continue;
        const char *v = m[j] != NULL ? cfg_get_str(m[j]) : NULL;
        if (v == NULL || v[0] == '\0' || cfg_has_ctl(v))
            return cfg_fail_elem(x, m[j] != NULL ? m[j] : e, k, i, names[j],
                                 "an \"https\" listener needs %s = a PEM file name", names[j]);
        char **dst = j == 2 ? &l->cert_file : &l->key_file;
        if ((*dst = cfg_path(x, v)) == NULL)
            return cfg_oom(x, k->name);
    }
    /* HTTP listeners ask for logins through policy (authenticate(realm)) and
     * a 407; SOCKS has no challenge, so its listener names the realm. */
    if (m[4] != NULL) {
        const char *v = cfg_get_str(m[4]);
        if (l->type != CFG_LSN_SOCKS5)
            return cfg_fail_elem(x, m[4], k, i, "realm",
                                 "only a \"socks5\" listener has a realm (HTTP listeners "
                                 "authenticate through policy: authenticate(realm))");
        bool known = false;
        for (size_t r = 0; v != NULL && r < x->cfg->n_realms && !known; r++)
            known = strcmp(x->cfg->realms[r].name, v) == 0;
        if (!known)
            return cfg_fail_elem(x, m[4], k, i, "realm", "must name one of realms");
        if ((l->realm = strdup(v)) == NULL)
            return cfg_oom(x, k->name);
    }
    if (m[5] != NULL) {
        if (l->type != CFG_LSN_TRANSPARENT)
            return cfg_fail_elem(x, m[5], k, i, "tproxy", "only a \"transparent\" listener has tproxy");
        if (config_setting_type(m[5]) != CONFIG_TYPE_BOOL)
            return cfg_fail_elem(x, m[5], k, i, "tproxy", "must be true or false");
        l->tproxy = config_setting_get_bool(m[5]) != 0;
    }
    return CAT_OK;
}

/* Two listeners collide on the same port if one address covers the other. */
static bool
cfg_lsn_overlap(const struct cfg_listener *a, const struct cfg_listener *b)
{
    if (a->addr.ss_family != b->addr.ss_family)
        return false; /* IPv6 sockets are bound IPV6_V6ONLY */
    if (a->addr.ss_family == AF_INET) {
        const struct sockaddr_in *p = (const void *)&a->addr, *q = (const void *)&b->addr;
        return p->sin_port == q->sin_port &&
               (p->sin_addr.s_addr == q->sin_addr.s_addr || p->sin_addr.s_addr == INADDR_ANY ||
                q->sin_addr.s_addr == INADDR_ANY);
    }
    const struct sockaddr_in6 *p = (const void *)&a->addr, *q = (const void *)&b->addr;
    return p->sin6_port == q->sin6_port &&
           (IN6_ARE_ADDR_EQUAL(&p->sin6_addr, &q->sin6_addr) ||
            IN6_IS_ADDR_UNSPECIFIED(&p->sin6_addr) || IN6_IS_ADDR_UNSPECIFIED(&q->sin6_addr));
}

/* Listeners share ports through SO_REUSEPORT, so a duplicate would bind silently. */
static int
cfg_p_listeners(struct cfg_ctx *x, const struct cfg_key *k, const config_setting_t *s)
{
    const struct cfg *c = x->cfg;
    for (size_t j = 1; j < c->n_listeners; j++)
        for (size_t i = 0; i < j; i++)
            if (cfg_lsn_overlap(&c->listeners[i], &c->listeners[j])) {
                const config_setting_t *e = config_setting_get_elem(s, (unsigned)j);
                return cfg_fail_elem(x, config_setting_get_member(e, "address"), k, (unsigned)j,
                                     "address", "%s overlaps listeners[%zu] (%s)",
                                     c->listeners[j].text, i, c->listeners[i].text);
            }
    return CAT_OK;
}

/* A name of letters, digits, '.', '-' and '_' (keyrings, realms, upstreams, groups). */
static bool
cfg_good_name(const char *name)
{
    size_t n = name != NULL ? strlen(name) : 0;
    bool ok = n > 0 && n <= 64;
    for (size_t j = 0; ok && j < n; j++)
        ok = cfg_word_char(name[j]);
    return ok;
}

static int
cfg_e_keyring(struct cfg_ctx *x, const struct cfg_key *k, const config_setting_t *e, unsigned i,
              void *out)
{
    static const char *const names[] = {"name", "dir", NULL};
    const config_setting_t *m[2] = {NULL, NULL};
    struct cfg_keyring *kr = out;
    if (cfg_members(x, k, e, i, names, m) != CAT_OK)
        return CAT_ERR;
    const char *name = cfg_get_str(m[0]);
    if (!cfg_good_name(name))
        return cfg_fail_elem(x, m[0], k, i, "name",
                             "must be 1..64 letters, digits, '.', '-' or '_'");
    kr->name = strdup(name);
    if (kr->name == NULL)
        return cfg_oom(x, k->name);
    const char *dir = cfg_get_str(m[1]);
    char q[96];
    if (dir == NULL || dir[0] == '\0')
        return cfg_fail_elem(x, m[1], k, i, "dir", "must be a directory name");
    if (cfg_has_ctl(dir))
        return cfg_fail_elem(x, m[1], k, i, "dir", "%s: control characters are not allowed",
                             cfg_quote(dir, q, sizeof(q)));
    kr->dir = cfg_path(x, dir);
    return kr->dir != NULL ? CAT_OK : cfg_oom(x, k->name);
}

/* A path in a list, relative to the config's directory. */
static int
cfg_e_path(struct cfg_ctx *x, const struct cfg_key *k, const config_setting_t *e, unsigned i,
           void *out)
{
    const char *v = cfg_get_str(e);
    if (v == NULL || v[0] == '\0' || cfg_has_ctl(v))
        return cfg_fail_elem(x, e, k, i, NULL, "must be a file name");
    *(char **)out = cfg_path(x, v);
    return *(char **)out != NULL ? CAT_OK : cfg_oom(x, k->name);
}

/* { name = "corp"; type = "local"; users_file = "users.txt"; } */
static int
cfg_e_realm(struct cfg_ctx *x, const struct cfg_key *k, const config_setting_t *e, unsigned i,
            void *out)
{
    static const char *const names[] = {"name", "type", "users_file", NULL};
    const config_setting_t *m[3] = {NULL, NULL, NULL};
    struct cfg_realm *r = out;
    if (cfg_members(x, k, e, i, names, m) != CAT_OK)
        return CAT_ERR;
    const char *name = cfg_get_str(m[0]);
    size_t n = name != NULL ? strlen(name) : 0;
    bool ok = n > 0 && n <= 64;
    for (size_t j = 0; ok && j < n; j++)
        ok = cfg_word_char(name[j]);
    if (!ok)
        return cfg_fail_elem(x, m[0], k, i, "name",
                             "must be 1..64 letters, digits, '.', '-' or '_'");
    if ((r->name = strdup(name)) == NULL)
        return cfg_oom(x, k->name);
    const char *type = cfg_get_str(m[1]);
    if (type == NULL || strcasecmp(type, "local") != 0)
        return cfg_fail_elem(x, m[1], k, i, "type", "must be \"local\"");
    r->type = CFG_REALM_LOCAL;
    const char *f = cfg_get_str(m[2]);
    if (f == NULL || f[0] == '\0' || cfg_has_ctl(f))
        return cfg_fail_elem(x, m[2], k, i, "users_file", "must be a file name");
    r->users_file = cfg_path(x, f);
    return r->users_file != NULL ? CAT_OK : cfg_oom(x, k->name);
}

/* { name = "dc1"; address = "10.0.0.1:3128"; type = "http"; ... } */
static int
cfg_e_fwd_host(struct cfg_ctx *x, const struct cfg_key *k, const config_setting_t *e, unsigned i,
               void *out)
{
    static const char *const names[] = {"name",   "address",  "type", "credentials_file",
                                        "issuer", "tls_name", "send_user", NULL};
    const config_setting_t *m[7] = {NULL};
    struct cfg_fwd_host *h = out;
    if (cfg_members_opt(x, k, e, i, names, m) != CAT_OK)
        return CAT_ERR;
    if (m[0] == NULL || m[1] == NULL)
        return cfg_fail_elem(x, e, k, i, NULL, "needs name and address");
    const char *name = cfg_get_str(m[0]), *why;
    if (!cfg_good_name(name))
        return cfg_fail_elem(x, m[0], k, i, "name",
                             "must be 1..64 letters, digits, '.', '-' or '_'");
    char q[96];
    const char *addr = cfg_get_str(m[1]);
    if (addr == NULL || cfg_addr_parse(addr, &h->addr, &h->addrlen, &why) != CAT_OK)
        return cfg_fail_elem(x, m[1], k, i, "address", "%s: %s",
                             addr ? cfg_quote(addr, q, sizeof(q)) : "value",
                             addr ? why : "must be an \"IP:port\" string");
    if ((h->name = strdup(name)) == NULL || (h->addr_text = strdup(addr)) == NULL)
        return cfg_oom(x, k->name);
    const char *type = m[2] != NULL ? cfg_get_str(m[2]) : "http";
    if (type == NULL || (strcasecmp(type, "http") != 0 && strcasecmp(type, "https") != 0))
        return cfg_fail_elem(x, m[2], k, i, "type", "must be \"http\" or \"https\"");
    h->type = strcasecmp(type, "https") == 0 ? CFG_FWD_HTTPS : CFG_FWD_HTTP;
    const char *paths[] = {m[3] ? cfg_get_str(m[3]) : NULL, m[4] ? cfg_get_str(m[4]) : NULL};
    char **dst[] = {&h->credentials_file, &h->issuer};
    for (size_t j = 0; j < 2; j++) {
        if (m[3 + j] == NULL || (paths[j] != NULL && paths[j][0] == '\0'))
            continue;
        if (paths[j] == NULL || cfg_has_ctl(paths[j]))
            return cfg_fail_elem(x, m[3 + j], k, i, names[3 + j], "must be a file name");
        if ((*dst[j] = cfg_path(x, paths[j])) == NULL)
            return cfg_oom(x, k->name);
    }
    if (m[5] != NULL) {
        const char *tn = cfg_get_str(m[5]);
        if (tn == NULL || tn[0] == '\0' || cfg_has_ctl(tn) || strchr(tn, ' ') != NULL)
            return cfg_fail_elem(x, m[5], k, i, "tls_name", "must be a host name");
        if ((h->tls_name = strdup(tn)) == NULL)
            return cfg_oom(x, k->name);
    }
    if (m[6] != NULL) {
        if (config_setting_type(m[6]) != CONFIG_TYPE_BOOL)
            return cfg_fail_elem(x, m[6], k, i, "send_user", "must be true or false");
        h->send_user = config_setting_get_bool(m[6]) != 0;
    }
    return CAT_OK;
}

/* { name = "dcs"; members = [ "dc1", "dc2" ]; method = "failover"; } */
static int
cfg_e_fwd_group(struct cfg_ctx *x, const struct cfg_key *k, const config_setting_t *e, unsigned i,
                void *out)
{
    static const char *const names[] = {"name", "members", "method", NULL};
    const config_setting_t *m[3] = {NULL, NULL, NULL};
    struct cfg_fwd_group *g = out;
    if (cfg_members(x, k, e, i, names, m) != CAT_OK)
        return CAT_ERR;
    const char *name = cfg_get_str(m[0]);
    if (!cfg_good_name(name))
        return cfg_fail_elem(x, m[0], k, i, "name",
                             "must be 1..64 letters, digits, '.', '-' or '_'");
    if ((g->name = strdup(name)) == NULL)
        return cfg_oom(x, k->name);
    if (!config_setting_is_array(m[1]) && !config_setting_is_list(m[1]))
        return cfg_fail_elem(x, m[1], k, i, "members", "must be a list of host names");
    unsigned n = (unsigned)config_setting_length(m[1]);
    if (n == 0 || n > 16)
        return cfg_fail_elem(x, m[1], k, i, "members", "must name 1..16 hosts");
    if ((g->members = calloc(n, sizeof(char *))) == NULL)
        return cfg_oom(x, k->name);
    for (unsigned j = 0; j < n; j++) {
        const char *v = cfg_get_str(config_setting_get_elem(m[1], j));
        if (!cfg_good_name(v) || (g->members[g->n_members] = strdup(v)) == NULL)
            return cfg_fail_elem(x, m[1], k, i, "members", "must be host names");
        g->n_members++;
    }
    const char *method = cfg_get_str(m[2]);
    if (method == NULL || (strcasecmp(method, "failover") != 0 && strcasecmp(method, "hash") != 0))
        return cfg_fail_elem(x, m[2], k, i, "method", "must be \"failover\" or \"hash\"");
    g->method = strcasecmp(method, "hash") == 0 ? CFG_FWD_HASH : CFG_FWD_FAILOVER;
    return CAT_OK;
}

/* Groups name existing hosts; names are unique across hosts and groups. */
static int
cfg_p_forwarding(struct cfg_ctx *x, const struct cfg_key *k, const config_setting_t *s)
{
    const struct cfg_forwarding *f = &x->cfg->forwarding;
    for (size_t i = 0; i < f->n_groups; i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        for (size_t j = 0; j < f->n_groups; j++)
            if (j != i && strcmp(f->groups[i].name, f->groups[j].name) == 0)
                return cfg_fail_elem(x, e, k, (unsigned)i, "name", "\"%s\" is used twice",
                                     f->groups[i].name);
        for (size_t h = 0; h < f->n_hosts; h++)
            if (strcmp(f->groups[i].name, f->hosts[h].name) == 0)
                return cfg_fail_elem(x, e, k, (unsigned)i, "name",
                                     "\"%s\" is also the name of a host", f->groups[i].name);
        for (size_t m = 0; m < f->groups[i].n_members; m++) {
            bool found = false;
            for (size_t h = 0; h < f->n_hosts && !found; h++)
                found = strcmp(f->groups[i].members[m], f->hosts[h].name) == 0;
            if (!found)
                return cfg_fail_elem(x, e, k, (unsigned)i, "members",
                                     "\"%s\" is not in forwarding.hosts",
                                     f->groups[i].members[m]);
        }
    }
    return CAT_OK;
}

/* { hosts = [ ... ]; errors = [ ... ]; }: errors to ignore for those sites. */
static int
cfg_e_ignore(struct cfg_ctx *x, const struct cfg_key *k, const config_setting_t *e, unsigned i,
             void *out)
{
    static const char *const names[] = {"hosts", "errors", NULL};
    const config_setting_t *m[2] = {NULL, NULL};
    struct cfg_ignore *ig = out;
    if (cfg_members(x, k, e, i, names, m) != CAT_OK)
        return CAT_ERR;
    if (!config_setting_is_array(m[0]) && !config_setting_is_list(m[0]))
        return cfg_fail_elem(x, m[0], k, i, "hosts", "must be a list of host patterns");
    unsigned n = (unsigned)config_setting_length(m[0]);
    if (n == 0)
        return cfg_fail_elem(x, m[0], k, i, "hosts", "must name at least one host");
    ig->hosts.names = calloc(n, sizeof(char *));
    if (ig->hosts.names == NULL)
        return cfg_oom(x, k->name);
    for (unsigned j = 0; j < n; j++) {
        const config_setting_t *h = config_setting_get_elem(m[0], j);
        const char *v = cfg_get_str(h), *why = "must be a string";
        char q[96];
        char *p = v != NULL ? cfg_host_pattern(v, &why) : NULL;
        if (p == NULL)
            return cfg_fail_elem(x, h, k, i, "hosts", "%s: %s",
                                 v != NULL ? cfg_quote(v, q, sizeof(q)) : "value", why);
        ig->hosts.names[ig->hosts.n++] = p;
    }
    return cfg_errbits(x, k->name, m[1], &ig->errors);
}

/* Policy names keyrings, so a name must pick exactly one. */
static int
cfg_p_keyrings(struct cfg_ctx *x, const struct cfg_key *k, const config_setting_t *s)
{
    const struct cfg_tls *t = &x->cfg->tls;
    for (size_t j = 1; j < t->n_keyrings; j++)
        for (size_t i = 0; i < j; i++)
            if (strcasecmp(t->keyrings[i].name, t->keyrings[j].name) == 0) {
                const config_setting_t *e = config_setting_get_elem(s, (unsigned)j);
                return cfg_fail_elem(x, config_setting_get_member(e, "name"), k, (unsigned)j,
                                     "name", "\"%s\" is already the name of tls.keyrings[%zu]",
                                     t->keyrings[j].name, i);
            }
    return CAT_OK;
}

/* ---- the walk ------------------------------------------------------------------ */

static const struct cfg_key *
cfg_key_find(const char *name)
{
    for (size_t i = 0; i < CAT_ARRAY_LEN(cfg_keys); i++)
        if (strcmp(cfg_keys[i].name, name) == 0)
            return &cfg_keys[i];
    return NULL;
}

/* True if some key lives in group `name`. */
static bool
cfg_is_group(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < CAT_ARRAY_LEN(cfg_keys); i++)
        if (strncmp(cfg_keys[i].name, name, n) == 0 && cfg_keys[i].name[n] == '.')
            return true;
    return false;
}

/* Unknown keys are errors at the top level and inside groups. */
static int
cfg_check_names(struct cfg_ctx *x, const config_setting_t *root)
{
    char full[160];
    for (int i = 0; i < config_setting_length(root); i++) {
        const config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
        const char *name = config_setting_name(s);
        if (cfg_key_find(name) != NULL)
            continue;
        if (!cfg_is_group(name))
            return cfg_fail(x, s, name, "unknown key");
        if (!config_setting_is_group(s))
            return cfg_fail(x, s, name, "must be a group: { ... }");
        for (int j = 0; j < config_setting_length(s); j++) {
            const config_setting_t *m = config_setting_get_elem(s, (unsigned)j);
            int n = snprintf(full, sizeof(full), "%s.%s", name, config_setting_name(m));
            if (n < 0 || (size_t)n >= sizeof(full) || cfg_key_find(full) == NULL)
                return cfg_fail(x, m, full, "unknown key");
        }
    }
    return CAT_OK;
}

/* The user's setting for a table key, or NULL. */
static const config_setting_t *
cfg_user_setting(const struct cfg_ctx *x, const char *key)
{
    const config_setting_t *s = config_root_setting(x->user);
    char group[64];
    const char *dot = strchr(key, '.');
    if (dot != NULL) {
        snprintf(group, sizeof(group), "%.*s", (int)(dot - key), key);
        s = config_setting_get_member(s, group);
        if (s == NULL)
            return NULL;
        key = dot + 1;
    }
    return config_setting_get_member(s, key);
}

/* All defaults as one libconfig text, "d<row> = <default>;", parsed once per load. */
static int
cfg_load_defaults(struct cfg_ctx *x, config_t *d)
{
    size_t cap = 64;
    for (size_t i = 0; i < CAT_ARRAY_LEN(cfg_keys); i++)
        cap += cfg_keys[i].def != NULL ? strlen(cfg_keys[i].def) + 16 : 0;
    char *text = malloc(cap);
    if (text == NULL)
        return cfg_oom(x, "defaults");
    size_t o = 0;
    for (size_t i = 0; i < CAT_ARRAY_LEN(cfg_keys); i++)
        if (cfg_keys[i].def != NULL)
            o += (size_t)snprintf(text + o, cap - o, "d%zu = %s;\n", i, cfg_keys[i].def);
    int ok = config_read_string(d, text);
    free(text);
    if (ok != CONFIG_TRUE) {
        snprintf(x->err, x->errlen, "%s: built-in defaults, line %d: %s", x->name,
                 config_error_line(d), config_error_text(d));
        return CAT_ERR;
    }
    return CAT_OK;
}

static void
cfg_free(struct cfg *c)
{
    free(c->path);
    free(c->node_name);
    free(c->pid_file);
    for (size_t i = 0; i < c->n_listeners; i++) {
        free(c->listeners[i].text);
        free(c->listeners[i].cert_file);
        free(c->listeners[i].key_file);
        free(c->listeners[i].realm);
    }
    free(c->listeners);
    free(c->client_nets);
    free(c->connect_ports);
    free(c->http_ports);
    free(c->admin_nets);
    for (size_t i = 0; i < c->resolver.n_servers; i++)
        free(c->resolver.servers[i]);
    free(c->resolver.servers);
    free(c->resolver.hosts_file);
    free(c->log.event_file);
    free(c->log.access_file);
    free(c->log.access_fields);
    free(c->log.ssl_file);
    struct cfg_hostlist *hl[] = {&c->tls.intercept_hosts, &c->tls.never_intercept,
                                 &c->pinning.always_intercept};
    for (size_t j = 0; j < CAT_ARRAY_LEN(hl); j++) {
        for (size_t i = 0; i < hl[j]->n; i++)
            free(hl[j]->names[i]);
        free(hl[j]->names);
    }
    for (size_t i = 0; i < c->tls.n_keyrings; i++) {
        free(c->tls.keyrings[i].name);
        free(c->tls.keyrings[i].dir);
    }
    free(c->tls.keyrings);
    free(c->tls.splash_text);
    free(c->tls.splash_url);
    free(c->tls.ca_file);
    free(c->tls.keylog_file);
    free(c->tls.download_host);
    for (size_t i = 0; i < c->validation.n_ignore; i++) {
        for (size_t j = 0; j < c->validation.ignore[i].hosts.n; j++)
            free(c->validation.ignore[i].hosts.names[j]);
        free(c->validation.ignore[i].hosts.names);
    }
    free(c->validation.ignore);
    free(c->bundle.file);
    for (size_t i = 0; i < c->bundle.n_keys; i++)
        free(c->bundle.keys[i]);
    free(c->bundle.keys);
    free(c->bundle.store);
    free(c->bundle.pull_url);
    for (size_t i = 0; i < c->n_realms; i++) {
        free(c->realms[i].name);
        free(c->realms[i].users_file);
    }
    free(c->realms);
    free(c->admin_token_file);
    for (size_t i = 0; i < c->forwarding.n_hosts; i++) {
        struct cfg_fwd_host *h = &c->forwarding.hosts[i];
        free(h->name);
        free(h->addr_text);
        free(h->credentials_file);
        free(h->issuer);
        free(h->tls_name);
    }
    free(c->forwarding.hosts);
    for (size_t i = 0; i < c->forwarding.n_groups; i++) {
        for (size_t j = 0; j < c->forwarding.groups[i].n_members; j++)
            free(c->forwarding.groups[i].members[j]);
        free(c->forwarding.groups[i].members);
        free(c->forwarding.groups[i].name);
    }
    free(c->forwarding.groups);
    free(c->forwarding.default_route);
    free(c->forwarding.user_header);
    free(c->tier.downstream_nets);
    free(c->tls.client_ciphers);
    free(c->tls.server_ciphers);
    free(c);
}

/* Values that depend on the machine, and checks across keys. */
static int
cfg_finish(struct cfg_ctx *x)
{
    struct cfg *c = x->cfg;
    if (c->workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        c->workers = n < 1 ? 1 : n > 256 ? 256 : (unsigned)n;
    }
    if (c->node_name == NULL) {
        char host[256];
        if (gethostname(host, sizeof(host)) == -1 || host[0] == '\0')
            snprintf(host, sizeof(host), "catena");
        host[sizeof(host) - 1] = '\0';
        c->node_name = strdup(host);
        if (c->node_name == NULL)
            return cfg_oom(x, "node.name");
    }
    if (c->resolver.min_ttl_s > c->resolver.max_ttl_s) {
        const config_setting_t *s = cfg_user_setting(x, "resolver.min_ttl");
        if (s != NULL)
            return cfg_fail(x, s, "resolver.min_ttl", "must not be above resolver.max_ttl (%us)",
                            c->resolver.max_ttl_s);
        return cfg_fail(x, cfg_user_setting(x, "resolver.max_ttl"), "resolver.max_ttl",
                        "must not be below resolver.min_ttl (%us)", c->resolver.min_ttl_s);
    }
    return CAT_OK;
}

/* ---- syntax -------------------------------------------------------------------- */

/*
 * A recognizer for libconfig 1.5's syntax (its scanner.l and grammar.y),
 * run before libconfig sees the text, for what libconfig gets wrong:
 * - a syntax error on a string token leaks the string (grammar.y has no
 *   %destructor), and its messages have no column: here they have one, and
 *   libconfig is only given text that parses;
 * - it opens `@include "file"` relative to the process's directory with no way
 *   to turn that off: refused (a config is one file; a fuzzer must not make
 *   it read /dev/zero);
 * - an unterminated block comment silently swallows the rest: refused.
 * Nesting is bounded (the schema is 3 deep) so the descent cannot overflow.
 */
enum cfg_tok {
    CFG_TK_EOF = 0,
    CFG_TK_NAME,
    CFG_TK_STRING,
    CFG_TK_BOOL,
    CFG_TK_INT,   /* 12, 0x1f */
    CFG_TK_INT64, /* 12L, 0x1fL */
    CFG_TK_FLOAT,
    CFG_TK_PUNCT, /* = : , ; { } [ ] ( ) */
    CFG_TK_GARBAGE,
};

#define CFG_MAX_DEPTH 32

struct cfg_syn {
    struct cfg_ctx *x;
    size_t pos;           /* next byte to scan */
    unsigned line;        /* line of pos */
    size_t bol;           /* offset where that line starts */
    enum cfg_tok tok;     /* current token */
    size_t off, len;      /* its bytes */
    unsigned tline, tcol; /* its position */
    char path[160];       /* dotted key of the setting being read, for messages */
};

static int cfg_syn_fail(struct cfg_syn *y, const char *fmt, ...) CAT_PRINTF(2, 3);

static int
cfg_syn_fail(struct cfg_syn *y, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    snprintf(y->x->err, y->x->errlen, "%s:%u:%u: syntax error: %s", y->x->name, y->tline, y->tcol,
             why);
    cfg_one_line(y->x->err);
    return CAT_ERR;
}

static bool
cfg_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool
cfg_is_xdigit(char c)
{
    return cfg_is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* flex's longest match over libconfig's number rules; 0 if none matches. */
static size_t
cfg_syn_number(const char *s, enum cfg_tok *tok)
{
    size_t best = 0, i, d;
    *tok = CFG_TK_INT;
    /* integer, integer64: [-+]?[0-9]+ then L(L)? */
    i = (s[0] == '-' || s[0] == '+');
    for (d = i; cfg_is_digit(s[d]); d++)
        ;
    if (d > i) {
        best = d;
        if (s[d] == 'L') {
            best = d + 1 + (s[d + 1] == 'L');
            *tok = CFG_TK_INT64;
        }
    }
    /* hex, hex64: 0[Xx][0-9A-Fa-f]+ then L(L)? (no sign) */
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && cfg_is_xdigit(s[2])) {
        for (d = 2; cfg_is_xdigit(s[d]); d++)
            ;
        size_t n = d;
        enum cfg_tok t = CFG_TK_INT;
        if (s[d] == 'L') {
            n = d + 1 + (s[d + 1] == 'L');
            t = CFG_TK_INT64;
        }
        if (n > best) {
            best = n;
            *tok = t;
        }
    }
    /* float: [-+]?[0-9]*\.[0-9]*([eE][-+]?[0-9]+)? | [-+]?[0-9]+(\.[0-9]*)?[eE][-+]?[0-9]+ */
    size_t n = 0, j = i;
    while (cfg_is_digit(s[j]))
        j++;
    size_t int_digits = j - i;
    bool dot = s[j] == '.';
    if (dot)
        for (j++; cfg_is_digit(s[j]); j++)
            ;
    if (dot || int_digits > 0) {
        size_t e = j;
        if (s[e] == 'e' || s[e] == 'E') {
            e++;
            if (s[e] == '-' || s[e] == '+')
                e++;
            size_t ed = e;
            while (cfg_is_digit(s[e]))
                e++;
            if (e > ed && (dot || int_digits > 0))
                n = e; /* either form with an exponent */
        }
        if (n == 0 && dot)
            n = j; /* first form without an exponent */
    }
    if (n > best) { /* on a tie the earlier rule (integer) wins */
        best = n;
        *tok = CFG_TK_FLOAT;
    }
    return best;
}

/* Moves to the next token, past blanks and comments. */
static int
cfg_syn_next(struct cfg_syn *y)
{
    const struct cfg_ctx *x = y->x;
    const char *t = x->text; /* NUL-terminated: t[pos + 1] is always readable */
    for (;;) {
        y->tline = y->line;
        y->tcol = (unsigned)(y->pos - y->bol + 1);
        if (y->pos == y->bol) { /* flex's ^[ \t]*@include[ \t]+\" */
            size_t j = y->pos;
            while (t[j] == ' ' || t[j] == '\t')
                j++;
            if (strncmp(t + j, "@include", 8) == 0) {
                y->tcol = (unsigned)(j - y->bol + 1);
                return cfg_syn_fail(y, "@include is not supported");
            }
        }
        char c = t[y->pos];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\f') {
            y->pos++;
        } else if (c == '\n') {
            y->line++;
            y->bol = ++y->pos;
        } else if (c == '#' || (c == '/' && t[y->pos + 1] == '/')) {
            while (y->pos < x->len && t[y->pos] != '\n')
                y->pos++;
        } else if (c == '/' && t[y->pos + 1] == '*') {
            for (y->pos += 2; y->pos < x->len && !(t[y->pos] == '*' && t[y->pos + 1] == '/');
                 y->pos++)
                if (t[y->pos] == '\n') {
                    y->line++;
                    y->bol = y->pos + 1;
                }
            if (y->pos >= x->len)
                return cfg_syn_fail(y, "unterminated comment");
            y->pos += 2;
        } else {
            break;
        }
    }
    size_t p = y->pos;
    char c = t[p];
    y->off = p;
    if (p >= x->len) {
        y->tok = CFG_TK_EOF;
        y->len = 0;
        return CAT_OK;
    }
    if (c == '"') {
        unsigned line = y->line;
        size_t bol = y->bol;
        for (p++; p < x->len && t[p] != '"'; p++) {
            if (t[p] == '\\' && t[p + 1] != '\0' && t[p + 1] != '\n')
                p++; /* an escaped quote does not end the string */
            else if (t[p] == '\n') {
                line++;
                bol = p + 1;
            }
        }
        if (p >= x->len)
            return cfg_syn_fail(y, "unterminated string");
        y->line = line;
        y->bol = bol;
        y->tok = CFG_TK_STRING;
        y->len = p + 1 - y->off;
    } else if (strchr("=:,;{}[]()", c) != NULL) {
        y->tok = CFG_TK_PUNCT;
        y->len = 1;
    } else if (cfg_id_start(c)) {
        while (cfg_id_char(t[p]))
            p++;
        y->len = p - y->off;
        /* {true} and {false} are listed before {name}: equal length, they win */
        bool b = (y->len == 4 && strncasecmp(t + y->off, "true", 4) == 0) ||
                 (y->len == 5 && strncasecmp(t + y->off, "false", 5) == 0);
        y->tok = b ? CFG_TK_BOOL : CFG_TK_NAME;
    } else {
        y->len = cfg_syn_number(t + p, &y->tok);
        if (y->len == 0) {
            y->tok = CFG_TK_GARBAGE;
            y->len = 1;
        }
    }
    y->pos = y->off + y->len;
    return CAT_OK;
}

static bool
cfg_syn_is(const struct cfg_syn *y, char punct)
{
    return y->tok == CFG_TK_PUNCT && y->x->text[y->off] == punct;
}

/* What the current token is, for "unexpected ..." */
static const char *
cfg_syn_what(const struct cfg_syn *y, char *buf, size_t cap)
{
    const char *t = y->x->text + y->off;
    switch (y->tok) {
    case CFG_TK_EOF:
        return "end of text";
    case CFG_TK_NAME:
        snprintf(buf, cap, "name %.*s", (int)CAT_MIN(y->len, 40), t);
        return buf;
    case CFG_TK_STRING:
        return "string";
    case CFG_TK_BOOL:
    case CFG_TK_INT:
    case CFG_TK_INT64:
    case CFG_TK_FLOAT:
        snprintf(buf, cap, "%.*s", (int)CAT_MIN(y->len, 40), t);
        return buf;
    case CFG_TK_PUNCT:
        snprintf(buf, cap, "'%c'", t[0]);
        return buf;
    case CFG_TK_GARBAGE:
        break;
    }
    if ((unsigned char)t[0] < 0x20 || (unsigned char)t[0] >= 0x7f)
        snprintf(buf, cap, "byte 0x%02x", (unsigned char)t[0]);
    else
        snprintf(buf, cap, "'%c'", t[0]);
    return buf;
}

static int
cfg_syn_unexpected(struct cfg_syn *y, const char *expected)
{
    char buf[64];
    return cfg_syn_fail(y, "unexpected %s, expected %s", cfg_syn_what(y, buf, sizeof(buf)),
                        expected);
}

static int cfg_syn_value(struct cfg_syn *y, unsigned depth);

/* Records the next setting's position (libconfig creates settings in this order). */
static int
cfg_syn_record(struct cfg_syn *y, size_t *idx)
{
    struct cfg_ctx *x = y->x;
    if (x->n_pos == x->cap_pos) {
        size_t cap = x->cap_pos > 0 ? x->cap_pos * 2 : 64;
        struct cfg_pos *p = realloc(x->pos, cap * sizeof(*p));
        if (p == NULL)
            return cfg_oom(x, "load");
        x->pos = p;
        x->cap_pos = cap;
    }
    x->pos[x->n_pos].name = x->pos[x->n_pos].value = y->off;
    *idx = x->n_pos++;
    return CAT_OK;
}

/* Appends ".name" or "[i]" to the path; returns the old length to restore. */
static size_t
cfg_syn_push(struct cfg_syn *y, const char *fmt_name, size_t nlen, long idx)
{
    size_t old = strlen(y->path);
    size_t cap = sizeof(y->path) - old;
    if (fmt_name != NULL)
        snprintf(y->path + old, cap, "%s%.*s", old > 0 ? "." : "", (int)nlen, fmt_name);
    else
        snprintf(y->path + old, cap, "[%ld]", idx);
    return old;
}

/* setting* up to `end` ('}' or end of text). Names must differ within a group. */
static int
cfg_syn_settings(struct cfg_syn *y, char end, unsigned depth)
{
    /* Duplicates are looked for among the first names only: libconfig catches the rest. */
    struct {
        size_t off, len;
        unsigned line;
    } seen[64];
    size_t n_seen = 0;
    bool unterminated = false; /* the last setting had no ';' (libconfig allows that) */
    for (;;) {
        if (end == '\0' ? y->tok == CFG_TK_EOF : cfg_syn_is(y, end))
            return CAT_OK;
        if (y->tok != CFG_TK_NAME)
            return cfg_syn_unexpected(y, unterminated  ? "';'"
                                         : end == '\0' ? "a setting name"
                                                       : "a setting name or '}'");
        const char *name = y->x->text + y->off;
        for (size_t i = 0; i < n_seen; i++)
            if (seen[i].len == y->len && memcmp(y->x->text + seen[i].off, name, y->len) == 0) {
                size_t old = cfg_syn_push(y, name, y->len, 0);
                snprintf(y->x->err, y->x->errlen, "%s:%u:%u: %s: set twice (first on line %u)",
                         y->x->name, y->tline, y->tcol, y->path, seen[i].line);
                y->path[old] = '\0';
                return CAT_ERR;
            }
        if (n_seen < CAT_ARRAY_LEN(seen)) {
            seen[n_seen].off = y->off;
            seen[n_seen].len = y->len;
            seen[n_seen++].line = y->tline;
        }
        size_t old = cfg_syn_push(y, name, y->len, 0), idx;
        if (cfg_syn_record(y, &idx) != CAT_OK || cfg_syn_next(y) != CAT_OK)
            return CAT_ERR;
        if (!cfg_syn_is(y, '=') && !cfg_syn_is(y, ':'))
            return cfg_syn_unexpected(y, "'=' or ':'");
        if (cfg_syn_next(y) != CAT_OK)
            return CAT_ERR;
        y->x->pos[idx].value = y->off;
        if (cfg_syn_value(y, depth) != CAT_OK)
            return CAT_ERR;
        y->path[old] = '\0';
        unterminated = !cfg_syn_is(y, ';') && !cfg_syn_is(y, ',');
        if (!unterminated && cfg_syn_next(y) != CAT_OK)
            return CAT_ERR;
    }
}

/* A scalar: a boolean, a number, or adjacent strings (joined by libconfig). */
static bool
cfg_syn_scalar(const struct cfg_syn *y)
{
    return y->tok >= CFG_TK_STRING && y->tok <= CFG_TK_FLOAT;
}

static int
cfg_syn_value(struct cfg_syn *y, unsigned depth)
{
    if (depth >= CFG_MAX_DEPTH)
        return cfg_syn_fail(y, "nested deeper than %d", CFG_MAX_DEPTH);
    if (y->tok == CFG_TK_STRING) {
        while (y->tok == CFG_TK_STRING)
            if (cfg_syn_next(y) != CAT_OK)
                return CAT_ERR;
        return CAT_OK;
    }
    if (cfg_syn_scalar(y))
        return cfg_syn_next(y);
    if (cfg_syn_is(y, '{')) {
        if (cfg_syn_next(y) != CAT_OK || cfg_syn_settings(y, '}', depth + 1) != CAT_OK)
            return CAT_ERR;
        return cfg_syn_next(y);
    }
    bool array = cfg_syn_is(y, '[');
    if (!array && !cfg_syn_is(y, '('))
        return cfg_syn_unexpected(y, "a value");
    char close = array ? ']' : ')';
    enum cfg_tok type = CFG_TK_EOF; /* an array's element type, from its first element */
    if (cfg_syn_next(y) != CAT_OK)
        return CAT_ERR;
    for (long i = 0; !cfg_syn_is(y, close); i++) {
        size_t old = cfg_syn_push(y, NULL, 0, i), idx;
        if (array) {
            if (!cfg_syn_scalar(y))
                return cfg_syn_unexpected(y, i == 0 ? "a number, string, boolean or ']'"
                                                    : "a number, string or boolean");
            if (type == CFG_TK_EOF)
                type = y->tok;
            else if (y->tok != type)
                return cfg_syn_fail(y, "an array [ ] holds one type (%s); a list ( ) may mix them",
                                    type == CFG_TK_STRING  ? "strings"
                                    : type == CFG_TK_BOOL  ? "booleans"
                                    : type == CFG_TK_FLOAT ? "floats"
                                    : type == CFG_TK_INT   ? "integers"
                                                           : "64-bit integers");
        }
        if (cfg_syn_record(y, &idx) != CAT_OK || cfg_syn_value(y, depth + 1) != CAT_OK)
            return CAT_ERR;
        y->path[old] = '\0';
        if (cfg_syn_is(y, close))
            break;
        if (!cfg_syn_is(y, ','))
            return cfg_syn_unexpected(y, array ? "',' or ']'" : "',' or ')'");
        if (cfg_syn_next(y) != CAT_OK)
            return CAT_ERR;
        if (cfg_syn_is(y, close)) /* libconfig 1.5 takes no trailing comma */
            return cfg_syn_unexpected(y, "a value after ','");
    }
    return cfg_syn_next(y);
}

static int
cfg_syntax(struct cfg_ctx *x)
{
    struct cfg_syn y = {.x = x, .line = 1};
    if (cfg_syn_next(&y) != CAT_OK)
        return CAT_ERR;
    return cfg_syn_settings(&y, '\0', 0);
}

/* ---- loading ------------------------------------------------------------------ */

static struct cfg *
cfg_parse(const char *text, const char *name, char *base, char *err, size_t errlen)
{
    struct cfg_ctx x = {.name = name,
                        .text = text,
                        .len = strlen(text),
                        .base = base,
                        .err = err,
                        .errlen = errlen};
    config_t user, dflt;
    config_init(&user);
    config_init(&dflt);
    x.user = &user;
    if (errlen > 0)
        err[0] = '\0';
    if (base == NULL) {
        snprintf(err, errlen, "%s: cannot find the directory for relative paths: %s", name,
                 strerror(errno));
        goto fail;
    }
    x.cfg = calloc(1, sizeof(*x.cfg));
    if (x.cfg == NULL) {
        cfg_oom(&x, "load");
        goto fail;
    }
    atomic_init(&x.cfg->refs, 1);
    x.cfg->path = strdup(name);
    if (x.cfg->path == NULL) {
        cfg_oom(&x, "load");
        goto fail;
    }
    if (cfg_syntax(&x) != CAT_OK)
        goto fail;
    /* libconfig 1.5 takes "# comment" without a final newline for garbage. */
    char *copy = malloc(x.len + 2);
    if (copy == NULL) {
        cfg_oom(&x, "load");
        goto fail;
    }
    memcpy(copy, text, x.len);
    memcpy(copy + x.len, "\n", 2);
    int ok = config_read_string(&user, copy);
    free(copy);
    if (ok != CONFIG_TRUE) {
        const char *why = config_error_text(&user);
        int line = config_error_line(&user), last = 1;
        for (size_t i = 0; i < x.len; i++)
            last += text[i] == '\n';
        if (line > last) /* at the end of the text: not on the newline added above */
            line = last;
        char at[24] = "";
        if (line > 0)
            snprintf(at, sizeof(at), ":%d", line);
        if (why == NULL || strcmp(why, "syntax error") == 0)
            snprintf(err, errlen, "%s%s: syntax error", name, at);
        else
            snprintf(err, errlen, "%s%s: syntax error: %s", name, at, why);
        goto fail;
    }
    size_t n_attached = 0;
    x.pos_ok =
        cfg_attach_pos(&x, config_root_setting(&user), &n_attached, 0) && n_attached == x.n_pos;
    if (cfg_check_names(&x, config_root_setting(&user)) != CAT_OK ||
        cfg_load_defaults(&x, &dflt) != CAT_OK)
        goto fail;
    for (size_t i = 0; i < CAT_ARRAY_LEN(cfg_keys); i++) {
        const struct cfg_key *k = &cfg_keys[i];
        const config_setting_t *s = cfg_user_setting(&x, k->name);
        x.dflt = s == NULL;
        if (s == NULL && k->def != NULL) {
            char dn[24];
            snprintf(dn, sizeof(dn), "d%zu", i);
            s = config_setting_get_member(config_root_setting(&dflt), dn);
            CAT_ASSERT(s != NULL);
        }
        if (s != NULL && cfg_apply(&x, k, s) != CAT_OK)
            goto fail;
    }
    x.dflt = false;
    if (cfg_finish(&x) != CAT_OK)
        goto fail;
    config_destroy(&user);
    config_destroy(&dflt);
    free(x.pos);
    free(base);
    return x.cfg;
fail:
    config_destroy(&user);
    config_destroy(&dflt);
    free(x.pos);
    free(base);
    if (x.cfg != NULL)
        cfg_free(x.cfg);
    return NULL;
}

/* The absolute directory of path (the current one for a bare name). */
static char *
cfg_base_dir(const char *path)
{
    const char *slash = path != NULL ? strrchr(path, '/') : NULL;
    if (slash == path && slash != NULL)
        return strdup("/");
    if (slash != NULL && path[0] == '/')
        return strndup(path, (size_t)(slash - path));
    char *cwd = getcwd(NULL, 0);
    if (cwd == NULL || slash == NULL)
        return cwd;
    size_t cl = strlen(cwd), dl = (size_t)(slash - path);
    char *p = malloc(cl + 1 + dl + 1);
    if (p != NULL)
        snprintf(p, cl + 1 + dl + 1, "%s%s%.*s", cwd, cwd[cl - 1] == '/' ? "" : "/", (int)dl, path);
    free(cwd);
    return p;
}

struct cfg *
cfg_load_string(const char *text, const char *name, char *err, size_t errlen)
{
    return cfg_parse(text, name, cfg_base_dir(NULL), err, errlen);
}

struct cfg *
cfg_load(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    /* Read to EOF rather than trust st_size: the path may be a pipe. */
    size_t len = 0, cap = 8192;
    char *text = malloc(cap);
    for (;;) {
        if (text == NULL) {
            snprintf(err, errlen, "%s: out of memory", path);
            close(fd);
            return NULL;
        }
        if (len + 1 == cap) {
            if (cap >= CFG_MAX_TEXT) {
                snprintf(err, errlen, "%s: larger than %u bytes", path, CFG_MAX_TEXT);
                free(text);
                close(fd);
                return NULL;
            }
            char *t = realloc(text, cap * 2);
            if (t == NULL)
                free(text);
            text = t;
            cap *= 2;
            continue;
        }
        ssize_t n = read(fd, text + len, cap - len - 1);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1) {
            snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
            free(text);
            close(fd);
            return NULL;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    text[len] = '\0';
    const char *nul = memchr(text, '\0', len);
    if (nul != NULL) {
        unsigned line = 1;
        for (const char *p = text; p < nul; p++)
            line += *p == '\n';
        snprintf(err, errlen, "%s:%u: syntax error: NUL byte in the text", path, line);
        free(text);
        return NULL;
    }
    struct cfg *c = cfg_parse(text, path, cfg_base_dir(path), err, errlen);
    free(text);
    return c;
}

struct cfg *
cfg_ref(struct cfg *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void
cfg_unref(struct cfg *c)
{
    if (c == NULL)
        return;
    /* acq_rel: the freeing thread sees every write made before other unrefs. */
    int old = atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel);
    CAT_ASSERT(old > 0);
    if (old == 1)
        cfg_free(c);
}

/* ---- matching ------------------------------------------------------------------ */

static bool
cfg_prefix_eq(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned bytes = bits / 8, rest = bits % 8;
    if (memcmp(a, b, bytes) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xffu << (8 - rest));
    return (a[bytes] & mask) == (b[bytes] & mask);
}

bool
cfg_net_match(const struct cfg_net *nets, size_t n, const struct sockaddr *addr)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    uint8_t v4[4], v6[16];
    bool has4 = false, has6 = false;
    if (addr->sa_family == AF_INET) {
        memcpy(v4, &((const struct sockaddr_in *)(const void *)addr)->sin_addr, 4);
        memcpy(v6, mapped, 12);
        memcpy(v6 + 12, v4, 4);
        has4 = has6 = true;
    } else if (addr->sa_family == AF_INET6) {
        memcpy(v6, &((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr, 16);
        has6 = true;
        /* A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d. */
        if (memcmp(v6, mapped, 12) == 0) {
            memcpy(v4, v6 + 12, 4);
            has4 = true;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (nets[i].family == AF_INET && has4 && nets[i].prefix <= 32 &&
            cfg_prefix_eq(nets[i].addr, v4, nets[i].prefix))
            return true;
        if (nets[i].family == AF_INET6 && has6 && nets[i].prefix <= 128 &&
            cfg_prefix_eq(nets[i].addr, v6, nets[i].prefix))
            return true;
    }
    return false;
}

bool
cfg_port_allowed(const struct cfg_port_range *r, size_t n, unsigned port)
{
    for (size_t i = 0; i < n; i++)
        if (port >= r[i].lo && port <= r[i].hi)
            return true;
    return false;
}

bool
cfg_hostlist_match(const struct cfg_hostlist *l, const char *host)
{
    size_t hl = strlen(host);
    if (hl > 0 && host[hl - 1] == '.')
        hl--;
    if (hl == 0)
        return false;
    for (size_t i = 0; i < l->n; i++) {
        const char *p = l->names[i];
        size_t pl = strlen(p);
        if (p[0] != '.') {
            if (hl == pl && strncasecmp(host, p, pl) == 0)
                return true;
            continue;
        }
        /* ".example.com": example.com itself, or a name ending in it. */
        if (hl == pl - 1 && strncasecmp(host, p + 1, hl) == 0)
            return true;
        if (hl > pl && strncasecmp(host + hl - pl, p, pl) == 0)
            return true;
    }
    return false;
}
