/*
 * core/pipe_pool.h - pipes for splice(2), kept for reuse: a reactor moves
 * file bytes to a socket through a pipe (file -> pipe -> socket, no copy
 * through user space) and needs one pipe per connection while it sends.
 * Making a pipe costs two syscalls and two fds, so empty pipes go back to
 * the pool; a pipe that may still hold bytes is closed instead.
 *
 * Bounded: at most live_max pipes exist at once (take answers -EAGAIN
 * beyond; the caller waits for a give) and at most PIPE_POOL_IDLE_MAX wait
 * unused. One thread (the reactor's); not thread-safe.
 */
#ifndef TOASTER_CORE_PIPE_POOL_H
#define TOASTER_CORE_PIPE_POOL_H

#include <stdbool.h>
#include <stdint.h>

#define PIPE_POOL_IDLE_MAX 64u

struct pipe_pair {
    int read_fd;
    int write_fd;
    /* Bytes the pipe holds (F_GETPIPE_SZ): 64 KiB by default, 8 KiB for
     * an unprivileged user past fs.pipe-user-pages-soft. */
    uint32_t capacity;
};

struct pipe_pool {
    struct pipe_pair idle[PIPE_POOL_IDLE_MAX];
    uint32_t idle_count;
    uint32_t live;     /* pipes that exist: idle and taken */
    uint32_t live_max;
};

void pipe_pool_init(struct pipe_pool *pool, uint32_t live_max);

/* An empty pipe into *pair. Returns 0, -EAGAIN (live_max pipes exist) or
 * the -errno of pipe2(). */
int pipe_pool_take(struct pipe_pool *pool, struct pipe_pair *pair);

/* Give a taken pipe back: kept for reuse when is_empty (nothing was left
 * in it) and there is room, else closed. *pair is reset to -1. */
void pipe_pool_give(struct pipe_pool *pool, struct pipe_pair *pair, bool is_empty);

/* Close every idle pipe. Taken pipes must have been given back. */
void pipe_pool_destroy(struct pipe_pool *pool);

#endif
