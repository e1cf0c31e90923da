/*
 * One client connection and everything it leads to: the request it sends,
 * the origin (or next hop) it is connected to, the tunnel or the HTTP
 * exchanges in between. One explicit state machine per connection; one
 * handler per state (conn.c); the HTTP message relay is msg.c, the byte
 * relays (buffers, splice) relay.c.
 */
#ifndef CATENA_CORE_CONN_H
#define CATENA_CORE_CONN_H

#include "core/attr.h"
#include "core/cfg.h"
#include "core/dlist.h"
#include "core/http.h"
#include "core/log.h"
#include "core/policy.h"
#include "core/relay.h"
#include "core/tls.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include <ev.h>

struct worker;
struct lsn;
struct res_query;
struct emu_leaf;
struct chain_host;

enum conn_state {
    CONN_ST_ACCEPTED = 0, /* [transient] fd accepted, nothing read yet */
    CONN_ST_PROXY_TLS,    /* https listener: TLS handshake with the client, to the proxy */
    CONN_ST_REQUEST,      /* reading a request head (first, or next on keep-alive) */
    CONN_ST_SOCKS,        /* SOCKS5 listener: greeting, login, request */
    CONN_ST_POLICY,       /* [transient] verdict on the request: allow, deny */
    CONN_ST_RESOLVE,      /* res_ query in flight (c->dns != NULL) */
    CONN_ST_CONNECT,      /* non-blocking connect() to the origin, one address at a time */
    CONN_ST_UP_TLS,       /* TLS handshake with an upstream proxy of type https */
    CONN_ST_CHAIN,        /* CONNECT exchange with an upstream proxy (c->route) */
    CONN_ST_RESPOND,      /* writing an answer made here (200 established, error page) */
    CONN_ST_PEEK_HELLO,   /* reading the client's first bytes: a ClientHello? which name? */
    CONN_ST_PROBE,        /* tunneled site: a probe handshake fetches its certificate */
    CONN_ST_SRV_TLS,      /* TLS handshake towards the origin (we are the client) */
    CONN_ST_VALIDATE,     /* the origin's chain checked; revocation asked (c->cert->revq) */
    CONN_ST_EMULATE,      /* [transient] emulated certificate for the origin's */
    CONN_ST_CLI_TLS,      /* TLS handshake towards the client with the emulated leaf */
    CONN_ST_TUNNEL,       /* bytes spliced both ways, untouched */
    CONN_ST_EXCHANGE,     /* one HTTP request/response relayed, bodies streamed */
    CONN_ST_STREAM,       /* decrypted bytes relayed both ways (not HTTP inside TLS) */
    CONN_ST_LINGER,       /* answer sent, write side shut; reading until the client's FIN */
    CONN_ST_ADMIN_BODY,   /* admin listener: reading a request body (PUT /bundle) */
    CONN_ST_COUNT         /* must stay last */
};

/* Why a connection died: the event log prints it. */
enum conn_err {
    CONN_ERR_NONE = 0,
    CONN_ERR_CLI_EOF,      /* client closed (normal at the end) */
    CONN_ERR_CLI_RESET,    /* client reset or I/O error */
    CONN_ERR_SRV_EOF,      /* origin closed early */
    CONN_ERR_SRV_RESET,    /* origin reset or I/O error */
    CONN_ERR_TIMEOUT,      /* a state's timer fired */
    CONN_ERR_DNS,          /* resolution failed */
    CONN_ERR_CONNECT,      /* no origin address accepted the connection */
    CONN_ERR_BAD_REQUEST,  /* the client sent something we refuse */
    CONN_ERR_BAD_RESPONSE, /* the origin sent something we refuse */
    CONN_ERR_CLI_TLS,      /* the client's TLS handshake failed (we were the server) */
    CONN_ERR_SRV_TLS,      /* the origin's TLS handshake failed (we were the client) */
    CONN_ERR_EMULATE,      /* no emulated certificate could be made */
    CONN_ERR_DENIED,       /* access rules or policy */
    CONN_ERR_NOMEM,
    CONN_ERR_SHUTDOWN,     /* drain period over */
    CONN_ERR_INTERNAL,     /* our bug */
    CONN_ERR_COUNT
};

