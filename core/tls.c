/*
 * TLS contexts and non-blocking TLS I/O for interception.
 *
 * catena must never weaken a connection (published studies of interception
 * products found most of them worse than a browser): its TLS client offers
 * TLS 1.3 and 1.2 only, ECDHE with AEAD suites only, X25519/P-256/P-384, no
 * SHA-1 or DSA signatures, extended master secret (wolfSSL's default), no
 * compression (not built), and never retries at a lower version. The
 * client-facing contexts (one per emulated leaf, see emulation/) get the
 * same versions and suites, and ALPN http/1.1 only.
 *
 * All I/O goes through our callbacks so that bytes peeked before the
 * handshake (the ClientHello) are replayed to wolfSSL first; see
 * ../shared/notes/wolfssl.md section 3 ("read and replay").
 */
#include "core/tls.h"

#include "chain/chain.h"
#include "core/auth.h"
#include "core/log.h"
#include "core/staple.h"
#include "core/validate.h"
#include "emulation/emu.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ev.h>

/* No SHA-1, no DSA. */
static const char tls_sigalgs[] = "ECDSA+SHA256:ECDSA+SHA384:ECDSA+SHA512:"
                                  "RSA-PSS+SHA256:RSA-PSS+SHA384:RSA-PSS+SHA512:"
                                  "RSA+SHA256:RSA+SHA384:RSA+SHA512:ED25519";

/* ---- key log (troubleshooting only) -------------------------------------- */

static int tls_keylog_fd = -1;

#ifdef HAVE_SECRET_CALLBACK
static void
tls_keylog_cb(const WOLFSSL *ssl, const char *line)
{
    if (tls_keylog_fd < 0)
        return;
    char buf[1024];
    size_t n = strlen(line);
    if (n + 1 > sizeof(buf))
        return;
    memcpy(buf, line, n);
    buf[n++] = '\n';
    /* One write per line on an O_APPEND fd: lines never interleave. */
    ssize_t w = write(tls_keylog_fd, buf, n);
    (void)w;
}
#endif

