/*
 * The keyring's CRL (RFC 5280 section 5), served at the URL emulated leaves
 * name as their CRL distribution point: some clients (.NET among them) refuse
 * a certificate whose CRL they cannot fetch. It is always empty (catena never
 * revokes what it emulates), signed by the issuer on the first request and
 * again once half of its validity has passed. Any worker may ask.
 * Invariant: e->crl_* change only under e->crl_mu; callers only get copies.
 */
#include "emulation/emu_int.h"

#include "core/log.h"

#include <string.h>

#include <wolfssl/wolfcrypt/error-crypt.h>

#define CRL_BACKDATE 3600        /* thisUpdate before now: clients' clocks run behind */
#define CRL_VALIDITY (7 * 86400) /* nextUpdate after now, unless the issuer ends first */

/*
 * The AlgorithmIdentifiers wc_SignCert_ex appends after the TBS (ECDSA without
 * parameters, RFC 5758 3.2; RSA with NULL, RFC 4055 5). The TBS must carry the
 * same bytes (RFC 5280 5.1.2.2), so they are written here as wolfSSL writes them.
 */
static const uint8_t crl_alg_ecdsa_sha256[] = {0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86,
                                               0x48, 0xce, 0x3d, 0x04, 0x03, 0x02};
static const uint8_t crl_alg_rsa_sha256[] = {0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
                                             0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00};
static const uint8_t crl_oid_akid[] = {0x06, 0x03, 0x55, 0x1d, 0x23};   /* 2.5.29.35 */
static const uint8_t crl_oid_number[] = {0x06, 0x03, 0x55, 0x1d, 0x14}; /* 2.5.29.20 */

/* A non-negative INTEGER in its shortest DER form (a 0x00 only before a high bit). */
static void
crl_put_uint(struct der_buf *b, uint64_t v)
{
    uint8_t be[9];
    size_t i = 0;

    be[0] = 0;
    for (int k = 0; k < 8; k++)
        be[1 + k] = (uint8_t)(v >> (56 - 8 * k));
    while (i < 8 && be[i] == 0 && !(be[i + 1] & 0x80))
        i++;
    der_put_tlv(b, DER_INTEGER, be + i, sizeof(be) - i);
}

/* TBSCertList: v2, algorithm, issuer, thisUpdate, nextUpdate, no revoked entries, extensions. */
static int
crl_tbs(const struct emu *e, int64_t this_upd, int64_t next_upd, uint64_t number, struct der_buf *b)
{
    uint8_t id[32], t[20];
    size_t idlen, exts, start, v;

    if (emu_cert_key_id(&e->kr.cert, id, &idlen) != CAT_OK)
        return CAT_ERR;
    crl_put_uint(b, 1); /* v2: required with crlExtensions (5.1.2.1) */
    if (e->kr.key_type == ECC_TYPE)
        der_put(b, crl_alg_ecdsa_sha256, sizeof(crl_alg_ecdsa_sha256));
    else
        der_put(b, crl_alg_rsa_sha256, sizeof(crl_alg_rsa_sha256));
    /* Byte-exact: clients match the CRL's issuer to the certificate's issuer (5.1.2.3). */
    der_put(b, e->kr.cert.subject.p, e->kr.cert.subject.len);
    der_put(b, t, der_time_put(t, this_upd));
    der_put(b, t, der_time_put(t, next_upd));
    /* revokedCertificates is absent, not an empty SEQUENCE (5.1.2.6). */
    exts = b->len;
    /* authorityKeyIdentifier, the same key id the leaves name (5.2.1: MUST). */
    start = b->len;
    der_put(b, crl_oid_akid, sizeof(crl_oid_akid));
    v = b->len;
    der_put_tlv(b, 0x80, id, idlen); /* [0] keyIdentifier */
    der_wrap(b, v, DER_SEQUENCE);
    der_wrap(b, v, DER_OCTET_STRING);
    der_wrap(b, start, DER_SEQUENCE);
    /* cRLNumber (5.2.3: MUST, monotonically increasing). */
    start = b->len;
    der_put(b, crl_oid_number, sizeof(crl_oid_number));
    v = b->len;
    crl_put_uint(b, number);
    der_wrap(b, v, DER_OCTET_STRING);
    der_wrap(b, start, DER_SEQUENCE);
    der_wrap(b, exts, DER_SEQUENCE);
    der_wrap(b, exts, 0xa0); /* crlExtensions [0] EXPLICIT */
    der_wrap(b, 0, DER_SEQUENCE);
    return b->failed ? CAT_ERR : CAT_OK;
}

/*
 * wc_SignCert_ex signs whatever TBS it is given and appends the algorithm and
 * the signature in a SEQUENCE: the CertificateList layout too (5.1.1).
 */
