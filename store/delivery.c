/*
 * store/delivery.c - the committer: batches of complete messages made
 * durable in their recipients' Maildirs.
 *
 * Owns the committer thread and its own io_uring, used only to run many
 * fsyncs at once. Per batch, in this order, because each step may only
 * start when the one before is durable:
 *   1. fdatasync every spool file in the batch (in parallel) that its
 *      submitter has not synced already (the SMTP reactor syncs at end of
 *      data, so its messages arrive ready);
 *   2. for each message and each distinct mailbox: hard-link the spool file
 *      straight into Maildir/new/<name> (the file is complete and synced,
 *      so no reader can see it half written; a missing Maildir is created,
 *      and each new directory entry synced); a message with placements
 *      (Sieve) instead gets exactly the copies listed, each into its
 *      folder's new/ (or cur/ with ":2,<flags>"), of the spool file or of
 *      a file of its own (an edited header, a generated reply), which its
 *      maker synced;
 *   3. fsync every distinct new/ directory once (in parallel);
 *   2b. for each message with remote recipients: write its outbound queue
 *      envelope (store/queue.h) to a temporary file, fsync those of the
 *      batch together, link the spool file in as the queue's message file
 *      and rename each envelope into place;
 *   2c. generated messages (Sieve's replies to remote senders) become
 *      outbound queue entries with the null sender, each stored whole
 *      (they are rare);
 *   3b. the queue directory is synced with the new/ directories, and the
 *      placements' directories (each distinct one once) with them;
 *   4. run each message's on_commit hook (Sieve records its duplicate
 *      marks and logs), report each message to its reactor; close and
 *      unlink the spool file.
 * A message that fails anywhere has its new/ entries removed again and is
 * reported with the error, so the client gets 451 and nothing it was not
 * promised stays visible. Userspace never copies the message bytes: links
 * share the one file (copy_file_range only when a link cannot serve).
 * The new/ directories stay open between batches (store/maildir_dirs), so
 * a delivery costs one linkat(2) and the batch's syncs need no open; the
 * batch bookkeeping lives in arrays made once, so no message allocates
 * here. Runs on its own thread; blocking here is the point of it.
 * The fast path (no placements: one INBOX copy per mailbox) allocates
 * nothing; placements cost an open of their directory and, per batch, a
 * name kept for each distinct directory.
 * Limits: DELIVERY_MAILBOXES_MAX per message and per batch (mailboxes, or
 * copies with placements), DELIVERY_BATCH_MESSAGES_MAX messages per batch,
 * QUEUE_RCPTS_MAX remote recipients, DELIVERY_CONTENTS_MAX own files and
 * DELIVERY_OUTBOUND_MAX generated messages per message.
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
#include <time.h>
#include <unistd.h>

#include "core/array_grow.h"
#include "core/assertions.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/reactor.h"
#include "core/stats.h"
#include "store/mailbox_index.h"
#include "store/maildir_dirs.h"
#include "store/maildir_folders.h"
#include "store/maildir_name.h"

/* Messages per batch: enough that every message waiting joins the next
 * batch even with thousands of connections, so none waits for two. */
#define DELIVERY_BATCH_MESSAGES_MAX 4096
#define DELIVERY_RING_ENTRIES 256
#define DELIVERY_NAME_BYTES 512

static_assert(MAILDIR_DIRS_KEEP + DELIVERY_MAILBOXES_MAX < MAILDIR_DIRS_SLOTS / 2,
              "a batch's directories always fit the table");

/* One copy of a message in one Maildir, kept for the rest of the batch:
 * enough to sync its directory and to rebuild its name for an undo. A
 * copy into INBOX's new/ uses the committer's open directories
 * (store/maildir_dirs); any other (a folder, or cur/ with flags) uses the
 * batch's table of placement directories (place_dir). */
struct delivery_copy {
    struct maildir_dir *dir;       /* INBOX new/, or NULL */
    int32_t             place_dir; /* else: index into delivery.place_dirs */
    int64_t             name_seconds;
    int32_t             name_microseconds;
    unsigned long       name_sequence;
    uint64_t            size;      /* bytes of the copy (its S= and W=) */
    uint32_t            flags;     /* ":2," letters: cur/ when any */
    uint32_t            keywords;
};

/* A directory that placements of this batch linked into, synced once for
 * the batch (known by device and inode, so two spellings count once). */
struct delivery_place_dir {
    int      fd;
    dev_t    dev;
    ino_t    ino;
    char    *folder; /* the folder's path, for IMAP sessions to hear of it */
    int      sync_result;
};

#define DELIVERY_PLACE_DIR_SLOTS (4 * DELIVERY_MAILBOXES_MAX) /* a set, at most 1/4 full */

static struct {
    pthread_t                thread;
    void                   (*on_queued)(const char *id); /* see delivery_set_queued_hook */
    pthread_mutex_t          lock;
    pthread_cond_t           wake;
    struct delivery_message *queue_head;
    struct delivery_message *queue_tail;
    size_t                   queue_length;
    uint32_t                 commit_window_ms;
    bool                     is_stopping;
    char                     data_dir[SPOOL_PATH_BYTES];
    /* The hostname made safe for file names, cut so that a name with
     * every flag letter still fits NAME_MAX (MAILDIR_NAME_BYTES_MAX). */
    char                     host_part[120];
    long                     pid;
    int                      spool_dir_fd;
    bool                     is_fsync_on;
    struct io_uring          ring;
    bool                     has_ring;
    unsigned long            name_sequence;
    /* A batch's bookkeeping, made once: per message ... */
    struct delivery_message *batch[DELIVERY_BATCH_MESSAGES_MAX];
    struct delivery_message *unsynced[DELIVERY_BATCH_MESSAGES_MAX];
    int                      spool_fds[DELIVERY_BATCH_MESSAGES_MAX];
    int                      spool_results[DELIVERY_BATCH_MESSAGES_MAX];
    /* Queue entries of the batch: their envelopes' fds and which message. */
    struct queue_staged      env_staged[DELIVERY_BATCH_MESSAGES_MAX];
    int                      env_fds[DELIVERY_BATCH_MESSAGES_MAX]; /* their fds, to sync */
    int                      env_results[DELIVERY_BATCH_MESSAGES_MAX];
    size_t                   env_message[DELIVERY_BATCH_MESSAGES_MAX];
    struct queue_rcpt       *queue_rcpts; /* QUEUE_RCPTS_MAX, for one entry at a time */
    struct queue            *queue;
    size_t                   first_copy[DELIVERY_BATCH_MESSAGES_MAX];
    /* ... and per copy, DELIVERY_MAILBOXES_MAX each. */
    struct delivery_copy    *copies;
    struct maildir_dir     **batch_dirs;
    int                     *dir_fds;
    int                     *dir_results;
    /* Placement directories of the batch (DELIVERY_MAILBOXES_MAX) and a
     * set over them (index + 1, 0 = free). */
    struct delivery_place_dir *place_dirs;
    size_t                   place_dir_count;
    uint32_t                *place_dir_set;
    /* Counters for the operator (`toasterctl stats`, the log at stop):
     * written by the committer only, read by any thread (stats_load). */
    struct delivery_stats    stats;
} delivery;

