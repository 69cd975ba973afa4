/*
 * core/kv_snapshot.c - snapshots of the embedded key-value store (format
 * and contract in kv_snapshot.h).
 *
 * Owns the snapshot file format, the atomic replace sequence and the saver
 * thread. Does not own the store: it walks it with kv_embedded_foreach
 * (one set's lock at a time, let go before any I/O) and refills it with
 * kv_embedded_restore (never evicts). Runs on the thread that calls it
 * (start-up, shutdown) and on the saver thread; all of it blocks on the
 * disk, so never on a reactor.
 * Limits: a file holds at most KV_EMBEDDED_ENTRIES_CEILING records of at
 * most KV_SNAPSHOT_RECORD_BYTES_MAX bytes; a larger one is refused unread.
 */
#define _GNU_SOURCE
#include "core/kv_snapshot.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/assertions.h"
#include "core/fd_io.h"
#include "core/log.h"

#define KV_SNAPSHOT_MAGIC "TOASTKV"  /* with its NUL: 8 bytes */
#define KV_SNAPSHOT_RECORD_HEAD_BYTES 10u /* key length, value length, expiry */
#define KV_SNAPSHOT_RECORD_BYTES_MAX                                                   \
    (KV_SNAPSHOT_RECORD_HEAD_BYTES + KV_KEY_BYTES_MAX + KV_VALUE_BYTES_MAX)
#define KV_SNAPSHOT_CHECKED_BYTES 40u /* the header bytes the checksum covers */
#define KV_SNAPSHOT_BUFFER_BYTES 65536u
#define KV_SNAPSHOT_TMP_SUFFIX ".tmp"
#define KV_SNAPSHOT_FNV_OFFSET 14695981039346656037ull
#define KV_SNAPSHOT_FNV_PRIME 1099511628211ull
/* The longest time to live kv_set can give (ttl_s is a u32). */
#define KV_SNAPSHOT_TTL_MS_MAX ((uint64_t)UINT32_MAX * 1000u)

static_assert(sizeof(KV_SNAPSHOT_MAGIC) == 8, "the magic is 8 bytes with its NUL");
static_assert(KV_SNAPSHOT_CHECKED_BYTES + 8 == KV_SNAPSHOT_HEADER_BYTES,
              "the checksum is the header's last field");
static_assert(KV_SNAPSHOT_BUFFER_BYTES >= 2 * KV_SNAPSHOT_RECORD_BYTES_MAX,
              "a record fits the buffer");
static_assert((uint64_t)KV_EMBEDDED_ENTRIES_CEILING * KV_SNAPSHOT_RECORD_BYTES_MAX <
                  UINT64_MAX / 2,
              "the largest body's size fits u64");

/* Buffered, checksummed output to the temporary file. */
struct kv_snapshot_writer {
    int      fd;
    uint64_t wall_now_ms;
    uint64_t checksum;
    uint64_t entry_count;
    uint64_t body_bytes;
    size_t   used;
    uint8_t  buffer[KV_SNAPSHOT_BUFFER_BYTES];
};

/* Buffered input from the snapshot, with the bytes still expected. */
struct kv_snapshot_reader {
    int      fd;
    uint64_t remaining; /* of the body, not yet taken from the buffer */
    uint64_t checksum;
    size_t   start;
    size_t   end;
    uint8_t  buffer[KV_SNAPSHOT_BUFFER_BYTES];
};

struct kv_snapshot {
    struct kv      *kv;
    char           *path;
    uint32_t        interval_s;
    bool            has_thread;
    bool            is_stopping; /* under mutex */
    bool            is_failing;  /* saver thread only, then stop after join */
    pthread_t       thread;
    pthread_mutex_t mutex;
    pthread_cond_t  wake; /* on CLOCK_MONOTONIC */
};

/* One save at a time per process: they share "<path>.tmp". */
static pthread_mutex_t kv_snapshot_save_lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t kv_snapshot_wall_ms(void);
static uint64_t kv_snapshot_fnv(uint64_t h, const void *bytes, size_t len);
static void kv_snapshot_put_u32(uint8_t *out, uint32_t value);
static void kv_snapshot_put_u64(uint8_t *out, uint64_t value);
static uint32_t kv_snapshot_get_u32(const uint8_t *in);
static uint64_t kv_snapshot_get_u64(const uint8_t *in);
static int kv_snapshot_write_item(const struct kv_embedded_item *item, void *arg);
static int kv_snapshot_flush(struct kv_snapshot_writer *writer);
static int kv_snapshot_write_file(struct kv *kv, int fd, uint64_t wall_now_ms,
                                  struct kv_snapshot_stats *stats);
