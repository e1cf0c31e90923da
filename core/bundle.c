/*
 * The shared bundle: strict parser and verifier, builder and signer, key files.
 * A bundle arrives by push, pull or from disk; nothing in it is used before
 * bdl_parse_verify() has checked the whole of it, on its own copy of the bytes
 * (so a caller's buffer changing underneath cannot split check from use).
 * The manifest grammar is fixed by position (format line, version, created,
 * files, signature) and every deviation is refused with the line it is on.
 */
#include "core/bundle.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/ed25519.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/sha256.h>

#define BDL_MAGIC "catena-bundle"
#define BDL_PUB_TAG "catena-ed25519-public "
#define BDL_PRIV_TAG "catena-ed25519-private "
#define BDL_SIG_LEN 64
#define BDL_KEYFILE_MAX 256

struct bdl {
    uint64_t version;
    time_t created;
    char created_str[21];
    char digest[BDL_DIGEST_LEN + 1];
    char key_id[2 * BDL_KEY_ID_LEN + 1];
    uint8_t *raw; /* owned: the whole bundle as verified */
    size_t raw_len;
    size_t n;
    struct bdl_entry *files; /* owned; data points into raw, name into names */
    char *names;             /* owned: every name, NUL-terminated, back to back */
};

/* A manifest "file" line as parsed, before the bundle object exists. */
struct bdl_mfile {
    const char *name; /* into the manifest, not NUL-terminated */
    size_t name_len;
    enum bdl_kind kind;
    size_t size;
    uint8_t sha[WC_SHA256_DIGEST_SIZE];
    unsigned line;
};

static void bdl_err(char *err, size_t errlen, const char *fmt, ...) CAT_PRINTF(3, 4);

static void
bdl_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Error messages quote input: printable ASCII kept, the rest escaped, length capped. */
static const char *
bdl_quote(char *out, size_t cap, const char *s, size_t n)
{
    size_t o = 0;

    for (size_t i = 0; i < n && o + 8 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (i >= 48) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
            out[o++] = (char)ch;
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", ch);
    }
    out[o] = '\0';
    return out;
}

static void
bdl_hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Lowercase hex only: the canonical form is the only accepted form. */
static bool
bdl_unhex(const char *s, size_t hex_len, uint8_t *out)
{
    for (size_t i = 0; i < hex_len; i++) {
        char c = s[i];
        unsigned v;
        if (c >= '0' && c <= '9')
            v = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v = (unsigned)(c - 'a' + 10);
        else
            return false;
        if (i % 2 == 0)
            out[i / 2] = (uint8_t)(v << 4);
        else
            out[i / 2] |= (uint8_t)v;
    }
    return true;
}

static bool
bdl_eq(const char *s, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(s, lit, n) == 0;
}

/* Decimal, no sign, no leading zero (except "0" itself), no overflow. */
static bool
bdl_dec(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (n == 0 || n > 20 || (n > 1 && s[0] == '0'))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

int
bdl_name_check(const char *name, size_t len, enum bdl_kind *kind, char *err, size_t errlen)
{
    size_t depth = 1, comp = 0;

    if (len == 0) {
        bdl_err(err, errlen, "empty name");
        return CAT_ERR;
    }
    if (len > BDL_MAX_NAME) {
        bdl_err(err, errlen, "longer than %d bytes", BDL_MAX_NAME);
        return CAT_ERR;
    }
    if (name[0] == '/') {
        bdl_err(err, errlen, "must be relative (no leading '/')");
        return CAT_ERR;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                  c == '-' || c == '/';
        if (!ok) {
            if (c > 0x20 && c < 0x7f)
                bdl_err(err, errlen, "character '%c' not allowed (a-z 0-9 . _ - /)", c);
            else
                bdl_err(err, errlen, "byte 0x%02x not allowed (a-z 0-9 . _ - /)", c);
            return CAT_ERR;
        }
    }
    /* Harmless inside a component, but nobody needs it and no consumer must think twice. */
    if (memmem(name, len, "..", 2) != NULL) {
        bdl_err(err, errlen, "contains \"..\"");
        return CAT_ERR;
    }
    for (size_t i = 0; i <= len; i++) {
        if (i < len && name[i] != '/')
            continue;
        const char *c = name + comp;
        size_t n = i - comp;
        if (n == 0) {
            bdl_err(err, errlen, "empty path component");
            return CAT_ERR;
        }
        if (c[0] == '.') {
            bdl_err(err, errlen, "component starts with '.'");
            return CAT_ERR;
        }
        if (i < len)
            depth++;
        comp = i + 1;
    }
    if (depth > 2) {
        bdl_err(err, errlen, "too deep (at most one directory)");
        return CAT_ERR;
    }
    if (bdl_eq(name, len, "policy.cpl")) {
        *kind = BDL_KIND_POLICY;
        return CAT_OK;
    }
    if (bdl_eq(name, len, "categories.txt")) {
        *kind = BDL_KIND_CATEGORIES;
        return CAT_OK;
    }
    /* A non-empty stem before the suffix, which the '.'-component rule already ensures. */
    if (len > 8 && memcmp(name, "cas/", 4) == 0 && memcmp(name + len - 4, ".pem", 4) == 0) {
        *kind = BDL_KIND_CA;
        return CAT_OK;
    }
    if (len > 11 && memcmp(name, "pages/", 6) == 0 && memcmp(name + len - 5, ".html", 5) == 0) {
        *kind = BDL_KIND_PAGE;
        return CAT_OK;
    }
    bdl_err(err, errlen,
            "not a bundle file (policy.cpl, categories.txt, cas/NAME.pem, pages/NAME.html)");
    return CAT_ERR;
}

/* "YYYY-MM-DDTHH:MM:SSZ", a real UTC date and time. */
static bool
bdl_parse_time(const char *s, size_t n, time_t *out)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    struct tm tm = {0};
    int v[6] = {0}, k = 0;

    if (n != sizeof(shape) - 1)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (shape[i] == 'd') {
            if (s[i] < '0' || s[i] > '9')
                return false;
            v[k] = v[k] * 10 + (s[i] - '0');
        } else {
            if (s[i] != shape[i])
                return false;
            k++;
        }
    }
    int year = v[0], mon = v[1], day = v[2];
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (year < 1970 || mon < 1 || mon > 12 || day < 1 ||
        day > mdays[mon - 1] + (mon == 2 && leap) || v[3] > 23 || v[4] > 59 || v[5] > 59)
        return false;
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    tm.tm_hour = v[3];
    tm.tm_min = v[4];
    tm.tm_sec = v[5];
    *out = timegm(&tm);
    return true;
}

