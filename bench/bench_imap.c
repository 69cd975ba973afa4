/*
 * bench/bench_imap.c - toaster-bench imap and imap-idle: the event loops
 * and the IMAP client sessions.
 *
 * Each worker thread owns one io_uring, its share of the connection slots
 * (allocated once at start: a receive buffer and a command buffer each,
 * nothing allocated afterwards) and one struct bench_imap_stats. The APPEND
 * message is shared read-only. The main thread starts the workers, prints
 * the progress line once a second when stdout is a terminal, then merges
 * the counters and reports; for imap-idle it also delivers the messages
 * over SMTP (one blocking connection) once every session is idling.
 *
 * A session is an explicit state machine (enum conn_state); every response
 * goes through session_response(). One command is outstanding per
 * connection; per connection at most one connect, one recv and one send
 * are in flight. Responses are split by bench_imap_report's reader, which
 * streams past literal bytes, so the receive buffer is only a window and
 * is emptied by every completion.
 *
 * imap: after LOGIN and SELECT a connection picks commands from the mix;
 * message numbers are random UIDs in 1..UIDNEXT-1 (or 1..EXISTS), which
 * names every message of a freshly imported Maildir. login in the mix
 * means LOGOUT, then a new connection whose connect-to-SELECT-OK time is
 * the login latency.
 * imap-idle: after SELECT INBOX each session sends IDLE and waits; the
 * first "* n EXISTS" with n above the count at SELECT stamps the session.
 *
 * Closing runs in order: cancel everything on the fd, collect every CQE,
 * close the fd, then reconnect, back off or retire the slot. The ring, the
 * ops in flight, sends and the connect queue are bench/bench_loop's.
 *
 * Limits: BENCH_IMAP_CONNECTIONS_MAX connections, the reader's limits per
 * response (bench_imap_report.h), BENCH_LOOP_CONNECTS_IN_FLIGHT_MAX
 * connects per thread, --timeout per response.
 */
#define _GNU_SOURCE
#include "bench/bench_imap.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench_imap_report.h"
#include "bench/bench_loop.h"
#include "bench/bench_rng.h"
#include "bench/bench_reply.h"
#include "bench/bench_smtp.h"
#include "core/assertions.h"

#define RECV_BUFFER_BYTES 16384
#define RECV_BUFFER_IDLE_BYTES 2048
#define CMD_BYTES 1024
#define PORTS_PER_SOURCE 20000
#define APPEND_BODY_BYTES 4096
#define USERS_FILE_BYTES_MAX (256u * 1024 * 1024)
#define SMTP_LINE_BYTES 4096

#define NS_PER_US BENCH_LOOP_NS_PER_US
#define NS_PER_MS BENCH_LOOP_NS_PER_MS
#define NS_PER_S BENCH_LOOP_NS_PER_S

static_assert(BENCH_IMAP_CONNECTIONS_MAX < BENCH_LOOP_SLOT_NONE, "slot numbers fit in 32 bits");
static_assert(CMD_BYTES > 64 + 2 * BENCH_IMAP_NAME_BYTES_MAX + BENCH_IMAP_MAILBOX_BYTES_MAX,
              "the command buffer holds the longest LOGIN, SELECT and APPEND line");

/* Words imap_fill.py puts in From, Subject and bodies. */
static const char *const search_from[] = {"alice", "bob",   "carol", "dave",    "erin",
                                          "frank", "grace", "heidi", "mallory", "oscar"};
static const char *const search_subject[] = {"report",  "meeting", "invoice", "lunch",
                                             "project", "update",  "holiday", "budget"};
static const char *const search_body[] = {"deadline", "attached",  "thanks", "schedule",
                                          "review",   "quarterly", "coffee", "release"};
static const char *const month_names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

enum conn_state {
    CONN_STATE_IDLE,        /* no socket; waiting in the connect queue */
    CONN_STATE_BACKOFF,     /* no socket; the last attempt failed, waiting for deadline */
    CONN_STATE_CONNECTING,  /* connect in flight */
    CONN_STATE_GREETING,    /* waiting for "* OK" */
    CONN_STATE_LOGIN,       /* LOGIN sent */
    CONN_STATE_SELECT,      /* SELECT sent */
    CONN_STATE_COMMAND,     /* a command of the mix sent; waiting for its tagged response */
    CONN_STATE_APPEND_WAIT, /* APPEND line sent without LITERAL+; waiting for "+" */
    CONN_STATE_IDLE_START,  /* IDLE sent; waiting for "+" */
    CONN_STATE_IDLING,      /* idling; waiting for EXISTS or the end */
    CONN_STATE_LOGOUT,      /* LOGOUT sent */
    CONN_STATE_DRAIN,       /* LOGOUT answered; waiting for the server to close */
    CONN_STATE_CLOSING,     /* cancel sent; waiting for the ops in flight */
    CONN_STATE_DONE,        /* no more work: the slot is retired */
};

struct user {
    char name[BENCH_IMAP_NAME_BYTES_MAX];
    char password[BENCH_IMAP_NAME_BYTES_MAX];
};

struct conn {
    struct bench_loop_conn io; /* first: the loop finds slots by it */
    uint32_t global_index;     /* over all workers: picks the user, indexes heard_ns */
    enum conn_state state;
    bool is_connected;
    bool is_abnormal_close;
    bool is_ready; /* counted in sessions_ready */
    bool has_literal_plus;
    bool has_noted_no_literal_plus; /* counted in sessions_without_literal_plus */
    bool is_login_op;               /* this session's connect-to-SELECT is a timed login */
    bool is_store_remove;           /* the next STORE is -FLAGS */
    bool has_heard;
    uint32_t user; /* index into the users */
    uint64_t exists;
    uint64_t uid_next; /* 0: unknown */
    uint64_t exists_at_idle;
    uint64_t deadline_ns;      /* response, connect or backoff deadline; 0: none */
    uint64_t connect_ns;       /* when the connect was submitted */
    uint64_t sent_ns;          /* when the outstanding command was sent */
    enum bench_imap_kind kind; /* of the outstanding command */
    uint32_t tag_seq;
    char tag[16];
    size_t tag_bytes;
    char *recv_buf;
    struct bench_imap_report_reader *reader;
    char *cmd;
};

static_assert(offsetof(struct conn, io) == 0, "a slot starts with its loop part");

struct run;

struct worker {
    struct bench_loop loop; /* first: bench_loop_watch() finds it */
    struct run *run;
    uint32_t index;
    struct conn *conns;
    uint32_t global_base; /* global_index of the first slot */
    char *slab;
    struct bench_imap_report_reader *readers;
    uint64_t rng;
    bool has_reported_refusal;
    struct bench_imap_stats stats;
};

static_assert(offsetof(struct worker, loop) == 0, "a worker starts with its loop");

struct run {
    const struct bench_imap_options *options;
    struct user *users;
    uint32_t user_count;
    char *append_message;
    size_t append_bytes;
    size_t recv_bytes;
    uint64_t start_ns;
    /* imap-idle, shared with the main thread (atomics). */
    uint64_t *heard_ns; /* per connection; 0: not yet */
    uint8_t *is_idling; /* per connection */
    int is_idle_over;
    struct worker *workers;
    /* The main thread's progress line and summary. */
    uint32_t started_threads;
    uint64_t last_done;
};
static const char crlf[] = "\r\n";

static int users_load(struct run *run);
static void append_message_build(struct run *run);
static int deliver(struct run *run, uint64_t *t250_ns, uint8_t *has_message,
                   struct bench_imap_idle_result *result);
static int idle_main_phase(struct run *run, uint32_t started_threads,
                           struct bench_imap_idle_result *result);