const char *conn_err_str(enum conn_err e);
const char *conn_state_name(enum conn_state s);

/* What woke a state handler (several may be set). */
#define CONN_EV_CLI_R 0x01u /* client socket readable */
#define CONN_EV_CLI_W 0x02u /* client socket writable */
#define CONN_EV_SRV_R 0x04u /* origin socket readable */
#define CONN_EV_SRV_W 0x08u /* origin socket writable */
#define CONN_EV_TIMER 0x10u /* the state's deadline passed */
#define CONN_EV_DNS 0x20u   /* the resolver answered */

/* Facts about the connection (not states). */
#define CONN_F_CLOSING 0x01u      /* conn_close() ran; waiting for the deferred free */
#define CONN_F_CLOSE_AFTER 0x02u  /* no further request on this client connection */
#define CONN_F_IDLE 0x04u         /* between requests: may be closed at once on drain */
#define CONN_F_LOGGED 0x08u       /* this transaction's access-log line is written */
#define CONN_F_INTERCEPTED 0x10u  /* the client side speaks TLS with our emulated leaf */
#define CONN_F_RETUNNEL 0x20u     /* interception abandoned: tunnel on a fresh origin connection */
#define CONN_F_EXCEPTION 0x40u    /* intercepted only to answer exception pages (c->cert->final) */
#define CONN_F_OVERRIDDEN 0x80u   /* the user chose to continue past the exception */

/* One side of the connection: the client (cli) or the origin/next hop (srv). */
struct conn_side {
    int fd;             /* owned; -1 when not connected */
    WOLFSSL *ssl;       /* owned; NULL for plain TCP */
    struct tls_io tio;  /* the TLS session's I/O context (fd, replay) */
    WOLFSSL *up_ssl;    /* owned: srv through a TLS upstream: the outer session under ssl */
    struct tls_io up_tio;
    struct buf replay;  /* raw bytes read before TLS began, fed to wolfSSL first */
    ev_io io;           /* one watcher; events set by conn_side_want() */
    int events;         /* EV_READ|EV_WRITE currently armed */
    struct buf in;      /* bytes read from this side, not yet consumed */
    struct buf out;     /* bytes made here for this side (heads, pages), written first */
    bool eof;           /* this side sent its FIN (read returned 0) */
    bool shut;          /* we shut down our writing towards it */
    int64_t bytes_in;   /* read from this side, this transaction */
    int64_t bytes_out;  /* written to this side, this transaction */
};

/* The request being served, as the access log and later states need it. */
struct conn_txn {
    struct timespec start;   /* CLOCK_REALTIME when its head began */
    enum http_method method;
    char method_str[16];
    char scheme[8];          /* "http", "https", "tcp" for CONNECT */
    char host[256];          /* lowercased target host (no brackets) */
    unsigned port;
    char *path;              /* owned: path without query, for the log */
    char *query;             /* owned or NULL */
    char *user_agent;        /* owned or NULL */
    const char *action;      /* s-action: static string */
    const char *exception;   /* x-exception-id: static string or upstream_exception, or NULL */
    char upstream_exception[48]; /* an upstream tier's exception id, relayed to the user */
    int status;              /* sc-status sent to the client */
    int version;             /* client's HTTP version, 10 or 11 */
    bool keep_alive;         /* client wants another request after this one */
    bool expect_continue;
};

#define CONN_MAX_CHAIN 8

