/*
 * Byte movement: the buffer type every side uses, non-blocking reads and
 * writes between a socket and a buffer, and the spliced tunnel (bytes move
 * socket -> pipe -> socket inside the kernel, never through user space).
 */
#ifndef CATENA_CORE_RELAY_H
#define CATENA_CORE_RELAY_H

#include "core/attr.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* One direction's bytes: data is base[head .. head+len), free room after it. */
struct buf {
    uint8_t *base; /* owned; NULL until first needed */
    size_t head, len, cap;
};

/** Allocates the buffer's memory if it has none (cap bytes). CAT_ERR on OOM. */
int buf_reserve(struct buf *b, size_t cap) CAT_WUR CAT_NONNULL(1);
/** Frees the memory; the buffer is empty and unallocated after. */
void buf_free(struct buf *b) CAT_NONNULL(1);
/** Drops n bytes from the front. */
void buf_consume(struct buf *b, size_t n) CAT_NONNULL(1);
/** Room at the tail, after moving the data to the front if that gains room. */
size_t buf_room(struct buf *b) CAT_NONNULL(1);
/** Appends bytes; CAT_ERR if they do not fit. */
int buf_append(struct buf *b, const void *p, size_t n) CAT_WUR CAT_NONNULL(1);
/** Appends formatted text; CAT_ERR if it does not fit. */
int buf_printf(struct buf *b, const char *fmt, ...) CAT_WUR CAT_NONNULL(1, 2) CAT_PRINTF(2, 3);

static inline uint8_t *
buf_data(const struct buf *b)
{
    return b->base + b->head;
}

/*
 * Socket I/O into and out of buffers. Results: > 0 bytes moved, 0 for EOF
 * (reads only), CAT_AGAIN (would block), CAT_ERR (errno says why).
 */
ssize_t relay_read(int fd, struct buf *b) CAT_NONNULL(2);
ssize_t relay_write(int fd, const uint8_t *p, size_t n) CAT_NONNULL(2);

/* A spliced tunnel: one pipe per direction (bounded by its size). */
enum relay_dir { RELAY_C2S = 0, RELAY_S2C = 1 };

struct relay_pipe {
    int rd, wr;    /* owned pipe ends */
    size_t len;    /* bytes in the pipe */
    bool src_eof;  /* the source sent its FIN */
    bool dst_shut; /* we shut down writing to the destination */
    bool blocked_rd; /* last splice from the source would block */
    bool blocked_wr; /* last splice to the destination would block */
};

struct relay_tunnel {
    struct relay_pipe p[2];
    size_t pipe_size;
    int64_t moved[2]; /* bytes delivered per direction */
};

/** Makes both pipes with F_SETPIPE_SZ pipe_size. NULL and errno on failure. */
struct relay_tunnel *relay_tunnel_new(size_t pipe_size) CAT_WUR;
void relay_tunnel_free(struct relay_tunnel *t);

/**
 * Moves what can move without blocking in both directions between cli_fd and
 * srv_fd, half-closing a destination once its source ended and its pipe is
 * empty. CAT_OK: the tunnel is finished (both directions ended); CAT_AGAIN:
 * *cli_events / *srv_events say what to wait for; CAT_ERR: an I/O error
 * (errno). *moved is set if any byte moved (for idle timers).
 */
int relay_tunnel_pump(struct relay_tunnel *t, int cli_fd, int srv_fd, int *cli_events,
                      int *srv_events, bool *moved) CAT_WUR CAT_NONNULL(1, 4, 5, 6);

#endif
