/*
 * Internals of revocation checking, shared by revoke.c (the asynchronous
 * driver), rev_x509.c (DER, certificate fields, signatures), rev_ocsp.c,
 * rev_crl.c, rev_cache.c and their unit test and fuzz target. Everything
 * here is synchronous and takes the time as a parameter, so tests need no
 * loop and no clock. Never included from outside core/revoke*, core/rev_*.
 */
#ifndef CATENA_CORE_REV_INT_H
#define CATENA_CORE_REV_INT_H

#include "core/revoke.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REV_SKEW_S 300            /* clock skew tolerated on every date we compare */
#define REV_MAX_LIFE_S 86400      /* a cached good/revoked answer lives at most a day */
#define REV_MIN_LIFE_S 300        /* ... and this long when the source gives no nextUpdate */
#define REV_FAIL_LIFE_S 30        /* a source that failed is not asked again this long */
#define REV_NO_NEXT_MAX_AGE 86400 /* an OCSP answer without nextUpdate is stale after this */
#define REV_MAX_SERIAL 64         /* RFC 5280 allows 20 octets; some CAs use a few more */
#define REV_MAX_URLS 4            /* URLs of each kind taken from a certificate */

/* A view into bytes someone else owns. */
struct rev_span {
    const uint8_t *p;
    size_t len;
};

/* ---- DER (rev_x509.c) ------------------------------------------------------ */

/*
 * Reads one TLV from the front of rd and advances rd past it. val is the
 * contents, whole the entire TLV (may be NULL). Indefinite lengths, multi-byte
 * tags and anything that would leave rd are refused (CAT_ERR, rd unchanged).
 */
int rev_der_next(struct rev_span *rd, uint8_t *tag, struct rev_span *val,
                 struct rev_span *whole) CAT_WUR CAT_NONNULL(1, 2, 3);
/** Same, but the tag must be `tag` (else CAT_ERR, rd unchanged). */
int rev_der_get(struct rev_span *rd, uint8_t tag, struct rev_span *val,
                struct rev_span *whole) CAT_WUR CAT_NONNULL(1, 3);
/** True if rd is not empty and starts with tag. */
bool rev_der_peek(const struct rev_span *rd, uint8_t tag) CAT_NONNULL(1);
/** UTCTime (0x17) or GeneralizedTime (0x18) to seconds since the epoch, UTC. */
int rev_der_time(uint8_t tag, struct rev_span v, int64_t *t) CAT_WUR CAT_NONNULL(3);
/** True if the span holds exactly these bytes. */
bool rev_span_eq(struct rev_span a, const void *p, size_t len);
/** "2026-11-30 07:44:43Z". */
void rev_time_str(int64_t t, char out[32]) CAT_NONNULL(2);

/* ---- certificates: the fields revocation needs (rev_x509.c) ------------------- */

struct rev_cert {
    struct rev_span der;     /* the whole certificate */
    struct rev_span tbs;     /* TBSCertificate TLV: the signed bytes */
    struct rev_span sig_alg; /* outer AlgorithmIdentifier TLV */
    struct rev_span sig;     /* signature, without the unused-bits octet */
    struct rev_span serial;  /* INTEGER contents */
    struct rev_span issuer;  /* Name TLV */
    struct rev_span subject; /* Name TLV */
    struct rev_span spki;    /* SubjectPublicKeyInfo TLV */
    struct rev_span key;     /* subjectPublicKey, without the unused-bits octet */
    int64_t not_before, not_after;
    struct rev_span aia;    /* authorityInfoAccess extnValue contents, or empty */
    struct rev_span crldp;  /* cRLDistributionPoints extnValue contents, or empty */
    bool has_eku, eku_ocsp; /* extendedKeyUsage present / lists id-kp-OCSPSigning */
    bool has_ku;            /* keyUsage present; ku holds its first two octets */
    unsigned ku;            /* bit 0x80 digitalSignature ... 0x02 cRLSign (first octet) */
    bool is_ca;             /* basicConstraints cA */
    bool unknown_critical;  /* a critical extension we do not process */
};

#define REV_KU_DIGSIG 0x80u
#define REV_KU_CRLSIGN 0x02u

/** Splits a DER certificate (views into der). CAT_ERR with *err (static) if malformed. */
int rev_cert_parse(const uint8_t *der, size_t len, struct rev_cert *c, const char **err) CAT_WUR
    CAT_NONNULL(1, 3, 4);

/* URLs of one kind from a certificate: http:// ones in order, the others counted. */
struct rev_urls {
    size_t n;
    struct rev_span url[REV_MAX_URLS];
    size_t other; /* ldap://, https://, ... skipped */
};
void rev_cert_ocsp_urls(const struct rev_cert *c, struct rev_urls *out) CAT_NONNULL(1, 2);
void rev_cert_crl_urls(const struct rev_cert *c, struct rev_urls *out) CAT_NONNULL(1, 2);

/**
 * Verifies sig over data with the key of spki under the AlgorithmIdentifier TLV alg:
 * RSA PKCS#1 v1.5 and PSS (SHA-1/224/256/384/512, keys >= 2048 bits), ECDSA, Ed25519.
 * MD5 and anything else is refused. CAT_ERR with *err (static).
 */
int rev_sig_verify(struct rev_span alg, struct rev_span data, struct rev_span sig,
                   struct rev_span spki, const char **err) CAT_WUR CAT_NONNULL(5);

/** Verifies that c was signed by issuer and names it as issuer. CAT_ERR with *err. */
int rev_cert_signed_by(const struct rev_cert *c, const struct rev_cert *issuer,
                       const char **err) CAT_WUR CAT_NONNULL(1, 2, 3);

/* ---- verdicts ------------------------------------------------------------------ */

