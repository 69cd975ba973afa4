/*
 * store/maildir_add.c - adding a message to a Maildir folder for IMAP
 * APPEND, COPY and MOVE (see maildir_add.h).
 *
 * Owns the unique-name counter of these additions (a process-wide atomic;
 * the time part keeps names unique across restarts as Dovecot's do).
 * Worker threads only.
 */
#define _GNU_SOURCE
#include "store/maildir_add.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

#include "core/assertions.h"
#include "core/fd_io.h"

static atomic_ulong add_sequence;

static void host_part(char *out, size_t out_bytes);
static int copy_bytes(int out_fd, const struct maildir_add_source *source);

/* Into cur/ with flags (is_new false), or into new/ without an info part
 * (is_new: a delivery, as the committer's). */
static int
add_into(const char *folder, bool is_new, const struct maildir_add_source *source,
         uint32_t flags, uint32_t keywords, int64_t mtime, char *name_out, size_t name_bytes)
{
    ASSERT(folder != NULL && source != NULL && name_out != NULL);
    char base_out[MAILDIR_NAME_BYTES_MAX + 1];
    size_t base_bytes = sizeof(base_out);
    ASSERT((source->path != NULL) + (source->fd >= 0) + (source->bytes != NULL) == 1);
    static _Thread_local char host[64];
    if (host[0] == '\0') {
        host_part(host, sizeof(host));
    }
    struct timeval tv;
    (void)gettimeofday(&tv, NULL);
    unsigned long seq = atomic_fetch_add(&add_sequence, 1) + 1;
    int n = snprintf(base_out, base_bytes, "%lld.M%06ldP%ldQ%lu.%s,S=%llu,W=%llu",
                     (long long)tv.tv_sec, (long)tv.tv_usec, (long)getpid(), seq, host,
                     (unsigned long long)source->size, (unsigned long long)source->size);
    if (n < 0 || (size_t)n >= base_bytes) {
        return -ENAMETOOLONG;
    }
    char name[MAILDIR_NAME_BYTES_MAX + 1];
    size_t name_len = 0;
    int rc = 0;
    if (is_new) {
        ASSERT(flags == 0 && keywords == 0);
        memcpy(name, base_out, (size_t)n + 1);
        name_len = (size_t)n;
    } else {
        rc = maildir_name_build(span_make(base_out, (size_t)n), flags, keywords, name,
                                sizeof(name), &name_len);
    }
    if (rc != 0) {
        return rc;
    }
    if (name_len >= name_bytes) {
        return -ENAMETOOLONG;
    }
    memcpy(name_out, name, name_len + 1);
    char cur_path[PATH_MAX];
    char tmp_path[PATH_MAX];
    if ((size_t)snprintf(cur_path, sizeof(cur_path), "%s/%s/%s", folder, is_new ? "new" : "cur",
                         name) >=
            sizeof(cur_path) ||
        (size_t)snprintf(tmp_path, sizeof(tmp_path), "%s/tmp/%s", folder, base_out) >=
            sizeof(tmp_path)) {
        return -ENAMETOOLONG;
    }
    /* 1. A hard link: no bytes move, and the source is complete already. */
    if (source->path != NULL) {
        if (link(source->path, cur_path) == 0) {
            return 0;
        }
        if (errno != EXDEV && errno != EPERM && errno != EMLINK) {
            return -errno;
        }
    } else if (source->fd >= 0) {
        char proc_path[64];
        (void)snprintf(proc_path, sizeof(proc_path), "/proc/self/fd/%d", source->fd);
        if (linkat(AT_FDCWD, proc_path, AT_FDCWD, tmp_path, AT_SYMLINK_FOLLOW) == 0) {
            /* The file is ours alone (O_TMPFILE): it may take the date. */
            rc = 0;
            if (fdatasync(source->fd) != 0) {
                rc = -errno;
            }
            if (rc == 0 && mtime > 0) {
                struct timespec times[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = mtime}};
                if (futimens(source->fd, times) != 0) {
                    rc = -errno;
                }
            }
            if (rc == 0 && rename(tmp_path, cur_path) != 0) {
                rc = -errno;
            }
            if (rc != 0) {
                (void)unlink(tmp_path);
            }
            return rc;
        }
        if (errno != EXDEV && errno != EPERM && errno != EMLINK && errno != ENOENT) {
            return -errno;
        }
    }
    /* 2. A written copy in tmp/, synced, then renamed into cur/. */
    int out = open(tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
        return -errno;
    }
    rc = copy_bytes(out, source);
    if (rc == 0 && fdatasync(out) != 0) {
        rc = -errno;
    }
    if (rc == 0 && mtime > 0) {
        struct timespec times[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = mtime}};
        if (futimens(out, times) != 0) {
            rc = -errno;
        }
    }
    if (close(out) != 0 && rc == 0) {
        rc = -errno;
    }
    if (rc == 0 && rename(tmp_path, cur_path) != 0) {
        rc = -errno;
    }
    if (rc != 0) {
        (void)unlink(tmp_path);
    }
    return rc;
}

int
maildir_add(const char *folder, const struct maildir_add_source *source, uint32_t flags,
            uint32_t keywords, int64_t mtime, char *name_out, size_t name_bytes)
{
    return add_into(folder, false, source, flags, keywords, mtime, name_out, name_bytes);
}

int
maildir_add_new(const char *folder, const struct maildir_add_source *source, char *name_out,
                size_t name_bytes)
{
    return add_into(folder, true, source, 0, 0, 0, name_out, name_bytes);
}

static int
sync_subdir(const char *folder, const char *subdir)
{
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", folder, subdir) >= sizeof(path)) {
        return -ENAMETOOLONG;
    }
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    int rc = fsync(fd) == 0 ? 0 : -errno;
    (void)close(fd);
    return rc;
}

int
maildir_add_sync(const char *folder)
{
    return sync_subdir(folder, "cur");
}

int
maildir_add_sync_new(const char *folder)
{
    return sync_subdir(folder, "new");
}

/* The host name as Dovecot puts it in file names: '/' and ':' escaped. */
static void
host_part(char *out, size_t out_bytes)
{
    char host[256];
    if (gethostname(host, sizeof(host)) != 0) {
        (void)snprintf(host, sizeof(host), "localhost");
    }
    host[sizeof(host) - 1] = '\0';
    size_t o = 0;
    for (size_t i = 0; host[i] != '\0' && o + 5 < out_bytes; i++) {
        if (host[i] == '/') {
            memcpy(out + o, "\\057", 4);
            o += 4;
        } else if (host[i] == ':') {
            memcpy(out + o, "\\072", 4);
            o += 4;
        } else {
            out[o++] = host[i];
        }
    }
    out[o] = '\0';
}

static int
copy_bytes(int out_fd, const struct maildir_add_source *source)
{
    if (source->bytes != NULL) {
        return fd_write_all(out_fd, source->bytes, source->size);
    }
    int in_fd = source->fd;
    if (source->path != NULL) {
        in_fd = open(source->path, O_RDONLY | O_CLOEXEC);
        if (in_fd < 0) {
            return -errno;
        }
    }
    loff_t in_offset = 0;
    int rc = 0;
    while (rc == 0 && (uint64_t)in_offset < source->size) {
        ssize_t n = copy_file_range(in_fd, &in_offset, out_fd, NULL,
                                    (size_t)(source->size - (uint64_t)in_offset), 0);
        if (n < 0) {
            rc = -errno;
        } else if (n == 0) {
            rc = -EIO; /* the source is shorter than it says */
        }
    }
    if (source->path != NULL) {
        (void)close(in_fd);
    }
    return rc;
}
