/*
 * The little DER catena reads and writes itself: TLV walking over untrusted
 * certificates, X.509 times, and the edit of a TBSCertificate that wolfSSL
 * made (exact issuer/subject bytes, extra extensions, basicConstraints
 * critical) before it is signed. wolfSSL 5.5.4 has no API for any of the
 * three edits in Debian's build (notes/wolfssl.md sections 1, 2).
 * Invariant: readers never step outside the span they were given.
 */
#include "emulation/emu_int.h"

#include <stdlib.h>
#include <string.h>

int
der_next(struct emu_span *rd, uint8_t *tag, struct emu_span *val, struct emu_span *whole)
{
    const uint8_t *p = rd->p;
    size_t n = rd->len, len, hl = 2;

    if (n < 2)
        return CAT_ERR;
    /* Multi-byte tag numbers do not occur in the structures catena reads. */
    if ((p[0] & 0x1f) == 0x1f)
        return CAT_ERR;
    if (p[1] < 0x80) {
        len = p[1];
    } else {
        size_t nb = p[1] & 0x7f;

        /* 0x80 is BER's indefinite length: not DER. */
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
    if (whole) {
        whole->p = p;
        whole->len = hl + len;
    }
    rd->p += hl + len;
    rd->len -= hl + len;
    return CAT_OK;
}

int
der_expect(struct emu_span *rd, uint8_t tag, struct emu_span *val, struct emu_span *whole)
{
    struct emu_span save = *rd;
    uint8_t t;

    if (der_next(rd, &t, val, whole) != CAT_OK || t != tag) {
        *rd = save;
        return CAT_ERR;
    }
    return CAT_OK;
}

size_t
der_hdr(uint8_t *out, uint8_t tag, size_t len)
{
    uint8_t h[6];
    size_t n = 0;

    h[n++] = tag;
    if (len < 0x80) {
        h[n++] = (uint8_t)len;
    } else {
        size_t nb = len > 0xffffff ? 4 : len > 0xffff ? 3 : len > 0xff ? 2 : 1;

        h[n++] = (uint8_t)(0x80 | nb);
        for (size_t i = nb; i > 0; i--)
            h[n++] = (uint8_t)(len >> (8 * (i - 1)));
    }
    if (out)
        memcpy(out, h, n);
    return n;
}

static bool
der_reserve(struct der_buf *b, size_t more)
{
    if (b->failed)
        return false;
    if (more > SIZE_MAX / 2 - b->len) {
        b->failed = true;
        return false;
    }
    if (b->len + more > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        uint8_t *p;

        while (cap < b->len + more)
            cap *= 2;
        p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return false;
        }
        b->p = p;
        b->cap = cap;
    }
    return true;
}

void
der_put(struct der_buf *b, const void *data, size_t len)
{
    if (len == 0 || !der_reserve(b, len))
        return;
    memcpy(b->p + b->len, data, len);
    b->len += len;
}

void
der_put_tlv(struct der_buf *b, uint8_t tag, const void *val, size_t len)
{
    uint8_t h[6];

    der_put(b, h, der_hdr(h, tag, len));
    der_put(b, val, len);
}

void
der_wrap(struct der_buf *b, size_t start, uint8_t tag)
{
    uint8_t h[6];
    size_t hl;

    if (b->failed || start > b->len)
        return;
    hl = der_hdr(h, tag, b->len - start);
    if (!der_reserve(b, hl))
        return;
    memmove(b->p + start + hl, b->p + start, b->len - start);
    memcpy(b->p + start, h, hl);
    b->len += hl;
}

void
der_buf_free(struct der_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* ---- times ----------------------------------------------------------------- */

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t
der_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + doe - 719468;
}

static void
der_civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;

    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static bool
der_digits(const uint8_t *p, size_t n, int *out)
{
    int v = 0;

    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return true;
}

int
der_time_parse(uint8_t tag, struct emu_span v, int64_t *t)
{
    int y, mo, d, h, mi, s;
    size_t yl;

    /* RFC 5280 4.1.2.5: seconds present, 'Z', no fractions. */
    if (tag == DER_UTCTIME && v.len == 13)
        yl = 2;
    else if (tag == DER_GENTIME && v.len == 15)
        yl = 4;
    else
        return CAT_ERR;
    if (v.p[v.len - 1] != 'Z' || !der_digits(v.p, yl, &y) || !der_digits(v.p + yl, 2, &mo) ||
        !der_digits(v.p + yl + 2, 2, &d) || !der_digits(v.p + yl + 4, 2, &h) ||
        !der_digits(v.p + yl + 6, 2, &mi) || !der_digits(v.p + yl + 8, 2, &s))
        return CAT_ERR;
    if (yl == 2)
        y += y < 50 ? 2000 : 1900;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
        return CAT_ERR;
    *t = der_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
    return CAT_OK;
}

