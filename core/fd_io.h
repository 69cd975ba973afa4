/*
 * core/fd_io.h - whole reads and writes on blocking file descriptors, for
 * the code that may block (workers, the committer, start-up, toasterctl):
 * a loop over read(2)/write(2) that retries EINTR and short counts. Never
 * for a reactor thread.
 */
#ifndef TOASTER_CORE_FD_IO_H
#define TOASTER_CORE_FD_IO_H

#include <stddef.h>

/* Write all len bytes. Returns 0, or -errno (-EIO if write(2) returns 0). */
int fd_write_all(int fd, const void *bytes, size_t len);

/* Read exactly len bytes. Returns 0, -errno, or -ENODATA when the file
 * ends first (it shrank, or was shorter than its size said). */
int fd_read_all(int fd, void *out, size_t len);

#endif
