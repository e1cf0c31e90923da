/*
 * Certificate emulation: issuer keyrings (a CA certificate, its key, the
 * chain up to the root), emulated leaf certificates that mimic an origin's
 * certificate, and a bounded LRU cache of them shared by all workers.
 *
 * One leaf key per process (ECDSA P-256), so a new certificate costs one
 * signature. Each emulated leaf carries a ready server WOLFSSL_CTX (set up by
 * the caller's hook) so a warm site costs no parsing either. Never logs key
 * material; keys are zeroised when freed.
 *
 * Each keyring also issues an empty CRL, for the CRL distribution point that
 * emulated leaves may name (emu_params.crl_url).
 *
 * Thread safety: emu_leaf_get() and emu_crl_get() may be called from any worker;
 * concurrent first requests for one site make one certificate (the others wait for it).
 */
#ifndef CATENA_EMULATION_EMU_H
#define CATENA_EMULATION_EMU_H

#include "core/attr.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

struct emu;      /* one loaded issuer keyring with its certificate cache */
struct emu_leaf; /* one emulated certificate: refcounted, immutable */

/* Configures a fresh server-side CTX (protocol versions, ciphers, ALPN...).
 * Returns CAT_OK; anything else fails the leaf. Called before the chain and key are loaded. */
typedef int emu_ctx_setup_fn(void *arg, WOLFSSL_CTX *ctx);

struct emu_opts {
    const char *dir;          /* keyring directory: cert.pem, key.pem, chain.pem */
    const char *name;         /* keyring name for logs */
    unsigned cache_entries;   /* LRU bound (>= 1) */
    emu_ctx_setup_fn *ctx_setup; /* may be NULL */
    void *ctx_setup_arg;
};

/** Process-wide setup: RNG and the per-process leaf key. Call once before emu_new. */
int emu_init(char *err, size_t errlen) CAT_WUR;
/** Zeroises and frees the leaf key. */
void emu_fini(void);

/** Loads a keyring (checks the key matches, the cert is a CA). NULL + err on failure. */
struct emu *emu_new(const struct emu_opts *o, char *err, size_t errlen) CAT_WUR CAT_NONNULL(1);
/** Frees the keyring (zeroising its key) and drops the cache's references. */
void emu_free(struct emu *e);

/* What an emulated certificate carries beyond the origin's names. */
struct emu_params {
    const char *hostname;    /* override: CN and the only SAN (NULL: copy the origin's) */
    const char *splash_text; /* <= 200 characters, or NULL */
    const char *splash_url;  /* or NULL */
    const char *crl_url;     /* CRL distribution point to put in the leaf, or NULL */
};

/**
 * The emulated certificate for the origin certificate (DER) with these
 * parameters: from the cache, or made now. The caller owns one reference.
 * *cached says whether it came from the cache. NULL + err on failure.
 */
struct emu_leaf *emu_leaf_get(struct emu *e, const uint8_t *origin_der, size_t origin_len,
                              const struct emu_params *p, bool *cached, char *err, size_t errlen)
    CAT_WUR CAT_NONNULL(1, 2, 4);

/** Takes another reference (atomic); returns l. */
struct emu_leaf *emu_leaf_ref(struct emu_leaf *l) CAT_NONNULL(1);
/** Drops a reference; the last one frees the CTX. NULL is ignored. */
void emu_leaf_unref(struct emu_leaf *l);

/** The server CTX holding the leaf, its key and the chain up to the root. */
WOLFSSL_CTX *emu_leaf_ctx(const struct emu_leaf *l) CAT_NONNULL(1);
/** The emulated certificate itself (DER). */
const uint8_t *emu_leaf_der(const struct emu_leaf *l, size_t *len) CAT_NONNULL(1, 2);

/** The issuer certificate, PEM and DER, for download pages. */
const char *emu_issuer_pem(const struct emu *e) CAT_NONNULL(1);
const uint8_t *emu_issuer_der(const struct emu *e, size_t *len) CAT_NONNULL(1, 2);
/** The root at the top of the keyring's chain (the issuer itself for a root), PEM. */
const char *emu_root_pem(const struct emu *e) CAT_NONNULL(1);
/** Certificate i (DER) of the chain sent with every leaf: 0 is the issuer, then chain.pem's.
 *  NULL past the end. */
const uint8_t *emu_chain_der(const struct emu *e, size_t i, size_t *len) CAT_NONNULL(1, 3);

/**
 * The keyring's CRL (DER, empty, signed by the issuer, valid up to 7 days), re-signed once half
 * its validity has passed. *der is a malloc'd copy the caller frees; *next_update (may be NULL)
 * gets its nextUpdate (Unix time), for HTTP caching. Any thread. CAT_ERR + err on failure.
 */
int emu_crl_get(struct emu *e, uint8_t **der, size_t *len, int64_t *next_update, char *err,
                size_t errlen) CAT_WUR CAT_NONNULL(1, 2, 3);

/** True if der (a certificate) was issued by this keyring's issuer (its signature verifies). */
bool emu_is_own_issue(const struct emu *e, const uint8_t *der, size_t len) CAT_NONNULL(1, 2);

struct emu_stats {
    unsigned long created;   /* certificates signed */
    unsigned long hits;      /* served from the cache */
    unsigned long waited;    /* waited for another thread's in-flight creation */
    unsigned long evicted;
    unsigned long entries;
};
/** A consistent snapshot of the cache counters. */
void emu_get_stats(struct emu *e, struct emu_stats *out) CAT_NONNULL(1, 2);

/* ---- CA management (catenactl ca) ------------------------------------- */

enum emu_key_type { EMU_KEY_EC_P256 = 0, EMU_KEY_RSA_2048 };

struct emu_ca_req {
    const char *dir;          /* output keyring directory (created 0700) */
    const char *common_name;  /* subject CN */
    const char *organization; /* subject O, or NULL */
    enum emu_key_type key_type;
    unsigned days;            /* validity */
    const char *parent_dir;   /* intermediate: the signing keyring; NULL for a root */
    int path_len;             /* basicConstraints pathLenConstraint; -1 for none */
};

/** Makes a root (parent_dir NULL) or an intermediate CA keyring. Refuses to overwrite. */
int emu_ca_create(const struct emu_ca_req *r, char *err, size_t errlen) CAT_WUR CAT_NONNULL(1);

/** Imports an existing CA: certificate, key and optional chain (PEM files) into dir. */
int emu_ca_import(const char *dir, const char *cert_pem, const char *key_pem,
                  const char *chain_pem, char *err, size_t errlen) CAT_WUR CAT_NONNULL(1, 2, 3);

#endif
