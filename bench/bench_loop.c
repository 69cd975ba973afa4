/*
 * bench/bench_loop.c - the io_uring client plumbing toaster-bench smtp and
 * imap share.
 *
 * Owns a worker's ring and the generic half of its connection slots: the
 * socket, the ops in flight (at most one connect, one recv and one send
 * per slot), the send in progress and the list links. Does not own the
 * slots' memory, decide what a session does next, or count anything; the
 * commands do that around these calls. Runs on the worker thread that
 * owns the loop, except bench_loop_fd_limit(), the signal calls and
 * bench_loop_watch(), which run on the main thread.
 *
 * user_data packs op kind (8 bits), slot generation (24 bits) and slot
 * (32 bits). Because a slot is reused only when no op is in flight, a
 * completion for an older generation cannot happen and is asserted.
 *
 * Limits: BENCH_LOOP_SEND_IOV_MAX iovs per send, RING_ENTRIES SQEs,
 * CQ_ENTRIES_MAX CQEs, CQE_BATCH completions handled per peek.
 */
#define _GNU_SOURCE
#include "bench/bench_loop.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/assertions.h"

#define RING_ENTRIES 4096
#define CQ_ENTRIES_MAX 65536
#define CQE_BATCH 256
#define WATCH_PAUSE_NS (50 * BENCH_LOOP_NS_PER_MS)

static int stop_requested; /* set by SIGINT/SIGTERM, read with atomics */

static struct bench_loop *loop_at(void *workers, size_t stride, uint32_t index);
static void *thread_main(void *arg);
static uint64_t user_data_pack(enum bench_loop_op op, const struct bench_loop_conn *io);
static void send_submit(struct bench_loop *loop, struct bench_loop_conn *io);
static void signal_stop(int signo);

void
bench_loop_share(struct bench_loop *loop, uint32_t index, uint32_t threads, uint32_t connections,
                 uint64_t count, double duration_s, uint64_t start_ns)
{
    ASSERT(index < threads);
    /* The first connections % threads workers take one more. */
    loop->conn_count = connections / threads + (index < connections % threads);
    if (count > 0) {
        loop->has_count = true;
        loop->count_share = count / threads + (index < count % threads);
    }
    if (duration_s > 0) {
        loop->end_ns = start_ns + (uint64_t)(duration_s * 1e9);
    }
    loop->source_next = index;
}

void
bench_loop_init(struct bench_loop *loop, const char *name, void *conns, size_t conn_stride)
{
    ASSERT(conn_stride >= sizeof(struct bench_loop_conn));
    loop->name = name;
    loop->conns = conns;
    loop->conn_stride = conn_stride;
    loop->live_count = loop->conn_count;
    loop->connect_queue = (struct bench_loop_list){BENCH_LOOP_SLOT_NONE, BENCH_LOOP_SLOT_NONE, 0};
    loop->connects_in_flight = 0;
    for (uint32_t i = 0; i < loop->conn_count; i++) {
        struct bench_loop_conn *io = bench_loop_conn_at(loop, i);
        io->slot = i;
        io->fd = -1;
        io->list_prev = BENCH_LOOP_SLOT_NONE;
        io->list_next = BENCH_LOOP_SLOT_NONE;
    }
}

int
bench_loop_ring_init(struct bench_loop *loop)
{
    struct io_uring_params params;

    uint32_t cq_entries = RING_ENTRIES * 2;
    while (cq_entries < loop->conn_count * 3 && cq_entries < CQ_ENTRIES_MAX) {
        cq_entries *= 2;
    }
    memset(&params, 0, sizeof(params));
    params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP | IORING_SETUP_SINGLE_ISSUER |
                   IORING_SETUP_DEFER_TASKRUN;
    params.cq_entries = cq_entries;
    int rc = io_uring_queue_init_params(RING_ENTRIES, &loop->ring, &params);
    if (rc == -EINVAL) {
        memset(&params, 0, sizeof(params));
        params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
        params.cq_entries = cq_entries;
        rc = io_uring_queue_init_params(RING_ENTRIES, &loop->ring, &params);
    }
    if (rc < 0) {
        (void)fprintf(stderr, "toaster-bench %s: io_uring_queue_init: %s\n", loop->name,
                      strerror(-rc));
        return rc;
    }
    loop->is_ring_ready = true;
    return 0;
}

