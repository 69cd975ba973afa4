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
 * With --starttls a session says STARTTLS after its first EHLO (a server
 * that does not offer it stops the run: the numbers would not be what was
 * asked for), then runs the handshake (bench/bench_tls: OpenSSL over
 * memory BIOs) and says EHLO again, and every later byte is encrypted:
 * received ciphertext goes through the TLS layer into the same receive
 * buffer and parser; a send queues its plaintext there and the ciphertext
 * goes out a chunk at a time, one send in flight as before. Latency then
 * ends at the send of the chunk that holds the last byte of the message.
 *
 * Closing runs in order: cancel everything on the fd, collect every CQE,
 * close the fd, then reconnect, back off or retire the slot. The ring, the
 * ops in flight, sends and the connect queue are bench/bench_loop's.
 *
 * Limits: BENCH_SMTP_CONNECTIONS_MAX connections, RECV_BUFFER_BYTES per
 * connection, BENCH_REPLY_LINES_MAX lines per reply,
 * BENCH_LOOP_CONNECTS_IN_FLIGHT_MAX connects per thread, --timeout per reply.
 */
#define _GNU_SOURCE
#include "bench/bench_smtp.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_loop.h"
#include "bench/bench_rng.h"
#include "bench/bench_message.h"
#include "bench/bench_reply.h"
#include "bench/bench_smtp_report.h"
#include "bench/bench_tls.h"
#include "core/assertions.h"

#define RECV_BUFFER_BYTES 2048
#define RATE_TICK_NS_MIN (50 * BENCH_LOOP_NS_PER_US)

static_assert(BENCH_SMTP_CONNECTIONS_MAX < BENCH_LOOP_SLOT_NONE, "slot numbers fit in 32 bits");
static_assert(RECV_BUFFER_BYTES > 512 + 2,
              "a receive buffer holds the longest RFC 5321 reply line");
static_assert(BENCH_LOOP_SEND_IOV_MAX <= BENCH_TLS_QUEUE_IOV_MAX,
              "whatever one send carries, the TLS layer can queue");

enum conn_state {
    CONN_STATE_IDLE,       /* no socket; waiting in the connect queue */
    CONN_STATE_BACKOFF,    /* no socket; the last attempt failed, waiting for deadline */
    CONN_STATE_CONNECTING, /* connect in flight */
    CONN_STATE_GREETING,   /* waiting for 220 */
    CONN_STATE_EHLO,       /* EHLO sent, collecting extensions */
    CONN_STATE_HELO,       /* EHLO refused as unknown, HELO sent */
    CONN_STATE_STARTTLS,   /* STARTTLS sent, waiting for 220 */
    CONN_STATE_TLS_HANDSHAKE, /* TLS handshake in progress; EHLO follows */
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
    struct bench_loop_conn io; /* first: the loop finds slots by it */
    enum conn_state state;
    bool            is_connected;
    bool            is_abnormal_close; /* back off before reconnecting */
    bool            is_parked;
    /* Server extensions, from the EHLO reply. */
    bool            has_pipelining;
    bool            has_chunking;
    bool            has_size;
    bool            has_starttls;
    /* --starttls: the slot's TLS state (NULL without), and whether this
     * connection's bytes go through it now. */
    struct bench_tls *tls;
    bool            is_tls;
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
    /* Send side: the command buffer and the head buffer; the send in
     * flight is in io. */
    char           *cmd;
    size_t          cmd_bytes;
    size_t          cmd_pos; /* next command to send one at a time */
    char           *head;
    size_t          head_bytes;
    bool            send_has_eod;
};

static_assert(offsetof(struct conn, io) == 0, "a slot starts with its loop part");

struct run;

struct worker {
    struct bench_loop       loop; /* first: bench_loop_watch() finds it */
    struct run             *run;
    uint32_t                index;
    struct conn            *conns;
    char                   *slab;
    struct bench_loop_list  parked; /* READY slots waiting for the rate */
    double                  rate;         /* this worker's share; 0: closed loop */
    uint64_t                sequence;
    uint64_t                rng;
    time_t                  date_second;
    char                    date[BENCH_MESSAGE_DATE_BYTES];
    char                    ehlo_line[BENCH_SMTP_HELO_BYTES_MAX + 8];
    char                    helo_line[BENCH_SMTP_HELO_BYTES_MAX + 8];
    char                   *rcpt_storage; /* rcpts_per_message addresses */
    const char            **rcpt_ptrs;
    char                    tls_text[64]; /* protocol and cipher of the first handshake */
    struct bench_smtp_stats stats;
};

static_assert(offsetof(struct worker, loop) == 0, "a worker starts with its loop");