/* One manifest line: printable ASCII up to LF, at most BDL_MAX_LINE bytes with it. */
static int
bdl_line(const uint8_t *data, size_t len, size_t *off, unsigned lineno, const char **line,
         size_t *line_len, char *err, size_t errlen)
{
    size_t avail = len - *off, cap = CAT_MIN(avail, (size_t)BDL_MAX_LINE);
    const uint8_t *p = data + *off;

    for (size_t i = 0; i < cap; i++) {
        if (p[i] == '\n') {
            *line = (const char *)p;
            *line_len = i;
            *off += i + 1;
            return CAT_OK;
        }
        if (p[i] < 0x20 || p[i] > 0x7e) {
            bdl_err(err, errlen,
                    "manifest line %u: byte 0x%02x at column %zu (only printable ASCII and LF)",
                    lineno, p[i], i + 1);
            return CAT_ERR;
        }
    }
    if (avail < BDL_MAX_LINE)
        bdl_err(err, errlen, "manifest line %u: truncated (no end of line)", lineno);
    else
        bdl_err(err, errlen, "manifest line %u: longer than %d bytes", lineno, BDL_MAX_LINE - 1);
    return CAT_ERR;
}

/*
 * Splits a line on single spaces into at most max fields. Returns the number
 * of fields (max + 1 when there are more), or -1 on an empty field (two spaces,
 * or a space at either end).
 */
static int
bdl_fields(const char *line, size_t len, const char **f, size_t *flen, int max)
{
    int n = 0;
    size_t start = 0;

    for (size_t i = 0; i <= len; i++) {
        if (i < len && line[i] != ' ')
            continue;
        if (i == start)
            return -1;
        if (n == max)
            return max + 1;
        f[n] = line + start;
        flen[n] = i - start;
        n++;
        start = i + 1;
    }
    return n;
}

static int
bdl_parse_file_line(const char **f, const size_t *fl, int nf, unsigned lineno, struct bdl_mfile *m,
                    char *err, size_t errlen)
{
    char why[128], q[256];
    uint64_t size;

    if (nf != 4) {
        bdl_err(err, errlen, "manifest line %u: expected \"file NAME SIZE SHA256\"", lineno);
        return CAT_ERR;
    }
    if (bdl_name_check(f[1], fl[1], &m->kind, why, sizeof(why)) != CAT_OK) {
        bdl_err(err, errlen, "manifest line %u: file name \"%s\": %s", lineno,
                bdl_quote(q, sizeof(q), f[1], fl[1]), why);
        return CAT_ERR;
    }
    if (!bdl_dec(f[2], fl[2], BDL_MAX_SIZE, &size)) {
        bdl_err(err, errlen, "manifest line %u: file size \"%s\" is not a decimal number up to %u",
                lineno, bdl_quote(q, sizeof(q), f[2], fl[2]), BDL_MAX_SIZE);
        return CAT_ERR;
    }
    if (fl[3] != 2 * WC_SHA256_DIGEST_SIZE || !bdl_unhex(f[3], fl[3], m->sha)) {
        bdl_err(err, errlen, "manifest line %u: sha256 must be 64 lowercase hex digits", lineno);
        return CAT_ERR;
    }
    m->name = f[1];
    m->name_len = fl[1];
    m->size = (size_t)size;
    m->line = lineno;
    return CAT_OK;
}

/* Byte order of names; a prefix sorts first, as strcmp() does. */
static int
bdl_name_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, CAT_MIN(an, bn));

    if (c != 0)
        return c;
    return an < bn ? -1 : an > bn;
}

/* Everything the manifest says, checked for syntax; views into the bundle bytes. */
struct bdl_manifest {
    uint64_t version;
    time_t created;
    const char *created_str;
    struct bdl_mfile *files; /* owned */
    size_t n;
    uint8_t key_id[BDL_KEY_ID_LEN];
    uint8_t sig[BDL_SIG_LEN];
    size_t signed_len;   /* bytes covered by the signature */
    size_t manifest_len; /* with the signature line */
};