/* The origin's certificate chain and what validation made of it. */
struct conn_cert {
    uint8_t *der[CONN_MAX_CHAIN]; /* owned copies, leaf first */
    size_t len[CONN_MAX_CHAIN];
    size_t n;
    bool from_probe;              /* learnt by a probe (the site is tunneled) */
    bool upstream_intercepted;    /* the chain ends at the route's upstream issuer */
    bool checked;                 /* val_check ran */
    bool rev_done;                /* revocation answered (or not asked) */
    struct rev_query *revq;       /* owned: revocation check in flight */
    struct probe *probe;          /* owned: probe in flight */
    struct fetch *aiaq;           /* owned: a missing intermediate being fetched */
    char aia_url[256];            /* what aiaq fetches */
    unsigned aia_fetches;         /* certificates added by AIA to this chain */
    bool aia_failed;              /* a fetch failed: validate without it */
    int issuer_idx;               /* index of the leaf's issuer in der[], or -1 */
    const uint8_t *issuer_anchor; /* the issuer when it is a trust anchor (borrowed: store) */
    size_t issuer_anchor_len;
    unsigned errors;              /* every error observed (VAL_E_*) */
    unsigned final;               /* after the policy's ignores */
    int status;                   /* the exception page's HTTP status */
    const char *exception;        /* the exception id (static) */
};

/* What the SSL access log says about a TLS connection (allocated when a
 * ClientHello is seen). Strings from wolfSSL are static; the rest owned here. */
struct conn_tlslog {
    struct timespec start;
    const char *action;       /* TUNNELED, INTERCEPTED, EXCEPTION, DENIED */
    char cert_hostname[256];
    char cert_issuer[384];
    char cert_errors[160];    /* every error observed */
    const char *cert_status;  /* after policy: CERT_VALID, or the first error not ignored */
    const char *cs_version, *cs_cipher; /* static strings from wolfSSL */
    const char *rs_version, *rs_cipher;
    int64_t sc_bytes, cs_bytes; /* inside intercepted TLS, over all requests */
    char detail[160];
};

/* One HTTP message's body in flight from a source side to a destination side. */
struct conn_body {
    enum http_framing framing;
    uint64_t remaining;     /* HTTP_BODY_LENGTH: bytes still to come */
    struct http_chunked ch; /* HTTP_BODY_CHUNKED: validator state */
    size_t approved;        /* bytes at the front of src->in that belong to the body */
    bool complete;          /* all of the body has been scanned (approved) */
};

/* Where a message is: its head to write, its body to relay, or finished. */
enum conn_msg_phase {
    CONN_MSG_IDLE = 0, /* not started (response: waiting for its head) */
    CONN_MSG_BODY,     /* head queued on dst->out; body bytes flowing */
    CONN_MSG_DONE,     /* head and body fully written */
};

struct conn {
    uint64_t id;
    enum conn_state state;
    enum conn_err err;
    unsigned flags;                /* CONN_F_* */
    struct worker *w;              /* borrowed: the worker owning this connection */
    enum cfg_listener_type lsn_type; /* the kind of listener it came in on */
    WOLFSSL_CTX *lsn_ctx;          /* borrowed from c->tls: an https listener's context */
    const struct cfg_listener *lsn; /* borrowed from c->cfg; NULL if gone in a reload */
    struct cfg *cfg;               /* ref: the config it started with */
    struct conn *next_free;        /* deferred-free list link */
    struct dlist_link link;        /* in the worker's list of live connections */

    struct sockaddr_storage cli_addr;  /* the client */
    struct sockaddr_storage local_addr;/* our address the client reached */
    char cli_text[INET6_ADDRSTRLEN + 8];  /* "ip:port" for logs */
    char cli_ip[INET6_ADDRSTRLEN];
    char local_ip[INET6_ADDRSTRLEN];

    struct conn_side cli;
    struct conn_side srv;
    ev_timer timer;                /* the current state's deadline */
    ev_tstamp deadline_len;        /* idle-style timeout: re-armed lazily */
    ev_tstamp last_activity;       /* ev_now() of the last byte moved */

    struct res_query *dns;         /* owned: in flight in CONN_ST_RESOLVE */
    struct res_answer *addrs;      /* owned: addresses to try in CONN_ST_CONNECT */
    size_t addr_next;              /* next address to try */
    int connect_errno;             /* last connect failure */
    char srv_ip[INET6_ADDRSTRLEN]; /* the address connected to (s-supplier-ip) */
    struct sockaddr_storage srv_addr; /* the same, for policy (url.address=) */
    char srv_host[256];            /* host:port the srv side is connected to, for reuse */
    unsigned srv_port;

