/*
 * core/imap_listener.c - serves IMAP connections on a reactor (see
 * imap_listener.h).
 *
 * Owns each connection's IMAP state (the session, its view of the selected
 * mailbox, the command being run) and each reactor's pool of command
 * scratches. Password checks and every mailbox command run on the worker
 * pool as jobs (one per connection at a time); their output is sent from
 * the job's buffer after the session's own replies. An IDLE session whose
 * mailbox changed is poked by whichever thread changed it and sends the
 * news from a short job.
 *
 * Reactor thread only, except the view notify callback (any thread: it
 * only pokes). Limits: imap_scratch_buffers commands being read or run per
 * reactor; the session's own bounds (proto/imap).
 */
#define _GNU_SOURCE
#include "core/imap_listener.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/assertions.h"
#include "core/imap_exec.h"
#include "core/job.h"
#include "core/log.h"
#include "core/login_delay.h"
#include "core/stats.h"
#include "core/version.h"
#include "proto/imap/imap_session.h"
#include "store/maildir_folders.h"
#include "store/password.h"
#include "store/recipients.h"
#include "store/spool.h"

enum imap_job_kind {
    IMAP_JOB_NONE,
    IMAP_JOB_AUTH,
    IMAP_JOB_COMMAND,
    IMAP_JOB_PUSH, /* IDLE: report the selected mailbox's changes */
};

struct imap_auth {
    struct job job; /* first: the job pointer is the auth pointer */
    struct imap_conn *ic;
    char user[IMAP_SESSION_USER_BYTES]; /* canonical: lower case */
    char password[IMAP_SESSION_PASS_BYTES];
    char hash[PASSWORD_HASH_BYTES_MAX + 1];
    bool has_user;
    bool is_ok;
    char root[IMAP_EXEC_ROOT_BYTES];
};

/* An APPEND message on its way to a spool file (O_TMPFILE when the file
 * system allows), written through the reactor in IMAP_APPEND_BUFFER_BYTES
 * pieces; the worker links it into the folder. */
#define IMAP_APPEND_BUFFER_BYTES (64u * 1024)
/* How soon a job the full worker queue refused is offered again. */
#define IMAP_JOB_RETRY_MS 5u

enum append_op {
    APPEND_OP_NONE,
    APPEND_OP_OPENING,
    APPEND_OP_WRITING,
};

struct imap_append {
    int fd;
    char name[64]; /* the spool file's name when not O_TMPFILE, else "" */
    enum append_op op;
    uint64_t written;   /* bytes in the file */
    uint64_t total;     /* the literal's announced length */
    size_t buf_len;
    size_t write_len;   /* of the write in flight */
    bool is_failed;     /* a write failed, or MULTIAPPEND: the command answers NO */
    bool is_complete;   /* the last chunk arrived */
    bool is_command_waiting; /* the APPEND command waits for the writes */
    char buf[IMAP_APPEND_BUFFER_BYTES];
};

struct imap_conn {
    struct imap_session session;
    struct conn *conn;
    struct mailbox_view view;
    struct job job; /* commands and pushes; auth has its own */
    enum imap_job_kind job_kind;
    bool is_job_out;
    bool is_push_wanted; /* poked while a job was out */
    struct imap_exec exec;
    size_t exec_sent; /* bytes of exec.out already sent */
    size_t exec_range; /* the next of exec.ranges to send */
    uint64_t exec_range_sent; /* bytes of it already sent */
    /* Which output goes first: the session's own replies written before
     * the job's output are sent before it; anything the session writes
     * after (a BYE at shutdown) waits until the job's output is out. Once
     * the job's output was chosen it stays next until it is all sent, so
     * nothing lands inside a literal. */
    bool is_exec_first;
    bool is_exec_started;
    char *root;       /* the user's Maildir, after login */
    bool is_auth_fail_delayed; /* a failed login waits for its timer */
    enum imap_job_kind retry_kind; /* a job the full worker queue refused */
    /* Waiting for a command scratch (scratch_pool.waiting_*), FIFO; a
     * scratch given back is handed to the first waiter (granted) rather
     * than left in the pool, so no newcomer can take it first and leave
     * the waiter asleep with a scratch free. */
    bool is_waiting_for_scratch;
    struct imap_session_scratch *granted;
    struct imap_conn *waiting_prev;
    struct imap_conn *waiting_next;
    struct imap_append *append; /* an APPEND being received, or NULL */
    uint64_t command_start_ns; /* the running mailbox command's first step; 0: none */
};

static_assert(IMAP_CMD_COUNT <= STATS_IMAP_COMMANDS_MAX, "every command has a counter");

/* A reactor's command scratches: lent to sessions mid-command. */
struct scratch_pool {
    struct imap_session_scratch *all;
    struct imap_session_scratch **free_list;
    uint32_t free_count;
    uint32_t made; /* buffers are allocated on first use */
    uint32_t capacity;
    struct imap_conn *waiting_head; /* sessions that found the pool empty */
    struct imap_conn *waiting_tail;
};

