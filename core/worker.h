/*
 * Workers: threads each running their own libev loop with their own
 * listening sockets (SO_REUSEPORT: the kernel spreads new connections), their
 * own resolver and their own connections. Nothing on the hot path is shared
 * between workers except the emulated-certificate cache and a connection
 * counter. The main thread owns process state: it binds every socket (so a
 * bind error refuses a config synchronously), handles signals, and hands
 * each worker a new config snapshot on reload.
 */
#ifndef CATENA_CORE_WORKER_H
#define CATENA_CORE_WORKER_H

#include "core/attr.h"
#include "core/cfg.h"
#include "core/dlist.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <ev.h>

struct conn;
struct res;
struct tls_conf;
struct rev_ctx;
struct pull;

/* One listening socket of one worker. */
struct lsn {
    int fd;                      /* owned by the worker */
    enum cfg_listener_type type;
    char text[80];               /* "127.0.0.1:3128", as configured */
    bool fresh;                  /* bound for a pending update: closed if it fails */
    ev_io io;
    ev_timer pause;              /* accept paused after EMFILE/ENFILE */
    struct worker *w;            /* borrowed */
};

/* What the main thread hands a worker on reload. */
struct worker_update {
    struct cfg *cfg;             /* ref, taken over by the worker */
    struct tls_conf *tls;        /* ref, taken over by the worker */
    struct lsn *lsns;            /* owned array of n_lsns (fds inside) */
    size_t n_lsns;
};

struct worker {
    unsigned idx;
    pthread_t thread;
    struct ev_loop *loop;        /* owned */
    ev_async wake;               /* main -> worker: update, drain, stop */
    ev_prepare reap;             /* deferred free of closed connections */
    ev_timer drain_timer;        /* end of the drain grace period */

    pthread_mutex_t mtx;         /* guards the pending fields below */
    struct worker_update *pending; /* owned until taken */
    bool drain_req;              /* SIGTERM received */

    struct cfg *cfg;             /* ref: config for new connections */
    struct tls_conf *tls;        /* ref: its TLS state */
    struct res *res;             /* owned: resolver built from cfg->resolver */
    struct rev_ctx *rev;         /* owned: revocation checks on this loop (uses res) */
    struct pull *pull;           /* owned: the bundle puller (worker 0 only) */
    struct lsn *lsns;            /* owned array */
    size_t n_lsns;
    bool draining;

    struct dlist conns;          /* live connections (struct conn, by link) */
    struct conn *free_list;      /* closed, to free after callbacks unwind */
    unsigned n_conns;
    uint64_t next_id;
};

/** Total client connections over all workers (limits.max_connections). */
extern atomic_uint worker_conn_count;

/**
 * Starts n workers with cfg and listeners bound from it. Fatal errors are
 * written to err. The workers run until worker_stop_all().
 */
int workers_start(struct cfg *cfg, struct tls_conf *tls, char *err, size_t errlen) CAT_WUR
    CAT_NONNULL(1, 2, 3);

/**
 * Reload: binds the new config's listeners (reusing sockets whose address
 * and type are unchanged), then hands every worker the new snapshot.
 * CAT_ERR (err says why) leaves the running config untouched.
 */
int workers_reload(struct cfg *cfg, struct tls_conf *tls, char *err, size_t errlen) CAT_WUR
    CAT_NONNULL(1, 2, 3);

/** SIGTERM: stop accepting, finish open connections within cfg drain, then stop. */
void workers_drain(void);
/** Waits for every worker thread to end and frees them. */
void workers_join(void);

/* ---- inside a worker ---------------------------------------------------- */

/** Queues a closed connection for freeing after the current callbacks. */
void worker_defer_free(struct worker *w, struct conn *c) CAT_NONNULL(1, 2);
/** True once SIGTERM reached this worker: no new requests on kept-alive connections. */
bool worker_is_draining(const struct worker *w) CAT_NONNULL(1);
/** Links/unlinks a connection in the worker's live list and the counters. */
void worker_conn_add(struct worker *w, struct conn *c) CAT_NONNULL(1, 2);
void worker_conn_remove(struct worker *w, struct conn *c) CAT_NONNULL(1, 2);

#endif
