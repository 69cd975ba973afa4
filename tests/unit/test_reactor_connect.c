/*
 * tests/unit/test_reactor_connect.c - outbound connections on a real
 * reactor (reactor_connect, client TLS beneath the protocol, the hook,
 * jobs with no connection, draining), over loopback sockets only: the
 * test's main thread plays the server with blocking sockets on 127.0.0.1
 * (and core/tls's server side for TLS), the reactor's hook opens the
 * connections the main thread asks for. Every scenario runs once with
 * plain file descriptors and once with direct sockets.
 *
 * A connect timeout is provoked on loopback with a listener whose accept
 * queue is full (listen(fd, 0) and one connection never accepted): Linux
 * drops further SYNs, so the connect waits for a retransmission (1 s)
 * and the linked timeout fires first.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ck_pr.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/job.h"
#include "core/reactor.h"
#include "core/tls.h"
#include "core/workers.h"
#include "tests/unit/unit.h"

#define WAIT_MS 10000 /* the longest any step may take before it counts as lost */

enum mode {
    MODE_PLAIN,          /* HELLO out, WORLD + BYE in, close */
    MODE_TLS,            /* STARTTLS, 220, handshake, EHLO / 250 inside TLS */
    MODE_TLS_GARBAGE,    /* STARTTLS, 220, then the server answers the ClientHello with text */
    MODE_TLS_SILENT,     /* STARTTLS, 220, then nothing: the read timeout ends the handshake */
    MODE_TLS_WRONG_NAME, /* the certificate is not valid for the name the client checks */
    MODE_HANG,           /* connect only: nothing is sent */
};

/* One outbound connection: asked for by the main thread, filled in by the
 * hook and the handler on the reactor's thread. Read by the main thread
 * only once is_closed is set (under ctx.lock). */
struct scenario {
    enum mode mode;
    struct sockaddr_storage address;
    socklen_t address_len;
    uint32_t timeout_ms;
    int connect_rc;
    bool is_connect_returned;
    bool is_opened;
    bool is_shutdown; /* shutdown() came (draining) */
    bool is_closed;
    int connect_error;      /* in close() */
    int connect_error_open; /* in open() */
    char peer_text[64];
    char received[512];
    size_t received_len;
    int tls_start_rc;
    int tls_start_again_rc;
    bool is_output_asked_in_handshake;
    bool was_tls_active_at_ehlo;
    bool has_session;
    bool is_verified;
    char tls_version[32];
    char tls_failure[256];
    bool has_tls_failure;
    struct timespec started;
    struct timespec closed;
};

struct client_state {
    struct scenario *sc;
    char out[64];
    size_t out_len;
    size_t out_sent;
    bool is_closing;
    bool is_tls_requested;
    bool is_ehlo_queued;
};

/* What the main thread asks the hook to do next. */
enum request {
    REQUEST_NONE,
    REQUEST_CONNECT,
    REQUEST_BAD_ARGUMENTS,
    REQUEST_JOB,
    REQUEST_DRAIN_PROBE,
};

struct job_probe {
    struct job job;
    uint32_t sleep_ms;
    bool has_run; /* on a worker */
    bool is_done; /* done() came */
    bool is_done_on_reactor;
    bool was_conn_null;
    struct reactor *reactor;
};

struct ctx {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    struct reactor *reactor;
    struct tls_client *tls_client;
    enum request request;
    struct scenario *request_sc;
    struct job_probe *request_job;
    uint32_t hook_runs;
    uint32_t hook_next_ms;      /* what the next run returns */
    uint32_t hook_next_ms_then; /* ... and the runs after it */
    /* REQUEST_BAD_ARGUMENTS results. */
    int rc_unix;
    int rc_short_len;
    int rc_zero_timeout;
    int rc_tls_before_open;
    int rc_capacity; /* a connect beyond max_connections */
    bool is_bad_done;
    /* REQUEST_DRAIN_PROBE: the hook runs while draining. */
    bool is_drain_seen;
    int rc_while_draining;
};

static struct ctx ctx = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .changed = PTHREAD_COND_INITIALIZER,
};

static char tmp_dir[] = "/tmp/toaster-reactor-connect-XXXXXX";
static char cert_path[600];
static struct config config; /* big: not on the stack */

/* ---- the client handler (reactor thread) -------------------------------- */

static void
out_queue(struct client_state *st, const char *text)
{
    size_t len = strlen(text);
    if (st->out_len + len <= sizeof(st->out)) {
        memcpy(st->out + st->out_len, text, len);
        st->out_len += len;
    }
}

static void
client_open(struct conn *conn)
{
    struct client_state *st = conn_state(conn);
    struct scenario *sc = st->sc;
    sc->is_opened = true;
    sc->connect_error_open = conn_connect_error(conn);
    (void)snprintf(sc->peer_text, sizeof(sc->peer_text), "%s", conn_peer_text(conn));
    if (sc->mode != MODE_HANG) {
        out_queue(st, sc->mode == MODE_PLAIN ? "HELLO\r\n" : "STARTTLS\r\n");
    }
}

static bool
received_has(const struct scenario *sc, const char *text)
{
    size_t len = strlen(text);
    for (size_t i = 0; i + len <= sc->received_len; i++) {
        if (memcmp(sc->received + i, text, len) == 0) {
            return true;
        }
    }
    return false;
}