static void progress_print(void *ctx, void *snapshot, double elapsed_s, double window_s);
static int worker_setup(void *arg, uint32_t index);
static void worker_teardown(void *arg);
static void worker_tick(void *ctx, uint64_t now);
static void on_connect(void *ctx, struct bench_loop_conn *io, int32_t res);
static void on_recv(void *ctx, struct bench_loop_conn *io, int32_t res);
static void on_send(void *ctx, struct bench_loop_conn *io, int32_t res);
static void conn_start(void *ctx, struct bench_loop_conn *io);
static void conn_close(struct worker *w, struct conn *c, bool is_abnormal);
static void conn_settle(void *ctx, struct bench_loop_conn *io);
static void conn_finalize(struct worker *w, struct conn *c);
static void conn_enter(struct conn *c, enum conn_state next);
static void conn_arm_recv(struct worker *w, struct conn *c);
static void conn_send(struct worker *w, struct conn *c, const struct iovec *iov, uint32_t count);
static void conn_send_cmd(struct worker *w, struct conn *c, size_t cmd_bytes);
static void conn_protocol_error(struct worker *w, struct conn *c, const char *what,
                                const char *text, size_t text_bytes);
static void conn_wait_response(struct worker *w, struct conn *c);
static void conn_lose_command(struct worker *w, struct conn *c);
static void session_response(struct worker *w, struct conn *c);
static void session_untagged(struct worker *w, struct conn *c,
                             const struct bench_imap_report_response *resp);
static void session_tagged(struct worker *w, struct conn *c,
                           const struct bench_imap_report_response *resp);
static void session_login(struct worker *w, struct conn *c);
static void session_select(struct worker *w, struct conn *c);
static void session_ready(struct worker *w, struct conn *c);
static void session_logout(struct worker *w, struct conn *c);
static void session_refused(struct worker *w, struct conn *c, uint64_t *counter, const char *what);
static bool has_capability_code(const struct bench_imap_report_reader *r);
static size_t tag_next(struct conn *c);
static void command_start(struct worker *w, struct conn *c, enum bench_imap_kind kind);
static void ready_set(struct worker *w, struct conn *c, bool is_ready);
static void stats_sum(const struct run *run, struct bench_imap_stats *total);
static struct conn *conn_of(struct bench_loop_conn *io);
static uint64_t digits_value(const char *p, const char *end);

/* The IMAP side of the event loop (bench/bench_loop): a fixed tick, no
 * schedule of its own. */
static const struct bench_loop_ops loop_ops = {.on_connect = on_connect,
                                               .on_recv = on_recv,
                                               .on_send = on_send,
                                               .start = conn_start,
                                               .settle = conn_settle,
                                               .tick = worker_tick};

int
bench_imap_main(int argc, char **argv, const char *command)
{
    struct bench_imap_options options;

    int rc = bench_imap_options_parse(argc, argv, &options);
    if (rc == BENCH_IMAP_OPTIONS_HELP) {
        return BENCH_EXIT_OK;
    }
    if (rc < 0) {
        return BENCH_EXIT_USAGE;
    }
    return bench_imap_run(&options, command);
}

int
bench_imap_run(const struct bench_imap_options *options_in, const char *command)
{
    struct bench_imap_options options = *options_in;
    struct run run = {.options = &options};
    const char *name = options.mode == BENCH_IMAP_MODE_IDLE ? "imap-idle" : "imap";
    bool is_idle = options.mode == BENCH_IMAP_MODE_IDLE;

    /* One source address gives some 28000 ports towards one server: spread
     * many loopback connections over 127.0.0.x unless told otherwise. */
    if (options.source_count == 0 && options.connections > PORTS_PER_SOURCE &&
        options.server.ss_family == AF_INET &&
        (ntohl(((struct sockaddr_in *)&options.server)->sin_addr.s_addr) >> 24) == 127) {
        uint32_t n = (options.connections + PORTS_PER_SOURCE - 1) / PORTS_PER_SOURCE;
        ASSERT(n <= BENCH_IMAP_SOURCES_MAX);
        for (uint32_t i = 0; i < n; i++) {
            struct sockaddr_in *in4 = (struct sockaddr_in *)&options.sources[i];
            memset(&options.sources[i], 0, sizeof(options.sources[i]));
            in4->sin_family = AF_INET;
            in4->sin_addr.s_addr = htonl(UINT32_C(0x7f000001) + i);
        }
        options.source_count = n;
        options.source_bytes = sizeof(struct sockaddr_in);
    }

    /* File descriptors: one per connection and a few for us. */
    if (bench_loop_fd_limit(name, options.connections) < 0) {
        return BENCH_EXIT_USAGE;
    }

    int rc = users_load(&run);
    if (rc < 0) {
        return BENCH_EXIT_USAGE;
    }
    append_message_build(&run);
    run.recv_bytes = is_idle ? RECV_BUFFER_IDLE_BYTES : RECV_BUFFER_BYTES;
    if (is_idle) {
        run.heard_ns = calloc(options.connections, sizeof(*run.heard_ns));
        run.is_idling = calloc(options.connections, sizeof(*run.is_idling));
    }
    run.workers = calloc(options.threads, sizeof(*run.workers));
    if (run.workers == NULL || run.append_message == NULL ||
        (is_idle && (run.heard_ns == NULL || run.is_idling == NULL))) {
        (void)fprintf(stderr, "toaster-bench %s: out of memory\n", name);
        free(run.workers);
        free(run.heard_ns);
        free(run.is_idling);
        free(run.append_message);
        free(run.users);
        return BENCH_EXIT_FAILED;
    }
    run.start_ns = bench_loop_now_ns();
    bench_loop_signals_install();

    uint32_t threads = options.threads;
    for (uint32_t i = 0; i < threads; i++) {
        run.workers[i].run = &run;
    }
    uint32_t started_threads =
        bench_loop_threads_start(run.workers, sizeof(run.workers[0]), threads, name, worker_setup,
                                 &loop_ops, worker_teardown);

    struct bench_imap_idle_result *idle_result = NULL;
    int idle_rc = 0;
    if (is_idle && started_threads == threads) {
        idle_result = calloc(1, sizeof(*idle_result));
        if (idle_result == NULL) {
            (void)fprintf(stderr, "toaster-bench %s: out of memory\n", name);
            idle_rc = -ENOMEM;
        } else {
            idle_rc = idle_main_phase(&run, started_threads, idle_result);
        }
        __atomic_store_n(&run.is_idle_over, 1, __ATOMIC_RELEASE);
    }

    /* Watch: a progress line once a second on a terminal. */
    run.started_threads = started_threads;
    bench_loop_watch(&run.workers[0].loop, sizeof(run.workers[0]), started_threads,
                     !options.is_quiet && isatty(STDOUT_FILENO) && !is_idle, run.start_ns,
                     sizeof(struct bench_imap_stats), progress_print, &run);

    int worker_rc = bench_loop_threads_join(run.workers, sizeof(run.workers[0]), started_threads,
                                            worker_teardown);
    struct bench_imap_stats *total = malloc(sizeof(*total));
    int exit_status = BENCH_EXIT_FAILED;
    if (total == NULL) {
        (void)fprintf(stderr, "toaster-bench %s: out of memory\n", name);
    } else {
        stats_sum(&run, total);
    }

    if (total != NULL && started_threads == threads) {
        uint64_t end_ns = total->last_done_ns;
        if (end_ns == 0) {
            end_ns = bench_loop_now_ns();
        }
        struct bench_imap_report_info info = {
            .server = options.server_text,
            .command = command,
            .connections = options.connections,
            .threads = threads,
            .mix_text = options.mix_text,
            .mailbox = options.mailbox,
            .seconds = (double)(end_ns - run.start_ns) / 1e9,
        };
        bool is_clean = worker_rc == 0 && bench_imap_stats_errors(total) == 0;
        if (!is_idle) {
            is_clean = is_clean && bench_imap_stats_done(total) > 0;
            if (!options.is_quiet) {
                bench_imap_report_summary(stdout, &info, total);
            }
            if (options.json_path != NULL) {
                rc = bench_imap_report_json(options.json_path, &info, total);
                if (rc < 0) {
                    (void)fprintf(stderr, "toaster-bench %s: writing %s: %s\n", name,
                                  options.json_path, strerror(-rc));
                    is_clean = false;
                }
            }
        } else if (idle_result != NULL) {
            is_clean = is_clean && idle_rc == 0 && idle_result->expected > 0 &&
                       idle_result->heard == idle_result->expected &&
                       idle_result->deliver_errors == 0;
            if (!options.is_quiet) {
                bench_imap_report_idle_summary(stdout, &info, total, idle_result);
            }
            if (options.json_path != NULL) {
                rc = bench_imap_report_idle_json(options.json_path, &info, total, idle_result);
                if (rc < 0) {
                    (void)fprintf(stderr, "toaster-bench %s: writing %s: %s\n", name,
                                  options.json_path, strerror(-rc));
                    is_clean = false;
                }
            }
        } else {
            is_clean = false;
        }
        exit_status = is_clean ? BENCH_EXIT_OK : BENCH_EXIT_FAILED;
    }
    (void)fflush(stdout);
    free(total);
    free(idle_result);
    free(run.workers);
    free(run.heard_ns);
    free(run.is_idling);
    free(run.append_message);
    if (run.users != NULL) {
        explicit_bzero(run.users, sizeof(*run.users) * run.user_count);
    }
    free(run.users);
    return exit_status;
}

