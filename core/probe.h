/*
 * Probe handshakes: to validate the certificate of a site that is tunneled
 * (its TLS is not ours to see), catena makes its own TLS connection to the
 * same address with the client's SNI, takes the certificate chain and
 * closes. Asynchronous on a worker's loop, bounded in time. A staple fetch
 * is a probe that asks for the server's stapled OCSP response instead and
 * ends with the server's first flight (see core/staple.c).
 */
#ifndef CATENA_CORE_PROBE_H
#define CATENA_CORE_PROBE_H

#include "core/attr.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

struct ev_loop;
struct probe;

#define PROBE_MAX_CERTS 8

/* What a probe learnt. DERs are owned by the probe and valid during the callback. */
struct probe_result {
    const char *err;                 /* NULL on success, else why it failed */
    int tls_error;                   /* wolfSSL's error code on a failed handshake, or 0 */
    int alert_rx;                    /* the alert the server sent, or 0 */
    const uint8_t *ders[PROBE_MAX_CERTS];
    size_t lens[PROBE_MAX_CERTS];
    size_t n;                        /* certificates, leaf first */
    const char *version, *cipher;    /* static strings from wolfSSL */
    bool client_cert_requested;      /* the server asked for a client certificate */
    /* A staple fetch (no chain): err NULL when the server's flight was read to its end. */
    const uint8_t *staple;           /* its stapled OCSPResponse (DER), or NULL */
    size_t staple_len;
};

typedef void probe_cb(void *arg, const struct probe_result *r);

/**
 * Connects to addr and handshakes (SNI sni, or none if NULL) with ctx (which
 * must not verify: the caller validates the chain). cb runs once from the
 * loop unless probe_cancel() comes first. NULL on OOM or socket failure.
 */
struct probe *probe_start(struct ev_loop *loop, WOLFSSL_CTX *ctx, const struct sockaddr *addr,
                          socklen_t addrlen, const char *sni, unsigned timeout_ms, probe_cb *cb,
                          void *arg) CAT_WUR CAT_NONNULL(1, 2, 3, 7);

/**
 * The same through an upstream proxy at addr: connect_req (a whole CONNECT
 * request, copied) is sent first and a 2xx answer awaited.
 */
struct probe *probe_start_via(struct ev_loop *loop, WOLFSSL_CTX *ctx, const struct sockaddr *addr,
                              socklen_t addrlen, const char *connect_req, const char *sni,
                              unsigned timeout_ms, probe_cb *cb, void *arg) CAT_WUR
    CAT_NONNULL(1, 2, 3, 5, 8);

/** Judges an upstream's certificate after TLS to it: CAT_OK or CAT_ERR with why. */
typedef int probe_cert_check_fn(void *arg, WOLFSSL *ssl, char *why, size_t cap);

/**
 * The same through an upstream proxy spoken to over TLS: a handshake with
 * it first (SNI tls_name if not NULL), judged by check(check_arg) before
 * anything is sent; then the CONNECT and the origin's TLS inside that
 * session. check_arg must outlive the probe (cancel the probe first).
 */
struct probe *probe_start_via_tls(struct ev_loop *loop, WOLFSSL_CTX *ctx,
                                  const struct sockaddr *addr, socklen_t addrlen,
                                  const char *connect_req, const char *tls_name,
                                  probe_cert_check_fn *check, void *check_arg, const char *sni,
                                  unsigned timeout_ms, probe_cb *cb, void *arg) CAT_WUR
    CAT_NONNULL(1, 2, 3, 5, 7, 11);

/**
 * Makes p, just started, a staple fetch: its session to the origin is made
 * again on ctx (which asks for stapled OCSP, TLS 1.2) and ends once the
 * server's first flight is read, before any key exchange. CAT_ERR on OOM
 * (then cancel p).
 */
int probe_fetch_staple(struct probe *p, WOLFSSL_CTX *ctx) CAT_WUR CAT_NONNULL(1, 2);

typedef void probe_arg_free_fn(void *arg);

/** Gives p the callback's arg: free_fn(arg) runs when p goes, reported or cancelled. */
void probe_own_arg(struct probe *p, probe_arg_free_fn *free_fn) CAT_NONNULL(1, 2);

/** Stops a probe: no callback after it returns. p may be NULL. */
void probe_cancel(struct probe *p);

/*
 * Verdicts of probes, shared by all workers (bounded LRU with a TTL), so a
 * site costs one probe per TTL however many connections go to it. The key
 * names the site as the client asked for it and the address connected to.
 */
struct probe_verdict {
    unsigned errors;      /* VAL_E_* observed (before policy) */
    bool client_cert;     /* the server asked for a client certificate */
    bool upstream_intercepted; /* the chain seen ended at the route's upstream issuer */
    char cn[256];         /* for the SSL log */
    char issuer[384];
};

/** Copies the verdict for key into *v if one is cached and fresh. */
bool probe_cache_get(const char *key, struct probe_verdict *v) CAT_NONNULL(1, 2);
/** Stores a verdict for ttl_ms, evicting the least recently used beyond max_entries. */
void probe_cache_put(const char *key, const struct probe_verdict *v, unsigned ttl_ms,
                     unsigned max_entries) CAT_NONNULL(1, 2);

#endif
