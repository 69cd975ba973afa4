/*
 * bench/bench_loop.h - the io_uring client plumbing toaster-bench smtp and
 * imap share: one ring per worker thread, connection slots with their
 * in-flight ops, connect/recv/send arming, the connect queue, and the main
 * thread's watch over the workers.
 *
 * Knows nothing of SMTP or IMAP: the sessions, their states, their
 * counters and their messages stay in bench_smtp.c and bench_imap.c, which
 * embed a struct bench_loop in their worker and a struct bench_loop_conn
 * as the first member of their connection slot.
 */
#ifndef TOASTER_BENCH_LOOP_H
#define TOASTER_BENCH_LOOP_H

#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define BENCH_LOOP_NS_PER_US UINT64_C(1000)
#define BENCH_LOOP_NS_PER_MS UINT64_C(1000000)
#define BENCH_LOOP_NS_PER_S UINT64_C(1000000000)

#define BENCH_LOOP_SLOT_NONE UINT32_MAX
#define BENCH_LOOP_SEND_IOV_MAX 3
#define BENCH_LOOP_CONNECTS_IN_FLIGHT_MAX 256
#define BENCH_LOOP_GENERATION_BITS 24
#define BENCH_LOOP_GENERATION_MASK ((UINT32_C(1) << BENCH_LOOP_GENERATION_BITS) - 1)
/* File descriptors kept free beyond one per connection. */
#define BENCH_LOOP_FD_RESERVE 64
/* How often timeouts are checked, how long a failed slot waits before it
 * connects again, and how long failing sessions may go on with none
 * getting anywhere before the worker gives up. */
#define BENCH_LOOP_TICK_NS (100 * BENCH_LOOP_NS_PER_MS)
#define BENCH_LOOP_BACKOFF_NS (100 * BENCH_LOOP_NS_PER_MS)
#define BENCH_LOOP_HOPELESS_NS (5 * BENCH_LOOP_NS_PER_S)

enum bench_loop_op {
    BENCH_LOOP_OP_CONNECT = 1,
    BENCH_LOOP_OP_RECV,
    BENCH_LOOP_OP_SEND,
    BENCH_LOOP_OP_CANCEL, /* its completion only says the cancel ran: ignored */
};

/* What every connection slot has, whatever it speaks. A slot is reused
 * (generation + 1) only when no op is in flight. */
struct bench_loop_conn {
    uint32_t slot;
    uint32_t generation;
    int fd;
    uint32_t ops_in_flight;
    bool is_connect_armed;
    bool is_recv_armed;
    bool is_send_armed;
    /* The send in flight: iov entries are advanced in place on a partial
     * send. */
    struct iovec iov[BENCH_LOOP_SEND_IOV_MAX];
    uint32_t iov_first;
    uint32_t iov_count;
    struct msghdr msg;
    /* Intrusive list links (slot numbers). */
    uint32_t list_prev;
    uint32_t list_next;
};

/* A FIFO of slots, linked through bench_loop_conn.list_prev/list_next. */
struct bench_loop_list {
    uint32_t head;
    uint32_t tail;
    uint32_t count;
};

/* One worker thread's ring, slots and share of the work. The slots live
 * in the caller's array of conn_stride-byte structs, each starting with a
 * struct bench_loop_conn; the loop is the first member of the caller's
 * worker struct. */
struct bench_loop {
    const char *name; /* "smtp", "imap": for messages */
    struct io_uring ring;
    bool is_ring_ready;
    char *conns;
    size_t conn_stride;
    uint32_t conn_count;
    uint32_t live_count; /* slots not retired; others read it (atomics) */
    struct bench_loop_list connect_queue;
    uint32_t connects_in_flight;
    uint32_t source_next; /* the next --source address, in turn */
    /* The share of the work: --count (transactions, commands) or
     * --duration, and whether to stop. */
    bool has_count;
    uint64_t count_share; /* this worker's part of --count, maybe 0 */
    uint64_t started;
    uint64_t end_ns; /* --duration end; 0: none */
    bool is_stopping;
    /* Giving up: sessions that failed before getting anywhere, since the
     * last one that did (what counts is the command's call). */
    uint64_t last_progress_ns;
    uint64_t failures_since_progress;
    bool has_reported_connect_error;
    bool has_reported_protocol_error;
    /* The thread. */
    const struct bench_loop_ops *ops;
    pthread_t thread;
    int rc; /* 0, or -errno if the loop could not run */
    bool is_finished;
};

