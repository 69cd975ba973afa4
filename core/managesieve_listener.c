/*
 * core/managesieve_listener.c - serves ManageSieve connections on a
 * reactor (see managesieve_listener.h).
 *
 * Owns each connection's session, the buffer lent for a script being
 * uploaded (malloc'd for that one command, at most sieve_max_script_size)
 * and the one job a connection may have out: a password check, or a
 * script command. A script command's job runs on a worker against the
 * user's home (store/sieve_scripts), compiles what it stores, and writes
 * the whole reply (a GETSCRIPT literal included) into its own buffer,
 * which is sent after the session's own replies.
 *
 * Reactor thread, except the job's run() (a worker), which reads the
 * script bytes the session holds while its request is pending and touches
 * nothing else of the connection.
 */
#define _GNU_SOURCE
#include "core/managesieve_listener.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/assertions.h"
#include "core/job.h"
#include "core/log.h"
#include "core/login_delay.h"
#include "core/version.h"
#include "filters/sieve_parse.h"
#include "filters/sieve_validate.h"
#include "proto/managesieve/managesieve_session.h"
#include "store/maildir_folders.h"
#include "store/password.h"
#include "store/recipients.h"
#include "store/sieve_scripts.h"

/* The compiler's error lines a NO carries (RFC 5804 allows any length;
 * the first errors are what a user needs). */
#define MANAGESIEVE_ERRORS_TEXT_BYTES 4096u
/* How soon a job the full worker queue refused is offered again. */
#define MANAGESIEVE_JOB_RETRY_MS 5u

enum ms_job_kind {
    MS_JOB_NONE,
    MS_JOB_AUTH,
    MS_JOB_SCRIPT,
};

struct ms_job {
    struct job job; /* first: the job pointer is this pointer */
    struct ms_conn *mc;
    enum ms_job_kind kind;
    /* auth */
    char user[MANAGESIEVE_SESSION_USER_BYTES];
    char password[MANAGESIEVE_SESSION_PASS_BYTES];
    char hash[PASSWORD_HASH_BYTES_MAX + 1];
    bool has_user;
    bool is_ok;
    char home[PATH_MAX];
    /* script: the request as the session holds it, and the reply */
    const struct managesieve_script_request *script;
    const char *script_home;
    char *out;
    size_t out_len;
    size_t out_cap;
    bool is_failure;
};

struct ms_conn {
    struct managesieve_session session;
    struct conn *conn;
    struct ms_job *job;         /* out on a worker */
    struct ms_job *reply;       /* a script job back, its reply being sent */
    size_t reply_sent;
    bool is_reply_started;
    enum ms_job_kind retry_kind; /* refused by a full worker queue */
    bool is_tls_greeting_due;   /* STARTTLS: capabilities once TLS is on */
    bool is_auth_fail_delayed;
    char *home;                 /* after login */
};

static struct {
    const struct config *config;
    struct managesieve_session_config session_config;
    struct sieve_scripts_limits limits;
    char implementation[64];
} ms_listener;

static void serve_request(struct ms_conn *mc);
static void job_submit(struct ms_conn *mc, enum ms_job_kind kind);

/* ---- the script buffer lent to the reader ------------------------------ */

static char *
big_acquire(void *owner, size_t bytes)
{
    (void)owner;
    return malloc(bytes);
}

static void
big_release(void *owner, char *buffer)
{
    (void)owner;
    free(buffer);
}

/* ---- the handler -------------------------------------------------------- */

static void
ms_conn_open(struct conn *conn)
{
    struct ms_conn *mc = conn_state(conn);
    memset(mc, 0, sizeof(*mc));
    mc->conn = conn;
    bool is_secure = ms_listener.config->loopback_is_secure && conn_peer_is_loopback(conn);
    managesieve_session_init(&mc->session, &ms_listener.session_config, is_secure,
                             conn_tls_can_start(conn), conn_is_tls(conn));
}