static struct {
    const struct config *config;
    int spool_dir_fd; /* O_PATH: where APPEND messages are spooled */
    bool is_spool_unnamed;
    struct imap_session_config session_config;
    struct imap_session_callbacks callbacks;
    struct scratch_pool *pools; /* one per reactor */
    uint32_t pool_count;
    char hostname[256];
} imap_listener;

static void serve_request(struct imap_conn *ic);
static void job_submit(struct imap_conn *ic, enum imap_job_kind kind);
static void command_job_run(struct job *job);
static void command_job_done(struct job *job, struct conn *conn);
static void auth_job_run(struct job *job);
static void auth_job_done(struct job *job, struct conn *conn);
static void auth_check(struct imap_auth *auth);
static void view_notify(struct mailbox_view *view);
static void retry_later(struct imap_conn *ic, enum imap_job_kind kind);
static void auth_submit(struct imap_conn *ic);
static void append_chunk(struct imap_conn *ic);
static void append_flush(struct imap_conn *ic);
static void append_discard(struct imap_conn *ic);

/* ---- scratch pool ---------------------------------------------------------- */

static struct imap_session_scratch *
scratch_acquire(void *owner)
{
    struct imap_conn *ic = owner;
    uint32_t index = reactor_index(conn_reactor(ic->conn));
    ASSERT(index < imap_listener.pool_count);
    struct scratch_pool *pool = &imap_listener.pools[index];
    if (ic->granted != NULL) {
        struct imap_session_scratch *s = ic->granted;
        ic->granted = NULL;
        return s;
    }
    /* Others wait already: in turn, behind them. */
    bool is_queue = pool->waiting_head != NULL && !ic->is_waiting_for_scratch;
    if (!is_queue && pool->free_count > 0) {
        return pool->free_list[--pool->free_count];
    }
    if (is_queue || pool->made == pool->capacity) {
        /* The session waits (backpressure) and is woken, in arrival
         * order, when a scratch comes back. */
        if (!ic->is_waiting_for_scratch) {
            ic->is_waiting_for_scratch = true;
            ic->waiting_next = NULL;
            ic->waiting_prev = pool->waiting_tail;
            if (pool->waiting_tail != NULL) {
                pool->waiting_tail->waiting_next = ic;
            } else {
                pool->waiting_head = ic;
            }
            pool->waiting_tail = ic;
        }
        return NULL;
    }
    struct imap_session_scratch *s = &pool->all[pool->made];
    size_t buf_bytes = IMAP_LINE_BYTES_MAX_DEFAULT + IMAP_LITERAL_BYTES_MAX_DEFAULT;
    s->buf = malloc(buf_bytes);
    s->nodes = malloc(IMAP_PARSER_NODES_DEFAULT * sizeof(*s->nodes));
    if (s->buf == NULL || s->nodes == NULL) {
        free(s->buf);
        free(s->nodes);
        s->buf = NULL;
        s->nodes = NULL;
        log_warning("imap: out of memory for a command scratch");
        return NULL;
    }
    s->buf_bytes = buf_bytes;
    s->nodes_max = IMAP_PARSER_NODES_DEFAULT;
    pool->made++;
    return s;
}

static void
scratch_wait_cancel(struct imap_conn *ic)
{
    if (!ic->is_waiting_for_scratch) {
        return;
    }
    struct scratch_pool *pool = &imap_listener.pools[reactor_index(conn_reactor(ic->conn))];
    if (ic->waiting_prev != NULL) {
        ic->waiting_prev->waiting_next = ic->waiting_next;
    } else {
        pool->waiting_head = ic->waiting_next;
    }
    if (ic->waiting_next != NULL) {
        ic->waiting_next->waiting_prev = ic->waiting_prev;
    } else {
        pool->waiting_tail = ic->waiting_prev;
    }
    ic->is_waiting_for_scratch = false;
}

static void
scratch_release(void *owner, struct imap_session_scratch *scratch)
{
    struct imap_conn *ic = owner;
    struct scratch_pool *pool = &imap_listener.pools[reactor_index(conn_reactor(ic->conn))];
    struct imap_conn *next = pool->waiting_head;
    if (next == NULL) {
        ASSERT(pool->free_count < pool->made);
        pool->free_list[pool->free_count++] = scratch;
        return;
    }
    /* Hand it to the longest waiter and wake it through a poke: this runs
     * inside another session's feed, where feeding a second session would
     * nest. */
    scratch_wait_cancel(next);
    ASSERT(next->granted == NULL);
    next->granted = scratch;
    reactor_conn_poke(conn_reactor(next->conn), conn_slot(next->conn));
}

/* ---- handler --------------------------------------------------------------- */

/* Metrics: every command the session reads, answered by it or run here
 * (toaster_imap_commands_total), on this reactor's counters. */
