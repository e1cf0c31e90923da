/*
 * catenactl bundle: keygen, build, sign, verify and push of the shared bundle.
 * The work is in core/bundle.c (bdl_*); this file parses arguments, moves
 * files and, for push, speaks just enough HTTP/1.1 over one blocking socket
 * to PUT the bundle to a node's admin endpoint. Every bundle written is read
 * back through bdl_parse_verify() first, so a bad build never reaches disk.
 * Exit codes as in catenactl.c: 0 ok, 1 failure, 2 usage error.
 */
#include "contrib/catenactl/ctl.h"
#include "core/bundle.h"
#include "core/version.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define CTLB_OK 0
#define CTLB_FAIL 1
#define CTLB_USAGE 2
#define CTLB_MAX_KEYS 8
#define CTLB_MAX_RESPONSE (1024 * 1024)
#define CTLB_TIMEOUT_S 30

/* catenactl.c dispatches "bundle" here. */

static const char ctlb_usage[] =
    "usage: catenactl bundle <subcommand> [options]\n"
    "\n"
    "  bundle keygen --private KEY --public PUB\n"
    "      make an Ed25519 signing key (KEY, mode 0600) and its public key (PUB)\n"
    "  bundle build --dir DIR --version N --key KEY --out FILE [--check no]\n"
    "      sign DIR's policy.cpl, categories.txt, cas/*.pem and pages/*.html into FILE,\n"
    "      after compiling the policy as a node would (--check no skips that: only to\n"
    "      test that nodes refuse a bad policy)\n"
    "  bundle sign --key KEY --verify-key PUB [--version N] --out FILE BUNDLE\n"
    "      verify BUNDLE with PUB, then sign its files again with KEY (key rotation)\n"
    "  bundle verify --key PUB [--key PUB2...] [--min-version N] BUNDLE\n"
    "      check BUNDLE and print its version, digest and files\n"
    "  bundle push --url http://HOST:PORT/bundle --token-file TOKEN BUNDLE\n"
    "      PUT BUNDLE to a node's admin endpoint (Authorization: Bearer <token>)\n"
    "\n"
    "Output files are never half-written: they are renamed into place.\n";

struct ctlb_opts {
    const char *priv, *pub, *dir, *version, *out, *verify_key, *min_version, *url, *token_file;
    const char *check; /* build: "no" skips compiling the policy first */
    const char *keys[CTLB_MAX_KEYS];
    size_t n_keys;
    const char *arg; /* the one positional argument (a bundle file) */
};

static int ctlb_usage_err(const char *fmt, ...) CAT_PRINTF(1, 2);

static int
ctlb_usage_err(const char *fmt, ...)
{
    va_list ap;

    fputs("catenactl bundle: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nRun 'catenactl bundle help' for usage.\n", stderr);
    return CTLB_USAGE;
}

static int ctlb_fail(const char *fmt, ...) CAT_PRINTF(1, 2);

