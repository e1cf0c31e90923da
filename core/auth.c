/*
 * Authentication realms: Proxy-Authorization Basic against a realm's users.
 * Runs on worker threads when policy says authenticate(realm). The order is
 * fixed: strict parse (no crypt for garbage), per-client failure limit (no
 * crypt while blocked), cache of recent successes keyed by a secret-keyed
 * SHA-256 of user and password (no crypt for a warm user), then the type's
 * verify op. Users and hashes are immutable after load; the rate table and
 * the cache are bounded and guarded by one mutex that is never held across
 * crypt. Passwords live only on the stack of auth_check_basic and are wiped.
 */
#include "core/auth.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/sha256.h>

#define AUTH_FILE_MAX (16u * 1024 * 1024)
#define AUTH_MAX_USERS 100000
#define AUTH_RATE_PROBE 8       /* slots looked at per client */
#define AUTH_CACHE_BUCKETS 2048 /* power of two */
#define AUTH_KEY_LEN 32

#define AUTH_HASH_HINT                                                                             \
    "use yescrypt ($y$), sha512-crypt ($6$), sha256-crypt ($5$) or bcrypt ($2b$/$2y$), e.g. "      \
    "from mkpasswd -m yescrypt"

struct auth_user {
    const char *name; /* into auth_local.text */
    const char *hash; /* into auth_local.text */
    unsigned line;
};

struct auth_local {
    char *text;              /* owned: the users file, NUL-terminated in place */
    struct auth_user *users; /* owned; sorted by name */
    size_t n;
    const char *dummy_hash; /* hashed against for unknown users, so timing does not tell */
};

/* A realm type: verify is called without the realm's lock held. */
struct auth_ops {
    enum auth_type type;
    const char *name;
    bool (*verify)(struct auth_realm *r, const char *user, const char *pass);
    void (*free)(void *impl);
};

/* Failures of one client (IPv4 address or IPv6 /64). */
struct auth_rate {
    uint8_t addr[16];
    uint8_t family; /* 0: slot free */
    unsigned fails; /* within the window */
    time_t window_start;
    time_t blocked_until;
};

struct auth_cent {
    uint8_t key[AUTH_KEY_LEN];
    time_t expires;
    int32_t prev, next; /* LRU list, most recent at head; free list through next */
    int32_t hnext;      /* bucket chain */
    bool used;
};

struct auth_realm {
    char name[AUTH_NAME_MAX];
    char challenge[AUTH_NAME_MAX + 64];
    const struct auth_ops *ops;
    void *impl;         /* owned by ops->free */
    uint8_t secret[32]; /* keys the cache and the rate table hash */
    pthread_mutex_t mtx;
    struct auth_rate rate[AUTH_RATE_SLOTS];
    struct auth_cent cache[AUTH_CACHE_MAX];
    int32_t buckets[AUTH_CACHE_BUCKETS];
    int32_t lru_head, lru_tail, free_head;
};

/* Test hook: how many times crypt ran (the cache and the limiter exist to keep it low). */
static atomic_ulong auth_crypt_calls;

static void auth_err(char *err, size_t errlen, const char *fmt, ...) CAT_PRINTF(3, 4);

static void
auth_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* --- hashes of the users file ------------------------------------------------------------ */

static bool
auth_is_c64(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '/';
}

static bool
auth_all_c64(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!auth_is_c64(s[i]))
            return false;
    return true;
}

/* "$id$" + [rounds=N$] + salt (1..16, no '$') + "$" + n_hash crypt64 chars (sha-crypt). */
static bool
auth_shape_sha(const char *h, size_t n, size_t n_hash)
{
    const char *p = h + 3, *end = h + n, *d;

    if (n > 10 && strncmp(p, "rounds=", 7) == 0) {
        d = memchr(p, '$', (size_t)(end - p));
        if (d == NULL || d - p < 8)
            return false;
        for (const char *q = p + 7; q < d; q++)
            if (*q < '0' || *q > '9')
                return false;
        p = d + 1;
    }
    d = memchr(p, '$', (size_t)(end - p));
    if (d == NULL || d == p || d - p > 16 || !auth_all_c64(p, (size_t)(d - p)))
        return false;
    return (size_t)(end - d - 1) == n_hash && auth_all_c64(d + 1, n_hash);
}

