/*
 * bench/bench_smtp.c - toaster-bench smtp: the event loops and the SMTP
 * client sessions.
 *
 * Each worker thread owns one io_uring, its share of the connection slots
 * (allocated once at start: a 2 KiB receive buffer, a command buffer and a
 * head buffer each, nothing allocated afterwards) and one struct
 * bench_smtp_stats. Message tails are shared read-only (bench_message). The
 * main thread starts the workers, prints the progress line once a second
 * when stdout is a terminal, then merges the counters and reports.
 *
 * A session is an explicit state machine (enum conn_state); every reply
 * goes through session_reply(). Per connection at most one connect, one
 * recv and one send are in flight. The recv stays armed while connected;
 * sends go out with sendmsg from the command buffer, the head buffer and
 * the shared tail, and a partial send is resumed where it stopped. Replies
 * are parsed line by line (multi-line "250-" included) in the fixed
 * receive buffer by bench/bench_reply; a line that does not fit is a
 * protocol error.
 *
 * With PIPELINING (and --pipelining on) MAIL, every RCPT and DATA go in one
 * write, and with --bdat and CHUNKING the BDAT LAST chunk follows in that
 * same write. Without it each command waits for its reply. Any refusal is
 * counted by code; a failed transaction is followed by RSET; 421 closes.
 *
 * Latency runs from the completion of the send that hands the kernel the
 * last byte of the message (the "." line, or the end of the BDAT LAST
 * chunk) to the parse of the final reply. Most of a big message's
 * transfer time is thus left out; what still sits in the socket buffers
 * (up to a few MiB on loopback) is not, as no client can see when the
 * server reads it. (The send CQE is always posted before the reply's recv
 * CQE; should it ever not be, the submission time of that send is used.)
 *
 * Closing runs in order: cancel everything on the fd, collect every CQE,
 * close the fd, then reconnect, back off or retire the slot. user_data
 * packs op kind, slot and slot generation; because a slot is reused only
 * when no op is in flight, a completion for an older generation cannot
 * happen and is asserted.
 *
 * Limits: BENCH_SMTP_CONNECTIONS_MAX connections, RECV_BUFFER_BYTES per
 * connection, BENCH_REPLY_LINES_MAX lines per reply, CONNECTS_IN_FLIGHT_MAX
 * connects per thread, --timeout per reply.
 */
#define _GNU_SOURCE
#include "bench/bench_smtp.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_message.h"
#include "bench/bench_reply.h"
#include "bench/bench_smtp_report.h"
#include "core/assertions.h"

#define RECV_BUFFER_BYTES 2048
#define RING_ENTRIES 4096
#define CQ_ENTRIES_MAX 65536
#define CQE_BATCH 256
#define CONNECTS_IN_FLIGHT_MAX 256
#define BACKOFF_NS (100 * NS_PER_MS)
#define TICK_NS (100 * NS_PER_MS)
#define RATE_TICK_NS_MIN (50 * NS_PER_US)
#define HOPELESS_NS (5 * NS_PER_S)
#define FD_RESERVE 64
#define SEND_IOV_MAX 3
#define SLOT_NONE UINT32_MAX

#define NS_PER_US UINT64_C(1000)
#define NS_PER_MS UINT64_C(1000000)
#define NS_PER_S UINT64_C(1000000000)

#define GENERATION_BITS 24
#define GENERATION_MASK ((UINT32_C(1) << GENERATION_BITS) - 1)

static_assert(BENCH_SMTP_CONNECTIONS_MAX < SLOT_NONE, "slot numbers fit in 32 bits");
static_assert(RECV_BUFFER_BYTES > 512 + 2,
              "a receive buffer holds the longest RFC 5321 reply line");

enum op_kind {
    OP_CONNECT = 1,
    OP_RECV,
    OP_SEND,
    OP_CANCEL, /* its completion only says the cancel ran: ignored */
};

enum conn_state {
    CONN_STATE_IDLE,       /* no socket; waiting in the connect queue */
    CONN_STATE_BACKOFF,    /* no socket; the last attempt failed, waiting for deadline */
    CONN_STATE_CONNECTING, /* connect in flight */
    CONN_STATE_GREETING,   /* waiting for 220 */
    CONN_STATE_EHLO,       /* EHLO sent, collecting extensions */
    CONN_STATE_HELO,       /* EHLO refused as unknown, HELO sent */
    CONN_STATE_READY,      /* greeted, parked until the rate allows a message */
    CONN_STATE_MAIL,       /* waiting for the MAIL reply */
    CONN_STATE_RCPT,       /* waiting for RCPT replies */
    CONN_STATE_DATA,       /* waiting for 354 */
    CONN_STATE_FINAL,      /* message sent (or being sent); waiting for the final reply */
    CONN_STATE_RSET,       /* a transaction failed; waiting for the RSET reply */
    CONN_STATE_QUIT,       /* waiting for 221 */
    CONN_STATE_DRAIN,      /* 221 seen; waiting for the server to close first */
    CONN_STATE_CLOSING,    /* cancel sent; waiting for the ops in flight */
    CONN_STATE_DONE,       /* no more work: the slot is retired */
};

struct conn {
    uint32_t        slot;
    uint32_t        generation;
    int             fd;
    enum conn_state state;
    uint32_t        ops_in_flight;
    bool            is_connect_armed;
    bool            is_recv_armed;
    bool            is_send_armed;
    bool            is_connected;
    bool            is_abnormal_close; /* back off before reconnecting */
    bool            is_parked;
    /* Server extensions, from the EHLO reply. */
    bool            has_pipelining;
    bool            has_chunking;
    bool            has_size;
    uint32_t        messages_this_session;
    uint64_t        deadline_ns; /* reply, connect or backoff deadline; 0: none */
    /* The transaction in progress. */
    bool            is_in_txn;
    bool            is_pipelined_txn;
    bool            is_bdat_txn;
    bool            is_mail_ok;
    bool            is_txn_failed;
    uint32_t        rcpt_replies;
    uint32_t        rcpt_ok;
    size_t          class_index;
    uint64_t        eod_ns;
    /* Receive side. */
    char           *recv_buf;
    size_t          recv_bytes;
    struct bench_reply reply;
    /* Send side: the command buffer, the head buffer and the send in
     * flight (iov entries are advanced in place on a partial send). */
    char           *cmd;
    size_t          cmd_bytes;
    size_t          cmd_pos; /* next command to send one at a time */
    char           *head;
    size_t          head_bytes;
    bool            send_has_eod;
    struct iovec    iov[SEND_IOV_MAX];
    uint32_t        iov_first;
    uint32_t        iov_count;
    struct msghdr   msg;
    /* Intrusive list: the connect queue or the parked list. */
    uint32_t        list_prev;
    uint32_t        list_next;
};

struct conn_list {
    uint32_t head;
    uint32_t tail;
    uint32_t count;
};

struct run;

struct worker {
    struct run             *run;
    uint32_t                index;
    pthread_t               thread;
    struct io_uring         ring;
    bool                    is_ring_ready;
    struct conn            *conns;
    uint32_t                conn_count;
    char                   *slab;
    uint32_t                live_count;   /* slots not DONE */
    struct conn_list        connect_queue;
    struct conn_list        parked;
    uint32_t                connects_in_flight;
    uint64_t                started;      /* transactions started */
    bool                    has_count;    /* --count, else --duration */
    uint64_t                count_share;  /* this worker's part of --count, maybe 0 */
    uint64_t                end_ns;       /* --duration end; 0: none */
    double                  rate;         /* this worker's share; 0: closed loop */
    bool                    is_stopping;
    uint64_t                sequence;
    uint64_t                rng;
    uint32_t                source_next;
    time_t                  date_second;
    char                    date[BENCH_MESSAGE_DATE_BYTES];
    char                    ehlo_line[BENCH_SMTP_HELO_BYTES_MAX + 8];
    char                    helo_line[BENCH_SMTP_HELO_BYTES_MAX + 8];
    char                   *rcpt_storage; /* rcpts_per_message addresses */
    const char            **rcpt_ptrs;
    uint64_t                last_tick_ns;
    /* Giving up: sessions that failed before EHLO was accepted, since the
     * last one that got that far or the last final reply. */
    uint64_t                last_progress_ns;
    uint64_t                failures_since_progress;
    bool                    has_reported_connect_error;
    bool                    has_reported_protocol_error;
    struct bench_smtp_stats stats;
    int                     rc; /* 0, or -errno if the loop could not run */
    bool                    is_finished;
};