static int copy_to(int src_fd, uint64_t size, const char *folder, const char *sub,
                   const char *name);

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
        if (entry == 0 || strcmp(delivery_message_mailbox(message, entry - 1), name) == 0) {
            return i;
        }
    }
    ASSERT(false);
    return 0;
}

/* Clear the set and fill it again from the names kept (no allocation). */
static void
mailbox_index_refill(struct delivery_message *message)
{
    memset(message->mailbox_index, 0, message->mailbox_index_slots * sizeof(uint32_t));
    for (size_t i = 0; i < message->mailbox_count; i++) {
        size_t slot = mailbox_slot(message, delivery_message_mailbox(message, i));
        ASSERT(message->mailbox_index[slot] == 0);
        message->mailbox_index[slot] = (uint32_t)(i + 1);
    }
}

static int
mailbox_index_grow(struct delivery_message *message, size_t slots)
{
    uint32_t *index = calloc(slots, sizeof(*index));
    if (index == NULL) {
        return -ENOMEM;
    }
    free(message->mailbox_index);
    message->mailbox_index = index;
    message->mailbox_index_slots = slots;
    mailbox_index_refill(message);
    return 0;
}

/* Room for one more name of name_bytes (NUL included). */
static int
mailbox_reserve(struct delivery_message *message, size_t name_bytes)
{
    if (message->mailbox_count == message->mailbox_capacity) {
        size_t capacity = message->mailbox_capacity ? message->mailbox_capacity * 2 : 8;
        uint32_t *grown = realloc(message->mailbox_offsets, capacity * sizeof(*grown));
        if (grown == NULL) {
            return -ENOMEM;
        }
        message->mailbox_offsets = grown;
        message->mailbox_capacity = capacity;
    }
    if (message->names_len + name_bytes > message->names_capacity) {
        size_t capacity = message->names_capacity ? message->names_capacity : 256;
        while (capacity < message->names_len + name_bytes) {
            capacity *= 2;
        }
        char *grown = realloc(message->names, capacity);
        if (grown == NULL) {
            return -ENOMEM;
        }
        message->names = grown;
        message->names_capacity = capacity;
    }
    return 0;
}

int
delivery_message_add_mailbox(struct delivery_message *message, const char *mailbox)
{
    return delivery_message_add_mailbox_for(message, mailbox, "");
}

