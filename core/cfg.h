/*
 * Node configuration: libconfig text -> a validated, defaults-applied,
 * immutable `struct cfg` snapshot. Only core/cfg.c includes <libconfig.h>.
 *
 * A snapshot is reference counted: a reload makes a new one and swaps it in;
 * live connections keep a reference to the one they started with. Every key
 * is documented in etc/catena.conf; unknown keys are errors.
 */
#ifndef CATENA_CORE_CFG_H
#define CATENA_CORE_CFG_H

#include "core/attr.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/** A network in CIDR form; family is AF_INET or AF_INET6, addr in network order. */
struct cfg_net {
    int family;
    uint8_t addr[16];
    uint8_t prefix;
};

struct cfg_port_range {
    uint16_t lo, hi; /* inclusive */
};

enum cfg_listener_type {
    CFG_LSN_HTTP = 0,    /* explicit proxy: CONNECT and absolute-form HTTP */
    CFG_LSN_SOCKS5,      /* RFC 1928 (later issue) */
    CFG_LSN_TRANSPARENT, /* redirected traffic (later issue) */
    CFG_LSN_ADMIN,       /* the admin endpoint: status, metrics, CA download */
    CFG_LSN_HTTPS,       /* explicit proxy spoken over TLS (a data center's WAN side) */
};

struct cfg_listener {
    enum cfg_listener_type type;
    struct sockaddr_storage addr; /* address and port to bind */
    socklen_t addrlen;
    char *text; /* owned: "127.0.0.1:3128" as written, for logs */
    char *cert_file; /* owned, https only: the proxy's certificate chain (PEM) */
    char *key_file;  /* owned, https only: its private key (PEM) */
    char *realm;     /* owned, socks5 only: logins (RFC 1929) are checked here; NULL: none */
    bool tproxy;     /* transparent only: TPROXY (IP_TRANSPARENT) instead of REDIRECT */
};


/** "http", "https", "socks5", "transparent", "admin". */
const char *cfg_listener_type_name(enum cfg_listener_type t);

enum cfg_family { CFG_FAMILY_ANY = 0, CFG_FAMILY_IPV4, CFG_FAMILY_IPV6 };

struct cfg_resolver {
    char **servers;    /* owned: "ip", "ip:port", "[v6]:port"; none = /etc/resolv.conf */
    size_t n_servers;
    char *hosts_file;  /* owned; NULL = no hosts file. Default "/etc/hosts" */
    enum cfg_family family;   /* which address families to ask for and use */
    unsigned cache_entries;   /* bound on cached names (positive + negative) */
    unsigned min_ttl_s;       /* floor on positive TTLs */
    unsigned max_ttl_s;       /* ceiling on positive TTLs */
    unsigned negative_ttl_s;  /* how long NXDOMAIN/NODATA is remembered */
    unsigned timeout_ms;      /* per try */
    unsigned tries;
};

/* Interception stand-in until the CPL policy engine lands (Policy issue). */
enum cfg_intercept_mode {
    CFG_INTERCEPT_NONE = 0, /* tunnel everything */
    CFG_INTERCEPT_ALL,      /* intercept every TLS connection not in `never` */
    CFG_INTERCEPT_LIST,     /* intercept hosts matching `hosts`, minus `never` */
};

/* A host pattern: "example.com" (exact) or ".example.com" (the domain and below). */
struct cfg_hostlist {
    char **names; /* owned */
    size_t n;
};

/* An issuer keyring: a directory made by `catenactl ca` holding cert.pem
 * (the issuing CA), key.pem (its key, 0600) and chain.pem (the CAs above it up
 * to the root; absent for a root). Policy names keyrings by `name`. */
struct cfg_keyring {
    char *name; /* owned */
    char *dir;  /* owned */
};

/* Clients that pin their server's key refuse emulated certificates: after
 * `threshold` refusals within `window`, the site is tunneled for `tunnel_for`. */
struct cfg_pinning {
    bool enabled;
    unsigned threshold;
    unsigned window_ms;
    unsigned tunnel_ms;
    struct cfg_hostlist always_intercept; /* sites never tunneled for pinning */
};

enum cfg_tls_version { CFG_TLS_1_2 = 0, CFG_TLS_1_3 };
enum cfg_non_http { CFG_NON_HTTP_RELAY = 0, CFG_NON_HTTP_DENY };

/* AEAD with forward secrecy only (no CBC, static RSA, 3DES, RC4); AES-GCM
 * first: our wolfSSL build has AES-NI. wolfSSL's names. */
#define CFG_TLS_CIPHERS_DEFAULT \
    "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:TLS13-CHACHA20-POLY1305-SHA256:" \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

