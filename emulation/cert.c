/*
 * X.509 for emulation: reading the fields catena needs from a certificate
 * (origins are untrusted input: every length is checked by der.c), and the
 * steps shared by CA and leaf generation: serial, dates, AKID, and the
 * make / edit / sign sequence around wolfSSL's Cert API.
 * Invariant: struct emu_cert only points into the DER it was parsed from.
 */
#include "emulation/emu_int.h"

#include <string.h>

#include <wolfssl/wolfcrypt/error-crypt.h>
#include <wolfssl/wolfcrypt/sha.h>

static const uint8_t cert_oid_cn[] = {0x55, 0x04, 0x03};
static const uint8_t cert_oid_bc[] = {0x55, 0x1d, 0x13};
static const uint8_t cert_oid_ku[] = {0x55, 0x1d, 0x0f};
static const uint8_t cert_oid_skid[] = {0x55, 0x1d, 0x0e};
static const uint8_t cert_oid_san[] = {0x55, 0x1d, 0x11};
static const uint8_t cert_oid_ec[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01};
static const uint8_t cert_oid_rsa[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01};

static bool
cert_oid_is(struct emu_span oid, const uint8_t *want, size_t len)
{
    return oid.len == len && memcmp(oid.p, want, len) == 0;
}

/* The last CN of a Name: the most specific one in DER order. */
static int
cert_find_cn(struct emu_cert *c)
{
    struct emu_span rd = c->subject, name, rdn, atv, oid, val;
    uint8_t tag;

    if (der_expect(&rd, DER_SEQUENCE, &name, NULL) != CAT_OK)
        return CAT_ERR;
    while (name.len > 0) {
        if (der_expect(&name, DER_SET, &rdn, NULL) != CAT_OK)
            return CAT_ERR;
        while (rdn.len > 0) {
            if (der_expect(&rdn, DER_SEQUENCE, &atv, NULL) != CAT_OK ||
                der_expect(&atv, DER_OID, &oid, NULL) != CAT_OK ||
                der_next(&atv, &tag, &val, NULL) != CAT_OK)
                return CAT_ERR;
            if (cert_oid_is(oid, cert_oid_cn, sizeof(cert_oid_cn))) {
                c->cn = val;
                c->cn_tag = tag;
            }
        }
    }
    return CAT_OK;
}

static int
cert_ext_bc(struct emu_cert *c, struct emu_span v)
{
    struct emu_span seq, b, n;
    uint8_t tag;

    if (der_expect(&v, DER_SEQUENCE, &seq, NULL) != CAT_OK || v.len != 0)
        return CAT_ERR;
    c->has_bc = true;
    if (der_expect(&seq, DER_BOOLEAN, &b, NULL) == CAT_OK)
        c->is_ca = b.len == 1 && b.p[0] != 0;
    if (seq.len > 0) {
        if (der_next(&seq, &tag, &n, NULL) != CAT_OK || tag != DER_INTEGER || n.len == 0 ||
            n.len > 2 || (n.p[0] & 0x80))
            return CAT_ERR;
        c->path_len = n.len == 1 ? n.p[0] : (n.p[0] << 8 | n.p[1]);
    }
    return CAT_OK;
}

static int
cert_ext_ku(struct emu_cert *c, struct emu_span v)
{
    struct emu_span bits;

    if (der_expect(&v, DER_BIT_STRING, &bits, NULL) != CAT_OK || bits.len < 1 || bits.len > 3)
        return CAT_ERR;
    c->has_ku = true;
    c->ku = 0;
    /* Bit i of the named bit list is bit (7 - i % 8) of content byte 1 + i / 8. */
    for (unsigned i = 0; i < 8 * (bits.len - 1) && i < 16; i++)
        if (bits.p[1 + i / 8] & (0x80 >> (i % 8)))
            c->ku |= (uint16_t)(1u << i);
    return CAT_OK;
}

static int
cert_exts(struct emu_cert *c)
{
    struct emu_span rd = c->exts, ext, oid, val, crit;

    while (rd.len > 0) {
        if (der_expect(&rd, DER_SEQUENCE, &ext, NULL) != CAT_OK ||
            der_expect(&ext, DER_OID, &oid, NULL) != CAT_OK)
            return CAT_ERR;
        (void)der_expect(&ext, DER_BOOLEAN, &crit, NULL);
        if (der_expect(&ext, DER_OCTET_STRING, &val, NULL) != CAT_OK || ext.len != 0)
            return CAT_ERR;
        if (cert_oid_is(oid, cert_oid_bc, sizeof(cert_oid_bc))) {
            if (cert_ext_bc(c, val) != CAT_OK)
                return CAT_ERR;
        } else if (cert_oid_is(oid, cert_oid_ku, sizeof(cert_oid_ku))) {
            if (cert_ext_ku(c, val) != CAT_OK)
                return CAT_ERR;
        } else if (cert_oid_is(oid, cert_oid_skid, sizeof(cert_oid_skid))) {
            if (der_expect(&val, DER_OCTET_STRING, &c->skid, NULL) != CAT_OK)
                return CAT_ERR;
        } else if (cert_oid_is(oid, cert_oid_san, sizeof(cert_oid_san))) {
            struct emu_span names, whole;

            if (der_expect(&val, DER_SEQUENCE, &names, &whole) != CAT_OK || val.len != 0)
                return CAT_ERR;
            c->san = whole;
        }
    }
    return CAT_OK;
}