int
delivery_message_add_mailbox_for(struct delivery_message *message, const char *mailbox,
                                 const char *rcpt)
{
    size_t rcpt_bytes = strnlen(rcpt, SMTP_ADDRESS_BYTES_MAX + 1) + 1;
    if (rcpt_bytes > SMTP_ADDRESS_BYTES_MAX + 1) {
        return -EINVAL;
    }
    if (message->mailbox_index_slots < 2 * (message->mailbox_count + 1)) {
        size_t slots = message->mailbox_index_slots ? message->mailbox_index_slots * 2 : 16;
        int rc = mailbox_index_grow(message, slots);
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
    /* The name, then the envelope recipient that reached it first. */
    size_t name_bytes = strlen(mailbox) + 1;
    int rc = mailbox_reserve(message, name_bytes + rcpt_bytes);
    if (rc != 0) {
        return rc;
    }
    /* Names are at most a few KiB each and DELIVERY_MAILBOXES_MAX of them
     * fit an offset of 32 bits many times over. */
    ASSERT(message->names_len + name_bytes + rcpt_bytes < UINT32_MAX);
    memcpy(message->names + message->names_len, mailbox, name_bytes);
    memcpy(message->names + message->names_len + name_bytes, rcpt, rcpt_bytes - 1);
    message->names[message->names_len + name_bytes + rcpt_bytes - 1] = '\0';
    message->mailbox_offsets[message->mailbox_count++] = (uint32_t)message->names_len;
    message->names_len += name_bytes + rcpt_bytes;
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
    message->names_len = message->mailbox_offsets[keep_count];
    message->mailbox_count = keep_count;
    mailbox_index_refill(message);
}

int
delivery_message_add_remote(struct delivery_message *message, const char *address,
                            const char *orcpt, uint32_t notify)
{
    size_t address_bytes = strnlen(address, SMTP_ADDRESS_BYTES_MAX + 1) + 1;
    size_t orcpt_bytes = strnlen(orcpt, QUEUE_ORCPT_BYTES) + 1;
    if (address_bytes == 1 || address_bytes > SMTP_ADDRESS_BYTES_MAX + 1 ||
        orcpt_bytes > QUEUE_ORCPT_BYTES) {
        return -EINVAL;
    }
    /* Linear, but bounded by QUEUE_RCPTS_MAX and paid at RCPT time. */
    for (size_t i = 0; i < message->remote_count; i++) {
        if (strcmp(delivery_message_remote(message, i), address) == 0) {
            return 0;
        }
    }
    if (message->remote_count == QUEUE_RCPTS_MAX) {
        return -E2BIG;
    }
    if (message->remote_count == message->remote_capacity) {
        size_t capacity = message->remote_capacity ? message->remote_capacity * 2 : 8;
        uint32_t *offsets = realloc(message->remote_offsets, capacity * sizeof(*offsets));
        if (offsets == NULL) {
            return -ENOMEM;
        }
        message->remote_offsets = offsets;
        uint32_t *notify_bits = realloc(message->remote_notify, capacity * sizeof(*notify_bits));
        if (notify_bits == NULL) {
            return -ENOMEM;
        }
        message->remote_notify = notify_bits;
        message->remote_capacity = capacity;
    }
    size_t need = address_bytes + orcpt_bytes;
    if (message->remote_names_len + need > message->remote_names_capacity) {
        size_t capacity = message->remote_names_capacity ? message->remote_names_capacity : 256;
        while (capacity < message->remote_names_len + need) {
            capacity *= 2;
        }
        char *grown = realloc(message->remote_names, capacity);
        if (grown == NULL) {
            return -ENOMEM;
        }
        message->remote_names = grown;
        message->remote_names_capacity = capacity;
    }
    char *out = message->remote_names + message->remote_names_len;
    memcpy(out, address, address_bytes - 1);
    out[address_bytes - 1] = '\0';
    memcpy(out + address_bytes, orcpt, orcpt_bytes - 1);
    out[address_bytes + orcpt_bytes - 1] = '\0';
    message->remote_offsets[message->remote_count] = (uint32_t)message->remote_names_len;
    message->remote_notify[message->remote_count] = notify;
    message->remote_count++;
    message->remote_names_len += need;
    return 0;
}

void
delivery_message_truncate_remotes(struct delivery_message *message, size_t keep_count)
{
    ASSERT(keep_count <= message->remote_count);
    if (keep_count == message->remote_count) {
        return;
    }
    message->remote_names_len = message->remote_offsets[keep_count];
    message->remote_count = keep_count;
}

/* ---- placements ----------------------------------------------------------- */

/* Copy text (NUL included) into the string area; its offset to *offset_out. */
static int
extras_string(struct delivery_extras *extras, const char *text, uint32_t *offset_out)
{
    size_t bytes = strlen(text) + 1;
    if (extras->strings_len + bytes > extras->strings_capacity) {
        size_t capacity = extras->strings_capacity ? extras->strings_capacity : 512;
        while (capacity < extras->strings_len + bytes) {
            capacity *= 2;
        }
        char *grown = realloc(extras->strings, capacity);
        if (grown == NULL) {
            return -ENOMEM;
        }
        extras->strings = grown;
        extras->strings_capacity = capacity;
    }
    /* Bounded by the copy and name limits far below 4 GiB. */
    ASSERT(extras->strings_len + bytes < UINT32_MAX);
    memcpy(extras->strings + extras->strings_len, text, bytes);
    *offset_out = (uint32_t)extras->strings_len;
    extras->strings_len += bytes;
    return 0;
}

/* Close what the extras still hold open and free them. */
static void
extras_free(struct delivery_extras **extras_ptr)
{
    struct delivery_extras *extras = *extras_ptr;
    if (extras == NULL) {
        return;
    }
    for (size_t i = 0; i < extras->content_count; i++) {
        if (extras->contents[i].fd >= 0) {
            (void)close(extras->contents[i].fd); /* never linked anywhere: nothing to lose */
        }
    }
    free(extras->placements);
    free(extras->contents);
    free(extras->outbound);
    free(extras->strings);
    free(extras);
    *extras_ptr = NULL;
}

int
delivery_message_placements_begin(struct delivery_message *message)
{
    if (message->extras == NULL) {
        message->extras = calloc(1, sizeof(*message->extras));
        if (message->extras == NULL) {
            return -ENOMEM;
        }
    }
    message->extras->is_placed = true;
    return 0;
}

int
delivery_message_add_content(struct delivery_message *message, int fd, uint64_t size)
{
    ASSERT(fd >= 0);
    struct delivery_extras *extras = message->extras;
    ASSERT(delivery_message_is_placed(message));
    int rc = extras->content_count >= DELIVERY_CONTENTS_MAX ? -E2BIG
             : array_grow((void **)&extras->contents, &extras->content_capacity,
                              extras->content_count, sizeof(*extras->contents));
    if (rc != 0) {
        (void)close(fd); /* ours from the call on, as promised */
        return rc;
    }
    extras->contents[extras->content_count] = (struct delivery_content){ .fd = fd, .size = size };
    return (int)extras->content_count++;
}

int
delivery_message_place(struct delivery_message *message, const char *mailbox,
                       const char *folder, uint32_t flags, uint32_t keywords, int content)
{
    struct delivery_extras *extras = message->extras;
    ASSERT(delivery_message_is_placed(message));
    size_t mailbox_len = strnlen(mailbox, SMTP_ADDRESS_BYTES_MAX + 1);
    size_t folder_len = strnlen(folder, MAILDIR_FOLDERS_NAME_BYTES_MAX + 1);
    if (mailbox_len == 0 || mailbox_len > SMTP_ADDRESS_BYTES_MAX ||
        strchr(mailbox, '@') == NULL || (flags & ~MAILDIR_FLAGS_ALL) != 0 ||
        (keywords & ~MAILDIR_KEYWORDS_ALL) != 0 || content < -1 ||
        (content >= 0 && (size_t)content >= extras->content_count)) {
        return -EINVAL;
    }
    if (maildir_folders_is_inbox(folder, folder_len)) {
        folder = "";
    } else if (folder_len > 0 && maildir_folders_name_check(folder, folder_len) != 0) {
        return -EINVAL;
    }
    if (extras->placement_count >= DELIVERY_MAILBOXES_MAX) {
        return -E2BIG;
    }
    int rc = array_grow((void **)&extras->placements, &extras->placement_capacity,
                            extras->placement_count, sizeof(*extras->placements));
    struct delivery_placement placement = {
        .flags = flags,
        .keywords = keywords,
        .content = content,
    };
    if (rc == 0) {
        rc = extras_string(extras, mailbox, &placement.mailbox_offset);
    }
    if (rc == 0) {
        rc = extras_string(extras, folder, &placement.folder_offset);
    }
    if (rc != 0) {
        return rc;
    }
    extras->placements[extras->placement_count++] = placement;
    return 0;
}

int
delivery_message_add_outbound(struct delivery_message *message, int content, const char *address)
{
    struct delivery_extras *extras = message->extras;
    ASSERT(delivery_message_is_placed(message));
    size_t address_len = strnlen(address, SMTP_ADDRESS_BYTES_MAX + 1);
    if (content < 0 || (size_t)content >= extras->content_count || address_len == 0 ||
        address_len > SMTP_ADDRESS_BYTES_MAX) {
        return -EINVAL;
    }
    if (extras->outbound_count >= DELIVERY_OUTBOUND_MAX) {
        return -E2BIG;
    }
    struct delivery_outbound outbound = { .content = content };
    int rc = array_grow((void **)&extras->outbound, &extras->outbound_capacity,
                            extras->outbound_count, sizeof(*extras->outbound));
    if (rc == 0) {
        rc = extras_string(extras, address, &outbound.address_offset);
    }
    if (rc != 0) {
        return rc;
    }
    extras->outbound[extras->outbound_count++] = outbound;
    return 0;
}

int
delivery_message_on_commit(struct delivery_message *message,
                           void (*fn)(struct delivery_message *message, void *arg), void *arg)
{
    if (message->extras == NULL) {
        message->extras = calloc(1, sizeof(*message->extras));
        if (message->extras == NULL) {
            return -ENOMEM;
        }
    }
    message->extras->on_commit = fn;
    message->extras->on_commit_arg = arg;
    return 0;
}

void
delivery_message_destroy(struct delivery_message **message_ptr)
{
    struct delivery_message *message = *message_ptr;
    if (message == NULL) {
        return;
    }
    free(message->mailbox_offsets);
    free(message->names);
    free(message->mailbox_index);
    free(message->remote_names);
    free(message->remote_offsets);
    free(message->remote_notify);
    extras_free(&message->extras);
    free(message);
    *message_ptr = NULL;
}

struct delivery_message *
delivery_message_take(struct delivery_message_pool *pool)
{
    struct delivery_message *message = pool->free_list;
    if (message == NULL) {
        return delivery_message_create();
    }
    pool->free_list = message->next_in_batch;
    pool->free_count--;
    message->next_in_batch = NULL;
    return message;
}

void
delivery_message_give(struct delivery_message_pool *pool, struct delivery_message **message_ptr)
{
    struct delivery_message *message = *message_ptr;
    if (message == NULL) {
        return;
    }
    *message_ptr = NULL;
    ASSERT(message->spool_fd < 0);
    extras_free(&message->extras); /* placements are rare: not kept for reuse */
    size_t kept_bytes = message->names_capacity +
                        message->mailbox_capacity * sizeof(uint32_t) +
                        message->mailbox_index_slots * sizeof(uint32_t) +
                        message->remote_names_capacity +
                        message->remote_capacity * 2 * sizeof(uint32_t);
    if (pool->free_count >= DELIVERY_POOL_KEEP || kept_bytes > DELIVERY_POOL_KEEP_BYTES) {
        delivery_message_destroy(&message); /* a huge message gives its memory back */
        return;
    }
    /* Back to the state create() gives, keeping the storage. */
    message->mail_from[0] = '\0';
    message->queue_id[0] = '\0';
    message->size = 0;
    message->rcpt_count = 0;
    message->mailbox_count = 0;
    message->names_len = 0;
    if (message->mailbox_index != NULL) {
        memset(message->mailbox_index, 0, message->mailbox_index_slots * sizeof(uint32_t));
    }
    message->result = 0;
    message->delivered_count = 0;
    message->remote_count = 0;
    message->remote_names_len = 0;
    message->dsn_ret = QUEUE_RET_UNSPECIFIED;
    message->dsn_envid[0] = '\0';
    message->user[0] = '\0';
    message->arrival = 0;
    message->owner_data = NULL;
    message->is_spool_shared = false;
    message->is_spool_unnamed = false;
    message->group = NULL;
    message->group_index = 0;
    message->queued_count = 0;
    memset(&message->job, 0, sizeof(message->job));
    message->next_in_batch = pool->free_list;
    pool->free_list = message;
    pool->free_count++;
}

void
delivery_message_pool_drain(struct delivery_message_pool *pool)
{
    while (pool->free_list != NULL) {
        struct delivery_message *message = pool->free_list;
        pool->free_list = message->next_in_batch;
        delivery_message_destroy(&message);
    }
    pool->free_count = 0;
}

/* ---- helpers ------------------------------------------------------------ */

/* Run fsync (or fdatasync) on many fds at once through io_uring, so the
 * file system can fold them into few journal commits. results[i] gets 0 or
 * -errno. Falls back to one call after another without a ring. */
static void
fsync_many(const int *fds, int *results, size_t count, bool is_datasync)
{
    size_t done = 0;
    stats_add(&delivery.stats.fsyncs, count);
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

/* Dovecot's unique name: <secs>.M<usecs>P<pid>Q<seq>.<host>,S=<size>,W=<vsize>,
 * with ":2,<letters>" when the copy has flags (it then lives in cur/).
 * The file is stored with CRLF line ends, so S and W are equal. */
static int
maildir_name_format(const struct delivery_copy *copy, char *out, size_t out_bytes)
{
    int n = snprintf(out, out_bytes, "%lld.M%06ldP%ldQ%lu.%s,S=%llu,W=%llu",
                     (long long)copy->name_seconds, (long)copy->name_microseconds,
                     (long)delivery.pid, copy->name_sequence, delivery.host_part,
                     (unsigned long long)copy->size, (unsigned long long)copy->size);
    ASSERT(n > 0 && (size_t)n < out_bytes);
    if (copy->flags == 0 && copy->keywords == 0) {
        return 0;
    }
    char base[DELIVERY_NAME_BYTES];
    ASSERT((size_t)n < sizeof(base));
    memcpy(base, out, (size_t)n + 1);
    size_t len = 0;
    /* The letters were checked when placed; a name past NAME_MAX (every
     * letter and numbers at their widest) is -ENAMETOOLONG. */
    return maildir_name_build(span_make(base, (size_t)n), copy->flags, copy->keywords, out,
                              out_bytes, &len);
}

static void
maildir_name_new(struct delivery_copy *copy)
{
    struct timeval tv;
    (void)gettimeofday(&tv, NULL);
    copy->name_seconds = tv.tv_sec;
    copy->name_microseconds = (int32_t)tv.tv_usec;
    copy->name_sequence = ++delivery.name_sequence;
}

/* A copy for when a hard link cannot serve (spool and Maildir on different
 * file systems): written into tmp/ by the kernel (userspace still never
 * touches the bytes), synced, then renamed into new/. */
static int
copy_into(const struct delivery_message *message, const char *mailbox, const char *name)
{
    char maildir[SPOOL_PATH_BYTES];
    int rc = maildir_dirs_path(mailbox, maildir, sizeof(maildir));
    if (rc != 0) {
        return rc;
    }
    return copy_to(message->spool_fd, message->size, maildir, "new", name);
}

/* Give the spool file one more name: name in the directory dir_fd. */
static int
spool_link(const struct delivery_message *message, int dir_fd, const char *name)
{
    int rc;
    if (message->is_spool_unnamed) {
        char proc_path[64];
        (void)snprintf(proc_path, sizeof(proc_path), "/proc/self/fd/%d", message->spool_fd);
        rc = linkat(AT_FDCWD, proc_path, dir_fd, name, AT_SYMLINK_FOLLOW);
    } else {
        rc = linkat(delivery.spool_dir_fd, message->queue_id, dir_fd, name, 0);
    }
    return rc == 0 ? 0 : -errno;
}

/* Put one message into one Maildir: the synced spool file is complete, so
 * it is linked straight into new/ (as Dovecot does when it copies by hard
 * link); a reader never sees a partial file. */
static int
deliver_one(const struct delivery_message *message, const char *mailbox,
            struct delivery_copy *copy)
{
    char name[DELIVERY_NAME_BYTES];
    int rc = 0;
    *copy = (struct delivery_copy){ .place_dir = -1, .size = message->size };
    /* A clash on the unique name is only possible across restarts in one
     * microsecond; a fresh name settles it. A directory that vanished under
     * its cached fd is reopened (and recreated) once. */
    for (int attempt = 0; attempt < 4; attempt++) {
        rc = maildir_dirs_get(mailbox, delivery.stats.batches + 1, &copy->dir);
        if (rc != 0) {
            return rc;
        }
        maildir_name_new(copy);
        (void)maildir_name_format(copy, name, sizeof(name)); /* no flags: cannot fail */
        rc = spool_link(message, copy->dir->new_fd, name);
        if (rc == -ENOENT) {
            maildir_dirs_forget(copy->dir);
            continue;
        }
        if (rc == -EXDEV || rc == -EPERM || rc == -EMLINK) {
            rc = copy_into(message, mailbox, name);
        }
        if (rc != -EEXIST) {
            break;
        }
    }
    return rc;
}

/* Undo step 2 for a failed message: its entries disappear. */
static void
rollback(struct delivery_message *message, const struct delivery_copy *copies, size_t count)
{
    char name[DELIVERY_NAME_BYTES];
    for (size_t i = 0; i < count; i++) {
        const struct delivery_copy *copy = &copies[i];
        if (maildir_name_format(copy, name, sizeof(name)) != 0) {
            continue; /* never made: its name did not fit */
        }
        int dir_fd = copy->dir != NULL ? copy->dir->new_fd
                                       : delivery.place_dirs[copy->place_dir].fd;
        if (dir_fd < 0 || unlinkat(dir_fd, name, 0) != 0) {
            if (dir_fd < 0 || errno != ENOENT) {
                log_error("%s: cannot remove %s of %s after a failed delivery: %s",
                          message->queue_id, name,
                          copy->dir != NULL ? copy->dir->mailbox
                                            : delivery.place_dirs[copy->place_dir].folder,
                          dir_fd < 0 ? "directory gone" : strerror(errno));
            }
        }
    }
}

/* ---- placements: folders, flags, own files ---------------------------------- */

/* The batch's entry for the directory open as fd (folder its folder's
 * path): an existing entry of the same directory (fd is then closed), or
 * a new one. Returns the index, or -ENOMEM. */
static int
place_dir_add(int fd, const char *folder)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int rc = -errno;
        (void)close(fd);
        return rc;
    }
    uint64_t key = (uint64_t)st.st_dev * UINT64_C(0x9e3779b97f4a7c15) ^ (uint64_t)st.st_ino;
    size_t mask = DELIVERY_PLACE_DIR_SLOTS - 1;
    size_t slot = (size_t)(key ^ (key >> 29)) & mask;
    for (size_t probes = 0; probes <= mask; probes++, slot = (slot + 1) & mask) {
        uint32_t entry = delivery.place_dir_set[slot];
        if (entry == 0) {
            break;
        }
        struct delivery_place_dir *dir = &delivery.place_dirs[entry - 1];
        if (dir->dev == st.st_dev && dir->ino == st.st_ino) {
            (void)close(fd); /* the same directory, open already */
            return (int)(entry - 1);
        }
    }
    /* A batch has at most DELIVERY_MAILBOXES_MAX copies, so as many
     * directories, and the set is four times that. */
    ASSERT(delivery.place_dir_count < DELIVERY_MAILBOXES_MAX);
    ASSERT(delivery.place_dir_set[slot] == 0);
    char *path = strdup(folder);
    if (path == NULL) {
        (void)close(fd);
        return -ENOMEM;
    }
    size_t index = delivery.place_dir_count++;
    delivery.place_dirs[index] = (struct delivery_place_dir){
        .fd = fd, .dev = st.st_dev, .ino = st.st_ino, .folder = path,
    };
    delivery.place_dir_set[slot] = (uint32_t)(index + 1);
    return (int)index;
}