static int
bdl_parse_manifest(const uint8_t *data, size_t len, struct bdl_manifest *m, char *err,
                   size_t errlen)
{
    const char *line, *f[5];
    size_t ll, fl[5], off = 0, cap = 0;
    unsigned lineno = 1;
    char q[256];
    int nf;
    bool have_policy = false;

    memset(m, 0, sizeof(*m));
    if (bdl_line(data, len, &off, lineno, &line, &ll, err, errlen) != CAT_OK)
        return CAT_ERR;
    nf = bdl_fields(line, ll, f, fl, 2);
    if (nf != 2 || !bdl_eq(f[0], fl[0], BDL_MAGIC)) {
        bdl_err(err, errlen, "manifest line 1: not a catena bundle (expected \"%s %d\")", BDL_MAGIC,
                BDL_FORMAT);
        return CAT_ERR;
    }
    {
        uint64_t fmt;
        if (!bdl_dec(f[1], fl[1], UINT32_MAX, &fmt)) {
            bdl_err(err, errlen, "manifest line 1: bad format number \"%s\"",
                    bdl_quote(q, sizeof(q), f[1], fl[1]));
            return CAT_ERR;
        }
        if (fmt != BDL_FORMAT) {
            bdl_err(err, errlen,
                    "manifest line 1: bundle format %llu is not supported (this catena reads "
                    "format %d)",
                    (unsigned long long)fmt, BDL_FORMAT);
            return CAT_ERR;
        }
    }

    lineno++;
    if (bdl_line(data, len, &off, lineno, &line, &ll, err, errlen) != CAT_OK)
        return CAT_ERR;
    nf = bdl_fields(line, ll, f, fl, 2);
    if (nf != 2 || !bdl_eq(f[0], fl[0], "version")) {
        bdl_err(err, errlen, "manifest line 2: expected \"version N\"");
        return CAT_ERR;
    }
    if (!bdl_dec(f[1], fl[1], UINT64_MAX, &m->version) || m->version == 0) {
        bdl_err(err, errlen, "manifest line 2: version \"%s\" is not a positive integer",
                bdl_quote(q, sizeof(q), f[1], fl[1]));
        return CAT_ERR;
    }

    lineno++;
    if (bdl_line(data, len, &off, lineno, &line, &ll, err, errlen) != CAT_OK)
        return CAT_ERR;
    nf = bdl_fields(line, ll, f, fl, 2);
    if (nf != 2 || !bdl_eq(f[0], fl[0], "created")) {
        bdl_err(err, errlen, "manifest line 3: expected \"created YYYY-MM-DDTHH:MM:SSZ\"");
        return CAT_ERR;
    }
    if (!bdl_parse_time(f[1], fl[1], &m->created)) {
        bdl_err(err, errlen, "manifest line 3: \"%s\" is not a UTC time YYYY-MM-DDTHH:MM:SSZ",
                bdl_quote(q, sizeof(q), f[1], fl[1]));
        return CAT_ERR;
    }
    m->created_str = f[1];

    for (;;) {
        size_t start = off;

        lineno++;
        if (off == len) {
            bdl_err(err, errlen, "manifest line %u: truncated (no signature line)", lineno);
            goto fail;
        }
        if (bdl_line(data, len, &off, lineno, &line, &ll, err, errlen) != CAT_OK)
            goto fail;
        nf = bdl_fields(line, ll, f, fl, 4);
        if (nf < 0) {
            bdl_err(err, errlen, "manifest line %u: fields must be separated by exactly one space",
                    lineno);
            goto fail;
        }
        if (bdl_eq(f[0], fl[0], "file")) {
            struct bdl_mfile mf;
            if (m->n == BDL_MAX_FILES) {
                bdl_err(err, errlen, "manifest line %u: more than %d files", lineno, BDL_MAX_FILES);
                goto fail;
            }
            if (bdl_parse_file_line(f, fl, nf, lineno, &mf, err, errlen) != CAT_OK)
                goto fail;
            if (m->n > 0) {
                const struct bdl_mfile *prev = &m->files[m->n - 1];
                int c = bdl_name_cmp(prev->name, prev->name_len, mf.name, mf.name_len);
                if (c == 0) {
                    bdl_err(err, errlen, "manifest line %u: duplicate file \"%s\"", lineno,
                            bdl_quote(q, sizeof(q), mf.name, mf.name_len));
                    goto fail;
                }
                if (c > 0) {
                    bdl_err(err, errlen,
                            "manifest line %u: file \"%s\" out of order (names must be in "
                            "ascending byte order)",
                            lineno, bdl_quote(q, sizeof(q), mf.name, mf.name_len));
                    goto fail;
                }
            }
            if (m->n == cap) {
                size_t ncap = cap ? 2 * cap : 16;
                struct bdl_mfile *nf2 = realloc(m->files, ncap * sizeof(*nf2));
                if (nf2 == NULL) {
                    bdl_err(err, errlen, "out of memory");
                    goto fail;
                }
                m->files = nf2;
                cap = ncap;
            }
            have_policy |= mf.kind == BDL_KIND_POLICY;
            m->files[m->n++] = mf;
            continue;
        }
        if (bdl_eq(f[0], fl[0], "signature")) {
            if (nf != 4) {
                bdl_err(err, errlen,
                        "manifest line %u: expected \"signature ed25519 KEYID SIGNATURE\"", lineno);
                goto fail;
            }
            if (!bdl_eq(f[1], fl[1], "ed25519")) {
                bdl_err(err, errlen,
                        "manifest line %u: signature algorithm \"%s\" is not supported "
                        "(expected ed25519)",
                        lineno, bdl_quote(q, sizeof(q), f[1], fl[1]));
                goto fail;
            }
            if (fl[2] != 2 * BDL_KEY_ID_LEN || !bdl_unhex(f[2], fl[2], m->key_id)) {
                bdl_err(err, errlen, "manifest line %u: key id must be %d lowercase hex digits",
                        lineno, 2 * BDL_KEY_ID_LEN);
                goto fail;
            }
            if (fl[3] != 2 * BDL_SIG_LEN || !bdl_unhex(f[3], fl[3], m->sig)) {
                bdl_err(err, errlen, "manifest line %u: signature must be %d lowercase hex digits",
                        lineno, 2 * BDL_SIG_LEN);
                goto fail;
            }
            m->signed_len = start;
            m->manifest_len = off;
            break;
        }
        bdl_err(err, errlen,
                "manifest line %u: unknown keyword \"%s\" (expected \"file\" or \"signature\")",
                lineno, bdl_quote(q, sizeof(q), f[0], fl[0]));
        goto fail;
    }
    if (!have_policy) {
        bdl_err(err, errlen, "manifest: no policy.cpl");
        goto fail;
    }

    /* The file area must hold exactly the files listed: no less, no more. */
    size_t pos = m->manifest_len;
    for (size_t i = 0; i < m->n; i++) {
        if (m->files[i].size > len - pos) {
            bdl_err(err, errlen,
                    "manifest line %u: file %s (%zu bytes) runs past the end of the bundle "
                    "(truncated?)",
                    m->files[i].line,
                    bdl_quote(q, sizeof(q), m->files[i].name, m->files[i].name_len),
                    m->files[i].size);
            goto fail;
        }
        pos += m->files[i].size;
    }
    if (pos != len) {
        bdl_err(err, errlen, "%zu bytes of trailing data after the last file", len - pos);
        goto fail;
    }
    return CAT_OK;

fail:
    free(m->files);
    m->files = NULL;
    return CAT_ERR;
}

