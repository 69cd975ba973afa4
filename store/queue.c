/*
 * store/queue.c - the outbound queue's files: writing an entry durably,
 * reading and validating it, listing and cleaning the directory.
 *
 * Owns the queue directory and the envelope format (store/queue.h). Does
 * not deliver anything and knows nothing of SMTP sessions: the committer
 * (store/delivery.c) writes entries in its batches, the delivery agent
 * reads and updates them. Every function may block on disk, so none runs
 * on a reactor. Limits: QUEUE_RCPTS_MAX, QUEUE_LINE_BYTES_MAX,
 * QUEUE_REPLY_BYTES, QUEUE_ENVELOPE_BYTES_MAX (a whole envelope file).
 */
#define _GNU_SOURCE
#include "store/queue.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "core/ascii.h"
#include "core/assertions.h"
#include "core/fd_io.h"
#include "core/log.h"

/* The whole file: every recipient line at its longest, and the rest. */
#define QUEUE_ENVELOPE_BYTES_MAX ((size_t)(QUEUE_RCPTS_MAX + 16) * QUEUE_LINE_BYTES_MAX)
#define QUEUE_NAME_BYTES 64 /* "<id>.env.tmp" and friends */
#define QUEUE_ID_LEN 16
#define QUEUE_ENV_XATTR "user.toaster.env" /* the envelope on <id>.msg */

static_assert(SPOOL_QUEUE_ID_BYTES == QUEUE_ID_LEN + 1, "queue ids are spool ids");
/* An address as xtext can triple; with orcpt, reply and the numbers it
 * still fits one line. */
static_assert(3 * SMTP_ADDRESS_BYTES_MAX + QUEUE_ORCPT_BYTES + QUEUE_REPLY_BYTES + 128 <
                  QUEUE_LINE_BYTES_MAX,
              "a recipient line fits");

struct queue {
    int         dir_fd;
    bool        is_fsync_on;
    atomic_bool is_xattr_unsupported; /* learnt once, by the first refusal */
    char path[SPOOL_PATH_BYTES];
};

/* A growing output buffer for one envelope, bounded. */
struct queue_buf {
    char  *bytes;
    size_t len;
    size_t capacity;
    bool   is_failed;
};

static void queue_buf_printf(struct queue_buf *buf, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- open and close ------------------------------------------------------------ */

int
queue_open(const char *data_dir, bool is_fsync_on, struct queue **queue_out)
{
    struct queue *queue = calloc(1, sizeof(*queue));
    if (queue == NULL) {
        return -ENOMEM;
    }
    queue->is_fsync_on = is_fsync_on;
    if ((size_t)snprintf(queue->path, sizeof(queue->path), "%s/queue", data_dir) >=
        sizeof(queue->path)) {
        free(queue);
        return -ENAMETOOLONG;
    }
    if (mkdir(queue->path, 0700) != 0 && errno != EEXIST) {
        int rc = -errno;
        log_error("cannot create %s: %s", queue->path, strerror(-rc));
        free(queue);
        return rc;
    }
    queue->dir_fd = open(queue->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (queue->dir_fd < 0) {
        int rc = -errno;
        log_error("cannot open %s: %s", queue->path, strerror(-rc));
        free(queue);
        return rc;
    }
    *queue_out = queue;
    return 0;
}

void
queue_close(struct queue **queue_ptr)
{
    struct queue *queue = *queue_ptr;
    if (queue == NULL) {
        return;
    }
    (void)close(queue->dir_fd); /* read-only directory fd: nothing to lose */
    free(queue);
    *queue_ptr = NULL;
}

int
queue_dir_fd(const struct queue *queue)
{
    return queue->dir_fd;
}

bool
queue_id_is_valid(const char *id)
{
    for (size_t i = 0; i < QUEUE_ID_LEN; i++) {
        char c = id[i];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return id[QUEUE_ID_LEN] == '\0';
}

static void
queue_name(char *out, const char *id, const char *suffix)
{
    int n = snprintf(out, QUEUE_NAME_BYTES, "%s%s", id, suffix);
    ASSERT(n > 0 && n < QUEUE_NAME_BYTES);
}

/* ---- xtext ------------------------------------------------------------ */

long
queue_xtext_encode(const char *src, char *dst, size_t dst_bytes)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)src; *p != '\0'; p++) {
        bool is_plain = *p >= '!' && *p <= '~' && *p != '+' && *p != '=';
        size_t need = is_plain ? 1 : 3;
        if (n + need >= dst_bytes) {
            return -ENAMETOOLONG;
        }
        if (is_plain) {
            dst[n++] = (char)*p;
        } else {
            dst[n++] = '+';
            dst[n++] = hex[*p >> 4];
            dst[n++] = hex[*p & 15];
        }
    }
    if (n >= dst_bytes) {
        return -ENAMETOOLONG;
    }
    dst[n] = '\0';
    return (long)n;
}

/* Decode xtext in place. Returns false on a bad escape, a NUL, or a byte
 * xtext never holds bare. */
static bool
xtext_decode_in_place(char *text)
{
    char *out = text;
    for (const char *p = text; *p != '\0'; p++) {
        if (*p == '+') {
            int hi = ascii_hex_value((unsigned char)p[1]);
            int lo = hi < 0 ? -1 : ascii_hex_value((unsigned char)p[2]);
            if (lo < 0 || (hi == 0 && lo == 0)) {
                return false;
            }
            *out++ = (char)(hi * 16 + lo);
            p += 2;
        } else if (*p < '!' || *p > '~' || *p == '=') {
            return false;
        } else {
            *out++ = *p;
        }
    }
    *out = '\0';
    return true;
}

/* ---- writing ------------------------------------------------------------ */

static void
queue_buf_printf(struct queue_buf *buf, const char *format, ...)
{
    if (buf->is_failed) {
        return;
    }
    for (int round = 0; round < 2; round++) {
        va_list args;
        va_start(args, format);
        int n = vsnprintf(buf->bytes + buf->len, buf->capacity - buf->len, format, args);
        va_end(args);
        if (n < 0) {
            buf->is_failed = true;
            return;
        }
        if ((size_t)n < buf->capacity - buf->len) {
            buf->len += (size_t)n;
            return;
        }
        size_t want = buf->capacity * 2;
        while (want <= buf->len + (size_t)n) {
            want *= 2;
        }
        if (want > QUEUE_ENVELOPE_BYTES_MAX + QUEUE_LINE_BYTES_MAX) {
            buf->is_failed = true;
            return;
        }
        char *grown = realloc(buf->bytes, want);
        if (grown == NULL) {
            buf->is_failed = true;
            return;
        }
        buf->bytes = grown;
        buf->capacity = want;
    }
    buf->is_failed = true;
}

const char *
queue_rcpt_state_name(enum queue_rcpt_state state)
{
    switch (state) {
    case QUEUE_RCPT_PENDING:
        return "pending";
    case QUEUE_RCPT_DELIVERED:
        return "delivered";
    case QUEUE_RCPT_FAILED:
        return "failed";
    }
    return NULL;
}