struct rev_verdict {
    enum rev_status status; /* REV_UNKNOWN: the source does not know this certificate */
    int64_t this_update;
    int64_t next_update; /* 0: none given */
    int64_t revoked_at;  /* REV_REVOKED */
    int reason;          /* CRLReason, -1 if none given */
    char why[160];       /* on CAT_ERR */
};

/** "keyCompromise", ... for a CRLReason, "unspecified" for 0, "?" if out of range. */
const char *rev_reason_str(int reason);

/* ---- OCSP (rev_ocsp.c) ---------------------------------------------------------- */

/**
 * Writes a DER OCSPRequest for cert (SHA-1 CertID, no nonce: RFC 5019 lightweight
 * profile, so responders and caches may serve a prepared answer). Returns its length,
 * 0 if it does not fit in cap.
 */
size_t rev_ocsp_request(const struct rev_cert *cert, const struct rev_cert *issuer, uint8_t *out,
                        size_t cap) CAT_NONNULL(1, 2, 3);

/**
 * Verifies an OCSPResponse about cert: successful status, basic response, signed by
 * the issuer or by a responder certificate the issuer signed for OCSPSigning, a
 * SingleResponse whose CertID matches, thisUpdate/nextUpdate around now.
 * CAT_OK: v->status is the responder's word (GOOD, REVOKED, UNKNOWN) and its dates.
 * CAT_ERR: unusable; v->why says why.
 */
int rev_ocsp_check(const uint8_t *resp, size_t len, const struct rev_cert *cert,
                   const struct rev_cert *issuer, int64_t now, struct rev_verdict *v) CAT_WUR
    CAT_NONNULL(3, 4, 6);

/* ---- CRL (rev_crl.c) --------------------------------------------------------------- */

struct rev_crl; /* a verified CRL, reduced to its sorted serials */

/**
 * Parses a CRL (DER or PEM) fetched from url for certificates of issuer: signed by
 * the issuer (with cRLSign if keyUsage is present), issuer names equal, thisUpdate
 * not ahead and nextUpdate not behind now, no delta or indirect CRL, a distribution
 * point in IssuingDistributionPoint that matches url. NULL with why on failure.
 */
struct rev_crl *rev_crl_load(const uint8_t *data, size_t len, const char *url,
                             const struct rev_cert *issuer, int64_t now, char *why,
                             size_t whylen) CAT_WUR CAT_NONNULL(3, 4, 6);

/** Looks cert up: v->status REV_REVOKED (date, reason) or REV_GOOD; CAT_ERR if the CRL is
 *  not about cert's issuer or does not cover it. */
int rev_crl_find(const struct rev_crl *crl, const struct rev_cert *cert,
                 struct rev_verdict *v) CAT_WUR CAT_NONNULL(1, 2, 3);

int64_t rev_crl_next_update(const struct rev_crl *crl) CAT_NONNULL(1); /* 0: none given */
size_t rev_crl_entries(const struct rev_crl *crl) CAT_NONNULL(1);
size_t rev_crl_bytes(const struct rev_crl *crl) CAT_NONNULL(1); /* memory held */
void rev_crl_free(struct rev_crl *crl);

/* ---- the shared cache (rev_cache.c) ------------------------------------------------- */

#define REV_KEY_LEN 32

/* Limits of the shared cache. */
struct rev_cache_limits {
    size_t answers;   /* entries */
    size_t crls;      /* entries */
    size_t crl_bytes; /* memory of all cached CRLs */
    size_t down;      /* failed URLs remembered */
};

/** Takes a reference on the process-wide cache (made on first use). CAT_ERR on OOM. */
int rev_cache_acquire(void) CAT_WUR;
/** Drops it; the last reference frees everything. */
void rev_cache_release(void);
void rev_cache_set_limits(const struct rev_cache_limits *l) CAT_NONNULL(1);
/** Empties the cache (tests). */
void rev_cache_flush(void);

/** The key of a certificate's answer: SHA-256 over the issuer's key and the serial. */
void rev_answer_key(const struct rev_cert *cert, const struct rev_cert *issuer,
                    uint8_t key[REV_KEY_LEN]) CAT_NONNULL(1, 2, 3);

void rev_cache_put_answer(const uint8_t key[REV_KEY_LEN], const struct rev_answer *a,
                          int64_t expires, int64_t now) CAT_NONNULL(1, 2);
bool rev_cache_get_answer(const uint8_t key[REV_KEY_LEN], int64_t now, struct rev_answer *out)
    CAT_NONNULL(1, 3);

/** Remembers that url failed (why) until `until`. */
void rev_cache_put_down(const char *url, const char *why, int64_t until, int64_t now)
    CAT_NONNULL(1, 2);
bool rev_cache_is_down(const char *url, int64_t now, char *why, size_t whylen) CAT_NONNULL(1, 3);

/** Keeps a verified CRL of url for the issuer whose key hash is ikey (takes ownership). */
void rev_cache_put_crl(const char *url, const struct rev_cert *issuer, struct rev_crl *crl,
                       int64_t expires, int64_t now) CAT_NONNULL(1, 2, 3);
/** CAT_OK: a live cached CRL of url answered for cert (v filled); CAT_DECLINED: none. */
int rev_cache_find_crl(const char *url, const struct rev_cert *cert, const struct rev_cert *issuer,
                       int64_t now, struct rev_verdict *v) CAT_WUR CAT_NONNULL(1, 2, 3, 5);

struct rev_cache_stats {
    size_t answers, crls, crl_bytes, down;
};
void rev_cache_get_stats(struct rev_cache_stats *s) CAT_NONNULL(1);

/* ---- the driver (revoke.c) ------------------------------------------------------------ */

/** Wall-clock seconds; tests replace it. */
extern int64_t (*rev_clock)(void);

#endif
