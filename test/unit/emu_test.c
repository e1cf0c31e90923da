/*
 * Unit tests for emulation/: keyrings made with emu_ca_create (modes,
 * refusals, import), leaves emulated from origin certificates that a
 * separate test CA signs here with the wc_ API (names, clipping, extensions,
 * verification with a CertManager), the cache (hits, LRU bound, eight
 * threads asking at once), emu_is_own_issue, and the keyrings' CRLs
 * (fields, renewal under an injected clock, and verification by wolfSSL and
 * by the openssl CLI when it is installed). Everything lives in a mkdtemp
 * directory that is removed at the end; no network.
 */
#include "emulation/emu_int.h"

/* The cache's statics, to stage an in-flight entry (cache.o is then not linked). */
#include "emulation/cache.c"

#include "core/log.h"

#include <arpa/inet.h>
#include <ftw.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <wolfssl/openssl/x509v3.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

static char tdir[64];
static char root_dir[128], inter_dir[128], oca_dir[128];
static struct emu_keyring oca; /* the origin's CA: not catena's */
static ecc_key origin_key;
static WC_RNG trng;

static void
path_of(char *out, size_t cap, const char *dir, const char *file)
{
    snprintf(out, cap, "%s/%s", dir, file);
}

static int
rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(p);
}

static int
make_ca(const char *dir, const char *cn, const char *parent, enum emu_key_type kt, unsigned days,
        int path_len, char *err, size_t errlen)
{
    struct emu_ca_req r = {
        .dir = dir,
        .common_name = cn,
        .organization = "catena tests",
        .key_type = kt,
        .days = days,
        .parent_dir = parent,
        .path_len = path_len,
    };
    return emu_ca_create(&r, err, errlen);
}

/*
 * An origin certificate from the test CA: CN (or none), DNS names, an
 * optional IPv4 address, the given validity.
 */
static uint8_t *
make_origin(const char *cn, const char *const *dns, size_t ndns, const char *ip4, int64_t nb,
            int64_t na, size_t *len)
{
    static Cert c;
    struct der_buf san = {0};
    uint8_t *buf = malloc(8192), ip[4];
    int ret;

    assert_non_null(buf);
    assert_int_equal(wc_InitCert(&c), 0);
    c.sigType = CTC_SHA256wECDSA;
    if (cn)
        snprintf(c.subject.commonName, sizeof(c.subject.commonName), "%s", cn);
    snprintf(c.subject.org, sizeof(c.subject.org), "Origin Org");
    assert_int_equal(wc_SetIssuerBuffer(&c, oca.certs[0].der, (int)oca.certs[0].len), 0);
    for (size_t i = 0; i < ndns; i++)
        der_put_tlv(&san, DER_GN_DNS, dns[i], strlen(dns[i]));
    if (ip4) {
        assert_int_equal(inet_pton(AF_INET, ip4, ip), 1);
        der_put_tlv(&san, DER_GN_IP, ip, 4);
    }
    if (san.len) {
        der_wrap(&san, 0, DER_SEQUENCE);
        assert_false(san.failed);
        memcpy(c.altNames, san.p, san.len);
        c.altNamesSz = (int)san.len;
    }
    der_buf_free(&san);
    emu_cert_dates(&c, nb, na);
    assert_int_equal(emu_cert_serial(&c, &trng), CAT_OK);
    ret = wc_MakeCert_ex(&c, buf, 8192, ECC_TYPE, &origin_key, &trng);
    assert_true(ret > 0);
    ret = wc_SignCert_ex(c.bodySz, c.sigType, buf, 8192, ECC_TYPE, emu_kr_key(&oca), &trng);
    assert_true(ret > 0);
    *len = (size_t)ret;
    return buf;
}

static int
group_setup(void **state)
{
    char err[256], p[3][192];

    (void)state;
    log_set_level(LOG_FAC_SSL, LOG_CRIT);
    snprintf(tdir, sizeof(tdir), "/tmp/catena-emu-XXXXXX");
    if (!mkdtemp(tdir))
        return -1;
    snprintf(root_dir, sizeof(root_dir), "%s/root", tdir);
    snprintf(inter_dir, sizeof(inter_dir), "%s/inter", tdir);
    snprintf(oca_dir, sizeof(oca_dir), "%s/origin-ca", tdir);
    if (emu_init(err, sizeof(err)) != CAT_OK) {
        fprintf(stderr, "emu_init: %s\n", err);
        return -1;
    }
    /* umask 0 and 077 around creation: the modes must not depend on it. */
    mode_t old = umask(0);
    if (make_ca(root_dir, "emu test root", NULL, EMU_KEY_EC_P256, 3650, 1, err, sizeof(err)) !=
        CAT_OK) {
        fprintf(stderr, "root: %s\n", err);
        return -1;
    }
    umask(077);
    /* 30 days: origins valid for years get clipped. */
    if (make_ca(inter_dir, "emu test intermediate", root_dir, EMU_KEY_EC_P256, 30, 0, err,
                sizeof(err)) != CAT_OK) {
        fprintf(stderr, "intermediate: %s\n", err);
        return -1;
    }
    umask(old);
    if (make_ca(oca_dir, "origin test CA", NULL, EMU_KEY_EC_P256, 3650, 1, err, sizeof(err)) !=
        CAT_OK) {
        fprintf(stderr, "origin CA: %s\n", err);
        return -1;
    }
    path_of(p[0], sizeof(p[0]), oca_dir, "cert.pem");
    path_of(p[1], sizeof(p[1]), oca_dir, "key.pem");
    path_of(p[2], sizeof(p[2]), oca_dir, "chain.pem");
    if (emu_kr_load(&oca, p[0], p[1], p[2], true, err, sizeof(err)) != CAT_OK) {
        fprintf(stderr, "origin CA load: %s\n", err);
        return -1;
    }
    if (wc_InitRng(&trng) != 0 || wc_ecc_init(&origin_key) != 0 ||
        wc_ecc_make_key_ex(&trng, 32, &origin_key, ECC_SECP256R1) != 0)
        return -1;
    return 0;
}

