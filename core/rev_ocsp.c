/*
 * OCSP (RFC 6960) for revocation: the request catena sends and the checks a
 * response must pass before its status counts. The response is untrusted
 * input from the network: every field is bounded, and nothing is believed
 * before the signature over tbsResponseData verifies with the issuer's key or
 * with a delegated responder certificate that the issuer signed for
 * id-kp-OCSPSigning (RFC 6960 4.2.2.2). wolfSSL's own OCSP code is not used:
 * with OPENSSL_EXTRA it accepts delegated responders without the EKU.
 */
#include "core/rev_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hash.h>

static const uint8_t rev_oid_sha1[] = {0x2b, 0x0e, 0x03, 0x02, 0x1a};
static const uint8_t rev_oid_basic[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x01};

/* CertID hash algorithms a responder may answer with. */
static const struct {
    uint8_t oid[9];
    uint8_t len;
    enum wc_HashType hash;
} rev_certid_hashes[] = {
    {{0x2b, 0x0e, 0x03, 0x02, 0x1a}, 5, WC_HASH_TYPE_SHA},
    {{0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01}, 9, WC_HASH_TYPE_SHA256},
    {{0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02}, 9, WC_HASH_TYPE_SHA384},
    {{0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03}, 9, WC_HASH_TYPE_SHA512},
};

/* ---- request ------------------------------------------------------------------------ */

/* Writes a DER header; returns its length. Lengths here stay below 64 KiB. */
static size_t
rev_hdr(uint8_t *out, uint8_t tag, size_t len)
{
    out[0] = tag;
    if (len < 0x80) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len < 0x100) {
        out[1] = 0x81;
        out[2] = (uint8_t)len;
        return 3;
    }
    out[1] = 0x82;
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
    return 4;
}

static size_t
rev_hdr_len(size_t len)
{
    return len < 0x80 ? 2 : len < 0x100 ? 3 : 4;
}

size_t
rev_ocsp_request(const struct rev_cert *cert, const struct rev_cert *issuer, uint8_t *out,
                 size_t cap)
{
    uint8_t name_hash[WC_SHA_DIGEST_SIZE], key_hash[WC_SHA_DIGEST_SIZE];
    /* CertID (RFC 6960 4.1.1): hashes of the issuer's name (as the certificate carries it)
     * and of its public key bits; SHA-1, which every responder understands. */
    if (wc_ShaHash(cert->issuer.p, (word32)cert->issuer.len, name_hash) != 0 ||
        wc_ShaHash(issuer->key.p, (word32)issuer->key.len, key_hash) != 0)
        return 0;
    size_t alg = 2 + 2 + sizeof(rev_oid_sha1) + 2; /* SEQ { OID, NULL } */
    size_t certid =
        alg + 2 * (2 + WC_SHA_DIGEST_SIZE) + rev_hdr_len(cert->serial.len) + cert->serial.len;
    size_t request = rev_hdr_len(certid) + certid;
    size_t list = rev_hdr_len(request) + request;
    size_t tbs = rev_hdr_len(list) + list;
    size_t top = rev_hdr_len(tbs) + tbs;
    size_t total = rev_hdr_len(top) + top;
    if (total > cap)
        return 0;
    uint8_t *p = out;
    p += rev_hdr(p, 0x30, top);     /* OCSPRequest */
    p += rev_hdr(p, 0x30, tbs);     /* TBSRequest */
    p += rev_hdr(p, 0x30, list);    /* requestList */
    p += rev_hdr(p, 0x30, request); /* Request */
    p += rev_hdr(p, 0x30, certid);  /* reqCert */
    p += rev_hdr(p, 0x30, alg - 2);
    p += rev_hdr(p, 0x06, sizeof(rev_oid_sha1));
    memcpy(p, rev_oid_sha1, sizeof(rev_oid_sha1));
    p += sizeof(rev_oid_sha1);
    p += rev_hdr(p, 0x05, 0);
    p += rev_hdr(p, 0x04, sizeof(name_hash));
    memcpy(p, name_hash, sizeof(name_hash));
    p += sizeof(name_hash);
    p += rev_hdr(p, 0x04, sizeof(key_hash));
    memcpy(p, key_hash, sizeof(key_hash));
    p += sizeof(key_hash);
    p += rev_hdr(p, 0x02, cert->serial.len);
    memcpy(p, cert->serial.p, cert->serial.len);
    p += cert->serial.len;
    CAT_ASSERT((size_t)(p - out) == total);
    return total;
}

