/*
 * store/delivery.h - durable Maildir delivery with group commit.
 *
 * A message arrives here complete in its spool file. The committer thread
 * takes every message waiting (from any worker) as one batch: it syncs the
 * spool files together, hard-links each into every recipient's Maildir
 * (tmp/ then rename into new/), syncs each distinct new/ directory once for
 * the whole batch, and only then reports back, so a 250 always means
 * "on disk" and many messages share each sync.
 */
#ifndef TOASTER_STORE_DELIVERY_H
#define TOASTER_STORE_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/job.h"
#include "store/spool.h"

#define DELIVERY_MAILBOXES_MAX 10000 /* distinct local mailboxes per message */

struct delivery_message {
    struct job job;             /* first: the reactor's handle on this message */
    char       queue_id[SPOOL_QUEUE_ID_BYTES];
    char       spool_path[SPOOL_PATH_BYTES];
    int        spool_fd;        /* open for writing; closed by delivery */
    uint64_t   size;            /* bytes in the spool file */
    char      *mail_from;       /* owned; "" for <> */
    uint32_t   rcpt_count;      /* envelope recipients accepted */
    char     **mailboxes;       /* owned: distinct canonical "local@domain" names */
    size_t     mailbox_count;
    size_t     mailbox_capacity;
    uint32_t  *mailbox_index;   /* open-addressing set over mailboxes: index + 1, 0 = free */
    size_t     mailbox_index_slots;
    /* Filled in by delivery: */
    int        result;          /* 0, or -errno of the first failure */
    size_t     delivered_count; /* distinct mailboxes written */
    struct delivery_message *next_in_batch;
};

/* Start the committer. Returns 0 or -errno. Main thread. */
int delivery_start(const char *data_dir, const char *hostname, bool is_fsync_on);

/* Allocate an empty message (spool_fd -1). Returns NULL when out of memory. */
struct delivery_message *delivery_message_create(void);

/* Add one mailbox (copied) unless the message already has it, so that many
 * recipients reaching the same users count once against the limit. Returns
 * 0, -ENOMEM, or -E2BIG past DELIVERY_MAILBOXES_MAX distinct mailboxes. */
int delivery_message_add_mailbox(struct delivery_message *message, const char *mailbox);

/* Forget the mailboxes added after the first keep_count (a recipient that
 * was refused half-way through its expansion). */
void delivery_message_truncate(struct delivery_message *message, size_t keep_count);

/* Free the message and NULL the pointer. Does not touch the spool file. */
void delivery_message_destroy(struct delivery_message **message);

/* Queue a complete message for commit (any thread). When it is durable in
 * every mailbox, or has failed, its job is completed to its reactor with
 * result set; the spool file is then closed and gone either way. */
void delivery_submit(struct delivery_message *message);

/* Finish every queued message, then stop the thread. Main thread. */
void delivery_stop(void);

#endif
