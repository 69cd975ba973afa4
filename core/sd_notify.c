/*
 * core/sd_notify.c - the sd_notify(3) protocol by hand: one datagram per
 * state on an AF_UNIX socket connected to $NOTIFY_SOCKET at start, so it
 * still reaches systemd after a chroot (where the path is gone) and after
 * the drop of root. Where the connect failed, each state tries a socket
 * of its own.
 *
 * Owns the socket address read at start and the connected socket. Main
 * thread.
 * Limits: a state of at most SD_NOTIFY_STATE_BYTES.
 */
#define _GNU_SOURCE
#include "core/sd_notify.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define SD_NOTIFY_STATE_BYTES 512

static struct sockaddr_un sd_notify_address;
static socklen_t sd_notify_address_len; /* 0: not under systemd */
static int sd_notify_fd = -1;            /* connected at setup, kept for life */

void
sd_notify_setup(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    sd_notify_address_len = 0;
    if (path == NULL || (path[0] != '/' && path[0] != '@')) {
        return;
    }
    size_t len = strlen(path);
    if (len < 2 || len >= sizeof(sd_notify_address.sun_path)) {
        return;
    }
    memset(&sd_notify_address, 0, sizeof(sd_notify_address));
    sd_notify_address.sun_family = AF_UNIX;
    memcpy(sd_notify_address.sun_path, path, len);
    if (path[0] == '@') {
        sd_notify_address.sun_path[0] = '\0'; /* abstract: no terminating NUL counts */
        sd_notify_address_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    } else {
        sd_notify_address_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (const struct sockaddr *)&sd_notify_address,
                           sd_notify_address_len) == 0) {
        sd_notify_fd = fd;
    } else if (fd >= 0) {
        (void)close(fd); /* not connected: sd_notify_send tries again per state */
    }
}

int
sd_notify_send(const char *state)
{
    if (sd_notify_address_len == 0) {
        return 0;
    }
    size_t len = strnlen(state, SD_NOTIFY_STATE_BYTES);
    if (len == 0 || len == SD_NOTIFY_STATE_BYTES) {
        return -EINVAL;
    }
    bool is_own = sd_notify_fd < 0;
    int fd = is_own ? socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0) : sd_notify_fd;
    if (fd < 0) {
        return -errno;
    }
    ssize_t sent;
    do {
        sent = is_own ? sendto(fd, state, len, MSG_NOSIGNAL,
                               (const struct sockaddr *)&sd_notify_address,
                               sd_notify_address_len)
                      : send(fd, state, len, MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    int rc = sent == (ssize_t)len ? 0 : sent < 0 ? -errno : -EMSGSIZE;
    if (is_own) {
        (void)close(fd); /* a datagram socket that sent its one message */
    }
    return rc;
}

int
sd_notify_reloading(void)
{
    struct timespec now;
    if (clock_gettime(CLOCK_MONOTONIC, &now) != 0) {
        return -errno;
    }
    char state[96];
    (void)snprintf(state, sizeof(state), "RELOADING=1\nMONOTONIC_USEC=%llu",
                   (unsigned long long)now.tv_sec * 1000000ULL +
                       (unsigned long long)now.tv_nsec / 1000ULL);
    return sd_notify_send(state);
}
