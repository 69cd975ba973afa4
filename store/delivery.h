/*
 * store/delivery.h - durable Maildir delivery with group commit.
 *
 * A message arrives here complete in its spool file. The committer thread
 * takes every message waiting (from any worker) as one batch: it syncs the
 * spool files together, hard-links each into every recipient's Maildir
 * new/, syncs each distinct new/ directory once for
 * the whole batch, and only then reports back, so a 250 always means
 * "on disk" and many messages share each sync. A message with remote
 * recipients also gets its outbound queue entry (store/queue.h) in the
 * same batch, durable before the report like the Maildir copies.
 *
 * Placements. By default every mailbox of a message gets one copy in its
 * INBOX (new/): the fast path, which allocates nothing. A stage that chose
 * otherwise (Sieve: folders, flags, discard, an edited header, a redirect)
 * switches the message to placements with delivery_message_placements_begin()
 * and lists each copy: mailbox, folder, flags and keywords, and which file
 * (the spool file, or a file of the message's own). Generated messages for
 * remote addresses (vacation replies, rejections) join the same batch as
 * outbound queue entries with the null sender. Every copy and entry of a
 * message is durable before it is reported, and all of them are undone
 * when any fails.
 *
 * Outcomes per recipient (LMTP) keep that rule: the submitter gives each
 * recipient a message of its own over the one spool file (is_spool_shared,
 * each with its own fd, linked by fd), so one recipient's failed copy
 * fails only its own message.
 */
#ifndef TOASTER_STORE_DELIVERY_H
#define TOASTER_STORE_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/job.h"
#include "core/limits.h"
#include "store/queue.h"
#include "store/spool.h"

#define DELIVERY_MAILBOXES_MAX 10000 /* distinct local mailboxes per message; also copies */
#define DELIVERY_CONTENTS_MAX 1024   /* files of a message's own (edited headers, replies) */
#define DELIVERY_OUTBOUND_MAX 1024   /* generated messages queued with one message */

struct delivery_message;

/* One copy chosen by a stage. Strings live in the extras' string area. */
struct delivery_placement {
    uint32_t mailbox_offset; /* "local@domain" */
    uint32_t folder_offset;  /* storage name (store/maildir_folders.h); "" = INBOX */
    uint32_t flags;          /* MAILDIR_FLAG_* (store/maildir_name.h) */
    uint32_t keywords;       /* bit i: letter 'a' + i of the folder's dovecot-keywords */
    int32_t  content;        /* -1: the spool file; else a delivery_message_add_content() number */
};

/* A file of the message's own: complete, its data synced by whoever made
 * it, owned (closed) by delivery. */
struct delivery_content {
    int      fd;
    uint64_t size;
};

/* A generated message for the outbound queue (null sender). */
struct delivery_outbound {
    int32_t  content;
    uint32_t address_offset;
    char     queue_id[SPOOL_QUEUE_ID_BYTES]; /* set by the committer once stored, else "" */
};

struct delivery_extras {
    bool                       is_placed; /* placements_begin() was called */
    struct delivery_placement *placements;
    size_t                     placement_count;
    size_t                     placement_capacity;
    struct delivery_content   *contents;
    size_t                     content_count;
    size_t                     content_capacity;
    struct delivery_outbound  *outbound;
    size_t                     outbound_count;
    size_t                     outbound_capacity;
    char                      *strings;
    size_t                     strings_len;
    size_t                     strings_capacity;
    /* Called on the committer thread once the message's fate is known
     * (result set), before it is reported. */
    void (*on_commit)(struct delivery_message *message, void *arg);
    void *on_commit_arg;
};