static void
command_read(void *owner, enum imap_command command)
{
    struct imap_conn *ic = owner;
    ASSERT((unsigned)command < IMAP_CMD_COUNT);
    stats_add(&reactor_stats(conn_reactor(ic->conn))->imap_commands[command], 1);
}

static void
imap_conn_open(struct conn *conn)
{
    struct imap_conn *ic = conn_state(conn);
    memset(ic, 0, sizeof(*ic));
    ic->conn = conn;
    struct reactor_stats *stats = reactor_stats(conn_reactor(conn));
    stats_add(&stats->imap_sessions_total, 1);
    stats_add(&stats->imap_sessions_open, 1);
    /* Loopback counts as secure, as Dovecot has it: the traffic never
     * leaves the machine. */
    bool is_secure = imap_listener.config->loopback_is_secure && conn_peer_is_loopback(conn);
    imap_session_init(&ic->session, &imap_listener.session_config, &imap_listener.callbacks, ic,
                      is_secure);
    if (conn_tls_can_start(conn) || conn_is_tls(conn)) {
        imap_session_set_tls(&ic->session, conn_tls_can_start(conn), conn_is_tls(conn));
    }
}

/* The job's output, once the job is back: while it runs, a worker writes
 * exec.out (a poke may pump this connection meanwhile). */
static bool
exec_output_pending(const struct imap_conn *ic)
{
    return !ic->is_job_out &&
           (ic->exec_sent < ic->exec.out_len || ic->exec_range < ic->exec.range_count);
}

/* Bytes of exec.out to send before the next file range (or the end). */
static size_t
exec_bytes_next(const struct imap_conn *ic)
{
    size_t end = ic->exec_range < ic->exec.range_count ? ic->exec.ranges[ic->exec_range].at
                                                       : ic->exec.out_len;
    ASSERT(end >= ic->exec_sent);
    return end - ic->exec_sent;
}

/* Room for APPEND data: the session is fed no more than the buffer can
 * take, so a chunk is always copied whole (backpressure while a write is
 * out and the buffer is full). */
static size_t
append_room(const struct imap_conn *ic)
{
    const struct imap_append *a = ic->append;
    if (a == NULL || a->is_complete) {
        return SIZE_MAX;
    }
    return sizeof(a->buf) - a->buf_len;
}

static size_t
imap_conn_input(struct conn *conn, const uint8_t *bytes, size_t len)
{
    struct imap_conn *ic = conn_state(conn);
    size_t room = append_room(ic);
    if (len > room) {
        len = room;
    }
    if (len == 0) {
        return 0;
    }
    size_t used = imap_session_feed(&ic->session, (const char *)bytes, len);
    serve_request(ic);
    return used;
}

static bool
imap_conn_wants_input(struct conn *conn)
{
    struct imap_conn *ic = conn_state(conn);
    return !ic->is_job_out && !exec_output_pending(ic) && append_room(ic) > 0 &&
           ic->retry_kind == IMAP_JOB_NONE && imap_session_wants_input(&ic->session);
}

static uint32_t
imap_conn_read_timeout_ms(struct conn *conn)
{
    struct imap_conn *ic = conn_state(conn);
    if (imap_session_state(&ic->session) == IMAP_STATE_NOT_AUTHENTICATED) {
        return imap_listener.config->imap_login_timeout_ms;
    }
    return imap_listener.config->imap_idle_timeout_ms;
}

/* True when the next bytes to send are the job's output. pending_output
 * and output_sent decide the same way, so a send that was in flight when
 * the other buffer grew is accounted to the buffer it came from. */
static bool
is_exec_next(const struct imap_conn *ic)
{
    return exec_output_pending(ic) && (ic->is_exec_first || ic->is_exec_started ||
                                       imap_session_output(&ic->session).len == 0);
}

static struct span
imap_conn_pending_output(struct conn *conn)
{
    struct imap_conn *ic = conn_state(conn);
    if (is_exec_next(ic)) {
        ic->is_exec_started = true;
        return span_make(ic->exec.out + ic->exec_sent, exec_bytes_next(ic));
    }
    return imap_session_output(&ic->session);
}

/* The job's next file range, once the bytes before it are out. */
static bool
imap_conn_pending_file(struct conn *conn, struct conn_file_range *range)
{
    struct imap_conn *ic = conn_state(conn);
    if (!is_exec_next(ic) || exec_bytes_next(ic) > 0 ||
        ic->exec_range >= ic->exec.range_count) {
        return false;
    }
    ic->is_exec_started = true;
    const struct imap_exec_range *r = &ic->exec.ranges[ic->exec_range];
    ASSERT(r->file < ic->exec.file_count && ic->exec_range_sent < r->len);
    range->fd = ic->exec.files[r->file];
    range->offset = r->offset + ic->exec_range_sent;
    range->len = r->len - ic->exec_range_sent;
    return true;
}

static void exec_output_done(struct imap_conn *ic);