/* ---- response --------------------------------------------------------------------------- */

static int rev_fail(struct rev_verdict *v, const char *fmt, ...) CAT_PRINTF(2, 3);

static int
rev_fail(struct rev_verdict *v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->why, sizeof(v->why), fmt, ap);
    va_end(ap);
    return CAT_ERR;
}

/* Extensions with a critical one we do not know make the whole structure unusable. */
static int
rev_exts_ok(struct rev_span exts_explicit, const uint8_t *known_oid, size_t known_len)
{
    struct rev_span rd = exts_explicit, seq, ext, oid, crit;
    if (rev_der_get(&rd, 0x30, &seq, NULL) != CAT_OK || rd.len != 0)
        return CAT_ERR;
    for (int i = 0; i < 64 && seq.len > 0; i++) {
        if (rev_der_get(&seq, 0x30, &ext, NULL) != CAT_OK ||
            rev_der_get(&ext, 0x06, &oid, NULL) != CAT_OK)
            return CAT_ERR;
        bool critical =
            rev_der_get(&ext, 0x01, &crit, NULL) == CAT_OK && crit.len == 1 && crit.p[0] != 0;
        if (critical && !(known_oid != NULL && rev_span_eq(oid, known_oid, known_len)))
            return CAT_ERR;
    }
    return seq.len == 0 ? CAT_OK : CAT_ERR;
}

/* True if CertID (contents) names cert of issuer, with whatever hash the responder chose. */
static bool
rev_certid_match(struct rev_span certid, const struct rev_cert *cert, const struct rev_cert *issuer)
{
    struct rev_span rd = certid, alg, oid, nh, kh, serial, nul;
    if (rev_der_get(&rd, 0x30, &alg, NULL) != CAT_OK ||
        rev_der_get(&alg, 0x06, &oid, NULL) != CAT_OK ||
        (alg.len != 0 && (rev_der_get(&alg, 0x05, &nul, NULL) != CAT_OK || alg.len != 0)) ||
        rev_der_get(&rd, 0x04, &nh, NULL) != CAT_OK ||
        rev_der_get(&rd, 0x04, &kh, NULL) != CAT_OK ||
        rev_der_get(&rd, 0x02, &serial, NULL) != CAT_OK || rd.len != 0)
        return false;
    if (!rev_span_eq(serial, cert->serial.p, cert->serial.len))
        return false;
    for (size_t i = 0; i < CAT_ARRAY_LEN(rev_certid_hashes); i++) {
        if (!rev_span_eq(oid, rev_certid_hashes[i].oid, rev_certid_hashes[i].len))
            continue;
        enum wc_HashType h = rev_certid_hashes[i].hash;
        uint8_t d[WC_MAX_DIGEST_SIZE];
        int dl = wc_HashGetDigestSize(h);
        if (dl <= 0 || nh.len != (size_t)dl || kh.len != (size_t)dl)
            return false;
        if (wc_Hash(h, cert->issuer.p, (word32)cert->issuer.len, d, sizeof(d)) != 0 ||
            memcmp(d, nh.p, nh.len) != 0)
            return false;
        if (wc_Hash(h, issuer->key.p, (word32)issuer->key.len, d, sizeof(d)) != 0 ||
            memcmp(d, kh.p, kh.len) != 0)
            return false;
        return true;
    }
    return false;
}

/* True if the ResponderID (byName [1] / byKey [2]) designates the key of c. */
static bool
rev_responder_is(uint8_t tag, struct rev_span id, const struct rev_cert *c)
{
    if (tag == 0xa1)
        return rev_span_eq(id, c->subject.p, c->subject.len);
    struct rev_span rd = id, kh;
    uint8_t d[WC_SHA_DIGEST_SIZE];
    if (rev_der_get(&rd, 0x04, &kh, NULL) != CAT_OK || rd.len != 0 || kh.len != sizeof(d) ||
        wc_ShaHash(c->key.p, (word32)c->key.len, d) != 0)
        return false;
    return memcmp(d, kh.p, sizeof(d)) == 0;
}