static int kv_snapshot_sync_dir(const char *path);
static int kv_snapshot_read_header(int fd, uint64_t *entry_count_out, uint64_t *body_bytes_out,
                                   uint8_t *header_out);
static int kv_snapshot_take(struct kv_snapshot_reader *reader, void *out, size_t len);
static int kv_snapshot_read_record(struct kv_snapshot_reader *reader, uint8_t *key,
                                   size_t *key_len_out, uint8_t *value, size_t *value_len_out,
                                   uint64_t *expires_wall_ms_out);
static int kv_snapshot_scan(int fd, uint64_t entry_count, uint64_t body_bytes,
                            const uint8_t *header, struct kv *kv, uint64_t wall_now_ms,
                            struct kv_snapshot_stats *stats);
static int kv_snapshot_make_dir(const char *path);
static void *kv_snapshot_main(void *arg);
static int kv_snapshot_save_logged(struct kv_snapshot *snapshot);

/* ---- save ---------------------------------------------------------------- */

int
kv_embedded_save(struct kv *kv, const char *path, struct kv_snapshot_stats *stats_out)
{
    return kv_embedded_save_at(kv, path, kv_snapshot_wall_ms(), stats_out);
}

int
kv_embedded_save_at(struct kv *kv, const char *path, uint64_t wall_now_ms,
                    struct kv_snapshot_stats *stats_out)
{
    ASSERT(kv != NULL);
    ASSERT(path != NULL);
    if (strcmp(kv_backend_name(kv), "embedded") != 0) {
        return -EOPNOTSUPP;
    }
    char tmp_path[PATH_MAX];
    size_t path_len = strlen(path);
    if (path_len == 0) {
        return -EINVAL;
    }
    if (path_len + sizeof(KV_SNAPSHOT_TMP_SUFFIX) > sizeof(tmp_path)) {
        return -ENAMETOOLONG;
    }
    memcpy(tmp_path, path, path_len);
    memcpy(tmp_path + path_len, KV_SNAPSHOT_TMP_SUFFIX, sizeof(KV_SNAPSHOT_TMP_SUFFIX));

    struct kv_snapshot_stats stats = {0};
    int rc = pthread_mutex_lock(&kv_snapshot_save_lock);
    ASSERT(rc == 0);
    /* O_TRUNC: a "<path>.tmp" left by a crash is ours to reuse. O_NOFOLLOW:
     * never write through a link someone put there. */
    int fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        rc = -errno;
    } else {
        rc = kv_snapshot_write_file(kv, fd, wall_now_ms, &stats);
        if (rc == 0 && fsync(fd) != 0) {
            rc = -errno;
        }
        if (close(fd) != 0 && rc == 0) {
            rc = -errno; /* NFS and friends report a lost write here */
        }
        if (rc == 0 && rename(tmp_path, path) != 0) {
            rc = -errno;
        }
        if (rc != 0) {
            /* The old snapshot stays; the torn new one goes. A failing
             * unlink leaves a file the next save truncates. */
            (void)unlink(tmp_path);
        } else {
            /* Renamed already: a failing directory fsync means the new name
             * may not survive a crash, which the caller hears about. */
            rc = kv_snapshot_sync_dir(path);
        }
    }
    int unlock_rc = pthread_mutex_unlock(&kv_snapshot_save_lock);
    ASSERT(unlock_rc == 0);
    if (rc == 0 && stats_out != NULL) {
        *stats_out = stats;
    }
    return rc;
}

/* A zeroed header first, the records as the walk finds them, then the
 * header with its count and checksum (known only at the end) over it. */