static void
imap_conn_file_sent(struct conn *conn, size_t bytes)
{
    struct imap_conn *ic = conn_state(conn);
    ASSERT(ic->is_exec_started && ic->exec_range < ic->exec.range_count);
    const struct imap_exec_range *r = &ic->exec.ranges[ic->exec_range];
    ASSERT(ic->exec_range_sent + bytes <= r->len);
    ic->exec_range_sent += bytes;
    if (ic->exec_range_sent == r->len) {
        ic->exec_range++;
        ic->exec_range_sent = 0;
    }
    if (!exec_output_pending(ic)) {
        exec_output_done(ic);
    }
}

static void
imap_conn_output_sent(struct conn *conn, size_t bytes)
{
    struct imap_conn *ic = conn_state(conn);
    if (!is_exec_next(ic)) {
        ASSERT(bytes <= imap_session_output(&ic->session).len);
        imap_session_output_sent(&ic->session, bytes);
        return;
    }
    ASSERT(bytes <= exec_bytes_next(ic));
    ic->exec_sent += bytes;
    if (exec_output_pending(ic)) {
        return;
    }
    exec_output_done(ic);
}

/* Everything the job's step wrote is sent: run the next step, or free. */
static void
exec_output_done(struct imap_conn *ic)
{
    imap_exec_output_reset(&ic->exec);
    ic->exec_sent = 0;
    ic->exec_range = 0;
    ic->exec_range_sent = 0;
    ic->is_exec_started = false;
    if (!ic->exec.is_more) {
        /* An idle session keeps no output buffer. */
        free(ic->exec.out);
        ic->exec.out = NULL;
        ic->exec.out_cap = 0;
    }
    if (ic->exec.is_more) {
        job_submit(ic, IMAP_JOB_COMMAND); /* the next step of a long command */
        return;
    }
    if (ic->is_push_wanted && imap_session_is_idle(&ic->session) && !ic->is_job_out &&
        ic->retry_kind == IMAP_JOB_NONE) {
        ic->is_push_wanted = false;
        job_submit(ic, IMAP_JOB_PUSH);
    }
}

static bool
imap_conn_is_closing(struct conn *conn)
{
    struct imap_conn *ic = conn_state(conn);
    return imap_session_is_closing(&ic->session) && !ic->is_job_out &&
           !ic->is_auth_fail_delayed && ic->retry_kind == IMAP_JOB_NONE;
}

static void
imap_conn_timeout(struct conn *conn)
{
    struct imap_conn *ic = conn_state(conn);
    imap_session_timeout(&ic->session);
}

static void
imap_conn_shutdown(struct conn *conn, bool is_forced)
{
    struct imap_conn *ic = conn_state(conn);
    (void)is_forced;
    imap_session_shutdown(&ic->session);
}

static void
imap_conn_file_done(struct conn *conn, int result)
{
    struct imap_conn *ic = conn_state(conn);
    struct imap_append *a = ic->append;
    ASSERT(a != NULL && a->op != APPEND_OP_NONE);
    enum append_op op = a->op;
    a->op = APPEND_OP_NONE;
    if (op == APPEND_OP_OPENING) {
        if (result < 0) {
            log_warning("imap: spool file for APPEND: %s", strerror(-result));
            a->is_failed = true;
            a->buf_len = 0;
        } else {
            a->fd = result;
        }
    } else if (result < 0) {
        log_warning("imap: writing an APPEND spool file: %s", strerror(-result));
        a->is_failed = true;
        a->buf_len = 0;
    } else {
        /* A short write leaves the rest at the front of the buffer. */
        size_t done = (size_t)result;
        ASSERT(done <= a->write_len && a->write_len <= a->buf_len);
        memmove(a->buf, a->buf + done, a->buf_len - done);
        a->buf_len -= done;
        a->written += done;
    }
    append_flush(ic);
    conn_kick(conn);
}

static void
imap_conn_close(struct conn *conn)
{
    struct imap_conn *ic = conn_state(conn);
    ASSERT(!ic->is_job_out);
    scratch_wait_cancel(ic);
    if (ic->granted != NULL) {
        /* Handed over but never used: on to the next waiter. */
        struct imap_session_scratch *s = ic->granted;
        ic->granted = NULL;
        scratch_release(ic, s);
    }
    append_discard(ic);
    mailbox_view_detach(&ic->view);
    imap_exec_finish(&ic->exec);
    imap_session_finish(&ic->session);
    free(ic->root);
    ic->root = NULL;
    struct reactor_stats *stats = reactor_stats(conn_reactor(conn));
    ASSERT(stats_load(&stats->imap_sessions_open) > 0);
    stats_set(&stats->imap_sessions_open, stats_load(&stats->imap_sessions_open) - 1);
}