/* What a command does at each turn of its loop; ctx is its worker. The
 * on_* calls come for each completion other than a cancel's, after the
 * generic bookkeeping (in-flight counts, armed flags); after a connect's,
 * queued slots are started while connects are free; after each, settle. */
struct bench_loop_ops {
    void (*on_connect)(void *ctx, struct bench_loop_conn *io, int32_t res);
    void (*on_recv)(void *ctx, struct bench_loop_conn *io, int32_t res);
    void (*on_send)(void *ctx, struct bench_loop_conn *io, int32_t res);
    /* Connect the slot, queue it, or retire it. */
    void (*start)(void *ctx, struct bench_loop_conn *io);
    /* Finish a close once nothing is in flight. */
    void (*settle)(void *ctx, struct bench_loop_conn *io);
    /* Timeouts and the end of the run, every BENCH_LOOP_TICK_NS. */
    void (*tick)(void *ctx, uint64_t now);
    /* How long to wait for completions; NULL: BENCH_LOOP_TICK_NS. */
    uint64_t (*wait_ns)(void *ctx);
    /* After each wait (an open loop's schedule); NULL: nothing. */
    void (*after_wait)(void *ctx, uint64_t now);
};

/* Called by bench_loop_watch() once a second to print the progress line
 * (which the watch erases at the end), with snapshot_bytes of scratch for
 * summing the counters, the seconds since the start and since the last
 * line. */
typedef void bench_loop_progress_fn(void *ctx, void *snapshot, double elapsed_s, double window_s);

/* Give worker index of threads its share: its part of connections
 * (loop->conn_count), of count (0: none, --duration runs), and the end of
 * duration_s seconds from start_ns (0: none). Its first --source is the
 * index-th. */
void bench_loop_share(struct bench_loop *loop, uint32_t index, uint32_t threads,
                      uint32_t connections, uint64_t count, double duration_s, uint64_t start_ns);

/* Prepare loop's loop->conn_count slots at conns (stride bytes apart), each
 * with no socket and on no list, all live. No ring yet: see
 * bench_loop_ring_init(). */
void bench_loop_init(struct bench_loop *loop, const char *name, void *conns, size_t conn_stride);

/* Make the ring; call on the thread that uses it (SINGLE_ISSUER and
 * DEFER_TASKRUN tie it to its creator; older kernels get a plain ring).
 * Returns 0, or -errno after saying so on stderr. */
int bench_loop_ring_init(struct bench_loop *loop);

/* Free the ring, if made. */
void bench_loop_ring_exit(struct bench_loop *loop);

/* Whether more work may start now: not stopping, --count not used up,
 * --duration not over. */
bool bench_loop_work_remains(const struct bench_loop *loop, uint64_t now);

/* Count work started against the --count share. */
void bench_loop_work_started(struct bench_loop *loop);

/* A session got somewhere: the failures before it do not mean the server
 * is hopeless. */
void bench_loop_progress(struct bench_loop *loop, uint64_t now);

/* From the tick: stop on SIGINT/SIGTERM, or when sessions have failed and
 * none got anywhere for BENCH_LOOP_HOPELESS_NS (saying so once, naming
 * server). */
void bench_loop_tick_stop(struct bench_loop *loop, uint64_t now, const char *server);

/* A slot is retired for good. */
void bench_loop_retire(struct bench_loop *loop);

/* Whether any slot is still live (a relaxed atomic read: the main thread
 * reads it too). */
bool bench_loop_is_live(const struct bench_loop *loop);

/* Submit what is queued, wait up to wait_ns for a completion, then hand
 * every completion to ops. Returns 0, or -errno from the ring after saying
 * so on stderr (the loop cannot go on). */
int bench_loop_wait(struct bench_loop *loop, uint64_t wait_ns, const struct bench_loop_ops *ops,
                    void *ctx);

/* The slot with this number. */
struct bench_loop_conn *bench_loop_conn_at(struct bench_loop *loop, uint32_t slot);

/* An SQE, submitting what is queued when the SQ is full. A ring that
 * cannot submit aborts: nothing sensible to continue with. */
struct io_uring_sqe *bench_loop_sqe_get(struct bench_loop *loop);

/* Open a socket (TCP_NODELAY; bound to the next of sources when
 * source_count > 0, *source_next advancing by source_step) and submit the
 * connect to server. Returns 0, or -errno with *is_bind_out saying whether
 * socket() or bind() failed; the slot then has no socket. */
int bench_loop_connect(struct bench_loop *loop, struct bench_loop_conn *io,
                       const struct sockaddr_storage *server, socklen_t server_bytes,
                       const struct sockaddr_storage *sources, uint32_t source_count,
                       socklen_t source_bytes, uint32_t *source_next, uint32_t source_step,
                       bool *is_bind_out);

