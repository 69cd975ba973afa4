/*
 * core/reactor.c - the per-core event loop on io_uring.
 *
 * Owns, per thread: one io_uring, one SO_REUSEPORT socket per listen
 * address (multishot accept, or 16 single accepts into the ring's file
 * table with direct sockets), a provided-buffer ring for receives, the
 * connection slots and one protocol-state area per handler (mappings made
 * once at start, touched only when used), and the lock-free stacks of
 * finished jobs and pokes coming back from other threads, woken through an
 * always-armed eventfd read. Knows nothing of mail: protocols are struct
 * conn_handler.
 *
 * TLS (core/tls) sits between the socket and the protocol when the
 * listener asks for it or the protocol starts it (STARTTLS): ciphertext is
 * decrypted into a per-connection plaintext buffer the protocol reads
 * from, and its output and file ranges are encrypted on the way out.
 *
 * Receives are single-shot with a provided buffer and a linked timeout,
 * armed only while the protocol wants input: that is the backpressure. A
 * buffer whose bytes the protocol has not consumed stays with the
 * connection (one at most) until it has. Sends go straight from the
 * protocol's bounded output buffer, with a linked timeout, so a slow reader
 * costs a bounded buffer and is dropped after send_timeout.
 *
 * Outbound connections (reactor_connect, for the delivery agent) get a
 * slot like accepted ones: socket(2), into the ring's file table with
 * direct sockets, then IORING_OP_CONNECT under a linked timeout; no
 * handler callback runs before the connect is done, then they run exactly
 * like accepted ones (client TLS is started by the protocol with
 * conn_tls_start_client). A reactor-wide hook (reactor_hook_set: the
 * agent's scheduler) runs at most once per loop turn, when woken or when
 * its deadline (one absolute IORING_OP_TIMEOUT) passed.
 *
 * Closing runs in order: cancel everything on the fd, collect every CQE,
 * close the fd, return the held buffer, let the protocol release its state,
 * free the slot. user_data packs op kind, slot and slot generation; a
 * completion for an older generation cannot happen (the slot is freed only
 * when no op is in flight) and is asserted.
 */
#define _GNU_SOURCE
#include "core/reactor.h"

#include <arpa/inet.h>
#include <ck_pr.h>
#include <ck_stack.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/assertions.h"
#include "core/ip_limit.h"
#include "core/log.h"
#include "core/pipe_pool.h"
#include "core/tls.h"
#include "core/workers.h"

#define REACTOR_BUFFER_GROUP 1
#define REACTOR_LISTENERS_MAX (LISTENER_PROTOCOL_COUNT * LISTEN_ADDRESSES_MAX)
#define REACTOR_TICK_MS 1000
#define REACTOR_LISTEN_BACKLOG 4096
#define REACTOR_CQE_BATCH 256
/* splice: the pipes one reactor may have at once (two fds each); a round
 * moves up to what its pipe holds (core/pipe_pool). */
#define REACTOR_PIPES_MAX 512u
/* Direct sockets: file-table entries beyond the connection slots, for
 * sockets accepted only to be refused and ones whose close is in flight. */
#define REACTOR_DIRECT_SPARE 64u
/* Direct sockets: accepts kept in flight per listener, so a burst of
 * connections is taken many per loop turn, as multishot accept does. */
#define REACTOR_DIRECT_ACCEPTS 16u
/* State areas: one per listener's handler and one per client handler. */
#define REACTOR_STATE_AREAS_MAX (REACTOR_LISTENERS_MAX + REACTOR_CLIENT_HANDLERS_MAX)
/* job->conn_slot of a job with no connection (reactor_job_submit). */
#define REACTOR_JOB_NO_CONN UINT32_MAX
static_assert(REACTOR_JOB_NO_CONN >= (1u << 24), "no slot number can be REACTOR_JOB_NO_CONN");

enum op_kind {
    OP_ACCEPT = 1,
    OP_RECV,
    OP_RECV_TIMEOUT,
    OP_SEND,
    OP_SEND_TIMEOUT,
    OP_FILE,
    OP_CANCEL,
    OP_WAKE,
    OP_TICK,
    OP_DISCARD, /* fire-and-forget close/unlink: the result is only logged */
    OP_TIMER,   /* conn_timer_start: handler->timer */
    OP_SPLICE_IN,      /* file -> pipe */
    OP_SPLICE_OUT,     /* pipe -> socket */
    OP_SPLICE_TIMEOUT, /* guards OP_SPLICE_OUT or OP_SPLICE_POLL */
    OP_SPLICE_POLL,    /* the socket was full: wait until it takes more */
    OP_CLOSE,          /* fire-and-forget close of a direct socket (logged) */
    OP_TLS_FILE,       /* a piece of a file range read to be encrypted */
    OP_INSTALL,        /* outbound, direct sockets: socket(2)'s fd into the file table */
    OP_CONNECT,        /* outbound: the connect */
    OP_CONNECT_TIMEOUT, /* guards OP_CONNECT */
    OP_HOOK_TIMER,     /* the hook's deadline (absolute) */
};

/* Where an outbound connection is before handler->open (accepted ones
 * are CONNECT_DONE from the start: zero). */
enum connect_phase {
    CONNECT_DONE = 0,
    CONNECT_INSTALLING, /* OP_INSTALL in flight */
    CONNECT_CONNECTING, /* OP_CONNECT and its timeout in flight */
};

/* TLS beneath a connection (see conn_tls_start). */
struct conn_tls {
    struct tls_conn *tls;
    uint8_t         *plain;      /* decrypted, not yet consumed by the protocol */
    uint32_t         plain_offset;
    uint32_t         plain_len;
    uint8_t         *file_piece; /* a piece of a file range: read, then encrypted */
    uint32_t         file_offset;
    uint32_t         file_len;   /* read but not yet taken by TLS */
    bool             is_file_reading;
    bool             is_failed;      /* send what is pending (an alert), then close */
    bool             is_peer_closed; /* close_notify came: no more input */
    bool             is_close_notify_sent;
    bool             is_established_logged;
};

struct conn {
    struct reactor            *reactor;
    const struct conn_handler *handler;
    uint32_t                   slot;
    uint32_t                   generation;
    int                        fd;
    int                        protocol;
    uint32_t                   ops_in_flight;
    bool                       is_live;
    bool                       is_recv_armed;
    bool                       is_send_armed;
    bool                       is_file_busy;
    bool                       is_closing;     /* cancel submitted or about to be */
    bool                       is_cancel_sent;
    bool                       is_recv_cancel_sent; /* after the last reply */
    bool                       is_starved;     /* recv failed with ENOBUFS; retried when buffers return */
    struct conn               *starved_prev;   /* on the reactor's starved FIFO while is_starved */
    struct conn               *starved_next;
    bool                       is_ip_counted;
    bool                       is_timeout_pending; /* recv cancelled by its timer */
    uint8_t                    is_poked;       /* queued by reactor_conn_poke: ck_pr */
    ck_stack_entry_t           poke_link;      /* on the reactor's pokes while is_poked */
    bool                       is_timer_armed;
    struct __kernel_timespec   timer;
    /* Sending a file range (handler->pending_file): the pipe while it is
     * used, the bytes in it not yet sent, and the chain in flight (its
     * ops' results are looked at once all of them completed). */
    struct pipe_pair           pipe;
    uint32_t                   pipe_bytes;
    uint8_t                    splice_ops;     /* ops of the chain still out */
    bool                       is_pipe_waiting; /* on the reactor's pipe_waiters */
    bool                       is_splice_in_failed;
    bool                       is_splice_timed_out;
    bool                       is_splice_polling; /* the chain is a POLLOUT wait */
    int32_t                    splice_out_result;
    struct conn               *next_pipe_waiter;
    int32_t                    held_buffer;    /* provided buffer id, or -1 */
    uint32_t                   held_offset;
    uint32_t                   held_len;
    struct __kernel_timespec   recv_timeout;
    struct __kernel_timespec   send_timeout;
    struct sockaddr_storage    peer;
    char                       peer_text[64];
    struct conn               *next_free;
    struct tls_server         *tls_server;     /* the listener's, or NULL */
    struct conn_tls           *tls;            /* TLS on, or NULL */
    bool                       is_tls_starting; /* STARTTLS: begins once the reply is out */
    void                      *state;          /* in the handler's state area, at this slot */
    /* Outbound (reactor_connect): no handler callback before open() while
     * connect_phase is not CONNECT_DONE. */
    bool                       is_outbound;
    uint8_t                    connect_phase;   /* enum connect_phase */
    uint8_t                    connect_ops;     /* OP_CONNECT and its timeout still out */
    bool                       is_connect_timed_out;
    int32_t                    connect_result;  /* OP_CONNECT's */
    int32_t                    connect_error;   /* conn_connect_error() */
    int32_t                    socket_fd;       /* the process fd while OP_INSTALL runs */
    int32_t                    install_fd;      /* OP_INSTALL: that fd in, the table index out */
    uint32_t                   connect_timeout_ms;
    socklen_t                  peer_len;
    struct __kernel_timespec   connect_timeout;
    struct tls_conn           *tls_client;     /* conn_tls_start_client: until attached */
};

struct reactor_socket {
    int                        fd;
    int                        protocol;
    const struct conn_handler *handler;
    const struct listen_address *address;
    struct tls_server         *tls;
    bool                       is_implicit_tls;
    uint32_t                   armed;       /* bit k: accept k is in flight */
    /* Direct sockets: REACTOR_DIRECT_ACCEPTS single accepts in flight
     * (multishot cannot report the peer), each reporting it here. */
    struct sockaddr_storage    accept_peer[REACTOR_DIRECT_ACCEPTS];
    socklen_t                  accept_peer_len[REACTOR_DIRECT_ACCEPTS];
};

struct reactor {
    uint32_t               index;
    const struct config   *config;
    struct workers        *workers;
    pthread_t              thread;
    sem_t                  started;
    int                    start_error;

    struct io_uring        ring;
    /* Connections are io_uring direct descriptors (a slot of the ring's
     * file table, not of the process's fd table): cheaper per operation,
     * and the process's open-file limit then bounds each reactor, not the
     * whole daemon. conn->fd is then a table index. */
    bool                   is_direct;
    uint32_t               conn_capacity; /* slot_count, or less: the file table's room */
    int                    wake_fd;
    uint64_t               wake_value;
    /* Wake-ups are paid only when they are needed: is_sleeping is set
     * while the loop may block in the kernel, and wake_sent lets one
     * eventfd write per sleep through (see reactor_job_complete). */
    uint8_t                is_sleeping;
    uint8_t                wake_sent;
    bool                   stop_requested; /* written by other threads: ck_pr */
    bool                   is_draining;
    struct timespec        drain_deadline;
    bool                   is_drain_forced;
    uint64_t               seen_epoch; /* see reactor_epoch_advance() */

    struct reactor_listener listener_specs[REACTOR_LISTENERS_MAX];
    struct reactor_socket  sockets[REACTOR_LISTENERS_MAX];
    size_t                 socket_count;

    struct io_uring_buf_ring *buffer_ring;
    size_t                 buffer_ring_bytes;
    uint8_t               *buffers;
    uint32_t               buffer_count;
    uint32_t               buffer_bytes;
    uint32_t               buffers_out; /* held by the kernel's completions or by conns */
    uint32_t               starved_count; /* connections waiting for a free buffer */
    struct conn           *starved_head;  /* ... in the order they starved */
    struct conn           *starved_tail;

    unsigned char         *slots;
    size_t                 slot_stride;
    /* Protocol state lives apart from the slots, one area per handler,
     * each with its own stride, so an IMAP session touches the pages of
     * an IMAP state and not those of the largest protocol's. */
    struct reactor_state_area {
        const struct conn_handler *handler;
        unsigned char             *base;
        size_t                     stride;
    }                      state_areas[REACTOR_STATE_AREAS_MAX];
    size_t                 state_area_count;
    uint32_t               slot_count;
    struct conn           *free_slots;    /* given back; reused first */
    uint32_t               slots_touched; /* slots ever used: [0, slots_touched) */
    uint32_t               live_count;

    /* Finished jobs and pokes coming back from other threads: lock-free
     * stacks (push is one CAS, the reactor takes all with one exchange),
     * so no thread ever waits on another, and both are unbounded because
     * their entries live in the jobs and the slots. */
    ck_stack_t             done_jobs;
    ck_stack_t             pokes;
    uint32_t               jobs_in_flight;
    uint32_t               discards_in_flight; /* OP_CLOSE and OP_DISCARD not yet completed */

    struct __kernel_timespec tick;
    bool                   is_tick_armed;

    struct pipe_pool       pipes;         /* for splice (pending_file) */
    struct conn           *pipe_waiters;  /* FIFO of connections waiting for one */
    struct conn           *pipe_waiters_tail;

    /* The service hook (reactor_hook_set). fn is written once by any
     * thread (__atomic, release after arg); hook_woken by any thread (ck_pr). */
    uint32_t             (*hook_fn)(void *arg);
    void                  *hook_arg;
    uint8_t                hook_woken;
    uint32_t               turns_without_wait; /* in a row (see reactor_loop) */
    bool                   is_hook_timer_armed;
    uint64_t               hook_deadline_ns; /* CLOCK_MONOTONIC; UINT64_MAX: none */
    uint64_t               hook_timer_ns;    /* what the armed timer waits for */
    struct __kernel_timespec hook_timer;

    struct reactor_stats   stats; /* written by this thread only; see core/stats.h */
};

static __thread struct reactor *reactor_this_thread;
static uint64_t reactor_epoch_global;

/* Client handlers (reactor_client_handler_register): written by the main
 * thread before the first reactor_start, read-only afterwards. */
static const struct conn_handler *client_handlers[REACTOR_CLIENT_HANDLERS_MAX];
static size_t client_handler_count;
static bool is_any_reactor_started;

static void conn_pump(struct conn *conn);
static int tls_attach(struct conn *conn);
static void tls_detach(struct conn *conn);
static void tls_file_done(struct conn *conn, int result);
static void conn_begin_close(struct conn *conn);
static void pipe_give(struct conn *conn, bool is_empty);
static void direct_setup(struct reactor *reactor);
static void pipe_wait_remove(struct conn *conn);