static void
notify_text(uint32_t notify, char *out, size_t out_bytes)
{
    static const struct {
        uint32_t    bit;
        const char *name;
    } names[] = { { QUEUE_NOTIFY_NEVER, "NEVER" },
                  { QUEUE_NOTIFY_SUCCESS, "SUCCESS" },
                  { QUEUE_NOTIFY_FAILURE, "FAILURE" },
                  { QUEUE_NOTIFY_DELAY, "DELAY" } };
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (notify & names[i].bit) {
            n += (size_t)snprintf(out + n, out_bytes - n, "%s%s", n ? "," : "", names[i].name);
        }
    }
    if (n == 0) {
        (void)snprintf(out, out_bytes, "-");
    }
}

size_t
queue_text_clean(const char *src, char *dst, size_t dst_bytes)
{
    ASSERT(dst_bytes > 0);
    size_t len = 0;
    if (src != NULL) {
        for (const char *p = src; *p != '\0' && len < dst_bytes - 1; p++) {
            unsigned char c = (unsigned char)*p;
            dst[len++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
        }
    }
    dst[len] = '\0';
    return len;
}

/* orcpt is kept as the client gave it: "addr-type;xtext", which never has
 * a space or control byte. */
static bool
orcpt_is_valid(const char *orcpt)
{
    size_t len = strnlen(orcpt, QUEUE_ORCPT_BYTES);
    if (len >= QUEUE_ORCPT_BYTES) {
        return false;
    }
    if (len == 0) {
        return true;
    }
    const char *semi = strchr(orcpt, ';');
    if (semi == NULL || semi == orcpt) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (orcpt[i] < '!' || orcpt[i] > '~') {
            return false;
        }
    }
    return true;
}

/* The envelope text of an entry, or -EINVAL (logged) if it breaks a bound. */
static int
envelope_format(const struct queue_entry *entry, struct queue_buf *buf)
{
    if (!queue_id_is_valid(entry->id) || entry->rcpt_count == 0 ||
        entry->rcpt_count > QUEUE_RCPTS_MAX || entry->rcpts == NULL || entry->arrival < 0 ||
        strnlen(entry->mail_from, sizeof(entry->mail_from)) >= sizeof(entry->mail_from) ||
        strnlen(entry->envid, sizeof(entry->envid)) >= sizeof(entry->envid) ||
        strnlen(entry->user, sizeof(entry->user)) >= sizeof(entry->user) ||
        (entry->is_held && entry->held_since < 0) || entry->warned_at < 0) {
        log_error("queue: refusing to write entry %.16s: out of bounds", entry->id);
        return -EINVAL;
    }
    char from[3 * SMTP_ADDRESS_BYTES_MAX + 1];
    char envid[3 * QUEUE_ENVID_BYTES + 1];
    char user[3 * QUEUE_USER_BYTES + 1];
    if (queue_xtext_encode(entry->mail_from, from, sizeof(from)) < 0 ||
        queue_xtext_encode(entry->envid, envid, sizeof(envid)) < 0 ||
        queue_xtext_encode(entry->user, user, sizeof(user)) < 0) {
        return -EINVAL; /* cannot happen with the bounds above */
    }
    bool is_plain = !entry->is_held && entry->warned_at == 0;
    const char *ret = entry->ret == QUEUE_RET_FULL   ? "full"
                      : entry->ret == QUEUE_RET_HDRS ? "hdrs"
                                                     : "-";
    queue_buf_printf(buf,
                     "toaster-queue %d\nid %s\narrival %" PRId64 "\nsize %" PRIu64
                     "\nfrom <%s>\nret %s\nenvid %s\nuser %s\n",
                     is_plain ? QUEUE_VERSION_PLAIN : QUEUE_VERSION, entry->id,
                     entry->arrival, entry->size, from, ret, envid[0] != '\0' ? envid : "-",
                     user[0] != '\0' ? user : "-");
    if (entry->is_held) {
        char reason[QUEUE_HOLD_REASON_BYTES];
        size_t reason_len = queue_text_clean(entry->hold_reason, reason, sizeof(reason));
        queue_buf_printf(buf, "hold %" PRId64 "%s%s\n", entry->held_since,
                         reason_len > 0 ? " " : "", reason);
    }
    if (entry->warned_at != 0) {
        queue_buf_printf(buf, "warned %" PRId64 "\n", entry->warned_at);
    }
    for (size_t i = 0; i < entry->rcpt_count; i++) {
        const struct queue_rcpt *rcpt = &entry->rcpts[i];
        char address[3 * SMTP_ADDRESS_BYTES_MAX + 1];
        const char *state = queue_rcpt_state_name(rcpt->state);
        if (rcpt->address == NULL || rcpt->address[0] == '\0' ||
            strnlen(rcpt->address, SMTP_ADDRESS_BYTES_MAX + 1) > SMTP_ADDRESS_BYTES_MAX ||
            queue_xtext_encode(rcpt->address, address, sizeof(address)) < 0 ||
            (rcpt->orcpt != NULL && !orcpt_is_valid(rcpt->orcpt)) || state == NULL ||
            rcpt->next_attempt < 0 || (rcpt->notify & ~0xfu) != 0) {
            log_error("queue: refusing to write entry %s: recipient %zu out of bounds",
                      entry->id, i);
            return -EINVAL;
        }
        char notify[64];
        notify_text(rcpt->notify, notify, sizeof(notify));
        /* The reply is free text: control bytes become spaces, and it is
         * cut at its bound. */
        char reply[QUEUE_REPLY_BYTES];
        size_t reply_len = queue_text_clean(rcpt->last_reply, reply, sizeof(reply));
        queue_buf_printf(buf, "rcpt %s %" PRIu32 " %" PRId64 " <%s> %s %s%s%s\n", state,
                         rcpt->attempts, rcpt->next_attempt, address,
                         rcpt->orcpt != NULL && rcpt->orcpt[0] != '\0' ? rcpt->orcpt : "-",
                         notify, reply_len > 0 ? " " : "", reply);
    }
    queue_buf_printf(buf, "end\n");
    return buf->is_failed ? -ENOMEM : 0;
}

/* The envelope text of entry in buf (malloc'd; the caller frees
 * buf->bytes), or -EINVAL / -ENOMEM. */
static int
envelope_render(const struct queue_entry *entry, struct queue_buf *buf)
{
    *buf = (struct queue_buf){ .capacity = 4096 };
    buf->bytes = malloc(buf->capacity);
    if (buf->bytes == NULL) {
        return -ENOMEM;
    }
    int rc = envelope_format(entry, buf);
    if (rc != 0) {
        free(buf->bytes);
        buf->bytes = NULL;
    }
    return rc;
}

/* Set the envelope attribute on fd (flags: 0, or XATTR_REPLACE). Any
 * failure means "use a file instead"; a file system without user
 * attributes is remembered, so it is not asked again. */