static int
ctlb_fail(const char *fmt, ...)
{
    va_list ap;

    fputs("catenactl bundle: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CTLB_FAIL;
}

/*
 * --name VALUE or --name=VALUE for the names in allowed (" a b "); --key may
 * repeat where allowed has "key+"; at most one positional argument when
 * allowed has " ARG ".
 */
static int
ctlb_parse(int argc, char **argv, const char *allowed, struct ctlb_opts *o)
{
    static const struct {
        const char *name;
        size_t off;
    } opts[] = {
        {"private", offsetof(struct ctlb_opts, priv)},
        {"public", offsetof(struct ctlb_opts, pub)},
        {"dir", offsetof(struct ctlb_opts, dir)},
        {"version", offsetof(struct ctlb_opts, version)},
        {"out", offsetof(struct ctlb_opts, out)},
        {"verify-key", offsetof(struct ctlb_opts, verify_key)},
        {"min-version", offsetof(struct ctlb_opts, min_version)},
        {"url", offsetof(struct ctlb_opts, url)},
        {"token-file", offsetof(struct ctlb_opts, token_file)},
        {"check", offsetof(struct ctlb_opts, check)},
    };

    memset(o, 0, sizeof(*o));
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *eq, *val;
        char name[32], probe[40];
        size_t n;

        if (strncmp(a, "--", 2) != 0) {
            if (!strstr(allowed, " ARG "))
                return ctlb_usage_err("unexpected argument '%s'", a);
            if (o->arg)
                return ctlb_usage_err("only one bundle file, not '%s' and '%s'", o->arg, a);
            o->arg = a;
            continue;
        }
        a += 2;
        eq = strchr(a, '=');
        n = eq ? (size_t)(eq - a) : strlen(a);
        if (n == 0 || n >= sizeof(name))
            return ctlb_usage_err("unknown option '%s'", argv[i]);
        memcpy(name, a, n);
        name[n] = '\0';
        snprintf(probe, sizeof(probe), " %s ", name);
        bool multi = false;
        if (!strstr(allowed, probe)) {
            snprintf(probe, sizeof(probe), " %s+ ", name);
            if (!strstr(allowed, probe))
                return ctlb_usage_err("option '--%s' is not valid here", name);
            multi = true;
        }
        if (eq) {
            val = eq + 1;
        } else {
            if (i + 1 >= argc)
                return ctlb_usage_err("option '--%s' needs a value", name);
            val = argv[++i];
        }
        if (strcmp(name, "key") == 0) {
            if (o->n_keys == (multi ? CTLB_MAX_KEYS : 1))
                return ctlb_usage_err(multi ? "at most %d --key options"
                                            : "option '--key' given twice (%d allowed)",
                                      multi ? CTLB_MAX_KEYS : 1);
            o->keys[o->n_keys++] = val;
            continue;
        }
        bool found = false;
        for (size_t k = 0; k < CAT_ARRAY_LEN(opts); k++) {
            if (strcmp(opts[k].name, name) != 0)
                continue;
            const char **slot = (const char **)(void *)((char *)o + opts[k].off);
            if (*slot)
                return ctlb_usage_err("option '--%s' given twice", name);
            *slot = val;
            found = true;
        }
        if (!found)
            return ctlb_usage_err("unknown option '--%s'", name);
    }
    return CTLB_OK;
}

static int
ctlb_u64(const char *s, const char *what, uint64_t min, uint64_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (!*s || *end || errno || s[0] < '0' || s[0] > '9' || v < min)
        return ctlb_usage_err("%s must be a whole number of at least %llu, not '%s'", what,
                              (unsigned long long)min, s);
    *out = v;
    return CTLB_OK;
}

/* Reads a whole file of at most max bytes into a malloc'd buffer. */
static int
ctlb_read(const char *path, size_t max, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;

    if (f == NULL)
        return ctlb_fail("%s: %s", path, strerror(errno));
    for (;;) {
        if (n > max)
            break;
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 65536;
            uint8_t *nb = realloc(buf, ncap);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return ctlb_fail("%s: out of memory", path);
            }
            buf = nb;
            cap = ncap;
        }
        /* One byte past max is enough to know the file is too large. */
        size_t r = fread(buf + n, 1, CAT_MIN(cap - n, max + 1 - n), f);
        n += r;
        if (r == 0)
            break;
    }
    if (ferror(f) || n > max) {
        int e = errno;
        free(buf);
        fclose(f);
        if (n > max)
            return ctlb_fail("%s: larger than %zu bytes", path, max);
        return ctlb_fail("%s: %s", path, strerror(e));
    }
    fclose(f);
    *out = buf;
    *len = n;
    return CTLB_OK;
}

/* Writes next to path, then renames: a reader (or a node pulling) never sees half a bundle. */
static int
ctlb_write(const char *path, const uint8_t *data, size_t len)
{
    char tmp[4096];
    size_t done = 0;
    int fd;

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= sizeof(tmp))
        return ctlb_fail("%s: path too long", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd == -1)
        return ctlb_fail("%s: %s", tmp, strerror(errno));
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0)
            goto fail;
        done += (size_t)n;
    }
    if (fsync(fd) == -1)
        goto fail;
    if (close(fd) == -1) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) == -1)
        goto fail;
    return CTLB_OK;

