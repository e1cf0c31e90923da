/*
 * Internals of the resolver, shared by res.c, res_cache.c, res_hosts.c and
 * test/unit/res_test.c: names and literals, answer ordering, a keyed hash
 * table, the answer cache (the time is a parameter, so tests need no loop),
 * the hosts table, and struct res itself so tests can look inside.
 * Never included from outside resolver/ (and its unit test).
 */
#ifndef CATENA_RESOLVER_RES_INT_H
#define CATENA_RESOLVER_RES_INT_H

#include "resolver/res.h"

#include "core/dlist.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ares.h>
#include <ev.h>

/* RFC 1035 2.3.4: 255 octets on the wire is 253 characters of text (no trailing dot). */
#define RES_NAME_MAX 253
#define RES_KEY_SIZE (RES_NAME_MAX + 1)
#define RES_LABEL_MAX 63

#define RES_HOSTS_LINE_MAX 4096u              /* longer lines are skipped with a warning */
#define RES_HOSTS_FILE_MAX (4u * 1024 * 1024) /* the rest of a longer file is ignored */

/* ---- names, literals, addresses ---------------------------------------- */

/** One address without a port: what the cache and the hosts table keep. */
struct res_caddr {
    uint8_t family; /* AF_INET or AF_INET6 */
    uint8_t a[16];  /* network order; an IPv4 address uses a[0..3], the rest is zero */
};

/**
 * Checks that host is a DNS name (labels of 1..63 letters, digits, '-', '_';
 * at most 253 characters plus an optional trailing dot; last label not all
 * digits) and writes its cache key: lowercased, trailing dot dropped.
 */
bool res_name_norm(const char *host, char key[RES_KEY_SIZE]) CAT_NONNULL(1, 2);

/** Parses an IPv4 dotted quad or an IPv6 literal (no brackets, no scope). */
bool res_literal(const char *host, struct res_caddr *a) CAT_NONNULL(1, 2);

/** True if addresses of family af (AF_INET/AF_INET6) are wanted under f. */
bool res_family_ok(enum cfg_family f, int af);

/** sockaddr (port ignored) to a res_caddr; false for another family. */
bool res_caddr_from_sa(const struct sockaddr *sa, struct res_caddr *a) CAT_NONNULL(1, 2);

/** Appends a (port 0) to out unless it is already there or out is full. */
void res_answer_add(struct res_answer *out, const struct res_caddr *a) CAT_NONNULL(1, 2);

/**
 * Fills out (err RES_OK, port 0) from in, given in the order the source
 * returned them: families alternate, starting with in[0]'s, each family
 * keeping its own order (RFC 8305 4, without the timer); duplicates dropped;
 * at most RES_MAX_ADDRS.
 */
void res_order(const struct res_caddr *in, size_t n, struct res_answer *out) CAT_NONNULL(3);

/** The positive cache lifetime: ttl raised to min_s, then capped at max_s. */
unsigned res_ttl_clamp(long ttl, unsigned min_s, unsigned max_s);

/** A server string ("ip", "ip:port", "[v6]", "[v6]:port") parsed. */
struct res_server {
    struct res_caddr addr;
    uint16_t port; /* host order; 53 if not given */
};

/** Parses one server string; CAT_ERR with a reason in err. */
int res_server_parse(const char *s, struct res_server *out, char *err, size_t errlen) CAT_WUR
    CAT_NONNULL(1, 2, 3);

/* ---- keyed hash table --------------------------------------------------- */

/** SipHash-2-4 of data under the 128-bit key (k[0] from key bytes 0..7, little endian). */
uint64_t res_siphash(const uint64_t k[2], const void *data, size_t len) CAT_NONNULL(1);

/*
 * An intrusive chained table of NUL-terminated string keys. The hash is keyed
 * with a per-resolver random secret because names come from clients: an
 * unkeyed hash would let one client pile every name into one chain.
 */
struct res_hnode {
    struct res_hnode *hnext;
    uint64_t hash;
    const char *key; /* borrowed: stored in the object that embeds the node */
};

struct res_htab {
    struct res_hnode **b; /* owned: nb chains */
    size_t nb;            /* a power of two */
    size_t n;
    uint64_t seed[2];
};

int res_htab_init(struct res_htab *t, size_t hint, const uint64_t seed[2]) CAT_WUR
    CAT_NONNULL(1, 3);