struct run {
    const struct bench_smtp_options *options;
    struct bench_message            *message;
    struct bench_tls_client         *tls_client; /* --starttls; NULL without */
    size_t                           cmd_bytes_max;
    size_t                           head_bytes_max;
    uint64_t                         run_id;
    uint64_t                         start_ns;
    uint64_t                         rcpt_next; /* round-robin, shared: atomic */
    struct worker                   *workers;
    /* The main thread's progress line and summary. */
    uint32_t                         started_threads;
    uint64_t                         last_accepted;
};

static void progress_print(void *ctx, void *snapshot, double elapsed_s, double window_s);
static void stats_sum(const struct run *run, struct bench_smtp_stats *total);
static int worker_setup(void *arg, uint32_t index);
static void worker_teardown(void *arg);
static void worker_tick(void *ctx, uint64_t now);
static uint64_t worker_wait_ns(void *ctx);
static void worker_rate_release(void *ctx, uint64_t now);
static void on_connect(void *ctx, struct bench_loop_conn *io, int32_t res);
static void on_recv(void *ctx, struct bench_loop_conn *io, int32_t res);
static void on_send(void *ctx, struct bench_loop_conn *io, int32_t res);
static void conn_start(void *ctx, struct bench_loop_conn *io);
static void conn_close(struct worker *w, struct conn *c, bool is_abnormal);
static void conn_settle(void *ctx, struct bench_loop_conn *io);
static void conn_finalize(struct worker *w, struct conn *c);
static void conn_enter(struct conn *c, enum conn_state next);
static void conn_arm_recv(struct worker *w, struct conn *c);
static void conn_send(struct worker *w, struct conn *c, const struct iovec *iov, uint32_t count,
                      bool has_eod);
static void conn_send_text(struct worker *w, struct conn *c, const char *text);
static bool conn_tls_received(struct worker *w, struct conn *c, size_t bytes);
static void conn_tls_established(struct worker *w, struct conn *c);
static void conn_tls_flush(struct worker *w, struct conn *c);
static void conn_tls_error(struct worker *w, struct conn *c);
static bool ehlo_line_is_starttls(const char *line, size_t line_bytes);
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
static struct conn *conn_of(struct bench_loop_conn *io);

/* The SMTP side of the event loop (bench/bench_loop); an open loop waits
 * for its schedule and releases parked sessions. */