static int
group_teardown(void **state)
{
    (void)state;
    wc_ecc_free(&origin_key);
    wc_FreeRng(&trng);
    emu_kr_free(&oca);
    emu_fini();
    return nftw(tdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static struct emu *
open_emu(const char *dir, unsigned entries)
{
    struct emu_opts o = {.dir = dir, .name = "test", .cache_entries = entries};
    char err[256] = "";
    struct emu *e = emu_new(&o, err, sizeof(err));

    if (!e)
        fprintf(stderr, "emu_new(%s): %s\n", dir, err);
    assert_non_null(e);
    return e;
}

static mode_t
mode_of(const char *dir, const char *file)
{
    char p[256];
    struct stat st;

    if (file)
        path_of(p, sizeof(p), dir, file);
    else
        snprintf(p, sizeof(p), "%s", dir);
    assert_int_equal(stat(p, &st), 0);
    return st.st_mode & 07777;
}

/* ---- keyrings ---------------------------------------------------------- */

static void
test_ca_modes(void **state)
{
    (void)state;
    assert_int_equal(mode_of(root_dir, NULL), 0700);
    assert_int_equal(mode_of(inter_dir, NULL), 0700);
    assert_int_equal(mode_of(root_dir, "key.pem"), 0600);
    assert_int_equal(mode_of(inter_dir, "key.pem"), 0600);
    /* Made under umask 077, the public files are still readable. */
    assert_int_equal(mode_of(inter_dir, "cert.pem"), 0644);
    assert_int_equal(mode_of(inter_dir, "chain.pem"), 0644);
}

static void
test_ca_fields(void **state)
{
    struct emu *e = open_emu(inter_dir, 4);
    struct emu_cert ic, rc;
    size_t len, rlen;
    const uint8_t *der = emu_issuer_der(e, &len), *rder = emu_chain_der(e, 1, &rlen);

    (void)state;
    assert_non_null(rder);
    assert_null(emu_chain_der(e, 2, &len));
    der = emu_issuer_der(e, &len);
    assert_int_equal(emu_cert_parse(&ic, der, len), CAT_OK);
    assert_int_equal(emu_cert_parse(&rc, rder, rlen), CAT_OK);
    assert_true(ic.is_ca);
    assert_int_equal(ic.path_len, 0);
    assert_int_equal(rc.path_len, 1);
    assert_true(ic.has_ku);
    assert_int_equal(ic.ku & EMU_KU_KEY_CERT_SIGN, EMU_KU_KEY_CERT_SIGN);
    /* Issuer bytes are the root's subject; the root is self-issued. */
    assert_int_equal(ic.issuer.len, rc.subject.len);
    assert_memory_equal(ic.issuer.p, rc.subject.p, rc.subject.len);
    assert_true(emu_cert_self_issued(&rc));
    /* Clock-skew margin, and the 30 days asked for. */
    assert_true(ic.not_before <= emu_now() - 3500);
    assert_true(ic.not_after - ic.not_before == 30 * 86400);
    /* basicConstraints is critical: 30 L 06 03 55 1d 13 01 01 ff. */
    assert_non_null(memmem(der, len, (const uint8_t[]){0x55, 0x1d, 0x13, 0x01, 0x01, 0xff}, 6));
    assert_non_null(memmem(rder, rlen, (const uint8_t[]){0x55, 0x1d, 0x13, 0x01, 0x01, 0xff}, 6));
    assert_true(strstr(emu_issuer_pem(e), "-----BEGIN CERTIFICATE-----") != NULL);
    assert_string_equal(emu_root_pem(e), e->kr.certs[1].pem);
    emu_free(e);
}

static void
copy_file(const char *from_dir, const char *to_dir, const char *name, const char *as, mode_t mode)
{
    char a[256], b[256], *text;
    size_t len;
    FILE *f;

    path_of(a, sizeof(a), from_dir, name);
    path_of(b, sizeof(b), to_dir, as ? as : name);
    assert_int_equal(emu_file_read(a, false, &text, &len, NULL, 0), CAT_OK);
    f = fopen(b, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(b, mode), 0);
    emu_zfree(text, len + 1);
}

static void
expect_emu_new_fails(const char *dir, const char *needle)
{
    struct emu_opts o = {.dir = dir, .cache_entries = 1};
    char err[512] = "";
    struct emu *e = emu_new(&o, err, sizeof(err));

    assert_null(e);
    if (!strstr(err, needle))
        fprintf(stderr, "error was: %s\n", err);
    assert_non_null(strstr(err, needle));
}

static void
test_ca_refusals(void **state)
{
    char err[512] = "", d[192];

    (void)state;
    /* Overwrite. */
    assert_int_equal(make_ca(root_dir, "again", NULL, EMU_KEY_EC_P256, 10, 1, err, sizeof(err)),
                     CAT_ERR);
    assert_non_null(strstr(err, "refusing to overwrite"));
    assert_int_equal(mode_of(root_dir, "key.pem"), 0600);
    /* An intermediate under a pathlen-0 CA. */
    snprintf(d, sizeof(d), "%s/deep", tdir);
    assert_int_equal(make_ca(d, "deep", inter_dir, EMU_KEY_EC_P256, 10, 0, err, sizeof(err)),
                     CAT_ERR);
    assert_non_null(strstr(err, "pathlen 0"));
    assert_int_equal(access(d, F_OK), -1); /* nothing left behind */

    /* World-readable key. */
    snprintf(d, sizeof(d), "%s/open", tdir);
    assert_int_equal(mkdir(d, 0700), 0);
    copy_file(inter_dir, d, "cert.pem", NULL, 0644);
    copy_file(inter_dir, d, "chain.pem", NULL, 0644);
    copy_file(inter_dir, d, "key.pem", NULL, 0644);
    expect_emu_new_fails(d, "accessible by group or others");
    assert_int_equal(chmod(d, 0700), 0);
    {
        char k[256];

        path_of(k, sizeof(k), d, "key.pem");
        assert_int_equal(chmod(k, 0600), 0);
        emu_free(open_emu(d, 1));
    }

    /* Key mismatch: the intermediate's certificate with the root's key. */
    snprintf(d, sizeof(d), "%s/mismatch", tdir);
    assert_int_equal(mkdir(d, 0700), 0);
    copy_file(inter_dir, d, "cert.pem", NULL, 0644);
    copy_file(inter_dir, d, "chain.pem", NULL, 0644);
    copy_file(root_dir, d, "key.pem", NULL, 0600);
    expect_emu_new_fails(d, "does not match");

    /* Chain missing: the intermediate alone does not reach a root. */
    snprintf(d, sizeof(d), "%s/nochain", tdir);
    assert_int_equal(mkdir(d, 0700), 0);
    copy_file(inter_dir, d, "cert.pem", NULL, 0644);
    copy_file(inter_dir, d, "key.pem", NULL, 0600);
    expect_emu_new_fails(d, "not self-signed");

    /* Wrong chain: the origin CA did not issue the intermediate. */
    copy_file(oca_dir, d, "cert.pem", "chain.pem", 0644);
    expect_emu_new_fails(d, "did not issue");
}

static void
test_ca_not_ca(void **state)
{
    char d[192], p[256];
    const char *dns[] = {"leaf.test"};
    size_t len, cap;
    uint8_t *der = make_origin("leaf.test", dns, 1, NULL, emu_now() - 60, emu_now() + 86400, &len);
    char *pem = emu_der_to_pem(der, len, CERT_TYPE), *kpem;
    uint8_t kder[256];
    int n;
    FILE *f;

    (void)state;
    assert_non_null(pem);
    snprintf(d, sizeof(d), "%s/notca", tdir);
    assert_int_equal(mkdir(d, 0700), 0);
    path_of(p, sizeof(p), d, "cert.pem");
    f = fopen(p, "w");
    assert_non_null(f);
    fputs(pem, f);
    fclose(f);
    n = wc_EccKeyToDer(&origin_key, kder, sizeof(kder));
    assert_true(n > 0);
    kpem = emu_der_to_pem(kder, (size_t)n, ECC_PRIVATEKEY_TYPE);
    assert_non_null(kpem);
    cap = strlen(kpem) + 1;
    path_of(p, sizeof(p), d, "key.pem");
    f = fopen(p, "w");
    assert_non_null(f);
    fputs(kpem, f);
    fclose(f);
    assert_int_equal(chmod(p, 0600), 0);
    expect_emu_new_fails(d, "not a CA");
    emu_zfree(kpem, cap);
    free(pem);
    free(der);
}

static void
test_ca_import(void **state)
{
    char d[192], c[256], k[256], ch[256], err[512] = "";
    struct emu *a, *b;
    const uint8_t *da, *db;
    size_t la, lb;

    (void)state;
    snprintf(d, sizeof(d), "%s/imported", tdir);
    path_of(c, sizeof(c), inter_dir, "cert.pem");
    path_of(k, sizeof(k), inter_dir, "key.pem");
    path_of(ch, sizeof(ch), inter_dir, "chain.pem");
    /* Without its chain the intermediate is refused; nothing is written. */
    assert_int_equal(emu_ca_import(d, c, k, NULL, err, sizeof(err)), CAT_ERR);
    assert_non_null(strstr(err, "not self-signed"));
    assert_int_equal(access(d, F_OK), -1);
    assert_int_equal(emu_ca_import(d, c, k, ch, err, sizeof(err)), CAT_OK);
    assert_int_equal(mode_of(d, NULL), 0700);
    assert_int_equal(mode_of(d, "key.pem"), 0600);
    a = open_emu(inter_dir, 1);
    b = open_emu(d, 1);
    da = emu_issuer_der(a, &la);
    db = emu_issuer_der(b, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(da, db, la);
    assert_string_equal(emu_root_pem(a), emu_root_pem(b));
    emu_free(a);
    emu_free(b);
    /* A second import into the same place is refused. */
    assert_int_equal(emu_ca_import(d, c, k, ch, err, sizeof(err)), CAT_ERR);
    assert_non_null(strstr(err, "refusing to overwrite"));
    /* A non-CA and a mismatched key are refused by import too. */
    snprintf(d, sizeof(d), "%s/imported2", tdir);
    path_of(k, sizeof(k), root_dir, "key.pem");
    assert_int_equal(emu_ca_import(d, c, k, ch, err, sizeof(err)), CAT_ERR);
    assert_non_null(strstr(err, "does not match"));
}

/* ---- leaves -------------------------------------------------------------- */

static bool
has_san(WOLFSSL_X509 *x, const char *want)
{
    const char *n;
    int guard = 0;

    while ((n = wolfSSL_X509_get_next_altname(x)) != NULL && guard++ < 64)
        if (strcmp(n, want) == 0)
            return true;
    return false;
}

static int
count_sans(const uint8_t *der, size_t len)
{
    struct emu_cert c;
    struct emu_span rd, names, v;
    uint8_t tag;
    int n = 0;

    assert_int_equal(emu_cert_parse(&c, der, len), CAT_OK);
    if (!c.san.len)
        return 0;
    rd = c.san;
    assert_int_equal(der_expect(&rd, DER_SEQUENCE, &names, NULL), CAT_OK);
    while (names.len > 0 && n < 100) {
        assert_int_equal(der_next(&names, &tag, &v, NULL), CAT_OK);
        n++;
    }
    return n;
}

static void
leaf_cn(const uint8_t *der, size_t len, char *cn, size_t cap)
{
    WOLFSSL_X509 *x = wolfSSL_X509_load_certificate_buffer(der, (int)len, WOLFSSL_FILETYPE_ASN1);

    assert_non_null(x);
    assert_true(wolfSSL_X509_NAME_get_text_by_NID(wolfSSL_X509_get_subject_name(x), NID_commonName,
                                                  cn, (int)cap) > 0);
    wolfSSL_X509_free(x);
}

static void
verify_leaf(struct emu *e, const uint8_t *der, size_t len)
{
    WOLFSSL_CERT_MANAGER *cm = wolfSSL_CertManagerNew();

    assert_non_null(cm);
    /* Root first: wolfSSL verifies each CA as it is added. */
    for (size_t i = e->kr.ncerts; i-- > 0;)
        assert_int_equal(wolfSSL_CertManagerLoadCABuffer(cm, e->kr.certs[i].der,
                                                         (long)e->kr.certs[i].len,
                                                         WOLFSSL_FILETYPE_ASN1),
                         WOLFSSL_SUCCESS);
    assert_int_equal(wolfSSL_CertManagerVerifyBuffer(cm, der, (long)len, WOLFSSL_FILETYPE_ASN1),
                     WOLFSSL_SUCCESS);
    wolfSSL_CertManagerFree(cm);
}

static void
test_leaf_emulate(void **state)
{
    struct emu *e = open_emu(inter_dir, 16);
    const char *dns[] = {"origin.test", "www.origin.test"};
    int64_t now = emu_now();
    size_t olen, llen, l2len;
    uint8_t *origin = make_origin("origin.test", dns, 2, "127.0.0.1", now - 10 * 86400,
                                  now + 20 * 365 * 86400LL, &olen);
    struct emu_params p = {.splash_text = "Intercepted by catena: see the policy",
                           .splash_url = "https://policy.example/splash",
                           .crl_url = "http://crl.example/catena.crl"};
    struct emu_stats st;
    struct emu_leaf *l, *l2, *l3;
    struct emu_cert lc, oc;
    WOLFSSL_X509 *x;
    const uint8_t *der, *der2;
    uint8_t serial[32];
    int serial_len = sizeof(serial);
    char cn[128], err[256] = "";
    bool cached = true;

    (void)state;
    l = emu_leaf_get(e, origin, olen, &p, &cached, err, sizeof(err));
    if (!l)
        fprintf(stderr, "emu_leaf_get: %s\n", err);
    assert_non_null(l);
    assert_false(cached);
    der = emu_leaf_der(l, &llen);
    verify_leaf(e, der, llen);
    assert_non_null(emu_leaf_ctx(l));
    assert_int_equal(wolfSSL_CTX_check_private_key(emu_leaf_ctx(l)), WOLFSSL_SUCCESS);

    /* Names. */
    leaf_cn(der, llen, cn, sizeof(cn));
    assert_string_equal(cn, "origin.test");
    x = wolfSSL_X509_load_certificate_buffer(der, (int)llen, WOLFSSL_FILETYPE_ASN1);
    assert_non_null(x);
    assert_true(has_san(x, "origin.test"));
    wolfSSL_X509_free(x);
    x = wolfSSL_X509_load_certificate_buffer(der, (int)llen, WOLFSSL_FILETYPE_ASN1);
    assert_true(has_san(x, "www.origin.test"));
    wolfSSL_X509_free(x);
    x = wolfSSL_X509_load_certificate_buffer(der, (int)llen, WOLFSSL_FILETYPE_ASN1);
    assert_true(has_san(x, "127.0.0.1"));
    assert_int_equal(count_sans(der, llen), 3);
    /* Serial: 16 bytes, positive. */
    assert_int_equal(wolfSSL_X509_get_serial_number(x, serial, &serial_len), WOLFSSL_SUCCESS);
    assert_int_equal(serial_len, EMU_SERIAL_LEN);
    assert_int_equal(serial[0] & 0x80, 0);
    /* Usage. */
    assert_int_equal(wolfSSL_X509_get_keyUsage(x), KEYUSE_DIGITAL_SIG);
    assert_int_equal(wolfSSL_X509_get_extended_key_usage(x) & XKU_SSL_SERVER, XKU_SSL_SERVER);
    assert_int_equal(wolfSSL_X509_get_isCA(x), 0);
    wolfSSL_X509_free(x);

    /* Validity: the origin's start, clipped to the issuer's end. */
    assert_int_equal(emu_cert_parse(&lc, der, llen), CAT_OK);
    assert_int_equal(emu_cert_parse(&oc, origin, olen), CAT_OK);
    assert_true(lc.not_before == CAT_MAX(oc.not_before, e->kr.cert.not_before));
    assert_true(lc.not_after == e->kr.cert.not_after);
    assert_true(lc.not_after < oc.not_after);
    /* Issuer byte-exact; AKID = the issuer's SKID. */
    assert_int_equal(lc.issuer.len, e->kr.cert.subject.len);
    assert_memory_equal(lc.issuer.p, e->kr.cert.subject.p, lc.issuer.len);
    assert_non_null(memmem(der, llen, e->kr.cert.skid.p, e->kr.cert.skid.len));
    /* Extensions: Netscape comment IA5String, splash URL, CRL DP URI. */
    assert_non_null(memmem(
        der, llen, (const uint8_t[]){0x60, 0x86, 0x48, 0x01, 0x86, 0xf8, 0x42, 0x01, 0x0d}, 9));
    assert_non_null(memmem(der, llen, "\x16\x25Intercepted by catena: see the policy", 39));
    assert_non_null(memmem(der, llen, "https://policy.example/splash", 29));
    assert_non_null(memmem(der, llen, "\x86\x1dhttp://crl.example/catena.crl", 31));

    /* Second call: the same leaf from the cache. */
    l2 = emu_leaf_get(e, origin, olen, &p, &cached, err, sizeof(err));
    assert_ptr_equal(l2, l);
    assert_true(cached);
    emu_get_stats(e, &st);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.created, 1);
    assert_int_equal(st.entries, 1);

    /* Other parameters: another leaf. */
    p.splash_text = NULL;
    l3 = emu_leaf_get(e, origin, olen, &p, &cached, err, sizeof(err));
    assert_non_null(l3);
    assert_false(cached);
    assert_ptr_not_equal(l3, l);
    der2 = emu_leaf_der(l3, &l2len);
    assert_null(memmem(der2, l2len, "Intercepted", 11));
    emu_get_stats(e, &st);
    assert_int_equal(st.created, 2);
    assert_int_equal(st.entries, 2);

    /* Own issue: the leaves yes, the origin no. */
    assert_true(emu_is_own_issue(e, der, llen));
    assert_true(emu_is_own_issue(e, der2, l2len));
    assert_false(emu_is_own_issue(e, origin, olen));
    assert_false(emu_is_own_issue(e, (const uint8_t *)"junk", 4));

    emu_leaf_unref(l);
    emu_leaf_unref(l2);
    emu_leaf_unref(l3);
    free(origin);
    emu_free(e);
}

static void
test_leaf_names(void **state)
{
    struct emu *e = open_emu(inter_dir, 16);
    const char *dns[] = {"first.test", "second.test"};
    int64_t now = emu_now();
    size_t olen, llen;
    struct emu_params p = {0};
    struct emu_leaf *l;
    const uint8_t *der;
    uint8_t *origin;
    WOLFSSL_X509 *x;
    char cn[128], err[256] = "";

    (void)state;
    /* No SAN: one is made from the CN. */
    origin = make_origin("nosan.test", NULL, 0, NULL, now - 60, now + 86400, &olen);
    l = emu_leaf_get(e, origin, olen, &p, NULL, err, sizeof(err));
    assert_non_null(l);
    der = emu_leaf_der(l, &llen);
    assert_int_equal(count_sans(der, llen), 1);
    x = wolfSSL_X509_load_certificate_buffer(der, (int)llen, WOLFSSL_FILETYPE_ASN1);
    assert_true(has_san(x, "nosan.test"));
    wolfSSL_X509_free(x);
    emu_leaf_unref(l);
    free(origin);

    /* No CN: the first DNS SAN becomes it. */
    origin = make_origin(NULL, dns, 2, NULL, now - 60, now + 86400, &olen);
    l = emu_leaf_get(e, origin, olen, &p, NULL, err, sizeof(err));
    assert_non_null(l);
    der = emu_leaf_der(l, &llen);
    leaf_cn(der, llen, cn, sizeof(cn));
    assert_string_equal(cn, "first.test");
    assert_int_equal(count_sans(der, llen), 2);

    /* Hostname override: CN and the only SAN. */
    emu_leaf_unref(l);
    p.hostname = "override.test";
    l = emu_leaf_get(e, origin, olen, &p, NULL, err, sizeof(err));
    assert_non_null(l);
    der = emu_leaf_der(l, &llen);
    leaf_cn(der, llen, cn, sizeof(cn));
    assert_string_equal(cn, "override.test");
    assert_int_equal(count_sans(der, llen), 1);
    verify_leaf(e, der, llen);
    emu_leaf_unref(l);

    /* An IP literal becomes an IP SAN. */
    p.hostname = "::1";
    l = emu_leaf_get(e, origin, olen, &p, NULL, err, sizeof(err));
    assert_non_null(l);
    der = emu_leaf_der(l, &llen);
    assert_non_null(memmem(der, llen, (const uint8_t[]){0x87, 0x10, 0, 0, 0, 0, 0, 0, 0, 0}, 10));
    x = wolfSSL_X509_load_certificate_buffer(der, (int)llen, WOLFSSL_FILETYPE_ASN1);
    assert_non_null(x);
    wolfSSL_X509_free(x);
    emu_leaf_unref(l);

    /* Bad parameters are refused before any work. */
    char longtext[EMU_SPLASH_TEXT_MAX + 2];
    memset(longtext, 'a', sizeof(longtext) - 1);
    longtext[sizeof(longtext) - 1] = '\0';
    p.hostname = NULL;
    p.splash_text = longtext;
    assert_null(emu_leaf_get(e, origin, olen, &p, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "splash text"));
    longtext[EMU_SPLASH_TEXT_MAX] = '\0'; /* exactly 200: fine */
    l = emu_leaf_get(e, origin, olen, &p, NULL, err, sizeof(err));
    assert_non_null(l);
    emu_leaf_unref(l);
    p.splash_text = "bell\a";
    assert_null(emu_leaf_get(e, origin, olen, &p, NULL, err, sizeof(err)));
    p.splash_text = NULL;
    p.hostname = "bad host";
    assert_null(emu_leaf_get(e, origin, olen, &p, NULL, err, sizeof(err)));
    p.hostname = NULL;
    p.splash_url = "http://x/ y";
    assert_null(emu_leaf_get(e, origin, olen, &p, NULL, err, sizeof(err)));
    free(origin);

    /* Garbage origins fail, and are not cached as entries. */
    struct emu_stats st0, st1;
    p.splash_url = NULL;
    emu_get_stats(e, &st0);
    assert_null(
        emu_leaf_get(e, (const uint8_t *)"\x30\x03\x02\x01\x01", 5, &p, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "origin certificate"));
    assert_null(
        emu_leaf_get(e, (const uint8_t *)"\x30\x03\x02\x01\x01", 5, &p, NULL, err, sizeof(err)));
    emu_get_stats(e, &st1);
    assert_int_equal(st1.entries, st0.entries);
    assert_int_equal(st1.created, st0.created);
    emu_free(e);
}

static void
test_leaf_expired_origin(void **state)
{
    struct emu *e = open_emu(inter_dir, 4);
    const char *dns[] = {"old.test"};
    int64_t now = emu_now();
    size_t olen, llen;
    uint8_t *origin =
        make_origin("old.test", dns, 1, NULL, now - 400 * 86400LL, now - 300 * 86400LL, &olen);
    struct emu_params p = {0};
    struct emu_leaf *l;
    struct emu_cert lc;
    const uint8_t *der;
    char err[256] = "";

    (void)state;
    l = emu_leaf_get(e, origin, olen, &p, NULL, err, sizeof(err));
    assert_non_null(l);
    der = emu_leaf_der(l, &llen);
    assert_int_equal(emu_cert_parse(&lc, der, llen), CAT_OK);
    /* Expired before the issuer existed: an empty window at the issuer's start. */
    assert_true(lc.not_before == e->kr.cert.not_before);
    assert_true(lc.not_after == lc.not_before);
    /* Still recognised as ours although its dates are not valid now. */
    assert_true(emu_is_own_issue(e, der, llen));
    emu_leaf_unref(l);
    free(origin);
    emu_free(e);
}

static void
test_leaf_rsa_issuer(void **state)
{
    char d[192], err[512] = "";
    const char *dns[] = {"rsa.test"};
    int64_t now = emu_now();
    size_t olen, llen;
    uint8_t *origin;
    struct emu_params p = {0};
    struct emu_leaf *l;
    struct emu *e;
    const uint8_t *der;

    (void)state;
    snprintf(d, sizeof(d), "%s/rsa-inter", tdir);
    assert_int_equal(
        make_ca(d, "rsa intermediate", root_dir, EMU_KEY_RSA_2048, 365, 0, err, sizeof(err)),
        CAT_OK);
    e = open_emu(d, 4);
    assert_int_equal(e->kr.key_type, RSA_TYPE);
    origin = make_origin("rsa.test", dns, 1, NULL, now - 60, now + 86400, &olen);
    l = emu_leaf_get(e, origin, olen, &p, NULL, err, sizeof(err));
    assert_non_null(l);
    der = emu_leaf_der(l, &llen);
    verify_leaf(e, der, llen);
    assert_true(emu_is_own_issue(e, der, llen));
    emu_leaf_unref(l);
    free(origin);
    emu_free(e);
}

/* ---- cache --------------------------------------------------------------- */

static void
test_cache_lru(void **state)
{
    struct emu *e = open_emu(inter_dir, 4);
    int64_t now = emu_now();
    struct emu_params p = {0};
    struct emu_leaf *first = NULL, *again;
    struct emu_stats st;
    char name[64], err[256];
    size_t len, flen;
    const uint8_t *fder;
    uint8_t *origins[10];
    size_t olens[10];

    (void)state;
    for (int i = 0; i < 10; i++) {
        const char *dns[1];
        struct emu_leaf *l;

        snprintf(name, sizeof(name), "site%d.test", i);
        dns[0] = name;
        origins[i] = make_origin(name, dns, 1, NULL, now - 60, now + 86400, &olens[i]);
        l = emu_leaf_get(e, origins[i], olens[i], &p, NULL, err, sizeof(err));
        assert_non_null(l);
        if (i == 0)
            first = l; /* kept across its eviction */
        else
            emu_leaf_unref(l);
        emu_get_stats(e, &st);
        assert_true(st.entries <= 4);
    }
    emu_get_stats(e, &st);
    assert_int_equal(st.entries, 4);
    assert_int_equal(st.created, 10);
    assert_int_equal(st.evicted, 6);
    /* The evicted leaf still works for its holder. */
    fder = emu_leaf_der(first, &flen);
    verify_leaf(e, fder, flen);
    /* The most recent ones are hits; the first is made again. */
    again = emu_leaf_get(e, origins[9], olens[9], &p, NULL, err, sizeof(err));
    emu_get_stats(e, &st);
    assert_int_equal(st.hits, 1);
    emu_leaf_unref(again);
    again = emu_leaf_get(e, origins[0], olens[0], &p, NULL, err, sizeof(err));
    assert_ptr_not_equal(again, first);
    emu_get_stats(e, &st);
    assert_int_equal(st.created, 11);
    (void)emu_leaf_der(again, &len);
    emu_leaf_unref(again);
    emu_leaf_unref(first);
    for (int i = 0; i < 10; i++)
        free(origins[i]);
    emu_free(e);
}

struct race {
    struct emu *e;
    const uint8_t *origin;
    size_t olen;
    pthread_barrier_t *bar;
    struct emu_leaf *got;
};

static void *
race_fn(void *arg)
{
    struct race *r = arg;
    struct emu_params p = {.splash_text = "race"};
    char err[256];

    pthread_barrier_wait(r->bar);
    r->got = emu_leaf_get(r->e, r->origin, r->olen, &p, NULL, err, sizeof(err));
    return NULL;
}

static void
test_cache_threads(void **state)
{
    struct emu *e = open_emu(inter_dir, 8);
    const char *dns[] = {"race.test"};
    int64_t now = emu_now();
    size_t olen;
    uint8_t *origin = make_origin("race.test", dns, 1, NULL, now - 60, now + 86400, &olen);
    pthread_barrier_t bar;
    pthread_t th[8];
    struct race r[8];
    struct emu_stats st;

    (void)state;
    assert_int_equal(pthread_barrier_init(&bar, NULL, 8), 0);
    for (int i = 0; i < 8; i++) {
        r[i] = (struct race){.e = e, .origin = origin, .olen = olen, .bar = &bar};
        assert_int_equal(pthread_create(&th[i], NULL, race_fn, &r[i]), 0);
    }
    for (int i = 0; i < 8; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    emu_get_stats(e, &st);
    assert_int_equal(st.created, 1);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.waited + st.hits, 7);
    for (int i = 0; i < 8; i++) {
        assert_non_null(r[i].got);
        assert_ptr_equal(r[i].got, r[0].got);
    }
    for (int i = 0; i < 8; i++)
        emu_leaf_unref(r[i].got);
    pthread_barrier_destroy(&bar);
    free(origin);
    emu_free(e);
}

struct waiter {
    struct emu *e;
    const uint8_t *der;
    size_t len;
    struct emu_leaf *got;
    char err[256];
};

static void *
waiter_fn(void *arg)
{
    struct waiter *w = arg;
    struct emu_params p = {0};

    w->got = emu_leaf_get(w->e, w->der, w->len, &p, NULL, w->err, sizeof(w->err));
    return NULL;
}

/*
 * The test plays the builder: it puts a BUILDING entry in the table, lets a
 * second thread wait on it, then finishes it the way emu_leaf_get does.
 */
static struct emu_entry *
stage_building(struct emu *e, const uint8_t *der, size_t len)
{
    struct emu_params p = {0};
    struct emu_entry *en = calloc(1, sizeof(*en));

    assert_non_null(en);
    assert_int_equal(cache_key(der, len, &p, en->key), CAT_OK);
    en->state = EMU_ENT_BUILDING;
    en->pins = 1;
    en->in_table = true;
    pthread_mutex_lock(&e->cache.mu);
    en->hnext = *cache_slot(&e->cache, en->key);
    *cache_slot(&e->cache, en->key) = en;
    pthread_mutex_unlock(&e->cache.mu);
    return en;
}

/* Returns once the waiter is blocked on the entry (waited is counted under the lock it waits with).
 */
static void
await_waiter(struct emu *e)
{
    unsigned long waited = 0;

    for (long i = 0; i < 100000000L && waited == 0; i++) {
        pthread_mutex_lock(&e->cache.mu);
        waited = e->cache.stats.waited;
        pthread_mutex_unlock(&e->cache.mu);
        if (!waited)
            sched_yield();
    }
    assert_int_equal(waited, 1);
}

static void
test_cache_waiter_outcomes(void **state)
{
    struct emu *e = open_emu(inter_dir, 1);
    const char *dns[] = {"wait.test"};
    int64_t now = emu_now();
    size_t olen;
    uint8_t *origin = make_origin("wait.test", dns, 1, NULL, now - 60, now + 86400, &olen);
    struct waiter w = {.e = e, .der = origin, .len = olen};
    struct emu_entry *en, *dead = NULL;
    struct emu_params p = {0};
    struct emu_leaf *l;
    struct emu_stats st;
    pthread_t th;
    char err[256];

    (void)state;
    /* The builder fails: the waiter gets its error, and nothing stays cached. */
    en = stage_building(e, origin, olen);
    assert_int_equal(pthread_create(&th, NULL, waiter_fn, &w), 0);
    await_waiter(e);
    pthread_mutex_lock(&e->cache.mu);
    en->state = EMU_ENT_FAILED;
    snprintf(en->err, sizeof(en->err), "staged builder failure");
    cache_unlink_hash(&e->cache, en);
    cache_unpin(en, &dead);
    pthread_cond_broadcast(&e->cache.cv);
    pthread_mutex_unlock(&e->cache.mu);
    assert_null(dead); /* the waiter still holds it */
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_null(w.got);
    assert_string_equal(w.err, "staged builder failure");
    emu_get_stats(e, &st);
    assert_int_equal(st.entries, 0);

    /* The builder succeeds and a third key evicts the entry before the
     * waiter runs again: the waiter still gets the leaf. */
    en = stage_building(e, origin, olen);
    e->cache.stats.waited = 0;
    assert_int_equal(pthread_create(&th, NULL, waiter_fn, &w), 0);
    await_waiter(e);
    l = emu_leaf_make(e, origin, olen, &p, err, sizeof(err));
    assert_non_null(l);
    pthread_mutex_lock(&e->cache.mu);
    en->leaf = l; /* the cache's reference, handed over */
    en->state = EMU_ENT_READY;
    dlist_push_head(&e->cache.lru, &en->lru);
    e->cache.stats.entries++;
    cache_unpin(en, &dead);
    /* Evicted while the waiter has not woken: cap is 1. */
    dlist_unlink(&e->cache.lru, &en->lru);
    cache_unlink_hash(&e->cache, en);
    e->cache.stats.entries--;
    pthread_cond_broadcast(&e->cache.cv);
    pthread_mutex_unlock(&e->cache.mu);
    assert_null(dead);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_ptr_equal(w.got, l);
    /* The waiter freed the entry; its reference keeps the leaf. */
    assert_int_equal(atomic_load(&l->refs), 1);
    emu_leaf_unref(w.got);
    free(origin);
    emu_free(e);
}

/* ---- CRL ------------------------------------------------------------------ */

static int64_t fake_now;

static int64_t
fake_clock(void)
{
    return fake_now;
}

static int
clock_restore(void **state)
{
    (void)state;
    emu_clock_set(NULL);
    return 0;
}

static void
write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Runs cmd through the shell; its stdout and stderr in out. Returns its exit status. */
static int
run_cmd(const char *cmd, char *out, size_t cap)
{
    char full[2048];
    size_t n = 0, got;
    FILE *p;
    int st;

    snprintf(full, sizeof(full), "%s 2>&1", cmd);
    p = popen(full, "r");
    assert_non_null(p);
    while (n + 1 < cap && (got = fread(out + n, 1, cap - 1 - n, p)) > 0)
        n += got;
    out[n] = '\0';
    /* Drain the rest, or a chatty child blocks on a full pipe and pclose waits forever. */
    while (fread(full, 1, sizeof(full), p) > 0)
        ;
    st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool
have_openssl(void)
{
    char out[256];

    return run_cmd("openssl version", out, sizeof(out)) == 0 && strncmp(out, "OpenSSL", 7) == 0;
}

/* What a CertificateList says, read with the module's own DER reader. */
struct crl_view {
    struct emu_span alg, issuer, akid, outer_alg;
    int64_t this_upd, next_upd;
    uint64_t number;
    int version;
    bool has_next, has_revoked, has_akid, has_number;
};

static uint64_t
uint_of(struct emu_span v)
{
    uint64_t n = 0;

    assert_true(v.len >= 1 && v.len <= 9);
    assert_int_equal(v.p[0] & 0x80, 0);
    for (size_t i = 0; i < v.len; i++)
        n = n << 8 | v.p[i];
    return n;
}

static void
crl_view(const uint8_t *der, size_t len, struct crl_view *cv)
{
    struct emu_span rd = {der, len}, list, tbs, f, exts, ext, oid, val, in;
    uint8_t tag;

    memset(cv, 0, sizeof(*cv));
    assert_int_equal(der_expect(&rd, DER_SEQUENCE, &list, NULL), CAT_OK);
    assert_int_equal(rd.len, 0);
    assert_int_equal(der_expect(&list, DER_SEQUENCE, &tbs, NULL), CAT_OK);
    assert_int_equal(der_expect(&list, DER_SEQUENCE, &f, &cv->outer_alg), CAT_OK);
    assert_int_equal(der_expect(&list, DER_BIT_STRING, &f, NULL), CAT_OK);
    assert_int_equal(list.len, 0);

    assert_int_equal(der_expect(&tbs, DER_INTEGER, &f, NULL), CAT_OK);
    cv->version = (int)uint_of(f);
    assert_int_equal(der_expect(&tbs, DER_SEQUENCE, &f, &cv->alg), CAT_OK);
    assert_int_equal(der_expect(&tbs, DER_SEQUENCE, &f, &cv->issuer), CAT_OK);
    assert_int_equal(der_next(&tbs, &tag, &f, NULL), CAT_OK);
    assert_int_equal(der_time_parse(tag, f, &cv->this_upd), CAT_OK);
    if (tbs.len > 0 && (tbs.p[0] == DER_UTCTIME || tbs.p[0] == DER_GENTIME)) {
        assert_int_equal(der_next(&tbs, &tag, &f, NULL), CAT_OK);
        assert_int_equal(der_time_parse(tag, f, &cv->next_upd), CAT_OK);
        cv->has_next = true;
    }
    cv->has_revoked = der_expect(&tbs, DER_SEQUENCE, &f, NULL) == CAT_OK;
    if (der_expect(&tbs, 0xa0, &f, NULL) == CAT_OK) {
        assert_int_equal(der_expect(&f, DER_SEQUENCE, &exts, NULL), CAT_OK);
        assert_int_equal(f.len, 0);
        for (int guard = 0; exts.len > 0 && guard < 16; guard++) {
            assert_int_equal(der_expect(&exts, DER_SEQUENCE, &ext, NULL), CAT_OK);
            assert_int_equal(der_expect(&ext, DER_OID, &oid, NULL), CAT_OK);
            assert_int_not_equal(der_expect(&ext, DER_BOOLEAN, &f, NULL), CAT_OK);
            assert_int_equal(der_expect(&ext, DER_OCTET_STRING, &val, NULL), CAT_OK);
            if (oid.len == 3 && memcmp(oid.p, "\x55\x1d\x23", 3) == 0) {
                assert_int_equal(der_expect(&val, DER_SEQUENCE, &in, NULL), CAT_OK);
                assert_int_equal(der_expect(&in, 0x80, &cv->akid, NULL), CAT_OK);
                assert_int_equal(in.len, 0);
                cv->has_akid = true;
            } else if (oid.len == 3 && memcmp(oid.p, "\x55\x1d\x14", 3) == 0) {
                assert_int_equal(der_expect(&val, DER_INTEGER, &in, NULL), CAT_OK);
                cv->number = uint_of(in);
                cv->has_number = true;
            }
            assert_int_equal(val.len, 0);
        }
        assert_int_equal(exts.len, 0);
    }
    assert_int_equal(tbs.len, 0);
}

static void
get_crl(struct emu *e, uint8_t **der, size_t *len, struct crl_view *cv)
{
    char err[256] = "";
    int64_t next = 0;

    if (emu_crl_get(e, der, len, &next, err, sizeof(err)) != CAT_OK)
        fprintf(stderr, "emu_crl_get: %s\n", err);
    assert_non_null(*der);
    crl_view(*der, *len, cv);
    assert_true(next == cv->next_upd);
}

/* The fields RFC 5280 section 5 asks for, against the keyring's issuer, at time now. */
static void
check_crl_fields(struct emu *e, const struct crl_view *cv, int64_t now)
{
    static const uint8_t ecdsa_sha256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
                                           0xce, 0x3d, 0x04, 0x03, 0x02};
    static const uint8_t rsa_sha256[] = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86,
                                         0xf7, 0x0d, 0x01, 0x01, 0x0b};
    const struct emu_cert *ic = &e->kr.cert;
    int64_t want_next = CAT_MIN(now + 7 * 86400, ic->not_after);

    assert_int_equal(cv->version, 1); /* v2 */
    assert_int_equal(cv->alg.len, cv->outer_alg.len);
    assert_memory_equal(cv->alg.p, cv->outer_alg.p, cv->alg.len);
    if (e->kr.key_type == ECC_TYPE)
        assert_memory_equal(cv->alg.p + 2, ecdsa_sha256, sizeof(ecdsa_sha256));
    else
        assert_memory_equal(cv->alg.p + 2, rsa_sha256, sizeof(rsa_sha256));
    assert_int_equal(cv->issuer.len, ic->subject.len);
    assert_memory_equal(cv->issuer.p, ic->subject.p, ic->subject.len);
    assert_true(cv->this_upd == CAT_MAX(now - 3600, ic->not_before));
    assert_true(cv->has_next);
    assert_true(cv->next_upd == want_next);
    assert_true(cv->next_upd <= ic->not_after);
    assert_false(cv->has_revoked);
    assert_true(cv->has_akid);
    assert_true(ic->skid.len > 0);
    assert_int_equal(cv->akid.len, ic->skid.len);
    assert_memory_equal(cv->akid.p, ic->skid.p, ic->skid.len);
    assert_true(cv->has_number);
}

/* `openssl crl ... -verify` against the issuer: prints "verify OK" on success. */
static void
openssl_crl_verify(struct emu *e, const uint8_t *der, size_t len, const char *tag)
{
    char crl[256], ca[256], cmd[1024], out[4096];
    int rc;

    snprintf(crl, sizeof(crl), "%s/%s.crl.der", tdir, tag);
    snprintf(ca, sizeof(ca), "%s/%s.issuer.pem", tdir, tag);
    write_file(crl, der, len);
    write_file(ca, emu_issuer_pem(e), strlen(emu_issuer_pem(e)));
    snprintf(cmd, sizeof(cmd), "openssl crl -inform DER -in %s -CAfile %s -noout -verify", crl, ca);
    rc = run_cmd(cmd, out, sizeof(out));
    if (rc != 0 || !strstr(out, "verify OK"))
        fprintf(stderr, "%s\n-> %d: %s\n", cmd, rc, out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "verify OK"));
    /* Another issuer's certificate does not verify it... */
    write_file(ca, oca.certs[0].pem, strlen(oca.certs[0].pem));
    rc = run_cmd(cmd, out, sizeof(out));
    assert_int_not_equal(rc, 0);
    assert_null(strstr(out, "verify OK"));
    /* ...nor does the issuer verify a CRL with a byte of its signature changed
     * (openssl then prints "verify failure" and still exits 0). */
    {
        uint8_t *bad = malloc(len);

        assert_non_null(bad);
        memcpy(bad, der, len);
        bad[len - 5] ^= 0x01;
        write_file(crl, bad, len);
        write_file(ca, emu_issuer_pem(e), strlen(emu_issuer_pem(e)));
        (void)run_cmd(cmd, out, sizeof(out));
        assert_non_null(strstr(out, "verify failure"));
        assert_null(strstr(out, "verify OK"));
        free(bad);
    }
}

