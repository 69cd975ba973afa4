/*
 * store/queue_outcome.h - what one delivery attempt does to a queue entry:
 * recipient states, attempt counts and next attempts, the lifetime's end,
 * and the delivery status notifications (bounce, delay warning, success
 * report) that go back to the sender, each queued as an entry of its own.
 *
 * Called by the delivery agent on a worker thread (blocking file I/O)
 * after one attempt of one entry, with the entry's lock held
 * (queue_entry_lock) and the entry loaded (queue_entry_load) before the
 * attempt. Crash order: the DSN entries are durable before the envelope
 * that records the failures is rewritten, so a crash in between gives a
 * second bounce on the next attempt, never none.
 *
 * Limits: QUEUE_OUTCOME_GENERATED_MAX DSNs per call, one outcome per
 * recipient, QUEUE_REPLY_BYTES - 1 bytes of each reply kept, the
 * original read up to DSN_ORIGINAL_READ_BYTES (store/dsn.h).
 */
#ifndef TOASTER_STORE_QUEUE_OUTCOME_H
#define TOASTER_STORE_QUEUE_OUTCOME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/queue.h"
#include "store/queue_schedule.h"
#include "store/spool.h"

enum queue_outcome_kind {
    QUEUE_OUTCOME_DELIVERED, /* 2xx after the final dot / BDAT LAST */
    QUEUE_OUTCOME_RELAYED,   /* delivered to a server without DSN while NOTIFY had SUCCESS */
    QUEUE_OUTCOME_DEFERRED,  /* 4xx, connection trouble, route TEMPFAIL: try again */
    QUEUE_OUTCOME_FAILED,    /* 5xx, route PERMFAIL, local refusal: bounce */
    QUEUE_OUTCOME_PASSED_ON, /* 2xx from a next hop with DSN: NOTIFY went with it, so any
                              * success report is that hop's (RFC 3461 5.2.2), not ours */
};

/* One recipient's result in this attempt. Strings are borrowed for the
 * call. */
struct queue_outcome {
    size_t rcpt_index; /* into entry->rcpts; each pending rcpt at most once */
    enum queue_outcome_kind kind;
    const char *reply;      /* "550 5.1.1 <bob@x>: no such user" or our own text
                             * ("451 4.4.1 connect to 192.0.2.1[192.0.2.1]:25: Connection
                             * refused"); NULL is "" */
    const char *remote_mta; /* "mx.example.net", or NULL (route/connect failures) */
};

struct queue_outcome_params {
    const struct queue_schedule_policy *policy; /* passed queue_schedule_check() */
    const char *hostname;                       /* myhostname: DSN Reporting-MTA */
    int64_t now;                                /* unix seconds */
    uint64_t random;                            /* for queue_schedule's jitter */
};

#define QUEUE_OUTCOME_GENERATED_MAX 3 /* a bounce, a delay warning, a success report */

/* Which id space the DSN entries' ids come from (spool_queue_id_make's
 * reactor index): reactors stay below 254, the committer uses 0xff. */
#define QUEUE_OUTCOME_ID_INDEX 0xfeu
#define QUEUE_OUTCOME_ID_TRIES 8 /* fresh ids tried when one is taken (-EEXIST) */

struct queue_outcome_result {
    bool is_removed;      /* no recipient pending: the entry is gone */
    int64_t next_attempt; /* earliest next_attempt of the pending rcpts; 0 when removed */
    size_t pending_count;
    size_t generated_count; /* DSN entries stored in the queue, in generated_ids */
    char generated_ids[QUEUE_OUTCOME_GENERATED_MAX][SPOOL_QUEUE_ID_BYTES];
};

/* Apply one attempt's outcomes to the loaded entry and make it durable.
 *
 * 1. Each outcome: DELIVERED and RELAYED make the recipient delivered,
 *    FAILED failed; DEFERRED leaves it pending with next_attempt from
 *    queue_schedule_after_defer(), or fails it when its lifetime is over
 *    (queue_schedule_is_expired: the bounce says "451 4.4.7 Message
 *    delivery time exceeded; last reply ...", Status 4.4.7). Every outcome
 *    counts an attempt and sets last_reply (cut to QUEUE_REPLY_BYTES - 1,
 *    control bytes as spaces). Pending recipients without an outcome are
 *    left as they are, unless their lifetime is over (failed, the same
 *    4.4.7 bounce, attempts unchanged).
 * 2. DSNs, never to the null sender (logged at info): one bounce for the
 *    recipients failed now; one success report for those delivered or
 *    relayed now whose NOTIFY has SUCCESS; one delay warning for the
 *    recipients still pending when queue_schedule_is_warning_due() and
 *    entry->warned_at is 0 (then warned_at = now, written in the
 *    envelope). NOTIFY is honoured by store/dsn. Each is stored as a new
 *    entry: null sender, one recipient (the entry's sender), arrival now,
 *    an id from spool_queue_id_make(QUEUE_OUTCOME_ID_INDEX), its message
 *    "Return-Path: <>\r\n" and the DSN, written and fdatasynced before it
 *    is linked in. A DSN that cannot be composed (-E2BIG, -EINVAL) is
 *    logged and skipped.
 * 3. Then queue_entry_update() (some recipient pending), or
 *    queue_entry_remove() (none; a message file already gone is fine),
 *    or no write at all when nothing changed (no outcome, no expiry, no
 *    warning due).
 *
 * On success returns 0, *result_out filled, and *entry updated: its
 * recipients and their strings then live in the entry's own storage
 * (queue_entry_release frees them, as after queue_entry_load), so the
 * outcomes' strings need not outlive the call.
 * Returns -EINVAL (an outcome index out of range, a recipient not pending
 * or named twice, an unknown kind) with nothing changed anywhere;
 * -ENOMEM; or -errno of a write. After a write error *entry is unchanged
 * in memory and its envelope on disk is as before the call, but DSN
 * entries stored before the failure stay (the next attempt makes them
 * again: a second bounce rather than none); result_out->generated_count
 * and generated_ids name them even then, so the caller can schedule
 * them. The other result fields are only set on success. */
int queue_outcome_apply(struct queue *queue, struct queue_entry *entry,
                        const struct queue_outcome *outcomes, size_t outcome_count,
                        const struct queue_outcome_params *params,
                        struct queue_outcome_result *result_out);

#endif