struct run {
    const struct bench_smtp_options *options;
    struct bench_message            *message;
    size_t                           cmd_bytes_max;
    size_t                           head_bytes_max;
    uint64_t                         run_id;
    uint64_t                         start_ns;
    uint64_t                         rcpt_next; /* round-robin, shared: atomic */
    struct worker                   *workers;
};

static int stop_requested; /* set by SIGINT/SIGTERM, read with atomics */

static void *worker_main(void *arg);
static int worker_setup(struct worker *w);
static void worker_teardown(struct worker *w);
static void worker_loop(struct worker *w);
static void worker_tick(struct worker *w, uint64_t now);
static void worker_rate_release(struct worker *w, uint64_t now);
static bool work_remains(struct worker *w, uint64_t now);
static void completion(struct worker *w, uint64_t user_data, int32_t res);
static void on_connect(struct worker *w, struct conn *c, int32_t res);
static void on_recv(struct worker *w, struct conn *c, int32_t res);
static void on_send(struct worker *w, struct conn *c, int32_t res);
static void conn_start(struct worker *w, struct conn *c);
static void conn_close(struct worker *w, struct conn *c, bool is_abnormal);
static void conn_settle(struct worker *w, struct conn *c);
static void conn_finalize(struct worker *w, struct conn *c);
static void conn_enter(struct conn *c, enum conn_state next);
static void conn_arm_recv(struct worker *w, struct conn *c);
static void conn_send(struct worker *w, struct conn *c, const struct iovec *iov, uint32_t count,
                      bool has_eod);
static void conn_send_text(struct worker *w, struct conn *c, const char *text);
static void conn_send_submit(struct worker *w, struct conn *c);
static void conn_protocol_error(struct worker *w, struct conn *c, const char *what,
                                const char *line, size_t line_bytes);
static void conn_wait_reply(struct worker *w, struct conn *c);
static bool reply_parse(struct worker *w, struct conn *c);
static void session_line(struct worker *w, struct conn *c, const char *line, size_t line_bytes);
static void session_reply(struct worker *w, struct conn *c, int code);
static void session_ready(struct worker *w, struct conn *c);
static void session_quit(struct worker *w, struct conn *c);
static void txn_start(struct worker *w, struct conn *c);
static void txn_send_next_command(struct worker *w, struct conn *c);
static void txn_send_message(struct worker *w, struct conn *c);
static void txn_end(struct worker *w, struct conn *c, bool is_accepted, uint64_t now);
static void txn_fail(struct worker *w, struct conn *c);
static void count_code(struct worker *w, int code);
static void list_push(struct worker *w, struct conn_list *list, struct conn *c);
static struct conn *list_pop(struct worker *w, struct conn_list *list);
static void list_remove(struct worker *w, struct conn_list *list, struct conn *c);
static struct io_uring_sqe *sqe_get(struct worker *w);
static uint64_t user_data_pack(enum op_kind kind, const struct conn *c);
static uint64_t now_ns(void);
static uint64_t rng_next(uint64_t *state);
static void signal_stop(int signo);

int
bench_smtp_main(int argc, char **argv, const char *command)
{
    struct bench_smtp_options options;

    int rc = bench_smtp_options_parse(argc, argv, &options);
    if (rc == BENCH_SMTP_OPTIONS_HELP) {
        return BENCH_EXIT_OK;
    }
    if (rc < 0) {
        return BENCH_EXIT_USAGE;
    }
    return bench_smtp_run(&options, command);
}

