/*
 * The X.509 reading that revocation needs, over untrusted DER: a TLV walker,
 * times, the few certificate fields OCSP and CRLs refer to (serial, names,
 * key, validity, AIA, CRL distribution points, key usages), and signature
 * verification with wolfCrypt. Our own walker rather than wolfSSL's
 * DecodedCert because DecodedCert keeps only the first AIA/CDP URI (often
 * ldap:// in enterprise PKIs) and stores keys in per-algorithm shapes; the
 * cryptography itself is wolfCrypt's. Readers never step outside their span.
 */
#include "core/rev_int.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/ed25519.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/rsa.h>
#include <wolfssl/wolfcrypt/signature.h>

/* ---- DER ------------------------------------------------------------------------ */

int
rev_der_next(struct rev_span *rd, uint8_t *tag, struct rev_span *val, struct rev_span *whole)
{
    const uint8_t *p = rd->p;
    size_t n = rd->len, len, hl = 2;

    if (n < 2 || (p[0] & 0x1f) == 0x1f)
        return CAT_ERR;
    if (p[1] < 0x80) {
        len = p[1];
    } else {
        size_t nb = p[1] & 0x7f;
        /* 0x80 is BER's indefinite length. Four octets reach far past any limit of ours. */
        if (nb == 0 || nb > 4 || n < 2 + nb)
            return CAT_ERR;
        len = 0;
        for (size_t i = 0; i < nb; i++)
            len = (len << 8) | p[2 + i];
        hl += nb;
    }
    if (len > n - hl)
        return CAT_ERR;
    *tag = p[0];
    val->p = p + hl;
    val->len = len;
    if (whole != NULL) {
        whole->p = p;
        whole->len = hl + len;
    }
    rd->p += hl + len;
    rd->len -= hl + len;
    return CAT_OK;
}

int
rev_der_get(struct rev_span *rd, uint8_t tag, struct rev_span *val, struct rev_span *whole)
{
    struct rev_span save = *rd;
    uint8_t t;
    if (rev_der_next(rd, &t, val, whole) != CAT_OK)
        return CAT_ERR;
    if (t != tag) {
        *rd = save;
        return CAT_ERR;
    }
    return CAT_OK;
}

bool
rev_der_peek(const struct rev_span *rd, uint8_t tag)
{
    return rd->len > 0 && rd->p[0] == tag;
}

/* An OPTIONAL field: takes it if it is there. */
static bool
rev_der_opt(struct rev_span *rd, uint8_t tag, struct rev_span *val)
{
    return rev_der_get(rd, tag, val, NULL) == CAT_OK;
}