/* ---- user_data ------------------------------------------------------------ */

static uint64_t
pack(enum op_kind kind, uint32_t slot, uint32_t generation)
{
    ASSERT(slot < (1u << 24));
    return ((uint64_t)kind << 56) | ((uint64_t)slot << 32) | generation;
}

static enum op_kind
unpack_kind(uint64_t data)
{
    return (enum op_kind)(data >> 56);
}

static uint32_t
unpack_slot(uint64_t data)
{
    return (uint32_t)(data >> 32) & 0xffffffu;
}

static uint32_t
unpack_generation(uint64_t data)
{
    return (uint32_t)data;
}

/* ---- submission ------------------------------------------------------------ */

static struct io_uring_sqe *
reactor_sqe(struct reactor *reactor)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&reactor->ring);
    for (int attempt = 0; sqe == NULL && attempt < 1000; attempt++) {
        /* SQ full: push what we have to the kernel and try again. */
        if (attempt == 0) {
            stats_add(&reactor->stats.sq_full, 1);
        }
        int rc = io_uring_submit(&reactor->ring);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
            log_error("reactor %u: io_uring_submit: %s", reactor->index, strerror(-rc));
        }
        sqe = io_uring_get_sqe(&reactor->ring);
    }
    ASSERT(sqe != NULL);
    return sqe;
}

static struct conn *
slot_at(struct reactor *reactor, uint32_t slot)
{
    ASSERT(slot < reactor->slot_count);
    return (struct conn *)(reactor->slots + (size_t)slot * reactor->slot_stride);
}

/* A free slot: one given back, else the next never used (the mapping is
 * zero there, generation 0). The caller checked that one exists. */
/* Where the state of handler's connection in slot lives. */
static void *
state_at(struct reactor *reactor, const struct conn_handler *handler, uint32_t slot)
{
    for (size_t i = 0; i < reactor->state_area_count; i++) {
        const struct reactor_state_area *area = &reactor->state_areas[i];
        if (area->handler == handler) {
            return area->base + (size_t)slot * area->stride;
        }
    }
    ASSERT(false); /* every listener's handler has an area */
    return NULL;
}

static void
state_areas_unmap(struct reactor *reactor)
{
    for (size_t i = 0; i < reactor->state_area_count; i++) {
        struct reactor_state_area *area = &reactor->state_areas[i];
        (void)munmap(area->base, area->stride * reactor->slot_count);
    }
    reactor->state_area_count = 0;
}

static struct conn *
slot_take(struct reactor *reactor)
{
    struct conn *conn = reactor->free_slots;
    if (conn != NULL) {
        reactor->free_slots = conn->next_free;
        return conn;
    }
    ASSERT(reactor->slots_touched < reactor->slot_count);
    conn = slot_at(reactor, reactor->slots_touched);
    conn->slot = reactor->slots_touched++;
    return conn;
}

/* ---- buffers ------------------------------------------------------------- */

static uint8_t *
buffer_at(struct reactor *reactor, uint32_t id)
{
    ASSERT(id < reactor->buffer_count);
    return reactor->buffers + (size_t)id * reactor->buffer_bytes;
}

static void
buffer_return(struct reactor *reactor, uint32_t id)
{
    ASSERT(reactor->buffers_out > 0);
    io_uring_buf_ring_add(reactor->buffer_ring, buffer_at(reactor, id), reactor->buffer_bytes,
                          (unsigned short)id, io_uring_buf_ring_mask(reactor->buffer_count), 0);
    io_uring_buf_ring_advance(reactor->buffer_ring, 1);
    reactor->buffers_out--;
}

static int
buffers_setup(struct reactor *reactor)
{
    reactor->buffer_count = reactor->config->recv_buffer_count;
    reactor->buffer_bytes = reactor->config->recv_buffer_bytes;
    reactor->buffer_ring_bytes = reactor->buffer_count * sizeof(struct io_uring_buf);
    void *ring_mem = mmap(NULL, reactor->buffer_ring_bytes, PROT_READ | PROT_WRITE,
                          MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (ring_mem == MAP_FAILED) {
        return -errno;
    }
    reactor->buffer_ring = ring_mem;
    size_t total = (size_t)reactor->buffer_count * reactor->buffer_bytes;
    void *data = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (data == MAP_FAILED) {
        return -errno;
    }
    reactor->buffers = data;
    io_uring_buf_ring_init(reactor->buffer_ring);
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)ring_mem,
        .ring_entries = reactor->buffer_count,
        .bgid = REACTOR_BUFFER_GROUP,
    };
    int rc = io_uring_register_buf_ring(&reactor->ring, &reg, 0);
    if (rc != 0) {
        log_error("reactor %u: provided buffer rings are not supported by this kernel: %s",
                  reactor->index, strerror(-rc));
        return rc;
    }
    for (uint32_t id = 0; id < reactor->buffer_count; id++) {
        io_uring_buf_ring_add(reactor->buffer_ring, buffer_at(reactor, id),
                              reactor->buffer_bytes, (unsigned short)id,
                              io_uring_buf_ring_mask(reactor->buffer_count), (int)id);
    }
    io_uring_buf_ring_advance(reactor->buffer_ring, (int)reactor->buffer_count);
    return 0;
}

/* ---- listeners ------------------------------------------------------------ */

/* Unix sockets (lmtp_listen = unix:/path). A path cannot be bound once per
 * reactor as SO_REUSEPORT binds a TCP port, so the first reactor to open
 * it creates the one listening socket (a stale socket file is removed
 * first, anything else at the path is left alone and is an error), and
 * every reactor accepts on a dup of it: the kernel hands each connection
 * to one of the accepts in flight, so all reactors share the work. The
 * last reactor to close it removes the file. Reactors start and stop on
 * their own threads, hence the lock (taken only then). */
#define REACTOR_UNIX_SOCKETS_MAX LISTEN_ADDRESSES_MAX

static struct {
    pthread_mutex_t lock;
    struct {
        char     path[sizeof(((struct sockaddr_un *)0)->sun_path)];
        int      fd;   /* the shared socket; each reactor holds a dup */
        uint32_t refs; /* reactors holding it */
    } entries[REACTOR_UNIX_SOCKETS_MAX];
} unix_listeners = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Create, bind and listen on a Unix socket at path with mode (octal
 * text). Returns the fd or -errno, logged. */
static int
unix_listener_create(const struct reactor *reactor, const struct listen_address *address,
                     const char *path)
{
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            log_error("reactor %u: cannot listen on %s: something that is not a socket is "
                      "there (left alone)", reactor->index, address->text);
            return -EEXIST;
        }
        /* A socket file left by an earlier run: nobody listens on it any
         * more once we are here (a second daemon would fail on its own
         * files first). */
        if (unlink(path) != 0 && errno != ENOENT) {
            int rc = -errno;
            log_error("reactor %u: cannot remove the stale socket %s: %s", reactor->index, path,
                      strerror(-rc));
            return rc;
        }
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    unsigned long mode = strtoul(reactor->config->lmtp_socket_mode, NULL, 8); /* checked */
    if (bind(fd, (const struct sockaddr *)&address->addr, address->addr_len) != 0 ||
        chmod(path, (mode_t)(mode & 0777)) != 0 || listen(fd, REACTOR_LISTEN_BACKLOG) != 0) {
        int rc = -errno;
        log_error("reactor %u: cannot listen on %s: %s", reactor->index, address->text,
                  strerror(-rc));
        (void)close(fd);
        (void)unlink(path);
        return rc;
    }
    return fd;
}

/* This reactor's descriptor of the shared Unix socket at address. */
static int
unix_listener_open(const struct reactor *reactor, const struct listen_address *address)
{
    const struct sockaddr_un *sun = (const struct sockaddr_un *)&address->addr;
    int fd = -ENOSPC;
    pthread_mutex_lock(&unix_listeners.lock);
    size_t free_index = REACTOR_UNIX_SOCKETS_MAX;
    for (size_t i = 0; i < REACTOR_UNIX_SOCKETS_MAX; i++) {
        if (unix_listeners.entries[i].refs == 0) {
            if (free_index == REACTOR_UNIX_SOCKETS_MAX) {
                free_index = i;
            }
            continue;
        }
        if (strcmp(unix_listeners.entries[i].path, sun->sun_path) == 0) {
            fd = fcntl(unix_listeners.entries[i].fd, F_DUPFD_CLOEXEC, 0);
            fd = fd >= 0 ? fd : -errno;
            if (fd >= 0) {
                unix_listeners.entries[i].refs++;
            }
            pthread_mutex_unlock(&unix_listeners.lock);
            return fd;
        }
    }
    if (free_index < REACTOR_UNIX_SOCKETS_MAX) {
        int shared = unix_listener_create(reactor, address, sun->sun_path);
        fd = shared;
        if (shared >= 0) {
            fd = fcntl(shared, F_DUPFD_CLOEXEC, 0);
            fd = fd >= 0 ? fd : -errno;
            if (fd >= 0) {
                (void)snprintf(unix_listeners.entries[free_index].path,
                               sizeof(unix_listeners.entries[free_index].path), "%s",
                               sun->sun_path);
                unix_listeners.entries[free_index].fd = shared;
                unix_listeners.entries[free_index].refs = 1;
            } else {
                (void)close(shared);
                (void)unlink(sun->sun_path);
            }
        }
    }
    pthread_mutex_unlock(&unix_listeners.lock);
    return fd;
}

/* This reactor closed its descriptor: the last one out closes the socket
 * and removes its file. */
static void
unix_listener_release(const struct listen_address *address)
{
    const struct sockaddr_un *sun = (const struct sockaddr_un *)&address->addr;
    pthread_mutex_lock(&unix_listeners.lock);
    for (size_t i = 0; i < REACTOR_UNIX_SOCKETS_MAX; i++) {
        if (unix_listeners.entries[i].refs == 0 ||
            strcmp(unix_listeners.entries[i].path, sun->sun_path) != 0) {
            continue;
        }
        if (--unix_listeners.entries[i].refs == 0) {
            (void)close(unix_listeners.entries[i].fd); /* a listening socket: nothing to flush */
            if (unlink(sun->sun_path) != 0 && errno != ENOENT) {
                log_warning("cannot remove %s: %s", sun->sun_path, strerror(errno));
            }
        }
        break;
    }
    pthread_mutex_unlock(&unix_listeners.lock);
}

static int
listener_open(struct reactor *reactor, const struct listen_address *address)
{
    if (address->addr.ss_family == AF_UNIX) {
        return unix_listener_open(reactor, address);
    }
    int fd = socket(address->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
        int rc = -errno;
        (void)close(fd);
        return rc;
    }
    if (address->addr.ss_family == AF_INET6) {
        /* "[::]:25" means IPv6 only; list 0.0.0.0 separately for IPv4. */
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    /* Accepted sockets inherit it (a direct socket cannot be given it
     * later): replies are small and already batched per turn; Nagle would
     * only add a delayed-ACK round trip to pipelined dialogues. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&address->addr, address->addr_len) != 0 ||
        listen(fd, REACTOR_LISTEN_BACKLOG) != 0) {
        int rc = -errno;
        log_error("reactor %u: cannot listen on %s: %s", reactor->index, address->text,
                  strerror(-rc));
        (void)close(fd);
        return rc;
    }
    return fd;
}

/* Accepts in flight per listener: one multishot, or for direct sockets
 * REACTOR_DIRECT_ACCEPTS single ones. Accept k of listener index carries
 * index * REACTOR_DIRECT_ACCEPTS + k in its user data. */
static uint32_t
accepts_per_listener(const struct reactor *reactor)
{
    return reactor->is_direct ? REACTOR_DIRECT_ACCEPTS : 1u;
}

static void
accept_arm(struct reactor *reactor, size_t index, uint32_t k)
{
    struct reactor_socket *socket_entry = &reactor->sockets[index];
    ASSERT(k < accepts_per_listener(reactor));
    ASSERT((socket_entry->armed & (1u << k)) == 0);
    struct io_uring_sqe *sqe = reactor_sqe(reactor);
    if (reactor->is_direct) {
        /* Into any free slot of the ring's file table; the peer's address
         * comes with it. liburing 2.3 adds one to the index it is given,
         * later ones leave ALLOC be: ALLOC - 1 means ALLOC to both. */
        socket_entry->accept_peer_len[k] = sizeof(socket_entry->accept_peer[k]);
        io_uring_prep_accept_direct(sqe, socket_entry->fd,
                                    (struct sockaddr *)&socket_entry->accept_peer[k],
                                    &socket_entry->accept_peer_len[k], SOCK_NONBLOCK,
                                    IORING_FILE_INDEX_ALLOC - 1);
    } else {
        io_uring_prep_multishot_accept(sqe, socket_entry->fd, NULL, NULL,
                                       SOCK_NONBLOCK | SOCK_CLOEXEC);
    }
    uint32_t tag = (uint32_t)index * REACTOR_DIRECT_ACCEPTS + k;
    io_uring_sqe_set_data64(sqe, pack(OP_ACCEPT, tag, 0));
    socket_entry->armed |= 1u << k;
}

/* Close the listening sockets (their accepts cancelled or never armed);
 * a Unix socket's file goes with its last holder. */
static void
listen_sockets_close(struct reactor *reactor)
{
    for (size_t i = 0; i < reactor->socket_count; i++) {
        if (reactor->sockets[i].fd >= 0) {
            (void)close(reactor->sockets[i].fd);
            reactor->sockets[i].fd = -1;
            if (reactor->sockets[i].address->addr.ss_family == AF_UNIX) {
                unix_listener_release(reactor->sockets[i].address);
            }
        }
    }
}

static void
listeners_close(struct reactor *reactor)
{
    for (size_t i = 0; i < reactor->socket_count; i++) {
        struct reactor_socket *socket_entry = &reactor->sockets[i];
        if (socket_entry->fd < 0) {
            continue;
        }
        for (uint32_t k = 0; k < accepts_per_listener(reactor); k++) {
            if ((socket_entry->armed & (1u << k)) == 0) {
                continue;
            }
            struct io_uring_sqe *sqe = reactor_sqe(reactor);
            uint32_t tag = (uint32_t)i * REACTOR_DIRECT_ACCEPTS + k;
            io_uring_prep_cancel64(sqe, pack(OP_ACCEPT, tag, 0), 0);
            io_uring_sqe_set_data64(sqe, pack(OP_CANCEL, 0, 0));
        }
    }
    (void)io_uring_submit(&reactor->ring);
    listen_sockets_close(reactor);
}

/* ---- connections ------------------------------------------------------------ */

static void
peer_format(const struct sockaddr_storage *peer, char *out, size_t out_bytes)
{
    char text[INET6_ADDRSTRLEN] = "unknown";
    if (peer->ss_family == AF_INET) {
        (void)inet_ntop(AF_INET, &((const struct sockaddr_in *)peer)->sin_addr, text,
                        sizeof(text));
        (void)snprintf(out, out_bytes, "%s", text);
    } else if (peer->ss_family == AF_INET6) {
        (void)inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)peer)->sin6_addr, text,
                        sizeof(text));
        (void)snprintf(out, out_bytes, "IPv6:%s", text);
    } else if (peer->ss_family == AF_UNIX) {
        (void)snprintf(out, out_bytes, "unix"); /* a local peer; the path says nothing */
    } else {
        (void)snprintf(out, out_bytes, "%s", text);
    }
}