/* Close the batch's placement directories (after its report). */
static void
place_dirs_reset(void)
{
    for (size_t i = 0; i < delivery.place_dir_count; i++) {
        (void)close(delivery.place_dirs[i].fd); /* read-only directory fd */
        free(delivery.place_dirs[i].folder);
    }
    if (delivery.place_dir_count > 0) {
        memset(delivery.place_dir_set, 0, DELIVERY_PLACE_DIR_SLOTS * sizeof(uint32_t));
    }
    delivery.place_dir_count = 0;
}

/* A copy written by the kernel from src_fd into folder's tmp/, synced,
 * then renamed to sub/name: for when a link cannot serve. */
static int
copy_to(int src_fd, uint64_t size, const char *folder, const char *sub, const char *name)
{
    char tmp_path[SPOOL_PATH_BYTES];
    char final_path[SPOOL_PATH_BYTES];
    if ((size_t)snprintf(tmp_path, sizeof(tmp_path), "%s/tmp/%s", folder, name) >=
            sizeof(tmp_path) ||
        (size_t)snprintf(final_path, sizeof(final_path), "%s/%s/%s", folder, sub, name) >=
            sizeof(final_path)) {
        return -ENAMETOOLONG;
    }
    int out = open(tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
        return -errno;
    }
    int rc = 0;
    loff_t in_offset = 0;
    while (rc == 0 && (uint64_t)in_offset < size) {
        ssize_t n = copy_file_range(src_fd, &in_offset, out, NULL,
                                    (size_t)(size - (uint64_t)in_offset), 0);
        if (n < 0) {
            rc = -errno;
        } else if (n == 0) {
            rc = -EIO; /* the source is shorter than it says: never expected */
        }
    }
    if (rc == 0 && delivery.is_fsync_on) {
        stats_add(&delivery.stats.fsyncs, 1);
        if (fdatasync(out) != 0) {
            rc = -errno;
        }
    }
    if (close(out) != 0 && rc == 0) {
        rc = -errno;
    }
    if (rc == 0 && rename(tmp_path, final_path) != 0) {
        rc = -errno;
    }
    if (rc != 0) {
        (void)unlink(tmp_path);
    }
    return rc;
}