int
bench_smtp_run(const struct bench_smtp_options *options, const char *command)
{
    struct run run = {.options = options};
    char err[256];

    /* File descriptors: one per connection and a few for us. */
    struct rlimit limit;
    uint64_t fds_needed = (uint64_t)options->connections + FD_RESERVE;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < fds_needed) {
        if (limit.rlim_max != RLIM_INFINITY && limit.rlim_max < fds_needed) {
            (void)fprintf(stderr,
                          "toaster-bench smtp: --connections %" PRIu32 " needs %" PRIu64
                          " file descriptors; the hard limit is %llu (ulimit -Hn)\n",
                          options->connections, fds_needed, (unsigned long long)limit.rlim_max);
            return BENCH_EXIT_USAGE;
        }
        limit.rlim_cur = fds_needed;
        if (setrlimit(RLIMIT_NOFILE, &limit) < 0) {
            (void)fprintf(stderr, "toaster-bench smtp: raising the file limit to %" PRIu64 ": %s\n",
                          fds_needed, strerror(errno));
            return BENCH_EXIT_USAGE;
        }
    }

    /* The longest recipient this configuration can produce. */
    char address[BENCH_MESSAGE_ADDRESS_BYTES_MAX];
    int address_bytes = bench_message_address_format(options->rcpt_pattern, options->users,
                                                     address, sizeof(address));
    ASSERT(address_bytes > 0); /* the options checked the pattern's length */
    struct bench_message_config message_config = {
        .from = options->from,
        .classes = options->classes,
        .class_count = options->class_count,
        .rcpt_bytes_max = (size_t)address_bytes,
        .rcpts_per_message = options->rcpts_per_message,
    };
    int rc = bench_message_create(&message_config, &run.message, err, sizeof(err));
    if (rc == -EINVAL) {
        (void)fprintf(stderr, "toaster-bench smtp: %s\n", err);
        return BENCH_EXIT_USAGE;
    }
    if (rc < 0) {
        (void)fprintf(stderr, "toaster-bench smtp: %s\n", err);
        return BENCH_EXIT_FAILED;
    }
    /* MAIL with SIZE, every RCPT, DATA or BDAT; the longest of each. */
    run.cmd_bytes_max = 64 + strlen(options->from) + 32 +
                        (size_t)options->rcpts_per_message * ((size_t)address_bytes + 16) + 48;
    run.head_bytes_max = bench_message_head_bytes_max(run.message);
    run.start_ns = now_ns();
    run.run_id = run.start_ns ^ ((uint64_t)getpid() << 40);

    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = signal_stop;
    action.sa_flags = (int)SA_RESETHAND; /* a second ^C kills at once */
    (void)sigemptyset(&action.sa_mask);
    (void)sigaction(SIGINT, &action, NULL);
    (void)sigaction(SIGTERM, &action, NULL);
    /* Sends pass MSG_NOSIGNAL; this is for anything else. */
    (void)signal(SIGPIPE, SIG_IGN);

    uint32_t threads = options->threads;
    run.workers = calloc(threads, sizeof(*run.workers));
    if (run.workers == NULL) {
        bench_message_destroy(&run.message);
        (void)fprintf(stderr, "toaster-bench smtp: out of memory\n");
        return BENCH_EXIT_FAILED;
    }
    uint32_t started_threads = 0;
    for (uint32_t i = 0; i < threads; i++) {
        struct worker *w = &run.workers[i];
        w->run = &run;
        w->index = i;
        w->conn_count = options->connections / threads + (i < options->connections % threads);
        if (options->count > 0) {
            w->has_count = true;
            w->count_share = options->count / threads + (i < options->count % threads);
        }
        if (options->duration_s > 0) {
            w->end_ns = run.start_ns + (uint64_t)(options->duration_s * 1e9);
        }
        w->rate = options->rate / threads;
        w->rng = options->seed * 0x9e3779b97f4a7c15ULL + i + 1;
        bench_smtp_stats_init(&w->stats);
        rc = worker_setup(w);
        if (rc < 0) {
            (void)fprintf(stderr, "toaster-bench smtp: thread %" PRIu32 ": setup: %s\n", i,
                          strerror(-rc));
            break;
        }
        rc = pthread_create(&w->thread, NULL, worker_main, w);
        if (rc != 0) {
            (void)fprintf(stderr, "toaster-bench smtp: pthread_create: %s\n", strerror(rc));
            worker_teardown(w);
            rc = -rc;
            break;
        }
        started_threads++;
    }
    if (started_threads < threads) {
        __atomic_store_n(&stop_requested, 1, __ATOMIC_RELAXED);
    }

    /* Watch: a progress line once a second on a terminal. */
    bool is_progress = !options->is_quiet && isatty(STDOUT_FILENO);
    uint64_t next_progress_ns = run.start_ns + NS_PER_S;
    uint64_t last_accepted = 0;
    uint64_t last_progress_ns = run.start_ns;
    bool has_progress_line = false;
    for (;;) {
        uint32_t finished = 0;
        for (uint32_t i = 0; i < started_threads; i++) {
            finished += __atomic_load_n(&run.workers[i].is_finished, __ATOMIC_ACQUIRE);
        }
        if (finished == started_threads) {
            break;
        }
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 50 * 1000 * 1000};
        (void)nanosleep(&pause, NULL);
        uint64_t now = now_ns();
        if (is_progress && now >= next_progress_ns) {
            struct bench_smtp_stats *snapshot = malloc(sizeof(*snapshot));
            if (snapshot != NULL) {
                bench_smtp_stats_init(snapshot);
                for (uint32_t i = 0; i < started_threads; i++) {
                    bench_smtp_stats_merge(snapshot, &run.workers[i].stats);
                }
                double window_s = (double)(now - last_progress_ns) / 1e9;
                double rate_now = (double)(snapshot->messages_accepted - last_accepted) / window_s;
                bench_smtp_report_progress(stdout, (double)(now - run.start_ns) / 1e9, snapshot,
                                           rate_now);
                has_progress_line = true;
                last_accepted = snapshot->messages_accepted;
                last_progress_ns = now;
                free(snapshot);
            }
            next_progress_ns += NS_PER_S;
            if (next_progress_ns < now) {
                next_progress_ns = now + NS_PER_S;
            }
        }
    }
    if (has_progress_line) {
        (void)fputs("\r\033[K", stdout);
    }

    struct bench_smtp_stats *total = malloc(sizeof(*total));
    int exit_status = BENCH_EXIT_FAILED;
    int worker_rc = 0;
    if (total == NULL) {
        (void)fprintf(stderr, "toaster-bench smtp: out of memory\n");
    } else {
        bench_smtp_stats_init(total);
    }
    for (uint32_t i = 0; i < started_threads; i++) {
        struct worker *w = &run.workers[i];
        int join_rc = pthread_join(w->thread, NULL);
        ASSERT(join_rc == 0);
        if (w->rc < 0) {
            worker_rc = w->rc;
        }
        if (total != NULL) {
            bench_smtp_stats_merge(total, &w->stats);
        }
        worker_teardown(w);
    }

    if (total != NULL && started_threads == threads) {
        uint64_t end_ns = total->last_final_reply_ns;
        if (end_ns == 0) {
            end_ns = now_ns();
        }
        struct bench_smtp_report_info info = {
            .server = options->server_text,
            .command = command,
            .connections = options->connections,
            .threads = threads,
            .size_text = options->size_text,
            .is_pipelining = options->is_pipelining,
            .is_bdat = options->is_bdat,
            .rate = options->rate,
            .seconds = (double)(end_ns - run.start_ns) / 1e9,
        };
        if (!options->is_quiet) {
            bench_smtp_report_summary(stdout, &info, total);
        }
        bool is_clean = worker_rc == 0 && total->messages_accepted > 0 &&
                        total->messages_failed == 0 && bench_smtp_stats_errors(total) == 0;
        exit_status = is_clean ? BENCH_EXIT_OK : BENCH_EXIT_FAILED;
        if (options->json_path != NULL) {
            rc = bench_smtp_report_json(options->json_path, &info, total);
            if (rc < 0) {
                (void)fprintf(stderr, "toaster-bench smtp: writing %s: %s\n", options->json_path,
                              strerror(-rc));
                exit_status = BENCH_EXIT_FAILED;
            }
        }
    }
    (void)fflush(stdout);
    free(total);
    free(run.workers);
    bench_message_destroy(&run.message);
    return exit_status;
}

static void *
worker_main(void *arg)
{
    struct worker *w = arg;
    struct io_uring_params params;

    /* The ring is made on the thread that uses it: SINGLE_ISSUER and
     * DEFER_TASKRUN tie it to its creator. Older kernels get a plain ring. */
    uint32_t cq_entries = RING_ENTRIES * 2;
    while (cq_entries < w->conn_count * 3 && cq_entries < CQ_ENTRIES_MAX) {
        cq_entries *= 2;
    }
    memset(&params, 0, sizeof(params));
    params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP | IORING_SETUP_SINGLE_ISSUER |
                   IORING_SETUP_DEFER_TASKRUN;
    params.cq_entries = cq_entries;
    int rc = io_uring_queue_init_params(RING_ENTRIES, &w->ring, &params);
    if (rc == -EINVAL) {
        memset(&params, 0, sizeof(params));
        params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
        params.cq_entries = cq_entries;
        rc = io_uring_queue_init_params(RING_ENTRIES, &w->ring, &params);
    }
    if (rc < 0) {
        (void)fprintf(stderr, "toaster-bench smtp: io_uring_queue_init: %s\n", strerror(-rc));
        w->rc = rc;
        __atomic_store_n(&w->is_finished, true, __ATOMIC_RELEASE);
        return NULL;
    }
    w->is_ring_ready = true;
    worker_loop(w);
    __atomic_store_n(&w->is_finished, true, __ATOMIC_RELEASE);
    return NULL;
}

/* Allocate the slots and their buffers; runs before the thread starts. */
static int
worker_setup(struct worker *w)
{
    const struct run *run = w->run;
    const struct bench_smtp_options *options = run->options;
    size_t per_conn = RECV_BUFFER_BYTES + run->cmd_bytes_max + run->head_bytes_max;
    per_conn = (per_conn + 63) / 64 * 64; /* rounds up to a cache line */

    w->conns = calloc(w->conn_count, sizeof(*w->conns));
    /* Untouched pages of a large calloc cost nothing until used. */
    w->slab = calloc(w->conn_count, per_conn);
    w->rcpt_storage = calloc(options->rcpts_per_message, BENCH_MESSAGE_ADDRESS_BYTES_MAX);
    w->rcpt_ptrs = calloc(options->rcpts_per_message, sizeof(*w->rcpt_ptrs));
    if (w->conns == NULL || w->slab == NULL || w->rcpt_storage == NULL || w->rcpt_ptrs == NULL) {
        worker_teardown(w);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < w->conn_count; i++) {
        struct conn *c = &w->conns[i];
        char *base = w->slab + (size_t)i * per_conn;
        c->slot = i;
        c->fd = -1;
        c->state = CONN_STATE_IDLE;
        c->recv_buf = base;
        bench_reply_init(&c->reply);
        c->cmd = base + RECV_BUFFER_BYTES;
        c->head = c->cmd + run->cmd_bytes_max;
        c->list_prev = SLOT_NONE;
        c->list_next = SLOT_NONE;
    }
    for (uint32_t i = 0; i < options->rcpts_per_message; i++) {
        w->rcpt_ptrs[i] = w->rcpt_storage + (size_t)i * BENCH_MESSAGE_ADDRESS_BYTES_MAX;
    }
    w->connect_queue = (struct conn_list){SLOT_NONE, SLOT_NONE, 0};
    w->parked = (struct conn_list){SLOT_NONE, SLOT_NONE, 0};
    w->live_count = w->conn_count;
    w->source_next = w->index;
    int n = snprintf(w->ehlo_line, sizeof(w->ehlo_line), "EHLO %s\r\n", options->helo);
    ASSERT(n > 0 && (size_t)n < sizeof(w->ehlo_line));
    n = snprintf(w->helo_line, sizeof(w->helo_line), "HELO %s\r\n", options->helo);
    ASSERT(n > 0 && (size_t)n < sizeof(w->helo_line));
    return 0;
}