void res_htab_fini(struct res_htab *t) CAT_NONNULL(1);
uint64_t res_htab_hash(const struct res_htab *t, const char *key) CAT_NONNULL(1, 2);
/** The node whose key equals key (hash from res_htab_hash), or NULL. */
struct res_hnode *res_htab_find(const struct res_htab *t, const char *key, uint64_t hash)
    CAT_NONNULL(1, 2);
/** Links n (hash and key set, key not yet present). Growing may fail: chains get longer. */
void res_htab_insert(struct res_htab *t, struct res_hnode *n) CAT_NONNULL(1, 2);
void res_htab_remove(struct res_htab *t, struct res_hnode *n) CAT_NONNULL(1, 2);

/* ---- the cache ----------------------------------------------------------- */

struct res_centry;

/** Answers by key, LRU-bounded; now is in seconds (ev_now() in production). */
struct res_cache {
    struct res_htab tab;
    struct dlist lru; /* owned: struct res_centry, most recently used first */
    size_t n, max;    /* max 0: the cache is off */
};

int res_cache_init(struct res_cache *c, size_t max, const uint64_t seed[2]) CAT_WUR
    CAT_NONNULL(1, 3);
void res_cache_fini(struct res_cache *c) CAT_NONNULL(1);
/** A fresh entry for key fills *out (port 0) and becomes most recent; a stale one is dropped. */
bool res_cache_get(struct res_cache *c, const char *key, double now, struct res_answer *out)
    CAT_NONNULL(1, 2, 4);
/** Keeps ans (an address list or a failure, err set) for ttl_s seconds, evicting the LRU. */
void res_cache_put(struct res_cache *c, const char *key, double now, const struct res_answer *ans,
                   unsigned ttl_s) CAT_NONNULL(1, 2, 4);
/** When key's entry expires, or a negative number if there is none (tests). */
double res_cache_expiry(const struct res_cache *c, const char *key) CAT_NONNULL(1, 2);

/* ---- the hosts table ---------------------------------------------------- */

struct res_hent;

struct res_hosts {
    struct res_htab tab;
    struct res_hent *all; /* owned: every entry, for freeing */
    size_t n_names, n_addrs;
};

int res_hosts_init(struct res_hosts *h, const uint64_t seed[2]) CAT_WUR CAT_NONNULL(1, 2);
/**
 * Reads path (a hosts(5) file) into h. A missing or unreadable file, bad
 * lines and the part of a file beyond RES_HOSTS_FILE_MAX are warnings, not
 * errors: CAT_ERR only when memory runs out (err says so).
 */
int res_hosts_load(struct res_hosts *h, const char *path, char *err, size_t errlen) CAT_WUR
    CAT_NONNULL(1, 2, 3);
/** Parses hosts(5) text; origin names it in warnings. CAT_ERR only on OOM. */
int res_hosts_parse(struct res_hosts *h, const char *text, size_t len, const char *origin) CAT_WUR
    CAT_NONNULL(1, 4);
void res_hosts_fini(struct res_hosts *h) CAT_NONNULL(1);
/** The key's addresses of the wanted families, ordered as res_order(); false if none. */
bool res_hosts_get(const struct res_hosts *h, const char *key, enum cfg_family f,
                   struct res_answer *out) CAT_NONNULL(1, 2, 4);

/* ---- the resolver --------------------------------------------------------- */

struct res_pend;

/* One socket c-ares asked us to watch. */
struct res_sock {
    ev_io io; /* io.data: the struct res */
    struct res_sock *next;
};

struct res {
    struct ev_loop *loop;              /* borrowed: the worker's */
    ares_channel ch;                   /* owned */
    struct res_sock *socks;            /* owned: c-ares's sockets */
    ev_timer tmo;                      /* c-ares's next timeout (ares_timeout) */
    ev_timer kick;                     /* delivers answers c-ares gave inside res_lookup() */
    struct res_htab pending;           /* struct res_pend by key, while its query is in flight */
    struct res_pend *done, *done_tail; /* owned: answered, callbacks not yet run */
    struct res_cache cache;
    struct res_hosts hosts;
    enum cfg_family family;
    unsigned min_ttl_s, max_ttl_s, negative_ttl_s;
    bool freeing; /* in res_free(): c-ares callbacks only clean up */
    struct res_stats st;
};

#endif