static size_t
client_input(struct conn *conn, const uint8_t *bytes, size_t len)
{
    struct client_state *st = conn_state(conn);
    struct scenario *sc = st->sc;
    size_t room = sizeof(sc->received) - sc->received_len;
    size_t take = len < room ? len : room;
    memcpy(sc->received + sc->received_len, bytes, take);
    sc->received_len += take;
    if (sc->mode == MODE_PLAIN && received_has(sc, "BYE\r\n")) {
        st->is_closing = true;
    }
    if (sc->mode != MODE_PLAIN && !st->is_tls_requested && received_has(sc, "220 go\r\n")) {
        st->is_tls_requested = true;
        sc->received_len = 0;
        struct tls_conn *tls = NULL;
        int rc = tls_conn_new_client(
            ctx.tls_client, sc->mode == MODE_TLS_WRONG_NAME ? "other.example" : "mx.test.example",
            TLS_VERIFY_NAME, NULL, 0, &tls);
        sc->tls_start_rc = rc == 0 ? conn_tls_start_client(conn, tls) : rc;
        /* A second start is refused, and its tls_conn freed (ASan). */
        struct tls_conn *again = NULL;
        rc = tls_conn_new_client(ctx.tls_client, "mx.test.example", TLS_VERIFY_NAME, NULL, 0,
                                 &again);
        sc->tls_start_again_rc = rc == 0 ? conn_tls_start_client(conn, again) : rc;
    }
    if (st->is_ehlo_queued && received_has(sc, "250 ok\r\n")) {
        st->is_closing = true;
    }
    if (take == 0) {
        st->is_closing = true; /* more than the test ever sends */
    }
    return len;
}

static bool
client_wants_input(struct conn *conn)
{
    struct client_state *st = conn_state(conn);
    return !st->is_closing;
}

static uint32_t
client_read_timeout_ms(struct conn *conn)
{
    struct client_state *st = conn_state(conn);
    return st->sc->mode == MODE_TLS_SILENT ? 300 : WAIT_MS;
}

static struct span
client_pending_output(struct conn *conn)
{
    struct client_state *st = conn_state(conn);
    struct scenario *sc = st->sc;
    if (st->is_tls_requested && !st->is_ehlo_queued) {
        if (conn_tls_session(conn) == NULL) {
            sc->is_output_asked_in_handshake = true;
        } else if (sc->mode == MODE_TLS) {
            sc->was_tls_active_at_ehlo = conn_tls_is_active(conn);
            st->is_ehlo_queued = true;
            out_queue(st, "EHLO\r\n");
        }
    }
    struct span out = {.ptr = st->out + st->out_sent, .len = st->out_len - st->out_sent};
    return out;
}

static void
client_output_sent(struct conn *conn, size_t bytes)
{
    struct client_state *st = conn_state(conn);
    st->out_sent += bytes;
    if (st->out_sent == st->out_len) {
        st->out_sent = 0;
        st->out_len = 0;
    }
}

static bool
client_is_closing(struct conn *conn)
{
    struct client_state *st = conn_state(conn);
    return st->is_closing;
}

static void
client_timeout(struct conn *conn)
{
    struct client_state *st = conn_state(conn);
    st->is_closing = true;
}

static void
client_shutdown(struct conn *conn, bool is_forced)
{
    (void)is_forced;
    struct client_state *st = conn_state(conn);
    st->sc->is_shutdown = true;
    st->is_closing = true;
}

static void
client_file_done(struct conn *conn, int result)
{
    (void)conn;
    (void)result;
}

static void
client_close(struct conn *conn)
{
    struct client_state *st = conn_state(conn);
    struct scenario *sc = st->sc;
    sc->connect_error = conn_connect_error(conn);
    const struct tls_conn *session = conn_tls_session(conn);
    sc->has_session = session != NULL;
    if (session != NULL) {
        sc->is_verified = tls_conn_is_verified(session);
        (void)snprintf(sc->tls_version, sizeof(sc->tls_version), "%s", tls_conn_version(session));
    }
    const char *failure = conn_tls_failure(conn);
    sc->has_tls_failure = failure != NULL;
    if (failure != NULL) {
        (void)snprintf(sc->tls_failure, sizeof(sc->tls_failure), "%s", failure);
    }
    (void)clock_gettime(CLOCK_MONOTONIC, &sc->closed);
    pthread_mutex_lock(&ctx.lock);
    sc->is_closed = true;
    pthread_cond_broadcast(&ctx.changed);
    pthread_mutex_unlock(&ctx.lock);
}

static const struct conn_handler client_handler = {
    .name = "test-client",
    .state_bytes = sizeof(struct client_state),
    .open = client_open,
    .input = client_input,
    .wants_input = client_wants_input,
    .read_timeout_ms = client_read_timeout_ms,
    .pending_output = client_pending_output,
    .output_sent = client_output_sent,
    .is_closing = client_is_closing,
    .timeout = client_timeout,
    .shutdown = client_shutdown,
    .file_done = client_file_done,
    .close = client_close,
};

/* Handlers only registered, to fill the table (never connected). */
static const struct conn_handler spare_handlers[3] = {
    {.name = "spare1", .state_bytes = 8},
    {.name = "spare2", .state_bytes = 8},
    {.name = "spare3", .state_bytes = 8},
};
static const struct conn_handler one_too_many = {.name = "extra", .state_bytes = 8};

/* ---- jobs with no connection --------------------------------------------- */

static void
probe_run(struct job *job)
{
    struct job_probe *probe = (struct job_probe *)job;
    if (probe->sleep_ms > 0) {
        usleep(probe->sleep_ms * 1000u);
    }
    ck_pr_store_8((uint8_t *)&probe->has_run, 1);
    reactor_job_complete(job); /* a job's run() hands it back itself */
}

