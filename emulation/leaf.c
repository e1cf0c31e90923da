/*
 * Emulated leaves: from an origin certificate, a certificate for the same
 * names (CN, DNS and IP SANs) with its validity clipped to the issuer's,
 * signed by the keyring's issuer over the process's one leaf key, and a
 * server WOLFSSL_CTX holding it with the chain. Extensions wolfSSL cannot
 * make in this build (splash text and URL, CRL distribution point) are
 * spliced into the TBS by der_tbs_edit before signing.
 * A leaf is immutable once made; refcounted, freed with its last reference.
 */
#include "emulation/emu_int.h"

#include "core/log.h"

#include <arpa/inet.h>
#include <string.h>

#include <wolfssl/wolfcrypt/error-crypt.h>

/* Netscape comment, 2.16.840.1.113730.1.13: browsers and openssl show it. */
static const uint8_t leaf_oid_ns_comment[] = {0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                              0x86, 0xf8, 0x42, 0x01, 0x0d};
/*
 * Splash URL: catena's own OID, minted under the UUID arc of ITU-T X.667
 * (2.25.<UUID as an integer>, no registration needed) from the random UUID
 * ac5215bd-a7ed-449a-bf8d-785e9cab2e42, i.e.
 * 2.25.229053424574100613920968559998599376450. Value: IA5String URL.
 */
static const uint8_t leaf_oid_splash_url[] = {0x06, 0x14, 0x69, 0x82, 0xd8, 0xd2, 0x8a, 0xef,
                                              0xb4, 0xfe, 0xea, 0x92, 0xb5, 0xbf, 0xc6, 0xde,
                                              0x8b, 0xe9, 0xe5, 0xac, 0xdc, 0x42};
/* cRLDistributionPoints, 2.5.29.31 */
static const uint8_t leaf_oid_crl_dp[] = {0x06, 0x03, 0x55, 0x1d, 0x1f};
static const uint8_t leaf_oid_cn[] = {0x06, 0x03, 0x55, 0x04, 0x03};

/* Printable ASCII, as IA5String carries it; spaces only where allowed. */
static bool
leaf_ascii(const char *s, size_t max, bool spaces)
{
    size_t n = 0;

    for (; *s; s++, n++)
        if (n >= max || (uint8_t)*s < (spaces ? 0x20 : 0x21) || (uint8_t)*s > 0x7e)
            return false;
    return true;
}

static bool
leaf_hostname_chars(const uint8_t *s, size_t len)
{
    if (len == 0 || len > EMU_HOSTNAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        uint8_t ch = s[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '.' || ch == '_' || ch == '*'))
            return false;
    }
    return true;
}

/* An IPv4 or IPv6 literal (no brackets): its bytes in ip, the count returned (0: not one). */
static size_t
leaf_ip(const uint8_t *s, size_t len, uint8_t ip[16])
{
    char buf[64];

    if (len == 0 || len >= sizeof(buf))
        return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (inet_pton(AF_INET, buf, ip) == 1)
        return 4;
    if (inet_pton(AF_INET6, buf, ip) == 1)
        return 16;
    return 0;
}

int
emu_params_check(const struct emu_params *p, char *err, size_t errlen)
{
    uint8_t ip[16];

    if (p->hostname) {
        size_t len = strlen(p->hostname);

        if (!leaf_ip((const uint8_t *)p->hostname, len, ip) &&
            !leaf_hostname_chars((const uint8_t *)p->hostname, len)) {
            emu_seterr(err, errlen, "emulation hostname is neither a DNS name nor an IP address");
            return CAT_ERR;
        }
    }
    if (p->splash_text && !leaf_ascii(p->splash_text, EMU_SPLASH_TEXT_MAX, true)) {
        emu_seterr(err, errlen, "splash text: at most %d printable ASCII characters",
                   EMU_SPLASH_TEXT_MAX);
        return CAT_ERR;
    }
    if (p->splash_url && !leaf_ascii(p->splash_url, EMU_URL_MAX, false)) {
        emu_seterr(err, errlen, "splash URL: at most %d printable ASCII characters, no spaces",
                   EMU_URL_MAX);
        return CAT_ERR;
    }
    if (p->crl_url && !leaf_ascii(p->crl_url, EMU_URL_MAX, false)) {
        emu_seterr(err, errlen, "CRL URL: at most %d printable ASCII characters, no spaces",
                   EMU_URL_MAX);
        return CAT_ERR;
    }
    return CAT_OK;
}