void
bench_loop_ring_exit(struct bench_loop *loop)
{
    if (loop->is_ring_ready) {
        io_uring_queue_exit(&loop->ring);
        loop->is_ring_ready = false;
    }
}

bool
bench_loop_work_remains(const struct bench_loop *loop, uint64_t now)
{
    if (loop->is_stopping) {
        return false;
    }
    if (loop->has_count && loop->started >= loop->count_share) {
        return false;
    }
    if (loop->end_ns > 0 && now >= loop->end_ns) {
        return false;
    }
    return true;
}

void
bench_loop_work_started(struct bench_loop *loop)
{
    loop->started++;
}

void
bench_loop_progress(struct bench_loop *loop, uint64_t now)
{
    loop->last_progress_ns = now;
    loop->failures_since_progress = 0;
}

void
bench_loop_tick_stop(struct bench_loop *loop, uint64_t now, const char *server)
{
    if (!loop->is_stopping && bench_loop_is_stop_requested()) {
        loop->is_stopping = true;
    }
    if (!loop->is_stopping && loop->failures_since_progress > 0 &&
        now - loop->last_progress_ns > BENCH_LOOP_HOPELESS_NS) {
        (void)fprintf(stderr,
                      "toaster-bench %s: no session with %s got anywhere for %d s; giving up\n",
                      loop->name, server, (int)(BENCH_LOOP_HOPELESS_NS / BENCH_LOOP_NS_PER_S));
        loop->is_stopping = true;
    }
}

void
bench_loop_retire(struct bench_loop *loop)
{
    ASSERT(loop->live_count > 0);
    __atomic_store_n(&loop->live_count, loop->live_count - 1, __ATOMIC_RELAXED);
}

bool
bench_loop_is_live(const struct bench_loop *loop)
{
    return __atomic_load_n(&loop->live_count, __ATOMIC_RELAXED) > 0;
}

int
bench_loop_wait(struct bench_loop *loop, uint64_t wait_ns, const struct bench_loop_ops *ops,
                void *ctx)
{
    struct io_uring_cqe *cqes[CQE_BATCH];
    struct __kernel_timespec ts = {
        .tv_sec = (long long)(wait_ns / BENCH_LOOP_NS_PER_S),
        .tv_nsec = (long long)(wait_ns % BENCH_LOOP_NS_PER_S),
    };
    struct io_uring_cqe *cqe = NULL;

    int rc = io_uring_submit_and_wait_timeout(&loop->ring, &cqe, 1, &ts, NULL);
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
        (void)fprintf(stderr, "toaster-bench %s: io_uring_submit_and_wait: %s\n", loop->name,
                      strerror(-rc));
        return rc;
    }
    for (;;) {
        unsigned n = io_uring_peek_batch_cqe(&loop->ring, cqes, CQE_BATCH);
        if (n == 0) {
            return 0;
        }
        /* Copy out first: handlers queue new SQEs, and a full SQ is
         * submitted from inside them. */
        uint64_t user_data[CQE_BATCH];
        int32_t res[CQE_BATCH];
        for (unsigned i = 0; i < n; i++) {
            user_data[i] = cqes[i]->user_data;
            res[i] = cqes[i]->res;
        }
        io_uring_cq_advance(&loop->ring, n);
        for (unsigned i = 0; i < n; i++) {
            enum bench_loop_op op = (enum bench_loop_op)(user_data[i] & 0xff);
            uint32_t generation = (uint32_t)(user_data[i] >> 8) & BENCH_LOOP_GENERATION_MASK;
            uint32_t slot = (uint32_t)(user_data[i] >> 32);
            if (op == BENCH_LOOP_OP_CANCEL) {
                continue; /* the cancelled ops report for themselves */
            }
            ASSERT(slot < loop->conn_count);
            struct bench_loop_conn *io = bench_loop_conn_at(loop, slot);
            /* A slot changes generation only with no op in flight. */
            ASSERT(generation == io->generation);
            ASSERT(io->ops_in_flight > 0);
            io->ops_in_flight--;
            switch (op) {
            case BENCH_LOOP_OP_CONNECT:
                ASSERT(io->is_connect_armed);
                io->is_connect_armed = false;
                ASSERT(loop->connects_in_flight > 0);
                loop->connects_in_flight--;
                ops->on_connect(ctx, io, res[i]);
                /* A connect slot came free. */
                while (loop->connects_in_flight < BENCH_LOOP_CONNECTS_IN_FLIGHT_MAX &&
                       loop->connect_queue.count > 0) {
                    ops->start(ctx, bench_loop_list_pop(loop, &loop->connect_queue));
                }
                break;
            case BENCH_LOOP_OP_RECV:
                ASSERT(io->is_recv_armed);
                io->is_recv_armed = false;
                ops->on_recv(ctx, io, res[i]);
                break;
            case BENCH_LOOP_OP_SEND:
                ASSERT(io->is_send_armed);
                io->is_send_armed = false;
                ops->on_send(ctx, io, res[i]);
                break;
            case BENCH_LOOP_OP_CANCEL:
            default:
                ASSERT(!"known op kind");
            }
            ops->settle(ctx, io);
        }
    }
}

