/*
 * core/reactor.h - one event loop per core: its own io_uring, its own
 * SO_REUSEPORT listening sockets, its own connection slots and receive
 * buffers. A connection lives on one reactor for its whole life.
 *
 * Protocols plug in through struct conn_handler: the reactor owns the
 * socket, the buffers and the timers, and calls the handler with bytes; the
 * handler answers with how much it consumed and what it wants to send. File
 * operations a protocol needs (the spool) and jobs for the worker pool go
 * through the reactor too, so nothing here ever blocks.
 */
#ifndef TOASTER_CORE_REACTOR_H
#define TOASTER_CORE_REACTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/config.h"
#include "core/job.h"
#include "core/span.h"
#include "core/stats.h"

struct reactor;
struct conn;
struct workers;
struct tls_server;
struct tls_conn;

/* A range of an open file that a protocol sends as it is (see
 * conn_handler.pending_file). */
struct conn_file_range {
    int      fd;
    uint64_t offset;
    uint64_t len;
};

struct conn_handler {
    const char *name;          /* "smtp", for logs */
    size_t      state_bytes;   /* protocol state per connection (the reactor keeps it) */
    /* Reply sent (without waiting) to a connection refused for a limit. */
    const char *refusal_text;
    /* The connection was accepted: set up protocol state (banner etc). */
    void (*open)(struct conn *conn);
    /* Bytes arrived; return how many were consumed (the rest is offered
     * again once wants_input() is true). */
    size_t (*input)(struct conn *conn, const uint8_t *bytes, size_t len);
    bool (*wants_input)(struct conn *conn);
    /* Milliseconds the next read may wait before timeout() (0: forever). */
    uint32_t (*read_timeout_ms)(struct conn *conn);
    struct span (*pending_output)(struct conn *conn);
    void (*output_sent)(struct conn *conn, size_t bytes);
    /* Optional: asked when pending_output() is empty: is the next output
     * a range of a file? It goes out by splice (file -> pipe -> socket,
     * no copy through user space) in pieces; file_sent() counts each
     * piece, and the range asked for next time starts after them. The fd
     * stays open until the range is sent or the connection is closed. A
     * file that ends early or fails to read closes the connection (the
     * protocol has announced its length). */
    bool (*pending_file)(struct conn *conn, struct conn_file_range *range);
    void (*file_sent)(struct conn *conn, size_t bytes);
    /* True once the protocol is done: close after the output is sent. */
    bool (*is_closing)(struct conn *conn);
    void (*timeout)(struct conn *conn);
    /* The daemon is stopping (is_forced: the drain deadline passed). */
    void (*shutdown)(struct conn *conn, bool is_forced);
    /* A file operation started with conn_file_*() finished: result as cqe->res. */
    void (*file_done)(struct conn *conn, int result);
    /* Last call: no operation is in flight any more; release protocol state. */
    void (*close)(struct conn *conn);
    /* Optional: the timer started with conn_timer_start() fired. */
    void (*timer)(struct conn *conn);
    /* Optional: reactor_conn_poke() asked this connection to look at shared
     * state again (new mail for an IDLE session). May be spurious. */
    void (*poke)(struct conn *conn);
};

struct reactor_listener {
    int                        protocol; /* enum listener_protocol */
    const struct listen_address *address;
    const struct conn_handler *handler;
    /* TLS for this listener's connections: from the first byte when
     * is_implicit_tls (submissions, imaps), else after conn_tls_start()
     * (STARTTLS). NULL: no TLS here. */
    struct tls_server         *tls;
    bool                       is_implicit_tls;
};

/* Create reactor number index and start its thread. The listeners are
 * opened inside the thread (SO_REUSEPORT, one socket per address per
 * reactor). Returns 0 once the thread runs and listens, or -errno with the
 * reason logged. */
int reactor_start(uint32_t index, const struct config *config,
                  const struct reactor_listener *listeners, size_t listener_count,
                  struct workers *workers, struct reactor **reactor_out);