static int
kv_snapshot_write_file(struct kv *kv, int fd, uint64_t wall_now_ms,
                       struct kv_snapshot_stats *stats)
{
    struct kv_snapshot_writer *writer = calloc(1, sizeof(*writer));
    if (writer == NULL) {
        return -ENOMEM;
    }
    writer->fd = fd;
    writer->wall_now_ms = wall_now_ms;
    writer->checksum = KV_SNAPSHOT_FNV_OFFSET;
    uint8_t header[KV_SNAPSHOT_HEADER_BYTES] = {0};
    int rc = fd_write_all(fd, header, sizeof(header));
    if (rc == 0) {
        rc = kv_embedded_foreach(kv, kv_snapshot_write_item, writer);
    }
    if (rc == 0) {
        rc = kv_snapshot_flush(writer);
    }
    if (rc == 0) {
        ASSERT(writer->entry_count <= KV_EMBEDDED_ENTRIES_CEILING);
        memcpy(header, KV_SNAPSHOT_MAGIC, sizeof(KV_SNAPSHOT_MAGIC));
        kv_snapshot_put_u32(header + 8, KV_SNAPSHOT_VERSION);
        kv_snapshot_put_u32(header + 12, KV_SNAPSHOT_HEADER_BYTES);
        kv_snapshot_put_u64(header + 16, writer->entry_count);
        kv_snapshot_put_u64(header + 24, writer->body_bytes);
        kv_snapshot_put_u64(header + 32, wall_now_ms);
        uint64_t checksum = kv_snapshot_fnv(writer->checksum, header, KV_SNAPSHOT_CHECKED_BYTES);
        kv_snapshot_put_u64(header + KV_SNAPSHOT_CHECKED_BYTES, checksum);
        if (lseek(fd, 0, SEEK_SET) < 0) {
            rc = -errno;
        } else {
            rc = fd_write_all(fd, header, sizeof(header));
        }
    }
    stats->entry_count = writer->entry_count;
    free(writer);
    return rc;
}

static int
kv_snapshot_write_item(const struct kv_embedded_item *item, void *arg)
{
    struct kv_snapshot_writer *writer = arg;
    /* The store's own bounds: what it hands out is ours, not peer input. */
    ASSERT(item->key_len > 0 && item->key_len <= KV_KEY_BYTES_MAX);
    ASSERT(item->value_len <= KV_VALUE_BYTES_MAX);
    ASSERT(item->ttl_ms <= KV_SNAPSHOT_TTL_MS_MAX);
    if (writer->used + KV_SNAPSHOT_RECORD_BYTES_MAX > sizeof(writer->buffer)) {
        int rc = kv_snapshot_flush(writer);
        if (rc != 0) {
            return rc;
        }
    }
    uint8_t *record = writer->buffer + writer->used;
    record[0] = (uint8_t)item->key_len;
    record[1] = (uint8_t)item->value_len;
    kv_snapshot_put_u64(record + 2, item->ttl_ms == 0 ? 0 : writer->wall_now_ms + item->ttl_ms);
    memcpy(record + KV_SNAPSHOT_RECORD_HEAD_BYTES, item->key, item->key_len);
    if (item->value_len > 0) {
        memcpy(record + KV_SNAPSHOT_RECORD_HEAD_BYTES + item->key_len, item->value,
               item->value_len);
    }
    size_t len = KV_SNAPSHOT_RECORD_HEAD_BYTES + item->key_len + item->value_len;
    writer->used += len;
    writer->body_bytes += len;
    writer->entry_count++;
    return 0;
}

static int
kv_snapshot_flush(struct kv_snapshot_writer *writer)
{
    if (writer->used == 0) {
        return 0;
    }
    writer->checksum = kv_snapshot_fnv(writer->checksum, writer->buffer, writer->used);
    int rc = fd_write_all(writer->fd, writer->buffer, writer->used);
    writer->used = 0;
    return rc;
}

/* fsync the directory holding path, so the rename survives a crash. */
static int
kv_snapshot_sync_dir(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        dir[0] = '.';
        dir[1] = '\0';
    } else if (slash == path) {
        dir[0] = '/';
        dir[1] = '\0';
    } else {
        size_t len = (size_t)(slash - path);
        ASSERT(len < sizeof(dir)); /* path fit PATH_MAX already */
        memcpy(dir, path, len);
        dir[len] = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    int rc = fsync(fd) != 0 ? -errno : 0;
    (void)close(fd); /* read-only: nothing a close could lose */
    return rc;
}

/* ---- load ---------------------------------------------------------------- */

int
kv_embedded_load(struct kv *kv, const char *path, struct kv_snapshot_stats *stats_out)
{
    return kv_embedded_load_at(kv, path, kv_snapshot_wall_ms(), stats_out);
}

