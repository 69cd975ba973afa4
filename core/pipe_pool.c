/*
 * core/pipe_pool.c - reusable pipes for splice(2); see pipe_pool.h.
 */
#define _GNU_SOURCE
#include "core/pipe_pool.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "core/assertions.h"

void
pipe_pool_init(struct pipe_pool *pool, uint32_t live_max)
{
    ASSERT(pool != NULL && live_max > 0);
    memset(pool, 0, sizeof(*pool));
    pool->live_max = live_max;
}

int
pipe_pool_take(struct pipe_pool *pool, struct pipe_pair *pair)
{
    ASSERT(pool != NULL && pair != NULL);
    if (pool->idle_count > 0) {
        *pair = pool->idle[--pool->idle_count];
        return 0;
    }
    if (pool->live >= pool->live_max) {
        return -EAGAIN;
    }
    int fds[2];
    /* Blocking ends: io_uring runs splice on its own workers, and the
     * sender never asks a pipe for more than it holds or has room for. */
    if (pipe2(fds, O_CLOEXEC) != 0) {
        return -errno;
    }
    pair->read_fd = fds[0];
    pair->write_fd = fds[1];
    int capacity = fcntl(fds[1], F_GETPIPE_SZ);
    pair->capacity = capacity > 0 ? (uint32_t)capacity : 4096u;
    pool->live++;
    return 0;
}

void
pipe_pool_give(struct pipe_pool *pool, struct pipe_pair *pair, bool is_empty)
{
    ASSERT(pool != NULL && pair != NULL);
    ASSERT(pair->read_fd >= 0 && pair->write_fd >= 0);
    ASSERT(pool->live > pool->idle_count);
    if (is_empty && pool->idle_count < PIPE_POOL_IDLE_MAX) {
        pool->idle[pool->idle_count++] = *pair;
    } else {
        (void)close(pair->read_fd);
        (void)close(pair->write_fd);
        pool->live--;
    }
    pair->read_fd = -1;
    pair->write_fd = -1;
}

void
pipe_pool_destroy(struct pipe_pool *pool)
{
    ASSERT(pool != NULL);
    ASSERT(pool->live == pool->idle_count);
    for (uint32_t i = 0; i < pool->idle_count; i++) {
        (void)close(pool->idle[i].read_fd);
        (void)close(pool->idle[i].write_fd);
    }
    pool->live = 0;
    pool->idle_count = 0;
}