static int
tls_keylog_open(const char *path, char *err, size_t errlen)
{
    if (path == NULL)
        return CAT_OK;
#ifndef HAVE_SECRET_CALLBACK
    snprintf(err, errlen, "tls.keylog_file: this wolfSSL build has no key-log callback");
    return CAT_ERR;
#else
    if (tls_keylog_fd >= 0)
        return CAT_OK;
    /* Secrets: 0600 whatever the umask, and refuse a file others can read. */
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    struct stat st;
    if (fd == -1 || fstat(fd, &st) == -1) {
        snprintf(err, errlen, "tls.keylog_file: %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return CAT_ERR;
    }
    if ((st.st_mode & 077) != 0 && fchmod(fd, 0600) == -1) {
        snprintf(err, errlen, "tls.keylog_file: %s: cannot make it 0600", path);
        close(fd);
        return CAT_ERR;
    }
    tls_keylog_fd = fd;
    log_warn(LOG_FAC_SSL, NULL, "TLS key log enabled (%s): session secrets are being written",
             path);
    return CAT_OK;
#endif
}

void
tls_keylog_prepare(WOLFSSL *ssl)
{
    /* The handshake arrays (client random, master secret) are freed after
     * the handshake unless kept; only the key log needs them. */
    if (tls_keylog_fd >= 0)
        wolfSSL_KeepArrays(ssl);
}

void
tls_keylog_tls12(WOLFSSL *ssl)
{
#ifdef HAVE_SECRET_CALLBACK
    if (tls_keylog_fd < 0)
        return;
    unsigned char *ms, *sr, *cr;
    unsigned int msl, srl, crl;
    if (wolfSSL_version(ssl) == TLS1_2_VERSION &&
        wolfSSL_get_keys(ssl, &ms, &msl, &sr, &srl, &cr, &crl) == WOLFSSL_SUCCESS && msl == 48 &&
        crl == 32) {
        char line[13 + 1 + 64 + 1 + 96 + 1];
        size_t o = (size_t)snprintf(line, sizeof(line), "CLIENT_RANDOM ");
        for (size_t i = 0; i < crl; i++)
            o += (size_t)snprintf(line + o, sizeof(line) - o, "%02x", cr[i]);
        line[o++] = ' ';
        for (size_t i = 0; i < msl; i++)
            o += (size_t)snprintf(line + o, sizeof(line) - o, "%02x", ms[i]);
        tls_keylog_cb(ssl, line);
        memset(line, 0, sizeof(line));
    }
    wolfSSL_FreeArrays(ssl);
#else
    (void)ssl;
#endif
}

static void
tls_ctx_keylog(WOLFSSL_CTX *ctx)
{
#ifdef HAVE_SECRET_CALLBACK
    if (tls_keylog_fd >= 0)
        wolfSSL_CTX_set_keylog_callback(ctx, tls_keylog_cb);
#else
    (void)ctx;
#endif
}

/* ---- I/O callbacks ---------------------------------------------------------- */

/* Spots a plaintext alert record (type 21, length 2) in what the peer sent;
 * wolfSSL may read its 5-byte header and its body in separate calls. */
static void
tls_note_plain_alert(struct tls_io *io, const unsigned char *p, size_t n)
{
    if (io->alert_body_next) {
        io->alert_body_next = false;
        if (n >= 2)
            io->plain_alert = p[1];
        return;
    }
    if (n >= 5 && p[0] == 21 && p[1] == 3 && p[3] == 0 && p[4] == 2) {
        unsigned char body[2];
        if (n >= 7)
            io->plain_alert = p[6];
        else if (n == 5 && recv(io->fd, body, 2, MSG_PEEK | MSG_DONTWAIT) == 2)
            io->plain_alert = body[1]; /* wolfSSL gives up on the header alone */
        else if (n == 5)
            io->alert_body_next = true;
    }
}

/* The inner session's I/O over the outer one: its results in callback terms. */
static int
tls_under_result(struct tls_io *io, int ret)
{
    int e = wolfSSL_get_error(io->under, ret);
    switch (e) {
    case WOLFSSL_ERROR_WANT_READ:
        io->want = EV_READ;
        return WOLFSSL_CBIO_ERR_WANT_READ;
    case WOLFSSL_ERROR_WANT_WRITE:
        io->want = EV_WRITE;
        return WOLFSSL_CBIO_ERR_WANT_WRITE;
    case WOLFSSL_ERROR_ZERO_RETURN:
        io->peer_closed = true;
        return WOLFSSL_CBIO_ERR_CONN_CLOSE;
    default:
        if (io->under_io->peer_closed) {
            io->peer_closed = true;
            return WOLFSSL_CBIO_ERR_CONN_CLOSE;
        }
        return WOLFSSL_CBIO_ERR_GENERAL;
    }
}

/* One read from the socket, in callback terms. */
static int
tls_recv_sock(struct tls_io *io, char *p, int sz)
{
    for (;;) {
        ssize_t n = recv(io->fd, p, (size_t)sz, 0);
        /* A TLS 1.3 client that refuses our certificate before it has
         * handshake keys sends its alert as a plaintext record, which wolfSSL
         * then reports as a parse error: note the alert ourselves. */
        if (n > 0 && io->watch_alerts)
            tls_note_plain_alert(io, (const unsigned char *)p, (size_t)n);
        if (n > 0)
            return (int)n;
        if (n == 0) {
            io->peer_closed = true;
            return WOLFSSL_CBIO_ERR_CONN_CLOSE;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            io->want = EV_READ;
            return WOLFSSL_CBIO_ERR_WANT_READ;
        }
        return errno == ECONNRESET ? WOLFSSL_CBIO_ERR_CONN_RST : WOLFSSL_CBIO_ERR_GENERAL;
    }
}

/* A staple fetch's bytes through its scanner. Once the scanner knows, the
 * session ends: wolfSSL, asked for a staple, would judge it itself and fail
 * the handshake on any it cannot verify, and a fetch needs nothing more. */
static int
tls_recv_scan(struct tls_io *io, const char *p, int n)
{
    if (io->staple == NULL || n <= 0)
        return n;
    enum staple_state st = staple_feed(io->staple, p, (size_t)n);
    return st == STAPLE_FOUND || st == STAPLE_ABSENT ? WOLFSSL_CBIO_ERR_CONN_CLOSE : n;
}

static int
tls_recv_cb(WOLFSSL *ssl, char *p, int sz, void *ctx)
{
    struct tls_io *io = ctx;
    /* Replayed bytes came before anything still to read, from either transport. */
    if (io->replay != NULL && io->replay->len > 0) {
        size_t n = CAT_MIN((size_t)sz, io->replay->len);
        memcpy(p, buf_data(io->replay), n);
        buf_consume(io->replay, n);
        return (int)n;
    }
    int n;
    if (io->under != NULL) {
        n = wolfSSL_read(io->under, p, sz);
        n = n > 0 ? n : tls_under_result(io, n);
    } else {
        n = tls_recv_sock(io, p, sz);
    }
    return tls_recv_scan(io, p, n);
}

static int
tls_send_cb(WOLFSSL *ssl, char *p, int sz, void *ctx)
{
    struct tls_io *io = ctx;
    if (io->under != NULL) {
        int n = wolfSSL_write(io->under, p, sz);
        return n > 0 ? n : tls_under_result(io, n);
    }
    for (;;) {
        ssize_t n = send(io->fd, p, (size_t)sz, MSG_NOSIGNAL);
        if (n >= 0)
            return (int)n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            io->want = EV_WRITE;
            return WOLFSSL_CBIO_ERR_WANT_WRITE;
        }
        return errno == ECONNRESET || errno == EPIPE ? WOLFSSL_CBIO_ERR_CONN_RST
                                                     : WOLFSSL_CBIO_ERR_GENERAL;
    }
}