int
kv_embedded_load_at(struct kv *kv, const char *path, uint64_t wall_now_ms,
                    struct kv_snapshot_stats *stats_out)
{
    ASSERT(kv != NULL);
    ASSERT(path != NULL);
    if (strcmp(kv_backend_name(kv), "embedded") != 0) {
        return -EOPNOTSUPP;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        return -errno;
    }
    struct kv_snapshot_stats stats = {0};
    uint64_t entry_count = 0;
    uint64_t body_bytes = 0;
    uint8_t header[KV_SNAPSHOT_HEADER_BYTES];
    int rc = kv_snapshot_read_header(fd, &entry_count, &body_bytes, header);
    /* Twice over the same open file (a save renames a new one in, it never
     * writes this one): first everything is checked, then loaded. */
    if (rc == 0) {
        rc = kv_snapshot_scan(fd, entry_count, body_bytes, header, NULL, wall_now_ms, &stats);
    }
    if (rc == 0) {
        rc = kv_snapshot_scan(fd, entry_count, body_bytes, header, kv, wall_now_ms, &stats);
    }
    (void)close(fd); /* read-only */
    if (rc == 0 && stats_out != NULL) {
        *stats_out = stats;
    }
    return rc;
}

/* The header's fields, checked against each other and the file's size. */
static int
kv_snapshot_read_header(int fd, uint64_t *entry_count_out, uint64_t *body_bytes_out,
                        uint8_t *header_out)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        return -errno;
    }
    if (!S_ISREG(st.st_mode) || st.st_size < (off_t)KV_SNAPSHOT_HEADER_BYTES) {
        return -EINVAL;
    }
    int rc = fd_read_all(fd, header_out, KV_SNAPSHOT_HEADER_BYTES);
    if (rc != 0) {
        return rc == -ENODATA ? -EINVAL : rc;
    }
    if (memcmp(header_out, KV_SNAPSHOT_MAGIC, sizeof(KV_SNAPSHOT_MAGIC)) != 0 ||
        kv_snapshot_get_u32(header_out + 8) != KV_SNAPSHOT_VERSION ||
        kv_snapshot_get_u32(header_out + 12) != KV_SNAPSHOT_HEADER_BYTES) {
        return -EINVAL;
    }
    uint64_t entry_count = kv_snapshot_get_u64(header_out + 16);
    uint64_t body_bytes = kv_snapshot_get_u64(header_out + 24);
    /* Bounds first: the products below cannot overflow after them. */
    if (entry_count > KV_EMBEDDED_ENTRIES_CEILING ||
        body_bytes > entry_count * KV_SNAPSHOT_RECORD_BYTES_MAX ||
        body_bytes < entry_count * (KV_SNAPSHOT_RECORD_HEAD_BYTES + 1) ||
        body_bytes != (uint64_t)st.st_size - KV_SNAPSHOT_HEADER_BYTES) {
        return -EINVAL;
    }
    *entry_count_out = entry_count;
    *body_bytes_out = body_bytes;
    return 0;
}

/* Every record from the start of the body. With kv NULL: check each one's
 * bounds, that they fill the body exactly and the checksum; with kv: put
 * them in. Returns 0, -EINVAL or a read error. */