/* Ask the reactor to stop accepting and drain (any thread). */
void reactor_request_stop(struct reactor *reactor);

/* Wake the reactor so it looks at shared state again (any thread). */
void reactor_wake(struct reactor *reactor);

/* Wait for the thread to end, then free it. */
void reactor_join(struct reactor **reactor);

/* ---- outbound connections (the delivery agent) --------------------------- */

#define REACTOR_CLIENT_HANDLERS_MAX 4u

/* Before the first reactor_start (main thread): a handler used only for
 * outbound connections (reactor_connect). Every reactor then maps a state
 * area for it, as for a listener's handler. At most
 * REACTOR_CLIENT_HANDLERS_MAX. Returns 0, -E2BIG (full), -EALREADY (this
 * handler is registered already). Calling it after a reactor_start is a
 * programmer error (asserted). */
int reactor_client_handler_register(const struct conn_handler *handler);

/* On the reactor's own thread. Open a TCP connection to address (AF_INET /
 * AF_INET6, copied) for handler (registered above), the connect bounded by
 * timeout_ms (IORING_OP_CONNECT with a linked timeout). The socket comes
 * from socket(2) (non-blocking, TCP_NODELAY); with direct sockets it goes
 * into the ring's file table first (IORING_OP_FILES_UPDATE, an allocated
 * index), the process fd is closed, and the connect and everything after
 * use the direct descriptor.
 * Returns 0 and *conn_out: a live connection whose state area (conn_state,
 * zeroed) the caller fills at once, before any callback. No handler
 * callback runs before reactor_connect returns.
 * - connected: handler->open(conn) is called, then the connection runs as
 *   an accepted one (input/pending_output/timeouts/timer/file ops/jobs/
 *   close); conn_peer_text() is the address (from the start, so it can be
 *   logged in close() after a failure too).
 * - failed or timed out: handler->open is never called; handler->close(conn)
 *   is called and conn_connect_error(conn) gives the -errno there
 *   (-ETIMEDOUT for the timeout, -ECONNREFUSED, -ENETUNREACH, ...; with
 *   direct sockets also -ENFILE when the file table is full).
 * Before open(), the caller may not start timers, file operations or jobs
 * on the connection (asserted); reactor_conn_poke() for it is ignored.
 * Returns -EAGAIN when no slot is free (conn_capacity reached), -ESHUTDOWN
 * when the reactor is draining, -EAFNOSUPPORT, -EINVAL (address_len wrong,
 * timeout_ms 0), or -errno of socket(2). Outbound connections count in
 * connections_open but not in connections_total (accepted ones) nor in
 * ip_limit (that bounds peers that connect to us). conn_listener_protocol()
 * is -1 for them. While draining, shutdown(conn, is_forced) is called for
 * connected ones too; a connect in flight is cancelled (close with
 * -ECANCELED). */
int reactor_connect(struct reactor *reactor, const struct conn_handler *handler,
                    const struct sockaddr *address, socklen_t address_len, uint32_t timeout_ms,
                    struct conn **conn_out);

/* 0 once connected; the connect's -errno (see reactor_connect) once it
 * failed; -EINPROGRESS before it finished. */
int conn_connect_error(const struct conn *conn);

/* Outbound connection: start client TLS beneath the protocol once the
 * send in flight (if any) is done. The protocol must have nothing else
 * queued (as after the "220" to its STARTTLS): its pending_output() is not
 * asked again until the handshake is done, and what it gives then is
 * encrypted. Bytes the server sent after its 220, before the handshake,
 * are thrown away unread (as conn_tls_start does on the server side).
 * tls comes from tls_conn_new_client() (core/tls.h) and belongs to the
 * reactor from this call on, whatever it returns: freed at close, and at
 * once when this returns an error. The reactor sends the ClientHello
 * itself (no input needed) and runs the handshake; input arriving
 * meanwhile is TLS records. handler->pending_output() and ->input() see
 * plaintext only after the handshake is done: the first pending_output()
 * call after conn_tls_start_client() happens once it is established
 * (conn_tls_session() is then non-NULL; conn_tls_is_active() is true from
 * the start of the handshake). A failed handshake closes the connection
 * (close() as usual; conn_tls_failure(conn) gives the reason text until
 * close returns). The handler's read_timeout_ms() bounds each read of the
 * handshake as any other. Returns 0, -EALREADY (TLS on or starting),
 * -EINVAL (not an outbound connection, or not connected yet). */