WOLFSSL *
tls_session_new(WOLFSSL_CTX *ctx, struct tls_io *io)
{
    WOLFSSL *ssl = wolfSSL_new(ctx);
    if (ssl == NULL)
        return NULL;
    wolfSSL_SSLSetIORecv(ssl, tls_recv_cb);
    wolfSSL_SSLSetIOSend(ssl, tls_send_cb);
    wolfSSL_SetIOReadCtx(ssl, io);
    wolfSSL_SetIOWriteCtx(ssl, io);
    return ssl;
}

/* Maps a failed wolfSSL call to our results, noting what it waits for. */
static ssize_t
tls_result(WOLFSSL *ssl, struct tls_io *io, int ret)
{
    int e = wolfSSL_get_error(ssl, ret);
    switch (e) {
    case WOLFSSL_ERROR_WANT_READ:
        io->want = EV_READ;
        return CAT_AGAIN;
    case WOLFSSL_ERROR_WANT_WRITE:
        io->want = EV_WRITE;
        return CAT_AGAIN;
    case WOLFSSL_ERROR_ZERO_RETURN:
        return 0; /* close_notify */
    default:
        /* The transport ended without close_notify: an EOF to the relay,
         * which decides whether the message was complete. */
        if (io->peer_closed)
            return 0;
        return CAT_ERR;
    }
}

ssize_t
tls_read(WOLFSSL *ssl, struct tls_io *io, struct buf *b)
{
    size_t room = buf_room(b);
    if (room == 0)
        return CAT_AGAIN;
    io->want = 0;
    int n = wolfSSL_read(ssl, b->base + b->head + b->len, (int)CAT_MIN(room, (size_t)1 << 30));
    if (n > 0) {
        b->len += (size_t)n;
        return n;
    }
    return tls_result(ssl, io, n);
}

