/*
 * Policy: the snapshot every tier runs (a signed bundle compiled: CPL
 * policy, categories, extra CAs, page templates) and the decisions taken
 * from it at each point of a connection. The node config keeps its hard
 * limits (client networks, CONNECT and HTTP ports: deny by default), and its
 * stand-ins apply where no policy is loaded or the policy says nothing.
 *
 * Snapshots are immutable and reference counted: a new bundle is verified,
 * compiled, then swapped in; connections keep the snapshot they started
 * with, so a swap never changes a decision half-way.
 */
#ifndef CATENA_CORE_POLICY_H
#define CATENA_CORE_POLICY_H

#include "core/attr.h"
#include "core/cfg.h"
#include "core/cpl.h"
#include "core/http.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct bdl;

/* A compiled policy snapshot. */
struct pol {
    atomic_int refs;
    struct bdl *bundle;       /* owned, or NULL: no bundle */
    struct cpl_cats *cats;    /* owned (the policy borrows it) */
    struct cpl *cpl;          /* owned, or NULL: node-config stand-ins only */
    bool needs_cert;          /* <ssl-intercept> asks about the server certificate */
    bool may_force_ssl;       /* some rule says force_protocol(ssl): first bytes are looked at */
    uint64_t version;         /* the bundle's version, 0 without a bundle */
    char digest[80];          /* "sha256:<hex>", or "none" */
};

/** The snapshot in force (a reference; never NULL: an empty one at least). */
struct pol *pol_current(void) CAT_WUR;
struct pol *pol_ref(struct pol *p) CAT_NONNULL(1);
void pol_unref(struct pol *p);

/**
 * Verifies a bundle (signature by one of cfg's bundle keys, every file's
 * sha256, a version not older than min_version) and compiles it. NULL and
 * one line in err ("policy.cpl:12:5: ...", "signature does not verify ...").
 */
struct pol *pol_from_bundle(const uint8_t *data, size_t len, const struct cfg *cfg,
                            uint64_t min_version, char *err, size_t errlen) CAT_WUR
    CAT_NONNULL(1, 3, 5);

/** Swaps p in (taking the caller's reference) and logs its digest; how: "file", "push", "pull". */
void pol_install(struct pol *p, const char *how) CAT_NONNULL(1, 2);

/**
 * Loads the configured bundle at startup or on SIGHUP: bundle.file, else the
 * stored copy of a pushed or pulled bundle (bundle.store), else no policy.
 * CAT_ERR with err when a bundle is configured but refused.
 */
int pol_load_configured(const struct cfg *cfg, struct pol **out, char *err, size_t errlen) CAT_WUR
    CAT_NONNULL(1, 2, 3);

/** Saves a bundle accepted by push or pull to bundle.store (0600, atomic rename). */
int pol_store(const struct cfg *cfg, const struct pol *p, char *err, size_t errlen) CAT_NONNULL(1, 2);

/** The admin's page template for an exception id, from the bundle (pages/<id>.html), or NULL. */
const char *pol_page(const struct pol *p, const char *exception_id, char *buf, size_t cap)
    CAT_NONNULL(1, 2, 3);

/* What the policy decided for a transaction or connection. Strings point
 * into the snapshot (the connection holds a reference). */
struct pol_out {
    enum cpl_tri allow;
    const char *deny_reason;
    bool deny_unauthorized;
    const char *realm;          /* authenticate(realm) */
    enum cpl_tri intercept;     /* ssl.forward_proxy */
    const char *keyring, *emu_hostname, *splash_text, *splash_url;
    enum cpl_tri validate;      /* server.certificate.validate */
    unsigned ignore;            /* VAL_E_* the policy ignores */
    enum cpl_tri force_ssl;     /* force_protocol(ssl) */
    const char *forward;        /* forward(name); "" = direct */
    enum cpl_inspect inspect;   /* tier.inspect(); UNSET: the node config's */
};

/** Evaluates the layers of one kind and merges what they said into o. */
void pol_eval(const struct pol *p, enum cpl_layer l, const struct cpl_txn *t, struct pol_out *o)
    CAT_NONNULL(1, 3, 4);

struct pol_verdict {
    bool allow;
    char reason[192]; /* why not, for the page and the log */
};

/** Node-config hard limits: may this client send this request (method, port)? */
void pol_check_request(const struct cfg *cfg, const struct sockaddr *cli, enum http_method m,
                       unsigned port, struct pol_verdict *v) CAT_NONNULL(1, 2, 5);

/** Should a TLS connection to host be intercepted? The policy's word, else the node config's. */
bool pol_should_intercept(const struct cfg *cfg, const struct pol_out *o, const char *host)
    CAT_NONNULL(1, 2, 3);

#endif
