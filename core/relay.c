/*
 * Byte movement. Buffers are plain arrays with a head offset; data moves to
 * the front only when room is needed and never while a write may be retried
 * from it (callers compact through buf_room() between writes, not during).
 *
 * Tunnels use splice(2): socket -> pipe -> socket, so a tunnel's payload
 * never enters user space and an idle tunnel holds no user-space buffer.
 * Each pipe is bounded (F_SETPIPE_SZ): when the destination is slow, the pipe
 * fills, splice from the source would block, and we stop reading the source:
 * that is the back-pressure.
 */
#include "core/relay.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

int
buf_reserve(struct buf *b, size_t cap)
{
    if (b->base != NULL)
        return CAT_OK;
    b->base = malloc(cap);
    if (b->base == NULL)
        return CAT_ERR;
    b->cap = cap;
    b->head = b->len = 0;
    return CAT_OK;
}

void
buf_free(struct buf *b)
{
    free(b->base);
    b->base = NULL;
    b->head = b->len = b->cap = 0;
}

void
buf_consume(struct buf *b, size_t n)
{
    CAT_ASSERT(n <= b->len);
    b->len -= n;
    b->head = b->len == 0 ? 0 : b->head + n;
}

size_t
buf_room(struct buf *b)
{
    if (b->base == NULL)
        return 0;
    if (b->head > 0 && b->head + b->len == b->cap) {
        memmove(b->base, b->base + b->head, b->len);
        b->head = 0;
    }
    return b->cap - b->head - b->len;
}

int
buf_append(struct buf *b, const void *p, size_t n)
{
    if (buf_room(b) < n)
        return CAT_ERR;
    memcpy(b->base + b->head + b->len, p, n);
    b->len += n;
    return CAT_OK;
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
    size_t room = buf_room(b);
    if (room == 0)
        return CAT_ERR;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf((char *)b->base + b->head + b->len, room, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= room)
        return CAT_ERR;
    b->len += (size_t)n;
    return CAT_OK;
}

ssize_t
relay_read(int fd, struct buf *b)
{
    size_t room = buf_room(b);
    if (room == 0)
        return CAT_AGAIN;
    for (;;) {
        ssize_t n = read(fd, b->base + b->head + b->len, room);
        if (n > 0) {
            b->len += (size_t)n;
            return n;
        }
        if (n == 0)
            return 0;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? CAT_AGAIN : CAT_ERR;
    }
}

ssize_t
relay_write(int fd, const uint8_t *p, size_t n)
{
    for (;;) {
        /* MSG_NOSIGNAL: a peer that went away must not raise SIGPIPE. */
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w >= 0)
            return w;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? CAT_AGAIN : CAT_ERR;
    }
}

struct relay_tunnel *
relay_tunnel_new(size_t pipe_size)
{
    struct relay_tunnel *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->pipe_size = pipe_size;
    for (int d = 0; d < 2; d++)
        t->p[d].rd = t->p[d].wr = -1;
    for (int d = 0; d < 2; d++) {
        int fds[2];
        if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == -1)
            goto fail;
        t->p[d].rd = fds[0];
        t->p[d].wr = fds[1];
        /* Best effort: an unprivileged process may be refused sizes above
         * /proc/sys/fs/pipe-max-size; the default (64 KiB) then bounds it. */
        int got = fcntl(fds[1], F_SETPIPE_SZ, (int)pipe_size);
        if (got > 0)
            t->pipe_size = (size_t)got;
        else
            t->pipe_size = 65536;
    }
    return t;
fail:
    relay_tunnel_free(t);
    return NULL;
}

void
relay_tunnel_free(struct relay_tunnel *t)
{
    if (t == NULL)
        return;
    for (int d = 0; d < 2; d++) {
        if (t->p[d].rd >= 0)
            close(t->p[d].rd);
        if (t->p[d].wr >= 0)
            close(t->p[d].wr);
    }
    free(t);
}

/* One direction: source -> pipe -> destination until both would block. */
static int
relay_pipe_pump(struct relay_tunnel *t, struct relay_pipe *p, int src, int dst, bool *moved)
{
    const unsigned fl = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
    p->blocked_rd = p->blocked_wr = false;
    /* Bounded: each pass moves at least a byte or stops. */
    for (int pass = 0; pass < 64; pass++) {
        bool progress = false;
        if (!p->src_eof && p->len < t->pipe_size) {
            ssize_t n = splice(src, NULL, p->wr, NULL, t->pipe_size - p->len, fl);
            if (n > 0) {
                p->len += (size_t)n;
                progress = true;
            } else if (n == 0) {
                p->src_eof = true;
            } else if (errno == EAGAIN) {
                p->blocked_rd = true;
            } else if (errno != EINTR) {
                return CAT_ERR;
            }
        }
        if (p->len > 0) {
            ssize_t n = splice(p->rd, NULL, dst, NULL, p->len, fl);
            if (n > 0) {
                p->len -= (size_t)n;
                t->moved[p == &t->p[RELAY_C2S] ? RELAY_C2S : RELAY_S2C] += n;
                progress = true;
                *moved = true;
            } else if (n == -1 && errno == EAGAIN) {
                p->blocked_wr = true;
            } else if (n == -1 && errno != EINTR) {
                return CAT_ERR;
            }
        }
        if (p->src_eof && p->len == 0 && !p->dst_shut) {
            /* Half-close: the destination learns the source is done, and may
             * still answer through the other direction. */
            if (shutdown(dst, SHUT_WR) == -1 && errno != ENOTCONN)
                return CAT_ERR;
            p->dst_shut = true;
        }
        if (!progress)
            break;
    }
    return CAT_OK;
}

int
relay_tunnel_pump(struct relay_tunnel *t, int cli_fd, int srv_fd, int *cli_events,
                  int *srv_events, bool *moved)
{
    *moved = false;
    if (relay_pipe_pump(t, &t->p[RELAY_C2S], cli_fd, srv_fd, moved) != CAT_OK)
        return CAT_ERR;
    if (relay_pipe_pump(t, &t->p[RELAY_S2C], srv_fd, cli_fd, moved) != CAT_OK)
        return CAT_ERR;

    const struct relay_pipe *c2s = &t->p[RELAY_C2S], *s2c = &t->p[RELAY_S2C];
    if (c2s->dst_shut && s2c->dst_shut)
        return CAT_OK;

    /* Read a source while its pipe has room; write a destination while its
     * pipe holds bytes the destination did not take. */
    *cli_events = 0;
    *srv_events = 0;
    if (!c2s->src_eof && c2s->len < t->pipe_size)
        *cli_events |= EV_READ;
    if (!s2c->src_eof && s2c->len < t->pipe_size)
        *srv_events |= EV_READ;
    if (c2s->len > 0)
        *srv_events |= EV_WRITE;
    if (s2c->len > 0)
        *cli_events |= EV_WRITE;
    return CAT_AGAIN;
}