static int
envelope_attach(struct queue *queue, int fd, const char *bytes, size_t len, int flags)
{
    if (len > QUEUE_XATTR_BYTES_MAX ||
        atomic_load_explicit(&queue->is_xattr_unsupported, memory_order_relaxed)) {
        return -E2BIG;
    }
    if (fsetxattr(fd, QUEUE_ENV_XATTR, bytes, len, flags) == 0) {
        return 0;
    }
    int rc = -errno;
    if (rc == -EOPNOTSUPP &&
        !atomic_exchange_explicit(&queue->is_xattr_unsupported, true, memory_order_relaxed)) {
        log_warning("queue: %s has no user extended attributes; each envelope gets a file",
                   queue->path);
    }
    return rc;
}

/* Write bytes to a new "<id>.env.tmp" (O_EXCL: -EEXIST when taken).
 * Returns 0 with the open file in *fd_out, or -errno (nothing left). */
static int
envelope_file_stage(struct queue *queue, const char *id, const struct queue_buf *buf,
                    int *fd_out)
{
    char name[QUEUE_NAME_BYTES];
    queue_name(name, id, ".env.tmp");
    int fd = openat(queue->dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        return -errno;
    }
    int rc = fd_write_all(fd, buf->bytes, buf->len);
    if (rc != 0) {
        struct queue_staged staged = { .fd = fd };
        queue_entry_unstage(queue, id, &staged);
        return rc;
    }
    *fd_out = fd;
    return 0;
}

/* An envelope file replaced whole: a stale temporary file (an update that
 * crashed half-way) dropped, the new one written, synced, renamed over
 * "<id>.env". The caller syncs the directory. */
static int
envelope_file_put(struct queue *queue, const char *id, const struct queue_buf *buf)
{
    char tmp[QUEUE_NAME_BYTES];
    char final[QUEUE_NAME_BYTES];
    queue_name(tmp, id, ".env.tmp");
    queue_name(final, id, ".env");
    (void)unlinkat(queue->dir_fd, tmp, 0); /* ENOENT is the usual answer */
    int fd;
    int rc = envelope_file_stage(queue, id, buf, &fd);
    if (rc != 0) {
        return rc;
    }
    struct queue_staged staged = { .fd = fd };
    if (queue->is_fsync_on && fsync(fd) != 0) {
        rc = -errno;
        queue_entry_unstage(queue, id, &staged);
        return rc;
    }
    if (renameat(queue->dir_fd, tmp, queue->dir_fd, final) != 0) {
        rc = -errno;
        queue_entry_unstage(queue, id, &staged);
        return rc;
    }
    (void)close(fd); /* synced before the rename */
    return 0;
}

int
queue_entry_stage(struct queue *queue, const struct queue_entry *entry,
                  const struct queue_source *source, struct queue_staged *staged_out)
{
    struct queue_buf buf;
    int rc = envelope_render(entry, &buf);
    if (rc != 0) {
        return rc;
    }
    if (source->is_exclusive && envelope_attach(queue, source->fd, buf.bytes, buf.len, 0) == 0) {
        *staged_out = (struct queue_staged){ .fd = source->fd, .is_on_message = true };
        free(buf.bytes);
        return 0;
    }
    int fd;
    rc = envelope_file_stage(queue, entry->id, &buf, &fd);
    free(buf.bytes);
    if (rc == 0) {
        *staged_out = (struct queue_staged){ .fd = fd, .is_on_message = false };
    }
    return rc;
}

void
queue_entry_unstage(struct queue *queue, const char *id, struct queue_staged *staged)
{
    if (staged->is_on_message) {
        if (fremovexattr(staged->fd, QUEUE_ENV_XATTR) != 0 && errno != ENODATA) {
            log_warning("queue: cannot remove the envelope attribute of %s's message: %s", id,
                        strerror(errno));
        }
        staged->fd = -1; /* the caller's file */
        return;
    }
    char name[QUEUE_NAME_BYTES];
    queue_name(name, id, ".env.tmp");
    (void)close(staged->fd); /* the file is being thrown away */
    staged->fd = -1;
    if (unlinkat(queue->dir_fd, name, 0) != 0 && errno != ENOENT) {
        log_warning("queue: cannot remove %s/%s: %s", queue->path, name, strerror(errno));
    }
}

/* The envelope attribute of source_fd onto out_fd (a copy of the message).
 * Where out_fd cannot take it, its bytes land in spill, for "<id>.env"
 * once the copy has its name (the order of publish). Returns whether
 * out_fd carries it, or -errno. */
static int
envelope_carry(struct queue *queue, int source_fd, int out_fd, struct queue_buf *spill)
{
    char bytes[QUEUE_XATTR_BYTES_MAX];
    ssize_t len = fgetxattr(source_fd, QUEUE_ENV_XATTR, bytes, sizeof(bytes));
    if (len <= 0) {
        return len == 0 ? -EBADMSG : -errno;
    }
    if (envelope_attach(queue, out_fd, bytes, (size_t)len, 0) == 0) {
        return 1;
    }
    spill->bytes = malloc((size_t)len);
    if (spill->bytes == NULL) {
        return -ENOMEM;
    }
    memcpy(spill->bytes, bytes, (size_t)len);
    spill->len = spill->capacity = (size_t)len;
    return 0;
}

/* The message file by copy, for when a link cannot serve (the spool on
 * another file system): tmp name, data (and attribute) synced, rename. */
static int
message_copy(struct queue *queue, const char *id, int source_fd, bool has_envelope)
{
    char tmp[QUEUE_NAME_BYTES];
    char final[QUEUE_NAME_BYTES];
    queue_name(tmp, id, ".msg.tmp");
    queue_name(final, id, ".msg");
    struct stat st;
    if (fstat(source_fd, &st) != 0) {
        return -errno;
    }
    int out = openat(queue->dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
        return -errno;
    }
    int rc = 0;
    loff_t offset = 0;
    while (rc == 0 && offset < st.st_size) {
        ssize_t n = copy_file_range(source_fd, &offset, out, NULL,
                                    (size_t)(st.st_size - offset), 0);
        if (n < 0) {
            rc = -errno;
        } else if (n == 0) {
            rc = -EIO;
        }
    }
    struct queue_buf spill = { 0 };
    bool is_carried = false;
    if (rc == 0 && has_envelope) {
        rc = envelope_carry(queue, source_fd, out, &spill);
        is_carried = rc == 1;
        rc = rc < 0 ? rc : 0;
    }
    if (rc == 0 && queue->is_fsync_on && (is_carried ? fsync(out) : fdatasync(out)) != 0) {
        rc = -errno;
    }
    if (close(out) != 0 && rc == 0) {
        rc = -errno;
    }
    if (rc == 0 && renameat(queue->dir_fd, tmp, queue->dir_fd, final) != 0) {
        rc = -errno;
    }
    if (rc != 0) {
        (void)unlinkat(queue->dir_fd, tmp, 0); /* best effort; start-up cleans the rest */
    } else if (spill.bytes != NULL) {
        rc = envelope_file_put(queue, id, &spill);
        if (rc != 0) {
            (void)unlinkat(queue->dir_fd, final, 0); /* undo; start-up removes it otherwise */
        }
    }
    free(spill.bytes);
    return rc;
}