/* The users: --users FILE (its first --user-count usable lines), or the
 * pattern with %d over 1..--user-count. Returns 0 or -errno after saying
 * why on stderr. */
static int
users_load(struct run *run)
{
    const struct bench_imap_options *options = run->options;
    uint32_t count = options->user_count;

    if (options->users_path == NULL) {
        run->users = calloc(count, sizeof(*run->users));
        if (run->users == NULL) {
            (void)fprintf(stderr, "toaster-bench imap: out of memory for %" PRIu32 " users\n",
                          count);
            return -ENOMEM;
        }
        const char *percent = strstr(options->user_pattern, "%d");
        for (uint32_t i = 0; i < count; i++) {
            struct user *u = &run->users[i];
            if (percent == NULL) {
                (void)snprintf(u->name, sizeof(u->name), "%s", options->user_pattern);
            } else {
                (void)snprintf(u->name, sizeof(u->name), "%.*s%" PRIu32 "%s",
                               (int)(percent - options->user_pattern), options->user_pattern, i + 1,
                               percent + 2);
            }
            (void)snprintf(u->password, sizeof(u->password), "%s", options->password);
        }
        run->user_count = count;
        return 0;
    }
    FILE *in = fopen(options->users_path, "r");
    if (in == NULL) {
        int error = errno;
        (void)fprintf(stderr, "toaster-bench imap: --users %s: %s\n", options->users_path,
                      strerror(error));
        return -error;
    }
    run->users = calloc(count, sizeof(*run->users));
    if (run->users == NULL) {
        (void)fclose(in);
        return -ENOMEM;
    }
    char line[4 * BENCH_IMAP_NAME_BYTES_MAX];
    uint32_t n = 0;
    uint64_t line_number = 0;
    /* Bounded by the file's lines and by count. */
    while (n < count && fgets(line, sizeof(line), in) != NULL) {
        line_number++;
        int rc = bench_imap_options_user_line(line, strlen(line), run->users[n].name,
                                              run->users[n].password);
        if (rc < 0) {
            (void)fprintf(stderr,
                          "toaster-bench imap: --users %s: line %" PRIu64
                          " is not user:{PLAIN}password\n",
                          options->users_path, line_number);
            (void)fclose(in);
            return -EINVAL;
        }
        if (rc == 0) {
            n++;
        }
    }
    (void)fclose(in);
    if (n == 0) {
        (void)fprintf(stderr, "toaster-bench imap: --users %s holds no user\n",
                      options->users_path);
        return -EINVAL;
    }
    run->user_count = n;
    return 0;
}

/* A ~4 KiB text message with CRLF line ends for APPEND. */
static void
append_message_build(struct run *run)
{
    static const char head[] = "From: Bench Appender <appender@example.test>\r\n"
                               "To: someone@example.test\r\n"
                               "Subject: toaster-bench append\r\n"
                               "Date: Fri, 4 Dec 2026 12:00:00 +0000\r\n"
                               "Message-ID: <append@toaster-bench.example.test>\r\n"
                               "MIME-Version: 1.0\r\n"
                               "Content-Type: text/plain; charset=us-ascii\r\n"
                               "\r\n";
    static const char line[] = "The quick brown fox jumps over the lazy dog, appended again.\r\n";
    size_t bytes = sizeof(head) - 1;
    size_t lines = (APPEND_BODY_BYTES - bytes) / (sizeof(line) - 1);
    size_t total = bytes + lines * (sizeof(line) - 1);

    run->append_message = malloc(total);
    if (run->append_message == NULL) {
        return;
    }
    memcpy(run->append_message, head, sizeof(head) - 1);
    for (size_t i = 0; i < lines; i++) {
        memcpy(run->append_message + bytes, line, sizeof(line) - 1);
        bytes += sizeof(line) - 1;
    }
    ASSERT(bytes == total);
    run->append_bytes = total;
}

/* imap-idle, main thread: wait for every session to idle (or fail), then
 * deliver, then wait for the pushes; fills result. */
static int
idle_main_phase(struct run *run, uint32_t started_threads, struct bench_imap_idle_result *result)
{
    const struct bench_imap_options *options = run->options;
    uint32_t connections = options->connections;
    uint64_t deadline = bench_loop_now_ns() + (uint64_t)options->timeout_s * NS_PER_S +
                        (uint64_t)connections * NS_PER_MS; /* connects take their time */
    bool is_quiet = options->is_quiet;

    result->connections = connections;
    histogram_init(&result->push);
    /* Wait until every session idles, or has stopped trying. */
    for (;;) {
        uint64_t idling = 0;
        uint64_t live = 0;
        for (uint32_t i = 0; i < started_threads; i++) {
            idling += __atomic_load_n(&run->workers[i].stats.sessions_ready, __ATOMIC_RELAXED);
            live += __atomic_load_n(&run->workers[i].loop.live_count, __ATOMIC_RELAXED);
        }
        if (idling == connections) {
            break;
        }
        if (bench_loop_is_stop_requested() || live == 0 || bench_loop_now_ns() > deadline) {
            (void)fprintf(stderr,
                          "toaster-bench imap-idle: only %" PRIu64 " of %" PRIu32
                          " sessions idle; delivering anyway\n",
                          idling, connections);
            break;
        }
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 20 * 1000 * 1000};
        (void)nanosleep(&pause, NULL);
    }
    result->ready_seconds = (double)(bench_loop_now_ns() - run->start_ns) / 1e9;
    for (uint32_t i = 0; i < connections; i++) {
        result->idling += __atomic_load_n(&run->is_idling[i], __ATOMIC_ACQUIRE);
    }
    if (options->hold_s > 0) {
        /* Everyone idles: an outside observer (bench/imap_idle.sh) reads
         * the server's steady-state memory now. */
        if (options->hold_file != NULL) {
            FILE *f = fopen(options->hold_file, "w");
            if (f != NULL) {
                (void)fprintf(f, "%" PRIu64 "\n", result->idling);
                (void)fclose(f);
            }
        }
        struct timespec hold = {.tv_sec = (time_t)options->hold_s, .tv_nsec = 0};
        while (nanosleep(&hold, &hold) != 0 && errno == EINTR && !bench_loop_is_stop_requested()) {
        }
    }
    if (!is_quiet) {
        (void)fprintf(stderr,
                      "toaster-bench imap-idle: %" PRIu64 " sessions idle after %.1f s; "
                      "delivering %" PRIu32 " messages to %s\n",
                      result->idling, (double)(bench_loop_now_ns() - run->start_ns) / 1e9,
                      options->deliver_count, options->smtp_text);
    }

    uint64_t *t250 = calloc(run->user_count, sizeof(*t250));
    uint8_t *has_message = calloc(run->user_count, sizeof(*has_message));
    if (t250 == NULL || has_message == NULL) {
        free(t250);
        free(has_message);
        return -ENOMEM;
    }
    int rc = deliver(run, t250, has_message, result);

    /* Who should hear, and wait for them. */
    uint64_t push_deadline = bench_loop_now_ns() + (uint64_t)options->push_timeout_s * NS_PER_S;
    for (;;) {
        uint64_t expected = 0;
        uint64_t heard = 0;
        for (uint32_t i = 0; i < connections; i++) {
            uint32_t user = i % run->user_count;
            if (!__atomic_load_n(&run->is_idling[i], __ATOMIC_ACQUIRE) || !has_message[user]) {
                continue;
            }
            expected++;
            heard += __atomic_load_n(&run->heard_ns[i], __ATOMIC_ACQUIRE) != 0;
        }
        result->expected = expected;
        result->heard = heard;
        if (heard == expected || bench_loop_now_ns() > push_deadline ||
            bench_loop_is_stop_requested()) {
            break;
        }
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 5 * 1000 * 1000};
        (void)nanosleep(&pause, NULL);
    }
    for (uint32_t i = 0; i < connections; i++) {
        uint32_t user = i % run->user_count;
        uint64_t heard = __atomic_load_n(&run->heard_ns[i], __ATOMIC_ACQUIRE);
        if (heard == 0 || !has_message[user]) {
            continue;
        }
        /* toasterd may push before the client has read the 250: 0. */
        histogram_record(&result->push, heard > t250[user] ? (heard - t250[user]) / NS_PER_US : 0);
    }
    free(t250);
    free(has_message);
    return rc;
}