bool
rev_span_eq(struct rev_span a, const void *p, size_t len)
{
    return a.len == len && (len == 0 || memcmp(a.p, p, len) == 0);
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t
rev_days(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int
rev_digits(const uint8_t *p, size_t n, unsigned *out)
{
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return CAT_ERR;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    *out = v;
    return CAT_OK;
}

int
rev_der_time(uint8_t tag, struct rev_span v, int64_t *t)
{
    static const unsigned mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const uint8_t *p = v.p;
    unsigned y, mo, d, h, mi, s;
    size_t n = v.len, yl;

    if (tag == 0x17) { /* UTCTime: YYMMDDHHMMSSZ (RFC 5280 4.1.2.5.1) */
        if (n != 13)
            return CAT_ERR;
        yl = 2;
    } else if (tag == 0x18) { /* GeneralizedTime: YYYYMMDDHHMMSS[.f+]Z */
        if (n < 15)
            return CAT_ERR;
        yl = 4;
    } else {
        return CAT_ERR;
    }
    if (p[n - 1] != 'Z' || rev_digits(p, yl, &y) != CAT_OK ||
        rev_digits(p + yl, 2, &mo) != CAT_OK || rev_digits(p + yl + 2, 2, &d) != CAT_OK ||
        rev_digits(p + yl + 4, 2, &h) != CAT_OK || rev_digits(p + yl + 6, 2, &mi) != CAT_OK ||
        rev_digits(p + yl + 8, 2, &s) != CAT_OK)
        return CAT_ERR;
    size_t rest = n - 1 - (yl + 10);
    if (rest > 0) {
        /* Fractional seconds (allowed in GeneralizedTime, seen in OCSP responses): dropped. */
        unsigned frac;
        if (tag != 0x18 || rest < 2 || rest > 10 || p[yl + 10] != '.' ||
            rev_digits(p + yl + 11, rest - 1, &frac) != CAT_OK)
            return CAT_ERR;
    }
    if (yl == 2)
        y += y >= 50 ? 1900 : 2000;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || s > 59)
        return CAT_ERR;
    if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
        return CAT_ERR;
    *t = rev_days(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
    return CAT_OK;
}

void
rev_time_str(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(out, 32, "%Y-%m-%d %H:%M:%SZ", &tm) == 0)
        snprintf(out, 32, "@%lld", (long long)t);
}

/* ---- OIDs (DER contents) ------------------------------------------------------------ */

#define OID(name, ...) static const uint8_t name[] = {__VA_ARGS__}
OID(oid_aia, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x01);
OID(oid_ad_ocsp, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01);
OID(oid_crldp, 0x55, 0x1d, 0x1f);
OID(oid_eku, 0x55, 0x1d, 0x25);
OID(oid_ku, 0x55, 0x1d, 0x0f);
OID(oid_bc, 0x55, 0x1d, 0x13);
OID(oid_san, 0x55, 0x1d, 0x11);
OID(oid_policies, 0x55, 0x1d, 0x20);
OID(oid_kp_ocsp, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x09);
OID(oid_rsa, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01);
OID(oid_rsa_pss, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a);
OID(oid_mgf1, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08);
OID(oid_ec, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01);
OID(oid_ed25519, 0x2b, 0x65, 0x70);
#define OID_EQ(span, name) rev_span_eq((span), (name), sizeof(name))

#define SIG_RSA 1
#define SIG_ECDSA 2

/* Signature algorithms with a fixed hash: OID contents, kind, hash. */
static const struct rev_sigalg {
    uint8_t oid[9];
    uint8_t len;
    int kind;
    enum wc_HashType hash;
} rev_sigalgs[] = {
    {{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05}, 9, SIG_RSA, WC_HASH_TYPE_SHA},
    {{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0e}, 9, SIG_RSA, WC_HASH_TYPE_SHA224},
    {{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b}, 9, SIG_RSA, WC_HASH_TYPE_SHA256},
    {{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c}, 9, SIG_RSA, WC_HASH_TYPE_SHA384},
    {{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d}, 9, SIG_RSA, WC_HASH_TYPE_SHA512},
    {{0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01}, 7, SIG_ECDSA, WC_HASH_TYPE_SHA},
    {{0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x01}, 8, SIG_ECDSA, WC_HASH_TYPE_SHA224},
    {{0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02}, 8, SIG_ECDSA, WC_HASH_TYPE_SHA256},
    {{0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03}, 8, SIG_ECDSA, WC_HASH_TYPE_SHA384},
    {{0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04}, 8, SIG_ECDSA, WC_HASH_TYPE_SHA512},
};

/* Hash algorithm identifiers (RSASSA-PSS parameters). */
static const struct rev_hashalg {
    uint8_t oid[9];
    uint8_t len;
    enum wc_HashType hash;
    int mgf;
} rev_hashalgs[] = {
    {{0x2b, 0x0e, 0x03, 0x02, 0x1a}, 5, WC_HASH_TYPE_SHA, WC_MGF1SHA1},
    {{0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04}, 9, WC_HASH_TYPE_SHA224, WC_MGF1SHA224},
    {{0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01}, 9, WC_HASH_TYPE_SHA256, WC_MGF1SHA256},
    {{0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02}, 9, WC_HASH_TYPE_SHA384, WC_MGF1SHA384},
    {{0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03}, 9, WC_HASH_TYPE_SHA512, WC_MGF1SHA512},
};

/* ---- certificates --------------------------------------------------------------------- */

/* The contents of a BIT STRING without unused bits (what keys and signatures are). */
static int
rev_bits(struct rev_span v, struct rev_span *out)
{
    if (v.len < 1 || v.p[0] != 0)
        return CAT_ERR;
    out->p = v.p + 1;
    out->len = v.len - 1;
    return CAT_OK;
}

static int
rev_time_any(struct rev_span *rd, int64_t *t)
{
    uint8_t tag;
    struct rev_span v;
    if (rev_der_next(rd, &tag, &v, NULL) != CAT_OK)
        return CAT_ERR;
    return rev_der_time(tag, v, t);
}

static void
rev_ext_ku(struct rev_cert *c, struct rev_span v)
{
    struct rev_span rd = v, bits;
    c->has_ku = true;
    c->ku = 0;
    if (rev_der_get(&rd, 0x03, &bits, NULL) == CAT_OK && bits.len >= 2)
        c->ku = bits.p[1];
}

static void
rev_ext_eku(struct rev_cert *c, struct rev_span v)
{
    struct rev_span rd = v, seq, oid;
    c->has_eku = true;
    if (rev_der_get(&rd, 0x30, &seq, NULL) != CAT_OK)
        return;
    for (int i = 0; i < 64 && rev_der_get(&seq, 0x06, &oid, NULL) == CAT_OK; i++)
        if (OID_EQ(oid, oid_kp_ocsp))
            c->eku_ocsp = true;
}

static void
rev_ext_bc(struct rev_cert *c, struct rev_span v)
{
    struct rev_span rd = v, seq, b;
    if (rev_der_get(&rd, 0x30, &seq, NULL) == CAT_OK &&
        rev_der_get(&seq, 0x01, &b, NULL) == CAT_OK && b.len == 1 && b.p[0] != 0)
        c->is_ca = true;
}

/* Extensions ::= SEQUENCE OF Extension; remembers the ones revocation needs. */
static int
rev_cert_exts(struct rev_cert *c, struct rev_span exts)
{
    struct rev_span rd = exts, ext;
    for (int i = 0; i < 256 && rd.len > 0; i++) {
        struct rev_span oid, crit, val;
        bool critical = false;
        if (rev_der_get(&rd, 0x30, &ext, NULL) != CAT_OK ||
            rev_der_get(&ext, 0x06, &oid, NULL) != CAT_OK)
            return CAT_ERR;
        if (rev_der_get(&ext, 0x01, &crit, NULL) == CAT_OK)
            critical = crit.len == 1 && crit.p[0] != 0;
        if (rev_der_get(&ext, 0x04, &val, NULL) != CAT_OK || ext.len != 0)
            return CAT_ERR;
        if (OID_EQ(oid, oid_aia))
            c->aia = val;
        else if (OID_EQ(oid, oid_crldp))
            c->crldp = val;
        else if (OID_EQ(oid, oid_eku))
            rev_ext_eku(c, val);
        else if (OID_EQ(oid, oid_ku))
            rev_ext_ku(c, val);
        else if (OID_EQ(oid, oid_bc))
            rev_ext_bc(c, val);
        else if (critical && !OID_EQ(oid, oid_san) && !OID_EQ(oid, oid_policies))
            c->unknown_critical = true;
    }
    return rd.len == 0 ? CAT_OK : CAT_ERR;
}

int
rev_cert_parse(const uint8_t *der, size_t len, struct rev_cert *c, const char **err)
{
    struct rev_span rd = {der, len}, cert, tbs, v, sigbits;
    memset(c, 0, sizeof(*c));
    c->der = rd;
    *err = "malformed certificate";
    if (rev_der_get(&rd, 0x30, &cert, NULL) != CAT_OK || rd.len != 0)
        return CAT_ERR;
    c->der.len = len;
    if (rev_der_get(&cert, 0x30, &tbs, &c->tbs) != CAT_OK ||
        rev_der_get(&cert, 0x30, &v, &c->sig_alg) != CAT_OK ||
        rev_der_get(&cert, 0x03, &sigbits, NULL) != CAT_OK || cert.len != 0 ||
        rev_bits(sigbits, &c->sig) != CAT_OK)
        return CAT_ERR;
    /* TBSCertificate (RFC 5280 4.1). */
    (void)rev_der_opt(&tbs, 0xa0, &v); /* version: absent in v1 */
    if (rev_der_get(&tbs, 0x02, &c->serial, NULL) != CAT_OK || c->serial.len == 0 ||
        c->serial.len > REV_MAX_SERIAL) {
        *err = "malformed certificate serial number";
        return CAT_ERR;
    }
    struct rev_span inner_alg, validity, spki;
    if (rev_der_get(&tbs, 0x30, &v, &inner_alg) != CAT_OK ||
        rev_der_get(&tbs, 0x30, &v, &c->issuer) != CAT_OK ||
        rev_der_get(&tbs, 0x30, &validity, NULL) != CAT_OK ||
        rev_der_get(&tbs, 0x30, &v, &c->subject) != CAT_OK ||
        rev_der_get(&tbs, 0x30, &spki, &c->spki) != CAT_OK)
        return CAT_ERR;
    /* The signed algorithm must be the one the signature claims (RFC 5280 4.1.1.2). */
    if (!rev_span_eq(inner_alg, c->sig_alg.p, c->sig_alg.len)) {
        *err = "certificate signature algorithms differ";
        return CAT_ERR;
    }
    if (rev_time_any(&validity, &c->not_before) != CAT_OK ||
        rev_time_any(&validity, &c->not_after) != CAT_OK || validity.len != 0) {
        *err = "malformed certificate validity";
        return CAT_ERR;
    }
    struct rev_span keybits;
    if (rev_der_get(&spki, 0x30, &v, NULL) != CAT_OK ||
        rev_der_get(&spki, 0x03, &keybits, NULL) != CAT_OK || spki.len != 0 ||
        rev_bits(keybits, &c->key) != CAT_OK)
        return CAT_ERR;
    /* issuerUniqueID [1], subjectUniqueID [2]: ignored. */
    struct rev_span uid;
    (void)rev_der_opt(&tbs, 0x81, &uid);
    (void)rev_der_opt(&tbs, 0x82, &uid);
    if (rev_der_opt(&tbs, 0xa3, &v)) {
        struct rev_span exts;
        if (rev_der_get(&v, 0x30, &exts, NULL) != CAT_OK || v.len != 0 ||
            rev_cert_exts(c, exts) != CAT_OK) {
            *err = "malformed certificate extensions";
            return CAT_ERR;
        }
    }
    if (tbs.len != 0)
        return CAT_ERR;
    *err = NULL;
    return CAT_OK;
}

/* Keeps a URI if it is http:// and new, counts it if it is of another scheme. */
static void
rev_url_add(struct rev_urls *out, struct rev_span uri)
{
    if (uri.len <= 7 || strncasecmp((const char *)uri.p, "http://", 7) != 0) {
        out->other++;
        return;
    }
    for (size_t i = 0; i < out->n; i++)
        if (rev_span_eq(out->url[i], uri.p, uri.len))
            return;
    if (out->n < REV_MAX_URLS)
        out->url[out->n++] = uri;
}

void
rev_cert_ocsp_urls(const struct rev_cert *c, struct rev_urls *out)
{
    struct rev_span rd = c->aia, seq, ad, method, loc;
    memset(out, 0, sizeof(*out));
    /* AuthorityInfoAccessSyntax ::= SEQUENCE OF AccessDescription (RFC 5280 4.2.2.1). */
    if (rev_der_get(&rd, 0x30, &seq, NULL) != CAT_OK)
        return;
    for (int i = 0; i < 32 && rev_der_get(&seq, 0x30, &ad, NULL) == CAT_OK; i++) {
        uint8_t tag;
        if (rev_der_get(&ad, 0x06, &method, NULL) != CAT_OK ||
            rev_der_next(&ad, &tag, &loc, NULL) != CAT_OK || !OID_EQ(method, oid_ad_ocsp))
            continue;
        if (tag == 0x86) /* uniformResourceIdentifier [6] IA5String */
            rev_url_add(out, loc);
        else
            out->other++;
    }
}

void
rev_cert_crl_urls(const struct rev_cert *c, struct rev_urls *out)
{
    struct rev_span rd = c->crldp, seq, dp;
    memset(out, 0, sizeof(*out));
    /* CRLDistributionPoints ::= SEQUENCE OF DistributionPoint (RFC 5280 4.2.1.13). */
    if (rev_der_get(&rd, 0x30, &seq, NULL) != CAT_OK)
        return;
    for (int i = 0; i < 32 && rev_der_get(&seq, 0x30, &dp, NULL) == CAT_OK; i++) {
        struct rev_span name, full, gn;
        uint8_t tag;
        /* A DP with reasons or a cRLIssuer is a partition or indirect CRL: not ours. */
        if (rev_der_get(&dp, 0xa0, &name, NULL) != CAT_OK || dp.len != 0) {
            out->other++;
            continue;
        }
        if (rev_der_get(&name, 0xa0, &full, NULL) != CAT_OK) { /* nameRelativeToCRLIssuer */
            out->other++;
            continue;
        }
        for (int j = 0; j < 16 && rev_der_next(&full, &tag, &gn, NULL) == CAT_OK; j++) {
            if (tag == 0x86)
                rev_url_add(out, gn);
            else
                out->other++;
        }
    }
}

/* ---- signatures ----------------------------------------------------------------------- */

static int
rev_verify_rsa(enum wc_HashType hash, bool pss, int mgf, int salt, struct rev_span data,
               struct rev_span sig, struct rev_span spki, const char **err)
{
    RsaKey key;
    word32 idx = 0;
    int rc = CAT_ERR;
    uint8_t *tmp = NULL;

    if (wc_InitRsaKey(&key, NULL) != 0) {
        *err = "out of memory";
        return CAT_ERR;
    }
    if (wc_RsaPublicKeyDecode(spki.p, &idx, &key, (word32)spki.len) != 0) {
        *err = "bad RSA public key";
        goto out;
    }
    int bytes = wc_RsaEncryptSize(&key);
    /* Browsers' floor for RSA (CA/Browser Forum BR 6.1.5), and the module's ceiling. */
    if (bytes < 256 || bytes > 1024) {
        *err = "RSA key size out of range (2048..8192 bits)";
        goto out;
    }
    if (sig.len != (size_t)bytes) {
        *err = "RSA signature length differs from the key size";
        goto out;
    }
    if (!pss) {
        if (wc_SignatureVerify(hash, WC_SIGNATURE_TYPE_RSA_W_ENC, data.p, (word32)data.len, sig.p,
                               (word32)sig.len, &key, sizeof(key)) != 0)
            *err = "bad signature";
        else
            rc = CAT_OK;
        goto out;
    }
    uint8_t digest[WC_MAX_DIGEST_SIZE];
    int dlen = wc_HashGetDigestSize(hash);
    tmp = malloc(sig.len);
    if (tmp == NULL || dlen <= 0 ||
        wc_Hash(hash, data.p, (word32)data.len, digest, sizeof(digest)) != 0) {
        *err = "out of memory";
        goto out;
    }
    memcpy(tmp, sig.p, sig.len);
    uint8_t out_buf[1024];
    int n =
        wc_RsaPSS_Verify_ex(tmp, (word32)sig.len, out_buf, sizeof(out_buf), hash, mgf, salt, &key);
    if (n < 0 || wc_RsaPSS_CheckPadding_ex(digest, (word32)dlen, out_buf, (word32)n, hash, salt,
                                           bytes * 8) != 0)
        *err = "bad signature";
    else
        rc = CAT_OK;
out:
    free(tmp);
    wc_FreeRsaKey(&key);
    return rc;
}

/* RSASSA-PSS-params (RFC 4055 3.1): the hash, MGF1 with the same hash, salt length. */
static int
rev_pss_params(struct rev_span params, enum wc_HashType *hash, int *mgf, int *salt)
{
    struct rev_span rd = params, seq, v, alg, oid;
    *hash = WC_HASH_TYPE_SHA;
    *mgf = WC_MGF1SHA1;
    *salt = 20;
    if (rev_der_get(&rd, 0x30, &seq, NULL) != CAT_OK || rd.len != 0)
        return CAT_ERR;
    if (rev_der_get(&seq, 0xa0, &v, NULL) == CAT_OK) {
        if (rev_der_get(&v, 0x30, &alg, NULL) != CAT_OK ||
            rev_der_get(&alg, 0x06, &oid, NULL) != CAT_OK)
            return CAT_ERR;
        size_t i;
        for (i = 0; i < CAT_ARRAY_LEN(rev_hashalgs); i++)
            if (rev_span_eq(oid, rev_hashalgs[i].oid, rev_hashalgs[i].len))
                break;
        if (i == CAT_ARRAY_LEN(rev_hashalgs))
            return CAT_ERR;
        *hash = rev_hashalgs[i].hash;
    }
    if (rev_der_get(&seq, 0xa1, &v, NULL) == CAT_OK) {
        struct rev_span halg, hoid;
        if (rev_der_get(&v, 0x30, &alg, NULL) != CAT_OK ||
            rev_der_get(&alg, 0x06, &oid, NULL) != CAT_OK || !OID_EQ(oid, oid_mgf1) ||
            rev_der_get(&alg, 0x30, &halg, NULL) != CAT_OK ||
            rev_der_get(&halg, 0x06, &hoid, NULL) != CAT_OK)
            return CAT_ERR;
        size_t i;
        for (i = 0; i < CAT_ARRAY_LEN(rev_hashalgs); i++)
            if (rev_span_eq(hoid, rev_hashalgs[i].oid, rev_hashalgs[i].len))
                break;
        if (i == CAT_ARRAY_LEN(rev_hashalgs))
            return CAT_ERR;
        *mgf = rev_hashalgs[i].mgf;
    } else if (*hash != WC_HASH_TYPE_SHA) {
        return CAT_ERR; /* MGF1 with SHA-1 under another hash: not supported */
    }
    if (rev_der_get(&seq, 0xa2, &v, NULL) == CAT_OK) {
        struct rev_span in;
        if (rev_der_get(&v, 0x02, &in, NULL) != CAT_OK || in.len < 1 || in.len > 2 ||
            (in.p[0] & 0x80))
            return CAT_ERR;
        *salt = in.len == 1 ? in.p[0] : (in.p[0] << 8 | in.p[1]);
    }
    if (rev_der_get(&seq, 0xa3, &v, NULL) == CAT_OK) {
        struct rev_span in;
        if (rev_der_get(&v, 0x02, &in, NULL) != CAT_OK || in.len != 1 || in.p[0] != 1)
            return CAT_ERR;
    }
    return seq.len == 0 ? CAT_OK : CAT_ERR;
}

int
rev_sig_verify(struct rev_span alg, struct rev_span data, struct rev_span sig, struct rev_span spki,
               const char **err)
{
    struct rev_span rd = alg, seq, oid, kseq, kalg, koid;
    *err = "unsupported signature algorithm";
    if (rev_der_get(&rd, 0x30, &seq, NULL) != CAT_OK || rd.len != 0 ||
        rev_der_get(&seq, 0x06, &oid, NULL) != CAT_OK)
        return CAT_ERR;
    rd = spki;
    if (rev_der_get(&rd, 0x30, &kseq, NULL) != CAT_OK ||
        rev_der_get(&kseq, 0x30, &kalg, NULL) != CAT_OK ||
        rev_der_get(&kalg, 0x06, &koid, NULL) != CAT_OK) {
        *err = "malformed public key";
        return CAT_ERR;
    }
    if (OID_EQ(oid, oid_ed25519)) {
        ed25519_key key;
        word32 idx = 0;
        int res = 0;
        if (seq.len != 0 || !OID_EQ(koid, oid_ed25519)) {
            *err = "signature algorithm does not match the key";
            return CAT_ERR;
        }
        if (wc_ed25519_init(&key) != 0)
            return CAT_ERR;
        int rc = CAT_ERR;
        if (wc_Ed25519PublicKeyDecode(spki.p, &idx, &key, (word32)spki.len) != 0)
            *err = "bad Ed25519 public key";
        else if (wc_ed25519_verify_msg(sig.p, (word32)sig.len, data.p, (word32)data.len, &res,
                                       &key) != 0 ||
                 res != 1)
            *err = "bad signature";
        else
            rc = CAT_OK;
        wc_ed25519_free(&key);
        return rc;
    }
    if (OID_EQ(oid, oid_rsa_pss)) {
        enum wc_HashType hash;
        int mgf, salt;
        if (!OID_EQ(koid, oid_rsa) && !OID_EQ(koid, oid_rsa_pss)) {
            *err = "signature algorithm does not match the key";
            return CAT_ERR;
        }
        if (rev_pss_params(seq, &hash, &mgf, &salt) != CAT_OK) {
            *err = "unsupported RSASSA-PSS parameters";
            return CAT_ERR;
        }
        return rev_verify_rsa(hash, true, mgf, salt, data, sig, spki, err);
    }
    const struct rev_sigalg *a = NULL;
    for (size_t i = 0; i < CAT_ARRAY_LEN(rev_sigalgs); i++)
        if (rev_span_eq(oid, rev_sigalgs[i].oid, rev_sigalgs[i].len))
            a = &rev_sigalgs[i];
    if (a == NULL)
        return CAT_ERR; /* MD5, DSA, GOST, ... */
    if (a->kind == SIG_RSA) {
        /* Parameters: NULL, or absent (RFC 4055 5). */
        struct rev_span nul;
        if (seq.len != 0 &&
            (rev_der_get(&seq, 0x05, &nul, NULL) != CAT_OK || nul.len != 0 || seq.len != 0))
            return CAT_ERR;
        if (!OID_EQ(koid, oid_rsa)) {
            *err = "signature algorithm does not match the key";
            return CAT_ERR;
        }
        return rev_verify_rsa(a->hash, false, 0, 0, data, sig, spki, err);
    }
    /* ECDSA: no parameters (RFC 5758 3.2). */
    if (seq.len != 0)
        return CAT_ERR;
    if (!OID_EQ(koid, oid_ec)) {
        *err = "signature algorithm does not match the key";
        return CAT_ERR;
    }
    ecc_key key;
    word32 idx = 0;
    if (wc_ecc_init(&key) != 0) {
        *err = "out of memory";
        return CAT_ERR;
    }
    int rc = CAT_ERR;
    if (wc_EccPublicKeyDecode(spki.p, &idx, &key, (word32)spki.len) != 0)
        *err = "bad EC public key";
    else if (wc_SignatureVerify(a->hash, WC_SIGNATURE_TYPE_ECC, data.p, (word32)data.len, sig.p,
                                (word32)sig.len, &key, sizeof(key)) != 0)
        *err = "bad signature";
    else
        rc = CAT_OK;
    wc_ecc_free(&key);
    return rc;
}

int
rev_cert_signed_by(const struct rev_cert *c, const struct rev_cert *issuer, const char **err)
{
    if (!rev_span_eq(c->issuer, issuer->subject.p, issuer->subject.len)) {
        *err = "issuer name differs";
        return CAT_ERR;
    }
    return rev_sig_verify(c->sig_alg, c->tbs, c->sig, issuer->spki, err);
}

const char *
rev_reason_str(int reason)
{
    /* CRLReason (RFC 5280 5.3.1); 7 is not used. */
    static const char *const names[] = {
        "unspecified",   "keyCompromise",        "cACompromise",    "affiliationChanged",
        "superseded",    "cessationOfOperation", "certificateHold", "?",
        "removeFromCRL", "privilegeWithdrawn",   "aACompromise",
    };
    if (reason < 0 || (size_t)reason >= CAT_ARRAY_LEN(names))
        return "?";
    return names[reason];
}
