/*
 * TLS for interception: the origin-side client context (catena is the TLS
 * client: hardened, verifying), the client-side server contexts (one per
 * emulated leaf, set up here), the keyrings, and the non-blocking read and
 * write used by the relays. Everything per config snapshot lives in a
 * refcounted struct tls_conf built on the main thread.
 *
 * Sides: `srv` is the origin or next hop (we are its TLS client), `cli` is
 * the intercepted client (we are its TLS server).
 */
#ifndef CATENA_CORE_TLS_H
#define CATENA_CORE_TLS_H

#include "core/attr.h"
#include "core/cfg.h"
#include "core/relay.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

struct emu;
struct staple;
struct val_store;
struct auth_realm;
struct chain;

/* What a config snapshot needs for TLS: built once, shared read-only by workers. */
struct tls_conf {
    atomic_int refs;
    WOLFSSL_CTX *srv_ctx;        /* owned: origin side, catena as client (does not verify) */
    WOLFSSL_CTX *staple_ctx;     /* owned: staple fetches (TLS 1.2, asks for stapled OCSP),
                                    or NULL when the configured suites leave none for 1.2 */
    struct val_store *trust;     /* owned: trust anchors for origins, results cache */
    struct emu **keyrings;       /* borrowed from the process-wide keyring registry */
    char **keyring_names;        /* borrowed: cfg's names, same order */
    size_t n_keyrings;
    struct auth_realm **realms;  /* owned: authentication realms (cfg->realms order) */
    struct chain *chain;         /* owned: forwarding hosts (health checks run on worker 0) */
    size_t n_realms;
    WOLFSSL_CTX **lsn_ctx;       /* owned: per cfg->listeners entry; NULL but for https */
    struct cfg *cfg;             /* ref: the snapshot it was built from */
};

/** The server context of the https listener configured as text, or NULL. */
WOLFSSL_CTX *tls_listener_ctx(const struct tls_conf *t, const char *text) CAT_NONNULL(1, 2);

/** The realm named name, or NULL. */
struct auth_realm *tls_realm(const struct tls_conf *t, const char *name) CAT_NONNULL(1, 2);

/** Process-wide: wolfSSL and the emulation leaf key. Call once at startup. */
int tls_global_init(char *err, size_t errlen) CAT_WUR;
void tls_global_fini(void);

/** Builds the TLS state of a config snapshot (loads keyrings, trust store). NULL + err. */
struct tls_conf *tls_conf_new(struct cfg *cfg, char *err, size_t errlen) CAT_WUR CAT_NONNULL(1, 2);
struct tls_conf *tls_conf_ref(struct tls_conf *t) CAT_NONNULL(1);
void tls_conf_unref(struct tls_conf *t);

/** The keyring policy names (NULL or unknown name: the default, the first). */
struct emu *tls_keyring(const struct tls_conf *t, const char *name) CAT_NONNULL(1);

/* I/O context of one TLS side: the socket plus bytes to replay first. */
struct tls_io {
    int fd;
    struct buf *replay; /* raw bytes read before TLS began (a peeked ClientHello) */
    int want;           /* EV_READ/EV_WRITE the last operation is waiting for */
    bool peer_closed;   /* the transport ended (FIN) */
    bool watch_alerts;  /* note a plaintext alert record from the peer (see tls_recv_cb) */
    int plain_alert;    /* its description code, or 0 */
    bool alert_body_next; /* the last read was such an alert's header */
    bool client_cert_requested; /* the server sent a CertificateRequest */
    /* TLS inside TLS (an origin's session through a TLS upstream proxy): the
     * bytes go through this outer session instead of the socket. */
    WOLFSSL *under;           /* borrowed: the outer session, or NULL */
    struct tls_io *under_io;  /* borrowed: its I/O context */
    /* A staple fetch (probe.c): what the server sends goes through this
     * scanner, and the session ends where the scanner found the staple or
     * its absence; those last bytes never reach wolfSSL (see staple.c). */
    struct staple *staple;    /* borrowed: the scanner, or NULL */
};

/** A new session on ctx doing its I/O through io (which must outlive it). NULL on OOM. */
WOLFSSL *tls_session_new(WOLFSSL_CTX *ctx, struct tls_io *io) CAT_WUR CAT_NONNULL(1, 2);

/*
 * Reads decrypted bytes into b / writes p. Same results as relay_read and
 * relay_write: > 0, 0 (clean close_notify or the transport's end), CAT_AGAIN
 * (io->want says for what), CAT_ERR.
 */
ssize_t tls_read(WOLFSSL *ssl, struct tls_io *io, struct buf *b) CAT_NONNULL(1, 2, 3);
ssize_t tls_write(WOLFSSL *ssl, struct tls_io *io, const uint8_t *p, size_t n) CAT_NONNULL(1, 2, 3);

/**
 * Describes the last error of ssl after a failed handshake step: the wolfSSL
 * code and string and the alert received or sent, for the event log.
 */
void tls_describe_error(WOLFSSL *ssl, int ret, char *buf, size_t cap) CAT_NONNULL(1, 3);

/** True if the peer's last alert means "I do not trust your certificate". */
bool tls_peer_rejected_cert(WOLFSSL *ssl, const struct tls_io *io) CAT_NONNULL(1, 2);

/** With a key log, keeps the handshake secrets of a server-side session for tls_keylog_tls12. */
void tls_keylog_prepare(WOLFSSL *ssl) CAT_NONNULL(1);
/** With a key log, writes the TLS 1.2 CLIENT_RANDOM line of a server-side session
 * (wolfSSL logs only client-side TLS 1.2 sessions itself). */
void tls_keylog_tls12(WOLFSSL *ssl) CAT_NONNULL(1);

#endif