/* A failed login's delay is over, or a job may be queued again. */
static void
imap_conn_timer(struct conn *conn)
{
    struct imap_conn *ic = conn_state(conn);
    if (ic->is_auth_fail_delayed) {
        ic->is_auth_fail_delayed = false;
        imap_session_auth_done(&ic->session, false, NULL);
        return;
    }
    enum imap_job_kind kind = ic->retry_kind;
    ic->retry_kind = IMAP_JOB_NONE;
    if (kind == IMAP_JOB_AUTH) {
        auth_submit(ic);
    } else if (kind != IMAP_JOB_NONE) {
        job_submit(ic, kind);
    }
    if (ic->is_push_wanted && kind == IMAP_JOB_NONE && !ic->is_job_out &&
        !exec_output_pending(ic) && imap_session_is_idle(&ic->session)) {
        ic->is_push_wanted = false;
        job_submit(ic, IMAP_JOB_PUSH);
    }
}

/* The worker queue refused a job: a timer brings it back. The request
 * stays with the session (AUTH is taken again: see serve_request). */
static void
retry_later(struct imap_conn *ic, enum imap_job_kind kind)
{
    ASSERT(ic->retry_kind == IMAP_JOB_NONE);
    ic->retry_kind = kind;
    conn_timer_start(ic->conn, IMAP_JOB_RETRY_MS);
}

/* The selected mailbox changed: an IDLE session reports at once. */
static void
imap_conn_poke(struct conn *conn)
{
    struct imap_conn *ic = conn_state(conn);
    if (!imap_session_is_idle(&ic->session) || !mailbox_view_is_attached(&ic->view)) {
        return; /* others hear of it with their next command */
    }
    if (mailbox_view_is_dirty(&ic->view) && !mailbox_view_claim_refresh(&ic->view)) {
        return; /* another session refreshes; its refresh notifies us again */
    }
    if (ic->is_job_out || exec_output_pending(ic) || ic->retry_kind != IMAP_JOB_NONE) {
        ic->is_push_wanted = true;
        return;
    }
    job_submit(ic, IMAP_JOB_PUSH);
}

const struct conn_handler imap_listener_handler = {
    .name = "imap",
    .state_bytes = sizeof(struct imap_conn),
    .refusal_text = "* BYE Too many connections, try again later.\r\n",
    .open = imap_conn_open,
    .input = imap_conn_input,
    .wants_input = imap_conn_wants_input,
    .read_timeout_ms = imap_conn_read_timeout_ms,
    .pending_output = imap_conn_pending_output,
    .output_sent = imap_conn_output_sent,
    .pending_file = imap_conn_pending_file,
    .file_sent = imap_conn_file_sent,
    .is_closing = imap_conn_is_closing,
    .timeout = imap_conn_timeout,
    .shutdown = imap_conn_shutdown,
    .file_done = imap_conn_file_done,
    .close = imap_conn_close,
    .poke = imap_conn_poke,
    .timer = imap_conn_timer,
};

/* ---- requests ----------------------------------------------------------------- */

static void
serve_request(struct imap_conn *ic)
{
    if (ic->is_job_out) {
        return;
    }
    switch (imap_session_take_request(&ic->session)) {
    case IMAP_REQUEST_NONE:
        return;
    case IMAP_REQUEST_AUTH:
        auth_submit(ic);
        return;
    case IMAP_REQUEST_STARTTLS: {
        /* Offered only where the listener has TLS, so it cannot fail. */
        int rc = conn_tls_start(ic->conn);
        ASSERT(rc == 0);
        imap_session_tls_started(&ic->session);
        return;
    }
    case IMAP_REQUEST_APPEND_DATA:
        append_chunk(ic);
        return;
    case IMAP_REQUEST_COMMAND:
        if (ic->append != NULL) {
            /* An APPEND whose message was streamed: the file must be
             * complete before the worker links it. */
            ic->append->is_command_waiting = true;
            append_flush(ic);
            return;
        }
        job_submit(ic, IMAP_JOB_COMMAND);
        return;
    case IMAP_REQUEST_IDLE_DONE:
        job_submit(ic, IMAP_JOB_COMMAND);
        return;
    }
}

/* Hand the pending login to a worker (the password check). */
static void
auth_submit(struct imap_conn *ic)
{
    struct imap_auth *auth = calloc(1, sizeof(*auth));
    if (auth == NULL) {
        imap_session_auth_done(&ic->session, false, NULL);
        return;
    }
    auth->ic = ic;
    (void)snprintf(auth->password, sizeof(auth->password), "%s",
                   imap_session_auth_password(&ic->session));
    auth->has_user = recipients_login_lookup(recipients_current(),
                                             imap_session_auth_user(&ic->session), auth->user,
                                             sizeof(auth->user), auth->hash, sizeof(auth->hash));
    auth->job.run = auth_job_run;
    auth->job.done = auth_job_done;
    if (conn_job_submit(ic->conn, &auth->job) != 0) {
        /* The worker queue is full: try again shortly (the session
         * waits; a login is never refused for our own load). */
        explicit_bzero(auth, sizeof(*auth));
        free(auth);
        retry_later(ic, IMAP_JOB_AUTH);
        return;
    }
    ic->is_job_out = true;
    ic->job_kind = IMAP_JOB_AUTH;
    return;
}