/* Close an accepted socket without blocking: close(2) for a plain fd
 * (sockets do not linger), a fire-and-forget IORING_OP_CLOSE for a direct
 * one (its failure is logged). */
static void
socket_close(struct reactor *reactor, int fd)
{
    if (!reactor->is_direct) {
        (void)close(fd);
        return;
    }
    struct io_uring_sqe *sqe = reactor_sqe(reactor);
    io_uring_prep_close_direct(sqe, (unsigned)fd);
    io_uring_sqe_set_data64(sqe, pack(OP_CLOSE, 0, 0));
    reactor->discards_in_flight++;
}

/* Mark an operation on the connection's socket as using the ring's file
 * table when sockets are direct. */
static void
sqe_socket(struct io_uring_sqe *sqe, const struct conn *conn)
{
    if (conn->reactor->is_direct) {
        sqe->flags |= IOSQE_FIXED_FILE;
    }
}

/* Refuse without a slot: one non-blocking send of the handler's 421, then
 * close. A full socket buffer on a brand-new connection cannot happen, and
 * if the peer is already gone there is nobody to tell. */
static void
accept_refuse(struct reactor *reactor, int fd, const struct conn_handler *handler)
{
    if (!reactor->is_direct) {
        if (handler->refusal_text != NULL) {
            (void)send(fd, handler->refusal_text, strlen(handler->refusal_text),
                       MSG_DONTWAIT | MSG_NOSIGNAL);
        }
        (void)close(fd);
        return;
    }
    /* The same through the ring: a send, then the close (the text is
     * static, so nothing needs to outlive the call). */
    if (handler->refusal_text != NULL) {
        struct io_uring_sqe *sqe = reactor_sqe(reactor);
        io_uring_prep_send(sqe, fd, handler->refusal_text, strlen(handler->refusal_text),
                           MSG_DONTWAIT | MSG_NOSIGNAL);
        /* A hard link: the close runs even when the send fails. */
        sqe->flags |= IOSQE_FIXED_FILE | IOSQE_IO_HARDLINK;
        io_uring_sqe_set_data64(sqe, pack(OP_CANCEL, 0, 0)); /* result ignored */
    }
    socket_close(reactor, fd);
}

/* A free slot made into a live connection of handler (its state zeroed),
 * counted as open; the caller checked that a slot is free. */
static struct conn *
conn_take(struct reactor *reactor, const struct conn_handler *handler, int protocol, int fd)
{
    struct conn *conn = slot_take(reactor);
    uint32_t generation = conn->generation + 1;
    uint32_t slot = conn->slot;
    memset(conn, 0, sizeof(*conn));
    conn->reactor = reactor;
    conn->slot = slot;
    conn->generation = generation;
    conn->handler = handler;
    conn->protocol = protocol;
    conn->fd = fd;
    conn->socket_fd = -1;
    conn->held_buffer = -1;
    conn->pipe.read_fd = -1;
    conn->pipe.write_fd = -1;
    conn->is_live = true;
    reactor->live_count++;
    stats_set(&reactor->stats.connections_open, reactor->live_count);
    conn->state = state_at(reactor, handler, slot);
    memset(conn->state, 0, handler->state_bytes);
    return conn;
}

static void
accept_done(struct reactor *reactor, uint32_t tag, int result, uint32_t flags)
{
    size_t index = tag / REACTOR_DIRECT_ACCEPTS;
    uint32_t k = tag % REACTOR_DIRECT_ACCEPTS;
    ASSERT(index < reactor->socket_count);
    struct reactor_socket *socket_entry = &reactor->sockets[index];
    if (!(flags & IORING_CQE_F_MORE)) {
        socket_entry->armed &= ~(1u << k);
    }
    if (result < 0) {
        if (result != -ECANCELED && result != -EBADF) {
            log_warning("reactor %u: accept on %s: %s", reactor->index,
                        socket_entry->address->text, strerror(-result));
        }
    } else if (reactor->is_draining) {
        socket_close(reactor, result);
    } else {
        int fd = result;
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof(peer);
        memset(&peer, 0, sizeof(peer));
        bool has_peer = true;
        if (reactor->is_direct) {
            peer = socket_entry->accept_peer[k];
        } else {
            has_peer = getpeername(fd, (struct sockaddr *)&peer, &peer_len) == 0;
        }
        if (!has_peer) {
            (void)close(fd); /* already reset by the peer */
        } else if ((reactor->free_slots == NULL &&
                    reactor->slots_touched == reactor->slot_count) ||
                   reactor->live_count >= reactor->conn_capacity) {
            log_warning("reactor %u: connection limit %u reached, refusing", reactor->index,
                        reactor->slot_count);
            stats_add(&reactor->stats.connections_refused, 1);
            accept_refuse(reactor, fd, socket_entry->handler);
        } else if (peer.ss_family != AF_UNIX && !ip_limit_acquire(&peer)) {
            char text[64];
            peer_format(&peer, text, sizeof(text));
            log_warning("too many connections from %s, refusing", text);
            stats_add(&reactor->stats.connections_refused, 1);
            accept_refuse(reactor, fd, socket_entry->handler);
        } else {
            struct conn *conn = conn_take(reactor, socket_entry->handler,
                                          socket_entry->protocol, fd);
            conn->is_ip_counted = peer.ss_family != AF_UNIX; /* local peers are not counted */
            conn->peer = peer;
            peer_format(&peer, conn->peer_text, sizeof(conn->peer_text));
            stats_add(&reactor->stats.connections_total, 1);
            conn->tls_server = socket_entry->tls;
            /* Implicit TLS: the protocol's banner is its first plaintext. */
            if (socket_entry->is_implicit_tls && tls_attach(conn) != 0) {
                conn->is_closing = true;
            }
            conn->handler->open(conn);
            conn_pump(conn);
        }
    }
    if ((socket_entry->armed & (1u << k)) == 0 && !reactor->is_draining &&
        socket_entry->fd >= 0) {
        accept_arm(reactor, index, k);
    }
}

/* The starved FIFO: connections whose receive found no free buffer. */
static void
starved_add(struct conn *conn)
{
    struct reactor *reactor = conn->reactor;
    ASSERT(!conn->is_starved);
    conn->is_starved = true;
    conn->starved_next = NULL;
    conn->starved_prev = reactor->starved_tail;
    if (reactor->starved_tail != NULL) {
        reactor->starved_tail->starved_next = conn;
    } else {
        reactor->starved_head = conn;
    }
    reactor->starved_tail = conn;
    reactor->starved_count++;
}

static void
starved_remove(struct conn *conn)
{
    struct reactor *reactor = conn->reactor;
    ASSERT(conn->is_starved && reactor->starved_count > 0);
    if (conn->starved_prev != NULL) {
        conn->starved_prev->starved_next = conn->starved_next;
    } else {
        reactor->starved_head = conn->starved_next;
    }
    if (conn->starved_next != NULL) {
        conn->starved_next->starved_prev = conn->starved_prev;
    } else {
        reactor->starved_tail = conn->starved_prev;
    }
    conn->starved_prev = NULL;
    conn->starved_next = NULL;
    conn->is_starved = false;
    reactor->starved_count--;
}

static void
conn_release(struct conn *conn)
{
    struct reactor *reactor = conn->reactor;
    ASSERT(conn->is_live);
    ASSERT(conn->ops_in_flight == 0);
    ASSERT(!conn->is_file_busy);
    if (conn->fd >= 0) {
        /* Every op on this fd has completed: a socket close does not block
         * (no SO_LINGER). */
        socket_close(reactor, conn->fd);
        conn->fd = -1;
    }
    if (conn->held_buffer >= 0) {
        buffer_return(reactor, (uint32_t)conn->held_buffer);
        conn->held_buffer = -1;
    }
    if (conn->pipe.read_fd >= 0) {
        pipe_give(conn, conn->pipe_bytes == 0);
    }
    if (conn->is_pipe_waiting) {
        pipe_wait_remove(conn);
    }
    /* An outbound connection's close() may still ask why TLS failed and
     * what the session was (conn_tls_failure, conn_tls_session). */
    if (!conn->is_outbound) {
        tls_detach(conn);
    }
    conn->handler->close(conn);
    if (conn->is_outbound) {
        tls_detach(conn);
        tls_conn_free(&conn->tls_client); /* started but never attached */
        ASSERT(conn->socket_fd < 0);
    }
    if (conn->is_ip_counted) {
        ip_limit_release(&conn->peer);
    }
    if (conn->is_starved) {
        starved_remove(conn);
    }
    conn->is_live = false;
    conn->next_free = reactor->free_slots;
    reactor->free_slots = conn;
    ASSERT(reactor->live_count > 0);
    reactor->live_count--;
    stats_set(&reactor->stats.connections_open, reactor->live_count);
}

static void
conn_begin_close(struct conn *conn)
{
    /* Completion handlers may close and release a connection before their
     * caller looks at it again: closing a released slot is a no-op. */
    if (!conn->is_live) {
        return;
    }
    conn->is_closing = true;
    if (conn->ops_in_flight == 0 && !conn->is_file_busy) {
        conn_release(conn);
        return;
    }
    if (!conn->is_cancel_sent && conn->connect_phase == CONNECT_CONNECTING) {
        /* The connect's linked timeout goes with it. An OP_INSTALL is
         * not cancelled: it completes at once. */
        struct io_uring_sqe *sqe = reactor_sqe(conn->reactor);
        io_uring_prep_cancel64(sqe, pack(OP_CONNECT, conn->slot, conn->generation), 0);
        io_uring_sqe_set_data64(sqe, pack(OP_CANCEL, 0, 0));
        conn->is_cancel_sent = true;
    }
    if (!conn->is_cancel_sent && (conn->is_recv_armed || conn->is_send_armed)) {
        struct io_uring_sqe *sqe = reactor_sqe(conn->reactor);
        io_uring_prep_cancel_fd(sqe, conn->fd,
                                IORING_ASYNC_CANCEL_ALL |
                                    (conn->reactor->is_direct ? IORING_ASYNC_CANCEL_FD_FIXED : 0));
        io_uring_sqe_set_data64(sqe, pack(OP_CANCEL, 0, 0));
        conn->is_cancel_sent = true;
    }
    if (conn->is_timer_armed) {
        struct io_uring_sqe *sqe = reactor_sqe(conn->reactor);
        io_uring_prep_timeout_remove(sqe, pack(OP_TIMER, conn->slot, conn->generation), 0);
        io_uring_sqe_set_data64(sqe, pack(OP_CANCEL, 0, 0));
    }
}

static void
ms_to_timespec(uint32_t ms, struct __kernel_timespec *ts)
{
    ts->tv_sec = ms / 1000;
    ts->tv_nsec = (long long)(ms % 1000) * 1000000LL;
}

static void
recv_arm(struct conn *conn)
{
    struct reactor *reactor = conn->reactor;
    ASSERT(!conn->is_recv_armed);
    ASSERT(conn->held_buffer < 0);
    uint32_t timeout_ms = conn->handler->read_timeout_ms(conn);
    struct io_uring_sqe *sqe = reactor_sqe(reactor);
    io_uring_prep_recv(sqe, conn->fd, NULL, reactor->buffer_bytes, 0);
    sqe_socket(sqe, conn);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = REACTOR_BUFFER_GROUP;
    io_uring_sqe_set_data64(sqe, pack(OP_RECV, conn->slot, conn->generation));
    conn->ops_in_flight++;
    if (timeout_ms > 0) {
        sqe->flags |= IOSQE_IO_LINK;
        ms_to_timespec(timeout_ms, &conn->recv_timeout);
        struct io_uring_sqe *timeout_sqe = reactor_sqe(reactor);
        io_uring_prep_link_timeout(timeout_sqe, &conn->recv_timeout, 0);
        io_uring_sqe_set_data64(timeout_sqe,
                                pack(OP_RECV_TIMEOUT, conn->slot, conn->generation));
        conn->ops_in_flight++;
    }
    conn->is_recv_armed = true;
}

static void
send_arm(struct conn *conn, struct span output)
{
    struct reactor *reactor = conn->reactor;
    ASSERT(!conn->is_send_armed);
    ASSERT(output.len > 0);
    struct io_uring_sqe *sqe = reactor_sqe(reactor);
    io_uring_prep_send(sqe, conn->fd, output.ptr, output.len, MSG_NOSIGNAL);
    sqe_socket(sqe, conn);
    io_uring_sqe_set_data64(sqe, pack(OP_SEND, conn->slot, conn->generation));
    sqe->flags |= IOSQE_IO_LINK;
    ms_to_timespec(reactor->config->send_timeout_ms, &conn->send_timeout);
    struct io_uring_sqe *timeout_sqe = reactor_sqe(reactor);
    io_uring_prep_link_timeout(timeout_sqe, &conn->send_timeout, 0);
    io_uring_sqe_set_data64(timeout_sqe, pack(OP_SEND_TIMEOUT, conn->slot, conn->generation));
    conn->ops_in_flight += 2;
    conn->is_send_armed = true;
}