/*
 * Finds the key that must have signed the response: the issuer's, or that of a
 * certificate in `certs` that the ResponderID names and that passes RFC 6960
 * 4.2.2.2 (issued by the issuer itself, id-kp-OCSPSigning, valid now).
 */
static int
rev_find_signer(uint8_t rid_tag, struct rev_span rid, struct rev_span certs,
                const struct rev_cert *issuer, int64_t now, struct rev_span *spki,
                struct rev_verdict *v)
{
    if (rev_responder_is(rid_tag, rid, issuer)) {
        *spki = issuer->spki;
        return CAT_OK;
    }
    struct rev_span rd = certs, inner, one;
    const char *last = "not the issuer, and no certificate for it in the response";
    for (int i = 0; i < 8 && rd.len > 0; i++) {
        struct rev_cert rc;
        const char *err;
        if (rev_der_get(&rd, 0x30, &inner, &one) != CAT_OK)
            return rev_fail(v, "malformed certs in the response");
        if (rev_cert_parse(one.p, one.len, &rc, &err) != CAT_OK) {
            last = err;
            continue;
        }
        if (!rev_responder_is(rid_tag, rid, &rc))
            continue;
        /* The issuer's own certificate sent along (perhaps a reissue of the same key). */
        if (rev_span_eq(rc.spki, issuer->spki.p, issuer->spki.len)) {
            *spki = issuer->spki;
            return CAT_OK;
        }
        if (rev_cert_signed_by(&rc, issuer, &err) != CAT_OK)
            return rev_fail(v, "responder certificate not signed by the issuer: %s", err);
        if (!rc.eku_ocsp)
            return rev_fail(v, "responder certificate lacks the OCSPSigning extended key usage");
        if (rc.has_ku && !(rc.ku & REV_KU_DIGSIG))
            return rev_fail(v, "responder certificate lacks the digitalSignature key usage");
        if (rc.unknown_critical)
            return rev_fail(v, "responder certificate has an unknown critical extension");
        if (now + REV_SKEW_S < rc.not_before || now - REV_SKEW_S > rc.not_after)
            return rev_fail(v, "responder certificate is not valid now");
        *spki = rc.spki;
        return CAT_OK;
    }
    return rev_fail(v, "responder %s", last);
}

/* SingleResponse (RFC 6960 4.2.1) for our certificate: status and dates. */
static int
rev_single(struct rev_span s, struct rev_verdict *v)
{
    struct rev_span certid, st, t, next;
    uint8_t tag;
    if (rev_der_get(&s, 0x30, &certid, NULL) != CAT_OK ||
        rev_der_next(&s, &tag, &st, NULL) != CAT_OK)
        return rev_fail(v, "malformed SingleResponse");
    v->reason = -1;
    switch (tag) {
    case 0x80: /* good [0] IMPLICIT NULL */
        if (st.len != 0)
            return rev_fail(v, "malformed good status");
        v->status = REV_GOOD;
        break;
    case 0xa1: { /* revoked [1] IMPLICIT RevokedInfo */
        struct rev_span rt, rr, en;
        if (rev_der_get(&st, 0x18, &rt, NULL) != CAT_OK ||
            rev_der_time(0x18, rt, &v->revoked_at) != CAT_OK)
            return rev_fail(v, "malformed revocation time");
        if (rev_der_get(&st, 0xa0, &rr, NULL) == CAT_OK) {
            if (rev_der_get(&rr, 0x0a, &en, NULL) != CAT_OK || en.len != 1 || rr.len != 0)
                return rev_fail(v, "malformed revocation reason");
            v->reason = en.p[0];
        }
        if (st.len != 0)
            return rev_fail(v, "malformed RevokedInfo");
        v->status = REV_REVOKED;
        break;
    }
    case 0x82: /* unknown [2] IMPLICIT NULL */
        if (st.len != 0)
            return rev_fail(v, "malformed unknown status");
        v->status = REV_UNKNOWN;
        break;
    default:
        return rev_fail(v, "malformed certStatus");
    }
    if (rev_der_get(&s, 0x18, &t, NULL) != CAT_OK ||
        rev_der_time(0x18, t, &v->this_update) != CAT_OK)
        return rev_fail(v, "malformed thisUpdate");
    v->next_update = 0;
    if (rev_der_get(&s, 0xa0, &next, NULL) == CAT_OK) {
        if (rev_der_get(&next, 0x18, &t, NULL) != CAT_OK || next.len != 0 ||
            rev_der_time(0x18, t, &v->next_update) != CAT_OK)
            return rev_fail(v, "malformed nextUpdate");
    }
    struct rev_span exts;
    if (rev_der_get(&s, 0xa1, &exts, NULL) == CAT_OK && rev_exts_ok(exts, NULL, 0) != CAT_OK)
        return rev_fail(v, "unknown critical extension in the SingleResponse");
    if (s.len != 0)
        return rev_fail(v, "malformed SingleResponse");
    return CAT_OK;
}

