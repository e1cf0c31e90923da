/*
 * One certificate for the validation engine: wolfSSL's parser (wc_ParseCert,
 * NO_VERIFY, no CertManager) reduced to the facts path building needs, our
 * own dates (checked against the caller's `now`, never the clock), URLs
 * from the extensions, PEM splitting and the signature check of one link.
 *
 * Every byte here comes from the network or from CA files: bounds are
 * checked on every DER step, text is sanitised before anyone prints it.
 */
#include "core/val_int.h"

#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/hash.h>

/* ---- DER ------------------------------------------------------------------ */

int
val_der_next(const uint8_t **p, const uint8_t *end, uint8_t *tag, const uint8_t **val, size_t *vlen)
{
    const uint8_t *q = *p;
    if (q >= end || end - q < 2)
        return CAT_ERR;
    *tag = *q++;
    if ((*tag & 0x1f) == 0x1f) /* high tag numbers: nothing we read uses them */
        return CAT_ERR;
    size_t l = *q++;
    if (l & 0x80) {
        size_t nb = l & 0x7f;
        if (nb == 0 || nb > 4 || (size_t)(end - q) < nb)
            return CAT_ERR;
        l = 0;
        for (size_t i = 0; i < nb; i++)
            l = (l << 8) | *q++;
    }
    if (l > (size_t)(end - q))
        return CAT_ERR;
    *val = q;
    *vlen = l;
    *p = q + l;
    return CAT_OK;
}

/* ---- time --------------------------------------------------------------- */

/* Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm). */
static int64_t
val_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool
val_digits(const uint8_t *s, size_t n, unsigned *out)
{
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return true;
}

int
val_time_parse(const uint8_t *tlv, size_t len, time_t *out)
{
    const uint8_t *p = tlv, *v;
    uint8_t tag;
    size_t vl;
    if (val_der_next(&p, tlv + len, &tag, &v, &vl) != CAT_OK)
        return CAT_ERR;
    /* RFC 5280 4.1.2.5: UTCTime YYMMDDHHMMSSZ, GeneralizedTime YYYYMMDDHHMMSSZ. */
    unsigned year, mon, day, hh, mm, ss;
    if (tag == 0x17 && vl == 13) {
        if (!val_digits(v, 2, &year))
            return CAT_ERR;
        year += year >= 50 ? 1900 : 2000;
        v += 2;
    } else if (tag == 0x18 && vl == 15) {
        if (!val_digits(v, 4, &year))
            return CAT_ERR;
        v += 4;
    } else {
        return CAT_ERR;
    }
    if (!val_digits(v, 2, &mon) || !val_digits(v + 2, 2, &day) || !val_digits(v + 4, 2, &hh) ||
        !val_digits(v + 6, 2, &mm) || !val_digits(v + 8, 2, &ss) || v[10] != 'Z')
        return CAT_ERR;
    static const unsigned mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mon < 1 || mon > 12 || day < 1 || day > mdays[mon - 1] || hh > 23 || mm > 59 || ss > 59)
        return CAT_ERR;
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (mon == 2 && day == 29 && !leap)
        return CAT_ERR;
    int64_t t = val_days_from_civil(year, mon, day) * 86400 + hh * 3600 + mm * 60 + ss;
    if (sizeof(time_t) < 8 && (t > INT32_MAX || t < INT32_MIN))
        return CAT_ERR;
    *out = (time_t)t;
    return CAT_OK;
}

/* ---- text ------------------------------------------------------------------ */

/* Length of the valid, printable UTF-8 character at s (n bytes left), 0 if none. */
static size_t
val_utf8_len(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    if (c < 0x80)
        return c >= 0x20 && c != 0x7f ? 1 : 0;
    size_t len;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    /* Overlong forms, surrogates, beyond Unicode, C1 controls. */
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp < 0xa0))
        return 0;
    return len;
}