    enum conn_state after_respond; /* where RESPOND goes once the answer is written */
    struct buf req_head;           /* the request head as sent on (kept for a retry) */
    bool srv_reused;               /* this exchange runs on a kept-alive origin connection */
    struct conn_txn txn;
    struct conn_body req_body;     /* cli -> srv */
    struct conn_body resp_body;    /* srv -> cli */
    enum conn_msg_phase req_phase;
    enum conn_msg_phase resp_phase;
    enum http_method resp_for;     /* method the awaited response answers */
    bool srv_reusable;             /* the origin connection may carry another request */
    bool srv_fresh;                /* connected (and TLS done) but no request sent yet */
    unsigned n_requests;           /* request heads read on this client connection */
    uint8_t socks_phase;           /* SOCKS5: which message comes next */

    struct relay_tunnel *tunnel;   /* owned: splice pipes in CONN_ST_TUNNEL */

    /* Interception */
    struct tls_conf *tls;          /* ref: TLS state of the config it started with */
    struct pol *pol;               /* ref: the policy snapshot it started with */
    struct pol_out pd;             /* what the policy decided (strings: the snapshot's) */
    bool ssl_decided;              /* <ssl-intercept> was evaluated */
    char user[256];                /* authenticated user name, or "" */
    char tls_host[256];            /* the name intercepted: SNI, else the CONNECT host */
    char tunnel_host[256];         /* where the CONNECT went (transparent: the original
                                    * destination): requests inside TLS go there too */
    unsigned tls_port;             /* the CONNECT port */
    struct emu_leaf *leaf;         /* ref: the emulated certificate while cli.ssl lives */
    struct conn_tlslog *tlog;      /* owned: for the SSL access log, or NULL if not TLS */
    struct conn_cert *cert;        /* owned: the origin's chain and verdict, or NULL */
    struct buf body;               /* admin writes: the request body being read */

    /* Chains of tiers */
    const struct chain_host *route; /* borrowed: c->tls->chain's; NULL = direct */
    char real_ip[INET6_ADDRSTRLEN]; /* the client behind a trusted downstream, or "" */
    bool downstream_inspects;      /* a trusted downstream intercepts (tier.inspect edge) */
    bool route_decided;            /* fwd_route ran for this transaction */
};

/** Reads from a side (TLS or plain) into b: > 0, 0 at EOF, CAT_AGAIN, CAT_ERR. */
static inline ssize_t
conn_side_read(struct conn_side *s, struct buf *b)
{
    return s->ssl != NULL ? tls_read(s->ssl, &s->tio, b) : relay_read(s->fd, b);
}

/** Writes to a side (TLS or plain): bytes written, CAT_AGAIN, CAT_ERR. */
static inline ssize_t
conn_side_write(struct conn_side *s, const uint8_t *p, size_t n)
{
    return s->ssl != NULL ? tls_write(s->ssl, &s->tio, p, n) : relay_write(s->fd, p, n);
}

/**
 * One step of a side's TLS handshake (wolfSSL_connect as the client, else
 * wolfSSL_accept). CAT_OK: done; CAT_AGAIN: waiting, the right event is
 * armed (return CAT_AGAIN); CAT_ERR: failed, *ret for tls_describe_error.
 */
int conn_side_handshake(struct conn *c, struct conn_side *s, bool as_client, int *ret)
    CAT_NONNULL(1, 2, 4);

/**
 * TLS inside TLS: the side's session so far (the client's to an https
 * listener, or ours to an upstream of type https) becomes the outer one;
 * the next session on this side does its I/O through it.
 */
void conn_side_tls_nest(struct conn_side *s) CAT_NONNULL(1);

/** The I/O context of a new session on s: the socket, or the outer session if
 * nested; bytes in replay (if not NULL) are read first. */
void conn_side_tls_io(struct conn_side *s, struct buf *replay) CAT_NONNULL(1);

/**
 * Reads more of what the client sends into b. CAT_OK: bytes arrived (b->len
 * grew, cli.bytes_in not counted); CAT_AGAIN: none yet, a read is armed
 * (return CAT_AGAIN); CAT_ERR: the client closed or failed (c->err set).
 */