static void
test_crl_ecdsa(void **state)
{
    struct emu *e = open_emu(inter_dir, 1);
    int64_t before = emu_now(), after;
    struct crl_view cv;
    uint8_t *der;
    size_t len;

    (void)state;
    assert_int_equal(e->kr.key_type, ECC_TYPE);
    get_crl(e, &der, &len, &cv);
    after = emu_now();
    /* The clock may tick during the call: check against both ends. */
    if (cv.this_upd != CAT_MAX(before - 3600, e->kr.cert.not_before))
        before = after;
    check_crl_fields(e, &cv, before);
    /* The intermediate lives 30 days: nextUpdate is the 7 days, not its end. */
    assert_true(cv.next_upd - cv.this_upd == 7 * 86400 + 3600);
    assert_true(cv.number >= (uint64_t)cv.this_upd);
    if (have_openssl())
        openssl_crl_verify(e, der, len, "ecdsa");
    else
        fprintf(stderr, "openssl CLI not found: skipping its checks\n");
    free(der);
    /* An issuer whose keyUsage leaves out cRLSign (an imported CA) gets none:
     * clients would refuse it. */
    {
        char err[256] = "";

        e->kr.cert.ku &= (uint16_t)~EMU_KU_CRL_SIGN;
        assert_int_equal(emu_crl_get(e, &der, &len, NULL, err, sizeof(err)), CAT_ERR);
        assert_null(der);
        assert_non_null(strstr(err, "cRLSign"));
    }
    emu_free(e);
}