void
val_text_copy(char *dst, size_t cap, const uint8_t *src, size_t n)
{
    if (cap == 0)
        return;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t l = val_utf8_len(src + i, n - i);
        size_t w = l ? l : 1;
        if (o + w >= cap)
            break;
        if (l)
            memcpy(dst + o, src + i, l);
        else
            dst[o] = '?';
        o += w;
        i += l ? l : 1;
    }
    dst[o] = '\0';
}

/* ---- URLs from the extensions ---------------------------------------------- */

static const uint8_t val_oid_aia[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x01};
static const uint8_t val_oid_crldp[] = {0x55, 0x1d, 0x1f};
static const uint8_t val_oid_ocsp[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01};
static const uint8_t val_oid_ca_issuers[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x02};

/* The value (inside the OCTET STRING) of extension oid, or NULL. */
static const uint8_t *
val_ext_find(const struct val_cert *c, const uint8_t *oid, size_t oidlen, size_t *len)
{
    if (c->ext_len == 0)
        return NULL;
    const uint8_t *p = c->der + c->ext_off, *end = p + c->ext_len, *v;
    uint8_t tag;
    size_t vl;
    /* [3] { SEQUENCE OF Extension } */
    if (val_der_next(&p, end, &tag, &v, &vl) != CAT_OK || tag != 0xa3)
        return NULL;
    p = v;
    end = v + vl;
    if (val_der_next(&p, end, &tag, &v, &vl) != CAT_OK || tag != 0x30)
        return NULL;
    p = v;
    end = v + vl;
    for (unsigned guard = 0; p < end && guard < 64; guard++) {
        const uint8_t *ext, *q, *f;
        size_t extlen, fl;
        if (val_der_next(&p, end, &tag, &ext, &extlen) != CAT_OK || tag != 0x30)
            return NULL;
        q = ext;
        const uint8_t *qend = ext + extlen;
        if (val_der_next(&q, qend, &tag, &f, &fl) != CAT_OK || tag != 0x06)
            return NULL;
        if (fl != oidlen || memcmp(f, oid, oidlen) != 0)
            continue;
        if (val_der_next(&q, qend, &tag, &f, &fl) != CAT_OK)
            return NULL;
        if (tag == 0x01 && val_der_next(&q, qend, &tag, &f, &fl) != CAT_OK) /* critical */
            return NULL;
        if (tag != 0x04)
            return NULL;
        *len = fl;
        return f;
    }
    return NULL;
}

/* A URI GeneralName ([6] IA5String) that is an http:// URL of printable ASCII. */
static bool
val_url_take(const uint8_t *v, size_t vl, char *buf, size_t cap)
{
    if (vl < 8 || vl >= cap || strncasecmp((const char *)v, "http://", 7) != 0)
        return false;
    for (size_t i = 0; i < vl; i++)
        if (v[i] <= 0x20 || v[i] >= 0x7f)
            return false;
    memcpy(buf, v, vl);
    buf[vl] = '\0';
    return true;
}

/* AuthorityInfoAccess: SEQUENCE OF { method OID, location GeneralName }. */
static bool
val_url_aia(const uint8_t *p, const uint8_t *end, const uint8_t *method, char *buf, size_t cap)
{
    const uint8_t *v, *q, *f;
    uint8_t tag;
    size_t vl, fl;
    if (val_der_next(&p, end, &tag, &v, &vl) != CAT_OK || tag != 0x30)
        return false;
    p = v;
    end = v + vl;
    for (unsigned guard = 0; p < end && guard < 32; guard++) {
        if (val_der_next(&p, end, &tag, &v, &vl) != CAT_OK || tag != 0x30)
            return false;
        q = v;
        const uint8_t *qend = v + vl;
        if (val_der_next(&q, qend, &tag, &f, &fl) != CAT_OK || tag != 0x06)
            return false;
        bool want = fl == sizeof(val_oid_ocsp) && memcmp(f, method, fl) == 0;
        if (val_der_next(&q, qend, &tag, &f, &fl) != CAT_OK)
            return false;
        if (want && tag == 0x86 && val_url_take(f, fl, buf, cap))
            return true;
    }
    return false;
}