/* Open folder/sub as a directory; a missing INBOX root is made (a user's
 * first mail may come with flags), a missing folder is -ENOENT. */
static int
place_dir_open(const char *root, const char *folder, bool is_inbox, const char *sub)
{
    char path[SPOOL_PATH_BYTES];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", folder, sub) >= sizeof(path)) {
        return -ENAMETOOLONG;
    }
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && is_inbox) {
        int rc = maildir_folders_make_root(root);
        if (rc != 0) {
            return rc;
        }
        fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    return fd >= 0 ? fd : -errno;
}

/* Put one placement of a message into its folder: a link of the spool
 * file or of the message's own file, else a written copy. */
static int
deliver_placement(struct delivery_message *message, const struct delivery_placement *placement,
                  struct delivery_copy *copy)
{
    const struct delivery_extras *extras = message->extras;
    const char *mailbox = delivery_extras_string(extras, placement->mailbox_offset);
    const char *folder_name = delivery_extras_string(extras, placement->folder_offset);
    bool is_inbox = folder_name[0] == '\0';
    const struct delivery_content *content =
        placement->content >= 0 ? &extras->contents[placement->content] : NULL;
    *copy = (struct delivery_copy){
        .place_dir = -1,
        .size = content != NULL ? content->size : message->size,
        .flags = placement->flags,
        .keywords = placement->keywords,
    };
    if (is_inbox && placement->flags == 0 && placement->keywords == 0 && content == NULL) {
        return deliver_one(message, mailbox, copy); /* the fast path's directories */
    }
    char root[SPOOL_PATH_BYTES];
    char folder[SPOOL_PATH_BYTES];
    int rc = maildir_dirs_path(mailbox, root, sizeof(root));
    if (rc == 0) {
        rc = maildir_folders_path(root, is_inbox ? "INBOX" : folder_name, folder,
                                  sizeof(folder));
    }
    if (rc != 0) {
        return rc;
    }
    const char *sub = placement->flags != 0 || placement->keywords != 0 ? "cur" : "new";
    int fd = place_dir_open(root, folder, is_inbox, sub);
    if (fd == -ENOENT && !is_inbox) {
        /* The folder went away since the stage looked: INBOX then, never
         * nowhere. */
        log_warning("%s: folder %s of %s is gone; delivering into INBOX", message->queue_id,
                    folder_name, mailbox);
        is_inbox = true;
        (void)snprintf(folder, sizeof(folder), "%s", root);
        fd = place_dir_open(root, folder, true, sub);
    }
    if (fd < 0) {
        return fd;
    }
    int index = place_dir_add(fd, folder);
    if (index < 0) {
        return index;
    }
    copy->place_dir = index;
    int dir_fd = delivery.place_dirs[index].fd;
    char name[DELIVERY_NAME_BYTES];
    for (int attempt = 0; attempt < 4; attempt++) {
        maildir_name_new(copy);
        rc = maildir_name_format(copy, name, sizeof(name));
        if (rc != 0) {
            return rc;
        }
        if (content == NULL) {
            rc = spool_link(message, dir_fd, name);
        } else {
            char proc_path[64];
            (void)snprintf(proc_path, sizeof(proc_path), "/proc/self/fd/%d", content->fd);
            rc = linkat(AT_FDCWD, proc_path, dir_fd, name, AT_SYMLINK_FOLLOW) == 0 ? 0 : -errno;
            if (rc == -ENOENT) {
                rc = -EXDEV; /* a file that has no name to link: copy it */
            }
        }
        if (rc == -EXDEV || rc == -EPERM || rc == -EMLINK) {
            rc = copy_to(content != NULL ? content->fd : message->spool_fd, copy->size, folder,
                         sub, name);
        }
        if (rc != -EEXIST) {
            break;
        }
    }
    return rc;
}