static const struct bench_loop_ops loop_ops = {
    .on_connect = on_connect, .on_recv = on_recv, .on_send = on_send, .start = conn_start,
    .settle = conn_settle, .tick = worker_tick, .wait_ns = worker_wait_ns,
    .after_wait = worker_rate_release};

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
    if (bench_loop_fd_limit("smtp", options->connections) < 0) {
        return BENCH_EXIT_USAGE;
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
    if (options->is_starttls) {
        struct bench_tls_client_config tls_config = {
            .sni = options->tls_sni,
            .is_resume = options->is_tls_resume,
        };
        rc = bench_tls_client_create(&tls_config, &run.tls_client, err, sizeof(err));
        if (rc < 0) {
            (void)fprintf(stderr, "toaster-bench smtp: TLS: %s\n", err);
            bench_message_destroy(&run.message);
            return BENCH_EXIT_FAILED;
        }
    }
    run.start_ns = bench_loop_now_ns();
    run.run_id = run.start_ns ^ ((uint64_t)getpid() << 40);
    bench_loop_signals_install();

    uint32_t threads = options->threads;
    run.workers = calloc(threads, sizeof(*run.workers));
    if (run.workers == NULL) {
        bench_tls_client_destroy(&run.tls_client);
        bench_message_destroy(&run.message);
        (void)fprintf(stderr, "toaster-bench smtp: out of memory\n");
        return BENCH_EXIT_FAILED;
    }
    for (uint32_t i = 0; i < threads; i++) {
        run.workers[i].run = &run;
    }
    uint32_t started_threads =
        bench_loop_threads_start(run.workers, sizeof(run.workers[0]), threads, "smtp",
                                 worker_setup, &loop_ops, worker_teardown);

    /* Watch: a progress line once a second on a terminal. */
    run.started_threads = started_threads;
    bench_loop_watch(&run.workers[0].loop, sizeof(run.workers[0]), started_threads,
                     !options->is_quiet && isatty(STDOUT_FILENO), run.start_ns,
                     sizeof(struct bench_smtp_stats), progress_print, &run);

    int worker_rc = bench_loop_threads_join(run.workers, sizeof(run.workers[0]), started_threads,
                                            worker_teardown);
    struct bench_smtp_stats *total = malloc(sizeof(*total));
    int exit_status = BENCH_EXIT_FAILED;
    if (total == NULL) {
        (void)fprintf(stderr, "toaster-bench smtp: out of memory\n");
    } else {
        stats_sum(&run, total);
    }

    if (total != NULL && started_threads == threads) {
        uint64_t end_ns = total->last_final_reply_ns;
        if (end_ns == 0) {
            end_ns = bench_loop_now_ns();
        }
        struct bench_smtp_report_info info = {
            .server = options->server_text,
            .command = command,
            .connections = options->connections,
            .threads = threads,
            .size_text = options->size_text,
            .is_pipelining = options->is_pipelining,
            .is_bdat = options->is_bdat,
            .is_starttls = options->is_starttls,
            .tls_text = "",
            .rate = options->rate,
            .seconds = (double)(end_ns - run.start_ns) / 1e9,
        };
        for (uint32_t i = 0; i < threads && info.tls_text[0] == '\0'; i++) {
            info.tls_text = run.workers[i].tls_text;
        }
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
    bench_tls_client_destroy(&run.tls_client);
    bench_message_destroy(&run.message);
    return exit_status;
}

/* Progress line: the counters so far and the rate since the last line. */
static void
progress_print(void *ctx, void *snapshot, double elapsed_s, double window_s)
{
    struct run *run = ctx;
    struct bench_smtp_stats *total = snapshot;

    stats_sum(run, total);
    double rate_now = (double)(total->messages_accepted - run->last_accepted) / window_s;
    bench_smtp_report_progress(stdout, elapsed_s, total, rate_now);
    run->last_accepted = total->messages_accepted;
}

/* The counters of the started workers, summed into total. */
static void
stats_sum(const struct run *run, struct bench_smtp_stats *total)
{
    bench_smtp_stats_init(total);
    for (uint32_t i = 0; i < run->started_threads; i++) {
        bench_smtp_stats_merge(total, &run->workers[i].stats);
    }
}

/* Worker index's share of the run; allocate the slots and their buffers.
 * Runs before the thread starts. */
static int
worker_setup(void *arg, uint32_t index)
{
    struct worker *w = arg;
    const struct run *run = w->run;
    const struct bench_smtp_options *options = run->options;
    uint32_t threads = options->threads;

    w->index = index;
    bench_loop_share(&w->loop, index, threads, options->connections, options->count,
                     options->duration_s, run->start_ns);
    w->rate = options->rate / threads;
    w->rng = options->seed * 0x9e3779b97f4a7c15ULL + index + 1;
    bench_smtp_stats_init(&w->stats);

    size_t per_conn = RECV_BUFFER_BYTES + run->cmd_bytes_max + run->head_bytes_max;
    per_conn = (per_conn + 63) / 64 * 64; /* rounds up to a cache line */

    w->conns = calloc(w->loop.conn_count, sizeof(*w->conns));
    /* Untouched pages of a large calloc cost nothing until used. */
    w->slab = calloc(w->loop.conn_count, per_conn);
    w->rcpt_storage = calloc(options->rcpts_per_message, BENCH_MESSAGE_ADDRESS_BYTES_MAX);
    w->rcpt_ptrs = calloc(options->rcpts_per_message, sizeof(*w->rcpt_ptrs));
    if (w->conns == NULL || w->slab == NULL || w->rcpt_storage == NULL || w->rcpt_ptrs == NULL) {
        worker_teardown(w);
        return -ENOMEM;
    }
    bench_loop_init(&w->loop, "smtp", w->conns, sizeof(*w->conns));
    for (uint32_t i = 0; i < w->loop.conn_count; i++) {
        struct conn *c = &w->conns[i];
        char *base = w->slab + (size_t)i * per_conn;
        c->state = CONN_STATE_IDLE;
        c->recv_buf = base;
        bench_reply_init(&c->reply);
        c->cmd = base + RECV_BUFFER_BYTES;
        c->head = c->cmd + run->cmd_bytes_max;
        if (run->tls_client != NULL && bench_tls_create(run->tls_client, &c->tls) < 0) {
            worker_teardown(w);
            return -ENOMEM;
        }
    }
    for (uint32_t i = 0; i < options->rcpts_per_message; i++) {
        w->rcpt_ptrs[i] = w->rcpt_storage + (size_t)i * BENCH_MESSAGE_ADDRESS_BYTES_MAX;
    }
    w->parked = (struct bench_loop_list){BENCH_LOOP_SLOT_NONE, BENCH_LOOP_SLOT_NONE, 0};
    int n = snprintf(w->ehlo_line, sizeof(w->ehlo_line), "EHLO %s\r\n", options->helo);
    ASSERT(n > 0 && (size_t)n < sizeof(w->ehlo_line));
    n = snprintf(w->helo_line, sizeof(w->helo_line), "HELO %s\r\n", options->helo);
    ASSERT(n > 0 && (size_t)n < sizeof(w->helo_line));
    return 0;
}

static void
worker_teardown(void *arg)
{
    struct worker *w = arg;

    bench_loop_ring_exit(&w->loop);
    for (uint32_t i = 0; w->conns != NULL && i < w->loop.conn_count; i++) {
        bench_tls_destroy(&w->conns[i].tls); /* NULL is fine */
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

/* Timeouts, backoffs, the end of the run, and giving up on a server that
 * refuses everything. Runs every BENCH_LOOP_TICK_NS. */
static void
worker_tick(void *ctx, uint64_t now)
{
    struct worker *w = ctx;
    bench_loop_tick_stop(&w->loop, now, w->run->options->server_text);
    bool is_working = bench_loop_work_remains(&w->loop, now);
    if (!is_working) {
        /* Nothing more to start: parked sessions say goodbye, queued and
         * backing-off slots retire. */
        struct conn *c;
        while ((c = conn_of(bench_loop_list_pop(&w->loop, &w->parked))) != NULL) {
            c->is_parked = false;
            session_quit(w, c);
            conn_settle(w, &c->io);
        }
        while ((c = conn_of(bench_loop_list_pop(&w->loop, &w->loop.connect_queue))) != NULL) {
            conn_enter(c, CONN_STATE_DONE);
            bench_loop_retire(&w->loop);
        }
    }
    for (uint32_t i = 0; i < w->loop.conn_count; i++) {
        struct conn *c = &w->conns[i];
        if (c->deadline_ns == 0 || now < c->deadline_ns) {
            continue;
        }
        c->deadline_ns = 0;
        switch (c->state) {
        case CONN_STATE_BACKOFF:
            if (is_working) {
                conn_enter(c, CONN_STATE_IDLE);
                conn_start(w, &c->io);
            } else {
                conn_enter(c, CONN_STATE_DONE);
                bench_loop_retire(&w->loop);
            }
            break;
        case CONN_STATE_DRAIN:
            /* The server did not close after 221: we do, no harm done. */
            conn_close(w, c, false);
            conn_settle(w, &c->io);
            break;
        case CONN_STATE_CONNECTING:
        case CONN_STATE_GREETING:
        case CONN_STATE_EHLO:
        case CONN_STATE_HELO:
        case CONN_STATE_STARTTLS:
        case CONN_STATE_TLS_HANDSHAKE:
        case CONN_STATE_MAIL:
        case CONN_STATE_RCPT:
        case CONN_STATE_DATA:
        case CONN_STATE_FINAL:
        case CONN_STATE_RSET:
        case CONN_STATE_QUIT:
            bench_smtp_stats_add(&w->stats.timeouts, 1);
            conn_close(w, c, true);
            conn_settle(w, &c->io);
            break;
        case CONN_STATE_IDLE:
        case CONN_STATE_READY:
        case CONN_STATE_CLOSING:
        case CONN_STATE_DONE:
            break;
        }
    }
}

/* Closed loop: the tick. Open loop with sessions parked: wake for the
 * next message the rate allows. */
static uint64_t
worker_wait_ns(void *ctx)
{
    const struct worker *w = ctx;
    uint64_t wait_ns = BENCH_LOOP_TICK_NS;

    if (w->rate > 0 && w->parked.count > 0) {
        wait_ns = (uint64_t)(1e9 / w->rate);
        if (wait_ns < RATE_TICK_NS_MIN) {
            wait_ns = RATE_TICK_NS_MIN;
        }
        if (wait_ns > BENCH_LOOP_TICK_NS) {
            wait_ns = BENCH_LOOP_TICK_NS;
        }
    }
    return wait_ns;
}

/* Open loop: start as many parked sessions as the schedule allows by now. */
static void
worker_rate_release(void *ctx, uint64_t now)
{
    struct worker *w = ctx;
    if (w->rate <= 0) {
        return;
    }
    uint64_t allowed = (uint64_t)((double)(now - w->run->start_ns) * w->rate / 1e9) + 1;

    while (w->parked.count > 0 && w->loop.started < allowed && bench_loop_work_remains(&w->loop, now)) {
        struct conn *c = conn_of(bench_loop_list_pop(&w->loop, &w->parked));
        ASSERT(c->state == CONN_STATE_READY);
        c->is_parked = false;
        txn_start(w, c);
        conn_settle(w, &c->io);
    }
}

static void
on_connect(void *ctx, struct bench_loop_conn *io, int32_t res)
{
    struct worker *w = ctx;
    struct conn *c = conn_of(io);

    if (c->state == CONN_STATE_CLOSING) {
        return;
    }
    ASSERT(c->state == CONN_STATE_CONNECTING);
    if (res < 0) {
        bench_smtp_stats_add(&w->stats.connect_errors, 1);
        if (!w->loop.has_reported_connect_error) {
            (void)fprintf(stderr, "toaster-bench smtp: connect to %s: %s\n",
                          w->run->options->server_text, strerror(-res));
            w->loop.has_reported_connect_error = true;
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
on_recv(void *ctx, struct bench_loop_conn *io, int32_t res)
{
    struct worker *w = ctx;
    struct conn *c = conn_of(io);

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
    if (c->is_tls) {
        if (!conn_tls_received(w, c, (size_t)res)) {
            return; /* closed */
        }
    } else {
        c->recv_bytes += (size_t)res;
        ASSERT(c->recv_bytes <= RECV_BUFFER_BYTES);
        if (c->state == CONN_STATE_DRAIN) {
            c->recv_bytes = 0; /* nothing more is expected; keep waiting for the close */
        } else if (!reply_parse(w, c)) {
            return; /* closed */
        }
    }
    if (c->state != CONN_STATE_CLOSING) {
        conn_arm_recv(w, c);
    }
}

static void
on_send(void *ctx, struct bench_loop_conn *io, int32_t res)
{
    struct worker *w = ctx;
    struct conn *c = conn_of(io);

    if (c->state == CONN_STATE_CLOSING) {
        return;
    }
    if (res <= 0) {
        bench_smtp_stats_add(&w->stats.closed, 1);
        conn_close(w, c, true);
        return;
    }
    /* Done, or the rest submitted: either way the end of data, if this
     * send carries it, is with the kernel as of now. Under TLS a chunk
     * sent whole makes room for the next one. */
    bool is_done = bench_loop_sent(&w->loop, &c->io, (size_t)res);
    if (c->send_has_eod) {
        c->eod_ns = bench_loop_now_ns();
    }
    if (c->is_tls && is_done) {
        bench_tls_sent(c->tls);
        conn_tls_flush(w, c);
    }
}

/* Open a connection for slot c, or queue it while too many connects are in
 * flight, or retire it when no work remains. */
static void
conn_start(void *ctx, struct bench_loop_conn *io)
{
    struct worker *w = ctx;
    struct conn *c = conn_of(io);
    const struct bench_smtp_options *options = w->run->options;

    ASSERT(c->state == CONN_STATE_IDLE);
    if (!bench_loop_work_remains(&w->loop, bench_loop_now_ns())) {
        conn_enter(c, CONN_STATE_DONE);
        bench_loop_retire(&w->loop);
        return;
    }
    if (w->loop.connects_in_flight >= BENCH_LOOP_CONNECTS_IN_FLIGHT_MAX) {
        bench_loop_list_push(&w->loop, &w->loop.connect_queue, &c->io);
        return;
    }
    bool is_bind = false;
    int rc = bench_loop_connect(&w->loop, &c->io, &options->server, options->server_bytes,
                                options->sources, options->source_count, options->source_bytes,
                                &w->loop.source_next, options->threads, &is_bind);
    if (rc < 0) {
        bench_smtp_stats_add(&w->stats.connect_errors, 1);
        w->loop.failures_since_progress++;
        if (!w->loop.has_reported_connect_error) {
            (void)fprintf(stderr, "toaster-bench smtp: %s: %s\n",
                          is_bind ? "bind to a --source address" : "socket", strerror(-rc));
            w->loop.has_reported_connect_error = true;
        }
        conn_enter(c, CONN_STATE_BACKOFF);
        c->deadline_ns = bench_loop_now_ns() + BENCH_LOOP_BACKOFF_NS;
        return;
    }
    conn_enter(c, CONN_STATE_CONNECTING);
    c->deadline_ns = bench_loop_now_ns() + (uint64_t)options->timeout_s * BENCH_LOOP_NS_PER_S;
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
        bench_loop_list_remove(&w->loop, &w->parked, &c->io);
        c->is_parked = false;
    }
    if (is_abnormal && c->state <= CONN_STATE_TLS_HANDSHAKE) {
        w->loop.failures_since_progress++; /* never got as far as a transaction */
    }
    c->is_abnormal_close = is_abnormal;
    c->deadline_ns = 0;
    conn_enter(c, CONN_STATE_CLOSING);
    /* With nothing in flight conn_settle() finishes, once the caller is
     * done with c. */
    bench_loop_cancel(&w->loop, &c->io);
}

static void
conn_settle(void *ctx, struct bench_loop_conn *io)
{
    struct worker *w = ctx;
    struct conn *c = conn_of(io);

    if (c->state == CONN_STATE_CLOSING && c->io.ops_in_flight == 0) {
        conn_finalize(w, c);
    }
}

/* No op in flight: close the socket and decide what the slot does next. */
static void
conn_finalize(struct worker *w, struct conn *c)
{
    ASSERT(c->state == CONN_STATE_CLOSING);
    bench_loop_release(&w->loop, &c->io);
    if (c->is_connected) {
        ASSERT(w->stats.connections_open > 0);
        bench_smtp_stats_add(&w->stats.connections_open, (uint64_t)-1);
        c->is_connected = false;
    }
    c->recv_bytes = 0;
    bench_reply_init(&c->reply);
    c->messages_this_session = 0;
    c->has_pipelining = false;
    c->has_chunking = false;
    c->has_size = false;
    c->has_starttls = false;
    if (c->tls != NULL) {
        /* No op in flight: the kernel holds none of its buffers. */
        bench_tls_reset(c->tls);
    }
    c->is_tls = false;
    uint64_t now = bench_loop_now_ns();
    if (!bench_loop_work_remains(&w->loop, now)) {
        conn_enter(c, CONN_STATE_DONE);
        bench_loop_retire(&w->loop);
    } else if (c->is_abnormal_close) {
        conn_enter(c, CONN_STATE_BACKOFF);
        c->deadline_ns = now + BENCH_LOOP_BACKOFF_NS;
    } else {
        conn_enter(c, CONN_STATE_IDLE);
        conn_start(w, &c->io);
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
        ASSERT(c->io.fd >= 0);
    }
    c->state = next;
}

static void
conn_arm_recv(struct worker *w, struct conn *c)
{
    if (c->is_tls) {
        size_t bytes;
        char *buf = bench_tls_recv_buf(c->tls, &bytes);
        bench_loop_arm_recv(&w->loop, &c->io, buf, bytes);
        return;
    }
    ASSERT(c->recv_bytes < RECV_BUFFER_BYTES);
    bench_loop_arm_recv(&w->loop, &c->io, c->recv_buf + c->recv_bytes,
                        RECV_BUFFER_BYTES - c->recv_bytes);
}

/* Send iov[0..count). Only one send is in flight per connection: a reply
 * that asks for the next send while the last one is still going means the
 * server answered what it has not read, a protocol error. */
static void
conn_send(struct worker *w, struct conn *c, const struct iovec *iov, uint32_t count, bool has_eod)
{
    if (c->is_tls) {
        /* The same rule: the last command must be on its way (encrypted
         * and handed out; handshake bytes may still be going). */
        if (bench_tls_is_plain_queued(c->tls)) {
            conn_protocol_error(w, c, "reply before our data was sent", NULL, 0);
            return;
        }
        c->send_has_eod = has_eod;
        bench_tls_queue(c->tls, iov, count);
        if (has_eod) {
            c->eod_ns = bench_loop_now_ns();
        }
        conn_tls_flush(w, c);
        return;
    }
    if (bench_loop_is_sending(&c->io)) {
        conn_protocol_error(w, c, "reply before our data was sent", NULL, 0);
        return;
    }
    c->send_has_eod = has_eod;
    bench_loop_send(&w->loop, &c->io, iov, count);
    if (has_eod) {
        c->eod_ns = bench_loop_now_ns();
    }
}

static void
conn_send_text(struct worker *w, struct conn *c, const char *text)
{
    struct iovec iov = {.iov_base = (void *)text, .iov_len = strlen(text)};
    conn_send(w, c, &iov, 1, false);
}

/* Ciphertext arrived: advance the handshake, then decrypt into the receive
 * buffer and parse, as long as there is plaintext; then send whatever the
 * TLS layer has to say. Returns false if the connection is closing. */
static bool
conn_tls_received(struct worker *w, struct conn *c, size_t bytes)
{
    if (c->state == CONN_STATE_DRAIN) {
        return true; /* after 221 (a close_notify, say): wait for the close */
    }
    bool is_established = false;
    if (bench_tls_received(c->tls, bytes, &is_established) < 0) {
        conn_tls_error(w, c);
        return false;
    }
    if (is_established) {
        conn_tls_established(w, c);
    }
    /* Each turn either parses what it read or leaves the loop; a server
     * cannot keep it going for longer than the bytes it sent. */
    while (bench_tls_is_established(c->tls) && c->state != CONN_STATE_CLOSING &&
           c->state != CONN_STATE_DRAIN) {
        ASSERT(c->recv_bytes < RECV_BUFFER_BYTES);
        ssize_t n = bench_tls_read(c->tls, c->recv_buf + c->recv_bytes,
                                   RECV_BUFFER_BYTES - c->recv_bytes);
        if (n == 0) {
            break;
        }
        if (n == -ECONNRESET) {
            /* close_notify: as a close of the socket (on_recv). */
            if (c->state == CONN_STATE_QUIT) {
                conn_close(w, c, false);
            } else {
                bench_smtp_stats_add(&w->stats.closed, 1);
                conn_close(w, c, true);
            }
            return false;
        }
        if (n < 0) {
            conn_tls_error(w, c);
            return false;
        }
        c->recv_bytes += (size_t)n;
        if (!reply_parse(w, c)) {
            return false;
        }
    }
    conn_tls_flush(w, c);
    return c->state != CONN_STATE_CLOSING;
}

/* The handshake is done: forget what the plaintext EHLO said (RFC 3207)
 * and say EHLO again, encrypted. */
static void
conn_tls_established(struct worker *w, struct conn *c)
{
    ASSERT(c->state == CONN_STATE_TLS_HANDSHAKE);
    bench_smtp_stats_add(&w->stats.tls_handshakes, 1);
    if (bench_tls_is_resumed(c->tls)) {
        bench_smtp_stats_add(&w->stats.tls_resumed, 1);
    }
    if (w->tls_text[0] == '\0') {
        (void)bench_tls_describe(c->tls, w->tls_text, sizeof(w->tls_text));
    }
    c->has_pipelining = false;
    c->has_chunking = false;
    c->has_size = false;
    c->has_starttls = false;
    conn_enter(c, CONN_STATE_EHLO);
    conn_wait_reply(w, c);
    conn_send_text(w, c, w->ehlo_line);
}

/* Send the TLS layer's next ciphertext chunk, unless one is on its way
 * (its completion calls here again). */
static void
conn_tls_flush(struct worker *w, struct conn *c)
{
    if (c->state == CONN_STATE_CLOSING || bench_loop_is_sending(&c->io)) {
        return;
    }
    struct iovec iov;
    ssize_t n = bench_tls_next_out(c->tls, &iov);
    if (n < 0) {
        conn_tls_error(w, c);
        return;
    }
    if (n > 0) {
        bench_loop_send(&w->loop, &c->io, &iov, 1);
    }
}

/* The handshake or a record failed: count it, say it once, close. */
static void
conn_tls_error(struct worker *w, struct conn *c)
{
    bench_smtp_stats_add(&w->stats.tls_errors, 1);
    if (!w->loop.has_reported_protocol_error) {
        (void)fprintf(stderr, "toaster-bench smtp: %s: TLS: %s\n", w->run->options->server_text,
                      bench_tls_error(c->tls));
        w->loop.has_reported_protocol_error = true;
    }
    conn_close(w, c, true);
}

/* "250-STARTTLS" or "250 STARTTLS" (any case) in an EHLO reply. */
static bool
ehlo_line_is_starttls(const char *line, size_t line_bytes)
{
    static const char keyword[] = "STARTTLS";
    const size_t keyword_bytes = sizeof(keyword) - 1;

    if (line_bytes < 4 + keyword_bytes || memcmp(line, "250", 3) != 0 ||
        strncasecmp(line + 4, keyword, keyword_bytes) != 0) {
        return false;
    }
    return line_bytes == 4 + keyword_bytes || line[4 + keyword_bytes] == ' ';
}

static void
conn_protocol_error(struct worker *w, struct conn *c, const char *what, const char *line,
                    size_t line_bytes)
{
    bench_smtp_stats_add(&w->stats.protocol_errors, 1);
    if (!w->loop.has_reported_protocol_error) {
        if (line_bytes > 80) {
            line_bytes = 80;
        }
        (void)fprintf(stderr, "toaster-bench smtp: %s: %s%s%.*s%s\n",
                      w->run->options->server_text, what, line != NULL ? " \"" : "",
                      (int)line_bytes, line != NULL ? line : "", line != NULL ? "\"" : "");
        w->loop.has_reported_protocol_error = true;
    }
    conn_close(w, c, true);
}

static void
conn_wait_reply(struct worker *w, struct conn *c)
{
    c->deadline_ns =
        bench_loop_now_ns() + (uint64_t)w->run->options->timeout_s * BENCH_LOOP_NS_PER_S;
}

/* Split the receive buffer into lines and feed them to the session.
 * Returns false if the connection is closing. */
static bool
reply_parse(struct worker *w, struct conn *c)
{
    size_t pos = 0;
    bool was_tls = c->is_tls;

    /* A 220 to STARTTLS switches to TLS: what followed it in plaintext
     * is not the server's to send (RFC 3207; the CVE-2011-0411 class). */
    while (pos < c->recv_bytes && c->state != CONN_STATE_CLOSING && c->is_tls == was_tls) {
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
    if (c->is_tls != was_tls && pos < c->recv_bytes) {
        conn_protocol_error(w, c, "plaintext after the 220 to STARTTLS", c->recv_buf + pos,
                            c->recv_bytes - pos);
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
    /* STARTTLS is ours to spot (bench_reply knows the keywords the
     * transaction uses); as there, the first line is the server's name. */
    if (c->state == CONN_STATE_EHLO && c->reply.line_count > 0 &&
        ehlo_line_is_starttls(line, line_bytes)) {
        c->has_starttls = true;
    }
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
    uint64_t now = bench_loop_now_ns();

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
            c->has_starttls = false;
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
        if (options->is_starttls && !c->is_tls) {
            if (!c->has_starttls) {
                /* Plaintext numbers are not what was asked for: stop. */
                bench_smtp_stats_add(&w->stats.tls_errors, 1);
                if (!w->loop.has_reported_protocol_error) {
                    (void)fprintf(stderr,
                                  "toaster-bench smtp: %s: --starttls, but the server does "
                                  "not offer STARTTLS\n",
                                  options->server_text);
                    w->loop.has_reported_protocol_error = true;
                }
                bench_loop_stop_request();
                conn_close(w, c, true);
                return;
            }
            conn_enter(c, CONN_STATE_STARTTLS);
            conn_send_text(w, c, "STARTTLS\r\n");
            return;
        }
        bench_loop_progress(&w->loop, now);
        if (options->is_pipelining && !c->has_pipelining) {
            bench_smtp_stats_add(&w->stats.sessions_without_pipelining, 1);
        }
        if (options->is_bdat && !c->has_chunking) {
            bench_smtp_stats_add(&w->stats.sessions_without_chunking, 1);
        }
        session_ready(w, c);
        return;
    case CONN_STATE_STARTTLS:
        if (code != 220) {
            count_code(w, code);
            conn_close(w, c, true);
            return;
        }
        if (bench_tls_begin(c->tls) < 0) {
            conn_tls_error(w, c);
            return;
        }
        /* From here every byte each way goes through the TLS layer. */
        c->is_tls = true;
        conn_enter(c, CONN_STATE_TLS_HANDSHAKE);
        conn_tls_flush(w, c); /* the ClientHello */
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
    case CONN_STATE_TLS_HANDSHAKE:
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
    uint64_t now = bench_loop_now_ns();

    conn_enter(c, CONN_STATE_READY);
    c->deadline_ns = 0;
    if (!bench_loop_work_remains(&w->loop, now)) {
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
        if (w->loop.started >= allowed) {
            bench_loop_list_push(&w->loop, &w->parked, &c->io);
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
    bench_loop_work_started(&w->loop);
    c->is_in_txn = true;
    c->is_mail_ok = false;
    c->is_txn_failed = false;
    c->rcpt_replies = 0;
    c->rcpt_ok = 0;
    c->is_pipelined_txn = options->is_pipelining && c->has_pipelining;
    c->is_bdat_txn = options->is_bdat && c->has_chunking;
    c->class_index = bench_message_pick(run->message, bench_rng_next(&w->rng));
    const struct bench_message_body *body = bench_message_class(run->message, c->class_index);

    for (uint32_t i = 0; i < options->rcpts_per_message; i++) {
        uint32_t user;
        if (options->is_rcpt_random) {
            user = (uint32_t)(bench_rng_next(&w->rng) % options->users) + 1;
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
    uint64_t latency_us = now > c->eod_ns ? (now - c->eod_ns) / BENCH_LOOP_NS_PER_US : 0;
    histogram_record(&w->stats.latency, latency_us);
    bench_smtp_stats_add(&w->stats.messages_accepted, 1);
    bench_smtp_stats_add(&w->stats.bytes_accepted, body->size_bytes);
    bench_smtp_stats_set(&w->stats.last_final_reply_ns, now);
    bench_loop_progress(&w->loop, now);
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

/* The connection slot whose loop part io is (its first member); NULL for
 * NULL, as an empty list gives. */
static struct conn *
conn_of(struct bench_loop_conn *io)
{
    return io != NULL ? (struct conn *)io : NULL;
}