/* "$y$" params "$" salt "$" 43 crypt64 chars. */
static bool
auth_shape_yescrypt(const char *h, size_t n)
{
    const char *p = h + 3, *end = h + n, *d1, *d2;

    d1 = memchr(p, '$', (size_t)(end - p));
    if (d1 == NULL || d1 == p || !auth_all_c64(p, (size_t)(d1 - p)))
        return false;
    d2 = memchr(d1 + 1, '$', (size_t)(end - d1 - 1));
    if (d2 == NULL || d2 == d1 + 1 || !auth_all_c64(d1 + 1, (size_t)(d2 - d1 - 1)))
        return false;
    return (size_t)(end - d2 - 1) == 43 && auth_all_c64(d2 + 1, 43);
}

/* "$2b$NN$" + 53 chars (22 salt + 31 hash), cost 04..31. */
static bool
auth_shape_bcrypt(const char *h, size_t n)
{
    int cost;

    if (n != 60 || h[6] != '$' || h[4] < '0' || h[4] > '3' || h[5] < '0' || h[5] > '9')
        return false;
    cost = (h[4] - '0') * 10 + (h[5] - '0');
    return cost >= 4 && cost <= 31 && auth_all_c64(h + 7, 53);
}

/* NULL if h is an accepted, well-formed hash; otherwise why not. */
static const char *
auth_hash_refusal(const char *h, size_t n, char *buf, size_t cap)
{
    bool ok;

    if (n >= 3 && strncmp(h, "$y$", 3) == 0)
        ok = auth_shape_yescrypt(h, n);
    else if (n >= 3 && strncmp(h, "$6$", 3) == 0)
        ok = auth_shape_sha(h, n, 86);
    else if (n >= 3 && strncmp(h, "$5$", 3) == 0)
        ok = auth_shape_sha(h, n, 43);
    else if (n >= 4 && (strncmp(h, "$2b$", 4) == 0 || strncmp(h, "$2y$", 4) == 0))
        ok = auth_shape_bcrypt(h, n);
    else if (n >= 3 && strncmp(h, "$1$", 3) == 0)
        return "MD5-crypt ($1$) is too weak; " AUTH_HASH_HINT;
    else if (n >= 6 && strncmp(h, "$apr1$", 6) == 0)
        return "Apache MD5 ($apr1$) is too weak; " AUTH_HASH_HINT;
    else if ((n == 13 && auth_all_c64(h, n)) || (n == 20 && h[0] == '_' && auth_all_c64(h + 1, 19)))
        return "DES crypt is too weak; " AUTH_HASH_HINT;
    else if (n >= 3 && h[0] == '$' && memchr(h + 1, '$', n - 1) != NULL) {
        const char *d = memchr(h + 1, '$', n - 1);
        snprintf(buf, cap, "unsupported hash type \"%.*s\"; %s",
                 (int)CAT_MIN((size_t)(d - h + 1), (size_t)16), h, AUTH_HASH_HINT);
        return buf;
    } else
        return "plaintext password refused; " AUTH_HASH_HINT;
    /* The shape checks ensure a full hash is there; libxcrypt judges the setting. */
    if (!ok || crypt_checksalt(h) == CRYPT_SALT_INVALID)
        return "malformed hash (truncated or damaged?)";
    return NULL;
}

/* --- UTF-8 and base64, strict ------------------------------------------------------------ */

/* Well-formed UTF-8 (no overlongs, surrogates or values above U+10FFFF), no control characters. */
static bool
auth_utf8_ok(const uint8_t *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        uint8_t c = s[i];
        uint32_t cp;
        size_t k;
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return false;
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i <= k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

static int
auth_b64_val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/*
 * RFC 4648 base64 with padding, canonical (unused bits zero), nothing else.
 * Written here rather than wolfCrypt's Base64_Decode, which is made for PEM
 * and tolerates line breaks and whitespace that a credential must not carry.
 */
static bool
auth_b64_decode(const char *in, size_t n, uint8_t *out, size_t cap, size_t *out_len)
{
    size_t o = 0;

    if (n == 0 || n % 4 != 0)
        return false;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        size_t pad = 0;
        for (int j = 0; j < 4; j++) {
            char c = in[i + j];
            if (c == '=' && i + 4 == n && j >= 2) {
                v[j] = 0;
                pad++;
                continue;
            }
            if (pad > 0) /* '=' followed by data */
                return false;
            v[j] = auth_b64_val(c);
            if (v[j] < 0)
                return false;
        }
        uint32_t w =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        if ((pad == 1 && (w & 0xff) != 0) || (pad == 2 && (w & 0xffff) != 0))
            return false;
        if (o + 3 - pad > cap)
            return false;
        out[o++] = (uint8_t)(w >> 16);
        if (pad < 2)
            out[o++] = (uint8_t)(w >> 8);
        if (pad < 1)
            out[o++] = (uint8_t)w;
    }
    *out_len = o;
    return true;
}