size_t
der_time_put(uint8_t out[20], int64_t t)
{
    static const int64_t min_t = -631152000;   /* 1950-01-01 */
    static const int64_t max_t = 253402300799; /* 9999-12-31 23:59:59 */
    int64_t days, y, sec;
    int m, d;
    char s[20];
    size_t n;

    t = CAT_MAX(min_t, CAT_MIN(t, max_t));
    days = t / 86400;
    sec = t % 86400;
    if (sec < 0) {
        sec += 86400;
        days--;
    }
    der_civil_from_days(days, &y, &m, &d);
    if (y < 2050)
        n = (size_t)snprintf(s, sizeof(s), "%02d%02d%02d%02d%02d%02dZ", (int)(y % 100), m, d,
                             (int)(sec / 3600), (int)(sec / 60 % 60), (int)(sec % 60));
    else
        n = (size_t)snprintf(s, sizeof(s), "%04d%02d%02d%02d%02d%02dZ", (int)y, m, d,
                             (int)(sec / 3600), (int)(sec / 60 % 60), (int)(sec % 60));
    out[0] = y < 2050 ? DER_UTCTIME : DER_GENTIME;
    out[1] = (uint8_t)n;
    memcpy(out + 2, s, n);
    return n + 2;
}

/* ---- TBSCertificate edit -------------------------------------------------- */

static const uint8_t der_oid_bc[] = {0x06, 0x03, 0x55, 0x1d, 0x13};

/* Copies one Extension, inserting critical TRUE into basicConstraints if asked. */
static int
der_ext_copy(struct der_buf *b, struct emu_span ext, bool bc_critical)
{
    struct emu_span rd = ext, body, oid, oid_whole;
    uint8_t tag;
    size_t start;

    if (der_next(&rd, &tag, &body, NULL) != CAT_OK || tag != DER_SEQUENCE || rd.len != 0)
        return CAT_ERR;
    rd = body;
    if (der_expect(&rd, DER_OID, &oid, &oid_whole) != CAT_OK)
        return CAT_ERR;
    if (!bc_critical || oid_whole.len != sizeof(der_oid_bc) ||
        memcmp(oid_whole.p, der_oid_bc, sizeof(der_oid_bc)) != 0 ||
        (rd.len > 0 && rd.p[0] == DER_BOOLEAN)) {
        der_put(b, ext.p, ext.len);
        return CAT_OK;
    }
    start = b->len;
    der_put(b, oid_whole.p, oid_whole.len);
    der_put(b, (const uint8_t[]){DER_BOOLEAN, 0x01, 0xff}, 3);
    der_put(b, rd.p, rd.len);
    der_wrap(b, start, DER_SEQUENCE);
    return CAT_OK;
}

int
der_tbs_edit(const uint8_t *tbs, size_t len, const struct der_tbs_edit *ed, uint8_t *out,
             size_t cap, size_t *out_len)
{
    struct der_buf b = {0};
    struct emu_span rd = {tbs, len}, body, f, whole;
    uint8_t tag;
    int idx = 0, rc = CAT_ERR;
    bool had_exts = false;

    if (der_next(&rd, &tag, &body, NULL) != CAT_OK || tag != DER_SEQUENCE)
        return CAT_ERR;
    rd = body;
    /* Fields: [0] version, serial, signature, issuer, validity, subject, spki, ..., [3] exts */
    while (rd.len > 0) {
        if (der_next(&rd, &tag, &f, &whole) != CAT_OK)
            goto fail;
        if (tag == 0xa3) {
            struct emu_span seq = f, exts, one;
            size_t start = b.len, inner;

            if (der_next(&seq, &tag, &exts, NULL) != CAT_OK || tag != DER_SEQUENCE)
                goto fail;
            inner = b.len;
            while (exts.len > 0) {
                struct emu_span ev;

                if (der_next(&exts, &tag, &ev, &one) != CAT_OK)
                    goto fail;
                if (der_ext_copy(&b, one, ed->bc_critical) != CAT_OK)
                    goto fail;
            }
            der_put(&b, ed->extra_exts.p, ed->extra_exts.len);
            der_wrap(&b, inner, DER_SEQUENCE);
            der_wrap(&b, start, 0xa3);
            had_exts = true;
        } else if (idx == 3 && ed->issuer.len) {
            der_put(&b, ed->issuer.p, ed->issuer.len);
        } else if (idx == 5 && ed->subject.len) {
            der_put(&b, ed->subject.p, ed->subject.len);
        } else {
            der_put(&b, whole.p, whole.len);
        }
        idx++;
    }
    if (idx < 7)
        goto fail;
    if (!had_exts && ed->extra_exts.len) {
        size_t start = b.len;

        der_put(&b, ed->extra_exts.p, ed->extra_exts.len);
        der_wrap(&b, start, DER_SEQUENCE);
        der_wrap(&b, start, 0xa3);
    }
    der_wrap(&b, 0, DER_SEQUENCE);
    if (b.failed || b.len > cap)
        goto fail;
    memcpy(out, b.p, b.len);
    *out_len = b.len;
    rc = CAT_OK;
fail:
    der_buf_free(&b);
    return rc;
}
