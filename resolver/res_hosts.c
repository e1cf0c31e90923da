/*
 * The hosts file (hosts(5)): read once when a resolver is made (a config
 * reload makes a new resolver, so a new read), then a read-only table from
 * lowercased name to every address listed for it, in file order. Input is
 * bounded: lines over RES_HOSTS_LINE_MAX are skipped, and only the first
 * RES_HOSTS_FILE_MAX bytes of a file are read; both are warnings, as are bad
 * lines and a missing file, so a sloppy hosts file never stops the proxy.
 */
#include "resolver/res_int.h"

#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Past this many, bad lines are counted, not each logged. */
#define RES_HOSTS_WARN_MAX 10

struct res_hent {
    struct res_hnode node; /* node.key points at key[] */
    struct res_hent *next_all;
    struct res_caddr *addrs; /* owned */
    uint8_t n, cap;
    char key[];
};

int
res_hosts_init(struct res_hosts *h, const uint64_t seed[2])
{
    memset(h, 0, sizeof(*h));
    return res_htab_init(&h->tab, 64, seed);
}

void
res_hosts_fini(struct res_hosts *h)
{
    struct res_hent *e = h->all;
    while (e != NULL) {
        struct res_hent *next = e->next_all;
        free(e->addrs);
        free(e);
        e = next;
    }
    h->all = NULL;
    h->n_names = h->n_addrs = 0;
    res_htab_fini(&h->tab);
}

static struct res_hent *
res_hosts_find(const struct res_hosts *h, const char *key)
{
    struct res_hnode *n = res_htab_find(&h->tab, key, res_htab_hash(&h->tab, key));
    return n != NULL ? CAT_CONTAINER_OF(n, struct res_hent, node) : NULL;
}

static int
res_hosts_add(struct res_hosts *h, const char *key, const struct res_caddr *a)
{
    struct res_hent *e = res_hosts_find(h, key);
    if (e == NULL) {
        size_t klen = strlen(key);
        e = calloc(1, sizeof(*e) + klen + 1);
        if (e == NULL)
            return CAT_ERR;
        memcpy(e->key, key, klen + 1);
        e->node.key = e->key;
        e->node.hash = res_htab_hash(&h->tab, key);
        res_htab_insert(&h->tab, &e->node);
        e->next_all = h->all;
        h->all = e;
        h->n_names++;
    }
    /* More than an answer can carry would never be used. */
    if (e->n >= RES_MAX_ADDRS)
        return CAT_OK;
    for (size_t i = 0; i < e->n; i++)
        if (memcmp(&e->addrs[i], a, sizeof(*a)) == 0)
            return CAT_OK;
    if (e->n == e->cap) {
        uint8_t cap = e->cap == 0 ? 1 : (uint8_t)CAT_MIN(e->cap * 2, RES_MAX_ADDRS);
        struct res_caddr *addrs = realloc(e->addrs, cap * sizeof(*addrs));
        if (addrs == NULL)
            return CAT_ERR;
        e->addrs = addrs;
        e->cap = cap;
    }
    e->addrs[e->n++] = *a;
    h->n_addrs++;
    return CAT_OK;
}

static void
res_hosts_warn(size_t *nbad, const char *origin, size_t lineno, const char *why)
{
    if (++*nbad <= RES_HOSTS_WARN_MAX)
        log_warn(LOG_FAC_MAIN, NULL, "resolver: %s:%zu: %s, line skipped", origin, lineno, why);
}

#define RES_HOSTS_SPACE " \t\r\f\v"

/* One line, NUL-terminated, comment and all. CAT_ERR only on OOM. */
static int
res_hosts_line(struct res_hosts *h, char *line, const char *origin, size_t lineno, size_t *nbad)
{
    char *hash = strchr(line, '#');
    if (hash != NULL)
        *hash = '\0';
    char *save = NULL;
    char *tok = strtok_r(line, RES_HOSTS_SPACE, &save);
    if (tok == NULL)
        return CAT_OK; /* blank or comment only */
    struct res_caddr a;
    if (!res_literal(tok, &a)) {
        res_hosts_warn(nbad, origin, lineno, "not an IP address");
        return CAT_OK;
    }
    bool any = false;
    while ((tok = strtok_r(NULL, RES_HOSTS_SPACE, &save)) != NULL) {
        char key[RES_KEY_SIZE];
        if (!res_name_norm(tok, key)) {
            log_debug(LOG_FAC_MAIN, NULL, "resolver: %s:%zu: \"%.64s\" is not a host name", origin,
                      lineno, tok);
            continue;
        }
        if (res_hosts_add(h, key, &a) != CAT_OK)
            return CAT_ERR;
        any = true;
    }
    if (!any)
        res_hosts_warn(nbad, origin, lineno, "no valid host name");
    return CAT_OK;
}