/* ---- splice: file ranges to the socket ------------------------------------ */

static void
pipe_wait_add(struct conn *conn)
{
    struct reactor *reactor = conn->reactor;
    ASSERT(!conn->is_pipe_waiting);
    conn->is_pipe_waiting = true;
    conn->next_pipe_waiter = NULL;
    if (reactor->pipe_waiters_tail != NULL) {
        reactor->pipe_waiters_tail->next_pipe_waiter = conn;
    } else {
        reactor->pipe_waiters = conn;
    }
    reactor->pipe_waiters_tail = conn;
}

static void
pipe_wait_remove(struct conn *conn)
{
    struct reactor *reactor = conn->reactor;
    ASSERT(conn->is_pipe_waiting);
    struct conn *prev = NULL;
    /* Bounded by the waiters, at most one per live connection. */
    for (struct conn *c = reactor->pipe_waiters; c != NULL; c = c->next_pipe_waiter) {
        if (c == conn) {
            if (prev != NULL) {
                prev->next_pipe_waiter = c->next_pipe_waiter;
            } else {
                reactor->pipe_waiters = c->next_pipe_waiter;
            }
            if (reactor->pipe_waiters_tail == c) {
                reactor->pipe_waiters_tail = prev;
            }
            break;
        }
        prev = c;
    }
    conn->is_pipe_waiting = false;
    conn->next_pipe_waiter = NULL;
}

/* A pipe is free again: the connections that waited for one go on (each
 * takes one or queues again, so this ends). */
static void
pipe_waiters_retry(struct reactor *reactor)
{
    struct conn *tail = reactor->pipe_waiters_tail;
    while (reactor->pipe_waiters != NULL &&
           (reactor->pipes.idle_count > 0 || reactor->pipes.live < reactor->pipes.live_max)) {
        struct conn *conn = reactor->pipe_waiters;
        pipe_wait_remove(conn);
        conn_pump(conn);
        if (conn == tail) {
            break;
        }
    }
}

static void
pipe_give(struct conn *conn, bool is_empty)
{
    pipe_pool_give(&conn->reactor->pipes, &conn->pipe, is_empty);
    conn->pipe_bytes = 0;
}

/* The next piece of a file range: what the pipe still holds goes out
 * first; else up to the pipe's capacity moves file -> pipe -> socket
 * in one linked chain, guarded by the send timeout. Returns false when
 * there is no file range to send. */
static bool
splice_arm(struct conn *conn)
{
    struct reactor *reactor = conn->reactor;
    ASSERT(!conn->is_send_armed);
    struct conn_file_range range = {.fd = -1};
    if (conn->pipe_bytes == 0 &&
        (conn->handler->pending_file == NULL || !conn->handler->pending_file(conn, &range))) {
        return false;
    }
    if (conn->is_pipe_waiting) {
        return true;
    }
    if (conn->pipe.read_fd < 0) {
        ASSERT(conn->pipe_bytes == 0);
        int rc = pipe_pool_take(&reactor->pipes, &conn->pipe);
        if (rc != 0) {
            if (rc != -EAGAIN) {
                log_warning("reactor %u: pipe for splice: %s", reactor->index, strerror(-rc));
            }
            pipe_wait_add(conn);
            return true;
        }
    }
    uint32_t len = conn->pipe_bytes;
    conn->splice_ops = 2;
    if (len == 0) {
        ASSERT(range.fd >= 0 && range.len > 0);
        len = range.len < conn->pipe.capacity ? (uint32_t)range.len : conn->pipe.capacity;
        struct io_uring_sqe *in = reactor_sqe(reactor);
        io_uring_prep_splice(in, range.fd, (int64_t)range.offset, conn->pipe.write_fd, -1, len,
                             0);
        in->flags |= IOSQE_IO_LINK;
        io_uring_sqe_set_data64(in, pack(OP_SPLICE_IN, conn->slot, conn->generation));
        conn->splice_ops = 3;
    }
    /* splice to a socket has no MSG_NOSIGNAL: a peer gone raises SIGPIPE,
     * which core/main.c ignores for the whole process. */
    struct io_uring_sqe *out = reactor_sqe(reactor);
    io_uring_prep_splice(out, conn->pipe.read_fd, -1, conn->fd, -1, len, 0);
    sqe_socket(out, conn); /* the socket (fd_out) only; the pipe is a plain fd */
    out->flags |= IOSQE_IO_LINK;
    io_uring_sqe_set_data64(out, pack(OP_SPLICE_OUT, conn->slot, conn->generation));
    ms_to_timespec(reactor->config->send_timeout_ms, &conn->send_timeout);
    struct io_uring_sqe *timeout_sqe = reactor_sqe(reactor);
    io_uring_prep_link_timeout(timeout_sqe, &conn->send_timeout, 0);
    io_uring_sqe_set_data64(timeout_sqe, pack(OP_SPLICE_TIMEOUT, conn->slot, conn->generation));
    conn->ops_in_flight += conn->splice_ops;
    conn->is_send_armed = true;
    conn->is_splice_polling = false;
    conn->is_splice_in_failed = false;
    conn->is_splice_timed_out = false;
    conn->splice_out_result = 0;
    return true;
}

/* The socket is non-blocking and splice does not wait for room the way
 * send does inside io_uring: on EAGAIN wait for POLLOUT (under the send
 * timeout), then send what the pipe holds. */
static void
splice_poll_arm(struct conn *conn)
{
    struct reactor *reactor = conn->reactor;
    struct io_uring_sqe *poll = reactor_sqe(reactor);
    io_uring_prep_poll_add(poll, conn->fd, POLLOUT);
    sqe_socket(poll, conn);
    poll->flags |= IOSQE_IO_LINK;
    io_uring_sqe_set_data64(poll, pack(OP_SPLICE_POLL, conn->slot, conn->generation));
    ms_to_timespec(reactor->config->send_timeout_ms, &conn->send_timeout);
    struct io_uring_sqe *timeout_sqe = reactor_sqe(reactor);
    io_uring_prep_link_timeout(timeout_sqe, &conn->send_timeout, 0);
    io_uring_sqe_set_data64(timeout_sqe, pack(OP_SPLICE_TIMEOUT, conn->slot, conn->generation));
    conn->splice_ops = 2;
    conn->ops_in_flight += 2;
    conn->is_send_armed = true;
    conn->is_splice_polling = true;
    conn->is_splice_timed_out = false;
    conn->splice_out_result = 0;
}

/* One op of a splice chain completed; once all did, account for it. A
 * short read from the file breaks the link (the pipe keeps what it got,
 * sent next round); a full socket waits for room; a file that ends early
 * or fails closes the connection, as does a timeout or a failed send. */
static void
splice_op_done(struct conn *conn, enum op_kind kind, int result)
{
    ASSERT(conn->splice_ops > 0);
    switch (kind) {
    case OP_SPLICE_IN:
        if (result > 0) {
            conn->pipe_bytes += (uint32_t)result;
        } else {
            conn->is_splice_in_failed = true;
            if (result < 0 && result != -ECANCELED) {
                log_warning("reactor %u: reading a file to send to %s: %s", conn->reactor->index,
                            conn->peer_text, strerror(-result));
            } else if (result == 0) {
                log_warning("reactor %u: a file to send to %s ended early",
                            conn->reactor->index, conn->peer_text);
            }
        }
        break;
    case OP_SPLICE_OUT:
    case OP_SPLICE_POLL:
        conn->splice_out_result = result;
        break;
    case OP_SPLICE_TIMEOUT:
        conn->is_splice_timed_out = result == -ETIME;
        break;
    default:
        ASSERT(false);
    }
    if (--conn->splice_ops > 0) {
        return;
    }
    conn->is_send_armed = false;
    int sent = conn->splice_out_result;
    if (conn->is_splice_polling) {
        conn->is_splice_polling = false;
        if (!conn->is_closing && (conn->is_splice_timed_out || sent < 0)) {
            log_info("reactor %u: send to %s timed out, closing", conn->reactor->index,
                     conn->peer_text);
            conn_begin_close(conn);
        }
        return; /* room, or closing: the pump sends what the pipe holds */
    }
    if (sent == -EAGAIN && !conn->is_closing && !conn->is_splice_in_failed &&
        !conn->is_splice_timed_out) {
        splice_poll_arm(conn);
        return;
    }
    if (sent > 0) {
        ASSERT((uint32_t)sent <= conn->pipe_bytes);
        conn->pipe_bytes -= (uint32_t)sent;
        stats_add(&conn->reactor->stats.bytes_out, (uint64_t)sent);
    }
    if (conn->is_closing) {
        return;
    }
    if (conn->is_splice_in_failed || conn->is_splice_timed_out ||
        (sent <= 0 && sent != -ECANCELED)) {
        if (conn->is_splice_timed_out) {
            log_info("reactor %u: send to %s timed out, closing", conn->reactor->index,
                     conn->peer_text);
        }
        conn_begin_close(conn);
        return;
    }
    if (conn->pipe_bytes == 0) {
        pipe_give(conn, true); /* idle connections hold no pipe */
    }
    if (sent > 0) {
        stats_add(&conn->reactor->stats.file_bytes_spliced, (uint64_t)sent);
        conn->handler->file_sent(conn, (size_t)sent);
    }
}

/* Decide what the connection needs next. Called after every event. */
/* Nothing more will be read: do not let a pending recv keep the connection
 * past its last reply. */
static void
recv_cancel_after_last_reply(struct conn *conn)
{
    if (conn->is_recv_armed && !conn->is_recv_cancel_sent) {
        struct io_uring_sqe *sqe = reactor_sqe(conn->reactor);
        io_uring_prep_cancel64(sqe, pack(OP_RECV, conn->slot, conn->generation), 0);
        io_uring_sqe_set_data64(sqe, pack(OP_CANCEL, 0, 0));
        conn->is_recv_cancel_sent = true;
    }
}

/* ---- TLS beneath the protocol ------------------------------------------ */

static int
tls_attach(struct conn *conn)
{
    ASSERT(conn->tls == NULL);
    struct conn_tls *t = calloc(1, sizeof(*t));
    if (t != NULL) {
        if (conn->is_outbound) {
            ASSERT(conn->tls_client != NULL);
            t->tls = conn->tls_client;
            conn->tls_client = NULL;
        } else {
            ASSERT(conn->tls_server != NULL);
            t->tls = tls_conn_new(conn->tls_server);
        }
    }
    if (t == NULL || t->tls == NULL) {
        log_warning("reactor %u: no memory for TLS with %s", conn->reactor->index,
                    conn->peer_text);
        free(t);
        return -ENOMEM;
    }
    conn->tls = t;
    if (conn->is_outbound) {
        /* The client speaks first: a call with no input makes the
         * ClientHello, which tls_pump sends. No plaintext can come before
         * the handshake. */
        uint8_t none[1];
        size_t in_used = 0;
        size_t out_len = 0;
        enum tls_status status =
            tls_conn_input(t->tls, NULL, 0, &in_used, none, sizeof(none), &out_len);
        ASSERT(in_used == 0 && out_len == 0);
        if (status != TLS_OK) {
            t->is_failed = true;
            log_info("reactor %u: TLS with %s failed: %s", conn->reactor->index,
                     conn->peer_text, tls_conn_failure(t->tls));
        }
    }
    return 0;
}

static void
tls_detach(struct conn *conn)
{
    struct conn_tls *t = conn->tls;
    if (t == NULL) {
        return;
    }
    ASSERT(!t->is_file_reading);
    tls_conn_free(&t->tls);
    free(t->plain);
    free(t->file_piece);
    free(t);
    conn->tls = NULL;
}

/* Decrypt what came in and hand the plaintext to the protocol, as far as
 * it takes it. The plaintext buffer is the only backpressure: while the
 * protocol leaves bytes in it, nothing more is decrypted, and ciphertext
 * stays in the held receive buffer. */
static void
tls_input(struct conn *conn)
{
    struct conn_tls *t = conn->tls;
    const struct conn_handler *handler = conn->handler;
    /* Each pass consumes plaintext or ciphertext, or stops. */
    for (uint32_t pass = 0; !conn->is_closing; pass++) {
        ASSERT(pass <= 2u * (conn->reactor->buffer_bytes + TLS_RECORD_PLAIN_MAX) + 2u);
        if (t->plain_len > 0) {
            if (!handler->wants_input(conn) || handler->is_closing(conn)) {
                return;
            }
            size_t used = handler->input(conn, t->plain + t->plain_offset, t->plain_len);
            ASSERT(used <= t->plain_len);
            t->plain_offset += (uint32_t)used;
            t->plain_len -= (uint32_t)used;
            if (used == 0) {
                return;
            }
            continue;
        }
        if (t->is_failed || t->is_peer_closed ||
            (conn->held_buffer < 0 && !tls_conn_has_plaintext(t->tls))) {
            return;
        }
        if (t->plain == NULL) {
            t->plain = malloc(TLS_RECORD_PLAIN_MAX);
            if (t->plain == NULL) {
                log_warning("reactor %u: no memory for TLS input from %s",
                            conn->reactor->index, conn->peer_text);
                conn_begin_close(conn);
                return;
            }
        }
        const uint8_t *in = NULL;
        size_t in_len = 0;
        if (conn->held_buffer >= 0) {
            in = buffer_at(conn->reactor, (uint32_t)conn->held_buffer) + conn->held_offset;
            in_len = conn->held_len;
        }
        size_t in_used = 0;
        size_t out_len = 0;
        enum tls_status status = tls_conn_input(t->tls, in, in_len, &in_used, t->plain,
                                                TLS_RECORD_PLAIN_MAX, &out_len);
        ASSERT(in_used <= in_len && out_len <= TLS_RECORD_PLAIN_MAX);
        if (conn->held_buffer >= 0) {
            conn->held_offset += (uint32_t)in_used;
            conn->held_len -= (uint32_t)in_used;
            if (conn->held_len == 0) {
                buffer_return(conn->reactor, (uint32_t)conn->held_buffer);
                conn->held_buffer = -1;
            }
        }
        t->plain_offset = 0;
        t->plain_len = (uint32_t)out_len;
        if (!t->is_established_logged && tls_conn_is_established(t->tls)) {
            t->is_established_logged = true;
            stats_add(&conn->reactor->stats.tls_handshakes, 1);
            log_debug("reactor %u: TLS with %s: %s %s%s", conn->reactor->index,
                      conn->peer_text, tls_conn_version(t->tls), tls_conn_cipher(t->tls),
                      tls_conn_is_resumed(t->tls) ? " (resumed)" : "");
        }
        if (status == TLS_FAILED) {
            t->is_failed = true;
            log_info("reactor %u: TLS with %s failed: %s", conn->reactor->index,
                     conn->peer_text, tls_conn_failure(t->tls));
        } else if (status == TLS_CLOSED) {
            t->is_peer_closed = true;
        }
        if (in_used == 0 && out_len == 0) {
            return; /* a record is incomplete: wait for more */
        }
    }
}