static void
test_crl_rsa(void **state)
{
    char d[192], err[512] = "";
    struct crl_view cv;
    struct emu *e;
    uint8_t *der;
    size_t len;
    int64_t now;

    (void)state;
    snprintf(d, sizeof(d), "%s/rsa-crl", tdir);
    assert_int_equal(make_ca(d, "rsa crl root", NULL, EMU_KEY_RSA_2048, 3650, 1, err, sizeof(err)),
                     CAT_OK);
    e = open_emu(d, 1);
    assert_int_equal(e->kr.key_type, RSA_TYPE);
    fake_now = emu_now();
    emu_clock_set(fake_clock);
    now = fake_now;
    get_crl(e, &der, &len, &cv);
    check_crl_fields(e, &cv, now);
    if (have_openssl())
        openssl_crl_verify(e, der, len, "rsa");
    free(der);
    emu_free(e);
}

static void
same_crl(struct emu *e, const uint8_t *want, size_t want_len)
{
    struct crl_view cv;
    uint8_t *der;
    size_t len;

    get_crl(e, &der, &len, &cv);
    assert_int_equal(len, want_len);
    assert_memory_equal(der, want, len);
    free(der);
}

static void
test_crl_refresh(void **state)
{
    struct emu *e = open_emu(inter_dir, 1), *e2;
    int64_t t0 = emu_now(), na = e->kr.cert.not_after, half = (7 * 86400 + 3600) / 2;
    struct crl_view a, b, c, d;
    uint8_t *da, *db, *dc, *dd;
    size_t la, lb, lc, ld, n;
    char err[256] = "";

    (void)state;
    emu_clock_set(fake_clock);
    fake_now = t0;
    get_crl(e, &da, &la, &a);
    check_crl_fields(e, &a, t0);
    /* Before half of its validity: the same bytes (ECDSA signatures are randomised). */
    fake_now = t0 + 86400;
    same_crl(e, da, la);
    fake_now = a.this_upd + half - 1;
    same_crl(e, da, la);
    /* At half: a new one, later, with a higher number. */
    fake_now = a.this_upd + half;
    get_crl(e, &db, &lb, &b);
    check_crl_fields(e, &b, fake_now);
    assert_true(b.this_upd > a.this_upd);
    assert_true(b.number > a.number);
    assert_false(la == lb && memcmp(da, db, la) == 0);

    /* Near the issuer's end nextUpdate stops there, and is not re-signed on every request. */
    fake_now = na - 2 * 86400;
    get_crl(e, &dc, &lc, &c);
    check_crl_fields(e, &c, fake_now);
    assert_true(c.next_upd == na);
    assert_true(c.number > b.number);
    fake_now = na - 600;
    same_crl(e, dc, lc);

    /* The clock goes back before its thisUpdate: a new one, the number still rising. */
    fake_now = t0;
    get_crl(e, &dd, &ld, &d);
    check_crl_fields(e, &d, t0);
    assert_true(d.number == c.number + 1);
    free(dd);

    /* A keyring whose issuer has expired makes none. */
    e2 = open_emu(inter_dir, 1);
    fake_now = na + 7200;
    assert_int_equal(emu_crl_get(e2, &dd, &n, NULL, err, sizeof(err)), CAT_ERR);
    assert_null(dd);
    assert_non_null(strstr(err, "expired"));
    emu_free(e2);
    /* One made before is served until its nextUpdate (the issuer's end), then refused too. */
    fake_now = na - 600;
    get_crl(e, &dd, &ld, &d);
    assert_true(d.next_upd == na);
    free(dd);
    fake_now = na - 1;
    get_crl(e, &dd, &ld, &d);
    assert_true(d.next_upd == na);
    free(dd);
    fake_now = na;
    err[0] = '\0';
    assert_int_equal(emu_crl_get(e, &dd, &n, NULL, err, sizeof(err)), CAT_ERR);
    assert_null(dd);
    assert_non_null(strstr(err, "expired"));

    free(da);
    free(db);
    free(dc);
    emu_free(e);
}