static void
bdl_key_id_of(const uint8_t pub[32], uint8_t id[BDL_KEY_ID_LEN])
{
    uint8_t h[WC_SHA256_DIGEST_SIZE];

    CAT_ASSERT(wc_Sha256Hash(pub, 32, h) == 0);
    memcpy(id, h, BDL_KEY_ID_LEN);
}

static int
bdl_verify_sig(const struct bdl_pubkey *k, const uint8_t *msg, size_t len,
               const uint8_t sig[BDL_SIG_LEN])
{
    ed25519_key key;
    int res = 0, rc;

    if (wc_ed25519_init(&key) != 0)
        return CAT_ERR;
    rc = wc_ed25519_import_public(k->key, 32, &key);
    if (rc == 0)
        rc = wc_ed25519_verify_msg(sig, BDL_SIG_LEN, msg, (word32)len, &res, &key);
    wc_ed25519_free(&key);
    return rc == 0 && res == 1 ? CAT_OK : CAT_ERR;
}

struct bdl *
bdl_parse_verify(const uint8_t *data, size_t len, const struct bdl_pubkey *keys, size_t n_keys,
                 uint64_t min_version, char *err, size_t errlen)
{
    struct bdl_manifest m = {0};
    struct bdl *b = NULL;
    const struct bdl_pubkey *key = NULL;
    uint8_t *raw = NULL;
    char q[256], idhex[2 * BDL_KEY_ID_LEN + 1];

    if (len > BDL_MAX_SIZE) {
        bdl_err(err, errlen, "bundle too large (%zu bytes, at most %u)", len, BDL_MAX_SIZE);
        return NULL;
    }
    if (len == 0 || data == NULL) {
        bdl_err(err, errlen, "empty bundle");
        return NULL;
    }
    raw = malloc(len);
    if (raw == NULL) {
        bdl_err(err, errlen, "out of memory (%zu bytes)", len);
        return NULL;
    }
    memcpy(raw, data, len);
    if (bdl_parse_manifest(raw, len, &m, err, errlen) != CAT_OK)
        goto fail;

    bdl_hex(m.key_id, BDL_KEY_ID_LEN, idhex);
    for (size_t i = 0; i < n_keys; i++)
        if (memcmp(keys[i].id, m.key_id, BDL_KEY_ID_LEN) == 0)
            key = &keys[i];
    if (key == NULL) {
        bdl_err(err, errlen, "signature key %s is not a trusted key", idhex);
        goto fail;
    }
    if (bdl_verify_sig(key, raw, m.signed_len, m.sig) != CAT_OK) {
        bdl_err(err, errlen, "signature does not verify with key %s", idhex);
        goto fail;
    }
    /* Only a signed version can be trusted for the rollback check. */
    if (m.version < min_version) {
        bdl_err(err, errlen, "version %llu is older than the running %llu",
                (unsigned long long)m.version, (unsigned long long)min_version);
        goto fail;
    }
    {
        size_t pos = m.manifest_len;
        for (size_t i = 0; i < m.n; i++) {
            uint8_t h[WC_SHA256_DIGEST_SIZE];
            if (wc_Sha256Hash(raw + pos, (word32)m.files[i].size, h) != 0 ||
                memcmp(h, m.files[i].sha, sizeof(h)) != 0) {
                bdl_err(err, errlen, "file %s: sha256 mismatch",
                        bdl_quote(q, sizeof(q), m.files[i].name, m.files[i].name_len));
                goto fail;
            }
            pos += m.files[i].size;
        }
    }

    b = calloc(1, sizeof(*b));
    if (b == NULL)
        goto oom;
    b->files = calloc(m.n, sizeof(*b->files));
    size_t names_len = 0;
    for (size_t i = 0; i < m.n; i++)
        names_len += m.files[i].name_len + 1;
    b->names = malloc(names_len);
    if (b->files == NULL || b->names == NULL)
        goto oom;
    b->version = m.version;
    b->created = m.created;
    memcpy(b->created_str, m.created_str, 20);
    b->created_str[20] = '\0';
    memcpy(b->key_id, idhex, sizeof(idhex));
    {
        uint8_t h[WC_SHA256_DIGEST_SIZE];
        CAT_ASSERT(wc_Sha256Hash(raw, (word32)m.manifest_len, h) == 0);
        memcpy(b->digest, "sha256:", 7);
        bdl_hex(h, sizeof(h), b->digest + 7);
    }
    {
        size_t pos = m.manifest_len, npos = 0;
        for (size_t i = 0; i < m.n; i++) {
            struct bdl_entry *e = &b->files[i];
            memcpy(b->names + npos, m.files[i].name, m.files[i].name_len);
            b->names[npos + m.files[i].name_len] = '\0';
            e->name = b->names + npos;
            npos += m.files[i].name_len + 1;
            e->kind = m.files[i].kind;
            e->data = raw + pos;
            e->len = m.files[i].size;
            pos += m.files[i].size;
        }
    }
    b->n = m.n;
    b->raw = raw;
    b->raw_len = len;
    free(m.files);
    return b;

oom:
    bdl_err(err, errlen, "out of memory");
fail:
    bdl_free(b);
    free(raw);
    free(m.files);
    return NULL;
}