/* ---- APPEND streaming --------------------------------------------------------- */

static void
append_chunk(struct imap_conn *ic)
{
    const struct imap_reader_chunk *c = imap_session_append_chunk(&ic->session);
    struct imap_append *a = ic->append;
    if (a == NULL) {
        /* Rare, large and bounded by the scratch pool: an APPEND buffer is
         * allocated per streamed message, not per connection. */
        a = calloc(1, sizeof(*a));
        if (a == NULL) {
            log_warning("imap: out of memory for an APPEND buffer");
            imap_session_append_data_done(&ic->session);
            return; /* the command then finds no file and answers NO */
        }
        a->fd = -1;
        a->total = c->total;
        ic->append = a;
    }
    if (c->literal_index != 0) {
        a->is_failed = true; /* MULTIAPPEND is not offered */
    }
    if (!a->is_failed) {
        ASSERT(c->data.len <= sizeof(a->buf) - a->buf_len); /* input() capped it */
        memcpy(a->buf + a->buf_len, c->data.ptr, c->data.len);
        a->buf_len += c->data.len;
    }
    if (c->is_last) {
        a->is_complete = true;
    }
    imap_session_append_data_done(&ic->session);
    if (a->buf_len == sizeof(a->buf) || a->is_complete) {
        append_flush(ic);
    }
}

