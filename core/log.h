/*
 * Logging: the event log (two facilities, syslog levels) and the access log
 * (W3C extended format, one line per transaction, configurable fields).
 *
 * Both are written with one write(2) per line to an O_APPEND descriptor, so
 * lines from several workers never interleave. SIGUSR1 reopens the files by
 * dup2()-ing a fresh descriptor over the old number: writers never see a
 * closed fd.
 */
#ifndef CATENA_CORE_LOG_H
#define CATENA_CORE_LOG_H

#include "core/attr.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <syslog.h>
#include <time.h>

/* Facilities: `ssl` covers tls_, emu_ and wolfSSL; `main` the rest. */
enum log_fac { LOG_FAC_MAIN = 0, LOG_FAC_SSL, LOG_FAC_COUNT };

/*
 * Event-log prefixes that operators grep for and e2e tests match on.
 * CLI: catena was the TLS server (the client's handshake failed).
 * SRV: catena was the TLS client (the origin's or next hop's failed).
 */
#define LOG_EVT_CLI_TLS "TLS accept error (client side):"
#define LOG_EVT_SRV_TLS "TLS connect error (server side):"
#define LOG_EVT_DENIED "denied:"
#define LOG_EVT_BAD_REQUEST "bad request:"
#define LOG_EVT_RELOAD "config reloaded:"
#define LOG_EVT_RELOAD_FAIL "config reload refused:"

/*
 * Connection context appended to every event-log line about a connection
 * ("conn=<id> cli=<ip:port> target=<host:port> state=<name>"). The
 * connection module registers the formatter so that log.c stays below it.
 */
typedef size_t log_ctx_fn(const void *c, char *buf, size_t cap);
void log_set_ctx_fn(log_ctx_fn *fn);

/** Opens the event log: path NULL or "-" means stderr. Level is a syslog level. */
int log_open_event(const char *path, int level) CAT_WUR;
/** Opens the access log (path NULL: none) and parses its W3C field list. */
int log_open_access(const char *path, const char *fields, char *err, size_t errlen) CAT_WUR;
/** SIGUSR1: reopen both files in place (rotation). Safe while workers log. */
int log_reopen(void);
/** Sets the threshold of one facility (a syslog level). */
void log_set_level(enum log_fac fac, int level);
/** Closes both logs; stderr remains for the event log. */
void log_close(void);

extern int log_levels[LOG_FAC_COUNT];
static inline bool
log_want(enum log_fac fac, int level)
{
    return level <= log_levels[fac];
}

/** Writes one event-log line. c may be NULL (no connection context). */
void log_emit(enum log_fac fac, int level, const void *c, const char *fmt, ...) CAT_PRINTF(4, 5);

/* The arguments are not evaluated when the level is off. */
#define log_at(fac, lvl, c, ...) \
    do { \
        if (log_want((fac), (lvl))) \
            log_emit((fac), (lvl), (c), __VA_ARGS__); \
    } while (0)
#define log_err(fac, c, ...) log_at((fac), LOG_ERR, (c), __VA_ARGS__)
#define log_warn(fac, c, ...) log_at((fac), LOG_WARNING, (c), __VA_ARGS__)
#define log_notice(fac, c, ...) log_at((fac), LOG_NOTICE, (c), __VA_ARGS__)
#define log_info(fac, c, ...) log_at((fac), LOG_INFO, (c), __VA_ARGS__)
#define log_debug(fac, c, ...) log_at((fac), LOG_DEBUG, (c), __VA_ARGS__)

/** Parses "err", "warning", "notice", "info", "debug"; -1 if unknown. */
int log_level_parse(const char *name);
const char *log_level_name(int level);

/*
 * One access-log record. Strings are borrowed for the duration of the call
 * and may be NULL (logged as "-"). Numbers below zero are logged as "-".
 */
struct log_txn {
    struct timespec start;          /* CLOCK_REALTIME at accept or request start */
    struct timespec end;            /* CLOCK_REALTIME when the transaction ended */
    const char *c_ip;               /* client address */
    int c_port;
    const char *s_ip;               /* catena's own address the client reached */
    const char *supplier_ip;        /* address catena connected to (origin or hop) */
    const char *username;           /* cs-username */
    const char *action;             /* s-action: TCP_TUNNELED, TCP_MISS, TCP_DENIED, ... */
    int status;                     /* sc-status */
    const char *method;             /* cs-method */
    const char *scheme;             /* cs-uri-scheme */
    const char *host;               /* cs-host */
    int port;                       /* cs-uri-port */
    const char *path;               /* cs-uri-path (no query) */
    const char *query;              /* cs-uri-query (with '?') */
    const char *user_agent;         /* cs(User-Agent) */
    const char *referer;            /* cs(Referer) */
    const char *content_type;       /* rs(Content-Type) */
    int64_t sc_bytes;               /* bytes sent to the client */
    int64_t cs_bytes;               /* bytes received from the client */
    const char *exception_id;       /* x-exception-id */
    const char *cert_errors;        /* x-rs-certificate-observed-errors */
    const char *cert_status;        /* x-rs-certificate-validate-status */
    const char *upstream;           /* x-forwarded-via: forwarding host used, if any */
    const char *detail;             /* x-detail: free text, e.g. the reason of a denial */
};

/** Writes one access-log line (no-op when no access log is configured). */
void log_access(const struct log_txn *t);

/*
 * One SSL-log record: a TLS connection, tunneled or intercepted. No URL
 * paths or headers (privacy): names, certificate facts and parameters.
 */
struct log_tls {
    struct timespec start, end;
    const char *c_ip;
    const char *action;       /* TUNNELED, INTERCEPTED, EXCEPTION, DENIED */
    const char *sni;          /* x-cs-sni (or the CONNECT host) */
    const char *s_ip;         /* the server's address */
    int s_port;
    const char *cert_hostname; /* x-rs-certificate-hostname: CN or first DNS SAN */
    const char *cert_issuer;   /* x-rs-certificate-issuer */
    const char *cert_errors;   /* x-rs-certificate-observed-errors: every error seen */
    const char *cert_status;   /* x-rs-certificate-validate-status: after policy */
    const char *cs_version, *cs_cipher; /* client side (catena as TLS server) */
    const char *rs_version, *rs_cipher; /* server side (catena as TLS client) */
    int64_t sc_bytes, cs_bytes;
    const char *username;
    const char *upstream;             /* x-upstream: the forwarding host used, or NULL */
    const char *upstream_intercepted; /* x-upstream-intercepted: "yes", "no", or NULL */
    const char *detail;
};

/** Opens the SSL access log (path NULL: none). */
int log_open_tls(const char *path) CAT_WUR;
/** Writes one SSL-log line (no-op without an SSL log). */
void log_tls(const struct log_tls *t) CAT_NONNULL(1);

/** The default field list, for the sample config and tests. */
#define LOG_ACCESS_DEFAULT_FIELDS \
    "date time time-taken c-ip cs-username s-action sc-status cs-method cs-uri-scheme " \
    "cs-host cs-uri-port cs-uri-path cs-uri-query sc-bytes cs-bytes s-ip s-supplier-ip " \
    "cs(User-Agent) x-exception-id"

#endif
