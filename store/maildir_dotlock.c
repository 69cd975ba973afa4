/*
 * store/maildir_dotlock.c - Dovecot-compatible dotlock and atomic replace
 * (see maildir_dotlock.h). Worker threads only: every call blocks on the
 * file system.
 */
#define _GNU_SOURCE
#include "store/maildir_dotlock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/assertions.h"

static int
lock_name(const char *file_name, char *out, size_t out_bytes)
{
    int n = snprintf(out, out_bytes, "%s.lock", file_name);
    if (n < 0 || (size_t)n >= out_bytes) {
        return -ENAMETOOLONG;
    }
    return 0;
}

int
maildir_dotlock_take(int dir_fd, const char *file_name, int stale_s, time_t now,
                     int *lock_fd_out)
{
    ASSERT(dir_fd >= 0);
    ASSERT(file_name != NULL);
    ASSERT(stale_s > 0);
    ASSERT(lock_fd_out != NULL);
    char name[MAILDIR_DOTLOCK_NAME_BYTES_MAX];
    int rc = lock_name(file_name, name, sizeof(name));
    if (rc != 0) {
        return rc;
    }
    for (int attempt = 0; attempt < 2; attempt++) {
        int fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            *lock_fd_out = fd;
            return 0;
        }
        if (errno != EEXIST) {
            return -errno;
        }
        struct stat st;
        if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno == ENOENT) {
                continue; /* released meanwhile */
            }
            return -errno;
        }
        if (now - st.st_mtime <= stale_s) {
            return -EAGAIN;
        }
        /* Stale: its writer died. Another process may be overriding it at
         * the same moment; O_EXCL on the retry decides who wins. */
        if (unlinkat(dir_fd, name, 0) != 0 && errno != ENOENT) {
            return -errno;
        }
    }
    return -EAGAIN;
}

int
maildir_dotlock_replace(int dir_fd, const char *file_name, int lock_fd, const char *buf,
                        size_t len)
{
    ASSERT(dir_fd >= 0);
    ASSERT(lock_fd >= 0);
    ASSERT(buf != NULL || len == 0);
    char name[MAILDIR_DOTLOCK_NAME_BYTES_MAX];
    int rc = lock_name(file_name, name, sizeof(name));
    ASSERT(rc == 0); /* the same name was locked */
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(lock_fd, buf + done, len - done);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            rc = -errno;
            break;
        }
        done += (size_t)w;
    }
    if (rc == 0 && fsync(lock_fd) != 0) {
        rc = -errno;
    }
    if (close(lock_fd) != 0 && rc == 0) {
        rc = -errno;
    }
    if (rc == 0 && renameat(dir_fd, name, dir_fd, file_name) != 0) {
        rc = -errno;
    }
    if (rc != 0) {
        (void)unlinkat(dir_fd, name, 0); /* best effort; rc says what failed */
        return rc;
    }
    return fsync(dir_fd) == 0 ? 0 : -errno;
}

int
maildir_dotlock_release(int dir_fd, const char *file_name, int lock_fd)
{
    ASSERT(dir_fd >= 0);
    ASSERT(lock_fd >= 0);
    char name[MAILDIR_DOTLOCK_NAME_BYTES_MAX];
    int rc = lock_name(file_name, name, sizeof(name));
    ASSERT(rc == 0);
    rc = close(lock_fd) == 0 ? 0 : -errno;
    if (unlinkat(dir_fd, name, 0) != 0 && rc == 0) {
        rc = -errno;
    }
    return rc;
}
