/*
 * tests/unit/test_bench_loop.c - the io_uring client plumbing toaster-bench
 * smtp and imap share (bench/bench_loop.c).
 *
 * The slot lists are driven through push, pop and remove from the head,
 * the middle and the tail; the work is shared out over threads and its
 * bounds tried at max - 1 and max. A real ring then sends a three-part message
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
#include "bench/bench_rng.h"
#include "unit.h"

#define SLOTS 5
#define WAIT_NS (200 * BENCH_LOOP_NS_PER_MS)
#define WAIT_ROUNDS_MAX 50

struct slot {
    struct bench_loop_conn io;
    int tag;
};

struct seen {
    enum bench_loop_op op;
    int32_t res;
    uint32_t slot;
    uint32_t count;
};

static void
seen_record(struct seen *seen, enum bench_loop_op op, struct bench_loop_conn *io, int32_t res)
{
    seen->op = op;
    seen->res = res;
    seen->slot = io->slot;
    seen->count++;
}

static void
seen_connect(void *ctx, struct bench_loop_conn *io, int32_t res)
{
    seen_record(ctx, BENCH_LOOP_OP_CONNECT, io, res);
}

static void
seen_recv(void *ctx, struct bench_loop_conn *io, int32_t res)
{
    seen_record(ctx, BENCH_LOOP_OP_RECV, io, res);
}

static void
seen_send(void *ctx, struct bench_loop_conn *io, int32_t res)
{
    seen_record(ctx, BENCH_LOOP_OP_SEND, io, res);
}

/* Nothing to start or settle: the test drives the one slot itself. */
static void
seen_nothing(void *ctx, struct bench_loop_conn *io)
{
    (void)ctx;
    (void)io;
}

static const struct bench_loop_ops seen_ops = {.on_connect = seen_connect,
                                               .on_recv = seen_recv,
                                               .on_send = seen_send,
                                               .start = seen_nothing,
                                               .settle = seen_nothing};

/* Wait until one more completion has come in (or give up). */
static bool
wait_one(struct bench_loop *loop, struct seen *seen)
{
    uint32_t before = seen->count;
    for (int i = 0; i < WAIT_ROUNDS_MAX && seen->count == before; i++) {
        if (bench_loop_wait(loop, WAIT_NS, &seen_ops, seen) < 0) {
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
    loop.conn_count = SLOTS;
    bench_loop_init(&loop, "test", slots, sizeof(slots[0]));
    CHECK(loop.live_count == SLOTS);

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

/* 10 connections and 7 messages over 3 threads: 4/3/3 and 3/2/2. */
static void
test_share(void)
{
    static const uint32_t conns_want[3] = {4, 3, 3};
    static const uint64_t count_want[3] = {3, 2, 2};
    for (uint32_t i = 0; i < 3; i++) {
        struct bench_loop loop;
        memset(&loop, 0, sizeof(loop));
        bench_loop_share(&loop, i, 3, 10, 7, 0, 1000);
        CHECK(loop.conn_count == conns_want[i]);
        CHECK(loop.has_count);
        CHECK(loop.count_share == count_want[i]);
        CHECK(loop.end_ns == 0);
        CHECK(loop.source_next == i);
        /* The count share at max - 1, max. */
        loop.started = count_want[i] - 1;
        CHECK(bench_loop_work_remains(&loop, 0));
        bench_loop_work_started(&loop);
        CHECK(!bench_loop_work_remains(&loop, 0));
    }

    /* --duration: work remains until the end, not at it. */
    struct bench_loop loop;
    memset(&loop, 0, sizeof(loop));
    bench_loop_share(&loop, 0, 1, 1, 0, 2.0, 1000);
    CHECK(!loop.has_count);
    CHECK(loop.end_ns == 1000 + 2 * BENCH_LOOP_NS_PER_S);
    CHECK(bench_loop_work_remains(&loop, loop.end_ns - 1));
    CHECK(!bench_loop_work_remains(&loop, loop.end_ns));
    loop.is_stopping = true;
    CHECK(!bench_loop_work_remains(&loop, 0));

    /* Giving up: only after failures with no progress for the whole span. */
    memset(&loop, 0, sizeof(loop));
    loop.name = "test";
    bench_loop_progress(&loop, 1000);
    loop.failures_since_progress = 3;
    bench_loop_tick_stop(&loop, 1000 + BENCH_LOOP_HOPELESS_NS, "server");
    CHECK(!loop.is_stopping);
    bench_loop_tick_stop(&loop, 1000 + BENCH_LOOP_HOPELESS_NS + 1, "server"); /* says so */
    CHECK(loop.is_stopping);
    loop.is_stopping = false;
    bench_loop_progress(&loop, 2000);
    CHECK(loop.failures_since_progress == 0);
    bench_loop_tick_stop(&loop, 2000 + 2 * BENCH_LOOP_HOPELESS_NS, "server");
    CHECK(!loop.is_stopping); /* no failures since */

    /* Retiring the last slot ends the loop. */
    loop.live_count = 2;
    bench_loop_retire(&loop);
    CHECK(bench_loop_is_live(&loop));
    bench_loop_retire(&loop);
    CHECK(!bench_loop_is_live(&loop));
}

static void
test_clock_and_rng(void)
{
    uint64_t a = bench_loop_now_ns();
    uint64_t b = bench_loop_now_ns();
    CHECK(b >= a);

    uint64_t s1 = 42;
    uint64_t s2 = 42;
    uint64_t x = bench_rng_next(&s1);
    CHECK(x == bench_rng_next(&s2)); /* the same seed, the same sequence */
    CHECK(bench_rng_next(&s1) != x);
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
    loop.conn_count = 1;
    bench_loop_init(&loop, "test", slots, sizeof(slots[0]));
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
    test_share();
    test_clock_and_rng();
    test_send_and_recv();
    UNIT_DONE();
}