static int
cert_spki(struct emu_cert *c)
{
    struct emu_span rd = c->spki, body, alg, oid, bits;

    if (der_expect(&rd, DER_SEQUENCE, &body, NULL) != CAT_OK ||
        der_expect(&body, DER_SEQUENCE, &alg, NULL) != CAT_OK ||
        der_expect(&alg, DER_OID, &oid, NULL) != CAT_OK ||
        der_expect(&body, DER_BIT_STRING, &bits, NULL) != CAT_OK || bits.len < 2)
        return CAT_ERR;
    if (cert_oid_is(oid, cert_oid_ec, sizeof(cert_oid_ec)))
        c->pk = EMU_PK_EC;
    else if (cert_oid_is(oid, cert_oid_rsa, sizeof(cert_oid_rsa)))
        c->pk = EMU_PK_RSA;
    else
        c->pk = EMU_PK_OTHER;
    c->spki_bits.p = bits.p + 1; /* past the unused-bits count */
    c->spki_bits.len = bits.len - 1;
    return CAT_OK;
}

int
emu_cert_parse(struct emu_cert *c, const uint8_t *der, size_t len)
{
    struct emu_span rd = {der, len}, cert, tbs, f, v, t;
    uint8_t tag;

    memset(c, 0, sizeof(*c));
    c->path_len = -1;
    if (len > EMU_CERT_MAX || der_expect(&rd, DER_SEQUENCE, &cert, &c->der) != CAT_OK ||
        rd.len != 0 || der_expect(&cert, DER_SEQUENCE, &tbs, &c->tbs) != CAT_OK)
        return CAT_ERR;
    (void)der_expect(&tbs, 0xa0, &f, NULL); /* version */
    if (der_expect(&tbs, DER_INTEGER, &f, NULL) != CAT_OK ||
        der_expect(&tbs, DER_SEQUENCE, &f, NULL) != CAT_OK ||
        der_expect(&tbs, DER_SEQUENCE, &f, &c->issuer) != CAT_OK ||
        der_expect(&tbs, DER_SEQUENCE, &v, NULL) != CAT_OK ||
        der_expect(&tbs, DER_SEQUENCE, &f, &c->subject) != CAT_OK ||
        der_expect(&tbs, DER_SEQUENCE, &f, &c->spki) != CAT_OK)
        return CAT_ERR;
    if (der_next(&v, &tag, &t, NULL) != CAT_OK ||
        der_time_parse(tag, t, &c->not_before) != CAT_OK ||
        der_next(&v, &tag, &t, NULL) != CAT_OK || der_time_parse(tag, t, &c->not_after) != CAT_OK ||
        v.len != 0)
        return CAT_ERR;
    while (tbs.len > 0) {
        if (der_next(&tbs, &tag, &f, NULL) != CAT_OK)
            return CAT_ERR;
        if (tag == 0xa3) {
            if (der_expect(&f, DER_SEQUENCE, &c->exts, NULL) != CAT_OK || f.len != 0)
                return CAT_ERR;
        }
    }
    /* The outer signature algorithm and value must be there, not read. */
    if (der_expect(&cert, DER_SEQUENCE, &f, NULL) != CAT_OK ||
        der_expect(&cert, DER_BIT_STRING, &f, NULL) != CAT_OK || cert.len != 0)
        return CAT_ERR;
    if (cert_spki(c) != CAT_OK || cert_find_cn(c) != CAT_OK || cert_exts(c) != CAT_OK)
        return CAT_ERR;
    return CAT_OK;
}

bool
emu_cert_self_issued(const struct emu_cert *c)
{
    return c->issuer.len == c->subject.len && memcmp(c->issuer.p, c->subject.p, c->issuer.len) == 0;
}

