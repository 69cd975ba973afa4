/*
 * store/delivery.c - the committer: batches of complete messages made
 * durable in their recipients' Maildirs.
 *
 * Owns the committer thread and its own io_uring, used only to run many
 * fsyncs at once. Per batch, in this order, because each step may only
 * start when the one before is durable:
 *   1. fdatasync every spool file in the batch (in parallel);
 *   2. for each message and each distinct mailbox: link the spool file into
 *      Maildir/tmp/<name>, rename it into Maildir/new/<name> (a missing
 *      Maildir is created, and each new directory entry synced);
 *   3. fsync every distinct new/ directory once (in parallel);
 *   4. report each message to its reactor; close and unlink the spool file.
 * A message that fails anywhere has its new/ entries removed again and is
 * reported with the error, so the client gets 451 and nothing it was not
 * promised stays visible. Userspace never copies the message bytes: links
 * share the one file (copy_file_range only when a link cannot serve).
 * Runs on its own thread; blocking here is the point of it.
 * Limits: DELIVERY_MAILBOXES_MAX per message, DELIVERY_BATCH_* per batch.
 */
#define _GNU_SOURCE
#include "store/delivery.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/assertions.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/reactor.h"
#include "store/recipients.h"

#define DELIVERY_BATCH_MESSAGES_MAX 256
#define DELIVERY_BATCH_DIRS_MAX 32768 /* power of two; half of it > DELIVERY_MAILBOXES_MAX */
#define DELIVERY_RING_ENTRIES 256
#define DELIVERY_NAME_BYTES 512

static_assert(DELIVERY_BATCH_DIRS_MAX / 2 > DELIVERY_MAILBOXES_MAX, "one message always fits");
static_assert((DELIVERY_BATCH_DIRS_MAX & (DELIVERY_BATCH_DIRS_MAX - 1)) == 0, "power of two");

struct delivery_dir {
    char *path;   /* ".../Maildir/new", owned; NULL = empty bucket */
    int   result; /* fsync result */
};

static struct {
    pthread_t                thread;
    pthread_mutex_t          lock;
    pthread_cond_t           wake;
    struct delivery_message *queue_head;
    struct delivery_message *queue_tail;
    bool                     is_stopping;
    char                     data_dir[SPOOL_PATH_BYTES];
    char                     host_part[256]; /* hostname made safe for file names */
    bool                     is_fsync_on;
    struct io_uring          ring;
    bool                     has_ring;
    struct delivery_dir     *dirs;
    size_t                   dir_count;
    unsigned long            name_sequence;
    /* Counters for the operator (read racily for logs only). */
    unsigned long            batches;
    unsigned long            messages;
} delivery;

/* ---- messages ------------------------------------------------------------ */

struct delivery_message *
delivery_message_create(void)
{
    struct delivery_message *message = calloc(1, sizeof(*message));
    if (message == NULL) {
        return NULL;
    }
    message->spool_fd = -1;
    return message;
}

/* Slot of name in the message's set: where it is, or the free slot where it
 * would go. The set is kept at most half full, so a probe always ends. */
static size_t
mailbox_slot(const struct delivery_message *message, const char *name)
{
    size_t mask = message->mailbox_index_slots - 1;
    size_t i = hash_fnv1a_string(name) & mask;
    for (size_t probes = 0; probes <= mask; probes++, i = (i + 1) & mask) {
        uint32_t entry = message->mailbox_index[i];
        if (entry == 0 || strcmp(message->mailboxes[entry - 1], name) == 0) {
            return i;
        }
    }
    ASSERT(false);
    return 0;
}

static int
mailbox_index_rebuild(struct delivery_message *message, size_t slots)
{
    uint32_t *index = calloc(slots, sizeof(*index));
    if (index == NULL) {
        return -ENOMEM;
    }
    free(message->mailbox_index);
    message->mailbox_index = index;
    message->mailbox_index_slots = slots;
    for (size_t i = 0; i < message->mailbox_count; i++) {
        size_t slot = mailbox_slot(message, message->mailboxes[i]);
        ASSERT(message->mailbox_index[slot] == 0);
        message->mailbox_index[slot] = (uint32_t)(i + 1);
    }
    return 0;
}