static int
kv_snapshot_scan(int fd, uint64_t entry_count, uint64_t body_bytes, const uint8_t *header,
                 struct kv *kv, uint64_t wall_now_ms, struct kv_snapshot_stats *stats)
{
    if (lseek(fd, KV_SNAPSHOT_HEADER_BYTES, SEEK_SET) < 0) {
        return -errno;
    }
    struct kv_snapshot_reader *reader = calloc(1, sizeof(*reader));
    if (reader == NULL) {
        return -ENOMEM;
    }
    reader->fd = fd;
    reader->remaining = body_bytes;
    reader->checksum = KV_SNAPSHOT_FNV_OFFSET;
    int rc = 0;
    /* Bounded by the header's count, itself at most the entries ceiling. */
    for (uint64_t i = 0; i < entry_count && rc == 0; i++) {
        uint8_t key[KV_KEY_BYTES_MAX];
        uint8_t value[KV_VALUE_BYTES_MAX];
        size_t key_len = 0;
        size_t value_len = 0;
        uint64_t expires_wall_ms = 0;
        rc = kv_snapshot_read_record(reader, key, &key_len, value, &value_len,
                                     &expires_wall_ms);
        if (rc != 0 || kv == NULL) {
            continue;
        }
        if (expires_wall_ms != 0 && expires_wall_ms <= wall_now_ms) {
            stats->expired_count++;
            continue;
        }
        uint64_t ttl_ms = expires_wall_ms == 0 ? 0 : expires_wall_ms - wall_now_ms;
        /* A wall clock set back since the save stretches the time left;
         * never past what kv_set could have given. */
        if (ttl_ms > KV_SNAPSHOT_TTL_MS_MAX) {
            ttl_ms = KV_SNAPSHOT_TTL_MS_MAX;
        }
        int restore_rc = kv_embedded_restore(kv, key, key_len, value, value_len, ttl_ms);
        if (restore_rc == 0) {
            stats->entry_count++;
        } else if (restore_rc == -ENOSPC) {
            stats->full_count++;
        } else if (restore_rc == -EEXIST) {
            stats->present_count++;
        } else {
            rc = restore_rc; /* bounds were checked: only a changed file gets here */
        }
    }
    /* Records must end exactly where the body does. */
    if (rc == 0 && (reader->remaining != 0 || reader->start != reader->end)) {
        rc = -EINVAL;
    }
    if (rc == 0) {
        uint64_t checksum = kv_snapshot_fnv(reader->checksum, header, KV_SNAPSHOT_CHECKED_BYTES);
        if (checksum != kv_snapshot_get_u64(header + KV_SNAPSHOT_CHECKED_BYTES)) {
            rc = -EINVAL;
        }
    }
    free(reader);
    return rc;
}

static int
kv_snapshot_read_record(struct kv_snapshot_reader *reader, uint8_t *key, size_t *key_len_out,
                        uint8_t *value, size_t *value_len_out, uint64_t *expires_wall_ms_out)
{
    uint8_t head[KV_SNAPSHOT_RECORD_HEAD_BYTES];
    int rc = kv_snapshot_take(reader, head, sizeof(head));
    if (rc != 0) {
        return rc;
    }
    size_t key_len = head[0];
    size_t value_len = head[1];
    if (key_len == 0 || key_len > KV_KEY_BYTES_MAX || value_len > KV_VALUE_BYTES_MAX) {
        return -EINVAL;
    }
    rc = kv_snapshot_take(reader, key, key_len);
    if (rc == 0 && value_len > 0) {
        rc = kv_snapshot_take(reader, value, value_len);
    }
    if (rc == 0) {
        *key_len_out = key_len;
        *value_len_out = value_len;
        *expires_wall_ms_out = kv_snapshot_get_u64(head + 2);
    }
    return rc;
}

/* len bytes of the body, refilling the buffer (and the checksum) as
 * needed. -EINVAL when the body ends first. */
static int
kv_snapshot_take(struct kv_snapshot_reader *reader, void *out, size_t len)
{
    ASSERT(len <= KV_SNAPSHOT_RECORD_BYTES_MAX);
    if (reader->end - reader->start < len) {
        size_t kept = reader->end - reader->start;
        memmove(reader->buffer, reader->buffer + reader->start, kept);
        reader->start = 0;
        reader->end = kept;
        size_t want = sizeof(reader->buffer) - kept;
        if (want > reader->remaining) {
            want = (size_t)reader->remaining;
        }
        if (want > 0) {
            int rc = fd_read_all(reader->fd, reader->buffer + kept, want);
            if (rc != 0) {
                return rc == -ENODATA ? -EINVAL : rc; /* shrank under us */
            }
            reader->checksum = kv_snapshot_fnv(reader->checksum, reader->buffer + kept, want);
            reader->remaining -= want;
            reader->end += want;
        }
        if (reader->end - reader->start < len) {
            return -EINVAL;
        }
    }
    memcpy(out, reader->buffer + reader->start, len);
    reader->start += len;
    return 0;
}

/* ---- the saver thread ---------------------------------------------------- */