static int
message_place(struct queue *queue, const char *id, const struct queue_source *source,
              bool has_envelope)
{
    char name[QUEUE_NAME_BYTES];
    queue_name(name, id, ".msg");
    int rc;
    if (source->is_unnamed) {
        char proc_path[64];
        (void)snprintf(proc_path, sizeof(proc_path), "/proc/self/fd/%d", source->fd);
        rc = linkat(AT_FDCWD, proc_path, queue->dir_fd, name, AT_SYMLINK_FOLLOW);
    } else {
        rc = linkat(source->dir_fd, source->name, queue->dir_fd, name, 0);
    }
    if (rc == 0) {
        return 0;
    }
    rc = -errno;
    if (rc == -EXDEV || rc == -EPERM || rc == -EMLINK) {
        return message_copy(queue, id, source->fd, has_envelope);
    }
    return rc;
}

int
queue_entry_publish(struct queue *queue, const char *id, const struct queue_source *source,
                    struct queue_staged *staged)
{
    ASSERT(queue_id_is_valid(id));
    ASSERT(!staged->is_on_message || staged->fd == source->fd);
    int rc = message_place(queue, id, source, staged->is_on_message);
    if (rc != 0) {
        queue_entry_unstage(queue, id, staged);
        return rc;
    }
    if (staged->is_on_message) {
        return 0;
    }
    char tmp[QUEUE_NAME_BYTES];
    char final[QUEUE_NAME_BYTES];
    queue_name(tmp, id, ".env.tmp");
    queue_name(final, id, ".env");
    if (renameat(queue->dir_fd, tmp, queue->dir_fd, final) != 0) {
        rc = -errno;
        char msg[QUEUE_NAME_BYTES];
        queue_name(msg, id, ".msg");
        (void)unlinkat(queue->dir_fd, msg, 0); /* undo; start-up removes it otherwise */
        queue_entry_unstage(queue, id, staged);
        return rc;
    }
    if (close(staged->fd) != 0) {
        /* The envelope was synced by the caller before the rename, so a
         * close error cannot lose it; say so all the same. */
        log_warning("queue: close %s/%s: %s", queue->path, final, strerror(errno));
    }
    staged->fd = -1;
    return 0;
}

static int
dir_sync(struct queue *queue)
{
    if (queue->is_fsync_on && fsync(queue->dir_fd) != 0) {
        return -errno;
    }
    return 0;
}

int
queue_entry_store(struct queue *queue, const struct queue_entry *entry,
                  const struct queue_source *source)
{
    struct queue_staged staged;
    int rc = queue_entry_stage(queue, entry, source, &staged);
    if (rc != 0) {
        return rc;
    }
    if (queue->is_fsync_on && fsync(staged.fd) != 0) {
        rc = -errno;
        queue_entry_unstage(queue, entry->id, &staged);
        return rc;
    }
    rc = queue_entry_publish(queue, entry->id, source, &staged);
    if (rc != 0) {
        return rc;
    }
    rc = dir_sync(queue);
    if (rc != 0) {
        (void)queue_entry_remove(queue, entry->id); /* never half promised */
    }
    return rc;
}