ssize_t
tls_write(WOLFSSL *ssl, struct tls_io *io, const uint8_t *p, size_t n)
{
    io->want = 0;
    int w = wolfSSL_write(ssl, p, (int)CAT_MIN(n, (size_t)1 << 30));
    if (w > 0)
        return w;
    ssize_t r = tls_result(ssl, io, w);
    return r == 0 ? CAT_ERR : r; /* a write cannot meet an EOF */
}

void
tls_describe_error(WOLFSSL *ssl, int ret, char *buf, size_t cap)
{
    int e = wolfSSL_get_error(ssl, ret);
    char es[WOLFSSL_MAX_ERROR_SZ];
    wolfSSL_ERR_error_string_n((unsigned long)e, es, sizeof(es));
    WOLFSSL_ALERT_HISTORY h;
    memset(&h, 0, sizeof(h));
    wolfSSL_get_alert_history(ssl, &h);
    const char *rx = h.last_rx.code > 0 ? wolfSSL_alert_desc_string_long(h.last_rx.code) : NULL;
    const char *tx = h.last_tx.code > 0 ? wolfSSL_alert_desc_string_long(h.last_tx.code) : NULL;
    snprintf(buf, cap, "error %d (%s)%s%s%s%s", e, es, rx ? ", alert received: " : "",
             rx ? rx : "", tx ? ", alert sent: " : "", tx ? tx : "");
}

bool
tls_peer_rejected_cert(WOLFSSL *ssl, const struct tls_io *io)
{
    WOLFSSL_ALERT_HISTORY h;
    memset(&h, 0, sizeof(h));
    int code = io->plain_alert;
    if (code == 0 && wolfSSL_get_alert_history(ssl, &h) == WOLFSSL_SUCCESS)
        code = h.last_rx.code;
    switch (code) {
    case unknown_ca:
    case bad_certificate:
    case certificate_unknown:
    case unsupported_certificate:
    case access_denied:
        return true;
    default:
        return false;
    }
}

/* ---- contexts ----------------------------------------------------------------- */

/* Versions and suites of one side; CAT_ERR names the bad setting. */
static int
tls_ctx_common(WOLFSSL_CTX *ctx, enum cfg_tls_version min, const char *ciphers)
{
    int v = min == CFG_TLS_1_3 ? WOLFSSL_TLSV1_3 : WOLFSSL_TLSV1_2;
    if (wolfSSL_CTX_SetMinVersion(ctx, v) != WOLFSSL_SUCCESS)
        return CAT_ERR;
    if (wolfSSL_CTX_set_cipher_list(ctx, ciphers) != WOLFSSL_SUCCESS)
        return CAT_ERR;
    /* Partial writes: wolfSSL_write returns what it sent, like send(2). */
    wolfSSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
    tls_ctx_keylog(ctx);
    return CAT_OK;
}