/* Send deliver_count messages over one SMTP connection, users in turn;
 * stamp the first 250 per user. Returns 0, or -errno when the connection
 * failed (counted in deliver_errors with the messages not sent). */
static int
deliver(struct run *run, uint64_t *t250_ns, uint8_t *has_message,
        struct bench_imap_idle_result *result)
{
    const struct bench_imap_options *options = run->options;
    char buf[SMTP_LINE_BYTES];
    size_t buf_bytes = 0;
    char cmd[2 * BENCH_IMAP_NAME_BYTES_MAX + 64];
    struct bench_reply reply;
    uint64_t start = bench_loop_now_ns();
    uint32_t sent = 0;
    int code = 0;
    int rc = 0;

    int fd = socket(options->smtp.ss_family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    struct timeval tv = {.tv_sec = options->timeout_s, .tv_usec = 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (const struct sockaddr *)&options->smtp, options->smtp_bytes) < 0) {
        rc = -errno;
        goto out;
    }
    bench_reply_init(&reply);
    /* One step: send text (if any), then read one whole reply into code.
     * Bounded: every recv adds bytes to a fixed buffer or ends the loop. */
#define SMTP_STEP(text, text_bytes)                                                                \
    do {                                                                                           \
        if ((text_bytes) > 0 &&                                                                    \
            send(fd, (text), (text_bytes), MSG_NOSIGNAL) != (ssize_t)(text_bytes)) {               \
            rc = -EIO;                                                                             \
            goto out;                                                                              \
        }                                                                                          \
        code = 0;                                                                                  \
        for (bool is_reply_done = false; !is_reply_done;) {                                        \
            size_t line_bytes;                                                                     \
            size_t taken = bench_reply_line_next(buf, buf_bytes, &line_bytes);                     \
            if (taken == 0) {                                                                      \
                if (buf_bytes == sizeof(buf)) {                                                    \
                    rc = -EPROTO;                                                                  \
                    goto out;                                                                      \
                }                                                                                  \
                ssize_t got = recv(fd, buf + buf_bytes, sizeof(buf) - buf_bytes, 0);               \
                if (got <= 0) {                                                                    \
                    rc = got == 0 ? -ECONNRESET : -errno;                                          \
                    goto out;                                                                      \
                }                                                                                  \
                buf_bytes += (size_t)got;                                                          \
                continue;                                                                          \
            }                                                                                      \
            enum bench_reply_result r = bench_reply_feed(&reply, buf, line_bytes);                 \
            memmove(buf, buf + taken, buf_bytes - taken);                                          \
            buf_bytes -= taken;                                                                    \
            if (r == BENCH_REPLY_ERROR) {                                                          \
                rc = -EPROTO;                                                                      \
                goto out;                                                                          \
            }                                                                                      \
            if (r == BENCH_REPLY_DONE) {                                                           \
                code = reply.code;                                                                 \
                is_reply_done = true;                                                              \
            }                                                                                      \
        }                                                                                          \
    } while (0)

    SMTP_STEP("", 0);
    if (code != 220) {
        rc = -EPROTO;
        goto out;
    }
    static const char ehlo[] = "EHLO toaster-bench.example.test\r\n";
    SMTP_STEP(ehlo, sizeof(ehlo) - 1);
    if (code != 250) {
        rc = -EPROTO;
        goto out;
    }
    for (uint32_t i = 0; i < options->deliver_count; i++) {
        uint32_t user = i % run->user_count;
        const char *rcpt = run->users[user].name;
        int n = snprintf(cmd, sizeof(cmd), "MAIL FROM:<idle-bench@example.test>\r\n");
        SMTP_STEP(cmd, (size_t)n);
        if (code != 250) {
            result->deliver_errors++;
            continue;
        }
        n = snprintf(cmd, sizeof(cmd), "RCPT TO:<%s>\r\n", rcpt);
        SMTP_STEP(cmd, (size_t)n);
        if (code != 250 && code != 251) {
            result->deliver_errors++;
            SMTP_STEP("RSET\r\n", 6);
            continue;
        }
        SMTP_STEP("DATA\r\n", 6);
        if (code != 354) {
            result->deliver_errors++;
            SMTP_STEP("RSET\r\n", 6);
            continue;
        }
        char message[1024];
        n = snprintf(message, sizeof(message),
                     "From: idle-bench@example.test\r\nTo: %s\r\n"
                     "Subject: toaster-bench imap-idle %" PRIu32 "\r\n"
                     "Message-ID: <idle-%" PRIu32 "-%" PRIu64 "@toaster-bench.example.test>\r\n"
                     "\r\nA push for an IDLE session.\r\n.\r\n",
                     rcpt, i, i, start);
        ASSERT(n > 0 && (size_t)n < sizeof(message));
        SMTP_STEP(message, (size_t)n);
        uint64_t now = bench_loop_now_ns();
        if (code != 250) {
            result->deliver_errors++;
            continue;
        }
        result->delivered++;
        sent++;
        if (!has_message[user]) {
            t250_ns[user] = now;
            has_message[user] = 1;
        }
    }
    SMTP_STEP("QUIT\r\n", 6);
#undef SMTP_STEP
out:
    if (rc < 0) {
        (void)fprintf(stderr,
                      "toaster-bench imap-idle: SMTP to %s: %s after %" PRIu32 " messages\n",
                      options->smtp_text, strerror(-rc), sent);
        if (result->delivered + result->deliver_errors < options->deliver_count) {
            result->deliver_errors = options->deliver_count - result->delivered;
        }
    }
    if (fd >= 0) {
        (void)close(fd);
    }
    result->deliver_seconds = (double)(bench_loop_now_ns() - start) / 1e9;
    return rc;
}

/* Progress line: the counters so far and the rate since the last line. */
static void
progress_print(void *ctx, void *snapshot, double elapsed_s, double window_s)
{
    struct run *run = ctx;
    struct bench_imap_stats *total = snapshot;

    stats_sum(run, total);
    uint64_t done = bench_imap_stats_done(total);
    bench_imap_report_progress(stdout, elapsed_s, total,
                               (double)(done - run->last_done) / window_s);
    run->last_done = done;
}

/* Worker index's share of the run; allocate the slots and their buffers.
 * Runs before the thread starts, after the workers before it. */