/* Cancel every op on the slot's socket, if any is in flight. */
void bench_loop_cancel(struct bench_loop *loop, struct bench_loop_conn *io);

/* No op in flight: close the socket (a failure is said on stderr; the fd
 * is gone either way), forget any send, and move to the next generation. */
void bench_loop_release(struct bench_loop *loop, struct bench_loop_conn *io);

/* Arm a recv into buf[0..bytes) unless one is armed. */
void bench_loop_arm_recv(struct bench_loop *loop, struct bench_loop_conn *io, char *buf,
                         size_t bytes);

/* True while a send is in flight or part of one is still to go. */
bool bench_loop_is_sending(const struct bench_loop_conn *io);

/* Send iov[0..count), 1 <= count <= BENCH_LOOP_SEND_IOV_MAX; the caller
 * checked bench_loop_is_sending() first. */
void bench_loop_send(struct bench_loop *loop, struct bench_loop_conn *io, const struct iovec *iov,
                     uint32_t count);

/* A send completed with sent > 0 bytes: advance the iovs and submit the
 * rest. Returns true when everything has been sent. */
bool bench_loop_sent(struct bench_loop *loop, struct bench_loop_conn *io, size_t sent);

/* Append io to list; it must be on none. */
void bench_loop_list_push(struct bench_loop *loop, struct bench_loop_list *list,
                          struct bench_loop_conn *io);

/* Take the first slot off list; NULL if empty. */
struct bench_loop_conn *bench_loop_list_pop(struct bench_loop *loop, struct bench_loop_list *list);

/* Take io off list, wherever it is. */
void bench_loop_list_remove(struct bench_loop *loop, struct bench_loop_list *list,
                            struct bench_loop_conn *io);

/* Raise the soft file limit to connections + BENCH_LOOP_FD_RESERVE.
 * Returns 0, or -EMFILE after saying why on stderr ("toaster-bench name:"). */
int bench_loop_fd_limit(const char *name, uint32_t connections);

/* SIGINT and SIGTERM ask the workers to stop (a second one kills at once);
 * SIGPIPE is ignored (sends pass MSG_NOSIGNAL; this is for anything else). */
void bench_loop_signals_install(void);

/* Ask the workers to stop, as a signal does. */
void bench_loop_stop_request(void);

/* Whether a stop was asked for. */
bool bench_loop_is_stop_requested(void);

/* A worker's set-up (its part of the run, its slots; 0 or -errno) and its
 * teardown (free the slots; the counters stay). */
typedef int bench_loop_setup_fn(void *worker, uint32_t index);
typedef void bench_loop_teardown_fn(void *worker);

/* On the main thread: set up and start count workers (stride bytes apart
 * from workers, each starting with its struct bench_loop), in order, until
 * one fails, said on stderr as "toaster-bench name: ..." (a failed setup
 * frees what it made; a worker set up but not started is torn down). Each
 * thread runs bench_loop_thread_run() with ops and its worker as ctx.
 * Returns how many run; if not all, the ones that do are asked to stop. */
uint32_t bench_loop_threads_start(void *workers, size_t stride, uint32_t count, const char *name,
                                  bench_loop_setup_fn *setup, const struct bench_loop_ops *ops,
                                  bench_loop_teardown_fn *teardown);

/* Join the count started workers, in order, tearing each down after its
 * thread ends. Returns 0, or the -errno of the last worker whose loop
 * failed. */
int bench_loop_threads_join(void *workers, size_t stride, uint32_t count,
                            bench_loop_teardown_fn *teardown);

/* On the worker thread: make the ring, start every slot, and turn the
 * loop (wait, completions, tick) until no slot is live; then mark the loop
 * finished for bench_loop_watch(). The one loop meant to run until the
 * work is done: the command's start and tick retire every slot in the
 * end. A ring that cannot be made or fails leaves rc set. */
void bench_loop_thread_run(struct bench_loop *loop, const struct bench_loop_ops *ops, void *ctx);

/* On the main thread: wait until the count loops (stride bytes apart from
 * loops) are finished, calling progress once a second from start_ns when
 * is_progress (skipped, that second, if snapshot_bytes cannot be had);
 * then erase the progress line if one was printed. */
void bench_loop_watch(const void *loops, size_t stride, uint32_t count, bool is_progress,
                      uint64_t start_ns, size_t snapshot_bytes, bench_loop_progress_fn *progress,
                      void *ctx);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_loop_now_ns(void);

#endif