/* --- local realm ------------------------------------------------------------------------- */

static int
auth_user_cmp(const void *a, const void *b)
{
    const struct auth_user *x = a, *y = b;
    int c = strcmp(x->name, y->name);

    /* Equal names sort by line, so the duplicate's message names the first one. */
    return c != 0 ? c : (x->line > y->line) - (x->line < y->line);
}

/* Constant time in the contents; the lengths are not secret (they come from the hash type). */
static bool
auth_ct_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = 0;

    if (la != lb)
        return false;
    for (size_t i = 0; i < la; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

/* crypt_rn with its own 32 KiB of state per call: crypt(3)'s static buffer is not thread safe. */
static bool
auth_crypt_match(const char *pass, const char *hash)
{
    struct crypt_data *cd = calloc(1, sizeof(*cd));
    bool ok = false;

    if (cd == NULL)
        return false;
    atomic_fetch_add(&auth_crypt_calls, 1);
    const char *out = crypt_rn(pass, hash, cd, (int)sizeof(*cd));
    /* crypt_rn gives NULL or a "*" failure token on error; neither can equal a valid hash. */
    if (out != NULL && out[0] != '*')
        ok = auth_ct_equal(out, hash);
    explicit_bzero(cd, sizeof(*cd));
    free(cd);
    return ok;
}

static bool
auth_local_verify(struct auth_realm *r, const char *user, const char *pass)
{
    const struct auth_local *l = r->impl;
    size_t lo = 0, hi = l->n;
    const struct auth_user *u = NULL;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(l->users[mid].name, user);
        if (c == 0) {
            u = &l->users[mid];
            break;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (u == NULL) {
        /* Pay the same price as for a real user, so response time does not reveal names. */
        (void)auth_crypt_match(pass, l->dummy_hash);
        return false;
    }
    return auth_crypt_match(pass, u->hash);
}

static void
auth_local_free(void *impl)
{
    struct auth_local *l = impl;

    if (l == NULL)
        return;
    free(l->users);
    free(l->text);
    free(l);
}

static const struct auth_ops auth_local_ops = {
    .type = AUTH_TYPE_LOCAL,
    .name = "local",
    .verify = auth_local_verify,
    .free = auth_local_free,
};

static char *
auth_read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    struct stat st;
    char *buf = NULL;
    size_t done = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd == -1) {
        auth_err(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
        auth_err(err, errlen, "%s: not a regular file", path);
        goto fail;
    }
    if ((uint64_t)st.st_size > AUTH_FILE_MAX) {
        auth_err(err, errlen, "%s: larger than %u bytes", path, AUTH_FILE_MAX);
        goto fail;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        auth_err(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    while (done < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0) {
            auth_err(err, errlen, "%s: %s", path,
                     n == 0 ? "file shrank while reading" : strerror(errno));
            goto fail;
        }
        done += (size_t)n;
    }
    buf[done] = '\0';
    close(fd);
    *len = done;
    return buf;

fail:
    free(buf);
    close(fd);
    return NULL;
}

/* Quotes a user name for an error message: printable ASCII kept, the rest escaped. */
static const char *
auth_quote(char *out, size_t cap, const char *s, size_t n)
{
    size_t o = 0;

    for (size_t i = 0; i < n && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i >= 64) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
    }
    out[o] = '\0';
    return out;
}

static struct auth_local *
auth_local_load(const char *path, char *err, size_t errlen)
{
    struct auth_local *l = calloc(1, sizeof(*l));
    size_t len, cap = 0;
    unsigned lineno = 0;
    char q[300], why[256];

    if (l == NULL) {
        auth_err(err, errlen, "out of memory");
        return NULL;
    }
    l->text = auth_read_file(path, &len, err, errlen);
    if (l->text == NULL)
        goto fail;
    if (memchr(l->text, '\0', len) != NULL) {
        auth_err(err, errlen, "%s: contains a NUL byte", path);
        goto fail;
    }
    for (char *line = l->text, *next; line < l->text + len; line = next) {
        char *eol = strchr(line, '\n'), *end, *colon;
        lineno++;
        next = eol ? eol + 1 : l->text + len;
        end = eol ? eol : l->text + len;
        /* Trailing blanks (and a CR from a Windows editor) are not part of any hash. */
        while (end > line && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
            end--;
        *end = '\0';
        const char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0' || *p == '#')
            continue;
        colon = strchr(line, ':');
        if (colon == NULL) {
            auth_err(err, errlen, "%s:%u: expected \"user:hash\"", path, lineno);
            goto fail;
        }
        size_t nl = (size_t)(colon - line);
        if (nl == 0) {
            auth_err(err, errlen, "%s:%u: empty user name", path, lineno);
            goto fail;
        }
        if (nl >= AUTH_USER_MAX || !auth_utf8_ok((const uint8_t *)line, nl) || line[0] == ' ' ||
            line[nl - 1] == ' ') {
            auth_err(err, errlen,
                     "%s:%u: user \"%s\": names are 1-%d bytes of UTF-8 without control "
                     "characters or blanks at either end",
                     path, lineno, auth_quote(q, sizeof(q), line, nl), AUTH_USER_MAX - 1);
            goto fail;
        }
        *colon = '\0';
        const char *hash = colon + 1, *refusal;
        refusal = auth_hash_refusal(hash, strlen(hash), why, sizeof(why));
        if (refusal != NULL) {
            auth_err(err, errlen, "%s:%u: user \"%s\": %s", path, lineno,
                     auth_quote(q, sizeof(q), line, nl), refusal);
            goto fail;
        }
        if (l->n == AUTH_MAX_USERS) {
            auth_err(err, errlen, "%s:%u: more than %d users", path, lineno, AUTH_MAX_USERS);
            goto fail;
        }
        if (l->n == cap) {
            size_t ncap = cap ? 2 * cap : 64;
            struct auth_user *nu = realloc(l->users, ncap * sizeof(*nu));
            if (nu == NULL) {
                auth_err(err, errlen, "out of memory");
                goto fail;
            }
            l->users = nu;
            cap = ncap;
        }
        l->users[l->n++] = (struct auth_user){.name = line, .hash = hash, .line = lineno};
    }
    if (l->n == 0) {
        auth_err(err, errlen, "%s: no users", path);
        goto fail;
    }
    l->dummy_hash = l->users[0].hash;
    qsort(l->users, l->n, sizeof(*l->users), auth_user_cmp);
    for (size_t i = 1; i < l->n; i++)
        if (strcmp(l->users[i - 1].name, l->users[i].name) == 0) {
            auth_err(err, errlen, "%s:%u: user \"%s\" already defined on line %u", path,
                     l->users[i].line,
                     auth_quote(q, sizeof(q), l->users[i].name, strlen(l->users[i].name)),
                     l->users[i - 1].line);
            goto fail;
        }
    return l;

fail:
    auth_local_free(l);
    return NULL;
}

/* --- realm ------------------------------------------------------------------------------- */

struct auth_realm *
auth_realm_load(const char *name, const char *type, const char *path, char *err, size_t errlen)
{
    struct auth_realm *r;
    size_t nl = strlen(name);
    WC_RNG rng;

    if (nl == 0 || nl >= AUTH_NAME_MAX) {
        auth_err(err, errlen, "realm name must be 1-%d characters", AUTH_NAME_MAX - 1);
        return NULL;
    }
    /* The name goes into a quoted-string of the challenge: keep it plain. */
    for (size_t i = 0; i < nl; i++)
        if (name[i] < 0x20 || name[i] > 0x7e || name[i] == '"' || name[i] == '\\') {
            auth_err(err, errlen, "realm name must be printable ASCII without '\"' or '\\'");
            return NULL;
        }
    if (strcmp(type, "local") != 0) {
        char q[80];
        auth_err(err, errlen, "realm %s: unknown type \"%s\" (known: local)", name,
                 auth_quote(q, sizeof(q), type, strlen(type)));
        return NULL;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        auth_err(err, errlen, "out of memory");
        return NULL;
    }
    if (wc_InitRng(&rng) != 0) {
        free(r);
        auth_err(err, errlen, "random generator init failed");
        return NULL;
    }
    int rc = wc_RNG_GenerateBlock(&rng, r->secret, sizeof(r->secret));
    wc_FreeRng(&rng);
    if (rc != 0) {
        free(r);
        auth_err(err, errlen, "random generator failed");
        return NULL;
    }
    r->impl = auth_local_load(path, err, errlen);
    if (r->impl == NULL) {
        explicit_bzero(r->secret, sizeof(r->secret));
        free(r);
        return NULL;
    }
    r->ops = &auth_local_ops;
    memcpy(r->name, name, nl + 1);
    snprintf(r->challenge, sizeof(r->challenge),
             "Proxy-Authenticate: Basic realm=\"%s\", charset=\"UTF-8\"", name);
    pthread_mutex_init(&r->mtx, NULL);
    for (size_t i = 0; i < AUTH_CACHE_BUCKETS; i++)
        r->buckets[i] = -1;
    r->lru_head = r->lru_tail = -1;
    for (int32_t i = 0; i < AUTH_CACHE_MAX; i++)
        r->cache[i].next = i + 1 < AUTH_CACHE_MAX ? i + 1 : -1;
    r->free_head = 0;
    return r;
}

void
auth_realm_free(struct auth_realm *r)
{
    if (r == NULL)
        return;
    r->ops->free(r->impl);
    pthread_mutex_destroy(&r->mtx);
    explicit_bzero(r, sizeof(*r));
    free(r);
}

const char *
auth_realm_name(const struct auth_realm *r)
{
    return r->name;
}

enum auth_type
auth_realm_type(const struct auth_realm *r)
{
    return r->ops->type;
}

size_t
auth_realm_users(const struct auth_realm *r)
{
    return r->ops->type == AUTH_TYPE_LOCAL ? ((const struct auth_local *)r->impl)->n : 0;
}

const char *
auth_challenge_header(const struct auth_realm *r)
{
    return r->challenge;
}

const char *
auth_result_str(enum auth_result res)
{
    switch (res) {
    case AUTH_OK:
        return "ok";
    case AUTH_FAIL:
        return "fail";
    case AUTH_RATE_LIMITED:
        return "rate-limited";
    case AUTH_MALFORMED:
        return "malformed";
    }
    return "?";
}

/* --- rate limiting ----------------------------------------------------------------------- */

/* IPv4 (also when mapped into IPv6) by address, IPv6 by /64: one host holds a whole /64. */
static void
auth_client_key(const struct sockaddr *sa, uint8_t addr[16], uint8_t *family)
{
    memset(addr, 0, 16);
    if (sa->sa_family == AF_INET) {
        memcpy(addr, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        *family = 4;
    } else if (sa->sa_family == AF_INET6) {
        const uint8_t *a = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a, mapped, 12) == 0) {
            memcpy(addr, a + 12, 4);
            *family = 4;
        } else {
            memcpy(addr, a, 8);
            *family = 6;
        }
    } else {
        *family = 1; /* other families share one slot */
    }
}

static uint32_t
auth_rate_hash(const struct auth_realm *r, const uint8_t addr[16], uint8_t family)
{
    /* FNV-1a seeded with the realm secret: a client cannot pick colliding addresses. */
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < 8; i++)
        h = (h ^ r->secret[i]) * 16777619u;
    h = (h ^ family) * 16777619u;
    for (size_t i = 0; i < 16; i++)
        h = (h ^ addr[i]) * 16777619u;
    return h;
}