static void
worker_teardown(struct worker *w)
{
    if (w->is_ring_ready) {
        io_uring_queue_exit(&w->ring);
        w->is_ring_ready = false;
    }
    free(w->conns);
    free(w->slab);
    free(w->rcpt_storage);
    free((void *)w->rcpt_ptrs);
    w->conns = NULL;
    w->slab = NULL;
    w->rcpt_storage = NULL;
    w->rcpt_ptrs = NULL;
}

static void
worker_loop(struct worker *w)
{
    struct io_uring_cqe *cqes[CQE_BATCH];
    uint64_t now = now_ns();

    w->last_tick_ns = now;
    w->last_progress_ns = now;
    for (uint32_t i = 0; i < w->conn_count; i++) {
        conn_start(w, &w->conns[i]);
    }
    /* The one loop meant to run until the work is done: it ends when every
     * slot is retired, which work_remains() and the timeouts guarantee. */
    while (w->live_count > 0) {
        uint64_t wait_ns = TICK_NS;
        if (w->rate > 0 && w->parked.count > 0) {
            /* Wake for the next message the rate allows. */
            wait_ns = (uint64_t)(1e9 / w->rate);
            if (wait_ns < RATE_TICK_NS_MIN) {
                wait_ns = RATE_TICK_NS_MIN;
            }
            if (wait_ns > TICK_NS) {
                wait_ns = TICK_NS;
            }
        }
        struct __kernel_timespec ts = {
            .tv_sec = (long long)(wait_ns / NS_PER_S),
            .tv_nsec = (long long)(wait_ns % NS_PER_S),
        };
        struct io_uring_cqe *cqe = NULL;
        int rc = io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, &ts, NULL);
        if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
            (void)fprintf(stderr, "toaster-bench smtp: io_uring_submit_and_wait: %s\n",
                          strerror(-rc));
            w->rc = rc;
            return;
        }
        for (;;) {
            unsigned n = io_uring_peek_batch_cqe(&w->ring, cqes, CQE_BATCH);
            if (n == 0) {
                break;
            }
            /* Copy out first: handlers queue new SQEs, and a full SQ is
             * submitted from inside them. */
            uint64_t user_data[CQE_BATCH];
            int32_t res[CQE_BATCH];
            for (unsigned i = 0; i < n; i++) {
                user_data[i] = cqes[i]->user_data;
                res[i] = cqes[i]->res;
            }
            io_uring_cq_advance(&w->ring, n);
            for (unsigned i = 0; i < n; i++) {
                completion(w, user_data[i], res[i]);
            }
        }
        now = now_ns();
        if (w->rate > 0) {
            worker_rate_release(w, now);
        }
        if (now - w->last_tick_ns >= TICK_NS) {
            worker_tick(w, now);
            w->last_tick_ns = now;
        }
    }
    /* Every slot is retired, so no socket is open and no op is in flight;
     * only cancels may still sit in the SQ, and they match nothing now. */
    (void)io_uring_submit(&w->ring);
}

/* Timeouts, backoffs, the end of the run, and giving up on a server that
 * refuses everything. Runs every TICK_NS. */
static void
worker_tick(struct worker *w, uint64_t now)
{
    if (!w->is_stopping && __atomic_load_n(&stop_requested, __ATOMIC_RELAXED) != 0) {
        w->is_stopping = true;
    }
    if (!w->is_stopping && w->failures_since_progress > 0 &&
        now - w->last_progress_ns > HOPELESS_NS) {
        (void)fprintf(stderr,
                      "toaster-bench smtp: no session with %s got anywhere for %d s; giving up\n",
                      w->run->options->server_text, (int)(HOPELESS_NS / NS_PER_S));
        w->is_stopping = true;
    }
    bool is_working = work_remains(w, now);
    if (!is_working) {
        /* Nothing more to start: parked sessions say goodbye, queued and
         * backing-off slots retire. */
        struct conn *c;
        while ((c = list_pop(w, &w->parked)) != NULL) {
            c->is_parked = false;
            session_quit(w, c);
            conn_settle(w, c);
        }
        while ((c = list_pop(w, &w->connect_queue)) != NULL) {
            conn_enter(c, CONN_STATE_DONE);
            w->live_count--;
        }
    }
    for (uint32_t i = 0; i < w->conn_count; i++) {
        struct conn *c = &w->conns[i];
        if (c->deadline_ns == 0 || now < c->deadline_ns) {
            continue;
        }
        c->deadline_ns = 0;
        switch (c->state) {
        case CONN_STATE_BACKOFF:
            if (is_working) {
                conn_enter(c, CONN_STATE_IDLE);
                conn_start(w, c);
            } else {
                conn_enter(c, CONN_STATE_DONE);
                w->live_count--;
            }
            break;
        case CONN_STATE_DRAIN:
            /* The server did not close after 221: we do, no harm done. */
            conn_close(w, c, false);
            conn_settle(w, c);
            break;
        case CONN_STATE_CONNECTING:
        case CONN_STATE_GREETING:
        case CONN_STATE_EHLO:
        case CONN_STATE_HELO:
        case CONN_STATE_MAIL:
        case CONN_STATE_RCPT:
        case CONN_STATE_DATA:
        case CONN_STATE_FINAL:
        case CONN_STATE_RSET:
        case CONN_STATE_QUIT:
            bench_smtp_stats_add(&w->stats.timeouts, 1);
            conn_close(w, c, true);
            conn_settle(w, c);
            break;
        case CONN_STATE_IDLE:
        case CONN_STATE_READY:
        case CONN_STATE_CLOSING:
        case CONN_STATE_DONE:
            break;
        }
    }
}

/* Open loop: start as many parked sessions as the schedule allows by now. */
static void
worker_rate_release(struct worker *w, uint64_t now)
{
    uint64_t allowed = (uint64_t)((double)(now - w->run->start_ns) * w->rate / 1e9) + 1;

    while (w->parked.count > 0 && w->started < allowed && work_remains(w, now)) {
        struct conn *c = list_pop(w, &w->parked);
        ASSERT(c->state == CONN_STATE_READY);
        c->is_parked = false;
        txn_start(w, c);
        conn_settle(w, c);
    }
}

static bool
work_remains(struct worker *w, uint64_t now)
{
    if (w->is_stopping) {
        return false;
    }
    if (w->has_count && w->started >= w->count_share) {
        return false;
    }
    if (w->end_ns > 0 && now >= w->end_ns) {
        return false;
    }
    return true;
}