int
emu_cert_key_id(const struct emu_cert *c, uint8_t out[32], size_t *len)
{
    if (c->skid.len > 0 && c->skid.len <= 32) {
        memcpy(out, c->skid.p, c->skid.len);
        *len = c->skid.len;
        return CAT_OK;
    }
    if (c->skid.len > 32)
        return CAT_ERR;
    /* RFC 5280 4.2.1.2 method (1): SHA-1 of the subjectPublicKey bits. */
    if (wc_ShaHash(c->spki_bits.p, (word32)c->spki_bits.len, out) != 0)
        return CAT_ERR;
    *len = WC_SHA_DIGEST_SIZE;
    return CAT_OK;
}

int
emu_cert_set_akid(Cert *cert, const struct emu_cert *issuer)
{
    uint8_t id[32];
    size_t len;

    /*
     * Not wc_SetAuthKeyIdFromCert: it fails when the issuer has no SKID, and
     * it hashes an SKID that is not 20 bytes long instead of copying it, so
     * the AKID would not match the issuer's SKID.
     */
    if (emu_cert_key_id(issuer, id, &len) != CAT_OK || len > sizeof(cert->akid))
        return CAT_ERR;
    memcpy(cert->akid, id, len);
    cert->akidSz = (int)len;
#ifdef WOLFSSL_AKID_NAME
    cert->rawAkid = 0;
#endif
    return CAT_OK;
}

int
emu_cert_serial(Cert *cert, WC_RNG *rng)
{
    if (wc_RNG_GenerateBlock(rng, cert->serial, EMU_SERIAL_LEN) != 0)
        return CAT_ERR;
    /* Positive (RFC 5280 4.1.2.2) and without a leading zero byte, which
     * wolfSSL would strip, so the DER INTEGER always holds 16 bytes. */
    cert->serial[0] &= 0x7f;
    if (cert->serial[0] == 0)
        cert->serial[0] = 0x01;
    cert->serialSz = EMU_SERIAL_LEN;
    return CAT_OK;
}

void
emu_cert_dates(Cert *cert, int64_t not_before, int64_t not_after)
{
    cert->beforeDateSz = (int)der_time_put(cert->beforeDate, not_before);
    cert->afterDateSz = (int)der_time_put(cert->afterDate, not_after);
}

bool
emu_cert_signed_by(const uint8_t *child, size_t child_len, const uint8_t *parent, size_t parent_len)
{
    WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();
    bool ok = false;
    int rc;

    if (!cm)
        return false;
    if (wolfSSL_CertManagerLoadCABuffer(cm, parent, (long)parent_len, WOLFSSL_FILETYPE_ASN1) !=
        WOLFSSL_SUCCESS)
        goto out;
    rc = wolfSSL_CertManagerVerifyBuffer(cm, child, (long)child_len, WOLFSSL_FILETYPE_ASN1);
    /* wolfSSL checks the signature before it reports a date error. */
    ok = rc == WOLFSSL_SUCCESS || rc == ASN_AFTER_DATE_E || rc == ASN_BEFORE_DATE_E;
out:
    wolfSSL_CertManagerFree(cm);
    return ok;
}

int
emu_cert_finish(Cert *cert, int subj_type, void *subj_key, const struct der_tbs_edit *ed,
                int signer_type, void *signer_key, pthread_mutex_t *sign_mu, WC_RNG *rng,
                uint8_t **out, size_t *out_len, char *err, size_t errlen)
{
    /* wolfSSL's own limit for a TBS is about 16 KB of SANs plus the rest. */
    const size_t cap1 = 24 * 1024;
    size_t cap2 = cap1 + ed->issuer.len + ed->subject.len + ed->extra_exts.len + 1024, tlen;
    uint8_t *tbs = malloc(cap1), *buf = malloc(cap2);
    int ret, rc = CAT_ERR;

    if (!tbs || !buf) {
        emu_seterr(err, errlen, "out of memory");
        goto out;
    }
    ret = wc_MakeCert_ex(cert, tbs, (word32)cap1, subj_type, subj_key, rng);
    if (ret < 0) {
        emu_seterr(err, errlen, "wc_MakeCert_ex: %s (%d)", wc_GetErrorString(ret), ret);
        goto out;
    }
    if (der_tbs_edit(tbs, (size_t)ret, ed, buf, cap2, &tlen) != CAT_OK) {
        emu_seterr(err, errlen, "cannot edit the certificate body");
        goto out;
    }
    if (sign_mu)
        pthread_mutex_lock(sign_mu);
    ret = wc_SignCert_ex((int)tlen, cert->sigType, buf, (word32)cap2, signer_type, signer_key, rng);
    if (sign_mu)
        pthread_mutex_unlock(sign_mu);
    if (ret < 0) {
        emu_seterr(err, errlen, "wc_SignCert_ex: %s (%d)", wc_GetErrorString(ret), ret);
        goto out;
    }
    *out = buf;
    *out_len = (size_t)ret;
    buf = NULL;
    rc = CAT_OK;
out:
    free(tbs);
    free(buf);
    return rc;
}
