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

enum bench_loop_op {
    BENCH_LOOP_OP_CONNECT = 1,
    BENCH_LOOP_OP_RECV,
    BENCH_LOOP_OP_SEND,
    BENCH_LOOP_OP_CANCEL, /* its completion only says the cancel ran: ignored */
};

/* What every connection slot has, whatever it speaks. A slot is reused
 * (generation + 1) only when no op is in flight. */
struct bench_loop_conn {
    uint32_t      slot;
    uint32_t      generation;
    int           fd;
    uint32_t      ops_in_flight;
    bool          is_connect_armed;
    bool          is_recv_armed;
    bool          is_send_armed;
    /* The send in flight: iov entries are advanced in place on a partial
     * send. */
    struct iovec  iov[BENCH_LOOP_SEND_IOV_MAX];
    uint32_t      iov_first;
    uint32_t      iov_count;
    struct msghdr msg;
    /* Intrusive list links (slot numbers). */
    uint32_t      list_prev;
    uint32_t      list_next;
};

/* A FIFO of slots, linked through bench_loop_conn.list_prev/list_next. */
struct bench_loop_list {
    uint32_t head;
    uint32_t tail;
    uint32_t count;
};

/* One worker thread's ring and slots. The slots live in the caller's array
 * of conn_stride-byte structs, each starting with a struct bench_loop_conn. */
struct bench_loop {
    const char            *name; /* "smtp", "imap": for messages */
    struct io_uring        ring;
    bool                   is_ring_ready;
    char                  *conns;
    size_t                 conn_stride;
    uint32_t               conn_count;
    struct bench_loop_list connect_queue;
    uint32_t               connects_in_flight;
    pthread_t              thread;
    int                    rc; /* 0, or -errno if the loop could not run */
    bool                   is_finished;
};

/* Called for each completion other than a cancel's, after the generic
 * bookkeeping (in-flight counts, armed flags) is done. */
typedef void bench_loop_completion_fn(void *ctx, struct bench_loop_conn *io,
                                      enum bench_loop_op op, int32_t res);

/* Called by bench_loop_watch() once a second. Returns true if it printed a
 * progress line (which the watch erases at the end). */
typedef bool bench_loop_progress_fn(void *ctx, uint64_t now_ns);

/* Prepare loop for conn_count slots at conns (stride bytes apart), each
 * with no socket and on no list. No ring yet: see bench_loop_ring_init(). */
void bench_loop_init(struct bench_loop *loop, const char *name, void *conns, size_t conn_stride,
                     uint32_t conn_count);

/* Make the ring; call on the thread that uses it (SINGLE_ISSUER and
 * DEFER_TASKRUN tie it to its creator; older kernels get a plain ring).
 * Returns 0, or -errno after saying so on stderr. */
int bench_loop_ring_init(struct bench_loop *loop);

/* Free the ring, if made. */
void bench_loop_ring_exit(struct bench_loop *loop);

/* Submit what is queued, wait up to wait_ns for a completion, then hand
 * every completion to fn. Returns 0, or -errno from the ring after saying
 * so on stderr (the loop cannot go on). */
int bench_loop_wait(struct bench_loop *loop, uint64_t wait_ns, bench_loop_completion_fn *fn,
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
void bench_loop_send(struct bench_loop *loop, struct bench_loop_conn *io,
                     const struct iovec *iov, uint32_t count);

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

/* On the main thread: wait until the count loops (stride bytes apart from
 * loops) are finished, calling progress once a second from start_ns when
 * is_progress; then erase the progress line if one was printed. */
void bench_loop_watch(const void *loops, size_t stride, uint32_t count, bool is_progress,
                      uint64_t start_ns, bench_loop_progress_fn *progress, void *ctx);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_loop_now_ns(void);

/* xorshift64*: fast, for picking sizes, recipients, commands, messages. */
uint64_t bench_loop_rng_next(uint64_t *state);

#endif