static void
completion(struct worker *w, uint64_t user_data, int32_t res)
{
    enum op_kind kind = (enum op_kind)(user_data & 0xff);
    uint32_t generation = (uint32_t)(user_data >> 8) & GENERATION_MASK;
    uint32_t slot = (uint32_t)(user_data >> 32);

    if (kind == OP_CANCEL) {
        return; /* the cancelled ops report for themselves */
    }
    ASSERT(slot < w->conn_count);
    struct conn *c = &w->conns[slot];
    /* A slot changes generation only with no op in flight. */
    ASSERT(generation == c->generation);
    ASSERT(c->ops_in_flight > 0);
    c->ops_in_flight--;
    switch (kind) {
    case OP_CONNECT:
        ASSERT(c->is_connect_armed);
        c->is_connect_armed = false;
        ASSERT(w->connects_in_flight > 0);
        w->connects_in_flight--;
        on_connect(w, c, res);
        /* A connect slot came free. */
        while (w->connects_in_flight < CONNECTS_IN_FLIGHT_MAX && w->connect_queue.count > 0) {
            conn_start(w, list_pop(w, &w->connect_queue));
        }
        break;
    case OP_RECV:
        ASSERT(c->is_recv_armed);
        c->is_recv_armed = false;
        on_recv(w, c, res);
        break;
    case OP_SEND:
        ASSERT(c->is_send_armed);
        c->is_send_armed = false;
        on_send(w, c, res);
        break;
    case OP_CANCEL:
    default:
        ASSERT(!"known op kind");
    }
    conn_settle(w, c);
}

static void
on_connect(struct worker *w, struct conn *c, int32_t res)
{
    if (c->state == CONN_STATE_CLOSING) {
        return;
    }
    ASSERT(c->state == CONN_STATE_CONNECTING);
    if (res < 0) {
        bench_smtp_stats_add(&w->stats.connect_errors, 1);
        if (!w->has_reported_connect_error) {
            (void)fprintf(stderr, "toaster-bench smtp: connect to %s: %s\n",
                          w->run->options->server_text, strerror(-res));
            w->has_reported_connect_error = true;
        }
        conn_close(w, c, true);
        return;
    }
    bench_smtp_stats_add(&w->stats.connects_ok, 1);
    bench_smtp_stats_add(&w->stats.connections_open, 1);
    c->is_connected = true;
    conn_enter(c, CONN_STATE_GREETING);
    conn_arm_recv(w, c);
    conn_wait_reply(w, c);
}

static void
on_recv(struct worker *w, struct conn *c, int32_t res)
{
    if (c->state == CONN_STATE_CLOSING) {
        return;
    }
    if (res <= 0) {
        /* The server closed. After QUIT that is the goal; anywhere else
         * it is an error, and a transaction in progress is lost. */
        if (c->state == CONN_STATE_DRAIN || c->state == CONN_STATE_QUIT) {
            conn_close(w, c, false);
            return;
        }
        bench_smtp_stats_add(&w->stats.closed, 1);
        conn_close(w, c, true);
        return;
    }
    c->recv_bytes += (size_t)res;
    ASSERT(c->recv_bytes <= RECV_BUFFER_BYTES);
    if (c->state == CONN_STATE_DRAIN) {
        c->recv_bytes = 0; /* nothing more is expected; keep waiting for the close */
    } else if (!reply_parse(w, c)) {
        return; /* closed */
    }
    if (c->state != CONN_STATE_CLOSING) {
        conn_arm_recv(w, c);
    }
}

static void
on_send(struct worker *w, struct conn *c, int32_t res)
{
    if (c->state == CONN_STATE_CLOSING) {
        return;
    }
    if (res <= 0) {
        bench_smtp_stats_add(&w->stats.closed, 1);
        conn_close(w, c, true);
        return;
    }
    size_t sent = (size_t)res;
    while (sent > 0) {
        ASSERT(c->iov_first < c->iov_count);
        struct iovec *iov = &c->iov[c->iov_first];
        if (sent < iov->iov_len) {
            iov->iov_base = (char *)iov->iov_base + sent;
            iov->iov_len -= sent;
            sent = 0;
        } else {
            sent -= iov->iov_len;
            iov->iov_len = 0;
            c->iov_first++;
        }
    }
    while (c->iov_first < c->iov_count && c->iov[c->iov_first].iov_len == 0) {
        c->iov_first++;
    }
    if (c->iov_first < c->iov_count) {
        conn_send_submit(w, c); /* partial: the rest */
        return;
    }
    if (c->send_has_eod) {
        c->eod_ns = now_ns(); /* the end of data is with the kernel */
    }
}

/* Open a connection for slot c, or queue it while too many connects are in
 * flight, or retire it when no work remains. */
static void
conn_start(struct worker *w, struct conn *c)
{
    const struct bench_smtp_options *options = w->run->options;

    ASSERT(c->state == CONN_STATE_IDLE);
    ASSERT(c->fd < 0);
    ASSERT(c->ops_in_flight == 0);
    if (!work_remains(w, now_ns())) {
        conn_enter(c, CONN_STATE_DONE);
        w->live_count--;
        return;
    }
    if (w->connects_in_flight >= CONNECTS_IN_FLIGHT_MAX) {
        list_push(w, &w->connect_queue, c);
        return;
    }
    int fd = socket(options->server.ss_family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0) {
        int error = errno;
        bench_smtp_stats_add(&w->stats.connect_errors, 1);
        w->failures_since_progress++;
        if (!w->has_reported_connect_error) {
            (void)fprintf(stderr, "toaster-bench smtp: socket: %s\n", strerror(error));
            w->has_reported_connect_error = true;
        }
        conn_enter(c, CONN_STATE_BACKOFF);
        c->deadline_ns = now_ns() + BACKOFF_NS;
        return;
    }
    int one = 1;
    /* Commands are small and latency is what we measure: no Nagle. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (options->source_count > 0) {
        const struct sockaddr_storage *source =
            &options->sources[w->source_next % options->source_count];
        w->source_next += options->threads;
        /* Let connect() pick the port for the whole 4-tuple, so each source
         * address gives a full ephemeral range per server. */
        (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        if (bind(fd, (const struct sockaddr *)source, options->source_bytes) < 0) {
            int error = errno;
            (void)close(fd);
            bench_smtp_stats_add(&w->stats.connect_errors, 1);
            w->failures_since_progress++;
            if (!w->has_reported_connect_error) {
                (void)fprintf(stderr, "toaster-bench smtp: bind to a --source address: %s\n",
                              strerror(error));
                w->has_reported_connect_error = true;
            }
            conn_enter(c, CONN_STATE_BACKOFF);
            c->deadline_ns = now_ns() + BACKOFF_NS;
            return;
        }
    }
    c->fd = fd;
    struct io_uring_sqe *sqe = sqe_get(w);
    io_uring_prep_connect(sqe, fd, (const struct sockaddr *)&options->server,
                          options->server_bytes);
    io_uring_sqe_set_data64(sqe, user_data_pack(OP_CONNECT, c));
    c->ops_in_flight++;
    c->is_connect_armed = true;
    w->connects_in_flight++;
    conn_enter(c, CONN_STATE_CONNECTING);
    c->deadline_ns = now_ns() + (uint64_t)options->timeout_s * NS_PER_S;
}

/* Start closing: cancel whatever is in flight. conn_settle() then runs
 * conn_finalize() once no op is in flight; never from in here, so a caller
 * in the middle of parsing never sees its slot reused under it. A
 * transaction in progress counts as failed. */
static void
conn_close(struct worker *w, struct conn *c, bool is_abnormal)
{
    if (c->state == CONN_STATE_CLOSING || c->state == CONN_STATE_DONE) {
        return;
    }
    if (c->is_in_txn) {
        txn_fail(w, c);
    }
    if (c->is_parked) {
        list_remove(w, &w->parked, c);
        c->is_parked = false;
    }
    if (is_abnormal && c->state <= CONN_STATE_HELO) {
        w->failures_since_progress++; /* never got as far as a transaction */
    }
    c->is_abnormal_close = is_abnormal;
    c->deadline_ns = 0;
    conn_enter(c, CONN_STATE_CLOSING);
    if (c->ops_in_flight == 0) {
        return; /* conn_settle() finishes, once the caller is done with c */
    }
    struct io_uring_sqe *sqe = sqe_get(w);
    io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, user_data_pack(OP_CANCEL, c));
}

static void
conn_settle(struct worker *w, struct conn *c)
{
    if (c->state == CONN_STATE_CLOSING && c->ops_in_flight == 0) {
        conn_finalize(w, c);
    }
}

