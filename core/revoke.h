/*
 * Revocation checking of one server certificate given its issuer: OCSP asked
 * of the AIA responder first, then the CRL from the distribution point, both
 * fetched on the worker's loop (core/fetch) and verified before they count.
 * Answers, verified CRLs and failed sources are kept in one cache shared by
 * every worker (mutex), so a certificate is fetched for at most once per
 * nextUpdate and a dead responder costs its timeout at most once per 30 s.
 * When no source answers, the origin's stapled OCSP response (fetched by the
 * caller, see core/staple.c) may settle it: rev_staple().
 */
#ifndef CATENA_CORE_REVOKE_H
#define CATENA_CORE_REVOKE_H

#include "core/attr.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ev_loop;
struct res;
struct rev_ctx;   /* per worker: loop, resolver, checks in flight */
struct rev_query; /* one caller's interest in a check in flight */

enum rev_status {
    REV_GOOD = 0,
    REV_REVOKED,
    REV_UNKNOWN, /* no source answered, or the certificate names none */
};

/** The source of an answer taken from the origin's stapled OCSP response. */
#define REV_SRC_STAPLE "stapled OCSP"

/**
 * A verdict. source: "ocsp", "crl", REV_SRC_STAPLE, "cache" (an earlier answer) or "none"
 * (nothing to ask).
 */
struct rev_answer {
    enum rev_status status;
    const char *source; /* static */
    char detail[160];   /* "OCSP http://...: revoked (reason 1: keyCompromise) at 2026-..." */
    bool staple_tried;  /* REV_UNKNOWN: the origin's stapled response did not answer either */
};

/** Called once per rev_check() that returned CAT_AGAIN, from the loop, unless cancelled first. */
typedef void rev_cb(void *arg, const struct rev_answer *a);

/** Default bounds on what is fetched (the caller may change them with rev_ctx_set_limits()). */
#define REV_OCSP_MAX_DEFAULT (64u * 1024)
#define REV_CRL_MAX_DEFAULT (8u * 1024 * 1024)

/**
 * A worker's revocation checker; the shared cache is made with the first one.
 * timeout_ms bounds each fetch; a whole check gives up after twice that. NULL on OOM.
 */
struct rev_ctx *rev_ctx_new(struct ev_loop *loop, struct res *res, unsigned timeout_ms) CAT_WUR
    CAT_NONNULL(1, 2);

/** Cancels every check (no callbacks) and frees; not from inside one of its callbacks. */
void rev_ctx_free(struct rev_ctx *r);

/** Largest OCSP response and CRL accepted (bytes). */
void rev_ctx_set_limits(struct rev_ctx *r, size_t ocsp_max, size_t crl_max) CAT_NONNULL(1);

/**
 * Checks cert (DER) against issuer (DER, the certificate that signed it); both are copied.
 * - CAT_OK: answered now (a cached answer, or nothing to ask: REV_UNKNOWN with source "none",
 *   which also covers certificates that cannot be parsed); *out filled, *qp NULL.
 * - CAT_AGAIN: *qp set; cb(arg, answer) comes later from the loop, exactly once, unless
 *   rev_cancel(*qp) is called first. Checks of one certificate in flight share the fetches.
 */
int rev_check(struct rev_ctx *r, const uint8_t *cert, size_t cert_len, const uint8_t *issuer,
              size_t issuer_len, struct rev_answer *out, rev_cb *cb, void *arg,
              struct rev_query **qp) CAT_WUR CAT_NONNULL(1, 2, 4, 6, 7, 9);

/**
 * Settles cert (DER, issued by issuer) with the origin's stapled OCSP response (resp, len;
 * NULL, 0 if it sent none), asked for because the sources gave no answer (*unknown, from
 * rev_check). The response must pass what a fetched one does (signature by the issuer or
 * its delegated responder, CertID, thisUpdate/nextUpdate).
 * - CAT_OK: it says good or revoked: *out (source REV_SRC_STAPLE) is cached as a fetched
 *   answer is, until its nextUpdate.
 * - CAT_DECLINED (none sent) or CAT_ERR (unusable, why says why): *out is *unknown marked
 *   staple_tried, and cached as no answer for 30 s so the origin is not asked again meanwhile.
 */
int rev_staple(const uint8_t *cert, size_t cert_len, const uint8_t *issuer, size_t issuer_len,
               const uint8_t *resp, size_t len, const struct rev_answer *unknown,
               struct rev_answer *out, char *why, size_t whylen) CAT_WUR CAT_NONNULL(1, 3, 7, 8, 9);

/** No callback after it returns; q may be NULL. The check goes on and its answer is cached. */
void rev_cancel(struct rev_query *q);

/** Counters for /status and tests (the cache figures are process-wide). */
struct rev_stats {
    unsigned long checks, cache_hits, ocsp_fetches, crl_fetches, coalesced;
    unsigned long cache_answers, cache_crls, cache_down;
};
void rev_get_stats(const struct rev_ctx *r, struct rev_stats *out) CAT_NONNULL(1, 2);

/** Text of a status: "good", "revoked", "unknown". */
const char *rev_status_str(enum rev_status s);

#endif