int
delivery_message_add_mailbox(struct delivery_message *message, const char *mailbox)
{
    if (message->mailbox_index_slots < 2 * (message->mailbox_count + 1)) {
        size_t slots = message->mailbox_index_slots ? message->mailbox_index_slots * 2 : 16;
        int rc = mailbox_index_rebuild(message, slots);
        if (rc != 0) {
            return rc;
        }
    }
    size_t slot = mailbox_slot(message, mailbox);
    if (message->mailbox_index[slot] != 0) {
        return 0; /* already there */
    }
    if (message->mailbox_count == DELIVERY_MAILBOXES_MAX) {
        return -E2BIG;
    }
    if (message->mailbox_count == message->mailbox_capacity) {
        size_t capacity = message->mailbox_capacity ? message->mailbox_capacity * 2 : 8;
        char **grown = realloc(message->mailboxes, capacity * sizeof(*grown));
        if (grown == NULL) {
            return -ENOMEM;
        }
        message->mailboxes = grown;
        message->mailbox_capacity = capacity;
    }
    char *copy = strdup(mailbox);
    if (copy == NULL) {
        return -ENOMEM;
    }
    message->mailboxes[message->mailbox_count++] = copy;
    message->mailbox_index[slot] = (uint32_t)message->mailbox_count;
    return 0;
}

void
delivery_message_truncate(struct delivery_message *message, size_t keep_count)
{
    ASSERT(keep_count <= message->mailbox_count);
    if (keep_count == message->mailbox_count) {
        return;
    }
    for (size_t i = keep_count; i < message->mailbox_count; i++) {
        free(message->mailboxes[i]);
    }
    message->mailbox_count = keep_count;
    /* Clear and refill the set in place: no allocation, so this cannot fail. */
    memset(message->mailbox_index, 0, message->mailbox_index_slots * sizeof(uint32_t));
    for (size_t i = 0; i < message->mailbox_count; i++) {
        size_t slot = mailbox_slot(message, message->mailboxes[i]);
        message->mailbox_index[slot] = (uint32_t)(i + 1);
    }
}

void
delivery_message_destroy(struct delivery_message **message_ptr)
{
    struct delivery_message *message = *message_ptr;
    if (message == NULL) {
        return;
    }
    for (size_t i = 0; i < message->mailbox_count; i++) {
        free(message->mailboxes[i]);
    }
    free(message->mailboxes);
    free(message->mailbox_index);
    free(message->mail_from);
    free(message);
    *message_ptr = NULL;
}

/* ---- helpers ------------------------------------------------------------ */

/* Run fsync (or fdatasync) on many fds at once through io_uring, so the
 * file system can fold them into few journal commits. results[i] gets 0 or
 * -errno. Falls back to one call after another without a ring. */
static void
fsync_many(const int *fds, int *results, size_t count, bool is_datasync)
{
    size_t done = 0;
    while (done < count) {
        size_t wave = count - done;
        if (!delivery.has_ring || wave > DELIVERY_RING_ENTRIES) {
            wave = delivery.has_ring ? DELIVERY_RING_ENTRIES : 1;
        }
        if (!delivery.has_ring) {
            int rc = is_datasync ? fdatasync(fds[done]) : fsync(fds[done]);
            results[done] = rc == 0 ? 0 : -errno;
            done++;
            continue;
        }
        for (size_t i = 0; i < wave; i++) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&delivery.ring);
            ASSERT(sqe != NULL); /* wave never exceeds the ring */
            io_uring_prep_fsync(sqe, fds[done + i], is_datasync ? IORING_FSYNC_DATASYNC : 0);
            io_uring_sqe_set_data64(sqe, done + i);
        }
        int rc;
        do {
            rc = io_uring_submit_and_wait(&delivery.ring, (unsigned)wave);
        } while (rc == -EINTR);
        ASSERT(rc >= 0);
        for (size_t seen = 0; seen < wave; seen++) {
            struct io_uring_cqe *cqe;
            do {
                rc = io_uring_wait_cqe(&delivery.ring, &cqe);
            } while (rc == -EINTR);
            ASSERT(rc == 0);
            uint64_t index = io_uring_cqe_get_data64(cqe);
            ASSERT(index >= done && index < done + wave);
            results[index] = cqe->res;
            io_uring_cqe_seen(&delivery.ring, cqe);
        }
        done += wave;
    }
}

static int
fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    int rc = fsync(fd) == 0 ? 0 : -errno;
    (void)close(fd);
    return rc;
}