/* No op in flight: close the socket and decide what the slot does next. */
static void
conn_finalize(struct worker *w, struct conn *c)
{
    ASSERT(c->state == CONN_STATE_CLOSING);
    ASSERT(c->ops_in_flight == 0);
    ASSERT(c->fd >= 0);
    if (close(c->fd) < 0) {
        /* Nothing to do about it but say so; the fd is gone either way. */
        (void)fprintf(stderr, "toaster-bench smtp: close: %s\n", strerror(errno));
    }
    c->fd = -1;
    if (c->is_connected) {
        ASSERT(w->stats.connections_open > 0);
        bench_smtp_stats_add(&w->stats.connections_open, (uint64_t)-1);
        c->is_connected = false;
    }
    c->generation = (c->generation + 1) & GENERATION_MASK;
    c->recv_bytes = 0;
    bench_reply_init(&c->reply);
    c->messages_this_session = 0;
    c->has_pipelining = false;
    c->has_chunking = false;
    c->has_size = false;
    c->iov_first = 0;
    c->iov_count = 0;
    uint64_t now = now_ns();
    if (!work_remains(w, now)) {
        conn_enter(c, CONN_STATE_DONE);
        w->live_count--;
    } else if (c->is_abnormal_close) {
        conn_enter(c, CONN_STATE_BACKOFF);
        c->deadline_ns = now + BACKOFF_NS;
    } else {
        conn_enter(c, CONN_STATE_IDLE);
        conn_start(w, c);
    }
}

static void
conn_enter(struct conn *c, enum conn_state next)
{
    /* Leaving DONE never happens; CLOSING only leads to a socketless
     * state; socketless states only lead to connecting or retiring. */
    ASSERT(c->state != CONN_STATE_DONE);
    if (c->state == CONN_STATE_CLOSING) {
        ASSERT(next == CONN_STATE_IDLE || next == CONN_STATE_BACKOFF || next == CONN_STATE_DONE);
    }
    if (next == CONN_STATE_CLOSING) {
        ASSERT(c->fd >= 0);
    }
    c->state = next;
}

static void
conn_arm_recv(struct worker *w, struct conn *c)
{
    if (c->is_recv_armed) {
        return;
    }
    ASSERT(c->recv_bytes < RECV_BUFFER_BYTES);
    struct io_uring_sqe *sqe = sqe_get(w);
    io_uring_prep_recv(sqe, c->fd, c->recv_buf + c->recv_bytes, RECV_BUFFER_BYTES - c->recv_bytes,
                       0);
    io_uring_sqe_set_data64(sqe, user_data_pack(OP_RECV, c));
    c->ops_in_flight++;
    c->is_recv_armed = true;
}

/* Send iov[0..count). Only one send is in flight per connection: a reply
 * that asks for the next send while the last one is still going means the
 * server answered what it has not read, a protocol error. */
static void
conn_send(struct worker *w, struct conn *c, const struct iovec *iov, uint32_t count, bool has_eod)
{
    ASSERT(count >= 1);
    ASSERT(count <= SEND_IOV_MAX);
    if (c->is_send_armed || c->iov_first < c->iov_count) {
        conn_protocol_error(w, c, "reply before our data was sent", NULL, 0);
        return;
    }
    for (uint32_t i = 0; i < count; i++) {
        c->iov[i] = iov[i];
    }
    c->iov_first = 0;
    c->iov_count = count;
    c->send_has_eod = has_eod;
    conn_send_submit(w, c);
}

static void
conn_send_text(struct worker *w, struct conn *c, const char *text)
{
    struct iovec iov = {.iov_base = (void *)text, .iov_len = strlen(text)};
    conn_send(w, c, &iov, 1, false);
}

static void
conn_send_submit(struct worker *w, struct conn *c)
{
    ASSERT(!c->is_send_armed);
    ASSERT(c->iov_first < c->iov_count);
    memset(&c->msg, 0, sizeof(c->msg));
    c->msg.msg_iov = &c->iov[c->iov_first];
    c->msg.msg_iovlen = c->iov_count - c->iov_first;
    struct io_uring_sqe *sqe = sqe_get(w);
    io_uring_prep_sendmsg(sqe, c->fd, &c->msg, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, user_data_pack(OP_SEND, c));
    c->ops_in_flight++;
    c->is_send_armed = true;
    if (c->send_has_eod) {
        c->eod_ns = now_ns();
    }
}

static void
conn_protocol_error(struct worker *w, struct conn *c, const char *what, const char *line,
                    size_t line_bytes)
{
    bench_smtp_stats_add(&w->stats.protocol_errors, 1);
    if (!w->has_reported_protocol_error) {
        if (line_bytes > 80) {
            line_bytes = 80;
        }
        (void)fprintf(stderr, "toaster-bench smtp: %s: %s%s%.*s%s\n",
                      w->run->options->server_text, what, line != NULL ? " \"" : "",
                      (int)line_bytes, line != NULL ? line : "", line != NULL ? "\"" : "");
        w->has_reported_protocol_error = true;
    }
    conn_close(w, c, true);
}

static void
conn_wait_reply(struct worker *w, struct conn *c)
{
    c->deadline_ns = now_ns() + (uint64_t)w->run->options->timeout_s * NS_PER_S;
}

/* Split the receive buffer into lines and feed them to the session.
 * Returns false if the connection is closing. */
static bool
reply_parse(struct worker *w, struct conn *c)
{
    size_t pos = 0;

    while (pos < c->recv_bytes && c->state != CONN_STATE_CLOSING) {
        size_t line_bytes;
        size_t taken = bench_reply_line_next(c->recv_buf + pos, c->recv_bytes - pos, &line_bytes);
        if (taken == 0) {
            break;
        }
        const char *start = c->recv_buf + pos;
        pos += taken;
        session_line(w, c, start, line_bytes);
    }
    if (c->state == CONN_STATE_CLOSING) {
        return false;
    }
    if (pos > 0) {
        memmove(c->recv_buf, c->recv_buf + pos, c->recv_bytes - pos);
        c->recv_bytes -= pos;
    }
    if (c->recv_bytes == RECV_BUFFER_BYTES) {
        conn_protocol_error(w, c, "reply line too long", c->recv_buf, c->recv_bytes);
        return false;
    }
    return true;
}

/* One reply line; a complete reply goes on to session_reply(). */
static void
session_line(struct worker *w, struct conn *c, const char *line, size_t line_bytes)
{
    switch (bench_reply_feed(&c->reply, line, line_bytes)) {
    case BENCH_REPLY_NEED_MORE:
        return;
    case BENCH_REPLY_ERROR:
        conn_protocol_error(w, c, bench_reply_error_text(c->reply.error), line, line_bytes);
        return;
    case BENCH_REPLY_DONE:
        break;
    }
    if (c->state == CONN_STATE_EHLO) {
        /* Keywords count only in the EHLO reply; when EHLO is refused,
         * session_reply() drops them again (HELO fallback, or close). */
        uint32_t extensions = c->reply.extensions;
        c->has_pipelining = c->has_pipelining || (extensions & BENCH_REPLY_EXT_PIPELINING) != 0;
        c->has_chunking = c->has_chunking || (extensions & BENCH_REPLY_EXT_CHUNKING) != 0;
        c->has_size = c->has_size || (extensions & BENCH_REPLY_EXT_SIZE) != 0;
    }
    session_reply(w, c, c->reply.code);
}

/* One complete reply: the only place where the session changes state on
 * the server's word. */
