/*
 * tests/unit/test_pipe_pool.c - the splice pipe pool: empty pipes are
 * reused, pipes that may hold bytes are closed, the live bound answers
 * -EAGAIN until a pipe comes back, and nothing leaks (fds are counted).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "core/pipe_pool.h"
#include "tests/unit/unit.h"

int main(void);

static int
open_fds(void)
{
    int count = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) {
        return -1;
    }
    while (readdir(d) != NULL) {
        count++;
    }
    closedir(d);
    return count;
}

int
main(void)
{
    int fds_before = open_fds();
    struct pipe_pool pool;
    pipe_pool_init(&pool, 3);
    struct pipe_pair a, b, c, d;
    CHECK(pipe_pool_take(&pool, &a) == 0);
    CHECK(pipe_pool_take(&pool, &b) == 0);
    CHECK(pipe_pool_take(&pool, &c) == 0);
    CHECK(pipe_pool_take(&pool, &d) == -EAGAIN); /* the bound */
    CHECK(pool.live == 3);

    CHECK(a.capacity >= 4096 && a.capacity == (uint32_t)fcntl(a.write_fd, F_GETPIPE_SZ));
    /* A pipe works: bytes written come out. */
    CHECK(write(a.write_fd, "xyz", 3) == 3);
    char buf[8];
    CHECK(read(a.read_fd, buf, sizeof(buf)) == 3);
    int a_read = a.read_fd;
    pipe_pool_give(&pool, &a, true);
    CHECK(a.read_fd == -1 && a.write_fd == -1);
    CHECK(pool.idle_count == 1 && pool.live == 3);
    /* An empty pipe given back is the next one taken. */
    CHECK(pipe_pool_take(&pool, &d) == 0);
    CHECK(d.read_fd == a_read);
    CHECK(pool.idle_count == 0);

    /* A pipe that may hold bytes is closed, and makes room for a new one. */
    CHECK(write(b.write_fd, "left", 4) == 4);
    pipe_pool_give(&pool, &b, false);
    CHECK(pool.live == 2 && pool.idle_count == 0);
    CHECK(pipe_pool_take(&pool, &b) == 0);
    CHECK(pool.live == 3);
    /* The new pipe is empty: a write and a read of our own bytes only. */
    CHECK(write(b.write_fd, "k", 1) == 1);
    CHECK(read(b.read_fd, buf, sizeof(buf)) == 1 && buf[0] == 'k');

    pipe_pool_give(&pool, &b, true);
    pipe_pool_give(&pool, &c, true);
    pipe_pool_give(&pool, &d, true);
    CHECK(pool.idle_count == 3 && pool.live == 3);
    pipe_pool_destroy(&pool);
    CHECK(pool.live == 0);
    CHECK(open_fds() == fds_before);

    /* The idle list is bounded: beyond PIPE_POOL_IDLE_MAX pipes close. */
    pipe_pool_init(&pool, PIPE_POOL_IDLE_MAX + 10);
    struct pipe_pair many[PIPE_POOL_IDLE_MAX + 10];
    for (unsigned i = 0; i < PIPE_POOL_IDLE_MAX + 10; i++) {
        CHECK(pipe_pool_take(&pool, &many[i]) == 0);
    }
    for (unsigned i = 0; i < PIPE_POOL_IDLE_MAX + 10; i++) {
        pipe_pool_give(&pool, &many[i], true);
    }
    CHECK(pool.idle_count == PIPE_POOL_IDLE_MAX && pool.live == PIPE_POOL_IDLE_MAX);
    pipe_pool_destroy(&pool);
    CHECK(open_fds() == fds_before);
    UNIT_DONE();
}