static void
probe_done(struct job *job, struct conn *conn)
{
    struct job_probe *probe = (struct job_probe *)job;
    pthread_mutex_lock(&ctx.lock);
    probe->is_done = true;
    probe->is_done_on_reactor = reactor_current() == probe->reactor;
    probe->was_conn_null = conn == NULL;
    pthread_cond_broadcast(&ctx.changed);
    pthread_mutex_unlock(&ctx.lock);
}

/* ---- the hook (reactor thread) ------------------------------------------- */

static void
hook_connect(struct scenario *sc)
{
    struct conn *conn = NULL;
    (void)clock_gettime(CLOCK_MONOTONIC, &sc->started);
    int rc = reactor_connect(ctx.reactor, &client_handler, (const struct sockaddr *)&sc->address,
                             sc->address_len, sc->timeout_ms, &conn);
    if (rc == 0) {
        struct client_state *st = conn_state(conn);
        st->sc = sc; /* at once, before any callback */
    }
    pthread_mutex_lock(&ctx.lock);
    sc->connect_rc = rc;
    sc->is_connect_returned = true;
    if (rc != 0) {
        sc->is_closed = true; /* nothing will close */
    }
    pthread_cond_broadcast(&ctx.changed);
    pthread_mutex_unlock(&ctx.lock);
}

static void
hook_bad_arguments(struct scenario *sc)
{
    struct conn *conn = NULL;
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    int rc_unix = reactor_connect(ctx.reactor, &client_handler, (const struct sockaddr *)&un,
                                  sizeof(un), 1000, &conn);
    int rc_short =
        reactor_connect(ctx.reactor, &client_handler, (const struct sockaddr *)&sc->address,
                        (socklen_t)sizeof(struct sockaddr_in) - 1, 1000, &conn);
    int rc_zero = reactor_connect(ctx.reactor, &client_handler,
                                  (const struct sockaddr *)&sc->address, sc->address_len, 0, &conn);
    /* Client TLS before the connect is done: refused, the tls_conn freed. */
    int rc_tls = 1;
    int rc = reactor_connect(ctx.reactor, &client_handler, (const struct sockaddr *)&sc->address,
                             sc->address_len, 1000, &conn);
    if (rc == 0) {
        struct client_state *st = conn_state(conn);
        st->sc = sc;
        struct tls_conn *tls = NULL;
        rc_tls =
            tls_conn_new_client(ctx.tls_client, "mx.test.example", TLS_VERIFY_NAME, NULL, 0, &tls);
        if (rc_tls == 0) {
            rc_tls = conn_tls_start_client(conn, tls);
        }
    }
    pthread_mutex_lock(&ctx.lock);
    sc->connect_rc = rc;
    sc->is_connect_returned = true;
    sc->is_closed = sc->is_closed || rc != 0;
    ctx.rc_tls_before_open = rc_tls;
    ctx.rc_unix = rc_unix;
    ctx.rc_short_len = rc_short;
    ctx.rc_zero_timeout = rc_zero;
    ctx.is_bad_done = true;
    pthread_cond_broadcast(&ctx.changed);
    pthread_mutex_unlock(&ctx.lock);
}

static uint32_t
hook(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&ctx.lock);
    ctx.hook_runs++;
    enum request request = ctx.request;
    struct scenario *sc = ctx.request_sc;
    struct job_probe *probe = ctx.request_job;
    uint32_t next_ms = ctx.hook_next_ms;
    ctx.hook_next_ms = ctx.hook_next_ms_then;
    ctx.request = REQUEST_NONE;
    pthread_cond_broadcast(&ctx.changed);
    pthread_mutex_unlock(&ctx.lock);
    switch (request) {
    case REQUEST_NONE:
        break;
    case REQUEST_CONNECT:
        hook_connect(sc);
        break;
    case REQUEST_BAD_ARGUMENTS:
        hook_bad_arguments(sc);
        break;
    case REQUEST_JOB: {
        probe->reactor = ctx.reactor;
        int rc = reactor_job_submit(ctx.reactor, &probe->job);
        if (rc != 0) {
            pthread_mutex_lock(&ctx.lock);
            probe->is_done = true; /* the waiter sees was_conn_null false */
            pthread_cond_broadcast(&ctx.changed);
            pthread_mutex_unlock(&ctx.lock);
        }
        break;
    }
    case REQUEST_DRAIN_PROBE:
        break;
    }
    if (reactor_is_draining(ctx.reactor)) {
        struct conn *conn = NULL;
        struct sockaddr_in discard = {
            .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons(9)};
        int rc = reactor_connect(ctx.reactor, &client_handler, (const struct sockaddr *)&discard,
                                 sizeof(discard), 1000, &conn);
        pthread_mutex_lock(&ctx.lock);
        ctx.is_drain_seen = true;
        ctx.rc_while_draining = rc;
        pthread_cond_broadcast(&ctx.changed);
        pthread_mutex_unlock(&ctx.lock);
        return REACTOR_HOOK_IDLE;
    }
    return next_ms;
}

/* ---- the main thread's side ------------------------------------------------ */

static long
ms_since(const struct timespec *start, const struct timespec *end)
{
    return (long)(end->tv_sec - start->tv_sec) * 1000 +
           (long)(end->tv_nsec - start->tv_nsec) / 1000000;
}

