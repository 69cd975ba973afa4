/*
 * tests/unit/test_bench_loop.c - the io_uring client plumbing toaster-bench
 * smtp and imap share (bench/bench_loop.c).
 *
 * The slot lists are driven through push, pop and remove from the head,
 * the middle and the tail. A real ring then sends a three-part message
 * over a socketpair, resumes a send cut short after three bytes, and
 * receives the peer's reply, with every completion checked for its op,
 * result and the slot's in-flight bookkeeping.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench/bench_loop.h"
#include "unit.h"

#define SLOTS 5
#define WAIT_NS (200 * BENCH_LOOP_NS_PER_MS)
#define WAIT_ROUNDS_MAX 50

struct slot {
    struct bench_loop_conn io;
    int                    tag;
};

struct seen {
    enum bench_loop_op op;
    int32_t            res;
    uint32_t           slot;
    uint32_t           count;
};

static void
on_completion(void *ctx, struct bench_loop_conn *io, enum bench_loop_op op, int32_t res)
{
    struct seen *seen = ctx;
    seen->op = op;
    seen->res = res;
    seen->slot = io->slot;
    seen->count++;
}

/* Wait until one more completion has come in (or give up). */
static bool
wait_one(struct bench_loop *loop, struct seen *seen)
{
    uint32_t before = seen->count;
    for (int i = 0; i < WAIT_ROUNDS_MAX && seen->count == before; i++) {
        if (bench_loop_wait(loop, WAIT_NS, on_completion, seen) < 0) {
            return false;
        }
    }
    return seen->count == before + 1;
}

static uint32_t
pop_slot(struct bench_loop *loop, struct bench_loop_list *list)
{
    struct bench_loop_conn *io = bench_loop_list_pop(loop, list);
    return io != NULL ? io->slot : BENCH_LOOP_SLOT_NONE;
}

static void
test_lists(void)
{
    struct slot slots[SLOTS];
    struct bench_loop loop;
    memset(&loop, 0, sizeof(loop));
    memset(slots, 0, sizeof(slots));
    bench_loop_init(&loop, "test", slots, sizeof(slots[0]), SLOTS);

    for (uint32_t i = 0; i < SLOTS; i++) {
        CHECK(slots[i].io.slot == i);
        CHECK(slots[i].io.fd == -1);
        CHECK(bench_loop_conn_at(&loop, i) == &slots[i].io);
    }
    struct bench_loop_list *list = &loop.connect_queue;
    CHECK(bench_loop_list_pop(&loop, list) == NULL);
    for (uint32_t i = 0; i < SLOTS; i++) {
        bench_loop_list_push(&loop, list, &slots[i].io);
    }
    CHECK(list->count == SLOTS);
    /* Remove the middle, the tail and the head; the rest keeps its order. */
    bench_loop_list_remove(&loop, list, &slots[2].io);
    bench_loop_list_remove(&loop, list, &slots[4].io);
    bench_loop_list_remove(&loop, list, &slots[0].io);
    CHECK(list->count == 2);
    CHECK(slots[2].io.list_prev == BENCH_LOOP_SLOT_NONE);
    CHECK(slots[2].io.list_next == BENCH_LOOP_SLOT_NONE);
    bench_loop_list_push(&loop, list, &slots[0].io);
    CHECK(pop_slot(&loop, list) == 1);
    CHECK(pop_slot(&loop, list) == 3);
    CHECK(pop_slot(&loop, list) == 0);
    CHECK(pop_slot(&loop, list) == BENCH_LOOP_SLOT_NONE);
    CHECK(list->count == 0);
    CHECK(list->head == BENCH_LOOP_SLOT_NONE);
    CHECK(list->tail == BENCH_LOOP_SLOT_NONE);
}

static void
test_clock_and_rng(void)
{
    uint64_t a = bench_loop_now_ns();
    uint64_t b = bench_loop_now_ns();
    CHECK(b >= a);

    uint64_t s1 = 42;
    uint64_t s2 = 42;
    uint64_t x = bench_loop_rng_next(&s1);
    CHECK(x == bench_loop_rng_next(&s2)); /* the same seed, the same sequence */
    CHECK(bench_loop_rng_next(&s1) != x);
    CHECK(s1 != 42);
}