static bool
reply_pending(const struct ms_conn *mc)
{
    return mc->reply != NULL && mc->reply_sent < mc->reply->out_len;
}

static size_t
ms_conn_input(struct conn *conn, const uint8_t *bytes, size_t len)
{
    struct ms_conn *mc = conn_state(conn);
    size_t used = managesieve_session_feed(&mc->session, (const char *)bytes, len);
    serve_request(mc);
    return used;
}

static bool
ms_conn_wants_input(struct conn *conn)
{
    struct ms_conn *mc = conn_state(conn);
    return mc->job == NULL && !reply_pending(mc) && mc->retry_kind == MS_JOB_NONE &&
           !mc->is_auth_fail_delayed && managesieve_session_wants_input(&mc->session);
}

static uint32_t
ms_conn_read_timeout_ms(struct conn *conn)
{
    (void)conn;
    return ms_listener.config->managesieve_timeout_ms;
}

/* The job's reply goes once the session's earlier replies are out, and
 * once started it goes whole, so nothing lands inside its literal. */
static bool
is_reply_next(const struct ms_conn *mc)
{
    return reply_pending(mc) &&
           (mc->is_reply_started || managesieve_session_output(&mc->session).len == 0);
}

static struct span
ms_conn_pending_output(struct conn *conn)
{
    struct ms_conn *mc = conn_state(conn);
    if (mc->is_tls_greeting_due && conn_tls_is_active(conn)) {
        /* RFC 5804 2.2: the capabilities again, unasked, but only under
         * TLS: written earlier they would leave in plaintext with the OK. */
        mc->is_tls_greeting_due = false;
        managesieve_session_tls_started(&mc->session);
    }
    if (is_reply_next(mc)) {
        mc->is_reply_started = true;
        return span_make(mc->reply->out + mc->reply_sent, mc->reply->out_len - mc->reply_sent);
    }
    return managesieve_session_output(&mc->session);
}

static void
reply_free(struct ms_conn *mc)
{
    if (mc->reply != NULL) {
        free(mc->reply->out);
        free(mc->reply);
        mc->reply = NULL;
    }
    mc->reply_sent = 0;
    mc->is_reply_started = false;
}

static void
ms_conn_output_sent(struct conn *conn, size_t bytes)
{
    struct ms_conn *mc = conn_state(conn);
    if (!is_reply_next(mc)) {
        managesieve_session_output_sent(&mc->session, bytes);
        return;
    }
    ASSERT(bytes <= mc->reply->out_len - mc->reply_sent);
    mc->reply_sent += bytes;
    if (!reply_pending(mc)) {
        reply_free(mc);
    }
}

static bool
ms_conn_is_closing(struct conn *conn)
{
    struct ms_conn *mc = conn_state(conn);
    return managesieve_session_is_closing(&mc->session) && mc->job == NULL &&
           !reply_pending(mc) && !mc->is_auth_fail_delayed && mc->retry_kind == MS_JOB_NONE;
}

static void
ms_conn_timeout(struct conn *conn)
{
    struct ms_conn *mc = conn_state(conn);
    managesieve_session_timeout(&mc->session);
}

static void
ms_conn_shutdown(struct conn *conn, bool is_forced)
{
    (void)is_forced;
    struct ms_conn *mc = conn_state(conn);
    managesieve_session_shutdown(&mc->session);
}

static void
ms_conn_close(struct conn *conn)
{
    struct ms_conn *mc = conn_state(conn);
    ASSERT(mc->job == NULL);
    reply_free(mc);
    managesieve_session_finish(&mc->session);
    free(mc->home);
    mc->home = NULL;
}

/* A failed login's delay is over, or a refused job may go again. */
static void
ms_conn_timer(struct conn *conn)
{
    struct ms_conn *mc = conn_state(conn);
    if (mc->is_auth_fail_delayed) {
        mc->is_auth_fail_delayed = false;
        managesieve_session_auth_done(&mc->session, false, NULL);
        return;
    }
    enum ms_job_kind kind = mc->retry_kind;
    mc->retry_kind = MS_JOB_NONE;
    if (kind != MS_JOB_NONE) {
        job_submit(mc, kind);
    }
}