static void
deadline_in(struct timespec *ts, uint32_t ms)
{
    (void)clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Wait (ctx.lock held) until *flag, at most WAIT_MS. */
static bool
wait_flag(const bool *flag)
{
    struct timespec until;
    deadline_in(&until, WAIT_MS);
    while (!*flag) {
        if (pthread_cond_timedwait(&ctx.changed, &ctx.lock, &until) != 0) {
            return *flag;
        }
    }
    return true;
}

static void
ask(enum request request, struct scenario *sc, struct job_probe *probe)
{
    pthread_mutex_lock(&ctx.lock);
    ctx.request = request;
    ctx.request_sc = sc;
    ctx.request_job = probe;
    pthread_mutex_unlock(&ctx.lock);
    reactor_hook_wake(ctx.reactor);
}

/* A connection as sc says; returns once connect returned (true when 0). */
static bool
start_connect(struct scenario *sc)
{
    ask(REQUEST_CONNECT, sc, NULL);
    pthread_mutex_lock(&ctx.lock);
    bool is_returned = wait_flag(&sc->is_connect_returned);
    pthread_mutex_unlock(&ctx.lock);
    CHECK(is_returned);
    return is_returned && sc->connect_rc == 0;
}

static bool
wait_closed(struct scenario *sc)
{
    pthread_mutex_lock(&ctx.lock);
    bool is_closed = wait_flag(&sc->is_closed);
    pthread_mutex_unlock(&ctx.lock);
    return is_closed;
}

/* A listening socket on 127.0.0.1, any port; its address in *address. */
static int
listen_loopback(int backlog, struct sockaddr_in *address)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    CHECK(listen(fd, backlog) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    *address = a;
    return fd;
}

static int
accept_within(int listen_fd)
{
    struct pollfd p = {.fd = listen_fd, .events = POLLIN};
    if (poll(&p, 1, WAIT_MS) != 1) {
        return -1;
    }
    return accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
}

/* Read until text has arrived (in *buf), the peer closed, or WAIT_MS. */
static bool
read_until(int fd, char *buf, size_t cap, size_t *len, const char *text)
{
    for (int i = 0; i < 100; i++) {
        buf[*len] = '\0';
        if (text != NULL && strstr(buf, text) != NULL) {
            return true;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, WAIT_MS) != 1) {
            return false;
        }
        ssize_t n = recv(fd, buf + *len, cap - 1 - *len, 0);
        if (n <= 0) {
            return text == NULL && n == 0;
        }
        *len += (size_t)n;
    }
    return false;
}

static bool
send_all(int fd, const void *bytes, size_t len)
{
    const char *p = bytes;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0) {
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static void scenario_init_any(struct scenario *sc, enum mode mode, const struct sockaddr *address,
                              socklen_t address_len, uint32_t timeout_ms);

static void
scenario_init(struct scenario *sc, enum mode mode, const struct sockaddr_in *address,
              uint32_t timeout_ms)
{
    scenario_init_any(sc, mode, (const struct sockaddr *)address, sizeof(*address), timeout_ms);
}

/* The same for any address family. */
static void
scenario_init_any(struct scenario *sc, enum mode mode, const struct sockaddr *address,
                  socklen_t address_len, uint32_t timeout_ms)
{
    memset(sc, 0, sizeof(*sc));
    sc->mode = mode;
    memcpy(&sc->address, address, address_len);
    sc->address_len = address_len;
    sc->timeout_ms = timeout_ms;
    sc->tls_start_rc = 1;
    sc->tls_start_again_rc = 1;
}

/* Whether this process has a socket (a plain file descriptor) bound to
 * 127.0.0.1:port: a direct socket lives only in the ring's file table. */
static bool
process_has_socket_on(uint16_t port)
{
    for (int fd = 0; fd < 4096; fd++) {
        struct sockaddr_in a;
        socklen_t len = sizeof(a);
        if (getsockname(fd, (struct sockaddr *)&a, &len) == 0 && a.sin_family == AF_INET &&
            a.sin_port == port && a.sin_addr.s_addr == htonl(INADDR_LOOPBACK)) {
            return true;
        }
    }
    return false;
}

/* Connected, bytes both ways, closed by the client after BYE; the
 * client's socket is a process fd, or only a direct descriptor. */
static void
test_plain(bool is_direct)
{
    struct sockaddr_in address;
    int listen_fd = listen_loopback(8, &address);
    struct scenario *sc = calloc(1, sizeof(*sc));
    scenario_init(sc, MODE_PLAIN, &address, 2000);
    CHECK(start_connect(sc));
    int fd = accept_within(listen_fd);
    CHECK(fd >= 0);
    if (fd >= 0) {
        char buf[256];
        size_t len = 0;
        CHECK(read_until(fd, buf, sizeof(buf), &len, "HELLO\r\n"));
        CHECK_STR(buf, "HELLO\r\n");
        struct sockaddr_in client;
        socklen_t client_len = sizeof(client);
        CHECK(getpeername(fd, (struct sockaddr *)&client, &client_len) == 0);
        CHECK(process_has_socket_on(client.sin_port) == !is_direct);
        CHECK(send_all(fd, "WORLD\r\n", 7));
        usleep(20000); /* two reads on the client's side, most likely */
        CHECK(send_all(fd, "BYE\r\n", 5));
        len = 0;
        CHECK(read_until(fd, buf, sizeof(buf), &len, NULL)); /* EOF: the client closed */
        CHECK(len == 0);
        (void)close(fd);
    }
    CHECK(wait_closed(sc));
    CHECK(sc->is_opened);
    CHECK(sc->connect_error_open == 0);
    CHECK(sc->connect_error == 0);
    CHECK_STR(sc->peer_text, "127.0.0.1");
    CHECK_BYTES(sc->received, sc->received_len, "WORLD\r\nBYE\r\n", 12);
    CHECK(!sc->has_session && !sc->has_tls_failure);
    (void)close(listen_fd);
    free(sc);
}

/* IPv6 on ::1 (skipped when the loopback has no IPv6): the peer text
 * says so, bytes come in, the client closes. */
static void
test_ipv6(void)
{
    int listen_fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    socklen_t len = sizeof(a);
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(listen_fd, 8) != 0 || getsockname(listen_fd, (struct sockaddr *)&a, &len) != 0) {
        (void)fprintf(stderr, "  no IPv6 on the loopback: IPv6 test skipped\n");
        if (listen_fd >= 0) {
            (void)close(listen_fd);
        }
        return;
    }
    struct scenario *sc = calloc(1, sizeof(*sc));
    scenario_init_any(sc, MODE_PLAIN, (const struct sockaddr *)&a, sizeof(a), 2000);
    CHECK(start_connect(sc));
    int fd = accept_within(listen_fd);
    CHECK(fd >= 0);
    if (fd >= 0) {
        char buf[256];
        size_t got = 0;
        CHECK(read_until(fd, buf, sizeof(buf), &got, "HELLO\r\n"));
        CHECK(send_all(fd, "BYE\r\n", 5));
        got = 0;
        CHECK(read_until(fd, buf, sizeof(buf), &got, NULL));
        (void)close(fd);
    }
    CHECK(wait_closed(sc));
    CHECK(sc->is_opened);
    CHECK(sc->connect_error == 0);
    CHECK_STR(sc->peer_text, "IPv6:::1");
    CHECK_BYTES(sc->received, sc->received_len, "BYE\r\n", 5);
    (void)close(listen_fd);
    free(sc);
}