fail:;
    int e = errno;
    if (fd != -1)
        close(fd);
    unlink(tmp);
    return ctlb_fail("%s: %s", path, strerror(e));
}

static const char *
ctlb_kind(enum bdl_kind k)
{
    switch (k) {
    case BDL_KIND_POLICY:
        return "policy";
    case BDL_KIND_CATEGORIES:
        return "categories";
    case BDL_KIND_CA:
        return "ca";
    case BDL_KIND_PAGE:
        return "page";
    }
    return "?";
}

static void
ctlb_print(const char *label, const struct bdl *b)
{
    size_t raw;

    bdl_raw(b, &raw);
    printf("%s: OK\n", label);
    printf("  version:  %llu\n", (unsigned long long)bdl_version(b));
    printf("  digest:   %s\n", bdl_digest(b));
    printf("  created:  %s\n", bdl_created_str(b));
    printf("  key id:   %s\n", bdl_key_id(b));
    printf("  size:     %zu bytes, %zu files\n", raw, bdl_count(b));
    for (size_t i = 0; i < bdl_count(b); i++) {
        const struct bdl_entry *e = bdl_entry_at(b, i);
        printf("  %-10s %10zu  %s\n", ctlb_kind(e->kind), e->len, e->name);
    }
}

/* Reads a bundle back as a node would: a build that does not verify is a bug, not a file. */
static int
ctlb_check_and_write(const char *out, const uint8_t *data, size_t len, const struct bdl_pubkey *pub)
{
    char err[512];
    struct bdl *b = bdl_parse_verify(data, len, pub, 1, 0, err, sizeof(err));

    if (b == NULL)
        return ctlb_fail("the bundle just built does not verify: %s", err);
    if (ctlb_write(out, data, len) != CTLB_OK) {
        bdl_free(b);
        return CTLB_FAIL;
    }
    ctlb_print(out, b);
    bdl_free(b);
    return CTLB_OK;
}

static int
ctlb_keygen(int argc, char **argv)
{
    struct ctlb_opts o;
    struct bdl_pubkey pub;
    char err[512];
    int rc = ctlb_parse(argc, argv, " private public ", &o);

    if (rc != CTLB_OK)
        return rc;
    if (!o.priv || !o.pub)
        return ctlb_usage_err("--private and --public are required");
    if (bdl_keygen(o.priv, o.pub, err, sizeof(err)) != CAT_OK)
        return ctlb_fail("%s", err);
    if (bdl_pubkey_load(o.pub, &pub, err, sizeof(err)) != CAT_OK)
        return ctlb_fail("%s", err);
    printf("signing key written to %s (mode 0600), public key to %s\nkey id %s\n", o.priv, o.pub,
           pub.id_hex);
    return CTLB_OK;
}

static int
ctlb_build(int argc, char **argv)
{
    struct ctlb_opts o;
    struct bdl_privkey key;
    uint8_t *data;
    size_t len;
    uint64_t version = 0;
    char err[512];
    int rc = ctlb_parse(argc, argv, " dir version key out check ", &o);

    if (rc != CTLB_OK)
        return rc;
    if (!o.dir || !o.version || o.n_keys == 0 || !o.out)
        return ctlb_usage_err("--dir, --version, --key and --out are required");
    if (ctlb_u64(o.version, "--version", 1, &version) != CTLB_OK)
        return CTLB_USAGE;
    /* A policy every node would refuse is refused here, where it is written. */
    char pol[4096], cats[4096];
    snprintf(pol, sizeof(pol), "%s/policy.cpl", o.dir);
    snprintf(cats, sizeof(cats), "%s/categories.txt", o.dir);
    if (o.check != NULL && strcmp(o.check, "no") != 0 && strcmp(o.check, "yes") != 0)
        return ctlb_usage_err("--check must be yes or no, not '%s'", o.check);
    bool check = o.check == NULL || strcmp(o.check, "yes") == 0;
    if (check && access(pol, F_OK) == 0 &&
        ctl_policy_compiles(pol, access(cats, F_OK) == 0 ? cats : NULL) != 0)
        return ctlb_fail("%s does not compile; no bundle written", pol);
    if (bdl_privkey_load(o.keys[0], &key, err, sizeof(err)) != CAT_OK)
        return ctlb_fail("%s", err);
    if (bdl_build(o.dir, version, o.keys[0], &data, &len, err, sizeof(err)) != CAT_OK) {
        bdl_privkey_wipe(&key);
        return ctlb_fail("%s", err);
    }
    rc = ctlb_check_and_write(o.out, data, len, &key.pub);
    bdl_privkey_wipe(&key);
    free(data);
    return rc;
}