/* ALPN towards the client: HTTP/1.1 only, the protocol our relay speaks. */
static int
tls_alpn_select_cb(WOLFSSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    for (unsigned i = 0; i < inlen;) {
        unsigned l = in[i];
        if (i + 1 + l > inlen)
            break;
        if (l == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
            *out = in + i + 1;
            *outlen = 8;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + l;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/* emu_ctx_setup_fn: every emulated leaf's server context. A keyring's
 * leaves outlive reloads (cached), so they take the settings of the config
 * that loaded the keyring: tls.client_* changes apply to new keyrings. */
static int
tls_leaf_ctx_setup(void *arg, WOLFSSL_CTX *ctx)
{
    const struct cfg_tls *t = arg;
    if (tls_ctx_common(ctx, t->client_min_version, t->client_ciphers) != CAT_OK)
        return CAT_ERR;
    wolfSSL_CTX_set_alpn_select_cb(ctx, tls_alpn_select_cb, NULL);
    return CAT_OK;
}

/* The origin asks for a client certificate: we have none to give, and such
 * a site cannot be intercepted. Note it; answer with no certificate. */
static int
tls_client_cert_cb(WOLFSSL *ssl, WOLFSSL_X509 **x509, WOLFSSL_EVP_PKEY **pkey)
{
    struct tls_io *io = wolfSSL_GetIOReadCtx(ssl);
    if (io != NULL)
        io->client_cert_requested = true;
    return 0;
}

/*
 * An https listener's context: the proxy's own certificate and key, with
 * the client side's versions and suites. A key others may read is used but
 * named in the log: it is the proxy's identity on the WAN.
 */
static WOLFSSL_CTX *
tls_lsn_ctx_new(const struct cfg *cfg, const struct cfg_listener *l, char *err, size_t errlen)
{
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_server_method());
    if (ctx == NULL || tls_leaf_ctx_setup((void *)&cfg->tls, ctx) != CAT_OK) {
        snprintf(err, errlen, "listener %s: cannot make its TLS context", l->text);
        goto fail;
    }
    if (wolfSSL_CTX_use_certificate_chain_file(ctx, l->cert_file) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "listener %s: cannot load the certificate chain %s", l->text,
                 l->cert_file);
        goto fail;
    }
    if (wolfSSL_CTX_use_PrivateKey_file(ctx, l->key_file, WOLFSSL_FILETYPE_PEM) !=
        WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "listener %s: cannot load the private key %s", l->text,
                 l->key_file);
        goto fail;
    }
    if (wolfSSL_CTX_check_private_key(ctx) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "listener %s: the key %s does not match the certificate %s",
                 l->text, l->key_file, l->cert_file);
        goto fail;
    }
    struct stat st;
    if (stat(l->key_file, &st) == 0 && (st.st_mode & 077) != 0)
        log_warn(LOG_FAC_SSL, NULL, "listener %s: key file %s is readable by others (mode %03o)",
                 l->text, l->key_file, (unsigned)(st.st_mode & 0777));
    return ctx;
fail:
    if (ctx != NULL)
        wolfSSL_CTX_free(ctx);
    return NULL;
}

static WOLFSSL_CTX *
tls_srv_ctx_new(const struct cfg *cfg, char *err, size_t errlen)
{
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_client_method());
    if (ctx == NULL ||
        tls_ctx_common(ctx, cfg->tls.server_min_version, cfg->tls.server_ciphers) != CAT_OK) {
        snprintf(err, errlen, "tls.server_ciphers: no usable cipher suite in \"%s\"",
                 cfg->tls.server_ciphers);
        goto fail;
    }
    int groups[] = {WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP256R1, WOLFSSL_ECC_SECP384R1};
    if (wolfSSL_CTX_set_groups(ctx, groups, (int)CAT_ARRAY_LEN(groups)) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "cannot set the TLS key exchange groups");
        goto fail;
    }
    if (wolfSSL_CTX_set1_sigalgs_list(ctx, tls_sigalgs) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "cannot set the TLS signature algorithms");
        goto fail;
    }
    /* The handshake never fails for certificate reasons: catena validates
     * the chain itself afterwards (validate.c) and decides: tunnel,
     * intercept, or an exception page. */
    wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
    wolfSSL_CTX_set_client_cert_cb(ctx, tls_client_cert_cb);
    return ctx;
fail:
    if (ctx != NULL)
        wolfSSL_CTX_free(ctx);
    return NULL;
}

/* True if a wolfSSL suite list names a suite that is not TLS 1.3's own
 * ("TLS13-..." or the IANA "TLS_..."): wolfSSL takes a list without one on a
 * TLS 1.2 context, and then every handshake would fail. */
static bool
tls_has_tls12_suite(const char *list)
{
    for (const char *p = list; *p != '\0';) {
        size_t n = strcspn(p, ":");
        if (n > 0 && strncmp(p, "TLS13-", 6) != 0 && strncmp(p, "TLS_", 4) != 0)
            return true;
        p += n + (p[n] == ':');
    }
    return false;
}