const struct conn_handler managesieve_listener_handler = {
    .name = "managesieve",
    .state_bytes = sizeof(struct ms_conn),
    .refusal_text = "BYE \"Too many connections, try again later.\"\r\n",
    .open = ms_conn_open,
    .input = ms_conn_input,
    .wants_input = ms_conn_wants_input,
    .read_timeout_ms = ms_conn_read_timeout_ms,
    .pending_output = ms_conn_pending_output,
    .output_sent = ms_conn_output_sent,
    .is_closing = ms_conn_is_closing,
    .timeout = ms_conn_timeout,
    .shutdown = ms_conn_shutdown,
    .close = ms_conn_close,
    .timer = ms_conn_timer,
};

/* ---- requests ----------------------------------------------------------- */

static void
serve_request(struct ms_conn *mc)
{
    if (mc->job != NULL) {
        return;
    }
    switch (managesieve_session_take_request(&mc->session)) {
    case MANAGESIEVE_REQUEST_NONE:
        return;
    case MANAGESIEVE_REQUEST_AUTH:
        job_submit(mc, MS_JOB_AUTH);
        return;
    case MANAGESIEVE_REQUEST_STARTTLS: {
        /* Offered only where the listener has TLS, so it cannot fail. */
        int rc = conn_tls_start(mc->conn);
        ASSERT(rc == 0);
        mc->is_tls_greeting_due = true; /* see ms_conn_pending_output */
        return;
    }
    case MANAGESIEVE_REQUEST_SCRIPT:
        job_submit(mc, MS_JOB_SCRIPT);
        return;
    }
}

static void job_run(struct job *job);
static void job_done(struct job *job, struct conn *conn);

static void
job_submit(struct ms_conn *mc, enum ms_job_kind kind)
{
    ASSERT(mc->job == NULL);
    struct ms_job *j = calloc(1, sizeof(*j));
    if (j == NULL && kind == MS_JOB_AUTH) {
        managesieve_session_auth_done(&mc->session, false, NULL);
        conn_kick(mc->conn);
        return;
    }
    if (j == NULL) {
        mc->retry_kind = kind; /* memory is short: a moment later */
        conn_timer_start(mc->conn, MANAGESIEVE_JOB_RETRY_MS);
        return;
    }
    j->mc = mc;
    j->kind = kind;
    j->job.run = job_run;
    j->job.done = job_done;
    if (kind == MS_JOB_AUTH) {
        (void)snprintf(j->password, sizeof(j->password), "%s",
                       managesieve_session_auth_password(&mc->session));
        j->has_user = recipients_login_lookup(recipients_current(),
                                              managesieve_session_auth_user(&mc->session),
                                              j->user, sizeof(j->user), j->hash, sizeof(j->hash));
    } else {
        j->script = managesieve_session_script(&mc->session);
        j->script_home = mc->home;
    }
    if (conn_job_submit(mc->conn, &j->job) != 0) {
        explicit_bzero(j, sizeof(*j));
        free(j);
        mc->retry_kind = kind;
        conn_timer_start(mc->conn, MANAGESIEVE_JOB_RETRY_MS);
        return;
    }
    mc->job = j;
}

/* ---- on the worker ------------------------------------------------------ */

/* The user's home: the Maildir's parent, made on first login. */
static void
auth_check(struct ms_job *j)
{
    int rc = j->has_user ? password_verify(j->hash, j->password) : -EACCES;
    explicit_bzero(j->password, sizeof(j->password));
    explicit_bzero(j->hash, sizeof(j->hash));
    if (rc == -ENOTSUP) {
        log_warning("managesieve-login: users_file entry of <%s> has a hash we cannot check",
                    j->user);
    }
    if (rc != 0) {
        return;
    }
    rc = recipients_maildir_path(ms_listener.config->data_dir, j->user, j->home,
                                 sizeof(j->home));
    if (rc == 0) {
        rc = maildir_folders_make_root(j->home);
    }
    char *slash = strrchr(j->home, '/');
    if (rc == 0 && slash == NULL) {
        rc = -EINVAL;
    }
    if (rc != 0) {
        log_error("managesieve-login: <%s>: cannot prepare the home directory: %s", j->user,
                  strerror(-rc));
        return;
    }
    *slash = '\0'; /* ".../<domain>/<local>/Maildir" -> ".../<domain>/<local>" */
    j->is_ok = true;
}