struct cfg_tls {
    enum cfg_intercept_mode intercept;
    enum cfg_tls_version client_min_version; /* towards clients (catena as TLS server) */
    enum cfg_tls_version server_min_version; /* towards origins (catena as TLS client) */
    char *client_ciphers;  /* owned: cipher list towards clients */
    char *server_ciphers;  /* owned: cipher list towards origins */
    bool mirror_version;   /* never show a client a newer TLS version than the origin's */
    struct cfg_hostlist intercept_hosts;
    struct cfg_hostlist never_intercept;
    struct cfg_keyring *keyrings; /* owned array; the first is the default */
    size_t n_keyrings;
    char *splash_text;     /* owned or NULL: certificate extension text (<= 200 chars) */
    char *splash_url;      /* owned or NULL */
    unsigned cert_cache_entries; /* emulated certificate LRU bound */
    char *ca_file;         /* owned or NULL: extra trusted CAs for origins (PEM) */
    bool use_system_cas;   /* trust the system CA bundle for origins */
    char *keylog_file;     /* owned or NULL: SSLKEYLOGFILE-format key log (0600) */
    char *download_host;   /* owned: reserved name serving the CA on the proxy port */
    bool crl_url;          /* put http://<download_host>/crl/<keyring>.crl in emulated certs */
    enum cfg_non_http non_http; /* not HTTP inside intercepted TLS: relay it or close */
};

/* Errors to ignore for some sites (the <ssl> layer's stand-in until the
 * policy bundle): server.certificate.validate.ignore.* */
struct cfg_ignore {
    struct cfg_hostlist hosts;
    unsigned errors; /* VAL_E_* bits (core/validate.h) */
};

enum cfg_revocation { CFG_REV_OFF = 0, CFG_REV_SOFT, CFG_REV_HARD };

struct cfg_validation {
    bool enabled;             /* validate origin certificates at all */
    bool tunnels;             /* also tunneled ones, with a probe handshake */
    enum cfg_revocation revocation; /* soft: unknown is logged; hard: unknown is an error */
    unsigned revocation_timeout_ms;
    unsigned override;        /* VAL_E_* a user may continue past ("I understand the risk") */
    unsigned override_ms;     /* how long an override lasts */
    struct cfg_ignore *ignore; /* owned array */
    size_t n_ignore;
    unsigned cache_entries;   /* validation results and probe verdicts */
    unsigned probe_ttl_ms;    /* how long a probe's verdict is reused */
    unsigned probe_timeout_ms;
    bool aia_fetch;           /* fetch missing intermediates from caIssuers URLs */
};

#define CFG_MAX_BUNDLE_KEYS 8

/* Where the policy bundle comes from and who may sign it. */
struct cfg_bundle {
    char *file;            /* owned or NULL: a bundle file to run */
    char **keys;           /* owned: public key files trusted to sign bundles */
    size_t n_keys;
    char *store;           /* owned or NULL: where pushed or pulled bundles are kept */
    char *pull_url;        /* owned or NULL: an upstream node's http://.../bundle */
    unsigned pull_interval_ms;
};

/* An upstream proxy catena may forward through (chain/). */
enum cfg_fwd_type { CFG_FWD_HTTP = 0, CFG_FWD_HTTPS };

struct cfg_fwd_host {
    char *name;                   /* owned */
    struct sockaddr_storage addr; /* the upstream's address (an IP literal and a port) */
    socklen_t addrlen;
    char *addr_text;              /* owned: as configured */
    enum cfg_fwd_type type;
    char *credentials_file;       /* owned or NULL: "user:password" for the upstream's 407 */
    char *issuer;                 /* owned or NULL: PEM of the upstream's emulated issuer */
    char *tls_name;               /* owned or NULL: name on the upstream's own certificate */
    bool send_user;               /* send the authenticated user name (forwarding.user_header) */
};

enum cfg_fwd_method { CFG_FWD_FAILOVER = 0, CFG_FWD_HASH };

struct cfg_fwd_group {
    char *name;                   /* owned */
    char **members;               /* owned: host names, in failover order */
    size_t n_members;
    enum cfg_fwd_method method;
};

enum cfg_fwd_down { CFG_DOWN_CLOSED = 0, CFG_DOWN_OPEN };

struct cfg_forwarding {
    struct cfg_fwd_host *hosts;   /* owned array */
    size_t n_hosts;
    struct cfg_fwd_group *groups; /* owned array */
    size_t n_groups;
    char *default_route;          /* owned or NULL: a host or group; NULL = direct */
    enum cfg_fwd_down when_down;  /* every upstream of a route down: refuse, or go direct */
    unsigned connect_ms;
    unsigned health_ms;           /* interval of health checks */
    unsigned health_failures;     /* failed checks before an upstream is down */
    char *user_header;            /* owned: header carrying the user name to upstreams */
};

enum cfg_inspect { CFG_INSPECT_BOTH = 0, CFG_INSPECT_EDGE, CFG_INSPECT_CORE };

struct cfg_tier {
    struct cfg_net *downstream_nets; /* owned: whose X-Forwarded-For, user and tier claims count */
    size_t n_downstream_nets;
    enum cfg_inspect inspect;     /* where interception happens on a chain */
};