/* Names of the leaf: the CN (tag and bytes) and the SAN entries (GeneralName TLVs). */
struct leaf_names {
    uint8_t cn_tag;
    const uint8_t *cn;
    size_t cn_len;
    char cn_buf[64]; /* an IP SAN turned into text */
    struct der_buf san;
};

static void
leaf_san_add(struct leaf_names *n, const uint8_t *s, size_t len)
{
    uint8_t ip[16];
    size_t iplen = leaf_ip(s, len, ip);

    if (iplen)
        der_put_tlv(&n->san, DER_GN_IP, ip, iplen);
    else
        der_put_tlv(&n->san, DER_GN_DNS, s, len);
}

static int
leaf_names_from_origin(struct leaf_names *n, const struct emu_cert *oc, char *err, size_t errlen)
{
    struct emu_span rd = oc->san, names, v, whole, first_dns = {0}, first_ip = {0};
    uint8_t tag;

    if (rd.len > 0) {
        if (der_expect(&rd, DER_SEQUENCE, &names, NULL) != CAT_OK)
            goto bad;
        while (names.len > 0) {
            if (der_next(&names, &tag, &v, &whole) != CAT_OK)
                goto bad;
            /* Only DNS names and IP addresses: what TLS clients match on. */
            if (tag == DER_GN_DNS && v.len > 0) {
                der_put(&n->san, whole.p, whole.len);
                if (!first_dns.p)
                    first_dns = v;
            } else if (tag == DER_GN_IP && (v.len == 4 || v.len == 16)) {
                der_put(&n->san, whole.p, whole.len);
                if (!first_ip.p)
                    first_ip = v;
            }
        }
    }
    if (oc->cn.len > 0) {
        n->cn_tag = oc->cn_tag;
        n->cn = oc->cn.p;
        n->cn_len = oc->cn.len;
    } else if (first_dns.p) {
        n->cn_tag = DER_UTF8STRING;
        n->cn = first_dns.p;
        n->cn_len = first_dns.len;
    } else if (first_ip.p) {
        if (!inet_ntop(first_ip.len == 4 ? AF_INET : AF_INET6, first_ip.p, n->cn_buf,
                       sizeof(n->cn_buf)))
            goto bad;
        n->cn_tag = DER_UTF8STRING;
        n->cn = (const uint8_t *)n->cn_buf;
        n->cn_len = strlen(n->cn_buf);
    } else {
        emu_seterr(err, errlen, "origin certificate has no CN and no DNS or IP name");
        return CAT_ERR;
    }
    /* Browsers match on SANs only: make one from a host-like CN. */
    if (n->san.len == 0 &&
        (n->cn_tag == DER_UTF8STRING || n->cn_tag == DER_PRINTABLESTRING ||
         n->cn_tag == DER_IA5STRING || n->cn_tag == DER_T61STRING) &&
        (leaf_hostname_chars(n->cn, n->cn_len) || leaf_ip(n->cn, n->cn_len, (uint8_t[16]){0})))
        leaf_san_add(n, n->cn, n->cn_len);
    return CAT_OK;
bad:
    emu_seterr(err, errlen, "origin certificate: malformed subject alternative names");
    return CAT_ERR;
}

