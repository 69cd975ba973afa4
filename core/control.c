/*
 * core/control.c - the control socket, both ends.
 *
 * Daemon side: owns the listening Unix socket, its path on disk and one
 * thread that waits in poll(2) on the socket and a stop eventfd, takes one
 * client at a time, reads one bounded request line, and writes the
 * command's answer. Every wait on a client also watches the stop event and
 * a deadline, so a silent or slow client costs at most
 * CONTROL_IO_TIMEOUT_MS per direction and never delays shutdown. The
 * reactors never see this socket.
 * Client side: control_request(), used by toasterctl.
 *
 * A path longer than sun_path (108 bytes) is reached through
 * /proc/self/fd/<dir>/<name>, as systemd does, so a deep data_dir works.
 * Limits: CONTROL_REQUEST_BYTES_MAX, CONTROL_ANSWER_BYTES_MAX,
 * CONTROL_IO_TIMEOUT_MS.
 */
#define _GNU_SOURCE
#include "core/control.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/assertions.h"
#include "core/kv.h"
#include "core/log.h"

#define CONTROL_BACKLOG 16
#define CONTROL_PATH_BYTES 4096

struct control {
    char                          path[CONTROL_PATH_BYTES];
    int                           listen_fd;
    int                           stop_fd; /* eventfd: written once by control_close */
    dev_t                         dev;     /* the socket file we made, so we remove */
    ino_t                         ino;     /* only that one */
    pthread_t                     thread;
    bool                          is_started;
    const struct control_command *commands;
    size_t                        command_count;
    char                         *answer; /* CONTROL_ANSWER_BYTES_MAX, made once */
};

/* ---- addresses ------------------------------------------------------------- */

/* Fill *addr for path. A path too long for sun_path goes through an
 * O_PATH descriptor of its directory (*dir_fd_out, to close after the
 * bind or connect; -1 when not needed). Returns 0 or -errno. */
static int
control_address(const char *path, struct sockaddr_un *addr, socklen_t *len_out, int *dir_fd_out)
{
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    *dir_fd_out = -1;
    size_t len = strlen(path);
    if (len == 0) {
        return -EINVAL;
    }
    if (len < sizeof(addr->sun_path)) {
        memcpy(addr->sun_path, path, len + 1);
        *len_out = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
        return 0;
    }
    if (len >= CONTROL_PATH_BYTES) {
        return -ENAMETOOLONG;
    }
    char dir[CONTROL_PATH_BYTES];
    memcpy(dir, path, len + 1);
    char *slash = strrchr(dir, '/');
    const char *name = path + (slash != NULL ? (size_t)(slash - dir) + 1 : 0);
    if (slash == dir) {
        dir[1] = '\0'; /* "/name" */
    } else if (slash != NULL) {
        *slash = '\0';
    } else {
        (void)snprintf(dir, sizeof(dir), ".");
    }
    int dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) {
        return -errno;
    }
    int n = snprintf(addr->sun_path, sizeof(addr->sun_path), "/proc/self/fd/%d/%s", dir_fd, name);
    if (n < 0 || (size_t)n >= sizeof(addr->sun_path)) {
        (void)close(dir_fd);
        return -ENAMETOOLONG;
    }
    *len_out = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1);
    *dir_fd_out = dir_fd;
    return 0;
}

