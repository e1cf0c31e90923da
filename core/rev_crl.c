/*
 * CRLs (RFC 5280 section 5) for revocation: a downloaded CRL (DER or PEM,
 * untrusted, up to megabytes) is verified against the issuer and reduced to a
 * sorted table of revoked serials, so that it can stay cached and answer any
 * certificate of that issuer with a binary search. Only complete CRLs are
 * used: delta and indirect CRLs, and partitions we cannot tell apart, are
 * refused rather than read as "not revoked".
 */
#include "core/rev_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/hash.h>

struct rev_crl_ent {
    uint32_t off; /* serial bytes in pool */
    uint8_t len;
    int8_t reason; /* -1: none given */
    int64_t when;
};

struct rev_crl {
    uint8_t name_hash[WC_SHA256_DIGEST_SIZE]; /* of the issuer Name */
    int64_t this_update, next_update;
    bool only_user; /* IDP onlyContainsUserCerts */
    size_t n;
    struct rev_crl_ent *ents; /* owned, sorted by (len, bytes) */
    uint8_t *pool;            /* owned */
    size_t pool_len;
};

#define OID(name, ...) static const uint8_t name[] = {__VA_ARGS__}
OID(oid_reason, 0x55, 0x1d, 0x15);
OID(oid_invalidity, 0x55, 0x1d, 0x18);
OID(oid_cert_issuer, 0x55, 0x1d, 0x1d);
OID(oid_crl_number, 0x55, 0x1d, 0x14);
OID(oid_delta, 0x55, 0x1d, 0x1b);
OID(oid_idp, 0x55, 0x1d, 0x1c);
OID(oid_aki, 0x55, 0x1d, 0x23);
OID(oid_freshest, 0x55, 0x1d, 0x2e);
OID(oid_ian, 0x55, 0x1d, 0x12);
#define OID_EQ(span, name) rev_span_eq((span), (name), sizeof(name))

static struct rev_crl *
rev_crl_fail(char *why, size_t whylen, const char *text)
{
    snprintf(why, whylen, "%s", text);
    return NULL;
}

void
rev_crl_free(struct rev_crl *crl)
{
    if (crl == NULL)
        return;
    free(crl->ents);
    free(crl->pool);
    free(crl);
}

/* PEM "X509 CRL" to DER in a new buffer; NULL if data is not PEM or does not decode. */
static uint8_t *
rev_crl_unpem(const uint8_t *data, size_t len, size_t *out_len)
{
    static const char begin[] = "-----BEGIN X509 CRL-----";
    static const char end[] = "-----END X509 CRL-----";
    const uint8_t *b = memmem(data, len, begin, sizeof(begin) - 1);
    if (b == NULL)
        return NULL;
    b += sizeof(begin) - 1;
    const uint8_t *e = memmem(b, len - (size_t)(b - data), end, sizeof(end) - 1);
    if (e == NULL)
        return NULL;
    size_t n = (size_t)(e - b), k = 0;
    uint8_t *text = malloc(n + 1), *der = malloc(n / 4 * 3 + 3);
    if (text == NULL || der == NULL)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = b[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            continue;
        text[k++] = c;
    }
    word32 dl = (word32)(n / 4 * 3 + 3);
    if (k == 0 || Base64_Decode(text, (word32)k, der, &dl) != 0)
        goto fail;
    free(text);
    *out_len = dl;
    return der;
fail:
    free(text);
    free(der);
    return NULL;
}

/* IssuingDistributionPoint (RFC 5280 5.2.5): which certificates this CRL covers. */
static const char *
rev_crl_idp(struct rev_span v, const char *url, struct rev_crl *crl)
{
    struct rev_span rd = v, seq, dp, full, gn, b;
    uint8_t tag;
    if (rev_der_get(&rd, 0x30, &seq, NULL) != CAT_OK || rd.len != 0)
        return "malformed IssuingDistributionPoint";
    if (rev_der_get(&seq, 0xa0, &dp, NULL) == CAT_OK) {
        bool match = false;
        if (rev_der_get(&dp, 0xa0, &full, NULL) != CAT_OK)
            return "CRL distribution point given relative to the issuer: not supported";
        for (int i = 0; i < 16 && rev_der_next(&full, &tag, &gn, NULL) == CAT_OK; i++)
            if (tag == 0x86 && gn.len == strlen(url) &&
                strncasecmp((const char *)gn.p, url, gn.len) == 0)
                match = true;
        /* A CRL of another partition of the same CA would hide our revocations. */
        if (!match)
            return "CRL is for another distribution point";
    }
    for (uint8_t t = 0x81; t <= 0x85; t++) {
        if (rev_der_get(&seq, t, &b, NULL) != CAT_OK)
            continue;
        bool set = b.len > 0 && b.p[0] != 0;
        if (t == 0x81)
            crl->only_user = set;
        else if (t == 0x83 || set)
            return t == 0x82   ? "CRL covers CA certificates only"
                   : t == 0x83 ? "CRL covers some revocation reasons only"
                   : t == 0x84 ? "indirect CRL: not supported"
                               : "CRL covers attribute certificates only";
    }
    return seq.len == 0 ? NULL : "malformed IssuingDistributionPoint";
}