/*
 * The context of staple fetches (staple.c says why they exist): TLS 1.2 only,
 * since a TLS 1.3 server's staple is encrypted; the cert manager's stapling
 * is what makes wolfSSL send status_request at all. Its handshakes never get
 * past the server's first flight, so nothing is verified and nothing can be
 * weakened: same suites, groups and signature algorithms as the origin side.
 * NULL (no fetches, said once) when the configured suites have none for 1.2.
 */
static WOLFSSL_CTX *
tls_staple_ctx_new(const struct cfg *cfg)
{
    if (!tls_has_tls12_suite(cfg->tls.server_ciphers)) {
        log_info(LOG_FAC_SSL, NULL, "tls.server_ciphers has no TLS 1.2 suite: stapled OCSP "
                 "responses are not fetched");
        return NULL;
    }
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfTLSv1_2_client_method());
    if (ctx == NULL)
        return NULL;
    /* set_groups refuses a TLS 1.2-only context (wolfssl.md section 4). */
    static const word16 curves[] = {WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP256R1,
                                    WOLFSSL_ECC_SECP384R1};
    bool ok = wolfSSL_CTX_set_cipher_list(ctx, cfg->tls.server_ciphers) == WOLFSSL_SUCCESS &&
              wolfSSL_CTX_set1_sigalgs_list(ctx, tls_sigalgs) == WOLFSSL_SUCCESS &&
              wolfSSL_CTX_EnableOCSPStapling(ctx) == WOLFSSL_SUCCESS &&
              wolfSSL_CTX_UseOCSPStapling(ctx, WOLFSSL_CSR_OCSP, 0) == WOLFSSL_SUCCESS;
    for (size_t i = 0; ok && i < CAT_ARRAY_LEN(curves); i++)
        ok = wolfSSL_CTX_UseSupportedCurve(ctx, curves[i]) == WOLFSSL_SUCCESS;
    if (!ok) {
        log_warn(LOG_FAC_SSL, NULL, "cannot make the TLS 1.2 context of staple fetches: stapled "
                 "OCSP responses are not fetched");
        wolfSSL_CTX_free(ctx);
        return NULL;
    }
    wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
    return ctx;
}

/* ---- keyrings: loaded once per directory, shared by snapshots ------------- */

struct tls_keyring {
    char *dir;            /* owned */
    struct emu *emu;      /* owned */
    struct cfg_tls leaf;  /* client-side settings its leaves' contexts get (ciphers owned) */
    struct tls_keyring *next;
};

static pthread_mutex_t tls_keyrings_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct tls_keyring *tls_keyrings;

static void
tls_keyring_free(struct tls_keyring *r)
{
    if (r == NULL)
        return;
    emu_free(r->emu);
    free(r->dir);
    free(r->leaf.client_ciphers);
    free(r);
}

/* The keyring of a directory, loaded on first use. Kept until exit: a reload
 * that names the same directory keeps its certificate cache warm. */
static struct emu *
tls_keyring_load(const struct cfg *cfg, const struct cfg_keyring *k, char *err, size_t errlen)
{
    pthread_mutex_lock(&tls_keyrings_mtx);
    struct tls_keyring *r;
    for (r = tls_keyrings; r != NULL; r = r->next)
        if (strcmp(r->dir, k->dir) == 0)
            break;
    if (r == NULL && (r = calloc(1, sizeof(*r))) != NULL) {
        r->leaf.client_min_version = cfg->tls.client_min_version;
        r->leaf.client_ciphers = strdup(cfg->tls.client_ciphers);
        r->dir = strdup(k->dir);
        struct emu_opts o = {
            .dir = k->dir,
            .name = k->name,
            .cache_entries = cfg->tls.cert_cache_entries,
            .ctx_setup = tls_leaf_ctx_setup,
            .ctx_setup_arg = &r->leaf,
        };
        if (r->dir != NULL && r->leaf.client_ciphers != NULL &&
            (r->emu = emu_new(&o, err, errlen)) != NULL) {
            r->next = tls_keyrings;
            tls_keyrings = r;
            log_info(LOG_FAC_SSL, NULL, "keyring %s loaded from %s", k->name, k->dir);
        } else {
            if (r->dir == NULL || r->leaf.client_ciphers == NULL)
                snprintf(err, errlen, "out of memory"); /* else emu_new said why */
            tls_keyring_free(r);
            r = NULL;
        }
    } else if (r == NULL) {
        snprintf(err, errlen, "out of memory");
    }
    pthread_mutex_unlock(&tls_keyrings_mtx);
    return r != NULL ? r->emu : NULL;
}