/* connect() to path; returns the fd or -errno. */
static int
control_connect(const char *path, bool is_nonblocking)
{
    struct sockaddr_un addr;
    socklen_t addr_len;
    int dir_fd;
    int rc = control_address(path, &addr, &addr_len, &dir_fd);
    if (rc != 0) {
        return rc;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (is_nonblocking ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0) {
        rc = -errno;
    } else if (connect(fd, (const struct sockaddr *)&addr, addr_len) != 0) {
        rc = -errno;
        (void)close(fd);
    } else {
        rc = fd;
    }
    if (dir_fd >= 0) {
        (void)close(dir_fd);
    }
    return rc;
}

/* ---- time ------------------------------------------------------------------ */

static int64_t
control_now_ms(void)
{
    struct timespec now;
    (void)clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/* Wait until fd is ready for events, the stop event fires, or the deadline
 * passes. Returns 0 when fd is ready, -ETIMEDOUT, -ECANCELED (stopping),
 * or -errno. stop_fd may be -1. */
static int
control_wait(int fd, short events, int stop_fd, int64_t deadline_ms)
{
    /* Each turn either returns or waits for the time left, so this ends by
     * the deadline; EINTR only shortens a turn. */
    for (;;) {
        int64_t left = deadline_ms - control_now_ms();
        if (left <= 0) {
            return -ETIMEDOUT;
        }
        struct pollfd fds[2] = {
            { .fd = fd, .events = events },
            { .fd = stop_fd, .events = POLLIN },
        };
        int n = poll(fds, stop_fd >= 0 ? 2 : 1, left > INT_MAX ? INT_MAX : (int)left);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (n == 0) {
            continue; /* the deadline is checked at the top */
        }
        if (stop_fd >= 0 && (fds[1].revents & POLLIN)) {
            return -ECANCELED;
        }
        if (fds[0].revents != 0) {
            return 0; /* ready, or an error the next call reports */
        }
    }
}

/* Write all of bytes before the deadline. Returns 0 or -errno. */
static int
control_write_all(int fd, const char *bytes, size_t len, int stop_fd, int64_t deadline_ms)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = send(fd, bytes + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno != EAGAIN) {
            return -errno;
        }
        int rc = control_wait(fd, POLLOUT, stop_fd, deadline_ms);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* ---- the server ------------------------------------------------------------- */

static void
control_reply_error(int client_fd, int stop_fd, const char *reason)
{
    char text[128];
    int n = snprintf(text, sizeof(text), "{\"error\":\"%s\"}\n", reason);
    ASSERT(n > 0 && (size_t)n < sizeof(text));
    (void)control_write_all(client_fd, text, (size_t)n, stop_fd,
                            control_now_ms() + CONTROL_IO_TIMEOUT_MS);
}

/* Read one request line (without its newline) into line. Returns its
 * length, -E2BIG when no newline came within CONTROL_REQUEST_BYTES_MAX
 * bytes, -ETIMEDOUT, -ECANCELED, -ECONNRESET (the client left), -errno. */
static int
control_read_request(int client_fd, int stop_fd, char *line, size_t line_bytes)
{
    ASSERT(line_bytes == CONTROL_REQUEST_BYTES_MAX + 1);
    int64_t deadline_ms = control_now_ms() + CONTROL_IO_TIMEOUT_MS;
    size_t len = 0;
    /* Each read adds at least one byte or returns: bounded by the buffer. */
    while (len < CONTROL_REQUEST_BYTES_MAX) {
        ssize_t n = recv(client_fd, line + len, CONTROL_REQUEST_BYTES_MAX - len, MSG_DONTWAIT);
        if (n > 0) {
            char *newline = memchr(line + len, '\n', (size_t)n);
            len += (size_t)n;
            if (newline != NULL) {
                *newline = '\0';
                size_t line_len = (size_t)(newline - line);
                if (line_len > 0 && line[line_len - 1] == '\r') {
                    line[--line_len] = '\0';
                }
                return (int)line_len;
            }
            continue;
        }
        if (n == 0) {
            return -ECONNRESET;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN) {
            return -errno;
        }
        int rc = control_wait(client_fd, POLLIN, stop_fd, deadline_ms);
        if (rc != 0) {
            return rc;
        }
    }
    return -E2BIG;
}

static void
control_serve(struct control *control, int client_fd)
{
    char line[CONTROL_REQUEST_BYTES_MAX + 1];
    int len = control_read_request(client_fd, control->stop_fd, line, sizeof(line));
    if (len == -E2BIG) {
        control_reply_error(client_fd, control->stop_fd, "request too long");
        return;
    }
    if (len < 0) {
        if (len != -ECONNRESET && len != -ECANCELED) {
            log_debug("control: reading a request: %s", strerror(-len));
        }
        return;
    }
    const struct control_command *command = NULL;
    const char *argument = NULL;
    for (size_t i = 0; i < control->command_count; i++) {
        const struct control_command *c = &control->commands[i];
        size_t name_len = strlen(c->name);
        if (c->answer_argument == NULL && strcmp(c->name, line) == 0) {
            command = c;
            break;
        }
        if (c->answer_argument != NULL && strncmp(c->name, line, name_len) == 0 &&
            line[name_len] == ' ') {
            command = c;
            argument = line + name_len + 1;
            break;
        }
    }
    if (command == NULL) {
        control_reply_error(client_fd, control->stop_fd, "unknown command");
        return;
    }
    int n = argument != NULL ? command->answer_argument(command->arg, argument, control->answer,
                                                        CONTROL_ANSWER_BYTES_MAX)
                             : command->answer(command->arg, control->answer,
                                               CONTROL_ANSWER_BYTES_MAX);
    if (n < 0) {
        log_error("control: %s: %s", command->name, strerror(-n));
        control_reply_error(client_fd, control->stop_fd, "internal error");
        return;
    }
    ASSERT((size_t)n < CONTROL_ANSWER_BYTES_MAX);
    int rc = control_write_all(client_fd, control->answer, (size_t)n, control->stop_fd,
                               control_now_ms() + CONTROL_IO_TIMEOUT_MS);
    if (rc != 0 && rc != -ECANCELED && rc != -EPIPE && rc != -ECONNRESET) {
        log_debug("control: writing the answer to %s: %s", command->name, strerror(-rc));
    }
}

static void *
control_main(void *arg)
{
    kv_thread_may_wait(true); /* learn: Bayes may wait on Redis */
    struct control *control = arg;
    /* Runs until control_close() writes the stop event. */
    for (;;) {
        struct pollfd fds[2] = {
            { .fd = control->listen_fd, .events = POLLIN },
            { .fd = control->stop_fd, .events = POLLIN },
        };
        int n = poll(fds, 2, -1);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            log_error("control: poll: %s", strerror(errno));
            ASSERT(false); /* only EINTR, ENOMEM or our own bug: nothing to serve */
        }
        if (fds[1].revents & POLLIN) {
            break;
        }
        if (!(fds[0].revents & POLLIN)) {
            continue;
        }
        int client_fd = accept4(control->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (client_fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
                log_warning("control: accept: %s", strerror(errno));
                /* EMFILE and friends: do not spin on a socket we cannot take. */
                (void)usleep(100 * 1000);
            }
            continue;
        }
        control_serve(control, client_fd);
        (void)close(client_fd);
    }
    return NULL;
}

/* ---- public ---------------------------------------------------------------- */

int
control_check(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT) {
            return 0;
        }
        int rc = -errno;
        log_error("control socket %s: %s", path, strerror(-rc));
        return rc;
    }
    if (!S_ISSOCK(st.st_mode)) {
        log_error("control socket %s: exists and is not a socket; not touching it", path);
        return -EEXIST;
    }
    int fd = control_connect(path, true);
    if (fd >= 0) {
        (void)close(fd);
        log_error("control socket %s: another toasterd is running there", path);
        return -EADDRINUSE;
    }
    if (fd != -ECONNREFUSED && fd != -ENOENT) {
        log_error("control socket %s: %s", path, strerror(-fd));
        return fd;
    }
    return 0;
}