/* Called locked. The client's slot, or NULL; with create, a slot is found or reclaimed. */
static struct auth_rate *
auth_rate_slot(struct auth_realm *r, const uint8_t addr[16], uint8_t family, time_t now,
               bool create)
{
    uint32_t h = auth_rate_hash(r, addr, family);
    struct auth_rate *victim = NULL;
    time_t victim_age = 0;

    for (size_t i = 0; i < AUTH_RATE_PROBE; i++) {
        struct auth_rate *s = &r->rate[(h + i) % AUTH_RATE_SLOTS];
        if (s->family == family && memcmp(s->addr, addr, 16) == 0)
            return s;
        if (!create)
            continue;
        /* Prefer a free slot, then one whose state no longer matters, then the stalest. */
        time_t active = CAT_MAX(s->blocked_until, s->window_start + AUTH_FAIL_WINDOW_S);
        time_t age = s->family == 0  ? (time_t)INT64_MAX
                     : active <= now ? (time_t)INT64_MAX - 1
                                     : now - active;
        if (victim == NULL || age > victim_age) {
            victim = s;
            victim_age = age;
        }
    }
    if (victim != NULL) {
        memset(victim, 0, sizeof(*victim));
        memcpy(victim->addr, addr, 16);
        victim->family = family;
    }
    return victim;
}

