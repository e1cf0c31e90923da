/*
 * CA management for `catenactl ca`: new roots and intermediates, and the
 * import of an existing enterprise CA, each written as a keyring directory.
 * Directories are made 0700 and key files 0600 whatever the umask, with
 * O_EXCL: an existing keyring is never overwritten, and a failed run removes
 * what it wrote. CA certificates get basicConstraints critical, which
 * wolfSSL 5.5.4 cannot emit by itself (notes/wolfssl.md section 2).
 */
#include "emulation/emu_int.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <wolfssl/wolfcrypt/error-crypt.h>

static const char *const ca_files[] = {"cert.pem", "chain.pem", "key.pem"};

/* A keyring directory being written: what to remove if the run fails. */
struct ca_out {
    const char *dir;
    int dfd;
    bool made_dir;
    bool made[CAT_ARRAY_LEN(ca_files)];
};

static int
ca_dir_open(struct ca_out *o, const char *dir, char *err, size_t errlen)
{
    struct stat st;

    memset(o, 0, sizeof(*o));
    o->dir = dir;
    o->dfd = -1;
    if (mkdir(dir, 0700) == 0) {
        o->made_dir = true;
    } else if (errno != EEXIST) {
        emu_seterr(err, errlen, "%s: %s", dir, strerror(errno));
        return CAT_ERR;
    }
    o->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (o->dfd == -1 || fstat(o->dfd, &st) == -1) {
        emu_seterr(err, errlen, "%s: %s", dir, strerror(errno));
        return CAT_ERR;
    }
    if (o->made_dir) {
        /* mkdir's mode went through the umask: set it exactly. */
        if (fchmod(o->dfd, 0700) == -1) {
            emu_seterr(err, errlen, "%s: %s", dir, strerror(errno));
            return CAT_ERR;
        }
    } else if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        emu_seterr(err, errlen,
                   "%s exists and is accessible by group or others (mode %04o); "
                   "use a new directory or chmod 700 it",
                   dir, (unsigned)(st.st_mode & 07777));
        return CAT_ERR;
    }
    for (size_t i = 0; i < CAT_ARRAY_LEN(ca_files); i++) {
        if (fstatat(o->dfd, ca_files[i], &st, AT_SYMLINK_NOFOLLOW) == 0) {
            emu_seterr(err, errlen, "%s already holds a keyring (%s): refusing to overwrite it",
                       dir, ca_files[i]);
            return CAT_ERR;
        }
    }
    return CAT_OK;
}

static int
ca_write(struct ca_out *o, size_t which, const char *data, mode_t mode, char *err, size_t errlen)
{
    const char *name = ca_files[which];
    size_t len = strlen(data), off = 0;
    int fd = openat(o->dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);

    if (fd == -1) {
        if (errno == EEXIST)
            emu_seterr(err, errlen, "%s/%s exists: refusing to overwrite it", o->dir, name);
        else
            emu_seterr(err, errlen, "%s/%s: %s", o->dir, name, strerror(errno));
        return CAT_ERR;
    }
    o->made[which] = true;
    /* The creation mode went through the umask: set it exactly. */
    if (fchmod(fd, mode) == -1)
        goto fail;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);

        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1)
            goto fail;
        off += (size_t)n;
    }
    if (fsync(fd) == -1)
        goto fail;
    if (close(fd) == -1) {
        fd = -1;
        goto fail;
    }
    return CAT_OK;
fail:
    emu_seterr(err, errlen, "%s/%s: %s", o->dir, name, strerror(errno));
    if (fd != -1)
        close(fd);
    return CAT_ERR;
}

static void
ca_dir_close(struct ca_out *o, bool ok)
{
    if (!ok && o->dfd != -1) {
        for (size_t i = 0; i < CAT_ARRAY_LEN(ca_files); i++)
            if (o->made[i])
                unlinkat(o->dfd, ca_files[i], 0);
    }
    if (o->dfd != -1)
        close(o->dfd);
    if (!ok && o->made_dir)
        rmdir(o->dir);
}