/* Remove a socket file left by a daemon that is gone; refuse when one
 * still answers, or when path is not a socket at all. */
static int
control_clear_stale(const char *path)
{
    int rc = control_check(path);
    if (rc != 0) {
        return rc;
    }
    struct stat st;
    if (lstat(path, &st) != 0) {
        return 0; /* nothing there (or it went away meanwhile) */
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        rc = -errno;
        log_error("control socket %s: cannot remove the stale socket: %s", path, strerror(-rc));
        return rc;
    }
    log_info("control socket %s: removed a stale socket", path);
    return 0;
}

int
control_open(const char *path, struct control **control_out)
{
    size_t path_len = strlen(path);
    if (path_len == 0 || path_len >= CONTROL_PATH_BYTES) {
        log_error("control socket path '%s' is empty or too long", path);
        return -ENAMETOOLONG;
    }
    int rc = control_clear_stale(path);
    if (rc != 0) {
        return rc;
    }
    struct control *control = calloc(1, sizeof(*control));
    if (control == NULL) {
        return -ENOMEM;
    }
    memcpy(control->path, path, path_len + 1);
    control->listen_fd = -1;
    control->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    control->answer = malloc(CONTROL_ANSWER_BYTES_MAX);
    if (control->stop_fd < 0 || control->answer == NULL) {
        rc = control->stop_fd < 0 ? -errno : -ENOMEM;
        log_error("control socket %s: %s", path, strerror(-rc));
        control_close(&control);
        return rc;
    }
    struct sockaddr_un addr;
    socklen_t addr_len;
    int dir_fd = -1;
    rc = control_address(path, &addr, &addr_len, &dir_fd);
    int fd = -1;
    bool is_bound = false;
    if (rc == 0) {
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        rc = fd < 0 ? -errno : 0;
    }
    /* The mode given to the socket inode before bind() is the file's mode
     * on Linux (less the umask), so the file is never open to others, not
     * even for a moment; changing the process-wide umask would race with
     * the threads already creating files. */
    if (rc == 0 && fchmod(fd, 0600) != 0) {
        rc = -errno;
    }
    if (rc == 0 && bind(fd, (const struct sockaddr *)&addr, addr_len) != 0) {
        rc = -errno;
    }
    is_bound = rc == 0;
    struct stat st;
    if (rc == 0 && (chmod(path, 0600) != 0 || lstat(path, &st) != 0)) {
        rc = -errno;
    }
    if (rc == 0 && listen(fd, CONTROL_BACKLOG) != 0) {
        rc = -errno;
    }
    if (dir_fd >= 0) {
        (void)close(dir_fd);
    }
    if (rc != 0) {
        log_error("control socket %s: %s", path, strerror(-rc));
        if (fd >= 0) {
            (void)close(fd);
        }
        if (is_bound) {
            (void)unlink(path);
        }
        control_close(&control);
        return rc;
    }
    control->listen_fd = fd;
    control->dev = st.st_dev;
    control->ino = st.st_ino;
    *control_out = control;
    return 0;
}