void
bdl_free(struct bdl *b)
{
    if (b == NULL)
        return;
    free(b->files);
    free(b->names);
    free(b->raw);
    free(b);
}

uint64_t
bdl_version(const struct bdl *b)
{
    return b->version;
}

const char *
bdl_digest(const struct bdl *b)
{
    return b->digest;
}

time_t
bdl_created(const struct bdl *b)
{
    return b->created;
}

const char *
bdl_created_str(const struct bdl *b)
{
    return b->created_str;
}

const char *
bdl_key_id(const struct bdl *b)
{
    return b->key_id;
}

const uint8_t *
bdl_raw(const struct bdl *b, size_t *len)
{
    *len = b->raw_len;
    return b->raw;
}

const uint8_t *
bdl_file(const struct bdl *b, const char *name, size_t *len)
{
    size_t lo = 0, hi = b->n;

    /* The manifest order is the byte order of names, so a binary search works. */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(b->files[mid].name, name);
        if (c == 0) {
            *len = b->files[mid].len;
            return b->files[mid].data;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *len = 0;
    return NULL;
}

size_t
bdl_count(const struct bdl *b)
{
    return b->n;
}

const struct bdl_entry *
bdl_entry_at(const struct bdl *b, size_t i)
{
    return i < b->n ? &b->files[i] : NULL;
}

const struct bdl_entry *
bdl_next(const struct bdl *b, enum bdl_kind kind, size_t *pos)
{
    while (*pos < b->n) {
        const struct bdl_entry *e = &b->files[(*pos)++];
        if (e->kind == kind)
            return e;
    }
    return NULL;
}

/* --- keys -------------------------------------------------------------------------------- */

/* Reads a small key file; refuses anything but a regular file of sane size. */
static int
bdl_read_keyfile(const char *path, bool private, char *buf, size_t cap, size_t *len, char *err,
                 size_t errlen)
{
    struct stat st;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd == -1) {
        bdl_err(err, errlen, "%s: %s", path, strerror(errno));
        return CAT_ERR;
    }
    if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
        bdl_err(err, errlen, "%s: not a regular file", path);
        goto fail;
    }
    if (private && (st.st_mode & 077) != 0) {
        bdl_err(err, errlen,
                "%s: private key is accessible by group or others (mode %04o); chmod 600 it", path,
                (unsigned)(st.st_mode & 07777));
        goto fail;
    }
    n = read(fd, buf, cap);
    if (n == -1) {
        bdl_err(err, errlen, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if ((size_t)n == cap) {
        bdl_err(err, errlen, "%s: too large for a key file", path);
        goto fail;
    }
    close(fd);
    *len = (size_t)n;
    return CAT_OK;

fail:
    close(fd);
    return CAT_ERR;
}

/* "<tag><64 hex>" with one optional LF. */
static bool
bdl_key_text(const char *text, size_t len, const char *tag, uint8_t out[32])
{
    size_t tl = strlen(tag);

    if (len > 0 && text[len - 1] == '\n')
        len--;
    return len == tl + 64 && memcmp(text, tag, tl) == 0 && bdl_unhex(text + tl, 64, out);
}

static void
bdl_pubkey_set(struct bdl_pubkey *k, const uint8_t pub[32])
{
    memcpy(k->key, pub, 32);
    bdl_key_id_of(pub, k->id);
    bdl_hex(k->id, BDL_KEY_ID_LEN, k->id_hex);
}

int
bdl_pubkey_parse(const char *text, size_t len, struct bdl_pubkey *out, char *err, size_t errlen)
{
    uint8_t pub[32];
    ed25519_key key;
    int rc;

    if (!bdl_key_text(text, len, BDL_PUB_TAG, pub)) {
        bdl_err(err, errlen, "expected \"%s<64 lowercase hex digits>\"", BDL_PUB_TAG);
        return CAT_ERR;
    }
    /* Refuse a point that is not on the curve now rather than at the first verify. */
    if (wc_ed25519_init(&key) != 0) {
        bdl_err(err, errlen, "ed25519 init failed");
        return CAT_ERR;
    }
    rc = wc_ed25519_import_public(pub, 32, &key);
    wc_ed25519_free(&key);
    if (rc != 0) {
        bdl_err(err, errlen, "not a valid Ed25519 public key");
        return CAT_ERR;
    }
    bdl_pubkey_set(out, pub);
    return CAT_OK;
}

int
bdl_pubkey_load(const char *path, struct bdl_pubkey *out, char *err, size_t errlen)
{
    char buf[BDL_KEYFILE_MAX], why[160];
    size_t len;

    if (bdl_read_keyfile(path, false, buf, sizeof(buf), &len, err, errlen) != CAT_OK)
        return CAT_ERR;
    if (bdl_pubkey_parse(buf, len, out, why, sizeof(why)) != CAT_OK) {
        bdl_err(err, errlen, "%s: %s", path, why);
        return CAT_ERR;
    }
    return CAT_OK;
}

int
bdl_privkey_from_seed(const uint8_t seed[32], struct bdl_privkey *out)
{
    ed25519_key key;
    uint8_t pub[32];
    int rc;

    if (wc_ed25519_init(&key) != 0)
        return CAT_ERR;
    rc = wc_ed25519_import_private_only(seed, 32, &key);
    if (rc == 0)
        rc = wc_ed25519_make_public(&key, pub, sizeof(pub));
    wc_ed25519_free(&key);
    if (rc != 0)
        return CAT_ERR;
    memcpy(out->seed, seed, 32);
    bdl_pubkey_set(&out->pub, pub);
    return CAT_OK;
}

void
bdl_privkey_wipe(struct bdl_privkey *k)
{
    explicit_bzero(k, sizeof(*k));
}

int
bdl_privkey_load(const char *path, struct bdl_privkey *out, char *err, size_t errlen)
{
    char buf[BDL_KEYFILE_MAX];
    uint8_t seed[32];
    size_t len;
    int rc = CAT_ERR;

    if (bdl_read_keyfile(path, true, buf, sizeof(buf), &len, err, errlen) != CAT_OK)
        return CAT_ERR;
    if (!bdl_key_text(buf, len, BDL_PRIV_TAG, seed))
        bdl_err(err, errlen, "%s: expected \"%s<64 lowercase hex digits>\"", path, BDL_PRIV_TAG);
    else if (bdl_privkey_from_seed(seed, out) != CAT_OK)
        bdl_err(err, errlen, "%s: not a usable Ed25519 private key", path);
    else
        rc = CAT_OK;
    explicit_bzero(buf, sizeof(buf));
    explicit_bzero(seed, sizeof(seed));
    return rc;
}

static int
bdl_write_new(const char *path, mode_t mode, const char *text, char *err, size_t errlen)
{
    size_t len = strlen(text), done = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);

    if (fd == -1) {
        bdl_err(err, errlen, "%s: %s", path, strerror(errno));
        return CAT_ERR;
    }
    /* The umask may only narrow the mode; make it exact. */
    if (fchmod(fd, mode) == -1)
        goto fail;
    while (done < len) {
        ssize_t n = write(fd, text + done, len - done);
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0)
            goto fail;
        done += (size_t)n;
    }
    if (fsync(fd) == -1 || close(fd) == -1) {
        fd = -1;
        goto fail;
    }
    return CAT_OK;