/* CRLDistributionPoints: SEQUENCE OF { [0] { [0] fullName GeneralNames } ... }. */
static bool
val_url_crldp(const uint8_t *p, const uint8_t *end, char *buf, size_t cap)
{
    const uint8_t *v, *q, *f, *g;
    uint8_t tag;
    size_t vl, fl, gl;
    if (val_der_next(&p, end, &tag, &v, &vl) != CAT_OK || tag != 0x30)
        return false;
    p = v;
    end = v + vl;
    for (unsigned guard = 0; p < end && guard < 32; guard++) {
        if (val_der_next(&p, end, &tag, &v, &vl) != CAT_OK || tag != 0x30)
            return false;
        q = v;
        const uint8_t *qend = v + vl;
        if (q >= qend)
            continue;
        if (val_der_next(&q, qend, &tag, &f, &fl) != CAT_OK)
            return false;
        if (tag != 0xa0) /* no distributionPoint: only a cRLIssuer */
            continue;
        q = f;
        qend = f + fl;
        if (val_der_next(&q, qend, &tag, &f, &fl) != CAT_OK)
            return false;
        if (tag != 0xa0) /* nameRelativeToCRLIssuer: no URL */
            continue;
        q = f;
        qend = f + fl;
        for (unsigned g2 = 0; q < qend && g2 < 32; g2++) {
            if (val_der_next(&q, qend, &tag, &g, &gl) != CAT_OK)
                return false;
            if (tag == 0x86 && val_url_take(g, gl, buf, cap))
                return true;
        }
    }
    return false;
}

bool
val_cert_url(const struct val_cert *c, enum val_url_kind kind, char *buf, size_t cap)
{
    size_t len;
    const uint8_t *v;
    bool ok = false;
    if (cap > 0)
        buf[0] = '\0';
    if (kind == VAL_URL_CRL) {
        v = val_ext_find(c, val_oid_crldp, sizeof(val_oid_crldp), &len);
        ok = v != NULL && val_url_crldp(v, v + len, buf, cap);
    } else {
        v = val_ext_find(c, val_oid_aia, sizeof(val_oid_aia), &len);
        ok = v != NULL &&
             val_url_aia(v, v + len, kind == VAL_URL_OCSP ? val_oid_ocsp : val_oid_ca_issuers, buf,
                         cap);
    }
    if (!ok && cap > 0)
        buf[0] = '\0';
    return ok;
}

/* ---- parse ------------------------------------------------------------------ */

/* Bits of an RSAPublicKey's modulus; 0 if malformed. */
static unsigned
val_rsa_bits(const uint8_t *k, size_t len)
{
    const uint8_t *p = k, *v, *n;
    uint8_t tag;
    size_t vl, nl;
    if (val_der_next(&p, k + len, &tag, &v, &vl) != CAT_OK || tag != 0x30)
        return 0;
    p = v;
    if (val_der_next(&p, v + vl, &tag, &n, &nl) != CAT_OK || tag != 0x02)
        return 0;
    while (nl > 0 && n[0] == 0) {
        n++;
        nl--;
    }
    if (nl == 0 || nl > 4096)
        return 0;
    unsigned bits = (unsigned)(nl - 1) * 8;
    for (uint8_t b = n[0]; b != 0; b >>= 1)
        bits++;
    return bits;
}