/* An authentication realm for authenticate(name) in the policy. */
enum cfg_realm_type { CFG_REALM_LOCAL = 0 };

struct cfg_realm {
    char *name;            /* owned */
    enum cfg_realm_type type;
    char *users_file;      /* owned: "user:crypt-hash" lines */
};

struct cfg_timeouts {
    unsigned connect_ms;     /* TCP connect to an origin or hop */
    unsigned head_ms;        /* a client must send a whole request head within this */
    unsigned keepalive_ms;   /* idle client connection between requests */
    unsigned idle_ms;        /* no byte either way on an HTTP exchange */
    unsigned tunnel_idle_ms; /* no byte either way on a tunnel */
    unsigned tls_handshake_ms; /* either side's TLS handshake */
    unsigned drain_ms;       /* SIGTERM grace period for open connections */
};

struct cfg_limits {
    unsigned max_connections; /* over all workers; excess is refused with 503 */
    size_t max_head_size;     /* request or response head, all lines */
    unsigned max_headers;     /* header fields per head */
    size_t buffer_size;       /* user-space relay buffer per direction */
    size_t pipe_size;         /* splice pipe per direction (bounded kernel buffer) */
};

struct cfg_log {
    char *event_file;     /* owned; NULL or "-" = stderr */
    int event_level;      /* syslog level for the main facility */
    int ssl_level;        /* syslog level for the ssl facility */
    char *access_file;    /* owned; NULL = no access log */
    char *access_fields;  /* owned: W3C field list, space separated */
    char *ssl_file;       /* owned; NULL = no SSL access log */
};

struct cfg {
    atomic_int refs;
    char *path;            /* owned: the file it was read from */
    char *node_name;       /* owned: this node's name (Via, logs); default: hostname */
    unsigned workers;      /* threads, each with its own loop; default: cores */
    char *pid_file;        /* owned or NULL: written with -d */

    struct cfg_listener *listeners; /* owned array */
    size_t n_listeners;

    struct cfg_net *client_nets;    /* owned: clients allowed (default loopback) */
    size_t n_client_nets;
    struct cfg_port_range *connect_ports; /* owned: CONNECT ports allowed (default 443) */
    size_t n_connect_ports;
    struct cfg_port_range *http_ports; /* owned: ports plain HTTP may go to (default 80, 1025-65535) */
    size_t n_http_ports;
    struct cfg_net *admin_nets;     /* owned: clients allowed on admin listeners (default loopback) */
    size_t n_admin_nets;

    struct cfg_resolver resolver;
    struct cfg_timeouts timeouts;
    struct cfg_limits limits;
    struct cfg_log log;
    struct cfg_tls tls;
    struct cfg_pinning pinning;
    struct cfg_validation validation;
    struct cfg_bundle bundle;
    struct cfg_realm *realms;      /* owned array */
    size_t n_realms;
    char *admin_token_file;        /* owned or NULL: bearer token for admin writes */
    struct cfg_forwarding forwarding;
    struct cfg_tier tier;
};

/**
 * Reads and validates FILE. On failure returns NULL and writes one message
 * "file:line:column: key: reason" (syntax errors: "file:line:column: syntax
 * error: reason") to err. The result has refs == 1.
 */
struct cfg *cfg_load(const char *path, char *err, size_t errlen) CAT_WUR CAT_NONNULL(1, 2);

/** Same, from text already in memory (tests, fuzzing); name is used in messages. */
struct cfg *cfg_load_string(const char *text, const char *name, char *err, size_t errlen)
    CAT_WUR CAT_NONNULL(1, 2, 3);

struct cfg *cfg_ref(struct cfg *c) CAT_NONNULL(1);
void cfg_unref(struct cfg *c);

/** True if addr (sockaddr of a client) lies in one of the networks. */
bool cfg_net_match(const struct cfg_net *nets, size_t n, const struct sockaddr *addr)
    CAT_NONNULL(3);
/** True if port lies in one of the ranges. */
bool cfg_port_allowed(const struct cfg_port_range *r, size_t n, unsigned port);
/** True if host matches one pattern of the list (case-insensitive). */
bool cfg_hostlist_match(const struct cfg_hostlist *l, const char *host) CAT_NONNULL(1, 2);

/** Parses "10s", "500ms", "2m", "1h" or a plain number of seconds. */
int cfg_parse_duration_ms(const char *s, unsigned *out_ms) CAT_WUR;
/** Parses "16k", "1m", "64K", or a plain number of bytes. */
int cfg_parse_size(const char *s, size_t *out) CAT_WUR;
/** Parses "10.0.0.0/8", "::1/128", or an address alone (full prefix). */
int cfg_parse_net(const char *s, struct cfg_net *out) CAT_WUR;

/** The listener configured as text ("127.0.0.1:3128"), or NULL. */
const struct cfg_listener *cfg_listener_find(const struct cfg *c, const char *text)
    CAT_NONNULL(1, 2);

#endif