fail:
    bdl_err(err, errlen, "%s: %s", path, strerror(errno));
    if (fd != -1)
        close(fd);
    unlink(path);
    return CAT_ERR;
}

int
bdl_keygen(const char *priv_path, const char *pub_path, char *err, size_t errlen)
{
    WC_RNG rng;
    ed25519_key key;
    uint8_t seed[32], pub[32];
    word32 sl = sizeof(seed), pl = sizeof(pub);
    char text[128];
    int rc = CAT_ERR;

    if (wc_InitRng(&rng) != 0) {
        bdl_err(err, errlen, "random generator init failed");
        return CAT_ERR;
    }
    if (wc_ed25519_init(&key) != 0) {
        wc_FreeRng(&rng);
        bdl_err(err, errlen, "ed25519 init failed");
        return CAT_ERR;
    }
    if (wc_ed25519_make_key(&rng, ED25519_KEY_SIZE, &key) != 0 ||
        wc_ed25519_export_private_only(&key, seed, &sl) != 0 ||
        wc_ed25519_export_public(&key, pub, &pl) != 0 || sl != 32 || pl != 32) {
        bdl_err(err, errlen, "ed25519 key generation failed");
        goto out;
    }
    memcpy(text, BDL_PRIV_TAG, strlen(BDL_PRIV_TAG));
    bdl_hex(seed, 32, text + strlen(BDL_PRIV_TAG));
    strcat(text, "\n");
    if (bdl_write_new(priv_path, 0600, text, err, errlen) != CAT_OK)
        goto out;
    memcpy(text, BDL_PUB_TAG, strlen(BDL_PUB_TAG));
    bdl_hex(pub, 32, text + strlen(BDL_PUB_TAG));
    strcat(text, "\n");
    if (bdl_write_new(pub_path, 0644, text, err, errlen) != CAT_OK) {
        unlink(priv_path);
        goto out;
    }
    rc = CAT_OK;
out:
    wc_ed25519_free(&key);
    wc_FreeRng(&rng);
    explicit_bzero(seed, sizeof(seed));
    explicit_bzero(text, sizeof(text));
    return rc;
}