/* --- cache of recent successes ----------------------------------------------------------- */

static void
auth_cache_key(const struct auth_realm *r, const char *user, const char *pass,
               uint8_t key[AUTH_KEY_LEN])
{
    wc_Sha256 sha;

    /* Keyed by the realm's secret: a memory dump does not give fast unsalted password hashes. */
    CAT_ASSERT(wc_InitSha256(&sha) == 0);
    wc_Sha256Update(&sha, r->secret, sizeof(r->secret));
    wc_Sha256Update(&sha, (const byte *)user, (word32)strlen(user) + 1);
    wc_Sha256Update(&sha, (const byte *)pass, (word32)strlen(pass));
    wc_Sha256Final(&sha, key);
    wc_Sha256Free(&sha);
}

static uint32_t
auth_cache_bucket(const uint8_t key[AUTH_KEY_LEN])
{
    uint32_t b;

    memcpy(&b, key, sizeof(b));
    return b & (AUTH_CACHE_BUCKETS - 1);
}

static void
auth_lru_unlink(struct auth_realm *r, int32_t i)
{
    struct auth_cent *e = &r->cache[i];

    if (e->prev >= 0)
        r->cache[e->prev].next = e->next;
    else
        r->lru_head = e->next;
    if (e->next >= 0)
        r->cache[e->next].prev = e->prev;
    else
        r->lru_tail = e->prev;
}