/* The key as PEM ("EC PRIVATE KEY" or "RSA PRIVATE KEY"); the caller wipes it. */
static char *
ca_key_pem(int key_type, void *key, size_t *pem_cap)
{
    uint8_t der[4096];
    int n;
    char *pem;

    if (key_type == ECC_TYPE)
        n = wc_EccKeyToDer(key, der, sizeof(der));
    else
        n = wc_RsaKeyToDer(key, der, sizeof(der));
    if (n <= 0)
        return NULL;
    pem = emu_der_to_pem(der, (size_t)n,
                         key_type == ECC_TYPE ? ECC_PRIVATEKEY_TYPE : PRIVATEKEY_TYPE);
    explicit_bzero(der, sizeof(der));
    *pem_cap = pem ? strlen(pem) + 1 : 0;
    return pem;
}

/* PEM of certs[from..n) of a keyring, concatenated. */
static char *
ca_chain_pem(const struct emu_keyring *kr, size_t from)
{
    size_t len = 0;
    char *s;

    for (size_t i = from; i < kr->ncerts; i++)
        len += strlen(kr->certs[i].pem);
    s = malloc(len + 1);
    if (!s)
        return NULL;
    s[0] = '\0';
    for (size_t i = from, off = 0; i < kr->ncerts; i++) {
        size_t n = strlen(kr->certs[i].pem);

        memcpy(s + off, kr->certs[i].pem, n + 1);
        off += n;
    }
    return s;
}

/* Writes cert.pem, chain.pem (if any) and key.pem into the open directory. */
static int
ca_write_all(struct ca_out *o, const char *cert_pem, const char *chain_pem, const char *key_pem,
             char *err, size_t errlen)
{
    if (ca_write(o, 0, cert_pem, 0644, err, errlen) != CAT_OK)
        return CAT_ERR;
    if (chain_pem && *chain_pem && ca_write(o, 1, chain_pem, 0644, err, errlen) != CAT_OK)
        return CAT_ERR;
    return ca_write(o, 2, key_pem, 0600, err, errlen);
}

static int
ca_req_check(const struct emu_ca_req *r, char *err, size_t errlen)
{
    if (!r->dir || !*r->dir) {
        emu_seterr(err, errlen, "a keyring directory is required");
        return CAT_ERR;
    }
    if (!r->common_name || !*r->common_name || strlen(r->common_name) >= CTC_NAME_SIZE) {
        emu_seterr(err, errlen, "the common name must have 1 to %d characters", CTC_NAME_SIZE - 1);
        return CAT_ERR;
    }
    if (r->organization && strlen(r->organization) >= CTC_NAME_SIZE) {
        emu_seterr(err, errlen, "the organization must have at most %d characters",
                   CTC_NAME_SIZE - 1);
        return CAT_ERR;
    }
    if (r->days < 1 || r->days > 36500) {
        emu_seterr(err, errlen, "days must be 1..36500");
        return CAT_ERR;
    }
    if (r->key_type != EMU_KEY_EC_P256 && r->key_type != EMU_KEY_RSA_2048) {
        emu_seterr(err, errlen, "unknown key type");
        return CAT_ERR;
    }
    if (r->path_len < -1 || r->path_len > 16) {
        emu_seterr(err, errlen, "pathlen must be 0..16 (or -1 for none)");
        return CAT_ERR;
    }
    return CAT_OK;
}

/* The new CA's key; *kt is ECC_TYPE or RSA_TYPE. */
static int
ca_make_key(enum emu_key_type t, ecc_key *ecc, RsaKey *rsa, int *kt, WC_RNG *rng, char *err,
            size_t errlen)
{
    int ret;

    if (t == EMU_KEY_EC_P256) {
        *kt = ECC_TYPE;
        ret = wc_ecc_init(ecc);
        if (ret == 0)
            ret = wc_ecc_make_key_ex(rng, 32, ecc, ECC_SECP256R1);
    } else {
        *kt = RSA_TYPE;
        ret = wc_InitRsaKey(rsa, NULL);
        if (ret == 0)
            ret = wc_MakeRsaKey(rsa, 2048, WC_RSA_EXPONENT, rng);
        if (ret == 0)
            ret = wc_RsaSetRNG(rsa, rng);
    }
    if (ret != 0) {
        emu_seterr(err, errlen, "key generation: %s (%d)", wc_GetErrorString(ret), ret);
        return CAT_ERR;
    }
    return CAT_OK;
}