/* A port nobody listens on: refused, never opened. */
static void
test_refused(void)
{
    struct sockaddr_in address;
    int fd = listen_loopback(1, &address);
    (void)close(fd); /* the port is free again: a SYN gets a RST */
    struct scenario *sc = calloc(1, sizeof(*sc));
    scenario_init(sc, MODE_PLAIN, &address, 2000);
    CHECK(start_connect(sc));
    CHECK(wait_closed(sc));
    CHECK(!sc->is_opened);
    CHECK(sc->connect_error == -ECONNREFUSED);
    free(sc);
}

/* A listener whose accept queue is full drops the SYN: the linked timeout
 * ends the connect (well before the SYN's retransmission after 1 s). */
static int
listen_full(struct sockaddr_in *address, int *filler_out)
{
    int listen_fd = listen_loopback(0, address);
    int filler = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(filler >= 0);
    CHECK(connect(filler, (struct sockaddr *)address, sizeof(*address)) == 0);
    *filler_out = filler;
    return listen_fd;
}

static void
test_timeout(void)
{
    struct sockaddr_in address;
    int filler = -1;
    int listen_fd = listen_full(&address, &filler);
    struct scenario *sc = calloc(1, sizeof(*sc));
    scenario_init(sc, MODE_PLAIN, &address, 200);
    CHECK(start_connect(sc));
    CHECK(wait_closed(sc));
    CHECK(!sc->is_opened);
    CHECK(sc->connect_error == -ETIMEDOUT);
    long elapsed_ms = ms_since(&sc->started, &sc->closed);
    CHECK(elapsed_ms >= 190 && elapsed_ms < 3000); /* not the kernel's own SYN limit */
    (void)close(filler);
    (void)close(listen_fd);
    free(sc);
}

/* The server's side of TLS over a blocking socket (core/tls, in memory):
 * ciphertext both ways until want arrived as plaintext. */
static bool
tls_serve_until(int fd, struct tls_conn *server, char *plain, size_t cap, size_t *plain_len,
                const char *want)
{
    for (int i = 0; i < 200; i++) {
        struct span out = tls_conn_output(server);
        if (out.len > 0) {
            if (!send_all(fd, out.ptr, out.len)) {
                return false;
            }
            tls_conn_output_sent(server, out.len);
        }
        plain[*plain_len] = '\0';
        if (strstr(plain, want) != NULL) {
            return true;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, WAIT_MS) != 1) {
            return false;
        }
        uint8_t cipher[4096];
        ssize_t n = recv(fd, cipher, sizeof(cipher), 0);
        if (n <= 0) {
            return false;
        }
        size_t offset = 0;
        while (offset < (size_t)n) {
            size_t used = 0;
            size_t got = 0;
            enum tls_status status =
                tls_conn_input(server, cipher + offset, (size_t)n - offset, &used,
                               (uint8_t *)plain + *plain_len, cap - 1 - *plain_len, &got);
            *plain_len += got;
            offset += used;
            if (status != TLS_OK) {
                return false;
            }
            if (used == 0 && got == 0) {
                break;
            }
        }
    }
    return false;
}