static void
auth_lru_push(struct auth_realm *r, int32_t i)
{
    struct auth_cent *e = &r->cache[i];

    e->prev = -1;
    e->next = r->lru_head;
    if (r->lru_head >= 0)
        r->cache[r->lru_head].prev = i;
    r->lru_head = i;
    if (r->lru_tail < 0)
        r->lru_tail = i;
}

/* Called locked: unlinks entry i from its bucket and the LRU, and frees it. */
static void
auth_cache_drop(struct auth_realm *r, int32_t i)
{
    int32_t *pp = &r->buckets[auth_cache_bucket(r->cache[i].key)];

    for (size_t guard = 0; *pp >= 0 && guard < AUTH_CACHE_MAX; guard++) {
        if (*pp == i) {
            *pp = r->cache[i].hnext;
            break;
        }
        pp = &r->cache[*pp].hnext;
    }
    auth_lru_unlink(r, i);
    explicit_bzero(&r->cache[i], sizeof(r->cache[i]));
    r->cache[i].next = r->free_head;
    r->free_head = i;
}

/* Called locked: the live entry for key (moved to the LRU head), or -1. */
static int32_t
auth_cache_find(struct auth_realm *r, const uint8_t key[AUTH_KEY_LEN], time_t now)
{
    int32_t i = r->buckets[auth_cache_bucket(key)];

    for (size_t guard = 0; i >= 0 && guard < AUTH_CACHE_MAX; guard++) {
        struct auth_cent *e = &r->cache[i];
        if (memcmp(e->key, key, AUTH_KEY_LEN) == 0) {
            if (e->expires <= now) {
                auth_cache_drop(r, i);
                return -1;
            }
            auth_lru_unlink(r, i);
            auth_lru_push(r, i);
            return i;
        }
        i = e->hnext;
    }
    return -1;
}

/* Called locked. The TTL runs from the check that proved the password, not from the last hit. */
static void
auth_cache_put(struct auth_realm *r, const uint8_t key[AUTH_KEY_LEN], time_t now)
{
    int32_t i = auth_cache_find(r, key, now);
    uint32_t b;

    if (i < 0) {
        if (r->free_head < 0)
            auth_cache_drop(r, r->lru_tail);
        i = r->free_head;
        r->free_head = r->cache[i].next;
        memcpy(r->cache[i].key, key, AUTH_KEY_LEN);
        b = auth_cache_bucket(key);
        r->cache[i].hnext = r->buckets[b];
        r->buckets[b] = i;
        r->cache[i].used = true;
        auth_lru_push(r, i);
    }
    r->cache[i].expires = now + AUTH_CACHE_TTL_S;
}