int
res_hosts_parse(struct res_hosts *h, const char *text, size_t len, const char *origin)
{
    char line[RES_HOSTS_LINE_MAX + 1];
    size_t nbad = 0, lineno = 0, pos = 0;

    while (pos < len) {
        const char *start = text + pos;
        const char *nl = memchr(start, '\n', len - pos);
        size_t llen = nl != NULL ? (size_t)(nl - start) : len - pos;
        pos += llen + (nl != NULL);
        lineno++;
        if (llen > RES_HOSTS_LINE_MAX) {
            res_hosts_warn(&nbad, origin, lineno, "line too long");
            continue;
        }
        if (memchr(start, '\0', llen) != NULL) {
            res_hosts_warn(&nbad, origin, lineno, "NUL byte");
            continue;
        }
        memcpy(line, start, llen);
        line[llen] = '\0';
        if (res_hosts_line(h, line, origin, lineno, &nbad) != CAT_OK)
            return CAT_ERR;
    }
    if (nbad > RES_HOSTS_WARN_MAX)
        log_warn(LOG_FAC_MAIN, NULL,
                 "resolver: %s: %zu bad lines in all (only the first %d logged)", origin, nbad,
                 RES_HOSTS_WARN_MAX);
    return CAT_OK;
}

int
res_hosts_load(struct res_hosts *h, const char *path, char *err, size_t errlen)
{
    char *buf = NULL;
    int rc = CAT_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd == -1) {
        log_warn(LOG_FAC_MAIN, NULL, "resolver: hosts file %s: %s; using none", path,
                 strerror(errno));
        return CAT_OK;
    }
    struct stat st;
    if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
        /* A FIFO or device could block or never end. */
        log_warn(LOG_FAC_MAIN, NULL, "resolver: hosts file %s: not a regular file; using none",
                 path);
        goto out;
    }
    size_t want = (size_t)st.st_size;
    bool truncated = false;
    if (st.st_size > (off_t)RES_HOSTS_FILE_MAX) {
        want = RES_HOSTS_FILE_MAX;
        truncated = true;
    }
    buf = malloc(want + 1);
    if (buf == NULL) {
        snprintf(err, errlen, "hosts file %s: out of memory", path);
        rc = CAT_ERR;
        goto out;
    }
    size_t got = 0;
    while (got < want) {
        ssize_t n = read(fd, buf + got, want - got);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1) {
            log_warn(LOG_FAC_MAIN, NULL, "resolver: hosts file %s: %s; using none", path,
                     strerror(errno));
            goto out;
        }
        if (n == 0)
            break; /* shrank under us: use what is there */
        got += (size_t)n;
    }
    if (truncated) {
        /* Drop the partial last line rather than read half a name. */
        while (got > 0 && buf[got - 1] != '\n')
            got--;
        log_warn(LOG_FAC_MAIN, NULL,
                 "resolver: hosts file %s: larger than %u bytes; only the first %zu read", path,
                 RES_HOSTS_FILE_MAX, got);
    }
    if (res_hosts_parse(h, buf, got, path) != CAT_OK) {
        snprintf(err, errlen, "hosts file %s: out of memory", path);
        rc = CAT_ERR;
        goto out;
    }
    log_debug(LOG_FAC_MAIN, NULL, "resolver: hosts file %s: %zu names, %zu addresses", path,
              h->n_names, h->n_addrs);
out:
    free(buf);
    close(fd);
    return rc;
}

bool
res_hosts_get(const struct res_hosts *h, const char *key, enum cfg_family f, struct res_answer *out)
{
    const struct res_hent *e = res_hosts_find(h, key);
    if (e == NULL)
        return false;
    struct res_caddr want[RES_MAX_ADDRS];
    size_t n = 0;
    for (size_t i = 0; i < e->n; i++)
        if (res_family_ok(f, e->addrs[i].family))
            want[n++] = e->addrs[i];
    if (n == 0)
        return false; /* as glibc: a name listed only for the other family goes to DNS */
    res_order(want, n, out);
    return true;
}