static void
session_reply(struct worker *w, struct conn *c, int code)
{
    const struct bench_smtp_options *options = w->run->options;
    uint64_t now = now_ns();

    if (code == 421 && c->state != CONN_STATE_QUIT) {
        /* Service closing, at any step: count it and go. */
        count_code(w, code);
        conn_close(w, c, true);
        return;
    }
    conn_wait_reply(w, c); /* the next reply gets a fresh timeout */
    switch (c->state) {
    case CONN_STATE_GREETING:
        if (code != 220) {
            /* Refused at the door (554, or a limit): back off and retry. */
            count_code(w, code);
            conn_close(w, c, true);
            return;
        }
        conn_enter(c, CONN_STATE_EHLO);
        conn_send_text(w, c, w->ehlo_line);
        return;
    case CONN_STATE_EHLO:
        if (code == 500 || code == 502) {
            /* An old server: HELO, without extensions. */
            c->has_pipelining = false;
            c->has_chunking = false;
            c->has_size = false;
            conn_enter(c, CONN_STATE_HELO);
            conn_send_text(w, c, w->helo_line);
            return;
        }
        /* fall through */
    case CONN_STATE_HELO:
        if (code != 250) {
            count_code(w, code);
            conn_close(w, c, true);
            return;
        }
        w->last_progress_ns = now;
        w->failures_since_progress = 0;
        if (options->is_pipelining && !c->has_pipelining) {
            bench_smtp_stats_add(&w->stats.sessions_without_pipelining, 1);
        }
        if (options->is_bdat && !c->has_chunking) {
            bench_smtp_stats_add(&w->stats.sessions_without_chunking, 1);
        }
        session_ready(w, c);
        return;
    case CONN_STATE_MAIL:
        c->is_mail_ok = code == 250;
        if (!c->is_mail_ok) {
            count_code(w, code);
            c->is_txn_failed = true;
        }
        if (c->is_pipelined_txn) {
            conn_enter(c, CONN_STATE_RCPT);
        } else if (c->is_mail_ok) {
            conn_enter(c, CONN_STATE_RCPT);
            txn_send_next_command(w, c);
        } else {
            txn_fail(w, c);
            conn_enter(c, CONN_STATE_RSET);
            conn_send_text(w, c, "RSET\r\n");
        }
        return;
    case CONN_STATE_RCPT:
        if (code == 250 || code == 251) {
            c->rcpt_ok++;
        } else {
            count_code(w, code);
        }
        c->rcpt_replies++;
        if (c->rcpt_replies < options->rcpts_per_message) {
            if (!c->is_pipelined_txn) {
                txn_send_next_command(w, c);
            }
            return;
        }
        if (c->is_pipelined_txn) {
            /* DATA (or BDAT with the message) went out with the RCPTs. */
            conn_enter(c, c->is_bdat_txn ? CONN_STATE_FINAL : CONN_STATE_DATA);
        } else if (c->is_mail_ok && c->rcpt_ok > 0) {
            if (c->is_bdat_txn) {
                conn_enter(c, CONN_STATE_FINAL);
                txn_send_message(w, c);
            } else {
                conn_enter(c, CONN_STATE_DATA);
                txn_send_next_command(w, c);
            }
        } else {
            txn_fail(w, c);
            conn_enter(c, CONN_STATE_RSET);
            conn_send_text(w, c, "RSET\r\n");
        }
        return;
    case CONN_STATE_DATA:
        if (code == 354) {
            conn_enter(c, CONN_STATE_FINAL);
            txn_send_message(w, c);
            return;
        }
        count_code(w, code);
        txn_fail(w, c);
        conn_enter(c, CONN_STATE_RSET);
        conn_send_text(w, c, "RSET\r\n");
        return;
    case CONN_STATE_FINAL:
        if (code >= 200 && code < 300 && c->is_mail_ok && c->rcpt_ok > 0 && !c->is_txn_failed) {
            txn_end(w, c, true, now);
            session_ready(w, c);
            return;
        }
        if (code >= 200 && code < 300) {
            /* Accepted although we saw MAIL or every RCPT refused. */
            bench_smtp_stats_add(&w->stats.protocol_errors, 1);
        } else {
            count_code(w, code);
        }
        txn_fail(w, c);
        conn_enter(c, CONN_STATE_RSET);
        conn_send_text(w, c, "RSET\r\n");
        return;
    case CONN_STATE_RSET:
        if (code != 250) {
            count_code(w, code);
            session_quit(w, c);
            return;
        }
        session_ready(w, c);
        return;
    case CONN_STATE_QUIT:
        if (code != 221) {
            count_code(w, code);
        }
        conn_enter(c, CONN_STATE_DRAIN);
        return;
    case CONN_STATE_READY:
    case CONN_STATE_DRAIN:
        conn_protocol_error(w, c, "reply nobody asked for", NULL, 0);
        return;
    case CONN_STATE_IDLE:
    case CONN_STATE_BACKOFF:
    case CONN_STATE_CONNECTING:
    case CONN_STATE_CLOSING:
    case CONN_STATE_DONE:
        break;
    }
    ASSERT(!"a reply arrives only on a connected session");
}

/* Between transactions: the next one, a pause for the rate, or QUIT. */
static void
session_ready(struct worker *w, struct conn *c)
{
    const struct bench_smtp_options *options = w->run->options;
    uint64_t now = now_ns();

    conn_enter(c, CONN_STATE_READY);
    c->deadline_ns = 0;
    if (!work_remains(w, now)) {
        session_quit(w, c);
        return;
    }
    if (options->messages_per_session > 0 &&
        c->messages_this_session >= options->messages_per_session) {
        session_quit(w, c);
        return;
    }
    if (w->rate > 0) {
        uint64_t allowed = (uint64_t)((double)(now - w->run->start_ns) * w->rate / 1e9) + 1;
        if (w->started >= allowed) {
            list_push(w, &w->parked, c);
            c->is_parked = true;
            return;
        }
    }
    txn_start(w, c);
}

static void
session_quit(struct worker *w, struct conn *c)
{
    conn_enter(c, CONN_STATE_QUIT);
    conn_wait_reply(w, c);
    conn_send_text(w, c, "QUIT\r\n");
}

/* Build and send one transaction: pick a size, recipients, write the head
 * and the commands, send the first command or the whole pipelined group. */