static int
crl_sign(struct emu *e, const struct der_buf *tbs, uint8_t **out, size_t *out_len, char *err,
         size_t errlen)
{
    WC_RNG *rng = emu_rng();
    void *key = emu_kr_key(&e->kr);
    int sig_max = e->kr.key_type == ECC_TYPE ? wc_ecc_sig_size(key) : wc_RsaEncryptSize(key);
    size_t cap;
    uint8_t *buf;
    int ret;

    if (!rng) {
        emu_seterr(err, errlen, "no random number generator for this thread");
        return CAT_ERR;
    }
    if (sig_max <= 0) {
        emu_seterr(err, errlen, "cannot size the issuer's signature");
        return CAT_ERR;
    }
    /* The algorithm, BIT STRING and outer headers take well under 64 bytes. */
    cap = tbs->len + (size_t)sig_max + 64;
    buf = malloc(cap);
    if (!buf) {
        emu_seterr(err, errlen, "out of memory");
        return CAT_ERR;
    }
    memcpy(buf, tbs->p, tbs->len);
    pthread_mutex_lock(&e->sign_mu);
    ret = wc_SignCert_ex((int)tbs->len, e->kr.sig_type, buf, (word32)cap, e->kr.key_type, key, rng);
    pthread_mutex_unlock(&e->sign_mu);
    if (ret < 0) {
        emu_seterr(err, errlen, "wc_SignCert_ex: %s (%d)", wc_GetErrorString(ret), ret);
        free(buf);
        return CAT_ERR;
    }
    *out = buf;
    *out_len = (size_t)ret;
    return CAT_OK;
}

/* Called with crl_mu held: replaces the cached CRL with one issued at now. */
static int
crl_make(struct emu *e, int64_t now, int64_t this_upd, int64_t next_upd, char *err, size_t errlen)
{
    struct der_buf tbs = {0};
    uint64_t number = CAT_MAX((uint64_t)CAT_MAX(this_upd, 0), e->crl_number + 1);
    uint8_t *der;
    size_t len;
    int rc = CAT_ERR;

    /* Already stale when made: only once the issuer itself has expired. */
    if (next_upd <= now) {
        emu_seterr(err, errlen, "keyring %s: the issuer has expired, no CRL can be issued",
                   e->name);
        return CAT_ERR;
    }
    if (crl_tbs(e, this_upd, next_upd, number, &tbs) != CAT_OK) {
        emu_seterr(err, errlen, "cannot encode the CRL");
        goto out;
    }
    if (crl_sign(e, &tbs, &der, &len, err, errlen) != CAT_OK)
        goto out;
    free(e->crl_der);
    e->crl_der = der;
    e->crl_len = len;
    e->crl_this = this_upd;
    e->crl_next = next_upd;
    e->crl_number = number;
    log_debug(LOG_FAC_SSL, NULL, "keyring %s: CRL number %llu signed, valid %lld..%lld", e->name,
              (unsigned long long)number, (long long)this_upd, (long long)next_upd);
    rc = CAT_OK;
out:
    der_buf_free(&tbs);
    return rc;
}

/*
 * Half its validity gone and a new one would last longer (once nextUpdate is
 * the issuer's end, re-signing gains nothing and would cost a signature per
 * request), or it is not valid now (the clock went back before its
 * thisUpdate, or past its nextUpdate).
 */
static bool
crl_stale(const struct emu *e, int64_t now, int64_t next_upd)
{
    if (!e->crl_der || now < e->crl_this || now >= e->crl_next)
        return true;
    return now - e->crl_this >= (e->crl_next - e->crl_this) / 2 && next_upd > e->crl_next;
}

int
emu_crl_get(struct emu *e, uint8_t **der, size_t *len, int64_t *next_update, char *err,
            size_t errlen)
{
    int64_t now = emu_now();
    int64_t this_upd = CAT_MAX(now - CRL_BACKDATE, e->kr.cert.not_before);
    int64_t next_upd = CAT_MIN(now + CRL_VALIDITY, e->kr.cert.not_after);
    int rc = CAT_ERR;

    *der = NULL;
    *len = 0;
    /* Clients check the issuer may sign CRLs (OpenSSL: X509_V_ERR_KEYUSAGE_NO_CRL_SIGN). */
    if (e->kr.cert.has_ku && !(e->kr.cert.ku & EMU_KU_CRL_SIGN)) {
        emu_seterr(err, errlen, "keyring %s: the issuer's keyUsage does not allow cRLSign",
                   e->name);
        return CAT_ERR;
    }
    pthread_mutex_lock(&e->crl_mu);
    if (crl_stale(e, now, next_upd) &&
        crl_make(e, now, this_upd, next_upd, err, errlen) != CAT_OK) {
        /* The cached one still serves while it is valid. */
        if (!e->crl_der || now >= e->crl_next || now < e->crl_this)
            goto out;
        log_warn(LOG_FAC_SSL, NULL, "keyring %s: CRL not renewed, serving the previous one: %s",
                 e->name, err && errlen ? err : "");
    }
    *der = malloc(e->crl_len);
    if (!*der) {
        emu_seterr(err, errlen, "out of memory");
        goto out;
    }
    memcpy(*der, e->crl_der, e->crl_len);
    *len = e->crl_len;
    if (next_update)
        *next_update = e->crl_next;
    rc = CAT_OK;
out:
    pthread_mutex_unlock(&e->crl_mu);
    return rc;
}