int conn_cli_read_more(struct conn *c, struct buf *b) CAT_NONNULL(1, 2);

/** An address as text ("192.0.2.1", "2001:db8::1"; IPv4-mapped as IPv4) and its port. */
void conn_addr_text(const struct sockaddr_storage *ss, char *ip, size_t iplen, unsigned *port)
    CAT_NONNULL(1, 2, 4);

/** Takes over an accepted fd (non-blocking) and starts the state machine. */
void conn_accept(struct worker *w, int fd, const struct lsn *ln, const struct sockaddr *peer,
                 socklen_t peerlen, struct cfg *cfg, struct tls_conf *tls)
    CAT_NONNULL(1, 3, 4, 6, 7);

/**
 * The origin (or, through an upstream, the tunnel to it) is connected: what
 * a CONNECT, a SOCKS request, a transparent connection or an HTTP request
 * does next. Returns a handler result (the state changed).
 */
int conn_established(struct conn *c) CAT_NONNULL(1);

/** Runs the state machine from an asynchronous callback (DNS, probe, revocation). */
void conn_wake(struct conn *c, unsigned ev) CAT_NONNULL(1);

/**
 * Ends the connection: idempotent, keeps the first error, stops every
 * watcher, cancels DNS, and queues the connection for a deferred free
 * (safe inside any callback).
 */
void conn_close(struct conn *c, enum conn_err err) CAT_NONNULL(1);

/** Frees a closed connection: only from the worker's deferred-free pass. */
void conn_free(struct conn *c) CAT_NONNULL(1);

/** The worker's resolver was replaced: a lookup in flight starts again on the new one. */
void conn_resolver_changed(struct conn *c) CAT_NONNULL(1);

/** Drain: closes the connection now if it is idle between requests. */
void conn_drain(struct conn *c) CAT_NONNULL(1);

/** Formats "conn=<id> cli=<ip:port> target=<host:port> state=<name>" (log_ctx_fn). */
size_t conn_log_ctx(const void *c, char *buf, size_t cap);

/* ---- used by the state handlers in conn.c and msg.c --------------------- */

/** Arms exactly `events` (EV_READ|EV_WRITE or 0) on a side. */
void conn_side_want(struct conn *c, struct conn_side *s, int events) CAT_NONNULL(1, 2);
/** Changes state (logging "from -> to" at debug). The only writer of c->state. */
void conn_set_state(struct conn *c, enum conn_state st) CAT_NONNULL(1);
/** Starts the state timer: fires once after ms. */
void conn_timer_once(struct conn *c, unsigned ms) CAT_NONNULL(1);
/** Starts an idle timer: fires after ms without conn_touch(). */
void conn_timer_idle(struct conn *c, unsigned ms) CAT_NONNULL(1);
/** Records activity for the idle timer. */
static inline void
conn_touch(struct conn *c, struct ev_loop *loop)
{
    c->last_activity = ev_now(loop);
}

/**
 * Answers the client with a page made here (status, exception id, detail
 * text) and then closes the connection (after a lingering read). Returns
 * CAT_OK: the caller's handler returns it (the state is now RESPOND).
 */
int conn_respond_error(struct conn *c, int status, const char *exception_id, const char *fmt, ...)
    CAT_NONNULL(1, 3) CAT_PRINTF(4, 5);

/** Closes the origin side (TLS session included), keeping the client. */
void conn_srv_close(struct conn *c) CAT_NONNULL(1);

/** A policy transaction with what the connection knows (request-specific parts left out). */
void conn_cpl_txn(const struct conn *c, struct cpl_txn *t, const struct http_head *h)
    CAT_NONNULL(1, 2);

/** Starts the SSL-log record of this connection (idempotent). CAT_ERR on OOM. */
int conn_tlslog_start(struct conn *c) CAT_NONNULL(1);

/** Writes the access-log line of the current transaction (once). */
void conn_log_txn(struct conn *c) CAT_NONNULL(1);
/** Clears the transaction record for the next request on the connection. */
void conn_txn_reset(struct conn *c) CAT_NONNULL(1);

#endif