static void
txn_start(struct worker *w, struct conn *c)
{
    const struct run *run = w->run;
    const struct bench_smtp_options *options = run->options;

    ASSERT(c->state == CONN_STATE_READY);
    ASSERT(!c->is_in_txn);
    w->started++;
    c->is_in_txn = true;
    c->is_mail_ok = false;
    c->is_txn_failed = false;
    c->rcpt_replies = 0;
    c->rcpt_ok = 0;
    c->is_pipelined_txn = options->is_pipelining && c->has_pipelining;
    c->is_bdat_txn = options->is_bdat && c->has_chunking;
    c->class_index = bench_message_pick(run->message, rng_next(&w->rng));
    const struct bench_message_body *body = bench_message_class(run->message, c->class_index);

    for (uint32_t i = 0; i < options->rcpts_per_message; i++) {
        uint32_t user;
        if (options->is_rcpt_random) {
            user = (uint32_t)(rng_next(&w->rng) % options->users) + 1;
        } else {
            uint64_t next = __atomic_fetch_add(&w->run->rcpt_next, 1, __ATOMIC_RELAXED);
            user = (uint32_t)(next % options->users) + 1;
        }
        int n = bench_message_address_format(options->rcpt_pattern, user, (char *)w->rcpt_ptrs[i],
                                             BENCH_MESSAGE_ADDRESS_BYTES_MAX);
        ASSERT(n > 0); /* the pattern was checked against the longest user */
    }
    time_t second = time(NULL);
    if (second != w->date_second) {
        bench_message_date(second, w->date);
        w->date_second = second;
    }
    struct bench_message_head_args args = {
        .run_id = run->run_id,
        .thread_index = w->index,
        .sequence = w->sequence++,
        .date = w->date,
        .rcpts = w->rcpt_ptrs,
        .rcpt_count = options->rcpts_per_message,
    };
    c->head_bytes = bench_message_head(run->message, c->class_index, &args, c->head,
                                       run->head_bytes_max);

    /* Every command of the transaction, in order, CRLF-terminated. */
    size_t n = 0;
    size_t cap = run->cmd_bytes_max;
    int written;
    if (c->has_size) {
        written = snprintf(c->cmd, cap, "MAIL FROM:<%s> SIZE=%zu\r\n", options->from,
                           body->size_bytes);
    } else {
        written = snprintf(c->cmd, cap, "MAIL FROM:<%s>\r\n", options->from);
    }
    ASSERT(written > 0 && (size_t)written < cap);
    n = (size_t)written;
    for (uint32_t i = 0; i < options->rcpts_per_message; i++) {
        written = snprintf(c->cmd + n, cap - n, "RCPT TO:<%s>\r\n", w->rcpt_ptrs[i]);
        ASSERT(written > 0 && (size_t)written < cap - n);
        n += (size_t)written;
    }
    if (c->is_bdat_txn) {
        written = snprintf(c->cmd + n, cap - n, "BDAT %zu LAST\r\n", body->size_bytes);
    } else {
        written = snprintf(c->cmd + n, cap - n, "DATA\r\n");
    }
    ASSERT(written > 0 && (size_t)written < cap - n);
    n += (size_t)written;
    c->cmd_bytes = n;
    c->cmd_pos = 0;

    conn_enter(c, CONN_STATE_MAIL);
    conn_wait_reply(w, c);
    if (c->is_pipelined_txn && c->is_bdat_txn) {
        struct iovec iov[3] = {
            {.iov_base = c->cmd, .iov_len = c->cmd_bytes},
            {.iov_base = c->head, .iov_len = c->head_bytes},
            {.iov_base = (void *)body->tail, .iov_len = body->tail_bytes},
        };
        c->cmd_pos = c->cmd_bytes;
        conn_send(w, c, iov, 3, true);
    } else if (c->is_pipelined_txn) {
        struct iovec iov = {.iov_base = c->cmd, .iov_len = c->cmd_bytes};
        c->cmd_pos = c->cmd_bytes;
        conn_send(w, c, &iov, 1, false);
    } else {
        txn_send_next_command(w, c);
    }
}

/* Without pipelining: send the next command line of the buffer. */
static void
txn_send_next_command(struct worker *w, struct conn *c)
{
    ASSERT(c->cmd_pos < c->cmd_bytes);
    const char *start = c->cmd + c->cmd_pos;
    const char *end = memchr(start, '\n', c->cmd_bytes - c->cmd_pos);
    ASSERT(end != NULL);
    size_t line_bytes = (size_t)(end - start) + 1;
    struct iovec iov = {.iov_base = (void *)start, .iov_len = line_bytes};

    c->cmd_pos += line_bytes;
    /* The BDAT line goes with its chunk, from txn_send_message(). */
    if (c->is_bdat_txn) {
        ASSERT(c->cmd_pos < c->cmd_bytes);
    }
    conn_send(w, c, &iov, 1, false);
}

/* The message itself: after 354 (DATA), or the BDAT LAST line and chunk
 * when not pipelined. */
static void
txn_send_message(struct worker *w, struct conn *c)
{
    const struct bench_message_body *body = bench_message_class(w->run->message, c->class_index);

    if (c->is_bdat_txn) {
        ASSERT(c->cmd_pos < c->cmd_bytes);
        struct iovec iov[3] = {
            {.iov_base = c->cmd + c->cmd_pos, .iov_len = c->cmd_bytes - c->cmd_pos},
            {.iov_base = c->head, .iov_len = c->head_bytes},
            {.iov_base = (void *)body->tail, .iov_len = body->tail_bytes},
        };
        c->cmd_pos = c->cmd_bytes;
        conn_send(w, c, iov, 3, true);
        return;
    }
    struct iovec iov[2] = {
        {.iov_base = c->head, .iov_len = c->head_bytes},
        {.iov_base = (void *)body->tail_data, .iov_len = body->tail_data_bytes},
    };
    conn_send(w, c, iov, 2, true);
}

static void
txn_end(struct worker *w, struct conn *c, bool is_accepted, uint64_t now)
{
    ASSERT(c->is_in_txn);
    c->is_in_txn = false;
    c->messages_this_session++;
    if (!is_accepted) {
        bench_smtp_stats_add(&w->stats.messages_failed, 1);
        return;
    }
    const struct bench_message_body *body = bench_message_class(w->run->message, c->class_index);
    uint64_t latency_us = now > c->eod_ns ? (now - c->eod_ns) / NS_PER_US : 0;
    histogram_record(&w->stats.latency, latency_us);
    bench_smtp_stats_add(&w->stats.messages_accepted, 1);
    bench_smtp_stats_add(&w->stats.bytes_accepted, body->size_bytes);
    bench_smtp_stats_set(&w->stats.last_final_reply_ns, now);
    w->last_progress_ns = now;
    w->failures_since_progress = 0;
}

static void
txn_fail(struct worker *w, struct conn *c)
{
    if (c->is_in_txn) {
        txn_end(w, c, false, 0);
    }
}

static void
count_code(struct worker *w, int code)
{
    ASSERT(code >= 0 && code < BENCH_SMTP_CODES);
    bench_smtp_stats_add(&w->stats.codes[code], 1);
}

static void
list_push(struct worker *w, struct conn_list *list, struct conn *c)
{
    ASSERT(c->list_prev == SLOT_NONE);
    ASSERT(c->list_next == SLOT_NONE);
    c->list_prev = list->tail;
    if (list->tail != SLOT_NONE) {
        w->conns[list->tail].list_next = c->slot;
    } else {
        list->head = c->slot;
    }
    list->tail = c->slot;
    list->count++;
}

static struct conn *
list_pop(struct worker *w, struct conn_list *list)
{
    if (list->head == SLOT_NONE) {
        ASSERT(list->count == 0);
        return NULL;
    }
    struct conn *c = &w->conns[list->head];
    list_remove(w, list, c);
    return c;
}

static void
list_remove(struct worker *w, struct conn_list *list, struct conn *c)
{
    ASSERT(list->count > 0);
    if (c->list_prev != SLOT_NONE) {
        w->conns[c->list_prev].list_next = c->list_next;
    } else {
        ASSERT(list->head == c->slot);
        list->head = c->list_next;
    }
    if (c->list_next != SLOT_NONE) {
        w->conns[c->list_next].list_prev = c->list_prev;
    } else {
        ASSERT(list->tail == c->slot);
        list->tail = c->list_prev;
    }
    c->list_prev = SLOT_NONE;
    c->list_next = SLOT_NONE;
    list->count--;
}

/* An SQE, submitting what is queued when the SQ is full. */
static struct io_uring_sqe *
sqe_get(struct worker *w)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
    if (sqe != NULL) {
        return sqe;
    }
    int rc = io_uring_submit(&w->ring);
    if (rc < 0) {
        /* Only a broken ring gets here; nothing sensible to continue with. */
        (void)fprintf(stderr, "toaster-bench smtp: io_uring_submit: %s\n", strerror(-rc));
        abort();
    }
    sqe = io_uring_get_sqe(&w->ring);
    ASSERT(sqe != NULL);
    return sqe;
}

static uint64_t
user_data_pack(enum op_kind kind, const struct conn *c)
{
    return (uint64_t)kind | ((uint64_t)(c->generation & GENERATION_MASK) << 8) |
           ((uint64_t)c->slot << 32);
}

static uint64_t
now_ns(void)
{
    struct timespec ts;
    int rc = clock_gettime(CLOCK_MONOTONIC, &ts);
    ASSERT(rc == 0);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: fast; only picks sizes and recipients. */
static uint64_t
rng_next(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static void
signal_stop(int signo)
{
    (void)signo;
    __atomic_store_n(&stop_requested, 1, __ATOMIC_RELAXED);
}
