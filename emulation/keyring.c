/*
 * Issuer keyrings: a directory with cert.pem (the issuing CA), key.pem (its
 * key, mode 0600) and chain.pem (the CAs above it up to the root). Loading
 * checks everything a bad keyring would otherwise turn into browser errors
 * later: the key matches, the issuer is a CA allowed to sign, every
 * certificate is valid now, and the chain links up to a self-signed root.
 * struct emu is built here: the keyring, the leaf template, the cache.
 * Key material is never logged and is zeroised when freed.
 */
#include "emulation/emu_int.h"

#include "core/log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <wolfssl/wolfcrypt/error-crypt.h>

static void
kr_fmt_time(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (!gmtime_r(&tt, &tm) || strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
        snprintf(buf, len, "%lld", (long long)t);
}

/* Valid now, a CA, allowed to sign certificates. */
static int
kr_check_ca(const struct emu_cert *c, const char *what, char *err, size_t errlen)
{
    int64_t now = emu_now();
    char when[40];

    if (!c->has_bc || !c->is_ca) {
        emu_seterr(err, errlen, "%s: not a CA certificate (no basicConstraints CA:TRUE)", what);
        return CAT_ERR;
    }
    if (c->has_ku && !(c->ku & EMU_KU_KEY_CERT_SIGN)) {
        emu_seterr(err, errlen, "%s: keyUsage does not allow keyCertSign", what);
        return CAT_ERR;
    }
    if (now < c->not_before) {
        kr_fmt_time(c->not_before, when, sizeof(when));
        emu_seterr(err, errlen, "%s: not valid before %s", what, when);
        return CAT_ERR;
    }
    if (now > c->not_after) {
        kr_fmt_time(c->not_after, when, sizeof(when));
        emu_seterr(err, errlen, "%s: expired on %s", what, when);
        return CAT_ERR;
    }
    return CAT_OK;
}

void *
emu_kr_key(struct emu_keyring *kr)
{
    return kr->key_type == ECC_TYPE ? (void *)&kr->key.ecc : (void *)&kr->key.rsa;
}

/* Decodes the private key and checks that its public half is the certificate's. */
static int
kr_load_key(struct emu_keyring *kr, const char *text, size_t len, const char *what, char *err,
            size_t errlen)
{
    uint8_t *der = NULL, pub[1024];
    size_t cap = len + 1;
    word32 idx = 0;
    int n, ret, rc = CAT_ERR;

    if (strstr(text, "ENCRYPTED")) {
        emu_seterr(err, errlen, "%s: encrypted private keys are not supported", what);
        return CAT_ERR;
    }
    der = malloc(cap);
    if (!der) {
        emu_seterr(err, errlen, "%s: out of memory", what);
        return CAT_ERR;
    }
    if (memmem(text, len, "-----BEGIN", 10)) {
        n = wc_KeyPemToDer((const unsigned char *)text, (int)len, der, (int)cap, NULL);
        if (n <= 0) {
            emu_seterr(err, errlen, "%s: no private key in PEM form", what);
            goto out;
        }
    } else {
        memcpy(der, text, len);
        n = (int)len;
    }
    if (kr->cert.pk == EMU_PK_EC) {
        kr->key_type = ECC_TYPE;
        kr->sig_type = CTC_SHA256wECDSA;
        if (wc_ecc_init(&kr->key.ecc) != 0)
            goto bad;
        kr->key_set = true;
        ret = wc_EccPrivateKeyDecode(der, &idx, &kr->key.ecc, (word32)n);
        /* A SEC1 key may omit its public point: derive it. */
        if (ret == 0 && kr->key.ecc.type == ECC_PRIVATEKEY_ONLY)
            ret = wc_ecc_make_pub(&kr->key.ecc, NULL);
        if (ret != 0)
            goto bad;
        ret = wc_EccPublicKeyToDer(&kr->key.ecc, pub, sizeof(pub), 1);
    } else {
        kr->key_type = RSA_TYPE;
        kr->sig_type = CTC_SHA256wRSA;
        if (wc_InitRsaKey(&kr->key.rsa, NULL) != 0)
            goto bad;
        kr->key_set = true;
        ret = wc_RsaPrivateKeyDecode(der, &idx, &kr->key.rsa, (word32)n);
        if (ret != 0)
            goto bad;
        if (wc_RsaEncryptSize(&kr->key.rsa) < 256) {
            emu_seterr(err, errlen, "%s: RSA keys shorter than 2048 bits are refused", what);
            goto out;
        }
        ret = wc_RsaKeyToPublicDer(&kr->key.rsa, pub, sizeof(pub));
    }
    if (ret <= 0 || (size_t)ret != kr->cert.spki.len || memcmp(pub, kr->cert.spki.p, (size_t)ret)) {
        emu_seterr(err, errlen, "%s does not match the certificate's public key", what);
        goto out;
    }
    rc = CAT_OK;
    goto out;
bad:
    emu_seterr(err, errlen, "%s: not a valid %s private key (the certificate's key type)", what,
               kr->cert.pk == EMU_PK_EC ? "EC" : "RSA");
out:
    emu_zfree(der, cap);
    explicit_bzero(pub, sizeof(pub));
    return rc;
}

/* chain.pem: each certificate a valid CA that issued the one below it, ending at a root. */
static int
kr_check_chain(struct emu_keyring *kr, const char *what, char *err, size_t errlen)
{
    struct emu_cert below = kr->cert, c;

    for (size_t i = 1; i < kr->ncerts; i++) {
        char label[64];

        snprintf(label, sizeof(label), "%s certificate %zu", what, i);
        if (emu_cert_parse(&c, kr->certs[i].der, kr->certs[i].len) != CAT_OK) {
            emu_seterr(err, errlen, "%s: not a valid X.509 certificate", label);
            return CAT_ERR;
        }
        if (kr_check_ca(&c, label, err, errlen) != CAT_OK)
            return CAT_ERR;
        if (below.issuer.len != c.subject.len ||
            memcmp(below.issuer.p, c.subject.p, c.subject.len) != 0 ||
            !emu_cert_signed_by(below.der.p, below.der.len, c.der.p, c.der.len)) {
            emu_seterr(err, errlen, "%s did not issue the certificate below it", label);
            return CAT_ERR;
        }
        /* i CA certificates sit between it and a leaf (RFC 5280 4.2.1.9). */
        if (c.path_len >= 0 && (size_t)c.path_len < i) {
            emu_seterr(err, errlen, "%s has pathlen %d: too short for this chain", label,
                       c.path_len);
            return CAT_ERR;
        }
        below = c;
    }
    if (!emu_cert_self_issued(&below) ||
        !emu_cert_signed_by(below.der.p, below.der.len, below.der.p, below.der.len)) {
        if (kr->ncerts == 1)
            emu_seterr(err, errlen,
                       "the CA certificate is not self-signed: the chain (chain.pem, or "
                       "--chain) must hold the CA certificates above it, up to the root");
        else
            emu_seterr(err, errlen, "%s does not end with a self-signed root", what);
        return CAT_ERR;
    }
    return CAT_OK;
}

int
emu_kr_load(struct emu_keyring *kr, const char *cert_path, const char *key_path,
            const char *chain_path, bool private_key, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0, n = 0;
    int rc;

    memset(kr, 0, sizeof(*kr));
    rc = emu_file_read(cert_path, false, &text, &len, err, errlen);
    if (rc == CAT_DECLINED)
        emu_seterr(err, errlen, "%s: no such file", cert_path);
    if (rc != CAT_OK)
        goto fail;
    rc = emu_pem_certs(text, len, kr->certs, 1 + EMU_CHAIN_MAX, &n, cert_path, err, errlen);
    free(text);
    text = NULL;
    if (rc != CAT_OK)
        goto fail;
    kr->ncerts = n;
    if (n != 1) {
        emu_seterr(err, errlen,
                   n == 0 ? "%s: no certificate"
                          : "%s: more than one certificate (the CAs above "
                            "it belong in chain.pem)",
                   cert_path);
        goto fail;
    }
    if (emu_cert_parse(&kr->cert, kr->certs[0].der, kr->certs[0].len) != CAT_OK) {
        emu_seterr(err, errlen, "%s: not a valid X.509 certificate", cert_path);
        goto fail;
    }
    if (kr_check_ca(&kr->cert, cert_path, err, errlen) != CAT_OK)
        goto fail;
    if (kr->cert.pk == EMU_PK_OTHER) {
        emu_seterr(err, errlen, "%s: unsupported key type (ECDSA or RSA only)", cert_path);
        goto fail;
    }

    rc = emu_file_read(key_path, private_key, &text, &len, err, errlen);
    if (rc == CAT_DECLINED)
        emu_seterr(err, errlen, "%s: no such file", key_path);
    if (rc != CAT_OK)
        goto fail;
    rc = kr_load_key(kr, text, len, key_path, err, errlen);
    emu_zfree(text, len + 1);
    text = NULL;
    if (rc != CAT_OK)
        goto fail;

    if (chain_path) {
        rc = emu_file_read(chain_path, false, &text, &len, err, errlen);
        if (rc == CAT_ERR)
            goto fail;
        if (rc == CAT_OK) {
            rc =
                emu_pem_certs(text, len, kr->certs + 1, EMU_CHAIN_MAX, &n, chain_path, err, errlen);
            free(text);
            text = NULL;
            if (rc != CAT_OK)
                goto fail;
            kr->ncerts += n;
        }
    }
    if (kr_check_chain(kr, chain_path ? chain_path : "chain", err, errlen) != CAT_OK)
        goto fail;
    for (size_t i = 0; i < kr->ncerts; i++) {
        kr->certs[i].pem = emu_der_to_pem(kr->certs[i].der, kr->certs[i].len, CERT_TYPE);
        if (!kr->certs[i].pem) {
            emu_seterr(err, errlen, "cannot encode certificate %zu as PEM", i);
            goto fail;
        }
    }
    return CAT_OK;
fail:
    free(text);
    emu_kr_free(kr);
    return CAT_ERR;
}

void
emu_kr_free(struct emu_keyring *kr)
{
    if (kr->key_set) {
        if (kr->key_type == ECC_TYPE)
            wc_ecc_free(&kr->key.ecc);
        else
            wc_FreeRsaKey(&kr->key.rsa);
    }
    explicit_bzero(&kr->key, sizeof(kr->key));
    kr->key_set = false;
    for (size_t i = 0; i < kr->ncerts; i++)
        emu_blob_free(&kr->certs[i]);
    kr->ncerts = 0;
}

/* ---- struct emu --------------------------------------------------------------- */

/* The part of every leaf that does not depend on the origin. */
static int
kr_template(struct emu *e, char *err, size_t errlen)
{
    Cert *t = calloc(1, sizeof(*t));
    int ret;

    if (!t) {
        emu_seterr(err, errlen, "out of memory");
        return CAT_ERR;
    }
    e->tmpl = t;
    ret = wc_InitCert(t);
    if (ret != 0)
        goto bad;
    t->sigType = e->kr.sig_type;
    t->isCA = 0;
    t->basicConstSet = 1;
    /* Names are placeholders: der_tbs_edit puts the exact issuer and subject
     * bytes. wolfSSL's raw-name copy stops at the first zero byte (it uses
     * strlen on issRaw) and is limited to 256 bytes, so wc_SetIssuerRaw
     * cannot carry every issuer name byte-exact. */
    t->selfSigned = 1;
    snprintf(t->subject.commonName, sizeof(t->subject.commonName), "-");
    ret = wc_SetKeyUsage(t, "digitalSignature");
    if (ret == 0)
        ret = wc_SetExtKeyUsage(t, "serverAuth");
    if (ret == 0)
        ret = wc_SetSubjectKeyIdFromPublicKey_ex(t, ECC_TYPE, emu_leaf_key());
    if (ret != 0)
        goto bad;
    if (emu_cert_set_akid(t, &e->kr.cert) != CAT_OK) {
        emu_seterr(err, errlen, "cannot derive the issuer's key identifier");
        return CAT_ERR;
    }
    return CAT_OK;
bad:
    emu_seterr(err, errlen, "leaf template: %s (%d)", wc_GetErrorString(ret), ret);
    return CAT_ERR;
}

struct emu *
emu_new(const struct emu_opts *o, char *err, size_t errlen)
{
    char cert_path[4096], key_path[4096], chain_path[4096];
    struct emu *e;
    size_t off = 0;

    if (!emu_leaf_key()) {
        emu_seterr(err, errlen, "emu_init has not run");
        return NULL;
    }
    if (!o->dir || o->cache_entries < 1) {
        emu_seterr(err, errlen, "keyring: a directory and cache_entries >= 1 are required");
        return NULL;
    }
    if ((size_t)snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", o->dir) >=
            sizeof(cert_path) ||
        (size_t)snprintf(key_path, sizeof(key_path), "%s/key.pem", o->dir) >= sizeof(key_path) ||
        (size_t)snprintf(chain_path, sizeof(chain_path), "%s/chain.pem", o->dir) >=
            sizeof(chain_path)) {
        emu_seterr(err, errlen, "keyring: directory name too long");
        return NULL;
    }
    e = calloc(1, sizeof(*e));
    if (!e) {
        emu_seterr(err, errlen, "out of memory");
        return NULL;
    }
    if (emu_kr_load(&e->kr, cert_path, key_path, chain_path, true, err, errlen) != CAT_OK) {
        free(e);
        return NULL;
    }
    e->name = strdup(o->name ? o->name : o->dir);
    e->ctx_setup = o->ctx_setup;
    e->ctx_setup_arg = o->ctx_setup_arg;
    pthread_mutex_init(&e->sign_mu, NULL);
    pthread_mutex_init(&e->crl_mu, NULL);
    if (!e->name || emu_cache_init(&e->cache, o->cache_entries) != CAT_OK) {
        emu_seterr(err, errlen, "out of memory");
        goto fail;
    }
    if (kr_template(e, err, errlen) != CAT_OK)
        goto fail;
    for (size_t i = 0; i < e->kr.ncerts; i++)
        e->chain_len += e->kr.certs[i].len;
    e->chain_der = malloc(e->chain_len);
    if (!e->chain_der) {
        emu_seterr(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < e->kr.ncerts; i++) {
        memcpy(e->chain_der + off, e->kr.certs[i].der, e->kr.certs[i].len);
        off += e->kr.certs[i].len;
    }
    e->cm = wolfSSL_CertManagerNew();
    if (!e->cm ||
        wolfSSL_CertManagerLoadCABuffer(e->cm, e->kr.certs[0].der, (long)e->kr.certs[0].len,
                                        WOLFSSL_FILETYPE_ASN1) != WOLFSSL_SUCCESS) {
        emu_seterr(err, errlen, "cannot load the issuer into a certificate manager");
        goto fail;
    }
    log_info(LOG_FAC_SSL, NULL, "keyring %s loaded: %s issuer, %zu certificate(s) above it",
             e->name, e->kr.key_type == ECC_TYPE ? "ECDSA" : "RSA", e->kr.ncerts - 1);
    return e;
fail:
    emu_free(e);
    return NULL;
}

void
emu_free(struct emu *e)
{
    if (!e)
        return;
    emu_cache_fini(&e->cache);
    if (e->cm)
        wolfSSL_CertManagerFree(e->cm);
    free(e->chain_der);
    free(e->tmpl);
    emu_kr_free(&e->kr);
    pthread_mutex_destroy(&e->sign_mu);
    free(e->crl_der);
    pthread_mutex_destroy(&e->crl_mu);
    free(e->name);
    free(e);
}

const char *
emu_issuer_pem(const struct emu *e)
{
    return e->kr.certs[0].pem;
}

const uint8_t *
emu_issuer_der(const struct emu *e, size_t *len)
{
    *len = e->kr.certs[0].len;
    return e->kr.certs[0].der;
}

const char *
emu_root_pem(const struct emu *e)
{
    return e->kr.certs[e->kr.ncerts - 1].pem;
}

const uint8_t *
emu_chain_der(const struct emu *e, size_t i, size_t *len)
{
    if (i >= e->kr.ncerts) {
        *len = 0;
        return NULL;
    }
    *len = e->kr.certs[i].len;
    return e->kr.certs[i].der;
}

bool
emu_is_own_issue(const struct emu *e, const uint8_t *der, size_t len)
{
    int rc;

    if (len == 0 || len > EMU_CERT_MAX)
        return false;
    rc = wolfSSL_CertManagerVerifyBuffer(e->cm, der, (long)len, WOLFSSL_FILETYPE_ASN1);
    /* An expired or not-yet-valid leaf of ours is still ours: wolfSSL
     * reports a date error only once the signature has verified. */
    return rc == WOLFSSL_SUCCESS || rc == ASN_AFTER_DATE_E || rc == ASN_BEFORE_DATE_E;
}