/* Generated messages of the batch's good messages for the outbound queue:
 * each entry stored whole (its own syncs: they are rare). A failure fails
 * its message (the entries stored before are removed in step 4). */
static void
outbound_store_batch(struct delivery_message **messages, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        struct delivery_message *message = messages[i];
        struct delivery_extras *extras = message->extras;
        if (extras == NULL) {
            continue;
        }
        for (size_t k = 0; k < extras->outbound_count && message->result == 0; k++) {
            struct delivery_outbound *outbound = &extras->outbound[k];
            const struct delivery_content *content = &extras->contents[outbound->content];
            struct queue_rcpt rcpt = {
                .address = delivery_extras_string(extras, outbound->address_offset),
                .orcpt = "",
                .state = QUEUE_RCPT_PENDING,
                .last_reply = "",
            };
            struct queue_entry entry = {
                .arrival = message->arrival,
                .size = content->size,
                .ret = QUEUE_RET_UNSPECIFIED,
                .rcpts = &rcpt,
                .rcpt_count = 1,
            };
            /* Reactor indexes stay below 255: the committer's own. */
            spool_queue_id_make(0xff, entry.id);
            struct queue_source source = { .fd = content->fd, .is_unnamed = true };
            int rc = queue_entry_store(delivery.queue, &entry, &source);
            if (rc != 0) {
                log_error("%s: cannot queue its generated message to <%s>: %s", message->queue_id,
                          rcpt.address, strerror(-rc));
                message->result = rc;
                break;
            }
            memcpy(outbound->queue_id, entry.id, sizeof(outbound->queue_id));
            log_info("%s: generated message to <%s> queued as %s", message->queue_id,
                     rcpt.address, entry.id);
        }
    }
}

/* Undo outbound_store_batch for a failed message. */
static void
outbound_rollback(struct delivery_message *message)
{
    struct delivery_extras *extras = message->extras;
    for (size_t k = 0; extras != NULL && k < extras->outbound_count; k++) {
        struct delivery_outbound *outbound = &extras->outbound[k];
        if (outbound->queue_id[0] == '\0') {
            continue;
        }
        int rc = queue_entry_remove(delivery.queue, outbound->queue_id);
        if (rc != 0) {
            log_error("%s: cannot remove generated queue entry %s after a failed delivery: %s",
                      message->queue_id, outbound->queue_id, strerror(-rc));
        }
        outbound->queue_id[0] = '\0';
    }
}

/* ---- the outbound queue ------------------------------------------------ */

/* The message's spool file as the source of its queue entry. */
static struct queue_source
message_queue_source(const struct delivery_message *message)
{
    return (struct queue_source){
        .fd = message->spool_fd,
        .is_unnamed = message->is_spool_unnamed,
        .dir_fd = delivery.spool_dir_fd,
        .name = message->queue_id,
        .is_exclusive = message->delivered_count == 0 && !message->is_spool_shared,
    };
}

/* Stage the envelope of each message (still good) that has remote
 * recipients: on its spool file when no mailbox got that file, else in a
 * temporary file; returns how many were staged (in delivery.env_staged,
 * their fds in delivery.env_fds, their messages in delivery.env_message). */
static size_t
queue_stage_batch(struct delivery_message **messages, size_t count)
{
    size_t env_count = 0;
    for (size_t i = 0; i < count; i++) {
        struct delivery_message *message = messages[i];
        if (message->result != 0 || message->remote_count == 0) {
            continue;
        }
        ASSERT(message->remote_count <= QUEUE_RCPTS_MAX);
        for (size_t r = 0; r < message->remote_count; r++) {
            delivery.queue_rcpts[r] = (struct queue_rcpt){
                .address = delivery_message_remote(message, r),
                .orcpt = delivery_message_remote_orcpt(message, r),
                .notify = message->remote_notify[r],
                .state = QUEUE_RCPT_PENDING,
                .last_reply = "",
            };
        }
        struct queue_entry entry = {
            .arrival = message->arrival,
            .size = message->size,
            .ret = message->dsn_ret,
            .rcpts = delivery.queue_rcpts,
            .rcpt_count = message->remote_count,
        };
        memcpy(entry.id, message->queue_id, sizeof(entry.id));
        static_assert(sizeof(entry.mail_from) == sizeof(message->mail_from), "same bound");
        memcpy(entry.mail_from, message->mail_from, sizeof(entry.mail_from));
        memcpy(entry.envid, message->dsn_envid, sizeof(entry.envid));
        memcpy(entry.user, message->user, sizeof(entry.user));
        /* Mailboxes that link the spool file would show the envelope
         * attribute (every recipient) to their owners. */
        struct queue_source source = message_queue_source(message);
        struct queue_staged *staged = &delivery.env_staged[env_count];
        int rc = queue_entry_stage(delivery.queue, &entry, &source, staged);
        if (rc != 0) {
            log_error("%s: cannot write its queue envelope: %s", message->queue_id,
                      strerror(-rc));
            message->result = rc;
            continue;
        }
        delivery.env_fds[env_count] = staged->fd;
        delivery.env_message[env_count++] = i;
    }
    return env_count;
}

/* Sync the staged envelopes together, then link each message into the
 * queue and rename its envelope into place. Returns whether any entry was
 * published (the directory then needs its sync). */
static bool
queue_publish_batch(struct delivery_message **messages, size_t env_count)
{
    if (env_count == 0) {
        return false;
    }
    if (delivery.is_fsync_on) {
        /* fsync, not fdatasync: an attribute is metadata. */
        fsync_many(delivery.env_fds, delivery.env_results, env_count, false);
    } else {
        memset(delivery.env_results, 0, env_count * sizeof(delivery.env_results[0]));
    }
    bool is_dirty = false;
    for (size_t k = 0; k < env_count; k++) {
        struct delivery_message *message = messages[delivery.env_message[k]];
        int rc = delivery.env_results[k];
        if (rc != 0 || message->result != 0) {
            queue_entry_unstage(delivery.queue, message->queue_id, &delivery.env_staged[k]);
            if (rc != 0) {
                log_error("%s: fsync of its queue envelope: %s", message->queue_id,
                          strerror(-rc));
                message->result = rc;
            }
            continue;
        }
        struct queue_source source = message_queue_source(message);
        rc = queue_entry_publish(delivery.queue, message->queue_id, &source,
                                 &delivery.env_staged[k]);
        if (rc != 0) {
            log_error("%s: cannot put it into the queue: %s", message->queue_id, strerror(-rc));
            message->result = rc;
            continue;
        }
        message->queued_count = message->remote_count;
        is_dirty = true;
    }
    return is_dirty;
}

/* ---- the batch ------------------------------------------------------------ */