/* Extensions der_tbs_edit appends: CRL DP, splash text, splash URL. */
static void
leaf_extra_exts(struct der_buf *b, const struct emu_params *p)
{
    size_t start;

    if (p->crl_url) {
        /* SEQUENCE OF DistributionPoint { [0] { [0] fullName { URI } } } */
        start = b->len;
        der_put(b, leaf_oid_crl_dp, sizeof(leaf_oid_crl_dp));
        size_t v = b->len;
        der_put_tlv(b, DER_GN_URI, p->crl_url, strlen(p->crl_url));
        der_wrap(b, v, 0xa0);
        der_wrap(b, v, 0xa0);
        der_wrap(b, v, DER_SEQUENCE);
        der_wrap(b, v, DER_SEQUENCE);
        der_wrap(b, v, DER_OCTET_STRING);
        der_wrap(b, start, DER_SEQUENCE);
    }
    if (p->splash_text) {
        start = b->len;
        der_put(b, leaf_oid_ns_comment, sizeof(leaf_oid_ns_comment));
        size_t v = b->len;
        der_put_tlv(b, DER_IA5STRING, p->splash_text, strlen(p->splash_text));
        der_wrap(b, v, DER_OCTET_STRING);
        der_wrap(b, start, DER_SEQUENCE);
    }
    if (p->splash_url) {
        start = b->len;
        der_put(b, leaf_oid_splash_url, sizeof(leaf_oid_splash_url));
        size_t v = b->len;
        der_put_tlv(b, DER_IA5STRING, p->splash_url, strlen(p->splash_url));
        der_wrap(b, v, DER_OCTET_STRING);
        der_wrap(b, start, DER_SEQUENCE);
    }
}

static int
leaf_ctx(struct emu *e, struct emu_leaf *l, char *err, size_t errlen)
{
    size_t klen, n = l->der_len + e->chain_len;
    const uint8_t *key = emu_leaf_key_der(&klen);
    uint8_t *chain = malloc(n);
    int rc = CAT_ERR;

    if (!chain) {
        emu_seterr(err, errlen, "out of memory");
        return CAT_ERR;
    }
    memcpy(chain, l->der, l->der_len);
    memcpy(chain + l->der_len, e->chain_der, e->chain_len);
    l->ctx = wolfSSL_CTX_new(wolfSSLv23_server_method());
    if (!l->ctx) {
        emu_seterr(err, errlen, "wolfSSL_CTX_new failed");
        goto out;
    }
    if (e->ctx_setup && e->ctx_setup(e->ctx_setup_arg, l->ctx) != CAT_OK) {
        emu_seterr(err, errlen, "server context setup failed");
        goto out;
    }
    if (wolfSSL_CTX_use_certificate_chain_buffer_format(l->ctx, chain, (long)n,
                                                        WOLFSSL_FILETYPE_ASN1) != WOLFSSL_SUCCESS ||
        !key ||
        wolfSSL_CTX_use_PrivateKey_buffer(l->ctx, key, (long)klen, WOLFSSL_FILETYPE_ASN1) !=
            WOLFSSL_SUCCESS) {
        emu_seterr(err, errlen, "cannot load the emulated certificate into its context");
        goto out;
    }
    rc = CAT_OK;
out:
    free(chain);
    return rc;
}