static int
worker_setup(void *arg, uint32_t index)
{
    struct worker *w = arg;
    const struct run *run = w->run;
    const struct bench_imap_options *options = run->options;

    w->index = index;
    bench_loop_share(&w->loop, index, options->threads, options->connections, options->count,
                     options->duration_s, run->start_ns);
    if (index > 0) {
        const struct worker *before = w - 1;
        w->global_base = before->global_base + before->loop.conn_count;
    }
    w->rng = options->seed * 0x9e3779b97f4a7c15ULL + index + 1;
    bench_imap_stats_init(&w->stats);

    size_t per_conn = (run->recv_bytes + CMD_BYTES + 63) / 64 * 64;

    w->conns = calloc(w->loop.conn_count, sizeof(*w->conns));
    w->slab = calloc(w->loop.conn_count, per_conn);
    w->readers = calloc(w->loop.conn_count, sizeof(*w->readers));
    if (w->conns == NULL || w->slab == NULL || w->readers == NULL) {
        worker_teardown(w);
        return -ENOMEM;
    }
    bench_loop_init(&w->loop, "imap", w->conns, sizeof(*w->conns));
    for (uint32_t i = 0; i < w->loop.conn_count; i++) {
        struct conn *c = &w->conns[i];
        char *base = w->slab + (size_t)i * per_conn;
        c->global_index = w->global_base + i;
        c->user = c->global_index % run->user_count;
        c->state = CONN_STATE_IDLE;
        c->recv_buf = base;
        c->cmd = base + run->recv_bytes;
        c->reader = &w->readers[i];
        bench_imap_report_reader_init(c->reader);
    }
    return 0;
}

static void
worker_teardown(void *arg)
{
    struct worker *w = arg;

    bench_loop_ring_exit(&w->loop);
    free(w->conns);
    free(w->slab);
    free(w->readers);
    w->conns = NULL;
    w->slab = NULL;
    w->readers = NULL;
}

static void
worker_tick(void *ctx, uint64_t now)
{
    struct worker *w = ctx;
    const struct bench_imap_options *options = w->run->options;

    /* imap-idle ends when the main thread has heard enough. */
    if (options->mode == BENCH_IMAP_MODE_IDLE && !w->loop.is_stopping &&
        __atomic_load_n(&w->run->is_idle_over, __ATOMIC_ACQUIRE) != 0) {
        w->loop.is_stopping = true;
    }
    bench_loop_tick_stop(&w->loop, now, options->server_text);
    bool is_working = bench_loop_work_remains(&w->loop, now);
    if (!is_working) {
        struct conn *c;
        while ((c = conn_of(bench_loop_list_pop(&w->loop, &w->loop.connect_queue))) != NULL) {
            conn_enter(c, CONN_STATE_DONE);
            bench_loop_retire(&w->loop);
        }
    }
    bool is_idle_end = !is_working && options->mode == BENCH_IMAP_MODE_IDLE;
    for (uint32_t i = 0; i < w->loop.conn_count; i++) {
        struct conn *c = &w->conns[i];
        if (is_idle_end && c->io.fd >= 0 && c->state != CONN_STATE_CLOSING) {
            /* The end of imap-idle: no goodbye needed; sessions that never
             * got to IDLE are already left out of the result. */
            conn_close(w, c, false);
            conn_settle(w, &c->io);
            continue;
        }
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
            conn_close(w, c, false);
            conn_settle(w, &c->io);
            break;
        case CONN_STATE_CONNECTING:
        case CONN_STATE_GREETING:
        case CONN_STATE_LOGIN:
        case CONN_STATE_SELECT:
        case CONN_STATE_COMMAND:
        case CONN_STATE_APPEND_WAIT:
        case CONN_STATE_IDLE_START:
        case CONN_STATE_LOGOUT:
            bench_imap_stats_add(&w->stats.timeouts, 1);
            conn_close(w, c, true);
            conn_settle(w, &c->io);
            break;
        case CONN_STATE_IDLE:
        case CONN_STATE_IDLING:
        case CONN_STATE_CLOSING:
        case CONN_STATE_DONE:
            break;
        }
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
        bench_imap_stats_add(&w->stats.connect_errors, 1);
        if (!w->loop.has_reported_connect_error) {
            (void)fprintf(stderr, "toaster-bench imap: connect to %s: %s\n",
                          w->run->options->server_text, strerror(-res));
            w->loop.has_reported_connect_error = true;
        }
        conn_close(w, c, true);
        return;
    }
    bench_imap_stats_add(&w->stats.connects_ok, 1);
    bench_imap_stats_add(&w->stats.connections_open, 1);
    c->is_connected = true;
    conn_enter(c, CONN_STATE_GREETING);
    conn_arm_recv(w, c);
    conn_wait_response(w, c);
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
        if (c->state == CONN_STATE_DRAIN || c->state == CONN_STATE_LOGOUT) {
            conn_close(w, c, false);
            return;
        }
        bench_imap_stats_add(&w->stats.closed, 1);
        conn_close(w, c, true);
        return;
    }
    bench_imap_stats_add(&w->stats.bytes_received, (uint64_t)res);
    size_t bytes = (size_t)res;
    size_t pos = 0;
    /* Each feed takes at least one byte. */
    while (pos < bytes && c->state != CONN_STATE_CLOSING) {
        enum bench_imap_report_result result;
        pos += bench_imap_report_reader_feed(c->reader, c->recv_buf + pos, bytes - pos, &result);
        if (result == BENCH_IMAP_REPORT_ERROR) {
            conn_protocol_error(w, c, bench_imap_report_error_text(c->reader->error), NULL, 0);
            return;
        }
        if (result == BENCH_IMAP_REPORT_DONE) {
            session_response(w, c);
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
        bench_imap_stats_add(&w->stats.closed, 1);
        conn_close(w, c, true);
        return;
    }
    (void)bench_loop_sent(&w->loop, &c->io, (size_t)res); /* a partial send goes on by itself */
}

static void
conn_start(void *ctx, struct bench_loop_conn *io)
{
    struct worker *w = ctx;
    struct conn *c = conn_of(io);
    const struct run *run = w->run;
    const struct bench_imap_options *options = run->options;
    uint64_t now = bench_loop_now_ns();

    ASSERT(c->state == CONN_STATE_IDLE);
    if (!bench_loop_work_remains(&w->loop, now)) {
        conn_enter(c, CONN_STATE_DONE);
        bench_loop_retire(&w->loop);
        return;
    }
    if (w->loop.connects_in_flight >= BENCH_LOOP_CONNECTS_IN_FLIGHT_MAX) {
        bench_loop_list_push(&w->loop, &w->loop.connect_queue, &c->io);
        return;
    }
    /* With login in the mix every session is a timed login; counted only
     * once the connect is submitted. */
    bool is_login_op = options->mode == BENCH_IMAP_MODE_COMMANDS &&
                       options->mix.weights[BENCH_IMAP_KIND_LOGIN] > 0;
    bool is_bind = false;
    int rc = bench_loop_connect(&w->loop, &c->io, &options->server, options->server_bytes,
                                options->sources, options->source_count, options->source_bytes,
                                &w->loop.source_next, options->threads, &is_bind);
    if (rc < 0) {
        bench_imap_stats_add(&w->stats.connect_errors, 1);
        w->loop.failures_since_progress++;
        if (!w->loop.has_reported_connect_error) {
            (void)fprintf(stderr, "toaster-bench imap: %s: %s\n",
                          is_bind ? "bind to a source address" : "socket", strerror(-rc));
            w->loop.has_reported_connect_error = true;
        }
        conn_enter(c, CONN_STATE_BACKOFF);
        c->deadline_ns = now + BENCH_LOOP_BACKOFF_NS;
        return;
    }
    c->is_login_op = is_login_op;
    if (c->is_login_op) {
        bench_loop_work_started(&w->loop);
    }
    conn_enter(c, CONN_STATE_CONNECTING);
    c->connect_ns = now;
    c->deadline_ns = now + (uint64_t)options->timeout_s * NS_PER_S;
}