/* crlExtensions: known ones handled, critical unknown ones refuse the CRL (RFC 5280 5.2). */
static const char *
rev_crl_exts(struct rev_span exts, const char *url, struct rev_crl *crl)
{
    struct rev_span rd = exts, seq, ext, oid, crit, val;
    if (rev_der_get(&rd, 0x30, &seq, NULL) != CAT_OK || rd.len != 0)
        return "malformed crlExtensions";
    for (int i = 0; i < 64 && seq.len > 0; i++) {
        bool critical = false;
        if (rev_der_get(&seq, 0x30, &ext, NULL) != CAT_OK ||
            rev_der_get(&ext, 0x06, &oid, NULL) != CAT_OK)
            return "malformed crlExtensions";
        if (rev_der_get(&ext, 0x01, &crit, NULL) == CAT_OK)
            critical = crit.len == 1 && crit.p[0] != 0;
        if (rev_der_get(&ext, 0x04, &val, NULL) != CAT_OK || ext.len != 0)
            return "malformed crlExtensions";
        if (OID_EQ(oid, oid_delta))
            return "delta CRL: not supported";
        if (OID_EQ(oid, oid_idp)) {
            const char *e = rev_crl_idp(val, url, crl);
            if (e != NULL)
                return e;
        } else if (critical && !OID_EQ(oid, oid_crl_number) && !OID_EQ(oid, oid_aki) &&
                   !OID_EQ(oid, oid_freshest) && !OID_EQ(oid, oid_ian)) {
            return "unknown critical CRL extension";
        }
    }
    return seq.len == 0 ? NULL : "malformed crlExtensions";
}

/* One revokedCertificates entry. */
static const char *
rev_crl_entry(struct rev_span e, struct rev_crl *crl)
{
    struct rev_span serial, exts;
    uint8_t tag;
    struct rev_span tv;
    struct rev_crl_ent *ent = &crl->ents[crl->n];
    if (rev_der_get(&e, 0x02, &serial, NULL) != CAT_OK || serial.len == 0)
        return "malformed CRL entry";
    if (serial.len > REV_MAX_SERIAL)
        return "CRL entry serial too long";
    if (rev_der_next(&e, &tag, &tv, NULL) != CAT_OK || rev_der_time(tag, tv, &ent->when) != CAT_OK)
        return "malformed CRL entry date";
    ent->reason = -1;
    if (rev_der_get(&e, 0x30, &exts, NULL) == CAT_OK) {
        for (int i = 0; i < 16 && exts.len > 0; i++) {
            struct rev_span ext, oid, crit, val;
            bool critical = false;
            if (rev_der_get(&exts, 0x30, &ext, NULL) != CAT_OK ||
                rev_der_get(&ext, 0x06, &oid, NULL) != CAT_OK)
                return "malformed CRL entry extensions";
            if (rev_der_get(&ext, 0x01, &crit, NULL) == CAT_OK)
                critical = crit.len == 1 && crit.p[0] != 0;
            if (rev_der_get(&ext, 0x04, &val, NULL) != CAT_OK || ext.len != 0)
                return "malformed CRL entry extensions";
            if (OID_EQ(oid, oid_reason)) {
                struct rev_span en;
                if (rev_der_get(&val, 0x0a, &en, NULL) != CAT_OK || en.len != 1 || val.len != 0)
                    return "malformed CRL reason code";
                ent->reason = (int8_t)(en.p[0] & 0x7f);
            } else if (OID_EQ(oid, oid_cert_issuer)) {
                return "indirect CRL entry: not supported";
            } else if (critical && !OID_EQ(oid, oid_invalidity)) {
                return "unknown critical CRL entry extension";
            }
        }
        if (exts.len != 0)
            return "malformed CRL entry extensions";
    }
    if (e.len != 0)
        return "malformed CRL entry";
    ent->off = (uint32_t)crl->pool_len;
    ent->len = (uint8_t)serial.len;
    memcpy(crl->pool + crl->pool_len, serial.p, serial.len);
    crl->pool_len += serial.len;
    crl->n++;
    return NULL;
}