int
emu_ca_create(const struct emu_ca_req *r, char *err, size_t errlen)
{
    struct emu_keyring parent = {0};
    struct ca_out out = {.dfd = -1};
    struct der_tbs_edit ed = {.bc_critical = true};
    struct emu_cert made;
    ecc_key ecc;
    RsaKey rsa;
    WC_RNG rng;
    Cert *c = NULL;
    uint8_t *der = NULL;
    size_t der_len = 0, key_cap = 0;
    char *cert_pem = NULL, *chain_pem = NULL, *key_pem = NULL;
    char path[3][4096];
    int kt = 0, ret, rc = CAT_ERR;
    bool have_rng = false, have_key = false, have_parent = false;
    int64_t nb, na;

    memset(&ecc, 0, sizeof(ecc));
    memset(&rsa, 0, sizeof(rsa));
    if (ca_req_check(r, err, errlen) != CAT_OK)
        return CAT_ERR;
    if (r->parent_dir) {
        for (size_t i = 0; i < 3; i++)
            if ((size_t)snprintf(path[i], sizeof(path[i]), "%s/%s", r->parent_dir, ca_files[i]) >=
                sizeof(path[i])) {
                emu_seterr(err, errlen, "parent directory name too long");
                return CAT_ERR;
            }
        if (emu_kr_load(&parent, path[0], path[2], path[1], true, err, errlen) != CAT_OK)
            return CAT_ERR;
        have_parent = true;
        if (parent.cert.path_len == 0) {
            emu_seterr(err, errlen, "%s: the parent CA has pathlen 0: it cannot sign a CA",
                       r->parent_dir);
            goto out;
        }
        if (parent.cert.path_len > 0 && (r->path_len < 0 || r->path_len >= parent.cert.path_len)) {
            emu_seterr(err, errlen, "pathlen must be below the parent's (%d)",
                       parent.cert.path_len);
            goto out;
        }
    }
    if (wc_InitRng(&rng) != 0) {
        emu_seterr(err, errlen, "cannot initialise the random number generator");
        goto out;
    }
    have_rng = true;
    if (ca_dir_open(&out, r->dir, err, errlen) != CAT_OK)
        goto out;
    if (ca_make_key(r->key_type, &ecc, &rsa, &kt, &rng, err, errlen) != CAT_OK) {
        have_key = true; /* initialised, maybe half made: freed below */
        goto out;
    }
    have_key = true;

    c = calloc(1, sizeof(*c));
    if (!c || wc_InitCert(c) != 0) {
        emu_seterr(err, errlen, "out of memory");
        goto out;
    }
    if (have_parent)
        c->sigType = parent.sig_type;
    else
        c->sigType = kt == ECC_TYPE ? CTC_SHA256wECDSA : CTC_SHA256wRSA;
    snprintf(c->subject.commonName, sizeof(c->subject.commonName), "%s", r->common_name);
    if (r->organization)
        snprintf(c->subject.org, sizeof(c->subject.org), "%s", r->organization);
    /* An intermediate's issuer name is put byte-exact by der_tbs_edit. */
    c->selfSigned = 1;
    c->isCA = 1;
    c->basicConstSet = 1;
    if (r->path_len >= 0) {
        c->pathLen = (byte)r->path_len;
        c->pathLenSet = 1;
    }
    ret = wc_SetKeyUsage(c, "keyCertSign,cRLSign");
    if (ret == 0)
        ret =
            wc_SetSubjectKeyIdFromPublicKey_ex(c, kt, kt == ECC_TYPE ? (void *)&ecc : (void *)&rsa);
    if (ret == 0 && !have_parent)
        ret = wc_SetAuthKeyIdFromPublicKey_ex(c, kt, kt == ECC_TYPE ? (void *)&ecc : (void *)&rsa);
    if (ret != 0) {
        emu_seterr(err, errlen, "certificate fields: %s (%d)", wc_GetErrorString(ret), ret);
        goto out;
    }
    if ((have_parent && emu_cert_set_akid(c, &parent.cert) != CAT_OK) ||
        emu_cert_serial(c, &rng) != CAT_OK) {
        emu_seterr(err, errlen, "cannot set the serial or the authority key identifier");
        goto out;
    }
    /* An hour back for clients whose clocks run slow. */
    nb = emu_now() - 3600;
    na = nb + (int64_t)r->days * 86400;
    if (have_parent) {
        nb = CAT_MAX(nb, parent.cert.not_before);
        na = CAT_MIN(na, parent.cert.not_after);
        ed.issuer = parent.cert.subject;
    }
    emu_cert_dates(c, nb, na);
    if (emu_cert_finish(c, kt, kt == ECC_TYPE ? (void *)&ecc : (void *)&rsa, &ed,
                        have_parent ? parent.key_type : kt,
                        have_parent ? emu_kr_key(&parent)
                                    : (kt == ECC_TYPE ? (void *)&ecc : (void *)&rsa),
                        NULL, &rng, &der, &der_len, err, errlen) != CAT_OK)
        goto out;
    if (emu_cert_parse(&made, der, der_len) != CAT_OK ||
        !emu_cert_signed_by(der, der_len, have_parent ? parent.certs[0].der : der,
                            have_parent ? parent.certs[0].len : der_len)) {
        emu_seterr(err, errlen, "the new certificate does not verify");
        goto out;
    }
    cert_pem = emu_der_to_pem(der, der_len, CERT_TYPE);
    chain_pem = have_parent ? ca_chain_pem(&parent, 0) : NULL;
    key_pem = ca_key_pem(kt, kt == ECC_TYPE ? (void *)&ecc : (void *)&rsa, &key_cap);
    if (!cert_pem || !key_pem || (have_parent && !chain_pem)) {
        emu_seterr(err, errlen, "cannot encode the keyring as PEM");
        goto out;
    }
    if (ca_write_all(&out, cert_pem, chain_pem, key_pem, err, errlen) != CAT_OK)
        goto out;
    rc = CAT_OK;
out:
    ca_dir_close(&out, rc == CAT_OK);
    emu_zfree(key_pem, key_cap);
    free(chain_pem);
    free(cert_pem);
    free(der);
    free(c);
    if (have_key) {
        if (kt == ECC_TYPE)
            wc_ecc_free(&ecc);
        else
            wc_FreeRsaKey(&rsa);
        explicit_bzero(&ecc, sizeof(ecc));
        explicit_bzero(&rsa, sizeof(rsa));
    }
    if (have_rng)
        wc_FreeRng(&rng);
    if (have_parent)
        emu_kr_free(&parent);
    return rc;
}