static bool
out_reserve(struct ms_job *j, size_t more)
{
    if (j->out_len + more <= j->out_cap) {
        return true;
    }
    size_t cap = j->out_cap == 0 ? 1024 : j->out_cap;
    while (cap < j->out_len + more) {
        cap *= 2;
    }
    char *out = realloc(j->out, cap);
    if (out == NULL) {
        return false;
    }
    j->out = out;
    j->out_cap = cap;
    return true;
}

static void
out_text(struct ms_job *j, const char *text)
{
    size_t len = strlen(text);
    if (out_reserve(j, len)) {
        memcpy(j->out + j->out_len, text, len);
        j->out_len += len;
    }
}

static void
out_string(struct ms_job *j, struct span text)
{
    if (out_reserve(j, text.len * 2 + 32)) {
        bool ok = managesieve_string_append(j->out, j->out_cap, &j->out_len, text);
        ASSERT(ok);
    }
}

/* OK/NO [(code)] ["text"] CRLF. */
static void
out_reply(struct ms_job *j, bool is_ok, const char *code, const char *text)
{
    out_text(j, is_ok ? "OK" : "NO");
    if (code != NULL) {
        out_text(j, " (");
        out_text(j, code);
        out_text(j, ")");
    }
    if (text != NULL) {
        out_text(j, " ");
        out_string(j, span_make(text, strlen(text)));
    }
    out_text(j, "\r\n");
    j->is_failure = !is_ok;
}

/* The store's errors as RFC 5804 answers. */
static void
out_store_error(struct ms_job *j, int rc)
{
    switch (rc) {
    case -ENOENT:
        out_reply(j, false, "NONEXISTENT", "There is no script by that name.");
        break;
    case -EEXIST:
        out_reply(j, false, "ALREADYEXISTS", "A script with that name already exists.");
        break;
    case -EBUSY:
        out_reply(j, false, "ACTIVE", "You may not delete an active script.");
        break;
    case -EFBIG:
        out_reply(j, false, "QUOTA/MAXSIZE", "Script is too large.");
        break;
    case -EMLINK:
        out_reply(j, false, "QUOTA/MAXSCRIPTS", "Too many scripts.");
        break;
    case -EDQUOT:
        out_reply(j, false, "QUOTA", "Script storage quota exceeded.");
        break;
    default:
        log_error("managesieve: script store: %s", strerror(-rc));
        out_reply(j, false, "TRYLATER", "Internal error, try again later.");
        break;
    }
}

/* Compile a script as Pigeonhole does before it stores or activates one:
 * true when it is valid, else the NO with sievec's error lines is written. */
static bool
script_valid(struct ms_job *j, struct span script, const char *success_text)
{
    struct sieve_limits limits;
    sieve_limits_default(&limits);
    limits.script_bytes_max = ms_listener.limits.max_script_size;
    struct sieve_errors *errors = malloc(sizeof(*errors));
    if (errors == NULL) {
        out_reply(j, false, "TRYLATER", "Out of memory, try again later.");
        return false;
    }
    struct sieve_script *compiled = NULL;
    int rc = sieve_compile(script.ptr, script.len, &limits, &compiled, errors);
    sieve_script_free(&compiled);
    if (rc == -ENOMEM) {
        out_reply(j, false, "TRYLATER", "Out of memory, try again later.");
    } else if (rc == -EFBIG) {
        out_reply(j, false, "QUOTA/MAXSIZE", "Script is too large.");
    } else if (rc != 0) {
        char text[MANAGESIEVE_ERRORS_TEXT_BYTES];
        (void)sieve_errors_format(errors, "\r\n", text, sizeof(text));
        size_t len = strlen(text);
        while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r')) {
            text[--len] = '\0'; /* the last line's end is the reply's */
        }
        out_reply(j, false, NULL, text);
    } else if (success_text != NULL) {
        out_reply(j, true, NULL, success_text);
    }
    free(errors);
    return rc == 0;
}