static void
commit_batch(struct delivery_message *batch)
{
    struct delivery_message **messages = delivery.batch;
    size_t count = 0;
    for (struct delivery_message *m = batch; m != NULL; m = m->next_in_batch) {
        ASSERT(count < DELIVERY_BATCH_MESSAGES_MAX);
        messages[count++] = m;
        m->result = 0;
        m->delivered_count = 0;
        m->queued_count = 0;
    }
    ASSERT(count > 0);
    uint64_t batch_number = delivery.stats.batches + 1; /* written only here */
    maildir_dirs_trim();

    /* 1. The spool files' bytes reach the disk before any name points at
     * them from a Maildir. */
    if (delivery.is_fsync_on) {
        /* Those whose submitter synced them (at end of data, concurrently
         * with earlier batches) need nothing here. */
        size_t unsynced = 0;
        for (size_t i = 0; i < count; i++) {
            if (!messages[i]->is_data_synced) {
                delivery.unsynced[unsynced] = messages[i];
                delivery.spool_fds[unsynced++] = messages[i]->spool_fd;
            }
        }
        /* Counted here all the same: the operator's figure is syncs per
         * message, wherever they ran. */
        stats_add(&delivery.stats.fsyncs, count - unsynced);
        fsync_many(delivery.spool_fds, delivery.spool_results, unsynced, true);
        for (size_t i = 0; i < unsynced; i++) {
            if (delivery.spool_results[i] != 0) {
                delivery.unsynced[i]->result = delivery.spool_results[i];
                log_error("%s: fdatasync of the spool file: %s", delivery.unsynced[i]->queue_id,
                          strerror(-delivery.spool_results[i]));
            }
        }
    }

    /* 2. Link into each Maildir; each message's copies are remembered (in
     * one array for the batch) to sync and, on failure, to undo. */
    size_t copy_count = 0;
    size_t dir_count = 0;
    size_t *first_copy = delivery.first_copy;
    for (size_t i = 0; i < count; i++) {
        struct delivery_message *message = messages[i];
        first_copy[i] = copy_count;
        size_t copies = delivery_message_copy_count(message);
        for (size_t j = 0; j < copies && message->result == 0; j++) {
            ASSERT(copy_count < DELIVERY_MAILBOXES_MAX);
            struct delivery_copy *copy = &delivery.copies[copy_count];
            const struct delivery_placement *placement =
                delivery_message_is_placed(message) ? &message->extras->placements[j] : NULL;
            const char *mailbox =
                placement != NULL
                    ? delivery_extras_string(message->extras, placement->mailbox_offset)
                    : delivery_message_mailbox(message, j);
            int rc = placement != NULL ? deliver_placement(message, placement, copy)
                                       : deliver_one(message, mailbox, copy);
            if (rc != 0) {
                log_error("%s: delivery to %s failed: %s", message->queue_id, mailbox,
                          strerror(-rc));
                message->result = rc;
                break;
            }
            copy_count++;
            message->delivered_count++;
            if (copy->dir != NULL && copy->dir->batch_mark != batch_number) {
                copy->dir->batch_mark = batch_number;
                copy->dir->sync_result = 0;
                delivery.batch_dirs[dir_count++] = copy->dir;
            }
        }
    }

    /* 2b. The outbound queue entries of the batch's messages with remote
     * recipients: envelopes staged, synced together, then published. */
    size_t env_count = queue_stage_batch(messages, count);
    bool is_queue_dirty = queue_publish_batch(messages, env_count);
    /* 2c. Generated messages (Sieve's replies to remote senders). */
    outbound_store_batch(messages, count);

    /* 3. One fsync per distinct directory for the whole batch: the new/
     * directories of the fast path, then the placements' folders. */
    size_t place_count = delivery.place_dir_count;
    if (delivery.is_fsync_on && dir_count + place_count > 0) {
        ASSERT(dir_count + place_count <= 2 * DELIVERY_MAILBOXES_MAX);
        for (size_t k = 0; k < dir_count; k++) {
            delivery.dir_fds[k] = delivery.batch_dirs[k]->new_fd;
        }
        for (size_t k = 0; k < place_count; k++) {
            delivery.dir_fds[dir_count + k] = delivery.place_dirs[k].fd;
        }
        fsync_many(delivery.dir_fds, delivery.dir_results, dir_count + place_count, false);
        for (size_t k = 0; k < dir_count; k++) {
            delivery.batch_dirs[k]->sync_result = delivery.dir_results[k];
        }
        for (size_t k = 0; k < place_count; k++) {
            delivery.place_dirs[k].sync_result = delivery.dir_results[dir_count + k];
        }
        /* A message is durable only if every directory it used is. */
        for (size_t i = 0; i < count; i++) {
            struct delivery_message *message = messages[i];
            const struct delivery_copy *copies = &delivery.copies[first_copy[i]];
            for (size_t j = 0; j < message->delivered_count && message->result == 0; j++) {
                const struct delivery_copy *copy = &copies[j];
                int rc = copy->dir != NULL ? copy->dir->sync_result
                                           : delivery.place_dirs[copy->place_dir].sync_result;
                if (rc != 0) {
                    message->result = rc;
                    log_error("%s: fsync of the directory of %s: %s", message->queue_id,
                              copy->dir != NULL ? copy->dir->mailbox
                                                : delivery.place_dirs[copy->place_dir].folder,
                              strerror(-rc));
                }
            }
        }
    }

    /* 3b. The queue directory, once, with the same rule. */
    if (is_queue_dirty && delivery.is_fsync_on) {
        int queue_fd = queue_dir_fd(delivery.queue);
        int queue_result = 0;
        fsync_many(&queue_fd, &queue_result, 1, false);
        for (size_t i = 0; queue_result != 0 && i < count; i++) {
            if (messages[i]->queued_count > 0 && messages[i]->result == 0) {
                messages[i]->result = queue_result;
                log_error("%s: fsync of the queue directory: %s", messages[i]->queue_id,
                          strerror(-queue_result));
            }
        }
    }

    /* Sessions that have one of these folders selected (IDLE above all)
     * hear of the new mail now, in process. */
    for (size_t k = 0; k < dir_count; k++) {
        char path[SPOOL_PATH_BYTES];
        if (delivery.batch_dirs[k]->sync_result == 0 &&
            maildir_dirs_path(delivery.batch_dirs[k]->mailbox, path, sizeof(path)) == 0) {
            mailbox_index_changed_path(path);
        }
    }
    for (size_t k = 0; k < place_count; k++) {
        if (delivery.place_dirs[k].sync_result == 0) {
            mailbox_index_changed_path(delivery.place_dirs[k].folder);
        }
    }

    /* 4. Report, and let the spool file go. */
    for (size_t i = 0; i < count; i++) {
        struct delivery_message *message = messages[i];
        if (message->result != 0) {
            rollback(message, &delivery.copies[first_copy[i]], message->delivered_count);
            message->delivered_count = 0;
            if (message->queued_count > 0) {
                int rc = queue_entry_remove(delivery.queue, message->queue_id);
                if (rc != 0) {
                    log_error("%s: cannot remove its queue entry after a failed delivery: %s",
                              message->queue_id, strerror(-rc));
                }
                message->queued_count = 0;
            }
            outbound_rollback(message);
        }
        if (message->result == 0 && delivery.on_queued != NULL) {
            /* Durable now: the delivery agent may take them. */
            if (message->queued_count > 0) {
                delivery.on_queued(message->queue_id);
            }
            for (size_t k = 0; message->extras != NULL && k < message->extras->outbound_count;
                 k++) {
                if (message->extras->outbound[k].queue_id[0] != '\0') {
                    delivery.on_queued(message->extras->outbound[k].queue_id);
                }
            }
        }
        if (message->extras != NULL) {
            struct delivery_extras *extras = message->extras;
            if (extras->on_commit != NULL) {
                extras->on_commit(message, extras->on_commit_arg);
            }
            /* The copies are linked (or gone): the files' names hold them. */
            for (size_t k = 0; k < extras->content_count; k++) {
                (void)close(extras->contents[k].fd); /* synced before it came here */
                extras->contents[k].fd = -1;
            }
        }
        if (close(message->spool_fd) != 0 && message->result == 0) {
            /* The data was already synced and linked; a close error now
             * cannot lose it, but say so. */
            log_warning("%s: close spool file: %s", message->queue_id, strerror(errno));
        }
        message->spool_fd = -1;
        if (!message->is_spool_unnamed &&
            unlinkat(delivery.spool_dir_fd, message->queue_id, 0) != 0) {
            log_warning("%s: unlink spool file: %s", message->queue_id, strerror(errno));
        }
        message->next_in_batch = NULL;
        reactor_job_complete(&message->job);
    }
    place_dirs_reset();
    stats_add(&delivery.stats.batches, 1);
    stats_add(&delivery.stats.messages, count);
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
        if (delivery.commit_window_ms > 0 && !delivery.is_stopping) {
            /* Let the batch fill for up to the window after its first
             * message (or until it is full): fewer, larger syncs at the
             * price of that much latency. */
            struct timespec deadline;
            (void)clock_gettime(CLOCK_MONOTONIC, &deadline);
            deadline.tv_nsec += (long)(delivery.commit_window_ms % 1000) * 1000000L;
            deadline.tv_sec += delivery.commit_window_ms / 1000 + deadline.tv_nsec / 1000000000L;
            deadline.tv_nsec %= 1000000000L;
            while (delivery.queue_length < DELIVERY_BATCH_MESSAGES_MAX && !delivery.is_stopping &&
                   pthread_cond_timedwait(&delivery.wake, &delivery.lock, &deadline) == 0) {
            }
        }
        /* Take up to a batch's worth, bounded by messages and mailboxes, so
         * the directory set of one batch always fits. */
        struct delivery_message *batch = delivery.queue_head;
        struct delivery_message *last = batch;
        size_t messages = 1;
        size_t mailboxes = delivery_message_copy_count(batch);
        while (last->next_in_batch != NULL && messages < DELIVERY_BATCH_MESSAGES_MAX &&
               mailboxes + delivery_message_copy_count(last->next_in_batch) <
                   DELIVERY_MAILBOXES_MAX) {
            last = last->next_in_batch;
            mailboxes += delivery_message_copy_count(last);
            messages++;
        }
        delivery.queue_head = last->next_in_batch;
        ASSERT(delivery.queue_length >= messages);
        delivery.queue_length -= messages;
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
delivery_start(const char *data_dir, const char *hostname, bool is_fsync_on,
               uint32_t commit_window_ms)
{
    memset(&delivery, 0, sizeof(delivery));
    delivery.commit_window_ms = commit_window_ms;
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
    delivery.pid = (long)getpid();
    char spool_dir[SPOOL_PATH_BYTES];
    if ((size_t)snprintf(spool_dir, sizeof(spool_dir), "%s/spool", data_dir) >=
        sizeof(spool_dir)) {
        return -ENAMETOOLONG;
    }
    delivery.spool_dir_fd = open(spool_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (delivery.spool_dir_fd < 0) {
        return -errno;
    }
    delivery.copies = calloc(DELIVERY_MAILBOXES_MAX, sizeof(*delivery.copies));
    delivery.batch_dirs = calloc(DELIVERY_MAILBOXES_MAX, sizeof(*delivery.batch_dirs));
    /* Room for the new/ directories and the placements' together. */
    delivery.dir_fds = calloc(2 * DELIVERY_MAILBOXES_MAX, sizeof(*delivery.dir_fds));
    delivery.dir_results = calloc(2 * DELIVERY_MAILBOXES_MAX, sizeof(*delivery.dir_results));
    delivery.place_dirs = calloc(DELIVERY_MAILBOXES_MAX, sizeof(*delivery.place_dirs));
    delivery.place_dir_set = calloc(DELIVERY_PLACE_DIR_SLOTS, sizeof(*delivery.place_dir_set));
    if (delivery.copies == NULL || delivery.batch_dirs == NULL || delivery.dir_fds == NULL ||
        delivery.dir_results == NULL || delivery.place_dirs == NULL ||
        delivery.place_dir_set == NULL) {
        return -ENOMEM;
    }
    delivery.queue_rcpts = calloc(QUEUE_RCPTS_MAX, sizeof(*delivery.queue_rcpts));
    if (delivery.queue_rcpts == NULL) {
        return -ENOMEM;
    }
    int queue_rc = queue_open(data_dir, is_fsync_on, &delivery.queue);
    if (queue_rc != 0) {
        return queue_rc;
    }
    /* Start-up, nothing writes yet: leftovers of a crash go now. */
    queue_rc = queue_scan(delivery.queue, true, NULL, NULL);
    if (queue_rc != 0) {
        log_error("cannot read the queue directory: %s", strerror(-queue_rc));
        return queue_rc;
    }
    int dirs_rc = maildir_dirs_init(data_dir, is_fsync_on);
    if (dirs_rc != 0) {
        return dirs_rc;
    }
    int rc = io_uring_queue_init(DELIVERY_RING_ENTRIES, &delivery.ring, 0);
    if (rc == 0) {
        delivery.has_ring = true;
    } else {
        log_warning("delivery: no io_uring (%s); syncing one file at a time", strerror(-rc));
    }
    pthread_mutex_init(&delivery.lock, NULL);
    pthread_condattr_t cond_attr;
    pthread_condattr_init(&cond_attr);
    pthread_condattr_setclock(&cond_attr, CLOCK_MONOTONIC); /* the window's clock */
    pthread_cond_init(&delivery.wake, &cond_attr);
    pthread_condattr_destroy(&cond_attr);
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
    delivery.queue_length++;
    pthread_cond_signal(&delivery.wake);
    pthread_mutex_unlock(&delivery.lock);
}

void
delivery_set_queued_hook(void (*fn)(const char *id))
{
    delivery.on_queued = fn;
}

void
delivery_stats_read(struct delivery_stats *out)
{
    out->batches = stats_load(&delivery.stats.batches);
    out->messages = stats_load(&delivery.stats.messages);
    out->fsyncs = stats_load(&delivery.stats.fsyncs);
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
    maildir_dirs_destroy();
    (void)close(delivery.spool_dir_fd);
    delivery.spool_dir_fd = -1;
    free(delivery.copies);
    free(delivery.batch_dirs);
    free(delivery.dir_fds);
    free(delivery.dir_results);
    free(delivery.place_dirs);
    free(delivery.place_dir_set);
    free(delivery.queue_rcpts);
    queue_close(&delivery.queue);
    log_info("delivery: %llu messages in %llu batches",
             (unsigned long long)delivery.stats.messages, (unsigned long long)delivery.stats.batches);
}