static void
test_tls(struct tls_server *tls_server)
{
    struct sockaddr_in address;
    int listen_fd = listen_loopback(8, &address);
    struct scenario *sc = calloc(1, sizeof(*sc));
    scenario_init(sc, MODE_TLS, &address, 2000);
    CHECK(start_connect(sc));
    int fd = accept_within(listen_fd);
    CHECK(fd >= 0);
    if (fd >= 0) {
        char buf[256];
        size_t len = 0;
        CHECK(read_until(fd, buf, sizeof(buf), &len, "STARTTLS\r\n"));
        CHECK(send_all(fd, "220 go\r\n", 8));
        struct tls_conn *server = tls_conn_new(tls_server);
        CHECK(server != NULL);
        if (server != NULL) {
            char plain[256];
            size_t plain_len = 0;
            CHECK(tls_serve_until(fd, server, plain, sizeof(plain), &plain_len, "EHLO\r\n"));
            CHECK_STR(plain, "EHLO\r\n");
            CHECK(tls_conn_is_established(server));
            CHECK(tls_conn_write(server, (const uint8_t *)"250 ok\r\n", 8) == 8);
            /* Until the client's close_notify (TLS_CLOSED), then EOF. */
            plain_len = 0;
            CHECK(!tls_serve_until(fd, server, plain, sizeof(plain), &plain_len, "never"));
            tls_conn_free(&server);
        }
        (void)close(fd);
    }
    CHECK(wait_closed(sc));
    CHECK(sc->is_opened);
    CHECK(sc->tls_start_rc == 0);
    CHECK(sc->tls_start_again_rc == -EALREADY);
    CHECK(!sc->is_output_asked_in_handshake);
    CHECK(sc->was_tls_active_at_ehlo);
    CHECK_BYTES(sc->received, sc->received_len, "250 ok\r\n", 8);
    CHECK(sc->has_session);
    CHECK(sc->is_verified);
    CHECK(strncmp(sc->tls_version, "TLSv1.", 6) == 0);
    CHECK(!sc->has_tls_failure);
    CHECK(sc->connect_error == 0);
    (void)close(listen_fd);
    free(sc);
}

/* TLS that does not come up: the server answers the ClientHello with
 * plaintext (garbage), says nothing until the client's read timeout
 * (silent), or shows a certificate the client's name check refuses. The
 * connection closes with the reason in conn_tls_failure(), never a session,
 * and the protocol never asked for output during the handshake. */
static void
test_tls_broken(enum mode mode, struct tls_server *tls_server, const char *want_failure)
{
    struct sockaddr_in address;
    int listen_fd = listen_loopback(8, &address);
    struct scenario *sc = calloc(1, sizeof(*sc));
    scenario_init(sc, mode, &address, 2000);
    CHECK(start_connect(sc));
    int fd = accept_within(listen_fd);
    CHECK(fd >= 0);
    struct timespec handshake_started;
    (void)clock_gettime(CLOCK_MONOTONIC, &handshake_started);
    if (fd >= 0) {
        char buf[2048];
        size_t len = 0;
        CHECK(read_until(fd, buf, sizeof(buf), &len, "STARTTLS\r\n"));
        CHECK(send_all(fd, "220 go\r\n", 8));
        (void)clock_gettime(CLOCK_MONOTONIC, &handshake_started);
        ssize_t n = 0;
        if (mode == MODE_TLS_WRONG_NAME) {
            struct tls_conn *server = tls_conn_new(tls_server);
            CHECK(server != NULL);
            char plain[64];
            size_t plain_len = 0;
            /* Ends with the client's alert (or its FIN). */
            CHECK(server == NULL ||
                  !tls_serve_until(fd, server, plain, sizeof(plain), &plain_len, "never"));
            tls_conn_free(&server);
        } else {
            /* The ClientHello: a handshake record (22) of TLS 1.x (3.x). */
            struct pollfd p = {.fd = fd, .events = POLLIN};
            CHECK(poll(&p, 1, WAIT_MS) == 1);
            n = recv(fd, buf, sizeof(buf), 0);
            CHECK(n >= 5 && buf[0] == 22 && buf[1] == 3);
            if (mode == MODE_TLS_GARBAGE) {
                const char *garbage = "500 this is not TLS at all, it is plain text\r\n";
                CHECK(send_all(fd, garbage, strlen(garbage)));
            }
            /* Whatever the client says (an alert), then EOF. */
            for (int i = 0; i < 10; i++) {
                struct pollfd q = {.fd = fd, .events = POLLIN};
                CHECK(poll(&q, 1, WAIT_MS) == 1);
                n = recv(fd, buf, sizeof(buf), 0);
                if (n <= 0) {
                    break;
                }
            }
            CHECK(n == 0);
        }
        (void)close(fd);
    }
    CHECK(wait_closed(sc));
    CHECK(sc->is_opened);
    CHECK(sc->tls_start_rc == 0);
    CHECK(!sc->has_session);
    CHECK(sc->has_tls_failure);
    CHECK(strstr(sc->tls_failure, want_failure) != NULL);
    CHECK(!sc->is_output_asked_in_handshake);
    if (mode == MODE_TLS_SILENT) {
        long waited_ms = ms_since(&handshake_started, &sc->closed);
        CHECK(waited_ms >= 250 && waited_ms < 2000);
    }
    (void)fprintf(stderr, "  (TLS failure as reported: %s)\n", sc->tls_failure);
    (void)close(listen_fd);
    free(sc);
}

/* Wrong arguments come back at once, and a client TLS start before the
 * connect is done is refused (and its tls_conn freed). */
static void
test_bad_arguments(void)
{
    struct sockaddr_in address;
    int fd = listen_loopback(1, &address);
    (void)close(fd); /* refused */
    struct scenario *sc = calloc(1, sizeof(*sc));
    scenario_init(sc, MODE_PLAIN, &address, 1000);
    ask(REQUEST_BAD_ARGUMENTS, sc, NULL);
    pthread_mutex_lock(&ctx.lock);
    CHECK(wait_flag(&ctx.is_bad_done));
    ctx.is_bad_done = false;
    pthread_mutex_unlock(&ctx.lock);
    CHECK(ctx.rc_unix == -EAFNOSUPPORT);
    CHECK(ctx.rc_short_len == -EINVAL);
    CHECK(ctx.rc_zero_timeout == -EINVAL);
    CHECK(sc->connect_rc == 0);
    CHECK(ctx.rc_tls_before_open == -EINVAL);
    CHECK(wait_closed(sc));
    CHECK(!sc->is_opened);
    CHECK(sc->connect_error == -ECONNREFUSED);
    CHECK(!sc->has_tls_failure && !sc->has_session);
    free(sc);
}