/* --- building ---------------------------------------------------------------------------- */

static int
bdl_src_cmp(const void *a, const void *b)
{
    const struct bdl_src *x = *(const struct bdl_src *const *)a;
    const struct bdl_src *y = *(const struct bdl_src *const *)b;

    return strcmp(x->name, y->name);
}

int
bdl_build_mem(const struct bdl_src *files, size_t n_files, uint64_t version, time_t created,
              const struct bdl_privkey *key, uint8_t **out, size_t *out_len, char *err,
              size_t errlen)
{
    const struct bdl_src **order = NULL;
    uint8_t *buf = NULL, sig[BDL_SIG_LEN];
    size_t total = 0, cap, pos = 0;
    bool have_policy = false;
    char why[128], q[256], ts[32];
    struct tm tm;
    ed25519_key ek;
    word32 sl = sizeof(sig);
    int rc;

    *out = NULL;
    *out_len = 0;
    if (version == 0) {
        bdl_err(err, errlen, "version must be a positive integer");
        return CAT_ERR;
    }
    if (n_files > BDL_MAX_FILES) {
        bdl_err(err, errlen, "%zu files, at most %d", n_files, BDL_MAX_FILES);
        return CAT_ERR;
    }
    if (gmtime_r(&created, &tm) == NULL || tm.tm_year < 70 || tm.tm_year > 9999 - 1900) {
        bdl_err(err, errlen, "creation time out of range");
        return CAT_ERR;
    }
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
    order = malloc((n_files ? n_files : 1) * sizeof(*order));
    if (order == NULL) {
        bdl_err(err, errlen, "out of memory");
        return CAT_ERR;
    }
    for (size_t i = 0; i < n_files; i++) {
        enum bdl_kind kind;
        size_t nl = strlen(files[i].name);
        if (bdl_name_check(files[i].name, nl, &kind, why, sizeof(why)) != CAT_OK) {
            bdl_err(err, errlen, "file name \"%s\": %s", bdl_quote(q, sizeof(q), files[i].name, nl),
                    why);
            goto fail;
        }
        if (files[i].len > BDL_MAX_SIZE - total) {
            bdl_err(err, errlen, "files too large (a bundle is at most %u bytes)", BDL_MAX_SIZE);
            goto fail;
        }
        total += files[i].len;
        have_policy |= kind == BDL_KIND_POLICY;
        order[i] = &files[i];
    }
    if (!have_policy) {
        bdl_err(err, errlen, "no policy.cpl");
        goto fail;
    }
    qsort(order, n_files, sizeof(*order), bdl_src_cmp);
    for (size_t i = 1; i < n_files; i++)
        if (strcmp(order[i - 1]->name, order[i]->name) == 0) {
            bdl_err(err, errlen, "duplicate file \"%s\"", order[i]->name);
            goto fail;
        }

    /* Each file line is bounded by the name limit, so the manifest size is known up front. */
    cap = 64 + 64 + (n_files + 1) * (BDL_MAX_LINE) + total;
    buf = malloc(cap);
    if (buf == NULL) {
        bdl_err(err, errlen, "out of memory");
        goto fail;
    }
    pos += (size_t)snprintf((char *)buf, cap, "%s %d\nversion %llu\ncreated %s\n", BDL_MAGIC,
                            BDL_FORMAT, (unsigned long long)version, ts);
    for (size_t i = 0; i < n_files; i++) {
        uint8_t h[WC_SHA256_DIGEST_SIZE];
        char hex[2 * WC_SHA256_DIGEST_SIZE + 1];
        CAT_ASSERT(wc_Sha256Hash(order[i]->data, (word32)order[i]->len, h) == 0);
        bdl_hex(h, sizeof(h), hex);
        pos += (size_t)snprintf((char *)buf + pos, cap - pos, "file %s %zu %s\n", order[i]->name,
                                order[i]->len, hex);
    }
    if (wc_ed25519_init(&ek) != 0) {
        bdl_err(err, errlen, "ed25519 init failed");
        goto fail;
    }
    rc = wc_ed25519_import_private_key(key->seed, 32, key->pub.key, 32, &ek);
    if (rc == 0)
        rc = wc_ed25519_sign_msg(buf, (word32)pos, sig, &sl, &ek);
    wc_ed25519_free(&ek);
    if (rc != 0 || sl != sizeof(sig)) {
        bdl_err(err, errlen, "ed25519 signing failed (%d)", rc);
        goto fail;
    }
    {
        char sighex[2 * BDL_SIG_LEN + 1];
        bdl_hex(sig, sizeof(sig), sighex);
        pos += (size_t)snprintf((char *)buf + pos, cap - pos, "signature ed25519 %s %s\n",
                                key->pub.id_hex, sighex);
    }
    if (pos + total > BDL_MAX_SIZE) {
        bdl_err(err, errlen, "bundle too large (%zu bytes, at most %u)", pos + total, BDL_MAX_SIZE);
        goto fail;
    }
    for (size_t i = 0; i < n_files; i++) {
        if (order[i]->len)
            memcpy(buf + pos, order[i]->data, order[i]->len);
        pos += order[i]->len;
    }
    free(order);
    *out = buf;
    *out_len = pos;
    return CAT_OK;

fail:
    free(order);
    free(buf);
    return CAT_ERR;
}