static int
ctlb_sign(int argc, char **argv)
{
    struct ctlb_opts o;
    struct bdl_privkey key;
    struct bdl_pubkey old;
    struct bdl_src *src = NULL;
    struct bdl *b = NULL;
    uint8_t *in = NULL, *data = NULL;
    size_t in_len, len;
    uint64_t version = 0;
    char err[512];
    int rc = ctlb_parse(argc, argv, " key verify-key version out ARG ", &o);

    if (rc != CTLB_OK)
        return rc;
    if (o.n_keys == 0 || !o.verify_key || !o.out || !o.arg)
        return ctlb_usage_err("--key, --verify-key, --out and a bundle file are required");
    if (o.version && ctlb_u64(o.version, "--version", 1, &version) != CTLB_OK)
        return CTLB_USAGE;
    if (bdl_pubkey_load(o.verify_key, &old, err, sizeof(err)) != CAT_OK)
        return ctlb_fail("%s", err);
    if (bdl_privkey_load(o.keys[0], &key, err, sizeof(err)) != CAT_OK)
        return ctlb_fail("%s", err);
    rc = CTLB_FAIL;
    if (ctlb_read(o.arg, BDL_MAX_SIZE, &in, &in_len) != CTLB_OK)
        goto out;
    b = bdl_parse_verify(in, in_len, &old, 1, 0, err, sizeof(err));
    if (b == NULL) {
        ctlb_fail("%s: %s", o.arg, err);
        goto out;
    }
    src = calloc(bdl_count(b), sizeof(*src));
    if (src == NULL) {
        ctlb_fail("out of memory");
        goto out;
    }
    for (size_t i = 0; i < bdl_count(b); i++) {
        const struct bdl_entry *e = bdl_entry_at(b, i);
        src[i] = (struct bdl_src){.name = e->name, .data = e->data, .len = e->len};
    }
    if (bdl_build_mem(src, bdl_count(b), version ? version : bdl_version(b), time(NULL), &key,
                      &data, &len, err, sizeof(err)) != CAT_OK) {
        ctlb_fail("%s", err);
        goto out;
    }
    rc = ctlb_check_and_write(o.out, data, len, &key.pub);
out:
    bdl_privkey_wipe(&key);
    bdl_free(b);
    free(src);
    free(in);
    free(data);
    return rc;
}

static int
ctlb_verify(int argc, char **argv)
{
    struct ctlb_opts o;
    struct bdl_pubkey keys[CTLB_MAX_KEYS];
    struct bdl *b;
    uint8_t *in;
    size_t in_len;
    uint64_t min = 0;
    char err[512];
    int rc = ctlb_parse(argc, argv, " key+ min-version ARG ", &o);

    if (rc != CTLB_OK)
        return rc;
    if (o.n_keys == 0 || !o.arg)
        return ctlb_usage_err("--key and a bundle file are required");
    if (o.min_version && ctlb_u64(o.min_version, "--min-version", 0, &min) != CTLB_OK)
        return CTLB_USAGE;
    for (size_t i = 0; i < o.n_keys; i++)
        if (bdl_pubkey_load(o.keys[i], &keys[i], err, sizeof(err)) != CAT_OK)
            return ctlb_fail("%s", err);
    if (ctlb_read(o.arg, BDL_MAX_SIZE, &in, &in_len) != CTLB_OK)
        return CTLB_FAIL;
    b = bdl_parse_verify(in, in_len, keys, o.n_keys, min, err, sizeof(err));
    free(in);
    if (b == NULL)
        return ctlb_fail("%s: refused: %s", o.arg, err);
    ctlb_print(o.arg, b);
    bdl_free(b);
    return CTLB_OK;
}

