/*
 * Keyring files: bounded whole-file reads (a private key file must not be
 * accessible by group or others), splitting PEM text into certificates, and
 * DER to PEM. Buffers that held key material are wiped before they are freed.
 */
#include "emulation/emu_int.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void
emu_zfree(void *p, size_t len)
{
    if (!p)
        return;
    explicit_bzero(p, len);
    free(p);
}

void
emu_blob_free(struct emu_blob *b)
{
    free(b->der);
    free(b->pem);
    b->der = NULL;
    b->pem = NULL;
    b->len = 0;
}

int
emu_file_read(const char *path, bool private_key, char **out, size_t *len, char *err, size_t errlen)
{
    struct stat st;
    char *buf = NULL;
    size_t got = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd == -1) {
        if (errno == ENOENT)
            return CAT_DECLINED;
        emu_seterr(err, errlen, "%s: %s", path, strerror(errno));
        return CAT_ERR;
    }
    if (fstat(fd, &st) == -1) {
        emu_seterr(err, errlen, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        emu_seterr(err, errlen, "%s: not a regular file", path);
        goto fail;
    }
    if (private_key && (st.st_mode & (S_IRWXG | S_IRWXO))) {
        emu_seterr(err, errlen,
                   "%s: private key is accessible by group or others (mode %04o); "
                   "run: chmod 600 %s",
                   path, (unsigned)(st.st_mode & 07777), path);
        goto fail;
    }
    if (st.st_size > EMU_FILE_MAX) {
        emu_seterr(err, errlen, "%s: larger than %d bytes", path, EMU_FILE_MAX);
        goto fail;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        emu_seterr(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1) {
            emu_seterr(err, errlen, "%s: %s", path, strerror(errno));
            goto fail;
        }
        if (n == 0)
            break; /* truncated while we read: take what is there */
        got += (size_t)n;
    }
    buf[got] = '\0';
    close(fd);
    *out = buf;
    *len = got;
    return CAT_OK;
fail:
    emu_zfree(buf, buf ? (size_t)st.st_size + 1 : 0);
    close(fd);
    return CAT_ERR;
}

int
emu_pem_certs(const char *text, size_t len, struct emu_blob *out, size_t max, size_t *n,
              const char *what, char *err, size_t errlen)
{
    static const char begin[] = "-----BEGIN CERTIFICATE-----";
    static const char end[] = "-----END CERTIFICATE-----";
    const char *p = text, *stop = text + len;

    *n = 0;
    /* A single DER certificate is accepted too. */
    if (len > 0 && (uint8_t)text[0] == DER_SEQUENCE) {
        out[0].der = malloc(len);
        if (!out[0].der) {
            emu_seterr(err, errlen, "%s: out of memory", what);
            return CAT_ERR;
        }
        memcpy(out[0].der, text, len);
        out[0].len = len;
        *n = 1;
        return CAT_OK;
    }
    for (;;) {
        const char *b = memmem(p, (size_t)(stop - p), begin, sizeof(begin) - 1), *e;
        int ret;

        if (!b)
            break;
        e = memmem(b, (size_t)(stop - b), end, sizeof(end) - 1);
        if (!e) {
            emu_seterr(err, errlen, "%s: certificate %zu has no END line", what, *n + 1);
            goto fail;
        }
        e += sizeof(end) - 1;
        if (*n == max) {
            emu_seterr(err, errlen, "%s: more than %zu certificates", what, max);
            goto fail;
        }
        out[*n].der = malloc((size_t)(e - b));
        if (!out[*n].der) {
            emu_seterr(err, errlen, "%s: out of memory", what);
            goto fail;
        }
        ret = wc_CertPemToDer((const unsigned char *)b, (int)(e - b), out[*n].der, (int)(e - b),
                              CERT_TYPE);
        if (ret <= 0) {
            free(out[*n].der);
            out[*n].der = NULL;
            emu_seterr(err, errlen, "%s: certificate %zu is not valid PEM", what, *n + 1);
            goto fail;
        }
        out[*n].len = (size_t)ret;
        (*n)++;
        p = e;
    }
    return CAT_OK;
fail:
    for (size_t i = 0; i < *n; i++)
        emu_blob_free(&out[i]);
    *n = 0;
    return CAT_ERR;
}

char *
emu_der_to_pem(const uint8_t *der, size_t len, int type)
{
    /* base64 grows 4/3, plus a newline per 64 characters and the armour. */
    size_t cap = len * 4 / 3 + len / 48 + 128;
    char *pem = malloc(cap + 1);
    int n;

    if (!pem)
        return NULL;
    n = wc_DerToPem(der, (word32)len, (byte *)pem, (word32)cap, type);
    if (n <= 0 || (size_t)n > cap) {
        emu_zfree(pem, cap + 1);
        return NULL;
    }
    pem[n] = '\0';
    return pem;
}