/* The hook: runs once per wake, again at the deadline it returned, not
 * at all while idle; a deadline that moves earlier moves the timer. */
static uint32_t
hook_runs_after(uint32_t ms)
{
    usleep(ms * 1000u);
    pthread_mutex_lock(&ctx.lock);
    uint32_t runs = ctx.hook_runs;
    pthread_mutex_unlock(&ctx.lock);
    return runs;
}

/* Whether the hook has run target times (counted since start) within
 * ms milliseconds. */
static bool
hook_runs_reach(uint32_t target, uint32_t ms)
{
    for (uint32_t waited_ms = 0; waited_ms <= ms; waited_ms += 5) {
        if (hook_runs_after(0) >= target) {
            return true;
        }
        usleep(5000);
    }
    return false;
}

/* The next run of the hook returns next_ms, the ones after it then_ms. */
static void
set_next_ms(uint32_t next_ms, uint32_t then_ms)
{
    pthread_mutex_lock(&ctx.lock);
    ctx.hook_next_ms = next_ms;
    ctx.hook_next_ms_then = then_ms;
    pthread_mutex_unlock(&ctx.lock);
}

static void
test_hook(void)
{
    set_next_ms(REACTOR_HOOK_IDLE, REACTOR_HOOK_IDLE);
    uint32_t runs = hook_runs_after(0);
    reactor_hook_wake(ctx.reactor);
    CHECK(hook_runs_reach(runs + 1, 2000));
    runs = hook_runs_after(0);
    CHECK(hook_runs_after(300) == runs); /* idle: no run without a wake */
    reactor_hook_wake(ctx.reactor);
    CHECK(hook_runs_reach(runs + 1, 2000));
    CHECK(hook_runs_after(100) == runs + 1);
    runs++;
    /* Many wakes coalesce into fewer runs. */
    for (int i = 0; i < 1000; i++) {
        reactor_hook_wake(ctx.reactor);
    }
    CHECK(hook_runs_reach(runs + 1, 2000));
    uint32_t after_many = hook_runs_after(100);
    CHECK(after_many < runs + 1000);
    /* A deadline of 50 ms: runs on its own, about every 50 ms. */
    set_next_ms(50, 50);
    reactor_hook_wake(ctx.reactor);
    CHECK(hook_runs_reach(after_many + 1, 2000));
    uint32_t before = hook_runs_after(0);
    uint32_t after = hook_runs_after(520);
    CHECK(after >= before + 3 && after <= before + 12);
    /* Back to idle: the next run returns IDLE, then none. */
    set_next_ms(REACTOR_HOOK_IDLE, REACTOR_HOOK_IDLE);
    CHECK(hook_runs_reach(after + 1, 2000));
    runs = hook_runs_after(100);
    CHECK(hook_runs_after(300) == runs);
    /* A far deadline, then a near one: the timer moves earlier. */
    set_next_ms(10000, 10000);
    reactor_hook_wake(ctx.reactor);
    CHECK(hook_runs_reach(runs + 1, 2000));
    runs = hook_runs_after(0);
    set_next_ms(30, REACTOR_HOOK_IDLE); /* the woken run returns 30 ms, the next IDLE */
    reactor_hook_wake(ctx.reactor);
    /* The wake's run and the 30 ms one, well before 10 s. */
    CHECK(hook_runs_reach(runs + 2, 2000));
    CHECK(hook_runs_after(100) == runs + 2);
    set_next_ms(REACTOR_HOOK_IDLE, REACTOR_HOOK_IDLE);
}

static void
test_job(void)
{
    struct job_probe *probe = calloc(1, sizeof(*probe));
    probe->job.run = probe_run;
    probe->job.done = probe_done;
    ask(REQUEST_JOB, NULL, probe);
    pthread_mutex_lock(&ctx.lock);
    CHECK(wait_flag(&probe->is_done));
    pthread_mutex_unlock(&ctx.lock);
    CHECK(ck_pr_load_8((uint8_t *)&probe->has_run) == 1);
    CHECK(probe->is_done_on_reactor);
    CHECK(probe->was_conn_null);
    free(probe);
}

/* Draining: a connect in flight is cancelled (close with -ECANCELED);
 * the hook still runs, sees reactor_is_draining and cannot connect; a job
 * in flight is waited for. With max_connections 2, a third connection
 * is refused with -EAGAIN first. */