struct delivery_message {
    struct job job;             /* first: the reactor's handle on this message */
    char       queue_id[SPOOL_QUEUE_ID_BYTES];
    bool       is_spool_unnamed; /* O_TMPFILE: linked by fd, never unlinked */
    bool       is_data_synced;  /* the submitter already ran fdatasync on it */
    int        spool_fd;        /* open read-write; closed by delivery */
    uint64_t   size;            /* bytes in the spool file */
    char       mail_from[SMTP_ADDRESS_BYTES_MAX + 1]; /* "" for <> */
    uint32_t   rcpt_count;      /* envelope recipients accepted */
    size_t     mailbox_count;   /* distinct canonical "local@domain" names */
    /* Storage for the names, kept when a pool hands the message out again:
     * the names back to back, where each starts, and an open-addressing set
     * over them (index + 1, 0 = free). */
    char      *names;
    size_t     names_len;
    size_t     names_capacity;
    uint32_t  *mailbox_offsets;
    size_t     mailbox_capacity;
    uint32_t  *mailbox_index;
    size_t     mailbox_index_slots;
    /* Remote recipients, for the outbound queue (store/queue.h): pairs
     * "address\0orcpt\0" back to back (orcpt "" when none), where each
     * starts, and its NOTIFY bits. Kept like the names when pooled. */
    size_t     remote_count;
    char      *remote_names;
    size_t     remote_names_len;
    size_t     remote_names_capacity;
    uint32_t  *remote_offsets;
    uint32_t  *remote_notify;
    size_t     remote_capacity;
    /* What a queue entry records besides (set by the submitter): */
    enum queue_ret dsn_ret;
    char       dsn_envid[QUEUE_ENVID_BYTES];
    char       user[QUEUE_USER_BYTES]; /* the authenticated sender, "" for none */
    int64_t    arrival;                /* unix seconds */
    void      *owner_data;             /* the submitter's; delivery never touches it */
    /* The spool file is shared with other messages (LMTP: one message per
     * recipient, each with its own fd of the one file, linked by fd): no
     * message is its exclusive owner, so a queue entry of it keeps its
     * envelope in a file of its own, never as the file's attribute. */
    bool       is_spool_shared;
    /* The submitter's too, and unlike owner_data never borrowed by a stage
     * (core/sieve_stage, the filters): LMTP's link from a recipient's
     * message to its transaction. Delivery never touches them. */
    void      *group;
    uint32_t   group_index;
    /* Placements and generated messages (NULL: one INBOX copy per mailbox).
     * Allocated only when a stage asks; freed when the message is given
     * back to its pool or destroyed. */
    struct delivery_extras *extras;
    /* Filled in by delivery: */
    int        result;          /* 0, or -errno of the first failure */
    size_t     delivered_count; /* distinct mailboxes written */
    size_t     queued_count;    /* remote recipients in the queue entry */
    struct delivery_message *next_in_batch; /* also the pool's free list */
};

/* Messages kept for reuse by one thread (a reactor), so that receiving a
 * message allocates nothing once the pool is warm. */
#define DELIVERY_POOL_KEEP 256
#define DELIVERY_POOL_KEEP_BYTES (64 * 1024) /* a bigger message is freed instead */

struct delivery_message_pool {
    struct delivery_message *free_list;
    uint32_t                 free_count;
};

/* Mailbox i (0 .. mailbox_count - 1) of a message. */
static inline const char *
delivery_message_mailbox(const struct delivery_message *message, size_t i)
{
    return message->names + message->mailbox_offsets[i];
}

/* Start the committer. commit_window_ms > 0 lets a batch gather messages
 * for that long after its first before it is synced. Returns 0 or -errno.
 * Main thread. */
int delivery_start(const char *data_dir, const char *hostname, bool is_fsync_on,
                   uint32_t commit_window_ms);

/* Allocate an empty message (spool_fd -1). Returns NULL when out of memory. */
struct delivery_message *delivery_message_create(void);

/* Add one mailbox (copied) unless the message already has it, so that many
 * recipients reaching the same users count once against the limit. Returns
 * 0, -ENOMEM, or -E2BIG past DELIVERY_MAILBOXES_MAX distinct mailboxes. */
int delivery_message_add_mailbox(struct delivery_message *message, const char *mailbox);

/* The same, remembering rcpt (copied; "" for none) as the envelope
 * recipient that reached the mailbox first (Sieve's envelope "to", with
 * its subaddress). -EINVAL when rcpt is longer than an SMTP address. */
int delivery_message_add_mailbox_for(struct delivery_message *message, const char *mailbox,
                                     const char *rcpt);

/* Mailbox i's envelope recipient ("" when none was given). */
static inline const char *
delivery_message_mailbox_rcpt(const struct delivery_message *message, size_t i)
{
    const char *name = delivery_message_mailbox(message, i);
    return name + strlen(name) + 1;
}

/* Forget the mailboxes added after the first keep_count (a recipient that
 * was refused half-way through its expansion). */
void delivery_message_truncate(struct delivery_message *message, size_t keep_count);

/* Add one remote recipient (copied; orcpt "" when none) unless the
 * message already has that address. Returns 0, -ENOMEM, -EINVAL (an
 * address or ORCPT over its bound), or -E2BIG past QUEUE_RCPTS_MAX. */
int delivery_message_add_remote(struct delivery_message *message, const char *address,
                                const char *orcpt, uint32_t notify);

/* Forget the remote recipients added after the first keep_count. */
void delivery_message_truncate_remotes(struct delivery_message *message, size_t keep_count);