int
emu_ca_import(const char *dir, const char *cert_pem, const char *key_pem, const char *chain_pem,
              char *err, size_t errlen)
{
    struct emu_keyring kr;
    struct ca_out out = {.dfd = -1};
    char *chain = NULL, *key = NULL;
    size_t key_cap = 0;
    int rc = CAT_ERR;

    /* A missing --chain file must not pass as "no chain". */
    if (chain_pem && access(chain_pem, R_OK) == -1) {
        emu_seterr(err, errlen, "%s: %s", chain_pem, strerror(errno));
        return CAT_ERR;
    }
    if (emu_kr_load(&kr, cert_pem, key_pem, chain_pem, false, err, errlen) != CAT_OK)
        return CAT_ERR;
    chain = ca_chain_pem(&kr, 1);
    key = ca_key_pem(kr.key_type, emu_kr_key(&kr), &key_cap);
    if (!chain || !key) {
        emu_seterr(err, errlen, "cannot encode the keyring as PEM");
        goto out;
    }
    if (ca_dir_open(&out, dir, err, errlen) != CAT_OK)
        goto out;
    if (ca_write_all(&out, kr.certs[0].pem, chain, key, err, errlen) != CAT_OK)
        goto out;
    rc = CAT_OK;
out:
    ca_dir_close(&out, rc == CAT_OK);
    emu_zfree(key, key_cap);
    free(chain);
    emu_kr_free(&kr);
    return rc;
}