static void
test_send_and_recv(void)
{
    struct slot slots[1];
    struct bench_loop loop;
    struct seen seen = {0};
    int fds[2];

    memset(&loop, 0, sizeof(loop));
    memset(slots, 0, sizeof(slots));
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    bench_loop_init(&loop, "test", slots, sizeof(slots[0]), 1);
    if (bench_loop_ring_init(&loop) < 0) {
        CHECK(!"io_uring available");
        (void)close(fds[0]);
        (void)close(fds[1]);
        return;
    }
    struct bench_loop_conn *io = &slots[0].io;
    io->fd = fds[0];

    /* Three iovs in one send. */
    char part1[] = "MAIL ";
    char part2[] = "FROM:<a@b>";
    char part3[] = "\r\n";
    struct iovec iov[3] = {
        {.iov_base = part1, .iov_len = strlen(part1)},
        {.iov_base = part2, .iov_len = strlen(part2)},
        {.iov_base = part3, .iov_len = strlen(part3)},
    };
    size_t total = strlen(part1) + strlen(part2) + strlen(part3);
    CHECK(!bench_loop_is_sending(io));
    bench_loop_send(&loop, io, iov, 3);
    CHECK(bench_loop_is_sending(io));
    CHECK(io->ops_in_flight == 1);
    CHECK(wait_one(&loop, &seen));
    CHECK(seen.op == BENCH_LOOP_OP_SEND);
    CHECK(seen.res == (int32_t)total);
    CHECK(io->ops_in_flight == 0);
    CHECK(!io->is_send_armed);
    CHECK(bench_loop_sent(&loop, io, (size_t)seen.res));
    CHECK(!bench_loop_is_sending(io));
    char got[64];
    ssize_t n = read(fds[1], got, sizeof(got));
    CHECK(n == (ssize_t)total);
    CHECK_BYTES(got, (size_t)n, "MAIL FROM:<a@b>\r\n", total);

    /* A send the kernel took only 3 bytes of: the rest goes out by itself,
     * across the iov boundary. */
    struct iovec iov2[2] = {
        {.iov_base = part1, .iov_len = strlen(part1)},
        {.iov_base = part3, .iov_len = strlen(part3)},
    };
    for (uint32_t i = 0; i < 2; i++) {
        io->iov[i] = iov2[i];
    }
    io->iov_first = 0;
    io->iov_count = 2;
    CHECK(!bench_loop_sent(&loop, io, 3));
    CHECK(io->is_send_armed);
    CHECK(wait_one(&loop, &seen));
    CHECK(seen.op == BENCH_LOOP_OP_SEND);
    CHECK(seen.res == 4);
    CHECK(bench_loop_sent(&loop, io, (size_t)seen.res));
    n = read(fds[1], got, sizeof(got));
    CHECK_BYTES(got, (size_t)(n > 0 ? n : 0), "L \r\n", 4);

    /* A recv, armed once however often asked. */
    bench_loop_arm_recv(&loop, io, got, sizeof(got));
    bench_loop_arm_recv(&loop, io, got, sizeof(got));
    CHECK(io->ops_in_flight == 1);
    CHECK(write(fds[1], "250 OK\r\n", 8) == 8);
    CHECK(wait_one(&loop, &seen));
    CHECK(seen.op == BENCH_LOOP_OP_RECV);
    CHECK(seen.res == 8);
    CHECK_BYTES(got, 8, "250 OK\r\n", 8);

    /* Cancel with nothing in flight queues nothing; release closes and
     * moves the slot to its next generation. */
    bench_loop_cancel(&loop, io);
    uint32_t generation = io->generation;
    bench_loop_release(&loop, io);
    CHECK(io->fd == -1);
    CHECK(io->generation == generation + 1);
    CHECK(fcntl(fds[0], F_GETFD) < 0 && errno == EBADF);
    (void)close(fds[1]);
    bench_loop_ring_exit(&loop);
    CHECK(!loop.is_ring_ready);
}

int
main(void)
{
    test_lists();
    test_clock_and_rng();
    test_send_and_recv();
    UNIT_DONE();
}
