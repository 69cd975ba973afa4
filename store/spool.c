/*
 * store/spool.c - spool directory set-up, queue ids and spool file names.
 *
 * The reactor creates and writes spool files itself (through io_uring, see
 * core/smtp_listener.c); this module only names them, finds out whether
 * the file system can hold them unnamed, and, at start-up, clears what a
 * crash left. Runs on the main thread at start-up, and queue
 * ids on reactor threads (no locks: the counter is per thread).
 */
#define _GNU_SOURCE
#include "store/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/assertions.h"
#include "core/fd_io.h"
#include "core/log.h"

static __thread uint32_t spool_id_counter;

static int
spool_mkdir(const char *path)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        int rc = -errno;
        log_error("cannot create %s: %s", path, strerror(-rc));
        return rc;
    }
    return 0;
}

int
spool_prepare(const char *data_dir)
{
    char path[SPOOL_PATH_BYTES];
    int rc = spool_mkdir(data_dir);
    if (rc != 0) {
        return rc;
    }
    const char *subdirs[] = { "spool", "mail" };
    for (size_t i = 0; i < 2; i++) {
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", data_dir, subdirs[i]) >=
            sizeof(path)) {
            return -ENAMETOOLONG;
        }
        rc = spool_mkdir(path);
        if (rc != 0) {
            return rc;
        }
    }
    (void)snprintf(path, sizeof(path), "%s/spool", data_dir);
    DIR *dir = opendir(path);
    if (dir == NULL) {
        rc = -errno;
        log_error("cannot read %s: %s", path, strerror(-rc));
        return rc;
    }
    struct dirent *entry;
    unsigned long removed = 0;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] == '.') {
            continue;
        }
        if (unlinkat(dirfd(dir), entry->d_name, 0) != 0) {
            log_warning("cannot remove stale spool file %s/%s: %s", path, entry->d_name,
                        strerror(errno));
            continue;
        }
        removed++;
        log_info("%s: removed unacknowledged spool file left by an earlier run",
                 entry->d_name);
    }
    (void)closedir(dir);
    if (removed > 0) {
        log_info("spool: %lu stale file(s) removed", removed);
    }
    return 0;
}

void
spool_queue_id_make(uint32_t reactor_index, char id_out[SPOOL_QUEUE_ID_BYTES])
{
    struct timeval tv;
    (void)gettimeofday(&tv, NULL);
    uint64_t usec = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
    /* 44 bits of microseconds last 200 days before the high bits change
     * the prefix; the prefix stays sortable by time within that span. The
     * low 20 bits: reactor (8) and a per-thread counter (12), so ids made
     * in the same microsecond on one reactor differ too. O_EXCL on the
     * spool file catches the remaining theoretical clash. */
    uint64_t id = (usec << 20) | ((uint64_t)(reactor_index & 0xffu) << 12) |
                  (spool_id_counter++ & 0xfffu);
    (void)snprintf(id_out, SPOOL_QUEUE_ID_BYTES, "%016llX", (unsigned long long)id);
}

int
spool_dir_path(const char *data_dir, char *path_out, size_t path_bytes)
{
    int n = snprintf(path_out, path_bytes, "%s/spool", data_dir);
    if (n < 0 || (size_t)n >= path_bytes) {
        return -ENAMETOOLONG;
    }
    return 0;
}

bool
spool_probe_unnamed(const char *data_dir)
{
    char path[SPOOL_PATH_BYTES];
    if (spool_dir_path(data_dir, path, sizeof(path)) != 0) {
        return false;
    }
    int fd = open(path, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        log_info("spool: %s cannot hold unnamed files (%s); using named spool files", path,
                 strerror(errno));
        return false;
    }
    /* Linking by /proc/self/fd is how delivery names the file later. */
    char proc_path[64];
    (void)snprintf(proc_path, sizeof(proc_path), "/proc/self/fd/%d", fd);
    bool has_proc = access(proc_path, F_OK) == 0;
    (void)close(fd);
    if (!has_proc) {
        log_info("spool: /proc is not mounted; using named spool files");
    }
    return has_proc;
}

/* Copy [in_offset, in_offset + len) of in to out at out_offset, in the
 * kernel. */
static int
spool_copy_range(int in, uint64_t in_offset, int out, uint64_t out_offset, uint64_t len)
{
    off64_t in_at = (off64_t)in_offset;
    off64_t out_at = (off64_t)out_offset;
    uint64_t end = in_offset + len;
    while ((uint64_t)in_at < end) {
        ssize_t n = copy_file_range(in, &in_at, out, &out_at, (size_t)(end - (uint64_t)in_at), 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -errno;
        }
        if (n == 0) {
            return -EIO; /* the spool file is shorter than its size said */
        }
    }
    return 0;
}

int
spool_rewrite(int spool_dir_fd, bool is_unnamed, const char *queue_id, int *fd_inout,
              uint64_t *size_inout, const struct spool_edit *edits, size_t edit_count)
{
    ASSERT(*fd_inout >= 0);
    if (edit_count == 0) {
        return 0;
    }
    uint64_t at = 0;
    for (size_t i = 0; i < edit_count; i++) {
        if (edit_count > SPOOL_EDITS_MAX || edits[i].offset < at ||
            edits[i].offset + edits[i].delete_len > *size_inout) {
            return -EINVAL;
        }
        at = edits[i].offset + edits[i].delete_len;
    }
    char new_name[SPOOL_QUEUE_ID_BYTES + 8];
    int n = snprintf(new_name, sizeof(new_name), "%s.new", queue_id);
    ASSERT(n > 0 && (size_t)n < sizeof(new_name));
    int fd = is_unnamed ? openat(spool_dir_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600)
                        : openat(spool_dir_fd, new_name,
                                 O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        return -errno;
    }
    int rc = 0;
    uint64_t in_at = 0;
    uint64_t out_at = 0;
    for (size_t i = 0; i <= edit_count && rc == 0; i++) {
        uint64_t until = i < edit_count ? edits[i].offset : *size_inout;
        rc = spool_copy_range(*fd_inout, in_at, fd, out_at, until - in_at);
        out_at += until - in_at;
        in_at = until;
        if (rc != 0 || i == edit_count) {
            break;
        }
        if (edits[i].len > 0 && lseek(fd, (off_t)out_at, SEEK_SET) < 0) {
            rc = -errno;
        }
        if (rc == 0) {
            rc = fd_write_all(fd, edits[i].bytes, edits[i].len);
        }
        out_at += edits[i].len;
        in_at += edits[i].delete_len;
    }
    if (rc == 0 && !is_unnamed && renameat(spool_dir_fd, new_name, spool_dir_fd, queue_id) != 0) {
        rc = -errno;
    }
    if (rc != 0) {
        if (!is_unnamed) {
            (void)unlinkat(spool_dir_fd, new_name, 0);
        }
        (void)close(fd);
        return rc;
    }
    (void)close(*fd_inout);
    *fd_inout = fd;
    *size_inout = out_at;
    return 0;
}