/* Read the next piece of a file range for encryption, if TLS has room
 * for all of it. */
static void
tls_file_arm(struct conn *conn, const struct conn_file_range *range)
{
    struct conn_tls *t = conn->tls;
    ASSERT(range->fd >= 0 && range->len > 0);
    if (t->file_piece == NULL) {
        t->file_piece = malloc(TLS_RECORD_PLAIN_MAX);
        if (t->file_piece == NULL) {
            log_warning("reactor %u: no memory for a TLS file piece", conn->reactor->index);
            conn_begin_close(conn);
            return;
        }
    }
    uint32_t len = range->len < TLS_RECORD_PLAIN_MAX ? (uint32_t)range->len
                                                      : TLS_RECORD_PLAIN_MAX;
    struct io_uring_sqe *sqe = reactor_sqe(conn->reactor);
    io_uring_prep_read(sqe, range->fd, t->file_piece, len, range->offset);
    io_uring_sqe_set_data64(sqe, pack(OP_TLS_FILE, conn->slot, conn->generation));
    conn->ops_in_flight++;
    t->is_file_reading = true;
}

static void
tls_file_done(struct conn *conn, int result)
{
    struct conn_tls *t = conn->tls;
    ASSERT(t != NULL && t->is_file_reading);
    t->is_file_reading = false;
    if (conn->is_closing) {
        return;
    }
    if (result <= 0) {
        /* The protocol announced the length: a file that ends early or
         * fails cannot be made good, as with splice. */
        log_warning("reactor %u: reading a file range for %s: %s", conn->reactor->index,
                    conn->peer_text, result == 0 ? "file ended early" : strerror(-result));
        conn_begin_close(conn);
        return;
    }
    t->file_offset = 0;
    t->file_len = (uint32_t)result;
}

/* Plaintext from the protocol (bytes, then file pieces) into TLS. */
static void
tls_output(struct conn *conn)
{
    struct conn_tls *t = conn->tls;
    const struct conn_handler *handler = conn->handler;
    if (t->is_failed || !tls_conn_is_established(t->tls)) {
        return;
    }
    /* Each pass moves bytes into TLS or stops. */
    for (uint32_t pass = 0; !conn->is_closing; pass++) {
        ASSERT(pass <= TLS_OUTPUT_MAX + 2u);
        if (t->file_len > 0) {
            long n = tls_conn_write(t->tls, t->file_piece + t->file_offset, t->file_len);
            if (n <= 0) {
                t->is_failed = n < 0;
                return;
            }
            t->file_offset += (uint32_t)n;
            t->file_len -= (uint32_t)n;
            stats_add(&conn->reactor->stats.file_bytes_encrypted, (uint64_t)n);
            handler->file_sent(conn, (size_t)n);
            continue;
        }
        if (t->is_file_reading) {
            return; /* nothing may overtake the file's bytes */
        }
        struct span out = handler->pending_output(conn);
        if (out.len > 0) {
            long n = tls_conn_write(t->tls, (const uint8_t *)out.ptr, out.len);
            if (n <= 0) {
                t->is_failed = n < 0;
                return;
            }
            handler->output_sent(conn, (size_t)n);
            continue;
        }
        struct conn_file_range range = {.fd = -1};
        if (handler->pending_file != NULL &&
            tls_conn_output(t->tls).len + TLS_RECORD_PLAIN_MAX + 512u <= TLS_OUTPUT_MAX &&
            handler->pending_file(conn, &range)) {
            tls_file_arm(conn, &range);
        }
        return;
    }
}

static void
tls_pump(struct conn *conn)
{
    struct conn_tls *t = conn->tls;
    const struct conn_handler *handler = conn->handler;
    tls_input(conn);
    if (conn->is_closing) {
        conn_begin_close(conn);
        return;
    }
    tls_output(conn);
    if (conn->is_closing) {
        conn_begin_close(conn);
        return;
    }
    bool is_ending = t->is_failed || handler->is_closing(conn) ||
                     (t->is_peer_closed && t->plain_len == 0);
    if (is_ending && !t->is_failed && !t->is_close_notify_sent) {
        t->is_close_notify_sent = true;
        tls_conn_close_notify(t->tls);
    }
    struct span cipher = tls_conn_output(t->tls);
    if (cipher.len > 0 && !conn->is_send_armed) {
        send_arm(conn, cipher);
    }
    bool has_output = cipher.len > 0 || t->is_file_reading || t->file_len > 0;
    if (is_ending) {
        if (!has_output && !conn->is_send_armed) {
            conn_begin_close(conn);
            return;
        }
        recv_cancel_after_last_reply(conn);
        return;
    }
    bool is_drained = t->plain_len == 0 && !tls_conn_has_plaintext(t->tls);
    if (conn->held_buffer < 0 && !conn->is_recv_armed && !conn->is_starved && is_drained &&
        (handler->wants_input(conn) || !tls_conn_is_established(t->tls))) {
        recv_arm(conn);
    }
    if (is_drained && !has_output && !conn->is_send_armed && conn->held_buffer < 0) {
        /* At rest: a TLS connection waiting for its client costs little. */
        free(t->plain);
        t->plain = NULL;
        free(t->file_piece);
        t->file_piece = NULL;
        tls_conn_trim(t->tls);
    }
}

static void
conn_pump(struct conn *conn)
{
    if (!conn->is_live || conn->connect_phase != CONNECT_DONE) {
        return; /* an outbound connection is nobody's before open() */
    }
    if (conn->tls != NULL) {
        tls_pump(conn);
        return;
    }
    const struct conn_handler *handler = conn->handler;
    if (conn->is_tls_starting && conn->held_buffer >= 0) {
        /* Sent after STARTTLS, before our reply: never read. */
        buffer_return(conn->reactor, (uint32_t)conn->held_buffer);
        conn->held_buffer = -1;
    }
    /* Held input first: the protocol may have become ready for it. Each
     * pass consumes bytes or stops, so this ends within held_len passes. */
    for (uint32_t pass = 0; conn->held_buffer >= 0 && !conn->is_closing && !conn->is_tls_starting;
         pass++) {
        ASSERT(pass <= conn->reactor->buffer_bytes);
        if (!handler->wants_input(conn) || handler->is_closing(conn)) {
            break;
        }
        const uint8_t *bytes = buffer_at(conn->reactor, (uint32_t)conn->held_buffer);
        size_t used = handler->input(conn, bytes + conn->held_offset, conn->held_len);
        ASSERT(used <= conn->held_len);
        conn->held_offset += (uint32_t)used;
        conn->held_len -= (uint32_t)used;
        if (conn->held_len == 0) {
            buffer_return(conn->reactor, (uint32_t)conn->held_buffer);
            conn->held_buffer = -1;
        } else if (used == 0) {
            break;
        }
    }
    if (conn->is_closing) {
        conn_begin_close(conn);
        return;
    }
    /* A file range half in the pipe goes on before anything else. */
    struct span output = {0};
    bool has_output = false;
    if (conn->pipe_bytes > 0) {
        has_output = true;
        if (!conn->is_send_armed) {
            (void)splice_arm(conn);
        }
    } else if (conn->is_tls_starting && conn->is_outbound) {
        /* Client TLS: the protocol's next output is the session's first
         * plaintext, asked for once the handshake is done. */
    } else {
        output = handler->pending_output(conn);
        has_output = output.len > 0;
        if (output.len > 0 && !conn->is_send_armed) {
            send_arm(conn, output);
        } else if (output.len == 0 && !conn->is_send_armed) {
            has_output = splice_arm(conn);
        }
    }
    if (conn->is_tls_starting && !has_output && !conn->is_send_armed) {
        /* The STARTTLS reply is out: TLS from here on. */
        conn->is_tls_starting = false;
        if (tls_attach(conn) != 0) {
            conn_begin_close(conn);
            return;
        }
        tls_pump(conn);
        return;
    }
    if (handler->is_closing(conn)) {
        if (!has_output && !conn->is_send_armed) {
            conn_begin_close(conn);
            return;
        }
        recv_cancel_after_last_reply(conn);
        return;
    }
    if (conn->held_buffer < 0 && !conn->is_recv_armed && !conn->is_starved &&
        !conn->is_tls_starting && handler->wants_input(conn)) {
        recv_arm(conn);
    }
}

static void
recv_done(struct conn *conn, int result, uint32_t flags)
{
    struct reactor *reactor = conn->reactor;
    ASSERT(conn->is_recv_armed);
    conn->is_recv_armed = false;
    if (result > 0) {
        stats_add(&reactor->stats.bytes_in, (uint64_t)result);
    }
    if (flags & IORING_CQE_F_BUFFER) {
        uint32_t id = flags >> IORING_CQE_BUFFER_SHIFT;
        reactor->buffers_out++;
        if (result <= 0 || conn->is_closing || conn->is_tls_starting) {
            /* While STARTTLS switches over, what arrives was sent after
             * the command, before our reply: thrown away unread. */
            buffer_return(reactor, id);
        } else {
            ASSERT(conn->held_buffer < 0);
            conn->held_buffer = (int32_t)id;
            conn->held_offset = 0;
            conn->held_len = (uint32_t)result;
        }
    }
    if (conn->is_closing) {
        return;
    }
    if (result == 0) {
        conn_begin_close(conn); /* the peer closed */
        return;
    }
    if (result == -ENOBUFS) {
        /* Every receive buffer is in use: try again once one comes back. */
        starved_add(conn);
        return;
    }
    if (result == -ECANCELED) {
        if (conn->handler->is_closing(conn)) {
            return; /* we cancelled it after the last reply */
        }
        /* Only the linked timeout cancels a receive otherwise. */
        conn->handler->timeout(conn);
        return;
    }
    if (result < 0) {
        if (result != -ECONNRESET && result != -EPIPE) {
            log_debug("reactor %u: recv from %s: %s", reactor->index, conn->peer_text,
                      strerror(-result));
        }
        conn_begin_close(conn);
        return;
    }
}

static void
send_done(struct conn *conn, int result)
{
    ASSERT(conn->is_send_armed);
    conn->is_send_armed = false;
    if (result > 0) {
        stats_add(&conn->reactor->stats.bytes_out, (uint64_t)result);
    }
    if (conn->is_closing) {
        return;
    }
    if (result == -ECANCELED) {
        log_info("reactor %u: send to %s timed out, closing", conn->reactor->index,
                 conn->peer_text);
        conn_begin_close(conn);
        return;
    }
    if (result <= 0) {
        conn_begin_close(conn);
        return;
    }
    if (conn->tls != NULL) {
        tls_conn_output_sent(conn->tls->tls, (size_t)result);
        return;
    }
    conn->handler->output_sent(conn, (size_t)result);
}

/* ---- outbound connections --------------------------------------------- */

/* The connect under its linked timeout (connect_timeout_ms). */
static void
connect_arm(struct conn *conn)
{
    struct reactor *reactor = conn->reactor;
    ASSERT(conn->is_outbound && conn->fd >= 0);
    conn->connect_phase = CONNECT_CONNECTING;
    if (io_uring_sq_space_left(&reactor->ring) < 2) {
        /* The connect and its timeout must go to the kernel in one
         * submission, or the link breaks and the timeout is refused. */
        int rc = io_uring_submit(&reactor->ring);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
            log_error("reactor %u: io_uring_submit: %s", reactor->index, strerror(-rc));
        }
    }
    struct io_uring_sqe *sqe = reactor_sqe(reactor);
    io_uring_prep_connect(sqe, conn->fd, (const struct sockaddr *)&conn->peer, conn->peer_len);
    sqe_socket(sqe, conn);
    sqe->flags |= IOSQE_IO_LINK;
    io_uring_sqe_set_data64(sqe, pack(OP_CONNECT, conn->slot, conn->generation));
    ms_to_timespec(conn->connect_timeout_ms, &conn->connect_timeout);
    struct io_uring_sqe *timeout_sqe = reactor_sqe(reactor);
    io_uring_prep_link_timeout(timeout_sqe, &conn->connect_timeout, 0);
    io_uring_sqe_set_data64(timeout_sqe, pack(OP_CONNECT_TIMEOUT, conn->slot, conn->generation));
    conn->ops_in_flight += 2;
    conn->connect_ops = 2;
}

/* Direct sockets: socket(2)'s fd is in the file table now (result 1, the
 * index in install_fd) or not (-errno). The process fd is closed either
 * way: the table holds its own reference. */
static void
install_done(struct conn *conn, int result)
{
    ASSERT(conn->connect_phase == CONNECT_INSTALLING);
    ASSERT(conn->socket_fd >= 0);
    (void)close(conn->socket_fd); /* not connected yet: nothing to flush, no block */
    conn->socket_fd = -1;
    int rc = 0;
    if (result == 1) {
        ASSERT(conn->install_fd >= 0);
        conn->fd = conn->install_fd;
    } else {
        rc = result < 0 ? result : -EIO;
    }
    if (conn->is_closing) {
        return; /* drained meanwhile: connect_error says so already */
    }
    if (rc != 0) {
        log_warning("reactor %u: no room in the socket table for a connection to %s: %s",
                    conn->reactor->index, conn->peer_text, strerror(-rc));
        conn->connect_error = rc;
        conn_begin_close(conn);
        return;
    }
    connect_arm(conn);
}

