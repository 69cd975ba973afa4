/*
 * core/control.h - the control socket: how toasterctl talks to a running
 * toasterd.
 *
 * A Unix stream socket (mode 0600) served by one small dedicated thread,
 * never by a reactor. The protocol is one request line ("stats\n") and one
 * answer (a JSON document), then the daemon closes. Requests are bounded
 * (CONTROL_REQUEST_BYTES_MAX, CONTROL_IO_TIMEOUT_MS to arrive) and
 * answered one client at a time; an unknown command gets
 * {"error":"unknown command"}.
 *
 * The commands are the daemon's (control_start); "queue-flush [ID]", for
 * `toasterctl queue flush`, is the delivery agent's (core/relay.h).
 */
#ifndef TOASTER_CORE_CONTROL_H
#define TOASTER_CORE_CONTROL_H

#include <stddef.h>

#define CONTROL_REQUEST_BYTES_MAX 4352 /* a command and a path (learn) */
#define CONTROL_ANSWER_BYTES_MAX (256u * 1024u)
#define CONTROL_IO_TIMEOUT_MS 1000
#define CONTROL_QUEUE_ID_LEN 16 /* queue-flush's argument: a queue id */

struct control;

struct control_command {
    const char *name; /* the request line, without its '\n' */
    /* Write the answer into out (at most out_bytes, NUL included). Returns
     * its length, or -errno (the client then gets an error document). Runs
     * on the control thread. */
    int (*answer)(void *arg, char *out, size_t out_bytes);
    /* Instead of answer, for a command with an argument: the request line
     * is "NAME ARGUMENT" and argument is the text after the space. */
    int (*answer_argument)(void *arg, const char *argument, char *out, size_t out_bytes);
    void *arg;
};

/* Bind the socket at path, mode 0600. A stale socket left by a crash is
 * removed first; when a live daemon answers there, returns -EADDRINUSE,
 * and -EEXIST when path is something other than a socket. Other failures
 * return -errno. Each failure is logged. Main thread, before the reactors
 * start, so that a second daemon stops before it listens anywhere. */
int control_open(const char *path, struct control **control_out);

/* Check that a daemon could bind path, touching nothing: returns 0 when
 * nothing is there or only a stale socket, -EADDRINUSE when a live daemon
 * answers there, -EEXIST when path is something other than a socket, or
 * -errno. Each refusal is logged. Does not block. */
int control_check(const char *path);

/* Start serving commands (which must outlive the control) on a thread.
 * Returns 0 or -errno. */
int control_start(struct control *control, const struct control_command *commands,
                  size_t command_count);

/* Stop the thread (promptly: it waits on the stop event too), close the
 * socket and remove it. NULLs the pointer; NULL is fine. Main thread. */
void control_close(struct control **control);

/* Client side: send command to the daemon at path and read its answer into
 * out, NUL-terminated. Returns the answer's length; -ENOENT or
 * -ECONNREFUSED when no daemon listens there; -EMSGSIZE when the answer does
 * not fit; -ETIMEDOUT when the daemon does not answer within timeout_ms;
 * other -errno. Blocks; for toasterctl, not for daemon threads. */
int control_request(const char *path, const char *command, char *out, size_t out_bytes,
                    int timeout_ms);

#endif