struct bench_loop_conn *
bench_loop_conn_at(struct bench_loop *loop, uint32_t slot)
{
    ASSERT(slot < loop->conn_count);
    return (struct bench_loop_conn *)(loop->conns + (size_t)slot * loop->conn_stride);
}

struct io_uring_sqe *
bench_loop_sqe_get(struct bench_loop *loop)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&loop->ring);
    if (sqe != NULL) {
        return sqe;
    }
    int rc = io_uring_submit(&loop->ring);
    if (rc < 0) {
        /* Only a broken ring gets here; nothing sensible to continue with. */
        (void)fprintf(stderr, "toaster-bench %s: io_uring_submit: %s\n", loop->name, strerror(-rc));
        abort();
    }
    sqe = io_uring_get_sqe(&loop->ring);
    ASSERT(sqe != NULL);
    return sqe;
}

int
bench_loop_connect(struct bench_loop *loop, struct bench_loop_conn *io,
                   const struct sockaddr_storage *server, socklen_t server_bytes,
                   const struct sockaddr_storage *sources, uint32_t source_count,
                   socklen_t source_bytes, uint32_t *source_next, uint32_t source_step,
                   bool *is_bind_out)
{
    ASSERT(io->fd < 0);
    ASSERT(io->ops_in_flight == 0);
    *is_bind_out = false;
    int fd = socket(server->ss_family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0) {
        return -errno;
    }
    int one = 1;
    /* Commands are small and latency is what we measure: no Nagle. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (source_count > 0) {
        const struct sockaddr_storage *source = &sources[*source_next % source_count];
        *source_next += source_step;
        /* Let connect() pick the port for the whole 4-tuple, so each source
         * address gives a full ephemeral range per server. */
        (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        if (bind(fd, (const struct sockaddr *)source, source_bytes) < 0) {
            int error = errno;
            (void)close(fd);
            *is_bind_out = true;
            return -error;
        }
    }
    io->fd = fd;
    struct io_uring_sqe *sqe = bench_loop_sqe_get(loop);
    io_uring_prep_connect(sqe, fd, (const struct sockaddr *)server, server_bytes);
    io_uring_sqe_set_data64(sqe, user_data_pack(BENCH_LOOP_OP_CONNECT, io));
    io->ops_in_flight++;
    io->is_connect_armed = true;
    loop->connects_in_flight++;
    return 0;
}

void
bench_loop_cancel(struct bench_loop *loop, struct bench_loop_conn *io)
{
    if (io->ops_in_flight == 0) {
        return;
    }
    struct io_uring_sqe *sqe = bench_loop_sqe_get(loop);
    io_uring_prep_cancel_fd(sqe, io->fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, user_data_pack(BENCH_LOOP_OP_CANCEL, io));
}

void
bench_loop_release(struct bench_loop *loop, struct bench_loop_conn *io)
{
    ASSERT(io->ops_in_flight == 0);
    ASSERT(io->fd >= 0);
    if (close(io->fd) < 0) {
        /* Nothing to do about it but say so; the fd is gone either way. */
        (void)fprintf(stderr, "toaster-bench %s: close: %s\n", loop->name, strerror(errno));
    }
    io->fd = -1;
    io->generation = (io->generation + 1) & BENCH_LOOP_GENERATION_MASK;
    io->iov_first = 0;
    io->iov_count = 0;
}