/* One of the connect and its timeout completed; once both did, the
 * connection is open (handler->open) or closes with the reason. A connect
 * cancelled by its timeout reports -ECANCELED, the timeout -ETIME. */
static void
connect_op_done(struct conn *conn, enum op_kind kind, int result)
{
    ASSERT(conn->connect_phase == CONNECT_CONNECTING);
    ASSERT(conn->connect_ops > 0);
    if (kind == OP_CONNECT) {
        conn->connect_result = result;
    } else if (result == -ETIME) {
        conn->is_connect_timed_out = true;
    }
    if (--conn->connect_ops > 0) {
        return;
    }
    if (conn->is_closing) {
        return; /* cancelled (drain): connect_error is -ECANCELED */
    }
    int rc = conn->connect_result;
    if (rc == -ECANCELED && conn->is_connect_timed_out) {
        rc = -ETIMEDOUT;
    }
    if (rc > 0) {
        rc = -EIO; /* connect returns 0 or -errno */
    }
    if (rc < 0) {
        log_debug("reactor %u: connect to %s: %s", conn->reactor->index, conn->peer_text,
                  strerror(-rc));
        conn->connect_error = rc;
        conn_begin_close(conn);
        return;
    }
    conn->connect_phase = CONNECT_DONE;
    conn->connect_error = 0;
    conn->handler->open(conn);
    /* conn_completion pumps it next, as after an accept. */
}

static void
conn_completion(struct reactor *reactor, enum op_kind kind, uint64_t data, int result,
                uint32_t flags)
{
    struct conn *conn = slot_at(reactor, unpack_slot(data));
    ASSERT(conn->is_live);
    ASSERT(conn->generation == unpack_generation(data));
    ASSERT(conn->ops_in_flight > 0);
    conn->ops_in_flight--;
    switch (kind) {
    case OP_RECV:
        recv_done(conn, result, flags);
        break;
    case OP_SEND:
        send_done(conn, result);
        break;
    case OP_RECV_TIMEOUT:
    case OP_SEND_TIMEOUT:
        break; /* the op it guards reports what happened */
    case OP_SPLICE_IN:
    case OP_SPLICE_OUT:
    case OP_SPLICE_TIMEOUT:
    case OP_SPLICE_POLL:
        splice_op_done(conn, kind, result);
        break;
    case OP_TLS_FILE:
        tls_file_done(conn, result);
        break;
    case OP_INSTALL:
        install_done(conn, result);
        break;
    case OP_CONNECT:
    case OP_CONNECT_TIMEOUT:
        connect_op_done(conn, kind, result);
        break;
    case OP_FILE:
        ASSERT(conn->is_file_busy);
        conn->is_file_busy = false;
        conn->handler->file_done(conn, result);
        break;
    case OP_TIMER:
        ASSERT(conn->is_timer_armed);
        conn->is_timer_armed = false;
        if (!conn->is_closing) {
            conn->handler->timer(conn);
        }
        break;
    default:
        ASSERT(false);
    }
    if (conn->is_closing) {
        conn_begin_close(conn);
    } else {
        conn_pump(conn);
    }
}

/* ---- jobs -------------------------------------------------------------- */

/* A poke for a slot came through the pokes stack (see reactor_conn_poke). The
 * connection there may have closed, or be a new one, since: a poke only
 * asks "look again", so a spurious one is harmless. */
static void
poke_deliver(struct reactor *reactor, uint32_t slot)
{
    struct conn *conn = slot_at(reactor, slot);
    ck_pr_store_8(&conn->is_poked, 0);
    if (!conn->is_live || conn->is_closing || conn->connect_phase != CONNECT_DONE ||
        conn->handler->poke == NULL) {
        return;
    }
    conn->handler->poke(conn);
    conn_kick(conn);
}

/* All entries of a stack, oldest first (a stack gives them newest first). */
static ck_stack_entry_t *
stack_take_oldest_first(ck_stack_t *stack)
{
    ck_stack_entry_t *newest = ck_stack_batch_pop_upmc(stack);
    ck_stack_entry_t *oldest = NULL;
    while (newest != NULL) {
        ck_stack_entry_t *next = newest->next;
        newest->next = oldest;
        oldest = newest;
        newest = next;
    }
    return oldest;
}

static void
jobs_collect(struct reactor *reactor)
{
    /* Each batch is bounded: a connection has one job and one poke queued
     * at most; what arrives meanwhile waits for the next turn. */
    ck_stack_entry_t *entry = stack_take_oldest_first(&reactor->pokes);
    while (entry != NULL) {
        ck_stack_entry_t *next = entry->next;
        struct conn *conn = (struct conn *)((char *)entry - offsetof(struct conn, poke_link));
        poke_deliver(reactor, conn->slot);
        entry = next;
    }
    entry = stack_take_oldest_first(&reactor->done_jobs);
    while (entry != NULL) {
        /* done() may free the job, its link with it. */
        ck_stack_entry_t *next = entry->next;
        struct job *job = (struct job *)((char *)entry - offsetof(struct job, done_link));
        entry = next;
        ASSERT(job->reactor == reactor);
        ASSERT(reactor->jobs_in_flight > 0);
        reactor->jobs_in_flight--;
        if (job->conn_slot == REACTOR_JOB_NO_CONN) {
            job->done(job, NULL); /* reactor_job_submit: nobody to pump */
            continue;
        }
        /* A connection with a job out is never released, so it is there. */
        struct conn *conn = slot_at(reactor, job->conn_slot);
        ASSERT(conn->is_live);
        ASSERT(conn->generation == job->conn_generation);
        ASSERT(conn->ops_in_flight > 0);
        conn->ops_in_flight--;
        if (conn->is_closing) {
            job->done(job, NULL);
            conn_begin_close(conn);
        } else {
            job->done(job, conn);
            conn_pump(conn);
        }
    }
}

/* ---- the loop ------------------------------------------------------------ */

static void
wake_arm(struct reactor *reactor)
{
    struct io_uring_sqe *sqe = reactor_sqe(reactor);
    io_uring_prep_read(sqe, reactor->wake_fd, &reactor->wake_value, sizeof(reactor->wake_value),
                       0);
    io_uring_sqe_set_data64(sqe, pack(OP_WAKE, 0, 0));
}

static void
tick_arm(struct reactor *reactor)
{
    ms_to_timespec(REACTOR_TICK_MS, &reactor->tick);
    struct io_uring_sqe *sqe = reactor_sqe(reactor);
    io_uring_prep_timeout(sqe, &reactor->tick, 0, 0);
    io_uring_sqe_set_data64(sqe, pack(OP_TICK, 0, 0));
    reactor->is_tick_armed = true;
}