static int
rev_ent_cmp(const void *a, const void *b, void *pool_arg)
{
    const struct rev_crl_ent *x = a, *y = b;
    const uint8_t *pool = pool_arg;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp(pool + x->off, pool + y->off, x->len);
}

static int
rev_key_cmp(const struct rev_crl *crl, const struct rev_crl_ent *e, struct rev_span s)
{
    if (e->len != s.len)
        return e->len < s.len ? -1 : 1;
    return memcmp(crl->pool + e->off, s.p, s.len);
}

/* check_sig is false only in the fuzz target, to reach what follows the signature. */
static struct rev_crl *
rev_crl_decode(const uint8_t *data, size_t len, const char *url, const struct rev_cert *issuer,
               int64_t now, char *why, size_t whylen, bool check_sig)
{
    uint8_t *pem_der = NULL;
    struct rev_crl *crl = NULL;
    const char *err = "malformed CRL";

    if (data == NULL || len == 0)
        return rev_crl_fail(why, whylen, "empty CRL");
    if (data[0] != 0x30) {
        size_t dl;
        pem_der = rev_crl_unpem(data, len, &dl);
        if (pem_der == NULL)
            return rev_crl_fail(why, whylen, "neither a DER nor a PEM CRL");
        data = pem_der;
        len = dl;
    }
    crl = calloc(1, sizeof(*crl));
    if (crl == NULL) {
        err = "out of memory";
        goto fail;
    }

    /* CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm, signatureValue } */
    struct rev_span rd = {data, len}, top, tbs, tbs_all, alg, alg_all, sigbits, v;
    if (rev_der_get(&rd, 0x30, &top, NULL) != CAT_OK || rd.len != 0 ||
        rev_der_get(&top, 0x30, &tbs, &tbs_all) != CAT_OK ||
        rev_der_get(&top, 0x30, &alg, &alg_all) != CAT_OK ||
        rev_der_get(&top, 0x03, &sigbits, NULL) != CAT_OK || top.len != 0 || sigbits.len < 1 ||
        sigbits.p[0] != 0)
        goto fail;

    /* TBSCertList: version, signature, issuer, thisUpdate, nextUpdate, revoked, [0] exts. */
    struct rev_span inner_alg, name, revoked = {NULL, 0}, exts = {NULL, 0};
    uint8_t tag;
    if (rev_der_get(&tbs, 0x02, &v, NULL) == CAT_OK && !rev_span_eq(v, "\x01", 1)) {
        err = "unsupported CRL version";
        goto fail;
    }
    if (rev_der_get(&tbs, 0x30, &v, &inner_alg) != CAT_OK ||
        rev_der_get(&tbs, 0x30, &v, &name) != CAT_OK ||
        rev_der_next(&tbs, &tag, &v, NULL) != CAT_OK ||
        rev_der_time(tag, v, &crl->this_update) != CAT_OK)
        goto fail;
    if (rev_der_peek(&tbs, 0x17) || rev_der_peek(&tbs, 0x18)) {
        if (rev_der_next(&tbs, &tag, &v, NULL) != CAT_OK ||
            rev_der_time(tag, v, &crl->next_update) != CAT_OK)
            goto fail;
    }
    if (rev_der_peek(&tbs, 0x30) && rev_der_get(&tbs, 0x30, &revoked, NULL) != CAT_OK)
        goto fail;
    if (rev_der_get(&tbs, 0xa0, &exts, NULL) != CAT_OK)
        exts.p = NULL;
    if (tbs.len != 0)
        goto fail;
    if (!rev_span_eq(inner_alg, alg_all.p, alg_all.len)) {
        err = "CRL signature algorithms differ";
        goto fail;
    }

    /* Whose CRL, signed by whom (RFC 5280 6.3.3 (b), (f), (g)). */
    if (!rev_span_eq(name, issuer->subject.p, issuer->subject.len)) {
        err = "CRL issuer is not the certificate's issuer";
        goto fail;
    }
    if (issuer->has_ku && !(issuer->ku & REV_KU_CRLSIGN)) {
        err = "issuer lacks the cRLSign key usage";
        goto fail;
    }
    struct rev_span sig = {sigbits.p + 1, sigbits.len - 1};
    const char *serr;
    if (check_sig && rev_sig_verify(alg_all, tbs_all, sig, issuer->spki, &serr) != CAT_OK) {
        snprintf(why, whylen, "CRL signature: %s", serr);
        rev_crl_free(crl);
        free(pem_der);
        return NULL;
    }
    if (wc_Sha256Hash(name.p, (word32)name.len, crl->name_hash) != 0)
        goto fail;

    if (exts.p != NULL && (err = rev_crl_exts(exts, url, crl)) != NULL)
        goto fail;
    err = "malformed CRL";

    char t1[32];
    if (crl->this_update > now + REV_SKEW_S) {
        rev_time_str(crl->this_update, t1);
        snprintf(why, whylen, "CRL from the future (thisUpdate %s)", t1);
        goto fail_why;
    }
    if (crl->next_update != 0 && crl->next_update + REV_SKEW_S < now) {
        rev_time_str(crl->next_update, t1);
        snprintf(why, whylen, "expired CRL (nextUpdate %s)", t1);
        goto fail_why;
    }

    /* The revoked serials: counted, then copied into one pool and sorted. */
    size_t count = 0;
    for (struct rev_span c = revoked; c.len > 0; count++) {
        struct rev_span e;
        if (rev_der_next(&c, &tag, &e, NULL) != CAT_OK || tag != 0x30)
            goto fail;
    }
    if (count > 0) {
        crl->ents = malloc(count * sizeof(*crl->ents));
        crl->pool = malloc(revoked.len);
        if (crl->ents == NULL || crl->pool == NULL) {
            err = "out of memory";
            goto fail;
        }
        for (struct rev_span c = revoked; c.len > 0;) {
            struct rev_span e;
            if (rev_der_get(&c, 0x30, &e, NULL) != CAT_OK)
                goto fail;
            if ((err = rev_crl_entry(e, crl)) != NULL)
                goto fail;
        }
        qsort_r(crl->ents, crl->n, sizeof(*crl->ents), rev_ent_cmp, crl->pool);
    }
    free(pem_der);
    return crl;
fail:
    snprintf(why, whylen, "%s", err);
fail_why:
    rev_crl_free(crl);
    free(pem_der);
    return NULL;
}