int conn_tls_start_client(struct conn *conn, struct tls_conn *tls);

/* The TLS session beneath a connection once established, else NULL (for
 * tls_conn_is_verified / tls_conn_verify_error / version / cipher). For an
 * outbound connection it stays valid in close(). */
const struct tls_conn *conn_tls_session(const struct conn *conn);
/* Why TLS failed (the handshake or a record broke, or the connection
 * closed before the handshake was done), or NULL. Valid until close()
 * returns for an outbound connection (an accepted one drops its TLS
 * state just before its close(), as it always did). */
const char *conn_tls_failure(const struct conn *conn);

/* A reactor-wide service hook (the delivery agent's scheduler). Any
 * thread, once per reactor (asserted): fn(arg) runs on the reactor's
 * thread at most once per loop turn, when reactor_hook_wake() was called
 * since its last run or the deadline it returned passed. fn returns the
 * milliseconds until it wants to run again without a wake
 * (REACTOR_HOOK_IDLE: only when woken). The reactor keeps one
 * IORING_OP_TIMEOUT armed for that deadline (re-armed only when it moves
 * earlier, or after it fires). The first run happens on the first loop
 * turn after reactor_hook_set. While draining, fn still runs (it must wind
 * down); the reactor does not wait for it to exit: draining ends when
 * connections and jobs are done, as without a hook. */
#define REACTOR_HOOK_IDLE UINT32_MAX
void reactor_hook_set(struct reactor *reactor, uint32_t (*fn)(void *arg), void *arg);
/* Any thread, never blocks: have the hook run soon (coalesces; uses the
 * eventfd wake only when the reactor sleeps, like reactor_job_complete). */
void reactor_hook_wake(struct reactor *reactor);
/* Whether the reactor is draining (on its thread): the hook stops starting
 * work. */
bool reactor_is_draining(const struct reactor *reactor);

/* On the reactor's thread (the hook): hand a job with no connection to
 * the worker pool; job->done(job, NULL) runs on this reactor later. The
 * reactor waits for it when draining like any job. Returns 0, or -EAGAIN
 * when the pool's queue is full. */
int reactor_job_submit(struct reactor *reactor, struct job *job);

/* The reactor running on this thread, or NULL. */
struct reactor *reactor_current(void);
uint32_t reactor_index(const struct reactor *reactor);

/* Quiescence for shared read-only tables swapped at run time (SIGHUP):
 * a reactor records the global epoch at the top of each loop turn, before
 * it waits, and holds no table pointer across turns. So once every reactor
 * has seen epoch E (after reactor_wake), nothing refers to a table that was
 * replaced before E was set, and it may be freed. */
uint64_t reactor_epoch_advance(void);
bool reactor_epoch_reached(const struct reactor *reactor, uint64_t epoch);

/* The reactor's counters into out, cq_overflow read from the kernel's
 * ring, and its latency histogram added into latency (any thread, while
 * the reactor runs). */
void reactor_stats_read(const struct reactor *reactor, struct stats_reactor *out,
                        struct histogram *latency);

/* ---- for handlers, on the reactor's own thread -------------------------- */

/* The reactor's counters, for a handler to count protocol events in with
 * stats_add() (core/stats.h). Only this reactor's thread writes them. */
struct reactor_stats *reactor_stats(struct reactor *reactor);

/* Protocol state of a connection (handler->state_bytes, 64-byte aligned). */
void *conn_state(struct conn *conn);
struct reactor *conn_reactor(struct conn *conn);
const char *conn_peer_text(const struct conn *conn); /* "127.0.0.1" / "IPv6:::1" */
int conn_listener_protocol(const struct conn *conn);
/* The peer is on this machine (127.0.0.0/8, ::1, or ::ffff:127.x): such
 * traffic never leaves it, so protocols treat it as secure, as Dovecot does. */