static bool
deadline_passed(const struct timespec *deadline)
{
    struct timespec now;
    (void)clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > deadline->tv_sec ||
           (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

static void
drain_begin(struct reactor *reactor)
{
    reactor->is_draining = true;
    (void)clock_gettime(CLOCK_MONOTONIC, &reactor->drain_deadline);
    reactor->drain_deadline.tv_sec += reactor->config->shutdown_timeout_ms / 1000;
    reactor->drain_deadline.tv_nsec += (long)(reactor->config->shutdown_timeout_ms % 1000) * 1000000L;
    if (reactor->drain_deadline.tv_nsec >= 1000000000L) {
        reactor->drain_deadline.tv_sec++;
        reactor->drain_deadline.tv_nsec -= 1000000000L;
    }
    listeners_close(reactor);
    for (uint32_t i = 0; i < reactor->slots_touched; i++) {
        struct conn *conn = slot_at(reactor, i);
        if (conn->is_live && !conn->is_closing && conn->connect_phase != CONNECT_DONE) {
            conn->connect_error = -ECANCELED; /* an outbound connect in flight */
            conn_begin_close(conn);
        } else if (conn->is_live && !conn->is_closing) {
            conn->handler->shutdown(conn, false);
            conn_pump(conn);
        }
    }
}

static void
drain_force(struct reactor *reactor)
{
    reactor->is_drain_forced = true;
    for (uint32_t i = 0; i < reactor->slots_touched; i++) {
        struct conn *conn = slot_at(reactor, i);
        if (conn->is_live && !conn->is_closing && conn->connect_phase != CONNECT_DONE) {
            conn->connect_error = -ECANCELED;
            conn_begin_close(conn);
        } else if (conn->is_live && !conn->is_closing) {
            conn->handler->shutdown(conn, true);
            conn_begin_close(conn);
        }
    }
}

/* Re-arm receives that found no free buffer, now that some are back:
 * the longest waiting first, and only as many as there are free buffers,
 * so one returned buffer does not wake every starved connection. */
static void
starved_retry(struct reactor *reactor)
{
    uint32_t free_buffers = reactor->buffer_count - reactor->buffers_out;
    for (uint32_t n = 0; n < free_buffers && reactor->starved_head != NULL; n++) {
        struct conn *conn = reactor->starved_head;
        ASSERT(conn->is_live && conn->is_starved);
        starved_remove(conn);
        conn_pump(conn);
    }
}

static void
tick_done(struct reactor *reactor)
{
    reactor->is_tick_armed = false;
    if (reactor->is_draining && !reactor->is_drain_forced &&
        deadline_passed(&reactor->drain_deadline)) {
        drain_force(reactor);
    }
}

/* ---- the hook ------------------------------------------------------------ */

static uint64_t
monotonic_ns(void)
{
    struct timespec now;
    (void)clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

/* A wake is pending for a hook that is set (a wake before the hook is
 * kept for it, but must not keep the loop from sleeping). */
static bool
hook_is_woken(struct reactor *reactor)
{
    return ck_pr_load_8(&reactor->hook_woken) != 0 &&
           __atomic_load_n(&reactor->hook_fn, __ATOMIC_ACQUIRE) != NULL;
}

/* One timer for the hook's deadline: armed when there is none, moved when
 * the deadline comes earlier, left alone when it moves later (it fires,
 * finds the deadline not reached and is armed again). */
static void
hook_timer_ensure(struct reactor *reactor)
{
    uint64_t deadline_ns = reactor->hook_deadline_ns;
    if (deadline_ns == UINT64_MAX) {
        return;
    }
    if (reactor->is_hook_timer_armed && reactor->hook_timer_ns <= deadline_ns) {
        return;
    }
    reactor->hook_timer.tv_sec = (long long)(deadline_ns / 1000000000u);
    reactor->hook_timer.tv_nsec = (long long)(deadline_ns % 1000000000u);
    struct io_uring_sqe *sqe = reactor_sqe(reactor);
    if (reactor->is_hook_timer_armed) {
        /* -ENOENT when it fired meanwhile: its CQE then re-arms it. */
        io_uring_prep_timeout_update(sqe, &reactor->hook_timer, pack(OP_HOOK_TIMER, 0, 0),
                                     IORING_TIMEOUT_ABS);
        io_uring_sqe_set_data64(sqe, pack(OP_CANCEL, 0, 0));
    } else {
        io_uring_prep_timeout(sqe, &reactor->hook_timer, 0, IORING_TIMEOUT_ABS);
        io_uring_sqe_set_data64(sqe, pack(OP_HOOK_TIMER, 0, 0));
        reactor->is_hook_timer_armed = true;
    }
    reactor->hook_timer_ns = deadline_ns;
}

/* Once per loop turn: run the hook when woken or due. */
static void
hook_run(struct reactor *reactor)
{
    uint32_t (*fn)(void *) = __atomic_load_n(&reactor->hook_fn, __ATOMIC_ACQUIRE);
    if (fn == NULL) {
        return;
    }
    uint64_t now_ns = monotonic_ns();
    if (ck_pr_load_8(&reactor->hook_woken) == 0 && now_ns < reactor->hook_deadline_ns) {
        hook_timer_ensure(reactor);
        return;
    }
    /* Cleared before the run: a wake during it runs the hook again. */
    ck_pr_store_8(&reactor->hook_woken, 0);
    ck_pr_fence_memory();
    uint32_t next_ms = fn(reactor->hook_arg);
    if (next_ms == REACTOR_HOOK_IDLE) {
        reactor->hook_deadline_ns = UINT64_MAX;
    } else {
        reactor->hook_deadline_ns = monotonic_ns() + (uint64_t)next_ms * 1000000u;
    }
    hook_timer_ensure(reactor);
}

static void
reactor_loop(struct reactor *reactor)
{
    wake_arm(reactor);
    for (size_t i = 0; i < reactor->socket_count; i++) {
        for (uint32_t k = 0; k < accepts_per_listener(reactor); k++) {
            accept_arm(reactor, i, k);
        }
    }
    /* The one loop meant to run until shutdown. */
    for (;;) {
        ck_pr_store_64(&reactor->seen_epoch, ck_pr_load_64(&reactor_epoch_global));
        if (!reactor->is_draining && ck_pr_load_8((uint8_t *)&reactor->stop_requested)) {
            drain_begin(reactor);
        }
        /* A last session's close is still queued when it is released: the
         * peer sees its FIN only once that has been submitted and done. */
        if (reactor->is_draining && reactor->live_count == 0 && reactor->jobs_in_flight == 0 &&
            reactor->discards_in_flight == 0) {
            break;
        }
        if (reactor->is_draining && !reactor->is_tick_armed) {
            tick_arm(reactor); /* only the drain deadline needs a clock */
        }
        /* Announce the sleep, then look at the done stacks once more: a job
         * finished before the announcement is seen here, one finished
         * after it sees is_sleeping and writes the eventfd. */
        ck_pr_store_8(&reactor->wake_sent, 0);
        ck_pr_store_8(&reactor->is_sleeping, 1);
        ck_pr_fence_memory();
        unsigned wait_for = ck_pr_load_ptr(&reactor->done_jobs.head) != NULL ||
                                    ck_pr_load_ptr(&reactor->pokes.head) != NULL ||
                                    hook_is_woken(reactor)
                                ? 0
                                : 1;
        log_flush(); /* the turn's lines, in one write, before any sleep */
        int rc = io_uring_submit_and_wait(&reactor->ring, wait_for);
        reactor->turns_without_wait = wait_for == 0 ? reactor->turns_without_wait + 1 : 0;
        if (reactor->turns_without_wait >= 2 && rc >= 0) {
            /* With DEFER_TASKRUN, completions wait as task work until we
             * enter the kernel for events, which a turn that does not wait
             * skips: from the second such turn in a row, let them in, or a
             * reactor kept busy by jobs or its hook would starve its
             * sockets. */
            int events_rc = io_uring_get_events(&reactor->ring);
            if (events_rc < 0 && events_rc != -EINTR && events_rc != -EAGAIN &&
                events_rc != -EBUSY) {
                rc = events_rc;
            }
        }
        ck_pr_store_8(&reactor->is_sleeping, 0);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY && rc != -ETIME) {
            log_error("reactor %u: io_uring_submit_and_wait: %s", reactor->index,
                      strerror(-rc));
            ASSERT(false);
        }
        struct io_uring_cqe *cqes[REACTOR_CQE_BATCH];
        unsigned count = io_uring_peek_batch_cqe(&reactor->ring, cqes, REACTOR_CQE_BATCH);
        for (unsigned i = 0; i < count; i++) {
            uint64_t data = io_uring_cqe_get_data64(cqes[i]);
            int result = cqes[i]->res;
            uint32_t flags = cqes[i]->flags;
            enum op_kind kind = unpack_kind(data);
            switch (kind) {
            case OP_ACCEPT:
                accept_done(reactor, unpack_slot(data), result, flags);
                break;
            case OP_WAKE:
                if (result < 0 && result != -ECANCELED) {
                    log_error("reactor %u: eventfd read: %s", reactor->index, strerror(-result));
                }
                wake_arm(reactor);
                break;
            case OP_TICK:
                tick_done(reactor);
                break;
            case OP_HOOK_TIMER:
                /* -ETIME when it fired; the deadline is looked at below. */
                reactor->is_hook_timer_armed = false;
                break;
            case OP_CANCEL:
                break;
            case OP_DISCARD:
                ASSERT(reactor->discards_in_flight > 0);
                reactor->discards_in_flight--;
                if (result < 0) {
                    log_warning("reactor %u: discarding a spool file: %s", reactor->index,
                                strerror(-result));
                }
                break;
            case OP_CLOSE:
                ASSERT(reactor->discards_in_flight > 0);
                reactor->discards_in_flight--;
                if (result < 0) {
                    log_warning("reactor %u: closing a connection: %s", reactor->index,
                                strerror(-result));
                }
                break;
            default:
                conn_completion(reactor, kind, data, result, flags);
                break;
            }
        }
        io_uring_cq_advance(&reactor->ring, count);
        jobs_collect(reactor);
        if (reactor->starved_count > 0 && reactor->buffers_out < reactor->buffer_count) {
            starved_retry(reactor);
        }
        if (reactor->pipe_waiters != NULL) {
            pipe_waiters_retry(reactor);
        }
        hook_run(reactor);
    }
}

static int
reactor_setup(struct reactor *reactor)
{
    const struct config *config = reactor->config;
    struct io_uring_params params;
    memset(&params, 0, sizeof(params));
    params.cq_entries = config->ring_entries * 4;
    params.flags = IORING_SETUP_CQSIZE;
    if (config->sqpoll) {
        params.flags |= IORING_SETUP_SQPOLL;
        params.sq_thread_idle = config->sqpoll_idle_ms;
    } else {
        params.flags |= IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    }
    int rc = io_uring_queue_init_params(config->ring_entries, &reactor->ring, &params);
    if (rc < 0 && !config->sqpoll) {
        /* Older kernels lack DEFER_TASKRUN (6.1): fall back to plain setup. */
        memset(&params, 0, sizeof(params));
        params.cq_entries = config->ring_entries * 4;
        params.flags = IORING_SETUP_CQSIZE;
        rc = io_uring_queue_init_params(config->ring_entries, &reactor->ring, &params);
    }
    if (rc < 0) {
        log_error("reactor %u: io_uring setup failed: %s", reactor->index, strerror(-rc));
        return rc;
    }
    if (!(params.features & IORING_FEAT_NODROP)) {
        log_error("reactor %u: kernel io_uring lacks IORING_FEAT_NODROP (need Linux 5.19+)",
                  reactor->index);
        return -ENOTSUP;
    }
    /* Spool opens, writes and fsyncs block in the file system, so the
     * kernel runs them on this ring's io-wq threads; its default of four
     * per CPU queues a thousand connections' fsyncs behind each other. */
    if (config->reactor_io_workers > 0) {
        unsigned int workers[2] = { config->reactor_io_workers, 0 }; /* 0: unbounded as is */
        rc = io_uring_register_iowq_max_workers(&reactor->ring, workers);
        if (rc < 0) {
            log_warning("reactor %u: cannot set io-wq workers to %u: %s", reactor->index,
                        config->reactor_io_workers, strerror(-rc));
        }
    }
    rc = buffers_setup(reactor);
    if (rc != 0) {
        return rc;
    }
    direct_setup(reactor);
    reactor->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (reactor->wake_fd < 0) {
        return -errno;
    }
    for (size_t i = 0; i < reactor->socket_count; i++) {
        int fd = listener_open(reactor, reactor->listener_specs[i].address);
        if (fd < 0) {
            return fd;
        }
        reactor->sockets[i].fd = fd;
    }
    return 0;
}

/* A file table for direct sockets: a slot per connection plus room for
 * the ones being refused or closed, within what the kernel allows one
 * ring (the open-file limit). Without it (the kernel says no, or
 * direct_sockets = no) connections are plain file descriptors. */
static void
direct_setup(struct reactor *reactor)
{
    reactor->conn_capacity = reactor->slot_count;
    if (!reactor->config->direct_sockets) {
        return;
    }
    struct rlimit limit;
    uint64_t size = (uint64_t)reactor->slot_count + REACTOR_DIRECT_SPARE;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY &&
        size > limit.rlim_cur) {
        size = limit.rlim_cur;
    }
    if (size <= 2 * REACTOR_DIRECT_SPARE) {
        return;
    }
    int rc = io_uring_register_files_sparse(&reactor->ring, (unsigned)size);
    if (rc < 0) {
        log_info("reactor %u: no direct sockets (%s): using file descriptors", reactor->index,
                 strerror(-rc));
        return;
    }
    reactor->is_direct = true;
    if (size - REACTOR_DIRECT_SPARE < reactor->conn_capacity) {
        reactor->conn_capacity = (uint32_t)(size - REACTOR_DIRECT_SPARE);
        log_info("reactor %u: %u connections at most (the open-file limit sizes its socket "
                 "table)", reactor->index, reactor->conn_capacity);
    }
}

static void
reactor_pin(struct reactor *reactor)
{
    const char *cpus = reactor->config->reactor_cpus;
    if (cpus[0] == '\0') {
        return;
    }
    /* reactor_cpus lists CPUs ("0,2,4" or "0-3"); reactor i takes the i-th. */
    int list[1024];
    size_t n = 0;
    const char *p = cpus;
    while (*p != '\0' && n < 1024) {
        char *end;
        long lo = strtol(p, &end, 10);
        long hi = lo;
        if (end == p) {
            break;
        }
        if (*end == '-') {
            p = end + 1;
            hi = strtol(p, &end, 10);
        }
        for (long c = lo; c <= hi && n < 1024; c++) {
            list[n++] = (int)c;
        }
        p = *end == ',' ? end + 1 : end;
        if (*end != ',' ) {
            break;
        }
    }
    if (n == 0) {
        return;
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(list[reactor->index % n], &set);
    int rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    if (rc != 0) {
        log_warning("reactor %u: cannot pin to CPU %d: %s", reactor->index,
                    list[reactor->index % n], strerror(rc));
    }
}

static void *
reactor_main(void *arg)
{
    struct reactor *reactor = arg;
    reactor_this_thread = reactor;
    reactor_pin(reactor);
    reactor->start_error = reactor_setup(reactor);
    if (reactor->start_error != 0) {
        /* Nothing is armed yet: close what opened, so a Unix socket's
         * file goes with the last holder. */
        listen_sockets_close(reactor);
    }
    sem_post(&reactor->started);
    if (reactor->start_error != 0) {
        return NULL;
    }
    log_buffer_begin();
    reactor_loop(reactor);
    log_flush();
    return NULL;
}

/* A state area for handler's connections, unless it has one. Mappings,
 * like the slots: pages are touched only when used, so an idle daemon
 * costs little however many slots it may hold. Returns 0 or -ENOMEM. */
static int
state_area_add(struct reactor *reactor, const struct conn_handler *handler)
{
    for (size_t k = 0; k < reactor->state_area_count; k++) {
        if (reactor->state_areas[k].handler == handler) {
            return 0;
        }
    }
    ASSERT(reactor->state_area_count < REACTOR_STATE_AREAS_MAX);
    struct reactor_state_area *area = &reactor->state_areas[reactor->state_area_count];
    area->handler = handler;
    area->stride = (handler->state_bytes + 63) & ~(size_t)63;
    if (area->stride == 0) {
        area->stride = 64;
    }
    void *base = mmap(NULL, area->stride * reactor->slot_count, PROT_READ | PROT_WRITE,
                      MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (base == MAP_FAILED) {
        return -ENOMEM;
    }
    area->base = base;
    reactor->state_area_count++;
    return 0;
}

/* ---- public ------------------------------------------------------------ */

int
reactor_start(uint32_t index, const struct config *config,
              const struct reactor_listener *listeners, size_t listener_count,
              struct workers *workers, struct reactor **reactor_out)
{
    ASSERT(listener_count <= REACTOR_LISTENERS_MAX);
    struct reactor *reactor = calloc(1, sizeof(*reactor));
    if (reactor == NULL) {
        return -ENOMEM;
    }
    reactor->index = index;
    reactor->config = config;
    reactor->workers = workers;
    reactor->wake_fd = -1;
    reactor->socket_count = listener_count;
    pipe_pool_init(&reactor->pipes, REACTOR_PIPES_MAX);
    histogram_init(&reactor->stats.latency_us);
    reactor->slot_count = config->max_connections;
    for (size_t i = 0; i < listener_count; i++) {
        reactor->listener_specs[i] = listeners[i];
        reactor->sockets[i].fd = -1;
        reactor->sockets[i].protocol = listeners[i].protocol;
        reactor->sockets[i].handler = listeners[i].handler;
        reactor->sockets[i].address = listeners[i].address;
        reactor->sockets[i].tls = listeners[i].tls;
        reactor->sockets[i].is_implicit_tls = listeners[i].is_implicit_tls;
        ASSERT(!listeners[i].is_implicit_tls || listeners[i].tls != NULL);
        if (state_area_add(reactor, listeners[i].handler) != 0) {
            state_areas_unmap(reactor);
            free(reactor);
            return -ENOMEM;
        }
    }
    is_any_reactor_started = true;
    for (size_t i = 0; i < client_handler_count; i++) {
        if (state_area_add(reactor, client_handlers[i]) != 0) {
            state_areas_unmap(reactor);
            free(reactor);
            return -ENOMEM;
        }
    }
    reactor->hook_deadline_ns = UINT64_MAX;
    reactor->slot_stride = (sizeof(struct conn) + 63) & ~(size_t)63;
    size_t slots_bytes = reactor->slot_stride * reactor->slot_count;
    void *slots = mmap(NULL, slots_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE,
                       -1, 0);
    if (slots == MAP_FAILED) {
        state_areas_unmap(reactor);
        free(reactor);
        return -ENOMEM;
    }
    reactor->slots = slots;
    /* No free list is built here: slots past slots_touched are free by
     * definition (see slot_take), so none is written before it is used. */
    ck_stack_init(&reactor->done_jobs);
    ck_stack_init(&reactor->pokes);
    if (sem_init(&reactor->started, 0, 0) != 0) {
        return -errno;
    }
    int rc = pthread_create(&reactor->thread, NULL, reactor_main, reactor);
    if (rc != 0) {
        return -rc;
    }
    while (sem_wait(&reactor->started) != 0 && errno == EINTR) {
    }
    if (reactor->start_error != 0) {
        rc = reactor->start_error;
        (void)pthread_join(reactor->thread, NULL);
        return rc;
    }
    *reactor_out = reactor;
    return 0;
}

void
reactor_wake(struct reactor *reactor)
{
    uint64_t one = 1;
    ssize_t n;
    do {
        n = write(reactor->wake_fd, &one, sizeof(one));
    } while (n < 0 && errno == EINTR);
    /* EAGAIN means the counter is already huge: the reactor will wake. */
    ASSERT(n == (ssize_t)sizeof(one) || errno == EAGAIN);
}

void
reactor_request_stop(struct reactor *reactor)
{
    ck_pr_store_8((uint8_t *)&reactor->stop_requested, 1);
    reactor_wake(reactor);
}

void
reactor_join(struct reactor **reactor_ptr)
{
    struct reactor *reactor = *reactor_ptr;
    if (reactor == NULL) {
        return;
    }
    (void)pthread_join(reactor->thread, NULL);
    io_uring_queue_exit(&reactor->ring);
    pipe_pool_destroy(&reactor->pipes);
    (void)close(reactor->wake_fd);
    (void)munmap(reactor->slots, reactor->slot_stride * reactor->slot_count);
    state_areas_unmap(reactor);
    (void)munmap(reactor->buffers, (size_t)reactor->buffer_count * reactor->buffer_bytes);
    (void)munmap(reactor->buffer_ring, reactor->buffer_ring_bytes);
    (void)sem_destroy(&reactor->started);
    free(reactor);
    *reactor_ptr = NULL;
}

struct reactor *
reactor_current(void)
{
    return reactor_this_thread;
}

uint32_t
reactor_index(const struct reactor *reactor)
{
    return reactor->index;
}

uint64_t
reactor_epoch_advance(void)
{
    return ck_pr_faa_64(&reactor_epoch_global, 1) + 1;
}

bool
reactor_epoch_reached(const struct reactor *reactor, uint64_t epoch)
{
    return ck_pr_load_64((uint64_t *)&reactor->seen_epoch) >= epoch;
}

void
reactor_stats_read(const struct reactor *reactor, struct stats_reactor *out,
                   struct histogram *latency)
{
    stats_reactor_from(out, &reactor->stats);
    /* The kernel counts completions it could not post to the CQ ring; it
     * writes the word, so read it once, as liburing does. The ring was set
     * up before reactor_start() returned and lives until reactor_join(). */
    out->cq_overflow = __atomic_load_n(reactor->ring.cq.koverflow, __ATOMIC_RELAXED);
    histogram_merge(latency, &reactor->stats.latency_us);
}

struct reactor_stats *
reactor_stats(struct reactor *reactor)
{
    return &reactor->stats;
}

int
conn_tls_start(struct conn *conn)
{
    if (!conn_tls_can_start(conn)) {
        return -ENOTSUP;
    }
    conn->is_tls_starting = true;
    return 0;
}

bool
conn_tls_can_start(const struct conn *conn)
{
    return conn->tls_server != NULL && conn->tls == NULL && !conn->is_tls_starting;
}

bool
conn_is_tls(const struct conn *conn)
{
    return conn->tls != NULL || conn->is_tls_starting;
}

bool
conn_tls_is_active(const struct conn *conn)
{
    return conn->tls != NULL;
}

bool
conn_tls_describe(const struct conn *conn, const char **version_out, const char **cipher_out,
                  int *bits_out)
{
    if (conn->tls == NULL || !tls_conn_is_established(conn->tls->tls)) {
        return false;
    }
    *version_out = tls_conn_version(conn->tls->tls);
    *cipher_out = tls_conn_cipher(conn->tls->tls);
    *bits_out = tls_conn_cipher_bits(conn->tls->tls);
    return true;
}

bool
conn_peer_is_loopback(const struct conn *conn)
{
    if (conn->peer.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&conn->peer;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (conn->peer.ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)&conn->peer)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return conn->peer.ss_family == AF_UNIX; /* a Unix socket peer is on this machine */
}

void *
conn_state(struct conn *conn)
{
    return conn->state;
}

struct reactor *
conn_reactor(struct conn *conn)
{
    return conn->reactor;
}

const char *
conn_peer_text(const struct conn *conn)
{
    return conn->peer_text;
}

int
conn_listener_protocol(const struct conn *conn)
{
    return conn->protocol;
}

void
conn_file_openat(struct conn *conn, int dir_fd, const char *path, int flags, unsigned mode)
{
    ASSERT(conn->connect_phase == CONNECT_DONE);
    ASSERT(!conn->is_file_busy);
    struct io_uring_sqe *sqe = reactor_sqe(conn->reactor);
    io_uring_prep_openat(sqe, dir_fd, path, flags, mode);
    io_uring_sqe_set_data64(sqe, pack(OP_FILE, conn->slot, conn->generation));
    conn->is_file_busy = true;
    conn->ops_in_flight++;
}

void
conn_file_sync(struct conn *conn, int fd)
{
    ASSERT(conn->connect_phase == CONNECT_DONE);
    ASSERT(!conn->is_file_busy);
    struct io_uring_sqe *sqe = reactor_sqe(conn->reactor);
    io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
    io_uring_sqe_set_data64(sqe, pack(OP_FILE, conn->slot, conn->generation));
    conn->is_file_busy = true;
    conn->ops_in_flight++;
}

void
conn_file_write(struct conn *conn, int fd, const void *bytes, size_t len, uint64_t offset)
{
    ASSERT(conn->connect_phase == CONNECT_DONE);
    ASSERT(!conn->is_file_busy);
    ASSERT(len <= UINT32_MAX);
    struct io_uring_sqe *sqe = reactor_sqe(conn->reactor);
    io_uring_prep_write(sqe, fd, bytes, (unsigned)len, offset);
    io_uring_sqe_set_data64(sqe, pack(OP_FILE, conn->slot, conn->generation));
    conn->is_file_busy = true;
    conn->ops_in_flight++;
}

int
conn_job_submit(struct conn *conn, struct job *job)
{
    ASSERT(conn->connect_phase == CONNECT_DONE);
    struct reactor *reactor = conn->reactor;
    job->reactor = reactor;
    job->conn_slot = conn->slot;
    job->conn_generation = conn->generation;
    if (!workers_submit(reactor->workers, reactor->index, job)) {
        return -EAGAIN;
    }
    reactor->jobs_in_flight++;
    /* The connection stays while its job runs, so the reply has somewhere
     * to go; a vanished peer only means done() gets NULL. */
    conn->ops_in_flight++;
    return 0;
}

void
conn_job_hold(struct conn *conn, struct job *job)
{
    ASSERT(conn->connect_phase == CONNECT_DONE);
    struct reactor *reactor = conn->reactor;
    job->reactor = reactor;
    job->conn_slot = conn->slot;
    job->conn_generation = conn->generation;
    reactor->jobs_in_flight++;
    conn->ops_in_flight++;
}

void
reactor_job_complete(struct job *job)
{
    struct reactor *reactor = job->reactor;
    ASSERT(reactor != NULL);
    ck_stack_push_upmc(&reactor->done_jobs, &job->done_link);
    /* A reactor that is awake collects the job at the end of its turn; one
     * that sleeps gets one eventfd write however many jobs arrive. */
    ck_pr_fence_memory();
    if (ck_pr_load_8(&reactor->is_sleeping) && ck_pr_fas_8(&reactor->wake_sent, 1) == 0) {
        reactor_wake(reactor);
    }
}

void
reactor_file_discard(struct reactor *reactor, int fd, int dir_fd, const char *path)
{
    if (fd >= 0) {
        struct io_uring_sqe *sqe = reactor_sqe(reactor);
        io_uring_prep_close(sqe, fd);
        io_uring_sqe_set_data64(sqe, pack(OP_DISCARD, 0, 0));
        reactor->discards_in_flight++;
    }
    if (path != NULL && path[0] != '\0') {
        struct io_uring_sqe *sqe = reactor_sqe(reactor);
        io_uring_prep_unlinkat(sqe, dir_fd, path, 0);
        io_uring_sqe_set_data64(sqe, pack(OP_DISCARD, 0, 0));
        reactor->discards_in_flight++;
        /* The kernel copies the path when the SQE is submitted; submit now
         * so the caller's buffer may go away. */
        int rc = io_uring_submit(&reactor->ring);
        if (rc < 0) {
            log_error("reactor %u: submitting unlink of %s: %s", reactor->index, path,
                      strerror(-rc));
        }
    }
}

void
conn_timer_start(struct conn *conn, uint32_t ms)
{
    ASSERT(conn->connect_phase == CONNECT_DONE);
    ASSERT(!conn->is_timer_armed);
    ASSERT(conn->handler->timer != NULL);
    ms_to_timespec(ms, &conn->timer);
    struct io_uring_sqe *sqe = reactor_sqe(conn->reactor);
    io_uring_prep_timeout(sqe, &conn->timer, 0, 0);
    io_uring_sqe_set_data64(sqe, pack(OP_TIMER, conn->slot, conn->generation));
    conn->is_timer_armed = true;
    conn->ops_in_flight++;
}

uint32_t
conn_slot(const struct conn *conn)
{
    return conn->slot;
}

void
reactor_conn_poke(struct reactor *reactor, uint32_t slot)
{
    ASSERT(reactor != NULL);
    ASSERT(slot < reactor->slot_count);
    struct conn *conn = slot_at(reactor, slot);
    if (ck_pr_fas_8(&conn->is_poked, 1) != 0) {
        return; /* already queued */
    }
    /* is_poked keeps the link on the stack once at most. */
    ck_stack_push_upmc(&reactor->pokes, &conn->poke_link);
    ck_pr_fence_memory();
    if (ck_pr_load_8(&reactor->is_sleeping) && ck_pr_fas_8(&reactor->wake_sent, 1) == 0) {
        reactor_wake(reactor);
    }
}

void
conn_kick(struct conn *conn)
{
    if (conn->is_closing) {
        conn_begin_close(conn);
    } else {
        conn_pump(conn);
    }
}

/* ---- outbound connections and the hook ----------------------------------- */

int
reactor_client_handler_register(const struct conn_handler *handler)
{
    ASSERT(handler != NULL);
    ASSERT(!is_any_reactor_started); /* the reactors map their state areas at start */
    for (size_t i = 0; i < client_handler_count; i++) {
        if (client_handlers[i] == handler) {
            return -EALREADY;
        }
    }
    if (client_handler_count >= REACTOR_CLIENT_HANDLERS_MAX) {
        return -E2BIG;
    }
    client_handlers[client_handler_count++] = handler;
    return 0;
}

static bool
client_handler_is_registered(const struct conn_handler *handler)
{
    for (size_t i = 0; i < client_handler_count; i++) {
        if (client_handlers[i] == handler) {
            return true;
        }
    }
    return false;
}

int
reactor_connect(struct reactor *reactor, const struct conn_handler *handler,
                const struct sockaddr *address, socklen_t address_len, uint32_t timeout_ms,
                struct conn **conn_out)
{
    ASSERT(reactor != NULL && reactor == reactor_this_thread);
    ASSERT(handler != NULL && client_handler_is_registered(handler));
    ASSERT(address != NULL && conn_out != NULL);
    *conn_out = NULL;
    if (reactor->is_draining) {
        return -ESHUTDOWN;
    }
    if (address_len < (socklen_t)sizeof(sa_family_t)) {
        return -EINVAL;
    }
    socklen_t len = 0;
    if (address->sa_family == AF_INET) {
        len = (socklen_t)sizeof(struct sockaddr_in);
    } else if (address->sa_family == AF_INET6) {
        len = (socklen_t)sizeof(struct sockaddr_in6);
    } else {
        return -EAFNOSUPPORT;
    }
    if (address_len < len || address_len > (socklen_t)sizeof(struct sockaddr_storage) ||
        timeout_ms == 0) {
        return -EINVAL;
    }
    if ((reactor->free_slots == NULL && reactor->slots_touched == reactor->slot_count) ||
        reactor->live_count >= reactor->conn_capacity) {
        return -EAGAIN;
    }
    int fd = socket(address->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    /* As on the listeners (accepted sockets inherit it): commands and
     * replies are small and batched per turn; Nagle would add a round
     * trip to the end of each message. A failure only costs latency. */
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

    struct conn *conn = conn_take(reactor, handler, -1, -1);
    conn->is_outbound = true;
    conn->connect_error = -EINPROGRESS;
    conn->connect_timeout_ms = timeout_ms;
    memcpy(&conn->peer, address, len);
    conn->peer_len = len;
    peer_format(&conn->peer, conn->peer_text, sizeof(conn->peer_text));
    if (reactor->is_direct) {
        conn->connect_phase = CONNECT_INSTALLING;
        conn->socket_fd = fd;
        conn->install_fd = fd;
        struct io_uring_sqe *sqe = reactor_sqe(reactor);
        io_uring_prep_files_update(sqe, &conn->install_fd, 1, (int)IORING_FILE_INDEX_ALLOC);
        io_uring_sqe_set_data64(sqe, pack(OP_INSTALL, conn->slot, conn->generation));
        conn->ops_in_flight++;
    } else {
        conn->fd = fd;
        connect_arm(conn);
    }
    *conn_out = conn;
    return 0;
}

int
conn_connect_error(const struct conn *conn)
{
    return conn->connect_error;
}

int
conn_tls_start_client(struct conn *conn, struct tls_conn *tls)
{
    ASSERT(tls != NULL);
    int rc = 0;
    if (!conn->is_outbound || conn->connect_phase != CONNECT_DONE) {
        rc = -EINVAL;
    } else if (conn->tls != NULL || conn->is_tls_starting || conn->tls_client != NULL) {
        rc = -EALREADY;
    }
    if (rc != 0) {
        tls_conn_free(&tls); /* it is ours whatever happens */
        return rc;
    }
    conn->tls_client = tls;
    conn->is_tls_starting = true;
    return 0;
}

const struct tls_conn *
conn_tls_session(const struct conn *conn)
{
    if (conn->tls == NULL || !tls_conn_is_established(conn->tls->tls)) {
        return NULL;
    }
    return conn->tls->tls;
}

const char *
conn_tls_failure(const struct conn *conn)
{
    const struct conn_tls *t = conn->tls;
    if (t == NULL) {
        return NULL;
    }
    if (t->is_failed) {
        const char *reason = tls_conn_failure(t->tls);
        return reason[0] != '\0' ? reason : "TLS failed";
    }
    if (conn->is_closing && !tls_conn_is_established(t->tls)) {
        return "the connection closed during the TLS handshake";
    }
    return NULL;
}

void
reactor_hook_set(struct reactor *reactor, uint32_t (*fn)(void *arg), void *arg)
{
    ASSERT(reactor != NULL && fn != NULL);
    ASSERT(__atomic_load_n(&reactor->hook_fn, __ATOMIC_ACQUIRE) == NULL); /* once */
    reactor->hook_arg = arg;
    __atomic_store_n(&reactor->hook_fn, fn, __ATOMIC_RELEASE);
    /* The first run. Not reactor_hook_wake: a wake from before the hook
     * was set may be pending, and did not keep the reactor awake. */
    ck_pr_store_8(&reactor->hook_woken, 1);
    ck_pr_fence_memory();
    if (ck_pr_load_8(&reactor->is_sleeping) && ck_pr_fas_8(&reactor->wake_sent, 1) == 0) {
        reactor_wake(reactor);
    }
}

void
reactor_hook_wake(struct reactor *reactor)
{
    ASSERT(reactor != NULL);
    if (ck_pr_fas_8(&reactor->hook_woken, 1) != 0) {
        return; /* pending already: whoever set it saw to the wake */
    }
    ck_pr_fence_memory();
    if (ck_pr_load_8(&reactor->is_sleeping) && ck_pr_fas_8(&reactor->wake_sent, 1) == 0) {
        reactor_wake(reactor);
    }
}

bool
reactor_is_draining(const struct reactor *reactor)
{
    return reactor->is_draining;
}

int
reactor_job_submit(struct reactor *reactor, struct job *job)
{
    ASSERT(reactor != NULL && reactor == reactor_this_thread);
    ASSERT(job != NULL && job->done != NULL);
    job->reactor = reactor;
    job->conn_slot = REACTOR_JOB_NO_CONN;
    job->conn_generation = 0;
    if (!workers_submit(reactor->workers, reactor->index, job)) {
        return -EAGAIN;
    }
    reactor->jobs_in_flight++;
    return 0;
}