/* --- push: one HTTP/1.1 PUT over a blocking socket ---------------------------------------- */

struct ctlb_url {
    char host[256]; /* without brackets */
    char port[8];
    char path[1024];
    bool v6;
};

static int
ctlb_parse_url(const char *u, struct ctlb_url *out)
{
    const char *p, *host_end, *path;
    size_t hl;

    memset(out, 0, sizeof(*out));
    if (strncmp(u, "http://", 7) != 0)
        return ctlb_usage_err("--url must start with http:// (the admin endpoint is plain HTTP; "
                              "use loopback or a tunnel)");
    p = u + 7;
    path = strchr(p, '/');
    if (path == NULL)
        path = p + strlen(p);
    if (*p == '[') {
        host_end = memchr(p, ']', (size_t)(path - p));
        if (host_end == NULL)
            return ctlb_usage_err("--url: unterminated '[' in '%s'", u);
        hl = (size_t)(host_end - p - 1);
        if (hl == 0 || hl >= sizeof(out->host))
            return ctlb_usage_err("--url: bad host in '%s'", u);
        memcpy(out->host, p + 1, hl);
        out->v6 = true;
        p = host_end + 1;
    } else {
        host_end = memchr(p, ':', (size_t)(path - p));
        if (host_end == NULL)
            host_end = path;
        hl = (size_t)(host_end - p);
        if (hl == 0 || hl >= sizeof(out->host))
            return ctlb_usage_err("--url: bad host in '%s'", u);
        memcpy(out->host, p, hl);
        p = host_end;
    }
    if (*p == ':') {
        size_t pl = (size_t)(path - p - 1);
        uint64_t port = 0;
        if (pl == 0 || pl > 5)
            return ctlb_usage_err("--url: bad port in '%s'", u);
        for (size_t i = 0; i < pl; i++) {
            if (p[1 + i] < '0' || p[1 + i] > '9')
                return ctlb_usage_err("--url: bad port in '%s'", u);
            port = port * 10 + (uint64_t)(p[1 + i] - '0');
        }
        if (port == 0 || port > 65535)
            return ctlb_usage_err("--url: bad port in '%s'", u);
        snprintf(out->port, sizeof(out->port), "%u", (unsigned)port);
    } else if (p != path) {
        return ctlb_usage_err("--url: bad host in '%s'", u);
    } else {
        snprintf(out->port, sizeof(out->port), "80");
    }
    if (*path == '\0')
        path = "/bundle";
    if (strlen(path) >= sizeof(out->path))
        return ctlb_usage_err("--url: path too long");
    for (const char *c = path; *c; c++)
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f || *c == '#')
            return ctlb_usage_err("--url: path must be plain visible ASCII without '#'");
    snprintf(out->path, sizeof(out->path), "%s", path);
    for (const char *c = out->host; *c; c++)
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f || *c == '@' || *c == '/')
            return ctlb_usage_err("--url: bad host in '%s'", u);
    return CTLB_OK;
}

/* The token is a secret like the signing key: the file must not be readable by others. */
static int
ctlb_read_token(const char *path, char *tok, size_t cap)
{
    struct stat st;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd == -1)
        return ctlb_fail("%s: %s", path, strerror(errno));
    if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ctlb_fail("%s: not a regular file", path);
    }
    if ((st.st_mode & 077) != 0) {
        close(fd);
        return ctlb_fail("%s: token file is accessible by group or others (mode %04o); chmod "
                         "600 it",
                         path, (unsigned)(st.st_mode & 07777));
    }
    n = read(fd, tok, cap - 1);
    close(fd);
    if (n == -1)
        return ctlb_fail("%s: %s", path, strerror(errno));
    if ((size_t)n == cap - 1)
        return ctlb_fail("%s: token too long", path);
    tok[n] = '\0';
    while (n > 0 && (tok[n - 1] == '\n' || tok[n - 1] == '\r' || tok[n - 1] == ' '))
        tok[--n] = '\0';
    if (n == 0)
        return ctlb_fail("%s: empty token", path);
    for (ssize_t i = 0; i < n; i++)
        if ((unsigned char)tok[i] <= 0x20 || (unsigned char)tok[i] >= 0x7f)
            return ctlb_fail("%s: the token must be one line of visible ASCII", path);
    return CTLB_OK;
}