int
tls_global_init(char *err, size_t errlen)
{
    if (wolfSSL_Init() != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "wolfSSL_Init failed");
        return CAT_ERR;
    }
    return emu_init(err, errlen);
}

void
tls_global_fini(void)
{
    pthread_mutex_lock(&tls_keyrings_mtx);
    while (tls_keyrings != NULL) {
        struct tls_keyring *r = tls_keyrings;
        tls_keyrings = r->next;
        tls_keyring_free(r);
    }
    pthread_mutex_unlock(&tls_keyrings_mtx);
    emu_fini();
    if (tls_keylog_fd >= 0)
        close(tls_keylog_fd);
    tls_keylog_fd = -1;
    wolfSSL_Cleanup();
}

struct tls_conf *
tls_conf_new(struct cfg *cfg, char *err, size_t errlen)
{
    struct tls_conf *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&t->refs, 1);
    t->cfg = cfg_ref(cfg);
    if (tls_keylog_open(cfg->tls.keylog_file, err, errlen) != CAT_OK)
        goto fail;
    t->srv_ctx = tls_srv_ctx_new(cfg, err, errlen);
    if (t->srv_ctx == NULL)
        goto fail;
    t->staple_ctx = tls_staple_ctx_new(cfg);
    const char *files[1] = {cfg->tls.ca_file};
    struct val_store_opts vo = {
        .use_system = cfg->tls.use_system_cas,
        .files = files,
        .n_files = cfg->tls.ca_file != NULL ? 1 : 0,
        .cache_entries = cfg->validation.cache_entries,
    };
    char verr[300];
    t->trust = val_store_new(&vo, verr, sizeof(verr));
    if (t->trust == NULL) {
        snprintf(err, errlen, "trust store: %s", verr);
        goto fail;
    }
    t->chain = chain_new(cfg, &vo, verr, sizeof(verr));
    if (t->chain == NULL) {
        snprintf(err, errlen, "%s", verr);
        goto fail;
    }
    struct val_stats vs;
    val_store_stats(t->trust, &vs);
    if (vs.anchors == 0)
        log_warn(LOG_FAC_SSL, NULL, "no trusted CA for origins: every certificate is untrusted");
    /* Refuse a client-side setting now rather than at the first interception. */
    WOLFSSL_CTX *probe = wolfSSL_CTX_new(wolfSSLv23_server_method());
    int ok = probe != NULL && tls_leaf_ctx_setup(&cfg->tls, probe) == CAT_OK;
    if (probe != NULL)
        wolfSSL_CTX_free(probe);
    if (!ok) {
        snprintf(err, errlen, "tls.client_ciphers: no usable cipher suite in \"%s\"",
                 cfg->tls.client_ciphers);
        goto fail;
    }
    t->lsn_ctx = calloc(cfg->n_listeners + 1, sizeof(*t->lsn_ctx));
    if (t->lsn_ctx == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < cfg->n_listeners; i++)
        if (cfg->listeners[i].type == CFG_LSN_HTTPS &&
            (t->lsn_ctx[i] = tls_lsn_ctx_new(cfg, &cfg->listeners[i], err, errlen)) == NULL)
            goto fail;
    t->realms = calloc(cfg->n_realms + 1, sizeof(*t->realms));
    if (t->realms == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < cfg->n_realms; i++) {
        char aerr[300];
        t->realms[i] = auth_realm_load(cfg->realms[i].name, "local", cfg->realms[i].users_file,
                                       aerr, sizeof(aerr));
        if (t->realms[i] == NULL) {
            snprintf(err, errlen, "realm %s: %s", cfg->realms[i].name, aerr);
            goto fail;
        }
        t->n_realms++;
    }
    /* Keyrings must load when something may be intercepted; otherwise they
     * are loaded if present, for the CA download pages only. */
    bool needed = cfg->tls.intercept != CFG_INTERCEPT_NONE;
    t->keyrings = calloc(cfg->tls.n_keyrings + 1, sizeof(*t->keyrings));
    t->keyring_names = calloc(cfg->tls.n_keyrings + 1, sizeof(*t->keyring_names));
    if (t->keyrings == NULL || t->keyring_names == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < cfg->tls.n_keyrings; i++) {
        const struct cfg_keyring *k = &cfg->tls.keyrings[i];
        if (!needed && access(k->dir, F_OK) != 0)
            continue;
        char kerr[400];
        struct emu *e = tls_keyring_load(cfg, k, kerr, sizeof(kerr));
        if (e == NULL && needed) {
            snprintf(err, errlen, "keyring %s: %s (make one with: catenactl ca init --dir %s)",
                     k->name, kerr, k->dir);
            goto fail;
        }
        if (e == NULL) {
            log_warn(LOG_FAC_SSL, NULL, "keyring %s: %s", k->name, kerr);
            continue;
        }
        t->keyrings[t->n_keyrings] = e;
        t->keyring_names[t->n_keyrings] = k->name;
        t->n_keyrings++;
    }
    return t;