/* --- the check --------------------------------------------------------------------------- */

/*
 * "Basic" (any case), one or more spaces, a base64 token68, nothing else.
 * Splits the decoded "user:password" at the first ':' (RFC 7617 section 2).
 */
static bool
auth_parse_basic(const char *v, char *user, size_t user_cap, char *pass, size_t pass_cap)
{
    uint8_t raw[AUTH_HEADER_MAX];
    size_t n = strnlen(v, AUTH_HEADER_MAX + 1), rl, ul, pl;
    const uint8_t *colon;
    bool ok = false;

    if (n > AUTH_HEADER_MAX || n < 6 || strncasecmp(v, "basic", 5) != 0 || v[5] != ' ')
        return false;
    v += 5;
    n -= 5;
    while (n > 0 && *v == ' ') {
        v++;
        n--;
    }
    if (!auth_b64_decode(v, n, raw, sizeof(raw), &rl))
        goto out;
    colon = memchr(raw, ':', rl);
    if (colon == NULL)
        goto out;
    ul = (size_t)(colon - raw);
    pl = rl - ul - 1;
    if (ul == 0 || ul >= user_cap || ul >= AUTH_USER_MAX || pl >= pass_cap ||
        !auth_utf8_ok(raw, ul))
        goto out;
    /* Any byte but controls in a password: legacy clients send Latin-1. */
    for (size_t i = 0; i < pl; i++)
        if (colon[1 + i] < 0x20 || colon[1 + i] == 0x7f)
            goto out;
    memcpy(user, raw, ul);
    user[ul] = '\0';
    memcpy(pass, colon + 1, pl);
    pass[pl] = '\0';
    ok = true;
out:
    explicit_bzero(raw, sizeof(raw));
    return ok;
}

enum auth_result
auth_check_basic(struct auth_realm *r, const char *header_value, char *user_out, size_t user_cap,
                 const struct sockaddr *client, time_t now)
{
    char user[AUTH_USER_MAX], pass[AUTH_PASS_MAX];

    if (user_cap > 0)
        user_out[0] = '\0';
    if (!auth_parse_basic(header_value, user, CAT_MIN(user_cap, sizeof(user)), pass,
                          sizeof(pass))) {
        explicit_bzero(pass, sizeof(pass));
        return AUTH_MALFORMED;
    }
    memcpy(user_out, user, strlen(user) + 1);
    enum auth_result res = auth_check_userpass(r, user, pass, client, now);
    explicit_bzero(pass, sizeof(pass));
    return res;
}

enum auth_result
auth_check_userpass(struct auth_realm *r, const char *user, const char *pass,
                    const struct sockaddr *client, time_t now)
{
    uint8_t key[AUTH_KEY_LEN], addr[16], family;
    struct auth_rate *s;
    enum auth_result res;

    auth_client_key(client, addr, &family);
    auth_cache_key(r, user, pass, key);

    pthread_mutex_lock(&r->mtx);
    s = auth_rate_slot(r, addr, family, now, false);
    if (s != NULL && s->blocked_until > now) {
        pthread_mutex_unlock(&r->mtx);
        res = AUTH_RATE_LIMITED;
        goto out;
    }
    if (auth_cache_find(r, key, now) >= 0) {
        pthread_mutex_unlock(&r->mtx);
        res = AUTH_OK;
        goto out;
    }
    pthread_mutex_unlock(&r->mtx);

    /* Not under the lock: yescrypt takes tens of milliseconds. */
    res = r->ops->verify(r, user, pass) ? AUTH_OK : AUTH_FAIL;

    pthread_mutex_lock(&r->mtx);
    if (res == AUTH_OK) {
        auth_cache_put(r, key, now);
    } else {
        s = auth_rate_slot(r, addr, family, now, true);
        if (s->window_start + AUTH_FAIL_WINDOW_S <= now || s->fails == 0) {
            s->window_start = now;
            s->fails = 0;
        }
        if (++s->fails >= AUTH_FAIL_MAX) {
            s->blocked_until = now + AUTH_BLOCK_S;
            s->fails = 0;
            s->window_start = now;
        }
    }
    pthread_mutex_unlock(&r->mtx);
out:
    explicit_bzero(key, sizeof(key));
    return res;
}