int
kv_snapshot_start(struct kv *kv, const char *path, uint32_t interval_s,
                  struct kv_snapshot **snapshot_out)
{
    ASSERT(kv != NULL);
    ASSERT(path != NULL);
    ASSERT(snapshot_out != NULL);
    if (strcmp(kv_backend_name(kv), "embedded") != 0) {
        return -EOPNOTSUPP;
    }
    size_t path_len = strlen(path);
    if (path_len == 0 || interval_s > KV_SNAPSHOT_INTERVAL_S_CEILING) {
        return -EINVAL;
    }
    if (path_len + sizeof(KV_SNAPSHOT_TMP_SUFFIX) > PATH_MAX) {
        return -ENAMETOOLONG;
    }
    struct kv_snapshot *snapshot = calloc(1, sizeof(*snapshot));
    if (snapshot == NULL) {
        return -ENOMEM;
    }
    snapshot->path = strdup(path);
    if (snapshot->path == NULL) {
        free(snapshot);
        return -ENOMEM;
    }
    snapshot->kv = kv;
    snapshot->interval_s = interval_s;
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc == 0) {
        rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        if (rc == 0) {
            rc = pthread_cond_init(&snapshot->wake, &attr);
        }
        (void)pthread_condattr_destroy(&attr); /* cannot fail on glibc */
    }
    if (rc == 0) {
        rc = pthread_mutex_init(&snapshot->mutex, NULL);
        if (rc != 0) {
            (void)pthread_cond_destroy(&snapshot->wake); /* unused */
        }
    }
    if (rc == 0 && interval_s > 0) {
        rc = pthread_create(&snapshot->thread, NULL, kv_snapshot_main, snapshot);
        if (rc == 0) {
            snapshot->has_thread = true;
        } else {
            (void)pthread_cond_destroy(&snapshot->wake);   /* unused */
            (void)pthread_mutex_destroy(&snapshot->mutex); /* unused */
        }
    }
    if (rc != 0) {
        free(snapshot->path);
        free(snapshot);
        return -rc;
    }
    *snapshot_out = snapshot;
    return 0;
}

int
kv_snapshot_open(struct kv *kv, const char *path, uint32_t interval_s,
                 struct kv_snapshot **snapshot_out)
{
    ASSERT(kv != NULL);
    ASSERT(path != NULL);
    int rc = kv_snapshot_make_dir(path);
    if (rc != 0) {
        log_error("key-value snapshot %s: cannot make its directory: %s", path, strerror(-rc));
        return rc;
    }
    struct kv_snapshot_stats stats = {0};
    rc = kv_embedded_load(kv, path, &stats);
    if (rc == 0) {
        log_info("key-value snapshot %s: %llu entries loaded, %llu expired, %llu dropped "
                 "(store full), %llu already set",
                 path, (unsigned long long)stats.entry_count,
                 (unsigned long long)stats.expired_count, (unsigned long long)stats.full_count,
                 (unsigned long long)stats.present_count);
    } else if (rc == -ENOENT) {
        log_info("key-value snapshot %s: none yet, starting empty", path);
    } else if (rc == -EOPNOTSUPP || rc == -ENAMETOOLONG) {
        log_error("key-value snapshot %s: %s", path, strerror(-rc));
        return rc; /* the caller's mistake, not the file's */
    } else {
        /* Kept aside, not overwritten by the next save: someone may want
         * to know what broke it. Only the newest bad one is kept. */
        char bad_path[PATH_MAX];
        int len = snprintf(bad_path, sizeof(bad_path), "%s.bad", path);
        bool is_kept = len > 0 && (size_t)len < sizeof(bad_path) && rename(path, bad_path) == 0;
        log_warning("key-value snapshot %s: %s; not loaded%s%s", path,
                    rc == -EINVAL ? "not a snapshot, torn or corrupt" : strerror(-rc),
                    is_kept ? ", the file is kept as " : "", is_kept ? bad_path : "");
    }
    rc = kv_snapshot_start(kv, path, interval_s, snapshot_out);
    if (rc != 0) {
        log_error("key-value snapshot %s: cannot start the saver: %s", path, strerror(-rc));
    }
    return rc;
}

int
kv_snapshot_stop(struct kv_snapshot **snapshot_ptr)
{
    ASSERT(snapshot_ptr != NULL);
    struct kv_snapshot *snapshot = *snapshot_ptr;
    if (snapshot == NULL) {
        return 0;
    }
    if (snapshot->has_thread) {
        int rc = pthread_mutex_lock(&snapshot->mutex);
        ASSERT(rc == 0);
        snapshot->is_stopping = true;
        rc = pthread_cond_signal(&snapshot->wake);
        ASSERT(rc == 0);
        rc = pthread_mutex_unlock(&snapshot->mutex);
        ASSERT(rc == 0);
        rc = pthread_join(snapshot->thread, NULL);
        ASSERT(rc == 0); /* joinable, joined once */
    }
    /* The thread is gone: its is_failing is ours now. */
    int rc = kv_snapshot_save_logged(snapshot);
    if (rc == 0) {
        log_info("key-value snapshot %s saved at shutdown", snapshot->path);
    }
    int destroy_rc = pthread_cond_destroy(&snapshot->wake);
    ASSERT(destroy_rc == 0);
    destroy_rc = pthread_mutex_destroy(&snapshot->mutex);
    ASSERT(destroy_rc == 0);
    free(snapshot->path);
    free(snapshot);
    *snapshot_ptr = NULL;
    return rc;
}

