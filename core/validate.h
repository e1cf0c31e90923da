/*
 * Server-certificate validation: a trust store built once per config
 * snapshot, and a check of the chain an origin sent that reports every
 * error observed (not the first), as a browser would judge it. The TLS
 * handshake towards the origin never fails for certificate reasons; the
 * caller collects the chain, calls val_check() (and val_check_hostname()
 * where the name is known) and decides: tunnel, intercept or exception page.
 *
 * Results of val_check() are cached in the store (bounded LRU, shared by
 * workers) keyed by SHA-256 over the chain as sent; the hostname check and
 * revocation are never cached here.
 */
#ifndef CATENA_CORE_VALIDATE_H
#define CATENA_CORE_VALIDATE_H

#include "core/attr.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define VAL_SYSTEM_CAS "/etc/ssl/certs/ca-certificates.crt"

/*
 * Errors, a bitmask. The bits and their names (val_errors_str) are stable:
 * the names appear in logs, in policy (server.certificate.validate.ignore.*)
 * and in exception ids.
 */
#define VAL_E_UNTRUSTED (1u << 0)            /* untrusted_issuer: no path to a trust anchor */
#define VAL_E_MISSING_INTERMEDIATE (1u << 1) /* missing_intermediate: always with UNTRUSTED */
#define VAL_E_EXPIRED (1u << 2)              /* expired */
#define VAL_E_NOT_YET_VALID (1u << 3)        /* not_yet_valid */
#define VAL_E_WEAK_KEY (1u << 4)             /* weak_key: RSA < 2048, EC < 256 bits */
#define VAL_E_WEAK_SIGNATURE (1u << 5)       /* weak_signature: MD2/MD5/SHA-1 */
#define VAL_E_BAD_CA (1u << 6)               /* bad_ca: issuer not allowed to issue */
#define VAL_E_BAD_EKU (1u << 7)              /* bad_eku: not for TLS servers */
#define VAL_E_HOSTNAME (1u << 8)             /* hostname_mismatch: set by the caller */
#define VAL_E_REVOKED (1u << 9)              /* revoked: set by the revocation module */
#define VAL_E_REVOCATION_UNKNOWN (1u << 10)  /* revocation_unknown: no source answered (hard fail) */
#define VAL_E_PROTOCOL (1u << 11)            /* protocol_insecure: the origin's TLS is too old */
#define VAL_E_ALL ((1u << 12) - 1)

/*
 * Semantics (browser-like; the details are at val_path_errors in validate.c):
 * - Sent certificates never become trusted: they only link the leaf to a
 *   store anchor by verified signatures (names, key ids). Of several paths
 *   the one with the fewest errors wins (a stale cross-sign never hides a
 *   good path); the errors reported are that path's, all of them.
 * - UNTRUSTED: no anchored path (unknown or self-signed root, bad signature,
 *   unrecognised critical extension). MISSING_INTERMEDIATE refines it and
 *   always comes with it: the last certificate reached names an http://
 *   caIssuers URL (aia_url) and nothing sent or trusted bore its issuer's name.
 * - The anchor is a name and a key (RFC 5280 6.1): its dates, key size and
 *   self-signature are not judged; an explicit CA:FALSE, a keyUsage without
 *   keyCertSign or a pathLen the path exceeds still make it BAD_CA. The
 *   leaf's dates and key always count, even when the leaf is the anchor.
 * - BAD_CA: an intermediate without basicConstraints CA:TRUE, with a
 *   keyUsage lacking keyCertSign, or below a pathLen it exceeds.
 * - BAD_EKU: a leaf EKU without serverAuth (anyExtendedKeyUsage alone is not
 *   enough: mozilla::pkix ignores it too), or an intermediate EKU with
 *   neither serverAuth nor anyExtendedKeyUsage.
 * - Not checked: name constraints, certificate policies.
 */

#define VAL_MAX_CERTS 16 /* certificates of a sent chain that are looked at */
#define VAL_MAX_PATH 8   /* leaf ... anchor */
#define VAL_URL_MAX 256  /* longer URLs are not reported */

struct val_store;

struct val_store_opts {
    bool use_system;          /* load the system bundle (missing: not an error) */
    const char *system_file;  /* NULL: VAL_SYSTEM_CAS */
    const char *const *files; /* extra PEM files: each must hold a usable certificate */
    size_t n_files;
    const char *const *pems; /* in-memory PEM blobs (e.g. the bundle's CA files) */
    const size_t *pem_lens;
    size_t n_pems;
    size_t cache_entries; /* results cache bound (per store: a reload starts empty); 0: none */
    unsigned cache_ttl;   /* seconds; 0: 3600 */
};