int
control_start(struct control *control, const struct control_command *commands, size_t command_count)
{
    ASSERT(!control->is_started);
    ASSERT(control->listen_fd >= 0);
    control->commands = commands;
    control->command_count = command_count;
    int rc = pthread_create(&control->thread, NULL, control_main, control);
    if (rc != 0) {
        log_error("control: cannot start its thread: %s", strerror(rc));
        return -rc;
    }
    control->is_started = true;
    log_info("control socket %s ready", control->path);
    return 0;
}

void
control_close(struct control **control_ptr)
{
    struct control *control = *control_ptr;
    if (control == NULL) {
        return;
    }
    if (control->is_started) {
        uint64_t one = 1;
        ssize_t n;
        do {
            n = write(control->stop_fd, &one, sizeof(one));
        } while (n < 0 && errno == EINTR);
        /* A fresh eventfd written once cannot overflow. */
        ASSERT(n == (ssize_t)sizeof(one));
        (void)pthread_join(control->thread, NULL);
    }
    if (control->listen_fd >= 0) {
        (void)close(control->listen_fd);
        /* Remove the file only if it is still the one we bound. */
        struct stat st;
        if (lstat(control->path, &st) == 0 && st.st_dev == control->dev &&
            st.st_ino == control->ino && unlink(control->path) != 0) {
            log_warning("control socket %s: cannot remove: %s", control->path, strerror(errno));
        }
    }
    if (control->stop_fd >= 0) {
        (void)close(control->stop_fd);
    }
    free(control->answer);
    free(control);
    *control_ptr = NULL;
}

int
control_request(const char *path, const char *command, char *out, size_t out_bytes, int timeout_ms)
{
    ASSERT(out_bytes > 0);
    out[0] = '\0';
    size_t command_len = strlen(command);
    if (command_len >= CONTROL_REQUEST_BYTES_MAX) {
        return -E2BIG;
    }
    char line[CONTROL_REQUEST_BYTES_MAX + 1];
    memcpy(line, command, command_len);
    line[command_len] = '\n';
    int fd = control_connect(path, true);
    if (fd < 0) {
        return fd;
    }
    int64_t deadline_ms = control_now_ms() + timeout_ms;
    int rc = control_write_all(fd, line, command_len + 1, -1, deadline_ms);
    size_t len = 0;
    /* Each turn reads at least a byte, waits, or ends: bounded by out_bytes
     * and the deadline. */
    while (rc == 0) {
        if (len + 1 == out_bytes) {
            rc = -EMSGSIZE;
            break;
        }
        ssize_t n = recv(fd, out + len, out_bytes - 1 - len, MSG_DONTWAIT);
        if (n > 0) {
            len += (size_t)n;
        } else if (n == 0) {
            break; /* the daemon closes after its answer */
        } else if (errno == EAGAIN) {
            rc = control_wait(fd, POLLIN, -1, deadline_ms);
        } else if (errno != EINTR) {
            rc = -errno;
        }
    }
    (void)close(fd);
    if (rc != 0) {
        out[0] = '\0';
        return rc;
    }
    out[len] = '\0';
    return (int)len;
}