int
val_cert_parse(struct val_cert *c, const uint8_t *der, size_t len, DecodedCert *dc,
               const struct val_leaf_text *text)
{
    memset(c, 0, sizeof(*c));
    if (len == 0 || len > UINT32_MAX / 2)
        return CAT_ERR;
    c->der = der;
    c->len = len;
    if (wc_Sha256Hash(der, (word32)len, c->sha256) != 0)
        return CAT_ERR;
    wc_InitDecodedCert(dc, der, (word32)len, NULL);
    /* NO_VERIFY: parse only. No CertManager is involved, so nothing the
     * server sent can become a signer; dates are judged later at `now`. */
    int ret = wc_ParseCert(dc, CERT_TYPE, NO_VERIFY, NULL);
    if (ret == ASN_CRIT_EXT_E) {
        c->crit_unknown = true;
        ret = 0;
    }
    if (ret != 0 || dc->publicKey == NULL || dc->pubKeySize == 0 || dc->beforeDate == NULL ||
        dc->afterDate == NULL || dc->sigIndex > len)
        goto fail;
    if (val_time_parse(dc->beforeDate, (size_t)dc->beforeDateLen, &c->not_before) != CAT_OK ||
        val_time_parse(dc->afterDate, (size_t)dc->afterDateLen, &c->not_after) != CAT_OK)
        goto fail;
    memcpy(c->subject_hash, dc->subjectHash, VAL_HASH_SIZE);
    memcpy(c->issuer_hash, dc->issuerHash, VAL_HASH_SIZE);
    c->self_issued = memcmp(c->subject_hash, c->issuer_hash, VAL_HASH_SIZE) == 0;
    if (dc->extSubjKeyIdSet) {
        c->skid_set = true;
        memcpy(c->skid, dc->extSubjKeyId, VAL_HASH_SIZE);
    }
    if (dc->extAuthKeyIdSet) {
        c->akid_set = true;
        memcpy(c->akid, dc->extAuthKeyId, VAL_HASH_SIZE);
    }
    c->key_oid = dc->keyOID;
    c->curve_oid = dc->pkCurveOID;
    c->sig_oid = dc->signatureOID;
    /* wolfSSL may hand back a copy of the key (it does with OPENSSL_EXTRA):
     * the bytes are a verbatim slice of der, so keep their place in der
     * rather than another allocation. */
    const uint8_t *k = NULL;
    if (dc->publicKey >= der && dc->publicKey + dc->pubKeySize <= der + len)
        k = dc->publicKey;
    else
        k = memmem(der, len, dc->publicKey, dc->pubKeySize);
    if (k != NULL) {
        c->key_off = (size_t)(k - der);
        c->key_len = dc->pubKeySize;
    } else {
        c->key_oid = 0; /* cannot issue anything */
    }
    if (c->key_oid == RSAk || c->key_oid == RSAPSSk) {
        c->key_bits = val_rsa_bits(der + c->key_off, c->key_len);
    }
    c->bc_set = dc->extBasicConstSet;
    c->is_ca = dc->isCA;
    c->path_len_set = dc->pathLengthSet;
    c->path_len = dc->pathLength;
    c->ku_set = dc->extKeyUsageSet;
    c->ku = dc->extKeyUsage;
    c->eku_set = dc->extExtKeyUsageSet;
    c->eku = dc->extExtKeyUsage;
    if (dc->extensions != NULL && dc->extensionsSz > 0 && dc->extensions >= der &&
        dc->extensions + dc->extensionsSz <= der + len) {
        c->ext_off = (size_t)(dc->extensions - der);
        c->ext_len = (size_t)dc->extensionsSz;
    }
    if (text != NULL) {
        if (text->cn_cap > 0) {
            text->cn[0] = '\0';
            if (dc->subjectCN != NULL && dc->subjectCNLen > 0)
                val_text_copy(text->cn, text->cn_cap, (const uint8_t *)dc->subjectCN,
                              (size_t)dc->subjectCNLen);
        }
        if (text->issuer_cap > 0)
            val_text_copy(text->issuer, text->issuer_cap, (const uint8_t *)dc->issuer,
                          strnlen(dc->issuer, sizeof(dc->issuer)));
        if (text->dns_cap > 0) {
            text->dns[0] = '\0';
            for (const DNS_entry *e = dc->altNames; e != NULL; e = e->next) {
                if (e->type == ASN_DNS_TYPE && e->name != NULL && e->len > 0) {
                    val_text_copy(text->dns, text->dns_cap, (const uint8_t *)e->name,
                                  (size_t)e->len);
                    break;
                }
            }
        }
    }
    wc_FreeDecodedCert(dc);
    return CAT_OK;
fail:
    wc_FreeDecodedCert(dc);
    return CAT_ERR;
}