struct emu_leaf *
emu_leaf_make(struct emu *e, const uint8_t *der, size_t len, const struct emu_params *p, char *err,
              size_t errlen)
{
    struct leaf_names names = {0};
    struct der_buf subj = {0}, exts = {0};
    struct emu_cert oc;
    struct der_tbs_edit ed = {0};
    struct emu_leaf *l = NULL;
    uint8_t *cert_der = NULL;
    size_t cert_len;
    int64_t nb, na, inb = e->kr.cert.not_before, ina = e->kr.cert.not_after;
    WC_RNG *rng = emu_rng();
    Cert *c = NULL;

    if (!rng) {
        emu_seterr(err, errlen, "no random number generator for this thread");
        return NULL;
    }
    if (emu_cert_parse(&oc, der, len) != CAT_OK) {
        emu_seterr(err, errlen, "origin certificate: not a valid X.509 certificate");
        return NULL;
    }
    if (p->hostname) {
        names.cn_tag = DER_UTF8STRING;
        names.cn = (const uint8_t *)p->hostname;
        names.cn_len = strlen(p->hostname);
        leaf_san_add(&names, names.cn, names.cn_len);
    } else if (leaf_names_from_origin(&names, &oc, err, errlen) != CAT_OK) {
        goto out;
    }
    if (names.san.len + 4 > CTC_MAX_ALT_SIZE) {
        emu_seterr(err, errlen, "origin certificate has too many names (%zu bytes)", names.san.len);
        goto out;
    }
    if (names.san.len > 0)
        der_wrap(&names.san, 0, DER_SEQUENCE);

    /* Subject: SEQUENCE { SET { SEQUENCE { CN, value } } }, value bytes as the origin's. */
    der_put(&subj, leaf_oid_cn, sizeof(leaf_oid_cn));
    der_put_tlv(&subj, names.cn_tag, names.cn, names.cn_len);
    der_wrap(&subj, 0, DER_SEQUENCE);
    der_wrap(&subj, 0, DER_SET);
    der_wrap(&subj, 0, DER_SEQUENCE);
    leaf_extra_exts(&exts, p);
    if (subj.failed || exts.failed || names.san.failed) {
        emu_seterr(err, errlen, "out of memory");
        goto out;
    }

    /* Never outlive (or predate) the issuer; an empty window stays empty. */
    nb = CAT_MAX(inb, CAT_MIN(oc.not_before, ina));
    na = CAT_MAX(inb, CAT_MIN(oc.not_after, ina));
    if (na < nb)
        na = nb;

    c = malloc(sizeof(*c));
    if (!c) {
        emu_seterr(err, errlen, "out of memory");
        goto out;
    }
    memcpy(c, e->tmpl, sizeof(*c));
    if (emu_cert_serial(c, rng) != CAT_OK) {
        emu_seterr(err, errlen, "random serial failed");
        goto out;
    }
    emu_cert_dates(c, nb, na);
    if (names.san.len > 0)
        memcpy(c->altNames, names.san.p, names.san.len);
    c->altNamesSz = (int)names.san.len;

    ed.issuer = e->kr.cert.subject;
    ed.subject = (struct emu_span){subj.p, subj.len};
    ed.extra_exts = (struct emu_span){exts.p, exts.len};
    if (emu_cert_finish(c, ECC_TYPE, emu_leaf_key(), &ed, e->kr.key_type, emu_kr_key(&e->kr),
                        &e->sign_mu, rng, &cert_der, &cert_len, err, errlen) != CAT_OK)
        goto out;

    l = malloc(sizeof(*l) + cert_len);
    if (!l) {
        emu_seterr(err, errlen, "out of memory");
        goto out;
    }
    atomic_init(&l->refs, 1);
    l->ctx = NULL;
    l->der_len = cert_len;
    memcpy(l->der, cert_der, cert_len);
    if (leaf_ctx(e, l, err, errlen) != CAT_OK) {
        emu_leaf_unref(l);
        l = NULL;
    }
out:
    free(c);
    free(cert_der);
    der_buf_free(&names.san);
    der_buf_free(&subj);
    der_buf_free(&exts);
    return l;
}

struct emu_leaf *
emu_leaf_ref(struct emu_leaf *l)
{
    atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
    return l;
}

void
emu_leaf_unref(struct emu_leaf *l)
{
    if (!l)
        return;
    if (atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (l->ctx)
        wolfSSL_CTX_free(l->ctx);
    free(l);
}

WOLFSSL_CTX *
emu_leaf_ctx(const struct emu_leaf *l)
{
    return l->ctx;
}

const uint8_t *
emu_leaf_der(const struct emu_leaf *l, size_t *len)
{
    *len = l->der_len;
    return l->der;
}