/* Appends one file read from disk to a growing source list. */
struct bdl_dirsrc {
    struct bdl_src *v;
    size_t n, cap, total;
};

static int
bdl_add_file(struct bdl_dirsrc *s, const char *path, const char *name, bool optional, char *err,
             size_t errlen)
{
    struct stat st;
    uint8_t *data = NULL;
    char *nm = NULL;
    size_t done = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd == -1) {
        if (optional && errno == ENOENT)
            return CAT_OK;
        bdl_err(err, errlen, "%s: %s", path, strerror(errno));
        return CAT_ERR;
    }
    if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
        bdl_err(err, errlen, "%s: not a regular file", path);
        goto fail;
    }
    if ((uint64_t)st.st_size > BDL_MAX_SIZE - s->total || s->n == BDL_MAX_FILES) {
        bdl_err(err, errlen, "%s: the bundle would exceed %u bytes or %d files", path, BDL_MAX_SIZE,
                BDL_MAX_FILES);
        goto fail;
    }
    data = malloc(st.st_size ? (size_t)st.st_size : 1);
    nm = strdup(name);
    if (data == NULL || nm == NULL) {
        bdl_err(err, errlen, "out of memory");
        goto fail;
    }
    while (done < (size_t)st.st_size) {
        ssize_t n = read(fd, data + done, (size_t)st.st_size - done);
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0) {
            bdl_err(err, errlen, "%s: %s", path,
                    n == 0 ? "file shrank while reading" : strerror(errno));
            goto fail;
        }
        done += (size_t)n;
    }
    if (s->n == s->cap) {
        size_t ncap = s->cap ? 2 * s->cap : 16;
        struct bdl_src *nv = realloc(s->v, ncap * sizeof(*nv));
        if (nv == NULL) {
            bdl_err(err, errlen, "out of memory");
            goto fail;
        }
        s->v = nv;
        s->cap = ncap;
    }
    s->v[s->n++] = (struct bdl_src){.name = nm, .data = data, .len = done};
    s->total += done;
    close(fd);
    return CAT_OK;

fail:
    free(data);
    free(nm);
    close(fd);
    return CAT_ERR;
}

/* Adds every file of DIR/sub (cas or pages); all must be valid bundle files of that kind. */
static int
bdl_add_dir(struct bdl_dirsrc *s, const char *dir, const char *sub, enum bdl_kind want, char *err,
            size_t errlen)
{
    char path[4096], name[300], why[128]; /* name: sub + "/" + a 255-byte d_name */
    struct dirent **ents = NULL;
    int n, rc = CAT_OK;

    snprintf(path, sizeof(path), "%s/%s", dir, sub);
    /* scandir + alphasort: the order does not matter (build sorts), but errors become stable. */
    n = scandir(path, &ents, NULL, alphasort);
    if (n == -1) {
        if (errno == ENOENT)
            return CAT_OK;
        bdl_err(err, errlen, "%s: %s", path, strerror(errno));
        return CAT_ERR;
    }
    for (int i = 0; i < n; i++) {
        const char *d = ents[i]->d_name;
        enum bdl_kind kind;
        if (rc != CAT_OK || d[0] == '.')
            continue;
        if (strlen(d) > BDL_MAX_NAME) {
            snprintf(why, sizeof(why), "name too long");
        } else {
            snprintf(name, sizeof(name), "%s/%s", sub, d);
            /* The name decides the kind, so a valid name under sub/ is of sub's kind. */
            if (bdl_name_check(name, strlen(name), &kind, why, sizeof(why)) == CAT_OK) {
                CAT_ASSERT(kind == want);
                why[0] = '\0';
            }
        }
        if (why[0] != '\0') {
            bdl_err(err, errlen, "%s/%s/%s: cannot go into a bundle: %s", dir, sub, d, why);
            rc = CAT_ERR;
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, d);
        rc = bdl_add_file(s, path, name, false, err, errlen);
    }
    for (int i = 0; i < n; i++)
        free(ents[i]);
    free(ents);
    return rc;
}

int
bdl_build(const char *dir, uint64_t version, const char *privkey_path, uint8_t **out,
          size_t *out_len, char *err, size_t errlen)
{
    struct bdl_dirsrc s = {0};
    struct bdl_privkey key;
    char path[4096];
    int rc = CAT_ERR;

    *out = NULL;
    *out_len = 0;
    if (bdl_privkey_load(privkey_path, &key, err, errlen) != CAT_OK)
        return CAT_ERR;
    snprintf(path, sizeof(path), "%s/policy.cpl", dir);
    if (bdl_add_file(&s, path, "policy.cpl", false, err, errlen) != CAT_OK)
        goto out;
    snprintf(path, sizeof(path), "%s/categories.txt", dir);
    if (bdl_add_file(&s, path, "categories.txt", true, err, errlen) != CAT_OK)
        goto out;
    if (bdl_add_dir(&s, dir, "cas", BDL_KIND_CA, err, errlen) != CAT_OK ||
        bdl_add_dir(&s, dir, "pages", BDL_KIND_PAGE, err, errlen) != CAT_OK)
        goto out;
    rc = bdl_build_mem(s.v, s.n, version, time(NULL), &key, out, out_len, err, errlen);
out:
    bdl_privkey_wipe(&key);
    for (size_t i = 0; i < s.n; i++) {
        free((void *)s.v[i].name);
        free((void *)s.v[i].data);
    }
    free(s.v);
    return rc;
}