/* A name from the session, NUL-terminated (valid names hold no NUL). */
static void
name_copy(struct span name, char *out, size_t out_bytes)
{
    ASSERT(name.len < out_bytes);
    if (name.len > 0) { /* an absent name is a NULL span */
        memcpy(out, name.ptr, name.len);
    }
    out[name.len] = '\0';
}

static void
script_run(struct ms_job *j)
{
    const struct managesieve_script_request *r = j->script;
    const char *home = j->script_home;
    char name[SIEVE_SCRIPTS_NAME_BYTES];
    char new_name[SIEVE_SCRIPTS_NAME_BYTES];
    name_copy(r->name, name, sizeof(name));
    name_copy(r->new_name, new_name, sizeof(new_name));
    int rc = 0;
    switch (r->op) {
    case MANAGESIEVE_OP_PUTSCRIPT:
        if (!script_valid(j, r->script, NULL)) {
            return;
        }
        rc = sieve_scripts_put(home, name, r->script.ptr, r->script.len, &ms_listener.limits);
        break;
    case MANAGESIEVE_OP_CHECKSCRIPT:
        (void)script_valid(j, r->script, "Script is valid.");
        return;
    case MANAGESIEVE_OP_HAVESPACE:
        rc = sieve_scripts_have_space(home, name, r->size, &ms_listener.limits);
        break;
    case MANAGESIEVE_OP_LISTSCRIPTS: {
        static const size_t max = SIEVE_SCRIPTS_LIST_MAX;
        struct sieve_scripts_entry *entries = calloc(max, sizeof(*entries));
        rc = entries == NULL ? -ENOMEM : sieve_scripts_list(home, entries, max);
        for (int i = 0; i < rc; i++) {
            out_string(j, span_make(entries[i].name, strlen(entries[i].name)));
            out_text(j, entries[i].is_active ? " ACTIVE\r\n" : "\r\n");
        }
        free(entries);
        rc = rc < 0 ? rc : 0;
        break;
    }
    case MANAGESIEVE_OP_GETSCRIPT: {
        char *bytes = NULL;
        size_t len = 0;
        rc = sieve_scripts_get(home, name, ms_listener.limits.max_script_size * 2 + 1, &bytes,
                               &len);
        if (rc == 0) {
            char header[32];
            (void)snprintf(header, sizeof(header), "{%zu}\r\n", len);
            out_text(j, header);
            if (out_reserve(j, len + 2)) {
                memcpy(j->out + j->out_len, bytes, len);
                j->out_len += len;
            }
            out_text(j, "\r\n");
        }
        free(bytes);
        break;
    }
    case MANAGESIEVE_OP_SETACTIVE:
        if (name[0] != '\0') {
            /* As Pigeonhole: a script is compiled before it is activated. */
            char *bytes = NULL;
            size_t len = 0;
            rc = sieve_scripts_get(home, name, ms_listener.limits.max_script_size * 2 + 1,
                                   &bytes, &len);
            bool is_valid = rc == 0 && script_valid(j, span_make(bytes, len), NULL);
            free(bytes);
            if (rc == 0 && !is_valid) {
                return;
            }
        }
        if (rc == 0) {
            rc = sieve_scripts_set_active(home, name);
        }
        break;
    case MANAGESIEVE_OP_DELETESCRIPT:
        rc = sieve_scripts_delete(home, name);
        break;
    case MANAGESIEVE_OP_RENAMESCRIPT:
        rc = sieve_scripts_rename(home, name, new_name);
        break;
    }
    if (rc != 0) {
        j->out_len = 0; /* nothing of a half-made listing */
        out_store_error(j, rc);
        return;
    }
    out_reply(j, true, NULL, "Done.");
}