const uint8_t *
val_cert_key(const struct val_cert *c, uint32_t *len)
{
    *len = c->key_len;
    return c->der + c->key_off;
}

bool
val_cert_signed_by(const struct val_cert *child, const struct val_cert *parent)
{
    if (parent->key_oid == 0)
        return false;
    uint32_t kl;
    const uint8_t *k = val_cert_key(parent, &kl);
    /* wolfSSL's own link check (ConfirmSignature: RSA, RSA-PSS, ECDSA,
     * EdDSA) with a raw key: no CertManager, so no signer table to poison. */
    return wc_CheckCertSigPubKey(child->der, (word32)child->len, NULL, k, kl,
                                 (int)parent->key_oid) == 0;
}

/* ---- PEM ------------------------------------------------------------------ */

static const char *
val_memstr(const char *h, size_t hl, const char *n)
{
    return memmem(h, hl, n, strlen(n));
}

long
val_pem_next(const char *pem, size_t len, size_t *pos, uint8_t *out, size_t cap)
{
    static const char *const begins[] = {"-----BEGIN CERTIFICATE-----",
                                         "-----BEGIN TRUSTED CERTIFICATE-----",
                                         "-----BEGIN X509 CERTIFICATE-----"};
    static const char *const ends[] = {"-----END CERTIFICATE-----",
                                       "-----END TRUSTED CERTIFICATE-----",
                                       "-----END X509 CERTIFICATE-----"};
    if (*pos >= len)
        return 0;
    const char *h = pem + *pos;
    size_t hl = len - *pos;
    const char *best = NULL;
    size_t which = 0;
    for (size_t i = 0; i < CAT_ARRAY_LEN(begins); i++) {
        const char *b = val_memstr(h, hl, begins[i]);
        if (b != NULL && (best == NULL || b < best)) {
            best = b;
            which = i;
        }
    }
    if (best == NULL) {
        *pos = len;
        return 0;
    }
    const char *body = best + strlen(begins[which]);
    const char *e = val_memstr(body, len - (size_t)(body - pem), ends[which]);
    if (e == NULL) {
        *pos = len;
        return CAT_ERR;
    }
    *pos = (size_t)(e - pem) + strlen(ends[which]);
    /* Base64 without the whitespace (wolfSSL's decoder takes line breaks
     * only where it expects them). */
    size_t bl = (size_t)(e - body);
    char *b64 = malloc(bl + 1);
    if (b64 == NULL)
        return CAT_ERR;
    size_t n = 0;
    for (size_t i = 0; i < bl; i++) {
        char ch = body[i];
        if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n')
            continue;
        b64[n++] = ch;
    }
    word32 outlen = (word32)CAT_MIN(cap, (size_t)UINT32_MAX);
    int r = n > 0 ? Base64_Decode((const byte *)b64, (word32)n, out, &outlen) : -1;
    free(b64);
    if (r != 0)
        return CAT_ERR;
    /* A TRUSTED CERTIFICATE carries OpenSSL's trust settings after the
     * certificate: keep the first element only. */
    const uint8_t *p = out, *v;
    uint8_t tag;
    size_t vl;
    if (val_der_next(&p, out + outlen, &tag, &v, &vl) != CAT_OK || tag != 0x30)
        return CAT_ERR;
    return (long)(p - out);
}