static int
ctlb_connect(const struct ctlb_url *u)
{
    struct addrinfo hints = {0}, *res, *ai;
    struct timeval tv = {.tv_sec = CTLB_TIMEOUT_S};
    int fd = -1, rc;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    rc = getaddrinfo(u->host, u->port, &hints, &res);
    if (rc != 0) {
        ctlb_fail("%s: %s", u->host, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd == -1)
            continue;
        /* On Linux SO_SNDTIMEO also bounds connect(). */
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        rc = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd == -1)
        ctlb_fail("connect to %s port %s: %s", u->host, u->port, strerror(rc ? rc : ECONNREFUSED));
    return fd;
}

static int
ctlb_send_all(int fd, const void *p, size_t len)
{
    const uint8_t *b = p;

    while (len > 0) {
        ssize_t n = send(fd, b, len, MSG_NOSIGNAL);
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        b += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Case-insensitive search for a header's value in the response head; NULL if absent. */
static const char *
ctlb_header(const char *head, size_t head_len, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    const char *p = memchr(head, '\n', head_len), *end = head + head_len;

    while (p != NULL && p + 1 < end) {
        const char *line = p + 1, *eol = memchr(line, '\n', (size_t)(end - line));
        if (eol == NULL)
            eol = end;
        if ((size_t)(eol - line) > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        p = eol < end ? eol : NULL;
    }
    return NULL;
}

/* Writes a chunked body's payload to stdout; false if the framing is broken. */
static bool
ctlb_print_chunked(const char *p, size_t len)
{
    const char *end = p + len;

    for (int guard = 0; guard < 100000 && p < end; guard++) {
        char *e;
        unsigned long n = strtoul(p, &e, 16);
        const char *crlf = memchr(p, '\n', (size_t)(end - p));
        if (e == p || crlf == NULL)
            return false;
        p = crlf + 1;
        if (n == 0)
            return true;
        if (n > (size_t)(end - p))
            return false;
        fwrite(p, 1, n, stdout);
        p += n;
        if (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
            p += 2;
        else
            return false;
    }
    return false;
}

static int
ctlb_push(int argc, char **argv)
{
    struct ctlb_opts o;
    struct ctlb_url u;
    uint8_t *data = NULL;
    char tok[4096], head[8192 + 512], *resp = NULL, hostport[300];
    size_t len, rlen = 0;
    int fd = -1, rc = ctlb_parse(argc, argv, " url token-file ARG ", &o);

    if (rc != CTLB_OK)
        return rc;
    if (!o.url || !o.token_file || !o.arg)
        return ctlb_usage_err("--url, --token-file and a bundle file are required");
    if (ctlb_parse_url(o.url, &u) != CTLB_OK)
        return CTLB_USAGE;
    if (ctlb_read_token(o.token_file, tok, sizeof(tok)) != CTLB_OK)
        return CTLB_FAIL;
    rc = CTLB_FAIL;
    if (ctlb_read(o.arg, BDL_MAX_SIZE, &data, &len) != CTLB_OK)
        goto out;
    if (strcmp(u.port, "80") == 0)
        snprintf(hostport, sizeof(hostport), u.v6 ? "[%s]" : "%s", u.host);
    else
        snprintf(hostport, sizeof(hostport), u.v6 ? "[%s]:%s" : "%s:%s", u.host, u.port);
    int hl = snprintf(head, sizeof(head),
                      "PUT %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
                      "Content-Type: application/octet-stream\r\nContent-Length: %zu\r\n"
                      "User-Agent: catenactl/%s\r\nConnection: close\r\n\r\n",
                      u.path, hostport, tok, len, CATENA_VERSION);
    explicit_bzero(tok, sizeof(tok));
    if (hl < 0 || (size_t)hl >= sizeof(head)) {
        ctlb_fail("request head too long");
        goto out;
    }
    fd = ctlb_connect(&u);
    if (fd == -1)
        goto out;
    /* A server that refuses early may close before the body is sent; its answer still counts. */
    if (ctlb_send_all(fd, head, (size_t)hl) != 0 || ctlb_send_all(fd, data, len) != 0)
        fprintf(stderr, "catenactl bundle: sending to %s: %s (reading the answer anyway)\n",
                hostport, strerror(errno));
    explicit_bzero(head, sizeof(head));
    shutdown(fd, SHUT_WR);
    resp = malloc(CTLB_MAX_RESPONSE + 1);
    if (resp == NULL) {
        ctlb_fail("out of memory");
        goto out;
    }
    for (;;) {
        ssize_t n = recv(fd, resp + rlen, CTLB_MAX_RESPONSE - rlen, 0);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1) {
            ctlb_fail("reading from %s: %s", hostport, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        rlen += (size_t)n;
        if (rlen == CTLB_MAX_RESPONSE)
            break;
    }
    resp[rlen] = '\0';
    {
        const char *eol = memchr(resp, '\n', rlen), *body, *v;
        const char *hend = memmem(resp, rlen, "\r\n\r\n", 4);
        size_t sl, vl;
        int status;

        if (eol == NULL || rlen < 12 || strncmp(resp, "HTTP/1.", 7) != 0 ||
            sscanf(resp + 9, "%3d", &status) != 1) {
            ctlb_fail("%s: no HTTP response", hostport);
            goto out;
        }
        sl = (size_t)(eol - resp);
        if (sl > 0 && resp[sl - 1] == '\r')
            sl--;
        printf("%.*s\n", (int)sl, resp);
        if (hend != NULL) {
            size_t head_len = (size_t)(hend - resp) + 2;
            body = hend + 4;
            size_t blen = rlen - (size_t)(body - resp);
            if ((v = ctlb_header(resp, head_len, "Transfer-Encoding", &vl)) != NULL && vl == 7 &&
                strncasecmp(v, "chunked", 7) == 0) {
                if (!ctlb_print_chunked(body, blen))
                    fprintf(stderr, "catenactl bundle: malformed chunked body\n");
            } else {
                if ((v = ctlb_header(resp, head_len, "Content-Length", &vl)) != NULL) {
                    unsigned long long cl = strtoull(v, NULL, 10);
                    if (cl < blen)
                        blen = (size_t)cl;
                }
                fwrite(body, 1, blen, stdout);
            }
            if (blen > 0 && body[blen - 1] != '\n')
                putchar('\n');
        }
        rc = status >= 200 && status <= 299 ? CTLB_OK : CTLB_FAIL;
    }
out:
    if (fd != -1)
        close(fd);
    free(data);
    free(resp);
    return rc;
}

int
ctl_bundle(int argc, char **argv)
{
    if (argc < 1)
        return ctlb_usage_err("'bundle' needs a subcommand: keygen, build, sign, verify, push");
    if (strcmp(argv[0], "help") == 0 || strcmp(argv[0], "--help") == 0) {
        fputs(ctlb_usage, stdout);
        return CTLB_OK;
    }
    if (strcmp(argv[0], "keygen") == 0)
        return ctlb_keygen(argc - 1, argv + 1);
    if (strcmp(argv[0], "build") == 0)
        return ctlb_build(argc - 1, argv + 1);
    if (strcmp(argv[0], "sign") == 0)
        return ctlb_sign(argc - 1, argv + 1);
    if (strcmp(argv[0], "verify") == 0)
        return ctlb_verify(argc - 1, argv + 1);
    if (strcmp(argv[0], "push") == 0)
        return ctlb_push(argc - 1, argv + 1);
    return ctlb_usage_err("unknown 'bundle' subcommand '%s'", argv[0]);
}