/* check_sig is false only in the fuzz target, to reach what follows the signature. */
static int
rev_ocsp_eval(const uint8_t *resp, size_t len, const struct rev_cert *cert,
              const struct rev_cert *issuer, int64_t now, struct rev_verdict *v, bool check_sig)
{
    static const char *const statuses[] = {
        "successful", "malformedRequest", "internalError", "tryLater",
        "?",          "sigRequired",      "unauthorized"};
    struct rev_span rd = {resp, len}, top, st, rb, rtype, octets, basic, tbs, tbs_all, alg_all,
                    sigbits, sig, certs = {NULL, 0}, v0;
    memset(v, 0, sizeof(*v));
    v->status = REV_UNKNOWN;
    v->reason = -1;
    if (resp == NULL || len == 0)
        return rev_fail(v, "empty response");

    /* OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED, responseBytes [0] EXPLICIT ... } */
    if (rev_der_get(&rd, 0x30, &top, NULL) != CAT_OK || rd.len != 0 ||
        rev_der_get(&top, 0x0a, &st, NULL) != CAT_OK || st.len != 1)
        return rev_fail(v, "not an OCSP response");
    if (st.p[0] != 0)
        return rev_fail(v, "responder said %s",
                        st.p[0] < CAT_ARRAY_LEN(statuses) ? statuses[st.p[0]] : "?");
    struct rev_span rbx;
    if (rev_der_get(&top, 0xa0, &rbx, NULL) != CAT_OK || top.len != 0 ||
        rev_der_get(&rbx, 0x30, &rb, NULL) != CAT_OK || rbx.len != 0 ||
        rev_der_get(&rb, 0x06, &rtype, NULL) != CAT_OK ||
        rev_der_get(&rb, 0x04, &octets, NULL) != CAT_OK || rb.len != 0)
        return rev_fail(v, "malformed responseBytes");
    if (!rev_span_eq(rtype, rev_oid_basic, sizeof(rev_oid_basic)))
        return rev_fail(v, "not a basic OCSP response");

    /* BasicOCSPResponse ::= SEQUENCE { tbsResponseData, signatureAlgorithm, signature, certs } */
    rd = octets;
    if (rev_der_get(&rd, 0x30, &basic, NULL) != CAT_OK || rd.len != 0 ||
        rev_der_get(&basic, 0x30, &tbs, &tbs_all) != CAT_OK ||
        rev_der_get(&basic, 0x30, &v0, &alg_all) != CAT_OK ||
        rev_der_get(&basic, 0x03, &sigbits, NULL) != CAT_OK || sigbits.len < 1 || sigbits.p[0] != 0)
        return rev_fail(v, "malformed BasicOCSPResponse");
    sig = (struct rev_span){sigbits.p + 1, sigbits.len - 1};
    if (rev_der_get(&basic, 0xa0, &v0, NULL) == CAT_OK &&
        (rev_der_get(&v0, 0x30, &certs, NULL) != CAT_OK || v0.len != 0))
        return rev_fail(v, "malformed certs in the response");
    if (basic.len != 0)
        return rev_fail(v, "malformed BasicOCSPResponse");

    /* ResponseData ::= SEQUENCE { version [0], responderID, producedAt, responses, exts [1] } */
    struct rev_span rid, produced, responses, exts;
    uint8_t rid_tag;
    int64_t produced_at;
    if (rev_der_get(&tbs, 0xa0, &v0, NULL) == CAT_OK) {
        struct rev_span ver;
        if (rev_der_get(&v0, 0x02, &ver, NULL) != CAT_OK || !rev_span_eq(ver, "\x00", 1))
            return rev_fail(v, "unsupported ResponseData version");
    }
    if (rev_der_next(&tbs, &rid_tag, &rid, NULL) != CAT_OK || (rid_tag != 0xa1 && rid_tag != 0xa2))
        return rev_fail(v, "malformed responderID");
    if (rev_der_get(&tbs, 0x18, &produced, NULL) != CAT_OK ||
        rev_der_time(0x18, produced, &produced_at) != CAT_OK)
        return rev_fail(v, "malformed producedAt");
    if (rev_der_get(&tbs, 0x30, &responses, NULL) != CAT_OK)
        return rev_fail(v, "malformed responses");
    /* The nonce is the one extension we know; we send none, so it is not checked. */
    static const uint8_t oid_nonce[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01, 0x02};
    if (rev_der_get(&tbs, 0xa1, &exts, NULL) == CAT_OK &&
        rev_exts_ok(exts, oid_nonce, sizeof(oid_nonce)) != CAT_OK)
        return rev_fail(v, "unknown critical extension in the response");
    if (tbs.len != 0)
        return rev_fail(v, "malformed ResponseData");

    /* The signature first: nothing in the response counts before it verifies. */
    struct rev_span signer;
    const char *err;
    if (rev_find_signer(rid_tag, rid, certs, issuer, now, &signer, v) != CAT_OK && check_sig)
        return CAT_ERR;
    if (check_sig && rev_sig_verify(alg_all, tbs_all, sig, signer, &err) != CAT_OK)
        return rev_fail(v, "response signature: %s", err);

    /* Our SingleResponse among the responses. */
    struct rev_span one, found = {NULL, 0};
    for (int i = 0; i < 256 && responses.len > 0; i++) {
        struct rev_span copy, certid;
        if (rev_der_get(&responses, 0x30, &one, NULL) != CAT_OK)
            return rev_fail(v, "malformed responses");
        copy = one;
        if (rev_der_get(&copy, 0x30, &certid, NULL) != CAT_OK)
            return rev_fail(v, "malformed SingleResponse");
        if (rev_certid_match(certid, cert, issuer)) {
            found = one;
            break;
        }
    }
    if (found.p == NULL)
        return rev_fail(v, "response is not about this certificate");
    if (rev_single(found, v) != CAT_OK)
        return CAT_ERR;

    /* Freshness (RFC 6960 3.2 items 5, 6 with some skew; RFC 5019 4 for no nextUpdate). */
    char t1[32];
    if (v->this_update > now + REV_SKEW_S || produced_at > now + REV_SKEW_S) {
        rev_time_str(v->this_update, t1);
        return rev_fail(v, "response from the future (thisUpdate %s)", t1);
    }
    if (v->next_update != 0) {
        if (v->next_update < v->this_update)
            return rev_fail(v, "nextUpdate before thisUpdate");
        if (v->next_update + REV_SKEW_S < now) {
            rev_time_str(v->next_update, t1);
            return rev_fail(v, "stale response (nextUpdate %s)", t1);
        }
    } else if (v->this_update + REV_NO_NEXT_MAX_AGE + REV_SKEW_S < now) {
        rev_time_str(v->this_update, t1);
        return rev_fail(v, "stale response (thisUpdate %s, no nextUpdate)", t1);
    }
    return CAT_OK;
}

int
rev_ocsp_check(const uint8_t *resp, size_t len, const struct rev_cert *cert,
               const struct rev_cert *issuer, int64_t now, struct rev_verdict *v)
{
    return rev_ocsp_eval(resp, len, cert, issuer, now, v, true);
}