/* mkdir that makes the new entry durable: the parent is synced after. */
static int
mkdir_durable(const char *path, const char *parent)
{
    if (mkdir(path, 0700) != 0) {
        return errno == EEXIST ? 0 : -errno;
    }
    return delivery.is_fsync_on ? fsync_path(parent) : 0;
}

/* Create <data_dir>/mail/<domain>/<local>/Maildir/{cur,new,tmp} as needed. */
static int
maildir_create(const char *maildir)
{
    char mail_root[SPOOL_PATH_BYTES];
    int n = snprintf(mail_root, sizeof(mail_root), "%s/mail", delivery.data_dir);
    ASSERT(n > 0 && (size_t)n < sizeof(mail_root));
    size_t root_len = (size_t)n;
    ASSERT(strncmp(maildir, mail_root, root_len) == 0);
    char path[SPOOL_PATH_BYTES];
    char parent[SPOOL_PATH_BYTES];
    size_t len = strlen(maildir);
    ASSERT(len < sizeof(path));
    /* Walk the components below mail/: domain, local part, Maildir. */
    for (size_t i = root_len + 1; i <= len; i++) {
        if (maildir[i] != '/' && maildir[i] != '\0') {
            continue;
        }
        memcpy(path, maildir, i);
        path[i] = '\0';
        char *slash = strrchr(path, '/');
        ASSERT(slash != NULL);
        memcpy(parent, path, (size_t)(slash - path));
        parent[slash - path] = '\0';
        int rc = mkdir_durable(path, parent);
        if (rc != 0) {
            return rc;
        }
    }
    static const char *const subdirs[] = { "cur", "new", "tmp" };
    for (size_t i = 0; i < 3; i++) {
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", maildir, subdirs[i]) >=
            sizeof(path)) {
            return -ENAMETOOLONG;
        }
        int rc = mkdir_durable(path, maildir);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* Dovecot's unique name: <secs>.M<usecs>P<pid>Q<seq>.<host>,S=<size>,W=<vsize>.
 * The file is stored with CRLF line ends, so S and W are equal. */
static void
maildir_name(uint64_t size, char *out, size_t out_bytes)
{
    struct timeval tv;
    (void)gettimeofday(&tv, NULL);
    int n = snprintf(out, out_bytes, "%ld.M%06ldP%ldQ%lu.%s,S=%llu,W=%llu", (long)tv.tv_sec,
                     (long)tv.tv_usec, (long)getpid(), ++delivery.name_sequence,
                     delivery.host_part, (unsigned long long)size, (unsigned long long)size);
    ASSERT(n > 0 && (size_t)n < out_bytes);
}

/* A copy for when a hard link cannot serve (spool and Maildir on different
 * file systems): the kernel copies, userspace still never touches bytes. */
static int
copy_into(const struct delivery_message *message, const char *tmp_path)
{
    int out = open(tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
        return -errno;
    }
    int in = open(message->spool_path, O_RDONLY | O_CLOEXEC);
    int rc = 0;
    if (in < 0) {
        rc = -errno;
    }
    loff_t in_offset = 0;
    while (rc == 0 && (uint64_t)in_offset < message->size) {
        ssize_t n = copy_file_range(in, &in_offset, out, NULL,
                                    (size_t)(message->size - (uint64_t)in_offset), 0);
        if (n < 0) {
            rc = -errno;
        } else if (n == 0) {
            rc = -EIO; /* the spool file is shorter than we wrote: never expected */
        }
    }
    if (rc == 0 && delivery.is_fsync_on && fdatasync(out) != 0) {
        rc = -errno;
    }
    if (in >= 0) {
        (void)close(in);
    }
    if (close(out) != 0 && rc == 0) {
        rc = -errno;
    }
    if (rc != 0) {
        (void)unlink(tmp_path);
    }
    return rc;
}

/* Put one message into one Maildir: tmp/ then new/. Fills new_path_out. */
static int
deliver_one(const struct delivery_message *message, const char *maildir, char *new_path_out,
            size_t new_path_bytes)
{
    char name[DELIVERY_NAME_BYTES];
    char tmp_path[SPOOL_PATH_BYTES];
    int rc = 0;
    /* A clash on the unique name is only possible across restarts in one
     * microsecond; a fresh name settles it. */
    for (int attempt = 0; attempt < 4; attempt++) {
        maildir_name(message->size, name, sizeof(name));
        if ((size_t)snprintf(tmp_path, sizeof(tmp_path), "%s/tmp/%s", maildir, name) >=
                sizeof(tmp_path) ||
            (size_t)snprintf(new_path_out, new_path_bytes, "%s/new/%s", maildir, name) >=
                new_path_bytes) {
            return -ENAMETOOLONG;
        }
        rc = link(message->spool_path, tmp_path) == 0 ? 0 : -errno;
        if (rc == -ENOENT) {
            rc = maildir_create(maildir);
            if (rc != 0) {
                return rc;
            }
            rc = link(message->spool_path, tmp_path) == 0 ? 0 : -errno;
        }
        if (rc == -EXDEV || rc == -EPERM || rc == -EMLINK) {
            rc = copy_into(message, tmp_path);
        }
        if (rc != -EEXIST) {
            break;
        }
    }
    if (rc != 0) {
        return rc;
    }
    if (rename(tmp_path, new_path_out) != 0) {
        rc = -errno;
        (void)unlink(tmp_path);
        return rc;
    }
    return 0;
}

/* Find or add a directory in the batch's set. Returns its index, or -1 when
 * out of memory. */
static long
dir_intern(const char *path)
{
    uint32_t mask = DELIVERY_BATCH_DIRS_MAX - 1;
    for (uint32_t i = hash_fnv1a_string(path) & mask, probes = 0; probes <= mask;
         i = (i + 1) & mask, probes++) {
        struct delivery_dir *dir = &delivery.dirs[i];
        if (dir->path == NULL) {
            ASSERT(delivery.dir_count < DELIVERY_BATCH_DIRS_MAX / 2);
            dir->path = strdup(path);
            if (dir->path == NULL) {
                return -1;
            }
            dir->result = 0;
            delivery.dir_count++;
            return (long)i;
        }
        if (strcmp(dir->path, path) == 0) {
            return (long)i;
        }
    }
    ASSERT(false); /* the table is never more than half full */
    return -1;
}

/* One copy of a message in one Maildir, kept for the rest of the batch. */
struct delivery_copy {
    char *new_path; /* owned; NULL when not (or no longer) linked */
    long  dir;      /* index of its new/ directory in delivery.dirs */
};

/* Undo step 2 for a failed message: its new/ entries disappear. */
static void
rollback(struct delivery_message *message, const struct delivery_copy *copies, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        const char *path = copies[i].new_path;
        if (path != NULL && unlink(path) != 0 && errno != ENOENT) {
            log_error("%s: cannot remove %s after a failed delivery: %s", message->queue_id,
                      path, strerror(errno));
        }
    }
}