/* Start the next file operation, or hand the finished command on. */
static void
append_flush(struct imap_conn *ic)
{
    struct imap_append *a = ic->append;
    if (a->op != APPEND_OP_NONE) {
        return;
    }
    if (!a->is_failed && a->fd < 0) {
        a->op = APPEND_OP_OPENING;
        if (imap_listener.is_spool_unnamed) {
            conn_file_openat(ic->conn, imap_listener.spool_dir_fd, ".",
                             O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        } else {
            static _Thread_local unsigned long counter;
            (void)snprintf(a->name, sizeof(a->name), "imap-append-%u-%lu",
                           reactor_index(conn_reactor(ic->conn)), ++counter);
            conn_file_openat(ic->conn, imap_listener.spool_dir_fd, a->name,
                             O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
        }
        return;
    }
    if (!a->is_failed && a->buf_len > 0 &&
        (a->buf_len == sizeof(a->buf) || a->is_complete || a->is_command_waiting)) {
        a->op = APPEND_OP_WRITING;
        a->write_len = a->buf_len;
        conn_file_write(ic->conn, a->fd, a->buf, a->buf_len, a->written);
        return;
    }
    if (a->is_command_waiting && (a->buf_len == 0 || a->is_failed)) {
        a->is_command_waiting = false;
        job_submit(ic, IMAP_JOB_COMMAND);
    }
}

/* The APPEND is over (or the connection is): the spool file goes. */
static void
append_discard(struct imap_conn *ic)
{
    struct imap_append *a = ic->append;
    if (a == NULL) {
        return;
    }
    ASSERT(a->op == APPEND_OP_NONE);
    if (a->fd >= 0 || a->name[0] != '\0') {
        reactor_file_discard(conn_reactor(ic->conn), a->fd, imap_listener.spool_dir_fd,
                             a->name[0] != '\0' ? a->name : NULL);
    }
    free(a);
    ic->append = NULL;
}

/* Set up the exec context and hand the job to a worker. */
static void
job_submit(struct imap_conn *ic, enum imap_job_kind kind)
{
    ASSERT(!ic->is_job_out);
    ASSERT(ic->root != NULL);
    struct imap_exec *x = &ic->exec;
    if (!x->is_more) {
        bool is_idle_done = false;
        const struct imap_parsed *command = NULL;
        if (kind == IMAP_JOB_COMMAND) {
            /* A fresh command (not the next step of one). */
            is_idle_done = imap_session_command_is_idle_done(&ic->session);
            command = is_idle_done ? NULL : imap_session_command(&ic->session);
        }
        char *out = x->out;
        size_t out_cap = x->out_cap;
        struct imap_exec_range *ranges = x->ranges;
        size_t range_cap = x->range_cap;
        /* The last step's files were closed when its output was sent. */
        ASSERT(x->file_count == 0 && x->range_count == 0);
        memset(x, 0, sizeof(*x));
        x->out = out; /* the buffers are reused across commands */
        x->out_cap = out_cap;
        x->ranges = ranges;
        x->range_cap = range_cap;
        x->command = command;
        x->is_idle_done = is_idle_done;
        x->tag = imap_session_tag(&ic->session);
        x->is_push = kind == IMAP_JOB_PUSH;
        if (command != NULL && ic->command_start_ns == 0) {
            ic->command_start_ns = stats_clock_ns(); /* kept when the queue was full */
        }
    }
    x->root = ic->root;
    x->view = &ic->view;
    x->session = &ic->session;
    x->enabled = imap_session_enabled(&ic->session);
    x->is_readonly = imap_session_is_readonly(&ic->session);
    /* Large bodies may go as file ranges: spliced to the socket on
     * plaintext, read and encrypted a record at a time under TLS (the
     * reactor decides which). */
    x->is_splice_ok = imap_listener.config->imap_fetch_splice;
    x->view_notify = view_notify;
    x->view_owner = ic;
    x->append_fd = -1;
    if (ic->append != NULL) {
        x->append_fd = ic->append->fd;
        x->append_size = ic->append->written;
        x->is_append_failed = ic->append->is_failed || ic->append->written != ic->append->total;
    }
    ic->job.run = command_job_run;
    ic->job.done = command_job_done;
    if (conn_job_submit(ic->conn, &ic->job) != 0) {
        /* The worker queue is full: try again shortly. */
        retry_later(ic, kind);
        return;
    }
    ic->is_job_out = true;
    ic->job_kind = kind;
}

static void
command_job_run(struct job *job)
{
    struct imap_conn *ic = (struct imap_conn *)((char *)job - offsetof(struct imap_conn, job));
    struct imap_exec *x = &ic->exec;
    if (x->is_push) {
        imap_exec_push(x);
    } else {
        imap_exec_run(x);
    }
    reactor_job_complete(job);
}

static void
command_job_done(struct job *job, struct conn *conn)
{
    struct imap_conn *ic = (struct imap_conn *)((char *)job - offsetof(struct imap_conn, job));
    ic->is_job_out = false;
    enum imap_job_kind kind = ic->job_kind;
    ic->job_kind = IMAP_JOB_NONE;
    if (conn == NULL) {
        return; /* closing: imap_conn_close frees what the command holds */
    }
    struct imap_exec *x = &ic->exec;
    if (x->enable_bits != 0) {
        imap_session_enable(&ic->session, x->enable_bits);
        x->enable_bits = 0;
    }
    if (kind == IMAP_JOB_COMMAND && !x->is_more) {
        /* Counted by name when the session read it (command_read); here
         * its time. */
        if (x->command != NULL && ic->command_start_ns != 0) {
            histogram_record(&reactor_stats(conn_reactor(conn))->imap_command_us,
                             (stats_clock_ns() - ic->command_start_ns) / 1000);
        }
        ic->command_start_ns = 0;
        append_discard(ic);
        if (x->state != NULL) {
            x->state_free(x->state);
            x->state = NULL;
        }
        imap_session_command_done(&ic->session, x->outcome);
    }
    ic->exec_sent = 0;
    ic->exec_range = 0;
    ic->exec_range_sent = 0;
    ic->is_exec_started = false;
    ic->is_exec_first = imap_session_output(&ic->session).len == 0;
    if (x->out_len == 0 && x->range_count == 0 && !x->is_more) {
        free(x->out);
        x->out = NULL;
        x->out_cap = 0;
    }
    if (x->out_len == 0 && x->range_count == 0 && ic->is_push_wanted &&
        imap_session_is_idle(&ic->session) &&
        ic->retry_kind == IMAP_JOB_NONE) {
        ic->is_push_wanted = false;
        job_submit(ic, IMAP_JOB_PUSH);
    }
}

static void
auth_job_run(struct job *job)
{
    struct imap_auth *auth = (struct imap_auth *)job;
    auth_check(auth);
    reactor_job_complete(job);
}

/* Verify the password, then make sure the user's Maildir and the special
 * folders exist (first login). Worker thread. */
static void
auth_check(struct imap_auth *auth)
{
    int rc = auth->has_user ? password_verify(auth->hash, auth->password) : -EACCES;
    explicit_bzero(auth->password, sizeof(auth->password));
    explicit_bzero(auth->hash, sizeof(auth->hash));
    if (rc == -ENOTSUP || rc == -EINVAL) {
        log_warning("imap-login: users_file entry of <%s> has a hash we cannot check (%s)",
                    auth->user, strerror(-rc));
    }
    if (rc != 0) {
        return;
    }
    rc = recipients_maildir_path(imap_listener.config->data_dir, auth->user, auth->root,
                                 sizeof(auth->root));
    if (rc == 0) {
        rc = maildir_folders_make_root(auth->root);
    }
    if (rc == 0) {
        rc = maildir_folders_ensure_defaults(auth->root);
        if (rc == -EAGAIN) {
            rc = 0; /* another session makes them right now */
        }
    }
    if (rc != 0) {
        log_error("imap-login: <%s>: cannot prepare %s: %s", auth->user, auth->root,
                  strerror(-rc));
        return;
    }
    auth->is_ok = true;
}

static void
auth_job_done(struct job *job, struct conn *conn)
{
    struct imap_auth *auth = (struct imap_auth *)job;
    struct imap_conn *ic = auth->ic;
    ic->is_job_out = false;
    ic->job_kind = IMAP_JOB_NONE;
    if (conn != NULL) {
        if (auth->is_ok) {
            ic->root = strdup(auth->root);
            if (ic->root == NULL) {
                auth->is_ok = false;
            }
        }
        if (auth->is_ok) {
            log_info("imap-login: Login: user=<%s>, rip=%s", auth->user, conn_peer_text(conn));
            stats_add(&reactor_stats(conn_reactor(conn))->imap_logins_ok, 1);
            login_delay_succeeded(conn_peer_text(conn), auth->user);
            imap_session_auth_done(&ic->session, true, auth->user);
        } else {
            /* One stable line for fail2ban, and the NO only after a delay
             * that grows with the address's and the user's failures. */
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            uint32_t delay_ms =
                login_delay_failed(conn_peer_text(conn), auth->user, (uint64_t)now.tv_sec);
            log_info("imap-login: auth failed: user=<%s>, rip=%s, delay=%ums", auth->user,
                     conn_peer_text(conn), delay_ms);
            stats_add(&reactor_stats(conn_reactor(conn))->imap_logins_failed, 1);
            ic->is_auth_fail_delayed = true;
            conn_timer_start(conn, delay_ms);
        }
    }
    explicit_bzero(auth, sizeof(*auth));
    free(auth);
}

/* Any thread, under the index lock: just poke the connection's reactor. */
static void
view_notify(struct mailbox_view *view)
{
    struct imap_conn *ic = view->owner;
    reactor_conn_poke(conn_reactor(ic->conn), conn_slot(ic->conn));
}

/* ---- set-up ------------------------------------------------------------------ */

int
imap_listener_init(const struct config *config)
{
    ASSERT(config != NULL);
    memset(&imap_listener, 0, sizeof(imap_listener));
    imap_listener.config = config;
    (void)snprintf(imap_listener.hostname, sizeof(imap_listener.hostname), "%s",
                   config->myhostname[0] != '\0' ? config->myhostname : "toaster");
    struct imap_session_config *sc = &imap_listener.session_config;
    sc->hostname = imap_listener.hostname;
    sc->version = TOASTER_VERSION;
    imap_reader_config_default(&sc->reader, config->message_size_limit);
    sc->error_limit = IMAP_SESSION_ERROR_LIMIT_DEFAULT;
    sc->is_plaintext_auth_allowed = config->allow_plaintext_auth;
    char spool_dir[PATH_MAX];
    int rc = spool_dir_path(config->data_dir, spool_dir, sizeof(spool_dir));
    if (rc != 0) {
        return rc;
    }
    imap_listener.spool_dir_fd = open(spool_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (imap_listener.spool_dir_fd < 0) {
        rc = -errno;
        log_error("imap: spool directory %s: %s", spool_dir, strerror(-rc));
        return rc;
    }
    imap_listener.is_spool_unnamed =
        config->spool_unnamed && spool_probe_unnamed(config->data_dir);
    log_debug("imap: %zu bytes of state per connection, %u command scratches of %zu bytes per "
              "reactor",
              sizeof(struct imap_conn), config->imap_scratch_buffers,
              (size_t)(IMAP_LINE_BYTES_MAX_DEFAULT + IMAP_LITERAL_BYTES_MAX_DEFAULT) +
                  IMAP_PARSER_NODES_DEFAULT * sizeof(struct imap_node));
    imap_listener.callbacks.scratch_acquire = scratch_acquire;
    imap_listener.callbacks.scratch_release = scratch_release;
    imap_listener.callbacks.command_read = command_read;
    imap_listener.pool_count = config->reactor_threads;
    imap_listener.pools = calloc(config->reactor_threads, sizeof(*imap_listener.pools));
    if (imap_listener.pools == NULL) {
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < config->reactor_threads; i++) {
        struct scratch_pool *pool = &imap_listener.pools[i];
        pool->capacity = config->imap_scratch_buffers;
        pool->all = calloc(pool->capacity, sizeof(*pool->all));
        pool->free_list = calloc(pool->capacity, sizeof(*pool->free_list));
        if (pool->all == NULL || pool->free_list == NULL) {
            imap_listener_destroy();
            return -ENOMEM;
        }
    }
    return 0;
}

void
imap_listener_destroy(void)
{
    for (uint32_t i = 0; i < imap_listener.pool_count && imap_listener.pools != NULL; i++) {
        struct scratch_pool *pool = &imap_listener.pools[i];
        for (uint32_t k = 0; k < pool->made; k++) {
            free(pool->all[k].buf);
            free(pool->all[k].nodes);
        }
        free(pool->all);
        free(pool->free_list);
    }
    free(imap_listener.pools);
    imap_listener.pools = NULL;
    imap_listener.pool_count = 0;
    if (imap_listener.spool_dir_fd > 0) {
        (void)close(imap_listener.spool_dir_fd);
    }
    imap_listener.spool_dir_fd = -1;
}

