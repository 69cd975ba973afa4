/*
 * core/fd_io.c - whole reads and writes (see fd_io.h).
 */
#include "core/fd_io.h"

#include <errno.h>
#include <unistd.h>

int
fd_write_all(int fd, const void *bytes, size_t len)
{
    const char *p = bytes;
    size_t done = 0;
    /* Each turn writes at least one byte or ends. */
    while (done < len) {
        ssize_t n = write(fd, p + done, len - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -errno;
        }
        if (n == 0) {
            return -EIO;
        }
        done += (size_t)n;
    }
    return 0;
}

int
fd_read_all(int fd, void *out, size_t len)
{
    char *p = out;
    size_t done = 0;
    /* Each turn reads at least one byte or ends. */
    while (done < len) {
        ssize_t n = read(fd, p + done, len - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -errno;
        }
        if (n == 0) {
            return -ENODATA;
        }
        done += (size_t)n;
    }
    return 0;
}