/* Remote recipient i's address and ORCPT. */
static inline const char *
delivery_message_remote(const struct delivery_message *message, size_t i)
{
    return message->remote_names + message->remote_offsets[i];
}

static inline const char *
delivery_message_remote_orcpt(const struct delivery_message *message, size_t i)
{
    const char *address = delivery_message_remote(message, i);
    return address + strlen(address) + 1;
}

/* Switch the message to placements (idempotent): from now on the
 * committer writes exactly the copies placed (none placed: no local copy)
 * instead of one per mailbox. Returns 0 or -ENOMEM. */
int delivery_message_placements_begin(struct delivery_message *message);

/* Whether the message is switched to placements. */
static inline bool
delivery_message_is_placed(const struct delivery_message *message)
{
    return message->extras != NULL && message->extras->is_placed;
}

/* Hand a file of the message's own to delivery (complete, its data
 * synced): delivery owns fd from now on, also when this fails (it is then
 * closed). Returns the content number (>= 0), -ENOMEM, or -E2BIG past
 * DELIVERY_CONTENTS_MAX. Needs placements_begin first (so do place and
 * add_outbound). */
int delivery_message_add_content(struct delivery_message *message, int fd, uint64_t size);

/* One copy into mailbox's folder (storage name; "" or INBOX in any case
 * for INBOX) with flags and keywords (both 0: new/, else cur/ with
 * ":2,<letters>"), of the spool file (content -1) or of a content.
 * Returns 0, -ENOMEM, -EINVAL (a folder name store/maildir_folders
 * refuses, a mailbox of bad form, a content that does not exist, bits
 * outside the 26 letters), or -E2BIG past DELIVERY_MAILBOXES_MAX copies. */
int delivery_message_place(struct delivery_message *message, const char *mailbox,
                           const char *folder, uint32_t flags, uint32_t keywords, int content);

/* A generated message (content) for the outbound queue with the null
 * sender, to address. Returns 0, -ENOMEM, -EINVAL (bad address or
 * content) or -E2BIG past DELIVERY_OUTBOUND_MAX. */
int delivery_message_add_outbound(struct delivery_message *message, int content,
                                  const char *address);

/* Have fn(message, arg) called on the committer thread once the message's
 * fate is known (message->result set), before the report; it may block
 * briefly (a key-value store write). Works with or without placements.
 * Returns 0 or -ENOMEM. */
int delivery_message_on_commit(struct delivery_message *message,
                               void (*fn)(struct delivery_message *message, void *arg),
                               void *arg);

/* Copies the committer will write: placements, or one per mailbox. */
static inline size_t
delivery_message_copy_count(const struct delivery_message *message)
{
    return delivery_message_is_placed(message) ? message->extras->placement_count
                                               : message->mailbox_count;
}

static inline const char *
delivery_extras_string(const struct delivery_extras *extras, uint32_t offset)
{
    return extras->strings + offset;
}

/* Free the message and NULL the pointer. Does not touch the spool file. */
void delivery_message_destroy(struct delivery_message **message);

/* An empty message from the pool, or a new one (NULL when out of memory).
 * Only the pool's own thread may call these three. */
struct delivery_message *delivery_message_take(struct delivery_message_pool *pool);

/* Empty the message (its spool file must be gone: spool_fd -1) and keep it
 * for the next take, or free it when the pool is full or it grew large.
 * NULLs the pointer. */
void delivery_message_give(struct delivery_message_pool *pool, struct delivery_message **message);

/* Free every message the pool keeps. */
void delivery_message_pool_drain(struct delivery_message_pool *pool);

/* Queue a complete message for commit (any thread). When it is durable in
 * every mailbox and (with remote recipients) in the outbound queue, or has
 * failed, its job is completed to its reactor with
 * result set; the spool file is then closed and gone either way. */
void delivery_submit(struct delivery_message *message);

/* Have fn(id) called on the committer thread for every outbound queue
 * entry once it is durable (the delivery agent's relay_notify_queued; it
 * must not block). Main thread, before messages flow. */
void delivery_set_queued_hook(void (*fn)(const char *id));

/* What the committer has done since delivery_start(), for the operator. */
struct delivery_stats {
    uint64_t batches;  /* group commits: one sync round each */
    uint64_t messages; /* messages committed (delivered or failed) */
    uint64_t fsyncs;   /* fsync and fdatasync calls issued */
};

/* Read the counters (any thread, while the committer runs). */
void delivery_stats_read(struct delivery_stats *out);

/* Finish every queued message, then stop the thread. Main thread. */
void delivery_stop(void);

#endif