static void *
kv_snapshot_main(void *arg)
{
    struct kv_snapshot *snapshot = arg;
    int rc = pthread_mutex_lock(&snapshot->mutex);
    ASSERT(rc == 0);
    /* One save per period until stop: a loop bounded by the daemon's life. */
    while (!snapshot->is_stopping) {
        struct timespec deadline;
        /* CLOCK_MONOTONIC cannot fail with a valid pointer. */
        (void)clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += (time_t)snapshot->interval_s;
        while (!snapshot->is_stopping) {
            rc = pthread_cond_timedwait(&snapshot->wake, &snapshot->mutex, &deadline);
            if (rc == ETIMEDOUT) {
                break;
            }
            ASSERT(rc == 0);
        }
        if (snapshot->is_stopping) {
            break;
        }
        rc = pthread_mutex_unlock(&snapshot->mutex);
        ASSERT(rc == 0);
        (void)kv_snapshot_save_logged(snapshot); /* logged there; retried next period */
        rc = pthread_mutex_lock(&snapshot->mutex);
        ASSERT(rc == 0);
    }
    rc = pthread_mutex_unlock(&snapshot->mutex);
    ASSERT(rc == 0);
    return NULL;
}

/* mkdir of the directory path names its file in, if there is one. */
static int
kv_snapshot_make_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL || slash == path) {
        return 0; /* the current directory or / */
    }
    char dir[PATH_MAX];
    size_t len = (size_t)(slash - path);
    if (len >= sizeof(dir)) {
        return -ENAMETOOLONG;
    }
    memcpy(dir, path, len);
    dir[len] = '\0';
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        return -errno;
    }
    return 0;
}

/* Save, and log a failure once until a save works again. */
static int
kv_snapshot_save_logged(struct kv_snapshot *snapshot)
{
    struct kv_snapshot_stats stats = {0};
    int rc = kv_embedded_save(snapshot->kv, snapshot->path, &stats);
    if (rc != 0) {
        if (!snapshot->is_failing) {
            log_error("key-value snapshot %s: %s (the previous one stays)", snapshot->path,
                      strerror(-rc));
        }
        snapshot->is_failing = true;
        return rc;
    }
    if (snapshot->is_failing) {
        log_info("key-value snapshot %s: saving again", snapshot->path);
    }
    snapshot->is_failing = false;
    log_debug("key-value snapshot %s: %llu entries", snapshot->path,
              (unsigned long long)stats.entry_count);
    return 0;
}

/* ---- helpers ------------------------------------------------------------- */

static uint64_t
kv_snapshot_wall_ms(void)
{
    struct timespec now;
    /* CLOCK_REALTIME cannot fail with a valid pointer. */
    (void)clock_gettime(CLOCK_REALTIME, &now);
    return (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
}

static uint64_t
kv_snapshot_fnv(uint64_t h, const void *bytes, size_t len)
{
    const uint8_t *p = bytes;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ p[i]) * KV_SNAPSHOT_FNV_PRIME;
    }
    return h;
}

static void
kv_snapshot_put_u32(uint8_t *out, uint32_t value)
{
    for (unsigned i = 0; i < 4; i++) {
        out[i] = (uint8_t)(value >> (8 * i));
    }
}

static void
kv_snapshot_put_u64(uint8_t *out, uint64_t value)
{
    for (unsigned i = 0; i < 8; i++) {
        out[i] = (uint8_t)(value >> (8 * i));
    }
}

static uint32_t
kv_snapshot_get_u32(const uint8_t *in)
{
    uint32_t value = 0;
    for (unsigned i = 0; i < 4; i++) {
        value |= (uint32_t)in[i] << (8 * i);
    }
    return value;
}

static uint64_t
kv_snapshot_get_u64(const uint8_t *in)
{
    uint64_t value = 0;
    for (unsigned i = 0; i < 8; i++) {
        value |= (uint64_t)in[i] << (8 * i);
    }
    return value;
}