bool conn_peer_is_loopback(const struct conn *conn);

/* Open a file asynchronously (IORING_OP_OPENAT, path relative to dir_fd
 * as openat(2) takes it); handler->file_done gets the fd or -errno. path
 * must stay valid until file_done. One file operation per connection at a
 * time. */
void conn_file_openat(struct conn *conn, int dir_fd, const char *path, int flags,
                      unsigned mode);

/* Write len bytes at offset (IORING_OP_WRITE); file_done gets the byte count
 * or -errno. A short write is the handler's to finish. */
void conn_file_write(struct conn *conn, int fd, const void *bytes, size_t len, uint64_t offset);

/* fdatasync the file (IORING_OP_FSYNC); file_done gets 0 or -errno. */
void conn_file_sync(struct conn *conn, int fd);

/* Hand a job to the worker pool; job->done runs on this reactor later.
 * Returns 0, or -EAGAIN when the pool's queue is full. */
int conn_job_submit(struct conn *conn, struct job *job);

/* The same bookkeeping for a job that skips the worker pool because some
 * other thread (the committer) finishes it with reactor_job_complete: the
 * connection and the reactor wait for its done() just the same. */
void conn_job_hold(struct conn *conn, struct job *job);

/* Called by a worker (or any thread) when a job finished: queue it for its
 * reactor and wake that reactor. */
void reactor_job_complete(struct job *job);

/* Close a file and optionally unlink path (relative to dir_fd) without
 * blocking this thread. path is copied. Failures are logged. */
void reactor_file_discard(struct reactor *reactor, int fd, int dir_fd, const char *path);

/* TLS beneath the protocol (core/tls.h does the cryptography; the
 * reactor moves the bytes). With TLS the handler's input() gets plaintext
 * and its pending_output() is encrypted; output_sent() then means "taken
 * by TLS". File ranges are read a record at a time and encrypted, never
 * copied whole.
 *
 * STARTTLS: the handler has queued its "go ahead" reply and consumed the
 * command line. Once everything queued is sent, TLS begins; whatever the
 * client sent after the command is thrown away unread (the CVE-2011-0411
 * command injection class), so the protocol's next input is the first
 * plaintext of the TLS session. Returns 0, or -ENOTSUP when the listener
 * has no TLS or TLS is already on. */
int conn_tls_start(struct conn *conn);
/* Whether STARTTLS can be offered: the listener has TLS and it is not on. */
bool conn_tls_can_start(const struct conn *conn);
/* TLS is on (or starting) beneath this connection. */
bool conn_is_tls(const struct conn *conn);
/* TLS has begun: the STARTTLS reply is out, and whatever pending_output()
 * gives from now on is encrypted (ManageSieve's capabilities, which the
 * server sends unasked once TLS is on, wait for this). */
bool conn_tls_is_active(const struct conn *conn);
/* After the handshake: "TLSv1.3", "TLS_AES_256_GCM_SHA384" and the
 * cipher's bits, for a Received header. false before or without TLS. */
bool conn_tls_describe(const struct conn *conn, const char **version_out,
                       const char **cipher_out, int *bits_out);

/* Look at this connection again: send output, feed held input, close. Call
 * after changing protocol state outside of a handler callback. */
void conn_kick(struct conn *conn);

/* One timer per connection (handler->timer when it fires; a closing
 * connection's timer is cancelled). */
void conn_timer_start(struct conn *conn, uint32_t ms);

/* The connection's slot number on its reactor (for reactor_conn_poke). */
uint32_t conn_slot(const struct conn *conn);

/* Any thread, never blocks: have the reactor call handler->poke for the
 * connection in slot, soon, on its own thread. Pokes of one slot coalesce
 * until delivered. */
void reactor_conn_poke(struct reactor *reactor, uint32_t slot);

#endif