struct crl_race {
    struct emu *e;
    pthread_barrier_t *bar;
    uint8_t *der;
    size_t len;
};

static void *
crl_race_fn(void *arg)
{
    struct crl_race *r = arg;
    char err[256];

    pthread_barrier_wait(r->bar);
    if (emu_crl_get(r->e, &r->der, &r->len, NULL, err, sizeof(err)) != CAT_OK)
        r->der = NULL;
    return NULL;
}

static void
test_crl_threads(void **state)
{
    struct emu *e = open_emu(inter_dir, 1);
    pthread_barrier_t bar;
    pthread_t th[8];
    struct crl_race r[8];

    (void)state;
    assert_int_equal(pthread_barrier_init(&bar, NULL, 8), 0);
    for (int i = 0; i < 8; i++) {
        r[i] = (struct crl_race){.e = e, .bar = &bar};
        assert_int_equal(pthread_create(&th[i], NULL, crl_race_fn, &r[i]), 0);
    }
    for (int i = 0; i < 8; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    /* One signature for all: the copies are the same bytes. */
    for (int i = 0; i < 8; i++) {
        assert_non_null(r[i].der);
        assert_int_equal(r[i].len, r[0].len);
        assert_memory_equal(r[i].der, r[0].der, r[0].len);
    }
    for (int i = 0; i < 8; i++)
        free(r[i].der);
    pthread_barrier_destroy(&bar);
    emu_free(e);
}

static void
write_pem(const char *name, const uint8_t *der, size_t len, int type, char *path, size_t cap)
{
    char *pem = emu_der_to_pem(der, len, type);

    assert_non_null(pem);
    snprintf(path, cap, "%s/%s", tdir, name);
    write_file(path, pem, strlen(pem));
    free(pem);
}

/* The leaf names the CRL's URL, and the CRL clears it: openssl and wolfSSL agree. */
static void
test_crl_leaf(void **state)
{
    struct emu *e = open_emu(inter_dir, 4), *re = open_emu(root_dir, 1);
    const char *dns[] = {"crl.test"};
    int64_t now = emu_now();
    size_t olen, llen, clen, rlen;
    uint8_t *origin = make_origin("crl.test", dns, 1, NULL, now - 60, now + 86400, &olen);
    uint8_t *crl, *rcrl;
    struct emu_params p = {.crl_url = "http://catena.invalid/crl/inter.crl"};
    struct emu_leaf *l;
    const uint8_t *der;
    char err[256] = "", leaf[256], inter[256], root[256], crlf[256], allf[256], cmd[2048],
         out[4096];
    WOLFSSL_CERT_MANAGER *cm;
    int rc;

    (void)state;
    l = emu_leaf_get(e, origin, olen, &p, NULL, err, sizeof(err));
    assert_non_null(l);
    der = emu_leaf_der(l, &llen);
    assert_non_null(memmem(der, llen, p.crl_url, strlen(p.crl_url)));
    assert_int_equal(emu_crl_get(e, &crl, &clen, NULL, err, sizeof(err)), CAT_OK);
    assert_int_equal(emu_crl_get(re, &rcrl, &rlen, NULL, err, sizeof(err)), CAT_OK);

    /* wolfSSL: leaf CRL checking with the intermediate's CRL loaded from memory. */
    cm = wolfSSL_CertManagerNew();
    assert_non_null(cm);
    for (size_t i = e->kr.ncerts; i-- > 0;)
        assert_int_equal(wolfSSL_CertManagerLoadCABuffer(cm, e->kr.certs[i].der,
                                                         (long)e->kr.certs[i].len,
                                                         WOLFSSL_FILETYPE_ASN1),
                         WOLFSSL_SUCCESS);
    assert_int_equal(wolfSSL_CertManagerEnableCRL(cm, WOLFSSL_CRL_CHECK), WOLFSSL_SUCCESS);
    assert_int_equal(wolfSSL_CertManagerVerifyBuffer(cm, der, (long)llen, WOLFSSL_FILETYPE_ASN1),
                     CRL_MISSING);
    assert_int_equal(wolfSSL_CertManagerLoadCRLBuffer(cm, crl, (long)clen, WOLFSSL_FILETYPE_ASN1),
                     WOLFSSL_SUCCESS);
    assert_int_equal(wolfSSL_CertManagerVerifyBuffer(cm, der, (long)llen, WOLFSSL_FILETYPE_ASN1),
                     WOLFSSL_SUCCESS);
    wolfSSL_CertManagerFree(cm);

    if (!have_openssl()) {
        fprintf(stderr, "openssl CLI not found: skipping its checks\n");
        goto out;
    }
    write_pem("crl-leaf.pem", der, llen, CERT_TYPE, leaf, sizeof(leaf));
    snprintf(inter, sizeof(inter), "%s/crl-inter.pem", tdir);
    write_file(inter, emu_issuer_pem(e), strlen(emu_issuer_pem(e)));
    snprintf(root, sizeof(root), "%s/crl-root.pem", tdir);
    write_file(root, emu_root_pem(e), strlen(emu_root_pem(e)));
    write_pem("crl-inter.crl.pem", crl, clen, CRL_TYPE, crlf, sizeof(crlf));
    /* Both CRLs in one file, for -crl_check_all. */
    {
        char *a = emu_der_to_pem(crl, clen, CRL_TYPE), *b = emu_der_to_pem(rcrl, rlen, CRL_TYPE);
        FILE *f;

        assert_non_null(a);
        assert_non_null(b);
        snprintf(allf, sizeof(allf), "%s/crl-all.pem", tdir);
        f = fopen(allf, "w");
        assert_non_null(f);
        fputs(a, f);
        fputs(b, f);
        assert_int_equal(fclose(f), 0);
        free(a);
        free(b);
    }

    /* -crl_check: the leaf's CRL, from its issuer, is enough. */
    snprintf(cmd, sizeof(cmd), "openssl verify -crl_check -CRLfile %s -CAfile %s -untrusted %s %s",
             crlf, root, inter, leaf);
    rc = run_cmd(cmd, out, sizeof(out));
    if (rc != 0)
        fprintf(stderr, "%s\n-> %d: %s\n", cmd, rc, out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, ": OK"));
    /* Strict X.509 checks too. */
    snprintf(cmd, sizeof(cmd),
             "openssl verify -x509_strict -crl_check -CRLfile %s -CAfile %s -untrusted %s %s", crlf,
             root, inter, leaf);
    rc = run_cmd(cmd, out, sizeof(out));
    if (rc != 0)
        fprintf(stderr, "%s\n-> %d: %s\n", cmd, rc, out);
    assert_int_equal(rc, 0);
    /* -crl_check_all wants the root's CRL for the intermediate as well... */
    snprintf(cmd, sizeof(cmd),
             "openssl verify -crl_check_all -CRLfile %s -CAfile %s -untrusted %s %s", crlf, root,
             inter, leaf);
    rc = run_cmd(cmd, out, sizeof(out));
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(out, "unable to get certificate CRL"));
    /* ...which the root keyring makes. */
    snprintf(cmd, sizeof(cmd),
             "openssl verify -crl_check_all -CRLfile %s -CAfile %s -untrusted %s %s", allf, root,
             inter, leaf);
    rc = run_cmd(cmd, out, sizeof(out));
    if (rc != 0)
        fprintf(stderr, "%s\n-> %d: %s\n", cmd, rc, out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, ": OK"));
    /* The root's CRL alone does not clear the leaf. */
    write_pem("crl-root.crl.pem", rcrl, rlen, CRL_TYPE, crlf, sizeof(crlf));
    snprintf(cmd, sizeof(cmd), "openssl verify -crl_check -CRLfile %s -CAfile %s -untrusted %s %s",
             crlf, root, inter, leaf);
    rc = run_cmd(cmd, out, sizeof(out));
    assert_int_not_equal(rc, 0);