int
queue_entry_update(struct queue *queue, const struct queue_entry *entry)
{
    char env[QUEUE_NAME_BYTES];
    char msg[QUEUE_NAME_BYTES];
    queue_name(env, entry->id, ".env");
    queue_name(msg, entry->id, ".msg");
    bool has_file = faccessat(queue->dir_fd, env, F_OK, 0) == 0;
    if (!has_file && errno != ENOENT) {
        return -errno;
    }
    int msg_fd = -1;
    if (!has_file) {
        msg_fd = openat(queue->dir_fd, msg, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (msg_fd < 0) {
            return -errno;
        }
    }
    struct queue_buf buf;
    int rc = envelope_render(entry, &buf);
    if (rc == 0 && msg_fd >= 0 &&
        envelope_attach(queue, msg_fd, buf.bytes, buf.len, XATTR_REPLACE) == 0) {
        if (queue->is_fsync_on && fsync(msg_fd) != 0) {
            rc = -errno;
        }
        free(buf.bytes);
        (void)close(msg_fd); /* read-only; synced above */
        return rc;
    }
    if (rc == 0) {
        /* An envelope file, or one grown past the attribute: a file from
         * now on, which wins over a stale attribute (removed all the same). */
        rc = envelope_file_put(queue, entry->id, &buf);
        free(buf.bytes);
    }
    if (rc == 0) {
        rc = dir_sync(queue);
    }
    if (rc == 0 && msg_fd >= 0 && fremovexattr(msg_fd, QUEUE_ENV_XATTR) != 0 &&
        errno != ENODATA) {
        log_warning("queue: %s: cannot remove the envelope attribute now in %s: %s",
                    entry->id, env, strerror(errno));
    }
    if (msg_fd >= 0) {
        (void)close(msg_fd); /* read-only */
    }
    return rc;
}

static int
entry_unlink(struct queue *queue, const char *id, bool is_synced)
{
    if (!queue_id_is_valid(id)) {
        return -EINVAL;
    }
    char env[QUEUE_NAME_BYTES];
    char msg[QUEUE_NAME_BYTES];
    queue_name(env, id, ".env");
    queue_name(msg, id, ".msg");
    int env_rc = unlinkat(queue->dir_fd, env, 0) == 0 ? 0 : -errno;
    int msg_rc = unlinkat(queue->dir_fd, msg, 0) == 0 ? 0 : -errno;
    /* An entry on its message file alone has no envelope file. */
    int rc = env_rc == -ENOENT && msg_rc == 0 ? 0 : env_rc != 0 ? env_rc : msg_rc;
    int sync_rc = is_synced ? dir_sync(queue) : 0;
    return rc != 0 ? rc : sync_rc;
}

int
queue_entry_remove(struct queue *queue, const char *id)
{
    return entry_unlink(queue, id, true);
}

int
queue_entry_retire(struct queue *queue, const char *id)
{
    return entry_unlink(queue, id, false);
}

/* Whether the entry whose <id>.msg is open as msg_fd has an envelope: its
 * file, or the attribute. Returns 0, -ENOENT, or -errno. */
static int
envelope_exists(struct queue *queue, const char *id, int msg_fd)
{
    char env[QUEUE_NAME_BYTES];
    queue_name(env, id, ".env");
    if (faccessat(queue->dir_fd, env, F_OK, 0) == 0) {
        return 0;
    }
    if (errno != ENOENT) {
        return -errno;
    }
    ssize_t len = fgetxattr(msg_fd, QUEUE_ENV_XATTR, NULL, 0);
    if (len > 0) {
        return 0;
    }
    return len == 0 || errno == ENODATA || errno == EOPNOTSUPP ? -ENOENT : -errno;
}

/* ---- locking and operators' edits ----------------------------------------- */

int
queue_entry_lock(struct queue *queue, const char *id, bool is_waiting, int *lock_fd_out)
{
    if (!queue_id_is_valid(id)) {
        return -EINVAL;
    }
    char msg[QUEUE_NAME_BYTES];
    queue_name(msg, id, ".msg");
    int fd = openat(queue->dir_fd, msg, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        return -errno;
    }
    int operation = LOCK_EX | (is_waiting ? 0 : LOCK_NB);
    /* EINTR (a signal while waiting) is the only repeat; bounded by the
     * signals the process gets. */
    while (flock(fd, operation) != 0) {
        int rc = -errno;
        if (rc == -EINTR) {
            continue;
        }
        (void)close(fd); /* read-only, and not locked */
        return rc == -EAGAIN ? -EWOULDBLOCK : rc;
    }
    /* The holder we waited for may have removed the entry: its message
     * file's name gone (or, between an envelope file's removal and the
     * message's, no envelope left) says so. */
    struct stat held;
    struct stat named;
    int rc = 0;
    if (fstat(fd, &held) != 0 || fstatat(queue->dir_fd, msg, &named, AT_SYMLINK_NOFOLLOW) != 0) {
        rc = -errno;
    } else if (held.st_ino != named.st_ino || held.st_dev != named.st_dev) {
        rc = -ENOENT;
    } else {
        rc = envelope_exists(queue, id, fd);
    }
    if (rc != 0) {
        (void)close(fd); /* read-only; closing drops the lock */
        return rc;
    }
    *lock_fd_out = fd;
    return 0;
}

void
queue_entry_unlock(int *lock_fd)
{
    if (*lock_fd < 0) {
        return;
    }
    (void)close(*lock_fd); /* read-only; closing drops the lock */
    *lock_fd = -1;
}

/* Apply edit to a loaded entry. Returns true when it changed. */
static bool
entry_apply(struct queue_entry *entry, enum queue_edit edit, int64_t now, const char *reason)
{
    switch (edit) {
    case QUEUE_EDIT_HOLD:
        if (entry->is_held) {
            return false;
        }
        entry->is_held = true;
        entry->held_since = now;
        (void)queue_text_clean(reason, entry->hold_reason, sizeof(entry->hold_reason));
        return true;
    case QUEUE_EDIT_RELEASE:
        if (!entry->is_held) {
            return false;
        }
        entry->is_held = false;
        entry->held_since = 0;
        entry->hold_reason[0] = '\0';
        return true;
    case QUEUE_EDIT_FLUSH: {
        bool is_changed = false;
        for (size_t i = 0; i < entry->rcpt_count; i++) {
            struct queue_rcpt *rcpt = &entry->rcpts[i];
            if (rcpt->state == QUEUE_RCPT_PENDING && rcpt->next_attempt != 0) {
                rcpt->next_attempt = 0;
                is_changed = true;
            }
        }
        return is_changed;
    }
    case QUEUE_EDIT_DELETE:
        break;
    }
    ASSERT(false); /* delete never gets here */
    return false;
}

int
queue_entry_edit(struct queue *queue, const char *id, enum queue_edit edit, int64_t now,
                 const char *reason, char *err, size_t err_bytes)
{
    ASSERT(err_bytes > 0);
    ASSERT(now >= 0);
    err[0] = '\0';
    int lock_fd = -1;
    int rc = queue_entry_lock(queue, id, true, &lock_fd);
    if (rc != 0) {
        (void)snprintf(err, err_bytes, "queue/%.16s: %s", id,
                       rc == -ENOENT ? "no such entry" : strerror(-rc));
        return rc;
    }
    if (edit == QUEUE_EDIT_DELETE) {
        rc = queue_entry_remove(queue, id);
        if (rc != 0) {
            (void)snprintf(err, err_bytes, "queue/%s: remove: %s", id, strerror(-rc));
        }
        queue_entry_unlock(&lock_fd);
        return rc;
    }
    struct queue_entry entry;
    rc = queue_entry_load(queue, id, &entry, err, err_bytes);
    if (rc == 0) {
        if (entry_apply(&entry, edit, now, reason)) {
            rc = queue_entry_update(queue, &entry);
            if (rc != 0) {
                (void)snprintf(err, err_bytes, "queue/%s.env: rewrite: %s", id, strerror(-rc));
            }
        } else {
            rc = 1;
        }
        queue_entry_release(&entry);
    }
    queue_entry_unlock(&lock_fd);
    return rc;
}

/* ---- reading ------------------------------------------------------------ */

struct parse {
    const char *id;
    const char *where; /* ".env", or where the attribute is */
    char       *err;
    size_t      err_bytes;
    unsigned    line_number;
};

static int parse_fail(struct parse *parse, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static int
parse_fail(struct parse *parse, const char *format, ...)
{
    char reason[QUEUE_ERROR_BYTES];
    va_list args;
    va_start(args, format);
    (void)vsnprintf(reason, sizeof(reason), format, args);
    va_end(args);
    (void)snprintf(parse->err, parse->err_bytes, "queue/%s%s:%u: %s", parse->id, parse->where,
                   parse->line_number, reason);
    return -EBADMSG;
}

static bool
parse_u64(const char *text, uint64_t *value_out)
{
    if (*text == '\0' || strlen(text) > 20) {
        return false;
    }
    uint64_t value = 0;
    for (const char *p = text; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            return false;
        }
        uint64_t digit = (uint64_t)(*p - '0');
        if (value > (UINT64_MAX - digit) / 10) {
            return false;
        }
        value = value * 10 + digit;
    }
    *value_out = value;
    return true;
}

static bool
parse_time(const char *text, int64_t *value_out)
{
    uint64_t value;
    if (!parse_u64(text, &value) || value > (uint64_t)INT64_MAX) {
        return false;
    }
    *value_out = (int64_t)value;
    return true;
}

/* "<xtext>" decoded in place; returns the address (may be "") or NULL. */
static char *
parse_angle(char *token, size_t bytes_max)
{
    size_t len = strlen(token);
    if (len < 2 || token[0] != '<' || token[len - 1] != '>') {
        return NULL;
    }
    token[len - 1] = '\0';
    char *inner = token + 1;
    if (!xtext_decode_in_place(inner) || strlen(inner) >= bytes_max) {
        return NULL;
    }
    return inner;
}

/* The next line (LF-terminated) of the text, NUL-terminated in place. */
static char *
next_line(char **cursor, char *end)
{
    if (*cursor >= end) {
        return NULL;
    }
    char *line = *cursor;
    char *lf = memchr(line, '\n', (size_t)(end - line));
    if (lf == NULL) {
        return NULL; /* the last line always ends with LF ("end\n") */
    }
    *lf = '\0';
    *cursor = lf + 1;
    return line;
}

/* "key value": the value after the expected key, or NULL. */
static char *
key_value(char *line, const char *key)
{
    size_t n = strlen(key);
    if (strncmp(line, key, n) != 0 || line[n] != ' ') {
        return NULL;
    }
    return line + n + 1;
}

static int
parse_notify(char *text, uint32_t *notify_out)
{
    if (strcmp(text, "-") == 0) {
        *notify_out = 0;
        return 0;
    }
    uint32_t notify = 0;
    char *save = NULL;
    for (char *word = strtok_r(text, ",", &save); word != NULL; word = strtok_r(NULL, ",", &save)) {
        if (strcmp(word, "NEVER") == 0) {
            notify |= QUEUE_NOTIFY_NEVER;
        } else if (strcmp(word, "SUCCESS") == 0) {
            notify |= QUEUE_NOTIFY_SUCCESS;
        } else if (strcmp(word, "FAILURE") == 0) {
            notify |= QUEUE_NOTIFY_FAILURE;
        } else if (strcmp(word, "DELAY") == 0) {
            notify |= QUEUE_NOTIFY_DELAY;
        } else {
            return -1;
        }
    }
    *notify_out = notify;
    return 0;
}

/* One "rcpt" line's fields after the key, split in place. */
static int
parse_rcpt(struct parse *parse, char *text, struct queue_rcpt *rcpt)
{
    char *fields[6];
    char *cursor = text;
    for (size_t i = 0; i < 6; i++) {
        char *space = strchr(cursor, ' ');
        if (space == NULL && i < 5) {
            return parse_fail(parse, "rcpt line has too few fields");
        }
        fields[i] = cursor;
        if (space != NULL) {
            *space = '\0';
            cursor = space + 1;
        } else {
            cursor = NULL;
        }
        if (cursor == NULL) {
            break;
        }
    }
    /* What follows the sixth field is the reply (may hold spaces). */
    rcpt->last_reply = cursor != NULL ? cursor : "";
    if (strlen(rcpt->last_reply) >= QUEUE_REPLY_BYTES) {
        return parse_fail(parse, "reply longer than %d bytes", QUEUE_REPLY_BYTES - 1);
    }
    if (strcmp(fields[0], "pending") == 0) {
        rcpt->state = QUEUE_RCPT_PENDING;
    } else if (strcmp(fields[0], "delivered") == 0) {
        rcpt->state = QUEUE_RCPT_DELIVERED;
    } else if (strcmp(fields[0], "failed") == 0) {
        rcpt->state = QUEUE_RCPT_FAILED;
    } else {
        return parse_fail(parse, "unknown recipient state");
    }
    uint64_t attempts;
    if (!parse_u64(fields[1], &attempts) || attempts > UINT32_MAX) {
        return parse_fail(parse, "bad attempt count");
    }
    rcpt->attempts = (uint32_t)attempts;
    if (!parse_time(fields[2], &rcpt->next_attempt)) {
        return parse_fail(parse, "bad next attempt time");
    }
    char *address = parse_angle(fields[3], SMTP_ADDRESS_BYTES_MAX + 1);
    if (address == NULL || address[0] == '\0') {
        return parse_fail(parse, "bad recipient address");
    }
    rcpt->address = address;
    if (strcmp(fields[4], "-") == 0) {
        rcpt->orcpt = "";
    } else if (!orcpt_is_valid(fields[4])) {
        return parse_fail(parse, "bad ORCPT");
    } else {
        rcpt->orcpt = fields[4];
    }
    if (parse_notify(fields[5], &rcpt->notify) != 0) {
        return parse_fail(parse, "bad NOTIFY");
    }
    return 0;
}

/* A "hold" line's value: only in version 2, only once, only before the
 * first recipient. */
static int
parse_hold(struct parse *parse, uint64_t version, char *text, struct queue_entry *entry)
{
    if (version < 2) {
        return parse_fail(parse, "\"hold\" in a version %" PRIu64 " envelope", version);
    }
    if (entry->is_held || entry->warned_at != 0 || entry->rcpt_count > 0) {
        return parse_fail(parse, "\"hold\" out of place");
    }
    char *space = strchr(text, ' ');
    const char *reason = "";
    if (space != NULL) {
        *space = '\0';
        reason = space + 1;
    }
    if (!parse_time(text, &entry->held_since)) {
        return parse_fail(parse, "bad hold time");
    }
    size_t reason_len = strlen(reason);
    if (reason_len >= sizeof(entry->hold_reason)) {
        return parse_fail(parse, "hold reason longer than %d bytes", QUEUE_HOLD_REASON_BYTES - 1);
    }
    memcpy(entry->hold_reason, reason, reason_len + 1);
    entry->is_held = true;
    return 0;
}

/* A "warned" line's value: only in version 2, only once, after any hold
 * line and before the first recipient; a time after 0 (0 is "never"). */
static int
parse_warned(struct parse *parse, uint64_t version, const char *text, struct queue_entry *entry)
{
    if (version < 2) {
        return parse_fail(parse, "\"warned\" in a version %" PRIu64 " envelope", version);
    }
    if (entry->warned_at != 0 || entry->rcpt_count > 0) {
        return parse_fail(parse, "\"warned\" out of place");
    }
    if (!parse_time(text, &entry->warned_at) || entry->warned_at == 0) {
        entry->warned_at = 0;
        return parse_fail(parse, "bad warned time");
    }
    return 0;
}

static int
envelope_parse(struct parse *parse, char *text, size_t len, struct queue_entry *entry)
{
    char *cursor = text;
    char *end = text + len;
    char *line;
    char *value;
    /* Bounded by the file size (checked by the caller): each line is
     * consumed once. Line lengths first, so no field can be longer. */
    for (char *p = text, *line_start = text; p < end; p++) {
        if (*p == '\0') {
            return parse_fail(parse, "NUL byte in the envelope");
        }
        if (*p == '\n') {
            if ((size_t)(p - line_start) + 1 > QUEUE_LINE_BYTES_MAX) {
                return parse_fail(parse, "line longer than %d bytes", QUEUE_LINE_BYTES_MAX);
            }
            line_start = p + 1;
        }
    }
    uint64_t version = 0;
    static const char *const keys[] = { "toaster-queue", "id", "arrival", "size", "from",
                                        "ret", "envid", "user" };
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        parse->line_number++;
        line = next_line(&cursor, end);
        if (line == NULL) {
            return parse_fail(parse, "file ends before \"%s\"", keys[k]);
        }
        value = key_value(line, keys[k]);
        if (value == NULL) {
            return parse_fail(parse, "expected \"%s\"", keys[k]);
        }
        uint64_t number;
        char *decoded;
        switch (k) {
        case 0:
            if (!parse_u64(value, &number) || number < QUEUE_VERSION_PLAIN ||
                number > QUEUE_VERSION) {
                return parse_fail(parse, "unsupported version \"%.16s\"", value);
            }
            version = number;
            break;
        case 1:
            if (!queue_id_is_valid(value) || strcmp(value, parse->id) != 0) {
                return parse_fail(parse, "id does not match the file name");
            }
            memcpy(entry->id, value, SPOOL_QUEUE_ID_BYTES);
            break;
        case 2:
            if (!parse_time(value, &entry->arrival)) {
                return parse_fail(parse, "bad arrival time");
            }
            break;
        case 3:
            if (!parse_u64(value, &entry->size)) {
                return parse_fail(parse, "bad size");
            }
            break;
        case 4:
            decoded = parse_angle(value, sizeof(entry->mail_from));
            if (decoded == NULL) {
                return parse_fail(parse, "bad sender address");
            }
            memcpy(entry->mail_from, decoded, strlen(decoded) + 1);
            break;
        case 5:
            if (strcmp(value, "full") == 0) {
                entry->ret = QUEUE_RET_FULL;
            } else if (strcmp(value, "hdrs") == 0) {
                entry->ret = QUEUE_RET_HDRS;
            } else if (strcmp(value, "-") == 0) {
                entry->ret = QUEUE_RET_UNSPECIFIED;
            } else {
                return parse_fail(parse, "bad ret");
            }
            break;
        case 6:
        case 7: {
            char *out = k == 6 ? entry->envid : entry->user;
            size_t out_bytes = k == 6 ? sizeof(entry->envid) : sizeof(entry->user);
            if (strcmp(value, "-") == 0) {
                out[0] = '\0';
            } else if (!xtext_decode_in_place(value) || strlen(value) >= out_bytes) {
                return parse_fail(parse, "bad %s", keys[k]);
            } else {
                memcpy(out, value, strlen(value) + 1);
            }
            break;
        }
        default:
            ASSERT(false);
        }
    }
    for (;;) {
        parse->line_number++;
        line = next_line(&cursor, end);
        if (line == NULL) {
            return parse_fail(parse, "file ends without \"end\"");
        }
        if (strcmp(line, "end") == 0) {
            break;
        }
        value = key_value(line, "hold");
        if (value != NULL) {
            int rc = parse_hold(parse, version, value, entry);
            if (rc != 0) {
                return rc;
            }
            continue;
        }
        value = key_value(line, "warned");
        if (value != NULL) {
            int rc = parse_warned(parse, version, value, entry);
            if (rc != 0) {
                return rc;
            }
            continue;
        }
        value = key_value(line, "rcpt");
        if (value == NULL) {
            return parse_fail(parse, "expected \"rcpt\" or \"end\"");
        }
        if (entry->rcpt_count == QUEUE_RCPTS_MAX) {
            return parse_fail(parse, "more than %d recipients", QUEUE_RCPTS_MAX);
        }
        int rc = parse_rcpt(parse, value, &entry->rcpt_storage[entry->rcpt_count]);
        if (rc != 0) {
            return rc;
        }
        entry->rcpt_count++;
    }
    if (cursor != end) {
        return parse_fail(parse, "bytes after \"end\"");
    }
    if (entry->rcpt_count == 0) {
        return parse_fail(parse, "no recipients");
    }
    entry->rcpts = entry->rcpt_storage;
    return 0;
}