static void
job_run(struct job *job)
{
    struct ms_job *j = (struct ms_job *)job;
    if (j->kind == MS_JOB_AUTH) {
        auth_check(j);
    } else {
        script_run(j);
        if (j->out == NULL) { /* memory ran out on the way */
            j->out = strdup("NO (TRYLATER) \"Out of memory, try again later.\"\r\n");
            j->out_len = j->out != NULL ? strlen(j->out) : 0;
            j->is_failure = true;
        }
    }
    reactor_job_complete(job);
}

/* ---- back on the reactor ------------------------------------------------ */

static void
auth_done(struct ms_conn *mc, struct ms_job *j, struct conn *conn)
{
    if (j->is_ok) {
        mc->home = strdup(j->home);
        j->is_ok = mc->home != NULL;
    }
    if (j->is_ok) {
        log_info("managesieve-login: Login: user=<%s>, rip=%s", j->user, conn_peer_text(conn));
        login_delay_succeeded(conn_peer_text(conn), j->user);
        managesieve_session_auth_done(&mc->session, true, j->user);
        return;
    }
    /* The same stable line and growing delay as IMAP and SMTP. */
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    uint32_t delay_ms = login_delay_failed(conn_peer_text(conn), j->user, (uint64_t)now.tv_sec);
    log_info("managesieve-login: auth failed: user=<%s>, rip=%s, delay=%ums", j->user,
             conn_peer_text(conn), delay_ms);
    mc->is_auth_fail_delayed = true;
    conn_timer_start(conn, delay_ms);
}

static void
job_done(struct job *job, struct conn *conn)
{
    struct ms_job *j = (struct ms_job *)job;
    struct ms_conn *mc = j->mc;
    mc->job = NULL;
    if (conn == NULL) {
        free(j->out);
        explicit_bzero(j, sizeof(*j));
        free(j);
        return;
    }
    if (j->kind == MS_JOB_AUTH) {
        auth_done(mc, j, conn);
        explicit_bzero(j, sizeof(*j));
        free(j);
        conn_kick(conn);
        return;
    }
    ASSERT(mc->reply == NULL);
    bool is_failure = j->is_failure;
    mc->reply = j;
    mc->reply_sent = 0;
    mc->is_reply_started = false;
    managesieve_session_script_done(&mc->session, is_failure);
    if (!reply_pending(mc)) {
        reply_free(mc);
    }
    conn_kick(conn);
}

/* ---- set-up ------------------------------------------------------------- */

int
managesieve_listener_init(const struct config *config)
{
    ASSERT(config != NULL);
    memset(&ms_listener, 0, sizeof(ms_listener));
    ms_listener.config = config;
    (void)snprintf(ms_listener.implementation, sizeof(ms_listener.implementation),
                   "toaster %s", TOASTER_VERSION);
    ms_listener.limits.max_script_size = config->sieve_max_script_size;
    ms_listener.limits.quota_max_scripts = config->sieve_quota_max_scripts;
    ms_listener.limits.quota_max_storage = config->sieve_quota_max_storage;
    struct managesieve_session_config *sc = &ms_listener.session_config;
    sc->implementation = ms_listener.implementation;
    sc->sieve_extensions = sieve_capabilities();
    sc->max_redirects = 0;
    sc->error_limit = MANAGESIEVE_SESSION_ERROR_LIMIT_DEFAULT;
    sc->is_plaintext_auth_allowed = config->allow_plaintext_auth;
    sc->reader.line_bytes_max = MANAGESIEVE_INLINE_BYTES;
    sc->reader.big_literal_bytes_max = config->sieve_max_script_size;
    sc->reader.big_acquire = big_acquire;
    sc->reader.big_release = big_release;
    sc->reader.owner = NULL;
    return 0;
}