out:
    free(crl);
    free(rcrl);
    emu_leaf_unref(l);
    free(origin);
    emu_free(re);
    emu_free(e);
}

/* ---- DER helpers ------------------------------------------------------------ */

static void
test_der_time(void **state)
{
    uint8_t b[20];
    int64_t t, back;
    size_t n;

    (void)state;
    t = 2524607999; /* 2049-12-31 23:59:59: the last UTCTime */
    n = der_time_put(b, t);
    assert_int_equal(n, 15);
    assert_int_equal(b[0], DER_UTCTIME);
    assert_memory_equal(b + 2, "491231235959Z", 13);
    assert_int_equal(der_time_parse(b[0], (struct emu_span){b + 2, b[1]}, &back), CAT_OK);
    assert_true(back == t);
    n = der_time_put(b, t + 1);
    assert_int_equal(b[0], DER_GENTIME);
    assert_memory_equal(b + 2, "20500101000000Z", 15);
    assert_int_equal(der_time_parse(b[0], (struct emu_span){b + 2, b[1]}, &back), CAT_OK);
    assert_true(back == t + 1);
    assert_int_equal(n, 17);
    /* Fractions, offsets and junk are refused. */
    assert_int_equal(
        der_time_parse(DER_UTCTIME, (struct emu_span){(const uint8_t *)"4912312359Z", 11}, &back),
        CAT_ERR);
    assert_int_equal(der_time_parse(DER_GENTIME,
                                    (struct emu_span){(const uint8_t *)"2050010100000a0", 15},
                                    &back),
                     CAT_ERR);
}