/* Start closing: cancel whatever is in flight; conn_settle() finishes. A
 * command in progress is lost. */
static void
conn_close(struct worker *w, struct conn *c, bool is_abnormal)
{
    if (c->state == CONN_STATE_CLOSING || c->state == CONN_STATE_DONE) {
        return;
    }
    if (is_abnormal) {
        conn_lose_command(w, c);
        if (c->state <= CONN_STATE_SELECT) {
            w->loop.failures_since_progress++;
        }
    }
    ready_set(w, c, false);
    c->is_abnormal_close = is_abnormal;
    c->deadline_ns = 0;
    conn_enter(c, CONN_STATE_CLOSING);
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

static void
conn_finalize(struct worker *w, struct conn *c)
{
    ASSERT(c->state == CONN_STATE_CLOSING);
    bench_loop_release(&w->loop, &c->io);
    if (c->is_connected) {
        ASSERT(w->stats.connections_open > 0);
        bench_imap_stats_add(&w->stats.connections_open, (uint64_t)-1);
        c->is_connected = false;
    }
    bench_imap_report_reader_init(c->reader);
    c->has_literal_plus = false;
    c->has_noted_no_literal_plus = false;
    c->exists = 0;
    c->uid_next = 0;
    uint64_t now = bench_loop_now_ns();
    /* imap-idle sessions are made once: a lost one stays lost. */
    if (!bench_loop_work_remains(&w->loop, now) || w->run->options->mode == BENCH_IMAP_MODE_IDLE) {
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
    ASSERT(c->state != CONN_STATE_DONE);
    if (c->state == CONN_STATE_CLOSING) {
        ASSERT(next == CONN_STATE_IDLE || next == CONN_STATE_BACKOFF || next == CONN_STATE_DONE);
    }
    if (next == CONN_STATE_CLOSING) {
        ASSERT(c->io.fd >= 0);
    }
    c->state = next;
}

/* The receive buffer is only a window: every completion empties it. */
static void
conn_arm_recv(struct worker *w, struct conn *c)
{
    bench_loop_arm_recv(&w->loop, &c->io, c->recv_buf, w->run->recv_bytes);
}

/* Send iov[0..count). One command is outstanding, so a response asking for
 * the next send while the last is still going means the server answered
 * what it has not read: a protocol error. */
static void
conn_send(struct worker *w, struct conn *c, const struct iovec *iov, uint32_t count)
{
    if (bench_loop_is_sending(&c->io)) {
        conn_protocol_error(w, c, "response before our command was sent", NULL, 0);
        return;
    }
    bench_loop_send(&w->loop, &c->io, iov, count);
}

static void
conn_send_cmd(struct worker *w, struct conn *c, size_t cmd_bytes)
{
    ASSERT(cmd_bytes > 0 && cmd_bytes < CMD_BYTES);
    struct iovec iov = {.iov_base = c->cmd, .iov_len = cmd_bytes};
    conn_send(w, c, &iov, 1);
}

static void
conn_protocol_error(struct worker *w, struct conn *c, const char *what, const char *text,
                    size_t text_bytes)
{
    bench_imap_stats_add(&w->stats.protocol_errors, 1);
    if (!w->loop.has_reported_protocol_error) {
        if (text_bytes > 100) {
            text_bytes = 100;
        }
        (void)fprintf(stderr, "toaster-bench imap: %s: %s%s%.*s%s\n", w->run->options->server_text,
                      what, text != NULL ? " \"" : "", (int)text_bytes, text != NULL ? text : "",
                      text != NULL ? "\"" : "");
        w->loop.has_reported_protocol_error = true;
    }
    conn_close(w, c, true);
}

static void
conn_wait_response(struct worker *w, struct conn *c)
{
    c->deadline_ns = bench_loop_now_ns() + (uint64_t)w->run->options->timeout_s * NS_PER_S;
}

/* The outstanding command (or the login in progress) will not be answered. */
static void
conn_lose_command(struct worker *w, struct conn *c)
{
    if (c->state == CONN_STATE_COMMAND || c->state == CONN_STATE_APPEND_WAIT) {
        bench_imap_stats_add(&w->stats.kinds[c->kind].failed, 1);
    } else if (c->is_login_op && c->state >= CONN_STATE_CONNECTING &&
               c->state <= CONN_STATE_SELECT) {
        bench_imap_stats_add(&w->stats.kinds[BENCH_IMAP_KIND_LOGIN].failed, 1);
        c->is_login_op = false;
    }
}

/* One whole response in c->reader. */
static void
session_response(struct worker *w, struct conn *c)
{
    const struct bench_imap_report_reader *r = c->reader;
    struct bench_imap_report_response resp;

    bench_imap_report_response_parse(r->text, r->text_bytes, &resp);
    switch (resp.kind) {
    case BENCH_IMAP_REPORT_GARBAGE:
        conn_protocol_error(w, c, "malformed response", r->text, r->text_bytes);
        return;
    case BENCH_IMAP_REPORT_UNTAGGED:
        session_untagged(w, c, &resp);
        return;
    case BENCH_IMAP_REPORT_CONTINUATION:
        if (c->state == CONN_STATE_APPEND_WAIT) {
            struct iovec iov[2] = {
                {.iov_base = w->run->append_message, .iov_len = w->run->append_bytes},
                {.iov_base = (void *)crlf, .iov_len = 2},
            };
            conn_enter(c, CONN_STATE_COMMAND);
            conn_send(w, c, iov, 2);
            return;
        }
        if (c->state == CONN_STATE_IDLE_START) {
            conn_enter(c, CONN_STATE_IDLING);
            c->deadline_ns = 0;
            c->exists_at_idle = c->exists;
            __atomic_store_n(&w->run->is_idling[c->global_index], 1, __ATOMIC_RELEASE);
            ready_set(w, c, true);
            bench_loop_progress(&w->loop, bench_loop_now_ns());
            return;
        }
        conn_protocol_error(w, c, "continuation nobody asked for", r->text, r->text_bytes);
        return;
    case BENCH_IMAP_REPORT_TAGGED:
        session_tagged(w, c, &resp);
        return;
    }
}

static void
session_untagged(struct worker *w, struct conn *c, const struct bench_imap_report_response *resp)
{
    const struct bench_imap_report_reader *r = c->reader;

    if (resp->has_number) {
        if (resp->word_bytes == 6 && strncasecmp(resp->word, "EXISTS", 6) == 0) {
            c->exists = resp->number;
            if (c->state == CONN_STATE_IDLING && !c->has_heard && c->exists > c->exists_at_idle) {
                c->has_heard = true;
                __atomic_store_n(&w->run->heard_ns[c->global_index], bench_loop_now_ns(),
                                 __ATOMIC_RELEASE);
            }
        } else if (resp->word_bytes == 7 && strncasecmp(resp->word, "EXPUNGE", 7) == 0 &&
                   c->exists > 0) {
            c->exists--;
        }
        return;
    }
    bool is_capability = resp->word_bytes == 10 && strncasecmp(resp->word, "CAPABILITY", 10) == 0;
    if (is_capability || ((resp->status == BENCH_IMAP_REPORT_STATUS_OK ||
                           resp->status == BENCH_IMAP_REPORT_STATUS_PREAUTH) &&
                          has_capability_code(r))) {
        /* The latest list counts: LOGIN may change what the greeting said. */
        c->has_literal_plus = bench_imap_report_has_atom(r->text, r->text_bytes, "LITERAL+");
    }
    switch (resp->status) {
    case BENCH_IMAP_REPORT_STATUS_OK: {
        static const char uidnext[] = "[UIDNEXT ";
        const char *p = memmem(r->text, r->text_bytes, uidnext, sizeof(uidnext) - 1);
        if (p != NULL) {
            c->uid_next = digits_value(p + sizeof(uidnext) - 1, r->text + r->text_bytes);
        }
        if (c->state == CONN_STATE_GREETING) {
            session_login(w, c);
        }
        return;
    }
    case BENCH_IMAP_REPORT_STATUS_PREAUTH:
        if (c->state == CONN_STATE_GREETING) {
            session_select(w, c);
        }
        return;
    case BENCH_IMAP_REPORT_STATUS_BYE:
        if (c->state != CONN_STATE_LOGOUT && c->state != CONN_STATE_DRAIN) {
            bench_imap_stats_add(&w->stats.bye, 1);
            if (!w->has_reported_refusal) {
                (void)fprintf(stderr, "toaster-bench imap: %s: %.*s\n",
                              w->run->options->server_text,
                              (int)(r->text_bytes > 100 ? 100 : r->text_bytes), r->text);
                w->has_reported_refusal = true;
            }
            conn_close(w, c, true);
        }
        return;
    case BENCH_IMAP_REPORT_STATUS_NO:
    case BENCH_IMAP_REPORT_STATUS_BAD:
    case BENCH_IMAP_REPORT_STATUS_NONE:
        return; /* warnings, CAPABILITY, FLAGS, SEARCH, FETCH of others: nothing to do */
    }
}

static void
session_tagged(struct worker *w, struct conn *c, const struct bench_imap_report_response *resp)
{
    const struct bench_imap_report_reader *r = c->reader;
    uint64_t now = bench_loop_now_ns();

    if (resp->tag_bytes != c->tag_bytes || memcmp(resp->tag, c->tag, c->tag_bytes) != 0) {
        conn_protocol_error(w, c, "response to a tag we did not send", r->text, r->text_bytes);
        return;
    }
    c->tag_bytes = 0; /* answered */
    bool is_ok = resp->status == BENCH_IMAP_REPORT_STATUS_OK;
    if (is_ok && has_capability_code(r)) {
        c->has_literal_plus = bench_imap_report_has_atom(r->text, r->text_bytes, "LITERAL+");
    }
    switch (c->state) {
    case CONN_STATE_LOGIN:
        if (!is_ok) {
            session_refused(w, c, &w->stats.login_refused, "LOGIN");
            return;
        }
        session_select(w, c);
        return;
    case CONN_STATE_SELECT:
        if (!is_ok) {
            session_refused(w, c, &w->stats.select_refused, "SELECT");
            return;
        }
        bench_loop_progress(&w->loop, now);
        if (w->run->options->mode == BENCH_IMAP_MODE_IDLE) {
            size_t n = tag_next(c);
            memcpy(c->cmd + n, " IDLE\r\n", 7);
            conn_enter(c, CONN_STATE_IDLE_START);
            conn_wait_response(w, c);
            conn_send_cmd(w, c, n + 7);
            return;
        }
        if (c->is_login_op) {
            struct bench_imap_kind_stats *ks = &w->stats.kinds[BENCH_IMAP_KIND_LOGIN];
            histogram_record(&ks->latency, (now - c->connect_ns) / NS_PER_US);
            bench_imap_stats_add(&ks->done, 1);
            bench_imap_stats_set(&w->stats.last_done_ns, now);
            c->is_login_op = false;
        }
        ready_set(w, c, true);
        session_ready(w, c);
        return;
    case CONN_STATE_COMMAND: {
        struct bench_imap_kind_stats *ks = &w->stats.kinds[c->kind];
        if (is_ok && c->kind == BENCH_IMAP_KIND_APPEND) {
            /* "[APPENDUID validity uid]": the new message can be picked too. */
            static const char appenduid[] = "[APPENDUID ";
            const char *p = memmem(r->text, r->text_bytes, appenduid, sizeof(appenduid) - 1);
            const char *end = r->text + r->text_bytes;
            if (p != NULL) {
                p += sizeof(appenduid) - 1;
                const char *space = memchr(p, ' ', (size_t)(end - p));
                uint64_t uid = space != NULL ? digits_value(space + 1, end) : 0;
                if (uid > 0 && uid < UINT64_MAX && uid + 1 > c->uid_next) {
                    c->uid_next = uid + 1;
                }
            }
        }
        if (is_ok) {
            histogram_record(&ks->latency, (now - c->sent_ns) / NS_PER_US);
            bench_imap_stats_add(&ks->done, 1);
            bench_imap_stats_set(&w->stats.last_done_ns, now);
            w->loop.last_progress_ns = now;
        } else {
            bench_imap_stats_add(resp->status == BENCH_IMAP_REPORT_STATUS_NO ? &ks->no : &ks->bad,
                                 1);
            if (!w->has_reported_refusal) {
                (void)fprintf(stderr, "toaster-bench imap: %s refused: %.*s\n",
                              bench_imap_options_kind_name(c->kind),
                              (int)(r->text_bytes > 100 ? 100 : r->text_bytes), r->text);
                w->has_reported_refusal = true;
            }
        }
        session_ready(w, c);
        return;
    }
    case CONN_STATE_APPEND_WAIT:
        /* APPEND refused before the literal (too big, no such mailbox). */
        bench_imap_stats_add(resp->status == BENCH_IMAP_REPORT_STATUS_OK
                                 ? &w->stats.protocol_errors
                                 : &w->stats.kinds[BENCH_IMAP_KIND_APPEND].no,
                             1);
        conn_enter(c, CONN_STATE_COMMAND);
        session_ready(w, c);
        return;
    case CONN_STATE_LOGOUT:
        conn_enter(c, CONN_STATE_DRAIN);
        conn_wait_response(w, c);
        return;
    case CONN_STATE_IDLE_START:
    case CONN_STATE_IDLING:
        conn_protocol_error(w, c, "IDLE ended by the server", r->text, r->text_bytes);
        return;
    case CONN_STATE_GREETING:
    case CONN_STATE_DRAIN:
        conn_protocol_error(w, c, "tagged response out of turn", r->text, r->text_bytes);
        return;
    case CONN_STATE_IDLE:
    case CONN_STATE_BACKOFF:
    case CONN_STATE_CONNECTING:
    case CONN_STATE_CLOSING:
    case CONN_STATE_DONE:
        break;
    }
    ASSERT(!"a response arrives only on a connected session");
}

static void
session_login(struct worker *w, struct conn *c)
{
    const struct user *u = &w->run->users[c->user];
    size_t n = tag_next(c);
    int written =
        snprintf(c->cmd + n, CMD_BYTES - n, " LOGIN \"%s\" \"%s\"\r\n", u->name, u->password);
    ASSERT(written > 0 && (size_t)written < CMD_BYTES - n);
    conn_enter(c, CONN_STATE_LOGIN);
    conn_wait_response(w, c);
    conn_send_cmd(w, c, n + (size_t)written);
}

static void
session_select(struct worker *w, struct conn *c)
{
    const struct bench_imap_options *options = w->run->options;
    const char *mailbox = options->mode == BENCH_IMAP_MODE_IDLE ? "INBOX" : options->mailbox;
    size_t n = tag_next(c);
    int written = snprintf(c->cmd + n, CMD_BYTES - n, " SELECT \"%s\"\r\n", mailbox);
    ASSERT(written > 0 && (size_t)written < CMD_BYTES - n);
    conn_enter(c, CONN_STATE_SELECT);
    conn_wait_response(w, c);
    conn_send_cmd(w, c, n + (size_t)written);
}

/* Between commands: the next one, or LOGOUT. */
static void
session_ready(struct worker *w, struct conn *c)
{
    const struct bench_imap_options *options = w->run->options;

    c->deadline_ns = 0;
    if (!bench_loop_work_remains(&w->loop, bench_loop_now_ns())) {
        session_logout(w, c);
        return;
    }
    enum bench_imap_kind kind = bench_imap_options_mix_pick(&options->mix, bench_rng_next(&w->rng));
    if (kind == BENCH_IMAP_KIND_LOGIN) {
        /* The next session, from connect to SELECT, is the timed login;
         * conn_start() counts it. */
        session_logout(w, c);
        return;
    }
    bench_loop_work_started(&w->loop);
    command_start(w, c, kind);
}

static void
session_logout(struct worker *w, struct conn *c)
{
    ready_set(w, c, false);
    size_t n = tag_next(c);
    memcpy(c->cmd + n, " LOGOUT\r\n", 9);
    conn_enter(c, CONN_STATE_LOGOUT);
    conn_wait_response(w, c);
    conn_send_cmd(w, c, n + 9);
}

static void
session_refused(struct worker *w, struct conn *c, uint64_t *counter, const char *what)
{
    const struct bench_imap_report_reader *r = c->reader;
    bench_imap_stats_add(counter, 1);
    if (!w->has_reported_refusal) {
        (void)fprintf(stderr, "toaster-bench imap: %s as %s: %.*s\n", what,
                      w->run->users[c->user].name, (int)(r->text_bytes > 100 ? 100 : r->text_bytes),
                      r->text);
        w->has_reported_refusal = true;
    }
    conn_close(w, c, true);
}

/* The response carries a "[CAPABILITY ...]" code. */
static bool
has_capability_code(const struct bench_imap_report_reader *r)
{
    static const char code[] = "[CAPABILITY ";
    return memmem(r->text, r->text_bytes, code, sizeof(code) - 1) != NULL;
}

/* Write the next tag at the start of c->cmd; returns its length. */
static size_t
tag_next(struct conn *c)
{
    int n = snprintf(c->tag, sizeof(c->tag), "a%" PRIu32, ++c->tag_seq);
    ASSERT(n > 0 && (size_t)n < sizeof(c->tag));
    c->tag_bytes = (size_t)n;
    memcpy(c->cmd, c->tag, c->tag_bytes);
    return c->tag_bytes;
}

/* Build and send one command of the mix. */
static void
command_start(struct worker *w, struct conn *c, enum bench_imap_kind kind)
{
    const struct run *run = w->run;
    uint64_t uid_max = c->uid_next > 1 ? c->uid_next - 1 : c->exists;
    bool needs_message =
        kind == BENCH_IMAP_KIND_FETCH_HEADERS || kind == BENCH_IMAP_KIND_FETCH_BODY ||
        kind == BENCH_IMAP_KIND_FETCH_BODYSTRUCTURE || kind == BENCH_IMAP_KIND_STORE;
    if (needs_message && uid_max == 0) {
        kind = BENCH_IMAP_KIND_NOOP; /* an empty mailbox */
    }
    uint64_t uid = uid_max > 0 ? bench_rng_next(&w->rng) % uid_max + 1 : 0;
    size_t n = tag_next(c);
    char *p = c->cmd + n;
    size_t cap = CMD_BYTES - n;
    int written = 0;
    uint64_t r = bench_rng_next(&w->rng);

    switch (kind) {
    case BENCH_IMAP_KIND_FETCH_HEADERS:
        written = snprintf(p, cap, " UID FETCH %" PRIu64 " (UID FLAGS BODY.PEEK[HEADER])\r\n", uid);
        break;
    case BENCH_IMAP_KIND_FETCH_BODY:
        written = snprintf(p, cap, " UID FETCH %" PRIu64 " BODY.PEEK[]\r\n", uid);
        break;
    case BENCH_IMAP_KIND_FETCH_BODYSTRUCTURE:
        written = snprintf(p, cap, " UID FETCH %" PRIu64 " (BODYSTRUCTURE ENVELOPE)\r\n", uid);
        break;
    case BENCH_IMAP_KIND_SEARCH:
        switch (r % 5) {
        case 0:
            written = snprintf(p, cap, " UID SEARCH FROM %s\r\n",
                               search_from[(r >> 8) % (sizeof(search_from) / sizeof(char *))]);
            break;
        case 1:
            written =
                snprintf(p, cap, " UID SEARCH SUBJECT %s\r\n",
                         search_subject[(r >> 8) % (sizeof(search_subject) / sizeof(char *))]);
            break;
        case 2:
            written = snprintf(p, cap, " UID SEARCH UNSEEN\r\n");
            break;
        case 3:
            /* imap_fill.py dates messages over 2025 and 2026. */
            written =
                snprintf(p, cap, " UID SEARCH SINCE %u-%s-%u\r\n", (unsigned)((r >> 8) % 28 + 1),
                         month_names[(r >> 16) % 12], (unsigned)(2025 + (r >> 24) % 2));
            break;
        default:
            written = snprintf(p, cap, " UID SEARCH BODY %s\r\n",
                               search_body[(r >> 8) % (sizeof(search_body) / sizeof(char *))]);
            break;
        }
        break;
    case BENCH_IMAP_KIND_STORE:
        written = snprintf(p, cap, " UID STORE %" PRIu64 " %cFLAGS.SILENT (\\Flagged)\r\n", uid,
                           c->is_store_remove ? '-' : '+');
        c->is_store_remove = !c->is_store_remove;
        break;
    case BENCH_IMAP_KIND_APPEND:
        written = snprintf(p, cap, " APPEND \"%s\" {%zu%s}\r\n", run->options->mailbox,
                           run->append_bytes, c->has_literal_plus ? "+" : "");
        break;
    case BENCH_IMAP_KIND_NOOP:
        written = snprintf(p, cap, " NOOP\r\n");
        break;
    case BENCH_IMAP_KIND_LOGIN:
    case BENCH_IMAP_KIND_COUNT:
        ASSERT(!"login is no command");
        break;
    }
    ASSERT(written > 0 && (size_t)written < cap);
    c->kind = kind;
    c->sent_ns = bench_loop_now_ns();
    conn_wait_response(w, c);
    if (kind == BENCH_IMAP_KIND_APPEND && c->has_literal_plus) {
        struct iovec iov[3] = {
            {.iov_base = c->cmd, .iov_len = n + (size_t)written},
            {.iov_base = run->append_message, .iov_len = run->append_bytes},
            {.iov_base = (void *)crlf, .iov_len = 2},
        };
        conn_enter(c, CONN_STATE_COMMAND);
        conn_send(w, c, iov, 3);
        return;
    }
    if (kind == BENCH_IMAP_KIND_APPEND) {
        if (!c->has_noted_no_literal_plus) {
            bench_imap_stats_add(&w->stats.sessions_without_literal_plus, 1);
            c->has_noted_no_literal_plus = true;
        }
        conn_enter(c, CONN_STATE_APPEND_WAIT);
        conn_send_cmd(w, c, n + (size_t)written);
        return;
    }
    conn_enter(c, CONN_STATE_COMMAND);
    conn_send_cmd(w, c, n + (size_t)written);
}

/* sessions_ready counts logged-in, selected sessions (imap-idle: idling). */
static void
ready_set(struct worker *w, struct conn *c, bool is_ready)
{
    if (c->is_ready == is_ready) {
        return;
    }
    c->is_ready = is_ready;
    bench_imap_stats_add(&w->stats.sessions_ready, is_ready ? 1 : (uint64_t)-1);
}

/* The counters of the started workers, summed into total. */
static void
stats_sum(const struct run *run, struct bench_imap_stats *total)
{
    bench_imap_stats_init(total);
    for (uint32_t i = 0; i < run->started_threads; i++) {
        bench_imap_stats_merge(total, &run->workers[i].stats);
    }
}

/* The connection slot whose loop part io is (its first member); NULL for
 * NULL, as an empty list gives. */
static struct conn *
conn_of(struct bench_loop_conn *io)
{
    return io != NULL ? (struct conn *)io : NULL;
}

/* The decimal number at p (stopping at end or a non-digit), 0 if none or
 * if it does not fit in 32 bits: UIDs do. */
static uint64_t
digits_value(const char *p, const char *end)
{
    uint64_t value = 0;
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        value = value * 10 + (uint64_t)(*p - '0');
        if (value > UINT32_MAX) {
            return 0;
        }
    }
    return value;
}