/* ---- the batch ------------------------------------------------------------ */

static void
commit_batch(struct delivery_message *batch)
{
    struct delivery_message *messages[DELIVERY_BATCH_MESSAGES_MAX];
    size_t count = 0;
    for (struct delivery_message *m = batch; m != NULL; m = m->next_in_batch) {
        ASSERT(count < DELIVERY_BATCH_MESSAGES_MAX);
        messages[count++] = m;
        m->result = 0;
        m->delivered_count = 0;
    }
    ASSERT(count > 0);

    /* 1. The spool files' bytes reach the disk before any name points at
     * them from a Maildir. */
    if (delivery.is_fsync_on) {
        int fds[DELIVERY_BATCH_MESSAGES_MAX];
        int results[DELIVERY_BATCH_MESSAGES_MAX];
        for (size_t i = 0; i < count; i++) {
            fds[i] = messages[i]->spool_fd;
        }
        fsync_many(fds, results, count, true);
        for (size_t i = 0; i < count; i++) {
            if (results[i] != 0) {
                messages[i]->result = results[i];
                log_error("%s: fdatasync %s: %s", messages[i]->queue_id,
                          messages[i]->spool_path, strerror(-results[i]));
            }
        }
    }

    /* 2. Link into each Maildir. copies remembers what to sync and undo. */
    struct delivery_copy *copies[DELIVERY_BATCH_MESSAGES_MAX];
    for (size_t i = 0; i < count; i++) {
        struct delivery_message *message = messages[i];
        copies[i] = calloc(message->mailbox_count ? message->mailbox_count : 1,
                           sizeof(struct delivery_copy));
        if (copies[i] == NULL && message->result == 0) {
            message->result = -ENOMEM;
        }
        for (size_t j = 0; j < message->mailbox_count && message->result == 0; j++) {
            char maildir[SPOOL_PATH_BYTES];
            char new_path[SPOOL_PATH_BYTES];
            int rc = recipients_maildir_path(delivery.data_dir, message->mailboxes[j], maildir,
                                             sizeof(maildir));
            if (rc == 0) {
                rc = deliver_one(message, maildir, new_path, sizeof(new_path));
            }
            if (rc == 0) {
                struct delivery_copy *copy = &copies[i][j];
                copy->new_path = strdup(new_path);
                char dir[SPOOL_PATH_BYTES];
                /* new_path fitted, so its own new/ directory fits too. */
                (void)snprintf(dir, sizeof(dir), "%s/new", maildir);
                copy->dir = dir_intern(dir);
                if (copy->new_path == NULL || copy->dir < 0) {
                    rc = -ENOMEM;
                    if (copy->new_path == NULL) {
                        (void)unlink(new_path); /* not remembered: undo it now */
                    }
                }
            }
            if (rc != 0) {
                log_error("%s: delivery to %s failed: %s", message->queue_id,
                          message->mailboxes[j], strerror(-rc));
                message->result = rc;
                break;
            }
            message->delivered_count++;
        }
    }

    /* 3. One fsync per distinct new/ directory for the whole batch. */
    if (delivery.is_fsync_on && delivery.dir_count > 0) {
        int *fds = calloc(delivery.dir_count, sizeof(int));
        int *results = calloc(delivery.dir_count, sizeof(int));
        size_t *indexes = calloc(delivery.dir_count, sizeof(size_t));
        if (fds == NULL || results == NULL || indexes == NULL) {
            for (size_t i = 0; i < count; i++) {
                if (messages[i]->result == 0) {
                    messages[i]->result = -ENOMEM;
                }
            }
        } else {
            size_t n = 0;
            for (size_t i = 0; i < DELIVERY_BATCH_DIRS_MAX; i++) {
                struct delivery_dir *dir = &delivery.dirs[i];
                if (dir->path == NULL) {
                    continue;
                }
                int fd = open(dir->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (fd < 0) {
                    dir->result = -errno;
                    continue;
                }
                fds[n] = fd;
                indexes[n] = i;
                n++;
            }
            fsync_many(fds, results, n, false);
            for (size_t k = 0; k < n; k++) {
                delivery.dirs[indexes[k]].result = results[k];
                (void)close(fds[k]);
            }
            /* A message is durable only if every directory it used is. */
            for (size_t i = 0; i < count; i++) {
                struct delivery_message *message = messages[i];
                for (size_t j = 0; j < message->delivered_count && message->result == 0; j++) {
                    const struct delivery_dir *dir = &delivery.dirs[copies[i][j].dir];
                    if (dir->result != 0) {
                        message->result = dir->result;
                        log_error("%s: fsync %s: %s", message->queue_id, dir->path,
                                  strerror(-message->result));
                    }
                }
            }
        }
        free(fds);
        free(results);
        free(indexes);
    }

    /* 4. Report, and let the spool file go. */
    for (size_t i = 0; i < count; i++) {
        struct delivery_message *message = messages[i];
        if (copies[i] != NULL) {
            if (message->result != 0) {
                rollback(message, copies[i], message->mailbox_count);
                message->delivered_count = 0;
            }
            for (size_t j = 0; j < message->mailbox_count; j++) {
                free(copies[i][j].new_path);
            }
            free(copies[i]);
        }
        if (close(message->spool_fd) != 0 && message->result == 0) {
            /* The data was already synced and linked; a close error now
             * cannot lose it, but say so. */
            log_warning("%s: close spool file: %s", message->queue_id, strerror(errno));
        }
        message->spool_fd = -1;
        if (unlink(message->spool_path) != 0) {
            log_warning("%s: unlink %s: %s", message->queue_id, message->spool_path,
                        strerror(errno));
        }
        message->next_in_batch = NULL;
        reactor_job_complete(&message->job);
    }
    for (size_t i = 0; i < DELIVERY_BATCH_DIRS_MAX && delivery.dir_count > 0; i++) {
        if (delivery.dirs[i].path != NULL) {
            free(delivery.dirs[i].path);
            delivery.dirs[i].path = NULL;
            delivery.dir_count--;
        }
    }
    ASSERT(delivery.dir_count == 0);
    delivery.batches++;
    delivery.messages += count;
}

static void *
delivery_main(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&delivery.lock);
        while (delivery.queue_head == NULL && !delivery.is_stopping) {
            pthread_cond_wait(&delivery.wake, &delivery.lock);
        }
        if (delivery.queue_head == NULL) {
            pthread_mutex_unlock(&delivery.lock);
            break;
        }
        /* Take up to a batch's worth, bounded by messages and mailboxes, so
         * the directory set of one batch always fits. */
        struct delivery_message *batch = delivery.queue_head;
        struct delivery_message *last = batch;
        size_t messages = 1;
        size_t mailboxes = batch->mailbox_count;
        while (last->next_in_batch != NULL && messages < DELIVERY_BATCH_MESSAGES_MAX &&
               mailboxes + last->next_in_batch->mailbox_count < DELIVERY_MAILBOXES_MAX) {
            last = last->next_in_batch;
            mailboxes += last->mailbox_count;
            messages++;
        }
        delivery.queue_head = last->next_in_batch;
        if (delivery.queue_head == NULL) {
            delivery.queue_tail = NULL;
        }
        last->next_in_batch = NULL;
        pthread_mutex_unlock(&delivery.lock);
        commit_batch(batch);
    }
    return NULL;
}