static void
test_drain(bool is_capacity_checked)
{
    struct sockaddr_in address;
    int filler = -1;
    int listen_fd = listen_full(&address, &filler);
    struct sockaddr_in open_address;
    int open_fd = listen_loopback(8, &open_address);
    struct scenario *sc = calloc(4, sizeof(*sc));
    scenario_init(&sc[0], MODE_HANG, &address, WAIT_MS);
    scenario_init(&sc[1], MODE_HANG, &open_address, WAIT_MS); /* connected */
    scenario_init(&sc[2], MODE_HANG, &address, WAIT_MS);
    scenario_init(&sc[3], MODE_HANG, &address, WAIT_MS);
    CHECK(start_connect(&sc[0]));
    CHECK(start_connect(&sc[1]));
    int accepted = accept_within(open_fd);
    CHECK(accepted >= 0);
    if (is_capacity_checked) {
        CHECK(start_connect(&sc[2]));
        CHECK(!start_connect(&sc[3])); /* max_connections 3 */
        CHECK(sc[3].connect_rc == -EAGAIN);
    }
    struct job_probe *probe = calloc(1, sizeof(*probe));
    probe->job.run = probe_run;
    probe->job.done = probe_done;
    probe->sleep_ms = 300;
    ask(REQUEST_JOB, NULL, probe);
    usleep(50000);
    set_next_ms(10, 10); /* the hook polls, so it runs while draining */
    reactor_request_stop(ctx.reactor);
    reactor_hook_wake(ctx.reactor);
    CHECK(wait_closed(&sc[0]));
    CHECK(!sc[0].is_opened && !sc[0].is_shutdown);
    CHECK(sc[0].connect_error == -ECANCELED);
    /* The connected one is asked to wind down, and closes. */
    CHECK(wait_closed(&sc[1]));
    CHECK(sc[1].is_opened && sc[1].is_shutdown);
    CHECK(sc[1].connect_error == 0);
    if (accepted >= 0) {
        char buf[16];
        CHECK(recv(accepted, buf, sizeof(buf), 0) == 0);
        (void)close(accepted);
    }
    if (is_capacity_checked) {
        CHECK(wait_closed(&sc[2]));
        CHECK(sc[2].connect_error == -ECANCELED);
        CHECK(!sc[2].is_shutdown);
    }
    pthread_mutex_lock(&ctx.lock);
    CHECK(wait_flag(&ctx.is_drain_seen));
    CHECK(wait_flag(&probe->is_done));
    pthread_mutex_unlock(&ctx.lock);
    CHECK(ctx.rc_while_draining == -ESHUTDOWN);
    CHECK(probe->was_conn_null && probe->is_done_on_reactor);
    reactor_join(&ctx.reactor);
    CHECK(ctx.reactor == NULL);
    (void)close(filler);
    (void)close(listen_fd);
    (void)close(open_fd);
    free(probe);
    free(sc);
}

static void
run_reactor(bool is_direct, struct workers *workers, struct tls_server *tls_server)
{
    char err[256];
    CHECK(config_set(&config, "direct_sockets", is_direct ? "yes" : "no", err, sizeof(err)) == 0);
    /* Direct sockets need a file table larger than the spare entries. */
    CHECK(config_set(&config, "max_connections", is_direct ? "100" : "3", err, sizeof(err)) == 0);
    pthread_mutex_lock(&ctx.lock);
    ctx.hook_runs = 0;
    ctx.hook_next_ms = REACTOR_HOOK_IDLE;
    ctx.hook_next_ms_then = REACTOR_HOOK_IDLE;
    ctx.is_drain_seen = false;
    ctx.request = REQUEST_NONE;
    pthread_mutex_unlock(&ctx.lock);
    struct reactor *reactor = NULL;
    int rc = reactor_start(0, &config, NULL, 0, workers, &reactor);
    CHECK(rc == 0);
    if (rc != 0) {
        return;
    }
    ctx.reactor = reactor;
    reactor_hook_wake(reactor); /* before the hook is set: kept, harmless */
    reactor_hook_set(reactor, hook, NULL);
    CHECK(hook_runs_after(100) == 1); /* the first run, once */
    (void)fprintf(stderr, "direct_sockets = %s\n", is_direct ? "yes" : "no");
    test_plain(is_direct);
    test_ipv6();
    test_refused();
    test_timeout();
    test_tls(tls_server);
    test_tls_broken(MODE_TLS_GARBAGE, tls_server, "wrong version number");
    test_tls_broken(MODE_TLS_SILENT, tls_server, "closed during the TLS handshake");
    test_tls_broken(MODE_TLS_WRONG_NAME, tls_server, "certificate");
    test_bad_arguments();
    test_hook();
    test_job();
    test_drain(!is_direct);
}

int
main(void)
{
    if (mkdtemp(tmp_dir) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    char err[256];
    config_defaults(&config);
    CHECK(config_set(&config, "data_dir", tmp_dir, err, sizeof(err)) == 0);
    CHECK(config_set(&config, "myhostname", "mx.test.example", err, sizeof(err)) == 0);
    CHECK(config_set(&config, "recv_buffer_count", "64", err, sizeof(err)) == 0);
    CHECK(config_set(&config, "ring_entries", "256", err, sizeof(err)) == 0);
    CHECK(config_set(&config, "shutdown_timeout", "5s", err, sizeof(err)) == 0);
    CHECK(config_finish(&config, err, sizeof(err)) == 0);

    /* The table of client handlers: the same one twice is refused, and
     * there is room for REACTOR_CLIENT_HANDLERS_MAX. */
    CHECK(reactor_client_handler_register(&client_handler) == 0);
    CHECK(reactor_client_handler_register(&client_handler) == -EALREADY);
    for (size_t i = 0; i < 3; i++) {
        CHECK(reactor_client_handler_register(&spare_handlers[i]) == 0);
    }
    CHECK(reactor_client_handler_register(&one_too_many) == -E2BIG);

    struct tls_server *tls_server = NULL;
    CHECK(tls_server_create(&config, &tls_server, err, sizeof(err)) == 0);
    (void)snprintf(cert_path, sizeof(cert_path), "%s/tls/selfsigned.pem", tmp_dir);
    CHECK(tls_client_create(cert_path, &ctx.tls_client, err, sizeof(err)) == 0);
    struct workers *workers = NULL;
    CHECK(workers_create(1, 1, 16, &workers) == 0);
    if (tls_server != NULL && ctx.tls_client != NULL && workers != NULL) {
        run_reactor(false, workers, tls_server);
        run_reactor(true, workers, tls_server);
    }
    workers_destroy(&workers);
    tls_client_free(&ctx.tls_client);
    tls_server_free(&tls_server);
    char cmd[700];
    (void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_dir);
    (void)system(cmd);
    UNIT_DONE();
}