/**
 * Builds a trust store (read-only afterwards, shared by workers). Anchors are
 * every certificate found; duplicates are dropped. NULL + err on failure.
 */
struct val_store *val_store_new(const struct val_store_opts *o, char *err, size_t errlen) CAT_WUR
    CAT_NONNULL(1, 2);
void val_store_free(struct val_store *s);

struct val_stats {
    size_t anchors;       /* trust anchors loaded */
    size_t skipped;       /* certificates in the sources that could not be used */
    size_t cache_entries; /* results cached now */
    uint64_t cache_hits, cache_misses;
};

/** Counters of the store and its cache. */
void val_store_stats(const struct val_store *s, struct val_stats *st) CAT_NONNULL(1, 2);

/* One certificate of the path. */
struct val_path_cert {
    const uint8_t *der; /* borrowed: ders[idx], or the store's copy of an anchor */
    size_t len;
    int idx; /* index into ders[], or -1 for the store's anchor (even if it was sent too) */
};

/*
 * The verdict on a chain. Text fields are UNTRUSTED: they come from the
 * certificate. Control characters and invalid UTF-8 are replaced by '?', but
 * markup is not escaped: HTML-escape them before they reach a page.
 */
struct val_result {
    unsigned errors;     /* VAL_E_*; never HOSTNAME or REVOKED */
    bool anchored;       /* the path ends at a trust anchor */
    bool leaf_malformed; /* the leaf could not be parsed: errors = UNTRUSTED */
    bool cached;         /* served from the results cache */
    size_t path_len;     /* certificates in path[], leaf first (anchor included) */
    struct val_path_cert path[VAL_MAX_PATH];
    /* The leaf's issuer, for revocation: path[1] (NULL/-1 when the path is the leaf alone). */
    const uint8_t *issuer_der;
    size_t issuer_len;
    int issuer_idx;
    /* The leaf. */
    uint8_t leaf_sha256[32];
    time_t not_before, not_after;
    char subject_cn[128];       /* UNTRUSTED; "" if none */
    char issuer_dn[384];        /* UNTRUSTED; "/CN=R3/O=Let's Encrypt/C=US" */
    char dns_name[256];         /* first DNS subjectAltName; "" if none */
    char ocsp_url[VAL_URL_MAX]; /* first http:// OCSP responder; "" if none */
    char crl_url[VAL_URL_MAX];  /* first http:// CRL distribution point; "" if none */
    char aia_url[VAL_URL_MAX];  /* with MISSING_INTERMEDIATE: where to fetch the issuer */
};

/**
 * Checks a chain as sent: ders[0] is the leaf, the others untrusted
 * intermediates in any order (extra and missing ones allowed). To retry
 * after fetching out->aia_url, call again with the fetched certificate
 * appended to the same arrays. Every error observed on the best path is
 * reported in out->errors. CAT_OK (out filled, even with errors), or CAT_ERR
 * for n == 0 or out of memory. Pointers in out live as long as ders and s.
 */
int val_check(const struct val_store *s, const uint8_t *const *ders, const size_t *lens, size_t n,
              time_t now, struct val_result *out) CAT_WUR CAT_NONNULL(1, 2, 3, 6);

/**
 * Browser hostname rules against the leaf's subjectAltNames only (no CN
 * fallback; one-label wildcards; IPs, bare or in [], against iPAddress
 * entries). host is ASCII (IDNs as A-labels). CAT_OK on a match,
 * CAT_DECLINED on none, CAT_ERR if the leaf cannot be parsed.
 */
int val_check_hostname(const uint8_t *leaf, size_t len, const char *host) CAT_WUR CAT_NONNULL(1, 3);

/**
 * Writes the names of the bits in errors, space-separated, in bit order
 * ("untrusted_issuer expired"), "" for none. Names that do not fit are
 * dropped whole. Returns buf.
 */
const char *val_errors_str(unsigned errors, char *buf, size_t cap) CAT_NONNULL(2);

/** The bit of one error name (len bytes, no NUL needed); 0 if unknown. */
unsigned val_error_bit(const char *name, size_t len) CAT_NONNULL(1);

/** Bits of a policy name: an error name, or a group ("untrusted_issuer" with
 * missing_intermediate, "expiration", "revocation", "all"); 0 if unknown. */
unsigned val_policy_bits(const char *name, size_t len) CAT_NONNULL(1);

#endif