void
bench_loop_arm_recv(struct bench_loop *loop, struct bench_loop_conn *io, char *buf, size_t bytes)
{
    if (io->is_recv_armed) {
        return;
    }
    ASSERT(bytes > 0);
    struct io_uring_sqe *sqe = bench_loop_sqe_get(loop);
    io_uring_prep_recv(sqe, io->fd, buf, bytes, 0);
    io_uring_sqe_set_data64(sqe, user_data_pack(BENCH_LOOP_OP_RECV, io));
    io->ops_in_flight++;
    io->is_recv_armed = true;
}

bool
bench_loop_is_sending(const struct bench_loop_conn *io)
{
    return io->is_send_armed || io->iov_first < io->iov_count;
}

void
bench_loop_send(struct bench_loop *loop, struct bench_loop_conn *io, const struct iovec *iov,
                uint32_t count)
{
    ASSERT(count >= 1);
    ASSERT(count <= BENCH_LOOP_SEND_IOV_MAX);
    ASSERT(!bench_loop_is_sending(io));
    for (uint32_t i = 0; i < count; i++) {
        io->iov[i] = iov[i];
    }
    io->iov_first = 0;
    io->iov_count = count;
    send_submit(loop, io);
}

bool
bench_loop_sent(struct bench_loop *loop, struct bench_loop_conn *io, size_t sent)
{
    ASSERT(sent > 0);
    while (sent > 0) {
        ASSERT(io->iov_first < io->iov_count);
        struct iovec *iov = &io->iov[io->iov_first];
        if (sent < iov->iov_len) {
            iov->iov_base = (char *)iov->iov_base + sent;
            iov->iov_len -= sent;
            sent = 0;
        } else {
            sent -= iov->iov_len;
            iov->iov_len = 0;
            io->iov_first++;
        }
    }
    while (io->iov_first < io->iov_count && io->iov[io->iov_first].iov_len == 0) {
        io->iov_first++;
    }
    if (io->iov_first < io->iov_count) {
        send_submit(loop, io); /* partial: the rest */
        return false;
    }
    return true;
}

void
bench_loop_list_push(struct bench_loop *loop, struct bench_loop_list *list,
                     struct bench_loop_conn *io)
{
    ASSERT(io->list_prev == BENCH_LOOP_SLOT_NONE);
    ASSERT(io->list_next == BENCH_LOOP_SLOT_NONE);
    io->list_prev = list->tail;
    if (list->tail != BENCH_LOOP_SLOT_NONE) {
        bench_loop_conn_at(loop, list->tail)->list_next = io->slot;
    } else {
        list->head = io->slot;
    }
    list->tail = io->slot;
    list->count++;
}

struct bench_loop_conn *
bench_loop_list_pop(struct bench_loop *loop, struct bench_loop_list *list)
{
    if (list->head == BENCH_LOOP_SLOT_NONE) {
        ASSERT(list->count == 0);
        return NULL;
    }
    struct bench_loop_conn *io = bench_loop_conn_at(loop, list->head);
    bench_loop_list_remove(loop, list, io);
    return io;
}

void
bench_loop_list_remove(struct bench_loop *loop, struct bench_loop_list *list,
                       struct bench_loop_conn *io)
{
    ASSERT(list->count > 0);
    if (io->list_prev != BENCH_LOOP_SLOT_NONE) {
        bench_loop_conn_at(loop, io->list_prev)->list_next = io->list_next;
    } else {
        ASSERT(list->head == io->slot);
        list->head = io->list_next;
    }
    if (io->list_next != BENCH_LOOP_SLOT_NONE) {
        bench_loop_conn_at(loop, io->list_next)->list_prev = io->list_prev;
    } else {
        ASSERT(list->tail == io->slot);
        list->tail = io->list_prev;
    }
    io->list_prev = BENCH_LOOP_SLOT_NONE;
    io->list_next = BENCH_LOOP_SLOT_NONE;
    list->count--;
}

