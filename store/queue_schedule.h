/*
 * store/queue_schedule.h - when the outbound queue tries a recipient
 * again: the retry back-off, the lifetime after which a deferred
 * recipient bounces, the one delay warning, and the due-time heap the
 * delivery agent pops its work from.
 *
 * Pure: no clock, no I/O, no global state; the caller passes the time and
 * the random bits. The heap is not locked: one owner (the agent's thread).
 * Limits: QUEUE_SCHEDULE_*_CEILING for the policy, QUEUE_DUE_CAPACITY_MAX
 * entries in a heap.
 */
#ifndef TOASTER_STORE_QUEUE_SCHEDULE_H
#define TOASTER_STORE_QUEUE_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/spool.h"

/* Postfix's defaults (minimal_backoff_time, maximal_backoff_time,
 * maximal_queue_lifetime; delay_warning_time off). */
#define QUEUE_RETRY_MIN_S_DEFAULT 300u
#define QUEUE_RETRY_MAX_S_DEFAULT 4200u
#define QUEUE_LIFETIME_S_DEFAULT 432000u
#define QUEUE_DELAY_WARNING_S_DEFAULT 0u
/* Ceilings: a lifetime over 100 days or a retry less often than daily is
 * a typo, not a policy. */
#define QUEUE_RETRY_S_CEILING 86400u
#define QUEUE_LIFETIME_S_CEILING 8640000u

/* Entries one due heap may hold (every recipient of every queued message
 * in the worst case: QUEUE_RCPTS_MAX times the messages queued). */
#define QUEUE_DUE_CAPACITY_MAX (16u * 1024 * 1024)

struct queue_schedule_policy {
    uint32_t retry_min_s;     /* queue_retry_min: the first back-off */
    uint32_t retry_max_s;     /* queue_retry_max: the back-off stops doubling here */
    uint32_t lifetime_s;      /* queue_lifetime: a deferred recipient this old bounces */
    uint32_t delay_warning_s; /* delay_warning_time: 0 = no warnings */
};

/* What to do with a recipient whose attempt just ended in a temporary
 * failure (or that was found deferred at start-up). */
struct queue_schedule_outcome {
    bool    is_expired;      /* bounce it now; next_attempt_s is unset */
    bool    is_warning_due;  /* send the delay warning now (and record that it went) */
    int64_t next_attempt_s;  /* when to try again (Unix seconds) */
};

/* The defaults above. */
void queue_schedule_defaults(struct queue_schedule_policy *policy_out);

/* 0, or -EINVAL when retry_min_s is 0, retry_min_s > retry_max_s, a value
 * is over its ceiling, or delay_warning_s >= lifetime_s (a warning that
 * could never be sent). */
int queue_schedule_check(const struct queue_schedule_policy *policy);

/* The policy given to the functions below must have passed
 * queue_schedule_check() (at configuration load); they assert it. */

/* The back-off after `attempts` failed attempts (>= 1), without jitter:
 * retry_min_s doubled attempts - 1 times, capped at retry_max_s
 * (Postfix's rule). */
uint32_t queue_schedule_backoff_s(const struct queue_schedule_policy *policy, uint32_t attempts);

/* The back-off with jitter: the value above moved by up to 1/16 of itself
 * either way, chosen by random_bits, then held within [retry_min_s,
 * retry_max_s]; so deferred mail that failed together spreads out. */
uint32_t queue_schedule_delay_s(const struct queue_schedule_policy *policy, uint32_t attempts,
                                uint64_t random_bits);

/* True when a recipient that arrived at arrival_s has been queued for
 * lifetime_s or longer at now_s (exactly lifetime_s old is expired). */
bool queue_schedule_is_expired(const struct queue_schedule_policy *policy, int64_t arrival_s,
                               int64_t now_s);

/* True when delay warnings are on, none was sent yet (is_warned false),
 * and the recipient has been queued delay_warning_s or longer. */
bool queue_schedule_is_warning_due(const struct queue_schedule_policy *policy,
                                   int64_t arrival_s, int64_t now_s, bool is_warned);

/* The decision after the attempts-th failed attempt ended at now_s: expired
 * (bounce), or the next attempt at now_s + queue_schedule_delay_s(), but
 * never later than the moment the recipient expires, so the last attempt
 * happens at the end of its lifetime rather than up to retry_max_s after
 * it; and whether the delay warning is due. attempts >= 1. */
void queue_schedule_after_defer(const struct queue_schedule_policy *policy, int64_t arrival_s,
                                uint32_t attempts, int64_t now_s, bool is_warned,
                                uint64_t random_bits, struct queue_schedule_outcome *outcome_out);

/*
 * The due heap: a binary min-heap of (due time, queue id, recipient index),
 * ties in push order. Push and pop are O(log n); removing a message's
 * entries (toasterctl queue delete/hold) is O(n), since those are rare.
 */
struct queue_due_entry {
    int64_t  due_s;
    char     queue_id[SPOOL_QUEUE_ID_BYTES];
    uint32_t rcpt_index;
};

struct queue_due;

/* A heap for at most capacity entries (1..QUEUE_DUE_CAPACITY_MAX), its
 * memory allocated now. Returns 0 and sets *due_out, -EINVAL or -ENOMEM. */
int queue_due_create(size_t capacity, struct queue_due **due_out);

/* Free and NULL *due. NULL is fine. */
void queue_due_destroy(struct queue_due **due);

/* Add an entry. queue_id must be a NUL-terminated id shorter than
 * SPOOL_QUEUE_ID_BYTES. Returns 0, or -ENOSPC when the heap is full (the
 * caller keeps the recipient on disk and finds it again on the next queue
 * scan), or -EINVAL for an id that is empty or too long. */
int queue_due_push(struct queue_due *due, int64_t due_s, const char *queue_id,
                   uint32_t rcpt_index);

/* Take the earliest entry if it is due (due_s <= now_s): 0 and
 * *entry_out; -EAGAIN when the earliest is not due yet; -ENOENT when the
 * heap is empty. */
int queue_due_pop(struct queue_due *due, int64_t now_s, struct queue_due_entry *entry_out);

/* The earliest due time: 0 and *due_s_out, or -ENOENT when empty. */
int queue_due_next(const struct queue_due *due, int64_t *due_s_out);

/* Remove every entry of queue_id; returns how many went. */
size_t queue_due_remove(struct queue_due *due, const char *queue_id);

/* Entries held now. */
size_t queue_due_count(const struct queue_due *due);

#endif