/* ---- public ------------------------------------------------------------ */

int
delivery_start(const char *data_dir, const char *hostname, bool is_fsync_on)
{
    memset(&delivery, 0, sizeof(delivery));
    if ((size_t)snprintf(delivery.data_dir, sizeof(delivery.data_dir), "%s", data_dir) >=
        sizeof(delivery.data_dir)) {
        return -ENAMETOOLONG;
    }
    /* Maildir names may not hold '/' or ':' (the flags separator); Dovecot
     * writes them as octal escapes. */
    size_t n = 0;
    for (const char *p = hostname; *p != '\0' && n + 5 < sizeof(delivery.host_part); p++) {
        if (*p == '/') {
            memcpy(delivery.host_part + n, "\\057", 4);
            n += 4;
        } else if (*p == ':') {
            memcpy(delivery.host_part + n, "\\072", 4);
            n += 4;
        } else {
            delivery.host_part[n++] = *p;
        }
    }
    delivery.host_part[n] = '\0';
    delivery.is_fsync_on = is_fsync_on;
    delivery.dirs = calloc(DELIVERY_BATCH_DIRS_MAX, sizeof(*delivery.dirs));
    if (delivery.dirs == NULL) {
        return -ENOMEM;
    }
    int rc = io_uring_queue_init(DELIVERY_RING_ENTRIES, &delivery.ring, 0);
    if (rc == 0) {
        delivery.has_ring = true;
    } else {
        log_warning("delivery: no io_uring (%s); syncing one file at a time", strerror(-rc));
    }
    pthread_mutex_init(&delivery.lock, NULL);
    pthread_cond_init(&delivery.wake, NULL);
    rc = pthread_create(&delivery.thread, NULL, delivery_main, NULL);
    if (rc != 0) {
        return -rc;
    }
    return 0;
}

void
delivery_submit(struct delivery_message *message)
{
    ASSERT(message->spool_fd >= 0);
    message->next_in_batch = NULL;
    pthread_mutex_lock(&delivery.lock);
    ASSERT(!delivery.is_stopping);
    if (delivery.queue_tail != NULL) {
        delivery.queue_tail->next_in_batch = message;
    } else {
        delivery.queue_head = message;
    }
    delivery.queue_tail = message;
    pthread_cond_signal(&delivery.wake);
    pthread_mutex_unlock(&delivery.lock);
}

void
delivery_stop(void)
{
    pthread_mutex_lock(&delivery.lock);
    delivery.is_stopping = true;
    pthread_cond_signal(&delivery.wake);
    pthread_mutex_unlock(&delivery.lock);
    (void)pthread_join(delivery.thread, NULL);
    if (delivery.has_ring) {
        io_uring_queue_exit(&delivery.ring);
    }
    free(delivery.dirs);
    delivery.dirs = NULL;
    log_info("delivery: %lu messages in %lu batches", delivery.messages, delivery.batches);
}