fail:
    tls_conf_unref(t);
    return NULL;
}

WOLFSSL_CTX *
tls_listener_ctx(const struct tls_conf *t, const char *text)
{
    for (size_t i = 0; i < t->cfg->n_listeners; i++)
        if (t->lsn_ctx[i] != NULL && strcmp(t->cfg->listeners[i].text, text) == 0)
            return t->lsn_ctx[i];
    return NULL;
}

struct tls_conf *
tls_conf_ref(struct tls_conf *t)
{
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
    return t;
}

void
tls_conf_unref(struct tls_conf *t)
{
    if (t == NULL || atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (t->srv_ctx != NULL)
        wolfSSL_CTX_free(t->srv_ctx);
    if (t->staple_ctx != NULL)
        wolfSSL_CTX_free(t->staple_ctx);
    val_store_free(t->trust);
    chain_free(t->chain);
    for (size_t i = 0; i < t->n_realms; i++)
        auth_realm_free(t->realms[i]);
    free(t->realms);
    for (size_t i = 0; t->lsn_ctx != NULL && i < t->cfg->n_listeners; i++)
        if (t->lsn_ctx[i] != NULL)
            wolfSSL_CTX_free(t->lsn_ctx[i]);
    free(t->lsn_ctx);
    free(t->keyrings);
    free(t->keyring_names);
    cfg_unref(t->cfg);
    free(t);
}

struct emu *
tls_keyring(const struct tls_conf *t, const char *name)
{
    if (t->n_keyrings == 0)
        return NULL;
    for (size_t i = 0; name != NULL && i < t->n_keyrings; i++)
        if (strcmp(t->keyring_names[i], name) == 0)
            return t->keyrings[i];
    return t->keyrings[0];
}

struct auth_realm *
tls_realm(const struct tls_conf *t, const char *name)
{
    for (size_t i = 0; i < t->n_realms; i++)
        if (strcmp(auth_realm_name(t->realms[i]), name) == 0)
            return t->realms[i];
    return NULL;
}