struct rev_crl *
rev_crl_load(const uint8_t *data, size_t len, const char *url, const struct rev_cert *issuer,
             int64_t now, char *why, size_t whylen)
{
    return rev_crl_decode(data, len, url, issuer, now, why, whylen, true);
}

int
rev_crl_find(const struct rev_crl *crl, const struct rev_cert *cert, struct rev_verdict *v)
{
    uint8_t h[WC_SHA256_DIGEST_SIZE];
    memset(v, 0, sizeof(*v));
    v->reason = -1;
    v->status = REV_UNKNOWN;
    if (wc_Sha256Hash(cert->issuer.p, (word32)cert->issuer.len, h) != 0 ||
        memcmp(h, crl->name_hash, sizeof(h)) != 0) {
        snprintf(v->why, sizeof(v->why), "CRL issuer is not the certificate's issuer");
        return CAT_ERR;
    }
    if (crl->only_user && cert->is_ca) {
        snprintf(v->why, sizeof(v->why), "CRL covers end-entity certificates only");
        return CAT_ERR;
    }
    v->this_update = crl->this_update;
    v->next_update = crl->next_update;
    size_t lo = 0, hi = crl->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = rev_key_cmp(crl, &crl->ents[mid], cert->serial);
        if (c == 0) {
            v->status = REV_REVOKED;
            v->revoked_at = crl->ents[mid].when;
            v->reason = crl->ents[mid].reason;
            return CAT_OK;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    v->status = REV_GOOD;
    return CAT_OK;
}

int64_t
rev_crl_next_update(const struct rev_crl *crl)
{
    return crl->next_update;
}

size_t
rev_crl_entries(const struct rev_crl *crl)
{
    return crl->n;
}

size_t
rev_crl_bytes(const struct rev_crl *crl)
{
    return sizeof(*crl) + crl->n * sizeof(*crl->ents) + crl->pool_len;
}