int
bench_loop_fd_limit(const char *name, uint32_t connections)
{
    struct rlimit limit;
    uint64_t fds_needed = (uint64_t)connections + BENCH_LOOP_FD_RESERVE;

    if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= fds_needed) {
        return 0;
    }
    if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < fds_needed) {
        (void)fprintf(stderr,
                      "toaster-bench %s: --connections %" PRIu32 " needs %" PRIu64
                      " file descriptors; the hard limit is %llu (ulimit -Hn)\n",
                      name, connections, fds_needed, (unsigned long long)limit.rlim_max);
        return -EMFILE;
    }
    limit.rlim_cur = fds_needed;
    if (setrlimit(RLIMIT_NOFILE, &limit) < 0) {
        (void)fprintf(stderr, "toaster-bench %s: raising the file limit to %" PRIu64 ": %s\n", name,
                      fds_needed, strerror(errno));
        return -EMFILE;
    }
    return 0;
}

void
bench_loop_signals_install(void)
{
    struct sigaction action;

    memset(&action, 0, sizeof(action));
    action.sa_handler = signal_stop;
    action.sa_flags = (int)SA_RESETHAND; /* a second ^C kills at once */
    (void)sigemptyset(&action.sa_mask);
    (void)sigaction(SIGINT, &action, NULL);
    (void)sigaction(SIGTERM, &action, NULL);
    (void)signal(SIGPIPE, SIG_IGN);
}

void
bench_loop_stop_request(void)
{
    __atomic_store_n(&stop_requested, 1, __ATOMIC_RELAXED);
}

bool
bench_loop_is_stop_requested(void)
{
    return __atomic_load_n(&stop_requested, __ATOMIC_RELAXED) != 0;
}

uint32_t
bench_loop_threads_start(void *workers, size_t stride, uint32_t count, const char *name,
                         bench_loop_setup_fn *setup, const struct bench_loop_ops *ops,
                         bench_loop_teardown_fn *teardown)
{
    uint32_t started = 0;

    for (uint32_t i = 0; i < count; i++) {
        void *worker = (char *)workers + (size_t)i * stride;
        int rc = setup(worker, i);
        if (rc < 0) {
            (void)fprintf(stderr, "toaster-bench %s: thread %" PRIu32 ": setup: %s\n", name, i,
                          strerror(-rc));
            break;
        }
        struct bench_loop *loop = loop_at(workers, stride, i);
        loop->ops = ops;
        rc = pthread_create(&loop->thread, NULL, thread_main, worker);
        if (rc != 0) {
            (void)fprintf(stderr, "toaster-bench %s: pthread_create: %s\n", name, strerror(rc));
            teardown(worker);
            break;
        }
        started++;
    }
    if (started < count) {
        bench_loop_stop_request();
    }
    return started;
}

int
bench_loop_threads_join(void *workers, size_t stride, uint32_t count,
                        bench_loop_teardown_fn *teardown)
{
    int worker_rc = 0;

    for (uint32_t i = 0; i < count; i++) {
        struct bench_loop *loop = loop_at(workers, stride, i);
        int join_rc = pthread_join(loop->thread, NULL);
        ASSERT(join_rc == 0);
        if (loop->rc < 0) {
            worker_rc = loop->rc;
        }
        teardown((char *)workers + (size_t)i * stride);
    }
    return worker_rc;
}

void
bench_loop_thread_run(struct bench_loop *loop, const struct bench_loop_ops *ops, void *ctx)
{
    int rc = bench_loop_ring_init(loop);
    if (rc < 0) {
        loop->rc = rc;
        __atomic_store_n(&loop->live_count, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&loop->is_finished, true, __ATOMIC_RELEASE);
        return;
    }
    uint64_t now = bench_loop_now_ns();
    uint64_t last_tick_ns = now;
    loop->last_progress_ns = now;
    for (uint32_t i = 0; i < loop->conn_count; i++) {
        ops->start(ctx, bench_loop_conn_at(loop, i));
    }
    while (bench_loop_is_live(loop)) {
        uint64_t wait_ns = ops->wait_ns != NULL ? ops->wait_ns(ctx) : BENCH_LOOP_TICK_NS;
        rc = bench_loop_wait(loop, wait_ns, ops, ctx);
        if (rc < 0) {
            loop->rc = rc;
            break;
        }
        now = bench_loop_now_ns();
        if (ops->after_wait != NULL) {
            ops->after_wait(ctx, now);
        }
        if (now - last_tick_ns >= BENCH_LOOP_TICK_NS) {
            ops->tick(ctx, now);
            last_tick_ns = now;
        }
    }
    if (rc == 0) {
        /* Every slot is retired, so no socket is open and no op is in
         * flight; only cancels may still sit in the SQ, and they match
         * nothing now. */
        (void)io_uring_submit(&loop->ring);
    }
    __atomic_store_n(&loop->is_finished, true, __ATOMIC_RELEASE);
}