static void
test_der_reader(void **state)
{
    /* Lengths past the end, indefinite lengths and long tags are errors. */
    static const uint8_t past[] = {0x30, 0x05, 0x02, 0x01};
    static const uint8_t indef[] = {0x30, 0x80, 0x00, 0x00};
    static const uint8_t longtag[] = {0x1f, 0x81, 0x01, 0x00};
    static const uint8_t huge[] = {0x30, 0x84, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t ok[] = {0x30, 0x81, 0x01, 0x05};
    struct emu_span rd, v;
    uint8_t tag;

    (void)state;
    rd = (struct emu_span){past, sizeof(past)};
    assert_int_equal(der_next(&rd, &tag, &v, NULL), CAT_ERR);
    rd = (struct emu_span){indef, sizeof(indef)};
    assert_int_equal(der_next(&rd, &tag, &v, NULL), CAT_ERR);
    rd = (struct emu_span){longtag, sizeof(longtag)};
    assert_int_equal(der_next(&rd, &tag, &v, NULL), CAT_ERR);
    rd = (struct emu_span){huge, sizeof(huge)};
    assert_int_equal(der_next(&rd, &tag, &v, NULL), CAT_ERR);
    rd = (struct emu_span){ok, sizeof(ok)};
    assert_int_equal(der_next(&rd, &tag, &v, NULL), CAT_OK);
    assert_int_equal(v.len, 1);
    assert_int_equal(rd.len, 0);
    /* A truncated certificate never parses. */
    {
        struct emu *e = open_emu(inter_dir, 1);
        struct emu_cert c;
        size_t len;
        const uint8_t *der = emu_issuer_der(e, &len);

        assert_int_equal(emu_cert_parse(&c, der, len), CAT_OK);
        for (size_t cut = 1; cut < len; cut += 7)
            assert_int_equal(emu_cert_parse(&c, der, len - cut), CAT_ERR);
        emu_free(e);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_der_time),
        cmocka_unit_test(test_der_reader),
        cmocka_unit_test(test_ca_modes),
        cmocka_unit_test(test_ca_fields),
        cmocka_unit_test(test_ca_refusals),
        cmocka_unit_test(test_ca_not_ca),
        cmocka_unit_test(test_ca_import),
        cmocka_unit_test(test_leaf_emulate),
        cmocka_unit_test(test_leaf_names),
        cmocka_unit_test(test_leaf_expired_origin),
        cmocka_unit_test(test_leaf_rsa_issuer),
        cmocka_unit_test(test_cache_lru),
        cmocka_unit_test(test_cache_threads),
        cmocka_unit_test(test_cache_waiter_outcomes),
        cmocka_unit_test(test_crl_ecdsa),
        cmocka_unit_test_teardown(test_crl_rsa, clock_restore),
        cmocka_unit_test_teardown(test_crl_refresh, clock_restore),
        cmocka_unit_test(test_crl_threads),
        cmocka_unit_test(test_crl_leaf),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
