/*
 * store/maildir_modseq.c - the toaster-modseq file of a Maildir folder (see
 * maildir_modseq.h). Worker threads only.
 */
#define _GNU_SOURCE
#include "store/maildir_modseq.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/assertions.h"
#include "core/log.h"

#define RECORD_LINE_BYTES 48 /* "<uid> <modseq>\n" at their longest, rounded up */

static int record_cmp(const void *a, const void *b);
static uint64_t now_us(void);
static int path_of(const char *folder, const char *name, char *out, size_t out_bytes);
static int file_read(const char *path, char **buf_out, size_t *len_out);

int
maildir_modseq_load(const char *folder, uint32_t uidvalidity, struct maildir_modseq *out)
{
    ASSERT(folder != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    char path[PATH_MAX];
    int rc = path_of(folder, MAILDIR_MODSEQ_FILE_NAME, path, sizeof(path));
    if (rc != 0) {
        return rc;
    }
    char *buf = NULL;
    size_t len = 0;
    rc = file_read(path, &buf, &len);
    bool is_usable = false;
    if (rc == 0) {
        unsigned version = 0;
        uint32_t file_uidvalidity = 0;
        uint64_t base = 0;
        char *nl = memchr(buf, '\n', len);
        if (nl != NULL) {
            *nl = '\0';
            is_usable = sscanf(buf, "toaster-modseq %u %" SCNu32 " %" SCNu64, &version,
                               &file_uidvalidity, &base) == 3 &&
                        version == 1 && file_uidvalidity == uidvalidity && base > 0;
        }
        if (is_usable) {
            out->base = base;
            out->highest = base;
            /* At most one record per line. */
            size_t lines = 0;
            for (const char *p = nl + 1; p < buf + len; p++) {
                lines += *p == '\n';
            }
            out->records = malloc((lines + 1) * sizeof(*out->records));
            if (out->records == NULL) {
                free(buf);
                return -ENOMEM;
            }
            char *line = nl + 1;
            while (line < buf + len) {
                char *end = memchr(line, '\n', (size_t)(buf + len - line));
                if (end == NULL) {
                    break; /* a torn last line is ignored */
                }
                *end = '\0';
                uint32_t uid;
                uint64_t modseq;
                char extra;
                if (sscanf(line, "%" SCNu32 " %" SCNu64 "%c", &uid, &modseq, &extra) == 2 &&
                    modseq >= base) {
                    out->records[out->count].uid = uid;
                    out->records[out->count].modseq = modseq;
                    out->count++;
                    if (modseq > out->highest) {
                        out->highest = modseq;
                    }
                }
                line = end + 1;
            }
            /* One record per UID, the highest. */
            qsort(out->records, out->count, sizeof(*out->records), record_cmp);
            size_t kept = 0;
            for (size_t i = 0; i < out->count; i++) {
                if (kept > 0 && out->records[kept - 1].uid == out->records[i].uid) {
                    if (out->records[i].modseq > out->records[kept - 1].modseq) {
                        out->records[kept - 1].modseq = out->records[i].modseq;
                    }
                    continue;
                }
                out->records[kept++] = out->records[i];
            }
            out->count = kept;
        }
    } else if (rc != -ENOENT) {
        log_warning("%s: %s: %s; MODSEQs start over", folder, MAILDIR_MODSEQ_FILE_NAME,
                    strerror(-rc));
    }
    free(buf);
    if (!is_usable) {
        /* Above every MODSEQ this server handed out before (time-based),
         * so clients' CHANGEDSINCE values never look like the future. */
        out->base = now_us();
        out->highest = out->base;
        rc = maildir_modseq_rewrite(folder, uidvalidity, out->base, NULL, 0);
        if (rc != 0) {
            log_warning("%s: cannot write %s: %s", folder, MAILDIR_MODSEQ_FILE_NAME,
                        strerror(-rc));
        }
    }
    return 0;
}

uint64_t
maildir_modseq_of(const struct maildir_modseq *m, uint32_t uid)
{
    size_t lo = 0;
    size_t hi = m->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->records[mid].uid < uid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < m->count && m->records[lo].uid == uid ? m->records[lo].modseq : m->base;
}

void
maildir_modseq_free(struct maildir_modseq *m)
{
    free(m->records);
    memset(m, 0, sizeof(*m));
}

void
maildir_modseq_append(const char *folder, const struct maildir_modseq_record *records,
                      size_t count)
{
    if (count == 0) {
        return;
    }
    char path[PATH_MAX];
    if (path_of(folder, MAILDIR_MODSEQ_FILE_NAME, path, sizeof(path)) != 0) {
        return;
    }
    char *buf = malloc(count * RECORD_LINE_BYTES);
    if (buf == NULL) {
        log_warning("%s: out of memory writing %s", folder, MAILDIR_MODSEQ_FILE_NAME);
        return;
    }
    size_t len = 0;
    for (size_t i = 0; i < count; i++) {
        int n = snprintf(buf + len, RECORD_LINE_BYTES, "%" PRIu32 " %" PRIu64 "\n",
                         records[i].uid, records[i].modseq);
        ASSERT(n > 0 && n < RECORD_LINE_BYTES);
        len += (size_t)n;
    }
    /* One write per batch with O_APPEND: two workers' batches never mix
     * inside a line on a local file system. */
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    ssize_t done = fd >= 0 ? write(fd, buf, len) : -1;
    if (fd < 0 || done != (ssize_t)len) {
        log_warning("%s: appending to %s: %s", folder, MAILDIR_MODSEQ_FILE_NAME,
                    fd < 0 ? strerror(errno) : done < 0 ? strerror(errno) : "short write");
    }
    if (fd >= 0) {
        (void)close(fd);
    }
    free(buf);
}

int
maildir_modseq_rewrite(const char *folder, uint32_t uidvalidity, uint64_t base,
                       const struct maildir_modseq_record *records, size_t count)
{
    char path[PATH_MAX];
    char tmp[PATH_MAX];
    int rc = path_of(folder, MAILDIR_MODSEQ_FILE_NAME, path, sizeof(path));
    if (rc == 0) {
        rc = path_of(folder, "tmp/" MAILDIR_MODSEQ_FILE_NAME ".new", tmp, sizeof(tmp));
    }
    if (rc != 0) {
        return rc;
    }
    FILE *f = fopen(tmp, "we");
    if (f == NULL) {
        return -errno;
    }
    (void)fprintf(f, "toaster-modseq 1 %" PRIu32 " %" PRIu64 "\n", uidvalidity, base);
    for (size_t i = 0; i < count; i++) {
        (void)fprintf(f, "%" PRIu32 " %" PRIu64 "\n", records[i].uid, records[i].modseq);
    }
    if (fflush(f) != 0 || ferror(f)) {
        rc = -EIO;
    }
    if (fclose(f) != 0 && rc == 0) {
        rc = -errno;
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        rc = -errno;
    }
    if (rc != 0) {
        (void)unlink(tmp);
    }
    return rc;
}

static int
record_cmp(const void *a, const void *b)
{
    uint32_t x = ((const struct maildir_modseq_record *)a)->uid;
    uint32_t y = ((const struct maildir_modseq_record *)b)->uid;
    return x < y ? -1 : x > y;
}

static uint64_t
now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int
path_of(const char *folder, const char *name, char *out, size_t out_bytes)
{
    int n = snprintf(out, out_bytes, "%s/%s", folder, name);
    return n > 0 && (size_t)n < out_bytes ? 0 : -ENAMETOOLONG;
}

static int
file_read(const char *path, char **buf_out, size_t *len_out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int err = errno;
        (void)close(fd);
        return -err;
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > MAILDIR_MODSEQ_FILE_BYTES_MAX) {
        (void)close(fd);
        return -E2BIG;
    }
    size_t size = (size_t)st.st_size;
    char *buf = malloc(size + 1);
    if (buf == NULL) {
        (void)close(fd);
        return -ENOMEM;
    }
    size_t len = 0;
    while (len < size) {
        ssize_t n = read(fd, buf + len, size - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        len += (size_t)n;
    }
    (void)close(fd);
    buf[len] = '\0';
    *buf_out = buf;
    *len_out = len;
    return 0;
}