void
bench_loop_watch(const void *loops, size_t stride, uint32_t count, bool is_progress,
                 uint64_t start_ns, size_t snapshot_bytes, bench_loop_progress_fn *progress,
                 void *ctx)
{
    uint64_t next_progress_ns = start_ns + BENCH_LOOP_NS_PER_S;
    uint64_t last_line_ns = start_ns;
    bool has_progress_line = false;

    for (;;) {
        uint32_t finished = 0;
        for (uint32_t i = 0; i < count; i++) {
            const struct bench_loop *loop =
                (const struct bench_loop *)((const char *)loops + (size_t)i * stride);
            finished += __atomic_load_n(&loop->is_finished, __ATOMIC_ACQUIRE);
        }
        if (finished == count) {
            break;
        }
        struct timespec pause = {.tv_sec = 0, .tv_nsec = (long)WATCH_PAUSE_NS};
        (void)nanosleep(&pause, NULL);
        uint64_t now = bench_loop_now_ns();
        if (is_progress && now >= next_progress_ns) {
            /* Counters can be large (histograms): not on the stack. */
            void *snapshot = malloc(snapshot_bytes);
            if (snapshot != NULL) {
                progress(ctx, snapshot, (double)(now - start_ns) / 1e9,
                         (double)(now - last_line_ns) / 1e9);
                has_progress_line = true;
                last_line_ns = now;
                free(snapshot);
            }
            next_progress_ns += BENCH_LOOP_NS_PER_S;
            if (next_progress_ns < now) {
                next_progress_ns = now + BENCH_LOOP_NS_PER_S;
            }
        }
    }
    if (has_progress_line) {
        (void)fputs("\r\033[K", stdout);
    }
}

uint64_t
bench_loop_now_ns(void)
{
    struct timespec ts;
    int rc = clock_gettime(CLOCK_MONOTONIC, &ts);
    ASSERT(rc == 0);
    return (uint64_t)ts.tv_sec * BENCH_LOOP_NS_PER_S + (uint64_t)ts.tv_nsec;
}

static struct bench_loop *
loop_at(void *workers, size_t stride, uint32_t index)
{
    return (struct bench_loop *)((char *)workers + (size_t)index * stride);
}

/* A worker thread: arg is the worker, which starts with its loop. */
static void *
thread_main(void *arg)
{
    struct bench_loop *loop = arg;
    bench_loop_thread_run(loop, loop->ops, arg);
    return NULL;
}

static uint64_t
user_data_pack(enum bench_loop_op op, const struct bench_loop_conn *io)
{
    return (uint64_t)op | ((uint64_t)(io->generation & BENCH_LOOP_GENERATION_MASK) << 8) |
           ((uint64_t)io->slot << 32);
}

static void
send_submit(struct bench_loop *loop, struct bench_loop_conn *io)
{
    ASSERT(!io->is_send_armed);
    ASSERT(io->iov_first < io->iov_count);
    memset(&io->msg, 0, sizeof(io->msg));
    io->msg.msg_iov = &io->iov[io->iov_first];
    io->msg.msg_iovlen = io->iov_count - io->iov_first;
    struct io_uring_sqe *sqe = bench_loop_sqe_get(loop);
    io_uring_prep_sendmsg(sqe, io->fd, &io->msg, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, user_data_pack(BENCH_LOOP_OP_SEND, io));
    io->ops_in_flight++;
    io->is_send_armed = true;
}

static void
signal_stop(int signo)
{
    (void)signo;
    bench_loop_stop_request();
}