/* The envelope file's bytes (NUL-terminated) in *text_out. fd is closed. */
static int
envelope_file_read(struct parse *parse, int fd, char **text_out, size_t *len_out)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int rc = -errno;
        (void)close(fd); /* read-only */
        return rc;
    }
    if (!S_ISREG(st.st_mode) || st.st_size <= 0 ||
        (uint64_t)st.st_size > QUEUE_ENVELOPE_BYTES_MAX) {
        (void)close(fd); /* read-only */
        return parse_fail(parse, "not a regular file of 1 to %zu bytes",
                          QUEUE_ENVELOPE_BYTES_MAX);
    }
    size_t len = (size_t)st.st_size;
    char *text = malloc(len + 1);
    int rc = text == NULL ? -ENOMEM : fd_read_all(fd, text, len);
    if (rc == -ENODATA) {
        rc = -EIO; /* shorter than fstat said: changed under us */
    }
    (void)close(fd); /* read-only */
    if (rc != 0) {
        free(text);
        return rc;
    }
    text[len] = '\0';
    *text_out = text;
    *len_out = len;
    return 0;
}

/* The envelope attribute of msg_fd (NUL-terminated) in *text_out. */
static int
envelope_attr_read(struct parse *parse, int msg_fd, char **text_out, size_t *len_out)
{
    /* A writer may replace it between asking its size and reading it:
     * then ERANGE, and once more. */
    for (int tries = 0; tries < 3; tries++) {
        ssize_t len = fgetxattr(msg_fd, QUEUE_ENV_XATTR, NULL, 0);
        if (len < 0) {
            return errno == ENODATA || errno == EOPNOTSUPP ? -ENOENT : -errno;
        }
        if (len == 0 || (size_t)len > QUEUE_XATTR_BYTES_MAX) {
            return parse_fail(parse, "an attribute of %zd bytes, not 1 to %d", len,
                              QUEUE_XATTR_BYTES_MAX);
        }
        char *text = malloc((size_t)len + 1);
        if (text == NULL) {
            return -ENOMEM;
        }
        ssize_t got = fgetxattr(msg_fd, QUEUE_ENV_XATTR, text, (size_t)len);
        if (got > 0) {
            text[got] = '\0';
            *text_out = text;
            *len_out = (size_t)got;
            return 0;
        }
        int rc = got == 0 ? -EIO : -errno;
        free(text);
        if (rc != -ERANGE) {
            return rc == -ENODATA ? -ENOENT : rc;
        }
    }
    return -EIO;
}

int
queue_entry_load(struct queue *queue, const char *id, struct queue_entry *entry_out,
                 char *err, size_t err_bytes)
{
    memset(entry_out, 0, sizeof(*entry_out));
    ASSERT(err_bytes > 0);
    err[0] = '\0';
    struct parse parse = { .id = id, .where = ".env", .err = err, .err_bytes = err_bytes };
    if (!queue_id_is_valid(id)) {
        (void)snprintf(err, err_bytes, "not a queue id");
        return -EINVAL;
    }
    char env[QUEUE_NAME_BYTES];
    char msg[QUEUE_NAME_BYTES];
    queue_name(env, id, ".env");
    queue_name(msg, id, ".msg");
    const char *name = env;
    size_t len = 0;
    int rc;
    int env_fd = openat(queue->dir_fd, env, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    int msg_fd = -1;
    if (env_fd >= 0) {
        rc = envelope_file_read(&parse, env_fd, &entry_out->storage, &len);
    } else if (errno != ENOENT) {
        rc = -errno;
    } else {
        /* No file: the envelope is the message file's attribute, if any. */
        name = msg;
        parse.where = ".msg (its envelope attribute)";
        msg_fd = openat(queue->dir_fd, msg, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        rc = msg_fd < 0 ? -errno : envelope_attr_read(&parse, msg_fd, &entry_out->storage, &len);
    }
    if (rc == 0) {
        /* At most one recipient per line. */
        size_t lines = 0;
        for (size_t i = 0; i < len; i++) {
            lines += entry_out->storage[i] == '\n';
        }
        size_t slots = lines < QUEUE_RCPTS_MAX ? lines : QUEUE_RCPTS_MAX;
        entry_out->rcpt_storage = calloc(slots + 1, sizeof(*entry_out->rcpt_storage));
        if (entry_out->rcpt_storage == NULL) {
            rc = -ENOMEM;
        }
    }
    if (rc == 0) {
        rc = envelope_parse(&parse, entry_out->storage, len, entry_out);
    }
    if (rc == 0) {
        struct stat msg_st;
        int stat_rc = msg_fd >= 0 ? fstat(msg_fd, &msg_st)
                                  : fstatat(queue->dir_fd, msg, &msg_st, AT_SYMLINK_NOFOLLOW);
        if (stat_rc != 0) {
            rc = errno;
            (void)snprintf(err, err_bytes, "queue/%s: %s", msg, strerror(rc));
            rc = -EBADMSG;
        } else if (!S_ISREG(msg_st.st_mode) || (uint64_t)msg_st.st_size != entry_out->size) {
            (void)snprintf(err, err_bytes, "queue/%s: %llu bytes, the envelope says %llu", msg,
                           (unsigned long long)msg_st.st_size,
                           (unsigned long long)entry_out->size);
            rc = -EBADMSG;
        }
    }
    if (msg_fd >= 0) {
        (void)close(msg_fd); /* read-only */
    }
    if (rc != 0) {
        if (err[0] == '\0') {
            (void)snprintf(err, err_bytes, "queue/%s: %s", rc == -ENOENT ? env : name,
                           strerror(-rc));
        }
        queue_entry_release(entry_out);
    }
    return rc;
}

void
queue_entry_release(struct queue_entry *entry)
{
    free(entry->storage);
    free(entry->rcpt_storage);
    memset(entry, 0, sizeof(*entry));
}

/* ---- listing ------------------------------------------------------------ */

/* Whether someone holds the entry's lock now (its message file is open
 * under flock). A failure to tell counts as "not locked". */
static bool
entry_is_locked(struct queue *queue, const char *id)
{
    char msg[QUEUE_NAME_BYTES];
    queue_name(msg, id, ".msg");
    int fd = openat(queue->dir_fd, msg, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        return false;
    }
    bool is_locked = flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    (void)close(fd); /* read-only; closing drops a lock we may have taken */
    return is_locked;
}

enum message_envelope {
    MESSAGE_ENVELOPE_FILE,    /* "<id>.env" exists */
    MESSAGE_ENVELOPE_ATTR,    /* none, but the message carries the attribute */
    MESSAGE_ENVELOPE_NONE,    /* neither: never acknowledged, or half removed */
    MESSAGE_ENVELOPE_GONE,    /* the message file went meanwhile */
    MESSAGE_ENVELOPE_UNKNOWN, /* an error other than "not there" (logged) */
};

/* Where the envelope of the entry whose message file is msg_name is. */
static enum message_envelope
message_envelope(struct queue *queue, const char *id, const char *msg_name)
{
    char env[QUEUE_NAME_BYTES];
    queue_name(env, id, ".env");
    if (faccessat(queue->dir_fd, env, F_OK, 0) == 0) {
        return MESSAGE_ENVELOPE_FILE;
    }
    if (errno != ENOENT) {
        log_error("queue: %s: %s", env, strerror(errno));
        return MESSAGE_ENVELOPE_UNKNOWN;
    }
    int fd = openat(queue->dir_fd, msg_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        return errno == ENOENT ? MESSAGE_ENVELOPE_GONE : MESSAGE_ENVELOPE_UNKNOWN;
    }
    int rc = envelope_exists(queue, id, fd);
    (void)close(fd); /* read-only */
    return rc == 0 ? MESSAGE_ENVELOPE_ATTR : rc == -ENOENT ? MESSAGE_ENVELOPE_NONE
                                                           : MESSAGE_ENVELOPE_UNKNOWN;
}

int
queue_scan(struct queue *queue, bool is_cleaning, int (*visit)(void *ctx, const char *id),
           void *ctx)
{
    int fd = dup(queue->dir_fd);
    if (fd < 0) {
        return -errno;
    }
    DIR *dir = fdopendir(fd);
    if (dir == NULL) {
        int rc = -errno;
        (void)close(fd); /* read-only */
        return rc;
    }
    rewinddir(dir);
    int rc = 0;
    unsigned long names = 0;
    struct dirent *dirent = NULL;
    while (rc == 0 && names++ < QUEUE_SCAN_MAX && (errno = 0, dirent = readdir(dir)) != NULL) {
        const char *name = dirent->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
            continue;
        }
        size_t len = strlen(name);
        char id[SPOOL_QUEUE_ID_BYTES];
        bool has_id = len > QUEUE_ID_LEN && name[QUEUE_ID_LEN] == '.';
        if (has_id) {
            memcpy(id, name, QUEUE_ID_LEN);
            id[QUEUE_ID_LEN] = '\0';
            has_id = queue_id_is_valid(id);
        }
        const char *suffix = has_id ? name + QUEUE_ID_LEN : "";
        if (len > 4 && strcmp(name + len - 4, ".tmp") == 0) {
            /* Half-written: never an entry, never acknowledged. Unless
             * toasterctl is rewriting that entry right now (it holds the
             * lock): then it is its file, and it renames it soon. */
            if (is_cleaning && !(has_id && entry_is_locked(queue, id))) {
                log_warning("queue: removing %s left by an interrupted write", name);
                if (unlinkat(queue->dir_fd, name, 0) != 0 && errno != ENOENT) {
                    log_error("queue: cannot remove %s: %s", name, strerror(errno));
                }
            }
        } else if (has_id && strcmp(suffix, ".env") == 0) {
            rc = visit != NULL ? visit(ctx, id) : 0;
        } else if (has_id && strcmp(suffix, ".msg") == 0) {
            switch (message_envelope(queue, id, name)) {
            case MESSAGE_ENVELOPE_FILE: /* visited by its "<id>.env" */
            case MESSAGE_ENVELOPE_GONE:
                break;
            case MESSAGE_ENVELOPE_ATTR:
                rc = visit != NULL ? visit(ctx, id) : 0;
                break;
            case MESSAGE_ENVELOPE_NONE:
                /* A delete in progress (locked) removes it itself. */
                if (is_cleaning && !entry_is_locked(queue, id)) {
                    log_warning("queue: removing %s, whose envelope was never written", name);
                    if (unlinkat(queue->dir_fd, name, 0) != 0 && errno != ENOENT) {
                        log_error("queue: cannot remove %s: %s", name, strerror(errno));
                    }
                }
                break;
            case MESSAGE_ENVELOPE_UNKNOWN:
                break; /* cannot tell: leave it, and it is not visited */
            }
        } else if (is_cleaning) {
            log_warning("queue: ignoring %s/%s (not a queue file)", queue->path, name);
        }
    }
    if (rc == 0 && dirent == NULL && errno != 0) {
        rc = -errno;
    }
    (void)closedir(dir); /* read-only */
    return rc;
}
